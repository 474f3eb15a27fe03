/*
 * record.c - validation of record field objects; see record.h.
 */
#include "record.h"

#include <string.h>

static int is_common(const char *key)
{
    return strcmp(key, "id") == 0 || strcmp(key, "region") == 0 || strcmp(key, "created_at") == 0 ||
           strcmp(key, "updated_at") == 0;
}

/* Lists the settable field names of rt into buf for "known fields" hints. */
static const char *field_list(const sg_rectype *rt, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < rt->nfields; i++) {
        size_t n = strlen(rt->fields[i].name);
        if (used + n + 3 > cap)
            break;
        if (used) {
            buf[used++] = ',';
            buf[used++] = ' ';
        }
        memcpy(buf + used, rt->fields[i].name, n + 1);
        used += n;
    }
    return buf;
}

int sg_record_check(const sg_rectype *rt, json_t *obj, int mode, int server_fields, sg_err *err)
{
    char list[512];
    const char *key;
    json_t *v;
    int rc;

    if (!json_is_object(obj))
        return sg_err_set(err, SG_ETYPE, "expected a JSON object of %s fields", rt->singular);
    json_object_foreach(obj, key, v)
    {
        const sg_field *f = sg_rectype_field(rt, key, -1);
        if (f == NULL) {
            if (is_common(key))
                return sg_err_set(err, SG_EIMMUTABLE, "%s: set by the node, not by a request", key);
            return sg_err_set(err, SG_EUNKNOWN, "%s have no field '%.64s' (fields: %s)", rt->table,
                              key, field_list(rt, list, sizeof(list)));
        }
        if ((f->flags & SG_F_SERVER) && !server_fields) {
            if (strcmp(rt->table, "issues") == 0)
                return sg_err_set(err, SG_EIMMUTABLE,
                                  "%s: changes only through an issue update "
                                  "(POST /v1/issues/ID/updates, or `sangam issue update`)",
                                  key);
            return sg_err_set(err, SG_EIMMUTABLE, "%s: set by the node", key);
        }
        if (mode == 'u' && (f->flags & SG_F_FIXED))
            return sg_err_set(err, SG_EIMMUTABLE, "%s: cannot change once the %s exists", key,
                              rt->singular);
        if (json_is_null(v)) {
            if (f->flags & SG_F_REQUIRED)
                return sg_err_set(err, SG_EREQUIRED, "%s: required, cannot be null", key);
            /* A field with a default is NOT NULL in schema.sql: say so here, in words, rather
             * than let SQLite refuse the write with its own message. */
            if (f->def != NULL)
                return sg_err_set(err, SG_EREQUIRED,
                                  "%s: cannot be null; leave it out for the default (%s)", key,
                                  f->def);
            continue;
        }
        if (f->type == SG_FT_INT) {
            if (!json_is_integer(v))
                return sg_err_set(err, SG_ETYPE, "%s: expected a whole number", key);
            rc = sg_field_check_int(f, json_integer_value(v), err);
        } else {
            if (!json_is_string(v))
                return sg_err_set(err, SG_ETYPE, "%s: expected a string", key);
            rc = sg_field_check_text(f, json_string_value(v), json_string_length(v), err);
        }
        if (rc < 0)
            return rc;
    }
    if (mode == 'c') {
        for (size_t i = 0; i < rt->nfields; i++) {
            const sg_field *f = &rt->fields[i];
            if ((f->flags & SG_F_REQUIRED) && json_object_get(obj, f->name) == NULL)
                return sg_err_set(err, SG_EREQUIRED, "%s: required for a new %s", f->name,
                                  rt->singular);
        }
    }
    if (mode == 'c' && strcmp(rt->table, "members") == 0) {
        /* The CHECK representative_needs_organisation of schema.sql, said here too so that CSV
         * import (which checks every row before inserting any) reports it as a problem of its
         * row, and a dry run does not promise an import that would fail. */
        json_t *org = json_object_get(obj, "organisation_id");
        const char *kind = json_string_value(json_object_get(obj, "kind"));
        if (kind != NULL && strcmp(kind, "representative") == 0 &&
            (org == NULL || json_is_null(org)))
            return sg_err_set(err, SG_EVALIDATE,
                              "organisation_id: a representative must name an organisation");
    }
    return 0;
}
