/*
 * sim_invariants.c - the invariants `satchel-sim` checks: every write a
 * nurse was told is saved reaches the hub; all replicas of a team
 * converge; no tablet holds a patient outside its team's caseload after
 * its next sync; a revoked tablet holds nothing readable; no concurrent
 * edit is lost without a conflict record (record.h's merge order and
 * conflict test).
 *
 * Owns: nothing beyond a check's own scratch; it reads the stores, the hub
 * and the simulated flash and writes results into w->rep.inv (and the
 * caseload check's first failure into w->scope_bad, w->scope_first).
 * Guarantees: reading changes no replica, so checking does not change the
 * run; each failure names what failed. Callers: sim_main.c
 * (invariants_check at each day's end and at the run's end); sim_day.c
 * (invariants_check_scope_now after a tablet's first sync since a
 * transfer).
 */
#define _POSIX_C_SOURCE 200809L /* strdup */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"
#include "sim_world.h"

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
void invariants_check_scope_now(struct world *w, struct tablet *t)
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
        t->scope_due = tablet_syncs_done(t) + 1;
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
        /* A check that cannot read a store proves nothing: stop. */
        if (store_changes(t->store, 0, 0, collect_change, &cs) != SAT_OK ||
            store_conflicts(t->store, collect_conflict, &keys) != SAT_OK)
            world_fatal(store_errmsg(t->store), SAT_ERR_STORE_SQL);
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
void invariants_check(struct world *w, int full)
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
            if (store_patient_list(c.t->store, check_scope, &c) != SAT_OK)
                world_fatal(store_errmsg(c.t->store), SAT_ERR_STORE_SQL);
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
