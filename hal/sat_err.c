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
    default: return "unknown error";
    }
}
