/*
 * batch.c - change batches (sangam/batch.h): the msgpack encoder and the strict decoder.
 *
 * Decoding runs in three steps, and nothing is allocated before the first has passed:
 *   1. sg_mp_check() walks the whole input without allocating: nesting is at most BATCH_DEPTH,
 *      every length and count fits in the bytes that remain (each element costs at least one
 *      byte), and exactly one value fills the input.
 *   2. msgpack_unpack_next() builds the object tree in a zone: 24 bytes per msgpack_object, 48 per
 *      map pair, so after step 1 it cannot be made to allocate more than about 24 bytes per
 *      input byte (32 measured with the zone's chunk rounding). Its str objects point into the
 *      caller's buffer (zero copy), and so do the decoded sg_batch strings.
 *   3. Typed extraction fills one allocation holding the sg_batch, its sg_change array, all
 *      sg_col arrays and the scratch table used to find duplicate columns; change_check() then
 *      applies the value rules. The encoder applies the same change_check() (with the default
 *      limits) before it appends, so whatever it writes the default decoder accepts.
 * Peak memory of one decode is therefore about 30 times the input at worst (27x measured for a
 * valid 4 MB batch of 64-column changes, 32x for a hostile one); lim->max_bytes is the lever.
 * Error codes: a value of the wrong msgpack type is SG_ETYPE; a value of the right type that
 * breaks a rule (count of elements, seq order, characters, duplicates) is SG_EFORMAT; a length
 * or count over a limit is SG_ETOOBIG. proto/PROTOCOL.md lists them per field.
 */
#include "sangam/batch.h"

#include <assert.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "mpcheck.h"
#include "sangam/records.h"

/* A valid batch nests 4 containers deep (batch, changes, change, cols). The slack lets a
 * misplaced container be reported as the type error it is rather than as a depth error, and stays
 * far below msgpack-c's own stack of MSGPACK_EMBED_STACK_SIZE (32) levels. */
#define BATCH_DEPTH 8u

/* Elements of a change array: [seq, hlc, table, pk, op, cols]. */
#define CHANGE_FIELDS 6u

struct sg_batch_enc {
    msgpack_sbuffer sbuf; /* the batch so far; owned */
    msgpack_packer pk;    /* writes into sbuf */
    size_t count_at;      /* offset of the 4-byte count of the array32 of changes */
    size_t head_len;      /* bytes before the first change (what reset keeps) */
    uint32_t count;       /* changes appended */
    uint64_t last_seq;    /* seq of the last change appended, 0 before the first */
};

void sg_batch_limits_default(sg_batch_limits *out)
{
    out->max_bytes = SG_BATCH_MAX_BYTES;
    out->max_changes = SG_BATCH_MAX_CHANGES;
    out->max_cols = SG_BATCH_MAX_COLS;
    out->max_str = SG_BATCH_MAX_STR;
    out->max_name = SG_BATCH_MAX_NAME;
}

/* ---- rules shared by the encoder and the decoder ---- */

/* 1 if s (len bytes, len >= 1) is made only of [a-z0-9_], else 0. */
static int colname_chars_ok(const char *s, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

/* Writes " (name)" into buf when the column name is printable by the rules, else "". Returns buf.
 * Keeps messages free of hostile bytes. */
static const char *col_label(char *buf, size_t cap, const char *name, uint32_t len)
{
    buf[0] = '\0';
    if (len >= 1 && len <= SG_BATCH_MAX_NAME && colname_chars_ok(name, len))
        snprintf(buf, cap, " (%.*s)", (int)len, name);
    return buf;
}

/* 64-bit FNV-1a of a column name, for the duplicate table. */
static uint64_t name_hash(const char *s, uint32_t len)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (uint32_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3u;
    }
    return h;
}

/* Number of hash slots for n columns: the least power of two >= 2n (>= 2; at most 2^33). */
static uint64_t dup_slots(uint32_t n)
{
    uint64_t s = 2;
    while (s < 2 * (uint64_t)n)
        s *= 2;
    return s;
}

/* Finds two columns with the same name among cols[0..n). slots must have dup_slots(n) entries; it
 * is scratch. Returns 1 and sets *out_first < *out_second when a duplicate exists, else 0. Linear
 * in n and in the name bytes. */
static int cols_find_dup(uint32_t *out_first, uint32_t *out_second, const sg_col *cols, uint32_t n,
                         uint32_t *slots)
{
    uint64_t nslots = dup_slots(n);

    memset(slots, 0, (size_t)nslots * sizeof(*slots));
    for (uint32_t i = 0; i < n; i++) {
        uint64_t at = name_hash(cols[i].name, cols[i].name_len) & (nslots - 1);
        /* slots hold index + 1; 0 is empty. At most n of 2n slots fill, so the probe ends. */
        while (slots[at] != 0) {
            const sg_col *o = &cols[slots[at] - 1];
            if (o->name_len == cols[i].name_len &&
                memcmp(o->name, cols[i].name, cols[i].name_len) == 0) {
                *out_first = slots[at] - 1;
                *out_second = i;
                return 1;
            }
            at = (at + 1) & (nslots - 1);
        }
        slots[at] = i + 1;
    }
    return 0;
}

/* Checks the value rules of one change whose fields are already typed: seq positive and above
 * prev_seq, table and pk lengths and characters, op known, columns present for insert/update with
 * valid unique names and strings within lim. slots is scratch of dup_slots(c->ncols) entries
 * (unused for deletes). Returns 0, or SG_EFORMAT / SG_ETOOBIG with err saying which field. */
static int change_check(const sg_change *c, uint64_t prev_seq, const sg_batch_limits *lim,
                        uint32_t *slots, sg_err *err)
{
    char label[SG_BATCH_MAX_NAME + 8];
    uint32_t first, second;

    if (c->seq == 0)
        return sg_err_set(err, SG_EFORMAT, "seq: must be positive, got 0");
    if (c->seq <= prev_seq)
        return sg_err_set(err, SG_EFORMAT,
                          "seq: %" PRIu64 " does not follow %" PRIu64 " (seqs must increase)",
                          c->seq, prev_seq);
    if (c->table_len == 0)
        return sg_err_set(err, SG_EFORMAT, "table: empty name");
    if (c->table_len > lim->max_name)
        return sg_err_set(err, SG_ETOOBIG,
                          "table: name of %" PRIu32 " bytes exceeds the limit of %" PRIu32,
                          c->table_len, lim->max_name);
    if (c->pk_len > lim->max_name)
        return sg_err_set(err, SG_ETOOBIG, "pk: %" PRIu32 " bytes exceeds the limit of %" PRIu32,
                          c->pk_len, lim->max_name);
    if (!sg_record_id_valid(c->pk, c->pk_len))
        return sg_err_set(err, SG_EFORMAT, "pk: not a record id (1..%d of [0-9A-Za-z_-])",
                          SG_ID_MAX);
    if (c->op != SG_OP_INSERT && c->op != SG_OP_UPDATE && c->op != SG_OP_DELETE)
        return sg_err_set(err, SG_EFORMAT, "op: %d is not 1 (insert), 2 (update) or 3 (delete)",
                          (int)c->op);
    if (c->op == SG_OP_DELETE)
        return 0;

    if (c->ncols == 0)
        return sg_err_set(err, SG_EFORMAT, "cols: an %s must set at least one column",
                          c->op == SG_OP_INSERT ? "insert" : "update");
    if (c->ncols > lim->max_cols)
        return sg_err_set(err, SG_ETOOBIG,
                          "cols: %" PRIu32 " columns exceeds the limit of %" PRIu32, c->ncols,
                          lim->max_cols);
    for (uint32_t j = 0; j < c->ncols; j++) {
        const sg_col *col = &c->cols[j];

        if (col->name_len == 0)
            return sg_err_set(err, SG_EFORMAT, "cols[%" PRIu32 "]: empty column name", j);
        if (col->name_len > lim->max_name)
            return sg_err_set(err, SG_ETOOBIG,
                              "cols[%" PRIu32 "]: name of %" PRIu32
                              " bytes exceeds the limit of %" PRIu32,
                              j, col->name_len, lim->max_name);
        if (!colname_chars_ok(col->name, col->name_len))
            return sg_err_set(err, SG_EFORMAT, "cols[%" PRIu32 "]: name is not made of [a-z0-9_]",
                              j);
        switch (col->v.type) {
        case SG_VAL_NIL:
        case SG_VAL_INT:
            break;
        case SG_VAL_STR:
            if (col->v.len > lim->max_str)
                return sg_err_set(err, SG_ETOOBIG,
                                  "cols[%" PRIu32 "]%s: string of %" PRIu32
                                  " bytes exceeds the limit of %" PRIu32,
                                  j, col_label(label, sizeof(label), col->name, col->name_len),
                                  col->v.len, lim->max_str);
            break;
        default:
            return sg_err_set(err, SG_EFORMAT, "cols[%" PRIu32 "]%s: unknown value type %d", j,
                              col_label(label, sizeof(label), col->name, col->name_len),
                              (int)col->v.type);
        }
    }
    if (cols_find_dup(&first, &second, c->cols, c->ncols, slots)) {
        col_label(label, sizeof(label), c->cols[second].name, c->cols[second].name_len);
        return sg_err_set(err, SG_EFORMAT,
                          "cols[%" PRIu32 "]%s: duplicate column (also cols[%" PRIu32 "])", second,
                          label, first);
    }
    return 0;
}

/* ---- decoder ---- */

/* Reads a str object into *out_s and *out_len; SG_ETYPE (naming field what) for other types. */
static int get_str(const char **out_s, uint32_t *out_len, const msgpack_object *o, const char *what,
                   sg_err *err)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return sg_err_set(err, SG_ETYPE, "%s: expected str, got %s", what, sg_mp_type_name(o));
    *out_s = o->via.str.ptr;
    *out_len = o->via.str.size;
    return 0;
}

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

/* Reads the value of column j (named by col) into col->v: nil, an integer that fits int64, or a
 * str (its length is checked later). */
static int get_value(sg_col *col, const msgpack_object *o, uint32_t j, sg_err *err)
{
    char label[SG_BATCH_MAX_NAME + 8];
    sg_value *out = &col->v;

    memset(out, 0, sizeof(*out));
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        out->type = SG_VAL_NIL;
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return sg_err_set(
                err, SG_ETYPE, "cols[%" PRIu32 "]%s: integer %" PRIu64 " does not fit in int64", j,
                col_label(label, sizeof(label), col->name, col->name_len), o->via.u64);
        out->type = SG_VAL_INT;
        out->i = (int64_t)o->via.u64;
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        out->type = SG_VAL_INT;
        out->i = o->via.i64;
        return 0;
    case MSGPACK_OBJECT_STR:
        out->type = SG_VAL_STR;
        out->s = o->via.str.ptr;
        out->len = o->via.str.size;
        return 0;
    default:
        return sg_err_set(err, SG_ETYPE, "cols[%" PRIu32 "]%s: expected int, str or nil, got %s", j,
                          col_label(label, sizeof(label), col->name, col->name_len),
                          sg_mp_type_name(o));
    }
}

/* Number of sg_col entries that change object o can need: the size of its cols map when o has the
 * shape of a change and the map is within max_cols, else 0 (such a change fails before it
 * stores any column). */
static uint32_t change_ncols_bound(const msgpack_object *o, uint32_t max_cols)
{
    const msgpack_object *cols;

    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != CHANGE_FIELDS)
        return 0;
    cols = &o->via.array.ptr[5];
    if (cols->type != MSGPACK_OBJECT_MAP || cols->via.map.size > max_cols)
        return 0;
    return cols->via.map.size;
}

/* Fills *c from change object o, storing its columns in cols (room for
 * change_ncols_bound(o, lim->max_cols) entries); then applies change_check(). Returns 0 or an
 * error whose message names the field (the caller adds "change i"). */
static int change_extract(sg_change *c, sg_col *cols, const msgpack_object *o, uint64_t prev_seq,
                          const sg_batch_limits *lim, uint32_t *slots, sg_err *err)
{
    const msgpack_object *f;
    const msgpack_object *co;
    uint64_t op;
    int rc;

    memset(c, 0, sizeof(*c));
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return sg_err_set(err, SG_ETYPE, "expected array, got %s", sg_mp_type_name(o));
    if (o->via.array.size != CHANGE_FIELDS)
        return sg_err_set(err, SG_EFORMAT,
                          "expected 6 elements [seq, hlc, table, pk, op, cols], got %" PRIu32,
                          o->via.array.size);
    f = o->via.array.ptr;
    if ((rc = get_uint(&c->seq, &f[0], "seq", err)) != 0)
        return rc;
    if ((rc = get_uint(&c->hlc, &f[1], "hlc", err)) != 0)
        return rc;
    if ((rc = get_str(&c->table, &c->table_len, &f[2], "table", err)) != 0)
        return rc;
    if ((rc = get_str(&c->pk, &c->pk_len, &f[3], "pk", err)) != 0)
        return rc;
    if (f[4].type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return sg_err_set(err, SG_EFORMAT,
                          "op: %" PRId64 " is not 1 (insert), 2 (update) or 3 (delete)",
                          f[4].via.i64);
    if (f[4].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return sg_err_set(err, SG_ETYPE, "op: expected int 1..3, got %s", sg_mp_type_name(&f[4]));
    op = f[4].via.u64;
    if (op < SG_OP_INSERT || op > SG_OP_DELETE)
        return sg_err_set(err, SG_EFORMAT,
                          "op: %" PRIu64 " is not 1 (insert), 2 (update) or 3 (delete)", op);
    c->op = (sg_op)op;

    co = &f[5];
    if (c->op == SG_OP_DELETE) {
        if (co->type != MSGPACK_OBJECT_NIL)
            return sg_err_set(err, SG_ETYPE, "cols: expected nil for a delete, got %s",
                              sg_mp_type_name(co));
    } else {
        const char *opname = c->op == SG_OP_INSERT ? "insert" : "update";
        if (co->type != MSGPACK_OBJECT_MAP)
            return sg_err_set(err, SG_ETYPE, "cols: expected map for an %s, got %s", opname,
                              sg_mp_type_name(co));
        if (co->via.map.size > lim->max_cols)
            return sg_err_set(err, SG_ETOOBIG,
                              "cols: %" PRIu32 " columns exceeds the limit of %" PRIu32,
                              co->via.map.size, lim->max_cols);
        assert(co->via.map.size == change_ncols_bound(o, lim->max_cols));
        for (uint32_t j = 0; j < co->via.map.size; j++) {
            const msgpack_object_kv *kv = &co->via.map.ptr[j];

            if (kv->key.type != MSGPACK_OBJECT_STR)
                return sg_err_set(err, SG_ETYPE, "cols[%" PRIu32 "]: expected str key, got %s", j,
                                  sg_mp_type_name(&kv->key));
            cols[j].name = kv->key.via.str.ptr;
            cols[j].name_len = kv->key.via.str.size;
            if ((rc = get_value(&cols[j], &kv->val, j, err)) != 0)
                return rc;
        }
        c->cols = cols;
        c->ncols = co->via.map.size;
    }
    return change_check(c, prev_seq, lim, slots, err);
}

/* Rounds n up to the strictest alignment of the block's parts. */
static size_t block_align(size_t n)
{
    size_t a = alignof(max_align_t);
    return (n + a - 1) / a * a;
}

/* Turns the unpacked tree root into a batch allocated in one block. buf/len is the input the
 * tree's strings must point into. */
static int batch_extract(sg_batch **out, const msgpack_object *root, const void *buf, size_t len,
                         const sg_batch_limits *lim, sg_err *err)
{
    const msgpack_object *origin, *changes;
    sg_batch *b = NULL;
    sg_change *chg;
    sg_col *cols;
    uint32_t *slots;
    uint64_t total_cols = 0, prev_seq = 0, size64;
    uint32_t n, max_ncols = 0;
    size_t off_changes, off_cols, off_slots, size;
    int rc;

    if (root->type != MSGPACK_OBJECT_ARRAY)
        return sg_err_set(err, SG_ETYPE, "batch: expected array [origin, changes], got %s",
                          sg_mp_type_name(root));
    if (root->via.array.size != 2)
        return sg_err_set(err, SG_EFORMAT,
                          "batch: expected 2 elements [origin, changes], got %" PRIu32,
                          root->via.array.size);
    origin = &root->via.array.ptr[0];
    changes = &root->via.array.ptr[1];
    if (origin->type != MSGPACK_OBJECT_STR)
        return sg_err_set(err, SG_ETYPE, "origin: expected str, got %s", sg_mp_type_name(origin));
    if (origin->via.str.size > lim->max_name)
        return sg_err_set(err, SG_ETOOBIG,
                          "origin: %" PRIu32 " bytes exceeds the limit of %" PRIu32,
                          origin->via.str.size, lim->max_name);
    if (!sg_region_id_valid(origin->via.str.ptr, origin->via.str.size))
        return sg_err_set(err, SG_EFORMAT,
                          "origin: not a region id (1..%d of [a-z0-9-], not starting with '-')",
                          SG_REGION_MAX);
    /* msgpack-c's C unpacker references str bytes in its input. The batch keeps those pointers
     * after the tree is freed, so a build of msgpack-c that copied them would leave the batch
     * dangling: refuse to work with it rather than trust it. */
    if (origin->via.str.ptr < (const char *)buf ||
        origin->via.str.ptr + origin->via.str.size > (const char *)buf + len)
        return sg_err_set(err, SG_EUNSUPPORTED,
                          "batch: msgpack-c copied a string; zero-copy "
                          "decoding needs it to reference the input");
    if (changes->type != MSGPACK_OBJECT_ARRAY)
        return sg_err_set(err, SG_ETYPE, "changes: expected array, got %s",
                          sg_mp_type_name(changes));
    n = changes->via.array.size;
    if (n == 0)
        return sg_err_set(err, SG_EFORMAT, "changes: a batch holds at least one change");
    if (n > lim->max_changes)
        return sg_err_set(err, SG_ETOOBIG,
                          "changes: %" PRIu32 " changes exceeds the limit of %" PRIu32, n,
                          lim->max_changes);

    /* Size the block. Every count below is bounded by the input size (sg_mp_check), so the sum
     * cannot overflow a 64-bit size_t; the check keeps 32-bit builds honest. */
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = change_ncols_bound(&changes->via.array.ptr[i], lim->max_cols);
        total_cols += k;
        if (k > max_ncols)
            max_ncols = k;
    }
    off_changes = block_align(sizeof(sg_batch));
    size64 = (uint64_t)n * sizeof(sg_change) + total_cols * sizeof(sg_col) +
             dup_slots(max_ncols) * sizeof(uint32_t) + 4 * alignof(max_align_t);
    if ((size_t)size64 != size64)
        return sg_err_set(err, SG_ENOMEM, "batch: too large for this machine");
    off_cols = block_align(off_changes + (size_t)n * sizeof(sg_change));
    off_slots = block_align(off_cols + (size_t)total_cols * sizeof(sg_col));
    size = off_slots + (size_t)dup_slots(max_ncols) * sizeof(uint32_t);

    b = malloc(size);
    if (b == NULL)
        return sg_err_set(err, SG_ENOMEM, "batch: cannot allocate %zu bytes", size);
    chg = (sg_change *)((char *)b + off_changes);
    cols = (sg_col *)((char *)b + off_cols);
    slots = (uint32_t *)((char *)b + off_slots);
    b->origin = origin->via.str.ptr;
    b->origin_len = origin->via.str.size;
    b->changes = chg;
    b->nchanges = n;
    b->mem_ = b;

    for (uint32_t i = 0; i < n; i++) {
        rc = change_extract(&chg[i], cols, &changes->via.array.ptr[i], prev_seq, lim, slots, err);
        if (rc != 0) {
            sg_err_wrap(err, "change %" PRIu32, i);
            goto free_block;
        }
        prev_seq = chg[i].seq;
        cols += chg[i].ncols;
    }
    assert((char *)cols <= (char *)b + off_slots);
    *out = b;
    return 0;

free_block:
    free(b);
    return rc;
}

/* Contract in sangam/batch.h; the three steps are described at the top of this file. */
int sg_batch_decode(sg_batch **out, const void *buf, size_t len, const sg_batch_limits *lim,
                    sg_err *err)
{
    sg_batch_limits deflim;
    sg_mp_limits mpl;
    msgpack_unpacked up;
    msgpack_unpack_return ur;
    size_t used = 0, off = 0;
    int rc;

    assert(out != NULL);
    *out = NULL;
    if (lim == NULL) {
        sg_batch_limits_default(&deflim);
        lim = &deflim;
    }
    if (buf == NULL && len > 0)
        return sg_err_set(err, SG_EINVAL, "batch: no buffer");
    if (len > lim->max_bytes)
        return sg_err_set(err, SG_ETOOBIG, "batch: %zu bytes exceeds the limit of %zu", len,
                          lim->max_bytes);

    /* Step 1 bounds depth and makes every length and count fit in the input, which is what
     * bounds allocation. It leaves the per-field limits (max_str, max_changes, ...) to
     * extraction, which can name the field and the change that exceeds them. */
    mpl.max_depth = BATCH_DEPTH;
    mpl.max_len = UINT32_MAX;
    mpl.max_count = UINT32_MAX;
    rc = sg_mp_check(&used, buf, len, &mpl, err);
    if (rc != 0)
        return rc;
    if (used != len)
        return sg_err_set(err, SG_ETRAILING, "batch: %zu trailing byte(s) after the %zu-byte batch",
                          len - used, used);

    msgpack_unpacked_init(&up);
    ur = msgpack_unpack_next(&up, buf, len, &off);
    if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
        rc = sg_err_set(err, SG_ENOMEM, "batch: out of memory unpacking %zu bytes", len);
        goto destroy_unpacked;
    }
    if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
        /* sg_mp_check accepted what msgpack-c refused: a disagreement between the two parsers,
         * reported rather than asserted because the bytes came from outside. */
        rc = sg_err_set(err, SG_EFORMAT, "batch: msgpack-c refused the input (%d at byte %zu)",
                        (int)ur, off);
        goto destroy_unpacked;
    }
    rc = batch_extract(out, &up.data, buf, len, lim, err);

destroy_unpacked:
    msgpack_unpacked_destroy(&up);
    return rc;
}

void sg_batch_free(sg_batch *b)
{
    if (b == NULL)
        return;
    free(b->mem_);
}

/* ---- encoder ---- */

/* Starts a batch: writes the header with a placeholder count. SG_EINVAL when origin is NULL or not
 * a region id (the decoder would refuse the batch), SG_ENOMEM; *out is NULL on failure. */
int sg_batch_enc_new(sg_batch_enc **out, const char *origin)
{
    sg_batch_enc *enc = NULL;
    static const char count32[5] = {(char)0xdd, 0, 0, 0, 0};
    size_t olen;

    assert(out != NULL);
    *out = NULL;
    if (origin == NULL)
        return SG_EINVAL;
    olen = strlen(origin);
    if (!sg_region_id_valid(origin, olen))
        return SG_EINVAL;
    enc = calloc(1, sizeof(*enc));
    if (enc == NULL)
        return SG_ENOMEM;
    msgpack_sbuffer_init(&enc->sbuf);
    msgpack_packer_init(&enc->pk, &enc->sbuf, msgpack_sbuffer_write);
    if (msgpack_pack_array(&enc->pk, 2) != 0 || msgpack_pack_str(&enc->pk, olen) != 0 ||
        msgpack_pack_str_body(&enc->pk, origin, olen) != 0)
        goto free_enc;
    enc->count_at = enc->sbuf.size + 1;
    /* array32 whatever the count, so finish can patch the count in place. */
    if (msgpack_sbuffer_write(&enc->sbuf, count32, sizeof(count32)) != 0)
        goto free_enc;
    enc->head_len = enc->sbuf.size;
    *out = enc;
    return 0;

free_enc:
    sg_batch_enc_free(enc);
    return SG_ENOMEM;
}

/* Appends the msgpack of one change that change_check() accepted. Returns 0 or -1 (no memory). */
static int enc_pack_change(sg_batch_enc *enc, const sg_change *c)
{
    msgpack_packer *pk = &enc->pk;

    if (msgpack_pack_array(pk, CHANGE_FIELDS) != 0 || msgpack_pack_uint64(pk, c->seq) != 0 ||
        msgpack_pack_uint64(pk, c->hlc) != 0 || msgpack_pack_str(pk, c->table_len) != 0 ||
        msgpack_pack_str_body(pk, c->table, c->table_len) != 0 ||
        msgpack_pack_str(pk, c->pk_len) != 0 || msgpack_pack_str_body(pk, c->pk, c->pk_len) != 0 ||
        msgpack_pack_uint8(pk, (uint8_t)c->op) != 0)
        return -1;
    if (c->op == SG_OP_DELETE)
        return msgpack_pack_nil(pk);
    if (msgpack_pack_map(pk, c->ncols) != 0)
        return -1;
    for (uint32_t j = 0; j < c->ncols; j++) {
        const sg_col *col = &c->cols[j];
        int r;

        if (msgpack_pack_str(pk, col->name_len) != 0 ||
            msgpack_pack_str_body(pk, col->name, col->name_len) != 0)
            return -1;
        switch (col->v.type) {
        case SG_VAL_NIL:
            r = msgpack_pack_nil(pk);
            break;
        case SG_VAL_INT:
            r = msgpack_pack_int64(pk, col->v.i);
            break;
        default:
            assert(col->v.type == SG_VAL_STR);
            r = msgpack_pack_str(pk, col->v.len);
            if (r == 0)
                r = msgpack_pack_str_body(pk, col->v.s, col->v.len);
            break;
        }
        if (r != 0)
            return -1;
    }
    return 0;
}

/* Appends c. Returns 0; SG_EINVAL when c breaks a rule of the format or a per-change default
 * limit (the decoder would refuse it; retrying cannot help); SG_ETOOBIG when the batch already
 * holds SG_BATCH_MAX_CHANGES changes or c would take it past SG_BATCH_MAX_BYTES (finish and send
 * this batch, reset, add c again: if the encoder was empty, c alone is too big to send);
 * SG_ENOMEM. On any failure the encoder is as it was before the call. */
int sg_batch_enc_add(sg_batch_enc *enc, const sg_change *c)
{
    uint32_t slots[2 * SG_BATCH_MAX_COLS];
    sg_batch_limits lim;
    sg_change copy;
    size_t before;

    assert(enc != NULL && c != NULL);
    sg_batch_limits_default(&lim);
    copy = *c;
    if (copy.op == SG_OP_DELETE) {
        copy.cols = NULL;
        copy.ncols = 0;
    }
    if ((copy.table == NULL && copy.table_len > 0) || (copy.pk == NULL && copy.pk_len > 0) ||
        (copy.cols == NULL && copy.ncols > 0))
        return SG_EINVAL;
    for (uint32_t j = 0; j < copy.ncols; j++)
        if ((copy.cols[j].name == NULL && copy.cols[j].name_len > 0) ||
            (copy.cols[j].v.type == SG_VAL_STR && copy.cols[j].v.s == NULL &&
             copy.cols[j].v.len > 0))
            return SG_EINVAL;
    if (change_check(&copy, enc->last_seq, &lim, slots, NULL) != 0)
        return SG_EINVAL;
    if (enc->count >= SG_BATCH_MAX_CHANGES)
        return SG_ETOOBIG;

    before = enc->sbuf.size;
    if (enc_pack_change(enc, &copy) != 0) {
        enc->sbuf.size = before;
        return SG_ENOMEM;
    }
    if (enc->sbuf.size > SG_BATCH_MAX_BYTES) {
        enc->sbuf.size = before;
        return SG_ETOOBIG;
    }
    enc->count++;
    enc->last_seq = copy.seq;
    return 0;
}

uint32_t sg_batch_enc_count(const sg_batch_enc *enc)
{
    return enc->count;
}

size_t sg_batch_enc_size(const sg_batch_enc *enc)
{
    return enc->sbuf.size;
}

/* Patches the change count into the header and returns the whole batch. SG_EINVAL when no change
 * was added (an empty batch is not valid). Adding more changes afterwards is allowed; finish again
 * to get the longer batch. */
int sg_batch_enc_finish(sg_batch_enc *enc, const void **out_buf, size_t *out_len)
{
    unsigned char *p;

    assert(enc != NULL && out_buf != NULL && out_len != NULL);
    if (enc->count == 0)
        return SG_EINVAL;
    p = (unsigned char *)enc->sbuf.data + enc->count_at;
    p[0] = (unsigned char)(enc->count >> 24);
    p[1] = (unsigned char)(enc->count >> 16);
    p[2] = (unsigned char)(enc->count >> 8);
    p[3] = (unsigned char)enc->count;
    *out_buf = enc->sbuf.data;
    *out_len = enc->sbuf.size;
    return 0;
}

void sg_batch_enc_reset(sg_batch_enc *enc)
{
    enc->sbuf.size = enc->head_len;
    enc->count = 0;
    enc->last_seq = 0;
}

void sg_batch_enc_free(sg_batch_enc *enc)
{
    if (enc == NULL)
        return;
    msgpack_sbuffer_destroy(&enc->sbuf);
    free(enc);
}
