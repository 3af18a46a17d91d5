/* record.c - the record model (record.h). */
#include "record.h"

#include <stdio.h>
#include <string.h>

#define VITAL(tag) (RECORD_OBS_VITALS_BASE + (tag))
#define TEXT RECORD_TYPE_TEXT
#define INT RECORD_TYPE_INT
#define BLOB RECORD_TYPE_BLOB
#define FLAG RECORD_TYPE_FLAG

_Static_assert(satchel_Visit_patient_id_tag == RECORD_FIELD_PATIENT_ID &&
                   satchel_Observation_patient_id_tag == RECORD_FIELD_PATIENT_ID &&
                   satchel_CareNote_patient_id_tag == RECORD_FIELD_PATIENT_ID &&
                   satchel_Task_patient_id_tag == RECORD_FIELD_PATIENT_ID,
               "every kind but patient names its patient in field 2");
_Static_assert(satchel_Patient_team_tag == RECORD_FIELD_PATIENT_TEAM, "Patient.team");
_Static_assert(RECORD_KIND_TASK - RECORD_KIND_PATIENT + 1 == RECORD_KINDS, "kinds 1..5");

/* In kind order, and by field number within a kind. */
const struct record_field record_field_table[] = {
    { RECORD_KIND_PATIENT, satchel_Patient_nhs_number_tag, "nhs_number", "nhs_number", TEXT },
    { RECORD_KIND_PATIENT, satchel_Patient_given_name_tag, "given_name", "given_name", TEXT },
    { RECORD_KIND_PATIENT, satchel_Patient_family_name_tag, "family_name", "family_name", TEXT },
    { RECORD_KIND_PATIENT, satchel_Patient_date_of_birth_tag, "date_of_birth", "date_of_birth",
      TEXT },
    { RECORD_KIND_PATIENT, satchel_Patient_address_tag, "address", "address", TEXT },
    { RECORD_KIND_PATIENT, satchel_Patient_postcode_tag, "postcode", "postcode", TEXT },
    { RECORD_KIND_PATIENT, satchel_Patient_team_tag, "team", "team", TEXT },
    { RECORD_KIND_VISIT, satchel_Visit_patient_id_tag, "patient_id", "patient_id", BLOB },
    { RECORD_KIND_VISIT, satchel_Visit_started_ms_tag, "started_ms", "started_ms", INT },
    { RECORD_KIND_VISIT, satchel_Visit_ended_ms_tag, "ended_ms", "ended_ms", INT },
    { RECORD_KIND_VISIT, satchel_Visit_reason_tag, "reason", "reason", TEXT },
    { RECORD_KIND_OBSERVATION, satchel_Observation_patient_id_tag, "patient_id", "patient_id",
      BLOB },
    { RECORD_KIND_OBSERVATION, satchel_Observation_visit_id_tag, "visit_id", "visit_id", BLOB },
    { RECORD_KIND_OBSERVATION, satchel_Observation_taken_ms_tag, "taken_ms", "taken_ms", INT },
    { RECORD_KIND_OBSERVATION, satchel_Observation_news2_score_tag, "news2_score", "news2", INT },
    { RECORD_KIND_OBSERVATION, satchel_Observation_amends_tag, "amends", "amends", BLOB },
    { RECORD_KIND_OBSERVATION, VITAL(satchel_VitalSigns_respiration_rate_tag),
      "vitals.respiration_rate", "resp", INT },
    { RECORD_KIND_OBSERVATION, VITAL(satchel_VitalSigns_spo2_pct_tag), "vitals.spo2_pct", "spo2",
      INT },
    { RECORD_KIND_OBSERVATION, VITAL(satchel_VitalSigns_spo2_scale_tag), "vitals.spo2_scale",
      "spo2_scale", INT },
    { RECORD_KIND_OBSERVATION, VITAL(satchel_VitalSigns_on_oxygen_tag), "vitals.on_oxygen",
      "on_oxygen", INT },
    { RECORD_KIND_OBSERVATION, VITAL(satchel_VitalSigns_systolic_bp_tag), "vitals.systolic_bp",
      "sbp", INT },
    { RECORD_KIND_OBSERVATION, VITAL(satchel_VitalSigns_pulse_tag), "vitals.pulse", "pulse",
      INT },
    { RECORD_KIND_OBSERVATION, VITAL(satchel_VitalSigns_consciousness_tag),
      "vitals.consciousness", "consciousness", INT },
    { RECORD_KIND_OBSERVATION, VITAL(satchel_VitalSigns_temperature_dc_tag),
      "vitals.temperature_dc", "temp_dc", INT },
    { RECORD_KIND_CARE_NOTE, satchel_CareNote_patient_id_tag, "patient_id", "patient_id", BLOB },
    { RECORD_KIND_CARE_NOTE, satchel_CareNote_visit_id_tag, "visit_id", "visit_id", BLOB },
    { RECORD_KIND_CARE_NOTE, satchel_CareNote_written_ms_tag, "written_ms", "written_ms", INT },
    { RECORD_KIND_CARE_NOTE, satchel_CareNote_text_tag, "text", "text", TEXT },
    { RECORD_KIND_CARE_NOTE, satchel_CareNote_amends_tag, "amends", "amends", BLOB },
    { RECORD_KIND_TASK, satchel_Task_patient_id_tag, "patient_id", "patient_id", BLOB },
    { RECORD_KIND_TASK, satchel_Task_title_tag, "title", "title", TEXT },
    { RECORD_KIND_TASK, satchel_Task_due_ms_tag, "due_ms", "due_ms", INT },
    { RECORD_KIND_TASK, satchel_Task_done_tag, "done", "done", FLAG },
};
_Static_assert(sizeof record_field_table / sizeof record_field_table[0] == RECORD_FIELD_COUNT,
               "RECORD_FIELD_COUNT counts the table");

const struct record_field *record_field_find(enum record_kind kind, uint32_t number)
{
    for (size_t i = 0; i < RECORD_FIELD_COUNT; i++)
        if (record_field_table[i].kind == kind && record_field_table[i].number == number)
            return &record_field_table[i];
    return NULL;
}

int record_kind_valid(int kind)
{
    return kind >= RECORD_KIND_FIRST && kind <= RECORD_KIND_LAST;
}

const char *record_kind_name(enum record_kind kind)
{
    switch (kind) {
    case RECORD_KIND_PATIENT: return "patient";
    case RECORD_KIND_VISIT: return "visit";
    case RECORD_KIND_OBSERVATION: return "observation";
    case RECORD_KIND_CARE_NOTE: return "care note";
    case RECORD_KIND_TASK: return "task";
    }
    return NULL;
}

int record_kind_append_only(enum record_kind kind)
{
    return kind == RECORD_KIND_OBSERVATION || kind == RECORD_KIND_CARE_NOTE;
}

const char *record_field_name(enum record_kind kind, uint32_t number,
                              char out[RECORD_FIELD_NAME_BYTES])
{
    const struct record_field *f = record_field_find(kind, number);
    if (number == RECORD_FIELD_TOMBSTONE)
        snprintf(out, RECORD_FIELD_NAME_BYTES, "(the record: deleted)");
    else if (f)
        snprintf(out, RECORD_FIELD_NAME_BYTES, "%s", f->name);
    else
        snprintf(out, RECORD_FIELD_NAME_BYTES, "field %u", (unsigned)number);
    return out;
}

int record_merge_order(struct hlc a, const uint8_t a_origin[SAT_ID_BYTES], struct hlc b,
                       const uint8_t b_origin[SAT_ID_BYTES])
{
    int c = hlc_compare(a, b);
    return c != 0 ? c : memcmp(a_origin, b_origin, SAT_ID_BYTES);
}

int record_concurrent(const struct record_write *x, const struct record_write *w,
                      int same_value)
{
    int saw_w = x->has_base && hlc_compare(x->base, w->stamp) == 0 &&
                memcmp(x->base_origin, w->origin, SAT_ID_BYTES) == 0;
    return memcmp(x->origin, w->origin, SAT_ID_BYTES) != 0 && !saw_w && !same_value;
}
