/* test_news2.c - NEWS2 scoring at every band edge of the RCP 2017 chart,
 * aggregate and risk, and the plausible-range check. Expected scores are
 * written out from the chart, never computed by the code under test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "news2.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

enum {
    PART_RESP = 0,
    PART_SPO2 = 1,
    PART_AIR_O2 = 2,
    PART_SBP = 3,
    PART_PULSE = 4,
    PART_ACVPU = 5,
    PART_TEMP = 6,
    PARTS = 7
};

/* Field numbers as news2_check reports them. */
enum {
    F_RESP = 1,
    F_SPO2 = 2,
    F_SCALE = 3,
    F_O2 = 4,
    F_SBP = 5,
    F_PULSE = 6,
    F_ACVPU = 7,
    F_TEMP = 8
};

/* Every parameter scores 0. */
static struct news2_vitals normal(void)
{
    struct news2_vitals v;
    v.respiration_rate = 16;
    v.spo2_pct = 97;
    v.spo2_scale = 1;
    v.on_oxygen = 0;
    v.systolic_bp = 120;
    v.pulse = 70;
    v.consciousness = NEWS2_ALERT;
    v.temperature_dc = 370;
    return v;
}

static void set_field(struct news2_vitals *v, int field, int value)
{
    switch (field) {
    case F_RESP: v->respiration_rate = value; break;
    case F_SPO2: v->spo2_pct = value; break;
    case F_SCALE: v->spo2_scale = value; break;
    case F_O2: v->on_oxygen = value; break;
    case F_SBP: v->systolic_bp = value; break;
    case F_PULSE: v->pulse = value; break;
    case F_ACVPU: v->consciousness = value; break;
    case F_TEMP: v->temperature_dc = value; break;
    default: fail_msg("no field %d", field);
    }
}

/* Scores v and checks every part against want[] and the total against
 * their sum; row names the table row in a failure. */
static void expect_parts(const struct news2_vitals *v, const int want[PARTS],
                         const char *table, size_t row)
{
    struct news2_result r;
    int total = 0;
    int i;
    if (news2_score(v, &r) != 0)
        fail_msg("%s row %zu: news2_score failed", table, row);
    for (i = 0; i < PARTS; i++) {
        if (r.parts[i] != want[i])
            fail_msg("%s row %zu: part %d scored %d, chart says %d", table, row, i,
                     r.parts[i], want[i]);
        total += want[i];
    }
    if (r.score != total)
        fail_msg("%s row %zu: score %d, want %d", table, row, r.score, total);
}

struct edge {
    int field;
    int value;
    int part;
    int want;
};

/* One parameter moved off normal; the RCP chart's score for it. Both sides
 * of every boundary, plus the ends of the plausible range. */
static const struct edge edges[] = {
    /* respiration rate: <=8 3; 9-11 1; 12-20 0; 21-24 2; >=25 3 */
    { F_RESP, 1, PART_RESP, 3 },
    { F_RESP, 8, PART_RESP, 3 },
    { F_RESP, 9, PART_RESP, 1 },
    { F_RESP, 11, PART_RESP, 1 },
    { F_RESP, 12, PART_RESP, 0 },
    { F_RESP, 20, PART_RESP, 0 },
    { F_RESP, 21, PART_RESP, 2 },
    { F_RESP, 24, PART_RESP, 2 },
    { F_RESP, 25, PART_RESP, 3 },
    { F_RESP, 80, PART_RESP, 3 },
    /* systolic BP: <=90 3; 91-100 2; 101-110 1; 111-219 0; >=220 3 */
    { F_SBP, 40, PART_SBP, 3 },
    { F_SBP, 90, PART_SBP, 3 },
    { F_SBP, 91, PART_SBP, 2 },
    { F_SBP, 100, PART_SBP, 2 },
    { F_SBP, 101, PART_SBP, 1 },
    { F_SBP, 110, PART_SBP, 1 },
    { F_SBP, 111, PART_SBP, 0 },
    { F_SBP, 219, PART_SBP, 0 },
    { F_SBP, 220, PART_SBP, 3 },
    { F_SBP, 300, PART_SBP, 3 },
    /* pulse: <=40 3; 41-50 1; 51-90 0; 91-110 1; 111-130 2; >=131 3 */
    { F_PULSE, 20, PART_PULSE, 3 },
    { F_PULSE, 40, PART_PULSE, 3 },
    { F_PULSE, 41, PART_PULSE, 1 },
    { F_PULSE, 50, PART_PULSE, 1 },
    { F_PULSE, 51, PART_PULSE, 0 },
    { F_PULSE, 90, PART_PULSE, 0 },
    { F_PULSE, 91, PART_PULSE, 1 },
    { F_PULSE, 110, PART_PULSE, 1 },
    { F_PULSE, 111, PART_PULSE, 2 },
    { F_PULSE, 130, PART_PULSE, 2 },
    { F_PULSE, 131, PART_PULSE, 3 },
    { F_PULSE, 250, PART_PULSE, 3 },
    /* consciousness: alert 0; new confusion, voice, pain, unresponsive 3 */
    { F_ACVPU, NEWS2_ALERT, PART_ACVPU, 0 },
    { F_ACVPU, NEWS2_NEW_CONFUSION, PART_ACVPU, 3 },
    { F_ACVPU, NEWS2_VOICE, PART_ACVPU, 3 },
    { F_ACVPU, NEWS2_PAIN, PART_ACVPU, 3 },
    { F_ACVPU, NEWS2_UNRESPONSIVE, PART_ACVPU, 3 },
    /* temperature: <=35.0 3; 35.1-36.0 1; 36.1-38.0 0; 38.1-39.0 1; >=39.1 2 */
    { F_TEMP, 250, PART_TEMP, 3 },
    { F_TEMP, 350, PART_TEMP, 3 },
    { F_TEMP, 351, PART_TEMP, 1 },
    { F_TEMP, 360, PART_TEMP, 1 },
    { F_TEMP, 361, PART_TEMP, 0 },
    { F_TEMP, 380, PART_TEMP, 0 },
    { F_TEMP, 381, PART_TEMP, 1 },
    { F_TEMP, 390, PART_TEMP, 1 },
    { F_TEMP, 391, PART_TEMP, 2 },
    { F_TEMP, 450, PART_TEMP, 2 },
};

static void test_every_band_edge(void **state)
{
    size_t row;
    (void)state;
    for (row = 0; row < ARRAY_LEN(edges); row++) {
        struct news2_vitals v = normal();
        int want[PARTS] = { 0, 0, 0, 0, 0, 0, 0 };
        set_field(&v, edges[row].field, edges[row].value);
        want[edges[row].part] = edges[row].want;
        expect_parts(&v, want, "edges", row);
    }
}

struct spo2_edge {
    int spo2;
    int scale;
    int on_oxygen;
    int want_spo2;
    int want_air_o2;
};

/* SpO2 on both scales, on air and on oxygen; "air or oxygen" scores 2 on
 * oxygen whatever the scale. */
static const struct spo2_edge spo2_edges[] = {
    /* scale 1: <=91 3; 92-93 2; 94-95 1; >=96 0; oxygen does not change it */
    { 50, 1, 0, 3, 0 },
    { 91, 1, 0, 3, 0 },
    { 92, 1, 0, 2, 0 },
    { 93, 1, 0, 2, 0 },
    { 94, 1, 0, 1, 0 },
    { 95, 1, 0, 1, 0 },
    { 96, 1, 0, 0, 0 },
    { 100, 1, 0, 0, 0 },
    { 91, 1, 1, 3, 2 },
    { 92, 1, 1, 2, 2 },
    { 95, 1, 1, 1, 2 },
    { 96, 1, 1, 0, 2 },
    { 97, 1, 1, 0, 2 },
    { 100, 1, 1, 0, 2 },
    /* scale 2 below target, air or oxygen: <=83 3; 84-85 2; 86-87 1;
     * 88-92 0 */
    { 50, 2, 0, 3, 0 },
    { 83, 2, 0, 3, 0 },
    { 84, 2, 0, 2, 0 },
    { 85, 2, 0, 2, 0 },
    { 86, 2, 0, 1, 0 },
    { 87, 2, 0, 1, 0 },
    { 88, 2, 0, 0, 0 },
    { 92, 2, 0, 0, 0 },
    { 83, 2, 1, 3, 2 },
    { 84, 2, 1, 2, 2 },
    { 85, 2, 1, 2, 2 },
    { 86, 2, 1, 1, 2 },
    { 87, 2, 1, 1, 2 },
    { 88, 2, 1, 0, 2 },
    { 92, 2, 1, 0, 2 },
    /* scale 2 above target: on air >=93 0; on oxygen 93-94 1; 95-96 2;
     * >=97 3 */
    { 93, 2, 0, 0, 0 },
    { 94, 2, 0, 0, 0 },
    { 95, 2, 0, 0, 0 },
    { 96, 2, 0, 0, 0 },
    { 97, 2, 0, 0, 0 },
    { 100, 2, 0, 0, 0 },
    { 93, 2, 1, 1, 2 },
    { 94, 2, 1, 1, 2 },
    { 95, 2, 1, 2, 2 },
    { 96, 2, 1, 2, 2 },
    { 97, 2, 1, 3, 2 },
    { 100, 2, 1, 3, 2 },
};

static void test_spo2_scales_and_oxygen(void **state)
{
    size_t row;
    (void)state;
    for (row = 0; row < ARRAY_LEN(spo2_edges); row++) {
        struct news2_vitals v = normal();
        int want[PARTS] = { 0, 0, 0, 0, 0, 0, 0 };
        v.spo2_pct = spo2_edges[row].spo2;
        v.spo2_scale = spo2_edges[row].scale;
        v.on_oxygen = spo2_edges[row].on_oxygen;
        want[PART_SPO2] = spo2_edges[row].want_spo2;
        want[PART_AIR_O2] = spo2_edges[row].want_air_o2;
        expect_parts(&v, want, "spo2_edges", row);
    }
}

struct aggregate {
    struct news2_vitals v;
    int want_score;
    enum news2_risk want_risk;
};

/* Fields: resp, SpO2, scale, oxygen, SBP, pulse, ACVPU, temperature. */
static const struct aggregate aggregates[] = {
    /* all normal */
    { { 16, 97, 1, 0, 120, 70, NEWS2_ALERT, 370 }, 0, NEWS2_RISK_LOW },
    /* resp 21 (2) + pulse 111 (2): 4, no red score */
    { { 21, 97, 1, 0, 120, 111, NEWS2_ALERT, 370 }, 4, NEWS2_RISK_LOW },
    /* one parameter scoring 3 on its own */
    { { 8, 97, 1, 0, 120, 70, NEWS2_ALERT, 370 }, 3, NEWS2_RISK_LOW_MEDIUM },
    { { 16, 97, 1, 0, 120, 70, NEWS2_VOICE, 370 }, 3, NEWS2_RISK_LOW_MEDIUM },
    { { 16, 97, 1, 0, 120, 70, NEWS2_ALERT, 350 }, 3, NEWS2_RISK_LOW_MEDIUM },
    /* resp 25 (3) + pulse 91 (1): 4 with a red score */
    { { 25, 97, 1, 0, 120, 91, NEWS2_ALERT, 370 }, 4, NEWS2_RISK_LOW_MEDIUM },
    /* oxygen (2) alone: 2, not low-medium (2 is not a red score) */
    { { 16, 97, 1, 1, 120, 70, NEWS2_ALERT, 370 }, 2, NEWS2_RISK_LOW },
    /* resp 21 (2) + pulse 111 (2) + temp 38.1 (1): 5 */
    { { 21, 97, 1, 0, 120, 111, NEWS2_ALERT, 381 }, 5, NEWS2_RISK_MEDIUM },
    /* resp 21 (2) + SBP 90 (3): 5 with a red score is still medium */
    { { 21, 97, 1, 0, 90, 70, NEWS2_ALERT, 370 }, 5, NEWS2_RISK_MEDIUM },
    /* oxygen (2) + resp 21 (2) + pulse 111 (2): 6 */
    { { 21, 97, 1, 1, 120, 111, NEWS2_ALERT, 370 }, 6, NEWS2_RISK_MEDIUM },
    /* the same and temp 38.1 (1): 7 */
    { { 21, 97, 1, 1, 120, 111, NEWS2_ALERT, 381 }, 7, NEWS2_RISK_HIGH },
    /* SpO2 scale 2 at 97% on oxygen (3) + oxygen (2) + resp 21 (2): 7 */
    { { 21, 97, 2, 1, 120, 70, NEWS2_ALERT, 370 }, 7, NEWS2_RISK_HIGH },
    /* the maximum, 3+3+2+3+3+3+3, on scale 1 and on scale 2 */
    { { 5, 80, 1, 1, 80, 150, NEWS2_UNRESPONSIVE, 340 }, 20, NEWS2_RISK_HIGH },
    { { 30, 99, 2, 1, 230, 35, NEWS2_NEW_CONFUSION, 300 }, 20, NEWS2_RISK_HIGH },
    { { 30, 60, 2, 1, 230, 35, NEWS2_PAIN, 300 }, 20, NEWS2_RISK_HIGH },
};

static void test_aggregate_and_risk(void **state)
{
    size_t row;
    (void)state;
    for (row = 0; row < ARRAY_LEN(aggregates); row++) {
        struct news2_result r;
        if (news2_score(&aggregates[row].v, &r) != 0)
            fail_msg("aggregates row %zu: news2_score failed", row);
        if (r.score != aggregates[row].want_score)
            fail_msg("aggregates row %zu: score %d, want %d", row, r.score,
                     aggregates[row].want_score);
        if (r.risk != aggregates[row].want_risk)
            fail_msg("aggregates row %zu: risk %s, want %s", row, news2_risk_name(r.risk),
                     news2_risk_name(aggregates[row].want_risk));
    }
}

static void test_risk_names(void **state)
{
    (void)state;
    assert_string_equal(news2_risk_name(NEWS2_RISK_LOW), "low");
    assert_string_equal(news2_risk_name(NEWS2_RISK_LOW_MEDIUM), "low-medium");
    assert_string_equal(news2_risk_name(NEWS2_RISK_MEDIUM), "medium");
    assert_string_equal(news2_risk_name(NEWS2_RISK_HIGH), "high");
    assert_string_equal(news2_risk_name((enum news2_risk)9), "unknown");
}

static void test_field_names(void **state)
{
    (void)state;
    assert_string_equal(news2_field_name(F_RESP), "respiration rate");
    assert_string_equal(news2_field_name(F_SPO2), "SpO2");
    assert_string_equal(news2_field_name(F_SCALE), "SpO2 scale");
    assert_string_equal(news2_field_name(F_O2), "air or oxygen");
    assert_string_equal(news2_field_name(F_SBP), "systolic blood pressure");
    assert_string_equal(news2_field_name(F_PULSE), "pulse");
    assert_string_equal(news2_field_name(F_ACVPU), "consciousness");
    assert_string_equal(news2_field_name(F_TEMP), "temperature");
    /* Out of range: one fixed placeholder, never NULL or a neighbour. */
    assert_string_equal(news2_field_name(0), "unknown field");
    assert_string_equal(news2_field_name(9), "unknown field");
    assert_string_equal(news2_field_name(-1), "unknown field");
}

struct bad {
    int field;
    int value;
};

/* Just outside each plausible range, and 0 where 0 means "not measured". */
static const struct bad bads[] = {
    { F_RESP, 0 }, { F_RESP, -1 }, { F_RESP, 81 },
    { F_SPO2, 0 }, { F_SPO2, 49 }, { F_SPO2, 101 },
    { F_SCALE, 0 }, { F_SCALE, 3 }, { F_SCALE, -1 },
    { F_O2, -1 }, { F_O2, 2 },
    { F_SBP, 0 }, { F_SBP, 39 }, { F_SBP, 301 },
    { F_PULSE, 0 }, { F_PULSE, 19 }, { F_PULSE, 251 },
    { F_ACVPU, 0 }, { F_ACVPU, 6 }, { F_ACVPU, -1 },
    { F_TEMP, 0 }, { F_TEMP, 249 }, { F_TEMP, 451 }, { F_TEMP, -370 },
};

static void test_check_rejects_each_field_with_its_index(void **state)
{
    size_t row;
    (void)state;
    for (row = 0; row < ARRAY_LEN(bads); row++) {
        struct news2_vitals v = normal();
        struct news2_result r;
        int got;
        set_field(&v, bads[row].field, bads[row].value);
        got = news2_check(&v);
        if (got != bads[row].field)
            fail_msg("bads row %zu (%s = %d): check returned %d", row,
                     news2_field_name(bads[row].field), bads[row].value, got);
        if (news2_score(&v, &r) != -1)
            fail_msg("bads row %zu: news2_score accepted it", row);
        /* A caller that ignores the -1 must not read a reassuring score. */
        assert_int_equal(r.score, -1);
    }
}

static void test_check_accepts_range_ends(void **state)
{
    struct news2_vitals lo = { NEWS2_RESP_MIN, NEWS2_SPO2_MIN, 1, 0, NEWS2_SBP_MIN,
                               NEWS2_PULSE_MIN, NEWS2_ALERT, NEWS2_TEMP_DC_MIN };
    struct news2_vitals hi = { NEWS2_RESP_MAX, NEWS2_SPO2_MAX, 2, 1, NEWS2_SBP_MAX,
                               NEWS2_PULSE_MAX, NEWS2_UNRESPONSIVE, NEWS2_TEMP_DC_MAX };
    struct news2_vitals v = normal();
    (void)state;
    assert_int_equal(news2_check(&lo), 0);
    assert_int_equal(news2_check(&hi), 0);
    assert_int_equal(news2_check(&v), 0);
}

static void test_check_reports_first_bad_field(void **state)
{
    struct news2_vitals zero = { 0, 0, 0, 0, 0, 0, 0, 0 };
    struct news2_vitals v = normal();
    (void)state;
    /* An all-absent record (proto3 zeros) fails at the first field. */
    assert_int_equal(news2_check(&zero), F_RESP);
    v.pulse = 0;
    v.temperature_dc = 0;
    assert_int_equal(news2_check(&v), F_PULSE);
    v.spo2_scale = 7;
    assert_int_equal(news2_check(&v), F_SCALE);
}

static void test_null_arguments(void **state)
{
    struct news2_vitals v = normal();
    struct news2_result r;
    (void)state;
    assert_int_not_equal(news2_check(NULL), 0);
    assert_int_equal(news2_score(NULL, &r), -1);
    assert_int_equal(r.score, -1);
    assert_int_equal(news2_score(&v, NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_band_edge),
        cmocka_unit_test(test_spo2_scales_and_oxygen),
        cmocka_unit_test(test_aggregate_and_risk),
        cmocka_unit_test(test_risk_names),
        cmocka_unit_test(test_field_names),
        cmocka_unit_test(test_check_rejects_each_field_with_its_index),
        cmocka_unit_test(test_check_accepts_range_ends),
        cmocka_unit_test(test_check_reports_first_bad_field),
        cmocka_unit_test(test_null_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
