/* sat_err.c - messages for sat_err.h codes. */
#include "sat_err.h"

const char *sat_strerror(int err)
{
    switch (err) {
    case SAT_OK: return "ok";
    case SAT_ERR_IO: return "input/output error";
    case SAT_ERR_NOT_FOUND: return "not found";
    case SAT_ERR_WOULD_BLOCK: return "operation would block";
    case SAT_ERR_NOT_SUPPORTED: return "not supported by this device";
    case SAT_ERR_INVALID: return "invalid argument";
    case SAT_ERR_CLOSED: return "connection closed by the peer";
    case SAT_ERR_REFUSED: return "connection refused (is the server running on that port?)";
    case SAT_ERR_UNREACHABLE: return "host unreachable (no network link or unknown host)";
    case SAT_ERR_NO_SPACE: return "storage is full";
    case SAT_ERR_POWER_CUT: return "power was cut";
    case SAT_ERR_NO_MEMORY: return "out of memory";
    case SAT_ERR_EXISTS: return "already exists";
    case SAT_ERR_RESET: return "connection reset";
    case SAT_ERR_TIMEOUT: return "timed out";
    case SAT_ERR_PROTO_ENCODE: return "message could not be encoded (field too large?)";
    case SAT_ERR_PROTO_DECODE: return "malformed or over-long message";
    case SAT_ERR_PROTO_FRAME_SIZE: return "frame exceeds the maximum size";
    case SAT_ERR_KEYS_WRONG_PIN: return "wrong PIN";
    case SAT_ERR_KEYS_LOCKED_OUT: return "too many wrong PINs: wait before trying again";
    case SAT_ERR_KEYS_ERASED: return "too many wrong PINs: the keys were erased; ask your fleet manager to recover the device";
    case SAT_ERR_KEYS_NOT_ENROLLED: return "no PIN is set on this device: run 'satchel enrol' first";
    case SAT_ERR_KEYS_ALREADY_ENROLLED: return "this device is already enrolled";
    case SAT_ERR_KEYS_BAD_PIN: return "a PIN must be 4 to 32 characters, without spaces or control characters";
    case SAT_ERR_KEYS_LOCKED: return "the store is locked: unlock it with the PIN first";
    case SAT_ERR_KEYS_CRYPTO: return "cryptographic operation failed";
    case SAT_ERR_KEYS_CORRUPT: return "the key file is damaged or was tampered with";
    case SAT_ERR_KEYS_RECOVERY: return "the recovery key does not match this device";
    case SAT_ERR_STORE_CORRUPT: return "stored data failed authentication (damaged or tampered with)";
    case SAT_ERR_STORE_INVALID_NHS: return "invalid NHS number (10 digits with a valid Modulus 11 check digit)";
    case SAT_ERR_STORE_OUT_OF_RANGE: return "value out of range";
    case SAT_ERR_STORE_MISSING_FIELD: return "a required field is missing";
    case SAT_ERR_STORE_TOO_LONG: return "text too long";
    case SAT_ERR_STORE_UNKNOWN_ID: return "no record with that id";
    case SAT_ERR_STORE_SQL: return "internal database error";
    case SAT_ERR_STORE_INVALID: return "malformed value";
    case SAT_ERR_STORE_NOT_ALLOWED: return "not allowed in the record's current state";
    case SAT_ERR_SYNC_PROTOCOL: return "the other side broke the sync protocol";
    case SAT_ERR_SYNC_PEER: return "the other side reported an error";
    case SAT_ERR_SYNC_REVOKED: return "the hub revoked this device: its records were wiped";
    case SAT_ERR_SYNC_VERSION: return "device and hub have no sync protocol version in common: update the firmware";
    case SAT_ERR_TLS_HANDSHAKE: return "secure connection set-up failed (the other side refused or the link broke)";
    case SAT_ERR_TLS_BAD_CERT: return "certificate not issued by the fleet CA (or its signature or use is wrong)";
    case SAT_ERR_TLS_EXPIRED: return "certificate expired or not yet valid (check the device clock, or reissue it)";
    case SAT_ERR_TLS_NO_CERT: return "the other side sent no certificate (is the device provisioned?)";
    case SAT_ERR_TLS_REVOKED:
        return "the hub refused this device: it is not registered there, or the fleet manager "
               "revoked it";
    case SAT_ERR_TLS_VERSION: return "the other side does not speak TLS 1.2 with an ECDHE-ECDSA AES-GCM suite";
    case SAT_ERR_TLS_CLOSED: return "secure connection closed by the other side";
    case SAT_ERR_TLS_CONFIG: return "bad certificate or key file (not PEM, wrong kind, or key does not match)";
    case SAT_ERR_TLS_CRYPTO: return "cryptographic operation failed";
    case SAT_ERR_TLS_BAD_RECORD: return "received data failed authentication (link tampered with?)";
    case SAT_ERR_HUB_UNKNOWN_DEVICE: return "device not registered with the hub: provision it first";
    case SAT_ERR_HUB_REVOKED: return "the device is revoked: it must wipe itself";
    case SAT_ERR_HUB_OUT_OF_SCOPE: return "change to a record outside the device's team caseload: nothing from the batch was stored";
    case SAT_ERR_HUB_OUT_OF_ORDER: return "push batch leaves a gap after the acknowledged sequence: resend from the acknowledged sequence";
    case SAT_ERR_HUB_STORAGE: return "the hub's database failed (see the hub log; restore from a backup if damaged)";
    case SAT_ERR_HUB_NOT_ORIGIN: return "a pushed change names another device as its writer";
    case SAT_ERR_HUB_BAD_CHANGE: return "malformed change (kind, value or patient id)";
    case SAT_ERR_HUB_UNKNOWN_RECORD: return "no such patient at the hub";
    case SAT_ERR_HUB_BAD_CURSOR: return "pull cursor is beyond the hub's last sequence (hub restored from an older backup?)";
    default: return "unknown error";
    }
}
