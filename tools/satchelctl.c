/*
 * satchelctl.c - the fleet manager's tool. So far: the fleet recovery key,
 * which lets a fleet manager reopen a tablet whose nurse forgot her PIN
 * without losing the records that have not reached the hub yet; and the
 * fleet's certificates (sync/pki.h): the fleet CA, the hub's certificate and
 * each tablet's identity for mutual TLS.
 *
 * Exit status: 0 success, 1 the command failed, 2 usage error.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hal_posix.h"
#include "hub_store.h"
#include "pki.h"
#include "sat_hex.h"
#include "sat_wipe.h"

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define HUB_DB_FILE "hub.db"
#define PUB_FILE "recovery.pub"
#define KEY_FILE "recovery.key"

#define CA_CRT_FILE "ca.crt"
#define CA_KEY_FILE "ca.key"
#define HUB_CRT_FILE "hub.crt"
#define HUB_KEY_FILE "hub.key"
#define DEVICE_CRT_FILE "device.crt"
#define DEVICE_KEY_FILE "device.key"
#define DEVICE_CONF_FILE "device.conf"
#define DEFAULT_CA_NAME "Satchel fleet CA"
#define DEFAULT_HUB_NAME "satchel-hub"
#define DAY_S 86400LL
#define CA_VALID_S ((20LL * 365 + 5) * DAY_S)  /* 20 years */
#define CERT_VALID_S ((5LL * 365 + 1) * DAY_S) /* 5 years */
/* Certificates start a day early: a tablet's clock may run behind. */
#define NOT_BEFORE_SLACK_S DAY_S
#define TEAM_BYTES_MAX 64
#define DEVICE_CONF_BYTES_MAX 160

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
    "  ca init --dir CADIR [--name NAME]\n"
    "        make the fleet CA (valid 20 years): CADIR/ca.crt (give it to the\n"
    "        hub and every tablet) and CADIR/ca.key (secret: keep it offline; it\n"
    "        signs the hub's and the tablets' certificates). NAME is the CA's\n"
    "        name (default \"" DEFAULT_CA_NAME "\"). Never overwrites.\n"
    "  hub-cert --ca CADIR --out HUBDIR [--name HOST]\n"
    "        issue the hub's certificate (valid 5 years; HOST defaults to\n"
    "        " DEFAULT_HUB_NAME "): writes HUBDIR/hub.crt, HUBDIR/hub.key (secret)\n"
    "        and HUBDIR/ca.crt, the files satchel-hub reads. Never overwrites.\n"
    "  device provision --ca CADIR --data DEVICEDIR --team TEAM [--id HEX32]\n"
    "        give a tablet its identity: a device id (16 random bytes as 32 hex\n"
    "        digits, unless --id gives one) and, in its data directory,\n"
    "        device.crt (the id as its name; valid 5 years), device.key\n"
    "        (secret), ca.crt and device.conf (device_id=..., team=TEAM).\n"
    "        Refuses a tablet that already has a device.crt. Prints the id.\n"
    "\n"
    "Names (NAME, HOST) and TEAM are 1 to 64 letters, digits, spaces, '.',\n"
    "'_' or '-'. The ca, hub-cert and device commands also take --help.\n"
    "\n"
    "Exit status: 0 success, 1 the command failed, 2 usage error.\n";

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "satchelctl: ");
    fprintf(stderr, msg, arg);
    fprintf(stderr, " (try --help)\n");
    return EXIT_USAGE;
}

static int usage_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_errorf(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "satchelctl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (try --help)\n");
    return EXIT_USAGE;
}

/* Writes bytes as one line of hex into a new file of the HAL's directory. */
static int write_hex(const struct hal *h, const char *name, const uint8_t *b, size_t n)
{
    char line[SAT_HEX_BYTES(PKI_RECOVERY_PUB_BYTES)];
    hal_file *f = NULL;
    int ret;
    if (n > PKI_RECOVERY_PUB_BYTES)
        return SAT_ERR_INVALID;
    sat_hex_encode(b, n, line);
    line[2 * n] = '\n';
    ret = hal_storage_open(h, name, HAL_OPEN_CREATE | HAL_OPEN_EXCLUSIVE, &f);
    if (ret != SAT_OK)
        return ret;
    ret = hal_storage_write(h, f, 0, line, 2 * n + 1);
    if (ret == SAT_OK)
        ret = hal_storage_sync(h, f);
    hal_storage_close(h, f);
    sat_wipe(line, sizeof line);
    return ret;
}

static int cmd_recovery_key(int argc, char **argv)
{
    static const struct option opts[] = { { "out", required_argument, NULL, 'o' },
                                          { NULL, 0, NULL, 0 } };
    const char *out = NULL;
    uint8_t pub[PKI_RECOVERY_PUB_BYTES];
    uint8_t priv[PKI_RECOVERY_PRIV_BYTES];
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
    ret = pki_recovery_keygen(&h, pub, priv);
    if (ret == SAT_OK)
        ret = write_hex(&h, KEY_FILE, priv, sizeof priv);
    if (ret == SAT_OK) {
        ret = write_hex(&h, PUB_FILE, pub, sizeof pub);
        if (ret != SAT_OK && hal_storage_delete(&h, KEY_FILE) != SAT_OK)
            fprintf(stderr, "satchelctl: remove %s/%s by hand: a key without its public half\n",
                    out, KEY_FILE);
    }
    sat_wipe(priv, sizeof priv);
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

/* ---- certificates ---------------------------------------------------------- */

/* What parse_options found: run the command, or exit with a status. */
#define OPTIONS_OK (-1)

/* Parses the options of a command whose words (e.g. "ca init") are the
 * first `words` entries of argv. opts[i].val must be i; values[i] gets the
 * argument of opts[i]. --help prints the usage. Returns OPTIONS_OK, or an
 * exit status (EXIT_OK after --help, EXIT_USAGE after a message). */
static int parse_options(int argc, char **argv, int words, const struct option *opts,
                         const char **values, const char *cmd)
{
    int c;
    argc -= words - 1;
    argv += words - 1;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == ':')
            return usage_errorf("option '%s' needs an argument", argv[optind - 1]);
        if (c == '?')
            return usage_errorf("unknown option '%s'", argv[optind - 1]);
        if (strcmp(opts[c].name, "help") == 0) {
            fputs(usage_text, stdout);
            return EXIT_OK;
        }
        values[c] = optarg;
    }
    if (optind != argc)
        return usage_errorf("'%s' takes no argument '%s'", cmd, argv[optind]);
    return OPTIONS_OK;
}

static int open_dir_hal(struct hal *h, const char *dir)
{
    int ret = hal_posix_open(h, dir);
    if (ret != SAT_OK)
        fprintf(stderr, "satchelctl: cannot open or create '%s': %s\n", dir, sat_strerror(ret));
    return ret;
}

static int file_exists(const struct hal *h, const char *name)
{
    hal_file *f = NULL;
    if (hal_storage_open(h, name, 0, &f) != SAT_OK)
        return 0;
    hal_storage_close(h, f);
    return 1;
}

/* A random certificate serial number: 63 bits, never 0. */
static int random_serial(const struct hal *h, uint64_t *serial)
{
    uint8_t b[8];
    uint64_t v = 0;
    int ret = hal_entropy_fill(h, b, sizeof b);
    if (ret != SAT_OK)
        return ret;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    v &= UINT64_MAX >> 1;
    *serial = v != 0 ? v : 1;
    return SAT_OK;
}

/* The fleet CA read from CADIR: certificate and (secret) key. */
struct ca_files {
    char crt[PKI_FILE_BYTES_MAX + 1];
    char key[PKI_FILE_BYTES_MAX + 1];
};

static int ca_load(const char *dir, struct ca_files *ca)
{
    struct hal h;
    int ret = open_dir_hal(&h, dir);
    if (ret != SAT_OK)
        return ret;
    ret = pki_file_read(&h, CA_CRT_FILE, ca->crt, sizeof ca->crt, NULL);
    if (ret == SAT_OK)
        ret = pki_file_read(&h, CA_KEY_FILE, ca->key, sizeof ca->key, NULL);
    hal_posix_close(&h);
    if (ret == SAT_ERR_NOT_FOUND)
        fprintf(stderr,
                "satchelctl: no fleet CA in '%s' (make one with: satchelctl ca init --dir %s)\n",
                dir, dir);
    else if (ret != SAT_OK)
        fprintf(stderr, "satchelctl: cannot read the fleet CA in '%s': %s\n", dir,
                sat_strerror(ret));
    return ret;
}

/* Loads the CA from ca_dir and opens (creating) out_dir through h, for the
 * commands that issue certificates. NULL (the message printed) on failure;
 * on success the caller wipes and frees the CA and closes h. */
static struct ca_files *ca_open_with_dir(const char *ca_dir, const char *out_dir, struct hal *h)
{
    struct ca_files *ca = calloc(1, sizeof *ca);
    if (!ca) {
        fprintf(stderr, "satchelctl: %s\n", sat_strerror(SAT_ERR_NO_MEMORY));
        return NULL;
    }
    if (ca_load(ca_dir, ca) != SAT_OK) {
        free(ca);
        return NULL;
    }
    if (open_dir_hal(h, out_dir) != SAT_OK) {
        sat_wipe(ca, sizeof *ca);
        free(ca);
        return NULL;
    }
    return ca;
}

/* Makes a key and a certificate for cn signed by the CA. */
static int issue(const struct hal *h, const struct ca_files *ca, const char *cn,
                 enum pki_usage usage, char key[PKI_PEM_BYTES_MAX], char crt[PKI_PEM_BYTES_MAX])
{
    int64_t now_s = hal_clock_wall_ms(h) / 1000;
    uint64_t serial = 0;
    int ret = random_serial(h, &serial);
    if (ret == SAT_OK)
        ret = pki_key_generate(h, key, PKI_PEM_BYTES_MAX);
    if (ret == SAT_OK)
        ret = pki_cert_issue(h, ca->crt, ca->key, key, cn, usage, serial,
                             now_s - NOT_BEFORE_SLACK_S, now_s + CERT_VALID_S, crt,
                             PKI_PEM_BYTES_MAX);
    return ret;
}

/* Writes files[i] = texts[i] as new files, in order; on a failure deletes
 * the ones it wrote. Returns SAT_OK or the first error. */
static int write_all_new(const struct hal *h, const char *const *files, const char *const *texts,
                         int n)
{
    int ret = SAT_OK;
    int done = 0;
    while (done < n && (ret = pki_file_write_new(h, files[done], texts[done])) == SAT_OK)
        done++;
    if (ret != SAT_OK)
        while (done-- > 0)
            if (hal_storage_delete(h, files[done]) != SAT_OK)
                fprintf(stderr, "satchelctl: %s is left from a step that failed: remove it\n",
                        files[done]);
    return ret;
}

/* The first of files that exists, or NULL. */
static const char *first_existing(const struct hal *h, const char *const *files, int n)
{
    for (int i = 0; i < n; i++)
        if (file_exists(h, files[i]))
            return files[i];
    return NULL;
}

static int cmd_ca(int argc, char **argv)
{
    static const struct option opts[] = { { "dir", required_argument, NULL, 0 },
                                          { "name", required_argument, NULL, 1 },
                                          { "help", no_argument, NULL, 2 },
                                          { NULL, 0, NULL, 0 } };
    static const char *const files[2] = { CA_KEY_FILE, CA_CRT_FILE };
    const char *values[3] = { NULL, DEFAULT_CA_NAME, NULL };
    char *key = NULL;
    char *crt = NULL;
    const char *existing;
    struct hal h;
    int64_t now_s;
    uint64_t serial = 0;
    int ret;
    if (argc < 2 || strcmp(argv[1], "init") != 0)
        return usage_error("unknown ca command '%s' (init)", argc > 1 ? argv[1] : "");
    ret = parse_options(argc, argv, 2, opts, values, "ca init");
    if (ret != OPTIONS_OK)
        return ret;
    if (!values[0])
        return usage_error("'ca init' needs --dir CADIR%s", "");
    if (!pki_cn_valid(values[1]))
        return usage_error("bad --name '%s': 1 to 64 letters, digits, spaces, '.', '_' or '-'",
                           values[1]);
    if (open_dir_hal(&h, values[0]) != SAT_OK)
        return EXIT_FAIL;
    existing = first_existing(&h, files, 2);
    key = calloc(1, PKI_PEM_BYTES_MAX);
    crt = calloc(1, PKI_PEM_BYTES_MAX);
    if (existing) {
        ret = SAT_ERR_EXISTS;
    } else if (!key || !crt) {
        ret = SAT_ERR_NO_MEMORY;
    } else {
        now_s = hal_clock_wall_ms(&h) / 1000;
        ret = random_serial(&h, &serial);
        if (ret == SAT_OK)
            ret = pki_key_generate(&h, key, PKI_PEM_BYTES_MAX);
        if (ret == SAT_OK)
            ret = pki_ca_self_sign(&h, key, values[1], serial, now_s - NOT_BEFORE_SLACK_S,
                                   now_s + CA_VALID_S, crt, PKI_PEM_BYTES_MAX);
        if (ret == SAT_OK) {
            const char *texts[2] = { key, crt };
            ret = write_all_new(&h, files, texts, 2);
        }
    }
    if (key)
        sat_wipe(key, PKI_PEM_BYTES_MAX);
    free(key);
    free(crt);
    hal_posix_close(&h);
    if (ret == SAT_ERR_EXISTS) {
        fprintf(stderr, "satchelctl: %s already holds a fleet CA (%s): not overwriting it\n",
                values[0], existing ? existing : "ca.*");
        return EXIT_FAIL;
    }
    if (ret != SAT_OK) {
        fprintf(stderr, "satchelctl: cannot make the fleet CA: %s\n", sat_strerror(ret));
        return EXIT_FAIL;
    }
    printf("%s/%s: give to the hub and every tablet\n%s/%s: secret; keep offline\n", values[0],
           CA_CRT_FILE, values[0], CA_KEY_FILE);
    return EXIT_OK;
}

static int cmd_hub_cert(int argc, char **argv)
{
    static const struct option opts[] = { { "ca", required_argument, NULL, 0 },
                                          { "out", required_argument, NULL, 1 },
                                          { "name", required_argument, NULL, 2 },
                                          { "help", no_argument, NULL, 3 },
                                          { NULL, 0, NULL, 0 } };
    static const char *const files[3] = { HUB_KEY_FILE, CA_CRT_FILE, HUB_CRT_FILE };
    const char *values[4] = { NULL, NULL, DEFAULT_HUB_NAME, NULL };
    struct ca_files *ca = NULL;
    char *key = NULL;
    char *crt = NULL;
    const char *existing;
    struct hal h;
    int ret = parse_options(argc, argv, 1, opts, values, "hub-cert");
    if (ret != OPTIONS_OK)
        return ret;
    if (!values[0] || !values[1])
        return usage_error("'hub-cert' needs --ca CADIR and --out HUBDIR%s", "");
    if (!pki_cn_valid(values[2]))
        return usage_error("bad --name '%s': 1 to 64 letters, digits, spaces, '.', '_' or '-'",
                           values[2]);
    ca = ca_open_with_dir(values[0], values[1], &h);
    if (!ca)
        return EXIT_FAIL;
    existing = first_existing(&h, files, 3);
    key = calloc(1, PKI_PEM_BYTES_MAX);
    crt = calloc(1, PKI_PEM_BYTES_MAX);
    if (existing) {
        ret = SAT_ERR_EXISTS;
    } else if (!key || !crt) {
        ret = SAT_ERR_NO_MEMORY;
    } else {
        ret = issue(&h, ca, values[2], PKI_USAGE_SERVER, key, crt);
        if (ret == SAT_OK) {
            const char *texts[3] = { key, ca->crt, crt };
            ret = write_all_new(&h, files, texts, 3);
        }
    }
    if (key)
        sat_wipe(key, PKI_PEM_BYTES_MAX);
    sat_wipe(ca, sizeof *ca);
    free(key);
    free(crt);
    free(ca);
    hal_posix_close(&h);
    if (ret == SAT_ERR_EXISTS) {
        fprintf(stderr, "satchelctl: %s already holds %s: not overwriting it\n", values[1],
                existing ? existing : "hub files");
        return EXIT_FAIL;
    }
    if (ret != SAT_OK) {
        fprintf(stderr, "satchelctl: cannot issue the hub certificate: %s\n", sat_strerror(ret));
        return EXIT_FAIL;
    }
    printf("%s/%s, %s/%s (secret), %s/%s: for satchel-hub --data %s\n", values[1], HUB_CRT_FILE,
           values[1], HUB_KEY_FILE, values[1], CA_CRT_FILE, values[1]);
    return EXIT_OK;
}

/* A device id given with --id: 32 hex digits, stored lower-case. */
static int device_id_parse(const char *text, char out[SAT_ID_HEX_BYTES])
{
    uint8_t id[SAT_ID_BYTES];
    if (sat_hex_decode(text, id, sizeof id) != SAT_OK)
        return 0;
    sat_hex_encode(id, sizeof id, out);
    return 1;
}

static int device_id_random(const struct hal *h, char out[SAT_ID_HEX_BYTES])
{
    uint8_t id[SAT_ID_BYTES];
    int ret = hal_entropy_fill(h, id, sizeof id);
    if (ret == SAT_OK)
        sat_hex_encode(id, sizeof id, out);
    return ret;
}

/* A team name: the same characters as a certificate name. */
static int team_valid(const char *team)
{
    return strlen(team) <= TEAM_BYTES_MAX && pki_cn_valid(team);
}

static int cmd_device_provision(int argc, char **argv)
{
    static const struct option opts[] = { { "ca", required_argument, NULL, 0 },
                                          { "data", required_argument, NULL, 1 },
                                          { "team", required_argument, NULL, 2 },
                                          { "id", required_argument, NULL, 3 },
                                          { "help", no_argument, NULL, 4 },
                                          { NULL, 0, NULL, 0 } };
    /* device.crt last: its presence means "provisioned". */
    static const char *const files[4] = { DEVICE_KEY_FILE, CA_CRT_FILE, DEVICE_CONF_FILE,
                                          DEVICE_CRT_FILE };
    const char *values[5] = { NULL, NULL, NULL, NULL, NULL };
    char id[SAT_ID_HEX_BYTES];
    char conf[DEVICE_CONF_BYTES_MAX];
    struct ca_files *ca = NULL;
    char *key = NULL;
    char *crt = NULL;
    const char *existing;
    struct hal h;
    int ret;
    ret = parse_options(argc, argv, 2, opts, values, "device provision");
    if (ret != OPTIONS_OK)
        return ret;
    if (!values[0] || !values[1] || !values[2])
        return usage_errorf("'device provision' needs --ca CADIR, --data DEVICEDIR and "
                            "--team TEAM");
    if (!team_valid(values[2]))
        return usage_error("bad --team '%s': 1 to 64 letters, digits, spaces, '.', '_' or '-'",
                           values[2]);
    if (values[3] && !device_id_parse(values[3], id))
        return usage_error("bad --id '%s': a device id is 32 hex digits", values[3]);
    ca = ca_open_with_dir(values[0], values[1], &h);
    if (!ca)
        return EXIT_FAIL;
    existing = file_exists(&h, DEVICE_CRT_FILE) ? DEVICE_CRT_FILE : first_existing(&h, files, 4);
    key = calloc(1, PKI_PEM_BYTES_MAX);
    crt = calloc(1, PKI_PEM_BYTES_MAX);
    if (existing) {
        ret = SAT_ERR_EXISTS;
    } else if (!key || !crt) {
        ret = SAT_ERR_NO_MEMORY;
    } else {
        ret = values[3] ? SAT_OK : device_id_random(&h, id);
        if (ret == SAT_OK)
            ret = issue(&h, ca, id, PKI_USAGE_CLIENT, key, crt);
        if (ret == SAT_OK) {
            const char *texts[4] = { key, ca->crt, conf, crt };
            snprintf(conf, sizeof conf, "device_id=%s\nteam=%s\n", id, values[2]);
            ret = write_all_new(&h, files, texts, 4);
        }
    }
    if (key)
        sat_wipe(key, PKI_PEM_BYTES_MAX);
    sat_wipe(ca, sizeof *ca);
    free(key);
    free(crt);
    free(ca);
    hal_posix_close(&h);
    if (ret == SAT_ERR_EXISTS) {
        if (existing && strcmp(existing, DEVICE_CRT_FILE) == 0)
            fprintf(stderr,
                    "satchelctl: %s is already provisioned (it has %s): not overwriting it\n",
                    values[1], DEVICE_CRT_FILE);
        else
            fprintf(stderr, "satchelctl: %s already holds %s from an unfinished provisioning: "
                    "remove it and try again\n", values[1], existing ? existing : "device files");
        return EXIT_FAIL;
    }
    if (ret != SAT_OK) {
        fprintf(stderr, "satchelctl: cannot provision the device: %s\n", sat_strerror(ret));
        return EXIT_FAIL;
    }
    printf("%s\n", id);
    return EXIT_OK;
}

/* ---- hub administration: run on the hub's machine, on its data dir ----- */

static int hub_open(const char *hub_dir, struct hub_store **out)
{
    char path[4096];
    char crt[4096];
    char why[HUB_ERRMSG_BYTES];
    int ret;
    snprintf(path, sizeof path, "%s/%s", hub_dir, HUB_DB_FILE);
    snprintf(crt, sizeof crt, "%s/hub.crt", hub_dir);
    /* A hub's directory has its certificate (and, once used, hub.db): do
     * not create a database somewhere that is not one. */
    if (access(path, F_OK) != 0 && access(crt, F_OK) != 0) {
        fprintf(stderr, "satchelctl: '%s' is not a hub's data directory (no hub.db or hub.crt): "
                        "make one with 'satchelctl hub-cert --out %s'\n", hub_dir, hub_dir);
        return SAT_ERR_NOT_FOUND;
    }
    ret = hub_store_open(path, out, why);
    if (ret != SAT_OK)
        fprintf(stderr, "satchelctl: cannot open the hub's database %s: %s\n", path,
                why[0] ? why : sat_strerror(ret));
    return ret;
}

static int id_bytes(const char *hex, uint8_t out[SAT_ID_BYTES])
{
    return sat_hex_decode(hex, out, SAT_ID_BYTES) == SAT_OK ? 0 : -1;
}

/* device register|revoke --hub-data HUBDIR --id HEX32 [--team TEAM] */
static int cmd_device_hub(int argc, char **argv, int revoke)
{
    static const struct option opts[] = { { "hub-data", required_argument, NULL, 0 },
                                          { "id", required_argument, NULL, 1 },
                                          { "team", required_argument, NULL, 2 },
                                          { "help", no_argument, NULL, 3 },
                                          { NULL, 0, NULL, 0 } };
    const char *values[4] = { NULL, NULL, NULL, NULL };
    const char *cmd = revoke ? "device revoke" : "device register";
    uint8_t id[SAT_ID_BYTES];
    struct hub_store *hub = NULL;
    int ret = parse_options(argc, argv, 2, opts, values, cmd);
    if (ret != OPTIONS_OK)
        return ret;
    if (!values[0] || !values[1] || (!revoke && !values[2]))
        return usage_errorf(revoke ? "'device revoke' needs --hub-data HUBDIR and --id HEX32"
                                   : "'device register' needs --hub-data HUBDIR, --id HEX32 "
                                     "and --team TEAM");
    if (revoke && values[2])
        return usage_errorf("'device revoke' takes no --team");
    if (id_bytes(values[1], id) != 0)
        return usage_error("bad --id '%s': a device id is 32 hex digits", values[1]);
    if (!revoke && !team_valid(values[2]))
        return usage_error("bad --team '%s': 1 to 64 letters, digits, spaces, '.', '_' or '-'",
                           values[2]);
    if (hub_open(values[0], &hub) != SAT_OK)
        return EXIT_FAIL;
    ret = revoke ? hub_store_device_revoke(hub, id) : hub_store_device_register(hub, id, values[2]);
    if (ret != SAT_OK)
        fprintf(stderr, "satchelctl: %s\n", hub_store_errmsg(hub)[0] ? hub_store_errmsg(hub)
                                                                     : sat_strerror(ret));
    else if (revoke)
        printf("device %s revoked: at its next sync it wipes its keys and records\n", values[1]);
    else
        printf("device %s registered in team %s\n", values[1], values[2]);
    hub_store_close(hub);
    return ret == SAT_OK ? EXIT_OK : EXIT_FAIL;
}

static int cmd_device(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "";
    if (strcmp(sub, "provision") == 0)
        return cmd_device_provision(argc, argv);
    if (strcmp(sub, "register") == 0)
        return cmd_device_hub(argc, argv, 0);
    if (strcmp(sub, "revoke") == 0)
        return cmd_device_hub(argc, argv, 1);
    return usage_error("unknown device command '%s' (provision, register, revoke)", sub);
}

/* patient assign --hub-data HUBDIR --patient HEX32 --team TEAM */
static int cmd_patient(int argc, char **argv)
{
    static const struct option opts[] = { { "hub-data", required_argument, NULL, 0 },
                                          { "patient", required_argument, NULL, 1 },
                                          { "team", required_argument, NULL, 2 },
                                          { "help", no_argument, NULL, 3 },
                                          { NULL, 0, NULL, 0 } };
    const char *values[4] = { NULL, NULL, NULL, NULL };
    uint8_t id[SAT_ID_BYTES];
    struct hub_store *hub = NULL;
    int ret;
    if (argc < 2 || strcmp(argv[1], "assign") != 0)
        return usage_error("unknown patient command '%s' (assign)", argc > 1 ? argv[1] : "");
    ret = parse_options(argc, argv, 2, opts, values, "patient assign");
    if (ret != OPTIONS_OK)
        return ret;
    if (!values[0] || !values[1] || !values[2])
        return usage_errorf("'patient assign' needs --hub-data HUBDIR, --patient ID and "
                            "--team TEAM");
    if (id_bytes(values[1], id) != 0)
        return usage_error("bad --patient '%s': a record id is 32 hex digits", values[1]);
    if (!team_valid(values[2]))
        return usage_error("bad --team '%s': 1 to 64 letters, digits, spaces, '.', '_' or '-'",
                           values[2]);
    if (hub_open(values[0], &hub) != SAT_OK)
        return EXIT_FAIL;
    ret = hub_store_patient_assign(hub, id, values[2], NULL);
    if (ret != SAT_OK)
        fprintf(stderr, "satchelctl: %s\n", hub_store_errmsg(hub)[0] ? hub_store_errmsg(hub)
                                                                     : sat_strerror(ret));
    else
        printf("patient %s now in team %s: the old team's tablets drop it at their next "
               "sync\n", values[1], values[2]);
    hub_store_close(hub);
    return ret == SAT_OK ? EXIT_OK : EXIT_FAIL;
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
    if (strcmp(argv[optind], "ca") == 0)
        return cmd_ca(argc - optind, argv + optind);
    if (strcmp(argv[optind], "hub-cert") == 0)
        return cmd_hub_cert(argc - optind, argv + optind);
    if (strcmp(argv[optind], "device") == 0)
        return cmd_device(argc - optind, argv + optind);
    if (strcmp(argv[optind], "patient") == 0)
        return cmd_patient(argc - optind, argv + optind);
    return usage_error("unknown command '%s'", argv[optind]);
}
