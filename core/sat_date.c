/* sat_date.c - calendar arithmetic (sat_date.h). */
#include "sat_date.h"

int sat_date_is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int sat_date_month_days(int64_t y, int m)
{
    static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (m < 1 || m > 12)
        return 0;
    return days[m - 1] + (m == 2 && sat_date_is_leap(y));
}

int sat_date_valid(int64_t y, int m, int d)
{
    return d >= 1 && d <= sat_date_month_days(y, m);
}

/* Counted in 400-year eras (146,097 days each) of years that start on
 * March 1st, so that a leap day is the last day of its year and the month
 * lengths from March follow a linear rule. */
int64_t sat_date_days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;
    y -= m <= 2 ? 1 : 0;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void sat_date_civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
    int64_t z = days + 719468; /* days since 0000-03-01 */
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2 ? 1 : 0);
}

int64_t sat_date_unix_ms(int64_t y, int m, int d, int hh, int mm, int ss)
{
    return sat_date_days_from_civil(y, m, d) * SAT_MS_PER_DAY +
           ((int64_t)hh * 3600 + (int64_t)mm * 60 + ss) * 1000;
}
