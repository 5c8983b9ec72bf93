/* walvfs.c - an SQLite VFS that gathers a transaction's WAL frames into one
 * write. SQLite writes each frame as two writes (its 24-byte header, then the
 * page), so a commit of N pages cost 2N system calls; on a virtual machine
 * where a system call is dear that was a quarter of the embedded service's
 * calls per job. Here the WAL file keeps consecutive writes in a buffer and
 * hands them over in one write when:
 * - the page of a commit frame (header bytes 4..7 non-zero) is in: SQLite
 *   publishes a commit only after its frames are written, so readers and
 *   the checkpointer never look past what is in the file, and an error
 *   reaches the commit's own write as it would without the buffer;
 * - the buffer is full;
 * - anything else is asked of the file (read, size, sync, truncate, close):
 *   a transaction may read back frames it spilled before its commit.
 * Only appends are gathered: a write below the end of what this WAL
 * generation appended goes straight through (after the buffer, in order).
 * Those are rewrites, e.g. of a spilled transaction's frame headers when
 * one of its pages changed again, the last of them the commit frame's
 * header with nothing after it. Nothing is held across a commit, so a
 * crash loses exactly what it would lose without the buffer: the
 * uncommitted tail. */
#include "walvfs.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#define FRAME_HDR 24
/* Below what the unix VFS hands to one write() (it truncates a larger
 * amount to its low 17 bits): 29 frames of 4 KB pages. */
#define BUF_CAP (120 * 1024)

struct walvfs {
    sqlite3_vfs vfs; /* first: SQLite hands back &vfs */
    sqlite3_vfs *base;
    char name[48];
};

typedef struct wfile {
    sqlite3_file f; /* first: SQLite's handle */
    sqlite3_file *real;
    unsigned char *buf;
    size_t len, cap;
    sqlite3_int64 off; /* file offset of buf[0] */
    sqlite3_int64 end; /* end of what this WAL generation appended */
    bool commit_page;  /* the last write was a commit frame's header */
} wfile;

#define REAL_OFFSET ((sizeof(wfile) + 7) & ~(size_t)7)

static sqlite3_vfs *base_of(sqlite3_vfs *vfs)
{
    return ((walvfs *)vfs)->base;
}

/* --- the WAL file ------------------------------------------------------ */

static int flush(wfile *w)
{
    if (w->len == 0)
        return SQLITE_OK;
    int rc = w->real->pMethods->xWrite(w->real, w->buf, (int)w->len, w->off);
    /* On failure the frames are lost with the transaction they belong to,
     * which SQLite rolls back on the error. */
    w->len = 0;
    return rc;
}

static bool is_commit_header(const void *data, int n)
{
    const unsigned char *p = data;
    return n == FRAME_HDR && (p[4] | p[5] | p[6] | p[7]) != 0;
}

static int w_write(sqlite3_file *f, const void *data, int n, sqlite3_int64 off)
{
    wfile *w = (wfile *)f;
    bool commit = w->commit_page;
    w->commit_page = is_commit_header(data, n);
    if (off == 0)
        w->end = 0; /* the WAL header: the log starts over */
    if (!w->buf && n < BUF_CAP && (w->buf = malloc(BUF_CAP)))
        w->cap = BUF_CAP;
    if (off != w->end || (size_t)n > w->cap) {
        /* A rewrite (or no buffer): in order, straight to the file. */
        int rc = flush(w);
        if (rc == SQLITE_OK)
            rc = w->real->pMethods->xWrite(w->real, data, n, off);
        if (rc == SQLITE_OK && off + n > w->end)
            w->end = off + n;
        return rc;
    }
    if (w->len + (size_t)n > w->cap) {
        int rc = flush(w);
        if (rc != SQLITE_OK)
            return rc;
    }
    if (w->len == 0)
        w->off = off;
    memcpy(w->buf + w->len, data, (size_t)n);
    w->len += (size_t)n;
    w->end = off + n;
    return commit ? flush(w) : SQLITE_OK;
}

static int w_close(sqlite3_file *f)
{
    wfile *w = (wfile *)f;
    int rc = flush(w);
    free(w->buf);
    w->buf = NULL;
    w->cap = 0;
    int rc2 = w->real->pMethods->xClose(w->real);
    return rc != SQLITE_OK ? rc : rc2;
}

static int w_read(sqlite3_file *f, void *data, int n, sqlite3_int64 off)
{
    wfile *w = (wfile *)f;
    int rc = flush(w);
    return rc != SQLITE_OK ? rc : w->real->pMethods->xRead(w->real, data, n, off);
}

static int w_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    wfile *w = (wfile *)f;
    int rc = flush(w);
    if (rc != SQLITE_OK)
        return rc;
    if (size < w->end)
        w->end = size;
    return w->real->pMethods->xTruncate(w->real, size);
}

static int w_sync(sqlite3_file *f, int flags)
{
    wfile *w = (wfile *)f;
    int rc = flush(w);
    return rc != SQLITE_OK ? rc : w->real->pMethods->xSync(w->real, flags);
}

static int w_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    wfile *w = (wfile *)f;
    int rc = flush(w);
    return rc != SQLITE_OK ? rc : w->real->pMethods->xFileSize(w->real, size);
}

static int w_lock(sqlite3_file *f, int level)
{
    wfile *w = (wfile *)f;
    return w->real->pMethods->xLock(w->real, level);
}

static int w_unlock(sqlite3_file *f, int level)
{
    wfile *w = (wfile *)f;
    return w->real->pMethods->xUnlock(w->real, level);
}

static int w_check_reserved(sqlite3_file *f, int *out)
{
    wfile *w = (wfile *)f;
    return w->real->pMethods->xCheckReservedLock(w->real, out);
}

static int w_file_control(sqlite3_file *f, int op, void *arg)
{
    wfile *w = (wfile *)f;
    int rc = flush(w);
    return rc != SQLITE_OK ? rc : w->real->pMethods->xFileControl(w->real, op, arg);
}

static int w_sector_size(sqlite3_file *f)
{
    wfile *w = (wfile *)f;
    return w->real->pMethods->xSectorSize(w->real);
}

static int w_device_characteristics(sqlite3_file *f)
{
    wfile *w = (wfile *)f;
    return w->real->pMethods->xDeviceCharacteristics(w->real);
}

/* A WAL file has no shared memory or mapping of its own; these only keep
 * the method table complete for the version SQLite sees. */
static int w_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    wfile *w = (wfile *)f;
    if (w->real->pMethods->iVersion < 2 || !w->real->pMethods->xShmMap)
        return SQLITE_IOERR_SHMMAP;
    return w->real->pMethods->xShmMap(w->real, pg, pgsz, extend, pp);
}

static int w_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    wfile *w = (wfile *)f;
    if (w->real->pMethods->iVersion < 2 || !w->real->pMethods->xShmLock)
        return SQLITE_IOERR_SHMLOCK;
    return w->real->pMethods->xShmLock(w->real, offset, n, flags);
}

static void w_shm_barrier(sqlite3_file *f)
{
    wfile *w = (wfile *)f;
    if (w->real->pMethods->iVersion >= 2 && w->real->pMethods->xShmBarrier)
        w->real->pMethods->xShmBarrier(w->real);
}

static int w_shm_unmap(sqlite3_file *f, int del)
{
    wfile *w = (wfile *)f;
    if (w->real->pMethods->iVersion < 2 || !w->real->pMethods->xShmUnmap)
        return SQLITE_OK;
    return w->real->pMethods->xShmUnmap(w->real, del);
}

static int w_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    wfile *w = (wfile *)f;
    *pp = NULL; /* "no mapping" is always an allowed answer */
    int rc = flush(w);
    if (rc != SQLITE_OK || w->real->pMethods->iVersion < 3 || !w->real->pMethods->xFetch)
        return rc;
    return w->real->pMethods->xFetch(w->real, off, n, pp);
}

static int w_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    wfile *w = (wfile *)f;
    if (w->real->pMethods->iVersion < 3 || !w->real->pMethods->xUnfetch)
        return SQLITE_OK;
    return w->real->pMethods->xUnfetch(w->real, off, p);
}

static const sqlite3_io_methods WAL_METHODS = {
    .iVersion = 3,
    .xClose = w_close,
    .xRead = w_read,
    .xWrite = w_write,
    .xTruncate = w_truncate,
    .xSync = w_sync,
    .xFileSize = w_file_size,
    .xLock = w_lock,
    .xUnlock = w_unlock,
    .xCheckReservedLock = w_check_reserved,
    .xFileControl = w_file_control,
    .xSectorSize = w_sector_size,
    .xDeviceCharacteristics = w_device_characteristics,
    .xShmMap = w_shm_map,
    .xShmLock = w_shm_lock,
    .xShmBarrier = w_shm_barrier,
    .xShmUnmap = w_shm_unmap,
    .xFetch = w_fetch,
    .xUnfetch = w_unfetch,
};

/* --- the VFS: WAL files wrapped, everything else handed down ------------ */

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    sqlite3_vfs *base = base_of(vfs);
    /* Other files are the base's own; they just sit in a larger slot. */
    if (!(flags & SQLITE_OPEN_WAL))
        return base->xOpen(base, name, f, flags, out_flags);
    wfile *w = (wfile *)f;
    memset(w, 0, sizeof *w);
    w->real = (sqlite3_file *)((char *)f + REAL_OFFSET);
    int rc = base->xOpen(base, name, w->real, flags, out_flags);
    /* SQLite closes a file whose open set pMethods, even a failed one. */
    w->f.pMethods = w->real->pMethods ? &WAL_METHODS : NULL;
    return rc;
}

static int v_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    return base_of(vfs)->xDelete(base_of(vfs), name, sync_dir);
}

static int v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    return base_of(vfs)->xAccess(base_of(vfs), name, flags, out);
}

static int v_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    return base_of(vfs)->xFullPathname(base_of(vfs), name, n, out);
}

static void *v_dl_open(sqlite3_vfs *vfs, const char *name)
{
    return base_of(vfs)->xDlOpen(base_of(vfs), name);
}

static void v_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
    base_of(vfs)->xDlError(base_of(vfs), n, msg);
}

static void (*v_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
    return base_of(vfs)->xDlSym(base_of(vfs), h, sym);
}

static void v_dl_close(sqlite3_vfs *vfs, void *h)
{
    base_of(vfs)->xDlClose(base_of(vfs), h);
}

static int v_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    return base_of(vfs)->xRandomness(base_of(vfs), n, out);
}

static int v_sleep(sqlite3_vfs *vfs, int us)
{
    return base_of(vfs)->xSleep(base_of(vfs), us);
}

static int v_current_time(sqlite3_vfs *vfs, double *out)
{
    return base_of(vfs)->xCurrentTime(base_of(vfs), out);
}

static int v_last_error(sqlite3_vfs *vfs, int n, char *msg)
{
    sqlite3_vfs *b = base_of(vfs);
    return b->xGetLastError ? b->xGetLastError(b, n, msg) : 0;
}

static int v_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    sqlite3_vfs *b = base_of(vfs);
    if (b->iVersion >= 2 && b->xCurrentTimeInt64)
        return b->xCurrentTimeInt64(b, out);
    double d = 0;
    int rc = b->xCurrentTime(b, &d);
    *out = (sqlite3_int64)(d * 86400000.0);
    return rc;
}

walvfs *walvfs_new(const char *base_name, cs_error *err)
{
    sqlite3_vfs *base = sqlite3_vfs_find(base_name);
    if (!base) {
        cs_fail(err, "data_dir", "SQLite has no VFS named %s", base_name ? base_name : "(default)");
        return NULL;
    }
    walvfs *v = calloc(1, sizeof *v);
    if (!v) {
        cs_fail(err, "data_dir", "out of memory");
        return NULL;
    }
    v->base = base;
    snprintf(v->name, sizeof v->name, "cs-wal-%p", (void *)v);
    v->vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)REAL_OFFSET + base->szOsFile,
        .mxPathname = base->mxPathname,
        .zName = v->name,
        .pAppData = v,
        .xOpen = v_open,
        .xDelete = v_delete,
        .xAccess = v_access,
        .xFullPathname = v_full_pathname,
        .xDlOpen = v_dl_open,
        .xDlError = v_dl_error,
        .xDlSym = v_dl_sym,
        .xDlClose = v_dl_close,
        .xRandomness = v_randomness,
        .xSleep = v_sleep,
        .xCurrentTime = v_current_time,
        .xGetLastError = v_last_error,
        .xCurrentTimeInt64 = v_current_time_int64,
    };
    int rc = sqlite3_vfs_register(&v->vfs, 0);
    if (rc != SQLITE_OK) {
        cs_fail(err, "data_dir", "cannot register a VFS: %s", sqlite3_errstr(rc));
        free(v);
        return NULL;
    }
    return v;
}

const char *walvfs_name(const walvfs *v)
{
    return v ? v->name : NULL;
}

void walvfs_free(walvfs *v)
{
    if (!v)
        return;
    (void)sqlite3_vfs_unregister(&v->vfs);
    free(v);
}
