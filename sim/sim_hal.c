/*
 * sim_hal.c - the HAL over virtual time and virtual flash (see sim_hal.h).
 *
 * Flash model. Each file keeps `cur` (what reads see) and, while it has
 * pending operations, `dur` (what a power cut starts from) plus the ordered
 * list of writes and truncates since the last storage_sync of that file.
 * With no pending operation the two views are equal and only `cur` is
 * meaningful, so a sync costs nothing and the first write after a sync pays
 * for one copy (copy on write).
 *
 * A power cut replays, per file in directory order, the pending operations
 * over `dur`, drawing for each one from the seeded generator, as SQLite's
 * src/test6.c does: drop, apply, or (writes only) tear. A torn write keeps
 * a prefix ending on a sector boundary, fills the sector being written
 * (clipped to the write) with garbage, and ends the replay of that file:
 * the power was gone. The result becomes both views.
 *
 * Everything comes from one xoshiro256** stream seeded by splitmix64 from
 * the run's seed: entropy, the key store's secret and every cut decision.
 * Nothing here reads a real clock or the OS's randomness.
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
    uint64_t off;  /* write: file offset; truncate: new size */
    uint8_t *data; /* write only, owned */
    size_t len;    /* write only */
};

struct sim_file {
    char name[HAL_FILE_NAME_BYTES_MAX + 1];
    struct sim_buf cur;
    struct sim_buf dur; /* meaningful only while n_ops > 0 */
    struct sim_op *ops;
    size_t n_ops;
    size_t cap_ops;
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

struct sim_hal {
    struct hal hal;
    struct sim_prng prng;

    uint64_t mono_ms;
    int64_t wall_ms;

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

/* Writes data at off, zero-filling any gap; capacity must already suffice. */
static void buf_write_reserved(struct sim_buf *b, size_t off, const uint8_t *data, size_t len)
{
    if (off + len > b->len)
        buf_resize_reserved(b, off + len);
    if (len > 0)
        memcpy(b->p + off, data, len);
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
    for (size_t i = 0; i < f->n_ops; i++)
        free(f->ops[i].data);
    f->n_ops = 0;
}

static void file_free(struct sim_file *f)
{
    file_clear_ops(f);
    free(f->ops);
    buf_free(&f->cur);
    buf_free(&f->dur);
    free(f);
}

static int file_find(const struct sim_hal *s, const char *name)
{
    for (int i = 0; i < SIM_FLASH_FILES_MAX; i++)
        if (s->files[i] && strcmp(s->files[i]->name, name) == 0)
            return i;
    return -1;
}

/* Prepares f for one more pending operation: snapshots the durable view if
 * this is the first since a sync, and makes room in the list. Changes
 * nothing that the caller's failure would have to undo. */
static int file_prepare_op(struct sim_file *f)
{
    int ret;
    if (f->n_ops == 0) {
        ret = buf_copy(&f->dur, &f->cur);
        if (ret != SAT_OK)
            return ret;
    }
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

/* Replays f's pending operations over its durable view as a cut would, then
 * makes the result both views. */
static void file_replay_cut(struct sim_hal *s, struct sim_file *f)
{
    struct sim_buf *d = &f->dur;
    struct sim_buf tmp;
    for (size_t i = 0; i < f->n_ops; i++) {
        const struct sim_op *op = &f->ops[i];
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
            buf_write_reserved(d, (size_t)op->off, op->data, op->len);
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
            buf_write_reserved(d, (size_t)op->off, op->data, keep);
            if (gend > d->len)
                buf_resize_reserved(d, (size_t)gend);
            prng_fill(&s->prng, d->p + cut, (size_t)(gend - cut));
            goto done;
        }
        }
    }
done:
    tmp = f->cur;
    f->cur = f->dur;
    f->dur = tmp; /* kept as capacity for the next snapshot */
    file_clear_ops(f);
}

/* ---- clock and entropy ----------------------------------------------------- */

static uint64_t sim_clock_monotonic_ms(void *ctx)
{
    struct sim_hal *s = ctx;
    return s->mono_ms;
}

static int64_t sim_clock_wall_ms(void *ctx)
{
    struct sim_hal *s = ctx;
    return s->wall_ms;
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
    uint8_t *copy;
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
    ret = buf_reserve(&file->cur, (size_t)(off + len));
    if (ret == SAT_OK)
        ret = file_prepare_op(file);
    if (ret != SAT_OK)
        return ret;
    copy = malloc(len);
    if (!copy)
        return SAT_ERR_NO_MEMORY;
    memcpy(copy, buf, len);
    op = &file->ops[file->n_ops++];
    op->kind = SIM_OP_WRITE;
    op->off = off;
    op->data = copy;
    op->len = len;
    buf_write_reserved(&file->cur, (size_t)off, copy, len);
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
    /* cur becomes durable: with nothing pending, dur is not consulted. */
    file_clear_ops(f->file);
    return SAT_OK;
}

static int sim_storage_truncate(void *ctx, hal_file *f, uint64_t size)
{
    struct sim_hal *s = ctx;
    struct sim_file *file;
    struct sim_op *op;
    int ret;
    if (!f || !handle_live(s, f))
        return SAT_ERR_POWER_CUT;
    ret = count_storage_op(s);
    if (ret != SAT_OK)
        return ret;
    if (size > SIM_FLASH_FILE_BYTES_MAX)
        return SAT_ERR_NO_SPACE;
    file = f->file;
    ret = buf_reserve(&file->cur, (size_t)size);
    if (ret == SAT_OK)
        ret = file_prepare_op(file);
    if (ret != SAT_OK)
        return ret;
    op = &file->ops[file->n_ops++];
    op->kind = SIM_OP_TRUNCATE;
    op->off = size;
    op->data = NULL;
    op->len = 0;
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
    s->wall_ms = wall_start_ms;
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
    s->hal.log = sim_log;
    /* net_*, power_*, boot_*: NULL, so the wrappers answer NOT_SUPPORTED. */
    *out = s;
    return SAT_OK;
}

void sim_hal_free(struct sim_hal *s)
{
    if (!s)
        return;
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
    if (ms > (uint64_t)INT64_MAX || s->wall_ms > INT64_MAX - (int64_t)ms)
        s->wall_ms = INT64_MAX;
    else
        s->wall_ms += (int64_t)ms;
}

void sim_hal_set_wall_ms(struct sim_hal *s, int64_t wall_ms)
{
    s->wall_ms = wall_ms;
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
    *bytes = f->cur.len > 0 ? f->cur.p : &s->empty_byte;
    *len = f->cur.len;
    return SAT_OK;
}
