/* PUT, GET and DELETE /v1/wallets/{walletId}/devices/{deviceId}. */
#include <string.h>

#include "api/api-int.h"
#include "mpcpush/devices.h"
#include "mpcpush/log.h"
#include "mpcpush/validate.h"

/* Reads the registration body; answers 400 and returns false when a field is wrong. */
static bool parse_registration(struct mp_http_request *req, json_t *body,
                               struct mp_device_input *in)
{
    json_t *token = json_object_get(body, "fcmToken");
    json_t *platform = json_object_get(body, "platform");
    json_t *physical = json_object_get(body, "physicalDeviceId");
    const char *problem = NULL;
    if (!json_is_string(token) ||
        !mp_valid_fcm_token(json_string_value(token), json_string_length(token)))
        problem = "fcmToken must be a string of 1 to 4096 printable characters without spaces";
    else if (!json_is_string(platform) || !mp_valid_platform(json_string_value(platform)))
        problem = "platform must be \"android\", \"ios\" or \"web\"";
    else if (physical && !json_is_null(physical) &&
             (!json_is_string(physical) ||
              !mp_valid_id(json_string_value(physical), json_string_length(physical))))
        problem = "physicalDeviceId must be 1 to 128 characters of A-Z a-z 0-9 . _ : -";
    if (problem) {
        mp_http_reply_error(req, 400, "invalid_request", problem);
        return false;
    }
    in->fcm_token = json_string_value(token);
    in->platform = json_string_value(platform);
    in->physical_device_id = json_is_string(physical) ? json_string_value(physical) : NULL;
    return true;
}

static void reply_state(struct mp_http_request *req, PGconn *conn,
                        const struct mp_route_params *params, int status)
{
    json_t *state = NULL;
    enum mp_result result = mp_devices_get(conn, params->wallet_id, params->device_id, &state);
    if (result == MP_ERR_NOT_FOUND)
        mp_http_reply_error(req, 404, "device_not_found", "no such device");
    else if (result)
        mp_api_reply_result(req, result);
    else
        mp_http_reply_json(req, status, state);
}

void mp_api_device_put(struct mp_http_request *req, struct mp_api *api,
                       const struct mp_route_params *params)
{
    if (!mp_api_check_ids(req, params))
        return;
    json_t *body = mp_api_body_object(req);
    struct mp_device_input in = {.wallet_id = params->wallet_id, .device_id = params->device_id};
    if (!body || !parse_registration(req, body, &in)) {
        json_decref(body);
        return;
    }
    PGconn *conn = mp_api_db(req, api);
    if (conn) {
        bool created = false;
        enum mp_result result = mp_devices_put(conn, &in, &created);
        if (result) {
            mp_api_reply_result(req, result);
        } else {
            char token[32];
            MP_INFO("device_registered",
                    "request_id=%s wallet=%s device=%s platform=%s token=%s "
                    "created=%s",
                    mp_http_request_id(req), params->wallet_id, params->device_id, in.platform,
                    mp_log_redact(token, sizeof(token), in.fcm_token), created ? "true" : "false");
            reply_state(req, conn, params, created ? 201 : 200);
        }
        mp_db_pool_put(api->pool, conn);
    }
    json_decref(body);
}

void mp_api_device_get(struct mp_http_request *req, struct mp_api *api,
                       const struct mp_route_params *params)
{
    if (!mp_api_check_ids(req, params))
        return;
    PGconn *conn = mp_api_db(req, api);
    if (!conn)
        return;
    reply_state(req, conn, params, 200);
    mp_db_pool_put(api->pool, conn);
}

void mp_api_device_delete(struct mp_http_request *req, struct mp_api *api,
                          const struct mp_route_params *params)
{
    if (!mp_api_check_ids(req, params))
        return;
    PGconn *conn = mp_api_db(req, api);
    if (!conn)
        return;
    enum mp_result result = mp_devices_delete(conn, params->wallet_id, params->device_id);
    mp_db_pool_put(api->pool, conn);
    if (result == MP_ERR_NOT_FOUND) {
        mp_http_reply_error(req, 404, "device_not_found", "no such device");
        return;
    }
    if (!result)
        MP_INFO("device_deleted", "request_id=%s wallet=%s device=%s", mp_http_request_id(req),
                params->wallet_id, params->device_id);
    mp_api_reply_result(req, result);
}
