/* hub_server.c - see hub_server.h. */
#include "hub_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sat_err.h"
#include "sat_hex.h"

int hub_server_admit(void *store, const char *peer_cn)
{
    struct hub_device dev;
    uint8_t id[HUB_ID_BYTES];
    /* A device's CN is its id in hex. */
    if (store == NULL || sat_hex_decode(peer_cn, id, sizeof id) != SAT_OK)
        return -1;
    return hub_store_device_get(store, id, &dev) == SAT_OK ? 0 : -1;
}

/* The hub's wall clock for HelloAck. */
static int64_t server_clock(void *arg)
{
    return hal_clock_wall_ms(arg);
}

static int io_send(void *arg, const void *buf, size_t len, size_t *sent)
{
    return tls_conn_send(arg, buf, len, sent);
}

/* The device's close_notify ends the session like a TCP close would. */
static int io_recv(void *arg, void *buf, size_t len, size_t *got)
{
    int ret = tls_conn_recv(arg, buf, len, got);
    /* Only a close_notify ends a session cleanly; a bare end of the TCP
     * stream (a killed or unplugged device) is a broken link. */
    if (ret == SAT_ERR_CLOSED)
        return SAT_ERR_RESET;
    return ret == SAT_ERR_TLS_CLOSED ? SAT_ERR_CLOSED : ret;
}

static const struct hal *hal_of(const struct hub_server *s)
{
    return s->cfg.hal;
}

static void conn_close(struct hub_server *s, struct hub_server_conn *c)
{
    if (c->tls) {
        (void)tls_conn_close_notify(c->tls); /* best effort: the socket goes now */
        tls_conn_free(c->tls);
    }
    if (c->sock)
        hal_net_close(hal_of(s), c->sock);
    free(c->sess);
    memset(c, 0, sizeof *c);
    if (s->stats.open > 0)
        s->stats.open--;
}

static void remember(struct hub_server *s, const struct hub_server_conn *c, int result)
{
    struct hub_server_summary *e = NULL;
    for (size_t i = 0; i < s->devices_n && !e; i++)
        if (memcmp(s->devices[i].device, c->device, HUB_ID_BYTES) == 0)
            e = &s->devices[i];
    if (!e && s->devices_n < HUB_SERVER_DEVICES_MAX)
        e = &s->devices[s->devices_n++];
    if (!e) {
        e = &s->devices[s->devices_next];
        s->devices_next = (s->devices_next + 1) % HUB_SERVER_DEVICES_MAX;
    }
    memset(e, 0, sizeof *e);
    memcpy(e->device, c->device, HUB_ID_BYTES);
    memcpy(e->peer, c->peer, sizeof e->peer);
    e->result = result;
    e->resumed = c->resumed;
    e->ended_ms = hal_clock_monotonic_ms(hal_of(s));
    e->stats = c->sess->stats;
    if (result != SAT_OK)
        snprintf(e->msg, sizeof e->msg, "%s",
                 c->sess->errmsg[0] ? c->sess->errmsg : sat_strerror(result));
}

static void conn_handshake(struct hub_server *s, struct hub_server_conn *c)
{
    struct frame_io io;
    int ret = tls_conn_handshake(c->tls);
    if (ret == SAT_ERR_WOULD_BLOCK)
        return;
    if (ret != SAT_OK) {
        hal_log(hal_of(s), HAL_LOG_WARN, "connection refused: %s", sat_strerror(ret));
        s->stats.sessions_failed++;
        conn_close(s, c);
        return;
    }
    if (tls_conn_peer_cn(c->tls, c->peer, sizeof c->peer) != SAT_OK ||
        sat_hex_decode(c->peer, c->device, HUB_ID_BYTES) != SAT_OK ||
        !(c->sess = malloc(sizeof *c->sess))) {
        hal_log(hal_of(s), HAL_LOG_WARN, "connection refused: bad device certificate name");
        s->stats.sessions_failed++;
        conn_close(s, c);
        return;
    }
    c->resumed = tls_conn_resumed(c->tls);
    if (c->resumed)
        s->stats.handshakes_resumed++;
    else
        s->stats.handshakes_full++;
    io.send = io_send;
    io.recv = io_recv;
    io.arg = c->tls;
    hub_session_init(c->sess, &io, s->cfg.store, c->device, server_clock, (void *)hal_of(s));
    c->state = HUB_CONN_SESSION;
    if (s->cfg.log_sessions)
        hal_log(hal_of(s), HAL_LOG_INFO, "device %.8s connected (%s%s)", c->peer,
                tls_conn_suite(c->tls), c->resumed ? ", resumed" : "");
}

static void conn_session(struct hub_server *s, struct hub_server_conn *c)
{
    int ret = hub_session_step(c->sess);
    if (ret == SAT_ERR_WOULD_BLOCK)
        return;
    remember(s, c, ret);
    if (ret == SAT_OK) {
        s->stats.sessions_ok++;
        if (s->cfg.log_sessions)
            hal_log(hal_of(s), HAL_LOG_INFO,
                    "device %.8s synced: %llu stored, %llu skipped, %llu pulled, %llu purged",
                    c->peer, (unsigned long long)c->sess->stats.pushed_stored,
                    (unsigned long long)c->sess->stats.pushed_skipped,
                    (unsigned long long)c->sess->stats.pulled,
                    (unsigned long long)c->sess->stats.purged);
    } else {
        s->stats.sessions_failed++;
        hal_log(hal_of(s), HAL_LOG_WARN, "device %.8s: session ended: %s", c->peer,
                c->sess->errmsg[0] ? c->sess->errmsg : sat_strerror(ret));
    }
    conn_close(s, c);
}

/* One step of a connection: the handshake, and the session as soon as the
 * handshake is done (its first request may already be in). */
static void conn_step(struct hub_server *s, struct hub_server_conn *c)
{
    if (c->state == HUB_CONN_HANDSHAKE)
        conn_handshake(s, c);
    if (c->state == HUB_CONN_SESSION)
        conn_session(s, c);
}

static void accept_new(struct hub_server *s, uint64_t now)
{
    for (unsigned k = 0; k < HUB_SERVER_ACCEPTS_PER_STEP_MAX; k++) {
        hal_sock *sock = NULL;
        struct hub_server_conn *slot = NULL;
        if (hal_net_accept(hal_of(s), s->listener, &sock) != SAT_OK)
            return;
        s->stats.accepted++;
        for (int i = 0; i < HUB_SERVER_CONNECTIONS_MAX && !slot; i++)
            if (s->conns[i].state == HUB_CONN_FREE)
                slot = &s->conns[i];
        if (!slot) {
            hal_log(hal_of(s), HAL_LOG_WARN, "too many connections: refusing one");
            s->stats.refused_busy++;
            hal_net_close(hal_of(s), sock);
            continue;
        }
        if (tls_conn_new(&slot->tls, s->tls, sock, NULL) != SAT_OK) {
            slot->tls = NULL;
            hal_net_close(hal_of(s), sock);
            continue;
        }
        slot->sock = sock;
        slot->state = HUB_CONN_HANDSHAKE;
        slot->last_ms = now;
        s->stats.open++;
    }
}

int hub_server_init(struct hub_server *s, const struct hub_server_config *cfg)
{
    int ret = SAT_ERR_INVALID;
    if (s == NULL)
        return SAT_ERR_INVALID;
    memset(s, 0, sizeof *s);
    if (cfg == NULL || cfg->hal == NULL || cfg->store == NULL || cfg->listen_host == NULL ||
        (cfg->tls == NULL && (cfg->ca_pem == NULL || cfg->cert_pem == NULL ||
                              cfg->key_pem == NULL)))
        return SAT_ERR_INVALID;
    s->cfg = *cfg;
    s->cfg.ca_pem = NULL;
    s->cfg.cert_pem = NULL;
    s->cfg.key_pem = NULL;
    s->cfg.listen_host = NULL;
    if (cfg->tls) {
        s->tls = cfg->tls;
    } else {
        ret = tls_config_server(&s->tls, cfg->hal, cfg->ca_pem, cfg->cert_pem, cfg->key_pem,
                                hub_server_admit, cfg->store);
        if (ret != SAT_OK) {
            s->tls = NULL;
            return ret;
        }
        s->own_tls = 1;
    }
    ret = hal_net_listen(cfg->hal, cfg->listen_host, cfg->listen_port, &s->listener);
    if (ret != SAT_OK) {
        s->listener = NULL;
        if (s->own_tls)
            tls_config_free(s->tls);
        s->tls = NULL;
        s->own_tls = 0;
        return ret;
    }
    s->running = 1;
    return SAT_OK;
}

int hub_server_port(const struct hub_server *s, uint16_t *port)
{
    if (s == NULL || port == NULL || !s->running)
        return SAT_ERR_INVALID;
    return hal_net_local_port(hal_of(s), s->listener, port);
}

void hub_server_wait_set(struct hub_server *s, struct hub_server_wait *w)
{
    uint64_t now;
    w->n = 0;
    w->timer_ms = HUB_SERVER_TIMER_NONE;
    s->wait_n = 0;
    if (!s->running)
        return;
    now = hal_clock_monotonic_ms(hal_of(s));
    w->socks[0] = s->listener;
    w->want[0] = HAL_NET_READABLE;
    s->wait_conn[0] = -1;
    w->n = 1;
    for (int i = 0; i < HUB_SERVER_CONNECTIONS_MAX; i++) {
        struct hub_server_conn *c = &s->conns[i];
        uint64_t idle_end;
        if (c->state == HUB_CONN_FREE)
            continue;
        w->socks[w->n] = c->sock;
        if (c->state == HUB_CONN_HANDSHAKE)
            w->want[w->n] = tls_conn_wants(c->tls) ? tls_conn_wants(c->tls) : HAL_NET_READABLE;
        else
            w->want[w->n] = hub_session_wants_read(c->sess) ? HAL_NET_READABLE
                                                              : HAL_NET_WRITABLE;
        s->wait_conn[w->n] = i;
        w->n++;
        idle_end = c->last_ms + HUB_SERVER_IDLE_MS + 1u;
        if (w->want[w->n - 1] == HAL_NET_READABLE && tls_conn_pending(c->tls))
            idle_end = now; /* decrypted input is waiting already */
        if (idle_end < w->timer_ms)
            w->timer_ms = idle_end;
    }
    s->wait_n = w->n;
}

int hub_server_step(struct hub_server *s, const unsigned *ready, size_t n)
{
    uint64_t now;
    int all;
    int stepped[HUB_SERVER_CONNECTIONS_MAX] = { 0 };
    if (s == NULL || !s->running)
        return SAT_ERR_INVALID;
    all = ready == NULL || n != s->wait_n || n == 0;
    now = hal_clock_monotonic_ms(hal_of(s));
    /* The connections of the last wait set, by what it reported; then the
     * others (only when every socket counts as ready) and the idle rule.
     * Connections accepted below wait for the next step. */
    for (size_t k = 0; k < s->wait_n; k++) {
        int i = s->wait_conn[k];
        struct hub_server_conn *c;
        if (i < 0)
            continue;
        c = &s->conns[i];
        if (c->state == HUB_CONN_FREE)
            continue;
        if (all || ready[k] || tls_conn_pending(c->tls)) {
            c->last_ms = now;
            stepped[i] = 1;
            conn_step(s, c);
        }
    }
    for (int i = 0; i < HUB_SERVER_CONNECTIONS_MAX; i++) {
        struct hub_server_conn *c = &s->conns[i];
        if (c->state == HUB_CONN_FREE || stepped[i])
            continue;
        if (all) {
            c->last_ms = now;
            conn_step(s, c);
        } else if (now - c->last_ms > HUB_SERVER_IDLE_MS) {
            hal_log(hal_of(s), HAL_LOG_WARN, "device %.8s idle too long: closing",
                    c->peer[0] ? c->peer : "(handshake)");
            s->stats.idle_closed++;
            conn_close(s, c);
        }
    }
    if (all || (s->wait_n > 0 && ready[0]))
        accept_new(s, now);
    s->wait_n = 0; /* the set is used up: its connections may have changed */
    return SAT_OK;
}

void hub_server_stop(struct hub_server *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < HUB_SERVER_CONNECTIONS_MAX; i++)
        if (s->conns[i].state != HUB_CONN_FREE)
            conn_close(s, &s->conns[i]);
    if (s->listener)
        hal_net_close(hal_of(s), s->listener);
    s->listener = NULL;
    if (s->own_tls)
        tls_config_free(s->tls);
    s->tls = NULL;
    s->own_tls = 0;
    s->running = 0;
    s->wait_n = 0;
}

const struct hub_server_stats *hub_server_stats(const struct hub_server *s)
{
    return &s->stats;
}

int hub_server_device_last(const struct hub_server *s, const uint8_t device[HUB_ID_BYTES],
                           struct hub_server_summary *out)
{
    for (size_t i = 0; i < s->devices_n; i++) {
        if (memcmp(s->devices[i].device, device, HUB_ID_BYTES) == 0) {
            *out = s->devices[i];
            return SAT_OK;
        }
    }
    return SAT_ERR_NOT_FOUND;
}
