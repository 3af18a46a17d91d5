/*
 * test_record.c - the record model (sync/record.h): the field table is
 * consistent with itself and with satchel.proto, the merge order breaks
 * ties by origin, and the conflict test tells concurrent from sequential.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "record.h"

static void test_field_table_is_consistent(void **state)
{
    int patient_link[RECORD_KINDS + 1] = { 0 };
    (void)state;
    for (size_t i = 0; i < RECORD_FIELD_COUNT; i++) {
        const struct record_field *f = &record_field_table[i];
        assert_true(record_kind_valid((int)f->kind));
        assert_true(f->number > RECORD_FIELD_TOMBSTONE && f->number <= RECORD_FIELD_MAX);
        assert_true(f->type >= RECORD_TYPE_TEXT && f->type < RECORD_TYPE_TOMBSTONE);
        assert_non_null(f->name);
        assert_non_null(f->column);
        assert_ptr_equal(record_field_find(f->kind, f->number), f);
        if (i > 0) { /* kind order, then field order: no field twice */
            const struct record_field *p = &record_field_table[i - 1];
            assert_true(p->kind < f->kind || (p->kind == f->kind && p->number < f->number));
            for (size_t j = 0; j < i; j++)
                if (record_field_table[j].kind == f->kind)
                    assert_string_not_equal(record_field_table[j].column, f->column);
        }
        if (f->number == RECORD_FIELD_PATIENT_ID && f->kind != RECORD_KIND_PATIENT) {
            assert_int_equal(f->type, RECORD_TYPE_BLOB);
            patient_link[f->kind] = 1;
        }
    }
    /* Every kind but patient names its patient. */
    for (int k = RECORD_KIND_VISIT; k <= RECORD_KIND_LAST; k++)
        assert_true(patient_link[k]);
    assert_int_equal(record_field_find(RECORD_KIND_PATIENT, RECORD_FIELD_PATIENT_TEAM)->type,
                     RECORD_TYPE_TEXT);
    assert_null(record_field_find(RECORD_KIND_PATIENT, 99));
    assert_null(record_field_find(RECORD_KIND_VISIT, RECORD_FIELD_TOMBSTONE));
    assert_false(record_kind_valid(0));
    assert_false(record_kind_valid(RECORD_KINDS + 1));
    assert_true(record_kind_append_only(RECORD_KIND_OBSERVATION));
    assert_true(record_kind_append_only(RECORD_KIND_CARE_NOTE));
    assert_false(record_kind_append_only(RECORD_KIND_PATIENT));
    assert_string_equal(record_kind_name(RECORD_KIND_CARE_NOTE), "care note");
    assert_null(record_kind_name((enum record_kind)9));
}

static void test_field_names_for_people(void **state)
{
    char name[RECORD_FIELD_NAME_BYTES];
    (void)state;
    assert_string_equal(record_field_name(RECORD_KIND_PATIENT, 6, name), "address");
    assert_string_equal(record_field_name(RECORD_KIND_OBSERVATION,
                                          RECORD_OBS_VITALS_BASE + satchel_VitalSigns_pulse_tag,
                                          name),
                        "vitals.pulse");
    /* A field from newer firmware still has a name a person can read. */
    assert_string_equal(record_field_name(RECORD_KIND_TASK, 4242, name), "field 4242");
    assert_string_equal(record_field_name(RECORD_KIND_TASK, RECORD_FIELD_TOMBSTONE, name),
                        "(the record: deleted)");
}

static void test_merge_order(void **state)
{
    uint8_t lo[SAT_ID_BYTES] = { 0x01 }, hi[SAT_ID_BYTES] = { 0x02 };
    struct hlc t = { 5000, 3 }, later = { 5000, 4 }, much_later = { 6000, 0 };
    (void)state;
    lo[SAT_ID_BYTES - 1] = 0xff; /* compared from the first byte */
    assert_true(record_merge_order(later, lo, t, hi) > 0);
    assert_true(record_merge_order(much_later, lo, later, hi) > 0);
    assert_true(record_merge_order(t, hi, t, lo) > 0);
    assert_true(record_merge_order(t, lo, t, hi) < 0);
    assert_int_equal(record_merge_order(t, lo, t, lo), 0);
}

static void test_concurrent(void **state)
{
    const uint8_t a[SAT_ID_BYTES] = { 0xa }, b[SAT_ID_BYTES] = { 0xb };
    struct record_write w = { { 1000, 0 }, a, 0, { 0, 0 }, NULL };
    struct record_write x = { { 2000, 0 }, b, 0, { 0, 0 }, NULL };
    (void)state;
    /* Another device's write, not seen, different value: concurrent. */
    assert_true(record_concurrent(&x, &w, 0));
    /* The same value is no conflict for a person. */
    assert_false(record_concurrent(&x, &w, 1));
    /* X replaced W: sequential. */
    x.has_base = 1;
    x.base = w.stamp;
    x.base_origin = a;
    assert_false(record_concurrent(&x, &w, 0));
    /* X replaced another write of W's device, or W's stamp from another
     * device: not W, so concurrent. */
    x.base = (struct hlc){ 999, 0 };
    assert_true(record_concurrent(&x, &w, 0));
    x.base = w.stamp;
    x.base_origin = b;
    assert_true(record_concurrent(&x, &w, 0));
    /* A device's own later write is never a conflict with itself. */
    x.origin = a;
    x.has_base = 0;
    assert_false(record_concurrent(&x, &w, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_field_table_is_consistent),
        cmocka_unit_test(test_field_names_for_people),
        cmocka_unit_test(test_merge_order),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
