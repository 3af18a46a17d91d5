/*
 * satchelctl.c - the fleet manager's tool. So far: the fleet recovery key,
 * which lets a fleet manager reopen a tablet whose nurse forgot her PIN
 * without losing the records that have not reached the hub yet.
 *
 * Exit status: 0 success, 1 the command failed, 2 usage error.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "hal_posix.h"
#include "keys.h"

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define PUB_FILE "recovery.pub"
#define KEY_FILE "recovery.key"

static const char usage_text[] =
    "Usage: satchelctl COMMAND [ARGS]\n"
    "       satchelctl --help | --version\n"
    "\n"
    "The fleet manager's tool for Satchel tablets.\n"
    "\n"
    "Commands:\n"
    "  recovery-key init --out DIR\n"
    "        make the fleet's recovery key pair: DIR/recovery.pub (give it to\n"
    "        every tablet at enrolment: satchel enrol --recovery-pub FILE) and\n"
    "        DIR/recovery.key (secret: keep it offline; it opens every tablet's\n"
    "        data key with: satchel recover --recovery-key FILE). Existing\n"
    "        files are never overwritten.\n"
    "\n"
    "Exit status: 0 success, 1 the command failed, 2 usage error.\n";

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "satchelctl: ");
    fprintf(stderr, msg, arg);
    fprintf(stderr, " (try --help)\n");
    return EXIT_USAGE;
}

/* Writes bytes as one line of hex into a new file of the HAL's directory. */
static int write_hex(const struct hal *h, const char *name, const uint8_t *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char line[2 * KEYS_RECOVERY_PUB_BYTES + 2];
    hal_file *f = NULL;
    int ret;
    for (size_t i = 0; i < n; i++) {
        line[2 * i] = digits[b[i] >> 4];
        line[2 * i + 1] = digits[b[i] & 15];
    }
    line[2 * n] = '\n';
    ret = hal_storage_open(h, name, HAL_OPEN_CREATE | HAL_OPEN_EXCLUSIVE, &f);
    if (ret != SAT_OK)
        return ret;
    ret = hal_storage_write(h, f, 0, line, 2 * n + 1);
    if (ret == SAT_OK)
        ret = hal_storage_sync(h, f);
    hal_storage_close(h, f);
    memset(line, 0, sizeof line);
    return ret;
}

static int cmd_recovery_key(int argc, char **argv)
{
    static const struct option opts[] = { { "out", required_argument, NULL, 'o' },
                                          { NULL, 0, NULL, 0 } };
    const char *out = NULL;
    uint8_t pub[KEYS_RECOVERY_PUB_BYTES];
    uint8_t priv[KEYS_RECOVERY_PRIV_BYTES];
    struct hal h;
    int c;
    int ret;
    if (argc < 2 || strcmp(argv[1], "init") != 0)
        return usage_error("unknown recovery-key command '%s' (init)", argc > 1 ? argv[1] : "");
    /* Options of "init": its own argument vector, argv[0] = "init". */
    argc--;
    argv++;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == 'o')
            out = optarg;
        else if (c == ':')
            return usage_error("option '%s' needs an argument", argv[optind - 1]);
        else
            return usage_error("unknown option '%s'", argv[optind - 1]);
    }
    if (!out)
        return usage_error("'recovery-key init' needs --out DIR%s", "");
    if (optind != argc)
        return usage_error("'recovery-key init' takes no argument '%s'", argv[optind]);
    ret = hal_posix_open(&h, out);
    if (ret != SAT_OK) {
        fprintf(stderr, "satchelctl: cannot open or create '%s': %s\n", out, sat_strerror(ret));
        return EXIT_FAIL;
    }
    ret = keys_recovery_keygen(&h, pub, priv);
    if (ret == SAT_OK)
        ret = write_hex(&h, KEY_FILE, priv, sizeof priv);
    if (ret == SAT_OK) {
        ret = write_hex(&h, PUB_FILE, pub, sizeof pub);
        if (ret != SAT_OK)
            hal_storage_delete(&h, KEY_FILE);
    }
    memset(priv, 0, sizeof priv);
    hal_posix_close(&h);
    if (ret == SAT_ERR_EXISTS) {
        fprintf(stderr, "satchelctl: %s already holds a recovery key: not overwriting it\n", out);
        return EXIT_FAIL;
    }
    if (ret != SAT_OK) {
        fprintf(stderr, "satchelctl: cannot make the recovery key: %s\n", sat_strerror(ret));
        return EXIT_FAIL;
    }
    printf("%s/%s: give to tablets at enrolment\n%s/%s: secret; keep offline\n", out, PUB_FILE,
           out, KEY_FILE);
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = { { "help", no_argument, NULL, 'h' },
                                          { "version", no_argument, NULL, 'V' },
                                          { NULL, 0, NULL, 0 } };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_text, stdout);
            return EXIT_OK;
        }
        if (c == 'V') {
            printf("satchelctl %s\n", SATCHEL_VERSION);
            return EXIT_OK;
        }
        return usage_error("unknown option '%s'", argv[optind - 1]);
    }
    if (optind >= argc)
        return usage_error("no command given%s", "");
    if (strcmp(argv[optind], "recovery-key") == 0)
        return cmd_recovery_key(argc - optind, argv + optind);
    return usage_error("unknown command '%s'", argv[optind]);
}
