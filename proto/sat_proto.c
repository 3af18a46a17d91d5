/* sat_proto.c - see sat_proto.h. */
#include "sat_proto.h"

#include <pb_decode.h>
#include <pb_encode.h>
#include <string.h>

#include "sat_err.h"

/* Worst-case encoded Frames: a push batch with all its changes at their
 * maximal size; a pull batch at its byte bound with every purge id, its
 * cursor and its flag; plus the oneof's tag and length prefix. */
#define CHANGE_ENCODED_MAX (satchel_FieldChange_size + 1 + 3)
#define PUSH_BATCH_ENCODED_MAX (PROTO_BATCH_CHANGES_MAX * CHANGE_ENCODED_MAX + 11)
#define PULL_BATCH_ENCODED_MAX (PROTO_PULL_CHANGES_BYTES_MAX + 64 * (16 + 2) + 11 + 2)
_Static_assert(PUSH_BATCH_ENCODED_MAX + 1 + 5 <= PROTO_FRAME_BYTES_MAX,
               "PROTO_FRAME_BYTES_MAX too small for a full push batch");
_Static_assert(PULL_BATCH_ENCODED_MAX + 1 + 5 <= PROTO_FRAME_BYTES_MAX,
               "PROTO_FRAME_BYTES_MAX too small for a full pull batch");
/* A pull batch always has room for one change, however large. */
_Static_assert(CHANGE_ENCODED_MAX <= PROTO_PULL_CHANGES_BYTES_MAX,
               "PROTO_PULL_CHANGES_BYTES_MAX below one maximal change");
_Static_assert(PROTO_BATCH_CHANGES_MAX <= PROTO_PULL_CHANGES_MAX, "pull cap below push cap");
_Static_assert(sizeof(((satchel_PullBatch *)0)->purge_ids) /
                       sizeof(((satchel_PullBatch *)0)->purge_ids[0]) ==
                   PROTO_PULL_PURGE_MAX,
               "PROTO_PULL_PURGE_MAX must match PullBatch.purge_ids max_count");

static _Thread_local const char *last_error = "";

/* The most changes a batch of the message holding `field` may carry. */
static size_t batch_changes_max(const pb_field_t *field)
{
    return field->descriptor == satchel_PullBatch_fields ? PROTO_PULL_CHANGES_MAX
                                                         : PROTO_BATCH_CHANGES_MAX;
}

_Static_assert(satchel_FieldChange_size <= UINT16_MAX, "a change's size fits sizes[]");

/* Writes each change as a submessage: its tag, its size, its fields. In
 * nanopb's sizing pass (a stream without a callback) only the sizes are
 * worked out, and kept for the writing pass (pb_encode_submessage would
 * size each change again there). */
static bool encode_changes(pb_ostream_t *os, const pb_field_t *field, void *const *arg)
{
    struct proto_changes_out *src = *arg;
    int sizing = os->callback == NULL;
    int use_sizes = !sizing && src->sized;
    bool ok = src->count <= batch_changes_max(field);
    if (!ok)
        PB_SET_ERROR(os, "too many changes in a batch");
    src->sized = 0;
    for (size_t i = 0; ok && i < src->count; i++) {
        const satchel_FieldChange *c = &src->items[i];
        size_t size = src->sizes[i];
        size_t before;
        if (!use_sizes && !pb_get_encoded_size(&size, satchel_FieldChange_fields, c)) {
            /* Encoding it fails too, and says why (a string without its
             * end). */
            if (pb_encode_submessage(os, satchel_FieldChange_fields, c))
                PB_SET_ERROR(os, "a change could not be sized");
            ok = false;
            break;
        }
        src->sizes[i] = (uint16_t)size;
        ok = pb_encode_tag_for_field(os, field) && pb_encode_varint(os, size);
        if (ok && sizing) {
            ok = pb_write(os, NULL, size);
            continue;
        }
        before = os->bytes_written;
        ok = ok && pb_encode(os, satchel_FieldChange_fields, c);
        if (ok && os->bytes_written - before != size) {
            PB_SET_ERROR(os, "a change's size changed while it was encoded");
            ok = false;
        }
    }
    src->sized = ok && sizing;
    return ok;
}

static bool decode_change(pb_istream_t *is, const pb_field_t *field, void **arg)
{
    struct proto_changes_in *sink = *arg;
    satchel_FieldChange change = satchel_FieldChange_init_zero;
    int rc;
    if (sink->count >= batch_changes_max(field))
        PB_RETURN_ERROR(is, "too many changes in a batch");
    if (!pb_decode(is, satchel_FieldChange_fields, &change))
        return false;
    sink->count++;
    rc = sink->on_change ? sink->on_change(sink->arg, &change) : 0;
    if (rc != 0)
        PB_RETURN_ERROR(is, "change rejected by receiver");
    return true;
}

void proto_bind_changes_encode(pb_callback_t *cb, struct proto_changes_out *src)
{
    src->sized = 0;
    cb->funcs.encode = encode_changes;
    cb->arg = src;
}

void proto_bind_changes_decode(pb_callback_t *cb, struct proto_changes_in *sink)
{
    cb->funcs.decode = decode_change;
    cb->arg = sink;
}

/* Called by nanopb when the Frame's oneof is about to be decoded: binds the
 * batch's changes to the sink waiting in frame->cb_msg.arg. The oneof may
 * come more than once (protobuf keeps the last): once changes went to the
 * sink, another message would make them part of no message the frame
 * holds, so that frame is malformed. */
static bool frame_msg_callback(pb_istream_t *is, const pb_field_t *field, void **arg)
{
    struct proto_changes_in *sink = *arg;
    if (sink->count > 0)
        PB_RETURN_ERROR(is, "another message after a batch's changes");
    if (field->tag == satchel_Frame_push_batch_tag) {
        satchel_PushBatch *b = field->pData;
        proto_bind_changes_decode(&b->changes, sink);
    } else if (field->tag == satchel_Frame_pull_batch_tag) {
        satchel_PullBatch *b = field->pData;
        proto_bind_changes_decode(&b->changes, sink);
    }
    return true;
}

void proto_bind_frame_changes(satchel_Frame *frame, struct proto_changes_in *sink)
{
    frame->cb_msg.funcs.decode = frame_msg_callback;
    frame->cb_msg.arg = sink;
}

size_t proto_change_batch_bytes(const satchel_FieldChange *change)
{
    size_t body = 0;
    if (!pb_get_encoded_size(&body, satchel_FieldChange_fields, change))
        return 0;
    /* One byte of tag (field 1 or 2), a varint length, the message. */
    return 1 + (body < 128 ? 1 : body < 16384 ? 2 : 3) + body;
}

int proto_encode(const pb_msgdesc_t *fields, const void *msg, uint8_t *buf, size_t cap,
                 size_t *len)
{
    pb_ostream_t os = pb_ostream_from_buffer(buf, cap);
    if (!pb_encode(&os, fields, msg)) {
        last_error = PB_GET_ERROR(&os);
        return SAT_ERR_PROTO_ENCODE;
    }
    *len = os.bytes_written;
    return SAT_OK;
}

int proto_decode(const pb_msgdesc_t *fields, void *msg, size_t msg_size, const uint8_t *buf,
                 size_t len)
{
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    if (!pb_decode_ex(&is, fields, msg, PB_DECODE_NOINIT) ) {
        last_error = PB_GET_ERROR(&is);
        /* Never hand back a half-filled message. */
        memset(msg, 0, msg_size);
        return SAT_ERR_PROTO_DECODE;
    }
    return SAT_OK;
}

int proto_frame_encode(const satchel_Frame *frame, uint8_t *buf, size_t cap, size_t *len)
{
    size_t body = 0;
    int ret;
    if (cap < PROTO_FRAME_HEADER_BYTES)
        return SAT_ERR_PROTO_ENCODE;
    ret = proto_encode(satchel_Frame_fields, frame, buf + PROTO_FRAME_HEADER_BYTES,
                       cap - PROTO_FRAME_HEADER_BYTES, &body);
    if (ret != SAT_OK)
        return ret;
    if (body > PROTO_FRAME_BYTES_MAX)
        return SAT_ERR_PROTO_FRAME_SIZE;
    buf[0] = (uint8_t)(body >> 24);
    buf[1] = (uint8_t)(body >> 16);
    buf[2] = (uint8_t)(body >> 8);
    buf[3] = (uint8_t)body;
    *len = body + PROTO_FRAME_HEADER_BYTES;
    return SAT_OK;
}

int proto_frame_header(const uint8_t header[PROTO_FRAME_HEADER_BYTES], size_t *payload_len)
{
    uint32_t n = ((uint32_t)header[0] << 24) | ((uint32_t)header[1] << 16) |
                 ((uint32_t)header[2] << 8) | header[3];
    if (n > PROTO_FRAME_BYTES_MAX)
        return SAT_ERR_PROTO_FRAME_SIZE;
    *payload_len = n;
    return SAT_OK;
}

int proto_frame_decode(satchel_Frame *frame, const uint8_t *buf, size_t len)
{
    size_t body = 0;
    int ret;
    if (len < PROTO_FRAME_HEADER_BYTES)
        return SAT_ERR_PROTO_DECODE;
    ret = proto_frame_header(buf, &body);
    if (ret != SAT_OK)
        return ret;
    if (body != len - PROTO_FRAME_HEADER_BYTES)
        return SAT_ERR_PROTO_DECODE;
    return proto_decode(satchel_Frame_fields, frame, sizeof *frame,
                        buf + PROTO_FRAME_HEADER_BYTES, body);
}

const char *proto_last_error(void)
{
    return last_error;
}
