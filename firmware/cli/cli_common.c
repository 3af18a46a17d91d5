/*
 * cli_common.c - the helpers every `satchel` command uses (cli.h): exit
 * statuses for error codes, usage errors, opening the device, the PIN and
 * the store, resolving typed ids, option parsing and time formatting.
 *
 * The helpers print their own one-line "satchel: ..." errors and return
 * exit statuses; they keep nothing but what they open in struct app, which
 * cli_close_app releases.
 */
#define _POSIX_C_SOURCE 200809L

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "device_conf.h"
#include "hal_posix.h"
#include "sat_err.h"

/* ---- errors and exit codes ---------------------------------------------- */

int cli_exit_for(int err)
{
    switch (err) {
    case SAT_OK: return EXIT_OK;
    case SAT_ERR_KEYS_WRONG_PIN:
    case SAT_ERR_KEYS_LOCKED_OUT:
    case SAT_ERR_KEYS_ERASED:
    case SAT_ERR_KEYS_NOT_ENROLLED:
    case SAT_ERR_KEYS_BAD_PIN: return EXIT_PIN;
    case SAT_ERR_STORE_INVALID_NHS:
    case SAT_ERR_STORE_OUT_OF_RANGE:
    case SAT_ERR_STORE_MISSING_FIELD:
    case SAT_ERR_STORE_TOO_LONG:
    case SAT_ERR_STORE_INVALID:
    case SAT_ERR_STORE_NOT_ALLOWED: return EXIT_INVALID;
    case SAT_ERR_STORE_UNKNOWN_ID: return EXIT_NOT_FOUND;
    case SAT_ERR_STORE_CORRUPT:
    case SAT_ERR_KEYS_CORRUPT: return EXIT_DAMAGED;
    case SAT_ERR_SYNC_REVOKED: return EXIT_REVOKED;
    default: return EXIT_FAIL;
    }
}

int cli_usage_error(const char *fmt, const char *arg)
{
    fputs("satchel: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs(" (try --help)\n", stderr);
    return EXIT_USAGE;
}

/* Reports a store failure with the store's one-line reason. */
int cli_store_failed(struct app *a, int err)
{
    const char *msg = a->store ? store_errmsg(a->store) : "";
    fprintf(stderr, "satchel: %s\n", msg[0] ? msg : sat_strerror(err));
    return cli_exit_for(err);
}

/* ---- opening the device ------------------------------------------------- */

int cli_open_hal(struct app *a)
{
    int ret = hal_posix_open(&a->hal, a->data_dir);
    if (ret != SAT_OK) {
        fprintf(stderr, "satchel: cannot open data directory '%s': %s\n", a->data_dir,
                sat_strerror(ret));
        return EXIT_FAIL;
    }
    a->hal_open = 1;
    keys_init(&a->keys, &a->hal);
    return EXIT_OK;
}

void cli_close_app(struct app *a)
{
    store_close(a->store);
    a->store = NULL;
    keys_lock(&a->keys);
    if (a->hal_open)
        hal_posix_close(&a->hal);
    a->hal_open = 0;
}

int cli_get_pin(struct app *a, const char *file, const char *prompt, char pin[PIN_BUF_BYTES])
{
    char why[200];
    int ret = file ? pin_from_file(file, pin, why, sizeof why)
                   : pin_from_tty(prompt, pin, why, sizeof why);
    (void)a;
    if (ret != 0) {
        fprintf(stderr, "satchel: %s\n", why);
        return EXIT_PIN;
    }
    return EXIT_OK;
}

int cli_report_pin_error(int ret, uint64_t retry_ms)
{
    if (ret == SAT_ERR_KEYS_LOCKED_OUT)
        fprintf(stderr, "satchel: too many wrong PINs: try again in %llu seconds\n",
                (unsigned long long)((retry_ms + 999) / 1000));
    else
        fprintf(stderr, "satchel: %s\n", sat_strerror(ret));
    return cli_exit_for(ret);
}

int cli_unlock(struct app *a)
{
    char pin[PIN_BUF_BYTES];
    uint64_t retry_ms = 0;
    int rc;
    int ret;
    if (!keys_enrolled(&a->hal))
        return cli_report_pin_error(SAT_ERR_KEYS_NOT_ENROLLED, 0);
    rc = cli_get_pin(a, a->pin_file, "PIN: ", pin);
    if (rc != EXIT_OK)
        return rc;
    ret = keys_unlock(&a->keys, pin, &retry_ms);
    pin_wipe(pin);
    if (ret != SAT_OK) {
        if (ret == SAT_ERR_KEYS_WRONG_PIN) {
            uint64_t n = 0;
            if (keys_failures(&a->hal, &n) == SAT_OK)
                fprintf(stderr,
                        "satchel: wrong PIN (%llu wrong in a row; the keys are erased at %d)\n",
                        (unsigned long long)n, KEYS_MAX_ATTEMPTS);
            else
                fprintf(stderr, "satchel: wrong PIN (the keys are erased after %d in a row)\n",
                        KEYS_MAX_ATTEMPTS);
            return EXIT_PIN;
        }
        return cli_report_pin_error(ret, retry_ms);
    }
    return EXIT_OK;
}

/* store_open, saying why on stderr when it fails (the store's own reason,
 * e.g. a layout from a newer build, else the code's text). */
int cli_open_caseload(struct app *a, const char *verb)
{
    char why[STORE_ERRMSG_BYTES];
    int ret = store_open(&a->hal, &a->keys, &a->store, why);
    if (ret != SAT_OK)
        fprintf(stderr, "satchel: cannot %s the caseload: %s\n", verb,
                why[0] ? why : sat_strerror(ret));
    return ret;
}

/* A provisioned device writes under the id of its certificate. */
int cli_adopt_provisioned_id(struct app *a)
{
    struct device_conf conf;
    struct store_id id;
    int ret = device_conf_read(&a->hal, &conf);
    if (ret == SAT_ERR_NOT_FOUND)
        return EXIT_OK; /* not provisioned yet */
    if (ret != SAT_OK) {
        fprintf(stderr, "satchel: device.conf in %s has no valid device_id\n", a->data_dir);
        return EXIT_FAIL;
    }
    memcpy(id.b, conf.device_id, STORE_ID_BYTES);
    ret = store_adopt_device_id(a->store, &id);
    return ret == SAT_OK ? EXIT_OK : cli_store_failed(a, ret);
}

int cli_open_store(struct app *a)
{
    int rc = cli_open_hal(a);
    int ret;
    if (rc == EXIT_OK)
        rc = cli_unlock(a);
    if (rc != EXIT_OK)
        return rc;
    ret = cli_open_caseload(a, "open");
    if (ret != SAT_OK)
        return cli_exit_for(ret);
    return cli_adopt_provisioned_id(a);
}

int cli_resolve(struct app *a, enum record_kind kind, const char *hex, struct store_id *id)
{
    int ret = store_resolve_id(a->store, kind, hex, id);
    return ret == SAT_OK ? EXIT_OK : cli_store_failed(a, ret);
}

/* ---- option parsing and output ------------------------------------------ */

int cli_decimal(const char *s, size_t max_digits)
{
    size_t n = 0;
    if (*s == '-')
        s++;
    for (; s[n]; n++)
        if (s[n] < '0' || s[n] > '9')
            return 0;
    return n >= 1 && n <= max_digits;
}

int cli_parse_int(const char *s, const char *what, int *out)
{
    long v = 0;
    /* strtol alone would take " +5", "5 " and more digits than a long. */
    if (cli_decimal(s, 7))
        v = strtol(s, NULL, 10);
    if (!cli_decimal(s, 7) || v < -1000000 || v > 1000000) {
        fprintf(stderr, "satchel: %s must be a whole number, not '%s'\n", what, s);
        return EXIT_USAGE;
    }
    *out = (int)v;
    return EXIT_OK;
}

const char *cli_news2_text(const struct store_obs *o, char out[CLI_NEWS2_TEXT_BYTES])
{
    if (o->news2_incomplete) {
        snprintf(out, CLI_NEWS2_TEXT_BYTES,
                 "incomplete: %s missing or out of range (treat as high risk until measured)",
                 news2_field_name(o->news2_incomplete));
        return out;
    }
    if (o->news2_carried != o->news2_score)
        snprintf(out, CLI_NEWS2_TEXT_BYTES, "%d (%s) [its author's tablet said %d: not used]",
                 o->news2_score, news2_risk_name(o->news2_risk), o->news2_carried);
    else
        snprintf(out, CLI_NEWS2_TEXT_BYTES, "%d (%s)", o->news2_score,
                 news2_risk_name(o->news2_risk));
    return out;
}

void cli_format_time(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || !gmtime_r(&t, &tm)) {
        snprintf(out, 32, "-");
        return;
    }
    strftime(out, 32, "%Y-%m-%dT%H:%MZ", &tm);
}

/* Runs getopt_long over a subcommand's own arguments (argv[0] = its name).
 * Returns the option, -1 at the end, or '?' after printing the error. */
int cli_next_opt(int argc, char **argv, const struct option *opts)
{
    int c = getopt_long(argc, argv, ":", opts, NULL);
    if (c == '?') {
        cli_usage_error("unknown option '%s'", argv[optind - 1]);
        return '?';
    }
    if (c == ':') {
        cli_usage_error("option '%s' needs an argument", argv[optind - 1]);
        return '?';
    }
    return c;
}

void cli_reset_getopt(void)
{
    optind = 0; /* GNU getopt: reinitialise for a new argument vector */
}
