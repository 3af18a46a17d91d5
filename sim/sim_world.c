/*
 * sim_world.c - building and tearing down the simulated world: the virtual
 * network, the hub (in-memory store, real server), the tablets (simulated
 * HAL, keys enrolled with the PIN, encrypted store, sync driver, client
 * certificate) and the fleet PKI; and a tablet's restart after a power cut.
 *
 * Owns: everything world_setup allocates, until world_teardown; the fleet
 * PKI (g_pki), shared by every run of the process until fleet_pki_free.
 * Guarantees: every generator is seeded from the run's seed (the PKI from
 * its own fixed seed), so a seed sets the world up the same way every
 * time; a failure to set up exits with status 2 (world_fatal). Callers:
 * sim_main.c (set-up, teardown, the per-patient arrays between days, the
 * PKI at exit); sim_day.c (tablet_restart, tablet_syncs_done, world_grow);
 * sim_invariants.c (tablet_syncs_done).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>

#include "pki.h"
#include "sim_world.h"

#define SIM_PIN "2468"
#define SIM_KDF_ITERATIONS 1000u
#define SIM_HUB_PORT 7443u
#define SIM_PEM_BYTES PKI_PEM_BYTES_MAX

void world_fatal(const char *what, int err)
{
    fprintf(stderr, "satchel-sim: %s: %s\n", what, sat_strerror(err));
    exit(2);
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
    inject_wire_replica(w, t);
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
        world_fatal("certificates", SAT_ERR_NO_MEMORY);
    return p;
}

/* The fleet PKI with keys for at least ndev tablets. */
static struct sim_pki *fleet_pki(unsigned ndev)
{
    struct sim_pki *k = &g_pki;
    const struct hal *h;
    if (!k->sim) {
        if (sim_hal_new(&k->sim, SIM_PKI_SEED, SIM_DAY_EPOCH_MS) != SAT_OK)
            world_fatal("certificates", SAT_ERR_NO_MEMORY);
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
            world_fatal("fleet CA and hub certificate", SAT_ERR_TLS_CRYPTO);
    }
    if (ndev > k->ndev) {
        char **keys = realloc(k->dev_key, ndev * sizeof *keys);
        if (!keys)
            world_fatal("certificates", SAT_ERR_NO_MEMORY);
        k->dev_key = keys;
        h = sim_hal_hal(k->sim);
        for (; k->ndev < ndev; k->ndev++) {
            k->dev_key[k->ndev] = pem_new();
            if (pki_key_generate(h, k->dev_key[k->ndev], SIM_PEM_BYTES) != SAT_OK)
                world_fatal("a tablet's key", SAT_ERR_TLS_CRYPTO);
        }
    }
    return k;
}

void fleet_pki_free(void)
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
void *world_grow(void *p, size_t n0, size_t n1, size_t sz)
{
    uint8_t *q = realloc(p, n1 * sz);
    if (!q)
        world_fatal("patients", SAT_ERR_NO_MEMORY);
    memset(q + n0 * sz, 0, (n1 - n0) * sz);
    return q;
}

/* Makes the per-patient arrays hold every patient the scenario has drawn
 * (the caseload grows day by day). */
void world_grow_patients(struct world *w)
{
    size_t cap = w->patients_cap;
    if (w->sc.npatients + 1 <= cap)
        return;
    while (cap < w->sc.npatients + 1)
        cap = cap ? 2 * cap : 64;
    w->patient_id = world_grow(w->patient_id, w->patients_cap, cap, sizeof *w->patient_id);
    w->patient_made = world_grow(w->patient_made, w->patients_cap, cap, 1);
    for (unsigned i = 0; i < w->ntab; i++) {
        struct tablet *t = &w->tab[i];
        t->known = world_grow(t->known, w->patients_cap, cap, sizeof *t->known);
        t->open_visit = world_grow(t->open_visit, w->patients_cap, cap, 1);
        t->visit_id = world_grow(t->visit_id, w->patients_cap, cap, sizeof *t->visit_id);
    }
    w->patients_cap = cap;
}

void world_setup(struct world *w)
{
    struct hub_server_config hc;
    struct sim_pki *pki;
    int ret;
    const struct scenario_params *p = &w->sc.p;

    if (sim_net_new(&w->net, w->sc.seed ^ 0x4E4554ull) != SAT_OK ||
        sim_hal_new(&w->hub_sim, w->sc.seed ^ 0x485542ull,
                    SIM_DAY_EPOCH_MS + (int64_t)w->sc.p.day_start_ms) != SAT_OK)
        world_fatal("simulated network", SAT_ERR_NO_MEMORY);
    w->hub_hal = sim_hal_hal(w->hub_sim);
    if (sim_net_attach(w->net, w->hub_sim, "hub") != SAT_OK)
        world_fatal("hub address", SAT_ERR_INVALID);
    {
        struct sim_link good = { 1, 5, 0, 0, 0 };
        if (sim_net_set_link(w->net, "hub", &good) != SAT_OK)
            world_fatal("hub link", SAT_ERR_INVALID);
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
        world_fatal("hub database", ret);
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
        world_fatal("hub server", ret);
    w->hub_port = SIM_HUB_PORT;

    w->ntab = p->nurses;
    w->tab = calloc(w->ntab, sizeof *w->tab);
    if (!w->tab)
        world_fatal("tablets", SAT_ERR_NO_MEMORY);
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
            world_fatal("tablet", SAT_ERR_NO_MEMORY);
        t->hal = sim_hal_hal(t->sim);
        if (sim_hal_set_clock_skew(t->sim, w->sc.skew_ms[i], w->sc.drift_ppm[i]) != SAT_OK)
            world_fatal("tablet clock", SAT_ERR_INVALID);
        sim_hal_set_battery(t->sim, 100);
        if (sim_net_attach(w->net, t->sim, t->addr) != SAT_OK)
            world_fatal("tablet address", SAT_ERR_INVALID);
        for (int b = 0; b < STORE_ID_BYTES; b++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            t->id[b] = (uint8_t)(rng >> 56);
        }
        hex_id(t->id, hex);
        t->cert_pem = calloc(1, SIM_PEM_BYTES);
        t->key_pem = pki->dev_key[i];
        if (!t->cert_pem)
            world_fatal("tablet", SAT_ERR_NO_MEMORY);
        if (pki_issuer_issue(w->hub_hal, pki->ca, t->key_pem, hex, PKI_USAGE_CLIENT, 100 + i,
                             SIM_PKI_NOT_BEFORE_S, SIM_PKI_NOT_AFTER_S, t->cert_pem,
                             SIM_PEM_BYTES) != SAT_OK)
            world_fatal("tablet certificate", SAT_ERR_TLS_CRYPTO);
        if (hub_store_device_register(w->hub_store, t->id, p->team_names[t->team]) != SAT_OK)
            world_fatal("registering a tablet", SAT_ERR_HUB_STORAGE);
        keys_init(&t->keys, t->hal);
        ret = keys_enrol(&t->keys, SIM_PIN, &eo);
        if (ret != SAT_OK)
            world_fatal("enrolling a tablet", ret);
        ret = tablet_open_store(w, t);
        if (ret != SAT_OK)
            world_fatal("opening a tablet's store", ret);
        if (tablet_start_driver(w, t) != SAT_OK)
            world_fatal("a tablet's sync driver", SAT_ERR_TLS_CONFIG);
        snprintf(w->rep.dev[i].name, REPORT_NAME_BYTES, "%s", t->name);
        snprintf(w->rep.dev[i].team, REPORT_NAME_BYTES, "%s", p->team_names[t->team]);
    }
    world_grow_patients(w);
}

void world_teardown(struct world *w)
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

/* ---- restarts -------------------------------------------------------------- */

/* The tablet died (power cut): it restarts, the nurse unlocks it again. */
void tablet_restart(struct world *w, struct tablet *t)
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

/* Syncs the tablet has completed, across driver restarts. */
uint64_t tablet_syncs_done(struct tablet *t)
{
    return t->before.sessions_ok + (t->drv_ready ? device_stats(&t->drv)->sessions_ok : 0);
}
