/*
 * report.c - headquarters' reports; see report.h.
 *
 * Each section is a few GROUP BY queries whose rows are added into a per-region object and the
 * total at once (add()), so the total is by construction the sum of the regions. Medians are
 * computed here from the sorted day counts (SQLite has no median).
 */
#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "store_int.h"

#define FILTERS(date)                                                                              \
    " (?1 IS NULL OR region = ?1) AND (?2 IS NULL OR " date " >= ?2) AND (?3 IS NULL OR " date     \
    " <= ?3)"

/* obj[k1][k2] += n (k2 NULL: obj[k1] += n), creating what is missing. */
static void add(json_t *obj, const char *k1, const char *k2, long long n)
{
    json_t *o = obj, *v;
    if (k2 != NULL) {
        o = json_object_get(obj, k1);
        if (o == NULL) {
            o = json_object();
            json_object_set_new(obj, k1, o);
        }
        k1 = k2;
    }
    v = json_object_get(o, k1);
    json_object_set_new(o, k1, json_integer((v ? json_integer_value(v) : 0) + n));
}

/* The section object of region's part (created on first use), and the total's. */
static json_t *part(json_t *rep, const char *region, const char *section)
{
    json_t *regions = json_object_get(rep, "regions"), *r, *s;
    r = json_object_get(regions, region);
    if (r == NULL) {
        r = json_object();
        json_object_set_new(regions, region, r);
    }
    s = json_object_get(r, section);
    if (s == NULL) {
        s = json_object();
        json_object_set_new(r, section, s);
    }
    return s;
}

static json_t *total(json_t *rep, const char *section)
{
    json_t *t = json_object_get(rep, "total"), *s = json_object_get(t, section);
    if (s == NULL) {
        s = json_object();
        json_object_set_new(t, section, s);
    }
    return s;
}

/* Binds the filter to ?1 (region), ?2 (from) and ?3 (to); NULL stays NULL (FILTERS). */
static void bind_filter(sqlite3_stmt *stmt, const sg_report_filter *f)
{
    if (f->region)
        sqlite3_bind_text(stmt, 1, f->region, -1, SQLITE_TRANSIENT);
    if (f->from)
        sqlite3_bind_text(stmt, 2, f->from, -1, SQLITE_TRANSIENT);
    if (f->to)
        sqlite3_bind_text(stmt, 3, f->to, -1, SQLITE_TRANSIENT);
}

/* Runs sql with the filter bound, calling row(rep, stmt) for each row. */
static int each_row(json_t *rep, sg_store *st, const char *sql, const sg_report_filter *f,
                    void (*row)(json_t *, sqlite3_stmt *), sg_err *err)
{
    sqlite3_stmt *stmt;
    int rc = store_stmt(st, sql, &stmt, err);
    if (rc < 0)
        return rc;
    bind_filter(stmt, f);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
        row(rep, stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? 0 : store_db_error(st, rc, err, "report");
}

static const char *col(sqlite3_stmt *s, int i)
{
    const char *v = (const char *)sqlite3_column_text(s, i);
    return v ? v : "(none)";
}

/* region, kind, gender, youth, n */
static void member_row(json_t *rep, sqlite3_stmt *s)
{
    json_t *parts[2] = {part(rep, col(s, 0), "members"), total(rep, "members")};
    long long n = sqlite3_column_int64(s, 4);
    for (int i = 0; i < 2; i++) {
        add(parts[i], "total", NULL, n);
        add(parts[i], "by_kind", col(s, 1), n);
        add(parts[i], "by_gender", col(s, 2), n);
        add(parts[i], "youth_under_35", NULL, sqlite3_column_int(s, 3) ? n : 0);
    }
}

/* region, kind, month, sessions, attendance */
static void session_row(json_t *rep, sqlite3_stmt *s)
{
    json_t *parts[2] = {part(rep, col(s, 0), "sessions"), total(rep, "sessions")};
    long long n = sqlite3_column_int64(s, 3), a = sqlite3_column_int64(s, 4);
    for (int i = 0; i < 2; i++) {
        json_t *by_month, *month;
        add(parts[i], "total", NULL, n);
        add(parts[i], "attendance", NULL, a);
        add(parts[i], "by_kind", col(s, 1), n);
        /* Rows are per kind and month: a month seen before (another kind) keeps its counts. */
        by_month = json_object_get(parts[i], "by_month");
        if (by_month == NULL) {
            by_month = json_object();
            json_object_set_new(parts[i], "by_month", by_month);
        }
        month = json_object_get(by_month, col(s, 2));
        if (month == NULL) {
            month = json_object();
            json_object_set_new(by_month, col(s, 2), month);
        }
        add(month, "sessions", NULL, n);
        add(month, "attendance", NULL, a);
    }
}

/* region, category, status, n */
static void issue_row(json_t *rep, sqlite3_stmt *s)
{
    json_t *parts[2] = {part(rep, col(s, 0), "issues"), total(rep, "issues")};
    long long n = sqlite3_column_int64(s, 3);
    for (int i = 0; i < 2; i++) {
        add(parts[i], "total", NULL, n);
        add(parts[i], "by_category", col(s, 1), n);
        add(parts[i], "by_status", col(s, 2), n);
    }
}

/* region, organisation, n */
static void open_row(json_t *rep, sqlite3_stmt *s)
{
    long long n = sqlite3_column_int64(s, 2);
    add(part(rep, col(s, 0), "issues"), "open_by_organisation", col(s, 1), n);
    add(total(rep, "issues"), "open_by_organisation", col(s, 1), n);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static json_t *median(double *v, size_t n)
{
    if (n == 0)
        return json_null();
    qsort(v, n, sizeof(*v), cmp_double);
    return json_real(n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2);
}

/* Median days from opened_on to resolved_on, per region and in total. */
static int medians(json_t *rep, sg_store *st, const sg_report_filter *f, sg_err *err)
{
    sqlite3_stmt *stmt;
    double *v = NULL;
    size_t n = 0, cap = 0, start = 0;
    char region[128] = "";
    int rc = store_stmt(st,
                        "SELECT region, julianday(resolved_on) - julianday(opened_on) FROM issues "
                        "WHERE resolved_on IS NOT NULL AND" FILTERS("opened_on") " ORDER BY region",
                        &stmt, err);
    if (rc < 0)
        return rc;
    bind_filter(stmt, f);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (strcmp(col(stmt, 0), region) != 0) {
            if (region[0] != '\0')
                json_object_set_new(part(rep, region, "issues"), "median_days_to_resolution",
                                    median(v + start, n - start));
            snprintf(region, sizeof(region), "%s", col(stmt, 0));
            start = n;
        }
        if (n == cap) {
            double *g = realloc(v, (cap ? cap * 2 : 256) * sizeof(*v));
            if (g == NULL) {
                rc = SQLITE_NOMEM;
                break;
            }
            v = g;
            cap = cap ? cap * 2 : 256;
        }
        v[n++] = sqlite3_column_double(stmt, 1);
    }
    sqlite3_reset(stmt);
    if (rc == SQLITE_DONE) {
        if (region[0] != '\0')
            json_object_set_new(part(rep, region, "issues"), "median_days_to_resolution",
                                median(v + start, n - start));
        json_object_set_new(total(rep, "issues"), "median_days_to_resolution", median(v, n));
    }
    free(v);
    return rc == SQLITE_DONE ? 0 : store_db_error(st, rc, err, "report: medians");
}

/* Each region's "data_as_of": the clock of the newest change the hub applied from it (on a
 * region's own node: its own clock). */
static void freshness(json_t *rep, sg_store *st)
{
    sqlite3_stmt *stmt;
    json_t *regions = json_object_get(rep, "regions"), *r;
    const char *name;
    if (store_stmt(st, "SELECT last_hlc FROM sg_regions WHERE region = ?", &stmt, NULL) < 0)
        return;
    json_object_foreach(regions, name, r)
    {
        int64_t hlc = 0;
        sqlite3_bind_text(stmt, 1, name, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(stmt) == SQLITE_ROW)
            hlc = sqlite3_column_int64(stmt, 0);
        sqlite3_reset(stmt);
        if (hlc == 0 && strcmp(name, sg_store_node_id(st)) == 0)
            hlc = sg_store_hlc(st);
        if (hlc > 0) {
            char at[32];
            time_t t = (time_t)((hlc >> 16) / 1000);
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
            json_object_set_new(r, "data_as_of", json_string(at));
        } else {
            json_object_set_new(r, "data_as_of", json_null());
        }
    }
}

int sg_report(json_t **out, sg_store *st, const char *which, const sg_report_filter *f, sg_err *err)
{
    int all = strcmp(which, "summary") == 0, rc = 0;
    char now[32];
    json_t *rep;

    *out = NULL;
    if (!all && strcmp(which, "members") != 0 && strcmp(which, "sessions") != 0 &&
        strcmp(which, "issues") != 0)
        return sg_err_set(err, SG_ENOTFOUND,
                          "no report '%.40s' (summary, members, sessions, issues)", which);
    sg_now_iso(now);
    rep = json_pack("{s:s, s:{s:s?, s:s?, s:s?}, s:{}, s:{}}", "generated_at", now, "filter",
                    "region", f->region, "from", f->from, "to", f->to, "regions", "total");
    if (rep == NULL)
        return sg_err_set(err, SG_ENOMEM, "out of memory");
    if (all || strcmp(which, "members") == 0)
        rc = each_row(
            rep, st,
            "SELECT region, kind, coalesce(gender, 'not given'), birth_year > "
            "CAST(strftime('%Y', 'now') AS INTEGER) - 35, count(*) FROM members WHERE" FILTERS(
                "joined_on") " GROUP BY 1, 2, 3, 4",
            f, member_row, err);
    if (rc == 0 && (all || strcmp(which, "sessions") == 0))
        rc = each_row(rep, st,
                      "SELECT region, kind, substr(held_on, 1, 7), count(*), sum((SELECT count(*) "
                      "FROM attendance a WHERE a.session_id = sessions.id)) FROM sessions "
                      "WHERE" FILTERS("held_on") " GROUP BY 1, 2, 3",
                      f, session_row, err);
    if (rc == 0 && (all || strcmp(which, "issues") == 0)) {
        rc = each_row(rep, st,
                      "SELECT region, category, status, count(*) FROM issues WHERE" FILTERS(
                          "opened_on") " GROUP BY 1, 2, 3",
                      f, issue_row, err);
        if (rc == 0)
            rc = each_row(rep, st,
                          "SELECT i.region, coalesce(o.name, '(unassigned)'), count(*) FROM "
                          "issues i LEFT JOIN organisations o ON o.id = i.assigned_to WHERE "
                          "(i.status = 'open' OR i.status = 'in_progress') AND (?1 IS NULL OR "
                          "i.region = ?1) AND (?2 IS NULL OR i.opened_on >= ?2) AND (?3 IS NULL "
                          "OR i.opened_on <= ?3) GROUP BY 1, 2",
                          f, open_row, err);
        if (rc == 0)
            rc = medians(rep, st, f, err);
    }
    if (rc < 0) {
        json_decref(rep);
        return rc;
    }
    freshness(rep, st);
    *out = rep;
    return 0;
}

void sg_csv_cell(sbuf *b, const char *s)
{
    int quote = strpbrk(s, ",\"\r\n") != NULL;
    /* A cell a spreadsheet would run as a formula is written as text (OWASP CSV injection). */
    int formula =
        s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' || s[0] == '\r';
    if (quote || formula)
        sbuf_add(b, "\"");
    if (formula)
        sbuf_add(b, "'");
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            sbuf_add(b, "\"\"");
        else
            sbuf_addn(b, p, 1);
    }
    if (quote || formula)
        sbuf_add(b, "\"");
}

/* Emits the leaves under v as rows "scope,section,group,key,value". */
static void csv_rows(sbuf *b, const char *scope, const char *section, const char *group,
                     const char *key, const json_t *v)
{
    const char *k;
    json_t *x;
    if (json_is_object(v)) {
        char g[256];
        json_object_foreach((json_t *)v, k, x)
        {
            if (key == NULL) {
                csv_rows(b, scope, section, group, k, x);
            } else {
                snprintf(g, sizeof(g), "%s%s%s", group, group[0] ? "/" : "", key);
                csv_rows(b, scope, section, g, k, x);
            }
        }
        return;
    }
    sg_csv_cell(b, scope);
    sbuf_add(b, ",");
    sg_csv_cell(b, section);
    sbuf_add(b, ",");
    sg_csv_cell(b, group);
    sbuf_add(b, ",");
    sg_csv_cell(b, key ? key : "");
    sbuf_add(b, ",");
    if (json_is_integer(v))
        sbuf_addf(b, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        sbuf_addf(b, "%.2f", json_real_value(v));
    else if (json_is_string(v))
        sg_csv_cell(b, json_string_value(v));
    sbuf_add(b, "\r\n");
}

char *sg_report_csv(const json_t *report)
{
    sbuf b;
    const char *name, *section;
    json_t *r, *sec;
    sbuf_init(&b);
    sbuf_add(&b, "region,section,group,key,value\r\n");
    json_object_foreach(json_object_get(report, "regions"), name, r)
    {
        json_object_foreach(r, section, sec)
        {
            if (json_is_object(sec))
                csv_rows(&b, name, section, "", NULL, sec);
            else
                csv_rows(&b, name, "", "", section, sec);
        }
    }
    json_object_foreach(json_object_get(report, "total"), section, sec)
        csv_rows(&b, "total", section, "", NULL, sec);
    if (b.failed) {
        sbuf_free(&b);
        return NULL;
    }
    return b.s ? b.s : strdup("");
}
