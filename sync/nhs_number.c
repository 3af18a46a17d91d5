/* nhs_number.c - see nhs_number.h. */
#include "nhs_number.h"

#include <stddef.h>

enum {
    NHS_NUMBER_BODY_DIGITS = NHS_NUMBER_DIGITS - 1,
    NHS_NUMBER_MODULUS = 11,
    NHS_NUMBER_FIRST_WEIGHT = 10
};

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int nhs_number_check_digit(const char nine_digits[9])
{
    int sum = 0;
    int check;
    int i;

    if (nine_digits == NULL)
        return -1;
    for (i = 0; i < NHS_NUMBER_BODY_DIGITS; i++) {
        if (!is_digit(nine_digits[i]))
            return -1;
        sum += (nine_digits[i] - '0') * (NHS_NUMBER_FIRST_WEIGHT - i);
    }
    check = NHS_NUMBER_MODULUS - sum % NHS_NUMBER_MODULUS;
    if (check == NHS_NUMBER_MODULUS)
        return 0;
    if (check == 10)
        return -1; /* no digit fits: such numbers are never issued */
    return check;
}

int nhs_number_parse(const char *text, char out[NHS_NUMBER_DIGITS + 1])
{
    char digits[NHS_NUMBER_DIGITS + 1];
    int n = 0;
    int valid = 0;
    int last_was_space = 0;
    const char *p;

    if (out != NULL)
        out[0] = '\0';
    if (text == NULL)
        return 0;
    /* Spaces only between digits (any grouping, as printed or typed);
     * leading or trailing spaces and every other character are rejected. */
    for (p = text; *p != '\0'; p++) {
        if (is_digit(*p)) {
            if (n == NHS_NUMBER_DIGITS)
                return 0;
            digits[n++] = *p;
            last_was_space = 0;
        } else if (*p == ' ' && n > 0) {
            last_was_space = 1;
        } else {
            return 0;
        }
    }
    if (n != NHS_NUMBER_DIGITS || last_was_space)
        return 0;
    digits[n] = '\0';
    valid = nhs_number_check_digit(digits) == digits[NHS_NUMBER_BODY_DIGITS] - '0';
    if (valid && out != NULL) {
        for (n = 0; n <= NHS_NUMBER_DIGITS; n++)
            out[n] = digits[n];
    }
    return valid;
}
