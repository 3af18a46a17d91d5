/*
 * hal_posix.c - the HAL over Linux system calls (see hal_posix.h).
 */
#define _GNU_SOURCE /* accept4, SOCK_NONBLOCK, getrandom */

#include "hal_posix.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEYSTORE_DIR ".keystore"
#define SECRET_FILE "device-secret"
#define COUNTERS_FILE "counters"
#define BOOT_FILE "boot-state"
#define LISTEN_BACKLOG 64

struct posix_ctx {
    int root_fd; /* the data directory */
    int ks_fd;   /* its .keystore subdirectory */
    enum hal_log_level log_level;
};

struct hal_file {
    int fd;
};

struct hal_sock {
    int fd;
    int connecting; /* non-blocking connect not yet resolved */
    int listener;
};

/* ---- helpers ------------------------------------------------------------ */

static int err_from_errno(int e)
{
    switch (e) {
    case ENOENT: return SAT_ERR_NOT_FOUND;
    case EEXIST: return SAT_ERR_EXISTS;
    case ENOSPC:
    case EDQUOT: return SAT_ERR_NO_SPACE;
    case ENOMEM: return SAT_ERR_NO_MEMORY;
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case EINPROGRESS: return SAT_ERR_WOULD_BLOCK;
    case ECONNREFUSED: return SAT_ERR_REFUSED;
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ENETDOWN: return SAT_ERR_UNREACHABLE;
    case ETIMEDOUT: return SAT_ERR_TIMEOUT;
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED: return SAT_ERR_RESET;
    case EINVAL:
    case ENAMETOOLONG:
    case EBADF: return SAT_ERR_INVALID;
    default: return SAT_ERR_IO;
    }
}

static int fsync_dir(int dir_fd)
{
    return fsync(dir_fd) == 0 ? SAT_OK : err_from_errno(errno);
}

static int write_all_fd(int fd, const void *buf, size_t len, off_t off)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return err_from_errno(errno);
        }
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return SAT_OK;
}

/* Replaces dir/name with data, durably: temp file, fsync, rename, fsync dir. */
static int replace_file(int dir_fd, const char *name, const void *data, size_t len)
{
    char tmp[HAL_FILE_NAME_BYTES_MAX + 8];
    int ret = SAT_ERR_IO;
    int fd;
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_from_errno(errno);
    ret = write_all_fd(fd, data, len, 0);
    if (ret == SAT_OK && fsync(fd) != 0)
        ret = err_from_errno(errno);
    close(fd);
    if (ret == SAT_OK && renameat(dir_fd, tmp, dir_fd, name) != 0)
        ret = err_from_errno(errno);
    if (ret == SAT_OK)
        ret = fsync_dir(dir_fd);
    if (ret != SAT_OK)
        unlinkat(dir_fd, tmp, 0);
    return ret;
}

/* Reads exactly len bytes of dir/name. SAT_ERR_NOT_FOUND if it is missing,
 * SAT_ERR_IO if it has another size. */
static int read_exact_file(int dir_fd, const char *name, void *data, size_t len)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
    int ret = SAT_ERR_IO;
    struct stat st;
    if (fd < 0)
        return err_from_errno(errno);
    if (fstat(fd, &st) == 0 && (size_t)st.st_size == len &&
        pread(fd, data, len, 0) == (ssize_t)len)
        ret = SAT_OK;
    close(fd);
    return ret;
}

/* ---- clock -------------------------------------------------------------- */

static uint64_t px_clock_monotonic_ms(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int64_t px_clock_wall_ms(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- entropy ------------------------------------------------------------ */

static int px_entropy_fill(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    while (len > 0) {
        ssize_t n = getrandom(buf, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return SAT_ERR_IO;
        }
        buf += n;
        len -= (size_t)n;
    }
    return SAT_OK;
}

/* ---- storage ------------------------------------------------------------ */

static int px_storage_open(void *ctx, const char *name, unsigned flags, hal_file **out)
{
    struct posix_ctx *c = ctx;
    int oflags = O_RDWR | O_CLOEXEC;
    int created = 0;
    struct hal_file *f;
    int fd;
    if (flags & HAL_OPEN_CREATE) {
        oflags |= O_CREAT;
        if (flags & HAL_OPEN_EXCLUSIVE)
            oflags |= O_EXCL;
        /* Only an actual creation needs the directory synced. */
        created = faccessat(c->root_fd, name, F_OK, 0) != 0;
    }
    fd = openat(c->root_fd, name, oflags, 0600);
    if (fd < 0)
        return err_from_errno(errno);
    if (created && fsync_dir(c->root_fd) != SAT_OK) {
        close(fd);
        return SAT_ERR_IO;
    }
    f = malloc(sizeof *f);
    if (!f) {
        close(fd);
        return SAT_ERR_NO_MEMORY;
    }
    f->fd = fd;
    *out = f;
    return SAT_OK;
}

static int px_storage_read(void *ctx, hal_file *f, uint64_t off, void *buf, size_t len,
                           size_t *got)
{
    size_t done = 0;
    (void)ctx;
    while (done < len) {
        ssize_t n = pread(f->fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return err_from_errno(errno);
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    *got = done;
    return SAT_OK;
}

static int px_storage_write(void *ctx, hal_file *f, uint64_t off, const void *buf, size_t len)
{
    (void)ctx;
    return write_all_fd(f->fd, buf, len, (off_t)off);
}

static int px_storage_sync(void *ctx, hal_file *f)
{
    (void)ctx;
    return fdatasync(f->fd) == 0 ? SAT_OK : err_from_errno(errno);
}

static int px_storage_truncate(void *ctx, hal_file *f, uint64_t size)
{
    (void)ctx;
    return ftruncate(f->fd, (off_t)size) == 0 ? SAT_OK : err_from_errno(errno);
}

static int px_storage_size(void *ctx, hal_file *f, uint64_t *size)
{
    struct stat st;
    (void)ctx;
    if (fstat(f->fd, &st) != 0)
        return err_from_errno(errno);
    *size = (uint64_t)st.st_size;
    return SAT_OK;
}

static int px_storage_close(void *ctx, hal_file *f)
{
    int ret = SAT_OK;
    (void)ctx;
    if (close(f->fd) != 0)
        ret = SAT_ERR_IO;
    free(f);
    return ret;
}

static int px_storage_delete(void *ctx, const char *name)
{
    struct posix_ctx *c = ctx;
    if (unlinkat(c->root_fd, name, 0) != 0)
        return err_from_errno(errno);
    return fsync_dir(c->root_fd);
}

static int px_storage_list(void *ctx, hal_list_fn fn, void *arg)
{
    struct posix_ctx *c = ctx;
    int fd = dup(c->root_fd);
    DIR *d;
    struct dirent *e;
    int ret = SAT_OK;
    if (fd < 0)
        return err_from_errno(errno);
    d = fdopendir(fd);
    if (!d) {
        close(fd);
        return err_from_errno(errno);
    }
    rewinddir(d);
    while (ret == SAT_OK && (e = readdir(d)) != NULL) {
        struct stat st;
        if (!hal_storage_name_valid(e->d_name))
            continue;
        if (fstatat(c->root_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode))
            continue;
        ret = fn(arg, e->d_name);
    }
    closedir(d);
    return ret;
}

/* ---- key store ---------------------------------------------------------- */

static int counters_load(struct posix_ctx *c, uint64_t v[HAL_COUNTERS_MAX])
{
    uint8_t raw[HAL_COUNTERS_MAX * 8];
    int ret = read_exact_file(c->ks_fd, COUNTERS_FILE, raw, sizeof raw);
    if (ret == SAT_ERR_NOT_FOUND) {
        memset(v, 0, HAL_COUNTERS_MAX * sizeof v[0]);
        return SAT_OK;
    }
    if (ret != SAT_OK)
        return ret;
    for (unsigned i = 0; i < HAL_COUNTERS_MAX; i++) {
        uint64_t x = 0;
        for (int b = 7; b >= 0; b--)
            x = (x << 8) | raw[i * 8 + (unsigned)b];
        v[i] = x;
    }
    return SAT_OK;
}

static int counters_store(struct posix_ctx *c, const uint64_t v[HAL_COUNTERS_MAX])
{
    uint8_t raw[HAL_COUNTERS_MAX * 8];
    for (unsigned i = 0; i < HAL_COUNTERS_MAX; i++)
        for (unsigned b = 0; b < 8; b++)
            raw[i * 8 + b] = (uint8_t)(v[i] >> (8 * b));
    return replace_file(c->ks_fd, COUNTERS_FILE, raw, sizeof raw);
}

static int px_keystore_counter_read(void *ctx, unsigned slot, uint64_t *value)
{
    uint64_t v[HAL_COUNTERS_MAX];
    int ret = counters_load(ctx, v);
    if (ret == SAT_OK)
        *value = v[slot];
    return ret;
}

static int px_keystore_counter_advance(void *ctx, unsigned slot, uint64_t value)
{
    uint64_t v[HAL_COUNTERS_MAX];
    int ret = counters_load(ctx, v);
    if (ret != SAT_OK)
        return ret;
    if (value < v[slot])
        return SAT_ERR_INVALID;
    if (value == v[slot])
        return SAT_OK;
    v[slot] = value;
    return counters_store(ctx, v);
}

static int px_keystore_device_secret(void *ctx, uint8_t out[HAL_DEVICE_SECRET_BYTES])
{
    struct posix_ctx *c = ctx;
    uint8_t fresh[HAL_DEVICE_SECRET_BYTES];
    int ret = read_exact_file(c->ks_fd, SECRET_FILE, out, HAL_DEVICE_SECRET_BYTES);
    if (ret != SAT_ERR_NOT_FOUND)
        return ret;
    ret = px_entropy_fill(ctx, fresh, sizeof fresh);
    if (ret == SAT_OK)
        ret = replace_file(c->ks_fd, SECRET_FILE, fresh, sizeof fresh);
    if (ret == SAT_OK)
        memcpy(out, fresh, sizeof fresh);
    explicit_bzero(fresh, sizeof fresh);
    return ret;
}

static int px_keystore_wipe(void *ctx)
{
    struct posix_ctx *c = ctx;
    uint8_t zero[HAL_DEVICE_SECRET_BYTES] = { 0 };
    uint64_t epoch = 0;
    int ret;
    int fd = openat(c->ks_fd, SECRET_FILE, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        /* Overwrite before unlinking: a file system may keep the blocks. */
        ret = write_all_fd(fd, zero, sizeof zero, 0);
        if (ret == SAT_OK && fsync(fd) != 0)
            ret = SAT_ERR_IO;
        close(fd);
        if (ret != SAT_OK)
            return ret;
        if (unlinkat(c->ks_fd, SECRET_FILE, 0) != 0)
            return err_from_errno(errno);
        ret = fsync_dir(c->ks_fd);
        if (ret != SAT_OK)
            return ret;
    } else if (errno != ENOENT) {
        return err_from_errno(errno);
    }
    ret = px_keystore_counter_read(ctx, HAL_COUNTER_KEY_EPOCH, &epoch);
    if (ret == SAT_OK)
        ret = px_keystore_counter_advance(ctx, HAL_COUNTER_KEY_EPOCH, epoch + 1);
    return ret;
}

/* ---- network ------------------------------------------------------------ */

static int resolve(const char *host, uint16_t port, int passive, struct addrinfo **res)
{
    struct addrinfo hints;
    char portstr[8];
    int rc;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
    rc = getaddrinfo(host, portstr, &hints, res);
    if (rc != 0)
        return rc == EAI_MEMORY ? SAT_ERR_NO_MEMORY : SAT_ERR_UNREACHABLE;
    return SAT_OK;
}

static int sock_new(int fd, int connecting, int listener, hal_sock **out)
{
    struct hal_sock *s = malloc(sizeof *s);
    if (!listener) {
        /* Sync sends whole request and response frames: Nagle's delay only
         * stalls TLS handshake flights (~40 ms each with delayed ACKs). */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (!s) {
        close(fd);
        return SAT_ERR_NO_MEMORY;
    }
    s->fd = fd;
    s->connecting = connecting;
    s->listener = listener;
    *out = s;
    return SAT_OK;
}

static int px_net_connect(void *ctx, const char *host, uint16_t port, hal_sock **out)
{
    struct addrinfo *res = NULL;
    int ret;
    int fd;
    (void)ctx;
    ret = resolve(host, port, 0, &res);
    if (ret != SAT_OK)
        return ret;
    fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                res->ai_protocol);
    if (fd < 0) {
        ret = err_from_errno(errno);
        goto exit;
    }
    if (connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
        ret = sock_new(fd, 0, 0, out);
    } else if (errno == EINPROGRESS) {
        ret = sock_new(fd, 1, 0, out);
    } else {
        ret = err_from_errno(errno);
        close(fd);
    }
exit:
    freeaddrinfo(res);
    return ret;
}

static int px_net_connect_status(void *ctx, hal_sock *s)
{
    struct pollfd p = { .fd = s->fd, .events = POLLOUT };
    int soerr = 0;
    socklen_t len = sizeof soerr;
    (void)ctx;
    if (!s->connecting)
        return SAT_OK;
    if (poll(&p, 1, 0) < 0)
        return err_from_errno(errno);
    if (!(p.revents & (POLLOUT | POLLERR | POLLHUP)))
        return SAT_ERR_WOULD_BLOCK;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
        return err_from_errno(errno);
    if (soerr != 0) {
        int ret = err_from_errno(soerr);
        return ret == SAT_ERR_WOULD_BLOCK ? SAT_ERR_IO : ret;
    }
    s->connecting = 0;
    return SAT_OK;
}

static int px_net_listen(void *ctx, const char *host, uint16_t port, hal_sock **out)
{
    struct addrinfo *res = NULL;
    int one = 1;
    int ret;
    int fd;
    (void)ctx;
    ret = resolve(host, port, 1, &res);
    if (ret != SAT_OK)
        return ret;
    fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                res->ai_protocol);
    if (fd < 0) {
        ret = err_from_errno(errno);
        goto exit;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        ret = errno == EADDRINUSE ? SAT_ERR_EXISTS : err_from_errno(errno);
        close(fd);
        goto exit;
    }
    ret = sock_new(fd, 0, 1, out);
exit:
    freeaddrinfo(res);
    return ret;
}

static int px_net_accept(void *ctx, hal_sock *listener, hal_sock **out)
{
    int fd;
    (void)ctx;
    if (!listener->listener)
        return SAT_ERR_INVALID;
    fd = accept4(listener->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return err_from_errno(errno);
    return sock_new(fd, 0, 0, out);
}

static int px_net_local_port(void *ctx, hal_sock *s, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    (void)ctx;
    if (getsockname(s->fd, (struct sockaddr *)&ss, &len) != 0)
        return err_from_errno(errno);
    if (ss.ss_family == AF_INET)
        *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else if (ss.ss_family == AF_INET6)
        *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    else
        return SAT_ERR_INVALID;
    return SAT_OK;
}

static int px_net_send(void *ctx, hal_sock *s, const void *buf, size_t len, size_t *sent)
{
    ssize_t n;
    if (s->connecting) {
        int ret = px_net_connect_status(ctx, s);
        if (ret != SAT_OK)
            return ret;
    }
    if (len == 0) {
        *sent = 0;
        return SAT_OK;
    }
    do {
        n = send(s->fd, buf, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return err_from_errno(errno);
    *sent = (size_t)n;
    return SAT_OK;
}

static int px_net_recv(void *ctx, hal_sock *s, void *buf, size_t len, size_t *got)
{
    ssize_t n;
    if (s->connecting) {
        int ret = px_net_connect_status(ctx, s);
        if (ret != SAT_OK)
            return ret;
    }
    do {
        n = recv(s->fd, buf, len, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return err_from_errno(errno);
    if (n == 0 && len > 0)
        return SAT_ERR_CLOSED;
    *got = (size_t)n;
    return SAT_OK;
}

static int px_net_close(void *ctx, hal_sock *s)
{
    int ret = close(s->fd) == 0 ? SAT_OK : SAT_ERR_IO;
    (void)ctx;
    free(s);
    return ret;
}

#define NET_WAIT_SOCKS_MAX 256

static int px_net_wait(void *ctx, hal_sock *const *socks, const unsigned *want, unsigned *ready,
                       size_t n, uint32_t timeout_ms)
{
    struct pollfd p[NET_WAIT_SOCKS_MAX];
    int rc;
    (void)ctx;
    if (n > NET_WAIT_SOCKS_MAX)
        return SAT_ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        p[i].fd = socks[i]->fd;
        p[i].events = (short)(((want[i] & HAL_NET_READABLE) ? POLLIN : 0) |
                              ((want[i] & HAL_NET_WRITABLE) || socks[i]->connecting ? POLLOUT
                                                                                   : 0));
        p[i].revents = 0;
    }
    do {
        rc = poll(p, n, (int)timeout_ms);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0)
        return err_from_errno(errno);
    for (size_t i = 0; i < n; i++) {
        unsigned r = 0;
        /* Errors and hang-ups count as ready: the next call reports them. */
        if (p[i].revents & (POLLIN | POLLERR | POLLHUP))
            r |= want[i] & HAL_NET_READABLE;
        if (p[i].revents & (POLLOUT | POLLERR | POLLHUP))
            r |= want[i] & HAL_NET_WRITABLE;
        ready[i] = r;
    }
    return rc == 0 ? SAT_ERR_TIMEOUT : SAT_OK;
}

/* A PC or tablet without a link still reaches loopback; whether the hub is
 * reachable is learned by connecting. */
static int px_net_link_up(void *ctx)
{
    (void)ctx;
    return 1;
}

/* ---- power -------------------------------------------------------------- */

static int px_power_battery_pct(void *ctx, int *pct)
{
    static const char *const paths[] = { "/sys/class/power_supply/BAT0/capacity",
                                         "/sys/class/power_supply/BAT1/capacity",
                                         "/sys/class/power_supply/battery/capacity" };
    (void)ctx;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        FILE *fp = fopen(paths[i], "re");
        int v = -1;
        if (!fp)
            continue;
        if (fscanf(fp, "%d", &v) != 1)
            v = -1;
        fclose(fp);
        if (v >= 0 && v <= 100) {
            *pct = v;
            return SAT_OK;
        }
    }
    return SAT_ERR_NOT_SUPPORTED;
}

/* ---- boot slots ---------------------------------------------------------
 * On a PC the A/B slots are simulated by a small state record; on a tablet
 * the bootloader's environment would hold the same three facts. */

struct boot_state {
    int active;    /* slot running now */
    int previous;  /* slot to fall back to if a trial is not confirmed */
    int trial;     /* slot to try at the next boot, or -1 */
    int confirmed; /* the active slot has been confirmed */
};

static int boot_load(struct posix_ctx *c, struct boot_state *b)
{
    char text[64] = { 0 };
    int fd = openat(c->ks_fd, BOOT_FILE, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    if (fd < 0) {
        if (errno != ENOENT)
            return err_from_errno(errno);
        *b = (struct boot_state){ .active = 0, .previous = 0, .trial = -1, .confirmed = 1 };
        return SAT_OK;
    }
    n = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    if (n <= 0 || sscanf(text, "active=%d previous=%d trial=%d confirmed=%d", &b->active,
                         &b->previous, &b->trial, &b->confirmed) != 4)
        return SAT_ERR_IO;
    return SAT_OK;
}

static int boot_store(struct posix_ctx *c, const struct boot_state *b)
{
    char text[64];
    int n = snprintf(text, sizeof text, "active=%d previous=%d trial=%d confirmed=%d\n",
                     b->active, b->previous, b->trial, b->confirmed);
    return replace_file(c->ks_fd, BOOT_FILE, text, (size_t)n);
}

static int px_boot_active_slot(void *ctx, int *slot)
{
    struct boot_state b;
    int ret = boot_load(ctx, &b);
    if (ret == SAT_OK)
        *slot = b.active;
    return ret;
}

static int px_boot_set_trial(void *ctx, int slot)
{
    struct boot_state b;
    int ret = boot_load(ctx, &b);
    if (ret != SAT_OK)
        return ret;
    b.trial = slot;
    return boot_store(ctx, &b);
}

static int px_boot_confirm(void *ctx)
{
    struct boot_state b;
    int ret = boot_load(ctx, &b);
    if (ret != SAT_OK)
        return ret;
    b.confirmed = 1;
    b.previous = b.active;
    return boot_store(ctx, &b);
}

/* A PC cannot be rebooted by Satchel: the state moves as a bootloader would
 * move it, and the caller is expected to exit and be started again. */
static int px_boot_reboot(void *ctx)
{
    struct boot_state b;
    int ret = boot_load(ctx, &b);
    if (ret != SAT_OK)
        return ret;
    if (b.trial >= 0) {
        b.previous = b.confirmed ? b.active : b.previous;
        b.active = b.trial;
        b.trial = -1;
        b.confirmed = 0;
    } else if (!b.confirmed) {
        b.active = b.previous; /* trial never confirmed: roll back */
        b.confirmed = 1;
    }
    return boot_store(ctx, &b);
}

/* ---- log ---------------------------------------------------------------- */

static void px_log(void *ctx, enum hal_log_level level, const char *msg)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    struct posix_ctx *c = ctx;
    if (level > c->log_level)
        return;
    fprintf(stderr, "satchel: %s: %s\n", names[level], msg);
}

/* ---- set-up ------------------------------------------------------------- */

static enum hal_log_level level_from_env(void)
{
    const char *v = getenv("SATCHEL_LOG");
    if (!v)
        return HAL_LOG_WARN;
    if (strcmp(v, "error") == 0)
        return HAL_LOG_ERROR;
    if (strcmp(v, "info") == 0)
        return HAL_LOG_INFO;
    if (strcmp(v, "debug") == 0)
        return HAL_LOG_DEBUG;
    return HAL_LOG_WARN;
}

static int open_dir(int at, const char *path)
{
    if (mkdirat(at, path, 0700) != 0 && errno != EEXIST)
        return -1;
    return openat(at, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int hal_posix_open(struct hal *h, const char *data_dir)
{
    struct posix_ctx *c;
    memset(h, 0, sizeof *h);
    c = malloc(sizeof *c);
    if (!c)
        return SAT_ERR_NO_MEMORY;
    c->root_fd = open_dir(AT_FDCWD, data_dir);
    c->ks_fd = c->root_fd >= 0 ? open_dir(c->root_fd, KEYSTORE_DIR) : -1;
    if (c->ks_fd < 0) {
        int ret = err_from_errno(errno);
        if (c->root_fd >= 0)
            close(c->root_fd);
        free(c);
        return ret == SAT_ERR_NOT_FOUND ? SAT_ERR_NOT_FOUND : SAT_ERR_IO;
    }
    c->log_level = level_from_env();

    h->version = HAL_VERSION;
    h->ctx = c;
    h->clock_monotonic_ms = px_clock_monotonic_ms;
    h->clock_wall_ms = px_clock_wall_ms;
    h->entropy_fill = px_entropy_fill;
    h->storage_open = px_storage_open;
    h->storage_read = px_storage_read;
    h->storage_write = px_storage_write;
    h->storage_sync = px_storage_sync;
    h->storage_truncate = px_storage_truncate;
    h->storage_size = px_storage_size;
    h->storage_close = px_storage_close;
    h->storage_delete = px_storage_delete;
    h->storage_list = px_storage_list;
    h->keystore_device_secret = px_keystore_device_secret;
    h->keystore_wipe = px_keystore_wipe;
    h->keystore_counter_read = px_keystore_counter_read;
    h->keystore_counter_advance = px_keystore_counter_advance;
    h->net_connect = px_net_connect;
    h->net_connect_status = px_net_connect_status;
    h->net_listen = px_net_listen;
    h->net_accept = px_net_accept;
    h->net_local_port = px_net_local_port;
    h->net_send = px_net_send;
    h->net_recv = px_net_recv;
    h->net_close = px_net_close;
    h->net_wait = px_net_wait;
    h->net_link_up = px_net_link_up;
    h->power_battery_pct = px_power_battery_pct;
    h->boot_active_slot = px_boot_active_slot;
    h->boot_set_trial = px_boot_set_trial;
    h->boot_confirm = px_boot_confirm;
    h->boot_reboot = px_boot_reboot;
    h->log = px_log;
    return SAT_OK;
}

void hal_posix_close(struct hal *h)
{
    struct posix_ctx *c = h->ctx;
    if (c) {
        close(c->ks_fd);
        close(c->root_fd);
        free(c);
    }
    memset(h, 0, sizeof *h);
}

void hal_posix_set_log_level(struct hal *h, enum hal_log_level level)
{
    struct posix_ctx *c = h->ctx;
    c->log_level = level;
}
