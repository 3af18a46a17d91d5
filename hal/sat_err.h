/*
 * sat_err.h - every error code Satchel returns, in one place.
 *
 * Contract: functions return int, 0 on success and one of the negative codes
 * below on failure. Each module owns a range so a code names its origin:
 *   -0x001 .. -0x0FF  HAL (hardware / OS boundary)
 *   -0x100 .. -0x1FF  proto (message encoding and framing)
 *   -0x200 .. -0x2FF  keys (PIN, device key, lockout)
 *   -0x300 .. -0x3FF  store (records, encrypted database)
 *   -0x400 .. -0x4FF  sync
 * Codes are never renumbered: they reach logs, exit statuses and the hub.
 */
#ifndef SATCHEL_SAT_ERR_H
#define SATCHEL_SAT_ERR_H

enum sat_err {
    SAT_OK = 0,

    /* HAL */
    SAT_ERR_IO = -0x001,            /* the OS or device reported an I/O error */
    SAT_ERR_NOT_FOUND = -0x002,     /* no such file, key or counter */
    SAT_ERR_WOULD_BLOCK = -0x003,   /* non-blocking call: try again later */
    SAT_ERR_NOT_SUPPORTED = -0x004, /* this HAL has no such operation */
    SAT_ERR_INVALID = -0x005,       /* bad argument (name, size, state) */
    SAT_ERR_CLOSED = -0x006,        /* the peer closed the connection */
    SAT_ERR_REFUSED = -0x007,       /* connection refused by the peer */
    SAT_ERR_UNREACHABLE = -0x008,   /* no route / link down / DNS failed */
    SAT_ERR_NO_SPACE = -0x009,      /* storage full */
    SAT_ERR_POWER_CUT = -0x00A,     /* (fault injection) power was cut */
    SAT_ERR_NO_MEMORY = -0x00B,     /* allocation failed */
    SAT_ERR_EXISTS = -0x00C,        /* already exists */
    SAT_ERR_RESET = -0x00D,         /* connection reset by the peer */
    SAT_ERR_TIMEOUT = -0x00E,       /* gave up waiting */

    /* proto */
    SAT_ERR_PROTO_ENCODE = -0x101,    /* message does not fit or is invalid */
    SAT_ERR_PROTO_DECODE = -0x102,    /* malformed or over-long input */
    SAT_ERR_PROTO_FRAME_SIZE = -0x103, /* frame larger than the maximum */

    /* keys */
    SAT_ERR_KEYS_WRONG_PIN = -0x201,         /* PIN did not unlock the key */
    SAT_ERR_KEYS_LOCKED_OUT = -0x202,        /* too many wrong PINs: wait */
    SAT_ERR_KEYS_ERASED = -0x203,            /* wrong-PIN limit: keys erased */
    SAT_ERR_KEYS_NOT_ENROLLED = -0x204,      /* no PIN set on this device yet */
    SAT_ERR_KEYS_ALREADY_ENROLLED = -0x205,  /* enrol on an enrolled device */
    SAT_ERR_KEYS_BAD_PIN = -0x206,           /* PIN format not acceptable */
    SAT_ERR_KEYS_LOCKED = -0x207,            /* keys locked: unlock first */
    SAT_ERR_KEYS_CRYPTO = -0x208,            /* the crypto library failed */
    SAT_ERR_KEYS_CORRUPT = -0x209,           /* key file damaged or forged */
    SAT_ERR_KEYS_RECOVERY = -0x20A,          /* recovery key does not fit */

    /* store */
    SAT_ERR_STORE_CORRUPT = -0x301,      /* stored data failed authentication */
    SAT_ERR_STORE_INVALID_NHS = -0x302,  /* NHS number fails Modulus 11 */
    SAT_ERR_STORE_OUT_OF_RANGE = -0x303, /* a value outside its allowed range */
    SAT_ERR_STORE_MISSING_FIELD = -0x304,/* a required field is empty */
    SAT_ERR_STORE_TOO_LONG = -0x305,     /* text longer than its limit */
    SAT_ERR_STORE_UNKNOWN_ID = -0x306,   /* no record with that id */
    SAT_ERR_STORE_SQL = -0x307,          /* internal database error */
    SAT_ERR_STORE_INVALID = -0x308,      /* malformed value (date, id...) */
    SAT_ERR_STORE_NOT_ALLOWED = -0x309   /* not allowed in this state */
};

/* One line of English for a code; never NULL (unknown codes included). */
const char *sat_strerror(int err);

#endif
