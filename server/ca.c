/*
 * ca.c - the coalition CA: EC P-256 keys, certificates the hub issues, public-key pins.
 *
 * What a certificate may say is decided here from the kind and the name alone; nothing a
 * requester sends (a CSR's extensions, its subject) is copied into a certificate, so a CSR that
 * asks for CA rights or extra names gets a plain node certificate. See ca.h for the profile.
 */
#include "ca.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "sangam/records.h"
#include "tls.h"

/* notBefore this far in the past. A day, not minutes: a region's office machine whose clock is
 * hours slow (a dead RTC battery, no NTP over a link that is down) must still trust the hub's
 * certificate and the CA's, or it stops replicating exactly when its clock is wrong
 * (tests/integration/test_faults.sh, clock). The cost is nil: a certificate exists only from the
 * moment the hub issues it, so "valid a day before" lets no one use it earlier. */
#define BACKDATE_S 86400

struct sg_ca {
    X509 *cert;    /* the CA certificate */
    EVP_PKEY *key; /* its private key */
};

/* OpenSSL's earliest queued error as text (tls.c's), returning buf for use in a format. */
static const char *ossl_why(char *buf, size_t cap)
{
    tls_ossl_msg(buf, cap);
    return buf;
}

int sg_key_new(EVP_PKEY **out, sg_err *err)
{
    char why[256];
    *out = EVP_EC_gen("P-256");
    if (*out == NULL)
        return sg_err_set(err, SG_ETLS, "cannot make an EC P-256 key: %s",
                          ossl_why(why, sizeof(why)));
    return 0;
}

/* Adds extension nid with value in OpenSSL's config syntax, issuer/subject for key ids. */
static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    int ok;
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL)
        return -1;
    ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -1;
}

/* A new certificate for pub, subject "O=Sangam coalition, CN=cn", valid from BACKDATE_S ago
 * until days from now, with a random 127-bit serial; not yet signed, no extensions. */
static X509 *cert_begin(EVP_PKEY *pub, const char *cn, int days)
{
    unsigned char rnd[16];
    BIGNUM *bn = NULL;
    X509 *x = X509_new();
    X509_NAME *subj;

    if (x == NULL || RAND_bytes(rnd, sizeof(rnd)) != 1)
        goto fail;
    rnd[0] &= 0x7f; /* positive */
    rnd[0] |= 0x40; /* and at least 127 bits, so its DER length does not vary */
    bn = BN_bin2bn(rnd, sizeof(rnd), NULL);
    if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL ||
        X509_set_version(x, 2) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_S) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400) == NULL ||
        X509_set_pubkey(x, pub) != 1)
        goto fail;
    subj = X509_get_subject_name(x);
    if (X509_NAME_add_entry_by_txt(subj, "O", MBSTRING_UTF8,
                                   (const unsigned char *)"Sangam coalition", -1, -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                   0) != 1)
        goto fail;
    BN_free(bn);
    return x;
fail:
    BN_free(bn);
    X509_free(x);
    return NULL;
}

int sg_ca_create(sg_ca **out, const char *cn, int days, sg_err *err)
{
    char why[256];
    sg_ca *ca = calloc(1, sizeof(*ca));
    int rc;

    *out = NULL;
    if (ca == NULL)
        return sg_err_set(err, SG_ENOMEM, "out of memory");
    if ((rc = sg_key_new(&ca->key, err)) < 0)
        goto fail;
    ca->cert = cert_begin(ca->key, cn, days);
    if (ca->cert == NULL || X509_set_issuer_name(ca->cert, X509_get_subject_name(ca->cert)) != 1 ||
        add_ext(ca->cert, ca->cert, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") < 0 ||
        add_ext(ca->cert, ca->cert, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
        add_ext(ca->cert, ca->cert, NID_subject_key_identifier, "hash") < 0 ||
        X509_sign(ca->cert, ca->key, EVP_sha256()) <= 0) {
        rc = sg_err_set(err, SG_ETLS, "cannot make the CA certificate: %s",
                        ossl_why(why, sizeof(why)));
        goto fail;
    }
    *out = ca;
    return 0;
fail:
    sg_ca_free(ca);
    return rc;
}

/* Refuses to prompt for a passphrase: an encrypted key is a configuration error. */
static int no_password_cb(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

int sg_ca_load(sg_ca **out, const char *cert_file, const char *key_file, sg_err *err)
{
    char why[256];
    sg_ca *ca = calloc(1, sizeof(*ca));
    FILE *f = NULL;
    int rc = 0;

    *out = NULL;
    if (ca == NULL)
        return sg_err_set(err, SG_ENOMEM, "out of memory");
    if ((f = fopen(cert_file, "r")) == NULL) {
        rc = sg_err_set(err, SG_ECONFIG, "CA certificate %s: cannot read: %s", cert_file,
                        strerror(errno));
        goto fail;
    }
    ca->cert = PEM_read_X509(f, NULL, no_password_cb, NULL);
    fclose(f);
    if (ca->cert == NULL) {
        rc = sg_err_set(err, SG_ECONFIG, "CA certificate %s: not a PEM certificate: %s", cert_file,
                        ossl_why(why, sizeof(why)));
        goto fail;
    }
    if (X509_check_ca(ca->cert) == 0) {
        rc = sg_err_set(err, SG_ECONFIG, "CA certificate %s: not a CA certificate", cert_file);
        goto fail;
    }
    if ((f = fopen(key_file, "r")) == NULL) {
        rc = sg_err_set(err, SG_ECONFIG, "CA key %s: cannot read: %s", key_file, strerror(errno));
        goto fail;
    }
    ca->key = PEM_read_PrivateKey(f, NULL, no_password_cb, NULL);
    fclose(f);
    if (ca->key == NULL) {
        rc = sg_err_set(err, SG_ECONFIG, "CA key %s: not an unencrypted PEM private key: %s",
                        key_file, ossl_why(why, sizeof(why)));
        goto fail;
    }
    if (X509_check_private_key(ca->cert, ca->key) != 1) {
        ERR_clear_error();
        rc = sg_err_set(err, SG_ECONFIG, "CA key %s does not match CA certificate %s", key_file,
                        cert_file);
        goto fail;
    }
    *out = ca;
    return 0;
fail:
    sg_ca_free(ca);
    return rc;
}

int sg_ca_save(const sg_ca *ca, const char *cert_file, const char *key_file, sg_err *err)
{
    int rc = sg_pem_write_key(key_file, ca->key, err);
    return rc < 0 ? rc : sg_pem_write_cert(cert_file, ca->cert, err);
}

void sg_ca_free(sg_ca *ca)
{
    if (ca == NULL)
        return;
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    free(ca);
}

X509 *sg_ca_cert(const sg_ca *ca)
{
    return ca->cert;
}

/* Appends ",DNS:n" or ",IP:n" for each comma-separated name of extra to san (cap bytes). */
static int san_extra(char *san, size_t cap, const char *extra, sg_err *err)
{
    const char *p = extra;
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p), used = strlen(san);
        unsigned char ipbuf[16];
        char name[256];
        int is_ip;
        if (n == 0 || n >= sizeof(name))
            return sg_err_set(err, SG_EINVAL, "hub certificate: name '%.*s' is empty or too long",
                              (int)(n > 64 ? 64 : n), p);
        memcpy(name, p, n);
        name[n] = '\0';
        for (size_t i = 0; i < n; i++)
            if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
                  (name[i] >= '0' && name[i] <= '9') || name[i] == '-' || name[i] == '.' ||
                  name[i] == ':'))
                return sg_err_set(err, SG_EINVAL, "hub certificate: '%s' is not a host name or IP",
                                  name);
        is_ip = inet_pton(AF_INET, name, ipbuf) == 1 || inet_pton(AF_INET6, name, ipbuf) == 1;
        if (snprintf(san + used, cap - used, ",%s:%s", is_ip ? "IP" : "DNS", name) >=
            (int)(cap - used))
            return sg_err_set(err, SG_EINVAL, "hub certificate: too many names");
        p = end ? end + 1 : NULL;
    }
    return 0;
}

int sg_ca_issue(X509 **out, const sg_ca *ca, EVP_PKEY *pub, sg_cert_kind kind, const char *name,
                int days, sg_err *err)
{
    char why[256], san[1024];
    X509 *x = NULL;
    int rc;

    *out = NULL;
    if (kind == SG_CERT_REGION) {
        if (name == NULL || !sg_region_id_valid(name, strlen(name)) || strcmp(name, "hub") == 0)
            return sg_err_set(err, SG_EINVAL,
                              "'%s' is not a region id (1..63 of [a-z0-9-], not 'hub')",
                              name ? name : "");
        snprintf(san, sizeof(san), "DNS:%s", name);
    } else {
        snprintf(san, sizeof(san), "DNS:hub");
        if ((rc = san_extra(san, sizeof(san), name, err)) < 0)
            return rc;
    }
    if (days < 1 || days > 3650)
        return sg_err_set(err, SG_EINVAL, "validity %d days: expected 1..3650", days);
    x = cert_begin(pub, kind == SG_CERT_REGION ? name : "hub", days);
    if (x == NULL || X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1 ||
        add_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        add_ext(x, ca->cert, NID_key_usage, "critical,digitalSignature") < 0 ||
        add_ext(x, ca->cert, NID_ext_key_usage,
                kind == SG_CERT_REGION ? "clientAuth" : "serverAuth") < 0 ||
        add_ext(x, ca->cert, NID_subject_alt_name, san) < 0 ||
        add_ext(x, ca->cert, NID_subject_key_identifier, "hash") < 0 ||
        add_ext(x, ca->cert, NID_authority_key_identifier, "keyid") < 0 ||
        X509_sign(x, ca->key, EVP_sha256()) <= 0) {
        X509_free(x);
        return sg_err_set(err, SG_ETLS, "cannot issue a certificate for '%s': %s",
                          kind == SG_CERT_REGION ? name : "hub", ossl_why(why, sizeof(why)));
    }
    *out = x;
    return 0;
}

int sg_sha256_hex(char out[SG_CA_PIN_LEN + 1], const void *p, size_t n)
{
    unsigned char md[32];
    unsigned int len = 0;
    if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32)
        return -1;
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int sg_random_hex(char *out, size_t nbytes)
{
    unsigned char r[32];
    if (nbytes > sizeof(r) || RAND_bytes(r, (int)nbytes) != 1)
        return -1;
    for (size_t i = 0; i < nbytes; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    OPENSSL_cleanse(r, sizeof(r));
    return 0;
}

int sg_is_lowerhex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int sg_cert_pin(char *out, X509 *cert, sg_err *err)
{
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(X509_get0_pubkey(cert), &der), rc;
    if (len <= 0)
        return sg_err_set(err, SG_ETLS, "cannot encode the certificate's public key");
    rc = sg_sha256_hex(out, der, (size_t)len);
    OPENSSL_free(der);
    return rc < 0 ? sg_err_set(err, SG_ETLS, "cannot hash the certificate's public key") : 0;
}

/* Writes a PEM file atomically: path.tmp created with mode, written, fsynced, renamed. */
static int pem_write(const char *path, mode_t mode, X509 *cert, EVP_PKEY *key, sg_err *err)
{
    char tmp[4096], why[256];
    FILE *f;
    int fd, ok;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return sg_err_set(err, SG_EINVAL, "%s: path too long", path);
    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return sg_err_set(err, SG_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        unlink(tmp);
        return sg_err_set(err, SG_EIO, "%s: %s", tmp, strerror(errno));
    }
    ok = cert ? PEM_write_X509(f, cert) : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    if (ok != 1 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        unlink(tmp);
        return sg_err_set(err, SG_EIO, "%s: cannot write: %s", path,
                          ok != 1 ? ossl_why(why, sizeof(why)) : strerror(errno));
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return sg_err_set(err, SG_EIO, "%s: cannot write: %s", path, strerror(errno));
    }
    return 0;
}

int sg_pem_write_cert(const char *path, X509 *cert, sg_err *err)
{
    return pem_write(path, 0644, cert, NULL, err);
}

int sg_pem_write_key(const char *path, EVP_PKEY *key, sg_err *err)
{
    return pem_write(path, 0600, NULL, key, err);
}

char *sg_cert_to_pem(X509 *cert)
{
    BIO *b = BIO_new(BIO_s_mem());
    BUF_MEM *mem = NULL;
    char *out = NULL;
    if (b != NULL && PEM_write_bio_X509(b, cert) == 1 && BIO_get_mem_ptr(b, &mem) == 1 &&
        (out = malloc(mem->length + 1)) != NULL) {
        memcpy(out, mem->data, mem->length);
        out[mem->length] = '\0';
    }
    BIO_free(b);
    return out;
}

int sg_key_load(EVP_PKEY **out, const char *path, sg_err *err)
{
    char why[256];
    FILE *f = fopen(path, "r");
    *out = NULL;
    if (f == NULL)
        return sg_err_set(err, SG_ECONFIG, "key %s: cannot read: %s", path, strerror(errno));
    *out = PEM_read_PrivateKey(f, NULL, no_password_cb, NULL);
    fclose(f);
    if (*out == NULL)
        return sg_err_set(err, SG_ECONFIG, "key %s: not an unencrypted PEM private key: %s", path,
                          ossl_why(why, sizeof(why)));
    return 0;
}

char *sg_csr_pem(EVP_PKEY *key, const char *cn)
{
    X509_REQ *req = X509_REQ_new();
    BIO *b = BIO_new(BIO_s_mem());
    BUF_MEM *mem = NULL;
    char *pem = NULL;
    if (req != NULL && b != NULL && X509_REQ_set_version(req, 0) == 1 &&
        X509_REQ_set_pubkey(req, key) == 1 &&
        X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
                                   (const unsigned char *)cn, -1, -1, 0) == 1 &&
        X509_REQ_sign(req, key, EVP_sha256()) > 0 && PEM_write_bio_X509_REQ(b, req) == 1 &&
        BIO_get_mem_ptr(b, &mem) == 1 && (pem = malloc(mem->length + 1)) != NULL) {
        memcpy(pem, mem->data, mem->length);
        pem[mem->length] = '\0';
    }
    ERR_clear_error();
    BIO_free(b);
    X509_REQ_free(req);
    return pem;
}

X509 *sg_cert_from_pem(const char *pem, size_t len)
{
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, no_password_cb, NULL) : NULL;
    ERR_clear_error();
    BIO_free(b);
    return x;
}

int sg_cert_file_not_after(int64_t *out, const char *path, sg_err *err)
{
    FILE *f = fopen(path, "r");
    X509 *x = f ? PEM_read_X509(f, NULL, no_password_cb, NULL) : NULL;
    struct tm tm;
    int rc = 0;
    if (f != NULL)
        fclose(f);
    ERR_clear_error();
    if (x == NULL || ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
        rc = sg_err_set(err, SG_ECONFIG, "certificate %s: cannot read it", path);
    else
        *out = (int64_t)timegm(&tm);
    X509_free(x);
    return rc;
}

int sg_cert_check_region(X509 *cert, EVP_PKEY *key, const char *region, X509 *ca, sg_err *err)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    const GENERAL_NAME *g =
        gens && sk_GENERAL_NAME_num(gens) == 1 ? sk_GENERAL_NAME_value(gens, 0) : NULL;
    int rc = 0;

    if (X509_check_private_key(cert, key) != 1)
        rc = sg_err_set(err, SG_EAUTH, "the certificate is not for this node's key");
    else if (g == NULL || g->type != GEN_DNS ||
             strcmp((const char *)ASN1_STRING_get0_data(g->d.dNSName), region) != 0)
        rc = sg_err_set(err, SG_EAUTH, "the certificate does not name region %s alone", region);
    else if (store == NULL || ctx == NULL || X509_STORE_add_cert(store, ca) != 1 ||
             X509_STORE_CTX_init(ctx, store, cert, NULL) != 1 ||
             X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1 ||
             X509_verify_cert(ctx) != 1)
        rc = sg_err_set(err, SG_EAUTH, "the certificate does not verify against the CA: %s",
                        ctx ? X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx))
                            : "out of memory");
    ERR_clear_error();
    GENERAL_NAMES_free(gens);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return rc;
}
