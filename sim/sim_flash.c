/*
 * sim_flash.c - the simulated HAL's virtual flash: files, handles, pending
 * writes, power cuts and torn writes (the storage half of sim_hal.h).
 *
 * Owns: a device's directory of files (s->files), its open handles
 * (s->handles) and the storage-operation counter with the armed cut
 * (s->storage_ops, s->cut_countdown). Guarantees: the storage_* members
 * keep hal.h's contract with sim_hal.h's crash model; every decision at a
 * cut and every garbage byte of a torn sector comes from the device's
 * generator (s->prng), in a fixed order, so a seed replays the same
 * crash. Callers: firmware code through struct hal (sim_flash_install sets
 * the members); sim_hal.c (sim_flash_power_cut from sim_hal_power_cut,
 * sim_flash_free from sim_hal_free); tests through sim_hal_storage_ops,
 * sim_hal_cut_at and sim_hal_file_bytes. A handle is live while the
 * device's power epoch (sim_hal.c) is the one it was opened in.
 *
 * Flash model. Each file keeps `cur` (what reads see) and the ordered list
 * of writes and truncates since the last storage_sync of that file. Each
 * pending operation keeps what it replaced (an undo record: the bytes it
 * overwrote and the length before it), not a copy of what it wrote: a
 * write costs one copy into `cur` (none more when it only appends, as WAL
 * frames do) and a sync only forgets the list.
 *
 * A power cut first walks the list backwards, taking each operation's data
 * from `cur` and undoing it, which leaves the durable bytes; then replays
 * the operations over them, drawing for each one from the seeded
 * generator, as SQLite's src/test6.c does: drop, apply, or (writes only)
 * tear. A torn write keeps a prefix ending on a sector boundary, fills the
 * sector being written (clipped to the write) with garbage, and ends the
 * replay of that file: the power was gone. The result becomes `cur`.
 *
 * A test that edits a file's bytes in place (sim_hal_file_bytes) while it
 * has pending operations pins it: the durable bytes are set aside in `dur`
 * and each pending write keeps its own data, so that the edit is lost at a
 * cut as sim_hal.h promises; the next sync or cut unpins it.
 */
#include "sim_hal_internal.h"

#include <stdlib.h>
#include <string.h>

#define SIM_OPS_INITIAL_CAP 16

/* Per-write outcome odds at a cut, out of SIM_CUT_CHOICES (test6.c-like). */
#define SIM_CUT_CHOICES 3u
enum sim_cut_choice { SIM_CUT_DROP = 0, SIM_CUT_APPLY = 1, SIM_CUT_TEAR = 2 };

/* ---- state --------------------------------------------------------------- */

struct sim_buf {
    uint8_t *p;
    size_t len;
    size_t cap;
};

enum sim_op_kind { SIM_OP_WRITE, SIM_OP_TRUNCATE };

struct sim_op {
    enum sim_op_kind kind;
    uint64_t off;      /* write: file offset; truncate: new size */
    size_t len;        /* write only */
    size_t old_len;    /* the file's length before the operation */
    size_t undo_off;   /* in the file's undo log: the bytes it replaced */
    size_t undo_len;   /* write: bytes of [off, off + len) below old_len;
                        * truncate: bytes of [off, old_len) */
    size_t data_off;   /* pinned write: its data in the file's pin log */
};

struct sim_file {
    char name[HAL_FILE_NAME_BYTES_MAX + 1];
    struct sim_buf cur;
    struct sim_op *ops; /* pending since the last sync */
    size_t n_ops;
    size_t cap_ops;
    struct sim_buf undo; /* what the pending ops replaced, in order */
    int pinned;          /* dur and pin hold the durable view and the data */
    struct sim_buf dur;  /* pinned: what survives a cut */
    struct sim_buf pin;  /* pinned: each pending write's data */
    unsigned refs; /* open handles, dead ones included */
    int unlinked;  /* deleted while handles were open */
};

struct hal_file {
    struct sim_file *file;
    uint64_t epoch; /* s->power_epoch when opened: stale means dead */
    struct hal_file *prev;
    struct hal_file *next;
};

/* ---- byte buffers ---------------------------------------------------------- */

static int buf_reserve(struct sim_buf *b, size_t need)
{
    size_t cap;
    uint8_t *p;
    if (need <= b->cap)
        return SAT_OK;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->p, cap);
    if (!p)
        return SAT_ERR_NO_MEMORY;
    b->p = p;
    b->cap = cap;
    return SAT_OK;
}

/* Sets the length, zero-filling growth; capacity must already suffice. */
static void buf_resize_reserved(struct sim_buf *b, size_t len)
{
    if (len > b->len)
        memset(b->p + b->len, 0, len - b->len);
    b->len = len;
}

/* Writes data at off, zero-filling any gap; capacity must already suffice.
 * Only the gap is zeroed: the bytes written over are not cleared first. */
static void buf_write_reserved(struct sim_buf *b, size_t off, const uint8_t *data, size_t len)
{
    if (off > b->len)
        memset(b->p + b->len, 0, off - b->len);
    if (len > 0)
        memcpy(b->p + off, data, len);
    if (off + len > b->len)
        b->len = off + len;
}

/* Appends len bytes to b; returns SAT_OK or SAT_ERR_NO_MEMORY (b unchanged). */
static int buf_append(struct sim_buf *b, const uint8_t *data, size_t len)
{
    int ret = buf_reserve(b, b->len + len);
    if (ret != SAT_OK)
        return ret;
    if (len > 0)
        memcpy(b->p + b->len, data, len);
    b->len += len;
    return SAT_OK;
}

static int buf_copy(struct sim_buf *dst, const struct sim_buf *src)
{
    int ret = buf_reserve(dst, src->len);
    if (ret != SAT_OK)
        return ret;
    if (src->len > 0)
        memcpy(dst->p, src->p, src->len);
    dst->len = src->len;
    return SAT_OK;
}

static void buf_free(struct sim_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}

/* ---- files ----------------------------------------------------------------- */

static void file_clear_ops(struct sim_file *f)
{
    f->n_ops = 0;
    f->undo.len = 0;
    f->pin.len = 0;
    f->pinned = 0;
}

static void file_free(struct sim_file *f)
{
    free(f->ops);
    buf_free(&f->cur);
    buf_free(&f->undo);
    buf_free(&f->dur);
    buf_free(&f->pin);
    free(f);
}

static int file_find(const struct sim_hal *s, const char *name)
{
    for (int i = 0; i < SIM_FLASH_FILES_MAX; i++)
        if (s->files[i] && strcmp(s->files[i]->name, name) == 0)
            return i;
    return -1;
}

/* Makes room for one more pending operation on f that replaces undo_len
 * bytes and, pinned, writes data_len bytes. Changes nothing that the
 * caller's failure would have to undo. */
static int file_prepare_op(struct sim_file *f, size_t undo_len, size_t data_len)
{
    int ret = buf_reserve(&f->undo, f->undo.len + undo_len);
    if (ret == SAT_OK && f->pinned)
        ret = buf_reserve(&f->pin, f->pin.len + data_len);
    if (ret != SAT_OK)
        return ret;
    if (f->n_ops == f->cap_ops) {
        size_t cap = f->cap_ops ? f->cap_ops * 2 : SIM_OPS_INITIAL_CAP;
        struct sim_op *ops = realloc(f->ops, cap * sizeof *ops);
        if (!ops)
            return SAT_ERR_NO_MEMORY;
        f->ops = ops;
        f->cap_ops = cap;
    }
    return SAT_OK;
}

/* Undoes op (the last one applied to b): b as it was before it. */
static void op_undo(const struct sim_file *f, const struct sim_op *op, struct sim_buf *b)
{
    const uint8_t *old = f->undo.p + op->undo_off;
    if (op->kind == SIM_OP_TRUNCATE) {
        /* Shrinking dropped [off, old_len), which undo holds; growing
         * added zeros past old_len. Capacity covers old_len: b held it. */
        if (op->undo_len > 0)
            memcpy(b->p + op->off, old, op->undo_len);
    } else if (op->undo_len > 0) {
        memcpy(b->p + op->off, old, op->undo_len);
    }
    b->len = op->old_len;
}

/* Pins f (see the top of this file): dur gets the durable bytes and pin
 * each pending write's data. Returns SAT_OK or SAT_ERR_NO_MEMORY (f
 * unchanged). */
static int file_pin(struct sim_file *f)
{
    size_t data = 0;
    size_t most = f->cur.len; /* the longest the file was while pending */
    int ret;
    if (f->pinned || f->n_ops == 0)
        return SAT_OK;
    for (size_t i = 0; i < f->n_ops; i++) {
        if (f->ops[i].kind == SIM_OP_WRITE)
            data += f->ops[i].len;
        if (f->ops[i].old_len > most)
            most = f->ops[i].old_len;
    }
    ret = buf_reserve(&f->dur, most);
    if (ret == SAT_OK)
        ret = buf_copy(&f->dur, &f->cur);
    if (ret == SAT_OK)
        ret = buf_reserve(&f->pin, data);
    if (ret != SAT_OK)
        return ret;
    /* Walking back from cur, each write's data is what dur holds in its
     * range once every later operation is undone. */
    f->pin.len = data;
    for (size_t i = f->n_ops; i-- > 0;) {
        struct sim_op *op = &f->ops[i];
        if (op->kind == SIM_OP_WRITE) {
            data -= op->len;
            op->data_off = data;
            memcpy(f->pin.p + data, f->dur.p + op->off, op->len);
        }
        op_undo(f, op, &f->dur);
    }
    f->pinned = 1;
    return SAT_OK;
}

/* Replays f's pending operations over its durable view as a cut would, then
 * makes the result the file's bytes. */
static void file_replay_cut(struct sim_hal *s, struct sim_file *f)
{
    struct sim_buf *d;
    /* Unpinned, the durable bytes are cur with every pending operation
     * undone; the data of each write is kept aside on the way back. */
    if (!f->pinned && file_pin(f) != SAT_OK) {
        /* No memory to set the data aside: keep it all, like a cut that
         * came after the power had flushed everything. */
        file_clear_ops(f);
        return;
    }
    d = &f->dur;
    for (size_t i = 0; i < f->n_ops; i++) {
        const struct sim_op *op = &f->ops[i];
        const uint8_t *data = f->pin.p + op->data_off;
        if (op->kind == SIM_OP_TRUNCATE) {
            if (sim_prng_below(&s->prng, 2) == 0)
                continue;
            /* Growth that cannot be allocated ends the replay: the power
             * died before it, which is a crash state like any other. */
            if (buf_reserve(d, (size_t)op->off) != SAT_OK)
                break;
            buf_resize_reserved(d, (size_t)op->off);
            continue;
        }
        switch ((enum sim_cut_choice)sim_prng_below(&s->prng, SIM_CUT_CHOICES)) {
        case SIM_CUT_DROP:
            continue;
        case SIM_CUT_APPLY:
            if (buf_reserve(d, (size_t)op->off + op->len) != SAT_OK)
                goto done;
            buf_write_reserved(d, (size_t)op->off, data, op->len);
            continue;
        case SIM_CUT_TEAR:
        default: {
            /* Cut points: the write's start and every sector boundary
             * strictly inside it. The sector after the cut point, clipped
             * to the write, was being programmed: garbage. */
            uint64_t end = op->off + op->len;
            uint64_t first = (op->off / SIM_FLASH_SECTOR_BYTES + 1) * SIM_FLASH_SECTOR_BYTES;
            uint64_t inner = first < end ? (end - 1 - first) / SIM_FLASH_SECTOR_BYTES + 1 : 0;
            uint64_t k = sim_prng_below(&s->prng, inner + 1);
            uint64_t cut = k == 0 ? op->off : first + (k - 1) * SIM_FLASH_SECTOR_BYTES;
            uint64_t gend = k == 0 ? first : cut + SIM_FLASH_SECTOR_BYTES;
            size_t keep;
            if (gend > end)
                gend = end;
            keep = (size_t)(cut - op->off);
            if (buf_reserve(d, (size_t)gend) != SAT_OK)
                goto done;
            buf_write_reserved(d, (size_t)op->off, data, keep);
            if (gend > d->len)
                buf_resize_reserved(d, (size_t)gend);
            sim_prng_fill(&s->prng, d->p + cut, (size_t)(gend - cut));
            goto done;
        }
        }
    }
done:
    {
        struct sim_buf tmp = f->cur;
        f->cur = f->dur;
        f->dur = tmp; /* kept as capacity for the next pin */
    }
    file_clear_ops(f);
}

/* A sync makes the pending ops durable: cur already holds them. */
static void file_sync_ops(struct sim_file *f)
{
    file_clear_ops(f);
}

/* ---- storage --------------------------------------------------------------- */

static int handle_live(const struct sim_hal *s, const struct hal_file *f)
{
    return !s->powered_off && f->epoch == s->power_epoch;
}

static void handle_unlink(struct sim_hal *s, struct hal_file *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else
        s->handles = f->next;
    if (f->next)
        f->next->prev = f->prev;
}

/* Counts a write/sync/truncate and fires an armed cut on it. Returns SAT_OK
 * if the operation may go ahead. */
static int count_storage_op(struct sim_hal *s)
{
    s->storage_ops++;
    if (s->cut_countdown > 0 && --s->cut_countdown == 0) {
        sim_hal_power_cut(s);
        return SAT_ERR_POWER_CUT;
    }
    return SAT_OK;
}

static int sim_storage_open(void *ctx, const char *name, unsigned flags, hal_file **out)
{
    struct sim_hal *s = ctx;
    struct sim_file *file = NULL;
    struct hal_file *h;
    int idx;
    int slot = -1;
    if (s->powered_off)
        return SAT_ERR_POWER_CUT;
    if (!hal_storage_name_valid(name) || !out)
        return SAT_ERR_INVALID;
    idx = file_find(s, name);
    if (idx >= 0) {
        if ((flags & HAL_OPEN_CREATE) && (flags & HAL_OPEN_EXCLUSIVE))
            return SAT_ERR_EXISTS;
        file = s->files[idx];
    } else {
        if (!(flags & HAL_OPEN_CREATE))
            return SAT_ERR_NOT_FOUND;
        for (int i = 0; i < SIM_FLASH_FILES_MAX && slot < 0; i++)
            if (!s->files[i])
                slot = i;
        if (slot < 0)
            return SAT_ERR_NO_SPACE;
    }
    h = calloc(1, sizeof *h);
    if (!h)
        return SAT_ERR_NO_MEMORY;
    if (!file) {
        file = calloc(1, sizeof *file);
        if (!file) {
            free(h);
            return SAT_ERR_NO_MEMORY;
        }
        memcpy(file->name, name, strlen(name) + 1);
        s->files[slot] = file; /* creation is durable at once */
    }
    file->refs++;
    h->file = file;
    h->epoch = s->power_epoch;
    h->next = s->handles;
    if (s->handles)
        s->handles->prev = h;
    s->handles = h;
    *out = h;
    return SAT_OK;
}

static int sim_storage_read(void *ctx, hal_file *f, uint64_t off, void *buf, size_t len,
                            size_t *got)
{
    struct sim_hal *s = ctx;
    const struct sim_buf *b;
    size_t n = 0;
    if (!f || !handle_live(s, f))
        return SAT_ERR_POWER_CUT;
    if (!got || (len > 0 && !buf))
        return SAT_ERR_INVALID;
    b = &f->file->cur;
    if (off < b->len) {
        n = b->len - (size_t)off;
        if (n > len)
            n = len;
        memcpy(buf, b->p + off, n);
    }
    *got = n;
    return SAT_OK;
}

static int sim_storage_write(void *ctx, hal_file *f, uint64_t off, const void *buf, size_t len)
{
    struct sim_hal *s = ctx;
    struct sim_file *file;
    struct sim_op *op;
    size_t undo_len;
    int ret;
    if (!f || !handle_live(s, f))
        return SAT_ERR_POWER_CUT;
    ret = count_storage_op(s);
    if (ret != SAT_OK)
        return ret;
    if (len > 0 && !buf)
        return SAT_ERR_INVALID;
    if (off > SIM_FLASH_FILE_BYTES_MAX || len > SIM_FLASH_FILE_BYTES_MAX - off)
        return SAT_ERR_NO_SPACE;
    if (len == 0)
        return SAT_OK; /* like pwrite of nothing: no change, nothing pending */
    file = f->file;
    undo_len = off < file->cur.len ? file->cur.len - (size_t)off : 0;
    if (undo_len > len)
        undo_len = len;
    ret = buf_reserve(&file->cur, (size_t)(off + len));
    if (ret == SAT_OK)
        ret = file_prepare_op(file, undo_len, len);
    if (ret != SAT_OK)
        return ret;
    op = &file->ops[file->n_ops++];
    op->kind = SIM_OP_WRITE;
    op->off = off;
    op->len = len;
    op->old_len = file->cur.len;
    op->undo_off = file->undo.len;
    op->undo_len = undo_len;
    op->data_off = 0;
    /* Reserved above: neither append can fail. */
    if (undo_len > 0)
        (void)buf_append(&file->undo, file->cur.p + off, undo_len);
    if (file->pinned) {
        op->data_off = file->pin.len;
        (void)buf_append(&file->pin, buf, len);
    }
    buf_write_reserved(&file->cur, (size_t)off, buf, len);
    return SAT_OK;
}

static int sim_storage_sync(void *ctx, hal_file *f)
{
    struct sim_hal *s = ctx;
    int ret;
    if (!f || !handle_live(s, f))
        return SAT_ERR_POWER_CUT;
    ret = count_storage_op(s);
    if (ret != SAT_OK)
        return ret;
    /* cur becomes durable. */
    file_sync_ops(f->file);
    return SAT_OK;
}

static int sim_storage_truncate(void *ctx, hal_file *f, uint64_t size)
{
    struct sim_hal *s = ctx;
    struct sim_file *file;
    struct sim_op *op;
    size_t undo_len;
    int ret;
    if (!f || !handle_live(s, f))
        return SAT_ERR_POWER_CUT;
    ret = count_storage_op(s);
    if (ret != SAT_OK)
        return ret;
    if (size > SIM_FLASH_FILE_BYTES_MAX)
        return SAT_ERR_NO_SPACE;
    file = f->file;
    undo_len = size < file->cur.len ? file->cur.len - (size_t)size : 0;
    ret = buf_reserve(&file->cur, (size_t)size);
    if (ret == SAT_OK)
        ret = file_prepare_op(file, undo_len, 0);
    if (ret != SAT_OK)
        return ret;
    op = &file->ops[file->n_ops++];
    op->kind = SIM_OP_TRUNCATE;
    op->off = size;
    op->len = 0;
    op->old_len = file->cur.len;
    op->undo_off = file->undo.len;
    op->undo_len = undo_len;
    op->data_off = 0;
    if (undo_len > 0)
        (void)buf_append(&file->undo, file->cur.p + size, undo_len);
    buf_resize_reserved(&file->cur, (size_t)size);
    return SAT_OK;
}

static int sim_storage_size(void *ctx, hal_file *f, uint64_t *size)
{
    struct sim_hal *s = ctx;
    if (!f || !handle_live(s, f))
        return SAT_ERR_POWER_CUT;
    if (!size)
        return SAT_ERR_INVALID;
    *size = f->file->cur.len;
    return SAT_OK;
}

static int sim_storage_close(void *ctx, hal_file *f)
{
    struct sim_hal *s = ctx;
    struct sim_file *file;
    if (!f)
        return SAT_OK;
    file = f->file;
    handle_unlink(s, f);
    free(f);
    if (--file->refs == 0 && file->unlinked)
        file_free(file);
    return SAT_OK;
}

static int sim_storage_delete(void *ctx, const char *name)
{
    struct sim_hal *s = ctx;
    struct sim_file *file;
    int idx;
    if (s->powered_off)
        return SAT_ERR_POWER_CUT;
    if (!hal_storage_name_valid(name))
        return SAT_ERR_INVALID;
    idx = file_find(s, name);
    if (idx < 0)
        return SAT_ERR_NOT_FOUND;
    file = s->files[idx];
    s->files[idx] = NULL; /* durable at once */
    /* Like unlink(2): open handles keep working on the orphan until closed;
     * nothing they do reaches flash any more. */
    if (file->refs > 0)
        file->unlinked = 1;
    else
        file_free(file);
    return SAT_OK;
}

static int sim_storage_list(void *ctx, hal_list_fn fn, void *arg)
{
    struct sim_hal *s = ctx;
    /* A snapshot, so the callback may create or delete files. */
    char names[SIM_FLASH_FILES_MAX][HAL_FILE_NAME_BYTES_MAX + 1];
    int n = 0;
    int ret = SAT_OK;
    if (s->powered_off)
        return SAT_ERR_POWER_CUT;
    if (!fn)
        return SAT_ERR_INVALID;
    for (int i = 0; i < SIM_FLASH_FILES_MAX; i++)
        if (s->files[i])
            memcpy(names[n++], s->files[i]->name, sizeof names[0]);
    for (int i = 0; i < n && ret == SAT_OK; i++)
        ret = fn(arg, names[i]);
    return ret;
}

void sim_flash_install(struct hal *hal)
{
    hal->storage_open = sim_storage_open;
    hal->storage_read = sim_storage_read;
    hal->storage_write = sim_storage_write;
    hal->storage_sync = sim_storage_sync;
    hal->storage_truncate = sim_storage_truncate;
    hal->storage_size = sim_storage_size;
    hal->storage_close = sim_storage_close;
    hal->storage_delete = sim_storage_delete;
    hal->storage_list = sim_storage_list;
}

/* ---- power cuts and test access -------------------------------------------- */

void sim_flash_power_cut(struct sim_hal *s)
{
    for (int i = 0; i < SIM_FLASH_FILES_MAX; i++) {
        struct sim_file *f = s->files[i];
        if (f && f->n_ops > 0)
            file_replay_cut(s, f);
    }
    /* Deleted files still held by handles are gone; their pending writes
     * have nowhere to land. */
    for (struct hal_file *h = s->handles; h; h = h->next)
        if (h->file->unlinked)
            file_clear_ops(h->file);
}

void sim_flash_free(struct sim_hal *s)
{
    while (s->handles)
        sim_storage_close(s, s->handles);
    for (int i = 0; i < SIM_FLASH_FILES_MAX; i++)
        if (s->files[i])
            file_free(s->files[i]);
}

uint64_t sim_hal_storage_ops(const struct sim_hal *s)
{
    return s->storage_ops;
}

void sim_hal_cut_at(struct sim_hal *s, uint64_t nth)
{
    s->cut_countdown = nth;
}

int sim_hal_file_bytes(struct sim_hal *s, const char *name, uint8_t **bytes, size_t *len)
{
    int idx;
    struct sim_file *f;
    if (!name || !bytes || !len)
        return SAT_ERR_INVALID;
    idx = file_find(s, name);
    if (idx < 0)
        return SAT_ERR_NOT_FOUND;
    f = s->files[idx];
    /* The caller may edit the bytes in place: with operations pending, set
     * the durable bytes and their data aside first, so a cut loses the
     * edit. Without memory for that, a cut will keep it. */
    (void)file_pin(f);
    *bytes = f->cur.len > 0 ? f->cur.p : &s->empty_byte;
    *len = f->cur.len;
    return SAT_OK;
}
