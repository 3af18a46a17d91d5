/*
 * sim_hal.h - the HAL over virtual time and virtual flash, for tests and the
 * simulator. One seed drives everything: entropy, the order in which a power
 * cut drops, keeps or tears unsynced writes. The same seed replays a run
 * byte for byte.
 *
 * Virtual flash keeps, per file, what reads see now and what would survive
 * a power cut. Writes and truncates are pending until storage_sync on that
 * file (through any handle); creating and deleting a file are durable at
 * once (hal.h contract). At a power cut each file is replayed on its own,
 * from its durable bytes, through its pending operations in order, each
 * one chosen from the seed as SQLite's test6.c models a crash:
 *  - a write is dropped, kept or torn (one chance in three each). Torn: the
 *    part before a cut point (the write's start or a sector boundary of the
 *    file offset inside the write) lands, the sector after the cut point,
 *    clipped to the write's end, is filled with garbage, and every later
 *    pending operation of that file is dropped (the power was gone). A torn
 *    write past the end grows the file only up to where the garbage ends.
 *  - a truncate is dropped or kept (one chance in two).
 * Dropping one operation and keeping a later one is allowed: disk caches
 * reorder. The result is both what reads see and what is durable.
 * Deleting a file that has open handles removes the name at once; the
 * handles keep working on the orphan (as unlink(2)) until closed.
 * Limits: SAT_ERR_NO_SPACE when creating a file beyond SIM_FLASH_FILES_MAX,
 * or for a write or truncate beyond SIM_FLASH_FILE_BYTES_MAX.
 *
 * The key store is in memory and durable at once; counters are monotonic.
 * It, entropy and the clocks are untouched by power cuts and keep working
 * while the power is off (only storage is cut). The clocks only move when
 * told to (sim_hal_advance_ms). The log keeps its last lines in memory and
 * also prints them to stderr when SATCHEL_SIM_LOG is set. Network, power
 * and boot members are NULL for now (SAT_ERR_NOT_SUPPORTED).
 *
 * Entropy, the device secret, the cut decisions and the garbage of torn
 * sectors all come from one generator, so the same seed and the same
 * sequence of calls give the same bytes; no state is global, so several
 * simulated devices can live in one process.
 */
#ifndef SATCHEL_SIM_HAL_H
#define SATCHEL_SIM_HAL_H

#include <stddef.h>
#include <stdint.h>

#include "hal.h"

#define SIM_FLASH_SECTOR_BYTES 512
#define SIM_FLASH_FILES_MAX 64
#define SIM_FLASH_FILE_BYTES_MAX (256u * 1024u * 1024u)

struct sim_hal;

/* Creates a simulated device: no files, power on, no cut armed, monotonic
 * clock at 0, wall clock at wall_start_ms. SAT_ERR_NO_MEMORY on failure. */
int sim_hal_new(struct sim_hal **out, uint64_t seed, int64_t wall_start_ms);
/* Frees the device, including handles still open (dead or alive). NULL is
 * ignored. */
void sim_hal_free(struct sim_hal *s);

/* The HAL to hand to firmware code; valid until sim_hal_free. */
const struct hal *sim_hal_hal(struct sim_hal *s);

/* Moves both clocks forward (each saturates rather than wrapping). */
void sim_hal_advance_ms(struct sim_hal *s, uint64_t ms);
/* Sets the wall clock (may go backwards; the monotonic clock does not). */
void sim_hal_set_wall_ms(struct sim_hal *s, int64_t wall_ms);

/* Storage writes + syncs + truncates so far: the "operation count" a power
 * cut sweep steps through. Counted: every such call made through a live
 * handle while the power is on, whatever it then returns (a write refused
 * with SAT_ERR_NO_SPACE counts; a zero-length write counts), and the one an
 * armed cut fires on. Not counted: calls while off or on dead handles, and
 * opens, reads, sizes, closes, deletes and lists. */
uint64_t sim_hal_storage_ops(const struct sim_hal *s);

/* Arms a power cut at the nth storage write/sync/truncate from now (1 = the
 * very next one), counted as sim_hal_storage_ops counts; 0 disarms; a new
 * call replaces the old arming. When it fires, that operation does not
 * happen (a write is not even pending, a sync makes nothing durable), the
 * cut is applied as by sim_hal_power_cut, and the operation and every later
 * storage call fail with SAT_ERR_POWER_CUT until sim_hal_power_on. It fires
 * once; any cut, fired or manual, disarms it. A sweep: for n = 1, 2, ...
 * replay the workload on a fresh device with the same seed and cut_at(n),
 * until a run ends without the cut firing. */
void sim_hal_cut_at(struct sim_hal *s, uint64_t nth);

/* 1 once an armed cut has fired (or sim_hal_power_cut was called) and power
 * is still off. */
int sim_hal_powered_off(const struct sim_hal *s);

/* Cuts power now: unsynced writes are dropped, kept or torn (see the top of
 * this file). Handles opened before the cut are dead, also after
 * sim_hal_power_on: every call on them fails with SAT_ERR_POWER_CUT
 * (storage_close just frees them and returns SAT_OK). No-op while off. */
void sim_hal_power_cut(struct sim_hal *s);

/* Power back on: storage works again through newly opened handles; files
 * are as the cut left them. No-op while on. */
void sim_hal_power_on(struct sim_hal *s);

/* Test access to a file's bytes as they sit on flash now (current view;
 * right after a cut, what survived it). Works while powered off. *bytes
 * (never NULL, even for an empty file) stays valid until the next storage
 * call, power cut or sim_hal_free. Writing through it (bit rot, tampering)
 * changes what reads see at once, and also what survives a cut provided
 * the file has no pending operations (it was synced, or a cut just
 * happened); otherwise a cut replays from the durable bytes and the change
 * is lost. It cannot change the length. SAT_ERR_NOT_FOUND if there is no
 * such file. */
int sim_hal_file_bytes(struct sim_hal *s, const char *name, uint8_t **bytes, size_t *len);

#endif
