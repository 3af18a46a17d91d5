/* vfs_crypt.c - see vfs_crypt.h for the format and the rules. */
#include "vfs_crypt.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/gcm.h>
#include <mbedtls/platform_util.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK VFS_CRYPT_BLOCK_BYTES
#define SLOT VFS_CRYPT_SLOT_BYTES
#define AAD_BYTES (VFS_CRYPT_STORE_ID_BYTES + 1 + 8)
#define MXPATHNAME (HAL_FILE_NAME_BYTES_MAX + 1)
/* Unix epoch as a Julian day number in milliseconds (xCurrentTimeInt64). */
#define JULIAN_EPOCH_MS 210866760000000LL

enum file_kind { KIND_MEMORY = 0, KIND_DB = 'D', KIND_JOURNAL = 'J' };

struct vfs_crypt {
    sqlite3_vfs base; /* first: SQLite hands us this pointer */
    const struct hal *hal;
    mbedtls_gcm_context gcm;
    mbedtls_ctr_drbg_context drbg;
    uint8_t store_id[VFS_CRYPT_STORE_ID_BYTES];
    char name[40];
    struct vfs_crypt_stats stats;
};

struct cfile {
    sqlite3_file base; /* first: SQLite hands us this pointer */
    struct vfs_crypt *v;
    enum file_kind kind;
    hal_file *hf;
    uint64_t size;        /* logical size SQLite sees */
    uint64_t disk_blocks; /* whole slots present on storage */
    int64_t cache_block;  /* block held in `cache`, or -1 */
    int cache_dirty;
    uint8_t cache[BLOCK];
    uint8_t slot[SLOT];
    /* memory files */
    uint8_t *mem;
    size_t mem_cap;
};

/* ---- block sealing ------------------------------------------------------ */

static void make_aad(const struct cfile *f, uint64_t block, uint8_t aad[AAD_BYTES])
{
    memcpy(aad, f->v->store_id, VFS_CRYPT_STORE_ID_BYTES);
    aad[VFS_CRYPT_STORE_ID_BYTES] = (uint8_t)f->kind;
    for (int i = 0; i < 8; i++)
        aad[VFS_CRYPT_STORE_ID_BYTES + 1 + i] = (uint8_t)(block >> (56 - 8 * i));
}

/* Seals plaintext block `block` and writes its slot, first filling any gap
 * before it with sealed zero blocks (so every slot below disk_blocks is
 * authentic). */
static int block_write(struct cfile *f, uint64_t block, const uint8_t *plain);

static int seal_and_write(struct cfile *f, uint64_t block, const uint8_t *plain)
{
    uint8_t aad[AAD_BYTES];
    uint8_t *nonce = f->slot;
    uint8_t *tag = f->slot + VFS_CRYPT_NONCE_BYTES;
    uint8_t *ct = tag + VFS_CRYPT_TAG_BYTES;
    int rc;
    make_aad(f, block, aad);
    if (mbedtls_ctr_drbg_random(&f->v->drbg, nonce, VFS_CRYPT_NONCE_BYTES) != 0)
        return SQLITE_IOERR_WRITE;
    if (mbedtls_gcm_crypt_and_tag(&f->v->gcm, MBEDTLS_GCM_ENCRYPT, BLOCK, nonce,
                                  VFS_CRYPT_NONCE_BYTES, aad, sizeof aad, plain, ct,
                                  VFS_CRYPT_TAG_BYTES, tag) != 0)
        return SQLITE_IOERR_WRITE;
    rc = hal_storage_write(f->v->hal, f->hf, block * SLOT, f->slot, SLOT);
    if (rc != SAT_OK)
        return rc == SAT_ERR_NO_SPACE ? SQLITE_FULL : SQLITE_IOERR_WRITE;
    f->v->stats.blocks_sealed++;
    if (block + 1 > f->disk_blocks)
        f->disk_blocks = block + 1;
    return SQLITE_OK;
}

static int cache_flush(struct cfile *f);

static int block_write(struct cfile *f, uint64_t block, const uint8_t *plain)
{
    static const uint8_t zero[BLOCK];
    /* A kept-back block inside the gap is written as itself, not as zeros. */
    if (f->cache_dirty && f->cache_block >= (int64_t)f->disk_blocks &&
        f->cache_block < (int64_t)block) {
        int rc = cache_flush(f);
        if (rc != SQLITE_OK)
            return rc;
    }
    while (f->disk_blocks < block) {
        int rc = seal_and_write(f, f->disk_blocks, zero);
        if (rc != SQLITE_OK)
            return rc;
    }
    return seal_and_write(f, block, plain);
}

/* Reads and opens block `block` into out. Blocks past the slots on storage
 * read as zeros. SQLITE_IOERR_DATA if authentication fails (out zeroed). */
static int block_read(struct cfile *f, uint64_t block, uint8_t *out)
{
    uint8_t aad[AAD_BYTES];
    const uint8_t *nonce = f->slot;
    const uint8_t *tag = f->slot + VFS_CRYPT_NONCE_BYTES;
    const uint8_t *ct = tag + VFS_CRYPT_TAG_BYTES;
    if (block >= f->disk_blocks) {
        memset(out, 0, BLOCK);
        return SQLITE_OK;
    }
    if (hal_storage_read_full(f->v->hal, f->hf, block * SLOT, f->slot, SLOT) != SAT_OK)
        return SQLITE_IOERR_READ;
    make_aad(f, block, aad);
    if (mbedtls_gcm_auth_decrypt(&f->v->gcm, BLOCK, nonce, VFS_CRYPT_NONCE_BYTES, aad,
                                 sizeof aad, tag, VFS_CRYPT_TAG_BYTES, ct, out) != 0) {
        mbedtls_platform_zeroize(out, BLOCK);
        f->v->stats.auth_failures++;
        return SQLITE_IOERR_DATA;
    }
    f->v->stats.blocks_opened++;
    return SQLITE_OK;
}

static int cache_flush(struct cfile *f)
{
    int rc;
    if (f->cache_block < 0 || !f->cache_dirty)
        return SQLITE_OK;
    rc = block_write(f, (uint64_t)f->cache_block, f->cache);
    if (rc == SQLITE_OK)
        f->cache_dirty = 0;
    return rc;
}

/* Makes `cache` hold block `block`, flushing whatever it held. for_write:
 * the block is about to be partly overwritten; a journal block that fails
 * authentication is then the journal's torn end and starts over as zeros. */
static int cache_load(struct cfile *f, uint64_t block, int for_write)
{
    int rc;
    if (f->cache_block == (int64_t)block)
        return SQLITE_OK;
    rc = cache_flush(f);
    if (rc != SQLITE_OK)
        return rc;
    f->cache_block = -1;
    rc = block_read(f, block, f->cache);
    if (rc == SQLITE_IOERR_DATA && for_write && f->kind == KIND_JOURNAL)
        rc = SQLITE_OK; /* block_read left the cache zeroed */
    if (rc != SQLITE_OK)
        return rc;
    f->cache_block = (int64_t)block;
    f->cache_dirty = 0;
    return SQLITE_OK;
}

static void cache_drop(struct cfile *f)
{
    f->cache_block = -1;
    f->cache_dirty = 0;
    mbedtls_platform_zeroize(f->cache, BLOCK);
}

/* ---- encrypted file methods --------------------------------------------- */

static int cf_close(sqlite3_file *file)
{
    struct cfile *f = (struct cfile *)file;
    int rc = cache_flush(f);
    if (hal_storage_close(f->v->hal, f->hf) != SAT_OK && rc == SQLITE_OK)
        rc = SQLITE_IOERR_CLOSE;
    mbedtls_platform_zeroize(f->cache, BLOCK);
    mbedtls_platform_zeroize(f->slot, SLOT);
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

    while (pos < avail_end) {
        uint64_t block = pos / BLOCK;
        size_t in_off = (size_t)(pos % BLOCK);
        size_t n = BLOCK - in_off;
        if (n > avail_end - pos)
            n = (size_t)(avail_end - pos);
        if (f->cache_block == (int64_t)block) {
            memcpy(out, f->cache + in_off, n);
        } else if (in_off == 0 && n == BLOCK) {
            rc = block_read(f, block, out);
        } else {
            rc = cache_load(f, block, 0);
            if (rc == SQLITE_OK)
                memcpy(out, f->cache + in_off, n);
        }
        if (rc != SQLITE_OK)
            break;
        out += n;
        pos += n;
    }
    if (rc == SQLITE_IOERR_DATA && (f->kind == KIND_JOURNAL || amt < BLOCK)) {
        /* A journal's unauthentic block is its torn end; a partial read of
         * the database only peeks at header fields before SQLite decides
         * whether a hot journal must first repair the file (see header). */
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
        uint64_t block = pos / BLOCK;
        size_t in_off = (size_t)(pos % BLOCK);
        size_t n = BLOCK - in_off;
        if (n > end - pos)
            n = (size_t)(end - pos);
        if (in_off == 0 && n == BLOCK) {
            /* A whole block: seal straight from SQLite's buffer. */
            if (f->cache_block == (int64_t)block)
                cache_drop(f);
            rc = block_write(f, block, in);
        } else {
            rc = cache_load(f, block, 1);
            if (rc == SQLITE_OK) {
                memcpy(f->cache + in_off, in, n);
                f->cache_dirty = 1;
            }
        }
        if (rc != SQLITE_OK)
            return rc;
        in += n;
        pos += n;
    }
    if (end > f->size)
        f->size = end;
    return SQLITE_OK;
}

static int cf_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    struct cfile *f = (struct cfile *)file;
    uint64_t sz = (uint64_t)size;
    uint64_t keep = (sz + BLOCK - 1) / BLOCK;
    int rc;
    if (f->cache_block >= 0 && (uint64_t)f->cache_block >= keep)
        cache_drop(f);
    if (sz % BLOCK != 0 && sz < f->size) {
        /* Zero the cut-off tail of the new last block, so that growing the
         * file again reads zeros there. */
        rc = cache_load(f, sz / BLOCK, 1);
        if (rc != SQLITE_OK)
            return rc;
        memset(f->cache + sz % BLOCK, 0, BLOCK - sz % BLOCK);
        f->cache_dirty = 1;
    }
    if (keep < f->disk_blocks) {
        if (hal_storage_truncate(f->v->hal, f->hf, keep * SLOT) != SAT_OK)
            return SQLITE_IOERR_TRUNCATE;
        f->disk_blocks = keep;
    }
    f->size = sz;
    return SQLITE_OK;
}

static int cf_sync(sqlite3_file *file, int flags)
{
    struct cfile *f = (struct cfile *)file;
    int rc = cache_flush(f);
    (void)flags;
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

static int cf_sector_size(sqlite3_file *file)
{
    (void)file;
    return BLOCK;
}

static int no_characteristics(sqlite3_file *file)
{
    (void)file;
    return 0;
}

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
    .xFileControl = nop_file_control,
    .xSectorSize = cf_sector_size,
    .xDeviceCharacteristics = no_characteristics,
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
    if (out_flags)
        *out_flags = flags;
    if (name == NULL || (flags & memory_kinds)) {
        f->kind = KIND_MEMORY;
        f->base.pMethods = &mfile_methods;
        return SQLITE_OK;
    }
    if (flags & SQLITE_OPEN_MAIN_DB)
        f->kind = KIND_DB;
    else if (flags & (SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_WAL))
        f->kind = KIND_JOURNAL;
    else
        return SQLITE_CANTOPEN; /* super-journals: one database per store */

    ret = hal_storage_open(v->hal, name, (flags & SQLITE_OPEN_CREATE) ? HAL_OPEN_CREATE : 0,
                           &f->hf);
    if (ret != SAT_OK)
        return SQLITE_CANTOPEN;
    if (hal_storage_size(v->hal, f->hf, &phys) != SAT_OK) {
        hal_storage_close(v->hal, f->hf);
        return SQLITE_IOERR_FSTAT;
    }
    f->disk_blocks = phys / SLOT; /* a trailing partial slot is a torn extension */
    f->size = f->disk_blocks * BLOCK;
    f->base.pMethods = &cfile_methods;
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
    if (mbedtls_ctr_drbg_random(&v->drbg, (unsigned char *)out, (size_t)n) != 0)
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

static int drbg_entropy(void *arg, unsigned char *out, size_t len)
{
    const struct hal *h = arg;
    return hal_entropy_fill(h, out, len) == SAT_OK ? 0 : -1;
}

int vfs_crypt_register(const struct hal *h, const uint8_t key[VFS_CRYPT_KEY_BYTES],
                       const uint8_t store_id[VFS_CRYPT_STORE_ID_BYTES], struct vfs_crypt **out)
{
    static unsigned serial;
    struct vfs_crypt *v = calloc(1, sizeof *v);
    int ret = SAT_ERR_KEYS_CRYPTO;
    if (!v)
        return SAT_ERR_NO_MEMORY;
    mbedtls_gcm_init(&v->gcm);
    mbedtls_ctr_drbg_init(&v->drbg);
    v->hal = h;
    memcpy(v->store_id, store_id, VFS_CRYPT_STORE_ID_BYTES);
    if (mbedtls_gcm_setkey(&v->gcm, MBEDTLS_CIPHER_ID_AES, key, VFS_CRYPT_KEY_BYTES * 8) != 0)
        goto exit;
    if (mbedtls_ctr_drbg_seed(&v->drbg, drbg_entropy, (void *)h,
                              (const unsigned char *)"satchel vfs", 11) != 0)
        goto exit;
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
        mbedtls_ctr_drbg_free(&v->drbg);
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
    mbedtls_ctr_drbg_free(&v->drbg);
    mbedtls_platform_zeroize(v, sizeof *v);
    free(v);
}

void vfs_crypt_get_stats(const struct vfs_crypt *v, struct vfs_crypt_stats *out)
{
    *out = v->stats;
}
