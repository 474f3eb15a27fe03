/*
 * test_alloc.c - allocation failures (issue 7): a failing allocator that fails the Nth
 * allocation, swept over N = 1, 2, ... until the operation runs to its end without reaching an
 * Nth allocation, across the codec (proto/batch.c, proto/frame.c, msgpack-c), the hub's receive
 * path (frame -> batch -> sg_apply_batch -> ACK, server/apply.c) and a region's write and send
 * paths (sg_store_create/update/delete under capture, sg_outbox_read).
 *
 * Where allocations are intercepted, all through one counter:
 * - our statically linked code (proto/, server/) and msgpack-c, which this test links from its
 *   static archive: the linker's --wrap of malloc, calloc, realloc and strdup
 * (tests/CMakeLists.txt) sends them to the __wrap_ functions below, which call the __real_ ones
 * (under ASan those are ASan's, so LeakSanitizer still sees every block);
 * - SQLite: sqlite3_config(SQLITE_CONFIG_MALLOC) with a wrapper of its default methods, installed
 *   in main() before SQLite initialises;
 * - jansson: sg_store_open installs the store's own jansson allocator (json_alloc in store.c,
 *   which notices a failed allocation during a parse), and its malloc is wrapped as above.
 * Allocations made inside glibc itself (fopen, strdup's own malloc when not wrapped) and by
 * libraries not named above are not counted.
 *
 * What each sweep asserts, for every N: the call returns (no crash, no abort); if the injected
 * failure surfaced, the result is an error code and nothing is half done - the hub has the whole
 * batch (rows, sg_applied, cursor) or none of it and quarantined nothing, a region has each row
 * change with its change-log entry or neither; the same operation then succeeds with the
 * allocator healthy and takes effect exactly once (a batch whose first attempt went through is
 * skipped as a replay). An allocation failure SQLite absorbs (its "benign" mallocs) may let the
 * call succeed; then the success must be complete. Leaks on any error path are LeakSanitizer's to
 * report in the ASan build (tests/run.sh runs it with detect_leaks=1).
 *
 * Bounds: the codec and warm-store sweeps try every N. The cold sweeps (a store freshly opened
 * for every N, so statement preparation fails too) try at most SWEEP_BUDGET points spread evenly
 * over the path's allocations; SANGAM_LONG=1 in the environment makes them try every N. The
 * figures (points, failures surfaced, failures absorbed) are printed per sweep.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "apply.h"
#include "faultutil.h"
#include "sangam/batch.h"
#include "sangam/frame.h"
#include "store.h"

#define SWEEP_BUDGET 300 /* injection points per cold sweep unless SANGAM_LONG=1 */

/* ---- the failing allocator ---- */

/* The one mutable global of this test: the allocator hooks cannot be handed a context. */
static struct {
    int armed;     /* counting (and failing) only while set */
    long count;    /* allocations seen since arming */
    long fail_at;  /* the allocation to fail (1-based); 0 counts only */
    long injected; /* failures handed out since arming */
} fa;

static int fa_fail(void)
{
    if (!fa.armed)
        return 0;
    fa.count++;
    if (fa.count == fa.fail_at) {
        fa.injected++;
        return 1;
    }
    return 0;
}

static void fa_arm(long fail_at)
{
    fa.count = 0;
    fa.fail_at = fail_at;
    fa.injected = 0;
    fa.armed = 1;
}

static void fa_disarm(void)
{
    fa.armed = 0;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);

void *__wrap_malloc(size_t n)
{
    return fa_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return fa_fail() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return fa_fail() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return fa_fail() ? NULL : __real_strdup(s);
}

static sqlite3_mem_methods sqlite_default_mem;

static void *sqlite_fail_malloc(int n)
{
    return fa_fail() ? NULL : sqlite_default_mem.xMalloc(n);
}

static void *sqlite_fail_realloc(void *p, int n)
{
    return fa_fail() ? NULL : sqlite_default_mem.xRealloc(p, n);
}

static void sqlite_fail_free(void *p)
{
    sqlite_default_mem.xFree(p);
}

static int sqlite_fail_size(void *p)
{
    return sqlite_default_mem.xSize(p);
}

static int sqlite_fail_roundup(int n)
{
    return sqlite_default_mem.xRoundup(n);
}

static int sqlite_fail_init(void *arg)
{
    return sqlite_default_mem.xInit(arg);
}

static void sqlite_fail_shutdown(void *arg)
{
    sqlite_default_mem.xShutdown(arg);
}

/* Routes SQLite's allocations through fa_fail. Before SQLite initialises. */
static int install_allocators(void)
{
    static sqlite3_mem_methods m;
    if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sqlite_default_mem) != SQLITE_OK)
        return -1;
    m = sqlite_default_mem;
    m.xMalloc = sqlite_fail_malloc;
    m.xRealloc = sqlite_fail_realloc;
    m.xFree = sqlite_fail_free;
    m.xSize = sqlite_fail_size;
    m.xRoundup = sqlite_fail_roundup;
    m.xInit = sqlite_fail_init;
    m.xShutdown = sqlite_fail_shutdown;
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &m) != SQLITE_OK)
        return -1;
    return 0;
}

/* ---- sweep bookkeeping ---- */

typedef struct sweep {
    const char *name;
    long total;    /* allocations of the path with nothing failing */
    long step;     /* distance between injection points */
    long points;   /* injection points tried */
    long surfaced; /* injected failures the call reported as an error */
    long absorbed; /* injected failures the call survived (it succeeded all the same) */
} sweep;

/* Every N for a cheap path; at most SWEEP_BUDGET evenly spread points for a costly one. */
static void sweep_init(sweep *s, const char *name, long total, int costly)
{
    memset(s, 0, sizeof(*s));
    s->name = name;
    s->total = total;
    s->step = 1;
    if (costly && !long_mode() && total > SWEEP_BUDGET)
        s->step = (total + SWEEP_BUDGET - 1) / SWEEP_BUDGET;
}

/* Books one injection point: rc is the call's result. Returns 1 while the sweep goes on, 0 once
 * the call ran without reaching its Nth allocation (which must then have succeeded). */
static int sweep_note(sweep *s, int rc, const char *msg)
{
    if (fa.injected == 0) {
        if (rc != 0)
            fail_msg("%s: failed with no failure injected (N=%ld): %d %s", s->name, fa.fail_at, rc,
                     msg ? msg : "");
        return 0;
    }
    s->points++;
    if (rc < 0)
        s->surfaced++;
    else
        s->absorbed++;
    return 1;
}

static void sweep_report(const sweep *s)
{
    printf("[ alloc    ] %-28s %6ld allocations, %5ld points (every %ld), %5ld failed cleanly, "
           "%5ld absorbed\n",
           s->name, s->total, s->points, s->step, s->surfaced, s->absorbed);
}

/* ---- database helpers (always called disarmed) ---- */

static void make_dir(char *out, size_t cap, const char *tag)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(out, cap, "%s/sg_alloc_%s_XXXXXX", base, tag);
    assert_non_null(mkdtemp(out));
}

static void remove_dir(const char *dir)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* The integer the query returns, with ?1 bound to arg (NULL binds nothing). */

/* ---- 1. the codec ---- */

static void col_int(sg_col *c, const char *name, int64_t v)
{
    memset(c, 0, sizeof(*c));
    c->name = name;
    c->name_len = (uint32_t)strlen(name);
    c->v.type = SG_VAL_INT;
    c->v.i = v;
}

/* The changes of one region's batch, as its outbox would send them: two organisations, a member
 * of the first, an update of the first, the second deleted. Strings live in *ids. */
typedef struct region_batch {
    char region[32];
    char org_a[32], org_b[32], member[32];
    sg_col org_a_cols[5], org_b_cols[5], member_cols[7], update_cols[2];
    sg_change changes[5];
} region_batch;

#define BATCH_CHANGES 5

static void region_batch_init(region_batch *rb, const char *region, long tag)
{
    static const char *const ts = "2024-03-01T10:00:00.000Z";
    uint64_t hlc = (uint64_t)1709287200000 << 16;
    memset(rb, 0, sizeof(*rb));
    snprintf(rb->region, sizeof(rb->region), "%s", region);
    snprintf(rb->org_a, sizeof(rb->org_a), "ORGA%06ld", tag);
    snprintf(rb->org_b, sizeof(rb->org_b), "ORGB%06ld", tag);
    snprintf(rb->member, sizeof(rb->member), "MEMB%06ld", tag);

    col_str(&rb->org_a_cols[0], "region", rb->region);
    col_str(&rb->org_a_cols[1], "name", "RSETI Banda");
    col_str(&rb->org_a_cols[2], "kind", "training");
    col_str(&rb->org_a_cols[3], "created_at", ts);
    col_str(&rb->org_a_cols[4], "updated_at", ts);
    memcpy(rb->org_b_cols, rb->org_a_cols, sizeof(rb->org_b_cols));
    col_str(&rb->org_b_cols[1], "name", "NABARD Chitrakoot");
    col_str(&rb->org_b_cols[2], "kind", "financial");
    col_str(&rb->member_cols[0], "region", rb->region);
    col_str(&rb->member_cols[1], "name", "Sita Devi");
    col_str(&rb->member_cols[2], "kind", "representative");
    col_str(&rb->member_cols[3], "organisation_id", rb->org_a);
    col_int(&rb->member_cols[4], "birth_year", 1990);
    col_str(&rb->member_cols[5], "created_at", ts);
    col_str(&rb->member_cols[6], "updated_at", ts);
    col_str(&rb->update_cols[0], "district", "Banda");
    col_str(&rb->update_cols[1], "updated_at", "2024-03-01T11:00:00.000Z");

    rb->changes[0] =
        (sg_change){1, hlc, "organisations", 13, rb->org_a, 10, SG_OP_INSERT, rb->org_a_cols, 5};
    rb->changes[1] = (sg_change){2,  hlc + 1,      "organisations", 13, rb->org_b,
                                 10, SG_OP_INSERT, rb->org_b_cols,  5};
    rb->changes[2] =
        (sg_change){3, hlc + 2, "members", 7, rb->member, 10, SG_OP_INSERT, rb->member_cols, 7};
    rb->changes[3] = (sg_change){4,  hlc + 3,      "organisations", 13, rb->org_a,
                                 10, SG_OP_UPDATE, rb->update_cols, 2};
    rb->changes[4] =
        (sg_change){5, hlc + 4, "organisations", 13, rb->org_b, 10, SG_OP_DELETE, NULL, 0};
}

/* Encodes rb's changes as a batch and then as a BATCH frame (*out, caller frees). */
static int encode_batch_frame(void **out, size_t *out_len, const region_batch *rb)
{
    sg_batch_enc *enc = NULL;
    const void *buf;
    size_t len;
    sg_msg m;
    int rc;

    *out = NULL;
    rc = sg_batch_enc_new(&enc, rb->region);
    for (int i = 0; rc == 0 && i < BATCH_CHANGES; i++)
        rc = sg_batch_enc_add(enc, &rb->changes[i]);
    if (rc == 0)
        rc = sg_batch_enc_finish(enc, &buf, &len);
    if (rc == 0) {
        memset(&m, 0, sizeof(m));
        m.type = SG_MSG_BATCH;
        m.batch = buf;
        m.batch_len = len;
        rc = sg_msg_encode(out, out_len, &m);
    }
    sg_batch_enc_free(enc);
    return rc;
}

/* Batch encoding: every failure is SG_ENOMEM with no encoder or frame left behind, and a failed
 * sg_batch_enc_add leaves the encoder as it was: adding the same change again with memory back
 * gives the reference bytes. */
static void test_codec_batch_encode(void **state)
{
    region_batch rb;
    void *ref = NULL, *out = NULL;
    size_t ref_len = 0, out_len = 0;
    sweep s;
    long n;

    (void)state;
    region_batch_init(&rb, "bundelkhand", 1);
    fa_arm(0);
    assert_int_equal(encode_batch_frame(&ref, &ref_len, &rb), 0);
    fa_disarm();
    sweep_init(&s, "batch+frame encode", fa.count, 0);
    for (n = 1;; n++) {
        int rc;
        fa_arm(n);
        rc = encode_batch_frame(&out, &out_len, &rb);
        fa_disarm();
        if (rc < 0) {
            assert_int_equal(rc, SG_ENOMEM);
            assert_null(out);
        } else {
            assert_int_equal(out_len, ref_len);
            assert_memory_equal(out, ref, ref_len);
        }
        free(out);
        out = NULL;
        if (!sweep_note(&s, rc, NULL))
            break;
    }
    assert_true(s.surfaced > 0);
    sweep_report(&s);

    /* A failed add changes nothing: retried, the batch is byte for byte the reference. */
    for (n = 1;; n++) {
        sg_batch_enc *enc = NULL;
        const void *buf;
        size_t len;
        int rc = 0, hit = 0;
        assert_int_equal(sg_batch_enc_new(&enc, rb.region), 0);
        for (int i = 0; i < BATCH_CHANGES; i++) {
            fa_arm(n);
            rc = sg_batch_enc_add(enc, &rb.changes[i]);
            fa_disarm();
            hit |= fa.injected > 0;
            if (rc < 0) {
                assert_int_equal(rc, SG_ENOMEM);
                assert_int_equal(sg_batch_enc_count(enc), (uint32_t)i);
                assert_int_equal(sg_batch_enc_add(enc, &rb.changes[i]), 0);
            }
        }
        assert_int_equal(sg_batch_enc_finish(enc, &buf, &len), 0);
        assert_int_equal(len + SG_FRAME_HEADER + 2, ref_len);
        assert_memory_equal(buf, (const uint8_t *)ref + SG_FRAME_HEADER + 2, len);
        sg_batch_enc_free(enc);
        if (!hit)
            break;
    }
    free(ref);
}

/* Frame and batch decoding: SG_ENOMEM and nothing to free on failure; on success the decoded
 * batch is the one encoded. */
static void test_codec_decode(void **state)
{
    region_batch rb;
    void *frame = NULL;
    size_t frame_len = 0;
    sweep s;

    (void)state;
    region_batch_init(&rb, "bundelkhand", 2);
    assert_int_equal(encode_batch_frame(&frame, &frame_len, &rb), 0);
    for (long n = 0;; n++) {
        sg_msg m;
        sg_batch *b = NULL;
        sg_err err = {0};
        uint32_t plen = 0;
        int rc;

        fa_arm(n);
        rc = sg_frame_len(&plen, frame, SG_FRAME_MAX, &err);
        if (rc == 0)
            rc = sg_msg_decode(&m, (const uint8_t *)frame + SG_FRAME_HEADER, plen, &err);
        if (rc == 0)
            rc = sg_batch_decode(&b, m.batch, m.batch_len, NULL, &err);
        fa_disarm();
        if (n == 0) {
            /* The counting run: the reference. */
            assert_int_equal(rc, 0);
            sweep_init(&s, "frame+batch decode", fa.count, 0);
        } else if (rc < 0) {
            assert_int_equal(rc, SG_ENOMEM);
            assert_null(b);
            if (strstr(err.msg, "memory") == NULL && strstr(err.msg, "allocate") == NULL)
                fail_msg("N=%ld: the message does not say what ran out: %s", n, err.msg);
        }
        if (rc == 0) {
            assert_int_equal(b->nchanges, BATCH_CHANGES);
            assert_int_equal(b->changes[2].ncols, 7);
            assert_memory_equal(b->changes[2].pk, rb.member, 10);
            assert_int_equal(b->changes[4].op, SG_OP_DELETE);
        }
        sg_batch_free(b);
        if (n > 0 && !sweep_note(&s, rc, err.msg))
            break;
    }
#ifdef SANGAM_MSGPACK_STATIC
    /* msgpack-c is linked in statically: its zone's allocations are in the sweep too (the frame
     * decoder's and the batch decoder's zones, and the batch's own block). */
    assert_true(s.total >= 3);
#endif
    assert_true(s.surfaced > 0);
    sweep_report(&s);
    free(frame);
}

/* Every other message type encodes to SG_ENOMEM or to its reference bytes. */
static void test_codec_messages(void **state)
{
    static const char pem[] = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n"
                              "-----END CERTIFICATE REQUEST-----\n";
    sg_msg msgs[6];
    sweep s;
    long total = 0, points = 0, surfaced = 0;

    (void)state;
    memset(msgs, 0, sizeof(msgs));
    msgs[0] = (sg_msg){.type = SG_MSG_HELLO,
                       .version = SG_PROTO_VERSION,
                       .node = "bundelkhand",
                       .node_len = 11,
                       .schema = SG_SCHEMA_VERSION};
    msgs[1] = (sg_msg){.type = SG_MSG_WELCOME,
                       .version = SG_PROTO_VERSION,
                       .node = "hq",
                       .node_len = 2,
                       .schema = SG_SCHEMA_VERSION,
                       .seq = 42};
    msgs[2] = (sg_msg){.type = SG_MSG_ACK, .seq = 1234567890123ull};
    msgs[3] = (sg_msg){.type = SG_MSG_ERROR,
                       .code = "seq_gap",
                       .code_len = 7,
                       .text = "expected change 8 next, got 9",
                       .text_len = 29};
    msgs[4] = (sg_msg){.type = SG_MSG_STATUS, .seq = 9, .hlc = 77};
    msgs[5] = (sg_msg){.type = SG_MSG_RENEW, .pem = pem, .pem_len = sizeof(pem) - 1};
    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        void *ref = NULL, *out = NULL;
        size_t ref_len = 0, out_len = 0;
        long n;
        fa_arm(0);
        assert_int_equal(sg_msg_encode(&ref, &ref_len, &msgs[i]), 0);
        fa_disarm();
        sweep_init(&s, sg_msg_name((int)msgs[i].type), fa.count, 0);
        for (n = 1;; n++) {
            int rc;
            fa_arm(n);
            rc = sg_msg_encode(&out, &out_len, &msgs[i]);
            fa_disarm();
            if (rc < 0) {
                assert_int_equal(rc, SG_ENOMEM);
                assert_null(out);
                assert_int_equal(out_len, 0);
            } else {
                assert_int_equal(out_len, ref_len);
                assert_memory_equal(out, ref, ref_len);
            }
            free(out);
            out = NULL;
            if (!sweep_note(&s, rc, NULL))
                break;
        }
        /* And its payload decodes under the same failures. */
        for (n = 1;; n++) {
            sg_msg m;
            sg_err err = {0};
            int rc;
            fa_arm(n);
            rc = sg_msg_decode(&m, (const uint8_t *)ref + SG_FRAME_HEADER,
                               ref_len - SG_FRAME_HEADER, &err);
            fa_disarm();
            if (rc < 0)
                assert_int_equal(rc, SG_ENOMEM);
            else
                assert_int_equal(m.type, msgs[i].type);
            if (!sweep_note(&s, rc, err.msg))
                break;
        }
        total += s.total;
        points += s.points;
        surfaced += s.surfaced;
        free(ref);
    }
    printf("[ alloc    ] %-28s %6ld allocations, %5ld points, %5ld failed cleanly\n",
           "other messages enc+dec", total, points, surfaced);
}

/* ---- 2. the hub's receive path ---- */

typedef struct hub_fixture {
    char dir[256];
    char path[300];
    sg_store *st;
} hub_fixture;

/* What hub.c does with a BATCH frame: decode it, apply it, encode the ACK. */
static int hub_receive(sg_apply_result *res, sg_store *st, const char *region, const void *frame,
                       size_t frame_len, sg_err *err)
{
    sg_batch *b = NULL;
    uint32_t plen;
    sg_msg m, ack;
    void *out = NULL;
    size_t out_len;
    uint64_t last;
    int rc;

    memset(res, 0, sizeof(*res));
    rc = sg_frame_len(&plen, frame, SG_FRAME_MAX, err);
    if (rc < 0)
        return rc;
    assert_int_equal(plen + SG_FRAME_HEADER, frame_len);
    rc = sg_msg_decode(&m, (const uint8_t *)frame + SG_FRAME_HEADER, plen, err);
    if (rc < 0)
        return rc;
    rc = sg_batch_decode(&b, m.batch, m.batch_len, NULL, err);
    if (rc < 0)
        return rc;
    rc = sg_apply_batch(res, st, region, b, 0, err);
    last = b->nchanges ? b->changes[b->nchanges - 1].seq : res->cursor;
    sg_batch_free(b);
    if (rc < 0)
        return rc;
    memset(&ack, 0, sizeof(ack));
    ack.type = SG_MSG_ACK;
    ack.seq = last;
    rc = sg_msg_encode(&out, &out_len, &ack);
    free(out);
    /* The batch is applied even if the ACK could not be built: the region resends, and the hub
     * skips the replay. The caller sees the error. */
    return rc < 0 ? sg_err_set(err, rc, "ack: out of memory") : 0;
}

/* The hub holds all of region's batch (whole = 1) or none of it, and quarantined nothing. */
static void expect_hub(sg_store *st, const char *region, int whole)
{
    sqlite3 *db = sg_store_db(st);
    int64_t orgs = q_int(db, "SELECT count(*) FROM organisations WHERE region = ?1", region);
    int64_t banda = q_int(
        db, "SELECT count(*) FROM organisations WHERE region = ?1 AND district = 'Banda'", region);
    int64_t members = q_int(db, "SELECT count(*) FROM members WHERE region = ?1", region);
    int64_t applied = q_int(db, "SELECT count(*) FROM sg_applied WHERE region = ?1", region);
    int64_t distinct =
        q_int(db, "SELECT count(DISTINCT seq) FROM sg_applied WHERE region = ?1", region);
    int64_t cursor = q_int(
        db, "SELECT coalesce((SELECT last_seq FROM sg_regions WHERE region = ?1), 0)", region);
    int64_t held = q_int(db, "SELECT count(*) FROM sg_quarantine WHERE region = ?1", region);

    if (held != 0)
        fail_msg("%s: an allocation failure put %lld change(s) in quarantine", region,
                 (long long)held);
    if (whole) {
        if (orgs != 1 || banda != 1 || members != 1 || applied != BATCH_CHANGES ||
            distinct != BATCH_CHANGES || cursor != BATCH_CHANGES)
            fail_msg("%s: batch half applied: orgs %lld (Banda %lld), members %lld, applied "
                     "%lld, cursor %lld",
                     region, (long long)orgs, (long long)banda, (long long)members,
                     (long long)applied, (long long)cursor);
    } else if (orgs != 0 || members != 0 || applied != 0 || cursor != 0) {
        fail_msg("%s: failed batch left orgs %lld, members %lld, applied %lld, cursor %lld", region,
                 (long long)orgs, (long long)members, (long long)applied, (long long)cursor);
    }
}

/* One injection point of the hub sweep: region sends its batch; the Nth allocation fails. */
static void hub_point(sweep *s, hub_fixture *f, long n, long tag, int *more)
{
    region_batch rb;
    char region[32];
    void *frame = NULL;
    size_t frame_len = 0;
    sg_apply_result res;
    sg_err err = {0};
    int rc;

    snprintf(region, sizeof(region), "region-%ld", tag);
    region_batch_init(&rb, region, tag);
    assert_int_equal(encode_batch_frame(&frame, &frame_len, &rb), 0);

    fa_arm(n);
    rc = hub_receive(&res, f->st, region, frame, frame_len, &err);
    fa_disarm();
    if (n == 0) {
        assert_int_equal(rc, 0);
        s->total = fa.count;
    }
    if (rc < 0 && rc != SG_ENOMEM)
        fail_msg("%s N=%ld: expected out_of_memory, got %s: %s", s->name, n, sg_strerror_name(rc),
                 err.msg);
    /* Decoding failed or the apply rolled back: nothing; the apply went through (and only the
     * ACK failed after it): everything. */
    expect_hub(f->st, region,
               rc == 0 || (q_int(sg_store_db(f->st),
                                 "SELECT count(*) FROM sg_applied WHERE "
                                 "region = ?1",
                                 region) > 0 &&
                           strstr(err.msg, "ack") == err.msg));
    *more = n == 0 ? 1 : sweep_note(s, rc, err.msg);
    if (rc == 0)
        assert_int_equal(res.applied, BATCH_CHANGES);

    /* The region resends with memory back: applied exactly once. */
    {
        int had = (int)q_int(sg_store_db(f->st),
                             "SELECT count(*) FROM sg_applied WHERE region = ?1", region);
        if (hub_receive(&res, f->st, region, frame, frame_len, &err) < 0)
            fail_msg("%s N=%ld: retry failed: %s", s->name, n, err.msg);
        assert_int_equal(res.applied, had ? 0 : BATCH_CHANGES);
        assert_int_equal(res.skipped, had ? BATCH_CHANGES : 0);
        assert_int_equal(res.cursor, BATCH_CHANGES);
        expect_hub(f->st, region, 1);
    }
    free(frame);
}

static void hub_sweep(int cold)
{
    hub_fixture f;
    sweep s;
    long tag = 0, n;
    int more = 1;
    sg_err err = {0};
    json_t *rec = NULL, *fields;

    make_dir(f.dir, sizeof(f.dir), "hub");
    snprintf(f.path, sizeof(f.path), "%s/hub.db", f.dir);
    f.st = open_store(f.path, "hq", "hub");
    sweep_init(&s, cold ? "hub receive (cold store)" : "hub receive (warm store)", 0, 0);
    if (!cold)
        hub_point(&s, &f, 0, ++tag, &more); /* warms the statement cache */
    /* The counting run, on a store as the sweep will see it. */
    if (cold) {
        sg_store_close(f.st);
        f.st = open_store(f.path, "hq", "hub");
    }
    hub_point(&s, &f, 0, ++tag, &more);
    sweep_init(&s, s.name, s.total, cold);
    for (n = 1; more; n += s.step) {
        if (cold) {
            sg_store_close(f.st);
            f.st = open_store(f.path, "hq", "hub");
        }
        hub_point(&s, &f, n, ++tag, &more);
    }
    assert_true(s.surfaced > 0);
    sweep_report(&s);

    /* Capture is back on after every failure: the hub's own write is logged. */
    assert_int_equal(q_int(sg_store_db(f.st), "SELECT count(*) FROM sg_changes", NULL), 0);
    fields = json_pack("{s:s, s:s}", "name", "HQ", "kind", "other");
    assert_int_equal(
        sg_store_create(&rec, f.st, sg_rectype_find("organisations", -1), fields, 0, &err), 0);
    json_decref(fields);
    json_decref(rec);
    assert_int_equal(q_int(sg_store_db(f.st), "SELECT count(*) FROM sg_changes", NULL), 1);
    assert_integrity(sg_store_db(f.st));
    sg_store_close(f.st);
    remove_dir(f.dir);
}

static void test_hub_receive_warm(void **state)
{
    (void)state;
    hub_sweep(0);
}

static void test_hub_receive_cold(void **state)
{
    (void)state;
    hub_sweep(1);
}

/* ---- 3. a region's capture path ---- */

/* A write as the API makes one (api.c handle_create/update/delete): the request body, one
 * transaction, the re-read record. op 'c' creates organisation name, 'u' sets its district,
 * 'd' deletes it; *id is the organisation's id (in for 'u' and 'd', out for 'c'). */
static int region_write(sg_store *st, int op, const char *name, char *id, size_t id_cap,
                        sg_err *err)
{
    const sg_rectype *orgs = sg_rectype_find("organisations", -1);
    json_t *body = NULL, *rec = NULL;
    int rc;

    if (op == 'c')
        body = json_pack("{s:s, s:s, s:s}", "name", name, "kind", "civil_society", "contact",
                         "+91 5192 220011");
    else if (op == 'u')
        body = json_pack("{s:s}", "district", "Chitrakoot");
    if (op != 'd' && body == NULL)
        return sg_err_set(err, SG_ENOMEM, "request body: out of memory");
    rc = sg_store_begin(st, err);
    if (rc < 0)
        goto drop_body;
    if (op == 'c')
        rc = sg_store_create(&rec, st, orgs, body, 0, err);
    else if (op == 'u')
        rc = sg_store_update(&rec, st, orgs, id, body, 0, err);
    else
        rc = sg_store_delete(st, orgs, id, err);
    if (rc < 0) {
        sg_store_rollback(st);
        goto drop_body;
    }
    rc = sg_store_commit(st, err);
    if (rc == 0 && op == 'c')
        snprintf(id, id_cap, "%s", json_string_value(json_object_get(rec, "id")));

drop_body:
    json_decref(rec);
    json_decref(body);
    return rc;
}

/* The region's rows and change log agree, for organisation id (or all when id is NULL): a live
 * row has its insert entry, its district is what its last logged district change says, an
 * insert entry without a row has a delete entry after it, a delete entry has no row; and seqs
 * are contiguous. */
static void expect_region_consistent(sg_store *st, const char *id)
{
    sqlite3 *db = sg_store_db(st);
    assert_int_equal(q_int(db,
                           "SELECT count(*) FROM organisations o WHERE (?1 IS NULL OR o.id = ?1) "
                           "AND NOT EXISTS (SELECT 1 FROM sg_changes c WHERE c.pk = o.id AND "
                           "c.op = 'insert')",
                           id),
                     0);
    assert_int_equal(q_int(db,
                           "SELECT count(*) FROM organisations o WHERE (?1 IS NULL OR o.id = ?1) "
                           "AND o.district IS NOT (SELECT json_extract(c.data, '$.district') FROM "
                           "sg_changes c WHERE c.pk = o.id AND json_extract(c.data, '$.district') "
                           "IS NOT NULL ORDER BY c.seq DESC LIMIT 1)",
                           id),
                     0);
    assert_int_equal(q_int(db,
                           "SELECT count(*) FROM sg_changes c WHERE (?1 IS NULL OR c.pk = ?1) AND "
                           "c.op = 'insert' AND NOT EXISTS (SELECT 1 FROM organisations o WHERE "
                           "o.id = c.pk) AND NOT EXISTS (SELECT 1 FROM sg_changes d WHERE d.pk = "
                           "c.pk AND d.op = 'delete' AND d.seq > c.seq)",
                           id),
                     0);
    assert_int_equal(q_int(db,
                           "SELECT count(*) FROM sg_changes c WHERE (?1 IS NULL OR c.pk = ?1) AND "
                           "c.op = 'delete' AND EXISTS (SELECT 1 FROM organisations o WHERE o.id "
                           "= c.pk)",
                           id),
                     0);
    assert_int_equal(
        q_int(db, "SELECT count(*) FROM sg_changes", NULL),
        q_int(db, "SELECT coalesce(max(seq) - min(seq) + 1, 0) FROM sg_changes", NULL));
}

static void region_sweep(int cold)
{
    char dir[256], path[300];
    sg_store *st;
    sweep s[3];
    static const int ops[3] = {'c', 'u', 'd'};
    long tag = 0;

    make_dir(dir, sizeof(dir), "region");
    snprintf(path, sizeof(path), "%s/region.db", dir);
    st = open_store(path, "bundelkhand", "region");
    for (int k = 0; k < 3; k++) {
        int op = ops[k];
        char name_tag[48];
        snprintf(name_tag, sizeof(name_tag), "%s %c", cold ? "cold" : "warm", op);
        memset(&s[k], 0, sizeof(s[k]));
        /* n == 0 is the counting run. */
        for (long n = 0;; n = n == 0 ? 1 : n + s[k].step) {
            char id[64] = "", name[64];
            sg_err err = {0};
            int64_t seq0, rows0, seq1, rows1;
            int rc, more;

            snprintf(name, sizeof(name), "Gram Vikas %ld", ++tag);
            /* The record an update or delete works on, written with memory to spare. */
            if (op != 'c')
                assert_int_equal(region_write(st, 'c', name, id, sizeof(id), &err), 0);
            if (cold) {
                sg_store_close(st);
                st = open_store(path, "bundelkhand", "region");
            }
            seq0 = sg_store_seq(st);
            rows0 = q_int(sg_store_db(st), "SELECT count(*) FROM organisations", NULL);
            fa_arm(n);
            rc = region_write(st, op, name, id, sizeof(id), &err);
            fa_disarm();
            if (rc < 0 && rc != SG_ENOMEM)
                fail_msg("%s N=%ld: expected out_of_memory, got %s: %s", name_tag, n,
                         sg_strerror_name(rc), err.msg);
            seq1 = sg_store_seq(st);
            rows1 = q_int(sg_store_db(st), "SELECT count(*) FROM organisations", NULL);
            /* All or nothing, the log with the rows. */
            if (seq1 != seq0 + (rc == 0))
                fail_msg("%s N=%ld: returned %d (%s) but the change log went from %lld to %lld",
                         name_tag, n, rc, err.msg, (long long)seq0, (long long)seq1);
            assert_int_equal(rows1, rows0 + (rc == 0 ? (op == 'c' ? 1 : op == 'd' ? -1 : 0) : 0));
            expect_region_consistent(st, id[0] ? id : NULL);
            if (n == 0) {
                assert_int_equal(rc, 0);
                sweep_init(&s[k],
                           k == 0   ? (cold ? "region create (cold)" : "region create")
                           : k == 1 ? (cold ? "region update (cold)" : "region update")
                                    : (cold ? "region delete (cold)" : "region delete"),
                           fa.count, cold);
                more = 1;
            } else {
                more = sweep_note(&s[k], rc, err.msg);
            }
            /* Retried with memory back, the write happens once. */
            if (rc < 0) {
                if (region_write(st, op, name, id, sizeof(id), &err) < 0)
                    fail_msg("%s N=%ld: retry failed: %s", name_tag, n, err.msg);
                assert_int_equal(sg_store_seq(st), seq0 + 1);
                expect_region_consistent(st, id);
            }
            if (!more)
                break;
        }
        assert_true(s[k].surfaced > 0);
        expect_region_consistent(st, NULL);
        sweep_report(&s[k]);
    }
    assert_integrity(sg_store_db(st));
    sg_store_close(st);
    remove_dir(dir);
}

static void test_region_capture_warm(void **state)
{
    (void)state;
    region_sweep(0);
}

static void test_region_capture_cold(void **state)
{
    (void)state;
    region_sweep(1);
}

/* ---- 4. a region's send path ---- */

/* The uplink's read of the change log into a BATCH frame: an error, or the reference frame. */
static void test_region_outbox(void **state)
{
    char dir[256], path[300], id[64];
    sg_store *st;
    sweep s;
    void *ref = NULL;
    size_t ref_len = 0;
    sg_err err = {0};

    (void)state;
    make_dir(dir, sizeof(dir), "outbox");
    snprintf(path, sizeof(path), "%s/region.db", dir);
    st = open_store(path, "bundelkhand", "region");
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof(name), "Org %d", i);
        assert_int_equal(region_write(st, 'c', name, id, sizeof(id), &err), 0);
    }
    assert_int_equal(region_write(st, 'u', NULL, id, sizeof(id), &err), 0);
    assert_int_equal(region_write(st, 'd', NULL, id, sizeof(id), &err), 0);

    for (long n = 0;; n++) {
        sg_batch_enc *enc = NULL;
        const void *buf;
        size_t len;
        uint64_t last = 0;
        void *out = NULL;
        size_t out_len = 0;
        sg_msg m;
        int rc;

        fa_arm(n);
        rc = sg_batch_enc_new(&enc, "bundelkhand");
        if (rc == 0)
            rc = sg_outbox_read(&last, st, 0, 100, 1 << 20, enc, &err);
        if (rc == 0)
            rc = sg_batch_enc_finish(enc, &buf, &len);
        if (rc == 0) {
            memset(&m, 0, sizeof(m));
            m.type = SG_MSG_BATCH;
            m.batch = buf;
            m.batch_len = len;
            rc = sg_msg_encode(&out, &out_len, &m);
        }
        fa_disarm();
        sg_batch_enc_free(enc);
        if (n == 0) {
            assert_int_equal(rc, 0);
            assert_int_equal(last, 6);
            ref = out;
            ref_len = out_len;
            sweep_init(&s, "region outbox read", fa.count, 0);
            continue;
        }
        if (rc == 0) {
            assert_int_equal(last, 6);
            assert_int_equal(out_len, ref_len);
            assert_memory_equal(out, ref, ref_len);
        } else {
            assert_null(out);
        }
        free(out);
        if (!sweep_note(&s, rc, err.msg))
            break;
    }
    assert_true(s.surfaced > 0);
    sweep_report(&s);
    free(ref);
    sg_store_close(st);
    remove_dir(dir);
}

/* ---- 5. opening a store ---- */

/* sangamd's start: opening an existing database fails cleanly (no store, no leak) or succeeds,
 * and the database opens afterwards. */
static void test_store_open(void **state)
{
    char dir[256], path[300];
    sg_store *st;
    sweep s;

    (void)state;
    make_dir(dir, sizeof(dir), "open");
    snprintf(path, sizeof(path), "%s/hub.db", dir);
    st = open_store(path, "hq", "hub");
    sg_store_close(st);
    for (long n = 0;; n = n == 0 ? 1 : n + s.step) {
        sg_err err = {0};
        int rc;
        st = NULL;
        fa_arm(n);
        rc = sg_store_open(&st, path, "hq", "hub", &err);
        fa_disarm();
        if (n == 0) {
            assert_int_equal(rc, 0);
            sweep_init(&s, "store open", fa.count, 1);
        } else if (rc < 0) {
            assert_null(st);
        }
        sg_store_close(st);
        if (n > 0 && !sweep_note(&s, rc, err.msg))
            break;
    }
    assert_true(s.surfaced > 0);
    sweep_report(&s);
    st = open_store(path, "hq", "hub");
    assert_integrity(sg_store_db(st));
    sg_store_close(st);
    remove_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_batch_encode),  cmocka_unit_test(test_codec_decode),
        cmocka_unit_test(test_codec_messages),      cmocka_unit_test(test_hub_receive_warm),
        cmocka_unit_test(test_hub_receive_cold),    cmocka_unit_test(test_region_capture_warm),
        cmocka_unit_test(test_region_capture_cold), cmocka_unit_test(test_region_outbox),
        cmocka_unit_test(test_store_open),
    };
    if (install_allocators() < 0) {
        fprintf(stderr, "cannot install the failing allocators\n");
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
