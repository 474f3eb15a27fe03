/*
 * fuzz_csv.c - libFuzzer target for CSV import of members (server/import.c): the parser
 * (sg_import_parse, libcsv in strict mode behind it) and the all-or-nothing import on a store.
 *
 * Besides what the sanitizers catch, these properties are checked and abort() when broken, so
 * the fuzzer reports the input (abort is this harness's; the server never aborts on input):
 *   1. sg_import_parse keeps its contract (import.h): on success, one {"line", "fields"} per
 *      data row, lines in file order and within the file, fields holding only importable member
 *      columns with the right JSON types, trimmed, enums in lower case, null only for a row that
 *      has a problem listed; problems well formed and at most SG_IMPORT_MAX_PROBLEMS; on failure
 *      one of the documented codes and no rows;
 *   2. a problem found by the parse always fails the import (nothing is imported past it);
 *   3. a dry run never promises what the import then refuses: when ?dry_run=1 says "checked n",
 *      the real import succeeds with n ids (docs/API.md: a dry run "only checks");
 *   4. an import either adds exactly its rows or nothing, and leaves no transaction open;
 *   5. problem lists come in line order.
 *
 * The store is a real database in a private temporary directory, created on first use, holding
 * one organisation that rows may refer to, and recreated every STORE_RESET_RUNS inputs so it
 * stays small. synchronous=OFF: durability is not under test and fsync would dominate.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "import.h"
#include "store.h"

#define STORE_RESET_RUNS 2000

#define FUZZ_NAME "fuzz_csv.c"
#include "fuzz_harness.h"

/* The store, (re)created with one organisation; its id goes to org_id. The node makes its own
 * ids, so seeds name it with the placeholder ORG (see expand_org), and any other id is an
 * unknown reference. */
static sg_store *store(char org_id[32])
{
    static char org[32];
    sg_err err = {0};
    json_t *fields, *rec = NULL;

    if (H.st != NULL && H.runs < STORE_RESET_RUNS) {
        memcpy(org_id, org, sizeof(org));
        return H.st;
    }
    harness_fresh_store();
    fields = json_pack("{s:s, s:s}", "name", "Fuzz Org", "kind", "other");
    if (fields == NULL ||
        sg_store_create(&rec, H.st, sg_rectype_find("organisations", -1), fields, 0, &err) < 0) {
        fprintf(stderr, "fuzz_csv: seed organisation: %s\n", err.msg);
        abort();
    }
    snprintf(org, sizeof(org), "%s", json_string_value(json_object_get(rec, "id")));
    json_decref(rec);
    json_decref(fields);
    H.runs = 0;
    memcpy(org_id, org, sizeof(org));
    return H.st;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char org[32];
    (void)argc;
    (void)argv;
    store(org);
    return 0;
}

/* The input with every "ORG" replaced by the store's organisation id, so that seeds can name an
 * organisation that exists. New buffer (caller frees), length in *out_len. */
static char *expand_org(const uint8_t *data, size_t size, const char *org, size_t *out_len)
{
    size_t olen = strlen(org), n = 0, cap = size + 1;
    char *out;

    for (size_t i = 0; i + 3 <= size; i++)
        if (memcmp(data + i, "ORG", 3) == 0)
            cap += olen;
    out = malloc(cap);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < size;) {
        if (i + 3 <= size && memcmp(data + i, "ORG", 3) == 0) {
            memcpy(out + n, org, olen);
            n += olen;
            i += 3;
        } else {
            out[n++] = (char)data[i++];
        }
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}

/* 1 if problems (an array) names row line. */
static int has_problem_at(json_t *problems, json_int_t line)
{
    size_t i;
    json_t *p;
    json_array_foreach(problems, i, p)
    {
        if (json_integer_value(json_object_get(p, "row")) == line)
            return 1;
    }
    return 0;
}

/* Property 5 and the shape of each problem. */
static void check_problems(json_t *problems)
{
    size_t i;
    json_t *p;
    json_int_t last = 0;

    require(json_is_array(problems));
    require(json_array_size(problems) <= SG_IMPORT_MAX_PROBLEMS);
    json_array_foreach(problems, i, p)
    {
        json_t *col = json_object_get(p, "column");
        json_int_t row = json_integer_value(json_object_get(p, "row"));
        require(json_object_size(p) == 3);
        require(json_is_integer(json_object_get(p, "row")) && row >= 1);
        require(col != NULL && (json_is_null(col) || json_is_string(col)));
        require(json_is_string(json_object_get(p, "message")));
        require(json_string_length(json_object_get(p, "message")) > 0);
        require(row >= last);
        last = row;
    }
}

/* Property 1 for a successful parse. */
static void check_rows(json_t *rows, json_t *problems, const char *csv, size_t len)
{
    const sg_rectype *rt = sg_rectype_find("members", -1);
    json_int_t lines = 1, last = 1;
    size_t i;
    json_t *row;

    /* Lines end with LF, CRLF or a lone CR (old Mac exports): libcsv ends rows at each. */
    for (size_t k = 0; k < len; k++)
        lines += csv[k] == '\n' || (csv[k] == '\r' && (k + 1 == len || csv[k + 1] != '\n'));
    require(json_is_array(rows));
    require(json_array_size(rows) <= SG_IMPORT_MAX_ROWS);
    check_problems(problems);
    json_array_foreach(rows, i, row)
    {
        json_t *line = json_object_get(row, "line"), *fields = json_object_get(row, "fields"), *v;
        const char *key;

        require(json_object_size(row) == 2);
        require(json_is_integer(line));
        require(json_integer_value(line) >= 2 && json_integer_value(line) <= lines);
        require(json_integer_value(line) >= last);
        last = json_integer_value(line);
        require(fields != NULL);
        if (json_is_null(fields)) {
            require(json_array_size(problems) >= SG_IMPORT_MAX_PROBLEMS ||
                    has_problem_at(problems, json_integer_value(line)));
            continue;
        }
        require(json_is_object(fields));
        json_object_foreach(fields, key, v)
        {
            const sg_field *f = sg_rectype_field(rt, key, -1);
            require(f != NULL && !(f->flags & SG_F_SERVER));
            if (f->type == SG_FT_INT) {
                require(json_is_integer(v));
            } else {
                const char *s = json_string_value(v);
                size_t n = json_string_length(v);
                require(s != NULL && n > 0);
                require(s[0] != ' ' && s[0] != '\t' && s[n - 1] != ' ' && s[n - 1] != '\t');
                if (f->type == SG_FT_ENUM)
                    for (size_t k = 0; k < n; k++)
                        require(!isupper((unsigned char)s[k]));
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char org[32];
    sg_store *st = store(org);
    json_t *rows = NULL, *problems = NULL, *out = NULL, *iprob = NULL;
    sg_err err = {0};
    size_t len = 0;
    char *csv;
    int parse_rc, rc, parse_problems;
    int64_t members0, seq0;

    H.runs++;
    csv = expand_org(data, size, org, &len);
    if (csv == NULL)
        return 0;

    /* Property 1. */
    parse_rc = sg_import_parse(&rows, &problems, csv, len, &err);
    if (parse_rc == 0) {
        check_rows(rows, problems, csv, len);
    } else {
        require(rows == NULL);
        require(parse_rc == SG_ECSV || parse_rc == SG_ETOOBIG || parse_rc == SG_ENOMEM);
        require(err.code == parse_rc && err.msg[0] != '\0');
        if (problems != NULL)
            check_problems(problems);
    }
    parse_problems = parse_rc < 0 || json_array_size(problems) > 0;
    json_decref(rows);
    json_decref(problems);

    /* Properties 2-5: a dry run, then the import itself. */
    members0 = sg_store_count(st, sg_rectype_find("members", -1));
    seq0 = sg_store_seq(st);
    sg_err_clear(&err);
    rc = sg_import_members(&out, &iprob, st, csv, len, 1, &err);
    require(sqlite3_get_autocommit(sg_store_db(st)) != 0);
    require(sg_store_seq(st) == seq0);
    if (parse_problems)
        require(rc < 0); /* property 2 */
    if (rc < 0) {
        require(out == NULL && err.msg[0] != '\0');
        if (iprob != NULL)
            check_problems(iprob);
        json_decref(iprob);
        free(csv);
        return 0;
    }
    {
        json_int_t checked = json_integer_value(json_object_get(out, "checked"));
        json_t *ids;

        require(json_object_size(out) == 1 && checked >= 0);
        json_decref(out);
        out = NULL;
        sg_err_clear(&err);
        rc = sg_import_members(&out, &iprob, st, csv, len, 0, &err);
        if (rc < 0)
            fprintf(stderr, "fuzz_csv: dry run checked %lld rows, import refused: %s\n",
                    (long long)checked, err.msg);
        require(rc == 0); /* property 3 */
        ids = json_object_get(out, "ids");
        require(json_integer_value(json_object_get(out, "imported")) == checked);
        require((json_int_t)json_array_size(ids) == checked);
        require(sg_store_count(st, sg_rectype_find("members", -1)) == members0 + checked);
        require(sqlite3_get_autocommit(sg_store_db(st)) != 0); /* property 4 */
        json_decref(out);
    }
    json_decref(iprob);
    free(csv);
    return 0;
}
