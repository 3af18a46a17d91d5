/* test_sim_hal.c - the simulated HAL against hal.h and sim_hal.h: the same
 * storage contract as the POSIX HAL, plus power cuts, determinism from the
 * seed, virtual clocks and the in-memory key store. */
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
