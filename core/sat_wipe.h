/*
 * sat_wipe.h - clearing secrets so that the compiler cannot skip it.
 *
 * A plain memset of a buffer that is never read again may be removed by
 * the optimiser; keys, PINs and plaintext would then outlive their use.
 * sat_wipe is Mbed TLS's mbedtls_platform_zeroize, which the compiler
 * must keep. Call it on every path that leaves a secret behind, including
 * the error paths (one exit label that wipes).
 */
#ifndef SATCHEL_SAT_WIPE_H
#define SATCHEL_SAT_WIPE_H

#include <stddef.h>

#include <mbedtls/platform_util.h>

static inline void sat_wipe(void *secret, size_t len)
{
    mbedtls_platform_zeroize(secret, len);
}

#endif
