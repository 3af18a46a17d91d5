/* test_sim_hal.c - the simulated HAL against hal.h and sim_hal.h: the same
 * storage contract as the POSIX HAL, plus power cuts, determinism from the
 * seed, virtual clocks (skew and drift), the battery, the in-memory key
 * store, and the virtual network (latency, refusals, resets, back-pressure,
 * bandwidth, determinism of jitter and reset draws). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_hal.h"

#define WALL_START_MS 1700000000000LL
#define SEEDS_SWEEP 200u
#define S SIM_FLASH_SECTOR_BYTES

struct fixture {
    struct sim_hal *sim;
    const struct hal *h;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f || sim_hal_new(&f->sim, 1, WALL_START_MS) != SAT_OK)
        return -1;
    f->h = sim_hal_hal(f->sim);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    sim_hal_free(f->sim);
    free(f);
    return 0;
}

/* A deterministic byte pattern independent of the simulator's generator. */
static void pattern(uint8_t *buf, size_t len, uint32_t tag)
{
    uint32_t x = tag * 2654435761u + 1u;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
}

/* ---- the storage contract (as test_hal_posix.c) -------------------------- */

struct names {
    int count;
    int saw_a;
    int saw_b;
};

static int collect(void *arg, const char *name)
{
    struct names *n = arg;
    n->count++;
    n->saw_a |= strcmp(name, "a.db") == 0;
    n->saw_b |= strcmp(name, "b-journal") == 0;
    return 0;
}

static int stop_at_first(void *arg, const char *name)
{
    (void)name;
    (*(int *)arg)++;
    return 42;
}

static void test_storage_write_sync_read_list_delete(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = fx->h;
    hal_file *f = NULL;
    hal_file *g = NULL;
    uint8_t buf[100];
    size_t got = 0;
    uint64_t size = 0;
    struct names names = { 0 };
    int calls = 0;

    assert_int_equal(hal_storage_open(h, "a.db", 0, &f), SAT_ERR_NOT_FOUND);
    assert_int_equal(hal_storage_open(h, "a.db", HAL_OPEN_CREATE, &f), SAT_OK);
    assert_int_equal(hal_storage_write(h, f, 10, "hello", 5), SAT_OK);
    assert_int_equal(hal_storage_sync(h, f), SAT_OK);
    assert_int_equal(hal_storage_size(h, f, &size), SAT_OK);
    assert_int_equal(size, 15);
    /* A gap reads back as zeros; reads stop at the end. */
    assert_int_equal(hal_storage_read(h, f, 0, buf, sizeof buf, &got), SAT_OK);
    assert_int_equal(got, 15);
    assert_memory_equal(buf, "\0\0\0\0\0\0\0\0\0\0hello", 15);
    assert_int_equal(hal_storage_read(h, f, 15, buf, sizeof buf, &got), SAT_OK);
    assert_int_equal(got, 0);
    assert_int_equal(hal_storage_read(h, f, 1000, buf, sizeof buf, &got), SAT_OK);
    assert_int_equal(got, 0);
    assert_int_equal(hal_storage_read_full(h, f, 12, buf, 4), SAT_ERR_IO);
    assert_int_equal(hal_storage_truncate(h, f, 12), SAT_OK);
    assert_int_equal(hal_storage_size(h, f, &size), SAT_OK);
    assert_int_equal(size, 12);
    /* Truncating upwards zero-fills too. */
    assert_int_equal(hal_storage_truncate(h, f, 20), SAT_OK);
    assert_int_equal(hal_storage_read(h, f, 10, buf, sizeof buf, &got), SAT_OK);
    assert_int_equal(got, 10);
    assert_memory_equal(buf, "he\0\0\0\0\0\0\0\0", 10);
    assert_int_equal(hal_storage_truncate(h, f, 12), SAT_OK);
    assert_int_equal(hal_storage_sync(h, f), SAT_OK);
    assert_int_equal(hal_storage_close(h, f), SAT_OK);

    /* Reopen: the synced data is there. */
    assert_int_equal(hal_storage_open(h, "a.db", 0, &f), SAT_OK);
    assert_int_equal(hal_storage_read_full(h, f, 10, buf, 2), SAT_OK);
    assert_memory_equal(buf, "he", 2);
    assert_int_equal(hal_storage_close(h, f), SAT_OK);

    assert_int_equal(hal_storage_open(h, "b-journal", HAL_OPEN_CREATE, &g), SAT_OK);
    assert_int_equal(hal_storage_open(h, "b-journal", HAL_OPEN_CREATE | HAL_OPEN_EXCLUSIVE, &f),
                     SAT_ERR_EXISTS);
    assert_int_equal(hal_storage_close(h, g), SAT_OK);
    assert_int_equal(hal_storage_open(h, "c", HAL_OPEN_CREATE | HAL_OPEN_EXCLUSIVE, &g), SAT_OK);
    assert_int_equal(hal_storage_close(h, g), SAT_OK);
    assert_int_equal(hal_storage_delete(h, "c"), SAT_OK);

    assert_int_equal(hal_storage_list(h, collect, &names), SAT_OK);
    assert_int_equal(names.count, 2);
    assert_true(names.saw_a && names.saw_b);
    assert_int_equal(hal_storage_list(h, stop_at_first, &calls), 42);
    assert_int_equal(calls, 1);

    assert_int_equal(hal_storage_delete(h, "a.db"), SAT_OK);
    assert_int_equal(hal_storage_delete(h, "a.db"), SAT_ERR_NOT_FOUND);
    memset(&names, 0, sizeof names);
    assert_int_equal(hal_storage_list(h, collect, &names), SAT_OK);
    assert_int_equal(names.count, 1);
    assert_false(names.saw_a);
}

static void test_storage_rejects_bad_names(void **state)
{
    struct fixture *fx = *state;
    hal_file *f = NULL;
    char long_name[HAL_FILE_NAME_BYTES_MAX + 2];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(hal_storage_open(fx->h, "../escape", HAL_OPEN_CREATE, &f), SAT_ERR_INVALID);
    assert_int_equal(hal_storage_open(fx->h, "", HAL_OPEN_CREATE, &f), SAT_ERR_INVALID);
    assert_int_equal(hal_storage_open(fx->h, long_name, HAL_OPEN_CREATE, &f), SAT_ERR_INVALID);
    assert_int_equal(hal_storage_delete(fx->h, "a/b"), SAT_ERR_INVALID);
    long_name[HAL_FILE_NAME_BYTES_MAX] = '\0'; /* exactly the limit is fine */
    assert_int_equal(hal_storage_open(fx->h, long_name, HAL_OPEN_CREATE, &f), SAT_OK);
    assert_int_equal(hal_storage_close(fx->h, f), SAT_OK);
}

static void test_storage_handles_share_a_file(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = fx->h;
    hal_file *f = NULL;
    hal_file *g = NULL;
    uint8_t buf[8];
    uint64_t size = 0;

    assert_int_equal(hal_storage_open(h, "a.db", HAL_OPEN_CREATE, &f), SAT_OK);
    assert_int_equal(hal_storage_open(h, "a.db", 0, &g), SAT_OK);
    assert_int_equal(hal_storage_write(h, f, 0, "abcd", 4), SAT_OK);
    assert_int_equal(hal_storage_read_full(h, g, 0, buf, 4), SAT_OK);
    assert_memory_equal(buf, "abcd", 4);
    /* A sync through either handle makes the file durable. */
    assert_int_equal(hal_storage_sync(h, g), SAT_OK);
    sim_hal_power_cut(fx->sim);
    sim_hal_power_on(fx->sim);
    assert_int_equal(hal_storage_close(h, f), SAT_OK);
    assert_int_equal(hal_storage_close(h, g), SAT_OK);
    assert_int_equal(hal_storage_open(h, "a.db", 0, &f), SAT_OK);
    assert_int_equal(hal_storage_read_full(h, f, 0, buf, 4), SAT_OK);
    assert_memory_equal(buf, "abcd", 4);

    /* Deleting an open file: the name goes at once, the handle lives on
     * until it is closed (as unlink(2) on the POSIX HAL). */
    assert_int_equal(hal_storage_delete(h, "a.db"), SAT_OK);
    assert_int_equal(hal_storage_open(h, "a.db", 0, &g), SAT_ERR_NOT_FOUND);
    assert_int_equal(hal_storage_write(h, f, 4, "ef", 2), SAT_OK);
    assert_int_equal(hal_storage_size(h, f, &size), SAT_OK);
    assert_int_equal(size, 6);
    assert_int_equal(hal_storage_open(h, "a.db", HAL_OPEN_CREATE | HAL_OPEN_EXCLUSIVE, &g),
                     SAT_OK);
    assert_int_equal(hal_storage_size(h, g, &size), SAT_OK);
    assert_int_equal(size, 0);
    assert_int_equal(hal_storage_close(h, f), SAT_OK);
    assert_int_equal(hal_storage_close(h, g), SAT_OK);
}

static void test_storage_limits(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = fx->h;
    hal_file *f = NULL;
    hal_file *g = NULL;
    char name[16];
    uint64_t size = 0;

    for (int i = 0; i < SIM_FLASH_FILES_MAX; i++) {
        snprintf(name, sizeof name, "f%d", i);
        assert_int_equal(hal_storage_open(h, name, HAL_OPEN_CREATE, &f), SAT_OK);
        assert_int_equal(hal_storage_close(h, f), SAT_OK);
    }
    assert_int_equal(hal_storage_open(h, "one-too-many", HAL_OPEN_CREATE, &f), SAT_ERR_NO_SPACE);
    /* Opening an existing file needs no new slot; deleting frees one. */
    assert_int_equal(hal_storage_open(h, "f0", HAL_OPEN_CREATE, &g), SAT_OK);
    assert_int_equal(hal_storage_delete(h, "f1"), SAT_OK);
    assert_int_equal(hal_storage_open(h, "one-more", HAL_OPEN_CREATE, &f), SAT_OK);
    assert_int_equal(hal_storage_close(h, f), SAT_OK);

    assert_int_equal(hal_storage_write(h, g, SIM_FLASH_FILE_BYTES_MAX - 1, "xy", 2),
                     SAT_ERR_NO_SPACE);
    assert_int_equal(hal_storage_write(h, g, UINT64_MAX, "x", 1), SAT_ERR_NO_SPACE);
    assert_int_equal(hal_storage_truncate(h, g, (uint64_t)SIM_FLASH_FILE_BYTES_MAX + 1),
                     SAT_ERR_NO_SPACE);
    assert_int_equal(hal_storage_size(h, g, &size), SAT_OK);
    assert_int_equal(size, 0);
    assert_int_equal(hal_storage_close(h, g), SAT_OK);
}

static void test_unsupported_members(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = fx->h;
    hal_sock *s = NULL;
    int v = 0;
    assert_int_equal(h->version, HAL_VERSION);
    assert_int_equal(hal_net_connect(h, "127.0.0.1", 1, &s), SAT_ERR_NOT_SUPPORTED);
    assert_int_equal(hal_net_listen(h, "127.0.0.1", 0, &s), SAT_ERR_NOT_SUPPORTED);
    assert_int_equal(hal_net_link_up(h), 0);
    assert_int_equal(hal_power_battery_pct(h, &v), SAT_ERR_NOT_SUPPORTED);
    assert_int_equal(hal_boot_active_slot(h, &v), SAT_ERR_NOT_SUPPORTED);
    assert_int_equal(hal_boot_reboot(h), SAT_ERR_NOT_SUPPORTED);
    hal_log(h, HAL_LOG_INFO, "log line %d", 1); /* kept in the ring */
}

/* ---- power cuts ------------------------------------------------------------ */

static void test_synced_data_survives_cut(void **state)
{
    enum { FILE_BYTES = 5000 };
    uint8_t want[FILE_BYTES];
    uint8_t buf[FILE_BYTES];
    (void)state;
    pattern(want, sizeof want, 7);
    memset(want + 4000, 0, 900); /* the gap left by the unaligned write */
    for (uint64_t seed = 1; seed <= 50; seed++) {
        struct sim_hal *sim = NULL;
        const struct hal *h;
        hal_file *f = NULL;
        uint8_t *bytes = NULL;
        size_t len = 0;
        assert_int_equal(sim_hal_new(&sim, seed, WALL_START_MS), SAT_OK);
        h = sim_hal_hal(sim);
        assert_int_equal(hal_storage_open(h, "a.db", HAL_OPEN_CREATE, &f), SAT_OK);
        assert_int_equal(hal_storage_write(h, f, 0, want, 4000), SAT_OK);
        assert_int_equal(hal_storage_write(h, f, 4900, want + 4900, 100), SAT_OK);
        assert_int_equal(hal_storage_truncate(h, f, 9000), SAT_OK);
        assert_int_equal(hal_storage_truncate(h, f, FILE_BYTES), SAT_OK);
        assert_int_equal(hal_storage_sync(h, f), SAT_OK);
        sim_hal_power_cut(sim);
        assert_true(sim_hal_powered_off(sim));
        sim_hal_power_on(sim);
        assert_false(sim_hal_powered_off(sim));
        assert_int_equal(sim_hal_file_bytes(sim, "a.db", &bytes, &len), SAT_OK);
        assert_int_equal(len, FILE_BYTES);
        assert_memory_equal(bytes, want, FILE_BYTES);
        assert_int_equal(hal_storage_close(h, f), SAT_OK);
        assert_int_equal(hal_storage_open(h, "a.db", 0, &f), SAT_OK);
        assert_int_equal(hal_storage_read_full(h, f, 0, buf, FILE_BYTES), SAT_OK);
        assert_memory_equal(buf, want, FILE_BYTES);
        assert_int_equal(hal_storage_close(h, f), SAT_OK);
        sim_hal_free(sim);
    }
}

/* 1 if r is old with a prefix of the write [off, off+len) of new applied up
 * to a cut point (the write's start or a sector boundary inside it), then
 * the rest of that sector, clipped to the write, changed, then old again. */
static int torn_from_boundary(const uint8_t *r, const uint8_t *old, const uint8_t *nw,
                              size_t flen, size_t off, size_t len)
{
    size_t end = off + len;
    size_t first = (off / S + 1) * S;
    for (size_t cut = off; cut < end; cut = cut == off ? first : cut + S) {
        size_t gend = cut == off ? first : cut + S;
        if (gend > end)
            gend = end;
        if (memcmp(r, nw, cut) == 0 && memcmp(r + gend, old + gend, flen - gend) == 0)
            return 1;
        if (first >= end)
            break;
    }
    return 0;
}

enum outcome { OUT_DROPPED, OUT_KEPT, OUT_TORN, OUT_BAD };

static enum outcome classify(const uint8_t *r, size_t rlen, const uint8_t *old,
                             const uint8_t *nw, size_t flen, size_t off, size_t len)
{
    if (rlen != flen)
        return OUT_BAD;
    if (memcmp(r, old, flen) == 0)
        return OUT_DROPPED;
    if (memcmp(r, nw, flen) == 0)
        return OUT_KEPT;
    return torn_from_boundary(r, old, nw, flen, off, len) ? OUT_TORN : OUT_BAD;
}

static void test_unsynced_write_dropped_kept_or_torn(void **state)
{
    enum { FILE_BYTES = 8 * S, OFF = 100, LEN = 3 * S + 50 };
    uint8_t old[FILE_BYTES];
    uint8_t nw[FILE_BYTES];
    unsigned seen[4] = { 0 };
    (void)state;
    pattern(old, sizeof old, 1);
    memcpy(nw, old, sizeof nw);
    pattern(nw + OFF, LEN, 2);
    for (uint64_t seed = 1; seed <= SEEDS_SWEEP; seed++) {
        struct sim_hal *sim = NULL;
        const struct hal *h;
        hal_file *f = NULL;
        uint8_t *bytes = NULL;
        size_t len = 0;
        enum outcome o;
        assert_int_equal(sim_hal_new(&sim, seed, WALL_START_MS), SAT_OK);
        h = sim_hal_hal(sim);
        assert_int_equal(hal_storage_open(h, "a.db", HAL_OPEN_CREATE, &f), SAT_OK);
        assert_int_equal(hal_storage_write(h, f, 0, old, FILE_BYTES), SAT_OK);
        assert_int_equal(hal_storage_sync(h, f), SAT_OK);
        assert_int_equal(hal_storage_write(h, f, OFF, nw + OFF, LEN), SAT_OK);
        assert_int_equal(sim_hal_file_bytes(sim, "a.db", &bytes, &len), SAT_OK);
        assert_memory_equal(bytes, nw, FILE_BYTES); /* reads see the write now */
        sim_hal_power_cut(sim);
        assert_int_equal(sim_hal_file_bytes(sim, "a.db", &bytes, &len), SAT_OK);
        o = classify(bytes, len, old, nw, FILE_BYTES, OFF, LEN);
        if (o == OUT_BAD)
            fail_msg("seed %llu: cut left neither old, new nor a sector-aligned tear",
                     (unsigned long long)seed);
        seen[o]++;
        assert_int_equal(hal_storage_close(h, f), SAT_OK);
        sim_hal_free(sim);
    }
    assert_true(seen[OUT_DROPPED] > 0);
    assert_true(seen[OUT_KEPT] > 0);
    assert_true(seen[OUT_TORN] > 0);
}

static void test_torn_write_drops_later_writes(void **state)
{
    enum { FILE_BYTES = 8 * S, LEN1 = 4 * S, OFF2 = 6 * S, LEN2 = S };
    uint8_t old[FILE_BYTES];
    uint8_t nw[FILE_BYTES];
    unsigned torn = 0;
    unsigned reordered = 0;
    (void)state;
    pattern(old, sizeof old, 3);
    memcpy(nw, old, sizeof nw);
    pattern(nw, LEN1, 4);
    pattern(nw + OFF2, LEN2, 5);
    for (uint64_t seed = 1; seed <= SEEDS_SWEEP; seed++) {
        struct sim_hal *sim = NULL;
        const struct hal *h;
        hal_file *f = NULL;
        uint8_t *r = NULL;
        size_t len = 0;
        int second_kept;
        assert_int_equal(sim_hal_new(&sim, seed, WALL_START_MS), SAT_OK);
        h = sim_hal_hal(sim);
        assert_int_equal(hal_storage_open(h, "a.db", HAL_OPEN_CREATE, &f), SAT_OK);
        assert_int_equal(hal_storage_write(h, f, 0, old, FILE_BYTES), SAT_OK);
        assert_int_equal(hal_storage_sync(h, f), SAT_OK);
        assert_int_equal(hal_storage_write(h, f, 0, nw, LEN1), SAT_OK);
        assert_int_equal(hal_storage_write(h, f, OFF2, nw + OFF2, LEN2), SAT_OK);
        sim_hal_power_cut(sim);
        assert_int_equal(sim_hal_file_bytes(sim, "a.db", &r, &len), SAT_OK);
        assert_int_equal(len, FILE_BYTES);
        /* Between the two writes nothing was ever written. */
        assert_memory_equal(r + LEN1, old + LEN1, OFF2 - LEN1);
        /* The second write is all there or not at all (or, alone, torn). */
        second_kept = memcmp(r + OFF2, nw + OFF2, LEN2) == 0;
        if (memcmp(r, old, LEN1) != 0 && memcmp(r, nw, LEN1) != 0) {
            torn++;
            assert_true(torn_from_boundary(r, old, nw, LEN1, 0, LEN1));
            assert_memory_equal(r + OFF2, old + OFF2, LEN2);
        } else if (memcmp(r, old, LEN1) == 0 && second_kept) {
            reordered++; /* the disk may land later writes first */
        }
        assert_int_equal(hal_storage_close(h, f), SAT_OK);
        sim_hal_free(sim);
    }
    assert_true(torn > 0);
    assert_true(reordered > 0);
}

/* A write past the end leaves, when torn, a file that ends where the sector
 * being written (clipped to the write) ends, the gap still zeros. */
static void test_torn_extending_write(void **state)
{
    enum { OLD = 1000, OFF = 1200, LEN = 1000, END = OFF + LEN };
    uint8_t nw[END];
    unsigned seen[3] = { 0 };
    (void)state;
    pattern(nw, OLD, 21);
    memset(nw + OLD, 0, OFF - OLD);
    pattern(nw + OFF, LEN, 22);
    for (uint64_t seed = 1; seed <= SEEDS_SWEEP; seed++) {
        struct sim_hal *sim = NULL;
        const struct hal *h;
        hal_file *f = NULL;
        uint8_t *r = NULL;
        size_t len = 0;
        assert_int_equal(sim_hal_new(&sim, seed, WALL_START_MS), SAT_OK);
        h = sim_hal_hal(sim);
        assert_int_equal(hal_storage_open(h, "a.db", HAL_OPEN_CREATE, &f), SAT_OK);
        assert_int_equal(hal_storage_write(h, f, 0, nw, OLD), SAT_OK);
        assert_int_equal(hal_storage_sync(h, f), SAT_OK);
        assert_int_equal(hal_storage_write(h, f, OFF, nw + OFF, LEN), SAT_OK);
        sim_hal_power_cut(sim);
        assert_int_equal(sim_hal_file_bytes(sim, "a.db", &r, &len), SAT_OK);
        assert_memory_equal(r, nw, OLD);
        if (len == OLD) {
            seen[OUT_DROPPED]++;
        } else if (len == END && memcmp(r, nw, END) == 0) {
            seen[OUT_KEPT]++;
        } else {
            /* Cut at 1200 (garbage to 1536), 1536 (to 2048) or 2048 (to 2200). */
            size_t cut = len == 3 * S ? OFF : len == 4 * S ? 3 * S : 4 * S;
            if (len != 3 * S && len != 4 * S && len != END)
                fail_msg("seed %llu: torn extending write left %zu bytes",
                         (unsigned long long)seed, len);
            assert_memory_equal(r, nw, cut);
            seen[OUT_TORN]++;
        }
        assert_int_equal(hal_storage_close(h, f), SAT_OK);
        sim_hal_free(sim);
    }
    assert_true(seen[OUT_DROPPED] > 0 && seen[OUT_KEPT] > 0 && seen[OUT_TORN] > 0);
}

static void test_unsynced_truncate_kept_or_dropped(void **state)
{
    unsigned shrunk = 0;
    unsigned kept = 0;
    uint8_t old[3 * S];
    (void)state;
    pattern(old, sizeof old, 9);
    for (uint64_t seed = 1; seed <= SEEDS_SWEEP; seed++) {
        struct sim_hal *sim = NULL;
        const struct hal *h;
        hal_file *f = NULL;
        uint8_t *r = NULL;
        size_t len = 0;
        assert_int_equal(sim_hal_new(&sim, seed, WALL_START_MS), SAT_OK);
        h = sim_hal_hal(sim);
        assert_int_equal(hal_storage_open(h, "j", HAL_OPEN_CREATE, &f), SAT_OK);
        assert_int_equal(hal_storage_write(h, f, 0, old, sizeof old), SAT_OK);
        assert_int_equal(hal_storage_sync(h, f), SAT_OK);
        assert_int_equal(hal_storage_truncate(h, f, 10), SAT_OK);
        sim_hal_power_cut(sim);
        assert_int_equal(sim_hal_file_bytes(sim, "j", &r, &len), SAT_OK);
        if (len == 10) {
            shrunk++;
            assert_memory_equal(r, old, 10);
        } else {
            assert_int_equal(len, sizeof old);
            assert_memory_equal(r, old, sizeof old);
            kept++;
        }
        assert_int_equal(hal_storage_close(h, f), SAT_OK);
        sim_hal_free(sim);
    }
    assert_true(shrunk > 0 && kept > 0);
}

static void test_created_file_survives_cut_unsynced(void **state)
{
    struct fixture *fx = *state;
    hal_file *f = NULL;
    uint8_t *r = NULL;
    size_t len = 0;
    assert_int_equal(hal_storage_open(fx->h, "new", HAL_OPEN_CREATE, &f), SAT_OK);
    sim_hal_power_cut(fx->sim);
    sim_hal_power_on(fx->sim);
    assert_int_equal(sim_hal_file_bytes(fx->sim, "new", &r, &len), SAT_OK);
    assert_int_equal(len, 0);
    assert_int_equal(sim_hal_file_bytes(fx->sim, "none", &r, &len), SAT_ERR_NOT_FOUND);
    assert_int_equal(hal_storage_close(fx->h, f), SAT_OK);
    /* A delete is durable at once too. */
    assert_int_equal(hal_storage_delete(fx->h, "new"), SAT_OK);
    sim_hal_power_cut(fx->sim);
    sim_hal_power_on(fx->sim);
    assert_int_equal(sim_hal_file_bytes(fx->sim, "new", &r, &len), SAT_ERR_NOT_FOUND);
}

/* Writing through sim_hal_file_bytes is bit rot on flash: reads see it and,
 * with nothing pending, so does the state after a cut. */
static void test_file_bytes_tamper_is_on_flash(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = fx->h;
    hal_file *f = NULL;
    uint8_t *r = NULL;
    size_t len = 0;
    uint8_t buf[4];
    assert_int_equal(hal_storage_open(h, "a.db", HAL_OPEN_CREATE, &f), SAT_OK);
    assert_int_equal(hal_storage_write(h, f, 0, "abcd", 4), SAT_OK);
    assert_int_equal(hal_storage_sync(h, f), SAT_OK);
    assert_int_equal(sim_hal_file_bytes(fx->sim, "a.db", &r, &len), SAT_OK);
    r[1] ^= 0x20;
    assert_int_equal(hal_storage_read_full(h, f, 0, buf, 4), SAT_OK);
    assert_memory_equal(buf, "aBcd", 4);
    sim_hal_power_cut(fx->sim);
    sim_hal_power_on(fx->sim);
    assert_int_equal(hal_storage_close(h, f), SAT_OK);
    assert_int_equal(hal_storage_open(h, "a.db", 0, &f), SAT_OK);
    assert_int_equal(hal_storage_read_full(h, f, 0, buf, 4), SAT_OK);
    assert_memory_equal(buf, "aBcd", 4);
    assert_int_equal(hal_storage_close(h, f), SAT_OK);
}

static void test_cut_at_fires_on_nth_counted_op(void **state)
{
    uint8_t old[2 * S];
    uint8_t want[2 * S];
    (void)state;
    pattern(old, sizeof old, 11);
    memcpy(want, old, sizeof want);
    memcpy(want, "XXXX", 4);
    for (uint64_t seed = 1; seed <= 50; seed++) {
        struct sim_hal *sim = NULL;
        const struct hal *h;
        hal_file *f = NULL;
        hal_file *g = NULL;
        uint8_t buf[4];
        size_t got = 0;
        uint64_t size = 0;
        uint8_t *r = NULL;
        size_t len = 0;
        assert_int_equal(sim_hal_new(&sim, seed, WALL_START_MS), SAT_OK);
        h = sim_hal_hal(sim);
        assert_int_equal(sim_hal_storage_ops(sim), 0);
        assert_int_equal(hal_storage_open(h, "a.db", HAL_OPEN_CREATE, &f), SAT_OK);
        assert_int_equal(hal_storage_write(h, f, 0, old, sizeof old), SAT_OK);
        assert_int_equal(hal_storage_sync(h, f), SAT_OK);
        assert_int_equal(sim_hal_storage_ops(sim), 2);

        sim_hal_cut_at(sim, 3);
        assert_int_equal(hal_storage_write(h, f, 0, "XXXX", 4), SAT_OK); /* 1st */
        /* Opens, reads, sizes and lists are not counted. */
        assert_int_equal(hal_storage_open(h, "a.db", 0, &g), SAT_OK);
        assert_int_equal(hal_storage_read(h, g, 0, buf, sizeof buf, &got), SAT_OK);
        assert_int_equal(hal_storage_size(h, g, &size), SAT_OK);
        assert_int_equal(sim_hal_storage_ops(sim), 3);
        assert_int_equal(hal_storage_sync(h, g), SAT_OK); /* 2nd */
        assert_false(sim_hal_powered_off(sim));
        assert_int_equal(hal_storage_write(h, f, S, "YYYY", 4), SAT_ERR_POWER_CUT); /* 3rd */
        assert_true(sim_hal_powered_off(sim));
        assert_int_equal(sim_hal_storage_ops(sim), 5);
        /* Nothing counts while the power is off. */
        assert_int_equal(hal_storage_write(h, f, S, "YYYY", 4), SAT_ERR_POWER_CUT);
        assert_int_equal(sim_hal_storage_ops(sim), 5);

        /* The write that fired never happened, whatever the seed. */
        assert_int_equal(sim_hal_file_bytes(sim, "a.db", &r, &len), SAT_OK);
        assert_int_equal(len, sizeof want);
        assert_memory_equal(r, want, sizeof want);
        sim_hal_power_on(sim);
        /* A cut fires once. */
        assert_int_equal(hal_storage_close(h, f), SAT_OK);
        assert_int_equal(hal_storage_close(h, g), SAT_OK);
        assert_int_equal(hal_storage_open(h, "a.db", 0, &f), SAT_OK);
        for (int i = 0; i < 5; i++)
            assert_int_equal(hal_storage_sync(h, f), SAT_OK);
        assert_int_equal(hal_storage_close(h, f), SAT_OK);
        sim_hal_free(sim);
    }
}

static void test_cut_at_sync_or_truncate_has_no_effect(void **state)
{
    uint8_t old[4 * S];
    uint8_t nw[4 * S];
    unsigned dropped = 0;
    (void)state;
    pattern(old, sizeof old, 12);
    memcpy(nw, old, sizeof nw);
    pattern(nw + S, 2 * S, 13);
    for (uint64_t seed = 1; seed <= SEEDS_SWEEP; seed++) {
        struct sim_hal *sim = NULL;
        const struct hal *h;
        hal_file *f = NULL;
        uint8_t *r = NULL;
        size_t len = 0;
        enum outcome o;
        assert_int_equal(sim_hal_new(&sim, seed, WALL_START_MS), SAT_OK);
        h = sim_hal_hal(sim);
        assert_int_equal(hal_storage_open(h, "a.db", HAL_OPEN_CREATE, &f), SAT_OK);
        assert_int_equal(hal_storage_write(h, f, 0, old, sizeof old), SAT_OK);
        assert_int_equal(hal_storage_sync(h, f), SAT_OK);
        assert_int_equal(hal_storage_write(h, f, S, nw + S, 2 * S), SAT_OK);
        /* The sync that fires does not make the write durable. */
        sim_hal_cut_at(sim, 1);
        assert_int_equal(hal_storage_sync(h, f), SAT_ERR_POWER_CUT);
        assert_int_equal(sim_hal_file_bytes(sim, "a.db", &r, &len), SAT_OK);
        o = classify(r, len, old, nw, sizeof old, S, 2 * S);
        assert_int_not_equal(o, OUT_BAD);
        dropped += o == OUT_DROPPED;
        sim_hal_power_on(sim);
        assert_int_equal(hal_storage_close(h, f), SAT_OK);

        /* The truncate that fires does not shrink the file. */
        assert_int_equal(hal_storage_open(h, "a.db", 0, &f), SAT_OK);
        assert_int_equal(hal_storage_sync(h, f), SAT_OK);
        sim_hal_cut_at(sim, 1);
        assert_int_equal(hal_storage_truncate(h, f, 10), SAT_ERR_POWER_CUT);
        assert_int_equal(sim_hal_file_bytes(sim, "a.db", &r, &len), SAT_OK);
        assert_int_equal(len, sizeof old);
        assert_int_equal(hal_storage_close(h, f), SAT_OK);
        sim_hal_free(sim);
    }
    assert_true(dropped > 0);
}

static int count_names(void *arg, const char *name)
{
    (void)name;
    (*(int *)arg)++;
    return 0;
}

static void test_after_cut_handles_dead_and_power_off_fails_all(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = fx->h;
    hal_file *f = NULL;
    hal_file *g = NULL;
    hal_file *n = NULL;
    uint8_t buf[8];
    size_t got = 0;
    uint64_t size = 0;
    uint64_t ops;
    int count = 0;

    assert_int_equal(hal_storage_open(h, "a.db", HAL_OPEN_CREATE, &f), SAT_OK);
    assert_int_equal(hal_storage_open(h, "a.db", 0, &g), SAT_OK);
    assert_int_equal(hal_storage_write(h, f, 0, "durable!", 8), SAT_OK);
    assert_int_equal(hal_storage_sync(h, f), SAT_OK);
    sim_hal_cut_at(fx->sim, 100); /* a manual cut disarms it */
    sim_hal_power_cut(fx->sim);
    assert_true(sim_hal_powered_off(fx->sim));
    ops = sim_hal_storage_ops(fx->sim);

    /* Off: every storage call fails. */
    assert_int_equal(hal_storage_open(h, "a.db", 0, &n), SAT_ERR_POWER_CUT);
    assert_int_equal(hal_storage_open(h, "b", HAL_OPEN_CREATE, &n), SAT_ERR_POWER_CUT);
    assert_int_equal(hal_storage_read(h, f, 0, buf, sizeof buf, &got), SAT_ERR_POWER_CUT);
    assert_int_equal(hal_storage_write(h, f, 0, "x", 1), SAT_ERR_POWER_CUT);
    assert_int_equal(hal_storage_sync(h, f), SAT_ERR_POWER_CUT);
    assert_int_equal(hal_storage_truncate(h, f, 0), SAT_ERR_POWER_CUT);
    assert_int_equal(hal_storage_size(h, f, &size), SAT_ERR_POWER_CUT);
    assert_int_equal(hal_storage_delete(h, "a.db"), SAT_ERR_POWER_CUT);
    assert_int_equal(hal_storage_list(h, count_names, &count), SAT_ERR_POWER_CUT);
    assert_int_equal(count, 0);
    assert_int_equal(sim_hal_storage_ops(fx->sim), ops);
    assert_int_equal(hal_storage_close(h, g), SAT_OK); /* just frees it */
    sim_hal_power_cut(fx->sim);                        /* no-op while off */

    sim_hal_power_on(fx->sim);
    assert_false(sim_hal_powered_off(fx->sim));
    /* Handles from before the cut stay dead after power-on. */
    assert_int_equal(hal_storage_read(h, f, 0, buf, sizeof buf, &got), SAT_ERR_POWER_CUT);
    assert_int_equal(hal_storage_write(h, f, 0, "x", 1), SAT_ERR_POWER_CUT);
    assert_int_equal(hal_storage_sync(h, f), SAT_ERR_POWER_CUT);
    assert_int_equal(hal_storage_truncate(h, f, 0), SAT_ERR_POWER_CUT);
    assert_int_equal(hal_storage_size(h, f, &size), SAT_ERR_POWER_CUT);
    assert_int_equal(hal_storage_close(h, f), SAT_OK);
    /* New ones work, and the cut armed before the manual cut is gone. */
    assert_int_equal(hal_storage_open(h, "a.db", 0, &f), SAT_OK);
    assert_int_equal(hal_storage_read_full(h, f, 0, buf, 8), SAT_OK);
    assert_memory_equal(buf, "durable!", 8);
    for (int i = 0; i < 150; i++)
        assert_int_equal(hal_storage_write(h, f, 0, "d", 1), SAT_OK);
    assert_int_equal(hal_storage_list(h, count_names, &count), SAT_OK);
    assert_int_equal(count, 1);
    /* Left open on purpose: sim_hal_free releases it. */
}

/* ---- determinism ----------------------------------------------------------- */

#define RUN_FILES 3
struct run_result {
    uint8_t entropy[3][64];
    uint8_t secret[HAL_DEVICE_SECRET_BYTES];
    uint8_t *bytes[RUN_FILES];
    size_t len[RUN_FILES];
};

static const char *const run_names[RUN_FILES] = { "a.db", "a.db-journal", "wal" };

/* A scripted workload with two power cuts; records what it sees. */
static void run_workload(uint64_t seed, struct run_result *out)
{
    struct sim_hal *sim = NULL;
    const struct hal *h;
    hal_file *f[RUN_FILES] = { NULL };
    uint8_t page[3 * S];
    memset(out, 0, sizeof *out);
    assert_int_equal(sim_hal_new(&sim, seed, WALL_START_MS), SAT_OK);
    h = sim_hal_hal(sim);
    assert_int_equal(hal_entropy_fill(h, out->entropy[0], sizeof out->entropy[0]), SAT_OK);
    for (int i = 0; i < RUN_FILES; i++)
        assert_int_equal(hal_storage_open(h, run_names[i], HAL_OPEN_CREATE, &f[i]), SAT_OK);
    for (uint32_t round = 0; round < 12; round++) {
        for (int i = 0; i < RUN_FILES; i++) {
            pattern(page, sizeof page, round * 7u + (uint32_t)i);
            assert_int_equal(hal_storage_write(h, f[i], (round * 700u) % 5000u, page,
                                               sizeof page - round * 13u),
                             SAT_OK);
            if ((round + (uint32_t)i) % 3 == 0)
                assert_int_equal(hal_storage_sync(h, f[i]), SAT_OK);
            if (round == 5 && i == 1)
                assert_int_equal(hal_storage_truncate(h, f[i], 1000), SAT_OK);
        }
        sim_hal_advance_ms(sim, 17);
        if (round == 4 || round == 9) {
            sim_hal_power_cut(sim);
            sim_hal_power_on(sim);
            for (int i = 0; i < RUN_FILES; i++) {
                assert_int_equal(hal_storage_close(h, f[i]), SAT_OK);
                assert_int_equal(hal_storage_open(h, run_names[i], 0, &f[i]), SAT_OK);
            }
            assert_int_equal(
                hal_entropy_fill(h, out->entropy[round == 4 ? 1 : 2], sizeof out->entropy[0]),
                SAT_OK);
        }
    }
    sim_hal_cut_at(sim, 2);
    assert_int_equal(hal_storage_write(h, f[0], 123, page, 999), SAT_OK);
    assert_int_equal(hal_storage_write(h, f[2], 50, page, 2000), SAT_ERR_POWER_CUT);
    assert_int_equal(hal_keystore_device_secret(h, out->secret), SAT_OK);
    for (int i = 0; i < RUN_FILES; i++) {
        uint8_t *b = NULL;
        assert_int_equal(sim_hal_file_bytes(sim, run_names[i], &b, &out->len[i]), SAT_OK);
        out->bytes[i] = malloc(out->len[i] + 1);
        assert_non_null(out->bytes[i]);
        memcpy(out->bytes[i], b, out->len[i]);
    }
    sim_hal_free(sim); /* releases the dead handles too */
}

static void run_free(struct run_result *r)
{
    for (int i = 0; i < RUN_FILES; i++)
        free(r->bytes[i]);
}

static void test_same_seed_same_run(void **state)
{
    struct run_result a;
    struct run_result b;
    struct run_result c;
    int files_differ = 0;
    (void)state;
    run_workload(42, &a);
    run_workload(42, &b);
    run_workload(43, &c);
    assert_memory_equal(a.entropy, b.entropy, sizeof a.entropy);
    assert_memory_equal(a.secret, b.secret, sizeof a.secret);
    for (int i = 0; i < RUN_FILES; i++) {
        assert_int_equal(a.len[i], b.len[i]);
        assert_memory_equal(a.bytes[i], b.bytes[i], a.len[i]);
        files_differ |= a.len[i] != c.len[i] || memcmp(a.bytes[i], c.bytes[i], a.len[i]) != 0;
    }
    /* Another seed: other entropy, other secret, other crash states. */
    assert_memory_not_equal(a.entropy[0], c.entropy[0], sizeof a.entropy[0]);
    assert_memory_not_equal(a.secret, c.secret, sizeof a.secret);
    assert_true(files_differ);
    run_free(&a);
    run_free(&b);
    run_free(&c);
}

static void test_entropy_differs_between_calls(void **state)
{
    struct fixture *fx = *state;
    uint8_t a[33];
    uint8_t b[33];
    assert_int_equal(hal_entropy_fill(fx->h, a, sizeof a), SAT_OK);
    assert_int_equal(hal_entropy_fill(fx->h, b, sizeof b), SAT_OK);
    assert_memory_not_equal(a, b, sizeof a);
    assert_int_equal(hal_entropy_fill(fx->h, a, 0), SAT_OK);
}

/* ---- clocks and key store ------------------------------------------------- */

static void test_clocks_move_only_when_told(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = fx->h;
    assert_int_equal(hal_clock_monotonic_ms(h), 0);
    assert_int_equal(hal_clock_wall_ms(h), WALL_START_MS);
    assert_int_equal(hal_clock_monotonic_ms(h), 0);
    sim_hal_advance_ms(fx->sim, 250);
    assert_int_equal(hal_clock_monotonic_ms(h), 250);
    assert_int_equal(hal_clock_wall_ms(h), WALL_START_MS + 250);
    /* The wall clock may jump back; the monotonic one does not follow. */
    sim_hal_set_wall_ms(fx->sim, -5000);
    assert_int_equal(hal_clock_wall_ms(h), -5000);
    assert_int_equal(hal_clock_monotonic_ms(h), 250);
    sim_hal_advance_ms(fx->sim, 10);
    assert_int_equal(hal_clock_monotonic_ms(h), 260);
    assert_int_equal(hal_clock_wall_ms(h), -4990);
    sim_hal_set_wall_ms(fx->sim, WALL_START_MS + 86400000LL);
    assert_int_equal(hal_clock_monotonic_ms(h), 260);
    assert_int_equal(hal_clock_wall_ms(h), WALL_START_MS + 86400000LL);
    sim_hal_advance_ms(fx->sim, 0);
    assert_int_equal(hal_clock_monotonic_ms(h), 260);
    /* Power cuts do not touch the clocks. */
    sim_hal_power_cut(fx->sim);
    sim_hal_power_on(fx->sim);
    assert_int_equal(hal_clock_monotonic_ms(h), 260);
}

static void test_keystore_secret_and_counters(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = fx->h;
    uint8_t s1[HAL_DEVICE_SECRET_BYTES];
    uint8_t s2[HAL_DEVICE_SECRET_BYTES];
    uint8_t zero[HAL_DEVICE_SECRET_BYTES] = { 0 };
    uint64_t v = 99;

    assert_int_equal(hal_keystore_device_secret(h, s1), SAT_OK);
    assert_memory_not_equal(s1, zero, sizeof s1);
    assert_int_equal(hal_keystore_device_secret(h, s2), SAT_OK);
    assert_memory_equal(s1, s2, sizeof s1); /* stable */

    for (unsigned slot = 0; slot < HAL_COUNTERS_MAX; slot++) {
        assert_int_equal(hal_keystore_counter_read(h, slot, &v), SAT_OK);
        assert_int_equal(v, 0);
    }
    assert_int_equal(hal_keystore_counter_advance(h, HAL_COUNTER_PIN_FAILURES, 3), SAT_OK);
    assert_int_equal(hal_keystore_counter_advance(h, HAL_COUNTER_PIN_FAILURES, 3), SAT_OK);
    assert_int_equal(hal_keystore_counter_advance(h, HAL_COUNTER_PIN_FAILURES, 2),
                     SAT_ERR_INVALID);
    assert_int_equal(hal_keystore_counter_read(h, HAL_COUNTER_PIN_FAILURES, &v), SAT_OK);
    assert_int_equal(v, 3);
    assert_int_equal(hal_keystore_counter_read(h, HAL_COUNTERS_MAX, &v), SAT_ERR_INVALID);
    assert_int_equal(hal_keystore_counter_advance(h, HAL_COUNTERS_MAX, 1), SAT_ERR_INVALID);

    /* The key store survives a power cut unchanged. */
    sim_hal_power_cut(fx->sim);
    sim_hal_power_on(fx->sim);
    assert_int_equal(hal_keystore_counter_read(h, HAL_COUNTER_PIN_FAILURES, &v), SAT_OK);
    assert_int_equal(v, 3);
    assert_int_equal(hal_keystore_device_secret(h, s2), SAT_OK);
    assert_memory_equal(s1, s2, sizeof s1);

    /* Wipe: a different secret, and the epoch moves on. */
    assert_int_equal(hal_keystore_wipe(h), SAT_OK);
    assert_int_equal(hal_keystore_device_secret(h, s2), SAT_OK);
    assert_memory_not_equal(s1, s2, sizeof s1);
    assert_int_equal(hal_keystore_counter_read(h, HAL_COUNTER_KEY_EPOCH, &v), SAT_OK);
    assert_int_equal(v, 1);
    assert_int_equal(hal_keystore_device_secret(h, s1), SAT_OK);
    assert_memory_equal(s1, s2, sizeof s1); /* stable again */
    assert_int_equal(hal_keystore_wipe(h), SAT_OK);
    assert_int_equal(hal_keystore_wipe(h), SAT_OK);
    assert_int_equal(hal_keystore_counter_read(h, HAL_COUNTER_KEY_EPOCH, &v), SAT_OK);
    assert_int_equal(v, 3);
    assert_int_equal(hal_keystore_counter_read(h, HAL_COUNTER_PIN_FAILURES, &v), SAT_OK);
    assert_int_equal(v, 3);
}

/* ---- virtual network -------------------------------------------------------- */

#define HUB_LAT_MS 20u
#define TAB_LAT_MS 30u
#define ONE_WAY_MS (HUB_LAT_MS + TAB_LAT_MS)

struct netfx {
    struct sim_net *net;
    struct sim_hal *hub;
    struct sim_hal *tab;
    const struct hal *hh; /* the hub's HAL */
    const struct hal *th; /* the tablet's HAL */
};

static void link_set(struct sim_net *net, const char *addr, int up, uint32_t latency_ms,
                     uint32_t jitter_ms, uint32_t bytes_per_ms, uint32_t reset_per_mille)
{
    struct sim_link l = { up, latency_ms, jitter_ms, bytes_per_ms, reset_per_mille };
    assert_int_equal(sim_net_set_link(net, addr, &l), SAT_OK);
}

static int net_setup_seed(void **state, uint64_t seed)
{
    struct netfx *f = calloc(1, sizeof *f);
    if (!f || sim_net_new(&f->net, seed) != SAT_OK ||
        sim_hal_new(&f->hub, seed + 1, WALL_START_MS) != SAT_OK ||
        sim_hal_new(&f->tab, seed + 2, WALL_START_MS) != SAT_OK ||
        sim_net_attach(f->net, f->hub, "hub") != SAT_OK ||
        sim_net_attach(f->net, f->tab, "tablet-1") != SAT_OK)
        return -1;
    f->hh = sim_hal_hal(f->hub);
    f->th = sim_hal_hal(f->tab);
    *state = f;
    return 0;
}

static int net_setup(void **state)
{
    struct netfx *f;
    if (net_setup_seed(state, 7) != 0)
        return -1;
    f = *state;
    link_set(f->net, "hub", 1, HUB_LAT_MS, 0, 0, 0);
    link_set(f->net, "tablet-1", 1, TAB_LAT_MS, 0, 0, 0);
    return 0;
}

static int net_teardown(void **state)
{
    struct netfx *f = *state;
    sim_hal_free(f->tab);
    sim_hal_free(f->hub);
    sim_net_free(f->net);
    free(f);
    return 0;
}

/* Moves the whole world to virtual time t: the network and every device's
 * clocks, as the simulator does. */
static void world_to(struct netfx *f, uint64_t t)
{
    uint64_t now = sim_net_now_ms(f->net);
    assert_true(t >= now);
    sim_net_set_now(f->net, t);
    sim_hal_advance_ms(f->hub, t - now);
    sim_hal_advance_ms(f->tab, t - now);
}

/* The hub listens, the tablet connects, time moves until it is accepted. */
static void establish(struct netfx *f, hal_sock **l, hal_sock **c, hal_sock **a)
{
    uint16_t port = 0;
    uint64_t t0 = sim_net_now_ms(f->net);
    if (!*l) {
        assert_int_equal(hal_net_listen(f->hh, "0.0.0.0", 0, l), SAT_OK);
    }
    assert_int_equal(hal_net_local_port(f->hh, *l, &port), SAT_OK);
    assert_int_equal(hal_net_connect(f->th, "hub", port, c), SAT_OK);
    assert_int_equal(sim_net_next_event_ms(f->net), t0 + ONE_WAY_MS);
    world_to(f, t0 + ONE_WAY_MS);
    assert_int_equal(hal_net_connect_status(f->th, *c), SAT_OK);
    assert_int_equal(hal_net_accept(f->hh, *l, a), SAT_OK);
}

static unsigned wait1(const struct hal *h, hal_sock *s, unsigned want)
{
    unsigned ready = 0xffu;
    int ret = hal_net_wait(h, &s, &want, &ready, 1, 1000);
    assert_true(ret == SAT_OK || ret == SAT_ERR_TIMEOUT);
    assert_int_equal(ret == SAT_OK, ready != 0);
    return ready;
}

static void test_net_connect_accept_send_recv_with_latency(void **state)
{
    struct netfx *f = *state;
    hal_sock *l = NULL;
    hal_sock *c = NULL;
    hal_sock *a = NULL;
    hal_sock *none = NULL;
    uint16_t port = 0;
    uint16_t aport = 0;
    uint16_t cport = 0;
    uint8_t buf[64];
    size_t n = 0;
    struct sim_net_stats st;

    assert_int_equal(hal_net_link_up(f->th), 1);
    assert_int_equal(hal_net_listen(f->hh, "0.0.0.0", 0, &l), SAT_OK);
    assert_int_equal(hal_net_local_port(f->hh, l, &port), SAT_OK);
    assert_true(port >= SIM_NET_PORT_EPHEMERAL_FIRST);
    assert_int_equal(hal_net_accept(f->hh, l, &none), SAT_ERR_WOULD_BLOCK);
    assert_int_equal(sim_net_next_event_ms(f->net), UINT64_MAX);

    assert_int_equal(hal_net_connect(f->th, "hub", port, &c), SAT_OK);
    assert_int_equal(hal_net_local_port(f->th, c, &cport), SAT_OK);
    assert_true(cport >= SIM_NET_PORT_EPHEMERAL_FIRST);
    /* In progress for one one-way latency (20 + 30 ms). */
    assert_int_equal(hal_net_connect_status(f->th, c), SAT_ERR_WOULD_BLOCK);
    assert_int_equal(hal_net_send(f->th, c, "x", 1, &n), SAT_ERR_WOULD_BLOCK);
    assert_int_equal(hal_net_recv(f->th, c, buf, sizeof buf, &n), SAT_ERR_WOULD_BLOCK);
    assert_int_equal(wait1(f->th, c, HAL_NET_WRITABLE), 0);
    assert_int_equal(wait1(f->hh, l, HAL_NET_READABLE), 0);
    assert_int_equal(sim_net_next_event_ms(f->net), ONE_WAY_MS);
    world_to(f, ONE_WAY_MS - 1);
    assert_int_equal(hal_net_connect_status(f->th, c), SAT_ERR_WOULD_BLOCK);
    assert_int_equal(hal_net_accept(f->hh, l, &none), SAT_ERR_WOULD_BLOCK);
    world_to(f, ONE_WAY_MS);
    assert_int_equal(wait1(f->th, c, HAL_NET_WRITABLE | HAL_NET_READABLE), HAL_NET_WRITABLE);
    assert_int_equal(wait1(f->hh, l, HAL_NET_READABLE), HAL_NET_READABLE);
    assert_int_equal(hal_net_connect_status(f->th, c), SAT_OK);
    assert_int_equal(hal_net_accept(f->hh, l, &a), SAT_OK);
    assert_int_equal(hal_net_accept(f->hh, l, &none), SAT_ERR_WOULD_BLOCK);
    assert_int_equal(hal_net_local_port(f->hh, a, &aport), SAT_OK);
    assert_int_equal(aport, port);
    assert_int_equal(sim_net_next_event_ms(f->net), UINT64_MAX);

    /* Bytes sent at t=50 are readable from t=100, not a millisecond before. */
    assert_int_equal(hal_net_send(f->th, c, "hello", 5, &n), SAT_OK);
    assert_int_equal(n, 5);
    assert_int_equal(sim_net_next_event_ms(f->net), 2 * ONE_WAY_MS);
    world_to(f, 2 * ONE_WAY_MS - 1);
    assert_int_equal(wait1(f->hh, a, HAL_NET_READABLE), 0);
    assert_int_equal(hal_net_recv(f->hh, a, buf, sizeof buf, &n), SAT_ERR_WOULD_BLOCK);
    world_to(f, 2 * ONE_WAY_MS);
    assert_int_equal(wait1(f->hh, a, HAL_NET_READABLE), HAL_NET_READABLE);
    assert_int_equal(hal_net_recv(f->hh, a, buf, 3, &n), SAT_OK); /* partial reads */
    assert_int_equal(n, 3);
    assert_memory_equal(buf, "hel", 3);
    assert_int_equal(hal_net_recv(f->hh, a, buf, sizeof buf, &n), SAT_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(buf, "lo", 2);
    assert_int_equal(hal_net_recv(f->hh, a, buf, sizeof buf, &n), SAT_ERR_WOULD_BLOCK);
    assert_int_equal(sim_net_next_event_ms(f->net), UINT64_MAX);

    /* A long stream the other way, sent at many times: everything arrives,
     * in order, never earlier than one latency after it was sent. */
    {
        enum { TOTAL = 150000, PIECE = 7000 };
        uint8_t *want = malloc(TOTAL);
        uint8_t *got = malloc(TOTAL);
        size_t sent = 0;
        size_t recvd = 0;
        uint64_t first_send = sim_net_now_ms(f->net);
        assert_non_null(want);
        assert_non_null(got);
        pattern(want, TOTAL, 99);
        while (recvd < TOTAL) {
            uint64_t now = sim_net_now_ms(f->net);
            uint64_t next;
            if (sent < TOTAL) {
                size_t k = TOTAL - sent < PIECE ? TOTAL - sent : PIECE;
                assert_int_equal(hal_net_send(f->hh, a, want + sent, k, &n), SAT_OK);
                assert_int_equal(n, k);
                sent += n;
            }
            for (;;) {
                int ret = hal_net_recv(f->th, c, got + recvd, TOTAL - recvd, &n);
                if (ret == SAT_ERR_WOULD_BLOCK)
                    break;
                assert_int_equal(ret, SAT_OK);
                assert_true(now >= first_send + ONE_WAY_MS);
                recvd += n;
            }
            next = sim_net_next_event_ms(f->net);
            if (sent < TOTAL && next > now + 3)
                next = now + 3; /* keep sending every 3 ms */
            if (recvd < TOTAL) {
                assert_true(next != UINT64_MAX);
                world_to(f, next);
            }
        }
        assert_memory_equal(got, want, TOTAL);
        free(want);
        free(got);
        assert_int_equal(sim_hal_net_stats(f->hub, &st), SAT_OK);
        assert_int_equal(st.bytes_sent, TOTAL);
        assert_int_equal(st.bytes_received, 5);
        assert_int_equal(st.accepts, 1);
        assert_int_equal(st.connects, 0);
        assert_int_equal(sim_net_stats(f->net, "tablet-1", &st), SAT_OK);
        assert_int_equal(st.bytes_sent, 5);
        assert_int_equal(st.bytes_received, TOTAL);
        assert_int_equal(st.connects, 1);
        assert_int_equal(sim_net_stats(f->net, NULL, &st), SAT_OK);
        assert_int_equal(st.bytes_sent, TOTAL + 5);
        assert_int_equal(st.resets, 0);
    }
    assert_int_equal(hal_net_close(f->th, c), SAT_OK);
    assert_int_equal(hal_net_close(f->hh, a), SAT_OK);
    assert_int_equal(hal_net_close(f->hh, l), SAT_OK);
}

static void test_net_refused_and_unreachable(void **state)
{
    struct netfx *f = *state;
    hal_sock *c = NULL;
    hal_sock *l = NULL;
    uint8_t buf[8];
    size_t n = 0;

    /* Unknown host: at once, no socket. */
    assert_int_equal(hal_net_connect(f->th, "nowhere", 443, &c), SAT_ERR_UNREACHABLE);
    assert_null(c);
    assert_int_equal(hal_net_connect(f->th, NULL, 443, &c), SAT_ERR_INVALID);

    /* No listener on that port: refused after one round trip. */
    assert_int_equal(hal_net_connect(f->th, "hub", 1, &c), SAT_OK);
    assert_int_equal(sim_net_next_event_ms(f->net), 2 * ONE_WAY_MS);
    world_to(f, 2 * ONE_WAY_MS - 1);
    assert_int_equal(hal_net_connect_status(f->th, c), SAT_ERR_WOULD_BLOCK);
    assert_int_equal(wait1(f->th, c, HAL_NET_WRITABLE), 0);
    world_to(f, 2 * ONE_WAY_MS);
    assert_int_equal(wait1(f->th, c, HAL_NET_WRITABLE), HAL_NET_WRITABLE);
    assert_int_equal(hal_net_connect_status(f->th, c), SAT_ERR_REFUSED);
    assert_int_equal(hal_net_send(f->th, c, "x", 1, &n), SAT_ERR_REFUSED);
    assert_int_equal(hal_net_recv(f->th, c, buf, sizeof buf, &n), SAT_ERR_REFUSED);
    assert_int_equal(hal_net_close(f->th, c), SAT_OK);
    assert_int_equal(sim_net_next_event_ms(f->net), UINT64_MAX);

    /* The hub powered off: unreachable after a round trip, even to a port it
     * listened on before the cut (its listener died with it). */
    assert_int_equal(hal_net_listen(f->hh, "hub", 4433, &l), SAT_OK);
    sim_hal_power_cut(f->hub);
    assert_int_equal(hal_net_connect(f->th, "hub", 4433, &c), SAT_OK);
    world_to(f, sim_net_next_event_ms(f->net));
    assert_int_equal(sim_net_now_ms(f->net), 4 * ONE_WAY_MS);
    assert_int_equal(hal_net_connect_status(f->th, c), SAT_ERR_UNREACHABLE);
    assert_int_equal(hal_net_close(f->th, c), SAT_OK);
    sim_hal_power_on(f->hub);
    assert_int_equal(hal_net_connect(f->th, "hub", 4433, &c), SAT_OK);
    world_to(f, sim_net_next_event_ms(f->net));
    assert_int_equal(hal_net_connect_status(f->th, c), SAT_ERR_REFUSED);
    assert_int_equal(hal_net_close(f->th, c), SAT_OK);
    assert_int_equal(hal_net_close(f->hh, l), SAT_OK); /* dead: just freed */

    /* The hub's link down: unreachable after a round trip. */
    assert_int_equal(hal_net_listen(f->hh, "hub", 4433, &l), SAT_OK);
    link_set(f->net, "hub", 0, HUB_LAT_MS, 0, 0, 0);
    assert_int_equal(hal_net_link_up(f->hh), 0);
    assert_int_equal(hal_net_link_up(f->th), 1);
    assert_int_equal(hal_net_connect(f->th, "hub", 4433, &c), SAT_OK);
    world_to(f, sim_net_next_event_ms(f->net));
    assert_int_equal(hal_net_connect_status(f->th, c), SAT_ERR_UNREACHABLE);
    assert_int_equal(hal_net_close(f->th, c), SAT_OK);
    /* Our own link down: at once. */
    link_set(f->net, "hub", 1, HUB_LAT_MS, 0, 0, 0);
    link_set(f->net, "tablet-1", 0, TAB_LAT_MS, 0, 0, 0);
    c = NULL;
    assert_int_equal(hal_net_connect(f->th, "hub", 4433, &c), SAT_ERR_UNREACHABLE);
    assert_null(c);
    assert_int_equal(hal_net_link_up(f->th), 0);
    assert_int_equal(hal_net_close(f->hh, l), SAT_OK);
}

static void test_net_link_down_resets_both_ends(void **state)
{
    struct netfx *f = *state;
    hal_sock *l = NULL;
    hal_sock *c = NULL;
    hal_sock *a = NULL;
    hal_sock *c2 = NULL;
    hal_sock *a2 = NULL;
    uint8_t buf[16];
    size_t n = 0;
    struct sim_net_stats st;

    establish(f, &l, &c, &a);
    assert_int_equal(hal_net_send(f->th, c, "abc", 3, &n), SAT_OK);
    assert_int_equal(hal_net_send(f->hh, a, "xyz", 3, &n), SAT_OK);
    world_to(f, sim_net_next_event_ms(f->net));
    assert_int_equal(hal_net_send(f->th, c, "more", 4, &n), SAT_OK); /* still in flight */
    /* A second connection, still in progress when the link drops. */
    assert_int_equal(hal_net_connect(f->th, "hub", 4434, &c2), SAT_OK);

    link_set(f->net, "tablet-1", 0, TAB_LAT_MS, 0, 0, 0);
    /* Both ends see the reset at once; what was not read is gone. */
    assert_int_equal(wait1(f->hh, a, HAL_NET_READABLE), HAL_NET_READABLE);
    assert_int_equal(hal_net_recv(f->hh, a, buf, sizeof buf, &n), SAT_ERR_RESET);
    assert_int_equal(hal_net_send(f->hh, a, "x", 1, &n), SAT_ERR_RESET);
    assert_int_equal(hal_net_recv(f->th, c, buf, sizeof buf, &n), SAT_ERR_RESET);
    assert_int_equal(hal_net_send(f->th, c, "x", 1, &n), SAT_ERR_RESET);
    assert_int_equal(hal_net_connect_status(f->th, c), SAT_ERR_RESET);
    assert_int_equal(hal_net_connect_status(f->th, c2), SAT_ERR_RESET);
    assert_int_equal(sim_net_next_event_ms(f->net), UINT64_MAX);
    assert_int_equal(hal_net_connect(f->th, "hub", 1, &a2), SAT_ERR_UNREACHABLE);
    assert_int_equal(hal_net_link_up(f->th), 0);
    assert_int_equal(sim_hal_net_stats(f->hub, &st), SAT_OK);
    assert_int_equal(st.resets, 1);
    assert_int_equal(sim_hal_net_stats(f->tab, &st), SAT_OK);
    assert_int_equal(st.resets, 2); /* each socket counted once */
    assert_int_equal(hal_net_close(f->th, c), SAT_OK);
    assert_int_equal(hal_net_close(f->th, c2), SAT_OK);
    assert_int_equal(hal_net_close(f->hh, a), SAT_OK);

    /* Back up: new connections work. */
    link_set(f->net, "tablet-1", 1, TAB_LAT_MS, 0, 0, 0);
    c = NULL;
    establish(f, &l, &c, &a2);
    assert_int_equal(hal_net_send(f->th, c, "ok", 2, &n), SAT_OK);
    world_to(f, sim_net_next_event_ms(f->net));
    assert_int_equal(hal_net_recv(f->hh, a2, buf, sizeof buf, &n), SAT_OK);
    assert_int_equal(n, 2);
    assert_int_equal(hal_net_close(f->th, c), SAT_OK);
    assert_int_equal(hal_net_close(f->hh, a2), SAT_OK);
    assert_int_equal(hal_net_close(f->hh, l), SAT_OK);
}

static void test_net_close_drains_then_closed(void **state)
{
    struct netfx *f = *state;
    hal_sock *l = NULL;
    hal_sock *c = NULL;
    hal_sock *a = NULL;
    uint8_t buf[16];
    size_t n = 0;
    uint64_t t;

    establish(f, &l, &c, &a);
    t = sim_net_now_ms(f->net);
    assert_int_equal(hal_net_send(f->th, c, "abc", 3, &n), SAT_OK);
    assert_int_equal(hal_net_close(f->th, c), SAT_OK);
    /* The close has not reached the hub: its bytes are taken (and lost). */
    assert_int_equal(hal_net_send(f->hh, a, "late", 4, &n), SAT_OK);
    assert_int_equal(n, 4);
    assert_int_equal(hal_net_recv(f->hh, a, buf, sizeof buf, &n), SAT_ERR_WOULD_BLOCK);
    assert_int_equal(sim_net_next_event_ms(f->net), t + ONE_WAY_MS);
    world_to(f, t + ONE_WAY_MS);
    /* Data first, then the clean end, then sends fail (as EPIPE). */
    assert_int_equal(hal_net_recv(f->hh, a, buf, sizeof buf, &n), SAT_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(buf, "abc", 3);
    assert_int_equal(wait1(f->hh, a, HAL_NET_READABLE), HAL_NET_READABLE);
    assert_int_equal(hal_net_recv(f->hh, a, buf, sizeof buf, &n), SAT_ERR_CLOSED);
    assert_int_equal(hal_net_recv(f->hh, a, buf, sizeof buf, &n), SAT_ERR_CLOSED);
    assert_int_equal(hal_net_send(f->hh, a, "x", 1, &n), SAT_ERR_RESET);
    assert_int_equal(hal_net_close(f->hh, a), SAT_OK);
    assert_int_equal(sim_net_next_event_ms(f->net), UINT64_MAX);

    /* Closing an unaccepted connection's listener resets it. */
    c = NULL;
    assert_int_equal(hal_net_listen(f->hh, NULL, 8080, &a), SAT_OK);
    assert_int_equal(hal_net_connect(f->th, "hub", 8080, &c), SAT_OK);
    world_to(f, sim_net_next_event_ms(f->net));
    assert_int_equal(hal_net_connect_status(f->th, c), SAT_OK);
    assert_int_equal(hal_net_close(f->hh, a), SAT_OK);
    assert_int_equal(hal_net_recv(f->th, c, buf, sizeof buf, &n), SAT_ERR_RESET);
    assert_int_equal(hal_net_close(f->th, c), SAT_OK);
    assert_int_equal(hal_net_close(f->hh, l), SAT_OK);
}

static void test_net_back_pressure_and_bandwidth(void **state)
{
    struct netfx *f = *state;
    hal_sock *l = NULL;
    hal_sock *c = NULL;
    hal_sock *a = NULL;
    uint8_t *big = calloc(1, SIM_NET_CONN_BUFFER_BYTES_MAX);
    size_t total = 0;
    size_t n = 0;
    int ret;
    uint64_t t;

    assert_non_null(big);
    establish(f, &l, &c, &a);
    /* Nobody reads: the sender is stopped at exactly the bound. */
    while ((ret = hal_net_send(f->th, c, big, 10000, &n)) == SAT_OK)
        total += n;
    assert_int_equal(ret, SAT_ERR_WOULD_BLOCK);
    assert_int_equal(total, SIM_NET_CONN_BUFFER_BYTES_MAX);
    assert_int_equal(wait1(f->th, c, HAL_NET_WRITABLE), 0);
    /* Arrival alone frees nothing; reading does. */
    world_to(f, sim_net_now_ms(f->net) + 1000);
    assert_int_equal(hal_net_send(f->th, c, big, 1, &n), SAT_ERR_WOULD_BLOCK);
    assert_int_equal(hal_net_recv(f->hh, a, big, 1000, &n), SAT_OK);
    assert_int_equal(n, 1000);
    assert_int_equal(wait1(f->th, c, HAL_NET_WRITABLE), HAL_NET_WRITABLE);
    assert_int_equal(hal_net_send(f->th, c, big, 5000, &n), SAT_OK);
    assert_int_equal(n, 1000);
    assert_int_equal(hal_net_send(f->th, c, big, 1, &n), SAT_ERR_WOULD_BLOCK);
    /* The other direction is independent. */
    assert_int_equal(hal_net_send(f->hh, a, big, 10, &n), SAT_OK);
    assert_int_equal(hal_net_close(f->th, c), SAT_OK);
    assert_int_equal(hal_net_close(f->hh, a), SAT_OK);

    /* Bandwidth: 10 bytes/ms on the tablet's uplink spaces the chunks out:
     * 1000 bytes take 100 ms to send, then the latency. */
    link_set(f->net, "tablet-1", 1, TAB_LAT_MS, 0, 10, 0);
    c = NULL;
    establish(f, &l, &c, &a);
    t = sim_net_now_ms(f->net);
    assert_int_equal(hal_net_send(f->th, c, big, 1000, &n), SAT_OK);
    assert_int_equal(hal_net_send(f->th, c, big, 1000, &n), SAT_OK);
    assert_int_equal(sim_net_next_event_ms(f->net), t + 100 + ONE_WAY_MS);
    world_to(f, t + 100 + ONE_WAY_MS);
    assert_int_equal(hal_net_recv(f->hh, a, big, SIM_NET_CONN_BUFFER_BYTES_MAX, &n), SAT_OK);
    assert_int_equal(n, 1000);
    assert_int_equal(sim_net_next_event_ms(f->net), t + 200 + ONE_WAY_MS);
    /* The hub's uplink is unlimited, but the tablet's downlink (also 10
     * bytes/ms) spaces the replies: sent at t+150, they reach the tablet
     * at t+200, then take 50 ms each to come down. */
    assert_int_equal(hal_net_send(f->hh, a, big, 500, &n), SAT_OK);
    assert_int_equal(hal_net_send(f->hh, a, big, 500, &n), SAT_OK);
    assert_int_equal(sim_net_next_event_ms(f->net), t + 200 + ONE_WAY_MS);
    world_to(f, t + 200 + ONE_WAY_MS);
    assert_int_equal(hal_net_recv(f->hh, a, big, SIM_NET_CONN_BUFFER_BYTES_MAX, &n), SAT_OK);
    assert_int_equal(n, 1000);
    assert_int_equal(hal_net_recv(f->th, c, big, SIM_NET_CONN_BUFFER_BYTES_MAX, &n), SAT_OK);
    assert_int_equal(n, 500);
    assert_int_equal(hal_net_recv(f->th, c, big, SIM_NET_CONN_BUFFER_BYTES_MAX, &n),
                     SAT_ERR_WOULD_BLOCK);
    assert_int_equal(sim_net_next_event_ms(f->net), t + 300);
    assert_int_equal(hal_net_close(f->th, c), SAT_OK);
    assert_int_equal(hal_net_close(f->hh, a), SAT_OK);
    assert_int_equal(hal_net_close(f->hh, l), SAT_OK);
    free(big);
}

static void test_net_next_event_and_time(void **state)
{
    struct netfx *f = *state;
    hal_sock *l = NULL;
    hal_sock *c = NULL;
    hal_sock *a = NULL;
    hal_sock *r = NULL;
    uint8_t buf[8];
    size_t n = 0;
    uint64_t t;

    assert_int_equal(sim_net_next_event_ms(f->net), UINT64_MAX);
    sim_net_set_now(f->net, 1000);
    sim_hal_advance_ms(f->hub, 1000);
    sim_hal_advance_ms(f->tab, 1000);
    sim_net_set_now(f->net, 10); /* never back */
    assert_int_equal(sim_net_now_ms(f->net), 1000);
    establish(f, &l, &c, &a);
    t = sim_net_now_ms(f->net);
    assert_int_equal(t, 1000 + ONE_WAY_MS);
    /* Several things scheduled: the earliest comes first, each in turn. */
    assert_int_equal(hal_net_connect(f->th, "hub", 9, &r), SAT_OK); /* refused at t+100 */
    world_to(f, t + 10);
    assert_int_equal(hal_net_send(f->hh, a, "1", 1, &n), SAT_OK); /* arrives t+60 */
    world_to(f, t + 20);
    assert_int_equal(hal_net_close(f->th, c), SAT_OK); /* reaches the hub at t+70 */
    assert_int_equal(sim_net_next_event_ms(f->net), t + 70); /* nobody reads "1" now */
    assert_int_equal(hal_net_close(f->hh, a), SAT_OK);
    assert_int_equal(sim_net_next_event_ms(f->net), t + 2 * ONE_WAY_MS);
    world_to(f, t + 2 * ONE_WAY_MS);
    assert_int_equal(sim_net_next_event_ms(f->net), UINT64_MAX);
    assert_int_equal(hal_net_connect_status(f->th, r), SAT_ERR_REFUSED);
    assert_int_equal(hal_net_close(f->th, r), SAT_OK);
    (void)buf;

    /* A reset decided by a draw is an event too: at 1000 per mille every
     * chunk resets its connection, at the chunk's arrival. */
    link_set(f->net, "hub", 1, HUB_LAT_MS, 0, 0, 1000);
    c = NULL;
    establish(f, &l, &c, &a);
    t = sim_net_now_ms(f->net);
    assert_int_equal(hal_net_send(f->th, c, "doomed", 6, &n), SAT_OK);
    assert_int_equal(sim_net_next_event_ms(f->net), t + ONE_WAY_MS);
    world_to(f, t + ONE_WAY_MS - 1);
    assert_int_equal(hal_net_send(f->th, c, "x", 1, &n), SAT_OK); /* not known yet */
    world_to(f, t + ONE_WAY_MS);
    assert_int_equal(hal_net_recv(f->hh, a, buf, sizeof buf, &n), SAT_ERR_RESET);
    assert_int_equal(hal_net_send(f->th, c, "x", 1, &n), SAT_ERR_RESET);
    assert_int_equal(sim_net_next_event_ms(f->net), UINT64_MAX);
    assert_int_equal(hal_net_close(f->th, c), SAT_OK);
    assert_int_equal(hal_net_close(f->hh, a), SAT_OK);
    assert_int_equal(hal_net_close(f->hh, l), SAT_OK);
}

/* A scripted exchange over a link with jitter and random resets; records
 * when each byte count arrived and when resets happened. */
#define TRACE_MAX 4096
struct net_trace {
    uint64_t ev[TRACE_MAX]; /* (time << 20) | (bytes or a marker) */
    size_t n;
    unsigned resets;
};

static void run_net_trace(uint64_t seed, struct net_trace *tr)
{
    enum { MESSAGES = 300, MSG_BYTES = 700, RESET_MARK = 0xfffff };
    struct netfx *f = NULL;
    void *st = NULL;
    hal_sock *l = NULL;
    hal_sock *c = NULL;
    hal_sock *a = NULL;
    uint8_t msg[MSG_BYTES];
    uint8_t got[MSG_BYTES * 4];
    uint64_t next_expected = 0; /* in-order check: byte i of a stream is i % 251 */
    uint64_t stream_sent = 0;
    int sent_msgs = 0;
    memset(tr, 0, sizeof *tr);
    assert_int_equal(net_setup_seed(&st, seed), 0);
    f = st;
    link_set(f->net, "hub", 1, 10, 25, 0, 0);
    link_set(f->net, "tablet-1", 1, 15, 40, 200, 20);
    assert_int_equal(hal_net_listen(f->hh, "hub", 443, &l), SAT_OK);
    while (sent_msgs < MESSAGES) {
        uint64_t now = sim_net_now_ms(f->net);
        uint64_t next;
        size_t n = 0;
        int ret;
        if (!c) {
            assert_int_equal(hal_net_connect(f->th, "hub", 443, &c), SAT_OK);
            stream_sent = 0;
        }
        if (!a && hal_net_accept(f->hh, l, &a) == SAT_OK)
            next_expected = 0;
        if (hal_net_connect_status(f->th, c) == SAT_OK) {
            for (size_t i = 0; i < MSG_BYTES; i++)
                msg[i] = (uint8_t)((stream_sent + i) % 251);
            ret = hal_net_send(f->th, c, msg, MSG_BYTES, &n);
            if (ret == SAT_OK) {
                assert_int_equal(n, MSG_BYTES);
                stream_sent += n;
                sent_msgs++;
            }
        }
        while (a && (ret = hal_net_recv(f->hh, a, got, sizeof got, &n)) == SAT_OK) {
            for (size_t i = 0; i < n; i++, next_expected++)
                assert_int_equal(got[i], (uint8_t)(next_expected % 251));
            assert_true(tr->n < TRACE_MAX);
            tr->ev[tr->n++] = (now << 20) | n;
        }
        if (hal_net_connect_status(f->th, c) == SAT_ERR_RESET) {
            /* Both sides start over, as a sync session would. */
            assert_true(tr->n < TRACE_MAX);
            tr->ev[tr->n++] = (now << 20) | RESET_MARK;
            tr->resets++;
            assert_int_equal(hal_net_close(f->th, c), SAT_OK);
            c = NULL;
            if (a) {
                assert_int_equal(hal_net_recv(f->hh, a, got, sizeof got, &n), SAT_ERR_RESET);
                assert_int_equal(hal_net_close(f->hh, a), SAT_OK);
                a = NULL;
            }
            continue;
        }
        next = sim_net_next_event_ms(f->net);
        if (next == UINT64_MAX || next > now + 5)
            next = now + 5; /* the tablet sends every 5 ms */
        world_to(f, next);
    }
    if (c)
        assert_int_equal(hal_net_close(f->th, c), SAT_OK);
    if (a)
        assert_int_equal(hal_net_close(f->hh, a), SAT_OK);
    assert_int_equal(hal_net_close(f->hh, l), SAT_OK);
    net_teardown(&st);
}

static void test_net_same_seed_same_timing(void **state)
{
    struct net_trace *a = malloc(sizeof *a);
    struct net_trace *b = malloc(sizeof *b);
    struct net_trace *c = malloc(sizeof *c);
    (void)state;
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    run_net_trace(11, a);
    run_net_trace(11, b);
    run_net_trace(12, c);
    assert_true(a->n > 10);
    assert_int_equal(a->n, b->n);
    assert_memory_equal(a->ev, b->ev, a->n * sizeof a->ev[0]);
    assert_true(a->resets > 0); /* 20 per mille per chunk over ~300 chunks */
    assert_true(a->n != c->n || memcmp(a->ev, c->ev, a->n * sizeof a->ev[0]) != 0);
    free(a);
    free(b);
    free(c);
}

static void test_net_power_cut_resets_connections(void **state)
{
    struct netfx *f = *state;
    hal_sock *l = NULL;
    hal_sock *c = NULL;
    hal_sock *a = NULL;
    hal_sock *s2 = NULL;
    uint8_t buf[8];
    size_t n = 0;
    uint16_t port = 0;
    unsigned want = HAL_NET_READABLE;
    unsigned ready = 0;

    establish(f, &l, &c, &a);
    assert_int_equal(hal_net_send(f->th, c, "abc", 3, &n), SAT_OK);
    sim_hal_power_cut(f->tab);
    /* The peer sees a reset at once. */
    assert_int_equal(hal_net_recv(f->hh, a, buf, sizeof buf, &n), SAT_ERR_RESET);
    assert_int_equal(hal_net_send(f->hh, a, "x", 1, &n), SAT_ERR_RESET);
    assert_int_equal(sim_net_next_event_ms(f->net), UINT64_MAX);
    /* While off, every net call of the device fails. */
    assert_int_equal(hal_net_link_up(f->th), 0);
    assert_int_equal(hal_net_connect(f->th, "hub", 1, &s2), SAT_ERR_POWER_CUT);
    assert_int_equal(hal_net_listen(f->th, NULL, 0, &s2), SAT_ERR_POWER_CUT);
    assert_int_equal(hal_net_recv(f->th, c, buf, sizeof buf, &n), SAT_ERR_POWER_CUT);
    assert_int_equal(hal_net_wait(f->th, &c, &want, &ready, 1, 0), SAT_ERR_POWER_CUT);
    sim_hal_power_on(f->tab);
    assert_int_equal(hal_net_link_up(f->th), 1);
    /* Sockets from before the cut stay dead; net_wait reports them ready
     * so the caller finds out. */
    assert_int_equal(hal_net_send(f->th, c, "x", 1, &n), SAT_ERR_POWER_CUT);
    assert_int_equal(hal_net_connect_status(f->th, c), SAT_ERR_POWER_CUT);
    assert_int_equal(hal_net_local_port(f->th, c, &port), SAT_ERR_POWER_CUT);
    assert_int_equal(wait1(f->th, c, HAL_NET_READABLE), HAL_NET_READABLE);
    assert_int_equal(hal_net_close(f->th, c), SAT_OK);
    assert_int_equal(hal_net_close(f->hh, a), SAT_OK);
    /* New connections work after power-on. */
    c = NULL;
    establish(f, &l, &c, &a);
    assert_int_equal(hal_net_close(f->th, c), SAT_OK);
    assert_int_equal(hal_net_close(f->hh, a), SAT_OK);

    /* The hub's power cut takes its listener and its waiting connections. */
    assert_int_equal(hal_net_local_port(f->hh, l, &port), SAT_OK);
    assert_int_equal(hal_net_connect(f->th, "hub", port, &c), SAT_OK);
    sim_hal_power_cut(f->hub);
    sim_hal_power_on(f->hub);
    assert_int_equal(hal_net_connect_status(f->th, c), SAT_ERR_RESET);
    assert_int_equal(hal_net_accept(f->hh, l, &a), SAT_ERR_POWER_CUT);
    assert_int_equal(hal_net_close(f->hh, l), SAT_OK);
    assert_int_equal(hal_net_close(f->th, c), SAT_OK);
    /* Its old port is free again. */
    assert_int_equal(hal_net_listen(f->hh, "hub", port, &l), SAT_OK);
    assert_int_equal(hal_net_close(f->hh, l), SAT_OK);
}

static void test_net_listen_loopback_and_limits(void **state)
{
    struct netfx *f = *state;
    hal_sock *l = NULL;
    hal_sock *l2 = NULL;
    hal_sock *c = NULL;
    hal_sock *a = NULL;
    hal_sock *ls[SIM_NET_NODE_LISTENERS_MAX];
    hal_sock **cs = calloc(SIM_NET_NODE_CONNS_MAX, sizeof *cs);
    uint16_t p1 = 0;
    uint16_t p2 = 0;
    uint8_t buf[8];
    size_t n = 0;
    struct sim_link link = { 1, 0, 0, 0, SIM_NET_RESET_PER_MILLE_MAX };
    struct sim_link bad = { 1, 0, 0, 0, SIM_NET_RESET_PER_MILLE_MAX + 1 };
    struct sim_net_stats st;
    struct sim_hal *third = NULL;

    assert_non_null(cs);
    /* Hosts a node may listen on; port 0 picks distinct free ports. */
    assert_int_equal(hal_net_listen(f->hh, "tablet-1", 80, &l), SAT_ERR_INVALID);
    assert_int_equal(hal_net_listen(f->hh, "hub", 0, &l), SAT_OK);
    assert_int_equal(hal_net_listen(f->hh, "127.0.0.1", 0, &l2), SAT_OK);
    assert_int_equal(hal_net_local_port(f->hh, l, &p1), SAT_OK);
    assert_int_equal(hal_net_local_port(f->hh, l2, &p2), SAT_OK);
    assert_int_not_equal(p1, p2);
    assert_int_equal(hal_net_listen(f->hh, "0.0.0.0", p1, &c), SAT_ERR_EXISTS);

    /* Loopback (also to the node's own name): immediate, no latency. */
    assert_int_equal(hal_net_connect(f->hh, "127.0.0.1", p2, &c), SAT_OK);
    assert_int_equal(hal_net_connect_status(f->hh, c), SAT_OK);
    assert_int_equal(hal_net_accept(f->hh, l2, &a), SAT_OK);
    assert_int_equal(hal_net_send(f->hh, c, "lo", 2, &n), SAT_OK);
    assert_int_equal(hal_net_recv(f->hh, a, buf, sizeof buf, &n), SAT_OK);
    assert_int_equal(n, 2);
    /* The link does not carry loopback. */
    link_set(f->net, "hub", 0, HUB_LAT_MS, 0, 0, 0);
    assert_int_equal(hal_net_send(f->hh, a, "ok", 2, &n), SAT_OK);
    assert_int_equal(hal_net_recv(f->hh, c, buf, sizeof buf, &n), SAT_OK);
    link_set(f->net, "hub", 1, HUB_LAT_MS, 0, 0, 0);
    assert_int_equal(hal_net_close(f->hh, c), SAT_OK);
    assert_int_equal(hal_net_recv(f->hh, a, buf, sizeof buf, &n), SAT_ERR_CLOSED);
    assert_int_equal(hal_net_close(f->hh, a), SAT_OK);
    assert_int_equal(hal_net_connect(f->hh, "hub", 1, &c), SAT_OK);
    assert_int_equal(hal_net_connect_status(f->hh, c), SAT_ERR_REFUSED);
    assert_int_equal(hal_net_close(f->hh, c), SAT_OK);
    assert_int_equal(hal_net_close(f->hh, l2), SAT_OK);

    /* Listener limit. */
    for (unsigned i = 1; i < SIM_NET_NODE_LISTENERS_MAX; i++)
        assert_int_equal(hal_net_listen(f->hh, NULL, 0, &ls[i]), SAT_OK);
    assert_int_equal(hal_net_listen(f->hh, NULL, 0, &ls[0]), SAT_ERR_NO_MEMORY);
    for (unsigned i = 1; i < SIM_NET_NODE_LISTENERS_MAX; i++)
        assert_int_equal(hal_net_close(f->hh, ls[i]), SAT_OK);

    /* Backlog: the connect beyond it is refused after a round trip. */
    for (unsigned i = 0; i < SIM_NET_LISTEN_BACKLOG_MAX + 1; i++)
        assert_int_equal(hal_net_connect(f->th, "hub", p1, &cs[i]), SAT_OK);
    world_to(f, sim_net_now_ms(f->net) + 2 * ONE_WAY_MS);
    for (unsigned i = 0; i < SIM_NET_LISTEN_BACKLOG_MAX; i++)
        assert_int_equal(hal_net_connect_status(f->th, cs[i]), SAT_OK);
    assert_int_equal(hal_net_connect_status(f->th, cs[SIM_NET_LISTEN_BACKLOG_MAX]),
                     SAT_ERR_REFUSED);
    /* Connections per node: the tablet's own ends are bounded too. */
    for (unsigned i = SIM_NET_LISTEN_BACKLOG_MAX + 1; i < SIM_NET_NODE_CONNS_MAX; i++)
        assert_int_equal(hal_net_connect(f->th, "hub", 7, &cs[i]), SAT_OK);
    assert_int_equal(hal_net_connect(f->th, "hub", 7, &c), SAT_ERR_NO_MEMORY);
    for (unsigned i = 0; i < SIM_NET_NODE_CONNS_MAX; i++)
        assert_int_equal(hal_net_close(f->th, cs[i]), SAT_OK);
    assert_int_equal(hal_net_connect(f->th, "hub", 7, &c), SAT_OK);
    assert_int_equal(hal_net_close(f->th, c), SAT_OK);
    assert_int_equal(hal_net_close(f->hh, l), SAT_OK);

    /* Attach and link errors; a foreign socket. */
    assert_int_equal(sim_net_attach(f->net, f->tab, "tablet-9"), SAT_ERR_INVALID);
    assert_int_equal(sim_hal_new(&third, 3, WALL_START_MS), SAT_OK);
    assert_int_equal(sim_net_attach(f->net, third, "hub"), SAT_ERR_EXISTS);
    assert_int_equal(sim_net_attach(f->net, third, "127.0.0.1"), SAT_ERR_INVALID);
    assert_int_equal(sim_net_attach(f->net, third, "bad name"), SAT_ERR_INVALID);
    assert_int_equal(sim_net_attach(f->net, third, ""), SAT_ERR_INVALID);
    assert_int_equal(sim_net_set_link(f->net, "tablet-9", &link), SAT_ERR_NOT_FOUND);
    assert_int_equal(sim_net_set_link(f->net, "hub", &bad), SAT_ERR_INVALID);
    assert_int_equal(sim_net_set_link(f->net, "hub", NULL), SAT_ERR_INVALID);
    assert_int_equal(sim_net_stats(f->net, "tablet-9", &st), SAT_ERR_NOT_FOUND);
    assert_int_equal(sim_hal_net_stats(third, &st), SAT_ERR_NOT_SUPPORTED);
    assert_int_equal(sim_net_attach(f->net, third, "tablet-2"), SAT_OK);
    assert_int_equal(hal_net_listen(f->hh, NULL, 0, &l), SAT_OK);
    assert_int_equal(hal_net_accept(sim_hal_hal(third), l, &a), SAT_ERR_INVALID);
    assert_int_equal(hal_net_close(sim_hal_hal(third), l), SAT_ERR_INVALID);
    assert_int_equal(hal_net_local_port(f->hh, l, &p1), SAT_OK);
    /* A device freed while connected: the peer sees a reset; its address
     * becomes unknown, then can be taken by another device. */
    assert_int_equal(hal_net_connect(sim_hal_hal(third), "hub", p1, &c), SAT_OK);
    world_to(f, sim_net_now_ms(f->net) + ONE_WAY_MS);
    assert_int_equal(hal_net_accept(f->hh, l, &a), SAT_OK);
    sim_hal_free(third);
    assert_int_equal(hal_net_recv(f->hh, a, buf, sizeof buf, &n), SAT_ERR_RESET);
    assert_int_equal(hal_net_connect(f->hh, "tablet-2", 1, &c), SAT_ERR_UNREACHABLE);
    assert_int_equal(sim_hal_new(&third, 4, WALL_START_MS), SAT_OK);
    assert_int_equal(sim_net_attach(f->net, third, "tablet-2"), SAT_OK);
    sim_hal_free(third);
    assert_int_equal(hal_net_close(f->hh, a), SAT_OK);
    assert_int_equal(hal_net_close(f->hh, l), SAT_OK);
    free(cs);
}

/* The network may go first: the devices' sockets stay safe to close. */
static void test_net_freed_before_devices(void **state)
{
    struct sim_net *net = NULL;
    struct sim_hal *a = NULL;
    struct sim_hal *b = NULL;
    hal_sock *l = NULL;
    hal_sock *c = NULL;
    hal_sock *s = NULL;
    uint16_t port = 0;
    size_t n = 0;
    (void)state;
    assert_int_equal(sim_net_new(&net, 1), SAT_OK);
    assert_int_equal(sim_hal_new(&a, 1, WALL_START_MS), SAT_OK);
    assert_int_equal(sim_hal_new(&b, 2, WALL_START_MS), SAT_OK);
    assert_int_equal(sim_net_attach(net, a, "a"), SAT_OK);
    assert_int_equal(sim_net_attach(net, b, "b"), SAT_OK);
    assert_int_equal(hal_net_listen(sim_hal_hal(a), NULL, 0, &l), SAT_OK);
    assert_int_equal(hal_net_local_port(sim_hal_hal(a), l, &port), SAT_OK);
    assert_int_equal(hal_net_connect(sim_hal_hal(b), "a", port, &c), SAT_OK);
    assert_int_equal(hal_net_connect(sim_hal_hal(b), "a", port, &s), SAT_OK);
    /* No latency by default: up at once; the byte is still queued when the
     * network goes. */
    assert_int_equal(hal_net_send(sim_hal_hal(b), c, "x", 1, &n), SAT_OK);
    sim_net_free(net);
    assert_int_equal(hal_net_send(sim_hal_hal(b), c, "x", 1, &n), SAT_ERR_NOT_SUPPORTED);
    assert_int_equal(hal_net_link_up(sim_hal_hal(b)), 0);
    assert_int_equal(hal_net_close(sim_hal_hal(b), c), SAT_OK);
    sim_hal_free(a); /* frees the listener */
    sim_hal_free(b); /* frees s */
}

/* ---- clock skew and battery --------------------------------------------------- */

static void test_clock_skew_and_drift(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = fx->h;
    struct sim_hal *sim = NULL;

    assert_int_equal(sim_hal_set_clock_skew(fx->sim, -3600000, 50), SAT_OK);
    assert_int_equal(hal_clock_wall_ms(h), WALL_START_MS - 3600000);
    sim_hal_advance_ms(fx->sim, 10000);
    assert_int_equal(hal_clock_monotonic_ms(h), 10000); /* never scaled */
    assert_int_equal(hal_clock_wall_ms(h), WALL_START_MS - 3600000 + 10000);
    sim_hal_advance_ms(fx->sim, 1000000 - 10000);
    assert_int_equal(hal_clock_wall_ms(h), WALL_START_MS - 3600000 + 1000000 + 50);
    sim_hal_advance_ms(fx->sim, 19999);
    /* floor(1019999 * 50 / 1e6) = 50 */
    assert_int_equal(hal_clock_wall_ms(h), WALL_START_MS - 3600000 + 1019999 + 50);
    sim_hal_advance_ms(fx->sim, 1);
    assert_int_equal(hal_clock_wall_ms(h), WALL_START_MS - 3600000 + 1020000 + 51);
    assert_int_equal(hal_clock_monotonic_ms(h), 1020000);

    /* Setting the wall clock re-bases it (offset and drift stay). */
    sim_hal_set_wall_ms(fx->sim, 5000);
    assert_int_equal(hal_clock_wall_ms(h), 5000);
    sim_hal_advance_ms(fx->sim, 2000000);
    assert_int_equal(hal_clock_wall_ms(h), 5000 + 2000000 + 100);

    assert_int_equal(sim_hal_set_clock_skew(fx->sim, 0, 1000001), SAT_ERR_INVALID);
    assert_int_equal(sim_hal_set_clock_skew(fx->sim, 0, -1000001), SAT_ERR_INVALID);

    /* A slow clock rounds toward minus infinity. */
    assert_int_equal(sim_hal_new(&sim, 9, WALL_START_MS), SAT_OK);
    assert_int_equal(sim_hal_set_clock_skew(sim, 0, -1), SAT_OK);
    sim_hal_advance_ms(sim, 1);
    assert_int_equal(hal_clock_wall_ms(sim_hal_hal(sim)), WALL_START_MS); /* 1 + floor(-1e-6) */
    sim_hal_advance_ms(sim, 999999);
    assert_int_equal(hal_clock_wall_ms(sim_hal_hal(sim)), WALL_START_MS + 1000000 - 1);
    /* -1e6 ppm stops it; +1e6 runs it double. */
    assert_int_equal(sim_hal_set_clock_skew(sim, 7, -1000000), SAT_OK);
    assert_int_equal(hal_clock_wall_ms(sim_hal_hal(sim)), WALL_START_MS + 7);
    sim_hal_advance_ms(sim, 123456);
    assert_int_equal(hal_clock_wall_ms(sim_hal_hal(sim)), WALL_START_MS + 7);
    assert_int_equal(sim_hal_set_clock_skew(sim, 0, 1000000), SAT_OK);
    assert_int_equal(hal_clock_wall_ms(sim_hal_hal(sim)), WALL_START_MS + 2 * 1123456);
    /* Saturates instead of wrapping. */
    sim_hal_advance_ms(sim, UINT64_MAX);
    assert_int_equal(hal_clock_monotonic_ms(sim_hal_hal(sim)), UINT64_MAX);
    assert_true(hal_clock_wall_ms(sim_hal_hal(sim)) == INT64_MAX);
    sim_hal_free(sim);
}

static void test_battery(void **state)
{
    struct fixture *fx = *state;
    int pct = -5;
    assert_int_equal(hal_power_battery_pct(fx->h, &pct), SAT_ERR_NOT_SUPPORTED);
    assert_int_equal(pct, -5);
    sim_hal_set_battery(fx->sim, 55);
    assert_int_equal(hal_power_battery_pct(fx->h, &pct), SAT_OK);
    assert_int_equal(pct, 55);
    sim_hal_set_battery(fx->sim, 0);
    assert_int_equal(hal_power_battery_pct(fx->h, &pct), SAT_OK);
    assert_int_equal(pct, 0);
    sim_hal_set_battery(fx->sim, 150);
    assert_int_equal(hal_power_battery_pct(fx->h, &pct), SAT_OK);
    assert_int_equal(pct, 100);
    sim_hal_power_cut(fx->sim); /* the battery is not storage */
    assert_int_equal(hal_power_battery_pct(fx->h, &pct), SAT_OK);
    assert_int_equal(pct, 100);
    sim_hal_set_battery(fx->sim, -1);
    assert_int_equal(hal_power_battery_pct(fx->h, &pct), SAT_ERR_NOT_SUPPORTED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_storage_write_sync_read_list_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_storage_rejects_bad_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_storage_handles_share_a_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_storage_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsupported_members, setup, teardown),
        cmocka_unit_test(test_synced_data_survives_cut),
        cmocka_unit_test(test_unsynced_write_dropped_kept_or_torn),
        cmocka_unit_test(test_torn_write_drops_later_writes),
        cmocka_unit_test(test_torn_extending_write),
        cmocka_unit_test(test_unsynced_truncate_kept_or_dropped),
        cmocka_unit_test_setup_teardown(test_created_file_survives_cut_unsynced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_bytes_tamper_is_on_flash, setup, teardown),
        cmocka_unit_test(test_cut_at_fires_on_nth_counted_op),
        cmocka_unit_test(test_cut_at_sync_or_truncate_has_no_effect),
        cmocka_unit_test_setup_teardown(test_after_cut_handles_dead_and_power_off_fails_all,
                                        setup, teardown),
        cmocka_unit_test(test_same_seed_same_run),
        cmocka_unit_test_setup_teardown(test_entropy_differs_between_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clocks_move_only_when_told, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keystore_secret_and_counters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clock_skew_and_drift, setup, teardown),
        cmocka_unit_test_setup_teardown(test_battery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_net_connect_accept_send_recv_with_latency, net_setup,
                                        net_teardown),
        cmocka_unit_test_setup_teardown(test_net_refused_and_unreachable, net_setup,
                                        net_teardown),
        cmocka_unit_test_setup_teardown(test_net_link_down_resets_both_ends, net_setup,
                                        net_teardown),
        cmocka_unit_test_setup_teardown(test_net_close_drains_then_closed, net_setup,
                                        net_teardown),
        cmocka_unit_test_setup_teardown(test_net_back_pressure_and_bandwidth, net_setup,
                                        net_teardown),
        cmocka_unit_test_setup_teardown(test_net_next_event_and_time, net_setup, net_teardown),
        cmocka_unit_test_setup_teardown(test_net_power_cut_resets_connections, net_setup,
                                        net_teardown),
        cmocka_unit_test_setup_teardown(test_net_listen_loopback_and_limits, net_setup,
                                        net_teardown),
        cmocka_unit_test(test_net_freed_before_devices),
        cmocka_unit_test(test_net_same_seed_same_timing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
