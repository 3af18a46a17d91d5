/*
 * hub_store_sqlite.c - the hub store (hub_store.h) in one SQLite file.
 *
 * A plain SQLite database on the hub's disk, through SQLite's default VFS:
 * WAL journal with synchronous=FULL, so a change is on disk before the
 * PushAck that acknowledges it is sent. Every call is one transaction.
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
 * Hub sequences are issued from a counter read from meta when a write
 * transaction begins (under SQLite's write lock, so another process such as
 * an admin tool may share the file) and saved by the transaction that used
 * it: a failed push leaves no gap and no trace.
 */
#include "hub_store.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_VERSION 1
#define APPLICATION_ID 0x53415448 /* "SATH": a Satchel hub store */

#define FIELD_TOMBSTONE 0
#define FIELD_PATIENT_ID 2   /* Visit/Observation/CareNote/Task.patient_id */
#define FIELD_PATIENT_TEAM 8 /* Patient.team */

#define TEXT_BYTES_MAX sizeof(((satchel_FieldValue *)0)->value.text)
#define BLOB_BYTES_MAX sizeof(((satchel_FieldValue *)0)->value.blob.bytes)

_Static_assert(sizeof(((satchel_PullBatch *)0)->purge_ids) /
                       sizeof(((satchel_PullBatch *)0)->purge_ids[0]) ==
                   HUB_PULL_PURGE_MAX,
               "HUB_PULL_PURGE_MAX must match PullBatch.purge_ids max_count");
_Static_assert(sizeof(((satchel_Patient *)0)->team) == HUB_TEAM_BYTES,
               "HUB_TEAM_BYTES must match Patient.team max_size");
_Static_assert(sizeof(((satchel_FieldChange *)0)->record_id) == HUB_ID_BYTES,
               "record ids are HUB_ID_BYTES");

enum feed_what { FEED_CHANGE = 0, FEED_REFEED = 1, FEED_PURGE = 2 };

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
    ST_COMMIT,
    ST_ROLLBACK,
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
    ST_CHG_HELD,
    ST_CHG_INSERT,
    ST_CHG_GET,
    ST_FEED_INSERT,
    ST_FEED_RETEAM,
    ST_FEED_PURGES,
    ST_FEED_REFEEDS,
    ST_STATE_GET,
    ST_STATE_PUT,
    ST_STATE_DELIVERED,
    ST_REASSIGN_INSERT,
    ST_REASSIGN_UNSEEN,
    ST_CONFLICT_INSERT,
    ST_CONFLICT_LIST,
    ST_PULL,
    ST_STATS,
    ST_SYNC_NORMAL,
    ST_SYNC_FULL,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
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
    [ST_CHG_HELD] = "SELECT 1 FROM change WHERE origin = ?1 AND origin_seq = ?2",
    [ST_CHG_INSERT] = "INSERT INTO change(seq, record_id, kind, field, vtype, vint, vdata,"
                      " wall_ms, counter, origin, origin_seq)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [ST_CHG_GET] = "SELECT record_id, kind, field, vtype, vint, vdata, wall_ms, counter,"
                   " origin, origin_seq FROM change WHERE seq = ?1",
    [ST_FEED_INSERT] = "INSERT INTO feed(seq, what, change_seq, record_id, patient_id, team)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_FEED_RETEAM] = "UPDATE feed SET team = ?2 WHERE patient_id = ?1 AND what = 0",
    /* One purge entry per record of the patient for its old team, the
     * patient first, numbered on from ?2. */
    [ST_FEED_PURGES] = "INSERT INTO feed(seq, what, change_seq, record_id, patient_id, team)"
                       " SELECT ?2 + row_number() OVER (ORDER BY r.id <> ?1, r.id), 2, NULL,"
                       " r.id, ?1, ?3 FROM record r WHERE r.patient_id = ?1",
    /* One re-feed entry per winning field of the patient's records for its
     * new team, numbered on from ?2; fields offered since ?4 (the team
     * field the hub just wrote) are in that team's feed already. */
    [ST_FEED_REFEEDS] = "INSERT INTO feed(seq, what, change_seq, record_id, patient_id, team)"
                        " SELECT ?2 + row_number() OVER (ORDER BY s.record_id, s.field), 1,"
                        " s.change_seq, s.record_id, ?1, ?3"
                        " FROM field_state s JOIN record r ON r.id = s.record_id"
                        " WHERE r.patient_id = ?1 AND s.deliver_seq < ?4",
    [ST_STATE_GET] = "SELECT s.change_seq, s.deliver_seq, c.wall_ms, c.counter, c.origin"
                     " FROM field_state s JOIN change c ON c.seq = s.change_seq"
                     " WHERE s.record_id = ?1 AND s.field = ?2",
    [ST_STATE_PUT] = "INSERT OR REPLACE INTO field_state(record_id, field, change_seq,"
                     " deliver_seq) VALUES (?1, ?2, ?3, ?4)",
    /* Conservative: the re-fed fields count as offered at the end of the
     * re-feed (a device between its first and last entry is "not yet"). */
    [ST_STATE_DELIVERED] = "UPDATE field_state SET deliver_seq = ?2 WHERE deliver_seq < ?3"
                           " AND record_id IN (SELECT id FROM record WHERE patient_id = ?1)",
    [ST_REASSIGN_INSERT] = "INSERT INTO reassignment(seq, patient_id, from_team, to_team)"
                           " VALUES (?1, ?2, ?3, ?4)",
    /* A reassignment of patient ?1 away from team ?2 after hub sequence ?3. */
    [ST_REASSIGN_UNSEEN] = "SELECT 1 FROM reassignment WHERE patient_id = ?1 AND from_team = ?2"
                           " AND seq > ?3 LIMIT 1",
    [ST_CONFLICT_INSERT] = "INSERT INTO conflict(hub_seq, record_id, field, kept_seq, lost_seq)"
                           " VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_CONFLICT_LIST] = "SELECT id, hub_seq, kept_seq, lost_seq FROM conflict WHERE id > ?1"
                         " ORDER BY id LIMIT ?2",
    /* A device's feed: ?1 its team, ?2 its cursor, ?3 its id. Changes as
     * accepted, except its own; re-feeds while the patient is still in the
     * team; purges unless the patient has come back to the team. */
    [ST_PULL] = "SELECT f.seq, f.what, f.record_id, c.record_id, c.kind, c.field, c.vtype,"
                " c.vint, c.vdata, c.wall_ms, c.counter, c.origin, c.origin_seq"
                " FROM feed f LEFT JOIN change c ON c.seq = f.change_seq"
                " WHERE f.team = ?1 AND f.seq > ?2 AND CASE f.what"
                "  WHEN 0 THEN c.origin <> ?3"
                "  WHEN 1 THEN (SELECT p.team FROM patient p WHERE p.id = f.patient_id) = ?1"
                "  ELSE (SELECT p.team FROM patient p WHERE p.id = f.patient_id) IS NOT ?1 END"
                " ORDER BY f.seq",
    [ST_SYNC_NORMAL] = "PRAGMA synchronous=NORMAL",
    [ST_SYNC_FULL] = "PRAGMA synchronous=FULL",
    [ST_STATS] = "SELECT (SELECT count(*) FROM device), (SELECT count(*) FROM patient),"
                 " (SELECT count(*) FROM record), (SELECT count(*) FROM change),"
                 " (SELECT count(*) FROM feed), (SELECT count(*) FROM reassignment),"
                 " (SELECT count(*) FROM conflict), (SELECT v FROM meta WHERE k = 'last_seq')",
};

struct hub_sqlite {
    struct hub_store base;
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    uint64_t last_seq;       /* the highest hub sequence issued */
    uint64_t last_seq_saved; /* its value when the transaction began */
    char errmsg[HUB_ERRMSG_BYTES];
};

static const uint8_t hub_origin[HUB_ID_BYTES]; /* all zeros: the hub itself */

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

/* Maps an SQLite result to a Satchel code, with the message. */
static int sql_fail(struct hub_sqlite *h, int rc, const char *what)
{
    const char *msg = h->db ? sqlite3_errmsg(h->db) : sqlite3_errstr(rc);
    if ((rc & 0xff) == SQLITE_FULL)
        return fail(h, SAT_ERR_NO_SPACE, "%s: the hub's disk is full", what);
    if ((rc & 0xff) == SQLITE_NOMEM)
        return fail(h, SAT_ERR_NO_MEMORY, "%s: out of memory", what);
    if ((rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB)
        return fail(h, SAT_ERR_HUB_STORAGE,
                    "%s: the hub database is damaged (%s): restore it from a backup", what, msg);
    return fail(h, SAT_ERR_HUB_STORAGE, "%s: %s", what, msg);
}

static void hex16(const uint8_t id[HUB_ID_BYTES], char out[2 * HUB_ID_BYTES + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < HUB_ID_BYTES; i++) {
        out[2 * i] = digits[id[i] >> 4];
        out[2 * i + 1] = digits[id[i] & 0xf];
    }
    out[2 * HUB_ID_BYTES] = '\0';
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

static uint64_t column_u64(sqlite3_stmt *q, int col)
{
    return (uint64_t)sqlite3_column_int64(q, col);
}

/* ---- statements and transactions ---------------------------------------- */

static sqlite3_stmt *stmt(struct hub_sqlite *h, enum stmt_id id)
{
    if (!h->st[id] && sqlite3_prepare_v3(h->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                         &h->st[id], NULL) != SQLITE_OK)
        return NULL;
    sqlite3_reset(h->st[id]);
    sqlite3_clear_bindings(h->st[id]);
    return h->st[id];
}

/* Steps a statement to its end (no row wanted). */
static int run(struct hub_sqlite *h, sqlite3_stmt *q, const char *what)
{
    int rc;
    if (!q)
        return sql_fail(h, sqlite3_errcode(h->db), what);
    rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return sql_fail(h, rc, what);
    return SAT_OK;
}

/* Steps a statement for one row: SAT_OK with the row (reset it after),
 * SAT_ERR_NOT_FOUND without one. */
static int row(struct hub_sqlite *h, sqlite3_stmt *q, const char *what)
{
    int rc;
    if (!q)
        return sql_fail(h, sqlite3_errcode(h->db), what);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        return SAT_OK;
    sqlite3_reset(q);
    if (rc == SQLITE_DONE)
        return SAT_ERR_NOT_FOUND;
    return sql_fail(h, rc, what);
}

/* Starts a write transaction. The sequence counter is read again under the
 * write lock: another process (an admin tool) may have used the file. */
static int begin(struct hub_sqlite *h)
{
    sqlite3_stmt *q;
    int ret;
    h->errmsg[0] = '\0';
    h->last_seq_saved = h->last_seq;
    ret = run(h, stmt(h, ST_BEGIN), "begin");
    if (ret != SAT_OK)
        return ret;
    q = stmt(h, ST_SEQ_LOAD);
    ret = row(h, q, "read the hub sequence");
    if (ret == SAT_ERR_NOT_FOUND)
        ret = fail(h, SAT_ERR_HUB_STORAGE, "the hub database has no sequence: damaged");
    if (ret == SAT_OK) {
        h->last_seq = column_u64(q, 0);
        h->last_seq_saved = h->last_seq;
        sqlite3_reset(q);
        return SAT_OK;
    }
    (void)run(h, stmt(h, ST_ROLLBACK), "rollback");
    return ret;
}

static void rollback(struct hub_sqlite *h)
{
    if (!sqlite3_get_autocommit(h->db)) {
        char keep[HUB_ERRMSG_BYTES];
        memcpy(keep, h->errmsg, sizeof keep);
        (void)run(h, stmt(h, ST_ROLLBACK), "rollback");
        memcpy(h->errmsg, keep, sizeof keep);
    }
    h->last_seq = h->last_seq_saved;
}

/* Saves the sequence counter if it moved, and commits; rolls back on
 * failure. */
static int commit(struct hub_sqlite *h)
{
    int ret = SAT_OK;
    if (h->last_seq != h->last_seq_saved) {
        sqlite3_stmt *q = stmt(h, ST_SEQ_SAVE);
        if (q)
            sqlite3_bind_int64(q, 1, (sqlite3_int64)h->last_seq);
        ret = run(h, q, "save the hub sequence");
    }
    if (ret == SAT_OK)
        ret = run(h, stmt(h, ST_COMMIT), "commit");
    if (ret != SAT_OK)
        rollback(h);
    return ret;
}

/* Ends a call: commits on success, rolls back on failure. */
static int finish(struct hub_sqlite *h, int ret)
{
    if (ret == SAT_OK)
        return commit(h);
    rollback(h);
    return ret;
}

static uint64_t next_seq(struct hub_sqlite *h)
{
    return ++h->last_seq;
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

static int team_valid(const char *team)
{
    return team && team[0] != '\0' && memchr(team, '\0', HUB_TEAM_BYTES) != NULL;
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
        if (n < 0 || (size_t)n >= TEXT_BYTES_MAX)
            return fail(h, SAT_ERR_HUB_STORAGE, "the hub database holds an over-long text");
        if (t)
            memcpy(c->value.value.text, t, (size_t)n);
        c->value.value.text[n] = '\0';
        break;
    }
    case satchel_FieldValue_blob_tag: {
        const void *b = sqlite3_column_blob(q, col + 5);
        int n = sqlite3_column_bytes(q, col + 5);
        if (n < 0 || (size_t)n > BLOB_BYTES_MAX)
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

static int change_get(struct hub_sqlite *h, uint64_t seq, satchel_FieldChange *out)
{
    sqlite3_stmt *q = stmt(h, ST_CHG_GET);
    int ret;
    if (q)
        bind_u64(q, 1, seq);
    ret = row(h, q, "read a change");
    if (ret == SAT_ERR_NOT_FOUND)
        return fail(h, SAT_ERR_HUB_STORAGE, "the hub database lost change %llu",
                    (unsigned long long)seq);
    if (ret != SAT_OK)
        return ret;
    ret = column_change(h, q, 0, out);
    sqlite3_reset(q);
    return ret;
}

/* ---- devices ---------------------------------------------------------------- */

static int device_load(struct hub_sqlite *h, const uint8_t device[HUB_ID_BYTES],
                       struct hub_device *out)
{
    sqlite3_stmt *q = stmt(h, ST_DEV_GET);
    int ret;
    if (q)
        bind_id(q, 1, device);
    ret = row(h, q, "read a device");
    if (ret == SAT_ERR_NOT_FOUND) {
        char hex[2 * HUB_ID_BYTES + 1];
        hex16(device, hex);
        return fail(h, SAT_ERR_HUB_UNKNOWN_DEVICE,
                    "device %s is not registered with this hub: provision it first", hex);
    }
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

/* Loads a device that may push or pull: known and not revoked. */
static int device_active(struct hub_sqlite *h, const uint8_t device[HUB_ID_BYTES],
                         struct hub_device *out)
{
    int ret = device_load(h, device, out);
    if (ret == SAT_OK && out->revoked) {
        char hex[2 * HUB_ID_BYTES + 1];
        hex16(device, hex);
        ret = fail(h, SAT_ERR_HUB_REVOKED, "device %s is revoked: it must wipe itself", hex);
    }
    return ret;
}

/* Records the cursor a device says it has applied. */
static int device_confirm_cursor(struct hub_sqlite *h, const uint8_t device[HUB_ID_BYTES],
                                 struct hub_device *dev, uint64_t cursor)
{
    sqlite3_stmt *q;
    if (cursor > h->last_seq)
        return fail(h, SAT_ERR_HUB_BAD_CURSOR,
                    "pull cursor %llu is beyond the hub's last sequence %llu (hub restored "
                    "from an older backup?)",
                    (unsigned long long)cursor, (unsigned long long)h->last_seq);
    if (cursor == dev->pull_cursor)
        return SAT_OK;
    q = stmt(h, ST_DEV_CURSOR);
    if (q) {
        bind_id(q, 1, device);
        bind_u64(q, 2, cursor);
    }
    dev->pull_cursor = cursor;
    return run(h, q, "record the device's cursor");
}

static int sq_device_register(void *ctx, const uint8_t device[HUB_ID_BYTES], const char *team)
{
    struct hub_sqlite *h = ctx;
    struct hub_device dev;
    sqlite3_stmt *q;
    int ret;
    if (memcmp(device, hub_origin, HUB_ID_BYTES) == 0)
        return fail(h, SAT_ERR_INVALID, "the all-zero device id is the hub's own");
    if (!team_valid(team))
        return fail(h, SAT_ERR_INVALID, "a team name must be 1 to %d bytes",
                    HUB_TEAM_BYTES - 1);
    ret = begin(h);
    if (ret != SAT_OK)
        return ret;
    ret = device_load(h, device, &dev);
    if (ret == SAT_OK) {
        ret = fail(h, SAT_ERR_EXISTS, "that device is registered already (team %s)", dev.team);
        return finish(h, ret);
    }
    if (ret != SAT_ERR_HUB_UNKNOWN_DEVICE)
        return finish(h, ret);
    h->errmsg[0] = '\0';
    q = stmt(h, ST_DEV_INSERT);
    if (q) {
        bind_id(q, 1, device);
        sqlite3_bind_text(q, 2, team, -1, SQLITE_TRANSIENT);
    }
    return finish(h, run(h, q, "register a device"));
}

static int sq_device_get(void *ctx, const uint8_t device[HUB_ID_BYTES], struct hub_device *out)
{
    struct hub_sqlite *h = ctx;
    struct hub_device dev;
    int ret;
    h->errmsg[0] = '\0';
    ret = device_load(h, device, &dev);
    if (ret == SAT_OK)
        *out = dev;
    return ret;
}

static int sq_device_revoke(void *ctx, const uint8_t device[HUB_ID_BYTES])
{
    struct hub_sqlite *h = ctx;
    struct hub_device dev;
    sqlite3_stmt *q;
    int ret = begin(h);
    if (ret != SAT_OK)
        return ret;
    ret = device_load(h, device, &dev);
    if (ret == SAT_OK && !dev.revoked) {
        q = stmt(h, ST_DEV_REVOKE);
        if (q)
            bind_id(q, 1, device);
        ret = run(h, q, "revoke a device");
    }
    return finish(h, ret);
}

static int sq_device_checkin(void *ctx, const uint8_t device[HUB_ID_BYTES], uint64_t pull_cursor,
                             struct hub_device *out)
{
    struct hub_sqlite *h = ctx;
    struct hub_device dev;
    int ret = begin(h);
    if (ret != SAT_OK)
        return ret;
    ret = device_load(h, device, &dev);
    if (ret == SAT_OK && !dev.revoked)
        ret = device_confirm_cursor(h, device, &dev, pull_cursor);
    ret = finish(h, ret);
    if (ret == SAT_OK)
        *out = dev;
    return ret;
}

/* ---- patients and records ------------------------------------------------------ */

/* The team of a patient, or SAT_ERR_HUB_UNKNOWN_RECORD. */
static int patient_team_get(struct hub_sqlite *h, const uint8_t patient[HUB_ID_BYTES],
                            char team[HUB_TEAM_BYTES])
{
    sqlite3_stmt *q = stmt(h, ST_PAT_GET);
    int ret;
    if (q)
        bind_id(q, 1, patient);
    ret = row(h, q, "read a patient's team");
    if (ret == SAT_ERR_NOT_FOUND) {
        char hex[2 * HUB_ID_BYTES + 1];
        hex16(patient, hex);
        return fail(h, SAT_ERR_HUB_UNKNOWN_RECORD, "patient %s is not known to the hub", hex);
    }
    if (ret != SAT_OK)
        return ret;
    ret = column_team(h, q, 0, team);
    sqlite3_reset(q);
    return ret;
}

/* A record's kind and patient: SAT_OK, SAT_ERR_NOT_FOUND or a failure. */
static int record_get(struct hub_sqlite *h, const uint8_t id[HUB_ID_BYTES], int *kind,
                      uint8_t patient[HUB_ID_BYTES])
{
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

static int record_insert(struct hub_sqlite *h, const uint8_t id[HUB_ID_BYTES], int kind,
                         const uint8_t patient[HUB_ID_BYTES])
{
    sqlite3_stmt *q = stmt(h, ST_REC_INSERT);
    if (q) {
        bind_id(q, 1, id);
        sqlite3_bind_int(q, 2, kind);
        bind_id(q, 3, patient);
    }
    return run(h, q, "add a record");
}

static int sq_patient_team(void *ctx, const uint8_t patient_id[HUB_ID_BYTES],
                           char team[HUB_TEAM_BYTES])
{
    struct hub_sqlite *h = ctx;
    char t[HUB_TEAM_BYTES];
    int ret;
    h->errmsg[0] = '\0';
    ret = patient_team_get(h, patient_id, t);
    if (ret == SAT_OK)
        memcpy(team, t, sizeof t);
    return ret;
}

/* ---- changes, field winners and conflicts ------------------------------------- */

/* Orders two writes by the merge rule: (stamp, origin). */
static int stamp_compare(uint64_t a_wall, uint32_t a_counter, uint64_t b_wall, uint32_t b_counter)
{
    if (a_wall != b_wall)
        return a_wall < b_wall ? -1 : 1;
    if (a_counter != b_counter)
        return a_counter < b_counter ? -1 : 1;
    return 0;
}

/* Stores change c at hub sequence seq and its feed entry for team. */
static int change_store(struct hub_sqlite *h, uint64_t seq, const satchel_FieldChange *c,
                        const uint8_t patient[HUB_ID_BYTES], const char *team)
{
    sqlite3_stmt *q = stmt(h, ST_CHG_INSERT);
    int ret;
    if (q) {
        bind_u64(q, 1, seq);
        bind_id(q, 2, c->record_id);
        sqlite3_bind_int(q, 3, (int)c->kind);
        sqlite3_bind_int64(q, 4, c->field);
        sqlite3_bind_int(q, 5, (int)c->value.which_value);
        switch (c->value.which_value) {
        case satchel_FieldValue_text_tag:
            sqlite3_bind_text(q, 7, c->value.value.text, -1, SQLITE_TRANSIENT);
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
    ret = run(h, q, "store a change");
    if (ret != SAT_OK)
        return ret;
    q = stmt(h, ST_FEED_INSERT);
    if (q) {
        bind_u64(q, 1, seq);
        sqlite3_bind_int(q, 2, FEED_CHANGE);
        bind_u64(q, 3, seq);
        bind_id(q, 4, c->record_id);
        bind_id(q, 5, patient);
        sqlite3_bind_text(q, 6, team, -1, SQLITE_TRANSIENT);
    }
    return run(h, q, "add a change to the feed");
}

/* Folds change c (stored at seq) into its field's winner. With
 * writer_cursor (the writing device's confirmed pull cursor) not NULL,
 * applies the conflict rule of hub_store.h; *conflicts counts conflicts. */
static int field_merge(struct hub_sqlite *h, uint64_t seq, const satchel_FieldChange *c,
                       const uint64_t *writer_cursor, size_t *conflicts)
{
    sqlite3_stmt *q = stmt(h, ST_STATE_GET);
    uint64_t w_seq, w_deliver, w_wall;
    uint32_t w_counter;
    uint8_t w_origin[HUB_ID_BYTES];
    int ret, order, x_wins;

    if (q) {
        bind_id(q, 1, c->record_id);
        sqlite3_bind_int64(q, 2, c->field);
    }
    ret = row(h, q, "read a field's winner");
    if (ret == SAT_ERR_NOT_FOUND) {
        x_wins = 1;
        goto put;
    }
    if (ret != SAT_OK)
        return ret;
    w_seq = column_u64(q, 0);
    w_deliver = column_u64(q, 1);
    w_wall = column_u64(q, 2);
    w_counter = (uint32_t)sqlite3_column_int64(q, 3);
    ret = column_id(h, q, 4, w_origin);
    sqlite3_reset(q);
    if (ret != SAT_OK)
        return ret;

    order = stamp_compare(c->stamp.wall_ms, c->stamp.counter, w_wall, w_counter);
    if (order == 0)
        order = memcmp(c->origin_device, w_origin, HUB_ID_BYTES);
    x_wins = order > 0;

    if (writer_cursor && memcmp(c->origin_device, w_origin, HUB_ID_BYTES) != 0) {
        int below = stamp_compare(c->stamp.wall_ms, c->stamp.counter, w_wall, w_counter) < 0;
        int unseen = w_deliver > *writer_cursor;
        if (below || unseen) {
            q = stmt(h, ST_CONFLICT_INSERT);
            if (q) {
                bind_u64(q, 1, seq);
                bind_id(q, 2, c->record_id);
                sqlite3_bind_int64(q, 3, c->field);
                bind_u64(q, 4, x_wins ? seq : w_seq);
                bind_u64(q, 5, x_wins ? w_seq : seq);
            }
            ret = run(h, q, "record a conflict");
            if (ret != SAT_OK)
                return ret;
            (*conflicts)++;
        }
    }
put:
    if (!x_wins)
        return SAT_OK;
    q = stmt(h, ST_STATE_PUT);
    if (q) {
        bind_id(q, 1, c->record_id);
        sqlite3_bind_int64(q, 2, c->field);
        bind_u64(q, 3, seq);
        bind_u64(q, 4, seq);
    }
    return run(h, q, "record a field's winner");
}

/* ---- push ------------------------------------------------------------------ */

static int is_patient(const satchel_FieldChange *c)
{
    return c->kind == satchel_RecordKind_RECORD_KIND_PATIENT;
}

/* A non-patient change that names the record's patient. */
static int names_patient(const satchel_FieldChange *c)
{
    return !is_patient(c) && c->field == FIELD_PATIENT_ID;
}

/* Checks what can be checked without the database. */
static int batch_check(struct hub_sqlite *h, const uint8_t device[HUB_ID_BYTES],
                       uint64_t first_seq, const satchel_FieldChange *ch, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const satchel_FieldChange *c = &ch[i];
        pb_size_t which = c->value.which_value;
        if (memcmp(c->origin_device, device, HUB_ID_BYTES) != 0)
            return fail(h, SAT_ERR_HUB_NOT_ORIGIN,
                        "change %zu names another device as its writer: a device pushes "
                        "only its own changes",
                        i);
        if (c->origin_seq < first_seq || (i > 0 && c->origin_seq <= ch[i - 1].origin_seq))
            return fail(h, SAT_ERR_INVALID,
                        "change %zu: sequence %llu is not after the batch's previous one", i,
                        (unsigned long long)c->origin_seq);
        if (c->kind < satchel_RecordKind_RECORD_KIND_PATIENT ||
            c->kind > satchel_RecordKind_RECORD_KIND_TASK)
            return fail(h, SAT_ERR_HUB_BAD_CHANGE, "change %zu: unknown record kind %d", i,
                        (int)c->kind);
        if (!c->has_stamp || !c->has_value)
            return fail(h, SAT_ERR_HUB_BAD_CHANGE, "change %zu has no stamp or no value", i);
        if (which < satchel_FieldValue_text_tag || which > satchel_FieldValue_tombstone_tag)
            return fail(h, SAT_ERR_HUB_BAD_CHANGE, "change %zu has no value", i);
        if ((which == satchel_FieldValue_tombstone_tag) != (c->field == FIELD_TOMBSTONE))
            return fail(h, SAT_ERR_HUB_BAD_CHANGE,
                        "change %zu: a tombstone goes in field 0, and only a tombstone", i);
        if (which == satchel_FieldValue_text_tag &&
            !memchr(c->value.value.text, '\0', TEXT_BYTES_MAX))
            return fail(h, SAT_ERR_HUB_BAD_CHANGE, "change %zu: text is not terminated", i);
        if (which == satchel_FieldValue_blob_tag && c->value.value.blob.size > BLOB_BYTES_MAX)
            return fail(h, SAT_ERR_HUB_BAD_CHANGE, "change %zu: blob too long", i);
        if (names_patient(c) &&
            (which != satchel_FieldValue_blob_tag || c->value.value.blob.size != HUB_ID_BYTES))
            return fail(h, SAT_ERR_HUB_BAD_CHANGE,
                        "change %zu: patient_id (field 2) must be a 16-byte id", i);
    }
    return SAT_OK;
}

static int change_held(struct hub_sqlite *h, const satchel_FieldChange *c, int *held)
{
    sqlite3_stmt *q = stmt(h, ST_CHG_HELD);
    int ret;
    if (q) {
        bind_id(q, 1, c->origin_device);
        bind_u64(q, 2, c->origin_seq);
    }
    ret = row(h, q, "look for a held change");
    if (ret == SAT_OK)
        sqlite3_reset(q);
    *held = ret == SAT_OK;
    return ret == SAT_ERR_NOT_FOUND ? SAT_OK : ret;
}

static int out_of_scope(struct hub_sqlite *h, size_t i, const uint8_t patient[HUB_ID_BYTES],
                        const char *why, const struct hub_device *dev)
{
    char hex[2 * HUB_ID_BYTES + 1];
    hex16(patient, hex);
    return fail(h, SAT_ERR_HUB_OUT_OF_SCOPE,
                "change %zu: patient %s %s team %s's caseload: nothing from the batch was "
                "stored",
                i, hex, why, dev->team);
}

/* Whether dev may write to the records of a patient now in `team`: the
 * patient is in dev's team, or it left dev's team in a reassignment dev has
 * not yet confirmed pulling (its pull cursor is before it). Then the tablet
 * wrote before it could know (a nurse offline all morning while the patient
 * was moved to another team): its edit must not be lost, so it is kept and
 * goes to the patient's team now, and the tablet's next pull purges the
 * patient. Once the tablet has confirmed that pull, its writes to the
 * patient are out of scope. */
static int may_write(struct hub_sqlite *h, const struct hub_device *dev,
                     const uint8_t patient[HUB_ID_BYTES], const char *team, int *ok)
{
    sqlite3_stmt *q;
    int ret;
    *ok = strcmp(team, dev->team) == 0;
    if (*ok)
        return SAT_OK;
    q = stmt(h, ST_REASSIGN_UNSEEN);
    if (q) {
        bind_id(q, 1, patient);
        sqlite3_bind_text(q, 2, dev->team, -1, SQLITE_TRANSIENT);
        bind_u64(q, 3, dev->pull_cursor);
    }
    ret = row(h, q, "look for a reassignment the device has not pulled");
    if (ret == SAT_OK) {
        sqlite3_reset(q);
        *ok = 1;
    }
    return ret == SAT_ERR_NOT_FOUND ? SAT_OK : ret;
}

/* Pass 1: new patients in the batch join the device's team; known ones
 * must be writable by it (may_write). A patient's changes come together:
 * the next change of the patient just checked or added is not looked at
 * again. */
static int push_patients(struct hub_sqlite *h, const struct hub_device *dev,
                         const satchel_FieldChange *ch, size_t n, const int *held)
{
    const uint8_t *done = NULL;
    for (size_t i = 0; i < n; i++) {
        const satchel_FieldChange *c = &ch[i];
        uint8_t patient[HUB_ID_BYTES];
        char team[HUB_TEAM_BYTES];
        int kind, ret;
        sqlite3_stmt *q;
        if (held[i] || !is_patient(c) ||
            (done && memcmp(done, c->record_id, HUB_ID_BYTES) == 0))
            continue;
        done = c->record_id;
        ret = record_get(h, c->record_id, &kind, patient);
        if (ret == SAT_OK) {
            if (kind != satchel_RecordKind_RECORD_KIND_PATIENT)
                return fail(h, SAT_ERR_HUB_BAD_CHANGE,
                            "change %zu: the record is a kind %d, not a patient", i, kind);
            int ok;
            ret = patient_team_get(h, c->record_id, team);
            if (ret == SAT_OK)
                ret = may_write(h, dev, c->record_id, team, &ok);
            if (ret != SAT_OK)
                return ret;
            if (!ok)
                return out_of_scope(h, i, c->record_id, "is not in", dev);
            continue;
        }
        if (ret != SAT_ERR_NOT_FOUND)
            return ret;
        q = stmt(h, ST_PAT_INSERT);
        if (q) {
            bind_id(q, 1, c->record_id);
            sqlite3_bind_text(q, 2, dev->team, -1, SQLITE_TRANSIENT);
        }
        ret = run(h, q, "add a patient");
        if (ret == SAT_OK)
            ret = record_insert(h, c->record_id, satchel_RecordKind_RECORD_KIND_PATIENT,
                                c->record_id);
        if (ret != SAT_OK)
            return ret;
    }
    return SAT_OK;
}

/* The patient a new non-patient record names in this batch (field 2). */
static const uint8_t *batch_patient_of(const satchel_FieldChange *ch, size_t n,
                                       const uint8_t record[HUB_ID_BYTES])
{
    for (size_t i = 0; i < n; i++)
        if (names_patient(&ch[i]) && memcmp(ch[i].record_id, record, HUB_ID_BYTES) == 0)
            return ch[i].value.value.blob.bytes;
    return NULL;
}

/* What pass 2 looked up for a record: a record's changes come together in
 * a batch, and within the push's transaction its kind, patient, team and
 * the device's right to write to it cannot change, so the next change of
 * the same record is checked against this instead of the database. */
struct push_record {
    int valid;
    uint8_t id[HUB_ID_BYTES];
    int kind;
    uint8_t patient[HUB_ID_BYTES];
    char team[HUB_TEAM_BYTES];
};

/* Change i (of record r) keeps the record's kind and patient. */
static int push_change_fits(struct hub_sqlite *h, const satchel_FieldChange *c, size_t i,
                            const struct push_record *r)
{
    if (r->kind != (int)c->kind)
        return fail(h, SAT_ERR_HUB_BAD_CHANGE,
                    "change %zu: the record is a kind %d, not a kind %d", i, r->kind,
                    (int)c->kind);
    if (names_patient(c) && memcmp(c->value.value.blob.bytes, r->patient, HUB_ID_BYTES) != 0)
        return fail(h, SAT_ERR_HUB_BAD_CHANGE,
                    "change %zu: a record cannot move to another patient", i);
    return SAT_OK;
}

/* Looks up (and, if new, adds) the record change i writes and checks that
 * dev may write to it; fills *r. */
static int push_record_load(struct hub_sqlite *h, const struct hub_device *dev,
                            const satchel_FieldChange *ch, size_t n, size_t i,
                            struct push_record *r)
{
    const satchel_FieldChange *c = &ch[i];
    int known, writable, ret;
    r->valid = 0;
    ret = record_get(h, c->record_id, &r->kind, r->patient);
    if (ret != SAT_OK && ret != SAT_ERR_NOT_FOUND)
        return ret;
    known = ret == SAT_OK;
    if (!known) {
        const uint8_t *p = batch_patient_of(ch, n, c->record_id);
        if (!p)
            return fail(h, SAT_ERR_HUB_OUT_OF_SCOPE,
                        "change %zu: the record is new and the batch does not say whose "
                        "it is (patient_id): nothing from the batch was stored",
                        i);
        memcpy(r->patient, p, HUB_ID_BYTES);
        r->kind = (int)c->kind;
    }
    ret = push_change_fits(h, c, i, r);
    if (ret != SAT_OK)
        return ret;
    ret = patient_team_get(h, r->patient, r->team);
    if (ret == SAT_ERR_HUB_UNKNOWN_RECORD)
        return out_of_scope(h, i, r->patient, "is unknown to the hub, so not in", dev);
    if (ret == SAT_OK)
        ret = may_write(h, dev, r->patient, r->team, &writable);
    if (ret != SAT_OK)
        return ret;
    if (!writable)
        return out_of_scope(h, i, r->patient, "is not in", dev);
    if (!known) {
        ret = record_insert(h, c->record_id, (int)c->kind, r->patient);
        if (ret != SAT_OK)
            return ret;
    }
    memcpy(r->id, c->record_id, HUB_ID_BYTES);
    r->valid = 1;
    return SAT_OK;
}

/* Pass 2: every new change, in batch order. */
static int push_changes(struct hub_sqlite *h, const struct hub_device *dev,
                        const satchel_FieldChange *ch, size_t n, const int *held,
                        struct hub_push_result *res)
{
    struct push_record r = { 0 };
    for (size_t i = 0; i < n; i++) {
        const satchel_FieldChange *c = &ch[i];
        uint64_t seq;
        int ret;
        if (held[i])
            continue;
        if (!r.valid || memcmp(r.id, c->record_id, HUB_ID_BYTES) != 0)
            ret = push_record_load(h, dev, ch, n, i, &r);
        else
            ret = push_change_fits(h, c, i, &r);
        if (ret != SAT_OK)
            return ret;
        seq = next_seq(h);
        ret = change_store(h, seq, c, r.patient, r.team);
        if (ret == SAT_OK)
            ret = field_merge(h, seq, c, &dev->pull_cursor, &res->conflicts);
        if (ret != SAT_OK)
            return ret;
        res->stored++;
    }
    return SAT_OK;
}

static int sq_push(void *ctx, const uint8_t device[HUB_ID_BYTES], uint64_t first_seq,
                   const satchel_FieldChange *ch, size_t n, struct hub_push_result *out)
{
    struct hub_sqlite *h = ctx;
    struct hub_push_result res = { 0, 0, 0, 0 };
    struct hub_device dev;
    int held[HUB_PUSH_CHANGES_MAX];
    int ret;

    if (n > HUB_PUSH_CHANGES_MAX || first_seq == 0)
        return fail(h, SAT_ERR_INVALID, "a push holds at most %d changes from sequence 1 on",
                    HUB_PUSH_CHANGES_MAX);
    ret = begin(h);
    if (ret != SAT_OK)
        return ret;
    ret = device_active(h, device, &dev);
    if (ret == SAT_OK)
        ret = batch_check(h, device, first_seq, ch, n);
    if (ret == SAT_OK && first_seq > dev.acked_seq + 1)
        ret = fail(h, SAT_ERR_HUB_OUT_OF_ORDER,
                   "batch starts at sequence %llu but the hub holds up to %llu: send from "
                   "%llu",
                   (unsigned long long)first_seq, (unsigned long long)dev.acked_seq,
                   (unsigned long long)dev.acked_seq + 1);
    for (size_t i = 0; ret == SAT_OK && i < n; i++) {
        ret = change_held(h, &ch[i], &held[i]);
        res.skipped += (size_t)held[i];
    }
    if (ret == SAT_OK)
        ret = push_patients(h, &dev, ch, n, held);
    if (ret == SAT_OK)
        ret = push_changes(h, &dev, ch, n, held, &res);
    res.acked_seq = dev.acked_seq;
    if (ret == SAT_OK && n > 0 && ch[n - 1].origin_seq > dev.acked_seq) {
        sqlite3_stmt *q = stmt(h, ST_DEV_ACKED);
        res.acked_seq = ch[n - 1].origin_seq;
        if (q) {
            bind_id(q, 1, device);
            bind_u64(q, 2, res.acked_seq);
        }
        ret = run(h, q, "acknowledge the batch");
    }
    ret = finish(h, ret);
    if (ret == SAT_OK)
        *out = res;
    return ret;
}

/* ---- reassignment ------------------------------------------------------------ */

static int sq_patient_assign(void *ctx, const uint8_t patient[HUB_ID_BYTES], const char *team,
                             const satchel_Hlc *stamp)
{
    struct hub_sqlite *h = ctx;
    char from[HUB_TEAM_BYTES];
    sqlite3_stmt *q;
    uint64_t reassign_seq, records;
    int ret;

    if (!team_valid(team))
        return fail(h, SAT_ERR_INVALID, "a team name must be 1 to %d bytes",
                    HUB_TEAM_BYTES - 1);
    ret = begin(h);
    if (ret != SAT_OK)
        return ret;
    ret = patient_team_get(h, patient, from);
    if (ret != SAT_OK || strcmp(from, team) == 0)
        return finish(h, ret);

    q = stmt(h, ST_REC_COUNT);
    if (q)
        bind_id(q, 1, patient);
    ret = row(h, q, "count the patient's records");
    if (ret != SAT_OK)
        return finish(h, ret == SAT_ERR_NOT_FOUND ? SAT_ERR_HUB_STORAGE : ret);
    records = column_u64(q, 0);
    sqlite3_reset(q);
    if (records > HUB_PATIENT_RECORDS_MAX)
        return finish(h, fail(h, SAT_ERR_INVALID,
                              "the patient has %llu records, more than the %d a reassignment "
                              "may move at once",
                              (unsigned long long)records, HUB_PATIENT_RECORDS_MAX));

    /* The log entry, then the patient and its feed entries follow it. */
    reassign_seq = next_seq(h);
    q = stmt(h, ST_REASSIGN_INSERT);
    if (q) {
        bind_u64(q, 1, reassign_seq);
        bind_id(q, 2, patient);
        sqlite3_bind_text(q, 3, from, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 4, team, -1, SQLITE_TRANSIENT);
    }
    ret = run(h, q, "log the reassignment");
    if (ret == SAT_OK) {
        q = stmt(h, ST_PAT_SET_TEAM);
        if (q) {
            bind_id(q, 1, patient);
            sqlite3_bind_text(q, 2, team, -1, SQLITE_TRANSIENT);
        }
        ret = run(h, q, "move the patient");
    }
    if (ret == SAT_OK) {
        q = stmt(h, ST_FEED_RETEAM);
        if (q) {
            bind_id(q, 1, patient);
            sqlite3_bind_text(q, 2, team, -1, SQLITE_TRANSIENT);
        }
        ret = run(h, q, "move the patient's changes");
    }
    if (ret == SAT_OK) {
        q = stmt(h, ST_FEED_PURGES);
        if (q) {
            bind_id(q, 1, patient);
            bind_u64(q, 2, h->last_seq);
            sqlite3_bind_text(q, 3, from, -1, SQLITE_TRANSIENT);
        }
        ret = run(h, q, "purge the old team's copies");
        if (ret == SAT_OK)
            h->last_seq += (uint64_t)sqlite3_changes(h->db);
    }
    if (ret == SAT_OK && stamp) {
        satchel_FieldChange c;
        uint64_t seq = next_seq(h);
        size_t unused = 0;
        memset(&c, 0, sizeof c);
        memcpy(c.record_id, patient, HUB_ID_BYTES);
        c.kind = satchel_RecordKind_RECORD_KIND_PATIENT;
        c.field = FIELD_PATIENT_TEAM;
        c.has_value = true;
        c.value.which_value = satchel_FieldValue_text_tag;
        memcpy(c.value.value.text, team, strlen(team) + 1);
        c.has_stamp = true;
        c.stamp = *stamp;
        memcpy(c.origin_device, hub_origin, HUB_ID_BYTES);
        c.origin_seq = seq;
        ret = change_store(h, seq, &c, patient, team);
        if (ret == SAT_OK)
            ret = field_merge(h, seq, &c, NULL, &unused);
    }
    if (ret == SAT_OK) {
        uint64_t base = h->last_seq;
        q = stmt(h, ST_FEED_REFEEDS);
        if (q) {
            bind_id(q, 1, patient);
            bind_u64(q, 2, base);
            sqlite3_bind_text(q, 3, team, -1, SQLITE_TRANSIENT);
            bind_u64(q, 4, reassign_seq);
        }
        ret = run(h, q, "offer the patient to the new team");
        if (ret == SAT_OK && sqlite3_changes(h->db) > 0) {
            h->last_seq += (uint64_t)sqlite3_changes(h->db);
            q = stmt(h, ST_STATE_DELIVERED);
            if (q) {
                bind_id(q, 1, patient);
                bind_u64(q, 2, h->last_seq);
                bind_u64(q, 3, reassign_seq);
            }
            ret = run(h, q, "note the re-feed");
        }
    }
    return finish(h, ret);
}

/* ---- pull ------------------------------------------------------------------ */

static int sq_pull_feed(struct hub_sqlite *h, const uint8_t device[HUB_ID_BYTES], uint64_t cursor,
                        satchel_FieldChange *changes, size_t max_changes,
                        struct hub_pull_result *out);

static int sq_pull(void *ctx, const uint8_t device[HUB_ID_BYTES], uint64_t cursor,
                   satchel_FieldChange *changes, size_t max_changes, struct hub_pull_result *out)
{
    struct hub_sqlite *h = ctx;
    int ret;

    if (max_changes == 0 || max_changes > HUB_PULL_CHANGES_MAX)
        return fail(h, SAT_ERR_INVALID, "a pull asks for 1 to %d changes", HUB_PULL_CHANGES_MAX);
    /* A pull writes only the cursor the device confirmed, and losing that
     * in a crash is safe: the conflict rule then judges against an older
     * cursor, which reports more conflicts, never fewer, and the device's
     * next Hello confirms it again. So its commit is not synced (the next
     * synced commit makes it durable): an fsync per pull batch was most of
     * the cost of a pull. */
    ret = run(h, stmt(h, ST_SYNC_NORMAL), "relax syncing for a pull");
    if (ret != SAT_OK)
        return ret;
    ret = sq_pull_feed(h, device, cursor, changes, max_changes, out);
    if (run(h, stmt(h, ST_SYNC_FULL), "restore syncing") != SAT_OK && ret == SAT_OK)
        ret = fail(h, SAT_ERR_HUB_STORAGE, "cannot restore synchronous=FULL after a pull");
    return ret;
}

/* sq_pull's transaction. */
static int sq_pull_feed(struct hub_sqlite *h, const uint8_t device[HUB_ID_BYTES], uint64_t cursor,
                        satchel_FieldChange *changes, size_t max_changes,
                        struct hub_pull_result *out)
{
    struct hub_device dev;
    sqlite3_stmt *q;
    size_t count = 0, purges = 0, bytes = 0;
    uint64_t next = cursor;
    int more = 0, ret, rc;

    ret = begin(h);
    if (ret != SAT_OK)
        return ret;
    ret = device_active(h, device, &dev);
    if (ret == SAT_OK)
        ret = device_confirm_cursor(h, device, &dev, cursor);
    if (ret != SAT_OK)
        return finish(h, ret);

    q = stmt(h, ST_PULL);
    if (!q)
        return finish(h, sql_fail(h, sqlite3_errcode(h->db), "prepare the pull"));
    sqlite3_bind_text(q, 1, dev.team, -1, SQLITE_TRANSIENT);
    bind_u64(q, 2, cursor);
    bind_id(q, 3, device);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        uint64_t seq = column_u64(q, 0);
        if (sqlite3_column_int(q, 1) == FEED_PURGE) {
            if (purges == HUB_PULL_PURGE_MAX) {
                more = 1;
                break;
            }
            ret = column_id(h, q, 2, out->purge_ids[purges]);
            purges++;
        } else {
            if (count == max_changes) {
                more = 1;
                break;
            }
            ret = column_change(h, q, 3, &changes[count]);
            if (ret == SAT_OK) {
                /* The batch ends by bytes too, so its frame stays bounded. */
                size_t n = proto_change_batch_bytes(&changes[count]);
                if (n == 0) {
                    ret = fail(h, SAT_ERR_HUB_STORAGE, "a stored change cannot be encoded");
                } else if (bytes + n > PROTO_PULL_CHANGES_BYTES_MAX) {
                    more = 1;
                    break;
                }
                bytes += n;
            }
            count++;
        }
        if (ret != SAT_OK)
            break;
        next = seq;
    }
    sqlite3_reset(q);
    if (ret == SAT_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = sql_fail(h, rc, "read the feed");
    if (ret == SAT_OK && !more)
        next = h->last_seq;
    ret = finish(h, ret);
    if (ret == SAT_OK) {
        out->count = count;
        out->purge_count = purges;
        out->next_cursor = next;
        out->more = more;
    }
    return ret;
}

/* ---- conflicts and stats -------------------------------------------------------- */

static int sq_conflicts_list(void *ctx, uint64_t after, struct hub_conflict *out, size_t cap,
                             size_t *count)
{
    struct hub_sqlite *h = ctx;
    sqlite3_stmt *q;
    size_t n = 0;
    int ret = SAT_OK, rc = SQLITE_DONE;

    if (cap == 0 || cap > HUB_CONFLICTS_LIST_MAX)
        return fail(h, SAT_ERR_INVALID, "list 1 to %d conflicts at a time",
                    HUB_CONFLICTS_LIST_MAX);
    h->errmsg[0] = '\0';
    q = stmt(h, ST_CONFLICT_LIST);
    if (!q)
        return sql_fail(h, sqlite3_errcode(h->db), "list conflicts");
    /* A read transaction, so the conflicts and their changes agree. */
    if (sqlite3_exec(h->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return sql_fail(h, sqlite3_errcode(h->db), "list conflicts");
    bind_u64(q, 1, after);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)cap);
    while (ret == SAT_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        uint64_t kept = column_u64(q, 2), lost = column_u64(q, 3);
        out[n].id = column_u64(q, 0);
        out[n].hub_seq = column_u64(q, 1);
        ret = change_get(h, kept, &out[n].kept);
        if (ret == SAT_OK)
            ret = change_get(h, lost, &out[n].lost);
        n++;
    }
    if (ret == SAT_OK && rc != SQLITE_DONE)
        ret = sql_fail(h, rc, "list conflicts");
    sqlite3_reset(q);
    (void)sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL);
    if (ret == SAT_OK)
        *count = n;
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
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(h->st[i]);
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

int hub_store_sqlite_open(const char *path, struct hub_store **out)
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
    h->base.version = HUB_STORE_VERSION;
    h->base.ctx = h;
    h->base.close = sq_close;
    h->base.errmsg = sq_errmsg;
    h->base.device_register = sq_device_register;
    h->base.device_get = sq_device_get;
    h->base.device_revoke = sq_device_revoke;
    h->base.device_checkin = sq_device_checkin;
    h->base.patient_team = sq_patient_team;
    h->base.patient_assign = sq_patient_assign;
    h->base.push = sq_push;
    h->base.pull = sq_pull;
    h->base.conflicts_list = sq_conflicts_list;
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
    h->last_seq = column_u64(q, 0);
    sqlite3_reset(q);
    h->errmsg[0] = '\0';
    *out = &h->base;
    return SAT_OK;
exit:
    sq_close(h);
    return ret;
}
