/* bench_workload.c - see bench_workload.h. */
#define _POSIX_C_SOURCE 200809L

#include "bench_workload.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bench_sqlite.h"
#include "record_id.h"

#define ID_BYTES 16
#define TEXT_BYTES_MAX 96
#define PATH_BYTES_MAX 4096
#define STR_(x) #x
#define STR(x) STR_(x)
/* Synthetic clock: the day starts here and observations are a few minutes
 * apart, so every patient's taken_ms values differ. */
#define DAY_START_MS 1700000000000LL
#define OBS_STEP_MS 60000LL
#define KIB 1024.0

const uint8_t bench_test_key[BENCH_KEY_BYTES] = {
    0x5a, 0x7c, 0x4e, 0x1b, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
    0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11,
    0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0xbe, 0x4c,
};

static const char *const phase_names[2][BENCH_PHASES_MAX] = {
    { "insert", "lookup", "listing" },
    { "import", "cold_scan", NULL },
};

/* The store's settings (firmware/store/store_schema.c), in its order: db_open sets
 * locking_mode=EXCLUSIVE before anything reads the database, then these
 * (page_size before the first page is written: journal_mode=WAL writes it),
 * cache_size (per phase), journal_mode=WAL and the WAL's autocheckpoint,
 * checking the answers. */
static const char common_pragmas[] =
    "PRAGMA page_size=" STR(BENCH_PAGE_BYTES) "; PRAGMA synchronous=FULL; PRAGMA temp_store=MEMORY;"
    " PRAGMA mmap_size=0;";
#define WAL_AUTOCHECKPOINT_PAGES "1000"
/* The store's page cache (cache_size=-2560, KiB), for both workloads until
 * the cold scan: 2 MiB made the import spill pages constantly, sealing and
 * opening each page about 20 times over. */
#define STORE_CACHE_KIB 2560

/* The store's patient and observation tables and their indexes. */
static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS patient(id BLOB NOT NULL UNIQUE, nhs_number TEXT NOT NULL,"
    " given_name TEXT NOT NULL, family_name TEXT NOT NULL, date_of_birth TEXT NOT NULL,"
    " address TEXT NOT NULL, postcode TEXT NOT NULL, team TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS patient_name ON patient(family_name, given_name);"
    "CREATE TABLE IF NOT EXISTS observation(id BLOB NOT NULL UNIQUE, patient_id BLOB NOT NULL,"
    " visit_id BLOB, amends BLOB, taken_ms INTEGER NOT NULL, resp INTEGER NOT NULL,"
    " spo2 INTEGER NOT NULL, spo2_scale INTEGER NOT NULL, on_oxygen INTEGER NOT NULL,"
    " sbp INTEGER NOT NULL, pulse INTEGER NOT NULL, consciousness INTEGER NOT NULL,"
    " temp_dc INTEGER NOT NULL, news2 INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS obs_patient ON observation(patient_id, taken_ms);";

static const char patient_insert_sql[] =
    "INSERT INTO patient(id, nhs_number, given_name, family_name, date_of_birth, address,"
    " postcode, team, created_ms) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)";

static const char obs_insert_sql[] =
    "INSERT INTO observation(id, patient_id, visit_id, amends, taken_ms, resp, spo2,"
    " spo2_scale, on_oxygen, sbp, pulse, consciousness, temp_dc, news2)"
    " VALUES (?1,?2,?3,NULL,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)";

static const char lookup_sql[] =
    "SELECT taken_ms, resp, spo2, sbp, pulse, temp_dc, news2 FROM observation"
    " WHERE patient_id = ?1 ORDER BY taken_ms DESC LIMIT " STR(BENCH_LOOKUP_ROWS);

static const char listing_sql[] =
    "SELECT p.family_name, p.given_name, p.nhs_number, p.postcode,"
    " (SELECT count(*) FROM observation o WHERE o.patient_id = p.id),"
    " (SELECT o.news2 FROM observation o WHERE o.patient_id = p.id"
    "  ORDER BY o.taken_ms DESC LIMIT 1)"
    " FROM patient p WHERE p.deleted = 0 ORDER BY p.family_name, p.given_name";

/* Needs columns no index holds, so SQLite must walk the whole table. */
static const char scan_sql[] =
    "SELECT count(*), sum(resp), sum(spo2), sum(sbp), sum(pulse), sum(temp_dc), sum(news2)"
    " FROM observation";

/* ---- synthetic data ----------------------------------------------------- */

struct rng {
    uint64_t state;
};

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* splitmix64 */
static uint64_t rng_next(struct rng *r)
{
    r->state += 0x9e3779b97f4a7c15ULL;
    return mix64(r->state);
}

static uint32_t rng_below(struct rng *r, uint32_t n)
{
    return (uint32_t)(rng_next(r) % n);
}

static void rng_bytes(struct rng *r, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = rng_next(r);
        for (size_t j = 0; j < 8 && i + j < n; j++)
            out[i + j] = (uint8_t)(v >> (8 * j));
    }
}

/* A record id as the store makes one (record_id.h), made at `ms`. */
static void rng_id(struct rng *r, int64_t ms, uint8_t out[ID_BYTES])
{
    uint8_t rnd[RECORD_ID_RANDOM_BYTES];
    rng_bytes(r, rnd, sizeof rnd);
    record_id_make(ms, rnd, out);
}

/* A made-up name of 2 or 3 syllables, capitalised. */
static void rng_name(struct rng *r, char *out, size_t cap)
{
    static const char *const syl[] = { "ba", "ko", "ri", "ne", "lu", "ma", "ti", "so",
                                       "de", "fa", "gu", "hi", "ja", "ve", "zo", "wen" };
    int n = 2 + (int)rng_below(r, 2);
    out[0] = '\0';
    for (int i = 0; i < n; i++)
        strncat(out, syl[rng_below(r, sizeof syl / sizeof syl[0])], cap - strlen(out) - 1);
    if (out[0] >= 'a' && out[0] <= 'z')
        out[0] = (char)(out[0] - 'a' + 'A');
}

/* ---- row digests (order-free, so engines can be compared) --------------- */

static uint64_t digest_text(const unsigned char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    if (!s)
        return 0;
    for (; *s; s++)
        h = (h ^ *s) * 0x100000001b3ULL;
    return h;
}

static uint64_t digest_row(sqlite3_stmt *q, int text_cols)
{
    uint64_t h = 0;
    int n = sqlite3_column_count(q);
    for (int i = 0; i < n; i++) {
        uint64_t v = i < text_cols ? digest_text(sqlite3_column_text(q, i))
                                   : (uint64_t)sqlite3_column_int64(q, i);
        h = mix64(h ^ v ^ ((uint64_t)i << 56));
    }
    return h;
}

/* ---- helpers ------------------------------------------------------------ */

double bench_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int fail(struct bench_result *res, sqlite3 *db, const char *what)
{
    snprintf(res->errmsg, sizeof res->errmsg, "%s: %s", what,
             db ? sqlite3_errmsg(db) : "no database");
    return -1;
}

static int exec(sqlite3 *db, const char *sql, struct bench_result *res, const char *what)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return fail(res, db, what);
    return 0;
}

/* Sets a PRAGMA that answers with its new value and checks the answer, so a
 * silently ignored setting cannot skew the comparison. */
static int pragma_expect(sqlite3 *db, const char *sql, const char *want,
                         struct bench_result *res)
{
    sqlite3_stmt *q = NULL;
    int ret = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        return fail(res, db, sql);
    if (sqlite3_step(q) == SQLITE_ROW) {
        const unsigned char *got = sqlite3_column_text(q, 0);
        if (got && strcmp((const char *)got, want) == 0)
            ret = 0;
        else
            snprintf(res->errmsg, sizeof res->errmsg, "%s answered '%s', expected '%s'", sql,
                     got ? (const char *)got : "(null)", want);
    } else {
        fail(res, db, sql);
    }
    sqlite3_finalize(q);
    return ret;
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **q, struct bench_result *res,
                   const char *what)
{
    if (sqlite3_prepare_v2(db, sql, -1, q, NULL) != SQLITE_OK)
        return fail(res, db, what);
    return 0;
}

/* Opens through the engine and applies the common settings. */
static int db_open(const struct bench_engine *e, int cache_pages_or_kib, sqlite3 **db,
                   struct bench_result *res)
{
    char sql[64];
    int rc;
    *db = NULL;
    rc = e->open(e->arg, BENCH_DB_NAME, db, res->errmsg, sizeof res->errmsg);
    if (rc != SQLITE_OK) {
        if (res->errmsg[0] == '\0')
            snprintf(res->errmsg, sizeof res->errmsg, "open %s: %s", BENCH_DB_NAME,
                     sqlite3_errstr(rc));
        return -1;
    }
    snprintf(sql, sizeof sql, "PRAGMA cache_size=%d;", cache_pages_or_kib);
    if (pragma_expect(*db, "PRAGMA locking_mode=EXCLUSIVE", "exclusive", res) != 0 ||
        exec(*db, common_pragmas, res, "settings") != 0 || exec(*db, sql, res, sql) != 0 ||
        pragma_expect(*db, "PRAGMA journal_mode=WAL", "wal", res) != 0 ||
        pragma_expect(*db, "PRAGMA wal_autocheckpoint=" WAL_AUTOCHECKPOINT_PAGES,
                      WAL_AUTOCHECKPOINT_PAGES, res) != 0 ||
        exec(*db, schema_sql, res, "schema") != 0 ||
        pragma_expect(*db, "PRAGMA page_size", STR(BENCH_PAGE_BYTES), res) != 0) {
        sqlite3_close(*db);
        *db = NULL;
        return -1;
    }
    return 0;
}

static int db_close(sqlite3 *db, struct bench_result *res)
{
    if (db && sqlite3_close(db) != SQLITE_OK)
        return fail(res, db, "close (a statement left open)");
    return 0;
}

/* db_close after a phase: closing checkpoints what is left in the WAL and
 * deletes it, work no phase times; its time goes to stderr so that it
 * stays in sight. */
static int db_close_after(enum bench_workload w, const struct bench_engine *e, int phase,
                          sqlite3 *db, struct bench_result *res)
{
    double t0 = bench_now_ms();
    int ret = db_close(db, res);
    if (ret == 0 && db)
        fprintf(stderr, "bench: %s on %s: after %s: close (checkpoint, untimed): %.2f ms\n",
                bench_workload_name(w), e->label, bench_phase_name(w, phase),
                bench_now_ms() - t0);
    return ret;
}

/* Bytes of file pages this process has dirtied so far (Linux counts a page
 * when it turns dirty, so a page rewritten before writeback counts once);
 * 0 where /proc/self/io is missing. */
static uint64_t io_written_bytes(void)
{
    char line[128];
    unsigned long long v = 0;
    FILE *f = fopen("/proc/self/io", "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "write_bytes: %llu", &v) == 1)
            break;
    fclose(f);
    return (uint64_t)v;
}

struct phase_clock {
    double start_ms;
    uint64_t start_written;
};

static void phase_begin(const struct bench_engine *e, int phase, struct phase_clock *c)
{
    if (e->at_phase)
        e->at_phase(e->arg, phase, 0);
    c->start_written = io_written_bytes();
    c->start_ms = bench_now_ms();
}

static void phase_end(const struct bench_engine *e, int phase, const struct phase_clock *c,
                      struct bench_result *res)
{
    res->phase_ms[phase] = bench_now_ms() - c->start_ms;
    res->written_bytes += io_written_bytes() - c->start_written;
    if (e->at_phase)
        e->at_phase(e->arg, phase, 1);
}

static void progress(enum bench_workload w, const struct bench_engine *e, int phase,
                     const char *what)
{
    fprintf(stderr, "bench: %s on %s: %s: %s\n", bench_workload_name(w), e->label,
            bench_phase_name(w, phase), what);
}

static uint64_t file_bytes(const char *dir, const char *name, const char *suffix)
{
    char path[PATH_BYTES_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s%s", dir, name, suffix);
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* ---- writes ------------------------------------------------------------- */

static int insert_patients(sqlite3 *db, struct rng *r, uint8_t *ids, uint32_t n,
                           struct bench_result *res)
{
    sqlite3_stmt *q = NULL;
    int ret = -1;
    if (prepare(db, patient_insert_sql, &q, res, "prepare patient insert") != 0)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        char given[TEXT_BYTES_MAX], family[TEXT_BYTES_MAX], nhs[16], dob[16];
        char address[TEXT_BYTES_MAX], postcode[16], team[16];
        uint8_t *id = ids + (size_t)i * ID_BYTES;
        int64_t created_ms = DAY_START_MS - (int64_t)rng_below(r, 1000000000);
        rng_id(r, created_ms, id);
        rng_name(r, given, sizeof given);
        rng_name(r, family, sizeof family);
        /* 999 numbers are set aside for testing: never a real patient. */
        snprintf(nhs, sizeof nhs, "999%07" PRIu32, rng_below(r, 10000000));
        snprintf(dob, sizeof dob, "19%02" PRIu32 "-%02" PRIu32 "-%02" PRIu32,
                 30 + rng_below(r, 70), 1 + rng_below(r, 12), 1 + rng_below(r, 28));
        snprintf(address, sizeof address, "%" PRIu32 " Synthetic Row, Testbury",
                 1 + rng_below(r, 300));
        snprintf(postcode, sizeof postcode, "ZZ%" PRIu32 " %" PRIu32 "ZZ", rng_below(r, 100),
                 rng_below(r, 10));
        snprintf(team, sizeof team, "team-%" PRIu32, rng_below(r, 8));
        sqlite3_bind_blob(q, 1, id, ID_BYTES, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, nhs, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, given, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 4, family, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 5, dob, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 6, address, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 7, postcode, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 8, team, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 9, created_ms);
        if (sqlite3_step(q) != SQLITE_DONE) {
            fail(res, db, "insert patient");
            goto exit;
        }
        sqlite3_reset(q);
    }
    ret = 0;
exit:
    sqlite3_finalize(q);
    return ret;
}

/* Inserts observation number `seq` of a random patient. */
static int insert_observation(sqlite3 *db, sqlite3_stmt *q, struct rng *r, const uint8_t *ids,
                              uint32_t patients, uint32_t seq, struct bench_result *res)
{
    uint8_t id[ID_BYTES], visit[ID_BYTES];
    int on_oxygen = rng_below(r, 10) == 0;
    int64_t taken_ms = DAY_START_MS + (int64_t)seq * OBS_STEP_MS;
    rng_id(r, taken_ms, id);
    rng_id(r, taken_ms, visit);
    sqlite3_bind_blob(q, 1, id, ID_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(q, 2, ids + (size_t)rng_below(r, patients) * ID_BYTES, ID_BYTES,
                      SQLITE_STATIC);
    sqlite3_bind_blob(q, 3, visit, ID_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(q, 4, taken_ms);
    sqlite3_bind_int(q, 5, 10 + (int)rng_below(r, 20));         /* resp, /min */
    sqlite3_bind_int(q, 6, 88 + (int)rng_below(r, 13));         /* SpO2, % */
    sqlite3_bind_int(q, 7, 1 + (rng_below(r, 20) == 0));        /* SpO2 scale */
    sqlite3_bind_int(q, 8, on_oxygen);
    sqlite3_bind_int(q, 9, 90 + (int)rng_below(r, 90));         /* systolic, mmHg */
    sqlite3_bind_int(q, 10, 50 + (int)rng_below(r, 80));        /* pulse, /min */
    sqlite3_bind_int(q, 11, rng_below(r, 30) == 0);             /* not alert */
    sqlite3_bind_int(q, 12, 355 + (int)rng_below(r, 40));       /* temp, 0.1 C */
    sqlite3_bind_int(q, 13, (int)rng_below(r, 10));             /* NEWS2 */
    if (sqlite3_step(q) != SQLITE_DONE)
        return fail(res, db, "insert observation");
    sqlite3_reset(q);
    return 0;
}

/* Inserts p->observations rows, rows_per_txn per transaction. */
static int insert_observations(sqlite3 *db, struct rng *r, const uint8_t *ids,
                               const struct bench_params *p, uint32_t rows_per_txn,
                               struct bench_result *res)
{
    sqlite3_stmt *q = NULL;
    int ret = -1;
    if (prepare(db, obs_insert_sql, &q, res, "prepare observation insert") != 0)
        return -1;
    for (uint32_t done = 0; done < p->observations;) {
        if (exec(db, "BEGIN IMMEDIATE", res, "begin") != 0)
            goto exit;
        for (uint32_t i = 0; i < rows_per_txn && done < p->observations; i++, done++)
            if (insert_observation(db, q, r, ids, p->patients, done, res) != 0)
                goto exit;
        if (exec(db, "COMMIT", res, "commit") != 0)
            goto exit;
        res->transactions++;
    }
    ret = 0;
exit:
    sqlite3_finalize(q);
    if (ret != 0 && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return ret;
}

/* Steps q to the end, adding each row's digest to res->check. */
static int read_rows(sqlite3 *db, sqlite3_stmt *q, int text_cols, struct bench_result *res,
                     const char *what)
{
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        res->check += digest_row(q, text_cols);
    sqlite3_reset(q);
    return rc == SQLITE_DONE ? 0 : fail(res, db, what);
}

/* ---- the workloads ------------------------------------------------------ */

static int nurse_day(const struct bench_params *p, const struct bench_engine *e, uint8_t *ids,
                     struct bench_result *res)
{
    enum bench_workload w = BENCH_NURSE_DAY;
    struct rng r = { BENCH_SEED };
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    char what[96];
    struct phase_clock clock;
    int ret = -1;

    if (db_open(e, -STORE_CACHE_KIB, &db, res) != 0)
        return -1;
    if (exec(db, "BEGIN IMMEDIATE", res, "begin") != 0 ||
        insert_patients(db, &r, ids, p->patients, res) != 0 ||
        exec(db, "COMMIT", res, "commit patients") != 0)
        goto exit;

    snprintf(what, sizeof what, "%" PRIu32 " observations, %" PRIu32 " per transaction",
             p->observations, p->rows_per_txn);
    progress(w, e, 0, what);
    phase_begin(e, 0, &clock);
    if (insert_observations(db, &r, ids, p, p->rows_per_txn, res) != 0)
        goto exit;
    phase_end(e, 0, &clock, res);

    snprintf(what, sizeof what, "%" PRIu32 " indexed lookups", p->lookups);
    progress(w, e, 1, what);
    if (prepare(db, lookup_sql, &q, res, "prepare lookup") != 0)
        goto exit;
    phase_begin(e, 1, &clock);
    for (uint32_t i = 0; i < p->lookups; i++) {
        sqlite3_bind_blob(q, 1, ids + (size_t)rng_below(&r, p->patients) * ID_BYTES, ID_BYTES,
                          SQLITE_STATIC);
        if (read_rows(db, q, 0, res, "lookup") != 0)
            goto exit;
    }
    phase_end(e, 1, &clock, res);
    sqlite3_finalize(q);
    q = NULL;

    snprintf(what, sizeof what, "caseload of %" PRIu32 " patients", p->patients);
    progress(w, e, 2, what);
    if (prepare(db, listing_sql, &q, res, "prepare listing") != 0)
        goto exit;
    phase_begin(e, 2, &clock);
    if (read_rows(db, q, 4, res, "listing") != 0)
        goto exit;
    phase_end(e, 2, &clock, res);
    ret = 0;
exit:
    sqlite3_finalize(q);
    if (db_close_after(w, e, 2, db, res) != 0)
        ret = -1;
    return ret;
}

static int crypto_bound(const struct bench_params *p, const struct bench_engine *e,
                        uint8_t *ids, struct bench_result *res)
{
    enum bench_workload w = BENCH_CRYPTO_BOUND;
    struct rng r = { BENCH_SEED };
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    char what[96];
    struct phase_clock clock;
    int ret = -1;

    if (db_open(e, -STORE_CACHE_KIB, &db, res) != 0)
        return -1;
    if (exec(db, "BEGIN IMMEDIATE", res, "begin") != 0 ||
        insert_patients(db, &r, ids, p->patients, res) != 0 ||
        exec(db, "COMMIT", res, "commit patients") != 0)
        goto exit;
    snprintf(what, sizeof what, "%" PRIu32 " observations in one transaction",
             p->observations);
    progress(w, e, 0, what);
    phase_begin(e, 0, &clock);
    if (insert_observations(db, &r, ids, p, p->observations, res) != 0)
        goto exit;
    phase_end(e, 0, &clock, res);
    if (db_close_after(w, e, 0, db, res) != 0)
        return -1;
    db = NULL;

    /* Cold: a new connection, so neither SQLite's page cache nor the VFS
     * holds a page (the OS file cache does; see bench_store's header). */
    snprintf(what, sizeof what, "reopen with cache_size=%" PRId32 ", full scan",
             p->scan_cache_pages);
    progress(w, e, 1, what);
    phase_begin(e, 1, &clock);
    if (db_open(e, p->scan_cache_pages, &db, res) != 0 ||
        prepare(db, scan_sql, &q, res, "prepare scan") != 0 ||
        read_rows(db, q, 0, res, "scan") != 0)
        goto exit;
    phase_end(e, 1, &clock, res);
    ret = 0;
exit:
    sqlite3_finalize(q);
    if (db_close(db, res) != 0)
        ret = -1;
    return ret;
}

int bench_run(enum bench_workload w, const struct bench_params *p, const struct bench_engine *e,
              struct bench_result *res)
{
    uint8_t *ids;
    int ret;

    memset(res, 0, sizeof *res);
    res->phases = bench_phase_count(w);
    if (res->phases == 0 || p->patients == 0 || p->patients > BENCH_PATIENTS_MAX ||
        p->rows_per_txn == 0) {
        snprintf(res->errmsg, sizeof res->errmsg, "bad workload parameters");
        return -1;
    }
    ids = calloc(p->patients, ID_BYTES);
    if (!ids) {
        snprintf(res->errmsg, sizeof res->errmsg, "out of memory for %" PRIu32 " patient ids",
                 p->patients);
        return -1;
    }
    ret = w == BENCH_NURSE_DAY ? nurse_day(p, e, ids, res) : crypto_bound(p, e, ids, res);
    free(ids);
    if (ret == 0) {
        res->db_bytes = file_bytes(e->dir, BENCH_DB_NAME, "");
        res->journal_bytes = file_bytes(e->dir, BENCH_DB_NAME, "-journal") +
                             file_bytes(e->dir, BENCH_DB_NAME, "-wal");
    }
    return ret;
}

/* ---- names, parameters, figures ----------------------------------------- */

const char *bench_workload_name(enum bench_workload w)
{
    switch (w) {
    case BENCH_NURSE_DAY:
        return "nurse_day";
    case BENCH_CRYPTO_BOUND:
        return "crypto_bound";
    }
    return "unknown";
}

int bench_phase_count(enum bench_workload w)
{
    return w == BENCH_NURSE_DAY ? 3 : w == BENCH_CRYPTO_BOUND ? 2 : 0;
}

const char *bench_phase_name(enum bench_workload w, int phase)
{
    if (phase < 0 || phase >= bench_phase_count(w))
        return "?";
    return phase_names[w - 1][phase];
}

void bench_params_default(enum bench_workload w, int quick, struct bench_params *p)
{
    uint32_t div = quick ? BENCH_QUICK_DIVISOR : 1;
    memset(p, 0, sizeof *p);
    if (w == BENCH_NURSE_DAY) {
        p->patients = BENCH_NURSE_DAY_PATIENTS / div;
        p->observations = BENCH_NURSE_DAY_OBSERVATIONS / div;
        p->rows_per_txn = BENCH_NURSE_DAY_ROWS_PER_TXN;
        p->lookups = BENCH_NURSE_DAY_LOOKUPS / div;
    } else {
        p->patients = BENCH_IMPORT_PATIENTS / div;
        p->observations = BENCH_IMPORT_OBSERVATIONS / div;
        p->rows_per_txn = p->observations;
    }
    p->scan_cache_pages = BENCH_SCAN_CACHE_PAGES;
}

double bench_total_ms(const struct bench_result *r)
{
    double t = 0;
    for (int i = 0; i < r->phases; i++)
        t += r->phase_ms[i];
    return t;
}

void bench_result_print(FILE *out, enum bench_workload w, const char *engine,
                        const struct bench_result *r)
{
    const char *wn = bench_workload_name(w);
    for (int i = 0; i < r->phases; i++)
        fprintf(out, "%s_%s_%s: %.2f ms\n", wn, engine, bench_phase_name(w, i), r->phase_ms[i]);
    fprintf(out, "%s_%s_total: %.2f ms\n", wn, engine, bench_total_ms(r));
    fprintf(out, "%s_%s_db_size: %.1f KiB\n", wn, engine, (double)r->db_bytes / KIB);
    fprintf(out, "%s_%s_journal_size: %.1f KiB\n", wn, engine, (double)r->journal_bytes / KIB);
    fprintf(out, "%s_%s_file_size: %.1f KiB\n", wn, engine,
            (double)(r->db_bytes + r->journal_bytes) / KIB);
    fprintf(out, "%s_%s_storage_written: %.1f KiB\n", wn, engine,
            (double)r->written_bytes / KIB);
    fprintf(out, "%s_%s_transactions: %" PRIu64 " txn\n", wn, engine, r->transactions);
    fprintf(out, "%s_%s_read_digest: %" PRIu64 "\n", wn, engine, r->check);
}

int bench_result_parse_line(enum bench_workload w, const char *engine, const char *line,
                            struct bench_result *r)
{
    char prefix[64];
    char name[64];
    const char *rest;
    size_t plen;
    int n = snprintf(prefix, sizeof prefix, "%s_%s_", bench_workload_name(w), engine);
    if (n < 0 || (size_t)n >= sizeof prefix)
        return 0;
    plen = (size_t)n;
    if (strncmp(line, prefix, plen) != 0)
        return 0;
    rest = strchr(line + plen, ':');
    if (!rest || (size_t)(rest - (line + plen)) >= sizeof name)
        return 0;
    memcpy(name, line + plen, (size_t)(rest - (line + plen)));
    name[rest - (line + plen)] = '\0';
    rest++;
    r->phases = bench_phase_count(w);
    for (int i = 0; i < r->phases; i++) {
        if (strcmp(name, bench_phase_name(w, i)) == 0) {
            r->phase_ms[i] = strtod(rest, NULL);
            return 1;
        }
    }
    if (strcmp(name, "db_size") == 0)
        r->db_bytes = (uint64_t)(strtod(rest, NULL) * KIB + 0.5);
    else if (strcmp(name, "journal_size") == 0)
        r->journal_bytes = (uint64_t)(strtod(rest, NULL) * KIB + 0.5);
    else if (strcmp(name, "storage_written") == 0)
        r->written_bytes = (uint64_t)(strtod(rest, NULL) * KIB + 0.5);
    else if (strcmp(name, "transactions") == 0)
        r->transactions = strtoull(rest, NULL, 10);
    else if (strcmp(name, "read_digest") == 0)
        r->check = strtoull(rest, NULL, 10);
    else
        return strcmp(name, "total") == 0 || strcmp(name, "file_size") == 0;
    return 1;
}
