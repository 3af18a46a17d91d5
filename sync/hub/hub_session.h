/*
 * hub_session.h - the hub's side of one sync session with one device, as a
 * step-driven state machine over an already secured byte stream.
 *
 * The device is who its TLS certificate says (peer_id, from the
 * certificate's CN); a Hello naming another device is refused. Then the
 * hub answers requests in order: PushBatch → PushAck, PullRequest →
 * PullBatch, until the device closes the stream.
 *
 * Bad input (a malformed or oversize frame, an unknown or out-of-order
 * message, a replayed or gapped push batch, a change outside the device's
 * caseload): the device gets an Error with a code and a reason, the session
 * ends, and the hub's state is unchanged (a push is all or nothing).
 */
#ifndef SATCHEL_HUB_SESSION_H
#define SATCHEL_HUB_SESSION_H

#include <stdint.h>

#include "frame.h"
#include "hub_store.h"

#define HUB_SESSION_ERRMSG_BYTES 200

enum hub_session_phase {
    HUB_SESS_WAIT_HELLO,
    HUB_SESS_SERVE,
    HUB_SESS_CLOSING, /* an Error or a revoked HelloAck is going out */
    HUB_SESS_DONE,
    HUB_SESS_FAILED
};

struct hub_session_stats {
    uint64_t pushed_stored;
    uint64_t pushed_skipped;
    uint64_t pulled;
    uint64_t purged;
    uint64_t conflicts;
    uint64_t requests;
};

struct hub_session {
    enum hub_session_phase phase;
    struct frame_io io;
    struct hub_store *store;
    uint8_t device[HUB_ID_BYTES];
    uint64_t acked; /* device's acknowledged sequence, as the hub holds it */
    int64_t (*clock_ms)(void *arg); /* the hub's wall clock, for HelloAck */
    void *clock_arg;
    int err;
    char errmsg[HUB_SESSION_ERRMSG_BYTES];
    struct hub_session_stats stats;
    size_t batch_n;
    /* Buffers last: hub_session_init clears only what comes before them
     * (a session starts often; the buffers are written before they are
     * read). */
    struct frame_reader rd;
    struct frame_writer wr;
    satchel_FieldChange batch[PROTO_BATCH_CHANGES_MAX];
};

/* peer_id: the device id proven by the TLS handshake. */
void hub_session_init(struct hub_session *s, const struct frame_io *io, struct hub_store *store,
                      const uint8_t peer_id[HUB_ID_BYTES], int64_t (*clock_ms)(void *arg),
                      void *clock_arg);

/* SAT_OK: the device ended the session cleanly. SAT_ERR_WOULD_BLOCK: wait
 * for the stream. Other codes: the session failed or refused the device
 * (s->errmsg says why, for the hub's log); close the connection. */
SAT_CHECK int hub_session_step(struct hub_session *s);

/* 0 while a frame is going out (wait for writable), else 1. */
int hub_session_wants_read(const struct hub_session *s);

#endif
