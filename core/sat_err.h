/*
 * sat_err.h - every error code Satchel returns, in one place (core/: it
 * depends on nothing, and every module reaches it).
 *
 * Contract: functions return int, 0 on success and one of the negative codes
 * below on failure. Each module owns a range so a code names its origin:
 *   -0x001 .. -0x0FF  HAL (hardware / OS boundary) and core
 *   -0x100 .. -0x1FF  proto (message encoding and framing)
 *   -0x200 .. -0x2FF  keys (PIN, device key, lockout)
 *   -0x300 .. -0x3FF  store (records, encrypted database)
 *   -0x400 .. -0x4FF  sync
 *   -0x500 .. -0x5FF  TLS (sync/tls.c, sync/pki.c)
 *   -0x600 .. -0x6FF  hub (sync/hub: device standing, scope, storage)
 * Codes are never renumbered: they reach logs, exit statuses and the hub.
 */
#ifndef SATCHEL_SAT_ERR_H
#define SATCHEL_SAT_ERR_H

/* Marks a function whose sat_err code must not be ignored. */
#if defined(__GNUC__) || defined(__clang__)
#define SAT_CHECK __attribute__((warn_unused_result))
#else
#define SAT_CHECK
#endif

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
    SAT_ERR_STORE_NOT_ALLOWED = -0x309,  /* not allowed in this state */

    /* sync */
    SAT_ERR_SYNC_PROTOCOL = -0x401,  /* the peer broke the protocol */
    SAT_ERR_SYNC_PEER = -0x402,      /* the peer sent an Error message */
    SAT_ERR_SYNC_REVOKED = -0x403,   /* the hub revoked this device: wiped */
    SAT_ERR_SYNC_VERSION = -0x404,   /* no protocol version in common */

    /* TLS */
    SAT_ERR_TLS_HANDSHAKE = -0x501, /* handshake failed (bad message, peer's alert) */
    SAT_ERR_TLS_BAD_CERT = -0x502,  /* peer certificate not from our CA, bad signature or use */
    SAT_ERR_TLS_EXPIRED = -0x503,   /* peer certificate expired or not yet valid (HAL clock) */
    SAT_ERR_TLS_NO_CERT = -0x504,   /* the peer sent no certificate */
    SAT_ERR_TLS_REVOKED = -0x505,   /* the peer's certificate (device) is revoked */
    SAT_ERR_TLS_VERSION = -0x506,   /* peer below TLS 1.2 or no common cipher suite */
    SAT_ERR_TLS_CLOSED = -0x507,    /* the peer closed the TLS session (close_notify) */
    SAT_ERR_TLS_CONFIG = -0x508,    /* bad PEM certificate or key, or they do not match */
    SAT_ERR_TLS_CRYPTO = -0x509,    /* the crypto library failed internally */
    SAT_ERR_TLS_BAD_RECORD = -0x50A, /* a record failed authentication (link tampered with?) */

    /* hub */
    SAT_ERR_HUB_UNKNOWN_DEVICE = -0x601, /* device id not registered with the hub */
    SAT_ERR_HUB_REVOKED = -0x602,        /* the device is revoked: it must wipe */
    SAT_ERR_HUB_OUT_OF_SCOPE = -0x603,   /* a change to a record outside its caseload */
    SAT_ERR_HUB_OUT_OF_ORDER = -0x604,   /* push leaves a gap after the acked sequence */
    SAT_ERR_HUB_STORAGE = -0x605,        /* the hub's database failed or is damaged */
    SAT_ERR_HUB_NOT_ORIGIN = -0x606,     /* a pushed change names another device as writer */
    SAT_ERR_HUB_BAD_CHANGE = -0x607,     /* malformed change (kind, value, patient id) */
    SAT_ERR_HUB_UNKNOWN_RECORD = -0x608, /* no such patient at the hub */
    SAT_ERR_HUB_BAD_CURSOR = -0x609      /* pull cursor beyond the hub's last sequence */
};

/* One line of English for a code; never NULL (unknown codes included). */
const char *sat_strerror(int err);

#endif
