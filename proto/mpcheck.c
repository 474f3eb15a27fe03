/*
 * mpcheck.c - the allocation-free msgpack validator of mpcheck.h.
 *
 * The walk reads one header at a time and keeps, per open container, how many elements it still
 * owes (pending[]), plus the sum of those debts over all levels (owed). Every owed element needs
 * at least one byte, so the invariant `owed <= bytes left` is checked whenever a header adds
 * debt or a payload consumes bytes: a header that claims more elements or bytes than the input
 * can hold is refused at that header, before any consumer could act on it. Level 0 is a virtual
 * container owing the single top-level value.
 */
#include "mpcheck.h"

#include <msgpack.h>

#include <assert.h>

/* What one header byte announces. */
typedef enum mp_kind {
    MP_SCALAR, /* fixed size, no payload: nil, bool, int, float, fixext */
    MP_BYTES,  /* str, bin or ext: a length field, then that many payload bytes */
    MP_ARRAY,  /* a count field, then count values */
    MP_MAP,    /* a count field, then 2 * count values */
    MP_BAD,    /* 0xc1, never used */
} mp_kind;

typedef struct mp_head {
    mp_kind kind;
    unsigned hlen;    /* bytes of the header itself, including the type byte and length field */
    unsigned lenlen;  /* bytes of the big-endian length/count field after the type byte (0-4) */
    uint32_t inl;     /* the length or count stored in the type byte itself (fix* forms) */
    const char *what; /* name for messages */
} mp_head;

/* Classifies type byte b. Pure; every byte value maps to exactly one description. */
static mp_head mp_classify(uint8_t b)
{
    mp_head h = {MP_SCALAR, 1, 0, 0, "scalar"};

    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return h;
    if (b <= 0x8f) {
        h.kind = MP_MAP;
        h.inl = b & 0x0fu;
        h.what = "map";
        return h;
    }
    if (b <= 0x9f) {
        h.kind = MP_ARRAY;
        h.inl = b & 0x0fu;
        h.what = "array";
        return h;
    }
    if (b <= 0xbf) {
        h.kind = MP_BYTES;
        h.inl = b & 0x1fu;
        h.what = "str";
        return h;
    }
    switch (b) {
    case 0xc1:
        h.kind = MP_BAD;
        return h;
    case 0xc4: /* bin 8/16/32 */
    case 0xc5:
    case 0xc6:
        h.kind = MP_BYTES;
        h.lenlen = 1u << (b - 0xc4);
        h.hlen = 1 + h.lenlen;
        h.what = "bin";
        return h;
    case 0xc7: /* ext 8/16/32: length field, then a type byte, then the payload */
    case 0xc8:
    case 0xc9:
        h.kind = MP_BYTES;
        h.lenlen = 1u << (b - 0xc7);
        h.hlen = 2 + h.lenlen;
        h.what = "ext";
        return h;
    case 0xca:
        h.hlen = 5;
        return h;
    case 0xcb:
        h.hlen = 9;
        return h;
    case 0xcc: /* uint 8/16/32/64 */
    case 0xcd:
    case 0xce:
    case 0xcf:
        h.hlen = 1 + (1u << (b - 0xcc));
        return h;
    case 0xd0: /* int 8/16/32/64 */
    case 0xd1:
    case 0xd2:
    case 0xd3:
        h.hlen = 1 + (1u << (b - 0xd0));
        return h;
    case 0xd4: /* fixext 1/2/4/8/16: type byte + type + 2^k data bytes */
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        h.hlen = 2 + (1u << (b - 0xd4));
        return h;
    case 0xd9: /* str 8/16/32 */
    case 0xda:
    case 0xdb:
        h.kind = MP_BYTES;
        h.lenlen = 1u << (b - 0xd9);
        h.hlen = 1 + h.lenlen;
        h.what = "str";
        return h;
    case 0xdc: /* array 16/32 */
    case 0xdd:
        h.kind = MP_ARRAY;
        h.lenlen = 2u << (b - 0xdc);
        h.hlen = 1 + h.lenlen;
        h.what = "array";
        return h;
    default: /* 0xde, 0xdf: map 16/32 */
        assert(b == 0xde || b == 0xdf);
        h.kind = MP_MAP;
        h.lenlen = 2u << (b - 0xde);
        h.hlen = 1 + h.lenlen;
        h.what = "map";
        return h;
    }
}

/* Reads the n-byte (n <= 4) big-endian unsigned integer at p. The caller checked the bounds. */
static uint32_t mp_be(const uint8_t *p, unsigned n)
{
    uint32_t v = 0;

    assert(n <= 4);
    for (unsigned i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

int sg_mp_check(size_t *out_used, const void *buf, size_t len, const sg_mp_limits *lim, sg_err *err)
{
    const uint8_t *p = buf;
    uint64_t pending[SG_MP_DEPTH_MAX + 1]; /* pending[d]: values still owed at level d */
    unsigned depth = 0;                    /* open containers; pending[depth] is the innermost */
    unsigned max_depth;
    uint64_t owed = 1; /* sum of pending[0..depth]; each owed value needs >= 1 byte */
    size_t pos = 0;

    assert(out_used != NULL && lim != NULL);
    assert(buf != NULL || len == 0);
    max_depth = lim->max_depth < SG_MP_DEPTH_MAX ? lim->max_depth : SG_MP_DEPTH_MAX;
    pending[0] = 1;
    if (len == 0)
        return sg_err_set(err, SG_ETRUNC, "at byte 0: input is empty");

    for (;;) {
        mp_head h;
        size_t left; /* bytes from this header on, then from its end on */
        uint64_t n, elems;

        /* Close every container that has all its elements. */
        while (depth > 0 && pending[depth] == 0)
            depth--;
        if (pending[depth] == 0)
            break; /* depth 0: the top-level value is complete */

        /* The checks below keep owed <= len - pos, and a value is owed here. */
        assert(owed >= 1 && owed <= len - pos);
        pending[depth]--;
        owed--;
        h = mp_classify(p[pos]);
        if (h.kind == MP_BAD)
            return sg_err_set(err, SG_EFORMAT, "at byte %zu: reserved type byte 0xc1", pos);
        left = len - pos;
        if (h.hlen > left)
            return sg_err_set(err, SG_ETRUNC, "at byte %zu: input ends inside a %u-byte header",
                              pos, h.hlen);
        n = h.lenlen > 0 ? mp_be(p + pos + 1, h.lenlen) : h.inl;
        left -= h.hlen;

        switch (h.kind) {
        case MP_SCALAR:
            if (owed > left)
                return sg_err_set(err, SG_ETRUNC,
                                  "at byte %zu: input ends before %llu more value(s)", pos + h.hlen,
                                  (unsigned long long)owed);
            break;
        case MP_BYTES:
            if (n > lim->max_len)
                return sg_err_set(err, SG_ETOOBIG,
                                  "at byte %zu: %s of %llu bytes exceeds the limit of %u", pos,
                                  h.what, (unsigned long long)n, (unsigned)lim->max_len);
            if (n > left || owed > left - n)
                return sg_err_set(err, SG_ETRUNC,
                                  "at byte %zu: %s of %llu bytes%s, but only %zu bytes remain", pos,
                                  h.what, (unsigned long long)n,
                                  owed > 0 ? " (and more values after it)" : "", left);
            pos += (size_t)n;
            break;
        case MP_ARRAY:
        case MP_MAP:
            if (depth >= max_depth)
                return sg_err_set(err, SG_EDEPTH, "at byte %zu: nesting deeper than %u", pos,
                                  max_depth);
            if (n > lim->max_count)
                return sg_err_set(err, SG_ETOOBIG,
                                  "at byte %zu: %s of %llu %s exceeds the limit of %u", pos, h.what,
                                  (unsigned long long)n, h.kind == MP_MAP ? "pairs" : "elements",
                                  (unsigned)lim->max_count);
            elems = h.kind == MP_MAP ? 2 * n : n;
            if (elems > left || owed > left - elems)
                return sg_err_set(
                    err, SG_ETRUNC, "at byte %zu: %s of %llu %s%s, but only %zu bytes remain", pos,
                    h.what, (unsigned long long)n, h.kind == MP_MAP ? "pairs" : "elements",
                    owed > 0 ? " (and more values after it)" : "", left);
            depth++;
            pending[depth] = elems;
            owed += elems;
            break;
        case MP_BAD:
            assert(0);
            break;
        }
        pos += h.hlen;
    }

    assert(owed == 0);
    *out_used = pos;
    return 0;
}

/* The msgpack type of o as named in messages. */
const char *sg_mp_type_name(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return "nil";
    case MSGPACK_OBJECT_BOOLEAN:
        return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return "int";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return "float";
    case MSGPACK_OBJECT_STR:
        return "str";
    case MSGPACK_OBJECT_BIN:
        return "bin";
    case MSGPACK_OBJECT_ARRAY:
        return "array";
    case MSGPACK_OBJECT_MAP:
        return "map";
    case MSGPACK_OBJECT_EXT:
        return "ext";
    }
    return "unknown";
}
