/*
 * http.h - the client's only door to the node: HTTP/1.1 over the node's Unix socket or TCP,
 * with JSON bodies (libcurl and jansson underneath).
 *
 * Invariants: one http_client holds one curl handle, reused so consecutive requests share a
 * connection. Functions that return an int return a CLI_EXIT_* status (cli.h) and have already
 * printed one line on stderr when it is not CLI_EXIT_OK: transport failures name the socket or
 * URL and suggest checking sangamd (CLI_EXIT_UNREACHABLE); API errors are printed as
 * "sangam: <message> (<code>)" (CLI_EXIT_REFUSED).
 */
#ifndef SANGAM_CLIENT_HTTP_H
#define SANGAM_CLIENT_HTTP_H

#include <jansson.h>
#include <stddef.h>

#include "sangam/sbuf.h"

typedef struct http_client http_client;

/* Called during a request with the bytes of the body sent so far and the total. */
typedef void (*http_progress_fn)(void *arg, long long sent, long long total);

typedef struct http_request {
    const char *method;        /* "GET", "POST", "PATCH" or "DELETE" */
    const char *path;          /* absolute path with an escaped query ("/v1/members?kind=staff") */
    const char *content_type;  /* type of body, or NULL for none */
    const char *body;          /* bytes to send, or NULL; the caller owns them */
    size_t body_len;           /* bytes in body */
    http_progress_fn progress; /* upload progress callback, or NULL */
    void *progress_arg;        /* passed to progress */
} http_request;

typedef struct http_response {
    long status;  /* HTTP status code */
    json_t *json; /* parsed body, or NULL when the body was empty; owned (http_response_free) */
    char *text;   /* a 2xx body that is text/... (CSV, metrics), NUL-terminated; owned */
} http_response;

#define HTTP_RUN_DIR "/run/sangam" /* where packaged nodes put their sockets */

/* Makes a client for node: a Unix socket path, an "http://host:port" or "https://..." URL (a
 * trailing "/" is ignored), or NULL for the default node: $SANGAM_NODE, else the only *.sock in
 * HTTP_RUN_DIR. Everything is decided at the first request, which reports a malformed or
 * ambiguous node (CLI_EXIT_USAGE) or no node at all (CLI_EXIT_UNREACHABLE); this call fails only
 * when out of memory. node must outlive c. */
int http_open(http_client **out, const char *node);
/* Frees c and closes its connection (NULL-safe). */
void http_close(http_client *c);
/* Where c talks to, for messages: "socket /run/sangam/x.sock" or "http://host:port" (or "the
 * node" before the first request). */
const char *http_where(const http_client *c);

/* Sends req and reads the whole answer into out (any HTTP status). Returns CLI_EXIT_OK when an
 * answer arrived whose body is empty or JSON; otherwise CLI_EXIT_UNREACHABLE, and out holds
 * nothing to free. */
int http_send(http_client *c, const http_request *req, http_response *out);
/* Prints the error an answer carries as "sangam: <message> (<code>)" and returns
 * CLI_EXIT_REFUSED. For answers without an API error object it names the HTTP status. */
int http_fail(const http_response *r);
/* Frees the body of r (NULL-safe) and clears it. */
void http_response_free(http_response *r);

/* Sends a request whose body, when given, is the JSON value body (not consumed). On a 2xx
 * answer stores its JSON in *out (NULL for an empty body; the caller decrefs) and returns
 * CLI_EXIT_OK; on any other answer prints it with http_fail and returns CLI_EXIT_REFUSED. out
 * may be NULL when the caller needs no body. */
int http_json(http_client *c, const char *method, const char *path, const json_t *body,
              json_t **out);

/* Appends "?key=value" (or "&key=value" when b already holds a '?') to the path in b,
 * percent-encoding key and value. */
void http_query_add(sbuf *b, const char *key, const char *value);

#endif
