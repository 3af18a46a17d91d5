/*
 * vfs_crypt.h - an SQLite VFS that keeps every file encrypted on HAL storage.
 *
 * Layout: a file is a sequence of slots, one per 4096-byte block of the
 * file SQLite sees:   nonce (12) | GCM tag (16) | ciphertext (4096)
 * Each block is sealed with AES-256-GCM under the store key, with a fresh
 * random nonce per write (CTR-DRBG seeded from the HAL), and associated data
 *     store id (16) | file kind (1: 'D' database, 'J' journal) | block no. (8)
 * so an edited, swapped or transplanted block fails authentication.
 *
 * Only plaintext SQLite asks for is ever in memory; nothing plaintext goes
 * through the HAL. Temporary files (temp databases, statement and sort
 * journals, any file opened without a name) stay in memory.
 *
 * Durability: xSync flushes the one block a file keeps back (a partially
 * written block, so journal records written in pieces are sealed once) and
 * then syncs the HAL file. The VFS claims no atomic-write, safe-append or
 * power-safe-overwrite capability, and a sector size of one block, so
 * SQLite's rollback journal does all the protecting and each journal header
 * sits alone in its block.
 *
 * Integrity rules:
 *  - a database block that fails authentication is SQLITE_IOERR_DATA (the
 *    store reports SAT_ERR_STORE_CORRUPT); never wrong data;
 *  - a journal block that fails authentication is read as the end of the
 *    journal (SQLITE_IOERR_SHORT_READ, zeros), exactly as SQLite treats a
 *    journal cut short: only a journal's unsynced tail can be torn by a
 *    power cut, and SQLite never trusts an unsynced journal;
 *  - a trailing partial slot (an extension torn by a power cut) is ignored.
 * Not detected: replaying an older, authentic version of a block in the
 * same place (that needs a counter or hash tree over the file).
 *
 * Locking is a no-op: one process owns the store on a tablet.
 */
#ifndef SATCHEL_VFS_CRYPT_H
#define SATCHEL_VFS_CRYPT_H

#include <stdint.h>

#include "hal.h"

#define VFS_CRYPT_BLOCK_BYTES 4096
#define VFS_CRYPT_NONCE_BYTES 12
#define VFS_CRYPT_TAG_BYTES 16
#define VFS_CRYPT_SLOT_BYTES (VFS_CRYPT_NONCE_BYTES + VFS_CRYPT_TAG_BYTES + VFS_CRYPT_BLOCK_BYTES)
#define VFS_CRYPT_KEY_BYTES 32
#define VFS_CRYPT_STORE_ID_BYTES 16

struct vfs_crypt;

struct vfs_crypt_stats {
    uint64_t blocks_sealed;   /* blocks encrypted and written */
    uint64_t blocks_opened;   /* blocks read and decrypted */
    uint64_t auth_failures;   /* blocks that failed authentication */
};

/* Registers a new VFS (not the default) over h with the given key and store
 * id; *out receives it, and vfs_crypt_name() the name to pass to
 * sqlite3_open_v2. The key is copied. Returns SAT_OK, SAT_ERR_NO_MEMORY or
 * SAT_ERR_KEYS_CRYPTO. */
int vfs_crypt_register(const struct hal *h, const uint8_t key[VFS_CRYPT_KEY_BYTES],
                       const uint8_t store_id[VFS_CRYPT_STORE_ID_BYTES], struct vfs_crypt **out);

const char *vfs_crypt_name(const struct vfs_crypt *v);

/* Unregisters and frees v, zeroizing its key. Every database opened on it
 * must be closed first. NULL is ignored. */
void vfs_crypt_unregister(struct vfs_crypt *v);

void vfs_crypt_get_stats(const struct vfs_crypt *v, struct vfs_crypt_stats *out);

#endif
