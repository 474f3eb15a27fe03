/*
 * test_vfs.c - I/O errors and power loss under the store (issue 7), through the fault-injecting
 * VFS of tests/tools/faultvfs.c, registered as SQLite's default so sg_store_open uses it.
 *
 * Two workloads, each a list of commits made the way the node makes them:
 * - a region: twelve writes through the store API as api.c makes them (begin, create / update /
 *   delete of an organisation, commit), each captured by the triggers into sg_changes;
 * - the hub: four batches of three changes from one region applied with sg_apply_batch.
 * The workload's file operations (writes, syncs, truncations, including the checkpoint when the
 * store closes) are counted once with nothing failing; then, for N over that count:
 * - power loss: the power is cut after operation N (every later operation fails), the store is
 *   closed, every file is put back as it was at its last sync (faultvfs.h), and the database is
 *   opened again with the normal VFS. Checked: every commit that returned success is there and
 *   nothing else is (the store's state is exactly that of the acknowledged prefix), PRAGMA
 *   integrity_check is ok, the change log's seqs run 1..k with no gap, each row change has its
 *   log entry and each log entry its row change (hub: rows, sg_applied seqs 1..cursor and the
 *   cursor agree), the store opens cleanly and takes the rest of the workload (the hub: the
 *   region resends from the cursor, a replay is skipped, everything ends applied exactly once).
 *   The same sweep also runs as a process crash: the cut without reverting unsynced writes.
 * - I/O errors: from operation N on, writes fail with SQLITE_IOERR_WRITE or SQLITE_FULL, or
 *   syncs with SQLITE_IOERR_FSYNC, until the failing commit has returned. Checked: that commit
 *   reports an error (io_error or disk_full), its transaction is absent, the fault stops and the
 *   rest of the workload commits, and after reopening the state is exactly the successful
 *   commits'.
 *
 * Bounds: each sweep tries at most SWEEP_BUDGET points spread evenly over the operations
 * (every operation is tried when there are fewer); SANGAM_LONG=1 in the environment tries every
 * N in every sweep. Databases live in /dev/shm when it is writable (fsync costs nothing there;
 * durability is the shim's to model). The figures are printed per sweep.
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
#include "store.h"
#include "tools/faultvfs.h"

#define SWEEP_BUDGET 100

/* ---- helpers ---- */

typedef struct fixture {
    fvfs *v;        /* the shim, default VFS */
    char dir[256];  /* scratch directory of the current point */
    char path[300]; /* its database */
} fixture;

static long sweep_step(long total)
{
    if (long_mode() || total <= SWEEP_BUDGET)
        return 1;
    return (total + SWEEP_BUDGET - 1) / SWEEP_BUDGET;
}

static void point_dir(fixture *f)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(f->dir, sizeof(f->dir), "%s/sg_vfs_XXXXXX", base);
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/node.db", f->dir);
}

static void point_done(fixture *f)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(fvfs_open_files(f->v), 0);
    fvfs_reset(f->v);
}

/* ---- the region workload ---- */

/* Twelve writes on organisations named W0..W5: creates, updates of the district, deletes. */
typedef struct rop {
    int op;   /* 'c', 'u' or 'd' */
    int name; /* W<name> */
} rop;

static const rop region_ops[] = {{'c', 0}, {'c', 1}, {'u', 0}, {'c', 2}, {'d', 1}, {'c', 3},
                                 {'u', 2}, {'c', 4}, {'d', 3}, {'u', 4}, {'c', 5}, {'u', 5}};
#define REGION_OPS ((int)(sizeof(region_ops) / sizeof(region_ops[0])))

/* One write as api.c makes it. ids[name] holds the id of each organisation created. */
static int region_write(sg_store *st, const rop *o, char ids[][32], sg_err *err)
{
    const sg_rectype *orgs = sg_rectype_find("organisations", -1);
    json_t *body = NULL, *rec = NULL;
    char name[16], district[16];
    int rc;

    snprintf(name, sizeof(name), "W%d", o->name);
    snprintf(district, sizeof(district), "D%d", o->name);
    if (o->op == 'c')
        body = json_pack("{s:s, s:s}", "name", name, "kind", "civil_society");
    else if (o->op == 'u')
        body = json_pack("{s:s}", "district", district);
    rc = sg_store_begin(st, err);
    if (rc < 0)
        goto drop_body;
    if (o->op == 'c')
        rc = sg_store_create(&rec, st, orgs, body, 0, err);
    else if (o->op == 'u')
        rc = sg_store_update(&rec, st, orgs, ids[o->name], body, 0, err);
    else
        rc = sg_store_delete(st, orgs, ids[o->name], err);
    if (rc < 0) {
        sg_store_rollback(st);
        goto drop_body;
    }
    rc = sg_store_commit(st, err);
    if (rc == 0 && o->op == 'c')
        snprintf(ids[o->name], 32, "%s", json_string_value(json_object_get(rec, "id")));

drop_body:
    json_decref(rec);
    json_decref(body);
    return rc;
}

/* The store holds exactly the effect of the writes done[0..n) (done[i] = 1: committed): rows,
 * their districts, one change-log entry per committed write with seqs 1..k, each row change with
 * its entry. */
static void expect_region(sg_store *st, const int *done, int n, const char *when)
{
    sqlite3 *db = sg_store_db(st);
    int present[6] = {0}, district[6] = {0}, k = 0;

    for (int i = 0; i < n; i++) {
        const rop *o = &region_ops[i];
        if (!done[i])
            continue;
        k++;
        if (o->op == 'c')
            present[o->name] = 1;
        else if (o->op == 'd')
            present[o->name] = 0;
        else
            district[o->name] = 1;
    }
    for (int w = 0; w < 6; w++) {
        char name[16], sql[160];
        snprintf(name, sizeof(name), "W%d", w);
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM organisations WHERE name = ?1 AND district IS %s",
                 district[w] ? "'D' || substr(?1, 2)" : "NULL");
        if (q_int(db, "SELECT count(*) FROM organisations WHERE name = ?1", name) != present[w] ||
            (present[w] && q_int(db, sql, name) != 1))
            fail_msg("%s: %s should be %s%s", when, name, present[w] ? "present" : "absent",
                     present[w] && district[w] ? " with its district" : "");
    }
    if (q_int(db, "SELECT count(*) FROM sg_changes", NULL) != k ||
        q_int(db, "SELECT coalesce(min(seq), 1) FROM sg_changes", NULL) != 1 ||
        q_int(db, "SELECT coalesce(max(seq), 0) FROM sg_changes", NULL) != k)
        fail_msg("%s: the change log should hold seqs 1..%d, holds %lld entries, %lld..%lld", when,
                 k, (long long)q_int(db, "SELECT count(*) FROM sg_changes", NULL),
                 (long long)q_int(db, "SELECT min(seq) FROM sg_changes", NULL),
                 (long long)q_int(db, "SELECT max(seq) FROM sg_changes", NULL));
    /* Each entry is the row change it says: inserts of rows that exist or were deleted later,
     * deletes of rows that are gone, updates carrying the row's district. */
    assert_int_equal(q_int(db,
                           "SELECT count(*) FROM sg_changes c WHERE NOT ("
                           "(c.op = 'insert' AND (EXISTS (SELECT 1 FROM organisations o WHERE "
                           "o.id = c.pk) OR EXISTS (SELECT 1 FROM sg_changes d WHERE d.pk = c.pk "
                           "AND d.op = 'delete' AND d.seq > c.seq))) OR "
                           "(c.op = 'delete' AND NOT EXISTS (SELECT 1 FROM organisations o WHERE "
                           "o.id = c.pk)) OR "
                           "(c.op = 'update' AND json_extract(c.data, '$.district') IS NOT NULL))",
                           NULL),
                     0);
    assert_int_equal(q_int(db,
                           "SELECT count(*) FROM organisations o WHERE NOT EXISTS (SELECT 1 FROM "
                           "sg_changes c WHERE c.pk = o.id AND c.op = 'insert') OR (o.district "
                           "IS NOT NULL AND NOT EXISTS (SELECT 1 FROM sg_changes c WHERE c.pk = "
                           "o.id AND c.op = 'update'))",
                           NULL),
                     0);
}

/* ---- the hub workload ---- */

#define HUB_BATCHES 4
#define HUB_PER     3
#define HUB_REGION  "bundelkhand"

/* Batch j (0-based): organisation A<j>, member M<j> of it, A<j>'s district. Seqs continue. */
typedef struct hub_batch {
    char org[16], member[16];
    sg_col org_cols[5], member_cols[6], upd_cols[2];
    sg_change changes[HUB_PER];
    sg_batch *b; /* decoded (what sg_apply_batch gets) */
    void *bytes; /* encoded: the decoded batch points into it */
} hub_batch;

static void hub_batch_make(hub_batch *hb, int j)
{
    static const char *const ts = "2024-03-01T10:00:00.000Z";
    uint64_t hlc = ((uint64_t)1709287200000 << 16) + (uint64_t)j * HUB_PER;
    sg_batch_enc *enc = NULL;
    const void *buf;
    size_t len;

    memset(hb, 0, sizeof(*hb));
    snprintf(hb->org, sizeof(hb->org), "A%06d", j);
    snprintf(hb->member, sizeof(hb->member), "M%06d", j);
    col_str(&hb->org_cols[0], "region", HUB_REGION);
    col_str(&hb->org_cols[1], "name", "Gram Vikas");
    col_str(&hb->org_cols[2], "kind", "civil_society");
    col_str(&hb->org_cols[3], "created_at", ts);
    col_str(&hb->org_cols[4], "updated_at", ts);
    col_str(&hb->member_cols[0], "region", HUB_REGION);
    col_str(&hb->member_cols[1], "name", "Sita Devi");
    col_str(&hb->member_cols[2], "kind", "representative");
    col_str(&hb->member_cols[3], "organisation_id", hb->org);
    col_str(&hb->member_cols[4], "created_at", ts);
    col_str(&hb->member_cols[5], "updated_at", ts);
    col_str(&hb->upd_cols[0], "district", "Banda");
    col_str(&hb->upd_cols[1], "updated_at", ts);
    for (int i = 0; i < HUB_PER; i++) {
        sg_change *c = &hb->changes[i];
        c->seq = (uint64_t)(j * HUB_PER + i + 1);
        c->hlc = hlc + (uint64_t)i;
        c->op = i == 0 ? SG_OP_INSERT : i == 1 ? SG_OP_INSERT : SG_OP_UPDATE;
        c->table = i == 1 ? "members" : "organisations";
        c->table_len = (uint32_t)strlen(c->table);
        c->pk = i == 1 ? hb->member : hb->org;
        c->pk_len = 7;
        c->cols = i == 0 ? hb->org_cols : i == 1 ? hb->member_cols : hb->upd_cols;
        c->ncols = i == 0 ? 5 : i == 1 ? 6 : 2;
    }
    assert_int_equal(sg_batch_enc_new(&enc, HUB_REGION), 0);
    for (int i = 0; i < HUB_PER; i++)
        assert_int_equal(sg_batch_enc_add(enc, &hb->changes[i]), 0);
    assert_int_equal(sg_batch_enc_finish(enc, &buf, &len), 0);
    hb->bytes = malloc(len);
    assert_non_null(hb->bytes);
    memcpy(hb->bytes, buf, len);
    sg_batch_enc_free(enc);
    assert_int_equal(sg_batch_decode(&hb->b, hb->bytes, len, NULL, NULL), 0);
}

static void hub_batch_free(hub_batch *hb)
{
    sg_batch_free(hb->b);
    free(hb->bytes);
}

/* The hub holds exactly batches 0..k-1: rows, sg_applied seqs 1..cursor, the cursor. */
static void expect_hub(sg_store *st, int k, const char *when)
{
    sqlite3 *db = sg_store_db(st);
    int64_t cursor = q_int(
        db, "SELECT coalesce((SELECT last_seq FROM sg_regions WHERE region = ?1), 0)", HUB_REGION);
    int64_t orgs = q_int(db, "SELECT count(*) FROM organisations", NULL);
    int64_t banda = q_int(db, "SELECT count(*) FROM organisations WHERE district = 'Banda'", NULL);
    int64_t members = q_int(db, "SELECT count(*) FROM members", NULL);
    int64_t applied = q_int(db, "SELECT count(*) FROM sg_applied", NULL);
    int64_t distinct = q_int(db, "SELECT count(DISTINCT seq) FROM sg_applied", NULL);
    int64_t maxseq = q_int(db, "SELECT coalesce(max(seq), 0) FROM sg_applied", NULL);

    if (cursor != k * HUB_PER || orgs != k || banda != k || members != k ||
        applied != k * HUB_PER || distinct != applied || maxseq != cursor)
        fail_msg("%s: expected %d whole batches; cursor %lld, orgs %lld (Banda %lld), members "
                 "%lld, sg_applied %lld (%lld distinct, max %lld)",
                 when, k, (long long)cursor, (long long)orgs, (long long)banda, (long long)members,
                 (long long)applied, (long long)distinct, (long long)maxseq);
    assert_int_equal(q_int(db, "SELECT count(*) FROM sg_quarantine", NULL), 0);
    assert_int_equal(q_int(db, "SELECT count(*) FROM sg_changes", NULL), 0); /* capture off */
}

/* ---- running a workload ---- */

typedef struct run {
    int done[REGION_OPS > HUB_BATCHES ? REGION_OPS : HUB_BATCHES]; /* 1: committed */
    int failed_at;                                                 /* first failed, or -1 */
    int failed_rc;                                                 /* its code */
    int nops;                                                      /* ops attempted */
} run;

/* Runs the workload on the open store st. clear_after_failure: the fault stops once a commit
 * has failed (I/O-error mode); otherwise every later op is still tried (power cut). */
static void run_workload(run *r, fixture *f, sg_store *st, int hub, hub_batch *hb, char ids[][32],
                         int clear_after_failure)
{
    memset(r, 0, sizeof(*r));
    r->failed_at = -1;
    r->nops = hub ? HUB_BATCHES : REGION_OPS;
    for (int i = 0; i < r->nops; i++) {
        sg_err err = {0};
        int rc;
        if (hub) {
            sg_apply_result res;
            rc = sg_apply_batch(&res, st, HUB_REGION, hb[i].b, 0, &err);
            if (rc == 0 && res.applied != HUB_PER) {
                /* After a failed batch the next one cannot continue the cursor. */
                rc = SG_EGAP;
            }
        } else {
            rc = region_write(st, &region_ops[i], ids, &err);
        }
        r->done[i] = rc == 0;
        if (rc < 0 && r->failed_at < 0) {
            r->failed_at = i;
            r->failed_rc = rc;
            if (clear_after_failure)
                fvfs_clear(f->v);
        }
    }
}

/* Counts the file operations of the whole workload, store close included. */
static long count_ops(fixture *f, int hub, hub_batch *hb)
{
    char ids[6][32] = {{0}};
    sg_store *st;
    run r;
    long n;

    point_dir(f);
    st = open_store(f->path, hub ? "hq" : HUB_REGION, hub ? "hub" : "region");
    fvfs_count_reset(f->v);
    run_workload(&r, f, st, hub, hb, ids, 0);
    assert_int_equal(r.failed_at, -1);
    sg_store_close(st);
    n = fvfs_ops(f->v);
    point_done(f);
    return n;
}

/* ---- power loss ---- */

static void power_sweep(fixture *f, int hub, int revert)
{
    hub_batch hb[HUB_BATCHES];
    long total, step, points = 0, acked = 0, reverted = 0, refused = 0, inflight = 0;

    for (int j = 0; j < HUB_BATCHES; j++)
        hub_batch_make(&hb[j], j);
    total = count_ops(f, hub, hb);
    step = sweep_step(total);
    for (long n = 1; n <= total; n += step) {
        char ids[6][32] = {{0}}, when[96];
        sg_store *st;
        run r;
        long bytes = 0;
        int k = 0;

        snprintf(when, sizeof(when), "%s, %s after op %ld of %ld", hub ? "hub" : "region",
                 revert ? "power cut" : "crash", n, total);
        point_dir(f);
        st = open_store(f->path, hub ? "hq" : HUB_REGION, hub ? "hub" : "region");
        fvfs_count_reset(f->v);
        fvfs_cut(f->v, n);
        run_workload(&r, f, st, hub, hb, ids, 0);
        sg_store_close(st);
        refused += fvfs_refused(f->v);
        assert_int_equal(fvfs_open_files(f->v), 0);
        fvfs_clear(f->v);
        if (revert)
            assert_int_equal(fvfs_revert(f->v, &bytes), 0);
        reverted += bytes;

        /* The acknowledged commits are a prefix: nothing commits after the cut. */
        while (k < r.nops && r.done[k])
            k++;
        for (int i = k; i < r.nops; i++)
            if (r.done[i])
                fail_msg("%s: op %d committed after op %d failed", when, i, k);
        acked += k;

        fvfs_set_default(f->v, 0);
        st = open_store(f->path, hub ? "hq" : HUB_REGION, hub ? "hub" : "region");
        assert_integrity(sg_store_db(st));
        /* A crash keeps what was written without a sync: the commit in flight at the cut may
         * survive although it reported failure (its outcome was unknown). A power loss may
         * not keep it. */
        if (!revert && k < r.nops &&
            (hub ? q_int(sg_store_db(st),
                         "SELECT coalesce((SELECT last_seq FROM sg_regions WHERE region = ?1), 0)",
                         HUB_REGION) == (k + 1) * HUB_PER
                 : q_int(sg_store_db(st), "SELECT count(*) FROM sg_changes", NULL) == k + 1)) {
            r.done[k++] = 1;
            inflight++;
        }
        for (int w = 0; !hub && w < 6; w++) {
            char name[16];
            sqlite3_stmt *s = NULL;
            snprintf(name, sizeof(name), "W%d", w);
            assert_int_equal(sqlite3_prepare_v2(sg_store_db(st),
                                                "SELECT id FROM organisations WHERE name = ?1", -1,
                                                &s, NULL),
                             SQLITE_OK);
            sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
            if (sqlite3_step(s) == SQLITE_ROW)
                snprintf(ids[w], sizeof(ids[w]), "%s", (const char *)sqlite3_column_text(s, 0));
            sqlite3_finalize(s);
        }
        if (hub) {
            uint64_t cursor = 0;
            sg_err err = {0};
            expect_hub(st, k, when);
            /* The region resends from the cursor, the last acknowledged batch again included. */
            assert_int_equal(sg_apply_cursor(&cursor, st, HUB_REGION, &err), 0);
            for (int j = k > 0 ? k - 1 : 0; j < HUB_BATCHES; j++) {
                sg_apply_result res;
                if (sg_apply_batch(&res, st, HUB_REGION, hb[j].b, 0, &err) < 0)
                    fail_msg("%s: resending batch %d: %s", when, j, err.msg);
                assert_int_equal(res.applied + res.skipped, HUB_PER);
                assert_int_equal(res.skipped, j < k ? HUB_PER : 0);
            }
            expect_hub(st, HUB_BATCHES, when);
        } else {
            expect_region(st, r.done, r.nops, when);
            /* The node goes on: the writes not acknowledged are made again. */
            for (int i = k; i < r.nops; i++) {
                sg_err err = {0};
                if (region_write(st, &region_ops[i], ids, &err) < 0)
                    fail_msg("%s: op %d after restart: %s", when, i, err.msg);
                r.done[i] = 1;
            }
            expect_region(st, r.done, r.nops, when);
        }
        assert_integrity(sg_store_db(st));
        sg_store_close(st);
        fvfs_set_default(f->v, 1);
        point_done(f);
        points++;
    }
    printf("[ vfs      ] %-6s %-10s %4ld file ops, %3ld cuts (every %ld), %4ld acknowledged "
           "commits checked, %5ld ops refused, %7ld bytes reverted, %3ld unacknowledged commits "
           "kept\n",
           hub ? "hub" : "region", revert ? "power loss" : "crash", total, points, step, acked,
           refused, reverted, inflight);
    for (int j = 0; j < HUB_BATCHES; j++)
        hub_batch_free(&hb[j]);
}

static void test_power_loss_region(void **state)
{
    power_sweep(*state, 0, 1);
}

static void test_power_loss_hub(void **state)
{
    power_sweep(*state, 1, 1);
}

static void test_crash_region(void **state)
{
    power_sweep(*state, 0, 0);
}

static void test_crash_hub(void **state)
{
    power_sweep(*state, 1, 0);
}

/* ---- I/O errors ---- */

static void ioerr_sweep(fixture *f, int hub, unsigned kinds, int write_code, const char *what)
{
    hub_batch hb[HUB_BATCHES];
    long total, step, points = 0, failed = 0, absorbed = 0;

    for (int j = 0; j < HUB_BATCHES; j++)
        hub_batch_make(&hb[j], j);
    total = count_ops(f, hub, hb);
    step = sweep_step(total);
    for (long n = 1; n <= total; n += step) {
        char ids[6][32] = {{0}}, when[96];
        sg_store *st;
        run r;

        snprintf(when, sizeof(when), "%s, %s from op %ld of %ld", hub ? "hub" : "region", what, n,
                 total);
        point_dir(f);
        st = open_store(f->path, hub ? "hq" : HUB_REGION, hub ? "hub" : "region");
        fvfs_count_reset(f->v);
        fvfs_fail(f->v, n, kinds, write_code);
        run_workload(&r, f, st, hub, hb, ids, 1);
        if (r.failed_at >= 0) {
            int want = write_code == SQLITE_FULL && kinds == FVFS_WRITE ? SG_EFULL : SG_EIO;
            failed++;
            if (r.failed_rc != want && !(hub && r.failed_rc == SG_EGAP))
                fail_msg("%s: op %d failed with %s, expected %s", when, r.failed_at,
                         sg_strerror_name(r.failed_rc), sg_strerror_name(want));
        }
        if (hub) {
            /* A failed batch and those after it (which then leave a gap) are not applied; the
             * region resends them once the disk works again. */
            int k = 0;
            sg_err err = {0};
            while (k < r.nops && r.done[k])
                k++;
            expect_hub(st, k, when);
            for (int j = k; j < HUB_BATCHES; j++) {
                sg_apply_result res;
                if (sg_apply_batch(&res, st, HUB_REGION, hb[j].b, 0, &err) < 0)
                    fail_msg("%s: resending batch %d: %s", when, j, err.msg);
            }
            expect_hub(st, HUB_BATCHES, when);
        } else {
            /* The failed write is absent; every later one committed. */
            expect_region(st, r.done, r.nops, when);
            for (int i = r.failed_at + 1; r.failed_at >= 0 && i < r.nops; i++)
                if (!r.done[i] && region_ops[i].name != region_ops[r.failed_at].name)
                    fail_msg("%s: op %d failed after the fault stopped", when, i);
        }
        /* When nothing failed yet the fault is still on: the close's checkpoint meets it (and
         * leaves the WAL for the next open to recover). */
        sg_store_close(st);
        assert_int_equal(fvfs_open_files(f->v), 0);
        if (r.failed_at < 0 && fvfs_refused(f->v) > 0)
            absorbed++;
        fvfs_clear(f->v);

        fvfs_set_default(f->v, 0);
        st = open_store(f->path, hub ? "hq" : HUB_REGION, hub ? "hub" : "region");
        assert_integrity(sg_store_db(st));
        if (hub)
            expect_hub(st, HUB_BATCHES, when);
        else
            expect_region(st, r.done, r.nops, when);
        sg_store_close(st);
        fvfs_set_default(f->v, 1);
        point_done(f);
        points++;
    }
    printf("[ vfs      ] %-6s %-16s %4ld file ops, %3ld points (every %ld), %3ld commits failed "
           "cleanly, %3ld faults absorbed\n",
           hub ? "hub" : "region", what, total, points, step, failed, absorbed);
    assert_true(failed > 0);
    for (int j = 0; j < HUB_BATCHES; j++)
        hub_batch_free(&hb[j]);
}

static void test_ioerr_region(void **state)
{
    ioerr_sweep(*state, 0, FVFS_WRITE, SQLITE_IOERR_WRITE, "IOERR_WRITE");
    ioerr_sweep(*state, 0, FVFS_WRITE, SQLITE_FULL, "FULL");
    ioerr_sweep(*state, 0, FVFS_SYNC, 0, "IOERR_FSYNC");
}

static void test_ioerr_hub(void **state)
{
    ioerr_sweep(*state, 1, FVFS_WRITE, SQLITE_IOERR_WRITE, "IOERR_WRITE");
    ioerr_sweep(*state, 1, FVFS_WRITE, SQLITE_FULL, "FULL");
    ioerr_sweep(*state, 1, FVFS_SYNC, 0, "IOERR_FSYNC");
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL || fvfs_install(&f->v) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    fvfs_uninstall(f->v);
    free(f);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_power_loss_region, setup, teardown),
        cmocka_unit_test_setup_teardown(test_power_loss_hub, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_region, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_hub, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ioerr_region, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ioerr_hub, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
