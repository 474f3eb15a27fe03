/*
 * test_replication.c - region-to-hub replication (proto/PROTOCOL.md section 7) held to its
 * contract with real sangamd processes: one hub and regions on 127.0.0.1, mutual TLS 1.3 with
 * certificates from deploy/make-test-pki.sh, short keepalive and reconnect delays.
 *
 * Two groups:
 * - replication: each test starts its own hub and regions in private temp dirs and drives them
 *   through their HTTP API (concurrent writers in forked children), while the hub is killed,
 *   stopped, wiped, restored from a backup or frozen with SIGSTOP; then waits for the regions to
 *   catch up and checks the invariant with assert_converged().
 * - refusals: one hub and one good region ("north") that keeps replicating while each test
 *   attacks the hub: a certificate from another CA, no certificate, TLS 1.2, a peer with a valid
 *   certificate sending another region's rows (a hostile client written here with server/tls.h
 *   and the frame and batch encoders), oversized and malformed frames, plain garbage. After each,
 *   north must still converge and the hub must still be running.
 *
 * The invariant (assert_converged): for every record table the hub's rows of region R equal the
 * region's rows, column by column; the hub's cursor for R (sg_regions.last_seq) is the region's
 * last seq; and, when the region's log was never pruned and no snapshot happened, the hub logged
 * the region's seqs 1..N exactly once each and in order (sg_applied); every database
 * passes PRAGMA integrity_check and foreign_key_check.
 *
 * Teardown stops every daemon with SIGTERM and requires exit status 0 and no sanitizer report in
 * its log, so the suite built with SANGAM_ASAN/SANGAM_UBSAN also checks sangamd itself.
 * SANGAM_TEST_FILTER=test_liveness (cmocka wildcards) runs a subset; SANGAM_KEEP_TMP keeps the
 * nodes' directories and logs.
 *
 * Every wait is a bounded poll that fails with what it waited for and the tail of the logs. No
 * sleep is an assertion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sqlite3.h>

#include "sangam/batch.h"
#include "sangam/frame.h"
#include "store.h"
#include "testutil.h"
#include "tls.h"

#ifndef SANGAM_SOURCE_DIR
#define SANGAM_SOURCE_DIR "."
#endif

#define JSON_CT     "application/json"
#define WAIT_MS     60000 /* the longest any single wait may take */
#define KEEPALIVE_S 1     /* [replication] keepalive of every node */
#define MAX_REGIONS 4
#define MAX_KIDS    8

/* The record tables, in dependency order (as replication sends them). */
static const char *const tables[] = {"organisations", "members", "sessions",
                                     "attendance",    "issues",  "issue_updates"};
#define NTABLES (sizeof(tables) / sizeof(tables[0]))

/* One test's world: the certificates, the hub, its regions and the writers still running. */
typedef struct ctx {
    char pki[PATH_MAX];     /* coalition PKI: ca.pem, NAME.pem, NAME.key (owned dir) */
    char foreign[PATH_MAX]; /* another CA's PKI, for certificates the hub must refuse */
    int hub_port;           /* the hub's [listen] port */
    tu_daemon hub;
    tu_daemon reg[MAX_REGIONS];
    int nreg;
    pid_t kids[MAX_KIDS]; /* forked writers not yet reaped */
    int nkids;
} ctx;

/* --- logs and diagnostics --- */

/* Prints the last n lines of a daemon's log that are not per-request lines. */
static void log_tail(const tu_daemon *d, int n)
{
    size_t len = 0;
    char *buf;
    const char **lines;
    int count = 0, cap = 0, first;

    if (d->log[0] == '\0' || (buf = tu_read_file(d->log, &len)) == NULL)
        return;
    lines = NULL;
    for (char *p = buf, *nl; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        if (nl == NULL)
            nl = p + strlen(p) - 1;
        else
            *nl = '\0';
        if (strstr(p, "event=request ") != NULL)
            continue;
        if (count == cap) {
            const char **nlines;
            cap = cap ? cap * 2 : 256;
            nlines = realloc(lines, (size_t)cap * sizeof(*lines));
            if (nlines == NULL)
                break;
            lines = nlines;
        }
        lines[count++] = p;
    }
    print_message("--- %s (%s), last %d of %d lines without requests ---\n", d->id, d->log,
                  n < count ? n : count, count);
    first = count > n ? count - n : 0;
    for (int i = first; i < count; i++)
        print_message("  %s\n", lines[i]);
    free(lines);
    free(buf);
}

static void dump_logs(const ctx *c)
{
    log_tail(&c->hub, 30);
    for (int i = 0; i < c->nreg; i++)
        log_tail(&c->reg[i], 20);
}

/* How many lines of d's log contain needle. */
static int log_count(const tu_daemon *d, const char *needle)
{
    char *buf = tu_read_file(d->log, NULL), *p;
    int n = 0;

    if (buf == NULL)
        return 0;
    for (p = buf; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(buf);
    return n;
}

/* Polls cond every 20 ms for up to ms; on timeout fails with the message and the logs. */
#define WAIT_UNTIL(c, ms, cond, ...)                                                               \
    do {                                                                                           \
        uint64_t wait_end_ = tu_now_ms() + (uint64_t)(ms);                                         \
        while (!(cond)) {                                                                          \
            if (tu_now_ms() >= wait_end_) {                                                        \
                print_message("timed out after %d ms waiting until ", (int)(ms));                  \
                print_message(__VA_ARGS__);                                                        \
                print_message("\n");                                                               \
                dump_logs(c);                                                                      \
                fail();                                                                            \
            }                                                                                      \
            tu_sleep_ms(20);                                                                       \
        }                                                                                          \
    } while (0)

/* --- the nodes --- */

static int run_pki(const char *dir, const char *const *names)
{
    char log[PATH_MAX], script[PATH_MAX];
    char *argv[16];
    int n = 0, status;
    pid_t pid;

    snprintf(script, sizeof(script), "%s/deploy/make-test-pki.sh", SANGAM_SOURCE_DIR);
    snprintf(log, sizeof(log), "%s.log", dir);
    argv[n++] = "/bin/bash";
    argv[n++] = script;
    argv[n++] = (char *)dir;
    for (; *names != NULL && n < 15; names++)
        argv[n++] = (char *)*names;
    argv[n] = NULL;
    if (tu_spawn(&pid, argv, log) < 0 || tu_wait_exit(pid, 60000, &status) < 0 ||
        tu_exit_code(status) != 0) {
        char *out = tu_read_file(log, NULL);
        fprintf(stderr, "make-test-pki.sh %s failed:\n%s\n", dir, out ? out : "");
        free(out);
        return -1;
    }
    unlink(log);
    return 0;
}

/* Makes the coalition PKI (hub and every region the tests use) and a foreign CA's. */
static int ctx_new(ctx **out)
{
    static const char *const ours[] = {"hub",  "north", "south", "east",
                                       "west", "rogue", "eve",   NULL};
    static const char *const theirs[] = {"west", NULL};
    ctx *c = calloc(1, sizeof(*c));

    *out = NULL;
    if (c == NULL || tu_tmpdir(c->pki, sizeof(c->pki), "pki") < 0) {
        free(c);
        return -1;
    }
    snprintf(c->foreign, sizeof(c->foreign), "%s/foreign", c->pki);
    if (run_pki(c->pki, ours) < 0 || run_pki(c->foreign, theirs) < 0) {
        tu_rmtree(c->pki);
        free(c);
        return -1;
    }
    *out = c;
    return 0;
}

/* Writes d's config: the hub when id is "hub", else a region dialling c's hub with the
 * certificate id.pem from cert_dir (c->pki when NULL). extra is appended ([replication] keys). */
static int write_config(ctx *c, tu_daemon *d, const char *id, const char *cert_dir,
                        const char *extra)
{
    char cfg[4096];
    int hub = strcmp(id, "hub") == 0;
    const char *certs = cert_dir ? cert_dir : c->pki;

    snprintf(cfg, sizeof(cfg),
             "[node]\nrole = %s\nid = %s\ndb = %s\n[api]\nsocket = %s\n"
             "%s127.0.0.1:%d\n"
             "[tls]\nca = %s/ca.pem\ncert = %s/%s.pem\nkey = %s/%s.key\n"
             "[replication]\nkeepalive = %ds\n%s%s",
             hub ? "hub" : "region", id, d->db, d->sock,
             hub ? "[listen]\naddress = " : "[hub]\naddress = ", c->hub_port, c->pki, certs, id,
             certs, id, KEEPALIVE_S, hub ? "" : "reconnect_max = 1s\n", extra ? extra : "");
    return tu_write_file(d->config, cfg);
}

static void node_init(ctx *c, tu_daemon *d, const char *id, const char *cert_dir, const char *extra)
{
    assert_int_equal(tu_daemon_init(d, id, 0, NULL), 0);
    assert_int_equal(write_config(c, d, id, cert_dir, extra), 0);
}

static void node_start(ctx *c, tu_daemon *d)
{
    if (tu_daemon_start(d) != 0) {
        dump_logs(c);
        log_tail(d, 40);
        fail_msg("sangamd %s did not start (config %s)", d->id, d->config);
    }
}

/* Starts the hub on a free port and n regions named in ids (NULL-terminated); extra is the
 * regions' additional [replication] config. */
static void cluster_start(ctx *c, const char *extra, const char *const *ids)
{
    c->hub_port = tu_free_port();
    assert_true(c->hub_port > 0);
    node_init(c, &c->hub, "hub", NULL, NULL);
    node_start(c, &c->hub);
    for (c->nreg = 0; ids[c->nreg] != NULL; c->nreg++) {
        assert_true(c->nreg < MAX_REGIONS);
        node_init(c, &c->reg[c->nreg], ids[c->nreg], NULL, extra);
        node_start(c, &c->reg[c->nreg]);
    }
}

static void kids_reap(ctx *c)
{
    for (int i = 0; i < c->nkids; i++) {
        int status;
        kill(c->kids[i], SIGKILL);
        waitpid(c->kids[i], &status, 0);
    }
    c->nkids = 0;
}

/* Stops d with SIGTERM (so that a sanitizer build checks for leaks at exit) and looks through
 * its log for sanitizer reports. Returns 0, or -1 (printed) when it did not exit with 0 or a
 * sanitizer spoke. */
static int node_finish(tu_daemon *d)
{
    static const char *const marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                        "runtime error:", NULL};
    int code = 0, bad = 0;
    char *log;

    if (d->pid > 0) {
        kill(d->pid, SIGCONT); /* a test may have left it stopped */
        code = tu_daemon_stop(d);
        if (code != 0) {
            print_message("%s: sangamd exited with %d on SIGTERM\n", d->id, code);
            bad = 1;
        }
    }
    log = d->log[0] ? tu_read_file(d->log, NULL) : NULL;
    for (int i = 0; log != NULL && marks[i] != NULL; i++) {
        const char *at = strstr(log, marks[i]);
        if (at != NULL) {
            print_message("%s: sanitizer report in %s:\n%.3000s\n", d->id, d->log, at);
            bad = 1;
        }
    }
    free(log);
    if (bad && getenv("SANGAM_KEEP_TMP") == NULL)
        print_message("(set SANGAM_KEEP_TMP=1 to keep %s)\n", d->dir);
    return bad ? -1 : 0;
}

/* Stops every process of the test and removes its directories (the PKI stays). Returns -1 when
 * a daemon did not stop cleanly or a sanitizer reported something. */
static int cluster_cleanup(ctx *c)
{
    int rc = 0;

    kids_reap(c);
    if (node_finish(&c->hub) < 0)
        rc = -1;
    tu_daemon_cleanup(&c->hub);
    for (int i = 0; i < c->nreg; i++) {
        if (node_finish(&c->reg[i]) < 0)
            rc = -1;
        tu_daemon_cleanup(&c->reg[i]);
    }
    memset(&c->hub, 0, sizeof(c->hub));
    memset(c->reg, 0, sizeof(c->reg));
    c->nreg = 0;
    return rc;
}

static void remove_db_files(const char *db)
{
    char p[PATH_MAX + 8];
    unlink(db);
    snprintf(p, sizeof(p), "%s-wal", db);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", db);
    unlink(p);
}

static int copy_file(const char *from, const char *to)
{
    size_t len = 0;
    char *buf = tu_read_file(from, &len);
    FILE *f;
    int ok;

    if (buf == NULL)
        return -1;
    f = fopen(to, "wb");
    ok = f != NULL && fwrite(buf, 1, len, f) == len;
    if (f != NULL && fclose(f) != 0)
        ok = 0;
    free(buf);
    return ok ? 0 : -1;
}

/* Copies a stopped node's database (and its WAL, if any) from db to dst. */
static void copy_db(const char *db, const char *dst)
{
    char a[PATH_MAX + 8], b[PATH_MAX + 8];
    remove_db_files(dst);
    assert_int_equal(copy_file(db, dst), 0);
    snprintf(a, sizeof(a), "%s-wal", db);
    snprintf(b, sizeof(b), "%s-wal", dst);
    if (access(a, F_OK) == 0)
        assert_int_equal(copy_file(a, b), 0);
}

/* --- HTTP --- */

/* A request that must answer want; returns the parsed body (new reference, may be NULL). */
static json_t *req(ctx *c, tu_daemon *d, int want, const char *method, const char *path,
                   const char *body)
{
    tu_resp r;
    json_t *j;

    if (tu_http(&r, d, 0, method, path, body ? JSON_CT : NULL, body, body ? strlen(body) : 0) < 0) {
        dump_logs(c);
        fail_msg("%s %s on %s: no answer", method, path, d->id);
    }
    if (r.status != want) {
        print_message("%s %s on %s: expected %d, got %ld: %s\n", method, path, d->id, want,
                      r.status, r.raw);
        tu_resp_free(&r);
        fail();
    }
    j = r.json;
    r.json = NULL;
    tu_resp_free(&r);
    return j;
}

/* Creates a record through d's API; its id into id. */
static void create(ctx *c, tu_daemon *d, char id[40], const char *table, const char *body)
{
    char path[64];
    json_t *j;

    snprintf(path, sizeof(path), "/v1/%s", table);
    j = req(c, d, 201, "POST", path, body);
    assert_non_null(j);
    assert_true(json_is_string(json_object_get(j, "id")));
    snprintf(id, 40, "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
}

/* GET /v1/status, or NULL when the node does not answer (no assertion: used in polls). */
static json_t *status_of(tu_daemon *d)
{
    tu_resp r;
    json_t *j;

    if (d->pid <= 0 || tu_http(&r, d, 0, "GET", "/v1/status", NULL, NULL, 0) < 0)
        return NULL;
    j = r.status == 200 ? r.json : NULL;
    if (j != NULL)
        r.json = NULL;
    tu_resp_free(&r);
    return j;
}

/* A field of a region's "replication" status; -1 when missing. Booleans read as 0/1. */
static long long repl_int(json_t *st, const char *key)
{
    json_t *v = json_object_get(json_object_get(st, "replication"), key);
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_boolean(v))
        return json_is_true(v);
    return -1;
}

/* The region is connected and the hub acknowledged everything it has. */
static int caught_up(tu_daemon *d)
{
    json_t *st = status_of(d);
    int ok = st != NULL && repl_int(st, "connected") == 1 && repl_int(st, "pending") == 0 &&
             repl_int(st, "local_seq") == repl_int(st, "acked_seq");
    json_decref(st);
    return ok;
}

static long long region_seq(tu_daemon *d)
{
    json_t *st = status_of(d);
    long long v = st ? repl_int(st, "local_seq") : -1;
    json_decref(st);
    return v;
}

/* 1 when d says connected, 0 when it says not, -1 when it does not answer. */
static int region_connected(tu_daemon *d)
{
    json_t *st = status_of(d);
    int v = st ? (int)repl_int(st, "connected") : -1;
    json_decref(st);
    return v;
}

/* d's pending count while it says it is disconnected, else -1. */
static long long pending_offline(tu_daemon *d)
{
    json_t *st = status_of(d);
    long long v = st && repl_int(st, "connected") == 0 ? repl_int(st, "pending") : -1;
    json_decref(st);
    return v;
}

/* d's replication last_error (new string, caller frees), or NULL. */
static char *region_last_error(tu_daemon *d)
{
    json_t *st = status_of(d);
    json_t *e = json_object_get(json_object_get(st, "replication"), "last_error");
    char *s = json_is_string(e) ? strdup(json_string_value(e)) : NULL;
    json_decref(st);
    return s;
}

/* --- reading databases --- */

static sqlite3 *db_open(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        print_message("cannot open %s: %s\n", path, db ? sqlite3_errmsg(db) : "?");
        sqlite3_close(db);
        fail();
    }
    sqlite3_busy_timeout(db, 10000);
    return db;
}

/* One integer from sql with an optional text parameter ?1; dflt when there is no row. */
static long long db_int(sqlite3 *db, const char *sql, const char *arg, long long dflt)
{
    sqlite3_stmt *stmt = NULL;
    long long v = dflt;
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);

    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    if (arg != NULL)
        sqlite3_bind_text(stmt, 1, arg, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW && sqlite3_column_type(stmt, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(stmt, 0);
    else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_finalize(stmt);
    return v;
}

/* The same, opening path for just this query (-1 when the file cannot be read yet). */
static long long file_int(const char *path, const char *sql, const char *arg, long long dflt)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    long long v = -1;

    if (access(path, F_OK) != 0 ||
        sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 10000);
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK) {
        int rc;
        if (arg != NULL)
            sqlite3_bind_text(stmt, 1, arg, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW)
            v = sqlite3_column_type(stmt, 0) == SQLITE_NULL ? dflt : sqlite3_column_int64(stmt, 0);
        else if (rc == SQLITE_DONE)
            v = dflt;
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return v;
}

/* The hub's cursor for region (0 when it has none, -1 when unreadable). */
static long long hub_cursor(ctx *c, const char *region)
{
    return file_int(c->hub.db, "SELECT last_seq FROM sg_regions WHERE region = ?1", region, 0);
}

/* Whether the hub has row id in table (1/0, -1 when unreadable). */
static int hub_has(ctx *c, const char *table, const char *id)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE id = ?1", table);
    return (int)file_int(c->hub.db, sql, id, 0);
}

/* The region is caught up and the hub's cursor agrees (the hub's own view, not the region's). */
static int synced(ctx *c, tu_daemon *d)
{
    long long seq;
    if (!caught_up(d))
        return 0;
    seq = region_seq(d);
    return seq >= 0 && hub_cursor(c, d->id) == seq;
}

static void wait_synced(ctx *c, tu_daemon *d)
{
    uint64_t t0 = tu_now_ms();
    WAIT_UNTIL(c, WAIT_MS, synced(c, d),
               "region %s is connected, reports pending 0, and the hub's cursor is its seq", d->id);
    print_message("%s caught up (seq %lld) after %llu ms\n", d->id, region_seq(d),
                  (unsigned long long)(tu_now_ms() - t0));
}

static void check_integrity(sqlite3 *db, const char *path)
{
    sqlite3_stmt *stmt = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    if (strcmp((const char *)sqlite3_column_text(stmt, 0), "ok") != 0)
        fail_msg("%s: integrity_check: %s", path, sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &stmt, NULL),
                     SQLITE_OK);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        fail_msg("%s: foreign_key_check: %s row %lld refers to a missing %s", path,
                 sqlite3_column_text(stmt, 0), (long long)sqlite3_column_int64(stmt, 1),
                 sqlite3_column_text(stmt, 2));
    sqlite3_finalize(stmt);
}

/* Renders column i of stmt for a message. */
static void cell_text(char *out, size_t cap, sqlite3_stmt *stmt, int i)
{
    switch (sqlite3_column_type(stmt, i)) {
    case SQLITE_NULL:
        snprintf(out, cap, "NULL");
        break;
    case SQLITE_INTEGER:
        snprintf(out, cap, "%lld", (long long)sqlite3_column_int64(stmt, i));
        break;
    case SQLITE_TEXT:
        snprintf(out, cap, "'%.80s'", (const char *)sqlite3_column_text(stmt, i));
        break;
    default:
        snprintf(out, cap, "(type %d)", sqlite3_column_type(stmt, i));
    }
}

static int cells_equal(sqlite3_stmt *a, sqlite3_stmt *b, int i)
{
    int t = sqlite3_column_type(a, i);
    if (t != sqlite3_column_type(b, i))
        return 0;
    switch (t) {
    case SQLITE_NULL:
        return 1;
    case SQLITE_INTEGER:
        return sqlite3_column_int64(a, i) == sqlite3_column_int64(b, i);
    case SQLITE_FLOAT:
        return sqlite3_column_double(a, i) == sqlite3_column_double(b, i);
    default: {
        const void *pa = sqlite3_column_blob(a, i), *pb = sqlite3_column_blob(b, i);
        int na = sqlite3_column_bytes(a, i), nb = sqlite3_column_bytes(b, i);
        return na == nb && (na == 0 || memcmp(pa, pb, (size_t)na) == 0);
    }
    }
}

/* Asserts the hub's rows of region in table equal the region's, cell by cell. Returns the
 * number of rows. */
static long long compare_table(sqlite3 *hub, sqlite3 *reg, const char *region, const char *table)
{
    char sql[128];
    sqlite3_stmt *h = NULL, *r = NULL;
    long long rows = 0;

    snprintf(sql, sizeof(sql), "SELECT * FROM %s WHERE region = ?1 ORDER BY id", table);
    assert_int_equal(sqlite3_prepare_v2(hub, sql, -1, &h, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(reg, sql, -1, &r, NULL), SQLITE_OK);
    sqlite3_bind_text(h, 1, region, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(r, 1, region, -1, SQLITE_TRANSIENT);
    assert_int_equal(sqlite3_column_count(h), sqlite3_column_count(r));
    for (int i = 0; i < sqlite3_column_count(h); i++)
        assert_string_equal(sqlite3_column_name(h, i), sqlite3_column_name(r, i));
    for (;;) {
        int hr = sqlite3_step(h), rr = sqlite3_step(r);
        if (hr != SQLITE_ROW && hr != SQLITE_DONE)
            fail_msg("hub: %s: %s", sql, sqlite3_errmsg(hub));
        if (rr != SQLITE_ROW && rr != SQLITE_DONE)
            fail_msg("region %s: %s: %s", region, sql, sqlite3_errmsg(reg));
        if (hr == SQLITE_DONE && rr == SQLITE_DONE)
            break;
        if (hr != rr || strcmp((const char *)sqlite3_column_text(h, 0),
                               (const char *)sqlite3_column_text(r, 0)) != 0) {
            char q[128];
            snprintf(q, sizeof(q), "SELECT count(*) FROM %s WHERE region = ?1", table);
            fail_msg("%s of region %s differ at row %lld: the hub has %s, the region has %s "
                     "(%lld rows at the hub, %lld at the region)",
                     table, region, rows,
                     hr == SQLITE_ROW ? (const char *)sqlite3_column_text(h, 0) : "no more rows",
                     rr == SQLITE_ROW ? (const char *)sqlite3_column_text(r, 0) : "no more rows",
                     db_int(hub, q, region, 0), db_int(reg, q, region, 0));
        }
        for (int i = 0; i < sqlite3_column_count(h); i++) {
            if (!cells_equal(h, r, i)) {
                char a[128], b[128];
                cell_text(a, sizeof(a), h, i);
                cell_text(b, sizeof(b), r, i);
                fail_msg("%s %s (region %s): column %s: the hub has %s, the region has %s", table,
                         sqlite3_column_text(h, 0), region, sqlite3_column_name(h, i), a, b);
            }
        }
        rows++;
    }
    sqlite3_finalize(h);
    sqlite3_finalize(r);
    return rows;
}

/* Asserts the hub's audit trail (sg_applied) holds region's seqs 1..n, each once, in order. */
static void check_origin_seqs(sqlite3 *hub, const char *region, long long n)
{
    sqlite3_stmt *stmt = NULL;
    long long k = 0;

    assert_int_equal(sqlite3_prepare_v2(hub,
                                        "SELECT seq FROM sg_applied WHERE region = ?1 ORDER BY id",
                                        -1, &stmt, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(stmt, 1, region, -1, SQLITE_TRANSIENT);
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        long long v = sqlite3_column_int64(stmt, 0);
        k++;
        if (v != k)
            fail_msg("the hub's log of region %s: entry %lld holds origin_seq %lld, expected %lld "
                     "(%s)",
                     region, k, v, k, v < k ? "a repeat" : "a gap");
    }
    sqlite3_finalize(stmt);
    if (k != n)
        fail_msg("the hub's log of region %s holds origin_seqs 1..%lld, the region's seq is %lld",
                 region, k, n);
}

enum { CHECK_SEQS = 1, NO_SEQ_CHECK = 0 };

/* The invariant; region_dbs is a NULL-terminated list of region database paths. */
static void converged_check(ctx *c, int check_seqs, const char *hub_db, ...)
{
    sqlite3 *hub = db_open(hub_db);
    const char *path;
    va_list ap;

    check_integrity(hub, hub_db);
    va_start(ap, hub_db);
    while ((path = va_arg(ap, const char *)) != NULL) {
        sqlite3 *reg = db_open(path);
        char region[64];
        sqlite3_stmt *stmt = NULL;
        long long seq, cursor, rows = 0;

        check_integrity(reg, path);
        assert_int_equal(sqlite3_prepare_v2(reg, "SELECT id FROM sg_node", -1, &stmt, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
        snprintf(region, sizeof(region), "%s", (const char *)sqlite3_column_text(stmt, 0));
        sqlite3_finalize(stmt);
        for (size_t t = 0; t < NTABLES; t++)
            rows += compare_table(hub, reg, region, tables[t]);
        seq = db_int(reg, "SELECT seq FROM sqlite_sequence WHERE name = 'sg_changes'", NULL, 0);
        cursor = db_int(hub, "SELECT last_seq FROM sg_regions WHERE region = ?1", region, 0);
        if (cursor != seq) {
            dump_logs(c);
            fail_msg("the hub's cursor for %s is %lld, the region's seq is %lld", region, cursor,
                     seq);
        }
        if (check_seqs)
            check_origin_seqs(hub, region, seq);
        print_message("converged: %s: %lld rows, seq %lld%s\n", region, rows, seq,
                      check_seqs ? ", origin_seqs 1..N" : "");
        sqlite3_close(reg);
    }
    va_end(ap);
    sqlite3_close(hub);
}

#define assert_converged(c, check_seqs, hub_db, ...)                                               \
    converged_check(c, check_seqs, hub_db, __VA_ARGS__, (const char *)NULL)

/* --- writers: forked children that drive a region's API --- */

/* One request from a writer; no cmocka here (a child must not longjmp into the runner). */
static int w_req(tu_daemon *d, const char *method, const char *path, const char *ctype,
                 const char *body, int want, char id_out[40])
{
    tu_resp r;
    int ok;

    if (tu_http(&r, d, 0, method, path, ctype, body, body ? strlen(body) : 0) < 0)
        return -1;
    ok = r.status == want;
    if (!ok)
        fprintf(stderr, "writer %s: %s %s: expected %d, got %ld: %s\n", d->id, method, path, want,
                r.status, r.raw);
    if (ok && id_out != NULL) {
        const char *id = json_string_value(json_object_get(r.json, "id"));
        ok = id != NULL;
        if (ok)
            snprintf(id_out, 40, "%s", id);
    }
    tu_resp_free(&r);
    return ok ? 0 : -1;
}

#define RING 64

/* Writes at least target changes to d: inserts of every record type, updates, attendance,
 * issue updates, deletes and now and then a CSV import of many members in one request. tag
 * keeps names apart. Returns 0 or -1. */
static int writer_run(tu_daemon *d, long target, const char *tag)
{
    char orgs[RING][40], members[RING][40], tmp[40], sess[40], issue[40];
    char body[8192], path[128];
    long changes = 0;
    int i, nm = 0, no = 0;

    for (i = 0; changes < target; i++) {
        const char *org;
        snprintf(body, sizeof(body),
                 "{\"name\":\"Org %s %d\",\"kind\":\"civil_society\",\"district\":\"D%d\"}", tag, i,
                 i % 7);
        if (w_req(d, "POST", "/v1/organisations", JSON_CT, body, 201, orgs[no % RING]) < 0)
            return -1;
        org = orgs[no++ % RING];
        snprintf(body, sizeof(body),
                 "{\"name\":\"Member %s %d\",\"kind\":\"%s\",\"gender\":\"female\","
                 "\"birth_year\":%d,\"organisation_id\":\"%s\",\"village\":\"V %d\"}",
                 tag, i, i % 3 ? "entrepreneur" : "representative", 1950 + i % 50, org, i);
        if (w_req(d, "POST", "/v1/members", JSON_CT, body, 201, members[nm % RING]) < 0)
            return -1;
        nm++;
        changes += 2;
        /* An update of an older member. */
        snprintf(path, sizeof(path), "/v1/members/%s",
                 members[(nm * 7 + 3) % (nm < RING ? nm : RING)]);
        snprintf(body, sizeof(body), "{\"phone\":\"+91 9%08d\",\"sector\":\"s%d\"}", i, i % 11);
        if (w_req(d, "PATCH", path, JSON_CT, body, 200, NULL) < 0)
            return -1;
        changes++;
        if (i % 2 == 0 && nm >= 3) {
            snprintf(body, sizeof(body),
                     "{\"kind\":\"training\",\"title\":\"Session %s %d\",\"held_on\":"
                     "\"2024-%02d-%02d\",\"place\":\"P\"}",
                     tag, i, 1 + i % 12, 1 + i % 28);
            if (w_req(d, "POST", "/v1/sessions", JSON_CT, body, 201, sess) < 0)
                return -1;
            snprintf(path, sizeof(path), "/v1/sessions/%s/attendance", sess);
            snprintf(body, sizeof(body), "{\"member_ids\":[\"%s\",\"%s\",\"%s\"]}",
                     members[(nm - 1) % RING], members[(nm - 2) % RING], members[(nm - 3) % RING]);
            if (w_req(d, "POST", path, JSON_CT, body, 200, NULL) < 0)
                return -1;
            changes += 4;
        }
        if (i % 3 == 0) {
            snprintf(body, sizeof(body),
                     "{\"raised_by\":\"%s\",\"category\":\"finance\",\"title\":\"Issue %s %d\","
                     "\"description\":\"loan %d\"}",
                     members[(nm - 1) % RING], tag, i, i);
            if (w_req(d, "POST", "/v1/issues", JSON_CT, body, 201, issue) < 0)
                return -1;
            snprintf(path, sizeof(path), "/v1/issues/%s/updates", issue);
            snprintf(body, sizeof(body),
                     "{\"status\":\"in_progress\",\"note\":\"looked at %d\",\"author\":\"w\","
                     "\"assigned_to\":\"%s\"}",
                     i, org);
            if (w_req(d, "POST", path, JSON_CT, body, 201, NULL) < 0)
                return -1;
            changes += 3;
        }
        if (i % 5 == 0) {
            snprintf(path, sizeof(path), "/v1/organisations/%s",
                     orgs[(no * 5 + 1) % (no < RING ? no : RING)]);
            snprintf(body, sizeof(body), "{\"contact\":\"c%d\",\"district\":null}", i);
            if (w_req(d, "PATCH", path, JSON_CT, body, 200, NULL) < 0)
                return -1;
            changes++;
        }
        if (i % 10 == 0) {
            /* Deletes: a record made and removed again, of two types. */
            if (w_req(d, "POST", "/v1/organisations", JSON_CT,
                      "{\"name\":\"Short-lived\",\"kind\":\"other\"}", 201, tmp) < 0)
                return -1;
            snprintf(path, sizeof(path), "/v1/organisations/%s", tmp);
            if (w_req(d, "DELETE", path, NULL, NULL, 204, NULL) < 0)
                return -1;
            if (w_req(d, "POST", "/v1/members", JSON_CT,
                      "{\"name\":\"Short-lived\",\"kind\":\"staff\"}", 201, tmp) < 0)
                return -1;
            snprintf(path, sizeof(path), "/v1/members/%s", tmp);
            if (w_req(d, "DELETE", path, NULL, NULL, 204, NULL) < 0)
                return -1;
            changes += 4;
        }
        if (i % 150 == 75) {
            /* A burst: 300 members in one request (one transaction, 300 changes). */
            int n = snprintf(body, sizeof(body), "name,kind,district\n");
            for (int k = 0; k < 300 && n < (int)sizeof(body) - 64; k++)
                n += snprintf(body + n, sizeof(body) - (size_t)n, "Imported %d-%d,staff,Z%d\n", i,
                              k, k % 5);
            if (w_req(d, "POST", "/v1/members/import", "text/csv", body, 200, NULL) < 0)
                return -1;
            changes += 300;
        }
    }
    return 0;
}

/* Forks a writer of target changes to d. */
static pid_t writer_start(ctx *c, tu_daemon *d, long target, const char *tag)
{
    pid_t pid;

    assert_true(c->nkids < MAX_KIDS);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(writer_run(d, target, tag) == 0 ? 0 : 1);
    c->kids[c->nkids++] = pid;
    return pid;
}

/* Waits for a writer to finish (bounded) and asserts it succeeded. */
static void writer_wait(ctx *c, pid_t pid, unsigned ms)
{
    int status = 0;

    if (tu_wait_exit(pid, ms, &status) < 0) {
        dump_logs(c);
        fail_msg("writer %ld did not finish within %u ms", (long)pid, ms);
    }
    for (int i = 0; i < c->nkids; i++) {
        if (c->kids[i] == pid) {
            c->kids[i] = c->kids[--c->nkids];
            break;
        }
    }
    if (tu_exit_code(status) != 0) {
        dump_logs(c);
        fail_msg("writer %ld failed (exit %d; its reason is on stderr above)", (long)pid,
                 tu_exit_code(status));
    }
}

/* Whether a child has exited (reaped here, status kept) without blocking. */
static int kid_done(pid_t pid, int *status)
{
    return waitpid(pid, status, WNOHANG) == pid;
}

/* --- a hostile client: TLS engine from server/tls.h over a blocking socket --- */

typedef struct peer {
    int fd;
    sg_tls_ctx *tctx;
    sg_tls *tls;
    char *in; /* decrypted bytes not yet framed */
    size_t in_len, in_cap;
    uint8_t *payload; /* the last frame's payload, which the last decoded message points into */
    int eof;
    char err[SG_ERR_MSG_MAX];
} peer;

static int tcp_connect(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void peer_flush(peer *p)
{
    char *out = NULL;
    size_t len = 0;
    if (sg_tls_take(p->tls, &out, &len) == 0 && len > 0)
        tu_send_all(p->fd, out, len);
    free(out);
}

/* Reads ciphertext once (waiting up to ms) into the engine: 1 fed, 0 timeout, -1 stream end. */
static int peer_pull(peer *p, unsigned ms)
{
    char buf[16384];
    struct pollfd pfd = {p->fd, POLLIN, 0};
    ssize_t n;

    if (p->eof)
        return -1;
    if (poll(&pfd, 1, (int)ms) <= 0)
        return 0;
    n = recv(p->fd, buf, sizeof(buf), 0);
    if (n <= 0) {
        p->eof = 1;
        sg_tls_feed_eof(p->tls);
        return -1;
    }
    sg_tls_feed(p->tls, buf, (size_t)n);
    return 1;
}

static void peer_close(peer *p)
{
    if (p->fd >= 0)
        close(p->fd);
    sg_tls_free(p->tls);
    sg_tls_ctx_free(p->tctx);
    free(p->in);
    free(p->payload);
    memset(p, 0, sizeof(*p));
    p->fd = -1;
}

/* Connects to the hub and completes the TLS handshake presenting name.pem from dir. Returns 0
 * or -1 with p->err. */
static int peer_open_(peer *p, ctx *c, const char *dir, const char *name)
{
    char ca[PATH_MAX + 8], cert[PATH_MAX + 16], key[PATH_MAX + 16];
    sg_err err = {0};
    uint64_t end = tu_now_ms() + 10000;
    int rc;

    memset(p, 0, sizeof(*p));
    p->fd = -1;
    snprintf(ca, sizeof(ca), "%s/ca.pem", c->pki);
    snprintf(cert, sizeof(cert), "%s/%s.pem", dir, name);
    snprintf(key, sizeof(key), "%s/%s.key", dir, name);
    if (sg_tls_ctx_new(&p->tctx, 0, ca, cert, key, &err) < 0 ||
        sg_tls_new(&p->tls, p->tctx, &err) < 0) {
        snprintf(p->err, sizeof(p->err), "%s", err.msg);
        return -1;
    }
    p->fd = tcp_connect(c->hub_port);
    if (p->fd < 0) {
        snprintf(p->err, sizeof(p->err), "connect: %s", strerror(errno));
        return -1;
    }
    for (;;) {
        rc = sg_tls_handshake(p->tls, &err);
        peer_flush(p);
        if (rc == 1)
            return 0;
        if (rc < 0) {
            snprintf(p->err, sizeof(p->err), "%s", err.msg);
            return -1;
        }
        if (tu_now_ms() >= end) {
            snprintf(p->err, sizeof(p->err), "handshake timed out");
            return -1;
        }
        if (peer_pull(p, 1000) < 0 && p->eof) {
            /* The end was fed: the next call reports how the handshake failed. */
            rc = sg_tls_handshake(p->tls, &err);
            peer_flush(p);
            snprintf(p->err, sizeof(p->err), "%s", rc < 0 ? err.msg : "connection closed");
            return -1;
        }
    }
}

/* peer_open_, leaving nothing open on failure (p->err says why). */
static int peer_open(peer *p, ctx *c, const char *dir, const char *name)
{
    char why[SG_ERR_MSG_MAX];

    if (peer_open_(p, c, dir, name) == 0)
        return 0;
    snprintf(why, sizeof(why), "%s", p->err);
    peer_close(p);
    snprintf(p->err, sizeof(p->err), "%s", why);
    return -1;
}

static void peer_send_raw(peer *p, const void *data, size_t len)
{
    sg_err err = {0};
    if (sg_tls_write(p->tls, data, len, &err) < 0)
        fail_msg("hostile peer: TLS write: %s", err.msg);
    peer_flush(p);
}

static void peer_send(peer *p, const sg_msg *m)
{
    void *frame = NULL;
    size_t len = 0;
    assert_int_equal(sg_msg_encode(&frame, &len, m), 0);
    peer_send_raw(p, frame, len);
    free(frame);
}

enum { GOT_MSG = 1, GOT_CLOSE = 0, GOT_TIMEOUT = -1, GOT_TLS_ERROR = -2 };

/* Receives one message into m (pointing into p->payload) within ms. GOT_CLOSE when the hub sent
 * close_notify, GOT_TLS_ERROR (p->err) for a truncation or alert. */
static int peer_recv(peer *p, sg_msg *m, unsigned ms)
{
    uint64_t end = tu_now_ms() + ms;

    for (;;) {
        if (p->in_len >= SG_FRAME_HEADER) {
            uint32_t len = (uint32_t)((uint8_t)p->in[0] << 24 | (uint8_t)p->in[1] << 16 |
                                      (uint8_t)p->in[2] << 8 | (uint8_t)p->in[3]);
            if (p->in_len >= SG_FRAME_HEADER + len) {
                sg_err err = {0};
                free(p->payload);
                p->payload = malloc(len ? len : 1);
                assert_non_null(p->payload);
                memcpy(p->payload, p->in + SG_FRAME_HEADER, len);
                p->in_len -= SG_FRAME_HEADER + len;
                memmove(p->in, p->in + SG_FRAME_HEADER + len, p->in_len);
                if (sg_msg_decode(m, p->payload, len, &err) < 0)
                    fail_msg("hostile peer: the hub sent an undecodable frame: %s", err.msg);
                return GOT_MSG;
            }
        }
        {
            char buf[16384];
            size_t n = 0;
            sg_err err = {0};
            int rc = sg_tls_read(p->tls, buf, sizeof(buf), &n, &err);
            peer_flush(p);
            if (rc == SG_ECLOSED)
                return GOT_CLOSE;
            if (rc < 0) {
                snprintf(p->err, sizeof(p->err), "%s: %s", sg_strerror_name(rc), err.msg);
                return GOT_TLS_ERROR;
            }
            if (n > 0) {
                if (p->in_len + n > p->in_cap) {
                    p->in_cap = (p->in_len + n) * 2;
                    p->in = realloc(p->in, p->in_cap);
                    assert_non_null(p->in);
                }
                memcpy(p->in + p->in_len, buf, n);
                p->in_len += n;
                continue;
            }
        }
        {
            uint64_t now = tu_now_ms();
            if (now >= end)
                return GOT_TIMEOUT;
            if (p->eof) {
                snprintf(p->err, sizeof(p->err), "the connection ended");
                return GOT_TLS_ERROR;
            }
            peer_pull(p, (unsigned)(end - now)); /* after the end, reads report how it ended */
        }
    }
}

static const char *msg_desc(char *out, size_t cap, const sg_msg *m)
{
    if (m->type == SG_MSG_ERROR)
        snprintf(out, cap, "ERROR %.*s: %.*s", (int)m->code_len, m->code, (int)m->text_len,
                 m->text);
    else
        snprintf(out, cap, "%s (seq %llu)", sg_msg_name(m->type), (unsigned long long)m->seq);
    return out;
}

/* Sends HELLO as node; returns WELCOME's seq (fails the test on anything else). */
static uint64_t peer_hello(peer *p, const char *node)
{
    sg_msg m;
    char d[1200];
    int rc;

    memset(&m, 0, sizeof(m));
    m.type = SG_MSG_HELLO;
    m.version = SG_PROTO_VERSION;
    m.node = node;
    m.node_len = (uint32_t)strlen(node);
    m.schema = SG_SCHEMA_VERSION;
    peer_send(p, &m);
    rc = peer_recv(p, &m, 10000);
    if (rc != GOT_MSG || m.type != SG_MSG_WELCOME)
        fail_msg("HELLO as %s: expected WELCOME, got %s", node,
                 rc == GOT_MSG ? msg_desc(d, sizeof(d), &m)
                 : p->err[0]   ? p->err
                               : "nothing");
    return m.seq;
}

/* Expects ERROR code (text containing want_text when not NULL), then the end of the connection. */
static void peer_expect_error(peer *p, const char *code, const char *want_text)
{
    sg_msg m;
    char d[1200];
    int rc = peer_recv(p, &m, 10000);

    if (rc != GOT_MSG || m.type != SG_MSG_ERROR || m.code_len != strlen(code) ||
        memcmp(m.code, code, m.code_len) != 0)
        fail_msg("expected ERROR %s, got %s", code,
                 rc == GOT_MSG       ? msg_desc(d, sizeof(d), &m)
                 : rc == GOT_CLOSE   ? "close_notify"
                 : rc == GOT_TIMEOUT ? "nothing within 10 s"
                                     : p->err);
    print_message("  hub answered %s\n", msg_desc(d, sizeof(d), &m));
    if (want_text != NULL &&
        (m.text_len == 0 || strstr(msg_desc(d, sizeof(d), &m), want_text) == NULL))
        fail_msg("ERROR %s: text should mention '%s': %s", code, want_text, d);
    rc = peer_recv(p, &m, 10000);
    if (rc != GOT_CLOSE && rc != GOT_TLS_ERROR)
        fail_msg("after ERROR %s the hub should close, got %s", code,
                 rc == GOT_MSG ? msg_desc(d, sizeof(d), &m) : "nothing within 10 s");
}

static uint64_t peer_expect_ack(peer *p)
{
    sg_msg m;
    char d[1200];
    int rc = peer_recv(p, &m, 10000);
    if (rc != GOT_MSG || m.type != SG_MSG_ACK)
        fail_msg("expected ACK, got %s", rc == GOT_MSG ? msg_desc(d, sizeof(d), &m)
                                         : p->err[0]   ? p->err
                                                       : "nothing");
    return m.seq;
}

/* Sends one BATCH of changes from origin. */
static void peer_batch(peer *p, const char *origin, const sg_change *cs, int n)
{
    sg_batch_enc *enc = NULL;
    const void *buf;
    size_t len;
    sg_msg m;

    assert_int_equal(sg_batch_enc_new(&enc, origin), 0);
    for (int i = 0; i < n; i++)
        assert_int_equal(sg_batch_enc_add(enc, &cs[i]), 0);
    assert_int_equal(sg_batch_enc_finish(enc, &buf, &len), 0);
    memset(&m, 0, sizeof(m));
    m.type = SG_MSG_BATCH;
    m.batch = buf;
    m.batch_len = len;
    peer_send(p, &m);
    sg_batch_enc_free(enc);
}

static uint64_t hlc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) << 16;
}

/* Fills a change: one column name=value (a string), or none for a delete. */
static void change_set(sg_change *c, sg_col *cols, uint64_t seq, const char *table, const char *pk,
                       sg_op op, const char *const *kv)
{
    memset(c, 0, sizeof(*c));
    c->seq = seq;
    c->hlc = hlc_now();
    c->table = table;
    c->table_len = (uint32_t)strlen(table);
    c->pk = pk;
    c->pk_len = (uint32_t)strlen(pk);
    c->op = op;
    c->cols = cols;
    for (; op != SG_OP_DELETE && kv != NULL && kv[0] != NULL; kv += 2) {
        sg_col *col = &cols[c->ncols++];
        memset(col, 0, sizeof(*col));
        col->name = kv[0];
        col->name_len = (uint32_t)strlen(kv[0]);
        col->v.type = SG_VAL_STR;
        col->v.s = kv[1];
        col->v.len = (uint32_t)strlen(kv[1]);
    }
}

/* --- group set-up --- */

static int group_setup(void **state)
{
    ctx *c;
    if (ctx_new(&c) < 0)
        return -1;
    *state = c;
    return 0;
}

static int group_teardown(void **state)
{
    ctx *c = *state;
    int rc = cluster_cleanup(c);
    if (getenv("SANGAM_KEEP_TMP") == NULL)
        tu_rmtree(c->pki);
    free(c);
    return rc;
}

/* Each test of the replication group starts its own cluster; this ends it, even on failure. */
static int test_teardown(void **state)
{
    return cluster_cleanup(*state);
}

/* ===================================================================================== */
/* 1. Two regions write 10,000 changes each, concurrently, while they replicate. */

static void test_concurrent_writers(void **state)
{
    ctx *c = *state;
    static const char *const ids[] = {"north", "south", NULL};
    uint64_t t0 = tu_now_ms();
    pid_t wn, ws;
    int seen_live = 0, sn = 0, ss = 0, dn = 0, ds = 0;

    cluster_start(c, NULL, ids);
    wait_synced(c, &c->reg[0]);
    wait_synced(c, &c->reg[1]);
    wn = writer_start(c, &c->reg[0], 10000, "n");
    ws = writer_start(c, &c->reg[1], 10000, "s");
    /* While they write, replication must be moving (not only after the writers stop). */
    while (!(dn && ds)) {
        if (!dn && kid_done(wn, &sn))
            dn = 1;
        if (!ds && kid_done(ws, &ss))
            ds = 1;
        if (!dn && !ds && hub_cursor(c, "north") > 500 && hub_cursor(c, "south") > 500)
            seen_live = 1;
        if (tu_now_ms() - t0 > 300000) {
            dump_logs(c);
            fail_msg("the writers did not finish within 300 s");
        }
        tu_sleep_ms(50);
    }
    c->nkids = 0;
    print_message("writers done after %llu ms (north exit %d, south exit %d)\n",
                  (unsigned long long)(tu_now_ms() - t0), tu_exit_code(sn), tu_exit_code(ss));
    assert_int_equal(tu_exit_code(sn), 0);
    assert_int_equal(tu_exit_code(ss), 0);
    assert_true(seen_live);
    assert_true(region_seq(&c->reg[0]) >= 10000);
    assert_true(region_seq(&c->reg[1]) >= 10000);
    wait_synced(c, &c->reg[0]);
    wait_synced(c, &c->reg[1]);
    assert_converged(c, CHECK_SEQS, c->hub.db, c->reg[0].db, c->reg[1].db);
    print_message("test 1 took %llu ms\n", (unsigned long long)(tu_now_ms() - t0));
}

/* ===================================================================================== */
/* 2. kill -9 of the hub in the middle of a stream, twice; restart on the same database. */

static void test_hub_killed_mid_stream(void **state)
{
    ctx *c = *state;
    static const char *const ids[] = {"north", NULL};
    uint64_t t0 = tu_now_ms();
    pid_t w;
    char id[40];
    long long marks[] = {400, 2000};

    cluster_start(c, "batch_changes = 100\n", ids);
    wait_synced(c, &c->reg[0]);
    w = writer_start(c, &c->reg[0], 4000, "k");
    for (size_t k = 0; k < sizeof(marks) / sizeof(marks[0]); k++) {
        long long cur, seq;
        WAIT_UNTIL(c, WAIT_MS, hub_cursor(c, "north") >= marks[k],
                   "the hub applied %lld changes of north", marks[k]);
        seq = region_seq(&c->reg[0]);
        tu_daemon_kill(&c->hub);
        cur = hub_cursor(c, "north");
        print_message("kill -9 of the hub at cursor %lld, region seq %lld\n", cur, seq);
        /* The region keeps accepting writes and notices the hub is gone. */
        for (int i = 0; i < 5; i++)
            create(c, &c->reg[0], id, "organisations",
                   "{\"name\":\"Written with the hub dead\",\"kind\":\"other\"}");
        assert_true(region_seq(&c->reg[0]) >= seq + 5);
        WAIT_UNTIL(c, 10 * 1000, region_connected(&c->reg[0]) == 0,
                   "north's status says connected false");
        node_start(c, &c->hub);
        assert_true(hub_cursor(c, "north") >= cur); /* what was committed stays */
    }
    writer_wait(c, w, 300000);
    wait_synced(c, &c->reg[0]);
    assert_true(log_count(&c->reg[0], "event=uplink_connected") >= 3);
    assert_converged(c, CHECK_SEQS, c->hub.db, c->reg[0].db);
    print_message("test 2 took %llu ms\n", (unsigned long long)(tu_now_ms() - t0));
}

/* ===================================================================================== */
/* 3. The hub is down while a region writes 5,000 changes; it catches up alone. */

static void test_hub_down_catch_up(void **state)
{
    ctx *c = *state;
    static const char *const ids[] = {"north", NULL};
    uint64_t t0 = tu_now_ms();
    long long base, p1 = -1, p2 = -1;
    json_t *st;
    char *rs;
    pid_t w;

    cluster_start(c, NULL, ids);
    wait_synced(c, &c->reg[0]);
    base = region_seq(&c->reg[0]);
    assert_int_equal(tu_daemon_stop(&c->hub), 0);
    w = writer_start(c, &c->reg[0], 5000, "d");
    /* Pending grows while the hub is away. */
    WAIT_UNTIL(c, WAIT_MS, (p1 = pending_offline(&c->reg[0])) > 100,
               "north reports connected false and more than 100 pending");
    WAIT_UNTIL(c, WAIT_MS, (p2 = pending_offline(&c->reg[0])) > p1 + 100,
               "north's pending grows past %lld", p1 + 100);
    print_message("pending while the hub is down: %lld, then %lld\n", p1, p2);
    writer_wait(c, w, 300000);
    st = status_of(&c->reg[0]);
    assert_non_null(st);
    assert_int_equal(repl_int(st, "connected"), 0);
    assert_true(repl_int(st, "pending") >= 5000);
    assert_true(repl_int(st, "local_seq") - base >= 5000);
    rs = json_dumps(json_object_get(st, "replication"), JSON_COMPACT);
    print_message("before the hub returns: %s\n", rs);
    free(rs);
    json_decref(st);
    node_start(c, &c->hub);
    wait_synced(c, &c->reg[0]);
    assert_converged(c, CHECK_SEQS, c->hub.db, c->reg[0].db);
    print_message("test 3 took %llu ms\n", (unsigned long long)(tu_now_ms() - t0));
}

/* ===================================================================================== */
/* 4. A hub rebuilt from its regions: from their logs, and by snapshot when they were pruned. */

static void test_hub_rebuilt_from_logs(void **state)
{
    ctx *c = *state;
    static const char *const ids[] = {"north", "south", NULL};
    uint64_t t0 = tu_now_ms();
    pid_t a, b;

    cluster_start(c, NULL, ids);
    a = writer_start(c, &c->reg[0], 1500, "r");
    b = writer_start(c, &c->reg[1], 1500, "q");
    writer_wait(c, a, 300000);
    writer_wait(c, b, 300000);
    wait_synced(c, &c->reg[0]);
    wait_synced(c, &c->reg[1]);
    assert_int_equal(tu_daemon_stop(&c->hub), 0);
    remove_db_files(c->hub.db);
    node_start(c, &c->hub);
    wait_synced(c, &c->reg[0]);
    wait_synced(c, &c->reg[1]);
    assert_int_equal(log_count(&c->hub, "event=snapshot_end"), 0);
    assert_converged(c, CHECK_SEQS, c->hub.db, c->reg[0].db, c->reg[1].db);
    print_message("test 4a took %llu ms\n", (unsigned long long)(tu_now_ms() - t0));
}

/* Restarts d (SIGTERM, start) and waits until its first poll pruned its whole log. */
static void restart_and_prune(ctx *c, tu_daemon *d)
{
    assert_int_equal(tu_daemon_stop(d), 0);
    node_start(c, d);
    WAIT_UNTIL(c, WAIT_MS, file_int(d->db, "SELECT count(*) FROM sg_changes", NULL, 0) == 0,
               "%s pruned its acknowledged log (retention = 0s)", d->id);
}

static void test_snapshot_after_prune_and_wipe(void **state)
{
    ctx *c = *state;
    static const char *const ids[] = {"north", "south", NULL};
    uint64_t t0 = tu_now_ms();
    char gone[40], keep[40], other[40], path[80];
    long long seq;
    pid_t w;

    /* north prunes what the hub acknowledged; south keeps its log (the control). */
    cluster_start(c, NULL, ids);
    assert_int_equal(tu_daemon_stop(&c->reg[0]), 0);
    assert_int_equal(write_config(c, &c->reg[0], "north", NULL, "retention = 0s\n"), 0);
    node_start(c, &c->reg[0]);
    w = writer_start(c, &c->reg[0], 1000, "p");
    writer_wait(c, w, 300000);
    create(c, &c->reg[0], gone, "organisations", "{\"name\":\"Deleted later\",\"kind\":\"other\"}");
    create(c, &c->reg[0], keep, "organisations", "{\"name\":\"Kept\",\"kind\":\"other\"}");
    create(c, &c->reg[1], other, "organisations", "{\"name\":\"South's\",\"kind\":\"other\"}");
    wait_synced(c, &c->reg[0]);
    wait_synced(c, &c->reg[1]);
    assert_int_equal(hub_has(c, "organisations", gone), 1);
    /* One change per batch from now on, so that the snapshot lasts a while. */
    assert_int_equal(write_config(c, &c->reg[0], "north", NULL,
                                  "retention = 0s\nbatch_changes = 1\nwindow = 1\n"),
                     0);
    restart_and_prune(c, &c->reg[0]);

    /* The hub goes down; north deletes a row; the hub's database is lost. */
    assert_int_equal(tu_daemon_stop(&c->hub), 0);
    snprintf(path, sizeof(path), "/v1/organisations/%s", gone);
    json_decref(req(c, &c->reg[0], 204, "DELETE", path, NULL));
    snprintf(path, sizeof(path), "/v1/organisations/%s", keep);
    json_decref(req(c, &c->reg[0], 200, "PATCH", path, "{\"contact\":\"after the wipe\"}"));
    seq = region_seq(&c->reg[0]);
    remove_db_files(c->hub.db);
    node_start(c, &c->hub);
    /* north writes while it sends its snapshot: those changes stream after it. */
    WAIT_UNTIL(c, WAIT_MS,
               file_int(c->hub.db, "SELECT snapshot_seq FROM sg_regions WHERE region = 'north'",
                        NULL, -1) > 0,
               "the hub is receiving north's snapshot (sg_regions.snapshot_seq is set)");
    w = writer_start(c, &c->reg[0], 400, "during");
    writer_wait(c, w, 300000);
    wait_synced(c, &c->reg[0]);
    wait_synced(c, &c->reg[1]);
    WAIT_UNTIL(c, WAIT_MS, log_count(&c->hub, "event=snapshot_end region=north") >= 1,
               "the hub logs event=snapshot_end for north");
    WAIT_UNTIL(c, WAIT_MS, log_count(&c->reg[0], "event=snapshot_sent") >= 1,
               "north logs event=snapshot_sent");
    assert_int_equal(log_count(&c->reg[1], "event=snapshot_sent"), 0);
    assert_int_equal(hub_has(c, "organisations", gone), 0);
    assert_true(hub_cursor(c, "north") >= seq + 400);
    assert_converged(c, NO_SEQ_CHECK, c->hub.db, c->reg[0].db);
    assert_converged(c, CHECK_SEQS, c->hub.db, c->reg[1].db);
    print_message("test 4b took %llu ms\n", (unsigned long long)(tu_now_ms() - t0));
}

/* The hub is restored from a backup that still has a row the region deleted (and pruned the
 * delete of) since: the snapshot must remove it at the hub. */
static void test_snapshot_after_restore(void **state)
{
    ctx *c = *state;
    static const char *const ids[] = {"north", NULL};
    uint64_t t0 = tu_now_ms();
    char gone[40], member[40], path[80], backup[PATH_MAX + 16], body[128];
    pid_t w;

    cluster_start(c, "retention = 0s\n", ids);
    w = writer_start(c, &c->reg[0], 600, "b");
    writer_wait(c, w, 300000);
    create(c, &c->reg[0], gone, "organisations",
           "{\"name\":\"Gone after backup\",\"kind\":\"other\"}");
    snprintf(body, sizeof(body),
             "{\"name\":\"Refers\",\"kind\":\"representative\",\"organisation_id\":\"%s\"}", gone);
    create(c, &c->reg[0], member, "members", body);
    wait_synced(c, &c->reg[0]);

    /* Back up the hub (stopped, so the copy is consistent). */
    assert_int_equal(tu_daemon_stop(&c->hub), 0);
    snprintf(backup, sizeof(backup), "%s/backup.db", c->hub.dir);
    copy_db(c->hub.db, backup);
    node_start(c, &c->hub);

    /* north deletes both rows; the hub applies it; north prunes its log. */
    snprintf(path, sizeof(path), "/v1/members/%s", member);
    json_decref(req(c, &c->reg[0], 204, "DELETE", path, NULL));
    snprintf(path, sizeof(path), "/v1/organisations/%s", gone);
    json_decref(req(c, &c->reg[0], 204, "DELETE", path, NULL));
    wait_synced(c, &c->reg[0]);
    assert_int_equal(hub_has(c, "organisations", gone), 0);
    /* From now on north sends one change per batch, one batch at a time: its snapshot lasts
     * long enough to be interrupted. */
    assert_int_equal(write_config(c, &c->reg[0], "north", NULL,
                                  "retention = 0s\nbatch_changes = 1\nwindow = 1\n"),
                     0);
    restart_and_prune(c, &c->reg[0]);

    /* The hub comes back from the backup: it has both rows again and an older cursor. */
    assert_int_equal(tu_daemon_stop(&c->hub), 0);
    copy_db(backup, c->hub.db);
    assert_int_equal(hub_has(c, "organisations", gone), 1);
    node_start(c, &c->hub);
    /* kill -9 in the middle of the snapshot: the rows upserted so far stay, the cursor does
     * not move, and the next session sends the whole snapshot again. */
    WAIT_UNTIL(c, WAIT_MS,
               file_int(c->hub.db, "SELECT snapshot_seq FROM sg_regions WHERE region = 'north'",
                        NULL, -1) > 0,
               "the hub is receiving north's snapshot (sg_regions.snapshot_seq is set)");
    tu_daemon_kill(&c->hub);
    print_message("hub killed during the snapshot, after %lld rows; cursor %lld\n",
                  file_int(c->hub.db, "SELECT count(*) FROM sg_snapshot_seen", NULL, -1),
                  hub_cursor(c, "north"));
    assert_int_equal(log_count(&c->hub, "event=snapshot_end"), 0);
    assert_int_equal(hub_has(c, "organisations", gone), 1);
    node_start(c, &c->hub);
    wait_synced(c, &c->reg[0]);
    WAIT_UNTIL(c, WAIT_MS, log_count(&c->hub, "event=snapshot_end region=north") >= 1,
               "the hub logs event=snapshot_end for north");
    assert_int_equal(hub_has(c, "organisations", gone), 0);
    assert_int_equal(hub_has(c, "members", member), 0);
    assert_converged(c, NO_SEQ_CHECK, c->hub.db, c->reg[0].db);
    print_message("test 4c took %llu ms\n", (unsigned long long)(tu_now_ms() - t0));
}

/* While a region streams its log to a hub rebuilt from nothing, what it reports as acknowledged
 * and what it prunes must follow what THIS hub acknowledged (WELCOME.seq and its ACKs), not what
 * a hub that since lost its database acknowledged before. */
static void test_rebuild_acked_follows_hub(void **state)
{
    ctx *c = *state;
    static const char *const ids[] = {"north", NULL};
    uint64_t t0 = tu_now_ms(), t1, bad_since = 0;
    long long seq, worst_cursor = -1;
    int violations = 0, samples = 0;
    pid_t w;

    cluster_start(c, NULL, ids);
    w = writer_start(c, &c->reg[0], 3000, "a");
    writer_wait(c, w, 300000);
    wait_synced(c, &c->reg[0]);
    seq = region_seq(&c->reg[0]);

    /* The hub loses its database. north restarts with a slow uplink (one change per batch, one
     * batch in flight) and retention 0s, so its catch-up outlasts its first prune (~1 s). */
    assert_int_equal(tu_daemon_stop(&c->hub), 0);
    remove_db_files(c->hub.db);
    node_start(c, &c->hub);
    assert_int_equal(tu_daemon_stop(&c->reg[0]), 0);
    assert_int_equal(write_config(c, &c->reg[0], "north", NULL,
                                  "retention = 0s\nbatch_changes = 1\nwindow = 1\n"),
                     0);
    node_start(c, &c->reg[0]);
    /* Sample: once north is connected, "pending 0" must mean the hub has everything. A region
     * that claims so for 3 s while the hub is behind has stopped sending. */
    t1 = tu_now_ms();
    while (!synced(c, &c->reg[0]) && tu_now_ms() - t1 < WAIT_MS) {
        json_t *st = status_of(&c->reg[0]);
        if (st != NULL && repl_int(st, "connected") == 1) {
            long long pending = repl_int(st, "pending");
            long long cur = hub_cursor(c, "north");
            samples++;
            if (pending == 0 && cur >= 0 && cur < seq) {
                if (violations++ == 0)
                    worst_cursor = cur;
                if (bad_since == 0)
                    bad_since = tu_now_ms();
                else if (tu_now_ms() - bad_since > 3000) {
                    json_decref(st);
                    break;
                }
            } else {
                bad_since = 0;
            }
        }
        json_decref(st);
        tu_sleep_ms(50);
    }
    print_message("%d of %d samples said pending 0 while the hub was behind (first with the hub "
                  "at %lld of %lld); north's log now holds %lld entries; hub snapshots: %d\n",
                  violations, samples, worst_cursor, seq,
                  file_int(c->reg[0].db, "SELECT count(*) FROM sg_changes", NULL, 0),
                  log_count(&c->hub, "event=snapshot_end"));
    if (violations > 0) {
        dump_logs(c);
        fail_msg("north reported pending 0 while the rebuilt hub was behind (hub cursor %lld, "
                 "north's seq %lld)",
                 hub_cursor(c, "north"), seq);
    }
    wait_synced(c, &c->reg[0]);
    /* Nothing the new hub had not acknowledged was pruned: it got the log, not a snapshot. */
    assert_int_equal(log_count(&c->hub, "event=snapshot_end"), 0);
    assert_converged(c, CHECK_SEQS, c->hub.db, c->reg[0].db);
    print_message("rebuild test took %llu ms\n", (unsigned long long)(tu_now_ms() - t0));
}

/* ===================================================================================== */
/* 6. Liveness: a local write reaches the hub within milliseconds; so does a write made with
 * the sqlite3 library directly into the region's database file. */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_liveness(void **state)
{
    ctx *c = *state;
    static const char *const ids[] = {"north", NULL};
    uint64_t lat[20], t;
    sqlite3 *hub, *reg = NULL;
    sqlite3_stmt *stmt;
    char *errmsg = NULL;

    cluster_start(c, NULL, ids);
    wait_synced(c, &c->reg[0]);
    hub = db_open(c->hub.db);
    assert_int_equal(sqlite3_prepare_v2(hub, "SELECT count(*) FROM organisations WHERE id = ?1", -1,
                                        &stmt, NULL),
                     SQLITE_OK);
    for (int i = 0; i < 20; i++) {
        char id[40], body[96];
        uint64_t end;
        snprintf(body, sizeof(body), "{\"name\":\"Live %d\",\"kind\":\"other\"}", i);
        t = tu_now_ms();
        create(c, &c->reg[0], id, "organisations", body);
        end = t + 10000;
        for (;;) {
            int found;
            sqlite3_bind_text(stmt, 1, id, -1, SQLITE_TRANSIENT);
            assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
            found = sqlite3_column_int(stmt, 0);
            sqlite3_reset(stmt);
            if (found)
                break;
            if (tu_now_ms() >= end) {
                dump_logs(c);
                fail_msg("write %d (%s) did not reach the hub within 10 s", i, id);
            }
            tu_sleep_ms(5);
        }
        lat[i] = tu_now_ms() - t;
    }
    qsort(lat, 20, sizeof(lat[0]), cmp_u64);
    print_message("write-to-hub latency over 20 writes: p50 %llu ms, max %llu ms\n",
                  (unsigned long long)lat[10], (unsigned long long)lat[19]);
    assert_true(lat[10] < 500);

    /* As the sqlite3 shell would: a plain INSERT into the region's file; its triggers log it. */
    assert_int_equal(sqlite3_open_v2(c->reg[0].db, &reg, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(reg, 10000);
    t = tu_now_ms();
    if (sqlite3_exec(reg,
                     "INSERT INTO organisations (id, region, name, kind) VALUES "
                     "('shell-org-1', 'north', 'Typed into the shell', 'academic')",
                     NULL, NULL, &errmsg) != SQLITE_OK)
        fail_msg("direct insert: %s", errmsg);
    sqlite3_close(reg);
    WAIT_UNTIL(c, 15000, hub_has(c, "organisations", "shell-org-1") == 1,
               "a row inserted with the sqlite3 library into north's file reaches the hub");
    print_message("direct sqlite3 write reached the hub after %llu ms\n",
                  (unsigned long long)(tu_now_ms() - t));
    sqlite3_finalize(stmt);
    sqlite3_close(hub);
    wait_synced(c, &c->reg[0]);
    assert_converged(c, CHECK_SEQS, c->hub.db, c->reg[0].db);
}

/* ===================================================================================== */
/* 7. A hub that stops answering (SIGSTOP) is detected within about 2x keepalive. */

static void test_dead_link(void **state)
{
    ctx *c = *state;
    static const char *const ids[] = {"north", NULL};
    uint64_t t0, took;
    char id[40];

    cluster_start(c, NULL, ids);
    wait_synced(c, &c->reg[0]);
    assert_int_equal(kill(c->hub.pid, SIGSTOP), 0);
    t0 = tu_now_ms();
    WAIT_UNTIL(c, 20000, region_connected(&c->reg[0]) == 0,
               "north's status says connected false with the hub stopped");
    took = tu_now_ms() - t0;
    print_message("dead link noticed %llu ms after SIGSTOP (keepalive %d s)\n",
                  (unsigned long long)took, KEEPALIVE_S);
    assert_true(took <= 3u * KEEPALIVE_S * 1000 + 500);
    create(c, &c->reg[0], id, "organisations", "{\"name\":\"While frozen\",\"kind\":\"other\"}");
    assert_int_equal(kill(c->hub.pid, SIGCONT), 0);
    wait_synced(c, &c->reg[0]);
    assert_int_equal(hub_has(c, "organisations", id), 1);
    assert_converged(c, CHECK_SEQS, c->hub.db, c->reg[0].db);
}

/* ===================================================================================== */
/* 5. Refusals, while north keeps replicating. The group's hub and north outlive each test. */

static int refusals_setup(void **state)
{
    ctx *c;

    if (group_setup(state) < 0)
        return -1;
    c = *state;
    c->hub_port = tu_free_port();
    c->nreg = 1;
    if (c->hub_port <= 0 || tu_daemon_init(&c->hub, "hub", 0, NULL) < 0 ||
        write_config(c, &c->hub, "hub", NULL, NULL) < 0 || tu_daemon_start(&c->hub) < 0 ||
        tu_daemon_init(&c->reg[0], "north", 0, NULL) < 0 ||
        write_config(c, &c->reg[0], "north", NULL, NULL) < 0 || tu_daemon_start(&c->reg[0]) < 0) {
        /* cmocka runs no group teardown after a failed setup: clean up here. */
        group_teardown(state);
        return -1;
    }
    return 0;
}

/* Per-test: stop extra regions and writers, keep the hub and north. */
static int refusal_teardown(void **state)
{
    ctx *c = *state;
    int rc = 0;
    kids_reap(c);
    for (int i = 1; i < c->nreg; i++) {
        if (node_finish(&c->reg[i]) < 0)
            rc = -1;
        tu_daemon_cleanup(&c->reg[i]);
    }
    c->nreg = 1;
    return rc;
}

/* Starts a background writer at north. */
static pid_t background(ctx *c, long n)
{
    return writer_start(c, &c->reg[0], n, "bg");
}

/* After a refusal: the hub still runs and north converges. */
static void hub_survives(ctx *c, pid_t w)
{
    int status;
    writer_wait(c, w, 300000);
    assert_int_equal(waitpid(c->hub.pid, &status, WNOHANG), 0);
    json_decref(req(c, &c->hub, 200, "GET", "/healthz", NULL));
    wait_synced(c, &c->reg[0]);
    assert_converged(c, CHECK_SEQS, c->hub.db, c->reg[0].db);
}

/* (a) A region whose certificate another CA signed. */
static void test_refuse_foreign_ca(void **state)
{
    ctx *c = *state;
    tu_daemon *west = &c->reg[1];
    pid_t w = background(c, 300);
    int before = log_count(&c->hub, "event=tls_refused");
    char *last = NULL;
    uint64_t end;

    c->nreg = 2;
    node_init(c, west, "west", c->foreign, NULL);
    node_start(c, west);
    WAIT_UNTIL(c, 20000, log_count(&c->hub, "event=tls_refused") > before,
               "the hub logs event=tls_refused for west's foreign certificate");
    assert_int_equal(
        file_int(c->hub.db, "SELECT count(*) FROM sg_regions WHERE region = 'west'", NULL, 0), 0);
    /* Up to 10 s (west retries every second or less) for its status to say why. */
    for (end = tu_now_ms() + 10000; tu_now_ms() < end; tu_sleep_ms(50)) {
        free(last);
        last = region_last_error(west);
        if (last != NULL && strstr(last, "certificate") != NULL)
            break;
    }
    print_message("west's status: connected %d, last_error: %s\n", region_connected(west),
                  last ? last : "null");
    if (last == NULL || strstr(last, "certificate") == NULL)
        log_tail(west, 5);
    assert_int_equal(tu_daemon_stop(west), 0);
    hub_survives(c, w);
    if (last == NULL || strstr(last, "certificate") == NULL) {
        free(last);
        fail_msg("west's GET /v1/status replication.last_error should say its certificate was "
                 "refused (its log does)");
    }
    free(last);
}

/* A raw OpenSSL client: TLS 1.3 (or at most max_version), ALPN sangam/1, trusting the
 * coalition CA, with name's certificate or none. Returns the handshake result; on success also
 * tries to read (which must fail: the hub refuses after the client's Finished in TLS 1.3). */
static void raw_client(ctx *c, int max_version, const char *name, int *out_connect, int *out_read,
                       char *why, size_t cap)
{
    SSL_CTX *sc = SSL_CTX_new(TLS_client_method());
    SSL *ssl;
    char path[PATH_MAX + 16];
    struct timeval tv = {10, 0};
    int fd;

    assert_non_null(sc);
    SSL_CTX_set_min_proto_version(sc,
                                  max_version == TLS1_2_VERSION ? TLS1_2_VERSION : TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(sc, max_version);
    snprintf(path, sizeof(path), "%s/ca.pem", c->pki);
    assert_int_equal(SSL_CTX_load_verify_locations(sc, path, NULL), 1);
    SSL_CTX_set_verify(sc, SSL_VERIFY_PEER, NULL);
    assert_int_equal(SSL_CTX_set_alpn_protos(sc, (const unsigned char *)"\x08sangam/1", 9), 0);
    if (name != NULL) {
        snprintf(path, sizeof(path), "%s/%s.pem", c->pki, name);
        assert_int_equal(SSL_CTX_use_certificate_chain_file(sc, path), 1);
        snprintf(path, sizeof(path), "%s/%s.key", c->pki, name);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(sc, path, SSL_FILETYPE_PEM), 1);
    }
    fd = tcp_connect(c->hub_port);
    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    ssl = SSL_new(sc);
    assert_non_null(ssl);
    SSL_set_fd(ssl, fd);
    ERR_clear_error();
    *out_connect = SSL_connect(ssl);
    *out_read = 0;
    if (*out_connect == 1) {
        /* A HELLO as the certificate's region: it must not be answered with WELCOME. */
        static const unsigned char hello[] = {0,    0,   0,   10,  0x94, 1,   1,
                                              0xa5, 's', 'o', 'u', 't',  'h', 1};
        char buf[256];
        SSL_write(ssl, hello, sizeof(hello));
        *out_read = SSL_read(ssl, buf, sizeof(buf));
    }
    ERR_error_string_n(ERR_peek_last_error(), why, cap);
    SSL_free(ssl);
    close(fd);
    SSL_CTX_free(sc);
}

/* (b) A TLS 1.3 client without a certificate. */
static void test_refuse_no_client_cert(void **state)
{
    ctx *c = *state;
    pid_t w = background(c, 300);
    int before = log_count(&c->hub, "event=tls_refused"), hs, rd;
    char why[256];

    raw_client(c, TLS1_3_VERSION, NULL, &hs, &rd, why, sizeof(why));
    print_message("no certificate: SSL_connect %d, SSL_read %d (%s)\n", hs, rd, why);
    assert_true(hs != 1 || rd <= 0);
    WAIT_UNTIL(c, 15000, log_count(&c->hub, "event=tls_refused") > before,
               "the hub logs event=tls_refused for a client without a certificate");
    hub_survives(c, w);
}

/* (c) A client that speaks at most TLS 1.2 (with a valid certificate). */
static void test_refuse_tls12(void **state)
{
    ctx *c = *state;
    pid_t w = background(c, 300);
    int before = log_count(&c->hub, "event=tls_refused"), hs, rd;
    char why[256];

    raw_client(c, TLS1_2_VERSION, "south", &hs, &rd, why, sizeof(why));
    print_message("TLS 1.2: SSL_connect %d (%s)\n", hs, why);
    assert_true(hs != 1);
    WAIT_UNTIL(c, 15000, log_count(&c->hub, "event=tls_refused") > before,
               "the hub logs event=tls_refused for a TLS 1.2 client");
    hub_survives(c, w);
}

static const char *held_reason(ctx *c, const char *region, long long seq, char *out, size_t cap)
{
    sqlite3 *db = db_open(c->hub.db);
    sqlite3_stmt *stmt = NULL;
    out[0] = '\0';
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT reason FROM sg_quarantine WHERE region = ?1 AND "
                                        "seq = ?2 AND state = 'held'",
                                        -1, &stmt, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(stmt, 1, region, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, seq);
    if (sqlite3_step(stmt) == SQLITE_ROW)
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return out;
}

static void hub_org_name(ctx *c, const char *id, char *out, size_t cap)
{
    sqlite3 *db = db_open(c->hub.db);
    sqlite3_stmt *stmt = NULL;
    out[0] = '\0';
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT name FROM organisations WHERE id = ?1", -1, &stmt, NULL),
        SQLITE_OK);
    sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(stmt) == SQLITE_ROW)
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

/* (d) A peer with south's certificate touching north's rows. */
static void test_refuse_foreign_rows(void **state)
{
    ctx *c = *state;
    pid_t w = background(c, 300);
    char target[40], name[128], reason[512], pk[40];
    const char *org_south[] = {"region", "south", "name", "South's own", "kind", "other", NULL};
    const char *hijack[] = {"name", "Hijacked by south", NULL};
    const char *steal[] = {"region", "south", "name", "Taken over", "kind", "other", NULL};
    const char *as_north[] = {"region", "north", "name", "Forged for north", "kind", "other", NULL};
    sg_col cols[8];
    sg_change ch;
    uint64_t c0, cur;
    peer p;
    json_t *j;

    create(c, &c->reg[0], target, "organisations", "{\"name\":\"North's own\",\"kind\":\"other\"}");
    WAIT_UNTIL(c, WAIT_MS, hub_has(c, "organisations", target) == 1,
               "north's organisation %s reaches the hub", target);

    /* A valid change of south's own moves south's cursor. */
    if (peer_open(&p, c, c->pki, "south") < 0)
        fail_msg("hostile peer: %s", p.err);
    c0 = peer_hello(&p, "south");
    snprintf(pk, sizeof(pk), "south-org-%llu", (unsigned long long)c0 + 1);
    change_set(&ch, cols, c0 + 1, "organisations", pk, SG_OP_INSERT, org_south);
    peer_batch(&p, "south", &ch, 1);
    assert_int_equal(peer_expect_ack(&p), c0 + 1);
    assert_int_equal(hub_cursor(c, "south"), c0 + 1);
    assert_int_equal(hub_has(c, "organisations", pk), 1);

    /* An update of north's row, with origin south: refused, held, cursor unmoved. */
    change_set(&ch, cols, c0 + 2, "organisations", target, SG_OP_UPDATE, hijack);
    peer_batch(&p, "south", &ch, 1);
    peer_expect_error(&p, "not_authorized", NULL);
    peer_close(&p);
    assert_int_equal(hub_cursor(c, "south"), c0 + 1);
    held_reason(c, "south", (long long)c0 + 2, reason, sizeof(reason));
    print_message("  quarantined with reason: %s\n", reason);
    assert_true(reason[0] != '\0');
    assert_non_null(strstr(reason, "north"));
    hub_org_name(c, target, name, sizeof(name));
    assert_string_equal(name, "North's own");

    /* An insert over north's id, and a delete of it: refused too. */
    if (peer_open(&p, c, c->pki, "south") < 0)
        fail_msg("hostile peer: %s", p.err);
    assert_int_equal(peer_hello(&p, "south"), c0 + 1);
    change_set(&ch, cols, c0 + 2, "organisations", target, SG_OP_INSERT, steal);
    peer_batch(&p, "south", &ch, 1);
    peer_expect_error(&p, "not_authorized", NULL);
    peer_close(&p);
    if (peer_open(&p, c, c->pki, "south") < 0)
        fail_msg("hostile peer: %s", p.err);
    assert_int_equal(peer_hello(&p, "south"), c0 + 1);
    change_set(&ch, cols, c0 + 2, "organisations", target, SG_OP_DELETE, NULL);
    peer_batch(&p, "south", &ch, 1);
    peer_expect_error(&p, "not_authorized", NULL);
    peer_close(&p);
    assert_int_equal(hub_has(c, "organisations", target), 1);

    /* A batch whose origin is north, from south's certificate. */
    if (peer_open(&p, c, c->pki, "south") < 0)
        fail_msg("hostile peer: %s", p.err);
    assert_int_equal(peer_hello(&p, "south"), c0 + 1);
    change_set(&ch, cols, c0 + 2, "organisations", "forged-for-north", SG_OP_INSERT, as_north);
    peer_batch(&p, "north", &ch, 1);
    peer_expect_error(&p, "not_authorized", NULL);
    peer_close(&p);
    assert_int_equal(hub_has(c, "organisations", "forged-for-north"), 0);
    assert_int_equal(hub_cursor(c, "south"), c0 + 1);

    /* HELLO naming north with south's certificate. */
    if (peer_open(&p, c, c->pki, "south") < 0)
        fail_msg("hostile peer: %s", p.err);
    {
        sg_msg m;
        memset(&m, 0, sizeof(m));
        m.type = SG_MSG_HELLO;
        m.version = SG_PROTO_VERSION;
        m.node = "north";
        m.node_len = 5;
        m.schema = SG_SCHEMA_VERSION;
        peer_send(&p, &m);
    }
    peer_expect_error(&p, "not_authorized", NULL);
    peer_close(&p);

    /* The operator discards south's held changes: its stream flows again. */
    j = req(c, &c->hub, 200, "GET", "/v1/quarantine?region=south&state=held", NULL);
    print_message("  held for south: %zu change(s)\n",
                  json_array_size(json_object_get(j, "items")));
    assert_true(json_array_size(json_object_get(j, "items")) >= 1);
    json_decref(j);
    j = req(c, &c->hub, 200, "POST", "/v1/quarantine/discard", "{\"region\":\"south\"}");
    assert_true(json_integer_value(json_object_get(j, "changes")) >= 1);
    json_decref(j);
    cur = (uint64_t)hub_cursor(c, "south");
    assert_int_equal(cur, c0 + 2);
    j = req(c, &c->hub, 200, "GET", "/v1/quarantine?region=south&state=held", NULL);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 0);
    json_decref(j);
    if (peer_open(&p, c, c->pki, "south") < 0)
        fail_msg("hostile peer: %s", p.err);
    assert_int_equal(peer_hello(&p, "south"), c0 + 2);
    snprintf(pk, sizeof(pk), "south-org-%llu", (unsigned long long)c0 + 3);
    change_set(&ch, cols, c0 + 3, "organisations", pk, SG_OP_INSERT, org_south);
    peer_batch(&p, "south", &ch, 1);
    assert_int_equal(peer_expect_ack(&p), c0 + 3);
    peer_close(&p);
    assert_int_equal(hub_has(c, "organisations", pk), 1);
    hub_org_name(c, target, name, sizeof(name));
    assert_string_equal(name, "North's own");
    hub_survives(c, w);
}

/* Discarding held changes moves the cursor past the region's blocked stream, and no further:
 * seqs in a batch that was not the region's own stream (another origin's numbers) must not
 * become the region's cursor, or the region's real changes up to them are skipped. */
static void test_discard_keeps_stream(void **state)
{
    ctx *c = *state;
    const char *own[] = {"region", "rogue", "name", "Rogue's own", "kind", "other", NULL};
    const char *as_north[] = {"region", "north", "name", "Forged", "kind", "other", NULL};
    const char *bad[] = {"region", "north", "name", "Not mine", "kind", "other", NULL};
    sg_col cols[8];
    sg_change ch;
    uint64_t c0, welcome, ack;
    char pk[40];
    peer p;
    json_t *j;

    if (peer_open(&p, c, c->pki, "rogue") < 0)
        fail_msg("hostile peer: %s", p.err);
    c0 = peer_hello(&p, "rogue");
    snprintf(pk, sizeof(pk), "rogue-%llu", (unsigned long long)c0 + 1);
    change_set(&ch, cols, c0 + 1, "organisations", pk, SG_OP_INSERT, own);
    peer_batch(&p, "rogue", &ch, 1);
    assert_int_equal(peer_expect_ack(&p), c0 + 1);
    /* Its next change is refused (an insert owned by another region) and held. */
    change_set(&ch, cols, c0 + 2, "organisations", "rogue-bad", SG_OP_INSERT, bad);
    peer_batch(&p, "rogue", &ch, 1);
    peer_expect_error(&p, "not_authorized", NULL);
    peer_close(&p);
    /* A batch in north's name with north-like seqs, from rogue's certificate: refused, held. */
    if (peer_open(&p, c, c->pki, "rogue") < 0)
        fail_msg("hostile peer: %s", p.err);
    assert_int_equal(peer_hello(&p, "rogue"), c0 + 1);
    change_set(&ch, cols, c0 + 900, "organisations", "rogue-forged", SG_OP_INSERT, as_north);
    peer_batch(&p, "north", &ch, 1);
    peer_expect_error(&p, "not_authorized", NULL);
    peer_close(&p);

    j = req(c, &c->hub, 200, "POST", "/v1/quarantine/discard", "{\"region\":\"rogue\"}");
    json_decref(j);
    print_message("after discard: rogue's cursor %lld (its stream was blocked at %llu)\n",
                  hub_cursor(c, "rogue"), (unsigned long long)c0 + 2);
    /* The region's next change, c0 + 3, must be applied, not skipped as a duplicate. */
    if (peer_open(&p, c, c->pki, "rogue") < 0)
        fail_msg("hostile peer: %s", p.err);
    welcome = peer_hello(&p, "rogue");
    snprintf(pk, sizeof(pk), "rogue-%llu", (unsigned long long)c0 + 3);
    change_set(&ch, cols, c0 + 3, "organisations", pk, SG_OP_INSERT, own);
    peer_batch(&p, "rogue", &ch, 1);
    ack = peer_expect_ack(&p);
    peer_close(&p);
    print_message("WELCOME %llu; change %llu answered with ACK %llu; at the hub: %d\n",
                  (unsigned long long)welcome, (unsigned long long)c0 + 3, (unsigned long long)ack,
                  hub_has(c, "organisations", pk));
    assert_int_equal(welcome, c0 + 2);
    assert_int_equal(ack, c0 + 3);
    assert_int_equal(hub_has(c, "organisations", pk), 1);
}

/* A BATCH of duplicates only is acknowledged with its own last seq (PROTOCOL.md 7.3.4: "the
 * last seq of the BATCH it answers"; a region checks exactly that). */
static void test_ack_of_duplicates(void **state)
{
    ctx *c = *state;
    const char *own[] = {"region", "eve", "name", "Eve's", "kind", "other", NULL};
    sg_col cols[2][8];
    sg_change ch[2];
    char pk0[40], pk1[40];
    uint64_t c0, ack;
    peer p;

    if (peer_open(&p, c, c->pki, "eve") < 0)
        fail_msg("hostile peer: %s", p.err);
    c0 = peer_hello(&p, "eve");
    snprintf(pk0, sizeof(pk0), "eve-%llu", (unsigned long long)c0 + 1);
    snprintf(pk1, sizeof(pk1), "eve-%llu", (unsigned long long)c0 + 2);
    change_set(&ch[0], cols[0], c0 + 1, "organisations", pk0, SG_OP_INSERT, own);
    change_set(&ch[1], cols[1], c0 + 2, "organisations", pk1, SG_OP_INSERT, own);
    peer_batch(&p, "eve", ch, 2);
    assert_int_equal(peer_expect_ack(&p), c0 + 2);
    /* A replay of the first change alone. */
    peer_batch(&p, "eve", ch, 1);
    ack = peer_expect_ack(&p);
    peer_close(&p);
    print_message("a replay of change %llu (cursor %llu) was acknowledged with %llu\n",
                  (unsigned long long)c0 + 1, (unsigned long long)c0 + 2, (unsigned long long)ack);
    assert_int_equal(ack, c0 + 1);
}

/* Sends raw plaintext bytes after WELCOME (or right after the handshake when hello is 0) and
 * expects ERROR code and the end of the connection. */
static void frame_refused(ctx *c, int hello, const void *bytes, size_t len,
                          const char *const *codes)
{
    peer p;
    sg_msg m;
    char d[1200];
    int rc, ok = 0;

    if (peer_open(&p, c, c->pki, "east") < 0)
        fail_msg("hostile peer: %s", p.err);
    if (hello)
        peer_hello(&p, "east");
    peer_send_raw(&p, bytes, len);
    rc = peer_recv(&p, &m, 10000);
    if (rc != GOT_MSG || m.type != SG_MSG_ERROR)
        fail_msg("expected ERROR, got %s", rc == GOT_MSG ? msg_desc(d, sizeof(d), &m)
                                           : p.err[0]    ? p.err
                                                         : "nothing");
    for (; *codes != NULL; codes++)
        ok |= m.code_len == strlen(*codes) && memcmp(m.code, *codes, m.code_len) == 0;
    print_message("  %s: hub answered %s\n", hello ? "after WELCOME" : "before HELLO",
                  msg_desc(d, sizeof(d), &m));
    if (!ok)
        fail_msg("unexpected error code: %s", d);
    rc = peer_recv(&p, &m, 10000);
    if (rc != GOT_CLOSE && rc != GOT_TLS_ERROR)
        fail_msg("the hub should close after its ERROR, got %s",
                 rc == GOT_MSG ? msg_desc(d, sizeof(d), &m) : "nothing within 10 s");
    peer_close(&p);
}

/* (e) A frame header announcing 2 GiB. */
static void test_refuse_oversized_frame(void **state)
{
    ctx *c = *state;
    static const unsigned char hdr[] = {0x7f, 0xff, 0xff, 0xff, 0x92, 0x05, 0x01};
    static const char *const too_big[] = {"too_big", NULL};
    pid_t w = background(c, 300);

    frame_refused(c, 1, hdr, sizeof(hdr), too_big);
    frame_refused(c, 0, hdr, sizeof(hdr), too_big);
    hub_survives(c, w);
}

/* (f) Valid lengths, payloads that are not messages. */
static void test_refuse_malformed_frame(void **state)
{
    ctx *c = *state;
    static const char *const decode[] = {"truncated", "wrong_type", "malformed",   "trailing_bytes",
                                         "too_deep",  "too_big",    "unsupported", NULL};
    static const unsigned char c1[] = {0, 0, 0, 4, 0xc1, 0xc1, 0x00, 0xff};
    static const unsigned char garbage[] = {0, 0, 0, 6, 0x92, 0x05, 0xc2, 0xde, 0xad, 0xbe};
    static const unsigned char trailing[] = {0, 0, 0, 4, 0x92, 0x05, 0x01, 0x07};
    static const unsigned char empty[] = {0, 0, 0, 0};
    static const unsigned char bad_batch[] = {0, 0, 0, 5, 0x92, 0x03, 0x92, 0xa1, 'x'};
    pid_t w = background(c, 300);

    frame_refused(c, 1, c1, sizeof(c1), decode);
    frame_refused(c, 1, garbage, sizeof(garbage), decode);
    frame_refused(c, 1, trailing, sizeof(trailing), decode);
    frame_refused(c, 1, empty, sizeof(empty), decode);
    frame_refused(c, 1, bad_batch, sizeof(bad_batch), decode);
    frame_refused(c, 0, c1, sizeof(c1), decode);
    hub_survives(c, w);
}

/* Messages a state does not allow, a version and a gap. */
static void test_refuse_session_violations(void **state)
{
    ctx *c = *state;
    static const char *const proto[] = {"protocol_error", NULL};
    static const char *const unsupported[] = {"unsupported", NULL};
    /* BATCH before HELLO; ACK from a region; WELCOME from a region; HELLO twice. */
    static const unsigned char ack[] = {0, 0, 0, 3, 0x92, 0x04, 0x01};
    static const unsigned char welcome[] = {0,    0,   0,   9,   0x95, 0x02, 0x01,
                                            0xa3, 'h', 'u', 'b', 0x01, 0x00};
    static const unsigned char hello[] = {0,    0,   0,   9,   0x94, 0x01, 0x01,
                                          0xa4, 'e', 'a', 's', 't',  0x01};
    static const unsigned char hello_v2[] = {0,    0,   0,   9,   0x94, 0x01, 0x02,
                                             0xa4, 'e', 'a', 's', 't',  0x01};
    const char *own[] = {"region", "east", "name", "East's", "kind", "other", NULL};
    sg_col cols[8];
    sg_change ch;
    uint64_t c0;
    peer p;
    pid_t w = background(c, 300);

    frame_refused(c, 1, ack, sizeof(ack), proto);
    frame_refused(c, 1, welcome, sizeof(welcome), proto);
    frame_refused(c, 1, hello, sizeof(hello), proto);
    frame_refused(c, 0, ack, sizeof(ack), proto);
    frame_refused(c, 0, hello_v2, sizeof(hello_v2), unsupported);

    /* A batch that skips seqs: seq_gap, nothing held, cursor unmoved. */
    if (peer_open(&p, c, c->pki, "east") < 0)
        fail_msg("hostile peer: %s", p.err);
    c0 = peer_hello(&p, "east");
    change_set(&ch, cols, c0 + 5, "organisations", "east-gap", SG_OP_INSERT, own);
    peer_batch(&p, "east", &ch, 1);
    peer_expect_error(&p, "seq_gap", NULL);
    peer_close(&p);
    assert_int_equal(hub_cursor(c, "east"), c0);
    assert_int_equal(
        file_int(c->hub.db, "SELECT count(*) FROM sg_quarantine WHERE region = 'east'", NULL, 0),
        0);
    hub_survives(c, w);
}

/* (g) Plain bytes instead of TLS. */
static void test_refuse_plain_bytes(void **state)
{
    ctx *c = *state;
    static const char junk[] = "GET / HTTP/1.1\r\nHost: hub\r\n\r\n\x01\x02\x03 not TLS at all";
    int before = log_count(&c->hub, "event=tls_refused"), fd, closed = 0;
    uint64_t t0;
    size_t len = 0;
    char *got;
    pid_t w = background(c, 300);

    fd = tcp_connect(c->hub_port);
    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, junk, sizeof(junk) - 1), 0);
    t0 = tu_now_ms();
    got = tu_recv_all(fd, 12000, &len, &closed);
    print_message("plain bytes: the hub answered %zu bytes and %s after %llu ms\n", len,
                  closed ? "closed" : "did not close", (unsigned long long)(tu_now_ms() - t0));
    free(got);
    close(fd);
    assert_true(closed);
    WAIT_UNTIL(c, 15000, log_count(&c->hub, "event=tls_refused") > before,
               "the hub logs event=tls_refused for plain bytes");
    hub_survives(c, w);
}

/* A peer that completes TLS and then says nothing is dropped within 2x keepalive
 * (PROTOCOL.md 7.4: "The same 2K bound applies to the TLS handshake and to HELLO_SENT and
 * AWAIT_HELLO"). */
static void test_silent_peer_dropped(void **state)
{
    ctx *c = *state;
    peer p;
    sg_msg m;
    uint64_t t0;
    int rc;

    if (peer_open(&p, c, c->pki, "east") < 0)
        fail_msg("hostile peer: %s", p.err);
    t0 = tu_now_ms();
    rc = peer_recv(&p, &m, 2 * KEEPALIVE_S * 1000 + 1500);
    print_message("a silent peer was %s after %llu ms (keepalive %d s)\n",
                  rc == GOT_TIMEOUT ? "still connected" : "dropped",
                  (unsigned long long)(tu_now_ms() - t0), KEEPALIVE_S);
    peer_close(&p);
    assert_true(rc != GOT_TIMEOUT);
}

/* A second connection with north's certificate replaces north's live session (one stream
 * per region); north reconnects after that connection ends and converges. */
static void test_session_replaced(void **state)
{
    ctx *c = *state;
    pid_t w = background(c, 600);
    uint64_t welcome;
    int before = log_count(&c->hub, "event=session_replaced");
    peer p;

    WAIT_UNTIL(c, WAIT_MS, hub_cursor(c, "north") > 0 && region_connected(&c->reg[0]) == 1,
               "north is streaming");
    if (peer_open(&p, c, c->pki, "north") < 0)
        fail_msg("second connection: %s", p.err);
    welcome = peer_hello(&p, "north");
    WAIT_UNTIL(c, 10000, log_count(&c->hub, "event=session_replaced") > before,
               "the hub logs event=session_replaced for north");
    print_message("second connection as north got WELCOME %llu\n", (unsigned long long)welcome);
    /* Say goodbye cleanly; the real north comes back. */
    {
        sg_msg m;
        memset(&m, 0, sizeof(m));
        m.type = SG_MSG_BYE;
        m.text = "test done";
        m.text_len = 9;
        peer_send(&p, &m);
        sg_tls_shutdown(p.tls);
        peer_flush(&p);
    }
    peer_close(&p);
    hub_survives(c, w);
}

/* After everything above: the hub is up and north has converged. */
static void test_refusals_hub_still_up(void **state)
{
    ctx *c = *state;
    pid_t w = background(c, 200);
    hub_survives(c, w);
}

int main(void)
{
    const struct CMUnitTest replication[] = {
        cmocka_unit_test_teardown(test_concurrent_writers, test_teardown),
        cmocka_unit_test_teardown(test_hub_killed_mid_stream, test_teardown),
        cmocka_unit_test_teardown(test_hub_down_catch_up, test_teardown),
        cmocka_unit_test_teardown(test_hub_rebuilt_from_logs, test_teardown),
        cmocka_unit_test_teardown(test_snapshot_after_prune_and_wipe, test_teardown),
        cmocka_unit_test_teardown(test_snapshot_after_restore, test_teardown),
        cmocka_unit_test_teardown(test_rebuild_acked_follows_hub, test_teardown),
        cmocka_unit_test_teardown(test_liveness, test_teardown),
        cmocka_unit_test_teardown(test_dead_link, test_teardown),
    };
    const struct CMUnitTest refusals[] = {
        cmocka_unit_test_teardown(test_refuse_foreign_ca, refusal_teardown),
        cmocka_unit_test_teardown(test_refuse_no_client_cert, refusal_teardown),
        cmocka_unit_test_teardown(test_refuse_tls12, refusal_teardown),
        cmocka_unit_test_teardown(test_refuse_foreign_rows, refusal_teardown),
        cmocka_unit_test_teardown(test_discard_keeps_stream, refusal_teardown),
        cmocka_unit_test_teardown(test_ack_of_duplicates, refusal_teardown),
        cmocka_unit_test_teardown(test_refuse_oversized_frame, refusal_teardown),
        cmocka_unit_test_teardown(test_refuse_malformed_frame, refusal_teardown),
        cmocka_unit_test_teardown(test_refuse_session_violations, refusal_teardown),
        cmocka_unit_test_teardown(test_refuse_plain_bytes, refusal_teardown),
        cmocka_unit_test_teardown(test_silent_peer_dropped, refusal_teardown),
        cmocka_unit_test_teardown(test_session_replaced, refusal_teardown),
        cmocka_unit_test_teardown(test_refusals_hub_still_up, refusal_teardown),
    };
    int failed = 0;

    signal(SIGPIPE, SIG_IGN);
    /* SANGAM_TEST_FILTER=test_liveness runs matching tests only (cmocka's * wildcards). */
    if (getenv("SANGAM_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("SANGAM_TEST_FILTER"));
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    failed += cmocka_run_group_tests_name("replication", replication, group_setup, group_teardown);
    failed += cmocka_run_group_tests_name("refusals", refusals, refusals_setup, group_teardown);
    curl_global_cleanup();
    return failed == 0 ? 0 : 1;
}
