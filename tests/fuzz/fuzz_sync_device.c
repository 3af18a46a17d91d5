/*
 * fuzz_sync_device.c - the tablet receiving its hub's replies.
 *
 * Input: the bytes the hub sends over a session, as they come off the TLS
 * layer: length-prefixed Frames (HelloAck, PushAck, PullBatch, Error...).
 * A sync_device session of the tablet of fuzz_world.h (its encrypted store
 * on a simulated flash, with own changes not yet pushed) reads them from an
 * in-memory link until the session ends or the input does (the hub hangs
 * up); the input's last byte also sets how many bytes one read gets, so
 * frames arrive in pieces too. Pulled changes go through the real glue
 * into the real store. Every frame the tablet sends must decode;
 * afterwards its store (unless the
 * hub revoked the tablet and it wiped itself) must pass integrity_check,
 * still answer, and be read whole, as the nurse's screens read it.
 */
#include "fuzz.h"
#include "fuzz_world.h"
#include "sync_device.h"

#define STEPS_MAX 4096

static struct fuzz_flash tablet_flash;
static struct sync_device sess;
static struct fuzz_frames_out requests;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FUZZ_CHECK(fuzz_tablet_template(&tablet_flash) == SAT_OK, "cannot build the tablet");
    return 0;
}

FUZZ_FRAME_STREAM_MUTATOR

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_tablet t;
    struct fuzz_link link = { data, size, 0, 0, &requests };
    struct frame_io io = fuzz_link_io(&link);
    struct store_sync_state st;
    int ret = SAT_ERR_WOULD_BLOCK;

    /* Pieces of a size the input picks: frames split across reads too. */
    if (size > 0)
        link.piece = 1 + (size_t)data[size - 1] * 64;
    FUZZ_CHECK(fuzz_tablet_open(&t, &tablet_flash) == SAT_OK, "cannot open the tablet");
    requests.have = 0;
    requests.frames = 0;
    sync_device_init(&sess, &io, &t.replica, fuzz_dev_id, "fuzz");
    for (int i = 0; i < STEPS_MAX && ret == SAT_ERR_WOULD_BLOCK; i++)
        ret = sync_device_step(&sess);
    FUZZ_CHECK(ret != SAT_ERR_WOULD_BLOCK, "the tablet's session never ended");
    if (fuzz_verbose())
        printf("tablet: %s (%s); pushed %llu, pulled %llu, purged %llu, conflicts %llu\n",
               sat_strerror(ret), sess.errmsg, (unsigned long long)sess.stats.pushed,
               (unsigned long long)sess.stats.pulled, (unsigned long long)sess.stats.purged,
               (unsigned long long)sess.stats.conflicts);
    FUZZ_CHECK(ret == SAT_OK || sess.errmsg[0] != '\0',
               "the tablet's session failed (%d) without saying why", ret);
    FUZZ_CHECK(!sess.applying, "a pulled batch's transaction outlived the session");
    if (t.s) {
        FUZZ_CHECK(store_check_integrity(t.s) == SAT_OK, "the store is damaged: %s",
                   store_errmsg(t.s));
        fuzz_store_read_all(t.s); /* what the nurse then sees of what was pulled */
        FUZZ_CHECK(store_sync_state(t.s, &st) == SAT_OK, "no sync state: %s",
                   store_errmsg(t.s));
        /* Lower only while a purged patient's own changes wait to be
         * pushed (store.h, store_sync_state). */
        FUZZ_CHECK(st.pull_cursor <= sess.cursor,
                   "the store's cursor %llu is past the session's %llu",
                   (unsigned long long)st.pull_cursor, (unsigned long long)sess.cursor);
    } else {
        FUZZ_CHECK(ret == SAT_ERR_SYNC_REVOKED, "the store went without a revocation");
    }
    fuzz_tablet_close(&t);
    return 0;
}
