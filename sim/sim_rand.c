/*
 * sim_rand.c - the simulated HAL's seeded generator (sim_hal_internal.h).
 *
 * Owns: nothing but the generator's arithmetic; the state lives in the
 * struct sim_prng of whoever draws (each device, each network).
 * Guarantees: xoshiro256** seeded by splitmix64 from the seed, so the same
 * seed and the same sequence of draws give the same values on every host;
 * no global state, no real clock, no OS randomness. Callers: sim_hal.c
 * (entropy, the key store's secret), sim_flash.c (every power-cut
 * decision and the garbage of torn sectors), sim_net.c (jitter, resets).
 */
#include "sim_hal_internal.h"

static uint64_t splitmix64_next(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t v, unsigned k)
{
    return (v << k) | (v >> (64u - k));
}

void sim_prng_seed(struct sim_prng *p, uint64_t seed)
{
    uint64_t x = seed;
    for (unsigned i = 0; i < 4; i++)
        p->s[i] = splitmix64_next(&x);
    /* splitmix64 never yields four zero words in a row, but be explicit:
     * the all-zero state is xoshiro's one fixed point. */
    if ((p->s[0] | p->s[1] | p->s[2] | p->s[3]) == 0)
        p->s[0] = 1;
}

static uint64_t prng_next(struct sim_prng *p)
{
    uint64_t *s = p->s;
    uint64_t result = rotl64(s[1] * 5u, 7) * 9u;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

/* Uniform in [0, n), n > 0, without modulo bias. */
uint64_t sim_prng_below(struct sim_prng *p, uint64_t n)
{
    uint64_t threshold = (0u - n) % n; /* 2^64 mod n */
    for (;;) {
        uint64_t r = prng_next(p);
        if (r >= threshold)
            return r % n;
    }
}

void sim_prng_fill(struct sim_prng *p, uint8_t *buf, size_t len)
{
    while (len > 0) {
        uint64_t r = prng_next(p);
        for (unsigned i = 0; i < 8 && len > 0; i++, len--)
            *buf++ = (uint8_t)(r >> (8u * i));
    }
}
