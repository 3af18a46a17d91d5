/*
 * bench_sqlcipher.c - runs one storage-benchmark workload on SQLCipher.
 *
 * SQLCipher exports the same symbols as SQLite, so it cannot share a process
 * with bench_store; bench_store runs this program and reads its figures.
 * The key is raw (x'<64 hex>'), so no key derivation is timed, and
 * cipher_page_size=BENCH_PAGE_BYTES gives SQLCipher the store's page size.
 *
 *   bench_sqlcipher --workload 1|2 --dir DIR [--quick]
 *   bench_sqlcipher --version | --help
 *
 * Figures go to stdout as `name: value unit` lines (bench_result_print),
 * progress to stderr. Exit status: 0 done, 1 the run failed, 2 usage error.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench_sqlite.h"
#include "bench_workload.h"
#include "sat_hex.h"

#define PATH_BYTES_MAX 4096
#define SQLITE_MAGIC "SQLite format 3"

static const char usage_text[] =
    "usage: bench_sqlcipher --workload 1|2 --dir DIR [--quick]\n"
    "       bench_sqlcipher --version | --help\n"
    "Runs one storage-benchmark workload on SQLCipher (raw key, the store's page size)\n"
    "in DIR and prints its figures; bench_store runs it for you.\n";

/* "x'<64 hex>'" PRAGMA text for the test key. */
static void key_pragma(char *out, size_t cap)
{
    char hex[SAT_HEX_BYTES(BENCH_KEY_BYTES)];
    sat_hex_encode(bench_test_key, BENCH_KEY_BYTES, hex);
    snprintf(out, cap, "PRAGMA key = \"x'%s'\"; PRAGMA cipher_page_size = %d;", hex,
             BENCH_PAGE_BYTES);
}

/* Fetches the one text value a query answers into out ("" if none). */
static int query_text(sqlite3 *db, const char *sql, char *out, size_t cap)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
    out[0] = '\0';
    if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(q, 0);
        snprintf(out, cap, "%s", t ? (const char *)t : "");
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    return rc;
}

static int sc_open(void *arg, const char *name, sqlite3 **out, char *errmsg, size_t cap)
{
    const char *dir = arg;
    char path[PATH_BYTES_MAX];
    char sql[160];
    char version[64];
    sqlite3 *db = NULL;
    int rc;

    *out = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK) {
        key_pragma(sql, sizeof sql);
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK)
        rc = query_text(db, "PRAGMA cipher_version", version, sizeof version);
    if (rc != SQLITE_OK) {
        snprintf(errmsg, cap, "open %s on SQLCipher: %s", path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return rc;
    }
    if (version[0] == '\0') {
        snprintf(errmsg, cap, "the SQLite library linked is not SQLCipher (no cipher_version)");
        sqlite3_close(db);
        return SQLITE_ERROR;
    }
    *out = db;
    return SQLITE_OK;
}

/* The key must have taken: an SQLCipher file never starts with the magic. */
static int check_encrypted(const char *dir)
{
    char path[PATH_BYTES_MAX];
    char head[sizeof SQLITE_MAGIC] = { 0 };
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, BENCH_DB_NAME);
    f = fopen(path, "rb");
    if (!f || fread(head, 1, sizeof head, f) != sizeof head) {
        fprintf(stderr, "bench_sqlcipher: cannot read %s back; check the directory\n", path);
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    if (memcmp(head, SQLITE_MAGIC, sizeof head) == 0) {
        fprintf(stderr, "bench_sqlcipher: %s is not encrypted; the key was ignored\n", path);
        return -1;
    }
    return 0;
}

static int print_version(void)
{
    sqlite3 *db = NULL;
    char version[64];
    int rc = sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = query_text(db, "PRAGMA cipher_version", version, sizeof version);
    sqlite3_close(db);
    if (rc != SQLITE_OK || version[0] == '\0') {
        fprintf(stderr, "bench_sqlcipher: the SQLite library linked is not SQLCipher\n");
        return 1;
    }
    printf("sqlcipher_version: %s\n", version);
    printf("sqlcipher_sqlite_version: %s\n", sqlite3_libversion());
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    int workload = 0;
    int quick = 0;
    struct bench_params p;
    struct bench_result res;
    struct bench_engine e;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--workload") == 0 && i + 1 < argc) {
            workload = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--version") == 0) {
            return print_version();
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else {
            fprintf(stderr, "bench_sqlcipher: unknown or incomplete option '%s'\n%s", argv[i],
                    usage_text);
            return 2;
        }
    }
    if ((workload != BENCH_NURSE_DAY && workload != BENCH_CRYPTO_BOUND) || !dir) {
        fprintf(stderr, "bench_sqlcipher: --workload 1|2 and --dir DIR are required\n%s",
                usage_text);
        return 2;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "bench_sqlcipher: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }

    bench_params_default((enum bench_workload)workload, quick, &p);
    memset(&e, 0, sizeof e);
    e.label = "sqlcipher";
    e.dir = dir;
    e.open = sc_open;
    e.arg = (void *)dir;
    if (bench_run((enum bench_workload)workload, &p, &e, &res) != 0) {
        fprintf(stderr, "bench_sqlcipher: %s workload failed: %s\n",
                bench_workload_name((enum bench_workload)workload), res.errmsg);
        return 1;
    }
    if (check_encrypted(dir) != 0)
        return 1;
    bench_result_print(stdout, (enum bench_workload)workload, "sqlcipher", &res);
    return fflush(stdout) == 0 ? 0 : 1;
}
