/*
 * faultutil.h - helpers the fault-injection unit tests share (test_alloc.c, test_vfs.c): the
 * long-form switch, one-value queries, the integrity check, opening a store, and building the
 * columns of a change by hand.
 *
 * Header-only (static inline) so each test stays one .c file under CTest. Include after cmocka.h
 * (fail_msg, assert_*), sqlite3.h and store.h.
 */
#ifndef SANGAM_FAULTUTIL_H
#define SANGAM_FAULTUTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sangam/batch.h"

/* 1 under SANGAM_LONG=1 (tests/run.sh --long): sweep every point instead of a budget. */
static inline int long_mode(void)
{
    const char *v = getenv("SANGAM_LONG");
    return v != NULL && strcmp(v, "1") == 0;
}

/* The first column of the first row of sql (with arg bound to ?1 if given), or -1. */
static inline int64_t q_int(sqlite3 *db, const char *sql, const char *arg)
{
    sqlite3_stmt *s = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db));
    if (arg != NULL)
        sqlite3_bind_text(s, 1, arg, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

/* PRAGMA integrity_check must say ok; otherwise the test fails with what it said. */
static inline void assert_integrity(sqlite3 *db)
{
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    if (strcmp((const char *)sqlite3_column_text(s, 0), "ok") != 0)
        fail_msg("integrity_check: %s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
}

/* A store at path for node in role; the test fails if it cannot be opened. */
static inline sg_store *open_store(const char *path, const char *node, const char *role)
{
    sg_store *st = NULL;
    sg_err err = {0};
    if (sg_store_open(&st, path, node, role, &err) < 0)
        fail_msg("open %s: %s", path, err.msg);
    return st;
}

/* A text column of a change (v is not copied). */
static inline void col_str(sg_col *c, const char *name, const char *v)
{
    memset(c, 0, sizeof(*c));
    c->name = name;
    c->name_len = (uint32_t)strlen(name);
    c->v.type = SG_VAL_STR;
    c->v.s = v;
    c->v.len = (uint32_t)strlen(v);
}

#endif
