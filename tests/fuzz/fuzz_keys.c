/*
 * fuzz_keys.c - the key file (keys.bin) as the tablet reads it from flash.
 *
 * Input: one control byte, then the bytes of keys.bin (no file at all for
 * an empty input). The control byte:
 *   bit 0      repair each whole 512-byte slot's SHA-256 checksum (and
 *              bring a PBKDF2 count over 2000 down to count % 2001, which
 *              may make it too low), so that edits get past the checksum
 *              into the record's fields; without it only intact slots count
 *   bits 1-4   wrong PINs already counted before this one (0..15): the
 *              lockout, its delay and the crypto-erase at 10 run on the file
 *   bit 5      after an unlock, change the PIN, and unlock with the new one
 *   bit 6      recover with the fleet's recovery key, and unlock after it
 *   bit 7      wipe everything at the end
 * An odd count of earlier wrong PINs also tries a wrong PIN first.
 *
 * Whatever the file holds, every call must return (no crash, no leak), a
 * failed call must leave the keys locked and zeroized, a wrong PIN never
 * unlocks, and what a call reports done must hold: a PIN just changed or
 * set by recovery unlocks, a wipe leaves nothing enrolled.
 */
#include <mbedtls/sha256.h>

#include "fuzz.h"
#include "fuzz_world.h"

#define SLOT_BYTES 512u
#define OFF_ITERATIONS 16u
#define OFF_SUM 480u
/* Repaired PBKDF2 counts stay below this: each PIN check costs a few ms. */
#define ITERATIONS_CHEAP 2000u

static uint8_t recovery_pub[KEYS_RECOVERY_PUB_BYTES];
static uint8_t recovery_priv[KEYS_RECOVERY_PRIV_BYTES];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FUZZ_CHECK(fuzz_recovery_key(recovery_pub, recovery_priv) == SAT_OK,
               "no recovery key pair");
    return 0;
}

static void repair(uint8_t *file, size_t len)
{
    for (size_t off = 0; off + SLOT_BYTES <= len; off += SLOT_BYTES) {
        uint8_t *rec = file + off;
        uint32_t it = (uint32_t)rec[OFF_ITERATIONS] << 24 |
                      (uint32_t)rec[OFF_ITERATIONS + 1] << 16 |
                      (uint32_t)rec[OFF_ITERATIONS + 2] << 8 | rec[OFF_ITERATIONS + 3];
        if (it > ITERATIONS_CHEAP) {
            it %= ITERATIONS_CHEAP + 1;
            rec[OFF_ITERATIONS] = (uint8_t)(it >> 24);
            rec[OFF_ITERATIONS + 1] = (uint8_t)(it >> 16);
            rec[OFF_ITERATIONS + 2] = (uint8_t)(it >> 8);
            rec[OFF_ITERATIONS + 3] = (uint8_t)it;
        }
        FUZZ_CHECK(mbedtls_sha256_ret(rec, OFF_SUM, rec + OFF_SUM, 0) == 0, "SHA-256 failed");
    }
}

static void check_locked(const struct keys *k)
{
    static const uint8_t zero[KEYS_DEK_BYTES];
    FUZZ_CHECK(!k->unlocked && memcmp(k->dek, zero, sizeof k->dek) == 0 &&
                   memcmp(k->store_id, zero, sizeof k->store_id) == 0,
               "a failed call left key material behind");
}

/* Unlocks with pin; an answer to wait is waited out once (the clock is
 * the simulator's). */
static int unlock(struct keys *k, struct sim_hal *sim, const char *pin)
{
    uint64_t wait_ms = 0;
    int ret = keys_unlock(k, pin, &wait_ms);
    if (ret == SAT_ERR_KEYS_LOCKED_OUT) {
        check_locked(k);
        sim_hal_advance_ms(sim, wait_ms + 1);
        ret = keys_unlock(k, pin, &wait_ms);
    }
    if (ret == SAT_OK)
        FUZZ_CHECK(k->unlocked, "keys_unlock said yes but left the keys locked");
    else
        check_locked(k);
    return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sim_hal *sim = NULL;
    const struct hal *h;
    struct keys k;
    uint8_t control = size > 0 ? data[0] : 0;
    unsigned failures = (control >> 1) & 0xFu;
    uint64_t run = 0;
    int ret;

    FUZZ_CHECK(fuzz_keys_device(&sim) == SAT_OK, "no simulated tablet");
    h = sim_hal_hal(sim);
    if (size > 0) {
        uint8_t *file = malloc(size);
        FUZZ_CHECK(file != NULL, "out of memory");
        memcpy(file, data + 1, size - 1);
        if (control & 0x01u)
            repair(file, size - 1);
        FUZZ_CHECK(fuzz_file_write(h, KEYS_FILE_NAME, file, size - 1) == SAT_OK,
                   "cannot write the key file");
        free(file);
    }
    if (failures > 0)
        FUZZ_CHECK(hal_keystore_counter_advance(h, HAL_COUNTER_PIN_FAILURES, failures) ==
                       SAT_OK,
                   "cannot count wrong PINs");

    FUZZ_CHECK(keys_enrolled(h) == (size > 1), "keys_enrolled is wrong about the file");
    FUZZ_CHECK(keys_failures(h, &run) == SAT_OK && run == failures,
               "keys_failures says %llu, not %u", (unsigned long long)run, failures);
    keys_init(&k, h);
    if (failures % 2 == 1)
        FUZZ_CHECK(unlock(&k, sim, "0000") != SAT_OK, "a wrong PIN unlocked the keys");
    ret = unlock(&k, sim, FUZZ_PIN);
    if (fuzz_verbose())
        printf("keys: control 0x%02x, unlock: %s\n", control, sat_strerror(ret));
    if (ret == SAT_OK && (control & 0x20u)) {
        ret = keys_change_pin(&k, FUZZ_PIN, "1357", NULL);
        if (ret == SAT_OK) {
            keys_lock(&k);
            FUZZ_CHECK(unlock(&k, sim, "1357") == SAT_OK, "the new PIN does not unlock");
        } else {
            check_locked(&k);
        }
    }
    keys_lock(&k);
    check_locked(&k);
    if (control & 0x40u) {
        ret = keys_recover(&k, recovery_priv, "8642");
        if (fuzz_verbose())
            printf("keys: recover: %s\n", sat_strerror(ret));
        if (ret == SAT_OK) {
            keys_lock(&k);
            FUZZ_CHECK(unlock(&k, sim, "8642") == SAT_OK, "the recovered PIN does not unlock");
            keys_lock(&k);
        }
        check_locked(&k);
    }
    if (control & 0x80u) {
        FUZZ_CHECK(keys_wipe(&k) == SAT_OK, "keys_wipe failed");
        FUZZ_CHECK(!keys_enrolled(h), "still enrolled after a wipe");
        check_locked(&k);
    }
    sim_hal_free(sim);
    return 0;
}
