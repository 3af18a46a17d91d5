/*
 * hub_main.c - `satchel-hub`, the sync hub daemon, on the POSIX HAL.
 *
 *   satchel-hub --listen 127.0.0.1:7443 --data DIR
 *
 * DIR holds the hub's certificate and key (hub.crt, hub.key and the fleet's
 * ca.crt, made by `satchelctl hub-cert --out DIR`) and its database hub.db.
 * One thread serves many devices: hub_server.h accepts them and steps each
 * connection's TLS handshake and hub session, non-blocking state machines;
 * this file only waits (hal_net_wait) for what the server asks and steps it.
 *
 * SIGTERM or SIGINT: stop accepting, end every session (a device whose
 * push was not yet acknowledged sends it again next time: every
 * acknowledged push is already durable), close the database, exit 0.
 */
#define _POSIX_C_SOURCE 200809L

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hal_posix.h"
#include "hub_server.h"
#include "pki.h"
#include "sat_hostport.h"
#include "sat_wipe.h"
#include "tls.h"

/* Longest hal_net_wait: how soon a SIGTERM is noticed (poll restarts after
 * a signal, so the flag is checked between waits). */
#define HUB_WAIT_MS 1000u
#define HUB_DB_NAME "hub.db"

struct hub {
    struct hal hal;
    struct hub_store *store;
    struct tls_config *tls;
    struct hub_server srv;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static const char usage_text[] =
    "Usage: satchel-hub --listen HOST:PORT --data DIR\n"
    "       satchel-hub --help | --version\n"
    "\n"
    "The Satchel sync hub: tablets connect over mutual TLS, push their changes\n"
    "and pull their team's caseload.\n"
    "\n"
    "  -l, --listen HOST:PORT  address to listen on (e.g. 127.0.0.1:7443; port 0\n"
    "                          picks a free one, printed at start)\n"
    "  -d, --data DIR          the hub's directory: hub.crt, hub.key, ca.crt\n"
    "                          (from 'satchelctl hub-cert --out DIR') and hub.db\n"
    "  -v, --verbose           log every session\n"
    "  -h, --help, -V, --version\n"
    "\n"
    "Stops cleanly on SIGTERM or SIGINT. Exit status: 0 stopped cleanly,\n"
    "1 could not start, 2 usage error.\n";

/* The driver: wait for what the server waits for (at most HUB_WAIT_MS, to
 * notice SIGTERM), step it, until asked to stop. */
static void serve(struct hub *hub)
{
    static struct hub_server_wait w;
    unsigned ready[HUB_SERVER_WAIT_SLOTS];
    while (!stop_requested) {
        uint32_t wait_ms = HUB_WAIT_MS;
        uint64_t now;
        hub_server_wait_set(&hub->srv, &w);
        now = hal_clock_monotonic_ms(&hub->hal);
        if (w.timer_ms <= now)
            wait_ms = 0;
        else if (w.timer_ms - now < wait_ms)
            wait_ms = (uint32_t)(w.timer_ms - now);
        memset(ready, 0, sizeof ready);
        (void)hal_net_wait(&hub->hal, w.socks, w.want, ready, w.n, wait_ms);
        if (hub_server_step(&hub->srv, ready, w.n) != SAT_OK)
            break; /* not running: nothing left to serve */
    }
    hub_server_stop(&hub->srv);
}

static int load_pem(struct hub *hub, const char *name, char **out)
{
    int ret;
    *out = malloc(PKI_FILE_BYTES_MAX + 1);
    if (!*out)
        return SAT_ERR_NO_MEMORY;
    ret = pki_file_read(&hub->hal, name, *out, PKI_FILE_BYTES_MAX + 1, NULL);
    if (ret != SAT_OK)
        fprintf(stderr, "satchel-hub: cannot read %s in the data directory: %s "
                        "(make it with 'satchelctl hub-cert --out DIR')\n",
                name, sat_strerror(ret));
    return ret;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "listen", required_argument, NULL, 'l' }, { "data", required_argument, NULL, 'd' },
        { "verbose", no_argument, NULL, 'v' },      { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },      { NULL, 0, NULL, 0 },
    };
    static struct hub hub;
    const char *listen_spec = NULL;
    const char *data = NULL;
    char host[256];
    char db_path[4096];
    char why[HUB_ERRMSG_BYTES] = "";
    char *ca = NULL;
    char *crt = NULL;
    char *key = NULL;
    uint16_t port = 0;
    int verbose = 0;
    int c;
    int ret;
    struct sigaction sa;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":l:d:vhV", opts, NULL)) != -1) {
        switch (c) {
        case 'l': listen_spec = optarg; break;
        case 'd': data = optarg; break;
        case 'v': verbose = 1; break;
        case 'h': fputs(usage_text, stdout); return 0;
        case 'V': printf("satchel-hub %s (protocol %d)\n", SATCHEL_VERSION, PROTO_VERSION); return 0;
        case ':':
            fprintf(stderr, "satchel-hub: option '%s' needs an argument (try --help)\n",
                    argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "satchel-hub: unknown option '%s' (try --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc || !listen_spec || !data) {
        fprintf(stderr, "satchel-hub: needs --listen HOST:PORT and --data DIR (try --help)\n");
        return 2;
    }
    /* Port 0: any free port (the hub prints the one it got). */
    if (sat_hostport_parse(listen_spec, SAT_HOSTPORT_ANY_PORT, host, sizeof host, &port) !=
        SAT_OK) {
        fprintf(stderr, "satchel-hub: --listen wants HOST:PORT, not '%s'\n", listen_spec);
        return 2;
    }
    ret = hal_posix_open(&hub.hal, data);
    if (ret != SAT_OK) {
        fprintf(stderr, "satchel-hub: cannot open '%s': %s\n", data, sat_strerror(ret));
        return 1;
    }
    if (verbose)
        hal_posix_set_log_level(&hub.hal, HAL_LOG_INFO);
    snprintf(db_path, sizeof db_path, "%s/%s", data, HUB_DB_NAME);
    ret = load_pem(&hub, "ca.crt", &ca);
    if (ret == SAT_OK)
        ret = load_pem(&hub, "hub.crt", &crt);
    if (ret == SAT_OK)
        ret = load_pem(&hub, "hub.key", &key);
    if (ret == SAT_OK && (ret = hub_store_open(db_path, &hub.store, why)) != SAT_OK)
        fprintf(stderr, "satchel-hub: cannot open %s: %s\n", db_path,
                why[0] ? why : sat_strerror(ret));
    if (ret == SAT_OK &&
        (ret = tls_config_server(&hub.tls, &hub.hal, ca, crt, key, hub_server_admit,
                                 hub.store)) != SAT_OK)
        fprintf(stderr, "satchel-hub: bad certificate or key in '%s': %s\n", data,
                sat_strerror(ret));
    if (ret == SAT_OK) {
        struct hub_server_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.hal = &hub.hal;
        cfg.store = hub.store;
        cfg.tls = hub.tls;
        cfg.listen_host = host;
        cfg.listen_port = port;
        cfg.log_sessions = verbose;
        ret = hub_server_init(&hub.srv, &cfg);
        if (ret != SAT_OK)
            fprintf(stderr, "satchel-hub: cannot listen on %s: %s\n", listen_spec,
                    ret == SAT_ERR_EXISTS ? "address already in use" : sat_strerror(ret));
    }
    if (key)
        sat_wipe(key, PKI_FILE_BYTES_MAX + 1);
    free(ca);
    free(crt);
    free(key);
    if (ret != SAT_OK) {
        tls_config_free(hub.tls);
        hub_store_close(hub.store);
        hal_posix_close(&hub.hal);
        return 1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    {
        uint16_t bound = port;
        if (hub_server_port(&hub.srv, &bound) != SAT_OK)
            bound = port;
        fprintf(stderr, "satchel-hub: listening on %s:%u, data in %s\n", host, (unsigned)bound,
                data);
    }
    serve(&hub);
    tls_config_free(hub.tls);
    hub_store_close(hub.store);
    fprintf(stderr, "satchel-hub: stopped cleanly (%llu sessions, %llu failed)\n",
            (unsigned long long)hub_server_stats(&hub.srv)->sessions_ok,
            (unsigned long long)hub_server_stats(&hub.srv)->sessions_failed);
    hal_posix_close(&hub.hal);
    return 0;
}
