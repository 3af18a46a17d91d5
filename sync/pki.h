/*
 * pki.h - the fleet's certificates: P-256 keys, a self-signed fleet CA, and
 * hub and device certificates signed by it, all as PEM text.
 *
 * Used by satchelctl (the fleet manager's tool) and by tests. A tablet never
 * needs it: it only reads the PEM files satchelctl wrote (tls.h).
 *
 * What the certificates look like (tls.c relies on it):
 *  - every key is ECDSA on P-256 and every signature ECDSA with SHA-256;
 *  - the CA: subject "CN=<name>", basicConstraints CA:true pathlen 0,
 *    keyUsage keyCertSign + cRLSign;
 *  - a hub (PKI_USAGE_SERVER) or device (PKI_USAGE_CLIENT) certificate:
 *    subject "CN=<name>" (a device's CN is its 32-hex-digit id), CA:false,
 *    keyUsage digitalSignature, and extendedKeyUsage serverAuth or
 *    clientAuth. Mbed TLS checks the extended key usage during the
 *    handshake, so a stolen device key cannot pose as the hub and a hub key
 *    cannot pose as a device.
 *
 * Contract of every function below:
 *  - returns SAT_OK or a negative code from sat_err.h; outputs are written
 *    only on success (a PEM buffer may hold garbage after a failure);
 *  - randomness comes only from hal_entropy_fill, through a CTR-DRBG that
 *    lives for the one call; a HAL entropy failure returns the HAL's code;
 *  - PEM inputs are NUL-terminated strings; they are only read;
 *  - key material in temporary buffers is zeroized before returning.
 * The caller zeroizes the private key PEM buffers it owns.
 */
#ifndef SATCHEL_PKI_H
#define SATCHEL_PKI_H

#include <stddef.h>
#include <stdint.h>

#include "hal.h"

/* Capacity that always fits one PEM key or certificate made here. */
#define PKI_PEM_BYTES_MAX 4096
/* pki_file_read refuses larger files than this. */
#define PKI_FILE_BYTES_MAX 16384
/* Longest common name, in bytes. */
#define PKI_CN_BYTES_MAX 64
/* Latest validity end accepted: 9999-12-31T23:59:59Z, in Unix seconds. */
#define PKI_TIME_S_MAX 253402300799LL

enum pki_usage {
    PKI_USAGE_SERVER = 1, /* the hub: extendedKeyUsage serverAuth */
    PKI_USAGE_CLIENT = 2  /* a device: extendedKeyUsage clientAuth */
};

/* 1 if cn may be a common name here: 1..PKI_CN_BYTES_MAX bytes of
 * [A-Za-z0-9 ._-], not starting or ending with a space; else 0. */
int pki_cn_valid(const char *cn);

/* The fleet recovery key: a P-256 pair. A tablet wraps its data key to the
 * public half at enrolment (keys.h); the fleet keeps the private half
 * offline, to give a nurse who forgot her PIN a new one without losing a
 * record. */
#define PKI_RECOVERY_PUB_BYTES 65  /* the uncompressed point */
#define PKI_RECOVERY_PRIV_BYTES 32 /* the big-endian scalar */

/* Makes a recovery key pair from the HAL's entropy. SAT_OK;
 * SAT_ERR_TLS_CRYPTO; or the HAL's entropy error (pub and priv are wiped
 * on failure). */
SAT_CHECK int pki_recovery_keygen(const struct hal *h, uint8_t pub[PKI_RECOVERY_PUB_BYTES],
                                  uint8_t priv[PKI_RECOVERY_PRIV_BYTES]);

/* Makes a new P-256 private key and writes it as PEM ("EC PRIVATE KEY")
 * into key_pem (cap bytes, NUL-terminated on success).
 * Returns SAT_OK; SAT_ERR_INVALID if cap is too small
 * (PKI_PEM_BYTES_MAX always suffices); SAT_ERR_TLS_CRYPTO; or the HAL's
 * entropy error. */
SAT_CHECK int pki_key_generate(const struct hal *h, char *key_pem, size_t cap);

/* Makes the fleet CA's self-signed certificate for the private key key_pem.
 * cn: the CA's name (pki_cn_valid). serial: > 0. Valid from not_before_s to
 * not_after_s (Unix seconds, 0 <= not_before_s <= not_after_s <=
 * PKI_TIME_S_MAX). Writes the PEM certificate into crt_pem (cap bytes).
 * Returns SAT_OK; SAT_ERR_INVALID (bad cn, serial, window or cap too small);
 * SAT_ERR_TLS_CONFIG (key_pem is not a P-256 private key);
 * SAT_ERR_TLS_CRYPTO; or the HAL's entropy error. */
SAT_CHECK int pki_ca_self_sign(const struct hal *h, const char *key_pem, const char *cn, uint64_t serial,
                     int64_t not_before_s, int64_t not_after_s, char *crt_pem, size_t cap);

/* Issues a hub or device certificate signed by the CA.
 * ca_crt_pem / ca_key_pem: the CA's certificate and its private key (they
 * must match). subject_key_pem: the subject's P-256 key, private or public
 * (only the public half goes into the certificate). cn: the subject's name
 * (pki_cn_valid). usage: PKI_USAGE_SERVER or PKI_USAGE_CLIENT. serial, the
 * window and the output are as for pki_ca_self_sign; the window is not
 * clipped to the CA's (tests make expired certificates on purpose).
 * Returns SAT_OK; SAT_ERR_INVALID (bad cn, usage, serial, window, cap);
 * SAT_ERR_TLS_CONFIG (a PEM that does not parse, a CA certificate that is
 * not a CA, a key that is not P-256, or a CA key that does not match);
 * SAT_ERR_TLS_CRYPTO; or the HAL's entropy error. */
SAT_CHECK int pki_cert_issue(const struct hal *h, const char *ca_crt_pem, const char *ca_key_pem,
                   const char *subject_key_pem, const char *cn, enum pki_usage usage,
                   uint64_t serial, int64_t not_before_s, int64_t not_after_s, char *crt_pem,
                   size_t cap);

/* The CA's side of pki_cert_issue for issuing many certificates: opens
 * (parses and checks) the CA's certificate and key once. pki_issuer_open:
 * SAT_OK with *out to close with pki_issuer_close (NULL is ignored; the
 * CA's key is zeroized); SAT_ERR_INVALID (no certificate or out),
 * SAT_ERR_TLS_CONFIG as pki_cert_issue, SAT_ERR_NO_MEMORY.
 * pki_issuer_issue: as pki_cert_issue with the opened CA, and makes the
 * same certificate from the same entropy. */
struct pki_issuer;
SAT_CHECK int pki_issuer_open(const char *ca_crt_pem, const char *ca_key_pem, struct pki_issuer **out);
SAT_CHECK int pki_issuer_issue(const struct hal *h, struct pki_issuer *is,
                     const char *subject_key_pem, const char *cn, enum pki_usage usage,
                     uint64_t serial, int64_t not_before_s, int64_t not_after_s, char *crt_pem,
                     size_t cap);
void pki_issuer_close(struct pki_issuer *is);

/* Reads the whole of storage file `name` (a flat HAL name) into buf and
 * adds a NUL. cap: buf's size; the file must have fewer than cap bytes and
 * at most PKI_FILE_BYTES_MAX. *len (may be NULL) gets the length without the
 * NUL. Returns SAT_OK; SAT_ERR_NOT_FOUND; SAT_ERR_INVALID (bad name, file
 * too big for cap or the limit); or the HAL's storage error. */
SAT_CHECK int pki_file_read(const struct hal *h, const char *name, char *buf, size_t cap, size_t *len);

/* Creates storage file `name`, which must not exist yet, writes the
 * NUL-terminated text into it and syncs it. The POSIX HAL creates files
 * 0600. On a failure after creating it, the file is deleted again.
 * Returns SAT_OK; SAT_ERR_EXISTS (never overwrites); SAT_ERR_INVALID (bad
 * name); or the HAL's storage error. */
SAT_CHECK int pki_file_write_new(const struct hal *h, const char *name, const char *text);

#endif
