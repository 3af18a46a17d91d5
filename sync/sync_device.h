/*
 * sync_device.h - the tablet's side of one sync session, as a step-driven
 * state machine: Hello, then push every own change the hub lacks in bounded
 * batches, then pull the team's changes in bounded batches.
 *
 * Nothing blocks: sync_device_step() does what it can with the stream and
 * returns SAT_ERR_WOULD_BLOCK when it must wait for the network, so the
 * POSIX driver (satchel sync) and the simulator drive the same code.
 *
 * Loss and duplication: a push batch is resent until a PushAck covers it;
 * the hub applies each change once (by origin device and sequence), so a
 * cut link costs at most one batch sent twice. A pulled batch and the new
 * cursor are applied in one store transaction, so a cut costs at most one
 * batch pulled twice (and applying it twice changes nothing).
 *
 * The device's records are reached through struct sync_replica, so sync/
 * does not depend on firmware/.
 */
#ifndef SATCHEL_SYNC_DEVICE_H
#define SATCHEL_SYNC_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "sat_proto.h"

#define SYNC_DEVICE_ID_BYTES 16
#define SYNC_ERRMSG_BYTES 200

/* The tablet's store, as sync sees it. Every member returns SAT_OK or a
 * negative code; on error the session fails with that code. */
struct sync_replica {
    /* Where the device stands: last hub sequence applied, last own sequence
     * the hub acknowledged. */
    int (*state)(void *arg, uint64_t *pull_cursor, uint64_t *push_acked);
    /* Up to max own changes after sequence `after`, in order, into out. */
    int (*changes)(void *arg, uint64_t after, size_t max, satchel_FieldChange *out, size_t *n);
    int (*set_push_acked)(void *arg, uint64_t acked);
    /* Applies a pulled batch, its purges and the new cursor atomically;
     * adds the concurrent edits it found to *conflicts. */
    int (*apply)(void *arg, const satchel_FieldChange *changes, size_t n,
                 const uint8_t (*purge)[SYNC_DEVICE_ID_BYTES], size_t npurge, uint64_t next_cursor,
                 unsigned *conflicts);
    /* The hub revoked this device: destroy every key and record. */
    int (*wipe)(void *arg);
    void *arg;
};

struct sync_device_stats {
    uint64_t pushed;      /* changes the hub acknowledged in this session */
    uint64_t pulled;      /* changes received */
    uint64_t purged;      /* records removed: they left the caseload */
    uint64_t conflicts;   /* concurrent edits found while applying */
    uint64_t round_trips; /* request/response exchanges */
    uint64_t bytes_out;   /* frame bytes sent (before TLS) */
    uint64_t bytes_in;    /* frame bytes received */
    int64_t hub_time_ms;  /* the hub's clock in HelloAck */
};

enum sync_device_phase {
    SYNC_DEV_HELLO,
    SYNC_DEV_WAIT_HELLO_ACK,
    SYNC_DEV_PUSH,
    SYNC_DEV_WAIT_PUSH_ACK,
    SYNC_DEV_PULL,
    SYNC_DEV_WAIT_PULL,
    SYNC_DEV_DONE,
    SYNC_DEV_FAILED
};

struct sync_device {
    enum sync_device_phase phase;
    struct frame_io io;
    struct sync_replica replica;
    uint8_t device_id[SYNC_DEVICE_ID_BYTES];
    char firmware_version[32];
    uint64_t acked;        /* last own sequence the hub holds */
    uint64_t cursor;       /* last hub sequence applied */
    uint64_t batch_last;   /* last sequence in the push batch in flight */
    size_t batch_n;
    int err;
    char errmsg[SYNC_ERRMSG_BYTES];
    struct sync_device_stats stats;
    struct frame_reader rd;
    struct frame_writer wr;
    satchel_FieldChange batch[PROTO_BATCH_CHANGES_MAX];
    uint8_t purge[64][SYNC_DEVICE_ID_BYTES];
    size_t purge_n;
};

/* Prepares a session over io (already secured) for the device's replica. */
void sync_device_init(struct sync_device *d, const struct frame_io *io,
                      const struct sync_replica *replica,
                      const uint8_t device_id[SYNC_DEVICE_ID_BYTES], const char *firmware_version);

/* Advances the session. SAT_OK: finished (everything pushed and pulled).
 * SAT_ERR_WOULD_BLOCK: wait for the stream (d->phase says for what). Any
 * other code: the session failed (d->errmsg says why in one line); the
 * caller closes the connection. SAT_ERR_SYNC_REVOKED: the device was wiped. */
int sync_device_step(struct sync_device *d);

/* 1 while the session waits to read, 0 while it waits to write. */
int sync_device_wants_read(const struct sync_device *d);

#endif
