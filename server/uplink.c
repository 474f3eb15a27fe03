/*
 * uplink.c - a region's replication session with its hub; see uplink.h and PROTOCOL.md 7.4.
 *
 * States: BACKOFF -> RESOLVING -> CONNECTING -> HELLO_SENT -> STREAMING <-> SNAPSHOT, and back to
 * BACKOFF from any of them when the link closes; STOPPING is final. Moves go through up_move(),
 * which asserts the table of allowed moves.
 *
 * Certificates: after WELCOME, when this node's certificate has less than [tls] renew_before
 * left, the uplink sends RENEW with a CSR for the key it already has and, on the hub's CERT,
 * checks the new certificate (its key, its region, the CA), writes it over the old one and uses
 * it from the next connection on. The stream goes on meanwhile; nothing waits for the renewal.
 *
 * What the region may forget: a change leaves the log only when the hub acknowledged it (ACK
 * comes after the hub's commit) and it is older than the retention window. Everything the hub
 * has not acknowledged is sent again after a reconnect, from the cursor the hub names, and the
 * hub skips what it already has.
 */
#include "uplink.h"

#include <assert.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "apply.h"
#include "ca.h"
#include "link.h"
#include "log.h"
#include "sangam/batch.h"
#include "sangam/frame.h"
#include "tls.h"

enum up_state {
    U_BACKOFF,
    U_RESOLVING,
    U_CONNECTING,
    U_HELLO_SENT,
    U_STREAMING,
    U_SNAPSHOT,
    U_STOPPING,
    U_RESTORING,
};

static const char *const state_names[] = {"backoff",   "resolving", "connecting", "hello_sent",
                                          "streaming", "snapshot",  "stopping",   "restoring"};

struct sg_uplink {
    uv_loop_t *loop;      /* borrowed */
    sg_store *st;         /* the node's writer connection (borrowed) */
    sg_store *rd;         /* our reader connection (owned) */
    const sg_config *cfg; /* borrowed */
    sg_tls_ctx *tls;      /* owned */
    sg_link *link;        /* current link, or NULL */
    uv_getaddrinfo_t gai; /* name lookup in progress when gai_pending */
    int gai_pending;
    uv_timer_t retry;    /* backoff before the next attempt */
    uv_timer_t kick;     /* coalesces wake-ups into one pump */
    int rechecks;        /* further pumps the kick timer owes a WAL change */
    uv_timer_t poll;     /* safety-net wake-up, pruning, status */
    uv_fs_event_t watch; /* writes by other processes (WAL file) */
    int watching;
    int handles; /* handles not yet closed (for stop) */
    enum up_state state;
    sg_batch_enc *enc;       /* reused for every batch */
    uint64_t sent;           /* last seq sent in this session */
    uint64_t acked;          /* last seq the hub acknowledged */
    uint64_t expect[64];     /* ring of the ACK seq each unacknowledged frame must get */
    uint32_t head, inflight; /* ring: oldest entry, and how many (<= window <= 64) */
    uint32_t snap_pending;   /* of those, frames of the snapshot (its batches and END) */
    uint64_t snap_seq;       /* SNAPSHOT: the seq it reflects */
    sg_snapshot_pos snap;    /* SNAPSHOT: reading position */
    int snap_open;           /* a read transaction on rd holds the snapshot */
    unsigned attempts;       /* consecutive failed attempts, for backoff */
    int refused;             /* the last failure was the hub refusing us */
    int error_noted;         /* last_error already says why this session is ending */
    uint64_t next_attempt;   /* uv_now() of the next attempt while in BACKOFF */
    uint64_t last_status;    /* local seq last reported with STATUS */
    uint64_t last_prune;     /* uv_now() of the last prune */
    unsigned rand_state;     /* jitter */
    char last_error[SG_ERR_MSG_MAX];
    char connected_since[32];
    int64_t cert_not_after; /* this node's certificate's notAfter (Unix time), 0 if unknown */
    int renew_pending;      /* a RENEW awaits its CERT on this link */
    int restore_requested;  /* an operator asked to restore from the hub (sg_uplink_restore) */
    int restore_force;      /* ... over a database that holds records */
    uint64_t restore_rows;  /* RESTORING: rows applied so far */
    uint64_t restore_hlc;   /* RESTORING: the largest clock among them */
    char restore_done[160]; /* the last restore's outcome, for status ("" if none) */
    void (*done)(void *);
    void *done_arg;
};

static void pump(sg_uplink *u);
static void attempt(sg_uplink *u);
static void maybe_renew(sg_uplink *u);
static void on_restore_msg(sg_uplink *u, const sg_msg *m);

static void up_move(sg_uplink *u, enum up_state to)
{
    enum up_state from = u->state;
    assert(to == U_STOPPING || from != U_STOPPING);
    assert(to == U_STOPPING || to == U_BACKOFF || (from == U_BACKOFF && to == U_RESOLVING) ||
           (from == U_RESOLVING && to == U_CONNECTING) ||
           (from == U_CONNECTING && to == U_HELLO_SENT) ||
           (from == U_HELLO_SENT && to == U_STREAMING) ||
           (from == U_HELLO_SENT && to == U_RESTORING) ||
           (from == U_RESTORING && to == U_STREAMING) ||
           (from == U_STREAMING && to == U_SNAPSHOT) || (from == U_SNAPSHOT && to == U_STREAMING));
    (void)from;
    u->state = to;
}

static void set_error(sg_uplink *u, const char *fmt, const char *detail)
{
    snprintf(u->last_error, sizeof(u->last_error), fmt, detail);
}

static void maybe_done(sg_uplink *u)
{
    if (u->state != U_STOPPING || u->handles > 0 || u->link != NULL || u->gai_pending)
        return;
    if (u->snap_open)
        sg_store_read_end(u->rd);
    sg_store_close(u->rd);
    sg_batch_enc_free(u->enc);
    sg_tls_ctx_free(u->tls);
    if (u->done)
        u->done(u->done_arg);
    free(u);
}

static void on_handle_closed(uv_handle_t *h)
{
    sg_uplink *u = h->data;
    u->handles--;
    maybe_done(u);
}

static void on_retry(uv_timer_t *t)
{
    attempt(t->data);
}

static void schedule_retry(sg_uplink *u)
{
    uint64_t hi = (uint64_t)u->cfg->reconnect_max_ms;
    unsigned shift = u->attempts < 20 ? u->attempts : 20;
    uint64_t delay = (uint64_t)SG_UPLINK_BACKOFF_MIN_MS << shift;

    /* PROTOCOL.md 7.4: 1 s doubling to the maximum; the maximum at once after a refusal only a
     * person can fix; each delay times a random factor in [0.5, 1] so that regions cut off
     * together do not all come back in the same instant. */
    if (delay > hi || u->refused)
        delay = hi;
    delay = delay / 2 + (uint64_t)rand_r(&u->rand_state) % (delay / 2 + 1);
    u->attempts++;
    if (u->state != U_BACKOFF)
        up_move(u, U_BACKOFF);
    u->next_attempt = uv_now(u->loop) + delay;
    uv_timer_start(&u->retry, on_retry, delay, 0);
}

static int send_simple(sg_uplink *u, sg_msg_type type, uint64_t seq, uint64_t count)
{
    sg_msg m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    m.seq = seq;
    m.count = count;
    m.hlc = count; /* STATUS carries the clock where SNAPSHOT_END carries the count */
    return sg_link_send(u->link, &m);
}

/* Tells the hub how far this region's log goes, so it can show lag. */
static void send_status(sg_uplink *u)
{
    uint64_t head = (uint64_t)sg_store_seq(u->st);
    if (head == u->last_status)
        return;
    u->last_status = head;
    send_simple(u, SG_MSG_STATUS, head, (uint64_t)sg_store_hlc(u->st));
}

static int start_snapshot(sg_uplink *u)
{
    sg_err err = {0};
    int64_t seq;

    if (sg_store_read_begin(u->rd, &err) < 0)
        return err.code;
    u->snap_open = 1;
    seq = sg_store_seq(u->rd); /* the first read fixes the snapshot */
    if (seq < 0)
        return SG_EDB;
    u->snap_seq = (uint64_t)seq;
    memset(&u->snap, 0, sizeof(u->snap));
    up_move(u, U_SNAPSHOT);
    sg_log(SG_LOG_INFO, "snapshot_begin", "hub=%s seq=%lld reason=log_pruned_past_hub_cursor",
           u->cfg->hub_address, (long long)seq);
    return send_simple(u, SG_MSG_SNAPSHOT_BEGIN, u->snap_seq, 0);
}

/* Remembers that the frame just sent must be acknowledged with seq. */
static void expect_ack(sg_uplink *u, uint64_t seq)
{
    u->expect[(u->head + u->inflight) % 64] = seq;
    u->inflight++;
}

/* Sends the encoder's batch, whose last seq (or synthetic seq) is last. */
static int send_batch(sg_uplink *u, uint64_t last)
{
    const void *buf;
    size_t len;
    sg_msg m;
    int rc = sg_batch_enc_finish(u->enc, &buf, &len);
    if (rc < 0)
        return rc;
    memset(&m, 0, sizeof(m));
    m.type = SG_MSG_BATCH;
    m.batch = buf;
    m.batch_len = len;
    rc = sg_link_send(u->link, &m);
    if (rc == 0)
        expect_ack(u, last);
    return rc;
}

static void pump(sg_uplink *u)
{
    sg_err err = {0};
    int rc;

    while ((u->state == U_STREAMING || u->state == U_SNAPSHOT) && u->link != NULL &&
           u->inflight < u->cfg->window && !sg_link_busy(u->link)) {
        sg_batch_enc_reset(u->enc);
        if (u->state == U_SNAPSHOT) {
            int done = 0;
            rc = sg_outbox_snapshot_read(&done, u->rd, sg_store_node_id(u->st), &u->snap,
                                         u->cfg->batch_changes, u->cfg->batch_bytes, u->enc, &err);
            if (rc == 0 && sg_batch_enc_count(u->enc) > 0) {
                rc = send_batch(u, u->snap.synth);
                u->snap_pending++;
            }
            if (rc == 0 && done) {
                sg_store_read_end(u->rd);
                u->snap_open = 0;
                rc = send_simple(u, SG_MSG_SNAPSHOT_END, u->snap_seq, u->snap.synth);
                expect_ack(u, u->snap_seq);
                u->snap_pending++;
                u->sent = u->snap_seq;
                up_move(u, U_STREAMING);
                sg_log(SG_LOG_INFO, "snapshot_sent", "rows=%llu seq=%llu",
                       (unsigned long long)u->snap.synth, (unsigned long long)u->snap_seq);
            }
        } else {
            uint64_t last = u->sent;
            rc = sg_outbox_read(&last, u->rd, u->sent, u->cfg->batch_changes, u->cfg->batch_bytes,
                                u->enc, &err);
            if (rc == 0 && last == u->sent)
                break; /* nothing new */
            if (rc == 0)
                rc = send_batch(u, last);
            if (rc == 0)
                u->sent = last;
        }
        if (rc < 0) {
            char q[SG_ERR_MSG_MAX];
            sg_log(SG_LOG_ERROR, "uplink_read_failed", "code=%s reason=%s", sg_strerror_name(rc),
                   sg_logq(q, sizeof(q), err.msg));
            if (u->link)
                sg_link_close(u->link, rc, err.msg[0] ? err.msg : sg_strerror(rc));
            return;
        }
    }
    if (u->state == U_STREAMING && u->link != NULL)
        send_status(u);
}

static void on_kick(uv_timer_t *t)
{
    sg_uplink *u = t->data;
    pump(u);
    if (u->rechecks > 0) {
        u->rechecks--;
        uv_timer_start(&u->kick, on_kick, 40, 0);
    }
}

void sg_uplink_notify(sg_uplink *u)
{
    if (u == NULL || (u->state != U_STREAMING && u->state != U_SNAPSHOT))
        return;
    /* Now, even when a recheck is already scheduled for later. */
    uv_timer_start(&u->kick, on_kick, 0, 0);
}

static void on_watch(uv_fs_event_t *h, const char *name, int events, int status)
{
    sg_uplink *u = h->data;
    (void)name;
    (void)events;
    (void)status;
    /* Another process wrote the WAL. Its commit becomes visible to readers only when it also
     * updates the shared-memory index, which inotify does not report (mmap), so look a few
     * times over the next ~200 ms rather than once. */
    if (u->state != U_STREAMING && u->state != U_SNAPSHOT)
        return;
    u->rechecks = 4;
    if (!uv_is_active((uv_handle_t *)&u->kick) || uv_timer_get_due_in(&u->kick) > 10)
        uv_timer_start(&u->kick, on_kick, 10, 0);
}

static void on_welcome(sg_uplink *u, const sg_msg *m)
{
    int64_t local = sg_store_seq(u->st);
    int64_t oldest = sg_outbox_oldest(u->rd);
    sg_err err = {0};
    char text[SG_ERR_MSG_MAX];

    if (local < 0 || oldest < 0) {
        sg_link_close(u->link, SG_EDB, "cannot read the change log");
        return;
    }
    if (m->seq > (uint64_t)local && u->restore_requested) {
        /* An operator asked for it (sangam restore --from-hub): the hub sends this region's
         * rows, applied in one transaction with capture off; the log then goes on from the
         * hub's cursor, so nothing is lost and nothing is sent twice. */
        sg_msg r;
        int64_t records = sg_store_records(u->st);
        if (records != 0 && !u->restore_force) {
            set_error(u, "%s", "restore refused: this database holds records (use --force)");
            u->error_noted = 1;
            u->restore_requested = 0;
            sg_link_close(u->link, SG_ECONFLICT, u->last_error);
            return;
        }
        if (sg_restore_begin(u->st, records != 0, &err) < 0) {
            set_error(u, "restore failed: %s", err.msg);
            u->error_noted = 1;
            sg_link_close(u->link, err.code, u->last_error);
            return;
        }
        memset(&r, 0, sizeof(r));
        r.type = SG_MSG_RESTORE;
        r.seq = (uint64_t)local;
        u->restore_rows = 0;
        u->restore_hlc = 0;
        up_move(u, U_RESTORING);
        sg_link_keepalive(u->link, (uint64_t)u->cfg->keepalive_ms);
        sg_log(SG_LOG_INFO, "restore_begin", "hub=%s cursor=%llu local_seq=%lld wipe=%d",
               u->cfg->hub_address, (unsigned long long)m->seq, (long long)local, records != 0);
        sg_link_send(u->link, &r);
        return;
    }
    if (u->restore_requested && m->seq <= (uint64_t)local) {
        u->restore_requested = 0;
        snprintf(u->restore_done, sizeof(u->restore_done),
                 "nothing to restore: this database has every change the hub has (its log ends at "
                 "%lld, the hub's cursor is %llu)",
                 (long long)local, (unsigned long long)m->seq);
    }
    if (m->seq > (uint64_t)local) {
        /* The hub has changes this database lacks: streaming over them would fork history. */
        snprintf(text, sizeof(text),
                 "the hub has applied this region up to change %llu, but this database's log "
                 "ends at %lld: it is older than the hub's copy (a new or restored machine?); not "
                 "replicating until an operator runs: sangam restore --from-hub",
                 (unsigned long long)m->seq, (long long)local);
        sg_log(SG_LOG_ERROR, "uplink_refused",
               "reason=local_log_behind_hub hub_seq=%llu "
               "local_seq=%lld",
               (unsigned long long)m->seq, (long long)local);
        u->refused = 1;
        set_error(u, "%s", text);
        u->error_noted = 1;
        sg_link_fail(u->link, SG_ECONFLICT, text);
        return;
    }
    u->acked = m->seq;
    u->sent = m->seq;
    u->inflight = 0;
    u->head = 0;
    u->snap_pending = 0;
    u->last_status = UINT64_MAX; /* the first STATUS always goes out */
    u->attempts = 0;
    u->refused = 0;
    u->last_error[0] = '\0';
    sg_outbox_acked(u->st, m->seq, &err);
    sg_now_iso(u->connected_since);
    up_move(u, U_STREAMING);
    u->renew_pending = 0;
    maybe_renew(u);
    sg_link_keepalive(u->link, (uint64_t)u->cfg->keepalive_ms);
    sg_log(SG_LOG_INFO, "uplink_connected", "hub=%s hub_id=%.*s cursor=%llu local_seq=%lld",
           u->cfg->hub_address, (int)m->node_len, m->node, (unsigned long long)m->seq,
           (long long)local);
    if ((uint64_t)local > m->seq && (oldest == 0 || (uint64_t)oldest > m->seq + 1)) {
        if (start_snapshot(u) < 0) {
            sg_link_close(u->link, SG_EDB, "cannot start a snapshot");
            return;
        }
    }
    pump(u);
}

/* The hub's answer to RENEW: a certificate for this node's key and region, signed by the CA
 * this node trusts, or the link is refused. Written over [tls] cert; used from the next
 * connection. */
static void on_cert(sg_uplink *u, const sg_msg *m)
{
    X509 *cert = sg_cert_from_pem(m->pem, m->pem_len), *ca = NULL;
    EVP_PKEY *key = NULL;
    sg_tls_ctx *tls = NULL;
    sg_err err = {0};
    char q[SG_ERR_MSG_MAX];
    FILE *f = fopen(u->cfg->tls_ca, "r");

    u->renew_pending = 0;
    ca = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (cert == NULL || ca == NULL)
        sg_err_set(&err, SG_EAUTH, "the renewed certificate or [tls] ca cannot be read");
    else if (sg_key_load(&key, u->cfg->tls_key, &err) == 0 &&
             sg_cert_check_region(cert, key, u->cfg->id, ca, &err) == 0 &&
             sg_pem_write_cert(u->cfg->tls_cert, cert, &err) == 0 &&
             sg_tls_ctx_new(&tls, 0, u->cfg->tls_ca, u->cfg->tls_cert, u->cfg->tls_key, &err) ==
                 0) {
        sg_tls_ctx_free(u->tls); /* the live engine keeps its own reference */
        u->tls = tls;
        sg_cert_file_not_after(&u->cert_not_after, u->cfg->tls_cert, &err);
        sg_log(SG_LOG_INFO, "certificate_renewed", "cert=%s not_after=%lld", u->cfg->tls_cert,
               (long long)u->cert_not_after);
    }
    if (err.code != 0)
        sg_log(SG_LOG_ERROR, "certificate_renewal_failed", "reason=%s",
               sg_logq(q, sizeof(q), err.msg));
    EVP_PKEY_free(key);
    X509_free(ca);
    X509_free(cert);
}

/* Sends RENEW when the certificate has less than [tls] renew_before left. */
static void maybe_renew(sg_uplink *u)
{
    EVP_PKEY *key = NULL;
    sg_err err = {0};
    char *csr;
    sg_msg m;
    int64_t now = (int64_t)(sg_now_ms() / 1000);

    if (u->renew_pending || u->link == NULL || u->cert_not_after == 0 ||
        u->cert_not_after - now > u->cfg->renew_before_ms / 1000)
        return;
    if (sg_key_load(&key, u->cfg->tls_key, &err) < 0 ||
        (csr = sg_csr_pem(key, u->cfg->id)) == NULL) {
        EVP_PKEY_free(key);
        sg_log(SG_LOG_ERROR, "certificate_renewal_failed", "reason=cannot_make_a_csr");
        return;
    }
    memset(&m, 0, sizeof(m));
    m.type = SG_MSG_RENEW;
    m.pem = csr;
    m.pem_len = (uint32_t)strlen(csr);
    if (sg_link_send(u->link, &m) == 0) {
        u->renew_pending = 1;
        sg_log(SG_LOG_INFO, "certificate_renewing", "expires_in_s=%lld",
               (long long)(u->cert_not_after - now));
    }
    free(csr);
    EVP_PKEY_free(key);
}

/* RESTORING: the hub's rows (BATCH) and its RESTORE_END. */
static void on_restore_msg(sg_uplink *u, const sg_msg *m)
{
    sg_batch *b = NULL;
    sg_err err = {0};
    char q[SG_ERR_MSG_MAX];

    if (m->type == SG_MSG_BATCH) {
        if (sg_batch_decode(&b, m->batch, m->batch_len, NULL, &err) == 0) {
            for (uint32_t i = 0; i < b->nchanges; i++)
                if ((b->changes[i].hlc & INT64_MAX) > u->restore_hlc)
                    u->restore_hlc = b->changes[i].hlc & INT64_MAX;
            sg_restore_apply(&u->restore_rows, u->st, u->cfg->id, b, &err);
        }
        sg_batch_free(b);
        if (err.code != 0) {
            sg_log(SG_LOG_ERROR, "restore_failed", "reason=%s", sg_logq(q, sizeof(q), err.msg));
            sg_link_fail(u->link, err.code, err.msg);
        }
        return;
    }
    if (m->count != u->restore_rows) {
        snprintf(q, sizeof(q), "RESTORE_END counts %llu rows but %llu arrived",
                 (unsigned long long)m->count, (unsigned long long)u->restore_rows);
        sg_link_fail(u->link, SG_EGAP, q);
        return;
    }
    if (sg_restore_end(u->st, m->seq, u->restore_hlc, &err) < 0) {
        sg_log(SG_LOG_ERROR, "restore_failed", "reason=%s", sg_logq(q, sizeof(q), err.msg));
        set_error(u, "restore failed: %s", err.msg);
        u->error_noted = 1;
        sg_link_close(u->link, err.code, u->last_error);
        return;
    }
    u->restore_requested = 0;
    u->restore_force = 0;
    {
        char now[32];
        sg_now_iso(now);
        snprintf(u->restore_done, sizeof(u->restore_done),
                 "restored %llu rows from the hub at %s; the log goes on from change %llu",
                 (unsigned long long)u->restore_rows, now, (unsigned long long)m->seq + 1);
    }
    sg_log(SG_LOG_INFO, "restore_done", "rows=%llu cursor=%llu",
           (unsigned long long)u->restore_rows, (unsigned long long)m->seq);
    u->acked = u->sent = m->seq;
    u->inflight = 0;
    u->head = 0;
    u->last_status = UINT64_MAX;
    up_move(u, U_STREAMING);
    pump(u);
}

static void on_msg(sg_link *l, const sg_msg *m, void *arg)
{
    sg_uplink *u = arg;
    char text[SG_ERR_MSG_MAX];
    sg_err err = {0};

    if (m->type == SG_MSG_ERROR) {
        static const char *const transient[] = {"seq_gap",   "closed",        "database_error",
                                                "disk_full", "out_of_memory", "busy",
                                                "io_error",  "protocol_error"};
        snprintf(text, sizeof(text), "hub refused: %.*s: %.*s", (int)m->code_len, m->code,
                 (int)m->text_len, m->text);
        set_error(u, "%s", text);
        u->error_noted = 1;
        /* Refusals a retry cannot fix until a person acts back off to the maximum. */
        u->refused = 1;
        for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
            if (m->code_len == strlen(transient[i]) &&
                memcmp(m->code, transient[i], m->code_len) == 0)
                u->refused = 0;
        sg_log(SG_LOG_WARN, "hub_error", "code=%.*s", (int)m->code_len, m->code);
        sg_link_close(l, sg_error_from_name(m->code, m->code_len), text);
        return;
    }
    if (m->type == SG_MSG_BYE) {
        sg_link_close(l, 0, "hub said BYE");
        return;
    }
    if (u->state == U_HELLO_SENT && m->type == SG_MSG_WELCOME) {
        on_welcome(u, m);
        return;
    }
    if (u->state == U_RESTORING && (m->type == SG_MSG_BATCH || m->type == SG_MSG_RESTORE_END)) {
        on_restore_msg(u, m);
        return;
    }
    if ((u->state == U_STREAMING || u->state == U_SNAPSHOT) && m->type == SG_MSG_CERT &&
        u->renew_pending) {
        on_cert(u, m);
        return;
    }
    if ((u->state == U_STREAMING || u->state == U_SNAPSHOT) && m->type == SG_MSG_ACK) {
        uint64_t want = u->expect[u->head];
        int snapshot = u->snap_pending > 0;
        if (u->inflight == 0 || m->seq != want) {
            snprintf(text, sizeof(text), "ACK %llu does not answer the oldest frame in flight",
                     (unsigned long long)m->seq);
            sg_link_fail(l, SG_EPROTO, text);
            return;
        }
        u->head = (u->head + 1) % 64;
        u->inflight--;
        if (snapshot)
            u->snap_pending--;
        /* A snapshot batch's ACK names a row count; only its END's ACK (S) is a seq. */
        if ((!snapshot || u->snap_pending == 0) && m->seq > u->acked) {
            u->acked = m->seq;
            sg_outbox_acked(u->st, m->seq, &err);
        }
        pump(u);
        return;
    }
    snprintf(text, sizeof(text), "%s not expected in state %s", sg_msg_name(m->type),
             state_names[u->state]);
    sg_link_fail(l, SG_EPROTO, text);
}

static void on_open(sg_link *l, void *arg)
{
    sg_uplink *u = arg;
    sg_msg m;

    memset(&m, 0, sizeof(m));
    m.type = SG_MSG_HELLO;
    m.version = SG_PROTO_VERSION;
    m.node = sg_store_node_id(u->st);
    m.node_len = (uint32_t)strlen(m.node);
    m.schema = SG_SCHEMA_VERSION;
    up_move(u, U_HELLO_SENT);
    sg_link_send(l, &m);
}

static void on_drain(sg_link *l, void *arg)
{
    (void)l;
    pump(arg);
}

static void on_close(sg_link *l, int code, const char *why, void *arg)
{
    sg_uplink *u = arg;
    char q[SG_ERR_MSG_MAX];

    (void)l;
    u->link = NULL;
    if (u->state == U_RESTORING) {
        sg_restore_abort(u->st); /* nothing of it stays; the next connection starts over */
        sg_log(SG_LOG_WARN, "restore_interrupted", "rows_so_far=%llu",
               (unsigned long long)u->restore_rows);
    }
    if (u->snap_open) {
        sg_store_read_end(u->rd);
        u->snap_open = 0;
    }
    if (u->state == U_STOPPING) {
        maybe_done(u);
        return;
    }
    /* An ERROR from the hub (or our own conflict refusal) already set last_error; any other
     * failure, including a certificate refused in the TLS handshake (SG_EAUTH too), is
     * described by why. */
    if (code != 0 && !u->error_noted)
        set_error(u, "%s", why);
    u->error_noted = 0;
    if (u->connected_since[0] != '\0' || code != 0)
        sg_log(code ? SG_LOG_WARN : SG_LOG_INFO, "uplink_closed", "hub=%s code=%s reason=%s",
               u->cfg->hub_address, code ? sg_strerror_name(code) : "ok",
               sg_logq(q, sizeof(q), u->last_error[0] ? u->last_error : why));
    u->connected_since[0] = '\0';
    schedule_retry(u);
}

static const sg_link_cbs uplink_cbs = {on_open, on_msg, on_drain, on_close};

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    sg_uplink *u = req->data;
    sg_err err = {0};

    u->gai_pending = 0;
    if (u->state == U_STOPPING) {
        if (res)
            uv_freeaddrinfo(res);
        maybe_done(u);
        return;
    }
    if (status < 0 || res == NULL) {
        set_error(u, "cannot resolve the hub's address: %s", uv_strerror(status));
        sg_log(SG_LOG_WARN, "uplink_resolve_failed", "hub=%s error=%s", u->cfg->hub_address,
               uv_err_name(status));
        schedule_retry(u);
        return;
    }
    up_move(u, U_CONNECTING);
    if (sg_link_connect(&u->link, u->loop, u->tls, res->ai_addr, &uplink_cbs, u, &err) < 0) {
        u->link = NULL;
        set_error(u, "%s", err.msg);
        schedule_retry(u);
    } else {
        sg_link_deadline(u->link, 2 * (uint64_t)u->cfg->keepalive_ms);
    }
    uv_freeaddrinfo(res);
}

static void attempt(sg_uplink *u)
{
    char host[128], port[8];
    int p, rc;
    struct addrinfo hints;

    if (u->state != U_BACKOFF)
        return;
    if (sg_config_split_addr(u->cfg->hub_address, host, sizeof(host), &p) < 0)
        return;
    snprintf(port, sizeof(port), "%d", p);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    up_move(u, U_RESOLVING);
    u->gai.data = u;
    rc = uv_getaddrinfo(u->loop, &u->gai, on_resolved, host, port, &hints);
    if (rc < 0) {
        set_error(u, "cannot resolve the hub's address: %s", uv_strerror(rc));
        schedule_retry(u);
        return;
    }
    u->gai_pending = 1;
}

static void on_poll(uv_timer_t *t)
{
    sg_uplink *u = t->data;
    uint64_t now = uv_now(u->loop);

    uint64_t every = (uint64_t)u->cfg->retention_ms < SG_UPLINK_PRUNE_MS
                         ? (uint64_t)u->cfg->retention_ms
                         : SG_UPLINK_PRUNE_MS;

    sg_uplink_notify(u);
    /* Pruning scans only acknowledged entries (a rowid range), so once a minute is cheap; a
     * short retention prunes at every poll. */
    if (u->state != U_RESTORING && (now - u->last_prune >= every || u->last_prune == 0)) {
        int64_t n = 0;
        sg_err err = {0};
        u->last_prune = now;
        if (sg_outbox_prune(&n, u->st, u->cfg->retention_ms, &err) == 0 && n > 0)
            sg_log(SG_LOG_INFO, "log_pruned", "entries=%lld retention_ms=%lld", (long long)n,
                   (long long)u->cfg->retention_ms);
    }
}

int sg_uplink_start(sg_uplink **out, uv_loop_t *loop, sg_store *st, const sg_config *cfg,
                    sg_err *err)
{
    sg_uplink *u;
    char wal[PATH_MAX + 8];
    int rc;

    *out = NULL;
    u = calloc(1, sizeof(*u));
    if (u == NULL)
        return sg_err_set(err, SG_ENOMEM, "out of memory");
    u->loop = loop;
    u->st = st;
    u->cfg = cfg;
    u->rand_state = (unsigned)(uv_hrtime() ^ (uint64_t)getpid());
    rc = sg_tls_ctx_new(&u->tls, 0, cfg->tls_ca, cfg->tls_cert, cfg->tls_key, err);
    if (rc < 0)
        goto free_u;
    if (sg_cert_file_not_after(&u->cert_not_after, cfg->tls_cert, err) < 0)
        u->cert_not_after = 0; /* tls.c read it; renewal just stays off */
    rc = sg_store_open_reader(&u->rd, cfg->db, err);
    if (rc < 0)
        goto free_tls;
    rc = sg_batch_enc_new(&u->enc, cfg->id);
    if (rc < 0) {
        sg_err_set(err, rc, "out of memory");
        goto close_rd;
    }
    uv_timer_init(loop, &u->retry);
    uv_timer_init(loop, &u->kick);
    uv_timer_init(loop, &u->poll);
    uv_fs_event_init(loop, &u->watch);
    u->retry.data = u->kick.data = u->poll.data = u->watch.data = u;
    u->handles = 4;
    snprintf(wal, sizeof(wal), "%s-wal", cfg->db);
    u->watching = uv_fs_event_start(&u->watch, on_watch, wal, 0) == 0;
    if (!u->watching)
        sg_log(SG_LOG_WARN, "uplink_watch_failed", "path=%s fallback_poll_ms=%d", wal,
               SG_UPLINK_POLL_MS);
    uv_timer_start(&u->poll, on_poll, 1000, SG_UPLINK_POLL_MS);
    u->state = U_BACKOFF;
    attempt(u);
    *out = u;
    return 0;

close_rd:
    sg_store_close(u->rd);
free_tls:
    sg_tls_ctx_free(u->tls);
free_u:
    free(u);
    return rc;
}

void sg_uplink_stop(sg_uplink *u, void (*done)(void *), void *arg)
{
    u->done = done;
    u->done_arg = arg;
    up_move(u, U_STOPPING);
    if (u->link != NULL) {
        sg_msg bye;
        memset(&bye, 0, sizeof(bye));
        bye.type = SG_MSG_BYE;
        bye.text = "region shutting down";
        bye.text_len = (uint32_t)strlen(bye.text);
        sg_link_send(u->link, &bye);
        sg_link_close(u->link, 0, "shutting down");
    }
    if (u->gai_pending)
        uv_cancel((uv_req_t *)&u->gai);
    uv_close((uv_handle_t *)&u->retry, on_handle_closed);
    uv_close((uv_handle_t *)&u->kick, on_handle_closed);
    uv_close((uv_handle_t *)&u->poll, on_handle_closed);
    uv_close((uv_handle_t *)&u->watch, on_handle_closed);
}

json_t *sg_uplink_status(sg_uplink *u)
{
    int64_t local = sg_store_seq(u->st);
    int64_t acked = sg_outbox_acked_seq(u->st);
    uint64_t now = uv_now(u->loop);
    json_t *j = json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:s?, s:s?}", "hub", u->cfg->hub_address,
                          "state", state_names[u->state], "connected",
                          u->state == U_STREAMING || u->state == U_SNAPSHOT, "local_seq",
                          (json_int_t)local, "acked_seq", (json_int_t)acked, "pending",
                          (json_int_t)(local > acked ? local - acked : 0), "last_error",
                          u->last_error[0] ? u->last_error : NULL, "connected_since",
                          u->connected_since[0] ? u->connected_since : NULL);
    if (j != NULL && (u->restore_requested || u->state == U_RESTORING))
        json_object_set_new(j, "restore",
                            json_pack("{s:s, s:I}", "state",
                                      u->state == U_RESTORING ? "running" : "requested", "rows",
                                      (json_int_t)u->restore_rows));
    if (j != NULL && u->restore_done[0] != '\0')
        json_object_set_new(j, "last_restore", json_string(u->restore_done));
    if (j != NULL && u->cert_not_after > 0) {
        char at[32];
        time_t t = (time_t)u->cert_not_after;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
        json_object_set_new(j, "cert_not_after", json_string(at));
    }
    if (j != NULL && u->state == U_BACKOFF)
        json_object_set_new(
            j, "next_attempt_in_ms",
            json_integer((json_int_t)(u->next_attempt > now ? u->next_attempt - now : 0)));
    return j;
}

int sg_uplink_restore(sg_uplink *u, int force, sg_err *err)
{
    int64_t records = sg_store_records(u->st);
    if (u->state == U_RESTORING)
        return sg_err_set(err, SG_EBUSY, "a restore from the hub is already running");
    if (records < 0)
        return sg_err_set(err, SG_EDB, "cannot count this database's records");
    if (records > 0 && !force)
        return sg_err_set(err, SG_ECONFLICT,
                          "this database holds %lld records; restoring from the hub replaces them "
                          "with the hub's copy (use --force if that is what you want)",
                          (long long)records);
    if (u->state == U_STREAMING || u->state == U_SNAPSHOT)
        return sg_err_set(err, SG_EINVAL,
                          "nothing to restore: connected, and this database has every change "
                          "the hub has");
    u->restore_requested = 1;
    u->restore_force = force;
    u->restore_done[0] = '\0';
    if (u->state == U_BACKOFF) {
        /* Now, not at the end of a backoff that a refusal made long. */
        uv_timer_stop(&u->retry);
        attempt(u);
    }
    sg_log(SG_LOG_INFO, "restore_requested", "force=%d records=%lld", force, (long long)records);
    return 0;
}
