/*
 * hal.c - the thin wrappers core code calls instead of the HAL's pointers.
 * A NULL member answers SAT_ERR_NOT_SUPPORTED (hal.h rule 2).
 */
#include "hal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define HAL_CALL(h, member, ...) \
    ((h)->member ? (h)->member((h)->ctx, __VA_ARGS__) : SAT_ERR_NOT_SUPPORTED)
#define HAL_CALL0(h, member) ((h)->member ? (h)->member((h)->ctx) : SAT_ERR_NOT_SUPPORTED)

uint64_t hal_clock_monotonic_ms(const struct hal *h)
{
    return h->clock_monotonic_ms ? h->clock_monotonic_ms(h->ctx) : 0;
}

int64_t hal_clock_wall_ms(const struct hal *h)
{
    return h->clock_wall_ms ? h->clock_wall_ms(h->ctx) : 0;
}

int hal_entropy_fill(const struct hal *h, uint8_t *buf, size_t len)
{
    return HAL_CALL(h, entropy_fill, buf, len);
}

int hal_entropy_source(void *hal, uint8_t *buf, size_t len)
{
    return hal_entropy_fill(hal, buf, len);
}

int hal_storage_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > HAL_FILE_NAME_BYTES_MAX || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

int hal_storage_open(const struct hal *h, const char *name, unsigned flags, hal_file **out)
{
    if (!hal_storage_name_valid(name))
        return SAT_ERR_INVALID;
    return HAL_CALL(h, storage_open, name, flags, out);
}

int hal_storage_read(const struct hal *h, hal_file *f, uint64_t off, void *buf, size_t len,
                     size_t *got)
{
    return HAL_CALL(h, storage_read, f, off, buf, len, got);
}

int hal_storage_read_full(const struct hal *h, hal_file *f, uint64_t off, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        size_t got = 0;
        int ret = hal_storage_read(h, f, off + done, (uint8_t *)buf + done, len - done, &got);
        if (ret != SAT_OK)
            return ret;
        if (got == 0)
            return SAT_ERR_IO;
        done += got;
    }
    return SAT_OK;
}

int hal_storage_write(const struct hal *h, hal_file *f, uint64_t off, const void *buf,
                      size_t len)
{
    return HAL_CALL(h, storage_write, f, off, buf, len);
}

int hal_storage_sync(const struct hal *h, hal_file *f)
{
    return HAL_CALL(h, storage_sync, f);
}

int hal_storage_truncate(const struct hal *h, hal_file *f, uint64_t size)
{
    return HAL_CALL(h, storage_truncate, f, size);
}

int hal_storage_size(const struct hal *h, hal_file *f, uint64_t *size)
{
    return HAL_CALL(h, storage_size, f, size);
}

int hal_storage_close(const struct hal *h, hal_file *f)
{
    return HAL_CALL(h, storage_close, f);
}

int hal_storage_delete(const struct hal *h, const char *name)
{
    if (!hal_storage_name_valid(name))
        return SAT_ERR_INVALID;
    return HAL_CALL(h, storage_delete, name);
}

int hal_storage_list(const struct hal *h, hal_list_fn fn, void *arg)
{
    return HAL_CALL(h, storage_list, fn, arg);
}

int hal_keystore_device_secret(const struct hal *h, uint8_t out[HAL_DEVICE_SECRET_BYTES])
{
    return HAL_CALL(h, keystore_device_secret, out);
}

int hal_keystore_wipe(const struct hal *h)
{
    return HAL_CALL0(h, keystore_wipe);
}

int hal_keystore_counter_read(const struct hal *h, unsigned slot, uint64_t *value)
{
    if (slot >= HAL_COUNTERS_MAX)
        return SAT_ERR_INVALID;
    return HAL_CALL(h, keystore_counter_read, slot, value);
}

int hal_keystore_counter_advance(const struct hal *h, unsigned slot, uint64_t value)
{
    if (slot >= HAL_COUNTERS_MAX)
        return SAT_ERR_INVALID;
    return HAL_CALL(h, keystore_counter_advance, slot, value);
}

int hal_net_connect(const struct hal *h, const char *host, uint16_t port, hal_sock **out)
{
    return HAL_CALL(h, net_connect, host, port, out);
}

int hal_net_connect_status(const struct hal *h, hal_sock *s)
{
    return HAL_CALL(h, net_connect_status, s);
}

int hal_net_listen(const struct hal *h, const char *host, uint16_t port, hal_sock **out)
{
    return HAL_CALL(h, net_listen, host, port, out);
}

int hal_net_accept(const struct hal *h, hal_sock *listener, hal_sock **out)
{
    return HAL_CALL(h, net_accept, listener, out);
}

int hal_net_local_port(const struct hal *h, hal_sock *s, uint16_t *port)
{
    return HAL_CALL(h, net_local_port, s, port);
}

int hal_net_send(const struct hal *h, hal_sock *s, const void *buf, size_t len, size_t *sent)
{
    return HAL_CALL(h, net_send, s, buf, len, sent);
}

int hal_net_recv(const struct hal *h, hal_sock *s, void *buf, size_t len, size_t *got)
{
    return HAL_CALL(h, net_recv, s, buf, len, got);
}

int hal_net_close(const struct hal *h, hal_sock *s)
{
    return HAL_CALL(h, net_close, s);
}

int hal_net_wait(const struct hal *h, hal_sock *const *socks, const unsigned *want,
                 unsigned *ready, size_t n, uint32_t timeout_ms)
{
    return HAL_CALL(h, net_wait, socks, want, ready, n, timeout_ms);
}

int hal_net_link_up(const struct hal *h)
{
    return h->net_link_up ? h->net_link_up(h->ctx) : 0;
}

int hal_power_battery_pct(const struct hal *h, int *pct)
{
    return HAL_CALL(h, power_battery_pct, pct);
}

int hal_boot_active_slot(const struct hal *h, int *slot)
{
    return HAL_CALL(h, boot_active_slot, slot);
}

int hal_boot_set_trial(const struct hal *h, int slot)
{
    if (slot != 0 && slot != 1)
        return SAT_ERR_INVALID;
    return HAL_CALL(h, boot_set_trial, slot);
}

int hal_boot_confirm(const struct hal *h)
{
    return HAL_CALL0(h, boot_confirm);
}

int hal_boot_reboot(const struct hal *h)
{
    return HAL_CALL0(h, boot_reboot);
}

void hal_log(const struct hal *h, enum hal_log_level level, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    if (!h->log)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    h->log(h->ctx, level, line);
}
