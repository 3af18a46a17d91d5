/*
 * sat_hex.h - 16-byte ids and hexadecimal text, the one codec for both.
 *
 * Record ids and device ids are SAT_ID_BYTES random (or time-ordered) bytes
 * everywhere: on flash, on the wire, at the hub. People and files see them
 * as lower-case hex. Every module that turns bytes into hex or back calls
 * these, so a device id printed by satchelctl, logged by the hub and typed
 * into satchel reads the same.
 *
 * Contract: encode always succeeds and NUL-terminates; decode accepts
 * either case, takes exactly the digits it is asked for, and writes its
 * output only when every digit was valid.
 */
#ifndef SATCHEL_SAT_HEX_H
#define SATCHEL_SAT_HEX_H

#include <stddef.h>
#include <stdint.h>

#include "sat_err.h"

#define SAT_ID_BYTES 16                          /* record and device ids */
#define SAT_HEX_BYTES(n) (2 * (n) + 1)           /* hex of n bytes, with the NUL */
#define SAT_ID_HEX_BYTES SAT_HEX_BYTES(SAT_ID_BYTES)

/* Writes the lower-case hex of in[0..n) and a NUL to out
 * (SAT_HEX_BYTES(n) bytes). */
void sat_hex_encode(const uint8_t *in, size_t n, char *out);

/* The value of one hex digit, either case; -1 if c is not one. */
int sat_hex_digit(char c);

/* Decodes hex, which must be exactly 2n hex digits followed by its NUL,
 * into out[0..n). SAT_ERR_INVALID (out untouched) otherwise. */
SAT_CHECK int sat_hex_decode(const char *hex, uint8_t *out, size_t n);

/* Decodes the first 2n characters of hex (more may follow) into out[0..n).
 * SAT_ERR_INVALID (out untouched) if any of them is not a hex digit. */
SAT_CHECK int sat_hex_decode_prefix(const char *hex, uint8_t *out, size_t n);

#endif
