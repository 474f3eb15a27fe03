/* faultproxy.c - a seeded, misbehaving TCP link between regions and the hub (issue 7).
 *
 *   faultproxy --listen HOST:PORT --to HOST:PORT --seed N [--for SECONDS] [--modes LIST]
 *              [--trigger BYTES]
 *
 * Every accepted connection is forwarded to --to with a fault plan drawn from the seed: the
 * N-th connection of a run with seed S always gets the same plan (the moment it fires depends on
 * the bytes that flow, which TLS makes different every run, so a plan is repeatable, a packet
 * trace is not). Plans:
 *   clean   forwarded as is;
 *   delay   every read chunk held 0..200 ms before it is written on (order kept);
 *   split   the first 4..64 KiB of each direction written one byte per write (TCP_NODELAY,
 *           so mostly one byte per segment: every frame and TLS record split at every point);
 *   stall   after 1..32 KiB in all, nothing more is read or written either way for 2..6 s
 *           while both sockets stay open (a half-open link), then both are closed;
 *   cut     after 1..64 KiB from the region, both sides are closed at once: mid-record and
 *           mostly mid-frame;
 *   ackcut  after 6..64 KiB from the region (past the handshake: a batch delivered), the
 *           hub's bytes (its ACK) are thrown away from then on, and 300 ms later both sides
 *           are closed: the hub has applied what the region must now send again.
 * Plans rotate through the modes from a seeded start, so any six connections in a row see every
 * fault. Within the fault window every connection is also cut after 0.8..2.5 s if its plan has
 * not ended it, so a run makes many connections. After --for SECONDS (default: forever) new
 * connections are clean and live as long as their peers want, so a test can end with the
 * federation converging over the same proxy. The proxy never looks inside the bytes: it sees
 * only TLS records, as a broken router would.
 *
 * On SIGTERM or SIGINT it prints one line, "faultproxy seed=S connections=N clean=.. delay=..
 * split=.. stall=.. cut=.. ackcut=..", counting the faults that actually fired, and exits 0.
 * Loopback tool for tests: it binds where it is told and dials where it is told, nothing else.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

enum mode { M_CLEAN, M_DELAY, M_SPLIT, M_STALL, M_CUT, M_ACKCUT, M_COUNT };
static const char *const mode_names[M_COUNT] = {"clean", "delay", "split",
                                                "stall", "cut",   "ackcut"};

#define HIGH_WATER (4u << 20) /* a side's pending writes past this: stop reading the other */

struct proxy {
    uv_loop_t *loop;
    uv_tcp_t server;
    uv_signal_t sigterm, sigint;
    struct sockaddr_storage to;
    uint64_t rng; /* xorshift64*, from the seed */
    uint64_t seed;
    uint64_t fault_until_ms; /* loop time after which plans are clean; 0: always faulty */
    unsigned enabled;        /* bit per mode */
    uint64_t connections;
    uint64_t offset;         /* the first connection's place in the rotation of modes */
    uint64_t trigger;        /* --trigger: fixed byte count for stall/cut/ackcut, 0: drawn */
    uint64_t fired[M_COUNT]; /* plans whose fault actually happened (clean: connections) */
};

struct chunk { /* bytes waiting for their release time (delay) */
    struct chunk *next;
    uint64_t due_ms;
    size_t len;
    char data[];
};

struct side {
    uv_tcp_t tcp;
    int reading;
    uint64_t received;   /* bytes read from this socket */
    uint64_t split_left; /* bytes still to be written to this socket one at a time */
    struct chunk *head, *tail;
    uv_timer_t timer; /* releases delayed chunks towards this socket */
};

struct conn {
    struct proxy *p;
    struct side s[2]; /* 0: the region (accepted), 1: the hub (dialled) */
    uv_connect_t connect;
    uv_timer_t stall_timer;
    enum mode mode;
    uint64_t trigger; /* byte count at which stall/cut/ackcut fires */
    uint64_t delay_max_ms;
    uint64_t lifetime_ms; /* in the fault window: cut after this long, if nothing else did */
    int up;               /* the dial succeeded */
    int stalled;          /* stall fired: nothing more flows */
    int closing;          /* close started */
    int handles;          /* open handles; freed when it reaches zero */
    int fired;            /* the plan's fault happened */
    int swallowing;       /* ackcut fired: the hub's bytes are dropped until the cut */
};

static uint64_t rng_next(struct proxy *p)
{
    p->rng ^= p->rng >> 12;
    p->rng ^= p->rng << 25;
    p->rng ^= p->rng >> 27;
    return p->rng * 2685821657736338717ull;
}

static uint64_t rng_range(struct proxy *p, uint64_t lo, uint64_t hi) /* [lo, hi] */
{
    return lo + rng_next(p) % (hi - lo + 1);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles > 0)
        return;
    for (int i = 0; i < 2; i++) {
        struct chunk *k = c->s[i].head;
        while (k) {
            struct chunk *next = k->next;
            free(k);
            k = next;
        }
    }
    free(c);
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->s[0].tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->s[1].tcp, on_handle_closed); /* a pending dial is cancelled */
    uv_close((uv_handle_t *)&c->s[0].timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->s[1].timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->stall_timer, on_handle_closed);
}

static void fire(struct conn *c)
{
    if (!c->fired) {
        c->fired = 1;
        c->p->fired[c->mode]++;
    }
}

struct wreq {
    uv_write_t req;
    struct conn *c;
    int to; /* the side written to */
    char data[];
};

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void resume_reading(struct conn *c, int from)
{
    struct side *s = &c->s[from];
    if (!c->closing && !c->stalled && !s->reading &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->s[1 - from].tcp) < HIGH_WATER / 4) {
        if (uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) == 0)
            s->reading = 1;
    }
}

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = w->c;
    int to = w->to;
    free(w);
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    resume_reading(c, 1 - to);
}

/* write_out: LEN bytes to side TO, one byte per write while its split budget lasts. */
static void write_out(struct conn *c, int to, const char *data, size_t len)
{
    struct side *s = &c->s[to];
    while (len > 0 && !c->closing) {
        size_t n = len;
        if (s->split_left > 0) {
            n = 1;
            s->split_left--;
            fire(c);
        }
        struct wreq *w = malloc(sizeof(*w) + n);
        if (!w) {
            conn_close(c);
            return;
        }
        w->c = c;
        w->to = to;
        memcpy(w->data, data, n);
        uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
        if (uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, on_written) < 0) {
            free(w);
            conn_close(c);
            return;
        }
        data += n;
        len -= n;
    }
    if (!c->closing && uv_stream_get_write_queue_size((uv_stream_t *)&s->tcp) > HIGH_WATER &&
        c->s[1 - to].reading) {
        uv_read_stop((uv_stream_t *)&c->s[1 - to].tcp);
        c->s[1 - to].reading = 0;
    }
}

static void release_due(uv_timer_t *t)
{
    struct conn *c = t->data;
    int to = t == &c->s[0].timer ? 0 : 1;
    struct side *s = &c->s[to];
    uint64_t now = uv_now(c->p->loop);
    while (s->head && s->head->due_ms <= now && !c->closing && !c->stalled) {
        struct chunk *k = s->head;
        s->head = k->next;
        if (!s->head)
            s->tail = NULL;
        write_out(c, to, k->data, k->len);
        free(k);
    }
    if (s->head && !c->closing && !c->stalled)
        uv_timer_start(&s->timer, release_due, s->head->due_ms - now, 0);
}

static void stall_over(uv_timer_t *t)
{
    conn_close(t->data);
}

static void stall(struct conn *c)
{
    c->stalled = 1;
    fire(c);
    for (int i = 0; i < 2; i++) {
        if (c->s[i].reading)
            uv_read_stop((uv_stream_t *)&c->s[i].tcp);
        c->s[i].reading = 0;
        uv_timer_stop(&c->s[i].timer);
    }
    uv_timer_start(&c->stall_timer, stall_over, rng_range(c->p, 2000, 6000), 0);
}

/* forward: bytes read from side FROM go to the other side under the plan. */
static void forward(struct conn *c, int from, const char *data, size_t len)
{
    int to = 1 - from;
    struct side *src = &c->s[from];
    uint64_t total = c->s[0].received + c->s[1].received;
    src->received += len;
    switch (c->mode) {
    case M_STALL:
        if (total + len >= c->trigger) {
            size_t keep = c->trigger > total ? (size_t)(c->trigger - total) : 0;
            write_out(c, to, data, keep);
            stall(c);
            return;
        }
        break;
    case M_CUT:
        if (from == 0 && src->received >= c->trigger) {
            size_t keep = len - (size_t)(src->received - c->trigger);
            write_out(c, to, data, keep);
            fire(c);
            conn_close(c);
            return;
        }
        break;
    case M_ACKCUT:
        if (from == 1 && (c->swallowing || c->s[0].received >= c->trigger)) {
            /* The hub's answer to what was delivered is lost. What the region still sends goes
             * on for 300 ms (so a request split over several writes arrives whole: the hub has
             * acted on it), then the connection is cut. */
            if (!c->swallowing) {
                c->swallowing = 1;
                fire(c);
                uv_timer_start(&c->stall_timer, stall_over, 300, 0);
            }
            return;
        }
        break;
    case M_DELAY: {
        struct side *dst = &c->s[to];
        uint64_t now = uv_now(c->p->loop);
        uint64_t due = now + rng_range(c->p, 0, c->delay_max_ms);
        if (dst->tail && dst->tail->due_ms > due)
            due = dst->tail->due_ms; /* keep the order */
        struct chunk *k = malloc(sizeof(*k) + len);
        if (!k) {
            conn_close(c);
            return;
        }
        k->next = NULL;
        k->due_ms = due;
        k->len = len;
        memcpy(k->data, data, len);
        if (dst->tail)
            dst->tail->next = k;
        else
            dst->head = k;
        dst->tail = k;
        if (due > now)
            fire(c);
        if (!uv_is_active((uv_handle_t *)&dst->timer))
            uv_timer_start(&dst->timer, release_due, dst->head->due_ms - now, 0);
        return;
    }
    default:
        break;
    }
    write_out(c, to, data, len);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void on_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    int from = stream == (uv_stream_t *)&c->s[0].tcp ? 0 : 1;
    if (n > 0 && !c->closing && !c->stalled)
        forward(c, from, buf->base, (size_t)n);
    else if (n < 0)
        conn_close(c); /* EOF or error on either side ends both */
    free(buf->base);
}

static void on_dialled(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    c->up = 1;
    uv_tcp_nodelay(&c->s[1].tcp, 1);
    if (c->lifetime_ms > 0)
        uv_timer_start(&c->stall_timer, stall_over, c->lifetime_ms, 0);
    for (int i = 0; i < 2; i++) {
        if (uv_read_start((uv_stream_t *)&c->s[i].tcp, on_alloc, on_read) == 0)
            c->s[i].reading = 1;
    }
}

static void plan(struct proxy *p, struct conn *c)
{
    int modes[M_COUNT], n = 0;
    int faulty = p->fault_until_ms == 0 || uv_now(p->loop) < p->fault_until_ms;
    for (int m = 0; m < M_COUNT; m++)
        if (p->enabled & (1u << m))
            modes[n++] = m;
    /* The plans rotate through the enabled modes from a seeded start, so any six connections
     * of a run see every fault; their parameters are drawn. */
    if (p->connections == 1)
        p->offset = n > 0 ? rng_next(p) % (uint64_t)n : 0;
    c->mode =
        faulty && n > 0 ? (enum mode)modes[(p->offset + p->connections) % (uint64_t)n] : M_CLEAN;
    c->lifetime_ms = faulty ? rng_range(p, 800, 2500) : 0;
    /* Every parameter is drawn for every connection, so plan K depends on the seed alone. */
    uint64_t a = rng_range(p, 1024, 32768), b = rng_range(p, 1024, 65536);
    uint64_t d = rng_range(p, 6144, 65536), split = rng_range(p, 4096, 65536);
    c->delay_max_ms = 200;
    c->trigger = p->trigger ? p->trigger : c->mode == M_STALL ? a : c->mode == M_CUT ? b : d;
    if (c->mode == M_SPLIT) {
        c->s[0].split_left = split;
        c->s[1].split_left = split;
    }
    if (c->mode == M_CLEAN)
        p->fired[M_CLEAN]++;
}

static void on_accept(uv_stream_t *server, int status)
{
    struct proxy *p = server->data;
    if (status < 0)
        return;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->p = p;
    uv_tcp_init(p->loop, &c->s[0].tcp);
    c->handles = 5;
    c->s[0].tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->s[0].tcp) < 0) {
        c->handles = 1;
        c->closing = 1;
        uv_close((uv_handle_t *)&c->s[0].tcp, on_handle_closed);
        return;
    }
    uv_tcp_init(p->loop, &c->s[1].tcp);
    c->s[1].tcp.data = c;
    for (int i = 0; i < 2; i++) {
        uv_timer_init(p->loop, &c->s[i].timer);
        c->s[i].timer.data = c;
    }
    uv_timer_init(p->loop, &c->stall_timer);
    c->stall_timer.data = c;
    c->connect.data = c;
    uv_tcp_nodelay(&c->s[0].tcp, 1);
    p->connections++;
    plan(p, c);
    fprintf(stderr, "faultproxy: connection %" PRIu64 ": %s\n", p->connections,
            mode_names[c->mode]);
    if (uv_tcp_connect(&c->connect, &c->s[1].tcp, (struct sockaddr *)&p->to, on_dialled) < 0)
        conn_close(c);
}

static void report(struct proxy *p)
{
    printf("faultproxy seed=%" PRIu64 " connections=%" PRIu64, p->seed, p->connections);
    for (int m = 0; m < M_COUNT; m++)
        printf(" %s=%" PRIu64, mode_names[m], p->fired[m]);
    printf("\n");
    fflush(stdout);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    struct proxy *p = s->data;
    report(p);
    exit(0); /* a test tool: the kernel closes the sockets */
}

static int parse_addr(const char *text, struct sockaddr_storage *out)
{
    char host[256];
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof(host))
        return -1;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port > 65535)
        return -1;
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: faultproxy --listen HOST:PORT --to HOST:PORT --seed N [--for SECONDS]\n"
               "                  [--modes clean,delay,split,stall,cut,ackcut] [--trigger BYTES]\n"
               "A seeded misbehaving TCP link for tests (see the header of "
               "tests/tools/faultproxy.c).\n");
}

int main(int argc, char **argv)
{
    struct proxy p = {0};
    const char *listen = NULL, *to = NULL;
    long for_s = 0;
    p.enabled = (1u << M_COUNT) - 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            usage(stderr);
            return 2;
        }
        i++;
        if (!strcmp(a, "--listen"))
            listen = v;
        else if (!strcmp(a, "--to"))
            to = v;
        else if (!strcmp(a, "--seed"))
            p.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--trigger"))
            p.trigger = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--for"))
            for_s = strtol(v, NULL, 10);
        else if (!strcmp(a, "--modes")) {
            p.enabled = 0;
            char list[128];
            snprintf(list, sizeof(list), "%s", v);
            for (char *save = NULL, *m = strtok_r(list, ",", &save); m;
                 m = strtok_r(NULL, ",", &save)) {
                int found = 0;
                for (int k = 0; k < M_COUNT; k++)
                    if (!strcmp(m, mode_names[k])) {
                        p.enabled |= 1u << k;
                        found = 1;
                    }
                if (!found) {
                    fprintf(stderr, "faultproxy: unknown mode %s\n", m);
                    return 2;
                }
            }
        } else {
            usage(stderr);
            return 2;
        }
    }
    struct sockaddr_storage at;
    if (!listen || !to || parse_addr(listen, &at) < 0 || parse_addr(to, &p.to) < 0) {
        usage(stderr);
        return 2;
    }
    p.rng = p.seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (p.rng == 0)
        p.rng = 1;
    signal(SIGPIPE, SIG_IGN);
    p.loop = uv_default_loop();
    if (for_s > 0)
        p.fault_until_ms = uv_now(p.loop) + (uint64_t)for_s * 1000;
    uv_tcp_init(p.loop, &p.server);
    p.server.data = &p;
    int rc = uv_tcp_bind(&p.server, (struct sockaddr *)&at, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&p.server, 128, on_accept);
    if (rc < 0) {
        fprintf(stderr, "faultproxy: cannot listen on %s: %s\n", listen, uv_strerror(rc));
        return 1;
    }
    uv_signal_init(p.loop, &p.sigterm);
    uv_signal_init(p.loop, &p.sigint);
    p.sigterm.data = p.sigint.data = &p;
    uv_signal_start(&p.sigterm, on_signal, SIGTERM);
    uv_signal_start(&p.sigint, on_signal, SIGINT);
    fprintf(stderr, "faultproxy: %s -> %s, seed %" PRIu64 "\n", listen, to, p.seed);
    uv_run(p.loop, UV_RUN_DEFAULT);
    return 0;
}
