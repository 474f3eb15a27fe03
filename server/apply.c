/*
 * apply.c - applying change batches at the hub, quarantine and snapshots, and the region's
 * outbox; see apply.h for the invariants.
 *
 * Values are checked against the record descriptors before any SQL runs (the same field checks
 * the API uses), so a hostile region learns only that its batch was refused, and the SQL text is
 * built from descriptor names alone. The database constraints then hold as for any write.
 */
#include "apply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sangam/records.h"
#include "store_int.h"

static const char *op_name(sg_op op)
{
    return op == SG_OP_INSERT ? "insert" : op == SG_OP_UPDATE ? "update" : "delete";
}

/* Copies a wire string into a NUL-terminated buffer (it was length-checked by the decoder). */
static void cstr(char *out, size_t cap, const char *s, uint32_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

static int is_time_col(const char *name, uint32_t len)
{
    return (len == 10 && memcmp(name, "created_at", 10) == 0) ||
           (len == 10 && memcmp(name, "updated_at", 10) == 0);
}

/* Checks one column of change c against rt; *out_f is the field (NULL for region and the
 * timestamps, whose canonical names are returned in *out_name). */
static int check_col(const sg_rectype *rt, const sg_col *col, const char *region,
                     const char **out_name, sg_err *err)
{
    const sg_field *f = sg_rectype_field(rt, col->name, (ptrdiff_t)col->name_len);

    if (f != NULL) {
        *out_name = f->name;
        if (col->v.type == SG_VAL_NIL)
            return (f->flags & SG_F_REQUIRED)
                       ? sg_err_set(err, SG_EREQUIRED, "%s: required, cannot be null", f->name)
                       : 0;
        if (f->type == SG_FT_INT)
            return col->v.type == SG_VAL_INT
                       ? sg_field_check_int(f, col->v.i, err)
                       : sg_err_set(err, SG_ETYPE, "%s: expected an integer", f->name);
        if (col->v.type != SG_VAL_STR)
            return sg_err_set(err, SG_ETYPE, "%s: expected a string", f->name);
        return sg_field_check_text(f, col->v.s, col->v.len, err);
    }
    if (col->name_len == 6 && memcmp(col->name, "region", 6) == 0) {
        *out_name = "region";
        if (col->v.type != SG_VAL_STR || col->v.len != strlen(region) ||
            memcmp(col->v.s, region, col->v.len) != 0)
            return sg_err_set(err, SG_EAUTH, "region: rows must be owned by '%s'", region);
        return 0;
    }
    if (is_time_col(col->name, col->name_len)) {
        *out_name = col->name[0] == 'c' ? "created_at" : "updated_at";
        if (col->v.type != SG_VAL_STR || col->v.len < 10 || col->v.len > 32)
            return sg_err_set(err, SG_ETYPE, "%s: expected a UTC timestamp string", *out_name);
        return 0;
    }
    return sg_err_set(err, SG_EUNKNOWN, "%s has no column '%.*s'", rt->table,
                      (int)(col->name_len > 64 ? 64 : col->name_len), col->name);
}

/* Binds without copying (SQLITE_STATIC): the value lives in the frame being applied, which
 * outlives the statement's step and reset. The same holds for every bind on the apply path. */
static void bind_value(sqlite3_stmt *stmt, int i, const sg_value *v)
{
    switch (v->type) {
    case SG_VAL_INT:
        sqlite3_bind_int64(stmt, i, v->i);
        break;
    case SG_VAL_STR:
        sqlite3_bind_text(stmt, i, v->s, (int)v->len, SQLITE_STATIC);
        break;
    default:
        sqlite3_bind_null(stmt, i);
    }
}

/* The owning region of row pk in rt into owner (""), 1 if the row exists, 0 if not. */
static int row_owner(sg_store *st, const sg_rectype *rt, const char *pk, char *owner, size_t cap,
                     sg_err *err)
{
    char sql[128];
    sqlite3_stmt *stmt;
    int rc;

    snprintf(sql, sizeof(sql), "SELECT region FROM %s WHERE id = ?", rt->table);
    rc = store_stmt(st, sql, &stmt, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(stmt, 1, pk, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        snprintf(owner, cap, "%s", (const char *)sqlite3_column_text(stmt, 0));
        sqlite3_reset(stmt);
        return 1;
    }
    sqlite3_reset(stmt);
    if (rc == SQLITE_DONE)
        return 0;
    return store_db_error(st, rc, err, rt->table);
}

/* Growing SQL text built from descriptor names. */
typedef struct sqlbuf {
    char p[4096];
    size_t len;
} sqlbuf;

static void sq(sqlbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->len + n < sizeof(b->p)) {
        memcpy(b->p + b->len, s, n + 1);
        b->len += n;
    }
}

/* Applies one checked change of region. names[i] is the canonical column name of c->cols[i].
 * Ownership is part of each statement (WHERE region = ...), so the common case costs one
 * statement; only when nothing matched does a lookup tell a missing row from another region's. */
static int apply_change(sg_store *st, const sg_rectype *rt, const char *region, const sg_change *c,
                        const char *pk, const char **names, int upsert, sg_err *err)
{
    sqlbuf b;
    sqlite3_stmt *stmt;
    char owner[SG_REGION_MAX + 1];
    int rc, n = 0, exists;

    b.len = 0;
    b.p[0] = '\0';
    if (c->op == SG_OP_DELETE) {
        sq(&b, "DELETE FROM ");
        sq(&b, rt->table);
        sq(&b, " WHERE id = ? AND region = ?");
    } else if (c->op == SG_OP_INSERT) {
        /* The common case, a new row, is a plain insert, as cheap as SQLite gets. On a key
         * conflict (a snapshot, a replayed re-creation) it becomes an upsert that touches only
         * this region's row: another region's row makes it change nothing. */
        sq(&b, "INSERT INTO ");
        sq(&b, rt->table);
        sq(&b, " (id");
        for (uint32_t i = 0; i < c->ncols; i++) {
            sq(&b, ", ");
            sq(&b, names[i]);
        }
        sq(&b, ") VALUES (?");
        for (uint32_t i = 0; i < c->ncols; i++)
            sq(&b, ", ?");
        sq(&b, ")");
        if (upsert) {
            sq(&b, " ON CONFLICT (id) DO UPDATE SET ");
            for (uint32_t i = 0; i < c->ncols; i++) {
                sq(&b, i ? ", " : "");
                sq(&b, names[i]);
                sq(&b, " = excluded.");
                sq(&b, names[i]);
            }
            sq(&b, " WHERE ");
            sq(&b, rt->table);
            sq(&b, ".region = excluded.region");
        }
    } else {
        sq(&b, "UPDATE ");
        sq(&b, rt->table);
        sq(&b, " SET ");
        for (uint32_t i = 0; i < c->ncols; i++) {
            sq(&b, i ? ", " : "");
            sq(&b, names[i]);
            sq(&b, " = ?");
        }
        sq(&b, " WHERE id = ? AND region = ?");
    }
    rc = store_stmt(st, b.p, &stmt, err);
    if (rc < 0)
        return rc;
    if (c->op != SG_OP_UPDATE)
        sqlite3_bind_text(stmt, ++n, pk, -1, SQLITE_STATIC);
    for (uint32_t i = 0; c->op != SG_OP_DELETE && i < c->ncols; i++)
        bind_value(stmt, ++n, &c->cols[i].v);
    if (c->op == SG_OP_UPDATE)
        sqlite3_bind_text(stmt, ++n, pk, -1, SQLITE_STATIC);
    if (c->op != SG_OP_INSERT)
        sqlite3_bind_text(stmt, ++n, region, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE) {
        int ext = sqlite3_extended_errcode(sg_store_db(st));
        sqlite3_reset(stmt);
        /* The row exists already (a re-creation, a replay after a snapshot): upsert it, which
         * also settles whose row it is. */
        if (c->op == SG_OP_INSERT && !upsert && ext == SQLITE_CONSTRAINT_PRIMARYKEY)
            return apply_change(st, rt, region, c, pk, names, 1, err);
        return store_db_error(st, rc, err, rt->table);
    }
    sqlite3_reset(stmt);
    if (sqlite3_changes(sg_store_db(st)) > 0)
        return 0;

    /* Nothing matched: whose row is it? */
    exists = row_owner(st, rt, pk, owner, sizeof(owner), err);
    if (exists < 0)
        return exists;
    if (exists && strcmp(owner, region) != 0)
        return sg_err_set(err, SG_EAUTH, "%s %s is owned by region '%s', not '%s'", rt->singular,
                          pk, owner, region);
    if (c->op == SG_OP_UPDATE)
        return sg_err_set(err, SG_EREFERENCE, "update of a row the hub does not have");
    return 0; /* a delete of a row already gone: deleting is idempotent */
}

/* Records applied change c of region in the audit trail. */
static int record_applied(sg_store *st, const char *region, const sg_rectype *rt,
                          const sg_change *c, const char *pk, sg_err *err)
{
    sqlite3_stmt *stmt;
    int rc = store_stmt(st,
                        "INSERT INTO sg_applied (region, seq, hlc, tbl, pk, op) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        &stmt, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(stmt, 1, region, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)c->seq);
    sqlite3_bind_int64(stmt, 3, (sqlite3_int64)(c->hlc & INT64_MAX));
    sqlite3_bind_text(stmt, 4, rt->table, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 5, pk, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 6, op_name(c->op), -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? 0 : store_db_error(st, rc, err, "sg_applied");
}

/* Checks and applies change c of region; returns 0 or an error for the whole batch. */
static int one_change(sg_store *st, const char *region, const sg_change *c, int snapshot,
                      sg_err *err)
{
    const sg_rectype *rt = sg_rectype_find(c->table, (ptrdiff_t)c->table_len);
    const char *names[SG_BATCH_MAX_COLS];
    char pk[SG_ID_MAX + 1];
    int rc, has_region = 0;
    sqlite3_stmt *stmt;

    if (rt == NULL)
        return sg_err_set(err, SG_EUNKNOWN, "unknown table '%.*s'",
                          (int)(c->table_len > 64 ? 64 : c->table_len), c->table);
    if (c->pk_len > SG_ID_MAX || !sg_record_id_valid(c->pk, c->pk_len))
        return sg_err_set(err, SG_EVALIDATE, "%s: not a record id", rt->table);
    cstr(pk, sizeof(pk), c->pk, c->pk_len);
    if (snapshot && c->op != SG_OP_INSERT)
        return sg_err_set(err, SG_EPROTO, "a snapshot carries only inserts");
    if (c->ncols > SG_BATCH_MAX_COLS)
        return sg_err_set(err, SG_ETOOBIG, "too many columns");
    for (uint32_t i = 0; c->op != SG_OP_DELETE && i < c->ncols; i++) {
        rc = check_col(rt, &c->cols[i], region, &names[i], err);
        if (rc < 0)
            return rc;
        has_region |= strcmp(names[i], "region") == 0;
    }
    if (c->op == SG_OP_INSERT && !has_region)
        return sg_err_set(err, SG_EREQUIRED, "region: an insert must name the owning region");

    rc = apply_change(st, rt, region, c, pk, names, snapshot, err);
    if (rc < 0)
        return rc;
    if (!snapshot)
        return record_applied(st, region, rt, c, pk, err);
    rc = store_stmt(st, "INSERT OR IGNORE INTO sg_snapshot_seen (region, tbl, pk) VALUES (?, ?, ?)",
                    &stmt, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(stmt, 1, region, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, rt->table, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, pk, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? 0 : store_db_error(st, rc, err, "snapshot");
}

static int ensure_region(sg_store *st, const char *region, sg_err *err)
{
    sqlite3_stmt *stmt;
    int rc = store_stmt(st, "INSERT OR IGNORE INTO sg_regions (region) VALUES (?)", &stmt, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(stmt, 1, region, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? 0 : store_db_error(st, rc, err, "sg_regions");
}

int sg_apply_cursor(uint64_t *out, sg_store *st, const char *region, sg_err *err)
{
    sqlite3_stmt *stmt;
    int rc = store_stmt(st, "SELECT last_seq FROM sg_regions WHERE region = ?", &stmt, err);
    *out = 0;
    if (rc < 0)
        return rc;
    sqlite3_bind_text(stmt, 1, region, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *out = (uint64_t)sqlite3_column_int64(stmt, 0);
    sqlite3_reset(stmt);
    return (rc == SQLITE_ROW || rc == SQLITE_DONE) ? 0 : store_db_error(st, rc, err, "cursor");
}

/* Encodes a change's columns as a JSON object text (for the quarantine). */
static char *cols_json(const sg_change *c)
{
    json_t *o;
    char *s;
    if (c->op == SG_OP_DELETE)
        return NULL;
    o = json_object();
    for (uint32_t i = 0; o != NULL && i < c->ncols; i++) {
        char name[SG_BATCH_MAX_NAME + 1];
        json_t *v;
        cstr(name, sizeof(name), c->cols[i].name, c->cols[i].name_len);
        if (c->cols[i].v.type == SG_VAL_INT)
            v = json_integer(c->cols[i].v.i);
        else if (c->cols[i].v.type == SG_VAL_STR)
            v = json_stringn_nocheck(c->cols[i].v.s, c->cols[i].v.len);
        else
            v = json_null();
        json_object_set_new_nocheck(o, name, v);
    }
    s = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(o);
    return s;
}

/* Holds every change of b in the quarantine with reason (a transaction of its own). */
static void quarantine(sg_store *st, const char *region, const sg_batch *b, const char *reason)
{
    sqlite3_stmt *stmt;
    char now[32];
    sg_err err = {0};

    sg_now_iso(now);
    if (sg_store_begin(st, &err) < 0)
        return;
    if (store_stmt(st,
                   "INSERT OR IGNORE INTO sg_quarantine (region, seq, hlc, tbl, pk, op, data, "
                   "reason, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   &stmt, &err) < 0)
        goto rollback;
    for (uint32_t i = 0; i < b->nchanges; i++) {
        const sg_change *c = &b->changes[i];
        char *data = cols_json(c);
        sqlite3_bind_text(stmt, 1, region, -1, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 2, (sqlite3_int64)c->seq);
        sqlite3_bind_int64(stmt, 3, (sqlite3_int64)(c->hlc & INT64_MAX));
        sqlite3_bind_text(stmt, 4, c->table, (int)c->table_len, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 5, c->pk, (int)c->pk_len, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 6, op_name(c->op), -1, SQLITE_STATIC);
        if (data)
            sqlite3_bind_text(stmt, 7, data, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(stmt, 7);
        sqlite3_bind_text(stmt, 8, reason, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 9, now, -1, SQLITE_STATIC);
        sqlite3_step(stmt);
        sqlite3_reset(stmt);
        free(data);
    }
    if (ensure_region(st, region, &err) == 0 &&
        store_stmt(st, "UPDATE sg_regions SET last_error = ? WHERE region = ?", &stmt, &err) == 0) {
        sqlite3_bind_text(stmt, 1, reason, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 2, region, -1, SQLITE_STATIC);
        sqlite3_step(stmt);
        sqlite3_reset(stmt);
    }
    sg_store_commit(st, &err);
    return;

rollback:
    sg_store_rollback(st);
}

/* Replication's write transactions run with the capture triggers off (store.h,
 * sg_store_capture): begin turns them off, end turns them back on whatever happened. */
static int apply_begin(sg_store *st, sg_err *err)
{
    int rc;
    sg_store_capture(st, 0);
    rc = sg_store_begin(st, err);
    if (rc < 0)
        sg_store_capture(st, 1);
    return rc;
}

/* Commits (ok) or rolls back, then turns capture back on. */
static int apply_end(sg_store *st, int ok, sg_err *err)
{
    int rc = 0;
    if (ok)
        rc = sg_store_commit(st, err);
    else
        sg_store_rollback(st);
    sg_store_capture(st, 1);
    return rc;
}

/* The transaction body of sg_apply_batch. */
static int apply_locked(sg_apply_result *out, sg_store *st, const char *region, const sg_batch *b,
                        int snapshot, sg_err *err)
{
    uint64_t cursor, expect;
    sqlite3_stmt *stmt;
    int rc;
    char now[32];

    rc = ensure_region(st, region, err);
    if (rc == 0)
        rc = sg_apply_cursor(&cursor, st, region, err);
    if (rc < 0)
        return rc;
    expect = cursor + 1;
    /* The hub's clock never runs behind a change it applies (HLC receive rule): once per
     * batch, with the batch's largest clock. */
    if (b->nchanges > 0) {
        uint64_t hlc = 0;
        for (uint32_t i = 0; i < b->nchanges; i++)
            if ((b->changes[i].hlc & INT64_MAX) > hlc)
                hlc = b->changes[i].hlc & INT64_MAX;
        rc = store_stmt(st, "UPDATE sg_node SET hlc = max(hlc, ?)", &stmt, err);
        if (rc < 0)
            return rc;
        sqlite3_bind_int64(stmt, 1, (sqlite3_int64)hlc);
        rc = sqlite3_step(stmt);
        sqlite3_reset(stmt);
        if (rc != SQLITE_DONE)
            return store_db_error(st, rc, err, "advance clock");
    }
    for (uint32_t i = 0; i < b->nchanges; i++) {
        const sg_change *c = &b->changes[i];
        if (!snapshot) {
            if (c->seq <= cursor) {
                out->skipped++;
                continue;
            }
            if (c->seq != expect)
                return sg_err_set(err, SG_EGAP,
                                  "expected change %llu next, got %llu: changes are missing",
                                  (unsigned long long)expect, (unsigned long long)c->seq);
            expect++;
        }
        rc = one_change(st, region, c, snapshot, err);
        if (rc < 0) {
            sg_err_wrap(err, "change %llu (%s %.*s)", (unsigned long long)c->seq, op_name(c->op),
                        (int)(c->table_len > 32 ? 32 : c->table_len), c->table);
            return rc;
        }
        out->applied++;
    }
    sg_now_iso(now);
    rc = store_stmt(st,
                    "UPDATE sg_regions SET last_seq = ?, applied = applied + ?, last_contact = ?, "
                    "last_error = NULL, last_hlc = max(last_hlc, ?) WHERE region = ?",
                    &stmt, err);
    if (rc < 0)
        return rc;
    out->cursor = snapshot ? cursor : expect - 1;
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)out->cursor);
    sqlite3_bind_int64(stmt, 2, out->applied);
    sqlite3_bind_text(stmt, 3, now, -1, SQLITE_STATIC);
    sqlite3_bind_int64(
        stmt, 4, b->nchanges ? (sqlite3_int64)(b->changes[b->nchanges - 1].hlc & INT64_MAX) : 0);
    sqlite3_bind_text(stmt, 5, region, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? 0 : store_db_error(st, rc, err, "advance cursor");
}

int sg_apply_batch(sg_apply_result *out, sg_store *st, const char *region, const sg_batch *b,
                   int snapshot, sg_err *err)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if (b->origin_len != strlen(region) || memcmp(b->origin, region, b->origin_len) != 0) {
        sg_err_set(err, SG_EAUTH, "batch origin '%.*s' is not the connected region '%s'",
                   (int)(b->origin_len > 63 ? 63 : b->origin_len), b->origin, region);
        quarantine(st, region, b, err->msg);
        return sg_err_wrap(err, "batch held in quarantine");
    }
    rc = apply_begin(st, err);
    if (rc < 0)
        return rc;
    rc = apply_locked(out, st, region, b, snapshot, err);
    if (rc < 0) {
        apply_end(st, 0, err);
        if (rc == SG_EGAP || rc == SG_EBUSY || rc == SG_EFULL || rc == SG_EIO || rc == SG_ENOMEM ||
            rc == SG_EDB)
            return rc; /* not the batch's fault: nothing to hold */
        quarantine(st, region, b, err->msg);
        /* A constraint the checks could not foresee (a reference the hub lacks, a uniqueness
         * clash) is for an operator to judge: quarantined. The checks' own refusals keep
         * their code (not_authorized, unknown_field, ...); their batch is held all the same. */
        if (rc == SG_EREFERENCE || rc == SG_ECONFLICT)
            return sg_err_set(err, SG_EQUARANTINE, "batch held in quarantine: %s", err->msg);
        return sg_err_wrap(err, "batch held in quarantine");
    }
    return apply_end(st, 1, err);
}

int sg_apply_snapshot_begin(sg_store *st, const char *region, uint64_t seq, sg_err *err)
{
    sqlite3_stmt *stmt;
    int rc = sg_store_begin(st, err);
    if (rc < 0)
        return rc;
    rc = ensure_region(st, region, err);
    if (rc == 0)
        rc = store_stmt(st, "DELETE FROM sg_snapshot_seen WHERE region = ?", &stmt, err);
    if (rc == 0) {
        sqlite3_bind_text(stmt, 1, region, -1, SQLITE_STATIC);
        rc = sqlite3_step(stmt);
        rc = rc == SQLITE_DONE ? 0 : store_db_error(st, rc, err, "snapshot begin");
        sqlite3_reset(stmt);
    }
    if (rc == 0)
        rc = store_stmt(st, "UPDATE sg_regions SET snapshot_seq = ? WHERE region = ?", &stmt, err);
    if (rc == 0) {
        sqlite3_bind_int64(stmt, 1, (sqlite3_int64)seq);
        sqlite3_bind_text(stmt, 2, region, -1, SQLITE_STATIC);
        rc = sqlite3_step(stmt);
        rc = rc == SQLITE_DONE ? 0 : store_db_error(st, rc, err, "snapshot begin");
        sqlite3_reset(stmt);
    }
    if (rc < 0) {
        sg_store_rollback(st);
        return rc;
    }
    return sg_store_commit(st, err);
}

int sg_apply_snapshot_end(sg_store *st, const char *region, uint64_t seq, sg_err *err)
{
    sqlite3_stmt *stmt;
    size_t ntypes = 0;
    int rc = apply_begin(st, err);

    if (rc < 0)
        return rc;
    rc = store_stmt(st, "SELECT snapshot_seq FROM sg_regions WHERE region = ?", &stmt, err);
    if (rc < 0)
        goto rollback;
    sqlite3_bind_text(stmt, 1, region, -1, SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_ROW || sqlite3_column_type(stmt, 0) == SQLITE_NULL ||
        (uint64_t)sqlite3_column_int64(stmt, 0) != seq) {
        sqlite3_reset(stmt);
        rc = sg_err_set(err, SG_EPROTO, "SNAPSHOT_END %llu without its SNAPSHOT_BEGIN",
                        (unsigned long long)seq);
        goto rollback;
    }
    sqlite3_reset(stmt);
    /* Children before parents, so foreign keys never see a dangling row. */
    while (sg_rectypes[ntypes] != NULL)
        ntypes++;
    for (size_t i = ntypes; i-- > 0;) {
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "DELETE FROM %s WHERE region = ?1 AND id NOT IN (SELECT pk FROM "
                 "sg_snapshot_seen WHERE region = ?1 AND tbl = '%s')",
                 sg_rectypes[i]->table, sg_rectypes[i]->table);
        rc = store_stmt(st, sql, &stmt, err);
        if (rc < 0)
            goto rollback;
        sqlite3_bind_text(stmt, 1, region, -1, SQLITE_STATIC);
        rc = sqlite3_step(stmt);
        if (rc != SQLITE_DONE) {
            rc = store_db_error(st, rc, err, "snapshot: delete rows gone at the region");
            sqlite3_reset(stmt);
            goto rollback;
        }
        sqlite3_reset(stmt);
    }
    rc = store_stmt(st,
                    "UPDATE sg_regions SET last_seq = ?, snapshot_seq = NULL, last_error = NULL "
                    "WHERE region = ?",
                    &stmt, err);
    if (rc < 0)
        goto rollback;
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)seq);
    sqlite3_bind_text(stmt, 2, region, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) {
        rc = store_db_error(st, rc, err, "snapshot: set cursor");
        goto rollback;
    }
    rc = store_stmt(st, "DELETE FROM sg_snapshot_seen WHERE region = ?", &stmt, err);
    if (rc < 0)
        goto rollback;
    sqlite3_bind_text(stmt, 1, region, -1, SQLITE_STATIC);
    sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return apply_end(st, 1, err);

rollback:
    apply_end(st, 0, err);
    return rc;
}

int sg_apply_note_contact(sg_store *st, const char *region, const char *error, sg_err *err)
{
    sqlite3_stmt *stmt;
    char now[32];
    int rc = ensure_region(st, region, err);
    if (rc < 0)
        return rc;
    sg_now_iso(now);
    rc =
        store_stmt(st,
                   error ? "UPDATE sg_regions SET last_contact = ?, last_error = ? WHERE region = ?"
                         : "UPDATE sg_regions SET last_contact = ? WHERE region = ?3",
                   &stmt, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(stmt, 1, now, -1, SQLITE_STATIC);
    if (error)
        sqlite3_bind_text(stmt, 2, error, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, region, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? 0 : store_db_error(st, rc, err, "sg_regions");
}

/* Loads region's held changes (oldest first) into a batch whose strings live in *out_rows. */
static int load_held(sg_batch *b, json_t **out_rows, sg_store *st, const char *region, sg_err *err)
{
    sqlite3_stmt *stmt;
    json_t *rows = json_array();
    size_t n, i, ncols = 0, k = 0;
    int rc;

    *out_rows = NULL;
    memset(b, 0, sizeof(*b));
    if (rows == NULL)
        return sg_err_set(err, SG_ENOMEM, "out of memory");
    rc = store_stmt(st,
                    "SELECT seq, hlc, tbl, pk, op, data FROM sg_quarantine WHERE region = ? AND "
                    "state = 'held' ORDER BY seq",
                    &stmt, err);
    if (rc < 0)
        goto fail;
    sqlite3_bind_text(stmt, 1, region, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *data = (const char *)sqlite3_column_text(stmt, 5);
        json_t *row = json_pack("{s:I, s:I, s:s, s:s, s:s, s:o}", "seq",
                                (json_int_t)sqlite3_column_int64(stmt, 0), "hlc",
                                (json_int_t)sqlite3_column_int64(stmt, 1), "tbl",
                                (const char *)sqlite3_column_text(stmt, 2), "pk",
                                (const char *)sqlite3_column_text(stmt, 3), "op",
                                (const char *)sqlite3_column_text(stmt, 4), "data",
                                data ? store_json_loads(data, 0) : json_null());
        if (row == NULL || json_array_append_new(rows, row) != 0) {
            sqlite3_reset(stmt);
            rc = sg_err_set(err, SG_ENOMEM, "out of memory");
            goto fail;
        }
        ncols += json_object_size(json_object_get(row, "data"));
    }
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) {
        rc = store_db_error(st, rc, err, "quarantine");
        goto fail;
    }
    n = json_array_size(rows);
    b->origin = region;
    b->origin_len = (uint32_t)strlen(region);
    b->nchanges = (uint32_t)n;
    b->changes = calloc(n ? n : 1, sizeof(sg_change));
    b->mem_ = calloc(ncols ? ncols : 1, sizeof(sg_col));
    if (b->changes == NULL || b->mem_ == NULL) {
        rc = sg_err_set(err, SG_ENOMEM, "out of memory");
        goto fail;
    }
    for (i = 0; i < n; i++) {
        json_t *row = json_array_get(rows, i), *data = json_object_get(row, "data"), *v;
        sg_change *c = &b->changes[i];
        const char *op = json_string_value(json_object_get(row, "op")), *key;
        c->seq = (uint64_t)json_integer_value(json_object_get(row, "seq"));
        c->hlc = (uint64_t)json_integer_value(json_object_get(row, "hlc"));
        c->table = json_string_value(json_object_get(row, "tbl"));
        c->table_len = (uint32_t)strlen(c->table);
        c->pk = json_string_value(json_object_get(row, "pk"));
        c->pk_len = (uint32_t)strlen(c->pk);
        c->op = op[0] == 'i' ? SG_OP_INSERT : op[0] == 'u' ? SG_OP_UPDATE : SG_OP_DELETE;
        c->cols = (sg_col *)b->mem_ + k;
        json_object_foreach(data, key, v)
        {
            sg_col *col = &((sg_col *)b->mem_)[k++];
            col->name = key;
            col->name_len = (uint32_t)strlen(key);
            if (json_is_integer(v)) {
                col->v.type = SG_VAL_INT;
                col->v.i = json_integer_value(v);
            } else if (json_is_string(v)) {
                col->v.type = SG_VAL_STR;
                col->v.s = json_string_value(v);
                col->v.len = (uint32_t)json_string_length(v);
            }
            c->ncols++;
        }
    }
    *out_rows = rows;
    return 0;

fail:
    free(b->changes);
    free(b->mem_);
    memset(b, 0, sizeof(*b));
    json_decref(rows);
    return rc;
}

/* Marks region's held changes with seq <= upto as state. */
static int mark_held(sg_store *st, const char *region, const char *state, uint64_t upto,
                     sg_err *err)
{
    sqlite3_stmt *stmt;
    int rc = store_stmt(st,
                        "UPDATE sg_quarantine SET state = ? WHERE region = ? AND state = 'held' "
                        "AND seq <= ?",
                        &stmt, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(stmt, 1, state, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, region, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 3, (sqlite3_int64)upto);
    rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? 0 : store_db_error(st, rc, err, "quarantine");
}

int sg_apply_quarantine_retry(uint32_t *out_n, sg_store *st, const char *region, sg_err *err)
{
    sg_batch b;
    json_t *rows = NULL;
    sg_apply_result res;
    int rc;

    *out_n = 0;
    rc = load_held(&b, &rows, st, region, err);
    if (rc < 0)
        return rc;
    if (b.nchanges == 0) {
        rc = sg_err_set(err, SG_ENOTFOUND, "region '%s' has no held changes", region);
        goto free_batch;
    }
    rc = sg_apply_batch(&res, st, region, &b, 0, err);
    if (rc == 0) {
        rc = mark_held(st, region, "applied", b.changes[b.nchanges - 1].seq, err);
        *out_n = b.nchanges;
    }

free_batch:
    free(b.changes);
    free(b.mem_);
    json_decref(rows);
    return rc;
}

int sg_apply_quarantine_discard(uint32_t *out_n, sg_store *st, const char *region, sg_err *err)
{
    sqlite3_stmt *stmt;
    uint64_t upto, cursor = 0;
    int rc;

    *out_n = 0;
    rc = sg_store_begin(st, err);
    if (rc < 0)
        return rc;
    rc = sg_apply_cursor(&cursor, st, region, err);
    if (rc < 0)
        goto rollback;
    /* The cursor moves past the held changes that continue the region's stream (cursor + 1,
     * + 2, ... with no gap) and no further. Held seqs beyond a gap are not this region's next
     * changes: a refused batch's later changes were never checked, and a batch refused for its
     * origin carries another region's numbers. Moving the cursor to them would make the hub
     * skip the region's real changes up to there as replays (or refuse the region as
     * "conflict" when its log is shorter). */
    rc = store_stmt(
        st, "SELECT seq FROM sg_quarantine WHERE region = ? AND state = 'held' ORDER BY seq", &stmt,
        err);
    if (rc < 0)
        goto rollback;
    sqlite3_bind_text(stmt, 1, region, -1, SQLITE_STATIC);
    upto = cursor;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        uint64_t seq = (uint64_t)sqlite3_column_int64(stmt, 0);
        (*out_n)++;
        if (seq == upto + 1)
            upto = seq;
    }
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) {
        rc = store_db_error(st, rc, err, "quarantine");
        goto rollback;
    }
    if (*out_n == 0) {
        rc = sg_err_set(err, SG_ENOTFOUND, "region '%s' has no held changes", region);
        goto rollback;
    }
    rc = mark_held(st, region, "discarded", (uint64_t)INT64_MAX, err);
    if (rc < 0)
        goto rollback;
    if (upto > cursor) {
        /* The region's stream continues after the discarded changes. */
        rc =
            store_stmt(st, "UPDATE sg_regions SET last_seq = ?, last_error = NULL WHERE region = ?",
                       &stmt, err);
        if (rc < 0)
            goto rollback;
        sqlite3_bind_int64(stmt, 1, (sqlite3_int64)upto);
        sqlite3_bind_text(stmt, 2, region, -1, SQLITE_STATIC);
        rc = sqlite3_step(stmt);
        sqlite3_reset(stmt);
        if (rc != SQLITE_DONE) {
            rc = store_db_error(st, rc, err, "advance cursor");
            goto rollback;
        }
    }
    return sg_store_commit(st, err);

rollback:
    sg_store_rollback(st);
    return rc;
}

/* Converts a JSON scalar into a change value (strings borrowed from v). */
static void json_value(sg_value *out, json_t *v)
{
    memset(out, 0, sizeof(*out));
    if (json_is_integer(v)) {
        out->type = SG_VAL_INT;
        out->i = json_integer_value(v);
    } else if (json_is_string(v)) {
        out->type = SG_VAL_STR;
        out->s = json_string_value(v);
        out->len = (uint32_t)json_string_length(v);
    }
}

int sg_outbox_read(uint64_t *out_last, sg_store *st, uint64_t after, uint32_t max_changes,
                   size_t max_bytes, sg_batch_enc *enc, sg_err *err)
{
    sqlite3_stmt *stmt;
    sg_col cols[SG_BATCH_MAX_COLS];
    int rc;

    *out_last = after;
    rc = store_stmt(st,
                    "SELECT seq, hlc, tbl, pk, op, data FROM sg_changes WHERE seq > ? ORDER BY "
                    "seq LIMIT ?",
                    &stmt, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)after);
    sqlite3_bind_int64(stmt, 2, max_changes);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        sg_change c;
        const char *op = (const char *)sqlite3_column_text(stmt, 4);
        const char *data = (const char *)sqlite3_column_text(stmt, 5);
        json_t *obj = NULL, *v;
        const char *key;
        int arc;

        memset(&c, 0, sizeof(c));
        c.seq = (uint64_t)sqlite3_column_int64(stmt, 0);
        c.hlc = (uint64_t)sqlite3_column_int64(stmt, 1);
        c.table = (const char *)sqlite3_column_text(stmt, 2);
        c.table_len = (uint32_t)sqlite3_column_bytes(stmt, 2);
        c.pk = (const char *)sqlite3_column_text(stmt, 3);
        c.pk_len = (uint32_t)sqlite3_column_bytes(stmt, 3);
        c.op = op[0] == 'i' ? SG_OP_INSERT : op[0] == 'u' ? SG_OP_UPDATE : SG_OP_DELETE;
        if (c.op != SG_OP_DELETE) {
            obj = data ? store_json_loads(data, 0) : NULL;
            if (!json_is_object(obj) || json_object_size(obj) > SG_BATCH_MAX_COLS) {
                json_decref(obj);
                sqlite3_reset(stmt);
                return sg_err_set(err, SG_EDB, "change log entry %llu has unreadable data",
                                  (unsigned long long)c.seq);
            }
            c.cols = cols;
            json_object_foreach(obj, key, v)
            {
                cols[c.ncols].name = key;
                cols[c.ncols].name_len = (uint32_t)strlen(key);
                json_value(&cols[c.ncols].v, v);
                c.ncols++;
            }
        }
        arc = sg_batch_enc_add(enc, &c);
        json_decref(obj);
        if (arc == SG_ETOOBIG)
            break; /* full: the rest goes in the next batch */
        if (arc < 0) {
            sqlite3_reset(stmt);
            return sg_err_set(err, arc, "change log entry %llu cannot be encoded",
                              (unsigned long long)c.seq);
        }
        *out_last = c.seq;
        if (sg_batch_enc_size(enc) >= max_bytes)
            break;
    }
    sqlite3_reset(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_db_error(st, rc, err, "read change log");
    return 0;
}

static int64_t single_int(sg_store *st, const char *sql)
{
    sqlite3_stmt *stmt;
    int64_t v = 0;
    if (store_stmt(st, sql, &stmt, NULL) < 0)
        return -1;
    if (sqlite3_step(stmt) == SQLITE_ROW)
        v = sqlite3_column_int64(stmt, 0);
    sqlite3_reset(stmt);
    return v;
}

int64_t sg_outbox_oldest(sg_store *st)
{
    return single_int(st, "SELECT coalesce(min(seq), 0) FROM sg_changes");
}

int64_t sg_outbox_acked_seq(sg_store *st)
{
    return single_int(st, "SELECT acked_seq FROM sg_uplink");
}

int sg_outbox_acked(sg_store *st, uint64_t seq, sg_err *err)
{
    sqlite3_stmt *stmt;
    char now[32];
    /* Not max(acked_seq, seq): a WELCOME from a hub restored from a backup or rebuilt from
     * nothing acknowledges less than its predecessor did, and what this hub has not
     * acknowledged must neither count as replicated nor be pruned (PROTOCOL.md 7.4). Within a
     * session ACKs only grow (uplink.c checks). */
    int rc = store_stmt(
        st, "UPDATE sg_uplink SET acked_seq = ?, last_contact = ?, last_error = NULL", &stmt, err);
    if (rc < 0)
        return rc;
    sg_now_iso(now);
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)seq);
    sqlite3_bind_text(stmt, 2, now, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? 0 : store_db_error(st, rc, err, "record acknowledgement");
}

int sg_outbox_prune(int64_t *out_n, sg_store *st, int64_t retention_ms, sg_err *err)
{
    sqlite3_stmt *stmt;
    int64_t cutoff = (int64_t)sg_now_ms() - retention_ms;
    int rc = store_stmt(st,
                        "DELETE FROM sg_changes WHERE seq <= (SELECT acked_seq FROM sg_uplink) "
                        "AND (hlc >> 16) < ?",
                        &stmt, err);
    *out_n = 0;
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(stmt, 1, cutoff < 0 ? 0 : cutoff);
    rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE)
        return store_db_error(st, rc, err, "prune change log");
    *out_n = sqlite3_changes(sg_store_db(st));
    return 0;
}

int sg_outbox_snapshot_read(int *out_done, sg_store *rd, const char *region, sg_snapshot_pos *pos,
                            uint32_t max_changes, size_t max_bytes, sg_batch_enc *enc, sg_err *err)
{
    uint32_t added = 0;
    /* Rows carry no clock of their own: they are stamped with the region's clock, which is at
     * least the HLC of every change that made them. */
    uint64_t hlc = (uint64_t)sg_store_hlc(rd);
    int rc;

    *out_done = 0;
    while (sg_rectypes[pos->table] != NULL) {
        const sg_rectype *rt = sg_rectypes[pos->table];
        char sql[128];
        sqlite3_stmt *stmt;
        int rows = 0;

        snprintf(sql, sizeof(sql),
                 "SELECT * FROM %s WHERE region = ? AND id > ? ORDER BY id LIMIT ?", rt->table);
        rc = store_stmt(rd, sql, &stmt, err);
        if (rc < 0)
            return rc;
        /* after changes while the statement runs, so it is copied; a copy that cannot be
         * allocated must stop the snapshot, not read as "no rows left" (store_int.h). */
        if (sqlite3_bind_text(stmt, 1, region, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_text(stmt, 2, pos->after, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
            sqlite3_reset(stmt);
            return store_db_error(rd, SQLITE_NOMEM, err, "snapshot read");
        }
        sqlite3_bind_int64(stmt, 3, max_changes - added);
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
            sg_col cols[SG_BATCH_MAX_COLS];
            sg_change c;
            int ncol = sqlite3_column_count(stmt), arc;

            memset(&c, 0, sizeof(c));
            c.seq = pos->synth + 1;
            c.hlc = hlc;
            c.table = rt->table;
            c.table_len = (uint32_t)strlen(rt->table);
            c.op = SG_OP_INSERT;
            c.cols = cols;
            for (int i = 0; i < ncol && c.ncols < SG_BATCH_MAX_COLS; i++) {
                const char *name = sqlite3_column_name(stmt, i);
                sg_value *v = &cols[c.ncols].v;
                if (strcmp(name, "id") == 0) {
                    c.pk = (const char *)sqlite3_column_text(stmt, i);
                    c.pk_len = (uint32_t)sqlite3_column_bytes(stmt, i);
                    continue;
                }
                memset(v, 0, sizeof(*v));
                if (sqlite3_column_type(stmt, i) == SQLITE_INTEGER) {
                    v->type = SG_VAL_INT;
                    v->i = sqlite3_column_int64(stmt, i);
                } else if (sqlite3_column_type(stmt, i) != SQLITE_NULL) {
                    v->type = SG_VAL_STR;
                    v->s = (const char *)sqlite3_column_text(stmt, i);
                    v->len = (uint32_t)sqlite3_column_bytes(stmt, i);
                }
                cols[c.ncols].name = name;
                cols[c.ncols].name_len = (uint32_t)strlen(name);
                c.ncols++;
            }
            arc = sg_batch_enc_add(enc, &c);
            if (arc == SG_ETOOBIG)
                break;
            if (arc < 0) {
                sqlite3_reset(stmt);
                return sg_err_set(err, arc, "snapshot: %s %s cannot be encoded", rt->singular,
                                  c.pk ? c.pk : "?");
            }
            snprintf(pos->after, sizeof(pos->after), "%s", c.pk);
            pos->synth++;
            added++;
            rows++;
            if (sg_batch_enc_size(enc) >= max_bytes)
                break;
        }
        sqlite3_reset(stmt);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return store_db_error(rd, rc, err, "snapshot read");
        if (rc == SQLITE_DONE && (uint32_t)rows < max_changes - (added - (uint32_t)rows)) {
            /* This table is exhausted: go on with the next. */
            pos->table++;
            pos->after[0] = '\0';
        }
        if (added >= max_changes || sg_batch_enc_size(enc) >= max_bytes || rc == SQLITE_ROW)
            return 0;
    }
    *out_done = 1;
    return 0;
}

int sg_apply_quarantine_list(json_t **out, sg_store *st, const char *region, const char *state,
                             int limit, sg_err *err)
{
    sqlite3_stmt *stmt;
    json_t *items;
    int rc = store_stmt(st,
                        "SELECT id, region, seq, hlc, tbl, pk, op, data, reason, received_at, "
                        "state FROM sg_quarantine WHERE (?1 IS NULL OR region = ?1) AND "
                        "(?2 IS NULL OR state = ?2) ORDER BY region, seq LIMIT ?3",
                        &stmt, err);
    *out = NULL;
    if (rc < 0)
        return rc;
    if (region)
        sqlite3_bind_text(stmt, 1, region, -1, SQLITE_STATIC);
    if (state)
        sqlite3_bind_text(stmt, 2, state, -1, SQLITE_STATIC);
    sqlite3_bind_int(stmt, 3, limit);
    items = json_array();
    while (items != NULL && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *data = (const char *)sqlite3_column_text(stmt, 7);
        json_t *d = data ? json_loads(data, 0, NULL) : NULL;
        json_array_append_new(items,
                              json_pack("{s:I, s:s, s:I, s:I, s:s, s:s, s:s, s:o, s:s, s:s, s:s}",
                                        "id", (json_int_t)sqlite3_column_int64(stmt, 0), "region",
                                        (const char *)sqlite3_column_text(stmt, 1), "seq",
                                        (json_int_t)sqlite3_column_int64(stmt, 2), "hlc",
                                        (json_int_t)sqlite3_column_int64(stmt, 3), "table",
                                        (const char *)sqlite3_column_text(stmt, 4), "pk",
                                        (const char *)sqlite3_column_text(stmt, 5), "op",
                                        (const char *)sqlite3_column_text(stmt, 6), "data",
                                        d ? d : json_null(), "reason",
                                        (const char *)sqlite3_column_text(stmt, 8), "received_at",
                                        (const char *)sqlite3_column_text(stmt, 9), "state",
                                        (const char *)sqlite3_column_text(stmt, 10)));
    }
    sqlite3_reset(stmt);
    if (items == NULL)
        return sg_err_set(err, SG_ENOMEM, "out of memory");
    *out = items;
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Restore from the hub (region side)
 */

#define RESTORE_HOLD "this node is restoring its records from the hub; try again when it is done"

int64_t sg_store_records(sg_store *st)
{
    int64_t n = 0;
    for (size_t i = 0; sg_rectypes[i] != NULL; i++) {
        int64_t c = sg_store_count(st, sg_rectypes[i]);
        if (c < 0)
            return -1;
        n += c;
    }
    return n;
}

int sg_restore_begin(sg_store *st, int wipe, sg_err *err)
{
    size_t ntypes = 0;
    int rc = apply_begin(st, err);
    if (rc < 0)
        return rc;
    while (sg_rectypes[ntypes] != NULL)
        ntypes++;
    /* Children before parents, so foreign keys never see a dangling row. */
    for (size_t i = ntypes; wipe && i-- > 0;) {
        char sql[128];
        snprintf(sql, sizeof(sql), "DELETE FROM %s", sg_rectypes[i]->table);
        rc = store_exec(st, sql, err, "restore: clear the records");
        if (rc < 0)
            goto fail;
    }
    if (wipe && (rc = store_exec(st, "DELETE FROM sg_changes", err, "restore: clear the log")) < 0)
        goto fail;
    sg_store_hold(st, RESTORE_HOLD);
    return 0;
fail:
    apply_end(st, 0, err);
    return rc;
}

int sg_restore_apply(uint64_t *out_rows, sg_store *st, const char *region, const sg_batch *b,
                     sg_err *err)
{
    if (b->origin_len != strlen(region) || memcmp(b->origin, region, b->origin_len) != 0)
        return sg_err_set(err, SG_EAUTH, "the hub sent rows of region '%.*s', not this one's",
                          (int)(b->origin_len > 63 ? 63 : b->origin_len), b->origin);
    for (uint32_t i = 0; i < b->nchanges; i++) {
        const sg_change *c = &b->changes[i];
        const sg_rectype *rt = sg_rectype_find(c->table, (ptrdiff_t)c->table_len);
        const char *names[SG_BATCH_MAX_COLS];
        char pk[SG_ID_MAX + 1];
        int rc;

        if (rt == NULL || c->op != SG_OP_INSERT || c->ncols > SG_BATCH_MAX_COLS ||
            c->pk_len > SG_ID_MAX || !sg_record_id_valid(c->pk, c->pk_len))
            return sg_err_set(err, SG_EPROTO, "restore: row %llu is not an insert of a record",
                              (unsigned long long)c->seq);
        cstr(pk, sizeof(pk), c->pk, c->pk_len);
        for (uint32_t k = 0; k < c->ncols; k++) {
            rc = check_col(rt, &c->cols[k], region, &names[k], err);
            if (rc < 0)
                return sg_err_wrap(err, "restore: %s %s", rt->singular, pk);
        }
        rc = apply_change(st, rt, region, c, pk, names, 1, err);
        if (rc < 0)
            return sg_err_wrap(err, "restore: %s %s", rt->singular, pk);
        (*out_rows)++;
    }
    return 0;
}

int sg_restore_end(sg_store *st, uint64_t cursor, uint64_t hlc, sg_err *err)
{
    static const char *const steps[] = {
        /* sg_changes is AUTOINCREMENT: its next seq is one past this row's (sqlite_sequence
         * has no key, hence delete then insert). */
        "DELETE FROM sqlite_sequence WHERE name = 'sg_changes' AND ?1 >= 0",
        "INSERT INTO sqlite_sequence (name, seq) VALUES ('sg_changes', ?1)",
        "UPDATE sg_uplink SET acked_seq = ?1",
        "UPDATE sg_node SET hlc = max(hlc, ?2)",
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]) && rc == 0; i++) {
        sqlite3_stmt *stmt;
        rc = store_stmt(st, steps[i], &stmt, err);
        if (rc < 0)
            break;
        sqlite3_bind_int64(stmt, 1, (sqlite3_int64)cursor);
        sqlite3_bind_int64(stmt, 2, (sqlite3_int64)(hlc & INT64_MAX));
        rc = sqlite3_step(stmt);
        sqlite3_reset(stmt);
        rc = rc == SQLITE_DONE ? 0 : store_db_error(st, rc, err, "restore: set the log");
    }
    sg_store_hold(st, NULL);
    return apply_end(st, rc == 0, err) < 0 ? err->code : rc;
}

void sg_restore_abort(sg_store *st)
{
    sg_store_hold(st, NULL);
    apply_end(st, 0, NULL);
}
