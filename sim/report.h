/*
 * report.h - what simulated days did, for people: a summary on stdout and
 * an HTML page with plots (connectivity per tablet over the day, changes
 * waiting to be pushed, bytes on the wire) that opens in a browser with no
 * network: inline SVG and CSS, no script, no external file.
 *
 * Nothing here depends on the host's clock or speed, so the same run gives
 * the same bytes (the simulator's determinism test hashes them).
 */
#ifndef SATCHEL_REPORT_H
#define SATCHEL_REPORT_H

#include <stdint.h>
#include <stdio.h>

#define REPORT_SAMPLES_MAX 289
#define REPORT_INVARIANTS_MAX 8
#define REPORT_NAME_BYTES 32
#define REPORT_DETAIL_BYTES 256
#define REPORT_REPLAY_BYTES 256

struct report_device {
    char name[REPORT_NAME_BYTES];
    char team[REPORT_NAME_BYTES];
    unsigned visits;
    unsigned writes;       /* record writes the nurse was told were saved */
    unsigned changes;      /* field changes in its change log */
    unsigned syncs_ok;
    unsigned syncs_failed;
    unsigned resumed;      /* TLS handshakes that resumed a session */
    unsigned conflicts;
    unsigned power_cuts;
    uint64_t bytes;        /* on the wire, both directions */
    int revoked;           /* lost, revoked and wiped */
    uint8_t link[REPORT_SAMPLES_MAX];      /* 0 none, 1 patchy, 2 good */
    uint32_t pending[REPORT_SAMPLES_MAX];  /* own changes the hub lacks */
    uint64_t bytes_cum[REPORT_SAMPLES_MAX];
};

struct report_invariant {
    char name[96];
    int ok;
    char detail[REPORT_DETAIL_BYTES];
};

struct report {
    char scenario[64];
    uint64_t seed;
    unsigned teams;
    unsigned ndev;
    unsigned days;     /* the run's length */
    unsigned days_run; /* days simulated (fewer when a day's check failed) */
    struct report_device *dev;
    unsigned nsamples;
    uint64_t sample_start_ms; /* ms since the first day's midnight, of sample 0 */
    uint64_t sample_every_ms;
    unsigned hub_changes;
    unsigned hub_conflicts;
    unsigned moved; /* patients transferred between teams */
    unsigned ninv;
    struct report_invariant inv[REPORT_INVARIANTS_MAX];
    char replay[REPORT_REPLAY_BYTES]; /* the command that replays this run */
};

/* 1 if every invariant held. */
int report_ok(const struct report *r);

void report_print_summary(FILE *out, const struct report *r);

/* Writes the HTML page. Returns 0, or -1 (errno set by stdio). */
int report_write_html(const char *path, const struct report *r);

#endif
