/*
 * fuzz.h - what the fuzz targets share: the libFuzzer entry points, a
 * check that stops the run, and an in-memory link whose reads come from
 * the fuzz input while what is sent through it is checked frame by frame.
 *
 * Every target is built twice: as a libFuzzer binary (-DSATCHEL_FUZZ=ON,
 * clang) and, with replay_main.c, as a plain program that ctest runs over
 * the target's corpus in every stage. A target must be deterministic (a
 * seeded simulated HAL, a fixed hub clock, no wall clock), must free what
 * it allocates (LeakSanitizer runs in the sanitize stage and in libFuzzer),
 * and may keep state across inputs only if it was built by
 * LLVMFuzzerInitialize and is never changed by an input.
 */
#ifndef SATCHEL_FUZZ_H
#define SATCHEL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "sat_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A property every input must keep: print what broke and abort, which both
 * libFuzzer and the replay driver report as a crash. */
#define FUZZ_CHECK(cond, ...)                                                      \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "fuzz check failed at %s:%d: ", __FILE__, __LINE__);   \
            fprintf(stderr, __VA_ARGS__);                                          \
            fputc('\n', stderr);                                                   \
            abort();                                                               \
        }                                                                          \
    } while (0)

/* SATCHEL_FUZZ_VERBOSE=1 makes a target say what an input did (to replay
 * one input and see how far it got). */
static inline int fuzz_verbose(void)
{
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("SATCHEL_FUZZ_VERBOSE") != NULL;
    return verbose;
}

/* ---- the link ------------------------------------------------------------ */

/* What a peer sends through the link: a stream of frames, each of which
 * must decode (a session must never put a malformed frame on the wire). */
struct fuzz_frames_out {
    uint8_t buf[FRAME_BUF_BYTES];
    size_t have;
    uint64_t frames;
    uint64_t bytes;
};

/* Reads return the fuzz input in pieces of at most `piece` bytes (0: as
 * much as asked), then SAT_ERR_CLOSED: the peer hung up after its last
 * byte. Sends always take everything. */
struct fuzz_link {
    const uint8_t *in;
    size_t in_len;
    size_t in_pos;
    size_t piece;
    struct fuzz_frames_out *out;
};

static inline int fuzz_count_change(void *arg, const satchel_FieldChange *c)
{
    (void)c;
    (*(uint64_t *)arg)++;
    return 0;
}

/* Checks and drops every whole frame in out->buf. */
static inline void fuzz_frames_drain(struct fuzz_frames_out *out)
{
    for (;;) {
        size_t body = 0;
        uint64_t changes = 0;
        struct proto_changes_in sink = { fuzz_count_change, &changes, 0 };
        satchel_Frame *f;
        size_t whole;
        if (out->have < PROTO_FRAME_HEADER_BYTES)
            return;
        FUZZ_CHECK(proto_frame_header(out->buf, &body) == SAT_OK,
                   "a session sent a frame header over the limit");
        whole = PROTO_FRAME_HEADER_BYTES + body;
        if (out->have < whole)
            return;
        f = calloc(1, sizeof *f);
        FUZZ_CHECK(f != NULL, "out of memory");
        proto_bind_frame_changes(f, &sink);
        FUZZ_CHECK(proto_frame_decode(f, out->buf, whole) == SAT_OK,
                   "a session sent a frame that does not decode (%s)", proto_last_error());
        FUZZ_CHECK(f->which_msg != 0, "a session sent a frame with no message");
        free(f);
        out->frames++;
        memmove(out->buf, out->buf + whole, out->have - whole);
        out->have -= whole;
    }
}

static inline int fuzz_link_send(void *arg, const void *buf, size_t len, size_t *sent)
{
    struct fuzz_link *l = arg;
    const uint8_t *p = buf;
    size_t left = len;
    while (l->out && left > 0) {
        size_t room = sizeof l->out->buf - l->out->have;
        size_t n = left < room ? left : room;
        memcpy(l->out->buf + l->out->have, p, n);
        l->out->have += n;
        l->out->bytes += n;
        p += n;
        left -= n;
        fuzz_frames_drain(l->out);
        FUZZ_CHECK(n > 0, "a session sent more than a frame's worth without a whole frame");
    }
    *sent = len;
    return SAT_OK;
}

static inline int fuzz_link_recv(void *arg, void *buf, size_t len, size_t *got)
{
    struct fuzz_link *l = arg;
    size_t n = l->in_len - l->in_pos;
    if (n == 0)
        return SAT_ERR_CLOSED;
    if (n > len)
        n = len;
    if (l->piece && n > l->piece)
        n = l->piece;
    memcpy(buf, l->in + l->in_pos, n);
    l->in_pos += n;
    *got = n;
    return SAT_OK;
}

static inline struct frame_io fuzz_link_io(struct fuzz_link *l)
{
    struct frame_io io = { fuzz_link_send, fuzz_link_recv, l };
    return io;
}

/* ---- mutating streams of frames (libFuzzer builds only) ---------------------
 * A byte-level mutation that inserts or removes a byte inside a frame
 * breaks its length header, and every frame after it, so most mutants of a
 * session stop at the first frame. The targets whose input is a stream of
 * frames mutate one frame's body at a time instead and rewrite its header;
 * one mutation in four is still plain, to fuzz the framing itself. */
#ifdef SATCHEL_LIBFUZZER
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

#define FUZZ_FRAMES_MAX 512

static inline size_t fuzz_mutate_frames(uint8_t *data, size_t size, size_t max_size,
                                        unsigned seed)
{
    size_t starts[FUZZ_FRAMES_MAX];
    size_t n = 0;
    size_t at = 0;
    size_t start, body = 0, tail, tail_len, room, grown;
    uint8_t *saved;
    /* libFuzzer may hand over an input longer than max_size (a seed above
     * -max_len): mutate only what fits, as its own mutators do. */
    if (size > max_size)
        size = max_size;
    if (seed % 4 == 0)
        return LLVMFuzzerMutate(data, size, max_size);
    while (n < FUZZ_FRAMES_MAX && size - at >= PROTO_FRAME_HEADER_BYTES &&
           proto_frame_header(data + at, &body) == SAT_OK &&
           body <= size - at - PROTO_FRAME_HEADER_BYTES) {
        starts[n++] = at;
        at += PROTO_FRAME_HEADER_BYTES + body;
    }
    if (n == 0)
        return LLVMFuzzerMutate(data, size, max_size);
    start = starts[(seed / 4) % n];
    (void)proto_frame_header(data + start, &body);
    tail = start + PROTO_FRAME_HEADER_BYTES + body;
    tail_len = size - tail;
    room = max_size - (size - body); /* size <= max_size: no wrap */
    if (room > PROTO_FRAME_BYTES_MAX)
        room = PROTO_FRAME_BYTES_MAX;
    saved = malloc(tail_len ? tail_len : 1);
    if (!saved)
        return LLVMFuzzerMutate(data, size, max_size);
    memcpy(saved, data + tail, tail_len);
    grown = LLVMFuzzerMutate(data + start + PROTO_FRAME_HEADER_BYTES, body, room);
    if (grown > room) /* never trust a length we did not make */
        grown = room;
    data[start] = (uint8_t)(grown >> 24);
    data[start + 1] = (uint8_t)(grown >> 16);
    data[start + 2] = (uint8_t)(grown >> 8);
    data[start + 3] = (uint8_t)grown;
    memcpy(data + start + PROTO_FRAME_HEADER_BYTES + grown, saved, tail_len);
    free(saved);
    return start + PROTO_FRAME_HEADER_BYTES + grown + tail_len;
}

#define FUZZ_FRAME_STREAM_MUTATOR                                                        \
    size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,          \
                                   unsigned int seed);                                   \
    size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,          \
                                   unsigned int seed)                                    \
    {                                                                                    \
        return fuzz_mutate_frames(data, size, max_size, seed);                           \
    }
#else
#define FUZZ_FRAME_STREAM_MUTATOR
#endif

#endif
