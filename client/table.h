/*
 * table.h - human-readable output of records: aligned tables for lists, one field per line for
 * a single record. Everything here only formats; nothing talks to the node.
 *
 * Invariants: a missing or null value prints as "-"; table cells never contain a newline or a
 * tab (they are shown as spaces) and are cut to their column's width with "…", so rows stay one
 * line each; single records are printed in full.
 */
#ifndef SANGAM_CLIENT_TABLE_H
#define SANGAM_CLIENT_TABLE_H

#include <jansson.h>
#include <stdio.h>

#include "sangam/records.h"
#include "sangam/sbuf.h"

/* Prints the records in items (a JSON array) as a table with a header row and the key columns
 * of their type (table is the collection name, e.g. "members"). Returns 0, or -1 when out of
 * memory. */
int table_list(FILE *out, const char *table, const json_t *items);
/* Prints one record of type rt, one "field  value" line each: id and region first, then the
 * type's fields in declaration order, then the timestamps and any key the node added; a
 * session's "attendance" and an issue's "updates" follow as their own sections. */
void table_record(FILE *out, const sg_rectype *rt, const json_t *rec);
/* Appends v as text: strings as they are, numbers in decimal, null (or NULL) as "-", arrays and
 * objects as compact JSON. */
void table_value(sbuf *b, const json_t *v);

/* Prints v as indented JSON followed by a newline (the --json output). */
void table_json(FILE *out, const json_t *v);

#endif
