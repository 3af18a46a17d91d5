/*
 * sim_day.c - one day of community nursing over virtual time: the nurses'
 * writes, the scenario's events (power cuts, transfers, the lost tablet,
 * the revocation), each tablet's signal, and the sync drivers and the hub
 * stepped until nothing more can happen at each virtual instant.
 *
 * Owns: the world's virtual time (w->now: the network's time, every
 * device's clock and the time() Mbed TLS reads, through __wrap_time and
 * g_virtual_epoch_ms), the report's samples, and what the day loop
 * remembers of the nurses' work (the tablets' told_seq, visits, open
 * visits; the moved patients). Guarantees: time only moves forward, to
 * the next thing due (an action, an event, a link slot, a sample, the
 * network, a timer), and everything is stepped in a fixed order, so the
 * same world and scenario give the same day. Callers: sim_main.c
 * (day_run, once per day); the link (-Wl,--wrap=time, sim/CMakeLists.txt)
 * for __wrap_time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nhs_number.h"
#include "sim_world.h"

#define SIM_FINAL_WINDOW_MS (120u * 60000u) /* back at the base: final syncs */
#define SIM_FINAL_ROUNDS_MIN 4 /* in that window, however long sync_every_min is */
#define SIM_SAMPLE_MS SCENARIO_SLOT_MS /* one day; a run of d days samples d times less often */
#define SIM_PUMP_MAX 100000

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
        /* SAT_ERR_SYNC_REVOKED: the driver wiped the tablet; it is still
         * stepped (poked), and the run notices the wipe there. */
        int ret = device_request_sync(&t->drv);
        (void)ret;
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

static void apply_links(struct world *w);

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
        uint64_t due = tablet_syncs_done(t) + 1 + (uint64_t)busy;
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
        w->moved = world_grow(w->moved, w->moved_cap, cap, sizeof *w->moved);
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
            if (sim_net_set_link(w->net, t->addr, &l) != SAT_OK)
                world_fatal("a tablet's link", SAT_ERR_INVALID);
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
        if (hub_server_step(&w->hub, NULL, 0) != SAT_OK)
            world_fatal("the hub stopped", SAT_ERR_INVALID);
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
                tablet_restart(w, t);
                busy = 1;
                continue;
            }
            if (ph == DEVICE_REVOKED && !t->wiped) {
                t->wiped = 1;
                busy = 1;
            }
            if (t->scope_due && tablet_syncs_done(t) >= t->scope_due) {
                t->scope_due = 0;
                invariants_check_scope_now(w, t);
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
void day_run(struct world *w)
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
