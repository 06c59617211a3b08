/* The HTTP API without libmicrohttpd or PostgreSQL: the real router (mp_api_precheck,
 * mp_api_handle), handlers, JSON body parsing and validators, webhook verification and event
 * parsing, metrics and rate limits, driven through fakes of the HTTP adapter (include/mpcpush/
 * http.h), the store, the group-commit writer and the long-poll registry, which live in
 * fuzz_api_fakes.c. The request parsers of devices.c (parse_registration), messages.c
 * (parse_message) and pending.c (parse_ack, query_number) are static; they are reached through
 * the handlers exactly as the daemon reaches them.
 *
 * Input:  line 1   "METHOD /path?query" (the path is percent-decoded like libmicrohttpd does)
 *         headers  "Name: value" lines up to an empty line; the value "@sign" of
 *                  Fireblocks-Signature or Fireblocks-Webhook-Signature is replaced by a valid
 *                  signature of the body; "Authorization: Bearer fuzz-key" is the valid key;
 *                  X-Fuzz-Store: letters choosing what the fakes answer (see fuzz_api_fakes.c)
 *         rest     the body
 *
 * Invariants: every request is answered exactly once, and a handler that returns without
 * answering has suspended the request; the precheck returns the status it answered with; added
 * headers carry no CR/LF; what reaches the store is validated (ids, tokens, ack ids, the raw
 * body of a stored message is the exact body and valid UTF-8); no long-poll waiter is left in
 * the registry when the request ends. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_api.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fz_quiet_logs();
    fz_api_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_input in = {data, size};
    struct mp_http_request *req = fz_request_parse(&in);
    fz_request_serve(req);
    fz_request_free(req);
    return 0;
}
