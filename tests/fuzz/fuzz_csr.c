/*
 * fuzz_csr.c - libFuzzer target for what the hub does with the CSR bytes of a JOIN or a RENEW
 * (server/enroll.c: sg_enroll_join and sg_enroll_renew; ca.c behind them): read the PEM, check
 * the self-signature and the key type, and sign a region certificate.
 *
 * The first byte picks the message (even: RENEW, odd: JOIN with a valid open invite, which the
 * harness keeps in stock); the rest is the CSR, as the frame's pem field delivers it. The hub's
 * CA is made once; the store is a real database in a private temporary directory, recreated
 * every STORE_RESET_RUNS inputs.
 *
 * Besides what the sanitizers catch, these properties are checked and abort() when broken, so
 * the fuzzer reports the input (abort is this harness's; the hub never aborts on a CSR):
 *   1. a refused CSR is SG_EVALIDATE with a message (enroll.h), and changes nothing: no
 *      certificate recorded, the invite not spent, no transaction left open;
 *   2. whatever a CSR asks for (subject, extensions, CA rights, other names), the certificate
 *      the hub signs is ca.h's region profile: it carries the CSR's own public key, names the
 *      region alone (one DNS name), verifies against the CA as a client certificate, is no CA,
 *      and has exactly the six extensions the hub writes;
 *   3. an accepted CSR's key is EC or Ed25519, and its signature verifies (checked here again,
 *      independently of enroll.c);
 *   4. a success records one certificate and, for a JOIN, spends the invite.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sqlite3.h>

#include "ca.h"
#include "enroll.h"
#include "store.h"

#define STORE_RESET_RUNS 2000
#define REGION           "north"

#define FUZZ_NAME "fuzz_csr.c"
#include "fuzz_harness.h"

static sg_ca *ca;                                   /* the hub's CA, made once */
static char invite_secret[SG_TOKEN_SECRET_LEN + 1]; /* an open invite's secret, or "" */

static void ca_free(void)
{
    sg_ca_free(ca);
    ca = NULL;
}

/* The store, recreated every STORE_RESET_RUNS inputs (the invite goes with it). */
static sg_store *store(void)
{
    if (H.st != NULL && H.runs < STORE_RESET_RUNS)
        return H.st;
    harness_fresh_store();
    H.runs = 0;
    invite_secret[0] = '\0';
    return H.st;
}

/* Makes an open invite for REGION when there is none. */
static void stock_invite(sg_store *st)
{
    char expires[32];
    sg_token t;
    sg_err err = {0};

    if (invite_secret[0] != '\0')
        return;
    if (sg_invite_create(&t, expires, st, ca, REGION, 3600 * 1000, "hub.example:7400", &err) < 0) {
        fprintf(stderr, "%s: invite: %s\n", FUZZ_NAME, err.msg);
        abort();
    }
    memcpy(invite_secret, t.secret, sizeof(invite_secret));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    sg_err err = {0};

    (void)argc;
    (void)argv;
    if (sg_ca_create(&ca, "Fuzz Coalition CA", 30, &err) < 0) {
        fprintf(stderr, "%s: CA: %s\n", FUZZ_NAME, err.msg);
        abort();
    }
    atexit(ca_free);
    store();
    return 0;
}

/* One integer from SQL on the store. */
static int64_t count(sg_store *st, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    int64_t n = -1;

    require(sqlite3_prepare_v2(sg_store_db(st), sql, -1, &stmt, NULL) == SQLITE_OK);
    if (sqlite3_step(stmt) == SQLITE_ROW)
        n = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    require(n >= 0);
    return n;
}

/* Property 3: the CSR's public key, read and checked here (new reference). */
static EVP_PKEY *csr_pubkey(const uint8_t *pem, size_t len)
{
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    X509_REQ *req = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = req ? X509_REQ_get_pubkey(req) : NULL;

    require(k != NULL);
    require(X509_REQ_verify(req, k) == 1);
    require(EVP_PKEY_get_base_id(k) == EVP_PKEY_EC || EVP_PKEY_get_base_id(k) == EVP_PKEY_ED25519);
    X509_REQ_free(req);
    BIO_free(b);
    return k;
}

/* Property 2 for the certificate issued for the CSR in csr. */
static void check_cert(const char *pem, const uint8_t *csr, size_t csr_len)
{
    X509 *x = sg_cert_from_pem(pem, strlen(pem));
    EVP_PKEY *key = csr_pubkey(csr, csr_len);
    sg_err err = {0};

    require(x != NULL);
    require(sg_cert_check_region(x, key, REGION, sg_ca_cert(ca), &err) == 0);
    require(X509_check_ca(x) == 0);
    require(X509_get_ext_count(x) == 6);
    require(X509_get_extension_flags(x) & EXFLAG_XKUSAGE);
    require(X509_get_extended_key_usage(x) == XKU_SSL_CLIENT);
    require(X509_get_key_usage(x) == KU_DIGITAL_SIGNATURE);
    EVP_PKEY_free(key);
    X509_free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sg_store *st = store();
    const char *csr = size > 0 ? (const char *)data + 1 : "";
    size_t csr_len = size > 0 ? size - 1 : 0;
    int join = size > 0 && (data[0] & 1);
    int64_t certs0, used0;
    char *pem = NULL;
    sg_err err = {0};
    int rc;

    H.runs++;
    if (join)
        stock_invite(st);
    certs0 = count(st, "SELECT count(*) FROM sg_certs");
    used0 = count(st, "SELECT count(*) FROM sg_invites WHERE used_at IS NOT NULL");
    if (join)
        rc = sg_enroll_join(&pem, st, ca, REGION, invite_secret, strlen(invite_secret), csr,
                            csr_len, 30, &err);
    else
        rc = sg_enroll_renew(&pem, st, ca, REGION, csr, csr_len, 30, &err);
    require(sqlite3_get_autocommit(sg_store_db(st)) != 0);
    if (rc != 0) { /* property 1 */
        require(rc == SG_EVALIDATE && err.code == rc && err.msg[0] != '\0' && pem == NULL);
        require(count(st, "SELECT count(*) FROM sg_certs") == certs0);
        require(count(st, "SELECT count(*) FROM sg_invites WHERE used_at IS NOT NULL") == used0);
        ERR_clear_error();
        return 0;
    }
    require(pem != NULL);
    check_cert(pem, (const uint8_t *)csr, csr_len);                    /* properties 2 and 3 */
    require(count(st, "SELECT count(*) FROM sg_certs") == certs0 + 1); /* property 4 */
    require(count(st, "SELECT count(*) FROM sg_invites WHERE used_at IS NOT NULL") == used0 + join);
    if (join)
        invite_secret[0] = '\0'; /* spent */
    free(pem);
    ERR_clear_error();
    return 0;
}
