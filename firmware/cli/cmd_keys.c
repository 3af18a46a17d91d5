/*
 * cmd_keys.c - the PIN commands of `satchel`: who may open the caseload.
 *
 *   enrol       sets the first PIN (asked twice on a terminal) and creates
 *               the encrypted store; --recovery-pub sets up fleet recovery.
 *               Fails (1) on a device that is already enrolled.
 *   unlock      checks the PIN and resets the wrong-PIN count.
 *   lock        confirms that nothing stays unlocked between commands.
 *   change-pin  the current PIN (--pin-file or terminal), then the new one
 *               (--new-pin-file or asked twice); the data key stays the same,
 *               so the records are not re-encrypted.
 *   recover     the fleet manager's recovery key (--recovery-key) sets a new
 *               PIN, keeping every record, even after a wrong-PIN erase.
 *
 * A refused PIN is exit 3; the keys module (keys.h) counts wrong PINs and
 * erases the keys at KEYS_MAX_ATTEMPTS. Every PIN and the recovery key are
 * wiped from memory on every path once used.
 */
#define _POSIX_C_SOURCE 200809L

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "sat_hex.h"
#include "sat_wipe.h"

/* A new PIN: from file, or asked twice on the terminal (must match). */
static int get_new_pin(struct app *a, const char *file, char pin[PIN_BUF_BYTES])
{
    char again[PIN_BUF_BYTES];
    int rc = cli_get_pin(a, file, "New PIN: ", pin);
    if (rc != EXIT_OK || file)
        return rc;
    rc = cli_get_pin(a, NULL, "Repeat the new PIN: ", again);
    if (rc == EXIT_OK && strcmp(pin, again) != 0) {
        fprintf(stderr, "satchel: the two PINs differ; nothing was changed\n");
        rc = EXIT_PIN;
    }
    pin_wipe(again);
    if (rc != EXIT_OK)
        pin_wipe(pin);
    return rc;
}

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

int cmd_enrol(struct app *a, int argc, char **argv)
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
    while ((c = cli_next_opt(argc, argv, opts)) != -1) {
        int v = 0;
        if (c == '?')
            return EXIT_USAGE;
        if (c == 'i') {
            if (cli_parse_int(optarg, "--kdf-iterations", &v) != EXIT_OK || v < 1000)
                return cli_usage_error("--kdf-iterations must be at least 1000, not '%s'", optarg);
            eo.iterations = (uint32_t)v;
        } else if (c == 'r') {
            rc = read_hex_file(optarg, pub, sizeof pub, "recovery public key");
            if (rc != EXIT_OK)
                return rc;
            eo.recovery_pub = pub;
        }
    }
    if (optind != argc)
        return cli_usage_error("'enrol' takes no argument '%s'", argv[optind]);
    rc = cli_open_hal(a);
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
        return cli_report_pin_error(ret, 0);
    ret = cli_open_caseload(a, "create");
    if (ret != SAT_OK)
        return cli_exit_for(ret);
    printf("enrolled: the caseload in %s is encrypted and locked%s\n", a->data_dir,
           eo.recovery_pub ? "; fleet recovery is set up" : "");
    return EXIT_OK;
}

int cmd_unlock(struct app *a, int argc, char **argv)
{
    int rc;
    (void)argv;
    if (argc != 1)
        return cli_usage_error("'unlock' takes no argument '%s'", argv[1]);
    rc = cli_open_hal(a);
    if (rc == EXIT_OK)
        rc = cli_unlock(a);
    if (rc == EXIT_OK)
        printf("PIN accepted; wrong-PIN count reset to 0\n");
    return rc;
}

int cmd_lock(struct app *a, int argc, char **argv)
{
    (void)a;
    if (argc != 1)
        return cli_usage_error("'lock' takes no argument '%s'", argv[1]);
    printf("locked: no key stays in memory between satchel commands\n");
    return EXIT_OK;
}

int cmd_change_pin(struct app *a, int argc, char **argv)
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
    while ((c = cli_next_opt(argc, argv, opts)) != -1) {
        if (c == '?')
            return EXIT_USAGE;
        new_file = optarg;
    }
    if (optind != argc)
        return cli_usage_error("'change-pin' takes no argument '%s'", argv[optind]);
    rc = cli_open_hal(a);
    if (rc != EXIT_OK)
        return rc;
    if (!keys_enrolled(&a->hal))
        return cli_report_pin_error(SAT_ERR_KEYS_NOT_ENROLLED, 0);
    rc = cli_get_pin(a, a->pin_file, "Current PIN: ", old_pin);
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
        return cli_report_pin_error(ret, retry_ms);
    printf("PIN changed; the records were not re-encrypted (same data key)\n");
    return EXIT_OK;
}

int cmd_recover(struct app *a, int argc, char **argv)
{
    static const struct option opts[] = { { "recovery-key", required_argument, NULL, 'k' },
                                          { NULL, 0, NULL, 0 } };
    const char *key_file = NULL;
    uint8_t priv[KEYS_RECOVERY_PRIV_BYTES];
    char pin[PIN_BUF_BYTES];
    int c;
    int rc;
    int ret;
    while ((c = cli_next_opt(argc, argv, opts)) != -1) {
        if (c == '?')
            return EXIT_USAGE;
        key_file = optarg;
    }
    if (optind != argc)
        return cli_usage_error("'recover' takes no argument '%s'", argv[optind]);
    if (!key_file)
        return cli_usage_error("'recover' needs --recovery-key FILE (from satchelctl)%s", "");
    rc = read_hex_file(key_file, priv, sizeof priv, "recovery key");
    if (rc == EXIT_OK)
        rc = cli_open_hal(a);
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
        return cli_report_pin_error(ret, 0);
    printf("recovered: the new PIN opens the caseload; no record was lost\n");
    return EXIT_OK;
}
