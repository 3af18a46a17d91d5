/*
 * sim_hal_internal.h - what the files of the simulated HAL share; not for
 * use outside sim_hal.c, sim_rand.c, sim_flash.c, sim_net.c and
 * sim_sock.c (everyone else uses sim_hal.h).
 *
 * One simulated device is one struct sim_hal. Who owns what in it:
 *  - sim_hal.c: the struct itself (sim_hal_new, sim_hal_free), struct hal
 *    and its clock, entropy, key store, battery and log members, and the
 *    power state (powered_off, power_epoch): a handle or socket made in an
 *    older epoch is dead.
 *  - sim_rand.c: the generator (prng), the one source of every draw.
 *  - sim_flash.c: the directory of files, the open handles and the
 *    storage counters (storage_ops, cut_countdown).
 *  - sim_net.c and sim_sock.c: the device's place on a virtual network
 *    (net, node) and its sockets (socks).
 * Each of those files installs its own members into struct hal (the
 * *_install functions below); sim_hal_new calls them.
 */
#ifndef SATCHEL_SIM_HAL_INTERNAL_H
#define SATCHEL_SIM_HAL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sim_hal.h"

#define SIM_LOG_LINES_MAX 32
#define SIM_LOG_LINE_BYTES_MAX 256

/* ---- the seeded generator (sim_rand.c) ------------------------------------
 *
 * xoshiro256** seeded by splitmix64: the same seed gives the same stream
 * on every host. Not for keys outside the simulator. */

struct sim_prng {
    uint64_t s[4];
};

/* Seeds p from seed (any value, 0 included). */
void sim_prng_seed(struct sim_prng *p, uint64_t seed);
/* Uniform in [0, n), n > 0, without modulo bias. */
uint64_t sim_prng_below(struct sim_prng *p, uint64_t n);
/* Fills buf[0..len) with the next bytes of the stream. */
void sim_prng_fill(struct sim_prng *p, uint8_t *buf, size_t len);

/* ---- the device ----------------------------------------------------------- */

struct sim_log_line {
    enum hal_log_level level;
    char text[SIM_LOG_LINE_BYTES_MAX];
};

struct sim_file; /* sim_flash.c */
struct sim_net;  /* sim_net.c */

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

/* ---- virtual flash (sim_flash.c) ------------------------------------------ */

/* Sets hal's storage_* members. */
void sim_flash_install(struct hal *hal);
/* The storage half of sim_hal_power_cut: replays every file's pending
 * operations as the cut drops, keeps or tears them (drawing from s->prng),
 * and forgets the pending writes of deleted files still held open. The
 * caller then moves the power epoch on. */
void sim_flash_power_cut(struct sim_hal *s);
/* Closes every handle and frees every file (sim_hal_free). */
void sim_flash_free(struct sim_hal *s);

/* ---- virtual network (sim_net.c, sim_sock.c) ------------------------------ */

/* Sets hal's net_* members (sim_sock.c). They answer SAT_ERR_NOT_SUPPORTED
 * until the device is attached. */
void sim_sock_install(struct hal *hal);
/* Closes every socket of s, dead ones included (sim_hal_free; sim_sock.c). */
void sim_sock_close_all(struct sim_hal *s);
/* Resets and releases every connection end on node n at the network's
 * current time (power cut, detach). */
void sim_net_drop_node(struct sim_net *n, size_t node);
/* Detaches s from its network (s->net must be set): its connections are
 * dropped, its node keeps its address with no device, its sockets hold no
 * connection any more. */
void sim_net_detach(struct sim_hal *s);

#endif
