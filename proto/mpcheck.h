/*
 * mpcheck.h - a bounds-checked walk over one msgpack value that allocates nothing.
 *
 * Every decoder of untrusted msgpack runs this check before it hands the bytes to msgpack-c,
 * whose unpacker allocates what a header claims before it knows whether the bytes exist. Once
 * sg_mp_check() accepts a buffer, these invariants hold for the value it measured:
 *   - it is complete: every str/bin/ext payload and every array/map element lies inside the
 *     buffer, so no allocation sized by a header can exceed what the bytes can fill;
 *   - no str/bin/ext payload is longer than lim->max_len and no array or map has more than
 *     lim->max_count elements (a map's count is its number of key/value pairs);
 *   - containers nest at most lim->max_depth deep;
 *   - it contains no reserved byte 0xc1 where a header is expected.
 * The walk is iterative with a fixed stack of SG_MP_DEPTH_MAX levels: its time is linear in the
 * bytes it reads and its stack use is constant, whatever the input.
 */
#ifndef SANGAM_PROTO_MPCHECK_H
#define SANGAM_PROTO_MPCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "sangam/error.h"

/* The deepest nesting any caller may allow; deeper limits are treated as this one. */
#define SG_MP_DEPTH_MAX 64u

typedef struct sg_mp_limits {
    unsigned max_depth; /* containers nested inside one another: 0 allows scalars only, 1 allows
                           [1, 2] but not [[1]]; at most SG_MP_DEPTH_MAX */
    uint32_t max_len;   /* bytes of one str, bin or ext payload */
    uint32_t max_count; /* elements of one array, key/value pairs of one map */
} sg_mp_limits;

/* Measures the one msgpack value that starts at buf, reading no byte at or past buf + len.
 * On success returns 0 and sets *out_used to the value's size in bytes (which may be less than
 * len: the caller decides whether bytes may follow). On failure returns
 *   SG_ETRUNC   the value does not fit in len bytes (also for len == 0),
 *   SG_ETOOBIG  a length or count exceeds lim (checked before truncation, so a header that
 *               claims 4 GiB is refused as too big whatever the buffer holds),
 *   SG_EDEPTH   containers nest deeper than lim->max_depth,
 *   SG_EFORMAT  the reserved byte 0xc1 appears as a header,
 * leaves *out_used untouched, and fills err with the byte offset and the problem
 * ("at byte 12: array of 4294967295 elements exceeds the limit of 20000"). buf may be NULL only
 * when len is 0. */
int sg_mp_check(size_t *out_used, const void *buf, size_t len, const sg_mp_limits *lim,
                sg_err *err);

struct msgpack_object;
/* The msgpack type of o as named in error messages ("str", "uint"...), for the decoders that
 * walk msgpack-c's objects after sg_mp_check accepted the bytes. */
const char *sg_mp_type_name(const struct msgpack_object *o);

#endif
