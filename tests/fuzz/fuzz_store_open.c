/*
 * fuzz_store_open.c - the tablet's store opening a damaged file.
 *
 * Input: one mode byte, then a file's bytes. The low two bits of the mode
 * say which file and how it reaches the simulated flash:
 *   0  caseload.db as it lies on flash (sealed blocks: edits fail their
 *      authentication, lengths and torn slots do not)
 *   1  caseload.db as SQLite sees it, sealed with the store's key: a
 *      damaged database that authenticates (what a bug, not an attacker,
 *      would leave), down to the store's own field-state records
 *   2  caseload.db-wal as SQLite sees it, sealed, beside the database of
 *      fuzz_world.h's tablet: the log a power cut left, recovered at open
 *   3  caseload.db-wal as it lies on flash, beside that database
 * The store is opened with the right key. It must either refuse (a
 * SAT_ERR code, the store closed, nothing leaked) or open; an open store is
 * then read through every listing, checked, written once and closed.
 */
#include <sqlite3.h>

#include "fuzz.h"
#include "fuzz_world.h"
#include "store_fixture.h"

static struct fuzz_flash tablet_flash;
static const uint8_t *template_db;
static size_t template_db_len;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FUZZ_CHECK(fuzz_tablet_template(&tablet_flash) == SAT_OK, "cannot build the tablet");
    for (size_t i = 0; i < tablet_flash.n; i++)
        if (strcmp(tablet_flash.name[i], STORE_DB_NAME) == 0) {
            template_db = tablet_flash.bytes[i];
            template_db_len = tablet_flash.len[i];
        }
    FUZZ_CHECK(template_db != NULL, "the tablet has no database");
    return 0;
}

/* Besides reading it all: checks it and writes to it once. */
static void use_store(struct store *s)
{
    struct store_patient p;
    uint64_t rng = 5;
    int ret = store_check_integrity(s);
    FUZZ_CHECK(ret == SAT_OK || ret < 0, "store_check_integrity answered %d", ret);
    fixture_patient(&rng, &p, "");
    ret = store_patient_add(s, &p);
    FUZZ_CHECK(ret == SAT_OK || ret < 0, "store_patient_add answered %d", ret);
    FUZZ_CHECK(store_errmsg(s) != NULL, "no error message");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sim_hal *sim = NULL;
    const struct hal *h;
    struct keys k;
    struct store *s = NULL;
    char why[STORE_ERRMSG_BYTES];
    unsigned mode = size > 0 ? data[0] & 3u : 0;
    const uint8_t *body = size > 0 ? data + 1 : data;
    size_t len = size > 0 ? size - 1 : 0;
    int ret;

    fuzz_sqlite_reseed();
    FUZZ_CHECK(sim_hal_new(&sim, FUZZ_TABLET_SEED, FUZZ_WALL_START_MS) == SAT_OK,
               "no simulated tablet");
    h = sim_hal_hal(sim);
    fixture_keys(&k, h, FUZZ_TABLET_SEED);
    switch (mode) {
    case 0: ret = fuzz_file_write(h, STORE_DB_NAME, body, len); break;
    case 1: ret = fuzz_store_file_seal(h, &k, STORE_DB_NAME, SQLITE_OPEN_MAIN_DB, body, len); break;
    default:
        ret = fuzz_file_write(h, STORE_DB_NAME, template_db, template_db_len);
        if (ret == SAT_OK && mode == 2)
            ret = fuzz_store_file_seal(h, &k, STORE_DB_NAME "-wal", SQLITE_OPEN_WAL, body, len);
        else if (ret == SAT_OK)
            ret = fuzz_file_write(h, STORE_DB_NAME "-wal", body, len);
        break;
    }
    FUZZ_CHECK(ret == SAT_OK, "cannot put the file on flash (%d)", ret);

    ret = store_open(h, &k, &s, why);
    if (fuzz_verbose())
        printf("store_open (mode %u): %s%s%s\n", mode, sat_strerror(ret), why[0] ? ": " : "",
               why);
    if (ret == SAT_OK) {
        FUZZ_CHECK(s != NULL, "store_open said yes without a store");
        fuzz_store_read_all(s);
        use_store(s);
        store_close(s);
    } else {
        FUZZ_CHECK(ret < 0, "store_open failed with %d", ret);
    }
    keys_lock(&k);
    sim_hal_free(sim);
    return 0;
}
