/*
 * sync_glue.h - the tablet's store seen through sync's struct sync_replica:
 * change-log entries out as FieldChanges, pulled FieldChanges in.
 */
#ifndef SATCHEL_SYNC_GLUE_H
#define SATCHEL_SYNC_GLUE_H

#include "keys.h"
#include "store.h"
#include "sync_device.h"

struct sync_glue {
    const struct hal *hal;
    struct keys *keys;
    struct store **store; /* set to NULL when a revocation wipes the store */
};

/* Fills *r with the glue's members; g must outlive the session. */
void sync_glue_replica(struct sync_glue *g, struct sync_replica *r);

/* Destroys the device's records and keys: the store is closed, its files
 * overwritten and deleted, the key file and device secret wiped. */
SAT_CHECK int sync_glue_wipe(struct sync_glue *g);

#endif
