/*
 * hub_backend.h - where the hub keeps its data: a storage-only interface.
 *
 * The hub's rules - who may write what (scope), which write wins and when
 * two writes are a conflict, what a reassignment purges and re-feeds, what
 * a revoked device may do - are decided once, in hub_policy.c, above this
 * interface. A backend only stores and loads: devices, teams, records, the
 * log of changes, the pull feed, each field's winner, reassignments and
 * conflicts, each as the policy hands it over. It decides nothing, so a
 * second backend (PostgreSQL) implements storage, not rules.
 *
 * Rules every backend keeps, in the manner of hal.h and sqlite3_vfs:
 *  1. `version` is HUB_BACKEND_VERSION of the header it was built against;
 *     members are only appended.
 *  2. Every call returns SAT_OK or a negative sat_err.h code; errmsg() then
 *     says in one line what failed. SAT_ERR_NOT_FOUND is not a failure: it
 *     answers a lookup of something absent, and writes no message.
 *     SAT_ERR_HUB_STORAGE is a damaged or unreachable store;
 *     SAT_ERR_NO_SPACE, SAT_ERR_NO_MEMORY what they say.
 *  3. Writes happen between begin and commit (or rollback), and commit
 *     returns SAT_OK only once everything written since begin is durable
 *     (it survives a crash or power cut of the hub), unless relax_sync is
 *     in force. A failed commit leaves nothing of the transaction. begin
 *     takes the store's write lock, so another process (an admin tool, a
 *     second hub) sharing the store waits (up to HUB_LOCK_WAIT_MS), and
 *     reads the hub's last sequence under it.
 *  4. Reads outside a write transaction see committed data only.
 *  5. One thread at a time; a backend needs no locking of its own.
 *  6. Ids are HUB_ID_BYTES; teams are NUL-terminated, 1..HUB_TEAM_BYTES-1
 *     bytes (the policy checks them before they reach a backend).
 *
 * Orders the policy depends on (it emits hub sequences in them, and every
 * hub must emit the same): records_of in id order (memcmp); winners_of in
 * (record id, field) order; feed_scan in sequence order.
 */
#ifndef SATCHEL_HUB_BACKEND_H
#define SATCHEL_HUB_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "hub_store.h"

#define HUB_BACKEND_VERSION 1

/* The largest values a change carries (satchel.options: FieldValue.text,
 * the NUL included, and FieldValue.blob): what the policy accepts and
 * what a backend must give back whole. */
#define HUB_TEXT_BYTES_MAX sizeof(((satchel_FieldValue *)0)->value.text)
#define HUB_BLOB_BYTES_MAX sizeof(((satchel_FieldValue *)0)->value.blob.bytes)

/* What a feed entry is (hub_store.h, "Purge design"). */
enum hub_feed_what {
    HUB_FEED_CHANGE = 0, /* a change as accepted, for its patient's team */
    HUB_FEED_REFEED = 1, /* a change offered again to a patient's new team */
    HUB_FEED_PURGE = 2,  /* a record its patient's old team must drop */
};

struct hub_feed_entry {
    uint64_t seq;
    enum hub_feed_what what;
    uint64_t change_seq; /* CHANGE, REFEED: the change; PURGE: 0 */
    uint8_t record_id[HUB_ID_BYTES];
    uint8_t patient_id[HUB_ID_BYTES];
    char team[HUB_TEAM_BYTES]; /* the team it is addressed to */
};

/* One entry met by feed_scan, with what the policy needs to judge it
 * without loading the change. */
struct hub_feed_row {
    uint64_t seq;
    enum hub_feed_what what;
    uint8_t record_id[HUB_ID_BYTES];   /* PURGE: the record to drop */
    char patient_team[HUB_TEAM_BYTES]; /* REFEED, PURGE: the patient's team now
                                        * ("" if the hub has no such patient) */
};

/* The visitor of feed_scan: returns HUB_SCAN_NEXT, HUB_SCAN_STOP (the
 * scan ends, SAT_OK) or a negative code (the scan ends with it). It may
 * call `load` to read the row's change (CHANGE, REFEED) into *out. */
#define HUB_SCAN_NEXT 0
#define HUB_SCAN_STOP 1
typedef int (*hub_feed_visit_fn)(void *arg, const struct hub_feed_row *row,
                                 int (*load)(void *scan, satchel_FieldChange *out), void *scan);

/* A field's winning change, by the merge rule. */
struct hub_winner {
    uint64_t change_seq;
    uint64_t deliver_seq; /* the last sequence it was offered to its team at */
    satchel_Hlc stamp;
    uint8_t origin[HUB_ID_BYTES];
};

/* A conflict as stored: the changes by their sequences. */
struct hub_conflict_row {
    uint64_t id;
    uint64_t hub_seq;
    uint64_t kept_seq;
    uint64_t lost_seq;
};

struct hub_backend {
    int version; /* HUB_BACKEND_VERSION */
    void *ctx;

    /* Releases everything, the struct hub_backend included. */
    void (*close)(void *ctx);
    /* One line on the last failure; never NULL. */
    const char *(*errmsg)(void *ctx);

    /* --- transactions ---------------------------------------------------- */
    /* A write transaction; *last_seq is the hub's last sequence issued. */
    int (*begin)(void *ctx, uint64_t *last_seq);
    /* Saves last_seq (the highest sequence the transaction issued, or the
     * one begin gave) and commits. On failure everything is rolled back. */
    int (*commit)(void *ctx, uint64_t last_seq);
    /* Undoes the open transaction, if any; keeps errmsg. */
    void (*rollback)(void *ctx);
    /* A read transaction (a consistent view across several reads), ended
     * by rollback. */
    int (*begin_read)(void *ctx);
    /* relaxed = 1: commits need not be durable until one made after
     * relax_sync(0) (which makes them all durable); for writes whose loss
     * is harmless (a pull's confirmed cursor). */
    int (*relax_sync)(void *ctx, int relaxed);

    /* --- devices --------------------------------------------------------- */
    int (*device_get)(void *ctx, const uint8_t id[HUB_ID_BYTES], struct hub_device *out);
    int (*device_insert)(void *ctx, const uint8_t id[HUB_ID_BYTES], const char *team);
    int (*device_set_revoked)(void *ctx, const uint8_t id[HUB_ID_BYTES]);
    int (*device_set_cursor)(void *ctx, const uint8_t id[HUB_ID_BYTES], uint64_t cursor);
    int (*device_set_acked)(void *ctx, const uint8_t id[HUB_ID_BYTES], uint64_t acked);

    /* --- patients and records -------------------------------------------- */
    int (*patient_get_team)(void *ctx, const uint8_t id[HUB_ID_BYTES], char team[HUB_TEAM_BYTES]);
    int (*patient_insert)(void *ctx, const uint8_t id[HUB_ID_BYTES], const char *team);
    int (*patient_set_team)(void *ctx, const uint8_t id[HUB_ID_BYTES], const char *team);
    /* A record's kind and patient (a patient's is itself). */
    int (*record_get)(void *ctx, const uint8_t id[HUB_ID_BYTES], int *kind,
                      uint8_t patient[HUB_ID_BYTES]);
    int (*record_insert)(void *ctx, const uint8_t id[HUB_ID_BYTES], int kind,
                         const uint8_t patient[HUB_ID_BYTES]);
    int (*record_count)(void *ctx, const uint8_t patient[HUB_ID_BYTES], uint64_t *count);
    /* Calls fn for each record of the patient (itself included), in id
     * order; a non-zero return from fn stops and is returned. */
    int (*records_of)(void *ctx, const uint8_t patient[HUB_ID_BYTES],
                      int (*fn)(void *arg, const uint8_t id[HUB_ID_BYTES]), void *arg);

    /* --- changes --------------------------------------------------------- */
    /* *held = 1 if the change (origin, origin_seq) is stored. */
    int (*change_held)(void *ctx, const uint8_t origin[HUB_ID_BYTES], uint64_t origin_seq,
                       int *held);
    int (*change_insert)(void *ctx, uint64_t seq, const satchel_FieldChange *c);
    int (*change_get)(void *ctx, uint64_t seq, satchel_FieldChange *out);

    /* --- the pull feed --------------------------------------------------- */
    int (*feed_append)(void *ctx, const struct hub_feed_entry *e);
    /* Readdresses the patient's CHANGE entries to team. */
    int (*feed_retarget)(void *ctx, const uint8_t patient[HUB_ID_BYTES], const char *team);
    /* Visits the entries addressed to team with seq > after, in order,
     * except the CHANGE entries whose change `skip_origin` wrote: a device
     * is never fed its own writes (the policy's rule, applied where the
     * entries are read, since a pull after a push would otherwise walk
     * through every change just pushed). */
    int (*feed_scan)(void *ctx, const char *team, uint64_t after,
                     const uint8_t skip_origin[HUB_ID_BYTES], hub_feed_visit_fn visit, void *arg);

    /* --- field winners ----------------------------------------------------- */
    int (*winner_get)(void *ctx, const uint8_t record[HUB_ID_BYTES], uint32_t field,
                      struct hub_winner *out);
    int (*winner_put)(void *ctx, const uint8_t record[HUB_ID_BYTES], uint32_t field,
                      uint64_t change_seq, uint64_t deliver_seq);
    /* Calls fn for each winner of the patient's records, in (record,
     * field) order; a non-zero return from fn stops and is returned. */
    int (*winners_of)(void *ctx, const uint8_t patient[HUB_ID_BYTES],
                      int (*fn)(void *arg, const uint8_t record[HUB_ID_BYTES], uint32_t field,
                                uint64_t change_seq, uint64_t deliver_seq),
                      void *arg);
    /* Sets deliver_seq of the patient's winners whose deliver_seq is below
     * `below`. */
    int (*winners_delivered)(void *ctx, const uint8_t patient[HUB_ID_BYTES], uint64_t below,
                             uint64_t deliver_seq);

    /* --- reassignments ---------------------------------------------------- */
    int (*reassign_insert)(void *ctx, uint64_t seq, const uint8_t patient[HUB_ID_BYTES],
                           const char *from, const char *to);
    /* *found = 1 if the patient left team `from` at a sequence > after. */
    int (*reassign_after)(void *ctx, const uint8_t patient[HUB_ID_BYTES], const char *from,
                          uint64_t after, int *found);

    /* --- conflicts and counts --------------------------------------------- */
    /* Stores a conflict (its id is the next one). */
    int (*conflict_insert)(void *ctx, uint64_t hub_seq, const uint8_t record[HUB_ID_BYTES],
                           uint32_t field, uint64_t kept_seq, uint64_t lost_seq);
    /* Conflicts with id > after, oldest first, at most cap. */
    int (*conflicts_after)(void *ctx, uint64_t after, struct hub_conflict_row *out, size_t cap,
                           size_t *count);
    int (*stats)(void *ctx, struct hub_stats *out);
};

/* Opens (creating if needed) the SQLite backend at path, a plain file on
 * the hub's disk (WAL journal, synchronous=FULL); ":memory:" is a private
 * store in memory that goes when it is closed (the simulator's hub).
 * SAT_ERR_HUB_STORAGE (cannot open, not a hub store, a newer schema, with
 * *why set when why is not NULL), SAT_ERR_NO_MEMORY. */
int hub_backend_sqlite_open(const char *path, struct hub_backend **out,
                            char why[HUB_ERRMSG_BYTES]);

/* The hub store (hub_store.h) over a backend: the policy. Takes the
 * backend (closing the store closes it, and on failure it is closed). */
int hub_policy_open(struct hub_backend *backend, struct hub_store **out);

#endif
