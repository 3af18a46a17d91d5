/*
 * bench_workload.h - the storage benchmark's two workloads, written once
 * against a plain `sqlite3 *` so that every engine runs the same SQL.
 *
 * Compiled into bench_store (Debian's SQLite: default VFS and the Satchel
 * VFS) and into bench_sqlcipher (SQLCipher, in its own process because it
 * exports SQLite's symbols); see bench_sqlite.h.
 *
 * Both workloads use the store's patient and observation tables (as in
 * firmware/store/store_schema.c) and the store's settings: page_size=4096 (set
 * before the tables are made), journal_mode=WAL with locking_mode=EXCLUSIVE,
 * synchronous=FULL,
 * temp_store=MEMORY, mmap_size=0.
 *
 *  1. Nurse day (durable), cache_size=-2560: `patients` patients (set-up,
 *     not timed); phase "insert": `observations` inserts, `rows_per_txn` per
 *     BEGIN IMMEDIATE ... COMMIT; phase "lookup": `lookups` statements each
 *     reading a random patient's 5 latest observations through the index on
 *     observation(patient_id, taken_ms); phase "listing": the caseload, each
 *     patient with their observation count and latest NEWS2 score.
 *  2. Crypto-bound, cache_size=-2560: `patients` patients (set-up, not
 *     timed); phase "import": `observations` inserts in one transaction;
 *     phase "cold_scan": the database closed, reopened with
 *     cache_size=`scan_cache_pages` and every observation read (a full
 *     table scan; the reopen is inside the timing).
 *
 * Data is synthetic, from splitmix64 seeded with BENCH_SEED: the same rows,
 * in the same order, on every engine and every run. No real person.
 *
 * Every database lives in one file, BENCH_DB_NAME, plus its write-ahead log or
 * journal, in the engine's directory; a directory is used for one run only.
 */
#ifndef SATCHEL_BENCH_WORKLOAD_H
#define SATCHEL_BENCH_WORKLOAD_H

#include <stdint.h>
#include <stdio.h>

#include "bench_sqlite.h"

#define BENCH_SEED 0x5A7C4E1B3E7C4D01ULL
#define BENCH_DB_NAME "bench.db"
#define BENCH_KEY_BYTES 32
/* The store's page size (= VFS_CRYPT_BLOCK_BYTES, checked in bench_store.c),
 * for every engine. */
#define BENCH_PAGE_BYTES 1024
#define BENCH_PHASES_MAX 3
#define BENCH_ERRMSG_BYTES 256

/* Full sizes; --quick divides each count by BENCH_QUICK_DIVISOR. */
#define BENCH_NURSE_DAY_PATIENTS 200
#define BENCH_NURSE_DAY_OBSERVATIONS 10000
#define BENCH_NURSE_DAY_ROWS_PER_TXN 10
#define BENCH_NURSE_DAY_LOOKUPS 1000
#define BENCH_LOOKUP_ROWS 5 /* latest observations per lookup */
#define BENCH_NURSE_DAY_CACHE_KIB 2048
#define BENCH_IMPORT_PATIENTS 1000
#define BENCH_IMPORT_OBSERVATIONS 100000
#define BENCH_SCAN_CACHE_PAGES 50
#define BENCH_QUICK_DIVISOR 10
#define BENCH_PATIENTS_MAX 100000

/* The fixed, public test key both encrypting engines use. */
extern const uint8_t bench_test_key[BENCH_KEY_BYTES];

enum bench_workload { BENCH_NURSE_DAY = 1, BENCH_CRYPTO_BOUND = 2 };

struct bench_params {
    uint32_t patients;
    uint32_t observations;
    uint32_t rows_per_txn;     /* nurse day only; the import is one transaction */
    uint32_t lookups;          /* nurse day only */
    int32_t scan_cache_pages;  /* crypto-bound only */
};

/* How the caller opens a database. The workload only ever calls `open` and
 * then sets the common PRAGMAs itself. */
struct bench_engine {
    const char *label; /* "plain", "satchel", "sqlcipher": names figures */
    const char *dir;   /* where the engine's files land; sizes are read there */
    /* Opens, creating if needed, database `name` (a bare file name: the
     * engine decides where it goes) with the engine's own settings applied
     * (VFS, key). Returns SQLITE_OK with *out set, or an SQLite code with
     * *out NULL and the reason in errmsg (errmsg_bytes long). */
    int (*open)(void *arg, const char *name, sqlite3 **out, char *errmsg, size_t errmsg_bytes);
    /* Optional (may be NULL): called just before a phase's clock starts
     * (ended 0) and just after it stops (ended 1), e.g. to read counters. */
    void (*at_phase)(void *arg, int phase, int ended);
    void *arg;
};

struct bench_result {
    int phases;                         /* bench_phase_count(workload) */
    double phase_ms[BENCH_PHASES_MAX];  /* wall-clock time of each phase */
    uint64_t db_bytes;                  /* database file after the run */
    uint64_t journal_bytes;             /* its WAL or journal */
    uint64_t written_bytes;             /* file pages dirtied in the timed phases
                                           (Linux /proc/self/io; 0 elsewhere) */
    uint64_t transactions;              /* write transactions in phase 0 */
    uint64_t check;                     /* order-free digest of all rows read */
    char errmsg[BENCH_ERRMSG_BYTES];    /* why bench_run failed */
};

/* "nurse_day" / "crypto_bound"; NULL for an unknown workload. */
const char *bench_workload_name(enum bench_workload w);
/* Number of timed phases of w, and their names ("insert", "lookup",
 * "listing" / "import", "cold_scan"). */
int bench_phase_count(enum bench_workload w);
const char *bench_phase_name(enum bench_workload w, int phase);

/* The sizes of workload w, full or divided by BENCH_QUICK_DIVISOR. */
void bench_params_default(enum bench_workload w, int quick, struct bench_params *p);

/* Runs workload w on engine e into a fresh directory. Returns 0, or -1 with
 * res->errmsg naming the step that failed. Progress lines go to stderr. */
int bench_run(enum bench_workload w, const struct bench_params *p, const struct bench_engine *e,
              struct bench_result *res);

/* Sum of the phase times. */
double bench_total_ms(const struct bench_result *r);

/* Prints r as `<workload>_<engine>_<figure>: value unit` lines: each phase
 * and the total (ms), database, journal and file size, storage written
 * (KiB), transactions and the read digest. */
void bench_result_print(FILE *out, enum bench_workload w, const char *engine,
                        const struct bench_result *r);

/* Reads back one line bench_result_print wrote for (w, engine) into r.
 * Returns 1 if the line was one of those figures, else 0 (r untouched). */
int bench_result_parse_line(enum bench_workload w, const char *engine, const char *line,
                            struct bench_result *r);

/* CLOCK_MONOTONIC in milliseconds. */
double bench_now_ms(void);

#endif
