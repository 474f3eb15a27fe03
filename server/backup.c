/*
 * backup.c - online backup with VACUUM INTO in the thread pool; see backup.h.
 *
 * Threads: the work callback runs on a pool thread and touches only its own SQLite connection
 * and the fields it owns while running (tmp, error text, bytes); the loop thread reads them
 * only after the after-work callback cleared `running`.
 */
#include "backup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "store.h"

struct sg_backup {
    uv_work_t work;
    int running;
    int ok;
    char db[PATH_MAX];
    char dest[PATH_MAX];
    char tmp[PATH_MAX + 16];
    char started_at[32];
    char finished_at[32];
    long long bytes;
    char error[SG_ERR_MSG_MAX];
};

/* Pool thread: copy, check, fsync, rename. */
static void backup_work(uv_work_t *w)
{
    sg_backup *b = w->data;
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    struct stat st;
    int fd, rc;

    rc = sqlite3_open_v2(b->db, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(db, 10000);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "VACUUM INTO ?", -1, &stmt, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(stmt, 1, b->tmp, -1, SQLITE_STATIC);
        rc = sqlite3_step(stmt);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    if (rc != SQLITE_OK) {
        snprintf(b->error, sizeof(b->error), "copy: %s", db ? sqlite3_errmsg(db) : "no memory");
        goto fail;
    }
    sqlite3_finalize(stmt);
    stmt = NULL;
    sqlite3_close(db);
    db = NULL;

    /* The copy must be a sound database before it takes the name. */
    if (sqlite3_open_v2(b->tmp, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &stmt, NULL) != SQLITE_OK ||
        sqlite3_step(stmt) != SQLITE_ROW ||
        strcmp((const char *)sqlite3_column_text(stmt, 0), "ok") != 0) {
        snprintf(b->error, sizeof(b->error), "the copy does not check out: %s",
                 stmt && sqlite3_column_text(stmt, 0) ? (const char *)sqlite3_column_text(stmt, 0)
                                                      : sqlite3_errmsg(db));
        goto fail;
    }
    sqlite3_finalize(stmt);
    stmt = NULL;
    sqlite3_close(db);
    db = NULL;

    fd = open(b->tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0 || fstat(fd, &st) != 0) {
        snprintf(b->error, sizeof(b->error), "fsync %s: %s", b->tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto fail;
    }
    close(fd);
    /* link() rather than rename(): it fails if dest appeared meanwhile, never overwriting. */
    if (link(b->tmp, b->dest) != 0) {
        snprintf(b->error, sizeof(b->error), "%s: %s", b->dest, strerror(errno));
        goto fail;
    }
    unlink(b->tmp);
    b->bytes = (long long)st.st_size;
    b->ok = 1;
    return;
fail:
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    unlink(b->tmp);
    b->ok = 0;
}

/* Loop thread: the backup is over. */
static void backup_after(uv_work_t *w, int status)
{
    sg_backup *b = w->data;
    char q[SG_ERR_MSG_MAX];
    if (status == UV_ECANCELED) {
        b->ok = 0;
        snprintf(b->error, sizeof(b->error), "cancelled");
    }
    b->running = 0;
    sg_now_iso(b->finished_at);
    if (b->ok)
        sg_log(SG_LOG_INFO, "backup_done", "path=%s bytes=%lld", b->dest, b->bytes);
    else
        sg_log(SG_LOG_ERROR, "backup_failed", "path=%s reason=%s", b->dest,
               sg_logq(q, sizeof(q), b->error));
}

int sg_backup_start(sg_backup **io, uv_loop_t *loop, const char *db_path, const char *dest,
                    sg_err *err)
{
    sg_backup *b = *io;
    char dir[PATH_MAX];
    struct stat st;
    char *slash;

    if (b != NULL && b->running)
        return sg_err_set(err, SG_EBUSY, "a backup to %s is running", b->dest);
    if (dest == NULL || dest[0] != '/' || strlen(dest) >= sizeof(b->dest) - 1)
        return sg_err_set(err, SG_EINVAL, "path: an absolute path of a new file");
    if (lstat(dest, &st) == 0)
        return sg_err_set(err, SG_EINVAL, "%s exists: a backup never overwrites a file", dest);
    snprintf(dir, sizeof(dir), "%s", dest);
    slash = strrchr(dir, '/');
    *(slash == dir ? slash + 1 : slash) = '\0';
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK) != 0)
        return sg_err_set(err, SG_EINVAL, "%s: not a directory this node can write to", dir);
    if (b == NULL) {
        b = calloc(1, sizeof(*b));
        if (b == NULL)
            return sg_err_set(err, SG_ENOMEM, "out of memory");
        *io = b;
    }
    memset(b, 0, sizeof(*b));
    snprintf(b->db, sizeof(b->db), "%s", db_path);
    snprintf(b->dest, sizeof(b->dest), "%s", dest);
    snprintf(b->tmp, sizeof(b->tmp), "%s.partial", dest);
    unlink(b->tmp);
    sg_now_iso(b->started_at);
    b->work.data = b;
    b->running = 1;
    if (uv_queue_work(loop, &b->work, backup_work, backup_after) != 0) {
        b->running = 0;
        return sg_err_set(err, SG_EIO, "cannot start the backup");
    }
    sg_log(SG_LOG_INFO, "backup_started", "path=%s", dest);
    return 0;
}

json_t *sg_backup_status(const sg_backup *b)
{
    if (b == NULL)
        return json_pack("{s:s}", "state", "none");
    if (b->running)
        return json_pack("{s:s, s:s, s:s}", "state", "running", "path", b->dest, "started_at",
                         b->started_at);
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:s?}", "state", b->ok ? "done" : "failed", "path",
                     b->dest, "started_at", b->started_at, "finished_at", b->finished_at, "bytes",
                     (json_int_t)b->bytes, "error", b->ok ? NULL : b->error);
}

void sg_backup_free(sg_backup *b)
{
    free(b);
}
