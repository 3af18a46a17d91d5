/*
 * store_state.c - the merge state (store_internal.h): for each record, the
 * winning write of each of its fields on this replica (value, HLC stamp,
 * writer), kept as one blob in the `ms` column of the record's own row
 * (layout 3), and the origin table, which numbers the writers other than
 * this device (0 is this device).
 *
 * One record's state is held in s->fs at a time (a record's fields come
 * together): st_winner_get and st_winner_put read it once and change it in
 * memory; st_fs_flush writes it back when another record's is needed,
 * before a commit and before a purge. A rollback forgets it, the writers
 * its transaction added and the rowid st_record_rowid keeps. A blob that
 * does not decode is SAT_ERR_STORE_CORRUPT, never guessed at.
 * st_migrate_v2 turns layout 2's tables of a row per field into the blobs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

/* ---- the rowid of a record ---------------------------------------------- */

/* The rowid of a record in its kind's table (or the one it will have, for
 * a pending row, see struct pending_row in store_merge.c): *rowid, or -1
 * if there is no such row (yet). */
int st_record_rowid(struct store *s, enum record_kind kind, const struct store_id *record,
                    int64_t *rowid)
{
    sqlite3_stmt *q;
    int rc;
    if (s->rid_valid && s->rid_kind == kind && memcmp(&s->rid_id, record, sizeof *record) == 0) {
        *rowid = s->rid;
        return SAT_OK;
    }
    if (st_pend_rowid(s, kind, record, rowid))
        return SAT_OK;
    q = st_prepare_kind_once(s, &s->rowid_of[kind], "SELECT rowid FROM %s WHERE id = ?1", kind);
    if (!q)
        return st_sql_fail(s, sqlite3_errcode(s->db), "merge state");
    st_bind_id(q, 1, record);
    rc = sqlite3_step(q);
    *rowid = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_reset(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return st_sql_fail(s, rc, "merge state");
    if (*rowid >= 0) {
        s->rid_valid = 1;
        s->rid_kind = kind;
        s->rid_id = *record;
        s->rid = *rowid;
    }
    return SAT_OK;
}

/* ---- merge state ---------------------------------------------------------
 * A record's state blob is its fields' entries in field order, each
 *     field, type, stamp wall, stamp counter, origin ref   (varints; type a byte)
 *     value: integer, flag, tombstone: zigzag varint; text: length, bytes;
 *            blob: 0, or 1 and the 16-byte id
 */

#define FS_ENTRY_MAX (4 * 10 + 1 + 10 + STORE_NOTE_TEXT_BYTES)

struct fs_entry {
    uint32_t field;
    int type;
    struct hlc stamp;
    uint64_t origin; /* ref: 0 this device, else origin table */
    int64_t i;
    const char *text; /* not terminated */
    size_t text_len;
    int has_blob;
    const uint8_t *blob;
};

static size_t put_varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

/* Reads a varint from [*p, end): 0 if it runs past end or 64 bits. */
static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0;
}

static size_t fs_entry_encode(uint8_t *out, const struct fs_entry *e)
{
    size_t n = put_varint(out, e->field);
    out[n++] = (uint8_t)e->type;
    n += put_varint(out + n, e->stamp.wall_ms);
    n += put_varint(out + n, e->stamp.counter);
    n += put_varint(out + n, e->origin);
    if (e->type == VT_TEXT) {
        n += put_varint(out + n, e->text_len);
        memcpy(out + n, e->text, e->text_len);
        n += e->text_len;
    } else if (e->type == VT_BLOB) {
        out[n++] = (uint8_t)(e->has_blob != 0);
        if (e->has_blob) {
            memcpy(out + n, e->blob, STORE_ID_BYTES);
            n += STORE_ID_BYTES;
        }
    } else {
        n += put_varint(out + n, ((uint64_t)e->i << 1) ^ (uint64_t)(e->i >> 63));
    }
    return n;
}

/* Decodes the entry at *p (advanced past it); 0 if it is malformed. */
static int fs_entry_decode(const uint8_t **p, const uint8_t *end, struct fs_entry *e)
{
    uint64_t field, wall, counter, v;
    memset(e, 0, sizeof *e);
    if (!get_varint(p, end, &field) || field > FIELD_MAX || *p >= end)
        return 0;
    e->field = (uint32_t)field;
    e->type = *(*p)++;
    if (!get_varint(p, end, &wall) || !get_varint(p, end, &counter) || counter > UINT32_MAX ||
        !get_varint(p, end, &e->origin))
        return 0;
    e->stamp.wall_ms = wall;
    e->stamp.counter = (uint32_t)counter;
    switch (e->type) {
    case VT_TEXT:
        if (!get_varint(p, end, &v) || v >= STORE_NOTE_TEXT_BYTES || v > (uint64_t)(end - *p))
            return 0;
        e->text = (const char *)*p;
        e->text_len = (size_t)v;
        *p += v;
        return 1;
    case VT_BLOB:
        if (*p >= end)
            return 0;
        e->has_blob = *(*p)++;
        if (e->has_blob > 1 || (e->has_blob && end - *p < STORE_ID_BYTES))
            return 0;
        if (e->has_blob) {
            e->blob = *p;
            *p += STORE_ID_BYTES;
        }
        return 1;
    case VT_INT:
    case VT_FLAG:
    case VT_TOMBSTONE:
        if (!get_varint(p, end, &v))
            return 0;
        e->i = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
        return 1;
    default:
        return 0;
    }
}

static int fs_damaged(struct store *s)
{
    return st_fail(s, SAT_ERR_STORE_CORRUPT, "the merge state of a %s record is damaged",
                   st_kind_table(s->fs.kind));
}

/* Room for one more writer in s->origins. */
static int origins_room(struct store *s)
{
    size_t cap = s->origins_cap ? 2 * s->origins_cap : 16;
    struct store_id *o;
    if (s->norigins < s->origins_cap)
        return SAT_OK;
    o = realloc(s->origins, cap * sizeof *o);
    if (!o)
        return st_fail(s, SAT_ERR_NO_MEMORY, "out of memory");
    s->origins = o;
    s->origins_cap = cap;
    return SAT_OK;
}

/* The origin table, read once. */
static int origins_load(struct store *s)
{
    sqlite3_stmt *q = NULL;
    int rc;
    if (s->origins_loaded)
        return SAT_OK;
    s->norigins = 0;
    rc = sqlite3_prepare_v2(s->db, "SELECT ref, id FROM origin ORDER BY ref", -1, &q, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (origins_room(s) != SAT_OK) {
            sqlite3_finalize(q);
            return SAT_ERR_NO_MEMORY;
        }
        if (sqlite3_column_int64(q, 0) != (sqlite3_int64)s->norigins + 1 ||
            !st_column_id(q, 1, &s->origins[s->norigins])) {
            sqlite3_finalize(q);
            return st_fail(s, SAT_ERR_STORE_CORRUPT, "the table of writers is damaged");
        }
        s->norigins++;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        return st_sql_fail(s, rc, "read the table of writers");
    s->origins_loaded = 1;
    s->origins_committed = s->norigins;
    return SAT_OK;
}

/* The ref of a writer, added to the origin table if new (in the open
 * transaction). */
static int origin_ref(struct store *s, const struct store_id *id, uint64_t *ref)
{
    sqlite3_stmt *q;
    int ret;
    if (memcmp(id, &s->device, sizeof *id) == 0) {
        *ref = 0;
        return SAT_OK;
    }
    ret = origins_load(s);
    if (ret != SAT_OK)
        return ret;
    for (size_t i = 0; i < s->norigins; i++)
        if (memcmp(&s->origins[i], id, sizeof *id) == 0) {
            *ref = i + 1;
            return SAT_OK;
        }
    ret = origins_room(s);
    if (ret != SAT_OK)
        return ret;
    q = st_prepare_once(s, &s->origin_add, "INSERT INTO origin(ref, id) VALUES (?1, ?2)");
    if (!q)
        return st_sql_fail(s, sqlite3_errcode(s->db), "add a writer");
    sqlite3_bind_int64(q, 1, (sqlite3_int64)s->norigins + 1);
    st_bind_id(q, 2, id);
    ret = st_run(s, q, "add a writer");
    if (ret != SAT_OK)
        return ret;
    s->origins[s->norigins++] = *id;
    *ref = s->norigins;
    return SAT_OK;
}

static int origin_of(struct store *s, uint64_t ref, struct store_id *out)
{
    int ret;
    if (ref == 0) {
        *out = s->device;
        return SAT_OK;
    }
    ret = origins_load(s);
    if (ret != SAT_OK)
        return ret;
    if (ref > s->norigins)
        return fs_damaged(s);
    *out = s->origins[ref - 1];
    return SAT_OK;
}

static int fs_reserve(struct store *s, size_t need)
{
    uint8_t *b;
    size_t cap = s->fs.cap ? s->fs.cap : 256;
    if (need <= s->fs.cap)
        return SAT_OK;
    while (cap < need)
        cap *= 2;
    b = realloc(s->fs.buf, cap);
    if (!b)
        return st_fail(s, SAT_ERR_NO_MEMORY, "out of memory");
    s->fs.buf = b;
    s->fs.cap = cap;
    return SAT_OK;
}

/* Writes the held merge state back into its record's row if it changed
 * (a pending row is written whole, with it). */
int st_fs_flush(struct store *s)
{
    sqlite3_stmt *q;
    if (!s->fs.valid || !s->fs.dirty)
        return SAT_OK;
    if (st_pend_holds(s, s->fs.kind, s->fs.rowid))
        return st_pend_flush(s);
    q = st_prepare_kind_once(s, &s->fs_put[s->fs.kind], "UPDATE %s SET ms = ?2 WHERE rowid = ?1",
                             s->fs.kind);
    if (!q)
        return st_sql_fail(s, sqlite3_errcode(s->db), "merge state");
    sqlite3_bind_int64(q, 1, s->fs.rowid);
    sqlite3_bind_blob(q, 2, s->fs.buf, (int)s->fs.len, SQLITE_STATIC);
    s->fs.dirty = 0;
    return st_run(s, q, "merge state");
}

/* Binds the held merge state if it is of (kind, rowid), which is then
 * written; else NULL. */
void st_fs_bind_for(struct store *s, sqlite3_stmt *q, int col, enum record_kind kind,
                    int64_t rowid)
{
    if (s->fs.valid && s->fs.kind == kind && s->fs.rowid == rowid) {
        sqlite3_bind_blob(q, col, s->fs.buf, (int)s->fs.len, SQLITE_TRANSIENT);
        s->fs.dirty = 0;
    } else {
        sqlite3_bind_null(q, col);
    }
}

/* Makes s->fs hold the merge state of a record; *found is 0 (and nothing
 * held) if the record has no row (yet). */
static int fs_load(struct store *s, enum record_kind kind, const struct store_id *record,
                   int *found)
{
    sqlite3_stmt *q;
    int64_t rowid;
    int rc;
    int ret;
    *found = 0;
    if (!record_kind_valid((int)kind))
        return st_fail(s, SAT_ERR_STORE_INVALID, "no merge state for kind %d", (int)kind);
    ret = st_record_rowid(s, kind, record, &rowid);
    if (ret != SAT_OK || rowid < 0)
        return ret;
    *found = 1;
    if (s->fs.valid && s->fs.kind == kind && s->fs.rowid == rowid)
        return SAT_OK;
    ret = st_fs_flush(s);
    if (ret != SAT_OK)
        return ret;
    s->fs.valid = 0;
    s->fs.len = 0;
    if (st_pend_holds(s, kind, rowid)) /* a row not yet written has no state */
        goto held;
    q = st_prepare_kind_once(s, &s->fs_get[kind], "SELECT ms FROM %s WHERE rowid = ?1", kind);
    if (!q)
        return st_sql_fail(s, sqlite3_errcode(s->db), "merge state");
    sqlite3_bind_int64(q, 1, rowid);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(q, 0);
        ret = fs_reserve(s, n);
        if (ret == SAT_OK && n > 0)
            memcpy(s->fs.buf, sqlite3_column_blob(q, 0), n);
        s->fs.len = n;
    }
    sqlite3_reset(q);
    if (ret != SAT_OK)
        return ret;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return st_sql_fail(s, rc, "merge state");
held:
    s->fs.valid = 1;
    s->fs.dirty = 0;
    s->fs.kind = kind;
    s->fs.rowid = rowid;
    return SAT_OK;
}

/* Finds field in the held state: 1 with *e (and *at, *after: where its
 * entry starts and ends), 0 with *at where it would go. -1 if damaged. */
static int fs_find(const struct store *s, uint32_t field, struct fs_entry *e, size_t *at,
                   size_t *after)
{
    const uint8_t *p = s->fs.buf;
    const uint8_t *end = p ? p + s->fs.len : p; /* NULL + 0 is undefined: no buffer yet */
    while (p < end) {
        const uint8_t *start = p;
        if (!fs_entry_decode(&p, end, e))
            return -1;
        if (e->field >= field) {
            *at = (size_t)(start - s->fs.buf);
            *after = e->field == field ? (size_t)(p - s->fs.buf) : *at;
            return e->field == field;
        }
    }
    *at = *after = s->fs.len;
    return 0;
}

int st_winner_get(struct store *s, enum record_kind kind, const struct store_id *record,
                  uint32_t field, struct field_winner *w)
{
    struct fs_entry e;
    size_t at, after;
    int found, ret;
    w->exists = 0;
    ret = fs_load(s, kind, record, &found);
    if (ret != SAT_OK || !found)
        return ret;
    found = fs_find(s, field, &e, &at, &after);
    if (found < 0)
        return fs_damaged(s);
    if (!found)
        return SAT_OK;
    ret = origin_of(s, e.origin, &w->origin);
    if (ret != SAT_OK)
        return ret;
    w->exists = 1;
    w->stamp = e.stamp;
    w->type = e.type;
    w->i = e.i;
    memcpy(w->text, e.text ? e.text : "", e.text_len);
    w->text[e.text_len] = '\0';
    if (e.has_blob)
        memcpy(w->blob.b, e.blob, STORE_ID_BYTES);
    else
        memset(&w->blob, 0, sizeof w->blob);
    return SAT_OK;
}

/* Makes (v, stamp, origin) the winning write of a field; the record's row
 * must exist (or be the pending row). */
int st_winner_put(struct store *s, enum record_kind kind, const struct store_id *record,
                  uint32_t field, struct field_value v, struct hlc stamp,
                  const struct store_id *origin)
{
    struct fs_entry e;
    uint8_t entry[FS_ENTRY_MAX];
    size_t at, after, n;
    int found, ret;
    if (field > FIELD_MAX)
        return st_fail(s, SAT_ERR_STORE_INVALID, "no merge state for kind %d field %u", (int)kind,
                       (unsigned)field);
    ret = fs_load(s, kind, record, &found);
    if (ret != SAT_OK)
        return ret;
    if (!found)
        return st_fail(s, SAT_ERR_STORE_SQL, "merge state: the %s record is missing",
                       st_kind_table(kind));
    if (fs_find(s, field, &e, &at, &after) < 0)
        return fs_damaged(s);
    memset(&e, 0, sizeof e);
    e.field = field;
    e.type = v.type;
    e.stamp = stamp;
    e.i = v.i;
    if (v.type == VT_TEXT) {
        e.text = v.text ? v.text : "";
        e.text_len = st_bounded_len(e.text, STORE_NOTE_TEXT_BYTES - 1);
    }
    e.has_blob = v.type == VT_BLOB && v.blob;
    e.blob = e.has_blob ? v.blob->b : NULL;
    ret = origin_ref(s, origin, &e.origin);
    if (ret == SAT_OK)
        ret = fs_reserve(s, s->fs.len + sizeof entry);
    if (ret != SAT_OK)
        return ret;
    n = fs_entry_encode(entry, &e);
    memmove(s->fs.buf + at + n, s->fs.buf + after, s->fs.len - after);
    memcpy(s->fs.buf + at, entry, n);
    s->fs.len = s->fs.len - (after - at) + n;
    s->fs.dirty = 1;
    return SAT_OK;
}

/* ---- layout 2 ----------------------------------------------------------- */

/* Layout 2 to 3, in check_layout's transaction (store_schema.c): each
 * kind's merge state, a table of a row per field keyed by rowid << 16 |
 * field (origin NULL: this device), goes into its records' rows (ms:
 * fs_entry blobs in field order), and each other writer gets a ref in the
 * origin table. */
int st_migrate_v2(struct store *s)
{
    static const char *const kinds[] = { "patient", "visit", "observation", "note", "task" };
    char *text = malloc(STORE_NOTE_TEXT_BYTES);
    int ret = text ? SAT_OK : st_fail(s, SAT_ERR_NO_MEMORY, "out of memory");
    for (size_t k = 0; ret == SAT_OK && k < sizeof kinds / sizeof kinds[0]; k++) {
        sqlite3_stmt *sel = NULL;
        sqlite3_stmt *ins = NULL;
        char sql[200];
        int64_t cur = -1;
        int rc;
        snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN ms BLOB", kinds[k]);
        rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        snprintf(sql, sizeof sql,
                 "SELECT k, vtype, vint, vtext, vblob, hlc_wall, hlc_counter, origin FROM fs_%s"
                 " ORDER BY k",
                 kinds[k]);
        if (rc == SQLITE_OK)
            rc = sqlite3_prepare_v2(s->db, sql, -1, &sel, NULL);
        snprintf(sql, sizeof sql, "UPDATE %s SET ms = ?2 WHERE rowid = ?1", kinds[k]);
        if (rc == SQLITE_OK)
            rc = sqlite3_prepare_v2(s->db, sql, -1, &ins, NULL);
        s->fs.len = 0;
        while (rc == SQLITE_OK && ret == SAT_OK) {
            struct fs_entry e;
            struct store_id id;
            int64_t key;
            rc = sqlite3_step(sel);
            if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                break;
            key = rc == SQLITE_ROW ? sqlite3_column_int64(sel, 0) : -1;
            if (cur >= 0 && (rc == SQLITE_DONE || key >> 16 != cur)) {
                sqlite3_bind_int64(ins, 1, cur);
                sqlite3_bind_blob(ins, 2, s->fs.buf, (int)s->fs.len, SQLITE_STATIC);
                ret = st_run(s, ins, "migrate the merge state");
                s->fs.len = 0;
            }
            if (rc == SQLITE_DONE || ret != SAT_OK) {
                rc = SQLITE_OK;
                break;
            }
            rc = SQLITE_OK;
            cur = key >> 16;
            memset(&e, 0, sizeof e);
            e.field = (uint32_t)(key & FIELD_MAX);
            e.type = sqlite3_column_int(sel, 1);
            e.i = sqlite3_column_int64(sel, 2);
            e.stamp.wall_ms = (uint64_t)sqlite3_column_int64(sel, 5);
            e.stamp.counter = (uint32_t)sqlite3_column_int64(sel, 6);
            if (key < 0 || e.type < VT_TEXT || e.type > VT_TOMBSTONE) {
                ret = st_fail(s, SAT_ERR_STORE_CORRUPT, "the merge state of a %s record is damaged",
                              kinds[k]);
                break;
            }
            if (e.type == VT_TEXT) {
                st_column_text(sel, 3, text, STORE_NOTE_TEXT_BYTES);
                e.text = text;
                e.text_len = strlen(text);
            }
            e.has_blob = e.type == VT_BLOB && st_column_id(sel, 4, &id);
            e.blob = e.has_blob ? id.b : NULL;
            if (sqlite3_column_type(sel, 7) != SQLITE_NULL) {
                if (!st_column_id(sel, 7, &id)) {
                    ret = st_fail(s, SAT_ERR_STORE_CORRUPT, "a writer's id in the merge state of a "
                                  "%s record is damaged", kinds[k]);
                    break;
                }
                ret = origin_ref(s, &id, &e.origin);
            }
            if (ret == SAT_OK)
                ret = fs_reserve(s, s->fs.len + FS_ENTRY_MAX);
            if (ret == SAT_OK)
                s->fs.len += fs_entry_encode(s->fs.buf + s->fs.len, &e);
        }
        sqlite3_finalize(sel);
        sqlite3_finalize(ins);
        if (ret == SAT_OK && rc == SQLITE_OK) {
            snprintf(sql, sizeof sql, "DROP TABLE fs_%s", kinds[k]);
            rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        }
        if (ret == SAT_OK && rc != SQLITE_OK)
            ret = st_sql_fail(s, rc, "migrate the merge state to layout 3");
    }
    s->fs.len = 0;
    free(text);
    return ret;
}
