/*
 * news2.h - National Early Warning Score 2 (Royal College of Physicians,
 * 2017): the score of a set of vital signs, and their plausible ranges.
 *
 * The record model lives in sync/ so the hub and the tablet score alike.
 * Scoring follows the RCP NEWS2 chart exactly (see news2.c for the table);
 * SpO2 scale 2 is for patients with hypercapnic respiratory failure, where
 * 88-92% scores 0 and high saturations on oxygen score up.
 */
#ifndef SATCHEL_NEWS2_H
#define SATCHEL_NEWS2_H

#include <stdint.h>

/* ACVPU; values match satchel.proto's Consciousness enum. */
enum news2_consciousness {
    NEWS2_ALERT = 1,
    NEWS2_NEW_CONFUSION = 2,
    NEWS2_VOICE = 3,
    NEWS2_PAIN = 4,
    NEWS2_UNRESPONSIVE = 5
};

struct news2_vitals {
    int respiration_rate;   /* breaths/min */
    int spo2_pct;           /* % */
    int spo2_scale;         /* 1 or 2 */
    int on_oxygen;          /* 0 air, 1 supplemental oxygen */
    int systolic_bp;        /* mmHg */
    int pulse;              /* beats/min */
    int consciousness;      /* enum news2_consciousness */
    int temperature_dc;     /* tenths of a degree Celsius, e.g. 371 = 37.1 */
};

/* Plausible ranges, both ends inclusive: outside them a value is a typing
 * error, not a patient. 0 is outside every range, so a measurement absent
 * (0 in satchel.proto) fails news2_check -- except on_oxygen, where 0 is a
 * real answer ("air") and an unrecorded oxygen status cannot be told apart
 * from air. */
#define NEWS2_RESP_MIN 1
#define NEWS2_RESP_MAX 80
#define NEWS2_SPO2_MIN 50
#define NEWS2_SPO2_MAX 100
#define NEWS2_SBP_MIN 40
#define NEWS2_SBP_MAX 300
#define NEWS2_PULSE_MIN 20
#define NEWS2_PULSE_MAX 250
#define NEWS2_TEMP_DC_MIN 250
#define NEWS2_TEMP_DC_MAX 450

enum news2_risk {
    NEWS2_RISK_LOW = 0,        /* aggregate 0-4, no single parameter scoring 3 */
    NEWS2_RISK_LOW_MEDIUM = 1, /* aggregate 0-4 with a 3 in one parameter */
    NEWS2_RISK_MEDIUM = 2,     /* aggregate 5-6 */
    NEWS2_RISK_HIGH = 3        /* aggregate 7 or more */
};

struct news2_result {
    int score;             /* aggregate 0..20 */
    enum news2_risk risk;
    /* per-parameter scores, in the order of struct news2_vitals with the
     * scale folded into the SpO2 score: [0] respiration, [1] SpO2, [2] air
     * or oxygen, [3] systolic BP, [4] pulse, [5] consciousness,
     * [6] temperature. From [2] on, parts[i] is field i + 2 of news2_check,
     * not field i + 1. */
    int parts[7];
};

/* Checks every field is present and in its plausible range. Returns 0, or
 * the 1-based index of the first bad field in struct news2_vitals order
 * (1 respiration rate ... 8 temperature), or -1 if v is NULL. spo2_scale
 * must be 1 or 2, on_oxygen 0 or 1, consciousness 1..5. */
int news2_check(const struct news2_vitals *v);

/* The name of field i as news2_check numbers it ("respiration rate"...);
 * "unknown field" for any other i, never NULL. */
const char *news2_field_name(int i);

/* Scores v, which must have passed news2_check. Returns 0 and fills *out;
 * or returns -1 (v fails news2_check, v or out NULL), and then, if out is
 * not NULL, out->score and every part are -1 and out->risk is HIGH, so a
 * caller that ignores the return escalates rather than reassures. */
int news2_score(const struct news2_vitals *v, struct news2_result *out);

/* "low", "low-medium", "medium", "high"; "unknown" otherwise, never NULL. */
const char *news2_risk_name(enum news2_risk r);

#endif
