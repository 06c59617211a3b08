/* The wakeup message: one data-only FCM message per device and dispatch, never the payload
 * (DESIGN.md, "CONTRACT: what a device receives"). The app, once awake, fetches its pending
 * messages over the API. */
#include "mpcpush/fcm.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpcpush/validate.h"

static bool has_text(const char *s)
{
    return s && s[0];
}

static bool valid_wakeup(const struct mp_wakeup *w)
{
    return w->token && mp_valid_fcm_token(w->token, strlen(w->token)) &&
           mp_valid_platform(w->platform) && w->wallet_id &&
           mp_valid_id(w->wallet_id, strlen(w->wallet_id)) && w->device_id &&
           mp_valid_id(w->device_id, strlen(w->device_id)) && w->pending >= 0 && w->latest_id >= 0;
}

static bool valid_utf8(const char *s)
{
    json_t *probe = json_string(s);
    json_decref(probe);
    return probe != NULL;
}

static long long clamp_ttl(long long ttl)
{
    if (ttl < 0)
        return 0;
    return ttl > MP_FCM_TTL_MAX ? MP_FCM_TTL_MAX : ttl;
}

static json_t *data_block(const struct mp_wakeup *w)
{
    char pending[24], latest[24];
    snprintf(pending, sizeof(pending), "%lld", w->pending);
    snprintf(latest, sizeof(latest), "%lld", w->latest_id);
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "mpcpush.wakeup", "walletId",
                     w->wallet_id, "deviceId", w->device_id, "pending", pending, "latestId",
                     latest);
}

static json_t *apns_block(const struct mp_wakeup *w, long long ttl)
{
    char expiration[24];
    long long now = w->now_unix ? w->now_unix : (long long)time(NULL);
    snprintf(expiration, sizeof(expiration), "%lld", now + ttl);
    if (has_text(w->alert_title) && has_text(w->alert_body))
        return json_pack("{s:{s:s, s:s, s:s, s:s}, s:{s:{s:{s:s, s:s}, s:i}}}", "headers",
                         "apns-push-type", "alert", "apns-priority", "10", "apns-collapse-id",
                         MP_FCM_COLLAPSE, "apns-expiration", expiration, "payload", "aps", "alert",
                         "title", w->alert_title, "body", w->alert_body, "mutable-content", 1);
    return json_pack("{s:{s:s, s:s, s:s, s:s}, s:{s:{s:i}}}", "headers", "apns-push-type",
                     "background", "apns-priority", "5", "apns-collapse-id", MP_FCM_COLLAPSE,
                     "apns-expiration", expiration, "payload", "aps", "content-available", 1);
}

/* Adds the platform's block ("android", "apns" or "webpush") to message. */
static int add_platform(json_t *message, const struct mp_wakeup *w)
{
    long long ttl = clamp_ttl(w->ttl_seconds);
    char text[24];
    if (strcmp(w->platform, "android") == 0) {
        snprintf(text, sizeof(text), "%llds", ttl);
        return json_object_set_new(message, "android",
                                   json_pack("{s:s, s:s, s:s}", "priority", "HIGH", "ttl", text,
                                             "collapse_key", MP_FCM_COLLAPSE));
    }
    if (strcmp(w->platform, "ios") == 0)
        return json_object_set_new(message, "apns", apns_block(w, ttl));
    snprintf(text, sizeof(text), "%lld", ttl);
    return json_object_set_new(
        message, "webpush", json_pack("{s:{s:s, s:s}}", "headers", "TTL", text, "Urgency", "high"));
}

static json_t *request_json(const struct mp_wakeup *w)
{
    json_t *message = json_pack("{s:s, s:o}", "token", w->token, "data", data_block(w));
    if (!message || add_platform(message, w) != 0) {
        json_decref(message);
        return NULL;
    }
    json_t *root = json_pack("{s:o}", "message", message);
    if (root && w->validate_only && json_object_set_new(root, "validate_only", json_true())) {
        json_decref(root);
        return NULL;
    }
    return root;
}

enum mp_result mp_fcm_build_wakeup(const struct mp_wakeup *w, struct mp_buf *out)
{
    enum mp_result result = MP_OK;
    json_t *root = NULL;
    char *text = NULL;
    if (!valid_wakeup(w) || (has_text(w->alert_title) && !valid_utf8(w->alert_title)) ||
        (has_text(w->alert_body) && !valid_utf8(w->alert_body))) {
        result = MP_ERR_INVALID;
        goto out;
    }
    root = request_json(w);
    text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    if (!text) {
        result = MP_ERR_NOMEM;
        goto out;
    }
    size_t len = strlen(text);
    if (len - strlen(w->token) > MP_FCM_PAYLOAD_MAX || len > out->limit) {
        result = MP_ERR_TOO_LARGE;
        goto out;
    }
    mp_buf_reset(out);
    result = mp_buf_append(out, text, len);
out:
    free(text);
    json_decref(root);
    return result;
}
