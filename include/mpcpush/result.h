/* The one result type every fallible mpcpush function returns. */
#ifndef MPCPUSH_RESULT_H
#define MPCPUSH_RESULT_H

#define MP_MUSTCHECK __attribute__((warn_unused_result))

enum mp_result {
    MP_OK = 0,
    MP_ERR_NOMEM,        /* an allocation failed */
    MP_ERR_INVALID,      /* malformed or out-of-range input */
    MP_ERR_TOO_LARGE,    /* input over its limit */
    MP_ERR_NOT_FOUND,    /* the thing named does not exist */
    MP_ERR_UNAUTHORIZED, /* missing or bad credentials or signature */
    MP_ERR_CONFLICT,     /* the request contradicts the stored state */
    MP_ERR_DB,           /* the database refused or could not be reached */
    MP_ERR_IO,           /* a file or socket operation failed */
    MP_ERR_CRYPTO,       /* a key could not be loaded or used */
    MP_ERR_NETWORK,      /* an outgoing HTTP request failed */
    MP_ERR_TIMEOUT,      /* a deadline passed */
    MP_ERR_UNAVAILABLE,  /* a dependency is not configured or not ready */
    MP_ERR_INTERNAL,     /* a bug: an invariant did not hold */
};

/* A short, static, human-readable description of a result. */
const char *mp_strerror(enum mp_result result);

#endif
