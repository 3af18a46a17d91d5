/*
 * fuzz_world.h - the small, fixed world the sync fuzz targets run in, and
 * that gen_corpus records its seed sessions in: a hub store in memory with
 * three registered tablets and a few changes of their teams, and a
 * tablet's flash (its encrypted store, with a few records of its own).
 *
 * Everything is rebuilt from fixed seeds, so it is the same in every run,
 * in the fuzzers, the replay driver and the corpus generator alike: a seed
 * recorded by gen_corpus names the ids and sequences the targets meet.
 */
#ifndef SATCHEL_FUZZ_WORLD_H
#define SATCHEL_FUZZ_WORLD_H

#include <stddef.h>
#include <stdint.h>

#include "hub_store.h"
#include "keys.h"
#include "sim_hal.h"
#include "store.h"
#include "sync_glue.h"

/* The simulated tablet's seed and wall clock (2026-11-01T00:00:00Z). */
#define FUZZ_TABLET_SEED 0x5A7C4E1Bu
#define FUZZ_WALL_START_MS 1793491200000LL
/* What the hub's clock reads in every session. */
#define FUZZ_HUB_TIME_MS (FUZZ_WALL_START_MS + 3600000LL)

/* The tablet under test ("north"), a colleague ("north"), a tablet of
 * another team ("south"). */
extern const uint8_t fuzz_dev_id[HUB_ID_BYTES];
extern const uint8_t fuzz_colleague_id[HUB_ID_BYTES];
extern const uint8_t fuzz_south_id[HUB_ID_BYTES];
/* Patients the hub holds: one of north's (with an observation), one that
 * moved from north to south (a purge for north), one of south's. */
extern const uint8_t fuzz_patient_north[HUB_ID_BYTES];
extern const uint8_t fuzz_patient_moved[HUB_ID_BYTES];
extern const uint8_t fuzz_patient_south[HUB_ID_BYTES];

/* One FieldChange of each value type. */
void fuzz_change_text(satchel_FieldChange *c, const uint8_t record[HUB_ID_BYTES], int kind,
                      uint32_t field, const char *text, uint64_t wall_ms,
                      const uint8_t origin[HUB_ID_BYTES], uint64_t seq);
void fuzz_change_int(satchel_FieldChange *c, const uint8_t record[HUB_ID_BYTES], int kind,
                     uint32_t field, int64_t value, uint64_t wall_ms,
                     const uint8_t origin[HUB_ID_BYTES], uint64_t seq);
void fuzz_change_blob(satchel_FieldChange *c, const uint8_t record[HUB_ID_BYTES], int kind,
                      uint32_t field, const uint8_t blob[HUB_ID_BYTES], uint64_t wall_ms,
                      const uint8_t origin[HUB_ID_BYTES], uint64_t seq);

/* Restarts SQLite's own random generator from a fixed seed. SQLite seeds
 * it once per process from the default VFS (the OS's randomness), not from
 * the VFS of a database, and draws from it for a WAL's salts: without this
 * a store's log would hold other bytes in every run. Every fuzz input and
 * the corpus generator start from here. */
void fuzz_sqlite_reseed(void);

/* A new in-memory hub store holding the world (see the top). */
int fuzz_hub_open(struct hub_store **out);
/* The hub's clock for hub_session_init: FUZZ_HUB_TIME_MS. */
int64_t fuzz_hub_clock(void *arg);

/* Every file of a simulated device's flash, copied out. */
#define FUZZ_FLASH_FILES_MAX 8
struct fuzz_flash {
    size_t n;
    char name[FUZZ_FLASH_FILES_MAX][HAL_FILE_NAME_BYTES_MAX + 1];
    uint8_t *bytes[FUZZ_FLASH_FILES_MAX];
    size_t len[FUZZ_FLASH_FILES_MAX];
};

int fuzz_flash_save(struct sim_hal *sim, struct fuzz_flash *out);
/* Writes (and syncs) every file of f into the storage of h. */
int fuzz_flash_load(const struct hal *h, const struct fuzz_flash *f);
/* Writes one file (created or replaced) and syncs it. */
int fuzz_file_write(const struct hal *h, const char *name, const uint8_t *bytes, size_t len);
void fuzz_flash_free(struct fuzz_flash *f);

/* ---- keys ------------------------------------------------------------------ */

#define FUZZ_KEYS_SEED 0x6B657973u
/* The PIN the corpus's key files were enrolled with. */
#define FUZZ_PIN "2468"
/* Enrolment's fixed PBKDF2 count (the least keys_enrol takes): a fuzzer
 * runs many PIN checks a second. */
#define FUZZ_KDF_ITERATIONS 1000u

/* A simulated tablet for the key file: its device secret is made before
 * anything else draws entropy, so it is the same wherever this is called. */
int fuzz_keys_device(struct sim_hal **out);
/* The fleet's recovery key pair of the corpus (from its own seed). */
int fuzz_recovery_key(uint8_t pub[KEYS_RECOVERY_PUB_BYTES],
                      uint8_t priv[KEYS_RECOVERY_PRIV_BYTES]);

/* ---- the tablet --------------------------------------------------------------- */

/* A tablet: a simulated device, its unlocked keys (a fixed data key), its
 * open store and the sync glue over them. */
struct fuzz_tablet {
    struct sim_hal *sim;
    struct keys k;
    struct store *s; /* NULL once a revocation wiped it */
    struct sync_glue glue;
    struct sync_replica replica;
};

/* Makes the tablet's flash: a store whose device id is fuzz_dev_id, with a
 * patient of north, a visit, an observation, a care note and a task, none
 * of it pushed yet. */
int fuzz_tablet_template(struct fuzz_flash *out);
/* A fresh simulated tablet (FUZZ_TABLET_SEED) with `flash` on it, its
 * store open. */
int fuzz_tablet_open(struct fuzz_tablet *t, const struct fuzz_flash *flash);
void fuzz_tablet_close(struct fuzz_tablet *t);

/* Reads s as a nurse's screens would: every patient with its visits,
 * observations, notes and tasks (a bounded number of each), the change
 * log, the conflicts, the content hash, an id lookup. Errors are answers
 * too: only what breaks the reader (a crash, a sanitizer) matters. */
void fuzz_store_read_all(struct store *s);

/* ---- store files as SQLite sees them ----------------------------------------
 * flags: SQLITE_OPEN_MAIN_DB (caseload.db) or SQLITE_OPEN_WAL
 * (caseload.db-wal). Both go through vfs_crypt with the store key of k, in
 * the units SQLite itself uses (pages; the WAL's header, then frames). */

/* The plaintext of file `name` of h's store (malloc'd into *out). */
int fuzz_store_file_read(const struct hal *h, const struct keys *k, const char *name, int flags,
                         uint8_t **out, size_t *len);
/* Makes file `name` of h's store hold `plain` (len bytes), sealed. */
int fuzz_store_file_seal(const struct hal *h, const struct keys *k, const char *name, int flags,
                         const uint8_t *plain, size_t len);

#endif
