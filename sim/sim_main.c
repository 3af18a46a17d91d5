/*
 * sim_main.c - `satchel-sim`: a day of community nursing, many tablets and
 * a hub in one thread, over virtual time, a virtual network and virtual
 * flash, all from one seed.
 *
 * The tablets run the real firmware (keys, encrypted store, device sync
 * driver, TLS) and the hub the real hub (store, server, sessions): the same
 * code as `satchel` and `satchel-hub`, on the simulated HAL. Nothing in
 * sync/ or firmware/ knows it is simulated. Mbed TLS reads the wall clock
 * itself (time()): the link wraps time() onto the virtual clock, so a seed
 * replays byte for byte.
 *
 * After the day, invariants are checked; any failure prints the seed and
 * the command that replays it, and the exit status is 1.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>
#include <sqlite3.h>

#include "device.h"
#include "hub_server.h"
#include "keys.h"
#include "nhs_number.h"
#include "pki.h"
#include "report.h"
#include "scenario.h"
#include "sim_hal.h"
#include "store.h"
#include "sync_glue.h"

#define SIM_PIN "2468"
#define SIM_KDF_ITERATIONS 1000u
#define SIM_HUB_PORT 7443u
#define SIM_DAY_EPOCH_MS 1793491200000LL /* 2026-11-01T00:00:00Z */
#define SIM_FINAL_WINDOW_MS (120u * 60000u) /* back at the base: final syncs */
#define SIM_FINAL_ROUNDS_MIN 4 /* in that window, however long sync_every_min is */
#define SIM_SAMPLE_MS SCENARIO_SLOT_MS /* one day; a run of d days samples d times less often */
#define SIM_DAY_MS 86400000ull
#define SIM_PUMP_MAX 100000
#define SIM_PEM_BYTES PKI_PEM_BYTES_MAX
#define SWEEP_LOG_LINES 10 /* progress lines of a sweep logged to a file */

/* Mbed TLS calls time() for its own purposes (hello random, tickets): in
 * the simulator it reads the virtual clock. */
static int64_t g_virtual_epoch_ms = SIM_DAY_EPOCH_MS;

time_t __wrap_time(time_t *t);
time_t __wrap_time(time_t *t)
{
    time_t now = (time_t)(g_virtual_epoch_ms / 1000);
    if (t)
        *t = now;
    return now;
}

enum inject {
    INJECT_NONE = 0,
    INJECT_LOST_WRITE, /* a push batch silently loses one change */
    INJECT_SKIP_PURGE /* the tablet ignores purges from the hub */
};

struct tablet {
    unsigned idx;
    char name[REPORT_NAME_BYTES];
    char addr[32];
    unsigned team;
    struct sim_hal *sim;
    const struct hal *hal;
    struct keys keys;
    struct store *store;
    struct sync_glue glue;
    struct sync_replica replica;  /* what the driver uses (maybe faulty) */
    struct sync_replica real;     /* the glue's own */
    struct device drv;
    int drv_ready;
    struct device_stats before; /* of the drivers before the last restart */
    struct device_wait wait;    /* what the driver last said it waits for */
    uint64_t scope_due;         /* check its caseload once it has completed this
                                 * many syncs (a transfer happened; 0: none due) */
    int poke;                   /* step it at the next pump whatever it waits for */
    uint8_t id[STORE_ID_BYTES];
    char *cert_pem;
    const char *key_pem; /* the fleet PKI's (struct sim_pki) */
    int lost;
    int thief_online;
    int wiped;
    uint64_t told_seq; /* highest own sequence of a write reported saved */
    uint64_t next_final; /* next sync request back at the base */
    int battery_dead;
    uint64_t charged_at_ms; /* the battery was full then */
    unsigned drain_per_hour; /* % */
    unsigned visits;
    unsigned writes;
    unsigned power_cuts;
    enum link_quality link;
    struct store_id *known; /* per scenario patient: its id if created */
    uint8_t *open_visit;    /* per scenario patient: an open visit here */
    struct store_id *visit_id;
};

struct world {
    struct scenario sc;
    enum inject inject;
    struct sim_net *net;
    struct sim_hal *hub_sim;
    const struct hal *hub_hal;
    struct hub_store *hub_store;
    struct hub_server hub;
    const char *ca_crt; /* the fleet PKI's (struct sim_pki) */
    const char *hub_crt;
    const char *hub_key;
    uint16_t hub_port;
    unsigned ntab;
    struct tablet *tab;
    struct store_id *patient_id; /* per scenario patient, once created */
    uint8_t *patient_made;
    size_t patients_cap; /* of the per-patient arrays, here and per tablet */
    uint64_t now;    /* virtual ms since the first day's midnight */
    uint64_t start;  /* when the run began */
    uint64_t day_ms; /* when the current day began (its midnight) */
    uint64_t next_sample; /* when the report's next sample is due */
    uint32_t *moved;      /* the patients ever moved between teams */
    size_t nmoved;
    size_t moved_cap;
    unsigned scope_bad;   /* caseload checks after a sync that failed */
    char scope_first[REPORT_DETAIL_BYTES];
    unsigned nsample;
    struct report rep;
    int verbose;
};

static void fatal(const char *what, int err)
{
    fprintf(stderr, "satchel-sim: %s: %s\n", what, sat_strerror(err));
    exit(2);
}

/* ---- faults injected into the replica (test-only builds) ---------------- */

#ifdef SATCHEL_SIM_INJECT
/* Forwarders: with a fault injected every member takes the tablet. */
static int fwd_state(void *arg, uint64_t *cursor, uint64_t *acked)
{
    struct tablet *t = arg;
    return t->real.state(t->real.arg, cursor, acked);
}

static int fwd_changes(void *arg, uint64_t after, size_t max, satchel_FieldChange *out, size_t *n)
{
    struct tablet *t = arg;
    return t->real.changes(t->real.arg, after, max, out, n);
}

static int fwd_wipe(void *arg)
{
    struct tablet *t = arg;
    return t->real.wipe(t->real.arg);
}

static int fwd_set_push_acked(void *arg, uint64_t acked)
{
    struct tablet *t = arg;
    return t->real.set_push_acked(t->real.arg, acked);
}

static int fwd_apply_begin(void *arg)
{
    struct tablet *t = arg;
    return t->real.apply_begin(t->real.arg);
}

static int fwd_apply_changes(void *arg, const satchel_FieldChange *changes, size_t n,
                             unsigned *conflicts)
{
    struct tablet *t = arg;
    return t->real.apply_changes(t->real.arg, changes, n, conflicts);
}

static int fwd_apply_commit(void *arg, const uint8_t (*purge)[SYNC_DEVICE_ID_BYTES],
                            size_t npurge, uint64_t next_cursor, unsigned *conflicts)
{
    struct tablet *t = arg;
    return t->real.apply_commit(t->real.arg, purge, npurge, next_cursor, conflicts);
}

static void fwd_apply_abort(void *arg)
{
    struct tablet *t = arg;
    t->real.apply_abort(t->real.arg);
}

/* lost-write: each push batch of three or more changes silently loses its
 * middle one, so "saved writes reach the hub" must fail. */
static int faulty_changes(void *arg, uint64_t after, size_t max, satchel_FieldChange *out,
                          size_t *n)
{
    struct tablet *t = arg;
    int ret = t->real.changes(t->real.arg, after, max, out, n);
    if (ret == SAT_OK && *n >= 3) {
        memmove(&out[*n / 2], &out[*n / 2 + 1], (*n - *n / 2 - 1) * sizeof *out);
        (*n)--;
    }
    return ret;
}

/* skip-purge: the tablet ignores purges, so a transferred patient stays on
 * the old team's tablets and "no patient outside the caseload" must fail. */
static int faulty_apply_commit(void *arg, const uint8_t (*purge)[SYNC_DEVICE_ID_BYTES],
                               size_t npurge, uint64_t next_cursor, unsigned *conflicts)
{
    struct tablet *t = arg;
    (void)purge;
    (void)npurge;
    return t->real.apply_commit(t->real.arg, NULL, 0, next_cursor, conflicts);
}
#endif

static void wire_replica(struct world *w, struct tablet *t)
{
    sync_glue_replica(&t->glue, &t->real);
    t->replica = t->real;
#ifdef SATCHEL_SIM_INJECT
    if (w->inject != INJECT_NONE) {
        t->replica.state = fwd_state;
        t->replica.changes = w->inject == INJECT_LOST_WRITE ? faulty_changes : fwd_changes;
        t->replica.wipe = fwd_wipe;
        t->replica.set_push_acked = fwd_set_push_acked;
        t->replica.apply_begin = fwd_apply_begin;
        t->replica.apply_changes = fwd_apply_changes;
        t->replica.apply_commit =
            w->inject == INJECT_SKIP_PURGE ? faulty_apply_commit : fwd_apply_commit;
        t->replica.apply_abort = fwd_apply_abort;
        t->replica.arg = t;
    }
#else
    (void)w;
#endif
}

/* ---- set-up ----------------------------------------------------------------- */

static void hex_id(const uint8_t id[STORE_ID_BYTES], char out[2 * STORE_ID_BYTES + 1])
{
    store_id_to_hex((const struct store_id *)id, out);
}

static int tablet_open_store(struct world *w, struct tablet *t)
{
    char why[STORE_ERRMSG_BYTES];
    int ret = store_open(t->hal, &t->keys, &t->store, why);
    if (ret != SAT_OK)
        fprintf(stderr, "satchel-sim: %s cannot open its store: %s\n", t->name,
                why[0] ? why : sat_strerror(ret));
    if (ret == SAT_OK)
        ret = store_adopt_device_id(t->store, (const struct store_id *)t->id);
    (void)w;
    return ret;
}

static int tablet_start_driver(struct world *w, struct tablet *t)
{
    struct device_config cfg;
    memset(&cfg, 0, sizeof cfg);
    t->glue.hal = t->hal;
    t->glue.keys = &t->keys;
    t->glue.store = &t->store;
    wire_replica(w, t);
    cfg.hal = t->hal;
    cfg.hub_host = "hub";
    cfg.hub_port = w->hub_port;
    memcpy(cfg.device_id, t->id, STORE_ID_BYTES);
    cfg.ca_pem = w->ca_crt;
    cfg.cert_pem = t->cert_pem;
    cfg.key_pem = t->key_pem;
    cfg.firmware_version = "sim";
    cfg.replica = t->replica;
    cfg.attempt_ms = 120000;
    cfg.retries = 3; /* a busy hub or a patchy link: try again after a backoff */
    t->drv_ready = device_init(&t->drv, &cfg) == SAT_OK;
    memset(&t->wait, 0, sizeof t->wait);
    t->poke = 1;
    return t->drv_ready ? SAT_OK : SAT_ERR_TLS_CONFIG;
}

/* The fleet's PKI: the fleet CA, the hub's key and certificate and the
 * tablets' keys. Like a test's fixture keys it is the same for every seed:
 * it comes from its own generator (SIM_PKI_SEED), is made once per process
 * and serves every run of a sweep, growing when a run has more tablets
 * (tablet i's key is the i-th drawn, however many runs asked before). Each
 * run still issues its tablets' certificates, from the hub's generator:
 * their names are the tablet ids the seed draws. */
#define SIM_PKI_SEED 0x666c656574504b49ull
#define SIM_PKI_NOT_BEFORE_S (SIM_DAY_EPOCH_MS / 1000 - 86400)
#define SIM_PKI_NOT_AFTER_S (SIM_DAY_EPOCH_MS / 1000 + (SCENARIO_DAYS_MAX + 366LL) * 86400)

struct sim_pki {
    struct sim_hal *sim; /* the PKI's generator */
    struct pki_issuer *ca;
    char *ca_crt;
    char *ca_key;
    char *hub_crt;
    char *hub_key;
    char **dev_key;
    unsigned ndev;
};

static struct sim_pki g_pki;

static char *pem_new(void)
{
    char *p = calloc(1, SIM_PEM_BYTES);
    if (!p)
        fatal("certificates", SAT_ERR_NO_MEMORY);
    return p;
}

/* The fleet PKI with keys for at least ndev tablets. */
static struct sim_pki *fleet_pki(unsigned ndev)
{
    struct sim_pki *k = &g_pki;
    const struct hal *h;
    if (!k->sim) {
        if (sim_hal_new(&k->sim, SIM_PKI_SEED, SIM_DAY_EPOCH_MS) != SAT_OK)
            fatal("certificates", SAT_ERR_NO_MEMORY);
        h = sim_hal_hal(k->sim);
        k->ca_crt = pem_new();
        k->ca_key = pem_new();
        k->hub_crt = pem_new();
        k->hub_key = pem_new();
        if (pki_key_generate(h, k->ca_key, SIM_PEM_BYTES) != SAT_OK ||
            pki_ca_self_sign(h, k->ca_key, "Satchel sim CA", 1, SIM_PKI_NOT_BEFORE_S,
                             SIM_PKI_NOT_AFTER_S, k->ca_crt, SIM_PEM_BYTES) != SAT_OK ||
            pki_issuer_open(k->ca_crt, k->ca_key, &k->ca) != SAT_OK ||
            pki_key_generate(h, k->hub_key, SIM_PEM_BYTES) != SAT_OK ||
            pki_issuer_issue(h, k->ca, k->hub_key, "hub", PKI_USAGE_SERVER, 2,
                             SIM_PKI_NOT_BEFORE_S, SIM_PKI_NOT_AFTER_S, k->hub_crt,
                             SIM_PEM_BYTES) != SAT_OK)
            fatal("fleet CA and hub certificate", SAT_ERR_TLS_CRYPTO);
    }
    if (ndev > k->ndev) {
        char **keys = realloc(k->dev_key, ndev * sizeof *keys);
        if (!keys)
            fatal("certificates", SAT_ERR_NO_MEMORY);
        k->dev_key = keys;
        h = sim_hal_hal(k->sim);
        for (; k->ndev < ndev; k->ndev++) {
            k->dev_key[k->ndev] = pem_new();
            if (pki_key_generate(h, k->dev_key[k->ndev], SIM_PEM_BYTES) != SAT_OK)
                fatal("a tablet's key", SAT_ERR_TLS_CRYPTO);
        }
    }
    return k;
}

static void fleet_pki_free(void)
{
    struct sim_pki *k = &g_pki;
    for (unsigned i = 0; i < k->ndev; i++) {
        mbedtls_platform_zeroize(k->dev_key[i], SIM_PEM_BYTES);
        free(k->dev_key[i]);
    }
    free(k->dev_key);
    if (k->ca_key)
        mbedtls_platform_zeroize(k->ca_key, SIM_PEM_BYTES);
    if (k->hub_key)
        mbedtls_platform_zeroize(k->hub_key, SIM_PEM_BYTES);
    free(k->ca_crt);
    free(k->ca_key);
    free(k->hub_crt);
    free(k->hub_key);
    pki_issuer_close(k->ca);
    sim_hal_free(k->sim);
    memset(k, 0, sizeof *k);
}

/* Grows an array of n0 elements of size sz to n1, zeroing the new ones. */
static void *grow(void *p, size_t n0, size_t n1, size_t sz)
{
    uint8_t *q = realloc(p, n1 * sz);
    if (!q)
        fatal("patients", SAT_ERR_NO_MEMORY);
    memset(q + n0 * sz, 0, (n1 - n0) * sz);
    return q;
}

/* Makes the per-patient arrays hold every patient the scenario has drawn
 * (the caseload grows day by day). */
static void grow_patients(struct world *w)
{
    size_t cap = w->patients_cap;
    if (w->sc.npatients + 1 <= cap)
        return;
    while (cap < w->sc.npatients + 1)
        cap = cap ? 2 * cap : 64;
    w->patient_id = grow(w->patient_id, w->patients_cap, cap, sizeof *w->patient_id);
    w->patient_made = grow(w->patient_made, w->patients_cap, cap, 1);
    for (unsigned i = 0; i < w->ntab; i++) {
        struct tablet *t = &w->tab[i];
        t->known = grow(t->known, w->patients_cap, cap, sizeof *t->known);
        t->open_visit = grow(t->open_visit, w->patients_cap, cap, 1);
        t->visit_id = grow(t->visit_id, w->patients_cap, cap, sizeof *t->visit_id);
    }
    w->patients_cap = cap;
}

static void setup(struct world *w)
{
    struct hub_server_config hc;
    struct sim_pki *pki;
    int ret;
    const struct scenario_params *p = &w->sc.p;

    if (sim_net_new(&w->net, w->sc.seed ^ 0x4E4554ull) != SAT_OK ||
        sim_hal_new(&w->hub_sim, w->sc.seed ^ 0x485542ull,
                    SIM_DAY_EPOCH_MS + (int64_t)w->sc.p.day_start_ms) != SAT_OK)
        fatal("simulated network", SAT_ERR_NO_MEMORY);
    w->hub_hal = sim_hal_hal(w->hub_sim);
    if (sim_net_attach(w->net, w->hub_sim, "hub") != SAT_OK)
        fatal("hub address", SAT_ERR_INVALID);
    {
        struct sim_link good = { 1, 5, 0, 0, 0 };
        sim_net_set_link(w->net, "hub", &good);
    }
    pki = fleet_pki(p->nurses);
    w->ca_crt = pki->ca_crt;
    w->hub_crt = pki->hub_crt;
    w->hub_key = pki->hub_key;
    /* The hub's database is scratch that lives and dies with the run (the
     * simulator never crashes the hub): in memory (see
     * hub_store_open), so neither the host's disk nor its system
     * calls set the pace. The hub runs the same SQL; only its journal is
     * in memory. */
    ret = hub_store_open(":memory:", &w->hub_store, NULL);
    if (ret != SAT_OK)
        fatal("hub database", ret);
    memset(&hc, 0, sizeof hc);
    hc.hal = w->hub_hal;
    hc.store = w->hub_store;
    hc.ca_pem = w->ca_crt;
    hc.cert_pem = w->hub_crt;
    hc.key_pem = w->hub_key;
    hc.listen_host = "hub";
    hc.listen_port = SIM_HUB_PORT;
    ret = hub_server_init(&w->hub, &hc);
    if (ret != SAT_OK)
        fatal("hub server", ret);
    w->hub_port = SIM_HUB_PORT;

    w->ntab = p->nurses;
    w->tab = calloc(w->ntab, sizeof *w->tab);
    if (!w->tab)
        fatal("tablets", SAT_ERR_NO_MEMORY);
    for (unsigned i = 0; i < w->ntab; i++) {
        struct tablet *t = &w->tab[i];
        struct keys_enrol_opts eo = { SIM_KDF_ITERATIONS, NULL };
        char hex[2 * STORE_ID_BYTES + 1];
        uint64_t rng = w->sc.seed * 1000003u + i;
        t->idx = i;
        t->team = i % p->teams;
        snprintf(t->name, sizeof t->name, "tablet-%u", i);
        snprintf(t->addr, sizeof t->addr, "tablet-%u", i);
        /* Clocks start at the day's start (then skewed per tablet). */
        if (sim_hal_new(&t->sim, w->sc.seed * 7919u + i + 1,
                        SIM_DAY_EPOCH_MS + (int64_t)p->day_start_ms) != SAT_OK)
            fatal("tablet", SAT_ERR_NO_MEMORY);
        t->hal = sim_hal_hal(t->sim);
        sim_hal_set_clock_skew(t->sim, w->sc.skew_ms[i], w->sc.drift_ppm[i]);
        sim_hal_set_battery(t->sim, 100);
        if (sim_net_attach(w->net, t->sim, t->addr) != SAT_OK)
            fatal("tablet address", SAT_ERR_INVALID);
        for (int b = 0; b < STORE_ID_BYTES; b++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            t->id[b] = (uint8_t)(rng >> 56);
        }
        hex_id(t->id, hex);
        t->cert_pem = calloc(1, SIM_PEM_BYTES);
        t->key_pem = pki->dev_key[i];
        if (!t->cert_pem)
            fatal("tablet", SAT_ERR_NO_MEMORY);
        if (pki_issuer_issue(w->hub_hal, pki->ca, t->key_pem, hex, PKI_USAGE_CLIENT, 100 + i,
                             SIM_PKI_NOT_BEFORE_S, SIM_PKI_NOT_AFTER_S, t->cert_pem,
                             SIM_PEM_BYTES) != SAT_OK)
            fatal("tablet certificate", SAT_ERR_TLS_CRYPTO);
        if (hub_store_device_register(w->hub_store, t->id, p->team_names[t->team]) != SAT_OK)
            fatal("registering a tablet", SAT_ERR_HUB_STORAGE);
        keys_init(&t->keys, t->hal);
        ret = keys_enrol(&t->keys, SIM_PIN, &eo);
        if (ret != SAT_OK)
            fatal("enrolling a tablet", ret);
        ret = tablet_open_store(w, t);
        if (ret != SAT_OK)
            fatal("opening a tablet's store", ret);
        if (tablet_start_driver(w, t) != SAT_OK)
            fatal("a tablet's sync driver", SAT_ERR_TLS_CONFIG);
        snprintf(w->rep.dev[i].name, REPORT_NAME_BYTES, "%s", t->name);
        snprintf(w->rep.dev[i].team, REPORT_NAME_BYTES, "%s", p->team_names[t->team]);
    }
    grow_patients(w);
}

static void teardown(struct world *w)
{
    for (unsigned i = 0; i < w->ntab; i++) {
        struct tablet *t = &w->tab[i];
        device_free(&t->drv);
        store_close(t->store);
        keys_lock(&t->keys);
        sim_hal_free(t->sim);
        free(t->cert_pem);
        free(t->known);
        free(t->open_visit);
        free(t->visit_id);
    }
    hub_server_stop(&w->hub);
    hub_store_close(w->hub_store);
    sim_hal_free(w->hub_sim);
    sim_net_free(w->net);
    free(w->tab);
    free(w->patient_id);
    free(w->patient_made);
    free(w->moved);
    scenario_free(&w->sc);
}

/* ---- the nurse's work ------------------------------------------------------ */

static void note_saved(struct tablet *t)
{
    struct store_sync_state st;
    t->writes++;
    if (store_sync_state(t->store, &st) == SAT_OK && st.last_seq > t->told_seq)
        t->told_seq = st.last_seq;
}

static void make_patient(struct world *w, struct tablet *t, uint32_t pi, uint64_t value)
{
    static const char *const given[] = { "Ada", "Bryn", "Cerys", "Dafydd", "Eira", "Ffion",
                                         "Gethin", "Heledd" };
    static const char *const family[] = { "Morgan", "Pryce", "Rees", "Lloyd", "Vaughan",
                                          "Jenkins", "Powell", "Evans" };
    struct store_patient p;
    char nine[9];
    int check = -1;
    uint64_t v = value;
    memset(&p, 0, sizeof p);
    while (check < 0) {
        for (int i = 0; i < 9; i++) {
            v = v * 6364136223846793005ull + 1442695040888963407ull;
            nine[i] = (char)('0' + (v >> 33) % 10);
        }
        check = nhs_number_check_digit(nine);
    }
    memcpy(p.nhs_number, nine, 9);
    p.nhs_number[9] = (char)('0' + check);
    snprintf(p.given_name, sizeof p.given_name, "%s", given[value % 8]);
    snprintf(p.family_name, sizeof p.family_name, "%s", family[(value >> 8) % 8]);
    snprintf(p.date_of_birth, sizeof p.date_of_birth, "19%02u-%02u-%02u",
             (unsigned)(30 + (value >> 16) % 60), (unsigned)(1 + (value >> 24) % 12),
             (unsigned)(1 + (value >> 32) % 28));
    snprintf(p.address, sizeof p.address, "%u Heol %s", (unsigned)(1 + (value >> 40) % 200),
             given[(value >> 48) % 8]);
    snprintf(p.team, sizeof p.team, "%s", w->sc.p.team_names[w->sc.patients[pi].team]);
    if (store_patient_add(t->store, &p) == SAT_OK) {
        w->patient_id[pi] = p.id;
        w->patient_made[pi] = 1;
        t->known[pi] = p.id;
        note_saved(t);
    }
}

/* 1 if the tablet holds the patient (created here or received by sync). */
static int knows(struct world *w, struct tablet *t, uint32_t pi)
{
    struct store_patient p;
    if (!w->patient_made[pi])
        return 0;
    return store_patient_get(t->store, &w->patient_id[pi], &p) == SAT_OK && !p.deleted;
}

static void request_sync(struct tablet *t)
{
    if (t->drv_ready && !t->wiped && t->link != LINK_NONE) {
        device_request_sync(&t->drv);
        t->poke = 1;
    }
}

static void do_action(struct world *w, const struct action *a)
{
    struct tablet *t = &w->tab[a->nurse];
    uint32_t pi = a->patient;
    if (t->lost || t->wiped || !t->store)
        return;
    if (a->kind == ACT_SYNC) {
        request_sync(t);
        return;
    }
    if (a->kind == ACT_VISIT_START && !w->patient_made[pi] &&
        w->sc.patients[pi].home_nurse == a->nurse) {
        make_patient(w, t, pi, a->value);
        if (w->sc.patients[pi].shared)
            return; /* created at the base, visited later */
    }
    if (!knows(w, t, pi))
        return; /* not on this tablet (yet): the nurse cannot see it */
    switch (a->kind) {
    case ACT_VISIT_START: {
        struct store_visit v;
        if (store_visit_start(t->store, &w->patient_id[pi], "home visit", &v) == SAT_OK) {
            t->open_visit[pi] = 1;
            t->visit_id[pi] = v.id;
            t->visits++;
            note_saved(t);
        }
        break;
    }
    case ACT_OBS: {
        struct store_obs o;
        uint64_t v = a->value;
        memset(&o, 0, sizeof o);
        o.patient_id = w->patient_id[pi];
        o.vitals.respiration_rate = 10 + (int)(v % 16);
        o.vitals.spo2_pct = 88 + (int)((v >> 8) % 12);
        o.vitals.spo2_scale = 1;
        o.vitals.on_oxygen = (int)((v >> 16) % 4 == 0);
        o.vitals.systolic_bp = 90 + (int)((v >> 20) % 80);
        o.vitals.pulse = 50 + (int)((v >> 28) % 70);
        o.vitals.consciousness = NEWS2_ALERT;
        o.vitals.temperature_dc = 355 + (int)((v >> 36) % 40);
        if (t->open_visit[pi]) {
            o.has_visit = 1;
            o.visit_id = t->visit_id[pi];
        }
        if (store_obs_add(t->store, &o) == SAT_OK)
            note_saved(t);
        break;
    }
    case ACT_NOTE: {
        struct store_note *n = calloc(1, sizeof *n);
        if (!n)
            break;
        n->patient_id = w->patient_id[pi];
        if (t->open_visit[pi]) {
            n->has_visit = 1;
            n->visit_id = t->visit_id[pi];
        }
        snprintf(n->text, sizeof n->text, "Visit note %016llx: seen at home, plan reviewed.",
                 (unsigned long long)a->value);
        if (store_note_add(t->store, n) == SAT_OK)
            note_saved(t);
        free(n);
        break;
    }
    case ACT_TASK: {
        struct store_task k;
        memset(&k, 0, sizeof k);
        k.patient_id = w->patient_id[pi];
        snprintf(k.title, sizeof k.title, "Follow-up %04llx",
                 (unsigned long long)(a->value & 0xffff));
        if (store_task_add(t->store, &k) == SAT_OK)
            note_saved(t);
        break;
    }
    case ACT_EDIT_ADDRESS: {
        struct store_patient p;
        if (store_patient_get(t->store, &w->patient_id[pi], &p) != SAT_OK)
            break;
        snprintf(p.address, sizeof p.address, "%u Ffordd %s (from %s)",
                 (unsigned)(1 + a->value % 300), t->name, t->name);
        if (store_patient_update(t->store, &p) == SAT_OK)
            note_saved(t);
        break;
    }
    case ACT_VISIT_END:
        if (t->open_visit[pi] && store_visit_end(t->store, &t->visit_id[pi], NULL) == SAT_OK) {
            t->open_visit[pi] = 0;
            note_saved(t);
        }
        request_sync(t);
        break;
    default:
        break;
    }
}

/* The tablet died (power cut): it restarts, the nurse unlocks it again. */
static void restart_tablet(struct world *w, struct tablet *t)
{
    uint64_t retry = 0;
    if (t->drv_ready) {
        const struct device_stats *ds = device_stats(&t->drv);
        t->before.sessions_ok += ds->sessions_ok;
        t->before.sessions_failed += ds->sessions_failed;
        t->before.handshakes_resumed += ds->handshakes_resumed;
        t->before.conflicts += ds->conflicts;
    }
    device_free(&t->drv);
    t->drv_ready = 0;
    store_close(t->store);
    t->store = NULL;
    keys_lock(&t->keys);
    sim_hal_power_on(t->sim);
    t->power_cuts++;
    /* Plugged in at the next house: the day goes on from a fresh charge. */
    t->battery_dead = 0;
    t->charged_at_ms = w->now;
    if (keys_unlock(&t->keys, SIM_PIN, &retry) != SAT_OK || tablet_open_store(w, t) != SAT_OK)
        return;
    memset(t->open_visit, 0, w->patients_cap);
    tablet_start_driver(w, t);
}

static void apply_links(struct world *w);

/* Syncs the tablet has completed, across driver restarts. */
static uint64_t syncs_done(struct tablet *t)
{
    return t->before.sessions_ok + (t->drv_ready ? device_stats(&t->drv)->sessions_ok : 0);
}

/* A patient left team `from`: the next sync of each of its tablets that
 * starts from now on must leave it holding only its team's caseload
 * (checked in pump, at once; every tablet is checked again at the end). */
static void scope_check_after_next_sync(struct world *w, uint32_t from)
{
    for (unsigned i = 0; i < w->ntab; i++) {
        struct tablet *t = &w->tab[i];
        if (t->team != from)
            continue;
        enum device_phase ph = t->drv_ready ? device_phase(&t->drv) : DEVICE_IDLE;
        /* A session under way started before the move: the one after it. */
        int busy = ph != DEVICE_IDLE && ph != DEVICE_BACKOFF && ph != DEVICE_REVOKED;
        uint64_t due = syncs_done(t) + 1 + (uint64_t)busy;
        if (due > t->scope_due)
            t->scope_due = due;
    }
}

/* Remembers a moved patient for the caseload checks after syncs. */
static void note_moved(struct world *w, uint32_t patient)
{
    for (size_t i = 0; i < w->nmoved; i++)
        if (w->moved[i] == patient)
            return;
    if (w->nmoved == w->moved_cap) {
        size_t cap = w->moved_cap ? 2 * w->moved_cap : 64;
        w->moved = grow(w->moved, w->moved_cap, cap, sizeof *w->moved);
        w->moved_cap = cap;
    }
    w->moved[w->nmoved++] = patient;
}

static void do_event(struct world *w, const struct event *e)
{
    struct tablet *t = e->nurse < w->ntab ? &w->tab[e->nurse] : NULL;
    switch (e->kind) {
    case EV_POWER_CUT:
        /* The battery dies: the next storage write or sync is cut off. */
        if (t && !t->lost) {
            t->battery_dead = 1;
            sim_hal_set_battery(t->sim, 0);
            sim_hal_cut_at(t->sim, 1);
        }
        break;
    case EV_TRANSFER:
        if (e->patient < w->sc.npatients && w->patient_made[e->patient]) {
            uint32_t from = w->sc.patients[e->patient].team;
            int ret = hub_store_patient_assign(w->hub_store, w->patient_id[e->patient].b,
                                               w->sc.p.team_names[e->team], NULL);
            if (ret == SAT_OK) { /* the scenario's plan follows the patient */
                scenario_transfer(&w->sc, e->patient, e->team);
                w->rep.moved += from != e->team;
                if (from != e->team) {
                    note_moved(w, e->patient);
                    scope_check_after_next_sync(w, from);
                }
            }
        }
        break;
    case EV_LOSE_TABLET:
        if (t)
            t->lost = 1;
        break;
    case EV_REVOKE:
        if (t && hub_store_device_revoke(w->hub_store, t->id) != SAT_OK)
            fprintf(stderr, "satchel-sim: revoking %s failed\n", t->name);
        break;
    case EV_THIEF_SYNC:
        if (t) {
            t->thief_online = 1;
            apply_links(w);
            request_sync(t);
        }
        break;
    }
}

/* ---- links and time ---------------------------------------------------------- */

static void apply_links(struct world *w)
{
    for (unsigned i = 0; i < w->ntab; i++) {
        struct tablet *t = &w->tab[i];
        enum link_quality q = scenario_link(&w->sc, i, w->now - w->day_ms);
        struct sim_link l;
        if (w->now >= w->day_ms + w->sc.p.day_end_ms)
            q = LINK_GOOD; /* back at the base for the final sync */
        if (t->lost)
            q = t->thief_online ? LINK_GOOD : LINK_NONE;
        memset(&l, 0, sizeof l);
        l.up = q != LINK_NONE;
        l.latency_ms = q == LINK_GOOD ? w->sc.p.latency_ms / 2 : w->sc.p.latency_ms * 2;
        l.jitter_ms = q == LINK_GOOD ? w->sc.p.jitter_ms / 2 : w->sc.p.jitter_ms * 2;
        l.reset_per_mille = q == LINK_PATCHY ? 2 : 0;
        if (q != t->link || w->now == w->start) {
            t->link = q;
            sim_net_set_link(w->net, t->addr, &l);
        }
    }
}

static void advance_to(struct world *w, uint64_t to)
{
    uint64_t d = to - w->now;
    if (to <= w->now)
        return;
    w->now = to;
    g_virtual_epoch_ms = SIM_DAY_EPOCH_MS + (int64_t)to;
    sim_net_set_now(w->net, to);
    sim_hal_advance_ms(w->hub_sim, d);
    for (unsigned i = 0; i < w->ntab; i++)
        sim_hal_advance_ms(w->tab[i].sim, d);
}

static void check_scope_now(struct world *w, struct tablet *t);

/* 1 if stepping the tablet's driver now could do anything: it was poked
 * (a sync request, a restart), its power is off (it must restart), its
 * timer is due, or the socket it waits on is ready (data, room, a reset).
 * The rest of the time a step would only find it still waiting: with many
 * tablets that was most of the simulator's time. */
static int tablet_due(struct tablet *t)
{
    unsigned ready = 0;
    if (t->poke || sim_hal_powered_off(t->sim))
        return 1;
    if (t->wait.timer_ms != DEVICE_TIMER_NONE &&
        t->wait.timer_ms <= hal_clock_monotonic_ms(t->hal))
        return 1;
    return t->wait.sock &&
           hal_net_wait(t->hal, &t->wait.sock, &t->wait.want, &ready, 1, 0) == SAT_OK &&
           ready != 0;
}

/* Steps the hub and every tablet until nothing more can happen at this
 * virtual instant; returns the earliest time something is due next. */
static uint64_t pump(struct world *w)
{
    uint64_t next = UINT64_MAX;
    for (int round = 0; round < SIM_PUMP_MAX; round++) {
        struct hub_server_wait hw;
        int busy = 0;
        hub_server_wait_set(&w->hub, &hw);
        hub_server_step(&w->hub, NULL, 0);
        next = UINT64_MAX;
        if (hw.timer_ms != HUB_SERVER_TIMER_NONE)
            next = hw.timer_ms - w->now;
        for (unsigned i = 0; i < w->ntab; i++) {
            struct tablet *t = &w->tab[i];
            struct device_wait dw;
            enum device_phase ph;
            if (!t->drv_ready)
                continue;
            if (tablet_due(t)) {
                ph = device_step(&t->drv, &t->wait);
                t->poke = 0;
            } else {
                ph = device_phase(&t->drv);
            }
            dw = t->wait;
            if (sim_hal_powered_off(t->sim)) {
                restart_tablet(w, t);
                busy = 1;
                continue;
            }
            if (ph == DEVICE_REVOKED && !t->wiped) {
                t->wiped = 1;
                busy = 1;
            }
            if (t->scope_due && syncs_done(t) >= t->scope_due) {
                t->scope_due = 0;
                check_scope_now(w, t);
            }
            if (dw.timer_ms != DEVICE_TIMER_NONE) {
                uint64_t mono = hal_clock_monotonic_ms(t->hal);
                uint64_t in = dw.timer_ms > mono ? dw.timer_ms - mono : 0;
                if (in == 0)
                    busy = 1;
                else if (in < next)
                    next = in;
            }
        }
        {
            uint64_t n = sim_net_next_event_ms(w->net);
            if (n != UINT64_MAX && n - w->now < next)
                next = n - w->now;
        }
        if (!busy && next > 0)
            break;
    }
    return next == UINT64_MAX ? UINT64_MAX : w->now + next;
}

static void sample(struct world *w, unsigned s)
{
    for (unsigned i = 0; i < w->ntab && s < REPORT_SAMPLES_MAX; i++) {
        struct tablet *t = &w->tab[i];
        struct report_device *d = &w->rep.dev[i];
        struct store_sync_state st;
        struct sim_net_stats ns;
        d->link[s] = (uint8_t)t->link;
        /* The battery runs down through the day (each tablet at its own
         * rate); the HAL reports it to the firmware. */
        if (!t->battery_dead) {
            uint64_t used = (w->now - t->charged_at_ms) * t->drain_per_hour / 3600000u;
            sim_hal_set_battery(t->sim, used >= 100 ? 1 : (int)(100 - used));
        }
        d->pending[s] = 0;
        if (t->store && store_sync_state(t->store, &st) == SAT_OK)
            d->pending[s] = (uint32_t)(st.last_seq - st.push_acked);
        if (sim_hal_net_stats(t->sim, &ns) == SAT_OK)
            d->bytes_cum[s] = ns.bytes_sent + ns.bytes_received;
    }
    if (s < REPORT_SAMPLES_MAX && s + 1 > w->rep.nsamples)
        w->rep.nsamples = s + 1;
}

/* How often a tablet back at the base syncs: its usual schedule, but at
 * least SIM_FINAL_ROUNDS_MIN times before the day's checks (two rounds
 * are enough for every tablet to push, then pull what the others pushed). */
static uint64_t final_every(const struct world *w)
{
    uint64_t every = (uint64_t)w->sc.p.sync_every_min * 60000u;
    uint64_t most = SIM_FINAL_WINDOW_MS / SIM_FINAL_ROUNDS_MIN;
    return every < most ? every : most;
}

/* Runs the day the scenario has drawn (w->sc.day): from the morning at the
 * base to the evening's final syncs. Overnight nothing happens: the
 * tablets sleep (keeping their sessions), charge, and the report's samples
 * keep the evening's state. */
static void run_day(struct world *w)
{
    size_t ai = 0;
    size_t ei = 0;
    uint64_t day = (uint64_t)w->sc.day * SIM_DAY_MS;
    uint64_t begin = day + w->sc.p.day_start_ms;
    uint64_t end = day + w->sc.p.day_end_ms + SIM_FINAL_WINDOW_MS;
    if (w->sc.day == 0) {
        w->start = w->now = begin;
        g_virtual_epoch_ms = SIM_DAY_EPOCH_MS + (int64_t)w->now;
        sim_net_set_now(w->net, w->now);
        w->rep.sample_start_ms = w->next_sample = begin;
        w->rep.sample_every_ms = SIM_SAMPLE_MS * w->sc.p.days;
        for (unsigned i = 0; i < w->ntab; i++)
            w->tab[i].drain_per_hour = 4 + (unsigned)((w->sc.seed + i * 2654435761u) % 5);
    } else {
        while (w->next_sample < begin) {
            sample(w, w->nsample++);
            w->next_sample += w->rep.sample_every_ms;
        }
        advance_to(w, begin);
    }
    w->day_ms = day;
    for (unsigned i = 0; i < w->ntab; i++) {
        w->tab[i].charged_at_ms = w->now;
        w->tab[i].next_final =
            day + w->sc.p.day_end_ms + (uint64_t)i * 7919u % final_every(w);
    }
    while (w->now <= end) {
        uint64_t due;
        uint64_t t;
        apply_links(w);
        while (ai < w->sc.nactions && day + w->sc.actions[ai].at_ms <= w->now)
            do_action(w, &w->sc.actions[ai++]);
        while (ei < w->sc.nevents && day + w->sc.events[ei].at_ms <= w->now)
            do_event(w, &w->sc.events[ei++]);
        /* Back at the base: every tablet syncs on its usual schedule,
         * each at its own offset so the hub is not hit by all at once. */
        for (unsigned i = 0; i < w->ntab; i++) {
            struct tablet *tb = &w->tab[i];
            if (tb->next_final <= w->now) {
                if (!tb->lost)
                    request_sync(tb);
                tb->next_final += final_every(w);
            }
        }
        due = pump(w);
        if (w->next_sample <= w->now) {
            sample(w, w->nsample++);
            w->next_sample += w->rep.sample_every_ms;
        }
        /* The next thing to happen: an action, an event, a link slot, a
         * sample, the network, a timer. */
        t = w->next_sample;
        if (ai < w->sc.nactions && day + w->sc.actions[ai].at_ms < t)
            t = day + w->sc.actions[ai].at_ms;
        if (ei < w->sc.nevents && day + w->sc.events[ei].at_ms < t)
            t = day + w->sc.events[ei].at_ms;
        for (unsigned i = 0; i < w->ntab; i++)
            if (w->tab[i].next_final < t)
                t = w->tab[i].next_final;
        if (due < t)
            t = due;
        {
            uint64_t slot = (w->now / SCENARIO_SLOT_MS + 1) * SCENARIO_SLOT_MS;
            if (slot < t)
                t = slot;
        }
        if (t <= w->now)
            t = w->now + 1;
        if (t > end)
            break;
        advance_to(w, t);
    }
}

/* ---- invariants ------------------------------------------------------------- */

static void inv(struct world *w, const char *name, int ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void inv(struct world *w, const char *name, int ok, const char *fmt, ...)
{
    struct report_invariant *r = &w->rep.inv[w->rep.ninv++];
    va_list ap;
    snprintf(r->name, sizeof r->name, "%s", name);
    r->ok = ok;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
}

#define SCOPE_FIRST_BYTES 64

struct scope_ctx {
    struct world *w;
    struct tablet *t;
    unsigned bad;
    char first[SCOPE_FIRST_BYTES];
};

/* Counts a patient t holds outside its caseload; the first is named. */
static void scope_note(unsigned *bad, char first[SCOPE_FIRST_BYTES], const struct tablet *t,
                       const struct store_id *patient)
{
    char hex[STORE_ID_HEX_BYTES];
    if ((*bad)++ > 0)
        return;
    store_id_to_hex(patient, hex);
    snprintf(first, SCOPE_FIRST_BYTES, "%s holds patient %.8s", t->name, hex);
}

/* A patient on c->t that the hub says is not its team's (the check at the
 * run's end, over every patient of every tablet). */
static int check_scope(void *arg, const struct store_patient *p)
{
    struct scope_ctx *c = arg;
    char team[HUB_TEAM_BYTES];
    if (hub_store_patient_team(c->w->hub_store, p->id.b, team) != SAT_OK ||
        strcmp(team, c->w->sc.p.team_names[c->t->team]) != 0) {
        scope_note(&c->bad, c->first, c->t, &p->id);
    }
    return 0;
}

/* The caseload check right after a tablet's first sync since a transfer
 * ("no device holds a record outside its caseload after its next sync"):
 * does the tablet hold a patient that was moved and is now, by the hub's
 * word, another team's? (Only a move puts a patient outside a tablet's
 * caseload; the check at the run's end goes over every patient of every
 * tablet.) A tablet with writes the hub does not have yet may keep a moved
 * patient until they are pushed (an edit made during the sync that moved
 * it): the check then waits for the sync after. */
static void check_scope_now(struct world *w, struct tablet *t)
{
    struct store_sync_state st;
    unsigned bad = 0;
    char first[SCOPE_FIRST_BYTES] = "";
    if (t->lost || !t->store)
        return;
    for (size_t i = 0; i < w->nmoved; i++) {
        const struct store_id *id = &w->patient_id[w->moved[i]];
        char team[HUB_TEAM_BYTES];
        struct store_patient p;
        if (hub_store_patient_team(w->hub_store, id->b, team) == SAT_OK &&
            strcmp(team, w->sc.p.team_names[t->team]) == 0)
            continue;
        if (store_patient_get(t->store, id, &p) != SAT_OK)
            continue;
        scope_note(&bad, first, t, id);
    }
    if (bad > 0 && store_sync_state(t->store, &st) == SAT_OK && st.last_seq > st.push_acked) {
        t->scope_due = syncs_done(t) + 1;
        return;
    }
    if (bad > 0 && w->scope_bad++ == 0)
        snprintf(w->scope_first, sizeof w->scope_first, "%s after its sync on day %u at %02u:%02u",
                 first, w->sc.day + 1, (unsigned)(w->now % SIM_DAY_MS / 3600000u),
                 (unsigned)(w->now % 3600000u / 60000u));
}

/* The field changes of patients (the only records two nurses edit). */
struct change_set {
    struct store_change *c;
    char **text;
    size_t n;
    size_t cap;
};

static int collect_change(void *arg, const struct store_change *c)
{
    struct change_set *cs = arg;
    if (c->field == 0 || c->kind != RECORD_KIND_PATIENT)
        return 0;
    if (cs->n == cs->cap) {
        size_t cap = cs->cap ? cs->cap * 2 : 1024;
        void *a = realloc(cs->c, cap * sizeof *cs->c);
        void *b;
        if (!a)
            return -1;
        cs->c = a;
        b = realloc(cs->text, cap * sizeof *cs->text);
        if (!b)
            return -1;
        cs->text = b;
        cs->cap = cap;
    }
    cs->text[cs->n] = strdup(c->value_text ? c->value_text : "");
    if (!cs->text[cs->n])
        return -1;
    cs->c[cs->n] = *c;
    cs->c[cs->n].value_text = NULL;
    cs->n++;
    return 0;
}

struct conflict_keys {
    struct store_id *rec;
    uint32_t *field;
    size_t n;
    size_t cap;
};

static int collect_conflict(void *arg, const struct store_conflict *c)
{
    struct conflict_keys *k = arg;
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 64;
        void *a = realloc(k->rec, cap * sizeof *k->rec);
        void *b;
        if (!a)
            return -1;
        k->rec = a;
        b = realloc(k->field, cap * sizeof *k->field);
        if (!b)
            return -1;
        k->field = b;
        k->cap = cap;
    }
    k->rec[k->n] = c->record_id;
    k->field[k->n] = c->field;
    k->n++;
    return 0;
}

static int has_conflict(const struct conflict_keys *k, const struct store_id *rec, uint32_t f)
{
    for (size_t i = 0; i < k->n; i++)
        if (k->field[i] == f && memcmp(&k->rec[i], rec, sizeof *rec) == 0)
            return 1;
    return 0;
}

static const struct store_change *g_changes; /* for cmp_merge_order */

static int cmp_merge_order(const void *a, const void *b)
{
    const struct store_change *x = &g_changes[*(const size_t *)a];
    const struct store_change *y = &g_changes[*(const size_t *)b];
    int c = memcmp(&x->record_id, &y->record_id, STORE_ID_BYTES);
    if (c)
        return c;
    if (x->field != y->field)
        return x->field < y->field ? -1 : 1;
    return record_merge_order((struct hlc){ x->hlc_wall_ms, x->hlc_counter }, x->origin_device.b,
                              (struct hlc){ y->hlc_wall_ms, y->hlc_counter },
                              y->origin_device.b);
}

/* A change X to a field that is concurrent with the previous write W in
 * merge order (record.h's conflict test) must be on record as a conflict
 * somewhere (hub or tablets). */
static void check_conflicts(struct world *w)
{
    struct change_set cs = { NULL, NULL, 0, 0 };
    struct conflict_keys keys = { NULL, NULL, 0, 0 };
    unsigned concurrent = 0;
    unsigned unrecorded = 0;
    for (unsigned i = 0; i < w->ntab; i++) {
        struct tablet *t = &w->tab[i];
        if (!t->store)
            continue;
        store_changes(t->store, 0, 0, collect_change, &cs);
        store_conflicts(t->store, collect_conflict, &keys);
    }
    {
        struct hub_conflict hc[HUB_CONFLICTS_LIST_MAX];
        uint64_t after = 0;
        size_t n = 0;
        while (hub_store_conflicts_list(w->hub_store, after, hc, HUB_CONFLICTS_LIST_MAX, &n) ==
                   SAT_OK &&
               n > 0) {
            for (size_t i = 0; i < n; i++) {
                struct store_conflict c;
                memset(&c, 0, sizeof c);
                memcpy(c.record_id.b, hc[i].kept.record_id, STORE_ID_BYTES);
                c.field = hc[i].kept.field;
                collect_conflict(&keys, &c);
                after = hc[i].id;
            }
        }
    }
    /* Merge order within each (record, field): sort, then compare each
     * write with the one just below it. */
    g_changes = cs.c;
    {
        size_t *order = malloc((cs.n ? cs.n : 1) * sizeof *order);
        for (size_t i = 0; order && i < cs.n; i++)
            order[i] = i;
        if (order)
            qsort(order, cs.n, sizeof *order, cmp_merge_order);
        for (size_t k = 1; order && k < cs.n; k++) {
            const struct store_change *x = &cs.c[order[k]];
            const struct store_change *wprev = &cs.c[order[k - 1]];
            const struct record_write xw = { { x->hlc_wall_ms, x->hlc_counter },
                                             x->origin_device.b,
                                             x->has_base,
                                             { x->base_wall_ms, x->base_counter },
                                             x->base_device.b };
            const struct record_write ww = { { wprev->hlc_wall_ms, wprev->hlc_counter },
                                             wprev->origin_device.b,
                                             0,
                                             { 0, 0 },
                                             NULL };
            if (x->field == 0 || x->kind != RECORD_KIND_PATIENT || wprev->field != x->field ||
                memcmp(&wprev->record_id, &x->record_id, STORE_ID_BYTES) != 0)
                continue;
            if (!record_concurrent(&xw, &ww,
                                   strcmp(cs.text[order[k]], cs.text[order[k - 1]]) == 0))
                continue;
            concurrent++;
            if (!has_conflict(&keys, &x->record_id, x->field))
                unrecorded++;
        }
        free(order);
    }
    inv(w, "no concurrent edit lost without a conflict record", unrecorded == 0,
        "%u concurrent edits, %u without a conflict record", concurrent, unrecorded);
    for (size_t i = 0; i < cs.n; i++)
        free(cs.text[i]);
    free(cs.c);
    free(cs.text);
    free(keys.rec);
    free(keys.field);
}

/* The checks that are cheap enough for every day's end (full = 0), or all
 * of them (the run's end). */
static void check_invariants(struct world *w, int full)
{
    unsigned missing = 0;
    unsigned active = 0;
    uint64_t expected = 0;
    struct hub_stats hs;
    char first[128] = "";
    /* 1. Every write a nurse was told is saved is at the hub. */
    for (unsigned i = 0; i < w->ntab; i++) {
        struct tablet *t = &w->tab[i];
        struct hub_device d;
        struct store_sync_state st;
        if (hub_store_device_get(w->hub_store, t->id, &d) != SAT_OK)
            memset(&d, 0, sizeof d);
        if (t->lost) {
            expected += d.acked_seq; /* what it pushed before it was lost */
            continue;
        }
        active++;
        if (t->store && store_sync_state(t->store, &st) == SAT_OK)
            expected += st.last_seq;
        if (d.acked_seq < t->told_seq) {
            if (missing++ == 0)
                snprintf(first, sizeof first, "%s: hub holds up to %llu of %llu", t->name,
                         (unsigned long long)d.acked_seq, (unsigned long long)t->told_seq);
        }
    }
    /* The hub must hold each of those changes, once: not just claim to. */
    if (hub_store_stats(w->hub_store, &hs) != SAT_OK)
        memset(&hs, 0, sizeof hs);
    if (missing == 0 && hs.changes != expected)
        snprintf(first, sizeof first, "the hub holds %llu changes of the tablets' %llu",
                 (unsigned long long)hs.changes, (unsigned long long)expected);
    inv(w, "every write a nurse was told is saved reached the hub",
        missing == 0 && hs.changes == expected, "%s%s%u tablets", first, first[0] ? "; " : "",
        active);
    if (!full) {
        /* Checked as the run goes: after each tablet's first sync since a
         * transfer. */
        inv(w, "no tablet holds a patient outside its team's caseload after its next sync",
            w->scope_bad == 0, "%s", w->scope_first);
        return;
    }

    /* 2. All replicas of a team converge. */
    {
        unsigned diverged = 0;
        char detail[REPORT_DETAIL_BYTES] = "";
        for (unsigned team = 0; team < w->sc.p.teams; team++) {
            uint8_t ref[32];
            int have = 0;
            unsigned n = 0;
            for (unsigned i = 0; i < w->ntab; i++) {
                struct tablet *t = &w->tab[i];
                uint8_t h[32];
                if (t->lost || t->team != team || !t->store)
                    continue;
                if (store_content_hash(t->store, h) != SAT_OK)
                    continue;
                n++;
                if (!have) {
                    memcpy(ref, h, 32);
                    have = 1;
                } else if (memcmp(ref, h, 32) != 0 && diverged++ == 0) {
                    snprintf(detail, sizeof detail, "%s differs from its team", t->name);
                }
            }
            (void)n;
        }
        inv(w, "all replicas of a team converge to the same content", diverged == 0, "%s",
            detail);
    }

    /* 3. No tablet holds a record outside its caseload. */
    {
        struct scope_ctx c;
        memset(&c, 0, sizeof c);
        c.w = w;
        for (unsigned i = 0; i < w->ntab; i++) {
            c.t = &w->tab[i];
            if (c.t->lost || !c.t->store)
                continue;
            store_patient_list(c.t->store, check_scope, &c);
        }
        if (w->scope_bad > 0)
            inv(w, "no tablet holds a patient outside its team's caseload after its next sync",
                0, "%s", w->scope_first);
        else
            inv(w, "no tablet holds a patient outside its team's caseload after its next sync",
                c.bad == 0, "%s%s", c.first, c.bad ? " at the end" : "");
    }

    /* 4. A revoked tablet holds nothing readable. */
    for (unsigned i = 0; i < w->ntab; i++) {
        struct tablet *t = &w->tab[i];
        struct hub_device d;
        uint8_t *b = NULL;
        size_t len = 0;
        int readable;
        if (hub_store_device_get(w->hub_store, t->id, &d) != SAT_OK || !d.revoked)
            continue;
        readable = sim_hal_file_bytes(t->sim, STORE_DB_NAME, &b, &len) == SAT_OK ||
                   keys_enrolled(t->hal) ||
                   sim_hal_file_bytes(t->sim, "device.key", &b, &len) == SAT_OK || t->store;
        inv(w, "the revoked tablet holds nothing readable", !readable && t->wiped,
            "%s %s", t->name,
            t->wiped ? "wiped itself"
                     : (t->drv_ready ? device_last(&t->drv)->msg : "never heard it was revoked"));
        w->rep.dev[i].revoked = t->wiped;
    }
    check_conflicts(w);
}

/* ---- one run ----------------------------------------------------------------- */

static void fill_report(struct world *w)
{
    struct hub_stats hs;
    for (unsigned i = 0; i < w->ntab; i++) {
        struct tablet *t = &w->tab[i];
        struct report_device *d = &w->rep.dev[i];
        const struct device_stats *ds = t->drv_ready ? device_stats(&t->drv) : NULL;
        struct sim_net_stats ns;
        struct store_sync_state st;
        d->visits = t->visits;
        d->writes = t->writes;
        d->power_cuts = t->power_cuts;
        if (t->store && store_sync_state(t->store, &st) == SAT_OK)
            d->changes = (unsigned)st.last_seq;
        d->syncs_ok = (unsigned)(t->before.sessions_ok + (ds ? ds->sessions_ok : 0));
        d->syncs_failed = (unsigned)(t->before.sessions_failed + (ds ? ds->sessions_failed : 0));
        d->resumed = (unsigned)(t->before.handshakes_resumed + (ds ? ds->handshakes_resumed : 0));
        d->conflicts = (unsigned)(t->before.conflicts + (ds ? ds->conflicts : 0));
        if (sim_hal_net_stats(t->sim, &ns) == SAT_OK)
            d->bytes = ns.bytes_sent + ns.bytes_received;
    }
    if (hub_store_stats(w->hub_store, &hs) == SAT_OK) {
        w->rep.hub_changes = (unsigned)hs.changes;
        w->rep.hub_conflicts = (unsigned)hs.conflicts;
    }
}

struct options {
    const char *scenario;
    const char *report;
    uint64_t seed_from;
    uint64_t seed_to;
    int sweep;
    unsigned devices;
    unsigned days;
    int quiet;
    enum inject inject;
};

/* The command that replays seed `seed` of this run. */
static void replay_command(const struct options *o, uint64_t seed, char *out, size_t cap)
{
    const char *bug = o->inject == INJECT_LOST_WRITE   ? " --inject-bug lost-write"
                      : o->inject == INJECT_SKIP_PURGE ? " --inject-bug skip-purge"
                                                       : "";
    char devices[32] = "";
    char days[32] = "";
    if (o->devices)
        snprintf(devices, sizeof devices, " --devices %u", o->devices);
    if (o->days)
        snprintf(days, sizeof days, " --days %u", o->days);
    snprintf(out, cap, "%s --scenario %s --seed %llu%s%s%s",
             o->inject != INJECT_NONE ? "satchel-sim-faulty" : "satchel-sim", o->scenario,
             (unsigned long long)seed, devices, days, bug);
}

/* Progress of a run of many days, on stderr: on a terminal one line,
 * redrawn after each day; in a log a line every tenth of the run. */
static void day_progress(unsigned done, unsigned days, int last)
{
    static int tty = -1;
    unsigned every = days >= SWEEP_LOG_LINES ? days / SWEEP_LOG_LINES : 1;
    if (tty < 0)
        tty = isatty(fileno(stderr));
    if (tty)
        fprintf(stderr, "\rsatchel-sim: day %u of %u%s", done, days, last ? "\n" : "");
    else if (done % every == 0 || last)
        fprintf(stderr, "satchel-sim: day %u of %u%s\n", done, days,
                last && done < days ? ", stopped" : "");
}

/* Runs one seed. Returns 1 if every invariant held. */
static int run_seed(const struct options *o, const struct scenario_params *p,
                    const struct event *extra, size_t nextra, uint64_t seed, int print)
{
    struct world *w = calloc(1, sizeof *w);
    char why[SCENARIO_ERRMSG_BYTES];
    int ok;
    if (!w)
        fatal("the world", SAT_ERR_NO_MEMORY);
    w->inject = o->inject;
    if (scenario_build(&w->sc, p, seed, extra, nextra, why, sizeof why) != 0) {
        fprintf(stderr, "satchel-sim: %s\n", why);
        exit(2);
    }
    snprintf(w->rep.scenario, sizeof w->rep.scenario, "%s", p->name);
    w->rep.seed = seed;
    w->rep.teams = p->teams;
    w->rep.ndev = p->nurses;
    w->rep.dev = calloc(p->nurses, sizeof *w->rep.dev);
    if (!w->rep.dev)
        fatal("the report", SAT_ERR_NO_MEMORY);
    replay_command(o, seed, w->rep.replay, sizeof w->rep.replay);
    w->rep.days = p->days;
    setup(w);
    for (;;) {
        run_day(w);
        if (w->sc.day + 1 >= p->days)
            break;
        /* Between days: every write of the day must be at the hub (the
         * other invariants cost a pass over every store: the run's end). */
        w->rep.ninv = 0;
        check_invariants(w, 0);
        if (!report_ok(&w->rep)) {
            for (unsigned i = 0; i < w->rep.ninv; i++) {
                struct report_invariant *r = &w->rep.inv[i];
                size_t len = strlen(r->name);
                if (!r->ok)
                    snprintf(r->name + len, sizeof r->name - len, " (day %u)", w->sc.day + 1);
            }
            break;
        }
        if (print)
            day_progress(w->sc.day + 1, p->days, 0);
        if (scenario_next_day(&w->sc, why, sizeof why) != 0) {
            fprintf(stderr, "satchel-sim: %s\n", why);
            exit(2);
        }
        grow_patients(w);
    }
    w->rep.days_run = w->sc.day + 1;
    if (print && p->days > 1)
        day_progress(w->rep.days_run, p->days, 1);
    fill_report(w);
    if (report_ok(&w->rep)) {
        w->rep.ninv = 0;
        check_invariants(w, 1);
    }
    ok = report_ok(&w->rep);
    if (print) {
        report_print_summary(stdout, &w->rep);
        if (o->report) {
            if (report_write_html(o->report, &w->rep) != 0)
                fprintf(stderr, "satchel-sim: cannot write the report to %s\n", o->report);
            else
                printf("report: %s (open it in a browser; it needs no network)\n", o->report);
        }
    } else if (!ok) {
        report_print_summary(stdout, &w->rep);
    }
    teardown(w);
    free(w->rep.dev);
    free(w);
    return ok;
}

static const char usage_text[] =
    "Usage: satchel-sim [--scenario NAME|FILE] [--seed N | --seeds A-B] [--devices N]\n"
    "                   [--days N] [--report FILE] [--quiet]\n"
    "       satchel-sim --help\n"
    "\n"
    "Simulates a day (or days) of community nursing: tablets and a hub in one\n"
    "process, over virtual time, a virtual network (signal by place: good at the\n"
    "base, patchy on visits, none on rural roads) and virtual flash (power cuts),\n"
    "running the real firmware and hub code with real TLS. The same seed replays\n"
    "the same days byte for byte. Then checks the invariants and prints a summary.\n"
    "\n"
    "  --scenario NAME|FILE  day-of-visits (built in, the default) or a JSON file\n"
    "  --seed N              the seed (default 42)\n"
    "  --seeds A-B           run every seed from A to B; summary and failures only\n"
    "  --devices N           N tablets instead of the scenario's number\n"
    "  --days N              N days in a row (default 1, or the file's \"days\"): the\n"
    "                        caseload, stores and TLS sessions carry over; a power\n"
    "                        cut and a transfer every day, the tablet lost on the\n"
    "                        last; each evening every saved write must be at the hub;\n"
    "                        progress (day N of M) goes to stderr\n"
    "  --report FILE         the HTML report (default satchel-sim-report.html for\n"
    "                        one seed; none for a sweep unless given)\n"
    "  --quiet               no HTML report, summary only\n"
#ifdef SATCHEL_SIM_INJECT
    "  --inject-bug NAME     test build only: lost-write or skip-purge\n"
#endif
    "\n"
    "Exit status: 0 every invariant held, 1 an invariant failed (the replay\n"
    "command is printed), 2 usage error or the simulation could not run.\n";

/* A seed: decimal digits only (strtoull would take "-1" as 2^64 - 1);
 * *end is left after them. 1 if there was one that fits in 64 bits. */
static int parse_seed(const char *s, char **end, uint64_t *out)
{
    unsigned long long v;
    *end = (char *)s;
    if (*s < '0' || *s > '9')
        return 0;
    errno = 0;
    v = strtoull(s, end, 10);
    if (errno == ERANGE)
        return 0;
    *out = v;
    return 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "scenario", required_argument, NULL, 's' }, { "seed", required_argument, NULL, 'S' },
        { "seeds", required_argument, NULL, 'R' },    { "devices", required_argument, NULL, 'd' },
        { "report", required_argument, NULL, 'r' },   { "quiet", no_argument, NULL, 'q' },
        { "days", required_argument, NULL, 'D' },
        { "inject-bug", required_argument, NULL, 'I' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct options o;
    struct scenario_params p;
    struct event extra[SCENARIO_EVENTS_MAX];
    size_t nextra = 0;
    char why[SCENARIO_ERRMSG_BYTES];
    int c;
    /* The whole run is one thread: SQLite needs no mutexes, and no
     * memory statistics (kept under a mutex at every allocation). Before
     * any other SQLite call, as sqlite3_config requires. */
    if (sqlite3_config(SQLITE_CONFIG_SINGLETHREAD) != SQLITE_OK ||
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) != SQLITE_OK) {
        fprintf(stderr, "satchel-sim: cannot set SQLite up for one thread\n");
        return 1;
    }
    memset(&o, 0, sizeof o);
    o.scenario = "day-of-visits";
    o.seed_from = o.seed_to = 42;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 's': o.scenario = optarg; break;
        case 'S':
            if (!parse_seed(optarg, &end, &o.seed_from) || *end) {
                fprintf(stderr, "satchel-sim: --seed wants a number, not '%s'\n", optarg);
                return 2;
            }
            o.seed_to = o.seed_from;
            break;
        case 'R':
            if (!parse_seed(optarg, &end, &o.seed_from) || *end != '-' ||
                !parse_seed(end + 1, &end, &o.seed_to) || *end || o.seed_to < o.seed_from) {
                fprintf(stderr, "satchel-sim: --seeds wants A-B with A <= B, not '%s'\n", optarg);
                return 2;
            }
            o.sweep = 1;
            break;
        case 'd': {
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 1 || v > SCENARIO_NURSES_MAX) {
                fprintf(stderr, "satchel-sim: --devices wants 1..%d, not '%s'\n",
                        SCENARIO_NURSES_MAX, optarg);
                return 2;
            }
            o.devices = (unsigned)v;
            break;
        }
        case 'D': {
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 1 || v > SCENARIO_DAYS_MAX) {
                fprintf(stderr, "satchel-sim: --days wants 1..%d, not '%s'\n", SCENARIO_DAYS_MAX,
                        optarg);
                return 2;
            }
            o.days = (unsigned)v;
            break;
        }
        case 'r': o.report = optarg; break;
        case 'q': o.quiet = 1; break;
        case 'I':
#ifdef SATCHEL_SIM_INJECT
            if (strcmp(optarg, "lost-write") == 0)
                o.inject = INJECT_LOST_WRITE;
            else if (strcmp(optarg, "skip-purge") == 0)
                o.inject = INJECT_SKIP_PURGE;
            else {
                fprintf(stderr, "satchel-sim: unknown bug '%s' (lost-write, skip-purge)\n", optarg);
                return 2;
            }
            break;
#else
            fprintf(stderr, "satchel-sim: --inject-bug exists only in the test build "
                            "(satchel-sim-faulty)\n");
            return 2;
#endif
        case 'h': fputs(usage_text, stdout); return 0;
        case ':':
            fprintf(stderr, "satchel-sim: option '%s' needs an argument (try --help)\n",
                    argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "satchel-sim: unknown option '%s' (try --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "satchel-sim: unexpected argument '%s' (try --help)\n", argv[optind]);
        return 2;
    }
    scenario_defaults(&p);
    if (strcmp(o.scenario, "day-of-visits") != 0 &&
        scenario_load(o.scenario, &p, extra, &nextra, why, sizeof why) != 0) {
        fprintf(stderr, "satchel-sim: %s\n", why);
        return 2;
    }
    if (o.days)
        p.days = o.days;
    if (o.devices) {
        /* A bigger service has more teams, not bigger ones: keep about
         * SCENARIO_NURSES_PER_TEAM nurses a team (the first two keep the
         * scenario's names). */
        unsigned teams = (o.devices + SCENARIO_NURSES_PER_TEAM - 1) / SCENARIO_NURSES_PER_TEAM;
        p.nurses = o.devices;
        if (teams < p.teams)
            teams = p.teams;
        if (teams > p.nurses)
            teams = p.nurses;
        if (teams > SCENARIO_TEAMS_MAX)
            teams = SCENARIO_TEAMS_MAX;
        for (unsigned t = p.teams; t < teams; t++)
            snprintf(p.team_names[t], SCENARIO_TEAM_BYTES, "team-%03u", t + 1);
        p.teams = teams;
    }
    if (!o.sweep && !o.report && !o.quiet)
        o.report = "satchel-sim-report.html";
    if (o.quiet)
        o.report = NULL;
    if (!o.sweep) {
        int ok = run_seed(&o, &p, extra, nextra, o.seed_from, 1);
        fleet_pki_free();
        return ok ? 0 : 1;
    }
    {
        uint64_t total = o.seed_to - o.seed_from + 1;
        uint64_t failed = 0;
        uint64_t first_failed = 0;
        /* On a terminal one line, redrawn; in a log a line every tenth. */
        int tty = isatty(fileno(stderr));
        uint64_t every = total >= SWEEP_LOG_LINES ? total / SWEEP_LOG_LINES : 1;
        char replay[REPORT_REPLAY_BYTES];
        for (uint64_t s = o.seed_from; s <= o.seed_to; s++) {
            uint64_t done = s - o.seed_from + 1;
            int ok = run_seed(&o, &p, extra, nextra, s, 0);
            if (!ok && failed++ == 0)
                first_failed = s;
            if (tty || done % every == 0 || done == total)
                fprintf(stderr, "%ssatchel-sim: seed %llu (%llu of %llu), %llu failed%s",
                        tty ? "\r" : "", (unsigned long long)s, (unsigned long long)done,
                        (unsigned long long)total, (unsigned long long)failed, tty ? "" : "\n");
        }
        if (tty)
            fputc('\n', stderr);
        fleet_pki_free();
        printf("satchel-sim: %llu seeds, %llu passed, %llu failed\n", (unsigned long long)total,
               (unsigned long long)(total - failed), (unsigned long long)failed);
        if (failed) {
            replay_command(&o, first_failed, replay, sizeof replay);
            printf("first failure: replay with: %s\n", replay);
            return 1;
        }
        return 0;
    }
}
