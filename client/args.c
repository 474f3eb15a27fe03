/*
 * args.c - the table-driven parser of args.h.
 *
 * A command's option table is built from its cli_command entry: the fields of its record type
 * selected by cmd->fields (and cmd->only), then the fixed options its CLI_OPT_* bits ask for,
 * then --json, --node and --help. Parsing, help and value checks all read that one table, so
 * help never lists a flag the parser refuses or the reverse.
 *
 * Invariants: a->nopt <= ARGS_MAX_OPTS (asserted: the tables are ours); a->val[i] is NULL or
 * points into argv (or at the literal "1" for switches).
 */
#include "args.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* The fixed options: id, flag, takes a value, metavar, help. */
static const args_opt list_opts[] = {
    {"q", ARGS_Q, NULL, 1, "TEXT", "name or title contains TEXT (case-insensitive)"},
    {"from", ARGS_FROM, NULL, 1, "DATE", "on or after DATE (YYYY-MM-DD)"},
    {"to", ARGS_TO, NULL, 1, "DATE", "on or before DATE (YYYY-MM-DD)"},
    {"region", ARGS_REGION, NULL, 1, "REGION", "only records owned by region REGION"},
    {"limit", ARGS_LIMIT, NULL, 1, "N", "at most N per page, 1..1000 (default 50)"},
    {"after", ARGS_AFTER, NULL, 1, "ID", "start after record ID (the id a footer names)"},
    {"all", ARGS_ALL, NULL, 0, NULL, "follow every page (--limit then sets the page size)"},
};
static const args_opt dry_run_opt = {
    "dry-run", ARGS_DRY_RUN, NULL, 0, NULL, "only check the file; import nothing"};
static const args_opt since_opts[] = {
    {"since", ARGS_SINCE, NULL, 1, "SEQ", "changes after sequence number SEQ (default 0)"},
    {"limit", ARGS_LIMIT, NULL, 1, "N", "at most N changes (default: all)"},
};
static const args_opt quarantine_opts[] = {
    {"region", ARGS_REGION, NULL, 1, "REGION", "only changes from region REGION"},
    {"state", ARGS_STATE, NULL, 1, "STATE", "held, applied or discarded (list; default: all)"},
};
static const args_opt invite_opts[] = {
    {"expires", ARGS_EXPIRES, NULL, 1, "DURATION",
     "the invite is good for DURATION: 30m, 24h, 7d (default 24h, at most 30d)"},
    {"address", ARGS_ADDRESS, NULL, 1, "HOST:PORT",
     "the hub address the new office dials (default: the hub's [listen] public)"},
};
static const args_opt restore_opts[] = {
    {"from-hub", ARGS_FROM_HUB, NULL, 0, NULL, "restore this region's records from its hub"},
    {"force", ARGS_FORCE, NULL, 0, NULL,
     "even over a database that holds records (the hub's copy replaces them)"},
};
static const args_opt role_opt = {
    "role", ARGS_ROLE, NULL, 1, "ROLE", "viewer (reads) or admin (everything); default viewer"};
static const args_opt report_opts[] = {
    {"region", ARGS_REGION, NULL, 1, "REGION", "only region REGION"},
    {"from", ARGS_FROM, NULL, 1, "DATE", "records dated on or after DATE (YYYY-MM-DD)"},
    {"to", ARGS_TO, NULL, 1, "DATE", "records dated on or before DATE (YYYY-MM-DD)"},
    {"csv", ARGS_CSV, NULL, 0, NULL, "print CSV rows (region,section,group,key,value)"},
};
static const args_opt common_opts[] = {
    {"json", ARGS_JSON, NULL, 0, NULL, "print the node's JSON answer (pretty)"},
    {"node", ARGS_NODE, NULL, 1, "PATH|URL",
     "node socket or http://host:port (default $SANGAM_NODE, else /run/sangam/*.sock)"},
    {"help", ARGS_HELP, NULL, 0, NULL, "show this help"},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Appends o to a's table. A flag named twice would make one of its options unreachable, so
 * the descriptors and the fixed options must never share a name. */
static void add_opt(args *a, const args_opt *o)
{
    assert(a->nopt < ARGS_MAX_OPTS);
    for (size_t i = 0; i < a->nopt; i++)
        assert(strcmp(a->opt[i].flag, o->flag) != 0);
    a->opt[a->nopt++] = *o;
}

/* 1 if word is one of the space-separated words of list. */
static int word_in(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; *p != '\0';) {
        size_t k = strcspn(p, " ");
        if (k == n && memcmp(p, word, n) == 0)
            return 1;
        p += k;
        p += strspn(p, " ");
    }
    return 0;
}

/* 1 if field f becomes a flag in mode. */
static int field_selected(const sg_field *f, cli_fields mode)
{
    switch (mode) {
    case CLI_FIELDS_NONE:
        return 0;
    case CLI_FIELDS_CREATE:
        return !(f->flags & SG_F_SERVER);
    case CLI_FIELDS_UPDATE:
        return !(f->flags & (SG_F_SERVER | SG_F_FIXED));
    case CLI_FIELDS_FILTER:
        return 1;
    }
    return 0;
}

/* Fills a's option table for cmd. */
static void build_opts(args *a, const cli_command *cmd)
{
    memset(a, 0, sizeof(*a));
    a->cmd = cmd;
    a->rt = cmd->table != NULL ? sg_rectype_find(cmd->table, -1) : NULL;
    assert(cmd->table == NULL || a->rt != NULL);
    for (size_t i = 0; a->rt != NULL && i < a->rt->nfields; i++) {
        const sg_field *f = &a->rt->fields[i];
        args_opt o = {f->flag, ARGS_FIELD, f, 1, NULL, NULL};
        /* An explicit list names exactly the fields a command takes, node-managed ones included
         * (issue update sets the history's status_to and assigned_to through its route). */
        if (cmd->only != NULL ? !word_in(cmd->only, f->name) : !field_selected(f, cmd->fields))
            continue;
        add_opt(a, &o);
    }
    if (cmd->opts & CLI_OPT_LIST)
        for (size_t i = 0; i < NELEM(list_opts); i++)
            add_opt(a, &list_opts[i]);
    if (cmd->opts & CLI_OPT_DRY_RUN)
        add_opt(a, &dry_run_opt);
    if (cmd->opts & CLI_OPT_QUARANTINE)
        for (size_t i = 0; i < NELEM(quarantine_opts); i++)
            add_opt(a, &quarantine_opts[i]);
    if (cmd->opts & CLI_OPT_INVITE)
        for (size_t i = 0; i < NELEM(invite_opts); i++)
            add_opt(a, &invite_opts[i]);
    if (cmd->opts & CLI_OPT_RESTORE)
        for (size_t i = 0; i < NELEM(restore_opts); i++)
            add_opt(a, &restore_opts[i]);
    if (cmd->opts & CLI_OPT_ROLE)
        add_opt(a, &role_opt);
    if (cmd->opts & CLI_OPT_REPORT)
        for (size_t i = 0; i < NELEM(report_opts); i++)
            add_opt(a, &report_opts[i]);
    if (cmd->opts & CLI_OPT_SINCE)
        for (size_t i = 0; i < NELEM(since_opts); i++)
            add_opt(a, &since_opts[i]);
    for (size_t i = 0; i < NELEM(common_opts); i++)
        add_opt(a, &common_opts[i]);
}

/* The command's words for messages: "member add" or "status". */
static void command_name(const cli_command *cmd, char *buf, size_t cap)
{
    if (cmd->noun != NULL)
        snprintf(buf, cap, "%s %s", cmd->noun, cmd->verb);
    else
        snprintf(buf, cap, "%s", cmd->verb);
}

int args_usage(const cli_command *cmd, const char *fmt, ...)
{
    char name[64];
    va_list ap;

    command_name(cmd, name, sizeof(name));
    fprintf(stderr, "sangam: %s: ", name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "; see 'sangam %s --help'\n", name);
    return CLI_EXIT_USAGE;
}

/* The option of a named by the n bytes of name, or NULL. */
static const args_opt *find_opt(const args *a, const char *name, size_t n, size_t *index)
{
    for (size_t i = 0; i < a->nopt; i++)
        if (strlen(a->opt[i].flag) == n && memcmp(a->opt[i].flag, name, n) == 0) {
            *index = i;
            return &a->opt[i];
        }
    return NULL;
}

/* Edit distance between s (n bytes) and t, stopping early above 3; for suggestions. */
static size_t distance(const char *s, size_t n, const char *t)
{
    size_t m = strlen(t), row[64], prev, tmp;

    if (n >= NELEM(row) || m >= NELEM(row))
        return 99;
    for (size_t j = 0; j <= m; j++)
        row[j] = j;
    for (size_t i = 1; i <= n; i++) {
        prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t best = prev + (s[i - 1] != t[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            tmp = row[j];
            row[j] = best;
            prev = tmp;
        }
    }
    return row[m];
}

/* Reports an unknown flag, suggesting the closest known one when it is close. */
static int unknown_flag(const args *a, const char *name, size_t n)
{
    const char *best = NULL;
    size_t bestd = 3; /* suggest only flags at most two edits away */

    for (size_t i = 0; i < a->nopt; i++) {
        size_t d = distance(name, n, a->opt[i].flag);
        if (d < bestd) {
            bestd = d;
            best = a->opt[i].flag;
        }
    }
    if (best != NULL)
        return args_usage(a->cmd, "unknown flag --%.*s (did you mean --%s?)", (int)n, name, best);
    return args_usage(a->cmd, "unknown flag --%.*s", (int)n, name);
}

int args_parse(args *a, const cli_command *cmd, cli_ctx *ctx, int argc, char **argv)
{
    int only_operands = 0;

    build_opts(a, cmd);
    a->operand = calloc((size_t)argc + 1, sizeof(*a->operand));
    if (a->operand == NULL) {
        fprintf(stderr, "sangam: out of memory\n");
        return CLI_EXIT_USAGE;
    }
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i], *name, *eq, *value;
        const args_opt *o;
        size_t n, k = 0;

        if (only_operands || s[0] != '-' || s[1] == '\0') {
            a->operand[a->noperand++] = s;
            continue;
        }
        if (strcmp(s, "--") == 0) {
            only_operands = 1;
            continue;
        }
        if (strcmp(s, "-h") == 0) {
            a->help = 1;
            continue;
        }
        if (s[1] != '-')
            return args_usage(cmd, "unknown flag %s (flags are spelled --name)", s);
        name = s + 2;
        eq = strchr(name, '=');
        n = eq != NULL ? (size_t)(eq - name) : strlen(name);
        o = find_opt(a, name, n, &k);
        if (o == NULL)
            return unknown_flag(a, name, n);
        if (!o->takes_value) {
            if (eq != NULL)
                return args_usage(cmd, "--%s takes no value", o->flag);
            value = "1";
        } else if (eq != NULL) {
            value = eq + 1;
        } else {
            size_t k2;
            const char *next = i + 1 < argc ? argv[i + 1] : NULL;
            if (next == NULL || (strncmp(next, "--", 2) == 0 &&
                                 find_opt(a, next + 2, strcspn(next + 2, "="), &k2) != NULL))
                return args_usage(cmd, "--%s needs a value", o->flag);
            value = next;
            i++;
        }
        if (a->val[k] != NULL)
            return args_usage(cmd, "--%s is given twice", o->flag);
        a->val[k] = value;
        if (o->id == ARGS_HELP)
            a->help = 1;
        else if (o->id == ARGS_JSON)
            ctx->json = 1;
        else if (o->id == ARGS_NODE)
            ctx->node = value;
    }
    if (a->help)
        return CLI_EXIT_OK;
    if ((int)a->noperand < cmd->min_operands) {
        /* Name the first missing operand: word number noperand of the synopsis. */
        const char *w = cmd->operands;
        size_t wlen;
        char name[64];
        for (size_t skip = 0; skip < a->noperand; skip++) {
            w += strcspn(w, " ");
            w += strspn(w, " ");
        }
        wlen = strcspn(w, " ");
        command_name(cmd, name, sizeof(name));
        return args_usage(cmd, "missing %.*s (usage: sangam %s %s)", (int)wlen, w, name,
                          cmd->operands);
    }
    if (cmd->max_operands >= 0 && (int)a->noperand > cmd->max_operands)
        return args_usage(cmd, "unexpected argument '%s'", a->operand[cmd->max_operands]);
    return CLI_EXIT_OK;
}

void args_free(args *a)
{
    if (a == NULL)
        return;
    free(a->operand);
    a->operand = NULL;
    a->noperand = 0;
}

const char *args_get(const args *a, args_id id)
{
    for (size_t i = 0; i < a->nopt; i++)
        if (a->opt[i].id == id)
            return a->val[i];
    return NULL;
}

/* Parses all of s as a decimal integer; returns 1 and stores it, or 0. */
static int parse_ll(const char *s, long long *out)
{
    char *end = NULL;
    long long v;

    if (*s == '\0' || *s == ' ' || *s == '\t')
        return 0;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return 0;
    *out = v;
    return 1;
}

int args_int(const args *a, args_id id, long long min, long long max, long long *out)
{
    const char *s = args_get(a, id);
    const char *flag = "";
    long long v;

    if (s == NULL)
        return CLI_EXIT_OK;
    for (size_t i = 0; i < a->nopt; i++)
        if (a->opt[i].id == id)
            flag = a->opt[i].flag;
    if (!parse_ll(s, &v))
        return args_usage(a->cmd, "--%s: '%s' is not a whole number", flag, s);
    if (v < min && max == LLONG_MAX)
        return args_usage(a->cmd, "--%s: must be %lld or more", flag, min);
    if (v < min || v > max)
        return args_usage(a->cmd, "--%s: %lld is outside %lld..%lld", flag, v, min, max);
    *out = v;
    return CLI_EXIT_OK;
}

/* Reports a failed descriptor check, replacing the message's leading "<field>: " with the
 * flag's name so the user sees what to change. */
static int field_problem(const args *a, const args_opt *o, const sg_err *err)
{
    const char *msg = err->msg;
    size_t n = strlen(o->field->name);

    if (strncmp(msg, o->field->name, n) == 0 && strncmp(msg + n, ": ", 2) == 0)
        msg += n + 2;
    return args_usage(a->cmd, "--%s: %s", o->flag, msg);
}

/* Checks value v of field option o and converts it to JSON in *out (new reference). */
static int field_json(json_t **out, const args *a, const args_opt *o, const char *v)
{
    sg_err err;
    long long n;

    sg_err_clear(&err);
    *out = NULL;
    if (o->field->type == SG_FT_INT) {
        if (!parse_ll(v, &n))
            return args_usage(a->cmd, "--%s: '%s' is not a whole number", o->flag, v);
        if (sg_field_check_int(o->field, n, &err) != 0)
            return field_problem(a, o, &err);
        *out = json_integer(n);
    } else {
        if (sg_field_check_text(o->field, v, strlen(v), &err) != 0)
            return field_problem(a, o, &err);
        *out = json_string(v);
    }
    if (*out == NULL) {
        fprintf(stderr, "sangam: out of memory\n");
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

int args_body(json_t **out, const args *a, cli_fields mode)
{
    json_t *body = json_object();
    sbuf missing;
    int ret = CLI_EXIT_OK;

    *out = NULL;
    sbuf_init(&missing);
    if (body == NULL) {
        fprintf(stderr, "sangam: out of memory\n");
        return CLI_EXIT_USAGE;
    }
    for (size_t i = 0; i < a->nopt && ret == CLI_EXIT_OK; i++) {
        const args_opt *o = &a->opt[i];
        const char *v = a->val[i];
        json_t *j = NULL;
        int required = o->field != NULL && (o->field->flags & SG_F_REQUIRED);

        if (o->id != ARGS_FIELD)
            continue;
        if (v != NULL && v[0] == '\0' && mode == CLI_FIELDS_CREATE && required) {
            ret = args_usage(a->cmd, "--%s must not be empty", o->flag);
            break;
        }
        if (v == NULL || (v[0] == '\0' && mode == CLI_FIELDS_CREATE)) {
            if (mode == CLI_FIELDS_CREATE && required)
                sbuf_addf(&missing, "%s--%s", missing.len ? ", " : "", o->flag);
            continue;
        }
        if (v[0] == '\0') {
            if (required) {
                ret = args_usage(a->cmd, "--%s cannot be cleared: every %s needs one", o->flag,
                                 a->rt != NULL ? a->rt->singular : "record");
                break;
            }
            j = json_null();
        } else {
            ret = field_json(&j, a, o, v);
        }
        if (ret == CLI_EXIT_OK && json_object_set_new(body, o->field->name, j) != 0) {
            fprintf(stderr, "sangam: out of memory\n");
            ret = CLI_EXIT_USAGE;
        }
    }
    if (ret == CLI_EXIT_OK && missing.len > 0)
        ret = args_usage(a->cmd, "missing %s", sbuf_str(&missing));
    sbuf_free(&missing);
    if (ret != CLI_EXIT_OK) {
        json_decref(body);
        return ret;
    }
    *out = body;
    return CLI_EXIT_OK;
}

int args_query(sbuf *q, const args *a)
{
    for (size_t i = 0; i < a->nopt; i++) {
        const args_opt *o = &a->opt[i];
        const char *v = a->val[i];
        char num[32];

        if (v == NULL)
            continue;
        switch (o->id) {
        case ARGS_FIELD:
            if (v[0] != '\0') {
                json_t *j = NULL;
                int ret = field_json(&j, a, o, v);
                if (ret != CLI_EXIT_OK)
                    return ret;
                if (json_is_integer(j)) {
                    snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(j));
                    v = num;
                }
                json_decref(j);
            }
            http_query_add(q, o->field->name, v);
            break;
        case ARGS_Q:
            http_query_add(q, "q", v);
            break;
        case ARGS_FROM:
        case ARGS_TO:
            if (!sg_date_valid(v, strlen(v)))
                return args_usage(a->cmd, "--%s: '%s' is not a date in the form YYYY-MM-DD",
                                  o->flag, v);
            http_query_add(q, o->flag, v);
            break;
        case ARGS_REGION:
            if (!sg_region_id_valid(v, strlen(v)))
                return args_usage(a->cmd,
                                  "--region: '%s' is not a region id (lower-case letters, "
                                  "digits and '-')",
                                  v);
            http_query_add(q, "region", v);
            break;
        case ARGS_LIMIT: {
            long long n = 0;
            int ret = args_int(a, ARGS_LIMIT, 1, 1000, &n);
            if (ret != CLI_EXIT_OK)
                return ret;
            snprintf(num, sizeof(num), "%lld", n);
            http_query_add(q, "limit", num);
            break;
        }
        default:
            break;
        }
    }
    return CLI_EXIT_OK;
}

int args_check_id(const cli_command *cmd, const char *what, const char *s)
{
    if (!sg_record_id_valid(s, strlen(s)))
        return args_usage(cmd, "%s: '%s' is not a record id (letters, digits, '-' and '_')", what,
                          s);
    return CLI_EXIT_OK;
}

/* Writes the value name of option o into buf: the fixed metavar, or one derived from the
 * field's type ("TEXT", "N", "DATE", "ID", or the flag in capitals for an enum). */
static const char *metavar(const args_opt *o, char *buf, size_t cap)
{
    size_t i;

    if (o->metavar != NULL || o->field == NULL)
        return o->metavar != NULL ? o->metavar : "";
    switch (o->field->type) {
    case SG_FT_TEXT:
        return "TEXT";
    case SG_FT_INT:
        return "N";
    case SG_FT_DATE:
        return "DATE";
    case SG_FT_REF:
        return "ID";
    case SG_FT_ENUM:
        for (i = 0; o->flag[i] != '\0' && i + 1 < cap; i++)
            buf[i] = o->flag[i] == '-' ? '_' : (char)toupper((unsigned char)o->flag[i]);
        buf[i] = '\0';
        return buf;
    }
    return "VALUE";
}

/* Prints one option line of help: flag, value name, help, and what the field allows. */
static void help_line(FILE *out, const args_opt *o, cli_fields mode)
{
    char mv[32], left[64];
    const sg_field *f = o->field;
    const char *m = metavar(o, mv, sizeof(mv));

    snprintf(left, sizeof(left), "--%s%s%s", o->flag, m[0] ? " " : "", m);
    fprintf(out, "  %-22s %s", left, o->help != NULL ? o->help : f->help);
    if (f != NULL) {
        if ((f->flags & SG_F_REQUIRED) && mode == CLI_FIELDS_CREATE)
            fprintf(out, " (required)");
        if (f->type == SG_FT_ENUM) {
            fprintf(out, "; one of ");
            for (size_t i = 0; f->values[i] != NULL; i++)
                fprintf(out, "%s%s", i ? "|" : "", f->values[i]);
        }
        if (f->type == SG_FT_INT)
            fprintf(out, "; %lld..%lld", (long long)f->min, (long long)f->max);
        if (f->def != NULL && mode == CLI_FIELDS_CREATE)
            fprintf(out, " (default %s)", f->def);
    }
    fputc('\n', out);
}

void args_help(const cli_command *cmd, FILE *out)
{
    args a;
    char name[64], mv[32];
    size_t nfield = 0;

    build_opts(&a, cmd);
    command_name(cmd, name, sizeof(name));
    fprintf(out, "usage: sangam %s", name);
    if (cmd->operands[0] != '\0')
        fprintf(out, " %s", cmd->operands);
    for (size_t i = 0; i < a.nopt; i++) {
        const sg_field *f = a.opt[i].field;
        if (f != NULL && cmd->fields == CLI_FIELDS_CREATE && (f->flags & SG_F_REQUIRED))
            fprintf(out, " --%s %s", a.opt[i].flag, metavar(&a.opt[i], mv, sizeof(mv)));
        nfield += f != NULL;
    }
    fprintf(out, " [FLAGS]\n\n%c%s.\n", toupper((unsigned char)cmd->summary[0]), cmd->summary + 1);
    if (cmd->details != NULL)
        fprintf(out, "%s\n", cmd->details);
    if (nfield > 0) {
        switch (cmd->fields) {
        case CLI_FIELDS_FILTER:
            fprintf(out, "\nFilters (records whose field equals the value; --FLAG= matches an "
                         "empty field):\n");
            break;
        case CLI_FIELDS_UPDATE:
            if (a.rt->flags & SG_RT_APPEND_ONLY) /* history rows: nothing to clear */
                fprintf(out, "\nFields:\n");
            else
                fprintf(out,
                        "\nFields to change (--FLAG= or --FLAG '' clears an optional field):\n");
            break;
        default:
            fprintf(out, "\nFields:\n");
            break;
        }
        for (size_t i = 0; i < a.nopt; i++)
            if (a.opt[i].field != NULL)
                help_line(out, &a.opt[i], cmd->fields);
    }
    fprintf(out, "\nOptions:\n");
    for (size_t i = 0; i < a.nopt; i++)
        if (a.opt[i].field == NULL)
            help_line(out, &a.opt[i], cmd->fields);
}
