/*
 * sim_hal.c - the simulated device (see sim_hal.h): struct sim_hal and its
 * struct hal, the clocks, entropy, the key store, the battery, the log and
 * the power switch.
 *
 * Owns: each struct sim_hal from sim_hal_new to sim_hal_free, and in it
 * the clocks, the key store, the battery, the log ring and the power state
 * (powered_off, power_epoch). Guarantees: sim_hal.h's clock formula, a key
 * store that is durable at once with monotonic counters, entropy and the
 * device secret drawn from the device's one seeded generator (sim_rand.c),
 * and nothing read from a real clock or the OS's randomness. A power cut
 * reaches the flash (sim_flash.c) and the network (sim_net.c), then moves
 * the power epoch on, which makes every older handle and socket dead.
 * Callers: firmware code through struct hal; the simulator and the tests
 * through sim_hal.h. The storage and net members come from sim_flash.c
 * and sim_sock.c (their *_install functions).
 */
#include "sim_hal_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void zeroize(void *p, size_t len)
{
    volatile uint8_t *v = p;
    while (len-- > 0)
        *v++ = 0;
}

/* ---- clock and entropy ----------------------------------------------------- */

static uint64_t sim_clock_monotonic_ms(void *ctx)
{
    struct sim_hal *s = ctx;
    return s->mono_ms;
}

static int64_t add_sat_i64(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

static int64_t sub_sat_i64(int64_t a, int64_t b)
{
    if (b < 0 && a > INT64_MAX + b)
        return INT64_MAX;
    if (b > 0 && a < INT64_MIN + b)
        return INT64_MIN;
    return a - b;
}

/* floor(x / 1e6) for |x| <= 1e12 (C division truncates toward zero). */
static int64_t floor_div_million(int64_t x)
{
    return x >= 0 ? x / 1000000 : -((-x + 999999) / 1000000);
}

static int64_t wall_now(const struct sim_hal *s)
{
    uint64_t eu = s->mono_ms - s->wall_base_mono;
    int64_t e = eu > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)eu;
    /* e * drift / 1e6 without overflow: split e = q * 1e6 + r. With
     * |drift| <= 1e6 the result's magnitude is at most e. */
    int64_t q = e / 1000000;
    int64_t r = e % 1000000;
    int64_t drift = q * s->drift_ppm + floor_div_million(r * s->drift_ppm);
    int64_t scaled = add_sat_i64(e, drift);
    return add_sat_i64(add_sat_i64(s->wall_base_ms, s->wall_offset_ms), scaled);
}

static int64_t sim_clock_wall_ms(void *ctx)
{
    return wall_now(ctx);
}

static int sim_entropy_fill(void *ctx, uint8_t *buf, size_t len)
{
    struct sim_hal *s = ctx;
    if (len > 0 && !buf)
        return SAT_ERR_INVALID;
    sim_prng_fill(&s->prng, buf, len);
    return SAT_OK;
}

/* ---- key store ------------------------------------------------------------- */

static int sim_keystore_device_secret(void *ctx, uint8_t out[HAL_DEVICE_SECRET_BYTES])
{
    struct sim_hal *s = ctx;
    if (!out)
        return SAT_ERR_INVALID;
    if (!s->have_secret) {
        sim_prng_fill(&s->prng, s->secret, sizeof s->secret);
        s->have_secret = 1;
    }
    memcpy(out, s->secret, sizeof s->secret);
    return SAT_OK;
}

static int sim_keystore_wipe(void *ctx)
{
    struct sim_hal *s = ctx;
    if (s->counters[HAL_COUNTER_KEY_EPOCH] == UINT64_MAX)
        return SAT_ERR_INVALID;
    zeroize(s->secret, sizeof s->secret);
    s->have_secret = 0;
    s->counters[HAL_COUNTER_KEY_EPOCH]++;
    return SAT_OK;
}

static int sim_keystore_counter_read(void *ctx, unsigned slot, uint64_t *value)
{
    struct sim_hal *s = ctx;
    if (slot >= HAL_COUNTERS_MAX || !value)
        return SAT_ERR_INVALID;
    *value = s->counters[slot];
    return SAT_OK;
}

static int sim_keystore_counter_advance(void *ctx, unsigned slot, uint64_t value)
{
    struct sim_hal *s = ctx;
    if (slot >= HAL_COUNTERS_MAX || value < s->counters[slot])
        return SAT_ERR_INVALID;
    s->counters[slot] = value;
    return SAT_OK;
}

/* ---- power ----------------------------------------------------------------- */

static int sim_power_battery_pct(void *ctx, int *pct)
{
    struct sim_hal *s = ctx;
    if (!pct)
        return SAT_ERR_INVALID;
    if (s->battery_pct < 0)
        return SAT_ERR_NOT_SUPPORTED; /* mains powered, as hal.h says */
    *pct = s->battery_pct;
    return SAT_OK;
}

/* ---- log ------------------------------------------------------------------- */

static void sim_log(void *ctx, enum hal_log_level level, const char *msg)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    struct sim_hal *s = ctx;
    struct sim_log_line *line = &s->log_ring[s->log_next];
    const char *lv = (unsigned)level < 4 ? names[level] : "?";
    if (!msg)
        return;
    line->level = level;
    snprintf(line->text, sizeof line->text, "%s", msg);
    s->log_next = (s->log_next + 1) % SIM_LOG_LINES_MAX;
    if (s->log_to_stderr)
        fprintf(stderr, "sim t=%llu ms %s: %s\n", (unsigned long long)s->mono_ms, lv, msg);
}

/* ---- public ---------------------------------------------------------------- */

int sim_hal_new(struct sim_hal **out, uint64_t seed, int64_t wall_start_ms)
{
    struct sim_hal *s;
    if (!out)
        return SAT_ERR_INVALID;
    s = calloc(1, sizeof *s);
    if (!s)
        return SAT_ERR_NO_MEMORY;
    sim_prng_seed(&s->prng, seed);
    s->wall_base_ms = wall_start_ms;
    s->battery_pct = -1;
    s->log_to_stderr = getenv("SATCHEL_SIM_LOG") != NULL;

    s->hal.version = HAL_VERSION;
    s->hal.ctx = s;
    s->hal.clock_monotonic_ms = sim_clock_monotonic_ms;
    s->hal.clock_wall_ms = sim_clock_wall_ms;
    s->hal.entropy_fill = sim_entropy_fill;
    sim_flash_install(&s->hal);
    s->hal.keystore_device_secret = sim_keystore_device_secret;
    s->hal.keystore_wipe = sim_keystore_wipe;
    s->hal.keystore_counter_read = sim_keystore_counter_read;
    s->hal.keystore_counter_advance = sim_keystore_counter_advance;
    /* The net members answer NOT_SUPPORTED themselves until sim_net_attach;
     * power_battery_pct until sim_hal_set_battery. */
    sim_sock_install(&s->hal);
    s->hal.power_battery_pct = sim_power_battery_pct;
    s->hal.log = sim_log;
    /* boot_*: NULL, so the wrappers answer NOT_SUPPORTED. */
    *out = s;
    return SAT_OK;
}

void sim_hal_free(struct sim_hal *s)
{
    if (!s)
        return;
    if (s->net)
        sim_net_detach(s);
    sim_sock_close_all(s);
    sim_flash_free(s);
    zeroize(s, sizeof *s);
    free(s);
}

const struct hal *sim_hal_hal(struct sim_hal *s)
{
    return &s->hal;
}

void sim_hal_advance_ms(struct sim_hal *s, uint64_t ms)
{
    s->mono_ms = ms > UINT64_MAX - s->mono_ms ? UINT64_MAX : s->mono_ms + ms;
}

void sim_hal_set_wall_ms(struct sim_hal *s, int64_t wall_ms)
{
    s->wall_base_ms = sub_sat_i64(wall_ms, s->wall_offset_ms);
    s->wall_base_mono = s->mono_ms;
}

int sim_hal_set_clock_skew(struct sim_hal *s, int64_t offset_ms, int32_t drift_ppm)
{
    if (drift_ppm < -1000000 || drift_ppm > 1000000)
        return SAT_ERR_INVALID;
    s->wall_offset_ms = offset_ms;
    s->drift_ppm = drift_ppm;
    return SAT_OK;
}

void sim_hal_set_battery(struct sim_hal *s, int pct)
{
    s->battery_pct = pct < 0 ? -1 : pct > 100 ? 100 : pct;
}

int sim_hal_powered_off(const struct sim_hal *s)
{
    return s->powered_off;
}

void sim_hal_power_cut(struct sim_hal *s)
{
    if (s->powered_off)
        return;
    sim_flash_power_cut(s);
    /* Every connection of the device dies with it; its sockets hold no
     * connection any more, and the epoch makes them dead. */
    if (s->net)
        sim_net_drop_node(s->net, s->node);
    s->power_epoch++;
    s->powered_off = 1;
    s->cut_countdown = 0;
}

void sim_hal_power_on(struct sim_hal *s)
{
    s->powered_off = 0;
}
