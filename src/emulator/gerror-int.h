/* Error answers shaped exactly like Google's: the google.rpc.Status body of the FCM API and the
 * RFC 6749 body of the OAuth token endpoint. */
#ifndef MPCPUSH_EMU_GERROR_INT_H
#define MPCPUSH_EMU_GERROR_INT_H

#include "faults-int.h"
#include "server-int.h"

/* The answer FCM gives for err (with its FcmError errorCode where FCM sends one). */
void emu_gerror_fcm(struct emu_response *resp, enum emu_err err, const char *project);

/* 400 INVALID_ARGUMENT with an FcmError and a BadRequest field violation. */
void emu_gerror_invalid(struct emu_response *resp, const char *message, const char *field,
                        const char *description);

/* 401 UNAUTHENTICATED with an ErrorInfo reason (ACCESS_TOKEN_EXPIRED, CREDENTIALS_MISSING,
 * ACCESS_TOKEN_TYPE_UNSUPPORTED) and Google's WWW-Authenticate header. */
void emu_gerror_unauthenticated(struct emu_response *resp, const char *reason);

/* A plain google.rpc.Status error without details (404, 405, 413, 415...). */
void emu_gerror_status(struct emu_response *resp, int code, const char *status,
                       const char *message);

/* 400 (or status) {"error":error,"error_description":description} from the token endpoint. */
void emu_oauth_error(struct emu_response *resp, int status, const char *error,
                     const char *description);

#endif
