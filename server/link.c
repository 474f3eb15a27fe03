/*
 * link.c - a replication connection: libuv TCP + TLS engine + frames; see link.h.
 *
 * States move only forward: CONNECTING -> HANDSHAKE -> OPEN -> CLOSING -> (freed). Every entry
 * point checks the state first, because a callback into the session may close the link while
 * the link is still inside its read loop; memory stays valid until the close callbacks run.
 */
#include "link.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sangam/records.h"

/* One TLS record at most (16 KiB of plaintext plus its overhead): each link holds this buffer
 * for as long as it lives, so it is what a hub pays per connected region before anything
 * arrives (64 KiB here cost 24 MiB at 500 regions, with no gain in throughput). */
#define READ_CHUNK  (17 * 1024)
#define HIGH_WATER  (4u * 1024 * 1024)
#define LOW_WATER   (1u * 1024 * 1024)
#define SHUTDOWN_MS 2000
/* The hub stops reading a peer past this much queued for it. Above what any session's own flow
 * control lets queue (senders stop at HIGH_WATER, sg_link_busy; a restore adds at most one batch
 * over it), so only a peer that asks for answers (PONGs) it does not read ever reaches it. */
#define PAUSE_MARK (2 * HIGH_WATER)

enum link_state { L_CONNECTING, L_HANDSHAKE, L_OPEN, L_CLOSING };

struct sg_link {
    uv_loop_t *loop;          /* borrowed */
    uv_tcp_t tcp;             /* the socket; closed in close_handles */
    uv_timer_t timer;         /* handshake deadline, then keepalive ticks, then shutdown */
    uv_connect_t connect_req; /* client side */
    uv_shutdown_t shutdown_req;
    sg_tls *tls;     /* owned engine */
    sg_link_cbs cbs; /* session callbacks */
    void *arg;       /* session pointer */
    enum link_state state;
    int handles;                  /* handles still open */
    uint8_t hdr[SG_FRAME_HEADER]; /* frame header being read */
    size_t hdr_n;
    uint8_t *payload; /* frame payload being read (owned), NULL between frames */
    uint32_t plen, pgot;
    size_t queued;             /* memory held by unfinished writes: their ciphertext plus each
                                  request's bookkeeping (WRITE_COST), so that many tiny writes
                                  (a PONG per PING) count for what they cost */
    uint64_t wire_rx, wire_tx; /* ciphertext bytes received / sent (TLS records, TCP payload) */
    uint64_t plain_rx;         /* decrypted bytes received (frames with their headers) */
    int was_busy;              /* busy was reported: call on_drain when below LOW_WATER */
    int paused;                /* server: reading stopped (queued > PAUSE_MARK) until queued <
                                  LOW_WATER: a peer that does not read what it asks for must not
                                  grow the hub */
    uint64_t keepalive_ms;     /* 0: off */
    uint64_t deadline_ms;      /* for the handshake, then for HELLO/WELCOME */
    uint64_t last_rx, last_tx; /* uv_now() of the last frame received / sent */
    uint64_t last_ping;        /* uv_now() of the last PING sent */
    uint64_t nonce;            /* last PING nonce sent */
    int close_code;            /* what on_close reports */
    char close_why[256];
    char peer[SG_REGION_MAX + 1]; /* server side: the peer's region id */
    int is_server;                /* accepted rather than dialed */
    char addr[64];                /* peer ip:port */
    char buf[READ_CHUNK];         /* read buffer for both ciphertext and plaintext */
};

typedef struct write_req {
    uv_write_t req;
    sg_link *l;
    char *data;
    size_t len;
} write_req;

/* What one queued write costs besides its bytes: the request and the allocator's headers. */
#define WRITE_COST (sizeof(write_req) + 32)

static void on_handshake_timeout(uv_timer_t *t);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static void link_closed(uv_handle_t *h)
{
    sg_link *l = h->data;
    if (--l->handles > 0)
        return;
    if (l->cbs.on_close)
        l->cbs.on_close(l, l->close_code, l->close_why, l->arg);
    sg_tls_free(l->tls);
    free(l->payload);
    free(l);
}

static void close_handles(sg_link *l)
{
    uv_timer_stop(&l->timer);
    if (!uv_is_closing((uv_handle_t *)&l->timer))
        uv_close((uv_handle_t *)&l->timer, link_closed);
    if (!uv_is_closing((uv_handle_t *)&l->tcp))
        uv_close((uv_handle_t *)&l->tcp, link_closed);
}

static void on_write(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    sg_link *l = w->l;

    l->queued -= w->len + WRITE_COST;
    free(w->data);
    free(w);
    if (status < 0 && l->state != L_CLOSING) {
        sg_link_close(l, SG_EIO, uv_strerror(status));
        return;
    }
    if (l->paused && l->queued < LOW_WATER && l->state == L_OPEN &&
        uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read) == 0)
        l->paused = 0;
    if (l->was_busy && l->queued < LOW_WATER && l->state == L_OPEN) {
        l->was_busy = 0;
        if (l->cbs.on_drain)
            l->cbs.on_drain(l, l->arg);
    }
}

/* Writes whatever ciphertext the engine has produced. */
static int drain(sg_link *l)
{
    char *out = NULL;
    size_t len = 0;
    write_req *w;
    uv_buf_t b;

    if (sg_tls_take(l->tls, &out, &len) < 0)
        return SG_ENOMEM;
    if (len == 0)
        return 0;
    w = malloc(sizeof(*w));
    if (w == NULL) {
        free(out);
        return SG_ENOMEM;
    }
    w->l = l;
    w->data = out;
    w->len = len;
    b = uv_buf_init(out, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&l->tcp, &b, 1, on_write) < 0) {
        free(out);
        free(w);
        return SG_EIO;
    }
    l->queued += len + WRITE_COST;
    l->wire_tx += len;
    /* Back-pressure on the hub's side: a peer that sends (PINGs, say) but does not read the
     * answers would otherwise make the hub queue them without bound. Reading resumes in
     * on_write; a peer that never reads is then dropped by keepalive (on_tick). */
    if (l->is_server && !l->paused && l->state == L_OPEN && l->queued > PAUSE_MARK) {
        uv_read_stop((uv_stream_t *)&l->tcp);
        l->paused = 1;
    }
    return 0;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    sg_link *l = req->data;
    (void)status;
    close_handles(l);
}

static void on_shutdown_timeout(uv_timer_t *t)
{
    close_handles(t->data);
}

void sg_link_close(sg_link *l, int code, const char *why)
{
    if (l->state == L_CLOSING)
        return;
    l->close_code = code;
    snprintf(l->close_why, sizeof(l->close_why), "%s", why ? why : "");
    if (l->state == L_OPEN || l->state == L_HANDSHAKE) {
        /* Say goodbye in TLS (close_notify) and let queued writes go out first. */
        if (l->state == L_OPEN)
            sg_tls_shutdown(l->tls);
        l->state = L_CLOSING;
        uv_read_stop((uv_stream_t *)&l->tcp);
        if (drain(l) == 0) {
            l->shutdown_req.data = l;
            if (uv_shutdown(&l->shutdown_req, (uv_stream_t *)&l->tcp, on_shutdown) == 0) {
                uv_timer_stop(&l->timer);
                uv_timer_start(&l->timer, on_shutdown_timeout, SHUTDOWN_MS, 0);
                return;
            }
        }
    }
    l->state = L_CLOSING;
    close_handles(l);
}

int sg_link_send(sg_link *l, const sg_msg *m)
{
    void *frame = NULL;
    size_t len = 0;
    sg_err err = {0};
    int rc;

    if (l->state != L_OPEN)
        return SG_ECLOSED;
    rc = sg_msg_encode(&frame, &len, m);
    if (rc < 0)
        return rc;
    rc = sg_tls_write(l->tls, frame, len, &err);
    free(frame);
    if (rc == 0)
        rc = drain(l);
    if (rc < 0) {
        sg_link_close(l, rc, err.msg[0] ? err.msg : sg_strerror(rc));
        return rc;
    }
    l->last_tx = uv_now(l->loop);
    if (l->queued > HIGH_WATER)
        l->was_busy = 1;
    return 0;
}

/* Copies text into out as valid UTF-8 of at most cap-1 bytes: a message may quote bytes a peer
 * sent, and an ERROR frame whose text is not UTF-8 would be refused by the encoder (and so
 * never sent). Bad bytes become '?'; a character is never cut in half. */
static size_t utf8_clean(char *out, size_t cap, const char *text)
{
    const char *p = text;
    size_t k = 0;

    while (*p != '\0') {
        unsigned char c = (unsigned char)*p;
        size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 4;
        if (n > 1 && strnlen(p, n) == n && sg_utf8_valid(p, n)) {
            if (k + n >= cap)
                break;
            memcpy(out + k, p, n);
            k += n;
            p += n;
            continue;
        }
        if (k + 1 >= cap)
            break;
        out[k++] = (n == 1 && (c >= 0x20 || c == '\t') && c != 0x7f) ? (char)c : '?';
        p++;
    }
    out[k] = '\0';
    return k;
}

void sg_link_fail(sg_link *l, int code, const char *text)
{
    char clean[SG_MSG_TEXT_MAX + 1];
    sg_msg m;

    memset(&m, 0, sizeof(m));
    m.type = SG_MSG_ERROR;
    m.code = sg_strerror_name(code);
    m.code_len = (uint32_t)strlen(m.code);
    m.text = clean;
    m.text_len = (uint32_t)utf8_clean(clean, sizeof(clean), text ? text : "");
    sg_link_send(l, &m);
    sg_link_close(l, code, text);
}

int sg_link_busy(const sg_link *l)
{
    return l->queued > HIGH_WATER;
}

const char *sg_link_peer(const sg_link *l)
{
    return l->peer;
}

const char *sg_link_addr(const sg_link *l)
{
    return l->addr;
}

void sg_link_bytes(const sg_link *l, uint64_t *wire_rx, uint64_t *wire_tx, uint64_t *plain_rx)
{
    *wire_rx = l->wire_rx;
    *wire_tx = l->wire_tx;
    *plain_rx = l->plain_rx;
}

void *sg_link_arg(const sg_link *l)
{
    return l->arg;
}

void sg_link_set_arg(sg_link *l, void *arg)
{
    l->arg = arg;
}

static void on_tick(uv_timer_t *t)
{
    sg_link *l = t->data;
    uint64_t now = uv_now(l->loop);
    if (l->state != L_OPEN)
        return;
    if (now - l->last_rx > 2 * l->keepalive_ms) {
        char why[128];
        if (l->paused)
            snprintf(why, sizeof(why),
                     "the peer does not read: %zu bytes wait for it, and nothing was read from it "
                     "for %llu ms",
                     l->queued, (unsigned long long)(now - l->last_rx));
        else
            snprintf(why, sizeof(why), "nothing received for %llu ms: the link is dead",
                     (unsigned long long)(now - l->last_rx));
        sg_link_close(l, SG_ECLOSED, why);
        return;
    }
    if (now - l->last_rx >= l->keepalive_ms && now - l->last_ping >= l->keepalive_ms) {
        sg_msg m;
        l->last_ping = now;
        memset(&m, 0, sizeof(m));
        m.type = SG_MSG_PING;
        m.nonce = ++l->nonce;
        sg_link_send(l, &m);
    }
}

void sg_link_keepalive(sg_link *l, uint64_t interval_ms)
{
    uint64_t tick = interval_ms / 4 ? interval_ms / 4 : 1;
    l->keepalive_ms = interval_ms;
    l->last_rx = l->last_tx = uv_now(l->loop);
    if (l->state == L_OPEN)
        uv_timer_start(&l->timer, on_tick, tick, tick);
}

/* One complete frame payload. */
static void deliver(sg_link *l, const uint8_t *payload, uint32_t len)
{
    sg_msg m;
    sg_err err = {0};
    int rc = sg_msg_decode(&m, payload, len, &err);

    if (rc < 0) {
        sg_log(SG_LOG_WARN, "bad_frame", "peer=%s addr=%s code=%s", l->peer[0] ? l->peer : "-",
               l->addr, sg_strerror_name(rc));
        sg_link_fail(l, rc, err.msg);
        return;
    }
    if (l->keepalive_ms && m.type == SG_MSG_PING) {
        sg_msg pong;
        memset(&pong, 0, sizeof(pong));
        pong.type = SG_MSG_PONG;
        pong.nonce = m.nonce;
        sg_link_send(l, &pong);
        return;
    }
    if (l->keepalive_ms && m.type == SG_MSG_PONG)
        return;
    if (l->cbs.on_msg)
        l->cbs.on_msg(l, &m, l->arg);
}

/* Reassembles frames from decrypted bytes. */
static void frames_feed(sg_link *l, const uint8_t *p, size_t n)
{
    while (n > 0 && l->state == L_OPEN) {
        if (l->payload == NULL) {
            size_t k = SG_FRAME_HEADER - l->hdr_n;
            sg_err err = {0};
            if (k > n)
                k = n;
            memcpy(l->hdr + l->hdr_n, p, k);
            l->hdr_n += k;
            p += k;
            n -= k;
            if (l->hdr_n < SG_FRAME_HEADER)
                return;
            if (sg_frame_len(&l->plen, l->hdr, SG_FRAME_MAX, &err) < 0) {
                sg_log(SG_LOG_WARN, "bad_frame", "peer=%s addr=%s code=%s", l->peer, l->addr,
                       sg_strerror_name(err.code));
                sg_link_fail(l, err.code, err.msg);
                return;
            }
            /* The length is within the cap, so this allocation is bounded. */
            l->payload = malloc(l->plen);
            if (l->payload == NULL) {
                sg_link_close(l, SG_ENOMEM, "out of memory for a frame");
                return;
            }
            l->pgot = 0;
        }
        {
            size_t k = l->plen - l->pgot;
            if (k > n)
                k = n;
            memcpy(l->payload + l->pgot, p, k);
            l->pgot += (uint32_t)k;
            p += k;
            n -= k;
        }
        if (l->pgot == l->plen) {
            uint8_t *payload = l->payload;
            l->payload = NULL;
            l->hdr_n = 0;
            l->last_rx = uv_now(l->loop);
            deliver(l, payload, l->plen);
            free(payload);
        }
    }
}

/* Runs the engine after new ciphertext arrived (or the stream ended). */
static void pump(sg_link *l)
{
    sg_err err = {0};
    int rc;

    if (l->state == L_HANDSHAKE) {
        rc = sg_tls_handshake(l->tls, &err);
        if (drain(l) < 0 && rc >= 0)
            rc = sg_err_set(&err, SG_EIO, "write failed during the handshake");
        if (rc < 0) {
            sg_log(SG_LOG_WARN, "tls_refused", "addr=%s code=%s", l->addr, sg_strerror_name(rc));
            sg_link_close(l, rc, err.msg);
            return;
        }
        if (rc == 0)
            return;
        if (l->is_server && !sg_tls_is_join(l->tls)) {
            /* Server side: the peer's identity is the region its certificate names. An
             * enrollment connection (sangam-join/1) has none: its session may only JOIN. */
            rc = sg_tls_peer_region(l->tls, l->peer, sizeof(l->peer), &err);
            if (rc < 0) {
                sg_log(SG_LOG_WARN, "tls_refused", "addr=%s code=%s", l->addr,
                       sg_strerror_name(rc));
                l->state = L_OPEN;
                sg_link_fail(l, rc, err.msg);
                return;
            }
        }
        l->state = L_OPEN;
        /* Until the session turns keepalive on (after HELLO/WELCOME), the same deadline bounds
         * a peer that completes TLS and then says nothing. */
        uv_timer_stop(&l->timer);
        uv_timer_start(&l->timer, on_handshake_timeout, l->deadline_ms, 0);
        l->last_rx = l->last_tx = uv_now(l->loop);
        if (l->cbs.on_open)
            l->cbs.on_open(l, l->arg);
    }
    while (l->state == L_OPEN) {
        size_t n = 0;
        rc = sg_tls_read(l->tls, l->buf, sizeof(l->buf), &n, &err);
        if (drain(l) < 0 && rc >= 0)
            rc = sg_err_set(&err, SG_EIO, "write failed");
        if (rc == SG_ECLOSED) {
            sg_link_close(l, 0, "peer closed the connection");
            return;
        }
        if (rc < 0) {
            sg_link_close(l, rc, err.msg);
            return;
        }
        if (n == 0)
            return;
        l->plain_rx += n;
        frames_feed(l, (const uint8_t *)l->buf, n);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    sg_link *l = h->data;
    (void)suggested;
    *b = uv_buf_init(l->buf, sizeof(l->buf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    sg_link *l = s->data;

    if (l->state == L_CLOSING)
        return;
    if (nread < 0) {
        if (nread != UV_EOF) {
            sg_link_close(l, SG_EIO, uv_strerror((int)nread));
            return;
        }
        /* The stream ended: whatever close_notify did not announce is a truncation. */
        sg_tls_feed_eof(l->tls);
        pump(l);
        if (l->state != L_CLOSING)
            sg_link_close(l, SG_ECLOSED, "connection closed by the peer");
        return;
    }
    if (nread == 0)
        return;
    l->wire_rx += (uint64_t)nread;
    if (sg_tls_feed(l->tls, b->base, (size_t)nread) < 0) {
        sg_link_close(l, SG_ENOMEM, "out of memory");
        return;
    }
    pump(l);
}

static void on_handshake_timeout(uv_timer_t *t)
{
    sg_link *l = t->data;
    char why[96];
    if (l->state == L_CONNECTING || l->state == L_HANDSHAKE) {
        snprintf(why, sizeof(why), "connection or TLS handshake did not finish within %llu ms",
                 (unsigned long long)l->deadline_ms);
        sg_link_close(l, SG_ETLS, why);
    } else if (l->state == L_OPEN && l->keepalive_ms == 0) {
        snprintf(why, sizeof(why), "no HELLO/WELCOME within %llu ms of the handshake",
                 (unsigned long long)l->deadline_ms);
        sg_link_fail(l, SG_EPROTO, why);
    }
}

void sg_link_deadline(sg_link *l, uint64_t ms)
{
    l->deadline_ms = ms;
    if (l->state == L_CONNECTING || l->state == L_HANDSHAKE ||
        (l->state == L_OPEN && l->keepalive_ms == 0)) {
        uv_timer_stop(&l->timer);
        uv_timer_start(&l->timer, on_handshake_timeout, ms, 0);
    }
}

/* Common set-up; the caller closes handles on later failure. */
static int link_new(sg_link **out, uv_loop_t *loop, sg_tls_ctx *tls, const sg_link_cbs *cbs,
                    void *arg, sg_err *err)
{
    sg_link *l = calloc(1, sizeof(*l));
    int rc;

    *out = NULL;
    if (l == NULL)
        return sg_err_set(err, SG_ENOMEM, "out of memory");
    rc = sg_tls_new(&l->tls, tls, err);
    if (rc < 0) {
        free(l);
        return rc;
    }
    l->loop = loop;
    l->cbs = *cbs;
    l->arg = arg;
    uv_tcp_init(loop, &l->tcp);
    uv_timer_init(loop, &l->timer);
    l->tcp.data = l;
    l->timer.data = l;
    l->handles = 2;
    l->deadline_ms = SG_LINK_HANDSHAKE_MS;
    uv_timer_start(&l->timer, on_handshake_timeout, l->deadline_ms, 0);
    *out = l;
    return 0;
}

static void name_peer(sg_link *l)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[48] = "?";
    if (uv_tcp_getpeername(&l->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
        else
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
        snprintf(l->addr, sizeof(l->addr), "%s:%d", ip,
                 ntohs(((struct sockaddr_in *)&ss)->sin_port));
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    sg_link *l = req->data;
    sg_err err = {0};

    if (l->state == L_CLOSING)
        return;
    if (status < 0) {
        char why[128];
        snprintf(why, sizeof(why), "cannot connect: %s", uv_strerror(status));
        sg_link_close(l, SG_EIO, why);
        return;
    }
    name_peer(l);
    uv_tcp_nodelay(&l->tcp, 1);
    l->state = L_HANDSHAKE;
    if (uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read) < 0) {
        sg_link_close(l, SG_EIO, "cannot read from the socket");
        return;
    }
    /* The client speaks first: ClientHello. */
    if (sg_tls_handshake(l->tls, &err) < 0 || drain(l) < 0) {
        sg_link_close(l, SG_ETLS, err.msg[0] ? err.msg : "TLS handshake failed");
        return;
    }
}

int sg_link_connect(sg_link **out, uv_loop_t *loop, sg_tls_ctx *tls, const struct sockaddr *addr,
                    const sg_link_cbs *cbs, void *arg, sg_err *err)
{
    sg_link *l;
    int rc = link_new(&l, loop, tls, cbs, arg, err);

    *out = NULL;
    if (rc < 0)
        return rc;
    l->state = L_CONNECTING;
    l->connect_req.data = l;
    rc = uv_tcp_connect(&l->connect_req, &l->tcp, addr, on_connect);
    if (rc < 0) {
        /* Nothing was started: close quietly, no on_close. */
        l->cbs.on_close = NULL;
        l->state = L_CLOSING;
        close_handles(l);
        return sg_err_set(err, SG_EIO, "connect: %s", uv_strerror(rc));
    }
    *out = l;
    return 0;
}

int sg_link_accept(sg_link **out, uv_stream_t *server, sg_tls_ctx *tls, const sg_link_cbs *cbs,
                   void *arg, sg_err *err)
{
    sg_link *l;
    int rc = link_new(&l, server->loop, tls, cbs, arg, err);

    *out = NULL;
    if (rc < 0)
        return rc;
    l->state = L_HANDSHAKE;
    l->is_server = 1;
    rc = uv_accept(server, (uv_stream_t *)&l->tcp);
    if (rc == 0) {
        name_peer(l);
        uv_tcp_nodelay(&l->tcp, 1);
        rc = uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read);
    }
    if (rc < 0) {
        l->cbs.on_close = NULL;
        l->state = L_CLOSING;
        close_handles(l);
        return sg_err_set(err, SG_EIO, "accept: %s", uv_strerror(rc));
    }
    *out = l;
    return 0;
}

int sg_link_is_join(const sg_link *l)
{
    return l->state == L_OPEN && sg_tls_is_join(l->tls);
}

int sg_link_pinned_ca_pem(const sg_link *l, char **out, sg_err *err)
{
    return sg_tls_pinned_ca_pem(l->tls, out, err);
}
