/* hub_session.c - see hub_session.h. */
#include "hub_session.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sat_err.h"

void hub_session_init(struct hub_session *s, const struct frame_io *io, struct hub_store *store,
                      const uint8_t peer_id[HUB_ID_BYTES], int64_t (*clock_ms)(void *arg),
                      void *clock_arg)
{
    memset(s, 0, offsetof(struct hub_session, rd)); /* not the 200 KiB of buffers */
    s->phase = HUB_SESS_WAIT_HELLO;
    s->io = *io;
    s->store = store;
    memcpy(s->device, peer_id, HUB_ID_BYTES);
    s->clock_ms = clock_ms;
    s->clock_arg = clock_arg;
    frame_reader_init(&s->rd);
    frame_writer_init(&s->wr);
}

int hub_session_wants_read(const struct hub_session *s)
{
    return !frame_writer_busy(&s->wr);
}

static int note(struct hub_session *s, int err, const char *fmt, va_list ap)
{
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    s->err = err;
    return err;
}

/* Sends an Error to the device and ends the session once it is out. */
static int refuse(struct hub_session *s, int err, satchel_ErrorCode code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int refuse(struct hub_session *s, int err, satchel_ErrorCode code, const char *fmt, ...)
{
    satchel_Frame f = satchel_Frame_init_zero;
    va_list ap;
    va_start(ap, fmt);
    note(s, err, fmt, ap);
    va_end(ap);
    f.which_msg = satchel_Frame_error_tag;
    f.msg.error.code = code;
    snprintf(f.msg.error.reason, sizeof f.msg.error.reason, "%s", s->errmsg);
    if (frame_writer_busy(&s->wr) || frame_writer_put(&s->wr, &f) != SAT_OK) {
        s->phase = HUB_SESS_FAILED;
        return err;
    }
    s->phase = HUB_SESS_CLOSING;
    return SAT_OK;
}

static int take_change(void *arg, const satchel_FieldChange *c)
{
    struct hub_session *s = arg;
    if (s->batch_n >= PROTO_BATCH_CHANGES_MAX)
        return -1;
    s->batch[s->batch_n++] = *c;
    return 0;
}

static satchel_ErrorCode code_for(int err)
{
    switch (err) {
    case SAT_ERR_HUB_OUT_OF_SCOPE: return satchel_ErrorCode_ERROR_CODE_OUT_OF_SCOPE;
    case SAT_ERR_HUB_OUT_OF_ORDER: return satchel_ErrorCode_ERROR_CODE_OUT_OF_ORDER;
    case SAT_ERR_HUB_REVOKED: return satchel_ErrorCode_ERROR_CODE_REVOKED;
    case SAT_ERR_HUB_NOT_ORIGIN:
    case SAT_ERR_HUB_BAD_CHANGE:
    case SAT_ERR_INVALID: return satchel_ErrorCode_ERROR_CODE_MALFORMED;
    default: return satchel_ErrorCode_ERROR_CODE_INTERNAL;
    }
}

static int on_hello(struct hub_session *s, const satchel_Hello *h)
{
    satchel_Frame f = satchel_Frame_init_zero;
    struct hub_device dev;
    int ret;
    if (memcmp(h->device_id, s->device, HUB_ID_BYTES) != 0)
        return refuse(s, SAT_ERR_SYNC_PROTOCOL, satchel_ErrorCode_ERROR_CODE_MALFORMED,
                      "Hello names another device than the certificate");
    if (h->protocol_version != PROTO_VERSION)
        return refuse(s, SAT_ERR_SYNC_VERSION, satchel_ErrorCode_ERROR_CODE_UNSUPPORTED_VERSION,
                      "protocol %u not served (hub speaks %d)", (unsigned)h->protocol_version,
                      PROTO_VERSION);
    ret = hub_store_device_checkin(s->store, s->device, h->pull_cursor, &dev);
    if (ret != SAT_OK)
        return refuse(s, ret, code_for(ret), "%s", hub_store_errmsg(s->store));
    f.which_msg = satchel_Frame_hello_ack_tag;
    f.msg.hello_ack.protocol_version = PROTO_VERSION;
    f.msg.hello_ack.hub_time_ms = (uint64_t)s->clock_ms(s->clock_arg);
    f.msg.hello_ack.standing = dev.revoked ? satchel_Standing_STANDING_REVOKED
                                           : satchel_Standing_STANDING_OK;
    f.msg.hello_ack.acked_seq = dev.acked_seq;
    s->acked = dev.acked_seq;
    ret = frame_writer_put(&s->wr, &f);
    if (ret != SAT_OK)
        return refuse(s, ret, satchel_ErrorCode_ERROR_CODE_INTERNAL, "cannot encode HelloAck");
    if (dev.revoked) {
        s->err = SAT_ERR_HUB_REVOKED;
        snprintf(s->errmsg, sizeof s->errmsg, "revoked device told to wipe itself");
        s->phase = HUB_SESS_CLOSING;
        return SAT_OK;
    }
    s->phase = HUB_SESS_SERVE;
    return SAT_OK;
}

static int on_push(struct hub_session *s, const satchel_PushBatch *b)
{
    satchel_Frame f = satchel_Frame_init_zero;
    struct hub_push_result r;
    int ret;
    /* A correct device starts after what HelloAck said the hub holds:
     * anything else is a replayed (or gapped) batch. */
    if (b->first_seq != s->acked + 1 || s->batch_n == 0)
        return refuse(s, SAT_ERR_HUB_OUT_OF_ORDER, satchel_ErrorCode_ERROR_CODE_OUT_OF_ORDER,
                      "push batch starts at %llu, the hub expects %llu",
                      (unsigned long long)b->first_seq, (unsigned long long)(s->acked + 1));
    ret = hub_store_push(s->store, s->device, b->first_seq, s->batch, s->batch_n, &r);
    if (ret != SAT_OK)
        return refuse(s, ret, code_for(ret), "%s", hub_store_errmsg(s->store));
    s->acked = r.acked_seq;
    s->stats.pushed_stored += r.stored;
    s->stats.pushed_skipped += r.skipped;
    s->stats.conflicts += r.conflicts;
    f.which_msg = satchel_Frame_push_ack_tag;
    f.msg.push_ack.acked_seq = r.acked_seq;
    return frame_writer_put(&s->wr, &f);
}

static int on_pull(struct hub_session *s, const satchel_PullRequest *req)
{
    satchel_Frame f = satchel_Frame_init_zero;
    struct hub_pull_result r;
    struct proto_changes_out out;
    satchel_FieldChange *changes;
    size_t max = req->max_changes;
    int ret;
    /* 0 is what a device that never said gets: the original batch size. */
    if (max == 0)
        max = PROTO_BATCH_CHANGES_MAX;
    if (max > PROTO_PULL_CHANGES_MAX)
        max = PROTO_PULL_CHANGES_MAX;
    /* Only while the batch is built and encoded: a session holds no more
     * than a push batch between frames. */
    changes = malloc(max * sizeof *changes);
    if (!changes)
        return refuse(s, SAT_ERR_NO_MEMORY, satchel_ErrorCode_ERROR_CODE_INTERNAL,
                      "out of memory for a pull of %zu changes", max);
    ret = hub_store_pull(s->store, s->device, req->cursor, changes, max, &r);
    if (ret != SAT_OK) {
        free(changes);
        return refuse(s, ret, code_for(ret), "%s", hub_store_errmsg(s->store));
    }
    out.items = changes;
    out.count = r.count;
    f.which_msg = satchel_Frame_pull_batch_tag;
    proto_bind_changes_encode(&f.msg.pull_batch.changes, &out);
    f.msg.pull_batch.next_cursor = r.next_cursor;
    f.msg.pull_batch.more = r.more != 0;
    f.msg.pull_batch.purge_ids_count = (pb_size_t)r.purge_count;
    for (size_t i = 0; i < r.purge_count; i++) {
        memcpy(f.msg.pull_batch.purge_ids[i].bytes, r.purge_ids[i], HUB_ID_BYTES);
        f.msg.pull_batch.purge_ids[i].size = HUB_ID_BYTES;
    }
    s->stats.pulled += r.count;
    s->stats.purged += r.purge_count;
    ret = frame_writer_put(&s->wr, &f);
    free(changes);
    return ret;
}

static int step_once(struct hub_session *s)
{
    struct proto_changes_in sink = { take_change, s, 0 };
    satchel_Frame f = satchel_Frame_init_zero;
    const uint8_t *buf = NULL;
    size_t len = 0;
    int ret = frame_read(&s->rd, &s->io, &buf, &len);
    if (ret == SAT_ERR_WOULD_BLOCK)
        return ret;
    if (ret == SAT_ERR_CLOSED && s->phase == HUB_SESS_SERVE) {
        s->phase = HUB_SESS_DONE;
        return SAT_OK;
    }
    if (ret == SAT_ERR_PROTO_FRAME_SIZE)
        return refuse(s, ret, satchel_ErrorCode_ERROR_CODE_FRAME_TOO_LARGE,
                      "frame larger than %u bytes", (unsigned)PROTO_FRAME_BYTES_MAX);
    if (ret != SAT_OK) {
        s->phase = HUB_SESS_FAILED;
        s->err = ret;
        snprintf(s->errmsg, sizeof s->errmsg, "link lost: %s", sat_strerror(ret));
        return ret;
    }
    s->batch_n = 0;
    proto_bind_frame_changes(&f, &sink);
    if (proto_frame_decode(&f, buf, len) != SAT_OK)
        return refuse(s, SAT_ERR_SYNC_PROTOCOL, satchel_ErrorCode_ERROR_CODE_MALFORMED,
                      "malformed frame (%s)", proto_last_error());
    s->stats.requests++;
    if (s->phase == HUB_SESS_WAIT_HELLO) {
        if (f.which_msg != satchel_Frame_hello_tag)
            return refuse(s, SAT_ERR_SYNC_PROTOCOL, satchel_ErrorCode_ERROR_CODE_OUT_OF_ORDER,
                          "expected Hello first, got message %u", (unsigned)f.which_msg);
        return on_hello(s, &f.msg.hello);
    }
    switch (f.which_msg) {
    case satchel_Frame_push_batch_tag: return on_push(s, &f.msg.push_batch);
    case satchel_Frame_pull_request_tag: return on_pull(s, &f.msg.pull_request);
    case satchel_Frame_hello_tag:
        return refuse(s, SAT_ERR_SYNC_PROTOCOL, satchel_ErrorCode_ERROR_CODE_OUT_OF_ORDER,
                      "a second Hello in one session");
    default:
        return refuse(s, SAT_ERR_SYNC_PROTOCOL, satchel_ErrorCode_ERROR_CODE_UNKNOWN_MESSAGE,
                      "unknown or unexpected message %u", (unsigned)f.which_msg);
    }
}

int hub_session_step(struct hub_session *s)
{
    for (;;) {
        int ret;
        if (frame_writer_busy(&s->wr)) {
            ret = frame_writer_flush(&s->wr, &s->io);
            if (ret == SAT_ERR_WOULD_BLOCK)
                return ret;
            if (ret != SAT_OK) {
                s->phase = HUB_SESS_FAILED;
                s->err = ret;
                snprintf(s->errmsg, sizeof s->errmsg, "link lost: %s", sat_strerror(ret));
                return ret;
            }
        }
        if (s->phase == HUB_SESS_CLOSING) {
            s->phase = HUB_SESS_FAILED;
            return s->err ? s->err : SAT_ERR_SYNC_PROTOCOL;
        }
        if (s->phase == HUB_SESS_DONE)
            return SAT_OK;
        if (s->phase == HUB_SESS_FAILED)
            return s->err;
        ret = step_once(s);
        if (ret != SAT_OK)
            return ret;
    }
}
