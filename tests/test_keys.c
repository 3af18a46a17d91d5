/* test_keys.c - the key module against its contract in keys.h.
 *
 * Runs on the POSIX HAL in a temporary directory, with the clocks replaced
 * by a fake the test owns (so lockout delays are tested without sleeping and
 * calibration without depending on the machine's speed), and with an
 * optional power cut at the Nth durable operation (storage write, truncate
 * or delete, key-store update): a write is torn, the others do not happen,
 * and every storage and key-store call fails after it, as on a device. */
#define _GNU_SOURCE /* mkdtemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hal_posix.h"
#include "keys.h"

#include <mbedtls/sha256.h>

#define PIN "4821"
#define PIN_NEW "770913"
#define PIN_WRONG "0000"
#define TEST_ITERATIONS 1000u
#define WALL_START_MS 1700000000000LL

/* Key file layout (keys.c, format version 1): two 512-byte slots, the
 * iteration count big-endian at offset 16 of each. */
#define KF_SLOT_BYTES 512u
#define KF_OFF_ITER 16u
#define KF_OFF_PIN_SALT 20u
#define KF_OFF_SUM 480u /* SHA-256 of bytes 0..479 */

/* The fake clocks and the fault live here: the HAL's ctx is the POSIX HAL's. */
static int64_t fake_wall_ms;
static uint64_t fake_mono_ms;
static uint64_t fake_mono_step_ms;
static int writes_until_cut; /* durable operations before the cut; < 0: no fault */
static int power_off;

/* What the key module asked of the HAL during one call (the fakes count;
 * a test zeroes it first). */
struct probe {
    unsigned secret_reads;  /* device secret handed out */
    unsigned lockout_opens; /* opens of KEYS_LOCKOUT_FILE_NAME */
};
static struct probe probe;

struct fixture {
    char dir[64];
    struct hal posix;
    struct hal h; /* posix with the fakes in place */
    int (*real_write)(void *ctx, hal_file *f, uint64_t off, const void *buf, size_t len);
};

static struct fixture *current;

static int64_t fake_clock_wall_ms(void *ctx)
{
    (void)ctx;
    return fake_wall_ms;
}

static uint64_t fake_clock_monotonic_ms(void *ctx)
{
    (void)ctx;
    fake_mono_ms += fake_mono_step_ms;
    return fake_mono_ms;
}

/* Tears the chosen write (only its first half reaches the file) and fails
 * every write after it until the test "restores power". */
static int faulty_storage_write(void *ctx, hal_file *f, uint64_t off, const void *buf, size_t len)
{
    if (power_off)
        return SAT_ERR_POWER_CUT;
    if (writes_until_cut == 0) {
        power_off = 1;
        (void)current->real_write(ctx, f, off, buf, len / 2);
        return SAT_ERR_POWER_CUT;
    }
    if (writes_until_cut > 0)
        writes_until_cut--;
    return current->real_write(ctx, f, off, buf, len);
}

/* A durable operation that is all or nothing (truncate, delete, key-store
 * update): 1 if the power is off, or goes off now, and it must not
 * happen. Counts towards the cut like a storage write. */
static int power_stops(void)
{
    if (!power_off && writes_until_cut == 0)
        power_off = 1;
    else if (!power_off && writes_until_cut > 0)
        writes_until_cut--;
    return power_off;
}

static int faulty_storage_open(void *ctx, const char *name, unsigned flags, hal_file **out)
{
    if (power_off)
        return SAT_ERR_POWER_CUT;
    if (strcmp(name, KEYS_LOCKOUT_FILE_NAME) == 0)
        probe.lockout_opens++;
    return current->posix.storage_open(ctx, name, flags, out);
}

static int faulty_storage_sync(void *ctx, hal_file *f)
{
    return power_off ? SAT_ERR_POWER_CUT : current->posix.storage_sync(ctx, f);
}

static int faulty_storage_truncate(void *ctx, hal_file *f, uint64_t size)
{
    return power_stops() ? SAT_ERR_POWER_CUT : current->posix.storage_truncate(ctx, f, size);
}

static int faulty_storage_delete(void *ctx, const char *name)
{
    return power_stops() ? SAT_ERR_POWER_CUT : current->posix.storage_delete(ctx, name);
}

static int faulty_device_secret(void *ctx, uint8_t out[HAL_DEVICE_SECRET_BYTES])
{
    int ret;
    if (power_off)
        return SAT_ERR_POWER_CUT;
    ret = current->posix.keystore_device_secret(ctx, out);
    if (ret == SAT_OK)
        probe.secret_reads++;
    return ret;
}

static int faulty_keystore_wipe(void *ctx)
{
    return power_stops() ? SAT_ERR_POWER_CUT : current->posix.keystore_wipe(ctx);
}

static int faulty_counter_read(void *ctx, unsigned slot, uint64_t *value)
{
    return power_off ? SAT_ERR_POWER_CUT : current->posix.keystore_counter_read(ctx, slot, value);
}

static int faulty_counter_advance(void *ctx, unsigned slot, uint64_t value)
{
    return power_stops() ? SAT_ERR_POWER_CUT
                         : current->posix.keystore_counter_advance(ctx, slot, value);
}

static int rm_rf(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/satchel-keys-XXXXXX");
    if (!mkdtemp(f->dir) || hal_posix_open(&f->posix, f->dir) != SAT_OK) {
        free(f);
        return -1;
    }
    hal_posix_set_log_level(&f->posix, HAL_LOG_ERROR);
    f->h = f->posix;
    f->h.clock_wall_ms = fake_clock_wall_ms;
    f->h.clock_monotonic_ms = fake_clock_monotonic_ms;
    f->real_write = f->posix.storage_write;
    f->h.storage_write = faulty_storage_write;
    f->h.storage_open = faulty_storage_open;
    f->h.storage_sync = faulty_storage_sync;
    f->h.storage_truncate = faulty_storage_truncate;
    f->h.storage_delete = faulty_storage_delete;
    f->h.keystore_device_secret = faulty_device_secret;
    f->h.keystore_wipe = faulty_keystore_wipe;
    f->h.keystore_counter_read = faulty_counter_read;
    f->h.keystore_counter_advance = faulty_counter_advance;
    fake_wall_ms = WALL_START_MS;
    fake_mono_ms = 1000;
    fake_mono_step_ms = 0;
    writes_until_cut = -1;
    power_off = 0;
    memset(&probe, 0, sizeof probe);
    current = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    hal_posix_close(&f->posix);
    rm_rf(f->dir);
    current = NULL;
    free(f);
    return 0;
}

static const struct keys_enrol_opts test_opts = { TEST_ITERATIONS, NULL };

static int file_exists(const struct hal *h, const char *name)
{
    hal_file *f = NULL;
    if (hal_storage_open(h, name, 0, &f) != SAT_OK)
        return 0;
    hal_storage_close(h, f);
    return 1;
}

static uint64_t failures(const struct hal *h)
{
    uint64_t n = 99;
    assert_int_equal(keys_failures(h, &n), SAT_OK);
    return n;
}

/* Enters pin, waiting out any lockout on the fake clock first. */
static int unlock_waiting(struct keys *k, const char *pin)
{
    uint64_t retry = 0;
    int ret = keys_unlock(k, pin, &retry);
    if (ret == SAT_ERR_KEYS_LOCKED_OUT) {
        assert_true(retry > 0);
        fake_wall_ms += (int64_t)retry;
        ret = keys_unlock(k, pin, &retry);
    }
    return ret;
}

static int wrong_pin_waiting(struct keys *k)
{
    return unlock_waiting(k, PIN_WRONG);
}

static void enrol(struct keys *k, const struct hal *h, const struct keys_enrol_opts *opts,
                  uint8_t dek[KEYS_DEK_BYTES], uint8_t store_id[KEYS_STORE_ID_BYTES])
{
    keys_init(k, h);
    assert_int_equal(keys_enrol(k, PIN, opts), SAT_OK);
    assert_int_equal(k->unlocked, 1);
    if (dek)
        memcpy(dek, k->dek, KEYS_DEK_BYTES);
    if (store_id)
        memcpy(store_id, k->store_id, KEYS_STORE_ID_BYTES);
    keys_lock(k);
}

static void test_enrol_unlock_round_trip(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;
    struct keys k2;
    uint8_t dek[KEYS_DEK_BYTES];
    uint8_t sid[KEYS_STORE_ID_BYTES];
    uint8_t zero[KEYS_DEK_BYTES] = { 0 };

    assert_int_equal(keys_enrolled(h), 0);
    enrol(&k, h, &test_opts, dek, sid);
    assert_int_equal(keys_enrolled(h), 1);
    assert_memory_not_equal(dek, zero, sizeof dek);

    keys_init(&k2, h);
    assert_int_equal(k2.unlocked, 0);
    assert_int_equal(keys_unlock(&k2, PIN, NULL), SAT_OK);
    assert_int_equal(k2.unlocked, 1);
    assert_memory_equal(k2.dek, dek, sizeof dek);
    assert_memory_equal(k2.store_id, sid, sizeof sid);
    assert_int_equal(failures(h), 0);

    /* A second enrolment elsewhere makes a different DEK and store id. */
    {
        struct fixture other;
        struct keys k3;
        snprintf(other.dir, sizeof other.dir, "/tmp/satchel-keys-XXXXXX");
        assert_non_null(mkdtemp(other.dir));
        assert_int_equal(hal_posix_open(&other.posix, other.dir), SAT_OK);
        keys_init(&k3, &other.posix);
        assert_int_equal(keys_enrol(&k3, PIN, &test_opts), SAT_OK);
        assert_memory_not_equal(k3.dek, dek, sizeof dek);
        assert_memory_not_equal(k3.store_id, sid, sizeof sid);
        keys_lock(&k3);
        hal_posix_close(&other.posix);
        rm_rf(other.dir);
    }
}

static void test_wrong_pin_counted_good_pin_resets(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;
    uint8_t dek[KEYS_DEK_BYTES];
    uint8_t zero[KEYS_DEK_BYTES] = { 0 };

    enrol(&k, h, &test_opts, dek, NULL);
    assert_int_equal(keys_unlock(&k, PIN_WRONG, NULL), SAT_ERR_KEYS_WRONG_PIN);
    assert_int_equal(k.unlocked, 0);
    assert_memory_equal(k.dek, zero, sizeof zero);
    assert_int_equal(failures(h), 1);
    assert_int_equal(keys_unlock(&k, "12345", NULL), SAT_ERR_KEYS_WRONG_PIN);
    assert_int_equal(failures(h), 2);

    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_OK);
    assert_memory_equal(k.dek, dek, sizeof dek);
    assert_int_equal(failures(h), 0);

    /* The run starts again from zero: two more are still free. */
    assert_int_equal(keys_unlock(&k, PIN_WRONG, NULL), SAT_ERR_KEYS_WRONG_PIN);
    assert_int_equal(keys_unlock(&k, PIN_WRONG, NULL), SAT_ERR_KEYS_WRONG_PIN);
    assert_int_equal(failures(h), 2);
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_OK);

    /* A failure locks keys that were unlocked. */
    assert_int_equal(keys_unlock(&k, PIN_WRONG, NULL), SAT_ERR_KEYS_WRONG_PIN);
    assert_int_equal(k.unlocked, 0);
    assert_memory_equal(k.dek, zero, sizeof zero);
}

static void test_lockout_delay(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;
    uint64_t retry = 0;

    enrol(&k, h, &test_opts, NULL, NULL);
    for (unsigned i = 0; i < KEYS_FREE_ATTEMPTS; i++)
        assert_int_equal(keys_unlock(&k, PIN_WRONG, &retry), SAT_ERR_KEYS_WRONG_PIN);
    assert_int_equal(failures(h), KEYS_FREE_ATTEMPTS);

    /* Locked out, even with the right PIN, and not counted. */
    fake_wall_ms += 1000;
    assert_int_equal(keys_unlock(&k, PIN, &retry), SAT_ERR_KEYS_LOCKED_OUT);
    assert_int_equal(retry, KEYS_LOCKOUT_BASE_MS - 1000);
    assert_int_equal(keys_unlock(&k, PIN_WRONG, NULL), SAT_ERR_KEYS_LOCKED_OUT);
    assert_int_equal(failures(h), KEYS_FREE_ATTEMPTS);

    fake_wall_ms += KEYS_LOCKOUT_BASE_MS - 1001;
    assert_int_equal(keys_unlock(&k, PIN_WRONG, &retry), SAT_ERR_KEYS_LOCKED_OUT);
    assert_int_equal(retry, 1);

    /* Time is up: the try is allowed (and counted); the delay doubles. */
    fake_wall_ms += 1;
    assert_int_equal(keys_unlock(&k, PIN_WRONG, &retry), SAT_ERR_KEYS_WRONG_PIN);
    assert_int_equal(failures(h), KEYS_FREE_ATTEMPTS + 1);
    assert_int_equal(keys_unlock(&k, PIN, &retry), SAT_ERR_KEYS_LOCKED_OUT);
    assert_int_equal(retry, 2 * KEYS_LOCKOUT_BASE_MS);

    fake_wall_ms += 2 * KEYS_LOCKOUT_BASE_MS;
    assert_int_equal(keys_unlock(&k, PIN, &retry), SAT_OK);
    assert_int_equal(failures(h), 0);
    /* After a good PIN the free attempts are back. */
    assert_int_equal(keys_unlock(&k, PIN_WRONG, &retry), SAT_ERR_KEYS_WRONG_PIN);
}

static void test_lockout_survives_tampering(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;
    uint64_t retry = 0;
    hal_file *f = NULL;

    enrol(&k, h, &test_opts, NULL, NULL);
    for (unsigned i = 0; i < KEYS_FREE_ATTEMPTS; i++)
        assert_int_equal(keys_unlock(&k, PIN_WRONG, &retry), SAT_ERR_KEYS_WRONG_PIN);
    fake_wall_ms += 20000;

    /* Deleting the lockout file restarts the wait instead of ending it. */
    assert_int_equal(hal_storage_delete(h, KEYS_LOCKOUT_FILE_NAME), SAT_OK);
    assert_int_equal(keys_unlock(&k, PIN, &retry), SAT_ERR_KEYS_LOCKED_OUT);
    assert_int_equal(retry, KEYS_LOCKOUT_BASE_MS);

    /* So does editing the stored time. */
    fake_wall_ms += 20000;
    assert_int_equal(hal_storage_open(h, KEYS_LOCKOUT_FILE_NAME, 0, &f), SAT_OK);
    assert_int_equal(hal_storage_write(h, f, 16, "\0\0\0\0", 4), SAT_OK);
    assert_int_equal(hal_storage_close(h, f), SAT_OK);
    assert_int_equal(keys_unlock(&k, PIN, &retry), SAT_ERR_KEYS_LOCKED_OUT);
    assert_int_equal(retry, KEYS_LOCKOUT_BASE_MS);
    assert_int_equal(failures(h), KEYS_FREE_ATTEMPTS);

    /* Replaying an older genuine file (from an earlier failure) does not
     * shorten the next, longer delay either. */
    {
        uint8_t saved[64];
        assert_int_equal(hal_storage_open(h, KEYS_LOCKOUT_FILE_NAME, 0, &f), SAT_OK);
        assert_int_equal(hal_storage_read_full(h, f, 0, saved, sizeof saved), SAT_OK);
        assert_int_equal(hal_storage_close(h, f), SAT_OK);
        fake_wall_ms += KEYS_LOCKOUT_BASE_MS;
        assert_int_equal(keys_unlock(&k, PIN_WRONG, &retry), SAT_ERR_KEYS_WRONG_PIN);
        fake_wall_ms += 10000;
        assert_int_equal(hal_storage_open(h, KEYS_LOCKOUT_FILE_NAME, 0, &f), SAT_OK);
        assert_int_equal(hal_storage_write(h, f, 0, saved, sizeof saved), SAT_OK);
        assert_int_equal(hal_storage_close(h, f), SAT_OK);
        assert_int_equal(keys_unlock(&k, PIN, &retry), SAT_ERR_KEYS_LOCKED_OUT);
        assert_int_equal(retry, 2 * KEYS_LOCKOUT_BASE_MS);
        assert_int_equal(failures(h), KEYS_FREE_ATTEMPTS + 1);
    }
}

static void test_clock_set_back_restarts_wait(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;
    uint64_t retry = 0;

    enrol(&k, h, &test_opts, NULL, NULL);
    for (unsigned i = 0; i < KEYS_FREE_ATTEMPTS; i++)
        assert_int_equal(keys_unlock(&k, PIN_WRONG, &retry), SAT_ERR_KEYS_WRONG_PIN);
    fake_wall_ms += 25000;
    assert_int_equal(keys_unlock(&k, PIN, &retry), SAT_ERR_KEYS_LOCKED_OUT);
    assert_int_equal(retry, 5000);

    /* Set the clock back an hour: the whole delay starts again from there. */
    fake_wall_ms -= 3600 * 1000;
    assert_int_equal(keys_unlock(&k, PIN, &retry), SAT_ERR_KEYS_LOCKED_OUT);
    assert_int_equal(retry, KEYS_LOCKOUT_BASE_MS);
    fake_wall_ms += KEYS_LOCKOUT_BASE_MS - 1;
    assert_int_equal(keys_unlock(&k, PIN, &retry), SAT_ERR_KEYS_LOCKED_OUT);
    assert_int_equal(retry, 1);
    fake_wall_ms += 1;
    assert_int_equal(keys_unlock(&k, PIN, &retry), SAT_OK);
    assert_int_equal(failures(h), 0);
}

static void test_ten_wrong_pins_erase(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;
    uint8_t secret_before[HAL_DEVICE_SECRET_BYTES];
    uint8_t secret_after[HAL_DEVICE_SECRET_BYTES];
    uint64_t epoch_before = 0;
    uint64_t epoch_after = 0;
    uint64_t retry = 0;

    enrol(&k, h, &test_opts, NULL, NULL);
    assert_int_equal(hal_keystore_device_secret(h, secret_before), SAT_OK);
    assert_int_equal(hal_keystore_counter_read(h, HAL_COUNTER_KEY_EPOCH, &epoch_before), SAT_OK);

    for (unsigned i = 1; i < KEYS_MAX_ATTEMPTS; i++) {
        assert_int_equal(wrong_pin_waiting(&k), SAT_ERR_KEYS_WRONG_PIN);
        assert_int_equal(failures(h), i);
    }
    assert_int_equal(wrong_pin_waiting(&k), SAT_ERR_KEYS_ERASED);
    assert_int_equal(failures(h), KEYS_MAX_ATTEMPTS);

    /* Even the right PIN, after any wait, and not counted any more. */
    fake_wall_ms += 365LL * 24 * 3600 * 1000;
    assert_int_equal(keys_unlock(&k, PIN, &retry), SAT_ERR_KEYS_ERASED);
    assert_int_equal(k.unlocked, 0);
    assert_int_equal(failures(h), KEYS_MAX_ATTEMPTS);
    assert_int_equal(keys_change_pin(&k, PIN, PIN_NEW, &retry), SAT_ERR_KEYS_ERASED);

    assert_int_equal(hal_keystore_counter_read(h, HAL_COUNTER_KEY_EPOCH, &epoch_after), SAT_OK);
    assert_int_equal(epoch_after, epoch_before + 1);
    assert_int_equal(hal_keystore_device_secret(h, secret_after), SAT_OK);
    assert_memory_not_equal(secret_before, secret_after, sizeof secret_before);
    /* The file stays: it holds the recovery wrap (if any). */
    assert_int_equal(keys_enrolled(h), 1);
}

static void test_recovery_after_erase(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;
    uint8_t pub[KEYS_RECOVERY_PUB_BYTES];
    uint8_t priv[KEYS_RECOVERY_PRIV_BYTES];
    uint8_t dek[KEYS_DEK_BYTES];
    uint8_t sid[KEYS_STORE_ID_BYTES];
    struct keys_enrol_opts opts = { TEST_ITERATIONS, NULL };

    assert_int_equal(pki_recovery_keygen(h, pub, priv), SAT_OK);
    assert_int_equal(pub[0], 0x04);
    opts.recovery_pub = pub;
    enrol(&k, h, &opts, dek, sid);

    for (unsigned i = 0; i < KEYS_MAX_ATTEMPTS; i++)
        (void)wrong_pin_waiting(&k);
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_ERR_KEYS_ERASED);

    assert_int_equal(keys_recover(&k, priv, "bad pin"), SAT_ERR_KEYS_BAD_PIN);
    assert_int_equal(keys_recover(&k, priv, PIN_NEW), SAT_OK);
    assert_int_equal(k.unlocked, 1);
    assert_memory_equal(k.dek, dek, sizeof dek);
    assert_memory_equal(k.store_id, sid, sizeof sid);
    assert_int_equal(failures(h), 0);
    keys_lock(&k);

    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_ERR_KEYS_WRONG_PIN);
    assert_int_equal(keys_unlock(&k, PIN_NEW, NULL), SAT_OK);
    assert_memory_equal(k.dek, dek, sizeof dek);
    assert_memory_equal(k.store_id, sid, sizeof sid);

    /* Recovery also works without an erase, and more than once. */
    assert_int_equal(keys_recover(&k, priv, PIN), SAT_OK);
    assert_memory_equal(k.dek, dek, sizeof dek);
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_OK);
}

static void test_recover_wrong_key(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;
    uint8_t pub[KEYS_RECOVERY_PUB_BYTES];
    uint8_t priv[KEYS_RECOVERY_PRIV_BYTES];
    uint8_t pub2[KEYS_RECOVERY_PUB_BYTES];
    uint8_t priv2[KEYS_RECOVERY_PRIV_BYTES];
    uint8_t zero_priv[KEYS_RECOVERY_PRIV_BYTES] = { 0 };
    struct keys_enrol_opts opts = { TEST_ITERATIONS, NULL };

    assert_int_equal(pki_recovery_keygen(h, pub, priv), SAT_OK);
    assert_int_equal(pki_recovery_keygen(h, pub2, priv2), SAT_OK);
    assert_memory_not_equal(priv, priv2, sizeof priv);
    opts.recovery_pub = pub;
    enrol(&k, h, &opts, NULL, NULL);

    assert_int_equal(keys_recover(&k, priv2, PIN_NEW), SAT_ERR_KEYS_RECOVERY);
    assert_int_equal(k.unlocked, 0);
    assert_int_equal(keys_recover(&k, zero_priv, PIN_NEW), SAT_ERR_KEYS_RECOVERY);
    /* Nothing changed: the old PIN still works, the new one does not. */
    assert_int_equal(keys_unlock(&k, PIN_NEW, NULL), SAT_ERR_KEYS_WRONG_PIN);
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_OK);
}

static void test_recover_without_recovery_wrap(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;
    uint8_t pub[KEYS_RECOVERY_PUB_BYTES];
    uint8_t priv[KEYS_RECOVERY_PRIV_BYTES];
    struct keys_enrol_opts opts = { TEST_ITERATIONS, NULL };

    assert_int_equal(pki_recovery_keygen(h, pub, priv), SAT_OK);
    enrol(&k, h, &test_opts, NULL, NULL);
    assert_int_equal(keys_recover(&k, priv, PIN_NEW), SAT_ERR_KEYS_RECOVERY);
    assert_int_equal(keys_wipe(&k), SAT_OK);
    assert_int_equal(keys_recover(&k, priv, PIN_NEW), SAT_ERR_KEYS_NOT_ENROLLED);

    /* A public key that is not a P-256 point is refused at enrolment. */
    pub[KEYS_RECOVERY_PUB_BYTES - 1] ^= 0x01;
    opts.recovery_pub = pub;
    keys_init(&k, h);
    assert_int_equal(keys_enrol(&k, PIN, &opts), SAT_ERR_KEYS_RECOVERY);
    assert_int_equal(keys_enrolled(h), 0);
}

static void test_change_pin(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;
    uint8_t dek[KEYS_DEK_BYTES];
    uint8_t sid[KEYS_STORE_ID_BYTES];

    enrol(&k, h, &test_opts, dek, sid);
    assert_int_equal(keys_change_pin(&k, PIN_WRONG, PIN_NEW, NULL), SAT_ERR_KEYS_WRONG_PIN);
    assert_int_equal(failures(h), 1);
    /* A bad new PIN is refused before the old one is tried (not counted). */
    assert_int_equal(keys_change_pin(&k, PIN, "a b c", NULL), SAT_ERR_KEYS_BAD_PIN);
    assert_int_equal(failures(h), 1);

    assert_int_equal(keys_change_pin(&k, PIN, PIN_NEW, NULL), SAT_OK);
    assert_int_equal(k.unlocked, 1);
    assert_memory_equal(k.dek, dek, sizeof dek);
    assert_int_equal(failures(h), 0);
    keys_lock(&k);

    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_ERR_KEYS_WRONG_PIN);
    assert_int_equal(keys_unlock(&k, PIN_NEW, NULL), SAT_OK);
    assert_memory_equal(k.dek, dek, sizeof dek);
    assert_memory_equal(k.store_id, sid, sizeof sid);
}

/* Power cut at every storage write of a PIN change: afterwards exactly one
 * of the two PINs opens the same DEK. */
static void test_change_pin_power_cut_sweep(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;
    uint8_t dek[KEYS_DEK_BYTES];
    int cut;
    int done = 0;
    int saw_old = 0;
    int saw_new = 0;

    enrol(&k, h, &test_opts, dek, NULL);
    for (cut = 0; cut < 16 && !done; cut++) {
        const char *from = saw_new ? PIN_NEW : PIN;
        const char *to = saw_new ? PIN : PIN_NEW;
        int ret;
        writes_until_cut = cut;
        power_off = 0;
        ret = keys_change_pin(&k, from, to, NULL);
        writes_until_cut = -1;
        power_off = 0;
        if (ret == SAT_OK) {
            done = 1;
            assert_int_equal(keys_unlock(&k, to, NULL), SAT_OK);
        } else {
            assert_int_equal(ret, SAT_ERR_POWER_CUT);
            assert_int_equal(k.unlocked, 0);
            ret = keys_unlock(&k, from, NULL);
            if (ret == SAT_OK) {
                saw_old = 1;
            } else {
                assert_int_equal(ret, SAT_ERR_KEYS_WRONG_PIN);
                assert_int_equal(keys_unlock(&k, to, NULL), SAT_OK);
                saw_new = 1;
            }
        }
        assert_memory_equal(k.dek, dek, sizeof dek);
        keys_lock(&k);
    }
    assert_true(done);
    assert_true(saw_old);
    assert_true(saw_new);
}

/* ---- power cuts during keys_unlock ------------------------------------------
 *
 * keys.h: a PIN is counted in the key store before it is tried, so a power
 * cut never makes a guess free. An attacker who cuts the power at a chosen
 * moment may learn whether a PIN was right (from the writes that follow, or
 * their absence) as soon as it has been tried; each such attempt must then
 * already be in HAL_COUNTER_PIN_FAILURES.
 *
 * "Tried" is seen at the HAL: the PIN cannot be tried without the device
 * secret (the KEK is derived from it). The one other reader is the lockout
 * file's MAC, and each of those opens the lockout file once (lockout_read
 * opens it and then MACs, lockout_write MACs and then opens it); so more
 * secret reads than lockout-file opens during an attempt means the PIN was
 * tried. */

/* More durable operations than any one keys_unlock makes (counter, lockout
 * file, crypto-erase of both key-file slots): a sweep that has not finished
 * by then has a bug. */
#define UNLOCK_CUTS_MAX 24

static uint64_t failures_ever(const struct hal *h)
{
    uint64_t n = 0;
    assert_int_equal(hal_keystore_counter_read(h, HAL_COUNTER_PIN_FAILURES, &n), SAT_OK);
    return n;
}

/* Starts over at a run of `run` wrong PINs: wipes, enrols PIN (dek gets the
 * new DEK), enters the wrong PINs, and waits out the delay they earned. */
static void start_run(struct keys *k, const struct hal *h, unsigned run,
                      uint8_t dek[KEYS_DEK_BYTES])
{
    assert_int_equal(keys_wipe(k), SAT_OK);
    enrol(k, h, &test_opts, dek, NULL);
    for (unsigned i = 0; i < run; i++)
        assert_int_equal(wrong_pin_waiting(k), SAT_ERR_KEYS_WRONG_PIN);
    assert_int_equal(failures(h), run);
    fake_wall_ms += (int64_t)keys_lockout_ms(run);
}

/* One keys_unlock(pin) with the power cut at its `cut`th durable operation
 * (0 = the first), from a run of `run` wrong PINs. Fails the test if the
 * PIN was tried and the power cut kept the try from being counted. Returns
 * 1 if the call finished without reaching the cut. */
static int unlock_with_cut(struct keys *k, const struct hal *h, const char *pin, unsigned run,
                           int cut, int *ret, uint64_t *counted)
{
    uint64_t before = failures_ever(h);
    uint64_t retry = 0;
    int finished;
    int tried;

    memset(&probe, 0, sizeof probe);
    writes_until_cut = cut;
    power_off = 0;
    *ret = keys_unlock(k, pin, &retry);
    finished = !power_off;
    writes_until_cut = -1;
    power_off = 0; /* power back on: a new boot */
    tried = probe.secret_reads > probe.lockout_opens;
    *counted = failures_ever(h) - before;
    if (tried && *counted == 0)
        fail_msg("%s PIN tried but not counted: run %u, power cut at durable operation %d of "
                 "keys_unlock (it said %s; device secret read %u times, lockout file opened "
                 "%u times)",
                 strcmp(pin, PIN) == 0 ? "right" : "wrong", run, cut, sat_strerror(*ret),
                 probe.secret_reads, probe.lockout_opens);
    assert_true(*counted <= 1);
    if (k->unlocked)
        assert_int_equal(*ret, SAT_OK);
    return finished;
}

/* A wrong PIN with the power cut at each durable operation in turn, from
 * several runs: no delay yet, the last free attempt, the first delayed one
 * (the lockout file is read before the count) and the one that
 * crypto-erases. After each cut the attempt is counted or was never tried;
 * and the store is as the count says: the right PIN opens the same DEK, or,
 * if this was the last attempt allowed, nothing opens it any more. */
static void test_unlock_power_cut_sweep(void **state)
{
    static const unsigned runs[] = { 0, KEYS_FREE_ATTEMPTS - 1, KEYS_FREE_ATTEMPTS,
                                     KEYS_MAX_ATTEMPTS - 1 };
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;
    uint8_t dek[KEYS_DEK_BYTES];

    keys_init(&k, h);
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        const unsigned run = runs[r];
        const int last = run + 1 >= KEYS_MAX_ATTEMPTS;
        int finished = 0;
        int cut;
        for (cut = 0; cut < UNLOCK_CUTS_MAX && !finished; cut++) {
            uint64_t counted = 0;
            int ret;
            start_run(&k, h, run, dek);
            finished = unlock_with_cut(&k, h, PIN_WRONG, run, cut, &ret, &counted);
            assert_int_equal(k.unlocked, 0);
            if (finished) {
                assert_int_equal(ret, last ? SAT_ERR_KEYS_ERASED : SAT_ERR_KEYS_WRONG_PIN);
                assert_int_equal(counted, 1);
            } else if (ret != SAT_ERR_POWER_CUT) {
                /* Cut after the count: only the failure time or the erase
                 * was lost, and the next attempt finishes that. */
                assert_int_equal(ret, last ? SAT_ERR_KEYS_ERASED : SAT_ERR_KEYS_WRONG_PIN);
                assert_int_equal(counted, 1);
            }
            assert_int_equal(failures(h), run + counted);
            ret = unlock_waiting(&k, PIN);
            if (last && counted) {
                assert_int_equal(ret, SAT_ERR_KEYS_ERASED);
                assert_int_equal(unlock_waiting(&k, PIN), SAT_ERR_KEYS_ERASED);
            } else {
                assert_int_equal(ret, SAT_OK);
                assert_memory_equal(k.dek, dek, sizeof dek);
                assert_int_equal(failures(h), 0);
            }
            keys_lock(&k);
        }
        assert_true(finished);
        assert_true(cut > 1); /* at least one cut fell inside the attempt */
    }
}

/* The right PIN with the power cut at each durable operation in turn: it
 * too is counted before it is tried; afterwards the right PIN still opens
 * the same DEK and ends the run (whether or not the cut attempt did). */
static void test_unlock_right_pin_power_cut_sweep(void **state)
{
    static const unsigned runs[] = { 0, KEYS_FREE_ATTEMPTS };
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;
    uint8_t dek[KEYS_DEK_BYTES];

    keys_init(&k, h);
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        const unsigned run = runs[r];
        int finished = 0;
        int cut;
        for (cut = 0; cut < UNLOCK_CUTS_MAX && !finished; cut++) {
            uint64_t counted = 0;
            uint64_t left = 0;
            int ret;
            start_run(&k, h, run, dek);
            finished = unlock_with_cut(&k, h, PIN, run, cut, &ret, &counted);
            left = failures(h);
            if (finished) {
                assert_int_equal(ret, SAT_OK);
                assert_int_equal(left, 0);
            } else {
                assert_int_equal(ret, SAT_ERR_POWER_CUT);
                assert_int_equal(k.unlocked, 0);
                /* Not counted, or counted and maybe not yet cleared. */
                assert_true(left == (counted ? run + 1 : run) || (counted && left == 0));
            }
            if (ret == SAT_OK)
                assert_memory_equal(k.dek, dek, sizeof dek);
            keys_lock(&k);
            assert_int_equal(unlock_waiting(&k, PIN), SAT_OK);
            assert_memory_equal(k.dek, dek, sizeof dek);
            assert_int_equal(failures(h), 0);
            keys_lock(&k);
        }
        assert_true(finished);
        assert_true(cut > 1);
    }
}

static void test_lock_zeroizes(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;
    uint8_t zero[KEYS_DEK_BYTES] = { 0 };

    keys_init(&k, h);
    assert_int_equal(k.unlocked, 0);
    assert_ptr_equal(k.hal, h);
    assert_int_equal(keys_enrol(&k, PIN, &test_opts), SAT_OK);
    assert_memory_not_equal(k.dek, zero, KEYS_DEK_BYTES);
    keys_lock(&k);
    assert_int_equal(k.unlocked, 0);
    assert_memory_equal(k.dek, zero, KEYS_DEK_BYTES);
    assert_memory_equal(k.store_id, zero, KEYS_STORE_ID_BYTES);
    assert_ptr_equal(k.hal, h);
    keys_lock(&k); /* safe when locked */
    assert_int_equal(k.unlocked, 0);
}

struct count {
    int files;
};

static int count_file(void *arg, const char *name)
{
    (void)name;
    ((struct count *)arg)->files++;
    return 0;
}

static void test_bad_pin_formats(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;
    struct count c = { 0 };
    uint64_t epoch = 0;
    static const char *const bad[] = {
        "123",                               /* 3 bytes */
        "123456789012345678901234567890123", /* 33 bytes */
        "12 34",                             /* space */
        "12\t34",                            /* control */
        "1234\n",                            /* control at the end */
        ("\x7f" "123"),                      /* DEL */
        "",
    };

    keys_init(&k, h);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(keys_enrol(&k, bad[i], &test_opts), SAT_ERR_KEYS_BAD_PIN);
    assert_int_equal(keys_enrol(&k, NULL, &test_opts), SAT_ERR_KEYS_BAD_PIN);
    assert_int_equal(k.unlocked, 0);
    /* Nothing written: no file, no key store activity. */
    assert_int_equal(hal_storage_list(h, count_file, &c), SAT_OK);
    assert_int_equal(c.files, 0);
    assert_int_equal(keys_enrolled(h), 0);
    assert_int_equal(hal_keystore_counter_read(h, HAL_COUNTER_KEY_EPOCH, &epoch), SAT_OK);
    assert_int_equal(epoch, 0);

    /* The limits themselves are fine, and so are non-ASCII bytes. */
    assert_int_equal(keys_enrol(&k, "1234", &test_opts), SAT_OK);
    assert_int_equal(keys_wipe(&k), SAT_OK);
    assert_int_equal(keys_enrol(&k, "12345678901234567890123456789012", &test_opts), SAT_OK);
    assert_int_equal(keys_wipe(&k), SAT_OK);
    assert_int_equal(keys_enrol(&k, "c\xc3\xa9sar", &test_opts), SAT_OK);
    keys_lock(&k);
    assert_int_equal(keys_unlock(&k, "c\xc3\xa9sar", NULL), SAT_OK);

    /* A malformed PIN at unlock is refused without being counted. */
    assert_int_equal(keys_unlock(&k, "12 34", NULL), SAT_ERR_KEYS_BAD_PIN);
    assert_int_equal(failures(h), 0);

    /* A fixed iteration count below 1000 is refused. */
    assert_int_equal(keys_wipe(&k), SAT_OK);
    {
        struct keys_enrol_opts few = { 999, NULL };
        assert_int_equal(keys_enrol(&k, PIN, &few), SAT_ERR_INVALID);
        assert_int_equal(keys_enrolled(h), 0);
    }
}

static void test_enrol_twice(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;
    uint8_t dek[KEYS_DEK_BYTES];

    enrol(&k, h, &test_opts, dek, NULL);
    assert_int_equal(keys_enrol(&k, PIN_NEW, &test_opts), SAT_ERR_KEYS_ALREADY_ENROLLED);
    assert_int_equal(k.unlocked, 0);
    assert_int_equal(keys_unlock(&k, PIN_NEW, NULL), SAT_ERR_KEYS_WRONG_PIN);
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_OK);
    assert_memory_equal(k.dek, dek, sizeof dek);
}

static void test_empty_file_from_cut_enrol(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;
    hal_file *f = NULL;

    /* A power cut right after the file was created leaves it empty. */
    assert_int_equal(hal_storage_open(h, KEYS_FILE_NAME, HAL_OPEN_CREATE, &f), SAT_OK);
    assert_int_equal(hal_storage_close(h, f), SAT_OK);
    assert_int_equal(keys_enrolled(h), 0);
    keys_init(&k, h);
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_ERR_KEYS_NOT_ENROLLED);
    assert_int_equal(keys_enrol(&k, PIN, &test_opts), SAT_OK);
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_OK);
}

static void write_at(const struct hal *h, uint64_t off, const void *buf, size_t len)
{
    hal_file *f = NULL;
    assert_int_equal(hal_storage_open(h, KEYS_FILE_NAME, 0, &f), SAT_OK);
    assert_int_equal(hal_storage_write(h, f, off, buf, len), SAT_OK);
    assert_int_equal(hal_storage_close(h, f), SAT_OK);
}

static void truncate_to(const struct hal *h, uint64_t size)
{
    hal_file *f = NULL;
    assert_int_equal(hal_storage_open(h, KEYS_FILE_NAME, 0, &f), SAT_OK);
    assert_int_equal(hal_storage_truncate(h, f, size), SAT_OK);
    assert_int_equal(hal_storage_close(h, f), SAT_OK);
}

static void test_corrupt_key_file(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;
    uint8_t dek[KEYS_DEK_BYTES];

    enrol(&k, h, &test_opts, dek, NULL);

    /* One damaged slot: the other copy still opens. */
    write_at(h, 0, "XXXX", 4);
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_OK);
    assert_memory_equal(k.dek, dek, sizeof dek);
    /* Both: the file is corrupt, and that is not counted as a wrong PIN. */
    write_at(h, KF_SLOT_BYTES, "XXXX", 4);
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_ERR_KEYS_CORRUPT);
    assert_int_equal(k.unlocked, 0);
    assert_int_equal(failures(h), 0);
    assert_int_equal(keys_change_pin(&k, PIN, PIN_NEW, NULL), SAT_ERR_KEYS_CORRUPT);
    assert_int_equal(keys_enrol(&k, PIN, &test_opts), SAT_ERR_KEYS_ALREADY_ENROLLED);

    /* A version this firmware does not know. */
    assert_int_equal(keys_wipe(&k), SAT_OK);
    enrol(&k, h, &test_opts, NULL, NULL);
    write_at(h, 4, "\x02", 1);
    write_at(h, KF_SLOT_BYTES + 4, "\x02", 1);
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_ERR_KEYS_CORRUPT);

    /* Truncated below one slot. */
    assert_int_equal(keys_wipe(&k), SAT_OK);
    enrol(&k, h, &test_opts, NULL, NULL);
    truncate_to(h, 100);
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_ERR_KEYS_CORRUPT);

    /* Longer than two slots. */
    assert_int_equal(keys_wipe(&k), SAT_OK);
    enrol(&k, h, &test_opts, NULL, NULL);
    write_at(h, 2 * KF_SLOT_BYTES, "junk", 4);
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_ERR_KEYS_CORRUPT);

    /* A torn second slot (length between one and two slots) is survivable. */
    assert_int_equal(keys_wipe(&k), SAT_OK);
    enrol(&k, h, &test_opts, dek, NULL);
    truncate_to(h, KF_SLOT_BYTES + 100);
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_OK);
    assert_memory_equal(k.dek, dek, sizeof dek);
    assert_int_equal(failures(h), 0);
}

static void read_slot(const struct hal *h, unsigned slot, uint8_t rec[KF_SLOT_BYTES])
{
    hal_file *f = NULL;
    assert_int_equal(hal_storage_open(h, KEYS_FILE_NAME, 0, &f), SAT_OK);
    assert_int_equal(hal_storage_read_full(h, f, (uint64_t)slot * KF_SLOT_BYTES, rec,
                                           KF_SLOT_BYTES),
                     SAT_OK);
    assert_int_equal(hal_storage_close(h, f), SAT_OK);
}

static void test_header_edit_detected(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;
    uint8_t rec[KF_SLOT_BYTES];

    enrol(&k, h, &test_opts, NULL, NULL);
    read_slot(h, 1, rec);
    assert_int_equal(rec[KF_OFF_ITER + 3], TEST_ITERATIONS & 0xFF);

    /* An edit that leaves the checksum stale: no slot is valid. */
    rec[KF_OFF_ITER + 3] ^= 0x01; /* 1000 -> 1001 iterations */
    write_at(h, 0, rec, sizeof rec);
    write_at(h, KF_SLOT_BYTES, rec, sizeof rec);
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_ERR_KEYS_CORRUPT);
    assert_int_equal(failures(h), 0);

    /* A forger who also fixes the checksum: the iteration count feeds the
     * KEK and is GCM associated data, so the wrap no longer opens even with
     * the right PIN. Without the PIN that cannot be told from a wrong PIN
     * (keys.c). */
    assert_int_equal(mbedtls_sha256_ret(rec, KF_OFF_SUM, rec + KF_OFF_SUM, 0), 0);
    write_at(h, 0, rec, sizeof rec);
    write_at(h, KF_SLOT_BYTES, rec, sizeof rec);
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_ERR_KEYS_WRONG_PIN);

    /* Same for the salt. */
    rec[KF_OFF_ITER + 3] ^= 0x01;
    rec[KF_OFF_PIN_SALT] ^= 0x80;
    assert_int_equal(mbedtls_sha256_ret(rec, KF_OFF_SUM, rec + KF_OFF_SUM, 0), 0);
    write_at(h, 0, rec, sizeof rec);
    write_at(h, KF_SLOT_BYTES, rec, sizeof rec);
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_ERR_KEYS_WRONG_PIN);

    /* Undo it: the untouched wrap opens again. */
    rec[KF_OFF_PIN_SALT] ^= 0x80;
    assert_int_equal(mbedtls_sha256_ret(rec, KF_OFF_SUM, rec + KF_OFF_SUM, 0), 0);
    write_at(h, 0, rec, sizeof rec);
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_OK);
}

static void test_wipe(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;
    uint8_t pub[KEYS_RECOVERY_PUB_BYTES];
    uint8_t priv[KEYS_RECOVERY_PRIV_BYTES];
    uint8_t secret_before[HAL_DEVICE_SECRET_BYTES];
    uint8_t secret_after[HAL_DEVICE_SECRET_BYTES];
    uint8_t zero[KEYS_DEK_BYTES] = { 0 };
    struct keys_enrol_opts opts = { TEST_ITERATIONS, NULL };

    assert_int_equal(pki_recovery_keygen(h, pub, priv), SAT_OK);
    opts.recovery_pub = pub;
    keys_init(&k, h);
    assert_int_equal(keys_enrol(&k, PIN, &opts), SAT_OK);
    assert_int_equal(keys_unlock(&k, PIN_WRONG, NULL), SAT_ERR_KEYS_WRONG_PIN);
    assert_true(file_exists(h, KEYS_LOCKOUT_FILE_NAME));
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_OK);
    assert_int_equal(hal_keystore_device_secret(h, secret_before), SAT_OK);

    assert_int_equal(keys_wipe(&k), SAT_OK);
    assert_int_equal(k.unlocked, 0);
    assert_memory_equal(k.dek, zero, KEYS_DEK_BYTES);
    assert_int_equal(keys_enrolled(h), 0);
    assert_false(file_exists(h, KEYS_FILE_NAME));
    assert_false(file_exists(h, KEYS_LOCKOUT_FILE_NAME));
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_ERR_KEYS_NOT_ENROLLED);
    assert_int_equal(keys_recover(&k, priv, PIN), SAT_ERR_KEYS_NOT_ENROLLED);
    assert_int_equal(hal_keystore_device_secret(h, secret_after), SAT_OK);
    assert_memory_not_equal(secret_before, secret_after, sizeof secret_before);

    /* Wiping twice is fine; enrolling again starts a fresh run. */
    assert_int_equal(keys_wipe(&k), SAT_OK);
    assert_int_equal(keys_enrol(&k, PIN_NEW, &test_opts), SAT_OK);
    assert_int_equal(failures(h), 0);
}

static void test_enrol_resets_run_after_erase_and_wipe(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;

    enrol(&k, h, &test_opts, NULL, NULL);
    for (unsigned i = 0; i < KEYS_MAX_ATTEMPTS; i++)
        (void)wrong_pin_waiting(&k);
    assert_int_equal(failures(h), KEYS_MAX_ATTEMPTS);
    assert_int_equal(keys_wipe(&k), SAT_OK);
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_ERR_KEYS_NOT_ENROLLED);
    assert_int_equal(keys_enrol(&k, PIN, &test_opts), SAT_OK);
    assert_int_equal(failures(h), 0);
    keys_lock(&k);
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_OK);
}

static void test_lockout_ms_table(void **state)
{
    (void)state;
    assert_int_equal(keys_lockout_ms(0), 0);
    assert_int_equal(keys_lockout_ms(1), 0);
    assert_int_equal(keys_lockout_ms(2), 0);
    assert_int_equal(keys_lockout_ms(3), 30000);
    assert_int_equal(keys_lockout_ms(4), 60000);
    assert_int_equal(keys_lockout_ms(5), 120000);
    assert_int_equal(keys_lockout_ms(6), 240000);
    assert_int_equal(keys_lockout_ms(7), 480000);
    assert_int_equal(keys_lockout_ms(8), 960000);
    assert_int_equal(keys_lockout_ms(9), 1920000);
    assert_int_equal(keys_lockout_ms(10), 3840000);
    /* Huge counts saturate instead of wrapping to a short delay. */
    assert_true(keys_lockout_ms(60) >= keys_lockout_ms(10));
    assert_true(keys_lockout_ms(UINT64_MAX) == UINT64_MAX);
}

static uint32_t stored_iterations(const struct hal *h)
{
    hal_file *f = NULL;
    uint8_t b[4];
    assert_int_equal(hal_storage_open(h, KEYS_FILE_NAME, 0, &f), SAT_OK);
    assert_int_equal(hal_storage_read_full(h, f, KF_OFF_ITER, b, sizeof b), SAT_OK);
    assert_int_equal(hal_storage_close(h, f), SAT_OK);
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void test_calibration(void **state)
{
    struct fixture *fx = *state;
    const struct hal *h = &fx->h;
    struct keys k;
    struct keys_enrol_opts calibrate = { 0, NULL };
    uint32_t it;

    /* Each clock read moves 20 ms: the trial seems to take 20 ms, which
     * scales to a count inside the clamp. */
    fake_mono_step_ms = 20;
    keys_init(&k, h);
    assert_int_equal(keys_enrol(&k, PIN, &calibrate), SAT_OK);
    it = stored_iterations(h);
    assert_true(it >= KEYS_ITERATIONS_MIN);
    assert_true(it <= KEYS_ITERATIONS_MAX);
    keys_lock(&k);
    assert_int_equal(keys_unlock(&k, PIN, NULL), SAT_OK);

    /* A very slow device is clamped to the minimum. */
    assert_int_equal(keys_wipe(&k), SAT_OK);
    fake_mono_step_ms = 1000;
    assert_int_equal(keys_enrol(&k, PIN, &calibrate), SAT_OK);
    assert_int_equal(stored_iterations(h), KEYS_ITERATIONS_MIN);

    /* A fixed count is stored as given. */
    assert_int_equal(keys_wipe(&k), SAT_OK);
    assert_int_equal(keys_enrol(&k, PIN, &test_opts), SAT_OK);
    assert_int_equal(stored_iterations(h), TEST_ITERATIONS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_enrol_unlock_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_pin_counted_good_pin_resets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lockout_delay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lockout_survives_tampering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clock_set_back_restarts_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ten_wrong_pins_erase, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery_after_erase, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_wrong_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_without_recovery_wrap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_pin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_pin_power_cut_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unlock_power_cut_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unlock_right_pin_power_cut_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_zeroizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_pin_formats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enrol_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_file_from_cut_enrol, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_key_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_edit_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wipe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enrol_resets_run_after_erase_and_wipe, setup,
                                        teardown),
        cmocka_unit_test(test_lockout_ms_table),
        cmocka_unit_test_setup_teardown(test_calibration, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
