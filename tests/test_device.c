/*
 * test_device.c - the tablet's sync driver (firmware/device.c) and the hub's
 * server loop (sync/hub/hub_server.c), both stepped in this one thread over
 * real loopback sockets of the POSIX HAL, with mutual TLS and certificates
 * made when the test runs.
 *
 * Each tablet keeps its store in its own temporary directory. Both the
 * driver and the hub see a HAL monotonic clock the test owns (the POSIX HAL
 * with its clock member wrapped), so backoffs, deadlines and idle limits are
 * tested by moving that clock, never by sleeping: real waits only ever wait
 * for loopback sockets, and every loop is bounded.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "hal_posix.h"
#include "hub_server.h"
#include "keys.h"
#include "pki.h"
#include "store.h"
#include "sync_glue.h"

#define STEPS_MAX 2000  /* driver loop iterations before a test gives up */
#define WAIT_MS 20      /* longest real wait per iteration */
#define ATTEMPT_MS 10000u
#define TABLETS 2
#define JITTER_DRIVERS 8
#define DAY_S 86400LL
#define YEAR_S (365LL * DAY_S)
#define MONO_START_MS 1000000u

/* ---- the clock the test owns --------------------------------------------- */

static uint64_t fake_mono_ms;

static uint64_t fake_clock_monotonic_ms(void *ctx)
{
    (void)ctx;
    return fake_mono_ms;
}

/* ---- fixture --------------------------------------------------------------- */

struct pem {
    char crt[PKI_PEM_BYTES_MAX];
    char key[PKI_PEM_BYTES_MAX];
};

struct tablet {
    char dir[128];
    struct hal posix; /* the tablet's storage and key store */
    struct hal hal;   /* posix with the test's monotonic clock: the driver's */
    int open;
    struct keys keys;
    struct store *store;
    struct sync_glue glue;
    struct pem pem;
    uint8_t id[SYNC_DEVICE_ID_BYTES];
    struct device *dev;
};

struct world {
    char dir[64];
    struct hal base; /* PKI and sockets the test makes itself */
    struct hal hub_hal; /* base with the test's monotonic clock */
    struct pem ca;
    struct pem hub;
    struct hub_store *store;
    struct hub_server *srv; /* running while the hub is up */
    int srv_up;
    uint16_t port;
    struct tablet t[TABLETS];
};

static void make_cert(struct world *w, const char *cn, enum pki_usage usage, struct pem *out)
{
    static uint64_t serial = 100;
    int64_t now = hal_clock_wall_ms(&w->base) / 1000;
    assert_int_equal(pki_key_generate(&w->base, out->key, sizeof out->key), SAT_OK);
    assert_int_equal(pki_cert_issue(&w->base, w->ca.crt, w->ca.key, out->key, cn, usage,
                                    ++serial, now - DAY_S, now + 5 * YEAR_S, out->crt,
                                    sizeof out->crt),
                     SAT_OK);
}

static int setup(void **state)
{
    struct world *w = calloc(1, sizeof *w);
    char path[128];
    int64_t now;
    if (w == NULL)
        return -1;
    snprintf(w->dir, sizeof w->dir, "/tmp/satchel-device-XXXXXX");
    if (!mkdtemp(w->dir) || hal_posix_open(&w->base, w->dir) != SAT_OK)
        return -1;
    hal_posix_set_log_level(&w->base, HAL_LOG_ERROR);
    w->hub_hal = w->base;
    w->hub_hal.clock_monotonic_ms = fake_clock_monotonic_ms;
    fake_mono_ms = MONO_START_MS;
    now = hal_clock_wall_ms(&w->base) / 1000;
    if (pki_key_generate(&w->base, w->ca.key, sizeof w->ca.key) != SAT_OK ||
        pki_ca_self_sign(&w->base, w->ca.key, "Satchel test fleet CA", 1, now - DAY_S,
                         now + 20 * YEAR_S, w->ca.crt, sizeof w->ca.crt) != SAT_OK)
        return -1;
    *state = w;
    make_cert(w, "satchel-hub", PKI_USAGE_SERVER, &w->hub);
    snprintf(path, sizeof path, "%s/hub.db", w->dir);
    if (hub_store_open(path, &w->store, NULL) != SAT_OK)
        return -1;
    w->srv = calloc(1, sizeof *w->srv);
    return w->srv ? 0 : -1;
}

static int teardown(void **state)
{
    struct world *w = *state;
    char cmd[128];
    for (int i = 0; i < TABLETS; i++) {
        struct tablet *t = &w->t[i];
        device_free(t->dev);
        free(t->dev);
        store_close(t->store);
        if (t->open)
            hal_posix_close(&t->posix);
    }
    hub_server_stop(w->srv);
    free(w->srv);
    hub_store_close(w->store);
    hal_posix_close(&w->base);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", w->dir);
    if (system(cmd) != 0)
        return -1;
    free(w);
    return 0;
}

/* ---- the hub ------------------------------------------------------------- */

static void hub_up(struct world *w, uint16_t port)
{
    struct hub_server_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.hal = &w->hub_hal;
    cfg.store = w->store;
    cfg.ca_pem = w->ca.crt;
    cfg.cert_pem = w->hub.crt;
    cfg.key_pem = w->hub.key;
    cfg.listen_host = "127.0.0.1";
    cfg.listen_port = port;
    assert_int_equal(hub_server_init(w->srv, &cfg), SAT_OK);
    assert_int_equal(hub_server_port(w->srv, &w->port), SAT_OK);
    w->srv_up = 1;
}

static void hub_down(struct world *w)
{
    hub_server_stop(w->srv);
    w->srv_up = 0;
}

/* A port where nothing listens: bound once, then closed. */
static uint16_t dead_port(struct world *w)
{
    hal_sock *l = NULL;
    uint16_t port = 0;
    assert_int_equal(hal_net_listen(&w->base, "127.0.0.1", 0, &l), SAT_OK);
    assert_int_equal(hal_net_local_port(&w->base, l, &port), SAT_OK);
    hal_net_close(&w->base, l);
    return port;
}

/* ---- tablets ------------------------------------------------------------- */

static void tablet_config(struct world *w, struct tablet *t, uint16_t port, unsigned retries,
                          struct device_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->hal = &t->hal;
    cfg->hub_host = "127.0.0.1";
    cfg->hub_port = port;
    memcpy(cfg->device_id, t->id, sizeof cfg->device_id);
    cfg->ca_pem = w->ca.crt;
    cfg->cert_pem = t->pem.crt;
    cfg->key_pem = t->pem.key;
    cfg->firmware_version = "test";
    sync_glue_replica(&t->glue, &cfg->replica);
    cfg->attempt_ms = ATTEMPT_MS;
    cfg->retries = retries;
}

/* Opens tablet i: a store in its own directory, a device certificate whose
 * CN is the store's device id, registered with the hub in team "north",
 * and a driver for hub port `port`. */
static struct tablet *tablet_open(struct world *w, int i, uint16_t port, unsigned retries)
{
    struct tablet *t = &w->t[i];
    struct device_config cfg;
    struct store_id sid;
    char hex[STORE_ID_HEX_BYTES];
    char top[sizeof w->dir];
    memcpy(top, w->dir, sizeof top);
    snprintf(t->dir, sizeof t->dir, "%s/tablet%d", top, i);
    assert_int_equal(hal_posix_open(&t->posix, t->dir), SAT_OK);
    t->open = 1;
    hal_posix_set_log_level(&t->posix, HAL_LOG_ERROR);
    t->hal = t->posix;
    t->hal.clock_monotonic_ms = fake_clock_monotonic_ms;
    /* An unlocked key set as after a good PIN (the key module has its own
     * tests): a data key and store id derived from the tablet's number. */
    keys_init(&t->keys, &t->posix);
    for (int k = 0; k < KEYS_DEK_BYTES; k++)
        t->keys.dek[k] = (uint8_t)(i * 131 + k * 7 + 1);
    for (int k = 0; k < KEYS_STORE_ID_BYTES; k++)
        t->keys.store_id[k] = (uint8_t)(i * 17 + k + 3);
    t->keys.unlocked = 1;
    assert_int_equal(store_open(&t->posix, &t->keys, &t->store, NULL), SAT_OK);
    store_device_id(t->store, &sid);
    memcpy(t->id, sid.b, sizeof t->id);
    store_id_to_hex(&sid, hex);
    make_cert(w, hex, PKI_USAGE_CLIENT, &t->pem);
    assert_int_equal(pki_file_write_new(&t->posix, "device.key", t->pem.key), SAT_OK);
    assert_int_equal(hub_store_device_register(w->store, t->id, "north"), SAT_OK);
    t->glue.hal = &t->posix;
    t->glue.keys = &t->keys;
    t->glue.store = &t->store;
    t->dev = calloc(1, sizeof *t->dev);
    assert_non_null(t->dev);
    tablet_config(w, t, port, retries, &cfg);
    assert_int_equal(device_init(t->dev, &cfg), SAT_OK);
    return t;
}

static void add_patient(struct tablet *t, const char *family)
{
    struct store_patient p;
    memset(&p, 0, sizeof p);
    snprintf(p.nhs_number, sizeof p.nhs_number, "9434765919");
    snprintf(p.given_name, sizeof p.given_name, "Eirlys");
    snprintf(p.family_name, sizeof p.family_name, "%s", family);
    snprintf(p.date_of_birth, sizeof p.date_of_birth, "1938-02-11");
    snprintf(p.address, sizeof p.address, "3 Heol y Bryn");
    snprintf(p.postcode, sizeof p.postcode, "SA1 1AA");
    snprintf(p.team, sizeof p.team, "north");
    assert_int_equal(store_patient_add(t->store, &p), SAT_OK);
}

/* ---- driving both ends in one thread ------------------------------------- */

/* One round: wait (at most WAIT_MS of real time, not at all when a timer is
 * due) for the driver's socket and, when it is up and `with_hub`, the hub's
 * sockets; then step the hub. */
static void wait_round(struct world *w, const struct device_wait *dw, int with_hub)
{
    static struct hub_server_wait hw;
    hal_sock *socks[HUB_SERVER_WAIT_SLOTS + 1] = { NULL };
    unsigned want[HUB_SERVER_WAIT_SLOTS + 1] = { 0 };
    unsigned ready[HUB_SERVER_WAIT_SLOTS + 1];
    size_t n = 0;
    uint32_t wait_ms = WAIT_MS;
    hw.n = 0;
    if (with_hub && w->srv_up) {
        hub_server_wait_set(w->srv, &hw);
        for (; n < hw.n; n++) {
            socks[n] = hw.socks[n];
            want[n] = hw.want[n];
        }
        if (hw.timer_ms <= fake_mono_ms)
            wait_ms = 0;
    }
    if (dw && dw->sock) {
        socks[n] = dw->sock;
        want[n++] = dw->want;
    }
    if (dw && dw->timer_ms <= fake_mono_ms)
        wait_ms = 0;
    memset(ready, 0, sizeof ready);
    (void)hal_net_wait(&w->base, socks, want, ready, n, wait_ms);
    if (with_hub && w->srv_up)
        assert_int_equal(hub_server_step(w->srv, ready, hw.n), SAT_OK);
}

/* Steps the driver (and the hub) until the driver's attempt is over. */
static enum device_phase drive(struct world *w, struct tablet *t)
{
    for (int i = 0; i < STEPS_MAX; i++) {
        struct device_wait dw;
        enum device_phase ph = device_step(t->dev, &dw);
        if (!device_busy(t->dev))
            return ph;
        wait_round(w, &dw, 1);
    }
    fail_msg("the driver did not finish its attempt in %d rounds", STEPS_MAX);
    return DEVICE_IDLE;
}

/* Steps the hub until it has no connection left. */
static void settle_hub(struct world *w)
{
    for (int i = 0; i < STEPS_MAX && hub_server_stats(w->srv)->open > 0; i++)
        wait_round(w, NULL, 1);
    assert_int_equal(hub_server_stats(w->srv)->open, 0);
}

/* One whole successful sync of tablet t. */
static void sync_ok(struct world *w, struct tablet *t)
{
    assert_int_equal(device_request_sync(t->dev), SAT_OK);
    assert_int_equal(drive(w, t), DEVICE_IDLE);
    if (device_last(t->dev)->err != SAT_OK)
        fail_msg("sync failed: %s", device_last(t->dev)->msg);
    settle_hub(w);
}

/* ---- tests --------------------------------------------------------------- */

static void test_sync_then_resumed_session(void **state)
{
    struct world *w = *state;
    struct tablet *a;
    struct tablet *b;
    struct device_wait dw;
    struct hub_server_summary sum;
    uint64_t pushed;
    hub_up(w, 0);
    a = tablet_open(w, 0, w->port, 0);
    b = tablet_open(w, 1, w->port, 0);
    add_patient(a, "Syncwell");

    /* First sync: a full handshake; the patient goes up. A request while
     * the attempt runs changes nothing. */
    assert_int_equal(device_request_sync(a->dev), SAT_OK);
    device_step(a->dev, &dw);
    assert_true(device_busy(a->dev));
    assert_int_equal(device_request_sync(a->dev), SAT_OK);
    assert_int_equal(drive(w, a), DEVICE_IDLE);
    settle_hub(w);
    assert_int_equal(device_last(a->dev)->err, SAT_OK);
    assert_false(device_last(a->dev)->resumed);
    assert_true(device_last(a->dev)->suite[0] != '\0');
    pushed = device_last_session(a->dev)->pushed;
    assert_true(pushed > 0);
    assert_int_equal(device_stats(a->dev)->attempts, 1);
    assert_int_equal(device_stats(a->dev)->handshakes_full, 1);
    assert_int_equal(device_stats(a->dev)->handshakes_resumed, 0);
    assert_int_equal(hub_server_device_last(w->srv, a->id, &sum), SAT_OK);
    assert_int_equal(sum.result, SAT_OK);
    assert_int_equal(sum.resumed, 0);
    assert_int_equal(sum.stats.pushed_stored, pushed);

    /* Idle again: nothing to wait for, no timer, until the next request. */
    assert_int_equal(device_step(a->dev, &dw), DEVICE_IDLE);
    assert_null(dw.sock);
    assert_true(dw.timer_ms == DEVICE_TIMER_NONE);

    /* Second sync: the session saved in RAM is resumed. */
    sync_ok(w, a);
    assert_true(device_last(a->dev)->resumed);
    assert_int_equal(device_last_session(a->dev)->pushed, 0);
    assert_int_equal(device_stats(a->dev)->handshakes_full, 1);
    assert_int_equal(device_stats(a->dev)->handshakes_resumed, 1);
    assert_int_equal(device_stats(a->dev)->sessions_ok, 2);
    assert_int_equal(device_stats(a->dev)->sessions_failed, 0);
    assert_int_equal(device_stats(a->dev)->pushed, pushed);
    assert_true(device_stats(a->dev)->bytes_out > 0);
    assert_int_equal(hub_server_device_last(w->srv, a->id, &sum), SAT_OK);
    assert_int_equal(sum.resumed, 1);

    /* The teammate pulls what a pushed. */
    sync_ok(w, b);
    assert_int_equal(device_last_session(b->dev)->pulled, pushed);
    assert_false(device_last(b->dev)->resumed);

    assert_int_equal(hub_server_stats(w->srv)->sessions_ok, 3);
    assert_int_equal(hub_server_stats(w->srv)->sessions_failed, 0);
    assert_int_equal(hub_server_stats(w->srv)->handshakes_full, 2);
    assert_int_equal(hub_server_stats(w->srv)->handshakes_resumed, 1);
}

/* The bounds device.h promises for the k-th failure in a row. */
static void assert_backoff_in_bounds(uint64_t wait_ms, unsigned k)
{
    uint64_t d = DEVICE_BACKOFF_BASE_MS;
    for (unsigned i = 1; i < k && d < DEVICE_BACKOFF_MAX_MS; i++)
        d *= 2;
    if (d > DEVICE_BACKOFF_MAX_MS)
        d = DEVICE_BACKOFF_MAX_MS;
    if (wait_ms < d / 2 || wait_ms > d)
        fail_msg("failure %u: backoff %llu ms outside [%llu, %llu]", k,
                 (unsigned long long)wait_ms, (unsigned long long)(d / 2),
                 (unsigned long long)d);
}

static void test_hub_down_backs_off_then_syncs(void **state)
{
    struct world *w = *state;
    uint16_t port = dead_port(w);
    struct tablet *t = tablet_open(w, 0, port, DEVICE_RETRIES_MAX);
    struct device_wait dw;
    const unsigned failures = 12; /* enough to reach DEVICE_BACKOFF_MAX_MS */
    add_patient(t, "Backoff");

    assert_int_equal(device_request_sync(t->dev), SAT_OK);
    for (unsigned k = 1; k <= failures; k++) {
        uint64_t due;
        assert_int_equal(drive(w, t), DEVICE_BACKOFF);
        assert_int_equal(device_last(t->dev)->err, SAT_ERR_REFUSED);
        assert_int_equal(device_last(t->dev)->failed_in, DEVICE_CONNECTING);
        assert_non_null(strstr(device_last(t->dev)->msg, "cannot reach the hub"));
        assert_int_equal(device_stats(t->dev)->sessions_failed, k);
        assert_int_equal(device_step(t->dev, &dw), DEVICE_BACKOFF);
        assert_null(dw.sock);
        assert_true(dw.timer_ms == fake_mono_ms + device_backoff_ms(t->dev));
        assert_backoff_in_bounds(device_backoff_ms(t->dev), k);
        /* A request during a backoff does not cut it short. */
        assert_int_equal(device_request_sync(t->dev), SAT_OK);
        due = dw.timer_ms;
        fake_mono_ms = due - 1;
        assert_int_equal(device_step(t->dev, &dw), DEVICE_BACKOFF);
        assert_true(dw.timer_ms == due);
        fake_mono_ms = due;
    }
    assert_int_equal(device_backoff_ms(t->dev) <= DEVICE_BACKOFF_MAX_MS, 1);
    assert_true(device_backoff_ms(t->dev) >= DEVICE_BACKOFF_MAX_MS / 2);

    /* The hub comes up on that port: the retry due now succeeds. */
    hub_up(w, port);
    assert_int_equal(drive(w, t), DEVICE_IDLE);
    settle_hub(w);
    assert_int_equal(device_last(t->dev)->err, SAT_OK);
    assert_true(device_last_session(t->dev)->pushed > 0);
    assert_int_equal(device_stats(t->dev)->sessions_ok, 1);
    assert_int_equal(device_stats(t->dev)->attempts, failures + 1);

    /* A success resets the backoff: the next failure waits the base again. */
    hub_down(w);
    assert_int_equal(device_request_sync(t->dev), SAT_OK);
    assert_int_equal(drive(w, t), DEVICE_BACKOFF);
    assert_backoff_in_bounds(device_backoff_ms(t->dev), 1);
}

static void test_retries_are_bounded(void **state)
{
    struct world *w = *state;
    struct tablet *t = tablet_open(w, 0, dead_port(w), 2);
    struct device_wait dw;
    assert_int_equal(device_request_sync(t->dev), SAT_OK);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(drive(w, t), DEVICE_BACKOFF);
        device_step(t->dev, &dw);
        fake_mono_ms = dw.timer_ms;
    }
    /* The third failure spends the retries: idle, the failure reported. */
    assert_int_equal(drive(w, t), DEVICE_IDLE);
    assert_int_equal(device_last(t->dev)->err, SAT_ERR_REFUSED);
    assert_int_equal(device_stats(t->dev)->sessions_failed, 3);
    assert_int_equal(device_step(t->dev, &dw), DEVICE_IDLE);
    assert_true(dw.timer_ms == DEVICE_TIMER_NONE);
    /* A new request starts again at once. */
    assert_int_equal(device_request_sync(t->dev), SAT_OK);
    assert_int_equal(drive(w, t), DEVICE_BACKOFF);
    assert_int_equal(device_stats(t->dev)->attempts, 4);
}

/* Drivers that fail together do not come back together. */
static void test_backoff_jitter_spreads_a_fleet(void **state)
{
    struct world *w = *state;
    uint16_t port = dead_port(w);
    struct tablet *t = tablet_open(w, 0, port, 1);
    struct device *fleet = calloc(JITTER_DRIVERS, sizeof *fleet);
    uint64_t waits[JITTER_DRIVERS];
    int distinct = 0;
    assert_non_null(fleet);
    for (int i = 0; i < JITTER_DRIVERS; i++) {
        struct device_config cfg;
        struct device_wait dw;
        tablet_config(w, t, port, 1, &cfg);
        assert_int_equal(device_init(&fleet[i], &cfg), SAT_OK);
        assert_int_equal(device_request_sync(&fleet[i]), SAT_OK);
        for (int k = 0; k < STEPS_MAX && device_step(&fleet[i], &dw) != DEVICE_BACKOFF; k++)
            wait_round(w, &dw, 0);
        assert_int_equal(device_phase(&fleet[i]), DEVICE_BACKOFF);
        waits[i] = device_backoff_ms(&fleet[i]);
        assert_true(dw.timer_ms == fake_mono_ms + waits[i]);
        assert_backoff_in_bounds(waits[i], 1);
        device_free(&fleet[i]);
    }
    for (int i = 1; i < JITTER_DRIVERS; i++)
        distinct += waits[i] != waits[0];
    assert_true(distinct > 0);
    free(fleet);
}

static void test_revoked_device_wipes_and_stays_revoked(void **state)
{
    struct world *w = *state;
    struct tablet *t;
    struct device_wait dw;
    struct hub_server_summary sum;
    hal_file *f = NULL;
    hub_up(w, 0);
    t = tablet_open(w, 0, w->port, DEVICE_RETRIES_MAX);
    add_patient(t, "Revoked");
    sync_ok(w, t);
    assert_int_equal(hub_store_device_revoke(w->store, t->id), SAT_OK);

    assert_int_equal(device_request_sync(t->dev), SAT_OK);
    assert_int_equal(drive(w, t), DEVICE_REVOKED);
    settle_hub(w);
    assert_int_equal(device_last(t->dev)->err, SAT_ERR_SYNC_REVOKED);
    assert_int_equal(device_last(t->dev)->failed_in, DEVICE_SYNCING);
    assert_non_null(strstr(device_last(t->dev)->msg, "revoked"));
    assert_null(t->store); /* the glue closed and wiped the store */
    assert_int_equal(hal_storage_open(&t->posix, STORE_DB_NAME, 0, &f), SAT_ERR_NOT_FOUND);
    assert_int_equal(hal_storage_open(&t->posix, "device.key", 0, &f), SAT_ERR_NOT_FOUND);
    assert_int_equal(hub_server_device_last(w->srv, t->id, &sum), SAT_OK);
    assert_int_equal(sum.result, SAT_ERR_HUB_REVOKED);

    /* Terminal: no retry is scheduled and requests are refused. */
    assert_int_equal(device_step(t->dev, &dw), DEVICE_REVOKED);
    assert_null(dw.sock);
    assert_true(dw.timer_ms == DEVICE_TIMER_NONE);
    assert_int_equal(device_request_sync(t->dev), SAT_ERR_SYNC_REVOKED);
    fake_mono_ms += DEVICE_BACKOFF_MAX_MS;
    assert_int_equal(device_step(t->dev, &dw), DEVICE_REVOKED);
    assert_int_equal(device_stats(t->dev)->attempts, 2);
}

/* A "hub" that accepts TCP connections (the kernel does, from the listen
 * backlog) but never speaks TLS: the attempt's deadline ends the wait. */
static void test_deadline_ends_a_silent_handshake(void **state)
{
    struct world *w = *state;
    hal_sock *silent = NULL;
    uint16_t port = 0;
    struct tablet *t;
    struct device_wait dw;
    uint64_t start = fake_mono_ms;
    int k;
    assert_int_equal(hal_net_listen(&w->base, "127.0.0.1", 0, &silent), SAT_OK);
    assert_int_equal(hal_net_local_port(&w->base, silent, &port), SAT_OK);
    t = tablet_open(w, 0, port, 0);

    assert_int_equal(device_request_sync(t->dev), SAT_OK);
    for (k = 0; k < STEPS_MAX; k++) {
        device_step(t->dev, &dw);
        if (device_phase(t->dev) == DEVICE_HANDSHAKE && dw.want == HAL_NET_READABLE)
            break; /* the ClientHello is out; it waits for an answer */
        wait_round(w, &dw, 0);
    }
    assert_int_equal(device_phase(t->dev), DEVICE_HANDSHAKE);
    assert_non_null(dw.sock);
    assert_true(dw.timer_ms == start + ATTEMPT_MS);

    /* Nothing moves before the deadline, however often it is stepped. */
    fake_mono_ms = start + ATTEMPT_MS - 1;
    for (k = 0; k < 3; k++)
        assert_int_equal(device_step(t->dev, &dw), DEVICE_HANDSHAKE);
    fake_mono_ms = start + ATTEMPT_MS;
    assert_int_equal(device_step(t->dev, &dw), DEVICE_IDLE);
    assert_int_equal(device_last(t->dev)->err, SAT_ERR_TIMEOUT);
    assert_int_equal(device_last(t->dev)->failed_in, DEVICE_HANDSHAKE);
    assert_true(device_last(t->dev)->ended_ms == start + ATTEMPT_MS);
    assert_null(dw.sock);
    hal_net_close(&w->base, silent);
}

/* The hub completes the handshake, then stops answering: the deadline ends
 * the session; the hub then sees the device gone and logs a failure. */
static void test_deadline_ends_a_silent_session(void **state)
{
    struct world *w = *state;
    struct tablet *t;
    struct device_wait dw;
    uint64_t start = fake_mono_ms;
    int k;
    hub_up(w, 0);
    t = tablet_open(w, 0, w->port, 0);
    assert_int_equal(device_request_sync(t->dev), SAT_OK);
    for (k = 0; k < STEPS_MAX; k++) {
        device_step(t->dev, &dw);
        if (device_phase(t->dev) == DEVICE_SYNCING)
            break; /* Hello is out; from now on the hub is not stepped */
        wait_round(w, &dw, 1);
    }
    assert_int_equal(device_phase(t->dev), DEVICE_SYNCING);
    for (k = 0; k < 5; k++) {
        wait_round(w, &dw, 0);
        assert_int_equal(device_step(t->dev, &dw), DEVICE_SYNCING);
    }
    assert_true(dw.timer_ms == start + ATTEMPT_MS);
    fake_mono_ms = start + ATTEMPT_MS;
    assert_int_equal(device_step(t->dev, &dw), DEVICE_IDLE);
    assert_int_equal(device_last(t->dev)->err, SAT_ERR_TIMEOUT);
    assert_int_equal(device_last(t->dev)->failed_in, DEVICE_SYNCING);
    assert_string_equal(device_last(t->dev)->msg, "the hub did not answer in 10 s");
    /* Whether the hub then meets a reset or an end of stream is up to the
     * kernel's timing: either way the session is over. */
    settle_hub(w);
    assert_int_equal(hub_server_stats(w->srv)->sessions_ok +
                         hub_server_stats(w->srv)->sessions_failed,
                     1);
}

/* A peer that connects and says nothing loses its slot after the idle
 * limit, measured on the hub's clock. */
static void test_hub_closes_idle_connections(void **state)
{
    struct world *w = *state;
    hal_sock *quiet = NULL;
    static struct hub_server_wait hw;
    int k;
    hub_up(w, 0);
    assert_int_equal(hal_net_connect(&w->base, "127.0.0.1", w->port, &quiet), SAT_OK);
    for (k = 0; k < STEPS_MAX && hub_server_stats(w->srv)->open == 0; k++)
        wait_round(w, NULL, 1);
    assert_int_equal(hub_server_stats(w->srv)->open, 1);
    hub_server_wait_set(w->srv, &hw);
    assert_int_equal(hw.n, 2);
    assert_true(hw.timer_ms == fake_mono_ms + HUB_SERVER_IDLE_MS + 1);

    fake_mono_ms += HUB_SERVER_IDLE_MS;
    wait_round(w, NULL, 1);
    assert_int_equal(hub_server_stats(w->srv)->open, 1);
    fake_mono_ms += 1;
    wait_round(w, NULL, 1);
    assert_int_equal(hub_server_stats(w->srv)->open, 0);
    assert_int_equal(hub_server_stats(w->srv)->idle_closed, 1);
    hal_net_close(&w->base, quiet);

    /* Stopped, the server waits for nothing and refuses to step. */
    hub_down(w);
    hub_server_wait_set(w->srv, &hw);
    assert_int_equal(hw.n, 0);
    assert_int_equal(hub_server_step(w->srv, NULL, 0), SAT_ERR_INVALID);
}

static void test_config_is_checked(void **state)
{
    struct world *w = *state;
    struct tablet *t = tablet_open(w, 0, 7443, 0);
    struct device_config cfg;
    struct device *d = calloc(1, sizeof *d);
    assert_non_null(d);
    tablet_config(w, t, 0, 0, &cfg);
    assert_int_equal(device_init(d, &cfg), SAT_ERR_INVALID); /* port 0 */
    tablet_config(w, t, 7443, 0, &cfg);
    cfg.hub_host = "";
    assert_int_equal(device_init(d, &cfg), SAT_ERR_INVALID);
    tablet_config(w, t, 7443, 0, &cfg);
    cfg.cert_pem = w->hub.crt; /* a hub's certificate is not a device's */
    cfg.key_pem = w->hub.key;
    assert_int_equal(device_init(d, &cfg), SAT_ERR_TLS_CONFIG);
    assert_int_equal(device_request_sync(d), SAT_ERR_INVALID);
    device_free(d);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sync_then_resumed_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hub_down_backs_off_then_syncs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retries_are_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backoff_jitter_spreads_a_fleet, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoked_device_wipes_and_stays_revoked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deadline_ends_a_silent_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_ends_a_silent_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hub_closes_idle_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_is_checked, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
