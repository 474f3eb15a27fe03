/*
 * transport.h - the API's network edge: libuv listeners (Unix socket and TCP) and HTTP/1.1
 * connections feeding http.c's parser and answering with api.c.
 *
 * This is the only module that touches uv_stream_t for the API. Promises (libuv's): a handle's
 * memory is freed only in its close callback; a start function that fails has started nothing.
 *
 * Limits that keep one client from hurting the others: at most SG_HTTP_MAX_CONNS connections;
 * a request must arrive whole within SG_HTTP_REQUEST_MS of its first byte (slowloris); an idle
 * keep-alive connection is closed after SG_HTTP_IDLE_MS; reading pauses while a client does not
 * read its answers.
 */
#ifndef SANGAM_TRANSPORT_H
#define SANGAM_TRANSPORT_H

#include <uv.h>

#include "api.h"
#include "sangam/error.h"

#define SG_HTTP_MAX_CONNS  512
#define SG_HTTP_REQUEST_MS 30000
#define SG_HTTP_IDLE_MS    30000
#define SG_HTTP_DRAIN_MS   5000 /* how long shutdown waits for a request in progress */

typedef struct sg_http_server sg_http_server;

/* Starts serving api on socket_path (may be NULL or "") and listen ("host:port", may be NULL or
 * ""). The socket file is created with mode 0660; a stale one left by a crash is replaced, a live
 * one (another node answering) is an error. */
int sg_http_server_start(sg_http_server **out, uv_loop_t *loop, sg_api *api,
                         const char *socket_path, const char *listen, sg_err *err);

/* Stops accepting, lets requests in progress finish (up to SG_HTTP_DRAIN_MS), closes every
 * handle and then calls done(arg) and frees the server. */
void sg_http_server_shutdown(sg_http_server *srv, void (*done)(void *arg), void *arg);

#endif
