/* Unit tests for mp_fcm_build_wakeup: the exact message each platform receives
 * (DESIGN.md, "CONTRACT: what a device receives"), parsed back and checked field by field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "mpcpush/fcm.h"
#include "mpcpush/validate.h"

#define TOKEN                                                                                      \
    "fGx1bV9ZRkmT3Yt0kHqXz9:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx-cygNVqEZ3sTdcGXqVWUD7tLgbNYeJfm_" \
    "dd8kyLjFSN4mgrxzXgK0ouJCsuQtZjL3n7w1vQHkMfTt4gDXoBZsRl2e6cAq8yVbN"
#define NOW 1767225600LL /* 2026-01-01T00:00:00Z */

static struct mp_wakeup base(const char *platform)
{
    struct mp_wakeup w = {.token = TOKEN,
                          .platform = platform,
                          .wallet_id = "wallet-1",
                          .device_id = "device-A",
                          .pending = 3,
                          .latest_id = 9000000001LL,
                          .ttl_seconds = 3600,
                          .now_unix = NOW};
    return w;
}

/* Builds w and returns the parsed body; fails the test when building fails. */
static json_t *build(const struct mp_wakeup *w, size_t *len)
{
    struct mp_buf out;
    mp_buf_init(&out, 0);
    enum mp_result result = mp_fcm_build_wakeup(w, &out);
    if (result)
        fail_msg("mp_fcm_build_wakeup: %s", mp_strerror(result));
    json_error_t err;
    json_t *root = json_loadb(out.data, out.len, 0, &err);
    if (!root)
        fail_msg("not JSON: %s", err.text);
    if (len)
        *len = out.len;
    mp_buf_free(&out);
    return root;
}

static const char *str_at(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        fail_msg("\"%s\" is not a string", key);
    return json_string_value(v);
}

/* The part every platform shares: token and an all-string data block; nothing else but the
 * platform's own block. */
static json_t *check_common(json_t *root, const char *platform_key)
{
    assert_int_equal(json_object_size(root), 1);
    json_t *msg = json_object_get(root, "message");
    assert_true(json_is_object(msg));
    assert_int_equal(json_object_size(msg), 3);
    assert_string_equal(str_at(msg, "token"), TOKEN);
    assert_null(json_object_get(msg, "notification"));
    json_t *data = json_object_get(msg, "data");
    assert_int_equal(json_object_size(data), 5);
    assert_string_equal(str_at(data, "type"), "mpcpush.wakeup");
    assert_string_equal(str_at(data, "walletId"), "wallet-1");
    assert_string_equal(str_at(data, "deviceId"), "device-A");
    assert_string_equal(str_at(data, "pending"), "3");
    assert_string_equal(str_at(data, "latestId"), "9000000001");
    const char *key;
    json_t *value;
    json_object_foreach(data, key, value)
    {
        assert_true(json_is_string(value));
    }
    json_t *block = json_object_get(msg, platform_key);
    assert_true(json_is_object(block));
    return block;
}

static void test_android(void **state)
{
    (void)state;
    struct mp_wakeup w = base("android");
    json_t *root = build(&w, NULL);
    json_t *android = check_common(root, "android");
    assert_int_equal(json_object_size(android), 3);
    assert_string_equal(str_at(android, "priority"), "HIGH");
    assert_string_equal(str_at(android, "ttl"), "3600s");
    assert_string_equal(str_at(android, "collapse_key"), "mpcpush");
    json_decref(root);
}

static void test_ios_background(void **state)
{
    (void)state;
    struct mp_wakeup w = base("ios");
    json_t *root = build(&w, NULL);
    json_t *apns = check_common(root, "apns");
    json_t *headers = json_object_get(apns, "headers");
    assert_int_equal(json_object_size(headers), 4);
    assert_string_equal(str_at(headers, "apns-push-type"), "background");
    assert_string_equal(str_at(headers, "apns-priority"), "5");
    assert_string_equal(str_at(headers, "apns-collapse-id"), "mpcpush");
    assert_string_equal(str_at(headers, "apns-expiration"), "1767229200");
    json_t *aps = json_object_get(json_object_get(apns, "payload"), "aps");
    assert_int_equal(json_object_size(json_object_get(apns, "payload")), 1);
    assert_int_equal(json_object_size(aps), 1);
    assert_true(json_is_integer(json_object_get(aps, "content-available")));
    assert_int_equal(json_integer_value(json_object_get(aps, "content-available")), 1);
    json_decref(root);
}

static void test_ios_alert(void **state)
{
    (void)state;
    struct mp_wakeup w = base("ios");
    w.alert_title = "Wallet";
    w.alert_body = "Approval needed \xe2\x9c\x93"; /* UTF-8 check mark */
    json_t *root = build(&w, NULL);
    json_t *apns = check_common(root, "apns");
    json_t *headers = json_object_get(apns, "headers");
    assert_string_equal(str_at(headers, "apns-push-type"), "alert");
    assert_string_equal(str_at(headers, "apns-priority"), "10");
    assert_string_equal(str_at(headers, "apns-collapse-id"), "mpcpush");
    assert_string_equal(str_at(headers, "apns-expiration"), "1767229200");
    json_t *aps = json_object_get(json_object_get(apns, "payload"), "aps");
    json_t *alert = json_object_get(aps, "alert");
    assert_string_equal(str_at(alert, "title"), "Wallet");
    assert_string_equal(str_at(alert, "body"), "Approval needed \xe2\x9c\x93");
    assert_int_equal(json_integer_value(json_object_get(aps, "mutable-content")), 1);
    assert_null(json_object_get(aps, "content-available"));
    json_decref(root);

    /* one of the two alone keeps the background push */
    w.alert_body = "";
    root = build(&w, NULL);
    headers = json_object_get(json_object_get(json_object_get(root, "message"), "apns"), "headers");
    assert_string_equal(str_at(headers, "apns-push-type"), "background");
    json_decref(root);
}

static void test_web(void **state)
{
    (void)state;
    struct mp_wakeup w = base("web");
    json_t *root = build(&w, NULL);
    json_t *webpush = check_common(root, "webpush");
    json_t *headers = json_object_get(webpush, "headers");
    assert_int_equal(json_object_size(webpush), 1);
    assert_int_equal(json_object_size(headers), 2);
    assert_string_equal(str_at(headers, "TTL"), "3600");
    assert_string_equal(str_at(headers, "Urgency"), "high");
    json_decref(root);
}

static void test_validate_only(void **state)
{
    (void)state;
    struct mp_wakeup w = base("android");
    w.validate_only = true;
    json_t *root = build(&w, NULL);
    assert_int_equal(json_object_size(root), 2);
    assert_true(json_is_true(json_object_get(root, "validate_only")));
    json_decref(root);
}

static void test_ttl_clamped(void **state)
{
    (void)state;
    struct mp_wakeup w = base("android");
    w.ttl_seconds = -50;
    json_t *root = build(&w, NULL);
    json_t *android = json_object_get(json_object_get(root, "message"), "android");
    assert_string_equal(str_at(android, "ttl"), "0s");
    json_decref(root);

    w.ttl_seconds = 99999999;
    root = build(&w, NULL);
    android = json_object_get(json_object_get(root, "message"), "android");
    assert_string_equal(str_at(android, "ttl"), "2419200s");
    json_decref(root);

    w = base("ios");
    w.ttl_seconds = 99999999;
    root = build(&w, NULL);
    json_t *headers =
        json_object_get(json_object_get(json_object_get(root, "message"), "apns"), "headers");
    assert_string_equal(str_at(headers, "apns-expiration"), "1769644800"); /* NOW + 28 days */
    json_decref(root);

    w = base("web");
    w.ttl_seconds = 0;
    root = build(&w, NULL);
    headers =
        json_object_get(json_object_get(json_object_get(root, "message"), "webpush"), "headers");
    assert_string_equal(str_at(headers, "TTL"), "0");
    json_decref(root);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* FCM limits the message to 4096 bytes; the token is not part of that payload. With the
 * longest ids and counters the wakeup stays far below it, whatever the token's length. */
static void test_size(void **state)
{
    (void)state;
    char *id = repeat('w', MP_ID_MAX);
    char *token = repeat('t', MP_TOKEN_MAX);
    const char *platforms[] = {"android", "ios", "web"};
    for (size_t i = 0; i < 3; i++) {
        struct mp_wakeup w = base(platforms[i]);
        w.wallet_id = id;
        w.device_id = id;
        w.pending = 9223372036854775807LL;
        w.latest_id = 9223372036854775807LL;
        w.alert_title = "Wallet";
        w.alert_body = "Approval needed";
        size_t len;
        json_t *root = build(&w, &len);
        assert_true(len < 1024);
        json_decref(root);
        w.token = token;
        root = build(&w, &len);
        assert_true(len - MP_TOKEN_MAX < 1024);
        json_decref(root);
    }
    free(id);
    free(token);
}

static void test_rejects(void **state)
{
    (void)state;
    struct mp_buf out;
    mp_buf_init(&out, 0);
    struct mp_wakeup w;
#define REJECT(field, value, want)                                                                 \
    do {                                                                                           \
        w = base("android");                                                                       \
        w.field = value;                                                                           \
        assert_int_equal(mp_fcm_build_wakeup(&w, &out), want);                                     \
    } while (0)
    REJECT(token, NULL, MP_ERR_INVALID);
    REJECT(token, "", MP_ERR_INVALID);
    REJECT(token, "has space", MP_ERR_INVALID);
    REJECT(platform, "blackberry", MP_ERR_INVALID);
    REJECT(platform, NULL, MP_ERR_INVALID);
    REJECT(wallet_id, "a/b", MP_ERR_INVALID);
    REJECT(device_id, NULL, MP_ERR_INVALID);
    REJECT(pending, -1, MP_ERR_INVALID);
    w = base("ios");
    w.alert_title = "bad \xff utf-8";
    w.alert_body = "x";
    assert_int_equal(mp_fcm_build_wakeup(&w, &out), MP_ERR_INVALID);
    /* a configured alert too large for FCM */
    char *huge = repeat('a', MP_FCM_PAYLOAD_MAX);
    w = base("ios");
    w.alert_title = "t";
    w.alert_body = huge;
    assert_int_equal(mp_fcm_build_wakeup(&w, &out), MP_ERR_TOO_LARGE);
    free(huge);
    assert_int_equal(out.len, 0);
    /* a buffer whose limit is too small is left alone */
    struct mp_buf small;
    mp_buf_init(&small, 64);
    assert_int_equal(mp_buf_puts(&small, "keep"), MP_OK);
    w = base("android");
    assert_int_equal(mp_fcm_build_wakeup(&w, &small), MP_ERR_TOO_LARGE);
    assert_string_equal(small.data, "keep");
    mp_buf_free(&small);
    mp_buf_free(&out);
}

/* The builder replaces what the buffer held. */
static void test_replaces_buffer(void **state)
{
    (void)state;
    struct mp_buf out;
    mp_buf_init(&out, 0);
    assert_int_equal(mp_buf_puts(&out, "old junk"), MP_OK);
    struct mp_wakeup w = base("web");
    assert_int_equal(mp_fcm_build_wakeup(&w, &out), MP_OK);
    assert_int_equal(out.data[0], '{');
    assert_int_equal(strlen(out.data), out.len);
    mp_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_android),
        cmocka_unit_test(test_ios_background),
        cmocka_unit_test(test_ios_alert),
        cmocka_unit_test(test_web),
        cmocka_unit_test(test_validate_only),
        cmocka_unit_test(test_ttl_clamped),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_replaces_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
