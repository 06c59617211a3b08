/* POST /v1/wallets/{w}/devices/{d}/messages and POST /v1/wallets/{w}/messages: enqueue a
 * message through the group-commit writer; answered once it has committed. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api-int.h"
#include "mpcpush/log.h"

/* Reads {"payload":..., "ttlSeconds":N} into the job; answers 400 and returns false on error. */
static bool parse_message(struct mp_http_request *req, struct mp_api *api, json_t *body,
                          struct mp_api_pending *pending)
{
    json_t *payload = json_object_get(body, "payload");
    json_t *ttl = json_object_get(body, "ttlSeconds");
    char problem[160] = "";
    if (!payload || json_is_null(payload))
        snprintf(problem, sizeof(problem), "payload is required (any JSON value but null)");
    else if (ttl && (!json_is_integer(ttl) || json_integer_value(ttl) < 1 ||
                     json_integer_value(ttl) > api->cfg->max_message_ttl))
        snprintf(problem, sizeof(problem), "ttlSeconds must be an integer from 1 to %d",
                 api->cfg->max_message_ttl);
    if (problem[0]) {
        mp_http_reply_error(req, 400, "invalid_request", problem);
        return false;
    }
    size_t len;
    /* the payload is stored exactly as sent: the database takes it from the raw body */
    pending->job.raw_body = mp_http_body(req, &len);
    pending->job.payload_path = "{payload}";
    pending->job.ttl_seconds = ttl ? (int)json_integer_value(ttl) : api->cfg->message_ttl;
    return true;
}

/* First pass: validate and hand the message to the writer. */
static void enqueue(struct mp_http_request *req, struct mp_api *api,
                    const struct mp_route_params *params, enum mp_ingest_kind kind)
{
    if (!mp_api_check_ids(req, params))
        return;
    json_t *body = mp_api_body_object(req);
    if (!body)
        return;
    struct mp_api_pending *pending = mp_api_pending_new(req);
    if (!pending || !parse_message(req, api, body, pending)) {
        json_decref(body);
        return;
    }
    json_decref(body);
    pending->owned[1] = strdup(params->wallet_id);
    pending->owned[2] = strdup(params->device_id);
    if (!pending->owned[1] || !pending->owned[2]) {
        mp_api_reply_result(req, MP_ERR_NOMEM);
        return;
    }
    pending->job.kind = kind;
    pending->job.wallet_id = pending->owned[1];
    pending->job.device_id = kind == MP_INGEST_API_DEVICE ? pending->owned[2] : NULL;
    mp_api_pending_submit(api, pending);
}

/* Second pass, after the writer committed: answer. */
static void answer(struct mp_http_request *req, struct mp_api_pending *pending)
{
    struct mp_ingest_job *job = &pending->job;
    if (job->result == MP_ERR_NOT_FOUND) {
        if (job->kind == MP_INGEST_API_DEVICE)
            mp_http_reply_error(req, 404, "device_not_found", "no such device");
        else
            mp_http_reply_error(req, 404, "wallet_not_found", "the wallet has no devices");
        return;
    }
    json_t *made = job->result ? NULL : json_loads(job->messages_json, 0, NULL);
    if (!made) {
        mp_api_reply_result(req, job->result ? job->result : MP_ERR_INTERNAL);
        return;
    }
    MP_DEBUG("message_stored", "request_id=%s wallet=%s count=%zu", mp_http_request_id(req),
             job->wallet_id, json_array_size(made));
    if (job->kind == MP_INGEST_API_WALLET) {
        mp_http_reply_json(req, 201, json_pack("{s:o}", "messages", made));
        return;
    }
    json_t *first = json_array_get(made, 0);
    json_object_del(first, "deviceId");
    mp_http_reply_json(req, 201, json_incref(first));
    json_decref(made);
}

static void handle(struct mp_http_request *req, struct mp_api *api,
                   const struct mp_route_params *params, enum mp_ingest_kind kind)
{
    struct mp_api_pending *pending = mp_http_state(req);
    if (!pending)
        enqueue(req, api, params, kind);
    else if (atomic_load(&pending->done))
        answer(req, pending);
}

void mp_api_message_post(struct mp_http_request *req, struct mp_api *api,
                         const struct mp_route_params *params)
{
    handle(req, api, params, MP_INGEST_API_DEVICE);
}

void mp_api_wallet_message_post(struct mp_http_request *req, struct mp_api *api,
                                const struct mp_route_params *params)
{
    handle(req, api, params, MP_INGEST_API_WALLET);
}
