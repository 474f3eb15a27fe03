/*
 * store_int.h - the store's internals shared with the modules that extend it (apply.c). Not
 * for the API or transport layers: they use store.h.
 */
#ifndef SANGAM_STORE_INT_H
#define SANGAM_STORE_INT_H

#include <sqlite3.h>

#include "store.h"

/* A reset, unbound statement for sql from the connection's cache (prepared on first use). sql
 * must be built from constants and descriptor names only, never from input.
 * Text is bound SQLITE_STATIC wherever the buffer outlives the step and reset (it always does
 * when the statement is stepped right after binding): a SQLITE_TRANSIENT bind copies, and a copy
 * that cannot be allocated is reported only by the bind's return value, leaving the parameter
 * NULL - the statement would then run, "successfully", on NULL (a cursor update matching no
 * row, an id that reads as missing). Where a copy is needed, check the bind's result. */
int store_stmt(sg_store *st, const char *sql, sqlite3_stmt **out, sg_err *err);
/* Maps a failed SQLite call (rc) to an SG_E* code with the database's message. */
int store_db_error(sg_store *st, int rc, sg_err *err, const char *what);
/* json_loads(text, flags), but NULL when any allocation failed during the parse: jansson's own
 * parser may instead return a string with a byte missing (store.c). For JSON read back from the
 * database; the API's request bodies have the same exposure. */
json_t *store_json_loads(const char *text, size_t flags);
/* The same for len bytes at buf (request bodies, api.c); *out_oom is 1 when an allocation failed
 * (then NULL is out of memory, not bad JSON; je is as json_loadb leaves it). */
json_t *store_json_loadb(int *out_oom, const char *buf, size_t len, size_t flags, json_error_t *je);
/* Runs SQL without results. */
int store_exec(sg_store *st, const char *sql, sg_err *err, const char *what);

#endif
