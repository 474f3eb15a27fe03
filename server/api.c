/*
 * api.c - routes of the node API (docs/API.md) over the store.
 *
 * Every write runs in one store transaction (BEGIN IMMEDIATE ... COMMIT), so a request either
 * happens whole, with its change-log entries, or not at all. Errors from lower layers keep their
 * code and message; this layer picks the HTTP status from the code alone (sg_api_status_of), so
 * the same failure always answers the same way.
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>
#include <time.h>

#include <openssl/crypto.h>

#include "apply.h"
#include "auth.h"
#include "backup.h"
#include "config.h"
#include "enroll.h"
#include "hub.h"
#include "import.h"
#include "log.h"
#include "record.h"
#include "store_int.h"
#include "report.h"
#include "uplink.h"

#define LIST_DEFAULT 50
#define LIST_MAX     1000
#define CHANGES_MAX  10000
#define ATTEND_MAX   1000

int sg_api_status_of(int code)
{
    switch (code) {
    case SG_EHTTP:
    case SG_EFORMAT:
    case SG_EINVAL:
        return 400;
    case SG_ENOTFOUND:
        return 404;
    case SG_EMETHOD:
        return 405;
    case SG_ECONFLICT:
        return 409;
    case SG_ETOOBIG:
        return 413;
    case SG_EUNSUPPORTED:
        return 415;
    case SG_EUNKNOWN:
    case SG_ETYPE:
    case SG_EVALIDATE:
    case SG_EREQUIRED:
    case SG_EIMMUTABLE:
    case SG_EREFERENCE:
    case SG_ECSV:
        return 422;
    case SG_EBUSY:
    case SG_ECONFIG: /* the node is not set up for this (a hub without [tls] ca_key) */
        return 503;
    case SG_EAUTH:
        return 403;
    case SG_EFULL:
        return 507;
    default:
        return 500;
    }
}

/* Serialises obj (stolen) as the response body with status. */
static void respond(sg_api_resp *out, int status, json_t *obj)
{
    char *text;

    out->status = status;
    out->body = NULL;
    out->body_len = 0;
    if (obj == NULL) {
        if (status != 204) {
            out->status = 500;
            out->error_code = "out_of_memory";
            out->body = strdup("{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of "
                               "memory\"}}\n");
            out->body_len = out->body ? strlen(out->body) : 0;
        }
        return;
    }
    text = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(obj);
    if (text == NULL) {
        respond(out, 500, NULL);
        return;
    }
    {
        size_t len = strlen(text);
        char *grown = realloc(text, len + 2);
        if (grown == NULL) {
            free(text);
            respond(out, 500, NULL);
            return;
        }
        out->body = grown;
        out->body_len = len + 1;
    }
    out->body[out->body_len - 1] = '\n';
    out->body[out->body_len] = '\0';
}

static void respond_error_extra(sg_api_resp *out, int code, const char *msg, json_t *extra)
{
    json_t *e = json_pack("{s:s, s:s}", "code", sg_strerror_name(code), "message",
                          msg && msg[0] ? msg : sg_strerror(code));
    if (e == NULL) /* message was not valid UTF-8: keep the code, say so */
        e = json_pack("{s:s, s:s}", "code", sg_strerror_name(code), "message", sg_strerror(code));
    if (e != NULL && extra != NULL)
        json_object_set(e, "rows", extra);
    respond(out, sg_api_status_of(code), e ? json_pack("{s:o}", "error", e) : NULL);
    out->error_code = sg_strerror_name(code);
}

void sg_api_error(sg_api_resp *out, int code, const char *msg)
{
    respond_error_extra(out, code, msg, NULL);
}

static void respond_err(sg_api_resp *out, const sg_err *err)
{
    sg_api_error(out, err->code ? err->code : SG_EDB, err->msg);
}

void sg_api_resp_free(sg_api_resp *out)
{
    free(out->body);
    out->body = NULL;
}

/* Parses the request body as a JSON object into *out. */
static int parse_body(json_t **out, const sg_http_req *req, sg_err *err)
{
    json_error_t je;
    const char *ct = req->content_type;
    int oom = 0;

    *out = NULL;
    if (ct[0] != '\0' && strncasecmp(ct, "application/json", 16) != 0)
        return sg_err_set(err, SG_EUNSUPPORTED,
                          "Content-Type '%.60s' is not accepted here; send application/json", ct);
    if (req->body_len == 0)
        return sg_err_set(err, SG_EFORMAT, "request body is empty; send a JSON object");
    /* Checked parse: jansson may drop a byte of a string when an allocation fails (store.c). */
    *out = store_json_loadb(&oom, req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (*out == NULL && oom)
        return sg_err_set(err, SG_ENOMEM, "out of memory reading the request body; retry");
    if (*out == NULL)
        return sg_err_set(err, SG_EFORMAT, "body is not valid JSON: %s at line %d column %d",
                          je.text, je.line, je.column);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return sg_err_set(err, SG_EFORMAT, "body must be a JSON object");
    }
    return 0;
}

/* Splits path into up to max segments (pointers into buf). Returns the count, or -1. */
static int split_path(const char *path, char *buf, size_t cap, char **seg, int max)
{
    int n = 0;
    char *p;

    if (path[0] != '/' || strlen(path) >= cap)
        return -1;
    memcpy(buf, path + 1, strlen(path));
    p = buf;
    while (*p != '\0') {
        char *slash = strchr(p, '/');
        if (n == max)
            return -1;
        seg[n++] = p;
        if (slash == NULL)
            break;
        *slash = '\0';
        p = slash + 1;
        if (*p == '\0')
            return -1; /* trailing slash */
    }
    return n;
}

static int method_is(const sg_http_req *req, const char *m)
{
    return req->method != NULL && strcmp(req->method, m) == 0;
}

static void not_allowed(sg_api_resp *out, const sg_http_req *req, const char *allowed)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "%s is not allowed here; use %s", req->method ? req->method : "?",
             allowed);
    sg_api_error(out, SG_EMETHOD, msg);
}

/* Adds the sub-lists a single-record view carries: attendance of a session, updates of an
 * issue. */
static int add_children(json_t *rec, sg_store *st, const sg_rectype *rt, sg_err *err)
{
    const sg_rectype *child = NULL;
    const char *fk = NULL, *key = NULL;
    sg_query q = {0};
    json_t *items = NULL, *eq;
    char *next = NULL;
    int rc;

    if (strcmp(rt->table, "sessions") == 0) {
        child = sg_rectype_find("attendance", -1);
        fk = "session_id";
        key = "attendance";
    } else if (strcmp(rt->table, "issues") == 0) {
        child = sg_rectype_find("issue_updates", -1);
        fk = "issue_id";
        key = "updates";
    }
    if (child == NULL)
        return 0;
    eq = json_pack("{s:O}", fk, json_object_get(rec, "id"));
    if (eq == NULL)
        return sg_err_set(err, SG_ENOMEM, "out of memory");
    q.eq = eq;
    q.limit = 100000;
    rc = sg_store_list(&items, &next, st, child, &q, err);
    json_decref(eq);
    free(next);
    if (rc < 0)
        return rc;
    if (strcmp(key, "attendance") == 0) {
        json_t *ids = json_array();
        size_t i;
        json_t *row;
        json_array_foreach(items, i, row) json_array_append(ids, json_object_get(row, "member_id"));
        json_decref(items);
        items = ids;
    }
    json_object_set_new(rec, key, items);
    return 0;
}

static void handle_get_one(sg_api *api, const sg_rectype *rt, const char *id, sg_api_resp *out)
{
    sg_err err = {0};
    json_t *rec = NULL;

    if (sg_store_get(&rec, api->st, rt, id, &err) < 0 || add_children(rec, api->st, rt, &err) < 0) {
        json_decref(rec);
        respond_err(out, &err);
        return;
    }
    respond(out, 200, rec);
}

/* Appends items as CSV rows (columns: id, region, the type's fields, created_at, updated_at). */
static void csv_items(sbuf *b, const sg_rectype *rt, json_t *items, int header)
{
    static const char *const lead[] = {"id", "region"}, *const tail[] = {"created_at",
                                                                         "updated_at"};
    json_t *it;
    size_t i;
    if (header) {
        for (size_t k = 0; k < 2; k++)
            sbuf_addf(b, "%s,", lead[k]);
        for (size_t k = 0; k < rt->nfields; k++)
            sbuf_addf(b, "%s,", rt->fields[k].name);
        sbuf_add(b, "created_at,updated_at\r\n");
    }
    json_array_foreach(items, i, it)
    {
        for (size_t k = 0; k < 2 + rt->nfields + 2; k++) {
            const char *name = k < 2                 ? lead[k]
                               : k < 2 + rt->nfields ? rt->fields[k - 2].name
                                                     : tail[k - 2 - rt->nfields];
            json_t *v = json_object_get(it, name);
            if (k > 0)
                sbuf_add(b, ",");
            if (json_is_string(v))
                sg_csv_cell(b, json_string_value(v));
            else if (json_is_integer(v))
                sbuf_addf(b, "%lld", (long long)json_integer_value(v));
        }
        sbuf_add(b, "\r\n");
    }
}

static void handle_list(sg_api *api, const sg_rectype *rt, const sg_http_req *req, sg_api_resp *out)
{
    sg_err err = {0};
    json_t *params = NULL, *items = NULL, *v;
    const char *key;
    char *next = NULL;
    sg_query q = {0};
    int rc, csv = 0;

    rc = sg_http_query_parse(&params, req->query, &err);
    if (rc < 0)
        goto fail;
    q.limit = LIST_DEFAULT;
    json_object_foreach(params, key, v)
    {
        const char *s = json_string_value(v);
        if (strcmp(key, "limit") == 0) {
            char *end;
            long n = strtol(s, &end, 10);
            if (*s == '\0' || *end != '\0' || n < 1 || n > LIST_MAX) {
                rc = sg_err_set(&err, SG_EVALIDATE, "limit: expected 1..%d", LIST_MAX);
                goto fail;
            }
            q.limit = (int)n;
        } else if (strcmp(key, "after") == 0) {
            if (!sg_record_id_valid(s, strlen(s))) {
                rc = sg_err_set(&err, SG_EVALIDATE, "after: not a record id");
                goto fail;
            }
            q.after = s;
        } else if (strcmp(key, "format") == 0) {
            if (strcmp(s, "csv") != 0 && strcmp(s, "json") != 0) {
                rc = sg_err_set(&err, SG_EVALIDATE, "format: json or csv");
                goto fail;
            }
            csv = s[0] == 'c';
        } else if (strcmp(key, "q") == 0) {
            q.q = s;
        } else if (strcmp(key, "region") == 0) {
            q.region = s;
        } else if (strcmp(key, "from") == 0 || strcmp(key, "to") == 0) {
            if (!sg_date_valid(s, strlen(s))) {
                rc = sg_err_set(&err, SG_EVALIDATE, "%s: not a date in the form YYYY-MM-DD", key);
                goto fail;
            }
            if (key[0] == 'f')
                q.from = s;
            else
                q.to = s;
        } else if (sg_rectype_field(rt, key, -1) == NULL && strcmp(key, "id") != 0) {
            rc = sg_err_set(&err, SG_EUNKNOWN,
                            "unknown filter '%.60s' for %s (filters: the record's fields, "
                            "region, q, from, to, limit, after)",
                            key, rt->table);
            goto fail;
        }
    }
    {
        /* Move the equality filters into their own object. */
        json_t *eq = json_object();
        json_object_foreach(params, key, v)
        {
            if (strcmp(key, "limit") && strcmp(key, "after") && strcmp(key, "q") &&
                strcmp(key, "region") && strcmp(key, "from") && strcmp(key, "to") &&
                strcmp(key, "format"))
                json_object_set(eq, key, v);
        }
        if (json_object_get(eq, "id") != NULL) {
            json_decref(eq);
            rc = sg_err_set(&err, SG_EUNKNOWN, "filter by id: use GET /v1/%s/ID", rt->table);
            goto fail;
        }
        q.eq = eq;
        if (csv) {
            /* Every matching record, page by page (a page's size is limit's). */
            sbuf b;
            char after[SG_ID_MAX + 1] = "";
            sbuf_init(&b);
            if (q.after)
                snprintf(after, sizeof(after), "%s", q.after);
            for (int page = 0; rc == 0; page++) {
                q.after = after[0] ? after : NULL;
                rc = sg_store_list(&items, &next, api->st, rt, &q, &err);
                if (rc < 0)
                    break;
                csv_items(&b, rt, items, page == 0);
                json_decref(items);
                items = NULL;
                if (next == NULL)
                    break;
                snprintf(after, sizeof(after), "%s", next);
                free(next);
                next = NULL;
            }
            json_decref(eq);
            json_decref(params);
            if (rc < 0 || b.failed) {
                sbuf_free(&b);
                if (rc < 0)
                    respond_err(out, &err);
                else
                    respond(out, 500, NULL);
                return;
            }
            out->status = 200;
            out->content_type = "text/csv; charset=utf-8";
            out->body = b.s ? b.s : strdup("");
            out->body_len = out->body ? strlen(out->body) : 0;
            return;
        }
        rc = sg_store_list(&items, &next, api->st, rt, &q, &err);
        json_decref(eq);
    }
    if (rc < 0)
        goto fail;
    json_decref(params);
    respond(out, 200, json_pack("{s:o, s:s?}", "items", items, "next", next));
    free(next);
    return;

fail:
    json_decref(params);
    respond_err(out, &err);
}

/* Runs a write under one transaction; the write's result record goes to the response. */
static void handle_create(sg_api *api, const sg_rectype *rt, const sg_http_req *req,
                          sg_api_resp *out)
{
    sg_err err = {0};
    json_t *body = NULL, *rec = NULL;

    if (parse_body(&body, req, &err) < 0)
        goto fail;
    if (sg_store_begin(api->st, &err) < 0)
        goto fail;
    if (sg_store_create(&rec, api->st, rt, body, 0, &err) < 0) {
        sg_store_rollback(api->st);
        goto fail;
    }
    if (sg_store_commit(api->st, &err) < 0)
        goto fail;
    json_decref(body);
    respond(out, 201, rec);
    return;

fail:
    json_decref(rec);
    json_decref(body);
    respond_err(out, &err);
}

static void handle_update(sg_api *api, const sg_rectype *rt, const char *id, const sg_http_req *req,
                          sg_api_resp *out)
{
    sg_err err = {0};
    json_t *body = NULL, *rec = NULL;

    if (rt->flags & SG_RT_APPEND_ONLY) {
        char msg[128];
        snprintf(msg, sizeof(msg), "%s records are history: they can be added, not changed",
                 rt->singular);
        sg_api_error(out, SG_EMETHOD, msg);
        return;
    }
    if (parse_body(&body, req, &err) < 0)
        goto fail;
    if (sg_store_begin(api->st, &err) < 0)
        goto fail;
    if (sg_store_update(&rec, api->st, rt, id, body, 0, &err) < 0) {
        sg_store_rollback(api->st);
        goto fail;
    }
    if (sg_store_commit(api->st, &err) < 0)
        goto fail;
    json_decref(body);
    respond(out, 200, rec);
    return;

fail:
    json_decref(rec);
    json_decref(body);
    respond_err(out, &err);
}

static void handle_delete(sg_api *api, const sg_rectype *rt, const char *id, sg_api_resp *out)
{
    sg_err err = {0};

    if (strcmp(rt->table, "issue_updates") == 0) {
        sg_api_error(out, SG_EMETHOD, "an issue's history is never deleted");
        return;
    }

    if (sg_store_begin(api->st, &err) < 0)
        goto fail;
    if (sg_store_delete(api->st, rt, id, &err) < 0) {
        sg_store_rollback(api->st);
        goto fail;
    }
    if (sg_store_commit(api->st, &err) < 0)
        goto fail;
    respond(out, 204, NULL);
    return;

fail:
    respond_err(out, &err);
}

/* POST /v1/sessions/ID/attendance {"member_ids": [...]} */
static void handle_attend(sg_api *api, const char *session_id, const sg_http_req *req,
                          sg_api_resp *out)
{
    const sg_rectype *rt_sess = sg_rectype_find("sessions", -1);
    const sg_rectype *rt_att = sg_rectype_find("attendance", -1);
    sg_err err = {0};
    json_t *body = NULL, *ids, *added = json_array(), *already = json_array(), *v, *rec = NULL;
    size_t i;

    if (added == NULL || already == NULL) {
        sg_err_set(&err, SG_ENOMEM, "out of memory");
        goto fail;
    }
    if (parse_body(&body, req, &err) < 0)
        goto fail;
    ids = json_object_get(body, "member_ids");
    if (json_object_size(body) != 1 || !json_is_array(ids) || json_array_size(ids) == 0 ||
        json_array_size(ids) > ATTEND_MAX) {
        sg_err_set(&err, SG_EVALIDATE,
                   "body must be {\"member_ids\": [1..%d member ids]} and nothing else",
                   ATTEND_MAX);
        goto fail;
    }
    if (sg_store_begin(api->st, &err) < 0)
        goto fail;
    if (sg_store_get(&rec, api->st, rt_sess, session_id, &err) < 0)
        goto rollback;
    json_decref(rec);
    rec = NULL;
    json_array_foreach(ids, i, v)
    {
        sg_query q = {0};
        json_t *eq, *found = NULL, *fields;
        char *next = NULL;
        int rc;

        if (!json_is_string(v)) {
            sg_err_set(&err, SG_ETYPE, "member_ids[%zu]: expected a member id string", i);
            goto rollback;
        }
        eq = json_pack("{s:s, s:O}", "session_id", session_id, "member_id", v);
        q.eq = eq;
        q.limit = 1;
        rc = sg_store_list(&found, &next, api->st, rt_att, &q, &err);
        json_decref(eq);
        free(next);
        if (rc < 0)
            goto rollback;
        if (json_array_size(found) > 0) {
            json_array_append(already, v);
            json_decref(found);
            continue;
        }
        json_decref(found);
        fields = json_pack("{s:s, s:O}", "session_id", session_id, "member_id", v);
        rc = sg_store_create(&rec, api->st, rt_att, fields, 0, &err);
        json_decref(fields);
        if (rc < 0) {
            sg_err_wrap(&err, "member_ids[%zu]", i);
            goto rollback;
        }
        json_decref(rec);
        rec = NULL;
        json_array_append(added, v);
    }
    if (sg_store_commit(api->st, &err) < 0)
        goto fail;
    json_decref(body);
    respond(
        out, 200,
        json_pack("{s:s, s:o, s:o}", "session_id", session_id, "added", added, "already", already));
    return;

rollback:
    sg_store_rollback(api->st);
fail:
    json_decref(body);
    json_decref(added);
    json_decref(already);
    respond_err(out, &err);
}

/* POST /v1/issues/ID/updates {"note", "status", "assigned_to", "author"} */
static void handle_issue_update(sg_api *api, const char *issue_id, const sg_http_req *req,
                                sg_api_resp *out)
{
    const sg_rectype *rt_issue = sg_rectype_find("issues", -1);
    const sg_rectype *rt_upd = sg_rectype_find("issue_updates", -1);
    sg_err err = {0};
    json_t *body = NULL, *issue = NULL, *patch = NULL, *upd = NULL, *rec = NULL, *v;
    const char *key, *status, *old_status;
    char today[16];

    if (parse_body(&body, req, &err) < 0)
        goto fail;
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "note") && strcmp(key, "status") && strcmp(key, "assigned_to") &&
            strcmp(key, "author")) {
            sg_err_set(&err, SG_EUNKNOWN,
                       "an issue update has no field '%.60s' (fields: note, status, "
                       "assigned_to, author)",
                       key);
            goto fail;
        }
    }
    if (json_object_get(body, "note") == NULL && json_object_get(body, "status") == NULL &&
        json_object_get(body, "assigned_to") == NULL) {
        sg_err_set(&err, SG_EREQUIRED, "give at least one of note, status, assigned_to");
        goto fail;
    }
    if (sg_store_begin(api->st, &err) < 0)
        goto fail;
    if (sg_store_get(&issue, api->st, rt_issue, issue_id, &err) < 0)
        goto rollback;
    old_status = json_string_value(json_object_get(issue, "status"));
    status = json_string_value(json_object_get(body, "status"));
    if (json_object_get(body, "status") != NULL && status == NULL) {
        sg_err_set(&err, SG_ETYPE, "status: expected a string");
        goto rollback;
    }

    patch = json_object();
    upd = json_pack("{s:s}", "issue_id", issue_id);
    if (patch == NULL || upd == NULL) {
        sg_err_set(&err, SG_ENOMEM, "out of memory");
        goto rollback;
    }
    if (status != NULL && old_status != NULL && strcmp(status, old_status) != 0) {
        int closing = strcmp(status, "resolved") == 0 || strcmp(status, "closed") == 0;
        int was_closed = strcmp(old_status, "resolved") == 0 || strcmp(old_status, "closed") == 0;
        json_object_set(patch, "status", json_object_get(body, "status"));
        if (closing && !was_closed) {
            sg_today(today);
            json_object_set_new(patch, "resolved_on", json_string(today));
        } else if (!closing) {
            json_object_set_new(patch, "resolved_on", json_null());
        }
        json_object_set_new(upd, "status_from", json_string(old_status));
        json_object_set(upd, "status_to", json_object_get(body, "status"));
    } else if (status != NULL) {
        /* Validate even when unchanged so a typo is not silently accepted. */
        json_t *probe = json_pack("{s:O}", "status", json_object_get(body, "status"));
        int rc = sg_record_check(rt_issue, probe, 'u', 1, &err);
        json_decref(probe);
        if (rc < 0)
            goto rollback;
    }
    if ((v = json_object_get(body, "assigned_to")) != NULL &&
        !json_equal(v, json_object_get(issue, "assigned_to"))) {
        /* The history records each new assignment, as it records each status change. */
        json_object_set(patch, "assigned_to", v);
        json_object_set(upd, "assigned_to", v);
    }
    if ((v = json_object_get(body, "note")) != NULL)
        json_object_set(upd, "note", v);
    if ((v = json_object_get(body, "author")) != NULL)
        json_object_set(upd, "author", v);

    if (json_object_size(patch) == 0 && json_object_get(upd, "note") == NULL) {
        sg_err_set(&err, SG_EVALIDATE,
                   "nothing would change: the issue already has that status and assignment; "
                   "add a note or change something");
        goto rollback;
    }
    if (sg_store_update(&rec, api->st, rt_issue, issue_id, patch, SG_WRITE_SERVER, &err) < 0)
        goto rollback;
    json_decref(rec);
    rec = NULL;
    if (sg_store_create(&rec, api->st, rt_upd, upd, SG_WRITE_SERVER, &err) < 0)
        goto rollback;
    json_decref(rec);
    rec = NULL;
    if (sg_store_commit(api->st, &err) < 0)
        goto fail;
    json_decref(issue);
    json_decref(patch);
    json_decref(upd);
    json_decref(body);
    if (sg_store_get(&rec, api->st, rt_issue, issue_id, &err) < 0 ||
        add_children(rec, api->st, rt_issue, &err) < 0) {
        json_decref(rec);
        respond_err(out, &err);
        return;
    }
    respond(out, 201, rec);
    return;

rollback:
    sg_store_rollback(api->st);
fail:
    json_decref(issue);
    json_decref(patch);
    json_decref(upd);
    json_decref(body);
    respond_err(out, &err);
}

static void handle_import(sg_api *api, const sg_http_req *req, sg_api_resp *out)
{
    sg_err err = {0};
    json_t *params = NULL, *result = NULL, *problems = NULL, *v;
    const char *key;
    int dry_run = 0;

    if (sg_http_query_parse(&params, req->query, &err) < 0) {
        respond_err(out, &err);
        return;
    }
    json_object_foreach(params, key, v)
    {
        if (strcmp(key, "dry_run") == 0) {
            dry_run = strcmp(json_string_value(v), "0") != 0;
        } else {
            json_decref(params);
            sg_api_error(out, SG_EUNKNOWN, "import takes only the parameter dry_run");
            return;
        }
    }
    json_decref(params);
    if (req->content_type[0] != '\0' && strncasecmp(req->content_type, "text/csv", 8) != 0) {
        sg_api_error(out, SG_EUNSUPPORTED, "send the file as Content-Type: text/csv");
        return;
    }
    if (sg_import_members(&result, &problems, api->st, req->body ? req->body : "", req->body_len,
                          dry_run, &err) < 0) {
        respond_error_extra(out, err.code, err.msg, problems);
        json_decref(problems);
        return;
    }
    respond(out, 200, result);
}

static void handle_status(sg_api *api, sg_api_resp *out)
{
    json_t *counts = json_object(), *st;
    for (size_t i = 0; sg_rectypes[i] != NULL; i++)
        json_object_set_new(counts, sg_rectypes[i]->table,
                            json_integer(sg_store_count(api->st, sg_rectypes[i])));
    st = json_pack("{s:s, s:s, s:s, s:i, s:I, s:o}", "node", sg_store_node_id(api->st), "role",
                   api->role, "version", SANGAM_VERSION, "schema_version", SG_SCHEMA_VERSION, "seq",
                   (json_int_t)sg_store_seq(api->st), "counts", counts);
    if (st != NULL && api->uplink != NULL)
        json_object_set_new(st, "replication", sg_uplink_status(api->uplink));
    else if (st != NULL && strcmp(api->role, "region") == 0)
        json_object_set_new(st, "replication",
                            json_pack("{s:s, s:b}", "state", "standalone", "connected", 0));
    if (st != NULL && strcmp(api->role, "hub") == 0)
        json_object_set_new(st, "regions", sg_hub_regions(api->hub, api->st));
    respond(out, 200, st);
}

/* GET /v1/quarantine?region=R&state=held|applied|discarded&limit=N */
static void handle_quarantine_list(sg_api *api, const sg_http_req *req, sg_api_resp *out)
{
    sg_err err = {0};
    json_t *params = NULL, *items = NULL, *v;
    const char *key, *region = NULL, *state = NULL;
    long limit = 1000;

    if (sg_http_query_parse(&params, req->query, &err) < 0)
        goto fail;
    json_object_foreach(params, key, v)
    {
        const char *s = json_string_value(v);
        if (strcmp(key, "region") == 0) {
            region = s;
        } else if (strcmp(key, "state") == 0) {
            if (strcmp(s, "held") && strcmp(s, "applied") && strcmp(s, "discarded")) {
                sg_err_set(&err, SG_EVALIDATE, "state: not one of held|applied|discarded");
                goto fail;
            }
            state = s;
        } else if (strcmp(key, "limit") == 0) {
            char *end;
            limit = strtol(s, &end, 10);
            if (*s == '\0' || *end != '\0' || limit < 1 || limit > 10000) {
                sg_err_set(&err, SG_EVALIDATE, "limit: expected 1..10000");
                goto fail;
            }
        } else {
            sg_err_set(&err, SG_EUNKNOWN, "unknown parameter '%.40s' (region, state, limit)", key);
            goto fail;
        }
    }
    if (sg_apply_quarantine_list(&items, api->st, region, state, (int)limit, &err) < 0)
        goto fail;
    json_decref(params);
    respond(out, 200, json_pack("{s:o}", "items", items));
    return;

fail:
    json_decref(params);
    respond_err(out, &err);
}

/* POST /v1/quarantine/retry|discard {"region": R} */
static void handle_quarantine_action(sg_api *api, const char *action, const sg_http_req *req,
                                     sg_api_resp *out)
{
    sg_err err = {0};
    json_t *body = NULL;
    const char *region;
    uint32_t n = 0;
    int rc;

    if (parse_body(&body, req, &err) < 0)
        goto fail;
    region = json_string_value(json_object_get(body, "region"));
    if (json_object_size(body) != 1 || region == NULL ||
        !sg_region_id_valid(region, strlen(region))) {
        sg_err_set(&err, SG_EVALIDATE, "body must be {\"region\": \"REGION\"}");
        goto fail;
    }
    rc = strcmp(action, "retry") == 0 ? sg_apply_quarantine_retry(&n, api->st, region, &err)
                                      : sg_apply_quarantine_discard(&n, api->st, region, &err);
    if (rc < 0)
        goto fail;
    respond(out, 200,
            json_pack("{s:s, s:s, s:i}", "region", region, "action", action, "changes", (int)n));
    json_decref(body);
    return;

fail:
    json_decref(body);
    respond_err(out, &err);
}

/* POST /v1/invites {"region": R, "expires"?: "24h", "address"?: "host:port"} (hub). */
static void handle_invite(sg_api *api, const sg_http_req *req, sg_api_resp *out)
{
    sg_err err = {0};
    json_t *body = NULL, *v;
    const char *key, *region = NULL, *expires = "24h", *addr = NULL;
    char text[SG_TOKEN_MAX + 1], expires_at[32];
    int64_t ttl_ms = 0;
    sg_token t;

    if (parse_body(&body, req, &err) < 0)
        goto fail;
    json_object_foreach(body, key, v)
    {
        const char *s = json_string_value(v);
        if (strcmp(key, "region") != 0 && strcmp(key, "expires") != 0 &&
            strcmp(key, "address") != 0) {
            sg_err_set(&err, SG_EUNKNOWN, "unknown field '%.40s' (region, expires, address)", key);
            goto fail;
        }
        if (s == NULL) {
            sg_err_set(&err, SG_ETYPE, "%s: expected a string", key);
            goto fail;
        }
        if (key[0] == 'r')
            region = s;
        else if (key[0] == 'e')
            expires = s;
        else
            addr = s;
    }
    if (region == NULL) {
        sg_err_set(&err, SG_EREQUIRED, "region: required");
        goto fail;
    }
    if (sg_config_duration(&ttl_ms, expires) < 0) {
        sg_err_set(&err, SG_EVALIDATE, "expires: '%.40s' is not a duration (30m, 24h, 7d)",
                   expires);
        goto fail;
    }
    if (addr != NULL) {
        char host[256];
        int port;
        if (sg_config_split_addr(addr, host, sizeof(host), &port) < 0) {
            sg_err_set(&err, SG_EVALIDATE, "address: '%.64s' is not host:port", addr);
            goto fail;
        }
    }
    if (api->hub == NULL) {
        sg_err_set(&err, SG_EBUSY, "the hub's replication listener is not running");
        goto fail;
    }
    if (sg_hub_invite(&t, expires_at, api->hub, region, ttl_ms, addr, &err) < 0 ||
        sg_token_format(text, sizeof(text), &t) < 0)
        goto fail;
    OPENSSL_cleanse(t.secret, sizeof(t.secret));
    respond(out, 201,
            json_pack("{s:s, s:s, s:s, s:s}", "token", text, "region", region, "expires_at",
                      expires_at, "hub", t.hub));
    OPENSSL_cleanse(text, sizeof(text));
    json_decref(body);
    return;

fail:
    json_decref(body);
    respond_err(out, &err);
}

/* POST /v1/backup {"path": "/abs/new-file"}: an online backup; GET /v1/backup: how it went. */
static void handle_backup(sg_api *api, const sg_http_req *req, sg_api_resp *out)
{
    sg_err err = {0};
    json_t *body = NULL;
    const char *path;

    if (method_is(req, "GET")) {
        respond(out, 200, sg_backup_status(api->backup));
        return;
    }
    if (!method_is(req, "POST")) {
        not_allowed(out, req, "GET, POST");
        return;
    }
    if (parse_body(&body, req, &err) < 0) {
        respond_err(out, &err);
        return;
    }
    path = json_string_value(json_object_get(body, "path"));
    if (json_object_size(body) != 1 || path == NULL) {
        json_decref(body);
        sg_api_error(out, SG_EVALIDATE, "body must be {\"path\": \"/absolute/new/file\"}");
        return;
    }
    if (api->loop == NULL || api->db_path == NULL) {
        json_decref(body);
        sg_api_error(out, SG_EBUSY, "online backups are not available here");
        return;
    }
    if (sg_backup_start(&api->backup, api->loop, api->db_path, path, &err) < 0) {
        json_decref(body);
        respond_err(out, &err);
        return;
    }
    json_decref(body);
    respond(out, 202, sg_backup_status(api->backup));
}

void sg_api_close(sg_api *api)
{
    sg_backup_free(api->backup);
    api->backup = NULL;
}

/* POST /v1/restore {"force"?: bool} (region): restore this region's rows from the hub. */
static void handle_restore(sg_api *api, const sg_http_req *req, sg_api_resp *out)
{
    sg_err err = {0};
    json_t *body = NULL, *force;

    if (req->body_len > 0 && parse_body(&body, req, &err) < 0) {
        respond_err(out, &err);
        return;
    }
    force = json_object_get(body, "force");
    if (json_object_size(body) > (force ? 1u : 0u) || (force && !json_is_boolean(force))) {
        json_decref(body);
        sg_api_error(out, SG_EVALIDATE, "body must be {} or {\"force\": true|false}");
        return;
    }
    if (api->uplink == NULL) {
        json_decref(body);
        sg_api_error(out, SG_EINVAL,
                     strcmp(api->role, "hub") == 0
                         ? "the hub has no hub to restore from"
                         : "this region replicates to no hub ([hub] address is not set)");
        return;
    }
    if (sg_uplink_restore(api->uplink, json_is_true(force), &err) < 0) {
        json_decref(body);
        respond_err(out, &err);
        return;
    }
    json_decref(body);
    respond(out, 202, json_pack("{s:s}", "restore", "requested"));
}

/* POST /v1/regions/R/revoke (hub). */
static void handle_revoke(sg_api *api, const char *region, sg_api_resp *out)
{
    sg_err err = {0};
    char at[32] = "";
    int dropped = 0;

    if (!sg_region_id_valid(region, strlen(region)) || strcmp(region, "hub") == 0) {
        sg_api_error(out, SG_EVALIDATE, "not a region id");
        return;
    }
    if (api->hub == NULL) {
        sg_api_error(out, SG_EBUSY, "the hub's replication listener is not running");
        return;
    }
    if (sg_hub_revoke(&dropped, api->hub, region, &err) < 0) {
        respond_err(out, &err);
        return;
    }
    sg_enroll_revoked(api->st, region, at);
    respond(out, 200,
            json_pack("{s:s, s:s, s:i}", "region", region, "revoked_at", at, "dropped", dropped));
}

static void handle_changes(sg_api *api, const sg_http_req *req, sg_api_resp *out)
{
    sg_err err = {0};
    json_t *params = NULL, *items = NULL, *v;
    const char *key;
    long long since = 0, limit = 1000;
    int64_t next = 0;

    if (sg_http_query_parse(&params, req->query, &err) < 0)
        goto fail;
    json_object_foreach(params, key, v)
    {
        const char *s = json_string_value(v);
        char *end;
        long long n;
        if (strcmp(key, "since") != 0 && strcmp(key, "limit") != 0) {
            sg_err_set(&err, SG_EUNKNOWN, "unknown parameter '%.40s' (since, limit)", key);
            goto fail;
        }
        n = strtoll(s, &end, 10);
        if (*s == '\0' || *end != '\0' || n < 0) {
            sg_err_set(&err, SG_EVALIDATE, "%.20s: expected a whole number >= 0", key);
            goto fail;
        }
        if (strcmp(key, "since") == 0) {
            since = n;
        } else if (strcmp(key, "limit") == 0) {
            if (n < 1 || n > CHANGES_MAX) {
                sg_err_set(&err, SG_EVALIDATE, "limit: expected 1..%d", CHANGES_MAX);
                goto fail;
            }
            limit = n;
        } else {
            sg_err_set(&err, SG_EUNKNOWN, "unknown parameter '%.40s' (since, limit)", key);
            goto fail;
        }
    }
    if (sg_store_changes(&items, &next, api->st, since, (int)limit, &err) < 0)
        goto fail;
    json_decref(params);
    respond(out, 200,
            next ? json_pack("{s:o, s:I}", "items", items, "next", (json_int_t)next)
                 : json_pack("{s:o, s:n}", "items", items, "next"));
    return;

fail:
    json_decref(params);
    respond_err(out, &err);
}

/* A hub's API over the network needs a token (auth.h): a viewer may read (GET), an admin may
 * do anything. The Unix socket is the local operator's. /healthz and /readyz are open. 0 to go
 * on, or -1 with the refusal in out (401 for no or a bad token, 403 for a viewer writing). */
static int gate(sg_api *api, const sg_http_req *req, int public_route, sg_api_resp *out)
{
    sg_err err = {0};
    sg_role role;
    if (req->local || public_route || strcmp(api->role, "hub") != 0)
        return 0;
    if (sg_auth_check(&role, api->st, req->authorization, &err) < 0) {
        sg_api_error(out, err.code, err.msg);
        if (err.code == SG_EAUTH)
            out->status = 401;
        return -1;
    }
    if (role != SG_ROLE_ADMIN && !method_is(req, "GET") && !method_is(req, "HEAD")) {
        sg_api_error(out, SG_EAUTH, "this token is a viewer's: it may read, not change anything");
        return -1;
    }
    return 0;
}

/* GET /readyz: the database answers, its disk has room, and (hub) the CA can sign. */
static void handle_readyz(sg_api *api, sg_api_resp *out)
{
    int db_ok = sg_store_seq(api->st) >= 0;
    json_t *checks = json_pack("{s:b}", "database", db_ok);
    int ok = db_ok;
    if (api->db_path != NULL) {
        struct statvfs vfs;
        char dir[4096], *slash;
        snprintf(dir, sizeof(dir), "%s", api->db_path);
        slash = strrchr(dir, '/');
        if (slash != NULL)
            *(slash == dir ? slash + 1 : slash) = '\0';
        /* 64 MiB free, or the next import or catch-up may fail half-way. */
        int disk_ok = statvfs(dir, &vfs) == 0 &&
                      (unsigned long long)vfs.f_bavail * vfs.f_frsize >= 64ull * 1024 * 1024;
        json_object_set_new(checks, "disk", json_boolean(disk_ok));
        ok = ok && disk_ok;
    }
    if (api->hub != NULL) {
        int ca_ok = sg_hub_can_enroll(api->hub);
        json_object_set_new(checks, "ca", json_boolean(ca_ok));
    }
    respond(out, ok ? 200 : 503,
            json_pack("{s:s, s:o}", "status", ok ? "ready" : "degraded", "checks", checks));
}

/* "YYYY-MM-DDTHH:MM:SS..." (UTC) as Unix time. */
static int iso_to_unix(const char *s, long long *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (sscanf(s, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *out = (long long)timegm(&tm);
    return 0;
}

/* GET /metrics: the Prometheus text format (version 0.0.4). */
static void handle_metrics(sg_api *api, sg_api_resp *out)
{
    sbuf b;
    json_t *regions = strcmp(api->role, "hub") == 0 ? sg_hub_regions(api->hub, api->st) : NULL;
    json_t *g;
    size_t i;

    sbuf_init(&b);
    sbuf_addf(&b,
              "# HELP sangam_info The node.\n# TYPE sangam_info gauge\n"
              "sangam_info{role=\"%s\",version=\"%s\"} 1\n",
              api->role, SANGAM_VERSION);
    sbuf_addf(&b,
              "# HELP sangam_changes_total Changes this node's log has given out.\n"
              "# TYPE sangam_changes_total counter\nsangam_changes_total %lld\n",
              (long long)sg_store_seq(api->st));
    if (regions != NULL) {
        static const struct {
            const char *name, *type, *help, *key;
        } m[] = {
            {"sangam_region_connected", "gauge", "1 while the region is connected.", "connected"},
            {"sangam_region_applied_total", "counter", "Changes applied from the region.",
             "applied"},
            {"sangam_region_cursor", "gauge", "The region's last applied change number.",
             "last_seq"},
            {"sangam_region_lag_changes", "gauge", "Changes the region has that the hub has not.",
             "lag_changes"},
            {"sangam_region_lag_seconds", "gauge", "Age of the oldest change not yet applied.",
             "lag_seconds"},
            {"sangam_region_quarantined", "gauge", "Changes held in quarantine.", "quarantined"},
            {"sangam_region_data_age_seconds", "gauge", "Age of the newest applied change.",
             "data_age_seconds"},
        };
        for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
            sbuf_addf(&b, "# HELP %s %s\n# TYPE %s %s\n", m[k].name, m[k].help, m[k].name,
                      m[k].type);
            json_array_foreach(regions, i, g)
            {
                json_t *v = json_object_get(g, m[k].key);
                double x = json_is_true(v) ? 1 : json_is_number(v) ? json_number_value(v) : 0;
                sbuf_addf(&b, "%s{region=\"%s\"} %g\n", m[k].name,
                          json_string_value(json_object_get(g, "region")), x);
            }
        }
        sbuf_addf(&b, "# HELP sangam_region_revoked 1 for a revoked region.\n"
                      "# TYPE sangam_region_revoked gauge\n");
        json_array_foreach(regions, i, g) sbuf_addf(&b, "sangam_region_revoked{region=\"%s\"} %d\n",
                                                    json_string_value(json_object_get(g, "region")),
                                                    json_object_get(g, "revoked_at") != NULL);
        sbuf_addf(&b, "# HELP sangam_region_last_contact_timestamp_seconds When the region was "
                      "last heard from.\n"
                      "# TYPE sangam_region_last_contact_timestamp_seconds gauge\n");
        json_array_foreach(regions, i, g)
        {
            const char *lc = json_string_value(json_object_get(g, "last_contact"));
            long long at;
            if (lc != NULL && iso_to_unix(lc, &at) == 0)
                sbuf_addf(&b, "sangam_region_last_contact_timestamp_seconds{region=\"%s\"} %lld\n",
                          json_string_value(json_object_get(g, "region")), at);
        }
        sbuf_addf(&b, "# HELP sangam_region_cert_expiry_timestamp_seconds When the region's "
                      "newest certificate expires.\n"
                      "# TYPE sangam_region_cert_expiry_timestamp_seconds gauge\n");
        json_array_foreach(regions, i, g)
        {
            const char *na = json_string_value(json_object_get(g, "cert_not_after"));
            long long at;
            if (na != NULL && iso_to_unix(na, &at) == 0)
                sbuf_addf(&b, "sangam_region_cert_expiry_timestamp_seconds{region=\"%s\"} %lld\n",
                          json_string_value(json_object_get(g, "region")), at);
        }
        json_decref(regions);
    }
    sbuf_addf(&b, "# HELP sangam_api_requests_total API requests answered, by status.\n"
                  "# TYPE sangam_api_requests_total counter\n");
    for (int k = 0; k < SG_API_STATUS_SLOTS; k++)
        if (api->requests[k] > 0)
            sbuf_addf(&b, "sangam_api_requests_total{status=\"%d\"} %llu\n", 100 + k,
                      (unsigned long long)api->requests[k]);
    if (b.failed) {
        sbuf_free(&b);
        respond(out, 500, NULL);
        return;
    }
    out->status = 200;
    out->content_type = "text/plain; version=0.0.4; charset=utf-8";
    out->body = b.s ? b.s : strdup("");
    out->body_len = out->body ? strlen(out->body) : 0;
}

/* GET /v1/reports/WHICH?region=R&from=D&to=D&format=csv */
static void handle_report(sg_api *api, const char *which, const sg_http_req *req, sg_api_resp *out)
{
    sg_err err = {0};
    json_t *params = NULL, *rep = NULL, *v;
    const char *key, *format = NULL;
    sg_report_filter f = {0};

    if (sg_http_query_parse(&params, req->query, &err) < 0)
        goto fail;
    json_object_foreach(params, key, v)
    {
        const char *s = json_string_value(v);
        if (strcmp(key, "region") == 0 && sg_region_id_valid(s, strlen(s))) {
            f.region = s;
        } else if ((strcmp(key, "from") == 0 || strcmp(key, "to") == 0) &&
                   sg_date_valid(s, strlen(s))) {
            *(key[0] == 'f' ? &f.from : &f.to) = s;
        } else if (strcmp(key, "format") == 0 &&
                   (strcmp(s, "csv") == 0 || strcmp(s, "json") == 0)) {
            format = s;
        } else {
            sg_err_set(&err, SG_EVALIDATE,
                       "%.40s: not a parameter of reports, or not a valid value (region=REGION, "
                       "from=YYYY-MM-DD, to=YYYY-MM-DD, format=json|csv)",
                       key);
            goto fail;
        }
    }
    if (sg_report(&rep, api->st, which, &f, &err) < 0)
        goto fail;
    if (format != NULL && strcmp(format, "csv") == 0) {
        out->body = sg_report_csv(rep);
        json_decref(rep);
        if (out->body == NULL) {
            respond(out, 500, NULL);
        } else {
            out->status = 200;
            out->content_type = "text/csv; charset=utf-8";
            out->body_len = strlen(out->body);
        }
    } else {
        respond(out, 200, rep);
    }
    json_decref(params);
    return;
fail:
    json_decref(params);
    respond_err(out, &err);
}

/* /v1/tokens (GET list, POST {"name", "role"}) and /v1/tokens/ID/revoke (POST). */
static void handle_tokens(sg_api *api, int n, char **seg, const sg_http_req *req, sg_api_resp *out)
{
    sg_err err = {0};
    json_t *body = NULL, *res = NULL;

    if (n == 2 && method_is(req, "GET")) {
        if (sg_auth_list(&res, api->st, &err) < 0)
            respond_err(out, &err);
        else
            respond(out, 200, json_pack("{s:o}", "items", res));
        return;
    }
    if (n == 2 && method_is(req, "POST")) {
        const char *name, *role;
        if (parse_body(&body, req, &err) < 0) {
            respond_err(out, &err);
            return;
        }
        name = json_string_value(json_object_get(body, "name"));
        role = json_string_value(json_object_get(body, "role"));
        if (json_object_size(body) != 2 || name == NULL || role == NULL)
            sg_err_set(&err, SG_EVALIDATE,
                       "body must be {\"name\": NAME, \"role\": \"viewer\" | "
                       "\"admin\"}");
        else if (sg_auth_create(&res, api->st, name, role, &err) == 0)
            sg_log(SG_LOG_INFO, "token_created", "id=%s role=%s",
                   json_string_value(json_object_get(res, "id")), role);
        json_decref(body);
        if (res == NULL)
            respond_err(out, &err);
        else
            respond(out, 201, res);
        return;
    }
    if (n == 4 && strcmp(seg[3], "revoke") == 0 && method_is(req, "POST")) {
        if (sg_auth_revoke(api->st, seg[2], &err) < 0) {
            respond_err(out, &err);
            return;
        }
        sg_log(SG_LOG_INFO, "token_revoked", "id=%s", seg[2]);
        respond(out, 200, json_pack("{s:s, s:b}", "id", seg[2], "revoked", 1));
        return;
    }
    if (n == 2)
        not_allowed(out, req, "GET, POST");
    else
        sg_api_error(out, SG_ENOTFOUND, "no such route; see docs/API.md");
}

/* The hub's dashboard (server/dashboard/), built into sangamd by cmake/embed.cmake. The page and
 * its assets hold no data, so they are served without a token: the page asks for one and reads
 * the API with it. The transport sets the headers (Cache-Control: no-store among them); the
 * page's Content-Security-Policy is a <meta> tag in index.html. */
extern const char sg_dash_index_html[], sg_dash_app_js[], sg_dash_style_css[];
extern const size_t sg_dash_index_html_len, sg_dash_app_js_len, sg_dash_style_css_len;

static const struct {
    const char *path;         /* the request path that gets it */
    const char *content_type; /* its Content-Type */
    const char *data;         /* the embedded bytes */
    const size_t *len;        /* their count */
} dashboard_files[] = {
    {"/", "text/html; charset=utf-8", sg_dash_index_html, &sg_dash_index_html_len},
    {"/dashboard", "text/html; charset=utf-8", sg_dash_index_html, &sg_dash_index_html_len},
    {"/dashboard/app.js", "text/javascript; charset=utf-8", sg_dash_app_js, &sg_dash_app_js_len},
    {"/dashboard/style.css", "text/css; charset=utf-8", sg_dash_style_css, &sg_dash_style_css_len},
};

/* Answers a request for `/`, `/dashboard` or `/dashboard/...` and returns 1; returns 0 (out
 * untouched) for any other path. Only a hub serves the dashboard: it reads the hub's routes. */
static int handle_dashboard(sg_api *api, const sg_http_req *req, sg_api_resp *out)
{
    size_t i, n = sizeof(dashboard_files) / sizeof(dashboard_files[0]);

    for (i = 0; i < n; i++)
        if (strcmp(req->path, dashboard_files[i].path) == 0)
            break;
    if (i == n && strncmp(req->path, "/dashboard/", 11) != 0)
        return 0;
    if (strcmp(api->role, "hub") != 0) {
        sg_api_error(out, SG_ENOTFOUND,
                     "the dashboard is served by the hub; this node is a region");
        return 1;
    }
    if (i == n) {
        sg_api_error(out, SG_ENOTFOUND, "no such dashboard file; the dashboard is at /");
        return 1;
    }
    if (!method_is(req, "GET")) {
        not_allowed(out, req, "GET");
        return 1;
    }
    out->body = malloc(*dashboard_files[i].len + 1);
    if (out->body == NULL) {
        respond(out, 500, NULL);
        return 1;
    }
    memcpy(out->body, dashboard_files[i].data, *dashboard_files[i].len + 1);
    out->body_len = *dashboard_files[i].len;
    out->status = 200;
    out->content_type = dashboard_files[i].content_type;
    return 1;
}

static void api_route(sg_api *api, const sg_http_req *req, sg_api_resp *out);

void sg_api_handle(sg_api *api, const sg_http_req *req, sg_api_resp *out)
{
    api_route(api, req, out);
    if (out->status >= 100 && out->status < 100 + SG_API_STATUS_SLOTS)
        api->requests[out->status - 100]++;
}

static void api_route(sg_api *api, const sg_http_req *req, sg_api_resp *out)
{
    char buf[SG_HTTP_URL_MAX];
    char *seg[4];
    const sg_rectype *rt;
    int n;

    memset(out, 0, sizeof(*out));
    if (handle_dashboard(api, req, out))
        return; /* no token: the page holds no data */
    n = split_path(req->path, buf, sizeof(buf), seg, 4);
    if (gate(api, req, n == 1 && (strcmp(seg[0], "healthz") == 0 || strcmp(seg[0], "readyz") == 0),
             out) < 0)
        return;
    if (n == 1 && strcmp(seg[0], "readyz") == 0) {
        if (!method_is(req, "GET")) {
            not_allowed(out, req, "GET");
            return;
        }
        handle_readyz(api, out);
        return;
    }
    if (n == 1 && strcmp(seg[0], "metrics") == 0) {
        if (!method_is(req, "GET")) {
            not_allowed(out, req, "GET");
            return;
        }
        handle_metrics(api, out);
        return;
    }
    if (n == 1 && strcmp(seg[0], "healthz") == 0) {
        if (!method_is(req, "GET")) {
            not_allowed(out, req, "GET");
            return;
        }
        {
            respond(out, 200, json_pack("{s:b}", "ok", 1));
            return;
        }
    }
    if (n < 2 || strcmp(seg[0], "v1") != 0)
        goto not_found;
    if (n == 2 && strcmp(seg[1], "status") == 0) {
        if (!method_is(req, "GET")) {
            not_allowed(out, req, "GET");
            return;
        }
        {
            handle_status(api, out);
            return;
        }
    }
    if (n == 2 && strcmp(seg[1], "changes") == 0) {
        if (!method_is(req, "GET")) {
            not_allowed(out, req, "GET");
            return;
        }
        {
            handle_changes(api, req, out);
            return;
        }
    }
    if (strcmp(seg[1], "tokens") == 0) {
        if (strcmp(api->role, "hub") != 0) {
            sg_api_error(out, SG_ENOTFOUND, "only the hub has API tokens");
            return;
        }
        handle_tokens(api, n, seg, req, out);
        return;
    }
    if (n == 3 && strcmp(seg[1], "reports") == 0) {
        if (!method_is(req, "GET")) {
            not_allowed(out, req, "GET");
            return;
        }
        handle_report(api, seg[2], req, out);
        return;
    }
    if (n == 2 && strcmp(seg[1], "backup") == 0) {
        handle_backup(api, req, out);
        return;
    }
    if (n == 2 && strcmp(seg[1], "restore") == 0) {
        if (!method_is(req, "POST")) {
            not_allowed(out, req, "POST");
            return;
        }
        handle_restore(api, req, out);
        return;
    }
    if (strcmp(seg[1], "invites") == 0) {
        json_t *items = NULL;
        sg_err err = {0};
        if (strcmp(api->role, "hub") != 0) {
            sg_api_error(out, SG_ENOTFOUND, "only the hub makes invites");
            return;
        }
        if (n != 2)
            goto not_found;
        if (method_is(req, "POST")) {
            handle_invite(api, req, out);
            return;
        }
        if (!method_is(req, "GET")) {
            not_allowed(out, req, "GET, POST");
            return;
        }
        if (sg_invite_list(&items, api->st, &err) < 0)
            respond_err(out, &err);
        else
            respond(out, 200, json_pack("{s:o}", "items", items));
        return;
    }
    if (strcmp(seg[1], "regions") == 0 || strcmp(seg[1], "quarantine") == 0) {
        if (strcmp(api->role, "hub") != 0) {
            sg_api_error(out, SG_ENOTFOUND, "only the hub has regions and a quarantine");
            return;
        }
        if (n == 4 && seg[1][0] == 'r' && strcmp(seg[3], "revoke") == 0) {
            if (!method_is(req, "POST")) {
                not_allowed(out, req, "POST");
                return;
            }
            handle_revoke(api, seg[2], out);
            return;
        }
        if (n == 2 && seg[1][0] == 'r' && method_is(req, "GET")) {
            respond(out, 200, json_pack("{s:o}", "items", sg_hub_regions(api->hub, api->st)));
            return;
        }
        if (n == 2 && seg[1][0] == 'q' && method_is(req, "GET")) {
            handle_quarantine_list(api, req, out);
            return;
        }
        if (n == 3 && seg[1][0] == 'q' &&
            (strcmp(seg[2], "retry") == 0 || strcmp(seg[2], "discard") == 0)) {
            if (!method_is(req, "POST")) {
                not_allowed(out, req, "POST");
                return;
            }
            handle_quarantine_action(api, seg[2], req, out);
            return;
        }
        if (n == 2) {
            not_allowed(out, req, "GET");
            return;
        }
        goto not_found;
    }
    rt = sg_rectype_find(seg[1], -1);
    if (rt == NULL)
        goto not_found;
    if (n == 2) {
        if (method_is(req, "GET")) {
            handle_list(api, rt, req, out);
            return;
        }
        if (method_is(req, "POST")) {
            handle_create(api, rt, req, out);
            return;
        }
        {
            not_allowed(out, req, "GET or POST");
            return;
        }
    }
    if (n == 3 && strcmp(rt->table, "members") == 0 && strcmp(seg[2], "import") == 0) {
        if (!method_is(req, "POST")) {
            not_allowed(out, req, "POST");
            return;
        }
        {
            handle_import(api, req, out);
            return;
        }
    }
    if (!sg_record_id_valid(seg[2], strlen(seg[2])))
        goto not_found;
    if (n == 3) {
        if (method_is(req, "GET")) {
            handle_get_one(api, rt, seg[2], out);
            return;
        }
        if (method_is(req, "PATCH")) {
            handle_update(api, rt, seg[2], req, out);
            return;
        }
        if (method_is(req, "DELETE")) {
            handle_delete(api, rt, seg[2], out);
            return;
        }
        {
            not_allowed(out, req, "GET, PATCH or DELETE");
            return;
        }
    }
    if (n == 4 && strcmp(rt->table, "sessions") == 0 && strcmp(seg[3], "attendance") == 0) {
        if (!method_is(req, "POST")) {
            not_allowed(out, req, "POST");
            return;
        }
        {
            handle_attend(api, seg[2], req, out);
            return;
        }
    }
    if (n == 4 && strcmp(rt->table, "issues") == 0 && strcmp(seg[3], "updates") == 0) {
        if (!method_is(req, "POST")) {
            not_allowed(out, req, "POST");
            return;
        }
        {
            handle_issue_update(api, seg[2], req, out);
            return;
        }
    }

not_found:
    sg_api_error(out, SG_ENOTFOUND, "no such route; see docs/API.md");
}
