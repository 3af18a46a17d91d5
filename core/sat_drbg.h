/*
 * sat_drbg.h - the one deterministic random bit generator of Satchel.
 *
 * Every key, nonce, salt, TLS random and record id comes from an Mbed TLS
 * CTR-DRBG seeded (and reseeded) from an entropy source that its caller
 * names: on a tablet and a PC the HAL's entropy (hal_entropy_source in
 * hal.h), in the simulator the seeded virtual entropy, so a run replays
 * from its seed. Nothing here reads /dev/urandom or the clock.
 *
 * Contract:
 *  - sat_drbg_init before anything else; sat_drbg_free on every path after
 *    it (it wipes the generator's state).
 *  - A source returns SAT_OK or a negative sat_err code; the generator
 *    remembers the source's last failure, so a caller whose Mbed TLS call
 *    failed while drawing randomness can report the source's own code
 *    (sat_drbg_error) rather than a bare "crypto failed".
 *  - The same source bytes and personalization give the same output as a
 *    plain mbedtls_ctr_drbg_seed over them (the simulator's runs depend on
 *    it).
 */
#ifndef SATCHEL_SAT_DRBG_H
#define SATCHEL_SAT_DRBG_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ctr_drbg.h>

#include "sat_err.h"

/* Fills out[0..len) with entropy; SAT_OK or a negative sat_err code. */
typedef int (*sat_entropy_fn)(void *ctx, uint8_t *out, size_t len);

struct sat_drbg {
    mbedtls_ctr_drbg_context ctr;
    sat_entropy_fn source;
    void *source_ctx;
    int source_err; /* the source's last failure, SAT_OK if none */
};

void sat_drbg_init(struct sat_drbg *d);

/* Seeds d from source (ctx is its argument) with a personalization string
 * that names the user ("satchel-tls"). SAT_OK; the source's code if it
 * failed; crypto_err (the caller's module code) if Mbed TLS did. */
SAT_CHECK int sat_drbg_seed(struct sat_drbg *d, sat_entropy_fn source, void *ctx,
                            const char *personalization, int crypto_err);

/* Mbed TLS's f_rng form, for p_rng = the struct sat_drbg: pass
 * (sat_drbg_random, d) to mbedtls_ecdsa_sign, mbedtls_ssl_conf_rng... */
int sat_drbg_random(void *d, unsigned char *out, size_t len);

/* Draws len bytes into out: SAT_OK, or what sat_drbg_error says. */
SAT_CHECK int sat_drbg_fill(struct sat_drbg *d, uint8_t *out, size_t len, int crypto_err);

/* The code for a failed Mbed TLS call that drew from d: the source's own
 * code if the source failed, else crypto_err. */
int sat_drbg_error(const struct sat_drbg *d, int crypto_err);

void sat_drbg_free(struct sat_drbg *d);

#endif
