/*
 * fuzz_json.c - libFuzzer target for the JSON request bodies of the node's API: decoding
 * (jansson, as api.c's parse_body calls it), record validation (server/record.c,
 * proto/records.c), the special bodies (attendance, issue updates, tokens, invites, restore,
 * quarantine, backup) and the store writes behind them - in process, without HTTP or sockets.
 *
 * The first byte picks the route (ROUTES below, modulo their number); the rest is the body,
 * sent as application/json through sg_api_handle over the local socket (no token needed), as
 * sangamd would after reading the request. The store holds one organisation, member, session
 * and issue; seeds name them with the placeholders ORG, MEM, SES and ISS, which the harness
 * replaces by their ids (the node makes its own ids), and the PATCH and sub-resource routes
 * address them.
 *
 * Besides what the sanitizers catch, these properties are checked and abort() when broken, so
 * the fuzzer reports the input (abort is this harness's; the server never aborts on input):
 *   1. every answer is one JSON object (none for 204), and an error answer is exactly
 *      {"error": {"code": <the code sg_api_handle reported>, "message": ...}};
 *   2. a body never causes a server error: no 5xx but 503 (a service this in-process node does
 *      not run: backups, invites), and no transaction is left open;
 *   3. the validator agrees with the database, the authority: a record body that sg_store_check
 *      accepts is written (201 for a create, 200 for an update), unless it conflicts with
 *      another row (409: attendance is unique per session and member) or, for an update, one
 *      of the named cross-field rules of schema.sql refuses it in words, never SQLite's; and
 *      the stored record holds exactly the values given;
 *   4. sg_record_check, for every record type, mode and permission, answers 0 or one of its
 *      documented codes with a message, and allowing node-managed fields only widens what it
 *      accepts.
 *
 * The database lives in a private temporary directory, created on first use and removed at
 * exit, recreated every STORE_RESET_RUNS inputs so that it stays small. synchronous=OFF:
 * durability is not under test here.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "api.h"
#include "http.h"
#include "log.h"
#include "record.h"
#include "store.h"

#define STORE_RESET_RUNS 3000

#define FUZZ_NAME "fuzz_json.c"
#include "fuzz_harness.h"

/* The routes a body can go to. kind is the record type for a plain create ('c') or update
 * ('u') of a record, whose body property 3 checks; path may name a seeded record. */
static const struct route {
    const char *method, *path, *role;
    int mode;
    const char *table;
} ROUTES[] = {
    {"POST", "/v1/organisations", "region", 'c', "organisations"},
    {"POST", "/v1/members", "region", 'c', "members"},
    {"POST", "/v1/sessions", "region", 'c', "sessions"},
    {"POST", "/v1/attendance", "region", 'c', "attendance"},
    {"POST", "/v1/issues", "region", 'c', "issues"},
    {"POST", "/v1/issue_updates", "region", 'c', "issue_updates"},
    {"PATCH", "/v1/organisations/ORG", "region", 'u', "organisations"},
    {"PATCH", "/v1/members/MEM", "region", 'u', "members"},
    {"PATCH", "/v1/sessions/SES", "region", 'u', "sessions"},
    {"PATCH", "/v1/issues/ISS", "region", 'u', "issues"},
    {"POST", "/v1/sessions/SES/attendance", "region", 0, NULL},
    {"POST", "/v1/issues/ISS/updates", "region", 0, NULL},
    {"POST", "/v1/tokens", "hub", 0, NULL},
    {"POST", "/v1/invites", "hub", 0, NULL},
    {"POST", "/v1/restore", "region", 0, NULL},
    {"POST", "/v1/quarantine/retry", "hub", 0, NULL},
    {"POST", "/v1/backup", "region", 0, NULL},
};
#define NROUTES (sizeof(ROUTES) / sizeof(ROUTES[0]))

/* The seeded records' ids, by placeholder. */
static struct {
    const char *name;  /* placeholder in seeds and ROUTES */
    const char *table; /* its record type */
    char id[32];
} SEEDS[] = {
    {"ORG", "organisations", ""},
    {"MEM", "members", ""},
    {"SES", "sessions", ""},
    {"ISS", "issues", ""},
};
#define NSEEDS (sizeof(SEEDS) / sizeof(SEEDS[0]))

/* Creates one seeded record from JSON text (placeholders expanded); aborts on failure. */
static void seed(size_t which, const char *json);

/* Opens a fresh store with the seeded records (removing the previous one). */
static sg_store *store(void)
{
    if (H.st != NULL && H.runs < STORE_RESET_RUNS)
        return H.st;
    harness_fresh_store();
    H.runs = 0;
    seed(0, "{\"name\": \"Fuzz Org\", \"kind\": \"other\"}");
    seed(1, "{\"name\": \"Asha\", \"kind\": \"representative\", \"organisation_id\": \"ORG\"}");
    seed(2, "{\"kind\": \"launch\", \"title\": \"Launch\", \"held_on\": \"2024-01-02\"}");
    seed(3, "{\"raised_by\": \"MEM\", \"category\": \"market\", \"title\": \"Prices\"}");
    return H.st;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sg_log_set_level("error"); /* a token made per input would flood the fuzzer's output */
    store();
    return 0;
}

/* src (len bytes) with every placeholder replaced by its seeded id: a new NUL-terminated buffer
 * (caller frees), its length in *out_len. */
static char *expand(const char *src, size_t len, size_t *out_len)
{
    size_t cap = len + 1, n = 0;
    char *out;

    for (size_t i = 0; i + 3 <= len; i++)
        for (size_t k = 0; k < NSEEDS; k++)
            if (memcmp(src + i, SEEDS[k].name, 3) == 0)
                cap += strlen(SEEDS[k].id);
    out = malloc(cap);
    require(out != NULL);
    for (size_t i = 0; i < len;) {
        size_t k = NSEEDS;
        if (i + 3 <= len)
            for (k = 0; k < NSEEDS && memcmp(src + i, SEEDS[k].name, 3) != 0; k++)
                ;
        if (k < NSEEDS) {
            memcpy(out + n, SEEDS[k].id, strlen(SEEDS[k].id));
            n += strlen(SEEDS[k].id);
            i += 3;
        } else {
            out[n++] = src[i++];
        }
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}

static void seed(size_t which, const char *json)
{
    size_t len;
    char *text = expand(json, strlen(json), &len);
    json_t *fields = json_loads(text, 0, NULL), *rec = NULL;
    sg_err err = {0};

    if (fields == NULL ||
        sg_store_create(&rec, H.st, sg_rectype_find(SEEDS[which].table, -1), fields, 0, &err) < 0) {
        fprintf(stderr, "%s: seed %s: %s\n", FUZZ_NAME, SEEDS[which].name, err.msg);
        abort();
    }
    snprintf(SEEDS[which].id, sizeof(SEEDS[which].id), "%s",
             json_string_value(json_object_get(rec, "id")));
    json_decref(rec);
    json_decref(fields);
    free(text);
}

/* Property 1. */
static void check_response(const sg_api_resp *resp)
{
    require(resp->status >= 200 && resp->status <= 599);
    if (resp->status == 204) {
        require(resp->body == NULL || resp->body_len == 0);
        return;
    }
    require(resp->content_type == NULL);
    require_json_answer(resp);
}

/* Property 4 on one decoded body. */
static void check_record_rules(json_t *body)
{
    for (size_t i = 0; sg_rectypes[i] != NULL; i++) {
        for (int m = 0; m < 2; m++) {
            int accepted = 0;
            for (int server = 0; server < 2; server++) {
                sg_err err = {0};
                int rc = sg_record_check(sg_rectypes[i], body, m ? 'u' : 'c', server, &err);
                if (rc == 0) {
                    accepted = 1;
                    continue;
                }
                require(rc == SG_ETYPE || rc == SG_EIMMUTABLE || rc == SG_EUNKNOWN ||
                        rc == SG_EREQUIRED || rc == SG_EVALIDATE);
                require(err.code == rc && err.msg[0] != '\0');
                require(!accepted); /* with node-managed fields allowed it accepts no less */
            }
        }
    }
}

/* Property 3 for a record route whose body sg_store_check accepted. */
static void check_written(const struct route *r, json_t *body, const sg_api_resp *resp)
{
    json_t *rec, *v;
    const char *key;

    if (resp->status == 409) { /* uniqueness (attendance) is a matter of other rows */
        require(strcmp(resp->error_code, "conflict") == 0);
        return;
    }
    if (r->mode == 'u' && resp->status == 422) {
        const char *msg = strstr(resp->body, "\"message\"");
        require(strcmp(resp->error_code, "invalid_value") == 0);
        require(msg != NULL && strstr(msg, "constraint") == NULL);
        return;
    }
    if (resp->status != (r->mode == 'c' ? 201 : 200))
        fprintf(stderr, "%s %s: %d %s", r->method, r->path, resp->status, resp->body);
    require(resp->status == (r->mode == 'c' ? 201 : 200));
    rec = json_loadb(resp->body, resp->body_len, 0, NULL);
    require(rec != NULL);
    json_object_foreach(body, key, v)
    {
        require(json_equal(json_object_get(rec, key), v));
    }
    json_decref(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sg_store *st = store();
    const struct route *r = &ROUTES[size > 0 ? data[0] % NROUTES : 0];
    sg_api api = {.st = st, .role = r->role};
    sg_http_req *req = calloc(1, sizeof(*req));
    json_t *body = NULL;
    size_t len = 0, path_len;
    char *path, *text;
    int checked = 0;
    sg_api_resp resp;

    H.runs++;
    require(req != NULL);
    text = expand(size > 0 ? (const char *)data + 1 : "", size > 0 ? size - 1 : 0, &len);
    path = expand(r->path, strlen(r->path), &path_len);
    require(path_len < sizeof(req->url));
    memcpy(req->url, path, path_len + 1);
    req->method = r->method;
    req->path = req->url;
    req->query = req->url + path_len; /* "" */
    snprintf(req->content_type, sizeof(req->content_type), "application/json");
    req->local = 1;
    req->body = text;
    req->body_len = len;
    req->keep_alive = 1;

    body = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    if (json_is_object(body)) {
        check_record_rules(body); /* property 4 */
        if (r->table != NULL) {
            sg_err err = {0};
            checked =
                sg_store_check(st, sg_rectype_find(r->table, -1), body, r->mode, 0, &err) == 0;
        }
    }

    sg_api_handle(&api, req, &resp);
    check_response(&resp);                                 /* property 1 */
    require(resp.status < 500 || resp.status == 503);      /* property 2 */
    require(sqlite3_get_autocommit(sg_store_db(st)) != 0); /* property 2 */
    if (checked)
        check_written(r, body, &resp); /* property 3 */

    sg_api_resp_free(&resp);
    json_decref(body);
    free(path);
    free(text);
    free(req);
    return 0;
}
