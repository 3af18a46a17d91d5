/*
 * sim_main.c - `satchel-sim`: a day of community nursing, many tablets and
 * a hub in one thread, over virtual time, a virtual network and virtual
 * flash, all from one seed.
 *
 * The tablets run the real firmware (keys, encrypted store, device sync
 * driver, TLS) and the hub the real hub (store, server, sessions): the same
 * code as `satchel` and `satchel-hub`, on the simulated HAL. Nothing in
 * sync/ or firmware/ knows it is simulated. Mbed TLS reads the wall clock
 * itself (time()): the link wraps time() onto the virtual clock
 * (sim_day.c), so a seed replays byte for byte.
 *
 * After the day, invariants are checked; any failure prints the seed and
 * the command that replays it, and the exit status is 1.
 *
 * This file is the command line: it parses the options, runs one seed or a
 * sweep of seeds (run_seed: set-up in sim_world.c, the days in sim_day.c,
 * the checks in sim_invariants.c), prints the summary and writes the
 * report. Exit status: 0 every invariant held, 1 one failed, 2 a usage
 * error or a run that could not go on.
 */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "sim_world.h"

#define SWEEP_LOG_LINES 10 /* progress lines of a sweep logged to a file */

/* ---- one run ----------------------------------------------------------------- */

static void fill_report(struct world *w)
{
    struct hub_stats hs;
    for (unsigned i = 0; i < w->ntab; i++) {
        struct tablet *t = &w->tab[i];
        struct report_device *d = &w->rep.dev[i];
        const struct device_stats *ds = t->drv_ready ? device_stats(&t->drv) : NULL;
        struct sim_net_stats ns;
        struct store_sync_state st;
        d->visits = t->visits;
        d->writes = t->writes;
        d->power_cuts = t->power_cuts;
        if (t->store && store_sync_state(t->store, &st) == SAT_OK)
            d->changes = (unsigned)st.last_seq;
        d->syncs_ok = (unsigned)(t->before.sessions_ok + (ds ? ds->sessions_ok : 0));
        d->syncs_failed = (unsigned)(t->before.sessions_failed + (ds ? ds->sessions_failed : 0));
        d->resumed = (unsigned)(t->before.handshakes_resumed + (ds ? ds->handshakes_resumed : 0));
        d->conflicts = (unsigned)(t->before.conflicts + (ds ? ds->conflicts : 0));
        if (sim_hal_net_stats(t->sim, &ns) == SAT_OK)
            d->bytes = ns.bytes_sent + ns.bytes_received;
    }
    if (hub_store_stats(w->hub_store, &hs) == SAT_OK) {
        w->rep.hub_changes = (unsigned)hs.changes;
        w->rep.hub_conflicts = (unsigned)hs.conflicts;
    }
}

struct options {
    const char *scenario;
    const char *report;
    uint64_t seed_from;
    uint64_t seed_to;
    int sweep;
    unsigned devices;
    unsigned days;
    int quiet;
    enum inject inject;
};

/* The command that replays seed `seed` of this run. */
static void replay_command(const struct options *o, uint64_t seed, char *out, size_t cap)
{
    const char *bug = o->inject == INJECT_LOST_WRITE   ? " --inject-bug lost-write"
                      : o->inject == INJECT_SKIP_PURGE ? " --inject-bug skip-purge"
                                                       : "";
    char devices[32] = "";
    char days[32] = "";
    if (o->devices)
        snprintf(devices, sizeof devices, " --devices %u", o->devices);
    if (o->days)
        snprintf(days, sizeof days, " --days %u", o->days);
    snprintf(out, cap, "%s --scenario %s --seed %llu%s%s%s",
             o->inject != INJECT_NONE ? "satchel-sim-faulty" : "satchel-sim", o->scenario,
             (unsigned long long)seed, devices, days, bug);
}

/* Progress of a run of many days, on stderr: on a terminal one line,
 * redrawn after each day; in a log a line every tenth of the run. */
static void day_progress(unsigned done, unsigned days, int last)
{
    static int tty = -1;
    unsigned every = days >= SWEEP_LOG_LINES ? days / SWEEP_LOG_LINES : 1;
    if (tty < 0)
        tty = isatty(fileno(stderr));
    if (tty)
        fprintf(stderr, "\rsatchel-sim: day %u of %u%s", done, days, last ? "\n" : "");
    else if (done % every == 0 || last)
        fprintf(stderr, "satchel-sim: day %u of %u%s\n", done, days,
                last && done < days ? ", stopped" : "");
}

/* Runs one seed. Returns 1 if every invariant held. */
static int run_seed(const struct options *o, const struct scenario_params *p,
                    const struct event *extra, size_t nextra, uint64_t seed, int print)
{
    struct world *w = calloc(1, sizeof *w);
    char why[SCENARIO_ERRMSG_BYTES];
    int ok;
    if (!w)
        world_fatal("the world", SAT_ERR_NO_MEMORY);
    w->inject = o->inject;
    if (scenario_build(&w->sc, p, seed, extra, nextra, why, sizeof why) != 0) {
        fprintf(stderr, "satchel-sim: %s\n", why);
        exit(2);
    }
    snprintf(w->rep.scenario, sizeof w->rep.scenario, "%s", p->name);
    w->rep.seed = seed;
    w->rep.teams = p->teams;
    w->rep.ndev = p->nurses;
    w->rep.dev = calloc(p->nurses, sizeof *w->rep.dev);
    if (!w->rep.dev)
        world_fatal("the report", SAT_ERR_NO_MEMORY);
    replay_command(o, seed, w->rep.replay, sizeof w->rep.replay);
    w->rep.days = p->days;
    world_setup(w);
    for (;;) {
        day_run(w);
        if (w->sc.day + 1 >= p->days)
            break;
        /* Between days: every write of the day must be at the hub (the
         * other invariants cost a pass over every store: the run's end). */
        w->rep.ninv = 0;
        invariants_check(w, 0);
        if (!report_ok(&w->rep)) {
            for (unsigned i = 0; i < w->rep.ninv; i++) {
                struct report_invariant *r = &w->rep.inv[i];
                size_t len = strlen(r->name);
                if (!r->ok)
                    snprintf(r->name + len, sizeof r->name - len, " (day %u)", w->sc.day + 1);
            }
            break;
        }
        if (print)
            day_progress(w->sc.day + 1, p->days, 0);
        if (scenario_next_day(&w->sc, why, sizeof why) != 0) {
            fprintf(stderr, "satchel-sim: %s\n", why);
            exit(2);
        }
        world_grow_patients(w);
    }
    w->rep.days_run = w->sc.day + 1;
    if (print && p->days > 1)
        day_progress(w->rep.days_run, p->days, 1);
    fill_report(w);
    if (report_ok(&w->rep)) {
        w->rep.ninv = 0;
        invariants_check(w, 1);
    }
    ok = report_ok(&w->rep);
    if (print) {
        report_print_summary(stdout, &w->rep);
        if (o->report) {
            if (report_write_html(o->report, &w->rep) != 0)
                fprintf(stderr, "satchel-sim: cannot write the report to %s\n", o->report);
            else
                printf("report: %s (open it in a browser; it needs no network)\n", o->report);
        }
    } else if (!ok) {
        report_print_summary(stdout, &w->rep);
    }
    world_teardown(w);
    free(w->rep.dev);
    free(w);
    return ok;
}

static const char usage_text[] =
    "Usage: satchel-sim [--scenario NAME|FILE] [--seed N | --seeds A-B] [--devices N]\n"
    "                   [--days N] [--report FILE] [--quiet]\n"
    "       satchel-sim --help\n"
    "\n"
    "Simulates a day (or days) of community nursing: tablets and a hub in one\n"
    "process, over virtual time, a virtual network (signal by place: good at the\n"
    "base, patchy on visits, none on rural roads) and virtual flash (power cuts),\n"
    "running the real firmware and hub code with real TLS. The same seed replays\n"
    "the same days byte for byte. Then checks the invariants and prints a summary.\n"
    "\n"
    "  --scenario NAME|FILE  day-of-visits (built in, the default) or a JSON file\n"
    "  --seed N              the seed (default 42)\n"
    "  --seeds A-B           run every seed from A to B; summary and failures only\n"
    "  --devices N           N tablets instead of the scenario's number\n"
    "  --days N              N days in a row (default 1, or the file's \"days\"): the\n"
    "                        caseload, stores and TLS sessions carry over; a power\n"
    "                        cut and a transfer every day, the tablet lost on the\n"
    "                        last; each evening every saved write must be at the hub;\n"
    "                        progress (day N of M) goes to stderr\n"
    "  --report FILE         the HTML report (default satchel-sim-report.html for\n"
    "                        one seed; none for a sweep unless given)\n"
    "  --quiet               no HTML report, summary only\n"
#ifdef SATCHEL_SIM_INJECT
    "  --inject-bug NAME     test build only: lost-write or skip-purge\n"
#endif
    "\n"
    "Exit status: 0 every invariant held, 1 an invariant failed (the replay\n"
    "command is printed), 2 usage error or the simulation could not run.\n";

/* A seed: decimal digits only (strtoull would take "-1" as 2^64 - 1);
 * *end is left after them. 1 if there was one that fits in 64 bits. */
static int parse_seed(const char *s, char **end, uint64_t *out)
{
    unsigned long long v;
    *end = (char *)s;
    if (*s < '0' || *s > '9')
        return 0;
    errno = 0;
    v = strtoull(s, end, 10);
    if (errno == ERANGE)
        return 0;
    *out = v;
    return 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "scenario", required_argument, NULL, 's' }, { "seed", required_argument, NULL, 'S' },
        { "seeds", required_argument, NULL, 'R' },    { "devices", required_argument, NULL, 'd' },
        { "report", required_argument, NULL, 'r' },   { "quiet", no_argument, NULL, 'q' },
        { "days", required_argument, NULL, 'D' },
        { "inject-bug", required_argument, NULL, 'I' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct options o;
    struct scenario_params p;
    struct event extra[SCENARIO_EVENTS_MAX];
    size_t nextra = 0;
    char why[SCENARIO_ERRMSG_BYTES];
    int c;
    /* The whole run is one thread: SQLite needs no mutexes, and no
     * memory statistics (kept under a mutex at every allocation). Before
     * any other SQLite call, as sqlite3_config requires. */
    if (sqlite3_config(SQLITE_CONFIG_SINGLETHREAD) != SQLITE_OK ||
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) != SQLITE_OK) {
        fprintf(stderr, "satchel-sim: cannot set SQLite up for one thread\n");
        return 1;
    }
    memset(&o, 0, sizeof o);
    o.scenario = "day-of-visits";
    o.seed_from = o.seed_to = 42;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 's': o.scenario = optarg; break;
        case 'S':
            if (!parse_seed(optarg, &end, &o.seed_from) || *end) {
                fprintf(stderr, "satchel-sim: --seed wants a number, not '%s'\n", optarg);
                return 2;
            }
            o.seed_to = o.seed_from;
            break;
        case 'R':
            if (!parse_seed(optarg, &end, &o.seed_from) || *end != '-' ||
                !parse_seed(end + 1, &end, &o.seed_to) || *end || o.seed_to < o.seed_from) {
                fprintf(stderr, "satchel-sim: --seeds wants A-B with A <= B, not '%s'\n", optarg);
                return 2;
            }
            o.sweep = 1;
            break;
        case 'd': {
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 1 || v > SCENARIO_NURSES_MAX) {
                fprintf(stderr, "satchel-sim: --devices wants 1..%d, not '%s'\n",
                        SCENARIO_NURSES_MAX, optarg);
                return 2;
            }
            o.devices = (unsigned)v;
            break;
        }
        case 'D': {
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 1 || v > SCENARIO_DAYS_MAX) {
                fprintf(stderr, "satchel-sim: --days wants 1..%d, not '%s'\n", SCENARIO_DAYS_MAX,
                        optarg);
                return 2;
            }
            o.days = (unsigned)v;
            break;
        }
        case 'r': o.report = optarg; break;
        case 'q': o.quiet = 1; break;
        case 'I':
#ifdef SATCHEL_SIM_INJECT
            if (strcmp(optarg, "lost-write") == 0)
                o.inject = INJECT_LOST_WRITE;
            else if (strcmp(optarg, "skip-purge") == 0)
                o.inject = INJECT_SKIP_PURGE;
            else {
                fprintf(stderr, "satchel-sim: unknown bug '%s' (lost-write, skip-purge)\n", optarg);
                return 2;
            }
            break;
#else
            fprintf(stderr, "satchel-sim: --inject-bug exists only in the test build "
                            "(satchel-sim-faulty)\n");
            return 2;
#endif
        case 'h': fputs(usage_text, stdout); return 0;
        case ':':
            fprintf(stderr, "satchel-sim: option '%s' needs an argument (try --help)\n",
                    argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "satchel-sim: unknown option '%s' (try --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "satchel-sim: unexpected argument '%s' (try --help)\n", argv[optind]);
        return 2;
    }
    scenario_defaults(&p);
    if (strcmp(o.scenario, "day-of-visits") != 0 &&
        scenario_load(o.scenario, &p, extra, &nextra, why, sizeof why) != 0) {
        fprintf(stderr, "satchel-sim: %s\n", why);
        return 2;
    }
    if (o.days)
        p.days = o.days;
    if (o.devices) {
        /* A bigger service has more teams, not bigger ones: keep about
         * SCENARIO_NURSES_PER_TEAM nurses a team (the first two keep the
         * scenario's names). */
        unsigned teams = (o.devices + SCENARIO_NURSES_PER_TEAM - 1) / SCENARIO_NURSES_PER_TEAM;
        p.nurses = o.devices;
        if (teams < p.teams)
            teams = p.teams;
        if (teams > p.nurses)
            teams = p.nurses;
        if (teams > SCENARIO_TEAMS_MAX)
            teams = SCENARIO_TEAMS_MAX;
        for (unsigned t = p.teams; t < teams; t++)
            snprintf(p.team_names[t], SCENARIO_TEAM_BYTES, "team-%03u", t + 1);
        p.teams = teams;
    }
    if (!o.sweep && !o.report && !o.quiet)
        o.report = "satchel-sim-report.html";
    if (o.quiet)
        o.report = NULL;
    if (!o.sweep) {
        int ok = run_seed(&o, &p, extra, nextra, o.seed_from, 1);
        fleet_pki_free();
        return ok ? 0 : 1;
    }
    {
        uint64_t total = o.seed_to - o.seed_from + 1;
        uint64_t failed = 0;
        uint64_t first_failed = 0;
        /* On a terminal one line, redrawn; in a log a line every tenth. */
        int tty = isatty(fileno(stderr));
        uint64_t every = total >= SWEEP_LOG_LINES ? total / SWEEP_LOG_LINES : 1;
        char replay[REPORT_REPLAY_BYTES];
        for (uint64_t s = o.seed_from; s <= o.seed_to; s++) {
            uint64_t done = s - o.seed_from + 1;
            int ok = run_seed(&o, &p, extra, nextra, s, 0);
            if (!ok && failed++ == 0)
                first_failed = s;
            if (tty || done % every == 0 || done == total)
                fprintf(stderr, "%ssatchel-sim: seed %llu (%llu of %llu), %llu failed%s",
                        tty ? "\r" : "", (unsigned long long)s, (unsigned long long)done,
                        (unsigned long long)total, (unsigned long long)failed, tty ? "" : "\n");
        }
        if (tty)
            fputc('\n', stderr);
        fleet_pki_free();
        printf("satchel-sim: %llu seeds, %llu passed, %llu failed\n", (unsigned long long)total,
               (unsigned long long)(total - failed), (unsigned long long)failed);
        if (failed) {
            replay_command(&o, first_failed, replay, sizeof replay);
            printf("first failure: replay with: %s\n", replay);
            return 1;
        }
        return 0;
    }
}
