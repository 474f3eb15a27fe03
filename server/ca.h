/*
 * ca.h - the coalition's certificate authority, kept by the hub: keys, certificates, pins.
 *
 * The hub issues every node certificate itself (issue 5: invites and enrollment), so the rules
 * for what a certificate may say live here and nowhere else:
 *   - a region certificate has exactly one DNS subjectAltName (the region id), extendedKeyUsage
 *     clientAuth, basicConstraints CA:FALSE, keyUsage digitalSignature - whatever a CSR asked for;
 *   - the hub's certificate has DNS:hub (plus the names given), serverAuth;
 *   - the CA certificate is CA:TRUE, pathlen:0, keyCertSign/cRLSign, and signs nothing but these.
 * Keys are EC P-256. Serial numbers are random (127 bits). notBefore is backdated five minutes
 * so a node whose clock is slightly behind the hub's accepts a certificate it was just given.
 *
 * Files are written through a temporary name and renamed into place (a crash never leaves half a
 * key), private keys with mode 0600 from the moment they exist.
 */
#ifndef SANGAM_CA_H
#define SANGAM_CA_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "sangam/error.h"

#define SG_CA_PIN_LEN 64 /* hex characters of a SHA-256 public-key pin */

typedef enum sg_cert_kind {
    SG_CERT_REGION = 1, /* clientAuth, DNS:<region> */
    SG_CERT_HUB = 2,    /* serverAuth, DNS:hub and the extra names */
} sg_cert_kind;

typedef struct sg_ca sg_ca; /* the CA certificate and its private key */

/* A new EC P-256 key (SG_ENOMEM or SG_ETLS on failure). */
int sg_key_new(EVP_PKEY **out, sg_err *err);

/* Makes a new self-signed CA named cn valid for days. */
int sg_ca_create(sg_ca **out, const char *cn, int days, sg_err *err);
/* Loads a CA from PEM files; SG_ECONFIG naming the file when one is missing, unreadable, not a
 * CA certificate, or the key does not match. */
int sg_ca_load(sg_ca **out, const char *cert_file, const char *key_file, sg_err *err);
/* Writes the CA's certificate (0644) and key (0600) files. */
int sg_ca_save(const sg_ca *ca, const char *cert_file, const char *key_file, sg_err *err);
void sg_ca_free(sg_ca *ca); /* NULL-safe */
/* The CA certificate (owned by ca). */
X509 *sg_ca_cert(const sg_ca *ca);

/* Issues a certificate of kind for pub, named name (a region id for SG_CERT_REGION; extra DNS
 * names or IP addresses, comma-separated, for SG_CERT_HUB, may be NULL), valid for days from
 * now. SG_EINVAL for a region id that is not valid or "hub". */
int sg_ca_issue(X509 **out, const sg_ca *ca, EVP_PKEY *pub, sg_cert_kind kind, const char *name,
                int days, sg_err *err);

/* The SHA-256 of a certificate's SubjectPublicKeyInfo as lowercase hex (kubeadm's
 * --discovery-token-ca-cert-hash): out must hold SG_CA_PIN_LEN + 1 bytes. */
int sg_cert_pin(char *out, X509 *cert, sg_err *err);

/* Loads an unencrypted PEM private key (SG_ECONFIG naming the file). */
int sg_key_load(EVP_PKEY **out, const char *path, sg_err *err);
/* A PEM certificate request for key with subject CN=cn, signed by key: a new malloc'd string,
 * or NULL. */
char *sg_csr_pem(EVP_PKEY *key, const char *cn);
/* The notAfter of the first certificate in a PEM file, as Unix time (SG_ECONFIG if unreadable). */
int sg_cert_file_not_after(int64_t *out, const char *path, sg_err *err);
/* Checks a certificate a node was given: it carries key, names exactly region (one DNS name)
 * and verifies against ca as a client certificate. 0, or SG_EAUTH with the reason. */
int sg_cert_check_region(X509 *cert, EVP_PKEY *key, const char *region, X509 *ca, sg_err *err);
/* Reads the first certificate of PEM text (len bytes), or NULL. */
X509 *sg_cert_from_pem(const char *pem, size_t len);

/* A certificate as PEM text in a new malloc'd string, or NULL (out of memory). */
char *sg_cert_to_pem(X509 *cert);

/* Small crypto helpers for the secrets the hub hands out (invites, API tokens) and pins. */
/* SHA-256 of n bytes as 64 lowercase hex characters and a NUL; 0 or -1. */
int sg_sha256_hex(char out[SG_CA_PIN_LEN + 1], const void *p, size_t n);
/* nbytes (<= 32) random bytes as 2 * nbytes lowercase hex characters and a NUL into out; 0, or
 * -1 when the random generator fails (out is then unusable). */
int sg_random_hex(char *out, size_t nbytes);
/* 1 if the n bytes of s are all lowercase hex digits. */
int sg_is_lowerhex(const char *s, size_t n);

/* Writes a certificate (0644) or a private key (0600) as PEM, atomically. */
int sg_pem_write_cert(const char *path, X509 *cert, sg_err *err);
int sg_pem_write_key(const char *path, EVP_PKEY *key, sg_err *err);

#endif
