/*
 * sangam/sbuf.h - a growable NUL-terminated string buffer for building URLs, query strings and
 * lines.
 *
 * Invariants: after sbuf_init, s is either NULL (nothing appended yet) or a NUL-terminated string
 * of len bytes in a cap-byte allocation owned by the sbuf. Appends that cannot allocate set the
 * sticky `failed` flag and leave the contents unchanged, so callers may append freely and check
 * once at the end.
 */
#ifndef SANGAM_SBUF_H
#define SANGAM_SBUF_H

#include <stddef.h>

typedef struct sbuf {
    char *s;    /* the string, or NULL while empty; owned */
    size_t len; /* bytes before the NUL */
    size_t cap; /* bytes allocated */
    int failed; /* 1 once an allocation failed */
} sbuf;

/* Makes b empty. */
void sbuf_init(sbuf *b);
/* Frees b's storage and makes it empty (NULL-safe). */
void sbuf_free(sbuf *b);
/* Appends n bytes of s. */
void sbuf_addn(sbuf *b, const char *s, size_t n);
/* Appends the NUL-terminated string s. */
void sbuf_add(sbuf *b, const char *s);
/* Appends printf-formatted text. */
void sbuf_addf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The contents as a string ("" while empty); valid until the next append or sbuf_free. */
const char *sbuf_str(const sbuf *b);

#endif
