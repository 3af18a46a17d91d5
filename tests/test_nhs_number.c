/* test_nhs_number.c - Modulus 11 NHS numbers: known-valid numbers, the
 * impossible check digit 10, every single-digit error and every adjacent
 * transposition caught, and what the parser accepts as input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "nhs_number.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* 943 476 5919 is the NHS's published example. The others are synthetic,
 * their check digits worked by hand: e.g. 401023213 weighs
 * 40+0+8+0+12+15+8+3+6 = 92, 92 mod 11 = 4, 11 - 4 = 7. 400000002 weighs
 * 40+4 = 44, 44 mod 11 = 0, 11 -> check digit 0. */
static const char *const valid[] = {
    "9434765919",
    "4010232137",
    "4505577104",
    "4000000020",
    "6000000014",
    "7000000007",
};

static void test_known_valid_numbers(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < ARRAY_LEN(valid); i++) {
        char out[NHS_NUMBER_DIGITS + 1];
        memset(out, 'x', sizeof(out));
        if (nhs_number_parse(valid[i], out) != 1)
            fail_msg("%s rejected", valid[i]);
        assert_string_equal(out, valid[i]);
        assert_int_equal(nhs_number_check_digit(valid[i]), valid[i][9] - '0');
        assert_int_equal(nhs_number_parse(valid[i], NULL), 1);
    }
}

static void test_check_digit_values(void **state)
{
    (void)state;
    assert_int_equal(nhs_number_check_digit("943476591"), 9);
    assert_int_equal(nhs_number_check_digit("401023213"), 7);
    /* sum mod 11 == 0: 11 becomes 0 */
    assert_int_equal(nhs_number_check_digit("400000002"), 0);
    assert_int_equal(nhs_number_check_digit("000000000"), 0);
    /* 10+18+24+28+30+30+28+24+18 = 210, 210 mod 11 = 1: check would be 10 */
    assert_int_equal(nhs_number_check_digit("123456789"), -1);
    /* 9*10 + 9*9 + 9*8 = 243, 243 mod 11 = 1: check would be 10 */
    assert_int_equal(nhs_number_check_digit("999000000"), -1);
    assert_int_equal(nhs_number_check_digit("94347659x"), -1);
    assert_int_equal(nhs_number_check_digit(NULL), -1);
}

static void test_check_digit_ten_is_never_valid(void **state)
{
    char number[NHS_NUMBER_DIGITS + 1] = "1234567890";
    char out[NHS_NUMBER_DIGITS + 1];
    char d;
    (void)state;
    for (d = '0'; d <= '9'; d++) {
        number[9] = d;
        if (nhs_number_parse(number, out) != 0)
            fail_msg("%s accepted, but no check digit fits 123456789", number);
    }
    memcpy(number, "999000000", 9);
    for (d = '0'; d <= '9'; d++) {
        number[9] = d;
        if (nhs_number_parse(number, out) != 0)
            fail_msg("%s accepted, but no check digit fits 999000000", number);
    }
}

static void test_every_single_digit_error_rejected(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < ARRAY_LEN(valid); i++) {
        int pos;
        for (pos = 0; pos < NHS_NUMBER_DIGITS; pos++) {
            char d;
            for (d = '0'; d <= '9'; d++) {
                char number[NHS_NUMBER_DIGITS + 1];
                memcpy(number, valid[i], sizeof(number));
                if (number[pos] == d)
                    continue;
                number[pos] = d;
                if (nhs_number_parse(number, NULL) != 0)
                    fail_msg("%s (from %s, digit %d changed) accepted", number, valid[i],
                             pos + 1);
            }
        }
    }
}

static void test_every_adjacent_transposition_rejected(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < ARRAY_LEN(valid); i++) {
        int pos;
        for (pos = 0; pos + 1 < NHS_NUMBER_DIGITS; pos++) {
            char number[NHS_NUMBER_DIGITS + 1];
            char t;
            memcpy(number, valid[i], sizeof(number));
            if (number[pos] == number[pos + 1])
                continue;
            t = number[pos];
            number[pos] = number[pos + 1];
            number[pos + 1] = t;
            if (nhs_number_parse(number, NULL) != 0)
                fail_msg("%s (from %s, digits %d and %d swapped) accepted", number,
                         valid[i], pos + 1, pos + 2);
        }
    }
}

static void test_spaces_between_digits_accepted(void **state)
{
    static const char *const spaced[] = {
        "943 476 5919",
        "943  476   5919",
        "9434 765919",
        "9 4 3 4 7 6 5 9 1 9",
    };
    size_t i;
    (void)state;
    for (i = 0; i < ARRAY_LEN(spaced); i++) {
        char out[NHS_NUMBER_DIGITS + 1];
        memset(out, 'x', sizeof(out));
        if (nhs_number_parse(spaced[i], out) != 1)
            fail_msg("\"%s\" rejected", spaced[i]);
        assert_string_equal(out, "9434765919");
    }
}

static void test_malformed_input_rejected(void **state)
{
    static const char *const bad[] = {
        "",
        " ",
        "          ",
        "943476591",      /* 9 digits */
        "94347659190",    /* 11 digits */
        "943 476 5919 0", /* 11 digits, spaced */
        "943-476-5919",
        "943\t476\t5919",
        "943 476 591O",   /* letter O for zero */
        "94347659l9",     /* letter l for one */
        "+9434765919",
        " 9434765919",
        "9434765919 ",
        "9434765919\n",
        "943.476.5919",
        ("\xef\xbc\x99" "434765919"), /* UTF-8 full-width 9 */
    };
    size_t i;
    (void)state;
    for (i = 0; i < ARRAY_LEN(bad); i++) {
        char out[NHS_NUMBER_DIGITS + 1];
        memset(out, 'x', sizeof(out));
        if (nhs_number_parse(bad[i], out) != 0)
            fail_msg("bad[%zu] \"%s\" accepted", i, bad[i]);
        /* No stale or partial digits are left for the caller to use. */
        assert_int_equal(out[0], '\0');
    }
    assert_int_equal(nhs_number_parse(NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_valid_numbers),
        cmocka_unit_test(test_check_digit_values),
        cmocka_unit_test(test_check_digit_ten_is_never_valid),
        cmocka_unit_test(test_every_single_digit_error_rejected),
        cmocka_unit_test(test_every_adjacent_transposition_rejected),
        cmocka_unit_test(test_spaces_between_digits_accepted),
        cmocka_unit_test(test_malformed_input_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
