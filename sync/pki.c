/*
 * pki.c - fleet CA, hub and device certificates with Mbed TLS's pk and
 * x509write APIs (see pki.h).
 */
#include "pki.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/base64.h>
#include <mbedtls/bignum.h>

#include <mbedtls/ecp.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>

#include "sat_date.h"
#include "sat_drbg.h"

#define DRBG_PERSONALIZATION "satchel-pki"
/* Room for "CN=" + a name, and for a CA's distinguished name as text. */
#define NAME_TEXT_BYTES (PKI_CN_BYTES_MAX + 8)
#define DN_TEXT_BYTES 256
/* "YYYYMMDDhhmmss" + NUL, as mbedtls_x509write_crt_set_validity wants. */
#define X509_TIME_TEXT_BYTES 15

/* extendedKeyUsage values, DER: SEQUENCE { OID id-kp-serverAuth } and
 * SEQUENCE { OID id-kp-clientAuth } (RFC 5280 4.2.1.12). */
static const unsigned char eku_server_der[] = { 0x30, 0x0A, 0x06, 0x08, 0x2B, 0x06, 0x01,
                                                0x05, 0x05, 0x07, 0x03, 0x01 };
static const unsigned char eku_client_der[] = { 0x30, 0x0A, 0x06, 0x08, 0x2B, 0x06, 0x01,
                                                0x05, 0x05, 0x07, 0x03, 0x02 };

/* ---- randomness: HAL entropy through core's DRBG ------------------------- */

static int rng_seed(struct sat_drbg *r, const struct hal *h)
{
    return sat_drbg_seed(r, hal_entropy_source, (void *)h, DRBG_PERSONALIZATION,
                         SAT_ERR_TLS_CRYPTO);
}

/* ---- helpers ------------------------------------------------------------ */

int pki_cn_valid(const char *cn)
{
    size_t n = 0;
    if (cn == NULL)
        return 0;
    while (cn[n] != '\0') {
        char c = cn[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == ' ' || c == '.' || c == '_' || c == '-';
        if (!ok || n >= PKI_CN_BYTES_MAX)
            return 0;
        n++;
    }
    return n > 0 && cn[0] != ' ' && cn[n - 1] != ' ';
}

static int window_valid(int64_t not_before_s, int64_t not_after_s)
{
    return not_before_s >= 0 && not_before_s <= not_after_s && not_after_s <= PKI_TIME_S_MAX;
}

/* Unix seconds (0..PKI_TIME_S_MAX) as "YYYYMMDDhhmmss" in UTC. */
static void unix_to_x509_text(int64_t t, char out[X509_TIME_TEXT_BYTES])
{
    int64_t secs = t % 86400;
    int64_t year;
    int month, day;
    static const int widths[6] = { 4, 2, 2, 2, 2, 2 };
    size_t pos = 0;
    sat_date_civil_from_days(t / 86400, &year, &month, &day);
    int64_t fields[6] = { year, month, day, secs / 3600, secs / 60 % 60, secs % 60 };
    for (int i = 0; i < 6; i++) {
        int64_t v = fields[i];
        for (int d = widths[i] - 1; d >= 0; d--) {
            out[pos + (size_t)d] = (char)('0' + v % 10);
            v /= 10;
        }
        pos += (size_t)widths[i];
    }
    out[pos] = '\0';
}

static int is_p256(const mbedtls_pk_context *pk)
{
    return mbedtls_pk_get_type(pk) == MBEDTLS_PK_ECKEY &&
           mbedtls_pk_ec(*pk)->grp.id == MBEDTLS_ECP_DP_SECP256R1;
}

/* Parses a PEM private key and checks it is P-256. */
static int parse_private_key(mbedtls_pk_context *pk, const char *pem)
{
    if (pem == NULL)
        return SAT_ERR_INVALID;
    if (mbedtls_pk_parse_key(pk, (const unsigned char *)pem, strlen(pem) + 1, NULL, 0) != 0)
        return SAT_ERR_TLS_CONFIG;
    return is_p256(pk) ? SAT_OK : SAT_ERR_TLS_CONFIG;
}

/* Parses a PEM key, private or public, and checks it is P-256. */
static int parse_any_key(mbedtls_pk_context *pk, const char *pem)
{
    if (pem == NULL)
        return SAT_ERR_INVALID;
    if (mbedtls_pk_parse_key(pk, (const unsigned char *)pem, strlen(pem) + 1, NULL, 0) != 0) {
        mbedtls_pk_free(pk);
        mbedtls_pk_init(pk);
        if (mbedtls_pk_parse_public_key(pk, (const unsigned char *)pem, strlen(pem) + 1) != 0)
            return SAT_ERR_TLS_CONFIG;
    }
    return is_p256(pk) ? SAT_OK : SAT_ERR_TLS_CONFIG;
}

static int map_write_error(int mret, const struct sat_drbg *r)
{
    if (mret == MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL || mret == MBEDTLS_ERR_ASN1_BUF_TOO_SMALL)
        return SAT_ERR_INVALID;
    return sat_drbg_error(r, SAT_ERR_TLS_CRYPTO);
}

/* ---- keys ----------------------------------------------------------------- */

int pki_key_generate(const struct hal *h, char *key_pem, size_t cap)
{
    struct sat_drbg rng;
    mbedtls_pk_context pk;
    int mret;
    int ret = SAT_ERR_TLS_CRYPTO;

    sat_drbg_init(&rng);
    mbedtls_pk_init(&pk);
    if (key_pem == NULL || cap == 0) {
        ret = SAT_ERR_INVALID;
        goto exit;
    }
    ret = rng_seed(&rng, h);
    if (ret != SAT_OK)
        goto exit;
    if (mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0) {
        ret = SAT_ERR_TLS_CRYPTO;
        goto exit;
    }
    if (mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(pk), sat_drbg_random,
                            &rng) != 0) {
        ret = sat_drbg_error(&rng, SAT_ERR_TLS_CRYPTO);
        goto exit;
    }
    mret = mbedtls_pk_write_key_pem(&pk, (unsigned char *)key_pem, cap);
    ret = mret == 0 ? SAT_OK : map_write_error(mret, &rng);
exit:
    mbedtls_pk_free(&pk); /* zeroizes the private scalar */
    sat_drbg_free(&rng);
    return ret;
}

int pki_recovery_keygen(const struct hal *h, uint8_t pub[PKI_RECOVERY_PUB_BYTES],
                        uint8_t priv[PKI_RECOVERY_PRIV_BYTES])
{
    int ret;
    struct sat_drbg r;
    mbedtls_ecp_group grp;
    mbedtls_ecp_point q;
    mbedtls_mpi d;
    size_t olen = 0;

    sat_drbg_init(&r);
    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&q);
    mbedtls_mpi_init(&d);
    ret = rng_seed(&r, h);
    if (ret != SAT_OK)
        goto exit;
    ret = SAT_ERR_TLS_CRYPTO;
    if (mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1) != 0)
        goto exit;
    if (mbedtls_ecp_gen_keypair(&grp, &d, &q, sat_drbg_random, &r) != 0) {
        ret = sat_drbg_error(&r, SAT_ERR_TLS_CRYPTO);
        goto exit;
    }
    if (mbedtls_ecp_point_write_binary(&grp, &q, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, pub,
                                       PKI_RECOVERY_PUB_BYTES) != 0 ||
        olen != PKI_RECOVERY_PUB_BYTES ||
        mbedtls_mpi_write_binary(&d, priv, PKI_RECOVERY_PRIV_BYTES) != 0)
        goto exit;
    ret = SAT_OK;
exit:
    mbedtls_ecp_group_free(&grp);
    mbedtls_ecp_point_free(&q);
    mbedtls_mpi_free(&d); /* zeroizes the scalar */
    sat_drbg_free(&r);
    if (ret != SAT_OK) {
        mbedtls_platform_zeroize(pub, PKI_RECOVERY_PUB_BYTES);
        mbedtls_platform_zeroize(priv, PKI_RECOVERY_PRIV_BYTES);
    }
    return ret;
}

/* ---- certificates --------------------------------------------------------- */

struct cert_job {
    const char *issuer_dn;      /* issuer's distinguished name as text */
    mbedtls_pk_context *issuer; /* signs */
    mbedtls_pk_context *subject;
    const char *cn;
    int is_ca;
    enum pki_usage usage; /* for !is_ca */
    uint64_t serial;
    int64_t not_before_s;
    int64_t not_after_s;
};

/* Builds, signs and writes one certificate as PEM. */
static int cert_write(const struct hal *h, const struct cert_job *job, char *crt_pem, size_t cap)
{
    struct sat_drbg rng;
    mbedtls_x509write_cert crt;
    mbedtls_mpi serial;
    unsigned char serial_be[8];
    char subject[NAME_TEXT_BYTES];
    char from[X509_TIME_TEXT_BYTES];
    char to[X509_TIME_TEXT_BYTES];
    int mret;
    int ret = SAT_ERR_TLS_CRYPTO;

    sat_drbg_init(&rng);
    mbedtls_x509write_crt_init(&crt);
    mbedtls_mpi_init(&serial);
    if (crt_pem == NULL || cap == 0) {
        ret = SAT_ERR_INVALID;
        goto exit;
    }
    ret = rng_seed(&rng, h);
    if (ret != SAT_OK)
        goto exit;
    ret = SAT_ERR_TLS_CRYPTO;
    for (int i = 0; i < 8; i++)
        serial_be[i] = (unsigned char)(job->serial >> (56 - 8 * i));
    snprintf(subject, sizeof subject, "CN=%s", job->cn);
    unix_to_x509_text(job->not_before_s, from);
    unix_to_x509_text(job->not_after_s, to);

    mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&crt, job->subject);
    mbedtls_x509write_crt_set_issuer_key(&crt, job->issuer);
    if (mbedtls_mpi_read_binary(&serial, serial_be, sizeof serial_be) != 0 ||
        mbedtls_x509write_crt_set_serial(&crt, &serial) != 0)
        goto exit;
    if (mbedtls_x509write_crt_set_subject_name(&crt, subject) != 0 ||
        mbedtls_x509write_crt_set_issuer_name(&crt, job->issuer_dn) != 0) {
        ret = SAT_ERR_TLS_CONFIG;
        goto exit;
    }
    if (mbedtls_x509write_crt_set_validity(&crt, from, to) != 0)
        goto exit;
    if (mbedtls_x509write_crt_set_subject_key_identifier(&crt) != 0 ||
        mbedtls_x509write_crt_set_authority_key_identifier(&crt) != 0)
        goto exit;
    if (job->is_ca) {
        if (mbedtls_x509write_crt_set_basic_constraints(&crt, 1, 0) != 0 ||
            mbedtls_x509write_crt_set_key_usage(
                &crt, MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN) != 0)
            goto exit;
    } else {
        const unsigned char *eku =
            job->usage == PKI_USAGE_SERVER ? eku_server_der : eku_client_der;
        if (mbedtls_x509write_crt_set_basic_constraints(&crt, 0, -1) != 0 ||
            mbedtls_x509write_crt_set_key_usage(&crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE) != 0 ||
            mbedtls_x509write_crt_set_extension(
                &crt, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0, eku,
                sizeof eku_server_der) != 0)
            goto exit;
    }
    mret = mbedtls_x509write_crt_pem(&crt, (unsigned char *)crt_pem, cap, sat_drbg_random,
                                     &rng);
    ret = mret == 0 ? SAT_OK : map_write_error(mret, &rng);
exit:
    mbedtls_mpi_free(&serial);
    mbedtls_x509write_crt_free(&crt);
    sat_drbg_free(&rng);
    return ret;
}

int pki_ca_self_sign(const struct hal *h, const char *key_pem, const char *cn, uint64_t serial,
                     int64_t not_before_s, int64_t not_after_s, char *crt_pem, size_t cap)
{
    mbedtls_pk_context key;
    char dn[NAME_TEXT_BYTES];
    struct cert_job job;
    int ret = SAT_ERR_INVALID;

    mbedtls_pk_init(&key);
    if (!pki_cn_valid(cn) || serial == 0 || !window_valid(not_before_s, not_after_s))
        goto exit;
    ret = parse_private_key(&key, key_pem);
    if (ret != SAT_OK)
        goto exit;
    snprintf(dn, sizeof dn, "CN=%s", cn);
    job = (struct cert_job){ .issuer_dn = dn,
                             .issuer = &key,
                             .subject = &key,
                             .cn = cn,
                             .is_ca = 1,
                             .serial = serial,
                             .not_before_s = not_before_s,
                             .not_after_s = not_after_s };
    ret = cert_write(h, &job, crt_pem, cap);
exit:
    mbedtls_pk_free(&key);
    return ret;
}

struct pki_issuer {
    mbedtls_x509_crt ca;
    mbedtls_pk_context ca_key;
    char dn[DN_TEXT_BYTES];
};

int pki_issuer_open(const char *ca_crt_pem, const char *ca_key_pem, struct pki_issuer **out)
{
    struct pki_issuer *is;
    int ret = SAT_ERR_INVALID;
    if (out == NULL || ca_crt_pem == NULL)
        return SAT_ERR_INVALID;
    is = calloc(1, sizeof *is);
    if (is == NULL)
        return SAT_ERR_NO_MEMORY;
    mbedtls_x509_crt_init(&is->ca);
    mbedtls_pk_init(&is->ca_key);
    ret = SAT_ERR_TLS_CONFIG;
    if (mbedtls_x509_crt_parse(&is->ca, (const unsigned char *)ca_crt_pem,
                               strlen(ca_crt_pem) + 1) != 0 ||
        !is->ca.ca_istrue || !is_p256(&is->ca.pk))
        goto exit;
    if (mbedtls_x509_dn_gets(is->dn, sizeof is->dn, &is->ca.subject) < 0)
        goto exit;
    ret = parse_private_key(&is->ca_key, ca_key_pem);
    if (ret != SAT_OK)
        goto exit;
    if (mbedtls_pk_check_pair(&is->ca.pk, &is->ca_key) != 0)
        ret = SAT_ERR_TLS_CONFIG;
exit:
    if (ret != SAT_OK) {
        pki_issuer_close(is);
        return ret;
    }
    *out = is;
    return SAT_OK;
}

int pki_issuer_issue(const struct hal *h, struct pki_issuer *is,
                     const char *subject_key_pem, const char *cn, enum pki_usage usage,
                     uint64_t serial, int64_t not_before_s, int64_t not_after_s, char *crt_pem,
                     size_t cap)
{
    mbedtls_pk_context subject;
    struct cert_job job;
    int ret = SAT_ERR_INVALID;

    mbedtls_pk_init(&subject);
    if (is == NULL || !pki_cn_valid(cn) || serial == 0 ||
        !window_valid(not_before_s, not_after_s) ||
        (usage != PKI_USAGE_SERVER && usage != PKI_USAGE_CLIENT))
        goto exit;
    ret = parse_any_key(&subject, subject_key_pem);
    if (ret != SAT_OK)
        goto exit;
    job = (struct cert_job){ .issuer_dn = is->dn,
                             .issuer = &is->ca_key,
                             .subject = &subject,
                             .cn = cn,
                             .is_ca = 0,
                             .usage = usage,
                             .serial = serial,
                             .not_before_s = not_before_s,
                             .not_after_s = not_after_s };
    ret = cert_write(h, &job, crt_pem, cap);
exit:
    mbedtls_pk_free(&subject);
    return ret;
}

void pki_issuer_close(struct pki_issuer *is)
{
    if (is == NULL)
        return;
    mbedtls_pk_free(&is->ca_key);
    mbedtls_x509_crt_free(&is->ca);
    mbedtls_platform_zeroize(is, sizeof *is);
    free(is);
}

int pki_cert_issue(const struct hal *h, const char *ca_crt_pem, const char *ca_key_pem,
                   const char *subject_key_pem, const char *cn, enum pki_usage usage,
                   uint64_t serial, int64_t not_before_s, int64_t not_after_s, char *crt_pem,
                   size_t cap)
{
    struct pki_issuer *is = NULL;
    int ret;
    /* The arguments first, as before the CA is looked at. */
    if (!pki_cn_valid(cn) || serial == 0 || !window_valid(not_before_s, not_after_s) ||
        (usage != PKI_USAGE_SERVER && usage != PKI_USAGE_CLIENT) || ca_crt_pem == NULL)
        return SAT_ERR_INVALID;
    ret = pki_issuer_open(ca_crt_pem, ca_key_pem, &is);
    if (ret == SAT_OK)
        ret = pki_issuer_issue(h, is, subject_key_pem, cn, usage, serial, not_before_s,
                               not_after_s, crt_pem, cap);
    pki_issuer_close(is);
    return ret;
}

/* ---- files ---------------------------------------------------------------- */

int pki_file_read(const struct hal *h, const char *name, char *buf, size_t cap, size_t *len)
{
    hal_file *f = NULL;
    uint64_t size = 0;
    int ret;
    if (buf == NULL || cap == 0)
        return SAT_ERR_INVALID;
    ret = hal_storage_open(h, name, 0, &f);
    if (ret != SAT_OK)
        return ret;
    ret = hal_storage_size(h, f, &size);
    if (ret == SAT_OK && (size >= cap || size > PKI_FILE_BYTES_MAX))
        ret = SAT_ERR_INVALID;
    if (ret == SAT_OK)
        ret = hal_storage_read_full(h, f, 0, buf, (size_t)size);
    hal_storage_close(h, f);
    if (ret != SAT_OK)
        return ret;
    buf[size] = '\0';
    if (len != NULL)
        *len = (size_t)size;
    return SAT_OK;
}

int pki_file_write_new(const struct hal *h, const char *name, const char *text)
{
    hal_file *f = NULL;
    int ret;
    if (text == NULL)
        return SAT_ERR_INVALID;
    ret = hal_storage_open(h, name, HAL_OPEN_CREATE | HAL_OPEN_EXCLUSIVE, &f);
    if (ret != SAT_OK)
        return ret;
    ret = hal_storage_write(h, f, 0, text, strlen(text));
    if (ret == SAT_OK)
        ret = hal_storage_sync(h, f);
    hal_storage_close(h, f);
    if (ret != SAT_OK && hal_storage_delete(h, name) != SAT_OK)
        hal_log(h, HAL_LOG_WARN, "pki: %s is left half-written: remove it", name);
    return ret;
}
