/*
 * hub.c - the hub's replication sessions; see hub.h and PROTOCOL.md 7.4.
 *
 * A session's states: AWAIT_HELLO -> STREAMING <-> SNAPSHOT, and nothing else is accepted in
 * each; the transition table is `allowed` below and every move goes through sess_move(). A batch
 * is acknowledged only after apply.c committed it together with the cursor, so an ACK the region
 * receives is a promise the hub keeps across a crash.
 */
#include "hub.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <sqlite3.h>

#include "apply.h"
#include "ca.h"
#include "enroll.h"
#include "link.h"
#include "log.h"
#include "sangam/batch.h"
#include "sangam/frame.h"
#include "tls.h"

enum sess_state { S_AWAIT_HELLO, S_AWAIT_JOIN, S_STREAMING, S_SNAPSHOT, S_RESTORE, S_CLOSED };

typedef struct sess sess;

struct sg_hub {
    uv_loop_t *loop;      /* borrowed */
    sg_store *st;         /* borrowed */
    sg_tls_ctx *tls;      /* owned */
    sg_ca *ca;            /* owned: the CA, when [tls] ca_key is set (enrollment), else NULL */
    uv_tcp_t listener;    /* closed by sg_hub_stop */
    const sg_config *cfg; /* borrowed */
    sess *sessions;       /* live sessions */
    int nlinks;           /* links open (sessions) */
    int stopping;
    int listener_open;
    void (*done)(void *);
    void *done_arg;
};

struct sess {
    sg_hub *hub;
    sg_link *link;
    enum sess_state state;
    char region[SG_REGION_MAX + 1];  /* set by a valid HELLO */
    uint64_t snapshot_seq;           /* SNAPSHOT: the seq it reflects */
    uint64_t snapshot_rows;          /* SNAPSHOT: synthetic seqs received so far (1..N) */
    uint64_t region_seq, region_hlc; /* the region's head, from its STATUS */
    uint64_t batches;                /* batches applied in this session */
    uint64_t changes;                /* changes applied in this session (bytes per change) */
    sg_store *rd;                    /* RESTORE: a reader holding one read transaction */
    sg_batch_enc *renc;              /* RESTORE: the batches of rows sent to the region */
    sg_snapshot_pos rpos;            /* RESTORE: how far the rows have been read */
    uint64_t rcursor;                /* RESTORE: the cursor the rows reflect */
    sess *next, *prev;
};

/* Which messages each state accepts (PROTOCOL.md 7.4). */
static int allowed(enum sess_state s, int type)
{
    switch (s) {
    case S_AWAIT_HELLO:
        return type == SG_MSG_HELLO || type == SG_MSG_BYE || type == SG_MSG_ERROR;
    case S_AWAIT_JOIN: /* an enrollment connection: one JOIN, nothing else */
        return type == SG_MSG_JOIN || type == SG_MSG_BYE || type == SG_MSG_ERROR;
    case S_STREAMING:
        return type == SG_MSG_BATCH || type == SG_MSG_SNAPSHOT_BEGIN || type == SG_MSG_STATUS ||
               type == SG_MSG_RENEW || type == SG_MSG_RESTORE || type == SG_MSG_BYE ||
               type == SG_MSG_ERROR;
    case S_SNAPSHOT:
        return type == SG_MSG_BATCH || type == SG_MSG_SNAPSHOT_END || type == SG_MSG_STATUS ||
               type == SG_MSG_RENEW || type == SG_MSG_BYE || type == SG_MSG_ERROR;
    case S_RESTORE: /* the hub sends; the region waits */
        return type == SG_MSG_BYE || type == SG_MSG_ERROR;
    default:
        return 0;
    }
}

static void sess_move(sess *s, enum sess_state to)
{
    /* The only moves: an enrollment connection opened, HELLO accepted, snapshot begun,
     * snapshot ended, closed. */
    assert((s->state == S_AWAIT_HELLO && to == S_AWAIT_JOIN) ||
           (s->state == S_AWAIT_HELLO && to == S_STREAMING) ||
           (s->state == S_STREAMING && to == S_SNAPSHOT) ||
           (s->state == S_SNAPSHOT && to == S_STREAMING) ||
           (s->state == S_STREAMING && to == S_RESTORE) ||
           (s->state == S_RESTORE && to == S_STREAMING) || to == S_CLOSED);
    s->state = to;
}

static void maybe_done(sg_hub *hub)
{
    if (hub->stopping && !hub->listener_open && hub->nlinks == 0) {
        sg_tls_ctx_free(hub->tls);
        sg_ca_free(hub->ca);
        if (hub->done)
            hub->done(hub->done_arg);
        free(hub);
    }
}

static int send_msg(sess *s, sg_msg *m)
{
    return sg_link_send(s->link, m);
}

static void on_hello(sess *s, const sg_msg *m)
{
    sg_hub *hub = s->hub;
    const char *peer = sg_link_peer(s->link);
    sg_err err = {0};
    uint64_t cursor = 0;
    char text[256], at[32];
    sg_msg w;

    if (m->node_len != strlen(peer) || memcmp(m->node, peer, m->node_len) != 0) {
        snprintf(text, sizeof(text), "HELLO names region '%.*s' but the certificate is region '%s'",
                 (int)(m->node_len > 63 ? 63 : m->node_len), m->node, peer);
        sg_log(SG_LOG_WARN, "hello_refused", "region=%s reason=not_authorized", peer);
        sg_link_fail(s->link, SG_EAUTH, text);
        return;
    }
    if (m->schema != SG_SCHEMA_VERSION && m->schema + 1 != SG_SCHEMA_VERSION) {
        snprintf(text, sizeof(text),
                 "schema version %u: this hub (schema %d) accepts regions at %d or %d", m->schema,
                 SG_SCHEMA_VERSION, SG_SCHEMA_VERSION - 1, SG_SCHEMA_VERSION);
        sg_link_fail(s->link, SG_EUNSUPPORTED, text);
        return;
    }
    if (sg_enroll_revoked(hub->st, peer, at) != 0) {
        snprintf(text, sizeof(text), "region %s was revoked at %s", peer, at);
        sg_log(SG_LOG_WARN, "hello_refused", "region=%s reason=revoked", peer);
        sg_link_fail(s->link, SG_EAUTH, text);
        return;
    }
    /* One stream per region: a newer connection replaces an older one. */
    for (sess *o = hub->sessions; o != NULL; o = o->next) {
        if (o != s && o->state != S_AWAIT_HELLO && o->state != S_CLOSED &&
            strcmp(o->region, peer) == 0) {
            sg_log(SG_LOG_WARN, "session_replaced", "region=%s old=%s new=%s", peer,
                   sg_link_addr(o->link), sg_link_addr(s->link));
            sess_move(o, S_CLOSED);
            sg_link_fail(o->link, SG_ECLOSED, "replaced by a newer connection of this region");
        }
    }
    if (sg_apply_note_contact(hub->st, peer, NULL, &err) < 0 ||
        sg_apply_cursor(&cursor, hub->st, peer, &err) < 0) {
        sg_log(SG_LOG_ERROR, "hello_failed", "region=%s code=%s", peer, sg_strerror_name(err.code));
        sg_link_fail(s->link, err.code, err.msg);
        return;
    }
    snprintf(s->region, sizeof(s->region), "%s", peer);
    memset(&w, 0, sizeof(w));
    w.type = SG_MSG_WELCOME;
    w.version = SG_PROTO_VERSION;
    w.node = sg_store_node_id(hub->st);
    w.node_len = (uint32_t)strlen(w.node);
    w.schema = SG_SCHEMA_VERSION;
    w.seq = cursor;
    sess_move(s, S_STREAMING);
    if (send_msg(s, &w) < 0)
        return;
    sg_link_keepalive(s->link, (uint64_t)hub->cfg->keepalive_ms);
    sg_log(SG_LOG_INFO, "region_connected", "region=%s addr=%s cursor=%llu", peer,
           sg_link_addr(s->link), (unsigned long long)cursor);
}

/* Sends CERT(cert, the CA) on s. */
static int send_cert(sess *s, const char *cert_pem)
{
    char *ca_pem = sg_cert_to_pem(sg_ca_cert(s->hub->ca));
    sg_msg m;
    int rc;
    if (ca_pem == NULL)
        return SG_ENOMEM;
    memset(&m, 0, sizeof(m));
    m.type = SG_MSG_CERT;
    m.pem = cert_pem;
    m.pem_len = (uint32_t)strlen(cert_pem);
    m.pem2 = ca_pem;
    m.pem2_len = (uint32_t)strlen(ca_pem);
    rc = send_msg(s, &m);
    free(ca_pem);
    return rc;
}

/* JOIN on an enrollment connection: spend the invite, sign the CSR, answer CERT and BYE. */
static void on_join(sess *s, const sg_msg *m)
{
    sg_hub *hub = s->hub;
    char region[SG_REGION_MAX + 1], q[SG_ERR_MSG_MAX];
    char *cert = NULL;
    sg_err err = {0};
    sg_msg bye;

    snprintf(region, sizeof(region), "%.*s", (int)m->node_len, m->node);
    if (hub->ca == NULL) {
        sg_log(SG_LOG_WARN, "join_refused", "region=%s addr=%s reason=no_ca_key", region,
               sg_link_addr(s->link));
        sg_link_fail(s->link, SG_EUNSUPPORTED,
                     "this hub does not enroll regions (its operator has not set [tls] ca_key)");
        return;
    }
    if (sg_enroll_join(&cert, hub->st, hub->ca, region, m->secret, m->secret_len, m->pem,
                       m->pem_len, hub->cfg->cert_days, &err) < 0) {
        sg_log(SG_LOG_WARN, "join_refused", "region=%s addr=%s code=%s reason=%s", region,
               sg_link_addr(s->link), sg_strerror_name(err.code), sg_logq(q, sizeof(q), err.msg));
        sg_link_fail(s->link, err.code, err.msg);
        return;
    }
    sg_log(SG_LOG_INFO, "region_joined", "region=%s addr=%s days=%d", region, sg_link_addr(s->link),
           hub->cfg->cert_days);
    if (send_cert(s, cert) == 0) {
        memset(&bye, 0, sizeof(bye));
        bye.type = SG_MSG_BYE;
        bye.text = "welcome to the coalition";
        bye.text_len = (uint32_t)strlen(bye.text);
        send_msg(s, &bye);
    }
    free(cert);
    sess_move(s, S_CLOSED);
    sg_link_close(s->link, 0, "joined");
}

/* RENEW on a live session: a fresh certificate for the same region, the stream going on. */
static void on_renew(sess *s, const sg_msg *m)
{
    sg_hub *hub = s->hub;
    char *cert = NULL, q[SG_ERR_MSG_MAX];
    sg_err err = {0};

    if (hub->ca == NULL) {
        sg_link_fail(s->link, SG_EUNSUPPORTED,
                     "this hub does not renew certificates (no [tls] ca_key)");
        return;
    }
    if (sg_enroll_renew(&cert, hub->st, hub->ca, s->region, m->pem, m->pem_len, hub->cfg->cert_days,
                        &err) < 0) {
        sg_log(SG_LOG_WARN, "renew_refused", "region=%s code=%s reason=%s", s->region,
               sg_strerror_name(err.code), sg_logq(q, sizeof(q), err.msg));
        sg_link_fail(s->link, err.code, err.msg);
        return;
    }
    sg_log(SG_LOG_INFO, "certificate_renewed", "region=%s days=%d", s->region, hub->cfg->cert_days);
    send_cert(s, cert);
    free(cert);
}

/* Ends a restore's read side (its reader and encoder). */
static void restore_close(sess *s)
{
    if (s->rd != NULL) {
        sg_store_read_end(s->rd);
        sg_store_close(s->rd);
        s->rd = NULL;
    }
    sg_batch_enc_free(s->renc);
    s->renc = NULL;
}

/* Sends the region's rows while the link takes them, then RESTORE_END. */
static void restore_pump(sess *s)
{
    sg_err err = {0};
    while (s->state == S_RESTORE && !sg_link_busy(s->link)) {
        const void *buf;
        size_t len;
        int done = 0, rc;
        sg_msg m;

        sg_batch_enc_reset(s->renc);
        rc = sg_outbox_snapshot_read(&done, s->rd, s->region, &s->rpos, 1000, 512 * 1024, s->renc,
                                     &err);
        if (rc == 0 && sg_batch_enc_count(s->renc) > 0 &&
            (rc = sg_batch_enc_finish(s->renc, &buf, &len)) == 0) {
            memset(&m, 0, sizeof(m));
            m.type = SG_MSG_BATCH;
            m.batch = buf;
            m.batch_len = len;
            rc = send_msg(s, &m);
        }
        if (rc < 0) {
            restore_close(s);
            sg_link_fail(s->link, rc, err.msg[0] ? err.msg : "cannot read the region's rows");
            return;
        }
        if (done) {
            memset(&m, 0, sizeof(m));
            m.type = SG_MSG_RESTORE_END;
            m.seq = s->rcursor;
            m.count = s->rpos.synth;
            restore_close(s);
            sess_move(s, S_STREAMING);
            sg_log(SG_LOG_INFO, "restore_sent", "region=%s rows=%llu cursor=%llu", s->region,
                   (unsigned long long)m.count, (unsigned long long)m.seq);
            send_msg(s, &m);
            return;
        }
    }
}

/* RESTORE: the region lost changes the hub has (its head is below the cursor); send it its own
 * rows as they stand at the cursor, read in one read transaction. */
static void on_restore(sess *s, const sg_msg *m)
{
    sg_hub *hub = s->hub;
    sg_err err = {0};
    uint64_t cursor = 0;
    char text[200];

    if (sg_apply_cursor(&cursor, hub->st, s->region, &err) < 0) {
        sg_link_fail(s->link, err.code, err.msg);
        return;
    }
    if (m->seq >= cursor) {
        snprintf(text, sizeof(text),
                 "nothing to restore: the region's head %llu is not below the hub's cursor %llu",
                 (unsigned long long)m->seq, (unsigned long long)cursor);
        sg_link_fail(s->link, SG_EPROTO, text);
        return;
    }
    if (sg_store_open_reader(&s->rd, hub->cfg->db, &err) < 0 ||
        sg_store_read_begin(s->rd, &err) < 0 ||
        sg_apply_cursor(&s->rcursor, s->rd, s->region, &err) < 0 ||
        sg_batch_enc_new(&s->renc, s->region) < 0) {
        restore_close(s);
        sg_link_fail(s->link, err.code ? err.code : SG_ENOMEM,
                     err.msg[0] ? err.msg : "out of memory");
        return;
    }
    memset(&s->rpos, 0, sizeof(s->rpos));
    sess_move(s, S_RESTORE);
    sg_log(SG_LOG_INFO, "restore_begin", "region=%s region_head=%llu cursor=%llu", s->region,
           (unsigned long long)m->seq, (unsigned long long)s->rcursor);
    restore_pump(s);
}

static void on_drain(sg_link *l, void *arg)
{
    sess *s = arg;
    (void)l;
    if (s->state == S_RESTORE)
        restore_pump(s);
}

static void on_batch(sess *s, const sg_msg *m)
{
    sg_batch *b = NULL;
    sg_err err = {0};
    sg_apply_result res;
    sg_msg ack;
    uint64_t last;
    int rc;

    rc = sg_batch_decode(&b, m->batch, m->batch_len, NULL, &err);
    if (rc < 0) {
        sg_log(SG_LOG_WARN, "batch_refused", "region=%s code=%s", s->region, sg_strerror_name(rc));
        sg_link_fail(s->link, rc, err.msg);
        return;
    }
    if (s->state == S_SNAPSHOT) {
        /* A snapshot's seqs are its own: 1..N across the whole snapshot, with no gaps. */
        for (uint32_t i = 0; i < b->nchanges; i++) {
            if (b->changes[i].seq != s->snapshot_rows + 1) {
                char text[128];
                snprintf(text, sizeof(text), "snapshot: expected row %llu next, got %llu",
                         (unsigned long long)s->snapshot_rows + 1,
                         (unsigned long long)b->changes[i].seq);
                sg_batch_free(b);
                sg_link_fail(s->link, SG_EGAP, text);
                return;
            }
            s->snapshot_rows++;
        }
    }
    rc = sg_apply_batch(&res, s->hub->st, s->region, b, s->state == S_SNAPSHOT, &err);
    /* ACK names the last seq of the BATCH it answers (PROTOCOL.md 7.3.4), even when every
     * change was a replay below the cursor; a snapshot batch's is its last synthetic seq. */
    last = b->nchanges ? b->changes[b->nchanges - 1].seq : res.cursor;
    sg_batch_free(b);
    if (rc < 0) {
        char q[SG_ERR_MSG_MAX];
        sg_log(rc == SG_EDB || rc == SG_EFULL || rc == SG_EIO ? SG_LOG_ERROR : SG_LOG_WARN,
               "batch_refused", "region=%s code=%s reason=%s", s->region, sg_strerror_name(rc),
               sg_logq(q, sizeof(q), err.msg));
        sg_link_fail(s->link, rc, err.msg);
        return;
    }
    s->batches++;
    s->changes += res.applied;
    sg_log(SG_LOG_DEBUG, "batch_applied", "region=%s applied=%u skipped=%u cursor=%llu", s->region,
           res.applied, res.skipped, (unsigned long long)res.cursor);
    memset(&ack, 0, sizeof(ack));
    ack.type = SG_MSG_ACK;
    ack.seq = last;
    send_msg(s, &ack);
}

static void on_msg(sg_link *l, const sg_msg *m, void *arg)
{
    sess *s = arg;
    sg_err err = {0};
    sg_msg ack;
    char text[160];

    (void)l;
    if (s->state == S_CLOSED)
        return;
    if (!allowed(s->state, m->type)) {
        snprintf(text, sizeof(text), "%s is not allowed %s", sg_msg_name(m->type),
                 s->state == S_AWAIT_HELLO  ? "before HELLO"
                 : s->state == S_AWAIT_JOIN ? "on an enrollment connection (only JOIN)"
                                            : "in this state of the session");
        sg_link_fail(s->link, SG_EPROTO, text);
        return;
    }
    switch (m->type) {
    case SG_MSG_HELLO:
        on_hello(s, m);
        break;
    case SG_MSG_JOIN:
        on_join(s, m);
        break;
    case SG_MSG_RENEW:
        on_renew(s, m);
        break;
    case SG_MSG_RESTORE:
        on_restore(s, m);
        break;
    case SG_MSG_BATCH:
        on_batch(s, m);
        break;
    case SG_MSG_STATUS:
        s->region_seq = m->seq;
        s->region_hlc = m->hlc;
        break;
    case SG_MSG_SNAPSHOT_BEGIN: {
        uint64_t cursor = 0;
        if (sg_apply_cursor(&cursor, s->hub->st, s->region, &err) < 0) {
            sg_link_fail(s->link, err.code, err.msg);
            return;
        }
        if (m->seq < cursor) {
            snprintf(text, sizeof(text),
                     "snapshot at seq %llu is older than the %llu changes the hub has applied: "
                     "this region's database needs restoring",
                     (unsigned long long)m->seq, (unsigned long long)cursor);
            sg_link_fail(s->link, SG_ECONFLICT, text);
            return;
        }
        if (sg_apply_snapshot_begin(s->hub->st, s->region, m->seq, &err) < 0) {
            sg_link_fail(s->link, err.code, err.msg);
            return;
        }
        s->snapshot_seq = m->seq;
        s->snapshot_rows = 0;
        sess_move(s, S_SNAPSHOT);
        sg_log(SG_LOG_INFO, "snapshot_begin", "region=%s seq=%llu", s->region,
               (unsigned long long)m->seq);
        break;
    }
    case SG_MSG_SNAPSHOT_END:
        if (m->seq != s->snapshot_seq) {
            sg_link_fail(s->link, SG_EPROTO, "SNAPSHOT_END does not match SNAPSHOT_BEGIN");
            return;
        }
        if (m->count != s->snapshot_rows) {
            snprintf(text, sizeof(text), "SNAPSHOT_END counts %llu rows but %llu arrived",
                     (unsigned long long)m->count, (unsigned long long)s->snapshot_rows);
            sg_link_fail(s->link, SG_EGAP, text);
            return;
        }
        if (sg_apply_snapshot_end(s->hub->st, s->region, m->seq, &err) < 0) {
            sg_link_fail(s->link, err.code, err.msg);
            return;
        }
        sess_move(s, S_STREAMING);
        sg_log(SG_LOG_INFO, "snapshot_end", "region=%s seq=%llu rows=%llu", s->region,
               (unsigned long long)m->seq, (unsigned long long)m->count);
        memset(&ack, 0, sizeof(ack));
        ack.type = SG_MSG_ACK;
        ack.seq = m->seq;
        send_msg(s, &ack);
        break;
    case SG_MSG_ERROR:
        sg_log(SG_LOG_WARN, "peer_error", "region=%s code=%.*s", s->region[0] ? s->region : "-",
               (int)m->code_len, m->code);
        sg_link_close(s->link, SG_ECLOSED, "the region reported an error");
        break;
    case SG_MSG_BYE:
        sg_link_close(s->link, 0, "region said BYE");
        break;
    default:
        break; /* refused by allowed() above; PING and PONG are the link's */
    }
}

static void on_open(sg_link *l, void *arg)
{
    sess *s = arg;
    if (sg_link_is_join(l)) {
        sess_move(s, S_AWAIT_JOIN);
        sg_log(SG_LOG_INFO, "enrollment_open", "addr=%s", sg_link_addr(l));
        return;
    }
    sg_log(SG_LOG_DEBUG, "tls_open", "region=%s addr=%s", sg_link_peer(l), sg_link_addr(l));
}

static void on_close(sg_link *l, int code, const char *why, void *arg)
{
    sess *s = arg;
    sg_hub *hub = s->hub;
    char q[300];

    if (s->region[0] != '\0') {
        sg_log(code ? SG_LOG_WARN : SG_LOG_INFO, "region_disconnected",
               "region=%s addr=%s code=%s reason=%s batches=%llu", s->region, sg_link_addr(l),
               code ? sg_strerror_name(code) : "ok", sg_logq(q, sizeof(q), why),
               (unsigned long long)s->batches);
        /* A session closed on purpose (replaced by a newer one, hub stopping) is not the
         * region's error. */
        if (code != 0 && !hub->stopping && s->state != S_CLOSED)
            sg_apply_note_contact(hub->st, s->region, why, NULL);
    } else if (code != 0) {
        sg_log(SG_LOG_WARN, "connection_refused", "addr=%s peer=%s code=%s reason=%s",
               sg_link_addr(l), sg_link_peer(l)[0] ? sg_link_peer(l) : "-", sg_strerror_name(code),
               sg_logq(q, sizeof(q), why));
    }
    restore_close(s);
    if (s->prev)
        s->prev->next = s->next;
    else
        hub->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s);
    hub->nlinks--;
    maybe_done(hub);
}

static const sg_link_cbs hub_cbs = {on_open, on_msg, on_drain, on_close};

static void on_connection(uv_stream_t *server, int status)
{
    sg_hub *hub = server->data;
    sess *s;
    sg_err err = {0};

    if (status < 0) {
        sg_log(SG_LOG_WARN, "accept_failed", "error=%s", uv_err_name(status));
        return;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return;
    s->hub = hub;
    if (sg_link_accept(&s->link, server, hub->tls, &hub_cbs, s, &err) < 0) {
        sg_log(SG_LOG_WARN, "accept_failed", "code=%s", sg_strerror_name(err.code));
        free(s);
        return;
    }
    sg_link_deadline(s->link, 2 * (uint64_t)hub->cfg->keepalive_ms);
    s->next = hub->sessions;
    if (hub->sessions)
        hub->sessions->prev = s;
    hub->sessions = s;
    hub->nlinks++;
    if (hub->stopping || hub->nlinks > SG_HUB_MAX_LINKS) {
        sg_log(SG_LOG_WARN, "connection_refused", "addr=%s reason=%s", sg_link_addr(s->link),
               hub->stopping ? "stopping" : "too_many_connections");
        sess_move(s, S_CLOSED);
        sg_link_close(s->link, SG_EBUSY, "too many connections");
    }
}

static void on_listener_closed(uv_handle_t *h);

/* Raises the soft open-file limit towards what SG_HUB_MAX_LINKS connections need (plus the API's
 * connections, the databases and the listeners), and warns when the hard limit keeps it lower:
 * past the limit libuv closes new connections unanswered (its EMFILE trick) and nothing else
 * would tell the operator why regions cannot connect. */
static void check_fd_limit(void)
{
    const rlim_t want = SG_HUB_MAX_LINKS + 1024;
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0)
            return;
    }
    if (rl.rlim_cur < want)
        sg_log(SG_LOG_WARN, "fd_limit",
               "limit=%llu wanted=%llu reason=\"the open-file limit is below what %d region "
               "connections need: past it new connections are closed unanswered; raise it "
               "(LimitNOFILE= in the service unit, ulimit -n)\"",
               (unsigned long long)rl.rlim_cur, (unsigned long long)want, SG_HUB_MAX_LINKS);
}

int sg_hub_start(sg_hub **out, uv_loop_t *loop, sg_store *st, const sg_config *cfg, sg_err *err)
{
    sg_hub *hub;
    struct sockaddr_storage ss;
    char host[64];
    int port, rc;

    *out = NULL;
    hub = calloc(1, sizeof(*hub));
    if (hub == NULL)
        return sg_err_set(err, SG_ENOMEM, "out of memory");
    hub->loop = loop;
    hub->st = st;
    hub->cfg = cfg;
    rc = sg_tls_ctx_new(&hub->tls, 1, cfg->tls_ca, cfg->tls_cert, cfg->tls_key, err);
    if (rc < 0)
        goto free_hub;
    if (cfg->tls_ca_key[0] != '\0') {
        rc = sg_ca_load(&hub->ca, cfg->tls_ca, cfg->tls_ca_key, err);
        if (rc < 0) {
            sg_err_wrap(err, "[tls] ca_key");
            goto free_tls;
        }
    }
    if (sg_config_split_addr(cfg->listen_address, host, sizeof(host), &port) < 0 ||
        (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
         uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)) {
        rc = sg_err_set(err, SG_ECONFIG, "[listen] address: '%s' is not an IP address and port",
                        cfg->listen_address);
        goto free_tls;
    }
    uv_tcp_init(loop, &hub->listener);
    hub->listener.data = hub;
    hub->listener_open = 1;
    rc = uv_tcp_bind(&hub->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&hub->listener, 256, on_connection);
    if (rc < 0) {
        sg_err_set(err, SG_EIO, "[listen] address: cannot listen on %s: %s", cfg->listen_address,
                   uv_strerror(rc));
        /* Nothing started: the listener's close callback frees the hub once the caller runs
         * the loop (a handle's memory is freed only in its close callback). */
        hub->stopping = 1;
        uv_close((uv_handle_t *)&hub->listener, on_listener_closed);
        return SG_EIO;
    }
    sg_log(SG_LOG_INFO, "listen", "replication=%s tls=1.3 alpn=sangam/1 enrollment=%s",
           cfg->listen_address, hub->ca ? "on" : "off");
    check_fd_limit();
    *out = hub;
    return 0;

free_tls:
    sg_tls_ctx_free(hub->tls);
    sg_ca_free(hub->ca);
free_hub:
    free(hub);
    return rc;
}

static void on_listener_closed(uv_handle_t *h)
{
    sg_hub *hub = h->data;
    hub->listener_open = 0;
    maybe_done(hub);
}

void sg_hub_stop(sg_hub *hub, void (*done)(void *), void *arg)
{
    hub->stopping = 1;
    hub->done = done;
    hub->done_arg = arg;
    if (!uv_is_closing((uv_handle_t *)&hub->listener))
        uv_close((uv_handle_t *)&hub->listener, on_listener_closed);
    else
        hub->listener_open = 0;
    for (sess *s = hub->sessions; s != NULL; s = s->next) {
        sg_msg bye;
        memset(&bye, 0, sizeof(bye));
        bye.type = SG_MSG_BYE;
        bye.text = "hub shutting down";
        bye.text_len = (uint32_t)strlen(bye.text);
        sg_link_send(s->link, &bye);
        sess_move(s, S_CLOSED);
        sg_link_close(s->link, 0, "hub shutting down");
    }
    maybe_done(hub);
}

json_t *sg_hub_regions(sg_hub *hub, sg_store *st)
{
    json_t *out = json_array();
    sqlite3_stmt *stmt = NULL;
    uint64_t now = sg_now_ms();

    if (out == NULL ||
        sqlite3_prepare_v2(sg_store_db(st),
                           "SELECT r.region, r.last_seq, r.last_hlc, r.applied, r.last_contact, "
                           "r.last_error, (SELECT count(*) FROM sg_quarantine q WHERE q.region = "
                           "r.region AND q.state = 'held'), r.revoked_at, (SELECT max(not_after) "
                           "FROM sg_certs c WHERE c.region = r.region AND c.revoked_at IS NULL) "
                           "FROM sg_regions r ORDER BY r.region",
                           -1, &stmt, NULL) != SQLITE_OK)
        return out;
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        const char *region = (const char *)sqlite3_column_text(stmt, 0);
        uint64_t last = (uint64_t)sqlite3_column_int64(stmt, 1);
        uint64_t last_hlc = (uint64_t)sqlite3_column_int64(stmt, 2);
        sess *live = NULL;
        json_t *r;
        for (sess *s = hub ? hub->sessions : NULL; s != NULL; s = s->next)
            if (s->state != S_CLOSED && s->state != S_AWAIT_HELLO && strcmp(s->region, region) == 0)
                live = s;
        r = json_pack("{s:s, s:b, s:I, s:I, s:s?, s:s?, s:I, s:I}", "region", region, "connected",
                      live != NULL, "last_seq", (json_int_t)last, "applied",
                      (json_int_t)sqlite3_column_int64(stmt, 3), "last_contact",
                      (const char *)sqlite3_column_text(stmt, 4), "last_error",
                      (const char *)sqlite3_column_text(stmt, 5), "quarantined",
                      (json_int_t)sqlite3_column_int64(stmt, 6), "data_age_seconds",
                      (json_int_t)(last_hlc ? (now - (last_hlc >> 16)) / 1000 : 0));
        if (sqlite3_column_type(stmt, 7) != SQLITE_NULL)
            json_object_set_new(r, "revoked_at",
                                json_string((const char *)sqlite3_column_text(stmt, 7)));
        if (sqlite3_column_type(stmt, 8) != SQLITE_NULL)
            json_object_set_new(r, "cert_not_after",
                                json_string((const char *)sqlite3_column_text(stmt, 8)));
        if (live != NULL) {
            uint64_t wire_rx, wire_tx, plain_rx;
            sg_link_bytes(live->link, &wire_rx, &wire_tx, &plain_rx);
            /* What this connection cost on the wire, for the benchmark's bytes per change. */
            json_object_set_new(
                r, "session",
                json_pack("{s:I, s:I, s:I, s:I}", "changes", (json_int_t)live->changes,
                          "wire_bytes_in", (json_int_t)wire_rx, "frame_bytes_in",
                          (json_int_t)plain_rx, "wire_bytes_out", (json_int_t)wire_tx));
        }
        if (live != NULL && live->region_seq > 0) {
            uint64_t lag = live->region_seq > last ? live->region_seq - last : 0;
            uint64_t head_ms = live->region_hlc >> 16, last_ms = last_hlc >> 16;
            json_object_set_new(r, "region_seq", json_integer((json_int_t)live->region_seq));
            json_object_set_new(r, "lag_changes", json_integer((json_int_t)lag));
            json_object_set_new(
                r, "lag_seconds",
                json_real(lag && head_ms > last_ms ? (double)(head_ms - last_ms) / 1000.0 : 0));
        }
        json_array_append_new(out, r);
    }
    sqlite3_finalize(stmt);
    return out;
}

int sg_hub_invite(sg_token *out, char expires_at[32], sg_hub *hub, const char *region,
                  int64_t ttl_ms, const char *addr, sg_err *err)
{
    const sg_config *cfg = hub->cfg;
    int rc;
    if (hub->ca == NULL)
        return sg_err_set(err, SG_ECONFIG,
                          "this hub cannot enroll regions: set [tls] ca_key to the CA's key (made "
                          "by sangamd init)");
    if (addr == NULL || addr[0] == '\0')
        addr = cfg->listen_public[0] ? cfg->listen_public : cfg->listen_address;
    if (strncmp(addr, "0.0.0.0:", 8) == 0 || strncmp(addr, "[::]:", 5) == 0)
        return sg_err_set(err, SG_ECONFIG,
                          "the hub listens on %s, which a new region cannot dial: set [listen] "
                          "public or pass an address",
                          addr);
    rc = sg_invite_create(out, expires_at, hub->st, hub->ca, region, ttl_ms, addr, err);
    if (rc == 0) /* the secret is never logged */
        sg_log(SG_LOG_INFO, "invite_created", "region=%s expires=%s hub=%s", region, expires_at,
               addr);
    return rc;
}

int sg_hub_revoke(int *out_dropped, sg_hub *hub, const char *region, sg_err *err)
{
    int rc = sg_enroll_revoke(hub->st, region, err);
    *out_dropped = 0;
    if (rc < 0)
        return rc;
    for (sess *s = hub->sessions; s != NULL; s = s->next) {
        if (s->state == S_CLOSED || strcmp(sg_link_peer(s->link), region) != 0)
            continue;
        sess_move(s, S_CLOSED);
        sg_link_fail(s->link, SG_EAUTH, "this region was revoked by the hub's operator");
        (*out_dropped)++;
    }
    sg_log(SG_LOG_WARN, "region_revoked", "region=%s dropped=%d", region, *out_dropped);
    return 0;
}

int sg_hub_can_enroll(const sg_hub *hub)
{
    return hub != NULL && hub->ca != NULL;
}
