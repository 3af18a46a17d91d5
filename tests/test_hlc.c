/* test_hlc.c - hybrid logical clock ordering under skewed, jumping clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hlc.h"

static void test_tick_monotonic_when_wall_clock_jumps_back(void **state)
{
    struct hlc clock = { 0, 0 };
    struct hlc a = hlc_tick(&clock, 10000);
    struct hlc b = hlc_tick(&clock, 5000); /* clock set back by the nurse */
    struct hlc c = hlc_tick(&clock, 5000);
    (void)state;
    assert_true(hlc_compare(a, b) < 0);
    assert_true(hlc_compare(b, c) < 0);
    assert_int_equal(b.wall_ms, 10000);
    assert_int_equal(c.counter, 2);
    struct hlc d = hlc_tick(&clock, 20000);
    assert_int_equal(d.wall_ms, 20000);
    assert_int_equal(d.counter, 0);
}

static void test_receive_orders_after_send_despite_skew(void **state)
{
    struct hlc fast = { 0, 0 };
    struct hlc slow = { 0, 0 };
    (void)state;
    /* Device A's clock runs an hour ahead of device B's. */
    struct hlc sent = hlc_tick(&fast, 3600000 + 1000);
    hlc_observe(&slow, sent, 1000);
    struct hlc after = hlc_tick(&slow, 1001);
    assert_true(hlc_compare(sent, after) < 0);
    assert_int_equal(after.wall_ms, sent.wall_ms);
}

static void test_observe_equal_walls_takes_larger_counter(void **state)
{
    struct hlc clock = { 500, 7 };
    struct hlc remote = { 500, 9 };
    (void)state;
    hlc_observe(&clock, remote, 100);
    struct hlc next = hlc_tick(&clock, 100);
    assert_int_equal(next.wall_ms, 500);
    assert_int_equal(next.counter, 10);
}

static void test_counter_overflow_borrows_next_ms(void **state)
{
    struct hlc clock = { 42, UINT32_MAX };
    (void)state;
    struct hlc next = hlc_tick(&clock, 0);
    assert_int_equal(next.wall_ms, 43);
    assert_int_equal(next.counter, 0);
}

static void test_negative_wall_clock_is_floored(void **state)
{
    struct hlc clock = { 0, 0 };
    (void)state;
    struct hlc a = hlc_tick(&clock, -5);
    struct hlc b = hlc_tick(&clock, -5);
    assert_int_equal(a.wall_ms, 0);
    assert_true(hlc_compare(a, b) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tick_monotonic_when_wall_clock_jumps_back),
        cmocka_unit_test(test_receive_orders_after_send_despite_skew),
        cmocka_unit_test(test_observe_equal_walls_takes_larger_counter),
        cmocka_unit_test(test_counter_overflow_borrows_next_ms),
        cmocka_unit_test(test_negative_wall_clock_is_floored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
