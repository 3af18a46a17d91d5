/*
 * store_patients.c - validation of what a nurse enters, and patients
 * (store.h: store_patient_*). A call that fails validation writes nothing
 * and says in s->errmsg what was wrong; the NHS number is kept as its 10
 * digits. st_check_text and st_require_patient serve the other record
 * kinds too (store_records.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nhs_number.h"
#include "sat_date.h"
#include "satchel.pb.h"
#include "store_internal.h"

/* ---- validation --------------------------------------------------------- */

/* SAT_OK if text (an array of cap bytes) holds a NUL-terminated string that
 * is non-empty when required. */
int st_check_text(struct store *s, const char *what, const char *text, size_t cap,
                  int required)
{
    size_t n = st_bounded_len(text, cap);
    if (n == cap)
        return st_fail(s, SAT_ERR_STORE_TOO_LONG, "%s is too long (at most %zu characters)", what,
                       cap - 1);
    if (required && n == 0)
        return st_fail(s, SAT_ERR_STORE_MISSING_FIELD, "%s is required", what);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)text[i] < 0x20 && text[i] != '\n' && text[i] != '\t')
            return st_fail(s, SAT_ERR_STORE_INVALID, "%s contains a control character", what);
    return SAT_OK;
}

static int check_date_of_birth(struct store *s, const char *dob)
{
    int y = 0;
    int m = 0;
    int d = 0;
    int ret = st_check_text(s, "date of birth", dob, 11, 1);
    if (ret != SAT_OK)
        return ret;
    for (int i = 0; i < 10; i++) {
        int dash = i == 4 || i == 7;
        if (dob[i] == '\0' || (dash ? dob[i] != '-' : (dob[i] < '0' || dob[i] > '9')))
            return st_fail(s, SAT_ERR_STORE_INVALID, "date of birth '%s' is not YYYY-MM-DD", dob);
    }
    if (dob[10] != '\0')
        return st_fail(s, SAT_ERR_STORE_INVALID, "date of birth '%s' is not YYYY-MM-DD", dob);
    y = atoi(dob);
    m = atoi(dob + 5);
    d = atoi(dob + 8);
    if (y < 1880 || !sat_date_valid(y, m, d))
        return st_fail(s, SAT_ERR_STORE_INVALID, "date of birth '%s' is not a real date", dob);
    if (sat_date_unix_ms(y, m, d, 0, 0, 0) > hal_clock_wall_ms(s->hal))
        return st_fail(s, SAT_ERR_STORE_OUT_OF_RANGE, "date of birth '%s' is in the future", dob);
    return SAT_OK;
}

static int check_patient(struct store *s, struct store_patient *p)
{
    char digits[NHS_NUMBER_DIGITS + 1];
    int ret = st_check_text(s, "NHS number", p->nhs_number, sizeof p->nhs_number, 1);
    if (ret == SAT_OK && !nhs_number_parse(p->nhs_number, digits))
        ret = st_fail(s, SAT_ERR_STORE_INVALID_NHS,
                      "NHS number '%s' is not valid (10 digits, Modulus 11 check digit)",
                      p->nhs_number);
    if (ret == SAT_OK)
        memcpy(p->nhs_number, digits, sizeof digits);
    if (ret == SAT_OK)
        ret = st_check_text(s, "given name", p->given_name, sizeof p->given_name, 1);
    if (ret == SAT_OK)
        ret = st_check_text(s, "family name", p->family_name, sizeof p->family_name, 1);
    if (ret == SAT_OK)
        ret = check_date_of_birth(s, p->date_of_birth);
    if (ret == SAT_OK)
        ret = st_check_text(s, "address", p->address, sizeof p->address, 1);
    if (ret == SAT_OK)
        ret = st_check_text(s, "postcode", p->postcode, sizeof p->postcode, 0);
    if (ret == SAT_OK)
        ret = st_check_text(s, "team", p->team, sizeof p->team, 0);
    return ret;
}

/* ---- patients ----------------------------------------------------------- */

/* The text fields of a patient: column, proto field, place in the struct. */
struct patient_col {
    const char *col;
    uint32_t field;
    size_t off;
    size_t cap;
};

#define PCOL(name, tag) \
    { #name, tag, offsetof(struct store_patient, name), sizeof(((struct store_patient *)0)->name) }
static const struct patient_col patient_cols[] = {
    PCOL(nhs_number, satchel_Patient_nhs_number_tag),
    PCOL(given_name, satchel_Patient_given_name_tag),
    PCOL(family_name, satchel_Patient_family_name_tag),
    PCOL(date_of_birth, satchel_Patient_date_of_birth_tag),
    PCOL(address, satchel_Patient_address_tag),
    PCOL(postcode, satchel_Patient_postcode_tag),
    PCOL(team, satchel_Patient_team_tag),
};
#define PATIENT_COLS (sizeof patient_cols / sizeof patient_cols[0])

static const char *pfield(const struct store_patient *p, size_t i)
{
    return (const char *)p + patient_cols[i].off;
}

static void row_patient(sqlite3_stmt *q, struct store_patient *p)
{
    memset(p, 0, sizeof *p);
    st_column_id(q, 0, &p->id);
    for (size_t i = 0; i < PATIENT_COLS; i++)
        st_column_text(q, (int)i + 1, (char *)p + patient_cols[i].off, patient_cols[i].cap);
    p->created_ms = sqlite3_column_int64(q, 8);
    p->deleted = sqlite3_column_int(q, 9);
}

int store_patient_add(struct store *s, struct store_patient *p)
{
    sqlite3_stmt *q;
    int ret;
    s->errmsg[0] = '\0';
    ret = check_patient(s, p);
    if (ret != SAT_OK)
        return ret;
    ret = st_new_id(s, &p->id);
    if (ret != SAT_OK)
        return ret;
    p->created_ms = hal_clock_wall_ms(s->hal);
    p->deleted = 0;
    ret = st_begin(s);
    if (ret != SAT_OK)
        return ret;
    q = st_stmt(s, ST_PATIENT_INSERT);
    if (!q)
        return st_finish(s, st_sql_fail(s, sqlite3_errcode(s->db), "add patient"));
    st_bind_id(q, 1, &p->id);
    for (size_t i = 0; i < PATIENT_COLS; i++)
        sqlite3_bind_text(q, (int)i + 2, pfield(p, i), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 9, p->created_ms);
    ret = st_run(s, q, "add patient");
    for (size_t i = 0; ret == SAT_OK && i < PATIENT_COLS; i++)
        if (pfield(p, i)[0] != '\0')
            ret = st_log_field(s, RECORD_KIND_PATIENT, &p->id, patient_cols[i].field,
                               st_fv_text(pfield(p, i)));
    return st_finish(s, ret);
}

int store_patient_get(struct store *s, const struct store_id *id, struct store_patient *out)
{
    sqlite3_stmt *q = st_stmt(s, ST_PATIENT_GET);
    int rc;
    char hex[STORE_ID_HEX_BYTES];
    s->errmsg[0] = '\0';
    if (!q)
        return st_sql_fail(s, sqlite3_errcode(s->db), "read patient");
    st_bind_id(q, 1, id);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        row_patient(q, out);
    sqlite3_reset(q);
    if (rc == SQLITE_ROW)
        return SAT_OK;
    if (rc != SQLITE_DONE)
        return st_sql_fail(s, rc, "read patient");
    store_id_to_hex(id, hex);
    return st_fail(s, SAT_ERR_STORE_UNKNOWN_ID, "no patient with id %s", hex);
}

/* Fails with UNKNOWN_ID unless a living patient has this id. */
int st_require_patient(struct store *s, const struct store_id *id)
{
    struct store_patient p;
    int ret = store_patient_get(s, id, &p);
    if (ret == SAT_OK && p.deleted) {
        char hex[STORE_ID_HEX_BYTES];
        store_id_to_hex(id, hex);
        ret = st_fail(s, SAT_ERR_STORE_UNKNOWN_ID, "patient %s has been deleted", hex);
    }
    return ret;
}

int store_patient_update(struct store *s, const struct store_patient *p)
{
    struct store_patient cur;
    struct store_patient want = *p;
    int ret;
    s->errmsg[0] = '\0';
    ret = check_patient(s, &want);
    if (ret == SAT_OK)
        ret = st_require_patient(s, &p->id);
    if (ret == SAT_OK)
        ret = store_patient_get(s, &p->id, &cur);
    if (ret != SAT_OK)
        return ret;
    ret = st_begin(s);
    for (size_t i = 0; ret == SAT_OK && i < PATIENT_COLS; i++) {
        char sql[96];
        sqlite3_stmt *q = NULL;
        if (strcmp(pfield(&cur, i), pfield(&want, i)) == 0)
            continue;
        /* Column names come from the fixed table above, never from input. */
        snprintf(sql, sizeof sql, "UPDATE patient SET %s = ?2 WHERE id = ?1",
                 patient_cols[i].col);
        if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK) {
            ret = st_sql_fail(s, sqlite3_errcode(s->db), "update patient");
            break;
        }
        st_bind_id(q, 1, &p->id);
        sqlite3_bind_text(q, 2, pfield(&want, i), -1, SQLITE_TRANSIENT);
        ret = st_run(s, q, "update patient");
        sqlite3_finalize(q);
        if (ret == SAT_OK)
            ret = st_log_field(s, RECORD_KIND_PATIENT, &p->id, patient_cols[i].field,
                               st_fv_text(pfield(&want, i)));
    }
    return st_finish(s, ret);
}

static int patient_row(sqlite3_stmt *q, void *ctx)
{
    struct list_ctx *lc = ctx;
    struct store_patient p;
    row_patient(q, &p);
    return lc->fn(lc->arg, &p);
}

int store_patient_list(struct store *s, int (*fn)(void *arg, const struct store_patient *p),
                       void *arg)
{
    struct list_ctx lc = { (int (*)(void *, const void *))fn, arg };
    return st_query_rows(s,
                         "SELECT id, nhs_number, given_name, family_name, date_of_birth, address,"
                         " postcode, team, created_ms, deleted FROM patient WHERE deleted = 0"
                         " ORDER BY family_name, given_name, rowid",
                         NULL, patient_row, &lc, "list patients");
}
