/*
 * sbuf.c - the growable string buffer of sbuf.h.
 *
 * Capacity doubles so n appends cost O(n) copies; every append keeps the NUL terminator.
 */
#include "sangam/sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sbuf_init(sbuf *b)
{
    b->s = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = 0;
}

void sbuf_free(sbuf *b)
{
    if (b == NULL)
        return;
    free(b->s);
    sbuf_init(b);
}

/* Makes room for extra more bytes plus the NUL; returns 0, or -1 (and sets failed). */
static int grow(sbuf *b, size_t extra)
{
    size_t need, cap;
    char *p;

    if (b->failed)
        return -1;
    if (extra > (size_t)-1 / 2 - b->len - 1) {
        b->failed = 1;
        return -1;
    }
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    p = realloc(b->s, cap);
    if (p == NULL) {
        b->failed = 1;
        return -1;
    }
    b->s = p;
    b->cap = cap;
    return 0;
}

void sbuf_addn(sbuf *b, const char *s, size_t n)
{
    if (grow(b, n) != 0)
        return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void sbuf_add(sbuf *b, const char *s)
{
    sbuf_addn(b, s, strlen(s));
}

void sbuf_addf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if (grow(b, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

const char *sbuf_str(const sbuf *b)
{
    return b->s != NULL ? b->s : "";
}
