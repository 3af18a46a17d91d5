/* hlc.c - see hlc.h. */
#include "hlc.h"

static uint64_t wall_or_zero(int64_t wall_now_ms)
{
    return wall_now_ms > 0 ? (uint64_t)wall_now_ms : 0;
}

struct hlc hlc_tick(struct hlc *clock, int64_t wall_now_ms)
{
    uint64_t now = wall_or_zero(wall_now_ms);
    if (now > clock->wall_ms) {
        clock->wall_ms = now;
        clock->counter = 0;
    } else if (clock->counter == UINT32_MAX) {
        /* Counter exhausted within one millisecond: borrow the next one. */
        clock->wall_ms++;
        clock->counter = 0;
    } else {
        clock->counter++;
    }
    return *clock;
}

void hlc_observe(struct hlc *clock, struct hlc remote, int64_t wall_now_ms)
{
    uint64_t now = wall_or_zero(wall_now_ms);
    uint64_t top = now;
    if (clock->wall_ms > top)
        top = clock->wall_ms;
    if (remote.wall_ms > top)
        top = remote.wall_ms;

    if (top == clock->wall_ms && top == remote.wall_ms) {
        clock->counter = clock->counter > remote.counter ? clock->counter : remote.counter;
    } else if (top == clock->wall_ms) {
        /* keep our counter */
    } else if (top == remote.wall_ms) {
        clock->counter = remote.counter;
    } else {
        clock->counter = 0;
    }
    clock->wall_ms = top;
}

int hlc_compare(struct hlc a, struct hlc b)
{
    if (a.wall_ms != b.wall_ms)
        return a.wall_ms < b.wall_ms ? -1 : 1;
    if (a.counter != b.counter)
        return a.counter < b.counter ? -1 : 1;
    return 0;
}
