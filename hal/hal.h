/*
 * hal.h - Satchel's hardware boundary.
 *
 * Everything Satchel needs from a device or an OS goes through one struct of
 * function pointers, in the manner of SQLite's sqlite3_vfs: clock, entropy,
 * storage, key store, network, power, boot slots and log. The firmware, the
 * sync engine and the hub never call the OS themselves, so the same code runs
 * on an ARM Linux tablet (hal_posix.c), on a developer's PC (hal_posix.c) and
 * in the simulator (sim/), where time, faults and randomness come from a seed.
 *
 * Rules every implementation keeps:
 *  1. `version` is HAL_VERSION of the header it was built against. New
 *     members are only ever appended; a caller checks `version` before using
 *     a member added after version 1.
 *  2. A member may be NULL: the wrapper then answers SAT_ERR_NOT_SUPPORTED.
 *  3. Every call returns SAT_OK (0) or a negative code from sat_err.h.
 *     Nothing blocks for long: network calls answer SAT_ERR_WOULD_BLOCK
 *     instead of waiting. The only call that may sleep is net_wait.
 *  4. `ctx` is the implementation's own state, passed back on every call.
 *  5. Outputs are written only on success, except where a contract says so.
 *
 * Core code calls the hal_* wrapper functions at the bottom of this file,
 * never the pointers: that gives one place to trace and inject faults.
 */
#ifndef SATCHEL_HAL_H
#define SATCHEL_HAL_H

#include <stddef.h>
#include <stdint.h>

#include "sat_err.h"

#define HAL_VERSION 1

/* Limits. Names are flat (no directories): [A-Za-z0-9._-], not starting
 * with '.', at most this many bytes. */
#define HAL_FILE_NAME_BYTES_MAX 64
#define HAL_DEVICE_SECRET_BYTES 32
#define HAL_COUNTERS_MAX 8

/* storage_open flags */
#define HAL_OPEN_CREATE 0x1u    /* create the file if it does not exist */
#define HAL_OPEN_EXCLUSIVE 0x2u /* with CREATE: fail with SAT_ERR_EXISTS */

/* net_wait interest / readiness bits */
#define HAL_NET_READABLE 0x1u
#define HAL_NET_WRITABLE 0x2u

/* log levels */
enum hal_log_level { HAL_LOG_ERROR = 0, HAL_LOG_WARN = 1, HAL_LOG_INFO = 2, HAL_LOG_DEBUG = 3 };

/* Well-known monotonic counter slots of the key store. */
enum hal_counter {
    HAL_COUNTER_PIN_FAILURES = 0,  /* wrong PINs ever entered */
    HAL_COUNTER_PIN_CLEARED = 1,   /* PIN_FAILURES value at the last good PIN */
    HAL_COUNTER_FW_SECURITY = 2,   /* firmware anti-rollback counter */
    HAL_COUNTER_KEY_EPOCH = 3      /* bumped by keystore_wipe */
};

typedef struct hal_file hal_file; /* an open storage file, owned by the HAL */
typedef struct hal_sock hal_sock; /* a socket or listener, owned by the HAL */

/* Called once per file name by storage_list; a non-zero return stops the
 * listing and is returned by storage_list. */
typedef int (*hal_list_fn)(void *arg, const char *name);

struct hal {
    int version; /* HAL_VERSION */
    void *ctx;

    /* --- clock ---------------------------------------------------------- */
    /* Milliseconds since an arbitrary origin; never goes backwards, even when
     * the wall clock is set. */
    uint64_t (*clock_monotonic_ms)(void *ctx);
    /* Milliseconds since the Unix epoch as the device believes it: may be
     * wrong, may jump in either direction (HLC stamps absorb that). */
    int64_t (*clock_wall_ms)(void *ctx);

    /* --- entropy -------------------------------------------------------- */
    /* Fills buf with len bytes of cryptographic-quality randomness (or, in
     * the simulator, bytes from the run's seed). Fails rather than returning
     * weak bytes. Used only to seed a DRBG or for keys and nonces. */
    int (*entropy_fill)(void *ctx, uint8_t *buf, size_t len);

    /* --- storage: flat named files on flash -------------------------------
     * Durability: data written is durable only after storage_sync on that
     * file returns SAT_OK; a power cut may drop or tear unsynced writes.
     * Creating or deleting a name is durable when the call returns. */
    int (*storage_open)(void *ctx, const char *name, unsigned flags, hal_file **out);
    /* Reads up to len bytes at off; *got is how many were read (0 at or past
     * the end). A short read happens only at the end of the file. */
    int (*storage_read)(void *ctx, hal_file *f, uint64_t off, void *buf, size_t len, size_t *got);
    /* Writes all len bytes at off, extending the file (with zeros) if needed. */
    int (*storage_write)(void *ctx, hal_file *f, uint64_t off, const void *buf, size_t len);
    int (*storage_sync)(void *ctx, hal_file *f);
    int (*storage_truncate)(void *ctx, hal_file *f, uint64_t size);
    int (*storage_size)(void *ctx, hal_file *f, uint64_t *size);
    /* Always releases f, even when it reports an error. */
    int (*storage_close)(void *ctx, hal_file *f);
    /* SAT_ERR_NOT_FOUND if there is no such file. */
    int (*storage_delete)(void *ctx, const char *name);
    /* Calls fn for every file name, in no particular order. */
    int (*storage_list)(void *ctx, hal_list_fn fn, void *arg);

    /* --- key store: secrets bound to this device --------------------------
     * The device secret never leaves the key store on real hardware; on a PC
     * it lives in a file only root or the user can read. */
    /* Copies the 32-byte device secret, creating it from entropy the first
     * time it is asked for. */
    int (*keystore_device_secret)(void *ctx, uint8_t out[HAL_DEVICE_SECRET_BYTES]);
    /* Destroys the device secret for good (the next call to
     * keystore_device_secret creates a different one) and advances
     * HAL_COUNTER_KEY_EPOCH. Everything wrapped under the old secret is lost. */
    int (*keystore_wipe)(void *ctx);
    /* Monotonic counters, slot < HAL_COUNTERS_MAX, all starting at 0. */
    int (*keystore_counter_read)(void *ctx, unsigned slot, uint64_t *value);
    /* Sets a counter to value >= its current value (SAT_ERR_INVALID if lower);
     * durable when it returns. */
    int (*keystore_counter_advance)(void *ctx, unsigned slot, uint64_t value);

    /* --- network: non-blocking TCP-like byte streams ----------------------*/
    /* Starts a connection to host:port. On SAT_OK *out is a socket whose
     * connection may still be in progress: net_send / net_recv answer
     * SAT_ERR_WOULD_BLOCK until it is up, or the failure (SAT_ERR_REFUSED,
     * SAT_ERR_UNREACHABLE, SAT_ERR_TIMEOUT) once it is known. An immediate
     * failure is returned here and *out is left unset. */
    int (*net_connect)(void *ctx, const char *host, uint16_t port, hal_sock **out);
    /* SAT_OK when the connection is up, SAT_ERR_WOULD_BLOCK while it is in
     * progress, or the reason it failed. */
    int (*net_connect_status)(void *ctx, hal_sock *s);
    /* Listens on host:port (port 0 picks a free one; see net_local_port). */
    int (*net_listen)(void *ctx, const char *host, uint16_t port, hal_sock **out);
    /* A new connection from a listener, or SAT_ERR_WOULD_BLOCK. */
    int (*net_accept)(void *ctx, hal_sock *listener, hal_sock **out);
    int (*net_local_port)(void *ctx, hal_sock *s, uint16_t *port);
    /* Sends up to len bytes; *sent > 0 on SAT_OK. SAT_ERR_WOULD_BLOCK when
     * nothing could be sent now. */
    int (*net_send)(void *ctx, hal_sock *s, const void *buf, size_t len, size_t *sent);
    /* Receives up to len bytes; *got > 0 on SAT_OK. SAT_ERR_WOULD_BLOCK when
     * nothing is there yet, SAT_ERR_CLOSED when the peer closed cleanly,
     * SAT_ERR_RESET when the link broke. */
    int (*net_recv)(void *ctx, hal_sock *s, void *buf, size_t len, size_t *got);
    /* Always releases s. */
    int (*net_close)(void *ctx, hal_sock *s);
    /* Waits at most timeout_ms until one of socks[i] is ready for what
     * want[i] asks (HAL_NET_* bits); ready[i] gets what it is ready for.
     * Returns SAT_OK (some ready) or SAT_ERR_TIMEOUT. n may be 0: then it
     * just sleeps. The one HAL call that may block. */
    int (*net_wait)(void *ctx, hal_sock *const *socks, const unsigned *want, unsigned *ready,
                    size_t n, uint32_t timeout_ms);
    /* 1 if the device believes it has a link (Wi-Fi / mobile data), else 0. */
    int (*net_link_up)(void *ctx);

    /* --- power ---------------------------------------------------------- */
    /* Battery charge 0..100; SAT_ERR_NOT_SUPPORTED on mains-powered hosts. */
    int (*power_battery_pct)(void *ctx, int *pct);

    /* --- boot slots (A/B firmware) ---------------------------------------
     * Slots are 0 (A) and 1 (B). A trial slot boots once; unless the running
     * image calls boot_confirm, the next boot returns to the previous slot. */
    int (*boot_active_slot)(void *ctx, int *slot);
    int (*boot_set_trial)(void *ctx, int slot);
    int (*boot_confirm)(void *ctx);
    /* Restarts the device; on success it does not return on real hardware. */
    int (*boot_reboot)(void *ctx);

    /* --- log ------------------------------------------------------------ */
    /* One line, no trailing newline. Never contains patient data. */
    void (*log)(void *ctx, enum hal_log_level level, const char *msg);
};

/* ---- wrappers: the only way core code reaches the HAL ------------------- */
/* Each returns SAT_ERR_NOT_SUPPORTED when the member is NULL. */

uint64_t hal_clock_monotonic_ms(const struct hal *h);
int64_t hal_clock_wall_ms(const struct hal *h);
SAT_CHECK int hal_entropy_fill(const struct hal *h, uint8_t *buf, size_t len);
/* hal_entropy_fill in the form of core's sat_entropy_fn (sat_drbg.h), with
 * the struct hal as its context: the source of every DRBG of Satchel. */
int hal_entropy_source(void *hal, uint8_t *buf, size_t len);

SAT_CHECK int hal_storage_open(const struct hal *h, const char *name, unsigned flags, hal_file **out);
SAT_CHECK int hal_storage_read(const struct hal *h, hal_file *f, uint64_t off, void *buf, size_t len,
                     size_t *got);
/* Reads exactly len bytes or fails with SAT_ERR_IO (short file). */
SAT_CHECK int hal_storage_read_full(const struct hal *h, hal_file *f, uint64_t off, void *buf, size_t len);
SAT_CHECK int hal_storage_write(const struct hal *h, hal_file *f, uint64_t off, const void *buf,
                      size_t len);
SAT_CHECK int hal_storage_sync(const struct hal *h, hal_file *f);
SAT_CHECK int hal_storage_truncate(const struct hal *h, hal_file *f, uint64_t size);
SAT_CHECK int hal_storage_size(const struct hal *h, hal_file *f, uint64_t *size);
int hal_storage_close(const struct hal *h, hal_file *f);
SAT_CHECK int hal_storage_delete(const struct hal *h, const char *name);
SAT_CHECK int hal_storage_list(const struct hal *h, hal_list_fn fn, void *arg);
/* 1 if name is a valid storage file name (see limits above), else 0. */
int hal_storage_name_valid(const char *name);

SAT_CHECK int hal_keystore_device_secret(const struct hal *h, uint8_t out[HAL_DEVICE_SECRET_BYTES]);
SAT_CHECK int hal_keystore_wipe(const struct hal *h);
SAT_CHECK int hal_keystore_counter_read(const struct hal *h, unsigned slot, uint64_t *value);
SAT_CHECK int hal_keystore_counter_advance(const struct hal *h, unsigned slot, uint64_t value);

SAT_CHECK int hal_net_connect(const struct hal *h, const char *host, uint16_t port, hal_sock **out);
SAT_CHECK int hal_net_connect_status(const struct hal *h, hal_sock *s);
SAT_CHECK int hal_net_listen(const struct hal *h, const char *host, uint16_t port, hal_sock **out);
SAT_CHECK int hal_net_accept(const struct hal *h, hal_sock *listener, hal_sock **out);
SAT_CHECK int hal_net_local_port(const struct hal *h, hal_sock *s, uint16_t *port);
SAT_CHECK int hal_net_send(const struct hal *h, hal_sock *s, const void *buf, size_t len, size_t *sent);
SAT_CHECK int hal_net_recv(const struct hal *h, hal_sock *s, void *buf, size_t len, size_t *got);
int hal_net_close(const struct hal *h, hal_sock *s);
int hal_net_wait(const struct hal *h, hal_sock *const *socks, const unsigned *want,
                 unsigned *ready, size_t n, uint32_t timeout_ms);
int hal_net_link_up(const struct hal *h);

SAT_CHECK int hal_power_battery_pct(const struct hal *h, int *pct);

SAT_CHECK int hal_boot_active_slot(const struct hal *h, int *slot);
SAT_CHECK int hal_boot_set_trial(const struct hal *h, int slot);
SAT_CHECK int hal_boot_confirm(const struct hal *h);
SAT_CHECK int hal_boot_reboot(const struct hal *h);

/* printf-style; the line is cut at 512 bytes. */
void hal_log(const struct hal *h, enum hal_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
