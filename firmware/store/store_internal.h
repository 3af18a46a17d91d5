/*
 * store_internal.h - what the files of the store share: struct store and
 * the helpers one file gives the others. Internal to firmware/store: not
 * installed, and included by nothing but its store_*.c (everyone else uses
 * store.h, whose contract these files keep).
 *
 * The files, one job each (each says its contract at its top):
 *  - store_sql.c: errors, statements, transactions, ids, the change log.
 *  - store_state.c: the merge state (layout 3's per-record `ms` column and
 *    its codec), the origin table, the rowid of a record, and the
 *    migration of layout 2's merge state.
 *  - store_schema.c: open and close, the schema, the layout check, the
 *    device id.
 *  - store_patients.c: validation and patients.
 *  - store_records.c: visits, observations, notes, tasks, delete, the
 *    content hash, the integrity check, id resolution.
 *  - store_merge.c: applying pulled changes (merge, pending rows, purge,
 *    conflicts) and the sync state.
 *
 * A helper one file gives another is named st_* (store_* is the public
 * API) and declared here; all else is static in its file. What every file
 * keeps to:
 *  - A failure is a negative SAT_ERR_* code returned after st_fail or
 *    st_sql_fail put its one-line reason in s->errmsg (store_errmsg).
 *  - A write runs between st_begin and st_finish(s, ret), which commits
 *    if ret is SAT_OK and else rolls back; a rollback forgets the held
 *    merge state, the rowid cache and the writers the transaction added.
 *  - A statement from st_stmt or st_prepare_once comes reset, its bindings
 *    cleared; s owns it (store_close finalizes it).
 */
#ifndef SATCHEL_STORE_INTERNAL_H
#define SATCHEL_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hlc.h"
#include "sat_sql.h"
#include "store.h"

/* Field value types: the record model's (record.h). */
#define VT_TEXT RECORD_TYPE_TEXT
#define VT_INT RECORD_TYPE_INT
#define VT_BLOB RECORD_TYPE_BLOB
#define VT_FLAG RECORD_TYPE_FLAG
#define VT_TOMBSTONE RECORD_TYPE_TOMBSTONE

#define PURGE_STMTS 5 /* statements that delete a patient's records */
#define FIELD_MAX 0xffffu /* field numbers fit 16 bits (layout 2 keyed by them) */

/* Prepared statements, made on first use and kept. */
enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_META_GET,
    ST_META_SET,
    ST_LAST_STAMP,
    ST_LOG,
    ST_CONFLICT,
    ST_PATIENT_INSERT,
    ST_PATIENT_GET,
    ST_VISIT_INSERT,
    ST_VISIT_GET,
    ST_VISIT_OPEN,
    ST_VISIT_END,
    ST_OBS_INSERT,
    ST_OBS_GET,
    ST_NOTE_INSERT,
    ST_NOTE_GET,
    ST_TASK_INSERT,
    ST_TASK_GET,
    ST_TASK_DONE,
    ST_LAST_SEQ,
    ST_CHANGES,
    ST_COUNT
};

struct vfs_crypt;
struct apply_stmts; /* store_merge.c */

struct store {
    const struct hal *hal;
    sqlite3 *db;
    struct sat_sql sql; /* over db and st (core's SQLite plumbing) */
    struct vfs_crypt *vfs;
    sqlite3_stmt *st[ST_COUNT];
    struct apply_stmts *apply; /* made on the first pull */
    /* Merge state, per kind: get, put, and the record's rowid. */
    sqlite3_stmt *fs_get[RECORD_KINDS + 1];
    sqlite3_stmt *fs_put[RECORD_KINDS + 1];
    sqlite3_stmt *rowid_of[RECORD_KINDS + 1];
    /* The merge state of the last record looked at (a record's fields come
     * together): read once, changed here, written back (st_fs_flush) when
     * another record's is needed, before a commit or a purge (a pending
     * row's by its INSERT); forgotten at a rollback. */
    struct {
        int valid;
        int dirty; /* changed since read: to be written */
        enum record_kind kind;
        int64_t rowid;
        uint8_t *buf;
        size_t len, cap;
    } fs;
    /* The origin table in memory: origins[r - 1] is ref r. A rollback
     * forgets the ones its transaction added. */
    struct store_id *origins;
    size_t norigins, origins_cap, origins_committed;
    int origins_loaded;
    sqlite3_stmt *origin_add;
    sqlite3_stmt *purge[PURGE_STMTS]; /* a patient's records, made on first use */
    sqlite3_stmt *unpushed;           /* hold_for_unpushed's */
    /* The last record whose rowid was looked up (a record's fields come
     * together); forgotten at a rollback or a purge, which may free it. */
    int rid_valid;
    enum record_kind rid_kind;
    struct store_id rid_id;
    int64_t rid;
    int applying; /* a pulled batch's transaction is open (store_apply_begin) */
    struct hlc clock;
    struct store_id device;
    char errmsg[STORE_ERRMSG_BYTES];
};

/* ---- errors, statements, transactions, ids (store_sql.c) ---------------- */

/* Puts the one-line reason in s->errmsg and returns code. */
int st_fail(struct store *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int st_sql_fail(struct store *s, int rc, const char *what);
/* Points s->sql at the store's statements and errmsg (before anything can
 * fail); its db is set once the database is open. */
void st_sql_setup(struct store *s);

/* One of the statements of enum stmt_id, prepared on first use. */
sqlite3_stmt *st_stmt(struct store *s, enum stmt_id id);
/* A statement in a slot of s, prepared on first use; NULL if it fails to
 * prepare (st_sql_fail then says why). st_prepare_kind_once formats fmt
 * with kind's table first. */
sqlite3_stmt *st_prepare_once(struct store *s, sqlite3_stmt **slot, const char *sql);
sqlite3_stmt *st_prepare_kind_once(struct store *s, sqlite3_stmt **slot, const char *fmt,
                                   enum record_kind kind);
int st_run(struct store *s, sqlite3_stmt *q, const char *what);
int st_begin(struct store *s);
void st_rollback(struct store *s);
int st_finish(struct store *s, int ret);
int st_query_rows(struct store *s, const char *sql, const struct store_id *id,
                  int (*row_fn)(sqlite3_stmt *q, void *ctx), void *ctx, const char *what);

/* What st_query_rows gives a store_*_list's row function. */
struct list_ctx {
    int (*fn)(void *arg, const void *rec);
    void *arg;
};

int st_new_id(struct store *s, struct store_id *out);
int st_column_id(sqlite3_stmt *q, int col, struct store_id *out);
void st_column_text(sqlite3_stmt *q, int col, char *out, size_t cap);
/* The table of a record kind; NULL if kind is not one. */
const char *st_kind_table(enum record_kind kind);

static inline void st_bind_id(sqlite3_stmt *q, int col, const struct store_id *id)
{
    sqlite3_bind_blob(q, col, id->b, STORE_ID_BYTES, SQLITE_TRANSIENT);
}

/* ---- the change log (store_sql.c) --------------------------------------- */

struct field_value {
    int type;
    int64_t i;
    const char *text;
    const struct store_id *blob;
};

/* The winning write of one field on this replica. */
struct field_winner {
    int exists;
    struct hlc stamp;
    struct store_id origin;
    int type;
    int64_t i;
    char text[STORE_NOTE_TEXT_BYTES];
    struct store_id blob;
};

int st_log_field(struct store *s, enum record_kind kind, const struct store_id *record,
                 uint32_t field, struct field_value v);

static inline struct field_value st_fv_text(const char *t)
{
    return (struct field_value){ .type = VT_TEXT, .text = t };
}

static inline struct field_value st_fv_int(int64_t i)
{
    return (struct field_value){ .type = VT_INT, .i = i };
}

static inline struct field_value st_fv_flag(int b)
{
    return (struct field_value){ .type = VT_FLAG, .i = b != 0 };
}

static inline struct field_value st_fv_id(const struct store_id *id)
{
    return (struct field_value){ .type = VT_BLOB, .blob = id };
}

/* ---- the merge state (store_state.c) ------------------------------------ */

int st_record_rowid(struct store *s, enum record_kind kind, const struct store_id *record,
                    int64_t *rowid);
int st_winner_get(struct store *s, enum record_kind kind, const struct store_id *record,
                  uint32_t field, struct field_winner *w);
int st_winner_put(struct store *s, enum record_kind kind, const struct store_id *record,
                  uint32_t field, struct field_value v, struct hlc stamp,
                  const struct store_id *origin);
int st_fs_flush(struct store *s);
void st_fs_bind_for(struct store *s, sqlite3_stmt *q, int col, enum record_kind kind,
                    int64_t rowid);
int st_migrate_v2(struct store *s);

/* ---- validation and patients (store_patients.c) ------------------------- */

/* strnlen is POSIX, not C11. */
static inline size_t st_bounded_len(const char *text, size_t cap)
{
    const char *nul = memchr(text, '\0', cap);
    return nul ? (size_t)(nul - text) : cap;
}

int st_check_text(struct store *s, const char *what, const char *text, size_t cap,
                  int required);
int st_require_patient(struct store *s, const struct store_id *id);

/* ---- applying pulled changes (store_merge.c) ---------------------------- */

/* The pending row (a pulled record not yet in its table): whether
 * (kind, rowid) or record is it, and its one INSERT. */
int st_pend_holds(const struct store *s, enum record_kind kind, int64_t rowid);
int st_pend_rowid(const struct store *s, enum record_kind kind, const struct store_id *record,
                  int64_t *rowid);
int st_pend_flush(struct store *s);
void st_apply_stmts_free(struct apply_stmts *a);
int st_meta_get_u64(struct store *s, const char *key, uint64_t *out);

#endif
