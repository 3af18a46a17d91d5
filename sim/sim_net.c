/*
 * sim_net.c - the virtual network (struct sim_net; sim_hal.h): nodes and
 * their links, the connections between them and when each byte arrives.
 *
 * Owns: every struct sim_net from sim_net_new to sim_net_free, its nodes
 * (address, link, counters, bandwidth bookkeeping), its connections and
 * the chunks queued on them, and the network's own generator (seeded from
 * the seed mixed with NET_SEED_MIX, so drawing jitter and resets does not
 * shift any device's entropy). Guarantees: sim_hal.h's link model and
 * timings, with draws made in the order of the calls, so the same seed and
 * the same calls give the same arrival times; nothing reads a real clock.
 * Callers: the simulator and the tests through sim_hal.h's sim_net_*
 * functions (they move the time; this file never touches device clocks);
 * sim_sock.c through sim_net_internal.h (timing a send or a close,
 * resetting and releasing ends); sim_hal.c at a power cut and at
 * sim_hal_free (sim_net_drop_node, sim_net_detach).
 */
#include "sim_net_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- addresses ----------------------------------------------------------- */

#define NET_PER_MILLE 1000u
/* Mixed into the network's seed so that a network and a device given the
 * same seed do not draw the same stream. */
#define NET_SEED_MIX 0x6e6574776f726b21u

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static const char *const net_loopback_names[] = { "127.0.0.1", "localhost", "::1" };
static const char *const net_any_names[] = { "0.0.0.0", "::" };

static int name_in(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0)
            return 1;
    return 0;
}

int sim_net_is_loopback(const char *host)
{
    return name_in(host, net_loopback_names,
                   sizeof net_loopback_names / sizeof net_loopback_names[0]);
}

int sim_net_is_any(const char *host)
{
    return name_in(host, net_any_names, sizeof net_any_names / sizeof net_any_names[0]);
}

static int net_addr_valid(const char *addr)
{
    size_t n = addr ? strlen(addr) : 0;
    if (n == 0 || n > SIM_NET_ADDR_BYTES_MAX || sim_net_is_loopback(addr) || sim_net_is_any(addr))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = addr[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-' || c == ':';
        if (!ok)
            return 0;
    }
    return 1;
}

/* Index of the node named addr, or -1. */
long sim_net_find_node(const struct sim_net *n, const char *addr)
{
    for (size_t i = 0; i < n->n_nodes; i++)
        if (strcmp(n->nodes[i].addr, addr) == 0)
            return (long)i;
    return -1;
}

/* ---- virtual network: connections --------------------------------------- */

static void dir_free_chunks(struct sim_dir *d)
{
    while (d->head) {
        struct sim_chunk *c = d->head;
        d->head = c->next;
        free(c);
    }
    d->tail = NULL;
    d->unread = 0;
}

static void conn_free(struct sim_net *n, struct sim_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        n->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        n->conns_tail = c->prev;
    dir_free_chunks(&c->dir[0]);
    dir_free_chunks(&c->dir[1]);
    free(c);
}

/* Resets c from time t on (the earliest reset wins). */
void sim_conn_reset(struct sim_net *n, struct sim_conn *c, uint64_t t)
{
    if (t < c->reset_ms)
        c->reset_ms = t;
    if (c->reset_ms <= n->now_ms) {
        dir_free_chunks(&c->dir[0]);
        dir_free_chunks(&c->dir[1]);
    }
}

/* 1 if c is reset at the current time (its unread bytes are then gone). */
int sim_conn_is_reset(struct sim_net *n, struct sim_conn *c)
{
    if (c->reset_ms > n->now_ms)
        return 0;
    dir_free_chunks(&c->dir[0]);
    dir_free_chunks(&c->dir[1]);
    return 1;
}

/* Releases end e of c; frees c when both ends are released. Returns 1 if c
 * was freed (the caller must not touch it again). */
int sim_end_release(struct sim_net *n, struct sim_conn *c, unsigned e)
{
    struct sim_end *end = &c->end[e];
    if (end->released)
        return 0;
    end->released = 1;
    n->nodes[end->node].conn_ends--;
    if (end->sock) {
        end->sock->conn = NULL;
        end->sock = NULL;
    }
    if (e == 1)
        c->listener = NULL;
    dir_free_chunks(&c->dir[1u - e]); /* nobody will read them */
    if (c->end[0].released && c->end[1].released) {
        conn_free(n, c);
        return 1;
    }
    return 0;
}

/* Jitter in [0, range], drawn only when range > 0. */
static uint64_t net_jitter(struct sim_net *n, uint64_t range)
{
    return range == 0 ? 0 : sim_prng_below(&n->prng, range + 1u);
}

uint64_t sim_net_one_way_ms(struct sim_net *n, size_t a, size_t b)
{
    const struct sim_link *la = &n->nodes[a].link;
    const struct sim_link *lb = &n->nodes[b].link;
    uint64_t lat = (uint64_t)la->latency_ms + lb->latency_ms;
    return lat + net_jitter(n, (uint64_t)la->jitter_ms + lb->jitter_ms);
}

static uint64_t ceil_div_u64(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* The arrival time of len bytes (0: the close) that end e of c sends now,
 * with the draws and bandwidth bookkeeping of sim_hal.h's link model. */
uint64_t sim_net_arrival_ms(struct sim_net *n, struct sim_conn *c, unsigned e, size_t len)
{
    struct sim_dir *d = &c->dir[e];
    uint64_t t = n->now_ms;
    if (!c->loopback) {
        struct sim_node *na = &n->nodes[c->end[e].node];
        struct sim_node *nb = &n->nodes[c->end[1u - e].node];
        if (len > 0 && na->link.bytes_per_ms > 0) {
            t = max_u64(t, na->tx_free_ms) + ceil_div_u64(len, na->link.bytes_per_ms);
            na->tx_free_ms = t;
        }
        t = add_sat_u64(t, sim_net_one_way_ms(n, c->end[e].node, c->end[1u - e].node));
        if (len > 0 && nb->link.bytes_per_ms > 0) {
            t = add_sat_u64(max_u64(t, nb->rx_free_ms), ceil_div_u64(len, nb->link.bytes_per_ms));
            nb->rx_free_ms = t;
        }
    }
    t = max_u64(t, d->last_arrival_ms);
    d->last_arrival_ms = t;
    if (len > 0 && !c->loopback) {
        const struct sim_node *ends[2] = { &n->nodes[c->end[e].node],
                                           &n->nodes[c->end[1u - e].node] };
        for (unsigned i = 0; i < 2; i++) {
            uint32_t pm = ends[i]->link.reset_per_mille;
            if (pm > 0 && sim_prng_below(&n->prng, NET_PER_MILLE) < pm)
                sim_conn_reset(n, c, t);
        }
    }
    return t;
}

/* Resets and releases every connection end on node (power cut, detach). */
void sim_net_drop_node(struct sim_net *n, size_t node)
{
    struct sim_conn *next;
    for (struct sim_conn *c = n->conns; c; c = next) {
        next = c->next;
        if (c->end[0].node != node && c->end[1].node != node)
            continue;
        sim_conn_reset(n, c, n->now_ms);
        if (c->end[0].node == node && sim_end_release(n, c, 0))
            continue;
        if (c->end[1].node == node)
            sim_end_release(n, c, 1);
    }
}

void sim_net_detach(struct sim_hal *s)
{
    struct sim_net *n = s->net;
    sim_net_drop_node(n, s->node);
    n->nodes[s->node].h = NULL;
    s->net = NULL;
    for (struct hal_sock *sk = s->socks; sk; sk = sk->next)
        sk->conn = NULL;
}

/* ---- virtual network: public ---------------------------------------------- */

int sim_net_new(struct sim_net **out, uint64_t seed)
{
    struct sim_net *n;
    if (!out)
        return SAT_ERR_INVALID;
    n = calloc(1, sizeof *n);
    if (!n)
        return SAT_ERR_NO_MEMORY;
    sim_prng_seed(&n->prng, seed ^ NET_SEED_MIX);
    *out = n;
    return SAT_OK;
}

void sim_net_free(struct sim_net *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n_nodes; i++)
        if (n->nodes[i].h)
            sim_net_detach(n->nodes[i].h);
    while (n->conns) /* none should be left: every end was released */
        conn_free(n, n->conns);
    free(n->nodes);
    free(n);
}

int sim_net_attach(struct sim_net *n, struct sim_hal *h, const char *addr)
{
    long idx;
    struct sim_node *nd;
    if (!n || !h || h->net || !net_addr_valid(addr))
        return SAT_ERR_INVALID;
    idx = sim_net_find_node(n, addr);
    if (idx >= 0 && n->nodes[idx].h)
        return SAT_ERR_EXISTS;
    if (idx < 0) {
        if (n->n_nodes >= SIM_NET_NODES_MAX)
            return SAT_ERR_NO_MEMORY;
        if (n->n_nodes == n->cap_nodes) {
            size_t cap = n->cap_nodes ? n->cap_nodes * 2 : 8;
            struct sim_node *nodes = realloc(n->nodes, cap * sizeof *nodes);
            if (!nodes)
                return SAT_ERR_NO_MEMORY;
            n->nodes = nodes;
            n->cap_nodes = cap;
        }
        idx = (long)n->n_nodes++;
        nd = &n->nodes[idx];
        memset(nd, 0, sizeof *nd);
        memcpy(nd->addr, addr, strlen(addr) + 1);
        nd->link.up = 1;
        nd->next_port = SIM_NET_PORT_EPHEMERAL_FIRST;
    }
    n->nodes[idx].h = h;
    h->net = n;
    h->node = (size_t)idx;
    return SAT_OK;
}

void sim_net_set_now(struct sim_net *n, uint64_t now_ms)
{
    if (now_ms > n->now_ms)
        n->now_ms = now_ms;
}

uint64_t sim_net_now_ms(const struct sim_net *n)
{
    return n->now_ms;
}

uint64_t sim_net_next_event_ms(const struct sim_net *n)
{
    uint64_t now = n->now_ms;
    uint64_t best = UINT64_MAX;
    for (const struct sim_conn *c = n->conns; c; c = c->next) {
        if (c->reset_ms <= now)
            continue; /* nothing more will happen on it */
        best = c->reset_ms < best ? c->reset_ms : best;
        if (c->open_ms > now && c->open_ms < best)
            best = c->open_ms;
        for (unsigned e = 0; e < 2; e++) {
            const struct sim_end *peer = &c->end[1u - e];
            if (peer->released)
                continue; /* nobody reads what e sends */
            /* Chunks arrive in order: the first one still ahead is next. */
            for (const struct sim_chunk *ch = c->dir[e].head; ch; ch = ch->next)
                if (ch->arrival_ms > now) {
                    best = ch->arrival_ms < best ? ch->arrival_ms : best;
                    break;
                }
            if (c->end[e].closed && c->end[e].fin_ms > now && c->end[e].fin_ms < best)
                best = c->end[e].fin_ms;
        }
    }
    return best;
}

int sim_net_set_link(struct sim_net *n, const char *addr, const struct sim_link *l)
{
    long idx;
    struct sim_node *nd;
    if (!n || !addr || !l || l->reset_per_mille > SIM_NET_RESET_PER_MILLE_MAX)
        return SAT_ERR_INVALID;
    idx = sim_net_find_node(n, addr);
    if (idx < 0)
        return SAT_ERR_NOT_FOUND;
    nd = &n->nodes[idx];
    nd->link = *l;
    nd->link.up = l->up ? 1 : 0;
    if (!nd->link.up) {
        for (struct sim_conn *c = n->conns; c; c = c->next)
            if (!c->loopback && (c->end[0].node == (size_t)idx || c->end[1].node == (size_t)idx))
                sim_conn_reset(n, c, n->now_ms);
    }
    return SAT_OK;
}

int sim_net_stats(const struct sim_net *n, const char *addr, struct sim_net_stats *out)
{
    struct sim_net_stats sum = { 0 };
    if (!n || !out)
        return SAT_ERR_INVALID;
    if (addr) {
        long idx = sim_net_find_node(n, addr);
        if (idx < 0)
            return SAT_ERR_NOT_FOUND;
        *out = n->nodes[idx].stats;
        return SAT_OK;
    }
    for (size_t i = 0; i < n->n_nodes; i++) {
        const struct sim_net_stats *st = &n->nodes[i].stats;
        sum.bytes_sent += st->bytes_sent;
        sum.bytes_received += st->bytes_received;
        sum.connects += st->connects;
        sum.accepts += st->accepts;
        sum.resets += st->resets;
    }
    *out = sum;
    return SAT_OK;
}

int sim_hal_net_stats(const struct sim_hal *h, struct sim_net_stats *out)
{
    if (!h || !out)
        return SAT_ERR_INVALID;
    if (!h->net)
        return SAT_ERR_NOT_SUPPORTED;
    *out = h->net->nodes[h->node].stats;
    return SAT_OK;
}
