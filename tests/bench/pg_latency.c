/*
 * pg_latency.c - bench_pg_latency: PostgreSQL's single-row commit-to-applied latency over
 * logical replication, the peer of Sangam's write-to-visible-at-the-hub latency (issue 4).
 *
 *   bench_pg_latency PUB_CONNINFO SUB_CONNINFO SAMPLES [--notify]
 *
 * Each sample: BEGIN and INSERT one member row on the publisher, start the clock, COMMIT, then
 * wait until the row is visible on the subscriber. The clock includes the publisher's commit
 * (fsync, synchronous_commit on), decoding, the network hop and the subscriber's apply.
 *
 * Waiting, two ways:
 * - poll (default): a tight loop of a prepared `SELECT 1 FROM members WHERE id = $1` on the
 *   subscriber; it costs a core, which on a small machine competes with the walsender and the
 *   apply worker.
 * - --notify: an ALWAYS trigger on the subscriber's members table sends NOTIFY with the id as
 *   the apply transaction commits; this program LISTENs and sleeps in poll(2). The trigger is
 *   dropped at the end.
 *
 * Prints one line: pg_latency samples=K p50_ms=X p99_ms=Y max_ms=Z mode=poll|notify
 * (nearest-rank percentiles; ten unmeasured warm-up samples first). Every wait has a deadline
 * (10 s per sample); the tables are pg_baseline.sh's (members on both sides, subscribed).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#define WARMUP          10
#define SAMPLE_DEADLINE 10.0 /* seconds a row may take to appear on the subscriber */

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs sql on c and checks it returned want; prints what failed and returns -1 otherwise. */
static int run(PGconn *c, const char *sql, ExecStatusType want, const char *what)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == want;
    if (!ok)
        fprintf(stderr, "bench_pg_latency: %s: %s", what, PQerrorMessage(c));
    PQclear(r);
    return ok ? 0 : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile p (0-100] of the n sorted values v. */
static double percentile(const double *v, int n, int p)
{
    int rank = (int)(((long)p * n + 99) / 100);
    return v[rank < 1 ? 0 : rank - 1];
}

/* Waits until the row id is visible on sub by polling; returns 0, or -1 on error or deadline. */
static int wait_poll(PGconn *sub, const char *id, double deadline)
{
    const char *params[1] = {id};
    for (;;) {
        PGresult *r = PQexecPrepared(sub, "seen", 1, params, NULL, NULL, 0);
        int status = PQresultStatus(r), rows = PQntuples(r);
        PQclear(r);
        if (status != PGRES_TUPLES_OK) {
            fprintf(stderr, "bench_pg_latency: poll: %s", PQerrorMessage(sub));
            return -1;
        }
        if (rows > 0)
            return 0;
        if (monotonic_s() > deadline) {
            fprintf(stderr, "bench_pg_latency: %s not on the subscriber after %.0f s\n", id,
                    SAMPLE_DEADLINE);
            return -1;
        }
    }
}

/* Waits for the subscriber's NOTIFY carrying id; returns 0, or -1 on error or deadline. */
static int wait_notify(PGconn *sub, const char *id, double deadline)
{
    struct pollfd pfd = {.fd = PQsocket(sub), .events = POLLIN};
    for (;;) {
        PGnotify *n;
        int found = 0;
        if (PQconsumeInput(sub) == 0) {
            fprintf(stderr, "bench_pg_latency: listen: %s", PQerrorMessage(sub));
            return -1;
        }
        while ((n = PQnotifies(sub)) != NULL) {
            found |= strcmp(n->extra, id) == 0;
            PQfreemem(n);
        }
        if (found)
            return 0;
        double left = deadline - monotonic_s();
        if (left <= 0) {
            fprintf(stderr, "bench_pg_latency: no notification for %s after %.0f s\n", id,
                    SAMPLE_DEADLINE);
            return -1;
        }
        if (poll(&pfd, 1, (int)(left * 1000) + 1) < 0 && errno != EINTR) {
            fprintf(stderr, "bench_pg_latency: poll: %s\n", strerror(errno));
            return -1;
        }
    }
}

static const char insert_sql[] =
    "INSERT INTO members (id, region, name, kind, gender, birth_year, phone, village, district,"
    " sector, joined_on, created_at, updated_at) VALUES ($1, 'mirzapur', 'Sita Yadav',"
    " 'entrepreneur', 'female', 1980, '+91 9123456789', 'Chunar', 'Mirzapur', 'dairy',"
    " '2026-03-14', $2, $2)";

static const char trigger_sql[] =
    "CREATE OR REPLACE FUNCTION bench_applied() RETURNS trigger LANGUAGE plpgsql AS"
    " $$BEGIN PERFORM pg_notify('bench_applied', NEW.id); RETURN NULL; END$$;"
    "DROP TRIGGER IF EXISTS bench_applied ON members;"
    "CREATE TRIGGER bench_applied AFTER INSERT ON members FOR EACH ROW"
    " EXECUTE FUNCTION bench_applied();"
    "ALTER TABLE members ENABLE ALWAYS TRIGGER bench_applied;"
    "LISTEN bench_applied";

int main(int argc, char **argv)
{
    PGconn *pub = NULL, *sub = NULL;
    double *lat = NULL;
    long samples;
    int notify = 0, rc = 1;
    char *end;

    if (argc < 4 || argc > 5 || (argc == 5 && strcmp(argv[4], "--notify") != 0)) {
        fprintf(stderr, "usage: bench_pg_latency PUB_CONNINFO SUB_CONNINFO SAMPLES [--notify]\n");
        return 2;
    }
    notify = argc == 5;
    errno = 0;
    samples = strtol(argv[3], &end, 10);
    if (errno != 0 || *end != '\0' || samples < 1 || samples > 1000000) {
        fprintf(stderr, "bench_pg_latency: SAMPLES must be 1..1000000\n");
        return 2;
    }
    lat = calloc((size_t)samples, sizeof(*lat));
    if (lat == NULL) {
        fprintf(stderr, "bench_pg_latency: out of memory\n");
        return 1;
    }

    pub = PQconnectdb(argv[1]);
    sub = PQconnectdb(argv[2]);
    if (PQstatus(pub) != CONNECTION_OK || PQstatus(sub) != CONNECTION_OK) {
        fprintf(stderr, "bench_pg_latency: connect: %s%s", PQerrorMessage(pub),
                PQerrorMessage(sub));
        goto close_conns;
    }
    PGresult *r = PQprepare(pub, "ins", insert_sql, 2, NULL);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    r = PQprepare(sub, "seen", "SELECT 1 FROM members WHERE id = $1", 1, NULL);
    ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
        fprintf(stderr, "bench_pg_latency: prepare: %s%s", PQerrorMessage(pub),
                PQerrorMessage(sub));
        goto close_conns;
    }
    if (notify && run(sub, trigger_sql, PGRES_COMMAND_OK, "create trigger") < 0)
        goto close_conns;

    for (long i = -WARMUP; i < samples; i++) {
        char id[32], ts[32];
        struct timespec now;
        struct tm tm;
        const char *params[2] = {id, ts};

        /* A time-ordered 26-character id, like the bulk rows'; unique within the run. */
        clock_gettime(CLOCK_REALTIME, &now);
        snprintf(id, sizeof(id), "%013llxL%012lx",
                 (unsigned long long)now.tv_sec * 1000 + (unsigned long long)now.tv_nsec / 1000000,
                 (unsigned long)(i + WARMUP));
        gmtime_r(&now.tv_sec, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S.000Z", &tm);

        if (run(pub, "BEGIN", PGRES_COMMAND_OK, "begin") < 0)
            goto close_conns;
        r = PQexecPrepared(pub, "ins", 2, params, NULL, NULL, 0);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok) {
            fprintf(stderr, "bench_pg_latency: insert: %s", PQerrorMessage(pub));
            goto close_conns;
        }
        double t0 = monotonic_s();
        if (run(pub, "COMMIT", PGRES_COMMAND_OK, "commit") < 0)
            goto close_conns;
        double deadline = t0 + SAMPLE_DEADLINE;
        if ((notify ? wait_notify(sub, id, deadline) : wait_poll(sub, id, deadline)) < 0)
            goto close_conns;
        if (i >= 0)
            lat[i] = (monotonic_s() - t0) * 1000.0;
    }

    qsort(lat, (size_t)samples, sizeof(*lat), cmp_double);
    printf("pg_latency samples=%ld p50_ms=%.3f p99_ms=%.3f max_ms=%.3f mode=%s\n", samples,
           percentile(lat, (int)samples, 50), percentile(lat, (int)samples, 99), lat[samples - 1],
           notify ? "notify" : "poll");
    rc = 0;

close_conns:
    if (notify && sub != NULL && PQstatus(sub) == CONNECTION_OK)
        run(sub, "UNLISTEN *; DROP TRIGGER IF EXISTS bench_applied ON members", PGRES_COMMAND_OK,
            "drop trigger");
    PQfinish(pub);
    PQfinish(sub);
    free(lat);
    return rc;
}
