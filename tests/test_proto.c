/*
 * test_proto.c - every message of satchel.proto through nanopb and back,
 * with every bounded field at its maximum; anything over a bound is an
 * error, never a silent truncation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pb_decode.h>
#include <pb_encode.h>
#include <stdlib.h>
#include <string.h>

#include "sat_err.h"
#include "sat_proto.h"

#define BUF_BYTES (PROTO_FRAME_BYTES_MAX + PROTO_FRAME_HEADER_BYTES)

static uint8_t buf[BUF_BYTES];

/* Fills a char[cap] field with cap-1 visible characters: its maximum. */
#define FILL_STR(field, ch) fill_str((field), sizeof(field), (ch))
static void fill_str(char *s, size_t cap, char ch)
{
    memset(s, ch, cap - 1);
    s[cap - 1] = '\0';
}

/* Fills a PB_BYTES_ARRAY field to its maximum. */
#define FILL_BYTES(field, seed) \
    fill_bytes((field).bytes, sizeof((field).bytes), &(field).size, (seed))
static void fill_bytes(uint8_t *b, size_t cap, pb_size_t *size, unsigned seed)
{
    for (size_t i = 0; i < cap; i++)
        b[i] = (uint8_t)(seed * 31u + i);
    *size = (pb_size_t)cap;
}

static void fill_id(pb_byte_t id[16], unsigned seed)
{
    for (unsigned i = 0; i < 16; i++)
        id[i] = (pb_byte_t)(seed + i * 7u);
}

/* Encodes, checks the size bound, decodes into a zeroed struct and compares
 * the whole struct. */
static void roundtrip(const pb_msgdesc_t *fields, const void *msg, size_t msg_size,
                      size_t size_bound)
{
    void *back = calloc(1, msg_size);
    size_t len = 0;
    assert_non_null(back);
    assert_int_equal(proto_encode(fields, msg, buf, sizeof buf, &len), SAT_OK);
    assert_true(len <= size_bound);
    assert_int_equal(proto_decode(fields, back, msg_size, buf, len), SAT_OK);
    assert_memory_equal(msg, back, msg_size);
    free(back);
}

#define ROUNDTRIP(type, msgp) roundtrip(type##_fields, (msgp), sizeof(type), type##_size)

static void make_patient(satchel_Patient *p)
{
    memset(p, 0, sizeof *p);
    fill_id(p->id, 1);
    FILL_STR(p->nhs_number, '9');
    FILL_STR(p->given_name, 'G');
    FILL_STR(p->family_name, 'F');
    FILL_STR(p->date_of_birth, '1');
    FILL_STR(p->address, 'A');
    FILL_STR(p->postcode, 'P');
    FILL_STR(p->team, 'T');
}

static void make_change(satchel_FieldChange *c, unsigned seed, pb_size_t which)
{
    memset(c, 0, sizeof *c);
    fill_id(c->record_id, seed);
    c->kind = satchel_RecordKind_RECORD_KIND_CARE_NOTE;
    c->field = satchel_CareNote_text_tag;
    c->has_value = true;
    c->value.which_value = which;
    switch (which) {
    case satchel_FieldValue_text_tag: FILL_STR(c->value.value.text, (char)('a' + seed % 26)); break;
    case satchel_FieldValue_integer_tag: c->value.value.integer = INT64_MIN; break;
    case satchel_FieldValue_blob_tag: FILL_BYTES(c->value.value.blob, seed); break;
    case satchel_FieldValue_flag_tag: c->value.value.flag = true; break;
    default: c->value.value.tombstone = true; break;
    }
    c->has_stamp = true;
    c->stamp.wall_ms = UINT64_MAX;
    c->stamp.counter = UINT32_MAX;
    fill_id(c->origin_device, 200);
    c->origin_seq = UINT64_MAX - seed;
}

static void test_records_roundtrip_at_max_size(void **state)
{
    satchel_Patient p;
    satchel_Visit v;
    satchel_Observation o;
    satchel_CareNote n;
    satchel_Task t;
    (void)state;

    make_patient(&p);
    ROUNDTRIP(satchel_Patient, &p);

    memset(&v, 0, sizeof v);
    fill_id(v.id, 2);
    fill_id(v.patient_id, 1);
    v.started_ms = UINT64_MAX;
    v.ended_ms = UINT64_MAX - 1;
    FILL_STR(v.reason, 'R');
    ROUNDTRIP(satchel_Visit, &v);

    memset(&o, 0, sizeof o);
    fill_id(o.id, 3);
    fill_id(o.patient_id, 1);
    FILL_BYTES(o.visit_id, 2);
    o.taken_ms = UINT64_MAX;
    o.has_vitals = true;
    o.vitals.respiration_rate = UINT32_MAX;
    o.vitals.spo2_pct = UINT32_MAX;
    o.vitals.spo2_scale = 2;
    o.vitals.on_oxygen = true;
    o.vitals.systolic_bp = UINT32_MAX;
    o.vitals.pulse = UINT32_MAX;
    o.vitals.consciousness = satchel_Consciousness_CONSCIOUSNESS_UNRESPONSIVE;
    o.vitals.temperature_dc = INT32_MIN;
    o.news2_score = UINT32_MAX;
    FILL_BYTES(o.amends, 4);
    ROUNDTRIP(satchel_Observation, &o);

    memset(&n, 0, sizeof n);
    fill_id(n.id, 5);
    fill_id(n.patient_id, 1);
    FILL_BYTES(n.visit_id, 2);
    n.written_ms = UINT64_MAX;
    FILL_STR(n.text, 'n');
    FILL_BYTES(n.amends, 6);
    ROUNDTRIP(satchel_CareNote, &n);

    memset(&t, 0, sizeof t);
    fill_id(t.id, 7);
    fill_id(t.patient_id, 1);
    FILL_STR(t.title, 't');
    t.due_ms = UINT64_MAX;
    t.done = true;
    ROUNDTRIP(satchel_Task, &t);
}

static void test_field_change_every_value_kind(void **state)
{
    static const pb_size_t kinds[] = { satchel_FieldValue_text_tag, satchel_FieldValue_integer_tag,
                                       satchel_FieldValue_blob_tag, satchel_FieldValue_flag_tag,
                                       satchel_FieldValue_tombstone_tag };
    (void)state;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        satchel_FieldChange c;
        make_change(&c, (unsigned)i, kinds[i]);
        ROUNDTRIP(satchel_FieldChange, &c);
    }
}

static void test_session_messages_roundtrip(void **state)
{
    satchel_Hello h;
    satchel_HelloAck a;
    satchel_PushAck pa;
    satchel_PullRequest pr;
    satchel_Error e;
    satchel_FirmwareManifest m;
    (void)state;

    memset(&h, 0, sizeof h);
    h.protocol_version = PROTO_VERSION;
    fill_id(h.device_id, 9);
    FILL_STR(h.firmware_version, 'v');
    h.pull_cursor = UINT64_MAX;
    h.last_pushed_seq = UINT64_MAX;
    ROUNDTRIP(satchel_Hello, &h);

    memset(&m, 0, sizeof m);
    FILL_STR(m.version, '1');
    m.security_counter = UINT64_MAX;
    FILL_STR(m.hardware_id, 'h');
    m.image_size = UINT64_MAX;
    for (int i = 0; i < 32; i++)
        m.sha256[i] = (pb_byte_t)i;
    FILL_BYTES(m.signature, 4);
    ROUNDTRIP(satchel_FirmwareManifest, &m);

    memset(&a, 0, sizeof a);
    a.protocol_version = PROTO_VERSION;
    a.hub_time_ms = UINT64_MAX;
    a.standing = satchel_Standing_STANDING_REVOKED;
    a.acked_seq = UINT64_MAX;
    a.has_update_offer = true;
    a.update_offer = m;
    ROUNDTRIP(satchel_HelloAck, &a);

    memset(&pa, 0, sizeof pa);
    pa.acked_seq = UINT64_MAX;
    ROUNDTRIP(satchel_PushAck, &pa);

    memset(&pr, 0, sizeof pr);
    pr.cursor = UINT64_MAX;
    pr.max_changes = PROTO_BATCH_CHANGES_MAX;
    ROUNDTRIP(satchel_PullRequest, &pr);

    memset(&e, 0, sizeof e);
    e.code = satchel_ErrorCode_ERROR_CODE_OUT_OF_SCOPE;
    FILL_STR(e.reason, 'e');
    ROUNDTRIP(satchel_Error, &e);
}

/* ---- batches: streamed through callbacks -------------------------------- */

struct collected {
    satchel_FieldChange *items;
    size_t n;
};

static int collect_change(void *arg, const satchel_FieldChange *c)
{
    struct collected *col = arg;
    col->items[col->n++] = *c;
    return 0;
}

static satchel_FieldChange *full_batch(void)
{
    satchel_FieldChange *items = calloc(PROTO_BATCH_CHANGES_MAX + 1, sizeof *items);
    for (unsigned i = 0; i <= PROTO_BATCH_CHANGES_MAX; i++)
        make_change(&items[i], i, satchel_FieldValue_text_tag);
    return items;
}

static void test_full_batches_roundtrip_in_frames(void **state)
{
    satchel_FieldChange *items = full_batch();
    satchel_FieldChange *got = calloc(PROTO_BATCH_CHANGES_MAX, sizeof *got);
    struct proto_changes_out out = { .items = items, .count = PROTO_BATCH_CHANGES_MAX };
    struct collected col = { got, 0 };
    struct proto_changes_in in = { collect_change, &col, 0 };
    satchel_Frame f;
    satchel_Frame back;
    size_t len = 0;
    (void)state;

    /* PullBatch at its largest: every change maximal, every purge id. */
    memset(&f, 0, sizeof f);
    f.which_msg = satchel_Frame_pull_batch_tag;
    proto_bind_changes_encode(&f.msg.pull_batch.changes, &out);
    f.msg.pull_batch.next_cursor = UINT64_MAX;
    f.msg.pull_batch.more = true;
    f.msg.pull_batch.purge_ids_count = sizeof f.msg.pull_batch.purge_ids /
                                       sizeof f.msg.pull_batch.purge_ids[0];
    for (pb_size_t i = 0; i < f.msg.pull_batch.purge_ids_count; i++)
        FILL_BYTES(f.msg.pull_batch.purge_ids[i], i);
    assert_int_equal(proto_frame_encode(&f, buf, sizeof buf, &len), SAT_OK);
    assert_true(len <= PROTO_FRAME_BYTES_MAX + PROTO_FRAME_HEADER_BYTES);

    memset(&back, 0, sizeof back);
    proto_bind_frame_changes(&back, &in);
    assert_int_equal(proto_frame_decode(&back, buf, len), SAT_OK);
    assert_int_equal(back.which_msg, satchel_Frame_pull_batch_tag);
    assert_int_equal(in.count, PROTO_BATCH_CHANGES_MAX);
    assert_int_equal(col.n, PROTO_BATCH_CHANGES_MAX);
    assert_memory_equal(got, items, PROTO_BATCH_CHANGES_MAX * sizeof *items);
    assert_int_equal(back.msg.pull_batch.next_cursor, UINT64_MAX);
    assert_true(back.msg.pull_batch.more);
    assert_int_equal(back.msg.pull_batch.purge_ids_count, f.msg.pull_batch.purge_ids_count);
    assert_memory_equal(back.msg.pull_batch.purge_ids, f.msg.pull_batch.purge_ids,
                        sizeof f.msg.pull_batch.purge_ids);

    /* PushBatch the same way. */
    memset(&f, 0, sizeof f);
    f.which_msg = satchel_Frame_push_batch_tag;
    f.msg.push_batch.first_seq = 77;
    proto_bind_changes_encode(&f.msg.push_batch.changes, &out);
    assert_int_equal(proto_frame_encode(&f, buf, sizeof buf, &len), SAT_OK);
    memset(&back, 0, sizeof back);
    col.n = 0;
    in.count = 0;
    proto_bind_frame_changes(&back, &in);
    assert_int_equal(proto_frame_decode(&back, buf, len), SAT_OK);
    assert_int_equal(back.which_msg, satchel_Frame_push_batch_tag);
    assert_int_equal(back.msg.push_batch.first_seq, 77);
    assert_int_equal(col.n, PROTO_BATCH_CHANGES_MAX);
    assert_memory_equal(got, items, PROTO_BATCH_CHANGES_MAX * sizeof *items);
    free(items);
    free(got);
}

static void test_every_frame_kind_roundtrips(void **state)
{
    static const pb_size_t kinds[] = { satchel_Frame_hello_tag, satchel_Frame_hello_ack_tag,
                                       satchel_Frame_push_ack_tag, satchel_Frame_pull_request_tag,
                                       satchel_Frame_error_tag };
    (void)state;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        satchel_Frame f;
        satchel_Frame back;
        size_t len = 0;
        memset(&f, 0, sizeof f);
        memset(&back, 0, sizeof back);
        f.which_msg = kinds[i];
        switch (kinds[i]) {
        case satchel_Frame_hello_tag:
            fill_id(f.msg.hello.device_id, 1);
            f.msg.hello.protocol_version = PROTO_VERSION;
            break;
        case satchel_Frame_hello_ack_tag: f.msg.hello_ack.hub_time_ms = 123; break;
        case satchel_Frame_push_ack_tag: f.msg.push_ack.acked_seq = 5; break;
        case satchel_Frame_pull_request_tag: f.msg.pull_request.cursor = 6; break;
        default: FILL_STR(f.msg.error.reason, 'x'); break;
        }
        assert_int_equal(proto_frame_encode(&f, buf, sizeof buf, &len), SAT_OK);
        assert_int_equal(proto_frame_decode(&back, buf, len), SAT_OK);
        assert_memory_equal(&f, &back, sizeof f);
    }
}

/* ---- over the bounds ---------------------------------------------------- */

/* Encodes by hand a message whose field `tag` carries n bytes of `fill`. */
static size_t encode_raw_field(uint32_t tag, size_t n, uint8_t fill)
{
    static uint8_t data[4096];
    pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof buf);
    memset(data, fill, n);
    assert_true(pb_encode_tag(&os, PB_WT_STRING, tag));
    assert_true(pb_encode_string(&os, data, n));
    return os.bytes_written;
}

static void test_too_long_fields_are_rejected(void **state)
{
    satchel_Patient p;
    satchel_FieldValue v;
    satchel_Error e;
    size_t len;
    (void)state;

    /* given_name holds 127 characters: 127 decodes, 128 is refused. */
    len = encode_raw_field(satchel_Patient_given_name_tag, sizeof p.given_name - 1, 'g');
    memset(&p, 0, sizeof p);
    assert_int_equal(proto_decode(satchel_Patient_fields, &p, sizeof p, buf, len), SAT_OK);
    assert_int_equal(strlen(p.given_name), sizeof p.given_name - 1);
    len = encode_raw_field(satchel_Patient_given_name_tag, sizeof p.given_name, 'g');
    memset(&p, 0, sizeof p);
    assert_int_equal(proto_decode(satchel_Patient_fields, &p, sizeof p, buf, len),
                     SAT_ERR_PROTO_DECODE);
    assert_int_equal(p.given_name[0], '\0'); /* nothing half-decoded */

    /* Record ids are exactly 16 bytes. */
    len = encode_raw_field(satchel_Patient_id_tag, 17, 1);
    assert_int_equal(proto_decode(satchel_Patient_fields, &p, sizeof p, buf, len),
                     SAT_ERR_PROTO_DECODE);
    len = encode_raw_field(satchel_Patient_id_tag, 15, 1);
    assert_int_equal(proto_decode(satchel_Patient_fields, &p, sizeof p, buf, len),
                     SAT_ERR_PROTO_DECODE);

    /* A change's text value: 2047 characters at most. */
    len = encode_raw_field(satchel_FieldValue_text_tag, sizeof v.value.text, 't');
    memset(&v, 0, sizeof v);
    assert_int_equal(proto_decode(satchel_FieldValue_fields, &v, sizeof v, buf, len),
                     SAT_ERR_PROTO_DECODE);

    len = encode_raw_field(satchel_Error_reason_tag, sizeof e.reason, 'r');
    memset(&e, 0, sizeof e);
    assert_int_equal(proto_decode(satchel_Error_fields, &e, sizeof e, buf, len),
                     SAT_ERR_PROTO_DECODE);

    /* Encoding a string that fills its array with no terminator fails. */
    make_patient(&p);
    memset(p.given_name, 'x', sizeof p.given_name);
    assert_int_equal(proto_encode(satchel_Patient_fields, &p, buf, sizeof buf, &len),
                     SAT_ERR_PROTO_ENCODE);
}

static void test_oversize_batch_is_rejected(void **state)
{
    satchel_FieldChange *items = full_batch();
    struct proto_changes_out out = { .items = items, .count = PROTO_BATCH_CHANGES_MAX + 1 };
    struct proto_changes_in in = { NULL, NULL, 0 };
    satchel_PushBatch b;
    pb_ostream_t os;
    size_t len = 0;
    (void)state;

    memset(&b, 0, sizeof b);
    proto_bind_changes_encode(&b.changes, &out);
    assert_int_equal(proto_encode(satchel_PushBatch_fields, &b, buf, sizeof buf, &len),
                     SAT_ERR_PROTO_ENCODE);

    /* A peer that sends 33 changes anyway is refused on decode. */
    os = pb_ostream_from_buffer(buf, sizeof buf);
    for (unsigned i = 0; i <= PROTO_BATCH_CHANGES_MAX; i++) {
        assert_true(pb_encode_tag(&os, PB_WT_STRING, satchel_PushBatch_changes_tag));
        assert_true(pb_encode_submessage(&os, satchel_FieldChange_fields, &items[i]));
    }
    memset(&b, 0, sizeof b);
    proto_bind_changes_decode(&b.changes, &in);
    assert_int_equal(proto_decode(satchel_PushBatch_fields, &b, sizeof b, buf, os.bytes_written),
                     SAT_ERR_PROTO_DECODE);
    assert_int_equal(in.count, PROTO_BATCH_CHANGES_MAX);
    free(items);
}

/* nanopb's own way: each change as a submessage, sized on every pass. */
static bool reference_encode_changes(pb_ostream_t *os, const pb_field_t *field, void *const *arg)
{
    const struct proto_changes_out *src = *arg;
    for (size_t i = 0; i < src->count; i++)
        if (!pb_encode_tag_for_field(os, field) ||
            !pb_encode_submessage(os, satchel_FieldChange_fields, &src->items[i]))
            return false;
    return true;
}

/* A pull batch frame of n changes from items, encoded by sat_proto (*len)
 * and by nanopb's way into ref (*ref_len). */
static void encode_both(const satchel_FieldChange *items, size_t n, uint8_t *ref, size_t *len,
                        size_t *ref_len)
{
    struct proto_changes_out out = { .items = items, .count = n };
    satchel_Frame f;
    memset(&f, 0, sizeof f);
    f.which_msg = satchel_Frame_pull_batch_tag;
    f.msg.pull_batch.next_cursor = 99;
    proto_bind_changes_encode(&f.msg.pull_batch.changes, &out);
    assert_int_equal(proto_frame_encode(&f, buf, sizeof buf, len), SAT_OK);
    f.msg.pull_batch.changes.funcs.encode = reference_encode_changes;
    assert_int_equal(proto_frame_encode(&f, ref, BUF_BYTES, ref_len), SAT_OK);
}

/* Sizing each change once (sat_proto's encode_changes) writes the very
 * bytes nanopb's submessage encoding does: every value type, lengths
 * either side of 127 bytes, in a frame (sized first) and alone. */
static void test_batch_encoding_is_nanopbs(void **state)
{
    static const pb_size_t kinds[] = { satchel_FieldValue_text_tag, satchel_FieldValue_integer_tag,
                                       satchel_FieldValue_blob_tag, satchel_FieldValue_flag_tag,
                                       satchel_FieldValue_tombstone_tag };
    satchel_FieldChange *items = calloc(40, sizeof *items);
    uint8_t *ref = malloc(BUF_BYTES);
    struct proto_changes_out out;
    satchel_PullBatch b;
    size_t len = 0, ref_len = 0;
    (void)state;
    assert_non_null(items);
    assert_non_null(ref);
    for (unsigned i = 0; i < 40; i++) {
        make_change(&items[i], i, kinds[i % 5]);
        items[i].stamp.wall_ms = 1700000000000ull + i;
        items[i].stamp.counter = i % 3;
        if (kinds[i % 5] == satchel_FieldValue_text_tag) /* 0 to 156 characters */
            items[i].value.value.text[(i * 4) % sizeof items[i].value.value.text] = '\0';
    }
    encode_both(items, 40, ref, &len, &ref_len);
    assert_int_equal(len, ref_len);
    assert_memory_equal(buf, ref, len);
    /* Another batch through a fresh binding: nothing of the last one's
     * sizes is used. */
    encode_both(items + 7, 3, ref, &len, &ref_len);
    assert_int_equal(len, ref_len);
    assert_memory_equal(buf, ref, len);

    /* A batch encoded on its own has no sizing pass first. */
    memset(&b, 0, sizeof b);
    out = (struct proto_changes_out){ .items = items, .count = 40 };
    proto_bind_changes_encode(&b.changes, &out);
    assert_int_equal(proto_encode(satchel_PullBatch_fields, &b, buf, BUF_BYTES, &len), SAT_OK);
    b.changes.funcs.encode = reference_encode_changes;
    assert_int_equal(proto_encode(satchel_PullBatch_fields, &b, ref, BUF_BYTES, &ref_len), SAT_OK);
    assert_int_equal(len, ref_len);
    assert_memory_equal(buf, ref, len);

    /* A text without its end is refused, saying so. */
    memset(items[5].value.value.text, 'x', sizeof items[5].value.value.text);
    proto_bind_changes_encode(&b.changes, &out);
    assert_int_equal(proto_encode(satchel_PullBatch_fields, &b, buf, BUF_BYTES, &len),
                     SAT_ERR_PROTO_ENCODE);
    free(items);
    free(ref);
}

/* A PullBatch takes up to PROTO_PULL_CHANGES_MAX changes (a PushBatch only
 * PROTO_BATCH_CHANGES_MAX), and proto_change_batch_bytes is exactly what each
 * change adds to a batch, so the hub's byte bound is the real size. */
static void test_pull_batch_bounds(void **state)
{
    satchel_FieldChange *items = calloc(PROTO_PULL_CHANGES_MAX + 1, sizeof *items);
    struct proto_changes_out out = { .items = items, .count = PROTO_PULL_CHANGES_MAX };
    struct proto_changes_in in = { NULL, NULL, 0 };
    satchel_PullBatch b;
    satchel_Frame f;
    pb_ostream_t os;
    size_t len = 0, sum = 0;
    (void)state;

    assert_non_null(items);
    for (unsigned i = 0; i <= PROTO_PULL_CHANGES_MAX; i++) {
        make_change(&items[i], i, satchel_FieldValue_flag_tag);
        items[i].stamp.wall_ms = 1 + i;
        items[i].stamp.counter = 0;
        items[i].origin_seq = 1 + i;
    }
    for (unsigned i = 0; i < PROTO_PULL_CHANGES_MAX; i++)
        sum += proto_change_batch_bytes(&items[i]);

    /* The changes alone encode to exactly the sum. */
    memset(&b, 0, sizeof b);
    proto_bind_changes_encode(&b.changes, &out);
    assert_int_equal(proto_encode(satchel_PullBatch_fields, &b, buf, sizeof buf, &len), SAT_OK);
    assert_int_equal(len, sum);

    /* So does a maximal change, within the byte bound. */
    make_change(&items[PROTO_PULL_CHANGES_MAX], 7, satchel_FieldValue_text_tag);
    out.items = &items[PROTO_PULL_CHANGES_MAX];
    out.count = 1;
    assert_int_equal(proto_encode(satchel_PullBatch_fields, &b, buf, sizeof buf, &len), SAT_OK);
    assert_int_equal(len, proto_change_batch_bytes(&items[PROTO_PULL_CHANGES_MAX]));
    assert_true(len <= PROTO_PULL_CHANGES_BYTES_MAX);
    items[PROTO_PULL_CHANGES_MAX] = items[PROTO_PULL_CHANGES_MAX - 1];
    items[PROTO_PULL_CHANGES_MAX].origin_seq++;

    /* A full count in a frame decodes whole. */
    out.items = items;
    out.count = PROTO_PULL_CHANGES_MAX;
    memset(&f, 0, sizeof f);
    f.which_msg = satchel_Frame_pull_batch_tag;
    proto_bind_changes_encode(&f.msg.pull_batch.changes, &out);
    f.msg.pull_batch.next_cursor = 5;
    assert_int_equal(proto_frame_encode(&f, buf, sizeof buf, &len), SAT_OK);
    memset(&f, 0, sizeof f);
    proto_bind_frame_changes(&f, &in);
    assert_int_equal(proto_frame_decode(&f, buf, len), SAT_OK);
    assert_int_equal(in.count, PROTO_PULL_CHANGES_MAX);
    assert_int_equal(f.msg.pull_batch.next_cursor, 5);

    /* One more is refused on encode, and on decode from a peer that tries. */
    out.count = PROTO_PULL_CHANGES_MAX + 1;
    memset(&b, 0, sizeof b);
    proto_bind_changes_encode(&b.changes, &out);
    assert_int_equal(proto_encode(satchel_PullBatch_fields, &b, buf, sizeof buf, &len),
                     SAT_ERR_PROTO_ENCODE);
    os = pb_ostream_from_buffer(buf, sizeof buf);
    for (unsigned i = 0; i <= PROTO_PULL_CHANGES_MAX; i++) {
        assert_true(pb_encode_tag(&os, PB_WT_STRING, satchel_PullBatch_changes_tag));
        assert_true(pb_encode_submessage(&os, satchel_FieldChange_fields, &items[i]));
    }
    memset(&b, 0, sizeof b);
    in.count = 0;
    proto_bind_changes_decode(&b.changes, &in);
    assert_int_equal(proto_decode(satchel_PullBatch_fields, &b, sizeof b, buf, os.bytes_written),
                     SAT_ERR_PROTO_DECODE);
    assert_int_equal(in.count, PROTO_PULL_CHANGES_MAX);
    free(items);
}

static void test_frame_header_and_truncation(void **state)
{
    uint8_t header[4] = { 0x00, 0x01, 0x20, 0x01 }; /* 73729 > 72 KiB */
    size_t n = 0;
    satchel_Frame f;
    size_t len = 0;
    (void)state;
    assert_int_equal(proto_frame_header(header, &n), SAT_ERR_PROTO_FRAME_SIZE);
    header[1] = 0;
    assert_int_equal(proto_frame_header(header, &n), SAT_OK);
    assert_int_equal(n, 0x2001);

    memset(&f, 0, sizeof f);
    f.which_msg = satchel_Frame_error_tag;
    FILL_STR(f.msg.error.reason, 'z');
    assert_int_equal(proto_frame_encode(&f, buf, sizeof buf, &len), SAT_OK);
    /* Every truncation of a valid frame is refused. */
    for (size_t cut = 0; cut < len; cut++) {
        satchel_Frame back;
        memset(&back, 0, sizeof back);
        assert_int_not_equal(proto_frame_decode(&back, buf, cut), SAT_OK);
    }
    /* A frame that does not fit the caller's buffer fails to encode. */
    assert_int_equal(proto_frame_encode(&f, buf, 16, &len), SAT_ERR_PROTO_ENCODE);
}

/* The Frame's oneof may come twice on the wire (protobuf keeps the last).
 * Changes handed to the sink belong to the frame's message: a frame that
 * goes on to another message after a batch's changes is malformed; one
 * whose batch comes last is the batch. (Found by fuzz_frame: the hub took
 * a PullBatch's changes as pushed when a PushBatch followed them.) */
static void test_frame_with_another_message_after_changes(void **state)
{
    static satchel_FieldChange one;
    satchel_FieldChange got[2];
    struct proto_changes_out out = { .items = &one, .count = 1 };
    struct collected col = { got, 0 };
    struct proto_changes_in in = { collect_change, &col, 0 };
    static uint8_t pieces[2][4096];
    static uint8_t joined[8192];
    size_t len[2] = { 0, 0 };
    satchel_Frame f;
    (void)state;

    one.kind = satchel_RecordKind_RECORD_KIND_TASK;
    one.field = satchel_Task_title_tag;
    one.has_value = true;
    one.value.which_value = satchel_FieldValue_text_tag;
    FILL_STR(one.value.value.text, 't');
    one.origin_seq = 1;
    memset(&f, 0, sizeof f);
    f.which_msg = satchel_Frame_push_batch_tag;
    f.msg.push_batch.first_seq = 1;
    proto_bind_changes_encode(&f.msg.push_batch.changes, &out);
    assert_int_equal(proto_encode(satchel_Frame_fields, &f, pieces[0], sizeof pieces[0], &len[0]),
                     SAT_OK);
    memset(&f, 0, sizeof f);
    f.which_msg = satchel_Frame_pull_request_tag;
    f.msg.pull_request.cursor = 7;
    assert_int_equal(proto_encode(satchel_Frame_fields, &f, pieces[1], sizeof pieces[1], &len[1]),
                     SAT_OK);
    for (int batch_last = 0; batch_last < 2; batch_last++) {
        const int first = batch_last ? 1 : 0;
        size_t body = len[0] + len[1];
        joined[0] = 0;
        joined[1] = 0;
        joined[2] = (uint8_t)(body >> 8);
        joined[3] = (uint8_t)body;
        memcpy(joined + 4, pieces[first], len[first]);
        memcpy(joined + 4 + len[first], pieces[1 - first], len[1 - first]);
        memset(&f, 0, sizeof f);
        col.n = 0;
        in.count = 0;
        proto_bind_frame_changes(&f, &in);
        if (!batch_last) {
            assert_int_equal(proto_frame_decode(&f, joined, 4 + body), SAT_ERR_PROTO_DECODE);
        } else {
            assert_int_equal(proto_frame_decode(&f, joined, 4 + body), SAT_OK);
            assert_int_equal(f.which_msg, satchel_Frame_push_batch_tag);
            assert_int_equal(col.n, 1);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_roundtrip_at_max_size),
        cmocka_unit_test(test_field_change_every_value_kind),
        cmocka_unit_test(test_session_messages_roundtrip),
        cmocka_unit_test(test_full_batches_roundtrip_in_frames),
        cmocka_unit_test(test_every_frame_kind_roundtrips),
        cmocka_unit_test(test_too_long_fields_are_rejected),
        cmocka_unit_test(test_oversize_batch_is_rejected),
        cmocka_unit_test(test_pull_batch_bounds),
        cmocka_unit_test(test_batch_encoding_is_nanopbs),
        cmocka_unit_test(test_frame_header_and_truncation),
        cmocka_unit_test(test_frame_with_another_message_after_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
