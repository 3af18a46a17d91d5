/* sync_device.c - see sync_device.h. */
#include "sync_device.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "sat_err.h"

static int fail(struct sync_device *d, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Undoes the pulled batch being applied, if any. */
static void abort_apply(struct sync_device *d)
{
    if (d->applying)
        d->replica.apply_abort(d->replica.arg);
    d->applying = 0;
    d->batch_n = 0;
}

/* Every failure ends here: no transaction outlives it. */
static int fail(struct sync_device *d, int err, const char *fmt, ...)
{
    va_list ap;
    abort_apply(d);
    va_start(ap, fmt);
    vsnprintf(d->errmsg, sizeof d->errmsg, fmt, ap);
    va_end(ap);
    d->err = err;
    d->phase = SYNC_DEV_FAILED;
    return err;
}

void sync_device_init(struct sync_device *d, const struct frame_io *io,
                      const struct sync_replica *replica,
                      const uint8_t device_id[SYNC_DEVICE_ID_BYTES], const char *firmware_version)
{
    memset(d, 0, offsetof(struct sync_device, rd)); /* not the 200 KiB of buffers */
    d->phase = SYNC_DEV_HELLO;
    d->io = *io;
    d->replica = *replica;
    memcpy(d->device_id, device_id, SYNC_DEVICE_ID_BYTES);
    snprintf(d->firmware_version, sizeof d->firmware_version, "%s", firmware_version);
    frame_reader_init(&d->rd);
    frame_writer_init(&d->wr);
}

int sync_device_wants_read(const struct sync_device *d)
{
    return !frame_writer_busy(&d->wr);
}

/* Queues f and pushes out what the stream takes. */
static int send_frame(struct sync_device *d, const satchel_Frame *f, enum sync_device_phase next)
{
    int ret = frame_writer_put(&d->wr, f);
    if (ret != SAT_OK)
        return fail(d, ret, "cannot encode a %u frame", (unsigned)f->which_msg);
    d->phase = next;
    return SAT_OK;
}

/* Gives the pulled changes waiting in d->batch to the store. */
static int flush_changes(struct sync_device *d)
{
    int ret = SAT_OK;
    if (d->batch_n > 0)
        ret = d->replica.apply_changes(d->replica.arg, d->batch, d->batch_n, &d->pull_conflicts);
    d->batch_n = 0;
    if (ret != SAT_OK)
        d->apply_err = ret;
    return ret;
}

static int open_apply(struct sync_device *d)
{
    int ret = SAT_OK;
    if (!d->applying) {
        ret = d->replica.apply_begin(d->replica.arg);
        if (ret == SAT_OK)
            d->applying = 1;
        else
            d->apply_err = ret;
    }
    return ret;
}

/* Takes a pulled change as it is decoded: the batch's transaction opens
 * with its first change, and the changes go to the store a bufferful at a
 * time. Changes in any other message, or at any other time, are refused. */
static int take_change(void *arg, const satchel_FieldChange *c)
{
    struct sync_device *d = arg;
    if (d->phase != SYNC_DEV_WAIT_PULL)
        return -1;
    if (open_apply(d) != SAT_OK)
        return -1;
    if (d->batch_n == PROTO_BATCH_CHANGES_MAX && flush_changes(d) != SAT_OK)
        return -1;
    d->batch[d->batch_n++] = *c;
    d->pull_n++;
    return 0;
}

/* Reads one frame; SAT_OK with *f decoded. Batch changes land in d->batch. */
static int recv_frame(struct sync_device *d, satchel_Frame *f)
{
    struct proto_changes_in sink = { take_change, d, 0 };
    const uint8_t *buf = NULL;
    size_t len = 0;
    int ret = frame_read(&d->rd, &d->io, &buf, &len);
    if (ret == SAT_ERR_WOULD_BLOCK)
        return ret;
    if (ret == SAT_ERR_PROTO_FRAME_SIZE)
        return fail(d, ret, "the hub sent an oversize frame");
    if (ret != SAT_OK)
        return fail(d, ret, "link lost while waiting for the hub: %s", sat_strerror(ret));
    d->stats.bytes_in += len;
    memset(f, 0, sizeof *f);
    d->batch_n = 0;
    d->pull_n = 0;
    d->pull_conflicts = 0;
    d->apply_err = SAT_OK;
    proto_bind_frame_changes(f, &sink);
    ret = proto_frame_decode(f, buf, len);
    if (ret != SAT_OK && d->apply_err != SAT_OK)
        return fail(d, d->apply_err, "cannot apply the hub's changes: %s",
                    sat_strerror(d->apply_err));
    if (ret != SAT_OK)
        return fail(d, SAT_ERR_SYNC_PROTOCOL, "malformed frame from the hub (%s)",
                    proto_last_error());
    if (f->which_msg == satchel_Frame_error_tag)
        return fail(d, SAT_ERR_SYNC_PEER, "hub refused: %s (code %d)", f->msg.error.reason,
                    (int)f->msg.error.code);
    return SAT_OK;
}

static int expect(struct sync_device *d, const satchel_Frame *f, pb_size_t tag, const char *what)
{
    if (f->which_msg != tag)
        return fail(d, SAT_ERR_SYNC_PROTOCOL, "expected %s from the hub, got message %u", what,
                    (unsigned)f->which_msg);
    d->stats.round_trips++;
    return SAT_OK;
}

static int step_once(struct sync_device *d)
{
    satchel_Frame *f = NULL;
    static const satchel_Frame zero = satchel_Frame_init_zero;
    int ret;
    satchel_Frame frame = zero;
    f = &frame;

    switch (d->phase) {
    case SYNC_DEV_HELLO:
        ret = d->replica.state(d->replica.arg, &d->cursor, &d->acked);
        if (ret != SAT_OK)
            return fail(d, ret, "cannot read the sync state: %s", sat_strerror(ret));
        f->which_msg = satchel_Frame_hello_tag;
        f->msg.hello.protocol_version = PROTO_VERSION;
        memcpy(f->msg.hello.device_id, d->device_id, SYNC_DEVICE_ID_BYTES);
        snprintf(f->msg.hello.firmware_version, sizeof f->msg.hello.firmware_version, "%s",
                 d->firmware_version);
        f->msg.hello.pull_cursor = d->cursor;
        f->msg.hello.last_pushed_seq = d->acked;
        return send_frame(d, f, SYNC_DEV_WAIT_HELLO_ACK);

    case SYNC_DEV_WAIT_HELLO_ACK:
        ret = recv_frame(d, f);
        if (ret == SAT_OK)
            ret = expect(d, f, satchel_Frame_hello_ack_tag, "HelloAck");
        if (ret != SAT_OK)
            return ret;
        d->stats.hub_time_ms = (int64_t)f->msg.hello_ack.hub_time_ms;
        if (f->msg.hello_ack.standing == satchel_Standing_STANDING_REVOKED) {
            ret = d->replica.wipe(d->replica.arg);
            return fail(d, SAT_ERR_SYNC_REVOKED,
                        ret == SAT_OK ? "the hub revoked this device: keys and records wiped"
                                      : "the hub revoked this device, but the wipe failed");
        }
        if (f->msg.hello_ack.protocol_version != PROTO_VERSION)
            return fail(d, SAT_ERR_SYNC_VERSION, "hub speaks protocol %u, this device %d",
                        (unsigned)f->msg.hello_ack.protocol_version, PROTO_VERSION);
        /* The hub's word on what it holds wins: an ack lost on a cut link
         * moves forward here; a hub restored from backup moves it back, and
         * the device resends what the hub lacks. */
        if (f->msg.hello_ack.acked_seq > d->acked) {
            ret = d->replica.set_push_acked(d->replica.arg, f->msg.hello_ack.acked_seq);
            if (ret != SAT_OK)
                return fail(d, ret, "cannot record the hub's acknowledgement");
        }
        d->acked = f->msg.hello_ack.acked_seq;
        d->phase = SYNC_DEV_PUSH;
        return SAT_OK;

    case SYNC_DEV_PUSH: {
        struct proto_changes_out out;
        size_t n = 0;
        ret = d->replica.changes(d->replica.arg, d->acked, PROTO_BATCH_CHANGES_MAX, d->batch, &n);
        if (ret != SAT_OK)
            return fail(d, ret, "cannot read the change log: %s", sat_strerror(ret));
        if (n == 0) {
            d->phase = SYNC_DEV_PULL;
            return SAT_OK;
        }
        d->batch_n = n;
        d->batch_last = d->batch[n - 1].origin_seq;
        out.items = d->batch;
        out.count = n;
        f->which_msg = satchel_Frame_push_batch_tag;
        f->msg.push_batch.first_seq = d->batch[0].origin_seq;
        proto_bind_changes_encode(&f->msg.push_batch.changes, &out);
        return send_frame(d, f, SYNC_DEV_WAIT_PUSH_ACK);
    }

    case SYNC_DEV_WAIT_PUSH_ACK: {
        size_t sent = d->batch_n;
        ret = recv_frame(d, f);
        if (ret == SAT_OK)
            ret = expect(d, f, satchel_Frame_push_ack_tag, "PushAck");
        if (ret != SAT_OK)
            return ret;
        if (f->msg.push_ack.acked_seq < d->batch_last)
            return fail(d, SAT_ERR_SYNC_PROTOCOL, "hub acknowledged %llu of a batch up to %llu",
                        (unsigned long long)f->msg.push_ack.acked_seq,
                        (unsigned long long)d->batch_last);
        ret = d->replica.set_push_acked(d->replica.arg, f->msg.push_ack.acked_seq);
        if (ret != SAT_OK)
            return fail(d, ret, "cannot record the hub's acknowledgement");
        d->acked = f->msg.push_ack.acked_seq;
        d->stats.pushed += sent;
        d->phase = SYNC_DEV_PUSH;
        return SAT_OK;
    }

    case SYNC_DEV_PULL:
        f->which_msg = satchel_Frame_pull_request_tag;
        f->msg.pull_request.cursor = d->cursor;
        f->msg.pull_request.max_changes = PROTO_PULL_CHANGES_MAX;
        return send_frame(d, f, SYNC_DEV_WAIT_PULL);

    case SYNC_DEV_WAIT_PULL: {
        satchel_PullBatch *b = &f->msg.pull_batch;
        /* Decoding applies the changes inside the batch's transaction. */
        ret = recv_frame(d, f);
        if (ret == SAT_OK)
            ret = expect(d, f, satchel_Frame_pull_batch_tag, "PullBatch");
        if (ret != SAT_OK)
            return ret;
        if (b->next_cursor < d->cursor)
            return fail(d, SAT_ERR_SYNC_PROTOCOL, "hub moved the cursor backwards");
        d->purge_n = b->purge_ids_count;
        for (size_t i = 0; i < d->purge_n; i++) {
            if (b->purge_ids[i].size != SYNC_DEVICE_ID_BYTES)
                return fail(d, SAT_ERR_SYNC_PROTOCOL, "malformed purge id from the hub");
            memcpy(d->purge[i], b->purge_ids[i].bytes, SYNC_DEVICE_ID_BYTES);
        }
        /* An empty batch that leaves the cursor where it is writes nothing. */
        if (d->pull_n > 0 || d->purge_n > 0 || b->next_cursor != d->cursor) {
            ret = open_apply(d);
            if (ret == SAT_OK)
                ret = flush_changes(d);
            if (ret == SAT_OK)
                ret = d->replica.apply_commit(d->replica.arg,
                                              (const uint8_t(*)[SYNC_DEVICE_ID_BYTES])d->purge,
                                              d->purge_n, b->next_cursor, &d->pull_conflicts);
            if (ret != SAT_OK)
                return fail(d, ret, "cannot apply the hub's changes: %s", sat_strerror(ret));
            d->applying = 0;
        }
        d->cursor = b->next_cursor;
        d->stats.pulled += d->pull_n;
        d->stats.purged += d->purge_n;
        d->stats.conflicts += d->pull_conflicts;
        d->phase = b->more ? SYNC_DEV_PULL : SYNC_DEV_DONE;
        return SAT_OK;
    }

    case SYNC_DEV_DONE:
        return SAT_OK;
    case SYNC_DEV_FAILED:
        return d->err;
    }
    return fail(d, SAT_ERR_INVALID, "bad session state");
}

int sync_device_step(struct sync_device *d)
{
    for (;;) {
        int ret;
        if (frame_writer_busy(&d->wr)) {
            ret = frame_writer_flush(&d->wr, &d->io);
            d->stats.bytes_out = d->wr.bytes_total;
            if (ret == SAT_ERR_WOULD_BLOCK)
                return ret;
            if (ret != SAT_OK)
                return fail(d, ret, "link lost while sending to the hub: %s", sat_strerror(ret));
        }
        if (d->phase == SYNC_DEV_DONE)
            return SAT_OK;
        ret = step_once(d);
        if (ret != SAT_OK)
            return ret;
    }
}
