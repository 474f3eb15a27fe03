/*
 * tlspeer.c - an odd or hostile peer for the hub's replication port (and its HTTP API), driven by
 * tests/integration/test_security.sh (issue 7, "TLS policy matrix" and "Resource abuse").
 *
 * Modes (tlspeer --help says the same):
 *   connect   one TLS connection with the credentials, ALPN and TLS versions given; with
 *             --hello REGION it sends HELLO and reads the answer. Says whether the hub let it in.
 *   idle      N connections held S seconds, each stopped at a stage: tcp (connected, silent),
 *             hello (ClientHello sent, handshake never finished) or tls (handshake done, no HELLO).
 *   flood     N connections, each closed as soon as it reached its stage.
 *   slowread  N connections that send HELLO, read its WELCOME, then send PINGs for S seconds and
 *             never read again (or only --read-rate bytes a second): the hub's PONGs pile up.
 *   serve     a TLS server on HOST:PORT for S seconds, standing in for a man in the middle:
 *             reports whether clients finished the handshake, showed a certificate, sent data.
 *   slowhttp  N slowloris clients of an HTTP API (HTTPS, or plain with --stage tcp): each sends
 *             a request line, then one header line a second, and never ends the head; reports
 *             when and after how many lines the server cut each off, and what it answered.
 *
 * Invariants: every mode stops by itself (connections and handshakes have --timeout, the opening
 * of connections at most OPEN_MAX_MS, holding -s seconds); the result is one line of key=value
 * pairs on stdout (strings quoted), so a shell script can pick out a count with grep -o. Exit
 * status 0 when the run happened (whatever the hub did), 2 for a usage error, 1 when the tool
 * itself could not run (bad files, no memory).
 *
 * Plain non-blocking sockets, OpenSSL and one poll() loop: no libuv, so exactly what is written
 * here reaches the wire. It speaks just enough of the protocol (HELLO, PING) through
 * sangam/frame.h.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "sangam/frame.h"
#include "store.h" /* SG_SCHEMA_VERSION, the schema a region announces in HELLO */

#define MAX_CONNS   20000
#define MAX_SECS    600
#define OPEN_MAX_MS 60000 /* opening all connections never takes longer than this */
#define MAX_LINES   1000  /* slowhttp: lines of request head at most */

enum mode { M_CONNECT, M_IDLE, M_FLOOD, M_SLOWREAD, M_SERVE, M_SLOWHTTP };
enum stage { ST_TCP, ST_HELLO, ST_TLS };
enum cstate { C_NEW, C_CONNECTING, C_HANDSHAKING, C_HELD, C_DONE };

typedef struct opts {
    enum mode mode;
    enum stage stage;
    struct sockaddr_in addr; /* HOST:PORT: where to connect, or (serve) where to listen */
    long n;                  /* connections */
    long secs;               /* how long to hold (idle, slowread) or serve */
    long timeout_ms;         /* for one connect, handshake or answer */
    long parallel;           /* connections being opened at once */
    long read_rate;          /* slowread: bytes per second each connection reads (0: none) */
    long lines;              /* slowhttp: lines of request head each connection sends */
    const char *cert, *key;  /* certificate and key to present (client: optional) */
    const char *ca;          /* client: verify the server with this CA (else no verification) */
    const char *alpn;        /* protocol to offer (client) or select (server); "" for none */
    const char *hello;       /* region to name in HELLO, or NULL */
    int min_tls, max_tls;    /* TLS1_2_VERSION / TLS1_3_VERSION */
} opts;

typedef struct counts {
    long attempted;        /* connections tried */
    long connected;        /* TCP connections established */
    long connect_failed;   /* refused, reset, or no socket */
    long timed_out;        /* connect or handshake not done within --timeout */
    long handshake_ok;     /* TLS handshakes finished (client side) */
    long handshake_failed; /* TLS handshakes that ended in an error */
    long peer_closed;      /* connections the peer ended while we held them */
    long open_at_end;      /* connections still open when the hold ended */
    char last_error[256];  /* the last OpenSSL or socket error seen */
} counts;

typedef struct conn {
    int fd;
    SSL *ssl;
    enum cstate st;
    uint64_t deadline; /* ms, for connecting and handshaking */
} conn;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: tlspeer MODE [OPTIONS] HOST:PORT\n"
        "\n"
        "A test peer for a Sangam hub's replication port, and (slowhttp) its HTTP API; loopback\n"
        "tests only.\n"
        "\n"
        "Modes:\n"
        "  connect   one TLS connection; with --hello REGION send HELLO and read the answer\n"
        "            prints verdict=welcome (let in), refused, or open (no answer in time)\n"
        "  idle      open -n connections, hold them -s seconds at --stage, then close\n"
        "  flood     open -n connections, closing each as soon as it reaches --stage\n"
        "  slowread  -n connections send HELLO, then PINGs for -s seconds, never reading\n"
        "  serve     listen on HOST:PORT as a TLS server (--cert, --key) for -s seconds and\n"
        "            report what clients did (a stand-in man in the middle)\n"
        "  slowhttp  -n slowloris clients of an HTTP API: each sends a request line and then\n"
        "            one header line a second, --lines in all, never ending the head; stops\n"
        "            when the server has closed them all or after -s seconds. Over TLS (ALPN\n"
        "            http/1.1 unless --alpn) or, with --stage tcp, plain HTTP\n"
        "\n"
        "Options:\n"
        "  -n, --count N       connections (default 1, at most %d)\n"
        "  -s, --seconds S     hold / serve time (default 5, at most %d)\n"
        "  --stage STAGE       tcp (connect only), hello (send ClientHello, never finish),\n"
        "                      tls (finish the handshake; the default)\n"
        "  --cert FILE         certificate chain to present (PEM)\n"
        "  --key FILE          its private key (PEM)\n"
        "  --ca FILE           client: verify the server against this CA (default: do not)\n"
        "  --alpn PROTO        ALPN to offer or select (default sangam/1, slowhttp http/1.1;\n"
        "                      '' for none)\n"
        "  --min-tls V         1.2 or 1.3 (default 1.2)\n"
        "  --max-tls V         1.2 or 1.3 (default 1.3)\n"
        "  --hello REGION      connect, slowread: send HELLO naming REGION after the handshake\n"
        "  --timeout MS        deadline of one connect, handshake or answer (default 5000)\n"
        "  --parallel N        connections being opened at once (default 128)\n"
        "  --read-rate B       slowread: read B bytes per second per connection (default 0:\n"
        "                      never read)\n"
        "  --lines L           slowhttp: lines of request head to send, one a second\n"
        "                      (default 60, at most %d)\n"
        "  -h, --help          this text\n"
        "\n"
        "Prints one line of key=value counts: attempted, connected, connect_failed,\n"
        "timed_out, handshake_ok, handshake_failed, peer_closed (ended by the peer while\n"
        "held), open_at_end, and per mode verdict/answer, bytes_sent, bytes_read,\n"
        "client_cert, app_bytes; slowhttp: sent_all (connections that sent every line),\n"
        "answered, status (the first status line), lines_at_close_min/max, closed_ms_min/max\n"
        "(from a connection's first line to the server's close).\n"
        "Exit status 0 when it ran, 1 when it could not, 2 for a usage error. Every mode\n"
        "stops by itself.\n",
        MAX_CONNS, MAX_SECS, MAX_LINES);
}

/* Copies OpenSSL's last queued error (or errno's text, or what) into c->last_error. */
static void note_error(counts *c, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    if (e != 0)
        ERR_error_string_n(e, c->last_error, sizeof(c->last_error));
    else
        snprintf(c->last_error, sizeof(c->last_error), "%s", what);
    ERR_clear_error();
}

/* Prints s with double quotes and backslashes escaped, inside double quotes. */
static void print_quoted(const char *key, const char *s)
{
    printf(" %s=\"", key);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            putchar('\\');
        putchar(*s == '\n' ? ' ' : *s);
    }
    putchar('"');
}

static void print_counts(const char *mode, const counts *c)
{
    printf("mode=%s attempted=%ld connected=%ld connect_failed=%ld timed_out=%ld "
           "handshake_ok=%ld handshake_failed=%ld peer_closed=%ld open_at_end=%ld",
           mode, c->attempted, c->connected, c->connect_failed, c->timed_out, c->handshake_ok,
           c->handshake_failed, c->peer_closed, c->open_at_end);
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_tls(const char *s, int *out)
{
    if (strcmp(s, "1.2") == 0)
        *out = TLS1_2_VERSION;
    else if (strcmp(s, "1.3") == 0)
        *out = TLS1_3_VERSION;
    else
        return -1;
    return 0;
}

static int parse_addr(const char *s, struct sockaddr_in *out)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    long port;

    if (colon == NULL || (size_t)(colon - s) >= sizeof(host) ||
        parse_long(colon + 1, 1, 65535, &port) < 0)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

/* ALPN as the wire wants it: one length byte, then the name. */
static int alpn_wire(unsigned char *buf, size_t cap, const char *proto, unsigned *out_len)
{
    size_t n = strlen(proto);
    if (n == 0 || n > 255 || n + 1 > cap)
        return -1;
    buf[0] = (unsigned char)n;
    memcpy(buf + 1, proto, n);
    *out_len = (unsigned)(n + 1);
    return 0;
}

static SSL_CTX *client_ctx(const opts *o, counts *c)
{
    SSL_CTX *sc = SSL_CTX_new(TLS_client_method());
    unsigned char alpn[256];
    unsigned alpn_len;

    if (sc == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(sc, o->min_tls);
    SSL_CTX_set_max_proto_version(sc, o->max_tls);
    SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF);
    if (o->alpn[0] != '\0') {
        if (alpn_wire(alpn, sizeof(alpn), o->alpn, &alpn_len) < 0 ||
            SSL_CTX_set_alpn_protos(sc, alpn, alpn_len) != 0)
            goto fail;
    }
    if (o->ca != NULL) {
        if (SSL_CTX_load_verify_locations(sc, o->ca, NULL) != 1)
            goto fail;
        SSL_CTX_set_verify(sc, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(sc, SSL_VERIFY_NONE, NULL);
    }
    if (o->cert != NULL && (SSL_CTX_use_certificate_chain_file(sc, o->cert) != 1 ||
                            SSL_CTX_use_PrivateKey_file(sc, o->key, SSL_FILETYPE_PEM) != 1))
        goto fail;
    return sc;
fail:
    note_error(c, "cannot set up the TLS client");
    SSL_CTX_free(sc);
    return NULL;
}

/* A new non-blocking TCP socket connecting to o->addr: fd >= 0 (connected or in progress), or
 * -1 with the error noted. */
static int tcp_start(const opts *o, counts *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;

    if (fd < 0) {
        note_error(c, strerror(errno));
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)&o->addr, sizeof(o->addr)) < 0 &&
        errno != EINPROGRESS) {
        note_error(c, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void conn_end(conn *k)
{
    SSL_free(k->ssl);
    k->ssl = NULL;
    if (k->fd >= 0)
        close(k->fd);
    k->fd = -1;
    k->st = C_DONE;
}

/* Advances a handshake; returns 1 done, 0 wants more, -1 failed (noted, conn ended). */
static int handshake_step(conn *k, counts *c)
{
    int rc;
    ERR_clear_error();
    rc = SSL_connect(k->ssl);
    if (rc == 1)
        return 1;
    rc = SSL_get_error(k->ssl, rc);
    if (rc == SSL_ERROR_WANT_READ || rc == SSL_ERROR_WANT_WRITE)
        return 0;
    note_error(c, "handshake ended");
    c->handshake_failed++;
    conn_end(k);
    return -1;
}

/* The connection reached its stage: flood closes it, idle holds it. */
static void reached(const opts *o, conn *k, long *held)
{
    if (o->mode == M_FLOOD) {
        conn_end(k);
        return;
    }
    k->st = C_HELD;
    (*held)++;
}

/* TCP is up: go on to the stage. */
static void connected(const opts *o, SSL_CTX *sc, conn *k, counts *c, long *held)
{
    c->connected++;
    if (o->stage == ST_TCP) {
        reached(o, k, held);
        return;
    }
    k->ssl = SSL_new(sc);
    if (k->ssl == NULL || SSL_set_fd(k->ssl, k->fd) != 1) {
        note_error(c, "SSL_new failed");
        conn_end(k);
        return;
    }
    k->st = C_HANDSHAKING;
    if (handshake_step(k, c) < 0)
        return;
    if (o->stage == ST_HELLO) { /* the ClientHello is out (or queued in the kernel) */
        reached(o, k, held);
        return;
    }
    if (SSL_is_init_finished(k->ssl)) {
        c->handshake_ok++;
        reached(o, k, held);
    }
}

/* idle and flood: opens o->n connections, at most o->parallel at a time, then (idle) holds the
 * survivors o->secs seconds watching for the peer closing them. */
static int run_many(const opts *o, counts *c)
{
    conn *ks = calloc((size_t)o->n, sizeof(*ks));
    struct pollfd *pf = calloc((size_t)o->n, sizeof(*pf));
    long *idx = calloc((size_t)o->n, sizeof(*idx));
    SSL_CTX *sc = NULL;
    long next = 0, active = 0, held = 0;
    uint64_t open_end = now_ms() + OPEN_MAX_MS, hold_end;

    if (ks == NULL || pf == NULL || idx == NULL)
        goto fail;
    if (o->stage != ST_TCP && (sc = client_ctx(o, c)) == NULL)
        goto fail;
    for (long i = 0; i < o->n; i++)
        ks[i].fd = -1;

    /* Opening. */
    while (now_ms() < open_end) {
        long np = 0;
        uint64_t t = now_ms();
        while (active < o->parallel && next < o->n) {
            conn *k = &ks[next++];
            c->attempted++;
            k->fd = tcp_start(o, c);
            if (k->fd < 0) {
                c->connect_failed++;
                k->st = C_DONE;
                continue;
            }
            k->st = C_CONNECTING;
            k->deadline = t + (uint64_t)o->timeout_ms;
            active++;
        }
        if (active == 0 && next == o->n)
            break;
        for (long i = 0; i < next; i++) {
            conn *k = &ks[i];
            if (k->st != C_CONNECTING && k->st != C_HANDSHAKING)
                continue;
            pf[np].fd = k->fd;
            pf[np].events = k->st == C_CONNECTING    ? POLLOUT
                            : SSL_want_write(k->ssl) ? POLLOUT
                                                     : POLLIN;
            pf[np].revents = 0;
            idx[np++] = i;
        }
        if (poll(pf, (nfds_t)np, 50) < 0 && errno != EINTR)
            goto fail;
        t = now_ms();
        for (long j = 0; j < np; j++) {
            conn *k = &ks[idx[j]];
            if (pf[j].revents != 0 && k->st == C_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof(err);
                getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err != 0) {
                    note_error(c, strerror(err));
                    c->connect_failed++;
                    conn_end(k);
                } else {
                    connected(o, sc, k, c, &held);
                }
            } else if (pf[j].revents != 0 && k->st == C_HANDSHAKING) {
                int rc = handshake_step(k, c);
                if (rc == 1) {
                    c->handshake_ok++;
                    reached(o, k, &held);
                }
            }
            if ((k->st == C_CONNECTING || k->st == C_HANDSHAKING) && t >= k->deadline) {
                snprintf(c->last_error, sizeof(c->last_error), "%s did not finish in %ld ms",
                         k->st == C_CONNECTING ? "connect" : "handshake", o->timeout_ms);
                c->timed_out++;
                conn_end(k);
            }
            if (k->st != C_CONNECTING && k->st != C_HANDSHAKING)
                active--;
        }
    }
    /* Whatever is still opening when the opening time is up has timed out. */
    for (long i = 0; i < next; i++) {
        if (ks[i].st == C_CONNECTING || ks[i].st == C_HANDSHAKING) {
            c->timed_out++;
            conn_end(&ks[i]);
        }
    }

    /* Holding: never read; POLLRDHUP says the peer ended the connection. A script may wait for
     * the "holding" line on stderr before it measures the peer under load. */
    if (o->mode == M_IDLE)
        fprintf(stderr, "tlspeer: holding %ld connections for %ld s\n", held, o->secs);
    hold_end = now_ms() + (uint64_t)o->secs * 1000;
    while (o->mode == M_IDLE && held > 0 && now_ms() < hold_end) {
        long np = 0;
        uint64_t left = hold_end - now_ms();
        for (long i = 0; i < next; i++) {
            if (ks[i].st != C_HELD)
                continue;
            pf[np].fd = ks[i].fd;
            pf[np].events = POLLRDHUP;
            pf[np].revents = 0;
            idx[np++] = i;
        }
        if (poll(pf, (nfds_t)np, (int)(left > 200 ? 200 : left)) < 0 && errno != EINTR)
            goto fail;
        for (long j = 0; j < np; j++) {
            if (pf[j].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
                c->peer_closed++;
                held--;
                conn_end(&ks[idx[j]]);
            }
        }
    }
    for (long i = 0; i < next; i++) {
        if (ks[i].st == C_HELD) {
            c->open_at_end++;
            conn_end(&ks[i]);
        }
    }
    SSL_CTX_free(sc);
    free(ks);
    free(pf);
    free(idx);
    print_counts(o->mode == M_IDLE ? "idle" : "flood", c);
    print_quoted("last_error", c->last_error);
    putchar('\n');
    return 0;
fail:
    fprintf(stderr, "tlspeer: %s\n", c->last_error[0] ? c->last_error : strerror(errno));
    if (ks != NULL)
        for (long i = 0; i < o->n; i++)
            if (ks[i].st != C_NEW && ks[i].st != C_DONE)
                conn_end(&ks[i]);
    SSL_CTX_free(sc);
    free(ks);
    free(pf);
    free(idx);
    return 1;
}

/* Waits until fd is ready for events or the deadline passes: 1 ready, 0 timed out. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        uint64_t t = now_ms();
        int rc;
        if (t >= deadline)
            return 0;
        rc = poll(&p, 1, (int)(deadline - t));
        if (rc > 0)
            return 1;
        if (rc < 0 && errno != EINTR)
            return 0;
    }
}

/* Connects and handshakes one connection before deadline: 0 and k set up, or -1 (counted). */
static int open_one(const opts *o, SSL_CTX *sc, conn *k, counts *c, uint64_t deadline)
{
    long held = 0;
    int err = 0;
    socklen_t len = sizeof(err);

    c->attempted++;
    k->ssl = NULL;
    k->fd = tcp_start(o, c);
    if (k->fd < 0) {
        c->connect_failed++;
        return -1;
    }
    k->st = C_CONNECTING;
    if (!wait_fd(k->fd, POLLOUT, deadline)) {
        snprintf(c->last_error, sizeof(c->last_error), "connect did not finish in time");
        c->timed_out++;
        conn_end(k);
        return -1;
    }
    getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
        note_error(c, strerror(err));
        c->connect_failed++;
        conn_end(k);
        return -1;
    }
    connected(o, sc, k, c, &held);
    while (k->st == C_HANDSHAKING) {
        if (!wait_fd(k->fd, SSL_want_write(k->ssl) ? POLLOUT : POLLIN, deadline)) {
            snprintf(c->last_error, sizeof(c->last_error), "handshake did not finish in time");
            c->timed_out++;
            conn_end(k);
            return -1;
        }
        if (handshake_step(k, c) == 1) {
            c->handshake_ok++;
            k->st = C_HELD;
        }
    }
    return k->st == C_HELD ? 0 : -1;
}

/* Writes all of buf before deadline: 0, or -1 with the error noted. */
static int ssl_write_all(conn *k, const void *buf, size_t len, counts *c, uint64_t deadline)
{
    for (;;) {
        int rc, e;
        ERR_clear_error();
        rc = SSL_write(k->ssl, buf, (int)len);
        if (rc > 0)
            return 0;
        e = SSL_get_error(k->ssl, rc);
        if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
            !wait_fd(k->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
            note_error(c, e == SSL_ERROR_ZERO_RETURN ? "closed" : "write failed or timed out");
            return -1;
        }
    }
}

/* Reads exactly len bytes before deadline: 1, 0 on a clean close, -1 on error or timeout. */
static int ssl_read_all(conn *k, void *buf, size_t len, counts *c, uint64_t deadline)
{
    size_t got = 0;
    while (got < len) {
        int rc, e;
        ERR_clear_error();
        rc = SSL_read(k->ssl, (char *)buf + got, (int)(len - got));
        if (rc > 0) {
            got += (size_t)rc;
            continue;
        }
        e = SSL_get_error(k->ssl, rc);
        if (e == SSL_ERROR_ZERO_RETURN) {
            snprintf(c->last_error, sizeof(c->last_error), "close_notify");
            return 0;
        }
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            note_error(c, e == SSL_ERROR_SYSCALL ? "connection ended without close_notify"
                                                 : "read failed");
            return -1;
        }
        if (!wait_fd(k->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
            snprintf(c->last_error, sizeof(c->last_error), "no answer in time");
            return -2;
        }
    }
    return 1;
}

/* Sends HELLO naming region and reads one frame back. Fills verdict ("welcome", "refused",
 * "open" when nothing came in time) and answer (the message, e.g. "ERROR auth: ..."). */
static void hello_exchange(conn *k, const char *region, counts *c, uint64_t deadline, char *verdict,
                           size_t vcap, char *answer, size_t acap)
{
    sg_msg m;
    void *frame = NULL;
    size_t flen = 0;
    uint8_t hdr[SG_FRAME_HEADER];
    uint8_t *payload = NULL;
    uint32_t plen = 0;
    sg_err err = {0};
    int rc;

    memset(&m, 0, sizeof(m));
    m.type = SG_MSG_HELLO;
    m.version = SG_PROTO_VERSION;
    m.node = region;
    m.node_len = (uint32_t)strlen(region);
    m.schema = SG_SCHEMA_VERSION;
    snprintf(verdict, vcap, "refused");
    answer[0] = '\0';
    if (sg_msg_encode(&frame, &flen, &m) < 0) {
        snprintf(answer, acap, "cannot encode HELLO");
        return;
    }
    rc = ssl_write_all(k, frame, flen, c, deadline);
    free(frame);
    if (rc == 0)
        rc = ssl_read_all(k, hdr, sizeof(hdr), c, deadline);
    else
        rc = -1;
    if (rc == 1 && sg_frame_len(&plen, hdr, SG_FRAME_MAX, &err) == 0 &&
        (payload = malloc(plen)) != NULL)
        rc = ssl_read_all(k, payload, plen, c, deadline);
    else if (rc == 1)
        rc = -1;
    if (rc == -2)
        snprintf(verdict, vcap, "open");
    if (rc != 1) {
        snprintf(answer, acap, "%s", c->last_error);
        free(payload);
        return;
    }
    if (sg_msg_decode(&m, payload, plen, &err) < 0) {
        snprintf(answer, acap, "undecodable answer: %s", err.msg);
    } else if (m.type == SG_MSG_WELCOME) {
        snprintf(verdict, vcap, "welcome");
        snprintf(answer, acap, "WELCOME seq %llu", (unsigned long long)m.seq);
    } else if (m.type == SG_MSG_ERROR) {
        snprintf(answer, acap, "ERROR %.*s: %.*s", (int)m.code_len, m.code, (int)m.text_len,
                 m.text);
    } else {
        snprintf(answer, acap, "%s", sg_msg_name(m.type));
    }
    free(payload);
}

/* connect: one handshake; then HELLO (with --hello) or a read that waits for the hub to speak
 * (a TLS 1.3 server refuses a client certificate after the client's handshake has finished). */
static int run_connect(const opts *o, counts *c)
{
    SSL_CTX *sc = client_ctx(o, c);
    uint64_t deadline = now_ms() + (uint64_t)o->timeout_ms;
    char verdict[16] = "refused", answer[512] = "";
    conn k = {.fd = -1};

    if (sc == NULL) {
        fprintf(stderr, "tlspeer: %s\n", c->last_error);
        return 1;
    }
    if (open_one(o, sc, &k, c, deadline) == 0) {
        if (o->hello != NULL) {
            hello_exchange(&k, o->hello, c, deadline, verdict, sizeof(verdict), answer,
                           sizeof(answer));
        } else {
            char b;
            int rc = ssl_read_all(&k, &b, 1, c, deadline);
            snprintf(verdict, sizeof(verdict), "%s", rc == -2 ? "open" : "refused");
            snprintf(answer, sizeof(answer), "%s", rc == 1 ? "data" : c->last_error);
        }
        if (k.st != C_DONE) {
            c->open_at_end++;
            conn_end(&k);
        }
    }
    SSL_CTX_free(sc);
    print_counts("connect", c);
    printf(" verdict=%s", verdict);
    print_quoted("answer", answer);
    print_quoted("last_error", c->last_error);
    putchar('\n');
    return 0;
}

/* slowread: o->n connections that HELLO, then PING without reading for o->secs seconds. */
static int run_slowread(const opts *o, counts *c)
{
    SSL_CTX *sc = client_ctx(o, c);
    conn *ks = calloc((size_t)o->n, sizeof(*ks));
    struct pollfd *pf = calloc((size_t)o->n, sizeof(*pf));
    long *idx = calloc((size_t)o->n, sizeof(*idx));
    uint64_t *got = calloc((size_t)o->n, sizeof(*got)); /* bytes each connection has read */
    unsigned char pings[16000], sink[16384];
    size_t plen = 0;
    long welcomed = 0, blocked = 0, live = 0;
    uint64_t bytes = 0, read_total = 0, start, end;
    int rc = 1;

    if (sc == NULL || ks == NULL || pf == NULL || idx == NULL || got == NULL)
        goto out;
    /* A chunk of PING frames, written as one TLS record at a time. */
    for (uint64_t nonce = 1;; nonce++) {
        sg_msg m;
        void *f = NULL;
        size_t flen = 0;
        memset(&m, 0, sizeof(m));
        m.type = SG_MSG_PING;
        m.nonce = nonce;
        if (sg_msg_encode(&f, &flen, &m) < 0)
            goto out;
        if (plen + flen > sizeof(pings)) {
            free(f);
            break;
        }
        memcpy(pings + plen, f, flen);
        plen += flen;
        free(f);
    }
    SSL_CTX_set_mode(sc, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    for (long i = 0; i < o->n; i++) {
        char verdict[16], answer[512];
        uint64_t deadline = now_ms() + (uint64_t)o->timeout_ms;
        ks[i].fd = -1;
        if (open_one(o, sc, &ks[i], c, deadline) < 0)
            continue;
        hello_exchange(&ks[i], o->hello, c, deadline, verdict, sizeof(verdict), answer,
                       sizeof(answer));
        if (strcmp(verdict, "welcome") != 0) {
            snprintf(c->last_error, sizeof(c->last_error), "%s", answer);
            conn_end(&ks[i]);
            continue;
        }
        welcomed++;
        live++;
    }
    fprintf(stderr, "tlspeer: %ld connections send PINGs and read %ld bytes/s for %ld s\n", live,
            o->read_rate, o->secs);
    start = now_ms();
    end = start + (uint64_t)o->secs * 1000;
    while (live > 0 && now_ms() < end) {
        long np = 0;
        uint64_t left = end - now_ms();
        uint64_t allowed = (uint64_t)o->read_rate * (now_ms() - start) / 1000;
        for (long i = 0; i < o->n; i++) {
            if (ks[i].st != C_HELD)
                continue;
            pf[np].fd = ks[i].fd;
            pf[np].events = POLLOUT | POLLRDHUP | (got[i] < allowed ? POLLIN : 0);
            pf[np].revents = 0;
            idx[np++] = i;
        }
        if (poll(pf, (nfds_t)np, (int)(left > 200 ? 200 : left)) < 0 && errno != EINTR)
            goto out;
        for (long j = 0; j < np; j++) {
            conn *k = &ks[idx[j]];
            int w, e;
            if (pf[j].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
                c->peer_closed++;
                live--;
                conn_end(k);
                continue;
            }
            if ((pf[j].revents & POLLIN) && got[idx[j]] < allowed) {
                size_t want = allowed - got[idx[j]];
                ERR_clear_error();
                w = SSL_read(k->ssl, sink, (int)(want < sizeof(sink) ? want : sizeof(sink)));
                if (w > 0) {
                    got[idx[j]] += (uint64_t)w;
                    read_total += (uint64_t)w;
                } else if ((e = SSL_get_error(k->ssl, w)) != SSL_ERROR_WANT_READ &&
                           e != SSL_ERROR_WANT_WRITE) {
                    note_error(c, "read failed");
                    c->peer_closed++;
                    live--;
                    conn_end(k);
                    continue;
                }
            }
            if (!(pf[j].revents & POLLOUT))
                continue;
            ERR_clear_error();
            w = SSL_write(k->ssl, pings, (int)plen);
            if (w > 0) {
                bytes += (uint64_t)w;
                continue;
            }
            e = SSL_get_error(k->ssl, w);
            if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                blocked++;
                continue;
            }
            note_error(c, "write failed");
            c->peer_closed++;
            live--;
            conn_end(k);
        }
    }
    rc = 0;
out:
    if (ks != NULL)
        for (long i = 0; i < o->n; i++)
            if (ks[i].st == C_HELD) {
                c->open_at_end++;
                conn_end(&ks[i]);
            }
    SSL_CTX_free(sc);
    free(ks);
    free(pf);
    free(idx);
    free(got);
    if (rc != 0) {
        fprintf(stderr, "tlspeer: %s\n", c->last_error[0] ? c->last_error : "cannot run");
        return rc;
    }
    print_counts("slowread", c);
    printf(" welcomed=%ld bytes_sent=%llu bytes_read=%llu write_blocked=%ld", welcomed,
           (unsigned long long)bytes, (unsigned long long)read_total, blocked);
    print_quoted("last_error", c->last_error);
    putchar('\n');
    return 0;
}

/* slowhttp: one slowloris connection's progress. */
typedef struct slow {
    uint64_t first;  /* ms when its first line went out (0: not yet) */
    uint64_t closed; /* ms when the server closed it (0: it has not) */
    long lines;      /* lines of request head sent */
    int blocked;     /* the last line would have blocked: wait until writable */
    int answered;    /* the server sent it application bytes */
} slow;

/* slowhttp: line i of a request head that never ends (0 is the request line). */
static int slow_line(char *buf, size_t cap, long i)
{
    if (i == 0)
        return snprintf(buf, cap, "GET /healthz HTTP/1.1\r\n");
    if (i == 1)
        return snprintf(buf, cap, "Host: hub\r\n");
    return snprintf(buf, cap, "X-Slow-%ld: %ld\r\n", i, i);
}

/* slowhttp: sends one short line, plain or over TLS: 1 sent, 0 it would block (send it again
 * later), -1 the connection failed (noted). */
static int slow_send(conn *k, const char *buf, int len, counts *c)
{
    int rc, e;
    if (k->ssl == NULL) {
        ssize_t w = send(k->fd, buf, (size_t)len, MSG_NOSIGNAL);
        if (w == len)
            return 1;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return 0;
        note_error(c, w < 0 ? strerror(errno) : "short write");
        return -1;
    }
    ERR_clear_error();
    rc = SSL_write(k->ssl, buf, len);
    if (rc > 0)
        return 1;
    e = SSL_get_error(k->ssl, rc);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
        return 0;
    note_error(c, "write failed");
    return -1;
}

/* slowhttp: reads whatever the server sent, keeping the first status line in status: 1 when the
 * server ended the connection (EOF, close_notify, an error), 0 when it is still open. */
static int slow_drain(conn *k, slow *s, char *status, size_t scap, counts *c)
{
    char buf[4096];
    for (;;) {
        int n;
        if (k->ssl == NULL) {
            ssize_t r = recv(k->fd, buf, sizeof(buf) - 1, 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return 0;
            if (r < 0)
                note_error(c, strerror(errno));
            if (r <= 0)
                return 1;
            n = (int)r;
        } else {
            int e;
            ERR_clear_error();
            n = SSL_read(k->ssl, buf, (int)sizeof(buf) - 1);
            if (n <= 0) {
                e = SSL_get_error(k->ssl, n);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                    return 0;
                if (e != SSL_ERROR_ZERO_RETURN)
                    note_error(c, "connection ended without close_notify");
                return 1;
            }
        }
        buf[n] = '\0';
        if (!s->answered && status[0] == '\0')
            snprintf(status, scap, "%.*s", (int)strcspn(buf, "\r\n"), buf);
        s->answered = 1;
    }
}

/* slowhttp: o->n connections (TLS, or plain with --stage tcp) that each send a request line and
 * then one header line a second, o->lines in all, and never the blank line that ends the head.
 * Runs until the server has closed them all or o->secs seconds have passed. */
static int run_slowhttp(const opts *o, counts *c)
{
    conn *ks = calloc((size_t)o->n, sizeof(*ks));
    slow *ss = calloc((size_t)o->n, sizeof(*ss));
    struct pollfd *pf = calloc((size_t)o->n, sizeof(*pf));
    long *idx = calloc((size_t)o->n, sizeof(*idx));
    SSL_CTX *sc = NULL;
    char status[128] = "";
    long live = 0, sent_all = 0, answered = 0, lmin = 0, lmax = 0, nclosed = 0;
    uint64_t cmin = 0, cmax = 0, open_end = now_ms() + OPEN_MAX_MS, end;
    int rc = 1;

    if (ks == NULL || ss == NULL || pf == NULL || idx == NULL)
        goto out;
    if (o->stage != ST_TCP) {
        if ((sc = client_ctx(o, c)) == NULL)
            goto out;
        /* A line that would block is written again from a new buffer with the same bytes. */
        SSL_CTX_set_mode(sc, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    for (long i = 0; i < o->n; i++) {
        uint64_t deadline = now_ms() + (uint64_t)o->timeout_ms;
        ks[i].fd = -1;
        ks[i].st = C_DONE;
        if (now_ms() >= open_end)
            continue;
        if (open_one(o, sc, &ks[i], c, deadline < open_end ? deadline : open_end) == 0)
            live++;
    }
    fprintf(stderr, "tlspeer: %ld connections send a header line a second, %ld lines each\n", live,
            o->lines);
    end = now_ms() + (uint64_t)o->secs * 1000;
    while (live > 0 && now_ms() < end) {
        uint64_t t = now_ms(), wake = end;
        long np = 0;
        for (long i = 0; i < o->n; i++) {
            slow *s = &ss[i];
            short ev = POLLIN | POLLRDHUP;
            if (ks[i].st != C_HELD)
                continue;
            if (s->lines < o->lines) {
                uint64_t due = s->first + (uint64_t)s->lines * 1000;
                if (s->lines == 0 || t >= due) {
                    char line[64];
                    int w = slow_line(line, sizeof(line), s->lines);
                    w = slow_send(&ks[i], line, w, c);
                    if (w < 0) { /* the server has gone */
                        s->closed = t;
                        c->peer_closed++;
                        live--;
                        conn_end(&ks[i]);
                        continue;
                    }
                    s->blocked = w == 0;
                    if (w > 0 && s->lines++ == 0)
                        s->first = t;
                    due = s->first + (uint64_t)s->lines * 1000;
                }
                if (s->blocked)
                    ev |= POLLOUT;
                else if (s->lines < o->lines && due < wake)
                    wake = due;
            }
            pf[np].fd = ks[i].fd;
            pf[np].events = ev;
            pf[np].revents = 0;
            idx[np++] = i;
        }
        t = now_ms();
        if (poll(pf, (nfds_t)np, wake > t ? (int)(wake - t) : 0) < 0 && errno != EINTR)
            goto out;
        t = now_ms();
        for (long j = 0; j < np; j++) {
            conn *k = &ks[idx[j]];
            slow *s = &ss[idx[j]];
            int gone = 0;
            if (pf[j].revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR))
                gone = slow_drain(k, s, status, sizeof(status), c) ||
                       (pf[j].revents & (POLLRDHUP | POLLHUP | POLLERR));
            if (!gone)
                continue;
            s->closed = t;
            c->peer_closed++;
            live--;
            conn_end(k);
        }
    }
    rc = 0;
out:
    for (long i = 0; ks != NULL && ss != NULL && i < o->n; i++) {
        const slow *s = &ss[i];
        if (ks[i].st == C_HELD) {
            c->open_at_end++;
            conn_end(&ks[i]);
        }
        sent_all += s->lines == o->lines;
        answered += s->answered;
        if (s->closed == 0 || s->first == 0)
            continue;
        if (nclosed == 0 || s->lines < lmin)
            lmin = s->lines;
        if (nclosed == 0 || s->lines > lmax)
            lmax = s->lines;
        if (nclosed == 0 || s->closed - s->first < cmin)
            cmin = s->closed - s->first;
        if (nclosed == 0 || s->closed - s->first > cmax)
            cmax = s->closed - s->first;
        nclosed++;
    }
    SSL_CTX_free(sc);
    free(ks);
    free(ss);
    free(pf);
    free(idx);
    if (rc != 0) {
        fprintf(stderr, "tlspeer: %s\n", c->last_error[0] ? c->last_error : "cannot run");
        return rc;
    }
    print_counts("slowhttp", c);
    printf(" lines=%ld sent_all=%ld answered=%ld", o->lines, sent_all, answered);
    print_quoted("status", status);
    printf(" lines_at_close_min=%ld lines_at_close_max=%ld closed_ms_min=%llu closed_ms_max=%llu",
           lmin, lmax, (unsigned long long)cmin, (unsigned long long)cmax);
    print_quoted("last_error", c->last_error);
    putchar('\n');
    return 0;
}

static int accept_any(int ok, X509_STORE_CTX *xs)
{
    (void)ok;
    (void)xs;
    return 1; /* a man in the middle takes whatever certificate it is shown */
}

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    const char *want = arg;
    (void)ssl;
    for (unsigned i = 0; i < inlen; i += 1u + in[i]) {
        if (i + 1u + in[i] > inlen)
            break;
        if (want[0] == '\0' || (in[i] == strlen(want) && memcmp(in + i + 1, want, in[i]) == 0)) {
            *out = in + i + 1;
            *outlen = in[i];
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* serve: a TLS server for o->secs seconds; for each client, whether it finished the handshake,
 * presented a certificate, and how many bytes of application data it sent. */
static int run_serve(const opts *o, counts *c)
{
    SSL_CTX *sc = SSL_CTX_new(TLS_server_method());
    int lfd = -1, one = 1;
    long accepted = 0, client_certs = 0;
    uint64_t app_bytes = 0, end;

    if (sc == NULL || o->cert == NULL || o->key == NULL ||
        SSL_CTX_use_certificate_chain_file(sc, o->cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(sc, o->key, SSL_FILETYPE_PEM) != 1) {
        note_error(c, "serve needs --cert and --key");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(sc, o->min_tls);
    SSL_CTX_set_max_proto_version(sc, o->max_tls);
    SSL_CTX_set_verify(sc, SSL_VERIFY_PEER, accept_any);
    SSL_CTX_set_alpn_select_cb(sc, select_alpn, (void *)o->alpn);
    SSL_CTX_set_num_tickets(sc, 0);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(lfd, (const struct sockaddr *)&o->addr, sizeof(o->addr)) < 0 || listen(lfd, 16) < 0) {
        note_error(c, strerror(errno));
        goto fail;
    }
    /* Ready: a script may wait for this line on stderr before pointing a node here. */
    fprintf(stderr, "tlspeer: serving\n");
    end = now_ms() + (uint64_t)o->secs * 1000;
    while (wait_fd(lfd, POLLIN, end)) {
        conn k = {.fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)};
        uint64_t deadline = now_ms() + (uint64_t)o->timeout_ms;
        X509 *peer;
        if (k.fd < 0)
            continue;
        accepted++;
        k.ssl = SSL_new(sc);
        if (k.ssl == NULL || SSL_set_fd(k.ssl, k.fd) != 1) {
            conn_end(&k);
            continue;
        }
        for (;;) {
            int rc, e;
            ERR_clear_error();
            rc = SSL_accept(k.ssl);
            if (rc == 1) {
                c->handshake_ok++;
                break;
            }
            e = SSL_get_error(k.ssl, rc);
            if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
                !wait_fd(k.fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
                note_error(c, "handshake did not finish");
                c->handshake_failed++;
                break;
            }
        }
        peer = SSL_get1_peer_certificate(k.ssl);
        if (peer != NULL) {
            client_certs++;
            X509_free(peer);
        }
        if (SSL_is_init_finished(k.ssl)) { /* whatever the client sends, until it stops */
            char buf[4096];
            for (;;) {
                int rc = SSL_read(k.ssl, buf, sizeof(buf));
                if (rc > 0) {
                    app_bytes += (uint64_t)rc;
                    continue;
                }
                rc = SSL_get_error(k.ssl, rc);
                if (rc != SSL_ERROR_WANT_READ || !wait_fd(k.fd, POLLIN, deadline))
                    break;
            }
        }
        conn_end(&k);
    }
    close(lfd);
    SSL_CTX_free(sc);
    c->attempted = c->connected = accepted;
    print_counts("serve", c);
    printf(" accepted=%ld client_cert=%ld app_bytes=%llu", accepted, client_certs,
           (unsigned long long)app_bytes);
    print_quoted("last_error", c->last_error);
    putchar('\n');
    return 0;
fail:
    fprintf(stderr, "tlspeer: %s\n", c->last_error);
    if (lfd >= 0)
        close(lfd);
    SSL_CTX_free(sc);
    return 1;
}

int main(int argc, char **argv)
{
    static const struct option lopts[] = {{"count", required_argument, NULL, 'n'},
                                          {"seconds", required_argument, NULL, 's'},
                                          {"stage", required_argument, NULL, 'S'},
                                          {"cert", required_argument, NULL, 'c'},
                                          {"key", required_argument, NULL, 'k'},
                                          {"ca", required_argument, NULL, 'a'},
                                          {"alpn", required_argument, NULL, 'p'},
                                          {"min-tls", required_argument, NULL, 'm'},
                                          {"max-tls", required_argument, NULL, 'M'},
                                          {"hello", required_argument, NULL, 'H'},
                                          {"timeout", required_argument, NULL, 't'},
                                          {"parallel", required_argument, NULL, 'P'},
                                          {"read-rate", required_argument, NULL, 'R'},
                                          {"lines", required_argument, NULL, 'L'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    opts o = {.mode = M_CONNECT,
              .stage = ST_TLS,
              .n = 1,
              .secs = 5,
              .timeout_ms = 5000,
              .parallel = 128,
              .lines = 60,
              .alpn = NULL,
              .min_tls = TLS1_2_VERSION,
              .max_tls = TLS1_3_VERSION};
    counts c;
    struct rlimit rl;
    int ch;

    memset(&c, 0, sizeof(c));
    while ((ch = getopt_long(argc, argv, "n:s:h", lopts, NULL)) != -1) {
        int bad = 0;
        switch (ch) {
        case 'n':
            bad = parse_long(optarg, 1, MAX_CONNS, &o.n);
            break;
        case 's':
            bad = parse_long(optarg, 0, MAX_SECS, &o.secs);
            break;
        case 't':
            bad = parse_long(optarg, 1, 60000, &o.timeout_ms);
            break;
        case 'P':
            bad = parse_long(optarg, 1, MAX_CONNS, &o.parallel);
            break;
        case 'R':
            bad = parse_long(optarg, 0, 1L << 30, &o.read_rate);
            break;
        case 'L':
            bad = parse_long(optarg, 1, MAX_LINES, &o.lines);
            break;
        case 'S':
            if (strcmp(optarg, "tcp") == 0)
                o.stage = ST_TCP;
            else if (strcmp(optarg, "hello") == 0)
                o.stage = ST_HELLO;
            else if (strcmp(optarg, "tls") == 0)
                o.stage = ST_TLS;
            else
                bad = -1;
            break;
        case 'c':
            o.cert = optarg;
            break;
        case 'k':
            o.key = optarg;
            break;
        case 'a':
            o.ca = optarg;
            break;
        case 'p':
            o.alpn = optarg;
            break;
        case 'm':
            bad = parse_tls(optarg, &o.min_tls);
            break;
        case 'M':
            bad = parse_tls(optarg, &o.max_tls);
            break;
        case 'H':
            o.hello = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "tlspeer: bad value for --%s: '%s' (see --help)\n",
                    ch == 'n'   ? "count"
                    : ch == 's' ? "seconds"
                                : "option",
                    optarg);
            return 2;
        }
    }
    if (argc - optind != 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[optind], "connect") == 0)
        o.mode = M_CONNECT;
    else if (strcmp(argv[optind], "idle") == 0)
        o.mode = M_IDLE;
    else if (strcmp(argv[optind], "flood") == 0)
        o.mode = M_FLOOD;
    else if (strcmp(argv[optind], "slowread") == 0)
        o.mode = M_SLOWREAD;
    else if (strcmp(argv[optind], "serve") == 0)
        o.mode = M_SERVE;
    else if (strcmp(argv[optind], "slowhttp") == 0)
        o.mode = M_SLOWHTTP;
    else {
        fprintf(stderr, "tlspeer: unknown mode '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (parse_addr(argv[optind + 1], &o.addr) < 0) {
        fprintf(stderr, "tlspeer: '%s' is not IPv4:PORT\n", argv[optind + 1]);
        return 2;
    }
    if ((o.cert == NULL) != (o.key == NULL) || o.min_tls > o.max_tls ||
        (o.mode == M_SLOWREAD && o.hello == NULL) ||
        (o.mode == M_SLOWHTTP && o.stage == ST_HELLO)) {
        fprintf(stderr, "tlspeer: --cert and --key go together; --min-tls <= --max-tls; "
                        "slowread needs --hello; slowhttp takes --stage tcp or tls\n");
        return 2;
    }
    if (o.alpn == NULL)
        o.alpn = o.mode == M_SLOWHTTP ? "http/1.1" : "sangam/1";
    /* Many connections need many descriptors: take what the hard limit allows. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    switch (o.mode) {
    case M_CONNECT:
        return run_connect(&o, &c);
    case M_IDLE:
    case M_FLOOD:
        return run_many(&o, &c);
    case M_SLOWREAD:
        return run_slowread(&o, &c);
    case M_SERVE:
        return run_serve(&o, &c);
    case M_SLOWHTTP:
        return run_slowhttp(&o, &c);
    }
    return 2;
}
