/*
 * hub_policy.c - the hub's rules, once, above any storage backend.
 *
 * This is the hub store of hub_store.h: every rule its header states -
 * scope on push and pull, idempotent pushes, the merge and conflict rules,
 * the purge and re-feed of a reassignment, revocation - is decided here,
 * over a backend (hub_backend.h) that only stores and loads. Each call is
 * one backend transaction: begin, the reads and writes the rule needs,
 * then commit, or rollback on any failure (so nothing of a failed call
 * remains, hub_store.h rule 4).
 *
 * Hub sequences are issued here, one after another from the counter the
 * backend's begin read under its write lock, in the order the rules below
 * emit them; a backend stores them as given, so every backend (and every
 * hub sharing one) serves the same feed in the same order.
 */
#include "hub_backend.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"


_Static_assert(HUB_ID_BYTES == SAT_ID_BYTES, "hub ids are record ids");

static const uint8_t hub_origin[HUB_ID_BYTES]; /* all zeros: the hub itself */

struct policy {
    struct hub_store base;
    struct hub_backend *b;
    uint64_t last_seq; /* in a write transaction: the last sequence issued */
    char errmsg[HUB_ERRMSG_BYTES];
};

/* ---- errors and transactions ----------------------------------------------- */

static int fail(struct policy *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct policy *p, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->errmsg, sizeof p->errmsg, fmt, ap);
    va_end(ap);
    return code;
}

/* A backend call's result: a failure brings the backend's message along
 * (SAT_ERR_NOT_FOUND answers a lookup and is no failure). */
static int bk(struct policy *p, int ret)
{
    if (ret != SAT_OK && ret != SAT_ERR_NOT_FOUND)
        snprintf(p->errmsg, sizeof p->errmsg, "%s", p->b->errmsg(p->b->ctx));
    return ret;
}

/* Calls backend member m of p with the backend's context first. */
#define BK(p, m, ...) bk((p), (p)->b->m((p)->b->ctx, __VA_ARGS__))

static int begin(struct policy *p)
{
    p->errmsg[0] = '\0';
    return BK(p, begin, &p->last_seq);
}

/* Ends a call's transaction: commits on success, rolls back on failure
 * (keeping the failure's message). */
static int finish(struct policy *p, int ret)
{
    if (ret == SAT_OK)
        return BK(p, commit, p->last_seq);
    p->b->rollback(p->b->ctx);
    return ret;
}

static uint64_t next_seq(struct policy *p)
{
    return ++p->last_seq;
}

static int team_valid(const char *team)
{
    return team && team[0] != '\0' && memchr(team, '\0', HUB_TEAM_BYTES) != NULL;
}

/* Addresses a feed entry to a team (a valid one: it fits). */
static void entry_team(struct hub_feed_entry *e, const char *team)
{
    memcpy(e->team, team, strlen(team) + 1);
}

/* ---- devices ---------------------------------------------------------------- */

static int device_load(struct policy *p, const uint8_t device[HUB_ID_BYTES],
                       struct hub_device *out)
{
    int ret = BK(p, device_get, device, out);
    if (ret == SAT_ERR_NOT_FOUND) {
        char hex[SAT_ID_HEX_BYTES];
        sat_hex_encode(device, HUB_ID_BYTES, hex);
        return fail(p, SAT_ERR_HUB_UNKNOWN_DEVICE,
                    "device %s is not registered with this hub: provision it first", hex);
    }
    return ret;
}

/* Loads a device that may push or pull: known and not revoked. */
static int device_active(struct policy *p, const uint8_t device[HUB_ID_BYTES],
                         struct hub_device *out)
{
    int ret = device_load(p, device, out);
    if (ret == SAT_OK && out->revoked) {
        char hex[SAT_ID_HEX_BYTES];
        sat_hex_encode(device, HUB_ID_BYTES, hex);
        ret = fail(p, SAT_ERR_HUB_REVOKED, "device %s is revoked: it must wipe itself", hex);
    }
    return ret;
}

/* Records the cursor a device says it has applied. */
static int device_confirm_cursor(struct policy *p, const uint8_t device[HUB_ID_BYTES],
                                 struct hub_device *dev, uint64_t cursor)
{
    if (cursor > p->last_seq)
        return fail(p, SAT_ERR_HUB_BAD_CURSOR,
                    "pull cursor %llu is beyond the hub's last sequence %llu (hub restored "
                    "from an older backup?)",
                    (unsigned long long)cursor, (unsigned long long)p->last_seq);
    if (cursor == dev->pull_cursor)
        return SAT_OK;
    dev->pull_cursor = cursor;
    return BK(p, device_set_cursor, device, cursor);
}

static int po_device_register(void *ctx, const uint8_t device[HUB_ID_BYTES], const char *team)
{
    struct policy *p = ctx;
    struct hub_device dev;
    int ret;
    if (memcmp(device, hub_origin, HUB_ID_BYTES) == 0)
        return fail(p, SAT_ERR_INVALID, "the all-zero device id is the hub's own");
    if (!team_valid(team))
        return fail(p, SAT_ERR_INVALID, "a team name must be 1 to %d bytes",
                    HUB_TEAM_BYTES - 1);
    ret = begin(p);
    if (ret != SAT_OK)
        return ret;
    ret = device_load(p, device, &dev);
    if (ret == SAT_OK)
        return finish(p, fail(p, SAT_ERR_EXISTS, "that device is registered already (team %s)",
                              dev.team));
    if (ret != SAT_ERR_HUB_UNKNOWN_DEVICE)
        return finish(p, ret);
    p->errmsg[0] = '\0';
    return finish(p, BK(p, device_insert, device, team));
}

static int po_device_get(void *ctx, const uint8_t device[HUB_ID_BYTES], struct hub_device *out)
{
    struct policy *p = ctx;
    struct hub_device dev;
    int ret;
    p->errmsg[0] = '\0';
    ret = device_load(p, device, &dev);
    if (ret == SAT_OK)
        *out = dev;
    return ret;
}

static int po_device_revoke(void *ctx, const uint8_t device[HUB_ID_BYTES])
{
    struct policy *p = ctx;
    struct hub_device dev;
    int ret = begin(p);
    if (ret != SAT_OK)
        return ret;
    ret = device_load(p, device, &dev);
    if (ret == SAT_OK && !dev.revoked)
        ret = BK(p, device_set_revoked, device);
    return finish(p, ret);
}

static int po_device_checkin(void *ctx, const uint8_t device[HUB_ID_BYTES], uint64_t pull_cursor,
                             struct hub_device *out)
{
    struct policy *p = ctx;
    struct hub_device dev;
    int ret = begin(p);
    if (ret != SAT_OK)
        return ret;
    ret = device_load(p, device, &dev);
    if (ret == SAT_OK && !dev.revoked)
        ret = device_confirm_cursor(p, device, &dev, pull_cursor);
    ret = finish(p, ret);
    if (ret == SAT_OK)
        *out = dev;
    return ret;
}

/* ---- patients ------------------------------------------------------------------ */

/* The team of a patient, or SAT_ERR_HUB_UNKNOWN_RECORD. */
static int patient_team_get(struct policy *p, const uint8_t patient[HUB_ID_BYTES],
                            char team[HUB_TEAM_BYTES])
{
    int ret = BK(p, patient_get_team, patient, team);
    if (ret == SAT_ERR_NOT_FOUND) {
        char hex[SAT_ID_HEX_BYTES];
        sat_hex_encode(patient, HUB_ID_BYTES, hex);
        return fail(p, SAT_ERR_HUB_UNKNOWN_RECORD, "patient %s is not known to the hub", hex);
    }
    return ret;
}

static int po_patient_team(void *ctx, const uint8_t patient_id[HUB_ID_BYTES],
                           char team[HUB_TEAM_BYTES])
{
    struct policy *p = ctx;
    char t[HUB_TEAM_BYTES];
    int ret;
    p->errmsg[0] = '\0';
    ret = patient_team_get(p, patient_id, t);
    if (ret == SAT_OK)
        memcpy(team, t, sizeof t);
    return ret;
}

/* ---- changes, field winners and conflicts ------------------------------------- */

/* Stores change c at hub sequence seq and its feed entry for team. */
static int change_store(struct policy *p, uint64_t seq, const satchel_FieldChange *c,
                        const uint8_t patient[HUB_ID_BYTES], const char *team)
{
    struct hub_feed_entry e;
    int ret = BK(p, change_insert, seq, c);
    if (ret != SAT_OK)
        return ret;
    e.seq = seq;
    e.what = HUB_FEED_CHANGE;
    e.change_seq = seq;
    memcpy(e.record_id, c->record_id, HUB_ID_BYTES);
    memcpy(e.patient_id, patient, HUB_ID_BYTES);
    entry_team(&e, team);
    return BK(p, feed_append, &e);
}

/* Folds change c (stored at seq) into its field's winner by the merge rule
 * (record.h). With writer_cursor (the writing device's confirmed pull
 * cursor) not NULL, applies the conflict rule of hub_store.h; *conflicts
 * counts conflicts. */
static int field_merge(struct policy *p, uint64_t seq, const satchel_FieldChange *c,
                       const uint64_t *writer_cursor, size_t *conflicts)
{
    struct hub_winner w;
    struct hlc x = { c->stamp.wall_ms, c->stamp.counter };
    int ret, x_wins;

    ret = BK(p, winner_get, c->record_id, c->field, &w);
    if (ret == SAT_ERR_NOT_FOUND) {
        x_wins = 1;
        goto put;
    }
    if (ret != SAT_OK)
        return ret;
    {
        struct hlc ws = { w.stamp.wall_ms, w.stamp.counter };
        x_wins = record_merge_order(x, c->origin_device, ws, w.origin) > 0;
        if (writer_cursor && memcmp(c->origin_device, w.origin, HUB_ID_BYTES) != 0) {
            /* D could not have seen W: its stamp is below W's (had D
             * applied W, its HLC would be past it), or W had not been
             * delivered to D. */
            int below = hlc_compare(x, ws) < 0;
            int unseen = w.deliver_seq > *writer_cursor;
            if (below || unseen) {
                ret = BK(p, conflict_insert, seq, c->record_id, c->field,
                         x_wins ? seq : w.change_seq, x_wins ? w.change_seq : seq);
                if (ret != SAT_OK)
                    return ret;
                (*conflicts)++;
            }
        }
    }
put:
    if (!x_wins)
        return SAT_OK;
    return BK(p, winner_put, c->record_id, c->field, seq, seq);
}

/* ---- push ------------------------------------------------------------------ */

static int is_patient(const satchel_FieldChange *c)
{
    return c->kind == (satchel_RecordKind)RECORD_KIND_PATIENT;
}

/* A non-patient change that names the record's patient. */
static int names_patient(const satchel_FieldChange *c)
{
    return !is_patient(c) && c->field == RECORD_FIELD_PATIENT_ID;
}

/* Checks what can be checked without the store. */
static int batch_check(struct policy *p, const uint8_t device[HUB_ID_BYTES],
                       uint64_t first_seq, const satchel_FieldChange *ch, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const satchel_FieldChange *c = &ch[i];
        pb_size_t which = c->value.which_value;
        if (memcmp(c->origin_device, device, HUB_ID_BYTES) != 0)
            return fail(p, SAT_ERR_HUB_NOT_ORIGIN,
                        "change %zu names another device as its writer: a device pushes "
                        "only its own changes",
                        i);
        if (c->origin_seq < first_seq || (i > 0 && c->origin_seq <= ch[i - 1].origin_seq))
            return fail(p, SAT_ERR_INVALID,
                        "change %zu: sequence %llu is not after the batch's previous one", i,
                        (unsigned long long)c->origin_seq);
        if (!record_kind_valid((int)c->kind))
            return fail(p, SAT_ERR_HUB_BAD_CHANGE, "change %zu: unknown record kind %d", i,
                        (int)c->kind);
        if (!c->has_stamp || !c->has_value)
            return fail(p, SAT_ERR_HUB_BAD_CHANGE, "change %zu has no stamp or no value", i);
        if (which < satchel_FieldValue_text_tag || which > satchel_FieldValue_tombstone_tag)
            return fail(p, SAT_ERR_HUB_BAD_CHANGE, "change %zu has no value", i);
        if ((which == satchel_FieldValue_tombstone_tag) != (c->field == RECORD_FIELD_TOMBSTONE))
            return fail(p, SAT_ERR_HUB_BAD_CHANGE,
                        "change %zu: a tombstone goes in field 0, and only a tombstone", i);
        if (which == satchel_FieldValue_text_tag &&
            !memchr(c->value.value.text, '\0', HUB_TEXT_BYTES_MAX))
            return fail(p, SAT_ERR_HUB_BAD_CHANGE, "change %zu: text is not terminated", i);
        if (which == satchel_FieldValue_blob_tag && c->value.value.blob.size > HUB_BLOB_BYTES_MAX)
            return fail(p, SAT_ERR_HUB_BAD_CHANGE, "change %zu: blob too long", i);
        if (names_patient(c) &&
            (which != satchel_FieldValue_blob_tag || c->value.value.blob.size != HUB_ID_BYTES))
            return fail(p, SAT_ERR_HUB_BAD_CHANGE,
                        "change %zu: patient_id (field 2) must be a 16-byte id", i);
    }
    return SAT_OK;
}

static int out_of_scope(struct policy *p, size_t i, const uint8_t patient[HUB_ID_BYTES],
                        const char *why, const struct hub_device *dev)
{
    char hex[SAT_ID_HEX_BYTES];
    sat_hex_encode(patient, HUB_ID_BYTES, hex);
    return fail(p, SAT_ERR_HUB_OUT_OF_SCOPE,
                "change %zu: patient %s %s team %s's caseload: nothing from the batch was "
                "stored",
                i, hex, why, dev->team);
}

/* Whether dev may write to the records of a patient now in `team`: the
 * patient is in dev's team, or it left dev's team in a reassignment dev has
 * not yet confirmed pulling (its pull cursor is before it). Then the tablet
 * wrote before it could know (a nurse offline all morning while the patient
 * was moved to another team): its edit must not be lost, so it is kept and
 * goes to the patient's team now, and the tablet's next pull purges the
 * patient. Once the tablet has confirmed that pull, its writes to the
 * patient are out of scope. */
static int may_write(struct policy *p, const struct hub_device *dev,
                     const uint8_t patient[HUB_ID_BYTES], const char *team, int *ok)
{
    *ok = strcmp(team, dev->team) == 0;
    if (*ok)
        return SAT_OK;
    return BK(p, reassign_after, patient, dev->team, dev->pull_cursor, ok);
}

/* Pass 1: new patients in the batch join the device's team; known ones
 * must be writable by it (may_write). A patient's changes come together:
 * the next change of the patient just checked or added is not looked at
 * again. */
static int push_patients(struct policy *p, const struct hub_device *dev,
                         const satchel_FieldChange *ch, size_t n, const int *held)
{
    const uint8_t *done = NULL;
    for (size_t i = 0; i < n; i++) {
        const satchel_FieldChange *c = &ch[i];
        uint8_t patient[HUB_ID_BYTES];
        char team[HUB_TEAM_BYTES];
        int kind, ok, ret;
        if (held[i] || !is_patient(c) ||
            (done && memcmp(done, c->record_id, HUB_ID_BYTES) == 0))
            continue;
        done = c->record_id;
        ret = BK(p, record_get, c->record_id, &kind, patient);
        if (ret == SAT_OK) {
            if (kind != RECORD_KIND_PATIENT)
                return fail(p, SAT_ERR_HUB_BAD_CHANGE,
                            "change %zu: the record is a kind %d, not a patient", i, kind);
            ret = patient_team_get(p, c->record_id, team);
            if (ret == SAT_OK)
                ret = may_write(p, dev, c->record_id, team, &ok);
            if (ret != SAT_OK)
                return ret;
            if (!ok)
                return out_of_scope(p, i, c->record_id, "is not in", dev);
            continue;
        }
        if (ret != SAT_ERR_NOT_FOUND)
            return ret;
        ret = BK(p, patient_insert, c->record_id, dev->team);
        if (ret == SAT_OK)
            ret = BK(p, record_insert, c->record_id, RECORD_KIND_PATIENT, c->record_id);
        if (ret != SAT_OK)
            return ret;
    }
    return SAT_OK;
}

/* The patient a new non-patient record names in this batch (field 2). */
static const uint8_t *batch_patient_of(const satchel_FieldChange *ch, size_t n,
                                       const uint8_t record[HUB_ID_BYTES])
{
    for (size_t i = 0; i < n; i++)
        if (names_patient(&ch[i]) && memcmp(ch[i].record_id, record, HUB_ID_BYTES) == 0)
            return ch[i].value.value.blob.bytes;
    return NULL;
}

/* What pass 2 looked up for a record: a record's changes come together in
 * a batch, and within the push's transaction its kind, patient, team and
 * the device's right to write to it cannot change, so the next change of
 * the same record is checked against this instead of the store. */
struct push_record {
    int valid;
    uint8_t id[HUB_ID_BYTES];
    int kind;
    uint8_t patient[HUB_ID_BYTES];
    char team[HUB_TEAM_BYTES];
};

/* Change i (of record r) keeps the record's kind and patient. */
static int push_change_fits(struct policy *p, const satchel_FieldChange *c, size_t i,
                            const struct push_record *r)
{
    if (r->kind != (int)c->kind)
        return fail(p, SAT_ERR_HUB_BAD_CHANGE,
                    "change %zu: the record is a kind %d, not a kind %d", i, r->kind,
                    (int)c->kind);
    if (names_patient(c) && memcmp(c->value.value.blob.bytes, r->patient, HUB_ID_BYTES) != 0)
        return fail(p, SAT_ERR_HUB_BAD_CHANGE,
                    "change %zu: a record cannot move to another patient", i);
    return SAT_OK;
}

/* Looks up (and, if new, adds) the record change i writes and checks that
 * dev may write to it; fills *r. */
static int push_record_load(struct policy *p, const struct hub_device *dev,
                            const satchel_FieldChange *ch, size_t n, size_t i,
                            struct push_record *r)
{
    const satchel_FieldChange *c = &ch[i];
    int known, writable, ret;
    r->valid = 0;
    ret = BK(p, record_get, c->record_id, &r->kind, r->patient);
    if (ret != SAT_OK && ret != SAT_ERR_NOT_FOUND)
        return ret;
    known = ret == SAT_OK;
    if (!known) {
        const uint8_t *pat = batch_patient_of(ch, n, c->record_id);
        if (!pat)
            return fail(p, SAT_ERR_HUB_OUT_OF_SCOPE,
                        "change %zu: the record is new and the batch does not say whose "
                        "it is (patient_id): nothing from the batch was stored",
                        i);
        memcpy(r->patient, pat, HUB_ID_BYTES);
        r->kind = (int)c->kind;
    }
    ret = push_change_fits(p, c, i, r);
    if (ret != SAT_OK)
        return ret;
    ret = patient_team_get(p, r->patient, r->team);
    if (ret == SAT_ERR_HUB_UNKNOWN_RECORD)
        return out_of_scope(p, i, r->patient, "is unknown to the hub, so not in", dev);
    if (ret == SAT_OK)
        ret = may_write(p, dev, r->patient, r->team, &writable);
    if (ret != SAT_OK)
        return ret;
    if (!writable)
        return out_of_scope(p, i, r->patient, "is not in", dev);
    if (!known) {
        ret = BK(p, record_insert, c->record_id, (int)c->kind, r->patient);
        if (ret != SAT_OK)
            return ret;
    }
    memcpy(r->id, c->record_id, HUB_ID_BYTES);
    r->valid = 1;
    return SAT_OK;
}

/* Pass 2: every new change, in batch order. */
static int push_changes(struct policy *p, const struct hub_device *dev,
                        const satchel_FieldChange *ch, size_t n, const int *held,
                        struct hub_push_result *res)
{
    struct push_record r = { 0 };
    for (size_t i = 0; i < n; i++) {
        const satchel_FieldChange *c = &ch[i];
        uint64_t seq;
        int ret;
        if (held[i])
            continue;
        if (!r.valid || memcmp(r.id, c->record_id, HUB_ID_BYTES) != 0)
            ret = push_record_load(p, dev, ch, n, i, &r);
        else
            ret = push_change_fits(p, c, i, &r);
        if (ret != SAT_OK)
            return ret;
        seq = next_seq(p);
        ret = change_store(p, seq, c, r.patient, r.team);
        if (ret == SAT_OK)
            ret = field_merge(p, seq, c, &dev->pull_cursor, &res->conflicts);
        if (ret != SAT_OK)
            return ret;
        res->stored++;
    }
    return SAT_OK;
}

static int po_push(void *ctx, const uint8_t device[HUB_ID_BYTES], uint64_t first_seq,
                   const satchel_FieldChange *ch, size_t n, struct hub_push_result *out)
{
    struct policy *p = ctx;
    struct hub_push_result res = { 0, 0, 0, 0 };
    struct hub_device dev;
    int held[HUB_PUSH_CHANGES_MAX];
    int ret;

    if (n > HUB_PUSH_CHANGES_MAX || first_seq == 0)
        return fail(p, SAT_ERR_INVALID, "a push holds at most %d changes from sequence 1 on",
                    HUB_PUSH_CHANGES_MAX);
    ret = begin(p);
    if (ret != SAT_OK)
        return ret;
    ret = device_active(p, device, &dev);
    if (ret == SAT_OK)
        ret = batch_check(p, device, first_seq, ch, n);
    if (ret == SAT_OK && first_seq > dev.acked_seq + 1)
        ret = fail(p, SAT_ERR_HUB_OUT_OF_ORDER,
                   "batch starts at sequence %llu but the hub holds up to %llu: send from "
                   "%llu",
                   (unsigned long long)first_seq, (unsigned long long)dev.acked_seq,
                   (unsigned long long)dev.acked_seq + 1);
    for (size_t i = 0; ret == SAT_OK && i < n; i++) {
        ret = BK(p, change_held, ch[i].origin_device, ch[i].origin_seq, &held[i]);
        res.skipped += (size_t)held[i];
    }
    if (ret == SAT_OK)
        ret = push_patients(p, &dev, ch, n, held);
    if (ret == SAT_OK)
        ret = push_changes(p, &dev, ch, n, held, &res);
    res.acked_seq = dev.acked_seq;
    if (ret == SAT_OK && n > 0 && ch[n - 1].origin_seq > dev.acked_seq) {
        res.acked_seq = ch[n - 1].origin_seq;
        ret = BK(p, device_set_acked, device, res.acked_seq);
    }
    ret = finish(p, ret);
    if (ret == SAT_OK)
        *out = res;
    return ret;
}

/* ---- reassignment ------------------------------------------------------------ */

struct reassign {
    struct policy *p;
    const uint8_t *patient;
    const char *team;      /* the team the entries are addressed to */
    uint64_t before;       /* re-feed: fields offered before this sequence */
    size_t refed;
};

static int append_purge(struct reassign *ra, const uint8_t id[HUB_ID_BYTES])
{
    struct hub_feed_entry e;
    memset(&e, 0, sizeof e);
    e.seq = next_seq(ra->p);
    e.what = HUB_FEED_PURGE;
    memcpy(e.record_id, id, HUB_ID_BYTES);
    memcpy(e.patient_id, ra->patient, HUB_ID_BYTES);
    entry_team(&e, ra->team);
    return BK(ra->p, feed_append, &e);
}

/* A purge entry for each record of the patient but itself (its own entry
 * comes first, from the caller). */
static int purge_record(void *arg, const uint8_t id[HUB_ID_BYTES])
{
    struct reassign *ra = arg;
    return memcmp(id, ra->patient, HUB_ID_BYTES) == 0 ? SAT_OK : append_purge(ra, id);
}

/* A re-feed entry for a winning field the new team has not been offered
 * since the reassignment (the team field the hub just wrote is in its feed
 * already). */
static int refeed_field(void *arg, const uint8_t record[HUB_ID_BYTES], uint32_t field,
                        uint64_t change_seq, uint64_t deliver_seq)
{
    struct reassign *ra = arg;
    struct hub_feed_entry e;
    (void)field;
    if (deliver_seq >= ra->before)
        return SAT_OK;
    e.seq = next_seq(ra->p);
    e.what = HUB_FEED_REFEED;
    e.change_seq = change_seq;
    memcpy(e.record_id, record, HUB_ID_BYTES);
    memcpy(e.patient_id, ra->patient, HUB_ID_BYTES);
    entry_team(&e, ra->team);
    ra->refed++;
    return BK(ra->p, feed_append, &e);
}

/* The team field the hub writes as its own change when it moves a patient. */
static int write_team_field(struct policy *p, const uint8_t patient[HUB_ID_BYTES],
                            const char *team, const satchel_Hlc *stamp)
{
    satchel_FieldChange c;
    uint64_t seq = next_seq(p);
    size_t unused = 0;
    int ret;
    memset(&c, 0, sizeof c);
    memcpy(c.record_id, patient, HUB_ID_BYTES);
    c.kind = (satchel_RecordKind)RECORD_KIND_PATIENT;
    c.field = RECORD_FIELD_PATIENT_TEAM;
    c.has_value = true;
    c.value.which_value = satchel_FieldValue_text_tag;
    memcpy(c.value.value.text, team, strlen(team) + 1);
    c.has_stamp = true;
    c.stamp = *stamp;
    memcpy(c.origin_device, hub_origin, HUB_ID_BYTES);
    c.origin_seq = seq;
    ret = change_store(p, seq, &c, patient, team);
    if (ret == SAT_OK)
        ret = field_merge(p, seq, &c, NULL, &unused);
    return ret;
}

/* See hub_store.h, "Purge design": the log entry, the move, a purge entry
 * per record for the old team (the patient first, then by id), the team
 * field, then a re-feed entry per winning field for the new team (by
 * record and field), all numbered in that order. */
static int po_patient_assign(void *ctx, const uint8_t patient[HUB_ID_BYTES], const char *team,
                             const satchel_Hlc *stamp)
{
    struct policy *p = ctx;
    char from[HUB_TEAM_BYTES];
    struct reassign ra = { p, patient, NULL, 0, 0 };
    uint64_t reassign_seq, records;
    int kind, ret;
    uint8_t self[HUB_ID_BYTES];

    if (!team_valid(team))
        return fail(p, SAT_ERR_INVALID, "a team name must be 1 to %d bytes",
                    HUB_TEAM_BYTES - 1);
    ret = begin(p);
    if (ret != SAT_OK)
        return ret;
    ret = patient_team_get(p, patient, from);
    if (ret != SAT_OK || strcmp(from, team) == 0)
        return finish(p, ret);
    ret = BK(p, record_count, patient, &records);
    if (ret != SAT_OK)
        return finish(p, ret);
    if (records > HUB_PATIENT_RECORDS_MAX)
        return finish(p, fail(p, SAT_ERR_INVALID,
                              "the patient has %llu records, more than the %d a reassignment "
                              "may move at once",
                              (unsigned long long)records, HUB_PATIENT_RECORDS_MAX));

    reassign_seq = next_seq(p);
    ret = BK(p, reassign_insert, reassign_seq, patient, from, team);
    if (ret == SAT_OK)
        ret = BK(p, patient_set_team, patient, team);
    if (ret == SAT_OK)
        ret = BK(p, feed_retarget, patient, team);
    if (ret == SAT_OK) {
        /* The patient's own purge entry first, then its records' by id. */
        ra.team = from;
        ret = BK(p, record_get, patient, &kind, self);
        if (ret == SAT_OK)
            ret = append_purge(&ra, patient);
        else if (ret == SAT_ERR_NOT_FOUND)
            ret = SAT_OK;
        if (ret == SAT_OK)
            ret = BK(p, records_of, patient, purge_record, &ra);
    }
    if (ret == SAT_OK && stamp)
        ret = write_team_field(p, patient, team, stamp);
    if (ret == SAT_OK) {
        ra.team = team;
        ra.before = reassign_seq;
        ret = BK(p, winners_of, patient, refeed_field, &ra);
        if (ret == SAT_OK && ra.refed > 0)
            ret = BK(p, winners_delivered, patient, reassign_seq, p->last_seq);
    }
    return finish(p, ret);
}

/* ---- pull ------------------------------------------------------------------ */

struct pull_scan {
    struct policy *p;
    const char *team;
    satchel_FieldChange *changes;
    size_t max_changes;
    struct hub_pull_result *out;
    size_t count, purges, bytes;
    uint64_t next;
    int more;
    int policy_err; /* the failure is the policy's (its message is set) */
};

/* Judges one feed entry by scope, as of now: a change as accepted (but
 * not the device's own: feed_scan leaves those out); a re-feed while the
 * patient is still in the team; a purge unless the patient has come back
 * to the team. Then fits it into the batch, which ends by count, by
 * purges and by bytes. */
static int pull_visit(void *arg, const struct hub_feed_row *row,
                      int (*load)(void *scan, satchel_FieldChange *out), void *scan)
{
    struct pull_scan *s = arg;
    switch (row->what) {
    case HUB_FEED_CHANGE:
        break;
    case HUB_FEED_REFEED:
        if (strcmp(row->patient_team, s->team) != 0)
            return HUB_SCAN_NEXT;
        break;
    default:
        if (strcmp(row->patient_team, s->team) == 0)
            return HUB_SCAN_NEXT;
        break;
    }
    if (row->what == HUB_FEED_PURGE) {
        if (s->purges == HUB_PULL_PURGE_MAX) {
            s->more = 1;
            return HUB_SCAN_STOP;
        }
        memcpy(s->out->purge_ids[s->purges], row->record_id, HUB_ID_BYTES);
        s->purges++;
    } else {
        size_t n;
        int ret;
        if (s->count == s->max_changes) {
            s->more = 1;
            return HUB_SCAN_STOP;
        }
        ret = load(scan, &s->changes[s->count]);
        if (ret != SAT_OK)
            return ret;
        /* The batch ends by bytes too, so its frame stays bounded. */
        n = proto_change_batch_bytes(&s->changes[s->count]);
        if (n == 0) {
            s->policy_err = 1;
            return fail(s->p, SAT_ERR_HUB_STORAGE, "a stored change cannot be encoded");
        }
        if (s->bytes + n > PROTO_PULL_CHANGES_BYTES_MAX) {
            s->more = 1;
            return HUB_SCAN_STOP;
        }
        s->bytes += n;
        s->count++;
    }
    s->next = row->seq;
    return HUB_SCAN_NEXT;
}

/* po_pull's transaction. */
static int pull_feed(struct policy *p, const uint8_t device[HUB_ID_BYTES], uint64_t cursor,
                     satchel_FieldChange *changes, size_t max_changes,
                     struct hub_pull_result *out)
{
    struct hub_device dev;
    struct pull_scan s;
    int ret;

    ret = begin(p);
    if (ret != SAT_OK)
        return ret;
    ret = device_active(p, device, &dev);
    if (ret == SAT_OK)
        ret = device_confirm_cursor(p, device, &dev, cursor);
    if (ret != SAT_OK)
        return finish(p, ret);
    memset(&s, 0, sizeof s);
    s.p = p;
    s.team = dev.team;
    s.changes = changes;
    s.max_changes = max_changes;
    s.out = out;
    s.next = cursor;
    ret = p->b->feed_scan(p->b->ctx, dev.team, cursor, device, pull_visit, &s);
    if (ret != SAT_OK && !s.policy_err)
        ret = bk(p, ret);
    if (ret == SAT_OK && !s.more)
        s.next = p->last_seq;
    ret = finish(p, ret);
    if (ret == SAT_OK) {
        out->count = s.count;
        out->purge_count = s.purges;
        out->next_cursor = s.next;
        out->more = s.more;
    }
    return ret;
}

static int po_pull(void *ctx, const uint8_t device[HUB_ID_BYTES], uint64_t cursor,
                   satchel_FieldChange *changes, size_t max_changes, struct hub_pull_result *out)
{
    struct policy *p = ctx;
    int ret;

    if (max_changes == 0 || max_changes > HUB_PULL_CHANGES_MAX)
        return fail(p, SAT_ERR_INVALID, "a pull asks for 1 to %d changes", HUB_PULL_CHANGES_MAX);
    /* A pull writes only the cursor the device confirmed, and losing that
     * in a crash is safe: the conflict rule then judges against an older
     * cursor, which reports more conflicts, never fewer, and the device's
     * next Hello confirms it again. So its commit need not be durable (the
     * next durable commit makes it so): a sync per pull batch was most of
     * the cost of a pull. */
    ret = BK(p, relax_sync, 1);
    if (ret != SAT_OK)
        return ret;
    ret = pull_feed(p, device, cursor, changes, max_changes, out);
    {
        char keep[HUB_ERRMSG_BYTES];
        memcpy(keep, p->errmsg, sizeof keep);
        if (BK(p, relax_sync, 0) != SAT_OK && ret == SAT_OK)
            ret = SAT_ERR_HUB_STORAGE;
        else
            memcpy(p->errmsg, keep, sizeof keep);
    }
    return ret;
}

/* ---- conflicts and stats -------------------------------------------------------- */

static int conflict_change(struct policy *p, uint64_t seq, satchel_FieldChange *out)
{
    int ret = BK(p, change_get, seq, out);
    if (ret == SAT_ERR_NOT_FOUND)
        return fail(p, SAT_ERR_HUB_STORAGE, "the hub database lost change %llu",
                    (unsigned long long)seq);
    return ret;
}

static int po_conflicts_list(void *ctx, uint64_t after, struct hub_conflict *out, size_t cap,
                             size_t *count)
{
    struct policy *p = ctx;
    struct hub_conflict_row rows[HUB_CONFLICTS_LIST_MAX];
    size_t n = 0;
    int ret;

    if (cap == 0 || cap > HUB_CONFLICTS_LIST_MAX)
        return fail(p, SAT_ERR_INVALID, "list 1 to %d conflicts at a time",
                    HUB_CONFLICTS_LIST_MAX);
    p->errmsg[0] = '\0';
    /* A read transaction, so the conflicts and their changes agree. */
    ret = bk(p, p->b->begin_read(p->b->ctx));
    if (ret != SAT_OK)
        return ret;
    ret = BK(p, conflicts_after, after, rows, cap, &n);
    for (size_t i = 0; ret == SAT_OK && i < n; i++) {
        out[i].id = rows[i].id;
        out[i].hub_seq = rows[i].hub_seq;
        ret = conflict_change(p, rows[i].kept_seq, &out[i].kept);
        if (ret == SAT_OK)
            ret = conflict_change(p, rows[i].lost_seq, &out[i].lost);
    }
    p->b->rollback(p->b->ctx);
    if (ret == SAT_OK)
        *count = n;
    return ret;
}

static int po_stats(void *ctx, struct hub_stats *out)
{
    struct policy *p = ctx;
    p->errmsg[0] = '\0';
    return BK(p, stats, out);
}

/* ---- open and close ---------------------------------------------------------------- */

static const char *po_errmsg(void *ctx)
{
    struct policy *p = ctx;
    return p->errmsg;
}

static void po_close(void *ctx)
{
    struct policy *p = ctx;
    if (!p)
        return;
    p->b->close(p->b->ctx);
    free(p);
}

int hub_policy_open(struct hub_backend *backend, struct hub_store **out)
{
    struct policy *p;
    if (!backend || !out)
        return SAT_ERR_INVALID;
    if (backend->version < HUB_BACKEND_VERSION) {
        backend->close(backend->ctx);
        return SAT_ERR_NOT_SUPPORTED;
    }
    p = calloc(1, sizeof *p);
    if (!p) {
        backend->close(backend->ctx);
        return SAT_ERR_NO_MEMORY;
    }
    p->b = backend;
    p->base.version = HUB_STORE_VERSION;
    p->base.ctx = p;
    p->base.close = po_close;
    p->base.errmsg = po_errmsg;
    p->base.device_register = po_device_register;
    p->base.device_get = po_device_get;
    p->base.device_revoke = po_device_revoke;
    p->base.device_checkin = po_device_checkin;
    p->base.patient_team = po_patient_team;
    p->base.patient_assign = po_patient_assign;
    p->base.push = po_push;
    p->base.pull = po_pull;
    p->base.conflicts_list = po_conflicts_list;
    p->base.stats = po_stats;
    *out = &p->base;
    return SAT_OK;
}

/* ---- opening a hub store by its address ----------------------------------------- */

#define SQLITE_SCHEME "sqlite:"

int hub_store_open(const char *uri, struct hub_store **out, char why[HUB_ERRMSG_BYTES])
{
    struct hub_backend *b = NULL;
    int ret;
    if (why)
        why[0] = '\0';
    if (!uri || !out)
        return SAT_ERR_INVALID;
    if (strncmp(uri, "postgresql://", 13) == 0 || strncmp(uri, "postgres://", 11) == 0) {
        if (why)
            snprintf(why, HUB_ERRMSG_BYTES,
                     "this hub was built without PostgreSQL: give a file path for SQLite");
        return SAT_ERR_NOT_SUPPORTED;
    }
    if (strncmp(uri, SQLITE_SCHEME, strlen(SQLITE_SCHEME)) == 0)
        uri += strlen(SQLITE_SCHEME);
    ret = hub_backend_sqlite_open(uri, &b, why);
    if (ret != SAT_OK)
        return ret;
    return hub_policy_open(b, out);
}
