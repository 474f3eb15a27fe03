/*
 * latency.c - bench_latency SOCKET HUB_DB K: K single writes through a region's API (its Unix
 * socket, as a user's write goes), each timed until the row is visible in the hub's database.
 * Prints `sangam_latency samples=K p50_ms=X p99_ms=Y max_ms=Z`.
 *
 * The hub's database is polled read-only every 100 us, which is what "visible at the hub" means
 * for a reader there; the clock is CLOCK_MONOTONIC in this one process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <sqlite3.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    char *buf = arg;
    size_t have = strlen(buf), add = size * n;
    if (have + add < 4096) {
        memcpy(buf + have, p, add);
        buf[have + add] = '\0';
    }
    return size * n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    CURL *curl;
    sqlite3 *hub = NULL;
    sqlite3_stmt *probe = NULL;
    struct curl_slist *hdr = NULL;
    double *ms;
    char *end = NULL;
    long k = argc == 4 ? strtol(argv[3], &end, 10) : 0;

    if (argc != 4 || *end != '\0' || k < 1 || k > 1000000) {
        fprintf(stderr, "usage: bench_latency REGION_SOCKET HUB_DB SAMPLES\n");
        return 2;
    }
    ms = calloc((size_t)k, sizeof(*ms));
    curl = curl_easy_init();
    if (ms == NULL || curl == NULL ||
        sqlite3_open_v2(argv[2], &hub, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(hub, "SELECT 1 FROM members WHERE id = ?", -1, &probe, NULL) !=
            SQLITE_OK) {
        fprintf(stderr, "bench_latency: cannot open %s\n", argv[2]);
        return 1;
    }
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, argv[1]);
    curl_easy_setopt(curl, CURLOPT_URL, "http://localhost/v1/members");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    for (long i = 0; i < k; i++) {
        char body[128], resp[4096] = "", id[32] = "";
        const char *p;
        double t0, t1;
        snprintf(body, sizeof(body), "{\"name\":\"Latency %ld\",\"kind\":\"staff\"}", i);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, resp);
        t0 = now_ms();
        if (curl_easy_perform(curl) != CURLE_OK || (p = strstr(resp, "\"id\":\"")) == NULL) {
            fprintf(stderr, "bench_latency: write %ld failed: %s\n", i, resp);
            return 1;
        }
        memcpy(id, p + 6, 26);
        id[26] = '\0';
        for (;;) {
            int found;
            sqlite3_bind_text(probe, 1, id, -1, SQLITE_STATIC);
            found = sqlite3_step(probe) == SQLITE_ROW;
            sqlite3_reset(probe);
            t1 = now_ms();
            if (found)
                break;
            if (t1 - t0 > 10000) {
                fprintf(stderr, "bench_latency: %s not at the hub after 10 s\n", id);
                return 1;
            }
            nanosleep(&(struct timespec){0, 100000}, NULL);
        }
        ms[i] = t1 - t0;
    }
    qsort(ms, (size_t)k, sizeof(*ms), cmp_double);
    printf("sangam_latency samples=%ld p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n", k, ms[k / 2],
           ms[(k * 99) / 100 < k ? (k * 99) / 100 : k - 1], ms[k - 1]);
    sqlite3_finalize(probe);
    sqlite3_close(hub);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(curl);
    free(ms);
    return 0;
}
