/*
 * transport.c - libuv listeners and HTTP connections for the node API; see transport.h.
 *
 * Each connection answers its requests strictly in order: the parser yields one request, the
 * (synchronous) API produces its answer, the answer is queued with uv_write, and parsing goes on
 * with the remaining bytes. Since libuv calls a read callback right after its allocation
 * callback, all connections share one read buffer (and HTTPS ones one buffer of plaintext).
 *
 * An HTTPS connection runs the TLS engine (tls.c) between the socket and the same parser:
 * ciphertext read -> sg_tls_feed -> sg_tls_handshake until it completes -> sg_tls_read into the
 * parser; every answer -> sg_tls_write; and after every engine call the engine is drained
 * (sg_tls_take -> uv_write), which is how alerts and close_notify reach the client. Invariants:
 *   - c->tls is NULL exactly on plain connections (Unix socket, TCP); tls_open says the
 *     handshake completed, tls_closed that close_notify was queued (then nothing more is sent).
 *   - Until the handshake completes, the timer is the request deadline armed at accept, and no
 *     byte re-arms it: a client has SG_HTTP_REQUEST_MS to finish its handshake (slowloris).
 *   - A connection that ends cleanly ends through conn_finish(): reading stops, TLS queues
 *     close_notify, and the handle closes once every write is done.
 *   - Only the Unix socket is local; requests on TCP and HTTPS need a token (api.c).
 */
#include "transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "tls.h"

#define READ_BUF        (64 * 1024)
#define PLAIN_BUF       (16 * 1024) /* a TLS record carries at most this much plaintext */
#define WRITE_HIGH_MARK (4u * 1024 * 1024)

typedef struct conn conn;

struct sg_http_server {
    uv_loop_t *loop;                          /* borrowed */
    sg_api *api;                              /* borrowed */
    uv_pipe_t pipe;                           /* Unix socket listener, if has_pipe */
    uv_tcp_t tcp;                             /* TCP listener, if has_tcp */
    uv_tcp_t https;                           /* HTTPS listener, if has_https */
    int has_pipe, has_tcp, has_https;         /* which listeners were started */
    sg_tls_ctx *tls;                          /* HTTPS: the hub's certificate (owned), or NULL */
    int open_handles;                         /* listeners not yet closed */
    char socket_path[SG_SOCKET_PATH_MAX + 1]; /* unlinked at shutdown */
    conn *conns;                              /* list of live connections */
    int nconns;
    int conns_allocated; /* conns not yet freed, including those still closing: shutdown
                            may free srv only when this is 0 */
    int shutting_down;
    void (*done)(void *); /* shutdown completion */
    void *done_arg;
    char readbuf[READ_BUF];   /* shared read buffer, see file comment */
    char plainbuf[PLAIN_BUF]; /* shared buffer of decrypted HTTPS bytes, likewise */
};

struct conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;                   /* the client stream; conn is freed in its close callback */
    uv_timer_t timer;      /* handshake / request / idle deadline */
    sg_http_server *srv;   /* owner */
    sg_http_parser parser; /* request framing */
    conn *next, *prev;     /* srv->conns list */
    int closing;           /* close started */
    int pending_writes;    /* uv_write requests not yet completed */
    int close_after_write; /* close once pending_writes reaches 0 */
    int reading;           /* uv_read_start is in effect */
    int handles_open;      /* 2 while stream and timer are open */
    int local;             /* came over the Unix socket: the local operator */
    sg_tls *tls;           /* HTTPS: the engine (owned, freed with conn), else NULL */
    int tls_open;          /* HTTPS: the handshake completed */
    int tls_closed;        /* HTTPS: close_notify is queued; nothing more may be sent */
    uint64_t tls_in;       /* HTTPS: ciphertext bytes received so far */
    uint64_t started;      /* uv_now() when the current request began */
    char peer[64];         /* "unix" or "ip:port", for logs */
};

typedef struct write_req {
    uv_write_t req;
    conn *c;
    char *data; /* owned */
} write_req;

static void maybe_finish_shutdown(sg_http_server *srv)
{
    if (srv->shutting_down && srv->open_handles == 0 && srv->conns_allocated == 0) {
        if (srv->socket_path[0] != '\0')
            unlink(srv->socket_path);
        sg_tls_ctx_free(srv->tls);
        if (srv->done)
            srv->done(srv->done_arg);
        free(srv);
    }
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    conn *c = h->data;
    sg_http_server *srv = c->srv;
    if (--c->handles_open > 0)
        return;
    sg_http_parser_free(&c->parser);
    sg_tls_free(c->tls);
    free(c);
    srv->conns_allocated--;
    maybe_finish_shutdown(srv);
}

static void conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->srv->nconns--;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    uv_close(&c->h.handle, on_conn_handle_closed);
}

static void send_response(conn *c, int status, const char *type, const char *body, size_t len,
                          int keep_alive);
static void conn_finish(conn *c);

static void arm_timer(conn *c, uint64_t ms);

static void on_timeout(uv_timer_t *t)
{
    conn *c = t->data;
    if (c->closing)
        return;
    if (c->tls != NULL && !c->tls_open) {
        sg_log(SG_LOG_WARN, "tls_handshake_failed",
               "peer=%s code=%s reason=\"no complete TLS handshake within %d s\" bytes=%llu",
               c->peer, sg_strerror_name(SG_ETLS), SG_HTTP_REQUEST_MS / 1000,
               (unsigned long long)c->tls_in);
        conn_close(c);
        return;
    }
    if (!sg_http_parser_idle(&c->parser) && c->pending_writes == 0 && !c->srv->shutting_down &&
        !c->close_after_write) {
        sg_api_resp resp;
        char why[96];
        snprintf(why, sizeof(why), "the request did not arrive whole within %d s",
                 SG_HTTP_REQUEST_MS / 1000);
        sg_api_error(&resp, SG_EHTTP, why);
        send_response(c, 408, NULL, resp.body, resp.body_len, 0);
        sg_api_resp_free(&resp);
        sg_log(SG_LOG_WARN, "request_timeout", "peer=%s code=%s reason=\"%s (slow client?)\"",
               c->peer, sg_strerror_name(SG_EHTTP), why);
        conn_finish(c);
        if (!c->closing) /* the 408 is on its way; a client that does not read it loses it */
            arm_timer(c, SG_HTTP_DRAIN_MS);
        return;
    }
    if (c->pending_writes == 0 && !c->close_after_write) {
        conn_finish(c); /* idle: HTTPS says close_notify before closing */
        if (!c->closing)
            arm_timer(c, SG_HTTP_DRAIN_MS);
        return;
    }
    conn_close(c);
}

static void arm_timer(conn *c, uint64_t ms)
{
    uv_timer_start(&c->timer, on_timeout, ms, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->srv->readbuf, READ_BUF);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    conn *c = w->c;

    free(w->data);
    free(w);
    c->pending_writes--;
    if (status < 0 && !c->closing) {
        sg_log(SG_LOG_DEBUG, "write_failed", "peer=%s error=%s", c->peer, uv_err_name(status));
        conn_close(c);
        return;
    }
    if (c->closing)
        return;
    if (c->close_after_write && c->pending_writes == 0) {
        conn_finish(c); /* sends close_notify first if it was not yet, else closes */
        return;
    }
    if (!c->reading && !c->close_after_write &&
        uv_stream_get_write_queue_size(&c->h.stream) < WRITE_HIGH_MARK / 2) {
        if (uv_read_start(&c->h.stream, on_alloc, on_read) == 0)
            c->reading = 1;
    }
}

/* Queues bytes for the socket (data taken over), as they are: plaintext on a plain connection,
 * ciphertext from the engine on an HTTPS one. */
static void conn_write(conn *c, char *data, size_t len)
{
    write_req *w;
    uv_buf_t b = uv_buf_init(data, (unsigned)len);

    if (c->closing) {
        free(data);
        return;
    }
    w = malloc(sizeof(*w));
    if (w == NULL) {
        free(data);
        conn_close(c);
        return;
    }
    w->c = c;
    w->data = data;
    if (uv_write(&w->req, &c->h.stream, &b, 1, on_write) < 0) {
        free(data);
        free(w);
        conn_close(c);
        return;
    }
    c->pending_writes++;
}

/* HTTPS: drains the engine (tls.h's drain contract) and queues what it had to send. Called after
 * every engine call, failed or not. */
static void conn_flush(conn *c)
{
    char *out = NULL;
    size_t len = 0;

    if (c->tls == NULL || c->closing)
        return;
    if (sg_tls_take(c->tls, &out, &len) < 0) {
        sg_log(SG_LOG_WARN, "tls_error", "peer=%s code=out_of_memory", c->peer);
        conn_close(c);
        return;
    }
    if (len > 0)
        conn_write(c, out, len);
}

/* Queues data (taken over) on c as an answer: encrypted first on HTTPS. */
static void conn_send(conn *c, char *data, size_t len)
{
    sg_err err = {0};
    int rc;

    if (c->tls == NULL) {
        conn_write(c, data, len);
        return;
    }
    if (c->closing || c->tls_closed) {
        free(data);
        return;
    }
    rc = sg_tls_write(c->tls, data, len, &err);
    free(data);
    conn_flush(c);
    if (rc < 0 && !c->closing) {
        char q[300];
        sg_log(SG_LOG_WARN, "tls_error", "peer=%s code=%s reason=%s", c->peer,
               sg_strerror_name(err.code), sg_logq(q, sizeof(q), err.msg));
        c->close_after_write = 1;
        conn_finish(c);
    }
}

static void send_response(conn *c, int status, const char *type, const char *body, size_t len,
                          int keep_alive)
{
    char *out;
    size_t out_len;
    if (sg_http_format(&out, &out_len, status, type ? type : "application/json", body, len,
                       keep_alive) < 0) {
        conn_close(c);
        return;
    }
    conn_send(c, out, out_len);
}

/* Ends c cleanly: stops reading, has HTTPS queue close_notify (once, and only after a completed
 * handshake), and closes the handle now or, when writes are pending, once they are done. Safe to
 * call again. */
static void conn_finish(conn *c)
{
    if (c->closing)
        return;
    if (c->reading) {
        uv_read_stop(&c->h.stream);
        c->reading = 0;
    }
    c->close_after_write = 1;
    if (c->tls != NULL && c->tls_open && !c->tls_closed) {
        c->tls_closed = 1;
        sg_tls_shutdown(c->tls);
        conn_flush(c);
    }
    if (!c->closing && c->pending_writes == 0)
        conn_close(c);
}

/* Answers the request the parser just completed. */
static void serve_request(conn *c)
{
    sg_http_req *req = &c->parser.req;
    sg_api_resp resp;
    char qpath[256];
    int keep_alive = req->keep_alive && !c->srv->shutting_down;
    uint64_t t0 = uv_hrtime();

    req->local = c->local;
    sg_api_handle(c->srv->api, req, &resp);
    send_response(c, resp.status, resp.content_type, resp.body, resp.body_len, keep_alive);
    sg_log(resp.status >= 500 ? SG_LOG_ERROR : SG_LOG_INFO, "request",
           "method=%s path=%s status=%d%s%s ms=%.2f peer=%s", req->method,
           sg_logq(qpath, sizeof(qpath), req->path), resp.status, resp.error_code ? " code=" : "",
           resp.error_code ? resp.error_code : "", (double)(uv_hrtime() - t0) / 1e6, c->peer);
    sg_api_resp_free(&resp);
    if (!keep_alive)
        c->close_after_write = 1;
}

/* Feeds len bytes of request (plaintext) to the parser and answers each complete request. */
static void conn_parse(conn *c, const char *data, size_t len)
{
    size_t off = 0;

    if (len > 0 && sg_http_parser_idle(&c->parser)) {
        c->started = uv_now(c->srv->loop);
        arm_timer(c, SG_HTTP_REQUEST_MS);
    }
    while (off < len && !c->closing && !c->close_after_write) {
        size_t used = 0;
        int status = 0;
        sg_err err = {0};
        int rc = sg_http_parser_feed(&c->parser, data + off, len - off, &used, &status, &err);
        off += used;
        if (rc < 0) {
            sg_api_resp resp;
            sg_api_error(&resp, err.code, err.msg);
            send_response(c, status, NULL, resp.body, resp.body_len, 0);
            sg_log(SG_LOG_WARN, "bad_request", "status=%d code=%s peer=%s", status,
                   sg_strerror_name(err.code), c->peer);
            sg_api_resp_free(&resp);
            c->close_after_write = 1;
            break;
        }
        if (rc == 0)
            break;
        serve_request(c);
        sg_http_parser_next(&c->parser);
        arm_timer(c, SG_HTTP_IDLE_MS);
        if (off < len)
            arm_timer(c, SG_HTTP_REQUEST_MS);
    }
}

/* Logs why an HTTPS handshake failed; err holds the engine's message. */
static void log_handshake_failed(conn *c, const sg_err *err)
{
    char q[300];
    sg_log(SG_LOG_WARN, "tls_handshake_failed", "peer=%s code=%s reason=%s bytes=%llu", c->peer,
           sg_strerror_name(err->code), sg_logq(q, sizeof(q), err->msg),
           (unsigned long long)c->tls_in);
}

/* HTTPS: a client spoke plain HTTP to the HTTPS port. It cannot read a TLS alert, so it gets a
 * plain 400 that says what to do, and the connection ends. */
static void refuse_plain_http(conn *c)
{
    sg_api_resp resp;
    char *out;
    size_t out_len;

    sg_log(SG_LOG_WARN, "tls_handshake_failed",
           "peer=%s code=%s reason=\"plain HTTP on the HTTPS port\" bytes=0", c->peer,
           sg_strerror_name(SG_ETLS));
    sg_api_error(&resp, SG_EHTTP, "this port serves HTTPS: use an https:// URL");
    if (sg_http_format(&out, &out_len, 400, "application/json", resp.body, resp.body_len, 0) == 0)
        conn_write(c, out, out_len);
    sg_api_resp_free(&resp);
    conn_finish(c);
}

/* HTTPS: len bytes of ciphertext arrived. Advances the handshake, then decrypts every record that
 * is whole and parses its plaintext. */
static void conn_tls_input(conn *c, const char *data, size_t len)
{
    sg_err err = {0};
    int rc;

    /* A TLS connection begins with a handshake record (0x16); a letter is an HTTP method. */
    if (!c->tls_open && c->tls_in == 0 && data[0] >= 'A' && data[0] <= 'Z') {
        refuse_plain_http(c);
        return;
    }
    c->tls_in += len;
    rc = sg_tls_feed(c->tls, data, len);
    conn_flush(c);
    if (rc < 0) {
        sg_log(SG_LOG_WARN, "tls_error", "peer=%s code=%s", c->peer, sg_strerror_name(rc));
        conn_close(c);
        return;
    }
    if (!c->tls_open) {
        rc = sg_tls_handshake(c->tls, &err);
        conn_flush(c); /* the server's flight, or the alert that tells the client why */
        if (c->closing)
            return;
        if (rc < 0) {
            log_handshake_failed(c, &err);
            conn_finish(c);
            return;
        }
        if (rc == 0)
            return; /* more of the handshake to come, within the deadline armed at accept */
        c->tls_open = 1;
        sg_log(SG_LOG_DEBUG, "tls_open", "peer=%s version=%s alpn=%s", c->peer,
               sg_tls_version(c->tls), sg_tls_alpn(c->tls)[0] ? sg_tls_alpn(c->tls) : "none");
        arm_timer(c, SG_HTTP_IDLE_MS);
        /* Bytes that came with the client's last flight are read below. */
    }
    while (!c->closing && !c->close_after_write) {
        size_t n = 0;
        rc = sg_tls_read(c->tls, c->srv->plainbuf, sizeof(c->srv->plainbuf), &n, &err);
        conn_flush(c);
        if (c->closing)
            return;
        if (rc == SG_ECLOSED) { /* close_notify: answer with ours once the answers are out */
            conn_finish(c);
            return;
        }
        if (rc < 0) {
            char q[300];
            sg_log(SG_LOG_WARN, "tls_error", "peer=%s code=%s reason=%s", c->peer,
                   sg_strerror_name(err.code), sg_logq(q, sizeof(q), err.msg));
            conn_finish(c);
            return;
        }
        if (n == 0)
            return;
        conn_parse(c, c->srv->plainbuf, n);
    }
}

/* HTTPS: the client's stream ended (EOF or a read error) while the handshake was not done. */
static void conn_tls_eof(conn *c)
{
    sg_err err = {0};
    if (c->tls_in == 0) { /* connected and left without a word: a probe, not a failure */
        sg_log(SG_LOG_DEBUG, "tls_handshake_failed", "peer=%s code=%s bytes=0", c->peer,
               sg_strerror_name(SG_ECLOSED));
        return;
    }
    sg_tls_feed_eof(c->tls);
    if (sg_tls_handshake(c->tls, &err) < 0)
        log_handshake_failed(c, &err);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = s->data;

    if (nread < 0) {
        if (c->tls != NULL && !c->tls_open)
            conn_tls_eof(c);
        conn_close(c);
        return;
    }
    if (nread > 0) {
        if (c->tls != NULL)
            conn_tls_input(c, buf->base, (size_t)nread);
        else
            conn_parse(c, buf->base, (size_t)nread);
    }
    if (c->closing)
        return;
    if (c->close_after_write || c->srv->shutting_down) {
        conn_finish(c);
        return;
    }
    if (uv_stream_get_write_queue_size(&c->h.stream) > WRITE_HIGH_MARK) {
        uv_read_stop(&c->h.stream); /* resumes in on_write once the client reads */
        c->reading = 0;
    }
}

/* Formats the address of a TCP peer as "ip:port" ("[ip]:port" for IPv6) into out. */
static void peer_name(const uv_tcp_t *tcp, char *out, size_t cap)
{
    struct sockaddr_storage ss = {.ss_family = AF_INET};
    int len = sizeof(ss);
    char ip[48] = "?";
    int port = 0;

    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    snprintf(out, cap, ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, port);
}

static void on_connection(uv_stream_t *listener, int status)
{
    sg_http_server *srv = listener->data;
    int is_pipe = listener == (uv_stream_t *)&srv->pipe;
    int is_https = listener == (uv_stream_t *)&srv->https;
    conn *c;
    int rc;

    if (status < 0) {
        sg_log(SG_LOG_WARN, "accept_failed", "error=%s", uv_err_name(status));
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->srv = srv;
    if (is_pipe)
        rc = uv_pipe_init(srv->loop, &c->h.pipe, 0);
    else
        rc = uv_tcp_init(srv->loop, &c->h.tcp);
    if (rc < 0) {
        free(c);
        return;
    }
    c->h.handle.data = c;
    srv->conns_allocated++;
    c->handles_open = 1;
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 2;
    sg_http_parser_init(&c->parser);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;

    if (uv_accept(listener, &c->h.stream) < 0) {
        conn_close(c);
        return;
    }
    if (srv->shutting_down || srv->nconns > SG_HTTP_MAX_CONNS) {
        sg_log(SG_LOG_WARN, "connection_refused", "reason=%s conns=%d",
               srv->shutting_down ? "shutting_down" : "too_many_connections", srv->nconns);
        conn_close(c);
        return;
    }
    if (is_pipe) {
        snprintf(c->peer, sizeof(c->peer), "unix");
        c->local = 1;
    } else {
        peer_name(&c->h.tcp, c->peer, sizeof(c->peer));
    }
    if (is_https) {
        sg_err err = {0};
        if (sg_tls_new(&c->tls, srv->tls, &err) < 0) {
            sg_log(SG_LOG_WARN, "tls_error", "peer=%s code=%s", c->peer,
                   sg_strerror_name(err.code));
            conn_close(c);
            return;
        }
        arm_timer(c, SG_HTTP_REQUEST_MS); /* the handshake's deadline */
    } else {
        arm_timer(c, SG_HTTP_IDLE_MS);
    }
    if (uv_read_start(&c->h.stream, on_alloc, on_read) < 0) {
        conn_close(c);
        return;
    }
    c->reading = 1;
}

/* Removes a socket file left by a process that died; refuses if a live server answers. */
static int clear_stale_socket(const char *path, sg_err *err)
{
    struct stat sb;
    struct sockaddr_un sa;
    int fd, rc;

    if (lstat(path, &sb) < 0)
        return 0;
    if (!S_ISSOCK(sb.st_mode))
        return sg_err_set(err, SG_ECONFIG,
                          "[api] socket: %s exists and is not a socket; remove it or pick "
                          "another path",
                          path);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return sg_err_set(err, SG_EIO, "socket: %s", strerror(errno));
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    close(fd);
    if (rc == 0)
        return sg_err_set(err, SG_EBUSY,
                          "[api] socket: another process is serving %s; stop it first", path);
    unlink(path);
    return 0;
}

/* Creates the directories above path that are missing (mode 0750). */
static void make_parent_dirs(const char *path)
{
    char buf[SG_SOCKET_PATH_MAX + 1];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(buf, 0750);
        *p = '/';
    }
}

static int start_pipe(sg_http_server *srv, const char *path, sg_err *err)
{
    mode_t old;
    int rc;

    rc = clear_stale_socket(path, err);
    if (rc < 0)
        return rc;
    make_parent_dirs(path);
    rc = uv_pipe_init(srv->loop, &srv->pipe, 0);
    if (rc < 0)
        return sg_err_set(err, SG_EIO, "[api] socket: %s", uv_strerror(rc));
    srv->pipe.data = srv;
    srv->has_pipe = 1;
    srv->open_handles++;
    /* Create the socket file with no access for others from the first instant. */
    old = umask(0117);
    rc = uv_pipe_bind(&srv->pipe, path);
    umask(old);
    if (rc < 0)
        return sg_err_set(err, SG_EIO, "[api] socket: cannot bind %s: %s", path, uv_strerror(rc));
    snprintf(srv->socket_path, sizeof(srv->socket_path), "%s", path);
    chmod(path, 0660);
    rc = uv_listen((uv_stream_t *)&srv->pipe, 128, on_connection);
    if (rc < 0)
        return sg_err_set(err, SG_EIO, "[api] socket: cannot listen on %s: %s", path,
                          uv_strerror(rc));
    return 0;
}

/* Binds a TCP listener h on addr and listens; key names the config key for messages. On
 * failure h may be open (counted in open_handles, *has set): the caller closes it. */
static int start_tcp(sg_http_server *srv, uv_tcp_t *h, int *has, const char *key, const char *addr,
                     sg_err *err)
{
    char host[64];
    int port, rc;
    struct sockaddr_storage ss;

    if (sg_config_split_addr(addr, host, sizeof(host), &port) < 0)
        return sg_err_set(err, SG_ECONFIG, "%s: '%s' is not host:port", key, addr);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)
        return sg_err_set(err, SG_ECONFIG, "%s: '%s' is not an IP address", key, host);
    rc = uv_tcp_init(srv->loop, h);
    if (rc < 0)
        return sg_err_set(err, SG_EIO, "%s: %s", key, uv_strerror(rc));
    h->data = srv;
    *has = 1;
    srv->open_handles++;
    rc = uv_tcp_bind(h, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)h, 128, on_connection);
    if (rc < 0)
        return sg_err_set(err, SG_EIO, "%s: cannot listen on %s: %s", key, addr, uv_strerror(rc));
    return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    sg_http_server *srv = h->data;
    srv->open_handles--;
    maybe_finish_shutdown(srv);
}

static void close_listeners(sg_http_server *srv)
{
    if (srv->has_pipe && !uv_is_closing((uv_handle_t *)&srv->pipe))
        uv_close((uv_handle_t *)&srv->pipe, on_listener_closed);
    if (srv->has_tcp && !uv_is_closing((uv_handle_t *)&srv->tcp))
        uv_close((uv_handle_t *)&srv->tcp, on_listener_closed);
    if (srv->has_https && !uv_is_closing((uv_handle_t *)&srv->https))
        uv_close((uv_handle_t *)&srv->https, on_listener_closed);
}

int sg_http_server_start(sg_http_server **out, uv_loop_t *loop, sg_api *api,
                         const char *socket_path, const char *listen, sg_err *err)
{
    sg_http_server *srv;
    int rc = 0;

    *out = NULL;
    srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return sg_err_set(err, SG_ENOMEM, "out of memory");
    srv->loop = loop;
    srv->api = api;
    if (socket_path && socket_path[0]) {
        rc = start_pipe(srv, socket_path, err);
        if (rc < 0)
            goto stop;
        sg_log(SG_LOG_INFO, "listen", "socket=%s mode=0660", socket_path);
    }
    if (listen && listen[0]) {
        rc = start_tcp(srv, &srv->tcp, &srv->has_tcp, "[api] listen", listen, err);
        if (rc < 0)
            goto stop;
        sg_log(SG_LOG_INFO, "listen", "address=%s", listen);
    }
    *out = srv;
    return 0;

stop:
    /* Undo what started; the caller runs the loop so the close callbacks free srv. */
    srv->shutting_down = 1;
    if (srv->open_handles == 0) {
        free(srv);
        return rc;
    }
    close_listeners(srv);
    return rc;
}

int sg_http_server_listen_https(sg_http_server *srv, const char *addr, const char *cert_file,
                                const char *key_file, sg_err *err)
{
    sg_tls_ctx *tls = NULL;
    int rc;

    if (srv->has_https || srv->shutting_down)
        return sg_err_set(err, SG_EINVAL, "[api] https: already started, or stopping");
    rc = sg_tls_ctx_new_https(&tls, cert_file, key_file, err);
    if (rc < 0)
        return rc;
    rc = start_tcp(srv, &srv->https, &srv->has_https, "[api] https", addr, err);
    if (rc < 0) {
        /* Started nothing: the listener (if it was opened) closes; the server goes on. */
        if (srv->has_https)
            uv_close((uv_handle_t *)&srv->https, on_listener_closed);
        sg_tls_ctx_free(tls);
        return rc;
    }
    srv->tls = tls;
    {
        char q[512];
        sg_log(SG_LOG_INFO, "listen", "https=%s tls=1.2,1.3 alpn=http/1.1 cert=%s", addr,
               sg_logq(q, sizeof(q), cert_file));
    }
    return 0;
}

void sg_http_server_shutdown(sg_http_server *srv, void (*done)(void *), void *arg)
{
    conn *c, *next;

    srv->shutting_down = 1;
    srv->done = done;
    srv->done_arg = arg;
    close_listeners(srv);
    for (c = srv->conns; c != NULL; c = next) {
        next = c->next;
        if (sg_http_parser_idle(&c->parser) && c->pending_writes == 0) {
            conn_finish(c); /* HTTPS: close_notify, then close */
            if (!c->closing)
                arm_timer(c, SG_HTTP_DRAIN_MS);
        } else {
            /* A request in progress: let it finish, but not forever. */
            c->close_after_write = c->pending_writes > 0;
            arm_timer(c, SG_HTTP_DRAIN_MS);
        }
    }
    /* Nothing was open: finish now (maybe_finish_shutdown frees srv). */
    if (srv->open_handles == 0 && srv->conns_allocated == 0)
        maybe_finish_shutdown(srv);
}
