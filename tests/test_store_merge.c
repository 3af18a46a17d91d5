/*
 * test_store_merge.c - the merge rule on tablets: changes copied between
 * two simulated devices converge to the same content, concurrent edits of
 * one field are kept as conflicts on both sides, sequential edits are not,
 * replays change nothing, purges and tombstones travel.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "store_fixture.h"

#define MAX_CHANGES 256

struct device {
    struct sim_hal *sim;
    struct keys k;
    struct store *s;
    uint64_t sent; /* own changes already copied to the other device */
};

struct batch {
    struct store_change c[MAX_CHANGES];
    char text[MAX_CHANGES][STORE_NOTE_TEXT_BYTES];
    size_t n;
};

struct pair {
    struct device a;
    struct device b;
    struct batch batch;
};

static int open_device(struct device *d, uint64_t seed)
{
    if (sim_hal_new(&d->sim, seed, FIXTURE_WALL_START_MS) != SAT_OK)
        return -1;
    fixture_keys(&d->k, sim_hal_hal(d->sim), seed);
    return store_open(sim_hal_hal(d->sim), &d->k, &d->s, NULL) == SAT_OK ? 0 : -1;
}

static int setup(void **state)
{
    struct pair *p = calloc(1, sizeof *p);
    if (!p || open_device(&p->a, 1) != 0 || open_device(&p->b, 2) != 0)
        return -1;
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    struct pair *p = *state;
    store_close(p->a.s);
    store_close(p->b.s);
    sim_hal_free(p->a.sim);
    sim_hal_free(p->b.sim);
    free(p);
    return 0;
}

static int collect(void *arg, const struct store_change *c)
{
    struct batch *b = arg;
    if (b->n == MAX_CHANGES)
        return -1;
    b->c[b->n] = *c;
    if (c->value_text) {
        snprintf(b->text[b->n], STORE_NOTE_TEXT_BYTES, "%s", c->value_text);
        b->c[b->n].value_text = b->text[b->n];
    }
    b->n++;
    return 0;
}

/* Copies from's new changes to to, as a sync through the hub would. */
static struct store_apply_result copy_changes(struct pair *p, struct device *from,
                                              struct device *to)
{
    struct store_apply_result r;
    p->batch.n = 0;
    assert_int_equal(store_changes(from->s, from->sent, 0, collect, &p->batch), SAT_OK);
    if (p->batch.n > 0)
        from->sent = p->batch.c[p->batch.n - 1].seq;
    assert_int_equal(store_apply_remote(to->s, p->batch.c, p->batch.n, NULL, 0, 0, &r), SAT_OK);
    return r;
}

static void assert_converged(struct pair *p)
{
    uint8_t ha[32];
    uint8_t hb[32];
    assert_int_equal(store_content_hash(p->a.s, ha), SAT_OK);
    assert_int_equal(store_content_hash(p->b.s, hb), SAT_OK);
    assert_memory_equal(ha, hb, sizeof ha);
}

static struct store_id add_patient(struct device *d, uint64_t seed)
{
    struct store_patient pt;
    uint64_t rng = seed;
    fixture_patient(&rng, &pt, "");
    assert_int_equal(store_patient_add(d->s, &pt), SAT_OK);
    return pt.id;
}

static void set_address(struct device *d, const struct store_id *id, const char *address)
{
    struct store_patient pt;
    assert_int_equal(store_patient_get(d->s, id, &pt), SAT_OK);
    snprintf(pt.address, sizeof pt.address, "%s", address);
    assert_int_equal(store_patient_update(d->s, &pt), SAT_OK);
}

static int count_conflicts_cb(void *arg, const struct store_conflict *c)
{
    (void)c;
    (*(int *)arg)++;
    return 0;
}

static int count_conflicts(struct device *d)
{
    int n = 0;
    assert_int_equal(store_conflicts(d->s, count_conflicts_cb, &n), SAT_OK);
    return n;
}

static void test_records_replicate_and_converge(void **state)
{
    struct pair *p = *state;
    struct store_id pa = add_patient(&p->a, 11);
    struct store_obs o;
    struct store_note *n = calloc(1, sizeof *n);
    struct store_apply_result r;
    struct store_patient got;
    memset(&o, 0, sizeof o);
    o.patient_id = pa;
    o.vitals = (struct news2_vitals){ 22, 95, 1, 1, 105, 115, NEWS2_ALERT, 385 };
    assert_int_equal(store_obs_add(p->a.s, &o), SAT_OK);
    n->patient_id = pa;
    snprintf(n->text, sizeof n->text, "seen at home");
    assert_int_equal(store_note_add(p->a.s, n), SAT_OK);
    add_patient(&p->b, 22);

    r = copy_changes(p, &p->a, &p->b);
    assert_true(r.applied > 10);
    assert_int_equal(r.conflicts, 0);
    copy_changes(p, &p->b, &p->a);
    assert_converged(p);
    assert_int_equal(store_patient_get(p->b.s, &pa, &got), SAT_OK);
    {
        struct store_obs back;
        assert_int_equal(store_obs_get(p->b.s, &o.id, &back), SAT_OK);
        assert_memory_equal(&back.vitals, &o.vitals, sizeof o.vitals);
        assert_int_equal(back.news2_score, 9);
    }
    /* A replay changes nothing. */
    p->a.sent = 0;
    r = copy_changes(p, &p->a, &p->b);
    assert_int_equal(r.applied, 0);
    assert_true(r.stale > 10);
    assert_converged(p);
    free(n);
}

static void test_concurrent_edit_is_a_conflict_on_both_sides(void **state)
{
    struct pair *p = *state;
    struct store_id id = add_patient(&p->a, 33);
    struct store_patient got_a;
    struct store_patient got_b;
    copy_changes(p, &p->a, &p->b);
    /* Both nurses change the address while offline. */
    sim_hal_advance_ms(p->a.sim, 1000);
    sim_hal_advance_ms(p->b.sim, 2000);
    set_address(&p->a, &id, "1 Heol Newydd");
    set_address(&p->b, &id, "99 Ffordd Hir");
    copy_changes(p, &p->a, &p->b);
    copy_changes(p, &p->b, &p->a);
    assert_int_equal(count_conflicts(&p->a), 1);
    assert_int_equal(count_conflicts(&p->b), 1);
    /* Both replicas keep the same winner: the later stamp (B's clock). */
    assert_int_equal(store_patient_get(p->a.s, &id, &got_a), SAT_OK);
    assert_int_equal(store_patient_get(p->b.s, &id, &got_b), SAT_OK);
    assert_string_equal(got_a.address, "99 Ffordd Hir");
    assert_string_equal(got_b.address, "99 Ffordd Hir");
    assert_converged(p);
}

static void test_sequential_edit_is_not_a_conflict(void **state)
{
    struct pair *p = *state;
    struct store_id id = add_patient(&p->a, 44);
    struct store_patient got;
    copy_changes(p, &p->a, &p->b);
    set_address(&p->a, &id, "first move");
    copy_changes(p, &p->a, &p->b);
    /* B has seen A's edit, then edits the same field. */
    set_address(&p->b, &id, "second move");
    copy_changes(p, &p->b, &p->a);
    assert_int_equal(count_conflicts(&p->a), 0);
    assert_int_equal(count_conflicts(&p->b), 0);
    assert_int_equal(store_patient_get(p->a.s, &id, &got), SAT_OK);
    assert_string_equal(got.address, "second move");
    assert_converged(p);
}

static void test_skewed_clock_still_orders_causally(void **state)
{
    struct pair *p = *state;
    struct store_id id = add_patient(&p->a, 55);
    struct store_patient got;
    /* A's clock is a day fast; B's is right. B edits after seeing A. */
    sim_hal_set_wall_ms(p->a.sim, FIXTURE_WALL_START_MS + 86400000);
    set_address(&p->a, &id, "from the fast clock");
    copy_changes(p, &p->a, &p->b);
    copy_changes(p, &p->a, &p->b);
    /* B restarts in between: its clock comes back from its own last
     * stamp, a day behind A's, and the edit must still follow A's. */
    store_close(p->b.s);
    assert_int_equal(store_open(sim_hal_hal(p->b.sim), &p->b.k, &p->b.s, NULL), SAT_OK);
    set_address(&p->b, &id, "later, slow clock");
    copy_changes(p, &p->b, &p->a);
    assert_int_equal(store_patient_get(p->a.s, &id, &got), SAT_OK);
    assert_string_equal(got.address, "later, slow clock");
    assert_int_equal(count_conflicts(&p->a), 0);
    assert_converged(p);
}

struct base_check {
    struct store_id record;
    int n;
    int based;
};

static int check_no_base(void *arg, const struct store_change *c)
{
    struct base_check *bc = arg;
    if (memcmp(&c->record_id, &bc->record, sizeof bc->record) == 0) {
        bc->n++;
        bc->based += c->has_base;
    }
    return 0;
}

/* A purge takes the patient with a record of every kind it has. */
static void test_tombstone_and_purge(void **state)
{
    struct pair *p = *state;
    struct store_id keep = add_patient(&p->a, 66);
    struct store_id gone = add_patient(&p->a, 77);
    struct store_task t;
    struct store_patient got;
    struct store_apply_result r;
    struct store_visit v;
    struct store_obs o;
    struct store_note *n = calloc(1, sizeof *n);
    uint64_t rng = 67;
    assert_non_null(n);
    memset(&t, 0, sizeof t);
    t.patient_id = gone;
    snprintf(t.title, sizeof t.title, "phone GP");
    assert_int_equal(store_task_add(p->a.s, &t), SAT_OK);
    /* A record of every kind hangs off the patient that will move. */
    assert_int_equal(store_visit_start(p->a.s, &gone, "wound care", &v), SAT_OK);
    memset(&o, 0, sizeof o);
    o.patient_id = gone;
    fixture_vitals(&rng, &o.vitals);
    assert_int_equal(store_obs_add(p->a.s, &o), SAT_OK);
    n->patient_id = gone;
    snprintf(n->text, sizeof n->text, "dressing changed");
    assert_int_equal(store_note_add(p->a.s, n), SAT_OK);
    copy_changes(p, &p->a, &p->b);
    assert_int_equal(store_visit_get(p->b.s, &v.id, &(struct store_visit){ 0 }), SAT_OK);
    assert_int_equal(store_obs_get(p->b.s, &o.id, &(struct store_obs){ 0 }), SAT_OK);
    assert_int_equal(store_note_get(p->b.s, &n->id, n), SAT_OK);
    assert_int_equal(store_delete(p->a.s, RECORD_KIND_PATIENT, &keep), SAT_OK);
    copy_changes(p, &p->a, &p->b);
    assert_int_equal(store_patient_get(p->b.s, &keep, &got), SAT_OK);
    assert_int_equal(got.deleted, 1);
    /* The hub moves `gone` to another team: B purges it with its task. */
    assert_int_equal(store_apply_remote(p->b.s, NULL, 0, &gone, 1, 42, &r), SAT_OK);
    assert_int_equal(r.purged, 1);
    assert_int_equal(store_patient_get(p->b.s, &gone, &got), SAT_ERR_STORE_UNKNOWN_ID);
    assert_int_equal(store_task_get(p->b.s, &t.id, &(struct store_task){ 0 }),
                     SAT_ERR_STORE_UNKNOWN_ID);
    assert_int_equal(store_visit_get(p->b.s, &v.id, &(struct store_visit){ 0 }),
                     SAT_ERR_STORE_UNKNOWN_ID);
    assert_int_equal(store_obs_get(p->b.s, &o.id, &(struct store_obs){ 0 }),
                     SAT_ERR_STORE_UNKNOWN_ID);
    assert_int_equal(store_note_get(p->b.s, &n->id, n), SAT_ERR_STORE_UNKNOWN_ID);
    free(n);
    {
        struct store_sync_state st;
        assert_int_equal(store_sync_state(p->b.s, &st), SAT_OK);
        assert_int_equal(st.pull_cursor, 42);
    }
    /* The purge took the merge state too: a patient B makes next (whose
     * row may reuse the purged one's rowid) starts with no base, and A's
     * changes to `gone`, sent again, apply afresh. */
    {
        struct store_id fresh = add_patient(&p->b, 78);
        struct base_check bc = { fresh, 0, 0 };
        assert_int_equal(store_changes(p->b.s, 0, 0, check_no_base, &bc), SAT_OK);
        assert_true(bc.n > 0);
        assert_int_equal(bc.based, 0);
        p->a.sent = 0;
        r = copy_changes(p, &p->a, &p->b);
        assert_true(r.applied > 0);
        assert_int_equal(store_patient_get(p->b.s, &gone, &got), SAT_OK);
    }
}

static void test_malformed_batch_applies_nothing(void **state)
{
    struct pair *p = *state;
    struct store_apply_result r;
    uint8_t before[32];
    uint8_t after[32];
    add_patient(&p->a, 88);
    p->batch.n = 0;
    assert_int_equal(store_changes(p->a.s, 0, 0, collect, &p->batch), SAT_OK);
    assert_true(p->batch.n > 2);
    p->batch.c[p->batch.n - 1].value_type = 9; /* no such value type */
    assert_int_equal(store_content_hash(p->b.s, before), SAT_OK);
    assert_int_equal(store_apply_remote(p->b.s, p->batch.c, p->batch.n, NULL, 0, 7, &r),
                     SAT_ERR_STORE_INVALID);
    assert_int_equal(store_content_hash(p->b.s, after), SAT_OK);
    assert_memory_equal(before, after, sizeof before);
    {
        struct store_sync_state st;
        assert_int_equal(store_sync_state(p->b.s, &st), SAT_OK);
        assert_int_equal(st.pull_cursor, 0); /* the cursor did not move */
    }
    /* A field number past the store's range (0..65535) is malformed too. */
    p->batch.c[p->batch.n - 1] = p->batch.c[0];
    p->batch.c[p->batch.n - 1].field = 70000;
    assert_int_equal(store_apply_remote(p->b.s, p->batch.c, p->batch.n, NULL, 0, 7, &r),
                     SAT_ERR_STORE_INVALID);
    assert_int_equal(store_content_hash(p->b.s, after), SAT_OK);
    assert_memory_equal(before, after, sizeof before);
}

static void test_push_ack_never_goes_down(void **state)
{
    struct pair *p = *state;
    struct store_sync_state st;
    add_patient(&p->a, 99);
    assert_int_equal(store_set_push_acked(p->a.s, 5), SAT_OK);
    assert_int_equal(store_set_push_acked(p->a.s, 3), SAT_OK);
    assert_int_equal(store_sync_state(p->a.s, &st), SAT_OK);
    assert_int_equal(st.push_acked, 5);
    assert_int_equal(st.last_seq, 7);
}

struct origin_check {
    struct store_id want;
    int n;
    int bad;
};

static int check_origin(void *arg, const struct store_change *c)
{
    struct origin_check *oc = arg;
    oc->n++;
    oc->bad += memcmp(&c->origin_device, &oc->want, sizeof oc->want) != 0;
    return 0;
}

static void test_adopt_provisioned_device_id(void **state)
{
    struct pair *p = *state;
    struct origin_check oc;
    struct store_id dev;
    add_patient(&p->a, 123);
    memset(&oc, 0, sizeof oc);
    memset(&oc.want, 0x5A, sizeof oc.want);
    assert_int_equal(store_adopt_device_id(p->a.s, &oc.want), SAT_OK);
    store_device_id(p->a.s, &dev);
    assert_memory_equal(&dev, &oc.want, sizeof dev);
    assert_int_equal(store_changes(p->a.s, 0, 0, check_origin, &oc), SAT_OK);
    assert_int_equal(oc.n, 7);
    assert_int_equal(oc.bad, 0);
    /* Survives reopening; and after a push the identity is fixed. */
    store_close(p->a.s);
    assert_int_equal(store_open(sim_hal_hal(p->a.sim), &p->a.k, &p->a.s, NULL), SAT_OK);
    store_device_id(p->a.s, &dev);
    assert_memory_equal(&dev, &oc.want, sizeof dev);
    assert_int_equal(store_set_push_acked(p->a.s, 1), SAT_OK);
    memset(&dev, 0x77, sizeof dev);
    assert_int_equal(store_adopt_device_id(p->a.s, &dev), SAT_ERR_STORE_NOT_ALLOWED);
}

/* A pulled batch gives the same replica however it is cut into calls of
 * store_apply_changes and in whatever order its changes come: records new
 * to the replica are written whole once their run of changes ends, which
 * may span calls, be interrupted by another record's changes, or start
 * with a tombstone. */
static void test_batch_applies_the_same_however_cut(void **state)
{
    struct pair *p = *state;
    struct store_id pa = add_patient(&p->a, 31);
    struct store_id pb = add_patient(&p->a, 32);
    struct store_visit v;
    struct store_obs o[3];
    struct store_note *n = calloc(1, sizeof *n);
    struct store_task t;
    struct batch *shuffled = calloc(1, sizeof *shuffled);
    uint8_t want[32];
    uint64_t rng = 7;
    static const size_t cuts[] = { 1, 2, 3, 5, 13, 32, MAX_CHANGES };

    assert_non_null(n);
    assert_non_null(shuffled);
    assert_int_equal(store_visit_start(p->a.s, &pa, "leg ulcer dressing", &v), SAT_OK);
    for (int i = 0; i < 3; i++) {
        memset(&o[i], 0, sizeof o[i]);
        o[i].patient_id = i == 2 ? pb : pa;
        o[i].has_visit = i != 2; /* pb's is taken outside the visit */
        o[i].visit_id = v.id;
        o[i].has_amends = i == 1; /* a correction of the first */
        o[i].amends = o[0].id;
        fixture_vitals(&rng, &o[i].vitals);
        assert_int_equal(store_obs_add(p->a.s, &o[i]), SAT_OK);
    }
    n->patient_id = pa;
    n->has_visit = 1;
    n->visit_id = v.id;
    snprintf(n->text, sizeof n->text, "wound smaller; dressing changed");
    assert_int_equal(store_note_add(p->a.s, n), SAT_OK);
    memset(&t, 0, sizeof t);
    t.patient_id = pb;
    snprintf(t.title, sizeof t.title, "order dressings");
    assert_int_equal(store_task_add(p->a.s, &t), SAT_OK);
    assert_int_equal(store_task_done(p->a.s, &t.id), SAT_OK);
    assert_int_equal(store_visit_end(p->a.s, &v.id, &v), SAT_OK);
    assert_int_equal(store_delete(p->a.s, RECORD_KIND_TASK, &t.id), SAT_OK);
    set_address(&p->a, &pb, "2 Heol Newydd");
    assert_int_equal(store_content_hash(p->a.s, want), SAT_OK);

    p->batch.n = 0;
    assert_int_equal(store_changes(p->a.s, 0, 0, collect, &p->batch), SAT_OK);
    assert_true(p->batch.n > 40);
    /* The same changes in a seeded random order (each keeps its text,
     * which stays in p->batch). */
    *shuffled = p->batch;
    for (size_t i = shuffled->n - 1; i > 0; i--) {
        size_t j = (size_t)(fixture_next(&rng) % (i + 1));
        struct store_change c = shuffled->c[i];
        shuffled->c[i] = shuffled->c[j];
        shuffled->c[j] = c;
    }
    for (int order = 0; order < 2; order++) {
        const struct batch *b = order == 0 ? &p->batch : shuffled;
        for (size_t ci = 0; ci < sizeof cuts / sizeof cuts[0]; ci++) {
            struct device d;
            struct store_apply_result r = { 0, 0, 0, 0 };
            uint8_t got[32];
            struct store_obs back;
            memset(&d, 0, sizeof d);
            assert_int_equal(open_device(&d, 100 + (uint64_t)(order * 10) + ci), 0);
            assert_int_equal(store_apply_begin(d.s), SAT_OK);
            for (size_t off = 0; off < b->n; off += cuts[ci]) {
                size_t len = b->n - off < cuts[ci] ? b->n - off : cuts[ci];
                assert_int_equal(store_apply_changes(d.s, &b->c[off], len, &r), SAT_OK);
            }
            assert_int_equal(store_apply_commit(d.s, NULL, 0, 0, &r), SAT_OK);
            assert_int_equal(r.applied, b->n);
            assert_int_equal(r.conflicts, 0);
            assert_int_equal(store_content_hash(d.s, got), SAT_OK);
            assert_memory_equal(got, want, sizeof want);
            assert_int_equal(store_obs_get(d.s, &o[2].id, &back), SAT_OK);
            assert_memory_equal(&back.vitals, &o[2].vitals, sizeof back.vitals);
            assert_int_equal(store_check_integrity(d.s), SAT_OK);
            /* Again, all at once: nothing new. */
            memset(&r, 0, sizeof r);
            assert_int_equal(store_apply_remote(d.s, b->c, b->n, NULL, 0, 0, &r), SAT_OK);
            assert_int_equal(r.applied, 0);
            assert_int_equal(r.stale, b->n);
            store_close(d.s);
            sim_hal_free(d.sim);
        }
    }
    /* A new record's changes in one run, newest first: pb's address was
     * written twice, and the older write, coming second, must lose to the
     * newer one though the record is still pending. */
    {
        struct device d;
        struct batch *rev = calloc(1, sizeof *rev);
        struct store_apply_result r = { 0, 0, 0, 0 };
        struct store_patient got;
        assert_non_null(rev);
        for (size_t i = p->batch.n; i-- > 0;)
            if (p->batch.c[i].kind == RECORD_KIND_PATIENT &&
                memcmp(&p->batch.c[i].record_id, &pb, sizeof pb) == 0)
                rev->c[rev->n++] = p->batch.c[i];
        memset(&d, 0, sizeof d);
        assert_int_equal(open_device(&d, 300), 0);
        assert_int_equal(store_apply_remote(d.s, rev->c, rev->n, NULL, 0, 0, &r), SAT_OK);
        assert_int_equal(r.stale, 1);
        assert_int_equal(r.applied, rev->n - 1);
        assert_int_equal(store_patient_get(d.s, &pb, &got), SAT_OK);
        assert_string_equal(got.address, "2 Heol Newydd");
        store_close(d.s);
        sim_hal_free(d.sim);
        free(rev);
    }
    /* Two batches, the first ending in the middle of a record's run: its
     * commit writes what it has (a restart in between forgets the rest). */
    for (size_t cut = 1; cut < p->batch.n; cut += 6) {
        struct device d;
        struct store_apply_result r = { 0, 0, 0, 0 };
        uint8_t got[32];
        memset(&d, 0, sizeof d);
        assert_int_equal(open_device(&d, 200 + cut), 0);
        assert_int_equal(store_apply_remote(d.s, p->batch.c, cut, NULL, 0, 0, &r), SAT_OK);
        store_close(d.s); /* the tablet restarts between the two */
        d.s = NULL;
        assert_int_equal(store_open(sim_hal_hal(d.sim), &d.k, &d.s, NULL), SAT_OK);
        assert_int_equal(store_apply_remote(d.s, p->batch.c + cut, p->batch.n - cut, NULL, 0, 0,
                                            &r),
                         SAT_OK);
        assert_int_equal(store_content_hash(d.s, got), SAT_OK);
        assert_memory_equal(got, want, sizeof want);
        store_close(d.s);
        sim_hal_free(d.sim);
    }
    /* A batch given up halfway leaves nothing behind, pending rows included. */
    {
        struct device d;
        struct store_apply_result r = { 0, 0, 0, 0 };
        uint8_t empty[32];
        uint8_t got[32];
        memset(&d, 0, sizeof d);
        assert_int_equal(open_device(&d, 99), 0);
        assert_int_equal(store_content_hash(d.s, empty), SAT_OK);
        assert_int_equal(store_apply_begin(d.s), SAT_OK);
        assert_int_equal(store_apply_changes(d.s, p->batch.c, p->batch.n / 2, &r), SAT_OK);
        store_apply_abort(d.s);
        assert_int_equal(store_content_hash(d.s, got), SAT_OK);
        assert_memory_equal(got, empty, sizeof empty);
        memset(&r, 0, sizeof r);
        assert_int_equal(store_apply_remote(d.s, p->batch.c, p->batch.n, NULL, 0, 0, &r),
                         SAT_OK);
        assert_int_equal(r.applied, p->batch.n);
        assert_int_equal(store_content_hash(d.s, got), SAT_OK);
        assert_memory_equal(got, want, sizeof want);
        store_close(d.s);
        sim_hal_free(d.sim);
    }
    free(shuffled);
    free(n);
}

/* Two writers stamp one field with exactly the same HLC (wall clocks that
 * agree to the millisecond, equal counters). The merge rule's tie-break, the
 * origin device id compared byte by byte from the first, decides, and every
 * replica picks the same write whichever arrives first. The ids differ in
 * their first and last bytes in opposite directions, so a comparison from
 * the wrong end picks the other write. */
static struct store_change tie_change(const struct store_id *record, uint8_t first,
                                      uint8_t last, const char *address)
{
    struct store_change c;
    memset(&c, 0, sizeof c);
    c.record_id = *record;
    c.kind = RECORD_KIND_PATIENT;
    c.field = 6; /* Patient.address */
    c.value_type = 1;
    c.value_text = address;
    c.hlc_wall_ms = FIXTURE_WALL_START_MS + 60000;
    c.hlc_counter = 3;
    c.origin_device.b[0] = first;
    c.origin_device.b[STORE_ID_BYTES - 1] = last;
    c.origin_seq = 1;
    return c;
}

static void test_equal_stamps_tie_break_on_origin(void **state)
{
    struct pair *p = *state;
    struct store_id id = add_patient(&p->a, 99);
    struct store_change high, low;
    struct store_apply_result r;
    struct store_patient got;
    const struct store_change *base = NULL;
    copy_changes(p, &p->a, &p->b);
    for (size_t i = 0; i < p->batch.n; i++)
        if (p->batch.c[i].field == 6)
            base = &p->batch.c[i];
    assert_non_null(base);
    high = tie_change(&id, 0x02, 0x00, "the higher origin");
    low = tie_change(&id, 0x01, 0xff, "the lower origin");
    /* Both writers had A's address: only their two writes are concurrent. */
    for (struct store_change *c = &high; c; c = c == &high ? &low : NULL) {
        c->has_base = 1;
        c->base_wall_ms = base->hlc_wall_ms;
        c->base_counter = base->hlc_counter;
        c->base_device = base->origin_device;
    }
    assert_int_equal(store_apply_remote(p->a.s, &low, 1, NULL, 0, 0, &r), SAT_OK);
    assert_int_equal(store_apply_remote(p->a.s, &high, 1, NULL, 0, 0, &r), SAT_OK);
    assert_int_equal(r.applied, 1);
    assert_int_equal(store_apply_remote(p->b.s, &high, 1, NULL, 0, 0, &r), SAT_OK);
    assert_int_equal(store_apply_remote(p->b.s, &low, 1, NULL, 0, 0, &r), SAT_OK);
    assert_int_equal(r.applied, 0);
    assert_int_equal(r.stale, 1); /* not "already here": another writer's */
    assert_int_equal(store_patient_get(p->a.s, &id, &got), SAT_OK);
    assert_string_equal(got.address, "the higher origin");
    assert_int_equal(store_patient_get(p->b.s, &id, &got), SAT_OK);
    assert_string_equal(got.address, "the higher origin");
    /* Neither writer saw the other: a concurrent edit on both replicas. */
    assert_int_equal(count_conflicts(&p->a), 1);
    assert_int_equal(count_conflicts(&p->b), 1);
    assert_converged(p);
}

/* What a tablet shows for an observation it pulled is scored by its own
 * NEWS2 code from the vital signs: the score the record carried is at most
 * a cross-check (here another tablet sent critical signs with a score of
 * 0), and an observation whose vital signs are not all there is shown as
 * incomplete and high risk, never as low. */
static void test_pulled_news2_is_scored_here(void **state)
{
    struct pair *p = *state;
    struct store_id pa = add_patient(&p->a, 12);
    struct store_obs o, got;
    struct store_apply_result r;
    memset(&o, 0, sizeof o);
    o.patient_id = pa;
    o.vitals = (struct news2_vitals){ 30, 84, 1, 1, 85, 140, NEWS2_UNRESPONSIVE, 340 };
    assert_int_equal(store_obs_add(p->a.s, &o), SAT_OK);
    assert_int_equal(o.news2_score, 20);
    p->batch.n = 0;
    assert_int_equal(store_changes(p->a.s, 0, 0, collect, &p->batch), SAT_OK);
    for (size_t i = 0; i < p->batch.n; i++)
        if (p->batch.c[i].kind == RECORD_KIND_OBSERVATION &&
            p->batch.c[i].field == satchel_Observation_news2_score_tag)
            p->batch.c[i].value_int = 0; /* what a faulty tablet carried */
    assert_int_equal(store_apply_remote(p->b.s, p->batch.c, p->batch.n, NULL, 0, 0, &r), SAT_OK);
    assert_int_equal(store_obs_get(p->b.s, &o.id, &got), SAT_OK);
    assert_int_equal(got.news2_score, 20);
    assert_int_equal(got.news2_risk, NEWS2_RISK_HIGH);
    assert_int_equal(got.news2_incomplete, 0);
    assert_int_equal(got.news2_carried, 0);

    /* Another observation, whose respiration rate does not arrive. */
    uint64_t after = p->batch.c[p->batch.n - 1].seq;
    memset(&o, 0, sizeof o);
    o.patient_id = pa;
    o.vitals = (struct news2_vitals){ 12, 97, 1, 0, 120, 70, NEWS2_ALERT, 370 };
    assert_int_equal(store_obs_add(p->a.s, &o), SAT_OK);
    assert_int_equal(o.news2_risk, NEWS2_RISK_LOW);
    p->batch.n = 0;
    assert_int_equal(store_changes(p->a.s, after, 0, collect, &p->batch), SAT_OK);
    {
        size_t kept = 0;
        for (size_t i = 0; i < p->batch.n; i++)
            if (!(p->batch.c[i].kind == RECORD_KIND_OBSERVATION &&
                  p->batch.c[i].field ==
                      RECORD_OBS_VITALS_BASE + satchel_VitalSigns_respiration_rate_tag))
                p->batch.c[kept++] = p->batch.c[i];
        assert_int_equal(kept, p->batch.n - 1);
        p->batch.n = kept;
    }
    assert_int_equal(store_apply_remote(p->b.s, p->batch.c, p->batch.n, NULL, 0, 0, &r), SAT_OK);
    assert_int_equal(store_obs_get(p->b.s, &o.id, &got), SAT_OK);
    assert_int_equal(got.news2_incomplete, 1);
    assert_string_equal(news2_field_name(got.news2_incomplete), "respiration rate");
    assert_int_equal(got.news2_score, -1);
    assert_int_equal(got.news2_risk, NEWS2_RISK_HIGH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_records_replicate_and_converge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_edit_is_a_conflict_on_both_sides, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sequential_edit_is_not_a_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skewed_clock_still_orders_causally, setup, teardown),
        cmocka_unit_test_setup_teardown(test_equal_stamps_tie_break_on_origin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pulled_news2_is_scored_here, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombstone_and_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_batch_applies_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_ack_never_goes_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_provisioned_device_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_applies_the_same_however_cut, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
