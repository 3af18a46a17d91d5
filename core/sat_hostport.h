/*
 * sat_hostport.h - "HOST:PORT" as people type it on a command line.
 *
 * The host is everything before the last colon (a name or an IPv4
 * address; it is handed to the HAL's resolver as it is); the port is
 * decimal digits only (no sign, no spaces), 1..65535, or 0 as well when
 * the caller listens and lets the system pick a free port.
 */
#ifndef SATCHEL_SAT_HOSTPORT_H
#define SATCHEL_SAT_HOSTPORT_H

#include <stddef.h>
#include <stdint.h>

#include "sat_err.h"

#define SAT_HOSTPORT_ANY_PORT 1 /* flags: port 0 (any free port) is allowed */

/* Splits spec into host (cap bytes with its NUL) and *port. SAT_OK, or
 * SAT_ERR_INVALID (nothing written) for no colon, an empty or over-long
 * host, or a port that is not a number in range. */
SAT_CHECK int sat_hostport_parse(const char *spec, unsigned flags, char *host, size_t cap,
                                 uint16_t *port);

#endif
