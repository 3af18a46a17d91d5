/*
 * fuzz_hub_session.c - what the hub does with a tablet's frames.
 *
 * Input: the bytes a registered tablet (fuzz_dev_id, "north"; the id its
 * TLS certificate proved) sends over a session, as they come off the TLS
 * layer: length-prefixed Frames. A hub_session reads them from an
 * in-memory link, against a fresh in-memory hub store holding the world
 * of fuzz_world.h, until it ends the session or the input ends (the
 * tablet hangs up). Every frame the hub sends back must decode, the
 * store must hold what the session acknowledged, and it must still answer
 * afterwards (stats, the colleague's pull), whatever the input did to it.
 */
#include "fuzz.h"
#include "fuzz_world.h"
#include "hub_session.h"

/* More steps than any input of the corpus needs: each step reads a frame
 * or ends the session. */
#define STEPS_MAX 4096

static struct hub_session sess;
static struct fuzz_frames_out replies;
static satchel_FieldChange pulled[PROTO_PULL_CHANGES_MAX];

FUZZ_FRAME_STREAM_MUTATOR

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hub_store *hub = NULL;
    struct fuzz_link link = { data, size, 0, 0, &replies };
    struct frame_io io = fuzz_link_io(&link);
    struct hub_stats st;
    struct hub_pull_result pr;
    struct hub_device dev;
    int ret = SAT_ERR_WOULD_BLOCK;

    FUZZ_CHECK(fuzz_hub_open(&hub) == SAT_OK, "cannot build the hub's world");
    replies.have = 0;
    replies.frames = 0;
    hub_session_init(&sess, &io, hub, fuzz_dev_id, fuzz_hub_clock, NULL);
    for (int i = 0; i < STEPS_MAX && ret == SAT_ERR_WOULD_BLOCK; i++)
        ret = hub_session_step(&sess);
    FUZZ_CHECK(ret != SAT_ERR_WOULD_BLOCK, "the hub session never ended");
    if (fuzz_verbose())
        printf("hub: %s (%s); %llu requests, %llu stored, %llu pulled, %llu frames sent\n",
               sat_strerror(ret), sess.errmsg, (unsigned long long)sess.stats.requests,
               (unsigned long long)sess.stats.pushed_stored,
               (unsigned long long)sess.stats.pulled, (unsigned long long)replies.frames);
    FUZZ_CHECK(replies.have == 0, "the hub left part of a frame unsent");
    FUZZ_CHECK(ret == SAT_OK || sess.errmsg[0] != '\0', "the hub failed (%d) without saying why",
               ret);

    /* The store survived whatever was pushed. */
    FUZZ_CHECK(hub_store_stats(hub, &st) == SAT_OK, "hub stats failed: %s",
               hub_store_errmsg(hub));
    FUZZ_CHECK(hub_store_device_get(hub, fuzz_dev_id, &dev) == SAT_OK, "device lost: %s",
               hub_store_errmsg(hub));
    FUZZ_CHECK(dev.acked_seq == sess.acked || ret != SAT_OK,
               "the session and the store disagree on what the tablet pushed");
    ret = hub_store_pull(hub, fuzz_colleague_id, 0, pulled, PROTO_PULL_CHANGES_MAX, &pr);
    FUZZ_CHECK(ret == SAT_OK, "the colleague cannot pull any more: %s", hub_store_errmsg(hub));
    hub_store_close(hub);
    return 0;
}
