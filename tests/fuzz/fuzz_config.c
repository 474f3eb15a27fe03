/*
 * fuzz_config.c - libFuzzer target for sangamd's config file reader (server/config.c, inih
 * behind it): arbitrary bytes as the INI file.
 *
 * sg_config_load reads a file (it resolves relative paths against the file's directory), so each
 * input is written to one file in a private temporary directory, created on first use and removed
 * at exit.
 *
 * Besides what the sanitizers catch, these properties are checked and abort() when broken, so
 * the fuzzer reports the input (abort is this harness's; sangamd never aborts on a config):
 *   1. a refusal is SG_ECONFIG, with the same code in err and one line (no newline) that starts
 *      with the file's path, as config.h promises;
 *   2. a config that loads keeps every rule config.h states: role region or hub, a valid node id,
 *      an absolute database path, an API endpoint, a hub with [listen] address and a region
 *      without one, replication only with [tls] ca, cert and key, numbers in their ranges, every
 *      address host:port, every string terminated inside its field;
 *   3. what was loaded was written: each short value (role, id, log level, every address) is a
 *      whole value of the input - it occurs there followed by the end of a value (end of line or
 *      file, white space, or a comment) - so no value was cut short to fit its field (a cut
 *      "host:7480" would still read as host:port, with another port) or by a NUL byte;
 *   4. loading is deterministic: a second load of the same file gives the same struct.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "sangam/records.h"

#define FUZZ_NAME        "fuzz_config.c"
#define CONFIG_MAX_INPUT (64u * 1024) /* longer configs add nothing but time */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__asan_default_options(void);

/* ASan's quarantine as in fuzz_harness.h: 64 MiB keeps a 60 s run well under tests/run.sh's
 * 512 MiB rss limit and still catches the use of recently freed memory. */
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=64";
}

/* The harness's state: libFuzzer's interface has no context argument, so it is file-static. */
static struct {
    char dir[256];  /* private temp dir */
    char path[300]; /* the config file inside it */
} H;

/* Aborts when a property does not hold, saying which, so a crash report names it. */
static void require_at(int ok, const char *what, int line)
{
    if (!ok) {
        fprintf(stderr, "%s:%d: property failed: %s\n", FUZZ_NAME, line, what);
        abort();
    }
}
#define require(cond) require_at((cond) != 0, #cond, __LINE__)

static void cleanup(void)
{
    if (H.dir[0] != '\0') {
        unlink(H.path);
        rmdir(H.dir);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");

    (void)argc;
    (void)argv;
    snprintf(H.dir, sizeof(H.dir), "%s/fuzzcfg-XXXXXX",
             tmp && tmp[0] ? tmp : (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"));
    if (mkdtemp(H.dir) == NULL) {
        perror(FUZZ_NAME ": mkdtemp");
        abort();
    }
    snprintf(H.path, sizeof(H.path), "%s/node.ini", H.dir);
    atexit(cleanup);
    return 0;
}

/* 1 if the field of cap bytes holds a NUL-terminated string. */
static int terminated(const char *field, size_t cap)
{
    return memchr(field, '\0', cap) != NULL;
}
#define TERMINATED(f) terminated((f), sizeof(f))

/* 1 if addr is "" (not set) or host:port. */
static int addr_ok(const char *addr)
{
    char host[256];
    int port;
    return addr[0] == '\0' || sg_config_split_addr(addr, host, sizeof(host), &port) == 0;
}

/* Property 3: 1 if s is "" or occurs in data followed by the end of a value. */
static int whole_value(const uint8_t *data, size_t size, const char *s)
{
    size_t n = strlen(s);

    if (n == 0)
        return 1;
    for (size_t i = 0; i + n <= size; i++) {
        if (memcmp(data + i, s, n) != 0)
            continue;
        if (i + n == size || strchr("\n\r \t\v\f;#", data[i + n]) != NULL)
            return 1;
    }
    return 0;
}

/* Property 2. */
static void check_loaded(const sg_config *c)
{
    int hub = strcmp(c->role, "hub") == 0;

    require(TERMINATED(c->path) && TERMINATED(c->role) && TERMINATED(c->id) && TERMINATED(c->db));
    require(TERMINATED(c->api_socket) && TERMINATED(c->api_listen) && TERMINATED(c->api_https));
    require(TERMINATED(c->log_level) && TERMINATED(c->hub_address));
    require(TERMINATED(c->listen_address) && TERMINATED(c->listen_public));
    require(TERMINATED(c->tls_ca) && TERMINATED(c->tls_cert) && TERMINATED(c->tls_key));
    require(TERMINATED(c->tls_ca_key));
    require(hub || strcmp(c->role, "region") == 0);
    require(sg_region_id_valid(c->id, strlen(c->id)));
    require(hub || strcmp(c->id, "hub") != 0);
    require(c->db[0] == '/');
    require(c->api_socket[0] == '\0' || c->api_socket[0] == '/');
    require(strlen(c->api_socket) <= SG_SOCKET_PATH_MAX);
    require(c->api_socket[0] || c->api_listen[0] || c->api_https[0]);
    require(addr_ok(c->api_listen) && addr_ok(c->api_https) && addr_ok(c->hub_address));
    require(addr_ok(c->listen_address) && addr_ok(c->listen_public));
    require(strcmp(c->log_level, "debug") == 0 || strcmp(c->log_level, "info") == 0 ||
            strcmp(c->log_level, "warn") == 0 || strcmp(c->log_level, "error") == 0);
    if (hub) {
        require(c->listen_address[0] != '\0' && c->hub_address[0] == '\0');
    } else {
        require(c->listen_address[0] == '\0' && c->listen_public[0] == '\0');
        require(c->tls_ca_key[0] == '\0' && c->api_https[0] == '\0');
    }
    if (c->hub_address[0] || c->listen_address[0])
        require(c->tls_ca[0] == '/' && c->tls_cert[0] == '/' && c->tls_key[0] == '/');
    require(c->cert_days >= 1 && c->cert_days <= 3650);
    require(c->renew_before_ms >= 0 && c->retention_ms >= 0);
    require(c->keepalive_ms >= 100 && c->keepalive_ms <= 3600 * 1000);
    require(c->reconnect_max_ms >= 100 && c->reconnect_max_ms <= 3600 * 1000);
    require(c->batch_changes >= 1 && c->batch_changes <= 20000);
    require(c->batch_bytes >= 1024 && c->batch_bytes <= 960 * 1024);
    require(c->window >= 1 && c->window <= 8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sg_config c1, c2; /* about 30 KiB each: not on the stack */
    sg_err err = {0}, err2 = {0};
    FILE *f;
    int rc, rc2;

    if (size > CONFIG_MAX_INPUT)
        return 0;
    f = fopen(H.path, "wb");
    require(f != NULL);
    require(size == 0 || fwrite(data, 1, size, f) == size);
    require(fclose(f) == 0);

    rc = sg_config_load(&c1, H.path, &err);
    if (rc != 0) { /* property 1 */
        require(rc == SG_ECONFIG && err.code == rc);
        require(strncmp(err.msg, H.path, strlen(H.path)) == 0);
        require(strchr(err.msg, '\n') == NULL);
    } else {
        check_loaded(&c1); /* property 2 */
        /* Property 3. */
        require(whole_value(data, size, c1.role) && whole_value(data, size, c1.id));
        require(whole_value(data, size, c1.api_listen) && whole_value(data, size, c1.api_https));
        require(whole_value(data, size, c1.hub_address));
        require(whole_value(data, size, c1.listen_address));
        require(whole_value(data, size, c1.listen_public));
        require(strcmp(c1.log_level, "info") == 0 || whole_value(data, size, c1.log_level));
    }
    /* Property 4. */
    rc2 = sg_config_load(&c2, H.path, &err2);
    require(rc2 == rc && strcmp(err.msg, err2.msg) == 0);
    require(rc != 0 || memcmp(&c1, &c2, sizeof(c1)) == 0);
    return 0;
}
