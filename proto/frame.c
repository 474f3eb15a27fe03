/*
 * frame.c - replication frames and session messages (sangam/frame.h; proto/PROTOCOL.md section 7).
 *
 * Every message type is declared once, in msg_schemas[]: its name and the fields that follow the
 * type, in wire order. The decoder and the encoder both walk that table and apply the same string
 * rules (str_check), so whatever the encoder writes the decoder accepts, and the encoder refuses
 * (SG_EINVAL) whatever the decoder would refuse.
 *
 * A payload is decoded in this order, and nothing is allocated before step 4 has passed its
 * structural check:
 *   1. size: at most SG_FRAME_MAX bytes;
 *   2. head: a bounded cursor reads the array header and the type byte (a positive fixint) and,
 *      for HELLO, WELCOME and JOIN, the version. Another version stops the decode here with
 *      SG_EUNSUPPORTED, whatever follows, so a later protocol version may change everything after
 *      the version;
 *   3. BATCH: the payload must begin with the two bytes 92 03; the rest must be exactly one msgpack
 *      value that passes the structural check sg_batch_decode makes (depth 8). The batch is not
 *      decoded here: the receiver calls sg_batch_decode with its own limits;
 *   4. other types: the exact element count, then sg_mp_check over the whole payload (depth 4,
 *      containers of at most MSG_MAX_COUNT elements), then msgpack_unpack_next with strings
 *      referenced in place, then typed extraction field by field.
 * With those limits (and the top-level count checked first) msgpack-c's tree for a non-BATCH
 * payload holds at most 5 + 4*16 + 64*16 + 1024*16 (about 17 500) objects of 24 bytes, about
 * 420 KB, and never more than one object per input byte.
 * err may be NULL: codes are returned as they are, never read back from err (sg_err_wrap returns
 * SG_EINVAL when err is NULL). Error codes follow proto/batch.c: a value of the wrong msgpack type
 * is SG_ETYPE; the right type breaking a rule (count, range, characters, encoding of the type byte)
 * is SG_EFORMAT; a length over a limit is SG_ETOOBIG.
 */
#include "sangam/frame.h"

#include <assert.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "mpcheck.h"
#include "sangam/records.h"

/* Nesting allowed in a non-BATCH payload: a valid one nests 1 deep; the slack lets a container in
 * a field's place be reported as the type error it is. */
#define MSG_DEPTH 4u
/* Elements of any container in a non-BATCH payload (the largest valid message has 5); a map
 * counts pairs. Keeps msgpack-c's tree small whatever the payload size. */
#define MSG_MAX_COUNT 8u
/* Nesting allowed in a BATCH body: must equal BATCH_DEPTH in batch.c, so that every body this
 * file accepts fails, if at all, in sg_batch_decode's field checks rather than its structural
 * ones. */
#define FRAME_BATCH_DEPTH 8u
/* Bytes of an ERROR code. */
#define MSG_CODE_MAX 64u
/* The two bytes every BATCH payload begins with: fixarray of 2, positive fixint 3. */
#define BATCH_LEAD0 0x92u
#define BATCH_LEAD1 0x03u

/* ---- the message table ---- */

typedef enum fkind {
    FK_VERSION, /* uint32 that must be SG_PROTO_VERSION (HELLO, WELCOME, JOIN) */
    FK_U32,     /* uint that fits in 32 bits */
    FK_U64,     /* uint that fits in 64 bits */
    FK_STR,     /* str, checked by its srule */
    FK_BATCH,   /* the encoded batch: BATCH only, handled apart */
} fkind;

typedef enum srule {
    SR_NONE,
    SR_NODE,   /* a region id (sg_region_id_valid); the hub's is "hub" */
    SR_CODE,   /* 1..MSG_CODE_MAX bytes of [a-z_] */
    SR_TEXT,   /* 0..SG_MSG_TEXT_MAX bytes of valid UTF-8 */
    SR_SECRET, /* SG_SECRET_MIN..SG_SECRET_MAX bytes of [0-9a-f] */
    SR_PEM,    /* 1..SG_PEM_MAX bytes of printable ASCII (0x20-0x7e), \n and \r */
} srule;

typedef struct msg_field {
    const char *name; /* as in messages and PROTOCOL.md */
    fkind kind;
    srule rule;     /* FK_STR only */
    size_t off;     /* offset in sg_msg of the value (FK_STR: the pointer) */
    size_t len_off; /* FK_STR: offset of the uint32_t length */
} msg_field;

#define MSG_FIELDS_MAX 4u

typedef struct msg_schema {
    const char *name; /* "HELLO" */
    unsigned nfields; /* fields after the type */
    msg_field fields[MSG_FIELDS_MAX];
} msg_schema;

/* Initialisers of msg_field for each kind. */
/* clang-format off */
#define F_VERSION      {"version", FK_VERSION, SR_NONE, offsetof(sg_msg, version), 0}
#define F_U32(n, m)    {n, FK_U32, SR_NONE, offsetof(sg_msg, m), 0}
#define F_U64(n, m)    {n, FK_U64, SR_NONE, offsetof(sg_msg, m), 0}
#define F_STR(n, r, m) {n, FK_STR, r, offsetof(sg_msg, m), offsetof(sg_msg, m##_len)}
#define F_BATCH        {"batch", FK_BATCH, SR_NONE, offsetof(sg_msg, batch), 0}
/* clang-format on */

/* Indexed by sg_msg_type; entry 0 is unused. */
static const msg_schema msg_schemas[] = {
    [SG_MSG_HELLO] = {"HELLO",
                      3,
                      {F_VERSION, F_STR("node", SR_NODE, node), F_U32("schema", schema)}},
    [SG_MSG_WELCOME] = {"WELCOME",
                        4,
                        {F_VERSION, F_STR("node", SR_NODE, node), F_U32("schema", schema),
                         F_U64("seq", seq)}},
    [SG_MSG_BATCH] = {"BATCH", 1, {F_BATCH}},
    [SG_MSG_ACK] = {"ACK", 1, {F_U64("seq", seq)}},
    [SG_MSG_PING] = {"PING", 1, {F_U64("nonce", nonce)}},
    [SG_MSG_PONG] = {"PONG", 1, {F_U64("nonce", nonce)}},
    [SG_MSG_ERROR] = {"ERROR", 2, {F_STR("code", SR_CODE, code), F_STR("text", SR_TEXT, text)}},
    [SG_MSG_BYE] = {"BYE", 1, {F_STR("text", SR_TEXT, text)}},
    [SG_MSG_SNAPSHOT_BEGIN] = {"SNAPSHOT_BEGIN", 1, {F_U64("seq", seq)}},
    [SG_MSG_SNAPSHOT_END] = {"SNAPSHOT_END", 2, {F_U64("seq", seq), F_U64("count", count)}},
    [SG_MSG_STATUS] = {"STATUS", 2, {F_U64("seq", seq), F_U64("hlc", hlc)}},
    [SG_MSG_JOIN] = {"JOIN",
                     4,
                     {F_VERSION, F_STR("region", SR_NODE, node), F_STR("secret", SR_SECRET, secret),
                      F_STR("csr", SR_PEM, pem)}},
    [SG_MSG_CERT] = {"CERT", 2, {F_STR("cert", SR_PEM, pem), F_STR("ca", SR_PEM, pem2)}},
    [SG_MSG_RENEW] = {"RENEW", 1, {F_STR("csr", SR_PEM, pem)}},
    [SG_MSG_RESTORE] = {"RESTORE", 1, {F_U64("seq", seq)}},
    [SG_MSG_RESTORE_END] = {"RESTORE_END", 2, {F_U64("seq", seq), F_U64("count", count)}},
};

#define MSG_TYPE_MAX SG_MSG_RESTORE_END

/* A type added to sg_msg_type needs its entry here and MSG_TYPE_MAX moved with it. */
_Static_assert(sizeof(msg_schemas) / sizeof(msg_schemas[0]) == MSG_TYPE_MAX + 1,
               "msg_schemas[] must end at MSG_TYPE_MAX");

/* The schema of type t, or NULL when t is not a message type. */
static const msg_schema *schema_of(int t)
{
    if (t < SG_MSG_HELLO || t > MSG_TYPE_MAX)
        return NULL;
    return &msg_schemas[t];
}

/* 1 if type t carries the protocol version as its second element (read in the head). */
static int has_version(int t)
{
    return t == SG_MSG_HELLO || t == SG_MSG_WELCOME || t == SG_MSG_JOIN;
}

const char *sg_msg_name(int type)
{
    const msg_schema *s = schema_of(type);
    return s != NULL ? s->name : "UNKNOWN";
}

/* Writes "[type, version, node, schema]" for s into buf. Returns buf. */
static const char *schema_shape(char *buf, size_t cap, const msg_schema *s)
{
    size_t n = (size_t)snprintf(buf, cap, "[type");

    for (unsigned i = 0; i < s->nfields && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, ", %s", s->fields[i].name);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
    return buf;
}

/* Field accessors: f->off and f->len_off locate members of the types fkind promises. */
static uint32_t *field_u32(sg_msg *m, const msg_field *f)
{
    return (uint32_t *)((char *)m + f->off);
}
static uint64_t *field_u64(sg_msg *m, const msg_field *f)
{
    return (uint64_t *)((char *)m + f->off);
}
static const char **field_str(sg_msg *m, const msg_field *f)
{
    return (const char **)((char *)m + f->off);
}
static uint32_t *field_len(sg_msg *m, const msg_field *f)
{
    return (uint32_t *)((char *)m + f->len_off);
}

/* ---- rules shared by the encoder and the decoder ---- */

/* Returns len when s[0..len) is well-formed UTF-8 (Unicode table 3-7: no overlong forms, no
 * surrogates, nothing above U+10FFFF), else the offset of the first byte of the first
 * ill-formed sequence. */
static size_t utf8_invalid_at(const uint8_t *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint8_t c = s[i], lo = 0x80, hi = 0xbf;
        size_t n; /* continuation bytes */

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
        } else if (c == 0xe0) {
            n = 2;
            lo = 0xa0;
        } else if (c == 0xed) {
            n = 2;
            hi = 0x9f;
        } else if (c >= 0xe1 && c <= 0xef) {
            n = 2;
        } else if (c == 0xf0) {
            n = 3;
            lo = 0x90;
        } else if (c >= 0xf1 && c <= 0xf3) {
            n = 3;
        } else if (c == 0xf4) {
            n = 3;
            hi = 0x8f;
        } else {
            return i;
        }
        if (len - i - 1 < n || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k <= n; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return i;
        i += n + 1;
    }
    return len;
}

/* Checks string s (len bytes) of field name against rule. Returns 0, SG_ETOOBIG (too long) or
 * SG_EFORMAT (characters, emptiness, encoding). */
static int str_check(srule rule, const char *s, size_t len, const char *name, sg_err *err)
{
    size_t bad;

    switch (rule) {
    case SR_NODE:
        if (len > SG_REGION_MAX)
            return sg_err_set(err, SG_ETOOBIG, "%s: %zu bytes exceeds the limit of %d", name, len,
                              SG_REGION_MAX);
        if (!sg_region_id_valid(s, len))
            return sg_err_set(err, SG_EFORMAT,
                              "%s: not a node id (1..%d of [a-z0-9-], not starting with '-')", name,
                              SG_REGION_MAX);
        return 0;
    case SR_CODE:
        if (len > MSG_CODE_MAX)
            return sg_err_set(err, SG_ETOOBIG, "%s: %zu bytes exceeds the limit of %u", name, len,
                              MSG_CODE_MAX);
        if (len == 0)
            return sg_err_set(err, SG_EFORMAT, "%s: empty", name);
        for (size_t i = 0; i < len; i++)
            if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_'))
                return sg_err_set(err, SG_EFORMAT, "%s: byte %zu is not one of [a-z_]", name, i);
        return 0;
    case SR_TEXT:
        if (len > SG_MSG_TEXT_MAX)
            return sg_err_set(err, SG_ETOOBIG, "%s: %zu bytes exceeds the limit of %u", name, len,
                              SG_MSG_TEXT_MAX);
        bad = utf8_invalid_at((const uint8_t *)s, len);
        if (bad != len)
            return sg_err_set(err, SG_EFORMAT, "%s: not valid UTF-8 at byte %zu", name, bad);
        return 0;
    case SR_SECRET:
        if (len > SG_SECRET_MAX)
            return sg_err_set(err, SG_ETOOBIG, "%s: %zu bytes exceeds the limit of %u", name, len,
                              SG_SECRET_MAX);
        if (len < SG_SECRET_MIN)
            return sg_err_set(err, SG_EFORMAT, "%s: %zu bytes is below the minimum of %u", name,
                              len, SG_SECRET_MIN);
        for (size_t i = 0; i < len; i++)
            if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                return sg_err_set(err, SG_EFORMAT, "%s: byte %zu is not one of [0-9a-f]", name, i);
        return 0;
    case SR_PEM:
        if (len > SG_PEM_MAX)
            return sg_err_set(err, SG_ETOOBIG, "%s: %zu bytes exceeds the limit of %u", name, len,
                              SG_PEM_MAX);
        if (len == 0)
            return sg_err_set(err, SG_EFORMAT, "%s: empty", name);
        for (size_t i = 0; i < len; i++) {
            uint8_t c = (uint8_t)s[i];
            if (!((c >= 0x20 && c <= 0x7e) || c == '\n' || c == '\r'))
                return sg_err_set(err, SG_EFORMAT,
                                  "%s: byte %zu (0x%02x) is not printable ASCII, \\n or \\r", name,
                                  i, (unsigned)c);
        }
        return 0;
    case SR_NONE:
        break;
    }
    return 0;
}

/* ---- decoder: the head, read with a bounded cursor ---- */

/* 1 if type byte b starts an integer (any width, either sign), else 0. */
static int byte_is_int(uint8_t b)
{
    return b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3);
}

/* The msgpack family a type byte starts, as named in messages. */
static const char *byte_type_name(uint8_t b)
{
    if (byte_is_int(b))
        return "int";
    if (b <= 0x8f || b == 0xde || b == 0xdf)
        return "map";
    if (b <= 0x9f || b == 0xdc || b == 0xdd)
        return "array";
    if (b <= 0xbf || (b >= 0xd9 && b <= 0xdb))
        return "str";
    switch (b) {
    case 0xc0:
        return "nil";
    case 0xc2:
    case 0xc3:
        return "bool";
    case 0xca:
    case 0xcb:
        return "float";
    case 0xc4:
    case 0xc5:
    case 0xc6:
        return "bin";
    case 0xc1:
        return "reserved byte 0xc1";
    default:
        return "ext"; /* 0xc7-0xc9, 0xd4-0xd8 */
    }
}

/* A read position in an untrusted buffer; every read checks pos against len first. */
typedef struct cursor {
    const uint8_t *p;
    size_t len;
    size_t pos;
} cursor;

/* Reads the big-endian n-byte integer at the cursor (n <= 8, bounds checked by the caller). */
static uint64_t cur_be(cursor *c, unsigned n)
{
    uint64_t v = 0;

    assert(n <= 8 && n <= c->len - c->pos);
    for (unsigned i = 0; i < n; i++)
        v = (v << 8) | c->p[c->pos + i];
    c->pos += n;
    return v;
}

/* Reads an array header: *out_n is its element count. SG_ETRUNC, SG_ETYPE, SG_EFORMAT (0xc1). */
static int cur_array(uint32_t *out_n, cursor *c, sg_err *err)
{
    uint8_t b;
    unsigned lenlen;

    if (c->pos >= c->len)
        return sg_err_set(err, SG_ETRUNC, "at byte %zu: input is empty", c->pos);
    b = c->p[c->pos];
    if (b >= 0x90 && b <= 0x9f) {
        c->pos++;
        *out_n = b & 0x0fu;
        return 0;
    }
    if (b == 0xc1)
        return sg_err_set(err, SG_EFORMAT, "at byte %zu: reserved type byte 0xc1", c->pos);
    if (b != 0xdc && b != 0xdd)
        return sg_err_set(err, SG_ETYPE, "message: expected array [type, ...], got %s",
                          byte_type_name(b));
    lenlen = b == 0xdc ? 2 : 4;
    if (c->len - c->pos - 1 < lenlen)
        return sg_err_set(err, SG_ETRUNC, "at byte %zu: input ends inside a %u-byte header", c->pos,
                          lenlen + 1);
    c->pos++;
    *out_n = (uint32_t)cur_be(c, lenlen);
    return 0;
}

/* Reads the type byte, which must be a positive fixint naming a message type. */
static int cur_type(int *out_type, cursor *c, sg_err *err)
{
    uint8_t b;

    if (c->pos >= c->len)
        return sg_err_set(err, SG_ETRUNC, "at byte %zu: input ends before the message type",
                          c->pos);
    b = c->p[c->pos];
    if (b == 0xc1)
        return sg_err_set(err, SG_EFORMAT, "at byte %zu: reserved type byte 0xc1", c->pos);
    if (b > 0x7f) {
        if (byte_is_int(b))
            return sg_err_set(err, SG_EFORMAT,
                              "message type: must be one byte, a positive fixint 0x01-0x%02x",
                              MSG_TYPE_MAX);
        return sg_err_set(err, SG_ETYPE, "message type: expected int, got %s", byte_type_name(b));
    }
    if (schema_of(b) == NULL)
        return sg_err_set(err, SG_EFORMAT, "unknown message type %u", (unsigned)b);
    c->pos++;
    *out_type = b;
    return 0;
}

/* Reads a non-negative integer of any msgpack width. SG_ETRUNC, SG_ETYPE (not an int),
 * SG_EFORMAT (negative, or 0xc1); messages name field what. */
static int cur_uint(uint64_t *out, cursor *c, const char *what, sg_err *err)
{
    uint8_t b;
    unsigned n;

    if (c->pos >= c->len)
        return sg_err_set(err, SG_ETRUNC, "at byte %zu: input ends before the %s", c->pos, what);
    b = c->p[c->pos];
    if (b <= 0x7f) {
        c->pos++;
        *out = b;
        return 0;
    }
    if (b >= 0xe0)
        return sg_err_set(err, SG_EFORMAT, "%s: must not be negative, got %d", what,
                          (int)(int8_t)b);
    if (b == 0xc1)
        return sg_err_set(err, SG_EFORMAT, "at byte %zu: reserved type byte 0xc1", c->pos);
    if (b < 0xcc || b > 0xd3)
        return sg_err_set(err, SG_ETYPE, "%s: expected uint, got %s", what, byte_type_name(b));
    n = 1u << ((b - 0xcc) & 3u);
    if (c->len - c->pos - 1 < n)
        return sg_err_set(err, SG_ETRUNC, "at byte %zu: input ends inside a %u-byte integer",
                          c->pos, n + 1);
    c->pos++;
    *out = cur_be(c, n);
    if (b >= 0xd0) {
        /* int8..int64: negative when the sign bit of its width is set. */
        uint64_t sign = (uint64_t)1 << (8 * n - 1);
        if (*out & sign)
            return sg_err_set(err, SG_EFORMAT, "%s: must not be negative", what);
    }
    return 0;
}

/* ---- decoder: typed extraction from msgpack-c's tree ---- */

/* Reads a non-negative integer; SG_EFORMAT for a negative one, SG_ETYPE for a non-integer. */
static int get_uint(uint64_t *out, const msgpack_object *o, const char *what, sg_err *err)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *out = o->via.u64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return sg_err_set(err, SG_EFORMAT, "%s: must not be negative, got %" PRId64, what,
                          o->via.i64);
    return sg_err_set(err, SG_ETYPE, "%s: expected uint, got %s", what, sg_mp_type_name(o));
}

/* Stores field f of m from object o. buf/len is the payload the strings must point into. */
static int field_get(sg_msg *m, const msg_field *f, const msgpack_object *o, const void *buf,
                     size_t len, sg_err *err)
{
    const char *s;
    uint64_t v = 0;
    int rc;

    switch (f->kind) {
    case FK_VERSION:
    case FK_U32:
        if ((rc = get_uint(&v, o, f->name, err)) != 0)
            return rc;
        if (v > UINT32_MAX)
            return sg_err_set(err, SG_EFORMAT, "%s: %" PRIu64 " does not fit in 32 bits", f->name,
                              v);
        /* The head already refused any version but this one. */
        assert(f->kind != FK_VERSION || v == SG_PROTO_VERSION);
        *field_u32(m, f) = (uint32_t)v;
        return 0;
    case FK_U64:
        return get_uint(field_u64(m, f), o, f->name, err);
    case FK_STR:
        if (o->type != MSGPACK_OBJECT_STR)
            return sg_err_set(err, SG_ETYPE, "%s: expected str, got %s", f->name,
                              sg_mp_type_name(o));
        s = o->via.str.ptr;
        /* msgpack-c's C unpacker references str bytes in its input; the message keeps those
         * pointers after the tree is freed, so a build that copied them would leave it
         * dangling. */
        if (o->via.str.size > 0 && (s < (const char *)buf || s > (const char *)buf + len ||
                                    o->via.str.size > (size_t)((const char *)buf + len - s)))
            return sg_err_set(err, SG_EUNSUPPORTED,
                              "%s: msgpack-c copied a string; zero-copy decoding needs it to "
                              "reference the input",
                              f->name);
        if ((rc = str_check(f->rule, s, o->via.str.size, f->name, err)) != 0)
            return rc;
        *field_str(m, f) = o->via.str.size > 0 ? s : (const char *)buf;
        *field_len(m, f) = o->via.str.size;
        return 0;
    case FK_BATCH:
        break;
    }
    assert(0);
    return SG_EINVAL;
}

/* Decodes a BATCH payload (it begins with 92 03, checked by the caller): the body must be one
 * msgpack value filling the rest of the payload. */
static int batch_body(sg_msg *m, const uint8_t *p, size_t len, sg_err *err)
{
    const sg_mp_limits lim = {FRAME_BATCH_DEPTH, UINT32_MAX, UINT32_MAX};
    size_t used = 0;
    int rc;

    assert(len >= 2 && p[0] == BATCH_LEAD0 && p[1] == BATCH_LEAD1);
    rc = sg_mp_check(&used, p + 2, len - 2, &lim, err);
    if (rc != 0) {
        sg_err_wrap(err, "BATCH: batch");
        return rc;
    }
    if (used != len - 2)
        return sg_err_set(err, SG_ETRAILING, "BATCH: %zu trailing byte(s) after the %zu-byte batch",
                          len - 2 - used, used);
    m->batch = p + 2;
    m->batch_len = len - 2;
    return 0;
}

/* Decodes a payload of a non-BATCH type whose head was read: structure, unpack, fields. */
static int fields_decode(sg_msg *m, const msg_schema *s, const void *buf, size_t len, sg_err *err)
{
    const sg_mp_limits lim = {MSG_DEPTH, UINT32_MAX, MSG_MAX_COUNT};
    msgpack_unpacked up;
    msgpack_unpack_return ur;
    size_t used = 0, off = 0;
    int rc;

    rc = sg_mp_check(&used, buf, len, &lim, err);
    if (rc != 0) {
        sg_err_wrap(err, "%s", s->name);
        return rc;
    }
    if (used != len)
        return sg_err_set(err, SG_ETRAILING, "%s: %zu trailing byte(s) after the %zu-byte message",
                          s->name, len - used, used);

    msgpack_unpacked_init(&up);
    ur = msgpack_unpack_next(&up, buf, len, &off);
    if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
        rc = sg_err_set(err, SG_ENOMEM, "%s: out of memory unpacking %zu bytes", s->name, len);
        goto destroy_unpacked;
    }
    if (ur != MSGPACK_UNPACK_SUCCESS || off != len || up.data.type != MSGPACK_OBJECT_ARRAY ||
        up.data.via.array.size != s->nfields + 1) {
        /* The head and sg_mp_check accepted what msgpack-c read differently: a disagreement
         * between parsers, reported rather than asserted because the bytes came from outside. */
        rc = sg_err_set(err, SG_EFORMAT, "%s: msgpack-c refused the input (%d at byte %zu)",
                        s->name, (int)ur, off);
        goto destroy_unpacked;
    }
    for (unsigned i = 0; i < s->nfields; i++) {
        rc = field_get(m, &s->fields[i], &up.data.via.array.ptr[i + 1], buf, len, err);
        if (rc != 0) {
            sg_err_wrap(err, "%s", s->name);
            goto destroy_unpacked;
        }
    }
    rc = 0;

destroy_unpacked:
    msgpack_unpacked_destroy(&up);
    return rc;
}

/* Contract in sangam/frame.h; the steps are described at the top of this file. On a failure
 * other than SG_EUNSUPPORTED *out is all zero. */
int sg_msg_decode(sg_msg *out, const void *payload, size_t len, sg_err *err)
{
    char shape[96];
    cursor c = {payload, len, 0};
    const msg_schema *s;
    sg_msg m;
    uint64_t version = 0;
    uint32_t count = 0;
    int type = 0, rc;

    assert(out != NULL);
    memset(out, 0, sizeof(*out));
    memset(&m, 0, sizeof(m));
    if (payload == NULL && len > 0)
        return sg_err_set(err, SG_EINVAL, "message: no buffer");
    if (len > SG_FRAME_MAX)
        return sg_err_set(err, SG_ETOOBIG, "message of %zu bytes exceeds the limit of %u", len,
                          SG_FRAME_MAX);
    if ((rc = cur_array(&count, &c, err)) != 0)
        return rc;
    if (count == 0)
        return sg_err_set(err, SG_EFORMAT, "message: empty array; expected [type, ...]");
    if ((rc = cur_type(&type, &c, err)) != 0)
        return rc;
    s = schema_of(type);
    assert(s != NULL);
    m.type = (sg_msg_type)type;

    if (has_version(type)) {
        if (count < 2)
            return sg_err_set(err, SG_EFORMAT, "%s: expected %u elements %s, got %" PRIu32, s->name,
                              s->nfields + 1, schema_shape(shape, sizeof(shape), s), count);
        if ((rc = cur_uint(&version, &c, "version", err)) != 0) {
            sg_err_wrap(err, "%s", s->name);
            return rc;
        }
        if (version != SG_PROTO_VERSION) {
            out->type = m.type;
            out->version = version > UINT32_MAX ? UINT32_MAX : (uint32_t)version;
            return sg_err_set(err, SG_EUNSUPPORTED,
                              "protocol version %" PRIu64 "; this side speaks %u", version,
                              SG_PROTO_VERSION);
        }
    }
    if (type == SG_MSG_BATCH) {
        const uint8_t *p = payload;
        if (p[0] != BATCH_LEAD0 || p[1] != BATCH_LEAD1)
            return sg_err_set(err, SG_EFORMAT,
                              "BATCH: must begin with the bytes 92 03 (fixarray of 2, type 3)");
        rc = batch_body(&m, p, len, err);
    } else if (count != s->nfields + 1) {
        return sg_err_set(err, SG_EFORMAT, "%s: expected %u elements %s, got %" PRIu32, s->name,
                          s->nfields + 1, schema_shape(shape, sizeof(shape), s), count);
    } else {
        rc = fields_decode(&m, s, payload, len, err);
    }
    if (rc != 0)
        return rc;
    *out = m;
    return 0;
}

/* ---- frame header ---- */

/* Contract in sangam/frame.h. *out_len is left untouched on failure. */
int sg_frame_len(uint32_t *out_len, const uint8_t hdr[SG_FRAME_HEADER], uint32_t max, sg_err *err)
{
    uint32_t n;

    assert(out_len != NULL && hdr != NULL);
    n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    if (n == 0)
        return sg_err_set(err, SG_EFORMAT, "frame of 0 bytes: a frame carries one message");
    if (n > max)
        return sg_err_set(err, SG_ETOOBIG,
                          "frame of %" PRIu32 " bytes exceeds the limit of %" PRIu32, n, max);
    *out_len = n;
    return 0;
}

/* Writes the big-endian payload length n into the 4 bytes at p. */
static void put_header(uint8_t *p, size_t n)
{
    assert(n <= SG_FRAME_MAX);
    p[0] = (uint8_t)(n >> 24);
    p[1] = (uint8_t)(n >> 16);
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
}

/* ---- encoder ---- */

/* Encodes a BATCH frame in one exact allocation. */
static int encode_batch(void **out, size_t *out_len, const sg_msg *m)
{
    const sg_mp_limits lim = {FRAME_BATCH_DEPTH, UINT32_MAX, UINT32_MAX};
    uint8_t *p;
    size_t used = 0;

    if (m->batch == NULL || m->batch_len == 0)
        return SG_EINVAL;
    if (m->batch_len > SG_FRAME_MAX - 2)
        return SG_ETOOBIG;
    /* The receiver checks this; refusing here keeps a bug in the sender on the sender's side. */
    if (sg_mp_check(&used, m->batch, m->batch_len, &lim, NULL) != 0 || used != m->batch_len)
        return SG_EINVAL;
    p = malloc(SG_FRAME_HEADER + 2 + m->batch_len);
    if (p == NULL)
        return SG_ENOMEM;
    put_header(p, 2 + m->batch_len);
    p[SG_FRAME_HEADER] = BATCH_LEAD0;
    p[SG_FRAME_HEADER + 1] = BATCH_LEAD1;
    memcpy(p + SG_FRAME_HEADER + 2, m->batch, m->batch_len);
    *out = p;
    *out_len = SG_FRAME_HEADER + 2 + m->batch_len;
    return 0;
}

/* Checks that field f of m would decode. 0 or SG_EINVAL. */
static int field_valid(const sg_msg *m, const msg_field *f)
{
    sg_msg *mm = (sg_msg *)m; /* the accessors only read here */
    const char *s;
    uint32_t n;

    switch (f->kind) {
    case FK_VERSION:
        return *field_u32(mm, f) == SG_PROTO_VERSION ? 0 : SG_EINVAL;
    case FK_U32:
    case FK_U64:
        return 0;
    case FK_STR:
        s = *field_str(mm, f);
        n = *field_len(mm, f);
        if (s == NULL && n > 0)
            return SG_EINVAL;
        return str_check(f->rule, n > 0 ? s : "", n, f->name, NULL) == 0 ? 0 : SG_EINVAL;
    case FK_BATCH:
        break;
    }
    assert(0);
    return SG_EINVAL;
}

/* Packs field f of m canonically. 0 or -1 (no memory). */
static int field_pack(msgpack_packer *pk, const sg_msg *m, const msg_field *f)
{
    sg_msg *mm = (sg_msg *)m;
    uint32_t n;

    switch (f->kind) {
    case FK_VERSION:
    case FK_U32:
        return msgpack_pack_uint32(pk, *field_u32(mm, f));
    case FK_U64:
        return msgpack_pack_uint64(pk, *field_u64(mm, f));
    case FK_STR:
        n = *field_len(mm, f);
        if (msgpack_pack_str(pk, n) != 0)
            return -1;
        return n > 0 ? msgpack_pack_str_body(pk, *field_str(mm, f), n) : 0;
    case FK_BATCH:
        break;
    }
    assert(0);
    return -1;
}

/* Contract in sangam/frame.h. Returns 0; SG_EINVAL when m is not a message the decoder would
 * accept (unknown type, a version other than SG_PROTO_VERSION, a node id, code, text, secret or
 * PEM text that breaks its rule, a string pointer NULL with a length, a BATCH body that is empty or
 * not exactly one msgpack value); SG_ETOOBIG when a BATCH payload would exceed SG_FRAME_MAX;
 * SG_ENOMEM. On failure *out is NULL and *out_len 0. */
int sg_msg_encode(void **out, size_t *out_len, const sg_msg *m)
{
    static const char zero_header[SG_FRAME_HEADER] = {0};
    const msg_schema *s;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int rc;

    assert(out != NULL && out_len != NULL && m != NULL);
    *out = NULL;
    *out_len = 0;
    s = schema_of((int)m->type);
    if (s == NULL)
        return SG_EINVAL;
    if (m->type == SG_MSG_BATCH)
        return encode_batch(out, out_len, m);
    for (unsigned i = 0; i < s->nfields; i++)
        if ((rc = field_valid(m, &s->fields[i])) != 0)
            return rc;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_sbuffer_write(&sb, zero_header, sizeof(zero_header)) != 0 ||
        msgpack_pack_array(&pk, s->nfields + 1) != 0 ||
        msgpack_pack_uint8(&pk, (uint8_t)m->type) != 0)
        goto destroy_sbuffer;
    for (unsigned i = 0; i < s->nfields; i++)
        if (field_pack(&pk, m, &s->fields[i]) != 0)
            goto destroy_sbuffer;
    put_header((uint8_t *)sb.data, sb.size - SG_FRAME_HEADER);
    *out_len = sb.size;
    *out = msgpack_sbuffer_release(&sb);
    return 0;

destroy_sbuffer:
    msgpack_sbuffer_destroy(&sb);
    return SG_ENOMEM;
}
