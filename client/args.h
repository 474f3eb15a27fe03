/*
 * args.h - the command-line parser: a command's flags are derived from the record descriptors
 * of sangam/records.h (name, flag, type, enum values, required/fixed/server bits, help) plus a
 * few fixed options, and the same table drives parsing, value checks and --help.
 *
 * Invariants: flags match exactly (no abbreviations, so a typo never selects another flag); a
 * flag may be given once; every problem is a usage error reported before anything is sent.
 * Values are checked with the descriptors' own checks (sg_field_check_text/_int), so the CLI
 * refuses exactly what the node would refuse for a single value, and says which flag is wrong.
 */
#ifndef SANGAM_CLIENT_ARGS_H
#define SANGAM_CLIENT_ARGS_H

#include <jansson.h>
#include <stdio.h>

#include "cli.h"
#include "sangam/records.h"
#include "sangam/sbuf.h"

/* What an option is; ARGS_FIELD options carry their field. */
typedef enum args_id {
    ARGS_FIELD = 0,
    ARGS_HELP,
    ARGS_JSON,
    ARGS_NODE,
    ARGS_Q,
    ARGS_FROM,
    ARGS_TO,
    ARGS_REGION,
    ARGS_LIMIT,
    ARGS_AFTER,
    ARGS_ALL,
    ARGS_DRY_RUN,
    ARGS_SINCE,
    ARGS_STATE,
    ARGS_EXPIRES,
    ARGS_ADDRESS,
    ARGS_FROM_HUB,
    ARGS_FORCE,
    ARGS_ROLE,
    ARGS_CSV,
} args_id;

typedef struct args_opt {
    const char *flag;      /* the flag without "--" */
    args_id id;            /* what it is */
    const sg_field *field; /* ARGS_FIELD: the field it sets or filters on; else NULL */
    int takes_value;       /* 1 for "--flag VALUE", 0 for a switch */
    const char *metavar;   /* name of the value in help ("N"), or NULL to derive from field */
    const char *help;      /* help text, or NULL to use the field's */
} args_opt;

#define ARGS_MAX_OPTS 48

/* A parsed command line. */
typedef struct args {
    const cli_command *cmd;         /* the command parsed for */
    const sg_rectype *rt;           /* cmd->table's record type, or NULL */
    args_opt opt[ARGS_MAX_OPTS];    /* the options this command accepts */
    size_t nopt;                    /* entries in opt */
    const char *val[ARGS_MAX_OPTS]; /* value of opt[i] ("1" for a switch), or NULL if absent */
    const char **operand;           /* positional arguments (pointers into argv); owned array */
    size_t noperand;                /* entries in operand */
    int help;                       /* 1 when --help or -h was given */
} args;

/* Parses argv[0..argc) (the words after the command's verb) for cmd into a, and copies --json
 * and --node into ctx. Returns CLI_EXIT_OK (check a->help), or CLI_EXIT_USAGE after printing
 * what to fix. a must be released with args_free either way. */
int args_parse(args *a, const cli_command *cmd, cli_ctx *ctx, int argc, char **argv);
/* Frees what args_parse allocated (NULL-safe). */
void args_free(args *a);

/* Prints cmd's help (usage line, description, every flag with help, enum values, ranges). */
void args_help(const cli_command *cmd, FILE *out);
/* Prints "sangam: <command>: <message>; see 'sangam <command> --help'" on stderr and returns
 * CLI_EXIT_USAGE. */
int args_usage(const cli_command *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The value of the non-field option id, or NULL when it was not given. */
const char *args_get(const args *a, args_id id);
/* Reads option id as an integer in [min, max] into *out (left alone when the option is absent).
 * Returns CLI_EXIT_OK or CLI_EXIT_USAGE after printing. */
int args_int(const args *a, args_id id, long long min, long long max, long long *out);

/* Builds the JSON body of a create (mode CLI_FIELDS_CREATE: empty values are omitted, required
 * fields must be present) or an update (CLI_FIELDS_UPDATE: an empty value is null, which clears;
 * required fields may not be cleared) from the field flags given. Stores a new object in *out.
 * Returns CLI_EXIT_OK or CLI_EXIT_USAGE after printing. */
int args_body(json_t **out, const args *a, cli_fields mode);
/* Appends the field flags given as list filters ("kind=staff"; empty matches null) and the list
 * options --q --from --to --region --limit to the path in q (--after is the pager's). Returns
 * CLI_EXIT_OK or CLI_EXIT_USAGE after printing. */
int args_query(sbuf *q, const args *a);

/* Checks that s is a record id; returns CLI_EXIT_OK or CLI_EXIT_USAGE after printing, naming
 * what (e.g. "MEMBER_ID"). */
int args_check_id(const cli_command *cmd, const char *what, const char *s);

#endif
