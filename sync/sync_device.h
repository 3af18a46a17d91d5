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
 * Pull batches are large (up to PROTO_PULL_CHANGES_MAX changes, bounded by
 * bytes so they fit a frame): one durable commit then covers many changes.
 * Their changes go to the store as they are decoded, a few at a time
 * (d->batch), inside the batch's transaction, so memory does not grow with
 * the batch. The frame is whole before decoding starts: a cut link never
 * leaves part of a batch applied. Nothing reaches the hub about a batch
 * (the next PullRequest's cursor) before its commit returned.
 *
 * The device's records are reached through struct sync_replica, so sync/
 * does not depend on firmware/.
 */
#ifndef SATCHEL_SYNC_DEVICE_H
#define SATCHEL_SYNC_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "sat_hex.h"
#include "sat_proto.h"

#define SYNC_DEVICE_ID_BYTES SAT_ID_BYTES
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
    /* A pulled batch is applied in one transaction, all or nothing:
     * apply_begin; apply_changes for each part of its changes, in order, as
     * they are decoded; then apply_commit with its purges and the new
     * cursor, which makes all of it durable before it returns SAT_OK; or
     * apply_abort, which undoes it all (also after a failed apply_changes or
     * apply_commit, where it must be harmless). apply_changes and
     * apply_commit add the concurrent edits they found to *conflicts. The
     * session calls nothing else of the replica in between. */
    int (*apply_begin)(void *arg);
    int (*apply_changes)(void *arg, const satchel_FieldChange *changes, size_t n,
                         unsigned *conflicts);
    int (*apply_commit)(void *arg, const uint8_t (*purge)[SYNC_DEVICE_ID_BYTES], size_t npurge,
                        uint64_t next_cursor, unsigned *conflicts);
    void (*apply_abort)(void *arg);
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
    char firmware_version[sizeof(((satchel_Hello *)0)->firmware_version)]; /* .options */
    uint64_t acked;        /* last own sequence the hub holds */
    uint64_t cursor;       /* last hub sequence applied */
    uint64_t batch_last;   /* last sequence in the push batch in flight */
    size_t batch_n;        /* changes in d->batch: a push batch, or the part
                            * of a pull batch not yet given to the store */
    int applying;          /* a pulled batch's transaction is open */
    int apply_err;         /* the store's code if applying a change failed */
    uint64_t pull_n;       /* changes in the pull batch being decoded */
    unsigned pull_conflicts; /* found so far in that batch */
    int err;
    char errmsg[SYNC_ERRMSG_BYTES];
    struct sync_device_stats stats;
    size_t purge_n;
    /* Buffers last: sync_device_init clears only what comes before them
     * (a session starts often; the buffers are written before they are
     * read). */
    struct frame_reader rd;
    struct frame_writer wr;
    satchel_FieldChange batch[PROTO_BATCH_CHANGES_MAX];
    uint8_t purge[PROTO_PULL_PURGE_MAX][SYNC_DEVICE_ID_BYTES];
};

/* Prepares a session over io (already secured) for the device's replica. */
void sync_device_init(struct sync_device *d, const struct frame_io *io,
                      const struct sync_replica *replica,
                      const uint8_t device_id[SYNC_DEVICE_ID_BYTES], const char *firmware_version);

/* Advances the session. SAT_OK: finished (everything pushed and pulled).
 * SAT_ERR_WOULD_BLOCK: wait for the stream (d->phase says for what). Any
 * other code: the session failed (d->errmsg says why in one line); the
 * caller closes the connection. SAT_ERR_SYNC_REVOKED: the device was wiped. */
SAT_CHECK int sync_device_step(struct sync_device *d);

/* 1 while the session waits to read, 0 while it waits to write. */
int sync_device_wants_read(const struct sync_device *d);

#endif
