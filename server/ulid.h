/*
 * ulid.h - time-ordered, globally unique record ids (ULID: 48-bit milliseconds since the Unix
 * epoch, then 80 random bits from OpenSSL's RAND_bytes, in Crockford base32, 26 characters).
 *
 * Invariant: ids made by one generator are strictly increasing, even within one millisecond or
 * when the wall clock steps back (the last id's time is kept and its random part incremented),
 * so sorting by id is sorting by creation order on that node.
 */
#ifndef SANGAM_ULID_H
#define SANGAM_ULID_H

#include <stdint.h>

#define SG_ULID_LEN 26

typedef struct sg_ulid_gen {
    uint64_t last_ms;     /* time part of the last id */
    uint8_t last_rnd[10]; /* random part of the last id */
} sg_ulid_gen;

/* Writes a new id and a NUL into out. now_ms is the current time (ms since epoch). Returns 0, or
 * SG_EIO if the random generator failed. */
int sg_ulid_next(char out[SG_ULID_LEN + 1], sg_ulid_gen *gen, uint64_t now_ms);

#endif
