/*
 * hal_posix.h - the HAL on Linux: ARM tablets and developers' PCs alike.
 *
 * Storage files live in one data directory (created 0700 if missing). The
 * key store and the boot-slot state live in its hidden subdirectory
 * ".keystore" (0700), which storage names cannot reach because they may not
 * start with '.'. On a tablet with a hardware key store, that directory is
 * what a TEE-backed build would replace.
 *
 * The log goes to stderr; lines above `log_level` are dropped. The level
 * starts from the SATCHEL_LOG environment variable (error, warn, info,
 * debug), default warn.
 */
#ifndef SATCHEL_HAL_POSIX_H
#define SATCHEL_HAL_POSIX_H

#include "hal.h"

/* Fills *h with the POSIX HAL rooted at data_dir. Returns SAT_OK, or
 * SAT_ERR_IO / SAT_ERR_NO_MEMORY with nothing to free. */
SAT_CHECK int hal_posix_open(struct hal *h, const char *data_dir);

/* Releases what hal_posix_open took. Safe on a zeroed struct. */
void hal_posix_close(struct hal *h);

/* Changes which log lines are printed. */
void hal_posix_set_log_level(struct hal *h, enum hal_log_level level);

#endif
