/*
 * fanin.c - bench_fanin: many regions pushing member rows into one hub at once.
 *
 *   bench_fanin --hub HOST:PORT --pki DIR --regions R --changes N [--prefix P] [--batch B]
 *               [--window W] [--timeout S]
 *
 * Simulated regions share this process (one libuv loop) but nothing else: each has its own key
 * and certificate, issued here by the test CA in DIR (ca.pem, ca.key, as made by
 * deploy/make-test-pki.sh) through server/ca.c, its own TLS context and its own connection, and
 * speaks the real protocol (HELLO, WELCOME, a window of BATCHes, ACKs) through server/link.c.
 * The hub cannot tell them from sangamd regions.
 *
 * N changes in all are split evenly across the R regions (P-0001, P-0002, ...); each change is
 * a member insert shaped like deploy/sample-members.sh's rows, with a time-ordered 24-character
 * id, every column present as the region's capture triggers send them. The clock starts when
 * every region has been WELCOMEd (connections are opened at most 32 at a time, so the hub's
 * listen backlog never drops a SYN) and stops when the last ACK arrives. Prints on stdout:
 *   sangam_fanin regions=R changes=N connect_s=C seconds=S rows_per_s=X
 * and exits 1 if any region was refused, closed early, or the timeout passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "ca.h"
#include "link.h"
#include "sangam/batch.h"
#include "sangam/frame.h"
#include "store.h"
#include "tls.h"

#define CONNECTING_MAX 32 /* connections in handshake at once */

enum { R_IDLE, R_CONNECTING, R_HELLO, R_READY, R_DONE, R_CLOSED };

typedef struct fanin fanin;

typedef struct region {
    fanin *f;
    int index;
    char id[64];
    sg_tls_ctx *tls;
    sg_link *link;
    sg_batch_enc *enc;
    int state;
    uint64_t base;     /* the hub's cursor for this region at WELCOME */
    uint64_t quota;    /* changes this region sends */
    uint64_t sent;     /* changes sent (relative to base) */
    uint64_t acked;    /* changes acknowledged */
    uint64_t ring[16]; /* seq each frame in flight must be ACKed with */
    unsigned head, inflight;
} region;

struct fanin {
    uv_loop_t *loop;
    struct sockaddr_storage addr;
    region *r;
    int n, next, connecting, welcomed, done, closed, failed, started, reported;
    uint32_t batch, window;
    double t_connect, t_start, t_end;
    uv_timer_t deadline;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void connect_more(fanin *f);
static void pump(region *r);
static void abort_all(fanin *f);

static const char *const names[] = {"Sita Yadav",  "Ram Patel",     "Rekha Verma",
                                    "Mohan Singh", "Sunita Maurya", "Ajay Kushwaha"};
static const char *const villages[] = {"Chunar", "Lalganj", "Halia", "Baragaon", "Atarra"};
static const char *const sectors[] = {"dairy", "handloom", "poultry", "tailoring", "pottery"};

static sg_value str(const char *s)
{
    sg_value v = {SG_VAL_STR, 0, s, (uint32_t)strlen(s)};
    return v;
}

static sg_value num(int64_t i)
{
    sg_value v = {SG_VAL_INT, i, NULL, 0};
    return v;
}

/* Appends change number k (1-based) of region r to its encoder. */
static int add_change(region *r, uint64_t k)
{
    static const char *const cols[] = {
        "region",    "name",    "kind",       "gender",    "birth_year",
        "phone",     "village", "district",   "sector",    "organisation_id",
        "joined_on", "status",  "created_at", "updated_at"};
    sg_col c[sizeof(cols) / sizeof(cols[0])];
    char pk[32], phone[24], joined[16], ts[32];
    uint64_t ms = wall_ms();
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    sg_change ch;
    unsigned x = (unsigned)(k * 2654435761u + (unsigned)r->index);

    snprintf(pk, sizeof(pk), "%012llX%04X%08llX", (unsigned long long)ms,
             (unsigned)r->index & 0xffff, (unsigned long long)k & 0xffffffffull);
    snprintf(phone, sizeof(phone), "+91 9%09u", x % 1000000000u);
    snprintf(joined, sizeof(joined), "2026-%02u-%02u", 1 + x % 10, 1 + x % 28);
    gmtime_r(&secs, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + strlen(ts), sizeof(ts) - strlen(ts), ".%03uZ", (unsigned)(ms % 1000));
    for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
        c[i].name = cols[i];
        c[i].name_len = (uint32_t)strlen(cols[i]);
    }
    c[0].v = str(r->id);
    c[1].v = str(names[x % 6]);
    c[2].v = str("entrepreneur");
    c[3].v = str(x % 2 ? "female" : "male");
    c[4].v = num(1965 + x % 42);
    c[5].v = str(phone);
    c[6].v = str(villages[x % 5]);
    c[7].v = str("Mirzapur");
    c[8].v = str(sectors[(x >> 3) % 5]);
    c[9].v.type = SG_VAL_NIL;
    c[10].v = str(joined);
    c[11].v = str("active");
    c[12].v = str(ts);
    c[13].v = str(ts);
    memset(&ch, 0, sizeof(ch));
    ch.seq = r->base + k;
    ch.hlc = ms << 16 | (k & 0xffff);
    ch.table = "members";
    ch.table_len = 7;
    ch.pk = pk;
    ch.pk_len = (uint32_t)strlen(pk);
    ch.op = SG_OP_INSERT;
    ch.cols = c;
    ch.ncols = sizeof(cols) / sizeof(cols[0]);
    return sg_batch_enc_add(r->enc, &ch);
}

/* Reports the first few failures (the rest are usually the same one, once per region). */
static void report(fanin *f, const char *fmt, const char *id, const char *what)
{
    if (f->reported++ < 5)
        fprintf(stderr, fmt, id, what);
    else if (f->reported == 6)
        fprintf(stderr, "bench_fanin: (further failures not shown)\n");
}

static void fail(region *r, const char *what)
{
    report(r->f, "bench_fanin: %s: %s\n", r->id, what);
    r->f->failed++;
    if (r->link)
        sg_link_close(r->link, SG_EPROTO, what);
}

static void pump(region *r)
{
    fanin *f = r->f;
    while (f->started && r->state == R_READY && r->sent < r->quota && r->inflight < f->window &&
           !sg_link_busy(r->link)) {
        const void *buf;
        size_t len;
        sg_msg m;
        uint64_t k;
        sg_batch_enc_reset(r->enc);
        for (k = r->sent + 1; k <= r->quota && k <= r->sent + f->batch; k++)
            if (add_change(r, k) < 0) {
                fail(r, "cannot encode a change");
                return;
            }
        if (sg_batch_enc_finish(r->enc, &buf, &len) < 0) {
            fail(r, "cannot encode a batch");
            return;
        }
        memset(&m, 0, sizeof(m));
        m.type = SG_MSG_BATCH;
        m.batch = buf;
        m.batch_len = len;
        if (sg_link_send(r->link, &m) < 0)
            return; /* the link is closing; on_close reports it */
        r->sent = k - 1;
        r->ring[(r->head + r->inflight) % 16] = r->base + r->sent;
        r->inflight++;
    }
}

static void start_all(fanin *f)
{
    f->started = 1;
    f->t_start = now_s();
    for (int i = 0; i < f->n; i++)
        pump(&f->r[i]);
}

static void on_open(sg_link *l, void *arg)
{
    region *r = arg;
    sg_msg m;
    memset(&m, 0, sizeof(m));
    m.type = SG_MSG_HELLO;
    m.version = SG_PROTO_VERSION;
    m.node = r->id;
    m.node_len = (uint32_t)strlen(r->id);
    m.schema = SG_SCHEMA_VERSION;
    r->state = R_HELLO;
    sg_link_send(l, &m);
}

static void on_msg(sg_link *l, const sg_msg *m, void *arg)
{
    region *r = arg;
    fanin *f = r->f;
    char text[SG_ERR_MSG_MAX];

    if (m->type == SG_MSG_ERROR || m->type == SG_MSG_BYE) {
        snprintf(text, sizeof(text), "the hub said %s: %.*s %.*s", sg_msg_name(m->type),
                 (int)m->code_len, m->code ? m->code : "", (int)m->text_len,
                 m->text ? m->text : "");
        fail(r, text);
        return;
    }
    if (r->state == R_HELLO && m->type == SG_MSG_WELCOME) {
        r->base = m->seq;
        r->state = R_READY;
        sg_link_keepalive(l, 15000);
        f->connecting--;
        if (++f->welcomed == f->n) {
            f->t_connect = now_s() - f->t_connect;
            start_all(f);
        } else {
            connect_more(f);
        }
        return;
    }
    if (r->state == R_READY && m->type == SG_MSG_ACK) {
        if (r->inflight == 0 || m->seq != r->ring[r->head]) {
            fail(r, "an ACK that answers no batch in flight");
            return;
        }
        r->head = (r->head + 1) % 16;
        r->inflight--;
        r->acked = m->seq - r->base;
        if (r->acked == r->quota) {
            r->state = R_DONE;
            if (++f->done == f->n)
                f->t_end = now_s();
            sg_link_close(l, 0, "done");
            return;
        }
        pump(r);
        return;
    }
    snprintf(text, sizeof(text), "unexpected %s", sg_msg_name(m->type));
    fail(r, text);
}

static void on_drain(sg_link *l, void *arg)
{
    (void)l;
    pump(arg);
}

static void on_close(sg_link *l, int code, const char *why, void *arg)
{
    region *r = arg;
    fanin *f = r->f;
    (void)l;
    r->link = NULL;
    if (r->state != R_DONE) {
        report(f, "bench_fanin: %s: connection closed early: %s\n", r->id, why);
        (void)code;
        f->failed++;
        if (r->state == R_CONNECTING || r->state == R_HELLO)
            f->connecting--;
    }
    r->state = R_CLOSED;
    if (++f->closed == f->n)
        uv_close((uv_handle_t *)&f->deadline, NULL);
    else if (f->failed && !f->started)
        abort_all(f); /* the others wait for a start that will not come */
}

static const sg_link_cbs cbs = {on_open, on_msg, on_drain, on_close};

/* Opens connections until CONNECTING_MAX are in handshake or all are open; after a failure,
 * regions not yet started are counted closed so the loop ends. */
static void connect_more(fanin *f)
{
    while (f->next < f->n && (f->failed || f->connecting < CONNECTING_MAX)) {
        region *r = &f->r[f->next++];
        sg_err err = {0};
        if (f->failed) {
            r->state = R_CLOSED;
            if (++f->closed == f->n)
                uv_close((uv_handle_t *)&f->deadline, NULL);
            continue;
        }
        r->state = R_CONNECTING;
        f->connecting++;
        if (sg_link_connect(&r->link, f->loop, r->tls, (const struct sockaddr *)&f->addr, &cbs, r,
                            &err) < 0) {
            fprintf(stderr, "bench_fanin: %s: connect: %s\n", r->id, err.msg);
            f->connecting--;
            f->failed++;
            r->state = R_CLOSED;
            if (++f->closed == f->n)
                uv_close((uv_handle_t *)&f->deadline, NULL);
        }
    }
}

/* After a failure: closes every open link and counts the regions never opened as closed, so
 * the loop ends. */
static void abort_all(fanin *f)
{
    for (int i = 0; i < f->n; i++)
        if (f->r[i].link)
            sg_link_close(f->r[i].link, SG_ECLOSED, "the run was aborted");
    connect_more(f);
}

static void on_deadline(uv_timer_t *t)
{
    fanin *f = t->data;
    fprintf(stderr, "bench_fanin: timeout: %d of %d regions done\n", f->done, f->n);
    f->failed++;
    abort_all(f);
}

/* Issues region r's key and certificate with the CA, writes them to dir, makes its context. */
static int make_region(region *r, const sg_ca *ca, const char *dir, const char *ca_file)
{
    char pem[4096], key[4096];
    EVP_PKEY *k = NULL;
    X509 *x = NULL;
    sg_err err = {0};
    int rc;

    snprintf(pem, sizeof(pem), "%s/%s.pem", dir, r->id);
    snprintf(key, sizeof(key), "%s/%s.key", dir, r->id);
    if ((rc = sg_key_new(&k, &err)) < 0 ||
        (rc = sg_ca_issue(&x, ca, k, SG_CERT_REGION, r->id, 30, &err)) < 0 ||
        (rc = sg_pem_write_key(key, k, &err)) < 0 || (rc = sg_pem_write_cert(pem, x, &err)) < 0 ||
        (rc = sg_tls_ctx_new(&r->tls, 0, ca_file, pem, key, &err)) < 0 ||
        (rc = sg_batch_enc_new(&r->enc, r->id)) < 0)
        fprintf(stderr, "bench_fanin: %s: %s\n", r->id, err.msg[0] ? err.msg : "out of memory");
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_fanin --hub HOST:PORT --pki DIR --regions R --changes N [--prefix P]\n"
            "                   [--batch B] [--window W] [--timeout SECONDS]\n"
            "  R simulated regions (P-0001..), each with its own certificate issued by DIR's\n"
            "  test CA, push N member inserts in all to the hub over mutual TLS.\n");
}

static long arg_num(const char *s, long lo, long hi)
{
    char *end;
    long v = strtol(s, &end, 10);
    return (*s == '\0' || *end != '\0' || v < lo || v > hi) ? -1 : v;
}

int main(int argc, char **argv)
{
    const char *hub = NULL, *pki = NULL, *prefix = "fan";
    long regions = -1, changes = -1, batch = 1000, window = 4, timeout = 600;
    char ca_pem[4096], ca_key[4096], host[256];
    sg_ca *ca = NULL;
    sg_err err = {0};
    fanin f;
    int rc = 1, port;
    char *colon;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            usage();
            return 2;
        }
        i++;
        if (strcmp(a, "--hub") == 0)
            hub = v;
        else if (strcmp(a, "--pki") == 0)
            pki = v;
        else if (strcmp(a, "--prefix") == 0)
            prefix = v;
        else if (strcmp(a, "--regions") == 0)
            regions = arg_num(v, 1, 10000);
        else if (strcmp(a, "--changes") == 0)
            changes = arg_num(v, 1, 100000000);
        else if (strcmp(a, "--batch") == 0)
            batch = arg_num(v, 1, 20000);
        else if (strcmp(a, "--window") == 0)
            window = arg_num(v, 1, 16);
        else if (strcmp(a, "--timeout") == 0)
            timeout = arg_num(v, 1, 86400);
        else {
            usage();
            return 2;
        }
    }
    if (hub == NULL || pki == NULL || regions < 1 || changes < regions || batch < 1 || window < 1 ||
        timeout < 1 || (colon = strrchr(hub, ':')) == NULL ||
        (size_t)(colon - hub) >= sizeof(host) || (port = (int)arg_num(colon + 1, 1, 65535)) < 0) {
        usage();
        return 2;
    }
    memcpy(host, hub, (size_t)(colon - hub));
    host[colon - hub] = '\0';

    memset(&f, 0, sizeof(f));
    f.loop = uv_default_loop();
    f.n = (int)regions;
    f.batch = (uint32_t)batch;
    f.window = (uint32_t)window;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&f.addr) != 0) {
        fprintf(stderr, "bench_fanin: %s: not an IPv4 address and port\n", hub);
        return 2;
    }
    snprintf(ca_pem, sizeof(ca_pem), "%s/ca.pem", pki);
    snprintf(ca_key, sizeof(ca_key), "%s/ca.key", pki);
    if (sg_ca_load(&ca, ca_pem, ca_key, &err) < 0) {
        fprintf(stderr, "bench_fanin: %s\n", err.msg);
        return 1;
    }
    f.r = calloc((size_t)f.n, sizeof(*f.r));
    if (f.r == NULL)
        goto out;
    for (int i = 0; i < f.n; i++) {
        region *r = &f.r[i];
        r->f = &f;
        r->index = i + 1;
        snprintf(r->id, sizeof(r->id), "%s-%04d", prefix, i + 1);
        r->quota = (uint64_t)(changes / regions + (i < changes % regions ? 1 : 0));
        if (make_region(r, ca, pki, ca_pem) < 0)
            goto out;
    }
    uv_timer_init(f.loop, &f.deadline);
    f.deadline.data = &f;
    uv_timer_start(&f.deadline, on_deadline, (uint64_t)timeout * 1000, 0);
    f.t_connect = now_s();
    connect_more(&f);
    uv_run(f.loop, UV_RUN_DEFAULT);
    if (f.failed == 0 && f.done == f.n) {
        double s = f.t_end - f.t_start;
        printf("sangam_fanin regions=%d changes=%ld connect_s=%.3f seconds=%.3f rows_per_s=%.0f\n",
               f.n, changes, f.t_connect, s, (double)changes / s);
        rc = 0;
    }
out:
    if (f.r != NULL)
        for (int i = 0; i < f.n; i++) {
            sg_tls_ctx_free(f.r[i].tls);
            sg_batch_enc_free(f.r[i].enc);
        }
    free(f.r);
    sg_ca_free(ca);
    uv_loop_close(f.loop);
    return rc;
}
