/* sync_glue.c - see sync_glue.h. */
#include "sync_glue.h"

#include <stdlib.h>
#include <string.h>

static int glue_state(void *arg, uint64_t *pull_cursor, uint64_t *push_acked)
{
    struct sync_glue *g = arg;
    struct store_sync_state st;
    int ret = store_sync_state(*g->store, &st);
    if (ret == SAT_OK) {
        *pull_cursor = st.pull_cursor;
        *push_acked = st.push_acked;
    }
    return ret;
}

struct out_ctx {
    satchel_FieldChange *out;
    size_t n;
    size_t max;
};

static void copy_id(pb_byte_t dst[16], const struct store_id *id)
{
    memcpy(dst, id->b, STORE_ID_BYTES);
}

static int to_field_change(void *arg, const struct store_change *c)
{
    struct out_ctx *oc = arg;
    satchel_FieldChange *f;
    if (oc->n >= oc->max)
        return 1;
    f = &oc->out[oc->n++];
    memset(f, 0, sizeof *f);
    copy_id(f->record_id, &c->record_id);
    f->kind = (satchel_RecordKind)c->kind;
    f->field = c->field;
    f->has_value = true;
    f->value.which_value = (pb_size_t)c->value_type;
    switch (c->value_type) {
    case satchel_FieldValue_text_tag:
        strncpy(f->value.value.text, c->value_text ? c->value_text : "",
                sizeof f->value.value.text - 1);
        break;
    case satchel_FieldValue_integer_tag: f->value.value.integer = c->value_int; break;
    case satchel_FieldValue_blob_tag:
        memcpy(f->value.value.blob.bytes, c->value_blob.b, STORE_ID_BYTES);
        f->value.value.blob.size = STORE_ID_BYTES;
        break;
    case satchel_FieldValue_flag_tag: f->value.value.flag = c->value_int != 0; break;
    default: f->value.value.tombstone = true; break;
    }
    f->has_stamp = true;
    f->stamp.wall_ms = c->hlc_wall_ms;
    f->stamp.counter = c->hlc_counter;
    copy_id(f->origin_device, &c->origin_device);
    f->origin_seq = c->origin_seq;
    if (c->has_base) {
        f->has_base_stamp = true;
        f->base_stamp.wall_ms = c->base_wall_ms;
        f->base_stamp.counter = c->base_counter;
        memcpy(f->base_device.bytes, c->base_device.b, STORE_ID_BYTES);
        f->base_device.size = STORE_ID_BYTES;
    }
    return 0;
}

static int glue_changes(void *arg, uint64_t after, size_t max, satchel_FieldChange *out,
                        size_t *n)
{
    struct sync_glue *g = arg;
    struct out_ctx oc = { out, 0, max };
    int ret = store_changes(*g->store, after, (unsigned)max, to_field_change, &oc);
    *n = oc.n;
    return ret;
}

static int glue_set_push_acked(void *arg, uint64_t acked)
{
    struct sync_glue *g = arg;
    return store_set_push_acked(*g->store, acked);
}

/* A pulled FieldChange as a store_change (pointing into f). */
static int from_field_change(const satchel_FieldChange *f, struct store_change *c)
{
    memset(c, 0, sizeof *c);
    if (!f->has_value || !f->has_stamp)
        return SAT_ERR_STORE_INVALID;
    memcpy(c->record_id.b, f->record_id, STORE_ID_BYTES);
    c->kind = (enum record_kind)f->kind;
    c->field = f->field;
    c->value_type = f->value.which_value;
    switch (f->value.which_value) {
    case satchel_FieldValue_text_tag: c->value_text = f->value.value.text; break;
    case satchel_FieldValue_integer_tag: c->value_int = f->value.value.integer; break;
    case satchel_FieldValue_blob_tag:
        if (f->value.value.blob.size != STORE_ID_BYTES)
            return SAT_ERR_STORE_INVALID;
        memcpy(c->value_blob.b, f->value.value.blob.bytes, STORE_ID_BYTES);
        break;
    case satchel_FieldValue_flag_tag: c->value_int = f->value.value.flag; break;
    case satchel_FieldValue_tombstone_tag: c->value_int = 1; break;
    default: return SAT_ERR_STORE_INVALID;
    }
    c->hlc_wall_ms = f->stamp.wall_ms;
    c->hlc_counter = f->stamp.counter;
    memcpy(c->origin_device.b, f->origin_device, STORE_ID_BYTES);
    c->origin_seq = f->origin_seq;
    if (f->has_base_stamp && f->base_device.size == STORE_ID_BYTES) {
        c->has_base = 1;
        c->base_wall_ms = f->base_stamp.wall_ms;
        c->base_counter = f->base_stamp.counter;
        memcpy(c->base_device.b, f->base_device.bytes, STORE_ID_BYTES);
    }
    return SAT_OK;
}

static int glue_apply_begin(void *arg)
{
    struct sync_glue *g = arg;
    return store_apply_begin(*g->store);
}

static int glue_apply_changes(void *arg, const satchel_FieldChange *changes, size_t n,
                              unsigned *conflicts)
{
    struct sync_glue *g = arg;
    struct store_change *cs = calloc(n ? n : 1, sizeof *cs);
    struct store_apply_result r = { 0, 0, 0, 0 };
    int ret = cs ? SAT_OK : SAT_ERR_NO_MEMORY;
    for (size_t i = 0; ret == SAT_OK && i < n; i++)
        ret = from_field_change(&changes[i], &cs[i]);
    if (ret == SAT_OK)
        ret = store_apply_changes(*g->store, cs, n, &r);
    else
        store_apply_abort(*g->store); /* all or nothing, as the store's own failures */
    if (ret == SAT_OK)
        *conflicts += r.conflicts;
    free(cs);
    return ret;
}

static int glue_apply_commit(void *arg, const uint8_t (*purge)[SYNC_DEVICE_ID_BYTES],
                             size_t npurge, uint64_t next_cursor, unsigned *conflicts)
{
    struct sync_glue *g = arg;
    struct store_id *ids = calloc(npurge ? npurge : 1, sizeof *ids);
    struct store_apply_result r = { 0, 0, 0, 0 };
    int ret;
    if (!ids) {
        store_apply_abort(*g->store);
        return SAT_ERR_NO_MEMORY;
    }
    for (size_t i = 0; i < npurge; i++)
        memcpy(ids[i].b, purge[i], STORE_ID_BYTES);
    ret = store_apply_commit(*g->store, ids, npurge, next_cursor, &r);
    if (ret == SAT_OK)
        *conflicts += r.conflicts;
    free(ids);
    return ret;
}

static void glue_apply_abort(void *arg)
{
    struct sync_glue *g = arg;
    if (*g->store)
        store_apply_abort(*g->store);
}

/* Overwrites a file with zeros before deleting it: it is only ciphertext,
 * but nothing of it should outlive a revocation on a file system that keeps
 * deleted blocks. */
static int shred(const struct hal *h, const char *name)
{
    static const uint8_t zeros[4096];
    hal_file *f = NULL;
    uint64_t size = 0;
    int ret = hal_storage_open(h, name, 0, &f);
    if (ret == SAT_ERR_NOT_FOUND)
        return SAT_OK;
    if (ret != SAT_OK)
        return ret;
    ret = hal_storage_size(h, f, &size);
    for (uint64_t off = 0; ret == SAT_OK && off < size; off += sizeof zeros)
        ret = hal_storage_write(h, f, off, zeros,
                                size - off < sizeof zeros ? (size_t)(size - off) : sizeof zeros);
    if (ret == SAT_OK)
        ret = hal_storage_sync(h, f);
    hal_storage_close(h, f);
    /* Deleted even when it could not be overwritten: the keys are gone. */
    {
        int del = hal_storage_delete(h, name);
        return ret != SAT_OK ? ret : del;
    }
}

int sync_glue_wipe(struct sync_glue *g)
{
    store_close(*g->store);
    *g->store = NULL;
    /* The keys first: once they are gone the files are unreadable anyway. */
    static const char *const files[] = { STORE_DB_NAME, STORE_DB_NAME "-journal",
                                         STORE_DB_NAME "-wal",
                                         /* without its key the tablet cannot
                                          * even prove who it is any more */
                                         "device.key" };
    int ret = keys_wipe(g->keys);
    /* Every file is shredded whatever happened to the one before; the
     * first failure is what the caller hears of. */
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        int r = shred(g->hal, files[i]);
        if (ret == SAT_OK)
            ret = r;
    }
    return ret;
}

static int glue_wipe(void *arg)
{
    return sync_glue_wipe(arg);
}

void sync_glue_replica(struct sync_glue *g, struct sync_replica *r)
{
    r->state = glue_state;
    r->changes = glue_changes;
    r->set_push_acked = glue_set_push_acked;
    r->apply_begin = glue_apply_begin;
    r->apply_changes = glue_apply_changes;
    r->apply_commit = glue_apply_commit;
    r->apply_abort = glue_apply_abort;
    r->wipe = glue_wipe;
    r->arg = g;
}
