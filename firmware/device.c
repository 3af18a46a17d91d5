/* device.c - see device.h. */
#include "device.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sat_err.h"

/* ---- the TLS connection as a frame stream --------------------------------- */

static int io_send(void *arg, const void *buf, size_t len, size_t *sent)
{
    return tls_conn_send(arg, buf, len, sent);
}

/* The hub's close_notify ends the stream like a TCP close would. */
static int io_recv(void *arg, void *buf, size_t len, size_t *got)
{
    int ret = tls_conn_recv(arg, buf, len, got);
    return ret == SAT_ERR_TLS_CLOSED ? SAT_ERR_CLOSED : ret;
}

/* ---- helpers -------------------------------------------------------------- */

/* Failures in a row are counted up to here: the backoff is long saturated. */
#define DEVICE_FAILURES_COUNTED_MAX 64u

/* splitmix64: jitter only, never keys; seeded from the HAL's entropy. */
static uint64_t rng_next(struct device *d)
{
    uint64_t z = (d->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The wait after the d->failures-th failure in a row (device.h formula). */
static uint64_t backoff_pick(struct device *d)
{
    uint64_t span = DEVICE_BACKOFF_BASE_MS;
    uint64_t half;
    for (unsigned k = 1; k < d->failures && span < DEVICE_BACKOFF_MAX_MS; k++)
        span *= 2;
    if (span > DEVICE_BACKOFF_MAX_MS)
        span = DEVICE_BACKOFF_MAX_MS;
    half = span / 2;
    return half + rng_next(d) % (span - half + 1);
}

/* A TLS failure that says the peer or its credentials changed: the saved
 * session is not worth offering again. */
static int tls_refusal(int err)
{
    return err == SAT_ERR_TLS_HANDSHAKE || err == SAT_ERR_TLS_BAD_CERT ||
           err == SAT_ERR_TLS_EXPIRED || err == SAT_ERR_TLS_NO_CERT ||
           err == SAT_ERR_TLS_REVOKED || err == SAT_ERR_TLS_VERSION ||
           err == SAT_ERR_TLS_BAD_RECORD;
}

static void conn_drop(struct device *d)
{
    tls_conn_free(d->tls);
    d->tls = NULL;
    if (d->sock)
        hal_net_close(d->cfg.hal, d->sock);
    d->sock = NULL;
}

static void add_session_totals(struct device *d)
{
    const struct sync_device_stats *s = &d->sync.stats;
    d->stats.pushed += s->pushed;
    d->stats.pulled += s->pulled;
    d->stats.purged += s->purged;
    d->stats.conflicts += s->conflicts;
    d->stats.bytes_out += s->bytes_out;
    d->stats.bytes_in += s->bytes_in;
}

/* Ends the attempt in progress with err and chooses what comes next. */
static void attempt_end(struct device *d, uint64_t now, int err)
{
    conn_drop(d);
    d->cur.err = err;
    d->cur.ended_ms = now;
    if (err == SAT_OK)
        d->cur.failed_in = DEVICE_IDLE;
    d->last = d->cur;
    if (err == SAT_OK) {
        d->failures = 0;
        d->phase = DEVICE_IDLE;
        return;
    }
    d->stats.sessions_failed++;
    if (d->failures < DEVICE_FAILURES_COUNTED_MAX)
        d->failures++;
    if (err == SAT_ERR_SYNC_REVOKED) {
        tls_session_clear(&d->session);
        d->phase = DEVICE_REVOKED;
        hal_log(d->cfg.hal, HAL_LOG_INFO, "sync: %s", d->last.msg);
        return;
    }
    if (d->retries_left == 0) {
        d->phase = DEVICE_IDLE;
        hal_log(d->cfg.hal, HAL_LOG_INFO, "sync: attempt failed: %s", d->last.msg);
        return;
    }
    d->backoff_ms = backoff_pick(d);
    d->backoff_until_ms = now + d->backoff_ms;
    d->phase = DEVICE_BACKOFF;
    hal_log(d->cfg.hal, HAL_LOG_INFO, "sync: attempt failed: %s; retry in %llu ms", d->last.msg,
            (unsigned long long)d->backoff_ms);
}

static void attempt_fail(struct device *d, uint64_t now, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void attempt_fail(struct device *d, uint64_t now, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->cur.msg, sizeof d->cur.msg, fmt, ap);
    va_end(ap);
    d->cur.failed_in = d->phase;
    attempt_end(d, now, err);
}

/* A failure before the TLS session is up: the hub could not be reached. */
static void unreachable(struct device *d, uint64_t now, int err)
{
    attempt_fail(d, now, err, "cannot reach the hub at %s:%u: %s", d->host,
                 (unsigned)d->cfg.hub_port, sat_strerror(err));
}

static void attempt_begin(struct device *d, uint64_t now)
{
    int ret;
    memset(&d->cur, 0, sizeof d->cur);
    d->cur.suite = "";
    d->cur.started_ms = now;
    d->deadline_ms = now + d->cfg.attempt_ms;
    d->stats.attempts++;
    d->phase = DEVICE_CONNECTING;
    if (hal_net_link_up(d->cfg.hal) == 0) {
        attempt_fail(d, now, SAT_ERR_UNREACHABLE, "cannot reach the hub at %s:%u: no network link",
                     d->host, (unsigned)d->cfg.hub_port);
        return;
    }
    ret = hal_net_connect(d->cfg.hal, d->host, d->cfg.hub_port, &d->sock);
    if (ret != SAT_OK) {
        d->sock = NULL;
        unreachable(d, now, ret);
    }
}

/* ---- one phase ------------------------------------------------------------ */

/* Does what the current phase can do now. Returns 1 if the phase changed
 * (the caller may go on), 0 if it must wait. */
static int step_phase(struct device *d, uint64_t now)
{
    int ret;
    switch (d->phase) {
    case DEVICE_IDLE:
        if (!d->requested)
            return 0;
        d->requested = 0;
        d->retries_left = d->cfg.retries;
        attempt_begin(d, now);
        return 1;

    case DEVICE_BACKOFF:
        if (now < d->backoff_until_ms)
            return 0;
        if (d->retries_left > 0)
            d->retries_left--;
        attempt_begin(d, now);
        return 1;

    case DEVICE_CONNECTING:
        if (now >= d->deadline_ms) {
            unreachable(d, now, SAT_ERR_TIMEOUT);
            return 1;
        }
        ret = hal_net_connect_status(d->cfg.hal, d->sock);
        if (ret == SAT_ERR_WOULD_BLOCK)
            return 0;
        /* A HAL that cannot tell lets the handshake find out. */
        if (ret != SAT_OK && ret != SAT_ERR_NOT_SUPPORTED) {
            unreachable(d, now, ret);
            return 1;
        }
        ret = tls_conn_new(&d->tls, d->tls_cfg, d->sock, d->session.len ? &d->session : NULL);
        if (ret != SAT_OK) {
            d->tls = NULL;
            unreachable(d, now, ret);
            return 1;
        }
        d->handshake_ms = 0;
        d->phase = DEVICE_HANDSHAKE;
        return 1;

    case DEVICE_HANDSHAKE: {
        struct frame_io io;
        if (now >= d->deadline_ms) {
            unreachable(d, now, SAT_ERR_TIMEOUT);
            return 1;
        }
        ret = tls_conn_handshake(d->tls);
        if (d->handshake_ms == 0) /* read after tls.c started its own clock */
            d->handshake_ms = hal_clock_monotonic_ms(d->cfg.hal);
        if (ret == SAT_ERR_WOULD_BLOCK)
            return 0;
        if (ret != SAT_OK) {
            if (tls_refusal(ret))
                tls_session_clear(&d->session);
            unreachable(d, now, ret);
            return 1;
        }
        d->cur.resumed = tls_conn_resumed(d->tls);
        d->cur.suite = tls_conn_suite(d->tls);
        if (d->cur.resumed)
            d->stats.handshakes_resumed++;
        else
            d->stats.handshakes_full++;
        /* A resumed handshake may bring a fresh ticket: save every time. A
         * session that does not save just means a full handshake next. */
        if (tls_conn_save_session(d->tls, &d->session) != SAT_OK)
            tls_session_clear(&d->session);
        io.send = io_send;
        io.recv = io_recv;
        io.arg = d->tls;
        sync_device_init(&d->sync, &io, &d->cfg.replica, d->cfg.device_id,
                         d->firmware_version);
        d->phase = DEVICE_SYNCING;
        return 1;
    }

    case DEVICE_SYNCING:
        if (now >= d->deadline_ms) {
            add_session_totals(d);
            attempt_fail(d, now, SAT_ERR_TIMEOUT, "the hub did not answer in %u s",
                         (unsigned)(d->cfg.attempt_ms / 1000u));
            return 1;
        }
        ret = sync_device_step(&d->sync);
        if (ret == SAT_ERR_WOULD_BLOCK)
            return 0;
        add_session_totals(d);
        if (ret != SAT_OK) {
            attempt_fail(d, now, ret, "%s",
                         d->sync.errmsg[0] ? d->sync.errmsg : sat_strerror(ret));
            return 1;
        }
        d->last_session = d->sync.stats;
        d->stats.sessions_ok++;
        snprintf(d->cur.msg, sizeof d->cur.msg,
                 "synced with %s:%u: pushed %llu, pulled %llu, purged %llu, conflicts %llu",
                 d->host, (unsigned)d->cfg.hub_port, (unsigned long long)d->sync.stats.pushed,
                 (unsigned long long)d->sync.stats.pulled,
                 (unsigned long long)d->sync.stats.purged,
                 (unsigned long long)d->sync.stats.conflicts);
        d->phase = DEVICE_CLOSING;
        return 1;

    case DEVICE_CLOSING:
        /* The session is complete and durable on both sides: whatever
         * happens to close_notify, the attempt succeeded. */
        ret = tls_conn_close_notify(d->tls);
        if (ret == SAT_ERR_WOULD_BLOCK && now < d->deadline_ms)
            return 0;
        attempt_end(d, now, SAT_OK);
        return 1;

    case DEVICE_REVOKED:
        return 0;
    }
    return 0;
}

/* ---- public calls ----------------------------------------------------------- */

static int replica_valid(const struct sync_replica *r)
{
    return r->state && r->changes && r->set_push_acked && r->apply_begin && r->apply_changes &&
           r->apply_commit && r->apply_abort && r->wipe;
}

int device_init(struct device *d, const struct device_config *cfg)
{
    uint8_t seed[8];
    size_t host_len;
    int ret = SAT_ERR_INVALID;
    if (d == NULL)
        return SAT_ERR_INVALID;
    memset(d, 0, sizeof *d);
    d->last.suite = "";
    d->cur.suite = "";
    if (cfg == NULL || cfg->hal == NULL || cfg->hub_host == NULL || cfg->ca_pem == NULL ||
        cfg->cert_pem == NULL || cfg->key_pem == NULL || cfg->hub_port == 0 ||
        !replica_valid(&cfg->replica))
        goto exit;
    host_len = strlen(cfg->hub_host);
    if (host_len == 0 || host_len >= sizeof d->host)
        goto exit;
    d->cfg = *cfg;
    memcpy(d->host, cfg->hub_host, host_len + 1);
    snprintf(d->firmware_version, sizeof d->firmware_version, "%s",
             cfg->firmware_version ? cfg->firmware_version : "");
    d->cfg.hub_host = d->host;
    d->cfg.firmware_version = d->firmware_version;
    d->cfg.ca_pem = NULL;
    d->cfg.cert_pem = NULL;
    d->cfg.key_pem = NULL;
    if (d->cfg.attempt_ms == 0)
        d->cfg.attempt_ms = DEVICE_ATTEMPT_MS_DEFAULT;
    if (d->cfg.attempt_ms > DEVICE_ATTEMPT_MS_MAX)
        d->cfg.attempt_ms = DEVICE_ATTEMPT_MS_MAX;
    if (d->cfg.retries > DEVICE_RETRIES_MAX)
        d->cfg.retries = DEVICE_RETRIES_MAX;
    ret = hal_entropy_fill(cfg->hal, seed, sizeof seed);
    if (ret != SAT_OK)
        goto exit;
    for (size_t i = 0; i < sizeof seed; i++)
        d->rng = (d->rng << 8) | seed[i];
    ret = tls_config_client(&d->tls_cfg, cfg->hal, cfg->ca_pem, cfg->cert_pem, cfg->key_pem);
    if (ret != SAT_OK)
        d->tls_cfg = NULL;
exit:
    memset(seed, 0, sizeof seed);
    if (ret != SAT_OK)
        d->cfg.hal = NULL;
    return ret;
}

void device_free(struct device *d)
{
    if (d == NULL)
        return;
    if (d->cfg.hal)
        conn_drop(d);
    tls_session_clear(&d->session);
    tls_config_free(d->tls_cfg);
    memset(d, 0, sizeof *d);
    d->last.suite = "";
    d->cur.suite = "";
}

int device_request_sync(struct device *d)
{
    if (d == NULL || d->tls_cfg == NULL)
        return SAT_ERR_INVALID;
    if (d->phase == DEVICE_REVOKED)
        return SAT_ERR_SYNC_REVOKED;
    if (d->phase == DEVICE_IDLE)
        d->requested = 1;
    return SAT_OK;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

enum device_phase device_step(struct device *d, struct device_wait *next)
{
    struct device_wait w = { NULL, 0, DEVICE_TIMER_NONE };
    uint64_t now;
    unsigned n = 0;
    if (d == NULL || d->tls_cfg == NULL) {
        if (next)
            *next = w;
        return d ? d->phase : DEVICE_IDLE;
    }
    now = hal_clock_monotonic_ms(d->cfg.hal);
    while (n < DEVICE_STEP_TRANSITIONS_MAX && step_phase(d, now))
        n++;

    switch (d->phase) {
    case DEVICE_IDLE:
        if (d->requested)
            w.timer_ms = now;
        break;
    case DEVICE_BACKOFF: w.timer_ms = d->backoff_until_ms; break;
    case DEVICE_REVOKED: break;
    case DEVICE_CONNECTING:
        w.sock = d->sock;
        w.want = HAL_NET_WRITABLE;
        w.timer_ms = d->deadline_ms;
        break;
    case DEVICE_HANDSHAKE:
    case DEVICE_SYNCING:
    case DEVICE_CLOSING:
        w.sock = d->sock;
        w.want = tls_conn_wants(d->tls);
        if (w.want == 0)
            w.want = d->phase == DEVICE_SYNCING && !sync_device_wants_read(&d->sync)
                         ? HAL_NET_WRITABLE
                         : HAL_NET_READABLE;
        w.timer_ms = d->deadline_ms;
        if (d->phase == DEVICE_HANDSHAKE && d->handshake_ms != 0)
            w.timer_ms = min_u64(w.timer_ms, d->handshake_ms + TLS_HANDSHAKE_MS_MAX + 1u);
        if (w.want == HAL_NET_READABLE && tls_conn_pending(d->tls))
            w.timer_ms = now; /* decrypted input waits: the socket may stay quiet */
        break;
    }
    if (n >= DEVICE_STEP_TRANSITIONS_MAX)
        w.timer_ms = now; /* the budget ran out, not the work */
    if (next)
        *next = w;
    return d->phase;
}

enum device_phase device_phase(const struct device *d)
{
    return d->phase;
}

int device_busy(const struct device *d)
{
    return d->phase == DEVICE_CONNECTING || d->phase == DEVICE_HANDSHAKE ||
           d->phase == DEVICE_SYNCING || d->phase == DEVICE_CLOSING;
}

const struct device_result *device_last(const struct device *d)
{
    return &d->last;
}

const struct sync_device_stats *device_last_session(const struct device *d)
{
    return &d->last_session;
}

const struct device_stats *device_stats(const struct device *d)
{
    return &d->stats;
}

uint64_t device_backoff_ms(const struct device *d)
{
    return d->backoff_ms;
}

const char *device_phase_name(enum device_phase p)
{
    switch (p) {
    case DEVICE_IDLE: return "idle";
    case DEVICE_CONNECTING: return "connecting";
    case DEVICE_HANDSHAKE: return "handshake";
    case DEVICE_SYNCING: return "syncing";
    case DEVICE_CLOSING: return "closing";
    case DEVICE_BACKOFF: return "backoff";
    case DEVICE_REVOKED: return "revoked";
    }
    return "?";
}
