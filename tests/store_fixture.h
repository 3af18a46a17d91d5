/*
 * store_fixture.h - shared helpers for store tests: a simulated device
 * (sim_hal) with a fixed, unlocked data key, and seeded synthetic patients.
 * No real person's data: names and numbers come from a seeded generator.
 */
#ifndef SATCHEL_TESTS_STORE_FIXTURE_H
#define SATCHEL_TESTS_STORE_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "keys.h"
#include "nhs_number.h"
#include "sim_hal.h"
#include "store.h"

/* 2026-11-01T00:00:00Z: a fixed wall clock for simulated devices. */
#define FIXTURE_WALL_START_MS 1793491200000LL

/* An unlocked key set with a DEK and store id derived from seed. */
static inline void fixture_keys(struct keys *k, const struct hal *h, uint64_t seed)
{
    keys_init(k, h);
    for (int i = 0; i < KEYS_DEK_BYTES; i++)
        k->dek[i] = (uint8_t)(seed * 131u + (uint64_t)i * 7u + 1u);
    for (int i = 0; i < KEYS_STORE_ID_BYTES; i++)
        k->store_id[i] = (uint8_t)(seed * 17u + (uint64_t)i);
    k->unlocked = 1;
}

static inline uint64_t fixture_next(uint64_t *state)
{
    /* splitmix64: the generator behind every synthetic record */
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A valid synthetic NHS number from the generator (retries check digit 10). */
static inline void fixture_nhs(uint64_t *state, char out[11])
{
    for (;;) {
        char nine[9];
        int check;
        for (int i = 0; i < 9; i++)
            nine[i] = (char)('0' + fixture_next(state) % 10);
        check = nhs_number_check_digit(nine);
        if (check < 0)
            continue;
        memcpy(out, nine, 9);
        out[9] = (char)('0' + check);
        out[10] = '\0';
        return;
    }
}

/* A synthetic patient; `marker` (may be "") is put in the family name so a
 * test can look for it in raw storage. */
static inline void fixture_patient(uint64_t *state, struct store_patient *p, const char *marker)
{
    static const char *const given[] = { "Ada", "Bryn", "Cerys", "Dafydd", "Eira", "Ffion" };
    static const char *const family[] = { "Morgan", "Pryce", "Rees", "Lloyd", "Vaughan" };
    memset(p, 0, sizeof *p);
    fixture_nhs(state, p->nhs_number);
    snprintf(p->given_name, sizeof p->given_name, "%s", given[fixture_next(state) % 6]);
    snprintf(p->family_name, sizeof p->family_name, "%s%s", family[fixture_next(state) % 5],
             marker);
    snprintf(p->date_of_birth, sizeof p->date_of_birth, "19%02u-%02u-%02u",
             (unsigned)(30 + fixture_next(state) % 60), (unsigned)(1 + fixture_next(state) % 12),
             (unsigned)(1 + fixture_next(state) % 28));
    snprintf(p->address, sizeof p->address, "%u Heol %s, Llan%s",
             (unsigned)(1 + fixture_next(state) % 200), given[fixture_next(state) % 6], marker);
    snprintf(p->postcode, sizeof p->postcode, "SA%u %uAB", (unsigned)(fixture_next(state) % 99),
             (unsigned)(fixture_next(state) % 9));
    snprintf(p->team, sizeof p->team, "team-%u", (unsigned)(fixture_next(state) % 2));
}

static inline void fixture_vitals(uint64_t *state, struct news2_vitals *v)
{
    v->respiration_rate = 10 + (int)(fixture_next(state) % 16);
    v->spo2_pct = 88 + (int)(fixture_next(state) % 12);
    v->spo2_scale = 1;
    v->on_oxygen = (int)(fixture_next(state) % 2);
    v->systolic_bp = 90 + (int)(fixture_next(state) % 80);
    v->pulse = 50 + (int)(fixture_next(state) % 70);
    v->consciousness = NEWS2_ALERT;
    v->temperature_dc = 355 + (int)(fixture_next(state) % 40);
}

#endif
