/*
 * main.c - the `satchel` program: the nurse's tablet firmware driven from a
 * command line, on the POSIX HAL (an ARM Linux tablet or a developer's PC).
 *
 * Every command that touches records asks for the PIN (from --pin-file or
 * the terminal, never from argv), unlocks the data key, does its work and
 * locks again (keys wiped from memory) before it exits.
 *
 * Exit status (also in --help and README.md):
 *   0 success            3 PIN refused (wrong, locked out, erased, none set)
 *   1 the command failed 4 invalid record data (nothing was written)
 *   2 usage error        5 no such record      6 stored data damaged/tampered
 */
#define _POSIX_C_SOURCE 200809L

#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "device.h"
#include "hal_posix.h"
#include "keys.h"
#include "pin_prompt.h"
#include "sat_proto.h"
#include "pki.h"
#include "sat_date.h"
#include "sat_hex.h"
#include "sat_hostport.h"
#include "sat_wipe.h"
#include "store.h"
#include "sync_glue.h"

enum exit_code {
    EXIT_OK = 0,
    EXIT_FAIL = 1,
    EXIT_USAGE = 2,
    EXIT_PIN = 3,
    EXIT_INVALID = 4,
    EXIT_NOT_FOUND = 5,
    EXIT_DAMAGED = 6,
    EXIT_REVOKED = 7
};

static const char usage_text[] =
    "Usage: satchel [--data DIR] [--pin-file FILE] COMMAND [ARGS]\n"
    "       satchel --help | --version\n"
    "\n"
    "Satchel keeps a community nurse's caseload on her tablet, encrypted,\n"
    "and syncs it with the team's hub when there is a signal.\n"
    "\n"
    "Options:\n"
    "  -d, --data DIR        the device's data directory (default: ./satchel-data)\n"
    "  -p, --pin-file FILE   read the PIN from the first line of FILE instead of\n"
    "                        asking on the terminal (a PIN is never an argument)\n"
    "  -h, --help            show this help and exit\n"
    "  -V, --version         show the firmware and protocol versions and exit\n"
    "\n"
    "Commands (IDs may be abbreviated to 6 or more leading hex digits):\n"
    "  enrol [--kdf-iterations N] [--recovery-pub FILE]\n"
    "                        set this device's PIN and create the encrypted store\n"
    "  unlock                check the PIN; show wrong-PIN count (every command\n"
    "                        unlocks itself and locks again when it ends)\n"
    "  lock                  nothing stays unlocked between commands: confirms it\n"
    "  change-pin --new-pin-file FILE | (asked on the terminal)\n"
    "  recover --recovery-key FILE   fleet manager: set a new PIN (from --pin-file\n"
    "                        or the terminal) with the fleet's recovery key, keeping\n"
    "                        every record; works after a wrong-PIN erase\n"
    "  patient add --nhs N --given NAME --family NAME --dob YYYY-MM-DD\n"
    "              --address TEXT [--postcode P] [--team T]\n"
    "  patient update ID [--given|--family|--dob|--address|--postcode|--team V]\n"
    "  patient show ID       the patient with visits, observations, notes, tasks\n"
    "  patient list          every patient on this device\n"
    "  patient delete ID\n"
    "  visit start PATIENT [--reason TEXT]\n"
    "  visit end VISIT\n"
    "  obs add PATIENT --resp N --spo2 N [--scale 1|2] (--air | --oxygen)\n"
    "          --sbp N --pulse N --acvpu A|C|V|P|U --temp DEG [--visit V]\n"
    "          [--amends OBS]       record vital signs; prints the NEWS2 score\n"
    "  note add PATIENT (--text TEXT | --text-file FILE) [--visit V]\n"
    "  note amend NOTE (--text TEXT | --text-file FILE)  a correcting note\n"
    "  task add PATIENT --title TEXT [--due YYYY-MM-DD[THH:MM]]\n"
    "  task done TASK\n"
    "  export --json [--patient ID]  the caseload (or one patient) as JSON\n"
    "  sync --hub HOST:PORT [--timeout SECONDS]\n"
    "                        one sync session with the hub over mutual TLS: push\n"
    "                        this device's changes, pull the team's; prints what\n"
    "                        moved (needs 'satchelctl device provision' first)\n"
    "  conflicts             concurrent edits kept for a person to review\n"
    "  info                  the device: data directory, files, boot slot, battery\n"
    "\n"
    "Commands that create a record print its id on the first line.\n"
    "Exit status: 0 success, 1 the command failed, 2 usage error, 3 PIN refused\n"
    "(wrong, locked out, erased, or no PIN set), 4 invalid record data (nothing\n"
    "was written), 5 no such record, 6 stored data damaged or tampered with,\n"
    "7 the hub revoked this device (its records and keys were wiped).\n";

struct app {
    const char *data_dir;
    const char *pin_file;
    struct hal hal;
    int hal_open;
    struct keys keys;
    struct store *store;
};

/* ---- errors and exit codes ---------------------------------------------- */

static int exit_for(int err)
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

static int usage_error(const char *fmt, const char *arg)
{
    fputs("satchel: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs(" (try --help)\n", stderr);
    return EXIT_USAGE;
}

/* Reports a store failure with the store's one-line reason. */
static int store_failed(struct app *a, int err)
{
    const char *msg = a->store ? store_errmsg(a->store) : "";
    fprintf(stderr, "satchel: %s\n", msg[0] ? msg : sat_strerror(err));
    return exit_for(err);
}

/* ---- opening the device ------------------------------------------------- */

static int open_hal(struct app *a)
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

static void close_app(struct app *a)
{
    store_close(a->store);
    a->store = NULL;
    keys_lock(&a->keys);
    if (a->hal_open)
        hal_posix_close(&a->hal);
    a->hal_open = 0;
}

static int get_pin(struct app *a, const char *file, const char *prompt, char pin[PIN_BUF_BYTES])
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

/* A new PIN: from file, or asked twice on the terminal (must match). */
static int get_new_pin(struct app *a, const char *file, char pin[PIN_BUF_BYTES])
{
    char again[PIN_BUF_BYTES];
    int rc = get_pin(a, file, "New PIN: ", pin);
    if (rc != EXIT_OK || file)
        return rc;
    rc = get_pin(a, NULL, "Repeat the new PIN: ", again);
    if (rc == EXIT_OK && strcmp(pin, again) != 0) {
        fprintf(stderr, "satchel: the two PINs differ; nothing was changed\n");
        rc = EXIT_PIN;
    }
    pin_wipe(again);
    if (rc != EXIT_OK)
        pin_wipe(pin);
    return rc;
}

static int report_pin_error(int ret, uint64_t retry_ms)
{
    if (ret == SAT_ERR_KEYS_LOCKED_OUT)
        fprintf(stderr, "satchel: too many wrong PINs: try again in %llu seconds\n",
                (unsigned long long)((retry_ms + 999) / 1000));
    else
        fprintf(stderr, "satchel: %s\n", sat_strerror(ret));
    return exit_for(ret);
}

static int unlock(struct app *a)
{
    char pin[PIN_BUF_BYTES];
    uint64_t retry_ms = 0;
    int rc;
    int ret;
    if (!keys_enrolled(&a->hal))
        return report_pin_error(SAT_ERR_KEYS_NOT_ENROLLED, 0);
    rc = get_pin(a, a->pin_file, "PIN: ", pin);
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
        return report_pin_error(ret, retry_ms);
    }
    return EXIT_OK;
}

static int adopt_provisioned_id(struct app *a);

/* store_open, saying why on stderr when it fails (the store's own reason,
 * e.g. a layout from a newer build, else the code's text). */
static int open_caseload(struct app *a, const char *verb)
{
    char why[STORE_ERRMSG_BYTES];
    int ret = store_open(&a->hal, &a->keys, &a->store, why);
    if (ret != SAT_OK)
        fprintf(stderr, "satchel: cannot %s the caseload: %s\n", verb,
                why[0] ? why : sat_strerror(ret));
    return ret;
}

static int open_store(struct app *a)
{
    int rc = open_hal(a);
    int ret;
    if (rc == EXIT_OK)
        rc = unlock(a);
    if (rc != EXIT_OK)
        return rc;
    ret = open_caseload(a, "open");
    if (ret != SAT_OK)
        return exit_for(ret);
    return adopt_provisioned_id(a);
}

static int resolve(struct app *a, enum record_kind kind, const char *hex, struct store_id *id)
{
    int ret = store_resolve_id(a->store, kind, hex, id);
    return ret == SAT_OK ? EXIT_OK : store_failed(a, ret);
}

/* ---- option parsing helpers --------------------------------------------- */

/* Copies src into a text field, or fails with a usage-style message. */
static int set_text(char *dst, size_t cap, const char *src, const char *what)
{
    if (strlen(src) >= cap) {
        fprintf(stderr, "satchel: %s is too long (at most %zu characters)\n", what, cap - 1);
        return EXIT_INVALID;
    }
    memcpy(dst, src, strlen(src) + 1);
    return EXIT_OK;
}

static int parse_int(const char *s, const char *what, int *out)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < -1000000 || v > 1000000) {
        fprintf(stderr, "satchel: %s must be a whole number, not '%s'\n", what, s);
        return EXIT_USAGE;
    }
    *out = (int)v;
    return EXIT_OK;
}

/* "37.2" → 372 tenths. */
static int parse_temp(const char *s, int *out)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (!*s || *end || v < -100 || v > 100) {
        fprintf(stderr, "satchel: --temp must be degrees Celsius like 37.2, not '%s'\n", s);
        return EXIT_USAGE;
    }
    *out = (int)(v * 10 + (v < 0 ? -0.5 : 0.5));
    return EXIT_OK;
}

/* "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM" (UTC) → Unix ms. */
static int parse_due(const char *s, int64_t *out)
{
    int y = 0, mo = 0, d = 0, h = 0, mi = 0;
    int n = 0;
    if ((sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || (s[n] && s[n] != 'T')) ||
        (s[n] == 'T' && (sscanf(s + n, "T%2d:%2d", &h, &mi) != 2 || strlen(s + n) != 6)) ||
        y < 1970 || y > 9999 || !sat_date_valid(y, mo, d) || h > 23 || mi > 59) {
        fprintf(stderr, "satchel: --due must be YYYY-MM-DD or YYYY-MM-DDTHH:MM, not '%s'\n", s);
        return EXIT_USAGE;
    }
    *out = sat_date_unix_ms(y, mo, d, h, mi, 0);
    return EXIT_OK;
}

static void format_time(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || !gmtime_r(&t, &tm)) {
        snprintf(out, 32, "-");
        return;
    }
    strftime(out, 32, "%Y-%m-%dT%H:%MZ", &tm);
}

static int read_text_file(const char *path, char *out, size_t cap)
{
    FILE *fp = fopen(path, "re");
    size_t n;
    if (!fp) {
        fprintf(stderr, "satchel: cannot read '%s'\n", path);
        return EXIT_FAIL;
    }
    n = fread(out, 1, cap, fp);
    fclose(fp);
    if (n == cap) {
        fprintf(stderr, "satchel: '%s' is too long for a note (at most %zu characters)\n", path,
                cap - 1);
        return EXIT_INVALID;
    }
    out[n] = '\0';
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = '\0';
    return EXIT_OK;
}

/* Runs getopt_long over a subcommand's own arguments (argv[0] = its name).
 * Returns the option, -1 at the end, or '?' after printing the error. */
static int next_opt(int argc, char **argv, const struct option *opts)
{
    int c = getopt_long(argc, argv, ":", opts, NULL);
    if (c == '?') {
        usage_error("unknown option '%s'", argv[optind - 1]);
        return '?';
    }
    if (c == ':') {
        usage_error("option '%s' needs an argument", argv[optind - 1]);
        return '?';
    }
    return c;
}

static void reset_getopt(void)
{
    optind = 0; /* GNU getopt: reinitialise for a new argument vector */
}

/* ---- commands: keys ----------------------------------------------------- */

static int read_hex_file(const char *path, uint8_t *out, size_t n, const char *what)
{
    FILE *fp = fopen(path, "re");
    char hex[2 * KEYS_RECOVERY_PUB_BYTES + 4] = { 0 };
    size_t len;
    int ok;
    if (!fp) {
        fprintf(stderr, "satchel: cannot read %s '%s'\n", what, path);
        return EXIT_FAIL;
    }
    len = fread(hex, 1, sizeof hex - 1, fp);
    fclose(fp);
    while (len > 0 && (hex[len - 1] == '\n' || hex[len - 1] == '\r'))
        hex[--len] = '\0';
    ok = sat_hex_decode(hex, out, n) == SAT_OK;
    sat_wipe(hex, sizeof hex);
    if (!ok) {
        fprintf(stderr, "satchel: %s '%s' must hold %zu hex digits\n", what, path, 2 * n);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

static int cmd_enrol(struct app *a, int argc, char **argv)
{
    static const struct option opts[] = { { "kdf-iterations", required_argument, NULL, 'i' },
                                          { "recovery-pub", required_argument, NULL, 'r' },
                                          { NULL, 0, NULL, 0 } };
    struct keys_enrol_opts eo = { 0, NULL };
    uint8_t pub[KEYS_RECOVERY_PUB_BYTES];
    char pin[PIN_BUF_BYTES];
    int c;
    int rc;
    int ret;
    while ((c = next_opt(argc, argv, opts)) != -1) {
        int v = 0;
        if (c == '?')
            return EXIT_USAGE;
        if (c == 'i') {
            if (parse_int(optarg, "--kdf-iterations", &v) != EXIT_OK || v < 1000)
                return usage_error("--kdf-iterations must be at least 1000, not '%s'", optarg);
            eo.iterations = (uint32_t)v;
        } else if (c == 'r') {
            rc = read_hex_file(optarg, pub, sizeof pub, "recovery public key");
            if (rc != EXIT_OK)
                return rc;
            eo.recovery_pub = pub;
        }
    }
    if (optind != argc)
        return usage_error("'enrol' takes no argument '%s'", argv[optind]);
    rc = open_hal(a);
    if (rc != EXIT_OK)
        return rc;
    if (keys_enrolled(&a->hal)) {
        fprintf(stderr, "satchel: this device is already enrolled (use change-pin)\n");
        return EXIT_FAIL;
    }
    rc = get_new_pin(a, a->pin_file, pin);
    if (rc != EXIT_OK)
        return rc;
    fprintf(stderr, "satchel: enrolling (deriving the PIN key takes a moment)...\n");
    ret = keys_enrol(&a->keys, pin, &eo);
    pin_wipe(pin);
    if (ret != SAT_OK)
        return report_pin_error(ret, 0);
    ret = open_caseload(a, "create");
    if (ret != SAT_OK)
        return exit_for(ret);
    printf("enrolled: the caseload in %s is encrypted and locked%s\n", a->data_dir,
           eo.recovery_pub ? "; fleet recovery is set up" : "");
    return EXIT_OK;
}

static int cmd_unlock(struct app *a, int argc, char **argv)
{
    int rc;
    (void)argv;
    if (argc != 1)
        return usage_error("'unlock' takes no argument '%s'", argv[1]);
    rc = open_hal(a);
    if (rc == EXIT_OK)
        rc = unlock(a);
    if (rc == EXIT_OK)
        printf("PIN accepted; wrong-PIN count reset to 0\n");
    return rc;
}

static int cmd_lock(struct app *a, int argc, char **argv)
{
    (void)a;
    if (argc != 1)
        return usage_error("'lock' takes no argument '%s'", argv[1]);
    printf("locked: no key stays in memory between satchel commands\n");
    return EXIT_OK;
}

static int cmd_change_pin(struct app *a, int argc, char **argv)
{
    static const struct option opts[] = { { "new-pin-file", required_argument, NULL, 'n' },
                                          { NULL, 0, NULL, 0 } };
    const char *new_file = NULL;
    char old_pin[PIN_BUF_BYTES];
    char new_pin[PIN_BUF_BYTES];
    uint64_t retry_ms = 0;
    int c;
    int rc;
    int ret;
    while ((c = next_opt(argc, argv, opts)) != -1) {
        if (c == '?')
            return EXIT_USAGE;
        new_file = optarg;
    }
    if (optind != argc)
        return usage_error("'change-pin' takes no argument '%s'", argv[optind]);
    rc = open_hal(a);
    if (rc != EXIT_OK)
        return rc;
    if (!keys_enrolled(&a->hal))
        return report_pin_error(SAT_ERR_KEYS_NOT_ENROLLED, 0);
    rc = get_pin(a, a->pin_file, "Current PIN: ", old_pin);
    if (rc != EXIT_OK)
        return rc;
    rc = get_new_pin(a, new_file, new_pin);
    if (rc != EXIT_OK) {
        pin_wipe(old_pin);
        return rc;
    }
    ret = keys_change_pin(&a->keys, old_pin, new_pin, &retry_ms);
    pin_wipe(old_pin);
    pin_wipe(new_pin);
    if (ret != SAT_OK)
        return report_pin_error(ret, retry_ms);
    printf("PIN changed; the records were not re-encrypted (same data key)\n");
    return EXIT_OK;
}

static int cmd_recover(struct app *a, int argc, char **argv)
{
    static const struct option opts[] = { { "recovery-key", required_argument, NULL, 'k' },
                                          { NULL, 0, NULL, 0 } };
    const char *key_file = NULL;
    uint8_t priv[KEYS_RECOVERY_PRIV_BYTES];
    char pin[PIN_BUF_BYTES];
    int c;
    int rc;
    int ret;
    while ((c = next_opt(argc, argv, opts)) != -1) {
        if (c == '?')
            return EXIT_USAGE;
        key_file = optarg;
    }
    if (optind != argc)
        return usage_error("'recover' takes no argument '%s'", argv[optind]);
    if (!key_file)
        return usage_error("'recover' needs --recovery-key FILE (from satchelctl)%s", "");
    rc = read_hex_file(key_file, priv, sizeof priv, "recovery key");
    if (rc == EXIT_OK)
        rc = open_hal(a);
    if (rc == EXIT_OK)
        rc = get_new_pin(a, a->pin_file, pin);
    if (rc != EXIT_OK) {
        sat_wipe(priv, sizeof priv);
        return rc;
    }
    ret = keys_recover(&a->keys, priv, pin);
    sat_wipe(priv, sizeof priv);
    pin_wipe(pin);
    if (ret != SAT_OK)
        return report_pin_error(ret, 0);
    printf("recovered: the new PIN opens the caseload; no record was lost\n");
    return EXIT_OK;
}

/* ---- commands: patients ------------------------------------------------- */

enum patient_opt { PO_NHS = 1, PO_GIVEN, PO_FAMILY, PO_DOB, PO_ADDRESS, PO_POSTCODE, PO_TEAM };

static const struct option patient_opts[] = {
    { "nhs", required_argument, NULL, PO_NHS },
    { "given", required_argument, NULL, PO_GIVEN },
    { "family", required_argument, NULL, PO_FAMILY },
    { "dob", required_argument, NULL, PO_DOB },
    { "address", required_argument, NULL, PO_ADDRESS },
    { "postcode", required_argument, NULL, PO_POSTCODE },
    { "team", required_argument, NULL, PO_TEAM },
    { NULL, 0, NULL, 0 },
};

/* Applies --nhs/--given/... options to p. */
static int patient_fields(int argc, char **argv, struct store_patient *p)
{
    int c;
    while ((c = next_opt(argc, argv, patient_opts)) != -1) {
        int rc = EXIT_OK;
        switch (c) {
        case PO_NHS: {
            /* Printed numbers have spaces ("943 476 5919"): drop them here. */
            char digits[32];
            size_t n = 0;
            for (const char *s = optarg; *s && n < sizeof digits - 1; s++)
                if (*s != ' ')
                    digits[n++] = *s;
            digits[n] = '\0';
            rc = set_text(p->nhs_number, sizeof p->nhs_number, digits, "NHS number");
            if (rc != EXIT_OK)
                fprintf(stderr, "satchel: an NHS number has 10 digits\n");
            break;
        }
        case PO_GIVEN: rc = set_text(p->given_name, sizeof p->given_name, optarg, "given name"); break;
        case PO_FAMILY: rc = set_text(p->family_name, sizeof p->family_name, optarg, "family name"); break;
        case PO_DOB: rc = set_text(p->date_of_birth, sizeof p->date_of_birth, optarg, "date of birth"); break;
        case PO_ADDRESS: rc = set_text(p->address, sizeof p->address, optarg, "address"); break;
        case PO_POSTCODE: rc = set_text(p->postcode, sizeof p->postcode, optarg, "postcode"); break;
        case PO_TEAM: rc = set_text(p->team, sizeof p->team, optarg, "team"); break;
        default: return EXIT_USAGE;
        }
        if (rc != EXIT_OK)
            return rc;
    }
    return EXIT_OK;
}

static int print_patient_row(void *arg, const struct store_patient *p)
{
    char hex[STORE_ID_HEX_BYTES];
    char name[300];
    (void)arg;
    store_id_to_hex(&p->id, hex);
    snprintf(name, sizeof name, "%s, %s", p->family_name, p->given_name);
    printf("%.8s  %-30.30s %s  %.3s %.3s %.4s  %s\n", hex, name, p->date_of_birth,
           p->nhs_number, p->nhs_number + 3, p->nhs_number + 6, p->team[0] ? p->team : "-");
    return 0;
}

static int print_visit(void *arg, const struct store_visit *v)
{
    char hex[STORE_ID_HEX_BYTES];
    char t0[32];
    char t1[32];
    (void)arg;
    store_id_to_hex(&v->id, hex);
    format_time(v->started_ms, t0);
    format_time(v->ended_ms, t1);
    printf("  visit %.8s  %s .. %s  %s\n", hex, t0, v->ended_ms ? t1 : "(open)", v->reason);
    return 0;
}

static int print_obs(void *arg, const struct store_obs *o)
{
    static const char acvpu[] = "?ACVPU";
    char hex[STORE_ID_HEX_BYTES];
    char t[32];
    (void)arg;
    store_id_to_hex(&o->id, hex);
    format_time(o->taken_ms, t);
    printf("  obs %.8s  %s  RR %d SpO2 %d%% (scale %d, %s) BP %d HR %d %c T %d.%d"
           "  NEWS2 %d (%s)%s\n",
           hex, t, o->vitals.respiration_rate, o->vitals.spo2_pct, o->vitals.spo2_scale,
           o->vitals.on_oxygen ? "oxygen" : "air", o->vitals.systolic_bp, o->vitals.pulse,
           acvpu[o->vitals.consciousness >= 1 && o->vitals.consciousness <= 5
                     ? o->vitals.consciousness
                     : 0],
           o->vitals.temperature_dc / 10, o->vitals.temperature_dc % 10, o->news2_score,
           news2_risk_name(o->news2_risk), o->has_amends ? "  (amends an earlier one)" : "");
    return 0;
}

static int print_note(void *arg, const struct store_note *n)
{
    char hex[STORE_ID_HEX_BYTES];
    char amended[STORE_ID_HEX_BYTES];
    char t[32];
    (void)arg;
    store_id_to_hex(&n->id, hex);
    store_id_to_hex(&n->amends, amended);
    format_time(n->written_ms, t);
    if (n->has_amends)
        printf("  note %.8s  %s  (amends %.8s) %s\n", hex, t, amended, n->text);
    else
        printf("  note %.8s  %s  %s\n", hex, t, n->text);
    return 0;
}

static int print_task(void *arg, const struct store_task *t)
{
    char hex[STORE_ID_HEX_BYTES];
    char due[32];
    (void)arg;
    store_id_to_hex(&t->id, hex);
    format_time(t->due_ms, due);
    printf("  task %.8s  [%c] %s%s%s\n", hex, t->done ? 'x' : ' ', t->title,
           t->due_ms ? "  due " : "", t->due_ms ? due : "");
    return 0;
}

static int cmd_patient(struct app *a, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "";
    struct store_patient p;
    struct store_id id;
    char hex[STORE_ID_HEX_BYTES];
    int rc;
    int ret;
    memset(&p, 0, sizeof p);
    if (strcmp(sub, "add") == 0) {
        rc = patient_fields(argc - 1, argv + 1, &p);
        if (rc != EXIT_OK)
            return rc;
        if (optind != argc - 1)
            return usage_error("'patient add' takes no argument '%s'", argv[optind + 1]);
        rc = open_store(a);
        if (rc != EXIT_OK)
            return rc;
        ret = store_patient_add(a->store, &p);
        if (ret != SAT_OK)
            return store_failed(a, ret);
        store_id_to_hex(&p.id, hex);
        printf("%s\n", hex);
        return EXIT_OK;
    }
    if (strcmp(sub, "list") == 0) {
        if (argc != 2)
            return usage_error("'patient list' takes no argument '%s'", argv[2]);
        rc = open_store(a);
        if (rc != EXIT_OK)
            return rc;
        ret = store_patient_list(a->store, print_patient_row, NULL);
        return ret == SAT_OK ? EXIT_OK : store_failed(a, ret);
    }
    if (strcmp(sub, "show") == 0 || strcmp(sub, "delete") == 0 || strcmp(sub, "update") == 0) {
        if (argc < 3)
            return usage_error("'patient %s' needs a patient id", sub);
        if (strcmp(sub, "update") == 0) {
            /* Options first, so a bad one fails before asking for the PIN. */
            struct store_patient change;
            memset(&change, 0, sizeof change);
            rc = patient_fields(argc - 2, argv + 2, &change);
            if (rc != EXIT_OK)
                return rc;
            if (optind != argc - 2)
                return usage_error("'patient update' takes no argument '%s'", argv[optind + 2]);
            rc = open_store(a);
            if (rc == EXIT_OK)
                rc = resolve(a, RECORD_KIND_PATIENT, argv[2], &id);
            if (rc != EXIT_OK)
                return rc;
            ret = store_patient_get(a->store, &id, &p);
            if (ret != SAT_OK)
                return store_failed(a, ret);
#define TAKE(field) \
    if (change.field[0]) \
        memcpy(p.field, change.field, sizeof p.field)
            TAKE(nhs_number);
            TAKE(given_name);
            TAKE(family_name);
            TAKE(date_of_birth);
            TAKE(address);
            TAKE(postcode);
            TAKE(team);
#undef TAKE
            ret = store_patient_update(a->store, &p);
            if (ret != SAT_OK)
                return store_failed(a, ret);
            printf("updated\n");
            return EXIT_OK;
        }
        if (argc != 3)
            return usage_error("'patient %s' takes one id", sub);
        rc = open_store(a);
        if (rc == EXIT_OK)
            rc = resolve(a, RECORD_KIND_PATIENT, argv[2], &id);
        if (rc != EXIT_OK)
            return rc;
        if (strcmp(sub, "delete") == 0) {
            ret = store_delete(a->store, RECORD_KIND_PATIENT, &id);
            if (ret != SAT_OK)
                return store_failed(a, ret);
            printf("deleted\n");
            return EXIT_OK;
        }
        ret = store_patient_get(a->store, &id, &p);
        if (ret != SAT_OK)
            return store_failed(a, ret);
        store_id_to_hex(&p.id, hex);
        printf("patient %s%s\n", hex, p.deleted ? "  (deleted)" : "");
        printf("  name: %s %s\n  born: %s\n  NHS number: %.3s %.3s %.4s\n", p.given_name,
               p.family_name, p.date_of_birth, p.nhs_number, p.nhs_number + 3,
               p.nhs_number + 6);
        printf("  address: %s%s%s\n  team: %s\n", p.address, p.postcode[0] ? ", " : "",
               p.postcode, p.team[0] ? p.team : "-");
        ret = store_visit_list(a->store, &id, print_visit, NULL);
        if (ret == SAT_OK)
            ret = store_obs_list(a->store, &id, print_obs, NULL);
        if (ret == SAT_OK)
            ret = store_note_list(a->store, &id, print_note, NULL);
        if (ret == SAT_OK)
            ret = store_task_list(a->store, &id, print_task, NULL);
        return ret == SAT_OK ? EXIT_OK : store_failed(a, ret);
    }
    return usage_error("unknown patient command '%s' (add, update, show, list, delete)", sub);
}

/* ---- commands: visits, observations, notes, tasks ----------------------- */

static int cmd_visit(struct app *a, int argc, char **argv)
{
    static const struct option opts[] = { { "reason", required_argument, NULL, 'r' },
                                          { NULL, 0, NULL, 0 } };
    const char *sub = argc > 1 ? argv[1] : "";
    const char *reason = "";
    struct store_id id;
    struct store_visit v;
    char hex[STORE_ID_HEX_BYTES];
    int c;
    int rc;
    int ret;
    if (strcmp(sub, "start") != 0 && strcmp(sub, "end") != 0)
        return usage_error("unknown visit command '%s' (start, end)", sub);
    reset_getopt();
    while ((c = next_opt(argc - 1, argv + 1, opts)) != -1) {
        if (c == '?' || strcmp(sub, "end") == 0)
            return c == '?' ? EXIT_USAGE : usage_error("'visit end' takes no options%s", "");
        reason = optarg;
    }
    if (optind != argc - 2)
        return usage_error("'visit %s' needs exactly one id", sub);
    rc = open_store(a);
    if (rc == EXIT_OK)
        rc = resolve(a, strcmp(sub, "start") == 0 ? RECORD_KIND_PATIENT : RECORD_KIND_VISIT,
                     argv[optind + 1], &id);
    if (rc != EXIT_OK)
        return rc;
    ret = strcmp(sub, "start") == 0 ? store_visit_start(a->store, &id, reason, &v)
                                    : store_visit_end(a->store, &id, &v);
    if (ret != SAT_OK)
        return store_failed(a, ret);
    store_id_to_hex(&v.id, hex);
    printf("%s\n", hex);
    return EXIT_OK;
}

static int cmd_obs(struct app *a, int argc, char **argv)
{
    enum { O_RESP = 1, O_SPO2, O_SCALE, O_AIR, O_OXYGEN, O_SBP, O_PULSE, O_ACVPU, O_TEMP,
           O_VISIT, O_AMENDS };
    static const struct option opts[] = {
        { "resp", required_argument, NULL, O_RESP },   { "spo2", required_argument, NULL, O_SPO2 },
        { "scale", required_argument, NULL, O_SCALE }, { "air", no_argument, NULL, O_AIR },
        { "oxygen", no_argument, NULL, O_OXYGEN },     { "sbp", required_argument, NULL, O_SBP },
        { "pulse", required_argument, NULL, O_PULSE }, { "acvpu", required_argument, NULL, O_ACVPU },
        { "temp", required_argument, NULL, O_TEMP },   { "visit", required_argument, NULL, O_VISIT },
        { "amends", required_argument, NULL, O_AMENDS }, { NULL, 0, NULL, 0 },
    };
    struct store_obs o;
    const char *visit = NULL;
    const char *amends = NULL;
    int air_or_oxygen = -1;
    int have[O_AMENDS + 1] = { 0 };
    char hex[STORE_ID_HEX_BYTES];
    int c;
    int rc = EXIT_OK;
    int ret;
    if (argc < 2 || strcmp(argv[1], "add") != 0)
        return usage_error("unknown obs command '%s' (add)", argc > 1 ? argv[1] : "");
    memset(&o, 0, sizeof o);
    o.vitals.spo2_scale = 1;
    reset_getopt();
    while (rc == EXIT_OK && (c = next_opt(argc - 1, argv + 1, opts)) != -1) {
        if (c == '?')
            return EXIT_USAGE;
        have[c] = 1;
        switch (c) {
        case O_RESP: rc = parse_int(optarg, "--resp", &o.vitals.respiration_rate); break;
        case O_SPO2: rc = parse_int(optarg, "--spo2", &o.vitals.spo2_pct); break;
        case O_SCALE: rc = parse_int(optarg, "--scale", &o.vitals.spo2_scale); break;
        case O_AIR: air_or_oxygen = 0; break;
        case O_OXYGEN: air_or_oxygen = 1; break;
        case O_SBP: rc = parse_int(optarg, "--sbp", &o.vitals.systolic_bp); break;
        case O_PULSE: rc = parse_int(optarg, "--pulse", &o.vitals.pulse); break;
        case O_ACVPU: {
            const char *p = strchr("ACVPU", optarg[0]);
            if (!p || optarg[0] == '\0' || optarg[1] != '\0')
                return usage_error("--acvpu must be one of A, C, V, P, U, not '%s'", optarg);
            o.vitals.consciousness = (int)(p - "ACVPU") + 1;
            break;
        }
        case O_TEMP: rc = parse_temp(optarg, &o.vitals.temperature_dc); break;
        case O_VISIT: visit = optarg; break;
        case O_AMENDS: amends = optarg; break;
        default: return EXIT_USAGE;
        }
    }
    if (rc != EXIT_OK)
        return rc;
    if (optind != argc - 2)
        return usage_error("'obs add' needs exactly one patient id%s", "");
    {
        static const struct { int opt; const char *name; } required[] = {
            { O_RESP, "--resp" }, { O_SPO2, "--spo2" }, { O_SBP, "--sbp" },
            { O_PULSE, "--pulse" }, { O_ACVPU, "--acvpu" }, { O_TEMP, "--temp" },
        };
        for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
            if (!have[required[i].opt])
                return usage_error("'obs add' needs %s (all NEWS2 vital signs)", required[i].name);
        if (air_or_oxygen < 0)
            return usage_error("'obs add' needs --air or --oxygen%s", "");
    }
    o.vitals.on_oxygen = air_or_oxygen;
    rc = open_store(a);
    if (rc == EXIT_OK)
        rc = resolve(a, RECORD_KIND_PATIENT, argv[optind + 1], &o.patient_id);
    if (rc == EXIT_OK && visit) {
        rc = resolve(a, RECORD_KIND_VISIT, visit, &o.visit_id);
        o.has_visit = 1;
    }
    if (rc == EXIT_OK && amends) {
        rc = resolve(a, RECORD_KIND_OBSERVATION, amends, &o.amends);
        o.has_amends = 1;
    }
    if (rc != EXIT_OK)
        return rc;
    ret = store_obs_add(a->store, &o);
    if (ret != SAT_OK)
        return store_failed(a, ret);
    store_id_to_hex(&o.id, hex);
    printf("%s\nNEWS2 score: %d (%s risk)\n", hex, o.news2_score, news2_risk_name(o.news2_risk));
    return EXIT_OK;
}

static int cmd_note(struct app *a, int argc, char **argv)
{
    static const struct option opts[] = { { "text", required_argument, NULL, 't' },
                                          { "text-file", required_argument, NULL, 'f' },
                                          { "visit", required_argument, NULL, 'v' },
                                          { NULL, 0, NULL, 0 } };
    const char *sub = argc > 1 ? argv[1] : "";
    const char *text = NULL;
    const char *text_file = NULL;
    const char *visit = NULL;
    struct store_note *n;
    char hex[STORE_ID_HEX_BYTES];
    int amend = strcmp(sub, "amend") == 0;
    int c;
    int rc;
    int ret;
    if (!amend && strcmp(sub, "add") != 0)
        return usage_error("unknown note command '%s' (add, amend)", sub);
    reset_getopt();
    while ((c = next_opt(argc - 1, argv + 1, opts)) != -1) {
        if (c == '?')
            return EXIT_USAGE;
        if (c == 't')
            text = optarg;
        else if (c == 'f')
            text_file = optarg;
        else if (amend)
            return usage_error("'note amend' keeps the visit of the note it amends%s", "");
        else
            visit = optarg;
    }
    if (optind != argc - 2)
        return usage_error("'note %s' needs exactly one id", sub);
    if (!text == !text_file)
        return usage_error("'note %s' needs --text TEXT or --text-file FILE", sub);
    n = calloc(1, sizeof *n);
    if (!n)
        return EXIT_FAIL;
    rc = text ? set_text(n->text, sizeof n->text, text, "note text")
              : read_text_file(text_file, n->text, sizeof n->text);
    if (rc == EXIT_OK)
        rc = open_store(a);
    if (rc == EXIT_OK && amend) {
        struct store_note *old = calloc(1, sizeof *old);
        rc = old ? resolve(a, RECORD_KIND_CARE_NOTE, argv[optind + 1], &n->amends) : EXIT_FAIL;
        if (rc == EXIT_OK) {
            ret = store_note_get(a->store, &n->amends, old);
            rc = ret == SAT_OK ? EXIT_OK : store_failed(a, ret);
        }
        if (rc == EXIT_OK) {
            n->has_amends = 1;
            n->patient_id = old->patient_id;
            n->has_visit = old->has_visit;
            n->visit_id = old->visit_id;
        }
        free(old);
    } else if (rc == EXIT_OK) {
        rc = resolve(a, RECORD_KIND_PATIENT, argv[optind + 1], &n->patient_id);
        if (rc == EXIT_OK && visit) {
            rc = resolve(a, RECORD_KIND_VISIT, visit, &n->visit_id);
            n->has_visit = 1;
        }
    }
    if (rc == EXIT_OK) {
        ret = store_note_add(a->store, n);
        rc = ret == SAT_OK ? EXIT_OK : store_failed(a, ret);
    }
    if (rc == EXIT_OK) {
        store_id_to_hex(&n->id, hex);
        printf("%s\n", hex);
    }
    free(n);
    return rc;
}

static int cmd_task(struct app *a, int argc, char **argv)
{
    static const struct option opts[] = { { "title", required_argument, NULL, 't' },
                                          { "due", required_argument, NULL, 'd' },
                                          { NULL, 0, NULL, 0 } };
    const char *sub = argc > 1 ? argv[1] : "";
    struct store_task t;
    struct store_id id;
    char hex[STORE_ID_HEX_BYTES];
    int c;
    int rc = EXIT_OK;
    int ret;
    int have_title = 0;
    memset(&t, 0, sizeof t);
    if (strcmp(sub, "add") != 0 && strcmp(sub, "done") != 0)
        return usage_error("unknown task command '%s' (add, done)", sub);
    reset_getopt();
    while (rc == EXIT_OK && (c = next_opt(argc - 1, argv + 1, opts)) != -1) {
        if (c == '?')
            return EXIT_USAGE;
        if (strcmp(sub, "done") == 0)
            return usage_error("'task done' takes no options%s", "");
        if (c == 't') {
            rc = set_text(t.title, sizeof t.title, optarg, "task title");
            have_title = 1;
        } else {
            rc = parse_due(optarg, &t.due_ms);
        }
    }
    if (rc != EXIT_OK)
        return rc;
    if (optind != argc - 2)
        return usage_error("'task %s' needs exactly one id", sub);
    if (strcmp(sub, "add") == 0 && !have_title)
        return usage_error("'task add' needs --title TEXT%s", "");
    rc = open_store(a);
    if (rc != EXIT_OK)
        return rc;
    if (strcmp(sub, "add") == 0) {
        rc = resolve(a, RECORD_KIND_PATIENT, argv[optind + 1], &t.patient_id);
        if (rc != EXIT_OK)
            return rc;
        ret = store_task_add(a->store, &t);
        if (ret != SAT_OK)
            return store_failed(a, ret);
        store_id_to_hex(&t.id, hex);
        printf("%s\n", hex);
        return EXIT_OK;
    }
    rc = resolve(a, RECORD_KIND_TASK, argv[optind + 1], &id);
    if (rc != EXIT_OK)
        return rc;
    ret = store_task_done(a->store, &id);
    if (ret != SAT_OK)
        return store_failed(a, ret);
    printf("done\n");
    return EXIT_OK;
}

/* ---- export ------------------------------------------------------------- */

static json_object *json_id(const struct store_id *id)
{
    char hex[STORE_ID_HEX_BYTES];
    store_id_to_hex(id, hex);
    return json_object_new_string(hex);
}

static json_object *json_time(int64_t ms)
{
    char t[32];
    if (ms <= 0)
        return NULL;
    format_time(ms, t);
    return json_object_new_string(t);
}

static int json_visit(void *arg, const struct store_visit *v)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_id(&v->id));
    json_object_object_add(o, "started", json_time(v->started_ms));
    json_object_object_add(o, "ended", json_time(v->ended_ms));
    json_object_object_add(o, "reason", json_object_new_string(v->reason));
    return json_object_array_add(arg, o);
}

static int json_obs(void *arg, const struct store_obs *o)
{
    static const char *const acvpu[] = { "", "A", "C", "V", "P", "U" };
    json_object *j = json_object_new_object();
    json_object *v = json_object_new_object();
    json_object_object_add(j, "id", json_id(&o->id));
    if (o->has_visit)
        json_object_object_add(j, "visit", json_id(&o->visit_id));
    if (o->has_amends)
        json_object_object_add(j, "amends", json_id(&o->amends));
    json_object_object_add(j, "taken", json_time(o->taken_ms));
    json_object_object_add(v, "respiration_rate", json_object_new_int(o->vitals.respiration_rate));
    json_object_object_add(v, "spo2_pct", json_object_new_int(o->vitals.spo2_pct));
    json_object_object_add(v, "spo2_scale", json_object_new_int(o->vitals.spo2_scale));
    json_object_object_add(v, "on_oxygen", json_object_new_boolean(o->vitals.on_oxygen));
    json_object_object_add(v, "systolic_bp", json_object_new_int(o->vitals.systolic_bp));
    json_object_object_add(v, "pulse", json_object_new_int(o->vitals.pulse));
    json_object_object_add(v, "consciousness",
                           json_object_new_string(o->vitals.consciousness >= 1 &&
                                                          o->vitals.consciousness <= 5
                                                      ? acvpu[o->vitals.consciousness]
                                                      : ""));
    json_object_object_add(v, "temperature_c",
                           json_object_new_double(o->vitals.temperature_dc / 10.0));
    json_object_object_add(j, "vital_signs", v);
    json_object_object_add(j, "news2_score", json_object_new_int(o->news2_score));
    json_object_object_add(j, "news2_risk", json_object_new_string(news2_risk_name(o->news2_risk)));
    return json_object_array_add(arg, j);
}

static int json_note(void *arg, const struct store_note *n)
{
    json_object *j = json_object_new_object();
    json_object_object_add(j, "id", json_id(&n->id));
    if (n->has_visit)
        json_object_object_add(j, "visit", json_id(&n->visit_id));
    if (n->has_amends)
        json_object_object_add(j, "amends", json_id(&n->amends));
    json_object_object_add(j, "written", json_time(n->written_ms));
    json_object_object_add(j, "text", json_object_new_string(n->text));
    return json_object_array_add(arg, j);
}

static int json_task(void *arg, const struct store_task *t)
{
    json_object *j = json_object_new_object();
    json_object_object_add(j, "id", json_id(&t->id));
    json_object_object_add(j, "title", json_object_new_string(t->title));
    json_object_object_add(j, "due", json_time(t->due_ms));
    json_object_object_add(j, "done", json_object_new_boolean(t->done));
    return json_object_array_add(arg, j);
}

struct export_ctx {
    struct store *s;
    json_object *patients;
    int err;
};

static int json_patient(void *arg, const struct store_patient *p)
{
    struct export_ctx *ec = arg;
    json_object *j = json_object_new_object();
    json_object *visits = json_object_new_array();
    json_object *obs = json_object_new_array();
    json_object *notes = json_object_new_array();
    json_object *tasks = json_object_new_array();
    json_object_object_add(j, "id", json_id(&p->id));
    json_object_object_add(j, "nhs_number", json_object_new_string(p->nhs_number));
    json_object_object_add(j, "given_name", json_object_new_string(p->given_name));
    json_object_object_add(j, "family_name", json_object_new_string(p->family_name));
    json_object_object_add(j, "date_of_birth", json_object_new_string(p->date_of_birth));
    json_object_object_add(j, "address", json_object_new_string(p->address));
    json_object_object_add(j, "postcode", json_object_new_string(p->postcode));
    json_object_object_add(j, "team", json_object_new_string(p->team));
    json_object_object_add(j, "visits", visits);
    json_object_object_add(j, "observations", obs);
    json_object_object_add(j, "care_notes", notes);
    json_object_object_add(j, "tasks", tasks);
    json_object_array_add(ec->patients, j);
    ec->err = store_visit_list(ec->s, &p->id, json_visit, visits);
    if (ec->err == SAT_OK)
        ec->err = store_obs_list(ec->s, &p->id, json_obs, obs);
    if (ec->err == SAT_OK)
        ec->err = store_note_list(ec->s, &p->id, json_note, notes);
    if (ec->err == SAT_OK)
        ec->err = store_task_list(ec->s, &p->id, json_task, tasks);
    return ec->err;
}

static int cmd_export(struct app *a, int argc, char **argv)
{
    static const struct option opts[] = { { "json", no_argument, NULL, 'j' },
                                          { "patient", required_argument, NULL, 'p' },
                                          { NULL, 0, NULL, 0 } };
    const char *patient = NULL;
    int json = 0;
    int c;
    int rc;
    int ret;
    json_object *root;
    struct export_ctx ec = { NULL, NULL, SAT_OK };
    struct store_id dev;
    reset_getopt();
    while ((c = next_opt(argc, argv, opts)) != -1) {
        if (c == '?')
            return EXIT_USAGE;
        if (c == 'j')
            json = 1;
        else
            patient = optarg;
    }
    if (optind != argc)
        return usage_error("'export' takes no argument '%s'", argv[optind]);
    if (!json)
        return usage_error("'export' needs a format: --json%s", "");
    rc = open_store(a);
    if (rc != EXIT_OK)
        return rc;
    root = json_object_new_object();
    ec.s = a->store;
    ec.patients = json_object_new_array();
    store_device_id(a->store, &dev);
    json_object_object_add(root, "format", json_object_new_string("satchel-caseload/1"));
    json_object_object_add(root, "device_id", json_id(&dev));
    json_object_object_add(root, "patients", ec.patients);
    if (patient) {
        struct store_id id;
        struct store_patient p;
        rc = resolve(a, RECORD_KIND_PATIENT, patient, &id);
        if (rc == EXIT_OK) {
            ret = store_patient_get(a->store, &id, &p);
            ret = ret == SAT_OK ? json_patient(&ec, &p) : ret;
            rc = ret == SAT_OK ? EXIT_OK : store_failed(a, ret);
        }
    } else {
        ret = store_patient_list(a->store, json_patient, &ec);
        rc = ret == SAT_OK ? EXIT_OK : store_failed(a, ret);
    }
    if (rc == EXIT_OK)
        printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(root);
    return rc;
}

/* ---- sync --------------------------------------------------------------- */

#define SYNC_TIMEOUT_S_DEFAULT 120
/* Longest single wait while syncing: the driver's timers bound it anyway. */
#define SYNC_WAIT_MS_MAX 1000u

struct device_ident {
    uint8_t id[SYNC_DEVICE_ID_BYTES];
    char hex[2 * SYNC_DEVICE_ID_BYTES + 1];
};

/* device.conf: "device_id=<32 hex>" (written by satchelctl device provision). */
static int read_device_conf(struct app *a, struct device_ident *d)
{
    char text[512];
    const char *p;
    int ret = pki_file_read(&a->hal, "device.conf", text, sizeof text, NULL);
    if (ret != SAT_OK) {
        fprintf(stderr, "satchel: this device is not provisioned (no device.conf in %s): "
                        "run 'satchelctl device provision' first\n", a->data_dir);
        return EXIT_FAIL;
    }
    p = strstr(text, "device_id=");
    if (!p || sscanf(p, "device_id=%32[0-9a-f]", d->hex) != 1 || strlen(d->hex) != 32) {
        fprintf(stderr, "satchel: device.conf in %s has no valid device_id\n", a->data_dir);
        return EXIT_FAIL;
    }
    for (int i = 0; i < SYNC_DEVICE_ID_BYTES; i++) {
        unsigned v = 0;
        sscanf(d->hex + 2 * i, "%2x", &v);
        d->id[i] = (uint8_t)v;
    }
    return EXIT_OK;
}

/* A provisioned device writes under the id of its certificate. */
static int adopt_provisioned_id(struct app *a)
{
    char text[512];
    struct store_id id;
    const char *p;
    char hex[2 * STORE_ID_BYTES + 1];
    int ret;
    if (pki_file_read(&a->hal, "device.conf", text, sizeof text, NULL) != SAT_OK)
        return EXIT_OK; /* not provisioned yet */
    p = strstr(text, "device_id=");
    if (!p || sscanf(p, "device_id=%32[0-9a-f]", hex) != 1 || store_id_from_hex(hex, &id) != SAT_OK) {
        fprintf(stderr, "satchel: device.conf in %s has no valid device_id\n", a->data_dir);
        return EXIT_FAIL;
    }
    ret = store_adopt_device_id(a->store, &id);
    return ret == SAT_OK ? EXIT_OK : store_failed(a, ret);
}

/* Waits (bounded) for what the sync driver asked: its socket to become
 * ready, or its next timer (the attempt's deadline). */
static void wait_for(struct app *a, const struct device_wait *w)
{
    hal_sock *sock = w->sock;
    unsigned want = w->want;
    unsigned ready = 0;
    uint64_t now = hal_clock_monotonic_ms(&a->hal);
    uint64_t wait_ms = w->timer_ms <= now ? 0 : w->timer_ms - now;
    if (wait_ms > SYNC_WAIT_MS_MAX)
        wait_ms = SYNC_WAIT_MS_MAX;
    (void)hal_net_wait(&a->hal, &sock, &want, &ready, sock ? 1 : 0, (uint32_t)wait_ms);
}

static int cmd_sync(struct app *a, int argc, char **argv)
{
    static const struct option opts[] = { { "hub", required_argument, NULL, 'H' },
                                          { "timeout", required_argument, NULL, 't' },
                                          { NULL, 0, NULL, 0 } };
    const char *hub = NULL;
    int timeout_s = SYNC_TIMEOUT_S_DEFAULT;
    char host[256];
    uint16_t port = 0;
    struct device_ident ident;
    struct sync_glue glue;
    struct device_config dc;
    struct device *dev = NULL;
    const struct device_result *last;
    char *pem[3] = { NULL, NULL, NULL };
    static const char *const pem_names[3] = { "ca.crt", "device.crt", "device.key" };
    int c;
    int rc;
    int ret;
    reset_getopt();
    while ((c = next_opt(argc, argv, opts)) != -1) {
        if (c == '?')
            return EXIT_USAGE;
        if (c == 'H')
            hub = optarg;
        else if (parse_int(optarg, "--timeout", &timeout_s) != EXIT_OK || timeout_s < 1)
            return usage_error("--timeout must be a number of seconds, not '%s'", optarg);
    }
    if (optind != argc)
        return usage_error("'sync' takes no argument '%s'", argv[optind]);
    if (!hub)
        return usage_error("'sync' needs --hub HOST:PORT%s", "");
    if (sat_hostport_parse(hub, 0, host, sizeof host, &port) != SAT_OK)
        return usage_error("--hub wants HOST:PORT, not '%s'", hub);
    rc = open_hal(a);
    if (rc == EXIT_OK)
        rc = read_device_conf(a, &ident);
    for (int i = 0; rc == EXIT_OK && i < 3; i++) {
        pem[i] = calloc(1, PKI_FILE_BYTES_MAX + 1);
        ret = pem[i] ? pki_file_read(&a->hal, pem_names[i], pem[i], PKI_FILE_BYTES_MAX + 1, NULL)
                     : SAT_ERR_NO_MEMORY;
        if (ret != SAT_OK) {
            fprintf(stderr, "satchel: cannot read %s in %s: %s (provision the device first)\n",
                    pem_names[i], a->data_dir, sat_strerror(ret));
            rc = EXIT_FAIL;
        }
    }
    if (rc == EXIT_OK)
        rc = unlock(a);
    if (rc == EXIT_OK && (ret = open_caseload(a, "open")) != SAT_OK)
        rc = exit_for(ret);
    if (rc == EXIT_OK)
        rc = adopt_provisioned_id(a);
    if (rc == EXIT_OK && !(dev = malloc(sizeof *dev))) {
        fprintf(stderr, "satchel: %s\n", sat_strerror(SAT_ERR_NO_MEMORY));
        rc = EXIT_FAIL;
    }
    if (rc == EXIT_OK) {
        /* One attempt, no retry: the nurse (or a script) decides when to
         * try again. */
        glue.hal = &a->hal;
        glue.keys = &a->keys;
        glue.store = &a->store;
        memset(&dc, 0, sizeof dc);
        dc.hal = &a->hal;
        dc.hub_host = host;
        dc.hub_port = port;
        memcpy(dc.device_id, ident.id, sizeof dc.device_id);
        dc.ca_pem = pem[0];
        dc.cert_pem = pem[1];
        dc.key_pem = pem[2];
        dc.firmware_version = SATCHEL_VERSION;
        sync_glue_replica(&glue, &dc.replica);
        dc.attempt_ms = (uint32_t)timeout_s * 1000u;
        dc.retries = 0;
        ret = device_init(dev, &dc);
        if (ret != SAT_OK) {
            fprintf(stderr, "satchel: bad device certificate or key: %s\n", sat_strerror(ret));
            rc = EXIT_FAIL;
        }
    }
    if (pem[2])
        sat_wipe(pem[2], PKI_FILE_BYTES_MAX + 1);
    for (int i = 0; i < 3; i++)
        free(pem[i]);
    if (rc != EXIT_OK)
        goto exit;

    if (device_request_sync(dev) != SAT_OK) {
        fprintf(stderr, "satchel: this tablet was revoked and wiped\n");
        rc = EXIT_REVOKED;
        goto exit;
    }
    for (;;) {
        struct device_wait w;
        device_step(dev, &w);
        if (!device_busy(dev))
            break;
        wait_for(a, &w);
    }
    last = device_last(dev);
    if (last->err == SAT_OK) {
        const struct sync_device_stats *st = device_last_session(dev);
        int64_t skew = hal_clock_wall_ms(&a->hal) - st->hub_time_ms;
        printf("synced with %s: pushed %llu, pulled %llu, purged %llu, conflicts %llu\n", hub,
               (unsigned long long)st->pushed, (unsigned long long)st->pulled,
               (unsigned long long)st->purged, (unsigned long long)st->conflicts);
        printf("bytes: %llu out, %llu in; round trips: %llu; TLS %s%s\n",
               (unsigned long long)st->bytes_out, (unsigned long long)st->bytes_in,
               (unsigned long long)st->round_trips, last->suite,
               last->resumed ? " (resumed)" : "");
        if (skew > 300000 || skew < -300000)
            fprintf(stderr, "satchel: warning: this device's clock is %lld s %s the hub's\n",
                    (long long)((skew < 0 ? -skew : skew) / 1000), skew < 0 ? "behind" : "ahead of");
    } else if (last->failed_in == DEVICE_CONNECTING || last->failed_in == DEVICE_HANDSHAKE) {
        /* A refusal during the handshake is an unauthenticated alert: it
         * never wipes, so it is not exit 7 (revoked and wiped). */
        fprintf(stderr, "satchel: cannot reach the hub at %s: %s\n", hub, sat_strerror(last->err));
        rc = EXIT_FAIL;
    } else if (last->err == SAT_ERR_SYNC_REVOKED) {
        fprintf(stderr, "satchel: %s\n", last->msg);
        rc = EXIT_REVOKED;
    } else {
        fprintf(stderr, "satchel: sync failed: %s\n", last->msg);
        rc = exit_for(last->err);
    }
exit:
    device_free(dev);
    free(dev);
    return rc;
}

static int print_conflict(void *arg, const struct store_conflict *c)
{
    const char *kind = record_kind_name(c->kind);
    char field[RECORD_FIELD_NAME_BYTES];
    char rec[STORE_ID_HEX_BYTES];
    char kept[STORE_ID_HEX_BYTES];
    char lost[STORE_ID_HEX_BYTES];
    char t[32];
    (void)arg;
    store_id_to_hex(&c->record_id, rec);
    store_id_to_hex(&c->kept_origin, kept);
    store_id_to_hex(&c->lost_origin, lost);
    format_time(c->detected_ms, t);
    printf("%s %s %.8s %s: kept \"%s\" (device %.8s), other \"%s\" (device %.8s)\n", t,
           kind ? kind : "record", rec, record_field_name(c->kind, c->field, field),
           c->kept ? c->kept : "", kept, c->lost ? c->lost : "", lost);
    return 0;
}

static int cmd_conflicts(struct app *a, int argc, char **argv)
{
    int rc;
    int ret;
    if (argc != 1)
        return usage_error("'conflicts' takes no argument '%s'", argv[1]);
    rc = open_store(a);
    if (rc != EXIT_OK)
        return rc;
    ret = store_conflicts(a->store, print_conflict, NULL);
    return ret == SAT_OK ? EXIT_OK : store_failed(a, ret);
}

/* ---- info --------------------------------------------------------------- */

struct info_count {
    unsigned files;
};

static int count_file(void *arg, const char *name)
{
    struct info_count *ic = arg;
    (void)name;
    ic->files++;
    return 0;
}

static int cmd_info(struct app *a, int argc, char **argv)
{
    struct info_count ic = { 0 };
    int slot = -1;
    int pct = -1;
    uint64_t failures = 0;
    uint64_t epoch = 0;
    int rc;
    int ret;
    if (argc != 1)
        return usage_error("'info' takes no argument '%s'", argv[1]);
    rc = open_hal(a);
    if (rc != EXIT_OK)
        return rc;
    ret = hal_storage_list(&a->hal, count_file, &ic);
    if (ret == SAT_OK)
        ret = hal_boot_active_slot(&a->hal, &slot);
    if (ret == SAT_OK)
        ret = keys_failures(&a->hal, &failures);
    if (ret == SAT_OK)
        ret = hal_keystore_counter_read(&a->hal, HAL_COUNTER_KEY_EPOCH, &epoch);
    if (ret != SAT_OK) {
        fprintf(stderr, "satchel: cannot read device state in '%s': %s\n", a->data_dir,
                sat_strerror(ret));
        return EXIT_FAIL;
    }
    printf("data directory: %s\n", a->data_dir);
    printf("enrolled: %s\n", keys_enrolled(&a->hal) ? "yes" : "no (run 'satchel enrol')");
    printf("files: %u\n", ic.files);
    printf("boot slot: %c\n", slot == 0 ? 'A' : 'B');
    if (hal_power_battery_pct(&a->hal, &pct) == SAT_OK)
        printf("battery: %d%%\n", pct);
    else
        printf("battery: none (mains powered)\n");
    printf("wrong PINs in a row: %llu\n", (unsigned long long)failures);
    printf("key epoch: %llu\n", (unsigned long long)epoch);
    return EXIT_OK;
}

/* ---- main --------------------------------------------------------------- */

struct command {
    const char *name;
    int (*run)(struct app *a, int argc, char **argv);
};

static const struct command commands[] = {
    { "enrol", cmd_enrol },   { "unlock", cmd_unlock }, { "lock", cmd_lock },
    { "change-pin", cmd_change_pin }, { "recover", cmd_recover }, { "patient", cmd_patient }, { "visit", cmd_visit },
    { "obs", cmd_obs },       { "note", cmd_note },     { "task", cmd_task },
    { "export", cmd_export }, { "info", cmd_info },     { "sync", cmd_sync },
    { "conflicts", cmd_conflicts },
};

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "data", required_argument, NULL, 'd' },
        { "pin-file", required_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct app a;
    int c;
    memset(&a, 0, sizeof a);
    a.data_dir = "satchel-data";

    opterr = 0; /* we print our own one-line errors */
    while ((c = getopt_long(argc, argv, "+:d:p:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'd': a.data_dir = optarg; break;
        case 'p': a.pin_file = optarg; break;
        case 'h': fputs(usage_text, stdout); return EXIT_OK;
        case 'V': printf("satchel %s (protocol %d)\n", SATCHEL_VERSION, PROTO_VERSION); return EXIT_OK;
        case ':': return usage_error("option '%s' needs an argument", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return usage_error("no command given%s", "");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[optind], commands[i].name) == 0) {
            int sub_argc = argc - optind;
            char **sub_argv = argv + optind;
            int rc;
            reset_getopt();
            rc = commands[i].run(&a, sub_argc, sub_argv);
            close_app(&a);
            return rc;
        }
    }
    return usage_error("unknown command '%s'", argv[optind]);
}
