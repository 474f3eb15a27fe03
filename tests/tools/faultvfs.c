/*
 * faultvfs.c - the fault-injecting SQLite VFS of faultvfs.h.
 *
 * Each file the shim opens is a fvfs_file: its own header, then the real VFS's file object
 * (szOsFile is the sum). Every file with the same path shares one frec, which outlives the
 * file's close: it holds the size at the last sync and an undo log (offset, pre-image) of every
 * write and truncation since, which fvfs_revert plays back newest first.
 *
 * Invariant: a frec's undo log is empty right after a successful xSync of any handle of its path.
 */
#include "faultvfs.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

typedef struct undo {
    sqlite3_int64 off;  /* where the bytes were */
    int len;            /* how many */
    unsigned char *pre; /* their content before the write (owned) */
} undo;

typedef struct frec {
    char *path;                /* full path (owned) */
    sqlite3_int64 synced_size; /* file size at the last sync (or first open) */
    undo *log;                 /* writes since that sync, oldest first (owned) */
    size_t nlog, caplog;
    int nopen;         /* handles open */
    struct frec *next; /* the shim's list */
} frec;

struct fvfs {
    sqlite3_vfs vfs;     /* the shim, registered; pAppData points back here */
    sqlite3_vfs *real;   /* the VFS underneath */
    frec *files;         /* every path seen since the last reset (owned) */
    long ops;            /* writes, syncs and truncations counted */
    long fail_from;      /* first operation to fail, 0 for none */
    unsigned fail_kinds; /* FVFS_* kinds that fail from fail_from on */
    int write_code;      /* what a failing write returns */
    long cut_after;      /* power cut after this operation, 0 for none */
    long refused;        /* operations refused */
    int open_files;      /* shim files open */
};

typedef struct fvfs_file {
    sqlite3_file base;  /* pMethods: one of the io_methods tables below */
    fvfs *v;            /* the shim */
    frec *rec;          /* history of this path (NULL for files without a name) */
    sqlite3_file *real; /* the real file object, right after this struct */
} fvfs_file;

/* 1: the operation now being counted (or a delete) must fail, with *code set. */
static int refuse(fvfs *v, unsigned kind, int *code)
{
    int after_cut = v->cut_after > 0 && v->ops > v->cut_after;
    if (after_cut || (v->fail_from > 0 && v->ops >= v->fail_from && (v->fail_kinds & kind))) {
        v->refused++;
        *code = kind == FVFS_WRITE   ? (after_cut ? SQLITE_IOERR_WRITE : v->write_code)
                : kind == FVFS_SYNC  ? SQLITE_IOERR_FSYNC
                : kind == FVFS_TRUNC ? SQLITE_IOERR_TRUNCATE
                                     : SQLITE_IOERR_DELETE;
        return 1;
    }
    return 0;
}

static int log_add(frec *r, sqlite3_int64 off, int len, unsigned char *pre)
{
    if (r->nlog == r->caplog) {
        size_t cap = r->caplog ? r->caplog * 2 : 16;
        undo *p = realloc(r->log, cap * sizeof(*p));
        if (p == NULL)
            return -1;
        r->log = p;
        r->caplog = cap;
    }
    r->log[r->nlog].off = off;
    r->log[r->nlog].len = len;
    r->log[r->nlog].pre = pre;
    r->nlog++;
    return 0;
}

static void log_clear(frec *r)
{
    for (size_t i = 0; i < r->nlog; i++)
        free(r->log[i].pre);
    r->nlog = 0;
}

/* Remembers the len bytes at off of f before they change. */
static int remember(fvfs_file *f, sqlite3_int64 off, int len)
{
    unsigned char *pre;
    int rc;

    if (f->rec == NULL || len <= 0)
        return SQLITE_OK;
    pre = malloc((size_t)len);
    if (pre == NULL)
        return SQLITE_NOMEM;
    rc = f->real->pMethods->xRead(f->real, pre, len, off);
    if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ) {
        free(pre);
        return rc;
    }
    if (log_add(f->rec, off, len, pre) < 0) {
        free(pre);
        return SQLITE_NOMEM;
    }
    return SQLITE_OK;
}

/* ---- io methods ---- */

static int f_close(sqlite3_file *pf)
{
    fvfs_file *f = (fvfs_file *)pf;
    int rc = f->real->pMethods->xClose(f->real);
    if (f->rec != NULL)
        f->rec->nopen--;
    f->v->open_files--;
    return rc;
}

static int f_read(sqlite3_file *pf, void *buf, int amt, sqlite3_int64 off)
{
    fvfs_file *f = (fvfs_file *)pf;
    return f->real->pMethods->xRead(f->real, buf, amt, off);
}

static int f_write(sqlite3_file *pf, const void *buf, int amt, sqlite3_int64 off)
{
    fvfs_file *f = (fvfs_file *)pf;
    int rc, code;

    f->v->ops++;
    if (refuse(f->v, FVFS_WRITE, &code))
        return code;
    rc = remember(f, off, amt);
    if (rc != SQLITE_OK)
        return rc;
    return f->real->pMethods->xWrite(f->real, buf, amt, off);
}

static int f_truncate(sqlite3_file *pf, sqlite3_int64 size)
{
    fvfs_file *f = (fvfs_file *)pf;
    sqlite3_int64 cur = 0;
    int rc, code;

    f->v->ops++;
    if (refuse(f->v, FVFS_TRUNC, &code))
        return code;
    rc = f->real->pMethods->xFileSize(f->real, &cur);
    if (rc != SQLITE_OK)
        return rc;
    if (cur > size && cur - size <= 0x7fffffff) {
        rc = remember(f, size, (int)(cur - size));
        if (rc != SQLITE_OK)
            return rc;
    }
    return f->real->pMethods->xTruncate(f->real, size);
}

static int f_sync(sqlite3_file *pf, int flags)
{
    fvfs_file *f = (fvfs_file *)pf;
    int rc, code;

    f->v->ops++;
    if (refuse(f->v, FVFS_SYNC, &code))
        return code;
    rc = f->real->pMethods->xSync(f->real, flags);
    if (rc == SQLITE_OK && f->rec != NULL) {
        sqlite3_int64 size = 0;
        if (f->real->pMethods->xFileSize(f->real, &size) == SQLITE_OK) {
            log_clear(f->rec);
            f->rec->synced_size = size;
        }
    }
    return rc;
}

static int f_file_size(sqlite3_file *pf, sqlite3_int64 *out)
{
    fvfs_file *f = (fvfs_file *)pf;
    return f->real->pMethods->xFileSize(f->real, out);
}

static int f_lock(sqlite3_file *pf, int lock)
{
    fvfs_file *f = (fvfs_file *)pf;
    return f->real->pMethods->xLock(f->real, lock);
}

static int f_unlock(sqlite3_file *pf, int lock)
{
    fvfs_file *f = (fvfs_file *)pf;
    return f->real->pMethods->xUnlock(f->real, lock);
}

static int f_check_reserved(sqlite3_file *pf, int *out)
{
    fvfs_file *f = (fvfs_file *)pf;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int f_file_control(sqlite3_file *pf, int op, void *arg)
{
    fvfs_file *f = (fvfs_file *)pf;
    return f->real->pMethods->xFileControl(f->real, op, arg);
}

static int f_sector_size(sqlite3_file *pf)
{
    fvfs_file *f = (fvfs_file *)pf;
    return f->real->pMethods->xSectorSize(f->real);
}

static int f_device_chars(sqlite3_file *pf)
{
    fvfs_file *f = (fvfs_file *)pf;
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int f_shm_map(sqlite3_file *pf, int pg, int pgsz, int extend, void volatile **pp)
{
    fvfs_file *f = (fvfs_file *)pf;
    return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp);
}

static int f_shm_lock(sqlite3_file *pf, int offset, int n, int flags)
{
    fvfs_file *f = (fvfs_file *)pf;
    return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void f_shm_barrier(sqlite3_file *pf)
{
    fvfs_file *f = (fvfs_file *)pf;
    f->real->pMethods->xShmBarrier(f->real);
}

static int f_shm_unmap(sqlite3_file *pf, int delete_flag)
{
    fvfs_file *f = (fvfs_file *)pf;
    return f->real->pMethods->xShmUnmap(f->real, delete_flag);
}

static int f_fetch(sqlite3_file *pf, sqlite3_int64 off, int amt, void **pp)
{
    fvfs_file *f = (fvfs_file *)pf;
    return f->real->pMethods->xFetch(f->real, off, amt, pp);
}

static int f_unfetch(sqlite3_file *pf, sqlite3_int64 off, void *p)
{
    fvfs_file *f = (fvfs_file *)pf;
    return f->real->pMethods->xUnfetch(f->real, off, p);
}

/* One table per io_methods version, so the shim never claims a method the real file lacks. */
#define FVFS_METHODS(version)                                                                      \
    {                                                                                              \
        version, f_close, f_read, f_write, f_truncate, f_sync, f_file_size, f_lock, f_unlock,      \
            f_check_reserved, f_file_control, f_sector_size, f_device_chars, f_shm_map,            \
            f_shm_lock, f_shm_barrier, f_shm_unmap, f_fetch, f_unfetch                             \
    }
static const sqlite3_io_methods methods_v1 = FVFS_METHODS(1);
static const sqlite3_io_methods methods_v2 = FVFS_METHODS(2);
static const sqlite3_io_methods methods_v3 = FVFS_METHODS(3);

/* ---- VFS methods ---- */

static frec *frec_get(fvfs *v, const char *path)
{
    frec *r;
    for (r = v->files; r != NULL; r = r->next)
        if (strcmp(r->path, path) == 0)
            return r;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->path = strdup(path);
    if (r->path == NULL) {
        free(r);
        return NULL;
    }
    r->synced_size = -1; /* set at the first open */
    r->next = v->files;
    v->files = r;
    return r;
}

static int v_open(sqlite3_vfs *pv, sqlite3_filename name, sqlite3_file *pf, int flags,
                  int *out_flags)
{
    fvfs *v = pv->pAppData;
    fvfs_file *f = (fvfs_file *)pf;
    int rc;

    memset(f, 0, sizeof(*f));
    f->v = v;
    f->real = (sqlite3_file *)(f + 1);
    if (name != NULL) {
        f->rec = frec_get(v, name);
        if (f->rec == NULL)
            return SQLITE_NOMEM;
    }
    rc = v->real->xOpen(v->real, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK || f->real->pMethods == NULL) {
        f->base.pMethods = NULL;
        return rc;
    }
    if (f->rec != NULL) {
        if (f->rec->synced_size < 0) {
            sqlite3_int64 size = 0;
            f->real->pMethods->xFileSize(f->real, &size);
            f->rec->synced_size = size;
        }
        f->rec->nopen++;
    }
    v->open_files++;
    switch (f->real->pMethods->iVersion) {
    case 1:
        f->base.pMethods = &methods_v1;
        break;
    case 2:
        f->base.pMethods = &methods_v2;
        break;
    default:
        f->base.pMethods = &methods_v3;
        break;
    }
    return SQLITE_OK;
}

static int v_delete(sqlite3_vfs *pv, const char *name, int sync_dir)
{
    fvfs *v = pv->pAppData;
    int code;
    if (v->cut_after > 0 && v->ops > v->cut_after && refuse(v, 0, &code))
        return code;
    return v->real->xDelete(v->real, name, sync_dir);
}

static int v_access(sqlite3_vfs *pv, const char *name, int flags, int *out)
{
    fvfs *v = pv->pAppData;
    return v->real->xAccess(v->real, name, flags, out);
}

static int v_full_pathname(sqlite3_vfs *pv, const char *name, int n, char *out)
{
    fvfs *v = pv->pAppData;
    return v->real->xFullPathname(v->real, name, n, out);
}

static void *v_dlopen(sqlite3_vfs *pv, const char *name)
{
    fvfs *v = pv->pAppData;
    return v->real->xDlOpen(v->real, name);
}

static void v_dlerror(sqlite3_vfs *pv, int n, char *out)
{
    fvfs *v = pv->pAppData;
    v->real->xDlError(v->real, n, out);
}

static void (*v_dlsym(sqlite3_vfs *pv, void *h, const char *sym))(void)
{
    fvfs *v = pv->pAppData;
    return v->real->xDlSym(v->real, h, sym);
}

static void v_dlclose(sqlite3_vfs *pv, void *h)
{
    fvfs *v = pv->pAppData;
    v->real->xDlClose(v->real, h);
}

static int v_randomness(sqlite3_vfs *pv, int n, char *out)
{
    fvfs *v = pv->pAppData;
    return v->real->xRandomness(v->real, n, out);
}

static int v_sleep(sqlite3_vfs *pv, int us)
{
    fvfs *v = pv->pAppData;
    return v->real->xSleep(v->real, us);
}

static int v_current_time(sqlite3_vfs *pv, double *out)
{
    fvfs *v = pv->pAppData;
    return v->real->xCurrentTime(v->real, out);
}

static int v_last_error(sqlite3_vfs *pv, int n, char *out)
{
    fvfs *v = pv->pAppData;
    return v->real->xGetLastError(v->real, n, out);
}

static int v_current_time64(sqlite3_vfs *pv, sqlite3_int64 *out)
{
    fvfs *v = pv->pAppData;
    return v->real->xCurrentTimeInt64(v->real, out);
}

static int v_set_syscall(sqlite3_vfs *pv, const char *name, sqlite3_syscall_ptr p)
{
    fvfs *v = pv->pAppData;
    return v->real->xSetSystemCall(v->real, name, p);
}

static sqlite3_syscall_ptr v_get_syscall(sqlite3_vfs *pv, const char *name)
{
    fvfs *v = pv->pAppData;
    return v->real->xGetSystemCall(v->real, name);
}

static const char *v_next_syscall(sqlite3_vfs *pv, const char *name)
{
    fvfs *v = pv->pAppData;
    return v->real->xNextSystemCall(v->real, name);
}

/* ---- the interface ---- */

int fvfs_install(fvfs **out)
{
    fvfs *v;
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);

    *out = NULL;
    if (real == NULL)
        return -1;
    v = calloc(1, sizeof(*v));
    if (v == NULL)
        return -1;
    v->real = real;
    v->vfs.iVersion = real->iVersion;
    v->vfs.szOsFile = (int)sizeof(fvfs_file) + real->szOsFile;
    v->vfs.mxPathname = real->mxPathname;
    v->vfs.zName = "faultvfs";
    v->vfs.pAppData = v;
    v->vfs.xOpen = v_open;
    v->vfs.xDelete = v_delete;
    v->vfs.xAccess = v_access;
    v->vfs.xFullPathname = v_full_pathname;
    v->vfs.xDlOpen = real->xDlOpen ? v_dlopen : NULL;
    v->vfs.xDlError = real->xDlError ? v_dlerror : NULL;
    v->vfs.xDlSym = real->xDlSym ? v_dlsym : NULL;
    v->vfs.xDlClose = real->xDlClose ? v_dlclose : NULL;
    v->vfs.xRandomness = v_randomness;
    v->vfs.xSleep = v_sleep;
    v->vfs.xCurrentTime = v_current_time;
    v->vfs.xGetLastError = v_last_error;
    if (real->iVersion >= 2)
        v->vfs.xCurrentTimeInt64 = real->xCurrentTimeInt64 ? v_current_time64 : NULL;
    if (real->iVersion >= 3) {
        v->vfs.xSetSystemCall = real->xSetSystemCall ? v_set_syscall : NULL;
        v->vfs.xGetSystemCall = real->xGetSystemCall ? v_get_syscall : NULL;
        v->vfs.xNextSystemCall = real->xNextSystemCall ? v_next_syscall : NULL;
    }
    if (sqlite3_vfs_register(&v->vfs, 1) != SQLITE_OK) {
        free(v);
        return -1;
    }
    *out = v;
    return 0;
}

void fvfs_set_default(fvfs *v, int on)
{
    sqlite3_vfs_register(on ? &v->vfs : v->real, 1);
}

void fvfs_reset(fvfs *v)
{
    while (v->files != NULL) {
        frec *r = v->files;
        v->files = r->next;
        log_clear(r);
        free(r->log);
        free(r->path);
        free(r);
    }
    v->ops = 0;
    v->refused = 0;
    fvfs_clear(v);
}

void fvfs_uninstall(fvfs *v)
{
    if (v == NULL)
        return;
    fvfs_reset(v);
    sqlite3_vfs_register(v->real, 1);
    sqlite3_vfs_unregister(&v->vfs);
    free(v);
}

void fvfs_count_reset(fvfs *v)
{
    v->ops = 0;
    v->refused = 0;
}

long fvfs_ops(const fvfs *v)
{
    return v->ops;
}

void fvfs_fail(fvfs *v, long n, unsigned kinds, int write_code)
{
    v->fail_from = n;
    v->fail_kinds = kinds;
    v->write_code = write_code;
}

void fvfs_cut(fvfs *v, long n)
{
    v->cut_after = n;
}

long fvfs_refused(const fvfs *v)
{
    return v->refused;
}

void fvfs_clear(fvfs *v)
{
    v->fail_from = 0;
    v->fail_kinds = 0;
    v->cut_after = 0;
}

int fvfs_open_files(const fvfs *v)
{
    return v->open_files;
}

int fvfs_revert(fvfs *v, long *out_bytes)
{
    int rc = 0;

    *out_bytes = 0;
    for (frec *r = v->files; r != NULL; r = r->next) {
        int fd;
        if (r->nopen > 0)
            return -1;
        fd = open(r->path, O_RDWR);
        if (fd < 0) {
            log_clear(r);
            continue; /* deleted (before the cut): nothing to restore */
        }
        for (size_t i = r->nlog; i-- > 0;) {
            if (pwrite(fd, r->log[i].pre, (size_t)r->log[i].len, (off_t)r->log[i].off) !=
                (ssize_t)r->log[i].len)
                rc = -1;
            *out_bytes += r->log[i].len;
        }
        if (r->synced_size >= 0 && ftruncate(fd, (off_t)r->synced_size) != 0)
            rc = -1;
        close(fd);
        log_clear(r);
    }
    return rc;
}
