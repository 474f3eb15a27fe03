/*
 * record.h - checks a JSON object of record fields against a record type (sangam/records.h).
 *
 * This is where a request body, a CSV row or (later) a replicated change is held to the record
 * rules before it reaches SQL: no unknown keys, the right JSON type for each field, values that
 * pass the field's check, required fields present on create, fixed and node-managed fields left
 * alone on update. Messages name the field and say what to do.
 */
#ifndef SANGAM_RECORD_H
#define SANGAM_RECORD_H

#include <jansson.h>

#include "sangam/error.h"
#include "sangam/records.h"

/* mode is 'c' (create) or 'u' (update). server_fields allows SG_F_SERVER fields (the node's own
 * writes). Returns 0 or an SG_E* code with err naming the field. */
int sg_record_check(const sg_rectype *rt, json_t *obj, int mode, int server_fields, sg_err *err);

#endif
