/* sat_drbg.c - the CTR-DRBG over a named entropy source (sat_drbg.h). */
#include "sat_drbg.h"

#include <string.h>

/* Mbed TLS's entropy callback: the caller's source, its failure kept. */
static int from_source(void *p, unsigned char *out, size_t len)
{
    struct sat_drbg *d = p;
    int ret = d->source(d->source_ctx, out, len);
    if (ret != SAT_OK) {
        d->source_err = ret;
        return MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
    }
    return 0;
}

void sat_drbg_init(struct sat_drbg *d)
{
    d->source = NULL;
    d->source_ctx = NULL;
    d->source_err = SAT_OK;
    mbedtls_ctr_drbg_init(&d->ctr);
}

int sat_drbg_seed(struct sat_drbg *d, sat_entropy_fn source, void *ctx,
                  const char *personalization, int crypto_err)
{
    if (!source || !personalization)
        return SAT_ERR_INVALID;
    d->source = source;
    d->source_ctx = ctx;
    d->source_err = SAT_OK;
    if (mbedtls_ctr_drbg_seed(&d->ctr, from_source, d, (const unsigned char *)personalization,
                              strlen(personalization)) != 0)
        return sat_drbg_error(d, crypto_err);
    return SAT_OK;
}

int sat_drbg_random(void *d, unsigned char *out, size_t len)
{
    return mbedtls_ctr_drbg_random(&((struct sat_drbg *)d)->ctr, out, len);
}

int sat_drbg_fill(struct sat_drbg *d, uint8_t *out, size_t len, int crypto_err)
{
    return sat_drbg_random(d, out, len) == 0 ? SAT_OK : sat_drbg_error(d, crypto_err);
}

int sat_drbg_error(const struct sat_drbg *d, int crypto_err)
{
    return d->source_err != SAT_OK ? d->source_err : crypto_err;
}

void sat_drbg_free(struct sat_drbg *d)
{
    mbedtls_ctr_drbg_free(&d->ctr); /* zeroizes the state */
    d->source = NULL;
    d->source_ctx = NULL;
}
