/*
 * fuzz_batch.c - libFuzzer target for the change batch decoder (proto/batch.c, proto/mpcheck.c).
 *
 * Besides "never crash, never leak, never read out of bounds" (the sanitizers' part), it checks
 * three properties and abort()s when one fails, so the fuzzer reports the input:
 *   1. sg_mp_check and msgpack-c agree: whatever sg_mp_check accepts (at a depth msgpack-c
 *      supports), msgpack_unpack_next also parses, and to the same length.
 *   2. Round trip: a batch the decoder accepts re-encodes with sg_batch_enc_* without error and
 *      decodes again to the same batch, field by field.
 *   3. The encoding is canonical: re-encoding the second decode gives the same bytes.
 *   4. Limits only narrow: a batch accepted under tight custom limits (which also exercise the
 *      too_big paths that small inputs cannot reach under the defaults) is accepted under the
 *      defaults too, with the same content.
 * abort() is for this harness only; the library itself never aborts on input.
 * tests/fuzz/replay.c replays the corpus through this file under CTest without libFuzzer.
 */
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpcheck.h"
#include "sangam/batch.h"
#include "sangam/records.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts when a property does not hold. */
static void require(int ok)
{
    if (!ok)
        abort();
}

/* Property 1. msgpack-c allocates what headers claim, so it only sees inputs that sg_mp_check
 * accepted: that bounds its allocation by about 24 bytes per input byte. */
static void check_mp_agrees(const uint8_t *data, size_t size)
{
    const sg_mp_limits lim = {32, UINT32_MAX, UINT32_MAX}; /* msgpack-c's own stack is 32 deep */
    msgpack_unpacked up;
    size_t used = 0, off = 0;

    if (sg_mp_check(&used, data, size, &lim, NULL) != 0)
        return;
    require(used >= 1 && used <= size);
    msgpack_unpacked_init(&up);
    require(msgpack_unpack_next(&up, (const char *)data, size, &off) == MSGPACK_UNPACK_SUCCESS);
    require(off == used);
    msgpack_unpacked_destroy(&up);
}

static int bytes_eq(const char *a, uint32_t alen, const char *b, uint32_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* 1 if the two batches hold the same origin and changes. */
static int batch_eq(const sg_batch *a, const sg_batch *b)
{
    if (!bytes_eq(a->origin, a->origin_len, b->origin, b->origin_len) || a->nchanges != b->nchanges)
        return 0;
    for (uint32_t i = 0; i < a->nchanges; i++) {
        const sg_change *x = &a->changes[i], *y = &b->changes[i];
        if (x->seq != y->seq || x->hlc != y->hlc || x->op != y->op || x->ncols != y->ncols ||
            !bytes_eq(x->table, x->table_len, y->table, y->table_len) ||
            !bytes_eq(x->pk, x->pk_len, y->pk, y->pk_len))
            return 0;
        if ((x->op == SG_OP_DELETE) != (x->cols == NULL) ||
            (y->op == SG_OP_DELETE) != (y->cols == NULL))
            return 0;
        for (uint32_t j = 0; j < x->ncols; j++) {
            const sg_col *p = &x->cols[j], *q = &y->cols[j];
            if (!bytes_eq(p->name, p->name_len, q->name, q->name_len) || p->v.type != q->v.type)
                return 0;
            if (p->v.type == SG_VAL_INT && p->v.i != q->v.i)
                return 0;
            if (p->v.type == SG_VAL_STR && !bytes_eq(p->v.s, p->v.len, q->v.s, q->v.len))
                return 0;
        }
    }
    return 1;
}

/* Encodes b with a fresh encoder into *out_enc. Returns 0, or 1 when the batch is too big to
 * re-encode (possible only within a few bytes of SG_BATCH_MAX_BYTES); aborts on anything else. */
static int reencode(sg_batch_enc **out_enc, const sg_batch *b)
{
    char origin[SG_REGION_MAX + 1];
    sg_batch_enc *enc = NULL;

    require(b->origin_len <= SG_REGION_MAX);
    memcpy(origin, b->origin, b->origin_len);
    origin[b->origin_len] = '\0';
    require(sg_batch_enc_new(&enc, origin) == 0);
    for (uint32_t i = 0; i < b->nchanges; i++) {
        int rc = sg_batch_enc_add(enc, &b->changes[i]);
        if (rc == SG_ETOOBIG) {
            sg_batch_enc_free(enc);
            return 1;
        }
        require(rc == 0);
    }
    require(sg_batch_enc_count(enc) == b->nchanges);
    *out_enc = enc;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const sg_batch_limits tight_limits = {512, 3, 4, 8, 8};
    sg_batch *b1 = NULL, *b2 = NULL, *tight = NULL;
    sg_batch_enc *e1 = NULL, *e2 = NULL;
    const void *buf1, *buf2;
    size_t len1, len2;
    sg_err err;
    int rc;

    check_mp_agrees(data, size);

    /* Property 4, first half: tight limits. */
    rc = sg_batch_decode(&tight, data, size, &tight_limits, &err);
    require((rc == 0) == (tight != NULL));
    if (rc != 0)
        require(rc < 0 && err.code == rc && err.msg[0] != '\0');

    rc = sg_batch_decode(&b1, data, size, NULL, &err);
    if (rc != 0) {
        require(b1 == NULL && rc < 0 && err.code == rc && err.msg[0] != '\0');
        require(tight == NULL);
        return 0;
    }
    require(b1 != NULL && b1->nchanges >= 1);
    require(tight == NULL || batch_eq(tight, b1));
    sg_batch_free(tight);

    /* Property 2. */
    if (reencode(&e1, b1) != 0)
        goto free_b1;
    require(sg_batch_enc_finish(e1, &buf1, &len1) == 0);
    require(sg_batch_decode(&b2, buf1, len1, NULL, &err) == 0);
    require(batch_eq(b1, b2));

    /* Property 3. */
    require(reencode(&e2, b2) == 0);
    require(sg_batch_enc_finish(e2, &buf2, &len2) == 0);
    require(len1 == len2 && memcmp(buf1, buf2, len1) == 0);

    sg_batch_enc_free(e2);
    sg_batch_free(b2);
    sg_batch_enc_free(e1);
free_b1:
    sg_batch_free(b1);
    return 0;
}
