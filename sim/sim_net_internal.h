/*
 * sim_net_internal.h - the virtual network's state, shared by sim_net.c
 * (the network: nodes, links, connections and their timing) and
 * sim_sock.c (the HAL's net_* members: sockets over it); not for use
 * elsewhere.
 *
 * A connection is one struct sim_conn with two ends (0: the connecting
 * side, 1: the listening side) and two queues of chunks, dir[e] holding
 * what end e sent, each chunk stamped with its arrival time when it is
 * sent. Nothing is delivered by an event loop: every call compares those
 * stamps (and the connection's open and reset times) with the network's
 * virtual time, so the state at any time follows from the stamps alone.
 * An end is "released" when no socket will use it again (closed, or its
 * device powered off or freed); the connection is freed when both ends
 * are. sim_sock.c creates connections (net_connect) and links them into
 * the network's list; sim_net.c times, resets, releases and frees them.
 */
#ifndef SATCHEL_SIM_NET_INTERNAL_H
#define SATCHEL_SIM_NET_INTERNAL_H

#include "sim_hal_internal.h"

struct sim_chunk {
    struct sim_chunk *next;
    uint64_t arrival_ms;
    size_t len;
    size_t off; /* bytes of it already read */
    uint8_t data[];
};

struct sim_dir {
    struct sim_chunk *head;
    struct sim_chunk *tail;
    size_t unread;            /* queued: in flight or arrived, not yet read */
    uint64_t last_arrival_ms; /* no later chunk may arrive before this */
};

struct sim_end {
    size_t node;
    uint16_t port;
    int released;          /* no socket will use this end again */
    int closed;            /* released by net_close: the peer sees a clean end */
    uint64_t fin_ms;       /* closed: when the peer learns it */
    struct hal_sock *sock; /* NULL before accept and once released */
};

struct sim_conn {
    struct sim_conn *prev;
    struct sim_conn *next;
    uint64_t seq; /* creation order, for ties */
    int loopback;
    uint64_t open_ms; /* when the connect's outcome is known */
    int open_err;     /* that outcome */
    uint64_t reset_ms; /* UINT64_MAX: not reset */
    struct hal_sock *listener; /* end 1 waits to be accepted there */
    struct sim_end end[2];
    struct sim_dir dir[2]; /* dir[e]: bytes sent by end e */
};

struct sim_node {
    char addr[SIM_NET_ADDR_BYTES_MAX + 1];
    struct sim_hal *h; /* NULL while no device is attached */
    struct sim_link link;
    struct sim_net_stats stats;
    uint64_t tx_free_ms; /* uplink busy until (bandwidth-limited links) */
    uint64_t rx_free_ms; /* downlink busy until */
    uint32_t next_port;
    unsigned conn_ends; /* unreleased connection ends on this node */
};

struct sim_net {
    struct sim_prng prng;
    uint64_t now_ms;
    uint64_t next_seq;
    struct sim_node *nodes;
    size_t n_nodes;
    size_t cap_nodes;
    struct sim_conn *conns; /* oldest first */
    struct sim_conn *conns_tail;
};

struct hal_sock {
    struct sim_hal *owner;
    struct hal_sock *prev;
    struct hal_sock *next;
    uint64_t epoch; /* owner's power epoch when made: stale means dead */
    int listening;
    uint16_t port;         /* local port */
    struct sim_conn *conn; /* stream: NULL once its end is released */
    unsigned end;          /* stream: which end of conn */
    int reset_counted;
};

static inline uint64_t add_sat_u64(uint64_t a, uint64_t b)
{
    return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

/* 1 if host names the node itself: "127.0.0.1", "localhost", "::1". */
int sim_net_is_loopback(const char *host);
/* 1 if host is a wildcard address: "0.0.0.0", "::". */
int sim_net_is_any(const char *host);
/* Index of the node named addr, or -1. */
long sim_net_find_node(const struct sim_net *n, const char *addr);

/* Resets c from time t on (the earliest reset wins). */
void sim_conn_reset(struct sim_net *n, struct sim_conn *c, uint64_t t);
/* 1 if c is reset at the current time (its unread bytes are then gone). */
int sim_conn_is_reset(struct sim_net *n, struct sim_conn *c);
/* Releases end e of c; frees c when both ends are released. Returns 1 if c
 * was freed (the caller must not touch it again). */
int sim_end_release(struct sim_net *n, struct sim_conn *c, unsigned e);

/* Latency plus a jitter draw from node a to node b (no bandwidth term). */
uint64_t sim_net_one_way_ms(struct sim_net *n, size_t a, size_t b);
/* The arrival time of len bytes (0: the close) that end e of c sends now,
 * with the draws and bandwidth bookkeeping of sim_hal.h's link model. */
uint64_t sim_net_arrival_ms(struct sim_net *n, struct sim_conn *c, unsigned e, size_t len);

#endif
