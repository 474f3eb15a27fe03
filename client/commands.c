/*
 * commands.c - the command table and the record commands: status, add, list, show, update,
 * deactivate, attend and the issue history commands. CSV import and the change log live in
 * import.c and changelog.c.
 *
 * Every handler maps one command onto the routes of docs/API.md and nothing else: the node is
 * the authority on what is allowed, the CLI only refuses locally what the record descriptors
 * already say is wrong (done by args.c before a handler runs).
 *
 * Output contract: add and raise print only the new id (scripts capture it); commands that
 * change a record print it afterwards as `show` does; --json prints the node's answer instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "changelog.h"
#include "replication.h"
#include "cli.h"
#include "http.h"
#include "import.h"
#include "sangam/sbuf.h"
#include "table.h"

/* Builds "/v1/<table>[/<id>][<suffix>]" into b; returns 0, or CLI_EXIT_UNREACHABLE after
 * printing when out of memory. */
static int route(sbuf *b, const char *table, const char *id, const char *suffix)
{
    sbuf_init(b);
    sbuf_addf(b, "/v1/%s", table);
    if (id != NULL)
        sbuf_addf(b, "/%s", id);
    if (suffix != NULL)
        sbuf_add(b, suffix);
    if (b->failed) {
        sbuf_free(b);
        fprintf(stderr, "sangam: out of memory\n");
        return CLI_EXIT_UNREACHABLE;
    }
    return CLI_EXIT_OK;
}

/* Prints a record the node answered with: JSON with --json, else one field per line. */
static void print_record(const cli_ctx *ctx, const sg_rectype *rt, const json_t *rec)
{
    if (ctx->json)
        table_json(stdout, rec);
    else
        table_record(stdout, rt, rec);
}

/* Sends method on /v1/<rt's table>/ID<suffix> with body (or none) and prints the record of type
 * rt that comes back. */
static int change_and_print(cli_ctx *ctx, const sg_rectype *rt, const char *method, const char *id,
                            const char *suffix, const json_t *body)
{
    sbuf path;
    json_t *rec = NULL;
    int ret = route(&path, rt->table, id, suffix);

    if (ret != CLI_EXIT_OK)
        return ret;
    ret = http_json(ctx->http, method, sbuf_str(&path), body, &rec);
    sbuf_free(&path);
    if (ret == CLI_EXIT_OK)
        print_record(ctx, rt, rec);
    json_decref(rec);
    return ret;
}

/* sangam status: GET /v1/status. */
static int cmd_status(cli_ctx *ctx, const cli_command *cmd, const args *a)
{
    static const char *const keys[][2] = {{"node", "node"},
                                          {"role", "role"},
                                          {"version", "version"},
                                          {"schema_version", "schema version"},
                                          {"seq", "seq"}};
    json_t *st = NULL, *counts, *v;
    const char *key;
    int ret = http_json(ctx->http, "GET", "/v1/status", NULL, &st);

    (void)cmd;
    (void)a;
    if (ret != CLI_EXIT_OK)
        return ret;
    if (ctx->json) {
        table_json(stdout, st);
        json_decref(st);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        sbuf b;
        sbuf_init(&b);
        table_value(&b, json_object_get(st, keys[i][0]));
        printf("%-15s %s\n", keys[i][1], sbuf_str(&b));
        sbuf_free(&b);
    }
    counts = json_object_get(st, "counts");
    printf("counts:\n");
    json_object_foreach(counts, key, v)
    {
        sbuf b;
        sbuf_init(&b);
        table_value(&b, v);
        printf("  %-13s %s\n", key, sbuf_str(&b));
        sbuf_free(&b);
    }
    replication_print_status(st);
    json_decref(st);
    return CLI_EXIT_OK;
}

/* org add, member add, session add, issue raise: POST /v1/TABLE; prints the new id. */
static int cmd_add(cli_ctx *ctx, const cli_command *cmd, const args *a)
{
    json_t *body = NULL, *rec = NULL;
    sbuf path;
    const char *id;
    int ret = args_body(&body, a, CLI_FIELDS_CREATE);

    (void)cmd;
    if (ret != CLI_EXIT_OK)
        return ret;
    ret = route(&path, a->rt->table, NULL, NULL);
    if (ret == CLI_EXIT_OK) {
        ret = http_json(ctx->http, "POST", sbuf_str(&path), body, &rec);
        sbuf_free(&path);
    }
    if (ret == CLI_EXIT_OK) {
        id = json_string_value(json_object_get(rec, "id"));
        if (ctx->json) {
            table_json(stdout, rec);
        } else if (id != NULL) {
            printf("%s\n", id);
        } else {
            fprintf(stderr, "sangam: the node created the %s but sent no id back\n",
                    a->rt->singular);
            ret = CLI_EXIT_REFUSED;
        }
    }
    json_decref(rec);
    json_decref(body);
    return ret;
}

/* Fetches one page of a list into *out; path is the base path with its filters. */
static int list_page(cli_ctx *ctx, const char *base, const char *after, json_t **out)
{
    sbuf path;
    int ret;

    sbuf_init(&path);
    sbuf_add(&path, base);
    if (after != NULL)
        http_query_add(&path, "after", after);
    if (path.failed) {
        fprintf(stderr, "sangam: out of memory\n");
        return CLI_EXIT_UNREACHABLE;
    }
    ret = http_json(ctx->http, "GET", sbuf_str(&path), NULL, out);
    sbuf_free(&path);
    if (ret == CLI_EXIT_OK && !json_is_array(json_object_get(*out, "items"))) {
        fprintf(stderr, "sangam: %s answered a list without \"items\"; is it a sangamd node?\n",
                http_where(ctx->http));
        json_decref(*out);
        *out = NULL;
        return CLI_EXIT_UNREACHABLE;
    }
    return ret;
}

/* org list, member list, session list, issue list: GET /v1/TABLE?filters, following "next"
 * with --all; prints a table and a footer that says how to get the next page. */
static int cmd_list(cli_ctx *ctx, const cli_command *cmd, const args *a)
{
    json_t *page = NULL, *all = json_array(), *result = NULL;
    const char *after = args_get(a, ARGS_AFTER), *next = NULL;
    int follow = args_get(a, ARGS_ALL) != NULL;
    char *cursor = NULL;
    sbuf base;
    int ret;

    if (all == NULL)
        return CLI_EXIT_UNREACHABLE;
    if (after != NULL && (ret = args_check_id(cmd, "--after", after)) != CLI_EXIT_OK)
        goto free_all;
    if ((ret = route(&base, a->rt->table, NULL, NULL)) != CLI_EXIT_OK)
        goto free_all;
    if ((ret = args_query(&base, a)) != CLI_EXIT_OK)
        goto free_base;
    for (;;) {
        ret = list_page(ctx, sbuf_str(&base), cursor != NULL ? cursor : after, &page);
        if (ret != CLI_EXIT_OK)
            goto free_base;
        json_array_extend(all, json_object_get(page, "items"));
        next = json_string_value(json_object_get(page, "next"));
        if (!follow || next == NULL)
            break;
        if (cursor != NULL && strcmp(cursor, next) == 0) {
            fprintf(stderr, "sangam: the node returned the same page twice (next %s)\n", next);
            ret = CLI_EXIT_REFUSED;
            goto free_base;
        }
        free(cursor);
        cursor = strdup(next);
        json_decref(page);
        page = NULL;
        if (cursor == NULL) {
            ret = CLI_EXIT_UNREACHABLE;
            goto free_base;
        }
    }
    if (ctx->json) {
        result = follow ? json_pack("{s:O,s:n}", "items", all) : json_incref(page);
        table_json(stdout, result);
        json_decref(result);
    } else {
        if (table_list(stdout, a->rt->table, all) != 0) {
            fprintf(stderr, "sangam: out of memory\n");
            ret = CLI_EXIT_UNREACHABLE;
            goto free_base;
        }
        if (next != NULL && !follow)
            printf("%zu shown; more with --after %s\n", json_array_size(all), next);
        else
            printf("%zu shown\n", json_array_size(all));
    }
free_base:
    sbuf_free(&base);
free_all:
    free(cursor);
    json_decref(page);
    json_decref(all);
    return ret;
}

/* org show, member show, session show, issue show: GET /v1/TABLE/ID. */
static int cmd_show(cli_ctx *ctx, const cli_command *cmd, const args *a)
{
    int ret = args_check_id(cmd, "ID", a->operand[0]);

    if (ret != CLI_EXIT_OK)
        return ret;
    return change_and_print(ctx, a->rt, "GET", a->operand[0], NULL, NULL);
}

/* member update ID: PATCH /v1/members/ID with the fields given (empty value = null). */
static int cmd_update(cli_ctx *ctx, const cli_command *cmd, const args *a)
{
    json_t *body = NULL;
    int ret = args_check_id(cmd, "ID", a->operand[0]);

    if (ret == CLI_EXIT_OK)
        ret = args_body(&body, a, CLI_FIELDS_UPDATE);
    if (ret != CLI_EXIT_OK)
        return ret;
    if (json_object_size(body) == 0)
        ret = args_usage(cmd, "nothing to change: give at least one field flag");
    else
        ret = change_and_print(ctx, a->rt, "PATCH", a->operand[0], NULL, body);
    json_decref(body);
    return ret;
}

/* member deactivate ID: PATCH /v1/members/ID {"status": "inactive"}. */
static int cmd_deactivate(cli_ctx *ctx, const cli_command *cmd, const args *a)
{
    json_t *body;
    int ret = args_check_id(cmd, "ID", a->operand[0]);

    if (ret != CLI_EXIT_OK)
        return ret;
    body = json_pack("{s:s}", "status", "inactive");
    if (body == NULL)
        return CLI_EXIT_UNREACHABLE;
    ret = change_and_print(ctx, a->rt, "PATCH", a->operand[0], NULL, body);
    json_decref(body);
    return ret;
}

/* session attend SESSION_ID MEMBER_ID...: POST /v1/sessions/ID/attendance (all or nothing). */
static int cmd_attend(cli_ctx *ctx, const cli_command *cmd, const args *a)
{
    json_t *ids = json_array(), *body = NULL, *res = NULL;
    sbuf path;
    int ret = args_check_id(cmd, "SESSION_ID", a->operand[0]);

    sbuf_init(&path);
    if (ids == NULL)
        return CLI_EXIT_UNREACHABLE;
    for (size_t i = 1; ret == CLI_EXIT_OK && i < a->noperand; i++) {
        ret = args_check_id(cmd, "MEMBER_ID", a->operand[i]);
        if (ret == CLI_EXIT_OK && json_array_append_new(ids, json_string(a->operand[i])) != 0)
            ret = CLI_EXIT_UNREACHABLE;
    }
    if (ret != CLI_EXIT_OK)
        goto free_ids;
    body = json_pack("{s:O}", "member_ids", ids);
    if (body == NULL) {
        ret = CLI_EXIT_UNREACHABLE;
        goto free_ids;
    }
    if ((ret = route(&path, "sessions", a->operand[0], "/attendance")) != CLI_EXIT_OK)
        goto free_body;
    ret = http_json(ctx->http, "POST", sbuf_str(&path), body, &res);
    if (ret != CLI_EXIT_OK)
        goto free_path;
    if (ctx->json)
        table_json(stdout, res);
    else
        printf("recorded %zu attendance(s) at session %s (%zu already recorded)\n",
               json_array_size(json_object_get(res, "added")), a->operand[0],
               json_array_size(json_object_get(res, "already")));
    json_decref(res);
free_path:
    sbuf_free(&path);
free_body:
    json_decref(body);
free_ids:
    json_decref(ids);
    return ret;
}

/* The author of an issue update when --author is absent: $SANGAM_AUTHOR, $USER, "unknown". */
static const char *default_author(void)
{
    const char *s = getenv("SANGAM_AUTHOR");

    if (s == NULL || s[0] == '\0')
        s = getenv("USER");
    return s != NULL && s[0] != '\0' ? s : "unknown";
}

/* issue update ID [--status S] [--assign ORG] [--note TEXT] [--author NAME] and
 * issue comment ID --note TEXT [--author NAME]: POST /v1/issues/ID/updates. */
static int cmd_issue_update(cli_ctx *ctx, const cli_command *cmd, const args *a)
{
    const sg_field *author_field =
        sg_rectype_field(sg_rectype_find("issue_updates", -1), "author", -1);
    json_t *body = NULL, *status;
    int comment = strcmp(cmd->verb, "comment") == 0;
    sg_err err;
    const char *author;
    int ret = args_check_id(cmd, "ID", a->operand[0]);

    if (ret == CLI_EXIT_OK)
        ret = args_body(&body, a, CLI_FIELDS_UPDATE);
    if (ret != CLI_EXIT_OK)
        return ret;
    /* The route's body names the new status "status"; the history row stores it as status_to. */
    status = json_object_get(body, "status_to");
    if (status != NULL) {
        if (json_is_null(status)) {
            ret = args_usage(cmd, "--status needs a value");
            goto free_body;
        }
        json_object_set(body, "status", status);
        json_object_del(body, "status_to");
    }
    if (json_is_null(json_object_get(body, "note")))
        json_object_del(body, "note");
    if (comment && json_object_get(body, "note") == NULL) {
        ret = args_usage(cmd, "missing --note TEXT");
        goto free_body;
    }
    if (json_object_size(body) - (json_object_get(body, "author") != NULL) == 0) {
        ret = args_usage(cmd, "give at least one of --status, --assign or --note");
        goto free_body;
    }
    if (json_object_get(body, "author") == NULL) {
        author = default_author();
        sg_err_clear(&err);
        if (sg_field_check_text(author_field, author, strlen(author), &err) != 0) {
            ret = args_usage(cmd,
                             "the default author '%s' (from $SANGAM_AUTHOR or $USER) is not "
                             "usable: %s; pass --author NAME",
                             author, err.msg);
            goto free_body;
        }
        json_object_set_new(body, "author", json_string(author));
    }
    ret = change_and_print(ctx, sg_rectype_find("issues", -1), "POST", a->operand[0], "/updates",
                           body);
free_body:
    json_decref(body);
    return ret;
}

#define LIST_DETAILS                                                                               \
    "Prints a table, 50 rows a page unless --limit says otherwise; with --all it follows every "   \
    "page.\nFilters combine with AND."

/* The commands; args.c derives each one's flags from its table and fields. */
const cli_command cli_commands[] = {
    {NULL, "status", NULL, CLI_FIELDS_NONE, NULL, 0, "", 0, 0, cmd_status,
     "show the node's identity, role, schema version, change sequence and record counts", NULL},

    {"org", "add", "organisations", CLI_FIELDS_CREATE, NULL, 0, "", 0, 0, cmd_add,
     "add an organisation and print its id", NULL},
    {"org", "list", "organisations", CLI_FIELDS_FILTER, NULL, CLI_OPT_LIST, "", 0, 0, cmd_list,
     "list organisations", LIST_DETAILS},
    {"org", "show", "organisations", CLI_FIELDS_NONE, NULL, 0, "ID", 1, 1, cmd_show,
     "show one organisation", NULL},

    {"member", "add", "members", CLI_FIELDS_CREATE, NULL, 0, "", 0, 0, cmd_add,
     "add a member and print its id", "A representative must name an organisation with --org."},
    {"member", "list", "members", CLI_FIELDS_FILTER, NULL, CLI_OPT_LIST, "", 0, 0, cmd_list,
     "list members", LIST_DETAILS " --from and --to apply to the date joined."},
    {"member", "show", "members", CLI_FIELDS_NONE, NULL, 0, "ID", 1, 1, cmd_show, "show one member",
     NULL},
    {"member", "update", "members", CLI_FIELDS_UPDATE, NULL, 0, "ID", 1, 1, cmd_update,
     "change a member's fields and print the member", NULL},
    {"member", "deactivate", "members", CLI_FIELDS_NONE, NULL, 0, "ID", 1, 1, cmd_deactivate,
     "mark a member inactive (the record and its history stay)", NULL},
    {"member", "import", "members", CLI_FIELDS_NONE, NULL, CLI_OPT_DRY_RUN, "FILE.csv", 1, 1,
     import_run, "import members from a CSV file: every row or none",
     "The first row names the columns: name and kind (required), gender, birth_year, phone,\n"
     "village, district, sector, organisation_id (or org), joined_on (or joined), status.\n"
     "If any row has a problem nothing is imported and each problem is printed as\n"
     "FILE:ROW: COLUMN: message."},

    {"session", "add", "sessions", CLI_FIELDS_CREATE, NULL, 0, "", 0, 0, cmd_add,
     "add a session and print its id", NULL},
    {"session", "list", "sessions", CLI_FIELDS_FILTER, NULL, CLI_OPT_LIST, "", 0, 0, cmd_list,
     "list sessions", LIST_DETAILS " --from and --to apply to the date held."},
    {"session", "show", "sessions", CLI_FIELDS_NONE, NULL, 0, "ID", 1, 1, cmd_show,
     "show one session with its attendance", NULL},
    {"session", "attend", "sessions", CLI_FIELDS_NONE, NULL, 0, "SESSION_ID MEMBER_ID...", 2, -1,
     cmd_attend, "record that members attended a session",
     "All or nothing: if any member id is unknown, no attendance is recorded."},

    {"issue", "raise", "issues", CLI_FIELDS_CREATE, NULL, 0, "", 0, 0, cmd_add,
     "raise an issue and print its id", NULL},
    {"issue", "update", "issue_updates", CLI_FIELDS_UPDATE, "status_to assigned_to note author", 0,
     "ID", 1, 1, cmd_issue_update,
     "change an issue's status or assignment, with a note, and print it",
     "Every change is kept in the issue's history. --author defaults to $SANGAM_AUTHOR,\n"
     "then $USER. Moving to resolved or closed sets the date resolved."},
    {"issue", "comment", "issue_updates", CLI_FIELDS_UPDATE, "note author", 0, "ID", 1, 1,
     cmd_issue_update, "add a note to an issue's history and print it",
     "--note is required; --author defaults to $SANGAM_AUTHOR, then $USER."},
    {"issue", "list", "issues", CLI_FIELDS_FILTER, NULL, CLI_OPT_LIST, "", 0, 0, cmd_list,
     "list issues", LIST_DETAILS " --from and --to apply to the date opened."},
    {"issue", "show", "issues", CLI_FIELDS_NONE, NULL, 0, "ID", 1, 1, cmd_show,
     "show one issue with its history", NULL},

    {"hub", "regions", NULL, CLI_FIELDS_NONE, NULL, 0, "", 0, 0, replication_regions,
     "on the hub: each region's connection, applied seq, lag and quarantined changes",
     "Lag is known while a region is connected (it reports its head)."},
    {"hub", "invite", NULL, CLI_FIELDS_NONE, NULL, CLI_OPT_INVITE, "REGION", 1, 1,
     replication_invite, "on the hub: a one-time join token for a new region's office",
     "Prints one line, the token. On the new machine: sangamd join TOKEN --dir DIR.\n"
     "The token holds the hub's address, a single-use secret and the pin of the coalition\n"
     "CA; the hub keeps only a hash of the secret. Treat it like a password until used."},
    {"hub", "invites", NULL, CLI_FIELDS_NONE, NULL, 0, "", 0, 0, replication_invites,
     "on the hub: the invites made, newest first, and whether each is open, used or expired", NULL},
    {"hub", "revoke", NULL, CLI_FIELDS_NONE, NULL, 0, "REGION", 1, 1, replication_revoke,
     "on the hub: cut a region off: its connection is dropped and every later one refused",
     "Its data already at the hub stays, marked as from a revoked region. Its open invites\n"
     "expire. The revocation survives restarts."},
    {"hub", "backup", NULL, CLI_FIELDS_NONE, NULL, 0, "FILE", 1, 1, replication_backup,
     "an online backup of the node's database to FILE (a new file), while it keeps serving",
     "Waits until the copy is written, checked and in place. FILE is on the node's machine;\n"
     "a relative name is taken from this directory. To restore: stop the node, copy FILE\n"
     "over its database (and remove the -wal and -shm files beside it), start it; regions\n"
     "resend whatever the backup lacks. Works on a region's node too."},
    {"hub", "token", NULL, CLI_FIELDS_NONE, NULL, CLI_OPT_ROLE, "create NAME | list | revoke ID", 1,
     2, replication_token, "on the hub: API tokens for headquarters (viewer or admin)",
     "create prints the token once (the hub keeps only a hash): give it to the dashboard or\n"
     "the person, who sends it as Authorization: Bearer TOKEN (the CLI: SANGAM_TOKEN=...).\n"
     "A viewer may read everything, an admin may also change things. Requests on the hub's\n"
     "socket need no token; over the network every request but /healthz and /readyz does."},
    {"quarantine", "list", NULL, CLI_FIELDS_NONE, NULL, CLI_OPT_QUARANTINE, "", 0, 0,
     replication_quarantine_list, "on the hub: changes refused from regions, with the reason",
     "A refused batch is held whole; its region cannot stream past it until an operator\n"
     "retries it (after fixing the cause) or discards it."},
    {"quarantine", "retry", NULL, CLI_FIELDS_NONE, NULL, CLI_OPT_QUARANTINE, "", 0, 0,
     replication_quarantine_act, "on the hub: apply a region's held changes again",
     "Needs --region. On success the region's cursor moves past them."},
    {"quarantine", "discard", NULL, CLI_FIELDS_NONE, NULL, CLI_OPT_QUARANTINE, "", 0, 0,
     replication_quarantine_act, "on the hub: drop a region's held changes and let it go on",
     "Needs --region. The changes stay in the region's own database; the hub never gets\n"
     "them. The quarantine keeps them, marked discarded, for the record."},

    {NULL, "report", NULL, CLI_FIELDS_NONE, NULL, CLI_OPT_REPORT, "summary|members|sessions|issues",
     1, 1, replication_report, "headquarters' reports, per region and in total",
     "members: by kind, gender and youth (under 35); sessions: by kind and month with\n"
     "attendance; issues: by category and status, median days to resolution, open issues per\n"
     "assigned organisation. Each region says how fresh its data is (data as of). Against a\n"
     "hub over the network: --node http://hub:PORT with SANGAM_TOKEN set."},
    {NULL, "restore", NULL, CLI_FIELDS_NONE, NULL, CLI_OPT_RESTORE, "", 0, 0, replication_restore,
     "on a region: get this region's records back from the hub (a new or rebuilt machine)",
     "Needs --from-hub. The hub sends the region's rows as it holds them; they are applied in\n"
     "one transaction and new writes continue after the hub's last change, so nothing is lost\n"
     "or sent twice. Over a database that already holds records, --force is required (the\n"
     "hub's copy replaces them). Waits until the restore is done, showing progress."},
    {NULL, "log", NULL, CLI_FIELDS_NONE, NULL, CLI_OPT_SINCE, "", 0, 0, changelog_run,
     "print the change log, one line per change: seq, time, op, table, id, data",
     "Follows the log to its end unless --limit is given."},

    {NULL, NULL, NULL, CLI_FIELDS_NONE, NULL, 0, NULL, 0, 0, NULL, NULL, NULL},
};
