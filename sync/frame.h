/*
 * frame.h - non-blocking framing of satchel.proto Frames over any byte
 * stream (a TLS connection, or a plain socket in tests).
 *
 * A frame is a 4-byte big-endian length and an encoded Frame of at most
 * PROTO_FRAME_BYTES_MAX bytes (sat_proto.h). The reader refuses a larger
 * length before reading the body; the writer holds one encoded frame until
 * it has all gone out. Both keep their buffer in the caller's struct: no
 * allocation, a fixed memory bound per connection.
 */
#ifndef SATCHEL_FRAME_H
#define SATCHEL_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "sat_proto.h"

#define FRAME_BUF_BYTES (PROTO_FRAME_BYTES_MAX + PROTO_FRAME_HEADER_BYTES)

/* The byte stream: both calls answer SAT_ERR_WOULD_BLOCK instead of
 * waiting, SAT_ERR_CLOSED when the peer closed, or another error. */
struct frame_io {
    int (*send)(void *arg, const void *buf, size_t len, size_t *sent);
    int (*recv)(void *arg, void *buf, size_t len, size_t *got);
    void *arg;
};

struct frame_reader {
    size_t have; /* bytes in buf */
    size_t need; /* header + body once the header is in, else the header */
    uint8_t buf[FRAME_BUF_BYTES];
};

struct frame_writer {
    size_t len;  /* encoded frame length (0: empty) */
    size_t sent; /* bytes of it gone out */
    uint64_t bytes_total; /* every byte ever sent through this writer */
    uint8_t buf[FRAME_BUF_BYTES];
};

void frame_reader_init(struct frame_reader *r);

/* Reads until one whole frame is in. SAT_OK: *frame / *len (header
 * included, valid until the next call) hold it and the reader is reset for
 * the next one. SAT_ERR_WOULD_BLOCK: call again when readable.
 * SAT_ERR_PROTO_FRAME_SIZE: the peer announced an oversize frame. */
SAT_CHECK int frame_read(struct frame_reader *r, const struct frame_io *io, const uint8_t **frame,
               size_t *len);

void frame_writer_init(struct frame_writer *w);

/* 1 when a frame is still going out. */
int frame_writer_busy(const struct frame_writer *w);

/* Encodes f into the writer (which must not be busy: SAT_ERR_INVALID). */
SAT_CHECK int frame_writer_put(struct frame_writer *w, const satchel_Frame *f);

/* Sends what is left of the frame. SAT_OK when all of it is out (or there
 * was none), SAT_ERR_WOULD_BLOCK when the stream is full. */
SAT_CHECK int frame_writer_flush(struct frame_writer *w, const struct frame_io *io);

#endif
