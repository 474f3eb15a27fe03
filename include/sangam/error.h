/*
 * sangam/error.h - the one table of Sangam error codes, and the error context that carries a
 * human message up the call stack.
 *
 * Invariants: codes are negative, never renumbered and never reused; 0 is success. Every code
 * has a stable snake_case name (what the HTTP API and ERROR frames put in "code") and a short
 * default message. A function that fails returns the code and, when it was given an sg_err, fills
 * it with a message that says what went wrong and where; callers add their own context with
 * sg_err_wrap() as the error climbs ("import row 17: phone: longer than 32 characters").
 */
#ifndef SANGAM_ERROR_H
#define SANGAM_ERROR_H

#include <stdarg.h>
#include <stddef.h>

/* X(symbol, value, name, default message) */
#define SG_ERRNO_MAP(X)                                                                            \
    X(SG_ENOMEM, -1, "out_of_memory", "out of memory")                                             \
    X(SG_EINVAL, -2, "invalid_argument", "invalid argument")                                       \
    X(SG_EIO, -3, "io_error", "input/output error")                                                \
    X(SG_ECONFIG, -4, "bad_config", "bad configuration")                                           \
    X(SG_EDB, -5, "database_error", "database error")                                              \
    X(SG_ENOTFOUND, -6, "not_found", "no such record")                                             \
    X(SG_ECONFLICT, -7, "conflict", "conflicts with existing data")                                \
    X(SG_EVALIDATE, -8, "invalid_value", "a field value is not allowed")                           \
    X(SG_EUNKNOWN, -9, "unknown_field", "unknown field")                                           \
    X(SG_ETYPE, -10, "wrong_type", "a value has the wrong type")                                   \
    X(SG_ETOOBIG, -11, "too_big", "input exceeds a size limit")                                    \
    X(SG_ETRUNC, -12, "truncated", "input ends too early")                                         \
    X(SG_EDEPTH, -13, "too_deep", "input nests too deeply")                                        \
    X(SG_EFORMAT, -14, "malformed", "input is not well formed")                                    \
    X(SG_ETRAILING, -15, "trailing_bytes", "bytes follow the end of the message")                  \
    X(SG_EUNSUPPORTED, -16, "unsupported", "not supported")                                        \
    X(SG_EHTTP, -17, "bad_request", "malformed HTTP request")                                      \
    X(SG_ECSV, -18, "bad_csv", "malformed CSV")                                                    \
    X(SG_EREFERENCE, -19, "unknown_reference", "refers to a record that does not exist")           \
    X(SG_ESCHEMA, -20, "schema_mismatch", "database schema is not one this program knows")         \
    X(SG_EBUSY, -21, "busy", "resource busy")                                                      \
    X(SG_EREQUIRED, -22, "missing_field", "a required field is missing")                           \
    X(SG_EIMMUTABLE, -23, "immutable_field", "this field cannot be changed")                       \
    X(SG_EMETHOD, -24, "method_not_allowed", "method not allowed on this resource")                \
    X(SG_EFULL, -25, "disk_full", "the disk is full")                                              \
    X(SG_EPROTO, -26, "protocol_error", "message not allowed in this state of the session")        \
    X(SG_EAUTH, -27, "not_authorized", "the peer may not do this")                                 \
    X(SG_EQUARANTINE, -28, "quarantined", "changes refused and held for an operator")              \
    X(SG_EGAP, -29, "seq_gap", "changes are missing between the cursor and this batch")            \
    X(SG_ETLS, -30, "tls_error", "TLS failed")                                                     \
    X(SG_ECLOSED, -31, "closed", "the connection was closed")

enum {
    SG_OK = 0,
#define SG_ERR_ENUM(sym, val, name, msg) sym = (val),
    SG_ERRNO_MAP(SG_ERR_ENUM)
#undef SG_ERR_ENUM
};

/* The stable snake_case name of a code ("not_found"); "unknown_error" for a code not in the table.
 */
const char *sg_strerror_name(int code);
/* The code whose name is name[0..len) (as received in an ERROR frame), or SG_EINVAL. */
int sg_error_from_name(const char *name, size_t len);
/* The default one-line message of a code. */
const char *sg_strerror(int code);

#define SG_ERR_MSG_MAX 512

/* An error context: the code of the first failure and a message that grows context as it climbs. */
typedef struct sg_err {
    int code;                 /* 0 while no error was set */
    char msg[SG_ERR_MSG_MAX]; /* NUL-terminated, possibly truncated human text */
} sg_err;

/* Clears e (NULL-safe). */
void sg_err_clear(sg_err *e);
/* Sets code and a printf-formatted message; returns code so callers can `return sg_err_set(...)`.
 * e may be NULL, in which case only the code is returned. */
int sg_err_set(sg_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefixes the message with "<context>: "; keeps the code; returns it. NULL-safe. */
int sg_err_wrap(sg_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
