/*
 * test_store_crash.c - the encrypted store against a thief and a flat
 * battery.
 *
 * Tamper: flip any byte of any stored block, swap two blocks, truncate the
 * file: reading fails with SAT_ERR_STORE_CORRUPT, never wrong data.
 *
 * Power-cut sweep (MCUboot's simulator and SQLite's test6.c in spirit): a
 * scripted nurse's workload runs on a simulated device whose power is cut
 * at its Nth storage write, sync or truncate, for every N the workload has,
 * over several seeds (each seed drops, keeps or tears the unsynced writes
 * differently). After each cut the store must reopen, pass
 * PRAGMA integrity_check, and hold every transaction that returned success.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include <sqlite3.h>

#include "store_fixture.h"
#include "vfs_crypt.h"

/* ---- tamper ------------------------------------------------------------- */

#define TAMPER_PATIENTS 40

struct tamper_fx {
    struct sim_hal *sim;
    const struct hal *h;
    struct keys k;
    struct store_id ids[TAMPER_PATIENTS];
    uint8_t *orig;
    size_t len;
};

static int tamper_setup(void **state)
{
    struct tamper_fx *f = calloc(1, sizeof *f);
    struct store *s = NULL;
    uint64_t rng = 7;
    uint8_t *bytes = NULL;
    if (!f || sim_hal_new(&f->sim, 7, FIXTURE_WALL_START_MS) != SAT_OK)
        return -1;
    f->h = sim_hal_hal(f->sim);
    fixture_keys(&f->k, f->h, 7);
    if (store_open(f->h, &f->k, &s, NULL) != SAT_OK)
        return -1;
    for (int i = 0; i < TAMPER_PATIENTS; i++) {
        struct store_patient p;
        struct store_obs o;
        fixture_patient(&rng, &p, "");
        if (store_patient_add(s, &p) != SAT_OK)
            return -1;
        f->ids[i] = p.id;
        memset(&o, 0, sizeof o);
        o.patient_id = p.id;
        fixture_vitals(&rng, &o.vitals);
        if (store_obs_add(s, &o) != SAT_OK)
            return -1;
    }
    store_close(s);
    if (sim_hal_file_bytes(f->sim, STORE_DB_NAME, &bytes, &f->len) != SAT_OK)
        return -1;
    f->orig = malloc(f->len);
    memcpy(f->orig, bytes, f->len);
    *state = f;
    return 0;
}

static int tamper_teardown(void **state)
{
    struct tamper_fx *f = *state;
    sim_hal_free(f->sim);
    free(f->orig);
    free(f);
    return 0;
}

static void restore(struct tamper_fx *f)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    assert_int_equal(sim_hal_file_bytes(f->sim, STORE_DB_NAME, &bytes, &len), SAT_OK);
    assert_int_equal(len, f->len);
    memcpy(bytes, f->orig, len);
}

struct read_all {
    struct store *s;
    int patients;
    int obs;
};

static int count_obs(void *arg, const struct store_obs *o)
{
    (void)o;
    ((struct read_all *)arg)->obs++;
    return 0;
}

static int read_patient(void *arg, const struct store_patient *p)
{
    struct read_all *ra = arg;
    ra->patients++;
    return store_obs_list(ra->s, &p->id, count_obs, ra);
}

/* Opens the store and reads everything. Returns SAT_OK only if everything
 * read back exactly as written, else the first error. */
static int open_and_read_all(struct tamper_fx *f)
{
    struct store *s = NULL;
    struct read_all ra = { NULL, 0, 0 };
    int ret = store_open(f->h, &f->k, &s, NULL);
    if (ret != SAT_OK)
        return ret;
    ra.s = s;
    ret = store_check_integrity(s);
    if (ret == SAT_OK)
        ret = store_patient_list(s, read_patient, &ra);
    for (int i = 0; ret == SAT_OK && i < TAMPER_PATIENTS; i++) {
        struct store_patient p;
        ret = store_patient_get(s, &f->ids[i], &p);
    }
    if (ret == SAT_OK && (ra.patients != TAMPER_PATIENTS || ra.obs != TAMPER_PATIENTS))
        ret = SAT_ERR_STORE_SQL; /* "succeeded" with the wrong data */
    store_close(s);
    return ret;
}

static void test_untouched_store_reads_back(void **state)
{
    struct tamper_fx *f = *state;
    assert_int_equal(open_and_read_all(f), SAT_OK);
    restore(f); /* opening may have rewritten nothing, but keep it exact */
}

static void test_flipped_byte_in_every_block_is_detected(void **state)
{
    struct tamper_fx *f = *state;
    size_t slots = f->len / VFS_CRYPT_SLOT_BYTES;
    assert_true(slots >= 4);
    for (size_t i = 0; i < slots; i++) {
        /* A different position in each slot: nonce, tag and ciphertext all
         * get their turn. */
        size_t pos = i * VFS_CRYPT_SLOT_BYTES + (i * 997u + 3u) % VFS_CRYPT_SLOT_BYTES;
        uint8_t *bytes = NULL;
        size_t len = 0;
        assert_int_equal(sim_hal_file_bytes(f->sim, STORE_DB_NAME, &bytes, &len), SAT_OK);
        bytes[pos] ^= 0x01;
        assert_int_equal(open_and_read_all(f), SAT_ERR_STORE_CORRUPT);
        restore(f);
    }
    assert_int_equal(open_and_read_all(f), SAT_OK);
}

static void test_swapped_blocks_are_detected(void **state)
{
    struct tamper_fx *f = *state;
    size_t slots = f->len / VFS_CRYPT_SLOT_BYTES;
    for (size_t a = 0; a + 1 < slots; a += 3) {
        size_t b = a + 1;
        uint8_t *bytes = NULL;
        size_t len = 0;
        uint8_t tmp[VFS_CRYPT_SLOT_BYTES];
        assert_int_equal(sim_hal_file_bytes(f->sim, STORE_DB_NAME, &bytes, &len), SAT_OK);
        memcpy(tmp, bytes + a * VFS_CRYPT_SLOT_BYTES, sizeof tmp);
        memcpy(bytes + a * VFS_CRYPT_SLOT_BYTES, bytes + b * VFS_CRYPT_SLOT_BYTES, sizeof tmp);
        memcpy(bytes + b * VFS_CRYPT_SLOT_BYTES, tmp, sizeof tmp);
        assert_int_equal(open_and_read_all(f), SAT_ERR_STORE_CORRUPT);
        restore(f);
    }
}

static void test_truncated_file_is_detected(void **state)
{
    struct tamper_fx *f = *state;
    /* Cut a whole block off the end, then a few bytes off the last block. */
    const uint64_t cuts[] = { VFS_CRYPT_SLOT_BYTES, 5 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        hal_file *hf = NULL;
        assert_int_equal(hal_storage_open(f->h, STORE_DB_NAME, 0, &hf), SAT_OK);
        assert_int_equal(hal_storage_truncate(f->h, hf, f->len - cuts[i]), SAT_OK);
        assert_int_equal(hal_storage_close(f->h, hf), SAT_OK);
        assert_int_equal(open_and_read_all(f), SAT_ERR_STORE_CORRUPT);
        assert_int_equal(hal_storage_open(f->h, STORE_DB_NAME, 0, &hf), SAT_OK);
        assert_int_equal(hal_storage_write(f->h, hf, 0, f->orig, f->len), SAT_OK);
        assert_int_equal(hal_storage_close(f->h, hf), SAT_OK);
    }
    assert_int_equal(open_and_read_all(f), SAT_OK);
}

static void test_wrong_key_reads_nothing(void **state)
{
    struct tamper_fx *f = *state;
    struct keys other;
    struct store *s = NULL;
    fixture_keys(&other, f->h, 8);
    memcpy(other.store_id, f->k.store_id, sizeof other.store_id);
    assert_int_equal(store_open(f->h, &other, &s, NULL), SAT_ERR_STORE_CORRUPT);
}

/* ---- power-cut sweep ---------------------------------------------------- */

#define SWEEP_STEPS 24
#define SWEEP_SEEDS 2             /* at least; more until the cut points suffice */
#define SWEEP_CUT_POINTS_MIN 1000

struct step_result {
    int ok;
    enum record_kind kind;
    struct store_id id;
    struct store_id patient;
    char check[STORE_NOTE_TEXT_BYTES]; /* a text that must be stored if ok */
};

/* The scripted workload: a nurse's morning. Every step is one transaction
 * creating or changing a distinct record, so its effect can be checked on
 * its own. Stops at the first failure (the power is gone). Returns the
 * number of steps attempted. */
static int run_workload(struct store *s, uint64_t seed, struct step_result *r)
{
    uint64_t rng = seed;
    struct store_id patients[SWEEP_STEPS];
    int npatients = 0;
    struct store_note *n = calloc(1, sizeof *n);
    int i;
    for (i = 0; i < SWEEP_STEPS; i++) {
        int ret;
        memset(&r[i], 0, sizeof r[i]);
        if (npatients < 3 || i % 4 == 0) {
            struct store_patient p;
            fixture_patient(&rng, &p, "");
            ret = store_patient_add(s, &p);
            r[i].kind = RECORD_KIND_PATIENT;
            r[i].id = p.id;
            snprintf(r[i].check, sizeof r[i].check, "%s", p.family_name);
            if (ret == SAT_OK)
                patients[npatients++] = p.id;
        } else if (i % 4 == 1) {
            struct store_obs o;
            memset(&o, 0, sizeof o);
            o.patient_id = patients[i % npatients];
            fixture_vitals(&rng, &o.vitals);
            ret = store_obs_add(s, &o);
            r[i].kind = RECORD_KIND_OBSERVATION;
            r[i].id = o.id;
        } else if (i % 4 == 2) {
            memset(n, 0, sizeof *n);
            n->patient_id = patients[i % npatients];
            snprintf(n->text, sizeof n->text, "visit note %d: %llu", i,
                     (unsigned long long)fixture_next(&rng));
            ret = store_note_add(s, n);
            r[i].kind = RECORD_KIND_CARE_NOTE;
            r[i].id = n->id;
            snprintf(r[i].check, sizeof r[i].check, "%s", n->text);
        } else {
            /* Change the address of a patient no later step touches. */
            struct store_patient p;
            ret = store_patient_get(s, &patients[npatients - 1], &p);
            if (ret == SAT_OK) {
                snprintf(p.address, sizeof p.address, "moved at step %d", i);
                ret = store_patient_update(s, &p);
            }
            r[i].kind = 0;
            r[i].id = patients[npatients - 1];
            snprintf(r[i].check, sizeof r[i].check, "moved at step %d", i);
        }
        r[i].ok = ret == SAT_OK;
        if (!r[i].ok)
            break;
    }
    free(n);
    return i < SWEEP_STEPS ? i + 1 : SWEEP_STEPS;
}

/* Every step that returned success must be there. */
static void verify_steps(struct store *s, const struct step_result *r, int attempted,
                         uint64_t seed, uint64_t cut)
{
    for (int i = 0; i < attempted; i++) {
        int ret = SAT_OK;
        if (!r[i].ok)
            continue;
        if (r[i].kind == RECORD_KIND_PATIENT) {
            struct store_patient p;
            ret = store_patient_get(s, &r[i].id, &p);
            if (ret == SAT_OK && strcmp(p.family_name, r[i].check) != 0)
                ret = SAT_ERR_STORE_SQL;
        } else if (r[i].kind == RECORD_KIND_OBSERVATION) {
            struct store_obs o;
            ret = store_obs_get(s, &r[i].id, &o);
        } else if (r[i].kind == RECORD_KIND_CARE_NOTE) {
            struct store_note *n = malloc(sizeof *n);
            ret = store_note_get(s, &r[i].id, n);
            if (ret == SAT_OK && strcmp(n->text, r[i].check) != 0)
                ret = SAT_ERR_STORE_SQL;
            free(n);
        } else {
            struct store_patient p;
            ret = store_patient_get(s, &r[i].id, &p);
            /* A later successful update of the same patient may have moved
             * it again; the workload never does, so this must match. */
            if (ret == SAT_OK && strcmp(p.address, r[i].check) != 0)
                ret = SAT_ERR_STORE_SQL;
        }
        if (ret != SAT_OK)
            fail_msg("seed %llu cut at op %llu: step %d (kind %d) returned success but is "
                     "missing after the power cut (%d: %s)",
                     (unsigned long long)seed, (unsigned long long)cut, i, (int)r[i].kind, ret,
                     store_errmsg(s));
    }
}

static void test_power_cut_sweep(void **state)
{
    static struct step_result r[SWEEP_STEPS];
    uint64_t total_ops = 0;
    uint64_t cut_points = 0;
    (void)state;

    /* A dry run counts the workload's storage operations. */
    {
        struct sim_hal *sim = NULL;
        struct keys k;
        struct store *s = NULL;
        assert_int_equal(sim_hal_new(&sim, 1, FIXTURE_WALL_START_MS), SAT_OK);
        fixture_keys(&k, sim_hal_hal(sim), 1);
        assert_int_equal(store_open(sim_hal_hal(sim), &k, &s, NULL), SAT_OK);
        assert_int_equal(run_workload(s, 1, r), SWEEP_STEPS);
        for (int i = 0; i < SWEEP_STEPS; i++)
            assert_true(r[i].ok);
        store_close(s);
        total_ops = sim_hal_storage_ops(sim);
        sim_hal_free(sim);
    }
    assert_true(total_ops > 100);

    for (uint64_t round = 0; round < SWEEP_SEEDS || cut_points < SWEEP_CUT_POINTS_MIN;
         round++) {
        for (uint64_t cut = 1; cut <= total_ops; cut++) {
            uint64_t seed = 1000u * (round + 1) + cut;
            struct sim_hal *sim = NULL;
            const struct hal *h;
            struct keys k;
            struct store *s = NULL;
            int attempted = 0;
            int ret;

            assert_int_equal(sim_hal_new(&sim, seed, FIXTURE_WALL_START_MS), SAT_OK);
            h = sim_hal_hal(sim);
            fixture_keys(&k, h, 1);
            sim_hal_cut_at(sim, cut);
            if (store_open(h, &k, &s, NULL) == SAT_OK) {
                attempted = run_workload(s, 1, r);
            }
            store_close(s);
            s = NULL;
            if (!sim_hal_powered_off(sim))
                sim_hal_power_cut(sim); /* the cut fell in store_close */
            sim_hal_power_on(sim);
            cut_points++;

            ret = store_open(h, &k, &s, NULL);
            if (ret != SAT_OK)
                fail_msg("seed %llu cut at op %llu: store does not reopen: %s",
                         (unsigned long long)seed, (unsigned long long)cut, sat_strerror(ret));
            ret = store_check_integrity(s);
            if (ret != SAT_OK)
                fail_msg("seed %llu cut at op %llu: integrity check failed: %s",
                         (unsigned long long)seed, (unsigned long long)cut, store_errmsg(s));
            verify_steps(s, r, attempted, seed, cut);
            /* The store keeps working after the crash. */
            {
                struct store_patient p;
                uint64_t rng = seed;
                fixture_patient(&rng, &p, "");
                if (store_patient_add(s, &p) != SAT_OK)
                    fail_msg("seed %llu cut at op %llu: cannot write after recovery: %s",
                             (unsigned long long)seed, (unsigned long long)cut,
                             store_errmsg(s));
            }
            store_close(s);
            sim_hal_free(sim);
        }
    }
    print_message("power-cut sweep: %llu cut points (%llu storage ops x %llu seeds)\n",
                  (unsigned long long)cut_points, (unsigned long long)total_ops,
                  (unsigned long long)(cut_points / total_ops));
    assert_true(cut_points >= 1000);
}

/* ---- SQLite on the VFS, WAL and rollback journal -------------------------- */

/* The store runs SQLite in WAL mode over the VFS. Its own workload above is
 * too short to fill a WAL, so here SQLite runs on the VFS directly, with the
 * store's settings but a page cache of a few pages and a WAL checkpointed
 * every few pages: transactions spill pages midway (SQLite rewrites those
 * frames in place and then their checksums, before the commit), checkpoints
 * copy sealed pages into the database, and the WAL starts over with new
 * salts, its old frames overwritten. The same workload in rollback-journal
 * mode (PERSIST) spills too, so journals get several headers and records
 * written in pieces across blocks. */
#define WAL_DB "wal.db"
#define PAGE_STR_(x) #x
#define PAGE_STR(x) PAGE_STR_(x)
#define WAL_TXNS 30
#define WAL_KEYS 40
#define WAL_BIG_TXN_KEYS 14 /* every fifth transaction: more than the cache holds */
#define WAL_SEEDS 1 /* each of these two sweeps costs ops^2: one seed keeps CI under qemu short */

static const char wal_pragmas[] =
    "PRAGMA locking_mode=EXCLUSIVE; PRAGMA page_size=" PAGE_STR(VFS_CRYPT_BLOCK_BYTES) ";"
    " PRAGMA synchronous=FULL;"
    "PRAGMA temp_store=MEMORY; PRAGMA cache_size=6; PRAGMA wal_autocheckpoint=12;";

/* The journal mode the VFS tests run in: "wal" or "persist". */
static const char *vfs_journal_mode = "wal";

struct wal_model {
    uint32_t ver[WAL_KEYS];  /* version of each key's value; 0: no row */
    uint32_t next[WAL_KEYS]; /* the next version to write */
};

/* Value of key k at version ver: 200 to 899 bytes, from the generator. */
static size_t wal_value(int k, uint32_t ver, uint8_t *out)
{
    uint64_t rng = ((uint64_t)k << 32) | ver;
    size_t n = 200 + (size_t)(fixture_next(&rng) % 700);
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)fixture_next(&rng);
    return n;
}

static int wal_db_open(const struct hal *h, struct vfs_crypt **v, sqlite3 **db)
{
    static const uint8_t key[VFS_CRYPT_KEY_BYTES] = { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66 };
    static const uint8_t id[VFS_CRYPT_STORE_ID_BYTES] = { 0xa1, 0xb2, 0xc3 };
    sqlite3_stmt *q = NULL;
    int rc;
    *db = NULL;
    if (vfs_crypt_register(h, key, id, v) != SAT_OK)
        return SQLITE_ERROR;
    rc = sqlite3_open_v2(WAL_DB, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                         vfs_crypt_name(*v));
    if (rc == SQLITE_OK) {
        sqlite3_extended_result_codes(*db, 1);
        rc = sqlite3_exec(*db, wal_pragmas, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(*db,
                                strcmp(vfs_journal_mode, "wal") == 0 ? "PRAGMA journal_mode=WAL"
                                                             : "PRAGMA journal_mode=PERSIST",
                                -1, &q, NULL);
    if (rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        assert_string_equal((const char *)sqlite3_column_text(q, 0), vfs_journal_mode);
    else if (rc == SQLITE_OK)
        rc = sqlite3_extended_errcode(*db);
    sqlite3_finalize(q);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(*db,
                          "CREATE TABLE IF NOT EXISTS t(k INTEGER PRIMARY KEY, v BLOB NOT NULL);"
                          "CREATE INDEX IF NOT EXISTS t_v ON t(v);",
                          NULL, NULL, NULL);
    return rc;
}

static void wal_db_close(struct vfs_crypt *v, sqlite3 *db)
{
    sqlite3_close(db); /* a checkpoint the power cut stops is not an error here */
    vfs_crypt_unregister(v);
}

/* Writes key k's next version (or deletes it) in the open transaction and
 * in m. */
static int wal_touch(sqlite3 *db, struct wal_model *m, int k, int del)
{
    static uint8_t value[1024];
    sqlite3_stmt *q = NULL;
    int rc;
    if (del) {
        rc = sqlite3_prepare_v2(db, "DELETE FROM t WHERE k = ?1", -1, &q, NULL);
        if (rc == SQLITE_OK)
            sqlite3_bind_int(q, 1, k);
        m->ver[k] = 0;
    } else {
        uint32_t ver = ++m->next[k];
        size_t n = wal_value(k, ver, value);
        rc = sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO t(k, v) VALUES (?1, ?2)", -1, &q,
                                NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_int(q, 1, k);
            sqlite3_bind_blob(q, 2, value, (int)n, SQLITE_STATIC);
        }
        m->ver[k] = ver;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(q) == SQLITE_DONE ? SQLITE_OK : sqlite3_extended_errcode(db);
    sqlite3_finalize(q);
    return rc;
}

/* Transaction i of the workload, applied to db and to m. */
static int wal_txn(sqlite3 *db, int i, struct wal_model *m)
{
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    int keys = i % 5 == 4 ? WAL_BIG_TXN_KEYS : 2;
    for (int j = 0; rc == SQLITE_OK && j < keys; j++)
        rc = wal_touch(db, m, (i * 7 + j * 3) % WAL_KEYS, 0);
    if (rc == SQLITE_OK && i % 7 == 6)
        rc = wal_touch(db, m, (i * 5) % WAL_KEYS, 1);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* Runs the workload until a transaction fails: *done gets the state of the
 * last one that committed, *tried that of the one that failed (or *done).
 * Returns the number of transactions that committed. */
static int wal_workload(sqlite3 *db, struct wal_model *done, struct wal_model *tried)
{
    int i;
    memset(done, 0, sizeof *done);
    for (i = 0; i < WAL_TXNS; i++) {
        *tried = *done;
        if (wal_txn(db, i, tried) != SQLITE_OK)
            return i;
        *done = *tried;
    }
    return i;
}

/* 1 if db holds exactly the rows of m. */
static int wal_db_matches(sqlite3 *db, const struct wal_model *m)
{
    static uint8_t want[1024];
    sqlite3_stmt *q = NULL;
    int seen[WAL_KEYS] = { 0 };
    int ok = sqlite3_prepare_v2(db, "SELECT k, v FROM t ORDER BY k", -1, &q, NULL) == SQLITE_OK;
    int rc = SQLITE_ERROR;
    while (ok && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        int k = sqlite3_column_int(q, 0);
        size_t n;
        if (k < 0 || k >= WAL_KEYS || m->ver[k] == 0) {
            ok = 0;
            break;
        }
        n = wal_value(k, m->ver[k], want);
        ok = (size_t)sqlite3_column_bytes(q, 1) == n &&
             memcmp(sqlite3_column_blob(q, 1), want, n) == 0;
        seen[k] = 1;
    }
    if (ok && rc != SQLITE_DONE)
        ok = 0;
    sqlite3_finalize(q);
    for (int k = 0; ok && k < WAL_KEYS; k++)
        ok = seen[k] == (m->ver[k] != 0);
    return ok;
}

static int wal_integrity_ok(sqlite3 *db)
{
    sqlite3_stmt *q = NULL;
    int ok = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL) == SQLITE_OK &&
             sqlite3_step(q) == SQLITE_ROW &&
             strcmp((const char *)sqlite3_column_text(q, 0), "ok") == 0 &&
             sqlite3_step(q) == SQLITE_DONE;
    sqlite3_finalize(q);
    return ok;
}

static void vfs_power_cut_sweep(const char *mode)
{
    static struct wal_model done, tried;
    uint64_t total_ops = 0;
    uint64_t cut_points = 0;
    vfs_journal_mode = mode;

    /* A dry run counts the operations, and checks that the workload does
     * what it is for: checkpoints that copy sealed pages. */
    {
        struct sim_hal *sim = NULL;
        struct vfs_crypt *v = NULL;
        struct vfs_crypt_stats st;
        sqlite3 *db = NULL;
        assert_int_equal(sim_hal_new(&sim, 1, FIXTURE_WALL_START_MS), SAT_OK);
        assert_int_equal(wal_db_open(sim_hal_hal(sim), &v, &db), SQLITE_OK);
        assert_int_equal(wal_workload(db, &done, &tried), WAL_TXNS);
        assert_true(wal_db_matches(db, &done));
        vfs_crypt_get_stats(v, &st);
        if (strcmp(mode, "wal") == 0)
            assert_true(st.blocks_copied > 0);
        else
            assert_int_equal(st.blocks_copied, 0);
        assert_int_equal(st.auth_failures, 0);
        wal_db_close(v, db);
        total_ops = sim_hal_storage_ops(sim);
        sim_hal_free(sim);
    }
    assert_true(total_ops > 100);

    for (uint64_t round = 0; round < WAL_SEEDS; round++) {
        for (uint64_t cut = 1; cut <= total_ops; cut++) {
            uint64_t seed = 5000u * (round + 1) + cut;
            struct sim_hal *sim = NULL;
            const struct hal *h;
            struct vfs_crypt *v = NULL;
            sqlite3 *db = NULL;
            int committed = 0;

            assert_int_equal(sim_hal_new(&sim, seed, FIXTURE_WALL_START_MS), SAT_OK);
            h = sim_hal_hal(sim);
            sim_hal_cut_at(sim, cut);
            memset(&done, 0, sizeof done);
            tried = done;
            if (wal_db_open(h, &v, &db) == SQLITE_OK)
                committed = wal_workload(db, &done, &tried);
            wal_db_close(v, db);
            if (!sim_hal_powered_off(sim))
                sim_hal_power_cut(sim); /* the cut fell in the close's checkpoint */
            sim_hal_power_on(sim);
            cut_points++;

            if (wal_db_open(h, &v, &db) != SQLITE_OK)
                fail_msg("seed %llu cut at op %llu: the database does not reopen: %s",
                         (unsigned long long)seed, (unsigned long long)cut, sqlite3_errmsg(db));
            if (!wal_integrity_ok(db))
                fail_msg("seed %llu cut at op %llu: integrity check failed",
                         (unsigned long long)seed, (unsigned long long)cut);
            /* Every committed transaction, and the one cut short whole or
             * not at all. */
            if (!wal_db_matches(db, &done) && !wal_db_matches(db, &tried))
                fail_msg("seed %llu cut at op %llu: after %d committed transactions the rows "
                         "match neither that state nor the next",
                         (unsigned long long)seed, (unsigned long long)cut, committed);
            /* It keeps working after the crash. */
            if (wal_txn(db, WAL_TXNS, &tried) != SQLITE_OK)
                fail_msg("seed %llu cut at op %llu: cannot write after recovery: %s",
                         (unsigned long long)seed, (unsigned long long)cut, sqlite3_errmsg(db));
            wal_db_close(v, db);
            sim_hal_free(sim);
        }
    }
    print_message("%s power-cut sweep: %llu cut points (%llu storage ops x %d seeds)\n", mode,
                  (unsigned long long)cut_points, (unsigned long long)total_ops, WAL_SEEDS);
}

static void test_wal_checkpoint_power_cut_sweep(void **state)
{
    (void)state;
    vfs_power_cut_sweep("wal");
}

static void test_rollback_journal_power_cut_sweep(void **state)
{
    (void)state;
    vfs_power_cut_sweep("persist");
}

/* A frame that recovery accepted and whose page is changed afterwards:
 * reading the page is an error, never wrong data. A checkpoint copies
 * sealed pages without opening them (it checks each frame's header, which
 * binds the page's tag), so the damage moves into the database, where
 * reading it is still an error. */
static void test_wal_tampered_frame_is_an_error(void **state)
{
    static struct wal_model done, tried;
    struct sim_hal *sim = NULL;
    const struct hal *h;
    struct vfs_crypt *v = NULL;
    sqlite3 *db = NULL;
    uint8_t *bytes = NULL;
    size_t len = 0;
    size_t frames;
    int rc;
    (void)state;

    vfs_journal_mode = "wal";
    assert_int_equal(sim_hal_new(&sim, 9, FIXTURE_WALL_START_MS), SAT_OK);
    h = sim_hal_hal(sim);
    assert_int_equal(wal_db_open(h, &v, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA wal_autocheckpoint=0", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(wal_workload(db, &done, &tried), WAL_TXNS);
    /* Power cut with the WAL full of committed frames; recovery reads them
     * all back. */
    sim_hal_power_cut(sim);
    wal_db_close(v, db);
    sim_hal_power_on(sim);
    assert_int_equal(wal_db_open(h, &v, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA wal_autocheckpoint=0", NULL, NULL, NULL),
                     SQLITE_OK);

    assert_int_equal(sim_hal_file_bytes(sim, WAL_DB "-wal", &bytes, &len), SAT_OK);
    frames = (len - VFS_CRYPT_WAL_HEADER_SLOT_BYTES) / VFS_CRYPT_WAL_FRAME_SLOT_BYTES;
    assert_true(frames > 10);
    for (size_t i = 0; i < frames; i++) {
        /* a byte of each frame's page ciphertext */
        size_t page = VFS_CRYPT_WAL_HEADER_SLOT_BYTES + i * VFS_CRYPT_WAL_FRAME_SLOT_BYTES +
                      VFS_CRYPT_NONCE_BYTES + VFS_CRYPT_TAG_BYTES +
                      VFS_CRYPT_WAL_FRAME_HEADER_BYTES;
        bytes[page + VFS_CRYPT_NONCE_BYTES + VFS_CRYPT_TAG_BYTES + 100 + i] ^= 0x20;
    }
    rc = sqlite3_exec(db, "SELECT count(*), sum(length(v)) FROM t", NULL, NULL, NULL);
    assert_int_equal(rc, SQLITE_IOERR_DATA);
    rc = sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    assert_int_equal(rc, SQLITE_OK);
    rc = sqlite3_exec(db, "SELECT count(*), sum(length(v)) FROM t", NULL, NULL, NULL);
    assert_int_equal(rc, SQLITE_IOERR_DATA);
    wal_db_close(v, db);
    sim_hal_free(sim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_untouched_store_reads_back, tamper_setup,
                                        tamper_teardown),
        cmocka_unit_test_setup_teardown(test_flipped_byte_in_every_block_is_detected,
                                        tamper_setup, tamper_teardown),
        cmocka_unit_test_setup_teardown(test_swapped_blocks_are_detected, tamper_setup,
                                        tamper_teardown),
        cmocka_unit_test_setup_teardown(test_truncated_file_is_detected, tamper_setup,
                                        tamper_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key_reads_nothing, tamper_setup,
                                        tamper_teardown),
        cmocka_unit_test(test_power_cut_sweep),
        cmocka_unit_test(test_wal_checkpoint_power_cut_sweep),
        cmocka_unit_test(test_rollback_journal_power_cut_sweep),
        cmocka_unit_test(test_wal_tampered_frame_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
