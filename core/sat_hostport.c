/* sat_hostport.c - HOST:PORT (sat_hostport.h). */
#include "sat_hostport.h"

#include <string.h>

int sat_hostport_parse(const char *spec, unsigned flags, char *host, size_t cap,
                       uint16_t *port)
{
    const char *colon = spec ? strrchr(spec, ':') : NULL;
    const char *digits;
    unsigned long p = 0;
    if (!colon || colon == spec || (size_t)(colon - spec) >= cap || !host || !port)
        return SAT_ERR_INVALID;
    digits = colon + 1;
    if (*digits == '\0' || strlen(digits) > 5)
        return SAT_ERR_INVALID;
    for (const char *c = digits; *c; c++) {
        if (*c < '0' || *c > '9')
            return SAT_ERR_INVALID;
        p = p * 10 + (unsigned long)(*c - '0');
    }
    if (p > 65535 || (p == 0 && !(flags & SAT_HOSTPORT_ANY_PORT)))
        return SAT_ERR_INVALID;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    *port = (uint16_t)p;
    return SAT_OK;
}
