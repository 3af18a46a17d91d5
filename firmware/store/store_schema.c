/*
 * store_schema.c - opening and closing the store (store.h: store_open,
 * store_close, store_file_key, the device id): the database on the
 * encrypting VFS under the key derived from the DEK, its settings (an
 * exclusive lock, a WAL, full sync), its tables, and the layout check that
 * creates a new store, migrates a layout 2 one (st_migrate_v2) in the
 * same transaction, or refuses one it cannot read with the reason.
 */
#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"
#include "vfs_crypt.h"

#define STORE_STR_(x) #x
#define STORE_STR(x) STORE_STR_(x)

/* The store's layout (PRAGMA user_version). 2: per-kind merge state, a
 * row per field; 3: a record's merge state in its own row (ms, one blob),
 * other writers by a small number (origin). A layout 2 store is migrated
 * when it is opened. */
#define STORE_SCHEMA_VERSION 3

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
        return st_sql_fail(s, rc, "read its layout");
    if (version < 2 && tables > 0)
        return st_fail(s, SAT_ERR_STORE_SQL,
                       "it was made by an early development build whose layout "
                       "this build cannot read (export it with that build, or sync it and enrol "
                       "again)");
    if (version > STORE_SCHEMA_VERSION)
        return st_fail(s, SAT_ERR_STORE_SQL,
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
        int ret = st_migrate_v2(s);
        if (ret != SAT_OK) {
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            s->origins_loaded = 0;
            return ret;
        }
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int ret = st_sql_fail(s, rc, version == 2 ? "migrate it to layout 3" : "create its tables");
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        s->origins_loaded = 0;
        return ret;
    }
    s->origins_committed = s->norigins;
    return SAT_OK;
}

static int load_meta(struct store *s)
{
    sqlite3_stmt *q = st_stmt(s, ST_META_GET);
    int rc;
    if (!q)
        return st_sql_fail(s, sqlite3_errcode(s->db), "read settings");
    sqlite3_bind_text(q, 1, "device_id", -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW && st_column_id(q, 0, &s->device)) {
        sqlite3_reset(q);
    } else if (rc == SQLITE_DONE) {
        int ret;
        sqlite3_reset(q);
        /* A device id says nothing of when the tablet was enrolled. */
        ret = hal_entropy_fill(s->hal, s->device.b, STORE_ID_BYTES);
        if (ret != SAT_OK)
            return st_fail(s, ret, "no randomness for a device id");
        q = st_stmt(s, ST_META_SET);
        sqlite3_bind_text(q, 1, "device_id", -1, SQLITE_STATIC);
        st_bind_id(q, 2, &s->device);
        ret = st_run(s, q, "save device id");
        if (ret != SAT_OK)
            return ret;
    } else {
        sqlite3_reset(q);
        return st_sql_fail(s, rc, "read device id");
    }
    /* The clock starts from this device's last logged stamp (see commit). */
    q = st_stmt(s, ST_LAST_STAMP);
    if (!q)
        return st_sql_fail(s, sqlite3_errcode(s->db), "read clock");
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        s->clock.wall_ms = (uint64_t)sqlite3_column_int64(q, 0);
        s->clock.counter = (uint32_t)sqlite3_column_int64(q, 1);
    }
    sqlite3_reset(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SAT_OK : st_sql_fail(s, rc, "read clock");
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
    st_sql_setup(s);
    ret = store_file_key(k, key);
    if (ret != SAT_OK)
        goto exit;
    ret = vfs_crypt_register(h, key, k->store_id, &s->vfs);
    if (ret != SAT_OK)
        goto exit;
    rc = sqlite3_open_v2(STORE_DB_NAME, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                         vfs_crypt_name(s->vfs));
    s->sql.db = s->db;
    if (rc != SQLITE_OK) {
        ret = st_sql_fail(s, rc, "open its database");
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
            ret = st_fail(s, SAT_ERR_STORE_SQL,
                          "SQLite would not use its write-ahead log");
            goto exit;
        }
    }
    if (rc != SQLITE_OK) {
        ret = st_sql_fail(s, rc, "set up its database");
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

void store_close(struct store *s)
{
    if (!s)
        return;
    sat_sql_finalize(&s->sql);
    for (int i = 0; i <= RECORD_KINDS; i++) {
        sqlite3_finalize(s->fs_get[i]);
        sqlite3_finalize(s->fs_put[i]);
        sqlite3_finalize(s->rowid_of[i]);
    }
    for (int i = 0; i < PURGE_STMTS; i++)
        sqlite3_finalize(s->purge[i]);
    sqlite3_finalize(s->unpushed);
    sqlite3_finalize(s->origin_add);
    st_apply_stmts_free(s->apply);
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

int store_adopt_device_id(struct store *s, const struct store_id *id)
{
    sqlite3_stmt *q;
    uint64_t acked = 0;
    int ret;
    s->errmsg[0] = '\0';
    if (memcmp(id, &s->device, sizeof *id) == 0)
        return SAT_OK;
    ret = st_meta_get_u64(s, "push_acked", &acked);
    if (ret != SAT_OK)
        return ret;
    if (acked > 0)
        return st_fail(s, SAT_ERR_STORE_NOT_ALLOWED,
                       "this store already synced as another device: it cannot change identity");
    /* Only the id itself changes: this device's rows carry a NULL origin,
     * which means whatever its id is. */
    ret = st_begin(s);
    if (ret != SAT_OK)
        return ret;
    q = st_stmt(s, ST_META_SET);
    if (q) {
        sqlite3_bind_text(q, 1, "device_id", -1, SQLITE_STATIC);
        st_bind_id(q, 2, id);
    }
    ret = st_finish(s, st_run(s, q, "adopt device id"));
    if (ret == SAT_OK)
        s->device = *id;
    return ret;
}
