/*
 * auth.c - the hub's API tokens; see auth.h.
 *
 * Invariants: no secret is stored or logged (only SHA-256 hex); a lookup goes by the public id,
 * then the secret's hash is compared with CRYPTO_memcmp, so response time does not depend on how
 * much of a guessed secret is right; a revoked token stays listed (who had access, and when).
 */
#include "auth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <sqlite3.h>

#include "ca.h"
#include "store_int.h"

int sg_auth_create(json_t **out, sg_store *st, const char *name, const char *role, sg_err *err)
{
    char id[17], secret[65], hash[65], token[SG_AUTH_TOKEN_MAX + 1], now[32];
    sqlite3_stmt *stmt;
    size_t n = name ? strlen(name) : 0;
    int rc;

    *out = NULL;
    if (n == 0 || n > 100)
        return sg_err_set(err, SG_EVALIDATE, "name: 1 to 100 characters (who or what it is for)");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return sg_err_set(err, SG_EVALIDATE, "name: no control characters");
    if (role == NULL || (strcmp(role, "viewer") != 0 && strcmp(role, "admin") != 0))
        return sg_err_set(err, SG_EVALIDATE, "role: viewer or admin");
    if (sg_random_hex(id, 4) < 0 || sg_random_hex(secret, 16) < 0)
        return sg_err_set(err, SG_ETLS, "no randomness for a token");
    if (sg_sha256_hex(hash, secret, 32) < 0)
        return sg_err_set(err, SG_ETLS, "cannot hash the token");
    snprintf(token, sizeof(token), "sgt_%s_%s", id, secret);
    OPENSSL_cleanse(secret, sizeof(secret));
    sg_now_iso(now);
    rc = store_stmt(st,
                    "INSERT INTO sg_tokens (id, name, role, secret_hash, created_at) VALUES "
                    "(?, ?, ?, ?, ?)",
                    &stmt, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(stmt, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 2, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 3, role, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 4, hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 5, now, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) {
        OPENSSL_cleanse(token, sizeof(token));
        return store_db_error(st, rc, err, "sg_tokens");
    }
    *out = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", id, "name", name, "role", role,
                     "created_at", now, "token", token);
    OPENSSL_cleanse(token, sizeof(token));
    return *out ? 0 : sg_err_set(err, SG_ENOMEM, "out of memory");
}

int sg_auth_list(json_t **out, sg_store *st, sg_err *err)
{
    sqlite3_stmt *stmt;
    json_t *arr = json_array();
    int rc;

    *out = NULL;
    if (arr == NULL)
        return sg_err_set(err, SG_ENOMEM, "out of memory");
    rc = store_stmt(st,
                    "SELECT id, name, role, created_at, last_used_at, revoked_at FROM sg_tokens "
                    "ORDER BY created_at DESC, id",
                    &stmt, err);
    if (rc < 0) {
        json_decref(arr);
        return rc;
    }
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?}", "id", sqlite3_column_text(stmt, 0),
                           "name", sqlite3_column_text(stmt, 1), "role",
                           sqlite3_column_text(stmt, 2), "created_at", sqlite3_column_text(stmt, 3),
                           "last_used_at", (const char *)sqlite3_column_text(stmt, 4), "revoked_at",
                           (const char *)sqlite3_column_text(stmt, 5)));
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) {
        json_decref(arr);
        return store_db_error(st, rc, err, "sg_tokens");
    }
    *out = arr;
    return 0;
}

int sg_auth_revoke(sg_store *st, const char *id, sg_err *err)
{
    sqlite3_stmt *stmt;
    char now[32];
    int rc;

    if (id == NULL || strlen(id) != 8 || !sg_is_lowerhex(id, 8))
        return sg_err_set(err, SG_ENOTFOUND, "no token with id '%.16s'", id ? id : "");
    sg_now_iso(now);
    rc = store_stmt(st, "UPDATE sg_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?",
                    &stmt, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(stmt, 1, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 2, id, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE)
        return store_db_error(st, rc, err, "sg_tokens");
    if (sqlite3_changes(sg_store_db(st)) == 0)
        return sg_err_set(err, SG_ENOTFOUND, "no token with id '%s'", id);
    return 0;
}

int sg_auth_check(sg_role *out, sg_store *st, const char *authorization, sg_err *err)
{
    const char *t;
    char id[9], hash[65], now[32];
    sqlite3_stmt *stmt;
    int rc;

    *out = SG_ROLE_NONE;
    if (authorization == NULL || authorization[0] == '\0')
        return sg_err_set(err, SG_EAUTH,
                          "this API needs a token: Authorization: Bearer sgt_... (sangam hub "
                          "token create)");
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return sg_err_set(err, SG_EAUTH, "Authorization: expected 'Bearer TOKEN'");
    t = authorization + 7;
    while (*t == ' ')
        t++;
    if (strlen(t) != 45 || memcmp(t, "sgt_", 4) != 0 || t[12] != '_' || !sg_is_lowerhex(t + 4, 8) ||
        !sg_is_lowerhex(t + 13, 32))
        return sg_err_set(err, SG_EAUTH, "not a Sangam token");
    memcpy(id, t + 4, 8);
    id[8] = '\0';
    if (sg_sha256_hex(hash, t + 13, 32) < 0)
        return sg_err_set(err, SG_ETLS, "cannot hash the token");
    rc = store_stmt(st, "SELECT role, secret_hash, revoked_at FROM sg_tokens WHERE id = ?", &stmt,
                    err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(stmt, 1, id, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW || CRYPTO_memcmp(sqlite3_column_text(stmt, 1), hash, 64) != 0) {
        sqlite3_reset(stmt);
        return sg_err_set(err, SG_EAUTH, "unknown token");
    }
    if (sqlite3_column_type(stmt, 2) != SQLITE_NULL) {
        rc = sg_err_set(err, SG_EAUTH, "this token was revoked at %s",
                        (const char *)sqlite3_column_text(stmt, 2));
        sqlite3_reset(stmt);
        return rc;
    }
    *out = strcmp((const char *)sqlite3_column_text(stmt, 0), "admin") == 0 ? SG_ROLE_ADMIN
                                                                            : SG_ROLE_VIEWER;
    sqlite3_reset(stmt);
    /* When it was last used, at most once a minute per token (a read-heavy dashboard must not
     * turn every request into a write). */
    sg_now_iso(now);
    if (store_stmt(st,
                   "UPDATE sg_tokens SET last_used_at = ?1 WHERE id = ?2 AND (last_used_at IS "
                   "NULL OR substr(last_used_at, 1, 16) < substr(?1, 1, 16))",
                   &stmt, NULL) == 0) {
        sqlite3_bind_text(stmt, 1, now, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(stmt, 2, id, -1, SQLITE_TRANSIENT);
        sqlite3_step(stmt);
        sqlite3_reset(stmt);
    }
    return 0;
}
