/*
 * backup.h - an online backup of the node's database to a file, without stopping the node.
 *
 * The copy is `VACUUM INTO` on a connection of its own in libuv's thread pool: it reads one
 * consistent snapshot (WAL readers never block the writer), so replication and the API go on
 * while it runs and the file holds the database as of one instant. The file is written under a
 * temporary name, checked (PRAGMA quick_check), fsynced and only then renamed into place: a
 * backup that exists is a whole, usable database. One backup runs at a time.
 *
 * Restoring is copying the file over the database path while the node is stopped; a hub
 * restored from an older backup is told the regions' missing changes again by the regions
 * themselves (they resend everything after the hub's cursor).
 */
#ifndef SANGAM_BACKUP_H
#define SANGAM_BACKUP_H

#include <jansson.h>
#include <uv.h>

#include "sangam/error.h"

typedef struct sg_backup sg_backup;

/* Starts a backup of the database db_path to dest (an absolute path that must not exist, in an
 * existing directory). *io is created on first use and reused; SG_EBUSY while one runs,
 * SG_EINVAL for a bad destination (with the reason). */
int sg_backup_start(sg_backup **io, uv_loop_t *loop, const char *db_path, const char *dest,
                    sg_err *err);
/* {"state": "running" | "done" | "failed", "path", "started_at", "finished_at", "bytes",
 *  "error"}, or {"state": "none"}. */
json_t *sg_backup_status(const sg_backup *b);
/* Frees b (NULL-safe); must not be running (the loop has ended or the backup finished). */
void sg_backup_free(sg_backup *b);

#endif
