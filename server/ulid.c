/*
 * ulid.c - ULID generation; see ulid.h for the ordering invariant.
 */
#include "ulid.h"

#include <string.h>

#include <openssl/rand.h>

#include "sangam/error.h"

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* Adds one to a big-endian 80-bit number; returns 1 on overflow. */
static int increment(uint8_t rnd[10])
{
    for (int i = 9; i >= 0; i--)
        if (++rnd[i] != 0)
            return 0;
    return 1;
}

int sg_ulid_next(char out[SG_ULID_LEN + 1], sg_ulid_gen *gen, uint64_t now_ms)
{
    uint8_t b[16];

    if (now_ms <= gen->last_ms) {
        /* Same millisecond, or the clock stepped back: stay after the last id. */
        now_ms = gen->last_ms;
        if (increment(gen->last_rnd))
            now_ms = ++gen->last_ms;
    } else if (RAND_bytes(gen->last_rnd, sizeof(gen->last_rnd)) != 1) {
        return SG_EIO;
    }
    gen->last_ms = now_ms;

    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(now_ms >> (8 * (5 - i)));
    memcpy(b + 6, gen->last_rnd, 10);

    /* 128 bits -> 26 base32 digits: the first digit carries the top 3 bits (2 bits padding). */
    for (int i = 0; i < SG_ULID_LEN; i++) {
        int bit = i * 5 - 2; /* position of this digit's first bit in b, from the top */
        unsigned v = 0;
        for (int k = 0; k < 5; k++, bit++) {
            v <<= 1;
            if (bit >= 0)
                v |= (b[bit / 8] >> (7 - bit % 8)) & 1u;
        }
        out[i] = crockford[v];
    }
    out[SG_ULID_LEN] = '\0';
    return 0;
}
