/*
 * sangam/records.h - the coalition's record types, declared once.
 *
 * This table is the single description of every replicated table's user-settable fields: the
 * node's API validates requests with it, the CLI derives its flags from it, CSV import maps
 * columns with it, and the replication decoder (proto/) checks changes against it. The SQL in
 * server/schema.sql must agree with it; tests/unit/test_store.c checks that they do.
 *
 * Every record also has four columns that are not listed here because every table has them:
 * id (a ULID made on the owning node), region (the owning region), created_at and updated_at
 * (UTC, "YYYY-MM-DDTHH:MM:SS.mmmZ").
 */
#ifndef SANGAM_RECORDS_H
#define SANGAM_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "sangam/error.h"

typedef enum sg_ftype {
    SG_FT_TEXT, /* free text, at most max_len bytes of UTF-8 */
    SG_FT_INT,  /* integer in [min, max] */
    SG_FT_DATE, /* calendar date YYYY-MM-DD */
    SG_FT_ENUM, /* one of values[] */
    SG_FT_REF,  /* id of a row in table ref */
} sg_ftype;

enum {
    SG_F_REQUIRED = 1 << 0, /* must be given on create (and may not be cleared) */
    SG_F_FIXED = 1 << 1,    /* set on create only; an update may not change it */
    SG_F_SERVER = 1 << 2,   /* set by the node (e.g. by an issue update), never by a client */
    SG_F_SEARCH = 1 << 3,   /* matched by the list filter q= (substring, case-insensitive) */
    SG_F_PHONE = 1 << 4,    /* text restricted to digits, '+', '-', ' ', '(', ')' */
};

typedef struct sg_field {
    const char *name;          /* SQL column and JSON key */
    const char *flag;          /* CLI flag without the leading "--" */
    sg_ftype type;             /* what values are allowed */
    unsigned flags;            /* SG_F_* bits */
    const char *const *values; /* SG_FT_ENUM: NULL-terminated list of allowed values */
    const char *ref;           /* SG_FT_REF: the referenced table */
    int64_t min, max;          /* SG_FT_INT: inclusive range; SG_FT_TEXT: max = max bytes */
    const char *def;           /* default applied by the database when not given, or NULL */
    const char *help;          /* one line for --help */
} sg_field;

enum {
    SG_RT_APPEND_ONLY = 1 << 0, /* rows are never updated (history) */
};

typedef struct sg_rectype {
    const char *table;      /* SQL table and API collection name ("members") */
    const char *singular;   /* "member" */
    const sg_field *fields; /* user fields in column order */
    size_t nfields;
    const char *date_field; /* field the list filters from= and to= apply to, or NULL */
    unsigned flags;         /* SG_RT_* bits */
} sg_rectype;

/* Maximum lengths of the common columns. */
#define SG_ID_MAX     64 /* ids: ULIDs are 26 characters; 64 leaves room for other schemes */
#define SG_REGION_MAX 63 /* region ids: [a-z0-9-], 1..63, first character a letter or digit */

/* All record types, NULL-terminated, in dependency order (referenced tables first). */
extern const sg_rectype *const sg_rectypes[];

/* The record type whose table is name (len bytes; len < 0 means NUL-terminated), or NULL. */
const sg_rectype *sg_rectype_find(const char *name, ptrdiff_t len);
/* The field of rt named name (len as above), or NULL. */
const sg_field *sg_rectype_field(const sg_rectype *rt, const char *name, ptrdiff_t len);

/* Checks a text value for field f (TEXT, DATE, ENUM, REF): length, characters, date validity,
 * enum membership. s need not be NUL-terminated. On failure fills err with
 * "<field>: <problem>" and returns SG_EVALIDATE (or SG_ETYPE when f is an INT field). */
int sg_field_check_text(const sg_field *f, const char *s, size_t len, sg_err *err);
/* Checks an integer value for field f (INT only; SG_ETYPE for other fields). */
int sg_field_check_int(const sg_field *f, int64_t v, sg_err *err);

/* 1 if s (len bytes) is a valid region id, else 0. */
int sg_region_id_valid(const char *s, size_t len);
/* 1 if s (len bytes) is a valid record id (1..SG_ID_MAX of [0-9A-Za-z_-]), else 0. */
int sg_record_id_valid(const char *s, size_t len);
/* 1 if s (len bytes) is valid UTF-8 (no overlong forms, no surrogates) with no control
 * characters other than tab and newline, else 0. */
int sg_utf8_valid(const char *s, size_t len);
/* 1 if s (len bytes) is a real calendar date written YYYY-MM-DD, else 0. */
int sg_date_valid(const char *s, size_t len);

#endif
