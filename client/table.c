/*
 * table.c - list tables and record views of table.h.
 *
 * Column widths are measured in terminal cells, approximated as UTF-8 code points minus
 * combining marks (Latin accents, Devanagari vowel signs and virama), which keeps Hindi names
 * aligned on common terminals without depending on the process locale.
 */
#include "table.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* One column of a list table. */
typedef struct column {
    const char *header; /* printed in the header row */
    const char *key;    /* the record's JSON key */
    size_t max;         /* widest the column may get, in cells */
} column;

static const column org_cols[] = {{"ID", "id", 26},
                                  {"NAME", "name", 32},
                                  {"KIND", "kind", 14},
                                  {"DISTRICT", "district", 16},
                                  {"CONTACT", "contact", 28}};
static const column member_cols[] = {
    {"ID", "id", 26},         {"NAME", "name", 28},         {"KIND", "kind", 14},
    {"GENDER", "gender", 11}, {"DISTRICT", "district", 16}, {"SECTOR", "sector", 16},
    {"STATUS", "status", 8}};
static const column session_cols[] = {{"ID", "id", 26},
                                      {"DATE", "held_on", 10},
                                      {"KIND", "kind", 15},
                                      {"TITLE", "title", 40},
                                      {"PLACE", "place", 24}};
static const column issue_cols[] = {{"ID", "id", 26},         {"OPENED", "opened_on", 10},
                                    {"STATUS", "status", 11}, {"CATEGORY", "category", 14},
                                    {"TITLE", "title", 40},   {"ASSIGNED", "assigned_to", 26}};
static const column other_cols[] = {{"ID", "id", 26}, {"CREATED", "created_at", 24}};

typedef struct layout {
    const char *table;
    const column *cols;
    size_t ncols;
} layout;

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const layout layouts[] = {{"organisations", org_cols, NELEM(org_cols)},
                                 {"members", member_cols, NELEM(member_cols)},
                                 {"sessions", session_cols, NELEM(session_cols)},
                                 {"issues", issue_cols, NELEM(issue_cols)},
                                 {NULL, other_cols, NELEM(other_cols)}};

/* 1 if code point cp takes no cell of its own (a combining mark). */
static int combining(unsigned cp)
{
    return (cp >= 0x300 && cp <= 0x36f) || (cp >= 0x900 && cp <= 0x902) || cp == 0x93a ||
           cp == 0x93c || (cp >= 0x941 && cp <= 0x948) || cp == 0x94d ||
           (cp >= 0x951 && cp <= 0x957) || (cp >= 0x962 && cp <= 0x963) ||
           (cp >= 0x200b && cp <= 0x200d);
}

/* Decodes the UTF-8 sequence at s (NUL-terminated); stores its length in *n and returns the
 * code point (invalid bytes count as one cell each). */
static unsigned decode(const char *s, size_t *n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = p[0] < 0x80 ? 1 : p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc0 ? 2 : 1;
    unsigned cp = len == 1 ? p[0] : p[0] & (0x7f >> len);

    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            *n = 1;
            return 0xfffd;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    *n = len;
    return cp;
}

/* Terminal cells that the string s takes. */
static size_t cells(const char *s)
{
    size_t w = 0, n;

    while (*s != '\0') {
        w += !combining(decode(s, &n));
        s += n;
    }
    return w;
}

/* Cuts the text in b to at most max cells (max >= 1), ending it with "…" when something was cut
 * off, and turns tabs and line breaks into spaces so a cell stays on one line. */
static void fit(sbuf *b, size_t max)
{
    size_t w = 0, n;
    int need_cut = cells(sbuf_str(b)) > max;

    assert(max >= 1);
    for (size_t off = 0; off < b->len; off += n) {
        char *p = b->s + off;
        unsigned cp = decode(p, &n);
        if (*p == '\n' || *p == '\t' || *p == '\r')
            *p = ' ';
        if (combining(cp))
            continue;
        if (need_cut && w == max - 1) {
            b->len = off;
            b->s[off] = '\0';
            sbuf_add(b, "\xe2\x80\xa6");
            return;
        }
        w++;
    }
}

void table_value(sbuf *b, const json_t *v)
{
    char *text;

    if (v == NULL || json_is_null(v)) {
        sbuf_add(b, "-");
    } else if (json_is_string(v)) {
        sbuf_addn(b, json_string_value(v), json_string_length(v));
    } else if (json_is_integer(v)) {
        sbuf_addf(b, "%lld", (long long)json_integer_value(v));
    } else if (json_is_true(v) || json_is_false(v)) {
        sbuf_add(b, json_is_true(v) ? "true" : "false");
    } else {
        text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        sbuf_add(b, text != NULL ? text : "?");
        free(text);
    }
}

int table_list(FILE *out, const char *table, const json_t *items)
{
    const layout *l = layouts;
    size_t nrows = json_array_size(items), width[8] = {0};
    char **cell = NULL;
    int ret = -1;

    while (l->table != NULL && strcmp(l->table, table) != 0)
        l++;
    assert(l->ncols <= NELEM(width));
    cell = calloc(nrows * l->ncols + 1, sizeof(*cell));
    if (cell == NULL)
        return -1;
    for (size_t c = 0; c < l->ncols; c++)
        width[c] = cells(l->cols[c].header);
    for (size_t r = 0; r < nrows; r++) {
        for (size_t c = 0; c < l->ncols; c++) {
            sbuf b;
            sbuf_init(&b);
            table_value(&b, json_object_get(json_array_get(items, r), l->cols[c].key));
            fit(&b, l->cols[c].max);
            if (b.failed || b.s == NULL) {
                sbuf_free(&b);
                goto free_cells;
            }
            cell[r * l->ncols + c] = b.s;
            if (cells(cell[r * l->ncols + c]) > width[c])
                width[c] = cells(cell[r * l->ncols + c]);
        }
    }
    for (size_t r = 0; r <= nrows; r++) {
        for (size_t c = 0; c < l->ncols; c++) {
            const char *s = r == 0 ? l->cols[c].header : cell[(r - 1) * l->ncols + c];
            int last = c + 1 == l->ncols;
            fputs(s, out);
            for (size_t pad = cells(s); !last && pad < width[c] + 2; pad++)
                fputc(' ', out);
        }
        fputc('\n', out);
    }
    ret = 0;
free_cells:
    for (size_t i = 0; i < nrows * l->ncols; i++)
        free(cell[i]);
    free(cell);
    return ret;
}

/* Prints "label  value" with label padded to lw; continuation lines of a multi-line value are
 * indented under the value. */
static void field_line(FILE *out, const char *label, size_t lw, const json_t *v)
{
    sbuf b;
    const char *p;

    sbuf_init(&b);
    table_value(&b, v);
    fprintf(out, "%-*s  ", (int)lw, label);
    for (p = sbuf_str(&b); *p != '\0'; p++) {
        fputc(*p, out);
        if (*p == '\n' && p[1] != '\0')
            fprintf(out, "%-*s  ", (int)lw, "");
    }
    fputc('\n', out);
    sbuf_free(&b);
}

/* 1 if key is printed by table_record before the extras. */
static int known_key(const sg_rectype *rt, const char *key)
{
    static const char *const common[] = {"id",         "region",  "created_at", "updated_at",
                                         "attendance", "updates", NULL};
    for (size_t i = 0; common[i] != NULL; i++)
        if (strcmp(common[i], key) == 0)
            return 1;
    return sg_rectype_field(rt, key, -1) != NULL;
}

/* Prints an issue's updates, oldest first, as "when  author: status a -> b" and the note. */
static void print_updates(FILE *out, const json_t *updates)
{
    size_t i;
    const json_t *u;

    fprintf(out, "\nupdates (%zu):\n", json_array_size(updates));
    json_array_foreach(updates, i, u)
    {
        const char *from = json_string_value(json_object_get(u, "status_from"));
        const char *to = json_string_value(json_object_get(u, "status_to"));
        const char *note = json_string_value(json_object_get(u, "note"));
        sbuf when, who;

        sbuf_init(&when);
        sbuf_init(&who);
        table_value(&when, json_object_get(u, "created_at"));
        table_value(&who, json_object_get(u, "author"));
        fprintf(out, "  %s  %s", sbuf_str(&when), sbuf_str(&who));
        if (to != NULL)
            fprintf(out, ": status %s -> %s", from != NULL ? from : "-", to);
        fputc('\n', out);
        if (note != NULL) {
            fputs("      ", out);
            for (const char *p = note; *p != '\0'; p++) {
                fputc(*p, out);
                if (*p == '\n' && p[1] != '\0')
                    fputs("      ", out);
            }
            fputc('\n', out);
        }
        sbuf_free(&when);
        sbuf_free(&who);
    }
}

void table_record(FILE *out, const sg_rectype *rt, const json_t *rec)
{
    static const char *const head[] = {"id", "region"}, *const tail[] = {"created_at",
                                                                         "updated_at"};
    const char *key;
    const json_t *v, *list;
    size_t lw = 10, i;

    for (i = 0; i < rt->nfields; i++)
        if (strlen(rt->fields[i].name) > lw)
            lw = strlen(rt->fields[i].name);
    for (i = 0; i < NELEM(head); i++)
        field_line(out, head[i], lw, json_object_get(rec, head[i]));
    for (i = 0; i < rt->nfields; i++)
        field_line(out, rt->fields[i].name, lw, json_object_get(rec, rt->fields[i].name));
    for (i = 0; i < NELEM(tail); i++)
        field_line(out, tail[i], lw, json_object_get(rec, tail[i]));
    json_object_foreach((json_t *)rec, key, v)
    {
        if (!known_key(rt, key))
            field_line(out, key, lw, v);
    }
    list = json_object_get(rec, "attendance");
    if (json_is_array(list)) {
        fprintf(out, "\nattendance (%zu):\n", json_array_size(list));
        json_array_foreach(list, i, v)
        {
            sbuf b;
            sbuf_init(&b);
            table_value(&b, v);
            fprintf(out, "  %s\n", sbuf_str(&b));
            sbuf_free(&b);
        }
    }
    list = json_object_get(rec, "updates");
    if (json_is_array(list))
        print_updates(out, list);
}

void table_json(FILE *out, const json_t *v)
{
    json_dumpf(v, out, JSON_INDENT(2) | JSON_ENCODE_ANY);
    fputc('\n', out);
}
