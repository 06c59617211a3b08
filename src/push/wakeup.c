/* The wakeup message: one data-only FCM message per device and dispatch, never the payload
 * (DESIGN.md, "CONTRACT: what a device receives"). The app, once awake, fetches its pending
 * messages over the API. */
#include "mpcpush/fcm.h"

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

static long long clamp_ttl(long long ttl)
{
    if (ttl < 0)
        return 0;
    return ttl > MP_FCM_TTL_MAX ? MP_FCM_TTL_MAX : ttl;
}

/* Appends "key":"value" and a comma. */
static enum mp_result field(struct mp_buf *b, const char *key, const char *value)
{
    enum mp_result result = mp_buf_printf(b, "\"%s\":", key);
    if (!result)
        result = mp_buf_json_string(b, value);
    return result ? result : mp_buf_puts(b, ",");
}

/* "data":{...}: every value a string, as FCM requires of data messages. */
static enum mp_result data_block(struct mp_buf *b, const struct mp_wakeup *w)
{
    enum mp_result result = mp_buf_puts(b, "\"data\":{\"type\":\"mpcpush.wakeup\",");
    if (!result)
        result = field(b, "walletId", w->wallet_id);
    if (!result)
        result = field(b, "deviceId", w->device_id);
    return result ? result
                  : mp_buf_printf(b, "\"pending\":\"%lld\",\"latestId\":\"%lld\"}", w->pending,
                                  w->latest_id);
}

static enum mp_result apns_block(struct mp_buf *b, const struct mp_wakeup *w, long long ttl)
{
    long long now = w->now_unix ? w->now_unix : (long long)time(NULL);
    bool alert = has_text(w->alert_title) && has_text(w->alert_body);
    enum mp_result result =
        mp_buf_printf(b,
                      "\"apns\":{\"headers\":{\"apns-push-type\":\"%s\",\"apns-priority\":\"%s\","
                      "\"apns-collapse-id\":\"" MP_FCM_COLLAPSE "\",\"apns-expiration\":\"%lld\"},"
                      "\"payload\":{\"aps\":{",
                      alert ? "alert" : "background", alert ? "10" : "5", now + ttl);
    if (!alert)
        return result ? result : mp_buf_puts(b, "\"content-available\":1}}}");
    if (!result)
        result = mp_buf_puts(b, "\"alert\":{");
    if (!result)
        result = field(b, "title", w->alert_title);
    if (!result)
        result = mp_buf_puts(b, "\"body\":");
    if (!result)
        result = mp_buf_json_string(b, w->alert_body);
    return result ? result : mp_buf_puts(b, "},\"mutable-content\":1}}}");
}

/* The platform's block: "android", "apns" or "webpush". */
static enum mp_result platform_block(struct mp_buf *b, const struct mp_wakeup *w)
{
    long long ttl = clamp_ttl(w->ttl_seconds);
    if (strcmp(w->platform, "android") == 0)
        return mp_buf_printf(b,
                             "\"android\":{\"priority\":\"HIGH\",\"ttl\":\"%llds\","
                             "\"collapse_key\":\"" MP_FCM_COLLAPSE "\"}",
                             ttl);
    if (strcmp(w->platform, "ios") == 0)
        return apns_block(b, w, ttl);
    return mp_buf_printf(b, "\"webpush\":{\"headers\":{\"TTL\":\"%lld\",\"Urgency\":\"high\"}}",
                         ttl);
}

/* Builds in a buffer of its own, so that out is left alone on failure. */
enum mp_result mp_fcm_build_wakeup(const struct mp_wakeup *w, struct mp_buf *out)
{
    if (!valid_wakeup(w) || (has_text(w->alert_title) && !mp_valid_utf8(w->alert_title)) ||
        (has_text(w->alert_body) && !mp_valid_utf8(w->alert_body)))
        return MP_ERR_INVALID;
    struct mp_buf b;
    mp_buf_init(&b, out->limit);
    enum mp_result result = mp_buf_puts(&b, "{\"message\":{");
    if (!result)
        result = field(&b, "token", w->token);
    if (!result)
        result = data_block(&b, w);
    if (!result)
        result = mp_buf_puts(&b, ",");
    if (!result)
        result = platform_block(&b, w);
    if (!result)
        result = mp_buf_puts(&b, w->validate_only ? "},\"validate_only\":true}" : "}}");
    if (!result && b.len - strlen(w->token) > MP_FCM_PAYLOAD_MAX)
        result = MP_ERR_TOO_LARGE;
    if (result) {
        mp_buf_free(&b);
        return result;
    }
    mp_buf_free(out);
    *out = b;
    return MP_OK;
}
