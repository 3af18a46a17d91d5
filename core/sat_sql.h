/*
 * sat_sql.h - the SQLite plumbing the tablet's store and the hub's SQLite
 * backend share: statements prepared once and kept by id, steps that turn
 * SQLite's results into sat_err codes with a one-line reason, and a
 * rollback that keeps the reason of the failure that caused it.
 *
 * A user fills a struct sat_sql once its database is open: the database,
 * its statements' texts by id and an array (of `count`, all NULL) to keep
 * them in, the codes and words for its failures, and the buffer its
 * errmsg lives in. Nothing here owns the database or the buffer;
 * sat_sql_finalize finalizes the kept statements.
 *
 * Failures (sat_sql_fail): a full disk is SAT_ERR_NO_SPACE, no memory
 * SAT_ERR_NO_MEMORY, data that failed a check (a page whose authentication
 * failed in an encrypting VFS, a damaged file, a file that is not a
 * database) the user's `damaged` code, anything else its `storage` code;
 * the message is "<what>: <reason>".
 */
#ifndef SATCHEL_SAT_SQL_H
#define SATCHEL_SAT_SQL_H

#include <sqlite3.h>
#include <stddef.h>

#include "sat_err.h"

struct sat_sql_errors {
    int storage;              /* any other failure of the database */
    int damaged;              /* data that failed a check */
    const char *damaged_text; /* "stored data failed authentication ..." */
    const char *full_text;    /* "storage is full" */
};

struct sat_sql {
    sqlite3 *db;
    const char *const *texts; /* the SQL of statement id i */
    sqlite3_stmt **kept;      /* count slots: statement i once prepared */
    unsigned count;
    const struct sat_sql_errors *errors;
    char *errmsg;             /* the user's buffer of errmsg_bytes */
    size_t errmsg_bytes;
};

/* Maps SQLite result rc (of the last call on q->db) to a code, and writes
 * "<what>: <reason>" to errmsg. */
int sat_sql_fail(struct sat_sql *q, int rc, const char *what);

/* Statement id, prepared on first use (persistent), reset with its
 * bindings cleared; NULL if it does not prepare (sat_sql_run and
 * sat_sql_row then report why). */
sqlite3_stmt *sat_sql_stmt(struct sat_sql *q, unsigned id);

/* The same for a statement the caller keeps in *slot. */
sqlite3_stmt *sat_sql_prepare_once(struct sat_sql *q, sqlite3_stmt **slot, const char *sql);

/* Steps st to its end (no row wanted) and resets it. */
SAT_CHECK int sat_sql_run(struct sat_sql *q, sqlite3_stmt *st, const char *what);

/* Steps st for one row: SAT_OK with the row (the caller resets st after
 * reading it), SAT_ERR_NOT_FOUND (reset) without one, or a failure. */
SAT_CHECK int sat_sql_row(struct sat_sql *q, sqlite3_stmt *st, const char *what);

/* Ends the open transaction, if any, undoing it; errmsg keeps the reason
 * of the failure that led here. */
void sat_sql_rollback(struct sat_sql *q);

/* Finalizes every kept statement (the slots go back to NULL). */
void sat_sql_finalize(struct sat_sql *q);

#endif
