/*
 * fuzz_device_conf.c - device.conf as the tablet reads it from flash.
 *
 * Input: the bytes of device.conf. They are written to a simulated
 * tablet's storage and read with device_conf_read (the file's size limit
 * included), and parsed again in place with device_conf_parse. Both must
 * agree; an accepted file names its id on exactly one device_id line, and
 * the id read back as hex is that line's digits.
 */
#include <ctype.h>

#include "device_conf.h"
#include "fuzz.h"
#include "fuzz_world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sim_hal *sim = NULL;
    struct device_conf from_flash;
    struct device_conf parsed;
    int flash_ret;
    int parse_ret;

    FUZZ_CHECK(sim_hal_new(&sim, FUZZ_TABLET_SEED, FUZZ_WALL_START_MS) == SAT_OK,
               "no simulated tablet");
    FUZZ_CHECK(fuzz_file_write(sim_hal_hal(sim), DEVICE_CONF_NAME, data, size) == SAT_OK,
               "cannot write device.conf");
    flash_ret = device_conf_read(sim_hal_hal(sim), &from_flash);
    parse_ret = device_conf_parse((const char *)data, size, &parsed);
    sim_hal_free(sim);

    if (size > DEVICE_CONF_BYTES_MAX) {
        FUZZ_CHECK(flash_ret == SAT_ERR_INVALID, "an oversize device.conf was read (%d)",
                   flash_ret);
        return 0;
    }
    FUZZ_CHECK(flash_ret == parse_ret, "read %d but parsed %d", flash_ret, parse_ret);
    if (parse_ret != SAT_OK)
        return 0;
    FUZZ_CHECK(memcmp(&from_flash, &parsed, sizeof parsed) == 0, "read and parsed differ");
    {
        /* The id's line: "device_id=" at the start of a line, then its
         * digits, which read back (lower case) as the id. */
        const char *hex = NULL;
        for (size_t at = 0; at + 10 <= size; at++)
            if ((at == 0 || data[at - 1] == '\n') &&
                memcmp(data + at, "device_id=", 10) == 0) {
                FUZZ_CHECK(hex == NULL, "two device_id lines were accepted");
                hex = (const char *)data + at + 10;
            }
        FUZZ_CHECK(hex != NULL, "accepted without a device_id line");
        for (size_t i = 0; i < 2 * SAT_ID_BYTES; i++)
            FUZZ_CHECK(tolower((unsigned char)hex[i]) == parsed.device_id_hex[i],
                       "the id read is not the line's");
        FUZZ_CHECK(parsed.device_id_hex[2 * SAT_ID_BYTES] == '\0', "the id's hex is too long");
    }
    return 0;
}
