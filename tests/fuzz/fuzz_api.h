/* The fake HTTP request, store and writer behind fuzz_api.c. */
#ifndef MPCPUSH_FUZZ_API_H
#define MPCPUSH_FUZZ_API_H

#include "fuzz_common.h"

struct mp_http_request;

/* Builds the shared struct mp_api once (real config defaults, metrics, verifier). */
void fz_api_setup(void);

/* Parses one input into a request (see fuzz_api.c for the format). */
struct mp_http_request *fz_request_parse(struct fz_input *in);

/* Runs the request as the server would: precheck, handler, and the handler again after each
 * resume, until answered; checks the invariants. */
void fz_request_serve(struct mp_http_request *req);

/* Ends the request (runs the handler state's destructor) and frees it. */
void fz_request_free(struct mp_http_request *req);

#endif
