/*
 * http.h - HTTP/1.1 request parsing and response formatting, with no I/O.
 *
 * llhttp (Debian's node-llhttp sources, built in) does the parsing proper. In front of it this
 * module keeps its own strict framing rules, because llhttp 8.1 accepts things that enable
 * request smuggling (CVE-2023-30589): the request head is collected and checked byte by byte
 * before llhttp sees it, and is refused on a bare CR, a bare LF, an obsolete line folding, a NUL,
 * or a size over SG_HTTP_HEAD_MAX. Transfer-Encoding in a request is refused outright (bodies
 * must carry Content-Length), which removes the CL+TE ambiguity altogether.
 *
 * A parser yields one request at a time: after a complete request, sg_http_parser_feed stops and
 * reports how many bytes it used; the caller answers, calls sg_http_parser_next, and feeds the
 * rest (pipelined requests are answered in order).
 */
#ifndef SANGAM_HTTP_H
#define SANGAM_HTTP_H

#include <stddef.h>

#include <jansson.h>
#include <llhttp.h>

#include "sangam/error.h"

#define SG_HTTP_HEAD_MAX (16u * 1024)
#define SG_HTTP_BODY_MAX (16u * 1024 * 1024)
#define SG_HTTP_URL_MAX  4096u

typedef struct sg_http_req {
    const char *method;        /* "GET", "POST", ... (static string) */
    char url[SG_HTTP_URL_MAX]; /* request target as sent */
    char *path;                /* points into url: the part before '?' (NUL-terminated) */
    char *query;               /* points into url: after '?', or "" */
    char content_type[128];    /* Content-Type value, or "" */
    char authorization[128];   /* Authorization value, or "" ("!" when longer than fits) */
    int local;                 /* set by the transport: the request came over the Unix socket */
    char *body;                /* owned by the parser; NUL-terminated for convenience */
    size_t body_len;
    int keep_alive; /* the connection may serve another request after this one */
} sg_http_req;

typedef struct sg_http_parser {
    llhttp_t ll;                 /* the llhttp state; its data points back here */
    llhttp_settings_t settings;  /* callbacks */
    char head[SG_HTTP_HEAD_MAX]; /* request head collected so far */
    size_t head_len;
    int head_done;    /* head complete and handed to llhttp */
    int complete;     /* a whole request is ready in req */
    int headers_done; /* llhttp reached the end of the head (on_headers_complete ran) */
    int hdr_state;    /* which header is being read: 0 other, 1 content-type, 2 TE */
    size_t url_len;   /* bytes of req.url filled */
    size_t body_cap;
    int cb_status;    /* HTTP status a callback chose to fail with */
    char cb_msg[160]; /* message for cb_status */
    sg_http_req req;
} sg_http_parser;

void sg_http_parser_init(sg_http_parser *p);
/* Releases the body buffer (NULL-safe). */
void sg_http_parser_free(sg_http_parser *p);
/* Feeds len bytes. Returns 1 when a request is complete (p->req; *used bytes were consumed and
 * the rest belong to later requests), 0 when all bytes were consumed and more are needed, or a
 * negative SG_E* code for a request that must be refused: *status is the HTTP status to answer
 * (400, 413, 431, 501) and err says why. After an error the connection must be closed. */
int sg_http_parser_feed(sg_http_parser *p, const char *data, size_t len, size_t *used, int *status,
                        sg_err *err);
/* Readies the parser for the next request on the same connection. */
void sg_http_parser_next(sg_http_parser *p);
/* 1 if no byte of a next request has arrived yet. */
int sg_http_parser_idle(const sg_http_parser *p);

/* Formats a complete response into a new buffer (*out, caller frees). */
int sg_http_format(char **out, size_t *out_len, int status, const char *content_type,
                   const char *body, size_t body_len, int keep_alive);
/* The reason phrase of a status code. */
const char *sg_http_reason(int status);

/* Parses an application/x-www-form-urlencoded query into an object of strings. Repeated keys,
 * bad %-escapes, NUL bytes and invalid UTF-8 are refused with SG_EHTTP. */
int sg_http_query_parse(json_t **out, const char *query, sg_err *err);

#endif
