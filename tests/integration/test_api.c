/*
 * test_api.c - the node API of docs/API.md, held to its contract against a real sangamd.
 *
 * Three groups, each with its own daemon(s) in a private temp dir:
 * - api: records of every type created, read, updated, listed and deleted over HTTP (libcurl on
 *   the Unix socket, and TCP for [api] listen); every refusal with its exact status and error
 *   code; CSV import; the change log. Every refused write is followed by a check that nothing
 *   was written: GET /v1/status must show the same seq and counts as before.
 * - framing: HTTP/1.1 framing over raw sockets (curl would never send these requests): bare CR,
 *   bare LF, obs-fold, Transfer-Encoding, oversized heads and bodies, pipelining, keep-alive.
 * - process: sangamd as a process: config errors, socket mode, a second instance refused,
 *   SIGTERM, restart, and kill -9 in the middle of a burst of writes.
 *
 * Tests in the api group share one database, so each works on records it made itself (found by
 * a district or title of its own) and never assumes global counts other than by difference.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "sangam/records.h"
#include "store.h"
#include "testutil.h"

#define JSON_CT "application/json"
#define NOID    "01J0000000000000000000000Z" /* a well-formed id no record has */

/* --- requests and assertions --- */

/* Sends method path with body (len bytes; NULL: none) as ctype over the Unix socket (or TCP when
 * tcp is set); asserts the status, printing the body when it differs; returns the parsed body
 * (new reference, NULL for an empty body). */
static json_t *call_raw(tu_daemon *d, int tcp, int want, const char *method, const char *path,
                        const char *ctype, const char *body, size_t len)
{
    tu_resp r;
    json_t *j;

    if (tu_http(&r, d, tcp, method, path, ctype, body, len) < 0)
        fail_msg("%s %s: no answer from sangamd (log: %s)", method, path, d->log);
    if (r.status != want) {
        print_message("%s %s: expected status %d, got %ld: %s\n", method, path, want, r.status,
                      r.raw);
        tu_resp_free(&r);
        fail();
    }
    if (r.raw_len > 0 && r.json == NULL) {
        print_message("%s %s: body is not JSON: %s\n", method, path, r.raw);
        tu_resp_free(&r);
        fail();
    }
    if (want == 204) {
        assert_int_equal(r.raw_len, 0);
    } else if (strncmp(r.ctype, JSON_CT, strlen(JSON_CT)) != 0) {
        print_message("%s %s: Content-Type '%s'\n", method, path, r.ctype);
        tu_resp_free(&r);
        fail();
    }
    j = r.json;
    r.json = NULL;
    tu_resp_free(&r);
    return j;
}

/* A request with a JSON body (or none when body is NULL). */
static json_t *req(tu_daemon *d, int want, const char *method, const char *path, const char *body)
{
    return call_raw(d, 0, want, method, path, body ? JSON_CT : NULL, body, body ? strlen(body) : 0);
}

static json_t *get(tu_daemon *d, int want, const char *path)
{
    return req(d, want, "GET", path, NULL);
}

/* Asserts body is exactly {"error": {"code": code, "message": non-empty, ...}}. */
static void assert_error(json_t *body, const char *code)
{
    json_t *e = json_object_get(body, "error");
    const char *msg;

    assert_non_null(e);
    assert_int_equal(json_object_size(body), 1);
    assert_string_equal(json_string_value(json_object_get(e, "code")), code);
    msg = json_string_value(json_object_get(e, "message"));
    assert_non_null(msg);
    assert_true(strlen(msg) > 0);
}

static json_int_t jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("'%s' is not an integer", key);
    return json_integer_value(v);
}

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        fail_msg("'%s' is not a string", key);
    return json_string_value(v);
}

static void assert_null_field(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || !json_is_null(v))
        fail_msg("'%s' should be present and null", key);
}

/* What GET /v1/status says was written: the log's seq and the row counts. */
typedef struct snap {
    json_int_t seq;
    json_t *counts; /* owned */
} snap;

static void snap_take(tu_daemon *d, snap *s)
{
    json_t *st = get(d, 200, "/v1/status");
    s->seq = jint(st, "seq");
    s->counts = json_deep_copy(json_object_get(st, "counts"));
    assert_non_null(s->counts);
    json_decref(st);
}

/* Asserts nothing was written since s was taken; frees s. */
static void snap_check(tu_daemon *d, snap *s, const char *what)
{
    snap now;
    int same;

    snap_take(d, &now);
    same = now.seq == s->seq && json_equal(now.counts, s->counts);
    if (!same) {
        char *a = json_dumps(s->counts, JSON_COMPACT), *b = json_dumps(now.counts, JSON_COMPACT);
        print_message("%s wrote something: seq %lld -> %lld, counts %s -> %s\n", what,
                      (long long)s->seq, (long long)now.seq, a, b);
        free(a);
        free(b);
    }
    json_decref(now.counts);
    json_decref(s->counts);
    assert_true(same);
}

/* Sends a request that must be refused with status and code, and checks nothing was written. */
static void refuse_ct(tu_daemon *d, int want, const char *code, const char *method,
                      const char *path, const char *ctype, const char *body)
{
    snap s;
    json_t *j;

    snap_take(d, &s);
    j = call_raw(d, 0, want, method, path, ctype, body, body ? strlen(body) : 0);
    assert_error(j, code);
    json_decref(j);
    snap_check(d, &s, path);
}

static void refuse(tu_daemon *d, int want, const char *code, const char *method, const char *path,
                   const char *body)
{
    refuse_ct(d, want, code, method, path, body ? JSON_CT : NULL, body);
}

static void today(char out[16])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

static void day_offset(char out[16], int days)
{
    time_t t = time(NULL) + (time_t)days * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

static int is_ulid(const char *s)
{
    if (s == NULL || strlen(s) != 26)
        return 0;
    for (; *s; s++)
        if (!strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", *s))
            return 0;
    return 1;
}

static int is_timestamp(const char *s)
{
    /* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
    return s != NULL && strlen(s) == 24 && s[4] == '-' && s[10] == 'T' && s[19] == '.' &&
           s[23] == 'Z';
}

/* Asserts rec has exactly the columns of table (from sangam/records.h) plus the common four,
 * plus the sub-lists a single-record view adds (extra), with node-set values well formed. */
static void assert_record(tu_daemon *d, json_t *rec, const char *table, size_t extra)
{
    const sg_rectype *rt = sg_rectype_find(table, -1);

    assert_non_null(rt);
    assert_true(json_is_object(rec));
    for (size_t i = 0; i < rt->nfields; i++)
        if (json_object_get(rec, rt->fields[i].name) == NULL)
            fail_msg("%s record lacks field '%s'", table, rt->fields[i].name);
    assert_int_equal(json_object_size(rec), rt->nfields + 4 + extra);
    assert_true(is_ulid(jstr(rec, "id")));
    assert_string_equal(jstr(rec, "region"), d->id);
    assert_true(is_timestamp(jstr(rec, "created_at")));
    assert_true(is_timestamp(jstr(rec, "updated_at")));
    assert_true(strcmp(jstr(rec, "updated_at"), jstr(rec, "created_at")) >= 0);
}

/* POSTs body to /v1/table, asserts 201 and a well-formed record; copies its id. */
static void create(tu_daemon *d, char id[32], const char *table, const char *body)
{
    char path[64];
    json_t *r;

    snprintf(path, sizeof(path), "/v1/%s", table);
    r = req(d, 201, "POST", path, body);
    assert_record(d, r, table, 0);
    snprintf(id, 32, "%s", jstr(r, "id"));
    json_decref(r);
}

/* GET /v1/table?query&limit=1000 must return one page holding exactly want[0..n), in order. */
static void expect_list(tu_daemon *d, const char *table, const char *query, const char *const *want,
                        size_t n)
{
    char path[1024];
    json_t *r, *items;

    snprintf(path, sizeof(path), "/v1/%s?%s%slimit=1000", table, query, query[0] ? "&" : "");
    r = get(d, 200, path);
    assert_int_equal(json_object_size(r), 2);
    assert_null_field(r, "next");
    items = json_object_get(r, "items");
    assert_true(json_is_array(items));
    if (json_array_size(items) != n) {
        char *s = json_dumps(items, JSON_COMPACT);
        print_message("%s: expected %zu items, got %s\n", path, n, s);
        free(s);
        json_decref(r);
        fail();
    }
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(items, i);
        assert_record(d, it, table, 0);
        if (strcmp(jstr(it, "id"), want[i]) != 0) {
            print_message("%s: item %zu is %s, expected %s\n", path, i, jstr(it, "id"), want[i]);
            json_decref(r);
            fail();
        }
    }
    json_decref(r);
}

/* The change-log entries after seq since (all of them, following next). New reference. */
static json_t *changes_since(tu_daemon *d, json_int_t since)
{
    char path[128];
    json_t *all = json_array(), *r;

    for (;;) {
        json_t *next;
        snprintf(path, sizeof(path), "/v1/changes?since=%lld", (long long)since);
        r = get(d, 200, path);
        json_array_extend(all, json_object_get(r, "items"));
        next = json_object_get(r, "next");
        if (json_is_null(next)) {
            json_decref(r);
            return all;
        }
        since = json_integer_value(next);
        json_decref(r);
    }
}

/* Asserts a change entry's shape and values; data_keys lists the keys data must have exactly
 * (NULL-terminated; NULL for a delete, whose data is null). */
static void assert_change(tu_daemon *d, json_t *c, const char *table, const char *pk,
                          const char *op, const char *const *data_keys)
{
    json_t *data = json_object_get(c, "data");
    size_t n = 0;

    assert_int_equal(json_object_size(c), 7);
    assert_true(jint(c, "seq") > 0);
    assert_true(jint(c, "hlc") > 0);
    assert_string_equal(jstr(c, "origin"), d->id);
    assert_string_equal(jstr(c, "table"), table);
    assert_string_equal(jstr(c, "pk"), pk);
    assert_string_equal(jstr(c, "op"), op);
    if (data_keys == NULL) {
        assert_true(json_is_null(data));
        return;
    }
    assert_true(json_is_object(data));
    for (; data_keys[n] != NULL; n++)
        if (json_object_get(data, data_keys[n]) == NULL)
            fail_msg("change %lld lacks data.%s", (long long)jint(c, "seq"), data_keys[n]);
    if (json_object_size(data) != n) {
        char *s = json_dumps(data, JSON_COMPACT);
        print_message("change data %s: expected exactly %zu keys\n", s, n);
        free(s);
        fail();
    }
}

/* --- api group: one daemon, with TCP listen --- */

static int api_setup(void **state)
{
    tu_daemon *d = calloc(1, sizeof(*d));
    if (d == NULL || tu_daemon_init(d, "bundelkhand", 1, NULL) < 0 || tu_daemon_start(d) < 0) {
        if (d)
            tu_daemon_cleanup(d);
        free(d);
        return -1;
    }
    *state = d;
    return 0;
}

/* Stops the group's daemon: it must exit 0 on SIGTERM with no sanitizer report in its log. */
static int api_teardown(void **state)
{
    tu_daemon *d = *state;
    int code = tu_daemon_stop(d), bad = 0;
    char *log = tu_read_file(d->log, NULL);

    if (code != 0) {
        fprintf(stderr, "sangamd exited with %d after SIGTERM\n", code);
        bad = 1;
    }
    if (log && (strstr(log, "runtime error:") || strstr(log, "Sanitizer"))) {
        fprintf(stderr, "sanitizer report in %s:\n%s\n", d->log, log);
        bad = 1;
    }
    if (bad && log)
        fprintf(stderr, "--- sangamd log tail ---\n%s\n",
                strlen(log) > 4000 ? log + strlen(log) - 4000 : log);
    free(log);
    if (bad)
        setenv("SANGAM_KEEP_TMP", "1", 1);
    tu_daemon_cleanup(d);
    free(d);
    return bad ? -1 : 0;
}

static void test_health_and_status(void **state)
{
    tu_daemon *d = *state;
    json_t *r = get(d, 200, "/healthz"), *counts;

    assert_int_equal(json_object_size(r), 1);
    assert_true(json_is_true(json_object_get(r, "ok")));
    json_decref(r);

    r = get(d, 200, "/v1/status");
    assert_int_equal(json_object_size(r), 7);
    /* A region without [hub] runs standalone and says so. */
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r, "replication"), "state")),
        "standalone");
    assert_string_equal(jstr(r, "node"), d->id);
    assert_string_equal(jstr(r, "role"), "region");
    assert_true(strlen(jstr(r, "version")) > 0);
    assert_int_equal(jint(r, "schema_version"), SG_SCHEMA_VERSION);
    assert_true(jint(r, "seq") >= 0);
    counts = json_object_get(r, "counts");
    assert_int_equal(json_object_size(counts), 6);
    for (size_t i = 0; sg_rectypes[i] != NULL; i++)
        assert_true(jint(counts, sg_rectypes[i]->table) >= 0);
    json_decref(r);
}

static void test_socket_mode(void **state)
{
    tu_daemon *d = *state;
    struct stat sb;

    assert_int_equal(stat(d->sock, &sb), 0);
    assert_true(S_ISSOCK(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0660);
}

static void test_tcp_listen(void **state)
{
    tu_daemon *d = *state;
    const char *body = "{\"name\":\"Over TCP\",\"kind\":\"academic\"}";
    char path[128];
    json_t *r, *again;

    r = call_raw(d, 1, 200, "GET", "/healthz", NULL, NULL, 0);
    assert_true(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
    r = call_raw(d, 1, 201, "POST", "/v1/organisations", JSON_CT, body, strlen(body));
    assert_record(d, r, "organisations", 0);
    /* The same database answers on the Unix socket. */
    snprintf(path, sizeof(path), "/v1/organisations/%s", jstr(r, "id"));
    again = get(d, 200, path);
    assert_true(json_equal(r, again));
    json_decref(again);
    json_decref(r);
}

static void test_organisations_crud(void **state)
{
    tu_daemon *d = *state;
    json_t *o, *g, *p;
    char path[128], id[32];

    o = req(d, 201, "POST", "/v1/organisations",
            "{\"name\":\"Jhansi Gramin Bank\",\"kind\":\"financial\",\"district\":\"Jhansi\"}");
    assert_record(d, o, "organisations", 0);
    assert_string_equal(jstr(o, "name"), "Jhansi Gramin Bank");
    assert_string_equal(jstr(o, "kind"), "financial");
    assert_string_equal(jstr(o, "district"), "Jhansi");
    assert_null_field(o, "contact");
    assert_string_equal(jstr(o, "created_at"), jstr(o, "updated_at"));
    snprintf(id, sizeof(id), "%s", jstr(o, "id"));
    snprintf(path, sizeof(path), "/v1/organisations/%s", id);

    g = get(d, 200, path);
    assert_true(json_equal(o, g));
    json_decref(g);

    tu_sleep_ms(5); /* so updated_at, in milliseconds, must move */
    p = req(d, 200, "PATCH", path, "{\"contact\":\"Mr. Rao, 0510 2440000\",\"district\":null}");
    assert_record(d, p, "organisations", 0);
    assert_string_equal(jstr(p, "id"), id);
    assert_string_equal(jstr(p, "name"), "Jhansi Gramin Bank");
    assert_string_equal(jstr(p, "contact"), "Mr. Rao, 0510 2440000");
    assert_null_field(p, "district");
    assert_string_equal(jstr(p, "created_at"), jstr(o, "created_at"));
    assert_true(strcmp(jstr(p, "updated_at"), jstr(o, "updated_at")) > 0);
    g = get(d, 200, path);
    assert_true(json_equal(p, g));
    json_decref(g);

    {
        const char *want[] = {id};
        expect_list(d, "organisations", "q=gramin%20BANK", want, 1);
    }

    g = req(d, 204, "DELETE", path, NULL);
    assert_null(g);
    refuse(d, 404, "not_found", "GET", path, NULL);
    refuse(d, 404, "not_found", "DELETE", path, NULL);
    refuse(d, 404, "not_found", "PATCH", path, "{\"name\":\"Gone\"}");
    json_decref(o);
    json_decref(p);
}

static void test_members_crud(void **state)
{
    tu_daemon *d = *state;
    char org[32], org2[32], body[1024], path[128], id[32];
    json_t *m, *p, *g;

    create(d, org, "organisations",
           "{\"name\":\"Babina SHG Federation\",\"kind\":\"civil_society\"}");
    create(d, org2, "organisations", "{\"name\":\"RSETI Jhansi\",\"kind\":\"training\"}");
    snprintf(body, sizeof(body),
             "{\"name\":\"Sunita Devi\",\"kind\":\"entrepreneur\",\"gender\":\"female\","
             "\"birth_year\":1994,\"phone\":\"+91 (94150) 12345-6\",\"village\":\"Babina\","
             "\"district\":\"Jhansi\",\"sector\":\"dairy\",\"organisation_id\":\"%s\","
             "\"joined_on\":\"2024-02-29\"}",
             org);
    m = req(d, 201, "POST", "/v1/members", body);
    assert_record(d, m, "members", 0);
    assert_string_equal(jstr(m, "name"), "Sunita Devi");
    assert_string_equal(jstr(m, "kind"), "entrepreneur");
    assert_string_equal(jstr(m, "gender"), "female");
    assert_int_equal(jint(m, "birth_year"), 1994);
    assert_string_equal(jstr(m, "phone"), "+91 (94150) 12345-6");
    assert_string_equal(jstr(m, "village"), "Babina");
    assert_string_equal(jstr(m, "district"), "Jhansi");
    assert_string_equal(jstr(m, "sector"), "dairy");
    assert_string_equal(jstr(m, "organisation_id"), org);
    assert_string_equal(jstr(m, "joined_on"), "2024-02-29");
    assert_string_equal(jstr(m, "status"), "active"); /* the default */
    snprintf(id, sizeof(id), "%s", jstr(m, "id"));
    snprintf(path, sizeof(path), "/v1/members/%s", id);
    g = get(d, 200, path);
    assert_true(json_equal(m, g));
    json_decref(g);

    p = req(d, 200, "PATCH", path,
            "{\"status\":\"inactive\",\"birth_year\":null,\"gender\":null,\"name\":\"Sunita "
            "Devi Ahirwar\"}");
    assert_string_equal(jstr(p, "status"), "inactive");
    assert_null_field(p, "birth_year");
    assert_null_field(p, "gender");
    assert_string_equal(jstr(p, "name"), "Sunita Devi Ahirwar");
    assert_string_equal(jstr(p, "phone"), jstr(m, "phone"));
    json_decref(p);
    snprintf(body, sizeof(body), "{\"organisation_id\":\"%s\"}", org2);
    p = req(d, 200, "PATCH", path, body);
    assert_string_equal(jstr(p, "organisation_id"), org2);
    json_decref(p);

    /* The smallest member: only what is required; every optional field is null. */
    g = req(d, 201, "POST", "/v1/members", "{\"name\":\"Ram Prakash\",\"kind\":\"staff\"}");
    assert_record(d, g, "members", 0);
    assert_null_field(g, "gender");
    assert_null_field(g, "birth_year");
    assert_null_field(g, "organisation_id");
    assert_null_field(g, "joined_on");
    assert_string_equal(jstr(g, "status"), "active");
    json_decref(g);

    /* A representative names an organisation. */
    snprintf(body, sizeof(body),
             "{\"name\":\"Meera Rep\",\"kind\":\"representative\",\"organisation_id\":\"%s\"}",
             org);
    create(d, id, "members", body);
    json_decref(m);
}

static void test_sessions_and_attendance(void **state)
{
    tu_daemon *d = *state;
    char s[32], m1[32], m2[32], m3[32], m4[32], a[32], path[128], body[512];
    json_t *r, *att;

    create(d, s, "sessions",
           "{\"kind\":\"working_session\",\"title\":\"Dairy cooperative meeting\","
           "\"held_on\":\"2024-05-10\",\"place\":\"Babina block office\"}");
    snprintf(path, sizeof(path), "/v1/sessions/%s", s);
    r = get(d, 200, path);
    assert_record(d, r, "sessions", 1);
    assert_string_equal(jstr(r, "held_on"), "2024-05-10");
    assert_null_field(r, "summary");
    assert_int_equal(json_array_size(json_object_get(r, "attendance")), 0);
    json_decref(r);
    r = req(d, 200, "PATCH", path, "{\"summary\":\"Agreed on a\\nmilk collection route.\"}");
    assert_string_equal(jstr(r, "summary"), "Agreed on a\nmilk collection route.");
    json_decref(r);

    create(d, m1, "members", "{\"name\":\"Attendee One\",\"kind\":\"entrepreneur\"}");
    create(d, m2, "members", "{\"name\":\"Attendee Two\",\"kind\":\"entrepreneur\"}");
    create(d, m3, "members", "{\"name\":\"Attendee Three\",\"kind\":\"staff\"}");
    create(d, m4, "members", "{\"name\":\"Attendee Four\",\"kind\":\"staff\"}");

    snprintf(path, sizeof(path), "/v1/sessions/%s/attendance", s);
    snprintf(body, sizeof(body), "{\"member_ids\":[\"%s\",\"%s\"]}", m1, m2);
    r = req(d, 200, "POST", path, body);
    assert_int_equal(json_object_size(r), 3);
    assert_string_equal(jstr(r, "session_id"), s);
    assert_int_equal(json_array_size(json_object_get(r, "added")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(r, "added"), 0)), m1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(r, "added"), 1)), m2);
    assert_int_equal(json_array_size(json_object_get(r, "already")), 0);
    json_decref(r);

    snprintf(body, sizeof(body), "{\"member_ids\":[\"%s\",\"%s\"]}", m2, m3);
    r = req(d, 200, "POST", path, body);
    assert_int_equal(json_array_size(json_object_get(r, "added")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(r, "added"), 0)), m3);
    assert_int_equal(json_array_size(json_object_get(r, "already")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(r, "already"), 0)), m2);
    json_decref(r);

    /* All or nothing: m4 is fine, but the unknown id sinks the whole request. */
    snprintf(body, sizeof(body), "{\"member_ids\":[\"%s\",\"%s\"]}", m4, NOID);
    refuse(d, 422, "unknown_reference", "POST", path, body);
    snprintf(body, sizeof(body), "{\"member_ids\":[\"%s\",42]}", m4);
    refuse(d, 422, "wrong_type", "POST", path, body);
    snprintf(body, sizeof(body), "{\"member_ids\":[\"%s\",\"not an id\"]}", m4);
    refuse(d, 422, "invalid_value", "POST", path, body);
    refuse(d, 422, "invalid_value", "POST", path, "{\"member_ids\":[]}");
    refuse(d, 422, "invalid_value", "POST", path, "{}");
    snprintf(body, sizeof(body), "{\"member_ids\":[\"%s\"],\"note\":\"x\"}", m4);
    refuse(d, 422, "invalid_value", "POST", path, body);
    refuse(d, 422, "invalid_value", "POST", path, "{\"member_ids\":\"x\"}");
    refuse(d, 400, "malformed", "POST", path, "[\"x\"]");
    refuse(d, 405, "method_not_allowed", "GET", path, NULL);
    snprintf(path, sizeof(path), "/v1/sessions/%s/attendance", NOID);
    snprintf(body, sizeof(body), "{\"member_ids\":[\"%s\"]}", m4);
    refuse(d, 404, "not_found", "POST", path, body);

    /* The session lists its attendance; the rows are listed by session. */
    snprintf(path, sizeof(path), "/v1/sessions/%s", s);
    r = get(d, 200, path);
    att = json_object_get(r, "attendance");
    assert_int_equal(json_array_size(att), 3);
    assert_string_equal(json_string_value(json_array_get(att, 0)), m1);
    assert_string_equal(json_string_value(json_array_get(att, 1)), m2);
    assert_string_equal(json_string_value(json_array_get(att, 2)), m3);
    json_decref(r);
    snprintf(path, sizeof(path), "/v1/attendance?session_id=%s&limit=1000", s);
    r = get(d, 200, path);
    att = json_object_get(r, "items");
    assert_int_equal(json_array_size(att), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_record(d, json_array_get(att, i), "attendance", 0);
        assert_string_equal(jstr(json_array_get(att, i), "session_id"), s);
    }
    snprintf(a, sizeof(a), "%s", jstr(json_array_get(att, 0), "id"));
    json_decref(r);
    snprintf(path, sizeof(path), "/v1/attendance/%s", a);
    r = get(d, 200, path);
    assert_record(d, r, "attendance", 0);
    assert_string_equal(jstr(r, "member_id"), m1);
    json_decref(r);

    /* Attendance is history: not patchable, whatever the body. */
    snprintf(body, sizeof(body), "{\"member_id\":\"%s\"}", m4);
    refuse(d, 405, "method_not_allowed", "PATCH", path, body);
    refuse(d, 405, "method_not_allowed", "PATCH", path, "{}");
    /* Duplicate attendance through the generic route is a conflict. */
    snprintf(body, sizeof(body), "{\"session_id\":\"%s\",\"member_id\":\"%s\"}", s, m1);
    refuse(d, 409, "conflict", "POST", "/v1/attendance", body);

    /* Referenced records cannot go. */
    snprintf(path, sizeof(path), "/v1/sessions/%s", s);
    refuse(d, 409, "conflict", "DELETE", path, NULL);
    snprintf(path, sizeof(path), "/v1/members/%s", m1);
    refuse(d, 409, "conflict", "DELETE", path, NULL);
}

/* Posts an issue update; returns the issue with its updates (asserting 201 and the shape). */
static json_t *issue_update(tu_daemon *d, const char *issue, const char *body)
{
    char path[128];
    json_t *r;
    snprintf(path, sizeof(path), "/v1/issues/%s/updates", issue);
    r = req(d, 201, "POST", path, body);
    assert_record(d, r, "issues", 1);
    return r;
}

static json_t *last_update(json_t *issue)
{
    json_t *u = json_object_get(issue, "updates");
    assert_true(json_array_size(u) > 0);
    return json_array_get(u, json_array_size(u) - 1);
}

static void test_issues_and_updates(void **state)
{
    tu_daemon *d = *state;
    char m[32], org[32], s[32], iss[32], path[128], upath[128], body[512], day[16];
    json_t *r, *u, *ups;
    snap sn;

    today(day);
    create(d, m, "members", "{\"name\":\"Issue Raiser\",\"kind\":\"entrepreneur\"}");
    create(d, org, "organisations",
           "{\"name\":\"District Industries Centre\",\"kind\":\"government\"}");
    create(d, s, "sessions",
           "{\"kind\":\"launch\",\"title\":\"Issue session\",\"held_on\":\"2024-06-01\"}");
    snprintf(body, sizeof(body),
             "{\"raised_by\":\"%s\",\"session_id\":\"%s\",\"category\":\"finance\","
             "\"title\":\"Mudra loan delayed\",\"description\":\"Applied in March.\"}",
             m, s);
    r = req(d, 201, "POST", "/v1/issues", body);
    assert_record(d, r, "issues", 0);
    assert_string_equal(jstr(r, "status"), "open");
    assert_string_equal(jstr(r, "opened_on"), day); /* default: today */
    assert_null_field(r, "resolved_on");
    assert_null_field(r, "assigned_to");
    snprintf(iss, sizeof(iss), "%s", jstr(r, "id"));
    json_decref(r);
    snprintf(path, sizeof(path), "/v1/issues/%s", iss);
    r = get(d, 200, path);
    assert_record(d, r, "issues", 1);
    assert_int_equal(json_array_size(json_object_get(r, "updates")), 0);
    json_decref(r);

    /* A note alone: history grows, status stays. */
    r = issue_update(d, iss,
                     "{\"note\":\"Called the bank manager.\",\"author\":\"Asha (field staff)\"}");
    assert_string_equal(jstr(r, "status"), "open");
    assert_int_equal(json_array_size(json_object_get(r, "updates")), 1);
    u = last_update(r);
    assert_record(d, u, "issue_updates", 0);
    assert_string_equal(jstr(u, "issue_id"), iss);
    assert_string_equal(jstr(u, "note"), "Called the bank manager.");
    assert_string_equal(jstr(u, "author"), "Asha (field staff)");
    assert_null_field(u, "status_from");
    assert_null_field(u, "status_to");
    assert_null_field(u, "assigned_to");
    json_decref(r);

    /* Status and assignment: status_from/status_to and the new assignment recorded. */
    snprintf(body, sizeof(body),
             "{\"status\":\"in_progress\",\"assigned_to\":\"%s\",\"author\":\"Asha\"}", org);
    r = issue_update(d, iss, body);
    assert_string_equal(jstr(r, "status"), "in_progress");
    assert_string_equal(jstr(r, "assigned_to"), org);
    assert_null_field(r, "resolved_on");
    u = last_update(r);
    assert_string_equal(jstr(u, "status_from"), "open");
    assert_string_equal(jstr(u, "status_to"), "in_progress");
    assert_string_equal(jstr(u, "assigned_to"), org);
    assert_null_field(u, "note");
    json_decref(r);

    /* Resolving sets resolved_on to today. */
    r = issue_update(d, iss,
                     "{\"status\":\"resolved\",\"note\":\"Loan sanctioned.\",\"author\":\"Asha\"}");
    assert_string_equal(jstr(r, "status"), "resolved");
    assert_string_equal(jstr(r, "resolved_on"), day);
    u = last_update(r);
    assert_string_equal(jstr(u, "status_from"), "in_progress");
    assert_string_equal(jstr(u, "status_to"), "resolved");
    assert_null_field(u, "assigned_to"); /* unchanged, so not recorded again */
    json_decref(r);

    /* resolved -> closed keeps the date. */
    r = issue_update(d, iss, "{\"status\":\"closed\",\"author\":\"Asha\"}");
    assert_string_equal(jstr(r, "status"), "closed");
    assert_string_equal(jstr(r, "resolved_on"), day);
    u = last_update(r);
    assert_string_equal(jstr(u, "status_from"), "resolved");
    assert_string_equal(jstr(u, "status_to"), "closed");
    json_decref(r);

    /* Reopening clears it. */
    r = issue_update(d, iss, "{\"status\":\"open\",\"author\":\"Asha\"}");
    assert_string_equal(jstr(r, "status"), "open");
    assert_null_field(r, "resolved_on");
    ups = json_object_get(r, "updates");
    assert_int_equal(json_array_size(ups), 5);
    /* Oldest first. */
    for (size_t i = 1; i < json_array_size(ups); i++)
        assert_true(
            strcmp(jstr(json_array_get(ups, i - 1), "id"), jstr(json_array_get(ups, i), "id")) < 0);
    assert_string_equal(jstr(last_update(r), "status_from"), "closed");
    json_decref(r);

    /* closed straight from open also dates it. */
    r = issue_update(d, iss, "{\"status\":\"closed\",\"author\":\"Asha\"}");
    assert_string_equal(jstr(r, "resolved_on"), day);
    json_decref(r);
    r = issue_update(d, iss, "{\"status\":\"in_progress\",\"author\":\"Asha\"}");
    assert_null_field(r, "resolved_on");
    json_decref(r);

    /* GET shows the same updates. */
    r = get(d, 200, path);
    assert_int_equal(json_array_size(json_object_get(r, "updates")), 7);
    assert_string_equal(jstr(r, "status"), "in_progress");
    json_decref(r);
    snprintf(path, sizeof(path), "/v1/issue_updates?issue_id=%s&limit=1000", iss);
    r = get(d, 200, path);
    assert_int_equal(json_array_size(json_object_get(r, "items")), 7);
    json_decref(r);

    /* Refused issue updates write nothing, not even the status change. */
    snprintf(path, sizeof(path), "/v1/issues/%s/updates", iss);
    refuse(d, 422, "missing_field", "POST", path, "{\"status\":\"resolved\"}");
    refuse(d, 422, "missing_field", "POST", path, "{\"author\":\"Asha\"}");
    refuse(d, 422, "missing_field", "POST", path, "{\"status\":\"resolved\",\"author\":null}");
    refuse(d, 422, "unknown_field", "POST", path,
           "{\"status\":\"resolved\",\"author\":\"A\",\"priority\":1}");
    refuse(d, 422, "invalid_value", "POST", path, "{\"status\":\"done\",\"author\":\"A\"}");
    /* An update that changes nothing and says nothing is refused. */
    refuse(d, 422, "invalid_value", "POST", path, "{\"status\":\"in_progress\",\"author\":\"A\"}");
    snprintf(body, sizeof(body), "{\"assigned_to\":\"%s\",\"author\":\"A\"}", org);
    refuse(d, 422, "invalid_value", "POST", path, body);
    snprintf(body, sizeof(body),
             "{\"status\":\"in_progress\",\"assigned_to\":\"%s\",\"author\":\"A\"}", org);
    refuse(d, 422, "invalid_value", "POST", path, body);
    refuse(d, 422, "invalid_value", "POST", path, "{\"status\":\"in_progres\",\"author\":\"A\"}");
    refuse(d, 422, "wrong_type", "POST", path, "{\"status\":3,\"author\":\"A\"}");
    refuse(d, 422, "wrong_type", "POST", path, "{\"note\":7,\"author\":\"A\"}");
    refuse(d, 422, "unknown_reference", "POST", path,
           "{\"assigned_to\":\"" NOID "\",\"status\":\"resolved\",\"author\":\"A\"}");
    refuse(d, 422, "invalid_value", "POST", path, "{\"status\":\"resolved\",\"author\":\"\"}");
    refuse(d, 400, "malformed", "POST", path, "{\"status\":");
    refuse_ct(d, 415, "unsupported", "POST", path, "text/plain",
              "{\"note\":\"x\",\"author\":\"A\"}");
    snprintf(path, sizeof(path), "/v1/issues/%s/updates", NOID);
    refuse(d, 404, "not_found", "POST", path, "{\"note\":\"x\",\"author\":\"A\"}");
    snprintf(path, sizeof(path), "/v1/issues/%s", iss);
    r = get(d, 200, path);
    assert_string_equal(jstr(r, "status"), "in_progress");
    assert_null_field(r, "resolved_on");
    u = json_array_get(json_object_get(r, "updates"), 0);
    snprintf(upath, sizeof(upath), "/v1/issue_updates/%s", jstr(u, "id"));
    json_decref(r);

    /* Status and resolved_on change only through updates; raised_by is fixed; history is not
     * patchable. */
    refuse(d, 422, "immutable_field", "PATCH", path, "{\"status\":\"closed\"}");
    refuse(d, 422, "immutable_field", "PATCH", path, "{\"resolved_on\":\"2024-06-02\"}");
    snprintf(body, sizeof(body), "{\"raised_by\":\"%s\"}", m);
    refuse(d, 422, "immutable_field", "PATCH", path, body);
    refuse(d, 405, "method_not_allowed", "PATCH", upath, "{\"note\":\"rewritten\"}");
    refuse(d, 405, "method_not_allowed", "PATCH", upath, "{\"issue_id\":\"" NOID "\"}");
    /* POST /v1/issue_updates directly can only add a note: the status and assignment fields
     * of history are the node's, so history cannot disagree with the issue. */
    snprintf(body, sizeof(body), "{\"issue_id\":\"%s\",\"author\":\"A\",\"status_from\":\"open\"}",
             iss);
    refuse(d, 422, "immutable_field", "POST", "/v1/issue_updates", body);
    snprintf(body, sizeof(body), "{\"issue_id\":\"%s\",\"author\":\"A\",\"status_to\":\"closed\"}",
             iss);
    refuse(d, 422, "immutable_field", "POST", "/v1/issue_updates", body);
    snprintf(body, sizeof(body), "{\"issue_id\":\"%s\",\"author\":\"A\",\"assigned_to\":\"%s\"}",
             iss, org);
    refuse(d, 422, "immutable_field", "POST", "/v1/issue_updates", body);
    snprintf(body, sizeof(body), "{\"issue_id\":\"%s\",\"author\":\"A\",\"note\":\"Direct note.\"}",
             iss);
    r = req(d, 201, "POST", "/v1/issue_updates", body);
    assert_record(d, r, "issue_updates", 0);
    assert_null_field(r, "status_to");
    json_decref(r);
    r = get(d, 200, path);
    assert_string_equal(jstr(r, "status"), "in_progress");
    assert_int_equal(json_array_size(json_object_get(r, "updates")), 8);
    json_decref(r);

    /* Ordinary fields still patch. */
    snap_take(d, &sn);
    r = req(d, 200, "PATCH", path,
            "{\"title\":\"Mudra loan delayed (Shishu)\",\"category\":\"market\"}");
    assert_string_equal(jstr(r, "title"), "Mudra loan delayed (Shishu)");
    assert_string_equal(jstr(r, "category"), "market");
    assert_string_equal(jstr(r, "status"), "in_progress");
    json_decref(r);
    r = get(d, 200, "/v1/status");
    assert_int_equal(jint(r, "seq"), sn.seq + 1);
    json_decref(r);
    json_decref(sn.counts);

    /* An issue with history cannot be deleted; its raiser neither. */
    refuse(d, 409, "conflict", "DELETE", path, NULL);
    snprintf(path, sizeof(path), "/v1/members/%s", m);
    refuse(d, 409, "conflict", "DELETE", path, NULL);
    snprintf(path, sizeof(path), "/v1/organisations/%s", org);
    refuse(d, 409, "conflict", "DELETE", path, NULL);
}

/* One refusal case: method, path, body, expected status and code. */
typedef struct refusal {
    const char *path;
    const char *body;
    int status;
    const char *code;
} refusal;

static void test_create_refusals(void **state)
{
    tu_daemon *d = *state;
    static const refusal cases[] = {
        {"/v1/organisations", "{\"name\":\"X\",\"kind\":\"other\",\"colour\":\"red\"}", 422,
         "unknown_field"},
        {"/v1/organisations", "{\"name\":5,\"kind\":\"other\"}", 422, "wrong_type"},
        {"/v1/organisations", "{\"name\":[\"X\"],\"kind\":\"other\"}", 422, "wrong_type"},
        {"/v1/organisations", "{\"name\":\"X\",\"kind\":\"bank\"}", 422, "invalid_value"},
        {"/v1/organisations", "{\"name\":\"X\",\"kind\":\"Financial\"}", 422, "invalid_value"},
        {"/v1/organisations", "{\"name\":\"X\"}", 422, "missing_field"},
        {"/v1/organisations", "{\"kind\":\"other\"}", 422, "missing_field"},
        {"/v1/organisations", "{\"name\":null,\"kind\":\"other\"}", 422, "missing_field"},
        {"/v1/organisations", "{\"name\":\"\",\"kind\":\"other\"}", 422, "invalid_value"},
        {"/v1/organisations", "{\"id\":\"01ABC\",\"name\":\"X\",\"kind\":\"other\"}", 422,
         "immutable_field"},
        {"/v1/organisations", "{\"region\":\"elsewhere\",\"name\":\"X\",\"kind\":\"other\"}", 422,
         "immutable_field"},
        {"/v1/organisations",
         "{\"created_at\":\"2024-01-01T00:00:00.000Z\",\"name\":\"X\",\"kind\":\"other\"}", 422,
         "immutable_field"},
        {"/v1/organisations",
         "{\"updated_at\":\"2024-01-01T00:00:00.000Z\",\"name\":\"X\",\"kind\":\"other\"}", 422,
         "immutable_field"},
        {"/v1/members", "{\"name\":\"X\",\"kind\":\"staff\",\"birth_year\":\"1990\"}", 422,
         "wrong_type"},
        {"/v1/members", "{\"name\":\"X\",\"kind\":\"staff\",\"birth_year\":1990.5}", 422,
         "wrong_type"},
        {"/v1/members", "{\"name\":\"X\",\"kind\":\"staff\",\"birth_year\":true}", 422,
         "wrong_type"},
        {"/v1/members", "{\"name\":\"X\",\"kind\":\"staff\",\"birth_year\":1899}", 422,
         "invalid_value"},
        {"/v1/members", "{\"name\":\"X\",\"kind\":\"staff\",\"birth_year\":2101}", 422,
         "invalid_value"},
        {"/v1/members", "{\"name\":\"X\",\"kind\":\"staff\",\"joined_on\":\"2023-02-29\"}", 422,
         "invalid_value"},
        {"/v1/members", "{\"name\":\"X\",\"kind\":\"staff\",\"joined_on\":\"15/03/2024\"}", 422,
         "invalid_value"},
        {"/v1/members", "{\"name\":\"X\",\"kind\":\"staff\",\"joined_on\":20240315}", 422,
         "wrong_type"},
        {"/v1/members", "{\"name\":\"X\",\"kind\":\"staff\",\"phone\":\"call me\"}", 422,
         "invalid_value"},
        {"/v1/members", "{\"name\":\"X\",\"kind\":\"staff\",\"gender\":\"f\"}", 422,
         "invalid_value"},
        {"/v1/members", "{\"name\":\"X\",\"kind\":\"staff\",\"status\":\"retired\"}", 422,
         "invalid_value"},
        {"/v1/members", "{\"name\":\"a\\u0001b\",\"kind\":\"staff\"}", 422, "invalid_value"},
        {"/v1/members", "{\"name\":\"line\\nbreak\",\"kind\":\"staff\"}", 422, "invalid_value"},
        {"/v1/members", "{\"name\":\"Rep\",\"kind\":\"representative\"}", 422, "invalid_value"},
        {"/v1/members", "{\"name\":\"Rep\",\"kind\":\"representative\",\"organisation_id\":null}",
         422, "invalid_value"},
        {"/v1/members", "{\"name\":\"X\",\"kind\":\"staff\",\"organisation_id\":\"" NOID "\"}", 422,
         "unknown_reference"},
        {"/v1/members", "{\"name\":\"X\",\"kind\":\"staff\",\"organisation_id\":\"not an id!\"}",
         422, "invalid_value"},
        {"/v1/sessions", "{\"kind\":\"training\",\"title\":\"T\"}", 422, "missing_field"},
        {"/v1/sessions", "{\"kind\":\"training\",\"title\":\"T\",\"held_on\":20240101}", 422,
         "wrong_type"},
        {"/v1/sessions", "{\"kind\":\"seminar\",\"title\":\"T\",\"held_on\":\"2024-01-01\"}", 422,
         "invalid_value"},
        {"/v1/issues", "{\"raised_by\":\"" NOID "\",\"category\":\"finance\",\"title\":\"T\"}", 422,
         "unknown_reference"},
        {"/v1/issues", "{\"category\":\"finance\",\"title\":\"T\"}", 422, "missing_field"},
        {"/v1/attendance", "{\"session_id\":\"" NOID "\",\"member_id\":\"" NOID "\"}", 422,
         "unknown_reference"},
        {"/v1/attendance", "{\"session_id\":\"" NOID "\"}", 422, "missing_field"},
        {"/v1/issue_updates", "{\"issue_id\":\"" NOID "\",\"author\":\"A\"}", 422,
         "unknown_reference"},
        {"/v1/issue_updates", "{\"issue_id\":\"" NOID "\",\"note\":\"n\"}", 422, "missing_field"},
        /* Bodies that are not one JSON object. */
        {"/v1/members", "{\"name\":\"X\",", 400, "malformed"},
        {"/v1/members", "[{\"name\":\"X\",\"kind\":\"staff\"}]", 400, "malformed"},
        {"/v1/members", "\"name\"", 400, "malformed"},
        {"/v1/members", "42", 400, "malformed"},
        {"/v1/members", "null", 400, "malformed"},
        {"/v1/members", "", 400, "malformed"},
        {"/v1/members", "{\"name\":\"X\",\"kind\":\"staff\"} {}", 400, "malformed"},
        {"/v1/members", "{\"name\":\"A\",\"name\":\"B\",\"kind\":\"staff\"}", 400, "malformed"},
        {"/v1/members", "{\"name\":\"\xff\xfe\",\"kind\":\"staff\"}", 400, "malformed"},
        {"/v1/members", "{\"name\":\"a\\u0000b\",\"kind\":\"staff\"}", 400, "malformed"},
        {"/v1/members",
         "{\"name\":\"X\",\"kind\":\"staff\",\"birth_year\":99999999999999999999999}", 400,
         "malformed"},
    };
    char m[32], s[32], body[1024];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("case %zu: POST %s %s\n", i, cases[i].path, cases[i].body);
        refuse(d, cases[i].status, cases[i].code, "POST", cases[i].path, cases[i].body);
    }

    /* Longer than the field allows (400 bytes for a member's name). */
    {
        int n = snprintf(body, sizeof(body), "{\"kind\":\"staff\",\"name\":\"");
        memset(body + n, 'x', 401);
        snprintf(body + n + 401, sizeof(body) - (size_t)n - 401, "\"}");
        refuse(d, 422, "invalid_value", "POST", "/v1/members", body);
        /* 201 two-byte characters are 402 bytes: the limit is in bytes, not characters. */
        for (int i = 0; i < 201; i++)
            memcpy(body + n + 2 * i, "\xc3\xa9", 2);
        snprintf(body + n + 402, sizeof(body) - (size_t)n - 402, "\"}");
        refuse(d, 422, "invalid_value", "POST", "/v1/members", body);
        /* ... and 200 of them, 400 bytes, fit. */
        snprintf(body + n + 400, sizeof(body) - (size_t)n - 400, "\"}");
        create(d, m, "members", body);
    }

    /* Node-managed issue fields on create. */
    create(d, m, "members", "{\"name\":\"Refusal Raiser\",\"kind\":\"staff\"}");
    create(d, s, "sessions",
           "{\"kind\":\"other\",\"title\":\"Refusals\",\"held_on\":\"2024-01-01\"}");
    snprintf(body, sizeof(body),
             "{\"raised_by\":\"%s\",\"category\":\"skills\",\"title\":\"T\",\"status\":\"open\"}",
             m);
    refuse(d, 422, "immutable_field", "POST", "/v1/issues", body);
    snprintf(body, sizeof(body),
             "{\"raised_by\":\"%s\",\"category\":\"skills\",\"title\":\"T\",\"resolved_on\":\"2024-"
             "01-02\"}",
             m);
    refuse(d, 422, "immutable_field", "POST", "/v1/issues", body);
    snprintf(body, sizeof(body),
             "{\"raised_by\":\"%s\",\"category\":\"skills\",\"title\":\"T\",\"session_id\":\"%s\","
             "\"assigned_to\":\"" NOID "\"}",
             m, s);
    refuse(d, 422, "unknown_reference", "POST", "/v1/issues", body);
    snprintf(body, sizeof(body),
             "{\"raised_by\":\"%s\",\"category\":\"skills\",\"title\":\"T\",\"session_id\":\"%s\"}",
             s, s);
    refuse(d, 422, "unknown_reference", "POST", "/v1/issues", body);

    /* Content types: JSON only (parameters allowed), and never form encoding. */
    refuse_ct(d, 415, "unsupported", "POST", "/v1/members", "text/plain",
              "{\"name\":\"X\",\"kind\":\"staff\"}");
    refuse_ct(d, 415, "unsupported", "POST", "/v1/members", "application/x-www-form-urlencoded",
              "name=X&kind=staff");
    refuse_ct(d, 415, "unsupported", "POST", "/v1/members", "text/csv", "name,kind\nX,staff\n");
    {
        const char *ok = "{\"name\":\"Charset\",\"kind\":\"staff\"}";
        json_t *r = call_raw(d, 0, 201, "POST", "/v1/members", "application/json; charset=utf-8",
                             ok, strlen(ok));
        json_decref(r);
    }
}

static void test_update_refusals(void **state)
{
    tu_daemon *d = *state;
    char org[32], m[32], rep[32], path[128], body[512];
    json_t *before, *after;

    create(d, org, "organisations", "{\"name\":\"Update Org\",\"kind\":\"private\"}");
    create(d, m, "members",
           "{\"name\":\"Update Member\",\"kind\":\"entrepreneur\",\"birth_year\":1980}");
    snprintf(body, sizeof(body),
             "{\"name\":\"Update Rep\",\"kind\":\"representative\",\"organisation_id\":\"%s\"}",
             org);
    create(d, rep, "members", body);
    snprintf(path, sizeof(path), "/v1/members/%s", m);
    before = get(d, 200, path);

    refuse(d, 422, "immutable_field", "PATCH", path, "{\"id\":\"" NOID "\"}");
    refuse(d, 422, "immutable_field", "PATCH", path, "{\"region\":\"elsewhere\"}");
    refuse(d, 422, "immutable_field", "PATCH", path,
           "{\"created_at\":\"2020-01-01T00:00:00.000Z\"}");
    refuse(d, 422, "immutable_field", "PATCH", path,
           "{\"updated_at\":\"2020-01-01T00:00:00.000Z\"}");
    refuse(d, 422, "immutable_field", "PATCH", path,
           "{\"name\":\"Renamed\",\"region\":\"elsewhere\"}");
    refuse(d, 422, "unknown_field", "PATCH", path, "{\"colour\":\"green\"}");
    refuse(d, 422, "unknown_field", "PATCH", path, "{\"name\":\"Renamed\",\"colour\":\"green\"}");
    refuse(d, 422, "wrong_type", "PATCH", path, "{\"birth_year\":\"1980\"}");
    refuse(d, 422, "wrong_type", "PATCH", path, "{\"name\":{}}");
    refuse(d, 422, "invalid_value", "PATCH", path, "{\"kind\":\"boss\"}");
    refuse(d, 422, "invalid_value", "PATCH", path, "{\"joined_on\":\"2024-04-31\"}");
    refuse(d, 422, "missing_field", "PATCH", path, "{\"name\":null}");
    refuse(d, 422, "missing_field", "PATCH", path, "{\"kind\":null}");
    refuse(d, 422, "invalid_value", "PATCH", path, "{\"kind\":\"representative\"}");
    refuse(d, 422, "unknown_reference", "PATCH", path, "{\"organisation_id\":\"" NOID "\"}");
    refuse(d, 400, "malformed", "PATCH", path, "{\"name\":");
    refuse(d, 400, "malformed", "PATCH", path, "[]");
    refuse(d, 400, "malformed", "PATCH", path, "");
    refuse_ct(d, 415, "unsupported", "PATCH", path, "text/plain", "{\"name\":\"Renamed\"}");
    snprintf(path, sizeof(path), "/v1/members/%s", rep);
    refuse(d, 422, "invalid_value", "PATCH", path, "{\"organisation_id\":null}");
    snprintf(path, sizeof(path), "/v1/members/%s", NOID);
    refuse(d, 404, "not_found", "PATCH", path, "{\"name\":\"Nobody\"}");

    /* None of it touched the record. */
    snprintf(path, sizeof(path), "/v1/members/%s", m);
    after = get(d, 200, path);
    assert_true(json_equal(before, after));
    json_decref(before);
    json_decref(after);
}

static void test_delete(void **state)
{
    tu_daemon *d = *state;
    char org[32], m[32], path[128], body[256];
    snap sn;
    json_t *r, *ch;

    create(d, org, "organisations", "{\"name\":\"Delete Org\",\"kind\":\"other\"}");
    snprintf(body, sizeof(body),
             "{\"name\":\"Delete Member\",\"kind\":\"staff\",\"organisation_id\":\"%s\"}", org);
    create(d, m, "members", body);
    snprintf(path, sizeof(path), "/v1/organisations/%s", org);
    refuse(d, 409, "conflict", "DELETE", path, NULL);
    refuse(d, 404, "not_found", "DELETE", "/v1/organisations/" NOID, NULL);
    refuse(d, 404, "not_found", "DELETE", "/v1/issues/" NOID, NULL);

    snap_take(d, &sn);
    snprintf(path, sizeof(path), "/v1/members/%s", m);
    r = req(d, 204, "DELETE", path, NULL);
    assert_null(r);
    snprintf(path, sizeof(path), "/v1/organisations/%s", org);
    r = req(d, 204, "DELETE", path, NULL);
    assert_null(r);
    refuse(d, 404, "not_found", "GET", path, NULL);
    ch = changes_since(d, sn.seq);
    assert_int_equal(json_array_size(ch), 2);
    assert_change(d, json_array_get(ch, 0), "members", m, "delete", NULL);
    assert_change(d, json_array_get(ch, 1), "organisations", org, "delete", NULL);
    json_decref(ch);
    r = get(d, 200, "/v1/status");
    assert_int_equal(jint(json_object_get(r, "counts"), "members"), jint(sn.counts, "members") - 1);
    assert_int_equal(jint(json_object_get(r, "counts"), "organisations"),
                     jint(sn.counts, "organisations") - 1);
    json_decref(r);
    json_decref(sn.counts);
}

static void test_routes(void **state)
{
    tu_daemon *d = *state;
    char s[32], iss[32], m[32], path[128], body[256];
    static const char *const not_found[] = {
        "/",
        "/v1",
        "/v1/",
        "/v2/status",
        "/v1/nothing",
        "/v1/members/",
        "/v1/members/bad!id",
        "/v1/members/" NOID "/extra",
        "/healthz/x",
        "/v1/status/x",
        "/v1/members/" NOID,
        "/v1//members",
        "/v1/sessions/" NOID "/attendance/x",
        "/V1/members",
        "/v1/Members",
    };

    for (size_t i = 0; i < sizeof(not_found) / sizeof(not_found[0]); i++) {
        print_message("GET %s\n", not_found[i]);
        refuse(d, 404, "not_found", "GET", not_found[i], NULL);
    }
    create(d, m, "members", "{\"name\":\"Route Member\",\"kind\":\"staff\"}");
    create(d, s, "sessions",
           "{\"kind\":\"other\",\"title\":\"Routes\",\"held_on\":\"2024-01-01\"}");
    snprintf(body, sizeof(body),
             "{\"raised_by\":\"%s\",\"category\":\"other\",\"title\":\"Routes\"}", m);
    create(d, iss, "issues", body);

    refuse(d, 405, "method_not_allowed", "PUT", "/v1/members",
           "{\"name\":\"X\",\"kind\":\"staff\"}");
    refuse(d, 405, "method_not_allowed", "DELETE", "/v1/members", NULL);
    refuse(d, 405, "method_not_allowed", "PATCH", "/v1/members", "{\"name\":\"X\"}");
    refuse(d, 405, "method_not_allowed", "POST", "/healthz", "{}");
    refuse(d, 405, "method_not_allowed", "POST", "/v1/status", "{}");
    refuse(d, 405, "method_not_allowed", "DELETE", "/v1/changes", NULL);
    refuse(d, 405, "method_not_allowed", "GET", "/v1/members/import", NULL);
    snprintf(path, sizeof(path), "/v1/members/%s", m);
    refuse(d, 405, "method_not_allowed", "POST", path, "{\"name\":\"X\",\"kind\":\"staff\"}");
    refuse(d, 405, "method_not_allowed", "PUT", path, "{\"name\":\"X\",\"kind\":\"staff\"}");
    snprintf(path, sizeof(path), "/v1/sessions/%s/attendance", s);
    refuse(d, 405, "method_not_allowed", "GET", path, NULL);
    refuse(d, 405, "method_not_allowed", "DELETE", path, NULL);
    snprintf(path, sizeof(path), "/v1/issues/%s/updates", iss);
    refuse(d, 405, "method_not_allowed", "GET", path, NULL);
    refuse(d, 405, "method_not_allowed", "PATCH", path, "{\"note\":\"x\"}");
}

/* Members with a district of their own, so filters can be checked exactly. */
static void test_list_filters(void **state)
{
    tu_daemon *d = *state;
    char m[5][32], o[2][32], s[3][32], i[2][32], q[512], body[512], day[16], prev[16], next[16];
    static const char *const bodies[5] = {
        "{\"name\":\"Sunita "
        "Devi\",\"kind\":\"entrepreneur\",\"gender\":\"female\",\"birth_year\":1990,"
        "\"joined_on\":\"2024-01-10\",\"sector\":\"dairy\",\"district\":\"Lalitpur-F\"}",
        "{\"name\":\"Kamla DEVI\",\"kind\":\"entrepreneur\",\"birth_year\":1985,"
        "\"joined_on\":\"2024-02-20\",\"district\":\"Lalitpur-F\"}",
        "{\"name\":\"Ramesh Kumar\",\"kind\":\"staff\",\"gender\":\"male\",\"birth_year\":1990,"
        "\"joined_on\":\"2024-03-31\",\"district\":\"Lalitpur-F\"}",
        "{\"name\":\"Geeta 100% Pure\",\"kind\":\"entrepreneur\",\"gender\":\"female\","
        "\"district\":\"Lalitpur-F\"}",
        "{\"name\":\"Anil_Verma\",\"kind\":\"staff\",\"district\":\"Lalitpur-F\"}",
    };

    for (int k = 0; k < 5; k++)
        create(d, m[k], "members", bodies[k]);
    {
        const char *all[] = {m[0], m[1], m[2], m[3], m[4]};
        const char *staff[] = {m[2], m[4]};
        const char *ent_f[] = {m[0], m[3]};
        const char *no_gender[] = {m[1], m[4]};
        const char *no_joined[] = {m[3], m[4]};
        const char *born90[] = {m[0], m[2]};
        const char *devi[] = {m[0], m[1]};
        const char *pct[] = {m[3]};
        const char *under[] = {m[4]};
        const char *from[] = {m[1], m[2]};
        const char *to[] = {m[0], m[1]};
        const char *mid[] = {m[1]};
        const char *one_day[] = {m[2]};
        const char *dairy[] = {m[0]};
        const char *kumar[] = {m[2]};

        expect_list(d, "members", "district=Lalitpur-F", all, 5);
        expect_list(d, "members", "district=Lalitpur-F&kind=staff", staff, 2);
        expect_list(d, "members", "kind=entrepreneur&district=Lalitpur-F&gender=female", ent_f, 2);
        expect_list(d, "members", "district=Lalitpur-F&gender=", no_gender, 2);
        expect_list(d, "members", "district=Lalitpur-F&joined_on=", no_joined, 2);
        expect_list(d, "members", "district=Lalitpur-F&birth_year=1990", born90, 2);
        expect_list(d, "members", "district=Lalitpur-F&birth_year=", no_joined, 2);
        expect_list(d, "members", "district=Lalitpur-F&q=devi", devi, 2);
        expect_list(d, "members", "district=Lalitpur-F&q=DeVi", devi, 2);
        expect_list(d, "members", "q=devi&district=Lalitpur-F&kind=entrepreneur", devi, 2);
        expect_list(d, "members", "district=Lalitpur-F&q=%25", pct, 1);
        expect_list(d, "members", "district=Lalitpur-F&q=_", under, 1);
        expect_list(d, "members", "district=Lalitpur-F&q=100%25+pure", pct, 1);
        expect_list(d, "members", "district=Lalitpur-F&q=nobody", NULL, 0);
        expect_list(d, "members", "district=Lalitpur-F&from=2024-02-20", from, 2);
        expect_list(d, "members", "district=Lalitpur-F&to=2024-02-20", to, 2);
        expect_list(d, "members", "district=Lalitpur-F&from=2024-01-11&to=2024-03-30", mid, 1);
        expect_list(d, "members", "district=Lalitpur-F&from=2024-03-31&to=2024-03-31", one_day, 1);
        expect_list(d, "members", "district=Lalitpur-F&from=2024-04-01&to=2024-01-01", NULL, 0);
        expect_list(d, "members", "district=Lalitpur-F&sector=dairy", dairy, 1);
        expect_list(d, "members", "district=Lalitpur-F&sector=Dairy", NULL, 0);
        expect_list(d, "members", "district=Lalitpur-F&kind=staff&q=kumar", kumar, 1);
        expect_list(d, "members", "district=lalitpur-f", NULL, 0);
        snprintf(q, sizeof(q), "district=Lalitpur-F&region=%s", d->id);
        expect_list(d, "members", q, all, 5);
        expect_list(d, "members", "district=Lalitpur-F&region=elsewhere", NULL, 0);
    }

    /* Sessions filter from/to on held_on, issues on opened_on. */
    create(d, s[0], "sessions",
           "{\"kind\":\"radio_show\",\"title\":\"Filtertest radio\",\"held_on\":\"2023-12-31\"}");
    create(d, s[1], "sessions",
           "{\"kind\":\"training\",\"title\":\"FILTERTEST training\",\"held_on\":\"2024-01-01\"}");
    create(d, s[2], "sessions",
           "{\"kind\":\"training\",\"title\":\"Filtertest "
           "visit\",\"held_on\":\"2024-01-02\",\"place\":\"Mahroni\"}");
    {
        const char *all[] = {s[0], s[1], s[2]};
        const char *y24[] = {s[1], s[2]};
        const char *y23[] = {s[0]};
        const char *tr[] = {s[1], s[2]};
        const char *placed[] = {s[2]};
        const char *unplaced[] = {s[0], s[1]};
        expect_list(d, "sessions", "q=filtertest", all, 3);
        expect_list(d, "sessions", "q=filtertest&from=2024-01-01", y24, 2);
        expect_list(d, "sessions", "q=filtertest&to=2023-12-31", y23, 1);
        expect_list(d, "sessions", "q=filtertest&kind=training", tr, 2);
        expect_list(d, "sessions", "q=filtertest&place=Mahroni", placed, 1);
        expect_list(d, "sessions", "q=filtertest&place=", unplaced, 2);
    }
    snprintf(body, sizeof(body),
             "{\"raised_by\":\"%s\",\"category\":\"market\",\"title\":\"Filtertest "
             "early\",\"opened_on\":\"2022-05-01\"}",
             m[0]);
    create(d, i[0], "issues", body);
    snprintf(body, sizeof(body),
             "{\"raised_by\":\"%s\",\"category\":\"market\",\"title\":\"Filtertest "
             "late\",\"opened_on\":\"2022-06-01\"}",
             m[1]);
    create(d, i[1], "issues", body);
    {
        const char *late[] = {i[1]};
        const char *early[] = {i[0]};
        const char *both[] = {i[0], i[1]};
        expect_list(d, "issues", "q=FILTERTEST&from=2022-05-02", late, 1);
        expect_list(d, "issues", "q=filtertest&to=2022-05-01", early, 1);
        expect_list(d, "issues", "q=filtertest&status=open&category=market", both, 2);
        expect_list(d, "issues", "q=filtertest&status=closed", NULL, 0);
        snprintf(q, sizeof(q), "q=filtertest&raised_by=%s", m[1]);
        expect_list(d, "issues", q, late, 1);
        expect_list(d, "issues", "q=filtertest&resolved_on=", both, 2);
    }

    /* Types without a date field filter on created_at (a date, inclusive at both ends). */
    create(d, o[0], "organisations",
           "{\"name\":\"Fromtown A\",\"kind\":\"other\",\"district\":\"Fromtown\"}");
    create(d, o[1], "organisations",
           "{\"name\":\"Fromtown B\",\"kind\":\"other\",\"district\":\"Fromtown\"}");
    today(day);
    day_offset(prev, -1);
    day_offset(next, 1);
    {
        const char *both[] = {o[0], o[1]};
        snprintf(q, sizeof(q), "district=Fromtown&from=%s&to=%s", day, day);
        expect_list(d, "organisations", q, both, 2);
        snprintf(q, sizeof(q), "district=Fromtown&to=%s", prev);
        expect_list(d, "organisations", q, NULL, 0);
        snprintf(q, sizeof(q), "district=Fromtown&from=%s", next);
        expect_list(d, "organisations", q, NULL, 0);
    }

    /* Refusals of list queries. */
    refuse(d, 422, "unknown_field", "GET", "/v1/members?colour=red", NULL);
    refuse(d, 422, "unknown_field", "GET", "/v1/members?district=Lalitpur-F&distrct=Jhansi", NULL);
    refuse(d, 422, "unknown_field", "GET", "/v1/members?id=" NOID, NULL);
    refuse(d, 422, "unknown_field", "GET", "/v1/attendance?q=x", NULL);
    refuse(d, 422, "unknown_field", "GET", "/v1/organisations?status=open", NULL);
    refuse(d, 422, "invalid_value", "GET", "/v1/members?limit=0", NULL);
    refuse(d, 422, "invalid_value", "GET", "/v1/members?limit=1001", NULL);
    refuse(d, 422, "invalid_value", "GET", "/v1/members?limit=-5", NULL);
    refuse(d, 422, "invalid_value", "GET", "/v1/members?limit=ten", NULL);
    refuse(d, 422, "invalid_value", "GET", "/v1/members?limit=", NULL);
    refuse(d, 422, "invalid_value", "GET", "/v1/members?limit=5x", NULL);
    refuse(d, 422, "invalid_value", "GET", "/v1/members?after=not!an-id", NULL);
    refuse(d, 422, "invalid_value", "GET", "/v1/members?from=2024-13-01", NULL);
    refuse(d, 422, "invalid_value", "GET", "/v1/members?to=yesterday", NULL);
    refuse(d, 422, "wrong_type", "GET", "/v1/members?birth_year=nineteen", NULL);
    refuse(d, 400, "bad_request", "GET", "/v1/members?q=%zz", NULL);
    refuse(d, 400, "bad_request", "GET", "/v1/members?q=%00", NULL);
    refuse(d, 400, "bad_request", "GET", "/v1/members?q=%ff", NULL);
    refuse(d, 400, "bad_request", "GET", "/v1/members?kind=staff&kind=entrepreneur", NULL);
    refuse(d, 400, "bad_request", "GET", "/v1/members?=x", NULL);
    {
        json_t *r = get(d, 200, "/v1/members?limit=1000");
        assert_true(json_array_size(json_object_get(r, "items")) >= 5);
        json_decref(r);
    }
}

/* Walks /v1/organisations?district=Pagingpur in pages of `limit`; returns the ids seen, in
 * order, checking each page's size and its next. */
static json_t *walk(tu_daemon *d, int limit, size_t total)
{
    json_t *seen = json_array();
    char path[256], after[64] = "";
    size_t pages = 0;

    for (;;) {
        json_t *r, *items, *next;
        size_t n;
        snprintf(path, sizeof(path), "/v1/organisations?district=Pagingpur&limit=%d%s%s", limit,
                 after[0] ? "&after=" : "", after);
        r = get(d, 200, path);
        items = json_object_get(r, "items");
        next = json_object_get(r, "next");
        n = json_array_size(items);
        pages++;
        /* Every page but the last is full; the last is not empty unless everything is. */
        if (!json_is_null(next)) {
            assert_int_equal(n, (size_t)limit);
            assert_string_equal(json_string_value(next), jstr(json_array_get(items, n - 1), "id"));
        } else {
            assert_true(n <= (size_t)limit);
            assert_int_equal(json_array_size(seen) + n, total);
        }
        for (size_t k = 0; k < n; k++)
            json_array_append(seen, json_object_get(json_array_get(items, k), "id"));
        if (json_is_null(next)) {
            json_decref(r);
            break;
        }
        snprintf(after, sizeof(after), "%s", json_string_value(next));
        json_decref(r);
        assert_true(pages <= total + 1);
    }
    assert_int_equal(pages, total == 0 ? 1 : (total + (size_t)limit - 1) / (size_t)limit);
    return seen;
}

static void test_list_paging(void **state)
{
    tu_daemon *d = *state;
    enum { N = 23 };
    char ids[N][32], body[256];
    static const int limits[] = {1, 5, 22, 23, 24, 1000};

    for (int k = 0; k < N; k++) {
        snprintf(body, sizeof(body),
                 "{\"name\":\"Paging %02d\",\"kind\":\"other\",\"district\":\"Pagingpur\"}", k);
        create(d, ids[k], "organisations", body);
    }
    for (size_t l = 0; l < sizeof(limits) / sizeof(limits[0]); l++) {
        json_t *seen = walk(d, limits[l], N);
        /* All of them, once each, in creation (= id) order: no duplicates, no gaps. */
        assert_int_equal(json_array_size(seen), N);
        for (int k = 0; k < N; k++)
            assert_string_equal(json_string_value(json_array_get(seen, (size_t)k)), ids[k]);
        json_decref(seen);
    }
    {
        /* The default page is 50. */
        json_t *r = get(d, 200, "/v1/organisations?district=Pagingpur");
        assert_int_equal(json_array_size(json_object_get(r, "items")), N);
        assert_null_field(r, "next");
        json_decref(r);
    }
    {
        /* after= an id in the middle starts right after it, even when that id is not in the
         * filtered set. */
        char path[256];
        json_t *r;
        snprintf(path, sizeof(path), "/v1/organisations?district=Pagingpur&limit=1000&after=%s",
                 ids[N - 3]);
        r = get(d, 200, path);
        assert_int_equal(json_array_size(json_object_get(r, "items")), 2);
        assert_string_equal(jstr(json_array_get(json_object_get(r, "items"), 0), "id"), ids[N - 2]);
        json_decref(r);
    }
}

static void test_changes_log(void **state)
{
    tu_daemon *d = *state;
    char org[32], m1[32], m2[32], s[32], iss[32], path[128], body[512];
    static const char *const org_insert[] = {"region",  "name",       "kind",       "district",
                                             "contact", "created_at", "updated_at", NULL};
    static const char *const district_upd[] = {"district", "updated_at", NULL};
    static const char *const two_upd[] = {"district", "contact", "updated_at", NULL};
    static const char *const status_upd[] = {"status", "updated_at", NULL};
    static const char *const att_insert[] = {"region",     "session_id", "member_id",
                                             "created_at", "updated_at", NULL};
    json_t *st, *ch, *rec, *c, *data;
    json_int_t seq0, last_seq = 0, last_hlc = 0;
    snap sn;

    st = get(d, 200, "/v1/status");
    seq0 = jint(st, "seq");
    json_decref(st);

    /* An insert carries every column but id. */
    rec =
        req(d, 201, "POST", "/v1/organisations", "{\"name\":\"Changelog Org\",\"kind\":\"other\"}");
    snprintf(org, sizeof(org), "%s", jstr(rec, "id"));
    ch = changes_since(d, seq0);
    assert_int_equal(json_array_size(ch), 1);
    c = json_array_get(ch, 0);
    assert_change(d, c, "organisations", org, "insert", org_insert);
    data = json_object_get(c, "data");
    assert_string_equal(jstr(data, "name"), "Changelog Org");
    assert_string_equal(jstr(data, "created_at"), jstr(rec, "created_at"));
    assert_null_field(data, "district");
    st = get(d, 200, "/v1/status");
    assert_int_equal(jint(st, "seq"), jint(c, "seq"));
    json_decref(st);
    json_decref(ch);
    json_decref(rec);

    /* An update carries only what changed (and updated_at). */
    snprintf(path, sizeof(path), "/v1/organisations/%s", org);
    tu_sleep_ms(2); /* updated_at has millisecond resolution: make it move */
    rec = req(d, 200, "PATCH", path, "{\"district\":\"Banda\",\"name\":\"Changelog Org\"}");
    ch = changes_since(d, seq0);
    assert_int_equal(json_array_size(ch), 2);
    c = json_array_get(ch, 1);
    assert_change(d, c, "organisations", org, "update", district_upd);
    assert_string_equal(jstr(json_object_get(c, "data"), "district"), "Banda");
    assert_string_equal(jstr(json_object_get(c, "data"), "updated_at"), jstr(rec, "updated_at"));
    json_decref(ch);
    json_decref(rec);
    tu_sleep_ms(2);
    rec = req(d, 200, "PATCH", path, "{\"district\":null,\"contact\":\"Mr. Sharma\"}");
    json_decref(rec);
    ch = changes_since(d, seq0);
    assert_int_equal(json_array_size(ch), 3);
    c = json_array_get(ch, 2);
    assert_change(d, c, "organisations", org, "update", two_upd);
    assert_null_field(json_object_get(c, "data"), "district");
    json_decref(ch);

    /* An empty PATCH changes nothing and logs nothing. */
    snap_take(d, &sn);
    rec = req(d, 200, "PATCH", path, "{}");
    st = get(d, 200, path);
    assert_true(json_equal(rec, st));
    json_decref(st);
    json_decref(rec);
    snap_check(d, &sn, "empty PATCH");

    /* Attendance: one insert per member; an issue update: the issue's update, then the
     * update's insert, in one transaction. */
    create(d, m1, "members", "{\"name\":\"Log One\",\"kind\":\"staff\"}");
    create(d, m2, "members", "{\"name\":\"Log Two\",\"kind\":\"staff\"}");
    create(d, s, "sessions",
           "{\"kind\":\"whatsapp\",\"title\":\"Log session\",\"held_on\":\"2024-07-01\"}");
    snap_take(d, &sn);
    snprintf(path, sizeof(path), "/v1/sessions/%s/attendance", s);
    snprintf(body, sizeof(body), "{\"member_ids\":[\"%s\",\"%s\"]}", m1, m2);
    rec = req(d, 200, "POST", path, body);
    json_decref(rec);
    ch = changes_since(d, sn.seq);
    assert_int_equal(json_array_size(ch), 2);
    assert_change(d, json_array_get(ch, 0), "attendance", jstr(json_array_get(ch, 0), "pk"),
                  "insert", att_insert);
    assert_string_equal(jstr(json_object_get(json_array_get(ch, 0), "data"), "member_id"), m1);
    assert_string_equal(jstr(json_object_get(json_array_get(ch, 1), "data"), "member_id"), m2);
    json_decref(ch);
    json_decref(sn.counts);

    snprintf(body, sizeof(body),
             "{\"raised_by\":\"%s\",\"category\":\"awareness\",\"title\":\"Log issue\"}", m1);
    create(d, iss, "issues", body);
    snap_take(d, &sn);
    tu_sleep_ms(2);
    rec = issue_update(d, iss, "{\"status\":\"resolved\",\"author\":\"Logger\"}");
    ch = changes_since(d, sn.seq);
    assert_int_equal(json_array_size(ch), 2);
    {
        static const char *const resolve_upd[] = {"status", "resolved_on", "updated_at", NULL};
        assert_change(d, json_array_get(ch, 0), "issues", iss, "update", resolve_upd);
    }
    assert_string_equal(jstr(json_object_get(json_array_get(ch, 0), "data"), "status"), "resolved");
    assert_string_equal(jstr(json_array_get(ch, 1), "table"), "issue_updates");
    assert_string_equal(jstr(json_array_get(ch, 1), "op"), "insert");
    assert_string_equal(jstr(json_array_get(ch, 1), "pk"), jstr(last_update(rec), "id"));
    json_decref(ch);
    json_decref(rec);
    json_decref(sn.counts);
    snap_take(d, &sn);
    tu_sleep_ms(2);
    rec = issue_update(d, iss, "{\"status\":\"closed\",\"author\":\"Logger\"}");
    ch = changes_since(d, sn.seq);
    assert_int_equal(json_array_size(ch), 2);
    assert_change(d, json_array_get(ch, 0), "issues", iss, "update", status_upd);
    json_decref(ch);
    json_decref(rec);
    json_decref(sn.counts);

    /* A delete is a tombstone with null data. */
    snprintf(path, sizeof(path), "/v1/members/%s", m2);
    rec = req(d, 409, "DELETE", path, NULL); /* still attends the session */
    json_decref(rec);
    create(d, m2, "members", "{\"name\":\"Log Three\",\"kind\":\"staff\"}");
    snap_take(d, &sn);
    snprintf(path, sizeof(path), "/v1/members/%s", m2);
    rec = req(d, 204, "DELETE", path, NULL);
    ch = changes_since(d, sn.seq);
    assert_int_equal(json_array_size(ch), 1);
    assert_change(d, json_array_get(ch, 0), "members", m2, "delete", NULL);
    json_decref(ch);
    json_decref(sn.counts);

    /* The whole log: seq and hlc strictly increasing, one origin. */
    ch = changes_since(d, 0);
    assert_true(json_array_size(ch) > 10);
    for (size_t k = 0; k < json_array_size(ch); k++) {
        c = json_array_get(ch, k);
        assert_true(jint(c, "seq") > last_seq);
        assert_true(jint(c, "hlc") > last_hlc);
        assert_string_equal(jstr(c, "origin"), d->id);
        last_seq = jint(c, "seq");
        last_hlc = jint(c, "hlc");
    }
    st = get(d, 200, "/v1/status");
    assert_int_equal(jint(st, "seq"), last_seq);
    json_decref(st);

    /* Paging the log with limit: next is the last seq given; the walk sees every entry. */
    {
        json_int_t since = 0;
        size_t seen = 0;
        for (;;) {
            json_t *r, *items, *next;
            snprintf(path, sizeof(path), "/v1/changes?since=%lld&limit=7", (long long)since);
            r = get(d, 200, path);
            items = json_object_get(r, "items");
            next = json_object_get(r, "next");
            for (size_t k = 0; k < json_array_size(items); k++)
                assert_int_equal(jint(json_array_get(items, k), "seq"),
                                 jint(json_array_get(ch, seen + k), "seq"));
            seen += json_array_size(items);
            if (json_is_null(next)) {
                json_decref(r);
                break;
            }
            assert_int_equal(json_array_size(items), 7);
            assert_int_equal(json_integer_value(next), jint(json_array_get(items, 6), "seq"));
            since = json_integer_value(next);
            json_decref(r);
        }
        assert_int_equal(seen, json_array_size(ch));
    }
    snprintf(path, sizeof(path), "/v1/changes?since=%lld", (long long)last_seq);
    st = get(d, 200, path);
    assert_int_equal(json_array_size(json_object_get(st, "items")), 0);
    assert_null_field(st, "next");
    json_decref(st);
    json_decref(ch);

    refuse(d, 422, "invalid_value", "GET", "/v1/changes?since=-1", NULL);
    refuse(d, 422, "invalid_value", "GET", "/v1/changes?since=abc", NULL);
    refuse(d, 422, "invalid_value", "GET", "/v1/changes?limit=0", NULL);
    refuse(d, 422, "invalid_value", "GET", "/v1/changes?limit=10001", NULL);
    refuse(d, 422, "unknown_field", "GET", "/v1/changes?table=1", NULL);
    refuse(d, 400, "bad_request", "GET", "/v1/changes?since=1&since=2", NULL);
}

/* A PATCH that sets every field to the value it already has is a no-op too: store.c's own
 * contract says "an update that changes nothing records nothing". */
static void test_changes_same_value_patch(void **state)
{
    tu_daemon *d = *state;
    char org[32], path[128];
    json_t *before, *after;
    snap sn;

    create(d, org, "organisations",
           "{\"name\":\"Same Value Org\",\"kind\":\"other\",\"district\":\"Banda\"}");
    snprintf(path, sizeof(path), "/v1/organisations/%s", org);
    before = get(d, 200, path);
    tu_sleep_ms(5);
    snap_take(d, &sn);
    after = req(d, 200, "PATCH", path, "{\"district\":\"Banda\",\"name\":\"Same Value Org\"}");
    snap_check(d, &sn, "same-value PATCH");
    assert_string_equal(jstr(after, "updated_at"), jstr(before, "updated_at"));
    json_decref(before);
    json_decref(after);
}

/* Imports csv (as text/csv) with query; asserts status; returns the body. */
static json_t *import(tu_daemon *d, int want, const char *query, const char *csv)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/members/import%s", query);
    return call_raw(d, 0, want, "POST", path, "text/csv", csv, strlen(csv));
}

/* Asserts an import refusal: 422 bad_csv whose rows are exactly want (row, column or NULL)
 * and that nothing was written. */
typedef struct row_problem {
    int row;
    const char *column;
} row_problem;

static void import_refused(tu_daemon *d, const char *csv, const row_problem *want, size_t n)
{
    snap sn;
    json_t *r, *rows, *e;

    snap_take(d, &sn);
    r = import(d, 422, "", csv);
    e = json_object_get(r, "error");
    assert_non_null(e);
    assert_string_equal(jstr(e, "code"), "bad_csv");
    assert_true(strlen(jstr(e, "message")) > 0);
    rows = json_object_get(e, "rows");
    if (n == 0) {
        assert_true(rows == NULL || json_array_size(rows) == 0);
    } else {
        if (json_array_size(rows) != n) {
            char *s = json_dumps(r, JSON_COMPACT);
            print_message("expected %zu problem rows: %s\n", n, s);
            free(s);
            json_decref(r);
            fail();
        }
        for (size_t k = 0; k < n; k++) {
            json_t *p = json_array_get(rows, k);
            assert_int_equal(json_object_size(p), 3);
            if (want[k].row > 0)
                assert_int_equal(jint(p, "row"), want[k].row);
            else
                assert_true(jint(p, "row") >= 2);
            if (want[k].column)
                assert_string_equal(jstr(p, "column"), want[k].column);
            else
                assert_null_field(p, "column");
            assert_true(strlen(jstr(p, "message")) > 0);
        }
    }
    json_decref(r);
    snap_check(d, &sn, "refused import");
}

static void test_import_success(void **state)
{
    tu_daemon *d = *state;
    char org[32], csv[1024], path[128];
    json_t *r, *ids, *m;
    snap sn;
    json_int_t members0;

    create(d, org, "organisations", "{\"name\":\"Import Org\",\"kind\":\"training\"}");
    snprintf(csv, sizeof(csv),
             "name,kind,gender,birth_year,phone,village,district,sector,organisation_id,"
             "joined_on,status\r\n"
             "Asha Kumari,entrepreneur,female,1992,+91 99999 00000,Babina,Importpur,dairy,%s,"
             "2024-05-01,active\r\n"
             "Bina,representative,,,,,Importpur,,%s,,inactive\r\n"
             "\"Chauhan, Devendra\",staff,male,,,\"Mau \"\"Ranipur\"\"\",Importpur,,,,\r\n",
             org, org);

    /* Dry run: checked, nothing written. */
    snap_take(d, &sn);
    r = import(d, 200, "?dry_run=1", csv);
    assert_int_equal(json_object_size(r), 1);
    assert_int_equal(jint(r, "checked"), 3);
    json_decref(r);
    snap_check(d, &sn, "dry run");

    snap_take(d, &sn);
    members0 = jint(sn.counts, "members");
    r = import(d, 200, "", csv);
    assert_int_equal(json_object_size(r), 2);
    assert_int_equal(jint(r, "imported"), 3);
    ids = json_object_get(r, "ids");
    assert_int_equal(json_array_size(ids), 3);
    snprintf(path, sizeof(path), "/v1/members/%s", json_string_value(json_array_get(ids, 0)));
    m = get(d, 200, path);
    assert_string_equal(jstr(m, "name"), "Asha Kumari");
    assert_string_equal(jstr(m, "gender"), "female");
    assert_int_equal(jint(m, "birth_year"), 1992);
    assert_string_equal(jstr(m, "phone"), "+91 99999 00000");
    assert_string_equal(jstr(m, "organisation_id"), org);
    assert_string_equal(jstr(m, "joined_on"), "2024-05-01");
    json_decref(m);
    snprintf(path, sizeof(path), "/v1/members/%s", json_string_value(json_array_get(ids, 1)));
    m = get(d, 200, path);
    assert_string_equal(jstr(m, "kind"), "representative");
    assert_string_equal(jstr(m, "status"), "inactive");
    assert_null_field(m, "gender");
    assert_null_field(m, "birth_year");
    json_decref(m);
    snprintf(path, sizeof(path), "/v1/members/%s", json_string_value(json_array_get(ids, 2)));
    m = get(d, 200, path);
    assert_string_equal(jstr(m, "name"), "Chauhan, Devendra");
    assert_string_equal(jstr(m, "village"), "Mau \"Ranipur\"");
    assert_string_equal(jstr(m, "status"), "active");
    json_decref(m);
    json_decref(r);
    r = get(d, 200, "/v1/status");
    assert_int_equal(jint(json_object_get(r, "counts"), "members"), members0 + 3);
    assert_int_equal(jint(r, "seq"), sn.seq + 3);
    json_decref(r);
    json_decref(sn.counts);

    /* dry_run=0 really imports; a header alone imports nothing. */
    r = import(d, 200, "?dry_run=0", "name,kind\nDharam,staff\n");
    assert_int_equal(jint(r, "imported"), 1);
    json_decref(r);
    {
        const char *csv1 = "name,kind\nEkta,staff\n";
        json_t *x = call_raw(d, 0, 200, "POST", "/v1/members/import", "text/csv; charset=utf-8",
                             csv1, strlen(csv1));
        assert_int_equal(jint(x, "imported"), 1);
        json_decref(x);
    }
}

static void test_import_bom_aliases(void **state)
{
    tu_daemon *d = *state;
    char org[32], csv[1024], path[128];
    json_t *r, *m;

    create(d, org, "organisations", "{\"name\":\"Alias Org\",\"kind\":\"financial\"}");
    snprintf(csv, sizeof(csv),
             "\xef\xbb\xbfName, KIND ,Birth Year,Organization,Joined,Enterprise-Sector,Gender,"
             "Status\n"
             " Chanda Bai ,Entrepreneur,1990,%s,2024-06-01,Handloom,FEMALE, Active \n",
             org);
    r = import(d, 200, "", csv);
    assert_int_equal(jint(r, "imported"), 1);
    snprintf(path, sizeof(path), "/v1/members/%s",
             json_string_value(json_array_get(json_object_get(r, "ids"), 0)));
    json_decref(r);
    m = get(d, 200, path);
    assert_string_equal(jstr(m, "name"), "Chanda Bai");
    assert_string_equal(jstr(m, "kind"), "entrepreneur");
    assert_int_equal(jint(m, "birth_year"), 1990);
    assert_string_equal(jstr(m, "organisation_id"), org);
    assert_string_equal(jstr(m, "joined_on"), "2024-06-01");
    assert_string_equal(jstr(m, "sector"), "Handloom"); /* free text keeps its case */
    assert_string_equal(jstr(m, "gender"), "female");
    assert_string_equal(jstr(m, "status"), "active");
    json_decref(m);

    /* The other aliases. */
    snprintf(csv, sizeof(csv),
             "name,kind,org,joined_date,birth-year\nDevki,Representative,%s,2024-06-02,1970\n",
             org);
    r = import(d, 200, "", csv);
    snprintf(path, sizeof(path), "/v1/members/%s",
             json_string_value(json_array_get(json_object_get(r, "ids"), 0)));
    json_decref(r);
    m = get(d, 200, path);
    assert_string_equal(jstr(m, "organisation_id"), org);
    assert_string_equal(jstr(m, "joined_on"), "2024-06-02");
    assert_string_equal(jstr(m, "kind"), "representative");
    assert_int_equal(jint(m, "birth_year"), 1970);
    json_decref(m);
    snprintf(csv, sizeof(csv), "NAME,Kind,Organisation\nElla,STAFF,%s\n", org);
    r = import(d, 200, "", csv);
    assert_int_equal(jint(r, "imported"), 1);
    json_decref(r);
}

static void test_import_refusals(void **state)
{
    tu_daemon *d = *state;
    char csv[1024];

    {
        /* Rows are checked all the way through; every bad row is named, good ones are not
         * imported either. */
        static const row_problem want[] = {
            {3, "kind"}, {5, "birth_year"}, {6, "name"}, {7, "organisation_id"}, {8, "joined_on"}};
        import_refused(d,
                       "name,kind,birth_year,organisation_id,joined_on\n"
                       "Good One,staff,,,\n"
                       "Bad Kind,farmer,,,\n"
                       "Good Two,staff,1980,,\n"
                       "Bad Year,staff,nineteen,,\n"
                       ",staff,,,\n"
                       "Bad Org,staff,,01J0000000000000000000000Z,\n"
                       "Bad Date,staff,,,2024-02-30\n",
                       want, 5);
    }
    {
        static const row_problem want[] = {{1, "colour"}};
        import_refused(d, "name,kind,colour\nX,staff,red\n", want, 1);
    }
    {
        static const row_problem want[] = {{2, NULL}};
        import_refused(d, "name,kind\nX,staff,extra\n", want, 1);
    }
    {
        static const row_problem want[] = {{1, "name"}};
        import_refused(d, "name,kind,Name\nX,staff,Y\n", want, 1);
    }
    {
        /* Node-managed columns are not importable. */
        static const row_problem want[] = {{1, "id"}};
        import_refused(d, "id,name,kind\n" NOID ",X,staff\n", want, 1);
    }
    /* Malformed CSV is refused as a whole, with one problem naming where; an empty file has
     * no rows to name. (Which line an unterminated quote is reported on is not pinned: the
     * quote opens on line 2 and the file ends on line 3.) */
    {
        static const row_problem at2[] = {{2, NULL}};
        static const row_problem somewhere[] = {{0, NULL}};
        import_refused(d, "name,kind\n\"X,staff\n", somewhere, 1);
        import_refused(d, "name,kind\nX\"y,staff\n", at2, 1);
        import_refused(d, "name,kind\n\"X\"y,staff\n", at2, 1);
        import_refused(d, "", NULL, 0);
    }
    {
        static const row_problem want[] = {{2, "name"}};
        import_refused(d, "name,kind\n\xff\xfe,staff\n", want, 1);
    }
    /* Too many problems: the list stops at 100, nothing is imported. */
    {
        size_t cap = 200 * 16 + 32, used;
        char *big = malloc(cap);
        snap sn;
        json_t *r;
        assert_non_null(big);
        used = (size_t)snprintf(big, cap, "name,kind\n");
        for (int k = 0; k < 200; k++)
            used += (size_t)snprintf(big + used, cap - used, "X,farmer\n");
        snap_take(d, &sn);
        r = import(d, 422, "", big);
        assert_int_equal(json_array_size(json_object_get(json_object_get(r, "error"), "rows")),
                         100);
        json_decref(r);
        snap_check(d, &sn, "import of 200 bad rows");
        free(big);
    }
    snprintf(csv, sizeof(csv), "name,kind\nX,staff\n");
    refuse_ct(d, 415, "unsupported", "POST", "/v1/members/import", JSON_CT, csv);
    refuse_ct(d, 422, "unknown_field", "POST", "/v1/members/import?dryrun=1", "text/csv", csv);
    refuse_ct(d, 405, "method_not_allowed", "PUT", "/v1/members/import", "text/csv", csv);
}

/* docs/API.md: on any problem the answer is bad_csv with "rows"; a representative without an
 * organisation is a problem of its row like any other. */
static void test_import_representative_without_org(void **state)
{
    tu_daemon *d = *state;
    static const row_problem want[] = {{3, "organisation_id"}};
    static const char csv[] = "name,kind\nFine,staff\nRavi,representative\n";
    json_t *r;

    /* A dry run must not promise an import that would fail. */
    r = import(d, 422, "?dry_run=1", csv);
    assert_string_equal(jstr(json_object_get(r, "error"), "code"), "bad_csv");
    json_decref(r);
    import_refused(d, csv, want, 1);
}

/* docs/API.md: problems name the line of the file (the header is line 1); for a row whose
 * quoted cell spans lines, the line where its first cell ends. */
static void test_import_rows_are_lines(void **state)
{
    tu_daemon *d = *state;
    {
        static const row_problem want[] = {{4, "kind"}};
        import_refused(d, "name,kind\nFine,staff\n\nRavi,farmer\n", want, 1);
    }
    {
        /* Line 3 ends the quoted first cell of the record that starts on line 2; the record
         * after it is line 4. */
        static const row_problem want[] = {{3, "name"}, {4, "kind"}, {6, "birth_year"}};
        import_refused(d,
                       "name,kind,birth_year\r\n\"Two\r\nLines\",staff,\r\nRavi,farmer,\r\n"
                       "Fine,staff,1990\r\nBad,staff,\"19\r\n90\"\r\n",
                       want, 3);
    }
}

/* The same rule at the edges of a file: a last line without a line break, and lines ended by
 * a lone CR (Excel's "CSV (Macintosh)" export), which libcsv reads as rows. */
static void test_import_line_edges(void **state)
{
    tu_daemon *d = *state;
    {
        static const row_problem want[] = {{3, "kind"}};
        import_refused(d, "kind,name\nstaff,Asha\nfarmer", want, 1);
    }
    {
        static const row_problem want[] = {{3, "kind"}};
        import_refused(d, "name,kind\rAsha,staff\rBina,farmer\r", want, 1);
    }
}

/* --- framing group: raw sockets --- */

/* Sends data in one write on a new connection and collects the answer until the node closes
 * the connection or stays quiet for quiet_ms. */
static char *exchange(tu_daemon *d, const char *data, size_t len, unsigned quiet_ms, int *closed,
                      size_t *out_len)
{
    int fd = tu_unix_connect(d->sock);
    char *out;

    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, data, len), 0);
    out = tu_recv_all(fd, quiet_ms, out_len, closed);
    close(fd);
    return out;
}

/* Asserts a raw answer is one response with status and error code, then the close. */
static void expect_refused_raw(tu_daemon *d, const char *data, size_t len, int status,
                               const char *code)
{
    int closed, st[4];
    char *body[4];
    size_t n;
    char *raw;
    int count;
    json_t *j;
    snap sn;

    snap_take(d, &sn);
    raw = exchange(d, data, len, 3000, &closed, &n);
    count = tu_split_responses(raw, n, st, body, 4);
    /* status 0: any refusal of the request head (400 or 431), whichever check comes first. */
    if (count == 1 && status == 0 && (st[0] == 400 || st[0] == 431)) {
        status = st[0];
        code = st[0] == 400 ? "bad_request" : "too_big";
    }
    if (count != 1 || st[0] != status || !closed) {
        print_message("expected one %d and a close; got %d response(s), first %d, closed=%d\n",
                      status, count, count ? st[0] : 0, closed);
        for (int k = 0; k < count; k++)
            free(body[k]);
        free(raw);
        fail();
    }
    assert_non_null(strstr(raw, "Connection: close"));
    j = json_loads(body[0], 0, NULL);
    assert_non_null(j);
    assert_error(j, code);
    json_decref(j);
    free(body[0]);
    free(raw);
    snap_check(d, &sn, "refused framing");
}

#define RAW(s) s, sizeof(s) - 1

static void test_frame_bare_cr(void **state)
{
    expect_refused_raw(*state, RAW("GET /healthz HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n"), 400,
                       "bad_request");
    expect_refused_raw(*state, RAW("GET /healthz\r HTTP/1.1\r\nHost: x\r\n\r\n"), 400,
                       "bad_request");
}

static void test_frame_bare_lf(void **state)
{
    expect_refused_raw(*state, RAW("GET /healthz HTTP/1.1\nHost: x\r\n\r\n"), 400, "bad_request");
    expect_refused_raw(*state, RAW("GET /healthz HTTP/1.1\r\nHost: x\n\r\n"), 400, "bad_request");
    expect_refused_raw(*state, RAW("GET /healthz HTTP/1.1\r\nHost: x\r\n\n"), 400, "bad_request");
}

static void test_frame_obs_fold(void **state)
{
    expect_refused_raw(*state,
                       RAW("GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n"), 400,
                       "bad_request");
    expect_refused_raw(*state,
                       RAW("POST /v1/organisations HTTP/1.1\r\nHost: x\r\nContent-Type: "
                           "application/json\r\nContent-Length: 2\r\n\t2\r\n\r\n{}"),
                       400, "bad_request");
}

static void test_frame_transfer_encoding(void **state)
{
    static const char chunked[] =
        "POST /v1/organisations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
        "21\r\n{\"name\":\"Chunked\",\"kind\":\"other\"}\r\n0\r\n\r\n";
    static const char cl_te[] =
        "POST /v1/organisations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 34\r\nTransfer-Encoding: chunked\r\n\r\n"
        "{\"name\":\"CL and TE\",\"kind\":\"other\"}";
    static const char te_cl[] =
        "POST /v1/organisations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "transfer-encoding: identity\r\nContent-Length: 34\r\n\r\n"
        "{\"name\":\"TE and CL\",\"kind\":\"other\"}";
    static const char dup_cl[] =
        "POST /v1/organisations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 34\r\nContent-Length: 35\r\n\r\n"
        "{\"name\":\"Two CLs\",\"kind\":\"other\"}  ";
    expect_refused_raw(*state, RAW(chunked), 400, "bad_request");
    expect_refused_raw(*state, RAW(cl_te), 400, "bad_request");
    expect_refused_raw(*state, RAW(te_cl), 400, "bad_request");
    expect_refused_raw(*state, RAW(dup_cl), 400, "bad_request");
}

static void test_frame_nul(void **state)
{
    expect_refused_raw(*state, RAW("GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n"), 400,
                       "bad_request");
}

static void test_frame_head_too_big(void **state)
{
    size_t n = 20 * 1024;
    char *big = malloc(n + 64);
    size_t len;

    len = (size_t)snprintf(big, 64, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big + len, 'a', n);
    len += n;
    memcpy(big + len, "\r\n\r\n", 4);
    len += 4;
    expect_refused_raw(*state, big, len, 431, "too_big");
    free(big);
}

/* docs/API.md: 413 too_big for a body over 16 MiB; the node can tell from Content-Length. */
static void test_frame_body_too_big(void **state)
{
    expect_refused_raw(*state,
                       RAW("POST /v1/organisations HTTP/1.1\r\nHost: x\r\nContent-Type: "
                           "application/json\r\nContent-Length: 16777217\r\n\r\n{"),
                       413, "too_big");
}

/* Leading empty lines before a request line must not switch the strict checks off: the
 * request after them is held to the same framing rules. */
static void test_frame_smuggling_after_empty_lines(void **state)
{
    tu_daemon *d = *state;
    expect_refused_raw(d,
                       RAW("\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n"),
                       400, "bad_request");
    {
        size_t n = 20 * 1024, len;
        char *big = malloc(n + 64);
        len = (size_t)snprintf(big, 64, "\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
        memset(big + len, 'a', n);
        len += n;
        memcpy(big + len, "\r\n\r\n", 4);
        len += 4;
        expect_refused_raw(d, big, len, 0, NULL);
        free(big);
    }
    {
        /* Transfer-Encoding split across two reads. */
        static const char part1[] =
            "\r\n\r\nPOST /v1/organisations HTTP/1.1\r\nHost: x\r\nTransfer-";
        static const char part2[] = "Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
                                    "22\r\n{\"name\":\"Smuggled\",\"kind\":\"other\"}\r\n0\r\n\r\n";
        int fd = tu_unix_connect(d->sock), closed, st[2];
        char *raw, *body[2];
        size_t n;
        int count;
        snap sn;

        snap_take(d, &sn);
        assert_true(fd >= 0);
        assert_int_equal(tu_send_all(fd, RAW(part1)), 0);
        tu_sleep_ms(200);
        /* May fail: a node that refuses part1 has closed the connection already. */
        (void)tu_send_all(fd, RAW(part2));
        raw = tu_recv_all(fd, 2000, &n, &closed);
        close(fd);
        count = tu_split_responses(raw, n, st, body, 2);
        for (int k = 0; k < count; k++)
            free(body[k]);
        free(raw);
        snap_check(d, &sn, "chunked request after empty lines");
        assert_int_equal(count, 1);
        assert_int_equal(st[0], 400);
        assert_true(closed);
    }
}

static void test_frame_pipelined(void **state)
{
    tu_daemon *d = *state;
    static const char two[] =
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        "POST /v1/organisations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 35\r\n\r\n{\"name\":\"Pipelined\",\"kind\":\"other\"}"
        "GET /v1/no-such-thing HTTP/1.1\r\nHost: x\r\n\r\n";
    int closed, st[4];
    char *body[4], *raw;
    size_t n;
    int count;
    json_t *j;

    raw = exchange(d, RAW(two), 500, &closed, &n);
    count = tu_split_responses(raw, n, st, body, 4);
    free(raw);
    assert_int_equal(count, 3);
    assert_false(closed); /* keep-alive: the node waits for more */
    assert_int_equal(st[0], 200);
    assert_string_equal(body[0], "{\"ok\":true}\n");
    assert_int_equal(st[1], 201);
    j = json_loads(body[1], 0, NULL);
    assert_string_equal(jstr(j, "name"), "Pipelined");
    json_decref(j);
    assert_int_equal(st[2], 404);
    for (int k = 0; k < count; k++)
        free(body[k]);

    /* A bad request after a good one: the good one is answered, then the refusal and close. */
    raw = exchange(
        d, RAW("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\nHost: x\n\n"), 2000,
        &closed, &n);
    count = tu_split_responses(raw, n, st, body, 4);
    free(raw);
    assert_int_equal(count, 2);
    assert_int_equal(st[0], 200);
    assert_int_equal(st[1], 400);
    assert_true(closed);
    for (int k = 0; k < count; k++)
        free(body[k]);
}

static void test_frame_keep_alive(void **state)
{
    tu_daemon *d = *state;
    int fd = tu_unix_connect(d->sock), st;
    char *body;
    static const char post[] =
        "POST /v1/organisations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 36\r\n\r\n{\"name\":\"Keep-alive\",\"kind\":\"other\"}";

    assert_true(fd >= 0);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(tu_send_all(fd, RAW("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")), 0);
        assert_int_equal(tu_read_response(fd, 5000, &st, &body), 0);
        assert_int_equal(st, 200);
        assert_string_equal(body, "{\"ok\":true}\n");
        free(body);
        assert_int_equal(tu_send_all(fd, RAW(post)), 0);
        assert_int_equal(tu_read_response(fd, 5000, &st, &body), 0);
        assert_int_equal(st, 201);
        free(body);
    }
    /* A request fed a few bytes at a time is still one request. */
    for (size_t off = 0; off < sizeof(post) - 1; off += 7) {
        size_t n = sizeof(post) - 1 - off < 7 ? sizeof(post) - 1 - off : 7;
        assert_int_equal(tu_send_all(fd, post + off, n), 0);
        tu_sleep_ms(2);
    }
    assert_int_equal(tu_read_response(fd, 5000, &st, &body), 0);
    assert_int_equal(st, 201);
    free(body);
    /* Connection: close is honoured. */
    assert_int_equal(
        tu_send_all(fd, RAW("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")), 0);
    {
        int closed;
        size_t n;
        char *raw = tu_recv_all(fd, 3000, &n, &closed);
        assert_non_null(strstr(raw, "HTTP/1.1 200 OK"));
        assert_non_null(strstr(raw, "Connection: close"));
        assert_true(closed);
        free(raw);
    }
    close(fd);

    /* HTTP/1.0 without keep-alive: one answer, then the close. */
    {
        int closed;
        size_t n;
        char *raw = exchange(d, RAW("GET /healthz HTTP/1.0\r\n\r\n"), 3000, &closed, &n);
        assert_non_null(strstr(raw, " 200 OK"));
        assert_true(closed);
        free(raw);
    }
}

/* --- process group: each test runs its own sangamd --- */

static char *config_error(const char *tag, const char *ini, int *code, char *cfg_path, size_t cap)
{
    char dir[PATH_MAX], *out = NULL;
    char db[PATH_MAX + 8], sock[PATH_MAX + 8];
    struct stat sb;

    assert_int_equal(tu_tmpdir(dir, sizeof(dir), tag), 0);
    snprintf(cfg_path, cap, "%s/node.ini", dir);
    assert_int_equal(tu_write_file(cfg_path, ini), 0);
    assert_int_equal(tu_run_sangamd(code, &out, dir, "--config", cfg_path, 10000), 0);
    /* A refused config starts nothing. */
    snprintf(db, sizeof(db), "%s/n.db", dir);
    snprintf(sock, sizeof(sock), "%s/n.sock", dir);
    assert_int_not_equal(stat(db, &sb), 0);
    assert_int_not_equal(stat(sock, &sb), 0);
    tu_rmtree(dir);
    return out;
}

/* Exit code 2 and exactly one line on stderr naming the file and what is wrong. */
static void expect_config_error(const char *ini, const char *needle)
{
    char cfg[PATH_MAX], *err;
    int code = 0;
    size_t len, lines = 0;

    err = config_error("cfg", ini, &code, cfg, sizeof(cfg));
    print_message("stderr: %s", err);
    assert_int_equal(code, 2);
    len = strlen(err);
    for (size_t i = 0; i < len; i++)
        lines += err[i] == '\n';
    assert_int_equal(lines, 1); /* one line, ending in a newline */
    assert_true(len > 1 && err[len - 1] == '\n');
    assert_non_null(strstr(err, cfg));
    assert_non_null(strstr(err, needle));
    free(err);
}

static void test_bad_config(void **state)
{
    (void)state;
    expect_config_error("[node]\nrole = region\nid = r1\ndb = n.db\ncolour = blue\n[api]\n"
                        "socket = n.sock\n",
                        "[node] colour");
    expect_config_error("[node]\nrole = region\nid = Bundel Khand\ndb = n.db\n[api]\n"
                        "socket = n.sock\n",
                        "[node] id");
    expect_config_error("[node]\nrole = region\nid = -r1\ndb = n.db\n[api]\nsocket = n.sock\n",
                        "[node] id");
    expect_config_error("[node]\nrole = region\nid = r1\n[api]\nsocket = n.sock\n", "[node] db");
    expect_config_error("[node]\nrole = region\nid = r1\ndb = n.db\n[api]\nsocket = n.sock\n"
                        "[apii]\nlisten = 127.0.0.1:1\n",
                        "apii");
    expect_config_error("[node]\nrole = regional\nid = r1\ndb = n.db\n[api]\nsocket = n.sock\n",
                        "[node] role");
    expect_config_error("[node]\nrole = region\nid = r1\ndb = n.db\n[api]\nsocket = n.sock\n"
                        "listen = localhost\n",
                        "[api] listen");
    expect_config_error("[node]\nrole = region\nid = r1\ndb = n.db\n[api]\nsocket = n.sock\n"
                        "[log]\nlevel = loud\n",
                        "[log] level");
    expect_config_error("[node]\nrole = region\nid = r1\ndb = n.db\n", "[api] socket");
    {
        /* A config file that is not there. */
        char dir[PATH_MAX], cfg[PATH_MAX + 16], *err = NULL;
        int code = 0;
        assert_int_equal(tu_tmpdir(dir, sizeof(dir), "cfg"), 0);
        snprintf(cfg, sizeof(cfg), "%s/missing.ini", dir);
        assert_int_equal(tu_run_sangamd(&code, &err, dir, "--config", cfg, 10000), 0);
        assert_int_equal(code, 2);
        assert_non_null(strstr(err, cfg));
        free(err);
        assert_int_equal(tu_run_sangamd(&code, &err, dir, "--bogus", NULL, 10000), 0);
        assert_int_equal(code, 2);
        free(err);
        tu_rmtree(dir);
    }
}

static void test_sigterm(void **state)
{
    tu_daemon d;
    int fd, st;
    char *body;
    struct stat sb;
    uint64_t t0;
    (void)state;

    assert_int_equal(tu_daemon_init(&d, "sigterm", 0, NULL), 0);
    assert_int_equal(tu_daemon_start(&d), 0);
    /* An idle keep-alive connection must not hold the stop up. */
    fd = tu_unix_connect(d.sock);
    assert_true(fd >= 0);
    assert_int_equal(tu_send_all(fd, RAW("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")), 0);
    assert_int_equal(tu_read_response(fd, 5000, &st, &body), 0);
    free(body);
    t0 = tu_now_ms();
    assert_int_equal(tu_daemon_stop(&d), 0);
    assert_true(tu_now_ms() - t0 < 5000);
    close(fd);
    assert_int_not_equal(stat(d.sock, &sb), 0);
    assert_int_equal(errno, ENOENT);
    {
        char *log = tu_read_file(d.log, NULL);
        assert_non_null(strstr(log, "event=stopped"));
        free(log);
    }
    tu_daemon_cleanup(&d);
}

/* SIGTERM right after a client hung up: the connection's close is still in progress when the
 * stop begins. The node must still exit 0 (not abort, not touch freed memory). */
static void test_sigterm_after_hangup(void **state)
{
    (void)state;
    for (int round = 0; round < 5; round++) {
        tu_daemon d;
        int fd, st, code;
        char *body;

        assert_int_equal(tu_daemon_init(&d, "hangup", 0, NULL), 0);
        assert_int_equal(tu_daemon_start(&d), 0);
        fd = tu_unix_connect(d.sock);
        assert_true(fd >= 0);
        assert_int_equal(tu_send_all(fd, RAW("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")), 0);
        assert_int_equal(tu_read_response(fd, 5000, &st, &body), 0);
        free(body);
        close(fd);
        code = tu_daemon_stop(&d);
        if (code != 0) {
            char *log = tu_read_file(d.log, NULL);
            print_message("round %d: exit %d; log:\n%s\n", round, code, log ? log : "");
            free(log);
        }
        tu_daemon_cleanup(&d);
        assert_int_equal(code, 0);
    }
}

static void test_restart_keeps_data(void **state)
{
    tu_daemon d;
    char org[32], m[32], iss[32], path[128], body[256];
    json_t *before[3], *status0, *changes0, *x;
    (void)state;

    assert_int_equal(tu_daemon_init(&d, "restart", 0, NULL), 0);
    assert_int_equal(tu_daemon_start(&d), 0);
    create(&d, org, "organisations", "{\"name\":\"Durable Org\",\"kind\":\"academic\"}");
    snprintf(body, sizeof(body),
             "{\"name\":\"Durable Member\",\"kind\":\"staff\",\"organisation_id\":\"%s\"}", org);
    create(&d, m, "members", body);
    snprintf(body, sizeof(body),
             "{\"raised_by\":\"%s\",\"category\":\"technology\",\"title\":\"Durable\"}", m);
    create(&d, iss, "issues", body);
    x = issue_update(&d, iss, "{\"status\":\"resolved\",\"note\":\"done\",\"author\":\"R\"}");
    json_decref(x);
    snprintf(path, sizeof(path), "/v1/organisations/%s", org);
    before[0] = get(&d, 200, path);
    snprintf(path, sizeof(path), "/v1/members/%s", m);
    before[1] = get(&d, 200, path);
    snprintf(path, sizeof(path), "/v1/issues/%s", iss);
    before[2] = get(&d, 200, path);
    status0 = get(&d, 200, "/v1/status");
    changes0 = changes_since(&d, 0);
    assert_int_equal(tu_daemon_stop(&d), 0);

    assert_int_equal(tu_daemon_start(&d), 0);
    snprintf(path, sizeof(path), "/v1/organisations/%s", org);
    x = get(&d, 200, path);
    assert_true(json_equal(x, before[0]));
    json_decref(x);
    snprintf(path, sizeof(path), "/v1/members/%s", m);
    x = get(&d, 200, path);
    assert_true(json_equal(x, before[1]));
    json_decref(x);
    snprintf(path, sizeof(path), "/v1/issues/%s", iss);
    x = get(&d, 200, path);
    assert_true(json_equal(x, before[2]));
    json_decref(x);
    x = get(&d, 200, "/v1/status");
    assert_true(json_equal(x, status0));
    json_decref(x);
    x = changes_since(&d, 0);
    assert_true(json_equal(x, changes0));
    json_decref(x);
    /* New writes continue the log. */
    create(&d, org, "organisations", "{\"name\":\"After restart\",\"kind\":\"other\"}");
    x = get(&d, 200, "/v1/status");
    assert_int_equal(jint(x, "seq"), jint(status0, "seq") + 1);
    json_decref(x);
    assert_int_equal(tu_daemon_stop(&d), 0);
    for (int k = 0; k < 3; k++)
        json_decref(before[k]);
    json_decref(status0);
    json_decref(changes0);
    tu_daemon_cleanup(&d);
}

/* A second node on the same database, or on the same socket, must refuse to start and leave
 * the first one serving. */
static void test_second_instance(void **state)
{
    tu_daemon a, b;
    char *err = NULL, cfg[1024];
    int code = -1;
    json_t *r;
    struct stat sb;
    (void)state;

    assert_int_equal(tu_daemon_init(&a, "first", 0, NULL), 0);
    assert_int_equal(tu_daemon_start(&a), 0);
    assert_int_equal(tu_daemon_init(&b, "first", 0, NULL), 0);

    /* Same database, other socket. */
    snprintf(cfg, sizeof(cfg), "[node]\nrole = region\nid = first\ndb = %s\n[api]\nsocket = %s\n",
             a.db, b.sock);
    assert_int_equal(tu_write_file(b.config, cfg), 0);
    assert_int_equal(tu_run_sangamd(&code, &err, b.dir, "--config", b.config, 10000), 0);
    print_message("second on same db: exit %d: %s", code, err);
    assert_int_not_equal(code, 0);
    assert_non_null(strstr(err, a.db));
    free(err);
    assert_int_not_equal(stat(b.sock, &sb), 0);
    r = get(&a, 200, "/healthz");
    json_decref(r);
    r = req(&a, 201, "POST", "/v1/organisations", "{\"name\":\"Still here\",\"kind\":\"other\"}");
    json_decref(r);

    /* Same socket, other database. */
    snprintf(cfg, sizeof(cfg), "[node]\nrole = region\nid = first\ndb = %s\n[api]\nsocket = %s\n",
             b.db, a.sock);
    assert_int_equal(tu_write_file(b.config, cfg), 0);
    assert_int_equal(tu_run_sangamd(&code, &err, b.dir, "--config", b.config, 10000), 0);
    print_message("second on same socket: exit %d: %s", code, err);
    assert_int_not_equal(code, 0);
    assert_non_null(strstr(err, a.sock));
    free(err);
    assert_int_equal(stat(a.sock, &sb), 0);
    r = req(&a, 201, "POST", "/v1/organisations",
            "{\"name\":\"Still serving\",\"kind\":\"other\"}");
    json_decref(r);

    /* And the same database under another node id is refused even with the first stopped. */
    assert_int_equal(tu_daemon_stop(&a), 0);
    snprintf(cfg, sizeof(cfg), "[node]\nrole = region\nid = second\ndb = %s\n[api]\nsocket = %s\n",
             a.db, b.sock);
    assert_int_equal(tu_write_file(b.config, cfg), 0);
    assert_int_equal(tu_run_sangamd(&code, &err, b.dir, "--config", b.config, 10000), 0);
    print_message("other node id on the db: exit %d: %s", code, err);
    assert_int_not_equal(code, 0);
    assert_non_null(strstr(err, "first"));
    free(err);
    tu_daemon_cleanup(&b);
    tu_daemon_cleanup(&a);
}

/* The child of test_kill9: creates records as fast as it can and writes "table id\n" to fd for
 * every 201, until the node stops answering. */
static void burst_writer(tu_daemon *d, int fd, const char *member)
{
    char body[256], line[128];
    for (int k = 0; k < 100000; k++) {
        tu_resp r;
        const char *table = k % 2 ? "issues" : "organisations";
        char path[64];
        int n;
        if (k % 2)
            snprintf(body, sizeof(body),
                     "{\"raised_by\":\"%s\",\"category\":\"other\",\"title\":\"Burst %d\"}", member,
                     k);
        else
            snprintf(body, sizeof(body), "{\"name\":\"Burst %d\",\"kind\":\"other\"}", k);
        snprintf(path, sizeof(path), "/v1/%s", table);
        if (tu_http(&r, d, 0, "POST", path, JSON_CT, body, strlen(body)) < 0)
            break;
        if (r.status == 201 && r.json != NULL) {
            n = snprintf(line, sizeof(line), "%s %s\n", table, jstr(r.json, "id"));
            if (write(fd, line, (size_t)n) != n) {
                tu_resp_free(&r);
                break;
            }
        }
        tu_resp_free(&r);
    }
}

static void test_kill9_during_writes(void **state)
{
    tu_daemon d;
    char member[32], *acked = NULL;
    size_t len = 0, cap = 0;
    int pfd[2], status, lines = 0;
    pid_t child;
    sqlite3 *db;
    sqlite3_stmt *stmt;
    (void)state;

    assert_int_equal(tu_daemon_init(&d, "crash", 0, NULL), 0);
    assert_int_equal(tu_daemon_start(&d), 0);
    create(&d, member, "members", "{\"name\":\"Burst Raiser\",\"kind\":\"staff\"}");
    assert_int_equal(pipe(pfd), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(pfd[0]);
        burst_writer(&d, pfd[1], member);
        close(pfd[1]);
        _exit(0);
    }
    close(pfd[1]);
    /* Let some writes be acknowledged, then pull the plug mid-burst. */
    for (;;) {
        char chunk[4096];
        ssize_t n;
        if (lines >= 60 && d.pid > 0)
            tu_daemon_kill(&d);
        n = read(pfd[0], chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (len + (size_t)n + 1 > cap) {
            cap = (len + (size_t)n + 1) * 2;
            acked = realloc(acked, cap);
            assert_non_null(acked);
        }
        memcpy(acked + len, chunk, (size_t)n);
        len += (size_t)n;
        acked[len] = '\0';
        for (ssize_t k = 0; k < n; k++)
            lines += chunk[k] == '\n';
    }
    close(pfd[0]);
    tu_daemon_kill(&d);
    assert_int_equal(waitpid(child, &status, 0), child);
    print_message("%d writes acknowledged before kill -9\n", lines);
    assert_true(lines >= 60);

    /* The restart replaces the stale socket file and finds every acknowledged write. */
    assert_int_equal(tu_daemon_start(&d), 0);
    {
        char *save = NULL, *line = strtok_r(acked, "\n", &save);
        int found = 0;
        for (; line != NULL; line = strtok_r(NULL, "\n", &save)) {
            char table[32], id[40], path[128];
            json_t *r;
            assert_int_equal(sscanf(line, "%31s %39s", table, id), 2);
            snprintf(path, sizeof(path), "/v1/%s/%s", table, id);
            r = get(&d, 200, path);
            json_decref(r);
            found++;
        }
        assert_int_equal(found, lines);
    }
    free(acked);
    assert_int_equal(tu_daemon_stop(&d), 0);

    /* The database is sound, and every row has its change-log insert. */
    assert_int_equal(sqlite3_open_v2(d.db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(stmt, 0), "ok");
    sqlite3_finalize(stmt);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &stmt, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_DONE);
    sqlite3_finalize(stmt);
    assert_int_equal(
        sqlite3_prepare_v2(db,
                           "SELECT (SELECT count(*) FROM organisations) + "
                           "(SELECT count(*) FROM issues) + (SELECT count(*) FROM members), "
                           "(SELECT count(*) FROM sg_changes WHERE op = 'insert')",
                           -1, &stmt, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(stmt, 0), sqlite3_column_int64(stmt, 1));
    assert_true(sqlite3_column_int64(stmt, 0) >= lines + 1);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    tu_daemon_cleanup(&d);
}

int main(void)
{
    const struct CMUnitTest api[] = {
        cmocka_unit_test(test_health_and_status),
        cmocka_unit_test(test_socket_mode),
        cmocka_unit_test(test_tcp_listen),
        cmocka_unit_test(test_organisations_crud),
        cmocka_unit_test(test_members_crud),
        cmocka_unit_test(test_sessions_and_attendance),
        cmocka_unit_test(test_issues_and_updates),
        cmocka_unit_test(test_create_refusals),
        cmocka_unit_test(test_update_refusals),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_list_filters),
        cmocka_unit_test(test_list_paging),
        cmocka_unit_test(test_changes_log),
        cmocka_unit_test(test_changes_same_value_patch),
        cmocka_unit_test(test_import_success),
        cmocka_unit_test(test_import_bom_aliases),
        cmocka_unit_test(test_import_refusals),
        cmocka_unit_test(test_import_representative_without_org),
        cmocka_unit_test(test_import_rows_are_lines),
        cmocka_unit_test(test_import_line_edges),
    };
    const struct CMUnitTest framing[] = {
        cmocka_unit_test(test_frame_bare_cr),
        cmocka_unit_test(test_frame_bare_lf),
        cmocka_unit_test(test_frame_obs_fold),
        cmocka_unit_test(test_frame_transfer_encoding),
        cmocka_unit_test(test_frame_nul),
        cmocka_unit_test(test_frame_head_too_big),
        cmocka_unit_test(test_frame_body_too_big),
        cmocka_unit_test(test_frame_smuggling_after_empty_lines),
        cmocka_unit_test(test_frame_pipelined),
        cmocka_unit_test(test_frame_keep_alive),
    };
    const struct CMUnitTest process[] = {
        cmocka_unit_test(test_bad_config),           cmocka_unit_test(test_sigterm),
        cmocka_unit_test(test_sigterm_after_hangup), cmocka_unit_test(test_restart_keeps_data),
        cmocka_unit_test(test_second_instance),      cmocka_unit_test(test_kill9_during_writes),
    };
    int failed = 0;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    failed += cmocka_run_group_tests_name("api", api, api_setup, api_teardown);
    failed += cmocka_run_group_tests_name("framing", framing, api_setup, api_teardown);
    failed += cmocka_run_group_tests_name("process", process, NULL, NULL);
    curl_global_cleanup();
    return failed == 0 ? 0 : 1;
}
