/*
 * report.h - headquarters' reports over the consolidated data (issue 6): per region and in
 * total, members by kind, gender and youth; sessions by kind and month with attendance; issues
 * by category and status, median days to resolution, open issues per assigned organisation.
 * Every region's part says how fresh it is ("data_as_of": the clock of the newest change the
 * hub applied from it), so a reader knows what is stale.
 *
 * Read-only SQL over the store; the date range applies to each record's own date (members
 * joined_on, sessions held_on, issues opened_on), both ends inclusive.
 */
#ifndef SANGAM_REPORT_H
#define SANGAM_REPORT_H

#include <jansson.h>

#include "sangam/error.h"
#include "sangam/sbuf.h"
#include "store.h"

typedef struct sg_report_filter {
    const char *region; /* or NULL for all */
    const char *from;   /* YYYY-MM-DD or NULL */
    const char *to;     /* YYYY-MM-DD or NULL */
} sg_report_filter;

/* which: "summary" (all sections), "members", "sessions" or "issues". *out is
 * {"generated_at", "filter", "regions": {REGION: {"data_as_of", SECTION...}}, "total": {...}}.
 * SG_ENOTFOUND for an unknown report. */
int sg_report(json_t **out, sg_store *st, const char *which, const sg_report_filter *f,
              sg_err *err);

/* Appends s to b as one RFC 4180 CSV cell: quoted when it holds a comma, quote or line break;
 * a cell that starts with = + - @ (or a tab or CR) is quoted with a leading ' so a spreadsheet
 * shows it instead of running it as a formula. */
void sg_csv_cell(sbuf *b, const char *s);

/* The report as CSV rows "region,section,group,key,value" (region "total" for the totals):
 * a new malloc'd string. */
char *sg_report_csv(const json_t *report);

#endif
