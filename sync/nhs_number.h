/*
 * nhs_number.h - NHS numbers: 10 digits, the last a Modulus 11 check digit.
 *
 * Weights 10..2 over the first nine digits; check = 11 - (sum mod 11);
 * 11 becomes 0; 10 means the number is invalid. Spaces between digits (as
 * printed on cards, "943 476 5919", in any grouping) are accepted on input
 * and dropped; leading or trailing spaces, dashes, tabs and any other
 * character are rejected, so trim input before parsing.
 */
#ifndef SATCHEL_NHS_NUMBER_H
#define SATCHEL_NHS_NUMBER_H

#include <stddef.h>

#define NHS_NUMBER_DIGITS 10

/* 1 if text is a valid NHS number (digits and spaces only, exactly 10
 * digits, check digit right), else 0 (NULL text included). If out is not
 * NULL and the number is valid, the 10 digits and a NUL are written to out
 * (11 bytes); if it is invalid, out is set to "" so no stale digits remain.
 * Only the Modulus 11 rule is checked: which ranges are issued is not. */
int nhs_number_parse(const char *text, char out[NHS_NUMBER_DIGITS + 1]);

/* The check digit (0..9) for the first nine digits, ASCII '0'..'9'; -1 if
 * none exists (the rule gives 10), or if nine_digits is NULL or holds a
 * non-digit. */
int nhs_number_check_digit(const char nine_digits[9]);

#endif
