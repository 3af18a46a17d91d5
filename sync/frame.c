/* frame.c - see frame.h. */
#include "frame.h"

#include "sat_err.h"

void frame_reader_init(struct frame_reader *r)
{
    r->have = 0;
    r->need = PROTO_FRAME_HEADER_BYTES;
}

int frame_read(struct frame_reader *r, const struct frame_io *io, const uint8_t **frame,
               size_t *len)
{
    if (r->need == 0 || r->have == r->need) /* a frame was handed out last time */
        frame_reader_init(r);
    for (;;) {
        size_t got = 0;
        int ret;
        if (r->have == r->need) {
            if (r->need == PROTO_FRAME_HEADER_BYTES) {
                size_t body = 0;
                ret = proto_frame_header(r->buf, &body);
                if (ret != SAT_OK)
                    return ret;
                r->need += body;
                if (body > 0)
                    continue;
            }
            *frame = r->buf;
            *len = r->have;
            return SAT_OK;
        }
        ret = io->recv(io->arg, r->buf + r->have, r->need - r->have, &got);
        if (ret != SAT_OK)
            return ret;
        r->have += got;
    }
}

void frame_writer_init(struct frame_writer *w)
{
    w->len = 0;
    w->sent = 0;
    w->bytes_total = 0;
}

int frame_writer_busy(const struct frame_writer *w)
{
    return w->sent < w->len;
}

int frame_writer_put(struct frame_writer *w, const satchel_Frame *f)
{
    size_t len = 0;
    int ret;
    if (frame_writer_busy(w))
        return SAT_ERR_INVALID;
    ret = proto_frame_encode(f, w->buf, sizeof w->buf, &len);
    if (ret != SAT_OK)
        return ret;
    w->len = len;
    w->sent = 0;
    return SAT_OK;
}

int frame_writer_flush(struct frame_writer *w, const struct frame_io *io)
{
    while (w->sent < w->len) {
        size_t n = 0;
        int ret = io->send(io->arg, w->buf + w->sent, w->len - w->sent, &n);
        if (ret != SAT_OK)
            return ret;
        w->sent += n;
        w->bytes_total += n;
    }
    w->len = 0;
    w->sent = 0;
    return SAT_OK;
}
