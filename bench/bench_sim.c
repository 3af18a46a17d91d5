/*
 * bench_sim.c - how fast the simulator simulates: device-days per second of
 * wall-clock time on the default scenario (day-of-visits, real TLS, real
 * encrypted stores), with 8, 64 and 512 tablets, back to back.
 *
 * Runs build/.../sim/satchel-sim (next to this program's build directory,
 * or --sim PATH) as a child with --seed 1 --quiet --devices N and times it.
 * Prints `name: value unit` lines; never fails because of a figure.
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

/* Runs satchel-sim for n tablets; returns seconds, or -1. */
static double run(const char *sim, unsigned n, int *ok)
{
    char devices[16];
    char *argv[] = { (char *)sim, "--seed", "1", "--quiet", "--devices", devices, NULL };
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int status = 0;
    double t0;
    double t1;
    snprintf(devices, sizeof devices, "%u", n);
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

int main(int argc, char **argv)
{
    static const unsigned sizes[] = { 8, 64, 512 };
    char sim[4096];
    unsigned max = 512;
    double base = 0;
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
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("Usage: bench_sim [--quick] [--sim PATH]\n"
                   "Times satchel-sim on the default day with 8, 64 and 512 tablets\n"
                   "(--quick: up to 64) and prints simulated device-days per second.\n");
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
    printf("Simulator speed: satchel-sim --seed 1 --quiet --devices N on the built-in\n"
           "day-of-visits scenario (one simulated day per tablet: visits, NEWS2\n"
           "observations, notes, syncs over real mutual TLS into real encrypted stores,\n"
           "a power cut, a transfer, a revoked tablet; about 8 tablets a team), timed\n"
           "from start to exit including set-up and the invariant checks.\n\n");
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0] && sizes[i] <= max; i++) {
        int ok = 0;
        double s;
        fprintf(stderr, "bench_sim: %u tablets...\n", sizes[i]);
        s = run(sim, sizes[i], &ok);
        if (s < 0) {
            fprintf(stderr, "bench_sim: could not run %s\n", sim);
            return 1;
        }
        printf("sim_%u_devices_wall: %.2f s\n", sizes[i], s);
        printf("sim_%u_devices_device_days_per_s: %.1f device-days/s\n", sizes[i], sizes[i] / s);
        printf("sim_%u_devices_invariants: %s\n", sizes[i], ok ? "held" : "FAILED");
        if (i == 0)
            base = sizes[i] / s;
        else
            printf("sim_%u_devices_vs_8_throughput: %.2fx\n", sizes[i], (sizes[i] / s) / base);
    }
    printf("target_ge_50_device_days_per_s_at_8: %s\n", base >= 50 ? "yes" : "no");
    return 0;
}
