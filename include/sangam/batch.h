/*
 * sangam/batch.h - change batches: the unit of replication, encoded as msgpack.
 *
 * The byte format is specified in proto/PROTOCOL.md. Decoding is strict and bounded: every
 * length and count is checked against the bytes that remain and against sg_batch_limits before
 * anything is allocated, so a hostile peer can make the decoder fail but never make it allocate
 * more than a small multiple of the input size, recurse deeply, or read out of bounds.
 *
 * Decoded strings point into the caller's input buffer (zero copy) and are NOT NUL-terminated:
 * the input must outlive the sg_batch.
 */
#ifndef SANGAM_BATCH_H
#define SANGAM_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "sangam/error.h"

typedef enum sg_vtype {
    SG_VAL_NIL = 0,
    SG_VAL_INT = 1,
    SG_VAL_STR = 2,
} sg_vtype;

typedef struct sg_value {
    sg_vtype type;
    int64_t i;     /* SG_VAL_INT */
    const char *s; /* SG_VAL_STR: bytes, not NUL-terminated */
    uint32_t len;  /* SG_VAL_STR: byte length */
} sg_value;

typedef struct sg_col {
    const char *name; /* column name, not NUL-terminated */
    uint32_t name_len;
    sg_value v;
} sg_col;

typedef enum sg_op {
    SG_OP_INSERT = 1,
    SG_OP_UPDATE = 2,
    SG_OP_DELETE = 3,
} sg_op;

typedef struct sg_change {
    uint64_t seq;      /* origin's change number, > 0, strictly increasing within a batch */
    uint64_t hlc;      /* hybrid logical clock: ms since epoch << 16 | logical counter */
    const char *table; /* not NUL-terminated */
    uint32_t table_len;
    const char *pk; /* row id, not NUL-terminated */
    uint32_t pk_len;
    sg_op op;
    sg_col *cols; /* INSERT/UPDATE: the column values set (>= 1); DELETE: NULL */
    uint32_t ncols;
} sg_change;

typedef struct sg_batch {
    const char *origin; /* the region that made these changes, not NUL-terminated */
    uint32_t origin_len;
    sg_change *changes;
    uint32_t nchanges;
    void *mem_; /* private: allocation owner */
} sg_batch;

typedef struct sg_batch_limits {
    size_t max_bytes;     /* whole encoded batch */
    uint32_t max_changes; /* changes in one batch */
    uint32_t max_cols;    /* columns in one change */
    uint32_t max_str;     /* bytes of one string value */
    uint32_t max_name;    /* bytes of a table name, column name, pk or origin */
} sg_batch_limits;

#define SG_BATCH_MAX_BYTES   (4u * 1024 * 1024)
#define SG_BATCH_MAX_CHANGES 20000u
#define SG_BATCH_MAX_COLS    64u
#define SG_BATCH_MAX_STR     65536u
#define SG_BATCH_MAX_NAME    64u

/* The defaults above. */
void sg_batch_limits_default(sg_batch_limits *out);

/* Decodes exactly len bytes of buf as one batch. lim NULL means the defaults. On success *out is
 * a batch to free with sg_batch_free(). On failure *out is NULL, the return is a negative SG_E*
 * code (SG_ETRUNC, SG_ETOOBIG, SG_ETYPE, SG_EFORMAT, SG_ETRAILING, SG_EDEPTH, SG_ENOMEM) and err
 * says where ("change 3: cols[2] (birth_year): expected int, str or nil, got float"). */
int sg_batch_decode(sg_batch **out, const void *buf, size_t len, const sg_batch_limits *lim,
                    sg_err *err);
/* NULL-safe. */
void sg_batch_free(sg_batch *b);

/* An encoder appends changes to a growing buffer; opaque. */
typedef struct sg_batch_enc sg_batch_enc;

/* Starts a batch from origin (NUL-terminated). */
int sg_batch_enc_new(sg_batch_enc **out, const char *origin);
/* Appends one change; cols are ignored for SG_OP_DELETE. */
int sg_batch_enc_add(sg_batch_enc *enc, const sg_change *c);
/* Number of changes and bytes appended so far (for flushing by size). */
uint32_t sg_batch_enc_count(const sg_batch_enc *enc);
size_t sg_batch_enc_size(const sg_batch_enc *enc);
/* Finishes the batch: *out_buf and *out_len stay valid until the encoder is freed or reset. */
int sg_batch_enc_finish(sg_batch_enc *enc, const void **out_buf, size_t *out_len);
/* Empties the encoder for the next batch from the same origin. */
void sg_batch_enc_reset(sg_batch_enc *enc);
/* NULL-safe. */
void sg_batch_enc_free(sg_batch_enc *enc);

#endif
