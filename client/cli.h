/*
 * cli.h - what every module of the `sangam` command-line client shares: the exit statuses, the
 * per-process context, and the description of a command.
 *
 * Invariants: a command's handler runs only after its arguments parsed cleanly (usage errors are
 * reported before any request is made) and after the node was resolved and a connection handle
 * made (ctx->http is never NULL inside a handler). Handlers return one of the CLI_EXIT_* values
 * and print their own error messages, each on one line starting "sangam: ".
 */
#ifndef SANGAM_CLIENT_CLI_H
#define SANGAM_CLIENT_CLI_H

#include <stddef.h>

#include "http.h"

/* Exit statuses: what a script can rely on. */
enum {
    CLI_EXIT_OK = 0,          /* the request succeeded */
    CLI_EXIT_REFUSED = 1,     /* the node answered and refused (validation, not found, ...) */
    CLI_EXIT_USAGE = 2,       /* the command line is wrong; nothing was sent */
    CLI_EXIT_UNREACHABLE = 3, /* no answer from the node (socket missing, refused, not sangamd) */
};

#ifndef SANGAM_VERSION
#define SANGAM_VERSION "dev"
#endif

/* The client's state for one run; one per process, passed down to every handler. */
typedef struct cli_ctx {
    const char *node;  /* --node value given on the command line, or NULL (argv owns it) */
    int json;          /* 1 when --json was given: print the node's JSON instead of text */
    http_client *http; /* connection to the node; owned here, closed by main */
} cli_ctx;

/* Which of a record type's fields become a command's flags. */
typedef enum cli_fields {
    CLI_FIELDS_NONE = 0, /* no field flags */
    CLI_FIELDS_CREATE,   /* every field a client may set (not SG_F_SERVER) */
    CLI_FIELDS_UPDATE,   /* fields a client may change (neither SG_F_SERVER nor SG_F_FIXED) */
    CLI_FIELDS_FILTER,   /* every field, as equality filters of a list */
} cli_fields;

/* Extra (non-field) options a command accepts; --help, --json and --node are always accepted. */
enum {
    CLI_OPT_LIST = 1 << 0,       /* --q --from --to --region --limit --after --all */
    CLI_OPT_DRY_RUN = 1 << 1,    /* --dry-run */
    CLI_OPT_SINCE = 1 << 2,      /* --since SEQ and --limit N (change log) */
    CLI_OPT_QUARANTINE = 1 << 3, /* --region R and --state S (the hub's quarantine) */
    CLI_OPT_INVITE = 1 << 4,     /* --expires D and --address HOST:PORT (hub invite) */
    CLI_OPT_RESTORE = 1 << 5,    /* --from-hub and --force (restore) */
    CLI_OPT_ROLE = 1 << 6,       /* --role viewer|admin (hub token create) */
    CLI_OPT_REPORT = 1 << 7,     /* --region --from --to --csv (report) */
};

struct args;

/* One command: a noun and a verb ("member add"), or a verb alone ("status"). */
typedef struct cli_command {
    const char *noun;     /* "member", or NULL for top-level commands */
    const char *verb;     /* "add" */
    const char *table;    /* record type whose fields make flags ("members"), or NULL */
    cli_fields fields;    /* which of them */
    const char *only;     /* space-separated field names to restrict to, or NULL for all */
    unsigned opts;        /* CLI_OPT_* bits */
    const char *operands; /* synopsis of positional arguments ("ID"), or "" */
    int min_operands;     /* positional arguments required */
    int max_operands;     /* positional arguments allowed; -1 for no limit */
    int (*run)(cli_ctx *ctx, const struct cli_command *cmd, const struct args *a);
    const char *summary; /* one line for help listings */
    const char *details; /* a paragraph for the command's --help, or NULL */
} cli_command;

/* The command table, terminated by an entry whose verb is NULL (commands.c). */
extern const cli_command cli_commands[];

#endif
