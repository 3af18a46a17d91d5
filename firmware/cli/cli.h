/*
 * cli.h - what the `satchel` program's commands share: the app state, the
 * exit statuses, the helpers every command uses (usage errors, opening the
 * device and the store, asking for the PIN, resolving typed ids, option
 * parsing, time formatting) and the commands themselves, which main.c
 * dispatches to.
 *
 * Every command that touches records asks for the PIN (from --pin-file or
 * the terminal, never from argv), unlocks the data key, does its work and
 * locks again (keys wiped from memory) before it exits.
 *
 * A command:
 *   - is run(a, argc, argv) with argv[0] its own name ("patient") and the
 *     rest its arguments; getopt has been reset for it (cli_reset_getopt);
 *   - prints its result on stdout (a record it creates: the id on the first
 *     line) and its errors as "satchel: ..." lines on stderr;
 *   - returns an exit status (enum exit_code), never exits itself;
 *   - leaves what it opened in *a: main.c calls cli_close_app afterwards,
 *     which closes the store, wipes the keys and closes the HAL whatever
 *     the command returned.
 * Nothing stays unlocked between two runs of the program.
 */
#ifndef SATCHEL_CLI_H
#define SATCHEL_CLI_H

#include <getopt.h>
#include <stdint.h>

#include "hal.h"
#include "keys.h"
#include "pin_prompt.h"
#include "store.h"

/* Exit status (also in --help, main.c's usage_text, and in README.md):
 *   0 success            3 PIN refused (wrong, locked out, erased, none set)
 *   1 the command failed 4 invalid record data (nothing was written)
 *   2 usage error        5 no such record      6 stored data damaged/tampered
 *   7 the hub revoked this device (its records and keys were wiped) */
enum exit_code {
    EXIT_OK = 0,
    EXIT_FAIL = 1,
    EXIT_USAGE = 2,
    EXIT_PIN = 3,
    EXIT_INVALID = 4,
    EXIT_NOT_FOUND = 5,
    EXIT_DAMAGED = 6,
    EXIT_REVOKED = 7
};

/* One run of the program. main.c sets data_dir and pin_file from the global
 * options (pin_file NULL: ask on the terminal) and zeroes the rest; the
 * helpers below fill hal, keys and store, and cli_close_app releases them. */
struct app {
    const char *data_dir;
    const char *pin_file;
    struct hal hal;
    int hal_open;
    struct keys keys;
    struct store *store;
};

/* ---- errors ------------------------------------------------------------- */

/* The exit status for a SAT_ERR_* code (SAT_OK: EXIT_OK; unknown: EXIT_FAIL). */
int cli_exit_for(int err);

/* Prints "satchel: " fmt (with arg for its one %s) " (try --help)" on
 * stderr and returns EXIT_USAGE. A message without an argument passes
 * "%s" at its end and "" as arg. */
int cli_usage_error(const char *fmt, const char *arg);

/* Prints the store's one-line reason for err (else err's own text) and
 * returns cli_exit_for(err). */
int cli_store_failed(struct app *a, int err);

/* Reports a refused PIN operation (a lockout with the seconds to wait,
 * retry_ms rounded up) and returns cli_exit_for(ret). */
int cli_report_pin_error(int ret, uint64_t retry_ms);

/* ---- opening the device ------------------------------------------------- */

/* Opens the HAL on a->data_dir and initialises a->keys. EXIT_OK or
 * EXIT_FAIL, with the reason printed. */
int cli_open_hal(struct app *a);

/* Closes the store, wipes the keys and closes the HAL, whichever of them
 * are open; safe on a zeroed app and to call twice. */
void cli_close_app(struct app *a);

/* Reads a PIN into pin from file, or asks on the terminal with prompt when
 * file is NULL. EXIT_OK, or EXIT_PIN with the reason printed. The caller
 * wipes pin (pin_wipe) when it is done with it. */
int cli_get_pin(struct app *a, const char *file, const char *prompt, char pin[PIN_BUF_BYTES]);

/* Unlocks a->keys with the PIN from a->pin_file or the terminal (HAL open).
 * A wrong PIN is counted and reported with the count; EXIT_OK or EXIT_PIN
 * (or EXIT_DAMAGED, EXIT_FAIL) with the reason printed. */
int cli_unlock(struct app *a);

/* store_open into a->store (keys unlocked), saying on stderr why it fails:
 * "cannot <verb> the caseload: " then the store's own reason (e.g. a layout
 * from a newer build), else the code's text. Returns the SAT_ERR_* code. */
int cli_open_caseload(struct app *a, const char *verb);

/* A provisioned device (device.conf present) writes under the id of its
 * certificate: has the open store adopt it. EXIT_OK when not provisioned;
 * EXIT_FAIL when device.conf is unreadable or malformed. */
int cli_adopt_provisioned_id(struct app *a);

/* The usual start of a record command: HAL, PIN, store, provisioned id.
 * EXIT_OK with a->store open, or the failure's exit status (printed). */
int cli_open_store(struct app *a);

/* Resolves a typed id (6 or more leading hex digits) of a record of kind
 * into *id. EXIT_OK, or the store's reason printed and its exit status
 * (EXIT_NOT_FOUND when none or several match, EXIT_INVALID when malformed). */
int cli_resolve(struct app *a, enum record_kind kind, const char *hex, struct store_id *id);

/* ---- option parsing and output ------------------------------------------ */

/* A whole number within +-1,000,000 into *out; otherwise prints
 * "<what> must be a whole number" and returns EXIT_USAGE. */
int cli_parse_int(const char *s, const char *what, int *out);

/* Runs getopt_long over a command's own arguments (argv[0] = its name),
 * long options only. Returns the option, -1 at the end, or '?' after
 * printing the usage error (an unknown option or a missing argument). */
int cli_next_opt(int argc, char **argv, const struct option *opts);

/* Starts getopt afresh for a new argument vector (GNU getopt: optind 0). */
void cli_reset_getopt(void);

/* Unix ms as "YYYY-MM-DDTHH:MMZ" (UTC) in out; "-" for ms <= 0 (unset). */
void cli_format_time(int64_t ms, char out[32]);

/* 1 if s is a decimal integer as a person types it: an optional '-', then
 * 1..max_digits digits, nothing else (no space, '+', hex or exponent). */
int cli_decimal(const char *s, size_t max_digits);

/* An observation's NEWS2 as a person should read it: "7 (high)", or
 * "incomplete: respiration rate missing or out of range (high risk until
 * measured)"; a carried score that differs from this tablet's is flagged,
 * not shown as the score. */
#define CLI_NEWS2_TEXT_BYTES 160
const char *cli_news2_text(const struct store_obs *o, char out[CLI_NEWS2_TEXT_BYTES]);

/* ---- the commands (main.c's table) ------------------------------------- */

/* cmd_keys.c */
int cmd_enrol(struct app *a, int argc, char **argv);
int cmd_unlock(struct app *a, int argc, char **argv);
int cmd_lock(struct app *a, int argc, char **argv);
int cmd_change_pin(struct app *a, int argc, char **argv);
int cmd_recover(struct app *a, int argc, char **argv);

/* cmd_records.c */
int cmd_patient(struct app *a, int argc, char **argv);
int cmd_visit(struct app *a, int argc, char **argv);
int cmd_obs(struct app *a, int argc, char **argv);
int cmd_note(struct app *a, int argc, char **argv);
int cmd_task(struct app *a, int argc, char **argv);

/* cmd_export.c */
int cmd_export(struct app *a, int argc, char **argv);

/* cmd_sync.c */
int cmd_sync(struct app *a, int argc, char **argv);
int cmd_conflicts(struct app *a, int argc, char **argv);

/* cmd_info.c */
int cmd_info(struct app *a, int argc, char **argv);

#endif
