/*
 * enroll.h - how a region joins, renews and is cut off: invites, join tokens, the certificates
 * the hub issues, revocation. The hub side only; no I/O (hub.c carries the messages, api.c the
 * operator's requests, join.c the joining node's side).
 *
 * The trust flow, after kubeadm's join: the operator asks the hub for an invite for one region;
 * the hub makes a random 128-bit secret, keeps only its SHA-256, and prints one line - the join
 * token - holding the region, the secret, the SHA-256 pin of the coalition CA's public key and
 * the hub's address. The new office runs `sangamd join TOKEN`: it makes its key locally, trusts
 * the hub only if the hub's chain holds a CA with that pin, and sends the secret with a CSR. The
 * hub spends the invite (once: the update that marks it used is the only way to a certificate)
 * and signs the CSR's public key into a region certificate (ca.h's profile: whatever the CSR
 * asked for, the certificate names that region only and has no CA rights).
 *
 * Token text: sangam1.<region>.<secret: 32 lowercase hex>.<pin: 64 lowercase hex>.<host:port>
 * (the address last, as it may hold dots and colons).
 */
#ifndef SANGAM_ENROLL_H
#define SANGAM_ENROLL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ca.h"
#include "sangam/error.h"
#include "sangam/records.h"
#include "store.h"

#define SG_TOKEN_SECRET_LEN 32  /* hex characters (128 bits) */
#define SG_TOKEN_MAX        400 /* bytes of a token's text, at most */

typedef struct sg_token {
    char region[SG_REGION_MAX + 1];
    char secret[SG_TOKEN_SECRET_LEN + 1];
    char pin[SG_CA_PIN_LEN + 1];
    char hub[256]; /* host:port */
} sg_token;

/* Parses a token (len bytes, surrounding white space allowed). SG_EFORMAT with a message that
 * names the part that is wrong. */
int sg_token_parse(sg_token *out, const char *s, size_t len, sg_err *err);
/* Writes t as text into out (cap bytes, SG_TOKEN_MAX + 1 is enough). */
int sg_token_format(char *out, size_t cap, const sg_token *t);

/* Hub: makes an invite for region, valid for ttl_ms; *out is the token to give the office.
 * hub_addr is the address the office will dial; ca is the hub's CA (for the pin). A revoked
 * region gets no invite (SG_EAUTH). */
int sg_invite_create(sg_token *out, char expires_at[32], sg_store *st, const sg_ca *ca,
                     const char *region, int64_t ttl_ms, const char *hub_addr, sg_err *err);
/* Hub: the invites, newest first: [{"region", "created_at", "expires_at", "state"}] where state
 * is "open", "used" or "expired". No secrets. */
int sg_invite_list(json_t **out, sg_store *st, sg_err *err);

/* Hub: spends the invite for region whose secret is secret (secret_len bytes) and signs the
 * public key of csr_pem (a PEM CSR whose self-signature must verify) for cert_days. On success
 * *out_pem is the certificate as PEM (caller frees) and the invite is used, in one transaction.
 * SG_EAUTH with a message a person can act on: no such invite, used, expired, for another
 * region, region revoked. SG_EVALIDATE: the CSR cannot be read or its signature is wrong. */
int sg_enroll_join(char **out_pem, sg_store *st, const sg_ca *ca, const char *region,
                   const char *secret, size_t secret_len, const char *csr_pem, size_t csr_len,
                   int cert_days, sg_err *err);
/* Hub: a fresh certificate for a connected (authenticated, not revoked) region, from its CSR. */
int sg_enroll_renew(char **out_pem, sg_store *st, const sg_ca *ca, const char *region,
                    const char *csr_pem, size_t csr_len, int cert_days, sg_err *err);

/* Hub: revokes region: every later connection of it is refused; its data stays. Idempotent. */
int sg_enroll_revoke(sg_store *st, const char *region, sg_err *err);
/* 1 if region is revoked (with when into at, 32 bytes, if not NULL), 0 if not, <0 on error. */
int sg_enroll_revoked(sg_store *st, const char *region, char at[32]);

#endif
