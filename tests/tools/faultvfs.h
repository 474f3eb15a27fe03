/*
 * faultvfs.h - a fault-injecting SQLite VFS for tests (issue 7): a shim over the default VFS
 * ("unix") that forwards every method, counts the operations that change files (xWrite, xSync,
 * xTruncate) and, by those counts, can
 * - fail them: from the Nth on, every operation of the chosen kinds fails with the chosen code
 *   (SQLITE_IOERR_WRITE or SQLITE_FULL for writes, SQLITE_IOERR_FSYNC for syncs,
 *   SQLITE_IOERR_TRUNCATE for truncations) until fvfs_clear;
 * - cut the power after the Nth: that one completes, every later write, sync, truncate and
 *   delete fails. Each file's bytes overwritten since its last xSync (their pre-image) and its
 *   size at that sync are remembered, so once the database is closed fvfs_revert puts every file
 *   back as it was at its last sync: what a disk that loses its write cache would show.
 * Not modelled: directory entries (a created or deleted file stays so), torn sectors (a write
 * is lost whole or kept whole), the -shm file (SQLite rebuilds the WAL index from the WAL).
 *
 * Use: fvfs_install registers the shim as the default VFS, so a store that opens its database
 * with sqlite3_open_v2(..., NULL) goes through it. One shim per process; single-threaded.
 */
#ifndef SANGAM_TEST_FAULTVFS_H
#define SANGAM_TEST_FAULTVFS_H

typedef struct fvfs fvfs;

enum {
    FVFS_WRITE = 1 << 0, /* xWrite */
    FVFS_SYNC = 1 << 1,  /* xSync */
    FVFS_TRUNC = 1 << 2, /* xTruncate */
};

/* Registers the shim over the current default VFS and makes it the default. */
int fvfs_install(fvfs **out);
/* Makes the real VFS the default again and frees the shim. No file may be open. */
void fvfs_uninstall(fvfs *v);
/* on = 1: the shim is the default VFS; 0: the real one is (to reopen "with the normal VFS"). */
void fvfs_set_default(fvfs *v, int on);

/* Forgets every file's history and the counters, and stops any fault. No file may be open. */
void fvfs_reset(fvfs *v);
/* Restarts the operation count at 0 (faults are set relative to it). */
void fvfs_count_reset(fvfs *v);
/* Write, sync and truncate operations counted since the last reset. */
long fvfs_ops(const fvfs *v);

/* From operation n (1-based) on, operations of kinds fail: writes with write_code, syncs with
 * SQLITE_IOERR_FSYNC, truncations with SQLITE_IOERR_TRUNCATE. */
void fvfs_fail(fvfs *v, long n, unsigned kinds, int write_code);
/* Power cut after operation n: every later write, sync, truncate and delete fails. */
void fvfs_cut(fvfs *v, long n);
/* Operations refused so far by a fault or after a cut. */
long fvfs_refused(const fvfs *v);
/* Stops failing (a fault or a cut); the history of unsynced writes is kept. */
void fvfs_clear(fvfs *v);

/* Files of the shim open right now. */
int fvfs_open_files(const fvfs *v);
/* Puts every file the shim has seen back to its state at its last sync (or at its first open,
 * if never synced since). Call with every file closed. *out_bytes: bytes of pre-image restored.
 * Returns 0 or -1 (a file could not be restored). */
int fvfs_revert(fvfs *v, long *out_bytes);

#endif
