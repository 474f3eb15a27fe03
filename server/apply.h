/*
 * apply.h - the hub side of replication in the store: applying a region's change batches with
 * exactly-once effect and ownership checks, quarantining what is refused, snapshots; and the
 * region side: reading its change log into batches and recording what the hub acknowledged.
 *
 * Invariants (DESIGN principles 2 and 3):
 * - a batch is applied whole or not at all, in one transaction that also moves the region's
 *   cursor (sg_regions.last_seq), so after a crash either both happened or neither did;
 * - a change with seq <= cursor is a replay and is skipped; a change must otherwise continue the
 *   cursor with no gap;
 * - a change is applied only if its origin is the region the connection authenticated and the
 *   row it touches is (or will be) owned by that region; every table and column name comes from
 *   the record descriptors, never from the wire;
 * - a refused batch changes nothing but the quarantine and the region's last_error.
 */
#ifndef SANGAM_APPLY_H
#define SANGAM_APPLY_H

#include <stdint.h>

#include <jansson.h>

#include "sangam/batch.h"
#include "store.h"

typedef struct sg_apply_result {
    uint64_t cursor;  /* the region's cursor after the batch */
    uint32_t applied; /* changes applied */
    uint32_t skipped; /* replays skipped */
} sg_apply_result;

/* The region's cursor (0 for a region never heard from). */
int sg_apply_cursor(uint64_t *out, sg_store *st, const char *region, sg_err *err);

/* Applies batch b received from region (the id its certificate names). snapshot: b is part of
 * a snapshot (see PROTOCOL.md 7.4): rows are upserted and remembered, the cursor stays.
 * Returns 0; SG_EGAP (nothing written, not quarantined: the sender must resend from the
 * cursor); a failure of the hub itself (SG_EDB, SG_EFULL, SG_EBUSY, ...: nothing written); or a
 * refusal of the batch: its code (SG_EAUTH, SG_EUNKNOWN, SG_EVALIDATE, ..., or SG_EQUARANTINE
 * for a constraint only the database could check), nothing applied, the batch's changes held in
 * sg_quarantine with the reason, which err also carries. */
int sg_apply_batch(sg_apply_result *out, sg_store *st, const char *region, const sg_batch *b,
                   int snapshot, sg_err *err);

/* Starts a snapshot of region at its seq: forgets any half-received earlier snapshot. */
int sg_apply_snapshot_begin(sg_store *st, const char *region, uint64_t seq, sg_err *err);
/* Ends it: deletes the region's rows the snapshot did not contain and sets the cursor to seq,
 * in one transaction. SG_EPROTO if no snapshot at seq is in progress. */
int sg_apply_snapshot_end(sg_store *st, const char *region, uint64_t seq, sg_err *err);

/* Records contact with region (and an error text, or NULL to clear it). */
int sg_apply_note_contact(sg_store *st, const char *region, const char *error, sg_err *err);

/* Operator actions on a region's held changes, oldest first. retry re-applies them as one
 * batch (moving the cursor on success); discard marks them discarded and moves the cursor past
 * them, so the region's later changes flow again. *out_n is the number of changes affected. */
int sg_apply_quarantine_retry(uint32_t *out_n, sg_store *st, const char *region, sg_err *err);
int sg_apply_quarantine_discard(uint32_t *out_n, sg_store *st, const char *region, sg_err *err);

/* Lists quarantined changes (region and state may be NULL for all), oldest first. */
int sg_apply_quarantine_list(json_t **out, sg_store *st, const char *region, const char *state,
                             int limit, sg_err *err);

/* Region side: appends the own-origin changes with seq > after to enc, at most max_changes
 * changes and about max_bytes bytes; *out_last is the last seq added (after, when none). */
int sg_outbox_read(uint64_t *out_last, sg_store *st, uint64_t after, uint32_t max_changes,
                   size_t max_bytes, sg_batch_enc *enc, sg_err *err);
/* The oldest seq still in the change log (0 when the log is empty). */
int64_t sg_outbox_oldest(sg_store *st);
/* Records the hub's acknowledgement: it has everything up to seq, and (as a WELCOME says)
 * nothing after it, so seq may be lower than before. */
int sg_outbox_acked(sg_store *st, uint64_t seq, sg_err *err);
int64_t sg_outbox_acked_seq(sg_store *st);
/* Deletes acknowledged log entries older than retention_ms; *out_n is how many. */
int sg_outbox_prune(int64_t *out_n, sg_store *st, int64_t retention_ms, sg_err *err);

/* Where a region's snapshot reading stands (PROTOCOL.md 7.4). Zero it to start. */
typedef struct sg_snapshot_pos {
    size_t table;              /* index into sg_rectypes */
    char after[SG_ID_MAX + 1]; /* last id sent from that table ("" for none) */
    uint64_t synth;            /* synthetic seq of the last row sent */
} sg_snapshot_pos;

/* Lists quarantined changes (region and state may be NULL for all), oldest first. */
int sg_apply_quarantine_list(json_t **out, sg_store *st, const char *region, const char *state,
                             int limit, sg_err *err);

/* Region side: appends the next rows that region owns, table by table in dependency order, as
 * insert changes to enc (at most max_changes and about max_bytes). *out_done is 1 once every
 * table is exhausted. Run every call of one snapshot inside one read transaction on a reader
 * connection, so the snapshot is consistent. */
int sg_outbox_snapshot_read(int *out_done, sg_store *rd, const char *region, sg_snapshot_pos *pos,
                            uint32_t max_changes, size_t max_bytes, sg_batch_enc *enc, sg_err *err);

/* Region side of a restore from the hub (PROTOCOL.md 7.4, "Restore"). All of it runs in one
 * transaction on the node's writer connection with capture off, and the store is held
 * (sg_store_hold) so no other write slips into it:
 * - begin opens it; with wipe, it first deletes every record and the whole change log (an
 *   operator forced a restore over a database that had records);
 * - apply adds the hub's rows of one BATCH (inserts of region's own rows; a row already there
 *   is replaced), *out_rows counting them;
 * - end sets the log so the next change is cursor + 1, records cursor as acknowledged, moves the
 *   clock past hlc, commits and releases; abort rolls everything back and releases. */
int sg_restore_begin(sg_store *st, int wipe, sg_err *err);
int sg_restore_apply(uint64_t *out_rows, sg_store *st, const char *region, const sg_batch *b,
                     sg_err *err);
int sg_restore_end(sg_store *st, uint64_t cursor, uint64_t hlc, sg_err *err);
void sg_restore_abort(sg_store *st);
/* Rows in all record tables (a restore over a database that has some must be forced). */
int64_t sg_store_records(sg_store *st);

#endif
