/*
 * bench_fs.h - file-system chores the benchmarks share (they run on a
 * developer's PC, outside the HAL, and clean up after themselves).
 */
#ifndef SATCHEL_BENCH_FS_H
#define SATCHEL_BENCH_FS_H

/* Removes path and, if it is a directory, everything in it, at most
 * BENCH_RM_DEPTH_MAX levels deep (the benchmarks' own temporary trees are
 * shallow; anything deeper is not theirs). Returns 0, or -1 if something
 * stayed. */
#define BENCH_RM_DEPTH_MAX 4
int bench_rm_tree(const char *path);

#endif
