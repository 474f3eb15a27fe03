/*
 * testutil.h - helpers for integration tests that drive a real sangamd process.
 *
 * What it gives a test: a private temporary directory (under $SANGAM_TEST_TMP, else /tmp) that
 * is removed afterwards; a node config written into it; sangamd (the binary named by $SANGAMD,
 * which CTest sets) started as a child with fork/exec, its stderr kept in a log file; waiting
 * until its Unix socket accepts connections; stopping it with SIGTERM and reaping it, so a test
 * can assert its exit status; HTTP requests through libcurl over the Unix socket or TCP, answered
 * as a status plus the parsed JSON body; and raw sockets for tests of HTTP framing that curl
 * would never send.
 *
 * Invariants: every child started here is reaped by tu_daemon_stop, tu_daemon_kill or
 * tu_wait_exit (no zombies, no stray daemons after a failed test: tu_daemon_cleanup kills what
 * is still running); every function that can fail returns -1 and prints why on stderr, so a
 * failing test says what went wrong rather than only where.
 *
 * Header-only (static inline) so each integration test is still one .c file under CTest.
 */
#ifndef SANGAM_TESTUTIL_H
#define SANGAM_TESTUTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#define TU_START_MS 10000 /* how long sangamd may take to open its socket */
#define TU_STOP_MS  10000 /* how long it may take to exit after SIGTERM */
#define TU_SUN_MAX  107   /* sun_path without its NUL */

/* One sangamd under test and the files that belong to it. */
typedef struct tu_daemon {
    char dir[PATH_MAX];        /* private temp dir (owned: removed by tu_daemon_cleanup) */
    char config[PATH_MAX];     /* the INI file */
    char db[PATH_MAX];         /* database path written into the config */
    char sock[TU_SUN_MAX + 1]; /* Unix socket path */
    char log[PATH_MAX];        /* sangamd's stderr */
    char id[64];               /* the node (region) id */
    int port;                  /* TCP port of [api] listen, or 0 */
    pid_t pid;                 /* running child, or 0 */
} tu_daemon;

/* A response: status, raw body and the body parsed as JSON (NULL when empty or not JSON). */
typedef struct tu_resp {
    long status; /* HTTP status, 0 when the request failed at transport level */
    char *raw;   /* owned, NUL-terminated */
    size_t raw_len;
    json_t *json;    /* owned */
    char ctype[128]; /* response Content-Type */
} tu_resp;

static inline uint64_t tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void tu_sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* The sangamd binary to test: $SANGAMD (set by CTest), else the usual build path. */
static inline const char *tu_sangamd(void)
{
    const char *p = getenv("SANGAMD");
    return p && p[0] ? p : "build/server/sangamd";
}

/* mkdir -p; returns 0 or -1. */
static inline int tu_mkdirs(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

/* Makes a fresh private directory for one test into out. The base is $SANGAM_TEST_TMP, or /tmp
 * when that is unset or too long to keep socket paths under the sun_path limit. */
static inline int tu_tmpdir(char *out, size_t cap, const char *tag)
{
    const char *base = getenv("SANGAM_TEST_TMP");
    if (base == NULL || base[0] == '\0' || strlen(base) > 60)
        base = "/tmp";
    if (tu_mkdirs(base) < 0) {
        fprintf(stderr, "testutil: mkdir %s: %s\n", base, strerror(errno));
        return -1;
    }
    snprintf(out, cap, "%s/sg-%s-XXXXXX", base, tag);
    if (mkdtemp(out) == NULL) {
        fprintf(stderr, "testutil: mkdtemp %s: %s\n", out, strerror(errno));
        return -1;
    }
    return 0;
}

/* rm -r of a directory made by tu_tmpdir (one level of subdirectories is enough here). */
static inline void tu_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[PATH_MAX];
    struct stat sb;

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            tu_rmtree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static inline int tu_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "testutil: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -1;
}

/* Reads a whole file into a new NUL-terminated buffer (caller frees), or NULL. */
static inline char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0, got;

    if (f == NULL)
        return NULL;
    do {
        if (n + 4096 + 1 > cap) {
            char *nb;
            cap = cap ? cap * 2 : 8192;
            nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, 4096, f);
        n += got;
    } while (got > 0);
    fclose(f);
    if (buf == NULL && (buf = malloc(1)) == NULL)
        return NULL;
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close). */
static inline int tu_free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* Starts argv[0] with stdout and stderr appended to log_path (or /dev/null); *pid is the child. */
static inline int tu_spawn(pid_t *pid, char *const argv[], const char *log_path)
{
    pid_t p = fork();
    if (p < 0) {
        fprintf(stderr, "testutil: fork: %s\n", strerror(errno));
        return -1;
    }
    if (p == 0) {
        int fd = open(log_path ? log_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);
        int nul = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (nul >= 0)
            dup2(nul, 0);
        execv(argv[0], argv);
        fprintf(stderr, "testutil: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    *pid = p;
    return 0;
}

/* Waits up to timeout_ms for pid to exit; *status is its wait status. Returns 0, or -1 on
 * timeout (the child is left running). */
static inline int tu_wait_exit(pid_t pid, unsigned timeout_ms, int *status)
{
    uint64_t end = tu_now_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR) {
            fprintf(stderr, "testutil: waitpid %ld: %s\n", (long)pid, strerror(errno));
            return -1;
        }
        if (tu_now_ms() >= end)
            return -1;
        tu_sleep_ms(10);
    }
}

/* The exit code of a wait status, or 128 + signal for a killed process. */
static inline int tu_exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

/* Runs sangamd with the given arguments to completion (at most timeout_ms); *code is its exit
 * code and *err_out (caller frees) everything it wrote on stdout and stderr. */
static inline int tu_run_sangamd(int *code, char **err_out, const char *dir, const char *arg1,
                                 const char *arg2, unsigned timeout_ms)
{
    char log[PATH_MAX];
    char *argv[4] = {(char *)tu_sangamd(), (char *)arg1, (char *)arg2, NULL};
    pid_t pid;
    int status;

    snprintf(log, sizeof(log), "%s/run.log", dir);
    unlink(log);
    if (tu_spawn(&pid, argv, log) < 0)
        return -1;
    if (tu_wait_exit(pid, timeout_ms, &status) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fprintf(stderr, "testutil: sangamd %s %s did not exit within %u ms\n", arg1,
                arg2 ? arg2 : "", timeout_ms);
        return -1;
    }
    *code = tu_exit_code(status);
    *err_out = tu_read_file(log, NULL);
    return *err_out ? 0 : -1;
}

/* Fills d for a node named id with its own temp dir and writes its config: database n.db and
 * socket n.sock in the dir, plus [api] listen on a free loopback port when tcp is set.
 * extra (may be NULL) is appended to the config verbatim. */
static inline int tu_daemon_init(tu_daemon *d, const char *id, int tcp, const char *extra)
{
    char cfg[2048];
    int n;

    memset(d, 0, sizeof(*d));
    snprintf(d->id, sizeof(d->id), "%s", id);
    if (tu_tmpdir(d->dir, sizeof(d->dir), id) < 0)
        return -1;
    snprintf(d->config, sizeof(d->config), "%s/node.ini", d->dir);
    snprintf(d->db, sizeof(d->db), "%s/n.db", d->dir);
    snprintf(d->log, sizeof(d->log), "%s/sangamd.log", d->dir);
    n = snprintf(d->sock, sizeof(d->sock), "%s/n.sock", d->dir);
    if (n < 0 || (size_t)n >= sizeof(d->sock)) {
        fprintf(stderr, "testutil: socket path under %s is too long\n", d->dir);
        return -1;
    }
    if (tcp && (d->port = tu_free_port()) <= 0) {
        fprintf(stderr, "testutil: no free TCP port\n");
        return -1;
    }
    n = snprintf(cfg, sizeof(cfg), "[node]\nrole = region\nid = %s\ndb = %s\n[api]\nsocket = %s\n",
                 id, d->db, d->sock);
    if (tcp)
        n += snprintf(cfg + n, sizeof(cfg) - (size_t)n, "listen = 127.0.0.1:%d\n", d->port);
    if (extra)
        snprintf(cfg + n, sizeof(cfg) - (size_t)n, "%s", extra);
    return tu_write_file(d->config, cfg);
}

/* Connects a stream socket to the Unix socket path; returns the fd or -1. */
static inline int tu_unix_connect(const char *path)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Starts sangamd on d's config and waits until its socket accepts a connection. Fails (after
 * reaping it) if the process exits first or the socket does not come up in time. */
static inline int tu_daemon_start(tu_daemon *d)
{
    char *argv[4] = {(char *)tu_sangamd(), "--config", d->config, NULL};
    uint64_t end;
    int status;

    if (tu_spawn(&d->pid, argv, d->log) < 0)
        return -1;
    end = tu_now_ms() + TU_START_MS;
    for (;;) {
        int fd = tu_unix_connect(d->sock);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            fprintf(stderr, "testutil: sangamd exited with code %d before serving (log %s)\n",
                    tu_exit_code(status), d->log);
            d->pid = 0;
            return -1;
        }
        if (tu_now_ms() >= end) {
            fprintf(stderr, "testutil: sangamd did not open %s within %d ms\n", d->sock,
                    TU_START_MS);
            kill(d->pid, SIGKILL);
            waitpid(d->pid, &status, 0);
            d->pid = 0;
            return -1;
        }
        tu_sleep_ms(10);
    }
}

/* Sends SIGTERM and reaps the process; returns its exit code (128 + signal if it died of one),
 * or -1 if it did not stop within TU_STOP_MS (it is then killed). */
static inline int tu_daemon_stop(tu_daemon *d)
{
    int status;

    if (d->pid <= 0)
        return -1;
    kill(d->pid, SIGTERM);
    if (tu_wait_exit(d->pid, TU_STOP_MS, &status) < 0) {
        fprintf(stderr, "testutil: sangamd ignored SIGTERM for %d ms; killing it\n", TU_STOP_MS);
        kill(d->pid, SIGKILL);
        waitpid(d->pid, &status, 0);
        d->pid = 0;
        return -1;
    }
    d->pid = 0;
    return tu_exit_code(status);
}

/* SIGKILL and reap: a crash, as far as the node can tell. */
static inline void tu_daemon_kill(tu_daemon *d)
{
    int status;
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &status, 0);
    d->pid = 0;
}

/* Kills a daemon still running and removes its directory (keeps it when $SANGAM_KEEP_TMP is
 * set, for post-mortems). NULL-safe. */
static inline void tu_daemon_cleanup(tu_daemon *d)
{
    if (d == NULL)
        return;
    tu_daemon_kill(d);
    if (d->dir[0] != '\0' && getenv("SANGAM_KEEP_TMP") == NULL)
        tu_rmtree(d->dir);
    d->dir[0] = '\0';
}

/* --- HTTP through libcurl --- */

typedef struct tu_buf {
    char *p;
    size_t len;
} tu_buf;

static inline size_t tu_curl_write(char *data, size_t size, size_t nmemb, void *user)
{
    tu_buf *b = user;
    size_t n = size * nmemb;
    char *p = realloc(b->p, b->len + n + 1);
    if (p == NULL)
        return 0;
    memcpy(p + b->len, data, n);
    b->p = p;
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

static inline void tu_resp_free(tu_resp *r)
{
    free(r->raw);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

/* Does one request to d: over TCP when tcp is set, else over the Unix socket. path includes
 * the query. ctype (may be NULL: no Content-Type header at all) and body (len bytes, may be
 * NULL) are sent as given. Returns 0 when an answer arrived (whatever its status), -1 when the
 * transport failed. */
static inline int tu_http(tu_resp *out, const tu_daemon *d, int tcp, const char *method,
                          const char *path, const char *ctype, const char *body, size_t len)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    tu_buf b = {0};
    char url[8192], hct[256];
    char *ct = NULL;
    CURLcode rc;

    memset(out, 0, sizeof(*out));
    if (c == NULL)
        return -1;
    snprintf(url, sizeof(url), "http://%s:%d%s", tcp ? "127.0.0.1" : "localhost",
             tcp ? d->port : 80, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (!tcp)
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, d->sock);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, tu_curl_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    /* curl would add its own Content-Type for a body and an Expect: 100-continue that the node
     * does not implement; send exactly what the test asked for. */
    snprintf(hct, sizeof(hct), "Content-Type:%s%s", ctype ? " " : "", ctype ? ctype : "");
    hdrs = curl_slist_append(hdrs, hct);
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);

    rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        fprintf(stderr, "testutil: %s %s: %s\n", method, path, curl_easy_strerror(rc));
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(c);
        free(b.p);
        return -1;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct != NULL)
        snprintf(out->ctype, sizeof(out->ctype), "%s", ct);
    out->raw = b.p ? b.p : strdup("");
    out->raw_len = b.len;
    if (b.len > 0)
        out->json = json_loadb(b.p, b.len, 0, NULL);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return 0;
}

/* --- raw sockets, for framing tests --- */

/* Writes all len bytes; returns 0 or -1. */
static inline int tu_send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads what arrives on fd until the peer closes (*closed = 1) or nothing arrives for
 * quiet_ms (*closed = 0). Returns a new NUL-terminated buffer (caller frees). */
static inline char *tu_recv_all(int fd, unsigned quiet_ms, size_t *len, int *closed)
{
    tu_buf b = {0};
    char chunk[8192];

    *closed = 0;
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, (int)quiet_ms);
        ssize_t n;
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n = recv(fd, chunk, sizeof(chunk), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *closed = 1;
            break;
        }
        if (tu_curl_write(chunk, 1, (size_t)n, &b) != (size_t)n)
            break;
    }
    if (b.p == NULL)
        b.p = calloc(1, 1);
    if (len)
        *len = b.len;
    return b.p;
}

/* Splits raw HTTP responses framed by Content-Length: fills status[i] and body[i] (new
 * strings, caller frees) for up to max whole responses. buf is modified (heads are cut off with
 * NULs). Returns how many whole responses were found. */
static inline int tu_split_responses(char *buf, size_t len, int *status, char **body, int max)
{
    char *p = buf, *end = buf + len;
    int n = 0;

    while (n < max && p < end) {
        char *head_end = strstr(p, "\r\n\r\n"), *cl;
        size_t blen = 0;
        if (head_end == NULL || sscanf(p, "HTTP/1.1 %d", &status[n]) != 1)
            break;
        *head_end = '\0';
        cl = strstr(p, "Content-Length: ");
        if (cl != NULL)
            blen = strtoul(cl + 16, NULL, 10);
        p = head_end + 4;
        if ((size_t)(end - p) < blen)
            break;
        body[n] = malloc(blen + 1);
        if (body[n] == NULL)
            break;
        memcpy(body[n], p, blen);
        body[n][blen] = '\0';
        p += blen;
        n++;
    }
    return n;
}

/* Reads exactly one response framed by Content-Length from fd (waiting at most timeout_ms):
 * *status and *body (new string, caller frees). Returns 0, or -1 on timeout, close or garbage.
 * Bytes after the response are not expected (one request in flight). */
static inline int tu_read_response(int fd, unsigned timeout_ms, int *status, char **body)
{
    tu_buf b = {0};
    char chunk[8192];
    uint64_t end = tu_now_ms() + timeout_ms;

    *body = NULL;
    for (;;) {
        char *head_end = b.p ? strstr(b.p, "\r\n\r\n") : NULL;
        if (head_end != NULL) {
            char *cl = strstr(b.p, "Content-Length: ");
            size_t blen = cl && cl < head_end ? strtoul(cl + 16, NULL, 10) : 0;
            size_t have = b.len - (size_t)(head_end + 4 - b.p);
            if (have >= blen) {
                if (sscanf(b.p, "HTTP/1.1 %d", status) != 1)
                    break;
                *body = malloc(blen + 1);
                if (*body == NULL)
                    break;
                memcpy(*body, head_end + 4, blen);
                (*body)[blen] = '\0';
                free(b.p);
                return 0;
            }
        }
        {
            struct pollfd pfd = {fd, POLLIN, 0};
            uint64_t now = tu_now_ms();
            ssize_t n;
            if (now >= end || poll(&pfd, 1, (int)(end - now)) <= 0)
                break;
            n = recv(fd, chunk, sizeof(chunk), 0);
            if (n <= 0 || tu_curl_write(chunk, 1, (size_t)n, &b) != (size_t)n)
                break;
        }
    }
    free(b.p);
    return -1;
}

#endif
