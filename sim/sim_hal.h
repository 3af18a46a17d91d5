/*
 * sim_hal.h - the HAL over virtual time and virtual flash, for tests and the
 * simulator. One seed drives everything: entropy, the order in which a power
 * cut drops, keeps or tears unsynced writes. The same seed replays a run
 * byte for byte.
 *
 * Virtual flash keeps, per file, what reads see now and what would survive
 * a power cut. Writes and truncates are pending until storage_sync on that
 * file (through any handle); creating and deleting a file are durable at
 * once (hal.h contract). At a power cut each file is replayed on its own,
 * from its durable bytes, through its pending operations in order, each
 * one chosen from the seed as SQLite's test6.c models a crash:
 *  - a write is dropped, kept or torn (one chance in three each). Torn: the
 *    part before a cut point (the write's start or a sector boundary of the
 *    file offset inside the write) lands, the sector after the cut point,
 *    clipped to the write's end, is filled with garbage, and every later
 *    pending operation of that file is dropped (the power was gone). A torn
 *    write past the end grows the file only up to where the garbage ends.
 *  - a truncate is dropped or kept (one chance in two).
 * Dropping one operation and keeping a later one is allowed: disk caches
 * reorder. The result is both what reads see and what is durable.
 * Deleting a file that has open handles removes the name at once; the
 * handles keep working on the orphan (as unlink(2)) until closed.
 * Limits: SAT_ERR_NO_SPACE when creating a file beyond SIM_FLASH_FILES_MAX,
 * or for a write or truncate beyond SIM_FLASH_FILE_BYTES_MAX.
 *
 * The key store is in memory and durable at once; counters are monotonic.
 * It, entropy and the clocks are untouched by power cuts and keep working
 * while the power is off (only storage is cut). The clocks only move when
 * told to (sim_hal_advance_ms). The log keeps its last lines in memory and
 * also prints them to stderr when SATCHEL_SIM_LOG is set. The net_* members
 * answer SAT_ERR_NOT_SUPPORTED (net_link_up 0) until the device is attached
 * to a virtual network (struct sim_net, below); power_battery_pct answers
 * SAT_ERR_NOT_SUPPORTED until sim_hal_set_battery gives it a battery. Boot
 * members are NULL for now (SAT_ERR_NOT_SUPPORTED).
 *
 * Entropy, the device secret, the cut decisions and the garbage of torn
 * sectors all come from one generator, so the same seed and the same
 * sequence of calls give the same bytes; no state is global, so several
 * simulated devices can live in one process.
 */
#ifndef SATCHEL_SIM_HAL_H
#define SATCHEL_SIM_HAL_H

#include <stddef.h>
#include <stdint.h>

#include "hal.h"

#define SIM_FLASH_SECTOR_BYTES 512
#define SIM_FLASH_FILES_MAX 64
#define SIM_FLASH_FILE_BYTES_MAX (256u * 1024u * 1024u)

struct sim_hal;

/* Creates a simulated device: no files, power on, no cut armed, monotonic
 * clock at 0, wall clock at wall_start_ms. SAT_ERR_NO_MEMORY on failure. */
SAT_CHECK int sim_hal_new(struct sim_hal **out, uint64_t seed, int64_t wall_start_ms);
/* Frees the device, including handles still open (dead or alive). NULL is
 * ignored. */
void sim_hal_free(struct sim_hal *s);

/* The HAL to hand to firmware code; valid until sim_hal_free. */
const struct hal *sim_hal_hal(struct sim_hal *s);

/* Clocks. The monotonic clock is the device's virtual elapsed time,
 * mono_ms, moved only by sim_hal_advance_ms and never scaled. The wall
 * clock is derived from it, exactly:
 *
 *   e       = mono_ms - base_mono_ms
 *   wall_ms = base_wall_ms + offset_ms + e + floor(e * drift_ppm / 1000000)
 *
 * with integer arithmetic (floor rounds toward minus infinity; e is taken
 * as at most INT64_MAX and each addition saturates at the int64 limits).
 * sim_hal_new sets base_wall_ms = wall_start_ms, base_mono_ms = 0,
 * offset_ms = 0, drift_ppm = 0, so by default wall = wall_start + mono.
 * Drift applies to the wall clock only. Power cuts do not touch either. */

/* Moves the monotonic clock forward by ms (saturating); the wall clock
 * follows through the formula above. */
void sim_hal_advance_ms(struct sim_hal *s, uint64_t ms);
/* Makes the wall clock read wall_ms now (may go backwards; the monotonic
 * clock does not): base_wall_ms = wall_ms - offset_ms, base_mono_ms =
 * mono_ms. From then on it runs on with the current offset and drift. */
void sim_hal_set_wall_ms(struct sim_hal *s, int64_t wall_ms);
/* Replaces offset_ms and drift_ppm in the formula above, effective at once
 * (the base is kept, so a new drift rescales the whole time elapsed since
 * the base: set it before the clock moves, or call sim_hal_set_wall_ms
 * first to re-base). drift_ppm outside [-1000000, 1000000] is
 * SAT_ERR_INVALID (-1000000 stops the wall clock; +1000000 runs it at
 * twice the speed). Example: offset -3600000, drift +50 ppm: after 10 s of
 * virtual time the wall clock reads wall_start - 3600000 + 10000 + 0 (the
 * drift term is floor(10000 * 50 / 1e6) = 0), after 1000 s it reads
 * wall_start - 3600000 + 1000000 + 50. */
SAT_CHECK int sim_hal_set_clock_skew(struct sim_hal *s, int64_t offset_ms, int32_t drift_ppm);

/* Battery: pct is clamped to 0..100, and any negative value means "no
 * battery" (mains powered), which is also the default. power_battery_pct
 * answers the value, or SAT_ERR_NOT_SUPPORTED with no battery. Nothing
 * happens at 0 %: cutting the power is the simulator's decision. */
void sim_hal_set_battery(struct sim_hal *s, int pct);

/* Storage writes + syncs + truncates so far: the "operation count" a power
 * cut sweep steps through. Counted: every such call made through a live
 * handle while the power is on, whatever it then returns (a write refused
 * with SAT_ERR_NO_SPACE counts; a zero-length write counts), and the one an
 * armed cut fires on. Not counted: calls while off or on dead handles, and
 * opens, reads, sizes, closes, deletes and lists. */
uint64_t sim_hal_storage_ops(const struct sim_hal *s);

/* Arms a power cut at the nth storage write/sync/truncate from now (1 = the
 * very next one), counted as sim_hal_storage_ops counts; 0 disarms; a new
 * call replaces the old arming. When it fires, that operation does not
 * happen (a write is not even pending, a sync makes nothing durable), the
 * cut is applied as by sim_hal_power_cut, and the operation and every later
 * storage call fail with SAT_ERR_POWER_CUT until sim_hal_power_on. It fires
 * once; any cut, fired or manual, disarms it. A sweep: for n = 1, 2, ...
 * replay the workload on a fresh device with the same seed and cut_at(n),
 * until a run ends without the cut firing. */
void sim_hal_cut_at(struct sim_hal *s, uint64_t nth);

/* 1 once an armed cut has fired (or sim_hal_power_cut was called) and power
 * is still off. */
int sim_hal_powered_off(const struct sim_hal *s);

/* Cuts power now: unsynced writes are dropped, kept or torn (see the top of
 * this file). Handles opened before the cut are dead, also after
 * sim_hal_power_on: every call on them fails with SAT_ERR_POWER_CUT
 * (storage_close just frees them and returns SAT_OK). No-op while off.
 * On a virtual network it also resets every connection of the device at
 * the network's current time (peers see SAT_ERR_RESET) and closes its
 * listeners; its sockets are dead like its file handles (every net call
 * on them answers SAT_ERR_POWER_CUT, net_close frees them). While off,
 * every net call answers SAT_ERR_POWER_CUT, net_link_up 0, and connects
 * to the device fail with SAT_ERR_UNREACHABLE. */
void sim_hal_power_cut(struct sim_hal *s);

/* Power back on: storage works again through newly opened handles; files
 * are as the cut left them. No-op while on. */
void sim_hal_power_on(struct sim_hal *s);

/* Test access to a file's bytes as they sit on flash now (current view;
 * right after a cut, what survived it). Works while powered off. *bytes
 * (never NULL, even for an empty file) stays valid until the next storage
 * call, power cut or sim_hal_free. Writing through it (bit rot, tampering)
 * changes what reads see at once, and also what survives a cut provided
 * the file has no pending operations (it was synced, or a cut just
 * happened); otherwise a cut replays from the durable bytes and the change
 * is lost. It cannot change the length. SAT_ERR_NOT_FOUND if there is no
 * such file. */
SAT_CHECK int sim_hal_file_bytes(struct sim_hal *s, const char *name, uint8_t **bytes, size_t *len);

/* ---- virtual network -----------------------------------------------------
 *
 * struct sim_net carries byte streams between simulated devices (tablets,
 * and the hub's own sim_hal) in one thread over virtual time, so real TLS
 * and real sync sessions run over it. Nothing blocks and nothing reads a
 * real clock: the network has its own virtual time, moved forward only by
 * sim_net_set_now, and every delivery, connect outcome and reset is a time
 * stamp compared against it. Jitter and reset decisions come from the
 * network's own generator (seeded by sim_net_new, independent of the
 * devices' generators), drawn in the order of the calls, so the same seed
 * and the same sequence of calls give the same arrival times.
 *
 * Driving time (the simulator's job): when virtual time moves from t0 to
 * t1, call sim_net_set_now(net, t1) AND sim_hal_advance_ms(dev, t1 - t0)
 * for every device; the network never touches device clocks (the net_*
 * calls use the network's time, the firmware's timers use its device's
 * monotonic clock). Then step every device until it would block;
 * net_wait never sleeps, it reports readiness at the current time, so a
 * loop waiting on it must advance time itself. sim_net_next_event_ms says
 * when the network will next change, to jump straight there.
 *
 * Nodes. sim_net_attach gives a device an address ("hub", "tablet-3");
 * others connect to that address as the host name. "127.0.0.1",
 * "localhost", "::1" and the node's own address reach the node itself
 * (loopback: no latency, jitter, bandwidth limit or reset draws, and not
 * affected by the link going down; a power cut still resets it). A node
 * keeps its address, link and counters when its device is freed; its
 * address can then be attached to another device.
 *
 * Links (sim_net_set_link, per node; default: up, no latency, unlimited,
 * no resets). A chunk from node A to node B (one net_send call is split
 * into chunks of at most SIM_NET_CHUNK_BYTES_MAX bytes) arrives at
 *   t  = now, or, if A has bytes_per_ms, max(now, A's uplink free time)
 *        + ceil(len / A.bytes_per_ms) (A's uplink is then busy until t)
 *   t += A.latency_ms + B.latency_ms + jitter, jitter uniform in
 *        [0, A.jitter_ms + B.jitter_ms] (drawn only when that is > 0)
 *   if B has bytes_per_ms: t = max(t, B's downlink free time)
 *        + ceil(len / B.bytes_per_ms) (B's downlink is then busy until t)
 *   arrival = max(t, arrival of the previous chunk in that direction)
 * so bytes stay in order and a node's bandwidth is shared by all its
 * connections. Then, for A and then B, if its reset_per_mille > 0, a draw
 * below reset_per_mille out of 1000 resets the connection at that
 * chunk's arrival time (the chunk is lost). Reset: from the reset time on,
 * both ends answer SAT_ERR_RESET to net_send, net_recv and
 * net_connect_status, and whatever was not yet read is discarded.
 * Taking a link down (up = 0) resets every connection of the node at the
 * current time (loopback excepted), including connects in progress and
 * connections waiting to be accepted; while it is down, net_connect from
 * the node fails at once with SAT_ERR_UNREACHABLE and connects to the
 * node fail with SAT_ERR_UNREACHABLE after one round trip. net_link_up
 * answers the node's `up` (0 while powered off or not attached).
 *
 * Streams (the hal.h net_* contract, with these timings). One-way time
 * below means latency + jitter as above (no bandwidth term); round trip
 * is two one-way times, each with its own jitter draw. Outcomes of a
 * connect are decided when net_connect is called.
 *  - net_connect: unknown host (never attached, or its device freed), or
 *    this node's link down: SAT_ERR_UNREACHABLE at once, no socket. This
 *    node at SIM_NET_NODE_CONNS_MAX connections: SAT_ERR_NO_MEMORY.
 *    Otherwise SAT_OK with a socket in progress: net_connect_status,
 *    net_send and net_recv answer SAT_ERR_WOULD_BLOCK until the outcome
 *    time, then (a) a live listener on host:port with room
 *    (SIM_NET_LISTEN_BACKLOG_MAX unaccepted, SIM_NET_NODE_CONNS_MAX per
 *    node): established one one-way time later; net_connect_status SAT_OK
 *    and the listener's net_accept returns it from then on; (b) the
 *    target's link down or the target powered off: SAT_ERR_UNREACHABLE
 *    after a round trip; (c) otherwise SAT_ERR_REFUSED after a round trip.
 *    Loopback outcomes are immediate (at the current time).
 *  - net_listen(host, port): host NULL, "", "0.0.0.0", "::", a loopback
 *    name or the node's own address (anything else: SAT_ERR_INVALID); all
 *    of them accept connections to the node's address and to loopback.
 *    Port 0 picks a free port from SIM_NET_PORT_EPHEMERAL_FIRST on; a port
 *    already listened on: SAT_ERR_EXISTS; more than
 *    SIM_NET_NODE_LISTENERS_MAX listeners: SAT_ERR_NO_MEMORY.
 *    net_local_port works on listeners and streams (a connecting socket
 *    has an ephemeral port; an accepted one has the listener's).
 *  - net_accept: the established connection that came up first (ties: the
 *    one connected first), else SAT_ERR_WOULD_BLOCK; connections reset
 *    before being accepted are dropped silently. Closing a listener
 *    resets the connections still waiting in it.
 *  - net_send: accepts up to len bytes while the bytes sent on this
 *    connection in this direction and not yet read by the peer (in flight
 *    or arrived) are below SIM_NET_CONN_BUFFER_BYTES_MAX, else
 *    SAT_ERR_WOULD_BLOCK (TCP back-pressure; the peer reading frees room
 *    at once, without an acknowledgement delay). len 0: SAT_OK, *sent 0.
 *    After the peer closed: bytes are accepted and dropped until its close
 *    reaches this end, then SAT_ERR_RESET (as EPIPE).
 *  - net_recv: bytes whose arrival time <= now, in order; SAT_ERR_CLOSED
 *    once the peer closed and everything it sent was read (the close
 *    travels like an empty chunk, after the data, with jitter but no
 *    bandwidth term and no reset draw); SAT_ERR_WOULD_BLOCK
 *    when nothing has arrived yet.
 *  - net_close: always releases the socket; the peer reads what was
 *    already sent, then SAT_ERR_CLOSED. Bytes sent to the closed end are
 *    dropped.
 *  - net_wait: never blocks and ignores timeout_ms: ready[i] gets the
 *    wanted bits for which the next call would not answer
 *    SAT_ERR_WOULD_BLOCK (errors, resets and ends count as ready, so do
 *    dead sockets); SAT_OK if any bit is set, else SAT_ERR_TIMEOUT (also
 *    for n == 0).
 *  - A socket of another device: SAT_ERR_INVALID (net_close too: it is
 *    not freed, its owner still holds it). A device that is not attached
 *    (or whose network was freed): SAT_ERR_NOT_SUPPORTED, except
 *    net_close, which still frees the socket.
 * Counters (sim_net_stats): bytes accepted by net_send and bytes handed
 * out by net_recv on the node's sockets, connects started, connections
 * accepted, and sockets that reported SAT_ERR_RESET (each socket once).
 */

#define SIM_NET_NODES_MAX 4096u                     /* addresses per network */
#define SIM_NET_ADDR_BYTES_MAX 63                   /* [A-Za-z0-9._:-] */
#define SIM_NET_NODE_CONNS_MAX 256u                 /* connection ends per node */
#define SIM_NET_NODE_LISTENERS_MAX 8u               /* listeners per node */
#define SIM_NET_LISTEN_BACKLOG_MAX 64u              /* unaccepted per listener */
#define SIM_NET_CONN_BUFFER_BYTES_MAX (256u * 1024u) /* unread per direction */
#define SIM_NET_CHUNK_BYTES_MAX 16384u              /* bytes per chunk */
#define SIM_NET_PORT_EPHEMERAL_FIRST 49152u
#define SIM_NET_RESET_PER_MILLE_MAX 1000u

struct sim_net;

struct sim_link {
    int up;                   /* 0: link down (see above) */
    uint32_t latency_ms;      /* added to every chunk to or from this node */
    uint32_t jitter_ms;       /* up to this much more, drawn per chunk */
    uint32_t bytes_per_ms;    /* uplink and downlink bandwidth; 0 = unlimited */
    uint32_t reset_per_mille; /* chance per chunk carried that it resets the connection */
};

struct sim_net_stats {
    uint64_t bytes_sent;     /* accepted by net_send */
    uint64_t bytes_received; /* handed out by net_recv */
    uint64_t connects;       /* net_connect calls that returned SAT_OK */
    uint64_t accepts;        /* net_accept calls that returned SAT_OK */
    uint64_t resets;         /* sockets that reported SAT_ERR_RESET (once each) */
};

/* Creates an empty network at virtual time 0. SAT_ERR_INVALID if out is
 * NULL, SAT_ERR_NO_MEMORY. */
SAT_CHECK int sim_net_new(struct sim_net **out, uint64_t seed);
/* Detaches every device still attached (their connections are released and
 * their net calls answer SAT_ERR_NOT_SUPPORTED from then on; their sockets
 * stay valid until net_close or sim_hal_free) and frees the network. NULL
 * is ignored. Devices may also be freed first, in any order. */
void sim_net_free(struct sim_net *n);

/* Attaches device h to n under addr; from then on h's net_* members work
 * over n. SAT_ERR_INVALID: a bad address (empty, too long, other
 * characters, or a loopback/any name) or h already attached; SAT_ERR_EXISTS:
 * addr in use by another attached device; SAT_ERR_NO_MEMORY: beyond
 * SIM_NET_NODES_MAX nodes or out of memory. sim_hal_free detaches. */
SAT_CHECK int sim_net_attach(struct sim_net *n, struct sim_hal *h, const char *addr);

/* Moves the network's virtual time forward to now_ms; an earlier time is
 * ignored (time never goes back). */
void sim_net_set_now(struct sim_net *n, uint64_t now_ms);
uint64_t sim_net_now_ms(const struct sim_net *n);
/* The earliest time strictly after now at which something will change: a
 * chunk or a close arriving, a connect being decided, a reset taking
 * effect; UINT64_MAX if nothing is scheduled. What is already due at now is
 * not reported: step the devices first. */
uint64_t sim_net_next_event_ms(const struct sim_net *n);

/* Sets the link conditions of the node with address addr (attached now or
 * before). SAT_ERR_NOT_FOUND: no such node; SAT_ERR_INVALID: l NULL or
 * reset_per_mille > SIM_NET_RESET_PER_MILLE_MAX. New values apply to chunks
 * and connects from now on; going down resets as described above. */
SAT_CHECK int sim_net_set_link(struct sim_net *n, const char *addr, const struct sim_link *l);

/* Counters of the node with address addr, or the sum over all nodes when
 * addr is NULL. SAT_ERR_NOT_FOUND: no such node. */
SAT_CHECK int sim_net_stats(const struct sim_net *n, const char *addr, struct sim_net_stats *out);
/* The counters of h's node; SAT_ERR_NOT_SUPPORTED if h is not attached. */
SAT_CHECK int sim_hal_net_stats(const struct sim_hal *h, struct sim_net_stats *out);

#endif
