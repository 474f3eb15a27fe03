/*
 * uplink.h - a region's replication to its hub (PROTOCOL.md 7.4, region side).
 *
 * The uplink dials the hub, says HELLO, resumes after the cursor the hub's WELCOME names and
 * streams the change log in bounded batches with a window of batches in flight. It wakes when
 * this process commits (sg_uplink_notify), when another process writes the database (an
 * inotify watch on the WAL file) and, as a safety net only, on a slow timer. It never gives up:
 * after any failure it reconnects with exponential backoff and full jitter. It prunes log entries
 * the hub acknowledged once they are older than the retention window.
 */
#ifndef SANGAM_UPLINK_H
#define SANGAM_UPLINK_H

#include <jansson.h>
#include <uv.h>

#include "config.h"
#include "store.h"

#define SG_UPLINK_BACKOFF_MIN_MS 1000 /* first reconnect delay; doubles to [replication] */
                                      /* reconnect_max (default 60 s) */
#define SG_UPLINK_POLL_MS 5000        /* fallback check for writes the watch missed */
#define SG_UPLINK_PRUNE_MS                                                                         \
    (60 * 1000) /* prune at most this often; more often for short retention */

typedef struct sg_uplink sg_uplink;

/* Starts replicating st (the node's writer connection) to cfg->hub_address. */
int sg_uplink_start(sg_uplink **out, uv_loop_t *loop, sg_store *st, const sg_config *cfg,
                    sg_err *err);
/* A local write committed: send it soon. Cheap; safe to call often. */
void sg_uplink_notify(sg_uplink *u);
/* Asks for this region's rows from the hub (a replaced machine, a lost database): at the next
 * WELCOME whose cursor is above this database's head, the hub's copy of the region's rows
 * replaces the local ones in one transaction, and the log goes on from the hub's cursor.
 * SG_ECONFLICT when the database holds records and force is 0; SG_EINVAL when connected and
 * nothing is missing; SG_EBUSY while a restore runs. Reconnects at once if waiting. */
int sg_uplink_restore(sg_uplink *u, int force, sg_err *err);
/* Says BYE, closes every handle, then calls done(arg) and frees the uplink. */
void sg_uplink_stop(sg_uplink *u, void (*done)(void *arg), void *arg);
/* {"hub", "state", "connected", "local_seq", "acked_seq", "pending", "last_error",
 *  "last_contact", "next_attempt_in_ms"} */
json_t *sg_uplink_status(sg_uplink *u);

#endif
