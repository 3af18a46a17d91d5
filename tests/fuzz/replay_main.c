/*
 * replay_main.c - runs a fuzz target over files, without libFuzzer: ctest
 * replays each target's corpus this way in every stage (gcc, the
 * sanitizers, arm64 under qemu), and a crash input can be rerun under a
 * debugger with it.
 *
 *   fuzz_replay_<target> PATH...
 *
 * Each PATH is an input file or a directory whose files (not its
 * subdirectories) are inputs, run in name order so a failure replays the
 * same way. An input that breaks the target aborts the program (its
 * FUZZ_CHECK, a sanitizer, or the crash itself). Exit status: 0 when every
 * input ran, 1 when a path could not be read or named no input at all,
 * 2 on usage.
 */
#define _POSIX_C_SOURCE 200809L /* opendir, stat */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* libFuzzer's default -max_len is far below this; no input of a corpus
 * comes near it. */
#define INPUT_BYTES_MAX (16u * 1024u * 1024u)

/* The fuzz targets that have no LLVMFuzzerInitialize get this one. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t len = 0;
    int ret = -1;
    if (!f) {
        fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    buf = malloc(INPUT_BYTES_MAX + 1);
    if (buf)
        len = fread(buf, 1, INPUT_BYTES_MAX + 1, f);
    if (!buf || ferror(f) || len > INPUT_BYTES_MAX) {
        fprintf(stderr, "replay: cannot read %s (or it is over %u bytes)\n", path,
                INPUT_BYTES_MAX);
    } else {
        /* A copy of exactly the input's size, so ASan sees a read past it. */
        uint8_t *input = malloc(len ? len : 1);
        if (input) {
            memcpy(input, buf, len);
            free(buf);
            buf = NULL;
            LLVMFuzzerTestOneInput(input, len);
            free(input);
            ret = 0;
        }
    }
    free(buf);
    fclose(f);
    return ret;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file of dir in name order; *count gets how many. */
static int run_dir(const char *dir, unsigned *count)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;
    size_t cap = 0;
    int ret = 0;
    if (!d) {
        fprintf(stderr, "replay: cannot open %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *path;
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        path = malloc(len);
        if (!path) {
            ret = -1;
            break;
        }
        snprintf(path, len, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 64;
            char **nn = realloc(names, ncap * sizeof *nn);
            if (!nn) {
                free(path);
                ret = -1;
                break;
            }
            names = nn;
            cap = ncap;
        }
        names[n++] = path;
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        if (ret == 0 && run_file(names[i]) != 0)
            ret = -1;
        free(names[i]);
    }
    free(names);
    *count += (unsigned)n;
    return ret;
}

int main(int argc, char **argv)
{
    unsigned count = 0;
    int failed = 0;
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fprintf(argc < 2 ? stderr : stdout,
                "Usage: %s PATH...\nRuns the fuzz target over each input file, or each file "
                "of a directory.\n",
                argv[0]);
        return argc < 2 ? 2 : 0;
    }
    LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            failed = 1;
        } else if (S_ISDIR(st.st_mode)) {
            failed |= run_dir(argv[i], &count) != 0;
        } else {
            failed |= run_file(argv[i]) != 0;
            count++;
        }
    }
    if (count == 0) {
        fprintf(stderr, "replay: no input found\n");
        failed = 1;
    }
    printf("replay: %u inputs, %s\n", count, failed ? "some could not be read" : "all ran");
    return failed;
}
