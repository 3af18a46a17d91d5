/*
 * cmd_sync.c - `satchel sync` and `satchel conflicts`: the tablet and the
 * team's hub.
 *
 *   sync --hub HOST:PORT [--timeout SECONDS]
 *       one sync session (device.h's driver) over mutual TLS with the
 *       certificate that `satchelctl device provision` left in the data
 *       directory (ca.crt, device.crt, device.key, device.conf): pushes this
 *       device's changes, pulls the team's and prints what moved (and a
 *       warning on stderr when the clocks differ by more than 5 minutes).
 *       One attempt, no retry. Not provisioned, the hub unreachable or the
 *       handshake refused: exit 1. The hub revoked this device (its records
 *       and keys have been wiped): exit 7. Any other failure: the exit
 *       status of its error code (cli_exit_for).
 *   conflicts
 *       the concurrent edits the store's merge kept for a person to review,
 *       one line each: when, the record, the field, the value kept and the
 *       other one, with the devices they came from.
 *
 * The certificate files are read into buffers this file owns and frees;
 * the copy of the private key is wiped once device_init has taken it.
 */
#define _POSIX_C_SOURCE 200809L

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "device.h"
#include "device_conf.h"
#include "pki.h"
#include "record.h"
#include "sat_err.h"
#include "sat_hostport.h"
#include "sat_wipe.h"
#include "sync_glue.h"

#define SYNC_TIMEOUT_S_DEFAULT 120
/* Longest single wait while syncing: the driver's timers bound it anyway. */
#define SYNC_WAIT_MS_MAX 1000u

/* device.conf (device_conf.h): the id of this tablet's certificate. */
static int read_device_conf(struct app *a, struct device_conf *d)
{
    int ret = device_conf_read(&a->hal, d);
    if (ret == SAT_ERR_NOT_FOUND) {
        fprintf(stderr, "satchel: this device is not provisioned (no device.conf in %s): "
                        "run 'satchelctl device provision' first\n", a->data_dir);
        return EXIT_FAIL;
    }
    if (ret != SAT_OK) {
        fprintf(stderr, "satchel: device.conf in %s has no valid device_id\n", a->data_dir);
        return EXIT_FAIL;
    }
    return EXIT_OK;
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

int cmd_sync(struct app *a, int argc, char **argv)
{
    static const struct option opts[] = { { "hub", required_argument, NULL, 'H' },
                                          { "timeout", required_argument, NULL, 't' },
                                          { NULL, 0, NULL, 0 } };
    const char *hub = NULL;
    int timeout_s = SYNC_TIMEOUT_S_DEFAULT;
    char host[256];
    uint16_t port = 0;
    struct device_conf ident;
    struct sync_glue glue;
    struct device_config dc;
    struct device *dev = NULL;
    const struct device_result *last;
    char *pem[3] = { NULL, NULL, NULL };
    static const char *const pem_names[3] = { "ca.crt", "device.crt", "device.key" };
    int c;
    int rc;
    int ret;
    cli_reset_getopt();
    while ((c = cli_next_opt(argc, argv, opts)) != -1) {
        if (c == '?')
            return EXIT_USAGE;
        if (c == 'H')
            hub = optarg;
        else if (cli_parse_int(optarg, "--timeout", &timeout_s) != EXIT_OK || timeout_s < 1)
            return cli_usage_error("--timeout must be a number of seconds, not '%s'", optarg);
    }
    if (optind != argc)
        return cli_usage_error("'sync' takes no argument '%s'", argv[optind]);
    if (!hub)
        return cli_usage_error("'sync' needs --hub HOST:PORT%s", "");
    if (sat_hostport_parse(hub, 0, host, sizeof host, &port) != SAT_OK)
        return cli_usage_error("--hub wants HOST:PORT, not '%s'", hub);
    rc = cli_open_hal(a);
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
        rc = cli_unlock(a);
    if (rc == EXIT_OK && (ret = cli_open_caseload(a, "open")) != SAT_OK)
        rc = cli_exit_for(ret);
    if (rc == EXIT_OK)
        rc = cli_adopt_provisioned_id(a);
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
        memcpy(dc.device_id, ident.device_id, sizeof dc.device_id);
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
        rc = cli_exit_for(last->err);
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
    cli_format_time(c->detected_ms, t);
    printf("%s %s %.8s %s: kept \"%s\" (device %.8s), other \"%s\" (device %.8s)\n", t,
           kind ? kind : "record", rec, record_field_name(c->kind, c->field, field),
           c->kept ? c->kept : "", kept, c->lost ? c->lost : "", lost);
    return 0;
}

int cmd_conflicts(struct app *a, int argc, char **argv)
{
    int rc;
    int ret;
    if (argc != 1)
        return cli_usage_error("'conflicts' takes no argument '%s'", argv[1]);
    rc = cli_open_store(a);
    if (rc != EXIT_OK)
        return rc;
    ret = store_conflicts(a->store, print_conflict, NULL);
    return ret == SAT_OK ? EXIT_OK : cli_store_failed(a, ret);
}
