/* Helpers shared by the handlers. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "api/api-int.h"
#include "mpcpush/validate.h"

json_t *mp_api_body_object(struct mp_http_request *req)
{
    size_t len;
    const char *body = mp_http_body(req, &len);
    json_error_t error;
    /* The body is stored as a C string, and jansson 2.14 accepts a NUL byte after a literal
     * ({"a":true<NUL>}): a body holding a NUL is not JSON. */
    if (memchr(body, '\0', len)) {
        mp_http_reply_error(req, 400, "malformed_json", "the body is not valid JSON: NUL byte");
        return NULL;
    }
    json_t *json = json_loadb(body, len, JSON_REJECT_DUPLICATES, &error);
    if (!json) {
        char message[200];
        snprintf(message, sizeof(message), "the body is not valid JSON: %s", error.text);
        mp_http_reply_error(req, 400, "malformed_json", message);
        return NULL;
    }
    if (!json_is_object(json)) {
        json_decref(json);
        mp_http_reply_error(req, 400, "malformed_json", "the body must be a JSON object");
        return NULL;
    }
    return json;
}

void mp_api_reply_result(struct mp_http_request *req, enum mp_result result)
{
    switch (result) {
    case MP_OK:
        mp_http_reply_json(req, 204, NULL);
        break;
    case MP_ERR_DB:
    case MP_ERR_TIMEOUT:
    case MP_ERR_UNAVAILABLE:
        mp_http_add_header(req, "Retry-After", "1");
        mp_http_reply_error(req, 503, "storage_unavailable", "the database is unavailable");
        break;
    case MP_ERR_NOMEM:
        mp_http_reply_error(req, 503, "out_of_memory", "the server is out of memory");
        break;
    case MP_ERR_NOT_FOUND:
        mp_http_reply_error(req, 404, "not_found", "not found");
        break;
    case MP_ERR_INVALID:
        mp_http_reply_error(req, 400, "invalid_request", "invalid request");
        break;
    default:
        mp_http_reply_error(req, 500, "internal", mp_strerror(result));
        break;
    }
}

bool mp_api_check_ids(struct mp_http_request *req, const struct mp_route_params *params)
{
    if (!mp_valid_id(params->wallet_id, strlen(params->wallet_id))) {
        mp_http_reply_error(req, 400, "invalid_request",
                            "walletId must be 1 to 128 characters of A-Z a-z 0-9 . _ : -");
        return false;
    }
    if (params->device_id[0] && !mp_valid_id(params->device_id, strlen(params->device_id))) {
        mp_http_reply_error(req, 400, "invalid_request",
                            "deviceId must be 1 to 128 characters of A-Z a-z 0-9 . _ : -");
        return false;
    }
    return true;
}

PGconn *mp_api_db(struct mp_http_request *req, struct mp_api *api)
{
    PGconn *conn = NULL;
    enum mp_result result = mp_db_pool_get(api->pool, 5000, &conn);
    if (result) {
        mp_api_reply_result(req, MP_ERR_DB);
        return NULL;
    }
    return conn;
}

static void pending_free(void *arg)
{
    struct mp_api_pending *pending = arg;
    if (pending->extra_free)
        pending->extra_free(pending->extra);
    for (size_t i = 0; i < sizeof(pending->owned) / sizeof(pending->owned[0]); i++)
        free(pending->owned[i]);
    free(pending->job.messages_json);
    free(pending);
}

struct mp_api_pending *mp_api_pending_new(struct mp_http_request *req)
{
    struct mp_api_pending *pending = calloc(1, sizeof(*pending));
    if (!pending) {
        mp_api_reply_result(req, MP_ERR_NOMEM);
        return NULL;
    }
    pending->req = req;
    mp_http_set_state(req, pending, pending_free);
    return pending;
}

static void pending_done(struct mp_ingest_job *job, void *arg)
{
    struct mp_api_pending *pending = arg;
    atomic_store(&pending->done, 1);
    mp_http_resume(pending->req);
}

void mp_api_pending_submit(struct mp_api *api, struct mp_api_pending *pending)
{
    pending->job.done = pending_done;
    pending->job.done_arg = pending;
    mp_http_suspend(pending->req);
    mp_ingest_submit(api->ingest, &pending->job);
}
