/* sat_hex.c - hex text (sat_hex.h). */
#include "sat_hex.h"

#include <string.h>

void sat_hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int sat_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sat_hex_decode_prefix(const char *hex, uint8_t *out, size_t n)
{
    if (!hex || !out)
        return SAT_ERR_INVALID;
    /* Checked whole before out is written, so a bad digit leaves it as it was. */
    for (size_t i = 0; i < 2 * n; i++)
        if (sat_hex_digit(hex[i]) < 0)
            return SAT_ERR_INVALID;
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(sat_hex_digit(hex[2 * i]) << 4 | sat_hex_digit(hex[2 * i + 1]));
    return SAT_OK;
}

int sat_hex_decode(const char *hex, uint8_t *out, size_t n)
{
    if (!hex || strlen(hex) != 2 * n)
        return SAT_ERR_INVALID;
    return sat_hex_decode_prefix(hex, out, n);
}
