/*
 * device_conf.h - device.conf, which `satchelctl device provision` leaves
 * on a tablet beside its certificate and key: one "key=value" per line,
 *     device_id=<32 hex digits>   the id in the certificate's CN: the
 *                                 store adopts it and Hello sends it
 *     team=<name>                 for people; the hub decides the team
 * The file comes from provisioning, but it sits on the tablet's flash like
 * any other input, so it is parsed strictly and never trusted to be short
 * or well-formed.
 */
#ifndef SATCHEL_DEVICE_CONF_H
#define SATCHEL_DEVICE_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "hal.h"
#include "sat_hex.h"

#define DEVICE_CONF_NAME "device.conf"
/* A longer file is not one provisioning wrote: SAT_ERR_INVALID. */
#define DEVICE_CONF_BYTES_MAX 511

struct device_conf {
    uint8_t device_id[SAT_ID_BYTES];
    char device_id_hex[SAT_ID_HEX_BYTES]; /* lower case */
};

/* Parses text[0..len) (which may hold NUL bytes; no terminator needed).
 * SAT_OK when exactly one line is "device_id=" then 32 hex digits (either
 * case), then at most spaces, tabs and a CR; other lines are ignored.
 * SAT_ERR_INVALID otherwise (no such line, a malformed one, or two): *out
 * is then zeroed. */
SAT_CHECK int device_conf_parse(const char *text, size_t len, struct device_conf *out);

/* Reads DEVICE_CONF_NAME from h's storage and parses it. SAT_ERR_NOT_FOUND
 * when the tablet has none (not provisioned), SAT_ERR_INVALID when it is
 * longer than DEVICE_CONF_BYTES_MAX or does not parse, or the HAL's error. */
SAT_CHECK int device_conf_read(const struct hal *h, struct device_conf *out);

#endif
