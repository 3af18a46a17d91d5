/*
 * main.c - the `satchel` program: the nurse's tablet firmware driven from a
 * command line, on the POSIX HAL (an ARM Linux tablet or a developer's PC).
 *
 * Exit status: 0 success, 1 the command failed (the message says why),
 * 2 usage error (unknown option, missing argument).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hal_posix.h"
#include "sat_proto.h"

#define EXIT_USAGE 2

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: satchel [--data DIR] COMMAND [ARGS]\n"
            "       satchel --help | --version\n"
            "\n"
            "Satchel keeps a community nurse's caseload on her tablet, encrypted,\n"
            "and syncs it with the team's hub when there is a signal.\n"
            "\n"
            "Options:\n"
            "  -d, --data DIR   the device's data directory (default: ./satchel-data)\n"
            "  -h, --help       show this help and exit\n"
            "  -V, --version    show the firmware and protocol versions and exit\n"
            "\n"
            "Commands:\n"
            "  info             show the device: data directory, files, boot slot,\n"
            "                   battery, key-store counters\n"
            "\n"
            "Exit status: 0 success, 1 the command failed, 2 usage error.\n");
}

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

static int cmd_info(const char *data_dir)
{
    struct hal h;
    struct info_count ic = { 0 };
    int slot = -1;
    int pct = -1;
    uint64_t failures = 0;
    uint64_t epoch = 0;
    int ret = hal_posix_open(&h, data_dir);
    if (ret != SAT_OK) {
        fprintf(stderr, "satchel: cannot open data directory '%s': %s\n", data_dir,
                sat_strerror(ret));
        return EXIT_FAILURE;
    }
    ret = hal_storage_list(&h, count_file, &ic);
    if (ret == SAT_OK)
        ret = hal_boot_active_slot(&h, &slot);
    if (ret == SAT_OK)
        ret = hal_keystore_counter_read(&h, HAL_COUNTER_PIN_FAILURES, &failures);
    if (ret == SAT_OK)
        ret = hal_keystore_counter_read(&h, HAL_COUNTER_KEY_EPOCH, &epoch);
    if (ret != SAT_OK) {
        fprintf(stderr, "satchel: cannot read device state in '%s': %s\n", data_dir,
                sat_strerror(ret));
        hal_posix_close(&h);
        return EXIT_FAILURE;
    }
    printf("data directory: %s\n", data_dir);
    printf("files: %u\n", ic.files);
    printf("boot slot: %c\n", slot == 0 ? 'A' : 'B');
    if (hal_power_battery_pct(&h, &pct) == SAT_OK)
        printf("battery: %d%%\n", pct);
    else
        printf("battery: none (mains powered)\n");
    printf("wrong PINs ever entered: %llu\n", (unsigned long long)failures);
    printf("key epoch: %llu\n", (unsigned long long)epoch);
    hal_posix_close(&h);
    return EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "data", required_argument, NULL, 'd' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *data_dir = "satchel-data";
    int c;

    opterr = 0; /* we print our own one-line errors */
    while ((c = getopt_long(argc, argv, "+:d:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            data_dir = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_SUCCESS;
        case 'V':
            printf("satchel %s (protocol %d)\n", SATCHEL_VERSION, PROTO_VERSION);
            return EXIT_SUCCESS;
        case ':':
            fprintf(stderr, "satchel: option '%s' needs an argument (try --help)\n",
                    argv[optind - 1]);
            return EXIT_USAGE;
        default:
            fprintf(stderr, "satchel: unknown option '%s' (try --help)\n", argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "satchel: no command given (try --help)\n");
        return EXIT_USAGE;
    }
    if (strcmp(argv[optind], "info") == 0) {
        if (optind + 1 != argc) {
            fprintf(stderr, "satchel: 'info' takes no arguments (try --help)\n");
            return EXIT_USAGE;
        }
        return cmd_info(data_dir);
    }
    fprintf(stderr, "satchel: unknown command '%s' (try --help)\n", argv[optind]);
    return EXIT_USAGE;
}
