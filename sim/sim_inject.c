/*
 * sim_inject.c - the test-only build's --inject-bug (satchel-sim-faulty,
 * built with SATCHEL_SIM_INJECT): a tablet's replica that breaks one rule
 * on purpose, to show that the invariants catch it.
 *
 * Owns: nothing; it only chooses the members of t->replica. Guarantees:
 * in the shipped build (no SATCHEL_SIM_INJECT), or with w->inject ==
 * INJECT_NONE, the driver gets the glue's own replica, untouched. With a
 * fault every member forwards to the glue's, except the broken one:
 * lost-write drops the middle change of each push batch of three or more;
 * skip-purge ignores the hub's purges. Caller: sim_world.c, each time it
 * starts a tablet's sync driver.
 */
#include <string.h>

#include "sim_world.h"

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

void inject_wire_replica(struct world *w, struct tablet *t)
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
