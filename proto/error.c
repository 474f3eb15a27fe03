/*
 * error.c - names and messages of the SG_E* codes, and the sg_err context helpers.
 * The table in sangam/error.h is the only place codes are defined.
 */
#include "sangam/error.h"

#include <stdio.h>
#include <string.h>

const char *sg_strerror_name(int code)
{
    switch (code) {
    case SG_OK:
        return "ok";
#define SG_ERR_NAME(sym, val, name, msg)                                                           \
    case sym:                                                                                      \
        return name;
        SG_ERRNO_MAP(SG_ERR_NAME)
#undef SG_ERR_NAME
    default:
        return "unknown_error";
    }
}

int sg_error_from_name(const char *name, size_t len)
{
#define SG_ERR_FROM(sym, val, nm, msg)                                                             \
    if (len == sizeof(nm) - 1 && memcmp(name, nm, len) == 0)                                       \
        return sym;
    SG_ERRNO_MAP(SG_ERR_FROM)
#undef SG_ERR_FROM
    return SG_EINVAL;
}

const char *sg_strerror(int code)
{
    switch (code) {
    case SG_OK:
        return "success";
#define SG_ERR_MSG(sym, val, name, msg)                                                            \
    case sym:                                                                                      \
        return msg;
        SG_ERRNO_MAP(SG_ERR_MSG)
#undef SG_ERR_MSG
    default:
        return "unknown error";
    }
}

void sg_err_clear(sg_err *e)
{
    if (e == NULL)
        return;
    e->code = 0;
    e->msg[0] = '\0';
}

int sg_err_set(sg_err *e, int code, const char *fmt, ...)
{
    va_list ap;

    if (e == NULL)
        return code;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return code;
}

int sg_err_wrap(sg_err *e, const char *fmt, ...)
{
    char prefix[SG_ERR_MSG_MAX];
    char old[SG_ERR_MSG_MAX];
    va_list ap;

    if (e == NULL)
        return SG_EINVAL;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof(old));
    if (old[0] == '\0')
        snprintf(e->msg, sizeof(e->msg), "%s: %s", prefix, sg_strerror(e->code));
    else
        snprintf(e->msg, sizeof(e->msg), "%s: %s", prefix, old);
    return e->code;
}
