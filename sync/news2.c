/*
 * news2.c - see news2.h.
 *
 * The RCP NEWS2 (2017) chart, as used here (bands inclusive, score: band):
 *
 *   respiration /min  3: <=8     1: 9-11     0: 12-20    2: 21-24   3: >=25
 *   SpO2 scale 1 %    3: <=91    2: 92-93    1: 94-95    0: >=96
 *   SpO2 scale 2 %    3: <=83    2: 84-85    1: 86-87    0: 88-92   0: >=93 air
 *                     1: 93-94 oxygen        2: 95-96 oxygen        3: >=97 oxygen
 *   air or oxygen     2: oxygen  0: air
 *   systolic BP mmHg  3: <=90    2: 91-100   1: 101-110  0: 111-219 3: >=220
 *   pulse /min        3: <=40    1: 41-50    0: 51-90    1: 91-110
 *                     2: 111-130 3: >=131
 *   consciousness     0: alert   3: new confusion, voice, pain, unresponsive
 *   temperature C     3: <=35.0  1: 35.1-36.0 0: 36.1-38.0 1: 38.1-39.0
 *                     2: >=39.1
 *
 * Aggregate 7 or more: high; 5-6: medium; otherwise low-medium if any one
 * parameter scores 3, else low.
 */
#include "news2.h"

#include <stddef.h>

enum {
    NEWS2_PARTS = 7,
    NEWS2_FIELDS = 8,
    NEWS2_HIGH_MIN = 7,
    NEWS2_MEDIUM_MIN = 5,
    NEWS2_RED_PART = 3
};

static int in_range(int value, int lo, int hi)
{
    return value >= lo && value <= hi;
}

int news2_check(const struct news2_vitals *v)
{
    if (v == NULL)
        return -1;
    if (!in_range(v->respiration_rate, NEWS2_RESP_MIN, NEWS2_RESP_MAX))
        return 1;
    if (!in_range(v->spo2_pct, NEWS2_SPO2_MIN, NEWS2_SPO2_MAX))
        return 2;
    if (v->spo2_scale != 1 && v->spo2_scale != 2)
        return 3;
    if (v->on_oxygen != 0 && v->on_oxygen != 1)
        return 4;
    if (!in_range(v->systolic_bp, NEWS2_SBP_MIN, NEWS2_SBP_MAX))
        return 5;
    if (!in_range(v->pulse, NEWS2_PULSE_MIN, NEWS2_PULSE_MAX))
        return 6;
    if (!in_range(v->consciousness, NEWS2_ALERT, NEWS2_UNRESPONSIVE))
        return 7;
    if (!in_range(v->temperature_dc, NEWS2_TEMP_DC_MIN, NEWS2_TEMP_DC_MAX))
        return 8;
    return 0;
}

const char *news2_field_name(int i)
{
    static const char *const names[NEWS2_FIELDS] = {
        "respiration rate",
        "SpO2",
        "SpO2 scale",
        "air or oxygen",
        "systolic blood pressure",
        "pulse",
        "consciousness",
        "temperature",
    };
    if (i < 1 || i > NEWS2_FIELDS)
        return "unknown field";
    return names[i - 1];
}

static int score_respiration(int rr)
{
    if (rr <= 8)
        return 3;
    if (rr <= 11)
        return 1;
    if (rr <= 20)
        return 0;
    if (rr <= 24)
        return 2;
    return 3;
}

static int score_spo2_scale1(int spo2)
{
    if (spo2 <= 91)
        return 3;
    if (spo2 <= 93)
        return 2;
    if (spo2 <= 95)
        return 1;
    return 0;
}

/* Scale 2 targets 88-92%: below it scores as hypoxia, above it scores only
 * when oxygen is driving the saturation up (risk of CO2 retention). */
static int score_spo2_scale2(int spo2, int on_oxygen)
{
    if (spo2 <= 83)
        return 3;
    if (spo2 <= 85)
        return 2;
    if (spo2 <= 87)
        return 1;
    if (spo2 <= 92 || !on_oxygen)
        return 0;
    if (spo2 <= 94)
        return 1;
    if (spo2 <= 96)
        return 2;
    return 3;
}

static int score_systolic(int sbp)
{
    if (sbp <= 90)
        return 3;
    if (sbp <= 100)
        return 2;
    if (sbp <= 110)
        return 1;
    if (sbp <= 219)
        return 0;
    return 3;
}

static int score_pulse(int pulse)
{
    if (pulse <= 40)
        return 3;
    if (pulse <= 50)
        return 1;
    if (pulse <= 90)
        return 0;
    if (pulse <= 110)
        return 1;
    if (pulse <= 130)
        return 2;
    return 3;
}

static int score_consciousness(int acvpu)
{
    return acvpu == NEWS2_ALERT ? 0 : 3;
}

static int score_temperature(int temp_dc)
{
    if (temp_dc <= 350)
        return 3;
    if (temp_dc <= 360)
        return 1;
    if (temp_dc <= 380)
        return 0;
    if (temp_dc <= 390)
        return 1;
    return 2;
}

int news2_score(const struct news2_vitals *v, struct news2_result *out)
{
    int ret = -1;
    int total = 0;
    int red = 0;
    int i;
    struct news2_result r;

    if (out == NULL)
        return -1;
    /* Poisoned until proven: a caller that ignores the -1 sees an
     * impossible score and escalates rather than reassures. */
    out->score = -1;
    out->risk = NEWS2_RISK_HIGH;
    for (i = 0; i < NEWS2_PARTS; i++)
        out->parts[i] = -1;
    if (news2_check(v) != 0)
        return ret;

    r.parts[0] = score_respiration(v->respiration_rate);
    r.parts[1] = v->spo2_scale == 2 ? score_spo2_scale2(v->spo2_pct, v->on_oxygen)
                                    : score_spo2_scale1(v->spo2_pct);
    r.parts[2] = v->on_oxygen ? 2 : 0;
    r.parts[3] = score_systolic(v->systolic_bp);
    r.parts[4] = score_pulse(v->pulse);
    r.parts[5] = score_consciousness(v->consciousness);
    r.parts[6] = score_temperature(v->temperature_dc);

    for (i = 0; i < NEWS2_PARTS; i++) {
        total += r.parts[i];
        if (r.parts[i] == NEWS2_RED_PART)
            red = 1;
    }
    r.score = total;
    if (total >= NEWS2_HIGH_MIN)
        r.risk = NEWS2_RISK_HIGH;
    else if (total >= NEWS2_MEDIUM_MIN)
        r.risk = NEWS2_RISK_MEDIUM;
    else if (red)
        r.risk = NEWS2_RISK_LOW_MEDIUM;
    else
        r.risk = NEWS2_RISK_LOW;

    *out = r;
    ret = 0;
    return ret;
}

const char *news2_risk_name(enum news2_risk r)
{
    switch (r) {
    case NEWS2_RISK_LOW:
        return "low";
    case NEWS2_RISK_LOW_MEDIUM:
        return "low-medium";
    case NEWS2_RISK_MEDIUM:
        return "medium";
    case NEWS2_RISK_HIGH:
        return "high";
    }
    return "unknown";
}
