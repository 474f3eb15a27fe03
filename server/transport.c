/*
 * transport.c - libuv listeners and HTTP connections for the node API; see transport.h.
 *
 * Each connection answers its requests strictly in order: the parser yields one request, the
 * (synchronous) API produces its answer, the answer is queued with uv_write, and parsing goes on
 * with the remaining bytes. Since libuv calls a read callback right after its allocation
 * callback, all connections share one read buffer.
 */
#include "transport.h"

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

#define READ_BUF        (64 * 1024)
#define WRITE_HIGH_MARK (4u * 1024 * 1024)

typedef struct conn conn;

struct sg_http_server {
    uv_loop_t *loop;                          /* borrowed */
    sg_api *api;                              /* borrowed */
    uv_pipe_t pipe;                           /* Unix socket listener, if has_pipe */
    uv_tcp_t tcp;                             /* TCP listener, if has_tcp */
    int has_pipe, has_tcp;                    /* which listeners were started */
    int open_handles;                         /* listeners not yet closed */
    char socket_path[SG_SOCKET_PATH_MAX + 1]; /* unlinked at shutdown */
    conn *conns;                              /* list of live connections */
    int nconns;
    int conns_allocated; /* conns not yet freed, including those still closing: shutdown
                            may free srv only when this is 0 */
    int shutting_down;
    void (*done)(void *); /* shutdown completion */
    void *done_arg;
    char readbuf[READ_BUF]; /* shared read buffer, see file comment */
};

struct conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;                   /* the client stream; conn is freed in its close callback */
    uv_timer_t timer;      /* request / idle deadline */
    sg_http_server *srv;   /* owner */
    sg_http_parser parser; /* request framing */
    conn *next, *prev;     /* srv->conns list */
    int closing;           /* close started */
    int pending_writes;    /* uv_write requests not yet completed */
    int close_after_write; /* close once pending_writes reaches 0 */
    int reading;           /* uv_read_start is in effect */
    int handles_open;      /* 2 while stream and timer are open */
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

static void on_timeout(uv_timer_t *t)
{
    conn *c = t->data;
    if (!sg_http_parser_idle(&c->parser) && c->pending_writes == 0 && !c->srv->shutting_down &&
        !c->closing) {
        sg_api_resp resp;
        sg_api_error(&resp, SG_EHTTP, "the request did not arrive whole within 30 s");
        send_response(c, 408, NULL, resp.body, resp.body_len, 0);
        sg_api_resp_free(&resp);
        sg_log(SG_LOG_WARN, "request_timeout", "peer=%s", c->peer);
        uv_read_stop(&c->h.stream);
        c->reading = 0;
        c->close_after_write = 1;
        if (c->pending_writes > 0)
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
        conn_close(c);
        return;
    }
    if (!c->reading && !c->close_after_write &&
        uv_stream_get_write_queue_size(&c->h.stream) < WRITE_HIGH_MARK / 2) {
        if (uv_read_start(&c->h.stream, on_alloc, on_read) == 0)
            c->reading = 1;
    }
}

/* Queues data (taken over) on c. */
static void conn_send(conn *c, char *data, size_t len)
{
    write_req *w = malloc(sizeof(*w));
    uv_buf_t b = uv_buf_init(data, (unsigned)len);

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

/* Answers the request the parser just completed. */
static void serve_request(conn *c)
{
    sg_http_req *req = &c->parser.req;
    sg_api_resp resp;
    char qpath[256];
    int keep_alive = req->keep_alive && !c->srv->shutting_down;
    uint64_t t0 = uv_hrtime();

    req->local = strcmp(c->peer, "unix") == 0;
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

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = s->data;
    size_t off = 0;

    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread > 0 && sg_http_parser_idle(&c->parser)) {
        c->started = uv_now(c->srv->loop);
        arm_timer(c, SG_HTTP_REQUEST_MS);
    }
    while (off < (size_t)nread && !c->closing && !c->close_after_write) {
        size_t used = 0;
        int status = 0;
        sg_err err = {0};
        int rc = sg_http_parser_feed(&c->parser, buf->base + off, (size_t)nread - off, &used,
                                     &status, &err);
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
        if (off < (size_t)nread)
            arm_timer(c, SG_HTTP_REQUEST_MS);
    }
    if (c->close_after_write || c->srv->shutting_down) {
        uv_read_stop(&c->h.stream);
        c->reading = 0;
        if (c->pending_writes == 0)
            conn_close(c);
        return;
    }
    if (uv_stream_get_write_queue_size(&c->h.stream) > WRITE_HIGH_MARK) {
        uv_read_stop(&c->h.stream); /* resumes in on_write once the client reads */
        c->reading = 0;
    }
}

static void on_connection(uv_stream_t *listener, int status)
{
    sg_http_server *srv = listener->data;
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
    if (listener == (uv_stream_t *)&srv->pipe)
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
    if (listener == (uv_stream_t *)&srv->tcp) {
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        char ip[48] = "?";
        if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) == 0) {
            if (ss.ss_family == AF_INET6)
                uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
            else
                uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
        }
        snprintf(c->peer, sizeof(c->peer), "%s", ip);
    } else {
        snprintf(c->peer, sizeof(c->peer), "unix");
    }
    arm_timer(c, SG_HTTP_IDLE_MS);
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

static int start_tcp(sg_http_server *srv, const char *addr, sg_err *err)
{
    char host[64];
    int port, rc;
    struct sockaddr_storage ss;

    if (sg_config_split_addr(addr, host, sizeof(host), &port) < 0)
        return sg_err_set(err, SG_ECONFIG, "[api] listen: '%s' is not host:port", addr);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)
        return sg_err_set(err, SG_ECONFIG, "[api] listen: '%s' is not an IP address", host);
    rc = uv_tcp_init(srv->loop, &srv->tcp);
    if (rc < 0)
        return sg_err_set(err, SG_EIO, "[api] listen: %s", uv_strerror(rc));
    srv->tcp.data = srv;
    srv->has_tcp = 1;
    srv->open_handles++;
    rc = uv_tcp_bind(&srv->tcp, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->tcp, 128, on_connection);
    if (rc < 0)
        return sg_err_set(err, SG_EIO, "[api] listen: cannot listen on %s: %s", addr,
                          uv_strerror(rc));
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
        rc = start_tcp(srv, listen, err);
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
            conn_close(c);
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
