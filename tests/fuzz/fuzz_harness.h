/*
 * fuzz_harness.h - what the fuzz targets that need a store share: a private temp-file database
 * (file-static, as libFuzzer's interface has no context argument), its clean-up, the property
 * check that aborts naming the failed property, and ASan's quarantine cap. Include once, after
 * defining FUZZ_NAME ("fuzz_csv.c") and STORE_RESET_RUNS.
 */
#ifndef SANGAM_FUZZ_HARNESS_H
#define SANGAM_FUZZ_HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__asan_default_options(void);

/* ASan holds up to 256 MiB of freed memory in quarantine by default; with the many small
 * allocations of SQLite and jansson that brings a 60 s run close to the 512 MiB rss limit of
 * tests/run.sh. 64 MiB still catches the use of recently freed memory. ASAN_OPTIONS overrides. */
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=64";
}

/* The harness's state. libFuzzer's interface has no context argument, so it is file-static. */
typedef struct harness {
    char dir[256];  /* private temp dir */
    char path[300]; /* database file inside it */
    sg_store *st;   /* open store, or NULL */
    unsigned runs;  /* inputs since the store was (re)created */
} harness;

static harness H;

/* Aborts when a property does not hold, saying which, so a crash report names it. */
static void require_at(int ok, const char *what, int line)
{
    if (!ok) {
        fprintf(stderr, "%s:%d: property failed: %s\n", FUZZ_NAME, line, what);
        abort();
    }
}
#define require(cond) require_at((cond) != 0, #cond, __LINE__)

static void remove_db_files(void)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[320];
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", H.path, suffix[i]);
        unlink(p);
    }
}

static void cleanup(void)
{
    sg_store_close(H.st);
    H.st = NULL;
    if (H.dir[0] != '\0') {
        remove_db_files();
        rmdir(H.dir);
    }
}

/* Replaces the store with an empty one (the first call makes the temp dir), synchronous=OFF:
 * the fuzzers test logic, not durability. Aborts when that fails. */
static void harness_fresh_store(void)
{
    sg_err err = {0};

    if (H.dir[0] == '\0') {
        const char *tmp = getenv("TMPDIR");
        snprintf(H.dir, sizeof(H.dir), "%s/fuzz-XXXXXX",
                 tmp && tmp[0] ? tmp : (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"));
        if (mkdtemp(H.dir) == NULL) {
            perror(FUZZ_NAME ": mkdtemp");
            abort();
        }
        snprintf(H.path, sizeof(H.path), "%s/fuzz.db", H.dir);
        atexit(cleanup);
    }
    sg_store_close(H.st);
    H.st = NULL;
    remove_db_files();
    if (sg_store_open(&H.st, H.path, "fuzzland", "region", &err) < 0) {
        fprintf(stderr, "%s: %s\n", FUZZ_NAME, err.msg);
        abort();
    }
    sqlite3_exec(sg_store_db(H.st), "PRAGMA synchronous = OFF", NULL, NULL, NULL);
}

#ifdef SANGAM_API_H
/* A JSON answer of the API (no Content-Type of its own): one object ending in a newline; at
 * 400 and above an "error" object with a string code (the same as resp->error_code) and a
 * message, below 400 no "error" at all. For the targets that drive sg_api_handle. */
static inline void require_json_answer(const sg_api_resp *resp)
{
    json_t *j, *e;

    require(resp->body != NULL && resp->body_len > 0 && resp->body[resp->body_len - 1] == '\n');
    j = json_loadb(resp->body, resp->body_len, 0, NULL);
    require(json_is_object(j));
    if (resp->status >= 400) {
        e = json_object_get(j, "error");
        require(json_is_object(e));
        require(json_is_string(json_object_get(e, "code")));
        require(json_is_string(json_object_get(e, "message")));
        require(resp->error_code != NULL &&
                strcmp(resp->error_code, json_string_value(json_object_get(e, "code"))) == 0);
    } else {
        require(json_object_get(j, "error") == NULL);
    }
    json_decref(j);
}
#endif

#endif
