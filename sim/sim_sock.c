/*
 * sim_sock.c - the simulated HAL's net_* members: one device's sockets
 * over the virtual network (the stream contract in sim_hal.h).
 *
 * Owns: a device's sockets (s->socks), listeners and streams, dead ones
 * included, and the choice of local ports. Guarantees: hal.h's net_*
 * contract with sim_hal.h's timings; no call blocks or sleeps (net_wait
 * reports readiness at the network's current time); a socket made before
 * a power cut is dead (every call answers SAT_ERR_POWER_CUT, net_close
 * frees it); a device not attached to a network answers
 * SAT_ERR_NOT_SUPPORTED (net_close still frees). A connect's outcome and
 * its time are decided when net_connect is called. Callers: firmware code
 * through struct hal (sim_sock_install sets the members); sim_hal.c
 * (sim_sock_close_all from sim_hal_free). The connections themselves are
 * sim_net.c's (sim_net_internal.h).
 */
#include "sim_net_internal.h"

#include <stdlib.h>
#include <string.h>

#define NET_PORT_LAST 65535u
#define NET_PORTS_EPHEMERAL (NET_PORT_LAST - SIM_NET_PORT_EPHEMERAL_FIRST + 1u)

/* ---- ports and listeners ----------------------------------------------------- */

static int sock_live(const struct sim_hal *s, const struct hal_sock *sk)
{
    return !s->powered_off && sk->epoch == s->power_epoch;
}

/* The live listener of node on port, or NULL. */
static struct hal_sock *net_find_listener(const struct sim_net *n, size_t node, uint16_t port)
{
    const struct sim_hal *h = n->nodes[node].h;
    if (!h)
        return NULL;
    for (struct hal_sock *sk = h->socks; sk; sk = sk->next)
        if (sk->listening && sk->port == port && sock_live(h, sk))
            return sk;
    return NULL;
}

static unsigned net_count_listeners(const struct sim_net *n, size_t node)
{
    const struct sim_hal *h = n->nodes[node].h;
    unsigned count = 0;
    for (struct hal_sock *sk = h ? h->socks : NULL; sk; sk = sk->next)
        if (sk->listening && sock_live(h, sk))
            count++;
    return count;
}

/* The next ephemeral port of node that no listener of it holds, or 0. */
static uint16_t net_next_port(struct sim_net *n, size_t node)
{
    struct sim_node *nd = &n->nodes[node];
    for (uint32_t i = 0; i < NET_PORTS_EPHEMERAL; i++) {
        uint16_t p = (uint16_t)nd->next_port;
        nd->next_port = p == NET_PORT_LAST ? SIM_NET_PORT_EPHEMERAL_FIRST : p + 1u;
        if (!net_find_listener(n, node, p))
            return p;
    }
    return 0;
}

/* ---- virtual network: the HAL's net members ------------------------------ */

enum sock_kind { SOCK_ANY = -1, SOCK_STREAM = 0, SOCK_LISTENER = 1 };

static int sock_check(struct sim_hal *s, hal_sock *sk, enum sock_kind kind)
{
    if (!s->net)
        return SAT_ERR_NOT_SUPPORTED;
    if (!sk || sk->owner != s)
        return SAT_ERR_INVALID;
    if (!sock_live(s, sk))
        return SAT_ERR_POWER_CUT;
    if (kind != SOCK_ANY && sk->listening != (int)kind)
        return SAT_ERR_INVALID;
    return SAT_OK;
}

static void note_reset(struct sim_hal *s, hal_sock *sk)
{
    if (!sk->reset_counted) {
        sk->reset_counted = 1;
        s->net->nodes[s->node].stats.resets++;
    }
}

/* What net_send (sending) or net_recv would answer now on a live stream
 * socket: SAT_OK when it can move bytes, else the answer. No side effects
 * beyond dropping a reset connection's bytes. */
static int stream_state(struct sim_hal *s, hal_sock *sk, int sending)
{
    struct sim_net *n = s->net;
    struct sim_conn *c = sk->conn;
    const struct sim_end *peer;
    const struct sim_dir *d;
    if (!c || sim_conn_is_reset(n, c))
        return SAT_ERR_RESET;
    if (n->now_ms < c->open_ms)
        return SAT_ERR_WOULD_BLOCK;
    if (c->open_err != SAT_OK)
        return c->open_err;
    peer = &c->end[1u - sk->end];
    if (sending) {
        if (peer->closed && n->now_ms >= peer->fin_ms)
            return SAT_ERR_RESET; /* as EPIPE: the peer is gone */
        if (peer->released)
            return SAT_OK; /* bytes are dropped: no back-pressure */
        return c->dir[sk->end].unread < SIM_NET_CONN_BUFFER_BYTES_MAX ? SAT_OK
                                                                        : SAT_ERR_WOULD_BLOCK;
    }
    d = &c->dir[1u - sk->end];
    if (d->head && d->head->arrival_ms <= n->now_ms)
        return SAT_OK;
    if (!d->head && peer->closed && n->now_ms >= peer->fin_ms)
        return SAT_ERR_CLOSED;
    return SAT_ERR_WOULD_BLOCK;
}

static int sock_new(struct sim_hal *s, hal_sock **out)
{
    struct hal_sock *sk = calloc(1, sizeof *sk);
    if (!sk)
        return SAT_ERR_NO_MEMORY;
    sk->owner = s;
    sk->epoch = s->power_epoch;
    sk->next = s->socks;
    if (s->socks)
        s->socks->prev = sk;
    s->socks = sk;
    *out = sk;
    return SAT_OK;
}

static int sim_net_connect(void *ctx, const char *host, uint16_t port, hal_sock **out)
{
    struct sim_hal *s = ctx;
    struct sim_net *n = s->net;
    struct sim_node *self;
    struct sim_node *tgt;
    struct hal_sock *listener = NULL;
    struct hal_sock *sk = NULL;
    struct sim_conn *c;
    size_t target;
    int loopback;
    if (!n)
        return SAT_ERR_NOT_SUPPORTED;
    if (s->powered_off)
        return SAT_ERR_POWER_CUT;
    if (!host || !out)
        return SAT_ERR_INVALID;
    self = &n->nodes[s->node];
    loopback = sim_net_is_loopback(host) || strcmp(host, self->addr) == 0;
    if (loopback) {
        target = s->node;
    } else {
        long idx = sim_net_find_node(n, host);
        if (idx < 0 || !n->nodes[idx].h || !self->link.up)
            return SAT_ERR_UNREACHABLE;
        target = (size_t)idx;
    }
    if (self->conn_ends >= SIM_NET_NODE_CONNS_MAX)
        return SAT_ERR_NO_MEMORY;
    c = calloc(1, sizeof *c);
    if (!c || sock_new(s, &sk) != SAT_OK) {
        free(c);
        return SAT_ERR_NO_MEMORY;
    }
    tgt = &n->nodes[target];
    c->seq = n->next_seq++;
    c->loopback = loopback;
    c->reset_ms = UINT64_MAX;
    c->end[0].node = s->node;
    c->end[0].port = net_next_port(n, s->node);
    c->end[0].sock = sk;
    c->end[1].node = target;
    c->end[1].port = port;
    self->conn_ends++;
    /* The outcome is decided now; only its time lies ahead. */
    if (!loopback && (!tgt->link.up || tgt->h->powered_off))
        c->open_err = SAT_ERR_UNREACHABLE;
    else if (!(listener = net_find_listener(n, target, port)) ||
             tgt->conn_ends >= SIM_NET_NODE_CONNS_MAX)
        c->open_err = SAT_ERR_REFUSED;
    else {
        unsigned waiting = 0;
        for (const struct sim_conn *o = n->conns; o; o = o->next)
            waiting += o->listener == listener;
        if (waiting >= SIM_NET_LISTEN_BACKLOG_MAX)
            c->open_err = SAT_ERR_REFUSED;
    }
    if (c->open_err != SAT_OK) {
        c->end[1].released = 1; /* never existed */
        /* Refused or unreachable: the answer comes back, a round trip. */
        uint64_t rtt = 0;
        if (!loopback) {
            rtt = sim_net_one_way_ms(n, s->node, target);
            rtt = add_sat_u64(rtt, sim_net_one_way_ms(n, target, s->node));
        }
        c->open_ms = add_sat_u64(n->now_ms, rtt);
    } else {
        c->listener = listener;
        tgt->conn_ends++;
        c->open_ms = loopback ? n->now_ms
                              : add_sat_u64(n->now_ms, sim_net_one_way_ms(n, s->node, target));
    }
    /* Nothing travels before the connection is up. */
    c->dir[0].last_arrival_ms = c->open_ms;
    c->dir[1].last_arrival_ms = c->open_ms;
    c->prev = n->conns_tail;
    if (n->conns_tail)
        n->conns_tail->next = c;
    else
        n->conns = c;
    n->conns_tail = c;
    sk->conn = c;
    sk->end = 0;
    sk->port = c->end[0].port;
    n->nodes[s->node].stats.connects++;
    *out = sk;
    return SAT_OK;
}

static int sim_net_connect_status(void *ctx, hal_sock *sk)
{
    struct sim_hal *s = ctx;
    struct sim_conn *c;
    int ret = sock_check(s, sk, SOCK_STREAM);
    if (ret != SAT_OK)
        return ret;
    c = sk->conn;
    if (!c || sim_conn_is_reset(s->net, c))
        ret = SAT_ERR_RESET;
    else if (s->net->now_ms < c->open_ms)
        ret = SAT_ERR_WOULD_BLOCK;
    else
        ret = c->open_err;
    if (ret == SAT_ERR_RESET)
        note_reset(s, sk);
    return ret;
}

static int sim_net_listen(void *ctx, const char *host, uint16_t port, hal_sock **out)
{
    struct sim_hal *s = ctx;
    struct sim_net *n = s->net;
    int ret;
    if (!n)
        return SAT_ERR_NOT_SUPPORTED;
    if (s->powered_off)
        return SAT_ERR_POWER_CUT;
    if (!out)
        return SAT_ERR_INVALID;
    if (host && host[0] != '\0' && !sim_net_is_loopback(host) && !sim_net_is_any(host) &&
        strcmp(host, n->nodes[s->node].addr) != 0)
        return SAT_ERR_INVALID;
    if (net_count_listeners(n, s->node) >= SIM_NET_NODE_LISTENERS_MAX)
        return SAT_ERR_NO_MEMORY;
    if (port == 0) {
        port = net_next_port(n, s->node);
        if (port == 0)
            return SAT_ERR_EXISTS;
    } else if (net_find_listener(n, s->node, port)) {
        return SAT_ERR_EXISTS;
    }
    ret = sock_new(s, out);
    if (ret != SAT_OK)
        return ret;
    (*out)->listening = 1;
    (*out)->port = port;
    return SAT_OK;
}

/* The connection waiting in listener l that came up first, if any; drops
 * the ones reset before being accepted when drop is set. */
static struct sim_conn *listener_ready(struct sim_net *n, const hal_sock *l, int drop)
{
    struct sim_conn *best = NULL;
    struct sim_conn *next;
    for (struct sim_conn *c = n->conns; c; c = next) {
        next = c->next;
        if (c->listener != l)
            continue;
        if (c->reset_ms <= n->now_ms) {
            if (drop)
                sim_end_release(n, c, 1);
            continue;
        }
        if (c->open_ms <= n->now_ms && (!best || c->open_ms < best->open_ms))
            best = c; /* the list is in creation order: ties keep the first */
    }
    return best;
}

static int sim_net_accept(void *ctx, hal_sock *l, hal_sock **out)
{
    struct sim_hal *s = ctx;
    struct sim_conn *c;
    hal_sock *sk = NULL;
    int ret = sock_check(s, l, SOCK_LISTENER);
    if (ret != SAT_OK)
        return ret;
    if (!out)
        return SAT_ERR_INVALID;
    c = listener_ready(s->net, l, 1);
    if (!c)
        return SAT_ERR_WOULD_BLOCK;
    ret = sock_new(s, &sk);
    if (ret != SAT_OK)
        return ret;
    c->listener = NULL;
    c->end[1].sock = sk;
    sk->conn = c;
    sk->end = 1;
    sk->port = c->end[1].port;
    s->net->nodes[s->node].stats.accepts++;
    *out = sk;
    return SAT_OK;
}

static int sim_net_local_port(void *ctx, hal_sock *sk, uint16_t *port)
{
    struct sim_hal *s = ctx;
    int ret = sock_check(s, sk, SOCK_ANY);
    if (ret != SAT_OK)
        return ret;
    if (!port)
        return SAT_ERR_INVALID;
    *port = sk->port;
    return SAT_OK;
}

static int sim_net_send(void *ctx, hal_sock *sk, const void *buf, size_t len, size_t *sent)
{
    struct sim_hal *s = ctx;
    struct sim_net *n = s->net;
    struct sim_conn *c;
    const uint8_t *p = buf;
    size_t room;
    size_t done = 0;
    int drop;
    int ret = sock_check(s, sk, SOCK_STREAM);
    if (ret != SAT_OK)
        return ret;
    if (!sent || (len > 0 && !buf))
        return SAT_ERR_INVALID;
    ret = stream_state(s, sk, 1);
    if (ret == SAT_ERR_RESET)
        note_reset(s, sk);
    if (ret != SAT_OK)
        return ret;
    c = sk->conn;
    drop = c->end[1u - sk->end].released;
    room = drop ? len : SIM_NET_CONN_BUFFER_BYTES_MAX - c->dir[sk->end].unread;
    if (len > room)
        len = room;
    while (done < len) {
        size_t k = len - done < SIM_NET_CHUNK_BYTES_MAX ? len - done : SIM_NET_CHUNK_BYTES_MAX;
        struct sim_chunk *ch = NULL;
        uint64_t at;
        if (!drop) {
            ch = malloc(sizeof *ch + k);
            if (!ch)
                break;
        }
        /* Dropped bytes still take the link's time (they were sent). */
        at = sim_net_arrival_ms(n, c, sk->end, k);
        if (ch) {
            struct sim_dir *d = &c->dir[sk->end];
            ch->next = NULL;
            ch->arrival_ms = at;
            ch->len = k;
            ch->off = 0;
            memcpy(ch->data, p + done, k);
            if (d->tail)
                d->tail->next = ch;
            else
                d->head = ch;
            d->tail = ch;
            d->unread += k;
        }
        done += k;
    }
    if (done == 0 && len > 0)
        return SAT_ERR_NO_MEMORY;
    n->nodes[s->node].stats.bytes_sent += done;
    *sent = done;
    return SAT_OK;
}

static int sim_net_recv(void *ctx, hal_sock *sk, void *buf, size_t len, size_t *got)
{
    struct sim_hal *s = ctx;
    struct sim_net *n = s->net;
    struct sim_dir *d;
    uint8_t *p = buf;
    size_t done = 0;
    int ret = sock_check(s, sk, SOCK_STREAM);
    if (ret != SAT_OK)
        return ret;
    if (!got || (len > 0 && !buf))
        return SAT_ERR_INVALID;
    ret = stream_state(s, sk, 0);
    if (ret == SAT_ERR_RESET)
        note_reset(s, sk);
    if (ret != SAT_OK)
        return ret;
    d = &sk->conn->dir[1u - sk->end];
    while (done < len && d->head && d->head->arrival_ms <= n->now_ms) {
        struct sim_chunk *ch = d->head;
        size_t k = ch->len - ch->off;
        if (k > len - done)
            k = len - done;
        memcpy(p + done, ch->data + ch->off, k);
        ch->off += k;
        done += k;
        d->unread -= k;
        if (ch->off == ch->len) {
            d->head = ch->next;
            if (!d->head)
                d->tail = NULL;
            free(ch);
        }
    }
    n->nodes[s->node].stats.bytes_received += done;
    *got = done;
    return SAT_OK;
}

static int sim_net_close(void *ctx, hal_sock *sk)
{
    struct sim_hal *s = ctx;
    struct sim_net *n = s->net;
    if (!sk)
        return SAT_OK;
    if (sk->owner != s)
        return SAT_ERR_INVALID; /* not ours: freeing it would corrupt its owner */
    if (n && sk->conn) {
        struct sim_conn *c = sk->conn;
        unsigned e = sk->end;
        if (!sim_conn_is_reset(n, c) && c->open_err == SAT_OK) {
            c->end[e].closed = 1;
            c->end[e].fin_ms = sim_net_arrival_ms(n, c, e, 0);
        }
        sim_end_release(n, c, e);
    } else if (n && sk->listening && sock_live(s, sk)) {
        struct sim_conn *next;
        for (struct sim_conn *c = n->conns; c; c = next) {
            next = c->next;
            if (c->listener != sk)
                continue;
            sim_conn_reset(n, c, n->now_ms);
            sim_end_release(n, c, 1);
        }
    }
    if (sk->prev)
        sk->prev->next = sk->next;
    else
        s->socks = sk->next;
    if (sk->next)
        sk->next->prev = sk->prev;
    free(sk);
    return SAT_OK;
}

static int sim_net_wait(void *ctx, hal_sock *const *socks, const unsigned *want, unsigned *ready,
                        size_t count, uint32_t timeout_ms)
{
    struct sim_hal *s = ctx;
    int any = 0;
    (void)timeout_ms; /* never sleeps: the simulator moves time */
    if (!s->net)
        return SAT_ERR_NOT_SUPPORTED;
    if (s->powered_off)
        return SAT_ERR_POWER_CUT;
    if (count > 0 && (!socks || !want || !ready))
        return SAT_ERR_INVALID;
    for (size_t i = 0; i < count; i++)
        if (!socks[i] || socks[i]->owner != s)
            return SAT_ERR_INVALID;
    for (size_t i = 0; i < count; i++) {
        hal_sock *sk = socks[i];
        unsigned r = 0;
        if (!sock_live(s, sk)) {
            r = want[i] & (HAL_NET_READABLE | HAL_NET_WRITABLE); /* the call will say */
        } else if (sk->listening) {
            if ((want[i] & HAL_NET_READABLE) && listener_ready(s->net, sk, 0))
                r |= HAL_NET_READABLE;
        } else {
            if ((want[i] & HAL_NET_READABLE) && stream_state(s, sk, 0) != SAT_ERR_WOULD_BLOCK)
                r |= HAL_NET_READABLE;
            if ((want[i] & HAL_NET_WRITABLE) && stream_state(s, sk, 1) != SAT_ERR_WOULD_BLOCK)
                r |= HAL_NET_WRITABLE;
        }
        ready[i] = r;
        any |= r != 0;
    }
    return any ? SAT_OK : SAT_ERR_TIMEOUT;
}

static int sim_net_link_up(void *ctx)
{
    struct sim_hal *s = ctx;
    if (!s->net || s->powered_off)
        return 0;
    return s->net->nodes[s->node].link.up ? 1 : 0;
}

void sim_sock_install(struct hal *hal)
{
    hal->net_connect = sim_net_connect;
    hal->net_connect_status = sim_net_connect_status;
    hal->net_listen = sim_net_listen;
    hal->net_accept = sim_net_accept;
    hal->net_local_port = sim_net_local_port;
    hal->net_send = sim_net_send;
    hal->net_recv = sim_net_recv;
    hal->net_close = sim_net_close;
    hal->net_wait = sim_net_wait;
    hal->net_link_up = sim_net_link_up;
}

void sim_sock_close_all(struct sim_hal *s)
{
    while (s->socks)
        sim_net_close(s, s->socks);
}
