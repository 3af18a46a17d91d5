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
    default: return "unknown error";
    }
}
