/* device_conf.c - see device_conf.h. */
#include "device_conf.h"

#include <string.h>

#include "pki.h"

#define KEY_DEVICE_ID "device_id="

/* The value of a device_id line, [v, end): 32 hex digits and trailing
 * blanks. */
static int parse_id(const char *v, const char *end, struct device_conf *out)
{
    size_t digits = 2 * SAT_ID_BYTES;
    if ((size_t)(end - v) < digits || sat_hex_decode_prefix(v, out->device_id, SAT_ID_BYTES) !=
                                          SAT_OK)
        return SAT_ERR_INVALID;
    for (const char *p = v + digits; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r')
            return SAT_ERR_INVALID;
    sat_hex_encode(out->device_id, SAT_ID_BYTES, out->device_id_hex);
    return SAT_OK;
}

int device_conf_parse(const char *text, size_t len, struct device_conf *out)
{
    const size_t key_len = sizeof KEY_DEVICE_ID - 1;
    int found = 0;
    int ret = SAT_OK;
    memset(out, 0, sizeof *out);
    for (size_t at = 0; ret == SAT_OK && at < len;) {
        const char *line = text + at;
        const char *eol = memchr(line, '\n', len - at);
        size_t line_len = eol ? (size_t)(eol - line) : len - at;
        if (line_len >= key_len && memcmp(line, KEY_DEVICE_ID, key_len) == 0) {
            /* A second device_id: which one the certificate holds is not
             * for the parser to guess. */
            ret = found ? SAT_ERR_INVALID : parse_id(line + key_len, line + line_len, out);
            found = 1;
        }
        at += line_len + 1;
    }
    if (ret == SAT_OK && !found)
        ret = SAT_ERR_INVALID;
    if (ret != SAT_OK)
        memset(out, 0, sizeof *out);
    return ret;
}

int device_conf_read(const struct hal *h, struct device_conf *out)
{
    char text[DEVICE_CONF_BYTES_MAX + 1];
    size_t len = 0;
    int ret = pki_file_read(h, DEVICE_CONF_NAME, text, sizeof text, &len);
    if (ret == SAT_OK)
        ret = device_conf_parse(text, len, out);
    else
        memset(out, 0, sizeof *out);
    return ret;
}
