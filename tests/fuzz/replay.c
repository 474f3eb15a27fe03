/*
 * replay.c - runs a libFuzzer target without libFuzzer: feeds it every file named on the command
 * line, or every regular file directly inside a directory named there (not recursively).
 *
 * Linked with any fuzz target (fuzz_batch.c, fuzz_http.c, fuzz_csv.c, ...) so that CTest replays
 * each seed corpus, under the sanitizers when the build has them. It calls the target's optional
 * LLVMFuzzerInitialize() first, as libFuzzer does. Each input is passed in a heap buffer of exactly
 * its size, so AddressSanitizer catches a read one byte past the end.
 *
 * Exit status: 0 when at least one input ran; 1 when an argument cannot be read, or when there was
 * nothing to run (an empty corpus is a broken test, not a passing one). A target that crashes
 * ends the process, as under libFuzzer.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a target; NULL when it has none. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Reads the whole file at path and runs the target on it. Returns 0, or -1 after printing why the
 * file could not be read. */
static int run_file(const char *path)
{
    FILE *f = NULL;
    uint8_t *data = NULL;
    struct stat st;
    size_t size;
    int rc = -1;

    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        goto close_file;
    }
    size = (size_t)st.st_size;
    data = malloc(size > 0 ? size : 1);
    if (data == NULL) {
        fprintf(stderr, "replay: %s: out of memory for %zu bytes\n", path, size);
        goto close_file;
    }
    if (size > 0 && fread(data, 1, size, f) != size) {
        fprintf(stderr, "replay: %s: short read\n", path);
        goto free_data;
    }
    LLVMFuzzerTestOneInput(data, size);
    rc = 0;

free_data:
    free(data);
close_file:
    fclose(f);
    return rc;
}

/* scandir filter: skips hidden entries (".", "..", .gitkeep); run_dir keeps regular files only. */
static int is_input(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

/* Runs every regular file directly inside dir, in name order. Adds the number run to *count.
 * Returns 0 or -1. */
static int run_dir(const char *dir, size_t *count)
{
    struct dirent **names = NULL;
    int n, rc = 0;

    n = scandir(dir, &names, is_input, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        int len = snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);

        if (len < 0 || (size_t)len >= sizeof(path)) {
            fprintf(stderr, "replay: %s/%s: path too long\n", dir, names[i]->d_name);
            rc = -1;
        } else if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(path) == 0)
                (*count)++;
            else
                rc = -1;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    int failed = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
        return 1;
    }
    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;

        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            failed = 1;
        } else if (S_ISDIR(st.st_mode)) {
            failed |= run_dir(argv[i], &count) != 0;
        } else {
            if (run_file(argv[i]) == 0)
                count++;
            else
                failed = 1;
        }
    }
    printf("replay: ran %zu input(s)\n", count);
    if (count == 0) {
        fprintf(stderr, "replay: no inputs to run\n");
        return 1;
    }
    return failed;
}
