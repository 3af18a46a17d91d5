/*
 * scenario.h - what happens in simulated days: the nurses, their teams,
 * their visits, when their tablets have a signal, and the faults.
 *
 * A scenario is, day by day, a list of timed actions per nurse plus
 * fleet-wide events, all drawn from one seed, so that the same (scenario,
 * seed) replays the same days exactly. The built-in "day-of-visits" is
 * generated here; a scenario file (JSON, parsed with json-c; format in
 * scenario_load's comment and in README.md) sets its parameters and adds
 * events.
 *
 * A run lasts p.days days (default 1). The caseload carries over: on day 1
 * every visit admits a new patient; from day 2 a nurse mostly visits
 * patients of her own caseload again (one visit in SCENARIO_ADMIT_ONE_IN
 * admits a new one). scenario_build draws day 1; scenario_next_day draws
 * the next one over the same struct (actions, events and links are the
 * day's; patients, skews and the generator carry over).
 *
 * Times in actions, events and links are virtual milliseconds since
 * midnight of their own day.
 */
#ifndef SATCHEL_SCENARIO_H
#define SATCHEL_SCENARIO_H

#include <stddef.h>
#include <stdint.h>

#include "sat_err.h"

#define SCENARIO_NAME_BYTES 64
#define SCENARIO_TEAMS_MAX 128
#define SCENARIO_NURSES_PER_TEAM 8 /* --devices N makes N / 8 teams */
#define SCENARIO_TEAM_BYTES 32
#define SCENARIO_NURSES_MAX 1024
#define SCENARIO_ACTIONS_MAX 200000
#define SCENARIO_EVENTS_MAX 256
#define SCENARIO_SLOTS_PER_DAY 288 /* 5-minute link slots over 24 h */
#define SCENARIO_SLOT_MS 300000u
#define SCENARIO_ERRMSG_BYTES 200
#define SCENARIO_DAYS_MAX 3660 /* ten years */
#define SCENARIO_ADMIT_ONE_IN 5 /* from day 2: a visit admits a new patient */
#define SCENARIO_FILE_BYTES_MAX (1024 * 1024) /* a longer scenario file is refused */

enum action_kind {
    ACT_VISIT_START = 1, /* patient: start a visit */
    ACT_OBS,             /* patient: record vital signs (NEWS2) */
    ACT_NOTE,            /* patient: write a care note */
    ACT_TASK,            /* patient: add a task */
    ACT_EDIT_ADDRESS,    /* patient: change the address (shared patients: may conflict) */
    ACT_VISIT_END,       /* patient: end the visit, then try to sync */
    ACT_SYNC             /* try to sync now */
};

struct action {
    uint64_t at_ms;
    uint32_t nurse;
    enum action_kind kind;
    uint32_t patient; /* index into the scenario's patients */
    uint64_t value;   /* seed for the action's content */
};

enum event_kind {
    EV_POWER_CUT = 1, /* the tablet dies mid-write and restarts */
    EV_TRANSFER,      /* a patient moves to another team (hub) */
    EV_LOSE_TABLET,   /* the tablet is lost: the nurse stops using it */
    EV_REVOKE,        /* the fleet manager revokes it at the hub */
    EV_THIEF_SYNC     /* the lost tablet finds a signal and syncs */
};

struct event {
    uint64_t at_ms;
    enum event_kind kind;
    uint32_t nurse;   /* tablet (power cut, lose, revoke, thief) */
    uint32_t patient; /* transfer: which patient */
    uint32_t team;    /* transfer: to which team */
    uint32_t day;     /* day of the run, from 0 (file events: \"day\" - 1) */
};

struct patient_plan {
    uint32_t team;
    uint32_t home_nurse; /* the nurse whose tablet creates the record */
    int shared;          /* visited by two nurses of the team */
};

/* Signal quality of one nurse's tablet in one 5-minute slot. */
enum link_quality { LINK_NONE = 0, LINK_PATCHY = 1, LINK_GOOD = 2 };

struct scenario_params {
    char name[SCENARIO_NAME_BYTES];
    uint32_t nurses;
    uint32_t teams;
    char team_names[SCENARIO_TEAMS_MAX][SCENARIO_TEAM_BYTES];
    uint32_t visits_min;
    uint32_t visits_max;
    uint32_t shared_patients;  /* per team */
    uint64_t day_start_ms;     /* at base, good signal */
    uint64_t day_end_ms;       /* back at base for the final sync */
    uint32_t base_minutes;     /* at base at each end of the day */
    uint32_t patchy_up_pct;    /* chance a visit slot has signal */
    uint32_t rural_pct;        /* chance a travel slot has none */
    uint32_t latency_ms;       /* link latency when up */
    uint32_t jitter_ms;
    uint32_t sync_every_min;   /* a tablet tries to sync this often */
    int64_t clock_skew_max_ms; /* each tablet's clock is off by up to this */
    int32_t drift_max_ppm;
    int builtin_faults;        /* add the day-of-visits faults */
    uint32_t days;             /* days in the run (1..SCENARIO_DAYS_MAX) */
};

struct caseload {
    uint32_t *patient; /* indexes into the scenario's patients */
    size_t n;
    size_t cap;
};

struct scenario {
    struct scenario_params p;
    uint64_t seed;
    uint64_t rng;     /* the generator, carried from day to day */
    uint32_t day;     /* the day drawn now, from 0 */
    size_t npatients; /* every patient of the run so far */
    size_t patients_cap;
    struct patient_plan *patients;
    struct caseload *caseload; /* per nurse: her own, unshared patients */
    struct event *extra;       /* the scenario file's events, every day */
    size_t nextra;
    size_t nactions;
    struct action *actions; /* sorted by time, then nurse */
    size_t nevents;
    struct event events[SCENARIO_EVENTS_MAX];
    /* links[nurse * SCENARIO_SLOTS_PER_DAY + slot] */
    uint8_t *links;
    int64_t *skew_ms;
    int32_t *drift_ppm;
};

/* The built-in day: 8 nurses in 2 teams ("north", "south"), 6-10 visits
 * each, some shared patients, patchy signal on visits, rural gaps, one
 * tablet dying mid-write, one transfer, one lost and revoked tablet. Over
 * several days: a power cut and a transfer every day; the tablet is lost
 * and revoked on the last day. */
void scenario_defaults(struct scenario_params *p);

/* Reads a JSON scenario file over p (unset keys keep p's values). Format:
 *   { "name": "...", "nurses": 8, "teams": ["north", "south"],
 *     "visits": [6, 10], "shared_patients": 2, "day": ["07:00", "19:00"],
 *     "base_minutes": 60, "signal": { "visit_up_pct": 60, "rural_pct": 30,
 *     "latency_ms": 80, "jitter_ms": 40 }, "sync_every_min": 20,
 *     "clock_skew_max_s": 300, "drift_max_ppm": 50, "builtin_faults": true,
 *     "days": 1,
 *     "events": [ { "at": "11:30", "kind": "power_cut", "nurse": 3 },
 *                 { "at": "13:00", "kind": "transfer", "patient": 5,
 *                   "team": "south" }, ... ] }
 * Event kinds: power_cut, transfer, lose_tablet, revoke, thief_sync. An
 * event may name its "day" of the run (1 = the first, the default).
 * Returns 0, or -1 with a one-line reason in why. Events are appended to
 * *extra (at most SCENARIO_EVENTS_MAX). */
SAT_CHECK int scenario_load(const char *path, struct scenario_params *p, struct event *extra,
                  size_t *nextra, char *why, size_t why_len);

/* scenario_load's parser, for a scenario's text, text[0..len) (no
 * terminator needed): exactly one JSON object, only white space after it. */
SAT_CHECK int scenario_parse(const char *text, size_t len, struct scenario_params *p,
                             struct event *extra, size_t *nextra, char *why, size_t why_len);

/* Draws the first day from p and seed. Returns 0, or -1 with why. */
SAT_CHECK int scenario_build(struct scenario *s, const struct scenario_params *p, uint64_t seed,
                   const struct event *extra, size_t nextra, char *why, size_t why_len);

/* Draws the next day (s->day + 1, which must be below p.days). Returns 0,
 * or -1 with why. */
SAT_CHECK int scenario_next_day(struct scenario *s, char *why, size_t why_len);

/* A patient moves to another team: from the next day drawn on, a nurse of
 * that team (the one with the fewest patients) visits them. */
void scenario_transfer(struct scenario *s, uint32_t patient, uint32_t team);

void scenario_free(struct scenario *s);

/* Signal of a nurse's tablet at a time of day. */
enum link_quality scenario_link(const struct scenario *s, uint32_t nurse, uint64_t at_ms);

const char *scenario_event_name(enum event_kind k);

#endif
