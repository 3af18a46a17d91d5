/*
 * store_sql.c - the store's plumbing (store_internal.h): errors, prepared
 * statements, transactions, ids and the change log.
 *
 * Errors: st_fail puts the one-line reason store_errmsg gives in s->errmsg
 * and returns its code; st_sql_fail maps an SQLite result to one (a block
 * that failed authentication: SAT_ERR_STORE_CORRUPT; a full disk:
 * SAT_ERR_NO_SPACE; else SAT_ERR_STORE_SQL).
 * Transactions: st_begin opens one (SAT_ERR_INVALID while a pulled batch
 * is being applied); st_finish(s, ret) commits if ret is SAT_OK (the held
 * merge state written first), else rolls back and returns ret; a commit
 * that fails rolls back too.
 * The change log: st_log_field appends one of this device's field writes,
 * stamped by the HLC after the write it replaces (its base), and makes it
 * the field's winner in the merge state; store_changes reads the log back
 * for sync.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hlc.h"
#include "record_id.h"
#include "store_internal.h"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_META_GET] = "SELECT v FROM meta WHERE k = ?1",
    [ST_META_SET] = "INSERT OR REPLACE INTO meta(k, v) VALUES (?1, ?2)",
    [ST_LAST_STAMP] = "SELECT hlc_wall, hlc_counter FROM change_log ORDER BY seq DESC LIMIT 1",
    [ST_LOG] = "INSERT INTO change_log(record_id, kind, field, vtype, vint, vtext, vblob,"
               " hlc_wall, hlc_counter, origin, base_wall, base_counter, base_origin)"
               " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)",
    [ST_CONFLICT] = "INSERT INTO conflict(record_id, kind, field, kept, lost, kept_origin,"
                    " lost_origin, kept_wall, lost_wall, detected_ms)"
                    " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
    [ST_PATIENT_INSERT] = "INSERT INTO patient(id, nhs_number, given_name, family_name,"
                          " date_of_birth, address, postcode, team, created_ms)"
                          " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
    [ST_PATIENT_GET] = "SELECT id, nhs_number, given_name, family_name, date_of_birth, address,"
                       " postcode, team, created_ms, deleted FROM patient WHERE id = ?1",
    [ST_VISIT_INSERT] = "INSERT INTO visit(id, patient_id, started_ms, reason)"
                        " VALUES (?1,?2,?3,?4)",
    [ST_VISIT_GET] = "SELECT id, patient_id, started_ms, ended_ms, reason, deleted FROM visit"
                     " WHERE id = ?1",
    [ST_VISIT_OPEN] = "SELECT 1 FROM visit WHERE patient_id = ?1 AND ended_ms = 0"
                      " AND deleted = 0",
    [ST_VISIT_END] = "UPDATE visit SET ended_ms = ?2 WHERE id = ?1",
    [ST_OBS_INSERT] = "INSERT INTO observation(id, patient_id, visit_id, amends, taken_ms, resp,"
                      " spo2, spo2_scale, on_oxygen, sbp, pulse, consciousness, temp_dc, news2)"
                      " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)",
    [ST_OBS_GET] = "SELECT id, patient_id, visit_id, amends, taken_ms, resp, spo2, spo2_scale,"
                   " on_oxygen, sbp, pulse, consciousness, temp_dc, news2 FROM observation"
                   " WHERE id = ?1",
    [ST_NOTE_INSERT] = "INSERT INTO note(id, patient_id, visit_id, amends, written_ms, text)"
                       " VALUES (?1,?2,?3,?4,?5,?6)",
    [ST_NOTE_GET] = "SELECT id, patient_id, visit_id, amends, written_ms, text FROM note"
                    " WHERE id = ?1",
    [ST_TASK_INSERT] = "INSERT INTO task(id, patient_id, title, due_ms) VALUES (?1,?2,?3,?4)",
    [ST_TASK_GET] = "SELECT id, patient_id, title, due_ms, done, deleted FROM task WHERE id = ?1",
    [ST_TASK_DONE] = "UPDATE task SET done = 1 WHERE id = ?1",
    [ST_LAST_SEQ] = "SELECT ifnull(max(seq), 0) FROM change_log",
    [ST_CHANGES] = "SELECT seq, record_id, kind, field, vtype, vint, vtext, vblob, hlc_wall,"
                   " hlc_counter, origin, base_wall, base_counter, base_origin FROM change_log"
                   " WHERE seq > ?1 ORDER BY seq LIMIT ?2",
};

/* ---- errors ------------------------------------------------------------- */

int st_fail(struct store *s, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    return code;
}

static const struct sat_sql_errors store_sql_errors = {
    SAT_ERR_STORE_SQL,
    SAT_ERR_STORE_CORRUPT,
    "stored data failed authentication (damaged or tampered with)",
    "storage is full",
};

void st_sql_setup(struct store *s)
{
    s->sql.texts = stmt_sql;
    s->sql.kept = s->st;
    s->sql.count = ST_COUNT;
    s->sql.errors = &store_sql_errors;
    s->sql.errmsg = s->errmsg;
    s->sql.errmsg_bytes = sizeof s->errmsg;
}

/* Maps an SQLite result to a Satchel code, with the message. */
int st_sql_fail(struct store *s, int rc, const char *what)
{
    return sat_sql_fail(&s->sql, rc, what);
}

const char *store_errmsg(const struct store *s)
{
    return s->errmsg;
}

/* ---- statements and transactions ---------------------------------------- */

sqlite3_stmt *st_stmt(struct store *s, enum stmt_id id)
{
    return sat_sql_stmt(&s->sql, id);
}

/* Steps a statement that returns no row. */
int st_run(struct store *s, sqlite3_stmt *q, const char *what)
{
    return sat_sql_run(&s->sql, q, what);
}

int st_begin(struct store *s)
{
    s->errmsg[0] = '\0';
    if (s->applying)
        return st_fail(s, SAT_ERR_INVALID, "a pulled batch is being applied: finish it first");
    return st_run(s, st_stmt(s, ST_BEGIN), "begin");
}

void st_rollback(struct store *s)
{
    s->rid_valid = 0;
    s->fs.valid = 0;
    s->norigins = s->origins_committed;
    sat_sql_rollback(&s->sql);
}

/* Commits; on failure rolls back. The HLC is not saved with each commit
 * (that was a page to seal every time): store_open takes it back from the
 * last change this device logged, and st_log_field folds in the stamp of the
 * write it replaces, so a nurse's edit still orders after whatever she saw
 * in that field, even after a restart lost the clock's memory of other
 * tablets' stamps. */
static int commit(struct store *s)
{
    int ret = st_fs_flush(s);
    if (ret == SAT_OK)
        ret = st_run(s, st_stmt(s, ST_COMMIT), "commit");
    if (ret != SAT_OK)
        st_rollback(s);
    else
        s->origins_committed = s->norigins;
    return ret;
}

/* Ends a write: commit on success, roll back (and keep the error) else. */
int st_finish(struct store *s, int ret)
{
    if (ret == SAT_OK)
        return commit(s);
    st_rollback(s);
    return ret;
}

sqlite3_stmt *st_prepare_once(struct store *s, sqlite3_stmt **slot, const char *sql)
{
    return sat_sql_prepare_once(&s->sql, slot, sql);
}

/* st_prepare_once for a statement on a kind's table: fmt has one %s, the
 * table's name, and is formatted only when the statement is first
 * prepared. */
sqlite3_stmt *st_prepare_kind_once(struct store *s, sqlite3_stmt **slot, const char *fmt,
                                   enum record_kind kind)
{
    char sql[80];
    sql[0] = '\0';
    if (!*slot)
        snprintf(sql, sizeof sql, fmt, st_kind_table(kind));
    return st_prepare_once(s, slot, sql);
}

/* Runs a query with an optional id bound to ?1 and calls row_fn per row. */
int st_query_rows(struct store *s, const char *sql, const struct store_id *id,
                  int (*row_fn)(sqlite3_stmt *q, void *ctx), void *ctx, const char *what)
{
    sqlite3_stmt *q = NULL;
    int rc;
    int ret = SAT_OK;
    s->errmsg[0] = '\0';
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
        return st_sql_fail(s, sqlite3_errcode(s->db), what);
    if (id)
        st_bind_id(q, 1, id);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        ret = row_fn(q, ctx);
        if (ret != 0)
            break;
    }
    if (ret == SAT_OK && rc != SQLITE_DONE)
        ret = st_sql_fail(s, rc, what);
    sqlite3_finalize(q);
    return ret;
}

/* ---- ids ---------------------------------------------------------------- */

void store_id_to_hex(const struct store_id *id, char out[STORE_ID_HEX_BYTES])
{
    sat_hex_encode(id->b, STORE_ID_BYTES, out);
}

int store_id_from_hex(const char *hex, struct store_id *out)
{
    return sat_hex_decode(hex, out->b, STORE_ID_BYTES) == SAT_OK ? SAT_OK : SAT_ERR_STORE_INVALID;
}

_Static_assert(STORE_ID_BYTES == RECORD_ID_BYTES, "store ids are record ids");

/* A new record's id: time-ordered (record_id.h), so the records one
 * transaction adds share the last leaf of each id index. */
int st_new_id(struct store *s, struct store_id *out)
{
    uint8_t rnd[RECORD_ID_RANDOM_BYTES];
    int ret = hal_entropy_fill(s->hal, rnd, sizeof rnd);
    if (ret != SAT_OK)
        return st_fail(s, ret, "no randomness for a record id");
    record_id_make(hal_clock_wall_ms(s->hal), rnd, out->b);
    return SAT_OK;
}

/* Copies a blob column into an id; 0 if it is NULL or not an id. */
int st_column_id(sqlite3_stmt *q, int col, struct store_id *out)
{
    const void *b = sqlite3_column_blob(q, col);
    if (!b || sqlite3_column_bytes(q, col) != STORE_ID_BYTES) {
        memset(out, 0, sizeof *out);
        return 0;
    }
    memcpy(out->b, b, STORE_ID_BYTES);
    return 1;
}

void st_column_text(sqlite3_stmt *q, int col, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(q, col);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

const char *st_kind_table(enum record_kind kind)
{
    switch (kind) {
    case RECORD_KIND_PATIENT: return "patient";
    case RECORD_KIND_VISIT: return "visit";
    case RECORD_KIND_OBSERVATION: return "observation";
    case RECORD_KIND_CARE_NOTE: return "note";
    case RECORD_KIND_TASK: return "task";
    }
    return NULL;
}

/* ---- change log --------------------------------------------------------- */

static void bind_value(sqlite3_stmt *q, int col, struct field_value v)
{
    if (v.type == VT_INT || v.type == VT_FLAG || v.type == VT_TOMBSTONE)
        sqlite3_bind_int64(q, col, v.i);
    if (v.type == VT_TEXT)
        sqlite3_bind_text(q, col + 1, v.text ? v.text : "", -1, SQLITE_TRANSIENT);
    if (v.type == VT_BLOB && v.blob)
        st_bind_id(q, col + 2, v.blob);
}

/* Reads an origin column: NULL is this device. */
static void column_origin(const struct store *s, sqlite3_stmt *q, int col, struct store_id *out)
{
    if (sqlite3_column_type(q, col) == SQLITE_NULL)
        *out = s->device;
    else
        st_column_id(q, col, out);
}

/* Binds an origin: this device as NULL. */
static void bind_origin(const struct store *s, sqlite3_stmt *q, int col,
                        const struct store_id *origin)
{
    if (memcmp(origin, &s->device, sizeof *origin) == 0)
        sqlite3_bind_null(q, col);
    else
        st_bind_id(q, col, origin);
}

/* Appends one of this device's field writes to the change log, with the
 * winning write it replaces as its base, and makes it the winner. */
int st_log_field(struct store *s, enum record_kind kind, const struct store_id *record,
                 uint32_t field, struct field_value v)
{
    sqlite3_stmt *q;
    struct hlc stamp;
    int64_t now = hal_clock_wall_ms(s->hal);
    struct field_winner *base = malloc(sizeof *base);
    int ret;
    if (!base)
        return st_fail(s, SAT_ERR_NO_MEMORY, "out of memory");
    ret = st_winner_get(s, kind, record, field, base);
    if (ret == SAT_OK && base->exists)
        hlc_observe(&s->clock, base->stamp, now); /* the edit follows what it replaces */
    stamp = hlc_tick(&s->clock, now);
    q = st_stmt(s, ST_LOG);
    if (ret == SAT_OK && !q)
        ret = st_sql_fail(s, sqlite3_errcode(s->db), "change log");
    if (ret == SAT_OK) {
        st_bind_id(q, 1, record);
        sqlite3_bind_int(q, 2, (int)kind);
        sqlite3_bind_int64(q, 3, field);
        sqlite3_bind_int(q, 4, v.type);
        bind_value(q, 5, v);
        sqlite3_bind_int64(q, 8, (sqlite3_int64)stamp.wall_ms);
        sqlite3_bind_int64(q, 9, stamp.counter);
        /* origin (10): NULL, this device */
        if (base->exists) {
            sqlite3_bind_int64(q, 11, (sqlite3_int64)base->stamp.wall_ms);
            sqlite3_bind_int64(q, 12, base->stamp.counter);
            bind_origin(s, q, 13, &base->origin);
        }
        ret = st_run(s, q, "change log");
    }
    if (ret == SAT_OK)
        ret = st_winner_put(s, kind, record, field, v, stamp, &s->device);
    free(base);
    return ret;
}

struct change_ctx {
    int (*fn)(void *arg, const struct store_change *c);
    void *arg;
    const struct store *s;
};

static int change_row(sqlite3_stmt *q, void *ctx)
{
    struct change_ctx *cc = ctx;
    struct store_change c;
    memset(&c, 0, sizeof c);
    c.seq = (uint64_t)sqlite3_column_int64(q, 0);
    st_column_id(q, 1, &c.record_id);
    c.kind = (enum record_kind)sqlite3_column_int(q, 2);
    c.field = (uint32_t)sqlite3_column_int64(q, 3);
    c.value_type = sqlite3_column_int(q, 4);
    c.value_int = sqlite3_column_int64(q, 5);
    c.value_text = (const char *)sqlite3_column_text(q, 6);
    st_column_id(q, 7, &c.value_blob);
    c.hlc_wall_ms = (uint64_t)sqlite3_column_int64(q, 8);
    c.hlc_counter = (uint32_t)sqlite3_column_int64(q, 9);
    column_origin(cc->s, q, 10, &c.origin_device);
    c.origin_seq = c.seq;
    if (sqlite3_column_type(q, 11) != SQLITE_NULL) {
        c.has_base = 1;
        c.base_wall_ms = (uint64_t)sqlite3_column_int64(q, 11);
        c.base_counter = (uint32_t)sqlite3_column_int64(q, 12);
        column_origin(cc->s, q, 13, &c.base_device);
    }
    return cc->fn(cc->arg, &c);
}

int store_changes(struct store *s, uint64_t after, unsigned max,
                  int (*fn)(void *arg, const struct store_change *c), void *arg)
{
    struct change_ctx cc = { fn, arg, s };
    sqlite3_stmt *q = st_stmt(s, ST_CHANGES);
    int rc;
    int ret = SAT_OK;
    s->errmsg[0] = '\0';
    if (!q)
        return st_sql_fail(s, sqlite3_errcode(s->db), "read change log");
    sqlite3_bind_int64(q, 1, (sqlite3_int64)after);
    sqlite3_bind_int64(q, 2, max ? (sqlite3_int64)max : -1);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        ret = change_row(q, &cc);
        if (ret != 0)
            break;
    }
    if (ret == SAT_OK && rc != SQLITE_DONE)
        ret = st_sql_fail(s, rc, "read change log");
    sqlite3_reset(q);
    return ret;
}
