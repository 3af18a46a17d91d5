/*
 * test_hub_store.c - the hub's change store (sync/hub/hub_store.h) over its
 * SQLite backend: team scope on push and pull, idempotent replays, atomic
 * batches, pull paging, reassignment with purges, conflict detection,
 * revocation and durability across a reopen. Fixed ids and stamps; no
 * wall clock.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "hub_store.h"

#define ID16(b) { b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b }

static const uint8_t DEV_A[HUB_ID_BYTES] = ID16(0xA1); /* north */
static const uint8_t DEV_B[HUB_ID_BYTES] = ID16(0xB2); /* north */
static const uint8_t DEV_C[HUB_ID_BYTES] = ID16(0xC3); /* south */
static const uint8_t DEV_X[HUB_ID_BYTES] = ID16(0xEE); /* never registered */
static const uint8_t ZERO[HUB_ID_BYTES] = ID16(0x00);
static const uint8_t PAT_1[HUB_ID_BYTES] = ID16(0x11);
static const uint8_t PAT_2[HUB_ID_BYTES] = ID16(0x12);
static const uint8_t PAT_9[HUB_ID_BYTES] = ID16(0x19); /* never pushed */
static const uint8_t VISIT_1[HUB_ID_BYTES] = ID16(0x21);
static const uint8_t VISIT_2[HUB_ID_BYTES] = ID16(0x22);
static const uint8_t NOTE_1[HUB_ID_BYTES] = ID16(0x31);
static const uint8_t OBS_1[HUB_ID_BYTES] = ID16(0x41);
static const uint8_t TASK_1[HUB_ID_BYTES] = ID16(0x51);

#define KIND_PATIENT satchel_RecordKind_RECORD_KIND_PATIENT
#define KIND_VISIT satchel_RecordKind_RECORD_KIND_VISIT
#define KIND_OBS satchel_RecordKind_RECORD_KIND_OBSERVATION
#define KIND_NOTE satchel_RecordKind_RECORD_KIND_CARE_NOTE
#define KIND_TASK satchel_RecordKind_RECORD_KIND_TASK

/* The changes of one push, numbered on from first_seq. */
struct batch {
    satchel_FieldChange c[HUB_PUSH_CHANGES_MAX];
    size_t n;
    uint64_t first_seq;
};

struct fixture {
    char dir[64];
    char path[128];
    struct hub_store *hub;
    struct batch batch;
    satchel_FieldChange pulled[HUB_PULL_CHANGES_MAX];
    struct hub_pull_result res;
};

/* ---- helpers ------------------------------------------------------------- */

static void batch_start(struct batch *b, uint64_t first_seq)
{
    memset(b, 0, sizeof *b);
    b->first_seq = first_seq;
}

/* Appends a change by dev to (rec, field) stamped (wall, 0); the caller
 * sets the value with one of the set_* helpers. */
static satchel_FieldChange *batch_add(struct batch *b, const uint8_t dev[HUB_ID_BYTES],
                                      const uint8_t rec[HUB_ID_BYTES], satchel_RecordKind kind,
                                      uint32_t field, uint64_t wall)
{
    satchel_FieldChange *c = &b->c[b->n];
    assert_true(b->n < HUB_PUSH_CHANGES_MAX);
    memset(c, 0, sizeof *c);
    memcpy(c->record_id, rec, HUB_ID_BYTES);
    c->kind = kind;
    c->field = field;
    c->has_value = true;
    c->has_stamp = true;
    c->stamp.wall_ms = wall;
    memcpy(c->origin_device, dev, HUB_ID_BYTES);
    c->origin_seq = b->first_seq + b->n;
    b->n++;
    return c;
}

static void set_text(satchel_FieldChange *c, const char *text)
{
    c->value.which_value = satchel_FieldValue_text_tag;
    snprintf(c->value.value.text, sizeof c->value.value.text, "%s", text);
}

static void set_int(satchel_FieldChange *c, int64_t v)
{
    c->value.which_value = satchel_FieldValue_integer_tag;
    c->value.value.integer = v;
}

static void set_blob(satchel_FieldChange *c, const uint8_t id[HUB_ID_BYTES])
{
    c->value.which_value = satchel_FieldValue_blob_tag;
    c->value.value.blob.size = HUB_ID_BYTES;
    memcpy(c->value.value.blob.bytes, id, HUB_ID_BYTES);
}

static void add_text(struct batch *b, const uint8_t dev[HUB_ID_BYTES],
                     const uint8_t rec[HUB_ID_BYTES], satchel_RecordKind kind, uint32_t field,
                     uint64_t wall, const char *text)
{
    set_text(batch_add(b, dev, rec, kind, field, wall), text);
}

static int push(struct fixture *f, const uint8_t dev[HUB_ID_BYTES], struct hub_push_result *r)
{
    return hub_store_push(f->hub, dev, f->batch.first_seq, f->batch.c, f->batch.n, r);
}

/* Device A (north) creates patient 1 with a visit and a note: 8 changes,
 * A's sequences 1..8, hub sequences 1..8. The visit's started_ms comes
 * before its patient_id, as a tablet's log may have it. */
static void build_patient_1(struct batch *b)
{
    batch_start(b, 1);
    add_text(b, DEV_A, PAT_1, KIND_PATIENT, 3, 1000, "Ada");
    add_text(b, DEV_A, PAT_1, KIND_PATIENT, 4, 1001, "Lovelace");
    add_text(b, DEV_A, PAT_1, KIND_PATIENT, 2, 1002, "9434765919");
    set_int(batch_add(b, DEV_A, VISIT_1, KIND_VISIT, 3, 1003), 1700000000000);
    set_blob(batch_add(b, DEV_A, VISIT_1, KIND_VISIT, 2, 1004), PAT_1);
    add_text(b, DEV_A, NOTE_1, KIND_NOTE, 5, 1005, "Dressing changed");
    set_blob(batch_add(b, DEV_A, NOTE_1, KIND_NOTE, 2, 1006), PAT_1);
    set_blob(batch_add(b, DEV_A, NOTE_1, KIND_NOTE, 3, 1007), VISIT_1);
}

static void push_patient_1(struct fixture *f)
{
    struct hub_push_result r;
    build_patient_1(&f->batch);
    assert_int_equal(push(f, DEV_A, &r), SAT_OK);
    assert_int_equal(r.stored, 8);
    assert_int_equal(r.skipped, 0);
    assert_int_equal(r.acked_seq, 8);
}

static int pull(struct fixture *f, const uint8_t dev[HUB_ID_BYTES], uint64_t cursor, size_t max)
{
    return hub_store_pull(f->hub, dev, cursor, f->pulled, max, &f->res);
}

/* The pulled change to (rec, field), or NULL. */
static const satchel_FieldChange *pulled_find(const struct fixture *f,
                                              const uint8_t rec[HUB_ID_BYTES], uint32_t field)
{
    for (size_t i = 0; i < f->res.count; i++)
        if (memcmp(f->pulled[i].record_id, rec, HUB_ID_BYTES) == 0 &&
            f->pulled[i].field == field)
            return &f->pulled[i];
    return NULL;
}

static struct hub_stats stats(struct fixture *f)
{
    struct hub_stats s;
    assert_int_equal(hub_store_stats(f->hub, &s), SAT_OK);
    return s;
}

static void assert_team(struct fixture *f, const uint8_t patient[HUB_ID_BYTES], const char *team)
{
    char t[HUB_TEAM_BYTES];
    assert_int_equal(hub_store_patient_team(f->hub, patient, t), SAT_OK);
    assert_string_equal(t, team);
}

static uint64_t acked(struct fixture *f, const uint8_t dev[HUB_ID_BYTES])
{
    struct hub_device d;
    assert_int_equal(hub_store_device_get(f->hub, dev, &d), SAT_OK);
    return d.acked_seq;
}

/* ---- setup ------------------------------------------------------------------ */

/* A store in a file under a fresh directory, or (in_memory) the private
 * in-memory store ":memory:" opens; the directory is made either way, so
 * a test can look for files that should not be there. */
static int setup_store(void **state, int in_memory)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/satchel-hub-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    if (in_memory)
        snprintf(f->path, sizeof f->path, ":memory:");
    else
        snprintf(f->path, sizeof f->path, "%s/hub.db", f->dir);
    if (hub_store_open(f->path, &f->hub, NULL) != SAT_OK ||
        hub_store_device_register(f->hub, DEV_A, "north") != SAT_OK ||
        hub_store_device_register(f->hub, DEV_B, "north") != SAT_OK ||
        hub_store_device_register(f->hub, DEV_C, "south") != SAT_OK)
        return -1;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_store(state, 0);
}

static int setup_memory(void **state)
{
    return setup_store(state, 1);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    DIR *d;
    hub_store_close(f->hub);
    d = opendir(f->dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char p[512];
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- tests -------------------------------------------------------------------- */

static void test_push_creates_patient_in_pushers_team(void **state)
{
    struct fixture *f = *state;
    const satchel_FieldChange *c;
    struct hub_stats s;

    push_patient_1(f);
    assert_team(f, PAT_1, "north");
    assert_int_equal(acked(f, DEV_A), 8);

    /* B, in north, gets all of it, in hub order. */
    assert_int_equal(pull(f, DEV_B, 0, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.count, 8);
    assert_int_equal(f->res.purge_count, 0);
    assert_false(f->res.more);
    assert_int_equal(f->res.next_cursor, 8);
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(f->pulled[i].origin_seq, i + 1);
        assert_memory_equal(f->pulled[i].origin_device, DEV_A, HUB_ID_BYTES);
        assert_memory_equal(f->pulled[i].record_id, f->batch.c[i].record_id, HUB_ID_BYTES);
        assert_int_equal(f->pulled[i].field, f->batch.c[i].field);
        assert_int_equal(f->pulled[i].stamp.wall_ms, f->batch.c[i].stamp.wall_ms);
    }
    c = pulled_find(f, PAT_1, 3);
    assert_non_null(c);
    assert_int_equal(c->value.which_value, satchel_FieldValue_text_tag);
    assert_string_equal(c->value.value.text, "Ada");
    c = pulled_find(f, VISIT_1, 3);
    assert_non_null(c);
    assert_int_equal(c->value.value.integer, 1700000000000);
    c = pulled_find(f, NOTE_1, 2);
    assert_non_null(c);
    assert_int_equal(c->kind, KIND_NOTE);
    assert_int_equal(c->value.value.blob.size, HUB_ID_BYTES);
    assert_memory_equal(c->value.value.blob.bytes, PAT_1, HUB_ID_BYTES);

    /* C, in south, gets nothing, but its cursor moves past it. */
    assert_int_equal(pull(f, DEV_C, 0, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.count, 0);
    assert_int_equal(f->res.purge_count, 0);
    assert_false(f->res.more);
    assert_int_equal(f->res.next_cursor, 8);

    /* A wrote it all: nothing to pull back. */
    assert_int_equal(pull(f, DEV_A, 0, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.count, 0);

    s = stats(f);
    assert_int_equal(s.devices, 3);
    assert_int_equal(s.patients, 1);
    assert_int_equal(s.records, 3);
    assert_int_equal(s.changes, 8);
    assert_int_equal(s.feed_entries, 8);
    assert_int_equal(s.last_seq, 8);
    assert_int_equal(s.conflicts, 0);
}

static void test_replay_is_idempotent(void **state)
{
    struct fixture *f = *state;
    struct hub_push_result r;

    push_patient_1(f);
    /* The PushAck was lost: the same batch again. */
    assert_int_equal(push(f, DEV_A, &r), SAT_OK);
    assert_int_equal(r.stored, 0);
    assert_int_equal(r.skipped, 8);
    assert_int_equal(r.acked_seq, 8);
    assert_int_equal(stats(f).changes, 8);
    assert_int_equal(stats(f).last_seq, 8);

    /* A batch overlapping the acknowledged end: only the new one counts. */
    batch_start(&f->batch, 7);
    set_blob(batch_add(&f->batch, DEV_A, NOTE_1, KIND_NOTE, 2, 1006), PAT_1);
    set_blob(batch_add(&f->batch, DEV_A, NOTE_1, KIND_NOTE, 3, 1007), VISIT_1);
    add_text(&f->batch, DEV_A, PAT_1, KIND_PATIENT, 6, 1008, "1 Analytical Row");
    assert_int_equal(push(f, DEV_A, &r), SAT_OK);
    assert_int_equal(r.stored, 1);
    assert_int_equal(r.skipped, 2);
    assert_int_equal(r.acked_seq, 9);
    assert_int_equal(stats(f).changes, 9);

    /* A gap after the acknowledged sequence is refused. */
    batch_start(&f->batch, 11);
    add_text(&f->batch, DEV_A, PAT_1, KIND_PATIENT, 7, 1009, "AB1 2CD");
    assert_int_equal(push(f, DEV_A, &r), SAT_ERR_HUB_OUT_OF_ORDER);
    assert_int_equal(acked(f, DEV_A), 9);
    assert_int_equal(stats(f).changes, 9);

    /* Out-of-order sequences inside a batch, and too many changes. */
    batch_start(&f->batch, 10);
    add_text(&f->batch, DEV_A, PAT_1, KIND_PATIENT, 7, 1009, "AB1 2CD");
    add_text(&f->batch, DEV_A, PAT_1, KIND_PATIENT, 5, 1010, "1815-12-10");
    f->batch.c[1].origin_seq = 10;
    assert_int_equal(push(f, DEV_A, &r), SAT_ERR_INVALID);
    assert_int_equal(hub_store_push(f->hub, DEV_A, 10, f->batch.c, HUB_PUSH_CHANGES_MAX + 1, &r),
                     SAT_ERR_INVALID);

    /* An empty batch acknowledges what is held. */
    assert_int_equal(hub_store_push(f->hub, DEV_A, 10, f->batch.c, 0, &r), SAT_OK);
    assert_int_equal(r.acked_seq, 9);
    assert_int_equal(r.stored, 0);
}

static void test_out_of_scope_batch_stores_nothing(void **state)
{
    struct fixture *f = *state;
    struct hub_push_result r;
    struct hub_stats before;
    char team[HUB_TEAM_BYTES];

    push_patient_1(f);
    before = stats(f);

    /* C (south) creates patient 2, then touches patient 1 (north). */
    batch_start(&f->batch, 1);
    add_text(&f->batch, DEV_C, PAT_2, KIND_PATIENT, 3, 2000, "Bea");
    add_text(&f->batch, DEV_C, PAT_2, KIND_PATIENT, 4, 2001, "Fort");
    add_text(&f->batch, DEV_C, PAT_1, KIND_PATIENT, 6, 2002, "somewhere");
    assert_int_equal(push(f, DEV_C, &r), SAT_ERR_HUB_OUT_OF_SCOPE);
    assert_true(strlen(hub_store_errmsg(f->hub)) > 0);
    {
        struct hub_stats after = stats(f);
        assert_memory_equal(&after, &before, sizeof after);
    }
    assert_int_equal(hub_store_patient_team(f->hub, PAT_2, team), SAT_ERR_HUB_UNKNOWN_RECORD);
    assert_int_equal(acked(f, DEV_C), 0);

    /* A new visit of a north patient. */
    batch_start(&f->batch, 1);
    set_int(batch_add(&f->batch, DEV_C, VISIT_2, KIND_VISIT, 3, 2003), 1700000001000);
    set_blob(batch_add(&f->batch, DEV_C, VISIT_2, KIND_VISIT, 2, 2004), PAT_1);
    assert_int_equal(push(f, DEV_C, &r), SAT_ERR_HUB_OUT_OF_SCOPE);

    /* A new visit of a patient the hub never saw. */
    batch_start(&f->batch, 1);
    set_blob(batch_add(&f->batch, DEV_C, VISIT_2, KIND_VISIT, 2, 2004), PAT_9);
    assert_int_equal(push(f, DEV_C, &r), SAT_ERR_HUB_OUT_OF_SCOPE);

    /* A new visit that does not say whose it is. */
    batch_start(&f->batch, 1);
    set_int(batch_add(&f->batch, DEV_C, VISIT_2, KIND_VISIT, 3, 2003), 1700000001000);
    assert_int_equal(push(f, DEV_C, &r), SAT_ERR_HUB_OUT_OF_SCOPE);

    /* An existing visit of a north patient. */
    batch_start(&f->batch, 1);
    set_int(batch_add(&f->batch, DEV_C, VISIT_1, KIND_VISIT, 4, 2005), 1700000009000);
    assert_int_equal(push(f, DEV_C, &r), SAT_ERR_HUB_OUT_OF_SCOPE);
    {
        struct hub_stats after = stats(f);
        assert_memory_equal(&after, &before, sizeof after);
    }

    /* Patient 2 alone is fine, and stays in south. */
    batch_start(&f->batch, 1);
    add_text(&f->batch, DEV_C, PAT_2, KIND_PATIENT, 3, 2000, "Bea");
    add_text(&f->batch, DEV_C, PAT_2, KIND_PATIENT, 4, 2001, "Fort");
    assert_int_equal(push(f, DEV_C, &r), SAT_OK);
    assert_int_equal(r.stored, 2);
    assert_int_equal(r.acked_seq, 2);
    assert_team(f, PAT_2, "south");
    assert_int_equal(pull(f, DEV_B, 8, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.count, 0);
    assert_int_equal(f->res.next_cursor, 10);
}

static void test_foreign_origin_and_bad_changes_refused(void **state)
{
    struct fixture *f = *state;
    struct hub_push_result r;
    satchel_FieldChange *c;

    /* B pushes a change that A wrote. */
    batch_start(&f->batch, 1);
    add_text(&f->batch, DEV_B, PAT_2, KIND_PATIENT, 3, 3000, "Bea");
    add_text(&f->batch, DEV_A, PAT_2, KIND_PATIENT, 4, 3001, "Fort");
    assert_int_equal(push(f, DEV_B, &r), SAT_ERR_HUB_NOT_ORIGIN);
    assert_int_equal(stats(f).changes, 0);
    assert_int_equal(stats(f).patients, 0);

    /* A tombstone outside field 0. */
    batch_start(&f->batch, 1);
    c = batch_add(&f->batch, DEV_B, PAT_2, KIND_PATIENT, 3, 3000);
    c->value.which_value = satchel_FieldValue_tombstone_tag;
    c->value.value.tombstone = true;
    assert_int_equal(push(f, DEV_B, &r), SAT_ERR_HUB_BAD_CHANGE);

    /* A patient_id that is not an id. */
    batch_start(&f->batch, 1);
    add_text(&f->batch, DEV_B, VISIT_2, KIND_VISIT, 2, 3000, "patient one");
    assert_int_equal(push(f, DEV_B, &r), SAT_ERR_HUB_BAD_CHANGE);

    /* No stamp; an unknown kind. */
    batch_start(&f->batch, 1);
    add_text(&f->batch, DEV_B, PAT_2, KIND_PATIENT, 3, 3000, "Bea");
    f->batch.c[0].has_stamp = false;
    assert_int_equal(push(f, DEV_B, &r), SAT_ERR_HUB_BAD_CHANGE);
    f->batch.c[0].has_stamp = true;
    f->batch.c[0].kind = (satchel_RecordKind)9;
    assert_int_equal(push(f, DEV_B, &r), SAT_ERR_HUB_BAD_CHANGE);

    /* A record that changes kind, or moves to another patient. */
    push_patient_1(f);
    batch_start(&f->batch, 1);
    add_text(&f->batch, DEV_B, VISIT_1, KIND_TASK, 3, 3000, "a task?");
    assert_int_equal(push(f, DEV_B, &r), SAT_ERR_HUB_BAD_CHANGE);
    batch_start(&f->batch, 1);
    add_text(&f->batch, DEV_B, PAT_2, KIND_PATIENT, 3, 3000, "Bea");
    set_blob(batch_add(&f->batch, DEV_B, VISIT_1, KIND_VISIT, 2, 3001), PAT_2);
    assert_int_equal(push(f, DEV_B, &r), SAT_ERR_HUB_BAD_CHANGE);
    /* The same within one batch: a new record's next change (the hub has
     * looked the record up once) of another kind, or naming another
     * patient; and a known record's. */
    batch_start(&f->batch, 1);
    set_blob(batch_add(&f->batch, DEV_B, VISIT_2, KIND_VISIT, 2, 3000), PAT_1);
    set_int(batch_add(&f->batch, DEV_B, VISIT_2, KIND_VISIT, 3, 3001), 1700000001000);
    add_text(&f->batch, DEV_B, VISIT_2, KIND_TASK, 4, 3002, "a task?");
    assert_int_equal(push(f, DEV_B, &r), SAT_ERR_HUB_BAD_CHANGE);
    assert_non_null(strstr(hub_store_errmsg(f->hub), "change 2: the record is a kind"));
    batch_start(&f->batch, 1);
    add_text(&f->batch, DEV_B, PAT_2, KIND_PATIENT, 3, 3000, "Bea");
    set_blob(batch_add(&f->batch, DEV_B, VISIT_2, KIND_VISIT, 2, 3001), PAT_1);
    set_int(batch_add(&f->batch, DEV_B, VISIT_2, KIND_VISIT, 3, 3002), 1700000001000);
    set_blob(batch_add(&f->batch, DEV_B, VISIT_2, KIND_VISIT, 2, 3003), PAT_2);
    assert_int_equal(push(f, DEV_B, &r), SAT_ERR_HUB_BAD_CHANGE);
    assert_non_null(strstr(hub_store_errmsg(f->hub), "change 3: a record cannot move"));
    batch_start(&f->batch, 1);
    set_int(batch_add(&f->batch, DEV_B, VISIT_1, KIND_VISIT, 3, 3000), 1700000002000);
    add_text(&f->batch, DEV_B, VISIT_1, KIND_VISIT, 5, 3001, "wound care");
    set_blob(batch_add(&f->batch, DEV_B, VISIT_1, KIND_VISIT, 2, 3002), PAT_2);
    assert_int_equal(push(f, DEV_B, &r), SAT_ERR_HUB_BAD_CHANGE);
    assert_non_null(strstr(hub_store_errmsg(f->hub), "change 2: a record cannot move"));
    assert_int_equal(stats(f).changes, 8);
    assert_int_equal(stats(f).records, 3);
    assert_int_equal(acked(f, DEV_B), 0);

    /* A device the hub does not know. */
    batch_start(&f->batch, 1);
    add_text(&f->batch, DEV_X, PAT_2, KIND_PATIENT, 3, 3000, "Bea");
    assert_int_equal(push(f, DEV_X, &r), SAT_ERR_HUB_UNKNOWN_DEVICE);
    assert_int_equal(pull(f, DEV_X, 0, 1), SAT_ERR_HUB_UNKNOWN_DEVICE);
}

static void test_pull_in_batches(void **state)
{
    struct fixture *f = *state;
    struct hub_push_result r;
    uint64_t cursor = 0, expect_seq = 1;
    size_t sizes[8], rounds = 0, total = 0;

    push_patient_1(f);
    /* 48 tasks of patient 1 in three batches of 32 changes: 104 in all. */
    for (int b = 0; b < 3; b++) {
        batch_start(&f->batch, 9 + 32 * (uint64_t)b);
        for (int t = 0; t < 16; t++) {
            uint8_t task[HUB_ID_BYTES];
            char title[32];
            memset(task, 0x40, sizeof task);
            task[15] = (uint8_t)(b * 16 + t);
            snprintf(title, sizeof title, "task %d", b * 16 + t);
            set_blob(batch_add(&f->batch, DEV_A, task, KIND_TASK, 2, 5000 + 2 * 16 * b + 2 * t),
                     PAT_1);
            add_text(&f->batch, DEV_A, task, KIND_TASK, 3, 5001 + 2 * 16 * b + 2 * t, title);
        }
        assert_int_equal(push(f, DEV_A, &r), SAT_OK);
        assert_int_equal(r.stored, 32);
    }
    assert_int_equal(r.acked_seq, 104);

    /* A device that takes 32 at a time (the push size, older firmware). */
    do {
        uint64_t before = cursor;
        assert_true(rounds < 8);
        assert_int_equal(pull(f, DEV_B, cursor, PROTO_BATCH_CHANGES_MAX), SAT_OK);
        for (size_t i = 0; i < f->res.count; i++)
            assert_int_equal(f->pulled[i].origin_seq, expect_seq++);
        sizes[rounds++] = f->res.count;
        total += f->res.count;
        cursor = f->res.next_cursor;
        assert_true(cursor > before);
    } while (f->res.more);
    assert_int_equal(rounds, 4);
    assert_int_equal(sizes[0], 32);
    assert_int_equal(sizes[1], 32);
    assert_int_equal(sizes[2], 32);
    assert_int_equal(sizes[3], 8);
    assert_int_equal(total, 104);
    assert_int_equal(cursor, 104);

    /* One that takes the most gets them all at once: 104 changes of a few
     * dozen bytes are far from the byte bound. */
    assert_int_equal(pull(f, DEV_B, 0, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.count, 104);
    assert_false(f->res.more);
    assert_int_equal(f->res.next_cursor, 104);

    /* Nothing new: an empty batch at the same cursor. */
    assert_int_equal(pull(f, DEV_B, cursor, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.count, 0);
    assert_false(f->res.more);
    assert_int_equal(f->res.next_cursor, 104);

    /* Smaller pages. */
    assert_int_equal(pull(f, DEV_B, 0, 10), SAT_OK);
    assert_int_equal(f->res.count, 10);
    assert_true(f->res.more);
    assert_int_equal(f->res.next_cursor, 10);
    assert_int_equal(pull(f, DEV_B, 100, 10), SAT_OK);
    assert_int_equal(f->res.count, 4);
    assert_false(f->res.more);

    /* Limits and a cursor from the future. */
    assert_int_equal(pull(f, DEV_B, 0, 0), SAT_ERR_INVALID);
    assert_int_equal(pull(f, DEV_B, 0, HUB_PULL_CHANGES_MAX + 1), SAT_ERR_INVALID);
    assert_int_equal(pull(f, DEV_B, 105, 1), SAT_ERR_HUB_BAD_CURSOR);
}

/* Compares decoded changes with the expected ones, in order. */
struct same_changes {
    const satchel_FieldChange *want;
    size_t n;
    size_t differ;
};

static int same_change(void *arg, const satchel_FieldChange *c)
{
    struct same_changes *s = arg;
    const satchel_FieldChange *w = &s->want[s->n];
    /* Field by field: padding bytes need not match. */
    if (memcmp(c->record_id, w->record_id, HUB_ID_BYTES) != 0 || c->kind != w->kind ||
        c->field != w->field || c->value.which_value != w->value.which_value ||
        c->stamp.wall_ms != w->stamp.wall_ms || c->stamp.counter != w->stamp.counter ||
        memcmp(c->origin_device, w->origin_device, HUB_ID_BYTES) != 0 ||
        c->origin_seq != w->origin_seq)
        s->differ++;
    else if (c->value.which_value == satchel_FieldValue_text_tag &&
             strcmp(c->value.value.text, w->value.value.text) != 0)
        s->differ++;
    else if (c->value.which_value == satchel_FieldValue_blob_tag &&
             (c->value.value.blob.size != w->value.value.blob.size ||
              memcmp(c->value.value.blob.bytes, w->value.value.blob.bytes,
                     c->value.value.blob.size) != 0))
        s->differ++;
    s->n++;
    return 0;
}

/* Notes of near-maximal text: a pull batch ends by bytes, well before its
 * count, stays within PROTO_PULL_CHANGES_BYTES_MAX and so within a frame,
 * and the batches together deliver each change once, in order. */
static void test_pull_ends_batches_by_bytes(void **state)
{
    struct fixture *f = *state;
    struct hub_push_result r;
    static satchel_Frame fr;
    static uint8_t buf[PROTO_FRAME_BYTES_MAX + PROTO_FRAME_HEADER_BYTES];
    char text[sizeof f->pulled[0].value.value.text]; /* the largest a text may be */
    uint64_t cursor = 0, expect_seq = 1, pushed = 0;
    size_t rounds = 0;

    memset(text, 'n', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    push_patient_1(f);
    pushed = 8;
    /* 4 pushes of 16 notes: 64 texts of 2047 bytes, 128 changes. */
    for (int b = 0; b < 4; b++) {
        batch_start(&f->batch, pushed + 1);
        for (int n = 0; n < 16; n++) {
            uint8_t note[HUB_ID_BYTES];
            uint64_t wall = 6000 + (uint64_t)(2 * (16 * b + n));
            memset(note, 0x50, sizeof note);
            note[15] = (uint8_t)(b * 16 + n);
            set_blob(batch_add(&f->batch, DEV_A, note, KIND_NOTE, 2, wall), PAT_1);
            add_text(&f->batch, DEV_A, note, KIND_NOTE, 5, wall + 1, text);
        }
        assert_int_equal(push(f, DEV_A, &r), SAT_OK);
        assert_int_equal(r.stored, 32);
        pushed += 32;
    }

    do {
        struct proto_changes_out out = { .items = f->pulled, .count = 0 };
        size_t bytes = 0, len = 0;
        assert_true(rounds < 16);
        assert_int_equal(pull(f, DEV_B, cursor, HUB_PULL_CHANGES_MAX), SAT_OK);
        assert_true(f->res.count > 0);
        for (size_t i = 0; i < f->res.count; i++) {
            assert_int_equal(f->pulled[i].origin_seq, expect_seq++);
            bytes += proto_change_batch_bytes(&f->pulled[i]);
        }
        assert_true(bytes <= PROTO_PULL_CHANGES_BYTES_MAX);
        if (f->res.more) { /* ended by bytes: the next change did not fit */
            assert_true(f->res.count < HUB_PULL_CHANGES_MAX);
            assert_true(bytes + satchel_FieldChange_size + 4 > PROTO_PULL_CHANGES_BYTES_MAX);
        }
        /* As the hub sends it, with every purge id too: within a frame. */
        memset(&fr, 0, sizeof fr);
        fr.which_msg = satchel_Frame_pull_batch_tag;
        out.count = f->res.count;
        proto_bind_changes_encode(&fr.msg.pull_batch.changes, &out);
        fr.msg.pull_batch.next_cursor = UINT64_MAX;
        fr.msg.pull_batch.more = true;
        fr.msg.pull_batch.purge_ids_count = HUB_PULL_PURGE_MAX;
        for (pb_size_t i = 0; i < HUB_PULL_PURGE_MAX; i++)
            fr.msg.pull_batch.purge_ids[i].size = HUB_ID_BYTES;
        assert_int_equal(proto_frame_encode(&fr, buf, sizeof buf, &len), SAT_OK);
        assert_true(len <= PROTO_FRAME_BYTES_MAX + PROTO_FRAME_HEADER_BYTES);
        /* And it decodes back to the same changes. */
        {
            struct same_changes same = { f->pulled, 0, 0 };
            struct proto_changes_in in = { same_change, &same, 0 };
            memset(&fr, 0, sizeof fr);
            proto_bind_frame_changes(&fr, &in);
            assert_int_equal(proto_frame_decode(&fr, buf, len), SAT_OK);
            assert_int_equal(same.n, f->res.count);
            assert_int_equal(same.differ, 0);
        }
        cursor = f->res.next_cursor;
        rounds++;
    } while (f->res.more);
    assert_int_equal(expect_seq, pushed + 1);
    assert_int_equal(cursor, pushed);
    assert_true(rounds >= 3); /* 64 texts of 2 KiB need three 64 KiB batches */
}

static int purged(const struct fixture *f, const uint8_t id[HUB_ID_BYTES])
{
    for (size_t i = 0; i < f->res.purge_count; i++)
        if (memcmp(f->res.purge_ids[i], id, HUB_ID_BYTES) == 0)
            return 1;
    return 0;
}

static void test_reassignment_moves_and_purges_once(void **state)
{
    struct fixture *f = *state;
    struct hub_push_result r;
    const satchel_FieldChange *c;
    const satchel_Hlc to_south = { 9000, 0 }, to_north = { 9500, 0 };
    uint64_t cursor_b, cursor_c;
    struct hub_stats s;

    push_patient_1(f);
    assert_int_equal(pull(f, DEV_B, 0, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.count, 8);
    cursor_b = f->res.next_cursor;
    assert_int_equal(pull(f, DEV_C, 0, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.count, 0);
    cursor_c = f->res.next_cursor;
    assert_int_equal(cursor_c, 8);

    assert_int_equal(hub_store_patient_assign(f->hub, PAT_1, "south", &to_south), SAT_OK);
    assert_team(f, PAT_1, "south");

    /* C, whose cursor is past the patient's history, now gets all of it:
     * every field of the patient, its visit and its note, and the team. */
    assert_int_equal(pull(f, DEV_C, cursor_c, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.purge_count, 0);
    assert_false(f->res.more);
    assert_int_equal(f->res.count, 9);
    for (size_t i = 0; i < 8; i++) {
        c = pulled_find(f, f->batch.c[i].record_id, f->batch.c[i].field);
        assert_non_null(c);
        assert_int_equal(c->origin_seq, f->batch.c[i].origin_seq);
        assert_memory_equal(c->origin_device, DEV_A, HUB_ID_BYTES);
    }
    c = pulled_find(f, PAT_1, 3);
    assert_string_equal(c->value.value.text, "Ada");
    c = pulled_find(f, PAT_1, 8);
    assert_non_null(c);
    assert_string_equal(c->value.value.text, "south");
    assert_memory_equal(c->origin_device, ZERO, HUB_ID_BYTES);
    assert_int_equal(c->stamp.wall_ms, 9000);
    cursor_c = f->res.next_cursor;

    /* B is told, once, to purge the patient, its visit and its note. */
    assert_int_equal(pull(f, DEV_B, cursor_b, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.count, 0);
    assert_int_equal(f->res.purge_count, 3);
    assert_memory_equal(f->res.purge_ids[0], PAT_1, HUB_ID_BYTES);
    assert_true(purged(f, VISIT_1));
    assert_true(purged(f, NOTE_1));
    assert_false(f->res.more);
    cursor_b = f->res.next_cursor;
    assert_int_equal(pull(f, DEV_B, cursor_b, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.count, 0);
    assert_int_equal(f->res.purge_count, 0);
    /* From scratch, B sees none of the history, only the purges. */
    assert_int_equal(pull(f, DEV_B, 0, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.count, 0);
    assert_int_equal(f->res.purge_count, 3);

    /* A (north) wrote offline before it could know of the move: its pull
     * cursor is before the reassignment, so the edit is kept and goes to
     * south (north's B does not get it, below). */
    batch_start(&f->batch, 9);
    add_text(&f->batch, DEV_A, PAT_1, KIND_PATIENT, 7, 8500, "ZZ1 1ZZ");
    assert_int_equal(push(f, DEV_A, &r), SAT_OK);
    assert_int_equal(r.stored, 1);
    assert_team(f, PAT_1, "south");
    assert_int_equal(pull(f, DEV_C, cursor_c, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.count, 1);
    c = pulled_find(f, PAT_1, 7);
    assert_non_null(c);
    assert_string_equal(c->value.value.text, "ZZ1 1ZZ");
    cursor_c = f->res.next_cursor;
    /* A pulls the purge, then confirms it (its next pull's cursor): from
     * then on north may no longer write to the patient. */
    assert_int_equal(pull(f, DEV_A, 0, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.purge_count, 3);
    assert_int_equal(pull(f, DEV_A, f->res.next_cursor, HUB_PULL_CHANGES_MAX), SAT_OK);
    batch_start(&f->batch, 10);
    add_text(&f->batch, DEV_A, PAT_1, KIND_PATIENT, 6, 9100, "north's address");
    assert_int_equal(push(f, DEV_A, &r), SAT_ERR_HUB_OUT_OF_SCOPE);
    /* South may; north won't see it. */
    batch_start(&f->batch, 1);
    add_text(&f->batch, DEV_C, PAT_1, KIND_PATIENT, 6, 9200, "2 South St");
    set_blob(batch_add(&f->batch, DEV_C, VISIT_2, KIND_VISIT, 2, 9201), PAT_1);
    assert_int_equal(push(f, DEV_C, &r), SAT_OK);
    assert_int_equal(r.stored, 2);
    assert_int_equal(pull(f, DEV_B, cursor_b, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.count, 0);
    assert_int_equal(f->res.purge_count, 0);
    cursor_b = f->res.next_cursor;

    /* Assigning the team it is in changes nothing. */
    s = stats(f);
    assert_int_equal(s.reassignments, 1);
    assert_int_equal(hub_store_patient_assign(f->hub, PAT_1, "south", &to_south), SAT_OK);
    {
        struct hub_stats again = stats(f);
        assert_memory_equal(&again, &s, sizeof s);
    }

    /* Back to north: B gets the whole current state again, C purges all
     * four records (the visit south added included). */
    assert_int_equal(hub_store_patient_assign(f->hub, PAT_1, "north", &to_north), SAT_OK);
    assert_int_equal(pull(f, DEV_B, cursor_b, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.purge_count, 0);
    assert_int_equal(f->res.count, 12); /* 9 of A, 2 of C, the team field */
    c = pulled_find(f, PAT_1, 6);
    assert_non_null(c);
    assert_string_equal(c->value.value.text, "2 South St");
    c = pulled_find(f, PAT_1, 8);
    assert_string_equal(c->value.value.text, "north");
    assert_non_null(pulled_find(f, VISIT_2, 2));
    assert_int_equal(pull(f, DEV_C, cursor_c, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.count, 0);
    assert_int_equal(f->res.purge_count, 4);
    assert_true(purged(f, VISIT_2));
    assert_int_equal(stats(f).reassignments, 2);
    /* A south device that never synced gets none of the stale re-feed to
     * south, only purges (harmless: it never held the records). */
    assert_int_equal(hub_store_device_register(f->hub, DEV_X, "south"), SAT_OK);
    assert_int_equal(pull(f, DEV_X, 0, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.count, 0);
    assert_int_equal(f->res.purge_count, 4);

    /* Unknown patients and bad team names. */
    assert_int_equal(hub_store_patient_assign(f->hub, PAT_9, "south", NULL),
                     SAT_ERR_HUB_UNKNOWN_RECORD);
    assert_int_equal(hub_store_patient_assign(f->hub, PAT_1, "", NULL), SAT_ERR_INVALID);
}

static void test_conflicts_concurrent_not_sequential(void **state)
{
    struct fixture *f = *state;
    struct hub_push_result r;
    struct hub_device d;
    struct hub_conflict list[HUB_CONFLICTS_LIST_MAX];
    size_t n = 0;
    uint64_t cursor_b;

    push_patient_1(f);
    assert_int_equal(pull(f, DEV_B, 0, HUB_PULL_CHANGES_MAX), SAT_OK);
    cursor_b = f->res.next_cursor;
    assert_int_equal(hub_store_device_checkin(f->hub, DEV_B, cursor_b, &d), SAT_OK);
    assert_int_equal(d.pull_cursor, 8);

    /* 1. Family name: A writes at 3000; B, offline, at 2000. */
    batch_start(&f->batch, 9);
    add_text(&f->batch, DEV_A, PAT_1, KIND_PATIENT, 4, 3000, "Byron");
    assert_int_equal(push(f, DEV_A, &r), SAT_OK);
    assert_int_equal(r.conflicts, 0);
    batch_start(&f->batch, 1);
    add_text(&f->batch, DEV_B, PAT_1, KIND_PATIENT, 4, 2000, "King");
    assert_int_equal(push(f, DEV_B, &r), SAT_OK);
    assert_int_equal(r.conflicts, 1);

    /* 2. Address: B's clock is ahead, but it never saw A's write. */
    batch_start(&f->batch, 10);
    add_text(&f->batch, DEV_A, PAT_1, KIND_PATIENT, 6, 4000, "1 High St");
    assert_int_equal(push(f, DEV_A, &r), SAT_OK);
    batch_start(&f->batch, 2);
    add_text(&f->batch, DEV_B, PAT_1, KIND_PATIENT, 6, 4500, "2 Low Rd");
    assert_int_equal(push(f, DEV_B, &r), SAT_OK);
    assert_int_equal(r.conflicts, 1);

    /* 3. Sequential: B pulls everything, says so at its next Hello, then
     * edits the given name and the family name after A's edits. */
    do {
        assert_int_equal(pull(f, DEV_B, cursor_b, HUB_PULL_CHANGES_MAX), SAT_OK);
        cursor_b = f->res.next_cursor;
    } while (f->res.more);
    assert_int_equal(hub_store_device_checkin(f->hub, DEV_B, cursor_b, &d), SAT_OK);
    batch_start(&f->batch, 3);
    add_text(&f->batch, DEV_B, PAT_1, KIND_PATIENT, 3, 5000, "Augusta");
    add_text(&f->batch, DEV_B, PAT_1, KIND_PATIENT, 4, 5001, "King-Noel");
    assert_int_equal(push(f, DEV_B, &r), SAT_OK);
    assert_int_equal(r.stored, 2);
    assert_int_equal(r.conflicts, 0);
    /* ...and A, having pulled B's edits, edits the name again. */
    assert_int_equal(pull(f, DEV_A, 0, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(hub_store_device_checkin(f->hub, DEV_A, f->res.next_cursor, &d), SAT_OK);
    batch_start(&f->batch, 11);
    add_text(&f->batch, DEV_A, PAT_1, KIND_PATIENT, 3, 6000, "Ada Augusta");
    assert_int_equal(push(f, DEV_A, &r), SAT_OK);
    assert_int_equal(r.conflicts, 0);

    /* 4. Postcode: B wrote at 6500 while offline, its push was lost, it
     * pulled A's 7000 write, then its push got through. The stamps tell. */
    batch_start(&f->batch, 12);
    add_text(&f->batch, DEV_A, PAT_1, KIND_PATIENT, 7, 7000, "AB1 2CD");
    assert_int_equal(push(f, DEV_A, &r), SAT_OK);
    assert_int_equal(pull(f, DEV_B, cursor_b, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(hub_store_device_checkin(f->hub, DEV_B, f->res.next_cursor, &d), SAT_OK);
    batch_start(&f->batch, 5);
    add_text(&f->batch, DEV_B, PAT_1, KIND_PATIENT, 7, 6500, "ZZ9 9ZZ");
    assert_int_equal(push(f, DEV_B, &r), SAT_OK);
    assert_int_equal(r.conflicts, 1);

    assert_int_equal(stats(f).conflicts, 3);
    assert_int_equal(hub_store_conflicts_list(f->hub, 0, list, HUB_CONFLICTS_LIST_MAX, &n),
                     SAT_OK);
    assert_int_equal(n, 3);
    assert_true(list[0].id < list[1].id && list[1].id < list[2].id);

    assert_int_equal(list[0].kept.field, 4);
    assert_string_equal(list[0].kept.value.value.text, "Byron");
    assert_memory_equal(list[0].kept.origin_device, DEV_A, HUB_ID_BYTES);
    assert_string_equal(list[0].lost.value.value.text, "King");
    assert_memory_equal(list[0].lost.origin_device, DEV_B, HUB_ID_BYTES);
    assert_memory_equal(list[0].lost.record_id, PAT_1, HUB_ID_BYTES);

    assert_int_equal(list[1].kept.field, 6);
    assert_string_equal(list[1].kept.value.value.text, "2 Low Rd");
    assert_memory_equal(list[1].kept.origin_device, DEV_B, HUB_ID_BYTES);
    assert_string_equal(list[1].lost.value.value.text, "1 High St");
    assert_int_equal(list[1].lost.stamp.wall_ms, 4000);

    assert_int_equal(list[2].kept.field, 7);
    assert_string_equal(list[2].kept.value.value.text, "AB1 2CD");
    assert_string_equal(list[2].lost.value.value.text, "ZZ9 9ZZ");

    /* Paging. */
    assert_int_equal(hub_store_conflicts_list(f->hub, list[0].id, list, 1, &n), SAT_OK);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].kept.field, 6);
    assert_int_equal(hub_store_conflicts_list(f->hub, 1000, list, 1, &n), SAT_OK);
    assert_int_equal(n, 0);
    assert_int_equal(hub_store_conflicts_list(f->hub, 0, list, 0, &n), SAT_ERR_INVALID);
}

static void test_devices_registration_and_revocation(void **state)
{
    struct fixture *f = *state;
    struct hub_push_result r;
    struct hub_device d;
    char long_team[HUB_TEAM_BYTES + 1];

    assert_int_equal(hub_store_device_register(f->hub, DEV_A, "south"), SAT_ERR_EXISTS);
    assert_int_equal(hub_store_device_register(f->hub, ZERO, "north"), SAT_ERR_INVALID);
    assert_int_equal(hub_store_device_register(f->hub, DEV_X, ""), SAT_ERR_INVALID);
    memset(long_team, 'x', HUB_TEAM_BYTES);
    long_team[HUB_TEAM_BYTES] = '\0';
    assert_int_equal(hub_store_device_register(f->hub, DEV_X, long_team), SAT_ERR_INVALID);
    assert_int_equal(hub_store_device_get(f->hub, DEV_X, &d), SAT_ERR_HUB_UNKNOWN_DEVICE);

    assert_int_equal(hub_store_device_get(f->hub, DEV_C, &d), SAT_OK);
    assert_string_equal(d.team, "south");
    assert_false(d.revoked);

    assert_int_equal(hub_store_device_revoke(f->hub, DEV_C), SAT_OK);
    assert_int_equal(hub_store_device_revoke(f->hub, DEV_C), SAT_OK);
    assert_int_equal(hub_store_device_revoke(f->hub, DEV_X), SAT_ERR_HUB_UNKNOWN_DEVICE);
    assert_int_equal(hub_store_device_get(f->hub, DEV_C, &d), SAT_OK);
    assert_true(d.revoked);

    /* Its Hello learns it must wipe; it may no longer push or pull. */
    memset(&d, 0, sizeof d);
    assert_int_equal(hub_store_device_checkin(f->hub, DEV_C, 0, &d), SAT_OK);
    assert_true(d.revoked);
    batch_start(&f->batch, 1);
    add_text(&f->batch, DEV_C, PAT_2, KIND_PATIENT, 3, 2000, "Bea");
    assert_int_equal(push(f, DEV_C, &r), SAT_ERR_HUB_REVOKED);
    assert_int_equal(pull(f, DEV_C, 0, 1), SAT_ERR_HUB_REVOKED);
    assert_int_equal(stats(f).changes, 0);

    /* The others are untouched; a Hello from the future is refused. */
    assert_int_equal(hub_store_device_checkin(f->hub, DEV_B, 0, &d), SAT_OK);
    assert_false(d.revoked);
    assert_int_equal(hub_store_device_checkin(f->hub, DEV_B, 1, &d), SAT_ERR_HUB_BAD_CURSOR);
    assert_string_not_equal(sat_strerror(SAT_ERR_HUB_REVOKED), "unknown error");
    assert_string_not_equal(sat_strerror(SAT_ERR_HUB_BAD_CURSOR), "unknown error");
}

static void test_state_survives_reopen(void **state)
{
    struct fixture *f = *state;
    struct hub_push_result r;
    struct hub_stats before, after;
    struct hub_device d;
    const satchel_Hlc to_south = { 9000, 0 };
    size_t pulled_before;
    uint64_t next_before;
    FILE *junk;
    char junk_path[160];
    struct hub_store *other = NULL;

    push_patient_1(f);
    batch_start(&f->batch, 1);
    add_text(&f->batch, DEV_B, PAT_1, KIND_PATIENT, 4, 500, "Byron");
    assert_int_equal(push(f, DEV_B, &r), SAT_OK);
    assert_int_equal(r.conflicts, 1);
    assert_int_equal(hub_store_patient_assign(f->hub, PAT_1, "south", &to_south), SAT_OK);
    assert_int_equal(hub_store_device_revoke(f->hub, DEV_B), SAT_OK);
    assert_int_equal(pull(f, DEV_C, 0, HUB_PULL_CHANGES_MAX), SAT_OK);
    pulled_before = f->res.count;
    next_before = f->res.next_cursor;
    before = stats(f);

    hub_store_close(f->hub);
    f->hub = NULL;
    assert_int_equal(hub_store_open(f->path, &f->hub, NULL), SAT_OK);

    after = stats(f);
    assert_memory_equal(&after, &before, sizeof after);
    assert_team(f, PAT_1, "south");
    assert_int_equal(acked(f, DEV_A), 8);
    assert_int_equal(acked(f, DEV_B), 1);
    assert_int_equal(hub_store_device_get(f->hub, DEV_B, &d), SAT_OK);
    assert_true(d.revoked);
    assert_int_equal(hub_store_device_get(f->hub, DEV_C, &d), SAT_OK);
    assert_int_equal(d.pull_cursor, 0);
    assert_int_equal(pull(f, DEV_C, 0, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.count, pulled_before);
    assert_int_equal(f->res.next_cursor, next_before);

    /* The replay is still recognised; new changes continue the sequence. */
    build_patient_1(&f->batch);
    assert_int_equal(push(f, DEV_A, &r), SAT_OK);
    assert_int_equal(r.stored, 0);
    assert_int_equal(r.acked_seq, 8);
    batch_start(&f->batch, 1);
    add_text(&f->batch, DEV_C, PAT_1, KIND_PATIENT, 6, 9300, "3 Quay Rd");
    assert_int_equal(push(f, DEV_C, &r), SAT_OK);
    assert_int_equal(stats(f).last_seq, before.last_seq + 1);

    /* A file that is not a hub store is refused. */
    snprintf(junk_path, sizeof junk_path, "%s/junk.db", f->dir);
    junk = fopen(junk_path, "wb");
    assert_non_null(junk);
    fputs("this is not an SQLite database, not even close; it is just text.\n", junk);
    fclose(junk);
    assert_int_equal(hub_store_open(junk_path, &other, NULL), SAT_ERR_HUB_STORAGE);
    assert_null(other);
}

/* hub_store_open picks the backend from the address and says in one line
 * why it could not open one. */
static void test_open_by_address(void **state)
{
    struct fixture *f = *state;
    struct hub_store *other = NULL;
    char why[HUB_ERRMSG_BYTES];
    char uri[160];
    struct hub_device d;

    /* "sqlite:PATH" is the same store as PATH. */
    snprintf(uri, sizeof uri, "sqlite:%s", f->path);
    assert_int_equal(hub_store_open(uri, &other, why), SAT_OK);
    assert_int_equal(hub_store_device_get(other, DEV_C, &d), SAT_OK);
    assert_string_equal(d.team, "south");
    hub_store_close(other);
    other = NULL;
    /* A backend this build lacks, a directory that is not there, a newer
     * schema: refused, with the reason. */
    assert_int_equal(hub_store_open("postgresql://hub@localhost/satchel", &other, why),
                     SAT_ERR_NOT_SUPPORTED);
    assert_non_null(strstr(why, "PostgreSQL"));
    snprintf(uri, sizeof uri, "%s/no/such/dir/hub.db", f->dir);
    assert_int_equal(hub_store_open(uri, &other, why), SAT_ERR_HUB_STORAGE);
    assert_true(why[0] != '\0');
    {
        sqlite3 *db = NULL;
        snprintf(uri, sizeof uri, "%s/newer.db", f->dir);
        assert_int_equal(hub_store_open(uri, &other, why), SAT_OK);
        hub_store_close(other);
        other = NULL;
        assert_int_equal(sqlite3_open(uri, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        assert_int_equal(hub_store_open(uri, &other, why), SAT_ERR_HUB_STORAGE);
        assert_non_null(strstr(why, "schema 99"));
    }
    assert_null(other);
    assert_int_equal(hub_store_open(NULL, &other, why), SAT_ERR_INVALID);
}

/* Two handles on one file (the hub daemon and an admin tool) share the
 * hub sequence: neither reuses a number the other issued. */
static void test_two_handles_share_the_sequence(void **state)
{
    struct fixture *f = *state;
    struct hub_store *admin = NULL;
    struct hub_push_result r;
    const satchel_Hlc to_south = { 9000, 0 };

    assert_int_equal(hub_store_open(f->path, &admin, NULL), SAT_OK);
    push_patient_1(f);
    assert_int_equal(hub_store_patient_assign(admin, PAT_1, "south", &to_south), SAT_OK);
    {
        struct hub_stats a, b;
        assert_int_equal(hub_store_stats(admin, &a), SAT_OK);
        b = stats(f);
        assert_memory_equal(&a, &b, sizeof a);
    }
    batch_start(&f->batch, 1);
    add_text(&f->batch, DEV_C, PAT_1, KIND_PATIENT, 6, 9300, "3 Quay Rd");
    assert_int_equal(push(f, DEV_C, &r), SAT_OK);
    assert_int_equal(pull(f, DEV_C, 0, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.next_cursor, stats(f).last_seq);
    hub_store_close(admin);
}

/* ":memory:" opens a store of its own each time (the simulator's hub):
 * what one holds the other does not, nothing lands on disk, and a refused
 * batch leaves it as it was (its journal is in memory, but it is one). */
static void test_in_memory_stores_are_separate(void **state)
{
    struct fixture *f = *state;
    struct hub_store *other = NULL;
    struct hub_stats a, b;
    struct hub_device d;
    char cwd_probe[64];
    FILE *probe;

    push_patient_1(f);
    a = stats(f);
    assert_true(a.last_seq > 0);
    assert_int_equal(hub_store_open(":memory:", &other, NULL), SAT_OK);
    assert_int_equal(hub_store_stats(other, &b), SAT_OK);
    assert_int_equal(b.last_seq, 0);
    assert_int_equal(hub_store_device_get(other, DEV_A, &d), SAT_ERR_HUB_UNKNOWN_DEVICE);
    assert_int_equal(hub_store_device_register(other, DEV_A, "south"), SAT_OK);
    hub_store_close(other);
    assert_int_equal(hub_store_device_get(f->hub, DEV_A, &d), SAT_OK);
    assert_string_equal(d.team, "north");
    b = stats(f);
    assert_memory_equal(&a, &b, sizeof a);
    /* No file by the store's name (or its journal's) where it ran. */
    for (int i = 0; i < 3; i++) {
        static const char *const suffix[] = { "", "-journal", "-wal" };
        snprintf(cwd_probe, sizeof cwd_probe, "satchel-hub%s", suffix[i]);
        probe = fopen(cwd_probe, "rb");
        assert_null(probe);
    }
}

/* A reassignment purges every kind of record the patient has from the old
 * team (the patient, its visits, observations, notes and tasks, each once)
 * and re-feeds every field of each of them to the new team. */
static void test_reassignment_purges_and_refeeds_every_kind(void **state)
{
    struct fixture *f = *state;
    struct hub_push_result r;
    const uint8_t *records[] = { PAT_1, VISIT_1, OBS_1, NOTE_1, TASK_1 };
    const size_t nrecords = sizeof records / sizeof records[0];
    uint64_t cursor_b, cursor_c;
    size_t pushed = 0;

    push_patient_1(f);
    pushed += f->batch.n;
    batch_start(&f->batch, 9);
    set_blob(batch_add(&f->batch, DEV_A, OBS_1, KIND_OBS, 2, 1100), PAT_1);
    set_int(batch_add(&f->batch, DEV_A, OBS_1, KIND_OBS, 501, 1101), 22);
    set_blob(batch_add(&f->batch, DEV_A, TASK_1, KIND_TASK, 2, 1102), PAT_1);
    add_text(&f->batch, DEV_A, TASK_1, KIND_TASK, 3, 1103, "phone GP");
    assert_int_equal(push(f, DEV_A, &r), SAT_OK);
    assert_int_equal(r.stored, 4);
    pushed += f->batch.n;
    assert_int_equal(pull(f, DEV_B, 0, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.count, pushed);
    cursor_b = f->res.next_cursor;
    assert_int_equal(pull(f, DEV_C, 0, HUB_PULL_CHANGES_MAX), SAT_OK);
    cursor_c = f->res.next_cursor;

    assert_int_equal(hub_store_patient_assign(f->hub, PAT_1, "south", NULL), SAT_OK);
    assert_int_equal(pull(f, DEV_B, cursor_b, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.count, 0);
    assert_int_equal(f->res.purge_count, nrecords);
    for (size_t i = 0; i < nrecords; i++)
        assert_true(purged(f, records[i]));
    assert_int_equal(pull(f, DEV_C, cursor_c, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(f->res.purge_count, 0);
    assert_int_equal(f->res.count, pushed); /* no stamp given: no team field */
    assert_non_null(pulled_find(f, OBS_1, 2));
    assert_non_null(pulled_find(f, OBS_1, 501));
    assert_non_null(pulled_find(f, TASK_1, 2));
    assert_non_null(pulled_find(f, TASK_1, 3));
    assert_non_null(pulled_find(f, VISIT_1, 3));
    assert_non_null(pulled_find(f, NOTE_1, 5));
}

/* Two devices write one field with exactly the same stamp. The hub keeps
 * the write of the higher origin (the merge rule every tablet applies),
 * whichever reaches it first: in the conflicts it records, and in what it
 * re-feeds to the patient's new team. */
static void test_equal_stamps_tie_break_on_origin(void **state)
{
    struct fixture *f = *state;
    struct hub_push_result r;
    struct hub_device d;
    struct hub_conflict list[HUB_CONFLICTS_LIST_MAX];
    const satchel_FieldChange *c;
    size_t n = 0;
    uint64_t cursor_c;

    _Static_assert(0xB2 > 0xA1, "B's id is the higher");
    push_patient_1(f);
    assert_int_equal(pull(f, DEV_B, 0, HUB_PULL_CHANGES_MAX), SAT_OK);
    assert_int_equal(hub_store_device_checkin(f->hub, DEV_B, f->res.next_cursor, &d), SAT_OK);

    /* Family name: A's write reaches the hub first. */
    batch_start(&f->batch, 9);
    add_text(&f->batch, DEV_A, PAT_1, KIND_PATIENT, 4, 3000, "A's name");
    f->batch.c[0].stamp.counter = 5;
    assert_int_equal(push(f, DEV_A, &r), SAT_OK);
    batch_start(&f->batch, 1);
    add_text(&f->batch, DEV_B, PAT_1, KIND_PATIENT, 4, 3000, "B's name");
    f->batch.c[0].stamp.counter = 5;
    assert_int_equal(push(f, DEV_B, &r), SAT_OK);
    assert_int_equal(r.conflicts, 1);
    /* Address: B's write reaches the hub first. */
    batch_start(&f->batch, 2);
    add_text(&f->batch, DEV_B, PAT_1, KIND_PATIENT, 6, 3000, "B's address");
    f->batch.c[0].stamp.counter = 5;
    assert_int_equal(push(f, DEV_B, &r), SAT_OK);
    batch_start(&f->batch, 10);
    add_text(&f->batch, DEV_A, PAT_1, KIND_PATIENT, 6, 3000, "A's address");
    f->batch.c[0].stamp.counter = 5;
    assert_int_equal(push(f, DEV_A, &r), SAT_OK);
    assert_int_equal(r.conflicts, 1);

    assert_int_equal(hub_store_conflicts_list(f->hub, 0, list, HUB_CONFLICTS_LIST_MAX, &n),
                     SAT_OK);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        assert_memory_equal(list[i].kept.origin_device, DEV_B, HUB_ID_BYTES);
        assert_memory_equal(list[i].lost.origin_device, DEV_A, HUB_ID_BYTES);
    }
    assert_string_equal(list[0].kept.value.value.text, "B's name");
    assert_string_equal(list[1].kept.value.value.text, "B's address");

    /* South, whose cursor is past the patient's history, gets the winners. */
    assert_int_equal(pull(f, DEV_C, 0, HUB_PULL_CHANGES_MAX), SAT_OK);
    cursor_c = f->res.next_cursor;
    assert_int_equal(hub_store_patient_assign(f->hub, PAT_1, "south", NULL), SAT_OK);
    assert_int_equal(pull(f, DEV_C, cursor_c, HUB_PULL_CHANGES_MAX), SAT_OK);
    c = pulled_find(f, PAT_1, 4);
    assert_non_null(c);
    assert_string_equal(c->value.value.text, "B's name");
    c = pulled_find(f, PAT_1, 6);
    assert_non_null(c);
    assert_string_equal(c->value.value.text, "B's address");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_push_creates_patient_in_pushers_team, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_replay_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_scope_batch_stores_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_origin_and_bad_changes_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pull_in_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_ends_batches_by_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reassignment_moves_and_purges_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conflicts_concurrent_not_sequential, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reassignment_purges_and_refeeds_every_kind, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_equal_stamps_tie_break_on_origin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_devices_registration_and_revocation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_state_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_handles_share_the_sequence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_by_address, setup, teardown),
        /* The same rules hold in the simulator's in-memory hub store. */
        cmocka_unit_test_setup_teardown(test_push_creates_patient_in_pushers_team, setup_memory,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_replay_is_idempotent, setup_memory, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_scope_batch_stores_nothing, setup_memory,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_foreign_origin_and_bad_changes_refused,
                                        setup_memory, teardown),
        cmocka_unit_test_setup_teardown(test_pull_in_batches, setup_memory, teardown),
        cmocka_unit_test_setup_teardown(test_reassignment_moves_and_purges_once, setup_memory,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_in_memory_stores_are_separate, setup_memory,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
