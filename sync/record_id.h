/*
 * record_id.h - record ids that sort by the time they were made.
 *
 * A record id is 16 bytes in RFC 9562's UUIDv7 layout: a 48-bit big-endian
 * Unix time in milliseconds, then 74 random bits (with the version and
 * variant bits set). Uniqueness comes from the random bits, as for a random
 * id; the time prefix only puts ids made close together next to each other
 * in every B-tree that indexes them, so a transaction that adds records
 * dirties the last leaf of each id index instead of one random leaf per
 * record (the store seals each dirty page, so that is most of a commit's
 * cost). Nothing relies on the time being right: a wrong clock costs only
 * locality.
 *
 * Pure logic, no I/O: the caller brings the time and the randomness.
 */
#ifndef SATCHEL_RECORD_ID_H
#define SATCHEL_RECORD_ID_H

#include <stdint.h>

#define RECORD_ID_BYTES 16
#define RECORD_ID_RANDOM_BYTES 10
/* The largest time the 48-bit prefix holds (year 10889). */
#define RECORD_ID_MS_MAX ((int64_t)0xffffffffffffLL)

/* Writes the id made at unix_ms (clamped to 0..RECORD_ID_MS_MAX) from
 * RECORD_ID_RANDOM_BYTES random bytes. */
void record_id_make(int64_t unix_ms, const uint8_t random[RECORD_ID_RANDOM_BYTES],
                    uint8_t out[RECORD_ID_BYTES]);

/* The time prefix of an id. */
int64_t record_id_ms(const uint8_t id[RECORD_ID_BYTES]);

#endif
