/*
 * sangam/frame.h - replication frames and session messages (proto/PROTOCOL.md, section 7).
 *
 * On the wire a frame is a 4-byte big-endian payload length followed by that many bytes: one
 * msgpack array whose first element is the message type. The length is checked against a cap
 * before anything is allocated for the payload; the payload is checked with sg_mp_check before
 * msgpack-c sees it. Decoded strings and the BATCH body point into the caller's buffer.
 */
#ifndef SANGAM_FRAME_H
#define SANGAM_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "sangam/error.h"

#define SG_PROTO_VERSION 1u                  /* the only version spoken so far */
#define SG_FRAME_HEADER  4u                  /* bytes of the length prefix */
#define SG_FRAME_MAX     (1024u * 1024 + 64) /* largest payload accepted by default */
#define SG_MSG_TEXT_MAX  1024u               /* ERROR message and BYE reason, bytes */
#define SG_PEM_MAX       8192u               /* JOIN, RENEW csr; CERT cert and ca: bytes of PEM */
#define SG_SECRET_MIN    32u                 /* JOIN secret: bytes of lowercase hex, at least */
#define SG_SECRET_MAX    64u                 /* ... and at most */

typedef enum sg_msg_type {
    SG_MSG_HELLO = 1,          /* region -> hub: [1, version, node, schema] */
    SG_MSG_WELCOME = 2,        /* hub -> region: [2, version, node, schema, seq] */
    SG_MSG_BATCH = 3,          /* region -> hub: [3, batch] (batch as in section 2) */
    SG_MSG_ACK = 4,            /* hub -> region: [4, seq] */
    SG_MSG_PING = 5,           /* either way: [5, nonce] */
    SG_MSG_PONG = 6,           /* either way: [6, nonce] */
    SG_MSG_ERROR = 7,          /* either way: [7, code, text] */
    SG_MSG_BYE = 8,            /* either way: [8, text] */
    SG_MSG_SNAPSHOT_BEGIN = 9, /* region -> hub: [9, seq] */
    SG_MSG_SNAPSHOT_END = 10,  /* region -> hub: [10, seq, count] */
    SG_MSG_STATUS = 11,        /* region -> hub: [11, seq, hlc] (its head, for lag) */
    SG_MSG_JOIN = 12,          /* joiner -> hub (enrollment): [12, version, region, secret, csr] */
    SG_MSG_CERT = 13,          /* hub -> node: [13, cert, ca] (answers JOIN or RENEW) */
    SG_MSG_RENEW = 14,         /* region -> hub, after WELCOME: [14, csr] */
    SG_MSG_RESTORE = 15,       /* region -> hub, after WELCOME: [15, seq] (send me my rows) */
    SG_MSG_RESTORE_END = 16,   /* hub -> region: [16, seq, count] (the rows reflect cursor seq) */
} sg_msg_type;

typedef struct sg_msg {
    sg_msg_type type;
    uint32_t version; /* HELLO, WELCOME, JOIN: protocol version */
    const char *node; /* HELLO: region id; WELCOME: hub id; JOIN: the invited region id (not
                         NUL-terminated) */
    uint32_t node_len;
    uint32_t schema;  /* HELLO, WELCOME: database schema version of the sender */
    uint64_t seq;     /* WELCOME: last seq applied from this region; ACK: last seq applied;
                         SNAPSHOT_BEGIN/END: the region's seq the snapshot reflects;
                         RESTORE: the region's head; RESTORE_END: the hub's cursor */
    uint64_t nonce;   /* PING, PONG */
    uint64_t count;   /* SNAPSHOT_END, RESTORE_END: rows sent */
    uint64_t hlc;     /* STATUS: the region's clock at its head */
    const char *code; /* ERROR: an error name from sangam/error.h ("unsupported") */
    uint32_t code_len;
    const char *text; /* ERROR: message; BYE: reason (UTF-8, not NUL-terminated) */
    uint32_t text_len;
    const void *batch; /* BATCH: the encoded batch, to decode with sg_batch_decode */
    size_t batch_len;
    const char *secret; /* JOIN: the invite's one-time secret, lowercase hex (not NUL-terminated) */
    uint32_t secret_len;
    const char *pem; /* JOIN, RENEW: the CSR; CERT: the node's certificate (PEM text, not
                        NUL-terminated) */
    uint32_t pem_len;
    const char *pem2; /* CERT: the coalition CA certificate (PEM text, not NUL-terminated) */
    uint32_t pem2_len;
} sg_msg;

/* Reads a frame header: *out_len is the payload length. SG_ETOOBIG if it exceeds max,
 * SG_EFORMAT if it is 0. Nothing is allocated, so a hostile length costs nothing. */
int sg_frame_len(uint32_t *out_len, const uint8_t hdr[SG_FRAME_HEADER], uint32_t max, sg_err *err);

/* Decodes one payload (without its header). Unknown types, wrong element counts or types,
 * strings over their limits and trailing bytes are refused with a code and a message. A HELLO,
 * WELCOME or JOIN whose version is not SG_PROTO_VERSION returns SG_EUNSUPPORTED with out->type and
 * out->version filled, so the receiver can say which versions it speaks. */
int sg_msg_decode(sg_msg *out, const void *payload, size_t len, sg_err *err);

/* Encodes m as a complete frame (header and payload) in a new buffer (*out, caller frees). For
 * BATCH, m->batch/batch_len are the already-encoded batch bytes, copied in after the header. */
int sg_msg_encode(void **out, size_t *out_len, const sg_msg *m);

/* The name of a message type ("HELLO"), for logs; "UNKNOWN" otherwise. */
const char *sg_msg_name(int type);

#endif
