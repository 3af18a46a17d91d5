/*
 * hub_server.h - the hub's network side as a step-driven state machine over
 * the HAL: it listens, accepts devices, runs each one's mutual TLS handshake
 * and then its hub session (hub_session.h), for up to
 * HUB_SERVER_CONNECTIONS_MAX devices at once, in one thread.
 *
 * Nothing blocks. A driver loops:
 *
 *     hub_server_wait_set(s, &w);              what to wait for, and until when
 *     hal_net_wait(hal, w.socks, w.want, ready, w.n, timeout from w.timer_ms);
 *     hub_server_step(s, ready, w.n);          accept, step the ready ones
 *
 * `satchel-hub` waits with the POSIX HAL; the simulator answers the same
 * wait from its virtual network and jumps its virtual clock to w.timer_ms.
 *
 * Admission: a device is admitted when the TLS handshake proves its
 * certificate (fleet CA, device role; tls.h) and its CN names a device the
 * store knows (hub_server_admit). A revoked device is still admitted, so
 * that its Hello can learn that it must wipe itself. The hub's session
 * tickets let a device resume; a resumed handshake asks admission again.
 *
 * Idle connections: one whose socket has not been ready for
 * HUB_SERVER_IDLE_MS (HAL monotonic clock) is closed, so a silent or
 * half-open peer cannot hold a slot for ever (tls.c also bounds a handshake
 * to TLS_HANDSHAKE_MS_MAX).
 *
 * Ownership and threads: one thread. The HAL and the store are borrowed and
 * must outlive the server (the caller closes the store after
 * hub_server_stop). A TLS configuration given in the config is borrowed too;
 * one made from PEMs belongs to the server. PEMs and the listen host are
 * only read during hub_server_init (the caller may wipe the key on return).
 * struct hub_server is large (about 100 KiB with its per-device table):
 * allocate it statically or on the heap. Each live session takes another
 * ~220 KiB (its frame buffers) from the heap while it lasts.
 *
 * Logs (hal_log): at warn, why a connection was refused or closed (TLS
 * refusal, bad certificate name, too many connections, idle); with
 * cfg.log_sessions, at info, every device that connects and how its session
 * ended. No patient data is ever logged.
 */
#ifndef SATCHEL_HUB_SERVER_H
#define SATCHEL_HUB_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "hal.h"
#include "hub_session.h"
#include "hub_store.h"
#include "tls.h"

/* ---- limits --------------------------------------------------------------- */
#define HUB_SERVER_CONNECTIONS_MAX 64
/* Entries of hub_server_wait: the listener and every connection. */
#define HUB_SERVER_WAIT_SLOTS (HUB_SERVER_CONNECTIONS_MAX + 1)
/* A connection whose socket was not ready this long is closed. */
#define HUB_SERVER_IDLE_MS 60000u
/* Connections accepted by one hub_server_step (the rest wait in the
 * listener's backlog for the next step). */
#define HUB_SERVER_ACCEPTS_PER_STEP_MAX 16u
/* Devices whose last session summary is kept; the oldest entry goes first. */
#define HUB_SERVER_DEVICES_MAX 256
/* hub_server_wait.timer_ms when there is no timer. */
#define HUB_SERVER_TIMER_NONE UINT64_MAX

struct hub_server_config {
    const struct hal *hal;   /* net, clocks, entropy, log; borrowed */
    struct hub_store *store; /* borrowed */
    /* Either a server TLS configuration to borrow (its admit callback
     * should be hub_server_admit with the store as arg), or NULL: then the
     * server makes one from the three PEMs (fleet CA, hub certificate, hub
     * key), with hub_server_admit. */
    struct tls_config *tls;
    const char *ca_pem;
    const char *cert_pem;
    const char *key_pem;
    const char *listen_host; /* e.g. "127.0.0.1" */
    uint16_t listen_port;    /* 0: any free port (hub_server_port) */
    int log_sessions;        /* 1: log every session at info level */
};

/* What the server waits for: fill by hub_server_wait_set. */
struct hub_server_wait {
    size_t n;                                 /* entries used */
    hal_sock *socks[HUB_SERVER_WAIT_SLOTS];   /* listener first */
    unsigned want[HUB_SERVER_WAIT_SLOTS];     /* HAL_NET_* per socket */
    uint64_t timer_ms; /* step again at this HAL monotonic time at the
                        * latest (at once if not in the future), or
                        * HUB_SERVER_TIMER_NONE */
};

/* How a device's last session went, for logs and tests. */
struct hub_server_summary {
    uint8_t device[HUB_ID_BYTES];
    char peer[TLS_PEER_CN_BYTES_MAX + 1]; /* the certificate's CN (hex id) */
    int result;                /* SAT_OK or the code the session ended with */
    int resumed;               /* 1: the TLS handshake resumed a session */
    uint64_t ended_ms;         /* HAL monotonic time it ended */
    struct hub_session_stats stats;
    char msg[HUB_SESSION_ERRMSG_BYTES]; /* why it failed; "" on success */
};

struct hub_server_stats {
    uint64_t accepted;           /* TCP connections taken */
    uint64_t refused_busy;       /* turned away: every slot in use */
    uint64_t handshakes_full;
    uint64_t handshakes_resumed;
    uint64_t sessions_ok;        /* sessions the device ended cleanly */
    uint64_t sessions_failed;    /* refused handshakes and failed sessions */
    uint64_t idle_closed;        /* connections closed for idleness */
    size_t open;                 /* connections open now */
};

/* ---- private: one connection --------------------------------------------- */
enum hub_server_conn_state {
    HUB_CONN_FREE = 0,
    HUB_CONN_HANDSHAKE,
    HUB_CONN_SESSION
};

struct hub_server_conn {
    enum hub_server_conn_state state;
    hal_sock *sock;
    struct tls_conn *tls;
    struct hub_session *sess; /* heap, while in HUB_CONN_SESSION */
    uint64_t last_ms;         /* last time its socket was ready */
    int resumed;
    uint8_t device[HUB_ID_BYTES];
    char peer[TLS_PEER_CN_BYTES_MAX + 1];
};

/* The server. Its members are private to hub_server.c. */
struct hub_server {
    struct hub_server_config cfg; /* borrowed pointers only */
    struct tls_config *tls;
    int own_tls;
    int running;
    hal_sock *listener;
    struct hub_server_conn conns[HUB_SERVER_CONNECTIONS_MAX];
    size_t wait_n;                       /* entries of the last wait set */
    int wait_conn[HUB_SERVER_WAIT_SLOTS]; /* conn index per entry; -1 listener */
    struct hub_server_stats stats;
    size_t devices_n;
    size_t devices_next; /* the entry to replace when the table is full */
    struct hub_server_summary devices[HUB_SERVER_DEVICES_MAX];
};

/* The admission check hub_server gives tls_config_server: 0 (admit) when
 * peer_cn is a 32-hex-digit device id the store (arg, a struct hub_store *)
 * knows, revoked or not; -1 otherwise. */
int hub_server_admit(void *store, const char *peer_cn);

/* Starts a server: makes its TLS configuration (unless cfg->tls is given)
 * and listens on cfg->listen_host:cfg->listen_port.
 * Returns SAT_OK; SAT_ERR_INVALID (NULL argument or member); the codes of
 * tls_config_server (SAT_ERR_TLS_CONFIG: a PEM does not parse, or the
 * certificate is not a hub's); SAT_ERR_EXISTS (address in use) or another
 * code of hal_net_listen. On failure nothing is left open (hub_server_stop
 * is still safe). */
SAT_CHECK int hub_server_init(struct hub_server *s, const struct hub_server_config *cfg);

/* The port the server listens on (useful after listen_port 0). SAT_OK, or
 * SAT_ERR_INVALID when not running, or the HAL's code. */
SAT_CHECK int hub_server_port(const struct hub_server *s, uint16_t *port);

/* Fills *w with every socket to wait for (the listener, then each
 * connection with the readiness its TLS or session waits for) and the time
 * of the next timer (an idle deadline; now when a connection holds
 * decrypted input that needs no socket). Remembers the order for the next
 * hub_server_step. A stopped server fills n = 0 and no timer. */
void hub_server_wait_set(struct hub_server *s, struct hub_server_wait *w);

/* Does a bounded amount of work: accepts up to
 * HUB_SERVER_ACCEPTS_PER_STEP_MAX connections if the listener is ready,
 * steps once each connection whose socket is ready or whose TLS holds
 * pending input, and closes the idle ones.
 * ready[0..n): what hal_net_wait reported for the entries of the last
 * hub_server_wait_set. ready may be NULL, or n may not match that set: then
 * every socket is treated as ready (non-blocking calls just find nothing),
 * which also counts as activity for the idle rule.
 * Returns SAT_OK, or SAT_ERR_INVALID when the server is not running. */
SAT_CHECK int hub_server_step(struct hub_server *s, const unsigned *ready, size_t n);

/* Stops: ends every connection (close_notify, best effort), closes the
 * listener and frees a TLS configuration the server made. A device whose
 * push was not acknowledged sends it again next time; every acknowledged
 * push is already durable. Safe to call twice, or after a failed init. */
void hub_server_stop(struct hub_server *s);

/* Totals since hub_server_init. */
const struct hub_server_stats *hub_server_stats(const struct hub_server *s);

/* The last session summary of device (HUB_ID_BYTES) into *out: SAT_OK, or
 * SAT_ERR_NOT_FOUND when the table holds none for it. */
SAT_CHECK int hub_server_device_last(const struct hub_server *s, const uint8_t device[HUB_ID_BYTES],
                           struct hub_server_summary *out);

#endif
