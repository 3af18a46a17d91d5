/*
 * gen_corpus.c - writes the fuzz targets' seed corpus with the project's
 * own code: real sessions between a hub_session and a sync_device in the
 * world of fuzz_world.h (each direction's bytes recorded), frames and
 * messages from the encoders, key files from keys_enrol, stores from the
 * store, and a few hand-made edge cases.
 *
 *   cmake --build build/native --target fuzz_gen_corpus
 *   build/native/tests/fuzz/fuzz_gen_corpus tests/fuzz/corpus
 *
 * For each target it replaces the files named seed-* in DIR/<target>/ and
 * leaves every other file alone: regress-* inputs, kept exactly as a
 * fuzzer found them, stay. The output is the same on every run (seeded
 * simulated devices, a fixed hub clock), so a rerun changes the corpus only
 * when a format did. Keep the seeds few and small: ctest replays them in
 * every stage, arm64 under qemu included.
 */
#define _POSIX_C_SOURCE 200809L /* mkdir, opendir */
#include <dirent.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_world.h"
#include "hub_session.h"
#include "store_fixture.h"

static const char *out_dir;
static int failures;

#define GEN_CHECK(cond, what)                                             \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "gen_corpus: %s (%s:%d)\n", what, __FILE__, __LINE__); \
            exit(1);                                                      \
        }                                                                 \
    } while (0)

/* ---- output ----------------------------------------------------------------- */

static void target_dir(const char *target, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", out_dir, target);
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "gen_corpus: cannot make %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

/* Removes the seed-* files of a target. */
static void clear_seeds(const char *target)
{
    char dir[512];
    DIR *d;
    struct dirent *e;
    target_dir(target, dir, sizeof dir);
    d = opendir(dir);
    GEN_CHECK(d != NULL, "cannot list a target's corpus");
    while ((e = readdir(d)) != NULL) {
        char path[1024];
        if (strncmp(e->d_name, "seed-", 5) != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        GEN_CHECK(unlink(path) == 0, "cannot remove an old seed");
    }
    closedir(d);
}

/* Writes DIR/<target>/seed-<name>: [prefix byte if prefix >= 0] bytes. */
static void seed(const char *target, const char *name, int prefix, const void *bytes, size_t len)
{
    char dir[512];
    char path[1024];
    FILE *f;
    target_dir(target, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/seed-%s", dir, name);
    f = fopen(path, "wb");
    GEN_CHECK(f != NULL, "cannot write a seed");
    if (prefix >= 0)
        fputc(prefix, f);
    if (len > 0 && fwrite(bytes, 1, len, f) != len)
        failures++;
    if (fclose(f) != 0)
        failures++;
}

/* ---- byte buffers and frames ------------------------------------------------ */

struct buf {
    uint8_t *b;
    size_t len;
    size_t cap;
    size_t pos; /* read position, for pipes */
};

static void buf_put(struct buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        b->b = realloc(b->b, cap);
        GEN_CHECK(b->b != NULL, "out of memory");
        b->cap = cap;
    }
    memcpy(b->b + b->len, p, n);
    b->len += n;
}

static void buf_free(struct buf *b)
{
    free(b->b);
    memset(b, 0, sizeof *b);
}

static uint8_t frame_bytes[FRAME_BUF_BYTES];

static void put_frame(struct buf *b, const satchel_Frame *f)
{
    size_t len = 0;
    GEN_CHECK(proto_frame_encode(f, frame_bytes, sizeof frame_bytes, &len) == SAT_OK,
              "cannot encode a frame");
    buf_put(b, frame_bytes, len);
}

static void put_push(struct buf *b, uint64_t first_seq, const satchel_FieldChange *c, size_t n)
{
    static satchel_Frame f;
    static struct proto_changes_out out;
    memset(&f, 0, sizeof f);
    f.which_msg = satchel_Frame_push_batch_tag;
    f.msg.push_batch.first_seq = first_seq;
    out.items = c;
    out.count = n;
    proto_bind_changes_encode(&f.msg.push_batch.changes, &out);
    put_frame(b, &f);
}

static void put_hello(struct buf *b, const uint8_t id[HUB_ID_BYTES], uint64_t cursor)
{
    satchel_Frame f = satchel_Frame_init_zero;
    f.which_msg = satchel_Frame_hello_tag;
    f.msg.hello.protocol_version = PROTO_VERSION;
    memcpy(f.msg.hello.device_id, id, HUB_ID_BYTES);
    snprintf(f.msg.hello.firmware_version, sizeof f.msg.hello.firmware_version, "0.1.0");
    f.msg.hello.pull_cursor = cursor;
    put_frame(b, &f);
}

static void put_pull_request(struct buf *b, uint64_t cursor, uint32_t max)
{
    satchel_Frame f = satchel_Frame_init_zero;
    f.which_msg = satchel_Frame_pull_request_tag;
    f.msg.pull_request.cursor = cursor;
    f.msg.pull_request.max_changes = max;
    put_frame(b, &f);
}

static void put_hello_ack(struct buf *b, uint32_t version, uint64_t acked, int revoked,
                          int offer)
{
    satchel_Frame f = satchel_Frame_init_zero;
    f.which_msg = satchel_Frame_hello_ack_tag;
    f.msg.hello_ack.protocol_version = version;
    f.msg.hello_ack.hub_time_ms = (uint64_t)FUZZ_HUB_TIME_MS;
    f.msg.hello_ack.standing = revoked ? satchel_Standing_STANDING_REVOKED
                                       : satchel_Standing_STANDING_OK;
    f.msg.hello_ack.acked_seq = acked;
    if (offer) {
        satchel_FirmwareManifest *m = &f.msg.hello_ack.update_offer;
        f.msg.hello_ack.has_update_offer = true;
        snprintf(m->version, sizeof m->version, "0.2.0");
        m->security_counter = 2;
        snprintf(m->hardware_id, sizeof m->hardware_id, "tablet-a64");
        m->image_size = 1 << 20;
        memset(m->sha256, 0xab, sizeof m->sha256);
        m->signature.size = 70;
        memset(m->signature.bytes, 0x30, m->signature.size);
    }
    put_frame(b, &f);
}

static void put_push_ack(struct buf *b, uint64_t acked)
{
    satchel_Frame f = satchel_Frame_init_zero;
    f.which_msg = satchel_Frame_push_ack_tag;
    f.msg.push_ack.acked_seq = acked;
    put_frame(b, &f);
}

static void put_pull_batch(struct buf *b, const satchel_FieldChange *c, size_t n,
                           uint64_t next_cursor, int more, const uint8_t (*purge)[16],
                           size_t npurge)
{
    static satchel_Frame f;
    static struct proto_changes_out out;
    memset(&f, 0, sizeof f);
    f.which_msg = satchel_Frame_pull_batch_tag;
    out.items = c;
    out.count = n;
    proto_bind_changes_encode(&f.msg.pull_batch.changes, &out);
    f.msg.pull_batch.next_cursor = next_cursor;
    f.msg.pull_batch.more = more != 0;
    f.msg.pull_batch.purge_ids_count = (pb_size_t)npurge;
    for (size_t i = 0; i < npurge; i++) {
        memcpy(f.msg.pull_batch.purge_ids[i].bytes, purge[i], 16);
        f.msg.pull_batch.purge_ids[i].size = 16;
    }
    put_frame(b, &f);
}

static void put_error(struct buf *b, satchel_ErrorCode code, const char *reason)
{
    satchel_Frame f = satchel_Frame_init_zero;
    f.which_msg = satchel_Frame_error_tag;
    f.msg.error.code = code;
    snprintf(f.msg.error.reason, sizeof f.msg.error.reason, "%s", reason);
    put_frame(b, &f);
}

/* ---- recorded sessions -------------------------------------------------------- */

struct pipe_end {
    struct buf *in;
    struct buf *out;
    int *peer_done;
};

static int pipe_send(void *arg, const void *p, size_t len, size_t *sent)
{
    struct pipe_end *e = arg;
    buf_put(e->out, p, len);
    *sent = len;
    return SAT_OK;
}

static int pipe_recv(void *arg, void *p, size_t len, size_t *got)
{
    struct pipe_end *e = arg;
    size_t n = e->in->len - e->in->pos;
    if (n == 0)
        return *e->peer_done ? SAT_ERR_CLOSED : SAT_ERR_WOULD_BLOCK;
    if (n > len)
        n = len;
    memcpy(p, e->in->b + e->in->pos, n);
    e->in->pos += n;
    *got = n;
    return SAT_OK;
}

static struct hub_session hub_sess;
static struct sync_device dev_sess;

/* One session between the tablet and the hub; to_hub and to_dev get what
 * each side sent. Returns the device's result. */
static int record_session(struct fuzz_tablet *t, struct hub_store *hub, struct buf *to_hub,
                          struct buf *to_dev)
{
    int dev_done = 0;
    int hub_done = 0;
    struct pipe_end dev_end = { to_dev, to_hub, &hub_done };
    struct pipe_end hub_end = { to_hub, to_dev, &dev_done };
    struct frame_io dio = { pipe_send, pipe_recv, &dev_end };
    struct frame_io hio = { pipe_send, pipe_recv, &hub_end };
    int dret = SAT_ERR_WOULD_BLOCK;
    int hret = SAT_ERR_WOULD_BLOCK;
    sync_device_init(&dev_sess, &dio, &t->replica, fuzz_dev_id, "0.1.0");
    hub_session_init(&hub_sess, &hio, hub, fuzz_dev_id, fuzz_hub_clock, NULL);
    for (int i = 0; i < 10000 && (!dev_done || !hub_done); i++) {
        if (!dev_done) {
            dret = sync_device_step(&dev_sess);
            dev_done = dret != SAT_ERR_WOULD_BLOCK;
        }
        if (!hub_done) {
            hret = hub_session_step(&hub_sess);
            hub_done = hret != SAT_ERR_WOULD_BLOCK;
        }
    }
    GEN_CHECK(dev_done && hub_done, "a recorded session did not end");
    return dret;
}

static struct store_id tablet_patient;

static int first_patient(void *arg, const struct store_patient *p)
{
    *(struct store_id *)arg = p->id;
    return 1;
}

/* Sessions of a tablet as fuzz_world.h makes it (the state the targets
 * start from) with the hub: its first sync with the hub's world; after it,
 * a colleague's edit of the tablet's patient and the same tablet, new
 * again, syncing (a conflict on its side, a pull-only session on the
 * hub's); after a revocation, the revoked session. */
static void gen_sessions(const struct fuzz_flash *tablet_flash)
{
    struct fuzz_tablet t;
    struct hub_store *hub = NULL;
    struct buf to_hub[3] = { { 0 } };
    struct buf to_dev[3] = { { 0 } };
    struct hub_device colleague;
    struct hub_push_result pr;
    satchel_FieldChange c[2];
    int ret;

    GEN_CHECK(fuzz_hub_open(&hub) == SAT_OK, "no hub");
    GEN_CHECK(fuzz_tablet_open(&t, tablet_flash) == SAT_OK, "no tablet");
    GEN_CHECK(store_patient_list(t.s, first_patient, &tablet_patient) == 1, "no patient");
    ret = record_session(&t, hub, &to_hub[0], &to_dev[0]);
    GEN_CHECK(ret == SAT_OK, "the first session failed");
    fuzz_tablet_close(&t);

    GEN_CHECK(hub_store_device_get(hub, fuzz_colleague_id, &colleague) == SAT_OK, "colleague");
    fuzz_change_text(&c[0], tablet_patient.b, satchel_RecordKind_RECORD_KIND_PATIENT,
                     satchel_Patient_address_tag, "The Old Mill", (uint64_t)FUZZ_WALL_START_MS + 5,
                     fuzz_colleague_id, colleague.acked_seq + 1);
    fuzz_change_text(&c[1], tablet_patient.b, satchel_RecordKind_RECORD_KIND_PATIENT,
                     satchel_Patient_postcode_tag, "SA2 2BB", (uint64_t)FUZZ_WALL_START_MS + 5,
                     fuzz_colleague_id, colleague.acked_seq + 2);
    c[1].stamp.counter = 1;
    GEN_CHECK(hub_store_push(hub, fuzz_colleague_id, colleague.acked_seq + 1, c, 2, &pr) ==
                  SAT_OK,
              "the colleague's push failed");
    GEN_CHECK(fuzz_tablet_open(&t, tablet_flash) == SAT_OK, "no tablet");
    ret = record_session(&t, hub, &to_hub[1], &to_dev[1]);
    GEN_CHECK(ret == SAT_OK, "the second session failed");
    fuzz_tablet_close(&t);

    GEN_CHECK(hub_store_device_revoke(hub, fuzz_dev_id) == SAT_OK, "cannot revoke");
    GEN_CHECK(fuzz_tablet_open(&t, tablet_flash) == SAT_OK, "no tablet");
    ret = record_session(&t, hub, &to_hub[2], &to_dev[2]);
    GEN_CHECK(ret == SAT_ERR_SYNC_REVOKED, "the revoked session did not wipe");
    fuzz_tablet_close(&t);

    seed("hub_session", "first-sync", -1, to_hub[0].b, to_hub[0].len);
    seed("hub_session", "pull-only", -1, to_hub[1].b, to_hub[1].len);
    seed("sync_device", "first-sync", -1, to_dev[0].b, to_dev[0].len);
    seed("sync_device", "conflict", -1, to_dev[1].b, to_dev[1].len);
    seed("sync_device", "revoked", -1, to_dev[2].b, to_dev[2].len);
    /* A stream of several frames each way, and each frame on its own. */
    seed("frame", "stream-to-hub", -1, to_hub[0].b, to_hub[0].len);
    seed("frame", "stream-to-tablet", -1, to_dev[1].b, to_dev[1].len);
    for (int dir = 0; dir < 2; dir++) {
        const struct buf *b = dir == 0 ? &to_hub[0] : &to_dev[0];
        size_t at = 0;
        for (int k = 0; at + PROTO_FRAME_HEADER_BYTES <= b->len; k++) {
            size_t body = 0;
            char name[64];
            GEN_CHECK(proto_frame_header(b->b + at, &body) == SAT_OK, "bad recorded frame");
            snprintf(name, sizeof name, "%s-%d", dir == 0 ? "to-hub" : "to-tablet", k);
            seed("frame", name, -1, b->b + at, PROTO_FRAME_HEADER_BYTES + body);
            at += PROTO_FRAME_HEADER_BYTES + body;
        }
    }
    for (int i = 0; i < 3; i++) {
        buf_free(&to_hub[i]);
        buf_free(&to_dev[i]);
    }
    hub_store_close(hub);
}

/* ---- hand-made sessions ------------------------------------------------------ */

static void gen_hub_edges(void)
{
    static const uint8_t oversize[] = { 0x7f, 0xff, 0xff, 0xff };
    static const uint8_t garbage[] = { 0, 0, 0, 3, 0xff, 0xff, 0xff };
    static const uint8_t new_patient[16] = { 0x1e, 0x57, 1, 2, 3, 4, 5, 6,
                                             7,    8,    9, 10, 11, 12, 13, 14 };
    satchel_FieldChange c[4];
    uint64_t wall = (uint64_t)FUZZ_WALL_START_MS;
    struct buf b = { 0 };

    put_hello(&b, fuzz_dev_id, 0);
    put_pull_request(&b, 0, 0);
    put_pull_request(&b, 3, 1);
    put_pull_request(&b, 0, 5000);
    seed("hub_session", "pulls", -1, b.b, b.len);
    buf_free(&b);

    put_hello(&b, fuzz_colleague_id, 0);
    seed("hub_session", "hello-other-device", -1, b.b, b.len);
    buf_free(&b);

    put_pull_request(&b, 0, 0);
    seed("hub_session", "no-hello", -1, b.b, b.len);
    buf_free(&b);

    /* A new patient, a write to south's patient, a tombstone, another
     * device's change: each batch refused or taken whole. */
    put_hello(&b, fuzz_dev_id, 0);
    fuzz_change_text(&c[0], new_patient, satchel_RecordKind_RECORD_KIND_PATIENT,
                     satchel_Patient_family_name_tag, "Rees", wall, fuzz_dev_id, 1);
    fuzz_change_text(&c[1], new_patient, satchel_RecordKind_RECORD_KIND_PATIENT,
                     satchel_Patient_team_tag, "north", wall, fuzz_dev_id, 2);
    put_push(&b, 1, c, 2);
    fuzz_change_text(&c[0], fuzz_patient_south, satchel_RecordKind_RECORD_KIND_PATIENT,
                     satchel_Patient_address_tag, "Elsewhere", wall, fuzz_dev_id, 3);
    put_push(&b, 3, c, 1);
    seed("hub_session", "push-out-of-scope", -1, b.b, b.len);
    buf_free(&b);

    put_hello(&b, fuzz_dev_id, 0);
    fuzz_change_text(&c[0], fuzz_patient_north, satchel_RecordKind_RECORD_KIND_PATIENT,
                     satchel_Patient_address_tag, "Hen Ysgol", wall, fuzz_dev_id, 1);
    c[1] = c[0];
    c[1].field = 0;
    c[1].origin_seq = 2;
    c[1].value.which_value = satchel_FieldValue_tombstone_tag;
    c[1].value.value.tombstone = true;
    fuzz_change_int(&c[2], new_patient, satchel_RecordKind_RECORD_KIND_VISIT,
                    satchel_Visit_started_ms_tag, (int64_t)wall, wall, fuzz_dev_id, 3);
    fuzz_change_blob(&c[3], new_patient, satchel_RecordKind_RECORD_KIND_VISIT,
                     satchel_Visit_patient_id_tag, fuzz_patient_north, wall, fuzz_dev_id, 4);
    put_push(&b, 1, c, 4);
    put_push(&b, 1, c, 1);
    put_pull_request(&b, 0, 1024);
    seed("hub_session", "push-tombstone-and-visit", -1, b.b, b.len);
    buf_free(&b);

    put_hello(&b, fuzz_dev_id, 0);
    fuzz_change_text(&c[0], new_patient, satchel_RecordKind_RECORD_KIND_PATIENT,
                     satchel_Patient_family_name_tag, "Rees", wall, fuzz_colleague_id, 1);
    put_push(&b, 1, c, 1);
    seed("hub_session", "push-not-origin", -1, b.b, b.len);
    buf_free(&b);

    seed("hub_session", "oversize", -1, oversize, sizeof oversize);
    seed("hub_session", "garbage", -1, garbage, sizeof garbage);
}

static void gen_device_edges(void)
{
    static const uint8_t oversize[] = { 0x7f, 0xff, 0xff, 0xff };
    satchel_FieldChange c[3];
    uint8_t purge[2][16];
    uint64_t wall = (uint64_t)FUZZ_WALL_START_MS + 1000;
    struct buf b = { 0 };

    put_error(&b, satchel_ErrorCode_ERROR_CODE_OUT_OF_SCOPE, "patient is not in team north");
    seed("sync_device", "error", -1, b.b, b.len);
    buf_free(&b);

    put_hello_ack(&b, PROTO_VERSION + 1, 0, 0, 0);
    seed("sync_device", "hello-ack-other-version", -1, b.b, b.len);
    buf_free(&b);

    seed("sync_device", "oversize", -1, oversize, sizeof oversize);

    /* The hub says it holds everything (no push), offers an update, then
     * pulls in two batches: a change to the tablet's own patient and a
     * purge of it, then a cursor that goes back. */
    put_hello_ack(&b, PROTO_VERSION, 1000, 0, 1);
    fuzz_change_text(&c[0], tablet_patient.b, satchel_RecordKind_RECORD_KIND_PATIENT,
                     satchel_Patient_given_name_tag, "Eira", wall, fuzz_colleague_id, 7);
    fuzz_change_int(&c[1], fuzz_patient_north, satchel_RecordKind_RECORD_KIND_OBSERVATION,
                    500 + satchel_VitalSigns_pulse_tag, 300, wall, fuzz_colleague_id, 8);
    fuzz_change_blob(&c[2], fuzz_patient_moved, satchel_RecordKind_RECORD_KIND_TASK,
                     satchel_Task_patient_id_tag, fuzz_patient_north, wall, fuzz_colleague_id, 9);
    put_pull_batch(&b, c, 3, 20, 1, NULL, 0);
    memcpy(purge[0], tablet_patient.b, 16);
    memcpy(purge[1], fuzz_patient_moved, 16);
    put_pull_batch(&b, NULL, 0, 25, 1, (const uint8_t(*)[16])purge, 2);
    put_pull_batch(&b, NULL, 0, 10, 0, NULL, 0);
    seed("sync_device", "pulls-purge-and-back", -1, b.b, b.len);
    buf_free(&b);

    /* A PushAck short of the batch. */
    put_hello_ack(&b, PROTO_VERSION, 0, 0, 0);
    put_push_ack(&b, 1);
    seed("sync_device", "push-ack-short", -1, b.b, b.len);
    buf_free(&b);
}

/* Every message type on its own, for fuzz_frame's direct decoding. */
static void gen_messages(void)
{
    static uint8_t out[4096];
    static satchel_FieldChange ch;
    satchel_Patient pt = satchel_Patient_init_zero;
    satchel_Observation ob = satchel_Observation_init_zero;
    satchel_CareNote nt = satchel_CareNote_init_zero;
    satchel_Task tk = satchel_Task_init_zero;
    satchel_Visit vi = satchel_Visit_init_zero;
    size_t len = 0;
    struct buf b = { 0 };

    memcpy(pt.id, fuzz_patient_north, 16);
    snprintf(pt.nhs_number, sizeof pt.nhs_number, "9434765919");
    snprintf(pt.given_name, sizeof pt.given_name, "Cerys");
    snprintf(pt.family_name, sizeof pt.family_name, "Pryce");
    snprintf(pt.date_of_birth, sizeof pt.date_of_birth, "1948-03-09");
    snprintf(pt.team, sizeof pt.team, "north");
    GEN_CHECK(proto_encode(satchel_Patient_fields, &pt, out, sizeof out, &len) == SAT_OK, "pt");
    seed("frame", "msg-patient", -1, out, len);

    memcpy(ob.id, fuzz_patient_moved, 16);
    memcpy(ob.patient_id, fuzz_patient_north, 16);
    ob.taken_ms = (uint64_t)FUZZ_WALL_START_MS;
    ob.has_vitals = true;
    ob.vitals.respiration_rate = 18;
    ob.vitals.spo2_pct = 95;
    ob.vitals.spo2_scale = 1;
    ob.vitals.systolic_bp = 120;
    ob.vitals.pulse = 80;
    ob.vitals.consciousness = satchel_Consciousness_CONSCIOUSNESS_ALERT;
    ob.vitals.temperature_dc = -5;
    ob.news2_score = 1;
    GEN_CHECK(proto_encode(satchel_Observation_fields, &ob, out, sizeof out, &len) == SAT_OK,
              "ob");
    seed("frame", "msg-observation", -1, out, len);

    memcpy(nt.id, fuzz_patient_south, 16);
    memcpy(nt.patient_id, fuzz_patient_north, 16);
    nt.visit_id.size = 16;
    memcpy(nt.visit_id.bytes, fuzz_patient_moved, 16);
    snprintf(nt.text, sizeof nt.text, "Seen at home.");
    nt.amends.size = 16;
    memcpy(nt.amends.bytes, fuzz_dev_id, 16);
    GEN_CHECK(proto_encode(satchel_CareNote_fields, &nt, out, sizeof out, &len) == SAT_OK, "nt");
    seed("frame", "msg-care-note", -1, out, len);

    memcpy(tk.id, fuzz_patient_south, 16);
    snprintf(tk.title, sizeof tk.title, "Call the GP");
    tk.done = true;
    tk.due_ms = 1;
    GEN_CHECK(proto_encode(satchel_Task_fields, &tk, out, sizeof out, &len) == SAT_OK, "tk");
    seed("frame", "msg-task", -1, out, len);

    memcpy(vi.id, fuzz_patient_south, 16);
    vi.started_ms = 5;
    vi.ended_ms = 6;
    snprintf(vi.reason, sizeof vi.reason, "review");
    GEN_CHECK(proto_encode(satchel_Visit_fields, &vi, out, sizeof out, &len) == SAT_OK, "vi");
    seed("frame", "msg-visit", -1, out, len);

    fuzz_change_int(&ch, fuzz_patient_north, satchel_RecordKind_RECORD_KIND_OBSERVATION,
                    500 + satchel_VitalSigns_temperature_dc_tag, -3, 99, fuzz_dev_id, 4);
    ch.has_base_stamp = true;
    ch.base_stamp.wall_ms = 98;
    ch.base_device.size = 16;
    memcpy(ch.base_device.bytes, fuzz_colleague_id, 16);
    GEN_CHECK(proto_encode(satchel_FieldChange_fields, &ch, out, sizeof out, &len) == SAT_OK,
              "ch");
    seed("frame", "msg-field-change", -1, out, len);

    put_hello_ack(&b, PROTO_VERSION, 7, 0, 1);
    put_error(&b, satchel_ErrorCode_ERROR_CODE_MALFORMED, "malformed frame");
    seed("frame", "hello-ack-offer-and-error", -1, b.b, b.len);
    buf_free(&b);
}

/* ---- key files ----------------------------------------------------------------- */

static void key_file(int with_recovery, struct fuzz_flash *out)
{
    struct sim_hal *sim = NULL;
    struct keys k;
    uint8_t pub[KEYS_RECOVERY_PUB_BYTES];
    uint8_t priv[KEYS_RECOVERY_PRIV_BYTES];
    struct keys_enrol_opts opts = { FUZZ_KDF_ITERATIONS, NULL };
    GEN_CHECK(fuzz_recovery_key(pub, priv) == SAT_OK, "no recovery key");
    if (with_recovery)
        opts.recovery_pub = pub;
    GEN_CHECK(fuzz_keys_device(&sim) == SAT_OK, "no key device");
    keys_init(&k, sim_hal_hal(sim));
    GEN_CHECK(keys_enrol(&k, FUZZ_PIN, &opts) == SAT_OK, "cannot enrol");
    keys_lock(&k);
    GEN_CHECK(fuzz_flash_save(sim, out) == SAT_OK, "cannot save the key file");
    sim_hal_free(sim);
}

static const uint8_t *flash_file(const struct fuzz_flash *f, const char *name, size_t *len)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->name[i], name) == 0) {
            *len = f->len[i];
            return f->bytes[i];
        }
    GEN_CHECK(0, "a file is missing");
    return NULL;
}

static void gen_keys(void)
{
    /* control: bit 0 repair, bits 1-4 wrong PINs so far, bit 5 change PIN,
     * bit 6 recover, bit 7 wipe (fuzz_keys.c). */
    static const struct {
        const char *name;
        int control;
    } uses[] = {
        { "unlock", 0x00 },          { "change-pin", 0x20 },    { "recover", 0x40 },
        { "wipe", 0x80 },            { "lockout", 0x03 << 1 },  { "erase", 0x09 << 1 },
        { "repaired-all", 0xE1 },    { "erased-then-recover", (0x0B << 1) | 0x40 },
    };
    struct fuzz_flash with = { 0 };
    struct fuzz_flash without = { 0 };
    const uint8_t *file;
    size_t len = 0;
    char name[64];

    key_file(1, &with);
    key_file(0, &without);
    file = flash_file(&with, KEYS_FILE_NAME, &len);
    for (size_t i = 0; i < sizeof uses / sizeof uses[0]; i++) {
        snprintf(name, sizeof name, "%s", uses[i].name);
        seed("keys", name, uses[i].control, file, len);
    }
    /* Torn in the second slot; only the first slot; a PIN wrap alone. */
    seed("keys", "torn", 0x40, file, len - 100);
    seed("keys", "one-slot", 0x20, file, 512);
    file = flash_file(&without, KEYS_FILE_NAME, &len);
    seed("keys", "no-recovery-wrap", 0x40, file, len);
    seed("keys", "empty-file", 0x00, NULL, 0);
    fuzz_flash_free(&with);
    fuzz_flash_free(&without);
}

/* ---- device.conf, scenarios --------------------------------------------------------- */

static void gen_device_conf(void)
{
    static const struct {
        const char *name;
        const char *text;
    } confs[] = {
        { "provisioned", "device_id=d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1\nteam=north\n" },
        { "crlf-upper", "team=south\r\ndevice_id=0123456789ABCDEF0123456789abcdef\r\n" },
        { "no-id", "team=north\n" },
        { "two-ids", "device_id=00000000000000000000000000000001\n"
                     "device_id=00000000000000000000000000000002\n" },
        { "long-id", "device_id=0123456789abcdef0123456789abcdef00\n" },
        { "not-at-line-start", "old_device_id=0123456789abcdef0123456789abcdef\n" },
    };
    for (size_t i = 0; i < sizeof confs / sizeof confs[0]; i++)
        seed("device_conf", confs[i].name, -1, confs[i].text, strlen(confs[i].text));
}

static void gen_scenarios(void)
{
    static const struct {
        const char *name;
        const char *json;
    } scenarios[] = {
        { "readme",
          "{ \"name\": \"readme\", \"nurses\": 8, \"teams\": [\"north\", \"south\"],\n"
          "  \"visits\": [6, 10], \"shared_patients\": 2, \"day\": [\"07:00\", \"19:00\"],\n"
          "  \"base_minutes\": 60, \"signal\": { \"visit_up_pct\": 60, \"rural_pct\": 30,\n"
          "  \"latency_ms\": 80, \"jitter_ms\": 40 }, \"sync_every_min\": 20,\n"
          "  \"clock_skew_max_s\": 300, \"drift_max_ppm\": 50, \"builtin_faults\": true,\n"
          "  \"days\": 1,\n"
          "  \"events\": [ { \"at\": \"11:30\", \"kind\": \"power_cut\", \"nurse\": 3 },\n"
          "              { \"at\": \"13:00\", \"kind\": \"transfer\", \"patient\": 5,\n"
          "                \"team\": \"south\" } ] }\n" },
        { "two-days",
          "{ \"name\": \"two-days\", \"days\": 2, \"builtin_faults\": false,\n"
          "  \"events\": [ { \"at\": \"12:00\", \"kind\": \"power_cut\", \"nurse\": 2, "
          "\"day\": 2 } ] }\n" },
        { "every-event",
          "{\"nurses\":3,\"teams\":[\"a\",\"b\",\"c\"],\"days\":3,\"events\":["
          "{\"at\":\"08:00\",\"kind\":\"lose_tablet\",\"nurse\":1,\"day\":2},"
          "{\"at\":\"09:00\",\"kind\":\"revoke\",\"nurse\":1,\"day\":2},"
          "{\"at\":\"10:00\",\"kind\":\"thief_sync\",\"nurse\":1,\"day\":3},"
          "{\"at\":\"23:59\",\"kind\":\"transfer\",\"patient\":0,\"team\":\"c\",\"day\":3}]}" },
        { "small-day",
          "{\"nurses\":1,\"teams\":[\"solo\"],\"visits\":[1,1],\"day\":[\"00:00\",\"04:00\"],"
          "\"base_minutes\":240,\"sync_every_min\":1,\"clock_skew_max_s\":0,"
          "\"drift_max_ppm\":0,\"shared_patients\":0}" },
        { "bad-kind", "{\"events\":[{\"at\":\"11:30\",\"kind\":\"flood\",\"nurse\":0}]}" },
    };
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
        seed("scenario", scenarios[i].name, -1, scenarios[i].json, strlen(scenarios[i].json));
}

/* ---- stores ----------------------------------------------------------------------- */

static void gen_stores(const struct fuzz_flash *tablet_flash)
{
    struct fuzz_tablet t;
    struct fuzz_flash empty = { 0 };
    uint8_t *plain = NULL;
    size_t len = 0;
    const uint8_t *raw;
    size_t raw_len = 0;
    struct store_patient p;
    uint64_t rng = 3;

    /* Mode 1: the tablet's database as SQLite sees it; a new store's. */
    GEN_CHECK(fuzz_tablet_open(&t, tablet_flash) == SAT_OK, "no tablet");
    store_close(t.s);
    t.s = NULL;
    GEN_CHECK(fuzz_store_file_read(sim_hal_hal(t.sim), &t.k, STORE_DB_NAME, SQLITE_OPEN_MAIN_DB,
                                   &plain, &len) == SAT_OK,
              "cannot read the database");
    seed("store_open", "db-records", 1, plain, len);
    free(plain);
    fuzz_tablet_close(&t);

    GEN_CHECK(fuzz_tablet_open(&t, &empty) == SAT_OK, "no new tablet");
    store_close(t.s);
    t.s = NULL;
    GEN_CHECK(fuzz_store_file_read(sim_hal_hal(t.sim), &t.k, STORE_DB_NAME, SQLITE_OPEN_MAIN_DB,
                                   &plain, &len) == SAT_OK,
              "cannot read the new database");
    seed("store_open", "db-new", 1, plain, len);
    free(plain);
    fuzz_tablet_close(&t);

    /* Mode 0: the tablet's database as it lies on flash. */
    raw = flash_file(tablet_flash, STORE_DB_NAME, &raw_len);
    seed("store_open", "db-sealed", 0, raw, raw_len);

    /* Modes 2 and 3: the log of two more commits, over that database. */
    GEN_CHECK(fuzz_tablet_open(&t, tablet_flash) == SAT_OK, "no tablet");
    fixture_patient(&rng, &p, "");
    GEN_CHECK(store_patient_add(t.s, &p) == SAT_OK, "cannot add a patient");
    snprintf(p.address, sizeof p.address, "1 Lon Goch");
    GEN_CHECK(store_patient_update(t.s, &p) == SAT_OK, "cannot edit a patient");
    GEN_CHECK(sim_hal_file_bytes(t.sim, STORE_DB_NAME "-wal", (uint8_t **)&raw, &raw_len) ==
                  SAT_OK,
              "no log");
    seed("store_open", "wal-sealed", 3, raw, raw_len);
    GEN_CHECK(fuzz_store_file_read(sim_hal_hal(t.sim), &t.k, STORE_DB_NAME "-wal",
                                   SQLITE_OPEN_WAL, &plain, &len) == SAT_OK,
              "cannot read the log");
    seed("store_open", "wal", 2, plain, len);
    free(plain);
    fuzz_tablet_close(&t);
}

int main(int argc, char **argv)
{
    static const char *const targets[] = { "frame",       "hub_session", "sync_device", "keys",
                                           "device_conf", "scenario",    "store_open" };
    struct fuzz_flash tablet_flash;
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "Usage: %s CORPUS_DIR  (tests/fuzz/corpus: replaces its seed-* files)\n",
                argv[0]);
        return 2;
    }
    out_dir = argv[1];
    if (mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "gen_corpus: cannot make %s: %s\n", out_dir, strerror(errno));
        return 1;
    }
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
        clear_seeds(targets[i]);
    GEN_CHECK(fuzz_tablet_template(&tablet_flash) == SAT_OK, "no tablet template");
    gen_sessions(&tablet_flash);
    gen_hub_edges();
    gen_device_edges();
    gen_messages();
    gen_keys();
    gen_device_conf();
    gen_scenarios();
    gen_stores(&tablet_flash);
    fuzz_flash_free(&tablet_flash);
    if (failures) {
        fprintf(stderr, "gen_corpus: %d seeds could not be written\n", failures);
        return 1;
    }
    printf("gen_corpus: seeds written to %s\n", out_dir);
    return 0;
}
