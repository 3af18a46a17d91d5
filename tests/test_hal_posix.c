/* test_hal_posix.c - the POSIX HAL against its contract in hal.h. */
#define _GNU_SOURCE /* mkdtemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hal_posix.h"

struct fixture {
    char dir[64];
    struct hal h;
};

static int rm_rf(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/satchel-hal-XXXXXX");
    if (!mkdtemp(f->dir) || hal_posix_open(&f->h, f->dir) != SAT_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    hal_posix_close(&f->h);
    rm_rf(f->dir);
    free(f);
    return 0;
}

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

static void test_storage_write_sync_read_list_delete(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    hal_file *f = NULL;
    hal_file *g = NULL;
    uint8_t buf[100];
    size_t got = 0;
    uint64_t size = 0;
    struct names names = { 0 };

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
    assert_int_equal(hal_storage_read_full(h, f, 12, buf, 4), SAT_ERR_IO);
    assert_int_equal(hal_storage_truncate(h, f, 12), SAT_OK);
    assert_int_equal(hal_storage_size(h, f, &size), SAT_OK);
    assert_int_equal(size, 12);
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

    assert_int_equal(hal_storage_list(h, collect, &names), SAT_OK);
    assert_int_equal(names.count, 2); /* the hidden key store is not listed */
    assert_true(names.saw_a && names.saw_b);

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
    assert_int_equal(hal_storage_open(&fx->h, "../escape", HAL_OPEN_CREATE, &f), SAT_ERR_INVALID);
    assert_int_equal(hal_storage_open(&fx->h, ".keystore", HAL_OPEN_CREATE, &f), SAT_ERR_INVALID);
    assert_int_equal(hal_storage_open(&fx->h, "", HAL_OPEN_CREATE, &f), SAT_ERR_INVALID);
    assert_int_equal(hal_storage_open(&fx->h, long_name, HAL_OPEN_CREATE, &f), SAT_ERR_INVALID);
    assert_int_equal(hal_storage_delete(&fx->h, "a/b"), SAT_ERR_INVALID);
}

static void test_entropy_differs_between_calls(void **state)
{
    struct fixture *fx = *state;
    uint8_t a[32];
    uint8_t b[32];
    assert_int_equal(hal_entropy_fill(&fx->h, a, sizeof a), SAT_OK);
    assert_int_equal(hal_entropy_fill(&fx->h, b, sizeof b), SAT_OK);
    assert_memory_not_equal(a, b, sizeof a);
}

static void test_monotonic_clock_never_goes_backwards(void **state)
{
    struct fixture *fx = *state;
    uint64_t prev = hal_clock_monotonic_ms(&fx->h);
    for (int i = 0; i < 100000; i++) {
        uint64_t now = hal_clock_monotonic_ms(&fx->h);
        assert_true(now >= prev);
        prev = now;
    }
    /* The wall clock is after 2020-01-01 on any machine that runs this. */
    assert_true(hal_clock_wall_ms(&fx->h) > 1577836800000LL);
}

static void test_keystore_secret_and_counters(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    uint8_t s1[HAL_DEVICE_SECRET_BYTES];
    uint8_t s2[HAL_DEVICE_SECRET_BYTES];
    uint64_t v = 99;

    assert_int_equal(hal_keystore_device_secret(h, s1), SAT_OK);
    assert_int_equal(hal_keystore_device_secret(h, s2), SAT_OK);
    assert_memory_equal(s1, s2, sizeof s1); /* stable */

    assert_int_equal(hal_keystore_counter_read(h, HAL_COUNTER_PIN_FAILURES, &v), SAT_OK);
    assert_int_equal(v, 0);
    assert_int_equal(hal_keystore_counter_advance(h, HAL_COUNTER_PIN_FAILURES, 3), SAT_OK);
    assert_int_equal(hal_keystore_counter_advance(h, HAL_COUNTER_PIN_FAILURES, 2),
                     SAT_ERR_INVALID);
    assert_int_equal(hal_keystore_counter_read(h, HAL_COUNTER_PIN_FAILURES, &v), SAT_OK);
    assert_int_equal(v, 3);
    assert_int_equal(hal_keystore_counter_read(h, HAL_COUNTERS_MAX, &v), SAT_ERR_INVALID);

    /* Survives a restart of the HAL. */
    hal_posix_close(&fx->h);
    assert_int_equal(hal_posix_open(&fx->h, fx->dir), SAT_OK);
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
}

static int free_port(const struct hal *h, uint16_t *port)
{
    hal_sock *l = NULL;
    int ret = hal_net_listen(h, "127.0.0.1", 0, &l);
    if (ret != SAT_OK)
        return ret;
    ret = hal_net_local_port(h, l, port);
    hal_net_close(h, l);
    return ret;
}

static void test_net_connect_to_closed_port_is_refused(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    hal_sock *s = NULL;
    uint16_t port = 0;
    int ret;
    assert_int_equal(free_port(h, &port), SAT_OK);
    ret = hal_net_connect(h, "127.0.0.1", port, &s);
    if (ret == SAT_OK) {
        /* In progress: the failure shows up once the connect resolves. */
        unsigned want = HAL_NET_WRITABLE;
        unsigned ready = 0;
        hal_net_wait(h, &s, &want, &ready, 1, 5000);
        ret = hal_net_connect_status(h, s);
        hal_net_close(h, s);
    }
    assert_int_equal(ret, SAT_ERR_REFUSED);
    assert_string_equal(sat_strerror(ret),
                        "connection refused (is the server running on that port?)");
}

static void test_net_loopback_roundtrip_nonblocking(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    hal_sock *l = NULL;
    hal_sock *c = NULL;
    hal_sock *a = NULL;
    uint16_t port = 0;
    size_t n = 0;
    char buf[16];
    int ret;

    assert_int_equal(hal_net_listen(h, "127.0.0.1", 0, &l), SAT_OK);
    assert_int_equal(hal_net_local_port(h, l, &port), SAT_OK);
    assert_int_equal(hal_net_accept(h, l, &a), SAT_ERR_WOULD_BLOCK);
    assert_int_equal(hal_net_connect(h, "127.0.0.1", port, &c), SAT_OK);
    for (int i = 0; i < 100 && (ret = hal_net_accept(h, l, &a)) == SAT_ERR_WOULD_BLOCK; i++) {
        unsigned want = HAL_NET_READABLE;
        unsigned ready = 0;
        hal_net_wait(h, &l, &want, &ready, 1, 100);
    }
    assert_int_equal(ret, SAT_OK);
    assert_int_equal(hal_net_recv(h, a, buf, sizeof buf, &n), SAT_ERR_WOULD_BLOCK);
    do {
        ret = hal_net_send(h, c, "ping", 4, &n);
    } while (ret == SAT_ERR_WOULD_BLOCK);
    assert_int_equal(ret, SAT_OK);
    assert_int_equal(n, 4);
    {
        unsigned want = HAL_NET_READABLE;
        unsigned ready = 0;
        assert_int_equal(hal_net_wait(h, &a, &want, &ready, 1, 5000), SAT_OK);
        assert_int_equal(ready, HAL_NET_READABLE);
    }
    assert_int_equal(hal_net_recv(h, a, buf, sizeof buf, &n), SAT_OK);
    assert_int_equal(n, 4);
    assert_memory_equal(buf, "ping", 4);
    assert_int_equal(hal_net_close(h, c), SAT_OK);
    {
        unsigned want = HAL_NET_READABLE;
        unsigned ready = 0;
        hal_net_wait(h, &a, &want, &ready, 1, 5000);
    }
    assert_int_equal(hal_net_recv(h, a, buf, sizeof buf, &n), SAT_ERR_CLOSED);
    hal_net_close(h, a);
    hal_net_close(h, l);
}

static void test_boot_trial_confirm_and_rollback(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    int slot = -1;
    assert_int_equal(hal_boot_active_slot(h, &slot), SAT_OK);
    assert_int_equal(slot, 0);
    /* Trial B, never confirmed: the next boot goes back to A. */
    assert_int_equal(hal_boot_set_trial(h, 1), SAT_OK);
    assert_int_equal(hal_boot_reboot(h), SAT_OK);
    assert_int_equal(hal_boot_active_slot(h, &slot), SAT_OK);
    assert_int_equal(slot, 1);
    assert_int_equal(hal_boot_reboot(h), SAT_OK);
    assert_int_equal(hal_boot_active_slot(h, &slot), SAT_OK);
    assert_int_equal(slot, 0);
    /* Trial B, confirmed: it stays. */
    assert_int_equal(hal_boot_set_trial(h, 1), SAT_OK);
    assert_int_equal(hal_boot_reboot(h), SAT_OK);
    assert_int_equal(hal_boot_confirm(h), SAT_OK);
    assert_int_equal(hal_boot_reboot(h), SAT_OK);
    assert_int_equal(hal_boot_active_slot(h, &slot), SAT_OK);
    assert_int_equal(slot, 1);
    assert_int_equal(hal_boot_set_trial(h, 2), SAT_ERR_INVALID);
}

static void test_null_member_is_not_supported(void **state)
{
    struct hal empty = { .version = HAL_VERSION };
    uint8_t b[4];
    int pct = 0;
    (void)state;
    assert_int_equal(hal_entropy_fill(&empty, b, sizeof b), SAT_ERR_NOT_SUPPORTED);
    assert_int_equal(hal_power_battery_pct(&empty, &pct), SAT_ERR_NOT_SUPPORTED);
    assert_int_equal(hal_keystore_wipe(&empty), SAT_ERR_NOT_SUPPORTED);
    hal_log(&empty, HAL_LOG_ERROR, "no logger: %d", 1); /* must not crash */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_storage_write_sync_read_list_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_storage_rejects_bad_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entropy_differs_between_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_monotonic_clock_never_goes_backwards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keystore_secret_and_counters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_net_connect_to_closed_port_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_net_loopback_roundtrip_nonblocking, setup, teardown),
        cmocka_unit_test_setup_teardown(test_boot_trial_confirm_and_rollback, setup, teardown),
        cmocka_unit_test(test_null_member_is_not_supported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
