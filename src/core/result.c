/* Descriptions of mp_result values. */
#include "mpcpush/result.h"

const char *mp_strerror(enum mp_result result)
{
    switch (result) {
    case MP_OK:
        return "ok";
    case MP_ERR_NOMEM:
        return "out of memory";
    case MP_ERR_INVALID:
        return "invalid input";
    case MP_ERR_TOO_LARGE:
        return "input too large";
    case MP_ERR_NOT_FOUND:
        return "not found";
    case MP_ERR_UNAUTHORIZED:
        return "unauthorized";
    case MP_ERR_CONFLICT:
        return "conflict";
    case MP_ERR_DB:
        return "database error";
    case MP_ERR_IO:
        return "i/o error";
    case MP_ERR_CRYPTO:
        return "cryptographic error";
    case MP_ERR_NETWORK:
        return "network error";
    case MP_ERR_TIMEOUT:
        return "timed out";
    case MP_ERR_UNAVAILABLE:
        return "unavailable";
    case MP_ERR_INTERNAL:
        return "internal error";
    }
    return "unknown error";
}
