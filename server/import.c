/*
 * import.c - CSV import of members; see import.h and docs/API.md.
 *
 * Two passes over the text: the first parses every row into a field object and checks it
 * (syntax, enums, ranges, that referenced organisations exist), collecting up to
 * SG_IMPORT_MAX_PROBLEMS problems; only when there are none, the second parses again and inserts
 * each row as it comes, all in one transaction. A crash mid-import leaves nothing behind (the
 * transaction is not committed), and a retry imports everything once. Rows are handed to the
 * pass one at a time and never held all together: a 10,000-row file held as JSON objects cost a
 * region node 25 MiB, most of its memory budget, for the duration of an import.
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
    int (*row_cb)(void *arg, long line, json_t *fields); /* each data row; fields is NULL for a
                                                            row with a cell problem; <0 stops */
    void *row_arg;
    json_t *problems; /* [{"row","column","message"}] */
    int fatal;        /* a problem that stops the parse */
    sg_err err;       /* message of a fatal problem */
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
        /* A row with a cell problem is passed as NULL: its problems are already listed, and
         * the other rows are still checked so one report lists everything to fix. */
        if (c->row_cb(c->row_arg, c->row_line, c->cur_bad ? NULL : c->cur) < 0)
            c->fatal = 1; /* the callback set c->err */
        json_decref(c->cur);
        c->cur = json_object();
        if (c->cur == NULL && !c->fatal) {
            c->fatal = 1;
            sg_err_set(&c->err, SG_ENOMEM, "import: out of memory");
        }
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

/* Parses csv, calling row_cb(row_arg, line, fields) for each data row (fields borrowed for the
 * call). Problems go to *problems (an array, created when NULL). Returns 0, or the error that
 * stopped the parse: a file that cannot be read at all, or the callback's (its err.code and
 * message, which it writes into *cb_err). */
static int import_scan(json_t **problems, const char *csv, size_t len,
                       int (*row_cb)(void *, long, json_t *), void *row_arg, sg_err *cb_err,
                       sg_err *err)
{
    struct csv_parser p;
    parse_ctx c;
    int rc = 0;

    memset(&c, 0, sizeof(c));
    c.rt = sg_rectype_find("members", -1);
    c.row = 1;
    c.row_cb = row_cb;
    c.row_arg = row_arg;
    c.problems = *problems ? *problems : json_array();
    *problems = c.problems;
    c.cur = json_object();
    if (c.problems == NULL || c.cur == NULL) {
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
    if (c.fatal && c.err.code == 0) { /* the callback stopped it */
        rc = cb_err != NULL && cb_err->code != 0
                 ? sg_err_set(err, cb_err->code, "%s", cb_err->msg)
                 : sg_err_set(err, SG_ENOMEM, "import: out of memory");
        goto free_ctx;
    }
    if (c.fatal) {
        rc = sg_err_set(err, c.err.code ? c.err.code : SG_ECSV, "%s", c.err.msg);
        goto free_ctx;
    }
    if (c.row <= 1)
        rc = sg_err_set(err, SG_ECSV, "the file is empty: it needs a header row");

free_ctx:
    for (int i = 0; i < c.ncols; i++)
        free(c.names[i]);
    json_decref(c.cur);
    return rc;
}

/* sg_import_parse's row callback: collects {"line", "fields"} (fields null for a bad row). */
static int collect_row(void *arg, long line, json_t *fields)
{
    return json_array_append_new(arg, json_pack("{s:I, s:O}", "line", (json_int_t)line, "fields",
                                                fields ? fields : json_null()));
}

int sg_import_parse(json_t **out_rows, json_t **out_problems, const char *csv, size_t len,
                    sg_err *err)
{
    json_t *rows = json_array(), *problems = NULL;
    int rc;

    *out_rows = NULL;
    if (out_problems)
        *out_problems = NULL;
    if (rows == NULL)
        return sg_err_set(err, SG_ENOMEM, "import: out of memory");
    rc = import_scan(&problems, csv, len, collect_row, rows, NULL, err);
    if (rc == 0)
        *out_rows = json_incref(rows);
    if (out_problems && (rc == 0 || json_array_size(problems) > 0))
        *out_problems = json_incref(problems);
    json_decref(rows);
    json_decref(problems);
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

/* The state of sg_import_members' two passes over the rows. */
typedef struct import_run {
    sg_store *st;
    const sg_rectype *rt;
    json_t *problems; /* pass 1: the record checks' problems are added here */
    json_t *ids;      /* pass 2: the new records' ids */
    size_t nrows, nbad;
    sg_err err; /* what stopped a pass */
} import_run;

/* Pass 1: checks one row against the record rules and references. */
static int check_row(void *arg, long line, json_t *fields)
{
    import_run *r = arg;
    sg_err rerr = {0};
    r->nrows++;
    if (fields == NULL) {
        r->nbad++;
        return 0;
    }
    if (sg_store_check(r->st, r->rt, fields, 'c', 0, &rerr) < 0) {
        r->nbad++;
        json_array_append_new(r->problems,
                              json_pack("{s:I, s:s?, s:s}", "row", (json_int_t)line, "column",
                                        field_of(r->rt, rerr.msg), "message", rerr.msg));
        if (rerr.code != SG_EVALIDATE && rerr.code != SG_EREQUIRED && rerr.code != SG_EREFERENCE &&
            rerr.code != SG_ETYPE && rerr.code != SG_EUNKNOWN)
            return sg_err_set(&r->err, rerr.code, "line %ld: %s", line, rerr.msg);
    }
    return 0;
}

/* Pass 2: inserts one row (pass 1 checked it; the database's constraints still guard it). */
static int insert_row(void *arg, long line, json_t *fields)
{
    import_run *r = arg;
    json_t *rec = NULL;
    if (fields == NULL) /* the file changed between the passes: cannot happen, refuse */
        return sg_err_set(&r->err, SG_ECSV, "line %ld: unreadable row", line);
    if (sg_store_create(&rec, r->st, r->rt, fields, SG_WRITE_ID_ONLY | SG_WRITE_CHECKED, &r->err) <
        0)
        return sg_err_wrap(&r->err, "line %ld", line);
    json_array_append(r->ids, json_object_get(rec, "id"));
    json_decref(rec);
    return 0;
}

int sg_import_members(json_t **out, json_t **out_problems, sg_store *st, const char *csv,
                      size_t len, int dry_run, sg_err *err)
{
    import_run r;
    json_t *problems = NULL;
    int rc;

    *out = NULL;
    if (out_problems)
        *out_problems = NULL;
    memset(&r, 0, sizeof(r));
    r.st = st;
    r.rt = sg_rectype_find("members", -1);
    r.problems = problems = json_array();
    if (problems == NULL)
        return sg_err_set(err, SG_ENOMEM, "import: out of memory");

    /* Pass 1: parse and check every row, collecting every problem. */
    rc = import_scan(&problems, csv, len, check_row, &r, &r.err, err);
    if (rc < 0) {
        if (out_problems && json_array_size(problems) > 0)
            *out_problems = sorted_problems(problems);
        goto done;
    }
    if (json_array_size(problems) > 0) {
        rc = sg_err_set(err, SG_ECSV, "%zu of %zu row(s) have problems; nothing was imported",
                        r.nbad, r.nrows);
        if (out_problems)
            *out_problems = sorted_problems(problems);
        goto done;
    }
    if (dry_run) {
        *out = json_pack("{s:I}", "checked", (json_int_t)r.nrows);
        goto done;
    }

    /* Pass 2: parse again and insert every row, in one transaction. */
    r.ids = json_array();
    if (r.ids == NULL) {
        rc = sg_err_set(err, SG_ENOMEM, "import: out of memory");
        goto done;
    }
    rc = sg_store_begin(st, err);
    if (rc < 0)
        goto done;
    memset(&r.err, 0, sizeof(r.err));
    rc = import_scan(&problems, csv, len, insert_row, &r, &r.err, err);
    if (rc < 0) {
        sg_store_rollback(st);
        goto done;
    }
    rc = sg_store_commit(st, err);
    if (rc < 0)
        goto done;
    *out = json_pack("{s:I, s:O}", "imported", (json_int_t)r.nrows, "ids", r.ids);

done:
    json_decref(r.ids);
    json_decref(problems);
    return rc;
}
