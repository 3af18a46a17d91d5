/*
 * cmd_info.c - `satchel info`: the device as the HAL sees it (data
 * directory, whether a PIN is enrolled, files, boot slot, battery,
 * wrong-PIN count, key epoch). It needs no PIN and opens no record.
 * Exit 1 when the device state cannot be read.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>

#include "cli.h"
#include "sat_err.h"

struct info_count {
    unsigned files;
};

static int count_file(void *arg, const char *name)
{
    struct info_count *ic = arg;
    (void)name;
    ic->files++;
    return 0;
}

int cmd_info(struct app *a, int argc, char **argv)
{
    struct info_count ic = { 0 };
    int slot = -1;
    int pct = -1;
    uint64_t failures = 0;
    uint64_t epoch = 0;
    int rc;
    int ret;
    if (argc != 1)
        return cli_usage_error("'info' takes no argument '%s'", argv[1]);
    rc = cli_open_hal(a);
    if (rc != EXIT_OK)
        return rc;
    ret = hal_storage_list(&a->hal, count_file, &ic);
    if (ret == SAT_OK)
        ret = hal_boot_active_slot(&a->hal, &slot);
    if (ret == SAT_OK)
        ret = keys_failures(&a->hal, &failures);
    if (ret == SAT_OK)
        ret = hal_keystore_counter_read(&a->hal, HAL_COUNTER_KEY_EPOCH, &epoch);
    if (ret != SAT_OK) {
        fprintf(stderr, "satchel: cannot read device state in '%s': %s\n", a->data_dir,
                sat_strerror(ret));
        return EXIT_FAIL;
    }
    printf("data directory: %s\n", a->data_dir);
    printf("enrolled: %s\n", keys_enrolled(&a->hal) ? "yes" : "no (run 'satchel enrol')");
    printf("files: %u\n", ic.files);
    printf("boot slot: %c\n", slot == 0 ? 'A' : 'B');
    if (hal_power_battery_pct(&a->hal, &pct) == SAT_OK)
        printf("battery: %d%%\n", pct);
    else
        printf("battery: none (mains powered)\n");
    printf("wrong PINs in a row: %llu\n", (unsigned long long)failures);
    printf("key epoch: %llu\n", (unsigned long long)epoch);
    return EXIT_OK;
}
