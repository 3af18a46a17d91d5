/*
 * test_store.c - the record API on a simulated device: every record kind
 * round trip, validation that writes nothing, the change log, that no
 * readable byte of a record ever reaches storage, and that the encrypting
 * VFS never seals two different things under one nonce.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "record_id.h"
#include "store_fixture.h"
#include "vfs_crypt.h"

struct fx {
    struct sim_hal *sim;
    const struct hal *h;
    struct keys k;
    struct store *s;
    uint64_t rng;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f || sim_hal_new(&f->sim, 42, FIXTURE_WALL_START_MS) != SAT_OK)
        return -1;
    f->h = sim_hal_hal(f->sim);
    f->rng = 42;
    fixture_keys(&f->k, f->h, 42);
    if (store_open(f->h, &f->k, &f->s, NULL) != SAT_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    sim_hal_free(f->sim);
    free(f);
    return 0;
}

static int count_changes_cb(void *arg, const struct store_change *c)
{
    (void)c;
    (*(uint64_t *)arg)++;
    return 0;
}

static uint64_t count_changes(struct store *s)
{
    uint64_t n = 0;
    assert_int_equal(store_changes(s, 0, 0, count_changes_cb, &n), SAT_OK);
    return n;
}

/* Asserts that a failing call wrote nothing: no change-log entry and not a
 * single storage write, sync or truncate. */
static char last_msg[STORE_ERRMSG_BYTES];

#define ASSERT_WRITES_NOTHING(f, call, code)                            \
    do {                                                                \
        uint64_t ops_before = sim_hal_storage_ops((f)->sim);            \
        uint64_t changes_before = count_changes((f)->s);                \
        assert_int_equal((call), (code));                               \
        snprintf(last_msg, sizeof last_msg, "%s", store_errmsg((f)->s)); \
        assert_true(last_msg[0] != '\0');                               \
        assert_null(strchr(last_msg, '\n'));                            \
        assert_int_equal(sim_hal_storage_ops((f)->sim), ops_before);    \
        assert_int_equal(count_changes((f)->s), changes_before);        \
    } while (0)

/* ---- round trips -------------------------------------------------------- */

struct collect {
    int n;
    struct store_id ids[16];
};

static int collect_patient(void *arg, const struct store_patient *p)
{
    struct collect *c = arg;
    c->ids[c->n++] = p->id;
    return 0;
}

static void test_patient_roundtrip_update_delete(void **state)
{
    struct fx *f = *state;
    struct store_patient p;
    struct store_patient got;
    struct collect c = { 0 };
    fixture_patient(&f->rng, &p, "");
    memcpy(p.nhs_number, "9434765919", 11); /* the NHS's published example */
    assert_int_equal(store_patient_add(f->s, &p), SAT_OK);
    assert_int_equal(store_patient_get(f->s, &p.id, &got), SAT_OK);
    assert_string_equal(got.nhs_number, "9434765919");
    assert_string_equal(got.family_name, p.family_name);
    assert_string_equal(got.given_name, p.given_name);
    assert_string_equal(got.date_of_birth, p.date_of_birth);
    assert_string_equal(got.address, p.address);
    assert_string_equal(got.postcode, p.postcode);
    assert_string_equal(got.team, p.team);
    assert_int_equal(got.created_ms, FIXTURE_WALL_START_MS);
    assert_int_equal(got.deleted, 0);
    /* Its id is time-ordered: made now, so it sorts after older records. */
    assert_int_equal(record_id_ms(p.id.b), FIXTURE_WALL_START_MS);
    {
        struct store_patient q;
        fixture_patient(&f->rng, &q, "");
        sim_hal_set_wall_ms(f->sim, FIXTURE_WALL_START_MS + 1);
        assert_int_equal(store_patient_add(f->s, &q), SAT_OK);
        assert_true(memcmp(p.id.b, q.id.b, STORE_ID_BYTES) < 0);
        assert_int_equal(store_delete(f->s, RECORD_KIND_PATIENT, &q.id), SAT_OK);
        sim_hal_set_wall_ms(f->sim, FIXTURE_WALL_START_MS);
    }

    /* Update one field: exactly one change is logged. */
    {
        uint64_t before = count_changes(f->s);
        snprintf(got.address, sizeof got.address, "1 New Road");
        assert_int_equal(store_patient_update(f->s, &got), SAT_OK);
        assert_int_equal(count_changes(f->s), before + 1);
        assert_int_equal(store_patient_get(f->s, &p.id, &got), SAT_OK);
        assert_string_equal(got.address, "1 New Road");
    }
    assert_int_equal(store_patient_list(f->s, collect_patient, &c), SAT_OK);
    assert_int_equal(c.n, 1);
    assert_int_equal(store_delete(f->s, RECORD_KIND_PATIENT, &p.id), SAT_OK);
    c.n = 0;
    assert_int_equal(store_patient_list(f->s, collect_patient, &c), SAT_OK);
    assert_int_equal(c.n, 0);
    assert_int_equal(store_patient_get(f->s, &p.id, &got), SAT_OK);
    assert_int_equal(got.deleted, 1);
    assert_int_equal(store_check_integrity(f->s), SAT_OK);
}

static void test_visit_obs_note_task_roundtrip(void **state)
{
    struct fx *f = *state;
    struct store_patient p;
    struct store_visit v;
    struct store_visit got_v;
    struct store_obs o;
    struct store_obs got_o;
    struct store_note *n = calloc(2, sizeof *n);
    struct store_note *got_n = calloc(1, sizeof *got_n);
    struct store_task t;
    struct store_task got_t;

    fixture_patient(&f->rng, &p, "");
    assert_int_equal(store_patient_add(f->s, &p), SAT_OK);
    assert_int_equal(store_visit_start(f->s, &p.id, "wound dressing", &v), SAT_OK);
    /* One open visit per patient. */
    ASSERT_WRITES_NOTHING(f, store_visit_start(f->s, &p.id, "again", NULL),
                          SAT_ERR_STORE_NOT_ALLOWED);

    memset(&o, 0, sizeof o);
    o.patient_id = p.id;
    o.has_visit = 1;
    o.visit_id = v.id;
    o.vitals = (struct news2_vitals){ 22, 95, 1, 1, 105, 115, NEWS2_ALERT, 385 };
    assert_int_equal(store_obs_add(f->s, &o), SAT_OK);
    /* 22 rr → 2, SpO2 95 → 1, oxygen → 2, SBP 105 → 1, pulse 115 → 2,
     * alert → 0, 38.5 → 1: 9, high. */
    assert_int_equal(o.news2_score, 9);
    assert_int_equal(o.news2_risk, NEWS2_RISK_HIGH);
    assert_int_equal(store_obs_get(f->s, &o.id, &got_o), SAT_OK);
    assert_memory_equal(&got_o.vitals, &o.vitals, sizeof o.vitals);
    assert_int_equal(got_o.news2_score, 9);
    assert_true(got_o.has_visit);
    assert_memory_equal(&got_o.visit_id, &v.id, sizeof v.id);

    n[0].patient_id = p.id;
    n[0].has_visit = 1;
    n[0].visit_id = v.id;
    snprintf(n[0].text, sizeof n[0].text, "Dressing changed; wound healing well.");
    assert_int_equal(store_note_add(f->s, &n[0]), SAT_OK);
    n[1].patient_id = p.id;
    n[1].has_amends = 1;
    n[1].amends = n[0].id;
    snprintf(n[1].text, sizeof n[1].text, "Correction: wound slightly inflamed.");
    assert_int_equal(store_note_add(f->s, &n[1]), SAT_OK);
    assert_int_equal(store_note_get(f->s, &n[1].id, got_n), SAT_OK);
    assert_true(got_n->has_amends);
    assert_memory_equal(&got_n->amends, &n[0].id, sizeof n[0].id);
    assert_string_equal(got_n->text, n[1].text);
    /* The amended note is still there, unchanged: append-only. */
    assert_int_equal(store_note_get(f->s, &n[0].id, got_n), SAT_OK);
    assert_string_equal(got_n->text, n[0].text);
    ASSERT_WRITES_NOTHING(f, store_delete(f->s, RECORD_KIND_CARE_NOTE, &n[0].id),
                          SAT_ERR_STORE_NOT_ALLOWED);
    ASSERT_WRITES_NOTHING(f, store_delete(f->s, RECORD_KIND_OBSERVATION, &o.id),
                          SAT_ERR_STORE_NOT_ALLOWED);

    memset(&t, 0, sizeof t);
    t.patient_id = p.id;
    snprintf(t.title, sizeof t.title, "Order more dressings");
    t.due_ms = FIXTURE_WALL_START_MS + 86400000;
    assert_int_equal(store_task_add(f->s, &t), SAT_OK);
    assert_int_equal(store_task_done(f->s, &t.id), SAT_OK);
    assert_int_equal(store_task_get(f->s, &t.id, &got_t), SAT_OK);
    assert_int_equal(got_t.done, 1);
    assert_string_equal(got_t.title, t.title);
    ASSERT_WRITES_NOTHING(f, store_task_done(f->s, &t.id), SAT_ERR_STORE_NOT_ALLOWED);

    sim_hal_advance_ms(f->sim, 1800000);
    assert_int_equal(store_visit_end(f->s, &v.id, NULL), SAT_OK);
    assert_int_equal(store_visit_get(f->s, &v.id, &got_v), SAT_OK);
    assert_int_equal(got_v.ended_ms, FIXTURE_WALL_START_MS + 1800000);
    assert_string_equal(got_v.reason, "wound dressing");
    ASSERT_WRITES_NOTHING(f, store_visit_end(f->s, &v.id, NULL), SAT_ERR_STORE_NOT_ALLOWED);
    assert_int_equal(store_check_integrity(f->s), SAT_OK);
    free(n);
    free(got_n);
}

/* ---- bad input ---------------------------------------------------------- */

static void test_bad_input_writes_nothing(void **state)
{
    struct fx *f = *state;
    struct store_patient p;
    struct store_patient bad;
    struct store_obs o;
    struct store_note *n = calloc(1, sizeof *n);
    struct store_id unknown;
    memset(&unknown, 0xAB, sizeof unknown);

    fixture_patient(&f->rng, &p, "");
    assert_int_equal(store_patient_add(f->s, &p), SAT_OK);

    bad = p;
    memcpy(bad.nhs_number, "9434765918", 11); /* wrong check digit */
    ASSERT_WRITES_NOTHING(f, store_patient_add(f->s, &bad), SAT_ERR_STORE_INVALID_NHS);
    assert_non_null(strstr(last_msg, "9434765918"));
    bad = p;
    bad.given_name[0] = '\0';
    ASSERT_WRITES_NOTHING(f, store_patient_add(f->s, &bad), SAT_ERR_STORE_MISSING_FIELD);
    bad = p;
    memset(bad.address, 'x', sizeof bad.address); /* no room for the NUL */
    ASSERT_WRITES_NOTHING(f, store_patient_add(f->s, &bad), SAT_ERR_STORE_TOO_LONG);
    bad = p;
    memcpy(bad.date_of_birth, "1990-02-30", 11);
    ASSERT_WRITES_NOTHING(f, store_patient_add(f->s, &bad), SAT_ERR_STORE_INVALID);
    memcpy(bad.date_of_birth, "2099-01-01", 11);
    ASSERT_WRITES_NOTHING(f, store_patient_add(f->s, &bad), SAT_ERR_STORE_OUT_OF_RANGE);
    bad = p;
    memcpy(bad.nhs_number, "9434765918", 11);
    ASSERT_WRITES_NOTHING(f, store_patient_update(f->s, &bad), SAT_ERR_STORE_INVALID_NHS);
    bad = p;
    bad.id = unknown;
    ASSERT_WRITES_NOTHING(f, store_patient_update(f->s, &bad), SAT_ERR_STORE_UNKNOWN_ID);

    /* Every vital out of range, one at a time. */
    {
        const struct news2_vitals good = { 16, 97, 1, 0, 120, 70, NEWS2_ALERT, 370 };
        struct news2_vitals v;
        int *fields[] = { &v.respiration_rate, &v.spo2_pct, &v.spo2_scale, &v.on_oxygen,
                          &v.systolic_bp, &v.pulse, &v.consciousness, &v.temperature_dc };
        const int too_high[] = { 81, 101, 3, 2, 301, 251, 6, 451 };
        const int too_low[] = { 0, 49, 0, -1, 39, 19, 0, 249 };
        for (int i = 0; i < 8; i++) {
            for (int side = 0; side < 2; side++) {
                v = good;
                *fields[i] = side ? too_high[i] : too_low[i];
                memset(&o, 0, sizeof o);
                o.patient_id = p.id;
                o.vitals = v;
                ASSERT_WRITES_NOTHING(f, store_obs_add(f->s, &o), SAT_ERR_STORE_OUT_OF_RANGE);
            }
        }
        memset(&o, 0, sizeof o);
        o.patient_id = p.id;
        o.vitals = good;
        o.vitals.pulse = 300;
        ASSERT_WRITES_NOTHING(f, store_obs_add(f->s, &o), SAT_ERR_STORE_OUT_OF_RANGE);
        assert_string_equal(last_msg, "pulse 300 is outside 20..250");
        o.vitals = good;
        o.patient_id = unknown;
        ASSERT_WRITES_NOTHING(f, store_obs_add(f->s, &o), SAT_ERR_STORE_UNKNOWN_ID);
        o.patient_id = p.id;
        o.has_amends = 1;
        o.amends = unknown;
        ASSERT_WRITES_NOTHING(f, store_obs_add(f->s, &o), SAT_ERR_STORE_UNKNOWN_ID);
    }

    n->patient_id = p.id;
    ASSERT_WRITES_NOTHING(f, store_note_add(f->s, n), SAT_ERR_STORE_MISSING_FIELD);
    memset(n->text, 'y', sizeof n->text);
    ASSERT_WRITES_NOTHING(f, store_note_add(f->s, n), SAT_ERR_STORE_TOO_LONG);
    snprintf(n->text, sizeof n->text, "ok");
    n->has_visit = 1;
    n->visit_id = unknown;
    ASSERT_WRITES_NOTHING(f, store_note_add(f->s, n), SAT_ERR_STORE_UNKNOWN_ID);
    ASSERT_WRITES_NOTHING(f, store_visit_start(f->s, &unknown, "", NULL),
                          SAT_ERR_STORE_UNKNOWN_ID);
    ASSERT_WRITES_NOTHING(f, store_task_done(f->s, &unknown), SAT_ERR_STORE_UNKNOWN_ID);
    ASSERT_WRITES_NOTHING(f, store_delete(f->s, RECORD_KIND_TASK, &unknown),
                          SAT_ERR_STORE_UNKNOWN_ID);
    free(n);
}

/* ---- change log --------------------------------------------------------- */

struct log_check {
    uint64_t last_seq;
    uint64_t last_wall;
    uint32_t last_counter;
    struct store_id device;
    int n;
    int bad;
};

static int check_change(void *arg, const struct store_change *c)
{
    struct log_check *lc = arg;
    int later = c->hlc_wall_ms > lc->last_wall ||
                (c->hlc_wall_ms == lc->last_wall && c->hlc_counter > lc->last_counter);
    if (c->seq <= lc->last_seq || (lc->n > 0 && !later) ||
        memcmp(&c->origin_device, &lc->device, sizeof lc->device) != 0)
        lc->bad++;
    lc->last_seq = c->seq;
    lc->last_wall = c->hlc_wall_ms;
    lc->last_counter = c->hlc_counter;
    lc->n++;
    return 0;
}

static void test_change_log_stamps_every_field(void **state)
{
    struct fx *f = *state;
    struct store_patient p;
    struct log_check lc;
    memset(&lc, 0, sizeof lc);
    store_device_id(f->s, &lc.device);
    fixture_patient(&f->rng, &p, "");
    assert_int_equal(store_patient_add(f->s, &p), SAT_OK);
    /* The nurse sets her tablet's clock back a day: stamps still go up. */
    sim_hal_set_wall_ms(f->sim, FIXTURE_WALL_START_MS - 86400000);
    snprintf(p.given_name, sizeof p.given_name, "Changed");
    assert_int_equal(store_patient_update(f->s, &p), SAT_OK);
    assert_int_equal(store_changes(f->s, 0, 0, check_change, &lc), SAT_OK);
    assert_int_equal(lc.n, 8); /* 7 patient fields + 1 update */
    assert_int_equal(lc.bad, 0);
    assert_int_equal(lc.last_wall, FIXTURE_WALL_START_MS);

    /* The clock survives closing the store. */
    store_close(f->s);
    assert_int_equal(store_open(f->h, &f->k, &f->s, NULL), SAT_OK);
    snprintf(p.given_name, sizeof p.given_name, "Again");
    assert_int_equal(store_patient_update(f->s, &p), SAT_OK);
    memset(&lc, 0, sizeof lc);
    store_device_id(f->s, &lc.device);
    assert_int_equal(store_changes(f->s, 0, 0, check_change, &lc), SAT_OK);
    assert_int_equal(lc.n, 9);
    assert_int_equal(lc.bad, 0);
}

/* ---- nothing readable on flash ------------------------------------------ */

static int mem_contains(const uint8_t *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return 1;
    return 0;
}

struct scan {
    struct sim_hal *sim;
    const char *const *markers;
    int files;
    int hits;
    int wal; /* the store's WAL was among the files */
};

static int scan_file(void *arg, const char *name)
{
    struct scan *sc = arg;
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (sim_hal_file_bytes(sc->sim, name, &bytes, &len) != SAT_OK)
        return 0;
    sc->files++;
    if (strcmp(name, STORE_DB_NAME "-wal") == 0)
        sc->wal = 1;
    for (const char *const *m = sc->markers; *m; m++)
        if (mem_contains(bytes, len, *m)) {
            fprintf(stderr, "plaintext '%s' found in %s\n", *m, name);
            sc->hits++;
        }
    return 0;
}

static void scan_all(struct fx *f, const char *const *markers, int *files, int *hits, int *wal)
{
    struct scan sc = { f->sim, markers, 0, 0, 0 };
    assert_int_equal(hal_storage_list(f->h, scan_file, &sc), SAT_OK);
    *files = sc.files;
    *hits = sc.hits;
    *wal = sc.wal;
}

static void test_plaintext_never_reaches_storage(void **state)
{
    struct fx *f = *state;
    static const char *const markers[] = { "ZQXMARKER", "Wound-ZQX", "SQLite format 3",
                                           "9434765919", "CREATE TABLE", NULL };
    struct store_patient p;
    struct store_note *n = calloc(1, sizeof *n);
    struct store_obs o;
    int files = 0;
    int hits = 0;
    int wal = 0;

    for (int i = 0; i < 20; i++) {
        fixture_patient(&f->rng, &p, "ZQXMARKER");
        if (i == 0)
            memcpy(p.nhs_number, "9434765919", 11);
        assert_int_equal(store_patient_add(f->s, &p), SAT_OK);
        memset(n, 0, sizeof *n);
        n->patient_id = p.id;
        snprintf(n->text, sizeof n->text, "Wound-ZQX check %d", i);
        assert_int_equal(store_note_add(f->s, n), SAT_OK);
        memset(&o, 0, sizeof o);
        o.patient_id = p.id;
        fixture_vitals(&f->rng, &o.vitals);
        assert_int_equal(store_obs_add(f->s, &o), SAT_OK);
    }
    scan_all(f, markers, &files, &hits, &wal);
    assert_true(files >= 2); /* database and journal */
    assert_true(wal);        /* the WAL holds the latest pages: scanned too */
    assert_int_equal(hits, 0);

    /* Crash in the middle of a transaction, with its frames half in the
     * WAL. */
    fixture_patient(&f->rng, &p, "ZQXMARKER");
    sim_hal_cut_at(f->sim, 3);
    assert_int_not_equal(store_patient_add(f->s, &p), SAT_OK);
    assert_true(sim_hal_powered_off(f->sim));
    store_close(f->s);
    f->s = NULL;
    sim_hal_power_on(f->sim);
    scan_all(f, markers, &files, &hits, &wal);
    assert_true(wal);
    assert_int_equal(hits, 0);
    assert_int_equal(store_open(f->h, &f->k, &f->s, NULL), SAT_OK);
    assert_int_equal(store_check_integrity(f->s), SAT_OK);
    scan_all(f, markers, &files, &hits, &wal);
    assert_int_equal(hits, 0);
    free(n);
}

/* Runs SQL on the closed store behind its back, through the VFS with the
 * store's own key, as another build would; returns the first column of the
 * last row it gave, if any (else -1). */
static int64_t raw_sql(struct fx *f, const char *sql)
{
    uint8_t key[VFS_CRYPT_KEY_BYTES];
    struct vfs_crypt *v = NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    const char *rest = sql;
    int64_t last = -1;
    assert_int_equal(store_file_key(&f->k, key), SAT_OK);
    assert_int_equal(vfs_crypt_register(f->h, key, f->k.store_id, &v), SAT_OK);
    assert_int_equal(sqlite3_open_v2(STORE_DB_NAME, &db, SQLITE_OPEN_READWRITE,
                                     vfs_crypt_name(v)),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    while (*rest) {
        int rc;
        assert_int_equal(sqlite3_prepare_v2(db, rest, -1, &q, &rest), SQLITE_OK);
        if (!q)
            break; /* trailing space */
        while ((rc = sqlite3_step(q)) == SQLITE_ROW)
            last = sqlite3_column_int64(q, 0);
        assert_int_equal(rc, SQLITE_DONE);
        sqlite3_finalize(q);
    }
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    vfs_crypt_unregister(v);
    memset(key, 0, sizeof key);
    return last;
}

/* Sets the store's layout number, as a build with another layout would
 * have left it. */
static void set_layout(struct fx *f, int version)
{
    char sql[80];
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d;", version);
    raw_sql(f, sql);
}

static void test_layout_from_another_build_is_refused(void **state)
{
    struct fx *f = *state;
    struct store_patient p;
    struct store_patient got;
    char why[STORE_ERRMSG_BYTES];
    static const struct {
        int version;
        const char *says;
    } other[] = {
        { 4, "it has layout 4, made by a newer build (this one reads layout 3)" },
        { 1000, "it has layout 1000, made by a newer build" },
        { 0, "it was made by an early development build" },
        { 1, "it was made by an early development build" },
    };

    fixture_patient(&f->rng, &p, "");
    assert_int_equal(store_patient_add(f->s, &p), SAT_OK);
    store_close(f->s);
    f->s = NULL;

    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        set_layout(f, other[i].version);
        strcpy(why, "untouched");
        assert_int_equal(store_open(f->h, &f->k, &f->s, why), SAT_ERR_STORE_SQL);
        assert_null(f->s);
        assert_non_null(strstr(why, other[i].says));
        assert_null(strchr(why, '\n')); /* one line */
    }
    /* The refusals wrote nothing: back at this build's layout the store
     * opens with its patient, and a success leaves why empty. */
    set_layout(f, 3);
    assert_int_equal(store_open(f->h, &f->k, &f->s, why), SAT_OK);
    assert_string_equal(why, "");
    assert_int_equal(store_patient_get(f->s, &p.id, &got), SAT_OK);
    assert_string_equal(got.nhs_number, p.nhs_number);
    assert_int_equal(store_check_integrity(f->s), SAT_OK);

    /* A locked key set cannot open anything, and says so. */
    store_close(f->s);
    f->s = NULL;
    f->k.unlocked = 0;
    assert_int_equal(store_open(f->h, &f->k, &f->s, why), SAT_ERR_KEYS_LOCKED);
    assert_null(f->s);
    f->k.unlocked = 1;
}

struct conflict_seen {
    int n;
    struct store_conflict c[4];
    char kept[4][64];
};

static int conflict_seen_cb(void *arg, const struct store_conflict *c)
{
    struct conflict_seen *cs = arg;
    if (cs->n < 4) {
        cs->c[cs->n] = *c;
        snprintf(cs->kept[cs->n], sizeof cs->kept[0], "%s", c->kept);
    }
    cs->n++;
    return 0;
}

static struct store_change text_change(const struct store_id *record, uint32_t field,
                                       const char *text, uint64_t wall, uint32_t counter,
                                       const struct store_id *origin, uint64_t seq)
{
    struct store_change c;
    memset(&c, 0, sizeof c);
    c.record_id = *record;
    c.kind = RECORD_KIND_PATIENT;
    c.field = field;
    c.value_type = 1; /* text */
    c.value_text = text;
    c.hlc_wall_ms = wall;
    c.hlc_counter = counter;
    c.origin_device = *origin;
    c.origin_seq = seq;
    return c;
}

/* Puts the closed store's merge state back in layout 2 (a table of a row
 * per field, other writers by id): the patient's given name (field 3) last written
 * here at (5000, 1), its address (field 6) by the tablet with id xhex at
 * (6000, 2); then runs `more`. */
static void to_layout_2(struct fx *f, const char *xhex, const char *more)
{
    char sql[2048];
#define V2_FS(t)                                                                             \
    "ALTER TABLE " t " DROP COLUMN ms;"                                                     \
    "CREATE TABLE fs_" t "(k INTEGER PRIMARY KEY, vtype INTEGER NOT NULL, vint INTEGER,"    \
    " vtext TEXT, vblob BLOB, hlc_wall INTEGER NOT NULL, hlc_counter INTEGER NOT NULL,"     \
    " origin BLOB);"
    snprintf(sql, sizeof sql,
             V2_FS("patient") V2_FS("visit") V2_FS("observation") V2_FS("note") V2_FS("task")
             "DROP TABLE origin;"
             "INSERT INTO fs_patient SELECT rowid * 65536 + 3, 1, NULL, given_name, NULL,"
             " 5000, 1, NULL FROM patient;"
             "INSERT INTO fs_patient SELECT rowid * 65536 + 6, 1, NULL, address, NULL,"
             " 6000, 2, x'%s' FROM patient;"
             "%s PRAGMA user_version=2;",
             xhex, more);
#undef V2_FS
    raw_sql(f, sql);
}

/* A store a layout 2 build left (the merge state a row per field, another
 * writer by its id) opens migrated to layout 3, and merges as before. */
static void test_layout_2_store_is_migrated(void **state)
{
    struct fx *f = *state;
    struct store_patient p;
    struct store_patient got;
    struct store_id me, x, y;
    struct store_apply_result r;
    struct conflict_seen cs;
    struct store_change ch[4];
    char why[STORE_ERRMSG_BYTES];
    char xhex[STORE_ID_HEX_BYTES];

    memset(&x, 0x5a, sizeof x);
    memset(&y, 0x6b, sizeof y);
    store_id_to_hex(&x, xhex);
    fixture_patient(&f->rng, &p, "");
    assert_int_equal(store_patient_add(f->s, &p), SAT_OK);
    store_device_id(f->s, &me);
    store_close(f->s);
    f->s = NULL;

    /* Layout 2's tables, as its build wrote them: the patient's given
     * name (field 3) last written here at (5000, 1), its address (field
     * 6) by tablet x at (6000, 2). */
    to_layout_2(f, xhex, "");

    assert_int_equal(store_open(f->h, &f->k, &f->s, why), SAT_OK);
    assert_string_equal(why, "");
    assert_int_equal(store_patient_get(f->s, &p.id, &got), SAT_OK);
    assert_string_equal(got.address, p.address);

    ch[0] = text_change(&p.id, 6, "1 Elsewhere Road", 5500, 0, &y, 1); /* older than x's */
    ch[1] = text_change(&p.id, 3, "Bea", 4000, 0, &y, 2);              /* older than mine */
    ch[2] = text_change(&p.id, 4, "Newname", 100, 0, &y, 3);           /* no state: wins */
    ch[3] = text_change(&p.id, 6, p.address, 6000, 2, &x, 7);          /* x's very write */
    memset(&r, 0, sizeof r);
    assert_int_equal(store_apply_remote(f->s, ch, 4, NULL, 0, 0, &r), SAT_OK);
    assert_int_equal(r.applied, 1);
    assert_int_equal(r.stale, 3);
    assert_int_equal(r.conflicts, 2);
    memset(&cs, 0, sizeof cs);
    assert_int_equal(store_conflicts(f->s, conflict_seen_cb, &cs), SAT_OK);
    assert_int_equal(cs.n, 2);
    assert_int_equal(cs.c[0].field, 6);
    assert_string_equal(cs.kept[0], p.address);
    assert_memory_equal(&cs.c[0].kept_origin, &x, sizeof x);
    assert_int_equal(cs.c[1].field, 3);
    assert_string_equal(cs.kept[1], p.given_name);
    assert_memory_equal(&cs.c[1].kept_origin, &me, sizeof me);
    assert_int_equal(store_patient_get(f->s, &p.id, &got), SAT_OK);
    assert_string_equal(got.family_name, "Newname");
    assert_string_equal(got.given_name, p.given_name);
    assert_int_equal(store_check_integrity(f->s), SAT_OK);
    store_close(f->s);
    f->s = NULL;

    /* Layout 3 now: the merge state in the record's row; x and y by ref. */
    assert_int_equal(raw_sql(f, "PRAGMA user_version;"), 3);
    assert_int_equal(raw_sql(f, "SELECT count(*) FROM patient WHERE length(ms) > 0;"), 1);
    assert_int_equal(raw_sql(f, "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'fs%';"), 0);
    assert_int_equal(raw_sql(f, "SELECT count(*) FROM origin;"), 2);
    assert_int_equal(store_open(f->h, &f->k, &f->s, why), SAT_OK);
    memset(&r, 0, sizeof r);
    assert_int_equal(store_apply_remote(f->s, ch, 4, NULL, 0, 0, &r), SAT_OK);
    assert_int_equal(r.applied, 0); /* all already here or older */
    assert_int_equal(r.stale, 4);

    /* Damaged layout 2 merge state (a value of no known type) is
     * refused, and the store is left as it was, at layout 2. */
    store_close(f->s);
    f->s = NULL;
    to_layout_2(f, xhex, "INSERT INTO fs_patient SELECT rowid * 65536 + 4, 9, 0, NULL, NULL,"
                         " 7000, 0, NULL FROM patient;");
    strcpy(why, "untouched");
    assert_int_equal(store_open(f->h, &f->k, &f->s, why), SAT_ERR_STORE_CORRUPT);
    assert_null(f->s);
    assert_non_null(strstr(why, "merge state of a patient record is damaged"));
    assert_int_equal(raw_sql(f, "PRAGMA user_version;"), 2);
    assert_int_equal(raw_sql(f, "SELECT count(*) FROM fs_patient;"), 3);
    assert_int_equal(raw_sql(f, "SELECT count(*) FROM pragma_table_info('patient')"
                                " WHERE name = 'ms';"),
                     0);
    assert_int_equal(raw_sql(f, "SELECT count(*) FROM sqlite_schema WHERE name = 'origin';"), 0);
}

/* ---- a nonce never seals two things ------------------------------------
 *
 * vfs_crypt seals every unit (a database or journal block, a WAL header, a
 * WAL frame's header, a WAL frame's page) as nonce | tag | ciphertext with
 * a fresh random nonce, all under one key: a nonce used twice under
 * AES-GCM gives away the XOR of two plaintexts and the hash key that
 * forges tags. So: rewrite the same few pages many times, through the WAL
 * (with checkpoints, and the WAL restarting over its old frames) and
 * through a rollback journal, and after every sync read every unit on
 * flash; a nonce seen twice must seal the very same tag and ciphertext (a
 * checkpoint copies a sealed page from the WAL into the database as it
 * stands). Same tag and ciphertext under one nonce means the same unit of
 * the same block: the tag covers the associated data (file kind, block
 * number). */

#define NONCE_SEALS_MAX 8192u /* distinct units the watch can remember */
#define NONCE_UNITS_MAX 512u  /* units per file followed for rewrites */
#define NONCE_ROWS 12
#define NONCE_ROW_BYTES 300
#define NONCE_WAL_ROUNDS 48
#define NONCE_JOURNAL_ROUNDS 16
#define NONCE_CHECKPOINT_EVERY 8
#define NONCE_DB "nonce.db"
#define NONCE_STR_(x) #x
#define NONCE_STR(x) NONCE_STR_(x) /* VFS_CRYPT_BLOCK_BYTES is a plain literal */

enum nonce_file { NONCE_FILE_DB, NONCE_FILE_WAL, NONCE_FILE_JOURNAL, NONCE_FILES };

static const char *const nonce_file_names[NONCE_FILES] = { NONCE_DB, NONCE_DB "-wal",
                                                           NONCE_DB "-journal" };

struct nonce_seen {
    uint8_t nonce[VFS_CRYPT_NONCE_BYTES];
    uint8_t tag[VFS_CRYPT_TAG_BYTES];
    uint64_t body_hash; /* FNV-1a of the ciphertext */
    uint64_t off;       /* where it was first seen */
    uint8_t file;
    uint8_t used;
};

struct nonce_unit {
    uint8_t nonce[VFS_CRYPT_NONCE_BYTES];
    uint8_t used;
};

struct nonce_watch {
    struct sim_hal *sim;
    struct hal hal; /* the device's, with storage_sync watched */
    int (*real_sync)(void *ctx, hal_file *f);
    struct nonce_seen seen[NONCE_SEALS_MAX];
    size_t seals;
    struct nonce_unit last[NONCE_FILES][NONCE_UNITS_MAX]; /* each unit's latest nonce */
    uint64_t rewrites[NONCE_FILES]; /* a unit found sealed again in place */
    unsigned scans;
    unsigned reuses;
    unsigned bad_layout; /* a file whose length is not whole slots */
    int full;
    char first_reuse[256];
};

static struct nonce_watch *watch;

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void nonce_hex(const uint8_t *nonce, char out[2 * VFS_CRYPT_NONCE_BYTES + 1])
{
    for (size_t i = 0; i < VFS_CRYPT_NONCE_BYTES; i++)
        snprintf(out + 2 * i, 3, "%02x", nonce[i]);
}

/* One unit, nonce | tag | ciphertext, `len` bytes at `off` of `file`. */
static void watch_unit(struct nonce_watch *w, enum nonce_file file, size_t unit, uint64_t off,
                       const uint8_t *p, size_t len)
{
    const uint8_t *nonce = p;
    const uint8_t *tag = p + VFS_CRYPT_NONCE_BYTES;
    const size_t seal = VFS_CRYPT_NONCE_BYTES + VFS_CRYPT_TAG_BYTES;
    uint64_t body_hash = fnv1a(p + seal, len - seal);
    size_t i = (size_t)(fnv1a(nonce, VFS_CRYPT_NONCE_BYTES) % NONCE_SEALS_MAX);

    if (unit < NONCE_UNITS_MAX) {
        struct nonce_unit *u = &w->last[file][unit];
        if (u->used && memcmp(u->nonce, nonce, VFS_CRYPT_NONCE_BYTES) != 0)
            w->rewrites[file]++;
        memcpy(u->nonce, nonce, VFS_CRYPT_NONCE_BYTES);
        u->used = 1;
    }
    for (size_t probes = 0; probes < NONCE_SEALS_MAX; probes++, i = (i + 1) % NONCE_SEALS_MAX) {
        struct nonce_seen *e = &w->seen[i];
        if (!e->used) {
            memcpy(e->nonce, nonce, VFS_CRYPT_NONCE_BYTES);
            memcpy(e->tag, tag, VFS_CRYPT_TAG_BYTES);
            e->body_hash = body_hash;
            e->off = off;
            e->file = (uint8_t)file;
            e->used = 1;
            w->seals++;
            return;
        }
        if (memcmp(e->nonce, nonce, VFS_CRYPT_NONCE_BYTES) != 0)
            continue;
        if (memcmp(e->tag, tag, VFS_CRYPT_TAG_BYTES) != 0 || e->body_hash != body_hash) {
            if (w->reuses++ == 0) {
                char hex[2 * VFS_CRYPT_NONCE_BYTES + 1];
                nonce_hex(nonce, hex);
                snprintf(w->first_reuse, sizeof w->first_reuse,
                         "nonce %s seals %s offset %llu and, differently, %s offset %llu "
                         "(scan %u)",
                         hex, nonce_file_names[e->file], (unsigned long long)e->off,
                         nonce_file_names[file], (unsigned long long)off, w->scans);
            }
        }
        return;
    }
    w->full = 1;
}

/* Every whole unit of one file as it is on flash now. */
static void watch_file(struct nonce_watch *w, enum nonce_file file)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    size_t off = 0;
    size_t unit = 0;

    if (sim_hal_file_bytes(w->sim, nonce_file_names[file], &bytes, &len) != SAT_OK || len == 0)
        return;
    if (file == NONCE_FILE_WAL) {
        /* The header's slot, then per frame: its header's unit, its page's
         * (which is the database slot of that page). */
        const size_t frame_hdr_unit = VFS_CRYPT_WAL_FRAME_SLOT_BYTES - VFS_CRYPT_SLOT_BYTES;
        if (len < VFS_CRYPT_WAL_HEADER_SLOT_BYTES) {
            w->bad_layout++;
            return;
        }
        watch_unit(w, file, unit++, 0, bytes, VFS_CRYPT_WAL_HEADER_SLOT_BYTES);
        for (off = VFS_CRYPT_WAL_HEADER_SLOT_BYTES; off + VFS_CRYPT_WAL_FRAME_SLOT_BYTES <= len;
             off += VFS_CRYPT_WAL_FRAME_SLOT_BYTES) {
            watch_unit(w, file, unit++, off, bytes + off, frame_hdr_unit);
            watch_unit(w, file, unit++, off + frame_hdr_unit, bytes + off + frame_hdr_unit,
                       VFS_CRYPT_SLOT_BYTES);
        }
    } else {
        for (off = 0; off + VFS_CRYPT_SLOT_BYTES <= len; off += VFS_CRYPT_SLOT_BYTES)
            watch_unit(w, file, unit++, off, bytes + off, VFS_CRYPT_SLOT_BYTES);
    }
    if (off != len)
        w->bad_layout++;
}

static void watch_all(struct nonce_watch *w)
{
    w->scans++;
    for (int file = 0; file < NONCE_FILES; file++)
        watch_file(w, (enum nonce_file)file);
}

static int watched_sync(void *ctx, hal_file *f)
{
    int ret = watch->real_sync(ctx, f);
    watch_all(watch);
    return ret;
}

static void nonce_exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, err ? err : sqlite3_errstr(rc));
}

/* Opens NONCE_DB on v in the given journal mode ("wal", "persist"), makes
 * its table if it has none, and rewrites every row in each of `rounds`
 * transactions, checkpointing now and then in WAL mode. */
static void nonce_rewrite_rows(struct vfs_crypt *v, const char *mode, int rounds, uint64_t *rng)
{
    char sql[128];
    uint8_t body[NONCE_ROW_BYTES];
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    const int wal = strcmp(mode, "wal") == 0;

    assert_int_equal(sqlite3_open_v2(NONCE_DB, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                     vfs_crypt_name(v)),
                     SQLITE_OK);
    nonce_exec(db, "PRAGMA locking_mode=EXCLUSIVE;"
                   " PRAGMA page_size=" NONCE_STR(VFS_CRYPT_BLOCK_BYTES) ";"
                   " PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0;");
    snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s", mode);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), mode);
    sqlite3_finalize(q);
    nonce_exec(db, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, body BLOB NOT NULL);");

    assert_int_equal(sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO t(id, body) VALUES(?1, ?2)",
                                        -1, &q, NULL),
                     SQLITE_OK);
    for (int round = 0; round < rounds; round++) {
        nonce_exec(db, "BEGIN");
        for (int row = 0; row < NONCE_ROWS; row++) {
            for (size_t i = 0; i < sizeof body; i++)
                body[i] = (uint8_t)fixture_next(rng);
            assert_int_equal(sqlite3_bind_int(q, 1, row), SQLITE_OK);
            assert_int_equal(sqlite3_bind_blob(q, 2, body, (int)sizeof body, SQLITE_STATIC),
                             SQLITE_OK);
            assert_int_equal(sqlite3_step(q), SQLITE_DONE);
            assert_int_equal(sqlite3_reset(q), SQLITE_OK);
        }
        nonce_exec(db, "COMMIT");
        /* PASSIVE: the next commit restarts the WAL over its old frames;
         * TRUNCATE once: the WAL starts again from nothing. */
        if (wal && round % NONCE_CHECKPOINT_EVERY == NONCE_CHECKPOINT_EVERY - 1)
            nonce_exec(db, round == rounds / 2 ? "PRAGMA wal_checkpoint(TRUNCATE)"
                                               : "PRAGMA wal_checkpoint(PASSIVE)");
        if (watch->reuses > 0)
            break;
    }
    sqlite3_finalize(q);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void test_vfs_nonces_never_reused(void **state)
{
    uint8_t key[VFS_CRYPT_KEY_BYTES];
    uint8_t store_id[VFS_CRYPT_STORE_ID_BYTES];
    struct vfs_crypt *v = NULL;
    uint64_t rng = 7;
    (void)state;

    watch = calloc(1, sizeof *watch);
    assert_non_null(watch);
    assert_int_equal(sim_hal_new(&watch->sim, 7, FIXTURE_WALL_START_MS), SAT_OK);
    watch->hal = *sim_hal_hal(watch->sim);
    watch->real_sync = watch->hal.storage_sync;
    watch->hal.storage_sync = watched_sync;
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (uint8_t)(0xA5 ^ i);
    for (size_t i = 0; i < sizeof store_id; i++)
        store_id[i] = (uint8_t)(0x3C + i);
    assert_int_equal(vfs_crypt_register(&watch->hal, key, store_id, &v), SAT_OK);

    nonce_rewrite_rows(v, "wal", NONCE_WAL_ROUNDS, &rng);
    if (watch->reuses == 0)
        nonce_rewrite_rows(v, "persist", NONCE_JOURNAL_ROUNDS, &rng);
    watch_all(watch);
    vfs_crypt_unregister(v);

    if (watch->reuses > 0)
        fail_msg("%u units sealed with a nonce already used for other bytes; first: %s",
                 watch->reuses, watch->first_reuse);
    assert_false(watch->full);
    assert_int_equal(watch->bad_layout, 0);
    /* The sweep did rewrite the same blocks in place, in every file. */
    for (int file = 0; file < NONCE_FILES; file++)
        if (watch->rewrites[file] == 0)
            fail_msg("no block of %s was ever rewritten in place", nonce_file_names[file]);
    assert_true(watch->seals > (size_t)NONCE_WAL_ROUNDS * 4);
    sim_hal_free(watch->sim);
    free(watch);
    watch = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_patient_roundtrip_update_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_visit_obs_note_task_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_writes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_log_stamps_every_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plaintext_never_reaches_storage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layout_from_another_build_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_layout_2_store_is_migrated, setup, teardown),
        cmocka_unit_test(test_vfs_nonces_never_reused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
