/*
 * vfs_crypt.h - an SQLite VFS that keeps every file encrypted on HAL storage.
 *
 * Layout: a file is a sequence of slots, one per block of the file SQLite
 * sees, each sealed with AES-256-GCM under the store key with a fresh
 * random nonce per write (CTR-DRBG seeded from the HAL):
 *     seal(kind, no, P) = nonce (12) | GCM tag (16) | ciphertext of P
 * with associated data
 *     store id (16) | file kind (1) | number (8)  [| a tag (16), see below]
 * so an edited, swapped or transplanted block fails authentication.
 *
 *  - Database ('D') and rollback journal ('J'): B-byte blocks (B =
 *    VFS_CRYPT_BLOCK_BYTES, 1024, SQLite's page size), block n at offset
 *    n * (B + 28) as seal(kind, n, block).
 *  - WAL ('W'): blocks follow SQLite's WAL layout (page size B), so that
 *    a frame is written, sealed and read as one unit:
 *      block 0, the 32-byte WAL header, at offset 0 (60 bytes):
 *          seal('W', 0, header)
 *      block k >= 1, frame k-1 (24-byte frame header + B-byte page), at
 *      offset 60 + (k-1) * (B + 80):
 *          seal('W', k, frame header) with the page slot's tag bound in
 *        | seal('D', pgno - 1, page)   (pgno from the frame header)
 *    The page is sealed exactly as the database slot of that page, so a
 *    checkpoint copies it into the database as it stands: a page leaves the
 *    WAL without being sealed again, nor opened (between
 *    SQLITE_FCNTL_CKPT_START and _DONE, a read of a frame's page hands
 *    SQLite the ciphertext, and only the write of those very bytes to that
 *    page is accepted, as the sealed page). The frame header (SQLite's
 *    checksums of the plaintext are in it) is sealed on its own, bound to
 *    its place and, through the tag, to its page.
 *
 * Only plaintext SQLite asks for is ever in memory; nothing plaintext goes
 * through the HAL. Temporary files (temp databases, statement and sort
 * journals, any file opened without a name) stay in memory.
 *
 * Durability: each file keeps one block back in a write-back cache, so a
 * block SQLite writes in pieces (journal records, a WAL frame's header and
 * page) is sealed once; xSync flushes it and then syncs the HAL file. A
 * block written only in part is read first only if bytes of it that
 * SQLite may read back would otherwise be lost: never past the end of the
 * file, and not past what the current rollback journal has used (stale
 * records of an earlier transaction, which SQLite never reads back).
 *
 * Device characteristics: no atomic write, no safe append. In rollback
 * journal mode nothing else is claimed and the sector size is one block,
 * so SQLite's journal does all the protecting and each journal header sits
 * alone in its block. While a WAL is open, the database claims
 * SQLITE_IOCAP_POWERSAFE_OVERWRITE (unless it was ever written in part):
 * each WAL frame and each database page is its own slot, written whole, so
 * appending a frame or checkpointing a page cannot disturb a committed
 * frame or another page (this assumes the storage itself does not damage
 * bytes it was not asked to write, as SQLite's unix VFS does). Without it
 * SQLite would pad every commit with copies of its last frame.
 *
 * WAL needs locking_mode=EXCLUSIVE: the io methods are version 1 (no shared
 * memory), and in exclusive mode SQLite keeps the WAL index in its heap.
 * One WAL may be open per VFS.
 *
 * Integrity rules:
 *  - a database block that fails authentication is SQLITE_IOERR_DATA (the
 *    store reports SAT_ERR_STORE_CORRUPT); never wrong data. (A read of
 *    part of a block, SQLite peeking at header fields before it reads whole
 *    pages, gets zeros and SQLITE_IOERR_SHORT_READ instead; the page read
 *    that follows fails.);
 *  - a journal block that fails authentication reads as zeros and
 *    SQLITE_OK, as if never written, which SQLite takes as the end of the
 *    journal (page number 0, no header magic, no super-journal name): only
 *    a journal's unsynced tail can be torn by a power cut, and SQLite never
 *    trusts an unsynced journal. (Not SQLITE_IOERR_SHORT_READ: a hot
 *    journal's rollback stops at a short read of its last 16 bytes, where
 *    a super-journal name would be, and the database would not reopen.);
 *  - a WAL block that fails authentication, read from its start (as WAL
 *    recovery reads the header and each frame), reads as zeros and
 *    SQLITE_OK: zeros fail the frame's salt and checksum check, so recovery
 *    ends the log there, as it must at a torn, unsynced tail (a short read
 *    would make recovery fail instead). Read any other way (a page read of
 *    a frame recovery already accepted, or a checkpoint reading a frame
 *    whose header fails) it is SQLITE_IOERR_DATA. A checkpoint checks only
 *    each frame's header: a damaged page is copied as it is, and reading
 *    its database slot is SQLITE_IOERR_DATA;
 *  - a trailing partial slot (an extension torn by a power cut) is ignored.
 * Not detected: replaying an older, authentic version of a block in the
 * same place (that needs a counter or hash tree over the file), and so
 * also cutting a journal or WAL short, which looks like a torn tail.
 *
 * Locking is a no-op: one process owns the store on a tablet.
 */
#ifndef SATCHEL_VFS_CRYPT_H
#define SATCHEL_VFS_CRYPT_H

#include <stdint.h>

#include "hal.h"

/* The block, and so SQLite's page size. 1 KiB rather than 4 KiB: a commit
 * seals every page it dirtied, whole, and a nurse's commit dirties scattered
 * index leaves (a random patient each), so smaller pages mean fewer bytes
 * through AES-GCM per commit: measured (bench_store) 22 KiB instead of
 * 57 KiB sealed per 10-observation commit, the nurse day 27-43% faster. A
 * plain literal: the store stringifies it into PRAGMA page_size. */
#define VFS_CRYPT_BLOCK_BYTES 1024
#define VFS_CRYPT_NONCE_BYTES 12
#define VFS_CRYPT_TAG_BYTES 16
#define VFS_CRYPT_SLOT_BYTES (VFS_CRYPT_NONCE_BYTES + VFS_CRYPT_TAG_BYTES + VFS_CRYPT_BLOCK_BYTES)
#define VFS_CRYPT_KEY_BYTES 32
#define VFS_CRYPT_STORE_ID_BYTES 16
/* WAL layout (SQLite's, page size VFS_CRYPT_BLOCK_BYTES) and its slots. */
#define VFS_CRYPT_WAL_HEADER_BYTES 32
#define VFS_CRYPT_WAL_FRAME_HEADER_BYTES 24
#define VFS_CRYPT_WAL_FRAME_BYTES (VFS_CRYPT_WAL_FRAME_HEADER_BYTES + VFS_CRYPT_BLOCK_BYTES)
#define VFS_CRYPT_WAL_HEADER_SLOT_BYTES \
    (VFS_CRYPT_NONCE_BYTES + VFS_CRYPT_TAG_BYTES + VFS_CRYPT_WAL_HEADER_BYTES)
#define VFS_CRYPT_WAL_FRAME_SLOT_BYTES                                                   \
    (VFS_CRYPT_NONCE_BYTES + VFS_CRYPT_TAG_BYTES + VFS_CRYPT_WAL_FRAME_HEADER_BYTES + \
     VFS_CRYPT_SLOT_BYTES)

struct vfs_crypt;

struct vfs_crypt_stats {
    uint64_t blocks_sealed;   /* blocks (WAL frames, WAL headers) encrypted and written */
    uint64_t blocks_opened;   /* blocks read and decrypted */
    uint64_t auth_failures;   /* blocks or frame headers that failed authentication */
    uint64_t blocks_copied;   /* database pages a checkpoint copied sealed from the WAL */
    /* Not counted: a WAL frame's 24-byte header sealed or opened alone
     * (SQLite rewriting a frame's checksums or its page in place). */
};

/* Registers a new VFS (not the default) over h with the given key and store
 * id; *out receives it, and vfs_crypt_name() the name to pass to
 * sqlite3_open_v2. The key is copied. Returns SAT_OK, SAT_ERR_NO_MEMORY or
 * SAT_ERR_KEYS_CRYPTO. */
SAT_CHECK int vfs_crypt_register(const struct hal *h, const uint8_t key[VFS_CRYPT_KEY_BYTES],
                       const uint8_t store_id[VFS_CRYPT_STORE_ID_BYTES], struct vfs_crypt **out);

const char *vfs_crypt_name(const struct vfs_crypt *v);

/* Unregisters and frees v, zeroizing its key. Every database opened on it
 * must be closed first. NULL is ignored. */
void vfs_crypt_unregister(struct vfs_crypt *v);

void vfs_crypt_get_stats(const struct vfs_crypt *v, struct vfs_crypt_stats *out);

#endif
