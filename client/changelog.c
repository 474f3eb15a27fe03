/*
 * changelog.c - the log command of changelog.h.
 *
 * Pages are fetched with since=<the previous page's next> until next is null, so the whole log
 * is printed however the node sizes its pages. A change's time is its hybrid logical clock
 * shifted right 16 bits (milliseconds since the epoch), shown in UTC like the records'
 * timestamps.
 *
 * Invariants: since strictly increases from page to page (checked: a node that answered the
 * same position twice would otherwise loop forever).
 */
#include "changelog.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "http.h"
#include "sangam/sbuf.h"
#include "table.h"

#define PAGE_MAX 1000 /* largest limit= asked for in one request */

/* Writes the UTC time of hybrid logical clock hlc as "YYYY-MM-DDTHH:MM:SS.mmmZ" into buf. */
static void hlc_time(long long hlc, char *buf, size_t cap)
{
    long long ms = hlc >= 0 ? hlc >> 16 : 0;
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char day[32];

    if (gmtime_r(&secs, &tm) == NULL || strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        snprintf(buf, cap, "?");
    else
        snprintf(buf, cap, "%s.%03lldZ", day, ms % 1000);
}

/* Prints one change as a line. */
static void print_change(const json_t *c)
{
    char when[48];
    sbuf op, table, pk, data;

    sbuf_init(&op);
    sbuf_init(&table);
    sbuf_init(&pk);
    sbuf_init(&data);
    hlc_time((long long)json_integer_value(json_object_get(c, "hlc")), when, sizeof(when));
    table_value(&op, json_object_get(c, "op"));
    table_value(&table, json_object_get(c, "table"));
    table_value(&pk, json_object_get(c, "pk"));
    table_value(&data, json_object_get(c, "data"));
    printf("%6lld  %s  %-6s  %-13s  %s  %s\n",
           (long long)json_integer_value(json_object_get(c, "seq")), when, sbuf_str(&op),
           sbuf_str(&table), sbuf_str(&pk), sbuf_str(&data));
    sbuf_free(&op);
    sbuf_free(&table);
    sbuf_free(&pk);
    sbuf_free(&data);
}

int changelog_run(cli_ctx *ctx, const cli_command *cmd, const args *a)
{
    long long since = 0, limit = -1, printed = 0;
    json_t *all = json_array(), *page = NULL, *next = NULL, *items, *c, *result;
    int ret;
    size_t i;

    if (all == NULL)
        return CLI_EXIT_UNREACHABLE;
    if ((ret = args_int(a, ARGS_SINCE, 0, LLONG_MAX, &since)) != CLI_EXIT_OK ||
        (ret = args_int(a, ARGS_LIMIT, 1, LLONG_MAX, &limit)) != CLI_EXIT_OK)
        goto free_all;
    for (;;) {
        sbuf path;
        char num[32];

        sbuf_init(&path);
        sbuf_add(&path, "/v1/changes");
        snprintf(num, sizeof(num), "%lld", since);
        http_query_add(&path, "since", num);
        if (limit >= 0) {
            snprintf(num, sizeof(num), "%lld",
                     limit - printed < PAGE_MAX ? limit - printed : PAGE_MAX);
            http_query_add(&path, "limit", num);
        }
        ret = path.failed ? CLI_EXIT_UNREACHABLE
                          : http_json(ctx->http, "GET", sbuf_str(&path), NULL, &page);
        sbuf_free(&path);
        if (ret != CLI_EXIT_OK)
            goto free_all;
        items = json_object_get(page, "items");
        if (!json_is_array(items)) {
            fprintf(stderr, "sangam: %s answered the change log without \"items\"\n",
                    http_where(ctx->http));
            ret = CLI_EXIT_UNREACHABLE;
            goto free_all;
        }
        json_array_foreach(items, i, c)
        {
            if (limit >= 0 && printed >= limit)
                break;
            if (ctx->json)
                json_array_append(all, c);
            else
                print_change(c);
            printed++;
        }
        json_decref(next);
        next = json_incref(json_object_get(page, "next"));
        json_decref(page);
        page = NULL;
        if (!json_is_integer(next) || (limit >= 0 && printed >= limit))
            break;
        if (json_integer_value(next) <= since) {
            fprintf(stderr, "sangam: the change log did not advance past seq %lld\n", since);
            ret = CLI_EXIT_REFUSED;
            goto free_all;
        }
        since = (long long)json_integer_value(next);
    }
    if (ctx->json) {
        result = json_pack("{s:O,s:O}", "items", all, "next", next != NULL ? next : json_null());
        table_json(stdout, result);
        json_decref(result);
    }
    (void)cmd;
free_all:
    json_decref(next);
    json_decref(page);
    json_decref(all);
    return ret;
}
