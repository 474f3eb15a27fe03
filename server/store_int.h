/*
 * store_int.h - the store's internals shared with the modules that extend it (apply.c). Not
 * for the API or transport layers: they use store.h.
 */
#ifndef SANGAM_STORE_INT_H
#define SANGAM_STORE_INT_H

#include <sqlite3.h>

#include "store.h"

/* A reset, unbound statement for sql from the connection's cache (prepared on first use). sql
 * must be built from constants and descriptor names only, never from input. */
int store_stmt(sg_store *st, const char *sql, sqlite3_stmt **out, sg_err *err);
/* Maps a failed SQLite call (rc) to an SG_E* code with the database's message. */
int store_db_error(sg_store *st, int rc, sg_err *err, const char *what);
/* Runs SQL without results. */
int store_exec(sg_store *st, const char *sql, sg_err *err, const char *what);

#endif
