/*
 * fuzz_http.c - libFuzzer target for the node's request path: HTTP framing (server/http.c), then
 * routing, query and JSON parsing and the store behind them (server/api.c, store.c, import.c),
 * and the query-string parser on its own (sg_http_query_parse).
 *
 * The input is one connection's byte stream. It is fed to sg_http_parser in chunks whose sizes
 * come from a small generator seeded by the first byte (all bytes are fed, the first included),
 * so where reads split a request is fuzzed too. Every complete request is answered by
 * sg_api_handle against a real database, as sangamd would; an error ends the connection, as in
 * transport.c.
 *
 * Besides what the sanitizers catch, these properties are checked and abort() when broken, so
 * the fuzzer reports the input (abort is this harness's, the server never aborts on input):
 *   1. feed consumes no more than it was given, and all of it when it asks for more;
 *   2. a refusal carries an error code and one of the statuses http.h documents;
 *   3. the strict framing holds for every request that got through: its head (after any empty
 *      lines) has no bare CR, no bare LF, no obsolete line folding, no Transfer-Encoding header
 *      and is at most SG_HTTP_HEAD_MAX bytes (docs/API.md, CVE-2023-30589);
 *   4. every answer is one JSON object (none for 204) - except a successful text/... answer
 *      (CSV exports, /metrics), which is text without NUL bytes - and an error answer is always
 *      exactly {"error": {"code": <the code sg_api_handle reported>, "message": ...}};
 *   5. no request leaves a transaction open on the database;
 *   6. sg_http_query_parse yields an object of strings with non-empty keys.
 *
 * The database lives in a private temporary directory (WAL cannot be used on ":memory:", which
 * sg_store_open insists on), created on first use and removed at exit. It is recreated every
 * STORE_RESET_RUNS inputs so that it stays small. synchronous=OFF: durability is not under test
 * here and fsync would dominate the run time.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sqlite3.h>

#include "api.h"
#include "http.h"
#include "store.h"

#define STORE_RESET_RUNS 5000
#define MAX_REQUESTS     64 /* per input: enough for pipelining, bounded for speed */

#define FUZZ_NAME "fuzz_http.c"
#include "fuzz_harness.h"

/* Opens a fresh store (removing the previous one). */
static sg_store *store(void)
{
    if (H.st != NULL && H.runs < STORE_RESET_RUNS)
        return H.st;
    harness_fresh_store();
    H.runs = 0;
    return H.st;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    store();
    return 0;
}

/* Property 3: the head of the request in s[0..n) as the strict rules allow it. */
static void check_head(const uint8_t *s, size_t n)
{
    size_t i = 0, end;
    int line_start = 1;

    /* Empty lines before the request line are tolerated (RFC 9112 2.2). */
    while (i + 1 < n && s[i] == '\r' && s[i + 1] == '\n')
        i += 2;
    for (end = i; end + 3 < n; end++)
        if (memcmp(s + end, "\r\n\r\n", 4) == 0)
            break;
    require(end + 3 < n); /* the head ends with an empty line */
    end += 4;
    require(end - i <= SG_HTTP_HEAD_MAX);
    for (size_t k = i; k < end; k++) {
        require(s[k] != '\0');
        if (s[k] == '\r')
            require(k + 1 < end && s[k + 1] == '\n');
        if (s[k] == '\n')
            require(k > i && s[k - 1] == '\r');
        if (line_start && k > i && k + 2 < end)
            require(s[k] != ' ' && s[k] != '\t'); /* obs-fold */
        if (line_start && end - k >= 18)
            require(strncasecmp((const char *)s + k, "transfer-encoding:", 18) != 0);
        line_start = s[k] == '\n';
    }
}

/* Property 4. */
static void check_response(const sg_api_resp *resp)
{
    require(resp->status >= 200 && resp->status <= 599);
    if (resp->status == 204) {
        require(resp->body == NULL || resp->body_len == 0);
        return;
    }
    if (resp->content_type != NULL) {
        require(resp->status < 400 && strncmp(resp->content_type, "text/", 5) == 0);
        require(resp->body != NULL && strlen(resp->body) == resp->body_len);
        return;
    }
    require_json_answer(resp);
}

/* Property 6, on the input as a query string (bounded as a request target is). */
static void fuzz_query(const uint8_t *data, size_t size)
{
    char q[SG_HTTP_URL_MAX];
    size_t n = size < sizeof(q) - 1 ? size : sizeof(q) - 1;
    json_t *obj = NULL, *v;
    const char *key;
    sg_err err = {0};

    memcpy(q, data, n);
    q[n] = '\0';
    if (sg_http_query_parse(&obj, q, &err) < 0) {
        require(obj == NULL && err.code == SG_EHTTP && err.msg[0] != '\0');
        return;
    }
    require(json_is_object(obj));
    json_object_foreach(obj, key, v)
    {
        require(key[0] != '\0');
        require(json_is_string(v));
    }
    json_decref(obj);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sg_api api = {.st = store(), .role = "region"};
    sg_http_parser *p = malloc(sizeof(*p));
    uint32_t rnd = size ? data[0] * 2654435761u + 1 : 1;
    size_t off = 0, start = 0;
    int requests = 0, stop = 0;

    H.runs++;
    fuzz_query(data, size);
    if (p == NULL)
        return 0;
    sg_http_parser_init(p);
    while (off < size && !stop) {
        size_t chunk, end, pos;
        /* Chunk sizes: whole input (seed 0), single bytes, or pseudo-random splits. */
        rnd = rnd * 1103515245u + 12345u;
        if (data[0] % 4 == 0)
            chunk = size;
        else if (data[0] % 4 == 1)
            chunk = 1;
        else
            chunk = 1 + (rnd >> 16) % (data[0] % 4 == 2 ? 16 : 4096);
        end = off + chunk < size ? off + chunk : size;
        pos = off;
        while (pos < end) {
            size_t used = 0;
            int status = 0, rc;
            sg_err err = {0};

            rc = sg_http_parser_feed(p, (const char *)data + pos, end - pos, &used, &status, &err);
            require(used <= end - pos); /* property 1 */
            pos += used;
            if (rc < 0) { /* property 2: the connection ends here */
                require(err.code != 0 && err.msg[0] != '\0');
                require(status == 400 || status == 413 || status == 414 || status == 431 ||
                        status == 501 || status == 503);
                stop = 1;
                break;
            }
            if (rc == 0) {
                require(pos == end);
                break;
            }
            {
                sg_api_resp resp;
                char *wire = NULL;
                size_t wire_len = 0;

                require(p->req.method != NULL && p->req.path != NULL && p->req.query != NULL);
                require(p->req.body_len <= SG_HTTP_BODY_MAX);
                require(p->req.body == NULL || p->req.body[p->req.body_len] == '\0');
                check_head(data + start, pos - start); /* property 3 */
                sg_api_handle(&api, &p->req, &resp);
                check_response(&resp);                                     /* property 4 */
                require(sqlite3_get_autocommit(sg_store_db(api.st)) != 0); /* property 5 */
                require(sg_http_format(&wire, &wire_len, resp.status, "application/json", resp.body,
                                       resp.body_len, p->req.keep_alive) == 0);
                free(wire);
                sg_api_resp_free(&resp);
                if (!p->req.keep_alive || ++requests >= MAX_REQUESTS)
                    stop = 1;
                sg_http_parser_next(p);
                start = pos;
            }
            if (stop)
                break;
        }
        off = end;
    }
    sg_http_parser_free(p);
    free(p);
    return 0;
}
