/*
 * record.h - Satchel's record model: the one place that says what records
 * are, what fields they have and how two writes of a field are merged.
 *
 * The tablet's store, the hub, the simulator's checker, `satchel
 * conflicts` and the exports all read it, so a field is added here once.
 *
 * Kinds. A record is a patient, a visit (an encounter), an observation
 * (NEWS2 vital signs), a care note or a task; the numbers are
 * satchel.proto's RecordKind. Every record has a 16-byte id. A patient is
 * its own patient; every other record names its patient in field 2
 * (patient_id, a 16-byte id) and never moves to another patient.
 * Observations and care notes are append-only: a correction is a new
 * record that names the one it amends.
 *
 * Fields. A change writes one field of one record: the field's number in
 * its kind's message in satchel.proto, except that an observation's vital
 * signs travel as RECORD_OBS_VITALS_BASE + the VitalSigns field number,
 * and field 0 is the record itself (its tombstone). Each field has one
 * value type (FieldValue's tags), a name (the proto field's, vitals
 * prefixed "vitals."), and the column that holds it in a tablet's store.
 * A field a replica does not know (from newer firmware) is still merged
 * and passed on; it only has no name or column here.
 *
 * Merge. Per (record, field) the write with the higher (HLC stamp, origin
 * device id) wins on every replica: stamps compare by hlc_compare, equal
 * stamps by the 16 id bytes compared from the first (memcmp order).
 *
 * Conflict. A write X meeting the field's winner W is a concurrent edit,
 * kept for a person, when another device wrote W, X's writer had not seen
 * W when it wrote X (X's base, the winner it replaced, is not W) and the
 * two values differ. The hub, which also knows what it delivered to whom,
 * applies its own form of this rule (hub_store.h, "Conflict rule").
 */
#ifndef SATCHEL_RECORD_H
#define SATCHEL_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "hlc.h"
#include "sat_hex.h"
#include "satchel.pb.h"

enum record_kind {
    RECORD_KIND_PATIENT = satchel_RecordKind_RECORD_KIND_PATIENT,
    RECORD_KIND_VISIT = satchel_RecordKind_RECORD_KIND_VISIT,
    RECORD_KIND_OBSERVATION = satchel_RecordKind_RECORD_KIND_OBSERVATION,
    RECORD_KIND_CARE_NOTE = satchel_RecordKind_RECORD_KIND_CARE_NOTE,
    RECORD_KIND_TASK = satchel_RecordKind_RECORD_KIND_TASK,
};
#define RECORD_KIND_FIRST RECORD_KIND_PATIENT
#define RECORD_KIND_LAST RECORD_KIND_TASK
#define RECORD_KINDS 5 /* kinds 1..RECORD_KINDS */

/* A field's value type: satchel.proto's FieldValue tags. */
enum record_type {
    RECORD_TYPE_TEXT = satchel_FieldValue_text_tag,
    RECORD_TYPE_INT = satchel_FieldValue_integer_tag,
    RECORD_TYPE_BLOB = satchel_FieldValue_blob_tag, /* an id: SAT_ID_BYTES */
    RECORD_TYPE_FLAG = satchel_FieldValue_flag_tag,
    RECORD_TYPE_TOMBSTONE = satchel_FieldValue_tombstone_tag,
};

#define RECORD_FIELD_TOMBSTONE 0u  /* the record itself: a delete */
#define RECORD_FIELD_PATIENT_ID 2u /* every kind but patient: its patient */
#define RECORD_FIELD_PATIENT_TEAM 8u /* Patient.team: the caseload it is in */
#define RECORD_OBS_VITALS_BASE 500u  /* + a VitalSigns field number */
#define RECORD_FIELD_MAX 65535u      /* field numbers on the wire */

struct record_field {
    enum record_kind kind;
    uint32_t number;
    const char *name;   /* proto name ("address", "vitals.pulse") */
    const char *column; /* the column of a tablet's store that holds it */
    enum record_type type;
};

/* Every field the model knows, kind by kind, in field-number order. */
#define RECORD_FIELD_COUNT 33
extern const struct record_field record_field_table[RECORD_FIELD_COUNT];

/* The field (kind, number), or NULL if the model does not know it. */
const struct record_field *record_field_find(enum record_kind kind, uint32_t number);

/* 1 for a kind 1..RECORD_KINDS. */
int record_kind_valid(int kind);

/* The kind's name in the singular, lower case ("patient", "care note");
 * NULL for an invalid kind. */
const char *record_kind_name(enum record_kind kind);

/* 1 for observations and care notes: corrected by new records, never
 * edited. */
int record_kind_append_only(enum record_kind kind);

/* A field's name for people: the model's name, or "field N" for a field
 * this build does not know. out has RECORD_FIELD_NAME_BYTES. */
#define RECORD_FIELD_NAME_BYTES 32
const char *record_field_name(enum record_kind kind, uint32_t number,
                              char out[RECORD_FIELD_NAME_BYTES]);

/* One write of a field as the merge sees it. */
struct record_write {
    struct hlc stamp;
    const uint8_t *origin; /* SAT_ID_BYTES: the writing device */
    int has_base;          /* the winner the writer replaced, if any */
    struct hlc base;
    const uint8_t *base_origin;
};

/* <0, 0, >0 as write a orders before, equal to, after write b in merge
 * order; the later one wins. 0 only for the same write. */
int record_merge_order(struct hlc a, const uint8_t a_origin[SAT_ID_BYTES], struct hlc b,
                       const uint8_t b_origin[SAT_ID_BYTES]);

/* 1 if x, meeting the field's winner w, is a concurrent edit (the rule
 * above); same_value says whether their values are equal. */
int record_concurrent(const struct record_write *x, const struct record_write *w,
                      int same_value);

#endif
