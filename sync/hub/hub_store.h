/*
 * hub_store.h - the hub's storage: every change the hub accepted, in order,
 * and each device's team-scoped view of them.
 *
 * The hub keeps an append-only log of accepted changes (satchel.proto
 * FieldChange), each with a hub sequence number that only goes up across
 * the whole hub. Devices belong to one team; patients belong to one team at
 * a time; a visit, observation, care note or task belongs to its patient. A
 * device pushes only its own changes to records in its team's caseload and
 * pulls everything in that caseload that other writers made.
 *
 * This is the hub's store as its sessions, tools and the simulator see it:
 * a struct of function pointers, in the manner of hal.h and sqlite3_vfs,
 * opened with hub_store_open below. Its rules (scope, conflicts, purge,
 * revocation) are implemented once, in hub_policy.c, over a storage-only
 * backend (hub_backend.h: SQLite now, PostgreSQL later). Rules every
 * implementation keeps:
 *  1. `version` is HUB_STORE_VERSION of the header it was built against.
 *     New members are only ever appended; a caller checks `version` before
 *     using a member added after version 1.
 *  2. A member may be NULL: the wrapper then answers SAT_ERR_NOT_SUPPORTED.
 *  3. Every call returns SAT_OK (0) or a negative code from sat_err.h, and
 *     errmsg() then says in one line what failed ("" after a success).
 *  4. Every call that changes data is one transaction: when it returns
 *     SAT_OK the change is durable (it survives a crash or power cut of the
 *     hub); when it returns an error nothing was changed. One exception:
 *     the cursor a pull records may be lost by a crash until the next
 *     durable change (see pull).
 *  5. Outputs are written only on success, unless a contract says so.
 *  6. A store is used from one thread at a time (the hub is a state
 *     machine driven by one thread); backends need no locking of their own.
 *  7. Every call does bounded work for its inputs: the limits below bound
 *     batch sizes, pulls and listings.
 *
 * Ids are 16 bytes (record ids and device ids alike). The all-zero device id
 * is the hub's own origin: it writes the team field of a patient it
 * reassigns, and no device may be registered with it. Teams are NUL-terminated names of 1..HUB_TEAM_BYTES-1 bytes.
 *
 * Scope. A change is in a device's scope when its record's patient is in the
 * device's team *now*: scope is judged when a change is pushed and again
 * when it is pulled, so after a reassignment the old team stops receiving
 * the patient and the new team starts. A record's patient is the record
 * itself for a patient; for the other kinds it is field 2 (patient_id) of
 * the record, a 16-byte blob, as first pushed (a record never moves to
 * another patient). A patient the hub has never seen joins the team of the
 * device that pushes it. One exception keeps an edit from being lost: a
 * device may still write to a patient that left its team in a reassignment
 * it has not yet confirmed pulling (its pull cursor is before the
 * reassignment's sequence), as a tablet that was offline when the patient
 * moved does; the change goes to the patient's team now, and the device's
 * next pull purges the patient. Once it has confirmed that pull, its
 * changes to the patient are out of scope. (A change the nurse wrote during
 * the very session that purged the patient, after its push, is covered by
 * the tablet: until it is pushed, the tablet gives the hub its cursor from
 * before the purge; see store_sync_state.)
 *
 * Conflict rule. The hub keeps, per (record, field), the winning change by
 * (HLC stamp, origin device id) - the same merge rule as every replica. A
 * pushed change X from device D to a field whose winner W came from another
 * writer is *concurrent* with W, and recorded as a conflict for a person to
 * look at, when D cannot have seen W when it wrote X:
 *   - X's stamp is below W's: had D applied W, D's HLC would have moved past
 *     W's stamp before stamping X; or
 *   - the hub had not yet delivered W to D: W's latest delivery sequence is
 *     above the pull cursor D last confirmed (device_checkin or pull).
 * Otherwise X is a sequential edit (D had pulled W, then wrote). The winner
 * is chosen by the merge rule either way; a conflict is never dropped. The
 * rule errs towards reporting: an edit made before a pull whose push only
 * reached the hub after that pull is judged by the stamp test alone.
 *
 * Purge design. A reassignment is logged with its hub sequence. In the same
 * transaction the hub appends to the pull feed, each with its own hub
 * sequence: one purge entry per record of the patient (the patient, then
 * its visits, observations, notes and tasks) addressed to the old team, and
 * one re-feed entry per current winning field of those records addressed to
 * the new team (the new team's devices may have moved their cursors past
 * the patient's history already). A device's pull walks the feed after its
 * cursor, so it meets each purge entry exactly once; a purge entry is
 * skipped if the patient has come back to the device's team since (the
 * re-feed that came with it brings the records up to date).
 */
#ifndef SATCHEL_HUB_STORE_H
#define SATCHEL_HUB_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "sat_err.h"
#include "sat_hex.h"
#include "sat_proto.h"
#include "satchel.pb.h"

#define HUB_STORE_VERSION 1

/* ---- limits --------------------------------------------------------------- */
#define HUB_ID_BYTES SAT_ID_BYTES
#define HUB_TEAM_BYTES 64        /* with the NUL; matches Patient.team */
#define HUB_ERRMSG_BYTES 200
/* Changes in one push: a PushBatch holds at most this many. */
#define HUB_PUSH_CHANGES_MAX PROTO_BATCH_CHANGES_MAX
/* Changes in one pull: a PullBatch holds at most this many, and at most
 * PROTO_PULL_CHANGES_BYTES_MAX bytes of them (see pull below). */
#define HUB_PULL_CHANGES_MAX PROTO_PULL_CHANGES_MAX
/* Purged record ids in one pull (PullBatch.purge_ids max_count). */
#define HUB_PULL_PURGE_MAX PROTO_PULL_PURGE_MAX
/* Conflicts listed per call. */
#define HUB_CONFLICTS_LIST_MAX 16
/* Records one patient may have when it is reassigned (the reassignment is
 * one transaction that touches every one of them). */
#define HUB_PATIENT_RECORDS_MAX 100000
/* How long a backend waits for a lock held by another process (an admin
 * tool, a backup) before failing with SAT_ERR_HUB_STORAGE. */
#define HUB_LOCK_WAIT_MS 5000

/* ---- values --------------------------------------------------------------- */

struct hub_device {
    char team[HUB_TEAM_BYTES];
    int revoked;          /* 1: the device must wipe itself at its next Hello */
    uint64_t acked_seq;   /* highest origin_seq accepted from this device */
    uint64_t pull_cursor; /* last hub sequence the device confirmed applying */
};

struct hub_push_result {
    uint64_t acked_seq; /* the device's acknowledged sequence after the push */
    size_t stored;      /* changes new to the hub, now stored */
    size_t skipped;     /* changes the hub already held (a replay) */
    size_t conflicts;   /* conflicts recorded by this push */
};

struct hub_pull_result {
    size_t count;        /* changes written to the caller's array */
    size_t purge_count;  /* ids in purge_ids */
    uint8_t purge_ids[HUB_PULL_PURGE_MAX][HUB_ID_BYTES];
    uint64_t next_cursor; /* the device's cursor once it applied this batch */
    int more;             /* 1: pull again from next_cursor */
};

struct hub_conflict {
    uint64_t id;              /* increasing; pass the last one to page on */
    uint64_t hub_seq;         /* hub sequence of the change that revealed it */
    satchel_FieldChange kept; /* the winner by (stamp, origin) when detected */
    satchel_FieldChange lost; /* the concurrent change that lost */
};

struct hub_stats {
    uint64_t devices;
    uint64_t patients;
    uint64_t records;
    uint64_t changes;       /* distinct changes held */
    uint64_t feed_entries;  /* changes, re-feeds and purges, in hub order */
    uint64_t reassignments;
    uint64_t conflicts;
    uint64_t last_seq;      /* the highest hub sequence issued */
};

/* ---- the interface ---------------------------------------------------------
 * `ctx` is the backend's own state, passed back on every call. Parameters
 * named `device` or `*_id` point at HUB_ID_BYTES bytes. */
struct hub_store {
    int version; /* HUB_STORE_VERSION */
    void *ctx;

    /* Releases everything, the struct hub_store included. Never fails: a
     * committed change is already durable. */
    void (*close)(void *ctx);

    /* One line on the last failure ("" after a success); never NULL. */
    const char *(*errmsg)(void *ctx);

    /* --- devices ------------------------------------------------------- */
    /* Registers a device in a team, with nothing acknowledged yet.
     * SAT_ERR_EXISTS if the id is known; SAT_ERR_INVALID for the hub's
     * origin id or a team that is empty or too long. */
    int (*device_register)(void *ctx, const uint8_t device[HUB_ID_BYTES], const char *team);
    /* SAT_ERR_HUB_UNKNOWN_DEVICE if the id was never registered. */
    int (*device_get)(void *ctx, const uint8_t device[HUB_ID_BYTES], struct hub_device *out);
    /* Marks a device revoked, for good: its pushes and pulls fail with
     * SAT_ERR_HUB_REVOKED and its Hello learns it must wipe. Revoking a
     * revoked device is SAT_OK. SAT_ERR_HUB_UNKNOWN_DEVICE. */
    int (*device_revoke)(void *ctx, const uint8_t device[HUB_ID_BYTES]);
    /* The start of a session (Hello): records pull_cursor as what the
     * device has applied (used by the conflict rule) and returns its
     * standing in *out. A revoked device gets SAT_OK with out->revoked set
     * and nothing recorded. SAT_ERR_HUB_UNKNOWN_DEVICE; SAT_ERR_HUB_BAD_CURSOR
     * if pull_cursor is beyond the last hub sequence (the hub was restored
     * from an older backup). */
    int (*device_checkin)(void *ctx, const uint8_t device[HUB_ID_BYTES], uint64_t pull_cursor,
                          struct hub_device *out);

    /* --- patients' teams ------------------------------------------------ */
    /* The team a patient belongs to. SAT_ERR_HUB_UNKNOWN_RECORD if the hub
     * has never accepted a change to that patient. */
    int (*patient_team)(void *ctx, const uint8_t patient_id[HUB_ID_BYTES],
                        char team[HUB_TEAM_BYTES]);
    /* Moves a patient, with its visits, observations, notes and tasks, to
     * another team (see "Purge design" above). If stamp is not NULL the hub
     * also writes the patient's team field (Patient.team, field 8) with
     * that stamp as its own change (all-zero origin); the stamp should
     * come from an HLC that has observed every pushed stamp. Assigning the
     * team the patient is in already is SAT_OK and changes nothing.
     * SAT_ERR_HUB_UNKNOWN_RECORD; SAT_ERR_INVALID for a bad team name or a
     * patient with more than HUB_PATIENT_RECORDS_MAX records. */
    int (*patient_assign)(void *ctx, const uint8_t patient_id[HUB_ID_BYTES], const char *team,
                          const satchel_Hlc *stamp);

    /* --- push ----------------------------------------------------------- */
    /* Applies one PushBatch from a device, all or nothing.
     * first_seq (>= 1) is the first device sequence the batch covers: the
     * device claims its changes from first_seq on are, in order, those in
     * the batch. It must not leave a gap after what the hub acknowledged
     * (first_seq <= acked_seq + 1), else SAT_ERR_HUB_OUT_OF_ORDER; a batch
     * that overlaps acknowledged changes is a replay after a lost PushAck.
     * changes[0..n), n <= HUB_PUSH_CHANGES_MAX (else SAT_ERR_INVALID), have
     * strictly increasing origin_seq >= first_seq (else SAT_ERR_INVALID).
     * Each change must:
     *   - name the device as origin_device (else SAT_ERR_HUB_NOT_ORIGIN);
     *   - be well formed: a known kind, a stamp, a value, a tombstone
     *     exactly when field is 0, a 16-byte patient_id blob in field 2 of
     *     a non-patient record, the record's known kind and patient (else
     *     SAT_ERR_HUB_BAD_CHANGE);
     *   - belong to a record in the device's team scope (else
     *     SAT_ERR_HUB_OUT_OF_SCOPE): a patient of its team, a new patient
     *     (which joins its team), or a record whose patient is one of those
     *     (for a new record: named by a field-2 change in the same batch).
     * A change the hub holds already (same origin_device and origin_seq) is
     * skipped, unchecked, and counted in out->skipped. Every stored change
     * gets the next hub sequence, in batch order. On SAT_OK, out->acked_seq
     * is the device's highest origin_seq held by the hub: replaying a batch
     * returns the same one. On any error nothing is stored and *out is not
     * written. SAT_ERR_HUB_UNKNOWN_DEVICE, SAT_ERR_HUB_REVOKED. */
    int (*push)(void *ctx, const uint8_t device[HUB_ID_BYTES], uint64_t first_seq,
                const satchel_FieldChange *changes, size_t n, struct hub_push_result *out);

    /* --- pull ----------------------------------------------------------- */
    /* The next part of a device's feed after `cursor` (the last hub sequence
     * it applied; recorded as confirmed, as by device_checkin): at most
     * max_changes (1..HUB_PULL_CHANGES_MAX, else SAT_ERR_INVALID) changes
     * into changes[], and at most HUB_PULL_PURGE_MAX purged record ids, in
     * hub sequence order. The changes' proto_change_batch_bytes() total at
     * most PROTO_PULL_CHANGES_BYTES_MAX, so the PullBatch fits a frame; the
     * first change always fits. The recorded cursor need not be durable
     * when pull returns: losing it only makes the conflict rule judge
     * against an older cursor, which reports more conflicts, never fewer. The feed holds the changes in the device's scope
     * at the time of the pull, except those the device itself wrote (it
     * holds them), plus the purges and re-feeds of reassignments (see
     * above; a re-feed may repeat the device's own changes, and a device
     * whose cursor is far behind may meet a change twice: applying one
     * is idempotent). out->next_cursor is the cursor for the next pull;
     * out->more is 1 when the feed holds more. With more == 0, next_cursor
     * is the last hub sequence, so out-of-scope entries are never scanned
     * twice. On failure the contents of changes[] are unspecified.
     * SAT_ERR_HUB_UNKNOWN_DEVICE, SAT_ERR_HUB_REVOKED, SAT_ERR_HUB_BAD_CURSOR. */
    int (*pull)(void *ctx, const uint8_t device[HUB_ID_BYTES], uint64_t cursor,
                satchel_FieldChange *changes, size_t max_changes, struct hub_pull_result *out);

    /* --- conflicts ------------------------------------------------------- */
    /* Conflicts with id > after, oldest first: at most cap
     * (1..HUB_CONFLICTS_LIST_MAX, else SAT_ERR_INVALID) into out[], *count
     * of them. Page on with the last id. */
    int (*conflicts_list)(void *ctx, uint64_t after, struct hub_conflict *out, size_t cap,
                          size_t *count);

    /* --- stats ----------------------------------------------------------- */
    int (*stats)(void *ctx, struct hub_stats *out);
};

/* ---- wrappers: the only way hub code reaches a backend ------------------- */
/* Each answers SAT_ERR_NOT_SUPPORTED when the member is NULL, and checks the
 * limits that are the same for every backend before calling it. */


/* NULL is ignored. */
static inline void hub_store_close(struct hub_store *s)
{
    if (s && s->close)
        s->close(s->ctx);
}

static inline const char *hub_store_errmsg(const struct hub_store *s)
{
    return s->errmsg ? s->errmsg(s->ctx) : "";
}

static inline SAT_CHECK int hub_store_device_register(struct hub_store *s,
                                                      const uint8_t device[HUB_ID_BYTES],
                                                      const char *team)
{
    return s->device_register ? s->device_register(s->ctx, device, team)
                              : SAT_ERR_NOT_SUPPORTED;
}

static inline SAT_CHECK int hub_store_device_get(struct hub_store *s,
                                                 const uint8_t device[HUB_ID_BYTES],
                                                 struct hub_device *out)
{
    return s->device_get ? s->device_get(s->ctx, device, out) : SAT_ERR_NOT_SUPPORTED;
}

static inline SAT_CHECK int hub_store_device_revoke(struct hub_store *s,
                                                    const uint8_t device[HUB_ID_BYTES])
{
    return s->device_revoke ? s->device_revoke(s->ctx, device) : SAT_ERR_NOT_SUPPORTED;
}

static inline SAT_CHECK int hub_store_device_checkin(struct hub_store *s,
                                                     const uint8_t device[HUB_ID_BYTES],
                                                     uint64_t pull_cursor,
                                                     struct hub_device *out)
{
    return s->device_checkin ? s->device_checkin(s->ctx, device, pull_cursor, out)
                             : SAT_ERR_NOT_SUPPORTED;
}

static inline SAT_CHECK int hub_store_patient_team(struct hub_store *s,
                                                   const uint8_t patient_id[HUB_ID_BYTES],
                                                   char team[HUB_TEAM_BYTES])
{
    return s->patient_team ? s->patient_team(s->ctx, patient_id, team) : SAT_ERR_NOT_SUPPORTED;
}

static inline SAT_CHECK int hub_store_patient_assign(struct hub_store *s,
                                                     const uint8_t patient_id[HUB_ID_BYTES],
                                                     const char *team, const satchel_Hlc *stamp)
{
    return s->patient_assign ? s->patient_assign(s->ctx, patient_id, team, stamp)
                             : SAT_ERR_NOT_SUPPORTED;
}

static inline SAT_CHECK int hub_store_push(struct hub_store *s,
                                           const uint8_t device[HUB_ID_BYTES],
                                           uint64_t first_seq,
                                           const satchel_FieldChange *changes, size_t n,
                                           struct hub_push_result *out)
{
    if (!s->push)
        return SAT_ERR_NOT_SUPPORTED;
    if (n > HUB_PUSH_CHANGES_MAX || (n > 0 && !changes) || first_seq == 0)
        return SAT_ERR_INVALID;
    return s->push(s->ctx, device, first_seq, changes, n, out);
}

static inline SAT_CHECK int hub_store_pull(struct hub_store *s,
                                           const uint8_t device[HUB_ID_BYTES], uint64_t cursor,
                                           satchel_FieldChange *changes, size_t max_changes,
                                           struct hub_pull_result *out)
{
    if (!s->pull)
        return SAT_ERR_NOT_SUPPORTED;
    if (max_changes == 0 || max_changes > HUB_PULL_CHANGES_MAX || !changes)
        return SAT_ERR_INVALID;
    return s->pull(s->ctx, device, cursor, changes, max_changes, out);
}

static inline SAT_CHECK int hub_store_conflicts_list(struct hub_store *s, uint64_t after,
                                                     struct hub_conflict *out, size_t cap,
                                                     size_t *count)
{
    if (!s->conflicts_list)
        return SAT_ERR_NOT_SUPPORTED;
    if (cap == 0 || cap > HUB_CONFLICTS_LIST_MAX || !out)
        return SAT_ERR_INVALID;
    return s->conflicts_list(s->ctx, after, out, cap, count);
}

static inline SAT_CHECK int hub_store_stats(struct hub_store *s, struct hub_stats *out)
{
    return s->stats ? s->stats(s->ctx, out) : SAT_ERR_NOT_SUPPORTED;
}

/* ---- opening ----------------------------------------------------------------- */

/* Opens (creating if needed) the hub store at uri: a file path, or
 * "sqlite:PATH", is the SQLite backend (a plain file on the hub's disk,
 * WAL journal, synchronous=FULL); ":memory:" is a new, private store in
 * memory that goes when it is closed (the simulator's hub). The rules of
 * this header are the policy's (hub_policy.c) whatever the backend
 * (hub_backend.h). On SAT_OK *out is ready; close it with hub_store_close.
 * SAT_ERR_HUB_STORAGE (cannot open, not a hub store, or a newer schema),
 * SAT_ERR_NOT_SUPPORTED (a backend this build lacks), SAT_ERR_NO_MEMORY;
 * then why (if not NULL) says in one line what failed. */
int hub_store_open(const char *uri, struct hub_store **out, char why[HUB_ERRMSG_BYTES]);

#endif
