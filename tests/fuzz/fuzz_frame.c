/*
 * fuzz_frame.c - libFuzzer target for replication frames and messages (proto/frame.c).
 *
 * Besides "never crash, never leak, never read out of bounds" (the sanitizers' part), it checks
 * these properties and abort()s when one fails, so the fuzzer reports the input:
 *   1. Failures are reported: a refused payload gives a negative code, the same code in err and
 *      a message, and the same code when no err is given; SG_EUNSUPPORTED only for a HELLO,
 *      WELCOME or JOIN whose version is not 1.
 *   2. Round trip: a decoded message re-encodes, its header gives its payload length, the payload
 *      decodes to the same message, and re-encoding that gives the same bytes (canonical form).
 *   3. A BATCH body the frame layer accepted never fails sg_batch_decode's structural checks
 *      (truncated, trailing_bytes, too_deep): the two layers agree on what one value is.
 *   4. The input read as a stream of frames (header, payload, header, ...) through sg_frame_len
 *      and a small reader cap decodes frame by frame with the same properties.
 *   5. Encoder implies decoder: a message built from the input's bytes either is refused by the
 *      encoder with SG_EINVAL / SG_ETOOBIG, or decodes back to itself.
 * abort() is for this harness only; the library itself never aborts on input.
 * tests/fuzz/replay.c replays the corpus through this file under CTest without libFuzzer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sangam/batch.h"
#include "sangam/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts when a property does not hold. */
static void require(int ok)
{
    if (!ok)
        abort();
}

static int bytes_eq(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* 1 if the two messages carry the same content. */
static int msg_eq(const sg_msg *a, const sg_msg *b)
{
    return a->type == b->type && a->version == b->version && a->schema == b->schema &&
           a->seq == b->seq && a->nonce == b->nonce && a->count == b->count && a->hlc == b->hlc &&
           bytes_eq(a->node, a->node_len, b->node, b->node_len) &&
           bytes_eq(a->code, a->code_len, b->code, b->code_len) &&
           bytes_eq(a->text, a->text_len, b->text, b->text_len) &&
           bytes_eq(a->batch, a->batch_len, b->batch, b->batch_len) &&
           bytes_eq(a->secret, a->secret_len, b->secret, b->secret_len) &&
           bytes_eq(a->pem, a->pem_len, b->pem, b->pem_len) &&
           bytes_eq(a->pem2, a->pem2_len, b->pem2, b->pem2_len);
}

/* Property 2 for a message m that decoded (or that the encoder accepted, when frame is given):
 * encodes it, decodes the payload, compares, re-encodes and compares bytes. */
static void check_round_trip(const sg_msg *m)
{
    void *f1 = NULL, *f2 = NULL;
    size_t l1 = 0, l2 = 0;
    uint32_t plen = 0;
    sg_msg d;
    sg_err err;

    require(sg_msg_encode(&f1, &l1, m) == 0);
    require(f1 != NULL && l1 > SG_FRAME_HEADER);
    require(sg_frame_len(&plen, f1, SG_FRAME_MAX, &err) == 0);
    require(plen == l1 - SG_FRAME_HEADER);
    require(sg_msg_decode(&d, (uint8_t *)f1 + SG_FRAME_HEADER, plen, &err) == 0);
    require(msg_eq(m, &d));
    require(sg_msg_encode(&f2, &l2, &d) == 0);
    require(bytes_eq(f1, l1, f2, l2));
    free(f2);
    free(f1);
}

/* Decodes one payload and checks properties 1-3. */
static void check_payload(const uint8_t *p, size_t len)
{
    sg_batch *b = NULL;
    sg_msg m, m2;
    sg_err err;
    int rc;

    sg_err_clear(&err);
    rc = sg_msg_decode(&m, p, len, &err);
    require(sg_msg_decode(&m2, p, len, NULL) == rc);
    if (rc != 0) {
        require(rc < 0 && err.code == rc && err.msg[0] != '\0');
        if (rc == SG_EUNSUPPORTED)
            require((m.type == SG_MSG_HELLO || m.type == SG_MSG_WELCOME || m.type == SG_MSG_JOIN) &&
                    m.version != SG_PROTO_VERSION);
        else
            require(m.type == 0);
        return;
    }
    require(m.type >= SG_MSG_HELLO && m.type <= SG_MSG_RESTORE_END);
    check_round_trip(&m);
    if (m.type == SG_MSG_BATCH) {
        require(m.batch == p + 2 && m.batch_len == len - 2);
        rc = sg_batch_decode(&b, m.batch, m.batch_len, NULL, &err);
        require(rc != SG_ETRUNC && rc != SG_ETRAILING && rc != SG_EDEPTH);
        require((rc == 0) == (b != NULL));
        sg_batch_free(b);
    }
}

/* Property 4: the input as a stream of frames, read as a receiver would with a small cap. */
static void check_stream(const uint8_t *data, size_t size)
{
    size_t pos = 0;

    while (size - pos >= SG_FRAME_HEADER) {
        uint32_t len = 0;
        sg_err err;
        int rc = sg_frame_len(&len, data + pos, 4096, &err);

        if (rc != 0) {
            require((rc == SG_EFORMAT || rc == SG_ETOOBIG) && err.code == rc);
            return;
        }
        require(len >= 1 && len <= 4096);
        pos += SG_FRAME_HEADER;
        if (len > size - pos)
            return; /* a reader would wait for more bytes */
        check_payload(data + pos, len);
        pos += len;
    }
}

/* Reads an n-byte (n <= 8) big-endian number from the input, 0 past its end. */
static uint64_t take(const uint8_t **p, size_t *left, unsigned n)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < n; i++) {
        v <<= 8;
        if (*left > 0) {
            v |= **p;
            (*p)++;
            (*left)--;
        }
    }
    return v;
}

/* Points *s at up to n bytes of the input; returns how many. */
static uint32_t take_str(const char **s, const uint8_t **p, size_t *left, size_t n)
{
    if (n > *left)
        n = *left;
    *s = (const char *)*p;
    *p += n;
    *left -= n;
    return (uint32_t)n;
}

/* Property 5. */
static void check_encoder(const uint8_t *data, size_t size)
{
    const uint8_t *p = data;
    size_t left = size;
    sg_msg m;
    void *f = NULL;
    size_t flen = 99;
    int rc;

    memset(&m, 0, sizeof(m));
    /* Every type, and the two just outside the range (0 and SG_MSG_RESTORE_END + 1). */
    m.type = (sg_msg_type)(take(&p, &left, 1) % (SG_MSG_RESTORE_END + 2));
    m.version = (uint32_t)(take(&p, &left, 1) % 3);
    m.schema = (uint32_t)take(&p, &left, 4);
    m.seq = take(&p, &left, 8);
    m.nonce = take(&p, &left, 8);
    m.count = take(&p, &left, 8);
    m.hlc = take(&p, &left, 8);
    m.node_len = take_str(&m.node, &p, &left, take(&p, &left, 1) % 70);
    m.code_len = take_str(&m.code, &p, &left, take(&p, &left, 1) % 70);
    m.text_len = take_str(&m.text, &p, &left, take(&p, &left, 2) % (SG_MSG_TEXT_MAX + 8));
    m.secret_len = take_str(&m.secret, &p, &left, take(&p, &left, 1) % (SG_SECRET_MAX + 8));
    m.pem_len = take_str(&m.pem, &p, &left, take(&p, &left, 2) % (SG_PEM_MAX + 8));
    m.pem2_len = take_str(&m.pem2, &p, &left, take(&p, &left, 2) % (SG_PEM_MAX + 8));
    m.batch = p;
    m.batch_len = left;

    rc = sg_msg_encode(&f, &flen, &m);
    if (rc != 0) {
        require(rc == SG_EINVAL || rc == SG_ETOOBIG);
        require(f == NULL && flen == 0);
        return;
    }
    free(f);
    /* Only the fields of m's type travel; compare against a copy holding just those. */
    {
        sg_msg want;
        memset(&want, 0, sizeof(want));
        want.type = m.type;
        switch (m.type) {
        case SG_MSG_WELCOME:
            want.seq = m.seq;
            /* fall through */
        case SG_MSG_HELLO:
            want.version = m.version;
            want.node = m.node;
            want.node_len = m.node_len;
            want.schema = m.schema;
            break;
        case SG_MSG_BATCH:
            want.batch = m.batch;
            want.batch_len = m.batch_len;
            break;
        case SG_MSG_ACK:
        case SG_MSG_SNAPSHOT_BEGIN:
        case SG_MSG_RESTORE:
            want.seq = m.seq;
            break;
        case SG_MSG_SNAPSHOT_END:
        case SG_MSG_RESTORE_END:
            want.seq = m.seq;
            want.count = m.count;
            break;
        case SG_MSG_STATUS:
            want.seq = m.seq;
            want.hlc = m.hlc;
            break;
        case SG_MSG_PING:
        case SG_MSG_PONG:
            want.nonce = m.nonce;
            break;
        case SG_MSG_ERROR:
            want.code = m.code;
            want.code_len = m.code_len;
            /* fall through */
        case SG_MSG_BYE:
            want.text = m.text;
            want.text_len = m.text_len;
            break;
        case SG_MSG_JOIN:
            want.version = m.version;
            want.node = m.node;
            want.node_len = m.node_len;
            want.secret = m.secret;
            want.secret_len = m.secret_len;
            want.pem = m.pem;
            want.pem_len = m.pem_len;
            break;
        case SG_MSG_CERT:
            want.pem2 = m.pem2;
            want.pem2_len = m.pem2_len;
            /* fall through */
        case SG_MSG_RENEW:
            want.pem = m.pem;
            want.pem_len = m.pem_len;
            break;
        }
        check_round_trip(&want);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_payload(data, size);
    check_stream(data, size);
    check_encoder(data, size);
    return 0;
}
