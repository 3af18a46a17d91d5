/*
 * store.h - the nurse's caseload: patients, visits, observations (NEWS2),
 * care notes and tasks, in an SQLite database on the encrypting VFS
 * (vfs_crypt.h), keyed by the unlocked data key (keys.h).
 *
 * Every call that changes data runs in one transaction: the record change,
 * one change-log entry per field written (with its HLC stamp, the device id
 * and a sequence number) and the HLC state commit together or not at all.
 * When a call returns SAT_OK the change is durable (synchronous=FULL).
 * When it returns an error, nothing was written, and store_errmsg() says in
 * one line what was wrong (e.g. "pulse 300 is outside 20..250").
 *
 * Errors: SAT_ERR_STORE_INVALID_NHS, SAT_ERR_STORE_OUT_OF_RANGE,
 * SAT_ERR_STORE_MISSING_FIELD, SAT_ERR_STORE_TOO_LONG, SAT_ERR_STORE_INVALID,
 * SAT_ERR_STORE_UNKNOWN_ID, SAT_ERR_STORE_NOT_ALLOWED (validation; nothing
 * written), SAT_ERR_STORE_CORRUPT (a block failed authentication),
 * SAT_ERR_NO_SPACE, SAT_ERR_STORE_SQL, SAT_ERR_KEYS_LOCKED.
 *
 * Observations and care notes are append-only: a correction is a new entry
 * whose `amends` names the one it corrects. Deleting a patient, visit or task
 * leaves a tombstone (deleted = 1) that sync carries to other replicas.
 *
 * Text fields are NUL-terminated; their array sizes are the limits (one byte
 * for the NUL). A string that fills its array without a NUL is TOO_LONG.
 */
#ifndef SATCHEL_STORE_H
#define SATCHEL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "hal.h"
#include "keys.h"
#include "news2.h"
#include "record.h"
#include "sat_hex.h"

#define STORE_DB_NAME "caseload.db"
#define STORE_ID_BYTES SAT_ID_BYTES
#define STORE_ID_HEX_BYTES SAT_ID_HEX_BYTES
#define STORE_NOTE_TEXT_BYTES 2048
#define STORE_ERRMSG_BYTES 200

struct store_id {
    uint8_t b[STORE_ID_BYTES];
};

struct store_patient {
    struct store_id id;
    char nhs_number[11];   /* 10 digits (spaces accepted on input) */
    char given_name[128];
    char family_name[128];
    char date_of_birth[11]; /* YYYY-MM-DD */
    char address[256];
    char postcode[16];
    char team[64];
    int64_t created_ms;
    int deleted;
};

struct store_visit {
    struct store_id id;
    struct store_id patient_id;
    int64_t started_ms;
    int64_t ended_ms; /* 0 while open */
    char reason[256];
    int deleted;
};

struct store_obs {
    struct store_id id;
    struct store_id patient_id;
    int has_visit;
    struct store_id visit_id;
    int has_amends;
    struct store_id amends;
    int64_t taken_ms;
    struct news2_vitals vitals;
    /* What a person is shown is computed by this tablet's NEWS2 code from
     * the vital signs, every time a record is read, never taken from what
     * the record carried (another tablet, or a faulty one, wrote that). */
    int news2_score;            /* 0..20; -1 when the vitals are incomplete */
    enum news2_risk news2_risk; /* HIGH when incomplete: never reassure */
    int news2_incomplete;       /* 0, or news2_check's index of the first
                                 * missing or invalid vital sign
                                 * (news2_field_name names it) */
    int news2_carried;          /* the score the record carried: a
                                 * cross-check only (see news2_score) */
};

struct store_note {
    struct store_id id;
    struct store_id patient_id;
    int has_visit;
    struct store_id visit_id;
    int has_amends;
    struct store_id amends;
    int64_t written_ms;
    char text[STORE_NOTE_TEXT_BYTES];
};

struct store_task {
    struct store_id id;
    struct store_id patient_id;
    char title[256];
    int64_t due_ms; /* 0: no due time */
    int done;
    int deleted;
};

/* One field write, as sync carries it (satchel.proto FieldChange). */
struct store_change {
    uint64_t seq; /* this device's change-log sequence (own writes) */
    struct store_id record_id;
    enum record_kind kind;
    uint32_t field; /* field number in the kind's message in satchel.proto;
                     * observation vitals are 500 + VitalSigns field; 0 with a
                     * tombstone */
    int value_type; /* FieldValue tags: 1 text, 2 integer, 3 blob (an id),
                     * 4 flag, 5 tombstone */
    int64_t value_int;
    const char *value_text; /* valid during the call only */
    struct store_id value_blob;
    uint64_t hlc_wall_ms;
    uint32_t hlc_counter;
    struct store_id origin_device;
    uint64_t origin_seq; /* the writer's change-log sequence */
    int has_base;        /* the winning write the writer replaced */
    uint64_t base_wall_ms;
    uint32_t base_counter;
    struct store_id base_device;
};

/* Where this device stands with the hub. */
struct store_sync_state {
    /* The cursor to give the hub: the last hub sequence applied here; but
     * while own changes to a patient a pull purged are not yet pushed (the
     * nurse wrote during the sync that moved the patient away), the cursor
     * from before that purge, so that the hub still takes them (hub_store.h,
     * Scope) and they are not lost. Pulling again from there is harmless. */
    uint64_t pull_cursor;
    uint64_t push_acked;  /* last own sequence the hub holds */
    uint64_t last_seq;    /* last own sequence written */
};

struct store_apply_result {
    unsigned applied;   /* changes that won and were applied */
    unsigned stale;     /* older than (or the same as) what is here */
    unsigned conflicts; /* concurrent edits kept for a person to see */
    unsigned purged;    /* patients that left this device's caseload */
};

/* A concurrent edit of one field on two devices. Both values are kept: the
 * winner (by the merge rule) in the record, both here. */
struct store_conflict {
    int64_t id;
    struct store_id record_id;
    enum record_kind kind;
    uint32_t field;
    const char *kept; /* value the record now has (valid during the call) */
    const char *lost; /* the other value */
    struct store_id kept_origin;
    struct store_id lost_origin;
    int64_t detected_ms;
};

struct store;

/* Opens (creating if needed) the store of the device behind h with the data
 * key in k, which must be unlocked (else SAT_ERR_KEYS_LOCKED). The store
 * keeps a pointer to h, not to k. A store an older build left in an older
 * layout is brought to this build's in one transaction, once (40,000
 * records with 520,000 field states, about a team's year, took 0.8 s on a
 * PC). On failure, why (if not NULL) gets the one-line reason, e.g. that
 * the store was made by a newer build. */
SAT_CHECK int store_open(const struct hal *h, const struct keys *k, struct store **out,
               char why[STORE_ERRMSG_BYTES]);

/* The key the store's files are sealed under (vfs_crypt), derived from the
 * unlocked DEK in k: for tools and tests that open the database through
 * vfs_crypt themselves. The caller wipes it. */
SAT_CHECK int store_file_key(const struct keys *k, uint8_t key[32]);

/* Closes the database and wipes the key material. NULL is ignored. */
void store_close(struct store *s);

/* One line on the last failure of s ("" after a success). */
const char *store_errmsg(const struct store *s);

/* Patients. add assigns id and created_ms. update writes only the fields
 * that differ from the stored record (one change each). list gives the
 * living patients ordered by family name, then given name. */
SAT_CHECK int store_patient_add(struct store *s, struct store_patient *p);
SAT_CHECK int store_patient_update(struct store *s, const struct store_patient *p);
SAT_CHECK int store_patient_get(struct store *s, const struct store_id *id, struct store_patient *out);
SAT_CHECK int store_patient_list(struct store *s, int (*fn)(void *arg, const struct store_patient *p),
                       void *arg);

/* Visits: at most one open visit per patient (SAT_ERR_STORE_NOT_ALLOWED). */
SAT_CHECK int store_visit_start(struct store *s, const struct store_id *patient, const char *reason,
                      struct store_visit *out);
SAT_CHECK int store_visit_end(struct store *s, const struct store_id *visit, struct store_visit *out);
SAT_CHECK int store_visit_get(struct store *s, const struct store_id *id, struct store_visit *out);
SAT_CHECK int store_visit_list(struct store *s, const struct store_id *patient,
                     int (*fn)(void *arg, const struct store_visit *v), void *arg);

/* Observations: o->patient_id, vitals and optional visit/amends in; id,
 * taken_ms and the NEWS2 score and risk out. */
SAT_CHECK int store_obs_add(struct store *s, struct store_obs *o);
SAT_CHECK int store_obs_get(struct store *s, const struct store_id *id, struct store_obs *out);
SAT_CHECK int store_obs_list(struct store *s, const struct store_id *patient,
                   int (*fn)(void *arg, const struct store_obs *o), void *arg);

/* Care notes: n->patient_id, text and optional visit/amends in. An amending
 * note must name a note of the same patient. */
SAT_CHECK int store_note_add(struct store *s, struct store_note *n);
SAT_CHECK int store_note_get(struct store *s, const struct store_id *id, struct store_note *out);
SAT_CHECK int store_note_list(struct store *s, const struct store_id *patient,
                    int (*fn)(void *arg, const struct store_note *n), void *arg);

/* Tasks. */
SAT_CHECK int store_task_add(struct store *s, struct store_task *t);
SAT_CHECK int store_task_done(struct store *s, const struct store_id *id);
SAT_CHECK int store_task_get(struct store *s, const struct store_id *id, struct store_task *out);
SAT_CHECK int store_task_list(struct store *s, const struct store_id *patient,
                    int (*fn)(void *arg, const struct store_task *t), void *arg);

/* Tombstones a patient, visit or task (observations and notes are
 * append-only: SAT_ERR_STORE_NOT_ALLOWED). */
SAT_CHECK int store_delete(struct store *s, enum record_kind kind, const struct store_id *id);

/* This device's own changes after sequence `after`, in order, at most max
 * of them (0: all). */
SAT_CHECK int store_changes(struct store *s, uint64_t after, unsigned max,
                  int (*fn)(void *arg, const struct store_change *c), void *arg);

/* ---- sync ----------------------------------------------------------------
 * Merge rule (the same on every replica and on the hub): per (record,
 * field), the write with the higher (HLC stamp, origin device) wins. A write
 * from another device whose base is not this replica's current winner, with
 * a different value, is a concurrent edit: it is recorded as a conflict
 * whichever side wins, never dropped silently. */

SAT_CHECK int store_sync_state(struct store *s, struct store_sync_state *out);

/* Records that the hub holds own changes up to `acked` (never goes down). */
SAT_CHECK int store_set_push_acked(struct store *s, uint64_t acked);

/* Applies a pulled batch in one transaction: merges each change, deletes
 * the purged patients with all their records, and moves the pull cursor to
 * next_cursor. All or nothing. SAT_ERR_STORE_INVALID for a malformed change
 * (nothing applied). */
SAT_CHECK int store_apply_remote(struct store *s, const struct store_change *changes, size_t n,
                       const struct store_id *purge, size_t npurge, uint64_t next_cursor,
                       struct store_apply_result *out);

/* The same in steps, for a batch applied as it is decoded: begin opens the
 * transaction; changes merges some of the batch's changes (call it as often
 * as needed); commit purges, moves the pull cursor and makes all of it
 * durable at once; abort undoes it all. Each adds its counts to *acc (may
 * be NULL). A failing changes or commit has undone everything already (abort
 * is then a no-op, and safe). Between begin and commit or abort no other
 * call may write (SAT_ERR_INVALID); changes and commit without begin are
 * SAT_ERR_INVALID too. */
SAT_CHECK int store_apply_begin(struct store *s);
SAT_CHECK int store_apply_changes(struct store *s, const struct store_change *changes, size_t n,
                        struct store_apply_result *acc);
SAT_CHECK int store_apply_commit(struct store *s, const struct store_id *purge, size_t npurge,
                       uint64_t next_cursor, struct store_apply_result *acc);
void store_apply_abort(struct store *s);

SAT_CHECK int store_conflicts(struct store *s, int (*fn)(void *arg, const struct store_conflict *c),
                    void *arg);

/* SHA-256 over every replicated record field (not local bookkeeping), in a
 * fixed order: equal on replicas that hold the same records. */
SAT_CHECK int store_content_hash(struct store *s, uint8_t out[32]);

/* This device's id: random when the store was created, until the device
 * is provisioned (store_adopt_device_id). */
void store_device_id(const struct store *s, struct store_id *out);

/* Takes the id the fleet provisioned this device with (its certificate's
 * name): every change written so far is re-labelled with it, in one
 * transaction. SAT_ERR_STORE_NOT_ALLOWED once anything has been pushed
 * under another id. Adopting the current id is SAT_OK and writes nothing. */
SAT_CHECK int store_adopt_device_id(struct store *s, const struct store_id *id);

/* Runs PRAGMA integrity_check: SAT_OK if "ok", else SAT_ERR_STORE_CORRUPT. */
SAT_CHECK int store_check_integrity(struct store *s);

/* Resolves a hex id or a unique hex prefix (at least 6 digits) of a record
 * of `kind` to its id: SAT_ERR_STORE_UNKNOWN_ID if none or ambiguous. */
SAT_CHECK int store_resolve_id(struct store *s, enum record_kind kind, const char *hex,
                     struct store_id *out);

void store_id_to_hex(const struct store_id *id, char out[STORE_ID_HEX_BYTES]);
/* Parses exactly 32 hex digits. SAT_ERR_STORE_INVALID otherwise. */
SAT_CHECK int store_id_from_hex(const char *hex, struct store_id *out);

/* A record's text fields hold what satchel.proto's message holds (its
 * .options max_size, the NUL included): no more, or a pulled value would
 * not fit, and no less, or a tablet could write what the hub cannot send. */
#define STORE_SAME_SIZE(type, field, msg)                                                  \
    _Static_assert(sizeof(((type *)0)->field) == sizeof(((msg *)0)->field),               \
                   #type "." #field " must match " #msg "." #field)
STORE_SAME_SIZE(struct store_patient, nhs_number, satchel_Patient);
STORE_SAME_SIZE(struct store_patient, given_name, satchel_Patient);
STORE_SAME_SIZE(struct store_patient, family_name, satchel_Patient);
STORE_SAME_SIZE(struct store_patient, date_of_birth, satchel_Patient);
STORE_SAME_SIZE(struct store_patient, address, satchel_Patient);
STORE_SAME_SIZE(struct store_patient, postcode, satchel_Patient);
STORE_SAME_SIZE(struct store_patient, team, satchel_Patient);
STORE_SAME_SIZE(struct store_visit, reason, satchel_Visit);
STORE_SAME_SIZE(struct store_note, text, satchel_CareNote);
STORE_SAME_SIZE(struct store_task, title, satchel_Task);
#undef STORE_SAME_SIZE

#endif
