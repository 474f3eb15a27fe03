/*
 * test_batch.c - unit tests of proto/batch.c and proto/mpcheck.c.
 *
 * What is proven here: the encoder and decoder round-trip every value kind; the example of
 * proto/PROTOCOL.md decodes to what the document says and the encoder reproduces it byte for
 * byte; every hostile input is refused with its exact code and message, and refused by the
 * allocation-free check (no allocation at all) whenever a header lies about sizes or depth.
 *
 * Allocation tracking: outside AddressSanitizer this file replaces malloc/calloc/realloc/free
 * with thin wrappers over glibc's __libc_* functions that count calls and remember the largest
 * request, so a test can assert that a decode allocated nothing, or nothing big. Under ASan the
 * wrappers are left out and ASan itself is told to abort on any allocation over 64 MiB.
 * These counters are the only mutable globals, and only test code reads them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpcheck.h"
#include "sangam/batch.h"

/* ---- allocation tracking ---- */

#if defined(__SANITIZE_ADDRESS__)
#define TB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TB_ASAN 1
#endif
#endif

#ifdef TB_ASAN
const char *__asan_default_options(void);
/* Makes any single allocation over 64 MiB a reported error, so a decoder that trusted a header
 * claiming gigabytes fails the test even though the counters below are not available. */
const char *__asan_default_options(void)
{
    return "max_allocation_size_mb=64";
}
#define TB_TRACKING 0
static void track_reset(void)
{
}
static size_t track_calls(void)
{
    return 0;
}
static size_t track_peak(void)
{
    return 0;
}
#else
#define TB_TRACKING 1
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

static size_t g_alloc_calls; /* allocating calls since track_reset() */
static size_t g_alloc_peak;  /* largest single request since track_reset() */

static void track(size_t n)
{
    g_alloc_calls++;
    if (n > g_alloc_peak)
        g_alloc_peak = n;
}

void *malloc(size_t n)
{
    track(n);
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    track(size != 0 && n > SIZE_MAX / size ? SIZE_MAX : n * size);
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    track(n);
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}

static void track_reset(void)
{
    g_alloc_calls = 0;
    g_alloc_peak = 0;
}
static size_t track_calls(void)
{
    return g_alloc_calls;
}
static size_t track_peak(void)
{
    return g_alloc_peak;
}
#endif

/* ---- helpers ---- */

/* Bytes from a hex string ("92 a8 6d"; spaces ignored) into a new exact-size allocation, so ASan
 * sees any read past the end. */
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
    memcpy(c, b, n);
    return c;
}

/* Decodes len bytes of buf (through an exact-size copy), asserts the code, and on failure
 * asserts that *out stayed NULL and that err holds the same code. Returns the batch (or NULL);
 * *out_copy receives the copy the batch points into (caller frees). */
static sg_batch *decode_expect(const void *buf, size_t len, const sg_batch_limits *lim, int want,
                               sg_err *err, uint8_t **out_copy)
{
    uint8_t *copy = dup_exact(buf, len);
    sg_batch *b = (sg_batch *)1;
    int rc;

    sg_err_clear(err);
    rc = sg_batch_decode(&b, copy, len, lim, err);
    if (rc != want)
        fail_msg("decode returned %d (%s), want %d (%s); message: %s", rc, sg_strerror_name(rc),
                 want, sg_strerror_name(want), err->msg);
    if (rc != 0) {
        assert_null(b);
        assert_int_equal(err->code, rc);
        assert_true(err->msg[0] != '\0');
    } else {
        assert_non_null(b);
    }
    *out_copy = copy;
    return b;
}

/* Decode that must fail with want and message msg (exact when msg is not NULL). */
static void refuse(const void *buf, size_t len, const sg_batch_limits *lim, int want,
                   const char *msg)
{
    sg_err err;
    uint8_t *copy;
    sg_batch *b = decode_expect(buf, len, lim, want, &err, &copy);

    sg_batch_free(b);
    if (msg != NULL && strcmp(err.msg, msg) != 0)
        fail_msg("message\n  got:  %s\n  want: %s", err.msg, msg);
    test_free(copy);
}

/* A growing msgpack buffer for building test inputs, valid or not. */
typedef struct tb_buf {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} tb_buf;

static void tb_init(tb_buf *t)
{
    msgpack_sbuffer_init(&t->sb);
    msgpack_packer_init(&t->pk, &t->sb, msgpack_sbuffer_write);
}

static void tb_destroy(tb_buf *t)
{
    msgpack_sbuffer_destroy(&t->sb);
}

static void put_str(tb_buf *t, const char *s)
{
    size_t n = strlen(s);
    assert_int_equal(msgpack_pack_str(&t->pk, n), 0);
    assert_int_equal(msgpack_pack_str_body(&t->pk, s, n), 0);
}

static void put_hex(tb_buf *t, const char *h)
{
    size_t n;
    uint8_t *b = hex(h, &n);
    assert_int_equal(msgpack_sbuffer_write(&t->sb, (const char *)b, n), 0);
    test_free(b);
}

/* Where build_one() puts a replacement. */
typedef enum at {
    AT_NONE,    /* no replacement: a valid batch */
    AT_BATCH,   /* the whole batch */
    AT_ORIGIN,  /* batch[0] */
    AT_CHANGES, /* batch[1] */
    AT_CHANGE,  /* changes[0] */
    AT_SEQ,     /* change[0] */
    AT_HLC,     /* change[1] */
    AT_TABLE,   /* change[2] */
    AT_PK,      /* change[3] */
    AT_OP,      /* change[4] */
    AT_COLS,    /* change[5] */
    AT_KEY,     /* the key of cols[1] */
    AT_VALUE,   /* the value of cols[1] */
} at;

/* Builds ["mirzapur", [[7, 0x018fd33de5000000, "members", "01HZX3K7QG4M9B2N5P8R6T1V0W", 1,
 * {"name": "Asha", "birth_year": 1991}]]] with the element at pos replaced by the msgpack bytes
 * in hex h. */
static void build_one(tb_buf *t, at pos, const char *h)
{
    tb_init(t);
#define PUT(p, normal)                                                                             \
    do {                                                                                           \
        if (pos == (p))                                                                            \
            put_hex(t, h);                                                                         \
        else {                                                                                     \
            normal;                                                                                \
        }                                                                                          \
    } while (0)
    if (pos == AT_BATCH) {
        put_hex(t, h);
        return;
    }
    msgpack_pack_array(&t->pk, 2);
    PUT(AT_ORIGIN, put_str(t, "mirzapur"));
    if (pos == AT_CHANGES) {
        put_hex(t, h);
        return;
    }
    msgpack_pack_array(&t->pk, 1);
    if (pos == AT_CHANGE) {
        put_hex(t, h);
        return;
    }
    msgpack_pack_array(&t->pk, 6);
    PUT(AT_SEQ, msgpack_pack_uint64(&t->pk, 7));
    PUT(AT_HLC, msgpack_pack_uint64(&t->pk, 0x018fd33de5000000ull));
    PUT(AT_TABLE, put_str(t, "members"));
    PUT(AT_PK, put_str(t, "01HZX3K7QG4M9B2N5P8R6T1V0W"));
    PUT(AT_OP, msgpack_pack_uint8(&t->pk, 1));
    if (pos == AT_COLS) {
        put_hex(t, h);
        return;
    }
    msgpack_pack_map(&t->pk, 2);
    put_str(t, "name");
    put_str(t, "Asha");
    PUT(AT_KEY, put_str(t, "birth_year"));
    PUT(AT_VALUE, msgpack_pack_int64(&t->pk, 1991));
#undef PUT
}

/* A column for put_change(). */
typedef struct tcol {
    const char *name;
    sg_vtype type;
    int64_t i;
    const char *s;
} tcol;

/* Appends one change array with no validation: cols as a map when ncols > 0 or op is not 3,
 * else nil. */
static void put_change(tb_buf *t, uint64_t seq, const char *table, const char *pk, int op,
                       const tcol *cols, uint32_t ncols)
{
    msgpack_pack_array(&t->pk, 6);
    msgpack_pack_uint64(&t->pk, seq);
    msgpack_pack_uint64(&t->pk, 0x018fd33de5000000ull + seq);
    put_str(t, table);
    put_str(t, pk);
    msgpack_pack_int64(&t->pk, op);
    if (op == 3 && ncols == 0) {
        msgpack_pack_nil(&t->pk);
        return;
    }
    msgpack_pack_map(&t->pk, ncols);
    for (uint32_t j = 0; j < ncols; j++) {
        put_str(t, cols[j].name);
        if (cols[j].type == SG_VAL_NIL)
            msgpack_pack_nil(&t->pk);
        else if (cols[j].type == SG_VAL_INT)
            msgpack_pack_int64(&t->pk, cols[j].i);
        else
            put_str(t, cols[j].s);
    }
}

static void assert_bytes(const char *got, uint32_t got_len, const char *want)
{
    size_t n = strlen(want);
    if (got_len != n || memcmp(got, want, n) != 0)
        fail_msg("got '%.*s' (%u bytes), want '%s'", (int)got_len, got, (unsigned)got_len, want);
}

/* 1 if [p, p + n) lies inside [buf, buf + len). */
static int inside(const void *p, size_t n, const void *buf, size_t len)
{
    const char *c = p, *b = buf;
    return c >= b && c + n <= b + len;
}

/* Asserts that every string of b points into buf (zero copy). */
static void assert_zero_copy(const sg_batch *b, const void *buf, size_t len)
{
    assert_true(inside(b->origin, b->origin_len, buf, len));
    for (uint32_t i = 0; i < b->nchanges; i++) {
        const sg_change *c = &b->changes[i];
        assert_true(inside(c->table, c->table_len, buf, len));
        assert_true(inside(c->pk, c->pk_len, buf, len));
        for (uint32_t j = 0; j < c->ncols; j++) {
            assert_true(inside(c->cols[j].name, c->cols[j].name_len, buf, len));
            if (c->cols[j].v.type == SG_VAL_STR)
                assert_true(inside(c->cols[j].v.s, c->cols[j].v.len, buf, len));
        }
    }
}

/* Asserts two changes are equal field by field (cols ignored for deletes). */
static void assert_change_eq(const sg_change *a, const sg_change *b)
{
    assert_int_equal(a->seq, b->seq);
    assert_int_equal(a->hlc, b->hlc);
    assert_int_equal(a->table_len, b->table_len);
    assert_memory_equal(a->table, b->table, a->table_len);
    assert_int_equal(a->pk_len, b->pk_len);
    assert_memory_equal(a->pk, b->pk, a->pk_len);
    assert_int_equal(a->op, b->op);
    if (a->op == SG_OP_DELETE) {
        assert_null(b->cols);
        assert_int_equal(b->ncols, 0);
        return;
    }
    assert_int_equal(a->ncols, b->ncols);
    for (uint32_t j = 0; j < a->ncols; j++) {
        const sg_col *x = &a->cols[j], *y = &b->cols[j];
        assert_int_equal(x->name_len, y->name_len);
        assert_memory_equal(x->name, y->name, x->name_len);
        assert_int_equal(x->v.type, y->v.type);
        if (x->v.type == SG_VAL_INT)
            assert_true(x->v.i == y->v.i);
        if (x->v.type == SG_VAL_STR) {
            assert_int_equal(x->v.len, y->v.len);
            if (x->v.len > 0)
                assert_memory_equal(x->v.s, y->v.s, x->v.len);
        }
    }
}

#define S(x) x, (uint32_t)strlen(x)

/* The example of proto/PROTOCOL.md section "Example". Keep the two identical. */
static const char example_hex[] = "92 a8 6d 69 72 7a 61 70 75 72 dd 00 00 00 03 96"
                                  "29 cf 01 8f d3 3d e5 00 00 00 a7 6d 65 6d 62 65"
                                  "72 73 ba 30 31 48 5a 58 33 4b 37 51 47 34 4d 39"
                                  "42 32 4e 35 50 38 52 36 54 31 56 30 57 01 83 a4"
                                  "6e 61 6d 65 a9 e0 a4 86 e0 a4 b6 e0 a4 be aa 62"
                                  "69 72 74 68 5f 79 65 61 72 cd 07 c7 a5 70 68 6f"
                                  "6e 65 c0 96 2a cf 01 8f d3 3d e5 00 00 01 a6 69"
                                  "73 73 75 65 73 ba 30 31 48 5a 58 33 4d 32 44 35"
                                  "46 38 47 31 4a 34 4b 37 4e 30 50 33 51 36 52 39"
                                  "02 81 a6 73 74 61 74 75 73 a8 72 65 73 6f 6c 76"
                                  "65 64 96 2b cf 01 8f d3 3d e5 00 00 02 aa 61 74"
                                  "74 65 6e 64 61 6e 63 65 ba 30 31 48 5a 58 33 4e"
                                  "38 42 34 43 36 44 30 45 32 46 35 47 37 48 39 4a"
                                  "31 4b 33 03 c0";

/* The changes the example encodes. */
static const sg_col example_c0[] = {
    {S("name"), {SG_VAL_STR, 0, "\xe0\xa4\x86\xe0\xa4\xb6\xe0\xa4\xbe", 9}}, /* "आशा" */
    {S("birth_year"), {SG_VAL_INT, 1991, NULL, 0}},
    {S("phone"), {SG_VAL_NIL, 0, NULL, 0}},
};
static const sg_col example_c1[] = {{S("status"), {SG_VAL_STR, 0, S("resolved")}}};
static const sg_change example_changes[] = {
    {41, 0x018fd33de5000000ull, S("members"), S("01HZX3K7QG4M9B2N5P8R6T1V0W"), SG_OP_INSERT,
     (sg_col *)example_c0, 3},
    {42, 0x018fd33de5000001ull, S("issues"), S("01HZX3M2D5F8G1J4K7N0P3Q6R9"), SG_OP_UPDATE,
     (sg_col *)example_c1, 1},
    {43, 0x018fd33de5000002ull, S("attendance"), S("01HZX3N8B4C6D0E2F5G7H9J1K3"), SG_OP_DELETE,
     NULL, 0},
};

/* ---- round trip and the specification example ---- */

static void test_example_decodes(void **state)
{
    size_t len;
    uint8_t *buf = hex(example_hex, &len);
    sg_batch *b = NULL;
    sg_err err;

    (void)state;
    assert_int_equal(len, 213);
    assert_int_equal(sg_batch_decode(&b, buf, len, NULL, &err), 0);
    assert_bytes(b->origin, b->origin_len, "mirzapur");
    assert_int_equal(b->nchanges, 3);
    for (uint32_t i = 0; i < 3; i++)
        assert_change_eq(&example_changes[i], &b->changes[i]);
    /* Spelled out once more, so this test does not depend on assert_change_eq alone. */
    assert_int_equal(b->changes[0].seq, 41);
    assert_true(b->changes[0].hlc == 0x018fd33de5000000ull);
    assert_int_equal(b->changes[0].cols[1].v.type, SG_VAL_INT);
    assert_int_equal(b->changes[0].cols[1].v.i, 1991);
    assert_int_equal(b->changes[0].cols[2].v.type, SG_VAL_NIL);
    assert_int_equal(b->changes[2].op, SG_OP_DELETE);
    assert_zero_copy(b, buf, len);
    sg_batch_free(b);
    test_free(buf);
}

static void test_example_encodes(void **state)
{
    size_t len, out_len;
    uint8_t *want = hex(example_hex, &len);
    const void *out;
    sg_batch_enc *e = NULL;

    (void)state;
    assert_int_equal(sg_batch_enc_new(&e, "mirzapur"), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sg_batch_enc_add(e, &example_changes[i]), 0);
    assert_int_equal(sg_batch_enc_count(e), 3);
    assert_int_equal(sg_batch_enc_size(e), len);
    assert_int_equal(sg_batch_enc_finish(e, &out, &out_len), 0);
    assert_int_equal(out_len, len);
    assert_memory_equal(out, want, len);
    sg_batch_enc_free(e);
    test_free(want);
}

static void test_roundtrip(void **state)
{
    static const char long_str[] = "a string value that is longer than thirty-one bytes";
    char big[300];
    sg_col ins[] = {
        {S("nil_col"), {SG_VAL_NIL, 0, NULL, 0}},
        {S("zero"), {SG_VAL_INT, 0, NULL, 0}},
        {S("min"), {SG_VAL_INT, INT64_MIN, NULL, 0}},
        {S("max"), {SG_VAL_INT, INT64_MAX, NULL, 0}},
        {S("neg"), {SG_VAL_INT, -33, NULL, 0}},
        {S("u16"), {SG_VAL_INT, 65535, NULL, 0}},
        {S("empty"), {SG_VAL_STR, 0, "", 0}},
        {S("long_1"), {SG_VAL_STR, 0, S(long_str)}},
        {S("big"), {SG_VAL_STR, 0, big, sizeof(big)}},
        {S("hindi"),
         {SG_VAL_STR, 0,
          S("\xe0\xa4\xac\xe0\xa5\x81\xe0\xa4\x82\xe0\xa4\xa6\xe0\xa5"
            "\x87\xe0\xa4\xb2\xe0\xa4\x96\xe0\xa4\x82\xe0\xa4\xa1")}},
        {S("emoji"), {SG_VAL_STR, 0, S("\xf0\x9f\x8c\xbe ok")}},
    };
    sg_col upd[] = {{S("status"), {SG_VAL_STR, 0, S("closed")}},
                    {S("closed_on"), {SG_VAL_NIL, 0, NULL, 0}}};
    sg_col junk[] = {{S("NOT A NAME"), {(sg_vtype)99, 0, NULL, 0}}};
    sg_change in[] = {
        {1, 0, S("members"), S("01HZX3K7QG4M9B2N5P8R6T1V0W"), SG_OP_INSERT, ins,
         sizeof(ins) / sizeof(ins[0])},
        {2, UINT64_MAX, S("issues"), S("a-b_C"), SG_OP_UPDATE, upd, 2},
        /* cols of a delete are ignored by the encoder, however wrong */
        {UINT64_MAX, 1, S("t"), S("x"), SG_OP_DELETE, junk, 1},
    };
    sg_batch_enc *e = NULL;
    const void *out;
    size_t len;
    sg_batch *b;
    sg_err err;
    uint8_t *copy;

    (void)state;
    memset(big, 'x', sizeof(big));
    assert_int_equal(sg_batch_enc_new(&e, "bundelkhand-2"), 0);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(sg_batch_enc_add(e, &in[i]), 0);
    assert_int_equal(sg_batch_enc_finish(e, &out, &len), 0);
    b = decode_expect(out, len, NULL, 0, &err, &copy);
    assert_bytes(b->origin, b->origin_len, "bundelkhand-2");
    assert_int_equal(b->nchanges, 3);
    in[2].cols = NULL;
    in[2].ncols = 0;
    for (uint32_t i = 0; i < 3; i++)
        assert_change_eq(&in[i], &b->changes[i]);
    assert_zero_copy(b, copy, len);
    sg_batch_free(b);
    test_free(copy);

    /* Finish again, add after finishing, and reset for a second batch. */
    {
        sg_change more = in[1];
        const void *out2;
        size_t len2;

        assert_int_equal(sg_batch_enc_finish(e, &out2, &len2), 0);
        assert_int_equal(len2, len);
        sg_batch_enc_reset(e);
        assert_int_equal(sg_batch_enc_count(e), 0);
        assert_int_equal(sg_batch_enc_finish(e, &out2, &len2), SG_EINVAL);
        more.seq = 5;
        assert_int_equal(sg_batch_enc_add(e, &more), 0);
        assert_int_equal(sg_batch_enc_finish(e, &out2, &len2), 0);
        more.seq = 6;
        assert_int_equal(sg_batch_enc_add(e, &more), 0);
        assert_int_equal(sg_batch_enc_finish(e, &out2, &len2), 0);
        b = decode_expect(out2, len2, NULL, 0, &err, &copy);
        assert_bytes(b->origin, b->origin_len, "bundelkhand-2");
        assert_int_equal(b->nchanges, 2);
        assert_int_equal(b->changes[0].seq, 5);
        assert_int_equal(b->changes[1].seq, 6);
        sg_batch_free(b);
        test_free(copy);
    }
    sg_batch_enc_free(e);
}

/* ---- the encoder refuses what the decoder would refuse ---- */

static void test_encoder_refuses(void **state)
{
    char name65[66], origin64[65], str_big[SG_BATCH_MAX_STR + 1];
    sg_col ok_col[] = {{S("status"), {SG_VAL_STR, 0, S("open")}}};
    sg_col many[SG_BATCH_MAX_COLS + 1];
    char names[SG_BATCH_MAX_COLS + 1][8];
    sg_col bad_name[] = {{S("Status"), {SG_VAL_NIL, 0, NULL, 0}}};
    sg_col dup[] = {{S("a"), {SG_VAL_NIL, 0, NULL, 0}},
                    {S("b"), {SG_VAL_NIL, 0, NULL, 0}},
                    {S("a"), {SG_VAL_INT, 1, NULL, 0}}};
    sg_col long_val[] = {{S("note"), {SG_VAL_STR, 0, str_big, sizeof(str_big)}}};
    sg_col bad_type[] = {{S("note"), {(sg_vtype)7, 0, NULL, 0}}};
    sg_col null_str[] = {{S("note"), {SG_VAL_STR, 0, NULL, 3}}};
    sg_change good = {10, 0, S("issues"), S("01HZX3M2D5F8G1J4K7N0P3Q6R9"), SG_OP_UPDATE, ok_col, 1};
    sg_batch_enc *e = (sg_batch_enc *)1;
    size_t size0;

    (void)state;
    memset(name65, 'a', sizeof(name65) - 1);
    name65[65] = '\0';
    memset(origin64, 'a', sizeof(origin64) - 1);
    origin64[64] = '\0';
    memset(str_big, 'x', sizeof(str_big));
    for (uint32_t j = 0; j <= SG_BATCH_MAX_COLS; j++) {
        snprintf(names[j], sizeof(names[j]), "c%u", (unsigned)j);
        many[j].name = names[j];
        many[j].name_len = (uint32_t)strlen(names[j]);
        many[j].v.type = SG_VAL_INT;
        many[j].v.i = j;
        many[j].v.s = NULL;
        many[j].v.len = 0;
    }

    assert_int_equal(sg_batch_enc_new(&e, NULL), SG_EINVAL);
    assert_null(e);
    assert_int_equal(sg_batch_enc_new(&e, ""), SG_EINVAL);
    assert_int_equal(sg_batch_enc_new(&e, "Mirzapur"), SG_EINVAL);
    assert_int_equal(sg_batch_enc_new(&e, "-mirzapur"), SG_EINVAL);
    assert_int_equal(sg_batch_enc_new(&e, origin64), SG_EINVAL);
    assert_null(e);
    origin64[63] = '\0';
    assert_int_equal(sg_batch_enc_new(&e, origin64), 0);
    sg_batch_enc_free(e);

    assert_int_equal(sg_batch_enc_new(&e, "mirzapur"), 0);
    assert_int_equal(sg_batch_enc_add(e, &good), 0);
    size0 = sg_batch_enc_size(e);

#define REFUSED(field_assignment)                                                                  \
    do {                                                                                           \
        sg_change c = good;                                                                        \
        c.seq = 11;                                                                                \
        field_assignment;                                                                          \
        assert_int_equal(sg_batch_enc_add(e, &c), SG_EINVAL);                                      \
        assert_int_equal(sg_batch_enc_size(e), size0);                                             \
        assert_int_equal(sg_batch_enc_count(e), 1);                                                \
    } while (0)
    REFUSED(c.seq = 10);
    REFUSED(c.seq = 9);
    REFUSED(c.seq = 0);
    REFUSED((c.table = "", c.table_len = 0));
    REFUSED((c.table = name65, c.table_len = 65));
    REFUSED((c.pk = "a b", c.pk_len = 3));
    REFUSED((c.pk = name65, c.pk_len = 65));
    REFUSED((c.pk = NULL, c.pk_len = 4));
    REFUSED(c.op = (sg_op)0);
    REFUSED(c.op = (sg_op)4);
    REFUSED(c.ncols = 0);
    REFUSED((c.cols = NULL, c.ncols = 1));
    REFUSED((c.cols = many, c.ncols = SG_BATCH_MAX_COLS + 1));
    REFUSED(c.cols = bad_name);
    REFUSED((c.cols = dup, c.ncols = 3));
    REFUSED(c.cols = long_val);
    REFUSED(c.cols = bad_type);
    REFUSED(c.cols = null_str);
#undef REFUSED
    {
        /* exactly at the limits is fine */
        sg_change c = good;
        c.seq = 11;
        c.cols = many;
        c.ncols = SG_BATCH_MAX_COLS;
        assert_int_equal(sg_batch_enc_add(e, &c), 0);
        long_val[0].v.len = SG_BATCH_MAX_STR;
        c.seq = 12;
        c.cols = long_val;
        c.ncols = 1;
        assert_int_equal(sg_batch_enc_add(e, &c), 0);
    }
    sg_batch_enc_free(e);
    sg_batch_enc_free(NULL);
}

static void test_encoder_count_limit(void **state)
{
    sg_col col[] = {{S("a"), {SG_VAL_INT, 1, NULL, 0}}};
    sg_change c = {0, 0, S("t"), S("p"), SG_OP_INSERT, col, 1};
    sg_batch_enc *e;
    const void *out;
    size_t len, before;
    sg_batch *b;
    sg_err err;
    uint8_t *copy;

    (void)state;
    assert_int_equal(sg_batch_enc_new(&e, "r1"), 0);
    for (uint32_t i = 1; i <= SG_BATCH_MAX_CHANGES; i++) {
        c.seq = i;
        assert_int_equal(sg_batch_enc_add(e, &c), 0);
    }
    before = sg_batch_enc_size(e);
    c.seq++;
    assert_int_equal(sg_batch_enc_add(e, &c), SG_ETOOBIG);
    assert_int_equal(sg_batch_enc_size(e), before);
    assert_int_equal(sg_batch_enc_count(e), SG_BATCH_MAX_CHANGES);
    assert_int_equal(sg_batch_enc_finish(e, &out, &len), 0);
    b = decode_expect(out, len, NULL, 0, &err, &copy);
    assert_int_equal(b->nchanges, SG_BATCH_MAX_CHANGES);
    assert_int_equal(b->changes[SG_BATCH_MAX_CHANGES - 1].seq, SG_BATCH_MAX_CHANGES);
    sg_batch_free(b);
    test_free(copy);
    sg_batch_enc_free(e);
}

static void test_encoder_byte_limit(void **state)
{
    char *big = test_malloc(SG_BATCH_MAX_STR);
    sg_col col[] = {{S("note"), {SG_VAL_STR, 0, big, SG_BATCH_MAX_STR}}};
    sg_change c = {0, 0, S("issue_updates"), S("01HZX3M2D5F8G1J4K7N0P3Q6R9"), SG_OP_INSERT, col, 1};
    sg_batch_enc *e;
    const void *out;
    size_t len, before;
    sg_batch *b;
    sg_err err;
    uint8_t *copy;
    int rc;

    (void)state;
    memset(big, 'n', SG_BATCH_MAX_STR);
    assert_int_equal(sg_batch_enc_new(&e, "r1"), 0);
    do {
        c.seq++;
        before = sg_batch_enc_size(e);
        rc = sg_batch_enc_add(e, &c);
    } while (rc == 0);
    assert_int_equal(rc, SG_ETOOBIG);
    assert_int_equal(sg_batch_enc_size(e), before);
    assert_true(before <= SG_BATCH_MAX_BYTES);
    assert_true(before + SG_BATCH_MAX_STR > SG_BATCH_MAX_BYTES);
    assert_int_equal(sg_batch_enc_count(e), c.seq - 1);
    assert_int_equal(sg_batch_enc_finish(e, &out, &len), 0);
    b = decode_expect(out, len, NULL, 0, &err, &copy);
    assert_int_equal(b->nchanges, c.seq - 1);
    sg_batch_free(b);
    test_free(copy);
    /* One byte less than the batch is refused by the size check. */
    refuse(out, len,
           &(sg_batch_limits){len - 1, SG_BATCH_MAX_CHANGES, SG_BATCH_MAX_COLS, SG_BATCH_MAX_STR,
                              SG_BATCH_MAX_NAME},
           SG_ETOOBIG, NULL);
    sg_batch_enc_free(e);
    test_free(big);
}

/* ---- sg_mp_check on its own ---- */

static const sg_mp_limits open_limits = {SG_MP_DEPTH_MAX, UINT32_MAX, UINT32_MAX};

/* Checks hex h with lim: expects rc want and, on success, *out_used == used. */
static void mp_expect(const char *h, const sg_mp_limits *lim, int want, size_t used)
{
    size_t len, got = 12345;
    uint8_t *b = hex(h, &len);
    sg_err err;
    int rc;

    sg_err_clear(&err);
    rc = sg_mp_check(&got, b, len, lim, &err);
    if (rc != want)
        fail_msg("%s: got %d (%s), want %d; %s", h, rc, sg_strerror_name(rc), want, err.msg);
    if (rc == 0)
        assert_int_equal(got, used);
    else
        assert_int_equal(got, 12345);
    test_free(b);
}

static void test_mpcheck_sizes(void **state)
{
    /* Every header form, each followed by one byte that is not part of the value; then the same
     * bytes cut one short must be truncated. */
    static const struct {
        const char *h;
        size_t used;
    } v[] = {
        {"00", 1},
        {"7f", 1},
        {"e0", 1},
        {"ff", 1},
        {"c0", 1},
        {"c2", 1},
        {"c3", 1},
        {"cc 01", 2},
        {"cd 00 01", 3},
        {"ce 00 00 00 01", 5},
        {"cf 00 00 00 00 00 00 00 01", 9},
        {"d0 ff", 2},
        {"d1 ff ff", 3},
        {"d2 ff ff ff ff", 5},
        {"d3 ff ff ff ff ff ff ff ff", 9},
        {"ca 3f 80 00 00", 5},
        {"cb 3f f0 00 00 00 00 00 00", 9},
        {"d4 01 aa", 3},
        {"d5 01 aa aa", 4},
        {"d6 01 aa aa aa aa", 6},
        {"d7 01 aa aa aa aa aa aa aa aa", 10},
        {"d8 01 aa aa aa aa aa aa aa aa aa aa aa aa aa aa aa aa", 18},
        {"c4 01 aa", 3},
        {"c5 00 01 aa", 4},
        {"c6 00 00 00 01 aa", 6},
        {"c7 01 05 aa", 4},
        {"c8 00 01 05 aa", 5},
        {"c9 00 00 00 01 05 aa", 7},
        {"a0", 1},
        {"a1 61", 2},
        {"bf 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61 61 "
         "61 61 61",
         32},
        {"d9 01 61", 3},
        {"da 00 01 61", 4},
        {"db 00 00 00 01 61", 6},
        {"90", 1},
        {"92 c0 c0", 3},
        {"dc 00 01 c0", 4},
        {"dd 00 00 00 01 c0", 6},
        {"80", 1},
        {"81 c0 c0", 3},
        {"de 00 01 c0 c0", 5},
        {"df 00 00 00 01 c0 c0", 7},
        {"92 91 90 82 a1 61 c0 a1 62 91 c0", 11},
    };
    char buf[200];

    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        snprintf(buf, sizeof(buf), "%s c0", v[i].h);
        mp_expect(buf, &open_limits, 0, v[i].used);
        mp_expect(v[i].h, &open_limits, 0, v[i].used);
        /* cut one byte short */
        snprintf(buf, sizeof(buf), "%.*s", (int)(strlen(v[i].h) - 2), v[i].h);
        mp_expect(buf, &open_limits, SG_ETRUNC, 0);
    }
    mp_expect("", &open_limits, SG_ETRUNC, 0);
    mp_expect("c1", &open_limits, SG_EFORMAT, 0);
    mp_expect("92 c0 c1", &open_limits, SG_EFORMAT, 0);
}

static void test_mpcheck_every_type_byte(void **state)
{
    uint8_t b[64];
    size_t used;
    sg_err err;

    (void)state;
    /* Whatever the first byte, with enough zero bytes after it the value is complete (zero
     * lengths, zero counts, or positive fixints), except the one reserved byte. */
    for (unsigned t = 0; t < 256; t++) {
        int rc;
        memset(b, 0, sizeof(b));
        b[0] = (uint8_t)t;
        used = 0;
        rc = sg_mp_check(&used, b, sizeof(b), &open_limits, &err);
        if (t == 0xc1) {
            assert_int_equal(rc, SG_EFORMAT);
            continue;
        }
        if (rc != 0)
            fail_msg("type byte 0x%02x: %s", t, err.msg);
        assert_true(used >= 1 && used <= 32);
    }
}

static void test_mpcheck_limits(void **state)
{
    sg_mp_limits lim = {2, 3, 2};
    sg_err err;
    size_t used;
    uint8_t nest[SG_MP_DEPTH_MAX + 2];

    (void)state;
    mp_expect("a3 61 62 63", &lim, 0, 4);
    mp_expect("a4 61 62 63 64", &lim, SG_ETOOBIG, 0);
    mp_expect("c4 04 61 62 63 64", &lim, SG_ETOOBIG, 0);
    mp_expect("c7 04 01 61 62 63 64", &lim, SG_ETOOBIG, 0);
    mp_expect("92 c0 c0", &lim, 0, 3);
    mp_expect("93 c0 c0 c0", &lim, SG_ETOOBIG, 0);
    mp_expect("82 c0 c0 c0 c0", &lim, 0, 5);
    mp_expect("83 c0 c0 c0 c0 c0 c0", &lim, SG_ETOOBIG, 0);
    mp_expect("91 91 c0", &lim, 0, 3);
    mp_expect("91 91 91 c0", &lim, SG_EDEPTH, 0);
    mp_expect("91 90", &lim, 0, 2);
    mp_expect("91 91 90", &lim, SG_EDEPTH, 0); /* empty containers count too */
    mp_expect("91 c0", &(sg_mp_limits){1, 3, 2}, 0, 2);
    mp_expect("91 90", &(sg_mp_limits){1, 3, 2}, SG_EDEPTH, 0);
    mp_expect("c0", &(sg_mp_limits){0, 0, 0}, 0, 1);
    mp_expect("a0", &(sg_mp_limits){0, 0, 0}, 0, 1);
    mp_expect("90", &(sg_mp_limits){0, 0, 0}, SG_EDEPTH, 0);

    /* The limit is checked before truncation: a 4 GiB claim is too big, not merely short. */
    sg_err_clear(&err);
    assert_int_equal(sg_mp_check(&used, "\xdb\xff\xff\xff\xff", 5, &lim, &err), SG_ETOOBIG);
    assert_string_equal(err.msg, "at byte 0: str of 4294967295 bytes exceeds the limit of 3");
    assert_int_equal(sg_mp_check(&used, "\x91\xdf\xff\xff\xff\xff", 6, &lim, &err), SG_ETOOBIG);
    assert_string_equal(err.msg, "at byte 1: map of 4294967295 pairs exceeds the limit of 2");
    assert_int_equal(sg_mp_check(&used, "\x91\x91\x91", 3, &lim, &err), SG_EDEPTH);
    assert_string_equal(err.msg, "at byte 2: nesting deeper than 2");

    /* Depth limits above SG_MP_DEPTH_MAX are clamped to it. */
    memset(nest, 0x91, sizeof(nest));
    nest[SG_MP_DEPTH_MAX] = 0xc0;
    assert_int_equal(
        sg_mp_check(&used, nest, SG_MP_DEPTH_MAX + 1, &(sg_mp_limits){1000, 10, 10}, &err), 0);
    assert_int_equal(used, SG_MP_DEPTH_MAX + 1);
    nest[SG_MP_DEPTH_MAX] = 0x91;
    nest[SG_MP_DEPTH_MAX + 1] = 0xc0;
    assert_int_equal(sg_mp_check(&used, nest, sizeof(nest), &(sg_mp_limits){1000, 10, 10}, &err),
                     SG_EDEPTH);
}

static void test_mpcheck_counts_need_bytes(void **state)
{
    sg_err err;
    size_t used;

    (void)state;
    /* Each element needs a byte: counts are checked against what remains, across levels. */
    mp_expect("93 c0 c0", &open_limits, SG_ETRUNC, 0);
    mp_expect("92 92 c0 c0", &open_limits, SG_ETRUNC, 0);
    mp_expect("92 a2 61 c0", &open_limits, SG_ETRUNC, 0);
    mp_expect("92 c4 01 c0", &open_limits, SG_ETRUNC, 0);
    mp_expect("81 c0", &open_limits, SG_ETRUNC, 0);
    assert_int_equal(
        sg_mp_check(&used, "\xdf\xff\xff\xff\xff\xc0\xc0\xc0\xc0\xc0", 10, &open_limits, &err),
        SG_ETRUNC);
    assert_string_equal(err.msg, "at byte 0: map of 4294967295 pairs, but only 5 bytes remain");
    assert_int_equal(sg_mp_check(&used, "\x92\xc0\xdb\xff\xff\xff\xff", 7, &open_limits, &err),
                     SG_ETRUNC);
    assert_string_equal(err.msg, "at byte 2: str of 4294967295 bytes, but only 0 bytes remain");
}

/* ---- hostile inputs to the decoder ---- */

/* Decodes h (hex) with lim and expects want and message msg, asserting that nothing at all was
 * allocated when alloc_free is set (the refusal came from the allocation-free check). */
static void hostile(const char *h, const sg_batch_limits *lim, int want, const char *msg,
                    int alloc_free)
{
    size_t len;
    uint8_t *b = hex(h, &len);
    sg_batch *out = (sg_batch *)1;
    sg_err err;
    int rc;

    sg_err_clear(&err);
    track_reset();
    rc = sg_batch_decode(&out, b, len, lim, &err);
    if (alloc_free && TB_TRACKING && track_calls() != 0)
        fail_msg("%s: %zu allocation(s), largest %zu bytes", h, track_calls(), track_peak());
    if (rc != want)
        fail_msg("%s: got %d (%s), want %s; %s", h, rc, sg_strerror_name(rc),
                 sg_strerror_name(want), err.msg);
    assert_null(out);
    if (msg != NULL && strcmp(err.msg, msg) != 0)
        fail_msg("message\n  got:  %s\n  want: %s", err.msg, msg);
    test_free(b);
}

static void test_hostile_headers(void **state)
{
    sg_batch_limits huge = {SIZE_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX};

    (void)state;
    /* 10-byte inputs whose first header claims 4 GiB. */
    hostile("df ff ff ff ff c0 c0 c0 c0 c0", NULL, SG_ETRUNC,
            "at byte 0: map of 4294967295 pairs, but only 5 bytes remain", 1);
    hostile("dd ff ff ff ff c0 c0 c0 c0 c0", NULL, SG_ETRUNC,
            "at byte 0: array of 4294967295 elements, but only 5 bytes remain", 1);
    hostile("db ff ff ff ff 61 61 61 61 61", NULL, SG_ETRUNC,
            "at byte 0: str of 4294967295 bytes, but only 5 bytes remain", 1);
    hostile("c6 ff ff ff ff 61 61 61 61 61", NULL, SG_ETRUNC, NULL, 1);
    hostile("c9 ff ff ff ff 01 61 61 61 61", NULL, SG_ETRUNC, NULL, 1);
    /* The same claims inside an otherwise plausible batch. */
    hostile("92 a1 61 dd ff ff ff ff c0 c0", NULL, SG_ETRUNC,
            "at byte 3: array of 4294967295 elements, but only 2 bytes remain", 1);
    hostile("92 a1 61 91 96 01 00 db ff ff ff ff", NULL, SG_ETRUNC, NULL, 1);
    hostile("92 a1 61 91 96 01 00 a1 74 a1 70 01 df ff ff ff ff", NULL, SG_ETRUNC, NULL, 1);
    hostile("92 db ff ff ff ff", NULL, SG_ETRUNC, NULL, 1);
    /* Even with limits that allow everything. */
    hostile("df ff ff ff ff c0 c0 c0 c0 c0", &huge, SG_ETRUNC, NULL, 1);
    hostile("92 a1 61 dd ff ff ff ff c0 c0", &huge, SG_ETRUNC, NULL, 1);
    /* Within every limit but not within the input. */
    hostile("92 a1 61 dd 00 00 4e 20 c0 c0", NULL, SG_ETRUNC, NULL, 1);
    /* The reserved byte, anywhere. */
    hostile("c1", NULL, SG_EFORMAT, "at byte 0: reserved type byte 0xc1", 1);
    hostile("92 a1 61 91 c1", NULL, SG_EFORMAT, "at byte 4: reserved type byte 0xc1", 1);
    /* Nothing at all. */
    hostile("", NULL, SG_ETRUNC, "at byte 0: input is empty", 1);
}

static void test_depth_bombs(void **state)
{
    enum { DEEP = 10000 };
    uint8_t *b = test_malloc(2 * DEEP + 64);
    sg_batch *out;
    sg_err err;
    size_t n;
    tb_buf t;

    (void)state;
    /* 10,000 nested arrays, then a nil. */
    memset(b, 0x91, DEEP);
    b[DEEP] = 0xc0;
    track_reset();
    assert_int_equal(sg_batch_decode(&out, b, DEEP + 1, NULL, &err), SG_EDEPTH);
    assert_string_equal(err.msg, "at byte 8: nesting deeper than 8");
    assert_null(out);
    /* The same without the nil: still refused for depth, before the end is noticed. */
    assert_int_equal(sg_batch_decode(&out, b, DEEP, NULL, &err), SG_EDEPTH);
    /* 10,000 nested maps {nil: {nil: ...}}. */
    for (n = 0; n < DEEP; n++) {
        b[2 * n] = 0x81;
        b[2 * n + 1] = 0xc0;
    }
    b[2 * DEEP] = 0xc0;
    assert_int_equal(sg_batch_decode(&out, b, 2 * DEEP + 1, NULL, &err), SG_EDEPTH);
    if (TB_TRACKING)
        assert_int_equal(track_calls(), 0);

    /* A bomb in a column value of a valid batch. */
    build_one(&t, AT_VALUE, "91 91 91 91 91 91 91 91 91 91 91 91 c0");
    refuse(t.sb.data, t.sb.size, NULL, SG_EDEPTH, "at byte 84: nesting deeper than 8");
    tb_destroy(&t);
    /* One level of container in a value is a type error, not a depth error. */
    build_one(&t, AT_VALUE, "91 91 91 91 c0");
    refuse(t.sb.data, t.sb.size, NULL, SG_ETYPE,
           "change 0: cols[1] (birth_year): expected int, str or nil, got array");
    tb_destroy(&t);
    test_free(b);
}

/* Every proper prefix of a valid batch fails cleanly as truncated. */
static void assert_prefixes_truncated(const uint8_t *buf, size_t len)
{
    for (size_t k = 0; k < len; k++) {
        uint8_t *p = dup_exact(buf, k);
        sg_batch *out = (sg_batch *)1;
        sg_err err;
        int rc;

        sg_err_clear(&err);
        track_reset();
        rc = sg_batch_decode(&out, p, k, NULL, &err);
        if (rc != SG_ETRUNC)
            fail_msg("prefix of %zu/%zu bytes: got %d (%s): %s", k, len, rc, sg_strerror_name(rc),
                     err.msg);
        assert_null(out);
        if (TB_TRACKING)
            assert_int_equal(track_calls(), 0);
        test_free(p);
    }
}

static void test_truncated_everywhere(void **state)
{
    size_t len, len2;
    uint8_t *ex = hex(example_hex, &len);
    sg_col cols[] = {{S("big"), {SG_VAL_STR, 0, NULL, 300}},
                     {S("i"), {SG_VAL_INT, -(1ll << 40), NULL, 0}}};
    sg_change c = {1, UINT64_MAX, S("members"), S("m1"), SG_OP_INSERT, cols, 2};
    char big[300];
    sg_batch_enc *e;
    const void *out;

    (void)state;
    assert_prefixes_truncated(ex, len);
    memset(big, 'q', sizeof(big));
    cols[0].v.s = big;
    assert_int_equal(sg_batch_enc_new(&e, "r1"), 0);
    assert_int_equal(sg_batch_enc_add(e, &c), 0);
    assert_int_equal(sg_batch_enc_finish(e, &out, &len2), 0);
    assert_prefixes_truncated(out, len2);
    sg_batch_enc_free(e);
    test_free(ex);
}

static void test_trailing_bytes(void **state)
{
    size_t len;
    uint8_t *ex = hex(example_hex, &len);
    uint8_t *two = test_malloc(2 * len);

    (void)state;
    memcpy(two, ex, len);
    two[len] = 0xc0;
    refuse(two, len + 1, NULL, SG_ETRAILING, "batch: 1 trailing byte(s) after the 213-byte batch");
    two[len] = 0xc1;
    refuse(two, len + 1, NULL, SG_ETRAILING, NULL);
    memcpy(two + len, ex, len);
    refuse(two, 2 * len, NULL, SG_ETRAILING,
           "batch: 213 trailing byte(s) after the 213-byte batch");
    test_free(two);
    test_free(ex);
}

/* ---- types and rules at each position ---- */

typedef struct pos_case {
    at pos;
    const char *hex; /* msgpack put at pos */
    int code;        /* 0: must decode */
    const char *msg; /* exact message, or NULL */
} pos_case;

static const pos_case pos_cases[] = {
    {AT_NONE, "", 0, NULL},
    {AT_BATCH, "a3 61 62 63", SG_ETYPE, "batch: expected array [origin, changes], got str"},
    {AT_BATCH, "c0", SG_ETYPE, "batch: expected array [origin, changes], got nil"},
    {AT_BATCH, "81 a1 61 90", SG_ETYPE, "batch: expected array [origin, changes], got map"},
    {AT_BATCH, "93 a1 61 90 c0", SG_EFORMAT, "batch: expected 2 elements [origin, changes], got 3"},
    {AT_BATCH, "91 a1 61", SG_EFORMAT, "batch: expected 2 elements [origin, changes], got 1"},
    {AT_ORIGIN, "2a", SG_ETYPE, "origin: expected str, got int"},
    {AT_ORIGIN, "c4 01 61", SG_ETYPE, "origin: expected str, got bin"},
    {AT_ORIGIN, "a8 4d 69 72 7a 61 70 75 72", SG_EFORMAT,
     "origin: not a region id (1..63 of [a-z0-9-], not starting with '-')"},
    {AT_ORIGIN, "a0", SG_EFORMAT, NULL},
    {AT_ORIGIN, "a2 2d 61", SG_EFORMAT, NULL},
    {AT_ORIGIN, "a3 61 00 62", SG_EFORMAT, NULL},
    {AT_ORIGIN, "a3 61 5f 62", SG_EFORMAT, NULL},
    {AT_CHANGES, "80", SG_ETYPE, "changes: expected array, got map"},
    {AT_CHANGES, "c0", SG_ETYPE, "changes: expected array, got nil"},
    {AT_CHANGES, "90", SG_EFORMAT, "changes: a batch holds at least one change"},
    {AT_CHANGE, "a3 61 62 63", SG_ETYPE, "change 0: expected array, got str"},
    {AT_CHANGE, "97 07 00 a1 74 a1 70 01 81 a1 61 c0 c0", SG_EFORMAT,
     "change 0: expected 6 elements [seq, hlc, table, pk, op, cols], got 7"},
    {AT_CHANGE, "95 07 00 a1 74 a1 70 03", SG_EFORMAT,
     "change 0: expected 6 elements [seq, hlc, table, pk, op, cols], got 5"},
    {AT_CHANGE, "96 07 00 a1 74 a1 70 03 c0", 0, NULL},
    {AT_SEQ, "cb 3f f0 00 00 00 00 00 00", SG_ETYPE, "change 0: seq: expected uint, got float"},
    {AT_SEQ, "a1 31", SG_ETYPE, "change 0: seq: expected uint, got str"},
    {AT_SEQ, "c3", SG_ETYPE, "change 0: seq: expected uint, got bool"},
    {AT_SEQ, "ff", SG_EFORMAT, "change 0: seq: must not be negative, got -1"},
    {AT_SEQ, "d3 80 00 00 00 00 00 00 00", SG_EFORMAT,
     "change 0: seq: must not be negative, got -9223372036854775808"},
    {AT_SEQ, "00", SG_EFORMAT, "change 0: seq: must be positive, got 0"},
    {AT_SEQ, "cf ff ff ff ff ff ff ff ff", 0, NULL},
    {AT_SEQ, "d0 07", 0, NULL},
    {AT_HLC, "c3", SG_ETYPE, "change 0: hlc: expected uint, got bool"},
    {AT_HLC, "d0 ff", SG_EFORMAT, "change 0: hlc: must not be negative, got -1"},
    {AT_HLC, "00", 0, NULL},
    {AT_HLC, "cf ff ff ff ff ff ff ff ff", 0, NULL},
    {AT_TABLE, "c4 03 61 62 63", SG_ETYPE, "change 0: table: expected str, got bin"},
    {AT_TABLE, "c0", SG_ETYPE, "change 0: table: expected str, got nil"},
    {AT_TABLE, "a0", SG_EFORMAT, "change 0: table: empty name"},
    {AT_PK, "d4 01 00", SG_ETYPE, "change 0: pk: expected str, got ext"},
    {AT_PK, "a3 61 20 62", SG_EFORMAT, "change 0: pk: not a record id (1..64 of [0-9A-Za-z_-])"},
    {AT_PK, "a0", SG_EFORMAT, NULL},
    {AT_OP, "04", SG_EFORMAT, "change 0: op: 4 is not 1 (insert), 2 (update) or 3 (delete)"},
    {AT_OP, "00", SG_EFORMAT, "change 0: op: 0 is not 1 (insert), 2 (update) or 3 (delete)"},
    {AT_OP, "ff", SG_EFORMAT, "change 0: op: -1 is not 1 (insert), 2 (update) or 3 (delete)"},
    {AT_OP, "ca 3f 80 00 00", SG_ETYPE, "change 0: op: expected int 1..3, got float"},
    {AT_OP, "a1 31", SG_ETYPE, "change 0: op: expected int 1..3, got str"},
    {AT_OP, "cc 01", 0, NULL},
    {AT_OP, "d0 02", 0, NULL},
    {AT_OP, "03", SG_ETYPE, "change 0: cols: expected nil for a delete, got map"},
    {AT_COLS, "c0", SG_ETYPE, "change 0: cols: expected map for an insert, got nil"},
    {AT_COLS, "80", SG_EFORMAT, "change 0: cols: an insert must set at least one column"},
    {AT_COLS, "91 c0", SG_ETYPE, "change 0: cols: expected map for an insert, got array"},
    {AT_KEY, "01", SG_ETYPE, "change 0: cols[1]: expected str key, got int"},
    {AT_KEY, "c0", SG_ETYPE, "change 0: cols[1]: expected str key, got nil"},
    {AT_KEY, "a0", SG_EFORMAT, "change 0: cols[1]: empty column name"},
    {AT_KEY, "a4 4e 41 4d 45", SG_EFORMAT, "change 0: cols[1]: name is not made of [a-z0-9_]"},
    {AT_KEY, "a2 61 2d", SG_EFORMAT, NULL},
    {AT_KEY, "a4 6e 61 6d 65", SG_EFORMAT,
     "change 0: cols[1] (name): duplicate column (also cols[0])"},
    {AT_KEY, "a3 61 5f 39", 0, NULL},
    {AT_VALUE, "cb 3f f0 00 00 00 00 00 00", SG_ETYPE,
     "change 0: cols[1] (birth_year): expected int, str or nil, got float"},
    {AT_VALUE, "ca 3f 80 00 00", SG_ETYPE, NULL},
    {AT_VALUE, "c2", SG_ETYPE,
     "change 0: cols[1] (birth_year): expected int, str or nil, got bool"},
    {AT_VALUE, "c4 01 01", SG_ETYPE,
     "change 0: cols[1] (birth_year): expected int, str or nil, got bin"},
    {AT_VALUE, "d4 01 00", SG_ETYPE,
     "change 0: cols[1] (birth_year): expected int, str or nil, got ext"},
    {AT_VALUE, "c7 01 05 00", SG_ETYPE, NULL},
    {AT_VALUE, "91 01", SG_ETYPE,
     "change 0: cols[1] (birth_year): expected int, str or nil, got array"},
    {AT_VALUE, "80", SG_ETYPE, "change 0: cols[1] (birth_year): expected int, str or nil, got map"},
    {AT_VALUE, "cf ff ff ff ff ff ff ff ff", SG_ETYPE,
     "change 0: cols[1] (birth_year): integer 18446744073709551615 does not fit in int64"},
    {AT_VALUE, "cf 80 00 00 00 00 00 00 00", SG_ETYPE, NULL},
    {AT_VALUE, "cf 7f ff ff ff ff ff ff ff", 0, NULL},
    {AT_VALUE, "d3 80 00 00 00 00 00 00 00", 0, NULL},
    {AT_VALUE, "c0", 0, NULL},
    {AT_VALUE, "a0", 0, NULL},
};

static void test_positions(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(pos_cases) / sizeof(pos_cases[0]); i++) {
        const pos_case *pc = &pos_cases[i];
        tb_buf t;
        sg_batch *b;
        sg_err err;
        uint8_t *copy;

        build_one(&t, pc->pos, pc->hex);
        track_reset();
        b = decode_expect(t.sb.data, t.sb.size, NULL, pc->code, &err, &copy);
        /* Past the allocation-free check, allocation stays small: msgpack-c's zone chunk and the
         * batch block. */
        if (TB_TRACKING && track_peak() > 64 * 1024)
            fail_msg("case %zu: an allocation of %zu bytes", i, track_peak());
        if (pc->msg != NULL && strcmp(err.msg, pc->msg) != 0)
            fail_msg("case %zu (%s)\n  got:  %s\n  want: %s", i, pc->hex, err.msg, pc->msg);
        sg_batch_free(b);
        test_free(copy);
        tb_destroy(&t);
    }
}

static void test_int_encodings(void **state)
{
    static const struct {
        const char *hex;
        int64_t want;
    } v[] = {
        {"00", 0},
        {"7f", 127},
        {"e0", -32},
        {"ff", -1},
        {"cc ff", 255},
        {"cd 07 c7", 1991},
        {"ce 00 00 07 c7", 1991},
        {"cf 00 00 00 00 00 00 07 c7", 1991},
        {"d0 05", 5},
        {"d0 80", -128},
        {"d1 07 c7", 1991},
        {"d2 ff ff ff fe", -2},
        {"d3 00 00 00 00 00 00 07 c7", 1991},
        {"d3 80 00 00 00 00 00 00 00", INT64_MIN},
        {"cf 7f ff ff ff ff ff ff ff", INT64_MAX},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        tb_buf t;
        sg_batch *b;
        sg_err err;
        uint8_t *copy;

        build_one(&t, AT_VALUE, v[i].hex);
        b = decode_expect(t.sb.data, t.sb.size, NULL, 0, &err, &copy);
        assert_int_equal(b->changes[0].cols[1].v.type, SG_VAL_INT);
        if (b->changes[0].cols[1].v.i != v[i].want)
            fail_msg("%s decoded as %lld", v[i].hex, (long long)b->changes[0].cols[1].v.i);
        sg_batch_free(b);
        test_free(copy);
        tb_destroy(&t);
    }
}

static void test_seq_order(void **state)
{
    tcol c[] = {{"a", SG_VAL_INT, 1, NULL}};
    tb_buf t;

    (void)state;
    tb_init(&t);
    msgpack_pack_array(&t.pk, 2);
    put_str(&t, "mirzapur");
    msgpack_pack_array(&t.pk, 3);
    put_change(&t, 5, "members", "m1", 1, c, 1);
    put_change(&t, 6, "members", "m1", 2, c, 1);
    put_change(&t, 6, "members", "m1", 3, NULL, 0);
    refuse(t.sb.data, t.sb.size, NULL, SG_EFORMAT,
           "change 2: seq: 6 does not follow 6 (seqs must increase)");
    tb_destroy(&t);

    tb_init(&t);
    msgpack_pack_array(&t.pk, 2);
    put_str(&t, "mirzapur");
    msgpack_pack_array(&t.pk, 2);
    put_change(&t, 5, "members", "m1", 1, c, 1);
    put_change(&t, 4, "members", "m1", 3, NULL, 0);
    refuse(t.sb.data, t.sb.size, NULL, SG_EFORMAT,
           "change 1: seq: 4 does not follow 5 (seqs must increase)");
    tb_destroy(&t);
}

static void test_duplicate_columns(void **state)
{
    tcol few[] = {
        {"a", SG_VAL_INT, 1, NULL}, {"b", SG_VAL_NIL, 0, NULL}, {"a", SG_VAL_STR, 0, "x"}};
    tcol many[SG_BATCH_MAX_COLS];
    char names[SG_BATCH_MAX_COLS][8];
    tb_buf t;

    (void)state;
    tb_init(&t);
    msgpack_pack_array(&t.pk, 2);
    put_str(&t, "mirzapur");
    msgpack_pack_array(&t.pk, 1);
    put_change(&t, 5, "members", "m1", 2, few, 3);
    refuse(t.sb.data, t.sb.size, NULL, SG_EFORMAT,
           "change 0: cols[2] (a): duplicate column (also cols[0])");
    tb_destroy(&t);

    /* 64 columns, all distinct: accepted; then the last renamed to the 40th: refused. */
    for (unsigned j = 0; j < SG_BATCH_MAX_COLS; j++) {
        snprintf(names[j], sizeof(names[j]), "col_%u", j);
        many[j] = (tcol){names[j], SG_VAL_INT, j, NULL};
    }
    for (int dupe = 0; dupe < 2; dupe++) {
        tb_init(&t);
        msgpack_pack_array(&t.pk, 2);
        put_str(&t, "mirzapur");
        msgpack_pack_array(&t.pk, 2);
        put_change(&t, 5, "members", "m1", 1, few, 2);
        many[SG_BATCH_MAX_COLS - 1].name = dupe ? names[39] : names[SG_BATCH_MAX_COLS - 1];
        put_change(&t, 6, "members", "m1", 1, many, SG_BATCH_MAX_COLS);
        if (dupe)
            refuse(t.sb.data, t.sb.size, NULL, SG_EFORMAT,
                   "change 1: cols[63] (col_39): duplicate column (also cols[39])");
        else
            refuse(t.sb.data, t.sb.size, NULL, 0, NULL);
        tb_destroy(&t);
    }
}

static void test_origin_lengths(void **state)
{
    char o[66];
    tb_buf t;

    (void)state;
    memset(o, 'r', sizeof(o));
    for (size_t n = 63; n <= 65; n++) {
        o[n] = '\0';
        tb_init(&t);
        msgpack_pack_array(&t.pk, 2);
        put_str(&t, o);
        msgpack_pack_array(&t.pk, 1);
        put_change(&t, 1, "members", "m1", 3, NULL, 0);
        if (n == 63)
            refuse(t.sb.data, t.sb.size, NULL, 0, NULL);
        else if (n == 64)
            refuse(t.sb.data, t.sb.size, NULL, SG_EFORMAT, NULL);
        else
            refuse(t.sb.data, t.sb.size, NULL, SG_ETOOBIG,
                   "origin: 65 bytes exceeds the limit of 64");
        tb_destroy(&t);
        o[n] = 'r';
    }
}

static void test_custom_limits(void **state)
{
    sg_batch_limits lim;
    static const tcol two[] = {{"note", SG_VAL_STR, 0, "hello"}, {"n", SG_VAL_INT, 7, NULL}};
    static const tcol six[] = {{"note", SG_VAL_STR, 0, "hello!"}};
    static const tcol longname[] = {{"abcdefg", SG_VAL_NIL, 0, NULL}};
    tb_buf t;

    (void)state;
    /* max_changes */
    sg_batch_limits_default(&lim);
    lim.max_changes = 2;
    for (uint32_t n = 2; n <= 3; n++) {
        tb_init(&t);
        msgpack_pack_array(&t.pk, 2);
        put_str(&t, "mirzapur");
        msgpack_pack_array(&t.pk, n);
        for (uint32_t i = 1; i <= n; i++)
            put_change(&t, i, "members", "m1", 3, NULL, 0);
        refuse(t.sb.data, t.sb.size, &lim, n == 2 ? 0 : SG_ETOOBIG,
               n == 2 ? NULL : "changes: 3 changes exceeds the limit of 2");
        tb_destroy(&t);
    }

    /* max_str, max_cols, max_name: one change each */
    {
        static const struct {
            uint32_t max_str, max_cols, max_name;
            const char *table;
            const char *pk;
            const tcol *cols;
            uint32_t ncols;
            int code;
            const char *msg;
        } v[] = {
            {5, 64, 64, "members", "m1", two, 2, 0, NULL},
            {5, 64, 64, "members", "m1", six, 1, SG_ETOOBIG,
             "change 0: cols[0] (note): string of 6 bytes exceeds the limit of 5"},
            {6, 64, 64, "members", "m1", six, 1, 0, NULL},
            {64, 1, 64, "members", "m1", two, 2, SG_ETOOBIG,
             "change 0: cols: 2 columns exceeds the limit of 1"},
            {64, 2, 64, "members", "m1", two, 2, 0, NULL},
            {64, 64, 6, "members", "m1", two, 2, SG_ETOOBIG,
             "change 0: table: name of 7 bytes exceeds the limit of 6"},
            {64, 64, 7, "members", "abcdefgh", two, 2, SG_ETOOBIG,
             "change 0: pk: 8 bytes exceeds the limit of 7"},
            {64, 64, 7, "members", "m1", longname, 1, 0, NULL},
            {64, 64, 8, "members", "mirzapur", longname, 1, 0, NULL},
        };
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
            sg_batch_limits_default(&lim);
            lim.max_str = v[i].max_str;
            lim.max_cols = v[i].max_cols;
            lim.max_name = v[i].max_name;
            tb_init(&t);
            msgpack_pack_array(&t.pk, 2);
            put_str(&t, "r1");
            msgpack_pack_array(&t.pk, 1);
            put_change(&t, 1, v[i].table, v[i].pk, 1, v[i].cols, v[i].ncols);
            refuse(t.sb.data, t.sb.size, &lim, v[i].code, v[i].msg);
            tb_destroy(&t);
        }
    }
    /* max_name applies to column names and to the origin. */
    sg_batch_limits_default(&lim);
    lim.max_name = 7;
    tb_init(&t);
    msgpack_pack_array(&t.pk, 2);
    put_str(&t, "mirzapur");
    msgpack_pack_array(&t.pk, 1);
    put_change(&t, 1, "members", "m1", 1, longname, 1);
    refuse(t.sb.data, t.sb.size, &lim, SG_ETOOBIG, "origin: 8 bytes exceeds the limit of 7");
    tb_destroy(&t);
    lim.max_name = 6;
    tb_init(&t);
    msgpack_pack_array(&t.pk, 2);
    put_str(&t, "r1");
    msgpack_pack_array(&t.pk, 1);
    put_change(&t, 1, "t", "m1", 1, longname, 1);
    refuse(t.sb.data, t.sb.size, &lim, SG_ETOOBIG,
           "change 0: cols[0]: name of 7 bytes exceeds the limit of 6");
    tb_destroy(&t);

    /* max_bytes */
    {
        size_t len;
        uint8_t *ex = hex(example_hex, &len);
        sg_batch_limits_default(&lim);
        lim.max_bytes = len - 1;
        refuse(ex, len, &lim, SG_ETOOBIG, "batch: 213 bytes exceeds the limit of 212");
        lim.max_bytes = len;
        refuse(ex, len, &lim, 0, NULL);
        test_free(ex);
    }
    /* the default string limit, with its column named */
    {
        char *s = test_malloc(SG_BATCH_MAX_STR + 2);
        tcol c[] = {{"note", SG_VAL_STR, 0, s}};
        memset(s, 'x', SG_BATCH_MAX_STR + 1);
        s[SG_BATCH_MAX_STR + 1] = '\0';
        tb_init(&t);
        msgpack_pack_array(&t.pk, 2);
        put_str(&t, "mirzapur");
        msgpack_pack_array(&t.pk, 1);
        put_change(&t, 1, "issue_updates", "m1", 1, c, 1);
        refuse(t.sb.data, t.sb.size, NULL, SG_ETOOBIG,
               "change 0: cols[0] (note): string of 65537 bytes exceeds the limit of 65536");
        tb_destroy(&t);
        test_free(s);
    }
}

/* Every single-byte corruption of a valid batch either decodes or fails with a known code; under
 * the sanitizers this also proves no read strays out of the input. */
static void test_single_byte_corruptions(void **state)
{
    static const int known[] = {0,          SG_ETRUNC,    SG_ETOOBIG, SG_ETYPE,
                                SG_EFORMAT, SG_ETRAILING, SG_EDEPTH};
    static const uint8_t subst[] = {0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
                                    0xc0, 0xc1, 0xc2, 0xc4, 0xca, 0xcb, 0xcf, 0xd3, 0xd4,
                                    0xd8, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff};
    size_t len;
    uint8_t *ex = hex(example_hex, &len);
    size_t decoded = 0;

    (void)state;
    for (size_t k = 0; k < len; k++) {
        for (size_t s = 0; s < sizeof(subst); s++) {
            uint8_t *m = dup_exact(ex, len);
            sg_batch *b = (sg_batch *)1;
            sg_err err;
            int rc, ok = 0;

            m[k] = subst[s];
            rc = sg_batch_decode(&b, m, len, NULL, &err);
            for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
                ok |= rc == known[i];
            if (!ok)
                fail_msg("byte %zu = 0x%02x: code %d (%s)", k, subst[s], rc, err.msg);
            assert_true((rc == 0) == (b != NULL));
            decoded += rc == 0;
            sg_batch_free(b);
            test_free(m);
        }
    }
    assert_true(decoded > 0);
    test_free(ex);
}

static void test_free_null(void **state)
{
    sg_batch_limits lim;
    sg_batch *b = (sg_batch *)1;
    size_t len;
    uint8_t *ex = hex(example_hex, &len);

    (void)state;
    /* err may be NULL: the code alone comes back. */
    assert_int_equal(sg_batch_decode(&b, "\xc1", 1, NULL, NULL), SG_EFORMAT);
    assert_null(b);
    assert_int_equal(sg_batch_decode(&b, ex, len - 1, NULL, NULL), SG_ETRUNC);
    ex[len - 1] = 0x01; /* the delete's cols: nil -> 1 */
    assert_int_equal(sg_batch_decode(&b, ex, len, NULL, NULL), SG_ETYPE);
    assert_int_equal(sg_batch_decode(&b, NULL, 0, NULL, NULL), SG_ETRUNC);
    test_free(ex);
    sg_batch_free(NULL);
    sg_batch_enc_free(NULL);
    sg_batch_limits_default(&lim);
    assert_int_equal(lim.max_bytes, SG_BATCH_MAX_BYTES);
    assert_int_equal(lim.max_changes, SG_BATCH_MAX_CHANGES);
    assert_int_equal(lim.max_cols, SG_BATCH_MAX_COLS);
    assert_int_equal(lim.max_str, SG_BATCH_MAX_STR);
    assert_int_equal(lim.max_name, SG_BATCH_MAX_NAME);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_decodes),
        cmocka_unit_test(test_example_encodes),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_encoder_refuses),
        cmocka_unit_test(test_encoder_count_limit),
        cmocka_unit_test(test_encoder_byte_limit),
        cmocka_unit_test(test_mpcheck_sizes),
        cmocka_unit_test(test_mpcheck_every_type_byte),
        cmocka_unit_test(test_mpcheck_limits),
        cmocka_unit_test(test_mpcheck_counts_need_bytes),
        cmocka_unit_test(test_hostile_headers),
        cmocka_unit_test(test_depth_bombs),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_positions),
        cmocka_unit_test(test_int_encodings),
        cmocka_unit_test(test_seq_order),
        cmocka_unit_test(test_duplicate_columns),
        cmocka_unit_test(test_origin_lengths),
        cmocka_unit_test(test_custom_limits),
        cmocka_unit_test(test_single_byte_corruptions),
        cmocka_unit_test(test_free_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
