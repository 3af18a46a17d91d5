/*
 * hub_backend_sqlite.c - the hub's data in one SQLite file: the storage
 * backend of hub_backend.h. It stores and loads; the rules are the
 * policy's (hub_policy.c).
 *
 * A plain SQLite database on the hub's disk, through SQLite's default VFS:
 * WAL journal with synchronous=FULL, so a change is on disk before the
 * PushAck that acknowledges it is sent (the policy relaxes that for a
 * pull's cursor only). Several processes may share the file (an admin
 * tool beside the hub): a write transaction is BEGIN IMMEDIATE, which
 * takes SQLite's write lock, and the sequence counter is read under it.
 *
 * Schema (version 1, PRAGMA user_version; application_id marks the file):
 *   meta(k, v)              'last_seq': the highest hub sequence issued
 *   device(id, team, revoked, acked_seq, pull_cursor)
 *   patient(id, team)       the caseload a patient belongs to now
 *   record(id, kind, patient_id)  every record the hub has seen; a patient's
 *                           patient_id is its own id
 *   change(seq, record_id, kind, field, vtype, vint, vdata, wall_ms,
 *          counter, origin, origin_seq)  each accepted change once; seq is
 *                           the hub sequence it was accepted at;
 *                           UNIQUE(origin, origin_seq) makes pushes
 *                           idempotent
 *   feed(seq, what, change_seq, record_id, patient_id, team)  what a pull
 *                           walks, in hub order: 0 a change as accepted, 1 a
 *                           re-feed of a change to a patient's new team,
 *                           2 a purge of a record for its old team. A
 *                           change entry's team follows its patient (updated
 *                           on reassignment), so the (team, seq) index finds
 *                           a device's scope as it is at pull time.
 *   field_state(record_id, field, change_seq, deliver_seq)  the winning
 *                           change per field and the last hub sequence at
 *                           which it was offered to its team (conflict rule)
 *   reassignment(seq, patient_id, from_team, to_team)  the audit trail
 *   conflict(id, hub_seq, record_id, field, kept_seq, lost_seq)
 *
 * Hub sequences are issued by the policy from the counter that begin reads
 * and commit saves, in the same transaction as what used them: a failed
 * push leaves no gap and no trace.
 */
#include "hub_backend.h"
#include "sat_sql.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_VERSION 1
#define APPLICATION_ID 0x53415448 /* "SATH": a Satchel hub store */


_Static_assert(sizeof(((satchel_Patient *)0)->team) == HUB_TEAM_BYTES,
               "HUB_TEAM_BYTES must match Patient.team max_size");
_Static_assert(sizeof(((satchel_FieldChange *)0)->record_id) == HUB_ID_BYTES,
               "record ids are HUB_ID_BYTES");

static const char schema_sql[] =
    "CREATE TABLE meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO meta(k, v) VALUES ('last_seq', 0);"
    "CREATE TABLE device(id BLOB PRIMARY KEY, team TEXT NOT NULL,"
    " revoked INTEGER NOT NULL DEFAULT 0, acked_seq INTEGER NOT NULL DEFAULT 0,"
    " pull_cursor INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE TABLE patient(id BLOB PRIMARY KEY, team TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE record(id BLOB PRIMARY KEY, kind INTEGER NOT NULL,"
    " patient_id BLOB NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX record_patient ON record(patient_id);"
    "CREATE TABLE change(seq INTEGER PRIMARY KEY, record_id BLOB NOT NULL,"
    " kind INTEGER NOT NULL, field INTEGER NOT NULL, vtype INTEGER NOT NULL,"
    " vint INTEGER, vdata BLOB, wall_ms INTEGER NOT NULL, counter INTEGER NOT NULL,"
    " origin BLOB NOT NULL, origin_seq INTEGER NOT NULL, UNIQUE(origin, origin_seq));"
    "CREATE TABLE feed(seq INTEGER PRIMARY KEY, what INTEGER NOT NULL, change_seq INTEGER,"
    " record_id BLOB NOT NULL, patient_id BLOB NOT NULL, team TEXT NOT NULL);"
    "CREATE INDEX feed_team_seq ON feed(team, seq);"
    "CREATE INDEX feed_patient ON feed(patient_id, what);"
    "CREATE TABLE field_state(record_id BLOB NOT NULL, field INTEGER NOT NULL,"
    " change_seq INTEGER NOT NULL, deliver_seq INTEGER NOT NULL,"
    " PRIMARY KEY(record_id, field)) WITHOUT ROWID;"
    "CREATE TABLE reassignment(seq INTEGER PRIMARY KEY, patient_id BLOB NOT NULL,"
    " from_team TEXT NOT NULL, to_team TEXT NOT NULL);"
    "CREATE TABLE conflict(id INTEGER PRIMARY KEY, hub_seq INTEGER NOT NULL,"
    " record_id BLOB NOT NULL, field INTEGER NOT NULL, kept_seq INTEGER NOT NULL,"
    " lost_seq INTEGER NOT NULL);";

enum stmt_id {
    ST_BEGIN,
    ST_BEGIN_READ,
    ST_COMMIT,
    ST_SEQ_LOAD,
    ST_SEQ_SAVE,
    ST_DEV_INSERT,
    ST_DEV_GET,
    ST_DEV_REVOKE,
    ST_DEV_CURSOR,
    ST_DEV_ACKED,
    ST_PAT_GET,
    ST_PAT_INSERT,
    ST_PAT_SET_TEAM,
    ST_REC_GET,
    ST_REC_INSERT,
    ST_REC_COUNT,
    ST_REC_OF,
    ST_CHG_HELD,
    ST_CHG_INSERT,
    ST_CHG_GET,
    ST_FEED_INSERT,
    ST_FEED_RETEAM,
    ST_FEED_SCAN,
    ST_STATE_GET,
    ST_STATE_PUT,
    ST_STATE_OF,
    ST_STATE_DELIVERED,
    ST_REASSIGN_INSERT,
    ST_REASSIGN_AFTER,
    ST_CONFLICT_INSERT,
    ST_CONFLICT_LIST,
    ST_STATS,
    ST_SYNC_NORMAL,
    ST_SYNC_FULL,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_SEQ_LOAD] = "SELECT v FROM meta WHERE k = 'last_seq'",
    [ST_SEQ_SAVE] = "UPDATE meta SET v = ?1 WHERE k = 'last_seq'",
    [ST_DEV_INSERT] = "INSERT INTO device(id, team) VALUES (?1, ?2)",
    [ST_DEV_GET] = "SELECT team, revoked, acked_seq, pull_cursor FROM device WHERE id = ?1",
    [ST_DEV_REVOKE] = "UPDATE device SET revoked = 1 WHERE id = ?1",
    [ST_DEV_CURSOR] = "UPDATE device SET pull_cursor = ?2 WHERE id = ?1",
    [ST_DEV_ACKED] = "UPDATE device SET acked_seq = ?2 WHERE id = ?1",
    [ST_PAT_GET] = "SELECT team FROM patient WHERE id = ?1",
    [ST_PAT_INSERT] = "INSERT INTO patient(id, team) VALUES (?1, ?2)",
    [ST_PAT_SET_TEAM] = "UPDATE patient SET team = ?2 WHERE id = ?1",
    [ST_REC_GET] = "SELECT kind, patient_id FROM record WHERE id = ?1",
    [ST_REC_INSERT] = "INSERT INTO record(id, kind, patient_id) VALUES (?1, ?2, ?3)",
    [ST_REC_COUNT] = "SELECT count(*) FROM record WHERE patient_id = ?1",
    [ST_REC_OF] = "SELECT id FROM record WHERE patient_id = ?1 ORDER BY id",
    [ST_CHG_HELD] = "SELECT 1 FROM change WHERE origin = ?1 AND origin_seq = ?2",
    [ST_CHG_INSERT] = "INSERT INTO change(seq, record_id, kind, field, vtype, vint, vdata,"
                      " wall_ms, counter, origin, origin_seq)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [ST_CHG_GET] = "SELECT record_id, kind, field, vtype, vint, vdata, wall_ms, counter,"
                   " origin, origin_seq FROM change WHERE seq = ?1",
    [ST_FEED_INSERT] = "INSERT INTO feed(seq, what, change_seq, record_id, patient_id, team)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_FEED_RETEAM] = "UPDATE feed SET team = ?2 WHERE patient_id = ?1 AND what = 0",
    /* Team ?1's entries after ?2 but the changes ?3 wrote, with the
     * patient's team now for the entries judged by it (re-feeds and
     * purges), and the change (read only for the entries the policy
     * takes). */
    [ST_FEED_SCAN] = "SELECT f.seq, f.what, f.record_id,"
                     " CASE WHEN f.what = 0 THEN NULL ELSE"
                     "  (SELECT p.team FROM patient p WHERE p.id = f.patient_id) END,"
                     " c.record_id, c.kind, c.field, c.vtype, c.vint, c.vdata, c.wall_ms,"
                     " c.counter, c.origin, c.origin_seq"
                     " FROM feed f LEFT JOIN change c ON c.seq = f.change_seq"
                     " WHERE f.team = ?1 AND f.seq > ?2 AND (f.what <> 0 OR c.origin <> ?3)"
                     " ORDER BY f.seq",
    [ST_STATE_GET] = "SELECT s.change_seq, s.deliver_seq, c.wall_ms, c.counter, c.origin"
                     " FROM field_state s JOIN change c ON c.seq = s.change_seq"
                     " WHERE s.record_id = ?1 AND s.field = ?2",
    [ST_STATE_PUT] = "INSERT OR REPLACE INTO field_state(record_id, field, change_seq,"
                     " deliver_seq) VALUES (?1, ?2, ?3, ?4)",
    [ST_STATE_OF] = "SELECT s.record_id, s.field, s.change_seq, s.deliver_seq"
                    " FROM field_state s JOIN record r ON r.id = s.record_id"
                    " WHERE r.patient_id = ?1 ORDER BY s.record_id, s.field",
    [ST_STATE_DELIVERED] = "UPDATE field_state SET deliver_seq = ?2 WHERE deliver_seq < ?3"
                           " AND record_id IN (SELECT id FROM record WHERE patient_id = ?1)",
    [ST_REASSIGN_INSERT] = "INSERT INTO reassignment(seq, patient_id, from_team, to_team)"
                           " VALUES (?1, ?2, ?3, ?4)",
    [ST_REASSIGN_AFTER] = "SELECT 1 FROM reassignment WHERE patient_id = ?1 AND from_team = ?2"
                          " AND seq > ?3 LIMIT 1",
    [ST_CONFLICT_INSERT] = "INSERT INTO conflict(hub_seq, record_id, field, kept_seq, lost_seq)"
                           " VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_CONFLICT_LIST] = "SELECT id, hub_seq, kept_seq, lost_seq FROM conflict WHERE id > ?1"
                         " ORDER BY id LIMIT ?2",
    [ST_SYNC_NORMAL] = "PRAGMA synchronous=NORMAL",
    [ST_SYNC_FULL] = "PRAGMA synchronous=FULL",
    [ST_STATS] = "SELECT (SELECT count(*) FROM device), (SELECT count(*) FROM patient),"
                 " (SELECT count(*) FROM record), (SELECT count(*) FROM change),"
                 " (SELECT count(*) FROM feed), (SELECT count(*) FROM reassignment),"
                 " (SELECT count(*) FROM conflict), (SELECT v FROM meta WHERE k = 'last_seq')",
};

struct hub_sqlite {
    struct hub_backend base;
    sqlite3 *db;
    struct sat_sql sql; /* over db and st */
    sqlite3_stmt *st[ST_COUNT];
    uint64_t seq_at_begin; /* the counter as begin read it */
    char errmsg[HUB_ERRMSG_BYTES];
};

/* ---- errors ------------------------------------------------------------- */

static int fail(struct hub_sqlite *h, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct hub_sqlite *h, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->errmsg, sizeof h->errmsg, fmt, ap);
    va_end(ap);
    return code;
}

static const struct sat_sql_errors hub_sql_errors = {
    SAT_ERR_HUB_STORAGE,
    SAT_ERR_HUB_STORAGE,
    "the hub database is damaged: restore it from a backup",
    "the hub's disk is full",
};

static int sql_fail(struct hub_sqlite *h, int rc, const char *what)
{
    return sat_sql_fail(&h->sql, rc, what);
}

/* ---- binding and reading -------------------------------------------------- */

static void bind_id(sqlite3_stmt *q, int col, const uint8_t id[HUB_ID_BYTES])
{
    sqlite3_bind_blob(q, col, id, HUB_ID_BYTES, SQLITE_TRANSIENT);
}

static void bind_u64(sqlite3_stmt *q, int col, uint64_t v)
{
    sqlite3_bind_int64(q, col, (sqlite3_int64)v);
}

static void bind_text(sqlite3_stmt *q, int col, const char *text)
{
    sqlite3_bind_text(q, col, text, -1, SQLITE_TRANSIENT);
}

static uint64_t column_u64(sqlite3_stmt *q, int col)
{
    return (uint64_t)sqlite3_column_int64(q, col);
}

/* ---- statements ----------------------------------------------------------- */

static sqlite3_stmt *stmt(struct hub_sqlite *h, enum stmt_id id)
{
    return sat_sql_stmt(&h->sql, id);
}

static int run(struct hub_sqlite *h, sqlite3_stmt *q, const char *what)
{
    return sat_sql_run(&h->sql, q, what);
}

static int row(struct hub_sqlite *h, sqlite3_stmt *q, const char *what)
{
    return sat_sql_row(&h->sql, q, what);
}

static int column_id(struct hub_sqlite *h, sqlite3_stmt *q, int col, uint8_t out[HUB_ID_BYTES])
{
    const void *b = sqlite3_column_blob(q, col);
    if (!b || sqlite3_column_bytes(q, col) != HUB_ID_BYTES)
        return fail(h, SAT_ERR_HUB_STORAGE, "the hub database holds a malformed id");
    memcpy(out, b, HUB_ID_BYTES);
    return SAT_OK;
}

/* Copies a team name column; SAT_ERR_HUB_STORAGE if it does not fit. */
static int column_team(struct hub_sqlite *h, sqlite3_stmt *q, int col,
                       char out[HUB_TEAM_BYTES])
{
    const unsigned char *t = sqlite3_column_text(q, col);
    int n = sqlite3_column_bytes(q, col);
    if (!t || n <= 0 || n >= HUB_TEAM_BYTES)
        return fail(h, SAT_ERR_HUB_STORAGE, "the hub database holds a malformed team name");
    memcpy(out, t, (size_t)n);
    out[n] = '\0';
    return SAT_OK;
}

/* Reads a change from 10 columns starting at col (record_id, kind, field,
 * vtype, vint, vdata, wall_ms, counter, origin, origin_seq). */
static int column_change(struct hub_sqlite *h, sqlite3_stmt *q, int col,
                         satchel_FieldChange *c)
{
    int ret;
    memset(c, 0, sizeof *c);
    ret = column_id(h, q, col, c->record_id);
    if (ret == SAT_OK)
        ret = column_id(h, q, col + 8, c->origin_device);
    if (ret != SAT_OK)
        return ret;
    c->kind = (satchel_RecordKind)sqlite3_column_int(q, col + 1);
    c->field = (uint32_t)sqlite3_column_int64(q, col + 2);
    c->has_value = true;
    c->value.which_value = (pb_size_t)sqlite3_column_int(q, col + 3);
    switch (c->value.which_value) {
    case satchel_FieldValue_text_tag: {
        const unsigned char *t = sqlite3_column_text(q, col + 5);
        int n = sqlite3_column_bytes(q, col + 5);
        if (n < 0 || (size_t)n >= HUB_TEXT_BYTES_MAX)
            return fail(h, SAT_ERR_HUB_STORAGE, "the hub database holds an over-long text");
        if (t)
            memcpy(c->value.value.text, t, (size_t)n);
        c->value.value.text[n] = '\0';
        break;
    }
    case satchel_FieldValue_blob_tag: {
        const void *b = sqlite3_column_blob(q, col + 5);
        int n = sqlite3_column_bytes(q, col + 5);
        if (n < 0 || (size_t)n > HUB_BLOB_BYTES_MAX)
            return fail(h, SAT_ERR_HUB_STORAGE, "the hub database holds an over-long blob");
        if (b)
            memcpy(c->value.value.blob.bytes, b, (size_t)n);
        c->value.value.blob.size = (pb_size_t)n;
        break;
    }
    case satchel_FieldValue_integer_tag:
        c->value.value.integer = sqlite3_column_int64(q, col + 4);
        break;
    case satchel_FieldValue_flag_tag:
        c->value.value.flag = sqlite3_column_int64(q, col + 4) != 0;
        break;
    case satchel_FieldValue_tombstone_tag:
        c->value.value.tombstone = sqlite3_column_int64(q, col + 4) != 0;
        break;
    default:
        return fail(h, SAT_ERR_HUB_STORAGE, "the hub database holds an unknown value type");
    }
    c->has_stamp = true;
    c->stamp.wall_ms = column_u64(q, col + 6);
    c->stamp.counter = (uint32_t)sqlite3_column_int64(q, col + 7);
    c->origin_seq = column_u64(q, col + 9);
    return SAT_OK;
}

/* ---- transactions ---------------------------------------------------------- */

static int sq_begin(void *ctx, uint64_t *last_seq)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q;
    int ret;
    h->errmsg[0] = '\0';
    ret = run(h, stmt(h, ST_BEGIN), "begin");
    if (ret != SAT_OK)
        return ret;
    q = stmt(h, ST_SEQ_LOAD);
    ret = row(h, q, "read the hub sequence");
    if (ret == SAT_ERR_NOT_FOUND)
        ret = fail(h, SAT_ERR_HUB_STORAGE, "the hub database has no sequence: damaged");
    if (ret == SAT_OK) {
        h->seq_at_begin = column_u64(q, 0);
        *last_seq = h->seq_at_begin;
        sqlite3_reset(q);
        return SAT_OK;
    }
    sat_sql_rollback(&h->sql);
    return ret;
}

static void sq_rollback(void *ctx)
{
    struct hub_sqlite *h = ctx;
    sat_sql_rollback(&h->sql);
}

/* Saves the sequence counter if it moved, and commits; rolls back on
 * failure. */
static int sq_commit(void *ctx, uint64_t last_seq)
{
    struct hub_sqlite *h = ctx;
    int ret = SAT_OK;
    if (last_seq != h->seq_at_begin) {
        sqlite3_stmt *q = stmt(h, ST_SEQ_SAVE);
        if (q)
            bind_u64(q, 1, last_seq);
        ret = run(h, q, "save the hub sequence");
    }
    if (ret == SAT_OK)
        ret = run(h, stmt(h, ST_COMMIT), "commit");
    if (ret != SAT_OK)
        sq_rollback(h);
    return ret;
}

static int sq_begin_read(void *ctx)
{
    struct hub_sqlite *h = ctx;
    h->errmsg[0] = '\0';
    return run(h, stmt(h, ST_BEGIN_READ), "begin reading");
}

static int sq_relax_sync(void *ctx, int relaxed)
{
    struct hub_sqlite *h = ctx;
    if (relaxed)
        return run(h, stmt(h, ST_SYNC_NORMAL), "relax syncing for a pull");
    if (run(h, stmt(h, ST_SYNC_FULL), "restore syncing") != SAT_OK)
        return fail(h, SAT_ERR_HUB_STORAGE, "cannot restore synchronous=FULL after a pull");
    return SAT_OK;
}

/* ---- devices ---------------------------------------------------------------- */

static int sq_device_get(void *ctx, const uint8_t id[HUB_ID_BYTES], struct hub_device *out)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_DEV_GET);
    int ret;
    if (q)
        bind_id(q, 1, id);
    ret = row(h, q, "read a device");
    if (ret != SAT_OK)
        return ret;
    memset(out, 0, sizeof *out);
    ret = column_team(h, q, 0, out->team);
    out->revoked = sqlite3_column_int(q, 1) != 0;
    out->acked_seq = column_u64(q, 2);
    out->pull_cursor = column_u64(q, 3);
    sqlite3_reset(q);
    return ret;
}

static int sq_device_insert(void *ctx, const uint8_t id[HUB_ID_BYTES], const char *team)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_DEV_INSERT);
    if (q) {
        bind_id(q, 1, id);
        bind_text(q, 2, team);
    }
    return run(h, q, "register a device");
}

static int sq_device_set_revoked(void *ctx, const uint8_t id[HUB_ID_BYTES])
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_DEV_REVOKE);
    if (q)
        bind_id(q, 1, id);
    return run(h, q, "revoke a device");
}

static int sq_device_set_cursor(void *ctx, const uint8_t id[HUB_ID_BYTES], uint64_t cursor)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_DEV_CURSOR);
    if (q) {
        bind_id(q, 1, id);
        bind_u64(q, 2, cursor);
    }
    return run(h, q, "record the device's cursor");
}

static int sq_device_set_acked(void *ctx, const uint8_t id[HUB_ID_BYTES], uint64_t acked)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_DEV_ACKED);
    if (q) {
        bind_id(q, 1, id);
        bind_u64(q, 2, acked);
    }
    return run(h, q, "acknowledge the batch");
}

/* ---- patients and records ------------------------------------------------------ */

static int sq_patient_get_team(void *ctx, const uint8_t id[HUB_ID_BYTES],
                               char team[HUB_TEAM_BYTES])
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_PAT_GET);
    int ret;
    if (q)
        bind_id(q, 1, id);
    ret = row(h, q, "read a patient's team");
    if (ret != SAT_OK)
        return ret;
    ret = column_team(h, q, 0, team);
    sqlite3_reset(q);
    return ret;
}

static int sq_patient_insert(void *ctx, const uint8_t id[HUB_ID_BYTES], const char *team)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_PAT_INSERT);
    if (q) {
        bind_id(q, 1, id);
        bind_text(q, 2, team);
    }
    return run(h, q, "add a patient");
}

static int sq_patient_set_team(void *ctx, const uint8_t id[HUB_ID_BYTES], const char *team)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_PAT_SET_TEAM);
    if (q) {
        bind_id(q, 1, id);
        bind_text(q, 2, team);
    }
    return run(h, q, "move the patient");
}

static int sq_record_get(void *ctx, const uint8_t id[HUB_ID_BYTES], int *kind,
                         uint8_t patient[HUB_ID_BYTES])
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_REC_GET);
    int ret;
    if (q)
        bind_id(q, 1, id);
    ret = row(h, q, "read a record");
    if (ret != SAT_OK)
        return ret;
    *kind = sqlite3_column_int(q, 0);
    ret = column_id(h, q, 1, patient);
    sqlite3_reset(q);
    return ret;
}

static int sq_record_insert(void *ctx, const uint8_t id[HUB_ID_BYTES], int kind,
                            const uint8_t patient[HUB_ID_BYTES])
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_REC_INSERT);
    if (q) {
        bind_id(q, 1, id);
        sqlite3_bind_int(q, 2, kind);
        bind_id(q, 3, patient);
    }
    return run(h, q, "add a record");
}

static int sq_record_count(void *ctx, const uint8_t patient[HUB_ID_BYTES], uint64_t *count)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_REC_COUNT);
    int ret;
    if (q)
        bind_id(q, 1, patient);
    ret = row(h, q, "count the patient's records");
    if (ret == SAT_ERR_NOT_FOUND)
        return fail(h, SAT_ERR_HUB_STORAGE, "count the patient's records: no result");
    if (ret != SAT_OK)
        return ret;
    *count = column_u64(q, 0);
    sqlite3_reset(q);
    return SAT_OK;
}

/* Steps q (bound), calling each(h, q, arg) for every row until it returns
 * non-zero; reports a failed step as `what`. */
static int each_row(struct hub_sqlite *h, sqlite3_stmt *q, const char *what,
                    int (*each)(struct hub_sqlite *h, sqlite3_stmt *q, void *arg), void *arg)
{
    int rc, ret = SAT_OK;
    if (!q)
        return sql_fail(h, sqlite3_errcode(h->db), what);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW && (ret = each(h, q, arg)) == 0)
        ;
    if (ret == 0 && rc != SQLITE_DONE)
        ret = sql_fail(h, rc, what);
    sqlite3_reset(q);
    return ret;
}

struct records_of_call {
    int (*fn)(void *arg, const uint8_t id[HUB_ID_BYTES]);
    void *arg;
};

static int record_row(struct hub_sqlite *h, sqlite3_stmt *q, void *arg)
{
    struct records_of_call *c = arg;
    uint8_t id[HUB_ID_BYTES];
    int ret = column_id(h, q, 0, id);
    return ret != SAT_OK ? ret : c->fn(c->arg, id);
}

static int sq_records_of(void *ctx, const uint8_t patient[HUB_ID_BYTES],
                         int (*fn)(void *arg, const uint8_t id[HUB_ID_BYTES]), void *arg)
{
    struct hub_sqlite *h = ctx;
    struct records_of_call c = { fn, arg };
    sqlite3_stmt *q = stmt(h, ST_REC_OF);
    if (q)
        bind_id(q, 1, patient);
    return each_row(h, q, "list the patient's records", record_row, &c);
}

/* ---- changes ------------------------------------------------------------------ */

static int sq_change_held(void *ctx, const uint8_t origin[HUB_ID_BYTES], uint64_t origin_seq,
                          int *held)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_CHG_HELD);
    int ret;
    if (q) {
        bind_id(q, 1, origin);
        bind_u64(q, 2, origin_seq);
    }
    ret = row(h, q, "look for a held change");
    if (ret == SAT_OK)
        sqlite3_reset(q);
    *held = ret == SAT_OK;
    return ret == SAT_ERR_NOT_FOUND ? SAT_OK : ret;
}

static int sq_change_insert(void *ctx, uint64_t seq, const satchel_FieldChange *c)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_CHG_INSERT);
    if (q) {
        bind_u64(q, 1, seq);
        bind_id(q, 2, c->record_id);
        sqlite3_bind_int(q, 3, (int)c->kind);
        sqlite3_bind_int64(q, 4, c->field);
        sqlite3_bind_int(q, 5, (int)c->value.which_value);
        switch (c->value.which_value) {
        case satchel_FieldValue_text_tag:
            bind_text(q, 7, c->value.value.text);
            break;
        case satchel_FieldValue_blob_tag:
            sqlite3_bind_blob(q, 7, c->value.value.blob.bytes, (int)c->value.value.blob.size,
                              SQLITE_TRANSIENT);
            break;
        case satchel_FieldValue_integer_tag:
            sqlite3_bind_int64(q, 6, c->value.value.integer);
            break;
        case satchel_FieldValue_flag_tag:
            sqlite3_bind_int(q, 6, c->value.value.flag ? 1 : 0);
            break;
        default: /* tombstone */
            sqlite3_bind_int(q, 6, c->value.value.tombstone ? 1 : 0);
            break;
        }
        bind_u64(q, 8, c->stamp.wall_ms);
        sqlite3_bind_int64(q, 9, c->stamp.counter);
        bind_id(q, 10, c->origin_device);
        bind_u64(q, 11, c->origin_seq);
    }
    return run(h, q, "store a change");
}

static int sq_change_get(void *ctx, uint64_t seq, satchel_FieldChange *out)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_CHG_GET);
    int ret;
    if (q)
        bind_u64(q, 1, seq);
    ret = row(h, q, "read a change");
    if (ret != SAT_OK)
        return ret;
    ret = column_change(h, q, 0, out);
    sqlite3_reset(q);
    return ret;
}

/* ---- the feed ------------------------------------------------------------------ */

static int sq_feed_append(void *ctx, const struct hub_feed_entry *e)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_FEED_INSERT);
    if (q) {
        bind_u64(q, 1, e->seq);
        sqlite3_bind_int(q, 2, (int)e->what);
        if (e->what != HUB_FEED_PURGE)
            bind_u64(q, 3, e->change_seq);
        bind_id(q, 4, e->record_id);
        bind_id(q, 5, e->patient_id);
        bind_text(q, 6, e->team);
    }
    return run(h, q, e->what == HUB_FEED_CHANGE   ? "add a change to the feed"
                     : e->what == HUB_FEED_REFEED ? "offer the patient to the new team"
                                                  : "purge the old team's copies");
}

static int sq_feed_retarget(void *ctx, const uint8_t patient[HUB_ID_BYTES], const char *team)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_FEED_RETEAM);
    if (q) {
        bind_id(q, 1, patient);
        bind_text(q, 2, team);
    }
    return run(h, q, "move the patient's changes");
}

struct feed_scan_call {
    hub_feed_visit_fn visit;
    void *arg;
    struct hub_sqlite *h;
    sqlite3_stmt *q;
};

/* The scan's `load`: the change of the row the visitor is looking at. */
static int feed_load(void *scan, satchel_FieldChange *out)
{
    struct feed_scan_call *c = scan;
    if (sqlite3_column_type(c->q, 4) == SQLITE_NULL)
        return fail(c->h, SAT_ERR_HUB_STORAGE, "the hub database lost a change of its feed");
    return column_change(c->h, c->q, 4, out);
}

static int feed_row(struct hub_sqlite *h, sqlite3_stmt *q, void *arg)
{
    struct feed_scan_call *c = arg;
    struct hub_feed_row r;
    int ret = SAT_OK;
    r.seq = column_u64(q, 0);
    r.what = (enum hub_feed_what)sqlite3_column_int(q, 1);
    r.patient_team[0] = '\0'; /* also: no such patient, so in no team */
    if (r.what != HUB_FEED_CHANGE && sqlite3_column_type(q, 3) != SQLITE_NULL)
        ret = column_team(h, q, 3, r.patient_team);
    if (ret == SAT_OK && r.what == HUB_FEED_PURGE)
        ret = column_id(h, q, 2, r.record_id);
    if (ret != SAT_OK)
        return ret;
    ret = c->visit(c->arg, &r, feed_load, c);
    return ret == HUB_SCAN_NEXT ? 0 : ret == HUB_SCAN_STOP ? HUB_SCAN_STOP : ret;
}

static int sq_feed_scan(void *ctx, const char *team, uint64_t after,
                        const uint8_t skip_origin[HUB_ID_BYTES], hub_feed_visit_fn visit,
                        void *arg)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_FEED_SCAN);
    struct feed_scan_call c = { visit, arg, h, q };
    int ret;
    if (q) {
        bind_text(q, 1, team);
        bind_u64(q, 2, after);
        bind_id(q, 3, skip_origin);
    }
    ret = each_row(h, q, "read the feed", feed_row, &c);
    return ret == HUB_SCAN_STOP ? SAT_OK : ret;
}

/* ---- field winners ---------------------------------------------------------------- */

static int sq_winner_get(void *ctx, const uint8_t record[HUB_ID_BYTES], uint32_t field,
                         struct hub_winner *out)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_STATE_GET);
    int ret;
    if (q) {
        bind_id(q, 1, record);
        sqlite3_bind_int64(q, 2, field);
    }
    ret = row(h, q, "read a field's winner");
    if (ret != SAT_OK)
        return ret;
    out->change_seq = column_u64(q, 0);
    out->deliver_seq = column_u64(q, 1);
    out->stamp.wall_ms = column_u64(q, 2);
    out->stamp.counter = (uint32_t)sqlite3_column_int64(q, 3);
    ret = column_id(h, q, 4, out->origin);
    sqlite3_reset(q);
    return ret;
}

static int sq_winner_put(void *ctx, const uint8_t record[HUB_ID_BYTES], uint32_t field,
                         uint64_t change_seq, uint64_t deliver_seq)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_STATE_PUT);
    if (q) {
        bind_id(q, 1, record);
        sqlite3_bind_int64(q, 2, field);
        bind_u64(q, 3, change_seq);
        bind_u64(q, 4, deliver_seq);
    }
    return run(h, q, "record a field's winner");
}

struct winners_of_call {
    int (*fn)(void *arg, const uint8_t record[HUB_ID_BYTES], uint32_t field,
              uint64_t change_seq, uint64_t deliver_seq);
    void *arg;
};

static int winner_row(struct hub_sqlite *h, sqlite3_stmt *q, void *arg)
{
    struct winners_of_call *c = arg;
    uint8_t record[HUB_ID_BYTES];
    int ret = column_id(h, q, 0, record);
    if (ret != SAT_OK)
        return ret;
    return c->fn(c->arg, record, (uint32_t)sqlite3_column_int64(q, 1), column_u64(q, 2),
                 column_u64(q, 3));
}

static int sq_winners_of(void *ctx, const uint8_t patient[HUB_ID_BYTES],
                         int (*fn)(void *arg, const uint8_t record[HUB_ID_BYTES],
                                   uint32_t field, uint64_t change_seq, uint64_t deliver_seq),
                         void *arg)
{
    struct hub_sqlite *h = ctx;
    struct winners_of_call c = { fn, arg };
    sqlite3_stmt *q = stmt(h, ST_STATE_OF);
    if (q)
        bind_id(q, 1, patient);
    return each_row(h, q, "read the patient's fields", winner_row, &c);
}

static int sq_winners_delivered(void *ctx, const uint8_t patient[HUB_ID_BYTES], uint64_t below,
                                uint64_t deliver_seq)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_STATE_DELIVERED);
    if (q) {
        bind_id(q, 1, patient);
        bind_u64(q, 2, deliver_seq);
        bind_u64(q, 3, below);
    }
    return run(h, q, "note the re-feed");
}

/* ---- reassignments, conflicts, counts ------------------------------------------ */

static int sq_reassign_insert(void *ctx, uint64_t seq, const uint8_t patient[HUB_ID_BYTES],
                              const char *from, const char *to)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_REASSIGN_INSERT);
    if (q) {
        bind_u64(q, 1, seq);
        bind_id(q, 2, patient);
        bind_text(q, 3, from);
        bind_text(q, 4, to);
    }
    return run(h, q, "log the reassignment");
}

static int sq_reassign_after(void *ctx, const uint8_t patient[HUB_ID_BYTES], const char *from,
                             uint64_t after, int *found)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_REASSIGN_AFTER);
    int ret;
    if (q) {
        bind_id(q, 1, patient);
        bind_text(q, 2, from);
        bind_u64(q, 3, after);
    }
    ret = row(h, q, "look for a reassignment the device has not pulled");
    if (ret == SAT_OK)
        sqlite3_reset(q);
    *found = ret == SAT_OK;
    return ret == SAT_ERR_NOT_FOUND ? SAT_OK : ret;
}

static int sq_conflict_insert(void *ctx, uint64_t hub_seq, const uint8_t record[HUB_ID_BYTES],
                              uint32_t field, uint64_t kept_seq, uint64_t lost_seq)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_CONFLICT_INSERT);
    if (q) {
        bind_u64(q, 1, hub_seq);
        bind_id(q, 2, record);
        sqlite3_bind_int64(q, 3, field);
        bind_u64(q, 4, kept_seq);
        bind_u64(q, 5, lost_seq);
    }
    return run(h, q, "record a conflict");
}

struct conflicts_call {
    struct hub_conflict_row *out;
    size_t n;
};

static int conflict_row(struct hub_sqlite *h, sqlite3_stmt *q, void *arg)
{
    struct conflicts_call *c = arg;
    (void)h;
    c->out[c->n].id = column_u64(q, 0);
    c->out[c->n].hub_seq = column_u64(q, 1);
    c->out[c->n].kept_seq = column_u64(q, 2);
    c->out[c->n].lost_seq = column_u64(q, 3);
    c->n++;
    return 0;
}

static int sq_conflicts_after(void *ctx, uint64_t after, struct hub_conflict_row *out,
                              size_t cap, size_t *count)
{
    struct hub_sqlite *h = ctx;
    struct conflicts_call c = { out, 0 };
    sqlite3_stmt *q = stmt(h, ST_CONFLICT_LIST);
    int ret;
    if (q) {
        bind_u64(q, 1, after);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)cap);
    }
    ret = each_row(h, q, "list conflicts", conflict_row, &c);
    if (ret == SAT_OK)
        *count = c.n;
    return ret;
}

static int sq_stats(void *ctx, struct hub_stats *out)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q = stmt(h, ST_STATS);
    int ret;
    h->errmsg[0] = '\0';
    ret = row(h, q, "count");
    if (ret == SAT_ERR_NOT_FOUND)
        ret = fail(h, SAT_ERR_HUB_STORAGE, "count: no result");
    if (ret != SAT_OK)
        return ret;
    out->devices = column_u64(q, 0);
    out->patients = column_u64(q, 1);
    out->records = column_u64(q, 2);
    out->changes = column_u64(q, 3);
    out->feed_entries = column_u64(q, 4);
    out->reassignments = column_u64(q, 5);
    out->conflicts = column_u64(q, 6);
    out->last_seq = column_u64(q, 7);
    sqlite3_reset(q);
    return SAT_OK;
}

/* ---- open and close ---------------------------------------------------------------- */

static const char *sq_errmsg(void *ctx)
{
    struct hub_sqlite *h = ctx;
    return h->errmsg;
}

static void sq_close(void *ctx)
{
    struct hub_sqlite *h = ctx;
    if (!h)
        return;
    sat_sql_finalize(&h->sql);
    sqlite3_close(h->db);
    free(h);
}

/* One integer from a pragma or query. */
static int query_int(struct hub_sqlite *h, const char *sql, sqlite3_int64 *out)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(h->db, sql, -1, &q, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(q, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(q);
    return rc == SQLITE_OK ? SAT_OK : sql_fail(h, rc, sql);
}

/* Creates the schema in a new file, or checks an existing one. */
static int schema_ready(struct hub_sqlite *h, const char *path)
{
    sqlite3_int64 app = 0, version = 0, tables = 0;
    int ret = query_int(h, "PRAGMA application_id", &app);
    if (ret == SAT_OK)
        ret = query_int(h, "PRAGMA user_version", &version);
    if (ret == SAT_OK)
        ret = query_int(h, "SELECT count(*) FROM sqlite_schema", &tables);
    if (ret != SAT_OK)
        return ret;
    if (app == 0 && version == 0 && tables == 0) {
        char *err = NULL;
        char sql[sizeof schema_sql + 128];
        snprintf(sql, sizeof sql, "BEGIN IMMEDIATE;%sPRAGMA application_id=%d;"
                 "PRAGMA user_version=%d;COMMIT;",
                 schema_sql, APPLICATION_ID, SCHEMA_VERSION);
        if (sqlite3_exec(h->db, sql, NULL, NULL, &err) != SQLITE_OK) {
            ret = fail(h, SAT_ERR_HUB_STORAGE, "create the hub store in %s: %s", path,
                       err ? err : "?");
            sqlite3_free(err);
            (void)sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
        }
        return ret;
    }
    if (app != APPLICATION_ID)
        return fail(h, SAT_ERR_HUB_STORAGE, "%s is not a Satchel hub store", path);
    if (version != SCHEMA_VERSION)
        return fail(h, SAT_ERR_HUB_STORAGE,
                    "%s has hub store schema %lld; this hub reads %d: use the matching hub",
                    path, (long long)version, SCHEMA_VERSION);
    return SAT_OK;
}

int hub_backend_sqlite_open(const char *path, struct hub_backend **out,
                            char why[HUB_ERRMSG_BYTES])
{
    struct hub_sqlite *h;
    sqlite3_stmt *q;
    int ret = SAT_ERR_HUB_STORAGE, rc;
    int in_memory;

    if (!path || !out)
        return SAT_ERR_INVALID;
    h = calloc(1, sizeof *h);
    if (!h)
        return SAT_ERR_NO_MEMORY;
    h->sql.texts = stmt_sql;
    h->sql.kept = h->st;
    h->sql.count = ST_COUNT;
    h->sql.errors = &hub_sql_errors;
    h->sql.errmsg = h->errmsg;
    h->sql.errmsg_bytes = sizeof h->errmsg;
    h->base.version = HUB_BACKEND_VERSION;
    h->base.ctx = h;
    h->base.close = sq_close;
    h->base.errmsg = sq_errmsg;
    h->base.begin = sq_begin;
    h->base.commit = sq_commit;
    h->base.rollback = sq_rollback;
    h->base.begin_read = sq_begin_read;
    h->base.relax_sync = sq_relax_sync;
    h->base.device_get = sq_device_get;
    h->base.device_insert = sq_device_insert;
    h->base.device_set_revoked = sq_device_set_revoked;
    h->base.device_set_cursor = sq_device_set_cursor;
    h->base.device_set_acked = sq_device_set_acked;
    h->base.patient_get_team = sq_patient_get_team;
    h->base.patient_insert = sq_patient_insert;
    h->base.patient_set_team = sq_patient_set_team;
    h->base.record_get = sq_record_get;
    h->base.record_insert = sq_record_insert;
    h->base.record_count = sq_record_count;
    h->base.records_of = sq_records_of;
    h->base.change_held = sq_change_held;
    h->base.change_insert = sq_change_insert;
    h->base.change_get = sq_change_get;
    h->base.feed_append = sq_feed_append;
    h->base.feed_retarget = sq_feed_retarget;
    h->base.feed_scan = sq_feed_scan;
    h->base.winner_get = sq_winner_get;
    h->base.winner_put = sq_winner_put;
    h->base.winners_of = sq_winners_of;
    h->base.winners_delivered = sq_winners_delivered;
    h->base.reassign_insert = sq_reassign_insert;
    h->base.reassign_after = sq_reassign_after;
    h->base.conflict_insert = sq_conflict_insert;
    h->base.conflicts_after = sq_conflicts_after;
    h->base.stats = sq_stats;

    /* In memory: SQLite's memdb VFS, whose pages sit in one buffer and go
     * through a page cache of the usual size. A plain ":memory:" database
     * lives in its page cache, and SQLite walks all of that cache's hash
     * table at every commit: a commit's cost grew with the store (2.4% of
     * a 120-day run of 10 tablets went there, and more over a year). */
    in_memory = strcmp(path, ":memory:") == 0;
    if (in_memory)
        rc = sqlite3_open_v2("satchel-hub", &h->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                             "memdb");
    else
        rc = sqlite3_open_v2(path, &h->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    h->sql.db = h->db;
    if (rc != SQLITE_OK) {
        ret = sql_fail(h, rc, path);
        goto exit;
    }
    sqlite3_extended_result_codes(h->db, 1);
    if (in_memory) {
        /* memdb stops a store at 1 GiB unless told otherwise; as for any
         * in-memory database, the host's memory is the limit. */
        sqlite3_int64 limit = INT64_MAX;
        rc = sqlite3_file_control(h->db, "main", SQLITE_FCNTL_SIZE_LIMIT, &limit);
        if (rc != SQLITE_OK) {
            ret = sql_fail(h, rc, path);
            goto exit;
        }
    }
    sqlite3_busy_timeout(h->db, HUB_LOCK_WAIT_MS);
    rc = sqlite3_exec(h->db,
                      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                      " PRAGMA foreign_keys=OFF; PRAGMA temp_store=MEMORY;",
                      NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        ret = sql_fail(h, rc, path);
        goto exit;
    }
    ret = schema_ready(h, path);
    if (ret != SAT_OK)
        goto exit;
    q = stmt(h, ST_SEQ_LOAD);
    ret = row(h, q, "read the hub sequence");
    if (ret == SAT_ERR_NOT_FOUND)
        ret = fail(h, SAT_ERR_HUB_STORAGE, "%s has no hub sequence: damaged", path);
    if (ret != SAT_OK)
        goto exit;
    sqlite3_reset(q);
    h->errmsg[0] = '\0';
    *out = &h->base;
    return SAT_OK;
exit:
    if (why)
        snprintf(why, HUB_ERRMSG_BYTES, "%s", h->errmsg);
    sq_close(h);
    return ret;
}
