/*
 * test_frame.c - unit tests of proto/frame.c.
 *
 * What is proven here: every message type round-trips through the encoder and decoder; the hex
 * examples of proto/PROTOCOL.md section 7.3 decode to what the document says and re-encode byte
 * for byte; every prefix of every example is refused as truncated and every extra byte as
 * trailing; every wrong msgpack type at every position is refused with its code and message;
 * HELLO, WELCOME and JOIN of another version stop at the version whatever follows; the frame
 * header refuses 0 and oversized lengths before anything is allocated; string rules (node ids,
 * error codes, UTF-8 text, invite secrets, PEM text and their limits) hold on both sides; a BATCH
 * body must be exactly one msgpack value and is handed over undecoded.
 *
 * Every input is decoded from an exact-size heap copy, so AddressSanitizer sees a read one byte
 * past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sangam/batch.h"
#include "sangam/frame.h"

#if defined(__SANITIZE_ADDRESS__)
#define TF_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TF_ASAN 1
#endif
#endif

#ifdef TF_ASAN
const char *__asan_default_options(void);
/* Makes any single allocation over 64 MiB a reported error, so a decoder that trusted a length
 * header claiming gigabytes fails the test. */
const char *__asan_default_options(void)
{
    return "max_allocation_size_mb=64";
}
#endif

/* ---- helpers ---- */

/* Bytes from a hex string ("92 a8 6d"; spaces ignored) into a new exact-size allocation. */
static uint8_t *hex(const char *h, size_t *out_len)
{
    size_t n = 0, cap = strlen(h) / 2 + 1;
    uint8_t *b = test_malloc(cap);

    for (const char *p = h; *p != '\0';) {
        unsigned v;
        if (*p == ' ' || *p == '\n') {
            p++;
            continue;
        }
        assert_int_equal(sscanf(p, "%2x", &v), 1);
        b[n++] = (uint8_t)v;
        p += 2;
    }
    *out_len = n;
    return b;
}

/* An exact-size heap copy of b[0..n), non-NULL even when n is 0. */
static uint8_t *dup_exact(const void *b, size_t n)
{
    uint8_t *c = test_malloc(n > 0 ? n : 1);
    if (n > 0)
        memcpy(c, b, n);
    return c;
}

/* A growing byte buffer for building test payloads. */
typedef struct tbuf {
    uint8_t *b;
    size_t len, cap;
} tbuf;

static void tb_put(tbuf *t, const void *p, size_t n)
{
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap : 64;
        while (cap < t->len + n)
            cap *= 2;
        t->b = test_realloc(t->b, cap);
        t->cap = cap;
    }
    memcpy(t->b + t->len, p, n);
    t->len += n;
}

static void tb_hex(tbuf *t, const char *h)
{
    size_t n;
    uint8_t *b = hex(h, &n);
    tb_put(t, b, n);
    test_free(b);
}

static void tb_byte(tbuf *t, uint8_t v)
{
    tb_put(t, &v, 1);
}

/* Appends a msgpack str header (shortest form) and the bytes. */
static void tb_str(tbuf *t, const char *s, size_t n)
{
    if (n < 32) {
        tb_byte(t, (uint8_t)(0xa0 + n));
    } else if (n < 256) {
        tb_byte(t, 0xd9);
        tb_byte(t, (uint8_t)n);
    } else {
        tb_byte(t, 0xda);
        tb_byte(t, (uint8_t)(n >> 8));
        tb_byte(t, (uint8_t)n);
    }
    tb_put(t, s, n);
}

static void tb_free(tbuf *t)
{
    test_free(t->b);
    memset(t, 0, sizeof(*t));
}

/* Decodes len bytes of buf through an exact-size copy and asserts the code; on failure also that
 * err holds the same code and a message. Returns the copy (the message points into it; caller
 * frees). */
static uint8_t *decode_expect(sg_msg *out, const void *buf, size_t len, int want, sg_err *err)
{
    uint8_t *copy = dup_exact(buf, len);
    int rc;

    sg_err_clear(err);
    rc = sg_msg_decode(out, copy, len, err);
    if (rc != want)
        fail_msg("decode returned %d (%s), want %d (%s); message: %s", rc, sg_strerror_name(rc),
                 want, sg_strerror_name(want), err->msg);
    if (rc != 0) {
        assert_int_equal(err->code, rc);
        assert_true(err->msg[0] != '\0');
    }
    return copy;
}

/* A decode that must fail with want, and with message msg when msg is not NULL. */
static void refuse(const void *buf, size_t len, int want, const char *msg)
{
    sg_msg m;
    sg_err err;
    uint8_t *copy = decode_expect(&m, buf, len, want, &err);

    if (msg != NULL && strcmp(err.msg, msg) != 0)
        fail_msg("message\n  got:  %s\n  want: %s", err.msg, msg);
    test_free(copy);
}

static void refuse_tb(const tbuf *t, int want, const char *msg)
{
    refuse(t->b, t->len, want, msg);
}

static void refuse_hex(const char *h, int want, const char *msg)
{
    size_t n;
    uint8_t *b = hex(h, &n);
    refuse(b, n, want, msg);
    test_free(b);
}

static void assert_bytes_eq(const void *a, size_t alen, const void *b, size_t blen)
{
    assert_int_equal(alen, blen);
    if (alen > 0)
        assert_memory_equal(a, b, alen);
}

/* Asserts that two messages carry the same content. */
static void assert_msg_eq(const sg_msg *a, const sg_msg *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->schema, b->schema);
    assert_true(a->seq == b->seq);
    assert_true(a->nonce == b->nonce);
    assert_true(a->count == b->count);
    assert_true(a->hlc == b->hlc);
    assert_bytes_eq(a->node, a->node_len, b->node, b->node_len);
    assert_bytes_eq(a->code, a->code_len, b->code, b->code_len);
    assert_bytes_eq(a->text, a->text_len, b->text, b->text_len);
    assert_bytes_eq(a->batch, a->batch_len, b->batch, b->batch_len);
    assert_bytes_eq(a->secret, a->secret_len, b->secret, b->secret_len);
    assert_bytes_eq(a->pem, a->pem_len, b->pem, b->pem_len);
    assert_bytes_eq(a->pem2, a->pem2_len, b->pem2, b->pem2_len);
}

/* 1 if [p, p + n) lies inside [buf, buf + len). */
static int inside(const void *p, size_t n, const void *buf, size_t len)
{
    const char *c = p, *b = buf;
    return c >= b && c + n <= b + len;
}

/* Encodes m, checks the header, decodes the payload, compares, and re-encodes the decoded message
 * to the same bytes. */
static void round_trip(const sg_msg *m)
{
    void *frame = NULL, *again = NULL;
    size_t flen = 0, alen = 0;
    uint32_t plen = 0;
    uint8_t *copy;
    sg_msg d;
    sg_err err;

    assert_int_equal(sg_msg_encode(&frame, &flen, m), 0);
    assert_non_null(frame);
    assert_true(flen > SG_FRAME_HEADER);
    assert_int_equal(sg_frame_len(&plen, frame, SG_FRAME_MAX, &err), 0);
    assert_int_equal(plen, flen - SG_FRAME_HEADER);
    copy = decode_expect(&d, (uint8_t *)frame + SG_FRAME_HEADER, plen, 0, &err);
    assert_msg_eq(m, &d);
    assert_int_equal(sg_msg_encode(&again, &alen, &d), 0);
    assert_bytes_eq(frame, flen, again, alen);
    free(again);
    free(frame);
    test_free(copy);
}

#define S(x) x, (uint32_t)strlen(x)

/* The batch example of PROTOCOL.md section 6 (the same bytes as in test_batch.c). */
#define BATCH_EXAMPLE_HEX                                                                          \
    "92 a8 6d 69 72 7a 61 70 75 72 dd 00 00 00 03 96"                                              \
    "29 cf 01 8f d3 3d e5 00 00 00 a7 6d 65 6d 62 65"                                              \
    "72 73 ba 30 31 48 5a 58 33 4b 37 51 47 34 4d 39"                                              \
    "42 32 4e 35 50 38 52 36 54 31 56 30 57 01 83 a4"                                              \
    "6e 61 6d 65 a9 e0 a4 86 e0 a4 b6 e0 a4 be aa 62"                                              \
    "69 72 74 68 5f 79 65 61 72 cd 07 c7 a5 70 68 6f"                                              \
    "6e 65 c0 96 2a cf 01 8f d3 3d e5 00 00 01 a6 69"                                              \
    "73 73 75 65 73 ba 30 31 48 5a 58 33 4d 32 44 35"                                              \
    "46 38 47 31 4a 34 4b 37 4e 30 50 33 51 36 52 39"                                              \
    "02 81 a6 73 74 61 74 75 73 a8 72 65 73 6f 6c 76"                                              \
    "65 64 96 2b cf 01 8f d3 3d e5 00 00 02 aa 61 74"                                              \
    "74 65 6e 64 61 6e 63 65 ba 30 31 48 5a 58 33 4e"                                              \
    "38 42 34 43 36 44 30 45 32 46 35 47 37 48 39 4a"                                              \
    "31 4b 33 03 c0"

/* The PEM texts of the JOIN, CERT and RENEW examples (PROTOCOL.md 7.3.13-7.3.15): a CSR for
 * mirzapur's new key, the certificate the hub issued for it, and the coalition CA certificate.
 * Each is given as text and as the hex of the frames; test_examples checks that they agree. */
static const char EX_CSR[] = "-----BEGIN CERTIFICATE REQUEST-----\n"
                             "MIHOMHUCAQAwEzERMA8GA1UEAwwIbWlyemFwdXIwWTATBgcqhkjOPQIBBggqhkjO\n"
                             "PQMBBwNCAAQz33DqpI2h2gkaHOeQRT3odb3NMsuqJdWuJ5XIAsftG9SXRvDMu7LX\n"
                             "FLAgzfzaEUqXqDywqJ/fISnDjWsspF1BoAAwCgYIKoZIzj0EAwIDSQAwRgIhALLA\n"
                             "DlBM4UWFwyWh+cdl6Tl49BxP5I/Dk3yU6mTj2IblAiEAno3LiRj/KxfXzmYcZicO\n"
                             "9OlbTq+g1cipLW+kGpn8bFg=\n"
                             "-----END CERTIFICATE REQUEST-----\n";

#define EX_CSR_HEX                                                                                 \
    "2d 2d 2d 2d 2d 42 45 47 49 4e 20 43 45 52 54 49 46 49 43 41 54 45 20 52 "                     \
    "45 51 55 45 53 54 2d 2d 2d 2d 2d 0a 4d 49 48 4f 4d 48 55 43 41 51 41 77 "                     \
    "45 7a 45 52 4d 41 38 47 41 31 55 45 41 77 77 49 62 57 6c 79 65 6d 46 77 "                     \
    "64 58 49 77 57 54 41 54 42 67 63 71 68 6b 6a 4f 50 51 49 42 42 67 67 71 "                     \
    "68 6b 6a 4f 0a 50 51 4d 42 42 77 4e 43 41 41 51 7a 33 33 44 71 70 49 32 "                     \
    "68 32 67 6b 61 48 4f 65 51 52 54 33 6f 64 62 33 4e 4d 73 75 71 4a 64 57 "                     \
    "75 4a 35 58 49 41 73 66 74 47 39 53 58 52 76 44 4d 75 37 4c 58 0a 46 4c "                     \
    "41 67 7a 66 7a 61 45 55 71 58 71 44 79 77 71 4a 2f 66 49 53 6e 44 6a 57 "                     \
    "73 73 70 46 31 42 6f 41 41 77 43 67 59 49 4b 6f 5a 49 7a 6a 30 45 41 77 "                     \
    "49 44 53 51 41 77 52 67 49 68 41 4c 4c 41 0a 44 6c 42 4d 34 55 57 46 77 "                     \
    "79 57 68 2b 63 64 6c 36 54 6c 34 39 42 78 50 35 49 2f 44 6b 33 79 55 36 "                     \
    "6d 54 6a 32 49 62 6c 41 69 45 41 6e 6f 33 4c 69 52 6a 2f 4b 78 66 58 7a "                     \
    "6d 59 63 5a 69 63 4f 0a 39 4f 6c 62 54 71 2b 67 31 63 69 70 4c 57 2b 6b "                     \
    "47 70 6e 38 62 46 67 3d 0a 2d 2d 2d 2d 2d 45 4e 44 20 43 45 52 54 49 46 "                     \
    "49 43 41 54 45 20 52 45 51 55 45 53 54 2d 2d 2d 2d 2d 0a"

static const char EX_CERT[] = "-----BEGIN CERTIFICATE-----\n"
                              "MIIBsDCCAVWgAwIBAgIEOn8MITAKBggqhkjOPQQDAjAeMRwwGgYDVQQDDBNzYW5n\n"
                              "YW0gY29hbGl0aW9uIENBMB4XDTI2MTEyNzE0NDA1M1oXDTI3MDIyNTE0NDA1M1ow\n"
                              "EzERMA8GA1UEAwwIbWlyemFwdXIwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQz\n"
                              "33DqpI2h2gkaHOeQRT3odb3NMsuqJdWuJ5XIAsftG9SXRvDMu7LXFLAgzfzaEUqX\n"
                              "qDywqJ/fISnDjWsspF1Bo4GLMIGIMBMGA1UdEQQMMAqCCG1pcnphcHVyMBMGA1Ud\n"
                              "JQQMMAoGCCsGAQUFBwMCMAwGA1UdEwEB/wQCMAAwDgYDVR0PAQH/BAQDAgeAMB0G\n"
                              "A1UdDgQWBBS2J6Tcz+UNzr7FJNy15MLMj09EDDAfBgNVHSMEGDAWgBTkGeAgm1Xt\n"
                              "xAuffr2FD2WHh4MSZTAKBggqhkjOPQQDAgNJADBGAiEA1rzWg0TgASRtz0+oe5S3\n"
                              "X6kVFctwdKJ5CdwEOnjcmTkCIQDK+khCmQ99o2phmVMHoya5wifqs6xAHsZd7U2/\n"
                              "ZbPIIw==\n"
                              "-----END CERTIFICATE-----\n";

#define EX_CERT_HEX                                                                                \
    "2d 2d 2d 2d 2d 42 45 47 49 4e 20 43 45 52 54 49 46 49 43 41 54 45 2d 2d "                     \
    "2d 2d 2d 0a 4d 49 49 42 73 44 43 43 41 56 57 67 41 77 49 42 41 67 49 45 "                     \
    "4f 6e 38 4d 49 54 41 4b 42 67 67 71 68 6b 6a 4f 50 51 51 44 41 6a 41 65 "                     \
    "4d 52 77 77 47 67 59 44 56 51 51 44 44 42 4e 7a 59 57 35 6e 0a 59 57 30 "                     \
    "67 59 32 39 68 62 47 6c 30 61 57 39 75 49 45 4e 42 4d 42 34 58 44 54 49 "                     \
    "32 4d 54 45 79 4e 7a 45 30 4e 44 41 31 4d 31 6f 58 44 54 49 33 4d 44 49 "                     \
    "79 4e 54 45 30 4e 44 41 31 4d 31 6f 77 0a 45 7a 45 52 4d 41 38 47 41 31 "                     \
    "55 45 41 77 77 49 62 57 6c 79 65 6d 46 77 64 58 49 77 57 54 41 54 42 67 "                     \
    "63 71 68 6b 6a 4f 50 51 49 42 42 67 67 71 68 6b 6a 4f 50 51 4d 42 42 77 "                     \
    "4e 43 41 41 51 7a 0a 33 33 44 71 70 49 32 68 32 67 6b 61 48 4f 65 51 52 "                     \
    "54 33 6f 64 62 33 4e 4d 73 75 71 4a 64 57 75 4a 35 58 49 41 73 66 74 47 "                     \
    "39 53 58 52 76 44 4d 75 37 4c 58 46 4c 41 67 7a 66 7a 61 45 55 71 58 0a "                     \
    "71 44 79 77 71 4a 2f 66 49 53 6e 44 6a 57 73 73 70 46 31 42 6f 34 47 4c "                     \
    "4d 49 47 49 4d 42 4d 47 41 31 55 64 45 51 51 4d 4d 41 71 43 43 47 31 70 "                     \
    "63 6e 70 68 63 48 56 79 4d 42 4d 47 41 31 55 64 0a 4a 51 51 4d 4d 41 6f "                     \
    "47 43 43 73 47 41 51 55 46 42 77 4d 43 4d 41 77 47 41 31 55 64 45 77 45 "                     \
    "42 2f 77 51 43 4d 41 41 77 44 67 59 44 56 52 30 50 41 51 48 2f 42 41 51 "                     \
    "44 41 67 65 41 4d 42 30 47 0a 41 31 55 64 44 67 51 57 42 42 53 32 4a 36 "                     \
    "54 63 7a 2b 55 4e 7a 72 37 46 4a 4e 79 31 35 4d 4c 4d 6a 30 39 45 44 44 "                     \
    "41 66 42 67 4e 56 48 53 4d 45 47 44 41 57 67 42 54 6b 47 65 41 67 6d 31 "                     \
    "58 74 0a 78 41 75 66 66 72 32 46 44 32 57 48 68 34 4d 53 5a 54 41 4b 42 "                     \
    "67 67 71 68 6b 6a 4f 50 51 51 44 41 67 4e 4a 41 44 42 47 41 69 45 41 31 "                     \
    "72 7a 57 67 30 54 67 41 53 52 74 7a 30 2b 6f 65 35 53 33 0a 58 36 6b 56 "                     \
    "46 63 74 77 64 4b 4a 35 43 64 77 45 4f 6e 6a 63 6d 54 6b 43 49 51 44 4b "                     \
    "2b 6b 68 43 6d 51 39 39 6f 32 70 68 6d 56 4d 48 6f 79 61 35 77 69 66 71 "                     \
    "73 36 78 41 48 73 5a 64 37 55 32 2f 0a 5a 62 50 49 49 77 3d 3d 0a 2d 2d "                     \
    "2d 2d 2d 45 4e 44 20 43 45 52 54 49 46 49 43 41 54 45 2d 2d 2d 2d 2d 0a"

static const char EX_CA[] = "-----BEGIN CERTIFICATE-----\n"
                            "MIIBpDCCAUqgAwIBAgIUOO5lV5TXoAdSbTUA2Wc4vKLZ54kwCgYIKoZIzj0EAwIw\n"
                            "HjEcMBoGA1UEAwwTc2FuZ2FtIGNvYWxpdGlvbiBDQTAeFw0yNjExMjcxNDQwNTNa\n"
                            "Fw0zNjExMjQxNDQwNTNaMB4xHDAaBgNVBAMME3NhbmdhbSBjb2FsaXRpb24gQ0Ew\n"
                            "WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQnLxDHeOetpKg/mcjdUz6cvQTdhEGK\n"
                            "5jehdfYRfYwwUly7AJaDKKO9RQ2nHp7Z77//ZTx0UNLb4vRxAODT1Jt3o2YwZDAd\n"
                            "BgNVHQ4EFgQU5BngIJtV7cQLn369hQ9lh4eDEmUwHwYDVR0jBBgwFoAU5BngIJtV\n"
                            "7cQLn369hQ9lh4eDEmUwEgYDVR0TAQH/BAgwBgEB/wIBADAOBgNVHQ8BAf8EBAMC\n"
                            "AQYwCgYIKoZIzj0EAwIDSAAwRQIgeJU4noaRsZNUarVFgF71Gh1zb3IVVEGB5mQO\n"
                            "SwZLqp0CIQDQ2OECmEYUuBppV18K5/VLbGsKohkEnGv0Rs5FfdGpTw==\n"
                            "-----END CERTIFICATE-----\n";

#define EX_CA_HEX                                                                                  \
    "2d 2d 2d 2d 2d 42 45 47 49 4e 20 43 45 52 54 49 46 49 43 41 54 45 2d 2d "                     \
    "2d 2d 2d 0a 4d 49 49 42 70 44 43 43 41 55 71 67 41 77 49 42 41 67 49 55 "                     \
    "4f 4f 35 6c 56 35 54 58 6f 41 64 53 62 54 55 41 32 57 63 34 76 4b 4c 5a "                     \
    "35 34 6b 77 43 67 59 49 4b 6f 5a 49 7a 6a 30 45 41 77 49 77 0a 48 6a 45 "                     \
    "63 4d 42 6f 47 41 31 55 45 41 77 77 54 63 32 46 75 5a 32 46 74 49 47 4e "                     \
    "76 59 57 78 70 64 47 6c 76 62 69 42 44 51 54 41 65 46 77 30 79 4e 6a 45 "                     \
    "78 4d 6a 63 78 4e 44 51 77 4e 54 4e 61 0a 46 77 30 7a 4e 6a 45 78 4d 6a "                     \
    "51 78 4e 44 51 77 4e 54 4e 61 4d 42 34 78 48 44 41 61 42 67 4e 56 42 41 "                     \
    "4d 4d 45 33 4e 68 62 6d 64 68 62 53 42 6a 62 32 46 73 61 58 52 70 62 32 "                     \
    "34 67 51 30 45 77 0a 57 54 41 54 42 67 63 71 68 6b 6a 4f 50 51 49 42 42 "                     \
    "67 67 71 68 6b 6a 4f 50 51 4d 42 42 77 4e 43 41 41 51 6e 4c 78 44 48 65 "                     \
    "4f 65 74 70 4b 67 2f 6d 63 6a 64 55 7a 36 63 76 51 54 64 68 45 47 4b 0a "                     \
    "35 6a 65 68 64 66 59 52 66 59 77 77 55 6c 79 37 41 4a 61 44 4b 4b 4f 39 "                     \
    "52 51 32 6e 48 70 37 5a 37 37 2f 2f 5a 54 78 30 55 4e 4c 62 34 76 52 78 "                     \
    "41 4f 44 54 31 4a 74 33 6f 32 59 77 5a 44 41 64 0a 42 67 4e 56 48 51 34 "                     \
    "45 46 67 51 55 35 42 6e 67 49 4a 74 56 37 63 51 4c 6e 33 36 39 68 51 39 "                     \
    "6c 68 34 65 44 45 6d 55 77 48 77 59 44 56 52 30 6a 42 42 67 77 46 6f 41 "                     \
    "55 35 42 6e 67 49 4a 74 56 0a 37 63 51 4c 6e 33 36 39 68 51 39 6c 68 34 "                     \
    "65 44 45 6d 55 77 45 67 59 44 56 52 30 54 41 51 48 2f 42 41 67 77 42 67 "                     \
    "45 42 2f 77 49 42 41 44 41 4f 42 67 4e 56 48 51 38 42 41 66 38 45 42 41 "                     \
    "4d 43 0a 41 51 59 77 43 67 59 49 4b 6f 5a 49 7a 6a 30 45 41 77 49 44 53 "                     \
    "41 41 77 52 51 49 67 65 4a 55 34 6e 6f 61 52 73 5a 4e 55 61 72 56 46 67 "                     \
    "46 37 31 47 68 31 7a 62 33 49 56 56 45 47 42 35 6d 51 4f 0a 53 77 5a 4c "                     \
    "71 70 30 43 49 51 44 51 32 4f 45 43 6d 45 59 55 75 42 70 70 56 31 38 4b "                     \
    "35 2f 56 4c 62 47 73 4b 6f 68 6b 45 6e 47 76 30 52 73 35 46 66 64 47 70 "                     \
    "54 77 3d 3d 0a 2d 2d 2d 2d 2d 45 4e 44 20 43 45 52 54 49 46 49 43 41 54 "                     \
    "45 2d 2d 2d 2d 2d 0a"

/* The invite secret of the JOIN example: 32 bytes of lowercase hex. */
#define EX_SECRET "9c4e1f0a7b3d2658e1f04a9c7d3b5e20"
#define EX_SECRET_HEX                                                                              \
    "39 63 34 65 31 66 30 61 37 62 33 64 32 36 35 38 65 31 66 30 34 61 39 63 37 64 33 62 35 65 "   \
    "32 30"

/* ---- the examples of PROTOCOL.md section 7.3: keep the two identical ---- */

typedef struct example {
    const char *hex; /* the whole frame: header and payload */
    sg_msg msg;      /* what it decodes to (BATCH: batch filled in by the test) */
} example;

static const example examples[] = {
    {"00 00 00 0d 94 01 01 a8 6d 69 72 7a 61 70 75 72 01",
     {.type = SG_MSG_HELLO, .version = 1, .node = "mirzapur", .node_len = 8, .schema = 1}},
    {"00 00 00 09 95 02 01 a3 68 75 62 01 28",
     {.type = SG_MSG_WELCOME, .version = 1, .node = "hub", .node_len = 3, .schema = 1, .seq = 40}},
    {"00 00 00 d7 92 03 " BATCH_EXAMPLE_HEX, {.type = SG_MSG_BATCH}},
    {"00 00 00 03 92 04 2b", {.type = SG_MSG_ACK, .seq = 43}},
    {"00 00 00 0b 92 05 cf 8a 3c 5e 7f 00 11 22 33",
     {.type = SG_MSG_PING, .nonce = 0x8a3c5e7f00112233ull}},
    {"00 00 00 0b 92 06 cf 8a 3c 5e 7f 00 11 22 33",
     {.type = SG_MSG_PONG, .nonce = 0x8a3c5e7f00112233ull}},
    {"00 00 00 22 93 07 a7 73 65 71 5f 67 61 70 b7 65 78 70 65 63 74 65 64 20 73 65 71 20 34 34 "
     "2c 20 67 6f 74 20 34 36",
     {.type = SG_MSG_ERROR,
      .code = "seq_gap",
      .code_len = 7,
      .text = "expected seq 44, got 46",
      .text_len = 23}},
    {"00 00 00 10 92 08 ad 73 68 75 74 74 69 6e 67 20 64 6f 77 6e",
     {.type = SG_MSG_BYE, .text = "shutting down", .text_len = 13}},
    {"00 00 00 05 92 09 cd 04 b0", {.type = SG_MSG_SNAPSHOT_BEGIN, .seq = 1200}},
    {"00 00 00 06 93 0a cd 04 b0 03", {.type = SG_MSG_SNAPSHOT_END, .seq = 1200, .count = 3}},
    {"00 00 00 0e 93 0b cd 04 b0 cf 01 a2 3b 4c 5d 6e 00 07",
     {.type = SG_MSG_STATUS, .seq = 1200, .hlc = 0x01a23b4c5d6e0007ull}},
    {"00 00 01 94 95 0c 01 a8 6d 69 72 7a 61 70 75 72 d9 20 " EX_SECRET_HEX " da 01 63 " EX_CSR_HEX,
     {.type = SG_MSG_JOIN,
      .version = 1,
      .node = "mirzapur",
      .node_len = 8,
      .secret = EX_SECRET,
      .secret_len = 32,
      .pem = EX_CSR,
      .pem_len = sizeof(EX_CSR) - 1}},
    {"00 00 05 07 93 0d da 02 88 " EX_CERT_HEX " da 02 77 " EX_CA_HEX,
     {.type = SG_MSG_CERT,
      .pem = EX_CERT,
      .pem_len = sizeof(EX_CERT) - 1,
      .pem2 = EX_CA,
      .pem2_len = sizeof(EX_CA) - 1}},
    {"00 00 01 68 92 0e da 01 63 " EX_CSR_HEX,
     {.type = SG_MSG_RENEW, .pem = EX_CSR, .pem_len = sizeof(EX_CSR) - 1}},
    /* 7.3.16-7.3.17: mirzapur, its database lost, asks for its rows from an empty one (head 0);
     * the hub sent 340 rows reflecting its cursor 1200. */
    {"00 00 00 03 92 0f 00", {.type = SG_MSG_RESTORE, .seq = 0}},
    {"00 00 00 08 93 10 cd 04 b0 cd 01 54",
     {.type = SG_MSG_RESTORE_END, .seq = 1200, .count = 340}},
};
#define NEXAMPLES (sizeof(examples) / sizeof(examples[0]))

/* The expected message of example i; for BATCH, batch/len point at bbuf (the section 6 bytes). */
static sg_msg example_msg(size_t i, const uint8_t *bbuf, size_t blen)
{
    sg_msg m = examples[i].msg;
    if (m.type == SG_MSG_BATCH) {
        m.batch = bbuf;
        m.batch_len = blen;
    }
    return m;
}

static void test_examples(void **state)
{
    size_t blen;
    uint8_t *bbuf = hex(BATCH_EXAMPLE_HEX, &blen);
    int seen[SG_MSG_RESTORE_END + 1] = {0};

    (void)state;
    assert_int_equal(blen, 213);
    assert_int_equal(sizeof(EX_CSR) - 1, 355);
    assert_int_equal(sizeof(EX_CERT) - 1, 648);
    assert_int_equal(sizeof(EX_CA) - 1, 631);
    assert_int_equal(strlen(EX_SECRET), 32);
    for (size_t i = 0; i < NEXAMPLES; i++) {
        size_t flen, elen;
        uint8_t *frame = hex(examples[i].hex, &flen);
        sg_msg want = example_msg(i, bbuf, blen), got;
        void *enc = NULL;
        uint32_t plen = 0;
        uint8_t *copy;
        sg_err err;

        seen[want.type]++;
        assert_int_equal(sg_frame_len(&plen, frame, SG_FRAME_MAX, &err), 0);
        assert_int_equal(plen, flen - SG_FRAME_HEADER);
        copy = decode_expect(&got, frame + SG_FRAME_HEADER, plen, 0, &err);
        assert_msg_eq(&want, &got);
        /* Re-encoding the decoded message and the expected one both give the example's bytes. */
        assert_int_equal(sg_msg_encode(&enc, &elen, &got), 0);
        assert_bytes_eq(enc, elen, frame, flen);
        free(enc);
        assert_int_equal(sg_msg_encode(&enc, &elen, &want), 0);
        assert_bytes_eq(enc, elen, frame, flen);
        free(enc);
        test_free(copy);
        test_free(frame);
    }
    for (int t = SG_MSG_HELLO; t <= SG_MSG_RESTORE_END; t++)
        assert_int_equal(seen[t], 1);
    test_free(bbuf);
}

/* The BATCH example's body is the section 6 batch, referenced in place, and sg_batch_decode
 * reads it. */
static void test_example_batch_body(void **state)
{
    size_t flen;
    uint8_t *frame = hex(examples[2].hex, &flen);
    sg_batch *b = NULL;
    uint8_t *copy;
    sg_msg m;
    sg_err err;

    (void)state;
    copy = decode_expect(&m, frame + 4, flen - 4, 0, &err);
    assert_int_equal(m.type, SG_MSG_BATCH);
    assert_ptr_equal(m.batch, copy + 2);
    assert_int_equal(m.batch_len, flen - 6);
    assert_int_equal(sg_batch_decode(&b, m.batch, m.batch_len, NULL, &err), 0);
    assert_int_equal(b->nchanges, 3);
    assert_true(b->changes[0].seq == 41 && b->changes[2].seq == 43);
    sg_batch_free(b);
    test_free(copy);
    test_free(frame);
}

static void test_example_prefixes_truncated(void **state)
{
    (void)state;
    for (size_t i = 0; i < NEXAMPLES; i++) {
        size_t flen;
        uint8_t *frame = hex(examples[i].hex, &flen);

        for (size_t n = 0; n < flen - SG_FRAME_HEADER; n++)
            refuse(frame + SG_FRAME_HEADER, n, SG_ETRUNC, NULL);
        test_free(frame);
    }
}

static void test_example_trailing_bytes(void **state)
{
    (void)state;
    for (size_t i = 0; i < NEXAMPLES; i++) {
        static const uint8_t extra[] = {0x00, 0xc0, 0x92};
        size_t flen;
        uint8_t *frame = hex(examples[i].hex, &flen);

        for (size_t k = 0; k < sizeof(extra); k++) {
            tbuf t = {0};
            tb_put(&t, frame + SG_FRAME_HEADER, flen - SG_FRAME_HEADER);
            tb_byte(&t, extra[k]);
            refuse_tb(&t, SG_ETRAILING, NULL);
            tb_free(&t);
        }
        test_free(frame);
    }
    refuse_hex("92 04 2b 00", SG_ETRAILING, "ACK: 1 trailing byte(s) after the 3-byte message");
    refuse_hex("92 03 c0 c0", SG_ETRAILING, "BATCH: 1 trailing byte(s) after the 1-byte batch");
}

/* Every single-byte change of every example either fails with a code and message or decodes to a
 * message that round-trips. */
static void test_example_corruptions(void **state)
{
    (void)state;
    for (size_t i = 0; i < NEXAMPLES; i++) {
        size_t flen;
        uint8_t *frame = hex(examples[i].hex, &flen);
        size_t plen = flen - SG_FRAME_HEADER;
        uint8_t *p = dup_exact(frame + SG_FRAME_HEADER, plen);

        for (size_t pos = 0; pos < plen; pos++) {
            uint8_t orig = p[pos];
            for (unsigned v = 0; v < 256; v++) {
                sg_msg m, m2;
                sg_err err;
                int rc;

                p[pos] = (uint8_t)v;
                sg_err_clear(&err);
                rc = sg_msg_decode(&m, p, plen, &err);
                /* Without an error context the code is the same. */
                assert_int_equal(sg_msg_decode(&m2, p, plen, NULL), rc);
                if (rc != 0) {
                    assert_true(rc < 0 && err.code == rc && err.msg[0] != '\0');
                } else {
                    round_trip(&m);
                }
            }
            p[pos] = orig;
        }
        test_free(p);
        test_free(frame);
    }
}

/* ---- round trips ---- */

static void test_round_trip_every_type(void **state)
{
    static const char max_node[] =
        "abcdefghijklmnopqrstuvwxyz0123456789-abcdefghijklmnopqrstuvwxyz"; /* 63 bytes */
    static const char max_code[] =
        "abcdefghijklmnopqrstuvwxyz_abcdefghijklmnopqrstuvwxyz_abcdefghij"; /* 64 bytes */
    static const char deva[] = "\xe0\xa4\x86\xe0\xa4\xb6\xe0\xa4\xbe";      /* आशा */
    static const char secret64[] =
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"; /* 64 bytes */
    static const char pem_chars[] = " ~!-=+/AZaz09\r\n";                    /* every kind allowed */
    char long_text[SG_MSG_TEXT_MAX];
    char *long_pem = test_malloc(SG_PEM_MAX);
    size_t blen;
    uint8_t *bbuf = hex(BATCH_EXAMPLE_HEX, &blen);
    static const uint64_t u64s[] = {0,          1,          127,        128,
                                    255,        256,        65535,      65536,
                                    UINT32_MAX, 1ull << 32, UINT64_MAX, 0x018fd33de5000000ull};
    static const uint32_t u32s[] = {0, 1, 127, 128, 65535, 65536, UINT32_MAX};

    (void)state;
    assert_int_equal(strlen(max_node), 63);
    assert_int_equal(strlen(max_code), 64);
    /* 1024 bytes of UTF-8: 341 three-byte characters and one ASCII byte. */
    for (size_t i = 0; i + 3 <= sizeof(long_text); i += 3)
        memcpy(long_text + i, "\xe0\xa4\x85", 3);
    long_text[sizeof(long_text) - 1] = 'x';
    /* SG_PEM_MAX bytes: 64-character lines ending in \r\n, as some tools write PEM. */
    for (size_t i = 0; i < SG_PEM_MAX; i++)
        long_pem[i] = i % 66 == 64 ? '\r' : i % 66 == 65 ? '\n' : (char)(0x20 + i % 95);
    assert_int_equal(strlen(secret64), SG_SECRET_MAX);

    for (size_t i = 0; i < sizeof(u32s) / sizeof(u32s[0]); i++) {
        sg_msg h = {.type = SG_MSG_HELLO, .version = 1, .node = S("m"), .schema = u32s[i]};
        sg_msg w = {
            .type = SG_MSG_WELCOME, .version = 1, .node = S(max_node), .schema = u32s[i], .seq = 9};
        round_trip(&h);
        round_trip(&w);
    }
    for (size_t i = 0; i < sizeof(u64s) / sizeof(u64s[0]); i++) {
        sg_msg ms[] = {
            {.type = SG_MSG_WELCOME, .version = 1, .node = S("hub"), .schema = 1, .seq = u64s[i]},
            {.type = SG_MSG_ACK, .seq = u64s[i]},
            {.type = SG_MSG_PING, .nonce = u64s[i]},
            {.type = SG_MSG_PONG, .nonce = u64s[i]},
            {.type = SG_MSG_SNAPSHOT_BEGIN, .seq = u64s[i]},
            {.type = SG_MSG_SNAPSHOT_END, .seq = u64s[i], .count = u64s[(i + 3) % 12]},
            {.type = SG_MSG_STATUS, .seq = u64s[i], .hlc = u64s[(i + 5) % 12]},
            {.type = SG_MSG_RESTORE, .seq = u64s[i]},
            {.type = SG_MSG_RESTORE_END, .seq = u64s[i], .count = u64s[(i + 7) % 12]},
        };
        for (size_t k = 0; k < sizeof(ms) / sizeof(ms[0]); k++)
            round_trip(&ms[k]);
    }
    {
        sg_msg ms[] = {
            {.type = SG_MSG_HELLO, .version = 1, .node = S("0-a"), .schema = 3},
            {.type = SG_MSG_ERROR, .code = S("protocol_error"), .text = S("")},
            {.type = SG_MSG_ERROR, .code = S(max_code), .text = S(deva)},
            {.type = SG_MSG_ERROR, .code = S("x"), .text = long_text, .text_len = SG_MSG_TEXT_MAX},
            {.type = SG_MSG_BYE, .text = S("")},
            {.type = SG_MSG_BYE, .text = NULL, .text_len = 0},
            {.type = SG_MSG_BYE, .text = long_text, .text_len = SG_MSG_TEXT_MAX},
            {.type = SG_MSG_BYE, .text = "nul\0inside", .text_len = 10},
            {.type = SG_MSG_BATCH, .batch = bbuf, .batch_len = blen},
            {.type = SG_MSG_BATCH, .batch = "\xc0", .batch_len = 1},
            /* JOIN: secrets of the shortest and longest length, regions at their limits, PEM
             * texts of 1 byte, of every allowed kind of byte and of SG_PEM_MAX bytes. */
            {.type = SG_MSG_JOIN,
             .version = 1,
             .node = S("m"),
             .secret = secret64,
             .secret_len = SG_SECRET_MIN,
             .pem = S("A")},
            {.type = SG_MSG_JOIN,
             .version = 1,
             .node = S(max_node),
             .secret = S(secret64),
             .pem = long_pem,
             .pem_len = SG_PEM_MAX},
            {.type = SG_MSG_JOIN,
             .version = 1,
             .node = S("0-a"),
             .secret = secret64 + 1,
             .secret_len = 40,
             .pem = S(pem_chars)},
            {.type = SG_MSG_CERT, .pem = S("\n"), .pem2 = S(" ")},
            {.type = SG_MSG_CERT,
             .pem = long_pem,
             .pem_len = SG_PEM_MAX,
             .pem2 = long_pem,
             .pem2_len = SG_PEM_MAX},
            {.type = SG_MSG_CERT, .pem = S(pem_chars), .pem2 = long_pem, .pem2_len = 300},
            {.type = SG_MSG_RENEW, .pem = S("~")},
            {.type = SG_MSG_RENEW, .pem = long_pem, .pem_len = SG_PEM_MAX},
            /* The str header's forms: fixstr, str8 and str16 at their edges. */
            {.type = SG_MSG_RENEW, .pem = long_pem, .pem_len = 31},
            {.type = SG_MSG_RENEW, .pem = long_pem, .pem_len = 32},
            {.type = SG_MSG_RENEW, .pem = long_pem, .pem_len = 255},
            {.type = SG_MSG_RENEW, .pem = long_pem, .pem_len = 256},
        };
        for (size_t k = 0; k < sizeof(ms) / sizeof(ms[0]); k++)
            round_trip(&ms[k]);
    }
    test_free(long_pem);
    test_free(bbuf);
}

/* Decoders accept every integer width, array header and string header form that holds the value;
 * re-encoding gives the canonical example bytes. */
static void test_any_width_accepted(void **state)
{
    static const struct {
        const char *in, *canonical;
    } cases[] = {
        {"92 04 cc 2b", "92 04 2b"},
        {"92 04 cd 00 2b", "92 04 2b"},
        {"92 04 ce 00 00 00 2b", "92 04 2b"},
        {"92 04 cf 00 00 00 00 00 00 00 2b", "92 04 2b"},
        {"92 04 d0 2b", "92 04 2b"},
        {"92 04 d1 00 2b", "92 04 2b"},
        {"92 04 d2 00 00 00 2b", "92 04 2b"},
        {"92 04 d3 00 00 00 00 00 00 00 2b", "92 04 2b"},
        {"92 04 d3 7f ff ff ff ff ff ff ff", "92 04 cf 7f ff ff ff ff ff ff ff"},
        {"dc 00 02 04 2b", "92 04 2b"},
        {"dd 00 00 00 02 04 2b", "92 04 2b"},
        {"92 09 ce 00 00 04 b0", "92 09 cd 04 b0"},
        {"94 01 cc 01 d9 08 6d 69 72 7a 61 70 75 72 d0 01",
         "94 01 01 a8 6d 69 72 7a 61 70 75 72 01"},
        {"95 02 d3 00 00 00 00 00 00 00 01 da 00 03 68 75 62 cf 00 00 00 00 00 00 00 01 28",
         "95 02 01 a3 68 75 62 01 28"},
        {"93 07 db 00 00 00 07 73 65 71 5f 67 61 70 d9 00", "93 07 a7 73 65 71 5f 67 61 70 a0"},
        {"93 0a cd 04 b0 d2 00 00 00 03", "93 0a cd 04 b0 03"},
        {"95 0c cc 01 d9 01 6d d9 20 " EX_SECRET_HEX " db 00 00 00 01 41",
         "95 0c 01 a1 6d d9 20 " EX_SECRET_HEX " a1 41"},
        {"dc 00 05 0c d0 01 da 00 01 6d da 00 20 " EX_SECRET_HEX " d9 01 41",
         "95 0c 01 a1 6d d9 20 " EX_SECRET_HEX " a1 41"},
        {"93 0d d9 01 41 da 00 01 42", "93 0d a1 41 a1 42"},
        {"dd 00 00 00 02 0e db 00 00 00 01 41", "92 0e a1 41"},
        {"92 0e da 00 20 " EX_SECRET_HEX, "92 0e d9 20 " EX_SECRET_HEX},
        {"92 0f cc 00", "92 0f 00"},
        {"dc 00 02 0f d3 00 00 00 00 00 00 04 b0", "92 0f cd 04 b0"},
        {"93 10 ce 00 00 04 b0 d1 01 54", "93 10 cd 04 b0 cd 01 54"},
        {"dd 00 00 00 03 10 d0 00 cf 00 00 00 00 00 00 00 03", "93 10 00 03"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n, cn, elen;
        uint8_t *in = hex(cases[i].in, &n);
        uint8_t *canon = hex(cases[i].canonical, &cn);
        void *enc = NULL;
        uint8_t *copy;
        sg_msg m;
        sg_err err;

        copy = decode_expect(&m, in, n, 0, &err);
        assert_int_equal(sg_msg_encode(&enc, &elen, &m), 0);
        assert_bytes_eq((uint8_t *)enc + SG_FRAME_HEADER, elen - SG_FRAME_HEADER, canon, cn);
        free(enc);
        test_free(copy);
        test_free(canon);
        test_free(in);
    }
}

/* ---- wrong types at every position ---- */

/* A valid message as a list of element encodings, with the kind of each position:
 * 't' type, 'v' version, 'u' uint, 's' str that "x" satisfies, 'x' str that must be a secret. */
typedef struct shape {
    const char *name;
    const char *kinds;
    const char *fields[5]; /* field names, type first */
    const char *elems[5];  /* valid element bytes in hex */
} shape;

static const shape shapes[] = {
    {"HELLO",
     "tvsu",
     {"type", "version", "node", "schema"},
     {"01", "01", "a8 6d 69 72 7a 61 70 75 72", "01"}},
    {"WELCOME",
     "tvsuu",
     {"type", "version", "node", "schema", "seq"},
     {"02", "01", "a3 68 75 62", "01", "28"}},
    {"ACK", "tu", {"type", "seq"}, {"04", "2b"}},
    {"PING", "tu", {"type", "nonce"}, {"05", "07"}},
    {"PONG", "tu", {"type", "nonce"}, {"06", "07"}},
    {"ERROR", "tss", {"type", "code", "text"}, {"07", "a7 73 65 71 5f 67 61 70", "a2 68 69"}},
    {"BYE", "ts", {"type", "text"}, {"08", "a2 68 69"}},
    {"SNAPSHOT_BEGIN", "tu", {"type", "seq"}, {"09", "cd 04 b0"}},
    {"SNAPSHOT_END", "tuu", {"type", "seq", "count"}, {"0a", "cd 04 b0", "03"}},
    {"STATUS", "tuu", {"type", "seq", "hlc"}, {"0b", "cd 04 b0", "03"}},
    {"JOIN",
     "tvsxs",
     {"type", "version", "region", "secret", "csr"},
     {"0c", "01", "a8 6d 69 72 7a 61 70 75 72", "d9 20 " EX_SECRET_HEX, "a1 41"}},
    {"CERT", "tss", {"type", "cert", "ca"}, {"0d", "a1 41", "a1 42"}},
    {"RENEW", "ts", {"type", "csr"}, {"0e", "a1 41"}},
    {"RESTORE", "tu", {"type", "seq"}, {"0f", "00"}},
    {"RESTORE_END", "tuu", {"type", "seq", "count"}, {"10", "cd 04 b0", "cd 01 54"}},
};

/* A replacement element, its msgpack family name, and what kind of integer it is. */
typedef struct wrong {
    const char *hex;
    const char *family;
    char intkind; /* 0 not an int; 'p' positive fixint; 'w' wider non-negative; 'n' negative */
} wrong;

static const wrong wrongs[] = {
    {"c0", "nil", 0},
    {"c2", "bool", 0},
    {"c3", "bool", 0},
    {"ca 3f 80 00 00", "float", 0},
    {"cb 3f f0 00 00 00 00 00 00", "float", 0},
    {"a1 78", "str", 0},
    {"d9 01 78", "str", 0},
    {"c4 01 78", "bin", 0},
    {"d4 01 00", "ext", 0},
    {"c7 01 01 00", "ext", 0},
    {"91 01", "array", 0},
    {"90", "array", 0},
    {"93 91 91 01 80 c0", "array", 0},
    {"81 01 01", "map", 0},
    {"80", "map", 0},
    {"07", "int", 'p'},
    {"cc 07", "int", 'w'},
    {"d0 07", "int", 'w'},
    {"ff", "int", 'n'},
    {"d0 80", "int", 'n'},
    {"d3 ff ff ff ff ff ff ff ff", "int", 'n'},
};

/* Builds shape sh with element pos replaced by hex h (pos < 0: no replacement). */
static void build_shape(tbuf *t, const shape *sh, int pos, const char *h)
{
    size_t n = strlen(sh->kinds);

    tb_byte(t, (uint8_t)(0x90 + n));
    for (size_t i = 0; i < n; i++)
        tb_hex(t, (int)i == pos ? h : sh->elems[i]);
}

static void test_valid_shapes(void **state)
{
    (void)state;
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        tbuf t = {0};
        sg_msg m;
        sg_err err;
        uint8_t *copy;

        build_shape(&t, &shapes[s], -1, NULL);
        copy = decode_expect(&m, t.b, t.len, 0, &err);
        assert_string_equal(sg_msg_name(m.type), shapes[s].name);
        test_free(copy);
        tb_free(&t);
    }
}

static void test_wrong_type_every_position(void **state)
{
    (void)state;
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        const shape *sh = &shapes[s];
        for (int pos = 0; sh->kinds[pos] != '\0'; pos++) {
            for (size_t w = 0; w < sizeof(wrongs) / sizeof(wrongs[0]); w++) {
                const wrong *wr = &wrongs[w];
                char msg[256];
                tbuf t = {0};
                int want = 0;

                msg[0] = '\0';
                switch (sh->kinds[pos]) {
                case 't':
                    if (wr->intkind == 'p')
                        continue; /* another valid type */
                    if (wr->intkind != 0) {
                        want = SG_EFORMAT;
                        snprintf(msg, sizeof(msg),
                                 "message type: must be one byte, a positive fixint 0x01-0x10");
                    } else {
                        want = SG_ETYPE;
                        snprintf(msg, sizeof(msg), "message type: expected int, got %s",
                                 wr->family);
                    }
                    break;
                case 'v':
                    if (wr->intkind == 'p' || wr->intkind == 'w') {
                        want = SG_EUNSUPPORTED;
                        snprintf(msg, sizeof(msg), "protocol version 7; this side speaks 1");
                    } else if (wr->intkind == 'n') {
                        want = SG_EFORMAT;
                    } else {
                        want = SG_ETYPE;
                        snprintf(msg, sizeof(msg), "%s: version: expected uint, got %s", sh->name,
                                 wr->family);
                    }
                    break;
                case 'u':
                    if (wr->intkind == 'p' || wr->intkind == 'w')
                        want = 0;
                    else if (wr->intkind == 'n')
                        want = SG_EFORMAT;
                    else {
                        want = SG_ETYPE;
                        snprintf(msg, sizeof(msg), "%s: %s: expected uint, got %s", sh->name,
                                 sh->fields[pos], wr->family);
                    }
                    break;
                case 's':
                case 'x':
                    if (strcmp(wr->family, "str") == 0 && sh->kinds[pos] == 's') {
                        want = 0; /* "x" is a valid node, code, text and PEM text */
                    } else if (strcmp(wr->family, "str") == 0) {
                        want = SG_EFORMAT;
                        snprintf(msg, sizeof(msg), "%s: %s: 1 bytes is below the minimum of 32",
                                 sh->name, sh->fields[pos]);
                    } else {
                        want = SG_ETYPE;
                        snprintf(msg, sizeof(msg), "%s: %s: expected str, got %s", sh->name,
                                 sh->fields[pos], wr->family);
                    }
                    break;
                default:
                    fail();
                }
                build_shape(&t, sh, pos, wr->hex);
                if (want == 0) {
                    sg_msg m;
                    sg_err err;
                    uint8_t *copy = decode_expect(&m, t.b, t.len, 0, &err);
                    test_free(copy);
                } else {
                    refuse_tb(&t, want, msg[0] != '\0' ? msg : NULL);
                }
                tb_free(&t);
            }
        }
    }
}

/* The head: the array, its count and the type byte. */
static void test_head(void **state)
{
    (void)state;
    refuse(NULL, 0, SG_ETRUNC, "at byte 0: input is empty");
    refuse_hex("dc 00", SG_ETRUNC, "at byte 0: input ends inside a 3-byte header");
    refuse_hex("dd 00 00 00", SG_ETRUNC, "at byte 0: input ends inside a 5-byte header");
    refuse_hex("92", SG_ETRUNC, "at byte 1: input ends before the message type");
    refuse_hex("c1 05 07", SG_EFORMAT, "at byte 0: reserved type byte 0xc1");
    refuse_hex("92 c1 07", SG_EFORMAT, "at byte 1: reserved type byte 0xc1");
    refuse_hex("a2 05 07", SG_ETYPE, "message: expected array [type, ...], got str");
    refuse_hex("81 05 07", SG_ETYPE, "message: expected array [type, ...], got map");
    refuse_hex("05", SG_ETYPE, "message: expected array [type, ...], got int");
    refuse_hex("c0", SG_ETYPE, "message: expected array [type, ...], got nil");
    refuse_hex("90", SG_EFORMAT, "message: empty array; expected [type, ...]");
    refuse_hex("dc 00 00", SG_EFORMAT, "message: empty array; expected [type, ...]");
    refuse_hex("92 00 07", SG_EFORMAT, "unknown message type 0");
    refuse_hex("92 11 07", SG_EFORMAT, "unknown message type 17");
    refuse_hex("92 7f 07", SG_EFORMAT, "unknown message type 127");
    refuse_hex("91 11", SG_EFORMAT, "unknown message type 17");
    /* The head is judged before the rest, however hostile. */
    refuse_hex("dd ff ff ff ff 11", SG_EFORMAT, "unknown message type 17");
    refuse_hex("dd ff ff ff ff 10", SG_EFORMAT,
               "RESTORE_END: expected 3 elements [type, seq, count], got 4294967295");
    refuse_hex("dd ff ff ff ff 0e", SG_EFORMAT,
               "RENEW: expected 2 elements [type, csr], got 4294967295");
}

/* Each type with one element too few or too many. */
static void test_element_counts(void **state)
{
    (void)state;
    refuse_hex("93 01 01 a1 6d", SG_EFORMAT,
               "HELLO: expected 4 elements [type, version, node, schema], got 3");
    refuse_hex("95 01 01 a1 6d 01 01", SG_EFORMAT,
               "HELLO: expected 4 elements [type, version, node, schema], got 5");
    refuse_hex("91 01", SG_EFORMAT,
               "HELLO: expected 4 elements [type, version, node, schema], got 1");
    refuse_hex("94 02 01 a3 68 75 62 01", SG_EFORMAT,
               "WELCOME: expected 5 elements [type, version, node, schema, seq], got 4");
    refuse_hex("91 04", SG_EFORMAT, "ACK: expected 2 elements [type, seq], got 1");
    refuse_hex("93 04 01 02", SG_EFORMAT, "ACK: expected 2 elements [type, seq], got 3");
    refuse_hex("93 05 01 02", SG_EFORMAT, "PING: expected 2 elements [type, nonce], got 3");
    refuse_hex("91 06", SG_EFORMAT, "PONG: expected 2 elements [type, nonce], got 1");
    refuse_hex("92 07 a1 78", SG_EFORMAT, "ERROR: expected 3 elements [type, code, text], got 2");
    refuse_hex("93 08 a1 78 a1 78", SG_EFORMAT, "BYE: expected 2 elements [type, text], got 3");
    refuse_hex("93 09 01 02", SG_EFORMAT, "SNAPSHOT_BEGIN: expected 2 elements [type, seq], got 3");
    refuse_hex("92 0a 01", SG_EFORMAT,
               "SNAPSHOT_END: expected 3 elements [type, seq, count], got 2");
    refuse_hex("91 0b", SG_EFORMAT, "STATUS: expected 3 elements [type, seq, hlc], got 1");
    refuse_hex("91 0c", SG_EFORMAT,
               "JOIN: expected 5 elements [type, version, region, secret, csr], got 1");
    refuse_hex("94 0c 01 a1 6d d9 20 " EX_SECRET_HEX, SG_EFORMAT,
               "JOIN: expected 5 elements [type, version, region, secret, csr], got 4");
    refuse_hex("96 0c 01 a1 6d d9 20 " EX_SECRET_HEX " a1 41 a1 41", SG_EFORMAT,
               "JOIN: expected 5 elements [type, version, region, secret, csr], got 6");
    refuse_hex("92 0d a1 41", SG_EFORMAT, "CERT: expected 3 elements [type, cert, ca], got 2");
    refuse_hex("94 0d a1 41 a1 41 a1 41", SG_EFORMAT,
               "CERT: expected 3 elements [type, cert, ca], got 4");
    refuse_hex("91 0e", SG_EFORMAT, "RENEW: expected 2 elements [type, csr], got 1");
    refuse_hex("93 0e a1 41 a1 41", SG_EFORMAT, "RENEW: expected 2 elements [type, csr], got 3");
    refuse_hex("91 0f", SG_EFORMAT, "RESTORE: expected 2 elements [type, seq], got 1");
    refuse_hex("93 0f 00 00", SG_EFORMAT, "RESTORE: expected 2 elements [type, seq], got 3");
    refuse_hex("92 10 cd 04 b0", SG_EFORMAT,
               "RESTORE_END: expected 3 elements [type, seq, count], got 2");
    refuse_hex("94 10 cd 04 b0 03 03", SG_EFORMAT,
               "RESTORE_END: expected 3 elements [type, seq, count], got 4");
    /* The count is judged before the structure: the bytes do not hold 15 elements. */
    refuse_hex("9f 05 07", SG_EFORMAT, "PING: expected 2 elements [type, nonce], got 15");
    refuse_hex("dd ff ff ff ff 05 07", SG_EFORMAT,
               "PING: expected 2 elements [type, nonce], got 4294967295");
}

/* ---- version negotiation ---- */

static void test_version_negotiation(void **state)
{
    static const struct {
        const char *hex;
        sg_msg_type type;
        uint32_t version;
        const char *msg;
    } cases[] = {
        /* A v1-shaped HELLO with another version. */
        {"94 01 02 a8 6d 69 72 7a 61 70 75 72 01", SG_MSG_HELLO, 2,
         "protocol version 2; this side speaks 1"},
        {"94 01 00 a8 6d 69 72 7a 61 70 75 72 01", SG_MSG_HELLO, 0,
         "protocol version 0; this side speaks 1"},
        {"95 02 03 a3 68 75 62 01 28", SG_MSG_WELCOME, 3, "protocol version 3; this side speaks 1"},
        /* Nothing after the version is read: any count, any shape, any garbage. */
        {"92 01 02", SG_MSG_HELLO, 2, "protocol version 2; this side speaks 1"},
        {"9f 01 02", SG_MSG_HELLO, 2, "protocol version 2; this side speaks 1"},
        {"dd ff ff ff ff 01 cd 01 00 c1", SG_MSG_HELLO, 256,
         "protocol version 256; this side speaks 1"},
        {"93 02 02 df ff ff ff ff", SG_MSG_WELCOME, 2, "protocol version 2; this side speaks 1"},
        {"94 01 02 91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 c0 01 02 03",
         SG_MSG_HELLO, 2, "protocol version 2; this side speaks 1"},
        {"94 01 02 c1 c1 c1 c1", SG_MSG_HELLO, 2, "protocol version 2; this side speaks 1"},
        /* A version above 32 bits is reported as the largest that fits. */
        {"94 01 cf 00 00 01 00 00 00 00 00", SG_MSG_HELLO, UINT32_MAX,
         "protocol version 1099511627776; this side speaks 1"},
        {"94 01 ce ff ff ff ff", SG_MSG_HELLO, UINT32_MAX,
         "protocol version 4294967295; this side speaks 1"},
        /* JOIN carries the version too, and is negotiated the same way. */
        {"95 0c 02 a8 6d 69 72 7a 61 70 75 72 d9 20 " EX_SECRET_HEX " a1 41", SG_MSG_JOIN, 2,
         "protocol version 2; this side speaks 1"},
        {"92 0c 00", SG_MSG_JOIN, 0, "protocol version 0; this side speaks 1"},
        {"92 0c 07", SG_MSG_JOIN, 7, "protocol version 7; this side speaks 1"},
        {"dd ff ff ff ff 0c cd 01 00 c1", SG_MSG_JOIN, 256,
         "protocol version 256; this side speaks 1"},
        {"95 0c cf 00 00 01 00 00 00 00 00 df ff ff ff ff", SG_MSG_JOIN, UINT32_MAX,
         "protocol version 1099511627776; this side speaks 1"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n;
        uint8_t *b = hex(cases[i].hex, &n);
        sg_msg m;
        sg_err err;
        uint8_t *copy = decode_expect(&m, b, n, SG_EUNSUPPORTED, &err);

        assert_int_equal(m.type, cases[i].type);
        assert_int_equal(m.version, cases[i].version);
        assert_null(m.node);
        assert_int_equal(m.schema, 0);
        assert_null(m.secret);
        assert_null(m.pem);
        assert_string_equal(err.msg, cases[i].msg);
        test_free(copy);
        test_free(b);
    }
    /* The example of PROTOCOL.md section 7.3.11, as a whole frame. */
    {
        size_t n;
        uint8_t *f = hex("00 00 00 0d 94 01 02 a8 6d 69 72 7a 61 70 75 72 01", &n);
        uint32_t plen = 0;
        sg_msg m;
        sg_err err;
        uint8_t *copy;

        assert_int_equal(sg_frame_len(&plen, f, SG_FRAME_MAX, &err), 0);
        assert_int_equal(plen, n - SG_FRAME_HEADER);
        copy = decode_expect(&m, f + SG_FRAME_HEADER, plen, SG_EUNSUPPORTED, &err);
        assert_int_equal(m.type, SG_MSG_HELLO);
        assert_int_equal(m.version, 2);
        assert_string_equal(err.msg, "protocol version 2; this side speaks 1");
        test_free(copy);
        test_free(f);
    }
    /* What is not a version is not negotiated. */
    refuse_hex("94 01 ff a1 6d 01", SG_EFORMAT, "HELLO: version: must not be negative, got -1");
    refuse_hex("94 01 d3 80 00 00 00 00 00 00 00 a1 6d 01", SG_EFORMAT,
               "HELLO: version: must not be negative");
    refuse_hex("94 01 a1 31 a1 6d 01", SG_ETYPE, "HELLO: version: expected uint, got str");
    refuse_hex("94 01", SG_ETRUNC, "HELLO: at byte 2: input ends before the version");
    refuse_hex("94 01 cd 00", SG_ETRUNC, "HELLO: at byte 2: input ends inside a 3-byte integer");
    refuse_hex("94 01 c1", SG_EFORMAT, "HELLO: at byte 2: reserved type byte 0xc1");
    /* Version 1 is decoded strictly: the same garbage is refused. */
    refuse_hex("94 01 01 c1 c1", SG_EFORMAT, "HELLO: at byte 3: reserved type byte 0xc1");
    refuse_hex("92 01 01", SG_EFORMAT,
               "HELLO: expected 4 elements [type, version, node, schema], got 2");
    refuse_hex("95 0c a1 31 a1 6d", SG_ETYPE, "JOIN: version: expected uint, got str");
    refuse_hex("95 0c ff", SG_EFORMAT, "JOIN: version: must not be negative, got -1");
    refuse_hex("95 0c", SG_ETRUNC, "JOIN: at byte 2: input ends before the version");
    refuse_hex("95 0c 01 c1 c1 c1", SG_EFORMAT, "JOIN: at byte 3: reserved type byte 0xc1");
    /* Other types carry no version: an ACK is an ACK, a RENEW a RENEW, a RESTORE a RESTORE. */
    refuse_hex("92 0e 02", SG_ETYPE, "RENEW: csr: expected str, got int");
    refuse_hex("92 04 02 00", SG_ETRAILING, NULL);
    refuse_hex("92 0f 02 00", SG_ETRAILING, "RESTORE: 1 trailing byte(s) after the 3-byte message");
}

/* ---- the frame header ---- */

static void test_frame_len(void **state)
{
    uint8_t h[SG_FRAME_HEADER];
    uint32_t n;
    sg_err err;

    (void)state;
    memcpy(h, "\x00\x00\x00\x00", 4);
    n = 77;
    assert_int_equal(sg_frame_len(&n, h, SG_FRAME_MAX, &err), SG_EFORMAT);
    assert_int_equal(err.code, SG_EFORMAT);
    assert_string_equal(err.msg, "frame of 0 bytes: a frame carries one message");
    assert_int_equal(n, 77);

    memcpy(h, "\xff\xff\xff\xff", 4);
    assert_int_equal(sg_frame_len(&n, h, SG_FRAME_MAX, &err), SG_ETOOBIG);
    assert_string_equal(err.msg, "frame of 4294967295 bytes exceeds the limit of 1048640");
    assert_int_equal(n, 77);

    /* The limit itself is allowed, one more is not. */
    memcpy(h, "\x00\x10\x00\x40", 4);
    assert_int_equal(sg_frame_len(&n, h, SG_FRAME_MAX, &err), 0);
    assert_int_equal(n, SG_FRAME_MAX);
    memcpy(h, "\x00\x10\x00\x41", 4);
    assert_int_equal(sg_frame_len(&n, h, SG_FRAME_MAX, &err), SG_ETOOBIG);
    assert_string_equal(err.msg, "frame of 1048641 bytes exceeds the limit of 1048640");

    /* A reader's own cap. */
    memcpy(h, "\x00\x00\x01\x00", 4);
    assert_int_equal(sg_frame_len(&n, h, 256, &err), 0);
    assert_int_equal(n, 256);
    assert_int_equal(sg_frame_len(&n, h, 255, &err), SG_ETOOBIG);
    assert_string_equal(err.msg, "frame of 256 bytes exceeds the limit of 255");
    memcpy(h, "\x00\x00\x00\x01", 4);
    assert_int_equal(sg_frame_len(&n, h, 1, &err), 0);
    assert_int_equal(n, 1);
    /* Big-endian. */
    memcpy(h, "\x01\x02\x03\x04", 4);
    assert_int_equal(sg_frame_len(&n, h, UINT32_MAX, &err), 0);
    assert_int_equal(n, 0x01020304u);
    /* NULL err is allowed. */
    memcpy(h, "\x80\x00\x00\x00", 4);
    assert_int_equal(sg_frame_len(&n, h, SG_FRAME_MAX, NULL), SG_ETOOBIG);
}

/* Payloads above SG_FRAME_MAX are refused by the decoder too, and BATCH bodies up to the limit
 * pass both ways. */
static void test_payload_limits(void **state)
{
    const size_t body = SG_FRAME_MAX - 2;
    uint8_t *p = test_malloc(SG_FRAME_MAX + 1);
    void *enc = NULL;
    size_t elen = 99;
    sg_msg m, d;
    sg_err err;

    (void)state;
    /* 92 03, then a str32 filling the payload exactly. */
    memset(p, 'x', SG_FRAME_MAX + 1);
    p[0] = 0x92;
    p[1] = 0x03;
    p[2] = 0xdb;
    p[3] = 0;
    p[4] = (uint8_t)((body - 5) >> 16);
    p[5] = (uint8_t)((body - 5) >> 8);
    p[6] = (uint8_t)(body - 5);
    assert_int_equal(sg_msg_decode(&d, p, SG_FRAME_MAX, &err), 0);
    assert_int_equal(d.batch_len, body);

    m = (sg_msg){.type = SG_MSG_BATCH, .batch = p + 2, .batch_len = body};
    assert_int_equal(sg_msg_encode(&enc, &elen, &m), 0);
    assert_int_equal(elen, SG_FRAME_HEADER + SG_FRAME_MAX);
    assert_memory_equal((uint8_t *)enc + SG_FRAME_HEADER, p, SG_FRAME_MAX);
    free(enc);

    /* One more byte: refused by size before anything else is read. */
    p[6] = (uint8_t)(body - 4);
    refuse(p, SG_FRAME_MAX + 1, SG_ETOOBIG,
           "message of 1048641 bytes exceeds the limit of 1048640");
    m.batch_len = body + 1;
    assert_int_equal(sg_msg_encode(&enc, &elen, &m), SG_ETOOBIG);
    assert_null(enc);
    assert_int_equal(elen, 0);
    test_free(p);
}

/* ---- strings ---- */

static void test_node_ids(void **state)
{
    char id64[65];
    tbuf t = {0};
    sg_msg m;

    (void)state;
    memset(id64, 'a', 64);
    id64[64] = '\0';

    tb_hex(&t, "94 01 01");
    tb_str(&t, id64, 64);
    tb_hex(&t, "01");
    refuse_tb(&t, SG_ETOOBIG, "HELLO: node: 64 bytes exceeds the limit of 63");
    tb_free(&t);

    refuse_hex("94 01 01 a0 01", SG_EFORMAT,
               "HELLO: node: not a node id (1..63 of [a-z0-9-], not starting with '-')");
    refuse_hex("94 01 01 a2 2d 61 01", SG_EFORMAT, NULL);       /* "-a" */
    refuse_hex("94 01 01 a2 41 61 01", SG_EFORMAT, NULL);       /* "Aa" */
    refuse_hex("94 01 01 a2 61 5f 01", SG_EFORMAT, NULL);       /* "a_" */
    refuse_hex("94 01 01 a2 61 00 01", SG_EFORMAT, NULL);       /* "a\0" */
    refuse_hex("95 02 01 a3 48 55 42 01 00", SG_EFORMAT, NULL); /* "HUB" */
    refuse_hex("95 02 01 a0 01 00", SG_EFORMAT,
               "WELCOME: node: not a node id (1..63 of [a-z0-9-], not starting with '-')");

    /* JOIN's region follows the same rules. */
    tb_hex(&t, "95 0c 01");
    tb_str(&t, id64, 64);
    tb_hex(&t, "d9 20 " EX_SECRET_HEX " a1 41");
    refuse_tb(&t, SG_ETOOBIG, "JOIN: region: 64 bytes exceeds the limit of 63");
    tb_free(&t);
    tb_hex(&t, "95 0c 01");
    tb_str(&t, id64, 63);
    tb_hex(&t, "d9 20 " EX_SECRET_HEX " a1 41");
    {
        sg_err err;
        uint8_t *copy = decode_expect(&m, t.b, t.len, 0, &err);
        assert_int_equal(m.node_len, 63);
        test_free(copy);
    }
    tb_free(&t);
    {
        static const char *const bad[] = {"a0",       "a2 2d 61", "a2 41 61",   "a2 61 5f",
                                          "a2 61 00", "a2 61 2e", "a3 68 c3 a9"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            tb_hex(&t, "95 0c 01");
            tb_hex(&t, bad[i]);
            tb_hex(&t, "d9 20 " EX_SECRET_HEX " a1 41");
            refuse_tb(&t, SG_EFORMAT,
                      "JOIN: region: not a node id (1..63 of [a-z0-9-], not starting with '-')");
            tb_free(&t);
        }
    }
    /* A region breaking its rule wins over a secret and a csr that break theirs: fields are
     * judged in order. */
    refuse_hex("95 0c 01 a1 41 a1 47 a0", SG_EFORMAT,
               "JOIN: region: not a node id (1..63 of [a-z0-9-], not starting with '-')");

    /* The encoder refuses what the decoder would. */
    m = (sg_msg){.type = SG_MSG_HELLO, .version = 1, .node = id64, .node_len = 64};
    {
        void *enc = (void *)1;
        size_t elen = 1;
        assert_int_equal(sg_msg_encode(&enc, &elen, &m), SG_EINVAL);
        assert_null(enc);
        assert_int_equal(elen, 0);
        m.node_len = 63;
        assert_int_equal(sg_msg_encode(&enc, &elen, &m), 0);
        free(enc);
    }
}

static void test_error_codes_and_text(void **state)
{
    char code65[66], text[SG_MSG_TEXT_MAX + 2];
    tbuf t = {0};

    (void)state;
    memset(code65, 'a', 65);
    code65[65] = '\0';
    memset(text, 'z', sizeof(text));

    tb_hex(&t, "93 07");
    tb_str(&t, code65, 65);
    tb_hex(&t, "a0");
    refuse_tb(&t, SG_ETOOBIG, "ERROR: code: 65 bytes exceeds the limit of 64");
    tb_free(&t);

    tb_hex(&t, "93 07");
    tb_str(&t, code65, 64);
    tb_hex(&t, "a0");
    {
        sg_msg m;
        sg_err err;
        uint8_t *copy = decode_expect(&m, t.b, t.len, 0, &err);
        assert_int_equal(m.code_len, 64);
        test_free(copy);
    }
    tb_free(&t);

    refuse_hex("93 07 a0 a0", SG_EFORMAT, "ERROR: code: empty");
    refuse_hex("93 07 a3 62 61 44 a0", SG_EFORMAT, "ERROR: code: byte 2 is not one of [a-z_]");
    refuse_hex("93 07 a3 62 2d 64 a0", SG_EFORMAT, "ERROR: code: byte 1 is not one of [a-z_]");
    refuse_hex("93 07 a2 61 31 a0", SG_EFORMAT, "ERROR: code: byte 1 is not one of [a-z_]");

    tb_hex(&t, "93 07 a1 78");
    tb_str(&t, text, SG_MSG_TEXT_MAX + 1);
    refuse_tb(&t, SG_ETOOBIG, "ERROR: text: 1025 bytes exceeds the limit of 1024");
    tb_free(&t);
    tb_hex(&t, "92 08");
    tb_str(&t, text, SG_MSG_TEXT_MAX + 1);
    refuse_tb(&t, SG_ETOOBIG, "BYE: text: 1025 bytes exceeds the limit of 1024");
    tb_free(&t);
    tb_hex(&t, "92 08");
    tb_str(&t, text, SG_MSG_TEXT_MAX);
    {
        sg_msg m;
        sg_err err;
        uint8_t *copy = decode_expect(&m, t.b, t.len, 0, &err);
        assert_int_equal(m.text_len, SG_MSG_TEXT_MAX);
        assert_true(inside(m.text, m.text_len, copy, t.len));
        test_free(copy);
    }
    tb_free(&t);
}

/* JOIN's secret: SG_SECRET_MIN..SG_SECRET_MAX bytes of lowercase hex, on both sides; a length
 * out of range is reported before the characters. */
static void test_secrets(void **state)
{
    static const struct {
        size_t len;
        size_t at; /* where c replaces the hex digit, when c is not 0 */
        char c;
        int want;
        const char *msg;
    } cases[] = {
        {32, 0, 0, 0, NULL},
        {33, 0, 0, 0, NULL},
        {48, 0, 0, 0, NULL},
        {64, 0, 0, 0, NULL},
        {0, 0, 0, SG_EFORMAT, "JOIN: secret: 0 bytes is below the minimum of 32"},
        {1, 0, 0, SG_EFORMAT, "JOIN: secret: 1 bytes is below the minimum of 32"},
        {31, 0, 0, SG_EFORMAT, "JOIN: secret: 31 bytes is below the minimum of 32"},
        {65, 0, 0, SG_ETOOBIG, "JOIN: secret: 65 bytes exceeds the limit of 64"},
        {255, 0, 0, SG_ETOOBIG, "JOIN: secret: 255 bytes exceeds the limit of 64"},
        {256, 0, 0, SG_ETOOBIG, "JOIN: secret: 256 bytes exceeds the limit of 64"},
        {32, 0, 'A', SG_EFORMAT, "JOIN: secret: byte 0 is not one of [0-9a-f]"},
        {32, 31, 'F', SG_EFORMAT, "JOIN: secret: byte 31 is not one of [0-9a-f]"},
        {64, 63, 'E', SG_EFORMAT, "JOIN: secret: byte 63 is not one of [0-9a-f]"},
        {40, 10, 'g', SG_EFORMAT, "JOIN: secret: byte 10 is not one of [0-9a-f]"},
        {32, 5, '-', SG_EFORMAT, "JOIN: secret: byte 5 is not one of [0-9a-f]"},
        {32, 5, ' ', SG_EFORMAT, "JOIN: secret: byte 5 is not one of [0-9a-f]"},
        {32, 5, '/', SG_EFORMAT, "JOIN: secret: byte 5 is not one of [0-9a-f]"},
        {32, 5, ':', SG_EFORMAT, "JOIN: secret: byte 5 is not one of [0-9a-f]"},
        {32, 5, '`', SG_EFORMAT, "JOIN: secret: byte 5 is not one of [0-9a-f]"},
        {32, 5, '\n', SG_EFORMAT, "JOIN: secret: byte 5 is not one of [0-9a-f]"},
        {32, 5, '\xc3', SG_EFORMAT, "JOIN: secret: byte 5 is not one of [0-9a-f]"},
        {32, 5, '\xff', SG_EFORMAT, "JOIN: secret: byte 5 is not one of [0-9a-f]"},
        /* The length is judged first. */
        {31, 0, 'A', SG_EFORMAT, "JOIN: secret: 31 bytes is below the minimum of 32"},
        {65, 0, 'G', SG_ETOOBIG, "JOIN: secret: 65 bytes exceeds the limit of 64"},
    };
    char sec[300];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sg_msg m = {.type = SG_MSG_JOIN, .version = 1, .node = S("mirzapur"), .pem = S("A")};
        void *enc = (void *)1;
        size_t elen = 1;
        tbuf t = {0};

        for (size_t k = 0; k < sizeof(sec); k++)
            sec[k] = "0123456789abcdef"[k % 16];
        if (cases[i].c != 0)
            sec[cases[i].at] = cases[i].c;
        m.secret = sec;
        m.secret_len = (uint32_t)cases[i].len;
        tb_hex(&t, "95 0c 01 a8 6d 69 72 7a 61 70 75 72");
        tb_str(&t, sec, cases[i].len);
        tb_hex(&t, "a1 41");
        if (cases[i].want == 0) {
            sg_msg d;
            sg_err err;
            uint8_t *copy = decode_expect(&d, t.b, t.len, 0, &err);
            assert_int_equal(d.secret_len, cases[i].len);
            assert_memory_equal(d.secret, sec, cases[i].len);
            assert_true(inside(d.secret, d.secret_len, copy, t.len));
            test_free(copy);
            round_trip(&m);
        } else {
            refuse_tb(&t, cases[i].want, cases[i].msg);
            /* The encoder refuses what the decoder would. */
            assert_int_equal(sg_msg_encode(&enc, &elen, &m), SG_EINVAL);
            assert_null(enc);
            assert_int_equal(elen, 0);
        }
        tb_free(&t);
    }
    /* A NULL secret is refused by the encoder, whatever its length. */
    {
        sg_msg m = {.type = SG_MSG_JOIN, .version = 1, .node = S("m"), .pem = S("A")};
        void *enc = NULL;
        size_t elen;
        m.secret_len = 32;
        assert_int_equal(sg_msg_encode(&enc, &elen, &m), SG_EINVAL);
        m.secret_len = 0;
        assert_int_equal(sg_msg_encode(&enc, &elen, &m), SG_EINVAL);
    }
}

/* The four PEM fields: JOIN csr, CERT cert and ca, RENEW csr. */
static const struct pem_field {
    const char *name; /* as in messages: "JOIN: csr" */
    const char *head; /* hex of the payload before the field */
    const char *tail; /* hex of the payload after it */
} pem_fields[] = {
    {"JOIN: csr", "95 0c 01 a8 6d 69 72 7a 61 70 75 72 d9 20 " EX_SECRET_HEX, ""},
    {"CERT: cert", "93 0d", "a1 41"},
    {"CERT: ca", "93 0d a1 41", ""},
    {"RENEW: csr", "92 0e", ""},
};

/* Builds the payload of pem_fields[f] holding s[0..n) in the field (str header in shortest
 * form). */
static void build_pem(tbuf *t, size_t f, const char *s, size_t n)
{
    tb_hex(t, pem_fields[f].head);
    tb_str(t, s, n);
    tb_hex(t, pem_fields[f].tail);
}

/* The message of pem_fields[f] holding s[0..n) in the field. */
static sg_msg pem_msg(size_t f, const char *s, size_t n)
{
    sg_msg m = {.type = SG_MSG_CERT, .pem = S("A"), .pem2 = S("A")};

    switch (f) {
    case 0:
        m = (sg_msg){.type = SG_MSG_JOIN,
                     .version = 1,
                     .node = S("mirzapur"),
                     .secret = S(EX_SECRET),
                     .pem = s,
                     .pem_len = (uint32_t)n};
        break;
    case 1:
        m.pem = s;
        m.pem_len = (uint32_t)n;
        break;
    case 2:
        m.pem2 = s;
        m.pem2_len = (uint32_t)n;
        break;
    default:
        m = (sg_msg){.type = SG_MSG_RENEW, .pem = s, .pem_len = (uint32_t)n};
        break;
    }
    return m;
}

/* Decodes t expecting want (message msg when want is not 0) and checks that the encoder agrees
 * on pem_msg(f, s, n). */
static void pem_expect(size_t f, const char *s, size_t n, int want, const char *msg)
{
    sg_msg m = pem_msg(f, s, n);
    void *enc = NULL;
    size_t elen = 1;
    tbuf t = {0};

    build_pem(&t, f, s, n);
    if (want == 0) {
        sg_msg d;
        sg_err err;
        uint8_t *copy = decode_expect(&d, t.b, t.len, 0, &err);
        assert_msg_eq(&m, &d);
        test_free(copy);
        round_trip(&m);
    } else {
        refuse_tb(&t, want, msg);
        assert_int_equal(sg_msg_encode(&enc, &elen, &m), SG_EINVAL);
        assert_null(enc);
        assert_int_equal(elen, 0);
    }
    tb_free(&t);
}

/* PEM text: 1..SG_PEM_MAX bytes, each printable ASCII (0x20-0x7e), \n or \r; every byte value
 * in every PEM field; lengths at and past the limit; hostile headers. */
static void test_pem(void **state)
{
    char *big = test_malloc(SG_PEM_MAX + 2);
    char msg[128];

    (void)state;
    memset(big, 'M', SG_PEM_MAX + 2);
    for (size_t f = 0; f < sizeof(pem_fields) / sizeof(pem_fields[0]); f++) {
        const char *name = pem_fields[f].name;

        /* Every byte value, in the middle of a 3-byte text and as its only byte. */
        for (unsigned v = 0; v < 256; v++) {
            char s3[3] = {'A', (char)v, 'B'};
            int ok = (v >= 0x20 && v <= 0x7e) || v == '\n' || v == '\r';

            snprintf(msg, sizeof(msg), "%s: byte 1 (0x%02x) is not printable ASCII, \\n or \\r",
                     name, v);
            pem_expect(f, s3, 3, ok ? 0 : SG_EFORMAT, msg);
            snprintf(msg, sizeof(msg), "%s: byte 0 (0x%02x) is not printable ASCII, \\n or \\r",
                     name, v);
            pem_expect(f, s3 + 1, 1, ok ? 0 : SG_EFORMAT, msg);
        }
        /* Lengths. */
        snprintf(msg, sizeof(msg), "%s: empty", name);
        pem_expect(f, "", 0, SG_EFORMAT, msg);
        pem_expect(f, big, SG_PEM_MAX, 0, NULL);
        snprintf(msg, sizeof(msg), "%s: %u bytes exceeds the limit of %u", name, SG_PEM_MAX + 1,
                 SG_PEM_MAX);
        pem_expect(f, big, SG_PEM_MAX + 1, SG_ETOOBIG, msg);
        /* The length is judged before the characters: an over-long text with a bad byte. */
        big[SG_PEM_MAX] = '\x01';
        pem_expect(f, big, SG_PEM_MAX + 1, SG_ETOOBIG, msg);
        big[SG_PEM_MAX] = 'M';
        big[SG_PEM_MAX - 1] = '\x80';
        snprintf(msg, sizeof(msg), "%s: byte %u (0x80) is not printable ASCII, \\n or \\r", name,
                 SG_PEM_MAX - 1);
        pem_expect(f, big, SG_PEM_MAX, SG_EFORMAT, msg);
        big[SG_PEM_MAX - 1] = 'M';
    }

    /* Non-ASCII text, even well-formed UTF-8, is refused at its first byte. */
    refuse_hex("92 0e a5 41 0a c3 a9 0a", SG_EFORMAT,
               "RENEW: csr: byte 2 (0xc3) is not printable ASCII, \\n or \\r");
    /* Fields are judged in order: a bad cert wins over a bad ca. */
    refuse_hex("93 0d a0 a1 01", SG_EFORMAT, "CERT: cert: empty");
    refuse_hex("93 0d a1 41 a1 01", SG_EFORMAT,
               "CERT: ca: byte 0 (0x01) is not printable ASCII, \\n or \\r");
    /* Hostile headers: structure before fields, so a header claiming more than the payload
     * holds is truncated, whatever the limit. */
    refuse_hex("92 0e db ff ff ff ff", SG_ETRUNC, NULL);
    refuse_hex("92 0e da 20 01 41", SG_ETRUNC, NULL);
    refuse_hex("93 0d db 00 00 20 01 41 a1 41", SG_ETRUNC, NULL);
    refuse_hex("95 0c 01 a1 6d d9 20 " EX_SECRET_HEX " db ff ff ff ff", SG_ETRUNC, NULL);
    /* A str32 header holding the limit is accepted, one byte more is too big. */
    {
        tbuf t = {0};
        sg_msg d;
        sg_err err;
        uint8_t *copy;
        void *enc = NULL;
        size_t elen;

        tb_hex(&t, "92 0e db 00 00 20 00");
        tb_put(&t, big, SG_PEM_MAX);
        copy = decode_expect(&d, t.b, t.len, 0, &err);
        assert_int_equal(d.pem_len, SG_PEM_MAX);
        assert_true(inside(d.pem, d.pem_len, copy, t.len));
        assert_int_equal(sg_msg_encode(&enc, &elen, &d), 0);
        assert_int_equal(elen, SG_FRAME_HEADER + 2 + 3 + SG_PEM_MAX);
        assert_memory_equal((uint8_t *)enc + SG_FRAME_HEADER, "\x92\x0e\xda\x20\x00", 5);
        free(enc);
        test_free(copy);
        tb_free(&t);
        tb_hex(&t, "92 0e db 00 00 20 01");
        tb_put(&t, big, SG_PEM_MAX + 1);
        refuse_tb(&t, SG_ETOOBIG, "RENEW: csr: 8193 bytes exceeds the limit of 8192");
        tb_free(&t);
    }
    /* A NULL PEM pointer with a length is refused by the encoder. */
    for (size_t f = 0; f < sizeof(pem_fields) / sizeof(pem_fields[0]); f++) {
        sg_msg m = pem_msg(f, NULL, 5);
        void *enc = NULL;
        size_t elen;
        assert_int_equal(sg_msg_encode(&enc, &elen, &m), SG_EINVAL);
        m = pem_msg(f, NULL, 0);
        assert_int_equal(sg_msg_encode(&enc, &elen, &m), SG_EINVAL);
    }
    test_free(big);
}

static void test_utf8(void **state)
{
    static const struct {
        const char *hex;
        size_t bad_at; /* SIZE_MAX: valid */
    } cases[] = {
        {"", SIZE_MAX},
        {"00", SIZE_MAX},
        {"7f", SIZE_MAX},
        {"c2 80", SIZE_MAX},                      /* U+0080 */
        {"df bf", SIZE_MAX},                      /* U+07FF */
        {"e0 a0 80", SIZE_MAX},                   /* U+0800 */
        {"e0 a4 86 e0 a4 b6 e0 a4 be", SIZE_MAX}, /* आशा */
        {"ed 9f bf", SIZE_MAX},                   /* U+D7FF */
        {"ee 80 80", SIZE_MAX},                   /* U+E000 */
        {"ef bf bf", SIZE_MAX},                   /* U+FFFF */
        {"f0 90 80 80", SIZE_MAX},                /* U+10000 */
        {"f0 9f 98 80", SIZE_MAX},                /* U+1F600 */
        {"f4 8f bf bf", SIZE_MAX},                /* U+10FFFF */
        {"80", 0},                                /* lone continuation */
        {"61 bf", 1},
        {"c0 80", 0},       /* overlong NUL */
        {"c1 bf", 0},       /* overlong */
        {"e0 80 80", 0},    /* overlong */
        {"e0 9f bf", 0},    /* overlong */
        {"f0 80 80 80", 0}, /* overlong */
        {"f0 8f bf bf", 0}, /* overlong */
        {"ed a0 80", 0},    /* surrogate U+D800 */
        {"ed bf bf", 0},    /* surrogate U+DFFF */
        {"f4 90 80 80", 0}, /* U+110000 */
        {"f5 80 80 80", 0},
        {"f8 88 80 80 80", 0},
        {"fe", 0},
        {"ff", 0},
        {"61 62 c3", 2}, /* cut at the end */
        {"e2 82", 0},
        {"f0 9f 98", 0},
        {"c3 28", 0}, /* bad continuation */
        {"e2 28 a1", 0},
        {"e2 82 28", 0},
        {"f0 28 8c bc", 0},
        {"f0 90 28 bc", 0},
        {"f0 90 8c 28", 0},
        {"61 e0 a4 86 ff", 4},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n;
        uint8_t *s = hex(cases[i].hex, &n);
        sg_msg em = {.type = SG_MSG_ERROR,
                     .code = S("malformed"),
                     .text = (char *)s,
                     .text_len = (uint32_t)n};
        sg_msg bm = {.type = SG_MSG_BYE, .text = (char *)s, .text_len = (uint32_t)n};
        void *enc = NULL;
        size_t elen;
        tbuf e = {0}, b = {0};

        tb_hex(&e, "93 07 a9 6d 61 6c 66 6f 72 6d 65 64");
        tb_str(&e, (const char *)s, n);
        tb_hex(&b, "92 08");
        tb_str(&b, (const char *)s, n);
        if (cases[i].bad_at == SIZE_MAX) {
            round_trip(&em);
            round_trip(&bm);
        } else {
            char msg[128];
            snprintf(msg, sizeof(msg), "ERROR: text: not valid UTF-8 at byte %zu", cases[i].bad_at);
            refuse_tb(&e, SG_EFORMAT, msg);
            snprintf(msg, sizeof(msg), "BYE: text: not valid UTF-8 at byte %zu", cases[i].bad_at);
            refuse_tb(&b, SG_EFORMAT, msg);
            assert_int_equal(sg_msg_encode(&enc, &elen, &em), SG_EINVAL);
            assert_int_equal(sg_msg_encode(&enc, &elen, &bm), SG_EINVAL);
        }
        tb_free(&e);
        tb_free(&b);
        test_free(s);
    }
}

/* Decoded strings point into the payload; nothing is copied. */
static void test_zero_copy(void **state)
{
    (void)state;
    for (size_t i = 0; i < NEXAMPLES; i++) {
        size_t flen;
        uint8_t *frame = hex(examples[i].hex, &flen);
        size_t plen = flen - SG_FRAME_HEADER;
        sg_msg m;
        sg_err err;
        uint8_t *copy = decode_expect(&m, frame + SG_FRAME_HEADER, plen, 0, &err);

        if (m.node_len > 0)
            assert_true(inside(m.node, m.node_len, copy, plen));
        if (m.code_len > 0)
            assert_true(inside(m.code, m.code_len, copy, plen));
        if (m.text_len > 0)
            assert_true(inside(m.text, m.text_len, copy, plen));
        if (m.batch_len > 0)
            assert_true(inside(m.batch, m.batch_len, copy, plen));
        if (m.secret_len > 0)
            assert_true(inside(m.secret, m.secret_len, copy, plen));
        if (m.pem_len > 0)
            assert_true(inside(m.pem, m.pem_len, copy, plen));
        if (m.pem2_len > 0)
            assert_true(inside(m.pem2, m.pem2_len, copy, plen));
        test_free(copy);
        test_free(frame);
    }
}

/* ---- BATCH bodies ---- */

static void test_batch_body(void **state)
{
    size_t blen;
    uint8_t *bbuf = hex(BATCH_EXAMPLE_HEX, &blen);
    tbuf t = {0};
    sg_batch *b = NULL;
    uint8_t *copy;
    sg_msg m;
    sg_err err;

    (void)state;
    /* No body, a body of two values, trailing bytes after a real batch. */
    refuse_hex("92 03", SG_ETRUNC, "BATCH: batch: at byte 0: input is empty");
    refuse_hex("92 03 c0 c0", SG_ETRAILING, "BATCH: 1 trailing byte(s) after the 1-byte batch");
    refuse_hex("92 03 01 02 03", SG_ETRAILING, "BATCH: 2 trailing byte(s) after the 1-byte batch");
    tb_hex(&t, "92 03");
    tb_put(&t, bbuf, blen);
    tb_hex(&t, "00");
    refuse_tb(&t, SG_ETRAILING, "BATCH: 1 trailing byte(s) after the 213-byte batch");
    tb_free(&t);

    /* A body cut short, or lying about its size, or with the reserved byte. */
    refuse_hex("92 03 92 a8 6d 69", SG_ETRUNC, NULL);
    refuse_hex("92 03 dd ff ff ff ff", SG_ETRUNC,
               "BATCH: batch: at byte 0: array of 4294967295 elements, but only 0 bytes remain");
    refuse_hex("92 03 92 c1 90", SG_EFORMAT, "BATCH: batch: at byte 1: reserved type byte 0xc1");

    /* Nesting: 8 levels pass the frame (and fail later as a batch), 9 do not. */
    tb_hex(&t, "92 03 91 91 91 91 91 91 91 90");
    copy = decode_expect(&m, t.b, t.len, 0, &err);
    assert_int_equal(m.batch_len, 8);
    assert_int_equal(sg_batch_decode(&b, m.batch, m.batch_len, NULL, &err), SG_EFORMAT);
    test_free(copy);
    tb_free(&t);
    refuse_hex("92 03 91 91 91 91 91 91 91 91 90", SG_EDEPTH,
               "BATCH: batch: at byte 8: nesting deeper than 8");

    /* The lead must be exactly 92 03. */
    tb_hex(&t, "dc 00 02 03");
    tb_put(&t, bbuf, blen);
    refuse_tb(&t, SG_EFORMAT, "BATCH: must begin with the bytes 92 03 (fixarray of 2, type 3)");
    tb_free(&t);
    tb_hex(&t, "dd 00 00 00 02 03");
    tb_put(&t, bbuf, blen);
    refuse_tb(&t, SG_EFORMAT, "BATCH: must begin with the bytes 92 03 (fixarray of 2, type 3)");
    tb_free(&t);
    refuse_hex("93 03 c0 c0", SG_EFORMAT,
               "BATCH: must begin with the bytes 92 03 (fixarray of 2, type 3)");
    refuse_hex("91 03", SG_EFORMAT,
               "BATCH: must begin with the bytes 92 03 (fixarray of 2, type 3)");
    refuse_hex("92 cc 03 c0", SG_EFORMAT,
               "message type: must be one byte, a positive fixint 0x01-0x10");

    /* One value that is not a batch passes the frame; sg_batch_decode refuses it. */
    copy = decode_expect(&m, "\x92\x03\xc0", 3, 0, &err);
    assert_int_equal(m.batch_len, 1);
    assert_int_equal(sg_batch_decode(&b, m.batch, m.batch_len, NULL, &err), SG_ETYPE);
    assert_null(b);
    test_free(copy);

    test_free(bbuf);
}

/* Non-BATCH payloads nest at most 4 deep and hold containers of at most 8 elements. */
static void test_nesting_non_batch(void **state)
{
    (void)state;
    refuse_hex("92 05 91 91 91 01", SG_ETYPE, "PING: nonce: expected uint, got array");
    refuse_hex("92 05 91 91 91 91 01", SG_EDEPTH, "PING: at byte 5: nesting deeper than 4");
    refuse_hex("92 05 98 01 02 03 04 05 06 07 08", SG_ETYPE,
               "PING: nonce: expected uint, got array");
    refuse_hex("92 05 99 01 02 03 04 05 06 07 08 09", SG_ETOOBIG,
               "PING: at byte 2: array of 9 elements exceeds the limit of 8");
    refuse_hex("92 05 df ff ff ff ff", SG_ETOOBIG,
               "PING: at byte 2: map of 4294967295 pairs exceeds the limit of 8");
    refuse_hex("92 05 db ff ff ff ff", SG_ETRUNC, NULL);
    refuse_hex("92 05 db 00 00 00 01", SG_ETRUNC, NULL);
    refuse_hex("92 05 c1", SG_EFORMAT, "PING: at byte 2: reserved type byte 0xc1");
    /* The same limits for the enrollment messages, whose strings are the largest. */
    refuse_hex("92 0e 91 91 91 a1 41", SG_ETYPE, "RENEW: csr: expected str, got array");
    refuse_hex("92 0e 91 91 91 91 a1 41", SG_EDEPTH, "RENEW: at byte 5: nesting deeper than 4");
    refuse_hex("93 0d a1 41 98 01 02 03 04 05 06 07 08", SG_ETYPE,
               "CERT: ca: expected str, got array");
    refuse_hex("93 0d 99 01 02 03 04 05 06 07 08 09 a1 41", SG_ETOOBIG,
               "CERT: at byte 2: array of 9 elements exceeds the limit of 8");
    refuse_hex("95 0c 01 a1 6d 81 a1 41 a1 41 a1 41", SG_ETYPE,
               "JOIN: secret: expected str, got map");
    refuse_hex("95 0c 01 a1 6d d9 20 " EX_SECRET_HEX " df 00 00 00 09", SG_ETOOBIG,
               "JOIN: at byte 39: map of 9 pairs exceeds the limit of 8");
    /* The same limits for the restore messages. */
    refuse_hex("92 0f 91 91 91 01", SG_ETYPE, "RESTORE: seq: expected uint, got array");
    refuse_hex("92 0f 91 91 91 91 01", SG_EDEPTH, "RESTORE: at byte 5: nesting deeper than 4");
    refuse_hex("93 10 00 99 01 02 03 04 05 06 07 08 09", SG_ETOOBIG,
               "RESTORE_END: at byte 3: array of 9 elements exceeds the limit of 8");
    refuse_hex("93 10 00 df 00 00 00 01 00 00", SG_ETYPE,
               "RESTORE_END: count: expected uint, got map");
    /* 64-bit fields: every uint64 value fits; a negative one of any width does not. */
    refuse_hex("92 0f ff", SG_EFORMAT, "RESTORE: seq: must not be negative, got -1");
    refuse_hex("92 0f d3 80 00 00 00 00 00 00 00", SG_EFORMAT,
               "RESTORE: seq: must not be negative, got -9223372036854775808");
    refuse_hex("93 10 cd 04 b0 d0 80", SG_EFORMAT,
               "RESTORE_END: count: must not be negative, got -128");
    refuse_hex("93 10 e0 01", SG_EFORMAT, "RESTORE_END: seq: must not be negative, got -32");
    {
        sg_msg m;
        sg_err err;
        uint8_t *copy = decode_expect(
            &m, "\x93\x10\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xd3\x7f\xff\xff\xff\xff\xff\xff\xff",
            20, 0, &err);
        assert_int_equal(m.type, SG_MSG_RESTORE_END);
        assert_true(m.seq == UINT64_MAX && m.count == (uint64_t)INT64_MAX);
        test_free(copy);
    }
    /* A 32-bit field holding a larger value. */
    refuse_hex("94 01 01 a1 6d cf 00 00 00 01 00 00 00 00", SG_EFORMAT,
               "HELLO: schema: 4294967296 does not fit in 32 bits");
    refuse_hex("94 01 01 a1 6d ff", SG_EFORMAT, "HELLO: schema: must not be negative, got -1");
}

/* Depth bombs thousands deep and 32-bit length headers far beyond the frame, in a BATCH body
 * and in the other messages: refused with their code before anything is allocated (the decoder
 * is zero-copy; under ASan any allocation over 64 MiB would be reported). */
static void test_hostile_bombs(void **state)
{
    enum { DEEP = 10000 };
    static const char *const headers[] = {"dd ff ff ff ff", "df ff ff ff ff", "db ff ff ff ff",
                                          "c6 ff ff ff ff", "c9 ff ff ff ff 01"};
    uint8_t *b = test_malloc(2 * DEEP + 16);

    (void)state;
    /* 10,000 nested arrays, or maps {nil: {nil: ...}}, as a BATCH body and as a PING's nonce. */
    for (int msg = 0; msg < 2; msg++) {
        b[0] = 0x92;
        b[1] = msg == 0 ? 0x03 : 0x05;
        memset(b + 2, 0x91, DEEP);
        b[2 + DEEP] = 0x01;
        refuse(b, DEEP + 3, SG_EDEPTH, NULL);
        refuse(b, DEEP + 2, SG_EDEPTH, NULL); /* and without the innermost value */
        for (size_t n = 0; n < DEEP; n++) {
            b[2 + 2 * n] = 0x81;
            b[3 + 2 * n] = 0xc0;
        }
        b[2 + 2 * DEEP] = 0x01;
        refuse(b, 2 * DEEP + 3, SG_EDEPTH, NULL);
    }
    /* A 4 GiB array, map, str, bin or ext header in a 7-to-8-byte payload: as the BATCH body
     * it is truncated; as a PING's nonce or an ERROR's code, a non-BATCH message refuses a
     * container of more than 8 elements, and a string or blob that is not there. */
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        char h[64];
        snprintf(h, sizeof(h), "92 03 %s", headers[i]);
        refuse_hex(h, SG_ETRUNC, NULL);
        snprintf(h, sizeof(h), "92 05 %s", headers[i]);
        refuse_hex(h, i < 2 ? SG_ETOOBIG : SG_ETRUNC, NULL);
        snprintf(h, sizeof(h), "93 07 %s a1 41", headers[i]);
        refuse_hex(h, i < 2 ? SG_ETOOBIG : SG_ETRUNC, NULL);
    }
    test_free(b);
}

/* ---- the encoder ---- */

static void test_encode_refuses(void **state)
{
    static const char two_values[] = "\xc0\xc0";
    const sg_msg bad[] = {
        {.type = 0},
        {.type = (sg_msg_type)17},
        {.type = (sg_msg_type)127},
        {.type = (sg_msg_type)-1},
        {.type = SG_MSG_HELLO, .version = 2, .node = S("mirzapur")},
        {.type = SG_MSG_HELLO, .version = 0, .node = S("mirzapur")},
        {.type = SG_MSG_HELLO, .version = 1, .node = S("Mirzapur")},
        {.type = SG_MSG_HELLO, .version = 1, .node = NULL, .node_len = 0},
        {.type = SG_MSG_HELLO, .version = 1, .node = NULL, .node_len = 3},
        {.type = SG_MSG_WELCOME, .version = 2, .node = S("hub")},
        {.type = SG_MSG_WELCOME, .version = 1, .node = S("-hub")},
        {.type = SG_MSG_ERROR, .code = S(""), .text = S("x")},
        {.type = SG_MSG_ERROR, .code = NULL, .code_len = 0, .text = S("x")},
        {.type = SG_MSG_ERROR, .code = S("Protocol_error"), .text = S("x")},
        {.type = SG_MSG_ERROR, .code = S("protocol-error"), .text = S("x")},
        {.type = SG_MSG_ERROR, .code = S("malformed"), .text = "\xc0\x80", .text_len = 2},
        {.type = SG_MSG_ERROR, .code = S("malformed"), .text = NULL, .text_len = 1},
        {.type = SG_MSG_BYE, .text = "x", .text_len = SG_MSG_TEXT_MAX + 1},
        {.type = SG_MSG_BATCH, .batch = NULL, .batch_len = 0},
        {.type = SG_MSG_BATCH, .batch = NULL, .batch_len = 4},
        {.type = SG_MSG_BATCH, .batch = "\xc0", .batch_len = 0},
        {.type = SG_MSG_BATCH, .batch = two_values, .batch_len = 2},
        {.type = SG_MSG_BATCH, .batch = "\xc1", .batch_len = 1},
        {.type = SG_MSG_BATCH, .batch = "\x92\xa1", .batch_len = 2},
        {.type = SG_MSG_BATCH, .batch = "\x91\x91\x91\x91\x91\x91\x91\x91\x90", .batch_len = 9},
        {.type = SG_MSG_JOIN, .version = 2, .node = S("m"), .secret = S(EX_SECRET), .pem = S("A")},
        {.type = SG_MSG_JOIN, .version = 0, .node = S("m"), .secret = S(EX_SECRET), .pem = S("A")},
        {.type = SG_MSG_JOIN, .version = 1, .node = S(""), .secret = S(EX_SECRET), .pem = S("A")},
        {.type = SG_MSG_JOIN, .version = 1, .node = S("-m"), .secret = S(EX_SECRET), .pem = S("A")},
        {.type = SG_MSG_JOIN, .version = 1, .node = S("M"), .secret = S(EX_SECRET), .pem = S("A")},
        {.type = SG_MSG_JOIN, .version = 1, .node = S("m"), .secret = S(""), .pem = S("A")},
        {.type = SG_MSG_JOIN,
         .version = 1,
         .node = S("m"),
         .secret = S("9C4E1F0A7B3D2658E1F04A9C7D3B5E20")},
        {.type = SG_MSG_JOIN, .version = 1, .node = S("m"), .secret = S(EX_SECRET), .pem = S("")},
        {.type = SG_MSG_JOIN, .version = 1, .node = S("m"), .secret = S(EX_SECRET), .pem = S("\t")},
        {.type = SG_MSG_CERT, .pem = S("A"), .pem2 = S("")},
        {.type = SG_MSG_CERT, .pem = S(""), .pem2 = S("A")},
        {.type = SG_MSG_CERT, .pem = S("A"), .pem2 = S("\xc3\xa9")},
        {.type = SG_MSG_CERT, .pem = NULL, .pem_len = 3, .pem2 = S("A")},
        {.type = SG_MSG_RENEW, .pem = S("")},
        {.type = SG_MSG_RENEW, .pem = S("A\x7f")},
        {.type = SG_MSG_RENEW, .pem = NULL, .pem_len = 0},
    };
    char big[SG_MSG_TEXT_MAX + 1];

    (void)state;
    memset(big, 'x', sizeof(big));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sg_msg m = bad[i];
        void *enc = (void *)1;
        size_t elen = 5;

        if (m.type == SG_MSG_BYE)
            m.text = big;
        if (sg_msg_encode(&enc, &elen, &m) != SG_EINVAL)
            fail_msg("case %zu: encoder accepted an invalid %s", i, sg_msg_name(m.type));
        assert_null(enc);
        assert_int_equal(elen, 0);
    }
}

static void test_msg_name(void **state)
{
    static const char *const names[] = {
        "UNKNOWN", "HELLO", "WELCOME", "BATCH",          "ACK",          "PING",
        "PONG",    "ERROR", "BYE",     "SNAPSHOT_BEGIN", "SNAPSHOT_END", "STATUS",
        "JOIN",    "CERT",  "RENEW",   "RESTORE",        "RESTORE_END"};

    (void)state;
    assert_int_equal(sizeof(names) / sizeof(names[0]), SG_MSG_RESTORE_END + 1);
    for (int t = 0; t <= SG_MSG_RESTORE_END; t++)
        assert_string_equal(sg_msg_name(t), names[t]);
    assert_string_equal(sg_msg_name(17), "UNKNOWN");
    assert_string_equal(sg_msg_name(-1), "UNKNOWN");
    assert_string_equal(sg_msg_name(0x7fffffff), "UNKNOWN");
}

/* A failed decode leaves the message zeroed (apart from type and version when unsupported). */
static void test_failure_leaves_zero(void **state)
{
    sg_msg m;
    sg_err err;
    uint8_t *copy;

    (void)state;
    memset(&m, 0xab, sizeof(m));
    copy = decode_expect(&m, "\x95\x02\x01\xa3hub\x01\xc3", 9, SG_ETYPE, &err);
    assert_string_equal(err.msg, "WELCOME: seq: expected uint, got bool");
    assert_int_equal(m.type, 0);
    assert_null(m.node);
    assert_int_equal(m.node_len, 0);
    assert_int_equal(m.schema, 0);
    test_free(copy);

    memset(&m, 0xab, sizeof(m));
    copy = decode_expect(&m, "\x92\x04\x2b", 3, 0, &err);
    assert_int_equal(m.type, SG_MSG_ACK);
    assert_true(m.seq == 43);
    assert_null(m.node);
    assert_null(m.batch);
    assert_int_equal(m.version, 0);
    test_free(copy);

    /* NULL err is allowed. */
    copy = decode_expect(&m, "\x92\x04\x2b", 3, 0, &err);
    assert_int_equal(sg_msg_decode(&m, copy, 2, NULL), SG_ETRUNC);
    test_free(copy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples),
        cmocka_unit_test(test_example_batch_body),
        cmocka_unit_test(test_example_prefixes_truncated),
        cmocka_unit_test(test_example_trailing_bytes),
        cmocka_unit_test(test_example_corruptions),
        cmocka_unit_test(test_round_trip_every_type),
        cmocka_unit_test(test_any_width_accepted),
        cmocka_unit_test(test_valid_shapes),
        cmocka_unit_test(test_wrong_type_every_position),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_element_counts),
        cmocka_unit_test(test_version_negotiation),
        cmocka_unit_test(test_frame_len),
        cmocka_unit_test(test_payload_limits),
        cmocka_unit_test(test_node_ids),
        cmocka_unit_test(test_error_codes_and_text),
        cmocka_unit_test(test_secrets),
        cmocka_unit_test(test_pem),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_zero_copy),
        cmocka_unit_test(test_batch_body),
        cmocka_unit_test(test_nesting_non_batch),
        cmocka_unit_test(test_hostile_bombs),
        cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_msg_name),
        cmocka_unit_test(test_failure_leaves_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
