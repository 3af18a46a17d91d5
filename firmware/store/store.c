/* store.c - see store.h. */
#include "store.h"

#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hlc.h"
#include "nhs_number.h"
#include "record_id.h"
#include "sat_date.h"
#include "satchel.pb.h"
#include "vfs_crypt.h"

#define VT_TEXT RECORD_TYPE_TEXT
#define VT_INT RECORD_TYPE_INT
#define VT_BLOB RECORD_TYPE_BLOB
#define VT_FLAG RECORD_TYPE_FLAG
#define VT_TOMBSTONE RECORD_TYPE_TOMBSTONE
#define MIN_PREFIX_DIGITS 6
#define STORE_STR_(x) #x
#define STORE_STR(x) STORE_STR_(x)

/* The store's layout (PRAGMA user_version). 2: per-kind merge state, a
 * row per field; 3: a record's merge state in its own row (ms, one blob),
 * other writers by a small number (origin). A layout 2 store is migrated
 * when it is opened. */
#define STORE_SCHEMA_VERSION 3
#define PURGE_STMTS 5 /* statements that delete a patient's records */
#define FIELD_MAX 0xffffu /* field numbers fit 16 bits (layout 2 keyed by them) */

/* Every record column has a default: a record that arrives from another
 * device is created empty and filled field by field as its changes apply.
 * A record's last column, ms, is its merge state: the winning write of
 * each of its fields on this replica, in one blob (fs_entry, in field
 * order: 11 bytes an integer field, measured, where layout 2's row per
 * field took 37 of a page). In the record's own row, a commit writes
 * no other B-tree for it (a table of a row per field, keyed by record and
 * field, sealed one more page for each kind a commit touched). */
static const char schema_sql[] =
    /* Settings: one B-tree (no rowid table plus key index to write). */
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS patient(id BLOB NOT NULL UNIQUE,"
    " nhs_number TEXT NOT NULL DEFAULT '', given_name TEXT NOT NULL DEFAULT '',"
    " family_name TEXT NOT NULL DEFAULT '', date_of_birth TEXT NOT NULL DEFAULT '',"
    " address TEXT NOT NULL DEFAULT '', postcode TEXT NOT NULL DEFAULT '',"
    " team TEXT NOT NULL DEFAULT '', created_ms INTEGER NOT NULL DEFAULT 0,"
    " deleted INTEGER NOT NULL DEFAULT 0, ms BLOB);"
    "CREATE INDEX IF NOT EXISTS patient_name ON patient(family_name, given_name);"
    "CREATE TABLE IF NOT EXISTS visit(id BLOB NOT NULL UNIQUE,"
    " patient_id BLOB NOT NULL DEFAULT x'', started_ms INTEGER NOT NULL DEFAULT 0,"
    " ended_ms INTEGER NOT NULL DEFAULT 0, reason TEXT NOT NULL DEFAULT '',"
    " deleted INTEGER NOT NULL DEFAULT 0, ms BLOB);"
    "CREATE INDEX IF NOT EXISTS visit_patient ON visit(patient_id, started_ms);"
    "CREATE TABLE IF NOT EXISTS observation(id BLOB NOT NULL UNIQUE,"
    " patient_id BLOB NOT NULL DEFAULT x'', visit_id BLOB, amends BLOB,"
    " taken_ms INTEGER NOT NULL DEFAULT 0, resp INTEGER NOT NULL DEFAULT 0,"
    " spo2 INTEGER NOT NULL DEFAULT 0, spo2_scale INTEGER NOT NULL DEFAULT 0,"
    " on_oxygen INTEGER NOT NULL DEFAULT 0, sbp INTEGER NOT NULL DEFAULT 0,"
    " pulse INTEGER NOT NULL DEFAULT 0, consciousness INTEGER NOT NULL DEFAULT 0,"
    " temp_dc INTEGER NOT NULL DEFAULT 0, news2 INTEGER NOT NULL DEFAULT 0,"
    " deleted INTEGER NOT NULL DEFAULT 0, ms BLOB);"
    "CREATE INDEX IF NOT EXISTS obs_patient ON observation(patient_id, taken_ms);"
    "CREATE TABLE IF NOT EXISTS note(id BLOB NOT NULL UNIQUE,"
    " patient_id BLOB NOT NULL DEFAULT x'', visit_id BLOB, amends BLOB,"
    " written_ms INTEGER NOT NULL DEFAULT 0, text TEXT NOT NULL DEFAULT '',"
    " deleted INTEGER NOT NULL DEFAULT 0, ms BLOB);"
    "CREATE INDEX IF NOT EXISTS note_patient ON note(patient_id, written_ms);"
    "CREATE TABLE IF NOT EXISTS task(id BLOB NOT NULL UNIQUE,"
    " patient_id BLOB NOT NULL DEFAULT x'', title TEXT NOT NULL DEFAULT '',"
    " due_ms INTEGER NOT NULL DEFAULT 0, done INTEGER NOT NULL DEFAULT 0,"
    " deleted INTEGER NOT NULL DEFAULT 0, ms BLOB);"
    "CREATE INDEX IF NOT EXISTS task_patient ON task(patient_id);"
    /* This device's own writes, in order: what sync pushes. An origin or
     * base_origin that is NULL is this device (16 bytes a row saved). */
    "CREATE TABLE IF NOT EXISTS change_log(seq INTEGER PRIMARY KEY, record_id BLOB NOT NULL,"
    " kind INTEGER NOT NULL, field INTEGER NOT NULL, vtype INTEGER NOT NULL, vint INTEGER,"
    " vtext TEXT, vblob BLOB, hlc_wall INTEGER NOT NULL, hlc_counter INTEGER NOT NULL,"
    " origin BLOB, base_wall INTEGER, base_counter INTEGER, base_origin BLOB);"
    /* The devices other than this one whose writes are in the merge state,
     * numbered from 1 in the order first seen (0 is this device). */
    "CREATE TABLE IF NOT EXISTS origin(ref INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE);"
    /* Concurrent edits of one field, kept for a person to see. */
    "CREATE TABLE IF NOT EXISTS conflict(id INTEGER PRIMARY KEY, record_id BLOB NOT NULL,"
    " kind INTEGER NOT NULL, field INTEGER NOT NULL, kept TEXT NOT NULL, lost TEXT NOT NULL,"
    " kept_origin BLOB NOT NULL, lost_origin BLOB NOT NULL, kept_wall INTEGER NOT NULL,"
    " lost_wall INTEGER NOT NULL, detected_ms INTEGER NOT NULL);";

/* Prepared statements, made on first use and kept. */
enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
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

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
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

struct store {
    const struct hal *hal;
    sqlite3 *db;
    struct vfs_crypt *vfs;
    sqlite3_stmt *st[ST_COUNT];
    struct apply_stmts *apply; /* made on the first pull */
    /* Merge state, per kind: get, put, and the record's rowid. */
    sqlite3_stmt *fs_get[RECORD_KINDS + 1];
    sqlite3_stmt *fs_put[RECORD_KINDS + 1];
    sqlite3_stmt *rowid_of[RECORD_KINDS + 1];
    /* The merge state of the last record looked at (a record's fields come
     * together): read once, changed here, written back (fs_flush) when
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

/* ---- errors ------------------------------------------------------------- */

static int fail(struct store *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct store *s, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    return code;
}

/* Maps an SQLite result to a Satchel code, with the message. */
static int sql_fail(struct store *s, int rc, const char *what)
{
    int ext = s->db ? sqlite3_extended_errcode(s->db) : rc;
    if (ext == SQLITE_IOERR_DATA || (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB)
        return fail(s, SAT_ERR_STORE_CORRUPT,
                    "%s: stored data failed authentication (damaged or tampered with)", what);
    if ((rc & 0xff) == SQLITE_FULL)
        return fail(s, SAT_ERR_NO_SPACE, "%s: storage is full", what);
    return fail(s, SAT_ERR_STORE_SQL, "%s: %s", what,
                s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
}

const char *store_errmsg(const struct store *s)
{
    return s->errmsg;
}

/* ---- statements and transactions ---------------------------------------- */

static sqlite3_stmt *stmt(struct store *s, enum stmt_id id)
{
    if (!s->st[id] && sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                         &s->st[id], NULL) != SQLITE_OK)
        return NULL;
    sqlite3_reset(s->st[id]);
    sqlite3_clear_bindings(s->st[id]);
    return s->st[id];
}

/* Steps a statement that returns no row. */
static int run(struct store *s, sqlite3_stmt *q, const char *what)
{
    int rc;
    if (!q)
        return sql_fail(s, sqlite3_errcode(s->db), what);
    rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return sql_fail(s, rc, what);
    return SAT_OK;
}

static int begin(struct store *s)
{
    s->errmsg[0] = '\0';
    if (s->applying)
        return fail(s, SAT_ERR_INVALID, "a pulled batch is being applied: finish it first");
    return run(s, stmt(s, ST_BEGIN), "begin");
}

static int fs_flush(struct store *s);

static void rollback(struct store *s)
{
    s->rid_valid = 0;
    s->fs.valid = 0;
    s->norigins = s->origins_committed;
    if (!sqlite3_get_autocommit(s->db))
        run(s, stmt(s, ST_ROLLBACK), "rollback");
}

/* Commits; on failure rolls back. The HLC is not saved with each commit
 * (that was a page to seal every time): store_open takes it back from the
 * last change this device logged, and log_field folds in the stamp of the
 * write it replaces, so a nurse's edit still orders after whatever she saw
 * in that field, even after a restart lost the clock's memory of other
 * tablets' stamps. */
static int commit(struct store *s)
{
    int ret = fs_flush(s);
    if (ret == SAT_OK)
        ret = run(s, stmt(s, ST_COMMIT), "commit");
    if (ret != SAT_OK)
        rollback(s);
    else
        s->origins_committed = s->norigins;
    return ret;
}

/* Ends a write: commit on success, roll back (and keep the error) else. */
static int finish(struct store *s, int ret)
{
    if (ret == SAT_OK)
        return commit(s);
    rollback(s);
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
static int new_id(struct store *s, struct store_id *out)
{
    uint8_t rnd[RECORD_ID_RANDOM_BYTES];
    int ret = hal_entropy_fill(s->hal, rnd, sizeof rnd);
    if (ret != SAT_OK)
        return fail(s, ret, "no randomness for a record id");
    record_id_make(hal_clock_wall_ms(s->hal), rnd, out->b);
    return SAT_OK;
}

static void bind_id(sqlite3_stmt *q, int col, const struct store_id *id)
{
    sqlite3_bind_blob(q, col, id->b, STORE_ID_BYTES, SQLITE_TRANSIENT);
}

static void bind_opt_id(sqlite3_stmt *q, int col, int has, const struct store_id *id)
{
    if (has)
        bind_id(q, col, id);
    else
        sqlite3_bind_null(q, col);
}

/* Copies a blob column into an id; 0 if it is NULL or not an id. */
static int column_id(sqlite3_stmt *q, int col, struct store_id *out)
{
    const void *b = sqlite3_column_blob(q, col);
    if (!b || sqlite3_column_bytes(q, col) != STORE_ID_BYTES) {
        memset(out, 0, sizeof *out);
        return 0;
    }
    memcpy(out->b, b, STORE_ID_BYTES);
    return 1;
}

static void column_text(sqlite3_stmt *q, int col, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(q, col);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

/* ---- change log --------------------------------------------------------- */

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

static void bind_value(sqlite3_stmt *q, int col, struct field_value v)
{
    if (v.type == VT_INT || v.type == VT_FLAG || v.type == VT_TOMBSTONE)
        sqlite3_bind_int64(q, col, v.i);
    if (v.type == VT_TEXT)
        sqlite3_bind_text(q, col + 1, v.text ? v.text : "", -1, SQLITE_TRANSIENT);
    if (v.type == VT_BLOB && v.blob)
        bind_id(q, col + 2, v.blob);
}

static const char *kind_table(enum record_kind kind);

static sqlite3_stmt *prepare_once(struct store *s, sqlite3_stmt **slot, const char *sql);
static sqlite3_stmt *prepare_kind_once(struct store *s, sqlite3_stmt **slot, const char *fmt,
                                       enum record_kind kind);

static int pend_rowid(const struct store *s, enum record_kind kind, const struct store_id *record,
                      int64_t *rowid);

/* The rowid of a record in its kind's table (or the one it will have, for
 * a pending row, see struct pending_row): *rowid, or -1 if there is no
 * such row (yet). */
static int record_rowid(struct store *s, enum record_kind kind, const struct store_id *record,
                        int64_t *rowid)
{
    sqlite3_stmt *q;
    int rc;
    if (s->rid_valid && s->rid_kind == kind && memcmp(&s->rid_id, record, sizeof *record) == 0) {
        *rowid = s->rid;
        return SAT_OK;
    }
    if (pend_rowid(s, kind, record, rowid))
        return SAT_OK;
    q = prepare_kind_once(s, &s->rowid_of[kind], "SELECT rowid FROM %s WHERE id = ?1", kind);
    if (!q)
        return sql_fail(s, sqlite3_errcode(s->db), "merge state");
    bind_id(q, 1, record);
    rc = sqlite3_step(q);
    *rowid = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_reset(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sql_fail(s, rc, "merge state");
    if (*rowid >= 0) {
        s->rid_valid = 1;
        s->rid_kind = kind;
        s->rid_id = *record;
        s->rid = *rowid;
    }
    return SAT_OK;
}

/* Reads an origin column: NULL is this device. */
static void column_origin(const struct store *s, sqlite3_stmt *q, int col, struct store_id *out)
{
    if (sqlite3_column_type(q, col) == SQLITE_NULL)
        *out = s->device;
    else
        column_id(q, col, out);
}

/* Binds an origin: this device as NULL. */
static void bind_origin(const struct store *s, sqlite3_stmt *q, int col,
                        const struct store_id *origin)
{
    if (memcmp(origin, &s->device, sizeof *origin) == 0)
        sqlite3_bind_null(q, col);
    else
        bind_id(q, col, origin);
}

/* ---- merge state ---------------------------------------------------------
 * A record's state blob is its fields' entries in field order, each
 *     field, type, stamp wall, stamp counter, origin ref   (varints; type a byte)
 *     value: integer, flag, tombstone: zigzag varint; text: length, bytes;
 *            blob: 0, or 1 and the 16-byte id
 */

#define FS_ENTRY_MAX (4 * 10 + 1 + 10 + STORE_NOTE_TEXT_BYTES)

static size_t bounded_len(const char *text, size_t cap);

struct fs_entry {
    uint32_t field;
    int type;
    struct hlc stamp;
    uint64_t origin; /* ref: 0 this device, else origin table */
    int64_t i;
    const char *text; /* not terminated */
    size_t text_len;
    int has_blob;
    const uint8_t *blob;
};

static size_t put_varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

/* Reads a varint from [*p, end): 0 if it runs past end or 64 bits. */
static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0;
}

static size_t fs_entry_encode(uint8_t *out, const struct fs_entry *e)
{
    size_t n = put_varint(out, e->field);
    out[n++] = (uint8_t)e->type;
    n += put_varint(out + n, e->stamp.wall_ms);
    n += put_varint(out + n, e->stamp.counter);
    n += put_varint(out + n, e->origin);
    if (e->type == VT_TEXT) {
        n += put_varint(out + n, e->text_len);
        memcpy(out + n, e->text, e->text_len);
        n += e->text_len;
    } else if (e->type == VT_BLOB) {
        out[n++] = (uint8_t)(e->has_blob != 0);
        if (e->has_blob) {
            memcpy(out + n, e->blob, STORE_ID_BYTES);
            n += STORE_ID_BYTES;
        }
    } else {
        n += put_varint(out + n, ((uint64_t)e->i << 1) ^ (uint64_t)(e->i >> 63));
    }
    return n;
}

/* Decodes the entry at *p (advanced past it); 0 if it is malformed. */
static int fs_entry_decode(const uint8_t **p, const uint8_t *end, struct fs_entry *e)
{
    uint64_t field, wall, counter, v;
    memset(e, 0, sizeof *e);
    if (!get_varint(p, end, &field) || field > FIELD_MAX || *p >= end)
        return 0;
    e->field = (uint32_t)field;
    e->type = *(*p)++;
    if (!get_varint(p, end, &wall) || !get_varint(p, end, &counter) || counter > UINT32_MAX ||
        !get_varint(p, end, &e->origin))
        return 0;
    e->stamp.wall_ms = wall;
    e->stamp.counter = (uint32_t)counter;
    switch (e->type) {
    case VT_TEXT:
        if (!get_varint(p, end, &v) || v >= STORE_NOTE_TEXT_BYTES || v > (uint64_t)(end - *p))
            return 0;
        e->text = (const char *)*p;
        e->text_len = (size_t)v;
        *p += v;
        return 1;
    case VT_BLOB:
        if (*p >= end)
            return 0;
        e->has_blob = *(*p)++;
        if (e->has_blob > 1 || (e->has_blob && end - *p < STORE_ID_BYTES))
            return 0;
        if (e->has_blob) {
            e->blob = *p;
            *p += STORE_ID_BYTES;
        }
        return 1;
    case VT_INT:
    case VT_FLAG:
    case VT_TOMBSTONE:
        if (!get_varint(p, end, &v))
            return 0;
        e->i = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
        return 1;
    default:
        return 0;
    }
}

static int fs_damaged(struct store *s)
{
    return fail(s, SAT_ERR_STORE_CORRUPT, "the merge state of a %s record is damaged",
                kind_table(s->fs.kind));
}

/* Room for one more writer in s->origins. */
static int origins_room(struct store *s)
{
    size_t cap = s->origins_cap ? 2 * s->origins_cap : 16;
    struct store_id *o;
    if (s->norigins < s->origins_cap)
        return SAT_OK;
    o = realloc(s->origins, cap * sizeof *o);
    if (!o)
        return fail(s, SAT_ERR_NO_MEMORY, "out of memory");
    s->origins = o;
    s->origins_cap = cap;
    return SAT_OK;
}

/* The origin table, read once. */
static int origins_load(struct store *s)
{
    sqlite3_stmt *q = NULL;
    int rc;
    if (s->origins_loaded)
        return SAT_OK;
    s->norigins = 0;
    rc = sqlite3_prepare_v2(s->db, "SELECT ref, id FROM origin ORDER BY ref", -1, &q, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (origins_room(s) != SAT_OK) {
            sqlite3_finalize(q);
            return SAT_ERR_NO_MEMORY;
        }
        if (sqlite3_column_int64(q, 0) != (sqlite3_int64)s->norigins + 1 ||
            !column_id(q, 1, &s->origins[s->norigins])) {
            sqlite3_finalize(q);
            return fail(s, SAT_ERR_STORE_CORRUPT, "the table of writers is damaged");
        }
        s->norigins++;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        return sql_fail(s, rc, "read the table of writers");
    s->origins_loaded = 1;
    s->origins_committed = s->norigins;
    return SAT_OK;
}

/* The ref of a writer, added to the origin table if new (in the open
 * transaction). */
static int origin_ref(struct store *s, const struct store_id *id, uint64_t *ref)
{
    sqlite3_stmt *q;
    int ret;
    if (memcmp(id, &s->device, sizeof *id) == 0) {
        *ref = 0;
        return SAT_OK;
    }
    ret = origins_load(s);
    if (ret != SAT_OK)
        return ret;
    for (size_t i = 0; i < s->norigins; i++)
        if (memcmp(&s->origins[i], id, sizeof *id) == 0) {
            *ref = i + 1;
            return SAT_OK;
        }
    ret = origins_room(s);
    if (ret != SAT_OK)
        return ret;
    q = prepare_once(s, &s->origin_add, "INSERT INTO origin(ref, id) VALUES (?1, ?2)");
    if (!q)
        return sql_fail(s, sqlite3_errcode(s->db), "add a writer");
    sqlite3_bind_int64(q, 1, (sqlite3_int64)s->norigins + 1);
    bind_id(q, 2, id);
    ret = run(s, q, "add a writer");
    if (ret != SAT_OK)
        return ret;
    s->origins[s->norigins++] = *id;
    *ref = s->norigins;
    return SAT_OK;
}

static int origin_of(struct store *s, uint64_t ref, struct store_id *out)
{
    int ret;
    if (ref == 0) {
        *out = s->device;
        return SAT_OK;
    }
    ret = origins_load(s);
    if (ret != SAT_OK)
        return ret;
    if (ref > s->norigins)
        return fs_damaged(s);
    *out = s->origins[ref - 1];
    return SAT_OK;
}

static int fs_reserve(struct store *s, size_t need)
{
    uint8_t *b;
    size_t cap = s->fs.cap ? s->fs.cap : 256;
    if (need <= s->fs.cap)
        return SAT_OK;
    while (cap < need)
        cap *= 2;
    b = realloc(s->fs.buf, cap);
    if (!b)
        return fail(s, SAT_ERR_NO_MEMORY, "out of memory");
    s->fs.buf = b;
    s->fs.cap = cap;
    return SAT_OK;
}

static int pend_holds(const struct store *s, enum record_kind kind, int64_t rowid);
static int pend_flush(struct store *s);

/* Writes the held merge state back into its record's row if it changed
 * (a pending row is written whole, with it). */
static int fs_flush(struct store *s)
{
    sqlite3_stmt *q;
    if (!s->fs.valid || !s->fs.dirty)
        return SAT_OK;
    if (pend_holds(s, s->fs.kind, s->fs.rowid))
        return pend_flush(s);
    q = prepare_kind_once(s, &s->fs_put[s->fs.kind], "UPDATE %s SET ms = ?2 WHERE rowid = ?1",
                          s->fs.kind);
    if (!q)
        return sql_fail(s, sqlite3_errcode(s->db), "merge state");
    sqlite3_bind_int64(q, 1, s->fs.rowid);
    sqlite3_bind_blob(q, 2, s->fs.buf, (int)s->fs.len, SQLITE_STATIC);
    s->fs.dirty = 0;
    return run(s, q, "merge state");
}

/* Binds the held merge state if it is of (kind, rowid), which is then
 * written; else NULL. */
static void fs_bind_for(struct store *s, sqlite3_stmt *q, int col, enum record_kind kind,
                        int64_t rowid)
{
    if (s->fs.valid && s->fs.kind == kind && s->fs.rowid == rowid) {
        sqlite3_bind_blob(q, col, s->fs.buf, (int)s->fs.len, SQLITE_TRANSIENT);
        s->fs.dirty = 0;
    } else {
        sqlite3_bind_null(q, col);
    }
}

/* Makes s->fs hold the merge state of a record; *found is 0 (and nothing
 * held) if the record has no row (yet). */
static int fs_load(struct store *s, enum record_kind kind, const struct store_id *record,
                   int *found)
{
    sqlite3_stmt *q;
    int64_t rowid;
    int rc;
    int ret;
    *found = 0;
    if (!record_kind_valid((int)kind))
        return fail(s, SAT_ERR_STORE_INVALID, "no merge state for kind %d", (int)kind);
    ret = record_rowid(s, kind, record, &rowid);
    if (ret != SAT_OK || rowid < 0)
        return ret;
    *found = 1;
    if (s->fs.valid && s->fs.kind == kind && s->fs.rowid == rowid)
        return SAT_OK;
    ret = fs_flush(s);
    if (ret != SAT_OK)
        return ret;
    s->fs.valid = 0;
    s->fs.len = 0;
    if (pend_holds(s, kind, rowid)) /* a row not yet written has no state */
        goto held;
    q = prepare_kind_once(s, &s->fs_get[kind], "SELECT ms FROM %s WHERE rowid = ?1", kind);
    if (!q)
        return sql_fail(s, sqlite3_errcode(s->db), "merge state");
    sqlite3_bind_int64(q, 1, rowid);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(q, 0);
        ret = fs_reserve(s, n);
        if (ret == SAT_OK && n > 0)
            memcpy(s->fs.buf, sqlite3_column_blob(q, 0), n);
        s->fs.len = n;
    }
    sqlite3_reset(q);
    if (ret != SAT_OK)
        return ret;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sql_fail(s, rc, "merge state");
held:
    s->fs.valid = 1;
    s->fs.dirty = 0;
    s->fs.kind = kind;
    s->fs.rowid = rowid;
    return SAT_OK;
}

/* Finds field in the held state: 1 with *e (and *at, *after: where its
 * entry starts and ends), 0 with *at where it would go. -1 if damaged. */
static int fs_find(const struct store *s, uint32_t field, struct fs_entry *e, size_t *at,
                   size_t *after)
{
    const uint8_t *p = s->fs.buf;
    const uint8_t *end = s->fs.buf + s->fs.len;
    while (p < end) {
        const uint8_t *start = p;
        if (!fs_entry_decode(&p, end, e))
            return -1;
        if (e->field >= field) {
            *at = (size_t)(start - s->fs.buf);
            *after = e->field == field ? (size_t)(p - s->fs.buf) : *at;
            return e->field == field;
        }
    }
    *at = *after = s->fs.len;
    return 0;
}

static int winner_get(struct store *s, enum record_kind kind, const struct store_id *record,
                      uint32_t field, struct field_winner *w)
{
    struct fs_entry e;
    size_t at, after;
    int found, ret;
    w->exists = 0;
    ret = fs_load(s, kind, record, &found);
    if (ret != SAT_OK || !found)
        return ret;
    found = fs_find(s, field, &e, &at, &after);
    if (found < 0)
        return fs_damaged(s);
    if (!found)
        return SAT_OK;
    ret = origin_of(s, e.origin, &w->origin);
    if (ret != SAT_OK)
        return ret;
    w->exists = 1;
    w->stamp = e.stamp;
    w->type = e.type;
    w->i = e.i;
    memcpy(w->text, e.text ? e.text : "", e.text_len);
    w->text[e.text_len] = '\0';
    if (e.has_blob)
        memcpy(w->blob.b, e.blob, STORE_ID_BYTES);
    else
        memset(&w->blob, 0, sizeof w->blob);
    return SAT_OK;
}

/* Makes (v, stamp, origin) the winning write of a field; the record's row
 * must exist (or be the pending row). */
static int winner_put(struct store *s, enum record_kind kind, const struct store_id *record,
                      uint32_t field, struct field_value v, struct hlc stamp,
                      const struct store_id *origin)
{
    struct fs_entry e;
    uint8_t entry[FS_ENTRY_MAX];
    size_t at, after, n;
    int found, ret;
    if (field > FIELD_MAX)
        return fail(s, SAT_ERR_STORE_INVALID, "no merge state for kind %d field %u", (int)kind,
                    (unsigned)field);
    ret = fs_load(s, kind, record, &found);
    if (ret != SAT_OK)
        return ret;
    if (!found)
        return fail(s, SAT_ERR_STORE_SQL, "merge state: the %s record is missing",
                    kind_table(kind));
    if (fs_find(s, field, &e, &at, &after) < 0)
        return fs_damaged(s);
    memset(&e, 0, sizeof e);
    e.field = field;
    e.type = v.type;
    e.stamp = stamp;
    e.i = v.i;
    if (v.type == VT_TEXT) {
        e.text = v.text ? v.text : "";
        e.text_len = bounded_len(e.text, STORE_NOTE_TEXT_BYTES - 1);
    }
    e.has_blob = v.type == VT_BLOB && v.blob;
    e.blob = e.has_blob ? v.blob->b : NULL;
    ret = origin_ref(s, origin, &e.origin);
    if (ret == SAT_OK)
        ret = fs_reserve(s, s->fs.len + sizeof entry);
    if (ret != SAT_OK)
        return ret;
    n = fs_entry_encode(entry, &e);
    memmove(s->fs.buf + at + n, s->fs.buf + after, s->fs.len - after);
    memcpy(s->fs.buf + at, entry, n);
    s->fs.len = s->fs.len - (after - at) + n;
    s->fs.dirty = 1;
    return SAT_OK;
}

/* Appends one of this device's field writes to the change log, with the
 * winning write it replaces as its base, and makes it the winner. */
static int log_field(struct store *s, enum record_kind kind, const struct store_id *record,
                     uint32_t field, struct field_value v)
{
    sqlite3_stmt *q;
    struct hlc stamp;
    int64_t now = hal_clock_wall_ms(s->hal);
    struct field_winner *base = malloc(sizeof *base);
    int ret;
    if (!base)
        return fail(s, SAT_ERR_NO_MEMORY, "out of memory");
    ret = winner_get(s, kind, record, field, base);
    if (ret == SAT_OK && base->exists)
        hlc_observe(&s->clock, base->stamp, now); /* the edit follows what it replaces */
    stamp = hlc_tick(&s->clock, now);
    q = stmt(s, ST_LOG);
    if (ret == SAT_OK && !q)
        ret = sql_fail(s, sqlite3_errcode(s->db), "change log");
    if (ret == SAT_OK) {
        bind_id(q, 1, record);
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
        ret = run(s, q, "change log");
    }
    if (ret == SAT_OK)
        ret = winner_put(s, kind, record, field, v, stamp, &s->device);
    free(base);
    return ret;
}

static struct field_value fv_text(const char *t)
{
    return (struct field_value){ .type = VT_TEXT, .text = t };
}

static struct field_value fv_int(int64_t i)
{
    return (struct field_value){ .type = VT_INT, .i = i };
}

static struct field_value fv_flag(int b)
{
    return (struct field_value){ .type = VT_FLAG, .i = b != 0 };
}

static struct field_value fv_id(const struct store_id *id)
{
    return (struct field_value){ .type = VT_BLOB, .blob = id };
}

/* ---- validation --------------------------------------------------------- */

/* strnlen is POSIX, not C11. */
static size_t bounded_len(const char *text, size_t cap)
{
    const char *nul = memchr(text, '\0', cap);
    return nul ? (size_t)(nul - text) : cap;
}

/* SAT_OK if text (an array of cap bytes) holds a NUL-terminated string that
 * is non-empty when required. */
static int check_text(struct store *s, const char *what, const char *text, size_t cap,
                      int required)
{
    size_t n = bounded_len(text, cap);
    if (n == cap)
        return fail(s, SAT_ERR_STORE_TOO_LONG, "%s is too long (at most %zu characters)", what,
                    cap - 1);
    if (required && n == 0)
        return fail(s, SAT_ERR_STORE_MISSING_FIELD, "%s is required", what);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)text[i] < 0x20 && text[i] != '\n' && text[i] != '\t')
            return fail(s, SAT_ERR_STORE_INVALID, "%s contains a control character", what);
    return SAT_OK;
}

static int check_date_of_birth(struct store *s, const char *dob)
{
    int y = 0;
    int m = 0;
    int d = 0;
    int ret = check_text(s, "date of birth", dob, 11, 1);
    if (ret != SAT_OK)
        return ret;
    for (int i = 0; i < 10; i++) {
        int dash = i == 4 || i == 7;
        if (dob[i] == '\0' || (dash ? dob[i] != '-' : (dob[i] < '0' || dob[i] > '9')))
            return fail(s, SAT_ERR_STORE_INVALID, "date of birth '%s' is not YYYY-MM-DD", dob);
    }
    if (dob[10] != '\0')
        return fail(s, SAT_ERR_STORE_INVALID, "date of birth '%s' is not YYYY-MM-DD", dob);
    y = atoi(dob);
    m = atoi(dob + 5);
    d = atoi(dob + 8);
    if (y < 1880 || !sat_date_valid(y, m, d))
        return fail(s, SAT_ERR_STORE_INVALID, "date of birth '%s' is not a real date", dob);
    if (sat_date_unix_ms(y, m, d, 0, 0, 0) > hal_clock_wall_ms(s->hal))
        return fail(s, SAT_ERR_STORE_OUT_OF_RANGE, "date of birth '%s' is in the future", dob);
    return SAT_OK;
}

static int check_patient(struct store *s, struct store_patient *p)
{
    char digits[NHS_NUMBER_DIGITS + 1];
    int ret = check_text(s, "NHS number", p->nhs_number, sizeof p->nhs_number, 1);
    if (ret == SAT_OK && !nhs_number_parse(p->nhs_number, digits))
        ret = fail(s, SAT_ERR_STORE_INVALID_NHS,
                   "NHS number '%s' is not valid (10 digits, Modulus 11 check digit)",
                   p->nhs_number);
    if (ret == SAT_OK)
        memcpy(p->nhs_number, digits, sizeof digits);
    if (ret == SAT_OK)
        ret = check_text(s, "given name", p->given_name, sizeof p->given_name, 1);
    if (ret == SAT_OK)
        ret = check_text(s, "family name", p->family_name, sizeof p->family_name, 1);
    if (ret == SAT_OK)
        ret = check_date_of_birth(s, p->date_of_birth);
    if (ret == SAT_OK)
        ret = check_text(s, "address", p->address, sizeof p->address, 1);
    if (ret == SAT_OK)
        ret = check_text(s, "postcode", p->postcode, sizeof p->postcode, 0);
    if (ret == SAT_OK)
        ret = check_text(s, "team", p->team, sizeof p->team, 0);
    return ret;
}

/* ---- open / close ------------------------------------------------------- */

/* Layout 2 to 3, in check_layout's transaction: each kind's merge state,
 * a table of a row per field keyed by rowid << 16 | field (origin NULL:
 * this device), goes into its records' rows (ms: fs_entry blobs in field
 * order), and each other writer gets a ref in the origin table. */
static int migrate_v2(struct store *s)
{
    static const char *const kinds[] = { "patient", "visit", "observation", "note", "task" };
    char *text = malloc(STORE_NOTE_TEXT_BYTES);
    int ret = text ? SAT_OK : fail(s, SAT_ERR_NO_MEMORY, "out of memory");
    for (size_t k = 0; ret == SAT_OK && k < sizeof kinds / sizeof kinds[0]; k++) {
        sqlite3_stmt *sel = NULL;
        sqlite3_stmt *ins = NULL;
        char sql[200];
        int64_t cur = -1;
        int rc;
        snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN ms BLOB", kinds[k]);
        rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        snprintf(sql, sizeof sql,
                 "SELECT k, vtype, vint, vtext, vblob, hlc_wall, hlc_counter, origin FROM fs_%s"
                 " ORDER BY k",
                 kinds[k]);
        if (rc == SQLITE_OK)
            rc = sqlite3_prepare_v2(s->db, sql, -1, &sel, NULL);
        snprintf(sql, sizeof sql, "UPDATE %s SET ms = ?2 WHERE rowid = ?1", kinds[k]);
        if (rc == SQLITE_OK)
            rc = sqlite3_prepare_v2(s->db, sql, -1, &ins, NULL);
        s->fs.len = 0;
        while (rc == SQLITE_OK && ret == SAT_OK) {
            struct fs_entry e;
            struct store_id id;
            int64_t key;
            rc = sqlite3_step(sel);
            if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                break;
            key = rc == SQLITE_ROW ? sqlite3_column_int64(sel, 0) : -1;
            if (cur >= 0 && (rc == SQLITE_DONE || key >> 16 != cur)) {
                sqlite3_bind_int64(ins, 1, cur);
                sqlite3_bind_blob(ins, 2, s->fs.buf, (int)s->fs.len, SQLITE_STATIC);
                ret = run(s, ins, "migrate the merge state");
                s->fs.len = 0;
            }
            if (rc == SQLITE_DONE || ret != SAT_OK) {
                rc = SQLITE_OK;
                break;
            }
            rc = SQLITE_OK;
            cur = key >> 16;
            memset(&e, 0, sizeof e);
            e.field = (uint32_t)(key & FIELD_MAX);
            e.type = sqlite3_column_int(sel, 1);
            e.i = sqlite3_column_int64(sel, 2);
            e.stamp.wall_ms = (uint64_t)sqlite3_column_int64(sel, 5);
            e.stamp.counter = (uint32_t)sqlite3_column_int64(sel, 6);
            if (key < 0 || e.type < VT_TEXT || e.type > VT_TOMBSTONE) {
                ret = fail(s, SAT_ERR_STORE_CORRUPT, "the merge state of a %s record is damaged",
                           kinds[k]);
                break;
            }
            if (e.type == VT_TEXT) {
                column_text(sel, 3, text, STORE_NOTE_TEXT_BYTES);
                e.text = text;
                e.text_len = strlen(text);
            }
            e.has_blob = e.type == VT_BLOB && column_id(sel, 4, &id);
            e.blob = e.has_blob ? id.b : NULL;
            if (sqlite3_column_type(sel, 7) != SQLITE_NULL) {
                if (!column_id(sel, 7, &id)) {
                    ret = fail(s, SAT_ERR_STORE_CORRUPT, "a writer's id in the merge state of a "
                               "%s record is damaged", kinds[k]);
                    break;
                }
                ret = origin_ref(s, &id, &e.origin);
            }
            if (ret == SAT_OK)
                ret = fs_reserve(s, s->fs.len + FS_ENTRY_MAX);
            if (ret == SAT_OK)
                s->fs.len += fs_entry_encode(s->fs.buf + s->fs.len, &e);
        }
        sqlite3_finalize(sel);
        sqlite3_finalize(ins);
        if (ret == SAT_OK && rc == SQLITE_OK) {
            snprintf(sql, sizeof sql, "DROP TABLE fs_%s", kinds[k]);
            rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        }
        if (ret == SAT_OK && rc != SQLITE_OK)
            ret = sql_fail(s, rc, "migrate the merge state to layout 3");
    }
    s->fs.len = 0;
    free(text);
    return ret;
}

/* Creates the tables of a new store, migrates a layout 2 store, or checks
 * an existing store has this build's layout (PRAGMA user_version). A store
 * made by a development build before layouts were numbered (version 0
 * with tables in it), or with layout 1, is refused: nothing was deployed
 * with them, and guessing at their layout could lose records. */
static int check_layout(struct store *s)
{
    sqlite3_stmt *q = NULL;
    int version = -1;
    int tables = 0;
    int rc = sqlite3_prepare_v2(s->db, "SELECT (SELECT user_version FROM pragma_user_version),"
                                " (SELECT count(*) FROM sqlite_schema WHERE type = 'table')",
                                -1, &q, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        version = sqlite3_column_int(q, 0);
        tables = sqlite3_column_int(q, 1);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_OK)
        return sql_fail(s, rc, "read its layout");
    if (version < 2 && tables > 0)
        return fail(s, SAT_ERR_STORE_SQL,
                    "it was made by an early development build whose layout "
                    "this build cannot read (export it with that build, or sync it and enrol "
                    "again)");
    if (version > STORE_SCHEMA_VERSION)
        return fail(s, SAT_ERR_STORE_SQL,
                    "it has layout %d, made by a newer build (this one "
                    "reads layout %d)", version, STORE_SCHEMA_VERSION);
    if (version == STORE_SCHEMA_VERSION)
        return SAT_OK;
    rc = sqlite3_exec(s->db,
                      "BEGIN;" /* one transaction: a cut leaves no half-made store */
                      "PRAGMA user_version=" STORE_STR(STORE_SCHEMA_VERSION) ";", NULL, NULL,
                      NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, schema_sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK && version == 2) {
        int ret = migrate_v2(s);
        if (ret != SAT_OK) {
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            s->origins_loaded = 0;
            return ret;
        }
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int ret = sql_fail(s, rc, version == 2 ? "migrate it to layout 3" : "create its tables");
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        s->origins_loaded = 0;
        return ret;
    }
    s->origins_committed = s->norigins;
    return SAT_OK;
}

static int load_meta(struct store *s)
{
    sqlite3_stmt *q = stmt(s, ST_META_GET);
    int rc;
    if (!q)
        return sql_fail(s, sqlite3_errcode(s->db), "read settings");
    sqlite3_bind_text(q, 1, "device_id", -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW && column_id(q, 0, &s->device)) {
        sqlite3_reset(q);
    } else if (rc == SQLITE_DONE) {
        int ret;
        sqlite3_reset(q);
        /* A device id says nothing of when the tablet was enrolled. */
        ret = hal_entropy_fill(s->hal, s->device.b, STORE_ID_BYTES);
        if (ret != SAT_OK)
            return fail(s, ret, "no randomness for a device id");
        q = stmt(s, ST_META_SET);
        sqlite3_bind_text(q, 1, "device_id", -1, SQLITE_STATIC);
        bind_id(q, 2, &s->device);
        ret = run(s, q, "save device id");
        if (ret != SAT_OK)
            return ret;
    } else {
        sqlite3_reset(q);
        return sql_fail(s, rc, "read device id");
    }
    /* The clock starts from this device's last logged stamp (see commit). */
    q = stmt(s, ST_LAST_STAMP);
    if (!q)
        return sql_fail(s, sqlite3_errcode(s->db), "read clock");
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        s->clock.wall_ms = (uint64_t)sqlite3_column_int64(q, 0);
        s->clock.counter = (uint32_t)sqlite3_column_int64(q, 1);
    }
    sqlite3_reset(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SAT_OK : sql_fail(s, rc, "read clock");
}

_Static_assert(VFS_CRYPT_KEY_BYTES == 32, "store.h promises a 32-byte file key");

int store_file_key(const struct keys *k, uint8_t key[VFS_CRYPT_KEY_BYTES])
{
    static const unsigned char info[] = "satchel store v1";
    if (!k->unlocked)
        return SAT_ERR_KEYS_LOCKED;
    /* A key for the store alone, so the DEK can serve other purposes. */
    if (mbedtls_hkdf(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), k->store_id,
                     sizeof k->store_id, k->dek, sizeof k->dek, info, sizeof info - 1, key,
                     VFS_CRYPT_KEY_BYTES) != 0)
        return SAT_ERR_KEYS_CRYPTO;
    return SAT_OK;
}

int store_open(const struct hal *h, const struct keys *k, struct store **out,
               char why[STORE_ERRMSG_BYTES])
{
    uint8_t key[VFS_CRYPT_KEY_BYTES];
    struct store *s;
    int ret;
    int rc;

    if (why)
        why[0] = '\0';
    if (!k->unlocked)
        return SAT_ERR_KEYS_LOCKED;
    s = calloc(1, sizeof *s);
    if (!s)
        return SAT_ERR_NO_MEMORY;
    s->hal = h;
    ret = store_file_key(k, key);
    if (ret != SAT_OK)
        goto exit;
    ret = vfs_crypt_register(h, key, k->store_id, &s->vfs);
    if (ret != SAT_OK)
        goto exit;
    rc = sqlite3_open_v2(STORE_DB_NAME, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                         vfs_crypt_name(s->vfs));
    if (rc != SQLITE_OK) {
        ret = sql_fail(s, rc, "open its database");
        goto exit;
    }
    sqlite3_extended_result_codes(s->db, 1);
    /* One process owns the store: locking_mode=EXCLUSIVE keeps the lock
     * between transactions (no change-counter or hot-journal probe each
     * time) and is what lets the VFS, which has no shared memory, run a WAL
     * (SQLite then keeps the WAL index in its heap); it must come before
     * anything reads the database. Page = VFS block, set before the first
     * page is written. WAL: a commit writes each dirty page once, as a
     * frame sealed in the form of the database slot, with one sync; a
     * checkpoint copies frames into the database without sealing again.
     * Full durability (the WAL is synced at every commit); temporary data
     * in memory. */
    rc = sqlite3_exec(s->db,
                      "PRAGMA locking_mode=EXCLUSIVE; PRAGMA page_size=" STORE_STR(VFS_CRYPT_BLOCK_BYTES) ";"
                      "PRAGMA synchronous=FULL; PRAGMA temp_store=MEMORY;"
                      "PRAGMA cache_size=-2560; PRAGMA mmap_size=0;"
                      "PRAGMA wal_autocheckpoint=1000;",
                      NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        /* SQLite keeps the old journal mode, without an error, if it cannot
         * run a WAL (say, locking_mode not exclusive): check its answer. */
        sqlite3_stmt *q = NULL;
        int wal = 0;
        rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &q, NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(q);
            if (rc == SQLITE_ROW)
                wal = sqlite3_stricmp((const char *)sqlite3_column_text(q, 0), "wal") == 0;
            if (rc == SQLITE_ROW || rc == SQLITE_DONE)
                rc = SQLITE_OK;
        }
        sqlite3_finalize(q);
        if (rc == SQLITE_OK && !wal) {
            ret = fail(s, SAT_ERR_STORE_SQL,
                       "SQLite would not use its write-ahead log");
            goto exit;
        }
    }
    if (rc != SQLITE_OK) {
        ret = sql_fail(s, rc, "set up its database");
        goto exit;
    }
    ret = check_layout(s);
    if (ret != SAT_OK)
        goto exit;
    ret = load_meta(s);
exit:
    mbedtls_platform_zeroize(key, sizeof key);
    if (ret != SAT_OK) {
        if (why)
            snprintf(why, STORE_ERRMSG_BYTES, "%s", s->errmsg);
        store_close(s);
        return ret;
    }
    *out = s;
    return SAT_OK;
}

static void apply_stmts_free(struct apply_stmts *a);

void store_close(struct store *s)
{
    if (!s)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    for (int i = 0; i <= RECORD_KINDS; i++) {
        sqlite3_finalize(s->fs_get[i]);
        sqlite3_finalize(s->fs_put[i]);
        sqlite3_finalize(s->rowid_of[i]);
    }
    for (int i = 0; i < PURGE_STMTS; i++)
        sqlite3_finalize(s->purge[i]);
    sqlite3_finalize(s->unpushed);
    sqlite3_finalize(s->origin_add);
    apply_stmts_free(s->apply);
    free(s->fs.buf);
    free(s->origins);
    if (s->db)
        sqlite3_close(s->db);
    vfs_crypt_unregister(s->vfs);
    mbedtls_platform_zeroize(s, sizeof *s);
    free(s);
}

void store_device_id(const struct store *s, struct store_id *out)
{
    *out = s->device;
}

static int meta_get_u64(struct store *s, const char *key, uint64_t *out);

int store_adopt_device_id(struct store *s, const struct store_id *id)
{
    sqlite3_stmt *q;
    uint64_t acked = 0;
    int ret;
    s->errmsg[0] = '\0';
    if (memcmp(id, &s->device, sizeof *id) == 0)
        return SAT_OK;
    ret = meta_get_u64(s, "push_acked", &acked);
    if (ret != SAT_OK)
        return ret;
    if (acked > 0)
        return fail(s, SAT_ERR_STORE_NOT_ALLOWED,
                    "this store already synced as another device: it cannot change identity");
    /* Only the id itself changes: this device's rows carry a NULL origin,
     * which means whatever its id is. */
    ret = begin(s);
    if (ret != SAT_OK)
        return ret;
    q = stmt(s, ST_META_SET);
    if (q) {
        sqlite3_bind_text(q, 1, "device_id", -1, SQLITE_STATIC);
        bind_id(q, 2, id);
    }
    ret = finish(s, run(s, q, "adopt device id"));
    if (ret == SAT_OK)
        s->device = *id;
    return ret;
}

/* ---- patients ----------------------------------------------------------- */

/* The text fields of a patient: column, proto field, place in the struct. */
struct patient_col {
    const char *col;
    uint32_t field;
    size_t off;
    size_t cap;
};

#define PCOL(name, tag) \
    { #name, tag, offsetof(struct store_patient, name), sizeof(((struct store_patient *)0)->name) }
static const struct patient_col patient_cols[] = {
    PCOL(nhs_number, satchel_Patient_nhs_number_tag),
    PCOL(given_name, satchel_Patient_given_name_tag),
    PCOL(family_name, satchel_Patient_family_name_tag),
    PCOL(date_of_birth, satchel_Patient_date_of_birth_tag),
    PCOL(address, satchel_Patient_address_tag),
    PCOL(postcode, satchel_Patient_postcode_tag),
    PCOL(team, satchel_Patient_team_tag),
};
#define PATIENT_COLS (sizeof patient_cols / sizeof patient_cols[0])

static const char *pfield(const struct store_patient *p, size_t i)
{
    return (const char *)p + patient_cols[i].off;
}

static void row_patient(sqlite3_stmt *q, struct store_patient *p)
{
    memset(p, 0, sizeof *p);
    column_id(q, 0, &p->id);
    for (size_t i = 0; i < PATIENT_COLS; i++)
        column_text(q, (int)i + 1, (char *)p + patient_cols[i].off, patient_cols[i].cap);
    p->created_ms = sqlite3_column_int64(q, 8);
    p->deleted = sqlite3_column_int(q, 9);
}

int store_patient_add(struct store *s, struct store_patient *p)
{
    sqlite3_stmt *q;
    int ret;
    s->errmsg[0] = '\0';
    ret = check_patient(s, p);
    if (ret != SAT_OK)
        return ret;
    ret = new_id(s, &p->id);
    if (ret != SAT_OK)
        return ret;
    p->created_ms = hal_clock_wall_ms(s->hal);
    p->deleted = 0;
    ret = begin(s);
    if (ret != SAT_OK)
        return ret;
    q = stmt(s, ST_PATIENT_INSERT);
    if (!q)
        return finish(s, sql_fail(s, sqlite3_errcode(s->db), "add patient"));
    bind_id(q, 1, &p->id);
    for (size_t i = 0; i < PATIENT_COLS; i++)
        sqlite3_bind_text(q, (int)i + 2, pfield(p, i), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 9, p->created_ms);
    ret = run(s, q, "add patient");
    for (size_t i = 0; ret == SAT_OK && i < PATIENT_COLS; i++)
        if (pfield(p, i)[0] != '\0')
            ret = log_field(s, RECORD_KIND_PATIENT, &p->id, patient_cols[i].field,
                            fv_text(pfield(p, i)));
    return finish(s, ret);
}

int store_patient_get(struct store *s, const struct store_id *id, struct store_patient *out)
{
    sqlite3_stmt *q = stmt(s, ST_PATIENT_GET);
    int rc;
    char hex[STORE_ID_HEX_BYTES];
    s->errmsg[0] = '\0';
    if (!q)
        return sql_fail(s, sqlite3_errcode(s->db), "read patient");
    bind_id(q, 1, id);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        row_patient(q, out);
    sqlite3_reset(q);
    if (rc == SQLITE_ROW)
        return SAT_OK;
    if (rc != SQLITE_DONE)
        return sql_fail(s, rc, "read patient");
    store_id_to_hex(id, hex);
    return fail(s, SAT_ERR_STORE_UNKNOWN_ID, "no patient with id %s", hex);
}

/* Fails with UNKNOWN_ID unless a living patient has this id. */
static int require_patient(struct store *s, const struct store_id *id)
{
    struct store_patient p;
    int ret = store_patient_get(s, id, &p);
    if (ret == SAT_OK && p.deleted) {
        char hex[STORE_ID_HEX_BYTES];
        store_id_to_hex(id, hex);
        ret = fail(s, SAT_ERR_STORE_UNKNOWN_ID, "patient %s has been deleted", hex);
    }
    return ret;
}

int store_patient_update(struct store *s, const struct store_patient *p)
{
    struct store_patient cur;
    struct store_patient want = *p;
    int ret;
    s->errmsg[0] = '\0';
    ret = check_patient(s, &want);
    if (ret == SAT_OK)
        ret = require_patient(s, &p->id);
    if (ret == SAT_OK)
        ret = store_patient_get(s, &p->id, &cur);
    if (ret != SAT_OK)
        return ret;
    ret = begin(s);
    for (size_t i = 0; ret == SAT_OK && i < PATIENT_COLS; i++) {
        char sql[96];
        sqlite3_stmt *q = NULL;
        if (strcmp(pfield(&cur, i), pfield(&want, i)) == 0)
            continue;
        /* Column names come from the fixed table above, never from input. */
        snprintf(sql, sizeof sql, "UPDATE patient SET %s = ?2 WHERE id = ?1",
                 patient_cols[i].col);
        if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK) {
            ret = sql_fail(s, sqlite3_errcode(s->db), "update patient");
            break;
        }
        bind_id(q, 1, &p->id);
        sqlite3_bind_text(q, 2, pfield(&want, i), -1, SQLITE_TRANSIENT);
        ret = run(s, q, "update patient");
        sqlite3_finalize(q);
        if (ret == SAT_OK)
            ret = log_field(s, RECORD_KIND_PATIENT, &p->id, patient_cols[i].field,
                            fv_text(pfield(&want, i)));
    }
    return finish(s, ret);
}

/* Runs a query with an optional id bound to ?1 and calls row_fn per row. */
static int query_rows(struct store *s, const char *sql, const struct store_id *id,
                      int (*row_fn)(sqlite3_stmt *q, void *ctx), void *ctx, const char *what)
{
    sqlite3_stmt *q = NULL;
    int rc;
    int ret = SAT_OK;
    s->errmsg[0] = '\0';
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
        return sql_fail(s, sqlite3_errcode(s->db), what);
    if (id)
        bind_id(q, 1, id);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        ret = row_fn(q, ctx);
        if (ret != 0)
            break;
    }
    if (ret == SAT_OK && rc != SQLITE_DONE)
        ret = sql_fail(s, rc, what);
    sqlite3_finalize(q);
    return ret;
}

struct list_ctx {
    int (*fn)(void *arg, const void *rec);
    void *arg;
};

static int patient_row(sqlite3_stmt *q, void *ctx)
{
    struct list_ctx *lc = ctx;
    struct store_patient p;
    row_patient(q, &p);
    return lc->fn(lc->arg, &p);
}

int store_patient_list(struct store *s, int (*fn)(void *arg, const struct store_patient *p),
                       void *arg)
{
    struct list_ctx lc = { (int (*)(void *, const void *))fn, arg };
    return query_rows(s,
                      "SELECT id, nhs_number, given_name, family_name, date_of_birth, address,"
                      " postcode, team, created_ms, deleted FROM patient WHERE deleted = 0"
                      " ORDER BY family_name, given_name, rowid",
                      NULL, patient_row, &lc, "list patients");
}

/* ---- visits ------------------------------------------------------------- */

static void row_visit(sqlite3_stmt *q, struct store_visit *v)
{
    memset(v, 0, sizeof *v);
    column_id(q, 0, &v->id);
    column_id(q, 1, &v->patient_id);
    v->started_ms = sqlite3_column_int64(q, 2);
    v->ended_ms = sqlite3_column_int64(q, 3);
    column_text(q, 4, v->reason, sizeof v->reason);
    v->deleted = sqlite3_column_int(q, 5);
}

int store_visit_get(struct store *s, const struct store_id *id, struct store_visit *out)
{
    sqlite3_stmt *q = stmt(s, ST_VISIT_GET);
    int rc;
    char hex[STORE_ID_HEX_BYTES];
    if (!q)
        return sql_fail(s, sqlite3_errcode(s->db), "read visit");
    bind_id(q, 1, id);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        row_visit(q, out);
    sqlite3_reset(q);
    if (rc == SQLITE_ROW)
        return SAT_OK;
    if (rc != SQLITE_DONE)
        return sql_fail(s, rc, "read visit");
    store_id_to_hex(id, hex);
    return fail(s, SAT_ERR_STORE_UNKNOWN_ID, "no visit with id %s", hex);
}

int store_visit_start(struct store *s, const struct store_id *patient, const char *reason,
                      struct store_visit *out)
{
    struct store_visit v;
    sqlite3_stmt *q;
    int ret;
    int rc;
    s->errmsg[0] = '\0';
    memset(&v, 0, sizeof v);
    if (!reason)
        reason = "";
    if (strlen(reason) >= sizeof v.reason)
        return fail(s, SAT_ERR_STORE_TOO_LONG, "visit reason is too long (at most %zu characters)",
                    sizeof v.reason - 1);
    snprintf(v.reason, sizeof v.reason, "%s", reason);
    ret = check_text(s, "visit reason", v.reason, sizeof v.reason, 0);
    if (ret == SAT_OK)
        ret = require_patient(s, patient);
    if (ret != SAT_OK)
        return ret;
    q = stmt(s, ST_VISIT_OPEN);
    if (!q)
        return sql_fail(s, sqlite3_errcode(s->db), "start visit");
    bind_id(q, 1, patient);
    rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc == SQLITE_ROW)
        return fail(s, SAT_ERR_STORE_NOT_ALLOWED,
                    "this patient already has an open visit: end it first");
    if (rc != SQLITE_DONE)
        return sql_fail(s, rc, "start visit");
    ret = new_id(s, &v.id);
    if (ret != SAT_OK)
        return ret;
    v.patient_id = *patient;
    v.started_ms = hal_clock_wall_ms(s->hal);
    ret = begin(s);
    if (ret != SAT_OK)
        return ret;
    q = stmt(s, ST_VISIT_INSERT);
    bind_id(q, 1, &v.id);
    bind_id(q, 2, patient);
    sqlite3_bind_int64(q, 3, v.started_ms);
    sqlite3_bind_text(q, 4, v.reason, -1, SQLITE_TRANSIENT);
    ret = run(s, q, "start visit");
    if (ret == SAT_OK)
        ret = log_field(s, RECORD_KIND_VISIT, &v.id, satchel_Visit_patient_id_tag, fv_id(patient));
    if (ret == SAT_OK)
        ret = log_field(s, RECORD_KIND_VISIT, &v.id, satchel_Visit_started_ms_tag,
                        fv_int(v.started_ms));
    if (ret == SAT_OK && v.reason[0])
        ret = log_field(s, RECORD_KIND_VISIT, &v.id, satchel_Visit_reason_tag, fv_text(v.reason));
    ret = finish(s, ret);
    if (ret == SAT_OK && out)
        *out = v;
    return ret;
}

int store_visit_end(struct store *s, const struct store_id *visit, struct store_visit *out)
{
    struct store_visit v;
    sqlite3_stmt *q;
    int ret;
    s->errmsg[0] = '\0';
    ret = store_visit_get(s, visit, &v);
    if (ret != SAT_OK)
        return ret;
    if (v.deleted || v.ended_ms != 0)
        return fail(s, SAT_ERR_STORE_NOT_ALLOWED, "this visit has already ended");
    v.ended_ms = hal_clock_wall_ms(s->hal);
    if (v.ended_ms <= 0)
        v.ended_ms = 1;
    ret = begin(s);
    if (ret != SAT_OK)
        return ret;
    q = stmt(s, ST_VISIT_END);
    bind_id(q, 1, visit);
    sqlite3_bind_int64(q, 2, v.ended_ms);
    ret = run(s, q, "end visit");
    if (ret == SAT_OK)
        ret = log_field(s, RECORD_KIND_VISIT, visit, satchel_Visit_ended_ms_tag,
                        fv_int(v.ended_ms));
    ret = finish(s, ret);
    if (ret == SAT_OK && out)
        *out = v;
    return ret;
}

static int visit_row(sqlite3_stmt *q, void *ctx)
{
    struct list_ctx *lc = ctx;
    struct store_visit v;
    row_visit(q, &v);
    return lc->fn(lc->arg, &v);
}

int store_visit_list(struct store *s, const struct store_id *patient,
                     int (*fn)(void *arg, const struct store_visit *v), void *arg)
{
    struct list_ctx lc = { (int (*)(void *, const void *))fn, arg };
    return query_rows(s,
                      "SELECT id, patient_id, started_ms, ended_ms, reason, deleted FROM visit"
                      " WHERE patient_id = ?1 AND deleted = 0 ORDER BY started_ms, rowid",
                      patient, visit_row, &lc, "list visits");
}

/* Checks an optional visit belongs to the patient. */
static int check_visit_of(struct store *s, int has_visit, const struct store_id *visit,
                          const struct store_id *patient)
{
    struct store_visit v;
    int ret;
    if (!has_visit)
        return SAT_OK;
    ret = store_visit_get(s, visit, &v);
    if (ret == SAT_OK && (v.deleted || memcmp(&v.patient_id, patient, sizeof *patient) != 0))
        ret = fail(s, SAT_ERR_STORE_NOT_ALLOWED, "that visit is not one of this patient's");
    return ret;
}

/* ---- observations ------------------------------------------------------- */

static void row_obs(sqlite3_stmt *q, struct store_obs *o)
{
    struct news2_result r;
    memset(o, 0, sizeof *o);
    column_id(q, 0, &o->id);
    column_id(q, 1, &o->patient_id);
    o->has_visit = column_id(q, 2, &o->visit_id);
    o->has_amends = column_id(q, 3, &o->amends);
    o->taken_ms = sqlite3_column_int64(q, 4);
    o->vitals.respiration_rate = sqlite3_column_int(q, 5);
    o->vitals.spo2_pct = sqlite3_column_int(q, 6);
    o->vitals.spo2_scale = sqlite3_column_int(q, 7);
    o->vitals.on_oxygen = sqlite3_column_int(q, 8);
    o->vitals.systolic_bp = sqlite3_column_int(q, 9);
    o->vitals.pulse = sqlite3_column_int(q, 10);
    o->vitals.consciousness = sqlite3_column_int(q, 11);
    o->vitals.temperature_dc = sqlite3_column_int(q, 12);
    o->news2_score = sqlite3_column_int(q, 13);
    o->news2_risk = news2_score(&o->vitals, &r) == 0 ? r.risk : NEWS2_RISK_LOW;
}

int store_obs_get(struct store *s, const struct store_id *id, struct store_obs *out)
{
    sqlite3_stmt *q = stmt(s, ST_OBS_GET);
    int rc;
    char hex[STORE_ID_HEX_BYTES];
    if (!q)
        return sql_fail(s, sqlite3_errcode(s->db), "read observation");
    bind_id(q, 1, id);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        row_obs(q, out);
    sqlite3_reset(q);
    if (rc == SQLITE_ROW)
        return SAT_OK;
    if (rc != SQLITE_DONE)
        return sql_fail(s, rc, "read observation");
    store_id_to_hex(id, hex);
    return fail(s, SAT_ERR_STORE_UNKNOWN_ID, "no observation with id %s", hex);
}

static int check_vitals(struct store *s, const struct news2_vitals *v)
{
    static const int lo[] = { NEWS2_RESP_MIN, NEWS2_SPO2_MIN, 1, 0, NEWS2_SBP_MIN,
                              NEWS2_PULSE_MIN, 1, NEWS2_TEMP_DC_MIN };
    static const int hi[] = { NEWS2_RESP_MAX, NEWS2_SPO2_MAX, 2, 1, NEWS2_SBP_MAX,
                              NEWS2_PULSE_MAX, 5, NEWS2_TEMP_DC_MAX };
    const int vals[] = { v->respiration_rate, v->spo2_pct, v->spo2_scale, v->on_oxygen,
                         v->systolic_bp, v->pulse, v->consciousness, v->temperature_dc };
    int bad = news2_check(v);
    if (bad == 0)
        return SAT_OK;
    if (bad == 8)
        return fail(s, SAT_ERR_STORE_OUT_OF_RANGE,
                    "temperature %d.%d is outside %d.%d..%d.%d degrees C", vals[7] / 10,
                    abs(vals[7] % 10), lo[7] / 10, lo[7] % 10, hi[7] / 10, hi[7] % 10);
    return fail(s, SAT_ERR_STORE_OUT_OF_RANGE, "%s %d is outside %d..%d", news2_field_name(bad),
                vals[bad - 1], lo[bad - 1], hi[bad - 1]);
}

int store_obs_add(struct store *s, struct store_obs *o)
{
    static const uint32_t vital_fields[] = {
        satchel_VitalSigns_respiration_rate_tag, satchel_VitalSigns_spo2_pct_tag,
        satchel_VitalSigns_spo2_scale_tag,       satchel_VitalSigns_on_oxygen_tag,
        satchel_VitalSigns_systolic_bp_tag,      satchel_VitalSigns_pulse_tag,
        satchel_VitalSigns_consciousness_tag,    satchel_VitalSigns_temperature_dc_tag
    };
    struct news2_result score;
    sqlite3_stmt *q;
    int ret;
    s->errmsg[0] = '\0';
    ret = check_vitals(s, &o->vitals);
    if (ret == SAT_OK)
        ret = require_patient(s, &o->patient_id);
    if (ret == SAT_OK)
        ret = check_visit_of(s, o->has_visit, &o->visit_id, &o->patient_id);
    if (ret == SAT_OK && o->has_amends) {
        struct store_obs old;
        ret = store_obs_get(s, &o->amends, &old);
        if (ret == SAT_OK && memcmp(&old.patient_id, &o->patient_id, sizeof old.patient_id))
            ret = fail(s, SAT_ERR_STORE_NOT_ALLOWED,
                       "an observation can only amend one of the same patient");
    }
    if (ret != SAT_OK)
        return ret;
    news2_score(&o->vitals, &score);
    o->news2_score = score.score;
    o->news2_risk = score.risk;
    o->taken_ms = hal_clock_wall_ms(s->hal);
    ret = new_id(s, &o->id);
    if (ret == SAT_OK)
        ret = begin(s);
    if (ret != SAT_OK)
        return ret;
    q = stmt(s, ST_OBS_INSERT);
    bind_id(q, 1, &o->id);
    bind_id(q, 2, &o->patient_id);
    bind_opt_id(q, 3, o->has_visit, &o->visit_id);
    bind_opt_id(q, 4, o->has_amends, &o->amends);
    sqlite3_bind_int64(q, 5, o->taken_ms);
    {
        const int vals[] = { o->vitals.respiration_rate, o->vitals.spo2_pct,
                             o->vitals.spo2_scale,       o->vitals.on_oxygen,
                             o->vitals.systolic_bp,      o->vitals.pulse,
                             o->vitals.consciousness,    o->vitals.temperature_dc };
        for (int i = 0; i < 8; i++)
            sqlite3_bind_int(q, 6 + i, vals[i]);
        sqlite3_bind_int(q, 14, o->news2_score);
        ret = run(s, q, "add observation");
        if (ret == SAT_OK)
            ret = log_field(s, RECORD_KIND_OBSERVATION, &o->id, satchel_Observation_patient_id_tag,
                            fv_id(&o->patient_id));
        if (ret == SAT_OK && o->has_visit)
            ret = log_field(s, RECORD_KIND_OBSERVATION, &o->id, satchel_Observation_visit_id_tag,
                            fv_id(&o->visit_id));
        if (ret == SAT_OK && o->has_amends)
            ret = log_field(s, RECORD_KIND_OBSERVATION, &o->id, satchel_Observation_amends_tag,
                            fv_id(&o->amends));
        if (ret == SAT_OK)
            ret = log_field(s, RECORD_KIND_OBSERVATION, &o->id, satchel_Observation_taken_ms_tag,
                            fv_int(o->taken_ms));
        for (int i = 0; ret == SAT_OK && i < 8; i++)
            ret = log_field(s, RECORD_KIND_OBSERVATION, &o->id,
                            RECORD_OBS_VITALS_BASE + vital_fields[i], fv_int(vals[i]));
        if (ret == SAT_OK)
            ret = log_field(s, RECORD_KIND_OBSERVATION, &o->id,
                            satchel_Observation_news2_score_tag, fv_int(o->news2_score));
    }
    return finish(s, ret);
}

static int obs_row(sqlite3_stmt *q, void *ctx)
{
    struct list_ctx *lc = ctx;
    struct store_obs o;
    row_obs(q, &o);
    return lc->fn(lc->arg, &o);
}

int store_obs_list(struct store *s, const struct store_id *patient,
                   int (*fn)(void *arg, const struct store_obs *o), void *arg)
{
    struct list_ctx lc = { (int (*)(void *, const void *))fn, arg };
    return query_rows(s,
                      "SELECT id, patient_id, visit_id, amends, taken_ms, resp, spo2, spo2_scale,"
                      " on_oxygen, sbp, pulse, consciousness, temp_dc, news2 FROM observation"
                      " WHERE patient_id = ?1 ORDER BY taken_ms, rowid",
                      patient, obs_row, &lc, "list observations");
}

/* ---- care notes --------------------------------------------------------- */

static void row_note(sqlite3_stmt *q, struct store_note *n)
{
    memset(n, 0, sizeof *n);
    column_id(q, 0, &n->id);
    column_id(q, 1, &n->patient_id);
    n->has_visit = column_id(q, 2, &n->visit_id);
    n->has_amends = column_id(q, 3, &n->amends);
    n->written_ms = sqlite3_column_int64(q, 4);
    column_text(q, 5, n->text, sizeof n->text);
}

int store_note_get(struct store *s, const struct store_id *id, struct store_note *out)
{
    sqlite3_stmt *q = stmt(s, ST_NOTE_GET);
    int rc;
    char hex[STORE_ID_HEX_BYTES];
    if (!q)
        return sql_fail(s, sqlite3_errcode(s->db), "read note");
    bind_id(q, 1, id);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        row_note(q, out);
    sqlite3_reset(q);
    if (rc == SQLITE_ROW)
        return SAT_OK;
    if (rc != SQLITE_DONE)
        return sql_fail(s, rc, "read note");
    store_id_to_hex(id, hex);
    return fail(s, SAT_ERR_STORE_UNKNOWN_ID, "no care note with id %s", hex);
}

int store_note_add(struct store *s, struct store_note *n)
{
    sqlite3_stmt *q;
    int ret;
    s->errmsg[0] = '\0';
    ret = check_text(s, "note text", n->text, sizeof n->text, 1);
    if (ret == SAT_OK)
        ret = require_patient(s, &n->patient_id);
    if (ret == SAT_OK)
        ret = check_visit_of(s, n->has_visit, &n->visit_id, &n->patient_id);
    if (ret == SAT_OK && n->has_amends) {
        struct store_note *old = malloc(sizeof *old);
        ret = old ? store_note_get(s, &n->amends, old) : SAT_ERR_NO_MEMORY;
        if (ret == SAT_OK && memcmp(&old->patient_id, &n->patient_id, sizeof old->patient_id))
            ret = fail(s, SAT_ERR_STORE_NOT_ALLOWED,
                       "a note can only amend a note of the same patient");
        free(old);
    }
    if (ret != SAT_OK)
        return ret;
    n->written_ms = hal_clock_wall_ms(s->hal);
    ret = new_id(s, &n->id);
    if (ret == SAT_OK)
        ret = begin(s);
    if (ret != SAT_OK)
        return ret;
    q = stmt(s, ST_NOTE_INSERT);
    bind_id(q, 1, &n->id);
    bind_id(q, 2, &n->patient_id);
    bind_opt_id(q, 3, n->has_visit, &n->visit_id);
    bind_opt_id(q, 4, n->has_amends, &n->amends);
    sqlite3_bind_int64(q, 5, n->written_ms);
    sqlite3_bind_text(q, 6, n->text, -1, SQLITE_TRANSIENT);
    ret = run(s, q, "add note");
    if (ret == SAT_OK)
        ret = log_field(s, RECORD_KIND_CARE_NOTE, &n->id, satchel_CareNote_patient_id_tag,
                        fv_id(&n->patient_id));
    if (ret == SAT_OK && n->has_visit)
        ret = log_field(s, RECORD_KIND_CARE_NOTE, &n->id, satchel_CareNote_visit_id_tag,
                        fv_id(&n->visit_id));
    if (ret == SAT_OK && n->has_amends)
        ret = log_field(s, RECORD_KIND_CARE_NOTE, &n->id, satchel_CareNote_amends_tag,
                        fv_id(&n->amends));
    if (ret == SAT_OK)
        ret = log_field(s, RECORD_KIND_CARE_NOTE, &n->id, satchel_CareNote_written_ms_tag,
                        fv_int(n->written_ms));
    if (ret == SAT_OK)
        ret = log_field(s, RECORD_KIND_CARE_NOTE, &n->id, satchel_CareNote_text_tag,
                        fv_text(n->text));
    return finish(s, ret);
}

static int note_row(sqlite3_stmt *q, void *ctx)
{
    struct list_ctx *lc = ctx;
    struct store_note *n = malloc(sizeof *n);
    int ret;
    if (!n)
        return SAT_ERR_NO_MEMORY;
    row_note(q, n);
    ret = lc->fn(lc->arg, n);
    free(n);
    return ret;
}

int store_note_list(struct store *s, const struct store_id *patient,
                    int (*fn)(void *arg, const struct store_note *n), void *arg)
{
    struct list_ctx lc = { (int (*)(void *, const void *))fn, arg };
    return query_rows(s,
                      "SELECT id, patient_id, visit_id, amends, written_ms, text FROM note"
                      " WHERE patient_id = ?1 ORDER BY written_ms, rowid",
                      patient, note_row, &lc, "list notes");
}

/* ---- tasks -------------------------------------------------------------- */

static void row_task(sqlite3_stmt *q, struct store_task *t)
{
    memset(t, 0, sizeof *t);
    column_id(q, 0, &t->id);
    column_id(q, 1, &t->patient_id);
    column_text(q, 2, t->title, sizeof t->title);
    t->due_ms = sqlite3_column_int64(q, 3);
    t->done = sqlite3_column_int(q, 4);
    t->deleted = sqlite3_column_int(q, 5);
}

int store_task_get(struct store *s, const struct store_id *id, struct store_task *out)
{
    sqlite3_stmt *q = stmt(s, ST_TASK_GET);
    int rc;
    char hex[STORE_ID_HEX_BYTES];
    if (!q)
        return sql_fail(s, sqlite3_errcode(s->db), "read task");
    bind_id(q, 1, id);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        row_task(q, out);
    sqlite3_reset(q);
    if (rc == SQLITE_ROW)
        return SAT_OK;
    if (rc != SQLITE_DONE)
        return sql_fail(s, rc, "read task");
    store_id_to_hex(id, hex);
    return fail(s, SAT_ERR_STORE_UNKNOWN_ID, "no task with id %s", hex);
}

int store_task_add(struct store *s, struct store_task *t)
{
    sqlite3_stmt *q;
    int ret;
    s->errmsg[0] = '\0';
    ret = check_text(s, "task title", t->title, sizeof t->title, 1);
    if (ret == SAT_OK && t->due_ms < 0)
        ret = fail(s, SAT_ERR_STORE_OUT_OF_RANGE, "task due time is negative");
    if (ret == SAT_OK)
        ret = require_patient(s, &t->patient_id);
    if (ret == SAT_OK)
        ret = new_id(s, &t->id);
    if (ret == SAT_OK)
        ret = begin(s);
    if (ret != SAT_OK)
        return ret;
    t->done = 0;
    t->deleted = 0;
    q = stmt(s, ST_TASK_INSERT);
    bind_id(q, 1, &t->id);
    bind_id(q, 2, &t->patient_id);
    sqlite3_bind_text(q, 3, t->title, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 4, t->due_ms);
    ret = run(s, q, "add task");
    if (ret == SAT_OK)
        ret = log_field(s, RECORD_KIND_TASK, &t->id, satchel_Task_patient_id_tag,
                        fv_id(&t->patient_id));
    if (ret == SAT_OK)
        ret = log_field(s, RECORD_KIND_TASK, &t->id, satchel_Task_title_tag, fv_text(t->title));
    if (ret == SAT_OK && t->due_ms)
        ret = log_field(s, RECORD_KIND_TASK, &t->id, satchel_Task_due_ms_tag, fv_int(t->due_ms));
    return finish(s, ret);
}

int store_task_done(struct store *s, const struct store_id *id)
{
    struct store_task t;
    sqlite3_stmt *q;
    int ret;
    s->errmsg[0] = '\0';
    ret = store_task_get(s, id, &t);
    if (ret == SAT_OK && t.deleted)
        ret = fail(s, SAT_ERR_STORE_NOT_ALLOWED, "that task has been deleted");
    if (ret == SAT_OK && t.done)
        ret = fail(s, SAT_ERR_STORE_NOT_ALLOWED, "that task is already done");
    if (ret == SAT_OK)
        ret = begin(s);
    if (ret != SAT_OK)
        return ret;
    q = stmt(s, ST_TASK_DONE);
    bind_id(q, 1, id);
    ret = run(s, q, "complete task");
    if (ret == SAT_OK)
        ret = log_field(s, RECORD_KIND_TASK, id, satchel_Task_done_tag, fv_flag(1));
    return finish(s, ret);
}

static int task_row(sqlite3_stmt *q, void *ctx)
{
    struct list_ctx *lc = ctx;
    struct store_task t;
    row_task(q, &t);
    return lc->fn(lc->arg, &t);
}

int store_task_list(struct store *s, const struct store_id *patient,
                    int (*fn)(void *arg, const struct store_task *t), void *arg)
{
    struct list_ctx lc = { (int (*)(void *, const void *))fn, arg };
    return query_rows(s,
                      "SELECT id, patient_id, title, due_ms, done, deleted FROM task"
                      " WHERE patient_id = ?1 AND deleted = 0 ORDER BY done, due_ms, rowid",
                      patient, task_row, &lc, "list tasks");
}

/* ---- delete, changes, integrity, ids ------------------------------------ */

static const char *kind_table(enum record_kind kind)
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

int store_delete(struct store *s, enum record_kind kind, const struct store_id *id)
{
    char sql[80];
    sqlite3_stmt *q = NULL;
    int ret;
    int changed;
    s->errmsg[0] = '\0';
    if (kind == RECORD_KIND_OBSERVATION || kind == RECORD_KIND_CARE_NOTE)
        return fail(s, SAT_ERR_STORE_NOT_ALLOWED,
                    "observations and care notes are append-only: add an amending entry");
    if (!kind_table(kind))
        return fail(s, SAT_ERR_STORE_INVALID, "unknown record kind %d", (int)kind);
    ret = begin(s);
    if (ret != SAT_OK)
        return ret;
    snprintf(sql, sizeof sql, "UPDATE %s SET deleted = 1 WHERE id = ?1 AND deleted = 0",
             kind_table(kind));
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
        return finish(s, sql_fail(s, sqlite3_errcode(s->db), "delete"));
    bind_id(q, 1, id);
    ret = run(s, q, "delete");
    sqlite3_finalize(q);
    changed = sqlite3_changes(s->db);
    if (ret == SAT_OK && changed == 0) {
        char hex[STORE_ID_HEX_BYTES];
        store_id_to_hex(id, hex);
        ret = fail(s, SAT_ERR_STORE_UNKNOWN_ID, "no %s with id %s (or already deleted)",
                   kind_table(kind), hex);
    }
    if (ret == SAT_OK)
        ret = log_field(s, kind, id, 0, (struct field_value){ .type = VT_TOMBSTONE, .i = 1 });
    return finish(s, ret);
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
    column_id(q, 1, &c.record_id);
    c.kind = (enum record_kind)sqlite3_column_int(q, 2);
    c.field = (uint32_t)sqlite3_column_int64(q, 3);
    c.value_type = sqlite3_column_int(q, 4);
    c.value_int = sqlite3_column_int64(q, 5);
    c.value_text = (const char *)sqlite3_column_text(q, 6);
    column_id(q, 7, &c.value_blob);
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
    sqlite3_stmt *q = stmt(s, ST_CHANGES);
    int rc;
    int ret = SAT_OK;
    s->errmsg[0] = '\0';
    if (!q)
        return sql_fail(s, sqlite3_errcode(s->db), "read change log");
    sqlite3_bind_int64(q, 1, (sqlite3_int64)after);
    sqlite3_bind_int64(q, 2, max ? (sqlite3_int64)max : -1);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        ret = change_row(q, &cc);
        if (ret != 0)
            break;
    }
    if (ret == SAT_OK && rc != SQLITE_DONE)
        ret = sql_fail(s, rc, "read change log");
    sqlite3_reset(q);
    return ret;
}

/* ---- sync: merge ---------------------------------------------------------- */

/* Where each replicated field lives: the record model's column
 * (record.h). Fields it does not know (from newer firmware) are still
 * merged in the merge state, so nothing is lost on the way through. */

/* A pulled record this replica has never had, while its run of changes
 * is merged: the winning values are gathered and written by one INSERT
 * when the run ends (pend_flush: at another record's change, or at the
 * batch's commit; a run may span calls of store_apply_changes, so values
 * are copied), not as an empty row and then an UPDATE per field (each a
 * rewrite of the row, and of an index entry for some columns), with its
 * merge state (s->fs holds it meanwhile, empty to start with). Its rowid is
 * chosen up front, as SQLite would (the largest + 1), since the held
 * merge state is keyed by it. */
struct pending_row {
    int active;
    enum record_kind kind;
    struct store_id id;
    int64_t rowid;
    int deleted;
    uint64_t set; /* bit i: vals[i] holds record_field_table[i] */
    struct field_value vals[RECORD_FIELD_COUNT];
    char *text[RECORD_FIELD_COUNT];           /* owned copies of text values */
    struct store_id blob[RECORD_FIELD_COUNT]; /* copies of id values */
};
_Static_assert(RECORD_FIELD_COUNT <= 64, "pending_row.set has a bit per mapped column");
/* INSERTs kept per kind: a kind's new records differ in their optional
 * columns (an amended observation, a note outside a visit). */
#define PEND_INSERTS 4

/* Prepared on first use: one UPDATE per mapped column, one tombstone
 * UPDATE per kind, and per kind the INSERTs of pending rows (one for each
 * of the last PEND_INSERTS sets of columns) and the lookup of the next
 * rowid. */
struct apply_stmts {
    sqlite3_stmt *set[RECORD_FIELD_COUNT];
    sqlite3_stmt *tomb[RECORD_KINDS + 1];
    struct {
        uint64_t set;
        sqlite3_stmt *q;
    } insert[RECORD_KINDS + 1][PEND_INSERTS];
    unsigned insert_next[RECORD_KINDS + 1]; /* the slot to reuse next */
    sqlite3_stmt *next_rowid[RECORD_KINDS + 1];
    struct pending_row pend;
};

static void pend_clear(struct pending_row *pr);

static void apply_stmts_free(struct apply_stmts *a)
{
    if (!a)
        return;
    pend_clear(&a->pend);
    for (size_t i = 0; i < RECORD_FIELD_COUNT; i++)
        sqlite3_finalize(a->set[i]);
    for (size_t i = 0; i <= RECORD_KINDS; i++) {
        sqlite3_finalize(a->tomb[i]);
        for (size_t j = 0; j < PEND_INSERTS; j++)
            sqlite3_finalize(a->insert[i][j].q);
        sqlite3_finalize(a->next_rowid[i]);
    }
    free(a);
}

static sqlite3_stmt *prepare_once(struct store *s, sqlite3_stmt **slot, const char *sql)
{
    if (!*slot && sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL) !=
                      SQLITE_OK)
        return NULL;
    sqlite3_reset(*slot);
    sqlite3_clear_bindings(*slot);
    return *slot;
}

/* prepare_once for a statement on a kind's table: fmt has one %s, the
 * table's name, and is formatted only when the statement is first
 * prepared. */
static sqlite3_stmt *prepare_kind_once(struct store *s, sqlite3_stmt **slot, const char *fmt,
                                       enum record_kind kind)
{
    char sql[80];
    sql[0] = '\0';
    if (!*slot)
        snprintf(sql, sizeof sql, fmt, kind_table(kind));
    return prepare_once(s, slot, sql);
}

/* The mapped column of a field of a kind, or RECORD_FIELD_COUNT if it has none. */
static size_t field_col_of(enum record_kind kind, uint32_t field)
{
    size_t i;
    for (i = 0; i < RECORD_FIELD_COUNT; i++)
        if (record_field_table[i].kind == kind && record_field_table[i].number == field)
            break;
    return i;
}

/* Binds a field's value to one parameter of a record-row statement. */
static void bind_column(sqlite3_stmt *q, int idx, struct field_value v)
{
    if (v.type == VT_TEXT)
        sqlite3_bind_text(q, idx, v.text, -1, SQLITE_TRANSIENT);
    else if (v.type == VT_BLOB)
        bind_id(q, idx, v.blob);
    else
        sqlite3_bind_int64(q, idx, v.i);
}

/* The pending row if it is record's (not yet in its table), else NULL. */
static struct pending_row *pend_of(const struct store *s, enum record_kind kind,
                                   const struct store_id *record)
{
    struct pending_row *pr = s->apply ? &s->apply->pend : NULL;
    if (!pr || !pr->active || pr->kind != kind || memcmp(&pr->id, record, sizeof *record) != 0)
        return NULL;
    return pr;
}

/* 1 if (kind, rowid) is the pending row's. */
static int pend_holds(const struct store *s, enum record_kind kind, int64_t rowid)
{
    const struct pending_row *pr = s->apply ? &s->apply->pend : NULL;
    return pr && pr->active && pr->kind == kind && pr->rowid == rowid;
}

/* 1 and its rowid if record is the pending row. */
static int pend_rowid(const struct store *s, enum record_kind kind, const struct store_id *record,
                      int64_t *rowid)
{
    const struct pending_row *pr = pend_of(s, kind, record);
    if (pr)
        *rowid = pr->rowid;
    return pr != NULL;
}

/* Forgets the pending row (written, or its batch given up). */
static void pend_clear(struct pending_row *pr)
{
    for (size_t i = 0; i < RECORD_FIELD_COUNT; i++) {
        free(pr->text[i]);
        pr->text[i] = NULL;
    }
    pr->active = 0;
    pr->set = 0;
}

/* Keeps a winning value for the pending row's column i. */
static int pend_set(struct store *s, size_t i, struct field_value v)
{
    struct pending_row *pr = &s->apply->pend;
    if (v.type == VT_TEXT) {
        size_t n = strlen(v.text) + 1;
        char *copy = malloc(n);
        if (!copy)
            return fail(s, SAT_ERR_NO_MEMORY, "out of memory");
        memcpy(copy, v.text, n);
        free(pr->text[i]);
        pr->text[i] = copy;
        v.text = copy;
    } else if (v.type == VT_BLOB) {
        pr->blob[i] = *v.blob;
        v.blob = &pr->blob[i];
    }
    pr->vals[i] = v;
    pr->set |= (uint64_t)1 << i;
    return SAT_OK;
}

static int pend_insert(struct store *s);

/* Writes the pending row, if any, as one INSERT. */
static int pend_flush(struct store *s)
{
    int ret;
    if (!s->apply || !s->apply->pend.active)
        return SAT_OK;
    ret = pend_insert(s);
    pend_clear(&s->apply->pend);
    return ret;
}

static int pend_insert(struct store *s)
{
    struct pending_row *pr = &s->apply->pend;
    sqlite3_stmt **slot = NULL;
    sqlite3_stmt *q;
    int idx = 5;
    for (size_t j = 0; j < PEND_INSERTS && !slot; j++)
        if (s->apply->insert[pr->kind][j].q && s->apply->insert[pr->kind][j].set == pr->set)
            slot = &s->apply->insert[pr->kind][j].q;
    if (!slot) {
        char cols[512];
        char params[256];
        char sql[900];
        size_t nc = 0, np = 0;
        int n = 5;
        for (size_t i = 0; i < RECORD_FIELD_COUNT; i++) {
            if (!(pr->set >> i & 1))
                continue;
            nc += (size_t)snprintf(cols + nc, sizeof cols - nc, ", %s", record_field_table[i].column);
            np += (size_t)snprintf(params + np, sizeof params - np, ", ?%d", n++);
        }
        cols[nc] = params[np] = '\0';
        snprintf(sql, sizeof sql,
                 "INSERT INTO %s(rowid, id, deleted, ms%s) VALUES (?1, ?2, ?3, ?4%s)",
                 kind_table(pr->kind), cols, params);
        unsigned j = s->apply->insert_next[pr->kind]++ % PEND_INSERTS;
        slot = &s->apply->insert[pr->kind][j].q;
        sqlite3_finalize(*slot);
        *slot = NULL;
        s->apply->insert[pr->kind][j].set = pr->set;
        if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL) !=
            SQLITE_OK)
            return sql_fail(s, sqlite3_errcode(s->db), "apply change");
    }
    q = *slot;
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    sqlite3_bind_int64(q, 1, pr->rowid);
    bind_id(q, 2, &pr->id);
    sqlite3_bind_int(q, 3, pr->deleted);
    fs_bind_for(s, q, 4, pr->kind, pr->rowid);
    for (size_t i = 0; i < RECORD_FIELD_COUNT; i++)
        if (pr->set >> i & 1)
            bind_column(q, idx++, pr->vals[i]);
    return run(s, q, "apply change");
}

/* Starts a pending row for a record this replica does not have. */
static int pend_start(struct store *s, enum record_kind kind, const struct store_id *id)
{
    struct pending_row *pr = &s->apply->pend;
    sqlite3_stmt *q;
    int rc;
    q = prepare_kind_once(s, &s->apply->next_rowid[kind],
                          "SELECT coalesce(max(rowid), 0) + 1 FROM %s", kind);
    if (!q)
        return sql_fail(s, sqlite3_errcode(s->db), "apply change");
    rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(q);
        return sql_fail(s, rc, "apply change");
    }
    pr->rowid = sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    pr->active = 1;
    pr->kind = kind;
    pr->id = *id;
    pr->deleted = 0;
    pr->set = 0;
    /* The merge state finds the record's rowid before its row is written. */
    s->rid_valid = 1;
    s->rid_kind = kind;
    s->rid_id = *id;
    s->rid = pr->rowid;
    return SAT_OK;
}

/* Writes a winning remote value into its record row (or the pending row of
 * a record new to this replica). */
static int apply_to_record(struct store *s, const struct store_change *c, struct field_value v)
{
    struct pending_row *pr = &s->apply->pend;
    char sql[120];
    sqlite3_stmt *q;
    int64_t rowid;
    size_t i;
    int ret;
    if (!record_kind_valid((int)c->kind))
        return SAT_OK;
    if (!(pr->active && pr->kind == c->kind &&
          memcmp(&pr->id, &c->record_id, sizeof pr->id) == 0)) {
        ret = pend_flush(s); /* another record's run ended */
        if (ret == SAT_OK)
            ret = record_rowid(s, c->kind, &c->record_id, &rowid);
        if (ret == SAT_OK && rowid < 0)
            ret = pend_start(s, c->kind, &c->record_id);
        if (ret != SAT_OK)
            return ret;
    }
    i = v.type == VT_TOMBSTONE ? RECORD_FIELD_COUNT : field_col_of(c->kind, c->field);
    if (v.type != VT_TOMBSTONE &&
        (i == RECORD_FIELD_COUNT || (int)record_field_table[i].type != v.type))
        return SAT_OK; /* kept in the merge state only */
    if (pr->active) {
        if (v.type != VT_TOMBSTONE)
            return pend_set(s, i, v);
        pr->deleted = 1;
        return SAT_OK;
    }
    if (v.type == VT_TOMBSTONE) {
        snprintf(sql, sizeof sql, "UPDATE %s SET deleted = 1 WHERE rowid = ?1",
                 kind_table(c->kind));
        q = prepare_once(s, &s->apply->tomb[c->kind], sql);
    } else {
        snprintf(sql, sizeof sql, "UPDATE %s SET %s = ?2 WHERE rowid = ?1", kind_table(c->kind),
                 record_field_table[i].column);
        q = prepare_once(s, &s->apply->set[i], sql);
        if (q)
            bind_column(q, 2, v);
    }
    if (!q)
        return sql_fail(s, sqlite3_errcode(s->db), "apply change");
    sqlite3_bind_int64(q, 1, rowid);
    return run(s, q, "apply change");
}


static void render_value(int type, int64_t i, const char *text, const struct store_id *blob,
                         char *out, size_t cap)
{
    switch (type) {
    case VT_TEXT: snprintf(out, cap, "%s", text ? text : ""); break;
    case VT_INT: snprintf(out, cap, "%lld", (long long)i); break;
    case VT_FLAG: snprintf(out, cap, "%s", i ? "true" : "false"); break;
    case VT_TOMBSTONE: snprintf(out, cap, "(deleted)"); break;
    case VT_BLOB: {
        char hex[STORE_ID_HEX_BYTES];
        store_id_to_hex(blob, hex);
        snprintf(out, cap, "%s", hex);
        break;
    }
    default: snprintf(out, cap, "?");
    }
}

static int same_value(const struct field_winner *w, struct field_value v)
{
    if (w->type != v.type)
        return 0;
    switch (v.type) {
    case VT_TEXT: return strcmp(w->text, v.text ? v.text : "") == 0;
    case VT_BLOB: return v.blob && memcmp(&w->blob, v.blob, sizeof w->blob) == 0;
    default: return w->i == v.i;
    }
}

static int record_conflict(struct store *s, const struct store_change *c, struct field_value v,
                           const struct field_winner *w, int incoming_wins)
{
    sqlite3_stmt *q = stmt(s, ST_CONFLICT);
    char *mine = malloc(STORE_NOTE_TEXT_BYTES);
    char *theirs = malloc(STORE_NOTE_TEXT_BYTES);
    int ret = SAT_OK;
    if (!mine || !theirs)
        ret = fail(s, SAT_ERR_NO_MEMORY, "out of memory");
    if (ret == SAT_OK && !q)
        ret = sql_fail(s, sqlite3_errcode(s->db), "record conflict");
    if (ret == SAT_OK) {
        render_value(w->type, w->i, w->text, &w->blob, mine, STORE_NOTE_TEXT_BYTES);
        render_value(v.type, v.i, v.text, v.blob, theirs, STORE_NOTE_TEXT_BYTES);
        bind_id(q, 1, &c->record_id);
        sqlite3_bind_int(q, 2, (int)c->kind);
        sqlite3_bind_int64(q, 3, c->field);
        sqlite3_bind_text(q, 4, incoming_wins ? theirs : mine, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 5, incoming_wins ? mine : theirs, -1, SQLITE_TRANSIENT);
        bind_id(q, 6, incoming_wins ? &c->origin_device : &w->origin);
        bind_id(q, 7, incoming_wins ? &w->origin : &c->origin_device);
        sqlite3_bind_int64(q, 8, (sqlite3_int64)(incoming_wins ? c->hlc_wall_ms
                                                               : w->stamp.wall_ms));
        sqlite3_bind_int64(q, 9, (sqlite3_int64)(incoming_wins ? w->stamp.wall_ms
                                                               : c->hlc_wall_ms));
        sqlite3_bind_int64(q, 10, hal_clock_wall_ms(s->hal));
        ret = run(s, q, "record conflict");
    }
    free(mine);
    free(theirs);
    return ret;
}

static int merge_one(struct store *s, const struct store_change *c, struct field_winner *w,
                     struct store_apply_result *r)
{
    struct hlc stamp = { c->hlc_wall_ms, c->hlc_counter };
    struct field_value v = { c->value_type, c->value_int, c->value_text, &c->value_blob };
    const struct record_write x = { stamp, c->origin_device.b, c->has_base,
                                    { c->base_wall_ms, c->base_counter }, c->base_device.b };
    int order;
    int wins;
    int ret;
    if (c->value_type < VT_TEXT || c->value_type > VT_TOMBSTONE ||
        !record_kind_valid((int)c->kind) || (c->value_type == VT_TEXT && !c->value_text))
        return fail(s, SAT_ERR_STORE_INVALID, "malformed change (kind %d, type %d)",
                    (int)c->kind, c->value_type);
    hlc_observe(&s->clock, stamp, hal_clock_wall_ms(s->hal));
    ret = winner_get(s, c->kind, &c->record_id, c->field, w);
    if (ret != SAT_OK)
        return ret;
    order = w->exists ? record_merge_order(stamp, c->origin_device.b, w->stamp, w->origin.b) : 1;
    if (order == 0) {
        r->stale++; /* this very write is already here */
        return SAT_OK;
    }
    wins = order > 0;
    if (w->exists && record_concurrent(&x, &(struct record_write){ w->stamp, w->origin.b, 0,
                                                                   { 0, 0 }, NULL },
                                       same_value(w, v))) {
        ret = record_conflict(s, c, v, w, wins);
        if (ret != SAT_OK)
            return ret;
        r->conflicts++;
    }
    if (!wins) {
        r->stale++;
        return SAT_OK;
    }
    ret = apply_to_record(s, c, v);
    if (ret == SAT_OK)
        ret = winner_put(s, c->kind, &c->record_id, c->field, v, stamp, &c->origin_device);
    if (ret == SAT_OK)
        r->applied++;
    return ret;
}

/* The ids of patient ?1's visits, observations, notes and tasks. */
#define PATIENT_RECORDS_SQL                                                              \
    "(SELECT id FROM visit WHERE patient_id = ?1 UNION SELECT id FROM observation"      \
    " WHERE patient_id = ?1 UNION SELECT id FROM note WHERE patient_id = ?1"            \
    " UNION SELECT id FROM task WHERE patient_id = ?1)"

static int purge_patient(struct store *s, const struct store_id *patient)
{
    static const char *const sql[] = {
        "DELETE FROM visit WHERE patient_id = ?1",
        "DELETE FROM observation WHERE patient_id = ?1",
        "DELETE FROM note WHERE patient_id = ?1",
        "DELETE FROM task WHERE patient_id = ?1",
        "DELETE FROM patient WHERE id = ?1",
    };
    int ret;
    _Static_assert(sizeof sql / sizeof sql[0] == PURGE_STMTS, "one slot per purge statement");
    ret = fs_flush(s); /* the held state may be another patient's record's */
    s->fs.valid = 0;
    s->rid_valid = 0; /* the rows go, and their rowids may be used again */
    for (size_t i = 0; ret == SAT_OK && i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *q = prepare_once(s, &s->purge[i], sql[i]);
        if (!q)
            return sql_fail(s, sqlite3_errcode(s->db), "purge");
        bind_id(q, 1, patient);
        ret = run(s, q, "purge");
    }
    return ret;
}

static int meta_get_u64(struct store *s, const char *key, uint64_t *out)
{
    sqlite3_stmt *q = stmt(s, ST_META_GET);
    int rc;
    *out = 0;
    if (!q)
        return sql_fail(s, sqlite3_errcode(s->db), "read settings");
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *out = (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SAT_OK : sql_fail(s, rc, "read settings");
}

static int meta_set_u64(struct store *s, const char *key, uint64_t v)
{
    sqlite3_stmt *q = stmt(s, ST_META_SET);
    if (!q)
        return sql_fail(s, sqlite3_errcode(s->db), "save settings");
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)v);
    return run(s, q, "save settings");
}

/* The push acknowledgement and the cursor hold: while own changes up to
 * `until` are unacknowledged, the hub is given `held` (store_sync_state). */
static int hold_get(struct store *s, uint64_t *acked, uint64_t *until, uint64_t *held)
{
    int ret = meta_get_u64(s, "push_acked", acked);
    if (ret == SAT_OK)
        ret = meta_get_u64(s, "hold_until_seq", until);
    if (ret == SAT_OK)
        ret = meta_get_u64(s, "hold_cursor", held);
    return ret;
}

int store_sync_state(struct store *s, struct store_sync_state *out)
{
    sqlite3_stmt *q = NULL;
    int ret;
    s->errmsg[0] = '\0';
    memset(out, 0, sizeof *out);
    uint64_t until, held;
    ret = meta_get_u64(s, "pull_cursor", &out->pull_cursor);
    if (ret == SAT_OK)
        ret = hold_get(s, &out->push_acked, &until, &held);
    if (ret != SAT_OK)
        return ret;
    if (until > out->push_acked && held < out->pull_cursor)
        out->pull_cursor = held;
    q = stmt(s, ST_LAST_SEQ);
    if (!q)
        return sql_fail(s, sqlite3_errcode(s->db), "read change log");
    if (sqlite3_step(q) == SQLITE_ROW)
        out->last_seq = (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    return SAT_OK;
}

int store_set_push_acked(struct store *s, uint64_t acked)
{
    uint64_t cur = 0;
    int ret;
    s->errmsg[0] = '\0';
    ret = meta_get_u64(s, "push_acked", &cur);
    if (ret != SAT_OK || acked <= cur)
        return ret;
    ret = begin(s);
    if (ret == SAT_OK)
        ret = meta_set_u64(s, "push_acked", acked);
    return finish(s, ret);
}

int store_apply_begin(struct store *s)
{
    int ret;
    s->errmsg[0] = '\0';
    if (!s->apply && !(s->apply = calloc(1, sizeof *s->apply)))
        return fail(s, SAT_ERR_NO_MEMORY, "out of memory");
    ret = begin(s);
    if (ret == SAT_OK)
        s->applying = 1;
    return ret;
}

void store_apply_abort(struct store *s)
{
    if (!s->applying)
        return;
    s->applying = 0;
    pend_clear(&s->apply->pend);
    rollback(s);
}

int store_apply_changes(struct store *s, const struct store_change *changes, size_t n,
                        struct store_apply_result *acc)
{
    struct store_apply_result r = { 0, 0, 0, 0 };
    struct field_winner *w;
    int ret = SAT_OK;
    if (!s->applying)
        return fail(s, SAT_ERR_INVALID, "no pulled batch is being applied");
    s->errmsg[0] = '\0';
    w = malloc(sizeof *w);
    if (!w)
        ret = fail(s, SAT_ERR_NO_MEMORY, "out of memory");
    for (size_t i = 0; ret == SAT_OK && i < n; i++)
        ret = merge_one(s, &changes[i], w, &r);
    free(w);
    if (ret != SAT_OK) {
        store_apply_abort(s);
        return ret;
    }
    if (acc) {
        acc->applied += r.applied;
        acc->stale += r.stale;
        acc->conflicts += r.conflicts;
    }
    return SAT_OK;
}

/* Before a patient is purged: if own changes to its records are not yet
 * pushed, holds the cursor given to the hub at `cursor` (the one before the
 * purge) until the push acknowledgements reach the last of them (see
 * store_sync_state). */
static int hold_for_unpushed(struct store *s, const struct store_id *patient, uint64_t cursor)
{
    static const char sql[] = "SELECT max(seq) FROM change_log WHERE seq > ?2 AND"
                              " (record_id = ?1 OR record_id IN " PATIENT_RECORDS_SQL ")";
    sqlite3_stmt *q;
    uint64_t acked, until, held, last = 0;
    int ret = hold_get(s, &acked, &until, &held);
    if (ret != SAT_OK)
        return ret;
    q = prepare_once(s, &s->unpushed, sql); /* kept: it takes long to plan */
    if (!q)
        return sql_fail(s, sqlite3_errcode(s->db), "look for unpushed changes");
    bind_id(q, 1, patient);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)acked);
    if (sqlite3_step(q) == SQLITE_ROW)
        last = (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    if (last == 0)
        return SAT_OK;
    if (until <= acked || cursor < held)
        held = cursor;
    ret = meta_set_u64(s, "hold_cursor", held);
    if (ret == SAT_OK && last > until)
        ret = meta_set_u64(s, "hold_until_seq", last);
    return ret;
}

int store_apply_commit(struct store *s, const struct store_id *purge, size_t npurge,
                       uint64_t next_cursor, struct store_apply_result *acc)
{
    unsigned purged = 0;
    uint64_t cursor = 0;
    int ret = SAT_OK;
    if (!s->applying)
        return fail(s, SAT_ERR_INVALID, "no pulled batch is being applied");
    s->errmsg[0] = '\0';
    ret = pend_flush(s);
    if (ret == SAT_OK && npurge > 0)
        ret = meta_get_u64(s, "pull_cursor", &cursor);
    for (size_t i = 0; ret == SAT_OK && i < npurge; i++) {
        ret = hold_for_unpushed(s, &purge[i], cursor);
        if (ret == SAT_OK)
            ret = purge_patient(s, &purge[i]);
        if (ret == SAT_OK && sqlite3_changes(s->db) > 0)
            purged++;
    }
    if (ret == SAT_OK)
        ret = meta_get_u64(s, "pull_cursor", &cursor);
    if (ret == SAT_OK && next_cursor > cursor)
        ret = meta_set_u64(s, "pull_cursor", next_cursor);
    s->applying = 0;
    ret = finish(s, ret);
    if (ret == SAT_OK && acc)
        acc->purged += purged;
    return ret;
}

int store_apply_remote(struct store *s, const struct store_change *changes, size_t n,
                       const struct store_id *purge, size_t npurge, uint64_t next_cursor,
                       struct store_apply_result *out)
{
    struct store_apply_result r = { 0, 0, 0, 0 };
    int ret = store_apply_begin(s);
    if (ret == SAT_OK)
        ret = store_apply_changes(s, changes, n, &r);
    if (ret == SAT_OK)
        ret = store_apply_commit(s, purge, npurge, next_cursor, &r);
    if (ret == SAT_OK && out)
        *out = r;
    return ret;
}

struct conflict_ctx {
    int (*fn)(void *arg, const struct store_conflict *c);
    void *arg;
};

static int conflict_row(sqlite3_stmt *q, void *ctx)
{
    struct conflict_ctx *cc = ctx;
    struct store_conflict c;
    memset(&c, 0, sizeof c);
    c.id = sqlite3_column_int64(q, 0);
    column_id(q, 1, &c.record_id);
    c.kind = (enum record_kind)sqlite3_column_int(q, 2);
    c.field = (uint32_t)sqlite3_column_int64(q, 3);
    c.kept = (const char *)sqlite3_column_text(q, 4);
    c.lost = (const char *)sqlite3_column_text(q, 5);
    column_id(q, 6, &c.kept_origin);
    column_id(q, 7, &c.lost_origin);
    c.detected_ms = sqlite3_column_int64(q, 8);
    return cc->fn(cc->arg, &c);
}

int store_conflicts(struct store *s, int (*fn)(void *arg, const struct store_conflict *c),
                    void *arg)
{
    struct conflict_ctx cc = { fn, arg };
    return query_rows(s,
                      "SELECT id, record_id, kind, field, kept, lost, kept_origin, lost_origin,"
                      " detected_ms FROM conflict ORDER BY id",
                      NULL, conflict_row, &cc, "list conflicts");
}

static int hash_row(sqlite3_stmt *q, void *ctx)
{
    mbedtls_sha256_context *h = ctx;
    int n = sqlite3_column_count(q);
    for (int i = 0; i < n; i++) {
        uint8_t tag[5];
        int type = sqlite3_column_type(q, i);
        const void *p = NULL;
        int len = 0;
        char num[24];
        if (type == SQLITE_INTEGER) {
            len = snprintf(num, sizeof num, "%lld", (long long)sqlite3_column_int64(q, i));
            p = num;
        } else if (type == SQLITE_TEXT || type == SQLITE_BLOB) {
            p = type == SQLITE_TEXT ? (const void *)sqlite3_column_text(q, i)
                                    : sqlite3_column_blob(q, i);
            len = sqlite3_column_bytes(q, i);
        }
        tag[0] = (uint8_t)type;
        tag[1] = (uint8_t)(len >> 24);
        tag[2] = (uint8_t)(len >> 16);
        tag[3] = (uint8_t)(len >> 8);
        tag[4] = (uint8_t)len;
        mbedtls_sha256_update_ret(h, tag, sizeof tag);
        if (len > 0)
            mbedtls_sha256_update_ret(h, p, (size_t)len);
    }
    return 0;
}

int store_content_hash(struct store *s, uint8_t out[32])
{
    static const char *const sql[] = {
        "SELECT id, nhs_number, given_name, family_name, date_of_birth, address, postcode,"
        " team, deleted FROM patient ORDER BY id",
        "SELECT id, patient_id, started_ms, ended_ms, reason, deleted FROM visit ORDER BY id",
        "SELECT id, patient_id, visit_id, amends, taken_ms, resp, spo2, spo2_scale, on_oxygen,"
        " sbp, pulse, consciousness, temp_dc, news2, deleted FROM observation ORDER BY id",
        "SELECT id, patient_id, visit_id, amends, written_ms, text, deleted FROM note"
        " ORDER BY id",
        "SELECT id, patient_id, title, due_ms, done, deleted FROM task ORDER BY id",
    };
    mbedtls_sha256_context h;
    int ret = SAT_OK;
    mbedtls_sha256_init(&h);
    mbedtls_sha256_starts_ret(&h, 0);
    for (size_t i = 0; ret == SAT_OK && i < sizeof sql / sizeof sql[0]; i++)
        ret = query_rows(s, sql[i], NULL, hash_row, &h, "content hash");
    if (ret == SAT_OK)
        mbedtls_sha256_finish_ret(&h, out);
    mbedtls_sha256_free(&h);
    return ret;
}

static int integrity_row(sqlite3_stmt *q, void *ctx)
{
    int *ok = ctx;
    const unsigned char *t = sqlite3_column_text(q, 0);
    *ok = *ok && t && strcmp((const char *)t, "ok") == 0;
    return 0;
}

int store_check_integrity(struct store *s)
{
    int ok = 1;
    int ret = query_rows(s, "PRAGMA integrity_check", NULL, integrity_row, &ok,
                         "integrity check");
    if (ret != SAT_OK)
        return ret;
    return ok ? SAT_OK : fail(s, SAT_ERR_STORE_CORRUPT, "integrity check found damage");
}

struct resolve_ctx {
    int matches;
    struct store_id id;
};

static int resolve_row(sqlite3_stmt *q, void *ctx)
{
    struct resolve_ctx *rc = ctx;
    if (rc->matches++ == 0)
        column_id(q, 0, &rc->id);
    return 0;
}

int store_resolve_id(struct store *s, enum record_kind kind, const char *hex,
                     struct store_id *out)
{
    struct resolve_ctx rc = { 0, { { 0 } } };
    char sql[120];
    char lower[STORE_ID_HEX_BYTES];
    size_t n = hex ? strlen(hex) : 0;
    int ret;
    s->errmsg[0] = '\0';
    if (!kind_table(kind))
        return fail(s, SAT_ERR_STORE_INVALID, "unknown record kind %d", (int)kind);
    if (n < MIN_PREFIX_DIGITS || n > 2 * STORE_ID_BYTES)
        return fail(s, SAT_ERR_STORE_INVALID, "an id is %d to %d hex digits",
                    MIN_PREFIX_DIGITS, 2 * STORE_ID_BYTES);
    for (size_t i = 0; i < n; i++) {
        if (sat_hex_digit(hex[i]) < 0)
            return fail(s, SAT_ERR_STORE_INVALID, "'%s' is not a hex id", hex);
        lower[i] = hex[i] >= 'A' && hex[i] <= 'F' ? (char)(hex[i] - 'A' + 'a') : hex[i];
    }
    lower[n] = '\0';
    /* Hex digits only: safe to place in the SQL text. */
    snprintf(sql, sizeof sql, "SELECT id FROM %s WHERE lower(hex(id)) LIKE '%s%%' LIMIT 2",
             kind_table(kind), lower);
    ret = query_rows(s, sql, NULL, resolve_row, &rc, "find record");
    if (ret != SAT_OK)
        return ret;
    if (rc.matches == 0)
        return fail(s, SAT_ERR_STORE_UNKNOWN_ID, "no %s with id %s", kind_table(kind), hex);
    if (rc.matches > 1)
        return fail(s, SAT_ERR_STORE_UNKNOWN_ID, "id %s matches more than one %s: give more digits",
                    hex, kind_table(kind));
    *out = rc.id;
    return SAT_OK;
}
