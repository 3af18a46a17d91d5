/*
 * test_hub_crash.c - the hub store (hub_policy.c over hub_backend_sqlite.c) against a
 * power cut and a failing disk.
 *
 * Why: hub_store.h (rule 4) promises that a call which returns SAT_OK is
 * durable - the hub sends the PushAck on it, and the tablet then forgets
 * what it pushed - and that a call which fails changed nothing.
 * test_hub_store runs on a disk that never loses a write, so it cannot see
 * a hub that does not sync (PRAGMA synchronous=OFF) or one that
 * acknowledges a push whose COMMIT failed. This test can.
 *
 * How, in the manner of SQLite's src/test6.c: a VFS shim, registered as
 * SQLite's default so that hub_store_open(path) uses it unchanged,
 * wraps the real default VFS. Writes (and truncates) to a database, WAL or
 * rollback journal stay in memory, in order, until that file's xSync, as
 * in an OS page cache; reads and sizes see them. A power cut drops every
 * write, sync, truncate and delete from then on; once the hub is closed,
 * the unsynced writes go (or, in the torn sweep, a seeded random subset of
 * them reaches the disk, as a disk that reorders writes leaves it), and so
 * does the -shm file, the way memory does.
 *
 * A scripted hub workload - devices in two teams, pushes from three of
 * them, pulls, an admin tool's WAL checkpoint, a patient's reassignment, a
 * hub restart, a revocation - runs once to count its writes, syncs,
 * truncates and deletes; then, from an empty directory each time, once per
 * operation with the power cut there (clean and torn), and once per write
 * and per sync with that one failing (SQLITE_IOERR_WRITE, _FSYNC) and the
 * power cut after the workload. After each run the hub must reopen and
 * pass PRAGMA integrity_check; every call that returned SAT_OK must have
 * held; a push that failed or was cut short is there whole or not at all,
 * and no change is there twice.
 *
 * Deterministic: fixed ids, stamps and seeds, no clock, and SQLite's own
 * randomness (WAL salts) comes from the shim's seeded generator, reseeded
 * for every run. HUB_CRASH_ONLY=<sweep>:<n> (sweep: cut, torn, write, sync)
 * replays one run of a sweep; a failure names its own.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "hub_store.h"

/* ==== the crash VFS ======================================================= */

#define CRASHVFS_NAME "satchel-crash"
/* Database, WAL and journal files with state at once (one hub: three). */
#define CRASHVFS_FILES_MAX 16
/* Unsynced writes and truncates one file may hold; the workload's largest
 * stretch without a sync (everything, with synchronous=OFF) is a few
 * hundred. Past it the shim fails the write and the test fails. */
#define CRASHVFS_PENDING_OPS_MAX 8192
#define CRASHVFS_PATH_BYTES 512
#define CRASHVFS_DESC_BYTES 160
#define OPS_NEVER UINT64_MAX

enum pending_kind { PENDING_WRITE, PENDING_TRUNCATE };

struct pending {
    enum pending_kind kind;
    sqlite3_int64 off; /* a write's offset; a truncate's new size */
    int len;
    unsigned char *data;
};

/* One path's unsynced state. Shared by every handle on the path (the admin
 * tool's connection and the hub's see one page cache), and kept after the
 * last close: closing a file does not make its writes durable. */
struct crashvfs_node {
    char path[CRASHVFS_PATH_BYTES];
    int is_db;  /* the main database (for the dry run's coverage checks) */
    int listed; /* 0 once deleted: a new open of the path starts afresh */
    int refs;   /* open handles */
    struct pending *ops;
    size_t n_ops, cap_ops;
};

struct crashvfs_file {
    sqlite3_file base;
    struct crashvfs_node *node; /* NULL: straight through (temporary files) */
    sqlite3_file *real;         /* the real VFS's file, right after this */
};

#define CRASHVFS_FILE_BYTES ((sizeof(struct crashvfs_file) + 7u) & ~(size_t)7u)

enum op_type { OP_WRITE, OP_SYNC, OP_TRUNCATE, OP_DELETE };

static struct {
    sqlite3_vfs vfs;
    sqlite3_vfs *real;
    struct crashvfs_node *nodes[CRASHVFS_FILES_MAX];
    uint64_t rng;    /* SQLite's randomness (xRandomness) */
    int armed;       /* count and inject only while the workload runs */
    int powered_off; /* every write, sync, truncate and delete is dropped */
    int overflow;    /* a file went past CRASHVFS_PENDING_OPS_MAX */
    uint64_t ops, writes, syncs, truncates, deletes, db_writes;
    uint64_t cut_at;        /* index among all ops; OPS_NEVER: not during the workload */
    uint64_t fail_write_at; /* index among writes that fails */
    uint64_t fail_sync_at;  /* index among syncs that fails */
    char cut_desc[CRASHVFS_DESC_BYTES];
    char fault_desc[CRASHVFS_DESC_BYTES];
} cv;

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static void op_describe(char *out, enum op_type t, const char *path, sqlite3_int64 off, int len)
{
    switch (t) {
    case OP_WRITE:
        snprintf(out, CRASHVFS_DESC_BYTES, "write of %d bytes at %lld to %.64s", len,
                 (long long)off, base_name(path));
        break;
    case OP_SYNC:
        snprintf(out, CRASHVFS_DESC_BYTES, "sync of %.64s", base_name(path));
        break;
    case OP_TRUNCATE:
        snprintf(out, CRASHVFS_DESC_BYTES, "truncate of %.64s to %lld", base_name(path),
                 (long long)off);
        break;
    case OP_DELETE:
        snprintf(out, CRASHVFS_DESC_BYTES, "delete of %.64s", base_name(path));
        break;
    }
}

/* Every durability-relevant operation passes here first: SQLITE_OK to go
 * ahead, or the error to return. After the power cut an operation fails
 * with its IOERR rather than pretending to succeed: SQLite then stops and
 * rolls back at once instead of working on from reads that no longer match
 * what it wrote, and the call's result is ignored anyway (a real power cut
 * would never have let it return). */
static int crashvfs_op(enum op_type t, const struct crashvfs_node *node, const char *path,
                       sqlite3_int64 off, int len)
{
    static const int dropped[] = { [OP_WRITE] = SQLITE_IOERR_WRITE,
                                   [OP_SYNC] = SQLITE_IOERR_FSYNC,
                                   [OP_TRUNCATE] = SQLITE_IOERR_TRUNCATE,
                                   [OP_DELETE] = SQLITE_IOERR_DELETE };
    uint64_t nth = 0, of_kind = 0;
    if (cv.powered_off)
        return dropped[t];
    if (!cv.armed)
        return SQLITE_OK;
    nth = cv.ops++;
    switch (t) {
    case OP_WRITE:
        of_kind = cv.writes++;
        if (node && node->is_db)
            cv.db_writes++;
        break;
    case OP_SYNC:
        of_kind = cv.syncs++;
        break;
    case OP_TRUNCATE:
        cv.truncates++;
        break;
    case OP_DELETE:
        cv.deletes++;
        break;
    }
    if (nth == cv.cut_at) {
        cv.powered_off = 1;
        op_describe(cv.cut_desc, t, path, off, len);
        return dropped[t];
    }
    if ((t == OP_WRITE && of_kind == cv.fail_write_at) ||
        (t == OP_SYNC && of_kind == cv.fail_sync_at)) {
        op_describe(cv.fault_desc, t, path, off, len);
        return dropped[t];
    }
    return SQLITE_OK;
}

/* ---- per-path state ------------------------------------------------------ */

static struct crashvfs_node *node_find(const char *path)
{
    for (int i = 0; i < CRASHVFS_FILES_MAX; i++)
        if (cv.nodes[i] && strcmp(cv.nodes[i]->path, path) == 0)
            return cv.nodes[i];
    return NULL;
}

static void node_drop_ops(struct crashvfs_node *n)
{
    for (size_t i = 0; i < n->n_ops; i++)
        free(n->ops[i].data);
    n->n_ops = 0;
}

static void node_free(struct crashvfs_node *n)
{
    node_drop_ops(n);
    free(n->ops);
    free(n);
}

/* Takes a node off the table; it lives on while a handle holds it. */
static void node_unlist(struct crashvfs_node *n)
{
    for (int i = 0; i < CRASHVFS_FILES_MAX; i++)
        if (cv.nodes[i] == n)
            cv.nodes[i] = NULL;
    n->listed = 0;
    if (n->refs == 0)
        node_free(n);
}

static struct crashvfs_node *node_get(const char *path, int is_db)
{
    struct crashvfs_node *n = node_find(path);
    if (n || strlen(path) >= CRASHVFS_PATH_BYTES)
        return n;
    for (int i = 0; i < CRASHVFS_FILES_MAX; i++) {
        if (cv.nodes[i])
            continue;
        n = calloc(1, sizeof *n);
        if (!n)
            return NULL;
        memcpy(n->path, path, strlen(path) + 1);
        n->is_db = is_db;
        n->listed = 1;
        cv.nodes[i] = n;
        return n;
    }
    return NULL;
}

static int node_append(struct crashvfs_node *n, enum pending_kind kind, sqlite3_int64 off,
                       const void *data, int len)
{
    struct pending *o;
    if (n->n_ops == n->cap_ops) {
        size_t cap = n->cap_ops ? 2 * n->cap_ops : 64;
        struct pending *grown;
        if (cap > CRASHVFS_PENDING_OPS_MAX) {
            cv.overflow = 1;
            return SQLITE_IOERR_NOMEM;
        }
        grown = realloc(n->ops, cap * sizeof *grown);
        if (!grown)
            return SQLITE_IOERR_NOMEM;
        n->ops = grown;
        n->cap_ops = cap;
    }
    o = &n->ops[n->n_ops];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->off = off;
    if (kind == PENDING_WRITE) {
        o->data = malloc((size_t)len);
        if (!o->data)
            return SQLITE_IOERR_NOMEM;
        memcpy(o->data, data, (size_t)len);
        o->len = len;
    }
    n->n_ops++;
    return SQLITE_OK;
}

/* Lays the pending operations, in order, over buf (amt bytes read from the
 * real file at off, zero past its end; NULL: size only) and returns the
 * file's size as SQLite should see it, given its real size. */
static sqlite3_int64 node_overlay(const struct crashvfs_node *n, sqlite3_int64 size,
                                  unsigned char *buf, int amt, sqlite3_int64 off)
{
    sqlite3_int64 end = off + amt;
    for (size_t i = 0; i < n->n_ops; i++) {
        const struct pending *o = &n->ops[i];
        if (o->kind == PENDING_WRITE) {
            sqlite3_int64 lo = o->off > off ? o->off : off;
            sqlite3_int64 hi = o->off + o->len < end ? o->off + o->len : end;
            if (buf && lo < hi)
                memcpy(buf + (lo - off), o->data + (lo - o->off), (size_t)(hi - lo));
            if (o->off + o->len > size)
                size = o->off + o->len;
        } else {
            sqlite3_int64 lo = o->off > off ? o->off : off;
            if (buf && lo < end)
                memset(buf + (lo - off), 0, (size_t)(end - lo));
            size = o->off;
        }
    }
    return size;
}

/* ---- io methods -------------------------------------------------------- */

static int crashvfs_close(sqlite3_file *file)
{
    struct crashvfs_file *p = (struct crashvfs_file *)file;
    int rc = p->real->pMethods->xClose(p->real);
    if (p->node) {
        p->node->refs--;
        if (!p->node->listed && p->node->refs == 0)
            node_free(p->node);
        p->node = NULL;
    }
    return rc;
}

static int crashvfs_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off)
{
    struct crashvfs_file *p = (struct crashvfs_file *)file;
    sqlite3_int64 size = 0;
    int rc = p->real->pMethods->xRead(p->real, buf, amt, off);
    if (!p->node || p->node->n_ops == 0)
        return rc;
    if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ)
        return rc;
    rc = p->real->pMethods->xFileSize(p->real, &size);
    if (rc != SQLITE_OK)
        return rc;
    size = node_overlay(p->node, size, buf, amt, off);
    return off + amt > size ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
}

static int crashvfs_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off)
{
    struct crashvfs_file *p = (struct crashvfs_file *)file;
    int rc;
    if (!p->node)
        return p->real->pMethods->xWrite(p->real, buf, amt, off);
    rc = crashvfs_op(OP_WRITE, p->node, p->node->path, off, amt);
    return rc != SQLITE_OK ? rc : node_append(p->node, PENDING_WRITE, off, buf, amt);
}

/* A truncate waits for the next sync like a write, in order with the
 * writes around it (the unix VFS does not sync after one either), rather
 * than flushing what is pending and truncating at once: that would make
 * unsynced writes durable and hide a missing sync. */
static int crashvfs_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    struct crashvfs_file *p = (struct crashvfs_file *)file;
    int rc;
    if (!p->node)
        return p->real->pMethods->xTruncate(p->real, size);
    rc = crashvfs_op(OP_TRUNCATE, p->node, p->node->path, size, 0);
    return rc != SQLITE_OK ? rc : node_append(p->node, PENDING_TRUNCATE, size, NULL, 0);
}

/* Writes the pending operations to the real file, in order. The real
 * fsync is left out: the power cut is simulated and the real disk loses
 * nothing, so it would change nothing this test checks, while the sweeps'
 * thousands of fsyncs took the run from 2 s to 6 s on a fast disk. */
static int crashvfs_sync(sqlite3_file *file, int flags)
{
    struct crashvfs_file *p = (struct crashvfs_file *)file;
    struct crashvfs_node *n = p->node;
    int rc;
    if (!n)
        return p->real->pMethods->xSync(p->real, flags);
    /* A failed sync leaves the writes pending: a later sync may still
     * write them, as an OS may after a failed fsync. */
    rc = crashvfs_op(OP_SYNC, n, n->path, 0, 0);
    for (size_t i = 0; rc == SQLITE_OK && i < n->n_ops; i++) {
        const struct pending *o = &n->ops[i];
        rc = o->kind == PENDING_WRITE ? p->real->pMethods->xWrite(p->real, o->data, o->len, o->off)
                                      : p->real->pMethods->xTruncate(p->real, o->off);
    }
    if (rc == SQLITE_OK)
        node_drop_ops(n);
    return rc;
}

static int crashvfs_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    struct crashvfs_file *p = (struct crashvfs_file *)file;
    int rc = p->real->pMethods->xFileSize(p->real, size);
    if (rc == SQLITE_OK && p->node)
        *size = node_overlay(p->node, *size, NULL, 0, 0);
    return rc;
}

static int crashvfs_lock(sqlite3_file *file, int level)
{
    struct crashvfs_file *p = (struct crashvfs_file *)file;
    return p->real->pMethods->xLock(p->real, level);
}

static int crashvfs_unlock(sqlite3_file *file, int level)
{
    struct crashvfs_file *p = (struct crashvfs_file *)file;
    return p->real->pMethods->xUnlock(p->real, level);
}

static int crashvfs_check_reserved_lock(sqlite3_file *file, int *out)
{
    struct crashvfs_file *p = (struct crashvfs_file *)file;
    return p->real->pMethods->xCheckReservedLock(p->real, out);
}

static int crashvfs_file_control(sqlite3_file *file, int op, void *arg)
{
    struct crashvfs_file *p = (struct crashvfs_file *)file;
    /* A size hint may grow the real file behind the pending writes. */
    if (op == SQLITE_FCNTL_SIZE_HINT && p->node)
        return SQLITE_OK;
    return p->real->pMethods->xFileControl(p->real, op, arg);
}

static int crashvfs_sector_size(sqlite3_file *file)
{
    struct crashvfs_file *p = (struct crashvfs_file *)file;
    return p->real->pMethods->xSectorSize(p->real);
}

/* Only powersafe overwrite, which the model keeps (a write never damages
 * bytes outside it): the others (atomic, safe-append, sequential writes)
 * would let SQLite skip syncs the model needs. */
static int crashvfs_device_characteristics(sqlite3_file *file)
{
    struct crashvfs_file *p = (struct crashvfs_file *)file;
    return p->real->pMethods->xDeviceCharacteristics(p->real) &
           SQLITE_IOCAP_POWERSAFE_OVERWRITE;
}

static int crashvfs_shm_map(sqlite3_file *file, int region, int bytes, int extend,
                            void volatile **out)
{
    struct crashvfs_file *p = (struct crashvfs_file *)file;
    return p->real->pMethods->xShmMap(p->real, region, bytes, extend, out);
}

static int crashvfs_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
    struct crashvfs_file *p = (struct crashvfs_file *)file;
    return p->real->pMethods->xShmLock(p->real, offset, n, flags);
}

static void crashvfs_shm_barrier(sqlite3_file *file)
{
    struct crashvfs_file *p = (struct crashvfs_file *)file;
    p->real->pMethods->xShmBarrier(p->real);
}

static int crashvfs_shm_unmap(sqlite3_file *file, int delete_flag)
{
    struct crashvfs_file *p = (struct crashvfs_file *)file;
    return p->real->pMethods->xShmUnmap(p->real, delete_flag);
}

static const sqlite3_io_methods crashvfs_io = {
    2, /* no xFetch: a memory-mapped page would bypass the pending writes */
    crashvfs_close,
    crashvfs_read,
    crashvfs_write,
    crashvfs_truncate,
    crashvfs_sync,
    crashvfs_file_size,
    crashvfs_lock,
    crashvfs_unlock,
    crashvfs_check_reserved_lock,
    crashvfs_file_control,
    crashvfs_sector_size,
    crashvfs_device_characteristics,
    crashvfs_shm_map,
    crashvfs_shm_lock,
    crashvfs_shm_barrier,
    crashvfs_shm_unmap,
    NULL,
    NULL,
};

/* ---- vfs methods ------------------------------------------------------- */

static int crashvfs_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags,
                         int *out_flags)
{
    struct crashvfs_file *p = (struct crashvfs_file *)file;
    int rc;
    (void)vfs;
    memset(p, 0, sizeof *p);
    p->real = (sqlite3_file *)((char *)p + CRASHVFS_FILE_BYTES);
    rc = cv.real->xOpen(cv.real, name, p->real, flags, out_flags);
    if (rc != SQLITE_OK)
        return rc; /* base.pMethods stays NULL: SQLite will not close it */
    if (name && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL))) {
        p->node = node_get(name, (flags & SQLITE_OPEN_MAIN_DB) != 0);
        if (!p->node) {
            p->real->pMethods->xClose(p->real);
            return SQLITE_CANTOPEN;
        }
        p->node->refs++;
    }
    p->base.pMethods = &crashvfs_io;
    return SQLITE_OK;
}

/* A delete is durable at once (the model keeps no directory state): the
 * deleted file's writes, synced or not, are gone. SQLite deletes a WAL or
 * journal only once the database holds what it held. */
static int crashvfs_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    struct crashvfs_node *n;
    int rc = crashvfs_op(OP_DELETE, NULL, name, 0, 0);
    (void)vfs;
    if (rc != SQLITE_OK)
        return rc;
    n = node_find(name);
    if (n)
        node_unlist(n);
    return cv.real->xDelete(cv.real, name, sync_dir);
}

/* The unix VFS calls an empty file absent; pending writes may fill it. */
static int crashvfs_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    struct crashvfs_node *n = node_find(name);
    struct stat st;
    (void)vfs;
    if (flags == SQLITE_ACCESS_EXISTS && n && n->n_ops > 0 && stat(name, &st) == 0) {
        *out = node_overlay(n, (sqlite3_int64)st.st_size, NULL, 0, 0) > 0;
        return SQLITE_OK;
    }
    return cv.real->xAccess(cv.real, name, flags, out);
}

static int crashvfs_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return cv.real->xFullPathname(cv.real, name, n, out);
}

static void *crashvfs_dl_open(sqlite3_vfs *vfs, const char *name)
{
    (void)vfs;
    return cv.real->xDlOpen(cv.real, name);
}

static void crashvfs_dl_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    cv.real->xDlError(cv.real, n, out);
}

static void (*crashvfs_dl_sym(sqlite3_vfs *vfs, void *lib, const char *sym))(void)
{
    (void)vfs;
    return cv.real->xDlSym(cv.real, lib, sym);
}

static void crashvfs_dl_close(sqlite3_vfs *vfs, void *lib)
{
    (void)vfs;
    cv.real->xDlClose(cv.real, lib);
}

/* Seeded, so the WAL's salts - and with them which torn frames survive -
 * are the same at every run. */
static int crashvfs_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    for (int i = 0; i < n; i++)
        out[i] = (char)(rng_next(&cv.rng) & 0xff);
    return n;
}

static int crashvfs_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return cv.real->xSleep(cv.real, us);
}

static int crashvfs_current_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return cv.real->xCurrentTime(cv.real, out);
}

static int crashvfs_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return cv.real->xGetLastError(cv.real, n, out);
}

static int crashvfs_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return cv.real->xCurrentTimeInt64(cv.real, out);
}

static int crashvfs_register(void)
{
    cv.real = sqlite3_vfs_find(NULL);
    if (!cv.real || cv.real->iVersion < 2)
        return -1;
    memset(&cv.vfs, 0, sizeof cv.vfs);
    cv.vfs.iVersion = 2;
    cv.vfs.szOsFile = (int)CRASHVFS_FILE_BYTES + cv.real->szOsFile;
    cv.vfs.mxPathname = cv.real->mxPathname;
    cv.vfs.zName = CRASHVFS_NAME;
    cv.vfs.xOpen = crashvfs_open;
    cv.vfs.xDelete = crashvfs_delete;
    cv.vfs.xAccess = crashvfs_access;
    cv.vfs.xFullPathname = crashvfs_full_pathname;
    cv.vfs.xDlOpen = crashvfs_dl_open;
    cv.vfs.xDlError = crashvfs_dl_error;
    cv.vfs.xDlSym = crashvfs_dl_sym;
    cv.vfs.xDlClose = crashvfs_dl_close;
    cv.vfs.xRandomness = crashvfs_randomness;
    cv.vfs.xSleep = crashvfs_sleep;
    cv.vfs.xCurrentTime = crashvfs_current_time;
    cv.vfs.xGetLastError = crashvfs_get_last_error;
    cv.vfs.xCurrentTimeInt64 = crashvfs_current_time_int64;
    return sqlite3_vfs_register(&cv.vfs, 1) == SQLITE_OK ? 0 : -1;
}

/* ---- control ------------------------------------------------------------- */

/* Forgets every file's state (no file may be open), disarms, and reseeds
 * SQLite's generator: the start of a run. */
static void crashvfs_reset(uint64_t seed)
{
    for (int i = 0; i < CRASHVFS_FILES_MAX; i++) {
        if (!cv.nodes[i])
            continue;
        assert_int_equal(cv.nodes[i]->refs, 0);
        node_free(cv.nodes[i]);
        cv.nodes[i] = NULL;
    }
    cv.armed = 0;
    cv.powered_off = 0;
    cv.overflow = 0;
    cv.ops = cv.writes = cv.syncs = cv.truncates = cv.deletes = cv.db_writes = 0;
    cv.cut_at = cv.fail_write_at = cv.fail_sync_at = OPS_NEVER;
    cv.cut_desc[0] = cv.fault_desc[0] = '\0';
    cv.rng = seed;
    sqlite3_randomness(0, NULL);
}

static void crashvfs_power_cut(const char *why)
{
    if (!cv.powered_off) {
        cv.powered_off = 1;
        snprintf(cv.cut_desc, sizeof cv.cut_desc, "%s", why);
    }
}

/* Power back on, once every handle is closed: the unsynced writes are lost
 * or (torn) each reaches the disk or not, by the seed, in its order; the
 * shared memory is gone. */
static void crashvfs_power_on(int torn, uint64_t seed, const char *shm_path)
{
    uint64_t rng = seed;
    for (int i = 0; i < CRASHVFS_FILES_MAX; i++) {
        struct crashvfs_node *n = cv.nodes[i];
        int fd;
        if (!n)
            continue;
        assert_int_equal(n->refs, 0);
        fd = torn && n->n_ops > 0 ? open(n->path, O_WRONLY) : -1;
        for (size_t j = 0; fd >= 0 && j < n->n_ops; j++) {
            const struct pending *o = &n->ops[j];
            if (rng_next(&rng) & 1)
                continue;
            if (o->kind == PENDING_WRITE)
                assert_int_equal(pwrite(fd, o->data, (size_t)o->len, (off_t)o->off), o->len);
            else
                assert_int_equal(ftruncate(fd, (off_t)o->off), 0);
        }
        if (fd >= 0)
            close(fd);
        node_free(n);
        cv.nodes[i] = NULL;
    }
    unlink(shm_path);
    cv.powered_off = 0;
    cv.armed = 0;
}

/* ==== the hub workload ==================================================== */

#define ID16(b) { b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b }

#define KIND_PATIENT satchel_RecordKind_RECORD_KIND_PATIENT
#define KIND_VISIT satchel_RecordKind_RECORD_KIND_VISIT
#define KIND_OBS satchel_RecordKind_RECORD_KIND_OBSERVATION
#define KIND_NOTE satchel_RecordKind_RECORD_KIND_CARE_NOTE
#define KIND_TASK satchel_RecordKind_RECORD_KIND_TASK

enum { DEV_A, DEV_B, DEV_C, DEVICES_N };
static const uint8_t device_ids[DEVICES_N][HUB_ID_BYTES] = { ID16(0xA1), ID16(0xB2),
                                                             ID16(0xC3) };
static const char *const device_teams[DEVICES_N] = { "ward-1", "ward-1", "ward-2" };
static const char device_names[DEVICES_N] = { 'A', 'B', 'C' };
/* Fresh devices that pull everything after the power cut, one per team. */
static const uint8_t CHECK_1[HUB_ID_BYTES] = ID16(0xD1);
static const uint8_t CHECK_2[HUB_ID_BYTES] = ID16(0xD2);
static const uint8_t HUB_ORIGIN[HUB_ID_BYTES] = ID16(0x00);

enum { PAT_1, PAT_2, PAT_3, PATIENTS_N };
static const uint8_t patient_ids[PATIENTS_N][HUB_ID_BYTES] = { ID16(0x11), ID16(0x12),
                                                               ID16(0x13) };
static const char *const patient_homes[PATIENTS_N] = { "ward-1", "ward-2", "ward-1" };
#define MOVED_PATIENT PAT_1
#define MOVED_TO "ward-2"
#define FIELD_PATIENT_TEAM 8
static const satchel_Hlc move_stamp = { 5000, 0 };

static const uint8_t VISIT_1[HUB_ID_BYTES] = ID16(0x21);
static const uint8_t VISIT_4[HUB_ID_BYTES] = ID16(0x24);
static const uint8_t NOTE_1[HUB_ID_BYTES] = ID16(0x31);
static const uint8_t OBS_1[HUB_ID_BYTES] = ID16(0x41);
static const uint8_t TASK_2[HUB_ID_BYTES] = ID16(0x52);

/* Notes in A's large batch, each LONG_NOTE_BYTES of text: the batch spans
 * several WAL frames, so a cut can fall between them. */
#define LONG_NOTES 12
#define LONG_NOTE_BYTES 1500

struct batch {
    int dev;
    uint64_t first_seq;
    size_t n;
    satchel_FieldChange c[HUB_PUSH_CHANGES_MAX];
    int patient[HUB_PUSH_CHANGES_MAX]; /* the patient each change's record belongs to */
};

enum { BATCH_A1, BATCH_C1, BATCH_A2, BATCH_B1, BATCH_A3, BATCH_C2, BATCHES_N };
static struct batch batches[BATCHES_N];

enum step_op {
    DO_OPEN,
    DO_REGISTER,
    DO_PUSH,
    DO_PULL,
    DO_CHECKPOINT,
    DO_ASSIGN,
    DO_RESTART,
    DO_REVOKE
};

struct step {
    enum step_op op;
    int arg; /* a device (register, pull, revoke) or a batch (push) */
    const char *what;
};

/* Pushes come before any pull: the hub relaxes syncing for a pull and
 * restores synchronous=FULL after it, so a hub opened without it would
 * only lose what it acknowledged before its first pull. The restart is
 * followed by a push for the same reason. */
static const struct step script[] = {
    { DO_OPEN, 0, "open the hub store" },
    { DO_REGISTER, DEV_A, "register A in ward-1" },
    { DO_REGISTER, DEV_B, "register B in ward-1" },
    { DO_REGISTER, DEV_C, "register C in ward-2" },
    { DO_PUSH, BATCH_A1, "A pushes patient 1 with a visit and a note" },
    { DO_PUSH, BATCH_C1, "C pushes patient 2 with a task" },
    { DO_PUSH, BATCH_A2, "A pushes patient 3 with twelve long notes" },
    { DO_PULL, DEV_B, "B pulls" },
    { DO_PUSH, BATCH_B1, "B pushes an edit and an observation of patient 1" },
    { DO_CHECKPOINT, 0, "an admin tool checkpoints the WAL (TRUNCATE)" },
    { DO_ASSIGN, 0, "patient 1 moves to ward-2" },
    { DO_RESTART, 0, "the hub restarts" },
    { DO_PUSH, BATCH_A3, "A pushes edits to patient 3" },
    { DO_PULL, DEV_C, "C pulls (patient 1 comes in)" },
    { DO_PUSH, BATCH_C2, "C edits patient 1 and adds a visit" },
    { DO_REVOKE, DEV_B, "B is revoked" },
    { DO_PULL, DEV_A, "A pulls (patient 1 is purged)" },
};
#define STEPS_N (sizeof script / sizeof script[0])

/* A call that fails is tried again once, as a tablet would at its next
 * session: a one-off disk fault then leaves the rest of the script to run. */
#define STEP_TRIES_MAX 2
/* Changes per pull; small, so pulls page. */
#define PULL_PAGE_CHANGES 16
/* Pages one pull loop may take before the test calls it a runaway. */
#define PULL_PAGES_MAX 64

enum outcome { NOT_TRIED, FAILED, SUCCEEDED }; /* FAILED: an error, or the power went */

struct run_log {
    enum outcome step[STEPS_N];
    int ret[STEPS_N];            /* the last attempt's result */
    uint64_t acked[DEVICES_N];   /* the highest acked_seq a successful push returned */
};

static struct {
    char dir[64];
    char db[128];
    char wal[160];
    char shm[160];
    char journal[160];
    struct hub_store *hub;
    /* what the checks hold open, kept here so that a failed check's
     * leftovers are closed before the next run (fx_settle) */
    struct hub_store *check_hub;
    sqlite3 *check_db;
    uint64_t cursor[DEVICES_N];
    satchel_FieldChange pulled[PULL_PAGE_CHANGES];
    /* the dry run's counts */
    uint64_t ops, writes, syncs;
} fx;

static satchel_FieldChange *batch_add(struct batch *b, int patient,
                                      const uint8_t rec[HUB_ID_BYTES], satchel_RecordKind kind,
                                      uint32_t field, uint64_t wall)
{
    satchel_FieldChange *c = &b->c[b->n];
    assert_true(b->n < HUB_PUSH_CHANGES_MAX);
    memset(c, 0, sizeof *c);
    memcpy(c->record_id, rec, HUB_ID_BYTES);
    c->kind = kind;
    c->field = field;
    c->has_value = true;
    c->has_stamp = true;
    c->stamp.wall_ms = wall;
    memcpy(c->origin_device, device_ids[b->dev], HUB_ID_BYTES);
    c->origin_seq = b->first_seq + b->n;
    b->patient[b->n] = patient;
    b->n++;
    return c;
}

static void add_text(struct batch *b, int patient, const uint8_t rec[HUB_ID_BYTES],
                     satchel_RecordKind kind, uint32_t field, uint64_t wall, const char *text)
{
    satchel_FieldChange *c = batch_add(b, patient, rec, kind, field, wall);
    c->value.which_value = satchel_FieldValue_text_tag;
    snprintf(c->value.value.text, sizeof c->value.value.text, "%s", text);
}

static void add_int(struct batch *b, int patient, const uint8_t rec[HUB_ID_BYTES],
                    satchel_RecordKind kind, uint32_t field, uint64_t wall, int64_t v)
{
    satchel_FieldChange *c = batch_add(b, patient, rec, kind, field, wall);
    c->value.which_value = satchel_FieldValue_integer_tag;
    c->value.value.integer = v;
}

/* Field 2 of a visit, note, observation or task: its patient. */
static void add_patient_of(struct batch *b, int patient, const uint8_t rec[HUB_ID_BYTES],
                           satchel_RecordKind kind, uint64_t wall)
{
    satchel_FieldChange *c = batch_add(b, patient, rec, kind, 2, wall);
    c->value.which_value = satchel_FieldValue_blob_tag;
    c->value.value.blob.size = HUB_ID_BYTES;
    memcpy(c->value.value.blob.bytes, patient_ids[patient], HUB_ID_BYTES);
}

static void batch_start(int which, int dev, uint64_t first_seq)
{
    struct batch *b = &batches[which];
    memset(b, 0, sizeof *b);
    b->dev = dev;
    b->first_seq = first_seq;
}

static uint64_t batch_last_seq(const struct batch *b)
{
    return b->first_seq + b->n - 1;
}

static void batches_build(void)
{
    struct batch *b;
    char text[LONG_NOTE_BYTES + 1];

    batch_start(BATCH_A1, DEV_A, 1);
    b = &batches[BATCH_A1];
    add_text(b, PAT_1, patient_ids[PAT_1], KIND_PATIENT, 3, 1000, "Ada");
    add_text(b, PAT_1, patient_ids[PAT_1], KIND_PATIENT, 4, 1001, "Lovelace");
    add_text(b, PAT_1, patient_ids[PAT_1], KIND_PATIENT, 2, 1002, "9434765919");
    add_int(b, PAT_1, VISIT_1, KIND_VISIT, 3, 1003, 1700000000000);
    add_patient_of(b, PAT_1, VISIT_1, KIND_VISIT, 1004);
    add_text(b, PAT_1, NOTE_1, KIND_NOTE, 5, 1005, "Dressing changed");
    add_patient_of(b, PAT_1, NOTE_1, KIND_NOTE, 1006);

    batch_start(BATCH_C1, DEV_C, 1);
    b = &batches[BATCH_C1];
    add_text(b, PAT_2, patient_ids[PAT_2], KIND_PATIENT, 3, 2000, "Grace");
    add_text(b, PAT_2, patient_ids[PAT_2], KIND_PATIENT, 4, 2001, "Hopper");
    add_patient_of(b, PAT_2, TASK_2, KIND_TASK, 2002);
    add_text(b, PAT_2, TASK_2, KIND_TASK, 3, 2003, "Check the wound at 6pm");

    batch_start(BATCH_A2, DEV_A, 8);
    b = &batches[BATCH_A2];
    add_text(b, PAT_3, patient_ids[PAT_3], KIND_PATIENT, 3, 3000, "Mary");
    add_text(b, PAT_3, patient_ids[PAT_3], KIND_PATIENT, 4, 3001, "Seacole");
    for (int i = 0; i < LONG_NOTES; i++) {
        uint8_t note[HUB_ID_BYTES];
        memset(note, 0x60 + i, sizeof note);
        for (int j = 0; j < LONG_NOTE_BYTES; j++)
            text[j] = (char)('a' + (i * 7 + j) % 26);
        text[LONG_NOTE_BYTES] = '\0';
        add_patient_of(b, PAT_3, note, KIND_NOTE, 3002 + 2 * (uint64_t)i);
        add_text(b, PAT_3, note, KIND_NOTE, 5, 3003 + 2 * (uint64_t)i, text);
    }

    batch_start(BATCH_B1, DEV_B, 1);
    b = &batches[BATCH_B1];
    add_text(b, PAT_1, patient_ids[PAT_1], KIND_PATIENT, 6, 3500, "1 Analytical Row");
    add_patient_of(b, PAT_1, OBS_1, KIND_OBS, 3501);
    add_int(b, PAT_1, OBS_1, KIND_OBS, 501, 3502, 72);

    batch_start(BATCH_A3, DEV_A, batch_last_seq(&batches[BATCH_A2]) + 1);
    b = &batches[BATCH_A3];
    add_text(b, PAT_3, patient_ids[PAT_3], KIND_PATIENT, 6, 6000, "2 Scutari Lane");
    add_text(b, PAT_3, patient_ids[PAT_3], KIND_PATIENT, 7, 6001, "SE1 7EH");

    batch_start(BATCH_C2, DEV_C, batch_last_seq(&batches[BATCH_C1]) + 1);
    b = &batches[BATCH_C2];
    add_text(b, PAT_1, patient_ids[PAT_1], KIND_PATIENT, 7, 7000, "NW1 2DB");
    add_patient_of(b, PAT_1, VISIT_4, KIND_VISIT, 7001);
    add_int(b, PAT_1, VISIT_4, KIND_VISIT, 3, 7002, 1700000900000);
}

/* The hub holds nothing but SQLite's files in the directory. */
static void files_remove(void)
{
    unlink(fx.db);
    unlink(fx.wal);
    unlink(fx.shm);
    unlink(fx.journal);
}

static int admin_checkpoint(void)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(fx.db, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    sqlite3_close(db);
    return rc == SQLITE_OK ? SAT_OK : SAT_ERR_HUB_STORAGE;
}

static int pull_all(int dev)
{
    struct hub_pull_result res;
    for (int page = 0; page < PULL_PAGES_MAX; page++) {
        int ret = hub_store_pull(fx.hub, device_ids[dev], fx.cursor[dev], fx.pulled,
                                 PULL_PAGE_CHANGES, &res);
        if (ret != SAT_OK)
            return ret;
        fx.cursor[dev] = res.next_cursor;
        if (!res.more)
            return SAT_OK;
    }
    return SAT_ERR_INVALID;
}

/* One attempt at a step; *acked gets a successful push's acked_seq. */
static int step_try(const struct step *s, uint64_t *acked)
{
    switch (s->op) {
    case DO_OPEN:
        return hub_store_open(fx.db, &fx.hub, NULL);
    case DO_REGISTER:
        return hub_store_device_register(fx.hub, device_ids[s->arg], device_teams[s->arg]);
    case DO_PUSH: {
        const struct batch *b = &batches[s->arg];
        struct hub_push_result r;
        int ret = hub_store_push(fx.hub, device_ids[b->dev], b->first_seq, b->c, b->n, &r);
        if (ret == SAT_OK)
            *acked = r.acked_seq;
        return ret;
    }
    case DO_PULL:
        return pull_all(s->arg);
    case DO_CHECKPOINT:
        return admin_checkpoint();
    case DO_ASSIGN:
        return hub_store_patient_assign(fx.hub, patient_ids[MOVED_PATIENT], MOVED_TO,
                                        &move_stamp);
    case DO_RESTART:
        hub_store_close(fx.hub);
        fx.hub = NULL;
        return hub_store_open(fx.db, &fx.hub, NULL);
    case DO_REVOKE:
        return hub_store_device_revoke(fx.hub, device_ids[s->arg]);
    }
    return SAT_ERR_INVALID;
}

/* Runs the script until the power goes, or to the end. */
static void workload_run(struct run_log *log)
{
    memset(log, 0, sizeof *log);
    memset(fx.cursor, 0, sizeof fx.cursor);
    fx.hub = NULL;
    for (size_t i = 0; i < STEPS_N; i++) {
        const struct step *s = &script[i];
        if (!fx.hub && s->op != DO_OPEN)
            return; /* the hub would not (re)open */
        for (int attempt = 0; attempt < STEP_TRIES_MAX; attempt++) {
            uint64_t acked = 0;
            int ret = step_try(s, &acked);
            log->ret[i] = ret;
            /* Whatever the call returned, the hub never got to say it. */
            if (cv.powered_off) {
                log->step[i] = FAILED;
                return;
            }
            if (ret == SAT_OK) {
                log->step[i] = SUCCEEDED;
                if (s->op == DO_PUSH && acked > log->acked[batches[s->arg].dev])
                    log->acked[batches[s->arg].dev] = acked;
                break;
            }
            log->step[i] = FAILED;
        }
    }
}

/* ==== checks after the power cut ========================================== */

static enum outcome outcome_of(const struct run_log *log, enum step_op op, int arg)
{
    for (size_t i = 0; i < STEPS_N; i++)
        if (script[i].op == op && script[i].arg == arg)
            return log->step[i];
    return NOT_TRIED;
}

static const char *step_what(enum step_op op, int arg)
{
    for (size_t i = 0; i < STEPS_N; i++)
        if (script[i].op == op && script[i].arg == arg)
            return script[i].what;
    return "?";
}

static int change_same(const satchel_FieldChange *a, const satchel_FieldChange *b)
{
    if (memcmp(a->record_id, b->record_id, HUB_ID_BYTES) != 0 || a->kind != b->kind ||
        a->field != b->field || a->value.which_value != b->value.which_value ||
        a->stamp.wall_ms != b->stamp.wall_ms || a->stamp.counter != b->stamp.counter ||
        memcmp(a->origin_device, b->origin_device, HUB_ID_BYTES) != 0 ||
        a->origin_seq != b->origin_seq)
        return 0;
    switch (a->value.which_value) {
    case satchel_FieldValue_text_tag:
        return strcmp(a->value.value.text, b->value.value.text) == 0;
    case satchel_FieldValue_blob_tag:
        return a->value.value.blob.size == b->value.value.blob.size &&
               memcmp(a->value.value.blob.bytes, b->value.value.blob.bytes,
                      a->value.value.blob.size) == 0;
    case satchel_FieldValue_integer_tag:
        return a->value.value.integer == b->value.value.integer;
    default:
        return 0;
    }
}

struct tally {
    unsigned seen[BATCHES_N][HUB_PUSH_CHANGES_MAX];
    unsigned team_changes; /* the hub's own write of the moved patient's team */
    uint64_t distinct;
};

/* Counts one pulled change against the script. */
static void tally_change(struct tally *t, const satchel_FieldChange *c, const char *ctx)
{
    if (memcmp(c->origin_device, HUB_ORIGIN, HUB_ID_BYTES) == 0) {
        if (memcmp(c->record_id, patient_ids[MOVED_PATIENT], HUB_ID_BYTES) != 0 ||
            c->field != FIELD_PATIENT_TEAM ||
            c->value.which_value != satchel_FieldValue_text_tag ||
            strcmp(c->value.value.text, MOVED_TO) != 0)
            fail_msg("%s: a fresh device pulled a change from the hub's own origin the "
                     "workload never caused (field %u)",
                     ctx, (unsigned)c->field);
        if (t->team_changes++ == 0)
            t->distinct++;
        return;
    }
    for (int b = 0; b < BATCHES_N; b++) {
        const struct batch *bt = &batches[b];
        if (memcmp(c->origin_device, device_ids[bt->dev], HUB_ID_BYTES) != 0 ||
            c->origin_seq < bt->first_seq || c->origin_seq > batch_last_seq(bt))
            continue;
        if (!change_same(c, &bt->c[c->origin_seq - bt->first_seq]))
            fail_msg("%s: change %c#%llu came back different from what was pushed", ctx,
                     device_names[bt->dev], (unsigned long long)c->origin_seq);
        if (t->seen[b][c->origin_seq - bt->first_seq]++ == 0)
            t->distinct++;
        return;
    }
    fail_msg("%s: a fresh device pulled change #%llu, which the workload never pushed", ctx,
             (unsigned long long)c->origin_seq);
}

/* Registers a fresh device in team and pulls its whole feed into t. */
static void tally_team(struct hub_store *hub, const uint8_t dev[HUB_ID_BYTES], const char *team,
                       struct tally *t, const char *ctx)
{
    struct hub_pull_result res;
    uint64_t cursor = 0;
    int ret = hub_store_device_register(hub, dev, team);
    if (ret != SAT_OK)
        fail_msg("%s: the recovered hub cannot register a device: %s", ctx,
                 hub_store_errmsg(hub));
    for (int page = 0;; page++) {
        if (page == PULL_PAGES_MAX)
            fail_msg("%s: a fresh device's pull does not end", ctx);
        ret = hub_store_pull(hub, dev, cursor, fx.pulled, PULL_PAGE_CHANGES, &res);
        if (ret != SAT_OK)
            fail_msg("%s: a fresh device in %s cannot pull: %s", ctx, team,
                     hub_store_errmsg(hub));
        for (size_t i = 0; i < res.count; i++)
            tally_change(t, &fx.pulled[i], ctx);
        cursor = res.next_cursor;
        if (!res.more)
            break;
    }
}

/* The devices the script registered: each acknowledged registration, push
 * and revocation held; each push is there whole or not at all. */
static int check_devices(struct hub_store *hub, const struct run_log *log,
                         uint64_t acked[DEVICES_N], const char *ctx)
{
    int registered = 0;
    for (int d = 0; d < DEVICES_N; d++) {
        struct hub_device dev;
        enum outcome reg = outcome_of(log, DO_REGISTER, d);
        enum outcome rev = outcome_of(log, DO_REVOKE, d);
        int boundary = 0;
        int ret = hub_store_device_get(hub, device_ids[d], &dev);
        acked[d] = 0;
        if (ret == SAT_ERR_HUB_UNKNOWN_DEVICE) {
            if (reg == SUCCEEDED)
                fail_msg("%s: \"%s\" returned SAT_OK, but the hub does not know %c after the "
                         "power cut",
                         ctx, step_what(DO_REGISTER, d), device_names[d]);
            memset(&dev, 0, sizeof dev);
        } else if (ret != SAT_OK) {
            fail_msg("%s: reading device %c: %s", ctx, device_names[d], hub_store_errmsg(hub));
        } else {
            registered++;
            if (reg == NOT_TRIED || strcmp(dev.team, device_teams[d]) != 0)
                fail_msg("%s: device %c is in team \"%s\" after the power cut", ctx,
                         device_names[d], dev.team);
            acked[d] = dev.acked_seq;
        }
        if (acked[d] < log->acked[d])
            fail_msg("%s: the hub acknowledged %c's changes up to sequence %llu, but after the "
                     "power cut it holds them only up to %llu",
                     ctx, device_names[d], (unsigned long long)log->acked[d],
                     (unsigned long long)acked[d]);
        for (int b = 0; b < BATCHES_N; b++)
            if (batches[b].dev == d && outcome_of(log, DO_PUSH, b) != NOT_TRIED &&
                batch_last_seq(&batches[b]) == acked[d])
                boundary = 1;
        if (acked[d] != 0 && !boundary)
            fail_msg("%s: after the power cut the hub holds %c's changes up to sequence %llu, "
                     "partway through a push: pushes are all or nothing",
                     ctx, device_names[d], (unsigned long long)acked[d]);
        if ((rev == SUCCEEDED && !dev.revoked) || (rev == NOT_TRIED && dev.revoked))
            fail_msg("%s: device %c is%s revoked after the power cut, though \"%s\" %s", ctx,
                     device_names[d], dev.revoked ? "" : " not", step_what(DO_REVOKE, d),
                     rev == SUCCEEDED ? "returned SAT_OK" : "never ran");
    }
    return registered;
}

/* Each patient the hub holds is in the team it should be; returns 1 if the
 * moved patient has moved. */
static int check_patients(struct hub_store *hub, const struct run_log *log,
                          const struct tally *t, const char *ctx)
{
    enum outcome assign = outcome_of(log, DO_ASSIGN, 0);
    int moved = 0;
    for (int p = 0; p < PATIENTS_N; p++) {
        char team[HUB_TEAM_BYTES];
        int present = 0;
        int ret = hub_store_patient_team(hub, patient_ids[p], team);
        for (int b = 0; b < BATCHES_N; b++)
            for (size_t i = 0; i < batches[b].n; i++)
                if (batches[b].patient[i] == p && t->seen[b][i])
                    present = 1;
        if (ret == SAT_ERR_HUB_UNKNOWN_RECORD && !present) {
            if (p == MOVED_PATIENT && assign == SUCCEEDED)
                fail_msg("%s: \"%s\" returned SAT_OK, but after the power cut the hub does "
                         "not know the patient",
                         ctx, step_what(DO_ASSIGN, 0));
            continue;
        }
        if (ret != SAT_OK || !present)
            fail_msg("%s: patient %d: the hub %s the patient but %s of its changes (%s)", ctx,
                     p + 1, ret == SAT_OK ? "knows" : "does not know",
                     present ? "holds some" : "holds none", hub_store_errmsg(hub));
        if (p == MOVED_PATIENT && strcmp(team, MOVED_TO) == 0 && assign != NOT_TRIED) {
            moved = 1;
            continue;
        }
        if (p == MOVED_PATIENT && assign == SUCCEEDED)
            fail_msg("%s: \"%s\" returned SAT_OK, but after the power cut patient 1 is in "
                     "\"%s\"",
                     ctx, step_what(DO_ASSIGN, 0), team);
        if (strcmp(team, patient_homes[p]) != 0)
            fail_msg("%s: patient %d is in \"%s\" after the power cut, expected \"%s\"", ctx,
                     p + 1, team, patient_homes[p]);
    }
    return moved;
}

static void check_integrity(const char *ctx)
{
    sqlite3_stmt *q = NULL;
    const char *result = "(no answer)";
    char copy[CRASHVFS_DESC_BYTES];
    int ok = 0;
    if (sqlite3_open_v2(fx.db, &fx.check_db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(fx.check_db, "PRAGMA integrity_check", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW) {
        result = (const char *)sqlite3_column_text(q, 0);
        ok = result && strcmp(result, "ok") == 0 && sqlite3_step(q) == SQLITE_DONE;
    }
    snprintf(copy, sizeof copy, "%s", result ? result : "?");
    sqlite3_finalize(q);
    if (!ok)
        fail_msg("%s: PRAGMA integrity_check: %s (%s)", ctx, copy, sqlite3_errmsg(fx.check_db));
    sqlite3_close(fx.check_db);
    fx.check_db = NULL;
}

/* Everything the workload was told after the power cut. */
static void verify(const struct run_log *log, const char *ctx)
{
    static struct tally t;
    struct hub_store *hub;
    uint64_t acked[DEVICES_N];
    struct hub_stats st;
    int registered, moved;
    int ret = hub_store_open(fx.db, &fx.check_hub, NULL);

    if (ret != SAT_OK)
        fail_msg("%s: the hub store does not reopen after the power cut: %s", ctx,
                 sat_strerror(ret));
    hub = fx.check_hub;
    if (cv.overflow)
        fail_msg("%s: a file held more than %d unsynced writes: raise "
                 "CRASHVFS_PENDING_OPS_MAX",
                 ctx, CRASHVFS_PENDING_OPS_MAX);
    registered = check_devices(hub, log, acked, ctx);

    memset(&t, 0, sizeof t);
    tally_team(hub, CHECK_1, "ward-1", &t, ctx);
    tally_team(hub, CHECK_2, "ward-2", &t, ctx);
    moved = check_patients(hub, log, &t, ctx);

    for (int b = 0; b < BATCHES_N; b++) {
        const struct batch *bt = &batches[b];
        for (size_t i = 0; i < bt->n; i++) {
            uint64_t seq = bt->c[i].origin_seq;
            int held = seq <= acked[bt->dev];
            /* A reassignment re-feeds the moved patient's current fields to
             * its new team, so a device from scratch may meet one twice
             * (hub_store.h, pull); nothing else comes twice. */
            unsigned most = bt->patient[i] == MOVED_PATIENT && moved ? 2 : 1;
            unsigned seen = t.seen[b][i];
            if (held && seen == 0)
                fail_msg("%s: change %c#%llu (\"%s\", %s) is missing from the pulls of fresh "
                         "devices, though the hub holds %c up to sequence %llu",
                         ctx, device_names[bt->dev], (unsigned long long)seq,
                         step_what(DO_PUSH, b),
                         outcome_of(log, DO_PUSH, b) == SUCCEEDED ? "acknowledged"
                                                                 : "not acknowledged",
                         device_names[bt->dev], (unsigned long long)acked[bt->dev]);
            if (!held && seen > 0)
                fail_msg("%s: change %c#%llu (\"%s\") is pulled, but the hub holds %c only up "
                         "to sequence %llu: half a push",
                         ctx, device_names[bt->dev], (unsigned long long)seq,
                         step_what(DO_PUSH, b), device_names[bt->dev],
                         (unsigned long long)acked[bt->dev]);
            if (seen > most)
                fail_msg("%s: change %c#%llu (\"%s\") was pulled %u times by one fresh device",
                         ctx, device_names[bt->dev], (unsigned long long)seq,
                         step_what(DO_PUSH, b), seen);
        }
    }
    if (t.team_changes != (unsigned)moved && !(moved && t.team_changes == 2))
        fail_msg("%s: the moved patient's team field was pulled %u times (moved: %d)", ctx,
                 t.team_changes, moved);

    if (hub_store_stats(hub, &st) != SAT_OK)
        fail_msg("%s: stats: %s", ctx, hub_store_errmsg(hub));
    if (st.changes != t.distinct || st.devices != (uint64_t)registered + 2 ||
        st.reassignments != (uint64_t)moved)
        fail_msg("%s: the hub counts %llu changes, %llu devices and %llu reassignments; its "
                 "feeds hold %llu changes, %d devices are known and %d reassignment held",
                 ctx, (unsigned long long)st.changes, (unsigned long long)st.devices,
                 (unsigned long long)st.reassignments, (unsigned long long)t.distinct,
                 registered + 2, moved);
    hub_store_close(hub);
    fx.check_hub = NULL;
    check_integrity(ctx);
}

/* ==== runs and sweeps ===================================================== */

/* The torn sweep's seed for cut point k: fixed, so a failure replays. */
#define TORN_SEED_BASE 0x5a7c4e1ull
/* SQLite's randomness at every run. */
#define SQLITE_SEED 0x4855425ull

struct plan {
    const char *sweep; /* for HUB_CRASH_ONLY */
    uint64_t k;
    uint64_t cut_at, fail_write_at, fail_sync_at;
    int torn;
};

/* Closes whatever a failed run left open and forgets the files: every
 * test and run starts from here. */
static void fx_settle(void)
{
    hub_store_close(fx.hub);
    hub_store_close(fx.check_hub);
    sqlite3_close(fx.check_db);
    fx.hub = fx.check_hub = NULL;
    fx.check_db = NULL;
    files_remove();
    crashvfs_reset(SQLITE_SEED);
}

/* One run: the workload from an empty directory with the plan's fault,
 * then the power cut, then the checks. Fills log. */
static void run_plan(const struct plan *p, struct run_log *log)
{
    char ctx[3 * CRASHVFS_DESC_BYTES];
    uint64_t torn_seed = TORN_SEED_BASE + p->k;

    fx_settle();
    cv.cut_at = p->cut_at;
    cv.fail_write_at = p->fail_write_at;
    cv.fail_sync_at = p->fail_sync_at;
    cv.armed = 1;
    workload_run(log);
    crashvfs_power_cut("after the workload");
    hub_store_close(fx.hub);
    fx.hub = NULL;

    if (p->fail_write_at != OPS_NEVER || p->fail_sync_at != OPS_NEVER)
        snprintf(ctx, sizeof ctx, "[HUB_CRASH_ONLY=%s:%llu] %s %llu failed (%s), power cut %s",
                 p->sweep, (unsigned long long)p->k,
                 p->fail_write_at != OPS_NEVER ? "write" : "sync", (unsigned long long)p->k,
                 cv.fault_desc[0] ? cv.fault_desc : "never reached", cv.cut_desc);
    else
        snprintf(ctx, sizeof ctx, "[HUB_CRASH_ONLY=%s:%llu] %spower cut at op %llu of %llu (%s)",
                 p->sweep, (unsigned long long)p->k, p->torn ? "torn " : "",
                 (unsigned long long)p->k, (unsigned long long)fx.ops, cv.cut_desc);
    crashvfs_power_on(p->torn, torn_seed, fx.shm);
    verify(log, ctx);
    fx_settle();
}

/* HUB_CRASH_ONLY=<sweep>:<k>: 1 if run k of sweep is to run. */
static int plan_selected(const char *sweep, uint64_t k)
{
    const char *only = getenv("HUB_CRASH_ONLY");
    size_t n = strlen(sweep);
    if (!only || !*only)
        return 1;
    return strncmp(only, sweep, n) == 0 && only[n] == ':' &&
           strtoull(only + n + 1, NULL, 10) == k;
}

/* The workload without faults counts its operations (twice: the counts
 * must not vary, or cut point k would not mean the same op every run),
 * and must cover what the sweeps are for. */
static void test_dry_run(void **state)
{
    static struct run_log log;
    struct plan p = { "dry", 0, OPS_NEVER, OPS_NEVER, OPS_NEVER, 0 };
    uint64_t first_ops = 0;
    (void)state;
    for (int round = 0; round < 2; round++) {
        fx_settle();
        cv.armed = 1;
        workload_run(&log);
        for (size_t i = 0; i < STEPS_N; i++)
            if (log.step[i] != SUCCEEDED)
                fail_msg("dry run: \"%s\" failed: %s", script[i].what,
                         fx.hub ? hub_store_errmsg(fx.hub) : sat_strerror(log.ret[i]));
        fx.ops = cv.ops;
        fx.writes = cv.writes;
        fx.syncs = cv.syncs;
        assert_true(cv.db_writes > 0); /* checkpoints reached the database */
        assert_true(cv.truncates > 0); /* the admin's TRUNCATE checkpoint */
        assert_true(cv.deletes > 0);   /* the restart's WAL */
        assert_false(cv.overflow);
        if (round == 1)
            assert_int_equal(cv.ops, first_ops);
        first_ops = cv.ops;
    }
    fx_settle();
    print_message("dry run: %llu ops (%llu writes, %llu syncs)\n",
                  (unsigned long long)fx.ops, (unsigned long long)fx.writes,
                  (unsigned long long)fx.syncs);
    /* And the whole run, with the power cut after it. */
    p.k = fx.ops;
    run_plan(&p, &log);
}

/* The shim itself: a committed row that was never synced is lost at a
 * power cut, a synced one is not. Without this the sweeps below could
 * pass on a shim that made every write durable. */
static int plain_row_survives(const char *pragmas)
{
    sqlite3_stmt *q = NULL;
    int found = 0;
    fx_settle();
    assert_int_equal(sqlite3_open_v2(fx.db, &fx.check_db,
                                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(fx.check_db, pragmas, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(fx.check_db, "CREATE TABLE t(x); INSERT INTO t VALUES (42);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    crashvfs_power_cut("test");
    sqlite3_close(fx.check_db);
    fx.check_db = NULL;
    crashvfs_power_on(0, 0, fx.shm);
    assert_int_equal(sqlite3_open_v2(fx.db, &fx.check_db, SQLITE_OPEN_READWRITE, NULL),
                     SQLITE_OK);
    if (sqlite3_prepare_v2(fx.check_db, "SELECT count(*) FROM t WHERE x = 42", -1, &q, NULL) ==
            SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        found = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    fx_settle();
    return found;
}

static void test_shim_loses_only_unsynced_writes(void **state)
{
    (void)state;
    assert_int_equal(plain_row_survives("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"), 0);
    assert_int_equal(plain_row_survives("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"), 1);
    assert_int_equal(plain_row_survives("PRAGMA journal_mode=DELETE; PRAGMA synchronous=OFF;"),
                     0);
    assert_int_equal(
        plain_row_survives("PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL;"), 1);
}

static void cut_sweep(const char *sweep, int torn)
{
    static struct run_log log;
    uint64_t runs = 0;
    assert_true(fx.ops > 0); /* test_dry_run first */
    for (uint64_t k = 0; k <= fx.ops; k++) {
        struct plan p = { sweep, k, k, OPS_NEVER, OPS_NEVER, torn };
        if (!plan_selected(sweep, k))
            continue;
        run_plan(&p, &log);
        runs++;
    }
    print_message("%s: %llu power cuts\n", sweep, (unsigned long long)runs);
}

/* Power cut at every write, sync, truncate and delete, and after the last;
 * the unsynced writes are all lost. */
static void test_power_cut_sweep(void **state)
{
    (void)state;
    cut_sweep("cut", 0);
}

/* The same, but each unsynced write reaches the disk or not, by a seed per
 * cut point: WAL frames carry checksums, so SQLite must stop at the first
 * frame that did not. */
static void test_torn_power_cut_sweep(void **state)
{
    (void)state;
    cut_sweep("torn", 1);
}

static void fault_sweep(const char *sweep, uint64_t count, int sync)
{
    static struct run_log log;
    uint64_t runs = 0;
    assert_true(count > 0); /* test_dry_run first */
    for (uint64_t k = 0; k < count; k++) {
        struct plan p = { sweep, k, OPS_NEVER, sync ? OPS_NEVER : k, sync ? k : OPS_NEVER, 0 };
        if (!plan_selected(sweep, k))
            continue;
        run_plan(&p, &log);
        runs++;
    }
    print_message("%s: %llu faults\n", sweep, (unsigned long long)runs);
}

/* Each write in turn fails (a full or failing disk); the workload goes on,
 * trying a failed call once more; then the power is cut. */
static void test_failed_write_sweep(void **state)
{
    (void)state;
    fault_sweep("write", fx.writes, 0);
}

/* Each sync in turn fails: a COMMIT that could not sync must not be
 * acknowledged. */
static void test_failed_sync_sweep(void **state)
{
    (void)state;
    fault_sweep("sync", fx.syncs, 1);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(fx.dir, sizeof fx.dir, "/tmp/satchel-hubcrash-XXXXXX");
    if (!mkdtemp(fx.dir))
        return -1;
    snprintf(fx.db, sizeof fx.db, "%s/hub.db", fx.dir);
    snprintf(fx.wal, sizeof fx.wal, "%s-wal", fx.db);
    snprintf(fx.shm, sizeof fx.shm, "%s-shm", fx.db);
    snprintf(fx.journal, sizeof fx.journal, "%s-journal", fx.db);
    batches_build();
    return crashvfs_register();
}

static int group_teardown(void **state)
{
    (void)state;
    fx_settle();
    rmdir(fx.dir);
    sqlite3_vfs_unregister(&cv.vfs);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shim_loses_only_unsynced_writes),
        cmocka_unit_test(test_dry_run),
        cmocka_unit_test(test_power_cut_sweep),
        cmocka_unit_test(test_torn_power_cut_sweep),
        cmocka_unit_test(test_failed_write_sweep),
        cmocka_unit_test(test_failed_sync_sweep),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
