/*
 * hlc.h - hybrid logical clocks (Kulkarni et al., 2014).
 *
 * Tablet clocks drift and are set wrong. An HLC stamp is (wall_ms, counter):
 * it stays close to real time when clocks are good, yet never goes backwards
 * and always orders a receive after its send, whatever the wall clocks say.
 * Merge compares (stamp, device id), so every replica picks the same winner.
 */
#ifndef SATCHEL_HLC_H
#define SATCHEL_HLC_H

#include <stdint.h>

struct hlc {
    uint64_t wall_ms;
    uint32_t counter;
};

/* A stamp for a local event (a field write or a send), given the device's
 * wall clock now. Advances *clock; the stamp is strictly greater than every
 * stamp *clock has issued or observed. */
struct hlc hlc_tick(struct hlc *clock, int64_t wall_now_ms);

/* Folds a stamp received from another replica into *clock so later local
 * stamps order after it. */
void hlc_observe(struct hlc *clock, struct hlc remote, int64_t wall_now_ms);

/* <0, 0, >0 as a orders before, equal to, after b. */
int hlc_compare(struct hlc a, struct hlc b);

#endif
