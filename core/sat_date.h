/*
 * sat_date.h - calendar dates in UTC, the proleptic Gregorian calendar.
 *
 * One implementation of the leap-year rule and of days since the Unix
 * epoch, used wherever a date is checked or turned into a time: dates of
 * birth, a task's due date, certificate validity. Pure arithmetic: no time
 * zone, no locale, no clock.
 */
#ifndef SATCHEL_SAT_DATE_H
#define SATCHEL_SAT_DATE_H

#include <stdint.h>

#define SAT_MS_PER_DAY 86400000LL

/* 1 if year y has a 29th of February. */
int sat_date_is_leap(int64_t y);

/* Days in month m (1..12) of year y; 0 for a month that is not one. */
int sat_date_month_days(int64_t y, int m);

/* 1 if y-m-d names a real day (any year). */
int sat_date_valid(int64_t y, int m, int d);

/* Days from 1970-01-01 to y-m-d (negative before it), for a valid date. */
int64_t sat_date_days_from_civil(int64_t y, int m, int d);

/* The date of day `days` since 1970-01-01 (the inverse of the above). */
void sat_date_civil_from_days(int64_t days, int64_t *y, int *m, int *d);

/* Unix milliseconds of y-m-d hh:mm:ss UTC, for a valid date and time. */
int64_t sat_date_unix_ms(int64_t y, int m, int d, int hh, int mm, int ss);

#endif
