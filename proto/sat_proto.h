/*
 * sat_proto.h - encoding, decoding and framing of Satchel's protobuf messages.
 *
 * On the wire every message is a Frame (satchel.proto) preceded by its
 * length as 4 bytes, big-endian. A frame longer than PROTO_FRAME_BYTES_MAX is
 * refused before any of it is decoded. Decoding never allocates: every field
 * is bounded in satchel.options, and input that exceeds a bound (a string or
 * bytes field too long, too many repeated items) fails with
 * SAT_ERR_PROTO_DECODE instead of being truncated.
 *
 * The changes of a PushBatch or PullBatch are streamed through callbacks, so
 * only one FieldChange is ever held in memory while decoding a batch:
 * bind a struct proto_changes_out before encoding and a struct
 * proto_changes_in before decoding (proto_bind_changes_*).
 *
 * Batch bounds. A PushBatch holds at most PROTO_BATCH_CHANGES_MAX changes
 * (both ends hold a push batch in memory), so it fits a frame whatever the
 * changes. A PullBatch holds at most PROTO_PULL_CHANGES_MAX changes, and
 * the hub ends it before the changes' encoded size
 * (proto_change_batch_bytes each) would pass PROTO_PULL_CHANGES_BYTES_MAX,
 * so it fits a frame too; a device applies its changes as they are decoded,
 * so a large pull batch costs it no memory. The device asks for up to
 * PullRequest.max_changes; a device that asks for at most
 * PROTO_BATCH_CHANGES_MAX (firmware before byte-bounded pulls) gets no more,
 * and a hub that serves at most that many answers a larger ask with fewer:
 * both sides stay compatible without a new protocol version.
 */
#ifndef SATCHEL_SAT_PROTO_H
#define SATCHEL_SAT_PROTO_H

#include <pb.h>
#include <stddef.h>
#include <stdint.h>

#include "sat_err.h"
#include "satchel.pb.h"

#define PROTO_VERSION 1
#define PROTO_FRAME_HEADER_BYTES 4
/* Changes in a PushBatch; also what a PullRequest with max_changes 0 gets. */
#define PROTO_BATCH_CHANGES_MAX 32
/* Changes in a PullBatch: a hard cap beside the byte bound below. */
#define PROTO_PULL_CHANGES_MAX 1024
/* Record ids a PullBatch purges (satchel.options: PullBatch.purge_ids
 * max_count, checked in sat_proto.c). */
#define PROTO_PULL_PURGE_MAX 64
/* Encoded size of a PullBatch's changes (proto_change_batch_bytes summed). */
#define PROTO_PULL_CHANGES_BYTES_MAX (64u * 1024u)
/* Bound of an encoded Frame: a full push batch of maximal changes, or a
 * pull batch at its byte bound with every purge id, plus the other fields
 * (checked by static assertions in sat_proto.c). */
#define PROTO_FRAME_BYTES_MAX (72u * 1024u)

/* Source of the changes to encode into a batch. */
struct proto_changes_out {
    const satchel_FieldChange *items;
    size_t count; /* at most PROTO_BATCH_CHANGES_MAX in a PushBatch,
                   * PROTO_PULL_CHANGES_MAX in a PullBatch */
    /* The encoder's own: each change's size, found by nanopb's sizing pass
     * over the batch (a batch inside a Frame is sized before it is
     * written) and used by the writing pass that follows, which would
     * otherwise size every change again. */
    uint16_t sizes[PROTO_PULL_CHANGES_MAX];
    int sized;
};

/* Sink for the changes of a batch being decoded. on_change is called once
 * per change, in order; the change is only valid during the call. A non-zero
 * return aborts the decode (SAT_ERR_PROTO_DECODE). More changes than the
 * batch kind allows (PROTO_BATCH_CHANGES_MAX in a PushBatch,
 * PROTO_PULL_CHANGES_MAX in a PullBatch) abort it too. */
struct proto_changes_in {
    int (*on_change)(void *arg, const satchel_FieldChange *change);
    void *arg;
    size_t count; /* changes delivered so far */
};

void proto_bind_changes_encode(pb_callback_t *cb, struct proto_changes_out *src);
void proto_bind_changes_decode(pb_callback_t *cb, struct proto_changes_in *sink);

/* The bytes change takes inside a batch: its tag, its length prefix and
 * its encoding. 0 if it cannot be encoded (a string without its NUL). */
size_t proto_change_batch_bytes(const satchel_FieldChange *change);

/* Encodes msg (of type `fields`) into buf[0..cap). *len is the encoded size.
 * SAT_ERR_PROTO_ENCODE if it does not fit, a string is not NUL-terminated
 * within its bound, or a batch holds too many changes. */
SAT_CHECK int proto_encode(const pb_msgdesc_t *fields, const void *msg, uint8_t *buf, size_t cap,
                 size_t *len);

/* Decodes buf[0..len) into msg (of type `fields`, msg_size bytes). Callbacks
 * bound in msg are kept. On SAT_ERR_PROTO_DECODE (malformed or over-long
 * input) every non-callback field of msg is zeroed. */
SAT_CHECK int proto_decode(const pb_msgdesc_t *fields, void *msg, size_t msg_size, const uint8_t *buf,
                 size_t len);

/* Writes the 4-byte length header and the encoded frame into buf.
 * *len is the total, header included. */
SAT_CHECK int proto_frame_encode(const satchel_Frame *frame, uint8_t *buf, size_t cap, size_t *len);

/* Reads a frame header: *payload_len is the length that follows.
 * SAT_ERR_PROTO_FRAME_SIZE if it exceeds PROTO_FRAME_BYTES_MAX. */
SAT_CHECK int proto_frame_header(const uint8_t header[PROTO_FRAME_HEADER_BYTES], size_t *payload_len);

/* Decodes a whole frame (header + payload) from buf[0..len); len must be
 * exactly header + payload. To stream batch changes, set frame->cb_msg with
 * proto_bind_frame_changes first. */
SAT_CHECK int proto_frame_decode(satchel_Frame *frame, const uint8_t *buf, size_t len);

/* Arranges for the changes of a PushBatch or PullBatch inside a Frame being
 * decoded to go to sink (nanopb calls this when it meets the oneof). A
 * frame that goes on to another message (or the same one again) after
 * changes went to sink fails to decode: a receiver only ever gets the
 * changes of the message the frame holds. */
void proto_bind_frame_changes(satchel_Frame *frame, struct proto_changes_in *sink);

/* The last error nanopb reported in this thread, for logs ("" if none). */
const char *proto_last_error(void);

#endif
