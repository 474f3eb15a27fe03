/*
 * main.c - the `sangam` command-line client: global options, command lookup, help, finding the
 * node, and dispatch to the handlers of the command table (commands.c).
 *
 * Order of work, which the exit statuses rely on: parse everything first (usage errors exit 2
 * before anything else happens), then --help (printed without contacting a node), then run the
 * command, whose handler checks its values before its first request; only that first request
 * finds the node (http.c), so a usage error never depends on whether a node is reachable.
 *
 * Invariants: the only state is the cli_ctx on main's stack; curl's global state is set up once
 * here and torn down after the command's handle is closed.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "http.h"

/* Prints the list of commands with their summaries. */
static void print_commands(FILE *out, const char *noun)
{
    for (const cli_command *c = cli_commands; c->verb != NULL; c++) {
        char name[48];
        if (noun != NULL && (c->noun == NULL || strcmp(c->noun, noun) != 0))
            continue;
        if (c->noun != NULL)
            snprintf(name, sizeof(name), "%s %s", c->noun, c->verb);
        else
            snprintf(name, sizeof(name), "%s", c->verb);
        fprintf(out, "  %-20s %s\n", name, c->summary);
    }
}

/* The top-level --help. */
static void print_help(FILE *out)
{
    fprintf(out, "usage: sangam [--node PATH|URL] [--json] COMMAND [ARGUMENTS] [FLAGS]\n"
                 "\n"
                 "Keep a Sangam node's records: organisations, members, sessions and issues.\n"
                 "\n"
                 "Commands:\n");
    print_commands(out, NULL);
    fprintf(out,
            "\n"
            "Options (also accepted after the command):\n"
            "  --node PATH|URL      the node's Unix socket or http://host:port; default\n"
            "                       $SANGAM_NODE, else the only *.sock in " HTTP_RUN_DIR "\n"
            "  --json               print the node's JSON answers\n"
            "  --help               show help; 'sangam COMMAND --help' lists a command's flags\n"
            "  --version            print the version\n"
            "\n"
            "Exit status: 0 done; 1 the node refused (invalid, not found, ...); 2 usage error,\n"
            "nothing sent; 3 the node could not be reached.\n");
}

/* Help for a noun ("sangam member --help"). */
static void print_noun_help(FILE *out, const char *noun)
{
    fprintf(out, "usage: sangam %s SUBCOMMAND [ARGUMENTS] [FLAGS]\n\nSubcommands:\n", noun);
    print_commands(out, noun);
    fprintf(out, "\nRun 'sangam %s SUBCOMMAND --help' for its flags.\n", noun);
}

/* Reports a usage error of the command line as a whole; returns CLI_EXIT_USAGE. */
static int usage(const char *msg, const char *word)
{
    fprintf(stderr, "sangam: %s%s%s; see 'sangam --help'\n", msg, word ? " " : "",
            word ? word : "");
    return CLI_EXIT_USAGE;
}

/* 1 if any command has noun. */
static int is_noun(const char *noun)
{
    for (const cli_command *c = cli_commands; c->verb != NULL; c++)
        if (c->noun != NULL && strcmp(c->noun, noun) == 0)
            return 1;
    return 0;
}

/* The command named by noun and verb (noun NULL for top-level commands), or NULL. */
static const cli_command *find_command(const char *noun, const char *verb)
{
    for (const cli_command *c = cli_commands; c->verb != NULL; c++)
        if (((noun == NULL && c->noun == NULL) ||
             (noun != NULL && c->noun != NULL && strcmp(c->noun, noun) == 0)) &&
            strcmp(c->verb, verb) == 0)
            return c;
    return NULL;
}

/* Parses the words after the command (argv[0..argc)), then runs cmd against the node. */
static int run(cli_ctx *ctx, const cli_command *cmd, int argc, char **argv)
{
    args a;
    int ret = args_parse(&a, cmd, ctx, argc, argv);

    if (ret != CLI_EXIT_OK)
        goto free_args;
    if (a.help) {
        args_help(cmd, stdout);
        goto free_args;
    }
    if ((ret = http_open(&ctx->http, ctx->node)) != CLI_EXIT_OK)
        goto free_args;
    ret = cmd->run(ctx, cmd, &a);
    http_close(ctx->http);
    ctx->http = NULL;
free_args:
    args_free(&a);
    return ret;
}

/* Reads the global options before the command; returns the index of the command word, or -1
 * with *exit_status set when the run ends here (help, version, usage error). */
static int global_options(cli_ctx *ctx, int argc, char **argv, int *exit_status)
{
    int i;

    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            print_help(stdout);
            *exit_status = CLI_EXIT_OK;
            return -1;
        } else if (strcmp(s, "--version") == 0) {
            printf("sangam %s\n", SANGAM_VERSION);
            *exit_status = CLI_EXIT_OK;
            return -1;
        } else if (strcmp(s, "--json") == 0) {
            ctx->json = 1;
        } else if (strncmp(s, "--node=", 7) == 0) {
            ctx->node = s + 7;
        } else if (strcmp(s, "--node") == 0) {
            if (i + 1 >= argc) {
                *exit_status =
                    usage("--node needs a value (a socket path or http://host:port)", NULL);
                return -1;
            }
            ctx->node = argv[++i];
        } else {
            *exit_status = usage("unknown option", s);
            return -1;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "sangam: missing command; see 'sangam --help'\n");
        *exit_status = CLI_EXIT_USAGE;
        return -1;
    }
    return i;
}

int main(int argc, char **argv)
{
    cli_ctx ctx = {NULL, 0, NULL};
    const cli_command *cmd;
    const char *word, *verb;
    int i, ret = CLI_EXIT_OK;

    i = global_options(&ctx, argc, argv, &ret);
    if (i < 0)
        return ret;
    word = argv[i];
    if (strcmp(word, "help") == 0) {
        /* "sangam help [NOUN [VERB]]" is "sangam [NOUN [VERB]] --help". */
        if (i + 1 >= argc) {
            print_help(stdout);
            return CLI_EXIT_OK;
        }
        word = argv[++i];
        if (is_noun(word) && i + 1 >= argc) {
            print_noun_help(stdout, word);
            return CLI_EXIT_OK;
        }
        cmd = is_noun(word) ? find_command(word, argv[i + 1]) : find_command(NULL, word);
        if (cmd == NULL)
            return usage("no such command:", word);
        args_help(cmd, stdout);
        return CLI_EXIT_OK;
    }
    if (!is_noun(word)) {
        cmd = find_command(NULL, word);
        if (cmd == NULL)
            return usage("unknown command", word);
        i += 1;
    } else {
        verb = i + 1 < argc ? argv[i + 1] : NULL;
        if (verb != NULL && (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0)) {
            print_noun_help(stdout, word);
            return CLI_EXIT_OK;
        }
        if (verb == NULL || verb[0] == '-') {
            fprintf(stderr, "sangam: %s: missing subcommand; one of:\n", word);
            print_commands(stderr, word);
            return CLI_EXIT_USAGE;
        }
        cmd = find_command(word, verb);
        if (cmd == NULL) {
            fprintf(stderr, "sangam: %s: unknown subcommand '%s'; one of:\n", word, verb);
            print_commands(stderr, word);
            return CLI_EXIT_USAGE;
        }
        i += 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "sangam: cannot initialise libcurl\n");
        return CLI_EXIT_UNREACHABLE;
    }
    ret = run(&ctx, cmd, argc - i, argv + i);
    fflush(stdout);
    curl_global_cleanup();
    return ret;
}
