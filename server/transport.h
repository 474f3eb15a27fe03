/*
 * transport.h - the API's network edge: libuv listeners (Unix socket, TCP, and on the hub HTTPS)
 * and HTTP/1.1 connections feeding http.c's parser and answering with api.c. On HTTPS the TLS
 * engine (tls.c) sits between the socket and the parser.
 *
 * This is the only module that touches uv_stream_t for the API. Promises (libuv's): a handle's
 * memory is freed only in its close callback; a start function that fails has started nothing.
 *
 * Limits that keep one client from hurting the others: at most SG_HTTP_MAX_CONNS connections;
 * a request must arrive whole within SG_HTTP_REQUEST_MS of its first byte (slowloris), and an
 * HTTPS handshake complete within SG_HTTP_REQUEST_MS of the connection; an idle keep-alive
 * connection is closed after SG_HTTP_IDLE_MS (HTTPS with close_notify); reading pauses while a
 * client does not read its answers. A failed handshake is logged (tls_handshake_failed) and
 * ends its own connection only.
 *
 * Only the Unix socket is local (sg_http_req.local); on a hub api.c asks every request over TCP
 * or HTTPS for a token.
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

/* Adds an HTTPS listener on addr ("host:port", as [api] https) serving the same API with
 * cert_file and key_file (the hub's [tls] cert and key; see sg_tls_ctx_new_https for the TLS
 * policy). Fails, having started nothing and leaving srv serving as before, with the codes of
 * sg_tls_ctx_new_https (a message naming the file), SG_ECONFIG for a bad address, or SG_EIO when
 * it cannot listen there. */
int sg_http_server_listen_https(sg_http_server *srv, const char *addr, const char *cert_file,
                                const char *key_file, sg_err *err);

/* Stops accepting, lets requests in progress finish (up to SG_HTTP_DRAIN_MS), closes every
 * handle and then calls done(arg) and frees the server. */
void sg_http_server_shutdown(sg_http_server *srv, void (*done)(void *arg), void *arg);

#endif
