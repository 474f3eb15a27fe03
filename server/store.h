/*
 * store.h - the node's database: schema and migrations, change capture, records, queries.
 *
 * The store does no network I/O (DESIGN principle 5) and is used from one thread. Records cross
 * its interface as jansson objects whose keys are column names, because every caller (the HTTP
 * API, CSV import, tests) already speaks JSON; values are validated against the record types of
 * sangam/records.h before any SQL runs, and the database's own constraints back that up.
 *
 * Invariants kept here:
 * - every write to a replicated table, by this process or any other connection, appends to
 *   sg_changes in the same transaction (triggers generated from the schema on every open);
 * - the database is opened with WAL, synchronous=FULL and foreign keys on;
 * - a schema newer than this program knows is refused, an older one migrated forward.
 */
#ifndef SANGAM_STORE_H
#define SANGAM_STORE_H

#include <stdint.h>

#include <jansson.h>

#include "sangam/error.h"
#include "sangam/records.h"

#define SG_SCHEMA_VERSION 4

typedef struct sg_store sg_store;
typedef struct sqlite3 sqlite3;

/* Opens (creating and migrating as needed) the database at path for node node_id with role
 * "region" or "hub". Refuses a database that belongs to another node id. */
int sg_store_open(sg_store **out, const char *path, const char *node_id, const char *role,
                  sg_err *err);
/* Opens a second, read-only connection to an existing node database (no migration): for
 * long reads, such as a replication snapshot, that must not hold the writer's connection. */
int sg_store_open_reader(sg_store **out, const char *path, sg_err *err);
/* Closes the database (NULL-safe); any open transaction is rolled back. */
void sg_store_close(sg_store *st);

/* The raw connection, for tests and the sqlite3-shell-equivalence checks. */
sqlite3 *sg_store_db(sg_store *st);
const char *sg_store_node_id(const sg_store *st);

/* A read transaction on a reader connection: every read until sg_store_read_end sees the
 * database as it was at the first read (WAL snapshot isolation). */
int sg_store_read_begin(sg_store *st, sg_err *err);
void sg_store_read_end(sg_store *st);

/* Calls fn(arg) after every successful sg_store_commit (replication wakes on it). */
void sg_store_on_commit(sg_store *st, void (*fn)(void *arg), void *arg);

/* Turns this connection's change capture off (on = 0) or back on (1). Replication applying a
 * region's changes at the hub turns it off for its transactions: those changes are the
 * region's, recorded in sg_applied, and capturing them again would double the hub's writes (and
 * the triggers' mere presence costs a third of an apply). Other connections - the sqlite3 shell,
 * a second sangamd - keep capturing. The triggers are the connection's
 * SQLITE_DBCONFIG_ENABLE_TRIGGER; switching it expires every statement prepared on the
 * connection, so a statement cached while capture was off is prepared again, with its triggers,
 * before it next runs. */
void sg_store_capture(sg_store *st, int on);

/* While why is set (NULL releases), every other write through this store - create, update,
 * delete, begin - is refused with SG_EBUSY and why: the region holds its writer connection in
 * one long transaction while it restores its records from the hub. */
void sg_store_hold(sg_store *st, const char *why);

/* Transactions: begin takes the write lock at once (BEGIN IMMEDIATE). Not nestable. */
int sg_store_begin(sg_store *st, sg_err *err);
int sg_store_commit(sg_store *st, sg_err *err);
void sg_store_rollback(sg_store *st);

enum {
    SG_WRITE_SERVER = 1 << 0,  /* the node itself sets SG_F_SERVER fields (issue updates) */
    SG_WRITE_ID_ONLY = 1 << 1, /* create: *out is just {"id": ...}, not the re-read record */
    SG_WRITE_CHECKED = 1 << 2, /* the caller ran sg_store_check already; the database's own
                                  constraints still hold every write */
};

/* Creates a record of type rt from fields (an object of user fields). The node assigns id,
 * region, created_at and updated_at. *out is the stored record (new reference). */
int sg_store_create(json_t **out, sg_store *st, const sg_rectype *rt, json_t *fields,
                    unsigned flags, sg_err *err);
/* Reads one record; SG_ENOTFOUND if there is none. */
int sg_store_get(json_t **out, sg_store *st, const sg_rectype *rt, const char *id, sg_err *err);
/* Changes the given fields (null clears an optional one) and updated_at. */
int sg_store_update(json_t **out, sg_store *st, const sg_rectype *rt, const char *id,
                    json_t *fields, unsigned flags, sg_err *err);
/* Deletes a record; SG_ECONFLICT while other records refer to it. */
int sg_store_delete(sg_store *st, const sg_rectype *rt, const char *id, sg_err *err);

/* Checks fields as sg_store_create or sg_store_update would (mode 'c' or 'u'), including that
 * referenced records exist, without writing. */
int sg_store_check(sg_store *st, const sg_rectype *rt, json_t *fields, int mode, unsigned flags,
                   sg_err *err);

/* A list query; strings are borrowed from the caller. */
typedef struct sg_query {
    json_t *eq;         /* object field -> string value ("" matches null), or NULL */
    const char *region; /* owning region, or NULL */
    const char *q;      /* substring of the SG_F_SEARCH field, or NULL */
    const char *from;   /* inclusive lower bound of the type's date field, or NULL */
    const char *to;     /* inclusive upper bound, or NULL */
    const char *after;  /* paging cursor: ids greater than this, or NULL */
    int limit;          /* 1..1000 */
} sg_query;

/* Lists records in id order. *out_items is an array (new reference); *out_next is the id to
 * pass as after= for the next page, or NULL when this page is the last (caller frees). */
int sg_store_list(json_t **out_items, char **out_next, sg_store *st, const sg_rectype *rt,
                  const sg_query *q, sg_err *err);

/* Change log entries with seq > since, oldest first, at most limit. *out_next as above. */
int sg_store_changes(json_t **out_items, int64_t *out_next, sg_store *st, int64_t since, int limit,
                     sg_err *err);
/* The highest seq ever given out (0 when none). */
int64_t sg_store_seq(sg_store *st);
/* The node's hybrid logical clock: the last value it handed out. */
int64_t sg_store_hlc(sg_store *st);
/* Number of rows of a table. */
int64_t sg_store_count(sg_store *st, const sg_rectype *rt);

/* Current UTC time as "YYYY-MM-DDTHH:MM:SS.mmmZ" and today's date "YYYY-MM-DD". */
void sg_now_iso(char out[32]);
void sg_today(char out[16]);
uint64_t sg_now_ms(void);

#endif
