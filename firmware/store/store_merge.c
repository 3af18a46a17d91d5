/*
 * store_merge.c - applying pulled changes (store.h, sync) and the sync
 * state. Each change is merged against its field's winner in the merge
 * state by the record model's merge order (record.h); a concurrent edit is
 * kept as a conflict whichever side wins; a record new to this replica is
 * written by one INSERT when its run of changes ends (the pending row);
 * patients that left the caseload are purged, holding the pull cursor back
 * while own changes to them are unpushed. A batch is one transaction, all
 * or nothing; while it is open no other call may write.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hlc.h"
#include "store_internal.h"

/* ---- sync: merge ---------------------------------------------------------- */

/* A pulled record this replica has never had, while its run of changes
 * is merged: the winning values are gathered and written by one INSERT
 * when the run ends (st_pend_flush: at another record's change, or at the
 * batch's commit; a run may span calls of store_apply_changes, so values
 * are copied), not as an empty row and then an UPDATE per field (each a
 * rewrite of the row, and of an index entry for some columns), with its
 * merge state (s->fs holds it meanwhile, empty to start with). Its rowid is
 * chosen up front, as SQLite would (the largest + 1), since the held
 * merge state is keyed by it. */
struct pending_row {
    int active;
    enum record_kind kind;
    struct store_id id;
    int64_t rowid;
    int deleted;
    uint64_t set; /* bit i: vals[i] holds record_field_table[i] */
    struct field_value vals[RECORD_FIELD_COUNT];
    char *text[RECORD_FIELD_COUNT];           /* owned copies of text values */
    struct store_id blob[RECORD_FIELD_COUNT]; /* copies of id values */
};
_Static_assert(RECORD_FIELD_COUNT <= 64, "pending_row.set has a bit per mapped column");
/* INSERTs kept per kind: a kind's new records differ in their optional
 * columns (an amended observation, a note outside a visit). */
#define PEND_INSERTS 4

/* Prepared on first use: one UPDATE per mapped column, one tombstone
 * UPDATE per kind, and per kind the INSERTs of pending rows (one for each
 * of the last PEND_INSERTS sets of columns) and the lookup of the next
 * rowid. */
struct apply_stmts {
    sqlite3_stmt *set[RECORD_FIELD_COUNT];
    sqlite3_stmt *tomb[RECORD_KINDS + 1];
    struct {
        uint64_t set;
        sqlite3_stmt *q;
    } insert[RECORD_KINDS + 1][PEND_INSERTS];
    unsigned insert_next[RECORD_KINDS + 1]; /* the slot to reuse next */
    sqlite3_stmt *next_rowid[RECORD_KINDS + 1];
    struct pending_row pend;
};

static void pend_clear(struct pending_row *pr);

void st_apply_stmts_free(struct apply_stmts *a)
{
    if (!a)
        return;
    pend_clear(&a->pend);
    for (size_t i = 0; i < RECORD_FIELD_COUNT; i++)
        sqlite3_finalize(a->set[i]);
    for (size_t i = 0; i <= RECORD_KINDS; i++) {
        sqlite3_finalize(a->tomb[i]);
        for (size_t j = 0; j < PEND_INSERTS; j++)
            sqlite3_finalize(a->insert[i][j].q);
        sqlite3_finalize(a->next_rowid[i]);
    }
    free(a);
}

/* Where each replicated field lives: the record model's column
 * (record.h). Fields it does not know (from newer firmware) are still
 * merged in the merge state, so nothing is lost on the way through. */
/* The mapped column of a field of a kind, or RECORD_FIELD_COUNT if it has none. */
static size_t field_col_of(enum record_kind kind, uint32_t field)
{
    size_t i;
    for (i = 0; i < RECORD_FIELD_COUNT; i++)
        if (record_field_table[i].kind == kind && record_field_table[i].number == field)
            break;
    return i;
}

/* Binds a field's value to one parameter of a record-row statement. */
static void bind_column(sqlite3_stmt *q, int idx, struct field_value v)
{
    if (v.type == VT_TEXT)
        sqlite3_bind_text(q, idx, v.text, -1, SQLITE_TRANSIENT);
    else if (v.type == VT_BLOB)
        st_bind_id(q, idx, v.blob);
    else
        sqlite3_bind_int64(q, idx, v.i);
}

/* The pending row if it is record's (not yet in its table), else NULL. */
static struct pending_row *pend_of(const struct store *s, enum record_kind kind,
                                   const struct store_id *record)
{
    struct pending_row *pr = s->apply ? &s->apply->pend : NULL;
    if (!pr || !pr->active || pr->kind != kind || memcmp(&pr->id, record, sizeof *record) != 0)
        return NULL;
    return pr;
}

/* 1 if (kind, rowid) is the pending row's. */
int st_pend_holds(const struct store *s, enum record_kind kind, int64_t rowid)
{
    const struct pending_row *pr = s->apply ? &s->apply->pend : NULL;
    return pr && pr->active && pr->kind == kind && pr->rowid == rowid;
}

/* 1 and its rowid if record is the pending row. */
int st_pend_rowid(const struct store *s, enum record_kind kind, const struct store_id *record,
                  int64_t *rowid)
{
    const struct pending_row *pr = pend_of(s, kind, record);
    if (pr)
        *rowid = pr->rowid;
    return pr != NULL;
}

/* Forgets the pending row (written, or its batch given up). */
static void pend_clear(struct pending_row *pr)
{
    for (size_t i = 0; i < RECORD_FIELD_COUNT; i++) {
        free(pr->text[i]);
        pr->text[i] = NULL;
    }
    pr->active = 0;
    pr->set = 0;
}

/* Keeps a winning value for the pending row's column i. */
static int pend_set(struct store *s, size_t i, struct field_value v)
{
    struct pending_row *pr = &s->apply->pend;
    if (v.type == VT_TEXT) {
        size_t n = strlen(v.text) + 1;
        char *copy = malloc(n);
        if (!copy)
            return st_fail(s, SAT_ERR_NO_MEMORY, "out of memory");
        memcpy(copy, v.text, n);
        free(pr->text[i]);
        pr->text[i] = copy;
        v.text = copy;
    } else if (v.type == VT_BLOB) {
        pr->blob[i] = *v.blob;
        v.blob = &pr->blob[i];
    }
    pr->vals[i] = v;
    pr->set |= (uint64_t)1 << i;
    return SAT_OK;
}

static int pend_insert(struct store *s);

/* Writes the pending row, if any, as one INSERT. */
int st_pend_flush(struct store *s)
{
    int ret;
    if (!s->apply || !s->apply->pend.active)
        return SAT_OK;
    ret = pend_insert(s);
    pend_clear(&s->apply->pend);
    return ret;
}

static int pend_insert(struct store *s)
{
    struct pending_row *pr = &s->apply->pend;
    sqlite3_stmt **slot = NULL;
    sqlite3_stmt *q;
    int idx = 5;
    for (size_t j = 0; j < PEND_INSERTS && !slot; j++)
        if (s->apply->insert[pr->kind][j].q && s->apply->insert[pr->kind][j].set == pr->set)
            slot = &s->apply->insert[pr->kind][j].q;
    if (!slot) {
        char cols[512];
        char params[256];
        char sql[900];
        size_t nc = 0, np = 0;
        int n = 5;
        for (size_t i = 0; i < RECORD_FIELD_COUNT; i++) {
            if (!(pr->set >> i & 1))
                continue;
            nc += (size_t)snprintf(cols + nc, sizeof cols - nc, ", %s", record_field_table[i].column);
            np += (size_t)snprintf(params + np, sizeof params - np, ", ?%d", n++);
        }
        cols[nc] = params[np] = '\0';
        snprintf(sql, sizeof sql,
                 "INSERT INTO %s(rowid, id, deleted, ms%s) VALUES (?1, ?2, ?3, ?4%s)",
                 st_kind_table(pr->kind), cols, params);
        unsigned j = s->apply->insert_next[pr->kind]++ % PEND_INSERTS;
        slot = &s->apply->insert[pr->kind][j].q;
        sqlite3_finalize(*slot);
        *slot = NULL;
        s->apply->insert[pr->kind][j].set = pr->set;
        if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL) !=
            SQLITE_OK)
            return st_sql_fail(s, sqlite3_errcode(s->db), "apply change");
    }
    q = *slot;
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    sqlite3_bind_int64(q, 1, pr->rowid);
    st_bind_id(q, 2, &pr->id);
    sqlite3_bind_int(q, 3, pr->deleted);
    st_fs_bind_for(s, q, 4, pr->kind, pr->rowid);
    for (size_t i = 0; i < RECORD_FIELD_COUNT; i++)
        if (pr->set >> i & 1)
            bind_column(q, idx++, pr->vals[i]);
    return st_run(s, q, "apply change");
}

/* Starts a pending row for a record this replica does not have. */
static int pend_start(struct store *s, enum record_kind kind, const struct store_id *id)
{
    struct pending_row *pr = &s->apply->pend;
    sqlite3_stmt *q;
    int rc;
    q = st_prepare_kind_once(s, &s->apply->next_rowid[kind],
                             "SELECT coalesce(max(rowid), 0) + 1 FROM %s", kind);
    if (!q)
        return st_sql_fail(s, sqlite3_errcode(s->db), "apply change");
    rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(q);
        return st_sql_fail(s, rc, "apply change");
    }
    pr->rowid = sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    pr->active = 1;
    pr->kind = kind;
    pr->id = *id;
    pr->deleted = 0;
    pr->set = 0;
    /* The merge state finds the record's rowid before its row is written. */
    s->rid_valid = 1;
    s->rid_kind = kind;
    s->rid_id = *id;
    s->rid = pr->rowid;
    return SAT_OK;
}

/* Writes a winning remote value into its record row (or the pending row of
 * a record new to this replica). */
static int apply_to_record(struct store *s, const struct store_change *c, struct field_value v)
{
    struct pending_row *pr = &s->apply->pend;
    char sql[120];
    sqlite3_stmt *q;
    int64_t rowid;
    size_t i;
    int ret;
    if (!record_kind_valid((int)c->kind))
        return SAT_OK;
    if (!(pr->active && pr->kind == c->kind &&
          memcmp(&pr->id, &c->record_id, sizeof pr->id) == 0)) {
        ret = st_pend_flush(s); /* another record's run ended */
        if (ret == SAT_OK)
            ret = st_record_rowid(s, c->kind, &c->record_id, &rowid);
        if (ret == SAT_OK && rowid < 0)
            ret = pend_start(s, c->kind, &c->record_id);
        if (ret != SAT_OK)
            return ret;
    }
    i = v.type == VT_TOMBSTONE ? RECORD_FIELD_COUNT : field_col_of(c->kind, c->field);
    if (v.type != VT_TOMBSTONE &&
        (i == RECORD_FIELD_COUNT || (int)record_field_table[i].type != v.type))
        return SAT_OK; /* kept in the merge state only */
    if (pr->active) {
        if (v.type != VT_TOMBSTONE)
            return pend_set(s, i, v);
        pr->deleted = 1;
        return SAT_OK;
    }
    if (v.type == VT_TOMBSTONE) {
        snprintf(sql, sizeof sql, "UPDATE %s SET deleted = 1 WHERE rowid = ?1",
                 st_kind_table(c->kind));
        q = st_prepare_once(s, &s->apply->tomb[c->kind], sql);
    } else {
        snprintf(sql, sizeof sql, "UPDATE %s SET %s = ?2 WHERE rowid = ?1", st_kind_table(c->kind),
                 record_field_table[i].column);
        q = st_prepare_once(s, &s->apply->set[i], sql);
        if (q)
            bind_column(q, 2, v);
    }
    if (!q)
        return st_sql_fail(s, sqlite3_errcode(s->db), "apply change");
    sqlite3_bind_int64(q, 1, rowid);
    return st_run(s, q, "apply change");
}

static void render_value(int type, int64_t i, const char *text, const struct store_id *blob,
                         char *out, size_t cap)
{
    switch (type) {
    case VT_TEXT: snprintf(out, cap, "%s", text ? text : ""); break;
    case VT_INT: snprintf(out, cap, "%lld", (long long)i); break;
    case VT_FLAG: snprintf(out, cap, "%s", i ? "true" : "false"); break;
    case VT_TOMBSTONE: snprintf(out, cap, "(deleted)"); break;
    case VT_BLOB: {
        char hex[STORE_ID_HEX_BYTES];
        store_id_to_hex(blob, hex);
        snprintf(out, cap, "%s", hex);
        break;
    }
    default: snprintf(out, cap, "?");
    }
}

static int same_value(const struct field_winner *w, struct field_value v)
{
    if (w->type != v.type)
        return 0;
    switch (v.type) {
    case VT_TEXT: return strcmp(w->text, v.text ? v.text : "") == 0;
    case VT_BLOB: return v.blob && memcmp(&w->blob, v.blob, sizeof w->blob) == 0;
    default: return w->i == v.i;
    }
}

static int record_conflict(struct store *s, const struct store_change *c, struct field_value v,
                           const struct field_winner *w, int incoming_wins)
{
    sqlite3_stmt *q = st_stmt(s, ST_CONFLICT);
    char *mine = malloc(STORE_NOTE_TEXT_BYTES);
    char *theirs = malloc(STORE_NOTE_TEXT_BYTES);
    int ret = SAT_OK;
    if (!mine || !theirs)
        ret = st_fail(s, SAT_ERR_NO_MEMORY, "out of memory");
    if (ret == SAT_OK && !q)
        ret = st_sql_fail(s, sqlite3_errcode(s->db), "record conflict");
    if (ret == SAT_OK) {
        render_value(w->type, w->i, w->text, &w->blob, mine, STORE_NOTE_TEXT_BYTES);
        render_value(v.type, v.i, v.text, v.blob, theirs, STORE_NOTE_TEXT_BYTES);
        st_bind_id(q, 1, &c->record_id);
        sqlite3_bind_int(q, 2, (int)c->kind);
        sqlite3_bind_int64(q, 3, c->field);
        sqlite3_bind_text(q, 4, incoming_wins ? theirs : mine, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 5, incoming_wins ? mine : theirs, -1, SQLITE_TRANSIENT);
        st_bind_id(q, 6, incoming_wins ? &c->origin_device : &w->origin);
        st_bind_id(q, 7, incoming_wins ? &w->origin : &c->origin_device);
        sqlite3_bind_int64(q, 8, (sqlite3_int64)(incoming_wins ? c->hlc_wall_ms
                                                               : w->stamp.wall_ms));
        sqlite3_bind_int64(q, 9, (sqlite3_int64)(incoming_wins ? w->stamp.wall_ms
                                                               : c->hlc_wall_ms));
        sqlite3_bind_int64(q, 10, hal_clock_wall_ms(s->hal));
        ret = st_run(s, q, "record conflict");
    }
    free(mine);
    free(theirs);
    return ret;
}

static int merge_one(struct store *s, const struct store_change *c, struct field_winner *w,
                     struct store_apply_result *r)
{
    struct hlc stamp = { c->hlc_wall_ms, c->hlc_counter };
    struct field_value v = { c->value_type, c->value_int, c->value_text, &c->value_blob };
    const struct record_write x = { stamp, c->origin_device.b, c->has_base,
                                    { c->base_wall_ms, c->base_counter }, c->base_device.b };
    int order;
    int wins;
    int ret;
    if (c->value_type < VT_TEXT || c->value_type > VT_TOMBSTONE ||
        !record_kind_valid((int)c->kind) || (c->value_type == VT_TEXT && !c->value_text))
        return st_fail(s, SAT_ERR_STORE_INVALID, "malformed change (kind %d, type %d)",
                       (int)c->kind, c->value_type);
    hlc_observe(&s->clock, stamp, hal_clock_wall_ms(s->hal));
    ret = st_winner_get(s, c->kind, &c->record_id, c->field, w);
    if (ret != SAT_OK)
        return ret;
    order = w->exists ? record_merge_order(stamp, c->origin_device.b, w->stamp, w->origin.b) : 1;
    if (order == 0) {
        r->stale++; /* this very write is already here */
        return SAT_OK;
    }
    wins = order > 0;
    if (w->exists && record_concurrent(&x, &(struct record_write){ w->stamp, w->origin.b, 0,
                                                                   { 0, 0 }, NULL },
                                       same_value(w, v))) {
        ret = record_conflict(s, c, v, w, wins);
        if (ret != SAT_OK)
            return ret;
        r->conflicts++;
    }
    if (!wins) {
        r->stale++;
        return SAT_OK;
    }
    ret = apply_to_record(s, c, v);
    if (ret == SAT_OK)
        ret = st_winner_put(s, c->kind, &c->record_id, c->field, v, stamp, &c->origin_device);
    if (ret == SAT_OK)
        r->applied++;
    return ret;
}

/* The ids of patient ?1's visits, observations, notes and tasks. */
#define PATIENT_RECORDS_SQL                                                              \
    "(SELECT id FROM visit WHERE patient_id = ?1 UNION SELECT id FROM observation"      \
    " WHERE patient_id = ?1 UNION SELECT id FROM note WHERE patient_id = ?1"            \
    " UNION SELECT id FROM task WHERE patient_id = ?1)"

static int purge_patient(struct store *s, const struct store_id *patient)
{
    static const char *const sql[] = {
        "DELETE FROM visit WHERE patient_id = ?1",
        "DELETE FROM observation WHERE patient_id = ?1",
        "DELETE FROM note WHERE patient_id = ?1",
        "DELETE FROM task WHERE patient_id = ?1",
        "DELETE FROM patient WHERE id = ?1",
    };
    int ret;
    _Static_assert(sizeof sql / sizeof sql[0] == PURGE_STMTS, "one slot per purge statement");
    ret = st_fs_flush(s); /* the held state may be another patient's record's */
    s->fs.valid = 0;
    s->rid_valid = 0; /* the rows go, and their rowids may be used again */
    for (size_t i = 0; ret == SAT_OK && i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *q = st_prepare_once(s, &s->purge[i], sql[i]);
        if (!q)
            return st_sql_fail(s, sqlite3_errcode(s->db), "purge");
        st_bind_id(q, 1, patient);
        ret = st_run(s, q, "purge");
    }
    return ret;
}

int st_meta_get_u64(struct store *s, const char *key, uint64_t *out)
{
    sqlite3_stmt *q = st_stmt(s, ST_META_GET);
    int rc;
    *out = 0;
    if (!q)
        return st_sql_fail(s, sqlite3_errcode(s->db), "read settings");
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *out = (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SAT_OK : st_sql_fail(s, rc, "read settings");
}

static int meta_set_u64(struct store *s, const char *key, uint64_t v)
{
    sqlite3_stmt *q = st_stmt(s, ST_META_SET);
    if (!q)
        return st_sql_fail(s, sqlite3_errcode(s->db), "save settings");
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)v);
    return st_run(s, q, "save settings");
}

/* The push acknowledgement and the cursor hold: while own changes up to
 * `until` are unacknowledged, the hub is given `held` (store_sync_state). */
static int hold_get(struct store *s, uint64_t *acked, uint64_t *until, uint64_t *held)
{
    int ret = st_meta_get_u64(s, "push_acked", acked);
    if (ret == SAT_OK)
        ret = st_meta_get_u64(s, "hold_until_seq", until);
    if (ret == SAT_OK)
        ret = st_meta_get_u64(s, "hold_cursor", held);
    return ret;
}

int store_sync_state(struct store *s, struct store_sync_state *out)
{
    sqlite3_stmt *q = NULL;
    int ret;
    s->errmsg[0] = '\0';
    memset(out, 0, sizeof *out);
    uint64_t until, held;
    ret = st_meta_get_u64(s, "pull_cursor", &out->pull_cursor);
    if (ret == SAT_OK)
        ret = hold_get(s, &out->push_acked, &until, &held);
    if (ret != SAT_OK)
        return ret;
    if (until > out->push_acked && held < out->pull_cursor)
        out->pull_cursor = held;
    q = st_stmt(s, ST_LAST_SEQ);
    if (!q)
        return st_sql_fail(s, sqlite3_errcode(s->db), "read change log");
    if (sqlite3_step(q) == SQLITE_ROW)
        out->last_seq = (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    return SAT_OK;
}

int store_set_push_acked(struct store *s, uint64_t acked)
{
    uint64_t cur = 0;
    int ret;
    s->errmsg[0] = '\0';
    ret = st_meta_get_u64(s, "push_acked", &cur);
    if (ret != SAT_OK || acked <= cur)
        return ret;
    ret = st_begin(s);
    if (ret == SAT_OK)
        ret = meta_set_u64(s, "push_acked", acked);
    return st_finish(s, ret);
}

int store_apply_begin(struct store *s)
{
    int ret;
    s->errmsg[0] = '\0';
    if (!s->apply && !(s->apply = calloc(1, sizeof *s->apply)))
        return st_fail(s, SAT_ERR_NO_MEMORY, "out of memory");
    ret = st_begin(s);
    if (ret == SAT_OK)
        s->applying = 1;
    return ret;
}

void store_apply_abort(struct store *s)
{
    if (!s->applying)
        return;
    s->applying = 0;
    pend_clear(&s->apply->pend);
    st_rollback(s);
}

int store_apply_changes(struct store *s, const struct store_change *changes, size_t n,
                        struct store_apply_result *acc)
{
    struct store_apply_result r = { 0, 0, 0, 0 };
    struct field_winner *w;
    int ret = SAT_OK;
    if (!s->applying)
        return st_fail(s, SAT_ERR_INVALID, "no pulled batch is being applied");
    s->errmsg[0] = '\0';
    w = malloc(sizeof *w);
    if (!w)
        ret = st_fail(s, SAT_ERR_NO_MEMORY, "out of memory");
    for (size_t i = 0; ret == SAT_OK && i < n; i++)
        ret = merge_one(s, &changes[i], w, &r);
    free(w);
    if (ret != SAT_OK) {
        store_apply_abort(s);
        return ret;
    }
    if (acc) {
        acc->applied += r.applied;
        acc->stale += r.stale;
        acc->conflicts += r.conflicts;
    }
    return SAT_OK;
}

/* Before a patient is purged: if own changes to its records are not yet
 * pushed, holds the cursor given to the hub at `cursor` (the one before the
 * purge) until the push acknowledgements reach the last of them (see
 * store_sync_state). */
static int hold_for_unpushed(struct store *s, const struct store_id *patient, uint64_t cursor)
{
    static const char sql[] = "SELECT max(seq) FROM change_log WHERE seq > ?2 AND"
                              " (record_id = ?1 OR record_id IN " PATIENT_RECORDS_SQL ")";
    sqlite3_stmt *q;
    uint64_t acked, until, held, last = 0;
    int ret = hold_get(s, &acked, &until, &held);
    if (ret != SAT_OK)
        return ret;
    q = st_prepare_once(s, &s->unpushed, sql); /* kept: it takes long to plan */
    if (!q)
        return st_sql_fail(s, sqlite3_errcode(s->db), "look for unpushed changes");
    st_bind_id(q, 1, patient);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)acked);
    if (sqlite3_step(q) == SQLITE_ROW)
        last = (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    if (last == 0)
        return SAT_OK;
    if (until <= acked || cursor < held)
        held = cursor;
    ret = meta_set_u64(s, "hold_cursor", held);
    if (ret == SAT_OK && last > until)
        ret = meta_set_u64(s, "hold_until_seq", last);
    return ret;
}

int store_apply_commit(struct store *s, const struct store_id *purge, size_t npurge,
                       uint64_t next_cursor, struct store_apply_result *acc)
{
    unsigned purged = 0;
    uint64_t cursor = 0;
    int ret = SAT_OK;
    if (!s->applying)
        return st_fail(s, SAT_ERR_INVALID, "no pulled batch is being applied");
    s->errmsg[0] = '\0';
    ret = st_pend_flush(s);
    if (ret == SAT_OK && npurge > 0)
        ret = st_meta_get_u64(s, "pull_cursor", &cursor);
    for (size_t i = 0; ret == SAT_OK && i < npurge; i++) {
        ret = hold_for_unpushed(s, &purge[i], cursor);
        if (ret == SAT_OK)
            ret = purge_patient(s, &purge[i]);
        if (ret == SAT_OK && sqlite3_changes(s->db) > 0)
            purged++;
    }
    if (ret == SAT_OK)
        ret = st_meta_get_u64(s, "pull_cursor", &cursor);
    if (ret == SAT_OK && next_cursor > cursor)
        ret = meta_set_u64(s, "pull_cursor", next_cursor);
    s->applying = 0;
    ret = st_finish(s, ret);
    if (ret == SAT_OK && acc)
        acc->purged += purged;
    return ret;
}

int store_apply_remote(struct store *s, const struct store_change *changes, size_t n,
                       const struct store_id *purge, size_t npurge, uint64_t next_cursor,
                       struct store_apply_result *out)
{
    struct store_apply_result r = { 0, 0, 0, 0 };
    int ret = store_apply_begin(s);
    if (ret == SAT_OK)
        ret = store_apply_changes(s, changes, n, &r);
    if (ret == SAT_OK)
        ret = store_apply_commit(s, purge, npurge, next_cursor, &r);
    if (ret == SAT_OK && out)
        *out = r;
    return ret;
}

struct conflict_ctx {
    int (*fn)(void *arg, const struct store_conflict *c);
    void *arg;
};

static int conflict_row(sqlite3_stmt *q, void *ctx)
{
    struct conflict_ctx *cc = ctx;
    struct store_conflict c;
    memset(&c, 0, sizeof c);
    c.id = sqlite3_column_int64(q, 0);
    st_column_id(q, 1, &c.record_id);
    c.kind = (enum record_kind)sqlite3_column_int(q, 2);
    c.field = (uint32_t)sqlite3_column_int64(q, 3);
    c.kept = (const char *)sqlite3_column_text(q, 4);
    c.lost = (const char *)sqlite3_column_text(q, 5);
    st_column_id(q, 6, &c.kept_origin);
    st_column_id(q, 7, &c.lost_origin);
    c.detected_ms = sqlite3_column_int64(q, 8);
    return cc->fn(cc->arg, &c);
}

int store_conflicts(struct store *s, int (*fn)(void *arg, const struct store_conflict *c),
                    void *arg)
{
    struct conflict_ctx cc = { fn, arg };
    return st_query_rows(s,
                         "SELECT id, record_id, kind, field, kept, lost, kept_origin, lost_origin,"
                         " detected_ms FROM conflict ORDER BY id",
                         NULL, conflict_row, &cc, "list conflicts");
}
