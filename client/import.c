/*
 * import.c - member CSV import: POST /v1/members/import with the file as text/csv.
 *
 * The file is read whole into memory (the node accepts at most 16 MiB, checked here first so a
 * too-large file fails before uploading) and sent in one request. While stderr is a terminal a
 * progress line shows the upload and then the node's work; it is erased before any other
 * output, so piped or captured output never contains it.
 *
 * Invariants: nothing is written to stdout except the final summary (or --json answer); all
 * problems go to stderr, one line each, in the order the node listed them.
 */
#include "import.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "table.h"

#define IMPORT_MAX (16u * 1024u * 1024u) /* the node's body limit (docs/API.md) */

/* State of the progress line. */
typedef struct progress {
    int tty;            /* 1 when stderr is a terminal: draw the line at all */
    int drawn;          /* 1 while a line is on screen */
    int waiting;        /* 1 once the upload finished and the node is working */
    const char *file;   /* the file's name as given */
    const char *action; /* what the node does after the upload */
    double last;        /* when the line was last drawn (monotonic seconds) */
} progress;

/* Monotonic seconds. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Upload progress from http.c: redraws the line at most ten times a second, and once when the
 * upload completes and the node starts validating. */
static void on_progress(void *arg, long long sent, long long total)
{
    progress *p = arg;
    double t = now();

    if (!p->tty || total <= 0)
        return;
    if (sent >= total) {
        if (p->waiting)
            return;
        p->waiting = 1;
        fprintf(stderr, "\rsangam: %s: uploaded; the node is %s\xe2\x80\xa6\033[K", p->file,
                p->action);
    } else {
        if (t - p->last < 0.1)
            return;
        fprintf(stderr, "\rsangam: %s: uploading %lld%% (%.1f of %.1f MB)\033[K", p->file,
                sent * 100 / total, (double)sent / 1e6, (double)total / 1e6);
    }
    p->last = t;
    p->drawn = 1;
    fflush(stderr);
}

/* Erases the progress line if one is drawn. */
static void progress_clear(progress *p)
{
    if (p->drawn)
        fprintf(stderr, "\r\033[K");
    p->drawn = 0;
}

/* Reads all of path into *out (*len bytes, NUL-terminated). Returns CLI_EXIT_OK, or prints
 * why not and returns CLI_EXIT_USAGE (unreadable) or CLI_EXIT_REFUSED (too large). */
static int read_file(const cli_command *cmd, const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    char *data = NULL;
    size_t n;

    *out = NULL;
    *len = 0;
    if (f == NULL)
        return args_usage(cmd, "cannot open %s: %s", path, strerror(errno));
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return args_usage(cmd, "%s is not a regular file", path);
    }
    if ((unsigned long long)st.st_size > IMPORT_MAX) {
        fclose(f);
        fprintf(stderr,
                "sangam: %s is %.1f MiB; the node imports at most %u MiB at once: split the "
                "file (keep the header row in each part)\n",
                path, (double)st.st_size / (1024.0 * 1024.0), IMPORT_MAX >> 20);
        return CLI_EXIT_REFUSED;
    }
    data = malloc((size_t)st.st_size + 1);
    if (data == NULL) {
        fclose(f);
        fprintf(stderr, "sangam: out of memory reading %s\n", path);
        return CLI_EXIT_REFUSED;
    }
    n = fread(data, 1, (size_t)st.st_size, f);
    if (ferror(f)) {
        fclose(f);
        free(data);
        return args_usage(cmd, "cannot read %s: %s", path, strerror(errno));
    }
    fclose(f);
    data[n] = '\0';
    *out = data;
    *len = n;
    return CLI_EXIT_OK;
}

/* Prints the problems of a refused import as "FILE:ROW: COLUMN: message", dropping a leading
 * "COLUMN: " from the node's message so the column is not named twice. */
static void print_problems(const char *file, const json_t *rows)
{
    size_t i;
    const json_t *r;

    json_array_foreach(rows, i, r)
    {
        const char *col = json_string_value(json_object_get(r, "column"));
        const char *msg = json_string_value(json_object_get(r, "message"));
        json_int_t row = json_integer_value(json_object_get(r, "row"));
        size_t n = col != NULL ? strlen(col) : 0;

        if (msg == NULL)
            msg = "invalid";
        if (col != NULL && strncmp(msg, col, n) == 0 && strncmp(msg + n, ": ", 2) == 0)
            msg += n + 2;
        fprintf(stderr, "%s", file);
        if (row > 0)
            fprintf(stderr, ":%lld", (long long)row);
        if (col != NULL)
            fprintf(stderr, ": %s", col);
        fprintf(stderr, ": %s\n", msg);
    }
}

int import_run(cli_ctx *ctx, const cli_command *cmd, const args *a)
{
    const char *file = a->operand[0];
    int dry = args_get(a, ARGS_DRY_RUN) != NULL;
    progress prog = {isatty(STDERR_FILENO),
                     0,
                     0,
                     file,
                     dry ? "checking the rows" : "validating and importing",
                     0};
    http_request req = {"POST",     dry ? "/v1/members/import?dry_run=1" : "/v1/members/import",
                        "text/csv", NULL,
                        0,          on_progress,
                        &prog};
    http_response resp = {0, NULL, NULL};
    const json_t *err, *count;
    char *data = NULL;
    size_t len = 0;
    double start;
    int ret = read_file(cmd, file, &data, &len);

    if (ret != CLI_EXIT_OK)
        return ret;
    req.body = data;
    req.body_len = len;
    start = now();
    ret = http_send(ctx->http, &req, &resp);
    progress_clear(&prog);
    if (ret != CLI_EXIT_OK)
        goto free_data;
    if (resp.status >= 200 && resp.status <= 299) {
        count = json_object_get(resp.json, dry ? "checked" : "imported");
        if (ctx->json)
            table_json(stdout, resp.json);
        else if (dry)
            printf("checked %lld rows of %s in %.1fs: all valid, nothing imported (dry run)\n",
                   (long long)json_integer_value(count), file, now() - start);
        else
            printf("imported %lld members from %s in %.1fs\n", (long long)json_integer_value(count),
                   file, now() - start);
        goto free_resp;
    }
    err = json_object_get(resp.json, "error");
    if (json_is_array(json_object_get(err, "rows")))
        print_problems(file, json_object_get(err, "rows"));
    ret = http_fail(&resp);
    if (json_array_size(json_object_get(err, "rows")) > 0)
        fprintf(stderr,
                "sangam: nothing was imported from %s; fix the rows above and run the "
                "import again\n",
                file);
free_resp:
    http_response_free(&resp);
free_data:
    free(data);
    return ret;
}
