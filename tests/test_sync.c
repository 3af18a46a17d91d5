/*
 * test_sync.c - device and hub sessions end to end, over in-memory pipes
 * (the TLS layer has its own tests): three tablets and a hub converge,
 * conflicts surface on both sides, caseload scoping and purge on
 * reassignment, revocation wipes, bad input is refused with an Error and
 * changes nothing, and a link cut after every frame of a session loses
 * nothing and duplicates nothing.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <unistd.h>

#include "hub_session.h"
#include "store_fixture.h"
#include "sync_glue.h"

/* ---- an in-memory duplex link, with a cut ------------------------------- */

#define PIPE_BYTES (256u * 1024u)

struct pipe {
    uint8_t buf[PIPE_BYTES];
    size_t head; /* read position */
    size_t len;
};

struct link {
    struct pipe to_hub;
    struct pipe to_dev;
    uint64_t frames_to_cut; /* 0: never; else cut after this many frames total */
    uint64_t frames;        /* frames the hub has received + sent */
    uint64_t dev_bytes_to_cut; /* 0: never; else cut once the device read this many */
    uint64_t dev_bytes;        /* bytes the device has read */
    int cut;                /* the link broke: both ends see a reset */
    int dev_closed;         /* the device closed cleanly after its session */
};

struct end {
    struct link *l;
    int hub_side;
};

static int pipe_send(struct end *e, const void *buf, size_t len, size_t *sent)
{
    struct pipe *p = e->hub_side ? &e->l->to_dev : &e->l->to_hub;
    size_t room;
    if (e->l->cut)
        return SAT_ERR_RESET;
    if (p->head > 0 && p->head == p->len)
        p->head = p->len = 0;
    room = PIPE_BYTES - p->len;
    if (room == 0)
        return SAT_ERR_WOULD_BLOCK;
    if (len > room)
        len = room;
    memcpy(p->buf + p->len, buf, len);
    p->len += len;
    *sent = len;
    return SAT_OK;
}

static int pipe_recv(struct end *e, void *buf, size_t len, size_t *got)
{
    struct pipe *p = e->hub_side ? &e->l->to_hub : &e->l->to_dev;
    size_t avail = p->len - p->head;
    if (!e->hub_side && e->l->dev_bytes_to_cut) {
        /* The link breaks at that byte of what the device reads. */
        uint64_t left = e->l->dev_bytes_to_cut - e->l->dev_bytes;
        if (left == 0)
            e->l->cut = 1;
        else if (avail > left)
            avail = (size_t)left;
    }
    if (e->l->cut)
        return SAT_ERR_RESET;
    if (avail == 0)
        return e->hub_side && e->l->dev_closed ? SAT_ERR_CLOSED : SAT_ERR_WOULD_BLOCK;
    if (len > avail)
        len = avail;
    if (!e->hub_side)
        e->l->dev_bytes += len;
    memcpy(buf, p->buf + p->head, len);
    p->head += len;
    *got = len;
    return SAT_OK;
}

static int io_send(void *arg, const void *buf, size_t len, size_t *sent)
{
    return pipe_send(arg, buf, len, sent);
}

static int io_recv(void *arg, void *buf, size_t len, size_t *got)
{
    return pipe_recv(arg, buf, len, got);
}

/* ---- fixture: a hub and three tablets ------------------------------------- */

#define DEVICES 3

struct tablet {
    struct sim_hal *sim;
    struct keys k;
    struct store *s;
    struct sync_glue glue;
    struct sync_replica replica;
    uint8_t id[HUB_ID_BYTES];
};

struct world {
    char dir[64];
    struct hub_store *hub;
    struct tablet t[DEVICES];
    struct sync_device dev_sess;
    struct hub_session hub_sess;
    struct link link;
    int64_t hub_clock;
};

static int64_t hub_clock(void *arg)
{
    return *(int64_t *)arg;
}

static int open_tablet(struct tablet *t, uint64_t seed)
{
    if (sim_hal_new(&t->sim, seed, FIXTURE_WALL_START_MS) != SAT_OK)
        return -1;
    fixture_keys(&t->k, sim_hal_hal(t->sim), seed);
    if (store_open(sim_hal_hal(t->sim), &t->k, &t->s, NULL) != SAT_OK)
        return -1;
    t->glue.hal = sim_hal_hal(t->sim);
    t->glue.keys = &t->k;
    t->glue.store = &t->s;
    sync_glue_replica(&t->glue, &t->replica);
    {
        struct store_id dev;
        store_device_id(t->s, &dev);
        memcpy(t->id, dev.b, HUB_ID_BYTES);
    }
    return 0;
}

static int setup(void **state)
{
    static const char *const teams[DEVICES] = { "north", "north", "south" };
    struct world *w = calloc(1, sizeof *w);
    char path[128];
    if (!w)
        return -1;
    snprintf(w->dir, sizeof w->dir, "/tmp/satchel-sync-XXXXXX");
    if (!mkdtemp(w->dir))
        return -1;
    snprintf(path, sizeof path, "%s/hub.db", w->dir);
    if (hub_store_open(path, &w->hub, NULL) != SAT_OK)
        return -1;
    w->hub_clock = FIXTURE_WALL_START_MS;
    for (int i = 0; i < DEVICES; i++) {
        if (open_tablet(&w->t[i], 100 + (uint64_t)i) != 0 ||
            hub_store_device_register(w->hub, w->t[i].id, teams[i]) != SAT_OK)
            return -1;
    }
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    struct world *w = *state;
    char path[128];
    for (int i = 0; i < DEVICES; i++) {
        store_close(w->t[i].s);
        sim_hal_free(w->t[i].sim);
    }
    hub_store_close(w->hub);
    snprintf(path, sizeof path, "%s/hub.db", w->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/hub.db-journal", w->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/hub.db-wal", w->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/hub.db-shm", w->dir);
    unlink(path);
    rmdir(w->dir);
    free(w);
    return 0;
}

struct result {
    int dev;  /* device session's final code */
    int hub;  /* hub session's final code */
};

/* Runs one session between tablet i and the hub until both have finished
 * (or the link is cut). cut_after: frames before the link breaks, 0 never. */
static struct result sync_tablet_cut(struct world *w, int i, uint64_t cut_after,
                                     uint64_t cut_at_byte);

static struct result sync_tablet(struct world *w, int i, uint64_t cut_after)
{
    return sync_tablet_cut(w, i, cut_after, 0);
}

/* The same, and cut_at_byte (0: never): the link breaks once the device
 * has read that many bytes, wherever that falls in a frame. */
static struct result sync_tablet_cut(struct world *w, int i, uint64_t cut_after,
                                     uint64_t cut_at_byte)
{
    struct end dev_end = { &w->link, 0 };
    struct end hub_end = { &w->link, 1 };
    struct frame_io dio = { io_send, io_recv, &dev_end };
    struct frame_io hio = { io_send, io_recv, &hub_end };
    struct result r = { SAT_ERR_WOULD_BLOCK, SAT_ERR_WOULD_BLOCK };
    uint64_t last_requests = 0;
    memset(&w->link, 0, sizeof w->link);
    w->link.frames_to_cut = cut_after;
    w->link.dev_bytes_to_cut = cut_at_byte;
    sync_device_init(&w->dev_sess, &dio, &w->t[i].replica, w->t[i].id, "test");
    hub_session_init(&w->hub_sess, &hio, w->hub, w->t[i].id, hub_clock, &w->hub_clock);
    for (int round = 0; round < 100000; round++) {
        if (r.dev == SAT_ERR_WOULD_BLOCK) {
            r.dev = sync_device_step(&w->dev_sess);
            if (r.dev == SAT_OK)
                w->link.dev_closed = 1;
            else if (r.dev != SAT_ERR_WOULD_BLOCK)
                w->link.cut = 1; /* the device hangs up on failure */
        }
        if (r.hub == SAT_ERR_WOULD_BLOCK)
            r.hub = hub_session_step(&w->hub_sess);
        /* Count request frames to place the cut between them. */
        if (w->hub_sess.stats.requests != last_requests) {
            last_requests = w->hub_sess.stats.requests;
            if (w->link.frames_to_cut && last_requests >= w->link.frames_to_cut)
                w->link.cut = 1;
        }
        if (r.dev != SAT_ERR_WOULD_BLOCK && r.hub != SAT_ERR_WOULD_BLOCK)
            break;
    }
    return r;
}

static void sync_ok(struct world *w, int i)
{
    struct result r = sync_tablet(w, i, 0);
    if (r.dev != SAT_OK)
        fail_msg("tablet %d: sync failed: %s", i, w->dev_sess.errmsg);
    assert_int_equal(r.hub, SAT_OK);
}

static void hash_of(struct world *w, int i, uint8_t out[32])
{
    assert_int_equal(store_content_hash(w->t[i].s, out), SAT_OK);
}

static struct store_id add_patient(struct world *w, int i, uint64_t seed, const char *team)
{
    struct store_patient p;
    uint64_t rng = seed;
    fixture_patient(&rng, &p, "");
    snprintf(p.team, sizeof p.team, "%s", team);
    assert_int_equal(store_patient_add(w->t[i].s, &p), SAT_OK);
    return p.id;
}

static void add_obs_to(struct store *s, const struct store_id *patient, uint64_t seed)
{
    struct store_obs o;
    uint64_t rng = seed;
    memset(&o, 0, sizeof o);
    o.patient_id = *patient;
    fixture_vitals(&rng, &o.vitals);
    assert_int_equal(store_obs_add(s, &o), SAT_OK);
}

static void add_obs(struct world *w, int i, const struct store_id *patient, uint64_t seed)
{
    add_obs_to(w->t[i].s, patient, seed);
}

static int count_obs_cb(void *arg, const struct store_obs *o)
{
    (void)o;
    (*(unsigned *)arg)++;
    return 0;
}

static unsigned obs_count(struct world *w, int i, const struct store_id *patient)
{
    unsigned n = 0;
    assert_int_equal(store_obs_list(w->t[i].s, patient, count_obs_cb, &n), SAT_OK);
    return n;
}

static int has_patient(struct world *w, int i, const struct store_id *id)
{
    struct store_patient p;
    return store_patient_get(w->t[i].s, id, &p) == SAT_OK && !p.deleted;
}

/* ---- tests ------------------------------------------------------------- */

static void test_team_converges_and_other_team_sees_nothing(void **state)
{
    struct world *w = *state;
    uint8_t ha[32];
    uint8_t hb[32];
    struct store_id p1 = add_patient(w, 0, 1, "north");
    struct store_id p2 = add_patient(w, 1, 2, "north");
    for (int k = 0; k < 40; k++) /* more than one batch each way */
        add_obs(w, 0, &p1, 10 + (uint64_t)k);
    add_obs(w, 1, &p2, 99);
    sync_ok(w, 0);
    sync_ok(w, 1);
    sync_ok(w, 0);
    sync_ok(w, 2);
    hash_of(w, 0, ha);
    hash_of(w, 1, hb);
    assert_memory_equal(ha, hb, sizeof ha);
    assert_true(has_patient(w, 1, &p1));
    assert_true(has_patient(w, 0, &p2));
    assert_false(has_patient(w, 2, &p1));
    assert_false(has_patient(w, 2, &p2));
    assert_true(w->dev_sess.stats.round_trips >= 2);

    /* A sync with nothing new moves nothing. */
    sync_ok(w, 1);
    assert_int_equal(w->dev_sess.stats.pushed, 0);
    assert_int_equal(w->dev_sess.stats.pulled, 0);
}

static void set_address(struct world *w, int i, const struct store_id *id, const char *a)
{
    struct store_patient p;
    assert_int_equal(store_patient_get(w->t[i].s, id, &p), SAT_OK);
    snprintf(p.address, sizeof p.address, "%s", a);
    assert_int_equal(store_patient_update(w->t[i].s, &p), SAT_OK);
}

static int count_cb(void *arg, const struct store_conflict *c)
{
    (void)c;
    (*(int *)arg)++;
    return 0;
}

static void test_same_field_conflict_surfaces_on_both_sides(void **state)
{
    struct world *w = *state;
    uint8_t ha[32];
    uint8_t hb[32];
    int na = 0;
    int nb = 0;
    struct hub_conflict hc[4];
    size_t nh = 0;
    struct store_id p = add_patient(w, 0, 3, "north");
    sync_ok(w, 0);
    sync_ok(w, 1);
    sim_hal_advance_ms(w->t[0].sim, 1000);
    sim_hal_advance_ms(w->t[1].sim, 2000);
    set_address(w, 0, &p, "A's address");
    set_address(w, 1, &p, "B's address");
    sync_ok(w, 0);
    sync_ok(w, 1);
    sync_ok(w, 0);
    assert_int_equal(store_conflicts(w->t[0].s, count_cb, &na), SAT_OK);
    assert_int_equal(store_conflicts(w->t[1].s, count_cb, &nb), SAT_OK);
    assert_int_equal(na, 1);
    assert_int_equal(nb, 1);
    assert_int_equal(hub_store_conflicts_list(w->hub, 0, hc, 4, &nh), SAT_OK);
    assert_int_equal(nh, 1);
    hash_of(w, 0, ha);
    hash_of(w, 1, hb);
    assert_memory_equal(ha, hb, sizeof ha);
}

static void test_reassignment_purges_old_team(void **state)
{
    struct world *w = *state;
    struct store_id p = add_patient(w, 0, 4, "north");
    add_obs(w, 0, &p, 5);
    sync_ok(w, 0);
    sync_ok(w, 1);
    assert_true(has_patient(w, 1, &p));
    assert_int_equal(hub_store_patient_assign(w->hub, p.b, "south", NULL), SAT_OK);
    sync_ok(w, 1);
    assert_false(has_patient(w, 1, &p));
    assert_true(w->dev_sess.stats.purged >= 1);
    sync_ok(w, 2);
    assert_true(has_patient(w, 2, &p));
    /* The purge is delivered once. */
    sync_ok(w, 1);
    assert_int_equal(w->dev_sess.stats.purged, 0);
}

static void test_revoked_tablet_wipes_itself(void **state)
{
    struct world *w = *state;
    struct result r;
    add_patient(w, 2, 6, "south");
    sync_ok(w, 2);
    assert_int_equal(hub_store_device_revoke(w->hub, w->t[2].id), SAT_OK);
    r = sync_tablet(w, 2, 0);
    assert_int_equal(r.dev, SAT_ERR_SYNC_REVOKED);
    assert_null(w->t[2].s); /* the glue closed and wiped the store */
    {
        uint8_t *bytes = NULL;
        size_t len = 0;
        assert_int_equal(sim_hal_file_bytes(w->t[2].sim, STORE_DB_NAME, &bytes, &len),
                         SAT_ERR_NOT_FOUND);
    }
    assert_int_equal(w->t[2].k.unlocked, 0);
    /* Nothing left to open: even the right key finds no caseload. */
    {
        struct hub_device d;
        assert_int_equal(hub_store_device_get(w->hub, w->t[2].id, &d), SAT_OK);
        assert_true(d.revoked);
    }
}

/* Sends raw frames to a fresh hub session and returns what it answered. */
static satchel_ErrorCode hub_answer(struct world *w, int i, const satchel_Frame *frames,
                                    size_t n, const uint8_t *raw, size_t raw_len)
{
    struct end dev_end = { &w->link, 0 };
    struct end hub_end = { &w->link, 1 };
    struct frame_io dio = { io_send, io_recv, &dev_end };
    struct frame_io hio = { io_send, io_recv, &hub_end };
    struct frame_writer *wr = malloc(sizeof *wr);
    struct frame_reader *rd = malloc(sizeof *rd);
    satchel_ErrorCode code = satchel_ErrorCode_ERROR_CODE_UNSPECIFIED;
    int ret = SAT_ERR_WOULD_BLOCK;
    memset(&w->link, 0, sizeof w->link);
    hub_session_init(&w->hub_sess, &hio, w->hub, w->t[i].id, hub_clock, &w->hub_clock);
    frame_writer_init(wr);
    frame_reader_init(rd);
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(frame_writer_put(wr, &frames[k]), SAT_OK);
        assert_int_equal(frame_writer_flush(wr, &dio), SAT_OK);
    }
    if (raw) {
        size_t sent = 0;
        assert_int_equal(io_send(&dev_end, raw, raw_len, &sent), SAT_OK);
    }
    for (int round = 0; round < 100 && ret == SAT_ERR_WOULD_BLOCK; round++)
        ret = hub_session_step(&w->hub_sess);
    assert_int_not_equal(ret, SAT_OK);
    /* Read every answer; the last one must be the Error. */
    for (;;) {
        const uint8_t *buf = NULL;
        size_t len = 0;
        satchel_Frame f;
        if (frame_read(rd, &dio, &buf, &len) != SAT_OK)
            break;
        memset(&f, 0, sizeof f);
        assert_int_equal(proto_frame_decode(&f, buf, len), SAT_OK);
        if (f.which_msg == satchel_Frame_error_tag) {
            code = f.msg.error.code;
            assert_true(f.msg.error.reason[0] != '\0');
        }
    }
    free(wr);
    free(rd);
    return code;
}

static void hello_for(struct world *w, int i, satchel_Frame *f)
{
    memset(f, 0, sizeof *f);
    f->which_msg = satchel_Frame_hello_tag;
    f->msg.hello.protocol_version = PROTO_VERSION;
    memcpy(f->msg.hello.device_id, w->t[i].id, HUB_ID_BYTES);
}

struct collect {
    satchel_FieldChange c[PROTO_BATCH_CHANGES_MAX];
    size_t n;
};

static int collect_cb(void *arg, const struct store_change *c);

static void test_bad_input_is_refused_and_changes_nothing(void **state)
{
    struct world *w = *state;
    struct hub_stats before;
    struct hub_stats after;
    satchel_Frame f[3];
    struct store_id p = add_patient(w, 0, 7, "north");
    struct proto_changes_out out;
    static uint8_t oversize[4] = { 0x7f, 0xff, 0xff, 0xff };
    static uint8_t garbage[] = { 0, 0, 0, 3, 0xff, 0xff, 0xff };
    sync_ok(w, 0);
    assert_int_equal(hub_store_stats(w->hub, &before), SAT_OK);

    /* Oversize and malformed frames, a frame before Hello, an unknown one. */
    assert_int_equal(hub_answer(w, 0, NULL, 0, oversize, sizeof oversize),
                     satchel_ErrorCode_ERROR_CODE_FRAME_TOO_LARGE);
    assert_int_equal(hub_answer(w, 0, NULL, 0, garbage, sizeof garbage),
                     satchel_ErrorCode_ERROR_CODE_MALFORMED);
    memset(&f[0], 0, sizeof f[0]);
    f[0].which_msg = satchel_Frame_pull_request_tag;
    assert_int_equal(hub_answer(w, 0, f, 1, NULL, 0), satchel_ErrorCode_ERROR_CODE_OUT_OF_ORDER);
    hello_for(w, 0, &f[0]);
    memset(&f[1], 0, sizeof f[1]); /* which_msg 0: no known message */
    assert_int_equal(hub_answer(w, 0, f, 2, NULL, 0),
                     satchel_ErrorCode_ERROR_CODE_UNKNOWN_MESSAGE);
    /* A Hello that names another device than the certificate. */
    hello_for(w, 1, &f[0]);
    assert_int_equal(hub_answer(w, 0, f, 1, NULL, 0), satchel_ErrorCode_ERROR_CODE_MALFORMED);

    /* A replayed batch: tablet 0's first changes again, already acked. */
    {
        struct collect *col = calloc(1, sizeof *col);
        assert_int_equal(store_changes(w->t[0].s, 0, PROTO_BATCH_CHANGES_MAX, collect_cb, col),
                         SAT_OK);
        hello_for(w, 0, &f[0]);
        memset(&f[1], 0, sizeof f[1]);
        f[1].which_msg = satchel_Frame_push_batch_tag;
        f[1].msg.push_batch.first_seq = col->c[0].origin_seq;
        out.items = col->c;
        out.count = col->n;
        proto_bind_changes_encode(&f[1].msg.push_batch.changes, &out);
        assert_int_equal(hub_answer(w, 0, f, 2, NULL, 0),
                         satchel_ErrorCode_ERROR_CODE_OUT_OF_ORDER);

        /* A change to a south patient from a north tablet: out of scope. */
        {
            struct store_id south = add_patient(w, 2, 8, "south");
            struct store_sync_state st;
            sync_ok(w, 2);
            set_address(w, 0, &p, "x"); /* one more own change to push */
            col->n = 0;
            assert_int_equal(store_sync_state(w->t[0].s, &st), SAT_OK);
            assert_int_equal(store_changes(w->t[0].s, st.push_acked, 1, collect_cb, col), SAT_OK);
            assert_int_equal(col->n, 1);
            memcpy(col->c[0].record_id, south.b, 16);
            hello_for(w, 0, &f[0]);
            f[1].msg.push_batch.first_seq = col->c[0].origin_seq;
            out.count = 1;
            assert_int_equal(hub_store_stats(w->hub, &before), SAT_OK);
            assert_int_equal(hub_answer(w, 0, f, 2, NULL, 0),
                             satchel_ErrorCode_ERROR_CODE_OUT_OF_SCOPE);
        }
        free(col);
    }
    assert_int_equal(hub_store_stats(w->hub, &after), SAT_OK);
    assert_int_equal(after.changes, before.changes);
    assert_int_equal(after.last_seq, before.last_seq);
    /* The honest tablet still syncs afterwards. */
    sync_ok(w, 0);
}

static int collect_cb(void *arg, const struct store_change *c)
{
    struct collect *col = arg;
    struct sync_glue g;
    (void)g;
    if (col->n >= PROTO_BATCH_CHANGES_MAX)
        return 1;
    /* Re-use the glue's conversion through a one-change replica read. */
    col->n++;
    memset(&col->c[col->n - 1], 0, sizeof col->c[0]);
    memcpy(col->c[col->n - 1].record_id, c->record_id.b, 16);
    col->c[col->n - 1].kind = (satchel_RecordKind)c->kind;
    col->c[col->n - 1].field = c->field;
    col->c[col->n - 1].has_value = true;
    col->c[col->n - 1].value.which_value = (pb_size_t)c->value_type;
    if (c->value_type == satchel_FieldValue_text_tag)
        snprintf(col->c[col->n - 1].value.value.text, sizeof col->c[0].value.value.text, "%s",
                 c->value_text ? c->value_text : "");
    else
        col->c[col->n - 1].value.value.integer = c->value_int;
    col->c[col->n - 1].has_stamp = true;
    col->c[col->n - 1].stamp.wall_ms = c->hlc_wall_ms;
    col->c[col->n - 1].stamp.counter = c->hlc_counter;
    memcpy(col->c[col->n - 1].origin_device, c->origin_device.b, 16);
    col->c[col->n - 1].origin_seq = c->origin_seq;
    return 0;
}

/* A link cut after every request frame of a session, each followed by a
 * resume: in the end everything arrived once. */
static void test_cut_after_every_frame_then_resume(void **state)
{
    struct world *w = *state;
    uint8_t ha[32];
    uint8_t hb[32];
    struct hub_stats st;
    uint64_t own_changes = 0;
    struct store_id p = add_patient(w, 0, 9, "north");
    for (int k = 0; k < 70; k++)
        add_obs(w, 0, &p, 200 + (uint64_t)k);
    {
        struct store_sync_state ss;
        assert_int_equal(store_sync_state(w->t[0].s, &ss), SAT_OK);
        own_changes = ss.last_seq;
    }
    /* Each attempt is cut one frame later than the last. */
    int cut_sessions = 0;
    for (uint64_t cut = 1; cut < 20; cut++) {
        struct result r = sync_tablet(w, 0, cut);
        if (r.dev == SAT_OK)
            break;
        assert_int_not_equal(r.dev, SAT_ERR_SYNC_REVOKED);
        cut_sessions++;
    }
    assert_true(cut_sessions >= 5); /* the cuts really cut sessions short */
    sync_ok(w, 0);
    for (uint64_t cut = 1; cut < 20; cut++) {
        struct result r = sync_tablet(w, 1, cut);
        if (r.dev == SAT_OK)
            break;
    }
    sync_ok(w, 1);
    hash_of(w, 0, ha);
    hash_of(w, 1, hb);
    assert_memory_equal(ha, hb, sizeof ha);
    assert_int_equal(hub_store_stats(w->hub, &st), SAT_OK);
    assert_int_equal(st.changes, own_changes); /* nothing lost, nothing twice */
}

/* ---- pull batches: large, byte-bounded, applied as decoded ---------------- */

/* Tablet i's replica seen through counters, with a fault: apply_changes
 * fails from its fail_at-th call on (0: never). */
struct probe {
    struct sync_replica real;
    uint64_t commits;   /* batches made durable */
    uint64_t aborts;
    unsigned calls;     /* apply_changes calls */
    unsigned fail_at;
    /* If set: the nurse records an observation of this patient as the
     * first pulled batch begins (mid-session, after the push). */
    struct store *nurse_store;
    const struct store_id *nurse_patient;
};

static void add_obs_to(struct store *s, const struct store_id *patient, uint64_t seed);

static int probe_state(void *arg, uint64_t *cursor, uint64_t *acked)
{
    struct probe *p = arg;
    return p->real.state(p->real.arg, cursor, acked);
}

static int probe_changes(void *arg, uint64_t after, size_t max, satchel_FieldChange *out,
                         size_t *n)
{
    struct probe *p = arg;
    return p->real.changes(p->real.arg, after, max, out, n);
}

static int probe_set_push_acked(void *arg, uint64_t acked)
{
    struct probe *p = arg;
    return p->real.set_push_acked(p->real.arg, acked);
}

static int probe_apply_begin(void *arg)
{
    struct probe *p = arg;
    if (p->nurse_patient) {
        add_obs_to(p->nurse_store, p->nurse_patient, 77);
        p->nurse_patient = NULL;
    }
    return p->real.apply_begin(p->real.arg);
}

static int probe_apply_changes(void *arg, const satchel_FieldChange *c, size_t n,
                               unsigned *conflicts)
{
    struct probe *p = arg;
    if (p->fail_at && ++p->calls >= p->fail_at)
        return SAT_ERR_STORE_INVALID;
    return p->real.apply_changes(p->real.arg, c, n, conflicts);
}

static int probe_apply_commit(void *arg, const uint8_t (*purge)[SYNC_DEVICE_ID_BYTES],
                              size_t npurge, uint64_t next_cursor, unsigned *conflicts)
{
    struct probe *p = arg;
    int ret = p->real.apply_commit(p->real.arg, purge, npurge, next_cursor, conflicts);
    if (ret == SAT_OK)
        p->commits++;
    return ret;
}

static void probe_apply_abort(void *arg)
{
    struct probe *p = arg;
    p->aborts++;
    p->real.apply_abort(p->real.arg);
}

static int probe_wipe(void *arg)
{
    struct probe *p = arg;
    return p->real.wipe(p->real.arg);
}

static void probe_attach(struct probe *p, struct tablet *t)
{
    memset(p, 0, sizeof *p);
    p->real = t->replica;
    t->replica.state = probe_state;
    t->replica.changes = probe_changes;
    t->replica.set_push_acked = probe_set_push_acked;
    t->replica.apply_begin = probe_apply_begin;
    t->replica.apply_changes = probe_apply_changes;
    t->replica.apply_commit = probe_apply_commit;
    t->replica.apply_abort = probe_apply_abort;
    t->replica.wipe = probe_wipe;
    t->replica.arg = p;
}

static void probe_detach(struct probe *p, struct tablet *t)
{
    t->replica = p->real;
}

/* Care notes of near-maximal text: their pull needs several batches, each
 * ended by bytes. Returns how many changes the hub now holds. */
static uint64_t add_long_notes(struct world *w, int i, const struct store_id *patient, int count)
{
    struct hub_stats st;
    struct store_note *n = calloc(1, sizeof *n);
    assert_non_null(n);
    for (int k = 0; k < count; k++) {
        memset(n, 0, sizeof *n);
        n->patient_id = *patient;
        memset(n->text, 'a' + k % 26, sizeof n->text - 1);
        assert_int_equal(store_note_add(w->t[i].s, n), SAT_OK);
    }
    free(n);
    sync_ok(w, i);
    assert_int_equal(hub_store_stats(w->hub, &st), SAT_OK);
    return st.changes;
}

/* The hub never holds a pull cursor the device has not made durable. */
static void assert_cursor_durable_first(struct world *w, int i)
{
    struct hub_device d;
    struct store_sync_state ss;
    assert_int_equal(hub_store_device_get(w->hub, w->t[i].id, &d), SAT_OK);
    assert_int_equal(store_sync_state(w->t[i].s, &ss), SAT_OK);
    assert_true(d.pull_cursor <= ss.pull_cursor);
}

/* A pull several 64 KiB batches long, the link cut at one byte after
 * another (inside frames, headers and between them) with a resume after
 * each: every change is applied exactly once in the end, a cut session
 * wastes at most the one batch in flight, the hub never learns a cursor
 * before it is durable, and the tablets converge. */
static void test_pull_cut_at_any_byte_loses_and_repeats_nothing(void **state)
{
    struct world *w = *state;
    struct probe *pr = calloc(1, sizeof *pr);
    uint8_t ha[32];
    uint8_t hb[32];
    uint64_t applied = 0;
    int sessions = 0;
    struct store_id p = add_patient(w, 0, 11, "north");
    uint64_t feed = add_long_notes(w, 0, &p, 80); /* about 160 KiB of notes */
    probe_attach(pr, &w->t[1]);
    for (uint64_t cut = 1;; cut += 2897) {
        uint64_t commits = pr->commits;
        struct result r = sync_tablet_cut(w, 1, 0, cut);
        /* Pull answers the hub sent (its requests less the Hello) against
         * the batches the tablet made durable. */
        uint64_t answered = w->hub_sess.stats.requests ? w->hub_sess.stats.requests - 1 : 0;
        assert_true(answered <= pr->commits - commits + 1);
        applied += w->dev_sess.stats.pulled;
        assert_cursor_durable_first(w, 1);
        assert_int_equal(store_check_integrity(w->t[1].s), SAT_OK);
        sessions++;
        if (r.dev == SAT_OK)
            break;
        assert_int_not_equal(r.dev, SAT_ERR_SYNC_REVOKED);
        assert_true(sessions < 200);
    }
    assert_true(sessions > 20); /* the cuts fell all over the batches */
    assert_true(pr->commits >= 3);  /* several batches, not one */
    assert_int_equal(applied, feed); /* each change applied once */
    probe_detach(pr, &w->t[1]);
    free(pr);
    hash_of(w, 0, ha);
    hash_of(w, 1, hb);
    assert_memory_equal(ha, hb, sizeof ha);
    sync_ok(w, 1);
    assert_int_equal(w->dev_sess.stats.pulled, 0);
}

/* A store failure halfway through a large batch (after part of it went to
 * the store) undoes the whole batch: content and cursor as before; the
 * next sync applies it. */
/* The nurse records an observation while the sync that moves her patient
 * to another team is pulling: the purge comes after her push. Her
 * observation is not lost and her tablet is not stuck: it is pushed at the
 * next sync (the tablet gives the hub its cursor from before the purge
 * until then), and reaches the patient's new team. */
static void test_write_during_the_sync_that_moves_the_patient(void **state)
{
    struct world *w = *state;
    struct probe pr;
    struct store_sync_state st;
    struct store_id p = add_patient(w, 0, 21, "north");
    add_obs(w, 0, &p, 22);
    sync_ok(w, 0);
    assert_int_equal(hub_store_patient_assign(w->hub, p.b, "south", NULL), SAT_OK);

    probe_attach(&pr, &w->t[0]);
    pr.nurse_store = w->t[0].s;
    pr.nurse_patient = &p;
    sync_ok(w, 0);
    probe_detach(&pr, &w->t[0]);
    assert_null(pr.nurse_patient); /* she wrote */
    assert_true(w->dev_sess.stats.purged >= 1);
    assert_false(has_patient(w, 0, &p));
    assert_int_equal(store_sync_state(w->t[0].s, &st), SAT_OK);
    assert_true(st.last_seq > st.push_acked);

    sync_ok(w, 0);
    assert_true(w->dev_sess.stats.pushed >= 1);
    assert_int_equal(store_sync_state(w->t[0].s, &st), SAT_OK);
    assert_int_equal(st.push_acked, st.last_seq);
    sync_ok(w, 2);
    assert_true(has_patient(w, 2, &p));
    assert_int_equal(obs_count(w, 2, &p), 2);
    /* Nothing is held any more: the next sync moves nothing. */
    sync_ok(w, 0);
    assert_int_equal(w->dev_sess.stats.pushed, 0);
    assert_int_equal(w->dev_sess.stats.pulled, 0);
    assert_int_equal(w->dev_sess.stats.purged, 0);
    assert_false(has_patient(w, 0, &p));
}

static void test_failed_apply_midway_leaves_nothing(void **state)
{
    struct world *w = *state;
    struct probe *pr = calloc(1, sizeof *pr);
    struct store_sync_state before;
    struct store_sync_state after;
    uint8_t h0[32];
    uint8_t h1[32];
    uint8_t h2[32];
    struct result r;
    struct store_id p = add_patient(w, 0, 12, "north");
    for (int k = 0; k < 20; k++) /* ~200 small changes: one batch, several parts */
        add_obs(w, 0, &p, 300 + (uint64_t)k);
    sync_ok(w, 0);
    hash_of(w, 1, h1);
    assert_int_equal(store_sync_state(w->t[1].s, &before), SAT_OK);

    probe_attach(pr, &w->t[1]);
    pr->fail_at = 3;
    r = sync_tablet(w, 1, 0);
    assert_int_equal(r.dev, SAT_ERR_STORE_INVALID);
    assert_true(pr->calls >= 3);
    assert_int_equal(pr->commits, 0);
    assert_true(pr->aborts >= 1);
    hash_of(w, 1, h2);
    assert_memory_equal(h1, h2, sizeof h1);
    assert_int_equal(store_sync_state(w->t[1].s, &after), SAT_OK);
    assert_int_equal(after.pull_cursor, before.pull_cursor);
    assert_cursor_durable_first(w, 1);

    pr->fail_at = 0;
    sync_ok(w, 1);
    assert_int_equal(pr->commits, 1); /* all of it in one durable commit */
    probe_detach(pr, &w->t[1]);
    free(pr);
    hash_of(w, 0, h0);
    hash_of(w, 1, h2);
    assert_memory_equal(h0, h2, sizeof h0);
}

/* Two tablets whose clocks agree to the millisecond write one field at the
 * same moment: equal stamps. The tablets and the hub break the tie the same
 * way (the higher device id wins), so both tablets keep that write, the
 * hub's conflict names it the kept one, and the team the patient moves to
 * is fed that write as the field's value. */
static void test_equal_stamps_tablets_and_hub_agree(void **state)
{
    struct world *w = *state;
    struct hub_conflict hc[4];
    size_t nh = 0;
    struct store_patient got;
    int hi;
    const char *const address[2] = { "tablet 0's address", "tablet 1's address" };
    struct store_id p = add_patient(w, 0, 6, "north");
    sync_ok(w, 0);
    sync_ok(w, 1);
    hi = memcmp(w->t[1].id, w->t[0].id, HUB_ID_BYTES) > 0;
    for (int i = 0; i < 2; i++)
        sim_hal_set_wall_ms(w->t[i].sim, FIXTURE_WALL_START_MS + 3600000);
    set_address(w, 0, &p, address[0]);
    set_address(w, 1, &p, address[1]);
    sync_ok(w, 0);
    sync_ok(w, 1);
    sync_ok(w, 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(store_patient_get(w->t[i].s, &p, &got), SAT_OK);
        assert_string_equal(got.address, address[hi]);
    }
    assert_int_equal(hub_store_conflicts_list(w->hub, 0, hc, 4, &nh), SAT_OK);
    assert_int_equal(nh, 1);
    /* The stamps really were equal: the tie-break decided. */
    assert_int_equal(hc[0].kept.stamp.wall_ms, hc[0].lost.stamp.wall_ms);
    assert_int_equal(hc[0].kept.stamp.counter, hc[0].lost.stamp.counter);
    assert_memory_equal(hc[0].kept.origin_device, w->t[hi].id, HUB_ID_BYTES);
    assert_string_equal(hc[0].kept.value.value.text, address[hi]);
    assert_int_equal(hub_store_patient_assign(w->hub, p.b, "south", NULL), SAT_OK);
    sync_ok(w, 2);
    assert_int_equal(store_patient_get(w->t[2].s, &p, &got), SAT_OK);
    assert_string_equal(got.address, address[hi]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_team_converges_and_other_team_sees_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_same_field_conflict_surfaces_on_both_sides, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reassignment_purges_old_team, setup, teardown),
        cmocka_unit_test_setup_teardown(test_equal_stamps_tablets_and_hub_agree, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_revoked_tablet_wipes_itself, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_is_refused_and_changes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cut_after_every_frame_then_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_cut_at_any_byte_loses_and_repeats_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_during_the_sync_that_moves_the_patient,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_apply_midway_leaves_nothing, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
