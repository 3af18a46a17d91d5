/* sat_sql.c - SQLite plumbing shared by the store and the hub (sat_sql.h). */
#include "sat_sql.h"

#include <stdio.h>
#include <string.h>

int sat_sql_fail(struct sat_sql *q, int rc, const char *what)
{
    int ext = q->db ? sqlite3_extended_errcode(q->db) : rc;
    int code;
    const char *reason;
    if (ext == SQLITE_IOERR_DATA || (rc & 0xff) == SQLITE_CORRUPT ||
        (rc & 0xff) == SQLITE_NOTADB) {
        code = q->errors->damaged;
        reason = q->errors->damaged_text;
    } else if ((rc & 0xff) == SQLITE_FULL) {
        code = SAT_ERR_NO_SPACE;
        reason = q->errors->full_text;
    } else if ((rc & 0xff) == SQLITE_NOMEM) {
        code = SAT_ERR_NO_MEMORY;
        reason = "out of memory";
    } else {
        code = q->errors->storage;
        reason = q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc);
    }
    snprintf(q->errmsg, q->errmsg_bytes, "%s: %s", what, reason);
    return code;
}

sqlite3_stmt *sat_sql_prepare_once(struct sat_sql *q, sqlite3_stmt **slot, const char *sql)
{
    if (!*slot && sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL) !=
                      SQLITE_OK)
        return NULL;
    sqlite3_reset(*slot);
    sqlite3_clear_bindings(*slot);
    return *slot;
}

sqlite3_stmt *sat_sql_stmt(struct sat_sql *q, unsigned id)
{
    if (id >= q->count)
        return NULL;
    return sat_sql_prepare_once(q, &q->kept[id], q->texts[id]);
}

int sat_sql_run(struct sat_sql *q, sqlite3_stmt *st, const char *what)
{
    int rc;
    if (!st)
        return sat_sql_fail(q, sqlite3_errcode(q->db), what);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return sat_sql_fail(q, rc, what);
    return SAT_OK;
}

int sat_sql_row(struct sat_sql *q, sqlite3_stmt *st, const char *what)
{
    int rc;
    if (!st)
        return sat_sql_fail(q, sqlite3_errcode(q->db), what);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return SAT_OK;
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return SAT_ERR_NOT_FOUND;
    return sat_sql_fail(q, rc, what);
}

void sat_sql_rollback(struct sat_sql *q)
{
    if (q->db && !sqlite3_get_autocommit(q->db)) {
        /* The failure's reason stays; a rollback that fails too has
         * nothing more useful to say (SQLite rolls back when the database
         * is next opened). */
        char keep[256];
        size_t n = q->errmsg_bytes < sizeof keep ? q->errmsg_bytes : sizeof keep;
        memcpy(keep, q->errmsg, n);
        (void)sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
        memcpy(q->errmsg, keep, n);
    }
}

void sat_sql_finalize(struct sat_sql *q)
{
    for (unsigned i = 0; i < q->count; i++) {
        sqlite3_finalize(q->kept[i]);
        q->kept[i] = NULL;
    }
}
