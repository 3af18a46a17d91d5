/*
 * keys.h - the nurse's PIN, the device-bound secret and the data key (DEK).
 *
 * A random 32-byte DEK encrypts the store. It is kept on flash only wrapped:
 *  - the PIN wrap: AES-256-GCM under a key-encryption key
 *        KEK = HKDF-SHA256(ikm = PBKDF2-HMAC-SHA256(PIN, salt, iterations),
 *                          salt = device secret (HAL key store),
 *                          info = "satchel kek v1")
 *    so neither the PIN alone (brute force needs the device secret) nor a
 *    copy of the flash alone (needs the PIN) opens it;
 *  - the recovery wrap (optional): ECDH P-256 between a fresh ephemeral key
 *    and the fleet's recovery public key, HKDF-SHA256, AES-256-GCM. Only the
 *    holder of the fleet's recovery private key can open it.
 * Both live in the storage file KEYS_FILE_NAME, with the per-device random
 * salt and the calibrated PBKDF2 iteration count. Each wrap encrypts the DEK
 * together with a random 16-byte store id (bound into every encrypted block
 * of the store as associated data), so the store id too is only known while
 * unlocked. The file format, and how updates survive a power cut, are
 * described at the top of keys.c.
 *
 * Wrong PINs: each one advances HAL_COUNTER_PIN_FAILURES in the key store
 * before the PIN is even tried (a power cut cannot make a guess free). A
 * good PIN sets HAL_COUNTER_PIN_CLEARED to the failure count. Consecutive
 * failures n = FAILURES - CLEARED:
 *   n < KEYS_FREE_ATTEMPTS                  no delay
 *   n >= KEYS_FREE_ATTEMPTS                 keys_unlock refuses with
 *                                           SAT_ERR_KEYS_LOCKED_OUT until
 *                                           keys_lockout_ms(n) has passed since
 *                                           the last failure (doubles each time)
 *   n >= KEYS_MAX_ATTEMPTS (10)             crypto-erase: the PIN wrap is
 *                                           destroyed and the device secret
 *                                           wiped (hal_keystore_wipe); only
 *                                           the fleet's recovery wrap remains.
 *
 * The time of the last failure is kept in the storage file
 * KEYS_LOCKOUT_FILE_NAME (HAL wall clock, ms), because each `satchel`
 * command is a new process. If the wall clock is ever earlier than that time
 * (set back to dodge the delay), the stored time is reset to now and the
 * whole delay starts again; so does a lockout file that is missing, damaged,
 * or not the one written at the latest failure (it is MACed under the
 * device secret together with the failure count). A wall clock set FORWARD
 * does shorten the delay; the hard limit is the counted KEYS_MAX_ATTEMPTS.
 *
 * Memory: the DEK and every derived key live only in struct keys (and on
 * the stack during a call); keys_lock() and every error path zeroize them
 * (mbedtls_platform_zeroize).
 *
 * All randomness comes from the HAL through a CTR-DRBG; all time from the
 * HAL's clock. Nothing here touches the OS.
 */
#ifndef SATCHEL_KEYS_H
#define SATCHEL_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "hal.h"
#include "pki.h"

#define KEYS_FILE_NAME "keys.bin"
#define KEYS_LOCKOUT_FILE_NAME "keys.lockout"
#define KEYS_DEK_BYTES 32
#define KEYS_STORE_ID_BYTES 16
#define KEYS_PIN_BYTES_MIN 4
#define KEYS_PIN_BYTES_MAX 32
#define KEYS_FREE_ATTEMPTS 3
#define KEYS_MAX_ATTEMPTS 10
#define KEYS_LOCKOUT_BASE_MS 30000u
/* PBKDF2 iterations: calibrated at enrolment to take about this long on the
 * device, clamped to [KEYS_ITERATIONS_MIN, KEYS_ITERATIONS_MAX]. */
#define KEYS_KDF_TARGET_MS 250u
#define KEYS_ITERATIONS_MIN 10000u
#define KEYS_ITERATIONS_MAX 5000000u
/* Uncompressed P-256 point: 0x04 || X || Y. */
/* The fleet's recovery key pair (pki_recovery_keygen makes it). */
#define KEYS_RECOVERY_PUB_BYTES PKI_RECOVERY_PUB_BYTES
#define KEYS_RECOVERY_PRIV_BYTES PKI_RECOVERY_PRIV_BYTES

struct keys {
    const struct hal *hal;
    int unlocked;
    uint8_t dek[KEYS_DEK_BYTES];
    uint8_t store_id[KEYS_STORE_ID_BYTES];
};

/* Enrolment options. iterations == 0 calibrates against KEYS_KDF_TARGET_MS;
 * a fixed count (>= 1000) is for tests and benchmarks. recovery_pub may be
 * NULL (no recovery wrap). */
struct keys_enrol_opts {
    uint32_t iterations;
    const uint8_t *recovery_pub; /* KEYS_RECOVERY_PUB_BYTES, or NULL */
};

/* Sets k to the locked state for hal h. Never fails. */
void keys_init(struct keys *k, const struct hal *h);

/* Creates a fresh DEK and store id, wraps them under pin (and the recovery
 * key when given), writes KEYS_FILE_NAME durably, starts a new wrong-PIN run
 * and leaves k unlocked. opts may be NULL (calibrate, no recovery wrap).
 * SAT_ERR_KEYS_ALREADY_ENROLLED if the file exists and is not empty;
 * SAT_ERR_KEYS_BAD_PIN if the PIN is shorter than KEYS_PIN_BYTES_MIN, longer
 * than KEYS_PIN_BYTES_MAX or has a control character or space (bytes >= 0x80
 * are allowed); SAT_ERR_INVALID for a fixed iteration count outside
 * [1000, KEYS_ITERATIONS_MAX]; SAT_ERR_KEYS_RECOVERY if recovery_pub is not
 * a P-256 point. Nothing is written when any of these is returned. */
SAT_CHECK int keys_enrol(struct keys *k, const char *pin, const struct keys_enrol_opts *opts);

/* 1 if KEYS_FILE_NAME exists on this device and is not empty, else 0 (an
 * empty file is what a power cut during keys_enrol leaves; enrolling again
 * over it is allowed). */
int keys_enrolled(const struct hal *h);

/* Unwraps the DEK with pin. On SAT_OK k is unlocked; on any error k is
 * locked (zeroized). Errors:
 * SAT_ERR_KEYS_NOT_ENROLLED, SAT_ERR_KEYS_WRONG_PIN (counted),
 * SAT_ERR_KEYS_LOCKED_OUT (not counted; *retry_after_ms says how long to
 * wait, if retry_after_ms is not NULL), SAT_ERR_KEYS_ERASED (this failure
 * reached KEYS_MAX_ATTEMPTS, or an earlier one did), SAT_ERR_KEYS_CORRUPT
 * (no intact copy of the key file; not counted), SAT_ERR_KEYS_BAD_PIN (a PIN
 * that could never have been set; not counted), or a HAL error.
 * A key file forged with a valid checksum reads as SAT_ERR_KEYS_WRONG_PIN:
 * without the PIN nothing can tell the two apart. */
SAT_CHECK int keys_unlock(struct keys *k, const char *pin, uint64_t *retry_after_ms);

/* Zeroizes the DEK and store id; k is locked. Safe to call when locked. */
void keys_lock(struct keys *k);

/* Rewraps the DEK under new_pin (same DEK: the store is not re-encrypted).
 * Requires old_pin, checked and counted like keys_unlock (same errors);
 * new_pin's format is checked first, so SAT_ERR_KEYS_BAD_PIN costs no
 * attempt. Leaves k unlocked on SAT_OK, locked otherwise. */
SAT_CHECK int keys_change_pin(struct keys *k, const char *old_pin, const char *new_pin,
                    uint64_t *retry_after_ms);

/* Fleet recovery: opens the recovery wrap with the fleet's recovery private
 * key (big-endian scalar), then rewraps the DEK under new_pin with a fresh
 * salt, resets the wrong-PIN run and leaves k unlocked. Works after a
 * crypto-erase (the device secret is then a new one). Errors:
 * SAT_ERR_KEYS_RECOVERY (no recovery wrap, or the wrong key),
 * SAT_ERR_KEYS_BAD_PIN, SAT_ERR_KEYS_NOT_ENROLLED, SAT_ERR_KEYS_CORRUPT. */
SAT_CHECK int keys_recover(struct keys *k, const uint8_t recovery_priv[KEYS_RECOVERY_PRIV_BYTES],
                 const char *new_pin);

/* Consecutive wrong PINs so far (0 after a good PIN). */
SAT_CHECK int keys_failures(const struct hal *h, uint64_t *failures);

/* Delay required after n consecutive failures: 0 below KEYS_FREE_ATTEMPTS,
 * then KEYS_LOCKOUT_BASE_MS * 2^(n - KEYS_FREE_ATTEMPTS) (saturating at
 * UINT64_MAX). */
uint64_t keys_lockout_ms(uint64_t consecutive_failures);


/* Destroys everything: both wraps (the file is overwritten, then deleted),
 * the device secret and the lockout file; k is locked. Safe to repeat (for
 * instance after a power cut part-way). The wrong-PIN counters are
 * monotonic and stay; the next keys_enrol starts a new run. Used when the
 * hub revokes the device. */
SAT_CHECK int keys_wipe(struct keys *k);

#endif
