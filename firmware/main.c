/*
 * main.c - the `satchel` program: the nurse's tablet firmware driven from a
 * command line, on the POSIX HAL (an ARM Linux tablet or a developer's PC).
 *
 * This file: the global options (--data, --pin-file, --help, --version),
 * the --help text and the command table. The commands live in cli/, one
 * file per group; cli/cli.h says what they share: the app state, the exit
 * statuses and what every command promises (the PIN, locking, output).
 */
#define _POSIX_C_SOURCE 200809L

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "sat_proto.h"

static const char usage_text[] =
    "Usage: satchel [--data DIR] [--pin-file FILE] COMMAND [ARGS]\n"
    "       satchel --help | --version\n"
    "\n"
    "Satchel keeps a community nurse's caseload on her tablet, encrypted,\n"
    "and syncs it with the team's hub when there is a signal.\n"
    "\n"
    "Options:\n"
    "  -d, --data DIR        the device's data directory (default: ./satchel-data)\n"
    "  -p, --pin-file FILE   read the PIN from the first line of FILE instead of\n"
    "                        asking on the terminal (a PIN is never an argument)\n"
    "  -h, --help            show this help and exit\n"
    "  -V, --version         show the firmware and protocol versions and exit\n"
    "\n"
    "Commands (IDs may be abbreviated to 6 or more leading hex digits):\n"
    "  enrol [--kdf-iterations N] [--recovery-pub FILE]\n"
    "                        set this device's PIN and create the encrypted store\n"
    "  unlock                check the PIN; show wrong-PIN count (every command\n"
    "                        unlocks itself and locks again when it ends)\n"
    "  lock                  nothing stays unlocked between commands: confirms it\n"
    "  change-pin --new-pin-file FILE | (asked on the terminal)\n"
    "  recover --recovery-key FILE   fleet manager: set a new PIN (from --pin-file\n"
    "                        or the terminal) with the fleet's recovery key, keeping\n"
    "                        every record; works after a wrong-PIN erase\n"
    "  patient add --nhs N --given NAME --family NAME --dob YYYY-MM-DD\n"
    "              --address TEXT [--postcode P] [--team T]\n"
    "  patient update ID [--given|--family|--dob|--address|--postcode|--team V]\n"
    "  patient show ID       the patient with visits, observations, notes, tasks\n"
    "  patient list          every patient on this device\n"
    "  patient delete ID\n"
    "  visit start PATIENT [--reason TEXT]\n"
    "  visit end VISIT\n"
    "  obs add PATIENT --resp N --spo2 N [--scale 1|2] (--air | --oxygen)\n"
    "          --sbp N --pulse N --acvpu A|C|V|P|U --temp DEG [--visit V]\n"
    "          [--amends OBS]       record vital signs; prints the NEWS2 score\n"
    "  note add PATIENT (--text TEXT | --text-file FILE) [--visit V]\n"
    "  note amend NOTE (--text TEXT | --text-file FILE)  a correcting note\n"
    "  task add PATIENT --title TEXT [--due YYYY-MM-DD[THH:MM]]\n"
    "  task done TASK\n"
    "  export --json [--patient ID]  the caseload (or one patient) as JSON\n"
    "  sync --hub HOST:PORT [--timeout SECONDS]\n"
    "                        one sync session with the hub over mutual TLS: push\n"
    "                        this device's changes, pull the team's; prints what\n"
    "                        moved (needs 'satchelctl device provision' first)\n"
    "  conflicts             concurrent edits kept for a person to review\n"
    "  info                  the device: data directory, files, boot slot, battery\n"
    "\n"
    "Commands that create a record print its id on the first line.\n"
    "Exit status: 0 success, 1 the command failed, 2 usage error, 3 PIN refused\n"
    "(wrong, locked out, erased, or no PIN set), 4 invalid record data (nothing\n"
    "was written), 5 no such record, 6 stored data damaged or tampered with,\n"
    "7 the hub revoked this device (its records and keys were wiped).\n";

struct command {
    const char *name;
    int (*run)(struct app *a, int argc, char **argv);
};

/* In --help's order. */
static const struct command commands[] = {
    { "enrol", cmd_enrol },
    { "unlock", cmd_unlock },
    { "lock", cmd_lock },
    { "change-pin", cmd_change_pin },
    { "recover", cmd_recover },
    { "patient", cmd_patient },
    { "visit", cmd_visit },
    { "obs", cmd_obs },
    { "note", cmd_note },
    { "task", cmd_task },
    { "export", cmd_export },
    { "sync", cmd_sync },
    { "conflicts", cmd_conflicts },
    { "info", cmd_info },
};

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "data", required_argument, NULL, 'd' },
        { "pin-file", required_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct app a;
    int c;
    memset(&a, 0, sizeof a);
    a.data_dir = "satchel-data";

    opterr = 0; /* we print our own one-line errors */
    while ((c = getopt_long(argc, argv, "+:d:p:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'd': a.data_dir = optarg; break;
        case 'p': a.pin_file = optarg; break;
        case 'h': fputs(usage_text, stdout); return EXIT_OK;
        case 'V': printf("satchel %s (protocol %d)\n", SATCHEL_VERSION, PROTO_VERSION); return EXIT_OK;
        case ':': return cli_usage_error("option '%s' needs an argument", argv[optind - 1]);
        default: return cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return cli_usage_error("no command given%s", "");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[optind], commands[i].name) == 0) {
            int sub_argc = argc - optind;
            char **sub_argv = argv + optind;
            int rc;
            cli_reset_getopt();
            rc = commands[i].run(&a, sub_argc, sub_argv);
            cli_close_app(&a);
            return rc;
        }
    }
    return cli_usage_error("unknown command '%s'", argv[optind]);
}
