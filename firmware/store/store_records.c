/*
 * store_records.c - visits, observations, care notes and tasks (store.h),
 * tombstones (store_delete), and reads of the whole store: the content
 * hash, the integrity check and id resolution. A write validates first
 * (nothing written if that fails), then writes its row and one change-log
 * entry per field it set, in one transaction.
 */
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "satchel.pb.h"
#include "store_internal.h"

#define MIN_PREFIX_DIGITS 6

static void bind_opt_id(sqlite3_stmt *q, int col, int has, const struct store_id *id)
{
    if (has)
        st_bind_id(q, col, id);
    else
        sqlite3_bind_null(q, col);
}

/* ---- visits ------------------------------------------------------------- */

static void row_visit(sqlite3_stmt *q, struct store_visit *v)
{
    memset(v, 0, sizeof *v);
    st_column_id(q, 0, &v->id);
    st_column_id(q, 1, &v->patient_id);
    v->started_ms = sqlite3_column_int64(q, 2);
    v->ended_ms = sqlite3_column_int64(q, 3);
    st_column_text(q, 4, v->reason, sizeof v->reason);
    v->deleted = sqlite3_column_int(q, 5);
}

int store_visit_get(struct store *s, const struct store_id *id, struct store_visit *out)
{
    sqlite3_stmt *q = st_stmt(s, ST_VISIT_GET);
    int rc;
    char hex[STORE_ID_HEX_BYTES];
    if (!q)
        return st_sql_fail(s, sqlite3_errcode(s->db), "read visit");
    st_bind_id(q, 1, id);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        row_visit(q, out);
    sqlite3_reset(q);
    if (rc == SQLITE_ROW)
        return SAT_OK;
    if (rc != SQLITE_DONE)
        return st_sql_fail(s, rc, "read visit");
    store_id_to_hex(id, hex);
    return st_fail(s, SAT_ERR_STORE_UNKNOWN_ID, "no visit with id %s", hex);
}

int store_visit_start(struct store *s, const struct store_id *patient, const char *reason,
                      struct store_visit *out)
{
    struct store_visit v;
    sqlite3_stmt *q;
    int ret;
    int rc;
    s->errmsg[0] = '\0';
    memset(&v, 0, sizeof v);
    if (!reason)
        reason = "";
    if (strlen(reason) >= sizeof v.reason)
        return st_fail(s, SAT_ERR_STORE_TOO_LONG,
                       "visit reason is too long (at most %zu characters)", sizeof v.reason - 1);
    snprintf(v.reason, sizeof v.reason, "%s", reason);
    ret = st_check_text(s, "visit reason", v.reason, sizeof v.reason, 0);
    if (ret == SAT_OK)
        ret = st_require_patient(s, patient);
    if (ret != SAT_OK)
        return ret;
    q = st_stmt(s, ST_VISIT_OPEN);
    if (!q)
        return st_sql_fail(s, sqlite3_errcode(s->db), "start visit");
    st_bind_id(q, 1, patient);
    rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc == SQLITE_ROW)
        return st_fail(s, SAT_ERR_STORE_NOT_ALLOWED,
                       "this patient already has an open visit: end it first");
    if (rc != SQLITE_DONE)
        return st_sql_fail(s, rc, "start visit");
    ret = st_new_id(s, &v.id);
    if (ret != SAT_OK)
        return ret;
    v.patient_id = *patient;
    v.started_ms = hal_clock_wall_ms(s->hal);
    ret = st_begin(s);
    if (ret != SAT_OK)
        return ret;
    q = st_stmt(s, ST_VISIT_INSERT);
    st_bind_id(q, 1, &v.id);
    st_bind_id(q, 2, patient);
    sqlite3_bind_int64(q, 3, v.started_ms);
    sqlite3_bind_text(q, 4, v.reason, -1, SQLITE_TRANSIENT);
    ret = st_run(s, q, "start visit");
    if (ret == SAT_OK)
        ret = st_log_field(s, RECORD_KIND_VISIT, &v.id, satchel_Visit_patient_id_tag,
                           st_fv_id(patient));
    if (ret == SAT_OK)
        ret = st_log_field(s, RECORD_KIND_VISIT, &v.id, satchel_Visit_started_ms_tag,
                           st_fv_int(v.started_ms));
    if (ret == SAT_OK && v.reason[0])
        ret = st_log_field(s, RECORD_KIND_VISIT, &v.id, satchel_Visit_reason_tag,
                           st_fv_text(v.reason));
    ret = st_finish(s, ret);
    if (ret == SAT_OK && out)
        *out = v;
    return ret;
}

int store_visit_end(struct store *s, const struct store_id *visit, struct store_visit *out)
{
    struct store_visit v;
    sqlite3_stmt *q;
    int ret;
    s->errmsg[0] = '\0';
    ret = store_visit_get(s, visit, &v);
    if (ret != SAT_OK)
        return ret;
    if (v.deleted || v.ended_ms != 0)
        return st_fail(s, SAT_ERR_STORE_NOT_ALLOWED, "this visit has already ended");
    v.ended_ms = hal_clock_wall_ms(s->hal);
    if (v.ended_ms <= 0)
        v.ended_ms = 1;
    ret = st_begin(s);
    if (ret != SAT_OK)
        return ret;
    q = st_stmt(s, ST_VISIT_END);
    st_bind_id(q, 1, visit);
    sqlite3_bind_int64(q, 2, v.ended_ms);
    ret = st_run(s, q, "end visit");
    if (ret == SAT_OK)
        ret = st_log_field(s, RECORD_KIND_VISIT, visit, satchel_Visit_ended_ms_tag,
                           st_fv_int(v.ended_ms));
    ret = st_finish(s, ret);
    if (ret == SAT_OK && out)
        *out = v;
    return ret;
}

static int visit_row(sqlite3_stmt *q, void *ctx)
{
    struct list_ctx *lc = ctx;
    struct store_visit v;
    row_visit(q, &v);
    return lc->fn(lc->arg, &v);
}

int store_visit_list(struct store *s, const struct store_id *patient,
                     int (*fn)(void *arg, const struct store_visit *v), void *arg)
{
    struct list_ctx lc = { (int (*)(void *, const void *))fn, arg };
    return st_query_rows(s,
                         "SELECT id, patient_id, started_ms, ended_ms, reason, deleted FROM visit"
                         " WHERE patient_id = ?1 AND deleted = 0 ORDER BY started_ms, rowid",
                         patient, visit_row, &lc, "list visits");
}

/* Checks an optional visit belongs to the patient. */
static int check_visit_of(struct store *s, int has_visit, const struct store_id *visit,
                          const struct store_id *patient)
{
    struct store_visit v;
    int ret;
    if (!has_visit)
        return SAT_OK;
    ret = store_visit_get(s, visit, &v);
    if (ret == SAT_OK && (v.deleted || memcmp(&v.patient_id, patient, sizeof *patient) != 0))
        ret = st_fail(s, SAT_ERR_STORE_NOT_ALLOWED, "that visit is not one of this patient's");
    return ret;
}

/* ---- observations ------------------------------------------------------- */

/* Scores o from its vital signs: an incomplete or invalid set scores -1
 * at HIGH risk (news2.h: a failed score escalates) and says which vital
 * sign is missing, never low. */
static void obs_score(struct store_obs *o)
{
    struct news2_result r;
    if (news2_score(&o->vitals, &r) == 0) {
        o->news2_score = r.score;
        o->news2_risk = r.risk;
        o->news2_incomplete = 0;
    } else {
        o->news2_score = -1;
        o->news2_risk = NEWS2_RISK_HIGH;
        o->news2_incomplete = news2_check(&o->vitals);
    }
}

static void row_obs(sqlite3_stmt *q, struct store_obs *o)
{
    memset(o, 0, sizeof *o);
    st_column_id(q, 0, &o->id);
    st_column_id(q, 1, &o->patient_id);
    o->has_visit = st_column_id(q, 2, &o->visit_id);
    o->has_amends = st_column_id(q, 3, &o->amends);
    o->taken_ms = sqlite3_column_int64(q, 4);
    o->vitals.respiration_rate = sqlite3_column_int(q, 5);
    o->vitals.spo2_pct = sqlite3_column_int(q, 6);
    o->vitals.spo2_scale = sqlite3_column_int(q, 7);
    o->vitals.on_oxygen = sqlite3_column_int(q, 8);
    o->vitals.systolic_bp = sqlite3_column_int(q, 9);
    o->vitals.pulse = sqlite3_column_int(q, 10);
    o->vitals.consciousness = sqlite3_column_int(q, 11);
    o->vitals.temperature_dc = sqlite3_column_int(q, 12);
    o->news2_carried = sqlite3_column_int(q, 13);
    obs_score(o);
}

int store_obs_get(struct store *s, const struct store_id *id, struct store_obs *out)
{
    sqlite3_stmt *q = st_stmt(s, ST_OBS_GET);
    int rc;
    char hex[STORE_ID_HEX_BYTES];
    if (!q)
        return st_sql_fail(s, sqlite3_errcode(s->db), "read observation");
    st_bind_id(q, 1, id);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        row_obs(q, out);
    sqlite3_reset(q);
    if (rc == SQLITE_ROW)
        return SAT_OK;
    if (rc != SQLITE_DONE)
        return st_sql_fail(s, rc, "read observation");
    store_id_to_hex(id, hex);
    return st_fail(s, SAT_ERR_STORE_UNKNOWN_ID, "no observation with id %s", hex);
}

static int check_vitals(struct store *s, const struct news2_vitals *v)
{
    static const int lo[] = { NEWS2_RESP_MIN, NEWS2_SPO2_MIN, 1, 0, NEWS2_SBP_MIN,
                              NEWS2_PULSE_MIN, 1, NEWS2_TEMP_DC_MIN };
    static const int hi[] = { NEWS2_RESP_MAX, NEWS2_SPO2_MAX, 2, 1, NEWS2_SBP_MAX,
                              NEWS2_PULSE_MAX, 5, NEWS2_TEMP_DC_MAX };
    const int vals[] = { v->respiration_rate, v->spo2_pct, v->spo2_scale, v->on_oxygen,
                         v->systolic_bp, v->pulse, v->consciousness, v->temperature_dc };
    int bad = news2_check(v);
    if (bad == 0)
        return SAT_OK;
    if (bad == 8)
        return st_fail(s, SAT_ERR_STORE_OUT_OF_RANGE,
                       "temperature %d.%d is outside %d.%d..%d.%d degrees C", vals[7] / 10,
                       abs(vals[7] % 10), lo[7] / 10, lo[7] % 10, hi[7] / 10, hi[7] % 10);
    return st_fail(s, SAT_ERR_STORE_OUT_OF_RANGE, "%s %d is outside %d..%d", news2_field_name(bad),
                   vals[bad - 1], lo[bad - 1], hi[bad - 1]);
}

int store_obs_add(struct store *s, struct store_obs *o)
{
    static const uint32_t vital_fields[] = {
        satchel_VitalSigns_respiration_rate_tag, satchel_VitalSigns_spo2_pct_tag,
        satchel_VitalSigns_spo2_scale_tag,       satchel_VitalSigns_on_oxygen_tag,
        satchel_VitalSigns_systolic_bp_tag,      satchel_VitalSigns_pulse_tag,
        satchel_VitalSigns_consciousness_tag,    satchel_VitalSigns_temperature_dc_tag
    };
    sqlite3_stmt *q;
    int ret;
    s->errmsg[0] = '\0';
    ret = check_vitals(s, &o->vitals);
    if (ret == SAT_OK)
        ret = st_require_patient(s, &o->patient_id);
    if (ret == SAT_OK)
        ret = check_visit_of(s, o->has_visit, &o->visit_id, &o->patient_id);
    if (ret == SAT_OK && o->has_amends) {
        struct store_obs old;
        ret = store_obs_get(s, &o->amends, &old);
        if (ret == SAT_OK && memcmp(&old.patient_id, &o->patient_id, sizeof old.patient_id))
            ret = st_fail(s, SAT_ERR_STORE_NOT_ALLOWED,
                          "an observation can only amend one of the same patient");
    }
    if (ret != SAT_OK)
        return ret;
    obs_score(o); /* complete: check_vitals passed */
    o->news2_carried = o->news2_score;
    o->taken_ms = hal_clock_wall_ms(s->hal);
    ret = st_new_id(s, &o->id);
    if (ret == SAT_OK)
        ret = st_begin(s);
    if (ret != SAT_OK)
        return ret;
    q = st_stmt(s, ST_OBS_INSERT);
    st_bind_id(q, 1, &o->id);
    st_bind_id(q, 2, &o->patient_id);
    bind_opt_id(q, 3, o->has_visit, &o->visit_id);
    bind_opt_id(q, 4, o->has_amends, &o->amends);
    sqlite3_bind_int64(q, 5, o->taken_ms);
    {
        const int vals[] = { o->vitals.respiration_rate, o->vitals.spo2_pct,
                             o->vitals.spo2_scale,       o->vitals.on_oxygen,
                             o->vitals.systolic_bp,      o->vitals.pulse,
                             o->vitals.consciousness,    o->vitals.temperature_dc };
        for (int i = 0; i < 8; i++)
            sqlite3_bind_int(q, 6 + i, vals[i]);
        sqlite3_bind_int(q, 14, o->news2_score);
        ret = st_run(s, q, "add observation");
        if (ret == SAT_OK)
            ret = st_log_field(s, RECORD_KIND_OBSERVATION, &o->id,
                               satchel_Observation_patient_id_tag, st_fv_id(&o->patient_id));
        if (ret == SAT_OK && o->has_visit)
            ret = st_log_field(s, RECORD_KIND_OBSERVATION, &o->id, satchel_Observation_visit_id_tag,
                               st_fv_id(&o->visit_id));
        if (ret == SAT_OK && o->has_amends)
            ret = st_log_field(s, RECORD_KIND_OBSERVATION, &o->id, satchel_Observation_amends_tag,
                               st_fv_id(&o->amends));
        if (ret == SAT_OK)
            ret = st_log_field(s, RECORD_KIND_OBSERVATION, &o->id, satchel_Observation_taken_ms_tag,
                               st_fv_int(o->taken_ms));
        for (int i = 0; ret == SAT_OK && i < 8; i++)
            ret = st_log_field(s, RECORD_KIND_OBSERVATION, &o->id,
                               RECORD_OBS_VITALS_BASE + vital_fields[i], st_fv_int(vals[i]));
        if (ret == SAT_OK)
            ret = st_log_field(s, RECORD_KIND_OBSERVATION, &o->id,
                               satchel_Observation_news2_score_tag, st_fv_int(o->news2_score));
    }
    return st_finish(s, ret);
}

static int obs_row(sqlite3_stmt *q, void *ctx)
{
    struct list_ctx *lc = ctx;
    struct store_obs o;
    row_obs(q, &o);
    return lc->fn(lc->arg, &o);
}

int store_obs_list(struct store *s, const struct store_id *patient,
                   int (*fn)(void *arg, const struct store_obs *o), void *arg)
{
    struct list_ctx lc = { (int (*)(void *, const void *))fn, arg };
    return st_query_rows(s,
                         "SELECT id, patient_id, visit_id, amends, taken_ms, resp, spo2,"
                         " spo2_scale, on_oxygen, sbp, pulse, consciousness, temp_dc, news2"
                         " FROM observation"
                         " WHERE patient_id = ?1 ORDER BY taken_ms, rowid",
                         patient, obs_row, &lc, "list observations");
}

/* ---- care notes --------------------------------------------------------- */

static void row_note(sqlite3_stmt *q, struct store_note *n)
{
    memset(n, 0, sizeof *n);
    st_column_id(q, 0, &n->id);
    st_column_id(q, 1, &n->patient_id);
    n->has_visit = st_column_id(q, 2, &n->visit_id);
    n->has_amends = st_column_id(q, 3, &n->amends);
    n->written_ms = sqlite3_column_int64(q, 4);
    st_column_text(q, 5, n->text, sizeof n->text);
}

int store_note_get(struct store *s, const struct store_id *id, struct store_note *out)
{
    sqlite3_stmt *q = st_stmt(s, ST_NOTE_GET);
    int rc;
    char hex[STORE_ID_HEX_BYTES];
    if (!q)
        return st_sql_fail(s, sqlite3_errcode(s->db), "read note");
    st_bind_id(q, 1, id);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        row_note(q, out);
    sqlite3_reset(q);
    if (rc == SQLITE_ROW)
        return SAT_OK;
    if (rc != SQLITE_DONE)
        return st_sql_fail(s, rc, "read note");
    store_id_to_hex(id, hex);
    return st_fail(s, SAT_ERR_STORE_UNKNOWN_ID, "no care note with id %s", hex);
}

int store_note_add(struct store *s, struct store_note *n)
{
    sqlite3_stmt *q;
    int ret;
    s->errmsg[0] = '\0';
    ret = st_check_text(s, "note text", n->text, sizeof n->text, 1);
    if (ret == SAT_OK)
        ret = st_require_patient(s, &n->patient_id);
    if (ret == SAT_OK)
        ret = check_visit_of(s, n->has_visit, &n->visit_id, &n->patient_id);
    if (ret == SAT_OK && n->has_amends) {
        struct store_note *old = malloc(sizeof *old);
        ret = old ? store_note_get(s, &n->amends, old) : SAT_ERR_NO_MEMORY;
        if (ret == SAT_OK && memcmp(&old->patient_id, &n->patient_id, sizeof old->patient_id))
            ret = st_fail(s, SAT_ERR_STORE_NOT_ALLOWED,
                          "a note can only amend a note of the same patient");
        free(old);
    }
    if (ret != SAT_OK)
        return ret;
    n->written_ms = hal_clock_wall_ms(s->hal);
    ret = st_new_id(s, &n->id);
    if (ret == SAT_OK)
        ret = st_begin(s);
    if (ret != SAT_OK)
        return ret;
    q = st_stmt(s, ST_NOTE_INSERT);
    st_bind_id(q, 1, &n->id);
    st_bind_id(q, 2, &n->patient_id);
    bind_opt_id(q, 3, n->has_visit, &n->visit_id);
    bind_opt_id(q, 4, n->has_amends, &n->amends);
    sqlite3_bind_int64(q, 5, n->written_ms);
    sqlite3_bind_text(q, 6, n->text, -1, SQLITE_TRANSIENT);
    ret = st_run(s, q, "add note");
    if (ret == SAT_OK)
        ret = st_log_field(s, RECORD_KIND_CARE_NOTE, &n->id, satchel_CareNote_patient_id_tag,
                           st_fv_id(&n->patient_id));
    if (ret == SAT_OK && n->has_visit)
        ret = st_log_field(s, RECORD_KIND_CARE_NOTE, &n->id, satchel_CareNote_visit_id_tag,
                           st_fv_id(&n->visit_id));
    if (ret == SAT_OK && n->has_amends)
        ret = st_log_field(s, RECORD_KIND_CARE_NOTE, &n->id, satchel_CareNote_amends_tag,
                           st_fv_id(&n->amends));
    if (ret == SAT_OK)
        ret = st_log_field(s, RECORD_KIND_CARE_NOTE, &n->id, satchel_CareNote_written_ms_tag,
                           st_fv_int(n->written_ms));
    if (ret == SAT_OK)
        ret = st_log_field(s, RECORD_KIND_CARE_NOTE, &n->id, satchel_CareNote_text_tag,
                           st_fv_text(n->text));
    return st_finish(s, ret);
}

static int note_row(sqlite3_stmt *q, void *ctx)
{
    struct list_ctx *lc = ctx;
    struct store_note *n = malloc(sizeof *n);
    int ret;
    if (!n)
        return SAT_ERR_NO_MEMORY;
    row_note(q, n);
    ret = lc->fn(lc->arg, n);
    free(n);
    return ret;
}

int store_note_list(struct store *s, const struct store_id *patient,
                    int (*fn)(void *arg, const struct store_note *n), void *arg)
{
    struct list_ctx lc = { (int (*)(void *, const void *))fn, arg };
    return st_query_rows(s,
                         "SELECT id, patient_id, visit_id, amends, written_ms, text FROM note"
                         " WHERE patient_id = ?1 ORDER BY written_ms, rowid",
                         patient, note_row, &lc, "list notes");
}

/* ---- tasks -------------------------------------------------------------- */

static void row_task(sqlite3_stmt *q, struct store_task *t)
{
    memset(t, 0, sizeof *t);
    st_column_id(q, 0, &t->id);
    st_column_id(q, 1, &t->patient_id);
    st_column_text(q, 2, t->title, sizeof t->title);
    t->due_ms = sqlite3_column_int64(q, 3);
    t->done = sqlite3_column_int(q, 4);
    t->deleted = sqlite3_column_int(q, 5);
}

int store_task_get(struct store *s, const struct store_id *id, struct store_task *out)
{
    sqlite3_stmt *q = st_stmt(s, ST_TASK_GET);
    int rc;
    char hex[STORE_ID_HEX_BYTES];
    if (!q)
        return st_sql_fail(s, sqlite3_errcode(s->db), "read task");
    st_bind_id(q, 1, id);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        row_task(q, out);
    sqlite3_reset(q);
    if (rc == SQLITE_ROW)
        return SAT_OK;
    if (rc != SQLITE_DONE)
        return st_sql_fail(s, rc, "read task");
    store_id_to_hex(id, hex);
    return st_fail(s, SAT_ERR_STORE_UNKNOWN_ID, "no task with id %s", hex);
}

int store_task_add(struct store *s, struct store_task *t)
{
    sqlite3_stmt *q;
    int ret;
    s->errmsg[0] = '\0';
    ret = st_check_text(s, "task title", t->title, sizeof t->title, 1);
    if (ret == SAT_OK && t->due_ms < 0)
        ret = st_fail(s, SAT_ERR_STORE_OUT_OF_RANGE, "task due time is negative");
    if (ret == SAT_OK)
        ret = st_require_patient(s, &t->patient_id);
    if (ret == SAT_OK)
        ret = st_new_id(s, &t->id);
    if (ret == SAT_OK)
        ret = st_begin(s);
    if (ret != SAT_OK)
        return ret;
    t->done = 0;
    t->deleted = 0;
    q = st_stmt(s, ST_TASK_INSERT);
    st_bind_id(q, 1, &t->id);
    st_bind_id(q, 2, &t->patient_id);
    sqlite3_bind_text(q, 3, t->title, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 4, t->due_ms);
    ret = st_run(s, q, "add task");
    if (ret == SAT_OK)
        ret = st_log_field(s, RECORD_KIND_TASK, &t->id, satchel_Task_patient_id_tag,
                           st_fv_id(&t->patient_id));
    if (ret == SAT_OK)
        ret = st_log_field(s, RECORD_KIND_TASK, &t->id, satchel_Task_title_tag,
                           st_fv_text(t->title));
    if (ret == SAT_OK && t->due_ms)
        ret = st_log_field(s, RECORD_KIND_TASK, &t->id, satchel_Task_due_ms_tag,
                           st_fv_int(t->due_ms));
    return st_finish(s, ret);
}

int store_task_done(struct store *s, const struct store_id *id)
{
    struct store_task t;
    sqlite3_stmt *q;
    int ret;
    s->errmsg[0] = '\0';
    ret = store_task_get(s, id, &t);
    if (ret == SAT_OK && t.deleted)
        ret = st_fail(s, SAT_ERR_STORE_NOT_ALLOWED, "that task has been deleted");
    if (ret == SAT_OK && t.done)
        ret = st_fail(s, SAT_ERR_STORE_NOT_ALLOWED, "that task is already done");
    if (ret == SAT_OK)
        ret = st_begin(s);
    if (ret != SAT_OK)
        return ret;
    q = st_stmt(s, ST_TASK_DONE);
    st_bind_id(q, 1, id);
    ret = st_run(s, q, "complete task");
    if (ret == SAT_OK)
        ret = st_log_field(s, RECORD_KIND_TASK, id, satchel_Task_done_tag, st_fv_flag(1));
    return st_finish(s, ret);
}

static int task_row(sqlite3_stmt *q, void *ctx)
{
    struct list_ctx *lc = ctx;
    struct store_task t;
    row_task(q, &t);
    return lc->fn(lc->arg, &t);
}

int store_task_list(struct store *s, const struct store_id *patient,
                    int (*fn)(void *arg, const struct store_task *t), void *arg)
{
    struct list_ctx lc = { (int (*)(void *, const void *))fn, arg };
    return st_query_rows(s,
                         "SELECT id, patient_id, title, due_ms, done, deleted FROM task"
                         " WHERE patient_id = ?1 AND deleted = 0 ORDER BY done, due_ms, rowid",
                         patient, task_row, &lc, "list tasks");
}

/* ---- delete ------------------------------------------------------------- */

int store_delete(struct store *s, enum record_kind kind, const struct store_id *id)
{
    char sql[80];
    sqlite3_stmt *q = NULL;
    int ret;
    int changed;
    s->errmsg[0] = '\0';
    if (kind == RECORD_KIND_OBSERVATION || kind == RECORD_KIND_CARE_NOTE)
        return st_fail(s, SAT_ERR_STORE_NOT_ALLOWED,
                       "observations and care notes are append-only: add an amending entry");
    if (!st_kind_table(kind))
        return st_fail(s, SAT_ERR_STORE_INVALID, "unknown record kind %d", (int)kind);
    ret = st_begin(s);
    if (ret != SAT_OK)
        return ret;
    snprintf(sql, sizeof sql, "UPDATE %s SET deleted = 1 WHERE id = ?1 AND deleted = 0",
             st_kind_table(kind));
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
        return st_finish(s, st_sql_fail(s, sqlite3_errcode(s->db), "delete"));
    st_bind_id(q, 1, id);
    ret = st_run(s, q, "delete");
    sqlite3_finalize(q);
    changed = sqlite3_changes(s->db);
    if (ret == SAT_OK && changed == 0) {
        char hex[STORE_ID_HEX_BYTES];
        store_id_to_hex(id, hex);
        ret = st_fail(s, SAT_ERR_STORE_UNKNOWN_ID, "no %s with id %s (or already deleted)",
                      st_kind_table(kind), hex);
    }
    if (ret == SAT_OK)
        ret = st_log_field(s, kind, id, 0, (struct field_value){ .type = VT_TOMBSTONE, .i = 1 });
    return st_finish(s, ret);
}

/* ---- content hash, integrity, ids --------------------------------------- */

static int hash_row(sqlite3_stmt *q, void *ctx)
{
    mbedtls_sha256_context *h = ctx;
    int n = sqlite3_column_count(q);
    for (int i = 0; i < n; i++) {
        uint8_t tag[5];
        int type = sqlite3_column_type(q, i);
        const void *p = NULL;
        int len = 0;
        char num[24];
        if (type == SQLITE_INTEGER) {
            len = snprintf(num, sizeof num, "%lld", (long long)sqlite3_column_int64(q, i));
            p = num;
        } else if (type == SQLITE_TEXT || type == SQLITE_BLOB) {
            p = type == SQLITE_TEXT ? (const void *)sqlite3_column_text(q, i)
                                    : sqlite3_column_blob(q, i);
            len = sqlite3_column_bytes(q, i);
        }
        tag[0] = (uint8_t)type;
        tag[1] = (uint8_t)(len >> 24);
        tag[2] = (uint8_t)(len >> 16);
        tag[3] = (uint8_t)(len >> 8);
        tag[4] = (uint8_t)len;
        mbedtls_sha256_update_ret(h, tag, sizeof tag);
        if (len > 0)
            mbedtls_sha256_update_ret(h, p, (size_t)len);
    }
    return 0;
}

int store_content_hash(struct store *s, uint8_t out[32])
{
    static const char *const sql[] = {
        "SELECT id, nhs_number, given_name, family_name, date_of_birth, address, postcode,"
        " team, deleted FROM patient ORDER BY id",
        "SELECT id, patient_id, started_ms, ended_ms, reason, deleted FROM visit ORDER BY id",
        "SELECT id, patient_id, visit_id, amends, taken_ms, resp, spo2, spo2_scale, on_oxygen,"
        " sbp, pulse, consciousness, temp_dc, news2, deleted FROM observation ORDER BY id",
        "SELECT id, patient_id, visit_id, amends, written_ms, text, deleted FROM note"
        " ORDER BY id",
        "SELECT id, patient_id, title, due_ms, done, deleted FROM task ORDER BY id",
    };
    mbedtls_sha256_context h;
    int ret = SAT_OK;
    mbedtls_sha256_init(&h);
    mbedtls_sha256_starts_ret(&h, 0);
    for (size_t i = 0; ret == SAT_OK && i < sizeof sql / sizeof sql[0]; i++)
        ret = st_query_rows(s, sql[i], NULL, hash_row, &h, "content hash");
    if (ret == SAT_OK)
        mbedtls_sha256_finish_ret(&h, out);
    mbedtls_sha256_free(&h);
    return ret;
}

static int integrity_row(sqlite3_stmt *q, void *ctx)
{
    int *ok = ctx;
    const unsigned char *t = sqlite3_column_text(q, 0);
    *ok = *ok && t && strcmp((const char *)t, "ok") == 0;
    return 0;
}

int store_check_integrity(struct store *s)
{
    int ok = 1;
    int ret = st_query_rows(s, "PRAGMA integrity_check", NULL, integrity_row, &ok,
                            "integrity check");
    if (ret != SAT_OK)
        return ret;
    return ok ? SAT_OK : st_fail(s, SAT_ERR_STORE_CORRUPT, "integrity check found damage");
}

struct resolve_ctx {
    int matches;
    struct store_id id;
};

static int resolve_row(sqlite3_stmt *q, void *ctx)
{
    struct resolve_ctx *rc = ctx;
    if (rc->matches++ == 0)
        st_column_id(q, 0, &rc->id);
    return 0;
}

int store_resolve_id(struct store *s, enum record_kind kind, const char *hex,
                     struct store_id *out)
{
    struct resolve_ctx rc = { 0, { { 0 } } };
    char sql[120];
    char lower[STORE_ID_HEX_BYTES];
    size_t n = hex ? strlen(hex) : 0;
    int ret;
    s->errmsg[0] = '\0';
    if (!st_kind_table(kind))
        return st_fail(s, SAT_ERR_STORE_INVALID, "unknown record kind %d", (int)kind);
    if (n < MIN_PREFIX_DIGITS || n > 2 * STORE_ID_BYTES)
        return st_fail(s, SAT_ERR_STORE_INVALID, "an id is %d to %d hex digits",
                       MIN_PREFIX_DIGITS, 2 * STORE_ID_BYTES);
    for (size_t i = 0; i < n; i++) {
        if (sat_hex_digit(hex[i]) < 0)
            return st_fail(s, SAT_ERR_STORE_INVALID, "'%s' is not a hex id", hex);
        lower[i] = hex[i] >= 'A' && hex[i] <= 'F' ? (char)(hex[i] - 'A' + 'a') : hex[i];
    }
    lower[n] = '\0';
    /* Hex digits only: safe to place in the SQL text. */
    snprintf(sql, sizeof sql, "SELECT id FROM %s WHERE lower(hex(id)) LIKE '%s%%' LIMIT 2",
             st_kind_table(kind), lower);
    ret = st_query_rows(s, sql, NULL, resolve_row, &rc, "find record");
    if (ret != SAT_OK)
        return ret;
    if (rc.matches == 0)
        return st_fail(s, SAT_ERR_STORE_UNKNOWN_ID, "no %s with id %s", st_kind_table(kind), hex);
    if (rc.matches > 1)
        return st_fail(s, SAT_ERR_STORE_UNKNOWN_ID,
                       "id %s matches more than one %s: give more digits", hex,
                       st_kind_table(kind));
    *out = rc.id;
    return SAT_OK;
}
