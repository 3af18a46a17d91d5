/*
 * bench_sync.c - the sync benchmark: a fresh tablet's initial sync of a
 * whole caseload, then an incremental sync of 100 changed fields, over
 * loopback TCP and mutual TLS, with the real device and hub code on both
 * ends (sync_device.c + sync_glue.c + the encrypted store; hub_session.c +
 * the SQLite hub store; tls.c over the POSIX HAL).
 *
 *   bench_sync [--records N] [--quick] [--dir DIR] [--help]
 *
 * Processes. The device runs in a child forked first thing, before any
 * set-up, so that its peak RSS (VmHWM) is the device's own: it enrols its
 * keys, opens its store, connects and syncs when the parent says so, and
 * reports its figures back through a pipe. The parent plays the hub: it
 * runs satchel-hub's own network side, the hub_server step machine
 * (hub_server.h: accept, mutual TLS with hub_server_admit, hub session),
 * driven as satchel-hub drives it, and also plays a second "source" tablet
 * that writes the caseload and pushes it to the hub over in-memory pipes,
 * untimed.
 *
 * Figures go to stdout, one per line, as `name: value unit`; progress goes
 * to stderr. A figure never changes the exit status: 0 done, 1 something
 * failed (the message says what), 2 usage error.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>
#include <pb_encode.h>

#include "bench_fs.h"
#include "hal_posix.h"
#include "hub_server.h"
#include "hub_session.h"
#include "keys.h"
#include "nhs_number.h"
#include "pki.h"
#include "store.h"
#include "sync_glue.h"
#include "tls.h"

/* ---- limits and settings ------------------------------------------------- */

#define RECORDS_DEFAULT 10000u
#define RECORDS_QUICK 1000u
#define RECORDS_MAX 1000000u
#define RECORDS_PER_PATIENT 10u /* the patient, 2 visits, 4 obs, 2 notes, 1 task */
#define CHANGED_FIELDS 100u     /* patient addresses changed for the incremental sync */
#define KDF_ITERATIONS 1000u    /* keys_enrol's smallest fixed count: set-up, not timed */
#define DEVICE_PIN "2468"
#define TEAM "north"
#define HUB_CN "satchel-hub"
#define LOOPBACK "127.0.0.1"
#define FIRMWARE_VERSION "bench"
#define WAIT_MS 100u            /* one hal_net_wait */
#define SYNC_MS_MAX 1800000u    /* one sync, connect to close, before it is given up */
#define CLOSE_STEPS_MAX 50      /* close_notify attempts */
#define MEM_PIPE_BYTES (256u * 1024u)
#define MEM_STEPS_MAX 100000000u
#define PATH_BYTES_MAX 4096
#define BASE_BYTES_MAX 1024 /* our directory: room for its subdirectories' names */
#define ERRMSG_BYTES 256
#define SUITE_BYTES 64
#define DAY_S 86400LL
#define YEAR_S (365LL * DAY_S)
#define SEED 0x5a7c4e1b2d3f6071ull
#define TARGET_RECORDS_PER_S 5000.0
#define TARGET_WIRE_VS_PAYLOAD 1.25
#define TARGET_RSS_KIB (8u * 1024u)

static const char usage_text[] =
    "usage: bench_sync [--records N] [--quick] [--dir DIR] [--help]\n"
    "Runs Satchel's sync benchmark: a fresh tablet's initial sync of a synthetic\n"
    "caseload from the hub, then an incremental sync of 100 changed fields, over\n"
    "loopback TCP and mutual TLS, and prints the figures as `name: value unit` lines.\n"
    "  --records N  caseload size in records (default 10000: 1000 patients, each\n"
    "               with 2 visits, 4 observations, 2 care notes and 1 task)\n"
    "  --quick      1000 records (a smoke run)\n"
    "  --dir DIR    work in a fresh directory under DIR (default $TMPDIR or /tmp)\n"
    "Exit status: 0 done (whatever the figures), 1 a run failed, 2 usage error.\n";

/* ---- small helpers ---------------------------------------------------------- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static double cpu_ms(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0.0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
}

/* A "Vm...:" line of /proc/self/status, in KiB (0 if unreadable). */
static uint64_t proc_status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t klen = strlen(key);
    uint64_t v = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtoull(line + klen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static int write_full(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* 0: all of it; -1: end of file or error before len bytes. */
static int read_full(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static double ratio(double x, double base)
{
    return base > 0 ? x / base : 0.0;
}

static double per_s(double count, double ms)
{
    return ms > 0 ? count * 1000.0 / ms : 0.0;
}


/* The TLS connection as a frame_io stream; close_notify reads as a close. */
static int tls_io_send(void *arg, const void *buf, size_t len, size_t *sent)
{
    return tls_conn_send(arg, buf, len, sent);
}

static int tls_io_recv(void *arg, void *buf, size_t len, size_t *got)
{
    int ret = tls_conn_recv(arg, buf, len, got);
    return ret == SAT_ERR_TLS_CLOSED ? SAT_ERR_CLOSED : ret;
}

/* Waits until sock is ready for what the TLS layer last waited for, unless
 * decrypted input is pending already. SAT_ERR_TIMEOUT after deadline_ms. */
static int tls_wait(const struct hal *h, hal_sock *sock, struct tls_conn *tls,
                    uint64_t deadline_ms)
{
    unsigned want = tls ? tls_conn_wants(tls) : HAL_NET_READABLE;
    unsigned ready = 0;
    if (tls && tls_conn_pending(tls))
        return SAT_OK;
    if (hal_clock_monotonic_ms(h) >= deadline_ms)
        return SAT_ERR_TIMEOUT;
    (void)hal_net_wait(h, &sock, &want, &ready, 1, WAIT_MS);
    return SAT_OK;
}

static int64_t hub_clock(void *arg)
{
    return hal_clock_wall_ms(arg);
}

/* ---- parent <-> device messages --------------------------------------------- */

struct dev_setup {
    uint16_t port;
    uint8_t id[HUB_ID_BYTES];
    char ca[PKI_PEM_BYTES_MAX];
    char crt[PKI_PEM_BYTES_MAX];
    char key[PKI_PEM_BYTES_MAX];
};

enum dev_cmd { CMD_SYNC_INITIAL = 1, CMD_SYNC_INCREMENTAL = 2, CMD_QUIT = 3 };

/* What the device sends back after its set-up, after each sync and last. */
struct dev_report {
    int ret; /* SAT_OK, or what failed (errmsg says) */
    char errmsg[ERRMSG_BYTES];
    /* one sync */
    double elapsed_ms;   /* connect to the end of the session */
    double handshake_ms; /* connect to handshake complete */
    double apply_ms;     /* in the glue's apply_* (store_apply_*) */
    double sizing_ms;    /* the benchmark's own sizing of pulled changes */
    double fsync_ms;     /* in the HAL's storage_sync */
    double cpu_ms;       /* device process CPU, user + system */
    uint64_t applies, fsyncs;
    uint64_t reads, read_bytes, writes, write_bytes; /* HAL storage: flash traffic */
    uint64_t pulled, pushed, round_trips;
    uint64_t frame_in, frame_out; /* sync frames before TLS */
    uint64_t hs_sent, hs_recv;    /* TCP bytes until the handshake completed */
    uint64_t wire_sent, wire_recv; /* TCP bytes of the whole connection */
    uint64_t payload;              /* encoded FieldChange bytes pulled */
    int resumed;
    int session_saved;
    char suite[SUITE_BYTES];
    /* memory */
    uint64_t rss_start_kib; /* VmRSS when the device process began */
    uint64_t hwm_kib;       /* VmHWM after this step */
    uint64_t rss_kib;       /* VmRSS after this step */
    /* last */
    uint8_t hash[32];
};

/* ---- the device (child process) ------------------------------------------- */

struct device {
    struct hal base; /* the POSIX HAL on the device's directory */
    struct hal hal;  /* base with its network and storage syncs counted */
    struct keys keys;
    struct store *store;
    struct sync_glue glue;
    struct sync_replica replica; /* the glue's, with apply measured */
    struct tls_config *tls;
    struct tls_session session;
    uint8_t id[HUB_ID_BYTES];
    uint16_t port;
};

/* Counters of the one device of this process (bench instrumentation). */
static struct {
    uint64_t sent, recvd, fsyncs, applies, payload;
    uint64_t reads, read_bytes, writes, write_bytes;
    double fsync_ms, apply_ms, sizing_ms;
} dev_count;

static int (*posix_net_send)(void *ctx, hal_sock *s, const void *buf, size_t len, size_t *sent);
static int (*posix_net_recv)(void *ctx, hal_sock *s, void *buf, size_t len, size_t *got);
static int (*posix_storage_sync)(void *ctx, hal_file *f);
static int (*posix_storage_read)(void *ctx, hal_file *f, uint64_t off, void *buf, size_t len,
                                 size_t *got);
static int (*posix_storage_write)(void *ctx, hal_file *f, uint64_t off, const void *buf,
                                  size_t len);
static struct sync_replica glue_replica; /* the glue's own members */

static int counted_send(void *ctx, hal_sock *s, const void *buf, size_t len, size_t *sent)
{
    int ret = posix_net_send(ctx, s, buf, len, sent);
    if (ret == SAT_OK)
        dev_count.sent += *sent;
    return ret;
}

static int counted_recv(void *ctx, hal_sock *s, void *buf, size_t len, size_t *got)
{
    int ret = posix_net_recv(ctx, s, buf, len, got);
    if (ret == SAT_OK)
        dev_count.recvd += *got;
    return ret;
}

static int counted_read(void *ctx, hal_file *f, uint64_t off, void *buf, size_t len,
                        size_t *got)
{
    int ret = posix_storage_read(ctx, f, off, buf, len, got);
    if (ret == SAT_OK) {
        dev_count.reads++;
        dev_count.read_bytes += *got;
    }
    return ret;
}

static int counted_write(void *ctx, hal_file *f, uint64_t off, const void *buf, size_t len)
{
    int ret = posix_storage_write(ctx, f, off, buf, len);
    if (ret == SAT_OK) {
        dev_count.writes++;
        dev_count.write_bytes += len;
    }
    return ret;
}

static int timed_sync(void *ctx, hal_file *f)
{
    double t0 = now_ms();
    int ret = posix_storage_sync(ctx, f);
    dev_count.fsync_ms += now_ms() - t0;
    dev_count.fsyncs++;
    return ret;
}

/* The glue's apply members, timed: device_apply is the time in all of them
 * (a batch's transaction, its merges as they are decoded, its commit). */
static int measured_begin(void *arg)
{
    double t0 = now_ms();
    int ret = glue_replica.apply_begin(arg);
    dev_count.apply_ms += now_ms() - t0;
    return ret;
}

/* Sizes each pulled change as protobuf (the payload), then applies them
 * through the glue, timing both apart. */
static int measured_changes(void *arg, const satchel_FieldChange *changes, size_t n,
                            unsigned *conflicts)
{
    double t0 = now_ms();
    double t1;
    int ret;
    for (size_t i = 0; i < n; i++) {
        size_t size = 0;
        if (!pb_get_encoded_size(&size, satchel_FieldChange_fields, &changes[i]))
            return SAT_ERR_PROTO_ENCODE;
        dev_count.payload += size;
    }
    t1 = now_ms();
    dev_count.sizing_ms += t1 - t0;
    ret = glue_replica.apply_changes(arg, changes, n, conflicts);
    dev_count.apply_ms += now_ms() - t1;
    return ret;
}

static int measured_commit(void *arg, const uint8_t (*purge)[SYNC_DEVICE_ID_BYTES],
                           size_t npurge, uint64_t next_cursor, unsigned *conflicts)
{
    double t0 = now_ms();
    int ret = glue_replica.apply_commit(arg, purge, npurge, next_cursor, conflicts);
    dev_count.apply_ms += now_ms() - t0;
    dev_count.applies++;
    return ret;
}

static void measured_abort(void *arg)
{
    double t0 = now_ms();
    glue_replica.apply_abort(arg);
    dev_count.apply_ms += now_ms() - t0;
}

static int device_open(struct device *d, const char *dir, const struct dev_setup *su,
                       struct dev_report *r)
{
    struct keys_enrol_opts opts = { KDF_ITERATIONS, NULL };
    struct store_id id;
    int ret = hal_posix_open(&d->base, dir);
    if (ret != SAT_OK) {
        snprintf(r->errmsg, sizeof r->errmsg, "cannot open the POSIX HAL on %.180s: %s", dir,
                 sat_strerror(ret));
        return ret;
    }
    d->hal = d->base;
    posix_net_send = d->base.net_send;
    posix_net_recv = d->base.net_recv;
    posix_storage_sync = d->base.storage_sync;
    posix_storage_read = d->base.storage_read;
    posix_storage_write = d->base.storage_write;
    d->hal.net_send = counted_send;
    d->hal.net_recv = counted_recv;
    d->hal.storage_sync = timed_sync;
    d->hal.storage_read = counted_read;
    d->hal.storage_write = counted_write;
    d->port = su->port;
    memcpy(d->id, su->id, HUB_ID_BYTES);

    keys_init(&d->keys, &d->hal);
    ret = keys_enrol(&d->keys, DEVICE_PIN, &opts);
    if (ret != SAT_OK) {
        snprintf(r->errmsg, sizeof r->errmsg, "device: cannot enrol keys: %s", sat_strerror(ret));
        return ret;
    }
    ret = store_open(&d->hal, &d->keys, &d->store, NULL);
    if (ret != SAT_OK) {
        snprintf(r->errmsg, sizeof r->errmsg, "device: cannot open the store: %s",
                 sat_strerror(ret));
        return ret;
    }
    memcpy(id.b, su->id, STORE_ID_BYTES);
    ret = store_adopt_device_id(d->store, &id);
    if (ret != SAT_OK) {
        snprintf(r->errmsg, sizeof r->errmsg, "device: cannot adopt its id: %s",
                 store_errmsg(d->store));
        return ret;
    }
    d->glue.hal = &d->hal;
    d->glue.keys = &d->keys;
    d->glue.store = &d->store;
    sync_glue_replica(&d->glue, &d->replica);
    glue_replica = d->replica;
    d->replica.apply_begin = measured_begin;
    d->replica.apply_changes = measured_changes;
    d->replica.apply_commit = measured_commit;
    d->replica.apply_abort = measured_abort;
    ret = tls_config_client(&d->tls, &d->hal, su->ca, su->crt, su->key);
    if (ret != SAT_OK)
        snprintf(r->errmsg, sizeof r->errmsg, "device: bad certificate or key: %s",
                 sat_strerror(ret));
    return ret;
}

static void device_close(struct device *d)
{
    tls_config_free(d->tls);
    d->tls = NULL;
    tls_session_clear(&d->session);
    store_close(d->store);
    d->store = NULL;
    keys_lock(&d->keys);
    hal_posix_close(&d->base);
}

/* One sync session over a new connection: initial (resume 0) or offering
 * the session saved by the previous one (resume 1). */
static int device_sync(struct device *d, int resume, struct dev_report *r)
{
    hal_sock *sock = NULL;
    struct tls_conn *tls = NULL;
    struct sync_device *sd = NULL;
    struct frame_io io;
    uint64_t deadline = hal_clock_monotonic_ms(&d->hal) + SYNC_MS_MAX;
    double t0, cpu0;
    int ret;

    memset(&dev_count, 0, sizeof dev_count);
    cpu0 = cpu_ms();
    t0 = now_ms();
    ret = hal_net_connect(&d->hal, LOOPBACK, d->port, &sock);
    if (ret == SAT_OK)
        ret = tls_conn_new(&tls, d->tls, sock, resume ? &d->session : NULL);
    while (ret == SAT_OK && (ret = tls_conn_handshake(tls)) == SAT_ERR_WOULD_BLOCK)
        ret = tls_wait(&d->hal, sock, tls, deadline);
    if (ret != SAT_OK) {
        snprintf(r->errmsg, sizeof r->errmsg, "device: cannot reach the hub over TLS: %s",
                 sat_strerror(ret));
        goto exit;
    }
    r->handshake_ms = now_ms() - t0;
    r->hs_sent = dev_count.sent;
    r->hs_recv = dev_count.recvd;
    r->resumed = tls_conn_resumed(tls);
    snprintf(r->suite, sizeof r->suite, "%s", tls_conn_suite(tls));
    r->session_saved = tls_conn_save_session(tls, &d->session) == SAT_OK;

    sd = malloc(sizeof *sd);
    if (!sd) {
        ret = SAT_ERR_NO_MEMORY;
        snprintf(r->errmsg, sizeof r->errmsg, "device: out of memory");
        goto exit;
    }
    io.send = tls_io_send;
    io.recv = tls_io_recv;
    io.arg = tls;
    sync_device_init(sd, &io, &d->replica, d->id, FIRMWARE_VERSION);
    while ((ret = sync_device_step(sd)) == SAT_ERR_WOULD_BLOCK) {
        if (tls_wait(&d->hal, sock, tls, deadline) != SAT_OK) {
            ret = SAT_ERR_TIMEOUT;
            snprintf(sd->errmsg, sizeof sd->errmsg, "the hub did not finish in %u s",
                     SYNC_MS_MAX / 1000u);
            break;
        }
    }
    r->elapsed_ms = now_ms() - t0;
    r->cpu_ms = cpu_ms() - cpu0;
    if (ret != SAT_OK) {
        snprintf(r->errmsg, sizeof r->errmsg, "device: sync failed: %s",
                 sd->errmsg[0] ? sd->errmsg : sat_strerror(ret));
        goto exit;
    }
    /* As satchel sync does: close_notify, then hang up. */
    for (int i = 0; i < CLOSE_STEPS_MAX && tls_conn_close_notify(tls) == SAT_ERR_WOULD_BLOCK; i++)
        (void)tls_wait(&d->hal, sock, tls, deadline);
    r->pulled = sd->stats.pulled;
    r->pushed = sd->stats.pushed;
    r->round_trips = sd->stats.round_trips;
    r->frame_in = sd->stats.bytes_in;
    r->frame_out = sd->stats.bytes_out;
    r->wire_sent = dev_count.sent;
    r->wire_recv = dev_count.recvd;
    r->apply_ms = dev_count.apply_ms;
    r->sizing_ms = dev_count.sizing_ms;
    r->fsync_ms = dev_count.fsync_ms;
    r->applies = dev_count.applies;
    r->fsyncs = dev_count.fsyncs;
    r->reads = dev_count.reads;
    r->read_bytes = dev_count.read_bytes;
    r->writes = dev_count.writes;
    r->write_bytes = dev_count.write_bytes;
    r->payload = dev_count.payload;
exit:
    free(sd);
    tls_conn_free(tls);
    if (sock)
        hal_net_close(&d->hal, sock);
    r->hwm_kib = proc_status_kib("VmHWM");
    r->rss_kib = proc_status_kib("VmRSS");
    return ret;
}

/* The child's whole life: set-up, then one command at a time until
 * CMD_QUIT or until the parent goes away. Returns the exit status. */
static int device_main(const char *dir, int cmd_fd, int rep_fd)
{
    static struct device d;
    static struct dev_setup su;
    struct dev_report r;
    uint64_t rss_start = proc_status_kib("VmRSS");
    uint32_t cmd = 0;
    int status = 1;

    memset(&r, 0, sizeof r);
    r.rss_start_kib = rss_start;
    if (read_full(cmd_fd, &su, sizeof su) != 0)
        return 1;
    r.ret = device_open(&d, dir, &su, &r);
    mbedtls_platform_zeroize(su.key, sizeof su.key);
    r.hwm_kib = proc_status_kib("VmHWM");
    r.rss_kib = proc_status_kib("VmRSS");
    if (write_full(rep_fd, &r, sizeof r) != 0 || r.ret != SAT_OK)
        goto exit;
    while (read_full(cmd_fd, &cmd, sizeof cmd) == 0) {
        memset(&r, 0, sizeof r);
        r.rss_start_kib = rss_start;
        if (cmd == CMD_QUIT) {
            /* After every figure: hashing reads the whole store. */
            r.ret = store_content_hash(d.store, r.hash);
            if (r.ret != SAT_OK)
                snprintf(r.errmsg, sizeof r.errmsg, "device: cannot hash the store: %s",
                         store_errmsg(d.store));
            r.hwm_kib = proc_status_kib("VmHWM");
            r.rss_kib = proc_status_kib("VmRSS");
            if (write_full(rep_fd, &r, sizeof r) == 0 && r.ret == SAT_OK)
                status = 0;
            break;
        }
        r.ret = device_sync(&d, cmd == CMD_SYNC_INCREMENTAL, &r);
        if (write_full(rep_fd, &r, sizeof r) != 0 || r.ret != SAT_OK)
            break;
    }
exit:
    device_close(&d);
    return status;
}

/* ---- the source tablet (parent, set-up only) -------------------------------- */

struct source {
    struct hal base; /* the POSIX HAL on the source's directory */
    struct hal hal;  /* base without storage syncs: the source is set-up only */
    struct keys keys;
    struct store *store;
    struct sync_glue glue;
    struct sync_replica replica;
    uint8_t id[HUB_ID_BYTES];
    struct store_id changed[CHANGED_FIELDS]; /* patients whose address will change */
    unsigned changed_n;
    uint32_t patients;
    uint64_t rng;
};

static int no_sync(void *ctx, hal_file *f)
{
    (void)ctx;
    (void)f;
    return SAT_OK;
}

static uint64_t next_rand(uint64_t *state)
{
    /* splitmix64 */
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static unsigned pick(uint64_t *state, unsigned n)
{
    return (unsigned)(next_rand(state) % n);
}

static const char *const given_names[] = { "Ada", "Bryn", "Cerys", "Dafydd", "Eira",
                                           "Ffion", "Gethin", "Heledd" };
static const char *const family_names[] = { "Morgan", "Pryce", "Rees", "Lloyd",
                                            "Vaughan", "Jenkins", "Bevan" };
static const char *const streets[] = { "Heol y Bryn", "Ffordd yr Orsaf", "Stryd Fawr",
                                       "Lon Glas", "Rhodfa'r Mor" };
static const char *const reasons[] = { "wound dressing", "medication review",
                                       "post-discharge check", "catheter care",
                                       "palliative support" };
static const char *const tasks[] = { "order dressings", "call the GP about bloods",
                                     "book a podiatry visit", "refer to the falls team" };

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

static int source_fail(struct source *s, int ret, const char *what)
{
    fprintf(stderr, "bench_sync: source tablet: cannot %s: %s\n", what,
            s->store && store_errmsg(s->store)[0] ? store_errmsg(s->store) : sat_strerror(ret));
    return ret;
}

static int source_add_patient(struct source *s, struct store_patient *p)
{
    char nine[9];
    int check;
    memset(p, 0, sizeof *p);
    do {
        for (int i = 0; i < 9; i++)
            nine[i] = (char)('0' + pick(&s->rng, 10));
        check = nhs_number_check_digit(nine);
    } while (check < 0);
    memcpy(p->nhs_number, nine, 9);
    p->nhs_number[9] = (char)('0' + check);
    snprintf(p->given_name, sizeof p->given_name, "%s",
             given_names[pick(&s->rng, COUNT_OF(given_names))]);
    snprintf(p->family_name, sizeof p->family_name, "%s",
             family_names[pick(&s->rng, COUNT_OF(family_names))]);
    snprintf(p->date_of_birth, sizeof p->date_of_birth, "19%02u-%02u-%02u",
             30 + pick(&s->rng, 60), 1 + pick(&s->rng, 12), 1 + pick(&s->rng, 28));
    snprintf(p->address, sizeof p->address, "%u %s, Llanelli", 1 + pick(&s->rng, 200),
             streets[pick(&s->rng, COUNT_OF(streets))]);
    snprintf(p->postcode, sizeof p->postcode, "SA%u %uAB", 1 + pick(&s->rng, 98),
             pick(&s->rng, 9));
    snprintf(p->team, sizeof p->team, "%s", TEAM);
    return store_patient_add(s->store, p);
}

static int source_add_obs(struct source *s, const struct store_patient *p,
                          const struct store_visit *v)
{
    struct store_obs o;
    memset(&o, 0, sizeof o);
    o.patient_id = p->id;
    o.has_visit = 1;
    o.visit_id = v->id;
    o.vitals.respiration_rate = 10 + (int)pick(&s->rng, 16);
    o.vitals.spo2_pct = 88 + (int)pick(&s->rng, 12);
    o.vitals.spo2_scale = 1;
    o.vitals.on_oxygen = (int)pick(&s->rng, 2);
    o.vitals.systolic_bp = 90 + (int)pick(&s->rng, 80);
    o.vitals.pulse = 50 + (int)pick(&s->rng, 70);
    o.vitals.consciousness = NEWS2_ALERT;
    o.vitals.temperature_dc = 355 + (int)pick(&s->rng, 40);
    return store_obs_add(s->store, &o);
}

static int source_add_note(struct source *s, const struct store_patient *p,
                           const struct store_visit *v)
{
    struct store_note n;
    memset(&n, 0, sizeof n);
    n.patient_id = p->id;
    n.has_visit = 1;
    n.visit_id = v->id;
    snprintf(n.text, sizeof n.text,
             "Visited at home. %s. Wound bed clean, %u mm by %u mm, dressing changed; "
             "no signs of infection. Patient comfortable, eating and drinking; family "
             "present. Next review in %u days.",
             reasons[pick(&s->rng, COUNT_OF(reasons))], 5 + pick(&s->rng, 40),
             5 + pick(&s->rng, 30), 1 + pick(&s->rng, 7));
    return store_note_add(s->store, &n);
}

static int source_add_task(struct source *s, const struct store_patient *p)
{
    struct store_task t;
    memset(&t, 0, sizeof t);
    t.patient_id = p->id;
    snprintf(t.title, sizeof t.title, "%s", tasks[pick(&s->rng, COUNT_OF(tasks))]);
    t.due_ms = hal_clock_wall_ms(&s->hal) + (int64_t)(1 + pick(&s->rng, 14)) * DAY_S * 1000;
    return store_task_add(s->store, &t);
}

/* Writes `records` records: each patient is followed by up to 9 records of
 * its own, in the order visit, obs, obs, note, visit, obs, obs, note, task
 * (observations and notes belong to the visit before them). */
static int source_seed(struct source *s, uint32_t records)
{
    uint32_t done = 0;
    uint32_t next_report = records / 10;
    int ret = SAT_OK;
    while (ret == SAT_OK && done < records) {
        struct store_patient p;
        struct store_visit v;
        int visit_open = 0;
        memset(&v, 0, sizeof v);
        ret = source_add_patient(s, &p);
        if (ret != SAT_OK)
            return source_fail(s, ret, "add a patient");
        done++;
        s->patients++;
        if (s->changed_n < CHANGED_FIELDS)
            s->changed[s->changed_n++] = p.id;
        for (unsigned slot = 1; ret == SAT_OK && slot < RECORDS_PER_PATIENT && done < records;
             slot++, done++) {
            switch (slot) {
            case 1:
            case 5:
                if (visit_open && (ret = store_visit_end(s->store, &v.id, NULL)) != SAT_OK)
                    return source_fail(s, ret, "end a visit");
                ret = store_visit_start(s->store, &p.id, reasons[pick(&s->rng, COUNT_OF(reasons))],
                                        &v);
                visit_open = ret == SAT_OK;
                break;
            case 4:
            case 8: ret = source_add_note(s, &p, &v); break;
            case 9: ret = source_add_task(s, &p); break;
            default: ret = source_add_obs(s, &p, &v); break;
            }
            if (ret != SAT_OK)
                return source_fail(s, ret, "add a record");
        }
        if (visit_open && (ret = store_visit_end(s->store, &v.id, NULL)) != SAT_OK)
            return source_fail(s, ret, "end a visit");
        if (next_report > 0 && done >= next_report) {
            fprintf(stderr, "bench_sync: source tablet: %" PRIu32 " of %" PRIu32 " records\n",
                    done, records);
            next_report += records / 10;
        }
    }
    return ret;
}

/* Changes CHANGED_FIELDS patient addresses, one field each. */
static int source_change_addresses(struct source *s)
{
    for (unsigned i = 0; i < CHANGED_FIELDS; i++) {
        struct store_patient p;
        int ret = store_patient_get(s->store, &s->changed[i % s->changed_n], &p);
        if (ret == SAT_OK) {
            snprintf(p.address, sizeof p.address, "Flat %u, %u %s, Llanelli", i + 1,
                     1 + pick(&s->rng, 200), streets[pick(&s->rng, COUNT_OF(streets))]);
            ret = store_patient_update(s->store, &p);
        }
        if (ret != SAT_OK)
            return source_fail(s, ret, "change an address");
    }
    return SAT_OK;
}

static int source_open(struct source *s, const char *dir)
{
    struct keys_enrol_opts opts = { KDF_ITERATIONS, NULL };
    struct store_id id;
    int ret = hal_posix_open(&s->base, dir);
    if (ret != SAT_OK) {
        fprintf(stderr, "bench_sync: cannot open the POSIX HAL on %s: %s\n", dir,
                sat_strerror(ret));
        return ret;
    }
    s->hal = s->base;
    s->hal.storage_sync = no_sync;
    s->rng = SEED;
    keys_init(&s->keys, &s->hal);
    ret = keys_enrol(&s->keys, DEVICE_PIN, &opts);
    if (ret != SAT_OK)
        return source_fail(s, ret, "enrol keys");
    ret = store_open(&s->hal, &s->keys, &s->store, NULL);
    if (ret != SAT_OK)
        return source_fail(s, ret, "open its store");
    store_device_id(s->store, &id);
    memcpy(s->id, id.b, HUB_ID_BYTES);
    s->glue.hal = &s->hal;
    s->glue.keys = &s->keys;
    s->glue.store = &s->store;
    sync_glue_replica(&s->glue, &s->replica);
    return SAT_OK;
}

static void source_close(struct source *s)
{
    store_close(s->store);
    s->store = NULL;
    keys_lock(&s->keys);
    hal_posix_close(&s->base);
}

/* ---- an in-memory duplex link (source <-> hub) ------------------------------ */

struct mem_pipe {
    uint8_t *buf;
    size_t head; /* read position */
    size_t len;
};

struct mem_link {
    struct mem_pipe to_hub;
    struct mem_pipe to_dev;
    int dev_closed; /* the device finished: the hub then reads a close */
};

struct mem_end {
    struct mem_link *l;
    int hub_side;
};

static int mem_send(void *arg, const void *buf, size_t len, size_t *sent)
{
    struct mem_end *e = arg;
    struct mem_pipe *p = e->hub_side ? &e->l->to_dev : &e->l->to_hub;
    size_t room;
    if (p->head > 0 && p->head == p->len)
        p->head = p->len = 0;
    room = MEM_PIPE_BYTES - p->len;
    if (room == 0)
        return SAT_ERR_WOULD_BLOCK;
    if (len > room)
        len = room;
    memcpy(p->buf + p->len, buf, len);
    p->len += len;
    *sent = len;
    return SAT_OK;
}

static int mem_recv(void *arg, void *buf, size_t len, size_t *got)
{
    struct mem_end *e = arg;
    struct mem_pipe *p = e->hub_side ? &e->l->to_hub : &e->l->to_dev;
    size_t avail = p->len - p->head;
    if (avail == 0)
        return e->hub_side && e->l->dev_closed ? SAT_ERR_CLOSED : SAT_ERR_WOULD_BLOCK;
    if (len > avail)
        len = avail;
    memcpy(buf, p->buf + p->head, len);
    p->head += len;
    *got = len;
    return SAT_OK;
}

/* Pushes everything the source has not pushed yet to the hub, stepping a
 * device session and a hub session in turn. *pushed: changes acknowledged. */
static int source_push(struct source *s, struct hub_store *hub, const struct hal *hub_hal,
                       uint64_t *pushed)
{
    struct mem_link link;
    struct mem_end dev_end = { &link, 0 };
    struct mem_end hub_end = { &link, 1 };
    struct frame_io dio = { mem_send, mem_recv, &dev_end };
    struct frame_io hio = { mem_send, mem_recv, &hub_end };
    struct sync_device *sd = malloc(sizeof *sd);
    struct hub_session *hs = malloc(sizeof *hs);
    int dret = SAT_ERR_WOULD_BLOCK;
    int hret = SAT_ERR_WOULD_BLOCK;
    int ret = SAT_ERR_NO_MEMORY;

    memset(&link, 0, sizeof link);
    link.to_hub.buf = malloc(MEM_PIPE_BYTES);
    link.to_dev.buf = malloc(MEM_PIPE_BYTES);
    if (!sd || !hs || !link.to_hub.buf || !link.to_dev.buf) {
        fprintf(stderr, "bench_sync: out of memory\n");
        goto exit;
    }
    sync_device_init(sd, &dio, &s->replica, s->id, FIRMWARE_VERSION);
    hub_session_init(hs, &hio, hub, s->id, hub_clock, (void *)hub_hal);
    for (uint32_t i = 0; i < MEM_STEPS_MAX; i++) {
        if (dret == SAT_ERR_WOULD_BLOCK) {
            dret = sync_device_step(sd);
            if (dret == SAT_OK)
                link.dev_closed = 1;
        }
        if (hret == SAT_ERR_WOULD_BLOCK)
            hret = hub_session_step(hs);
        if ((dret != SAT_ERR_WOULD_BLOCK && dret != SAT_OK) ||
            (hret != SAT_ERR_WOULD_BLOCK && hret != SAT_OK) ||
            (dret == SAT_OK && hret == SAT_OK))
            break;
    }
    if (dret != SAT_OK || hret != SAT_OK) {
        fprintf(stderr, "bench_sync: pushing the source's changes to the hub failed: %s / %s\n",
                sd->errmsg[0] ? sd->errmsg : sat_strerror(dret),
                hs->errmsg[0] ? hs->errmsg : sat_strerror(hret));
        ret = dret != SAT_OK ? dret : hret;
        goto exit;
    }
    *pushed = sd->stats.pushed;
    ret = SAT_OK;
exit:
    free(link.to_hub.buf);
    free(link.to_dev.buf);
    free(sd);
    free(hs);
    return ret;
}

/* ---- the hub (parent) ----------------------------------------------------------- */

struct pem {
    char crt[PKI_PEM_BYTES_MAX];
    char key[PKI_PEM_BYTES_MAX];
};

/* What the hub measured of one served connection: times and CPU at the
 * steps of the hub_server whose totals (hub_server_stats) show the
 * connection accepted, its handshake done and its session ended; the rest
 * from the device's session summary (hub_server_device_last) and the timed
 * store. */
struct serve_result {
    double handshake_ms; /* accepted to handshake complete */
    double session_ms;   /* handshake complete to the session's end */
    double pull_ms;      /* in the hub store's pull */
    double cpu_ms;       /* the hub process, accepted to the session's end */
    uint64_t pulls;
    uint64_t requests; /* frames the hub session handled */
    int resumed;       /* the hub's side of the handshake resumed a session */
};

struct bench {
    uint32_t records;
    char base[BASE_BYTES_MAX];
    pid_t child;
    int cmd_fd;
    int rep_fd;
    struct hal hal; /* the hub's POSIX HAL */
    int hal_open;
    struct hub_store *hub;
    struct hub_store timed;  /* hub with its pull and checkin measured */
    struct hub_server *srv;  /* the hub's network side, over timed (heap: ~100 KiB) */
    uint16_t port;
    struct source src;
    int src_open;
    struct pem ca, hub_pem, dev_pem;
    uint8_t dev_id[HUB_ID_BYTES];
};

static int (*store_pull)(void *ctx, const uint8_t device[HUB_ID_BYTES], uint64_t cursor,
                         satchel_FieldChange *changes, size_t max_changes,
                         struct hub_pull_result *out);
static int (*store_checkin)(void *ctx, const uint8_t device[HUB_ID_BYTES], uint64_t pull_cursor,
                            struct hub_device *out);
static double hub_pull_ms;
static uint64_t hub_pulls;
static double hub_checkin_at; /* now_ms() of the connection's first checkin; 0: none yet */

static int timed_pull(void *ctx, const uint8_t device[HUB_ID_BYTES], uint64_t cursor,
                      satchel_FieldChange *changes, size_t max_changes,
                      struct hub_pull_result *out)
{
    double t0 = now_ms();
    int ret = store_pull(ctx, device, cursor, changes, max_changes, out);
    hub_pull_ms += now_ms() - t0;
    hub_pulls++;
    return ret;
}

/* The hub_server step that finishes a handshake goes straight on to the
 * session, and serves the device's Hello there if it is already in (it
 * often is, full or resumed). The Hello's checkin, the session's first
 * store call, marks where the handshake ended inside that step. */
static int timed_checkin(void *ctx, const uint8_t device[HUB_ID_BYTES], uint64_t pull_cursor,
                         struct hub_device *out)
{
    if (hub_checkin_at == 0)
        hub_checkin_at = now_ms();
    return store_checkin(ctx, device, pull_cursor, out);
}

/* 1 if the device process has ended (it is then reaped). */
static int child_gone(struct bench *b)
{
    int status = 0;
    if (b->child <= 0)
        return 1;
    if (waitpid(b->child, &status, WNOHANG) == b->child) {
        b->child = 0;
        return 1;
    }
    return 0;
}

/* Serves one device connection to its end with the hub_server, driven as
 * satchel-hub drives it (wait for what it asks, step it), until its totals
 * show the session ended. */
static int hub_serve_one(struct bench *b, struct serve_result *sr)
{
    static struct hub_server_wait w;
    unsigned ready[HUB_SERVER_WAIT_SLOTS];
    const struct hub_server_stats *st = hub_server_stats(b->srv);
    const uint64_t accepted0 = st->accepted;
    const uint64_t handshakes0 = st->handshakes_full + st->handshakes_resumed;
    const uint64_t ended0 = st->sessions_ok + st->sessions_failed;
    const uint64_t ok0 = st->sessions_ok;
    uint64_t deadline = hal_clock_monotonic_ms(&b->hal) + SYNC_MS_MAX;
    struct hub_server_summary sum;
    double t0 = 0, t1 = 0, t2 = 0, cpu0 = 0, cpu2 = 0;
    int ret = SAT_ERR_INVALID;

    memset(sr, 0, sizeof *sr);
    hub_pull_ms = 0;
    hub_pulls = 0;
    hub_checkin_at = 0;
    while (st->sessions_ok + st->sessions_failed == ended0) {
        uint32_t wait_ms = WAIT_MS;
        uint64_t now;
        if (st->accepted == accepted0 && child_gone(b)) {
            fprintf(stderr, "bench_sync: the device process ended before it connected\n");
            return SAT_ERR_CLOSED;
        }
        hub_server_wait_set(b->srv, &w);
        now = hal_clock_monotonic_ms(&b->hal);
        if (now >= deadline) {
            fprintf(stderr, "bench_sync: hub: the device's sync did not end in %u s\n",
                    SYNC_MS_MAX / 1000u);
            return SAT_ERR_TIMEOUT;
        }
        if (w.timer_ms <= now)
            wait_ms = 0;
        else if (w.timer_ms - now < wait_ms)
            wait_ms = (uint32_t)(w.timer_ms - now);
        memset(ready, 0, sizeof ready);
        (void)hal_net_wait(&b->hal, w.socks, w.want, ready, w.n, wait_ms);
        ret = hub_server_step(b->srv, ready, w.n);
        if (ret != SAT_OK) {
            fprintf(stderr, "bench_sync: hub: the server stopped: %s\n", sat_strerror(ret));
            return ret;
        }
        /* A connection accepted in one step starts its handshake in the
         * next; a handshake and a session's end are never in one step. */
        if (t0 == 0 && st->accepted != accepted0) {
            t0 = now_ms();
            cpu0 = cpu_ms();
        } else if (t1 == 0 && st->handshakes_full + st->handshakes_resumed != handshakes0) {
            t1 = now_ms();
            if (hub_checkin_at > 0 && hub_checkin_at < t1)
                t1 = hub_checkin_at;
        }
    }
    t2 = now_ms();
    cpu2 = cpu_ms();
    if (t1 == 0) {
        fprintf(stderr, "bench_sync: hub: the TLS handshake with the device failed (the hub's "
                        "log above says why)\n");
        return SAT_ERR_TLS_HANDSHAKE;
    }
    if (hub_server_device_last(b->srv, b->dev_id, &sum) != SAT_OK) {
        fprintf(stderr, "bench_sync: hub: no session summary for the device\n");
        return SAT_ERR_NOT_FOUND;
    }
    if (st->sessions_ok == ok0 || sum.result != SAT_OK) {
        fprintf(stderr, "bench_sync: hub: session ended: %s\n",
                sum.msg[0] ? sum.msg : sat_strerror(sum.result));
        return sum.result != SAT_OK ? sum.result : SAT_ERR_SYNC_PROTOCOL;
    }
    sr->handshake_ms = t1 - t0;
    sr->session_ms = t2 - t1;
    sr->cpu_ms = cpu2 - cpu0;
    sr->pull_ms = hub_pull_ms;
    sr->pulls = hub_pulls;
    sr->requests = sum.stats.requests;
    sr->resumed = sum.resumed;
    return SAT_OK;
}

static int make_pki(struct bench *b)
{
    const struct hal *h = &b->hal;
    int64_t now = hal_clock_wall_ms(h) / 1000;
    struct store_id id;
    char hex[STORE_ID_HEX_BYTES];
    int ret = hal_entropy_fill(h, b->dev_id, sizeof b->dev_id);
    memcpy(id.b, b->dev_id, STORE_ID_BYTES);
    store_id_to_hex(&id, hex);
    if (ret == SAT_OK)
        ret = pki_key_generate(h, b->ca.key, sizeof b->ca.key);
    if (ret == SAT_OK)
        ret = pki_ca_self_sign(h, b->ca.key, "Satchel bench fleet CA", 1, now - DAY_S,
                               now + 20 * YEAR_S, b->ca.crt, sizeof b->ca.crt);
    if (ret == SAT_OK)
        ret = pki_key_generate(h, b->hub_pem.key, sizeof b->hub_pem.key);
    if (ret == SAT_OK)
        ret = pki_cert_issue(h, b->ca.crt, b->ca.key, b->hub_pem.key, HUB_CN, PKI_USAGE_SERVER,
                             2, now - DAY_S, now + 5 * YEAR_S, b->hub_pem.crt,
                             sizeof b->hub_pem.crt);
    if (ret == SAT_OK)
        ret = pki_key_generate(h, b->dev_pem.key, sizeof b->dev_pem.key);
    if (ret == SAT_OK)
        ret = pki_cert_issue(h, b->ca.crt, b->ca.key, b->dev_pem.key, hex, PKI_USAGE_CLIENT, 3,
                             now - DAY_S, now + 5 * YEAR_S, b->dev_pem.crt,
                             sizeof b->dev_pem.crt);
    if (ret != SAT_OK)
        fprintf(stderr, "bench_sync: cannot make the fleet's keys and certificates: %s\n",
                sat_strerror(ret));
    return ret;
}

static int hub_open(struct bench *b)
{
    char dir[PATH_BYTES_MAX];
    char db[PATH_BYTES_MAX];
    struct hub_server_config cfg;
    int ret;
    snprintf(dir, sizeof dir, "%s/hub", b->base);
    snprintf(db, sizeof db, "%s/hub/hub.db", b->base);
    ret = hal_posix_open(&b->hal, dir);
    if (ret != SAT_OK) {
        fprintf(stderr, "bench_sync: cannot open the POSIX HAL on %s: %s\n", dir,
                sat_strerror(ret));
        return ret;
    }
    b->hal_open = 1;
    ret = make_pki(b);
    if (ret != SAT_OK)
        return ret;
    ret = hub_store_open(db, &b->hub, NULL);
    if (ret != SAT_OK) {
        fprintf(stderr, "bench_sync: cannot open the hub store %s: %s\n", db, sat_strerror(ret));
        return ret;
    }
    b->timed = *b->hub;
    store_pull = b->hub->pull;
    store_checkin = b->hub->device_checkin;
    b->timed.pull = timed_pull;
    b->timed.device_checkin = timed_checkin;
    ret = hub_store_device_register(b->hub, b->dev_id, TEAM);
    if (ret != SAT_OK) {
        fprintf(stderr, "bench_sync: cannot register the device on the hub: %s\n",
                hub_store_errmsg(b->hub));
        return ret;
    }
    /* As satchel-hub: its TLS configuration from the PEMs, admission by
     * hub_server_admit on the (timed) store. */
    b->srv = calloc(1, sizeof *b->srv);
    if (!b->srv) {
        fprintf(stderr, "bench_sync: out of memory\n");
        return SAT_ERR_NO_MEMORY;
    }
    memset(&cfg, 0, sizeof cfg);
    cfg.hal = &b->hal;
    cfg.store = &b->timed;
    cfg.ca_pem = b->ca.crt;
    cfg.cert_pem = b->hub_pem.crt;
    cfg.key_pem = b->hub_pem.key;
    cfg.listen_host = LOOPBACK;
    cfg.listen_port = 0;
    ret = hub_server_init(b->srv, &cfg);
    if (ret == SAT_OK)
        ret = hub_server_port(b->srv, &b->port);
    if (ret != SAT_OK)
        fprintf(stderr, "bench_sync: cannot start the hub's TLS server on %s: %s\n", LOOPBACK,
                sat_strerror(ret));
    return ret;
}

static void hub_close(struct bench *b)
{
    if (b->srv) {
        hub_server_stop(b->srv);
        free(b->srv);
    }
    b->srv = NULL;
    hub_store_close(b->hub);
    b->hub = NULL;
    if (b->hal_open)
        hal_posix_close(&b->hal);
    b->hal_open = 0;
}

/* ---- talking to the device -------------------------------------------------- */

static int device_report(struct bench *b, struct dev_report *r, const char *what)
{
    if (read_full(b->rep_fd, r, sizeof *r) != 0) {
        fprintf(stderr, "bench_sync: the device process ended during %s without a word\n",
                what);
        return -1;
    }
    if (r->ret != SAT_OK) {
        fprintf(stderr, "bench_sync: %s: %s\n", what, r->errmsg);
        return -1;
    }
    return 0;
}

/* One timed sync: tells the device to sync, serves it, reads its report. */
static int run_sync(struct bench *b, uint32_t cmd, struct dev_report *r, struct serve_result *sr)
{
    const char *what = cmd == CMD_SYNC_INITIAL ? "the initial sync" : "the incremental sync";
    if (write_full(b->cmd_fd, &cmd, sizeof cmd) != 0) {
        fprintf(stderr, "bench_sync: cannot reach the device process\n");
        return -1;
    }
    if (hub_serve_one(b, sr) != SAT_OK) {
        /* Its own account, if it gave one, says more than the hub's. */
        if (b->child > 0)
            kill(b->child, SIGTERM);
        (void)device_report(b, r, what);
        return -1;
    }
    if (device_report(b, r, what) != 0)
        return -1;
    if (sr->resumed != r->resumed)
        fprintf(stderr, "bench_sync: warning: %s: the hub says the TLS session was %sresumed, "
                        "the device says it was %sresumed\n",
                what, sr->resumed ? "" : "not ", r->resumed ? "" : "not ");
    return 0;
}

/* ---- figures ------------------------------------------------------------------ */

struct results {
    uint32_t patients;
    uint64_t source_changes;      /* pushed before the initial sync */
    uint64_t source_incremental;  /* pushed before the incremental sync */
    double seed_ms, push_ms;
    struct dev_report ready, initial, incremental, last;
    struct serve_result hub_initial, hub_incremental;
    uint64_t store_bytes; /* the device's caseload.db + journal at the end */
    uint64_t hub_bytes;   /* hub.db + WAL at the end */
    int content_match;
};

/* Sum of the sizes of dir/name for each name (0 for a missing file). */
static uint64_t files_size(const char *base, const char *sub, const char *const *names, size_t n)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        char path[PATH_BYTES_MAX];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s/%s", base, sub, names[i]);
        if (stat(path, &st) == 0)
            total += (uint64_t)st.st_size;
    }
    return total;
}

static void print_header(const struct bench *b, const struct results *res)
{
    printf("Satchel sync benchmark. A fresh tablet pulls a synthetic caseload of %" PRIu32
           " records\n"
           "(%" PRIu32 " patients, each followed by 2 visits, 4 NEWS2 observations, 2 care "
           "notes and\n"
           "1 task; splitmix64 seed 0x%016llx; %" PRIu64 " field changes) from the hub, then "
           "an\n"
           "incremental change of %u patient addresses. The caseload is written by a second\n"
           "tablet of team '%s' and pushed to the hub (SQLite, WAL, synchronous=FULL) over\n"
           "in-memory pipes before anything is timed (that source tablet skips its storage\n"
           "syncs: it is set-up). The device runs in its own process, forked before any\n"
           "set-up: PBKDF2 at %u iterations (set-up), its encrypted store (store.c on the\n"
           "AES-256-GCM VFS, synchronous=FULL) through sync_glue.c, the session of\n"
           "sync_device.c over tls.c over the POSIX HAL. The hub is the parent process,\n"
           "running satchel-hub's hub_server.c (accept, mutual TLS admitted by\n"
           "hub_server_admit, hub_session.c over tls.c), one connection at a time; hub_*\n"
           "times are taken at the server's steps that accepted the connection, finished\n"
           "its handshake and ended its session. Both ends speak loopback\n"
           "TCP and mutual TLS 1.2 (ECDHE-ECDSA P-256, AES-GCM; certificates made by pki.c\n"
           "at start). A sync is: connect, handshake, Hello, then PullRequest/PullBatch round\n"
           "trips of up to %d changes or %u KiB of them until the feed is empty,\n"
           "close_notify. Times are wall\n"
           "clock (CLOCK_MONOTONIC) in ms from connect to the session's end (including the\n"
           "benchmark's own sizing of the pulled changes, device_sizing); records/s and\n"
           "changes/s divide by that. Wire bytes are the TCP payload through the device's\n"
           "HAL net_send/net_recv (TLS records, both directions); handshake bytes are those\n"
           "until the handshake completed. Payload is the protobuf encoding of the\n"
           "FieldChange messages the device pulled (pb_get_encoded_size, no batch framing);\n"
           "frames are the sync frames before TLS. Time split: device_apply is\n"
           "store_apply_* (one transaction per batch, its changes merged as they are\n"
           "decoded, its commit and fsyncs included),\n"
           "device_fsync the HAL's storage_sync, hub_pull the hub store's pull (one write\n"
           "transaction per batch), rest = elapsed - apply - hub_pull - sizing (TLS,\n"
           "protobuf, loopback, scheduling); device_storage_* is the flash traffic of the\n"
           "device's HAL (database and its journal or WAL, sealed blocks). Peak RSS is VmHWM of\n"
           "the device process (/proc/self/status). Files under %s, removed at the end.\n\n",
           b->records, res->patients, (unsigned long long)SEED, res->source_changes,
           CHANGED_FIELDS, TEAM, KDF_ITERATIONS, PROTO_PULL_CHANGES_MAX,
           PROTO_PULL_CHANGES_BYTES_MAX / 1024u, b->base);
}

static void print_sync(const char *name, const struct dev_report *r, const struct serve_result *h)
{
    uint64_t wire = r->wire_sent + r->wire_recv;
    uint64_t hs = r->hs_sent + r->hs_recv;
    double rest = r->elapsed_ms - r->apply_ms - h->pull_ms - r->sizing_ms;
    printf("%s_changes: %" PRIu64 " changes\n", name, r->pulled);
    printf("%s_pushed: %" PRIu64 " changes\n", name, r->pushed);
    printf("%s_elapsed: %.1f ms\n", name, r->elapsed_ms);
    printf("%s_changes_per_s: %.0f changes/s\n", name, per_s((double)r->pulled, r->elapsed_ms));
    printf("%s_round_trips: %" PRIu64 " round trips\n", name, r->round_trips);
    printf("%s_tls_resumed: %s\n", name, r->resumed ? "yes" : "no");
    printf("%s_tls_suite: %s\n", name, r->suite);
    printf("%s_handshake: %.1f ms\n", name, r->handshake_ms);
    printf("%s_hub_handshake: %.1f ms\n", name, h->handshake_ms);
    printf("%s_hub_session: %.1f ms\n", name, h->session_ms);
    printf("%s_hub_requests: %" PRIu64 " requests\n", name, h->requests);
    printf("%s_wire_bytes: %" PRIu64 " bytes\n", name, wire);
    printf("%s_wire_bytes_sent: %" PRIu64 " bytes\n", name, r->wire_sent);
    printf("%s_wire_bytes_received: %" PRIu64 " bytes\n", name, r->wire_recv);
    printf("%s_handshake_bytes: %" PRIu64 " bytes\n", name, hs);
    printf("%s_after_handshake_bytes: %" PRIu64 " bytes\n", name, wire - hs);
    printf("%s_frame_bytes: %" PRIu64 " bytes\n", name, r->frame_in + r->frame_out);
    printf("%s_payload_bytes: %" PRIu64 " bytes\n", name, r->payload);
    printf("%s_wire_bytes_per_change: %.1f bytes\n", name,
           r->pulled ? (double)(wire - hs) / (double)r->pulled : 0.0);
    printf("%s_payload_bytes_per_change: %.1f bytes\n", name,
           r->pulled ? (double)r->payload / (double)r->pulled : 0.0);
    printf("%s_frames_vs_payload: %.3fx\n", name,
           ratio((double)(r->frame_in + r->frame_out), (double)r->payload));
    printf("%s_wire_vs_frames: %.3fx\n", name,
           ratio((double)(wire - hs), (double)(r->frame_in + r->frame_out)));
    printf("%s_wire_vs_payload: %.3fx\n", name, ratio((double)(wire - hs), (double)r->payload));
    printf("%s_wire_with_handshake_vs_payload: %.3fx\n", name,
           ratio((double)wire, (double)r->payload));
    printf("%s_device_apply: %.1f ms\n", name, r->apply_ms);
    printf("%s_device_apply_share: %.1f %%\n", name, 100.0 * ratio(r->apply_ms, r->elapsed_ms));
    printf("%s_device_apply_per_batch: %.3f ms\n", name,
           r->applies ? r->apply_ms / (double)r->applies : 0.0);
    printf("%s_device_fsyncs: %" PRIu64 " syncs\n", name, r->fsyncs);
    printf("%s_device_fsync: %.1f ms\n", name, r->fsync_ms);
    printf("%s_device_storage_reads: %" PRIu64 " calls\n", name, r->reads);
    printf("%s_device_storage_read: %.0f KiB\n", name, (double)r->read_bytes / 1024.0);
    printf("%s_device_storage_writes: %" PRIu64 " calls\n", name, r->writes);
    printf("%s_device_storage_written: %.0f KiB\n", name, (double)r->write_bytes / 1024.0);
    printf("%s_device_storage_written_per_batch: %.1f KiB\n", name,
           r->applies ? (double)r->write_bytes / 1024.0 / (double)r->applies : 0.0);
    printf("%s_device_cpu: %.1f ms\n", name, r->cpu_ms);
    printf("%s_device_sizing: %.1f ms\n", name, r->sizing_ms);
    printf("%s_hub_pull: %.1f ms\n", name, h->pull_ms);
    printf("%s_hub_pull_share: %.1f %%\n", name, 100.0 * ratio(h->pull_ms, r->elapsed_ms));
    printf("%s_hub_pull_per_batch: %.3f ms\n", name,
           h->pulls ? h->pull_ms / (double)h->pulls : 0.0);
    printf("%s_hub_cpu: %.1f ms\n", name, h->cpu_ms);
    printf("%s_rest: %.1f ms\n", name, rest);
    printf("%s_rest_per_round_trip: %.3f ms\n", name,
           r->round_trips ? rest / (double)r->round_trips : 0.0);
}

static void print_results(const struct bench *b, const struct results *res)
{
    const struct dev_report *in = &res->initial, *inc = &res->incremental;
    double rps = per_s((double)b->records, in->elapsed_ms);
    uint64_t inc_hs = inc->hs_sent + inc->hs_recv;
    uint64_t inc_after = inc->wire_sent + inc->wire_recv - inc_hs;
    int wire_ok = inc->payload > 0 &&
                  (double)inc_after <= TARGET_WIRE_VS_PAYLOAD * (double)inc->payload;

    print_header(b, res);
    printf("records: %" PRIu32 " records\n", b->records);
    printf("patients: %" PRIu32 " patients\n", res->patients);
    printf("source_changes: %" PRIu64 " changes\n", res->source_changes);
    printf("setup_seed: %.0f ms\n", res->seed_ms);
    printf("setup_push: %.0f ms\n", res->push_ms);
    printf("\n");
    printf("initial_records: %" PRIu32 " records\n", b->records);
    printf("initial_records_per_s: %.0f records/s\n", rps);
    print_sync("initial", in, &res->hub_initial);
    printf("\n");
    printf("incremental_source_changes: %" PRIu64 " changes\n", res->source_incremental);
    print_sync("incremental", inc, &res->hub_incremental);
    printf("incremental_session_saved_after_initial: %s\n", in->session_saved ? "yes" : "no");
    printf("\n");
    printf("device_store_size: %.0f KiB\n", (double)res->store_bytes / 1024.0);
    printf("hub_store_size: %.0f KiB\n", (double)res->hub_bytes / 1024.0);
    printf("device_rss_at_start: %" PRIu64 " KiB\n", res->ready.rss_start_kib);
    printf("device_peak_rss_after_setup: %" PRIu64 " KiB\n", res->ready.hwm_kib);
    printf("device_peak_rss_after_initial: %" PRIu64 " KiB\n", in->hwm_kib);
    printf("device_peak_rss: %" PRIu64 " KiB\n", inc->hwm_kib);
    printf("device_rss_after_incremental: %" PRIu64 " KiB\n", inc->rss_kib);
    printf("content_match: %s\n", res->content_match ? "yes" : "no");
    printf("\n");
    printf("target_initial_ge_%.0f_records_per_s: %s\n", TARGET_RECORDS_PER_S,
           rps >= TARGET_RECORDS_PER_S ? "yes" : "no");
    printf("target_incremental_wire_le_%.2fx_payload_plus_handshake: %s\n",
           TARGET_WIRE_VS_PAYLOAD, wire_ok ? "yes" : "no");
    printf("target_device_peak_rss_le_%u_MiB: %s\n", TARGET_RSS_KIB / 1024u,
           inc->hwm_kib > 0 && inc->hwm_kib <= TARGET_RSS_KIB ? "yes" : "no");
    fflush(stdout);
}

/* ---- main ------------------------------------------------------------------------- */

/* Everything after the fork, in the parent. Returns 0 or -1. */
static int run(struct bench *b, struct results *res)
{
    static struct dev_setup su;
    char dir[PATH_BYTES_MAX];
    uint32_t quit = CMD_QUIT;
    uint8_t src_hash[32];
    struct store_sync_state st;
    double t0;
    int ret;

    if (hub_open(b) != SAT_OK)
        return -1;
    su.port = b->port;
    memcpy(su.id, b->dev_id, HUB_ID_BYTES);
    memcpy(su.ca, b->ca.crt, sizeof su.ca);
    memcpy(su.crt, b->dev_pem.crt, sizeof su.crt);
    memcpy(su.key, b->dev_pem.key, sizeof su.key);
    ret = write_full(b->cmd_fd, &su, sizeof su);
    mbedtls_platform_zeroize(&su, sizeof su);
    if (ret != 0) {
        fprintf(stderr, "bench_sync: cannot reach the device process\n");
        return -1;
    }

    snprintf(dir, sizeof dir, "%s/source", b->base);
    b->src_open = 1;
    if (source_open(&b->src, dir) != SAT_OK ||
        hub_store_device_register(b->hub, b->src.id, TEAM) != SAT_OK) {
        fprintf(stderr, "bench_sync: cannot set up the source tablet\n");
        return -1;
    }
    fprintf(stderr, "bench_sync: source tablet: writing %" PRIu32 " records\n", b->records);
    t0 = now_ms();
    if (source_seed(&b->src, b->records) != SAT_OK)
        return -1;
    res->seed_ms = now_ms() - t0;
    res->patients = b->src.patients;
    fprintf(stderr, "bench_sync: source tablet: pushing them to the hub (untimed)\n");
    t0 = now_ms();
    if (source_push(&b->src, b->hub, &b->hal, &res->source_changes) != SAT_OK)
        return -1;
    res->push_ms = now_ms() - t0;
    if (store_sync_state(b->src.store, &st) != SAT_OK || st.push_acked != st.last_seq) {
        fprintf(stderr, "bench_sync: the hub does not hold all of the source's changes\n");
        return -1;
    }
    if (device_report(b, &res->ready, "the device's set-up") != 0)
        return -1;

    fprintf(stderr, "bench_sync: initial sync of %" PRIu32 " records over loopback TLS\n",
            b->records);
    if (run_sync(b, CMD_SYNC_INITIAL, &res->initial, &res->hub_initial) != 0)
        return -1;
    if (res->initial.pulled != res->source_changes)
        fprintf(stderr, "bench_sync: warning: the device pulled %" PRIu64 " changes, the source "
                        "pushed %" PRIu64 "\n",
                res->initial.pulled, res->source_changes);

    fprintf(stderr, "bench_sync: source tablet: changing %u addresses, pushing them\n",
            CHANGED_FIELDS);
    if (source_change_addresses(&b->src) != SAT_OK ||
        source_push(&b->src, b->hub, &b->hal, &res->source_incremental) != SAT_OK)
        return -1;
    fprintf(stderr, "bench_sync: incremental sync over a new TLS connection\n");
    if (run_sync(b, CMD_SYNC_INCREMENTAL, &res->incremental, &res->hub_incremental) != 0)
        return -1;

    if (write_full(b->cmd_fd, &quit, sizeof quit) != 0 ||
        device_report(b, &res->last, "hashing the device's store") != 0)
        return -1;
    if (store_content_hash(b->src.store, src_hash) != SAT_OK) {
        fprintf(stderr, "bench_sync: cannot hash the source's store: %s\n",
                store_errmsg(b->src.store));
        return -1;
    }
    res->content_match = memcmp(src_hash, res->last.hash, sizeof src_hash) == 0;
    {
        static const char *const dev_files[] = { STORE_DB_NAME, STORE_DB_NAME "-journal" };
        static const char *const hub_files[] = { "hub.db", "hub.db-wal" };
        res->store_bytes = files_size(b->base, "device", dev_files, 2);
        res->hub_bytes = files_size(b->base, "hub", hub_files, 2);
    }
    print_results(b, res);
    if (!res->content_match || res->incremental.pulled != CHANGED_FIELDS) {
        fprintf(stderr, "bench_sync: the device does not hold what the source wrote (%" PRIu64
                        " incremental changes pulled); the figures are void\n",
                res->incremental.pulled);
        return -1;
    }
    return 0;
}

static int parse_records(const char *text, uint32_t *out)
{
    char *end = NULL;
    unsigned long v;
    errno = 0;
    v = strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v < 1 || v > RECORDS_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    static struct bench b;
    static struct results res;
    const char *parent = NULL;
    int records_set = 0;
    int quick = 0;
    int cmd_pipe[2] = { -1, -1 };
    int rep_pipe[2] = { -1, -1 };
    int ret = 1;

    b.records = RECORDS_DEFAULT;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--records") == 0 && i + 1 < argc) {
            if (parse_records(argv[++i], &b.records) != 0) {
                fprintf(stderr, "bench_sync: --records wants a number from 1 to %u, not '%s'\n",
                        RECORDS_MAX, argv[i]);
                return 2;
            }
            records_set = 1;
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            parent = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else {
            fprintf(stderr, "bench_sync: unknown or incomplete option '%s'\n%s", argv[i],
                    usage_text);
            return 2;
        }
    }
    if (quick && !records_set)
        b.records = RECORDS_QUICK;
    if (!parent)
        parent = getenv("TMPDIR") && getenv("TMPDIR")[0] ? getenv("TMPDIR") : "/tmp";
    if (snprintf(b.base, sizeof b.base, "%s/satchel-sbench-XXXXXX", parent) >=
            (int)sizeof b.base ||
        !mkdtemp(b.base)) {
        fprintf(stderr, "bench_sync: cannot make a directory under %s: %s; check --dir\n", parent,
                strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    /* The device first, while this process is still small. */
    if (pipe(cmd_pipe) != 0 || pipe(rep_pipe) != 0) {
        fprintf(stderr, "bench_sync: pipe: %s\n", strerror(errno));
        goto exit;
    }
    fflush(stdout);
    fflush(stderr);
    b.child = fork();
    if (b.child < 0) {
        fprintf(stderr, "bench_sync: fork: %s\n", strerror(errno));
        goto exit;
    }
    if (b.child == 0) {
        char dir[PATH_BYTES_MAX];
        close(cmd_pipe[1]);
        close(rep_pipe[0]);
        snprintf(dir, sizeof dir, "%s/device", b.base);
        _exit(device_main(dir, cmd_pipe[0], rep_pipe[1]));
    }
    close(cmd_pipe[0]);
    close(rep_pipe[1]);
    cmd_pipe[0] = rep_pipe[1] = -1;
    b.cmd_fd = cmd_pipe[1];
    b.rep_fd = rep_pipe[0];

    fprintf(stderr, "bench_sync: %" PRIu32 " records in %s (device: pid %ld)\n", b.records,
            b.base, (long)b.child);
    if (run(&b, &res) == 0)
        ret = 0;
exit:
    for (int i = 0; i < 2; i++) {
        if (cmd_pipe[i] >= 0)
            close(cmd_pipe[i]);
        if (rep_pipe[i] >= 0)
            close(rep_pipe[i]);
    }
    if (b.child > 0) {
        int status = 0;
        if (ret != 0)
            kill(b.child, SIGTERM);
        while (waitpid(b.child, &status, 0) < 0 && errno == EINTR)
            ;
        if (ret == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
            fprintf(stderr, "bench_sync: the device process did not end cleanly\n");
            ret = 1;
        }
    }
    if (b.src_open)
        source_close(&b.src);
    hub_close(&b);
    mbedtls_platform_zeroize(&b.ca, sizeof b.ca);
    mbedtls_platform_zeroize(&b.hub_pem, sizeof b.hub_pem);
    mbedtls_platform_zeroize(&b.dev_pem, sizeof b.dev_pem);
    if (bench_rm_tree(b.base) != 0) {
        fprintf(stderr, "bench_sync: could not remove %s entirely; remove it by hand\n", b.base);
        ret = 1;
    }
    fflush(stdout);
    return ret;
}
