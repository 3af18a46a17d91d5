/*
 * sim_world.h - what the files of `satchel-sim` share: the simulated world
 * (the hub, the tablets, the scenario, the report being filled) and the
 * calls each file offers the others. Not for use outside sim/.
 *
 * Who does what:
 *  - sim_world.c: builds and frees a world (the network, the hub, the
 *    tablets with their keys, stores, sync drivers and certificates, the
 *    fleet PKI) and restarts a tablet after a power cut.
 *  - sim_inject.c: the test-only build's --inject-bug (a faulty replica).
 *  - sim_day.c: runs one day of the scenario over virtual time (the
 *    nurses' writes, the events, the links, the sync drivers and the hub),
 *    and wraps time() onto the virtual clock.
 *  - sim_invariants.c: the checks, as the day goes and at its end.
 *  - sim_main.c: the command line, one run or a sweep, the summary.
 * Everything is one thread; nothing here is thread-safe. A call that
 * cannot go on (out of memory, a certificate that cannot be made) exits
 * with status 2 through world_fatal.
 */
#ifndef SATCHEL_SIM_WORLD_H
#define SATCHEL_SIM_WORLD_H

#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "hub_server.h"
#include "keys.h"
#include "report.h"
#include "scenario.h"
#include "sim_hal.h"
#include "store.h"
#include "sync_glue.h"

#define SIM_DAY_EPOCH_MS 1793491200000LL /* 2026-11-01T00:00:00Z */
#define SIM_DAY_MS 86400000ull

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


/* ---- sim_world.c ------------------------------------------------------------ */

/* Prints "satchel-sim: what: <err>" and exits with status 2. */
void world_fatal(const char *what, int err);
/* Grows an array of n0 elements of size sz to n1, zeroing the new ones
 * (world_fatal when out of memory). */
void *world_grow(void *p, size_t n0, size_t n1, size_t sz);
/* Makes the per-patient arrays hold every patient the scenario has drawn
 * (call it after each scenario_next_day). */
void world_grow_patients(struct world *w);
/* Builds w's network, hub and tablets from w->sc (built by scenario_build)
 * and names the report's devices; w->inject and w->rep.dev (one per
 * nurse) must be set first. */
void world_setup(struct world *w);
/* Frees everything world_setup made, and w->sc. */
void world_teardown(struct world *w);
/* Frees the fleet PKI that every run of this process shared. */
void fleet_pki_free(void);
/* The tablet died (power cut): it restarts, the nurse unlocks it again. */
void tablet_restart(struct world *w, struct tablet *t);
/* Syncs the tablet has completed, across driver restarts. */
uint64_t tablet_syncs_done(struct tablet *t);

/* ---- sim_inject.c ----------------------------------------------------------- */

/* Gives t's sync driver its replica: the glue's own, or, in the test-only
 * build with w->inject set, one that breaks a rule on purpose. */
void inject_wire_replica(struct world *w, struct tablet *t);

/* ---- sim_day.c -------------------------------------------------------------- */

/* Runs the day the scenario has drawn (w->sc.day): from the morning at the
 * base to the evening's final syncs. */
void day_run(struct world *w);

/* ---- sim_invariants.c ------------------------------------------------------- */

/* The checks that are cheap enough for every day's end (full = 0), or all
 * of them (the run's end); each adds its result to w->rep.inv. */
void invariants_check(struct world *w, int full);
/* The caseload check right after a tablet's first sync since a transfer
 * (called by the day loop when t->scope_due is reached). */
void invariants_check_scope_now(struct world *w, struct tablet *t);

#endif
