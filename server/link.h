/*
 * link.h - one replication connection: TCP (libuv) + TLS engine (tls.c) + frames (frame.h).
 *
 * The link turns a byte stream into decoded messages and back. It owns its socket, its TLS
 * engine and its timers; the session logic above it (hub.c, uplink.c) sees only messages and
 * one close callback. Promises, in libuv's manner:
 * - on_close runs exactly once per link that was started successfully, after every handle is
 *   closed; the link's memory is freed right after on_close returns;
 * - a start function that returns an error has started nothing and will call nothing;
 * - ciphertext the engine produces is drained and written after every call into it.
 * Frames are reassembled with their length checked against SG_FRAME_MAX before any payload
 * buffer is allocated. Dead links: with keepalive on, a PING goes out when nothing was sent for
 * one interval, and a link that received nothing for two intervals is closed.
 */
#ifndef SANGAM_LINK_H
#define SANGAM_LINK_H

#include <stdint.h>

#include <uv.h>

#include "sangam/error.h"
#include "sangam/frame.h"
#include "tls.h"

#define SG_LINK_HANDSHAKE_MS 10000 /* default deadline for the handshake and HELLO/WELCOME */

typedef struct sg_link sg_link;

typedef struct sg_link_cbs {
    /* The TLS handshake finished and the peer is authenticated. */
    void (*on_open)(sg_link *l, void *arg);
    /* One message; m's strings and batch point into a buffer valid during the call only. */
    void (*on_msg)(sg_link *l, const sg_msg *m, void *arg);
    /* Room in the write queue again after sg_link_busy() said it was full. */
    void (*on_drain)(sg_link *l, void *arg);
    /* The link is closed: code is 0 for a clean close (BYE or close_notify), else why. */
    void (*on_close)(sg_link *l, int code, const char *why, void *arg);
} sg_link_cbs;

/* Dials addr and handshakes as a TLS client. */
int sg_link_connect(sg_link **out, uv_loop_t *loop, sg_tls_ctx *tls, const struct sockaddr *addr,
                    const sg_link_cbs *cbs, void *arg, sg_err *err);
/* Accepts a pending connection on server and handshakes as the TLS server. */
int sg_link_accept(sg_link **out, uv_stream_t *server, sg_tls_ctx *tls, const sg_link_cbs *cbs,
                   void *arg, sg_err *err);

/* Sends one message (encoded, encrypted, queued). Returns 0 or an error (the link is then
 * closing). */
int sg_link_send(sg_link *l, const sg_msg *m);
/* Sends ERROR(code, text), then closes the link cleanly. */
void sg_link_fail(sg_link *l, int code, const char *text);
/* Closes: close_notify if the handshake finished, then the socket. code/why reach on_close. */
void sg_link_close(sg_link *l, int code, const char *why);

/* 1 while more than the high-water mark of ciphertext waits to be written. */
int sg_link_busy(const sg_link *l);
/* Starts keepalive (PING after interval_ms of sending nothing, dead after 2x of receiving
 * nothing); PINGs from the peer are then answered with PONG by the link itself. */
void sg_link_keepalive(sg_link *l, uint64_t interval_ms);
/* Sets the deadline for the TLS handshake and, after it, for HELLO/WELCOME (until
 * sg_link_keepalive): PROTOCOL.md 7.4 bounds both by twice the keepalive interval. */
void sg_link_deadline(sg_link *l, uint64_t ms);
/* 1 once open if the connection is an enrollment one (ALPN sangam-join/1): on the server, the
 * peer has no certificate and sg_link_peer is ""; it may only JOIN. */
int sg_link_is_join(const sg_link *l);
/* Client side of an enrollment connection: the pinned CA as PEM (tls.h). */
int sg_link_pinned_ca_pem(const sg_link *l, char **out, sg_err *err);
/* Server side: the region id of the peer's certificate ("" before on_open). */
const char *sg_link_peer(const sg_link *l);
/* "ip:port" of the peer, for logs. */
const char *sg_link_addr(const sg_link *l);
/* Bytes this link moved: ciphertext received and sent, and decrypted bytes received. */
void sg_link_bytes(const sg_link *l, uint64_t *wire_rx, uint64_t *wire_tx, uint64_t *plain_rx);
/* The link's user pointer (arg), which may be replaced. */
void *sg_link_arg(const sg_link *l);
void sg_link_set_arg(sg_link *l, void *arg);

#endif
