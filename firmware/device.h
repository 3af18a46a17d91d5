/*
 * device.h - the tablet's sync driver: one step-driven state machine that
 * connects to the hub, runs mutual TLS and one sync session, and retries
 * with backoff, over the HAL alone.
 *
 * Nothing here blocks and nothing here calls the OS: device_step() does a
 * bounded amount of work and says what it waits for next (a socket and the
 * HAL_NET_* readiness to wait for, and the HAL monotonic time of its next
 * timer). The `satchel sync` command waits for that with hal_net_wait; the
 * simulator jumps its virtual clock. Both drive the same code.
 *
 *   IDLE --request--> CONNECTING -> HANDSHAKE -> SYNCING -> CLOSING -> IDLE
 *                         |             |           |
 *                         +-------------+-----------+--> BACKOFF --> CONNECTING
 *                                                   |    (or IDLE once the
 *                                                   |     retries are spent)
 *                                                   +--> REVOKED (terminal)
 *
 * Attempts. Each attempt (connect, handshake, session, close) must finish
 * within its deadline, cfg.attempt_ms after it starts on the HAL monotonic
 * clock; a silent hub cannot hold the tablet for longer. A failed attempt is
 * retried up to cfg.retries times, each after a backoff: the k-th failure in
 * a row waits w ms with
 *     d = min(DEVICE_BACKOFF_BASE_MS << (k - 1), DEVICE_BACKOFF_MAX_MS)
 *     w = d / 2 + r,  r uniform in [0, d / 2]
 * so d / 2 <= w <= d. r comes from a generator seeded once from
 * hal_entropy_fill, so a fleet that lost its hub together does not come back
 * in lockstep, and a simulator seed replays the same waits. A success resets
 * k. With cfg.retries == 0 (`satchel sync`), a failure goes straight back to
 * IDLE.
 *
 * Resumption. After every successful handshake the TLS session (with the
 * hub's ticket) is kept in RAM in the driver and offered on the next
 * connection, so the next sync costs no certificate exchange. It is dropped
 * when a handshake is refused (the hub or its CA changed), on revocation and
 * by device_free. It never touches storage.
 *
 * Revocation. When the hub's authenticated HelloAck says the device is
 * revoked, the replica's wipe has run (sync_device.h): the driver enters
 * DEVICE_REVOKED and stays there; requests are refused. A TLS alert
 * "certificate revoked" (SAT_ERR_TLS_REVOKED) is NOT authenticated: it is an
 * ordinary failed attempt, retried like any other, and never wipes.
 *
 * Ownership and threads: a driver is used from one thread. The HAL and the
 * replica's arg are borrowed and must outlive the driver; the host, the
 * PEMs and the firmware version are copied by device_init (the caller may
 * wipe its key PEM on return). struct device is large (it holds a sync
 * session's frame buffers, about 220 KiB): allocate it statically or on the
 * heap, not on a small stack.
 */
#ifndef SATCHEL_DEVICE_H
#define SATCHEL_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "hal.h"
#include "sync_device.h"
#include "tls.h"

/* ---- limits --------------------------------------------------------------- */
#define DEVICE_HOST_BYTES 256           /* hub host name, with its NUL */
#define DEVICE_FW_VERSION_BYTES 32      /* firmware version, with its NUL */
#define DEVICE_MSG_BYTES 512            /* the last attempt's message */
#define DEVICE_BACKOFF_BASE_MS 5000u    /* backoff after the first failure */
#define DEVICE_BACKOFF_MAX_MS 900000u   /* backoff never grows past 15 min */
#define DEVICE_RETRIES_MAX 16u          /* cfg.retries is clipped to this */
#define DEVICE_ATTEMPT_MS_DEFAULT 120000u /* cfg.attempt_ms == 0 means this */
#define DEVICE_ATTEMPT_MS_MAX 1000000000u /* cfg.attempt_ms is clipped to this */
/* Phase transitions one device_step may make before it returns (and asks
 * to be stepped again at once): bounds the work of one call. */
#define DEVICE_STEP_TRANSITIONS_MAX 8u
/* device_wait.timer_ms when there is no timer. */
#define DEVICE_TIMER_NONE UINT64_MAX

enum device_phase {
    DEVICE_IDLE = 0,   /* nothing to do until device_request_sync */
    DEVICE_CONNECTING, /* TCP connection to the hub in progress */
    DEVICE_HANDSHAKE,  /* mutual TLS handshake in progress */
    DEVICE_SYNCING,    /* sync session: Hello, push, pull */
    DEVICE_CLOSING,    /* session done; close_notify going out */
    DEVICE_BACKOFF,    /* the last attempt failed; a retry is scheduled */
    DEVICE_REVOKED     /* the hub revoked the device and it wiped: terminal */
};

struct device_config {
    const struct hal *hal;   /* net, clocks, entropy, log; borrowed */
    const char *hub_host;    /* copied; at most DEVICE_HOST_BYTES - 1 bytes */
    uint16_t hub_port;       /* 1..65535 */
    uint8_t device_id[SYNC_DEVICE_ID_BYTES]; /* the id in the device cert's CN */
    const char *ca_pem;      /* fleet CA, PEM; copied */
    const char *cert_pem;    /* device certificate, PEM; copied */
    const char *key_pem;     /* device private key, PEM; copied */
    const char *firmware_version; /* sent in Hello; copied (cut to fit) */
    struct sync_replica replica;  /* the tablet's store (sync_glue); copied */
    uint32_t attempt_ms;     /* per-attempt deadline; 0: the default */
    unsigned retries;        /* retries after a failed attempt (0: none) */
};

/* What device_step wants before it is called again. */
struct device_wait {
    hal_sock *sock;    /* wait for this socket, or NULL (nothing to wait on) */
    unsigned want;     /* HAL_NET_* bits for sock; 0 when sock is NULL */
    uint64_t timer_ms; /* step again at this HAL monotonic time at the latest
                        * (at once if it is not in the future);
                        * DEVICE_TIMER_NONE: only a request or the socket */
};

/* The outcome of the last finished attempt. err is SAT_OK or: the HAL's
 * network codes (SAT_ERR_REFUSED, SAT_ERR_UNREACHABLE, SAT_ERR_RESET,
 * SAT_ERR_CLOSED, ...); SAT_ERR_TIMEOUT (the attempt's deadline, or tls.c's
 * TLS_HANDSHAKE_MS_MAX); a TLS code of tls.h (refusals included); a sync
 * code (SAT_ERR_SYNC_PROTOCOL, SAT_ERR_SYNC_PEER, SAT_ERR_SYNC_VERSION,
 * SAT_ERR_SYNC_REVOKED); or the replica's own error. */
struct device_result {
    int err;                     /* SAT_OK, or why the attempt failed */
    enum device_phase failed_in; /* CONNECTING (no link, no connection),
                                  * HANDSHAKE or SYNCING; IDLE on success */
    char msg[DEVICE_MSG_BYTES];  /* one line: what happened ("" before any) */
    int resumed;                 /* 1: the TLS handshake resumed a session */
    const char *suite;           /* TLS cipher suite (static string) or "" */
    uint64_t started_ms;         /* HAL monotonic time the attempt began */
    uint64_t ended_ms;           /* and ended */
};

/* Totals since device_init. The sync counts add up every session, completed
 * or not: what a failed session pushed was acknowledged (durable at the
 * hub) and what it pulled was applied. */
struct device_stats {
    uint64_t attempts;           /* attempts begun */
    uint64_t sessions_ok;        /* attempts that completed a sync session */
    uint64_t sessions_failed;    /* attempts that failed, at any point */
    uint64_t handshakes_full;    /* TLS handshakes with certificates */
    uint64_t handshakes_resumed; /* TLS handshakes that resumed a session */
    uint64_t pushed;             /* sums of struct sync_device_stats */
    uint64_t pulled;
    uint64_t purged;
    uint64_t conflicts;
    uint64_t bytes_out;          /* frame bytes (before TLS) */
    uint64_t bytes_in;
};

/* The driver. Its members are private to device.c: use the calls below. */
struct device {
    struct device_config cfg; /* with the borrowed pointers only */
    char host[DEVICE_HOST_BYTES];
    char firmware_version[DEVICE_FW_VERSION_BYTES];
    struct tls_config *tls_cfg;
    enum device_phase phase;
    int requested;            /* a request waits for the next step */
    unsigned retries_left;    /* of the current request */
    unsigned failures;        /* failed attempts in a row */
    uint64_t rng;             /* backoff jitter generator state */
    uint64_t deadline_ms;     /* of the attempt in progress */
    uint64_t handshake_ms;    /* HAL monotonic time the handshake began */
    uint64_t backoff_until_ms;
    uint64_t backoff_ms;      /* the last backoff chosen */
    hal_sock *sock;
    struct tls_conn *tls;
    struct tls_session session; /* offered for resumption; len 0: none */
    struct device_result cur;  /* the attempt in progress */
    struct device_result last; /* the last finished attempt */
    struct sync_device_stats last_session; /* of the last completed session */
    struct device_stats stats;
    struct sync_device sync;
};

/* Prepares d from cfg: copies what cfg says is copied, builds the TLS client
 * configuration and seeds the backoff jitter from hal_entropy_fill. The
 * driver starts IDLE with no result (last.err == SAT_OK, last.msg "").
 * Returns SAT_OK; SAT_ERR_INVALID (NULL argument or member, empty or
 * too long host, port 0); SAT_ERR_TLS_CONFIG (a PEM does not parse or the
 * certificate is not a device's: tls.h); SAT_ERR_NO_MEMORY;
 * SAT_ERR_TLS_CRYPTO; or the HAL's entropy error. On failure nothing needs
 * freeing (device_free is still safe). */
SAT_CHECK int device_init(struct device *d, const struct device_config *cfg);

/* Closes any connection at once (no close_notify), wipes the saved TLS
 * session and frees the TLS configuration. d may then be initialised again.
 * Safe on a zeroed or failed-to-init struct. */
void device_free(struct device *d);

/* Asks for a sync: in IDLE, an attempt begins at the next device_step, with
 * cfg.retries retries. A no-op while an attempt runs or a retry is
 * scheduled (BACKOFF). Returns SAT_OK (a sync will run or is running) or
 * SAT_ERR_SYNC_REVOKED (terminal: the device was wiped); SAT_ERR_INVALID (d
 * was never initialised). */
SAT_CHECK int device_request_sync(struct device *d);

/* Advances the driver by a bounded amount of work (at most
 * DEVICE_STEP_TRANSITIONS_MAX phase changes; socket calls never wait) and
 * fills *next (may be NULL) with what to wait for before the next call.
 * Returns the phase after the step. Safe to call at any time, as often as
 * wanted: a step with nothing to do changes nothing. */
enum device_phase device_step(struct device *d, struct device_wait *next);

/* The current phase. */
enum device_phase device_phase(const struct device *d);

/* 1 while an attempt is in progress (CONNECTING..CLOSING), else 0. */
int device_busy(const struct device *d);

/* The last finished attempt. */
const struct device_result *device_last(const struct device *d);

/* The stats of the last session that completed (zeros before any). */
const struct sync_device_stats *device_last_session(const struct device *d);

/* Totals since device_init. */
const struct device_stats *device_stats(const struct device *d);

/* The wait chosen by the last failure's backoff, in ms (0 before any). */
uint64_t device_backoff_ms(const struct device *d);

/* A phase's name for logs ("idle", "connecting", ...). Static string. */
const char *device_phase_name(enum device_phase p);

#endif
