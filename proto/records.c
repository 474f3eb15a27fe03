/*
 * records.c - the record types of sangam/records.h and the checks of single field values.
 *
 * These checks are the friendly half of validation: they name the field and the rule. The
 * database's CHECK, NOT NULL and FOREIGN KEY constraints (server/schema.sql) are the authority
 * and catch whatever bypasses this code (the sqlite3 shell, a future bug).
 */
#include "sangam/records.h"

#include <string.h>

static const char *const org_kinds[] = {"government",    "financial", "academic", "training",
                                        "civil_society", "private",   "other",    NULL};
static const char *const member_kinds[] = {"entrepreneur", "representative", "staff", NULL};
static const char *const genders[] = {"female", "male", "other", "undisclosed", NULL};
static const char *const member_statuses[] = {"active", "inactive", NULL};
static const char *const session_kinds[] = {"working_session", "launch",  "training",
                                            "radio_show",      "emailer", "whatsapp",
                                            "field_visit",     "other",   NULL};
static const char *const issue_categories[] = {"finance",        "market",    "skills",
                                               "infrastructure", "awareness", "regulation",
                                               "technology",     "other",     NULL};
static const char *const issue_statuses[] = {"open", "in_progress", "resolved", "closed", NULL};

#define TEXT(n, fl, bits, maxlen, hlp)                                                             \
    {                                                                                              \
        .name = n, .flag = fl, .type = SG_FT_TEXT, .flags = bits, .max = maxlen, .help = hlp       \
    }
#define ENUM(n, fl, bits, vals, dflt, hlp)                                                         \
    {                                                                                              \
        .name = n, .flag = fl, .type = SG_FT_ENUM, .flags = bits, .values = vals, .def = dflt,     \
        .help = hlp                                                                                \
    }
#define REF(n, fl, bits, tbl, hlp)                                                                 \
    {                                                                                              \
        .name = n, .flag = fl, .type = SG_FT_REF, .flags = bits, .ref = tbl, .help = hlp           \
    }
#define DATE(n, fl, bits, dflt, hlp)                                                               \
    {                                                                                              \
        .name = n, .flag = fl, .type = SG_FT_DATE, .flags = bits, .def = dflt, .help = hlp         \
    }

static const sg_field org_fields[] = {
    TEXT("name", "name", SG_F_REQUIRED | SG_F_SEARCH, 400, "organisation name"),
    ENUM("kind", "kind", SG_F_REQUIRED, org_kinds, NULL, "kind of stakeholder"),
    TEXT("district", "district", 0, 200, "district"),
    TEXT("contact", "contact", 0, 400, "contact person, phone or e-mail"),
};

static const sg_field member_fields[] = {
    TEXT("name", "name", SG_F_REQUIRED | SG_F_SEARCH, 400, "full name"),
    ENUM("kind", "kind", SG_F_REQUIRED, member_kinds, NULL, "kind of member"),
    ENUM("gender", "gender", 0, genders, NULL, "gender"),
    {.name = "birth_year",
     .flag = "birth-year",
     .type = SG_FT_INT,
     .min = 1900,
     .max = 2100,
     .help = "year of birth (for youth reporting)"},
    TEXT("phone", "phone", SG_F_PHONE, 32, "phone number"),
    TEXT("village", "village", 0, 200, "village or town"),
    TEXT("district", "district", 0, 200, "district"),
    TEXT("sector", "sector", 0, 200, "enterprise sector (e.g. dairy, handloom)"),
    REF("organisation_id", "org", 0, "organisations",
        "organisation id (required for representatives)"),
    DATE("joined_on", "joined", 0, NULL, "date joined, YYYY-MM-DD"),
    ENUM("status", "status", 0, member_statuses, "active", "active or inactive"),
};

static const sg_field session_fields[] = {
    ENUM("kind", "kind", SG_F_REQUIRED, session_kinds, NULL, "kind of session"),
    TEXT("title", "title", SG_F_REQUIRED | SG_F_SEARCH, 600, "title"),
    DATE("held_on", "date", SG_F_REQUIRED, NULL, "date held, YYYY-MM-DD"),
    TEXT("place", "place", 0, 400, "place (village, office, radio station)"),
    TEXT("summary", "summary", 0, 16000, "what happened"),
};

static const sg_field attendance_fields[] = {
    REF("session_id", "session", SG_F_REQUIRED | SG_F_FIXED, "sessions", "session id"),
    REF("member_id", "member", SG_F_REQUIRED | SG_F_FIXED, "members", "member id"),
};

static const sg_field issue_fields[] = {
    REF("raised_by", "by", SG_F_REQUIRED | SG_F_FIXED, "members", "member who raised it"),
    REF("session_id", "session", 0, "sessions", "session it was raised in"),
    ENUM("category", "category", SG_F_REQUIRED, issue_categories, NULL, "category"),
    TEXT("title", "title", SG_F_REQUIRED | SG_F_SEARCH, 600, "short title"),
    TEXT("description", "description", 0, 16000, "details"),
    ENUM("status", "status", SG_F_SERVER, issue_statuses, "open",
         "status (changed by issue updates)"),
    REF("assigned_to", "assign", 0, "organisations", "organisation assigned to resolve it"),
    DATE("opened_on", "opened", 0, "today", "date raised, YYYY-MM-DD"),
    DATE("resolved_on", "resolved", SG_F_SERVER, NULL, "date resolved (set by issue updates)"),
};

static const sg_field issue_update_fields[] = {
    REF("issue_id", "issue", SG_F_REQUIRED | SG_F_FIXED, "issues", "issue id"),
    TEXT("note", "note", 0, 16000, "note"),
    ENUM("status_from", "from", SG_F_SERVER, issue_statuses, NULL, "status before"),
    ENUM("status_to", "status", SG_F_SERVER, issue_statuses, NULL, "status after"),
    REF("assigned_to", "assign", SG_F_SERVER, "organisations",
        "organisation the issue was assigned to by this update"),
    TEXT("author", "author", SG_F_REQUIRED, 200, "who wrote it"),
};

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

static const sg_rectype rt_orgs = {"organisations",     "organisation", org_fields,
                                   NFIELDS(org_fields), NULL,           0};
static const sg_rectype rt_members = {"members",   "member", member_fields, NFIELDS(member_fields),
                                      "joined_on", 0};
static const sg_rectype rt_sessions = {
    "sessions", "session", session_fields, NFIELDS(session_fields), "held_on", 0};
static const sg_rectype rt_attendance = {
    "attendance", "attendance",     attendance_fields, NFIELDS(attendance_fields),
    NULL,         SG_RT_APPEND_ONLY};
static const sg_rectype rt_issues = {"issues",    "issue", issue_fields, NFIELDS(issue_fields),
                                     "opened_on", 0};
static const sg_rectype rt_issue_updates = {
    "issue_updates",  "issue update", issue_update_fields, NFIELDS(issue_update_fields), NULL,
    SG_RT_APPEND_ONLY};

const sg_rectype *const sg_rectypes[] = {
    &rt_orgs, &rt_members, &rt_sessions, &rt_attendance, &rt_issues, &rt_issue_updates, NULL};

static int name_eq(const char *a, const char *b, ptrdiff_t blen)
{
    size_t n = blen < 0 ? strlen(b) : (size_t)blen;
    return strlen(a) == n && memcmp(a, b, n) == 0;
}

const sg_rectype *sg_rectype_find(const char *name, ptrdiff_t len)
{
    for (size_t i = 0; sg_rectypes[i] != NULL; i++)
        if (name_eq(sg_rectypes[i]->table, name, len))
            return sg_rectypes[i];
    return NULL;
}

const sg_field *sg_rectype_field(const sg_rectype *rt, const char *name, ptrdiff_t len)
{
    for (size_t i = 0; i < rt->nfields; i++)
        if (name_eq(rt->fields[i].name, name, len))
            return &rt->fields[i];
    return NULL;
}

int sg_region_id_valid(const char *s, size_t len)
{
    if (len == 0 || len > SG_REGION_MAX || s[0] == '-')
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return 0;
    }
    return 1;
}

int sg_record_id_valid(const char *s, size_t len)
{
    if (len == 0 || len > SG_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

static int digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

int sg_date_valid(const char *s, size_t len)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, m, d, leap;

    if (len != 10 || s[4] != '-' || s[7] != '-')
        return 0;
    if (!digits(s, 4, &y) || !digits(s + 5, 2, &m) || !digits(s + 8, 2, &d))
        return 0;
    if (y < 1900 || y > 2200 || m < 1 || m > 12 || d < 1)
        return 0;
    leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= mdays[m - 1] + (m == 2 && leap);
}

/* Rejects invalid UTF-8 and control characters other than tab and newline; returns 1 if ok. */
static int text_ok(const char *s, size_t len, int multiline)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        unsigned c = p[i];
        size_t n;
        unsigned cp;
        if (c < 0x80) {
            if ((c < 0x20 && !(multiline && (c == '\n' || c == '\t'))) || c == 0x7f)
                return 0;
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + n >= len)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}

int sg_utf8_valid(const char *s, size_t len)
{
    return text_ok(s, len, 1);
}

static int enum_has(const char *const *values, const char *s, size_t len)
{
    for (size_t i = 0; values[i] != NULL; i++)
        if (name_eq(values[i], s, (ptrdiff_t)len))
            return 1;
    return 0;
}

/* Writes "a|b|c" of an enum's values into buf. */
static const char *enum_list(const char *const *values, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; values[i] != NULL && used + 1 < cap; i++) {
        size_t n = strlen(values[i]);
        if (used + n + 2 > cap)
            break;
        if (i > 0)
            buf[used++] = '|';
        memcpy(buf + used, values[i], n);
        used += n;
        buf[used] = '\0';
    }
    return buf;
}

int sg_field_check_text(const sg_field *f, const char *s, size_t len, sg_err *err)
{
    char list[256];

    switch (f->type) {
    case SG_FT_INT:
        return sg_err_set(err, SG_ETYPE, "%s: expected a whole number", f->name);
    case SG_FT_TEXT:
        if (len == 0 && (f->flags & SG_F_REQUIRED))
            return sg_err_set(err, SG_EVALIDATE, "%s: must not be empty", f->name);
        if ((int64_t)len > f->max)
            return sg_err_set(err, SG_EVALIDATE, "%s: longer than %lld bytes", f->name,
                              (long long)f->max);
        if (!text_ok(s, len, f->max > 600))
            return sg_err_set(err, SG_EVALIDATE,
                              "%s: not valid UTF-8 text (or contains control characters)", f->name);
        if (f->flags & SG_F_PHONE) {
            for (size_t i = 0; i < len; i++)
                if (!strchr("0123456789+- ()", s[i]) || s[i] == '\0')
                    return sg_err_set(err, SG_EVALIDATE,
                                      "%s: use digits, '+', '-', spaces and brackets only",
                                      f->name);
        }
        return 0;
    case SG_FT_DATE:
        if (!sg_date_valid(s, len))
            return sg_err_set(err, SG_EVALIDATE, "%s: not a date in the form YYYY-MM-DD", f->name);
        return 0;
    case SG_FT_ENUM:
        if (!enum_has(f->values, s, len) && (len > 40 || !text_ok(s, len, 0)))
            return sg_err_set(err, SG_EVALIDATE, "%s: not one of %s", f->name,
                              enum_list(f->values, list, sizeof(list)));
        if (!enum_has(f->values, s, len))
            return sg_err_set(err, SG_EVALIDATE, "%s: '%.*s' is not one of %s", f->name,
                              (int)(len > 40 ? 40 : len), s,
                              enum_list(f->values, list, sizeof(list)));
        return 0;
    case SG_FT_REF:
        if (!sg_record_id_valid(s, len))
            return sg_err_set(err, SG_EVALIDATE, "%s: not a record id", f->name);
        return 0;
    }
    return sg_err_set(err, SG_EINVAL, "%s: unknown field type", f->name);
}

int sg_field_check_int(const sg_field *f, int64_t v, sg_err *err)
{
    if (f->type != SG_FT_INT)
        return sg_err_set(err, SG_ETYPE, "%s: expected text, not a number", f->name);
    if (v < f->min || v > f->max)
        return sg_err_set(err, SG_EVALIDATE, "%s: %lld is outside %lld..%lld", f->name,
                          (long long)v, (long long)f->min, (long long)f->max);
    return 0;
}
