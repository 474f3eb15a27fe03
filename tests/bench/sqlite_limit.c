/*
 * sqlite_limit.c - bench_sqlite_limit: the "limit" of issue 4, how fast raw SQLite takes the
 * rows Sangam replicates, with the hub's pragmas and nothing of Sangam in the way.
 *
 *   bench_sqlite_limit N [--db PATH]            N member-like rows, bulk insert
 *   bench_sqlite_limit N --mixed [--db PATH]    N mixed operations over four tables
 *   bench_sqlite_limit N [--mixed] --into DB [--region R] [--applying]
 *       the same writes into an existing node database made by sangamd (its schema is not
 *       created): a region's capture triggers log them as they would the sqlite3 shell's writes
 *       (the offline-return workload of sangam_bench.sh); --applying writes as the hub's
 *       replication does, with the capture triggers off on this connection, so the rows are what
 *       a hub holds after applying them (the growth benchmark's filler)
 *
 * Prints one key=value line on stdout:
 *   sqlite_limit rows=N seconds=S rows_per_s=R
 *   sqlite_limit_mixed ops=N seconds=S ops_per_s=R inserts=I updates=U deletes=D
 *
 * Invariants of the measurement:
 * - The tables are the hub's: server/schema.sql is embedded at build time (as sangamd does) and
 *   applied whole to a fresh file, so the CHECKs, STRICT, foreign keys and indexes are the real
 *   ones and cannot drift. The change-log triggers store.c adds are not created: this is the
 *   raw insert cost Sangam's apply path is compared against.
 * - The pragmas are the hub's (store.c): journal_mode=WAL, synchronous=FULL, foreign_keys=ON.
 * - Every transaction holds 10,000 rows (or operations), bound through prepared statements.
 * - Ids are ULID-like (48-bit milliseconds then 80 random bits, Crockford base32, 26
 *   characters, strictly increasing within the run), generated in C; created_at/updated_at are
 *   bound explicitly, as replicated rows carry their own. Values come from a seeded generator
 *   with the shapes of deploy/sample-members.sh.
 * - The clock runs from the first BEGIN to the last COMMIT: schema creation, the final
 *   row-count check and removing the temp dir are outside it.
 *
 * Mixed mode: each operation picks a table, members 60%, issues 20%, sessions 15%,
 * organisations 5%, then an operation: insert 70%, update 25%, delete 5%. An update or delete
 * on a table with no live row is an insert instead; a delete only removes a row nothing refers
 * to (foreign keys are on), and becomes an update when eight random picks find none. 10% of new
 * members are representatives of an organisation; an issue is raised by a live member, half of
 * them in a live session, a third of them assigned to an organisation.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

extern const char bench_schema_sql[]; /* server/schema.sql, embedded by cmake/embed.cmake */

#define BATCH   10000 /* rows (operations) per transaction */
#define ULID    26    /* characters in an id */
#define NO_SLOT (-1)

enum { T_ORG, T_MEMBER, T_SESSION, T_ISSUE, T_COUNT };
enum { OP_INSERT, OP_UPDATE, OP_DELETE, OP_COUNT };

static const char *const table_names[T_COUNT] = {"organisations", "members", "sessions", "issues"};

/* Value lists, as in deploy/sample-members.sh (mirzapur). */
static const char *const fem[] = {"Sita",  "Gita",    "Rekha", "Sunita", "Anita",
                                  "Meena", "Kamla",   "Pooja", "Radha",  "Savitri",
                                  "Asha",  "Lakshmi", "Usha",  "Neha",   "Priya"};
static const char *const mal[] = {"Ram",    "Shyam",  "Mohan",  "Suresh", "Ramesh",
                                  "Dinesh", "Rajesh", "Mukesh", "Anil",   "Sunil",
                                  "Vijay",  "Ajay",   "Ravi",   "Arjun",  "Kishan"};
static const char *const sur[] = {"Yadav",  "Kushwaha", "Patel", "Verma",  "Singh",  "Prajapati",
                                  "Nishad", "Pal",      "Gupta", "Maurya", "Rajput", "Ahirwar"};
static const char *const sectors[] = {"dairy",     "handloom",   "poultry",         "goat_rearing",
                                      "tailoring", "kirana",     "agro_processing", "carpentry",
                                      "pottery",   "stone_craft"};
static const char *const districts[] = {"Mirzapur", "Sonbhadra", "Bhadohi"};
static const char *const villages[] = {"Chunar", "Lalganj", "Halia", "Madihan", "Kon", "Marihan"};
static const char *const org_kinds[] = {"government",    "financial", "academic", "training",
                                        "civil_society", "private",   "other"};
static const char *const session_kinds[] = {"working_session", "launch",      "training",
                                            "radio_show",      "field_visit", "other"};
static const char *const categories[] = {"finance",   "market",     "skills",     "infrastructure",
                                         "awareness", "regulation", "technology", "other"};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* One row a mixed run made: its id, whether it still exists, and what it refers to. */
typedef struct slot {
    char id[ULID + 1];
    uint8_t live;
    uint32_t refs;  /* live rows whose foreign keys point here */
    int32_t ref[3]; /* slots this row points to: member -> org; issue -> member, session, org */
} slot;

typedef struct table {
    slot *v; /* every row ever inserted, in order; owned */
    int32_t n, cap;
    int32_t live;
} table;

/* The run: one of these, passed down (no globals). */
typedef struct bench {
    sqlite3 *db;
    const char *region;      /* the rows' owning region */
    long before[T_COUNT];    /* rows already in each table (--into) */
    uint64_t rng;            /* splitmix64 state */
    uint64_t last_ms;        /* time part of the last id */
    uint64_t rnd_hi, rnd_lo; /* random part of the last id (16 + 64 bits) */
    char ts[32];             /* created_at/updated_at of the current row */
    sqlite3_stmt *stmt[T_COUNT][OP_COUNT];
    table t[T_COUNT];
    long ops[OP_COUNT]; /* operations done, by kind */
} bench;

/* --- values --- */

static uint64_t next_rand(bench *b)
{
    uint64_t z = (b->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int pick(bench *b, int n)
{
    return (int)(next_rand(b) % (uint64_t)n);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The 5 bits of the 80-bit number hi:lo starting at bit shift (0 = least significant). */
static unsigned bits5(uint64_t hi, uint64_t lo, int shift)
{
    if (shift >= 64)
        return (unsigned)(hi >> (shift - 64)) & 31u;
    if (shift + 5 <= 64)
        return (unsigned)(lo >> shift) & 31u;
    return (unsigned)((lo >> shift) | (hi << (64 - shift))) & 31u;
}

/* Writes the next id into out and the matching timestamp into b->ts. Ids are strictly
 * increasing: within one millisecond (or if the clock steps back) the random part of the last
 * id is incremented, as server/ulid.c does. */
static void next_id(bench *b, char out[ULID + 1])
{
    static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    uint64_t ms = now_ms();

    if (ms <= b->last_ms) {
        ms = b->last_ms;
        if (++b->rnd_lo == 0 && ++b->rnd_hi == 0x10000) {
            b->rnd_hi = 0;
            ms++;
        }
    } else {
        b->rnd_hi = next_rand(b) & 0xffff;
        b->rnd_lo = next_rand(b);
    }
    b->last_ms = ms;

    for (int i = 9, t = 0; i >= 0; i--, t += 5)
        out[i] = crockford[(ms >> t) & 31u];
    for (int i = 0; i < 16; i++)
        out[10 + i] = crockford[bits5(b->rnd_hi, b->rnd_lo, 75 - 5 * i)];
    out[ULID] = '\0';

    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t len = strftime(b->ts, sizeof(b->ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(b->ts + len, sizeof(b->ts) - len, ".%03uZ", (unsigned)(ms % 1000));
}

/* --- statements --- */

static int fail_db(bench *b, const char *what)
{
    fprintf(stderr, "bench_sqlite_limit: %s: %s\n", what, sqlite3_errmsg(b->db));
    return -1;
}

static int exec(bench *b, const char *sql, const char *what)
{
    char *msg = NULL;
    if (sqlite3_exec(b->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "bench_sqlite_limit: %s: %s\n", what, msg ? msg : "?");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* Runs a bound statement that returns no row, and resets it for the next use. */
static int step(bench *b, sqlite3_stmt *stmt, const char *what)
{
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE)
        return fail_db(b, what);
    return 0;
}

static void bind_text(sqlite3_stmt *stmt, int i, const char *s)
{
    if (s == NULL)
        sqlite3_bind_null(stmt, i);
    else
        sqlite3_bind_text(stmt, i, s, -1, SQLITE_STATIC);
}

static const char *const sql[T_COUNT][OP_COUNT] = {
    [T_ORG] = {"INSERT INTO organisations (id, region, name, kind, district, contact, created_at,"
               " updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
               "UPDATE organisations SET contact = ?2, updated_at = ?3 WHERE id = ?1",
               "DELETE FROM organisations WHERE id = ?1"},
    [T_MEMBER] = {"INSERT INTO members (id, region, name, kind, gender, birth_year, phone,"
                  " village, district, sector, organisation_id, joined_on, created_at,"
                  " updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
                  " ?13)",
                  "UPDATE members SET phone = ?2, village = ?3, updated_at = ?4 WHERE id = ?1",
                  "DELETE FROM members WHERE id = ?1"},
    [T_SESSION] = {"INSERT INTO sessions (id, region, kind, title, held_on, place, summary,"
                   " created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                   "UPDATE sessions SET summary = ?2, updated_at = ?3 WHERE id = ?1",
                   "DELETE FROM sessions WHERE id = ?1"},
    [T_ISSUE] = {"INSERT INTO issues (id, region, raised_by, session_id, category, title,"
                 " description, assigned_to, opened_on, created_at, updated_at) VALUES (?1, ?2,"
                 " ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
                 "UPDATE issues SET status = CASE status WHEN 'open' THEN 'in_progress' ELSE"
                 " 'open' END, updated_at = ?2 WHERE id = ?1",
                 "DELETE FROM issues WHERE id = ?1"},
};

static int prepare(bench *b, int mixed)
{
    for (int t = 0; t < T_COUNT; t++) {
        if (!mixed && t != T_MEMBER)
            continue;
        for (int op = 0; op < OP_COUNT; op++) {
            if (!mixed && op != OP_INSERT)
                continue;
            if (sqlite3_prepare_v3(b->db, sql[t][op], -1, SQLITE_PREPARE_PERSISTENT,
                                   &b->stmt[t][op], NULL) != SQLITE_OK)
                return fail_db(b, "prepare");
        }
    }
    return 0;
}

/* --- rows --- */

/* Inserts one member with a new id into out_id; org is an organisation's id for a
 * representative, or NULL for an entrepreneur. */
static int insert_member(bench *b, char out_id[ULID + 1], const char *org)
{
    sqlite3_stmt *s = b->stmt[T_MEMBER][OP_INSERT];
    char name[64], phone[24], joined[16];
    int female = pick(b, 100) < 55;

    next_id(b, out_id);
    snprintf(name, sizeof(name), "%s %s",
             female ? fem[pick(b, COUNT(fem))] : mal[pick(b, COUNT(mal))],
             sur[pick(b, COUNT(sur))]);
    snprintf(phone, sizeof(phone), "+91 9%09d", pick(b, 999999999));
    snprintf(joined, sizeof(joined), "2026-%02d-%02d", 1 + pick(b, 10), 1 + pick(b, 28));
    bind_text(s, 1, out_id);
    bind_text(s, 2, b->region);
    bind_text(s, 3, name);
    bind_text(s, 4, org ? "representative" : "entrepreneur");
    bind_text(s, 5, female ? "female" : "male");
    sqlite3_bind_int(s, 6, 1965 + pick(b, 42));
    bind_text(s, 7, phone);
    bind_text(s, 8, villages[pick(b, COUNT(villages))]);
    bind_text(s, 9, districts[pick(b, COUNT(districts))]);
    bind_text(s, 10, sectors[pick(b, COUNT(sectors))]);
    bind_text(s, 11, org);
    bind_text(s, 12, joined);
    bind_text(s, 13, b->ts);
    return step(b, s, "insert member");
}

/* Appends a row to table t and returns its slot (NULL: out of memory). */
static slot *add_slot(table *t)
{
    if (t->n == t->cap) {
        int32_t cap = t->cap ? t->cap * 2 : 1024;
        slot *v = realloc(t->v, (size_t)cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        t->v = v;
        t->cap = cap;
    }
    slot *s = &t->v[t->n++];
    memset(s, 0, sizeof(*s));
    s->live = 1;
    s->ref[0] = s->ref[1] = s->ref[2] = NO_SLOT;
    t->live++;
    return s;
}

/* A random live slot of table t (NO_SLOT if eight picks find none). With deletes at 5% of the
 * operations most slots stay live, so eight picks almost always succeed. */
static int32_t random_live(bench *b, const table *t, int unreferenced)
{
    if (t->live == 0)
        return NO_SLOT;
    for (int tries = 0; tries < 8; tries++) {
        int32_t i = (int32_t)(next_rand(b) % (uint64_t)t->n);
        if (t->v[i].live && (!unreferenced || t->v[i].refs == 0))
            return i;
    }
    return NO_SLOT;
}

/* The tables a slot of table tbl refers to, by ref index. */
static int ref_table(int tbl, int k)
{
    static const int member_refs[3] = {T_ORG, -1, -1};
    static const int issue_refs[3] = {T_MEMBER, T_SESSION, T_ORG};
    return tbl == T_MEMBER ? member_refs[k] : tbl == T_ISSUE ? issue_refs[k] : -1;
}

static int mixed_insert(bench *b, int tbl)
{
    char text[256];
    int32_t refs[3] = {NO_SLOT, NO_SLOT, NO_SLOT};
    sqlite3_stmt *s = b->stmt[tbl][OP_INSERT];
    slot *row;

    if (tbl == T_ISSUE) {
        refs[0] = random_live(b, &b->t[T_MEMBER], 0);
        if (refs[0] == NO_SLOT)
            tbl = T_MEMBER; /* an issue needs a member to raise it */
        else {
            if (pick(b, 2) == 0)
                refs[1] = random_live(b, &b->t[T_SESSION], 0);
            if (pick(b, 3) == 0)
                refs[2] = random_live(b, &b->t[T_ORG], 0);
        }
    }
    if (tbl == T_MEMBER && pick(b, 10) == 0)
        refs[0] = random_live(b, &b->t[T_ORG], 0);

    row = add_slot(&b->t[tbl]);
    if (row == NULL) {
        fprintf(stderr, "bench_sqlite_limit: out of memory\n");
        return -1;
    }
    memcpy(row->ref, refs, sizeof(refs));
    for (int k = 0; k < 3; k++) {
        int rt = ref_table(tbl, k);
        if (refs[k] != NO_SLOT && rt >= 0)
            b->t[rt].v[refs[k]].refs++;
    }

    switch (tbl) {
    case T_MEMBER:
        return insert_member(b, row->id, refs[0] == NO_SLOT ? NULL : b->t[T_ORG].v[refs[0]].id);
    case T_ORG:
        next_id(b, row->id);
        snprintf(text, sizeof(text), "%s Swayam Sahayata Samooh %d",
                 villages[pick(b, COUNT(villages))], pick(b, 1000));
        bind_text(s, 1, row->id);
        bind_text(s, 2, b->region);
        bind_text(s, 3, text);
        bind_text(s, 4, org_kinds[pick(b, COUNT(org_kinds))]);
        bind_text(s, 5, districts[pick(b, COUNT(districts))]);
        bind_text(s, 6, "Block office, +91 5442 220000");
        bind_text(s, 7, b->ts);
        return step(b, s, "insert organisation");
    case T_SESSION: {
        char held[16];
        next_id(b, row->id);
        snprintf(held, sizeof(held), "2026-%02d-%02d", 1 + pick(b, 12), 1 + pick(b, 28));
        snprintf(text, sizeof(text), "%s %s session on %s", districts[pick(b, 3)],
                 sectors[pick(b, COUNT(sectors))], held);
        bind_text(s, 1, row->id);
        bind_text(s, 2, b->region);
        bind_text(s, 3, session_kinds[pick(b, COUNT(session_kinds))]);
        bind_text(s, 4, text);
        bind_text(s, 5, held);
        bind_text(s, 6, villages[pick(b, COUNT(villages))]);
        bind_text(s, 7,
                  "Members met the block officer; credit linkage and market days were "
                  "discussed, with follow-ups assigned to the federation.");
        bind_text(s, 8, b->ts);
        return step(b, s, "insert session");
    }
    case T_ISSUE: {
        const char *cat = categories[pick(b, COUNT(categories))];
        next_id(b, row->id);
        snprintf(text, sizeof(text), "%s: %s members in %s", cat, sectors[pick(b, 10)],
                 villages[pick(b, COUNT(villages))]);
        bind_text(s, 1, row->id);
        bind_text(s, 2, b->region);
        bind_text(s, 3, b->t[T_MEMBER].v[refs[0]].id);
        bind_text(s, 4, refs[1] == NO_SLOT ? NULL : b->t[T_SESSION].v[refs[1]].id);
        bind_text(s, 5, cat);
        bind_text(s, 6, text);
        bind_text(s, 7,
                  "Raised at the monthly meeting: the nearest collection centre is 14 km "
                  "away and the bus runs twice a week, so produce spoils before sale.");
        bind_text(s, 8, refs[2] == NO_SLOT ? NULL : b->t[T_ORG].v[refs[2]].id);
        bind_text(s, 9, "2026-01-15");
        bind_text(s, 10, b->ts);
        return step(b, s, "insert issue");
    }
    }
    return -1;
}

static int mixed_update(bench *b, int tbl, int32_t i)
{
    sqlite3_stmt *s = b->stmt[tbl][OP_UPDATE];
    char text[64];
    char unused[ULID + 1];

    next_id(b, unused); /* advances b->ts; the id is not used */
    bind_text(s, 1, b->t[tbl].v[i].id);
    switch (tbl) {
    case T_ORG:
        snprintf(text, sizeof(text), "Block office, +91 5442 %06d", pick(b, 999999));
        bind_text(s, 2, text);
        bind_text(s, 3, b->ts);
        break;
    case T_MEMBER:
        snprintf(text, sizeof(text), "+91 9%09d", pick(b, 999999999));
        bind_text(s, 2, text);
        bind_text(s, 3, villages[pick(b, COUNT(villages))]);
        bind_text(s, 4, b->ts);
        break;
    case T_SESSION:
        snprintf(text, sizeof(text), "Follow-up %d: minutes corrected.", pick(b, 100));
        bind_text(s, 2, text);
        bind_text(s, 3, b->ts);
        break;
    case T_ISSUE:
        bind_text(s, 2, b->ts);
        break;
    }
    return step(b, s, "update");
}

static int mixed_delete(bench *b, int tbl, int32_t i)
{
    slot *row = &b->t[tbl].v[i];
    sqlite3_stmt *s = b->stmt[tbl][OP_DELETE];

    assert(row->live && row->refs == 0);
    bind_text(s, 1, row->id);
    if (step(b, s, "delete") < 0)
        return -1;
    row->live = 0;
    b->t[tbl].live--;
    for (int k = 0; k < 3; k++) {
        int rt = ref_table(tbl, k);
        if (row->ref[k] != NO_SLOT && rt >= 0)
            b->t[rt].v[row->ref[k]].refs--;
    }
    return 0;
}

/* One operation of the mixed workload (see the file comment for the proportions). */
static int mixed_op(bench *b)
{
    int r = pick(b, 100);
    int tbl = r < 60 ? T_MEMBER : r < 80 ? T_ISSUE : r < 95 ? T_SESSION : T_ORG;
    int op = pick(b, 100);
    int32_t i;

    if (op >= 95) {
        i = random_live(b, &b->t[tbl], 1);
        if (i != NO_SLOT) {
            b->ops[OP_DELETE]++;
            return mixed_delete(b, tbl, i);
        }
        op = 70; /* nothing deletable found: update instead */
    }
    if (op >= 70) {
        i = random_live(b, &b->t[tbl], 0);
        if (i != NO_SLOT) {
            b->ops[OP_UPDATE]++;
            return mixed_update(b, tbl, i);
        }
    }
    b->ops[OP_INSERT]++;
    return mixed_insert(b, tbl);
}

/* --- the run --- */

static int count_rows(bench *b, const char *tbl, long *out)
{
    char q[80];
    sqlite3_stmt *s = NULL;

    snprintf(q, sizeof(q), "SELECT count(*) FROM %s", tbl);
    if (sqlite3_prepare_v2(b->db, q, -1, &s, NULL) != SQLITE_OK || sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_finalize(s);
        return fail_db(b, "count rows");
    }
    *out = (long)sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return 0;
}

/* Opens path (which must not exist) with the hub's pragmas and creates the schema. */
static int open_db(bench *b, const char *path, int existing)
{
    sqlite3_stmt *s = NULL;
    int ok;

    if (sqlite3_open_v2(path, &b->db, SQLITE_OPEN_READWRITE | (existing ? 0 : SQLITE_OPEN_CREATE),
                        NULL) != SQLITE_OK)
        return fail_db(b, path);
    if (sqlite3_prepare_v2(b->db, "PRAGMA journal_mode = WAL", -1, &s, NULL) != SQLITE_OK)
        return fail_db(b, "journal_mode");
    ok = sqlite3_step(s) == SQLITE_ROW &&
         sqlite3_stricmp((const char *)sqlite3_column_text(s, 0), "wal") == 0;
    sqlite3_finalize(s);
    if (!ok)
        return fail_db(b, "cannot switch to WAL mode");
    if (exec(b, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
             "pragmas") < 0)
        return -1;
    if (existing) {
        for (int t = 0; t < T_COUNT; t++)
            if (count_rows(b, table_names[t], &b->before[t]) < 0)
                return -1;
        return 0;
    }
    return exec(b, bench_schema_sql, "create schema");
}

static int run_bulk(bench *b, long n)
{
    char id[ULID + 1];
    double t0 = monotonic_s(), t1;
    long rows;

    for (long i = 0; i < n; i++) {
        if (i % BATCH == 0 && exec(b, "BEGIN", "begin") < 0)
            return -1;
        if (insert_member(b, id, NULL) < 0)
            return -1;
        if ((i + 1) % BATCH == 0 || i + 1 == n)
            if (exec(b, "COMMIT", "commit") < 0)
                return -1;
    }
    t1 = monotonic_s();

    if (count_rows(b, "members", &rows) < 0)
        return -1;
    if (rows - b->before[T_MEMBER] != n) {
        fprintf(stderr, "bench_sqlite_limit: %ld new members in the table, expected %ld\n",
                rows - b->before[T_MEMBER], n);
        return -1;
    }
    printf("sqlite_limit rows=%ld seconds=%.3f rows_per_s=%.0f\n", n, t1 - t0, n / (t1 - t0));
    return 0;
}

static int run_mixed(bench *b, long n)
{
    double t0 = monotonic_s(), t1;

    for (long i = 0; i < n; i++) {
        if (i % BATCH == 0 && exec(b, "BEGIN", "begin") < 0)
            return -1;
        if (mixed_op(b) < 0)
            return -1;
        if ((i + 1) % BATCH == 0 || i + 1 == n)
            if (exec(b, "COMMIT", "commit") < 0)
                return -1;
    }
    t1 = monotonic_s();

    for (int t = 0; t < T_COUNT; t++) {
        long rows;
        if (count_rows(b, table_names[t], &rows) < 0)
            return -1;
        if (rows - b->before[t] != b->t[t].live) {
            fprintf(stderr, "bench_sqlite_limit: %ld new rows in %s, expected %ld\n",
                    rows - b->before[t], table_names[t], (long)b->t[t].live);
            return -1;
        }
    }
    printf("sqlite_limit_mixed ops=%ld seconds=%.3f ops_per_s=%.0f inserts=%ld updates=%ld "
           "deletes=%ld\n",
           n, t1 - t0, n / (t1 - t0), b->ops[OP_INSERT], b->ops[OP_UPDATE], b->ops[OP_DELETE]);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_sqlite_limit N [--mixed] [--db PATH]\n"
                    "       bench_sqlite_limit N [--mixed] --into DB [--region R] [--applying]\n"
                    "  N rows (or, with --mixed, operations) into a fresh database with the hub's\n"
                    "  schema and pragmas; PATH must not exist (default: a temp dir, removed).\n"
                    "  --into: into an existing node database instead (see the file's header)\n");
}

/* Removes path, ignoring a file that is not there. */
static void remove_file(const char *path)
{
    if (unlink(path) < 0 && errno != ENOENT)
        fprintf(stderr, "bench_sqlite_limit: remove %s: %s\n", path, strerror(errno));
}

int main(int argc, char **argv)
{
    bench b;
    long n = -1;
    int mixed = 0, rc = 1, applying = 0;
    const char *db_arg = NULL, *into = NULL;
    char dir[4096] = "", path[4200];
    struct stat st;

    memset(&b, 0, sizeof(b));
    b.rng = 42;
    b.region = "mirzapur";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mixed") == 0) {
            mixed = 1;
        } else if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
            db_arg = argv[++i];
        } else if (strcmp(argv[i], "--into") == 0 && i + 1 < argc) {
            into = argv[++i];
        } else if (strcmp(argv[i], "--region") == 0 && i + 1 < argc) {
            b.region = argv[++i];
        } else if (strcmp(argv[i], "--applying") == 0) {
            applying = 1;
        } else if (n < 0 && argv[i][0] != '-') {
            char *end;
            errno = 0;
            n = strtol(argv[i], &end, 10);
            if (errno != 0 || *end != '\0' || n < 1) {
                usage();
                return 2;
            }
        } else {
            usage();
            return 2;
        }
    }
    if (n < 1 || (into != NULL && db_arg != NULL) || (applying && into == NULL)) {
        usage();
        return 2;
    }

    if (into != NULL) {
        snprintf(path, sizeof(path), "%s", into);
    } else if (db_arg != NULL) {
        if (stat(db_arg, &st) == 0) {
            fprintf(stderr,
                    "bench_sqlite_limit: %s exists; the limit is measured on a fresh file\n",
                    db_arg);
            return 1;
        }
        snprintf(path, sizeof(path), "%s", db_arg);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof(dir), "%s/sangam-limit-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (mkdtemp(dir) == NULL) {
            fprintf(stderr, "bench_sqlite_limit: mkdtemp %s: %s\n", dir, strerror(errno));
            return 1;
        }
        snprintf(path, sizeof(path), "%s/limit.db", dir);
    }

    if (open_db(&b, path, into != NULL) < 0 || prepare(&b, mixed) < 0)
        goto close_db;
    /* As the hub's apply connection (store.h, sg_store_capture): no capture triggers. */
    if (applying)
        sqlite3_db_config(b.db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, (int *)NULL);
    rc = (mixed ? run_mixed(&b, n) : run_bulk(&b, n)) < 0 ? 1 : 0;

close_db:
    for (int t = 0; t < T_COUNT; t++) {
        for (int op = 0; op < OP_COUNT; op++)
            sqlite3_finalize(b.stmt[t][op]);
        free(b.t[t].v);
    }
    sqlite3_close(b.db);
    if (dir[0] != '\0') {
        char side[4300];
        remove_file(path);
        snprintf(side, sizeof(side), "%s-wal", path);
        remove_file(side);
        snprintf(side, sizeof(side), "%s-shm", path);
        remove_file(side);
        if (rmdir(dir) < 0)
            fprintf(stderr, "bench_sqlite_limit: remove %s: %s\n", dir, strerror(errno));
    }
    return rc;
}
