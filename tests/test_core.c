/*
 * test_core.c - core/: hex, calendar dates, HOST:PORT and the DRBG, the
 * pieces every other module now shares (a bug here is a bug everywhere).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "sat_date.h"
#include "sat_drbg.h"
#include "sat_hex.h"
#include "sat_hostport.h"
#include "sat_sql.h"

static void test_hex_round_trip_and_refusals(void **state)
{
    const uint8_t id[SAT_ID_BYTES] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
                                       0x00, 0xff, 0x10, 0x0f, 0xa5, 0x5a, 0x7e, 0xe7 };
    uint8_t back[SAT_ID_BYTES];
    uint8_t untouched[2] = { 0xaa, 0xbb };
    char hex[SAT_ID_HEX_BYTES];
    (void)state;
    sat_hex_encode(id, sizeof id, hex);
    assert_string_equal(hex, "0123456789abcdef00ff100fa55a7ee7");
    assert_int_equal(sat_hex_decode(hex, back, sizeof back), SAT_OK);
    assert_memory_equal(back, id, sizeof id);
    assert_int_equal(sat_hex_decode("0123456789ABCDEF00FF100FA55A7EE7", back, sizeof back),
                     SAT_OK);
    assert_memory_equal(back, id, sizeof id);
    /* Wrong length, a non-digit (anywhere, signs and spaces included):
     * refused, and the output left as it was. */
    assert_int_equal(sat_hex_decode("abc", untouched, 2), SAT_ERR_INVALID);
    assert_int_equal(sat_hex_decode("abcdef", untouched, 2), SAT_ERR_INVALID);
    assert_int_equal(sat_hex_decode("ab g", untouched, 2), SAT_ERR_INVALID);
    assert_int_equal(sat_hex_decode(" abc", untouched, 2), SAT_ERR_INVALID);
    assert_int_equal(sat_hex_decode("+abc", untouched, 2), SAT_ERR_INVALID);
    assert_int_equal(sat_hex_decode(NULL, untouched, 2), SAT_ERR_INVALID);
    assert_int_equal(untouched[0], 0xaa);
    assert_int_equal(untouched[1], 0xbb);
    /* A prefix may be followed by anything, but not cut short. */
    assert_int_equal(sat_hex_decode_prefix("abcd\n", untouched, 2), SAT_OK);
    assert_int_equal(untouched[0], 0xab);
    assert_int_equal(sat_hex_decode_prefix("ab", untouched, 2), SAT_ERR_INVALID);
    assert_int_equal(sat_hex_digit('F'), 15);
    assert_int_equal(sat_hex_digit('g'), -1);
}

static void test_dates(void **state)
{
    int64_t y;
    int m, d;
    (void)state;
    assert_true(sat_date_is_leap(2000));
    assert_true(sat_date_is_leap(2024));
    assert_false(sat_date_is_leap(1900));
    assert_false(sat_date_is_leap(2100));
    assert_false(sat_date_is_leap(2023));
    assert_true(sat_date_valid(2024, 2, 29));
    assert_false(sat_date_valid(2023, 2, 29));
    assert_false(sat_date_valid(1900, 2, 29));
    assert_false(sat_date_valid(2023, 4, 31));
    assert_false(sat_date_valid(2023, 0, 1));
    assert_false(sat_date_valid(2023, 13, 1));
    assert_false(sat_date_valid(2023, 1, 0));
    assert_int_equal(sat_date_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(sat_date_days_from_civil(1969, 12, 31), -1);
    assert_int_equal(sat_date_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(sat_date_days_from_civil(1880, 1, 1), -32872);
    /* 2026-11-01 12:00 UTC, as `date -u -d 2026-11-01T12:00 +%s` says. */
    assert_int_equal(sat_date_unix_ms(2026, 11, 1, 12, 0, 0), 1793534400000LL);
    /* Every day from 1800 to 2200 goes there and back, and the next day
     * is the next number. */
    for (int64_t day = sat_date_days_from_civil(1800, 1, 1);
         day <= sat_date_days_from_civil(2200, 12, 31); day++) {
        sat_date_civil_from_days(day, &y, &m, &d);
        assert_true(sat_date_valid(y, m, d));
        assert_int_equal(sat_date_days_from_civil(y, m, d), day);
    }
}

static void test_hostport(void **state)
{
    char host[16];
    uint16_t port = 7;
    (void)state;
    assert_int_equal(sat_hostport_parse("127.0.0.1:7443", 0, host, sizeof host, &port), SAT_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 7443);
    assert_int_equal(sat_hostport_parse("hub.example:65535", 0, host, sizeof host, &port),
                     SAT_OK);
    assert_int_equal(port, 65535);
    /* Port 0 only for a listener that asks for any free port. */
    assert_int_equal(sat_hostport_parse("h:0", 0, host, sizeof host, &port), SAT_ERR_INVALID);
    assert_int_equal(sat_hostport_parse("h:0", SAT_HOSTPORT_ANY_PORT, host, sizeof host, &port),
                     SAT_OK);
    assert_int_equal(port, 0);
    port = 7;
    static const char *const bad[] = { "h",    ":80",  "h:",      "h:65536", "h:-1",
                                       "h:+80", "h: 80", "h:80x", "h:0x50",  "h:999999",
                                       "a-host-name-too-long:80" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sat_hostport_parse(bad[i], SAT_HOSTPORT_ANY_PORT, host, sizeof host,
                                            &port),
                         SAT_ERR_INVALID);
    assert_int_equal(port, 7);
}

struct counting_source {
    uint8_t next;
    int fail;
};

static int counting(void *ctx, uint8_t *out, size_t len)
{
    struct counting_source *c = ctx;
    if (c->fail)
        return SAT_ERR_NOT_SUPPORTED;
    for (size_t i = 0; i < len; i++)
        out[i] = c->next++;
    return SAT_OK;
}

static int raw_counting(void *ctx, unsigned char *out, size_t len)
{
    return counting(ctx, out, len) == SAT_OK ? 0 : -1;
}

static void test_drbg_is_ctr_drbg_over_its_source(void **state)
{
    struct counting_source a = { 0, 0 }, b = { 0, 0 };
    struct sat_drbg d;
    mbedtls_ctr_drbg_context raw;
    uint8_t x[64], y[64];
    (void)state;
    /* The same bytes as Mbed TLS's own generator over the same source and
     * personalization: what every user drew before core existed. */
    sat_drbg_init(&d);
    mbedtls_ctr_drbg_init(&raw);
    assert_int_equal(sat_drbg_seed(&d, counting, &a, "satchel-test", SAT_ERR_IO), SAT_OK);
    assert_int_equal(mbedtls_ctr_drbg_seed(&raw, raw_counting, &b,
                                           (const unsigned char *)"satchel-test", 12),
                     0);
    assert_int_equal(sat_drbg_fill(&d, x, sizeof x, SAT_ERR_IO), SAT_OK);
    assert_int_equal(mbedtls_ctr_drbg_random(&raw, y, sizeof y), 0);
    assert_memory_equal(x, y, sizeof x);
    sat_drbg_free(&d);
    mbedtls_ctr_drbg_free(&raw);

    /* A failing source: its own code comes back, not the crypto code. */
    a.fail = 1;
    sat_drbg_init(&d);
    assert_int_equal(sat_drbg_seed(&d, counting, &a, "satchel-test", SAT_ERR_IO),
                     SAT_ERR_NOT_SUPPORTED);
    assert_int_equal(sat_drbg_error(&d, SAT_ERR_IO), SAT_ERR_NOT_SUPPORTED);
    sat_drbg_free(&d);
    sat_drbg_init(&d);
    assert_int_equal(sat_drbg_error(&d, SAT_ERR_IO), SAT_ERR_IO);
    assert_int_equal(sat_drbg_seed(&d, NULL, &a, "satchel-test", SAT_ERR_IO), SAT_ERR_INVALID);
    sat_drbg_free(&d);
}

static void test_sql_plumbing(void **state)
{
    static const char *const texts[] = { "CREATE TABLE t(x INTEGER PRIMARY KEY)",
                                         "INSERT INTO t(x) VALUES (?1)",
                                         "SELECT x FROM t WHERE x = ?1", "NOT SQL" };
    static const struct sat_sql_errors errors = { SAT_ERR_HUB_STORAGE, SAT_ERR_STORE_CORRUPT,
                                                  "damaged", "full" };
    sqlite3_stmt *kept[4] = { NULL, NULL, NULL, NULL };
    char errmsg[64] = "";
    struct sat_sql q = { NULL, texts, kept, 4, &errors, errmsg, sizeof errmsg };
    sqlite3_stmt *st;
    (void)state;
    assert_int_equal(sqlite3_open(":memory:", &q.db), SQLITE_OK);
    assert_int_equal(sat_sql_run(&q, sat_sql_stmt(&q, 0), "create"), SAT_OK);
    st = sat_sql_stmt(&q, 1);
    sqlite3_bind_int(st, 1, 7);
    assert_int_equal(sat_sql_run(&q, st, "insert"), SAT_OK);
    /* Prepared once, reset and unbound each time it is handed out. */
    assert_ptr_equal(sat_sql_stmt(&q, 1), st);
    st = sat_sql_stmt(&q, 2);
    sqlite3_bind_int(st, 1, 7);
    assert_int_equal(sat_sql_row(&q, st, "find"), SAT_OK);
    assert_int_equal(sqlite3_column_int(st, 0), 7);
    sqlite3_bind_int(st = sat_sql_stmt(&q, 2), 1, 8);
    assert_int_equal(sat_sql_row(&q, st, "find"), SAT_ERR_NOT_FOUND);
    /* A constraint, then SQL that does not prepare: the storage code and
     * "<what>: <reason>". */
    st = sat_sql_stmt(&q, 1);
    sqlite3_bind_int(st, 1, 7);
    assert_int_equal(sat_sql_run(&q, st, "insert again"), SAT_ERR_HUB_STORAGE);
    assert_non_null(strstr(errmsg, "insert again: UNIQUE constraint failed"));
    assert_int_equal(sat_sql_run(&q, sat_sql_stmt(&q, 3), "bad"), SAT_ERR_HUB_STORAGE);
    assert_int_equal(strncmp(errmsg, "bad: ", 5), 0);
    assert_null(sat_sql_stmt(&q, 4));
    assert_int_equal(sat_sql_fail(&q, SQLITE_CORRUPT, "read"), SAT_ERR_STORE_CORRUPT);
    assert_string_equal(errmsg, "read: damaged");
    assert_int_equal(sat_sql_fail(&q, SQLITE_FULL, "write"), SAT_ERR_NO_SPACE);
    assert_string_equal(errmsg, "write: full");
    /* A rollback undoes the transaction and keeps the failure's reason. */
    assert_int_equal(sqlite3_exec(q.db, "BEGIN; INSERT INTO t(x) VALUES (9)", NULL, NULL, NULL),
                     SQLITE_OK);
    sat_sql_rollback(&q);
    assert_string_equal(errmsg, "write: full");
    sqlite3_bind_int(st = sat_sql_stmt(&q, 2), 1, 9);
    assert_int_equal(sat_sql_row(&q, st, "find"), SAT_ERR_NOT_FOUND);
    sat_sql_finalize(&q);
    assert_null(kept[1]);
    sqlite3_close(q.db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_round_trip_and_refusals),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_drbg_is_ctr_drbg_over_its_source),
        cmocka_unit_test(test_sql_plumbing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
