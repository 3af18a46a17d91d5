/*
 * keys.c - the nurse's PIN, the device secret and the DEK (contract: keys.h).
 *
 * Key file (KEYS_FILE_NAME), format version 1
 * --------------------------------------------
 * The HAL cannot rename, so an update cannot be "write a new file, rename it
 * over the old one". Instead the file holds two copies ("slots") of one
 * fixed-size 512-byte record, slot 0 at offset 0 and slot 1 at offset 512.
 * Every record carries a generation number and a SHA-256 checksum; a reader
 * takes the valid slot with the highest generation. An update writes the new
 * record into the slot it did NOT read from (generation + 1) and syncs it,
 * then writes the same record into the other slot (generation + 2) and syncs
 * that. A power cut tears at most the slot being written, and the other one
 * is still whole: before the first sync the old record survives, after it the
 * new one. Mirroring the new record into both slots also means a stale wrap
 * (an old PIN's wrap, a PIN wrap destroyed by a crypto-erase) does not stay
 * behind in the file.
 *
 * Record layout (integers big-endian):
 *     0   4  magic "SATK"
 *     4   1  format version (1)
 *     5   1  flags: 0x01 PIN wrap present, 0x02 recovery wrap present
 *     6   2  reserved, zero
 *     8   8  generation
 *    16   4  PBKDF2 iterations
 *    20  16  PIN wrap: salt
 *    36  12            GCM nonce
 *    48  48            ciphertext of DEK || store id
 *    96  16            GCM tag
 *   112  65  recovery wrap: ephemeral P-256 public key (uncompressed)
 *   177  12                 GCM nonce
 *   189  48                 ciphertext of DEK || store id
 *   237  16                 GCM tag
 *   253 227  zero
 *   480  32  SHA-256 of bytes 0..479
 *
 * The checksum only finds torn or damaged slots; it is not a security check
 * (anyone can recompute it). Authenticity comes from GCM: the PIN wrap's
 * associated data is magic || version || iterations || salt, and the
 * recovery wrap's is magic || version || ephemeral key, so editing those
 * fields makes the wrap fail to open. The store id travels inside the
 * ciphertext, so it is authenticated too and unreadable while locked. The
 * generation and flags are not bound (a crypto-erase must rewrite the record
 * without being able to re-encrypt the recovery wrap); changing them can at
 * worst hide a wrap, never forge one. Without the PIN nothing can tell a
 * forged PIN wrap from a wrong PIN, so that case reads as a wrong PIN; a file
 * with no slot of the right length, magic, version and checksum is
 * SAT_ERR_KEYS_CORRUPT. An empty file (what a power cut during keys_enrol
 * can leave) counts as not enrolled.
 *
 * Lockout file (KEYS_LOCKOUT_FILE_NAME), version 1, 64 bytes:
 *     0   4  magic "SATL"
 *     4   1  version (1)
 *     5   3  zero
 *     8   8  HAL_COUNTER_PIN_FAILURES value when it was written
 *    16   8  wall-clock ms of that failure (signed)
 *    24   8  zero
 *    32  32  HMAC-SHA256 of bytes 0..31 under a key derived from the device
 *            secret
 * A missing, damaged, forged or replayed (counter value differs) file reads
 * as "the last failure was now", which restarts the wait: deleting or editing
 * the file cannot shorten a delay.
 *
 * Crypto-erase order: the device secret is wiped first, then the PIN wrap is
 * removed from the file. After a power cut between the two the PIN wrap is
 * already useless, and the next keys_unlock (the run is still >= the limit)
 * finishes the job.
 */
#include "keys.h"

#include <string.h>

#include <mbedtls/ecdh.h>
#include <mbedtls/ecp.h>
#include <mbedtls/gcm.h>
#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include "sat_drbg.h"

/* ---- formats ------------------------------------------------------------ */

#define KF_MAGIC "SATK"
#define KF_MAGIC_BYTES 4u
#define KF_VERSION 1u
#define KF_FLAG_PIN 0x01u
#define KF_FLAG_RECOVERY 0x02u
#define KF_FLAGS_KNOWN (KF_FLAG_PIN | KF_FLAG_RECOVERY)
#define KF_SLOT_BYTES 512u
#define KF_SLOTS 2u
#define KF_FILE_BYTES (KF_SLOT_BYTES * KF_SLOTS)

#define KF_SALT_BYTES 16u
#define KF_NONCE_BYTES 12u
#define KF_TAG_BYTES 16u
#define KF_KEY_BYTES 32u
#define KF_SUM_BYTES 32u
#define KF_SECRETS_BYTES (KEYS_DEK_BYTES + KEYS_STORE_ID_BYTES)

#define KF_OFF_VERSION 4u
#define KF_OFF_FLAGS 5u
#define KF_OFF_RESERVED 6u
#define KF_OFF_GEN 8u
#define KF_OFF_ITER 16u
#define KF_OFF_PIN_SALT 20u
#define KF_OFF_PIN_NONCE (KF_OFF_PIN_SALT + KF_SALT_BYTES)
#define KF_OFF_PIN_CT (KF_OFF_PIN_NONCE + KF_NONCE_BYTES)
#define KF_OFF_PIN_TAG (KF_OFF_PIN_CT + KF_SECRETS_BYTES)
#define KF_OFF_REC_EPH (KF_OFF_PIN_TAG + KF_TAG_BYTES)
#define KF_OFF_REC_NONCE (KF_OFF_REC_EPH + KEYS_RECOVERY_PUB_BYTES)
#define KF_OFF_REC_CT (KF_OFF_REC_NONCE + KF_NONCE_BYTES)
#define KF_OFF_REC_TAG (KF_OFF_REC_CT + KF_SECRETS_BYTES)
#define KF_OFF_PAD (KF_OFF_REC_TAG + KF_TAG_BYTES)
#define KF_OFF_SUM (KF_SLOT_BYTES - KF_SUM_BYTES)

_Static_assert(KF_OFF_PIN_TAG == 96u, "PIN wrap layout");
_Static_assert(KF_OFF_REC_EPH == 112u, "recovery wrap layout");
_Static_assert(KF_OFF_PAD == 253u, "record layout");
_Static_assert(KF_OFF_PAD <= KF_OFF_SUM, "record does not fit its slot");

/* Associated data: magic || version || iterations || salt, and
 * magic || version || ephemeral public key. */
#define KF_PIN_AAD_BYTES (KF_MAGIC_BYTES + 1u + 4u + KF_SALT_BYTES)
#define KF_REC_AAD_BYTES (KF_MAGIC_BYTES + 1u + KEYS_RECOVERY_PUB_BYTES)

/* A fixed count below this is refused (keys.h: ">= 1000"). */
#define KEYS_ITERATIONS_FIXED_MIN 1000u
/* Calibration: start with this many iterations and double until one run
 * takes at least KEYS_CALIBRATE_MIN_MS, so clock granularity is small
 * against the measurement. Bounded by KEYS_ITERATIONS_MAX. */
#define KEYS_CALIBRATE_TRIAL 1000u
#define KEYS_CALIBRATE_MIN_MS 16u

#define LO_MAGIC "SATL"
#define LO_VERSION 1u
#define LO_BYTES 64u
#define LO_OFF_FAILURES 8u
#define LO_OFF_TIME 16u
#define LO_BODY_BYTES 32u

static const char KDF_INFO_KEK[] = "satchel kek v1";
static const char KDF_INFO_RECOVERY[] = "satchel recovery v1";
static const char KDF_INFO_LOCKOUT[] = "satchel lockout v1";
#define DRBG_PERSONALIZATION "satchel keys v1"

/* ---- small helpers ------------------------------------------------------ */

static void put_u32(uint8_t *p, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24u - 8u * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < 4; i++)
        v = (v << 8) | p[i];
    return v;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (unsigned i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56u - 8u * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* 1 if equal; the time taken does not depend on where the bytes differ. */
static int ct_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
    volatile uint8_t diff = 0;
    for (size_t i = 0; i < len; i++)
        diff |= (uint8_t)(a[i] ^ b[i]);
    return diff == 0;
}

static int all_zero(const uint8_t *p, size_t len)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < len; i++)
        acc |= p[i];
    return acc == 0;
}

/* SAT_OK and *len if pin is KEYS_PIN_BYTES_MIN..KEYS_PIN_BYTES_MAX bytes with
 * no space or control character (bytes >= 0x80, i.e. UTF-8, are allowed). */
static int pin_check(const char *pin, size_t *len)
{
    size_t n = 0;
    if (pin == NULL)
        return SAT_ERR_KEYS_BAD_PIN;
    while (n <= KEYS_PIN_BYTES_MAX && pin[n] != '\0') {
        unsigned char c = (unsigned char)pin[n];
        if (c <= 0x20u || c == 0x7Fu)
            return SAT_ERR_KEYS_BAD_PIN;
        n++;
    }
    if (n < KEYS_PIN_BYTES_MIN || n > KEYS_PIN_BYTES_MAX)
        return SAT_ERR_KEYS_BAD_PIN;
    *len = n;
    return SAT_OK;
}

/* ---- randomness: HAL entropy through a CTR-DRBG -------------------------- */

/* Randomness: HAL entropy through core's DRBG (sat_drbg.h). */
static int rng_seed(struct sat_drbg *r, const struct hal *h)
{
    return sat_drbg_seed(r, hal_entropy_source, (void *)h, DRBG_PERSONALIZATION,
                         SAT_ERR_KEYS_CRYPTO);
}

static int rng_bytes(struct sat_drbg *r, uint8_t *out, size_t len)
{
    return sat_drbg_fill(r, out, len, SAT_ERR_KEYS_CRYPTO);
}

/* ---- primitives --------------------------------------------------------- */

static int pbkdf2_sha256(const uint8_t *pin, size_t pin_len, const uint8_t *salt,
                         size_t salt_len, uint32_t iterations, uint8_t out[KF_KEY_BYTES])
{
    int ret = SAT_ERR_KEYS_CRYPTO;
    mbedtls_md_context_t md;
    const mbedtls_md_info_t *sha256 = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);

    mbedtls_md_init(&md);
    if (sha256 == NULL || mbedtls_md_setup(&md, sha256, 1) != 0)
        goto exit;
    if (mbedtls_pkcs5_pbkdf2_hmac(&md, pin, pin_len, salt, salt_len, iterations, KF_KEY_BYTES,
                                  out) != 0)
        goto exit;
    ret = SAT_OK;
exit:
    mbedtls_md_free(&md);
    if (ret != SAT_OK)
        mbedtls_platform_zeroize(out, KF_KEY_BYTES);
    return ret;
}

static int hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                       const uint8_t *info, size_t info_len, uint8_t out[KF_KEY_BYTES])
{
    const mbedtls_md_info_t *sha256 = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    if (sha256 == NULL ||
        mbedtls_hkdf(sha256, salt, salt_len, ikm, ikm_len, info, info_len, out, KF_KEY_BYTES) != 0) {
        mbedtls_platform_zeroize(out, KF_KEY_BYTES);
        return SAT_ERR_KEYS_CRYPTO;
    }
    return SAT_OK;
}

static int gcm_seal(const uint8_t key[KF_KEY_BYTES], const uint8_t nonce[KF_NONCE_BYTES],
                    const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t len,
                    uint8_t *ct, uint8_t tag[KF_TAG_BYTES])
{
    int ret = SAT_ERR_KEYS_CRYPTO;
    mbedtls_gcm_context gcm;

    mbedtls_gcm_init(&gcm);
    if (mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, key, KF_KEY_BYTES * 8u) != 0)
        goto exit;
    if (mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT, len, nonce, KF_NONCE_BYTES, aad,
                                  aad_len, pt, ct, KF_TAG_BYTES, tag) != 0)
        goto exit;
    ret = SAT_OK;
exit:
    mbedtls_gcm_free(&gcm);
    return ret;
}

/* Returns SAT_OK, auth_fail when the tag does not match (pt is then wiped
 * by Mbed TLS, which also compares the tag in constant time), or
 * SAT_ERR_KEYS_CRYPTO. */
static int gcm_open(const uint8_t key[KF_KEY_BYTES], const uint8_t nonce[KF_NONCE_BYTES],
                    const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t len,
                    const uint8_t tag[KF_TAG_BYTES], uint8_t *pt, int auth_fail)
{
    int ret = SAT_ERR_KEYS_CRYPTO;
    int mret;
    mbedtls_gcm_context gcm;

    mbedtls_gcm_init(&gcm);
    if (mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, key, KF_KEY_BYTES * 8u) != 0)
        goto exit;
    mret = mbedtls_gcm_auth_decrypt(&gcm, len, nonce, KF_NONCE_BYTES, aad, aad_len, tag,
                                    KF_TAG_BYTES, ct, pt);
    if (mret == MBEDTLS_ERR_GCM_AUTH_FAILED) {
        ret = auth_fail;
        goto exit;
    }
    if (mret != 0)
        goto exit;
    ret = SAT_OK;
exit:
    mbedtls_gcm_free(&gcm);
    if (ret != SAT_OK)
        mbedtls_platform_zeroize(pt, len);
    return ret;
}

/* ---- key file ------------------------------------------------------------ */

struct keyfile {
    uint8_t rec[KF_SLOT_BYTES]; /* the newest valid record */
    unsigned slot;              /* the slot it was read from */
    uint64_t gen;               /* its generation */
};

static void record_sum(const uint8_t *rec, uint8_t sum[KF_SUM_BYTES])
{
    /* Cannot fail for SHA-256 in Mbed TLS 2.28 without an alternative
     * implementation; a failure would only mark the slot invalid. */
    if (mbedtls_sha256_ret(rec, KF_OFF_SUM, sum, 0) != 0)
        memset(sum, 0xFF, KF_SUM_BYTES);
}

/* 1 if rec is a whole, well-formed version-1 record. */
static int record_valid(const uint8_t *rec)
{
    uint8_t sum[KF_SUM_BYTES];
    uint32_t iterations = get_u32(rec + KF_OFF_ITER);
    int ok = memcmp(rec, KF_MAGIC, KF_MAGIC_BYTES) == 0 && rec[KF_OFF_VERSION] == KF_VERSION &&
             (rec[KF_OFF_FLAGS] & ~KF_FLAGS_KNOWN) == 0 && rec[KF_OFF_RESERVED] == 0 &&
             rec[KF_OFF_RESERVED + 1] == 0 && iterations >= KEYS_ITERATIONS_FIXED_MIN &&
             iterations <= KEYS_ITERATIONS_MAX &&
             all_zero(rec + KF_OFF_PAD, KF_OFF_SUM - KF_OFF_PAD);
    if (!ok)
        return 0;
    record_sum(rec, sum);
    return ct_equal(sum, rec + KF_OFF_SUM, KF_SUM_BYTES);
}

/* Size of the key file: SAT_ERR_NOT_FOUND if there is none. */
static int keyfile_size(const struct hal *h, uint64_t *size)
{
    hal_file *f = NULL;
    int ret = hal_storage_open(h, KEYS_FILE_NAME, 0, &f);
    if (ret != SAT_OK)
        return ret;
    ret = hal_storage_size(h, f, size);
    if (hal_storage_close(h, f) != SAT_OK && ret == SAT_OK)
        ret = SAT_ERR_IO;
    return ret;
}

/* Reads the newest valid record. SAT_ERR_KEYS_NOT_ENROLLED if the file is
 * missing or empty, SAT_ERR_KEYS_CORRUPT if no slot is valid. */
static int keyfile_load(const struct hal *h, struct keyfile *kf)
{
    int ret;
    int found = 0;
    hal_file *f = NULL;
    uint64_t size = 0;
    uint8_t buf[KF_FILE_BYTES];

    ret = hal_storage_open(h, KEYS_FILE_NAME, 0, &f);
    if (ret == SAT_ERR_NOT_FOUND)
        ret = SAT_ERR_KEYS_NOT_ENROLLED;
    if (ret != SAT_OK) {
        f = NULL;
        goto exit;
    }
    ret = hal_storage_size(h, f, &size);
    if (ret != SAT_OK)
        goto exit;
    if (size == 0) {
        ret = SAT_ERR_KEYS_NOT_ENROLLED;
        goto exit;
    }
    /* Between one and two slots long: anything else is not our file (a torn
     * second slot may leave a length in between). */
    if (size < KF_SLOT_BYTES || size > KF_FILE_BYTES) {
        ret = SAT_ERR_KEYS_CORRUPT;
        goto exit;
    }
    ret = hal_storage_read_full(h, f, 0, buf, (size_t)size);
    if (ret != SAT_OK)
        goto exit;
    for (unsigned i = 0; i < KF_SLOTS; i++) {
        const uint8_t *rec = buf + i * KF_SLOT_BYTES;
        uint64_t gen;
        if ((uint64_t)(i + 1u) * KF_SLOT_BYTES > size || !record_valid(rec))
            continue;
        gen = get_u64(rec + KF_OFF_GEN);
        if (!found || gen > kf->gen) {
            memcpy(kf->rec, rec, KF_SLOT_BYTES);
            kf->slot = i;
            kf->gen = gen;
            found = 1;
        }
    }
    ret = found ? SAT_OK : SAT_ERR_KEYS_CORRUPT;
exit:
    if (f != NULL && hal_storage_close(h, f) != SAT_OK && ret == SAT_OK)
        ret = SAT_ERR_IO;
    mbedtls_platform_zeroize(buf, sizeof buf);
    return ret;
}

/* Writes kf->rec durably into both slots, the one not read from first (see
 * the top of this file). open_flags is HAL_OPEN_CREATE when enrolling. */
static int keyfile_store(const struct hal *h, struct keyfile *kf, unsigned open_flags)
{
    int ret;
    hal_file *f = NULL;

    ret = hal_storage_open(h, KEYS_FILE_NAME, open_flags, &f);
    if (ret != SAT_OK) {
        f = NULL;
        goto exit;
    }
    for (unsigned pass = 0; pass < KF_SLOTS; pass++) {
        unsigned target = pass == 0 ? 1u - kf->slot : kf->slot;
        kf->gen++;
        put_u64(kf->rec + KF_OFF_GEN, kf->gen);
        record_sum(kf->rec, kf->rec + KF_OFF_SUM);
        ret = hal_storage_write(h, f, (uint64_t)target * KF_SLOT_BYTES, kf->rec, KF_SLOT_BYTES);
        if (ret == SAT_OK)
            ret = hal_storage_sync(h, f);
        if (ret != SAT_OK)
            goto exit;
    }
exit:
    if (f != NULL && hal_storage_close(h, f) != SAT_OK && ret == SAT_OK)
        ret = SAT_ERR_IO;
    return ret;
}

/* ---- PIN wrap ------------------------------------------------------------ */

static void pin_aad(const uint8_t *rec, uint8_t aad[KF_PIN_AAD_BYTES])
{
    memcpy(aad, rec, KF_MAGIC_BYTES + 1u);
    memcpy(aad + KF_MAGIC_BYTES + 1u, rec + KF_OFF_ITER, 4u);
    memcpy(aad + KF_MAGIC_BYTES + 5u, rec + KF_OFF_PIN_SALT, KF_SALT_BYTES);
}

/* KEK = HKDF-SHA256(ikm = PBKDF2-HMAC-SHA256(pin, salt, iterations),
 *                   salt = device secret, info = "satchel kek v1"). */
static int kek_derive(const struct hal *h, const char *pin, size_t pin_len, const uint8_t *rec,
                      uint8_t kek[KF_KEY_BYTES])
{
    int ret;
    uint8_t secret[HAL_DEVICE_SECRET_BYTES];
    uint8_t stretched[KF_KEY_BYTES];

    ret = hal_keystore_device_secret(h, secret);
    if (ret != SAT_OK)
        goto exit;
    ret = pbkdf2_sha256((const uint8_t *)pin, pin_len, rec + KF_OFF_PIN_SALT, KF_SALT_BYTES,
                        get_u32(rec + KF_OFF_ITER), stretched);
    if (ret != SAT_OK)
        goto exit;
    ret = hkdf_sha256(secret, sizeof secret, stretched, sizeof stretched,
                      (const uint8_t *)KDF_INFO_KEK, sizeof KDF_INFO_KEK - 1, kek);
exit:
    mbedtls_platform_zeroize(secret, sizeof secret);
    mbedtls_platform_zeroize(stretched, sizeof stretched);
    if (ret != SAT_OK)
        mbedtls_platform_zeroize(kek, KF_KEY_BYTES);
    return ret;
}

/* Wraps secrets under pin with a fresh salt and nonce into kf->rec, whose
 * iteration count is already set. */
static int pin_wrap(const struct hal *h, struct sat_drbg *r, const char *pin, size_t pin_len,
                    struct keyfile *kf, const uint8_t secrets[KF_SECRETS_BYTES])
{
    int ret;
    uint8_t kek[KF_KEY_BYTES];
    uint8_t aad[KF_PIN_AAD_BYTES];

    ret = rng_bytes(r, kf->rec + KF_OFF_PIN_SALT, KF_SALT_BYTES);
    if (ret == SAT_OK)
        ret = rng_bytes(r, kf->rec + KF_OFF_PIN_NONCE, KF_NONCE_BYTES);
    if (ret != SAT_OK)
        goto exit;
    ret = kek_derive(h, pin, pin_len, kf->rec, kek);
    if (ret != SAT_OK)
        goto exit;
    pin_aad(kf->rec, aad);
    ret = gcm_seal(kek, kf->rec + KF_OFF_PIN_NONCE, aad, sizeof aad, secrets, KF_SECRETS_BYTES,
                   kf->rec + KF_OFF_PIN_CT, kf->rec + KF_OFF_PIN_TAG);
    if (ret != SAT_OK)
        goto exit;
    kf->rec[KF_OFF_FLAGS] |= KF_FLAG_PIN;
exit:
    mbedtls_platform_zeroize(kek, sizeof kek);
    return ret;
}

/* SAT_OK, SAT_ERR_KEYS_WRONG_PIN, or another failure. */
static int pin_unwrap(const struct hal *h, const char *pin, size_t pin_len,
                      const struct keyfile *kf, uint8_t secrets[KF_SECRETS_BYTES])
{
    int ret;
    uint8_t kek[KF_KEY_BYTES];
    uint8_t aad[KF_PIN_AAD_BYTES];

    ret = kek_derive(h, pin, pin_len, kf->rec, kek);
    if (ret != SAT_OK)
        goto exit;
    pin_aad(kf->rec, aad);
    ret = gcm_open(kek, kf->rec + KF_OFF_PIN_NONCE, aad, sizeof aad, kf->rec + KF_OFF_PIN_CT,
                   KF_SECRETS_BYTES, kf->rec + KF_OFF_PIN_TAG, secrets, SAT_ERR_KEYS_WRONG_PIN);
exit:
    mbedtls_platform_zeroize(kek, sizeof kek);
    if (ret != SAT_OK)
        mbedtls_platform_zeroize(secrets, KF_SECRETS_BYTES);
    return ret;
}

/* Removes the PIN wrap from the record (memory only). */
static void pin_wrap_destroy(struct keyfile *kf)
{
    mbedtls_platform_zeroize(kf->rec + KF_OFF_PIN_SALT, KF_OFF_REC_EPH - KF_OFF_PIN_SALT);
    kf->rec[KF_OFF_FLAGS] &= (uint8_t)~KF_FLAG_PIN;
}

/* ---- recovery wrap ------------------------------------------------------- */

static void rec_aad(const uint8_t *rec, uint8_t aad[KF_REC_AAD_BYTES])
{
    memcpy(aad, rec, KF_MAGIC_BYTES + 1u);
    memcpy(aad + KF_MAGIC_BYTES + 1u, rec + KF_OFF_REC_EPH, KEYS_RECOVERY_PUB_BYTES);
}

/* key = HKDF-SHA256(ikm = ECDH x-coordinate, no salt,
 *                   info = "satchel recovery v1" || ephemeral pub || fleet pub). */
static int rec_key_derive(const uint8_t z[KF_KEY_BYTES], const uint8_t *eph_pub,
                          const uint8_t *fleet_pub, uint8_t key[KF_KEY_BYTES])
{
    uint8_t info[sizeof KDF_INFO_RECOVERY - 1 + 2 * KEYS_RECOVERY_PUB_BYTES];
    size_t n = sizeof KDF_INFO_RECOVERY - 1;
    memcpy(info, KDF_INFO_RECOVERY, n);
    memcpy(info + n, eph_pub, KEYS_RECOVERY_PUB_BYTES);
    memcpy(info + n + KEYS_RECOVERY_PUB_BYTES, fleet_pub, KEYS_RECOVERY_PUB_BYTES);
    return hkdf_sha256(NULL, 0, z, KF_KEY_BYTES, info, sizeof info, key);
}

static int rec_wrap(struct sat_drbg *r, struct keyfile *kf, const uint8_t fleet_pub[KEYS_RECOVERY_PUB_BYTES],
                    const uint8_t secrets[KF_SECRETS_BYTES])
{
    int ret = SAT_ERR_KEYS_CRYPTO;
    mbedtls_ecp_group grp;
    mbedtls_ecp_point fleet;
    mbedtls_ecp_point eph;
    mbedtls_mpi d;
    mbedtls_mpi z;
    uint8_t zbuf[KF_KEY_BYTES];
    uint8_t key[KF_KEY_BYTES];
    uint8_t aad[KF_REC_AAD_BYTES];
    size_t olen = 0;

    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&fleet);
    mbedtls_ecp_point_init(&eph);
    mbedtls_mpi_init(&d);
    mbedtls_mpi_init(&z);

    if (mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1) != 0)
        goto exit;
    if (mbedtls_ecp_point_read_binary(&grp, &fleet, fleet_pub, KEYS_RECOVERY_PUB_BYTES) != 0 ||
        mbedtls_ecp_check_pubkey(&grp, &fleet) != 0) {
        ret = SAT_ERR_KEYS_RECOVERY;
        goto exit;
    }
    if (mbedtls_ecdh_gen_public(&grp, &d, &eph, sat_drbg_random, r) != 0 ||
        mbedtls_ecdh_compute_shared(&grp, &z, &fleet, &d, sat_drbg_random, r) !=
            0 ||
        mbedtls_mpi_write_binary(&z, zbuf, sizeof zbuf) != 0 ||
        mbedtls_ecp_point_write_binary(&grp, &eph, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen,
                                       kf->rec + KF_OFF_REC_EPH, KEYS_RECOVERY_PUB_BYTES) != 0 ||
        olen != KEYS_RECOVERY_PUB_BYTES) {
        ret = sat_drbg_error(r, SAT_ERR_KEYS_CRYPTO);
        goto exit;
    }
    ret = rec_key_derive(zbuf, kf->rec + KF_OFF_REC_EPH, fleet_pub, key);
    if (ret != SAT_OK)
        goto exit;
    ret = rng_bytes(r, kf->rec + KF_OFF_REC_NONCE, KF_NONCE_BYTES);
    if (ret != SAT_OK)
        goto exit;
    rec_aad(kf->rec, aad);
    ret = gcm_seal(key, kf->rec + KF_OFF_REC_NONCE, aad, sizeof aad, secrets, KF_SECRETS_BYTES,
                   kf->rec + KF_OFF_REC_CT, kf->rec + KF_OFF_REC_TAG);
    if (ret != SAT_OK)
        goto exit;
    kf->rec[KF_OFF_FLAGS] |= KF_FLAG_RECOVERY;
exit:
    mbedtls_ecp_group_free(&grp);
    mbedtls_ecp_point_free(&fleet);
    mbedtls_ecp_point_free(&eph);
    mbedtls_mpi_free(&d); /* zeroizes */
    mbedtls_mpi_free(&z);
    mbedtls_platform_zeroize(zbuf, sizeof zbuf);
    mbedtls_platform_zeroize(key, sizeof key);
    if (ret != SAT_OK)
        mbedtls_platform_zeroize(kf->rec + KF_OFF_REC_EPH, KF_OFF_PAD - KF_OFF_REC_EPH);
    return ret;
}

/* SAT_OK, SAT_ERR_KEYS_RECOVERY (no wrap, not a P-256 key, or not the key
 * the wrap was made for), SAT_ERR_KEYS_CORRUPT (the stored ephemeral key is
 * not a curve point), or another failure. */
static int rec_unwrap(struct sat_drbg *r, const struct keyfile *kf,
                      const uint8_t priv[KEYS_RECOVERY_PRIV_BYTES],
                      uint8_t secrets[KF_SECRETS_BYTES])
{
    int ret = SAT_ERR_KEYS_CRYPTO;
    mbedtls_ecp_group grp;
    mbedtls_ecp_point fleet;
    mbedtls_ecp_point eph;
    mbedtls_mpi d;
    mbedtls_mpi z;
    uint8_t fleet_pub[KEYS_RECOVERY_PUB_BYTES];
    uint8_t zbuf[KF_KEY_BYTES];
    uint8_t key[KF_KEY_BYTES];
    uint8_t aad[KF_REC_AAD_BYTES];
    size_t olen = 0;

    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&fleet);
    mbedtls_ecp_point_init(&eph);
    mbedtls_mpi_init(&d);
    mbedtls_mpi_init(&z);

    if (!(kf->rec[KF_OFF_FLAGS] & KF_FLAG_RECOVERY)) {
        ret = SAT_ERR_KEYS_RECOVERY;
        goto exit;
    }
    if (mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1) != 0)
        goto exit;
    if (priv == NULL || mbedtls_mpi_read_binary(&d, priv, KEYS_RECOVERY_PRIV_BYTES) != 0 ||
        mbedtls_ecp_check_privkey(&grp, &d) != 0) {
        ret = SAT_ERR_KEYS_RECOVERY;
        goto exit;
    }
    if (mbedtls_ecp_point_read_binary(&grp, &eph, kf->rec + KF_OFF_REC_EPH,
                                      KEYS_RECOVERY_PUB_BYTES) != 0 ||
        mbedtls_ecp_check_pubkey(&grp, &eph) != 0) {
        ret = SAT_ERR_KEYS_CORRUPT;
        goto exit;
    }
    if (mbedtls_ecp_mul(&grp, &fleet, &d, &grp.G, sat_drbg_random, r) != 0 ||
        mbedtls_ecp_point_write_binary(&grp, &fleet, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen,
                                       fleet_pub, sizeof fleet_pub) != 0 ||
        olen != sizeof fleet_pub ||
        mbedtls_ecdh_compute_shared(&grp, &z, &eph, &d, sat_drbg_random, r) !=
            0 ||
        mbedtls_mpi_write_binary(&z, zbuf, sizeof zbuf) != 0) {
        ret = sat_drbg_error(r, SAT_ERR_KEYS_CRYPTO);
        goto exit;
    }
    ret = rec_key_derive(zbuf, kf->rec + KF_OFF_REC_EPH, fleet_pub, key);
    if (ret != SAT_OK)
        goto exit;
    rec_aad(kf->rec, aad);
    ret = gcm_open(key, kf->rec + KF_OFF_REC_NONCE, aad, sizeof aad, kf->rec + KF_OFF_REC_CT,
                   KF_SECRETS_BYTES, kf->rec + KF_OFF_REC_TAG, secrets, SAT_ERR_KEYS_RECOVERY);
exit:
    mbedtls_ecp_group_free(&grp);
    mbedtls_ecp_point_free(&fleet);
    mbedtls_ecp_point_free(&eph);
    mbedtls_mpi_free(&d);
    mbedtls_mpi_free(&z);
    mbedtls_platform_zeroize(zbuf, sizeof zbuf);
    mbedtls_platform_zeroize(key, sizeof key);
    if (ret != SAT_OK)
        mbedtls_platform_zeroize(secrets, KF_SECRETS_BYTES);
    return ret;
}

/* ---- wrong-PIN run and lockout file --------------------------------------- */

static int run_read(const struct hal *h, uint64_t *failed, uint64_t *run)
{
    uint64_t cleared = 0;
    int ret = hal_keystore_counter_read(h, HAL_COUNTER_PIN_FAILURES, failed);
    if (ret == SAT_OK)
        ret = hal_keystore_counter_read(h, HAL_COUNTER_PIN_CLEARED, &cleared);
    if (ret != SAT_OK)
        return ret;
    /* CLEARED is only ever set to a FAILURES value, so it cannot be ahead;
     * if a key store ever says so, count no run rather than wrap around. */
    *run = *failed >= cleared ? *failed - cleared : 0;
    return SAT_OK;
}

/* Ends the wrong-PIN run (enrolment, recovery). */
static int run_reset(const struct hal *h)
{
    uint64_t failed = 0;
    int ret = hal_keystore_counter_read(h, HAL_COUNTER_PIN_FAILURES, &failed);
    if (ret == SAT_OK)
        ret = hal_keystore_counter_advance(h, HAL_COUNTER_PIN_CLEARED, failed);
    if (ret == SAT_OK) {
        ret = hal_storage_delete(h, KEYS_LOCKOUT_FILE_NAME);
        if (ret == SAT_ERR_NOT_FOUND)
            ret = SAT_OK;
    }
    return ret;
}

static int lockout_mac(const struct hal *h, const uint8_t body[LO_BODY_BYTES],
                       uint8_t mac[KF_KEY_BYTES])
{
    int ret;
    uint8_t secret[HAL_DEVICE_SECRET_BYTES];
    uint8_t key[KF_KEY_BYTES];
    const mbedtls_md_info_t *sha256 = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);

    ret = hal_keystore_device_secret(h, secret);
    if (ret != SAT_OK)
        goto exit;
    ret = hkdf_sha256(NULL, 0, secret, sizeof secret, (const uint8_t *)KDF_INFO_LOCKOUT,
                      sizeof KDF_INFO_LOCKOUT - 1, key);
    if (ret != SAT_OK)
        goto exit;
    ret = SAT_ERR_KEYS_CRYPTO;
    if (sha256 == NULL || mbedtls_md_hmac(sha256, key, sizeof key, body, LO_BODY_BYTES, mac) != 0)
        goto exit;
    ret = SAT_OK;
exit:
    mbedtls_platform_zeroize(secret, sizeof secret);
    mbedtls_platform_zeroize(key, sizeof key);
    return ret;
}

static int lockout_write(const struct hal *h, uint64_t failed, int64_t wall_ms)
{
    int ret;
    hal_file *f = NULL;
    uint8_t buf[LO_BYTES] = { 0 };

    memcpy(buf, LO_MAGIC, 4);
    buf[4] = LO_VERSION;
    put_u64(buf + LO_OFF_FAILURES, failed);
    put_u64(buf + LO_OFF_TIME, (uint64_t)wall_ms);
    ret = lockout_mac(h, buf, buf + LO_BODY_BYTES);
    if (ret != SAT_OK)
        goto exit;
    ret = hal_storage_open(h, KEYS_LOCKOUT_FILE_NAME, HAL_OPEN_CREATE, &f);
    if (ret != SAT_OK) {
        f = NULL;
        goto exit;
    }
    ret = hal_storage_write(h, f, 0, buf, sizeof buf);
    if (ret == SAT_OK)
        ret = hal_storage_truncate(h, f, sizeof buf);
    if (ret == SAT_OK)
        ret = hal_storage_sync(h, f);
exit:
    if (f != NULL && hal_storage_close(h, f) != SAT_OK && ret == SAT_OK)
        ret = SAT_ERR_IO;
    return ret;
}

/* The time of the last failure, if the file is genuine and was written at
 * the failure count `failed`; SAT_ERR_NOT_FOUND if it is missing or does
 * not qualify (the caller restarts the wait). */
static int lockout_read(const struct hal *h, uint64_t failed, int64_t *wall_ms)
{
    int ret;
    hal_file *f = NULL;
    uint64_t size = 0;
    uint8_t buf[LO_BYTES];
    uint8_t mac[KF_KEY_BYTES];

    memset(buf, 0, sizeof buf);
    ret = hal_storage_open(h, KEYS_LOCKOUT_FILE_NAME, 0, &f);
    if (ret != SAT_OK) {
        f = NULL;
        goto exit;
    }
    ret = hal_storage_size(h, f, &size);
    if (ret != SAT_OK)
        goto exit;
    if (size != LO_BYTES) {
        ret = SAT_ERR_NOT_FOUND;
        goto exit;
    }
    ret = hal_storage_read_full(h, f, 0, buf, sizeof buf);
    if (ret != SAT_OK)
        goto exit;
    ret = lockout_mac(h, buf, mac);
    if (ret != SAT_OK)
        goto exit;
    if (!ct_equal(mac, buf + LO_BODY_BYTES, sizeof mac) || memcmp(buf, LO_MAGIC, 4) != 0 ||
        buf[4] != LO_VERSION || get_u64(buf + LO_OFF_FAILURES) != failed) {
        ret = SAT_ERR_NOT_FOUND;
        goto exit;
    }
    *wall_ms = (int64_t)get_u64(buf + LO_OFF_TIME);
exit:
    if (f != NULL && hal_storage_close(h, f) != SAT_OK && ret == SAT_OK)
        ret = SAT_ERR_IO;
    return ret;
}

/* Crypto-erase, idempotent: wipe the device secret, then drop the PIN wrap
 * from both slots of the key file, keeping the recovery wrap. */
static int erase_finish(const struct hal *h, struct keyfile *kf)
{
    int ret;

    if (!(kf->rec[KF_OFF_FLAGS] & KF_FLAG_PIN))
        return SAT_OK;
    hal_log(h, HAL_LOG_WARN, "keys: wrong-PIN limit reached, erasing the PIN wrap");
    ret = hal_keystore_wipe(h);
    if (ret != SAT_OK)
        goto exit;
    pin_wrap_destroy(kf);
    ret = keyfile_store(h, kf, 0);
    if (ret != SAT_OK)
        goto exit;
    ret = hal_storage_delete(h, KEYS_LOCKOUT_FILE_NAME);
    if (ret == SAT_ERR_NOT_FOUND)
        ret = SAT_OK;
exit:
    if (ret != SAT_OK)
        hal_log(h, HAL_LOG_ERROR, "keys: crypto-erase incomplete (%s); it is retried next time",
                sat_strerror(ret));
    return ret;
}

/* The counted PIN check shared by keys_unlock and keys_change_pin (order of
 * operations in keys.h). On SAT_OK kf holds the current record and secrets
 * the DEK and store id; on failure secrets is zero. */
static int pin_attempt(const struct hal *h, const char *pin, size_t pin_len,
                       uint64_t *retry_after_ms, struct keyfile *kf,
                       uint8_t secrets[KF_SECRETS_BYTES])
{
    int ret;
    int wret;
    uint64_t failed = 0;
    uint64_t run = 0;
    uint64_t delay_ms;
    uint64_t wait_ms = 0;

    ret = keyfile_load(h, kf);
    if (ret != SAT_OK)
        goto exit;
    ret = run_read(h, &failed, &run);
    if (ret != SAT_OK)
        goto exit;
    if (run >= KEYS_MAX_ATTEMPTS) {
        /* Finishes an erase a power cut interrupted. */
        ret = erase_finish(h, kf);
        if (ret == SAT_OK)
            ret = SAT_ERR_KEYS_ERASED;
        goto exit;
    }
    if (!(kf->rec[KF_OFF_FLAGS] & KF_FLAG_PIN)) {
        /* Erased, and a recovery was cut off before it wrote the new wrap. */
        ret = SAT_ERR_KEYS_ERASED;
        goto exit;
    }
    delay_ms = keys_lockout_ms(run);
    if (delay_ms > 0) {
        int64_t now = hal_clock_wall_ms(h);
        int64_t last = 0;
        uint64_t elapsed;
        ret = lockout_read(h, failed, &last);
        if (ret == SAT_ERR_NOT_FOUND || (ret == SAT_OK && now < last)) {
            /* No trustworthy time, or the clock was set back: wait in full. */
            last = now;
            ret = lockout_write(h, failed, now);
        }
        if (ret != SAT_OK)
            goto exit;
        elapsed = (uint64_t)now - (uint64_t)last;
        if (elapsed < delay_ms) {
            wait_ms = delay_ms - elapsed;
            ret = SAT_ERR_KEYS_LOCKED_OUT;
            goto exit;
        }
    }
    /* Count the guess before making it: a power cut cannot make it free. */
    ret = hal_keystore_counter_advance(h, HAL_COUNTER_PIN_FAILURES, failed + 1);
    if (ret != SAT_OK)
        goto exit;
    ret = pin_unwrap(h, pin, pin_len, kf, secrets);
    if (ret == SAT_OK) {
        ret = hal_keystore_counter_advance(h, HAL_COUNTER_PIN_CLEARED, failed + 1);
        goto exit;
    }
    if (ret != SAT_ERR_KEYS_WRONG_PIN)
        goto exit;
    /* If this write is lost the next try finds no valid time and waits in
     * full, so its failure does not change the answer. */
    wret = lockout_write(h, failed + 1, hal_clock_wall_ms(h));
    if (wret != SAT_OK)
        hal_log(h, HAL_LOG_WARN, "keys: could not record the failure time (%s)",
                sat_strerror(wret));
    if (run + 1 >= KEYS_MAX_ATTEMPTS) {
        /* The run is over whatever happens here: an incomplete erase is
         * finished by the next keys_unlock. */
        (void)erase_finish(h, kf);
        ret = SAT_ERR_KEYS_ERASED;
    }
exit:
    if (ret != SAT_OK)
        mbedtls_platform_zeroize(secrets, KF_SECRETS_BYTES);
    if (ret == SAT_ERR_KEYS_LOCKED_OUT && retry_after_ms != NULL)
        *retry_after_ms = wait_ms;
    return ret;
}

/* ---- calibration ------------------------------------------------------- */

static int kdf_calibrate(const struct hal *h, uint32_t *iterations)
{
    static const uint8_t trial_pin[] = "calibration";
    int ret;
    uint8_t salt[KF_SALT_BYTES] = { 0 };
    uint8_t out[KF_KEY_BYTES];
    uint32_t trial = KEYS_CALIBRATE_TRIAL;
    uint64_t elapsed = 0;
    uint64_t scaled;

    for (;;) {
        uint64_t t0 = hal_clock_monotonic_ms(h);
        uint64_t t1;
        ret = pbkdf2_sha256(trial_pin, sizeof trial_pin - 1, salt, sizeof salt, trial, out);
        if (ret != SAT_OK)
            goto exit;
        t1 = hal_clock_monotonic_ms(h);
        elapsed = t1 > t0 ? t1 - t0 : 0;
        if (elapsed >= KEYS_CALIBRATE_MIN_MS || trial >= KEYS_ITERATIONS_MAX)
            break;
        trial = trial > KEYS_ITERATIONS_MAX / 2 ? KEYS_ITERATIONS_MAX : trial * 2u;
    }
    /* A clock that never moved means a very fast device (or no clock):
     * take the most. */
    scaled = elapsed == 0 ? KEYS_ITERATIONS_MAX : (uint64_t)trial * KEYS_KDF_TARGET_MS / elapsed;
    if (scaled < KEYS_ITERATIONS_MIN)
        scaled = KEYS_ITERATIONS_MIN;
    if (scaled > KEYS_ITERATIONS_MAX)
        scaled = KEYS_ITERATIONS_MAX;
    *iterations = (uint32_t)scaled;
exit:
    mbedtls_platform_zeroize(out, sizeof out);
    return ret;
}

/* ---- public API ----------------------------------------------------------- */

void keys_init(struct keys *k, const struct hal *h)
{
    mbedtls_platform_zeroize(k, sizeof *k);
    k->hal = h;
    k->unlocked = 0;
}

void keys_lock(struct keys *k)
{
    if (k == NULL)
        return;
    mbedtls_platform_zeroize(k->dek, sizeof k->dek);
    mbedtls_platform_zeroize(k->store_id, sizeof k->store_id);
    k->unlocked = 0;
}

static void keys_take(struct keys *k, const uint8_t secrets[KF_SECRETS_BYTES])
{
    memcpy(k->dek, secrets, KEYS_DEK_BYTES);
    memcpy(k->store_id, secrets + KEYS_DEK_BYTES, KEYS_STORE_ID_BYTES);
    k->unlocked = 1;
}

int keys_enrolled(const struct hal *h)
{
    uint64_t size = 0;
    return keyfile_size(h, &size) == SAT_OK && size > 0;
}

int keys_enrol(struct keys *k, const char *pin, const struct keys_enrol_opts *opts)
{
    int ret = SAT_ERR_INVALID;
    const struct hal *h;
    struct sat_drbg r;
    struct keyfile kf;
    uint8_t secrets[KF_SECRETS_BYTES];
    uint32_t iterations = opts != NULL ? opts->iterations : 0;
    size_t pin_len = 0;
    uint64_t size = 0;

    memset(&kf, 0, sizeof kf);
    memset(secrets, 0, sizeof secrets);
    if (k == NULL || k->hal == NULL)
        return SAT_ERR_INVALID;
    h = k->hal;
    sat_drbg_init(&r);
    keys_lock(k);

    ret = pin_check(pin, &pin_len);
    if (ret != SAT_OK)
        goto exit;
    if (iterations != 0 &&
        (iterations < KEYS_ITERATIONS_FIXED_MIN || iterations > KEYS_ITERATIONS_MAX)) {
        ret = SAT_ERR_INVALID;
        goto exit;
    }
    ret = keyfile_size(h, &size);
    if (ret == SAT_OK && size > 0)
        ret = SAT_ERR_KEYS_ALREADY_ENROLLED;
    else if (ret == SAT_ERR_NOT_FOUND || ret == SAT_OK)
        ret = SAT_OK; /* none, or empty: a power cut during an earlier enrol */
    if (ret != SAT_OK)
        goto exit;

    ret = rng_seed(&r, h);
    if (ret == SAT_OK)
        ret = rng_bytes(&r, secrets, sizeof secrets);
    if (ret == SAT_OK && iterations == 0)
        ret = kdf_calibrate(h, &iterations);
    if (ret != SAT_OK)
        goto exit;

    memcpy(kf.rec, KF_MAGIC, KF_MAGIC_BYTES);
    kf.rec[KF_OFF_VERSION] = KF_VERSION;
    put_u32(kf.rec + KF_OFF_ITER, iterations);
    ret = pin_wrap(h, &r, pin, pin_len, &kf, secrets);
    if (ret == SAT_OK && opts != NULL && opts->recovery_pub != NULL)
        ret = rec_wrap(&r, &kf, opts->recovery_pub, secrets);
    if (ret != SAT_OK)
        goto exit;

    /* A new PIN starts a new run (counters survive keys_wipe). */
    ret = run_reset(h);
    if (ret != SAT_OK)
        goto exit;
    kf.slot = KF_SLOTS - 1u; /* so the first write goes to slot 0 */
    kf.gen = 0;
    ret = keyfile_store(h, &kf, HAL_OPEN_CREATE);
    if (ret != SAT_OK)
        goto exit;
    keys_take(k, secrets);
exit:
    mbedtls_platform_zeroize(secrets, sizeof secrets);
    mbedtls_platform_zeroize(&kf, sizeof kf);
    sat_drbg_free(&r);
    if (ret != SAT_OK)
        keys_lock(k);
    return ret;
}

int keys_unlock(struct keys *k, const char *pin, uint64_t *retry_after_ms)
{
    int ret = SAT_ERR_INVALID;
    struct keyfile kf;
    uint8_t secrets[KF_SECRETS_BYTES];
    size_t pin_len = 0;

    memset(&kf, 0, sizeof kf);
    memset(secrets, 0, sizeof secrets);
    if (k == NULL || k->hal == NULL)
        return SAT_ERR_INVALID;
    keys_lock(k);

    /* A PIN that could never have been set is refused without counting it:
     * it cannot be right, so it tells an attacker nothing. */
    ret = pin_check(pin, &pin_len);
    if (ret != SAT_OK)
        goto exit;
    ret = pin_attempt(k->hal, pin, pin_len, retry_after_ms, &kf, secrets);
    if (ret != SAT_OK)
        goto exit;
    keys_take(k, secrets);
exit:
    mbedtls_platform_zeroize(secrets, sizeof secrets);
    mbedtls_platform_zeroize(&kf, sizeof kf);
    if (ret != SAT_OK)
        keys_lock(k);
    return ret;
}

int keys_change_pin(struct keys *k, const char *old_pin, const char *new_pin,
                    uint64_t *retry_after_ms)
{
    int ret = SAT_ERR_INVALID;
    struct sat_drbg r;
    struct keyfile kf;
    uint8_t secrets[KF_SECRETS_BYTES];
    size_t old_len = 0;
    size_t new_len = 0;

    memset(&kf, 0, sizeof kf);
    memset(secrets, 0, sizeof secrets);
    if (k == NULL || k->hal == NULL)
        return SAT_ERR_INVALID;
    sat_drbg_init(&r);
    keys_lock(k);

    /* Check the new PIN first so a typo in it costs no attempt. */
    ret = pin_check(new_pin, &new_len);
    if (ret == SAT_OK)
        ret = pin_check(old_pin, &old_len);
    if (ret != SAT_OK)
        goto exit;
    ret = pin_attempt(k->hal, old_pin, old_len, retry_after_ms, &kf, secrets);
    if (ret != SAT_OK)
        goto exit;
    ret = rng_seed(&r, k->hal);
    if (ret == SAT_OK)
        ret = pin_wrap(k->hal, &r, new_pin, new_len, &kf, secrets);
    if (ret == SAT_OK)
        ret = keyfile_store(k->hal, &kf, 0);
    if (ret != SAT_OK)
        goto exit;
    keys_take(k, secrets);
exit:
    mbedtls_platform_zeroize(secrets, sizeof secrets);
    mbedtls_platform_zeroize(&kf, sizeof kf);
    sat_drbg_free(&r);
    if (ret != SAT_OK)
        keys_lock(k);
    return ret;
}

int keys_recover(struct keys *k, const uint8_t recovery_priv[KEYS_RECOVERY_PRIV_BYTES],
                 const char *new_pin)
{
    int ret = SAT_ERR_INVALID;
    const struct hal *h;
    struct sat_drbg r;
    struct keyfile kf;
    uint8_t secrets[KF_SECRETS_BYTES];
    size_t pin_len = 0;
    uint64_t failed = 0;
    uint64_t run = 0;

    memset(&kf, 0, sizeof kf);
    memset(secrets, 0, sizeof secrets);
    if (k == NULL || k->hal == NULL)
        return SAT_ERR_INVALID;
    h = k->hal;
    sat_drbg_init(&r);
    keys_lock(k);

    ret = pin_check(new_pin, &pin_len);
    if (ret != SAT_OK)
        goto exit;
    ret = keyfile_load(h, &kf);
    if (ret == SAT_OK)
        ret = rng_seed(&r, h);
    if (ret == SAT_OK)
        ret = rec_unwrap(&r, &kf, recovery_priv, secrets);
    if (ret != SAT_OK)
        goto exit;
    /* An erase a power cut interrupted is finished first, so the old device
     * secret is gone before the new PIN wrap is made. */
    ret = run_read(h, &failed, &run);
    if (ret == SAT_OK && run >= KEYS_MAX_ATTEMPTS)
        ret = erase_finish(h, &kf);
    if (ret != SAT_OK)
        goto exit;
    /* Reset the run before writing the wrap: a cut in between leaves an
     * erased file (keys_unlock says SAT_ERR_KEYS_ERASED, recover again), never
     * a new wrap under an exhausted run. */
    ret = run_reset(h);
    if (ret == SAT_OK)
        ret = pin_wrap(h, &r, new_pin, pin_len, &kf, secrets);
    if (ret == SAT_OK)
        ret = keyfile_store(h, &kf, 0);
    if (ret != SAT_OK)
        goto exit;
    hal_log(h, HAL_LOG_INFO, "keys: recovered with the fleet key; new PIN set");
    keys_take(k, secrets);
exit:
    mbedtls_platform_zeroize(secrets, sizeof secrets);
    mbedtls_platform_zeroize(&kf, sizeof kf);
    sat_drbg_free(&r);
    if (ret != SAT_OK)
        keys_lock(k);
    return ret;
}

int keys_failures(const struct hal *h, uint64_t *failures)
{
    uint64_t failed = 0;
    uint64_t run = 0;
    int ret = run_read(h, &failed, &run);
    if (ret == SAT_OK)
        *failures = run;
    return ret;
}

uint64_t keys_lockout_ms(uint64_t consecutive_failures)
{
    uint64_t shift;
    if (consecutive_failures < KEYS_FREE_ATTEMPTS)
        return 0;
    shift = consecutive_failures - KEYS_FREE_ATTEMPTS;
    /* KEYS_LOCKOUT_BASE_MS < 2^15: saturate rather than overflow. */
    if (shift > 48)
        return UINT64_MAX;
    return (uint64_t)KEYS_LOCKOUT_BASE_MS << shift;
}

int keys_wipe(struct keys *k)
{
    static const uint8_t zeros[KF_SLOT_BYTES] = { 0 };
    int ret = SAT_ERR_INVALID;
    const struct hal *h;
    hal_file *f = NULL;
    uint64_t size = 0;

    if (k == NULL || k->hal == NULL)
        return SAT_ERR_INVALID;
    h = k->hal;
    keys_lock(k);

    /* Overwrite first: once this is synced neither wrap can be read back,
     * even if a power cut stops us before the delete. */
    ret = hal_storage_open(h, KEYS_FILE_NAME, 0, &f);
    if (ret == SAT_OK) {
        ret = hal_storage_size(h, f, &size);
        /* Wraps only ever live in the first two slots. */
        if (size > KF_FILE_BYTES)
            size = KF_FILE_BYTES;
        for (uint64_t off = 0; ret == SAT_OK && off < size; off += KF_SLOT_BYTES) {
            size_t n = size - off < KF_SLOT_BYTES ? (size_t)(size - off) : KF_SLOT_BYTES;
            ret = hal_storage_write(h, f, off, zeros, n);
        }
        if (ret == SAT_OK)
            ret = hal_storage_sync(h, f);
        if (hal_storage_close(h, f) != SAT_OK && ret == SAT_OK)
            ret = SAT_ERR_IO;
    } else if (ret == SAT_ERR_NOT_FOUND) {
        ret = SAT_OK;
    }
    if (ret != SAT_OK)
        goto exit;
    ret = hal_keystore_wipe(h);
    if (ret != SAT_OK)
        goto exit;
    ret = hal_storage_delete(h, KEYS_FILE_NAME);
    if (ret == SAT_ERR_NOT_FOUND)
        ret = SAT_OK;
    if (ret != SAT_OK)
        goto exit;
    ret = hal_storage_delete(h, KEYS_LOCKOUT_FILE_NAME);
    if (ret == SAT_ERR_NOT_FOUND)
        ret = SAT_OK;
exit:
    if (ret != SAT_OK)
        hal_log(h, HAL_LOG_ERROR, "keys: wipe incomplete (%s); run it again", sat_strerror(ret));
    return ret;
}
