/* test_record_id.c - time-ordered record ids: RFC 9562's UUIDv7 layout
 * (checked against the RFC's worked example), the time prefix, clamping,
 * and ids that sort in the order they were made. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "record_id.h"

/* RFC 9562, Appendix A.6: 2022-02-22 19:22:22 UTC (0x017F22E279B0 ms) and
 * rand_a 0xCC3, rand_b 0x18C4DC0C0C07398F give
 * 017F22E2-79B0-7CC3-98C4-DC0C0C07398F. The random bytes below place those
 * bits (the version and variant bits they overwrite are don't-cares). */
static void test_rfc_9562_example(void **state)
{
    static const uint8_t rnd[RECORD_ID_RANDOM_BYTES] = { 0x0c, 0xc3, 0x18, 0xc4, 0xdc,
                                                         0x0c, 0x0c, 0x07, 0x39, 0x8f };
    static const uint8_t want[RECORD_ID_BYTES] = { 0x01, 0x7f, 0x22, 0xe2, 0x79, 0xb0,
                                                   0x7c, 0xc3, 0x98, 0xc4, 0xdc, 0x0c,
                                                   0x0c, 0x07, 0x39, 0x8f };
    uint8_t id[RECORD_ID_BYTES];
    (void)state;
    record_id_make(0x017F22E279B0LL, rnd, id);
    assert_memory_equal(id, want, sizeof want);
    assert_int_equal(record_id_ms(id), 0x017F22E279B0LL);
}

/* Whatever the random bytes, the version is 7 and the variant 10. */
static void test_version_and_variant_bits(void **state)
{
    uint8_t rnd[RECORD_ID_RANDOM_BYTES], id[RECORD_ID_BYTES];
    (void)state;
    memset(rnd, 0xff, sizeof rnd);
    record_id_make(1, rnd, id);
    assert_int_equal(id[6] & 0xf0, 0x70);
    assert_int_equal(id[8] & 0xc0, 0x80);
    memset(rnd, 0x00, sizeof rnd);
    record_id_make(1, rnd, id);
    assert_int_equal(id[6], 0x70);
    assert_int_equal(id[8], 0x80);
}

static void test_time_is_clamped(void **state)
{
    uint8_t rnd[RECORD_ID_RANDOM_BYTES] = { 0 }, id[RECORD_ID_BYTES];
    (void)state;
    record_id_make(-5, rnd, id);
    assert_int_equal(record_id_ms(id), 0);
    record_id_make(RECORD_ID_MS_MAX + 1000, rnd, id);
    assert_int_equal(record_id_ms(id), RECORD_ID_MS_MAX);
    record_id_make(RECORD_ID_MS_MAX, rnd, id);
    assert_int_equal(record_id_ms(id), RECORD_ID_MS_MAX);
}

/* Byte order (what SQLite's BLOB index uses) follows time, whatever the
 * random part, and ids of one millisecond differ by their random part. */
static void test_ids_sort_by_time(void **state)
{
    uint8_t prev[RECORD_ID_BYTES], id[RECORD_ID_BYTES];
    uint8_t hi[RECORD_ID_RANDOM_BYTES], lo[RECORD_ID_RANDOM_BYTES];
    (void)state;
    memset(hi, 0xff, sizeof hi);
    memset(lo, 0x00, sizeof lo);
    record_id_make(1700000000000LL, hi, prev);
    for (int64_t ms = 1700000000001LL; ms < 1700000000000LL + 300; ms += 7) {
        record_id_make(ms, (ms & 1) ? hi : lo, id);
        assert_true(memcmp(prev, id, RECORD_ID_BYTES) < 0);
        memcpy(prev, id, sizeof id);
    }
    record_id_make(1700000000000LL, lo, id);
    record_id_make(1700000000000LL, hi, prev);
    assert_true(memcmp(id, prev, RECORD_ID_BYTES) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_9562_example),
        cmocka_unit_test(test_version_and_variant_bits),
        cmocka_unit_test(test_time_is_clamped),
        cmocka_unit_test(test_ids_sort_by_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
