/*
 * sim_hal.c - the HAL over virtual time and virtual flash (see sim_hal.h).
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
 *
 * Everything comes from one xoshiro256** stream seeded by splitmix64 from
 * the run's seed: entropy, the key store's secret and every cut decision.
 * Nothing here reads a real clock or the OS's randomness.
 *
 * Network model (struct sim_net). A connection is one struct sim_conn with
 * two ends (0: the connecting side, 1: the listening side) and two queues
 * of chunks, dir[e] holding what end e sent, each chunk stamped with its
 * arrival time when it is sent. Nothing is delivered by an event loop:
 * every call compares those stamps (and the connection's open and reset
 * times) with the network's virtual time, so the state at any time follows
 * from the stamps alone. An end is "released" when no socket will use it
 * again (closed, or its device powered off or freed); the connection is
 * freed when both ends are. The network has its own generator, so drawing
 * jitter and resets does not shift the devices' entropy.
 */
#include "sim_hal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_LOG_LINES_MAX 32
#define SIM_LOG_LINE_BYTES_MAX 256
#define SIM_OPS_INITIAL_CAP 16

/* Per-write outcome odds at a cut, out of SIM_CUT_CHOICES (test6.c-like). */
#define SIM_CUT_CHOICES 3u
enum sim_cut_choice { SIM_CUT_DROP = 0, SIM_CUT_APPLY = 1, SIM_CUT_TEAR = 2 };

/* ---- deterministic generator ------------------------------------------- */

struct sim_prng {
    uint64_t s[4];
};

static uint64_t splitmix64_next(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t v, unsigned k)
{
    return (v << k) | (v >> (64u - k));
}

static void prng_seed(struct sim_prng *p, uint64_t seed)
{
    uint64_t x = seed;
    for (unsigned i = 0; i < 4; i++)
        p->s[i] = splitmix64_next(&x);
    /* splitmix64 never yields four zero words in a row, but be explicit:
     * the all-zero state is xoshiro's one fixed point. */
    if ((p->s[0] | p->s[1] | p->s[2] | p->s[3]) == 0)
        p->s[0] = 1;
}

static uint64_t prng_next(struct sim_prng *p)
{
    uint64_t *s = p->s;
    uint64_t result = rotl64(s[1] * 5u, 7) * 9u;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

/* Uniform in [0, n), n > 0, without modulo bias. */
static uint64_t prng_below(struct sim_prng *p, uint64_t n)
{
    uint64_t threshold = (0u - n) % n; /* 2^64 mod n */
    for (;;) {
        uint64_t r = prng_next(p);
        if (r >= threshold)
            return r % n;
    }
}

static void prng_fill(struct sim_prng *p, uint8_t *buf, size_t len)
{
    while (len > 0) {
        uint64_t r = prng_next(p);
        for (unsigned i = 0; i < 8 && len > 0; i++, len--)
            *buf++ = (uint8_t)(r >> (8u * i));
    }
}

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

struct sim_log_line {
    enum hal_log_level level;
    char text[SIM_LOG_LINE_BYTES_MAX];
};

struct sim_net;

struct sim_hal {
    struct hal hal;
    struct sim_prng prng;

    /* Clocks: wall = wall_base_ms + wall_offset_ms + e + floor(e * drift / 1e6),
     * e = mono_ms - wall_base_mono (sim_hal.h). */
    uint64_t mono_ms;
    int64_t wall_base_ms;
    uint64_t wall_base_mono;
    int64_t wall_offset_ms;
    int32_t drift_ppm;
    int battery_pct; /* -1: no battery */

    struct sim_net *net;    /* NULL: not attached */
    size_t node;            /* index in net->nodes */
    struct hal_sock *socks; /* every socket not yet closed, dead ones included */

    struct sim_file *files[SIM_FLASH_FILES_MAX]; /* the directory */
    struct hal_file *handles;                    /* every open handle */
    uint64_t power_epoch;
    int powered_off;
    uint64_t storage_ops;
    uint64_t cut_countdown; /* 0: disarmed */
    uint8_t empty_byte;     /* what sim_hal_file_bytes points at for a 0-byte file */

    int have_secret;
    uint8_t secret[HAL_DEVICE_SECRET_BYTES];
    uint64_t counters[HAL_COUNTERS_MAX];

    int log_to_stderr;
    unsigned log_next;
    struct sim_log_line log_ring[SIM_LOG_LINES_MAX];
};

static void zeroize(void *p, size_t len)
{
    volatile uint8_t *v = p;
    while (len-- > 0)
        *v++ = 0;
}

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
            if (prng_below(&s->prng, 2) == 0)
                continue;
            /* Growth that cannot be allocated ends the replay: the power
             * died before it, which is a crash state like any other. */
            if (buf_reserve(d, (size_t)op->off) != SAT_OK)
                break;
            buf_resize_reserved(d, (size_t)op->off);
            continue;
        }
        switch ((enum sim_cut_choice)prng_below(&s->prng, SIM_CUT_CHOICES)) {
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
            uint64_t k = prng_below(&s->prng, inner + 1);
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
            prng_fill(&s->prng, d->p + cut, (size_t)(gend - cut));
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

/* ---- clock and entropy ----------------------------------------------------- */

static uint64_t sim_clock_monotonic_ms(void *ctx)
{
    struct sim_hal *s = ctx;
    return s->mono_ms;
}

static int64_t add_sat_i64(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

static int64_t sub_sat_i64(int64_t a, int64_t b)
{
    if (b < 0 && a > INT64_MAX + b)
        return INT64_MAX;
    if (b > 0 && a < INT64_MIN + b)
        return INT64_MIN;
    return a - b;
}

/* floor(x / 1e6) for |x| <= 1e12 (C division truncates toward zero). */
static int64_t floor_div_million(int64_t x)
{
    return x >= 0 ? x / 1000000 : -((-x + 999999) / 1000000);
}

static int64_t wall_now(const struct sim_hal *s)
{
    uint64_t eu = s->mono_ms - s->wall_base_mono;
    int64_t e = eu > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)eu;
    /* e * drift / 1e6 without overflow: split e = q * 1e6 + r. With
     * |drift| <= 1e6 the result's magnitude is at most e. */
    int64_t q = e / 1000000;
    int64_t r = e % 1000000;
    int64_t drift = q * s->drift_ppm + floor_div_million(r * s->drift_ppm);
    int64_t scaled = add_sat_i64(e, drift);
    return add_sat_i64(add_sat_i64(s->wall_base_ms, s->wall_offset_ms), scaled);
}

static int64_t sim_clock_wall_ms(void *ctx)
{
    return wall_now(ctx);
}

static int sim_entropy_fill(void *ctx, uint8_t *buf, size_t len)
{
    struct sim_hal *s = ctx;
    if (len > 0 && !buf)
        return SAT_ERR_INVALID;
    prng_fill(&s->prng, buf, len);
    return SAT_OK;
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

/* ---- key store ------------------------------------------------------------- */

static int sim_keystore_device_secret(void *ctx, uint8_t out[HAL_DEVICE_SECRET_BYTES])
{
    struct sim_hal *s = ctx;
    if (!out)
        return SAT_ERR_INVALID;
    if (!s->have_secret) {
        prng_fill(&s->prng, s->secret, sizeof s->secret);
        s->have_secret = 1;
    }
    memcpy(out, s->secret, sizeof s->secret);
    return SAT_OK;
}

static int sim_keystore_wipe(void *ctx)
{
    struct sim_hal *s = ctx;
    if (s->counters[HAL_COUNTER_KEY_EPOCH] == UINT64_MAX)
        return SAT_ERR_INVALID;
    zeroize(s->secret, sizeof s->secret);
    s->have_secret = 0;
    s->counters[HAL_COUNTER_KEY_EPOCH]++;
    return SAT_OK;
}

static int sim_keystore_counter_read(void *ctx, unsigned slot, uint64_t *value)
{
    struct sim_hal *s = ctx;
    if (slot >= HAL_COUNTERS_MAX || !value)
        return SAT_ERR_INVALID;
    *value = s->counters[slot];
    return SAT_OK;
}

static int sim_keystore_counter_advance(void *ctx, unsigned slot, uint64_t value)
{
    struct sim_hal *s = ctx;
    if (slot >= HAL_COUNTERS_MAX || value < s->counters[slot])
        return SAT_ERR_INVALID;
    s->counters[slot] = value;
    return SAT_OK;
}

/* ---- power ----------------------------------------------------------------- */

static int sim_power_battery_pct(void *ctx, int *pct)
{
    struct sim_hal *s = ctx;
    if (!pct)
        return SAT_ERR_INVALID;
    if (s->battery_pct < 0)
        return SAT_ERR_NOT_SUPPORTED; /* mains powered, as hal.h says */
    *pct = s->battery_pct;
    return SAT_OK;
}

/* ---- virtual network: state -------------------------------------------- */

#define NET_PER_MILLE 1000u
#define NET_PORT_LAST 65535u
#define NET_PORTS_EPHEMERAL (NET_PORT_LAST - SIM_NET_PORT_EPHEMERAL_FIRST + 1u)
/* Mixed into the network's seed so that a network and a device given the
 * same seed do not draw the same stream. */
#define NET_SEED_MIX 0x6e6574776f726b21u

struct sim_chunk {
    struct sim_chunk *next;
    uint64_t arrival_ms;
    size_t len;
    size_t off; /* bytes of it already read */
    uint8_t data[];
};

struct sim_dir {
    struct sim_chunk *head;
    struct sim_chunk *tail;
    size_t unread;            /* queued: in flight or arrived, not yet read */
    uint64_t last_arrival_ms; /* no later chunk may arrive before this */
};

struct sim_end {
    size_t node;
    uint16_t port;
    int released;          /* no socket will use this end again */
    int closed;            /* released by net_close: the peer sees a clean end */
    uint64_t fin_ms;       /* closed: when the peer learns it */
    struct hal_sock *sock; /* NULL before accept and once released */
};

struct sim_conn {
    struct sim_conn *prev;
    struct sim_conn *next;
    uint64_t seq; /* creation order, for ties */
    int loopback;
    uint64_t open_ms; /* when the connect's outcome is known */
    int open_err;     /* that outcome */
    uint64_t reset_ms; /* UINT64_MAX: not reset */
    struct hal_sock *listener; /* end 1 waits to be accepted there */
    struct sim_end end[2];
    struct sim_dir dir[2]; /* dir[e]: bytes sent by end e */
};

struct sim_node {
    char addr[SIM_NET_ADDR_BYTES_MAX + 1];
    struct sim_hal *h; /* NULL while no device is attached */
    struct sim_link link;
    struct sim_net_stats stats;
    uint64_t tx_free_ms; /* uplink busy until (bandwidth-limited links) */
    uint64_t rx_free_ms; /* downlink busy until */
    uint32_t next_port;
    unsigned conn_ends; /* unreleased connection ends on this node */
};

struct sim_net {
    struct sim_prng prng;
    uint64_t now_ms;
    uint64_t next_seq;
    struct sim_node *nodes;
    size_t n_nodes;
    size_t cap_nodes;
    struct sim_conn *conns; /* oldest first */
    struct sim_conn *conns_tail;
};

struct hal_sock {
    struct sim_hal *owner;
    struct hal_sock *prev;
    struct hal_sock *next;
    uint64_t epoch; /* owner's power epoch when made: stale means dead */
    int listening;
    uint16_t port;         /* local port */
    struct sim_conn *conn; /* stream: NULL once its end is released */
    unsigned end;          /* stream: which end of conn */
    int reset_counted;
};

static uint64_t add_sat_u64(uint64_t a, uint64_t b)
{
    return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static const char *const net_loopback_names[] = { "127.0.0.1", "localhost", "::1" };
static const char *const net_any_names[] = { "0.0.0.0", "::" };

static int name_in(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0)
            return 1;
    return 0;
}

static int net_is_loopback(const char *host)
{
    return name_in(host, net_loopback_names,
                   sizeof net_loopback_names / sizeof net_loopback_names[0]);
}

static int net_addr_valid(const char *addr)
{
    size_t n = addr ? strlen(addr) : 0;
    if (n == 0 || n > SIM_NET_ADDR_BYTES_MAX || net_is_loopback(addr) ||
        name_in(addr, net_any_names, sizeof net_any_names / sizeof net_any_names[0]))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = addr[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-' || c == ':';
        if (!ok)
            return 0;
    }
    return 1;
}

/* Index of the node named addr, or -1. */
static long net_find_node(const struct sim_net *n, const char *addr)
{
    for (size_t i = 0; i < n->n_nodes; i++)
        if (strcmp(n->nodes[i].addr, addr) == 0)
            return (long)i;
    return -1;
}

static int sock_live(const struct sim_hal *s, const struct hal_sock *sk)
{
    return !s->powered_off && sk->epoch == s->power_epoch;
}

/* The live listener of node on port, or NULL. */
static struct hal_sock *net_find_listener(const struct sim_net *n, size_t node, uint16_t port)
{
    const struct sim_hal *h = n->nodes[node].h;
    if (!h)
        return NULL;
    for (struct hal_sock *sk = h->socks; sk; sk = sk->next)
        if (sk->listening && sk->port == port && sock_live(h, sk))
            return sk;
    return NULL;
}

static unsigned net_count_listeners(const struct sim_net *n, size_t node)
{
    const struct sim_hal *h = n->nodes[node].h;
    unsigned count = 0;
    for (struct hal_sock *sk = h ? h->socks : NULL; sk; sk = sk->next)
        if (sk->listening && sock_live(h, sk))
            count++;
    return count;
}

/* The next ephemeral port of node that no listener of it holds, or 0. */
static uint16_t net_next_port(struct sim_net *n, size_t node)
{
    struct sim_node *nd = &n->nodes[node];
    for (uint32_t i = 0; i < NET_PORTS_EPHEMERAL; i++) {
        uint16_t p = (uint16_t)nd->next_port;
        nd->next_port = p == NET_PORT_LAST ? SIM_NET_PORT_EPHEMERAL_FIRST : p + 1u;
        if (!net_find_listener(n, node, p))
            return p;
    }
    return 0;
}

/* ---- virtual network: connections --------------------------------------- */

static void dir_free_chunks(struct sim_dir *d)
{
    while (d->head) {
        struct sim_chunk *c = d->head;
        d->head = c->next;
        free(c);
    }
    d->tail = NULL;
    d->unread = 0;
}

static void conn_free(struct sim_net *n, struct sim_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        n->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        n->conns_tail = c->prev;
    dir_free_chunks(&c->dir[0]);
    dir_free_chunks(&c->dir[1]);
    free(c);
}

/* Resets c from time t on (the earliest reset wins). */
static void conn_reset(struct sim_net *n, struct sim_conn *c, uint64_t t)
{
    if (t < c->reset_ms)
        c->reset_ms = t;
    if (c->reset_ms <= n->now_ms) {
        dir_free_chunks(&c->dir[0]);
        dir_free_chunks(&c->dir[1]);
    }
}

/* 1 if c is reset at the current time (its unread bytes are then gone). */
static int conn_is_reset(struct sim_net *n, struct sim_conn *c)
{
    if (c->reset_ms > n->now_ms)
        return 0;
    dir_free_chunks(&c->dir[0]);
    dir_free_chunks(&c->dir[1]);
    return 1;
}

/* Releases end e of c; frees c when both ends are released. Returns 1 if c
 * was freed (the caller must not touch it again). */
static int end_release(struct sim_net *n, struct sim_conn *c, unsigned e)
{
    struct sim_end *end = &c->end[e];
    if (end->released)
        return 0;
    end->released = 1;
    n->nodes[end->node].conn_ends--;
    if (end->sock) {
        end->sock->conn = NULL;
        end->sock = NULL;
    }
    if (e == 1)
        c->listener = NULL;
    dir_free_chunks(&c->dir[1u - e]); /* nobody will read them */
    if (c->end[0].released && c->end[1].released) {
        conn_free(n, c);
        return 1;
    }
    return 0;
}

/* Jitter in [0, range], drawn only when range > 0. */
static uint64_t net_jitter(struct sim_net *n, uint64_t range)
{
    return range == 0 ? 0 : prng_below(&n->prng, range + 1u);
}

static uint64_t net_one_way_ms(struct sim_net *n, size_t a, size_t b)
{
    const struct sim_link *la = &n->nodes[a].link;
    const struct sim_link *lb = &n->nodes[b].link;
    uint64_t lat = (uint64_t)la->latency_ms + lb->latency_ms;
    return lat + net_jitter(n, (uint64_t)la->jitter_ms + lb->jitter_ms);
}

static uint64_t ceil_div_u64(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* The arrival time of len bytes (0: the close) that end e of c sends now,
 * with the draws and bandwidth bookkeeping of sim_hal.h's link model. */
static uint64_t net_arrival_ms(struct sim_net *n, struct sim_conn *c, unsigned e, size_t len)
{
    struct sim_dir *d = &c->dir[e];
    uint64_t t = n->now_ms;
    if (!c->loopback) {
        struct sim_node *na = &n->nodes[c->end[e].node];
        struct sim_node *nb = &n->nodes[c->end[1u - e].node];
        if (len > 0 && na->link.bytes_per_ms > 0) {
            t = max_u64(t, na->tx_free_ms) + ceil_div_u64(len, na->link.bytes_per_ms);
            na->tx_free_ms = t;
        }
        t = add_sat_u64(t, net_one_way_ms(n, c->end[e].node, c->end[1u - e].node));
        if (len > 0 && nb->link.bytes_per_ms > 0) {
            t = add_sat_u64(max_u64(t, nb->rx_free_ms), ceil_div_u64(len, nb->link.bytes_per_ms));
            nb->rx_free_ms = t;
        }
    }
    t = max_u64(t, d->last_arrival_ms);
    d->last_arrival_ms = t;
    if (len > 0 && !c->loopback) {
        const struct sim_node *ends[2] = { &n->nodes[c->end[e].node],
                                           &n->nodes[c->end[1u - e].node] };
        for (unsigned i = 0; i < 2; i++) {
            uint32_t pm = ends[i]->link.reset_per_mille;
            if (pm > 0 && prng_below(&n->prng, NET_PER_MILLE) < pm)
                conn_reset(n, c, t);
        }
    }
    return t;
}

/* Resets and releases every connection end on node (power cut, detach). */
static void net_drop_node(struct sim_net *n, size_t node)
{
    struct sim_conn *next;
    for (struct sim_conn *c = n->conns; c; c = next) {
        next = c->next;
        if (c->end[0].node != node && c->end[1].node != node)
            continue;
        conn_reset(n, c, n->now_ms);
        if (c->end[0].node == node && end_release(n, c, 0))
            continue;
        if (c->end[1].node == node)
            end_release(n, c, 1);
    }
}

static void net_detach(struct sim_hal *s)
{
    struct sim_net *n = s->net;
    net_drop_node(n, s->node);
    n->nodes[s->node].h = NULL;
    s->net = NULL;
    for (struct hal_sock *sk = s->socks; sk; sk = sk->next)
        sk->conn = NULL;
}

/* ---- virtual network: the HAL's net members ------------------------------ */

enum sock_kind { SOCK_ANY = -1, SOCK_STREAM = 0, SOCK_LISTENER = 1 };

static int sock_check(struct sim_hal *s, hal_sock *sk, enum sock_kind kind)
{
    if (!s->net)
        return SAT_ERR_NOT_SUPPORTED;
    if (!sk || sk->owner != s)
        return SAT_ERR_INVALID;
    if (!sock_live(s, sk))
        return SAT_ERR_POWER_CUT;
    if (kind != SOCK_ANY && sk->listening != (int)kind)
        return SAT_ERR_INVALID;
    return SAT_OK;
}

static void note_reset(struct sim_hal *s, hal_sock *sk)
{
    if (!sk->reset_counted) {
        sk->reset_counted = 1;
        s->net->nodes[s->node].stats.resets++;
    }
}

/* What net_send (sending) or net_recv would answer now on a live stream
 * socket: SAT_OK when it can move bytes, else the answer. No side effects
 * beyond dropping a reset connection's bytes. */
static int stream_state(struct sim_hal *s, hal_sock *sk, int sending)
{
    struct sim_net *n = s->net;
    struct sim_conn *c = sk->conn;
    const struct sim_end *peer;
    const struct sim_dir *d;
    if (!c || conn_is_reset(n, c))
        return SAT_ERR_RESET;
    if (n->now_ms < c->open_ms)
        return SAT_ERR_WOULD_BLOCK;
    if (c->open_err != SAT_OK)
        return c->open_err;
    peer = &c->end[1u - sk->end];
    if (sending) {
        if (peer->closed && n->now_ms >= peer->fin_ms)
            return SAT_ERR_RESET; /* as EPIPE: the peer is gone */
        if (peer->released)
            return SAT_OK; /* bytes are dropped: no back-pressure */
        return c->dir[sk->end].unread < SIM_NET_CONN_BUFFER_BYTES_MAX ? SAT_OK
                                                                        : SAT_ERR_WOULD_BLOCK;
    }
    d = &c->dir[1u - sk->end];
    if (d->head && d->head->arrival_ms <= n->now_ms)
        return SAT_OK;
    if (!d->head && peer->closed && n->now_ms >= peer->fin_ms)
        return SAT_ERR_CLOSED;
    return SAT_ERR_WOULD_BLOCK;
}

static int sock_new(struct sim_hal *s, hal_sock **out)
{
    struct hal_sock *sk = calloc(1, sizeof *sk);
    if (!sk)
        return SAT_ERR_NO_MEMORY;
    sk->owner = s;
    sk->epoch = s->power_epoch;
    sk->next = s->socks;
    if (s->socks)
        s->socks->prev = sk;
    s->socks = sk;
    *out = sk;
    return SAT_OK;
}

static int sim_net_connect(void *ctx, const char *host, uint16_t port, hal_sock **out)
{
    struct sim_hal *s = ctx;
    struct sim_net *n = s->net;
    struct sim_node *self;
    struct sim_node *tgt;
    struct hal_sock *listener = NULL;
    struct hal_sock *sk = NULL;
    struct sim_conn *c;
    size_t target;
    int loopback;
    if (!n)
        return SAT_ERR_NOT_SUPPORTED;
    if (s->powered_off)
        return SAT_ERR_POWER_CUT;
    if (!host || !out)
        return SAT_ERR_INVALID;
    self = &n->nodes[s->node];
    loopback = net_is_loopback(host) || strcmp(host, self->addr) == 0;
    if (loopback) {
        target = s->node;
    } else {
        long idx = net_find_node(n, host);
        if (idx < 0 || !n->nodes[idx].h || !self->link.up)
            return SAT_ERR_UNREACHABLE;
        target = (size_t)idx;
    }
    if (self->conn_ends >= SIM_NET_NODE_CONNS_MAX)
        return SAT_ERR_NO_MEMORY;
    c = calloc(1, sizeof *c);
    if (!c || sock_new(s, &sk) != SAT_OK) {
        free(c);
        return SAT_ERR_NO_MEMORY;
    }
    tgt = &n->nodes[target];
    c->seq = n->next_seq++;
    c->loopback = loopback;
    c->reset_ms = UINT64_MAX;
    c->end[0].node = s->node;
    c->end[0].port = net_next_port(n, s->node);
    c->end[0].sock = sk;
    c->end[1].node = target;
    c->end[1].port = port;
    self->conn_ends++;
    /* The outcome is decided now; only its time lies ahead. */
    if (!loopback && (!tgt->link.up || tgt->h->powered_off))
        c->open_err = SAT_ERR_UNREACHABLE;
    else if (!(listener = net_find_listener(n, target, port)) ||
             tgt->conn_ends >= SIM_NET_NODE_CONNS_MAX)
        c->open_err = SAT_ERR_REFUSED;
    else {
        unsigned waiting = 0;
        for (const struct sim_conn *o = n->conns; o; o = o->next)
            waiting += o->listener == listener;
        if (waiting >= SIM_NET_LISTEN_BACKLOG_MAX)
            c->open_err = SAT_ERR_REFUSED;
    }
    if (c->open_err != SAT_OK) {
        c->end[1].released = 1; /* never existed */
        /* Refused or unreachable: the answer comes back, a round trip. */
        uint64_t rtt = 0;
        if (!loopback) {
            rtt = net_one_way_ms(n, s->node, target);
            rtt = add_sat_u64(rtt, net_one_way_ms(n, target, s->node));
        }
        c->open_ms = add_sat_u64(n->now_ms, rtt);
    } else {
        c->listener = listener;
        tgt->conn_ends++;
        c->open_ms = loopback ? n->now_ms
                              : add_sat_u64(n->now_ms, net_one_way_ms(n, s->node, target));
    }
    /* Nothing travels before the connection is up. */
    c->dir[0].last_arrival_ms = c->open_ms;
    c->dir[1].last_arrival_ms = c->open_ms;
    c->prev = n->conns_tail;
    if (n->conns_tail)
        n->conns_tail->next = c;
    else
        n->conns = c;
    n->conns_tail = c;
    sk->conn = c;
    sk->end = 0;
    sk->port = c->end[0].port;
    n->nodes[s->node].stats.connects++;
    *out = sk;
    return SAT_OK;
}

static int sim_net_connect_status(void *ctx, hal_sock *sk)
{
    struct sim_hal *s = ctx;
    struct sim_conn *c;
    int ret = sock_check(s, sk, SOCK_STREAM);
    if (ret != SAT_OK)
        return ret;
    c = sk->conn;
    if (!c || conn_is_reset(s->net, c))
        ret = SAT_ERR_RESET;
    else if (s->net->now_ms < c->open_ms)
        ret = SAT_ERR_WOULD_BLOCK;
    else
        ret = c->open_err;
    if (ret == SAT_ERR_RESET)
        note_reset(s, sk);
    return ret;
}

static int sim_net_listen(void *ctx, const char *host, uint16_t port, hal_sock **out)
{
    struct sim_hal *s = ctx;
    struct sim_net *n = s->net;
    int ret;
    if (!n)
        return SAT_ERR_NOT_SUPPORTED;
    if (s->powered_off)
        return SAT_ERR_POWER_CUT;
    if (!out)
        return SAT_ERR_INVALID;
    if (host && host[0] != '\0' && !net_is_loopback(host) &&
        !name_in(host, net_any_names, sizeof net_any_names / sizeof net_any_names[0]) &&
        strcmp(host, n->nodes[s->node].addr) != 0)
        return SAT_ERR_INVALID;
    if (net_count_listeners(n, s->node) >= SIM_NET_NODE_LISTENERS_MAX)
        return SAT_ERR_NO_MEMORY;
    if (port == 0) {
        port = net_next_port(n, s->node);
        if (port == 0)
            return SAT_ERR_EXISTS;
    } else if (net_find_listener(n, s->node, port)) {
        return SAT_ERR_EXISTS;
    }
    ret = sock_new(s, out);
    if (ret != SAT_OK)
        return ret;
    (*out)->listening = 1;
    (*out)->port = port;
    return SAT_OK;
}

/* The connection waiting in listener l that came up first, if any; drops
 * the ones reset before being accepted when drop is set. */
static struct sim_conn *listener_ready(struct sim_net *n, const hal_sock *l, int drop)
{
    struct sim_conn *best = NULL;
    struct sim_conn *next;
    for (struct sim_conn *c = n->conns; c; c = next) {
        next = c->next;
        if (c->listener != l)
            continue;
        if (c->reset_ms <= n->now_ms) {
            if (drop)
                end_release(n, c, 1);
            continue;
        }
        if (c->open_ms <= n->now_ms && (!best || c->open_ms < best->open_ms))
            best = c; /* the list is in creation order: ties keep the first */
    }
    return best;
}

static int sim_net_accept(void *ctx, hal_sock *l, hal_sock **out)
{
    struct sim_hal *s = ctx;
    struct sim_conn *c;
    hal_sock *sk = NULL;
    int ret = sock_check(s, l, SOCK_LISTENER);
    if (ret != SAT_OK)
        return ret;
    if (!out)
        return SAT_ERR_INVALID;
    c = listener_ready(s->net, l, 1);
    if (!c)
        return SAT_ERR_WOULD_BLOCK;
    ret = sock_new(s, &sk);
    if (ret != SAT_OK)
        return ret;
    c->listener = NULL;
    c->end[1].sock = sk;
    sk->conn = c;
    sk->end = 1;
    sk->port = c->end[1].port;
    s->net->nodes[s->node].stats.accepts++;
    *out = sk;
    return SAT_OK;
}

static int sim_net_local_port(void *ctx, hal_sock *sk, uint16_t *port)
{
    struct sim_hal *s = ctx;
    int ret = sock_check(s, sk, SOCK_ANY);
    if (ret != SAT_OK)
        return ret;
    if (!port)
        return SAT_ERR_INVALID;
    *port = sk->port;
    return SAT_OK;
}

static int sim_net_send(void *ctx, hal_sock *sk, const void *buf, size_t len, size_t *sent)
{
    struct sim_hal *s = ctx;
    struct sim_net *n = s->net;
    struct sim_conn *c;
    const uint8_t *p = buf;
    size_t room;
    size_t done = 0;
    int drop;
    int ret = sock_check(s, sk, SOCK_STREAM);
    if (ret != SAT_OK)
        return ret;
    if (!sent || (len > 0 && !buf))
        return SAT_ERR_INVALID;
    ret = stream_state(s, sk, 1);
    if (ret == SAT_ERR_RESET)
        note_reset(s, sk);
    if (ret != SAT_OK)
        return ret;
    c = sk->conn;
    drop = c->end[1u - sk->end].released;
    room = drop ? len : SIM_NET_CONN_BUFFER_BYTES_MAX - c->dir[sk->end].unread;
    if (len > room)
        len = room;
    while (done < len) {
        size_t k = len - done < SIM_NET_CHUNK_BYTES_MAX ? len - done : SIM_NET_CHUNK_BYTES_MAX;
        struct sim_chunk *ch = NULL;
        uint64_t at;
        if (!drop) {
            ch = malloc(sizeof *ch + k);
            if (!ch)
                break;
        }
        /* Dropped bytes still take the link's time (they were sent). */
        at = net_arrival_ms(n, c, sk->end, k);
        if (ch) {
            struct sim_dir *d = &c->dir[sk->end];
            ch->next = NULL;
            ch->arrival_ms = at;
            ch->len = k;
            ch->off = 0;
            memcpy(ch->data, p + done, k);
            if (d->tail)
                d->tail->next = ch;
            else
                d->head = ch;
            d->tail = ch;
            d->unread += k;
        }
        done += k;
    }
    if (done == 0 && len > 0)
        return SAT_ERR_NO_MEMORY;
    n->nodes[s->node].stats.bytes_sent += done;
    *sent = done;
    return SAT_OK;
}

static int sim_net_recv(void *ctx, hal_sock *sk, void *buf, size_t len, size_t *got)
{
    struct sim_hal *s = ctx;
    struct sim_net *n = s->net;
    struct sim_dir *d;
    uint8_t *p = buf;
    size_t done = 0;
    int ret = sock_check(s, sk, SOCK_STREAM);
    if (ret != SAT_OK)
        return ret;
    if (!got || (len > 0 && !buf))
        return SAT_ERR_INVALID;
    ret = stream_state(s, sk, 0);
    if (ret == SAT_ERR_RESET)
        note_reset(s, sk);
    if (ret != SAT_OK)
        return ret;
    d = &sk->conn->dir[1u - sk->end];
    while (done < len && d->head && d->head->arrival_ms <= n->now_ms) {
        struct sim_chunk *ch = d->head;
        size_t k = ch->len - ch->off;
        if (k > len - done)
            k = len - done;
        memcpy(p + done, ch->data + ch->off, k);
        ch->off += k;
        done += k;
        d->unread -= k;
        if (ch->off == ch->len) {
            d->head = ch->next;
            if (!d->head)
                d->tail = NULL;
            free(ch);
        }
    }
    n->nodes[s->node].stats.bytes_received += done;
    *got = done;
    return SAT_OK;
}

static int sim_net_close(void *ctx, hal_sock *sk)
{
    struct sim_hal *s = ctx;
    struct sim_net *n = s->net;
    if (!sk)
        return SAT_OK;
    if (sk->owner != s)
        return SAT_ERR_INVALID; /* not ours: freeing it would corrupt its owner */
    if (n && sk->conn) {
        struct sim_conn *c = sk->conn;
        unsigned e = sk->end;
        if (!conn_is_reset(n, c) && c->open_err == SAT_OK) {
            c->end[e].closed = 1;
            c->end[e].fin_ms = net_arrival_ms(n, c, e, 0);
        }
        end_release(n, c, e);
    } else if (n && sk->listening && sock_live(s, sk)) {
        struct sim_conn *next;
        for (struct sim_conn *c = n->conns; c; c = next) {
            next = c->next;
            if (c->listener != sk)
                continue;
            conn_reset(n, c, n->now_ms);
            end_release(n, c, 1);
        }
    }
    if (sk->prev)
        sk->prev->next = sk->next;
    else
        s->socks = sk->next;
    if (sk->next)
        sk->next->prev = sk->prev;
    free(sk);
    return SAT_OK;
}

static int sim_net_wait(void *ctx, hal_sock *const *socks, const unsigned *want, unsigned *ready,
                        size_t count, uint32_t timeout_ms)
{
    struct sim_hal *s = ctx;
    int any = 0;
    (void)timeout_ms; /* never sleeps: the simulator moves time */
    if (!s->net)
        return SAT_ERR_NOT_SUPPORTED;
    if (s->powered_off)
        return SAT_ERR_POWER_CUT;
    if (count > 0 && (!socks || !want || !ready))
        return SAT_ERR_INVALID;
    for (size_t i = 0; i < count; i++)
        if (!socks[i] || socks[i]->owner != s)
            return SAT_ERR_INVALID;
    for (size_t i = 0; i < count; i++) {
        hal_sock *sk = socks[i];
        unsigned r = 0;
        if (!sock_live(s, sk)) {
            r = want[i] & (HAL_NET_READABLE | HAL_NET_WRITABLE); /* the call will say */
        } else if (sk->listening) {
            if ((want[i] & HAL_NET_READABLE) && listener_ready(s->net, sk, 0))
                r |= HAL_NET_READABLE;
        } else {
            if ((want[i] & HAL_NET_READABLE) && stream_state(s, sk, 0) != SAT_ERR_WOULD_BLOCK)
                r |= HAL_NET_READABLE;
            if ((want[i] & HAL_NET_WRITABLE) && stream_state(s, sk, 1) != SAT_ERR_WOULD_BLOCK)
                r |= HAL_NET_WRITABLE;
        }
        ready[i] = r;
        any |= r != 0;
    }
    return any ? SAT_OK : SAT_ERR_TIMEOUT;
}

static int sim_net_link_up(void *ctx)
{
    struct sim_hal *s = ctx;
    if (!s->net || s->powered_off)
        return 0;
    return s->net->nodes[s->node].link.up ? 1 : 0;
}

/* ---- log ------------------------------------------------------------------- */

static void sim_log(void *ctx, enum hal_log_level level, const char *msg)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    struct sim_hal *s = ctx;
    struct sim_log_line *line = &s->log_ring[s->log_next];
    const char *lv = (unsigned)level < 4 ? names[level] : "?";
    if (!msg)
        return;
    line->level = level;
    snprintf(line->text, sizeof line->text, "%s", msg);
    s->log_next = (s->log_next + 1) % SIM_LOG_LINES_MAX;
    if (s->log_to_stderr)
        fprintf(stderr, "sim t=%llu ms %s: %s\n", (unsigned long long)s->mono_ms, lv, msg);
}

/* ---- public ---------------------------------------------------------------- */

int sim_hal_new(struct sim_hal **out, uint64_t seed, int64_t wall_start_ms)
{
    struct sim_hal *s;
    if (!out)
        return SAT_ERR_INVALID;
    s = calloc(1, sizeof *s);
    if (!s)
        return SAT_ERR_NO_MEMORY;
    prng_seed(&s->prng, seed);
    s->wall_base_ms = wall_start_ms;
    s->battery_pct = -1;
    s->log_to_stderr = getenv("SATCHEL_SIM_LOG") != NULL;

    s->hal.version = HAL_VERSION;
    s->hal.ctx = s;
    s->hal.clock_monotonic_ms = sim_clock_monotonic_ms;
    s->hal.clock_wall_ms = sim_clock_wall_ms;
    s->hal.entropy_fill = sim_entropy_fill;
    s->hal.storage_open = sim_storage_open;
    s->hal.storage_read = sim_storage_read;
    s->hal.storage_write = sim_storage_write;
    s->hal.storage_sync = sim_storage_sync;
    s->hal.storage_truncate = sim_storage_truncate;
    s->hal.storage_size = sim_storage_size;
    s->hal.storage_close = sim_storage_close;
    s->hal.storage_delete = sim_storage_delete;
    s->hal.storage_list = sim_storage_list;
    s->hal.keystore_device_secret = sim_keystore_device_secret;
    s->hal.keystore_wipe = sim_keystore_wipe;
    s->hal.keystore_counter_read = sim_keystore_counter_read;
    s->hal.keystore_counter_advance = sim_keystore_counter_advance;
    /* The net members answer NOT_SUPPORTED themselves until sim_net_attach;
     * power_battery_pct until sim_hal_set_battery. */
    s->hal.net_connect = sim_net_connect;
    s->hal.net_connect_status = sim_net_connect_status;
    s->hal.net_listen = sim_net_listen;
    s->hal.net_accept = sim_net_accept;
    s->hal.net_local_port = sim_net_local_port;
    s->hal.net_send = sim_net_send;
    s->hal.net_recv = sim_net_recv;
    s->hal.net_close = sim_net_close;
    s->hal.net_wait = sim_net_wait;
    s->hal.net_link_up = sim_net_link_up;
    s->hal.power_battery_pct = sim_power_battery_pct;
    s->hal.log = sim_log;
    /* boot_*: NULL, so the wrappers answer NOT_SUPPORTED. */
    *out = s;
    return SAT_OK;
}

void sim_hal_free(struct sim_hal *s)
{
    if (!s)
        return;
    if (s->net)
        net_detach(s);
    while (s->socks)
        sim_net_close(s, s->socks);
    while (s->handles)
        sim_storage_close(s, s->handles);
    for (int i = 0; i < SIM_FLASH_FILES_MAX; i++)
        if (s->files[i])
            file_free(s->files[i]);
    zeroize(s, sizeof *s);
    free(s);
}

const struct hal *sim_hal_hal(struct sim_hal *s)
{
    return &s->hal;
}

void sim_hal_advance_ms(struct sim_hal *s, uint64_t ms)
{
    s->mono_ms = ms > UINT64_MAX - s->mono_ms ? UINT64_MAX : s->mono_ms + ms;
}

void sim_hal_set_wall_ms(struct sim_hal *s, int64_t wall_ms)
{
    s->wall_base_ms = sub_sat_i64(wall_ms, s->wall_offset_ms);
    s->wall_base_mono = s->mono_ms;
}

int sim_hal_set_clock_skew(struct sim_hal *s, int64_t offset_ms, int32_t drift_ppm)
{
    if (drift_ppm < -1000000 || drift_ppm > 1000000)
        return SAT_ERR_INVALID;
    s->wall_offset_ms = offset_ms;
    s->drift_ppm = drift_ppm;
    return SAT_OK;
}

void sim_hal_set_battery(struct sim_hal *s, int pct)
{
    s->battery_pct = pct < 0 ? -1 : pct > 100 ? 100 : pct;
}

uint64_t sim_hal_storage_ops(const struct sim_hal *s)
{
    return s->storage_ops;
}

void sim_hal_cut_at(struct sim_hal *s, uint64_t nth)
{
    s->cut_countdown = nth;
}

int sim_hal_powered_off(const struct sim_hal *s)
{
    return s->powered_off;
}

void sim_hal_power_cut(struct sim_hal *s)
{
    if (s->powered_off)
        return;
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
    /* Every connection of the device dies with it; its sockets hold no
     * connection any more, and the epoch makes them dead. */
    if (s->net)
        net_drop_node(s->net, s->node);
    s->power_epoch++;
    s->powered_off = 1;
    s->cut_countdown = 0;
}

void sim_hal_power_on(struct sim_hal *s)
{
    s->powered_off = 0;
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

/* ---- virtual network: public ---------------------------------------------- */

int sim_net_new(struct sim_net **out, uint64_t seed)
{
    struct sim_net *n;
    if (!out)
        return SAT_ERR_INVALID;
    n = calloc(1, sizeof *n);
    if (!n)
        return SAT_ERR_NO_MEMORY;
    prng_seed(&n->prng, seed ^ NET_SEED_MIX);
    *out = n;
    return SAT_OK;
}

void sim_net_free(struct sim_net *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n_nodes; i++)
        if (n->nodes[i].h)
            net_detach(n->nodes[i].h);
    while (n->conns) /* none should be left: every end was released */
        conn_free(n, n->conns);
    free(n->nodes);
    free(n);
}

int sim_net_attach(struct sim_net *n, struct sim_hal *h, const char *addr)
{
    long idx;
    struct sim_node *nd;
    if (!n || !h || h->net || !net_addr_valid(addr))
        return SAT_ERR_INVALID;
    idx = net_find_node(n, addr);
    if (idx >= 0 && n->nodes[idx].h)
        return SAT_ERR_EXISTS;
    if (idx < 0) {
        if (n->n_nodes >= SIM_NET_NODES_MAX)
            return SAT_ERR_NO_MEMORY;
        if (n->n_nodes == n->cap_nodes) {
            size_t cap = n->cap_nodes ? n->cap_nodes * 2 : 8;
            struct sim_node *nodes = realloc(n->nodes, cap * sizeof *nodes);
            if (!nodes)
                return SAT_ERR_NO_MEMORY;
            n->nodes = nodes;
            n->cap_nodes = cap;
        }
        idx = (long)n->n_nodes++;
        nd = &n->nodes[idx];
        memset(nd, 0, sizeof *nd);
        memcpy(nd->addr, addr, strlen(addr) + 1);
        nd->link.up = 1;
        nd->next_port = SIM_NET_PORT_EPHEMERAL_FIRST;
    }
    n->nodes[idx].h = h;
    h->net = n;
    h->node = (size_t)idx;
    return SAT_OK;
}

void sim_net_set_now(struct sim_net *n, uint64_t now_ms)
{
    if (now_ms > n->now_ms)
        n->now_ms = now_ms;
}

uint64_t sim_net_now_ms(const struct sim_net *n)
{
    return n->now_ms;
}

uint64_t sim_net_next_event_ms(const struct sim_net *n)
{
    uint64_t now = n->now_ms;
    uint64_t best = UINT64_MAX;
    for (const struct sim_conn *c = n->conns; c; c = c->next) {
        if (c->reset_ms <= now)
            continue; /* nothing more will happen on it */
        best = c->reset_ms < best ? c->reset_ms : best;
        if (c->open_ms > now && c->open_ms < best)
            best = c->open_ms;
        for (unsigned e = 0; e < 2; e++) {
            const struct sim_end *peer = &c->end[1u - e];
            if (peer->released)
                continue; /* nobody reads what e sends */
            /* Chunks arrive in order: the first one still ahead is next. */
            for (const struct sim_chunk *ch = c->dir[e].head; ch; ch = ch->next)
                if (ch->arrival_ms > now) {
                    best = ch->arrival_ms < best ? ch->arrival_ms : best;
                    break;
                }
            if (c->end[e].closed && c->end[e].fin_ms > now && c->end[e].fin_ms < best)
                best = c->end[e].fin_ms;
        }
    }
    return best;
}

int sim_net_set_link(struct sim_net *n, const char *addr, const struct sim_link *l)
{
    long idx;
    struct sim_node *nd;
    if (!n || !addr || !l || l->reset_per_mille > SIM_NET_RESET_PER_MILLE_MAX)
        return SAT_ERR_INVALID;
    idx = net_find_node(n, addr);
    if (idx < 0)
        return SAT_ERR_NOT_FOUND;
    nd = &n->nodes[idx];
    nd->link = *l;
    nd->link.up = l->up ? 1 : 0;
    if (!nd->link.up) {
        for (struct sim_conn *c = n->conns; c; c = c->next)
            if (!c->loopback && (c->end[0].node == (size_t)idx || c->end[1].node == (size_t)idx))
                conn_reset(n, c, n->now_ms);
    }
    return SAT_OK;
}

int sim_net_stats(const struct sim_net *n, const char *addr, struct sim_net_stats *out)
{
    struct sim_net_stats sum = { 0 };
    if (!n || !out)
        return SAT_ERR_INVALID;
    if (addr) {
        long idx = net_find_node(n, addr);
        if (idx < 0)
            return SAT_ERR_NOT_FOUND;
        *out = n->nodes[idx].stats;
        return SAT_OK;
    }
    for (size_t i = 0; i < n->n_nodes; i++) {
        const struct sim_net_stats *st = &n->nodes[i].stats;
        sum.bytes_sent += st->bytes_sent;
        sum.bytes_received += st->bytes_received;
        sum.connects += st->connects;
        sum.accepts += st->accepts;
        sum.resets += st->resets;
    }
    *out = sum;
    return SAT_OK;
}

int sim_hal_net_stats(const struct sim_hal *h, struct sim_net_stats *out)
{
    if (!h || !out)
        return SAT_ERR_INVALID;
    if (!h->net)
        return SAT_ERR_NOT_SUPPORTED;
    *out = h->net->nodes[h->node].stats;
    return SAT_OK;
}
