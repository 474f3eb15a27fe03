/*
 * store.c - the node's SQLite database; see store.h for the contract and invariants.
 *
 * SQL here is built only from the constant record descriptors (table and column names), never
 * from input; every value is bound. Statements are prepared once and cached per connection,
 * keyed by their text.
 *
 * Change capture: for each replicated table, on every open, triggers are (re)generated from
 * PRAGMA table_info, so they always cover every column and survive someone dropping one in the
 * shell. Each trigger advances the hybrid logical clock in sg_node and appends one row to
 * sg_changes. They are plain SQL, so the sqlite3 shell's writes are captured too. Updates record
 * only the columns whose value changed; an update that changes nothing records nothing. While
 * the hub applies a region's changes, its connection has triggers off (sg_store_capture): those
 * changes are the region's, recorded in sg_applied. (The triggers used to test sg_node.applying
 * instead, which cost a subquery per row even while they stood aside; the column stays in
 * schema v1, unused.)
 */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "record.h"
#include "store_int.h"
#include "ulid.h"

extern const char sg_schema_sql[];
extern const char sg_migrate_v2_sql[];
extern const char sg_migrate_v3_sql[];
extern const char sg_migrate_v4_sql[];

#define STMT_CACHE 64

typedef struct stmt_slot {
    char *sql;          /* owned key */
    uint64_t hash;      /* FNV-1a of sql: most lookups compare only this */
    sqlite3_stmt *stmt; /* owned prepared statement */
} stmt_slot;

struct sg_store {
    sqlite3 *db;                     /* owned connection */
    char node_id[SG_REGION_MAX + 1]; /* this node's region id */
    sg_ulid_gen ids;                 /* id generator state */
    stmt_slot cache[STMT_CACHE];     /* prepared statements */
    unsigned cache_next;             /* next slot to evict when full */
    int in_txn;                      /* inside sg_store_begin */
    const char *hold;                /* why writes are refused (sg_store_hold), or NULL */
    void (*on_commit)(void *);       /* called after each successful commit, or NULL */
    void *on_commit_arg;
};

/* The expression that gives the current time as an HLC value: ms << 16. It is only ever used
 * inside snprintf formats, hence the doubled percent signs. */
#define HLC_NOW_SQL                                                                                \
    "((CAST(strftime('%%s','now') AS INTEGER) * 1000 + "                                           \
    "CAST(substr(strftime('%%f','now'), 4) AS INTEGER)) << 16)"

/* Friendly texts for named CHECK constraints of schema.sql. */
static const struct {
    const char *name;
    const char *msg;
} constraint_msgs[] = {
    {"representative_needs_organisation",
     "organisation_id: a representative must name an organisation"},
    {"resolved_date_needs_resolution", "resolved_on: only a resolved or closed issue has one"},
    {"resolved_after_opened", "resolved_on: before the date the issue was opened"},
};

uint64_t sg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void sg_now_iso(char out[32])
{
    struct timespec ts;
    struct tm tm;
    char buf[24];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03ldZ", buf, ts.tv_nsec / 1000000L);
}

void sg_today(char out[16])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

/* jansson's parser does not fail when growing a string's buffer fails: it drops that byte
 * (load.c: lex_save ignores strbuffer_append_byte's error) and returns the value with the
 * string shortened. sg_store_open routes jansson's allocations through json_alloc, so a parse
 * that met a failed allocation is refused whole instead of being replicated shortened. The flag
 * is per thread because jansson calls back on the thread that parses. */
static _Thread_local int json_alloc_failed;

static void *json_alloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL)
        json_alloc_failed = 1;
    return p;
}

static void json_release(void *p)
{
    free(p);
}

json_t *store_json_loads(const char *text, size_t flags)
{
    int oom;
    return store_json_loadb(&oom, text, strlen(text), flags, NULL);
}

json_t *store_json_loadb(int *out_oom, const char *buf, size_t len, size_t flags, json_error_t *je)
{
    json_t *v;

    json_alloc_failed = 0;
    v = json_loadb(buf, len, flags, je);
    *out_oom = json_alloc_failed;
    if (v != NULL && json_alloc_failed) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

/* Maps a failed SQLite call to an SG_E* code with the database's message as context. */
int store_db_error(sg_store *st, int rc, sg_err *err, const char *what)
{
    const char *msg = sqlite3_errmsg(st->db);
    int ext = sqlite3_extended_errcode(st->db);

    if (rc == SQLITE_CONSTRAINT || (ext & 0xff) == SQLITE_CONSTRAINT) {
        switch (ext) {
        case SQLITE_CONSTRAINT_FOREIGNKEY:
            return sg_err_set(err, SG_EREFERENCE, "%s: refers to a record that does not exist",
                              what);
        case SQLITE_CONSTRAINT_UNIQUE:
        case SQLITE_CONSTRAINT_PRIMARYKEY:
            return sg_err_set(err, SG_ECONFLICT, "%s: already exists (%s)", what, msg);
        case SQLITE_CONSTRAINT_NOTNULL:
            return sg_err_set(err, SG_EREQUIRED, "%s: %s", what, msg);
        case SQLITE_CONSTRAINT_TRIGGER:
            return sg_err_set(err, SG_EIMMUTABLE, "%s: %s", what, msg);
        default:
            for (size_t i = 0; i < sizeof(constraint_msgs) / sizeof(constraint_msgs[0]); i++)
                if (strstr(msg, constraint_msgs[i].name))
                    return sg_err_set(err, SG_EVALIDATE, "%s: %s", what, constraint_msgs[i].msg);
            return sg_err_set(err, SG_EVALIDATE, "%s: %s", what, msg);
        }
    }
    switch (rc & 0xff) {
    case SQLITE_FULL:
        return sg_err_set(err, SG_EFULL, "%s: the disk is full; free space and retry", what);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return sg_err_set(err, SG_EBUSY, "%s: database is locked by another writer", what);
    case SQLITE_IOERR:
        return sg_err_set(err, SG_EIO, "%s: %s", what, msg);
    case SQLITE_NOMEM:
        return sg_err_set(err, SG_ENOMEM, "%s: out of memory", what);
    default:
        return sg_err_set(err, SG_EDB, "%s: %s", what, msg);
    }
}

/* Returns a reset, unbound statement for sql from the cache, preparing it on first use. */
int store_stmt(sg_store *st, const char *sql, sqlite3_stmt **out, sg_err *err)
{
    stmt_slot *slot = NULL;
    uint64_t hash = 1469598103934665603ull;
    int rc;

    /* Replication looks a statement up per change: hash once, compare hashes. */
    for (const char *p = sql; *p != '\0'; p++)
        hash = (hash ^ (unsigned char)*p) * 1099511628211ull;
    for (unsigned i = 0; i < STMT_CACHE; i++) {
        if (st->cache[i].sql != NULL && st->cache[i].hash == hash &&
            strcmp(st->cache[i].sql, sql) == 0) {
            sqlite3_reset(st->cache[i].stmt);
            sqlite3_clear_bindings(st->cache[i].stmt);
            *out = st->cache[i].stmt;
            return 0;
        }
        if (slot == NULL && st->cache[i].sql == NULL)
            slot = &st->cache[i];
    }
    if (slot == NULL) {
        slot = &st->cache[st->cache_next];
        st->cache_next = (st->cache_next + 1) % STMT_CACHE;
        sqlite3_finalize(slot->stmt);
        free(slot->sql);
        slot->stmt = NULL;
        slot->sql = NULL;
    }
    rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &slot->stmt, NULL);
    if (rc != SQLITE_OK) {
        slot->stmt = NULL;
        return store_db_error(st, rc, err, "prepare");
    }
    slot->sql = strdup(sql);
    slot->hash = hash;
    if (slot->sql == NULL) {
        sqlite3_finalize(slot->stmt);
        slot->stmt = NULL;
        return sg_err_set(err, SG_ENOMEM, "prepare: out of memory");
    }
    *out = slot->stmt;
    return 0;
}

void sg_store_capture(sg_store *st, int on)
{
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, on ? 1 : 0, (int *)NULL);
}

int store_exec(sg_store *st, const char *sql, sg_err *err, const char *what)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : store_db_error(st, rc, err, what);
}

/* A growing string for building SQL from descriptor names. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

/* Appends the column names of table in order into cols (up to max); returns the count. */
static int table_columns(sg_store *st, const char *table, char cols[][64], int max, sg_err *err)
{
    char sql[128];
    sqlite3_stmt *stmt = NULL;
    int n = 0, rc;

    snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)", table);
    rc = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return store_db_error(st, rc, err, "read schema");
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW && n < max) {
        snprintf(cols[n], 64, "%s", (const char *)sqlite3_column_text(stmt, 1));
        n++;
    }
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return store_db_error(st, rc, err, "read schema");
    return n;
}

/* (Re)creates the capture triggers of one table. */
static int make_triggers(sg_store *st, const char *t, sg_err *err)
{
    char cols[64][64];
    char line[512];
    sbuf b = {0};
    int n, rc;

    n = table_columns(st, t, cols, 64, err);
    if (n < 0)
        return n;

    snprintf(line, sizeof(line),
             "DROP TRIGGER IF EXISTS sg_%s_insert; DROP TRIGGER IF EXISTS sg_%s_update;"
             "DROP TRIGGER IF EXISTS sg_%s_delete; DROP TRIGGER IF EXISTS sg_%s_keys;",
             t, t, t, t);
    sb_add(&b, line);

    /* Ids and owners never change: a row's identity is what replication keys on. */
    snprintf(line, sizeof(line),
             "CREATE TRIGGER sg_%s_keys BEFORE UPDATE OF id, region ON %s "
             "WHEN NEW.id IS NOT OLD.id OR NEW.region IS NOT OLD.region BEGIN "
             "SELECT RAISE(ABORT, '%s: id and region of a record never change'); END;",
             t, t, t);
    sb_add(&b, line);

    snprintf(line, sizeof(line),
             "CREATE TRIGGER sg_%s_insert AFTER INSERT ON %s BEGIN "
             "UPDATE sg_node SET hlc = max(hlc + 1, " HLC_NOW_SQL ");"
             "INSERT INTO sg_changes(hlc, origin, tbl, pk, op, data) "
             "SELECT hlc, id, '%s', NEW.id, 'insert', json_object(",
             t, t, t);
    sb_add(&b, line);
    for (int i = 0, first = 1; i < n; i++) {
        if (strcmp(cols[i], "id") == 0)
            continue;
        snprintf(line, sizeof(line), "%s'%s', NEW.%s", first ? "" : ", ", cols[i], cols[i]);
        sb_add(&b, line);
        first = 0;
    }
    sb_add(&b, ") FROM sg_node; END;");

    snprintf(line, sizeof(line), "CREATE TRIGGER sg_%s_update AFTER UPDATE ON %s WHEN (", t, t);
    sb_add(&b, line);
    for (int i = 0; i < n; i++) {
        snprintf(line, sizeof(line), "%sNEW.%s IS NOT OLD.%s", i ? " OR " : "", cols[i], cols[i]);
        sb_add(&b, line);
    }
    snprintf(line, sizeof(line),
             ") BEGIN UPDATE sg_node SET hlc = max(hlc + 1, " HLC_NOW_SQL ");"
             "INSERT INTO sg_changes(hlc, origin, tbl, pk, op, data) "
             "SELECT hlc, id, '%s', NEW.id, 'update', "
             "(SELECT json_group_object(k, v) FROM (",
             t);
    sb_add(&b, line);
    for (int i = 0, first = 1; i < n; i++) {
        if (strcmp(cols[i], "id") == 0)
            continue;
        snprintf(line, sizeof(line), "%sSELECT '%s' AS k, NEW.%s AS v WHERE NEW.%s IS NOT OLD.%s",
                 first ? "" : " UNION ALL ", cols[i], cols[i], cols[i], cols[i]);
        sb_add(&b, line);
        first = 0;
    }
    sb_add(&b, ")) FROM sg_node; END;");

    snprintf(line, sizeof(line),
             "CREATE TRIGGER sg_%s_delete AFTER DELETE ON %s BEGIN "
             "UPDATE sg_node SET hlc = max(hlc + 1, " HLC_NOW_SQL ");"
             "INSERT INTO sg_changes(hlc, origin, tbl, pk, op, data) "
             "SELECT hlc, id, '%s', OLD.id, 'delete', NULL FROM "
             "sg_node; "
             "END;",
             t, t, t);
    sb_add(&b, line);

    if (b.oom) {
        free(b.p);
        return sg_err_set(err, SG_ENOMEM, "create triggers: out of memory");
    }
    rc = store_exec(st, b.p, err, "create change-log triggers");
    free(b.p);
    return rc;
}

/* Brings the schema to SG_SCHEMA_VERSION and regenerates the triggers, in one transaction. */
static int migrate(sg_store *st, const char *node_id, const char *role, sg_err *err)
{
    sqlite3_stmt *stmt = NULL;
    int version = 0, rc;

    rc = store_exec(st, "BEGIN IMMEDIATE", err, "migrate");
    if (rc < 0)
        return rc;
    rc = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &stmt, NULL);
    if (rc == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW)
        version = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
    stmt = NULL;

    if (version > SG_SCHEMA_VERSION) {
        rc = sg_err_set(err, SG_ESCHEMA,
                        "database schema version %d is newer than this sangamd knows (%d): "
                        "run a newer sangamd",
                        version, SG_SCHEMA_VERSION);
        goto rollback;
    }
    if (version < 1) {
        rc = store_exec(st, sg_schema_sql, err, "create schema v1");
        if (rc < 0)
            goto rollback;
        rc = sqlite3_prepare_v2(st->db, "INSERT INTO sg_node(one, id, role) VALUES (1, ?, ?)", -1,
                                &stmt, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_text(stmt, 1, node_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(stmt, 2, role, -1, SQLITE_STATIC);
            rc = sqlite3_step(stmt);
        }
        sqlite3_finalize(stmt);
        stmt = NULL;
        if (rc != SQLITE_DONE) {
            rc = store_db_error(st, rc, err, "record node identity");
            goto rollback;
        }
    }
    if (version < 2) {
        rc = store_exec(st, sg_migrate_v2_sql, err, "migrate schema to v2");
        if (rc < 0)
            goto rollback;
    }
    if (version < 3) {
        rc = store_exec(st, sg_migrate_v3_sql, err, "migrate schema to v3");
        if (rc < 0)
            goto rollback;
    }
    if (version < 4) {
        rc = store_exec(st, sg_migrate_v4_sql, err, "migrate schema to v4");
        if (rc < 0)
            goto rollback;
    }
    /* Later versions: if (version < 5) { ... } here, each step in this same transaction. */

    rc = sqlite3_prepare_v2(st->db, "SELECT id, role FROM sg_node", -1, &stmt, NULL);
    if (rc != SQLITE_OK || sqlite3_step(stmt) != SQLITE_ROW) {
        sqlite3_finalize(stmt);
        rc = sg_err_set(err, SG_ESCHEMA, "database has no node identity (sg_node is empty)");
        goto rollback;
    }
    if (strcmp((const char *)sqlite3_column_text(stmt, 0), node_id) != 0 ||
        strcmp((const char *)sqlite3_column_text(stmt, 1), role) != 0) {
        rc = sg_err_set(err, SG_ECONFIG,
                        "database belongs to %s node '%s', but this node is %s '%s': "
                        "check [node] id and db",
                        (const char *)sqlite3_column_text(stmt, 1),
                        (const char *)sqlite3_column_text(stmt, 0), role, node_id);
        sqlite3_finalize(stmt);
        goto rollback;
    }
    sqlite3_finalize(stmt);

    for (size_t i = 0; sg_rectypes[i] != NULL; i++) {
        rc = make_triggers(st, sg_rectypes[i]->table, err);
        if (rc < 0)
            goto rollback;
    }
    {
        char pragma[64];
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", SG_SCHEMA_VERSION);
        rc = store_exec(st, pragma, err, "set schema version");
        if (rc < 0)
            goto rollback;
    }
    return store_exec(st, "COMMIT", err, "migrate");

rollback:
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int sg_store_open(sg_store **out, const char *path, const char *node_id, const char *role,
                  sg_err *err)
{
    sg_store *st = NULL;
    sqlite3_stmt *stmt = NULL;
    int rc;

    *out = NULL;
    {
        json_malloc_t jm;
        json_free_t jf;
        json_get_alloc_funcs(&jm, &jf);
        if (jm != json_alloc) /* both are malloc/free underneath: earlier values stay valid */
            json_set_alloc_funcs(json_alloc, json_release);
    }
    st = calloc(1, sizeof(*st));
    if (st == NULL)
        return sg_err_set(err, SG_ENOMEM, "open database: out of memory");
    snprintf(st->node_id, sizeof(st->node_id), "%s", node_id);

    /* NOMUTEX: a connection is only ever used by the thread that opened it. */
    rc = sqlite3_open_v2(path, &st->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = sg_err_set(err, SG_EDB, "open database %s: %s", path,
                        st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        goto close_db;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, 5000);

    /* WAL: readers never block the writer; FULL: a commit survives power loss. */
    rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &stmt, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW ||
        sqlite3_stricmp((const char *)sqlite3_column_text(stmt, 0), "wal") != 0) {
        sqlite3_finalize(stmt);
        rc = sg_err_set(err, SG_EDB, "open database %s: cannot switch to WAL mode: %s", path,
                        sqlite3_errmsg(st->db));
        goto close_db;
    }
    sqlite3_finalize(stmt);
    rc = store_exec(st,
                    "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; "
                    "PRAGMA temp_store = MEMORY;",
                    err, "configure");
    if (rc < 0)
        goto close_db;

    rc = migrate(st, node_id, role, err);
    if (rc < 0) {
        sg_err_wrap(err, "open database %s", path);
        goto close_db;
    }
    *out = st;
    return 0;

close_db:
    sg_store_close(st);
    return rc;
}

int sg_store_open_reader(sg_store **out, const char *path, sg_err *err)
{
    sg_store *st;
    int rc;

    *out = NULL;
    st = calloc(1, sizeof(*st));
    if (st == NULL)
        return sg_err_set(err, SG_ENOMEM, "open database: out of memory");
    rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = sg_err_set(err, SG_EDB, "open database %s for reading: %s", path,
                        st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        sg_store_close(st);
        return rc;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, 5000);
    *out = st;
    return 0;
}

void sg_store_close(sg_store *st)
{
    if (st == NULL)
        return;
    for (unsigned i = 0; i < STMT_CACHE; i++) {
        sqlite3_finalize(st->cache[i].stmt);
        free(st->cache[i].sql);
    }
    if (st->in_txn)
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(st->db);
    free(st);
}

sqlite3 *sg_store_db(sg_store *st)
{
    return st->db;
}

const char *sg_store_node_id(const sg_store *st)
{
    return st->node_id;
}

void sg_store_hold(sg_store *st, const char *why)
{
    st->hold = why;
}

int sg_store_begin(sg_store *st, sg_err *err)
{
    int rc;

    if (st->hold != NULL)
        return sg_err_set(err, SG_EBUSY, "%s", st->hold);
    if (st->in_txn)
        return sg_err_set(err, SG_EINVAL, "transaction already open");
    rc = store_exec(st, "BEGIN IMMEDIATE", err, "begin");
    if (rc == 0)
        st->in_txn = 1;
    return rc;
}

int sg_store_read_begin(sg_store *st, sg_err *err)
{
    int rc = store_exec(st, "BEGIN DEFERRED", err, "begin read");
    if (rc == 0)
        st->in_txn = 1;
    return rc;
}

void sg_store_read_end(sg_store *st)
{
    if (st->in_txn)
        sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
    st->in_txn = 0;
}

void sg_store_on_commit(sg_store *st, void (*fn)(void *arg), void *arg)
{
    st->on_commit = fn;
    st->on_commit_arg = arg;
}

int sg_store_commit(sg_store *st, sg_err *err)
{
    int rc = store_exec(st, "COMMIT", err, "commit");
    if (rc < 0) {
        /* A failed COMMIT (disk full, I/O error) leaves the transaction open: undo it so the
         * connection is usable and nothing half-done is kept. */
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    }
    st->in_txn = 0;
    if (rc == 0 && st->on_commit != NULL)
        st->on_commit(st->on_commit_arg);
    return rc;
}

void sg_store_rollback(sg_store *st)
{
    if (st->in_txn)
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    st->in_txn = 0;
}

/* A JSON string from column text; text that is not valid UTF-8 (possible only through the
 * shell) has its bad bytes replaced with '?' so the API can always answer. */
static json_t *text_json(const unsigned char *s, int n)
{
    json_t *j = json_stringn((const char *)s, (size_t)n);
    char *copy;
    if (j != NULL)
        return j;
    copy = malloc((size_t)n + 1);
    if (copy == NULL)
        return NULL;
    for (int i = 0; i < n; i++)
        copy[i] = (s[i] >= 0x80 || s[i] == 0) ? '?' : (char)s[i];
    j = json_stringn(copy, (size_t)n);
    free(copy);
    return j;
}

/* Column i of the current row as JSON. */
static json_t *column_json(sqlite3_stmt *stmt, int i)
{
    switch (sqlite3_column_type(stmt, i)) {
    case SQLITE_INTEGER:
        return json_integer(sqlite3_column_int64(stmt, i));
    case SQLITE_FLOAT:
        return json_real(sqlite3_column_double(stmt, i));
    case SQLITE_TEXT:
        return text_json(sqlite3_column_text(stmt, i), sqlite3_column_bytes(stmt, i));
    default:
        return json_null();
    }
}

/* The current row as an object keyed by column name. */
static json_t *row_json(sqlite3_stmt *stmt)
{
    json_t *row = json_object();
    int n = sqlite3_column_count(stmt);
    if (row == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        if (json_object_set_new(row, sqlite3_column_name(stmt, i), column_json(stmt, i)) != 0) {
            json_decref(row);
            return NULL;
        }
    }
    return row;
}

/* Binds a JSON scalar (string, integer or null) to parameter i. */
static int bind_json(sqlite3_stmt *stmt, int i, json_t *v)
{
    if (json_is_string(v))
        return sqlite3_bind_text(stmt, i, json_string_value(v), (int)json_string_length(v),
                                 SQLITE_STATIC);
    if (json_is_integer(v))
        return sqlite3_bind_int64(stmt, i, json_integer_value(v));
    return sqlite3_bind_null(stmt, i);
}

int sg_store_get(json_t **out, sg_store *st, const sg_rectype *rt, const char *id, sg_err *err)
{
    char sql[128];
    sqlite3_stmt *stmt;
    int rc;

    *out = NULL;
    snprintf(sql, sizeof(sql), "SELECT * FROM %s WHERE id = ?", rt->table);
    rc = store_stmt(st, sql, &stmt, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(stmt);
        return sg_err_set(err, SG_ENOTFOUND, "no %s with id '%.64s'", rt->singular, id);
    }
    if (rc != SQLITE_ROW) {
        rc = store_db_error(st, rc, err, rt->table);
        sqlite3_reset(stmt);
        return rc;
    }
    *out = row_json(stmt);
    sqlite3_reset(stmt);
    return *out ? 0 : sg_err_set(err, SG_ENOMEM, "read %s: out of memory", rt->singular);
}

/* 1 if a row with this id exists in table, 0 if not, <0 on error. */
static int row_exists(sg_store *st, const char *table, const char *id, sg_err *err)
{
    char sql[128];
    sqlite3_stmt *stmt;
    int rc;

    snprintf(sql, sizeof(sql), "SELECT 1 FROM %s WHERE id = ?", table);
    rc = store_stmt(st, sql, &stmt, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return store_db_error(st, rc, err, table);
}

int sg_store_check(sg_store *st, const sg_rectype *rt, json_t *fields, int mode, unsigned flags,
                   sg_err *err)
{
    const char *key;
    json_t *v;
    int rc;

    rc = sg_record_check(rt, fields, mode, (flags & SG_WRITE_SERVER) != 0, err);
    if (rc < 0)
        return rc;
    json_object_foreach(fields, key, v)
    {
        const sg_field *f = sg_rectype_field(rt, key, -1);
        if (f->type != SG_FT_REF || !json_is_string(v))
            continue;
        rc = row_exists(st, f->ref, json_string_value(v), err);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            const sg_rectype *target = sg_rectype_find(f->ref, -1);
            return sg_err_set(err, SG_EREFERENCE, "%s: no %s with id '%.64s'", key,
                              target ? target->singular : f->ref, json_string_value(v));
        }
    }
    return 0;
}

int sg_store_create(json_t **out, sg_store *st, const sg_rectype *rt, json_t *fields,
                    unsigned flags, sg_err *err)
{
    char id[SG_ULID_LEN + 1], now[32];
    sbuf b = {0};
    sqlite3_stmt *stmt;
    const char *key;
    json_t *v;
    int rc, n = 4;

    *out = NULL;
    if (st->hold != NULL)
        return sg_err_set(err, SG_EBUSY, "%s", st->hold);
    rc = (flags & SG_WRITE_CHECKED) ? 0 : sg_store_check(st, rt, fields, 'c', flags, err);
    if (rc < 0)
        return rc;
    if (sg_ulid_next(id, &st->ids, sg_now_ms()) < 0)
        return sg_err_set(err, SG_EIO, "make id: random generator failed");
    sg_now_iso(now);

    sb_add(&b, "INSERT INTO ");
    sb_add(&b, rt->table);
    sb_add(&b, " (id, region, created_at, updated_at");
    json_object_foreach(fields, key, v)
    {
        sb_add(&b, ", ");
        sb_add(&b, sg_rectype_field(rt, key, -1)->name); /* the descriptor's name, not input */
    }
    sb_add(&b, ") VALUES (?, ?, ?, ?");
    json_object_foreach(fields, key, v) sb_add(&b, ", ?");
    sb_add(&b, ")");
    if (b.oom) {
        free(b.p);
        return sg_err_set(err, SG_ENOMEM, "create %s: out of memory", rt->singular);
    }
    rc = store_stmt(st, b.p, &stmt, err);
    free(b.p);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, st->node_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 4, now, -1, SQLITE_STATIC);
    json_object_foreach(fields, key, v) bind_json(stmt, ++n, v);
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE) {
        rc = store_db_error(st, rc, err, rt->singular);
        sqlite3_reset(stmt);
        return rc;
    }
    sqlite3_reset(stmt);
    if (flags & SG_WRITE_ID_ONLY) {
        /* Bulk writes (CSV import) need only the id: re-reading every row would cost as much
         * as writing it. */
        *out = json_pack("{s:s}", "id", id);
        return *out ? 0 : sg_err_set(err, SG_ENOMEM, "create %s: out of memory", rt->singular);
    }
    return sg_store_get(out, st, rt, id, err);
}

int sg_store_update(json_t **out, sg_store *st, const sg_rectype *rt, const char *id,
                    json_t *fields, unsigned flags, sg_err *err)
{
    char now[32];
    sbuf b = {0};
    sqlite3_stmt *stmt;
    json_t *old = NULL, *changed = NULL, *v;
    const char *key;
    int rc, n = 1;

    *out = NULL;
    if (st->hold != NULL)
        return sg_err_set(err, SG_EBUSY, "%s", st->hold);
    rc = sg_store_get(&old, st, rt, id, err);
    if (rc < 0)
        return rc;
    rc = sg_store_check(st, rt, fields, 'u', flags, err);
    if (rc < 0)
        goto drop_old;
    /* Only values that differ are written: repeating the current value is a no-op, so it
     * neither moves updated_at nor adds a change-log entry. */
    changed = json_object();
    if (changed == NULL) {
        rc = sg_err_set(err, SG_ENOMEM, "update %s: out of memory", rt->singular);
        goto drop_old;
    }
    json_object_foreach(fields, key, v)
    {
        /* A value that could not be added would otherwise vanish from the update, which would
         * then report success with the field unchanged. */
        if (!json_equal(v, json_object_get(old, key)) && json_object_set(changed, key, v) != 0) {
            rc = sg_err_set(err, SG_ENOMEM, "update %s: out of memory", rt->singular);
            goto drop_old;
        }
    }
    fields = changed;
    if (json_object_size(fields) == 0) {
        json_decref(changed);
        *out = old;
        return 0;
    }
    sg_now_iso(now);
    sb_add(&b, "UPDATE ");
    sb_add(&b, rt->table);
    sb_add(&b, " SET updated_at = ?");
    json_object_foreach(fields, key, v)
    {
        sb_add(&b, ", ");
        sb_add(&b, sg_rectype_field(rt, key, -1)->name);
        sb_add(&b, " = ?");
    }
    sb_add(&b, " WHERE id = ?");
    if (b.oom) {
        free(b.p);
        rc = sg_err_set(err, SG_ENOMEM, "update %s: out of memory", rt->singular);
        goto drop_old;
    }
    rc = store_stmt(st, b.p, &stmt, err);
    free(b.p);
    if (rc < 0)
        goto drop_old;
    sqlite3_bind_text(stmt, 1, now, -1, SQLITE_STATIC);
    json_object_foreach(fields, key, v) bind_json(stmt, ++n, v);
    sqlite3_bind_text(stmt, n + 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE) {
        rc = store_db_error(st, rc, err, rt->singular);
        sqlite3_reset(stmt);
        goto drop_old;
    }
    sqlite3_reset(stmt);
    json_decref(changed);
    json_decref(old);
    return sg_store_get(out, st, rt, id, err);

drop_old:
    json_decref(changed);
    json_decref(old);
    return rc;
}

int sg_store_delete(sg_store *st, const sg_rectype *rt, const char *id, sg_err *err)
{
    char sql[128];
    sqlite3_stmt *stmt;
    int rc;

    if (st->hold != NULL)
        return sg_err_set(err, SG_EBUSY, "%s", st->hold);
    snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE id = ?", rt->table);
    rc = store_stmt(st, sql, &stmt, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE) {
        if (sqlite3_extended_errcode(st->db) == SQLITE_CONSTRAINT_FOREIGNKEY)
            rc = sg_err_set(err, SG_ECONFLICT,
                            "%s '%.64s' is still referred to by other records; remove those "
                            "first",
                            rt->singular, id);
        else
            rc = store_db_error(st, rc, err, rt->singular);
        sqlite3_reset(stmt);
        return rc;
    }
    sqlite3_reset(stmt);
    if (sqlite3_changes(st->db) == 0)
        return sg_err_set(err, SG_ENOTFOUND, "no %s with id '%.64s'", rt->singular, id);
    return 0;
}

/* Parses a whole decimal int64; returns 0 on success. */
static int parse_i64(const char *s, int64_t *out)
{
    char *end;
    long long v;
    if (*s == '\0')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

int sg_store_list(json_t **out_items, char **out_next, sg_store *st, const sg_rectype *rt,
                  const sg_query *q, sg_err *err)
{
    sbuf b = {0};
    sqlite3_stmt *stmt;
    json_t *items = NULL, *v;
    const char *key, *search = NULL, *datecol = rt->date_field ? rt->date_field : "created_at";
    char *like = NULL;
    int rc, n = 0, count = 0;

    *out_items = NULL;
    *out_next = NULL;
    for (size_t i = 0; i < rt->nfields; i++)
        if (rt->fields[i].flags & SG_F_SEARCH)
            search = rt->fields[i].name;

    sb_add(&b, "SELECT * FROM ");
    sb_add(&b, rt->table);
    sb_add(&b, " WHERE 1");
    if (q->eq != NULL) {
        json_object_foreach(q->eq, key, v)
        {
            const sg_field *f = sg_rectype_field(rt, key, -1);
            if (f == NULL) {
                free(b.p);
                return sg_err_set(err, SG_EUNKNOWN, "%s have no field '%.64s'", rt->table, key);
            }
            sb_add(&b, " AND ");
            sb_add(&b, f->name);
            sb_add(&b, json_string_length(v) == 0 ? " IS NULL" : " = ?");
        }
    }
    if (q->region)
        sb_add(&b, " AND region = ?");
    if (q->q) {
        if (search == NULL) {
            free(b.p);
            return sg_err_set(err, SG_EUNKNOWN, "%s cannot be searched with q=", rt->table);
        }
        sb_add(&b, " AND ");
        sb_add(&b, search);
        sb_add(&b, " LIKE ? ESCAPE '\\'");
    }
    if (q->from) {
        sb_add(&b, " AND ");
        sb_add(&b, datecol);
        sb_add(&b, " >= ?");
    }
    if (q->to) {
        sb_add(&b, " AND ");
        sb_add(&b, datecol);
        /* created_at carries a time: compare its date part so to= is inclusive. */
        sb_add(&b, rt->date_field ? " <= ?" : " < date(?, '+1 day')");
    }
    if (q->after)
        sb_add(&b, " AND id > ?");
    sb_add(&b, " ORDER BY id LIMIT ?");
    if (b.oom) {
        free(b.p);
        return sg_err_set(err, SG_ENOMEM, "list: out of memory");
    }
    rc = store_stmt(st, b.p, &stmt, err);
    free(b.p);
    if (rc < 0)
        return rc;

    if (q->eq != NULL) {
        json_object_foreach(q->eq, key, v)
        {
            const sg_field *f = sg_rectype_field(rt, key, -1);
            const char *s = json_string_value(v);
            int64_t iv;
            if (s == NULL || *s == '\0')
                continue;
            if (f->type == SG_FT_INT) {
                if (parse_i64(s, &iv) < 0) {
                    sqlite3_reset(stmt);
                    return sg_err_set(err, SG_ETYPE, "%s: expected a whole number", key);
                }
                sqlite3_bind_int64(stmt, ++n, iv);
            } else {
                sqlite3_bind_text(stmt, ++n, s, -1, SQLITE_STATIC);
            }
        }
    }
    if (q->region)
        sqlite3_bind_text(stmt, ++n, q->region, -1, SQLITE_STATIC);
    if (q->q) {
        size_t len = strlen(q->q), k = 0;
        like = malloc(len * 2 + 3);
        if (like == NULL) {
            sqlite3_reset(stmt);
            return sg_err_set(err, SG_ENOMEM, "list: out of memory");
        }
        like[k++] = '%';
        for (size_t i = 0; i < len; i++) {
            if (q->q[i] == '%' || q->q[i] == '_' || q->q[i] == '\\')
                like[k++] = '\\';
            like[k++] = q->q[i];
        }
        like[k++] = '%';
        like[k] = '\0';
        rc = sqlite3_bind_text(stmt, ++n, like, -1, SQLITE_TRANSIENT);
        free(like);
        if (rc != SQLITE_OK) {
            sqlite3_reset(stmt);
            return store_db_error(st, rc, err, "list");
        }
    }
    if (q->from)
        sqlite3_bind_text(stmt, ++n, q->from, -1, SQLITE_STATIC);
    if (q->to)
        sqlite3_bind_text(stmt, ++n, q->to, -1, SQLITE_STATIC);
    if (q->after)
        sqlite3_bind_text(stmt, ++n, q->after, -1, SQLITE_STATIC);
    sqlite3_bind_int(stmt, ++n, q->limit + 1);

    items = json_array();
    if (items == NULL) {
        sqlite3_reset(stmt);
        return sg_err_set(err, SG_ENOMEM, "list: out of memory");
    }
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (++count > q->limit) {
            json_t *last = json_array_get(items, json_array_size(items) - 1);
            *out_next = strdup(json_string_value(json_object_get(last, "id")));
            break;
        }
        if (json_array_append_new(items, row_json(stmt)) != 0) {
            rc = SQLITE_NOMEM;
            break;
        }
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        rc = store_db_error(st, rc, err, "list");
        sqlite3_reset(stmt);
        json_decref(items);
        free(*out_next);
        *out_next = NULL;
        return rc;
    }
    sqlite3_reset(stmt);
    *out_items = items;
    return 0;
}

int sg_store_changes(json_t **out_items, int64_t *out_next, sg_store *st, int64_t since, int limit,
                     sg_err *err)
{
    sqlite3_stmt *stmt;
    json_t *items;
    int rc, count = 0;

    *out_items = NULL;
    *out_next = 0;
    rc = store_stmt(st,
                    "SELECT seq, hlc, origin, tbl, pk, op, data FROM sg_changes WHERE seq > ? "
                    "ORDER BY seq LIMIT ?",
                    &stmt, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(stmt, 1, since);
    sqlite3_bind_int(stmt, 2, limit + 1);
    items = json_array();
    if (items == NULL) {
        sqlite3_reset(stmt);
        return sg_err_set(err, SG_ENOMEM, "changes: out of memory");
    }
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        json_t *c, *data = json_null();
        if (++count > limit) {
            /* next is the last seq returned: the caller asks for seq > next. */
            *out_next = json_integer_value(
                json_object_get(json_array_get(items, json_array_size(items) - 1), "seq"));
            break;
        }
        if (sqlite3_column_type(stmt, 6) == SQLITE_TEXT) {
            json_decref(data);
            data = store_json_loads((const char *)sqlite3_column_text(stmt, 6), JSON_DECODE_ANY);
            if (data == NULL)
                data = json_null();
        }
        c = json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:o}", "seq",
                      (json_int_t)sqlite3_column_int64(stmt, 0), "hlc",
                      (json_int_t)sqlite3_column_int64(stmt, 1), "origin",
                      (const char *)sqlite3_column_text(stmt, 2), "table",
                      (const char *)sqlite3_column_text(stmt, 3), "pk",
                      (const char *)sqlite3_column_text(stmt, 4), "op",
                      (const char *)sqlite3_column_text(stmt, 5), "data", data);
        if (c == NULL || json_array_append_new(items, c) != 0) {
            rc = SQLITE_NOMEM;
            break;
        }
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        rc = store_db_error(st, rc, err, "changes");
        sqlite3_reset(stmt);
        json_decref(items);
        return rc;
    }
    sqlite3_reset(stmt);
    *out_items = items;
    return 0;
}

int64_t sg_store_seq(sg_store *st)
{
    sqlite3_stmt *stmt;
    int64_t seq = 0;
    if (store_stmt(st, "SELECT seq FROM sqlite_sequence WHERE name = 'sg_changes'", &stmt, NULL) <
        0)
        return -1;
    if (sqlite3_step(stmt) == SQLITE_ROW)
        seq = sqlite3_column_int64(stmt, 0);
    sqlite3_reset(stmt);
    return seq;
}

int64_t sg_store_hlc(sg_store *st)
{
    sqlite3_stmt *stmt;
    int64_t v = 0;
    if (store_stmt(st, "SELECT hlc FROM sg_node", &stmt, NULL) < 0)
        return -1;
    if (sqlite3_step(stmt) == SQLITE_ROW)
        v = sqlite3_column_int64(stmt, 0);
    sqlite3_reset(stmt);
    return v;
}

int64_t sg_store_count(sg_store *st, const sg_rectype *rt)
{
    char sql[128];
    sqlite3_stmt *stmt;
    int64_t n = -1;
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", rt->table);
    if (store_stmt(st, sql, &stmt, NULL) < 0)
        return -1;
    if (sqlite3_step(stmt) == SQLITE_ROW)
        n = sqlite3_column_int64(stmt, 0);
    sqlite3_reset(stmt);
    return n;
}
