/* bench_fs.c - see bench_fs.h. */
#define _POSIX_C_SOURCE 200809L

#include "bench_fs.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_BYTES_MAX 4096

static int rm_tree(const char *path, int depth)
{
    struct stat st;
    DIR *d;
    struct dirent *ent;
    int ret = 0;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlink(path);
    if (depth >= BENCH_RM_DEPTH_MAX)
        return -1;
    d = opendir(path);
    if (!d)
        return -1;
    while ((ent = readdir(d)) != NULL) {
        char sub[PATH_BYTES_MAX];
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
            continue;
        if (snprintf(sub, sizeof sub, "%s/%s", path, ent->d_name) >= (int)sizeof sub ||
            rm_tree(sub, depth + 1) != 0)
            ret = -1;
    }
    closedir(d);
    if (rmdir(path) != 0)
        ret = -1;
    return ret;
}

int bench_rm_tree(const char *path)
{
    return rm_tree(path, 0);
}
