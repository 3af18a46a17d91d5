/*
 * fuzz_frame.c - the frame reader, the frame decoder and every message of
 * satchel.proto.
 *
 * Input: a byte stream as either end of a sync session reads it. It is
 * read twice with frame_read: once as it comes, once a few bytes at a time
 * with a "would block" between reads; both must cut the same frames and
 * end the same way. Each frame is decoded as a Frame (batch changes
 * streamed to a sink, as the sessions do). The whole input is also decoded
 * as each message type on its own.
 *
 * Whatever decodes must survive a round trip: encoded again it decodes,
 * and encoding that gives the same bytes (a decoder may normalise - drop
 * unknown fields, shorten a varint, cut a string at its first NUL - but
 * what it accepts it can always write, and a second pass changes nothing).
 */
#include "fuzz.h"

#include <pb_decode.h>

/* Changes of one decoded batch, kept for the round trip. */
struct changes {
    satchel_FieldChange items[PROTO_PULL_CHANGES_MAX];
    size_t n;
};

static struct changes first_pass;
static struct changes second_pass;
static struct proto_changes_out changes_out;
static struct frame_reader reader;

static int keep_change(void *arg, const satchel_FieldChange *c)
{
    struct changes *ch = arg;
    FUZZ_CHECK(ch->n < PROTO_PULL_CHANGES_MAX, "a batch decoded past its bound");
    ch->items[ch->n++] = *c;
    return 0;
}

/* ---- message types ---------------------------------------------------------- */

union any_msg {
    satchel_Hlc hlc;
    satchel_Patient patient;
    satchel_Visit visit;
    satchel_VitalSigns vitals;
    satchel_Observation obs;
    satchel_CareNote note;
    satchel_Task task;
    satchel_FieldValue value;
    satchel_FieldChange change;
    satchel_Hello hello;
    satchel_HelloAck hello_ack;
    satchel_PushBatch push;
    satchel_PushAck push_ack;
    satchel_PullRequest pull_req;
    satchel_PullBatch pull;
    satchel_Error error;
    satchel_FirmwareManifest manifest;
    satchel_Frame frame;
};

enum batch { NO_BATCH, PUSH_BATCH, PULL_BATCH, FRAME };

struct msg_type {
    const pb_msgdesc_t *fields;
    size_t size;
    enum batch batch;
};

#define MSG(name, batch) { satchel_##name##_fields, sizeof(satchel_##name), batch }
static const struct msg_type types[] = {
    MSG(Hlc, NO_BATCH),        MSG(Patient, NO_BATCH),   MSG(Visit, NO_BATCH),
    MSG(VitalSigns, NO_BATCH), MSG(Observation, NO_BATCH), MSG(CareNote, NO_BATCH),
    MSG(Task, NO_BATCH),       MSG(FieldValue, NO_BATCH), MSG(FieldChange, NO_BATCH),
    MSG(Hello, NO_BATCH),      MSG(HelloAck, NO_BATCH),  MSG(PushBatch, PUSH_BATCH),
    MSG(PushAck, NO_BATCH),    MSG(PullRequest, NO_BATCH), MSG(PullBatch, PULL_BATCH),
    MSG(Error, NO_BATCH),      MSG(FirmwareManifest, NO_BATCH), MSG(Frame, FRAME),
};

static union any_msg msg;

/* Binds the changes of msg (of type t) to ch for decoding. */
static void bind_decode(const struct msg_type *t, struct proto_changes_in *sink,
                        struct changes *ch)
{
    ch->n = 0;
    sink->on_change = keep_change;
    sink->arg = ch;
    sink->count = 0;
    if (t->batch == PUSH_BATCH)
        proto_bind_changes_decode(&msg.push.changes, sink);
    else if (t->batch == PULL_BATCH)
        proto_bind_changes_decode(&msg.pull.changes, sink);
    else if (t->batch == FRAME)
        proto_bind_frame_changes(&msg.frame, sink);
}

/* Replaces the decode callbacks of the decoded msg with encoders of ch. The
 * frame's message callback goes: nanopb would call it, as an encoder, when
 * the frame is written. */
static void bind_encode(const struct msg_type *t, const struct changes *ch)
{
    pb_callback_t *cb = NULL;
    if (t->batch == PUSH_BATCH || (t->batch == FRAME &&
                                   msg.frame.which_msg == satchel_Frame_push_batch_tag))
        cb = t->batch == FRAME ? &msg.frame.msg.push_batch.changes : &msg.push.changes;
    else if (t->batch == PULL_BATCH ||
             (t->batch == FRAME && msg.frame.which_msg == satchel_Frame_pull_batch_tag))
        cb = t->batch == FRAME ? &msg.frame.msg.pull_batch.changes : &msg.pull.changes;
    if (t->batch == FRAME)
        memset(&msg.frame.cb_msg, 0, sizeof msg.frame.cb_msg);
    if (cb) {
        changes_out.items = ch->items;
        changes_out.count = ch->n;
        proto_bind_changes_encode(cb, &changes_out);
    }
}

static int decode(const struct msg_type *t, struct changes *ch, const uint8_t *buf, size_t len)
{
    struct proto_changes_in sink;
    memset(&msg, 0, sizeof msg);
    bind_decode(t, &sink, ch);
    if (t->batch == FRAME)
        return proto_frame_decode(&msg.frame, buf, len);
    return proto_decode(t->fields, &msg, t->size, buf, len);
}

/* Encodes msg (decoded) into out; SAT_ERR_PROTO_FRAME_SIZE only for a frame
 * whose normal form outgrew the frame bound (a negative enum takes 10
 * bytes however short it came in). */
static int encode(const struct msg_type *t, const struct changes *ch, uint8_t *out, size_t cap,
                  size_t *len)
{
    bind_encode(t, ch);
    if (t->batch == FRAME)
        return proto_frame_encode(&msg.frame, out, cap, len);
    return proto_encode(t->fields, &msg, out, cap, len);
}

/* decode(input) = m1; encode(m1) = e1; decode(e1) = m2; encode(m2) = e2 == e1. */
static void round_trip(const struct msg_type *t, const uint8_t *data, size_t size)
{
    /* Room for the normal form, which can be much longer: an empty change
     * (2 bytes in a batch) comes back with its fixed-length ids (40), a
     * short varint of a negative enum as 10 bytes. */
    size_t cap = 24 * size + 1024;
    uint8_t *e1 = malloc(cap);
    uint8_t *e2 = malloc(cap);
    size_t n1 = 0;
    size_t n2 = 0;
    int ret;
    FUZZ_CHECK(e1 && e2, "out of memory");
    if (decode(t, &first_pass, data, size) != SAT_OK)
        goto exit;
    ret = encode(t, &first_pass, e1, cap, &n1);
    if (ret == SAT_ERR_PROTO_FRAME_SIZE && t->batch == FRAME)
        goto exit;
    FUZZ_CHECK(ret == SAT_OK, "a decoded message does not encode (%s)", proto_last_error());
    ret = decode(t, &second_pass, e1, n1);
    FUZZ_CHECK(ret == SAT_OK, "an encoded message does not decode (%s)", proto_last_error());
    FUZZ_CHECK(second_pass.n == first_pass.n, "a batch lost changes: %zu then %zu",
               first_pass.n, second_pass.n);
    ret = encode(t, &second_pass, e2, cap, &n2);
    FUZZ_CHECK(ret == SAT_OK, "a re-decoded message does not encode (%s)", proto_last_error());
    FUZZ_CHECK(n1 == n2 && memcmp(e1, e2, n1) == 0,
               "a message changed in a second round trip (%zu then %zu bytes)", n1, n2);
exit:
    free(e1);
    free(e2);
}

/* ---- frames from a stream --------------------------------------------------- */

/* A link that answers "would block" every other read and gives at most
 * `piece` bytes. */
struct trickle {
    const uint8_t *in;
    size_t len;
    size_t pos;
    size_t piece;
    unsigned calls;
};

static int trickle_recv(void *arg, void *buf, size_t len, size_t *got)
{
    struct trickle *t = arg;
    size_t n = t->len - t->pos;
    if (t->calls++ % 2 == 0)
        return SAT_ERR_WOULD_BLOCK;
    if (n == 0)
        return SAT_ERR_CLOSED;
    if (n > len)
        n = len;
    if (n > t->piece)
        n = t->piece;
    memcpy(buf, t->in + t->pos, n);
    t->pos += n;
    *got = n;
    return SAT_OK;
}

static int no_send(void *arg, const void *buf, size_t len, size_t *sent)
{
    (void)arg;
    (void)buf;
    (void)len;
    (void)sent;
    return SAT_ERR_INVALID;
}

FUZZ_FRAME_STREAM_MUTATOR

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct msg_type *frame_type = &types[sizeof types / sizeof types[0] - 1];
    struct fuzz_link whole = { data, size, 0, 0, NULL };
    struct frame_io io = fuzz_link_io(&whole);
    struct trickle tr = { data, size, 0, 1 + size % 7, 0 };
    struct frame_io tio = { no_send, trickle_recv, &tr };
    uint8_t *cut = malloc(size ? size : 1); /* the frames of the first read, end to end */
    size_t cut_len = 0;
    size_t frames = 0;
    int end_whole;
    int end_trickle;
    FUZZ_CHECK(cut != NULL, "out of memory");

    /* First read: as it comes. */
    frame_reader_init(&reader);
    for (;;) {
        const uint8_t *f = NULL;
        size_t len = 0;
        end_whole = frame_read(&reader, &io, &f, &len);
        if (end_whole != SAT_OK)
            break;
        FUZZ_CHECK(len >= PROTO_FRAME_HEADER_BYTES && cut_len + len <= size,
                   "frame_read returned %zu bytes", len);
        memcpy(cut + cut_len, f, len);
        cut_len += len;
        frames++;
        round_trip(frame_type, f, len);
    }
    FUZZ_CHECK(end_whole == SAT_ERR_CLOSED || end_whole == SAT_ERR_PROTO_FRAME_SIZE,
               "frame_read ended with %d", end_whole);

    /* Second read: a few bytes at a time, with waits: the same frames. */
    frame_reader_init(&reader);
    for (size_t at = 0;;) {
        const uint8_t *f = NULL;
        size_t len = 0;
        end_trickle = frame_read(&reader, &tio, &f, &len);
        if (end_trickle == SAT_ERR_WOULD_BLOCK)
            continue;
        if (end_trickle != SAT_OK)
            break;
        FUZZ_CHECK(at + len <= cut_len && memcmp(cut + at, f, len) == 0,
                   "frame_read cut another frame when the bytes came slowly");
        at += len;
        frames--;
    }
    FUZZ_CHECK(frames == 0 && end_trickle == end_whole,
               "frame_read found %zu frames fewer, ending with %d, not %d", frames, end_trickle,
               end_whole);
    free(cut);

    /* The whole input as each message on its own. */
    for (size_t i = 0; i + 1 < sizeof types / sizeof types[0]; i++)
        round_trip(&types[i], data, size);
    return 0;
}
