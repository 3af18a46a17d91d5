/* record_id.c - see record_id.h. */
#include "record_id.h"

#define TIME_BYTES 6
#define VERSION_7 0x70
#define VARIANT_RFC 0x80

void record_id_make(int64_t unix_ms, const uint8_t random[RECORD_ID_RANDOM_BYTES],
                    uint8_t out[RECORD_ID_BYTES])
{
    uint64_t ms = unix_ms < 0 ? 0
                  : unix_ms > RECORD_ID_MS_MAX ? (uint64_t)RECORD_ID_MS_MAX
                                               : (uint64_t)unix_ms;
    for (int i = 0; i < TIME_BYTES; i++)
        out[i] = (uint8_t)(ms >> (8 * (TIME_BYTES - 1 - i)));
    out[6] = (uint8_t)(VERSION_7 | (random[0] & 0x0f));
    out[7] = random[1];
    out[8] = (uint8_t)(VARIANT_RFC | (random[2] & 0x3f));
    for (int i = 9; i < RECORD_ID_BYTES; i++)
        out[i] = random[i - 6];
}

int64_t record_id_ms(const uint8_t id[RECORD_ID_BYTES])
{
    uint64_t ms = 0;
    for (int i = 0; i < TIME_BYTES; i++)
        ms = ms << 8 | id[i];
    return (int64_t)ms;
}
