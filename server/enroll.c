/*
 * enroll.c - invites, join tokens, issuing and revoking region certificates; see enroll.h.
 *
 * Invariants: a secret is never stored or logged, only its SHA-256; an invite buys at most one
 * certificate (spent by an UPDATE ... WHERE used_at IS NULL in the transaction that records the
 * certificate); a revoked region gets neither invites nor renewals. Times are UTC ISO 8601
 * strings of one fixed format, so they compare as text.
 */
#include "enroll.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sqlite3.h>

#include "store_int.h"

/* ms since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" (sg_now_iso's format). */
static void iso_at(char out[32], int64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + 19, 13, ".%03dZ", (int)(ms % 1000));
}

int sg_token_parse(sg_token *out, const char *s, size_t len, sg_err *err)
{
    const char *p, *end, *dot;
    size_t n;

    memset(out, 0, sizeof(*out));
    while (len > 0 &&
           (s[len - 1] == ' ' || s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == '\t'))
        len--;
    while (len > 0 && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) {
        s++;
        len--;
    }
    if (len > SG_TOKEN_MAX)
        return sg_err_set(err, SG_EFORMAT, "join token: longer than %d bytes", SG_TOKEN_MAX);
    end = s + len;
    if (len < 8 || memcmp(s, "sangam1.", 8) != 0)
        return sg_err_set(err, SG_EFORMAT,
                          "join token: does not start with 'sangam1.' (copy the whole line that "
                          "'sangam hub invite' printed)");
    p = s + 8;
    /* region */
    dot = memchr(p, '.', (size_t)(end - p));
    n = dot ? (size_t)(dot - p) : 0;
    if (dot == NULL || n == 0 || n > SG_REGION_MAX || !sg_region_id_valid(p, n) ||
        (n == 3 && memcmp(p, "hub", 3) == 0))
        return sg_err_set(err, SG_EFORMAT, "join token: the region part is not a region id");
    memcpy(out->region, p, n);
    p = dot + 1;
    /* secret */
    dot = memchr(p, '.', (size_t)(end - p));
    n = dot ? (size_t)(dot - p) : 0;
    if (dot == NULL || n != SG_TOKEN_SECRET_LEN || !sg_is_lowerhex(p, n))
        return sg_err_set(err, SG_EFORMAT,
                          "join token: the secret part is not %d lowercase hex characters",
                          SG_TOKEN_SECRET_LEN);
    memcpy(out->secret, p, n);
    p = dot + 1;
    /* pin */
    dot = memchr(p, '.', (size_t)(end - p));
    n = dot ? (size_t)(dot - p) : 0;
    if (dot == NULL || n != SG_CA_PIN_LEN || !sg_is_lowerhex(p, n))
        return sg_err_set(err, SG_EFORMAT,
                          "join token: the CA pin part is not %d lowercase hex characters",
                          SG_CA_PIN_LEN);
    memcpy(out->pin, p, n);
    p = dot + 1;
    /* host:port, the rest */
    n = (size_t)(end - p);
    if (n == 0 || n >= sizeof(out->hub) || memchr(p, ':', n) == NULL)
        return sg_err_set(err, SG_EFORMAT, "join token: the hub address part is not host:port");
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
              (p[i] >= '0' && p[i] <= '9') || p[i] == '.' || p[i] == '-' || p[i] == ':' ||
              p[i] == '[' || p[i] == ']'))
            return sg_err_set(err, SG_EFORMAT,
                              "join token: the hub address part has a character a host:port "
                              "cannot have");
    memcpy(out->hub, p, n);
    return 0;
}

int sg_token_format(char *out, size_t cap, const sg_token *t)
{
    int n = snprintf(out, cap, "sangam1.%s.%s.%s.%s", t->region, t->secret, t->pin, t->hub);
    return n < 0 || (size_t)n >= cap ? SG_ETOOBIG : 0;
}

/* Region's revocation time into at (if not NULL): 1 revoked, 0 not, <0 error. */
int sg_enroll_revoked(sg_store *st, const char *region, char at[32])
{
    sqlite3_stmt *stmt;
    int rc = store_stmt(st, "SELECT revoked_at FROM sg_regions WHERE region = ?", &stmt, NULL);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(stmt, 1, region, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW && sqlite3_column_type(stmt, 0) != SQLITE_NULL) {
        if (at != NULL)
            snprintf(at, 32, "%s", (const char *)sqlite3_column_text(stmt, 0));
        sqlite3_reset(stmt);
        return 1;
    }
    sqlite3_reset(stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : SG_EDB;
}

int sg_invite_create(sg_token *out, char expires_at[32], sg_store *st, const sg_ca *ca,
                     const char *region, int64_t ttl_ms, const char *hub_addr, sg_err *err)
{
    char hash[65], now[32], at[32];
    sqlite3_stmt *stmt;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!sg_region_id_valid(region, strlen(region)) || strcmp(region, "hub") == 0)
        return sg_err_set(err, SG_EVALIDATE,
                          "region: '%.64s' is not a region id (1..63 of [a-z0-9-], not 'hub')",
                          region);
    if (ttl_ms < 60 * 1000 || ttl_ms > 30LL * 24 * 3600 * 1000)
        return sg_err_set(err, SG_EVALIDATE, "expires: between 1 minute and 30 days");
    if (hub_addr == NULL || hub_addr[0] == '\0' || strlen(hub_addr) >= sizeof(out->hub))
        return sg_err_set(err, SG_ECONFIG,
                          "no address to give the new region: set [listen] public in the hub's "
                          "config, or pass an address");
    {
        /* The token must parse back at the new office: the address in the characters a token
         * allows, the whole line within SG_TOKEN_MAX. Checked with a stand-in secret and pin of
         * the right length, before the invite exists. */
        char probe[SG_TOKEN_MAX + 2];
        sg_token t;
        int n = snprintf(probe, sizeof(probe), "sangam1.%s.%0*d.%0*d.%s", region,
                         SG_TOKEN_SECRET_LEN, 0, SG_CA_PIN_LEN, 0, hub_addr);
        if (n < 0 || (size_t)n >= sizeof(probe) || sg_token_parse(&t, probe, (size_t)n, NULL) < 0)
            return sg_err_set(err, SG_EVALIDATE,
                              "address: '%.64s' cannot go into a join token (host:port of "
                              "letters, digits, '.', '-' and [v6], the token at most %d bytes)",
                              hub_addr, SG_TOKEN_MAX);
    }
    rc = sg_enroll_revoked(st, region, at);
    if (rc < 0)
        return sg_err_set(err, SG_EDB, "cannot read region %s", region);
    if (rc == 1)
        return sg_err_set(err, SG_EAUTH, "region %s was revoked at %s: it gets no invite", region,
                          at);
    if (sg_random_hex(out->secret, SG_TOKEN_SECRET_LEN / 2) < 0)
        return sg_err_set(err, SG_ETLS, "no randomness for a secret");
    if (sg_sha256_hex(hash, out->secret, SG_TOKEN_SECRET_LEN) < 0 ||
        sg_cert_pin(out->pin, sg_ca_cert(ca), err) < 0)
        return sg_err_set(err, SG_ETLS, "cannot hash the secret or the CA key");
    snprintf(out->region, sizeof(out->region), "%s", region);
    snprintf(out->hub, sizeof(out->hub), "%s", hub_addr);
    sg_now_iso(now);
    iso_at(expires_at, (int64_t)sg_now_ms() + ttl_ms);
    rc = store_stmt(st,
                    "INSERT INTO sg_invites (region, secret_hash, created_at, expires_at) "
                    "VALUES (?, ?, ?, ?)",
                    &stmt, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(stmt, 1, region, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 2, hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 3, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 4, expires_at, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? 0 : store_db_error(st, rc, err, "sg_invites");
}

int sg_invite_list(json_t **out, sg_store *st, sg_err *err)
{
    sqlite3_stmt *stmt;
    char now[32];
    json_t *arr = json_array();
    int rc;

    *out = NULL;
    if (arr == NULL)
        return sg_err_set(err, SG_ENOMEM, "out of memory");
    rc = store_stmt(st,
                    "SELECT region, created_at, expires_at, used_at FROM sg_invites ORDER BY id "
                    "DESC LIMIT 1000",
                    &stmt, err);
    if (rc < 0) {
        json_decref(arr);
        return rc;
    }
    sg_now_iso(now);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *exp = (const char *)sqlite3_column_text(stmt, 2);
        const char *used = (const char *)sqlite3_column_text(stmt, 3);
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s?, s:s}", "region",
                                             sqlite3_column_text(stmt, 0), "created_at",
                                             sqlite3_column_text(stmt, 1), "expires_at", exp,
                                             "used_at", used, "state",
                                             used                    ? "used"
                                             : strcmp(exp, now) <= 0 ? "expired"
                                                                     : "open"));
    }
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) {
        json_decref(arr);
        return store_db_error(st, rc, err, "sg_invites");
    }
    *out = arr;
    return 0;
}

/* Reads and checks a PEM CSR: its self-signature must verify. *out_key is its public key (a
 * new reference). */
static int csr_key(EVP_PKEY **out_key, const char *pem, size_t len, sg_err *err)
{
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    X509_REQ *req = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = req ? X509_REQ_get_pubkey(req) : NULL;
    int rc = 0;

    *out_key = NULL;
    if (req == NULL || k == NULL)
        rc = sg_err_set(err, SG_EVALIDATE, "the certificate request is not a PEM CSR");
    else if (X509_REQ_verify(req, k) != 1)
        rc = sg_err_set(err, SG_EVALIDATE,
                        "the certificate request's signature does not verify with its key");
    else if (EVP_PKEY_get_base_id(k) != EVP_PKEY_EC && EVP_PKEY_get_base_id(k) != EVP_PKEY_ED25519)
        rc = sg_err_set(err, SG_EVALIDATE,
                        "the certificate request's key is not EC or Ed25519 (make it with "
                        "sangamd join)");
    ERR_clear_error();
    if (rc == 0)
        *out_key = k;
    else
        EVP_PKEY_free(k);
    X509_REQ_free(req);
    BIO_free(b);
    return rc;
}

/* out = lowercase hex SHA-256 of key's DER SubjectPublicKeyInfo (what an invite was spent on). */
static int key_sha256(char out[65], EVP_PKEY *key)
{
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(key, &der), rc;
    if (len <= 0)
        return -1;
    rc = sg_sha256_hex(out, der, (size_t)len);
    OPENSSL_free(der);
    return rc;
}

/* Issues the certificate for key and records it (in the caller's transaction); *out_pem. */
static int issue(char **out_pem, char serial_hex[80], sg_store *st, const sg_ca *ca, EVP_PKEY *key,
                 const char *region, int days, const char *reason, sg_err *err)
{
    X509 *x = NULL;
    BIGNUM *bn = NULL;
    char *hex = NULL, now[32], na[32];
    BIO *b = NULL;
    BUF_MEM *mem;
    sqlite3_stmt *stmt;
    struct tm tm;
    int rc;

    *out_pem = NULL;
    rc = sg_ca_issue(&x, ca, key, SG_CERT_REGION, region, days, err);
    if (rc < 0)
        return rc;
    bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    hex = bn ? BN_bn2hex(bn) : NULL;
    b = BIO_new(BIO_s_mem());
    if (hex == NULL || b == NULL || PEM_write_bio_X509(b, x) != 1 ||
        ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1) {
        rc = sg_err_set(err, SG_ENOMEM, "cannot encode the certificate");
        goto done;
    }
    snprintf(serial_hex, 80, "%s", hex);
    strftime(na, sizeof(na), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
    sg_now_iso(now);
    rc = store_stmt(st,
                    "INSERT INTO sg_certs (serial, region, not_after, issued_at, reason) "
                    "VALUES (?, ?, ?, ?, ?)",
                    &stmt, err);
    if (rc < 0)
        goto done;
    sqlite3_bind_text(stmt, 1, hex, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 2, region, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 3, na, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 4, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 5, reason, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) {
        rc = store_db_error(st, rc, err, "sg_certs");
        goto done;
    }
    BIO_get_mem_ptr(b, &mem);
    *out_pem = malloc(mem->length + 1);
    if (*out_pem == NULL) {
        rc = sg_err_set(err, SG_ENOMEM, "out of memory");
        goto done;
    }
    memcpy(*out_pem, mem->data, mem->length);
    (*out_pem)[mem->length] = '\0';
    rc = 0;
done:
    BIO_free(b);
    OPENSSL_free(hex);
    BN_free(bn);
    X509_free(x);
    return rc;
}

int sg_enroll_join(char **out_pem, sg_store *st, const sg_ca *ca, const char *region,
                   const char *secret, size_t secret_len, const char *csr_pem, size_t csr_len,
                   int cert_days, sg_err *err)
{
    EVP_PKEY *key = NULL;
    sqlite3_stmt *stmt;
    char hash[65], now[32], serial[80], inv_region[SG_REGION_MAX + 1], at[32];
    char used_at[32] = "", used_key[65] = "", expires[32] = "", key_hash[65];
    int64_t id = 0;
    int rc, retry = 0;

    *out_pem = NULL;
    if (secret_len != SG_TOKEN_SECRET_LEN || !sg_is_lowerhex(secret, secret_len))
        return sg_err_set(err, SG_EAUTH, "no such invite (check the token was copied whole)");
    if (sg_sha256_hex(hash, secret, secret_len) < 0)
        return sg_err_set(err, SG_ETLS, "cannot hash the secret");
    rc = sg_store_begin(st, err);
    if (rc < 0)
        return rc;
    rc = store_stmt(st,
                    "SELECT id, region, expires_at, used_at, used_key FROM sg_invites WHERE "
                    "secret_hash = ?",
                    &stmt, err);
    if (rc < 0)
        goto rollback;
    sqlite3_bind_text(stmt, 1, hash, -1, SQLITE_TRANSIENT);
    sg_now_iso(now);
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(stmt);
        rc = rc == SQLITE_DONE
                 ? sg_err_set(err, SG_EAUTH,
                              "no such invite (mistyped or tampered token? ask for a new one)")
                 : store_db_error(st, rc, err, "sg_invites");
        goto rollback;
    }
    id = sqlite3_column_int64(stmt, 0);
    snprintf(inv_region, sizeof(inv_region), "%s", (const char *)sqlite3_column_text(stmt, 1));
    snprintf(expires, sizeof(expires), "%s", (const char *)sqlite3_column_text(stmt, 2));
    if (sqlite3_column_type(stmt, 3) != SQLITE_NULL)
        snprintf(used_at, sizeof(used_at), "%s", (const char *)sqlite3_column_text(stmt, 3));
    if (sqlite3_column_type(stmt, 4) != SQLITE_NULL)
        snprintf(used_key, sizeof(used_key), "%s", (const char *)sqlite3_column_text(stmt, 4));
    sqlite3_reset(stmt);
    if (strcmp(inv_region, region) != 0)
        rc = sg_err_set(err, SG_EAUTH, "this invite is for region %s, not %s", inv_region, region);
    else if (strcmp(expires, now) <= 0)
        rc = sg_err_set(err, SG_EAUTH, "this invite expired at %s: ask for a new one", expires);
    else if (used_at[0] != '\0') {
        /* Spent. The same key asking again is the node whose CERT was lost on the way (the link
         * dropped after the hub committed): it kept its key (pki/join.key) and retries. It gets
         * a certificate again; nobody else holding the token does. */
        rc = csr_key(&key, csr_pem, csr_len, err);
        if (rc == 0 && (key_sha256(key_hash, key) < 0 || strcmp(key_hash, used_key) != 0))
            rc = sg_err_set(err, SG_EAUTH, "this invite was already used at %s: ask for a new one",
                            used_at);
        retry = rc == 0;
    }
    if (rc < 0)
        goto rollback;
    rc = sg_enroll_revoked(st, region, at);
    if (rc != 0) {
        rc = rc < 0 ? sg_err_set(err, SG_EDB, "cannot read region %s", region)
                    : sg_err_set(err, SG_EAUTH, "region %s was revoked at %s", region, at);
        goto rollback;
    }
    /* The invite holds (PROTOCOL.md 7.4: the version, the invite, then the CSR). */
    if (!retry) {
        rc = csr_key(&key, csr_pem, csr_len, err);
        if (rc < 0)
            goto rollback;
        if (key_sha256(key_hash, key) < 0) {
            rc = sg_err_set(err, SG_EVALIDATE, "cannot read the certificate request's key");
            goto rollback;
        }
        rc = store_stmt(st,
                        "UPDATE sg_invites SET used_at = ?, used_key = ? WHERE id = ? AND "
                        "used_at IS NULL",
                        &stmt, err);
        if (rc < 0)
            goto rollback;
        sqlite3_bind_text(stmt, 1, now, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 2, key_hash, -1, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 3, id);
        rc = sqlite3_step(stmt);
        sqlite3_reset(stmt);
        if (rc != SQLITE_DONE || sqlite3_changes(sg_store_db(st)) != 1) {
            rc = rc != SQLITE_DONE ? store_db_error(st, rc, err, "sg_invites")
                                   : sg_err_set(err, SG_EAUTH, "this invite was already used");
            goto rollback;
        }
    }
    rc = issue(out_pem, serial, st, ca, key, region, cert_days, "join", err);
    if (rc < 0)
        goto rollback;
    rc = store_stmt(st, "UPDATE sg_invites SET used_serial = ? WHERE id = ?", &stmt, err);
    if (rc < 0)
        goto rollback;
    sqlite3_bind_text(stmt, 1, serial, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 2, id);
    rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    rc = rc == SQLITE_DONE ? sg_store_commit(st, err) : store_db_error(st, rc, err, "sg_invites");
    if (rc < 0)
        goto rollback; /* a failed commit was rolled back already; this frees the PEM */
    goto free_key;
rollback:
    sg_store_rollback(st);
    free(*out_pem);
    *out_pem = NULL;
free_key:
    EVP_PKEY_free(key);
    return rc;
}

int sg_enroll_renew(char **out_pem, sg_store *st, const sg_ca *ca, const char *region,
                    const char *csr_pem, size_t csr_len, int cert_days, sg_err *err)
{
    EVP_PKEY *key = NULL;
    char serial[80], at[32];
    int rc;

    *out_pem = NULL;
    rc = sg_enroll_revoked(st, region, at);
    if (rc != 0)
        return rc < 0 ? sg_err_set(err, SG_EDB, "cannot read region %s", region)
                      : sg_err_set(err, SG_EAUTH, "region %s was revoked at %s", region, at);
    rc = csr_key(&key, csr_pem, csr_len, err);
    if (rc < 0)
        return rc;
    rc = sg_store_begin(st, err);
    if (rc == 0) {
        rc = issue(out_pem, serial, st, ca, key, region, cert_days, "renew", err);
        if (rc == 0)
            rc = sg_store_commit(st, err);
        else
            sg_store_rollback(st);
        if (rc < 0) {
            free(*out_pem);
            *out_pem = NULL;
        }
    }
    EVP_PKEY_free(key);
    return rc;
}

int sg_enroll_revoke(sg_store *st, const char *region, sg_err *err)
{
    static const char *const steps[] = {
        "INSERT OR IGNORE INTO sg_regions (region) VALUES (?1)",
        "UPDATE sg_regions SET revoked_at = coalesce(revoked_at, ?2) WHERE region = ?1",
        "UPDATE sg_certs SET revoked_at = ?2 WHERE region = ?1 AND revoked_at IS NULL",
        ("UPDATE sg_invites SET expires_at = ?2 WHERE region = ?1 AND used_at IS NULL AND "
         "expires_at > ?2"),
    };
    char now[32];
    int rc;

    if (!sg_region_id_valid(region, strlen(region)) || strcmp(region, "hub") == 0)
        return sg_err_set(err, SG_EVALIDATE, "'%.64s' is not a region id", region);
    sg_now_iso(now);
    rc = sg_store_begin(st, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        sqlite3_stmt *stmt;
        rc = store_stmt(st, steps[i], &stmt, err);
        if (rc < 0)
            goto rollback;
        sqlite3_bind_text(stmt, 1, region, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(stmt, 2, now, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(stmt);
        sqlite3_reset(stmt);
        if (rc != SQLITE_DONE) {
            rc = store_db_error(st, rc, err, "revoke");
            goto rollback;
        }
    }
    return sg_store_commit(st, err);
rollback:
    sg_store_rollback(st);
    return rc;
}
