/*
 * bench_sqlite.h - picks the sqlite3.h the benchmark is built against.
 *
 * bench_workload.c is compiled twice: into bench_store against Debian's
 * SQLite, and into bench_sqlcipher (BENCH_SQLCIPHER defined) against
 * SQLCipher, which exports the same symbols and so must live in a program of
 * its own. Both headers declare the same API for everything the workloads
 * use.
 */
#ifndef SATCHEL_BENCH_SQLITE_H
#define SATCHEL_BENCH_SQLITE_H

#ifdef BENCH_SQLCIPHER
#include <sqlcipher/sqlite3.h>
#else
#include <sqlite3.h>
#endif

#endif
