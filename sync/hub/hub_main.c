/*
 * hub_main.c - `satchel-hub`, the sync hub daemon, on the POSIX HAL.
 *
 *   satchel-hub --listen 127.0.0.1:7443 --data DIR
 *
 * DIR holds the hub's certificate and key (hub.crt, hub.key and the fleet's
 * ca.crt, made by `satchelctl hub-cert --out DIR`) and its database hub.db.
 * One thread serves many devices: every connection is a TLS handshake and
 * then a hub session, both non-blocking state machines stepped when the
 * HAL says their socket is ready.
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
#include "hub_session.h"
#include "pki.h"
#include "tls.h"

#define HUB_CONNECTIONS_MAX 64
#define HUB_IDLE_MS 60000u
#define HUB_WAIT_MS 1000u
#define HUB_DB_NAME "hub.db"

enum conn_state { CONN_FREE, CONN_HANDSHAKE, CONN_SESSION, CONN_CLOSING };

struct conn {
    enum conn_state state;
    hal_sock *sock;
    struct tls_conn *tls;
    struct hub_session *sess;
    uint64_t last_ms;
    char peer[TLS_PEER_CN_BYTES_MAX + 1];
};

struct hub {
    struct hal hal;
    struct hub_store *store;
    struct tls_config *tls;
    hal_sock *listener;
    struct conn conns[HUB_CONNECTIONS_MAX];
    uint64_t sessions_ok;
    uint64_t sessions_failed;
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

static int hex_id(const char *hex, uint8_t out[HUB_ID_BYTES])
{
    if (strlen(hex) != 2 * HUB_ID_BYTES)
        return -1;
    for (int i = 0; i < HUB_ID_BYTES; i++) {
        unsigned v = 0;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

/* TLS admission: only devices the hub knows. A revoked device is still
 * admitted, so that its Hello can learn that it must wipe itself. */
static int admit(void *arg, const char *peer_cn)
{
    struct hub *hub = arg;
    struct hub_device dev;
    uint8_t id[HUB_ID_BYTES];
    if (hex_id(peer_cn, id) != 0)
        return -1;
    return hub_store_device_get(hub->store, id, &dev) == SAT_OK ? 0 : -1;
}

static int64_t hub_clock(void *arg)
{
    return hal_clock_wall_ms(arg);
}

static int io_send(void *arg, const void *buf, size_t len, size_t *sent)
{
    return tls_conn_send(arg, buf, len, sent);
}

static int io_recv(void *arg, void *buf, size_t len, size_t *got)
{
    int ret = tls_conn_recv(arg, buf, len, got);
    return ret == SAT_ERR_TLS_CLOSED ? SAT_ERR_CLOSED : ret;
}

static void conn_close(struct hub *hub, struct conn *c)
{
    if (c->tls) {
        tls_conn_close_notify(c->tls); /* best effort: the socket goes now */
        tls_conn_free(c->tls);
    }
    if (c->sock)
        hal_net_close(&hub->hal, c->sock);
    free(c->sess);
    memset(c, 0, sizeof *c);
}

static void conn_step(struct hub *hub, struct conn *c, int verbose)
{
    int ret;
    if (c->state == CONN_HANDSHAKE) {
        uint8_t id[HUB_ID_BYTES];
        struct frame_io io;
        ret = tls_conn_handshake(c->tls);
        if (ret == SAT_ERR_WOULD_BLOCK)
            return;
        if (ret != SAT_OK) {
            hal_log(&hub->hal, HAL_LOG_WARN, "connection refused: %s", sat_strerror(ret));
            hub->sessions_failed++;
            conn_close(hub, c);
            return;
        }
        if (tls_conn_peer_cn(c->tls, c->peer, sizeof c->peer) != SAT_OK ||
            hex_id(c->peer, id) != 0 || !(c->sess = malloc(sizeof *c->sess))) {
            hal_log(&hub->hal, HAL_LOG_WARN, "connection refused: bad device certificate name");
            hub->sessions_failed++;
            conn_close(hub, c);
            return;
        }
        io.send = io_send;
        io.recv = io_recv;
        io.arg = c->tls;
        hub_session_init(c->sess, &io, hub->store, id, hub_clock, &hub->hal);
        c->state = CONN_SESSION;
        if (verbose)
            hal_log(&hub->hal, HAL_LOG_INFO, "device %.8s connected (%s%s)", c->peer,
                    tls_conn_suite(c->tls), tls_conn_resumed(c->tls) ? ", resumed" : "");
    }
    if (c->state == CONN_SESSION) {
        ret = hub_session_step(c->sess);
        if (ret == SAT_ERR_WOULD_BLOCK)
            return;
        if (ret == SAT_OK) {
            hub->sessions_ok++;
            if (verbose)
                hal_log(&hub->hal, HAL_LOG_INFO,
                        "device %.8s synced: %llu stored, %llu skipped, %llu pulled, %llu purged",
                        c->peer, (unsigned long long)c->sess->stats.pushed_stored,
                        (unsigned long long)c->sess->stats.pushed_skipped,
                        (unsigned long long)c->sess->stats.pulled,
                        (unsigned long long)c->sess->stats.purged);
        } else {
            hub->sessions_failed++;
            hal_log(&hub->hal, HAL_LOG_WARN, "device %.8s: session ended: %s", c->peer,
                    c->sess->errmsg[0] ? c->sess->errmsg : sat_strerror(ret));
        }
        conn_close(hub, c);
    }
}

static void accept_new(struct hub *hub)
{
    for (;;) {
        hal_sock *s = NULL;
        struct conn *slot = NULL;
        int ret = hal_net_accept(&hub->hal, hub->listener, &s);
        if (ret != SAT_OK)
            return;
        for (int i = 0; i < HUB_CONNECTIONS_MAX && !slot; i++)
            if (hub->conns[i].state == CONN_FREE)
                slot = &hub->conns[i];
        if (!slot) {
            hal_log(&hub->hal, HAL_LOG_WARN, "too many connections: refusing one");
            hal_net_close(&hub->hal, s);
            continue;
        }
        if (tls_conn_new(&slot->tls, hub->tls, s, NULL) != SAT_OK) {
            hal_net_close(&hub->hal, s);
            continue;
        }
        slot->sock = s;
        slot->state = CONN_HANDSHAKE;
        slot->last_ms = hal_clock_monotonic_ms(&hub->hal);
    }
}

static int serve(struct hub *hub, int verbose)
{
    hal_sock *socks[HUB_CONNECTIONS_MAX + 1];
    unsigned want[HUB_CONNECTIONS_MAX + 1];
    unsigned ready[HUB_CONNECTIONS_MAX + 1];
    int idx[HUB_CONNECTIONS_MAX + 1];
    while (!stop_requested) {
        size_t n = 0;
        uint32_t wait_ms = HUB_WAIT_MS;
        uint64_t now;
        socks[n] = hub->listener;
        want[n] = HAL_NET_READABLE;
        idx[n++] = -1;
        for (int i = 0; i < HUB_CONNECTIONS_MAX; i++) {
            struct conn *c = &hub->conns[i];
            if (c->state == CONN_FREE)
                continue;
            socks[n] = c->sock;
            if (c->tls && tls_conn_pending(c->tls))
                wait_ms = 0; /* decrypted input is waiting already */
            if (c->state == CONN_HANDSHAKE)
                want[n] = tls_conn_wants(c->tls) ? tls_conn_wants(c->tls) : HAL_NET_READABLE;
            else
                want[n] = hub_session_wants_read(c->sess) ? HAL_NET_READABLE : HAL_NET_WRITABLE;
            idx[n++] = i;
        }
        hal_net_wait(&hub->hal, socks, want, ready, n, wait_ms);
        now = hal_clock_monotonic_ms(&hub->hal);
        if (ready[0])
            accept_new(hub);
        for (size_t k = 1; k < n; k++) {
            struct conn *c = &hub->conns[idx[k]];
            if (c->state == CONN_FREE)
                continue;
            if (ready[k] || (c->tls && tls_conn_pending(c->tls))) {
                c->last_ms = now;
                conn_step(hub, c, verbose);
            } else if (now - c->last_ms > HUB_IDLE_MS) {
                hal_log(&hub->hal, HAL_LOG_WARN, "device %.8s idle too long: closing",
                        c->peer[0] ? c->peer : "(handshake)");
                conn_close(hub, c);
            }
        }
    }
    for (int i = 0; i < HUB_CONNECTIONS_MAX; i++)
        if (hub->conns[i].state != CONN_FREE)
            conn_close(hub, &hub->conns[i]);
    return 0;
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

static int split_listen(const char *spec, char *host, size_t cap, uint16_t *port)
{
    const char *colon = strrchr(spec, ':');
    char *end = NULL;
    long p;
    if (!colon || colon == spec || (size_t)(colon - spec) >= cap)
        return -1;
    p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p < 0 || p > 65535) /* 0: any free port */
        return -1;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    *port = (uint16_t)p;
    return 0;
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
    if (split_listen(listen_spec, host, sizeof host, &port) != 0) {
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
    if (ret == SAT_OK && (ret = hub_store_sqlite_open(db_path, &hub.store)) != SAT_OK)
        fprintf(stderr, "satchel-hub: cannot open %s: %s\n", db_path, sat_strerror(ret));
    if (ret == SAT_OK &&
        (ret = tls_config_server(&hub.tls, &hub.hal, ca, crt, key, admit, &hub)) != SAT_OK)
        fprintf(stderr, "satchel-hub: bad certificate or key in '%s': %s\n", data,
                sat_strerror(ret));
    if (ret == SAT_OK && (ret = hal_net_listen(&hub.hal, host, port, &hub.listener)) != SAT_OK)
        fprintf(stderr, "satchel-hub: cannot listen on %s: %s\n", listen_spec,
                ret == SAT_ERR_EXISTS ? "address already in use" : sat_strerror(ret));
    if (key)
        memset(key, 0, PKI_FILE_BYTES_MAX + 1);
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
        hal_net_local_port(&hub.hal, hub.listener, &bound);
        fprintf(stderr, "satchel-hub: listening on %s:%u, data in %s\n", host, (unsigned)bound,
                data);
    }
    serve(&hub, verbose);
    hal_net_close(&hub.hal, hub.listener);
    tls_config_free(hub.tls);
    hub_store_close(hub.store);
    fprintf(stderr, "satchel-hub: stopped cleanly (%llu sessions, %llu failed)\n",
            (unsigned long long)hub.sessions_ok, (unsigned long long)hub.sessions_failed);
    hal_posix_close(&hub.hal);
    return 0;
}
