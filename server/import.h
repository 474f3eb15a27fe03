/*
 * import.h - CSV import of members (docs/API.md, "CSV import of members").
 *
 * All rows or none: every row is parsed and checked (types, enums, references) before the first
 * insert, and the inserts run in one transaction. Parsing uses libcsv in strict mode with
 * bounded rows, columns and cell sizes.
 */
#ifndef SANGAM_IMPORT_H
#define SANGAM_IMPORT_H

#include <stddef.h>

#include <jansson.h>

#include "store.h"

#define SG_IMPORT_MAX_ROWS     100000
#define SG_IMPORT_MAX_COLUMNS  32
#define SG_IMPORT_MAX_PROBLEMS 100

/* Parses csv into *out_rows: one {"line": n, "fields": {...}} per data row, where fields is
 * null for a row whose cells already have a problem (bad number, invalid UTF-8, too many cells).
 * Checks the header and cell syntax, not the record rules or references. Returns 0 with
 * *out_problems listing per-row problems ([{"row": line, "column", "message"}], maybe empty;
 * caller decrefs both), or SG_ECSV/SG_ETOOBIG/SG_ENOMEM for a file that cannot be read at all
 * (bad header, broken quoting, too many rows), with *out_problems when there are some. */
int sg_import_parse(json_t **out_rows, json_t **out_problems, const char *csv, size_t len,
                    sg_err *err);

/* Imports members from csv into st. On success *out is {"imported": n, "ids": [...]} (or
 * {"checked": n} when dry_run). On failure the return is an SG_E* code, err says how many rows
 * failed, and *out_problems (if not NULL) lists them. */
int sg_import_members(json_t **out, json_t **out_problems, sg_store *st, const char *csv,
                      size_t len, int dry_run, sg_err *err);

#endif
