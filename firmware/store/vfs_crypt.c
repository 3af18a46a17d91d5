/* vfs_crypt.c - see vfs_crypt.h for the format and the rules. */
#include "vfs_crypt.h"

#include <mbedtls/gcm.h>
#include <mbedtls/platform_util.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sat_drbg.h"

#define BLOCK VFS_CRYPT_BLOCK_BYTES
#define SLOT VFS_CRYPT_SLOT_BYTES
#define SEAL_BYTES (VFS_CRYPT_NONCE_BYTES + VFS_CRYPT_TAG_BYTES)
#define WAL_HDR VFS_CRYPT_WAL_HEADER_BYTES
#define WAL_FRAME_HDR VFS_CRYPT_WAL_FRAME_HEADER_BYTES
#define WAL_FRAME VFS_CRYPT_WAL_FRAME_BYTES
#define WAL_HDR_SLOT (SEAL_BYTES + WAL_HDR)
#define WAL_FRAME_SLOT VFS_CRYPT_WAL_FRAME_SLOT_BYTES
#define UNIT_MAX WAL_FRAME      /* the largest block any file kind has */
#define SLOT_MAX WAL_FRAME_SLOT /* and its slot */
/* store id | kind | number | (WAL frame headers:) the page's tag */
#define AAD_BYTES_MAX (VFS_CRYPT_STORE_ID_BYTES + 1 + 8 + VFS_CRYPT_TAG_BYTES)
#define MXPATHNAME (HAL_FILE_NAME_BYTES_MAX + 1)
/* Unix epoch as a Julian day number in milliseconds (xCurrentTimeInt64). */
#define JULIAN_EPOCH_MS 210866760000000LL

enum file_kind { KIND_MEMORY = 0, KIND_DB = 'D', KIND_JOURNAL = 'J', KIND_WAL = 'W' };

struct cfile;

struct vfs_crypt {
    sqlite3_vfs base; /* first: SQLite hands us this pointer */
    const struct hal *hal;
    mbedtls_gcm_context gcm;
    struct sat_drbg drbg; /* HAL entropy: nonces, SQLite's randomness */
    uint8_t store_id[VFS_CRYPT_STORE_ID_BYTES];
    char name[40];
    struct vfs_crypt_stats stats;
    struct cfile *wal; /* the open WAL, if any (one database per store) */
    /* A checkpoint's copy loop (between SQLITE_FCNTL_CKPT_START and
     * _DONE on the database) reads each frame's page from the WAL and
     * writes it, byte for byte, to the database. Such a read hands SQLite
     * the page's ciphertext without opening it, and keeps the sealed page
     * here; the write of exactly those bytes to that page then stores the
     * sealed page as the database slot (ckpt_sealed_page). */
    int in_ckpt;
    int ckpt_valid;
    uint64_t ckpt_block;       /* the database block the frame holds */
    uint8_t ckpt_slot[SLOT];   /* nonce | tag | ciphertext of that page */
};

/*
 * The write-back cache holds one block. It can be taken for writing without
 * reading it: then only [cache_lo, cache_hi) is known (what was written
 * since), and the rest is read in only if it is needed (cache_fill), so a
 * block SQLite writes in pieces (a WAL frame, journal records) is sealed
 * once and never opened.
 */
struct cfile {
    sqlite3_file base; /* first: SQLite hands us this pointer */
    struct vfs_crypt *v;
    enum file_kind kind;
    hal_file *hf;
    uint64_t size;        /* logical size SQLite sees */
    uint64_t disk_blocks; /* whole slots present on storage */
    uint64_t hwm;         /* journal: end of what the current journal has used */
    int64_t cache_block;  /* block held in `cache`, or -1 */
    size_t cache_lo;      /* if !cache_full: the bytes known, */
    size_t cache_hi;      /* relative to the block's start */
    int cache_full;       /* `cache` holds the whole block */
    int cache_dirty;
    int cache_page_dirty; /* WAL frame: its page part was written (else only its header) */
    int64_t raw_block;    /* block whose stored, authentic slot `raw` holds, or -1 */
    int partial_writes;   /* database: a write that did not cover whole blocks */
    uint8_t cache[UNIT_MAX];
    uint8_t raw[SLOT_MAX];
    /* memory files */
    uint8_t *mem;
    size_t mem_cap;
};

/* ---- geometry ----------------------------------------------------------- */

/* Block 0 may differ in size from the rest: the WAL's header. */
static uint64_t geo_first(const struct cfile *f)
{
    return f->kind == KIND_WAL ? WAL_HDR : BLOCK;
}

static uint64_t geo_bytes(const struct cfile *f)
{
    return f->kind == KIND_WAL ? WAL_FRAME : BLOCK;
}

static uint64_t geo_first_slot(const struct cfile *f)
{
    return f->kind == KIND_WAL ? WAL_HDR_SLOT : SLOT;
}

static uint64_t geo_slot(const struct cfile *f)
{
    return f->kind == KIND_WAL ? WAL_FRAME_SLOT : SLOT;
}

static uint64_t block_of(const struct cfile *f, uint64_t pos)
{
    uint64_t first = geo_first(f);
    return pos < first ? 0 : 1 + (pos - first) / geo_bytes(f);
}

static uint64_t block_start(const struct cfile *f, uint64_t block)
{
    return block == 0 ? 0 : geo_first(f) + (block - 1) * geo_bytes(f);
}

static size_t block_len(const struct cfile *f, uint64_t block)
{
    return (size_t)(block == 0 ? geo_first(f) : geo_bytes(f));
}

static uint64_t slot_off(const struct cfile *f, uint64_t block)
{
    return block == 0 ? 0 : geo_first_slot(f) + (block - 1) * geo_slot(f);
}

static size_t slot_len(const struct cfile *f, uint64_t block)
{
    return (size_t)(block == 0 ? geo_first_slot(f) : geo_slot(f));
}

/* Whole slots in `phys` bytes of storage. */
static uint64_t blocks_in(const struct cfile *f, uint64_t phys)
{
    uint64_t first = geo_first_slot(f);
    return phys < first ? 0 : 1 + (phys - first) / geo_slot(f);
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The database block a WAL frame holds, from its (plaintext) frame header:
 * page numbers start at 1; a zero frame gives a number no page has. */
static uint64_t frame_db_block(const uint8_t *frame_header)
{
    return (uint64_t)get_be32(frame_header) - 1;
}

/* ---- sealing ------------------------------------------------------------ */

static size_t make_aad(const struct vfs_crypt *v, uint8_t kind, uint64_t no, const uint8_t *tag,
                       uint8_t aad[AAD_BYTES_MAX])
{
    size_t n = VFS_CRYPT_STORE_ID_BYTES;
    memcpy(aad, v->store_id, VFS_CRYPT_STORE_ID_BYTES);
    aad[n++] = kind;
    for (int i = 0; i < 8; i++)
        aad[n++] = (uint8_t)(no >> (56 - 8 * i));
    if (tag) {
        memcpy(aad + n, tag, VFS_CRYPT_TAG_BYTES);
        n += VFS_CRYPT_TAG_BYTES;
    }
    return n;
}

/* Seals len bytes into out = nonce | tag | ciphertext. `tag`, if given, is
 * bound in as associated data too. */
static int seal_unit(struct vfs_crypt *v, uint8_t kind, uint64_t no, const uint8_t *tag,
                     const uint8_t *plain, size_t len, uint8_t *out)
{
    uint8_t aad[AAD_BYTES_MAX];
    size_t aad_len = make_aad(v, kind, no, tag, aad);
    if (sat_drbg_random(&v->drbg, out, VFS_CRYPT_NONCE_BYTES) != 0)
        return SQLITE_IOERR_WRITE;
    if (mbedtls_gcm_crypt_and_tag(&v->gcm, MBEDTLS_GCM_ENCRYPT, len, out, VFS_CRYPT_NONCE_BYTES,
                                  aad, aad_len, plain, out + SEAL_BYTES, VFS_CRYPT_TAG_BYTES,
                                  out + VFS_CRYPT_NONCE_BYTES) != 0)
        return SQLITE_IOERR_WRITE;
    return SQLITE_OK;
}

/* Opens a unit seal_unit made. SQLITE_IOERR_DATA (out zeroed) if it fails
 * authentication. */
static int open_unit(struct vfs_crypt *v, uint8_t kind, uint64_t no, const uint8_t *tag,
                     const uint8_t *in, size_t len, uint8_t *out)
{
    uint8_t aad[AAD_BYTES_MAX];
    size_t aad_len = make_aad(v, kind, no, tag, aad);
    if (mbedtls_gcm_auth_decrypt(&v->gcm, len, in, VFS_CRYPT_NONCE_BYTES, aad, aad_len,
                                 in + VFS_CRYPT_NONCE_BYTES, VFS_CRYPT_TAG_BYTES,
                                 in + SEAL_BYTES, out) != 0) {
        mbedtls_platform_zeroize(out, len);
        return SQLITE_IOERR_DATA;
    }
    return SQLITE_OK;
}

/* Seals plaintext block `block` of f into f->raw (see vfs_crypt.h for the
 * slot of each kind). */
static int seal_block(struct cfile *f, uint64_t block, const uint8_t *plain)
{
    struct vfs_crypt *v = f->v;
    uint8_t *page = f->raw + SEAL_BYTES + WAL_FRAME_HDR;
    int rc;
    f->raw_block = -1;
    if (f->kind != KIND_WAL || block == 0)
        return seal_unit(v, (uint8_t)f->kind, block, NULL, plain, block_len(f, block), f->raw);
    /* A frame: its page exactly as the database slot of that page, so a
     * checkpoint copies it without sealing again; its header bound to the
     * frame's place and to the page's tag. */
    rc = seal_unit(v, KIND_DB, frame_db_block(plain), NULL, plain + WAL_FRAME_HDR, BLOCK, page);
    if (rc == SQLITE_OK)
        rc = seal_unit(v, KIND_WAL, block, page + VFS_CRYPT_NONCE_BYTES, plain, WAL_FRAME_HDR,
                       f->raw);
    return rc;
}

/* Opens the slot in f->raw as block `block` into out. */
static int open_block(struct cfile *f, uint64_t block, uint8_t *out)
{
    struct vfs_crypt *v = f->v;
    const uint8_t *page = f->raw + SEAL_BYTES + WAL_FRAME_HDR;
    int rc;
    if (f->kind != KIND_WAL || block == 0)
        return open_unit(v, (uint8_t)f->kind, block, NULL, f->raw, block_len(f, block), out);
    rc = open_unit(v, KIND_WAL, block, page + VFS_CRYPT_NONCE_BYTES, f->raw, WAL_FRAME_HDR, out);
    if (rc == SQLITE_OK)
        rc = open_unit(v, KIND_DB, frame_db_block(out), NULL, page, BLOCK, out + WAL_FRAME_HDR);
    if (rc != SQLITE_OK)
        mbedtls_platform_zeroize(out, WAL_FRAME);
    return rc;
}

/* If the WAL's cache holds, unchanged since it was read, the frame of
 * database block `block` with exactly this plaintext, its sealed page is
 * that block's slot: returns it, else NULL. This is a checkpoint copying a
 * page from the WAL into the database. */
static const uint8_t *wal_sealed_page(const struct vfs_crypt *v, uint64_t block,
                                      const uint8_t *plain)
{
    const struct cfile *w = v->wal;
    if (!w || w->cache_block <= 0 || w->raw_block != w->cache_block || !w->cache_full ||
        w->cache_dirty || frame_db_block(w->cache) != block ||
        memcmp(w->cache + WAL_FRAME_HDR, plain, BLOCK) != 0)
        return NULL;
    return w->raw + SEAL_BYTES + WAL_FRAME_HDR;
}

/* During a checkpoint: if `plain` is the ciphertext ckpt_read handed out,
 * written to its own page, returns the sealed page (the database slot),
 * and *refuse is 0. Those bytes written anywhere else would store
 * ciphertext as a page: *refuse is set. Otherwise NULL. */
static const uint8_t *ckpt_sealed_page(struct vfs_crypt *v, uint64_t block,
                                       const uint8_t *plain, int *refuse)
{
    *refuse = 0;
    if (!v->in_ckpt || !v->ckpt_valid || memcmp(plain, v->ckpt_slot + SEAL_BYTES, BLOCK) != 0)
        return NULL;
    v->ckpt_valid = 0;
    if (block != v->ckpt_block) {
        *refuse = 1;
        return NULL;
    }
    return v->ckpt_slot;
}

static int cache_flush(struct cfile *f);

/* Seals plaintext block `block` and writes its slot, first filling any gap
 * before it with sealed zero blocks (so every slot below disk_blocks is
 * authentic). */
static int block_write(struct cfile *f, uint64_t block, const uint8_t *plain)
{
    static const uint8_t zero[UNIT_MAX];
    const uint8_t *slot = f->raw;
    int refuse = 0;
    int rc;
    /* A kept-back block inside the gap is written as itself, not as zeros. */
    if (f->cache_dirty && f->cache_block >= (int64_t)f->disk_blocks &&
        f->cache_block < (int64_t)block) {
        rc = cache_flush(f);
        if (rc != SQLITE_OK)
            return rc;
    }
    while (f->disk_blocks < block) {
        rc = block_write(f, f->disk_blocks, zero);
        if (rc != SQLITE_OK)
            return rc;
    }
    if (f->kind == KIND_DB && ((slot = ckpt_sealed_page(f->v, block, plain, &refuse)) != NULL ||
                               (slot = wal_sealed_page(f->v, block, plain)) != NULL)) {
        f->v->stats.blocks_copied++;
        if (f->raw_block == (int64_t)block)
            f->raw_block = -1;
    } else if (refuse) {
        return SQLITE_IOERR_WRITE;
    } else {
        rc = seal_block(f, block, plain);
        if (rc != SQLITE_OK)
            return rc;
        slot = f->raw;
        f->v->stats.blocks_sealed++;
    }
    rc = hal_storage_write(f->v->hal, f->hf, slot_off(f, block), slot, slot_len(f, block));
    if (rc != SAT_OK)
        return rc == SAT_ERR_NO_SPACE ? SQLITE_FULL : SQLITE_IOERR_WRITE;
    if (slot == f->raw)
        f->raw_block = (int64_t)block;
    if (block + 1 > f->disk_blocks)
        f->disk_blocks = block + 1;
    return SQLITE_OK;
}

/* Reads and opens block `block` into out (block_len bytes). Blocks past the
 * slots on storage read as zeros. SQLITE_IOERR_DATA if authentication
 * fails (out zeroed). */
static int block_read(struct cfile *f, uint64_t block, uint8_t *out)
{
    int rc;
    f->raw_block = -1;
    if (block >= f->disk_blocks) {
        memset(out, 0, block_len(f, block));
        return SQLITE_OK;
    }
    if (hal_storage_read_full(f->v->hal, f->hf, slot_off(f, block), f->raw,
                              slot_len(f, block)) != SAT_OK)
        return SQLITE_IOERR_READ;
    rc = open_block(f, block, out);
    if (rc != SQLITE_OK) {
        f->v->stats.auth_failures++;
        return rc;
    }
    f->raw_block = (int64_t)block;
    f->v->stats.blocks_opened++;
    return SQLITE_OK;
}

/* Opens only the header of stored WAL frame `block` into out (24 bytes):
 * all a frame whose page SQLite rewrites in place needs. */
static int frame_header_read(struct cfile *f, uint64_t block, uint8_t *out)
{
    /* the header's unit, then the page's nonce and tag */
    const size_t n = SEAL_BYTES + WAL_FRAME_HDR + SEAL_BYTES;
    const uint8_t *page_tag = f->raw + SEAL_BYTES + WAL_FRAME_HDR + VFS_CRYPT_NONCE_BYTES;
    int rc;
    f->raw_block = -1;
    if (hal_storage_read_full(f->v->hal, f->hf, slot_off(f, block), f->raw, n) != SAT_OK)
        return SQLITE_IOERR_READ;
    rc = open_unit(f->v, KIND_WAL, block, page_tag, f->raw, WAL_FRAME_HDR, out);
    if (rc != SQLITE_OK)
        f->v->stats.auth_failures++;
    return rc;
}

/* A checkpoint reading the page of stored WAL frame `block` (see
 * struct vfs_crypt): opens only the frame's header, which binds the page's
 * tag to this frame, and hands out the page's ciphertext. The page itself
 * is authenticated where it lands, whenever its database slot is read.
 * SQLITE_IOERR_DATA if the header fails authentication. */
static int ckpt_read(struct cfile *f, uint64_t block, uint8_t *out)
{
    struct vfs_crypt *v = f->v;
    const uint8_t *page = f->raw + SEAL_BYTES + WAL_FRAME_HDR;
    uint8_t hdr[WAL_FRAME_HDR];
    int rc;
    f->raw_block = -1;
    v->ckpt_valid = 0;
    if (hal_storage_read_full(v->hal, f->hf, slot_off(f, block), f->raw, slot_len(f, block)) !=
        SAT_OK)
        return SQLITE_IOERR_READ;
    rc = open_unit(v, KIND_WAL, block, page + VFS_CRYPT_NONCE_BYTES, f->raw, WAL_FRAME_HDR, hdr);
    if (rc != SQLITE_OK) {
        v->stats.auth_failures++;
        return rc;
    }
    v->ckpt_block = frame_db_block(hdr);
    memcpy(v->ckpt_slot, page, SLOT);
    v->ckpt_valid = 1;
    memcpy(out, page + SEAL_BYTES, BLOCK);
    return SQLITE_OK;
}

/* ---- the one-block cache ------------------------------------------------ */

/* Whether old bytes of the file from `pos` on can be taken as zeros: past
 * the slots on storage they are; in a journal, past what the current
 * journal has used they are stale (SQLite never reads a journal beyond the
 * records it wrote, and a stale header there is one it must not see). */
static int old_is_zero(const struct cfile *f, uint64_t pos)
{
    if (pos >= block_start(f, f->disk_blocks))
        return 1;
    return f->kind == KIND_JOURNAL && pos >= f->hwm;
}

/* Makes `cache` hold all of its block: the bytes written since it was taken
 * over the block's old content. A journal or WAL block that fails
 * authentication here is a torn end being written over: its old content is
 * taken as zeros. */
static int cache_fill(struct cfile *f)
{
    uint8_t old[UNIT_MAX];
    uint64_t block = (uint64_t)f->cache_block;
    uint64_t start = block_start(f, block);
    size_t len = block_len(f, block);
    int need_lo, need_hi;
    int rc = SQLITE_OK;

    if (f->cache_full)
        return SQLITE_OK;
    if (f->cache_lo == f->cache_hi)
        f->cache_lo = f->cache_hi = 0;
    need_lo = f->cache_lo > 0 && !old_is_zero(f, start);
    need_hi = f->cache_hi < len && !old_is_zero(f, start + f->cache_hi);
    if (!need_lo && !need_hi) {
        memset(old, 0, len);
    } else if (f->kind == KIND_WAL && block > 0 && !need_hi &&
               f->cache_lo <= WAL_FRAME_HDR) {
        /* A page rewritten in place: only its frame header is missing. */
        memset(old, 0, len);
        rc = frame_header_read(f, block, old);
    } else {
        rc = block_read(f, block, old);
    }
    if (rc == SQLITE_IOERR_DATA && f->kind != KIND_DB)
        rc = SQLITE_OK; /* `old` was left zeroed */
    if (rc == SQLITE_OK) {
        memcpy(f->cache, old, f->cache_lo);
        memcpy(f->cache + f->cache_hi, old + f->cache_hi, len - f->cache_hi);
        f->cache_full = 1;
    }
    mbedtls_platform_zeroize(old, len);
    return rc;
}

/* A WAL frame of which SQLite rewrote only the header (its checksums, before
 * a commit): seals the header again, bound to the stored page, and writes
 * just that unit. */
static int frame_header_write(struct cfile *f, uint64_t block)
{
    const uint8_t *page_tag = f->raw + SEAL_BYTES + WAL_FRAME_HDR + VFS_CRYPT_NONCE_BYTES;
    int rc = seal_unit(f->v, KIND_WAL, block, page_tag, f->cache, WAL_FRAME_HDR, f->raw);
    if (rc != SQLITE_OK) {
        f->raw_block = -1;
        return rc;
    }
    rc = hal_storage_write(f->v->hal, f->hf, slot_off(f, block), f->raw,
                           SEAL_BYTES + WAL_FRAME_HDR);
    if (rc != SAT_OK) {
        f->raw_block = -1;
        return rc == SAT_ERR_NO_SPACE ? SQLITE_FULL : SQLITE_IOERR_WRITE;
    }
    return SQLITE_OK;
}

static int cache_flush(struct cfile *f)
{
    uint64_t block = (uint64_t)f->cache_block;
    int rc;
    if (f->cache_block < 0 || !f->cache_dirty)
        return SQLITE_OK;
    if (f->kind == KIND_WAL && block > 0 && f->cache_full && !f->cache_page_dirty &&
        f->raw_block == f->cache_block)
        rc = frame_header_write(f, block);
    else if ((rc = cache_fill(f)) == SQLITE_OK)
        rc = block_write(f, block, f->cache);
    if (rc == SQLITE_OK)
        f->cache_dirty = f->cache_page_dirty = 0;
    return rc;
}

static void cache_drop(struct cfile *f)
{
    f->cache_block = -1;
    f->cache_dirty = f->cache_page_dirty = 0;
    f->cache_full = 0;
    f->cache_lo = f->cache_hi = 0;
    mbedtls_platform_zeroize(f->cache, sizeof f->cache);
}

/* Makes `cache` hold block `block`, flushing whatever it held, without
 * reading it yet. */
static int cache_take(struct cfile *f, uint64_t block)
{
    int rc;
    if (f->cache_block == (int64_t)block)
        return SQLITE_OK;
    rc = cache_flush(f);
    if (rc != SQLITE_OK)
        return rc;
    cache_drop(f);
    f->cache_block = (int64_t)block;
    return SQLITE_OK;
}

/* Makes `cache` hold all of block `block`. */
static int cache_load(struct cfile *f, uint64_t block)
{
    int rc = cache_take(f, block);
    if (rc == SQLITE_OK && !f->cache_full) {
        if (f->cache_lo == f->cache_hi) {
            rc = block_read(f, block, f->cache);
            if (rc == SQLITE_OK)
                f->cache_full = 1;
            else
                cache_drop(f);
        } else {
            rc = cache_fill(f);
        }
    }
    return rc;
}

/* Copies n bytes at `off` in the cached block in from `in`. */
static int cache_put(struct cfile *f, size_t off, const uint8_t *in, size_t n)
{
    if (off + n > WAL_FRAME_HDR || f->kind != KIND_WAL || f->cache_block == 0)
        f->cache_page_dirty = 1;
    if (!f->cache_full) {
        if (f->cache_lo == f->cache_hi) {
            f->cache_lo = off;
            f->cache_hi = off + n;
        } else if (off <= f->cache_hi && off + n >= f->cache_lo) {
            if (off < f->cache_lo)
                f->cache_lo = off;
            if (off + n > f->cache_hi)
                f->cache_hi = off + n;
        } else {
            int rc = cache_fill(f); /* not contiguous: bring in the rest */
            if (rc != SQLITE_OK)
                return rc;
        }
    }
    memcpy(f->cache + off, in, n);
    f->cache_dirty = 1;
    return SQLITE_OK;
}

/* ---- encrypted file methods --------------------------------------------- */

static int cf_close(sqlite3_file *file)
{
    struct cfile *f = (struct cfile *)file;
    int rc = cache_flush(f);
    if (f->v->wal == f)
        f->v->wal = NULL;
    if (hal_storage_close(f->v->hal, f->hf) != SAT_OK && rc == SQLITE_OK)
        rc = SQLITE_IOERR_CLOSE;
    mbedtls_platform_zeroize(f->cache, sizeof f->cache);
    mbedtls_platform_zeroize(f->raw, sizeof f->raw);
    return rc;
}

static int cf_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off)
{
    struct cfile *f = (struct cfile *)file;
    uint8_t *out = buf;
    uint64_t pos = (uint64_t)off;
    uint64_t end = pos + (uint64_t)amt;
    uint64_t avail_end = end < f->size ? end : f->size;
    int rc = SQLITE_OK;
    int torn = 0;

    if (f->kind == KIND_DB)
        f->v->in_ckpt = f->v->ckpt_valid = 0; /* a checkpoint's copy never reads it */
    while (pos < avail_end) {
        uint64_t block = block_of(f, pos);
        size_t in_off = (size_t)(pos - block_start(f, block));
        size_t n = block_len(f, block) - in_off;
        if (n > avail_end - pos)
            n = (size_t)(avail_end - pos);
        if (f->cache_block == (int64_t)block &&
            (f->cache_full || (in_off >= f->cache_lo && in_off + n <= f->cache_hi))) {
            memcpy(out, f->cache + in_off, n);
        } else if (f->kind != KIND_WAL && in_off == 0 && n == block_len(f, block) &&
                   f->cache_block != (int64_t)block) {
            rc = block_read(f, block, out);
        } else if (f->kind == KIND_WAL && f->v->in_ckpt && block > 0 && block < f->disk_blocks &&
                   in_off == WAL_FRAME_HDR && n == BLOCK && f->cache_block != (int64_t)block) {
            rc = ckpt_read(f, block, out);
        } else {
            rc = cache_load(f, block);
            if (rc == SQLITE_OK)
                memcpy(out, f->cache + in_off, n);
        }
        if (rc == SQLITE_IOERR_DATA &&
            (f->kind == KIND_JOURNAL || (f->kind == KIND_WAL && in_off == 0))) {
            /* A torn end (see the integrity rules in vfs_crypt.h): zeros,
             * as if never written, which SQLite reads as the end of a
             * journal (page number 0, no magic, no super-journal name) or
             * of a WAL (wrong salts). A short read instead would stop a
             * hot journal's rollback (reading the super-journal name at
             * the journal's end) and WAL recovery: no reopening. */
            torn = 1;
            rc = SQLITE_OK;
            break;
        }
        if (rc != SQLITE_OK)
            break;
        out += n;
        pos += n;
    }
    if (end > f->hwm)
        f->hwm = end; /* after the loop: what it flushes was used before */
    if (torn) {
        memset(out, 0, (size_t)(end - pos));
        return SQLITE_OK;
    }
    if (rc == SQLITE_IOERR_DATA && f->kind == KIND_DB && amt < BLOCK) {
        /* A partial read of the database only peeks at header fields
         * before SQLite decides whether a hot journal must first repair
         * the file (see vfs_crypt.h). */
        memset(out, 0, (size_t)(end - pos));
        return SQLITE_IOERR_SHORT_READ;
    }
    if (rc != SQLITE_OK)
        return rc;
    if (pos < end) {
        memset(out, 0, (size_t)(end - pos));
        return SQLITE_IOERR_SHORT_READ;
    }
    return SQLITE_OK;
}

static int cf_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off)
{
    struct cfile *f = (struct cfile *)file;
    const uint8_t *in = buf;
    uint64_t pos = (uint64_t)off;
    uint64_t end = pos + (uint64_t)amt;
    int rc = SQLITE_OK;

    while (pos < end) {
        uint64_t block = block_of(f, pos);
        size_t len = block_len(f, block);
        size_t in_off = (size_t)(pos - block_start(f, block));
        size_t n = len - in_off;
        if (n > end - pos)
            n = (size_t)(end - pos);
        if (in_off == 0 && n == len) {
            /* A whole block: seal straight from SQLite's buffer. */
            if (f->cache_block == (int64_t)block)
                cache_drop(f);
            if (f->kind == KIND_JOURNAL && block == 0)
                f->hwm = 0; /* a new journal's header: what follows is stale */
            rc = block_write(f, block, in);
        } else {
            if (f->kind == KIND_DB)
                f->partial_writes = 1;
            rc = cache_take(f, block);
            if (rc == SQLITE_OK)
                rc = cache_put(f, in_off, in, n);
        }
        if (rc != SQLITE_OK)
            return rc;
        in += n;
        pos += n;
    }
    if (end > f->size)
        f->size = end;
    if (end > f->hwm)
        f->hwm = end;
    return SQLITE_OK;
}

static int cf_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    struct cfile *f = (struct cfile *)file;
    uint64_t sz = (uint64_t)size;
    uint64_t keep = sz == 0 ? 0 : block_of(f, sz - 1) + 1;
    uint64_t tail = sz - (sz == 0 ? 0 : block_start(f, keep - 1));
    int rc;
    if (f->cache_block >= 0 && (uint64_t)f->cache_block >= keep)
        cache_drop(f);
    if (f->raw_block >= 0 && (uint64_t)f->raw_block >= keep)
        f->raw_block = -1;
    if (keep > 0 && tail < block_len(f, keep - 1) && sz < f->size) {
        /* Zero the cut-off tail of the new last block, so that growing the
         * file again reads zeros there. */
        rc = cache_take(f, keep - 1);
        if (rc == SQLITE_OK)
            rc = cache_fill(f);
        if (rc != SQLITE_OK)
            return rc;
        memset(f->cache + tail, 0, block_len(f, keep - 1) - tail);
        f->cache_dirty = f->cache_page_dirty = 1;
    }
    if (keep < f->disk_blocks) {
        if (hal_storage_truncate(f->v->hal, f->hf, slot_off(f, keep)) != SAT_OK)
            return SQLITE_IOERR_TRUNCATE;
        f->disk_blocks = keep;
    }
    f->size = sz;
    if (f->hwm > sz)
        f->hwm = sz;
    return SQLITE_OK;
}

static int cf_sync(sqlite3_file *file, int flags)
{
    struct cfile *f = (struct cfile *)file;
    int rc = cache_flush(f);
    (void)flags;
    f->v->in_ckpt = f->v->ckpt_valid = 0; /* a checkpoint's copy never syncs */
    if (rc != SQLITE_OK)
        return rc;
    return hal_storage_sync(f->v->hal, f->hf) == SAT_OK ? SQLITE_OK : SQLITE_IOERR_FSYNC;
}

static int cf_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    struct cfile *f = (struct cfile *)file;
    *size = (sqlite3_int64)f->size;
    return SQLITE_OK;
}

static int nop_lock(sqlite3_file *file, int level)
{
    (void)file;
    (void)level;
    return SQLITE_OK;
}

static int nop_check_reserved(sqlite3_file *file, int *out)
{
    (void)file;
    *out = 0;
    return SQLITE_OK;
}

static int nop_file_control(sqlite3_file *file, int op, void *arg)
{
    (void)file;
    (void)op;
    (void)arg;
    return SQLITE_NOTFOUND;
}

/* The database learns when a checkpoint's copy loop starts and ends. */
static int db_file_control(sqlite3_file *file, int op, void *arg)
{
    struct cfile *f = (struct cfile *)file;
    (void)arg;
    if (f->kind != KIND_DB || (op != SQLITE_FCNTL_CKPT_START && op != SQLITE_FCNTL_CKPT_DONE))
        return SQLITE_NOTFOUND;
    f->v->in_ckpt = op == SQLITE_FCNTL_CKPT_START;
    f->v->ckpt_valid = 0;
    return SQLITE_OK;
}

static int cf_sector_size(sqlite3_file *file)
{
    (void)file;
    return BLOCK;
}

/* Power-safe overwrite is claimed for a database whose WAL is open and
 * which has only ever been written in whole blocks (see vfs_crypt.h):
 * SQLite then stops padding each commit to a sector with copies of its last
 * frame. In rollback-journal mode nothing is claimed. */
static int cf_characteristics(sqlite3_file *file)
{
    const struct cfile *f = (const struct cfile *)file;
    if (f->kind == KIND_DB && f->v->wal != NULL && !f->partial_writes)
        return SQLITE_IOCAP_POWERSAFE_OVERWRITE;
    return 0;
}

static int no_characteristics(sqlite3_file *file)
{
    (void)file;
    return 0;
}

/* Version 1: no shared memory. WAL works only with locking_mode=EXCLUSIVE,
 * where SQLite keeps the WAL index in its own heap and never asks for it. */
static const sqlite3_io_methods cfile_methods = {
    .iVersion = 1,
    .xClose = cf_close,
    .xRead = cf_read,
    .xWrite = cf_write,
    .xTruncate = cf_truncate,
    .xSync = cf_sync,
    .xFileSize = cf_file_size,
    .xLock = nop_lock,
    .xUnlock = nop_lock,
    .xCheckReservedLock = nop_check_reserved,
    .xFileControl = db_file_control,
    .xSectorSize = cf_sector_size,
    .xDeviceCharacteristics = cf_characteristics,
};

/* ---- memory files (temporary storage never touches flash) --------------- */

static int mf_close(sqlite3_file *file)
{
    struct cfile *f = (struct cfile *)file;
    if (f->mem) {
        mbedtls_platform_zeroize(f->mem, f->mem_cap);
        free(f->mem);
    }
    f->mem = NULL;
    return SQLITE_OK;
}

static int mf_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off)
{
    struct cfile *f = (struct cfile *)file;
    uint64_t pos = (uint64_t)off;
    size_t n = 0;
    if (pos < f->size)
        n = (size_t)(f->size - pos < (uint64_t)amt ? f->size - pos : (uint64_t)amt);
    if (n > 0)
        memcpy(buf, f->mem + pos, n);
    if (n < (size_t)amt) {
        memset((uint8_t *)buf + n, 0, (size_t)amt - n);
        return SQLITE_IOERR_SHORT_READ;
    }
    return SQLITE_OK;
}

static int mf_reserve(struct cfile *f, uint64_t need)
{
    size_t cap = f->mem_cap ? f->mem_cap : BLOCK;
    uint8_t *p;
    if (need <= f->mem_cap)
        return SQLITE_OK;
    if (need > (uint64_t)SIZE_MAX / 2)
        return SQLITE_FULL;
    while (cap < need)
        cap *= 2;
    p = realloc(f->mem, cap);
    if (!p)
        return SQLITE_NOMEM;
    memset(p + f->mem_cap, 0, cap - f->mem_cap);
    f->mem = p;
    f->mem_cap = cap;
    return SQLITE_OK;
}

static int mf_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off)
{
    struct cfile *f = (struct cfile *)file;
    uint64_t end = (uint64_t)off + (uint64_t)amt;
    int rc = mf_reserve(f, end);
    if (rc != SQLITE_OK)
        return rc;
    memcpy(f->mem + off, buf, (size_t)amt);
    if (end > f->size)
        f->size = end;
    return SQLITE_OK;
}

static int mf_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    struct cfile *f = (struct cfile *)file;
    if ((uint64_t)size < f->size) {
        memset(f->mem + size, 0, (size_t)(f->size - (uint64_t)size));
        f->size = (uint64_t)size;
    }
    return SQLITE_OK;
}

static int mf_sync(sqlite3_file *file, int flags)
{
    (void)file;
    (void)flags;
    return SQLITE_OK;
}

static const sqlite3_io_methods mfile_methods = {
    .iVersion = 1,
    .xClose = mf_close,
    .xRead = mf_read,
    .xWrite = mf_write,
    .xTruncate = mf_truncate,
    .xSync = mf_sync,
    .xFileSize = cf_file_size,
    .xLock = nop_lock,
    .xUnlock = nop_lock,
    .xCheckReservedLock = nop_check_reserved,
    .xFileControl = nop_file_control,
    .xSectorSize = cf_sector_size,
    .xDeviceCharacteristics = no_characteristics,
};

/* ---- VFS methods -------------------------------------------------------- */

static int vx_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                   int *out_flags)
{
    struct vfs_crypt *v = (struct vfs_crypt *)vfs;
    struct cfile *f = (struct cfile *)file;
    const int memory_kinds = SQLITE_OPEN_TEMP_DB | SQLITE_OPEN_TEMP_JOURNAL |
                             SQLITE_OPEN_TRANSIENT_DB | SQLITE_OPEN_SUBJOURNAL;
    uint64_t phys = 0;
    int ret;

    memset(f, 0, sizeof *f);
    f->v = v;
    f->cache_block = -1;
    f->raw_block = -1;
    if (out_flags)
        *out_flags = flags;
    if (name == NULL || (flags & memory_kinds)) {
        f->kind = KIND_MEMORY;
        f->base.pMethods = &mfile_methods;
        return SQLITE_OK;
    }
    if (flags & SQLITE_OPEN_MAIN_DB)
        f->kind = KIND_DB;
    else if (flags & SQLITE_OPEN_MAIN_JOURNAL)
        f->kind = KIND_JOURNAL;
    else if ((flags & SQLITE_OPEN_WAL) && v->wal == NULL)
        f->kind = KIND_WAL;
    else
        return SQLITE_CANTOPEN; /* super-journals, a second WAL: one database per store */

    ret = hal_storage_open(v->hal, name, (flags & SQLITE_OPEN_CREATE) ? HAL_OPEN_CREATE : 0,
                           &f->hf);
    if (ret != SAT_OK)
        return SQLITE_CANTOPEN;
    if (hal_storage_size(v->hal, f->hf, &phys) != SAT_OK) {
        hal_storage_close(v->hal, f->hf);
        return SQLITE_IOERR_FSTAT;
    }
    f->disk_blocks = blocks_in(f, phys); /* a trailing partial slot is a torn extension */
    f->size = block_start(f, f->disk_blocks);
    f->base.pMethods = &cfile_methods;
    if (f->kind == KIND_WAL)
        v->wal = f;
    return SQLITE_OK;
}

static int vx_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    struct vfs_crypt *v = (struct vfs_crypt *)vfs;
    int ret = hal_storage_delete(v->hal, name);
    (void)sync_dir; /* the HAL makes deletes durable */
    if (ret == SAT_ERR_NOT_FOUND)
        return SQLITE_IOERR_DELETE_NOENT;
    return ret == SAT_OK ? SQLITE_OK : SQLITE_IOERR_DELETE;
}

static int vx_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    struct vfs_crypt *v = (struct vfs_crypt *)vfs;
    hal_file *hf = NULL;
    (void)flags;
    *out = 0;
    if (hal_storage_open(v->hal, name, 0, &hf) == SAT_OK) {
        uint64_t size = 0;
        /* An empty file counts as absent, as for SQLite's unix VFS. */
        *out = hal_storage_size(v->hal, hf, &size) == SAT_OK && size > 0;
        hal_storage_close(v->hal, hf);
    }
    return SQLITE_OK;
}

static int vx_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    if (!hal_storage_name_valid(name) || (int)strlen(name) >= n)
        return SQLITE_CANTOPEN;
    memcpy(out, name, strlen(name) + 1);
    return SQLITE_OK;
}

static int vx_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    struct vfs_crypt *v = (struct vfs_crypt *)vfs;
    if (sat_drbg_random(&v->drbg, (unsigned char *)out, (size_t)n) != 0)
        memset(out, 0, (size_t)n);
    return n;
}

static int vx_sleep(sqlite3_vfs *vfs, int micros)
{
    /* Nothing here blocks: with no locks there is nothing to wait for. */
    (void)vfs;
    return micros;
}

static int vx_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    struct vfs_crypt *v = (struct vfs_crypt *)vfs;
    *out = JULIAN_EPOCH_MS + hal_clock_wall_ms(v->hal);
    return SQLITE_OK;
}

static int vx_current_time(sqlite3_vfs *vfs, double *out)
{
    sqlite3_int64 ms = 0;
    vx_current_time_int64(vfs, &ms);
    *out = (double)ms / 86400000.0;
    return SQLITE_OK;
}

static int vx_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    if (n > 0)
        out[0] = '\0';
    return 0;
}

/* ---- registration ------------------------------------------------------- */

int vfs_crypt_register(const struct hal *h, const uint8_t key[VFS_CRYPT_KEY_BYTES],
                       const uint8_t store_id[VFS_CRYPT_STORE_ID_BYTES], struct vfs_crypt **out)
{
    static unsigned serial;
    struct vfs_crypt *v = calloc(1, sizeof *v);
    int ret = SAT_ERR_KEYS_CRYPTO;
    if (!v)
        return SAT_ERR_NO_MEMORY;
    mbedtls_gcm_init(&v->gcm);
    sat_drbg_init(&v->drbg);
    v->hal = h;
    memcpy(v->store_id, store_id, VFS_CRYPT_STORE_ID_BYTES);
    if (mbedtls_gcm_setkey(&v->gcm, MBEDTLS_CIPHER_ID_AES, key, VFS_CRYPT_KEY_BYTES * 8) != 0)
        goto exit;
    ret = sat_drbg_seed(&v->drbg, hal_entropy_source, (void *)h, "satchel vfs",
                        SAT_ERR_KEYS_CRYPTO);
    if (ret != SAT_OK)
        goto exit;
    ret = SAT_ERR_KEYS_CRYPTO;
    snprintf(v->name, sizeof v->name, "satchel-crypt-%u", ++serial);
    v->base.iVersion = 2;
    v->base.szOsFile = (int)sizeof(struct cfile);
    v->base.mxPathname = MXPATHNAME;
    v->base.zName = v->name;
    v->base.xOpen = vx_open;
    v->base.xDelete = vx_delete;
    v->base.xAccess = vx_access;
    v->base.xFullPathname = vx_full_pathname;
    v->base.xRandomness = vx_randomness;
    v->base.xSleep = vx_sleep;
    v->base.xCurrentTime = vx_current_time;
    v->base.xGetLastError = vx_get_last_error;
    v->base.xCurrentTimeInt64 = vx_current_time_int64;
    if (sqlite3_vfs_register(&v->base, 0) != SQLITE_OK)
        goto exit;
    *out = v;
    ret = SAT_OK;
exit:
    if (ret != SAT_OK) {
        mbedtls_gcm_free(&v->gcm);
        sat_drbg_free(&v->drbg);
        mbedtls_platform_zeroize(v, sizeof *v);
        free(v);
    }
    return ret;
}

const char *vfs_crypt_name(const struct vfs_crypt *v)
{
    return v->name;
}

void vfs_crypt_unregister(struct vfs_crypt *v)
{
    if (!v)
        return;
    sqlite3_vfs_unregister(&v->base);
    mbedtls_gcm_free(&v->gcm);
    sat_drbg_free(&v->drbg);
    mbedtls_platform_zeroize(v, sizeof *v);
    free(v);
}

void vfs_crypt_get_stats(const struct vfs_crypt *v, struct vfs_crypt_stats *out)
{
    *out = v->stats;
}
