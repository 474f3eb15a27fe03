/*
 * test_http.c - request framing (server/http.c): requests split at every byte boundary parse
 * the same; pipelined requests come out one at a time; every smuggling vector is refused with
 * the right status; query strings decode strictly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"

static const char post[] = "POST /v1/members?x=1 HTTP/1.1\r\nHost: n\r\n"
                           "Content-Type: application/json\r\nContent-Length: 13\r\n\r\n"
                           "{\"name\":\"A\"}\n";

/* Feeds data in two pieces split at cut; returns the parser's result for the whole. */
static int feed_split(sg_http_parser *p, const char *data, size_t len, size_t cut, int *status)
{
    size_t used = 0, off = 0;
    sg_err err = {0};
    int rc = sg_http_parser_feed(p, data, cut, &used, status, &err);
    off = used;
    if (rc != 0)
        return rc;
    rc = sg_http_parser_feed(p, data + off, len - off, &used, status, &err);
    return rc;
}

static void test_split_everywhere(void **state)
{
    (void)state;
    for (size_t cut = 0; cut <= sizeof(post) - 1; cut++) {
        sg_http_parser p;
        int status = 0;
        sg_http_parser_init(&p);
        assert_int_equal(feed_split(&p, post, sizeof(post) - 1, cut, &status), 1);
        assert_string_equal(p.req.method, "POST");
        assert_string_equal(p.req.path, "/v1/members");
        assert_string_equal(p.req.query, "x=1");
        assert_string_equal(p.req.content_type, "application/json");
        assert_int_equal(p.req.body_len, 13);
        assert_memory_equal(p.req.body, "{\"name\":\"A\"}\n", 13);
        assert_true(p.req.keep_alive);
        sg_http_parser_free(&p);
    }
}

static void test_pipelined(void **state)
{
    /* The first request carries a token; the second, on the same connection, must not
     * inherit it (a keep-alive connection is not a session). */
    const char two[] = "GET /a HTTP/1.1\r\nHost: n\r\nAuthorization: Bearer sgt_x\r\n\r\n"
                       "GET /b HTTP/1.1\r\nHost: n\r\nConnection: close\r\n\r\n";
    sg_http_parser p;
    size_t used = 0, off = 0;
    int status = 0;
    sg_err err = {0};
    (void)state;

    sg_http_parser_init(&p);
    assert_int_equal(sg_http_parser_feed(&p, two, sizeof(two) - 1, &used, &status, &err), 1);
    assert_string_equal(p.req.path, "/a");
    assert_string_equal(p.req.authorization, "Bearer sgt_x");
    assert_true(p.req.keep_alive);
    off = used;
    assert_true(off < sizeof(two) - 1);
    sg_http_parser_next(&p);
    assert_int_equal(
        sg_http_parser_feed(&p, two + off, sizeof(two) - 1 - off, &used, &status, &err), 1);
    assert_string_equal(p.req.path, "/b");
    assert_string_equal(p.req.authorization, "");
    assert_false(p.req.keep_alive);
    assert_int_equal(off + used, sizeof(two) - 1);
    sg_http_parser_free(&p);
}

static void expect_refused_n(const char *req, size_t len, int want_status)
{
    sg_http_parser p;
    size_t used = 0;
    int status = 0;
    sg_err err = {0};
    sg_http_parser_init(&p);
    int rc = sg_http_parser_feed(&p, req, len, &used, &status, &err);
    if (rc >= 0 || status != want_status)
        fail_msg("request %.40s...: rc %d status %d, want refusal with %d", req, rc, status,
                 want_status);
    assert_true(err.msg[0] != '\0');
    /* Nothing of a refused request is accepted, and no body is buffered for it. */
    assert_false(p.complete);
    assert_null(p.req.body);
    assert_true(p.head_len <= SG_HTTP_HEAD_MAX);
    sg_http_parser_free(&p);
}

static void expect_refused(const char *req, int want_status)
{
    expect_refused_n(req, strlen(req), want_status);
}

static void test_smuggling_refused(void **state)
{
    (void)state;
    expect_refused("GET / HTTP/1.1\r\nHost: a\rX-Evil: 1\r\n\r\n", 400); /* bare CR */
    expect_refused("GET / HTTP/1.1\nHost: a\r\n\r\n", 400);              /* bare LF */
    expect_refused("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400); /* obs-fold */
    expect_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                   400); /* CL + TE */
    expect_refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    expect_refused("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400);
    {
        static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: \0\r\n\r\n";
        expect_refused_n(nul, sizeof(nul) - 1, 400);
    }
    expect_refused("POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413);
    expect_refused("GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n", 501);
    expect_refused("GARBAGE\r\n\r\n", 400);
    {
        size_t n = SG_HTTP_HEAD_MAX + 100;
        char *big = malloc(n + 1);
        memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
        memset(big + 19, 'a', n - 19);
        big[n] = '\0';
        expect_refused(big, 431);
        free(big);
    }
}

/* Feeds req one byte at a time, as a slow or hostile client may send it; returns the first
 * refusal's status, or 0 if the bytes were all accepted (a complete request or more wanted). */
static int bytewise_status(const char *req, size_t len)
{
    sg_http_parser p;
    int status = 0;

    sg_http_parser_init(&p);
    for (size_t i = 0; i < len; i++) {
        size_t used = 0;
        sg_err err = {0};
        int rc = sg_http_parser_feed(&p, req + i, 1, &used, &status, &err);
        if (rc < 0)
            break;
        assert_int_equal(used, 1);
        status = 0;
        if (rc == 1)
            break;
    }
    sg_http_parser_free(&p);
    return status;
}

/* The smuggling and resource vectors beyond test_smuggling_refused's: each variant of a bare CR,
 * obsolete folding, Transfer-Encoding and conflicting or malformed Content-Length, and heads over
 * the limit made of many small headers, whole or fed a byte at a time. */
static void test_hostile_vectors(void **state)
{
    static const char *const bad400[] = {
        /* bare CR: in the request line, before the final CRLF, alone at the end of a value */
        "GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r \r\n\r\n",
        /* obs-fold with a tab, and a fold continuing Content-Length */
        "GET / HTTP/1.1\r\nHost: a\r\n\tfolded\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1\r\n 0\r\n\r\n0123456789",
        /* Transfer-Encoding in any case or value, before or after Content-Length */
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
        "POST / HTTP/1.1\r\ntRaNsFeR-eNcOdInG: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n",
        /* white space between a field name and its colon (RFC 9112 5.1: must be refused) */
        "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length : 3\r\n\r\nabc",
        /* duplicate Content-Length, even when equal; lists; signs; not a number */
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 0x3\r\n\r\nabc",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bad400) / sizeof(bad400[0]); i++) {
        expect_refused(bad400[i], 400);
        if (bytewise_status(bad400[i], strlen(bad400[i])) != 400)
            fail_msg("fed byte by byte, request %zu was not refused with 400", i);
    }

    /* A head over the limit made of many small headers is refused as soon as it passes the
     * limit, whole or a byte at a time; a request target over 4096 bytes gets 414. */
    {
        size_t cap = 2 * SG_HTTP_HEAD_MAX, n = 0;
        char *big = malloc(cap + 1);
        assert_non_null(big);
        n += (size_t)snprintf(big, cap, "GET / HTTP/1.1\r\n");
        while (n + 16 < cap)
            n += (size_t)snprintf(big + n, cap - n, "X-%05zu: 12345\r\n", n);
        big[n] = '\0';
        expect_refused(big, 431);
        assert_int_equal(bytewise_status(big, n), 431);

        n = (size_t)snprintf(big, cap, "GET /");
        memset(big + n, 'a', SG_HTTP_URL_MAX);
        n += SG_HTTP_URL_MAX;
        n += (size_t)snprintf(big + n, cap - n, " HTTP/1.1\r\nHost: a\r\n\r\n");
        expect_refused(big, 414);
        free(big);
    }
}

static void test_query_parse(void **state)
{
    json_t *q = NULL;
    sg_err err = {0};
    (void)state;
    assert_int_equal(sg_http_query_parse(&q, "kind=entrepreneur&q=Ram+Singh&d=%E0%A4%95&e=", &err),
                     0);
    assert_string_equal(json_string_value(json_object_get(q, "q")), "Ram Singh");
    assert_string_equal(json_string_value(json_object_get(q, "d")), "\xe0\xa4\x95");
    assert_string_equal(json_string_value(json_object_get(q, "e")), "");
    json_decref(q);
    assert_int_equal(sg_http_query_parse(&q, "a=1&a=2", &err), SG_EHTTP);
    assert_int_equal(sg_http_query_parse(&q, "a=%zz", &err), SG_EHTTP);
    assert_int_equal(sg_http_query_parse(&q, "a=%0", &err), SG_EHTTP);
    assert_int_equal(sg_http_query_parse(&q, "a=%00", &err), SG_EHTTP);
    assert_int_equal(sg_http_query_parse(&q, "a=%ff", &err), SG_EHTTP);
    assert_int_equal(sg_http_query_parse(&q, "=x", &err), SG_EHTTP);
    assert_null(q);
}

static void test_format(void **state)
{
    char *out;
    size_t len;
    (void)state;
    assert_int_equal(sg_http_format(&out, &len, 404, "application/json", "{}", 2, 0), 0);
    assert_true(len > 2);
    assert_memory_equal(out, "HTTP/1.1 404 Not Found\r\n", 24);
    assert_non_null(strstr(out, "Content-Length: 2\r\n"));
    assert_non_null(strstr(out, "Connection: close\r\n"));
    assert_memory_equal(out + len - 2, "{}", 2);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_everywhere),  cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_smuggling_refused), cmocka_unit_test(test_hostile_vectors),
        cmocka_unit_test(test_query_parse),       cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
