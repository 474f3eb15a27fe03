/*
 * tls.h - mutual TLS 1.3 between the hub and its regions, and HTTPS for the hub's API, as an
 * engine with no I/O.
 *
 * The engine is fed the ciphertext that arrived from the network and hands back the ciphertext
 * to send; OpenSSL never touches a socket (two memory BIOs, as in h2o and tlsuv). transport.c
 * owns the socket and moves the bytes. This keeps every TLS decision testable in memory: the
 * unit tests handshake two engines by passing buffers between them.
 *
 * Policy, fixed here rather than configurable, because both ends are ours:
 *   - TLS 1.3 only; no session tickets or resumption; ALPN "sangam/1" is required.
 *   - Both sides verify the peer against the coalition CA file alone (never the system store).
 *   - The server (the hub) requires a client certificate whose extendedKeyUsage allows
 *     clientAuth; the region it speaks for is the certificate's one DNS subjectAltName.
 *   - The client (a region) requires a server certificate that allows serverAuth and carries
 *     the DNS subjectAltName "hub".
 *
 * Enrollment is the one exception to mutual authentication. A node joining with an invite has
 * no certificate and no CA file yet, only the SHA-256 pin of the CA's public key (as kubeadm's
 * --discovery-token-ca-cert-hash). It offers ALPN "sangam-join/1" alone; the hub, deciding per
 * connection from the ClientHello, then asks it for no certificate, and such a connection never
 * has a region (sg_tls_peer_region refuses it; sg_tls_is_join says which it is). The joiner
 * verifies the hub as a region would, with the CA certificate found in the hub's chain whose
 * pin matches the invite as its only trust anchor. A client offering "sangam/1" is treated as
 * a region whatever else it offers.
 *
 * HTTPS is the third kind of context (sg_tls_ctx_new_https), for the hub's API read by
 * browsers, curl and the CLI: the server side only, the hub's own certificate, TLS 1.2 and 1.3,
 * no client certificate (the API's tokens authenticate), no tickets, ALPN http/1.1 or none.
 * None of the replication rules above apply to it, and it never yields a region.
 *
 * The drain contract: after EVERY call into an engine (feed, feed_eof, handshake, read, write,
 * shutdown) the caller must drain it - sg_tls_take() and send what it returns - even when the
 * call failed. Reads produce output too: the alert that ends a failed read, and whatever TLS
 * 1.3 post-handshake messages OpenSSL decides to answer at once. A failed call usually leaves
 * an alert that tells the peer why; sending it before closing is what lets the peer report a
 * useful error.
 *
 * After a failure an engine stays failed: every later call returns the same code and message.
 * The only thing left to do is drain, send, close the socket and sg_tls_free().
 */
#ifndef SANGAM_TLS_H
#define SANGAM_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "sangam/error.h"

#define SG_TLS_ALPN      "sangam/1"
#define SG_TLS_ALPN_JOIN "sangam-join/1" /* enrollment: the client has no certificate yet */
#define SG_TLS_HUB       "hub"           /* the DNS name a hub's certificate must carry */
#define SG_TLS_ALPN_HTTP "http/1.1"      /* HTTPS: the one protocol the API speaks */

typedef struct sg_tls_ctx sg_tls_ctx; /* configuration shared by many connections */
typedef struct sg_tls sg_tls;         /* one connection */

/* Makes a context for the server (is_server 1: the hub) or client (0: a region) side, trusting
 * only the certificates in ca_file and presenting cert_file (a PEM chain, leaf first) with
 * key_file (an unencrypted PEM key). A client may pass NULL for both cert_file and key_file to
 * present no certificate (the hub will refuse it; useful only for tests and diagnostics). Fails
 * with SG_ECONFIG and a message naming the file ("[tls] key /x/b.key does not match certificate
 * /x/b.pem"), SG_EINVAL for a server without a certificate, or SG_ENOMEM.
 *
 * A server context also accepts enrollment connections (ALPN sangam-join/1, no client
 * certificate; see sg_tls_is_join) and sends the certificates of ca_file after its own chain,
 * so that a joiner can find the CA its invite pins. */
int sg_tls_ctx_new(sg_tls_ctx **out, int is_server, const char *ca_file, const char *cert_file,
                   const char *key_file, sg_err *err);
/* A client context for enrollment (a node joining with an invite): presents no certificate,
 * offers only ALPN sangam-join/1, and accepts the hub only if the chain the hub sends contains a
 * CA certificate whose public-key pin equals pin_hex (64 lowercase hex chars: SHA-256 of the DER
 * SubjectPublicKeyInfo, as sg_cert_pin in server/ca.h computes) and that CA verifies the hub's
 * leaf certificate (serverAuth, DNS name "hub", validity) - the normal hub checks, with the pinned
 * certificate as the only trust anchor. The pinned certificate must also be a CA
 * (basicConstraints CA:TRUE) signed by its own key, so that what the joiner saves was made by the
 * holder of the pinned key. A mismatch fails the handshake with SG_EAUTH and a message saying the
 * hub's CA does not match the invite's pin (and what pin it had). SG_EINVAL, naming the problem,
 * when pin_hex is not 64 lowercase hex characters; SG_ENOMEM or SG_ETLS if OpenSSL fails. */
int sg_tls_ctx_new_join(sg_tls_ctx **out, const char *pin_hex, sg_err *err);
/* A server context for HTTPS (the hub's API): presents cert_file (a PEM chain, leaf first; the
 * hub's certificate made by sangamd init) with key_file (an unencrypted PEM key). TLS 1.2 (ECDHE
 * with AEAD suites, no renegotiation) and 1.3; no session tickets or resumption; no client
 * certificate requested. ALPN: "http/1.1" is selected when offered, a client offering no ALPN is
 * accepted, one offering only other protocols (h2 alone) is refused with SG_ETLS and a message
 * naming what it offered. Fails with SG_EINVAL when either file is not given, SG_ECONFIG naming
 * the file (unreadable, not PEM, key and certificate not a pair), SG_ETLS or SG_ENOMEM. */
int sg_tls_ctx_new_https(sg_tls_ctx **out, const char *cert_file, const char *key_file,
                         sg_err *err);
/* Frees a context (NULL-safe). Engines made from it keep their own reference and may outlive it.
 */
void sg_tls_ctx_free(sg_tls_ctx *ctx);

/* Makes an engine for one connection, ready for sg_tls_handshake(). SG_ENOMEM or SG_ETLS. */
int sg_tls_new(sg_tls **out, sg_tls_ctx *ctx, sg_err *err);
/* Frees an engine (NULL-safe). Sends nothing: call sg_tls_shutdown() and drain first for a
 * clean close. */
void sg_tls_free(sg_tls *t);

/* Hands the engine len bytes of ciphertext received from the peer; nothing is decrypted until
 * the next handshake or read. 0, SG_ENOMEM, or SG_EINVAL after sg_tls_feed_eof(). */
int sg_tls_feed(sg_tls *t, const void *data, size_t len);
/* Tells the engine the peer's byte stream has ended. Once the bytes already fed are used up,
 * reads report the end: SG_ECLOSED if the peer sent close_notify before, otherwise a
 * truncation error (SG_ETLS), since an attacker can cut a connection but not forge
 * close_notify. */
void sg_tls_feed_eof(sg_tls *t);

/* Advances the handshake with what was fed. Returns 1 when it is complete (and at once on every
 * later call), 0 when it needs more input (drain, send, wait for bytes, feed, call again), or a
 * negative code with a message a person can act on: SG_EAUTH when a certificate was refused
 * (by this side or, as the peer's alert says, by the peer), SG_ETLS for anything else (version,
 * ALPN, malformed input, the stream ending early).
 *
 * In TLS 1.3 the client finishes first: its handshake returns 1 before the server has checked
 * the client's certificate. A refusal by the server then reaches the client as an alert, and
 * the client's next sg_tls_read() returns it. Bytes that arrived together with the peer's last
 * handshake flight are kept: call sg_tls_read() after this returns 1, even without new input. */
int sg_tls_handshake(sg_tls *t, sg_err *err);

/* Decrypts into buf (cap > 0 bytes). Returns 0 with *out_n bytes, where *out_n == 0 means more
 * input is needed; call again until it gives 0 bytes, as one call returns at most one record.
 * SG_ECLOSED when the peer sent close_notify (a clean end; this side may still write and
 * should send its own close_notify with sg_tls_shutdown()). SG_ETLS or SG_EAUTH on error,
 * including "connection cut without close_notify" once sg_tls_feed_eof() was called.
 * SG_EINVAL before the handshake completed. */
int sg_tls_read(sg_tls *t, void *buf, size_t cap, size_t *out_n, sg_err *err);

/* Encrypts all len bytes into the output (memory BIOs never block, so it never returns
 * partial). SG_EINVAL before the handshake completed, SG_ECLOSED after sg_tls_shutdown(),
 * SG_ETLS or SG_ENOMEM on error. */
int sg_tls_write(sg_tls *t, const void *data, size_t len, sg_err *err);

/* Queues close_notify. After it, this side writes nothing more; reading continues until the
 * peer's close_notify (SG_ECLOSED). A no-op returning 0 when the handshake has not completed or
 * the engine failed (there is nothing to close cleanly), or when called twice. */
int sg_tls_shutdown(sg_tls *t);

/* Bytes of ciphertext waiting to be sent. */
size_t sg_tls_pending(const sg_tls *t);
/* Moves all waiting ciphertext into a new malloc'd buffer (*out, caller frees, *out_len bytes);
 * *out is NULL and *out_len 0 when there is none. 0 or SG_ENOMEM (the bytes stay queued). */
int sg_tls_take(sg_tls *t, char **out, size_t *out_len);

/* The negotiated ALPN protocol ("sangam/1", "sangam-join/1", or for HTTPS "http/1.1" or "" when
 * the client offered none), or "" before the handshake completed. */
const char *sg_tls_alpn(const sg_tls *t);
/* The negotiated protocol version ("TLSv1.3", "TLSv1.2"), or "" before the handshake completed.
 */
const char *sg_tls_version(const sg_tls *t);
/* 1 if this engine's handshake negotiated sangam-join/1 (server side: the peer presented no
 * certificate and may only enroll; client side: made by sg_tls_ctx_new_join), else 0 (also before
 * the handshake completed). A server must ask this before sg_tls_peer_region, which refuses an
 * enrollment connection. */
int sg_tls_is_join(const sg_tls *t);
/* After the handshake, client side: the CA certificate the join context pinned, as PEM in a new
 * malloc'd NUL-terminated string (*out, caller frees). SG_EINVAL otherwise (*out NULL), SG_ENOMEM.
 * Lets the joiner save the CA it verified. */
int sg_tls_pinned_ca_pem(const sg_tls *t, char **out, sg_err *err);

/* Server side, after the handshake: the region the client speaks for, copied into out (cap
 * bytes, at least SG_REGION_MAX + 1). The client certificate must carry exactly one DNS
 * subjectAltName and it must be a valid region id other than "hub"; otherwise SG_EAUTH with a
 * message. SG_EAUTH ("enrollment connection: no certificate") on an enrollment connection.
 * SG_EINVAL on the client side, on an HTTPS connection, or before the handshake. */
int sg_tls_peer_region(sg_tls *t, char *out, size_t cap, sg_err *err);
/* The peer certificate's subject as an RFC 2253 string ("CN=bundelkhand,O=..."), or "" before
 * the handshake completed or when the peer presented none (an enrollment connection). Valid
 * until sg_tls_free(). */
const char *sg_tls_peer_subject(const sg_tls *t);
/* The peer certificate's notAfter as Unix time (for status pages), or -1 before the handshake
 * completed or when the peer presented none. */
int64_t sg_tls_peer_not_after(const sg_tls *t);

/* Internal, shared with ca.c: OpenSSL's earliest queued error as text into buf (cap bytes, "no
 * detail from OpenSSL" when the queue is empty), and an empty queue after. */
void tls_ossl_msg(char *buf, size_t cap);

#endif
