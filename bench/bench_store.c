/*
 * bench_store.c - the storage benchmark: one command that runs each
 * workload of bench_workload.h on plain SQLite (default VFS), on the
 * Satchel store's encrypting VFS (vfs_crypt over the POSIX HAL) and on
 * SQLCipher (bench_sqlcipher, a child process), back to back, and prints
 * times, ratios to plain SQLite, file sizes, the VFS's block counts and
 * the per-page cost of AES-256-GCM measured in the same run.
 *
 *   bench_store [--quick] [--dir DIR] [--sqlcipher PATH] [--help]
 *
 * Figures go to stdout, one per line, as `name: value unit`; progress goes
 * to stderr. A figure never changes the exit status: 0 done, 1 something
 * failed (the message says what), 2 usage error.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <mbedtls/gcm.h>
#include <mbedtls/platform_util.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_fs.h"
#include "bench_workload.h"
#include "hal.h"
#include "hal_posix.h"
#include "sat_drbg.h"
#include "vfs_crypt.h"

extern char **environ;

_Static_assert(BENCH_PAGE_BYTES == VFS_CRYPT_BLOCK_BYTES,
               "the benchmark runs every engine at the store's page size");

#define PATH_BYTES_MAX 4096
#define LINE_BYTES_MAX 256
#define VERSION_BYTES_MAX 64
#define CRYPTO_ITERATIONS 2000
#define CRYPTO_WARMUP_ITERATIONS 100
#define AAD_BYTES (VFS_CRYPT_STORE_ID_BYTES + 1 + 8) /* as vfs_crypt.c */
#define TARGET_SATCHEL_VS_PLAIN 1.10
#define ROUNDS_DEFAULT 5
#define ROUNDS_MAX 9
#define STR_(x) #x
#define STR(x) STR_(x)
#define CHILD_NAME "bench_sqlcipher"

enum engine { ENG_PLAIN, ENG_SATCHEL, ENG_SQLCIPHER, ENG_COUNT };
static const char *const engine_label[ENG_COUNT] = { "plain", "satchel", "sqlcipher" };

static const char usage_text[] =
    "usage: bench_store [--quick] [--rounds N] [--dir DIR] [--sqlcipher PATH] [--help]\n"
    "Runs Satchel's storage benchmark: each workload on plain SQLite, on the\n"
    "Satchel store's encrypting VFS and on SQLCipher, back to back, and prints\n"
    "the figures as `name: value unit` lines.\n"
    "  --quick           every workload a tenth of its size (a smoke run)\n"
    "  --rounds N        run each workload N times (1-" STR(ROUNDS_MAX) ", default "
    STR(ROUNDS_DEFAULT) "), the engines\n"
    "                    taking turns in each round; each engine's figures are\n"
    "                    from its median round, so a noisy machine moves them less\n"
    "  --dir DIR         work in a fresh directory under DIR (default $TMPDIR or\n"
    "                    /tmp); put it on the storage you want to measure\n"
    "  --sqlcipher PATH  the bench_sqlcipher program (default: next to this one)\n"
    "Exit status: 0 done (whatever the figures), 1 a run failed, 2 usage error.\n";

struct crypto_cost {
    double seal_us;  /* AES-256-GCM seal of one VFS block (a page) */
    double open_us;  /* AES-256-GCM open (authenticate + decrypt) */
    double nonce_us; /* a 12-byte nonce from CTR-DRBG, as the VFS draws per seal */
};

struct satchel_engine {
    struct hal hal;
    struct vfs_crypt *vfs;
    struct vfs_crypt_stats start[BENCH_PHASES_MAX];
    struct vfs_crypt_stats end[BENCH_PHASES_MAX];
};

struct bench {
    int quick;
    int rounds;
    int round; /* the round running now, from 1 */
    char base[PATH_BYTES_MAX];      /* our fresh temporary directory */
    char child[PATH_BYTES_MAX];     /* bench_sqlcipher */
    char sqlcipher_version[VERSION_BYTES_MAX];
    char sqlcipher_sqlite_version[VERSION_BYTES_MAX];
    struct hal hal;                 /* entropy for store ids and the DRBG */
    struct crypto_cost cost;
};

/* ---- files -------------------------------------------------------------- */


static int engine_dir(const struct bench *b, enum bench_workload w, enum engine eng, char *out,
                      size_t cap)
{
    int n = snprintf(out, cap, "%s/w%d-r%d-%s", b->base, (int)w, b->round, engine_label[eng]);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "bench_store: the path under %s is too long; pick a shorter --dir\n",
                b->base);
        return -1;
    }
    return 0;
}

/* ---- per-page crypto cost ----------------------------------------------- */

/* Times seal and open of one VFS block (a page) as vfs_crypt.c does them (same
 * cipher, nonce, tag and associated-data sizes), and the nonce draw. */
static int measure_crypto(const struct hal *h, struct crypto_cost *out)
{
    static uint8_t plain[VFS_CRYPT_BLOCK_BYTES], ct[VFS_CRYPT_BLOCK_BYTES],
        back[VFS_CRYPT_BLOCK_BYTES];
    uint8_t nonce[VFS_CRYPT_NONCE_BYTES] = { 0 };
    uint8_t tag[VFS_CRYPT_TAG_BYTES];
    uint8_t aad[AAD_BYTES] = { 0 };
    mbedtls_gcm_context gcm;
    struct sat_drbg drbg;
    double t0;
    int ret = -1;

    mbedtls_gcm_init(&gcm);
    sat_drbg_init(&drbg);
    for (size_t i = 0; i < sizeof plain; i++)
        plain[i] = (uint8_t)(i * 131u + 7u);
    if (mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, bench_test_key, 256) != 0 ||
        sat_drbg_seed(&drbg, hal_entropy_source, (void *)h, "satchel bench", SAT_ERR_IO) !=
            SAT_OK)
        goto exit;
    for (int i = 0; i < CRYPTO_WARMUP_ITERATIONS; i++)
        if (mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT, sizeof plain, nonce,
                                      sizeof nonce, aad, sizeof aad, plain, ct, sizeof tag,
                                      tag) != 0)
            goto exit;

    t0 = bench_now_ms();
    for (int i = 0; i < CRYPTO_ITERATIONS; i++) {
        aad[AAD_BYTES - 1] = (uint8_t)i; /* a different block number each time */
        if (mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT, sizeof plain, nonce,
                                      sizeof nonce, aad, sizeof aad, plain, ct, sizeof tag,
                                      tag) != 0)
            goto exit;
    }
    out->seal_us = (bench_now_ms() - t0) * 1000.0 / CRYPTO_ITERATIONS;

    t0 = bench_now_ms();
    for (int i = 0; i < CRYPTO_ITERATIONS; i++)
        if (mbedtls_gcm_auth_decrypt(&gcm, sizeof ct, nonce, sizeof nonce, aad, sizeof aad, tag,
                                     sizeof tag, ct, back) != 0)
            goto exit;
    out->open_us = (bench_now_ms() - t0) * 1000.0 / CRYPTO_ITERATIONS;
    if (memcmp(back, plain, sizeof plain) != 0)
        goto exit;

    t0 = bench_now_ms();
    for (int i = 0; i < CRYPTO_ITERATIONS; i++)
        if (sat_drbg_random(&drbg, nonce, sizeof nonce) != 0)
            goto exit;
    out->nonce_us = (bench_now_ms() - t0) * 1000.0 / CRYPTO_ITERATIONS;
    ret = 0;
exit:
    mbedtls_gcm_free(&gcm);
    sat_drbg_free(&drbg);
    mbedtls_platform_zeroize(back, sizeof back);
    if (ret != 0)
        fprintf(stderr, "bench_store: AES-256-GCM self-timing failed (Mbed TLS error)\n");
    return ret;
}

/* ---- engines ------------------------------------------------------------ */

static int plain_open(void *arg, const char *name, sqlite3 **out, char *errmsg, size_t cap)
{
    const char *dir = arg;
    char path[PATH_BYTES_MAX];
    int rc;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    rc = sqlite3_open_v2(path, out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        snprintf(errmsg, cap, "open %s: %s", path, *out ? sqlite3_errmsg(*out) : "no memory");
        sqlite3_close(*out);
        *out = NULL;
    }
    return rc;
}

static int satchel_open(void *arg, const char *name, sqlite3 **out, char *errmsg, size_t cap)
{
    struct satchel_engine *s = arg;
    int rc = sqlite3_open_v2(name, out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                             vfs_crypt_name(s->vfs));
    if (rc != SQLITE_OK) {
        snprintf(errmsg, cap, "open %s on the Satchel VFS: %s", name,
                 *out ? sqlite3_errmsg(*out) : "no memory");
        sqlite3_close(*out);
        *out = NULL;
        return rc;
    }
    sqlite3_extended_result_codes(*out, 1);
    return SQLITE_OK;
}

static void satchel_at_phase(void *arg, int phase, int ended)
{
    struct satchel_engine *s = arg;
    if (phase < 0 || phase >= BENCH_PHASES_MAX)
        return;
    vfs_crypt_get_stats(s->vfs, ended ? &s->end[phase] : &s->start[phase]);
}

static int run_plain(const struct bench *b, enum bench_workload w, const struct bench_params *p,
                     struct bench_result *r)
{
    char dir[PATH_BYTES_MAX];
    struct bench_engine e = { 0 };
    if (engine_dir(b, w, ENG_PLAIN, dir, sizeof dir) != 0)
        return -1;
    if (mkdir(dir, 0700) != 0) {
        fprintf(stderr, "bench_store: cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    fprintf(stderr, "bench_store: %s on plain SQLite %s (default VFS) in %s\n",
            bench_workload_name(w), sqlite3_libversion(), dir);
    e.label = engine_label[ENG_PLAIN];
    e.dir = dir;
    e.open = plain_open;
    e.arg = dir;
    if (bench_run(w, p, &e, r) != 0) {
        fprintf(stderr, "bench_store: %s on plain SQLite failed: %s\n", bench_workload_name(w),
                r->errmsg);
        return -1;
    }
    return 0;
}

static int run_satchel(const struct bench *b, enum bench_workload w,
                       const struct bench_params *p, struct bench_result *r,
                       struct satchel_engine *s)
{
    char dir[PATH_BYTES_MAX];
    uint8_t store_id[VFS_CRYPT_STORE_ID_BYTES];
    struct bench_engine e = { 0 };
    int ret = -1;

    memset(s, 0, sizeof *s);
    if (engine_dir(b, w, ENG_SATCHEL, dir, sizeof dir) != 0)
        return -1;
    if (hal_posix_open(&s->hal, dir) != SAT_OK) {
        fprintf(stderr, "bench_store: cannot open the POSIX HAL on %s\n", dir);
        return -1;
    }
    if (hal_entropy_fill(&b->hal, store_id, sizeof store_id) != SAT_OK ||
        vfs_crypt_register(&s->hal, bench_test_key, store_id, &s->vfs) != SAT_OK) {
        fprintf(stderr, "bench_store: cannot register the Satchel VFS (entropy or Mbed TLS)\n");
        goto exit;
    }
    fprintf(stderr, "bench_store: %s on the Satchel VFS (%s) in %s\n", bench_workload_name(w),
            vfs_crypt_name(s->vfs), dir);
    e.label = engine_label[ENG_SATCHEL];
    e.dir = dir;
    e.open = satchel_open;
    e.at_phase = satchel_at_phase;
    e.arg = s;
    if (bench_run(w, p, &e, r) != 0) {
        fprintf(stderr, "bench_store: %s on the Satchel VFS failed: %s\n",
                bench_workload_name(w), r->errmsg);
        goto exit;
    }
    ret = 0;
exit:
    vfs_crypt_unregister(s->vfs);
    s->vfs = NULL;
    hal_posix_close(&s->hal);
    mbedtls_platform_zeroize(store_id, sizeof store_id);
    return ret;
}

/* ---- the SQLCipher child ------------------------------------------------ */

typedef void (*line_fn)(void *arg, const char *line);

/* Runs argv[0] with stdout into a pipe, handing each line to fn; its
 * stderr (progress) passes through. Returns 0 if it exited with 0. */
static int run_child(char *const argv[], line_fn fn, void *arg)
{
    posix_spawn_file_actions_t fa;
    int fds[2];
    pid_t pid;
    int status = 0;
    int rc;
    FILE *f;
    char *line = NULL;
    size_t cap = 0;

    fflush(stdout);
    if (pipe(fds) != 0) {
        fprintf(stderr, "bench_store: pipe: %s\n", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        fprintf(stderr, "bench_store: cannot run %s: %s\n", argv[0], strerror(rc));
        return -1;
    }
    f = fdopen(fds[0], "r");
    if (!f) {
        close(fds[0]);
    } else {
        while (getline(&line, &cap, f) >= 0) {
            line[strcspn(line, "\r\n")] = '\0';
            fn(arg, line);
        }
        free(line);
        fclose(f);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "bench_store: waiting for %s: %s\n", argv[0], strerror(errno));
            return -1;
        }
    }
    if (!f || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench_store: %s failed (%s %d); its message is above\n", argv[0],
                WIFEXITED(status) ? "exit status" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return -1;
    }
    return 0;
}

static void version_line(void *arg, const char *line)
{
    struct bench *b = arg;
    static const char v1[] = "sqlcipher_version: ";
    static const char v2[] = "sqlcipher_sqlite_version: ";
    if (strncmp(line, v1, sizeof v1 - 1) == 0)
        snprintf(b->sqlcipher_version, sizeof b->sqlcipher_version, "%s", line + sizeof v1 - 1);
    else if (strncmp(line, v2, sizeof v2 - 1) == 0)
        snprintf(b->sqlcipher_sqlite_version, sizeof b->sqlcipher_sqlite_version, "%s",
                 line + sizeof v2 - 1);
}

struct parse_ctx {
    enum bench_workload w;
    struct bench_result *r;
    int figures;
};

static void result_line(void *arg, const char *line)
{
    struct parse_ctx *c = arg;
    c->figures += bench_result_parse_line(c->w, engine_label[ENG_SQLCIPHER], line, c->r);
}

static int run_sqlcipher(const struct bench *b, enum bench_workload w, struct bench_result *r)
{
    char dir[PATH_BYTES_MAX];
    char wnum[8];
    char *argv[8];
    int n = 0;
    struct parse_ctx c = { w, r, 0 };

    memset(r, 0, sizeof *r);
    r->phases = bench_phase_count(w);
    if (engine_dir(b, w, ENG_SQLCIPHER, dir, sizeof dir) != 0)
        return -1;
    snprintf(wnum, sizeof wnum, "%d", (int)w);
    argv[n++] = (char *)b->child;
    argv[n++] = "--workload";
    argv[n++] = wnum;
    argv[n++] = "--dir";
    argv[n++] = dir;
    if (b->quick)
        argv[n++] = "--quick";
    argv[n] = NULL;
    fprintf(stderr, "bench_store: %s on SQLCipher %s (%s, own process) in %s\n",
            bench_workload_name(w), b->sqlcipher_version, CHILD_NAME, dir);
    if (run_child(argv, result_line, &c) != 0)
        return -1;
    /* phases + total, 3 sizes, storage written, transactions, digest */
    if (c.figures < r->phases + 7) {
        fprintf(stderr, "bench_store: %s printed %d of its %d figures; rebuild it with this "
                        "bench_store\n",
                b->child, c.figures, r->phases + 7);
        return -1;
    }
    return 0;
}

/* Finds bench_sqlcipher next to our own binary. */
static int find_child(struct bench *b)
{
    char self[PATH_BYTES_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    char *slash;
    if (n <= 0) {
        fprintf(stderr, "bench_store: cannot read /proc/self/exe; pass --sqlcipher PATH\n");
        return -1;
    }
    self[n] = '\0';
    slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    if (snprintf(b->child, sizeof b->child, "%s/%s", slash ? self : ".", CHILD_NAME) >=
        (int)sizeof b->child)
        return -1;
    return 0;
}

/* ---- figures ------------------------------------------------------------ */

static double ratio(double x, double base)
{
    return base > 0 ? x / base : 0.0;
}

static void print_header(const struct bench *b)
{
    struct bench_params p1, p2;
    bench_params_default(BENCH_NURSE_DAY, b->quick, &p1);
    bench_params_default(BENCH_CRYPTO_BOUND, b->quick, &p2);
    printf("Satchel storage benchmark%s. The same SQL (bench/bench_workload.c: the store's\n"
           "patient and observation tables, synthetic data from splitmix64 seed 0x%016llx)\n"
           "runs back to back on plain SQLite %s (default unix VFS), on the Satchel store's\n"
           "VFS (AES-256-GCM per %d-byte block, fresh nonce from CTR-DRBG, over the POSIX HAL)\n"
           "and on SQLCipher %s (built on SQLite %s; AES-256-CBC + HMAC per page; raw key,\n"
           "so no key derivation is timed; cipher_page_size=%d; its own process). All use\n"
           "the store's settings: locking_mode=EXCLUSIVE, page_size=%d, journal_mode=WAL\n"
           "(wal_autocheckpoint=1000), synchronous=FULL, temp_store=MEMORY, mmap_size=0,\n"
           "cache_size=-2560. Workload 1, nurse day: %" PRIu32 " observation\n"
           "inserts, %" PRIu32 " per durable transaction; %" PRIu32 " indexed lookups (a random\n"
           "patient's %d latest observations); a listing of %" PRIu32 " patients with counts\n"
           "and latest NEWS2. Workload 2, crypto-bound: %" PRIu32 " observations imported in one\n"
           "transaction; then the database closed, reopened with cache_size=%" PRId32 " pages\n"
           "and scanned in full (cold for SQLite and the VFS; the OS file cache stays warm).\n"
           "Closing a database (untimed) checkpoints and deletes its WAL.\n"
           "Times are wall clock (CLOCK_MONOTONIC) in ms; sizes are database + journal +\n"
           "WAL after the run; storage_written is the file pages dirtied in the timed phases\n"
           "(what the syncs must write; Linux /proc/self/io); ratios are engine / plain (below\n"
           "1.00x is faster); crypto_est is the Satchel VFS's block counts times the per-block\n"
           "costs measured first (a checkpoint copies sealed WAL pages into the database: it\n"
           "neither opens nor seals them). Each workload runs %d round(s), the\n"
           "engines taking turns in each; an engine's figures come from its median round\n"
           "by total time (_total_min and _total_max give the spread). Files under %s.\n\n",
           b->quick ? " (--quick: every size divided by 10)" : "",
           (unsigned long long)BENCH_SEED, sqlite3_libversion(), VFS_CRYPT_BLOCK_BYTES,
           b->sqlcipher_version, b->sqlcipher_sqlite_version, BENCH_PAGE_BYTES, BENCH_PAGE_BYTES,
           p1.observations, p1.rows_per_txn, p1.lookups, BENCH_LOOKUP_ROWS, p1.patients, p2.observations, p2.scan_cache_pages, b->rounds, b->base);
}

static void print_crypto(const struct crypto_cost *c)
{
    printf("block_bytes: %d bytes\n", VFS_CRYPT_BLOCK_BYTES);
    printf("gcm_seal_block: %.2f us\n", c->seal_us);
    printf("gcm_open_block: %.2f us\n", c->open_us);
    printf("ctr_drbg_nonce_12b: %.2f us\n", c->nonce_us);
    printf("gcm_seal_rate: %.0f MiB/s\n",
           c->seal_us > 0 ? (VFS_CRYPT_BLOCK_BYTES / (1024.0 * 1024.0)) / (c->seal_us / 1e6) : 0);
    printf("gcm_open_rate: %.0f MiB/s\n",
           c->open_us > 0 ? (VFS_CRYPT_BLOCK_BYTES / (1024.0 * 1024.0)) / (c->open_us / 1e6) : 0);
    printf("\n");
}

static double crypto_ms(const struct crypto_cost *c, uint64_t sealed, uint64_t opened)
{
    return ((double)sealed * (c->seal_us + c->nonce_us) + (double)opened * c->open_us) / 1000.0;
}

/* Returns 0 if the three engines read back the same rows, else -1. */
static int print_workload(const struct bench *b, enum bench_workload w,
                          const struct bench_params *p, const struct bench_result r[ENG_COUNT],
                          const struct satchel_engine *s)
{
    const char *wn = bench_workload_name(w);
    const struct bench_result *plain = &r[ENG_PLAIN], *sat = &r[ENG_SATCHEL],
                              *sc = &r[ENG_SQLCIPHER];
    uint64_t sealed_all = 0, opened_all = 0;
    double crypto_all = 0;
    int match = plain->check == sat->check && plain->check == sc->check;

    for (int e = 0; e < ENG_COUNT; e++)
        bench_result_print(stdout, w, engine_label[e], &r[e]);

    for (int i = 0; i <= plain->phases; i++) {
        const char *name = i < plain->phases ? bench_phase_name(w, i) : "total";
        double base = i < plain->phases ? plain->phase_ms[i] : bench_total_ms(plain);
        double vs = i < plain->phases ? sat->phase_ms[i] : bench_total_ms(sat);
        double vc = i < plain->phases ? sc->phase_ms[i] : bench_total_ms(sc);
        printf("%s_%s_satchel_vs_plain: %.2fx\n", wn, name, ratio(vs, base));
        printf("%s_%s_sqlcipher_vs_plain: %.2fx\n", wn, name, ratio(vc, base));
    }
    printf("%s_total_satchel_minus_plain: %.2f ms\n", wn, bench_total_ms(sat) - bench_total_ms(plain));
    printf("%s_file_size_satchel_vs_plain: %.3fx\n", wn,
           ratio((double)(sat->db_bytes + sat->journal_bytes),
                 (double)(plain->db_bytes + plain->journal_bytes)));
    printf("%s_file_size_sqlcipher_vs_plain: %.3fx\n", wn,
           ratio((double)(sc->db_bytes + sc->journal_bytes),
                 (double)(plain->db_bytes + plain->journal_bytes)));
    printf("%s_storage_written_satchel_vs_plain: %.2fx\n", wn,
           ratio((double)sat->written_bytes, (double)plain->written_bytes));
    printf("%s_storage_written_sqlcipher_vs_plain: %.2fx\n", wn,
           ratio((double)sc->written_bytes, (double)plain->written_bytes));

    for (int i = 0; i < sat->phases; i++) {
        const char *name = bench_phase_name(w, i);
        uint64_t sealed = s->end[i].blocks_sealed - s->start[i].blocks_sealed;
        uint64_t opened = s->end[i].blocks_opened - s->start[i].blocks_opened;
        double cms = crypto_ms(&b->cost, sealed, opened);
        sealed_all += sealed;
        opened_all += opened;
        crypto_all += cms;
        printf("%s_satchel_%s_blocks_sealed: %" PRIu64 " blocks\n", wn, name, sealed);
        printf("%s_satchel_%s_blocks_opened: %" PRIu64 " blocks\n", wn, name, opened);
        printf("%s_satchel_%s_crypto_est: %.2f ms\n", wn, name, cms);
        if (i == 0 && sat->transactions > 0) {
            printf("%s_satchel_blocks_sealed_per_txn: %.1f blocks\n", wn,
                   (double)sealed / (double)sat->transactions);
            printf("%s_satchel_blocks_opened_per_txn: %.1f blocks\n", wn,
                   (double)opened / (double)sat->transactions);
        }
        if (w == BENCH_NURSE_DAY && i == 1 && p->lookups > 0)
            printf("%s_satchel_blocks_opened_per_lookup: %.2f blocks\n", wn,
                   (double)opened / (double)p->lookups);
    }
    printf("%s_satchel_blocks_sealed: %" PRIu64 " blocks\n", wn, sealed_all);
    printf("%s_satchel_blocks_opened: %" PRIu64 " blocks\n", wn, opened_all);
    printf("%s_satchel_crypto_est: %.2f ms\n", wn, crypto_all);
    printf("%s_satchel_crypto_share: %.1f %%\n", wn,
           100.0 * ratio(crypto_all, bench_total_ms(sat)));
    printf("%s_results_match: %s\n", wn, match ? "yes" : "no");
    if (w == BENCH_NURSE_DAY) {
        printf("target_nurse_day_satchel_le_%.2fx_plain: %s\n", TARGET_SATCHEL_VS_PLAIN,
               bench_total_ms(sat) <= TARGET_SATCHEL_VS_PLAIN * bench_total_ms(plain) ? "yes"
                                                                                       : "no");
        printf("target_nurse_day_satchel_le_sqlcipher: %s\n",
               bench_total_ms(sat) <= bench_total_ms(sc) ? "yes" : "no");
    }
    printf("\n");
    fflush(stdout);
    if (!match) {
        fprintf(stderr, "bench_store: %s: the engines read back different rows (digests %" PRIu64
                        " / %" PRIu64 " / %" PRIu64 "); the comparison is void\n",
                wn, plain->check, sat->check, sc->check);
        return -1;
    }
    return 0;
}

/* ---- main --------------------------------------------------------------- */

/* The round whose total time is the median of engine eng's rounds. */
static int median_round(const struct bench_result (*r)[ENG_COUNT], int rounds, int eng)
{
    int order[ROUNDS_MAX];
    for (int i = 0; i < rounds; i++) {
        int j = i;
        for (; j > 0 && bench_total_ms(&r[order[j - 1]][eng]) > bench_total_ms(&r[i][eng]); j--)
            order[j] = order[j - 1];
        order[j] = i;
    }
    return order[rounds / 2];
}

static void print_spread(enum bench_workload w, const struct bench_result (*r)[ENG_COUNT],
                         int rounds)
{
    for (int e = 0; e < ENG_COUNT; e++) {
        double lo = bench_total_ms(&r[0][e]), hi = lo;
        for (int i = 1; i < rounds; i++) {
            double t = bench_total_ms(&r[i][e]);
            lo = t < lo ? t : lo;
            hi = t > hi ? t : hi;
        }
        printf("%s_%s_total_min: %.2f ms\n", bench_workload_name(w), engine_label[e], lo);
        printf("%s_%s_total_max: %.2f ms\n", bench_workload_name(w), engine_label[e], hi);
    }
}

static int run_workload(struct bench *b, enum bench_workload w)
{
    static struct bench_result r[ROUNDS_MAX][ENG_COUNT];
    static struct satchel_engine s[ROUNDS_MAX];
    struct bench_result med[ENG_COUNT];
    int med_round[ENG_COUNT];
    struct bench_params p;
    bench_params_default(w, b->quick, &p);
    for (b->round = 1; b->round <= b->rounds; b->round++) {
        int i = b->round - 1;
        fprintf(stderr, "bench_store: %s, round %d of %d\n", bench_workload_name(w), b->round,
                b->rounds);
        if (run_plain(b, w, &p, &r[i][ENG_PLAIN]) != 0 ||
            run_satchel(b, w, &p, &r[i][ENG_SATCHEL], &s[i]) != 0 ||
            run_sqlcipher(b, w, &r[i][ENG_SQLCIPHER]) != 0)
            return -1;
    }
    for (int e = 0; e < ENG_COUNT; e++) {
        med_round[e] = median_round(r, b->rounds, e);
        med[e] = r[med_round[e]][e];
    }
    print_spread(w, r, b->rounds);
    return print_workload(b, w, &p, med, &s[med_round[ENG_SATCHEL]]);
}

int main(int argc, char **argv)
{
    static struct bench b;
    const char *parent = NULL;
    int hal_open = 0;
    int ret = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            b.quick = 1;
        } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            char *end = NULL;
            long n = strtol(argv[++i], &end, 10);
            if (!end || *end != '\0' || n < 1 || n > ROUNDS_MAX) {
                fprintf(stderr, "bench_store: --rounds takes a number from 1 to %d, not '%s'\n",
                        ROUNDS_MAX, argv[i]);
                return 2;
            }
            b.rounds = (int)n;
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            parent = argv[++i];
        } else if (strcmp(argv[i], "--sqlcipher") == 0 && i + 1 < argc) {
            snprintf(b.child, sizeof b.child, "%s", argv[++i]);
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else {
            fprintf(stderr, "bench_store: unknown or incomplete option '%s'\n%s", argv[i],
                    usage_text);
            return 2;
        }
    }
    if (b.rounds == 0)
        b.rounds = ROUNDS_DEFAULT;
    if (!parent)
        parent = getenv("TMPDIR") && getenv("TMPDIR")[0] ? getenv("TMPDIR") : "/tmp";
    if (b.child[0] == '\0' && find_child(&b) != 0)
        return 1;
    if (access(b.child, X_OK) != 0) {
        fprintf(stderr, "bench_store: %s not found or not executable; build the bench "
                        "targets or pass --sqlcipher PATH\n",
                b.child);
        return 1;
    }
    if (snprintf(b.base, sizeof b.base, "%s/satchel-bench-XXXXXX", parent) >= (int)sizeof b.base ||
        !mkdtemp(b.base)) {
        fprintf(stderr, "bench_store: cannot make a directory under %s: %s; check --dir\n",
                parent, strerror(errno));
        return 1;
    }

    {
        char *vargv[] = { b.child, "--version", NULL };
        if (run_child(vargv, version_line, &b) != 0 || b.sqlcipher_version[0] == '\0') {
            fprintf(stderr, "bench_store: %s did not report an SQLCipher version\n", b.child);
            goto exit;
        }
    }
    /* The HAL on our directory: entropy for store ids and the DRBG. */
    if (hal_posix_open(&b.hal, b.base) != SAT_OK) {
        fprintf(stderr, "bench_store: cannot open the POSIX HAL on %s\n", b.base);
        goto exit;
    }
    hal_open = 1;
    fprintf(stderr, "bench_store: timing AES-256-GCM on %d-byte blocks (%d iterations)\n",
            VFS_CRYPT_BLOCK_BYTES, CRYPTO_ITERATIONS);
    if (measure_crypto(&b.hal, &b.cost) != 0)
        goto exit;

    print_header(&b);
    print_crypto(&b.cost);
    fflush(stdout);
    if (run_workload(&b, BENCH_NURSE_DAY) != 0 || run_workload(&b, BENCH_CRYPTO_BOUND) != 0)
        goto exit;
    ret = 0;
exit:
    if (hal_open)
        hal_posix_close(&b.hal);
    if (bench_rm_tree(b.base) != 0) {
        fprintf(stderr, "bench_store: could not remove %s entirely; remove it by hand\n", b.base);
        ret = 1;
    }
    fflush(stdout);
    return ret;
}
