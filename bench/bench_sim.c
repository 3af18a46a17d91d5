/*
 * bench_sim.c - how fast the simulator simulates: device-days per second of
 * wall-clock time on the default scenario (day-of-visits, real TLS, real
 * encrypted stores), back to back: one day with 8, 64 and 512 tablets, then
 * 8 tablets over 30 days in a row (stores, caseloads and TLS sessions carry
 * over, so set-up and full handshakes are paid once, as in a service's
 * year), and the issue's own yardstick: a year of a 10-nurse service (10
 * tablets over 365 days, "in about a minute"); --year adds 8 tablets over
 * 365 days, --quick leaves the year out.
 *
 * Runs build/.../sim/satchel-sim (next to this program's build directory,
 * or --sim PATH) as a child with --seed 1 --quiet --devices N --days D and
 * times it. The short runs are repeated (5 times for 8 and 64 tablets over
 * a day, 3 for 30 days; the runs are the same, seeded, so only the machine
 * varies): a figure is the median run, with the fastest beside it. Prints
 * `name: value unit` lines; never fails because of a figure.
 */
#define _POSIX_C_SOURCE 200809L

#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs satchel-sim for n tablets over d days; returns seconds, or -1. */
static double run(const char *sim, unsigned n, unsigned d, int *ok)
{
    char devices[16];
    char days[16];
    char *argv[] = { (char *)sim, "--seed", "1", "--quiet", "--devices", devices, "--days", days,
                     NULL };
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int status = 0;
    double t0;
    double t1;
    snprintf(devices, sizeof devices, "%u", n);
    snprintf(days, sizeof days, "%u", d);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", 1, 0);
    t0 = now_s();
    if (posix_spawn(&pid, sim, &fa, NULL, argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    if (waitpid(pid, &status, 0) < 0)
        return -1;
    t1 = now_s();
    *ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    return t1 - t0;
}

#define REPS_MAX 5

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs one configuration reps times and prints its figures (the median
 * run; with reps > 1 the fastest too); returns the median's device-days/s. */
static double figure(const char *sim, const char *name, unsigned n, unsigned d, int reps)
{
    double s[REPS_MAX];
    double med;
    int held = 1;
    for (int r = 0; r < reps; r++) {
        int ok = 0;
        fprintf(stderr, "bench_sim: %u tablets, %u day%s (run %d of %d)...\n", n, d,
                d == 1 ? "" : "s", r + 1, reps);
        s[r] = run(sim, n, d, &ok);
        if (s[r] < 0) {
            fprintf(stderr, "bench_sim: could not run %s\n", sim);
            exit(1);
        }
        held = held && ok;
    }
    qsort(s, (size_t)reps, sizeof s[0], cmp_double);
    med = s[reps / 2];
    printf("%s_wall: %.2f s\n", name, med);
    printf("%s_device_days_per_s: %.1f device-days/s\n", name, (double)n * d / med);
    if (reps > 1) {
        printf("%s_runs: %d\n", name, reps);
        printf("%s_wall_fastest: %.2f s\n", name, s[0]);
        printf("%s_device_days_per_s_fastest: %.1f device-days/s\n", name,
               (double)n * d / s[0]);
    }
    printf("%s_invariants: %s\n", name, held ? "held" : "FAILED");
    return (double)n * d / med;
}

int main(int argc, char **argv)
{
    static const unsigned sizes[] = { 8, 64, 512 };
    char sim[4096];
    char name[64];
    unsigned max = 512;
    unsigned long_days = 30;
    int year = 0;
    double base = 0;
    double multi;
    double later;
    double year8 = 0;
    double year10 = 0;
    snprintf(sim, sizeof sim, "satchel-sim");
    {
        char self[4000]; /* leaves room in sim[] for the suffix */
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n > 0) {
            char *slash;
            self[n] = '\0';
            slash = strrchr(self, '/');
            if (slash) {
                *slash = '\0';
                snprintf(sim, sizeof sim, "%s/../sim/satchel-sim", self);
            }
        }
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--sim") == 0 && i + 1 < argc) {
            snprintf(sim, sizeof sim, "%s", argv[++i]);
        } else if (strcmp(argv[i], "--quick") == 0) {
            max = 64;
            long_days = 7;
            year = -1;
        } else if (strcmp(argv[i], "--year") == 0) {
            if (year == 0)
                year = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("Usage: bench_sim [--quick] [--year] [--sim PATH]\n"
                   "Times satchel-sim on the default scenario: one day with 8, 64 and 512\n"
                   "tablets, 8 tablets over 30 days, then a year of a 10-nurse service\n"
                   "(10 tablets over 365 days; about 3 minutes in all) and prints simulated\n"
                   "device-days per second: of the median of 5 runs (8 and 64 tablets over\n"
                   "a day) or 3 (over 30 days), and of the fastest; and of the days after\n"
                   "the first (the 30-day run less the one-day run: without set-up).\n"
                   "  --quick  up to 64 tablets, 7 days, no year (a smoke run; wins over --year)\n"
                   "  --year   also 8 tablets over 365 days (another minute or so)\n"
                   "  --sim PATH  the satchel-sim to time (default: this build's)\n");
            return 0;
        } else {
            fprintf(stderr, "bench_sim: unknown option '%s' (try --help)\n", argv[i]);
            return 2;
        }
    }
    if (access(sim, X_OK) != 0) {
        fprintf(stderr, "bench_sim: cannot run %s (build satchel-sim, or give --sim PATH)\n", sim);
        return 1;
    }
    printf("Simulator speed: satchel-sim --seed 1 --quiet --devices N --days D on the\n"
           "built-in day-of-visits scenario (per tablet and day: visits, NEWS2\n"
           "observations, notes, syncs over real mutual TLS into real encrypted stores;\n"
           "a power cut and a transfer each day, a tablet lost and revoked on the last;\n"
           "about 8 tablets a team), timed from start to exit including set-up (the\n"
           "fleet PKI, enrolment, first full handshakes) and the invariant checks.\n"
           "Short runs are repeated: a figure is the median run (the targets use it),\n"
           "_fastest the quickest, as this machine's load varies between runs.\n\n");
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0] && sizes[i] <= max; i++) {
        double r;
        snprintf(name, sizeof name, "sim_%u_devices", sizes[i]);
        r = figure(sim, name, sizes[i], 1, sizes[i] <= 64 ? REPS_MAX : 1);
        if (i == 0)
            base = r;
        else
            printf("sim_%u_devices_vs_8_throughput: %.2fx\n", sizes[i], r / base);
    }
    snprintf(name, sizeof name, "sim_8_devices_%u_days", long_days);
    multi = figure(sim, name, 8, long_days, 3);
    printf("sim_8_devices_%u_days_vs_one_day_throughput: %.2fx\n", long_days, multi / base);
    /* The days after the first: what the long run took beyond the one-day
     * run, which alone pays the set-up (the fleet's keys and certificates,
     * enrolment, every tablet's first full handshake) and the end-of-run
     * checks. Medians of both. */
    later = 8.0 * long_days / multi - 8.0 / base; /* seconds */
    later = later > 0 ? 8.0 * (long_days - 1) / later : 0;
    printf("sim_8_devices_days_after_the_first_device_days_per_s: %.1f device-days/s\n", later);
    if (year >= 0) /* the yardstick: a year of a 10-nurse service */
        year10 = figure(sim, "sim_10_devices_365_days", 10, 365, 1);
    if (year > 0)
        year8 = figure(sim, "sim_8_devices_365_days", 8, 365, 1);
    printf("target_ge_50_device_days_per_s_at_8_one_day: %s\n", base >= 50 ? "yes" : "no");
    printf("target_ge_50_device_days_per_s_at_8_over_%u_days: %s\n", long_days,
           multi >= 50 ? "yes" : "no");
    printf("target_ge_50_device_days_per_s_at_8_after_the_first_day: %s\n",
           later >= 50 ? "yes" : "no");
    if (year >= 0) /* 50 device-days/s is 73 s for 3,650 */
        printf("target_year_of_10_tablets_in_about_a_minute: %s\n", year10 >= 50 ? "yes" : "no");
    if (year > 0)
        printf("target_ge_50_device_days_per_s_at_8_over_365_days: %s\n",
               year8 >= 50 ? "yes" : "no");
    return 0;
}
