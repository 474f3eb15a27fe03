/*
 * import.c - CSV import of members; see import.h and docs/API.md.
 *
 * Two passes: parse every row into a field object and check it (syntax, enums, ranges, that
 * referenced organisations exist), collecting up to SG_IMPORT_MAX_PROBLEMS problems; only when
 * there are none, insert all rows in one transaction. A crash mid-import leaves nothing behind
 * (the transaction is not committed), and a retry imports everything once.
 */
#include "import.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <csv.h>

#define CELL_MAX (64u * 1024)

typedef struct parse_ctx {
    const sg_rectype *rt;
    const sg_field *cols[SG_IMPORT_MAX_COLUMNS]; /* field of each header column */
    char *names[SG_IMPORT_MAX_COLUMNS];          /* header text of each column, owned */
    int ncols;                                   /* columns in the header */
    int col;                                     /* current column in the current row */
    long row;                                    /* current record number (header = 1) */
    long line;                                   /* line of the file being parsed (1-based) */
    long row_line;                               /* line where the current record's first
                                                    cell ended: what problems report */
    json_t *cur;                                 /* fields of the current row */
    int cur_bad;                                 /* the current row already has a problem */
    json_t *rows;                                /* [{"line", "fields"}] per data row */
    json_t *problems;                            /* [{"row","column","message"}] */
    int fatal;                                   /* a problem that stops the parse */
    sg_err err;                                  /* message of a fatal problem */
} parse_ctx;

static const struct {
    const char *alias;
    const char *field;
} aliases[] = {
    {"organisation", "organisation_id"},
    {"organization", "organisation_id"},
    {"org", "organisation_id"},
    {"organization_id", "organisation_id"},
    {"joined", "joined_on"},
    {"joined_date", "joined_on"},
    {"enterprise_sector", "sector"},
    {"year_of_birth", "birth_year"},
};

static void add_problem(parse_ctx *c, const char *column, const char *msg)
{
    json_t *p;
    c->cur_bad = 1;
    if (json_array_size(c->problems) >= SG_IMPORT_MAX_PROBLEMS)
        return;
    p = json_pack("{s:I, s:s?, s:s}", "row", (json_int_t)c->row_line, "column", column, "message",
                  msg);
    if (p == NULL) /* the message quoted a cell that is not UTF-8 */
        p = json_pack("{s:I, s:s?, s:s}", "row", (json_int_t)c->row_line, "column", column,
                      "message", "cell is not valid UTF-8 text");
    json_array_append_new(c->problems, p);
}

/* Normalises a header cell: trimmed, lower case, spaces and hyphens as '_'. */
static void norm_header(const char *in, size_t len, char *out, size_t cap)
{
    size_t k = 0;
    while (len > 0 && isspace((unsigned char)in[len - 1]))
        len--;
    while (len > 0 && isspace((unsigned char)*in)) {
        in++;
        len--;
    }
    for (size_t i = 0; i < len && k + 1 < cap; i++) {
        char ch = in[i];
        out[k++] = (ch == ' ' || ch == '-') ? '_' : (char)tolower((unsigned char)ch);
    }
    out[k] = '\0';
}

static void header_cell(parse_ctx *c, const char *s, size_t len)
{
    char name[64];
    const sg_field *f;
    char msg[256];

    if (c->ncols >= SG_IMPORT_MAX_COLUMNS) {
        c->fatal = 1;
        sg_err_set(&c->err, SG_ECSV, "header: more than %d columns", SG_IMPORT_MAX_COLUMNS);
        return;
    }
    norm_header(s, len, name, sizeof(name));
    /* A UTF-8 byte order mark (Excel writes one) is not part of the first name. */
    if (c->ncols == 0 && strncmp(name, "\xef\xbb\xbf", 3) == 0)
        memmove(name, name + 3, strlen(name + 3) + 1);
    for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
        if (strcmp(name, aliases[i].alias) == 0)
            snprintf(name, sizeof(name), "%s", aliases[i].field);
    f = sg_rectype_field(c->rt, name, -1);
    c->names[c->ncols] = strdup(name);
    if (f == NULL || (f->flags & SG_F_SERVER)) {
        snprintf(msg, sizeof(msg),
                 "unknown column '%.40s' (columns: name, kind, gender, birth_year, phone, "
                 "village, district, sector, organisation_id, joined_on, status)",
                 name);
        add_problem(c, name, msg);
        c->fatal = 1;
        sg_err_set(&c->err, SG_ECSV, "header: unknown column '%.40s'", name);
    }
    for (int i = 0; i < c->ncols && f != NULL; i++) {
        if (c->cols[i] == f) {
            snprintf(msg, sizeof(msg), "column '%s' appears twice", f->name);
            add_problem(c, f->name, msg);
            c->fatal = 1;
            sg_err_set(&c->err, SG_ECSV, "header: column '%s' appears twice", f->name);
        }
    }
    c->cols[c->ncols++] = f;
}

static void data_cell(parse_ctx *c, const char *s, size_t len)
{
    const sg_field *f;
    char msg[SG_ERR_MSG_MAX + 64];
    char *v;
    json_t *j;

    if (c->col >= c->ncols) {
        if (c->col == c->ncols) {
            snprintf(msg, sizeof(msg), "more cells than the header has columns (%d)", c->ncols);
            add_problem(c, NULL, msg);
        }
        return;
    }
    f = c->cols[c->col];
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    if (len == 0 || f == NULL)
        return; /* empty cell: not given */
    if (len > CELL_MAX) {
        add_problem(c, f->name, "cell longer than 64 KiB");
        return;
    }
    v = malloc(len + 1);
    if (v == NULL) {
        c->fatal = 1;
        sg_err_set(&c->err, SG_ENOMEM, "out of memory");
        return;
    }
    memcpy(v, s, len);
    v[len] = '\0';
    if (f->type == SG_FT_ENUM)
        for (size_t i = 0; i < len; i++)
            v[i] = (char)tolower((unsigned char)v[i]);
    if (f->type == SG_FT_INT) {
        char *end;
        long long n;
        errno = 0;
        n = strtoll(v, &end, 10);
        if (errno != 0 || *end != '\0') {
            snprintf(msg, sizeof(msg), "%s: '%.40s' is not a whole number", f->name, v);
            add_problem(c, f->name, msg);
            free(v);
            return;
        }
        j = json_integer(n);
    } else {
        j = json_stringn(v, len);
        if (j == NULL) {
            snprintf(msg, sizeof(msg), "%s: not valid UTF-8 text", f->name);
            add_problem(c, f->name, msg);
            free(v);
            return;
        }
    }
    free(v);
    json_object_set_new(c->cur, f->name, j);
}

/* libcsv callback: one cell. */
static void on_cell(void *s, size_t len, void *data)
{
    parse_ctx *c = data;
    if (c->fatal)
        return;
    if (c->col == 0)
        c->row_line = c->line;
    if (c->row == 1)
        header_cell(c, s ? s : "", s ? len : 0);
    else
        data_cell(c, s ? s : "", s ? len : 0);
    c->col++;
}

/* libcsv callback: end of a row. */
static void on_row(int term, void *data)
{
    parse_ctx *c = data;
    (void)term;
    if (c->fatal)
        return;
    if (c->col == 0)
        c->row_line = c->line;
    if (c->row > 1) {
        /* A row with a cell problem is kept as null: its problems are already listed, and
         * the other rows are still checked so one report lists everything to fix. */
        json_array_append_new(c->rows, json_pack("{s:I, s:O}", "line", (json_int_t)c->row_line,
                                                 "fields", c->cur_bad ? json_null() : c->cur));
        json_decref(c->cur);
        c->cur = json_object();
    }
    if (c->row == 1 && c->ncols == 0) {
        c->fatal = 1;
        sg_err_set(&c->err, SG_ECSV, "the first row must be a header naming the columns");
    }
    if (c->row - 1 >= SG_IMPORT_MAX_ROWS) {
        c->fatal = 1;
        sg_err_set(&c->err, SG_ETOOBIG, "more than %d rows; split the file", SG_IMPORT_MAX_ROWS);
    }
    c->row++;
    c->col = 0;
    c->cur_bad = 0;
}

int sg_import_parse(json_t **out_rows, json_t **out_problems, const char *csv, size_t len,
                    sg_err *err)
{
    struct csv_parser p;
    parse_ctx c;
    int rc = 0;

    *out_rows = NULL;
    if (out_problems)
        *out_problems = NULL;
    memset(&c, 0, sizeof(c));
    c.rt = sg_rectype_find("members", -1);
    c.row = 1;
    c.rows = json_array();
    c.problems = json_array();
    c.cur = json_object();
    if (c.rows == NULL || c.problems == NULL || c.cur == NULL) {
        rc = sg_err_set(err, SG_ENOMEM, "import: out of memory");
        goto free_ctx;
    }
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        rc = sg_err_set(err, SG_ENOMEM, "import: out of memory");
        goto free_ctx;
    }
    /* Fed a line at a time so that problems can name the line of the file. */
    c.line = 1;
    for (size_t off = 0; off < len && !c.fatal;) {
        /* A line ends with LF, CRLF or a lone CR (old Mac exports), as libcsv's rows do. */
        size_t n = 0;
        while (off + n < len && csv[off + n] != '\n' && csv[off + n] != '\r')
            n++;
        if (off + n < len)
            n += (csv[off + n] == '\r' && off + n + 1 < len && csv[off + n + 1] == '\n') ? 2 : 1;
        if (csv_parse(&p, csv + off, n, on_cell, on_row, &c) != n)
            break;
        off += n;
        /* The last line may have no terminator: its records are still on this line. */
        if (csv[off - 1] == '\n' || csv[off - 1] == '\r')
            c.line++;
    }
    if (c.fatal || csv_error(&p) != CSV_SUCCESS || csv_fini(&p, on_cell, on_row, &c) != 0) {
        if (!c.fatal) {
            c.fatal = 1;
            c.row_line = c.line;
            sg_err_set(&c.err, SG_ECSV,
                       "line %ld: malformed CSV (%s): check quotes: a quoted cell must end "
                       "with a quote, and quotes inside it are doubled",
                       c.line, csv_strerror(csv_error(&p)));
            add_problem(&c, NULL, c.err.msg);
        }
    }
    csv_free(&p);
    if (c.fatal) {
        rc = sg_err_set(err, c.err.code ? c.err.code : SG_ECSV, "%s", c.err.msg);
        goto free_ctx;
    }
    if (c.row <= 1) {
        rc = sg_err_set(err, SG_ECSV, "the file is empty: it needs a header row");
        goto free_ctx;
    }
    *out_rows = c.rows;
    c.rows = NULL;

free_ctx:
    if (out_problems && (rc == 0 || json_array_size(c.problems) > 0)) {
        *out_problems = c.problems;
        c.problems = NULL;
    }
    for (int i = 0; i < c.ncols; i++)
        free(c.names[i]);
    json_decref(c.rows);
    json_decref(c.problems);
    json_decref(c.cur);
    return rc;
}

/* The field name at the start of a "field: problem" message, if it names one of rt's fields. */
static const char *field_of(const sg_rectype *rt, const char *msg)
{
    const char *colon = strchr(msg, ':');
    const sg_field *f = colon ? sg_rectype_field(rt, msg, colon - msg) : NULL;
    return f ? f->name : NULL;
}

/* Orders problems by line (the parse and the checks each produce them in order). */
static int by_line(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "row"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "row"));
    return (x > y) - (x < y);
}

static json_t *sorted_problems(json_t *problems)
{
    size_t n = json_array_size(problems);
    json_t **v = calloc(n ? n : 1, sizeof(*v));
    json_t *out = json_array();
    if (v == NULL || out == NULL) {
        free(v);
        json_decref(out);
        return json_incref(problems);
    }
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(problems, i);
    qsort(v, n, sizeof(*v), by_line);
    for (size_t i = 0; i < n && i < SG_IMPORT_MAX_PROBLEMS; i++)
        json_array_append(out, v[i]);
    free(v);
    return out;
}

int sg_import_members(json_t **out, json_t **out_problems, sg_store *st, const char *csv,
                      size_t len, int dry_run, sg_err *err)
{
    const sg_rectype *rt = sg_rectype_find("members", -1);
    json_t *rows = NULL, *problems = NULL, *ids = NULL, *row, *rec = NULL;
    size_t i, nrows = 0, nbad = 0;
    int rc;

    *out = NULL;
    if (out_problems)
        *out_problems = NULL;
    rc = sg_import_parse(&rows, &problems, csv, len, err);
    if (rc < 0) {
        if (out_problems)
            *out_problems = problems;
        else
            json_decref(problems);
        return rc;
    }
    nrows = json_array_size(rows);

    /* Pass 1: check every row that parsed against the record rules and the references. */
    json_array_foreach(rows, i, row)
    {
        json_t *fields = json_object_get(row, "fields");
        json_int_t line = json_integer_value(json_object_get(row, "line"));
        sg_err rerr = {0};
        if (json_is_null(fields)) {
            nbad++;
            continue;
        }
        if (sg_store_check(st, rt, fields, 'c', 0, &rerr) < 0) {
            nbad++;
            json_array_append_new(problems, json_pack("{s:I, s:s?, s:s}", "row", line, "column",
                                                      field_of(rt, rerr.msg), "message", rerr.msg));
            if (rerr.code != SG_EVALIDATE && rerr.code != SG_EREQUIRED &&
                rerr.code != SG_EREFERENCE && rerr.code != SG_ETYPE && rerr.code != SG_EUNKNOWN) {
                rc = sg_err_set(err, rerr.code, "line %lld: %s", (long long)line, rerr.msg);
                goto free_rows;
            }
        }
    }
    if (json_array_size(problems) > 0) {
        rc = sg_err_set(err, SG_ECSV, "%zu of %zu row(s) have problems; nothing was imported", nbad,
                        nrows);
        if (out_problems)
            *out_problems = sorted_problems(problems);
        goto free_rows;
    }
    if (dry_run) {
        *out = json_pack("{s:I}", "checked", (json_int_t)nrows);
        rc = 0;
        goto free_rows;
    }

    /* Pass 2: insert all rows in one transaction. */
    ids = json_array();
    rc = sg_store_begin(st, err);
    if (rc < 0)
        goto free_rows;
    json_array_foreach(rows, i, row)
    {
        /* Pass 1 checked every row; the database's constraints still guard each insert. */
        rc = sg_store_create(&rec, st, rt, json_object_get(row, "fields"),
                             SG_WRITE_ID_ONLY | SG_WRITE_CHECKED, err);
        if (rc < 0) {
            sg_err_wrap(err, "line %lld",
                        (long long)json_integer_value(json_object_get(row, "line")));
            sg_store_rollback(st);
            goto free_rows;
        }
        json_array_append(ids, json_object_get(rec, "id"));
        json_decref(rec);
        rec = NULL;
    }
    rc = sg_store_commit(st, err);
    if (rc < 0)
        goto free_rows;
    *out = json_pack("{s:I, s:O}", "imported", (json_int_t)nrows, "ids", ids);

free_rows:
    json_decref(ids);
    json_decref(problems);
    json_decref(rows);
    return rc;
}
