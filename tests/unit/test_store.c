/*
 * test_store.c - the store (server/store.c): schema and its agreement with the record table,
 * change capture by triggers (including writes from another connection, as the sqlite3 shell
 * would make), rollbacks, migrations and identity checks, records and paging.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store.h"

typedef struct fixture {
    char dir[256];
    char path[300];
    sg_store *st;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    sg_err err = {0};
    snprintf(f->dir, sizeof(f->dir), "/tmp/sg_store_XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/node.db", f->dir);
    if (sg_store_open(&f->st, f->path, "bundelkhand", "region", &err) < 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[400];
    sg_store_close(f->st);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s;
    int64_t v = -1;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static char *query_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s;
    char *v = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
        v = strdup((const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return v;
}

static json_t *create(fixture *f, const char *table, const char *json)
{
    json_t *fields = json_loads(json, 0, NULL), *rec = NULL;
    sg_err err = {0};
    assert_non_null(fields);
    if (sg_store_create(&rec, f->st, sg_rectype_find(table, -1), fields, 0, &err) < 0)
        fail_msg("create %s %s: %s", table, json, err.msg);
    json_decref(fields);
    return rec;
}

static const char *id_of(json_t *rec)
{
    return json_string_value(json_object_get(rec, "id"));
}

static void test_pragmas(void **state)
{
    fixture *f = *state;
    sqlite3 *db = sg_store_db(f->st);
    char *mode = query_text(db, "PRAGMA journal_mode");
    assert_string_equal(mode, "wal");
    free(mode);
    assert_int_equal(query_int(db, "PRAGMA synchronous"), 2); /* FULL */
    assert_int_equal(query_int(db, "PRAGMA foreign_keys"), 1);
    assert_int_equal(query_int(db, "PRAGMA user_version"), SG_SCHEMA_VERSION);
}

/* schema.sql and records.c describe the same tables: same columns, and INTEGER exactly for
 * integer fields. */
static void test_schema_matches_records(void **state)
{
    fixture *f = *state;
    sqlite3 *db = sg_store_db(f->st);
    for (size_t i = 0; sg_rectypes[i] != NULL; i++) {
        const sg_rectype *rt = sg_rectypes[i];
        char sql[128];
        sqlite3_stmt *s;
        size_t n = 0;
        snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)", rt->table);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
        while (sqlite3_step(s) == SQLITE_ROW) {
            const char *col = (const char *)sqlite3_column_text(s, 1);
            const char *type = (const char *)sqlite3_column_text(s, 2);
            const sg_field *fd = sg_rectype_field(rt, col, -1);
            n++;
            if (fd == NULL) {
                if (strcmp(col, "id") && strcmp(col, "region") && strcmp(col, "created_at") &&
                    strcmp(col, "updated_at"))
                    fail_msg("%s.%s is in schema.sql but not in records.c", rt->table, col);
                continue;
            }
            assert_string_equal(type, fd->type == SG_FT_INT ? "INTEGER" : "TEXT");
        }
        sqlite3_finalize(s);
        assert_int_equal(n, rt->nfields + 4);
    }
}

static void test_capture_insert_update_delete(void **state)
{
    fixture *f = *state;
    sqlite3 *db = sg_store_db(f->st);
    const sg_rectype *orgs = sg_rectype_find("organisations", -1);
    json_t *org = create(f, "organisations", "{\"name\":\"RSETI Banda\",\"kind\":\"training\"}");
    json_t *patch, *rec = NULL, *items = NULL;
    sg_err err = {0};
    int64_t next;
    char *data;

    assert_int_equal(sg_store_seq(f->st), 1);
    data = query_text(db, "SELECT data FROM sg_changes WHERE seq = 1");
    assert_non_null(strstr(data, "\"name\":\"RSETI Banda\""));
    assert_non_null(strstr(data, "\"region\":\"bundelkhand\""));
    free(data);

    /* An update records only what changed. */
    patch = json_pack("{s:s}", "district", "Banda");
    assert_int_equal(sg_store_update(&rec, f->st, orgs, id_of(org), patch, 0, &err), 0);
    json_decref(rec);
    json_decref(patch);
    assert_int_equal(sg_store_seq(f->st), 2);
    data = query_text(db, "SELECT data FROM sg_changes WHERE seq = 2");
    assert_non_null(strstr(data, "\"district\":\"Banda\""));
    assert_null(strstr(data, "RSETI"));
    free(data);

    /* An update that changes nothing records nothing (raw SQL: no updated_at bump). */
    assert_int_equal(sqlite3_exec(db, "UPDATE organisations SET district = 'Banda'", 0, 0, 0),
                     SQLITE_OK);
    assert_int_equal(sg_store_seq(f->st), 2);

    assert_int_equal(sg_store_delete(f->st, orgs, id_of(org), &err), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sg_changes WHERE seq = 3 AND op = "
                                   "'delete' AND data IS NULL"),
                     1);
    assert_int_equal(sg_store_changes(&items, &next, f->st, 0, 10, &err), 0);
    assert_int_equal(json_array_size(items), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 2), "op")),
                        "delete");
    assert_int_equal(next, 0);
    json_decref(items);
    json_decref(org);
}

static void test_rollback_leaves_no_entry(void **state)
{
    fixture *f = *state;
    sg_err err = {0};
    int64_t before = sg_store_seq(f->st);
    json_t *rec;

    assert_int_equal(sg_store_begin(f->st, &err), 0);
    rec = create(f, "organisations", "{\"name\":\"NABARD\",\"kind\":\"financial\"}");
    json_decref(rec);
    assert_int_equal(sg_store_seq(f->st), before + 1);
    sg_store_rollback(f->st);
    assert_int_equal(query_int(sg_store_db(f->st), "SELECT count(*) FROM organisations"), 0);
    assert_int_equal(query_int(sg_store_db(f->st), "SELECT count(*) FROM sg_changes"), 0);
}

/* A second connection, as the sqlite3 shell would open, is captured too, with HLCs that keep
 * increasing. */
static void test_capture_from_other_connection(void **state)
{
    fixture *f = *state;
    sqlite3 *shell;
    json_t *org = create(f, "organisations", "{\"name\":\"DIC\",\"kind\":\"government\"}");

    assert_int_equal(sqlite3_open(f->path, &shell), SQLITE_OK);
    assert_int_equal(sqlite3_exec(shell,
                                  "INSERT INTO organisations(id, region, name, kind) "
                                  "VALUES ('SHELL1', 'bundelkhand', 'Shell org', 'other')",
                                  0, 0, 0),
                     SQLITE_OK);
    /* Identity columns are guarded in the database itself. */
    assert_int_not_equal(
        sqlite3_exec(shell, "UPDATE organisations SET region = 'mirzapur'", 0, 0, 0), SQLITE_OK);
    /* CHECK constraints hold for the shell too. */
    assert_int_not_equal(sqlite3_exec(shell,
                                      "INSERT INTO organisations(id, region, name, kind) "
                                      "VALUES ('SHELL2', 'bundelkhand', 'x', 'bank')",
                                      0, 0, 0),
                         SQLITE_OK);
    sqlite3_close(shell);

    assert_int_equal(query_int(sg_store_db(f->st),
                               "SELECT count(*) FROM sg_changes WHERE pk = 'SHELL1' AND "
                               "origin = 'bundelkhand' AND op = 'insert'"),
                     1);
    assert_int_equal(query_int(sg_store_db(f->st),
                               "SELECT count(*) FROM sg_changes a JOIN sg_changes b ON b.seq = "
                               "a.seq + 1 WHERE b.hlc <= a.hlc"),
                     0);
    json_decref(org);
}

/* Capture off (the hub applying a region's changes) writes no change log on this connection
 * only, and a statement prepared and cached while it was off captures once it is back on: the
 * switch expires prepared statements, and a write through the cache must not slip past the log. */
static void test_capture_off_and_back_on(void **state)
{
    fixture *f = *state;
    sqlite3 *shell;
    json_t *rec;
    sg_err err = {0};
    int64_t before = sg_store_seq(f->st);

    sg_store_capture(f->st, 0);
    assert_int_equal(sg_store_begin(f->st, &err), 0);
    rec = create(f, "organisations", "{\"name\":\"Uncaptured\",\"kind\":\"other\"}");
    json_decref(rec);
    /* Meanwhile another connection still captures (after this one commits). */
    assert_int_equal(sg_store_commit(f->st, &err), 0);
    assert_int_equal(sqlite3_open(f->path, &shell), SQLITE_OK);
    assert_int_equal(sqlite3_exec(shell,
                                  "INSERT INTO organisations(id, region, name, kind) "
                                  "VALUES ('SHELL9', 'bundelkhand', 'Shell org', 'other')",
                                  0, 0, 0),
                     SQLITE_OK);
    sqlite3_close(shell);
    assert_int_equal(sg_store_seq(f->st), before + 1);
    assert_int_equal(
        query_int(sg_store_db(f->st), "SELECT count(*) FROM sg_changes WHERE pk = 'SHELL9'"), 1);

    /* The same cached insert statement, capture back on: logged. */
    sg_store_capture(f->st, 1);
    rec = create(f, "organisations", "{\"name\":\"Captured\",\"kind\":\"other\"}");
    assert_int_equal(sg_store_seq(f->st), before + 2);
    {
        char sql[200];
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM sg_changes WHERE pk = '%s'", id_of(rec));
        assert_int_equal(query_int(sg_store_db(f->st), sql), 1);
    }
    json_decref(rec);
    assert_int_equal(query_int(sg_store_db(f->st), "SELECT count(*) FROM organisations"), 3);
}

static void test_dropped_trigger_is_restored(void **state)
{
    fixture *f = *state;
    sg_err err = {0};
    assert_int_equal(sqlite3_exec(sg_store_db(f->st), "DROP TRIGGER sg_members_insert", 0, 0, 0),
                     SQLITE_OK);
    sg_store_close(f->st);
    assert_int_equal(sg_store_open(&f->st, f->path, "bundelkhand", "region", &err), 0);
    json_decref(create(f, "members", "{\"name\":\"Sita\",\"kind\":\"entrepreneur\"}"));
    assert_int_equal(
        query_int(sg_store_db(f->st), "SELECT count(*) FROM sg_changes WHERE tbl = 'members'"), 1);
}

static void test_identity_and_version_checks(void **state)
{
    fixture *f = *state;
    sg_store *other = NULL;
    sg_err err = {0};

    assert_int_equal(sg_store_open(&other, f->path, "mirzapur", "region", &err), SG_ECONFIG);
    assert_null(other);
    assert_non_null(strstr(err.msg, "bundelkhand"));

    assert_int_equal(sqlite3_exec(sg_store_db(f->st), "PRAGMA user_version = 99", 0, 0, 0),
                     SQLITE_OK);
    assert_int_equal(sg_store_open(&other, f->path, "bundelkhand", "region", &err), SG_ESCHEMA);
    assert_non_null(strstr(err.msg, "99"));
    assert_int_equal(sqlite3_exec(sg_store_db(f->st), "PRAGMA user_version = 1", 0, 0, 0),
                     SQLITE_OK);
}

/* A database written by a version 1 sangamd opens at the current version: the new tables appear,
 * the records stay, capture goes on. */
static void test_migrates_v1_to_current(void **state)
{
    extern const char sg_schema_sql[];
    fixture *f = *state;
    char path[400];
    sqlite3 *db;
    sg_store *st = NULL;
    sg_err err = {0};

    snprintf(path, sizeof(path), "%s/v1.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sg_schema_sql, 0, 0, 0), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO sg_node(one, id, role) VALUES (1, 'hub', 'hub');"
                                  "INSERT INTO sg_regions(region, last_seq) VALUES ('awadh', 7);"
                                  "INSERT INTO organisations(id, region, name, kind) VALUES "
                                  "('O1', 'hub', 'Old org', 'other');"
                                  "PRAGMA user_version = 1;",
                                  0, 0, 0),
                     SQLITE_OK);
    sqlite3_close(db);

    if (sg_store_open(&st, path, "hub", "hub", &err) < 0)
        fail_msg("open v1: %s", err.msg);
    db = sg_store_db(st);
    assert_int_equal(query_int(db, "PRAGMA user_version"), SG_SCHEMA_VERSION);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sg_tokens"), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sg_invites"), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sg_certs"), 0);
    assert_int_equal(query_int(db, "SELECT last_seq FROM sg_regions WHERE region = 'awadh' AND "
                                   "revoked_at IS NULL"),
                     7);
    assert_int_equal(query_int(db, "SELECT count(*) FROM organisations WHERE id = 'O1'"), 1);
    assert_int_equal(
        sqlite3_exec(db, "UPDATE organisations SET name = 'New' WHERE id = 'O1'", 0, 0, 0),
        SQLITE_OK);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sg_changes WHERE pk = 'O1'"), 1);
    sg_store_close(st);
}

static void test_validation_and_references(void **state)
{
    fixture *f = *state;
    const sg_rectype *members = sg_rectype_find("members", -1);
    const sg_rectype *orgs = sg_rectype_find("organisations", -1);
    json_t *rec = NULL, *fields;
    sg_err err = {0};
    int64_t seq = sg_store_seq(f->st);

    fields = json_pack("{s:s, s:s, s:s}", "name", "Ram", "kind", "representative",
                       "organisation_id", "NOSUCHORG");
    assert_int_equal(sg_store_create(&rec, f->st, members, fields, 0, &err), SG_EREFERENCE);
    assert_non_null(strstr(err.msg, "organisation_id"));
    json_decref(fields);

    fields = json_pack("{s:s, s:s}", "name", "Ram", "kind", "representative");
    assert_int_equal(sg_store_create(&rec, f->st, members, fields, 0, &err), SG_EVALIDATE);
    assert_non_null(strstr(err.msg, "representative must name an organisation"));
    json_decref(fields);

    fields = json_pack("{s:s, s:s, s:i}", "name", "Ram", "kind", "staff", "birth_year", 1800);
    assert_int_equal(sg_store_create(&rec, f->st, members, fields, 0, &err), SG_EVALIDATE);
    json_decref(fields);

    fields = json_pack("{s:s, s:s, s:s}", "name", "Ram", "kind", "staff", "id", "MYID");
    assert_int_equal(sg_store_create(&rec, f->st, members, fields, 0, &err), SG_EIMMUTABLE);
    json_decref(fields);

    fields = json_pack("{s:s}", "kind", "staff");
    assert_int_equal(sg_store_create(&rec, f->st, members, fields, 0, &err), SG_EREQUIRED);
    json_decref(fields);

    /* A field with a default (NOT NULL in schema.sql) cannot be null: the check says so in
     * words before SQLite would refuse it with its own message (found by fuzz_json). */
    fields = json_pack("{s:s, s:s, s:n}", "name", "Ram", "kind", "staff", "status");
    assert_int_equal(sg_store_check(f->st, members, fields, 'c', 0, &err), SG_EREQUIRED);
    assert_int_equal(sg_store_create(&rec, f->st, members, fields, 0, &err), SG_EREQUIRED);
    assert_string_equal(err.msg, "status: cannot be null; leave it out for the default (active)");
    json_decref(fields);
    assert_int_equal(sg_store_seq(f->st), seq); /* nothing written */

    /* A referenced organisation cannot be deleted. */
    json_t *org = create(f, "organisations", "{\"name\":\"Bank\",\"kind\":\"financial\"}");
    fields = json_pack("{s:s, s:s, s:O}", "name", "Ram", "kind", "representative",
                       "organisation_id", json_object_get(org, "id"));
    assert_int_equal(sg_store_create(&rec, f->st, members, fields, 0, &err), 0);
    json_decref(fields);
    json_decref(rec);
    assert_int_equal(sg_store_delete(f->st, orgs, id_of(org), &err), SG_ECONFLICT);
    assert_int_equal(sg_store_delete(f->st, orgs, "NOPE", &err), SG_ENOTFOUND);
    json_decref(org);
}

static void test_paging_and_filters(void **state)
{
    fixture *f = *state;
    const sg_rectype *members = sg_rectype_find("members", -1);
    char prev[64] = "";
    char *after = NULL;
    int seen = 0, pages = 0;

    for (int i = 0; i < 25; i++) {
        char json[128];
        snprintf(json, sizeof(json),
                 "{\"name\":\"Member %02d\",\"kind\":\"entrepreneur\",\"district\":\"%s\"}", i,
                 i % 5 == 0 ? "Banda" : "Jhansi");
        json_decref(create(f, "members", json));
    }
    do {
        sg_query q = {0};
        json_t *items = NULL, *row;
        char *next = NULL;
        size_t i;
        sg_err err = {0};
        q.limit = 10;
        q.after = after;
        assert_int_equal(sg_store_list(&items, &next, f->st, members, &q, &err), 0);
        json_array_foreach(items, i, row)
        {
            assert_true(strcmp(id_of(row), prev) > 0); /* ordered, no repeats */
            snprintf(prev, sizeof(prev), "%s", id_of(row));
            seen++;
        }
        json_decref(items);
        free(after);
        after = next;
        pages++;
    } while (after != NULL);
    assert_int_equal(seen, 25);
    assert_int_equal(pages, 3);

    {
        sg_query q = {0};
        json_t *items = NULL;
        char *next = NULL;
        sg_err err = {0};
        q.eq = json_pack("{s:s}", "district", "Banda");
        q.q = "member 1";
        q.limit = 100;
        assert_int_equal(sg_store_list(&items, &next, f->st, members, &q, &err), 0);
        assert_int_equal(json_array_size(items), 2); /* Members 10 and 15 */
        json_decref(items);
        json_decref(q.eq);
        assert_null(next);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pragmas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_matches_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_insert_update_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_leaves_no_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_from_other_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_off_and_back_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dropped_trigger_is_restored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_and_version_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrates_v1_to_current, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validation_and_references, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paging_and_filters, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
