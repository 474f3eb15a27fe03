/*
 * replication.c - replication commands and status lines of the CLI; see replication.h.
 * Everything here reads the node's JSON answers (docs/API.md); nothing is computed locally that
 * the node did not say, so the CLI and the API never disagree.
 */
#include "replication.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "sangam/records.h"
#include "sangam/sbuf.h"
#include "table.h"

static const char *str_or(const json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

static long long int_of(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

void replication_print_status(const json_t *status)
{
    const json_t *r = json_object_get(status, "replication");
    const json_t *regions = json_object_get(status, "regions");

    if (r != NULL) {
        const char *state = str_or(r, "state", "?");
        printf("replication:\n");
        if (strcmp(state, "standalone") == 0) {
            printf("  %-13s standalone (no [hub] address in the config)\n", "state");
            return;
        }
        printf("  %-13s %s\n", "hub", str_or(r, "hub", "?"));
        printf("  %-13s %s%s\n", "state", state,
               json_is_true(json_object_get(r, "connected")) ? " (connected)" : " (not connected)");
        if (json_object_get(r, "connected_since") &&
            !json_is_null(json_object_get(r, "connected_since")))
            printf("  %-13s %s\n", "since", str_or(r, "connected_since", ""));
        printf("  %-13s %lld\n", "local seq", int_of(r, "local_seq"));
        printf("  %-13s %lld\n", "hub acked", int_of(r, "acked_seq"));
        printf("  %-13s %lld\n", "pending", int_of(r, "pending"));
        if (json_object_get(r, "next_attempt_in_ms"))
            printf("  %-13s in %.1f s\n", "next attempt",
                   (double)int_of(r, "next_attempt_in_ms") / 1000.0);
        printf("  %-13s %s\n", "last error", str_or(r, "last_error", "-"));
        if (json_object_get(r, "cert_not_after"))
            printf("  %-13s %s (renewed automatically before then)\n", "cert expires",
                   str_or(r, "cert_not_after", "?"));
    }
    if (json_is_array(regions)) {
        size_t i;
        json_t *g;
        printf("regions:\n");
        if (json_array_size(regions) == 0)
            printf("  (none has connected yet)\n");
        json_array_foreach(regions, i, g)
        {
            printf("  %-14s %-13s applied seq %-8lld", str_or(g, "region", "?"),
                   json_object_get(g, "revoked_at")                ? "revoked"
                   : json_is_true(json_object_get(g, "connected")) ? "connected"
                                                                   : "disconnected",
                   int_of(g, "last_seq"));
            if (json_object_get(g, "lag_changes"))
                printf(" lag %lld changes / %.1f s", int_of(g, "lag_changes"),
                       json_number_value(json_object_get(g, "lag_seconds")));
            if (int_of(g, "quarantined") > 0)
                printf(" QUARANTINED %lld", int_of(g, "quarantined"));
            printf("\n");
            if (!json_is_null(json_object_get(g, "last_error")) && json_object_get(g, "last_error"))
                printf("  %-14s last error: %s\n", "", str_or(g, "last_error", ""));
        }
    }
}

/* sangam hub regions: GET /v1/regions. */
int replication_regions(cli_ctx *ctx, const cli_command *cmd, const args *a)
{
    json_t *res = NULL, *items, *g;
    size_t i;
    int ret = http_json(ctx->http, "GET", "/v1/regions", NULL, &res);

    (void)cmd;
    (void)a;
    if (ret != CLI_EXIT_OK)
        return ret;
    if (ctx->json) {
        table_json(stdout, res);
        json_decref(res);
        return CLI_EXIT_OK;
    }
    items = json_object_get(res, "items");
    printf("%-16s %-12s %10s %10s %12s %9s %11s  %s\n", "REGION", "STATE", "APPLIED", "REGION",
           "LAG", "LAG(s)", "QUARANTINED", "LAST CONTACT");
    json_array_foreach(items, i, g)
    {
        char lag[24] = "-", lags[24] = "-", head[24] = "-";
        if (json_object_get(g, "region_seq")) {
            snprintf(head, sizeof(head), "%lld", int_of(g, "region_seq"));
            snprintf(lag, sizeof(lag), "%lld", int_of(g, "lag_changes"));
            snprintf(lags, sizeof(lags), "%.1f",
                     json_number_value(json_object_get(g, "lag_seconds")));
        }
        printf("%-16s %-12s %10lld %10s %12s %9s %11lld  %s\n", str_or(g, "region", "?"),
               json_object_get(g, "revoked_at")                ? "revoked"
               : json_is_true(json_object_get(g, "connected")) ? "connected"
                                                               : "disconnected",
               int_of(g, "last_seq"), head, lag, lags, int_of(g, "quarantined"),
               str_or(g, "last_contact", "-"));
        if (json_string_value(json_object_get(g, "last_error")))
            printf("%-16s last error: %s\n", "", str_or(g, "last_error", ""));
        if (json_object_get(g, "revoked_at"))
            printf("%-16s revoked at %s (its data stays)\n", "", str_or(g, "revoked_at", ""));
        if (json_object_get(g, "cert_not_after"))
            printf("%-16s certificate valid until %s\n", "", str_or(g, "cert_not_after", ""));
    }
    printf("%zu region(s)\n", json_array_size(items));
    json_decref(res);
    return CLI_EXIT_OK;
}

/* sangam quarantine list [--region R] [--state S]: GET /v1/quarantine. */
int replication_quarantine_list(cli_ctx *ctx, const cli_command *cmd, const args *a)
{
    json_t *res = NULL, *items, *q;
    sbuf path;
    size_t i;
    int ret;

    (void)cmd;
    sbuf_init(&path);
    sbuf_add(&path, "/v1/quarantine");
    if (args_get(a, ARGS_REGION))
        http_query_add(&path, "region", args_get(a, ARGS_REGION));
    if (args_get(a, ARGS_STATE))
        http_query_add(&path, "state", args_get(a, ARGS_STATE));
    ret = http_json(ctx->http, "GET", sbuf_str(&path), NULL, &res);
    sbuf_free(&path);
    if (ret != CLI_EXIT_OK)
        return ret;
    if (ctx->json) {
        table_json(stdout, res);
        json_decref(res);
        return CLI_EXIT_OK;
    }
    items = json_object_get(res, "items");
    printf("%-14s %8s %-9s %-7s %-14s %-26s  %s\n", "REGION", "SEQ", "STATE", "OP", "TABLE", "ID",
           "REASON");
    json_array_foreach(items, i, q)
    {
        printf("%-14s %8lld %-9s %-7s %-14s %-26s  %s\n", str_or(q, "region", "?"),
               int_of(q, "seq"), str_or(q, "state", "?"), str_or(q, "op", "?"),
               str_or(q, "table", "?"), str_or(q, "pk", "?"), str_or(q, "reason", ""));
    }
    printf("%zu change(s)\n", json_array_size(items));
    json_decref(res);
    return CLI_EXIT_OK;
}

/* sangam quarantine retry|discard --region R: POST /v1/quarantine/ACTION. */
int replication_quarantine_act(cli_ctx *ctx, const cli_command *cmd, const args *a)
{
    const char *region = args_get(a, ARGS_REGION);
    json_t *body, *res = NULL;
    sbuf path;
    int ret;

    if (region == NULL) {
        fprintf(stderr, "sangam: quarantine %s: missing --region REGION; see --help\n", cmd->verb);
        return CLI_EXIT_USAGE;
    }
    if (args_get(a, ARGS_STATE) != NULL) {
        fprintf(stderr, "sangam: quarantine %s: --state applies to list only\n", cmd->verb);
        return CLI_EXIT_USAGE;
    }
    body = json_pack("{s:s}", "region", region);
    sbuf_init(&path);
    sbuf_add(&path, "/v1/quarantine/");
    sbuf_add(&path, cmd->verb);
    ret = http_json(ctx->http, "POST", sbuf_str(&path), body, &res);
    sbuf_free(&path);
    json_decref(body);
    if (ret != CLI_EXIT_OK)
        return ret;
    if (ctx->json)
        table_json(stdout, res);
    else
        printf("%s: %lld change(s) %s\n", region, int_of(res, "changes"),
               strcmp(cmd->verb, "retry") == 0 ? "applied" : "discarded; the region streams on");
    json_decref(res);
    return CLI_EXIT_OK;
}

/* sangam hub invite REGION [--expires D] [--address A]: POST /v1/invites. */
int replication_invite(cli_ctx *ctx, const cli_command *cmd, const args *a)
{
    json_t *body = json_pack("{s:s}", "region", a->operand[0]), *res = NULL;
    int ret;

    (void)cmd;
    if (args_get(a, ARGS_EXPIRES))
        json_object_set_new(body, "expires", json_string(args_get(a, ARGS_EXPIRES)));
    if (args_get(a, ARGS_ADDRESS))
        json_object_set_new(body, "address", json_string(args_get(a, ARGS_ADDRESS)));
    ret = http_json(ctx->http, "POST", "/v1/invites", body, &res);
    json_decref(body);
    if (ret != CLI_EXIT_OK)
        return ret;
    if (ctx->json) {
        table_json(stdout, res);
    } else {
        printf("%s\n", str_or(res, "token", ""));
        fprintf(stderr,
                "Invite for region %s, good until %s, usable once. On the new machine:\n"
                "  sangamd join <the line above> --dir /var/lib/sangam/%s\n",
                str_or(res, "region", "?"), str_or(res, "expires_at", "?"),
                str_or(res, "region", "REGION"));
    }
    json_decref(res);
    return CLI_EXIT_OK;
}

/* sangam hub invites: GET /v1/invites. */
int replication_invites(cli_ctx *ctx, const cli_command *cmd, const args *a)
{
    json_t *res = NULL, *items, *v;
    size_t i;
    int ret = http_json(ctx->http, "GET", "/v1/invites", NULL, &res);

    (void)cmd;
    (void)a;
    if (ret != CLI_EXIT_OK)
        return ret;
    if (ctx->json) {
        table_json(stdout, res);
        json_decref(res);
        return CLI_EXIT_OK;
    }
    items = json_object_get(res, "items");
    printf("%-16s %-8s %-25s %-25s %s\n", "REGION", "STATE", "CREATED", "EXPIRES", "USED");
    json_array_foreach(items, i, v)
    {
        printf("%-16s %-8s %-25s %-25s %s\n", str_or(v, "region", "?"), str_or(v, "state", "?"),
               str_or(v, "created_at", "-"), str_or(v, "expires_at", "-"),
               str_or(v, "used_at", "-"));
    }
    printf("%zu invite(s)\n", json_array_size(items));
    json_decref(res);
    return CLI_EXIT_OK;
}

/* sangam hub revoke REGION: POST /v1/regions/REGION/revoke. */
int replication_revoke(cli_ctx *ctx, const cli_command *cmd, const args *a)
{
    json_t *res = NULL;
    sbuf path;
    int ret;

    (void)cmd;
    if (!sg_region_id_valid(a->operand[0], strlen(a->operand[0]))) {
        fprintf(stderr, "sangam: hub revoke: '%s' is not a region id ([a-z0-9-], 1..63)\n",
                a->operand[0]);
        return CLI_EXIT_USAGE;
    }
    sbuf_init(&path);
    sbuf_add(&path, "/v1/regions/");
    sbuf_add(&path, a->operand[0]);
    sbuf_add(&path, "/revoke");
    ret = http_json(ctx->http, "POST", sbuf_str(&path), NULL, &res);
    sbuf_free(&path);
    if (ret != CLI_EXIT_OK)
        return ret;
    if (ctx->json)
        table_json(stdout, res);
    else
        printf("%s: revoked at %s; %lld live connection(s) dropped\n", str_or(res, "region", "?"),
               str_or(res, "revoked_at", "?"), int_of(res, "dropped"));
    json_decref(res);
    return CLI_EXIT_OK;
}

/* sangam restore --from-hub [--force]: POST /v1/restore, then follows /v1/status until the
 * restore is done or failed (at most 10 minutes). */
int replication_restore(cli_ctx *ctx, const cli_command *cmd, const args *a)
{
    json_t *body, *res = NULL;
    int ret, tty = isatty(STDERR_FILENO);
    char last_error[600] = "";

    (void)cmd;
    if (args_get(a, ARGS_FROM_HUB) == NULL) {
        fprintf(stderr, "sangam: restore: say where from: --from-hub (see --help)\n");
        return CLI_EXIT_USAGE;
    }
    body = json_pack("{s:b}", "force", args_get(a, ARGS_FORCE) != NULL);
    ret = http_json(ctx->http, "POST", "/v1/restore", body, &res);
    json_decref(body);
    json_decref(res);
    if (ret != CLI_EXIT_OK)
        return ret;
    for (int i = 0; i < 1200; i++) {
        const json_t *r, *rs;
        struct timespec ts = {0, 500 * 1000 * 1000};
        res = NULL;
        ret = http_json(ctx->http, "GET", "/v1/status", NULL, &res);
        if (ret != CLI_EXIT_OK)
            return ret;
        r = json_object_get(res, "replication");
        rs = json_object_get(r, "restore");
        if (rs == NULL && json_object_get(r, "last_restore") != NULL) {
            if (tty)
                fprintf(stderr, "\r\033[K");
            printf("%s\n", str_or(r, "last_restore", ""));
            json_decref(res);
            return CLI_EXIT_OK;
        }
        if (rs == NULL) {
            if (tty)
                fprintf(stderr, "\r\033[K");
            fprintf(stderr, "sangam: restore: %s\n", str_or(r, "last_error", "it stopped"));
            json_decref(res);
            return CLI_EXIT_REFUSED;
        }
        if (tty)
            fprintf(stderr, "\rrestoring from %s: %s, %lld rows", str_or(r, "hub", "the hub"),
                    str_or(rs, "state", "?"), int_of(rs, "rows"));
        snprintf(last_error, sizeof(last_error), "%s", str_or(r, "last_error", ""));
        json_decref(res);
        nanosleep(&ts, NULL);
    }
    fprintf(stderr,
            "\nsangam: restore: not done after 10 minutes (last error: %s); see sangam "
            "status\n",
            last_error[0] ? last_error : "none");
    return CLI_EXIT_REFUSED;
}

/* sangam hub backup FILE: POST /v1/backup, then GET /v1/backup until it is done. */
int replication_backup(cli_ctx *ctx, const cli_command *cmd, const args *a)
{
    const char *file = a->operand[0];
    char path[PATH_MAX + 256], cwd[PATH_MAX];
    json_t *body, *res = NULL;
    int ret;

    (void)cmd;
    if (file[0] == '/')
        snprintf(path, sizeof(path), "%s", file);
    else if (getcwd(cwd, sizeof(cwd)) != NULL)
        snprintf(path, sizeof(path), "%s/%s", cwd, file);
    else {
        fprintf(stderr, "sangam: hub backup: cannot tell the current directory; give an "
                        "absolute path\n");
        return CLI_EXIT_USAGE;
    }
    body = json_pack("{s:s}", "path", path);
    ret = http_json(ctx->http, "POST", "/v1/backup", body, &res);
    json_decref(body);
    json_decref(res);
    if (ret != CLI_EXIT_OK)
        return ret;
    for (int i = 0; i < 36000; i++) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        const char *state;
        res = NULL;
        ret = http_json(ctx->http, "GET", "/v1/backup", NULL, &res);
        if (ret != CLI_EXIT_OK)
            return ret;
        state = str_or(res, "state", "?");
        if (strcmp(state, "running") != 0) {
            if (ctx->json)
                table_json(stdout, res);
            else if (strcmp(state, "done") == 0)
                printf("backed up to %s (%lld bytes, checked)\n", str_or(res, "path", path),
                       int_of(res, "bytes"));
            else
                fprintf(stderr, "sangam: hub backup: %s\n", str_or(res, "error", state));
            ret = strcmp(state, "done") == 0 ? CLI_EXIT_OK : CLI_EXIT_REFUSED;
            json_decref(res);
            return ret;
        }
        json_decref(res);
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "sangam: hub backup: still running after an hour; see GET /v1/backup\n");
    return CLI_EXIT_REFUSED;
}

/* sangam hub token create NAME [--role R] | list | revoke ID */
int replication_token(cli_ctx *ctx, const cli_command *cmd, const args *a)
{
    const char *action = a->operand[0], *arg = a->noperand > 1 ? a->operand[1] : NULL;
    json_t *res = NULL, *body, *v;
    size_t i;
    int ret;

    (void)cmd;
    if (strcmp(action, "create") == 0 && arg != NULL) {
        body = json_pack("{s:s, s:s}", "name", arg, "role",
                         args_get(a, ARGS_ROLE) ? args_get(a, ARGS_ROLE) : "viewer");
        ret = http_json(ctx->http, "POST", "/v1/tokens", body, &res);
        json_decref(body);
        if (ret != CLI_EXIT_OK)
            return ret;
        if (ctx->json)
            table_json(stdout, res);
        else {
            printf("%s\n", str_or(res, "token", ""));
            fprintf(stderr, "Token %s (%s, %s). Shown once: the hub keeps only its hash.\n",
                    str_or(res, "id", "?"), str_or(res, "name", "?"), str_or(res, "role", "?"));
        }
    } else if (strcmp(action, "list") == 0 && arg == NULL) {
        ret = http_json(ctx->http, "GET", "/v1/tokens", NULL, &res);
        if (ret != CLI_EXIT_OK)
            return ret;
        if (ctx->json) {
            table_json(stdout, res);
        } else {
            printf("%-9s %-7s %-25s %-25s %-25s %s\n", "ID", "ROLE", "CREATED", "LAST USED",
                   "REVOKED", "NAME");
            json_array_foreach(json_object_get(res, "items"), i, v) printf(
                "%-9s %-7s %-25s %-25s %-25s %s\n", str_or(v, "id", "?"), str_or(v, "role", "?"),
                str_or(v, "created_at", "-"), str_or(v, "last_used_at", "-"),
                str_or(v, "revoked_at", "-"), str_or(v, "name", ""));
        }
    } else if (strcmp(action, "revoke") == 0 && arg != NULL) {
        sbuf path;
        for (const char *p = arg; *p; p++)
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) {
                fprintf(stderr, "sangam: hub token revoke: '%s' is not a token id\n", arg);
                return CLI_EXIT_USAGE;
            }
        sbuf_init(&path);
        sbuf_addf(&path, "/v1/tokens/%s/revoke", arg);
        ret = http_json(ctx->http, "POST", sbuf_str(&path), NULL, &res);
        sbuf_free(&path);
        if (ret != CLI_EXIT_OK)
            return ret;
        if (ctx->json)
            table_json(stdout, res);
        else
            printf("token %s revoked\n", arg);
    } else {
        fprintf(stderr,
                "sangam: hub token: create NAME [--role viewer|admin], list, or revoke ID\n");
        return CLI_EXIT_USAGE;
    }
    json_decref(res);
    return CLI_EXIT_OK;
}

/* Prints v under a label, nested objects indented. */
static void print_tree(const char *label, const json_t *v, int depth)
{
    const char *k;
    json_t *x;
    if (json_is_object(v)) {
        if (label != NULL)
            printf("%*s%s:\n", depth * 2, "", label);
        json_object_foreach((json_t *)v, k, x) print_tree(k, x, depth + (label != NULL));
        return;
    }
    if (json_is_integer(v))
        printf("%*s%-28s %lld\n", depth * 2, "", label, (long long)json_integer_value(v));
    else if (json_is_real(v))
        printf("%*s%-28s %.1f\n", depth * 2, "", label, json_real_value(v));
    else if (json_is_string(v))
        printf("%*s%-28s %s\n", depth * 2, "", label, json_string_value(v));
    else
        printf("%*s%-28s -\n", depth * 2, "", label);
}

/* sangam report KIND [--region R] [--from D] [--to D] [--csv] */
int replication_report(cli_ctx *ctx, const cli_command *cmd, const args *a)
{
    const char *kind = a->operand[0];
    http_request req = {"GET", NULL, NULL, NULL, 0, NULL, NULL};
    http_response resp;
    sbuf path;
    const char *name;
    json_t *r;
    int ret;

    (void)cmd;
    if (strcmp(kind, "summary") && strcmp(kind, "members") && strcmp(kind, "sessions") &&
        strcmp(kind, "issues")) {
        fprintf(stderr, "sangam: report: summary, members, sessions or issues\n");
        return CLI_EXIT_USAGE;
    }
    sbuf_init(&path);
    sbuf_addf(&path, "/v1/reports/%s", kind);
    if (args_get(a, ARGS_REGION))
        http_query_add(&path, "region", args_get(a, ARGS_REGION));
    if (args_get(a, ARGS_FROM))
        http_query_add(&path, "from", args_get(a, ARGS_FROM));
    if (args_get(a, ARGS_TO))
        http_query_add(&path, "to", args_get(a, ARGS_TO));
    if (args_get(a, ARGS_CSV))
        http_query_add(&path, "format", "csv");
    req.path = sbuf_str(&path);
    ret = http_send(ctx->http, &req, &resp);
    sbuf_free(&path);
    if (ret != CLI_EXIT_OK)
        return ret;
    if (resp.status < 200 || resp.status > 299) {
        ret = http_fail(&resp);
        http_response_free(&resp);
        return ret;
    }
    if (resp.text != NULL) {
        fputs(resp.text, stdout);
    } else if (ctx->json) {
        table_json(stdout, resp.json);
    } else {
        json_object_foreach(json_object_get(resp.json, "regions"), name, r)
        {
            printf("== %s (data as of %s)\n", name, str_or(r, "data_as_of", "unknown"));
            json_object_del(r, "data_as_of");
            print_tree(NULL, r, 0);
            printf("\n");
        }
        printf("== total\n");
        print_tree(NULL, json_object_get(resp.json, "total"), 0);
    }
    http_response_free(&resp);
    return CLI_EXIT_OK;
}
