/* /v1 authentication and the device resource: PUT (register, refresh, token replacement and
 * status), GET (the state, never the token), DELETE (with its messages and push row), and
 * validation of bodies and path ids. */
#define _GNU_SOURCE
#include "harness_extra.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char TOKEN[] = "fcm-token-AAAA:APA91bH-long-registration-token_123456";

static void put_device(struct th_response *r, const struct tx_env *e, const char *wallet,
                       const char *device, const char *body)
{
    char path[512];
    snprintf(path, sizeof(path), "/v1/wallets/%s/devices/%s", wallet, device);
    tx_api(r, e, "PUT", path, body);
}

static void get_device(struct th_response *r, const struct tx_env *e, const char *wallet,
                       const char *device)
{
    char path[512];
    snprintf(path, sizeof(path), "/v1/wallets/%s/devices/%s", wallet, device);
    tx_api(r, e, "GET", path, NULL);
}

static const char *str_field(const json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    if (!json_is_string(v))
        fail_msg("field %s is not a string in %s", name, json_dumps(obj, 0));
    return json_string_value(v);
}

/* Checks the device state answer. phys and reason may be NULL (then null is expected). */
static void check_state(const struct th_response *r, const char *wallet, const char *device,
                        const char *phys, const char *platform, const char *token,
                        const char *status, const char *reason, long pending)
{
    const json_t *j = r->json;
    if (!json_is_object(j))
        fail_msg("device state is not a JSON object: %s", r->body);
    assert_string_equal(str_field(j, "walletId"), wallet);
    assert_string_equal(str_field(j, "deviceId"), device);
    if (phys)
        assert_string_equal(str_field(j, "physicalDeviceId"), phys);
    else if (!json_is_null(json_object_get(j, "physicalDeviceId")))
        fail_msg("physicalDeviceId should be null: %s", r->body);
    assert_string_equal(str_field(j, "platform"), platform);
    size_t len = strlen(token);
    assert_string_equal(str_field(j, "tokenSuffix"), token + (len > 6 ? len - 6 : 0));
    assert_string_equal(str_field(j, "tokenStatus"), status);
    if (reason)
        assert_string_equal(str_field(j, "tokenInvalidReason"), reason);
    else if (!json_is_null(json_object_get(j, "tokenInvalidReason")))
        fail_msg("tokenInvalidReason should be null: %s", r->body);
    tx_assert_iso_utc(str_field(j, "registeredAt"));
    tx_assert_iso_utc(str_field(j, "refreshedAt"));
    json_t *last = json_object_get(j, "lastPushAt");
    if (!json_is_null(last) && !json_is_string(last))
        fail_msg("lastPushAt should be null or a string: %s", r->body);
    json_t *p = json_object_get(j, "pendingMessages");
    if (!json_is_integer(p) || json_integer_value(p) != pending)
        fail_msg("pendingMessages should be %ld: %s", pending, r->body);
    if (len > 6 && strstr(r->body, token))
        fail_msg("the full token was returned: %s", r->body);
}

static void test_auth_required(void **state)
{
    struct tx_env *e = *state;
    struct tx_counts before;
    tx_counts(e->db, &before);
    char url[256], wrong[300], basic[300], trailing[300];
    snprintf(url, sizeof(url), "%s/v1/wallets/w/devices/d", e->proc.base);
    snprintf(wrong, sizeof(wrong), "Authorization: Bearer mpk_%s", "x0000000000000000000000000");
    snprintf(basic, sizeof(basic), "Authorization: Basic %s", e->apikey);
    snprintf(trailing, sizeof(trailing), "%sX", e->auth);
    const char *auths[] = {
        NULL, wrong, basic, trailing, "Authorization: Bearer ", "Authorization: Bearer"};
    const char *body = "{\"fcmToken\":\"abcdefgh\",\"platform\":\"ios\"}";
    const char *methods[] = {"PUT", "GET", "DELETE"};
    for (size_t a = 0; a < sizeof(auths) / sizeof(auths[0]); a++) {
        for (size_t m = 0; m < 3; m++) {
            const char *headers[] = {"Content-Type: application/json", auths[a], NULL};
            const char *b = strcmp(methods[m], "PUT") == 0 ? body : NULL;
            struct th_response r;
            th_http(&r, methods[m], url, headers, b, b ? strlen(b) : 0);
            if (r.status != 401 || strcmp(th_error_code(&r), "unauthorized") != 0)
                fail_msg("%s with auth [%s]: want 401 unauthorized, got %ld %s", methods[m],
                         auths[a] ? auths[a] : "none", r.status, r.body);
            tx_assert_error(&r, 401, "unauthorized");
            th_response_free(&r);
        }
    }
    /* Messages endpoints too. */
    const char *msg = "{\"payload\":{\"a\":1}}";
    const char *paths[] = {"/v1/wallets/w/devices/d/messages", "/v1/wallets/w/messages"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(url, sizeof(url), "%s%s", e->proc.base, paths[i]);
        const char *headers[] = {"Content-Type: application/json", NULL};
        struct th_response r;
        th_http(&r, "POST", url, headers, msg, strlen(msg));
        tx_assert_error(&r, 401, "unauthorized");
        th_response_free(&r);
    }
    tx_assert_counts(e->db, &before);
    /* The real key works. */
    struct th_response r;
    get_device(&r, e, "w", "d");
    tx_assert_error(&r, 404, "device_not_found");
    th_response_free(&r);
}

static void test_register_and_get(void **state)
{
    struct tx_env *e = *state;
    char body[512];
    snprintf(body, sizeof(body),
             "{\"fcmToken\":\"%s\",\"platform\":\"android\",\"physicalDeviceId\":\"phys-9\"}",
             TOKEN);
    struct th_response put, get;
    put_device(&put, e, "wallet-1", "device-1", body);
    tx_assert_status(&put, 201);
    check_state(&put, "wallet-1", "device-1", "phys-9", "android", TOKEN, "active", NULL, 0);
    assert_true(json_is_null(json_object_get(put.json, "lastPushAt")));
    get_device(&get, e, "wallet-1", "device-1");
    tx_assert_status(&get, 200);
    check_state(&get, "wallet-1", "device-1", "phys-9", "android", TOKEN, "active", NULL, 0);
    if (!json_equal(put.json, get.json))
        fail_msg("PUT answer differs from GET: %s vs %s", put.body, get.body);
    assert_true(strncmp(get.content_type, "application/json", 16) == 0);
    /* registeredAt is about now. */
    char *lit = tx_lit(str_field(get.json, "registeredAt"));
    long age =
        tx_sql_longf(e->db, "SELECT extract(epoch FROM now() - %s::timestamptz)::bigint", lit);
    if (age < -5 || age > 60)
        fail_msg("registeredAt is %ld s from now", age);
    /* The database row. */
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.devices WHERE wallet_id ="
                                        " 'wallet-1' AND device_id = 'device-1' AND platform ="
                                        " 'android' AND physical_device_id = 'phys-9' AND"
                                        " token_status = 'active'"),
                     1);
    char *stored = th_sql_text(e->db, "SELECT fcm_token FROM mpcpush.devices");
    assert_string_equal(stored, TOKEN);
    th_response_free(&put);
    /* Without physicalDeviceId, other platforms, unknown fields ignored. */
    put_device(&put, e, "wallet-1", "device-2",
               "{\"fcmToken\":\"tok-ios-123456\",\"platform\":\"ios\",\"extra\":{\"x\":1}}");
    tx_assert_status(&put, 201);
    check_state(&put, "wallet-1", "device-2", NULL, "ios", "tok-ios-123456", "active", NULL, 0);
    th_response_free(&put);
    put_device(&put, e, "wallet-1", "device-3",
               "{\"fcmToken\":\"tok-web-abcdef\",\"platform\":\"web\"}");
    tx_assert_status(&put, 201);
    check_state(&put, "wallet-1", "device-3", NULL, "web", "tok-web-abcdef", "active", NULL, 0);
    th_response_free(&put);
    th_response_free(&get);
    free(stored);
    free(lit);
}

static void test_refresh_and_replace_token(void **state)
{
    struct tx_env *e = *state;
    struct th_response r;
    put_device(&r, e, "w", "d", "{\"fcmToken\":\"first-token-111111\",\"platform\":\"android\"}");
    tx_assert_status(&r, 201);
    char *registered = strdup(str_field(r.json, "registeredAt"));
    th_response_free(&r);
    sleep(1);
    /* Refresh with the same token: 200, registeredAt kept, refreshedAt later. */
    put_device(&r, e, "w", "d",
               "{\"fcmToken\":\"first-token-111111\",\"platform\":\"android\","
               "\"physicalDeviceId\":\"p2\"}");
    tx_assert_status(&r, 200);
    check_state(&r, "w", "d", "p2", "android", "first-token-111111", "active", NULL, 0);
    assert_string_equal(str_field(r.json, "registeredAt"), registered);
    char *a = tx_lit(str_field(r.json, "refreshedAt")), *b = tx_lit(registered);
    assert_int_equal(tx_sql_longf(e->db, "SELECT (%s::timestamptz > %s::timestamptz)::int", a, b),
                     1);
    th_response_free(&r);
    /* A new token replaces the old one. */
    put_device(&r, e, "w", "d", "{\"fcmToken\":\"second-token-222222\",\"platform\":\"ios\"}");
    tx_assert_status(&r, 200);
    check_state(&r, "w", "d", NULL, "ios", "second-token-222222", "active", NULL, 0);
    th_response_free(&r);
    char *stored = th_sql_text(e->db, "SELECT fcm_token FROM mpcpush.devices");
    assert_string_equal(stored, "second-token-222222");
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.devices"), 1);
    free(stored);
    free(registered);
    free(a);
    free(b);
}

static void test_invalid_token_status(void **state)
{
    struct tx_env *e = *state;
    struct th_response r;
    put_device(&r, e, "w", "d", "{\"fcmToken\":\"dead-token-999999\",\"platform\":\"android\"}");
    tx_assert_status(&r, 201);
    th_response_free(&r);
    th_sql_exec(e->db, "UPDATE mpcpush.devices SET token_status = 'invalid',"
                       " token_invalid_reason = 'UNREGISTERED', token_invalidated_at = now()");
    get_device(&r, e, "w", "d");
    tx_assert_status(&r, 200);
    check_state(&r, "w", "d", NULL, "android", "dead-token-999999", "invalid", "UNREGISTERED", 0);
    th_response_free(&r);
    /* Repeating the invalid token keeps it invalid. */
    put_device(&r, e, "w", "d", "{\"fcmToken\":\"dead-token-999999\",\"platform\":\"android\"}");
    tx_assert_status(&r, 200);
    check_state(&r, "w", "d", NULL, "android", "dead-token-999999", "invalid", "UNREGISTERED", 0);
    th_response_free(&r);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.devices WHERE"
                                        " token_status = 'invalid'"),
                     1);
    /* A new token makes it active again and clears the reason. */
    put_device(&r, e, "w", "d", "{\"fcmToken\":\"fresh-token-777777\",\"platform\":\"android\"}");
    tx_assert_status(&r, 200);
    check_state(&r, "w", "d", NULL, "android", "fresh-token-777777", "active", NULL, 0);
    th_response_free(&r);
    assert_int_equal(th_sql_long(e->db,
                                 "SELECT count(*) FROM mpcpush.devices WHERE"
                                 " token_status = 'active' AND token_invalid_reason IS NULL"),
                     1);
}

static void expect_put_error(const struct tx_env *e, const char *wallet, const char *device,
                             const char *body, long status, const char *code)
{
    struct tx_counts before;
    tx_counts(e->db, &before);
    struct th_response r;
    put_device(&r, e, wallet, device, body);
    if (r.status != status || strcmp(th_error_code(&r), code) != 0)
        fail_msg("PUT /v1/wallets/%s/devices/%s %.200s: want %ld %s, got %ld %s", wallet, device,
                 body, status, code, r.status, r.body);
    tx_assert_error(&r, status, code);
    th_response_free(&r);
    tx_assert_counts(e->db, &before);
}

static void test_body_validation(void **state)
{
    struct tx_env *e = *state;
    char *long_token = malloc(4200), *body = NULL;
    memset(long_token, 'a', 4097);
    long_token[4097] = '\0';
    const char *invalid[] = {
        "{}",
        "{\"platform\":\"android\"}",
        "{\"fcmToken\":\"abcdefgh\"}",
        "{\"fcmToken\":\"\",\"platform\":\"android\"}",
        "{\"fcmToken\":\"abc defgh\",\"platform\":\"android\"}",
        "{\"fcmToken\":\"abc\\tdefgh\",\"platform\":\"android\"}",
        "{\"fcmToken\":\"abc\\u00e9defgh\",\"platform\":\"android\"}",
        "{\"fcmToken\":12345678,\"platform\":\"android\"}",
        "{\"fcmToken\":null,\"platform\":\"android\"}",
        "{\"fcmToken\":[\"abcdefgh\"],\"platform\":\"android\"}",
        "{\"fcmToken\":\"abcdefgh\",\"platform\":\"windows\"}",
        "{\"fcmToken\":\"abcdefgh\",\"platform\":\"Android\"}",
        "{\"fcmToken\":\"abcdefgh\",\"platform\":\"\"}",
        "{\"fcmToken\":\"abcdefgh\",\"platform\":1}",
        "{\"fcmToken\":\"abcdefgh\",\"platform\":\"ios\",\"physicalDeviceId\":42}",
        "{\"fcmToken\":\"abcdefgh\",\"platform\":\"ios\",\"physicalDeviceId\":{\"a\":1}}",
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        expect_put_error(e, "w", "d", invalid[i], 400, "invalid_request");
    if (asprintf(&body, "{\"fcmToken\":\"%s\",\"platform\":\"android\"}", long_token) < 0)
        fail_msg("out of memory");
    expect_put_error(e, "w", "d", body, 400, "invalid_request");
    /* A NUL inside the token: valid JSON, invalid token (a parser refusing \u0000 may call it
     * malformed_json); either way a 400 and nothing stored. */
    struct tx_counts before;
    tx_counts(e->db, &before);
    struct th_response nul;
    put_device(&nul, e, "w", "d", "{\"fcmToken\":\"abc\\u0000defgh\",\"platform\":\"ios\"}");
    if (nul.status != 400)
        fail_msg("token with \\u0000: want 400, got %ld %s", nul.status, nul.body);
    th_response_free(&nul);
    tx_assert_counts(e->db, &before);
    const char *malformed[] = {"{",     "not json", "[]",   "[{\"fcmToken\":\"abcdefgh\"}]",
                               "\"x\"", "42",       "null", "{\"fcmToken\":\"abcdefgh\",}"};
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
        expect_put_error(e, "w", "d", malformed[i], 400, "malformed_json");
    /* The largest token is accepted. */
    free(body);
    long_token[4096] = '\0';
    if (asprintf(&body, "{\"fcmToken\":\"%s\",\"platform\":\"android\"}", long_token) < 0)
        fail_msg("out of memory");
    struct th_response r;
    put_device(&r, e, "w", "d", body);
    tx_assert_status(&r, 201);
    check_state(&r, "w", "d", NULL, "android", long_token, "active", NULL, 0);
    th_response_free(&r);
    assert_int_equal(th_sql_long(e->db, "SELECT length(fcm_token) FROM mpcpush.devices"), 4096);
    free(body);
    free(long_token);
}

static void test_path_ids(void **state)
{
    struct tx_env *e = *state;
    const char *body = "{\"fcmToken\":\"abcdefgh\",\"platform\":\"android\"}";
    char id128[129], id129[130];
    memset(id128, 'x', 128);
    id128[128] = '\0';
    memset(id129, 'y', 129);
    id129[129] = '\0';
    const char *bad[] = {id129,       "bad!id",   "w%20x",   "semi;colon",
                         "caf%C3%A9", "quote%22", "tab%09x", "dollar$"};
    struct tx_counts before;
    tx_counts(e->db, &before);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (int which = 0; which < 2; which++) {
            const char *w = which ? "good" : bad[i], *d = which ? bad[i] : "good";
            expect_put_error(e, w, d, body, 400, "invalid_request");
            char path[512];
            snprintf(path, sizeof(path), "/v1/wallets/%s/devices/%s", w, d);
            const char *methods[] = {"GET", "DELETE"};
            for (int m = 0; m < 2; m++) {
                struct th_response r;
                tx_api(&r, e, methods[m], path, NULL);
                if (r.status != 400 || strcmp(th_error_code(&r), "invalid_request") != 0)
                    fail_msg("%s %s: want 400 invalid_request, got %ld %s", methods[m], path,
                             r.status, r.body);
                th_response_free(&r);
            }
        }
    }
    tx_assert_counts(e->db, &before);
    /* The widest allowed alphabet and the longest ids are fine. */
    struct th_response r;
    put_device(&r, e, id128, id128, body);
    tx_assert_status(&r, 201);
    th_response_free(&r);
    put_device(&r, e, "A-z_0.9:x", "b:C-d_e.F", body);
    tx_assert_status(&r, 201);
    check_state(&r, "A-z_0.9:x", "b:C-d_e.F", NULL, "android", "abcdefgh", "active", NULL, 0);
    th_response_free(&r);
    get_device(&r, e, id128, id128);
    tx_assert_status(&r, 200);
    th_response_free(&r);
}

/* A percent-encoded NUL: the decoded id "a\0b" is not an id (not to be read as "a"). */
static void test_path_id_nul(void **state)
{
    struct tx_env *e = *state;
    const char *body = "{\"fcmToken\":\"abcdefgh\",\"platform\":\"android\"}";
    expect_put_error(e, "good", "d%00evil", body, 400, "invalid_request");
    expect_put_error(e, "w%00evil", "good", body, 400, "invalid_request");
}

/* An encoded slash makes another path: 400 or 404, never a device "a/b" or "a". */
static void test_path_id_encoded_slash(void **state)
{
    struct tx_env *e = *state;
    struct tx_counts before;
    tx_counts(e->db, &before);
    struct th_response r;
    tx_api(&r, e, "PUT", "/v1/wallets/w/devices/a%2Fb",
           "{\"fcmToken\":\"abcdefgh\",\"platform\":\"android\"}");
    if (r.status != 400 && r.status != 404)
        fail_msg("PUT .../devices/a%%2Fb: want 400 or 404, got %ld %s", r.status, r.body);
    th_response_free(&r);
    tx_assert_counts(e->db, &before);
}

static void post_message(const struct tx_env *e, const char *wallet, const char *device)
{
    char path[512];
    snprintf(path, sizeof(path), "/v1/wallets/%s/devices/%s/messages", wallet, device);
    struct th_response r;
    tx_api(&r, e, "POST", path, "{\"payload\":{\"hello\":\"world\"}}");
    tx_assert_status(&r, 201);
    th_response_free(&r);
}

static void test_unknown_device(void **state)
{
    struct tx_env *e = *state;
    struct th_response r;
    get_device(&r, e, "nowallet", "nodevice");
    tx_assert_error(&r, 404, "device_not_found");
    th_response_free(&r);
    tx_api(&r, e, "DELETE", "/v1/wallets/nowallet/devices/nodevice", NULL);
    tx_assert_error(&r, 404, "device_not_found");
    th_response_free(&r);
    /* A device of another wallet with the same id is another device. */
    put_device(&r, e, "wallet-a", "shared", "{\"fcmToken\":\"abcdefgh\",\"platform\":\"web\"}");
    tx_assert_status(&r, 201);
    th_response_free(&r);
    get_device(&r, e, "wallet-b", "shared");
    tx_assert_error(&r, 404, "device_not_found");
    th_response_free(&r);
    put_device(&r, e, "wallet-b", "shared", "{\"fcmToken\":\"ijklmnop\",\"platform\":\"ios\"}");
    tx_assert_status(&r, 201);
    th_response_free(&r);
    get_device(&r, e, "wallet-a", "shared");
    check_state(&r, "wallet-a", "shared", NULL, "web", "abcdefgh", "active", NULL, 0);
    th_response_free(&r);
}

static void test_delete(void **state)
{
    struct tx_env *e = *state;
    struct th_response r;
    put_device(&r, e, "w", "gone", "{\"fcmToken\":\"abcdefgh\",\"platform\":\"android\"}");
    tx_assert_status(&r, 201);
    th_response_free(&r);
    put_device(&r, e, "w", "kept", "{\"fcmToken\":\"ijklmnop\",\"platform\":\"android\"}");
    tx_assert_status(&r, 201);
    th_response_free(&r);
    post_message(e, "w", "gone");
    post_message(e, "w", "gone");
    post_message(e, "w", "kept");
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes"), 2);
    tx_api(&r, e, "DELETE", "/v1/wallets/w/devices/gone", NULL);
    tx_assert_status(&r, 204);
    assert_int_equal(strlen(r.body), 0);
    th_response_free(&r);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.devices WHERE device_id ="
                                        " 'gone'"),
                     0);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages WHERE device_id ="
                                        " 'gone'"),
                     0);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes WHERE device_id ="
                                        " 'gone'"),
                     0);
    /* The other device keeps everything. */
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.devices"), 1);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages"), 1);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes"), 1);
    get_device(&r, e, "w", "gone");
    tx_assert_error(&r, 404, "device_not_found");
    th_response_free(&r);
    tx_api(&r, e, "DELETE", "/v1/wallets/w/devices/gone", NULL);
    tx_assert_error(&r, 404, "device_not_found");
    th_response_free(&r);
    /* Registering again starts from scratch: 201, nothing pending. */
    put_device(&r, e, "w", "gone", "{\"fcmToken\":\"abcdefgh\",\"platform\":\"android\"}");
    tx_assert_status(&r, 201);
    check_state(&r, "w", "gone", NULL, "android", "abcdefgh", "active", NULL, 0);
    th_response_free(&r);
}

static void test_pending_count_and_last_push(void **state)
{
    struct tx_env *e = *state;
    struct th_response r;
    put_device(&r, e, "w", "d", "{\"fcmToken\":\"abcdefgh\",\"platform\":\"android\"}");
    tx_assert_status(&r, 201);
    th_response_free(&r);
    for (int i = 0; i < 4; i++)
        post_message(e, "w", "d");
    get_device(&r, e, "w", "d");
    check_state(&r, "w", "d", NULL, "android", "abcdefgh", "active", NULL, 4);
    th_response_free(&r);
    /* Acknowledged and expired messages are not pending. */
    th_sql_exec(e->db, "UPDATE mpcpush.messages SET acked_at = now() WHERE id = (SELECT min(id)"
                       " FROM mpcpush.messages)");
    th_sql_exec(e->db, "UPDATE mpcpush.messages SET expires_at = now() - interval '1 minute'"
                       " WHERE id = (SELECT max(id) FROM mpcpush.messages)");
    get_device(&r, e, "w", "d");
    check_state(&r, "w", "d", NULL, "android", "abcdefgh", "active", NULL, 2);
    assert_true(json_is_null(json_object_get(r.json, "lastPushAt")));
    th_response_free(&r);
    th_sql_exec(e->db, "UPDATE mpcpush.pushes SET last_sent_at = now()");
    get_device(&r, e, "w", "d");
    tx_assert_iso_utc(str_field(r.json, "lastPushAt"));
    th_response_free(&r);
}

static void test_json_charset_accepted(void **state)
{
    struct tx_env *e = *state;
    char url[256];
    snprintf(url, sizeof(url), "%s/v1/wallets/w/devices/d", e->proc.base);
    const char *body = "{\"fcmToken\":\"abcdefgh\",\"platform\":\"android\"}";
    const char *headers[] = {e->auth, "Content-Type: application/json; charset=utf-8", NULL};
    struct th_response r;
    th_http(&r, "PUT", url, headers, body, strlen(body));
    tx_assert_status(&r, 201);
    th_response_free(&r);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, tx_setup, tx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_auth_required),
        T(test_register_and_get),
        T(test_refresh_and_replace_token),
        T(test_invalid_token_status),
        T(test_body_validation),
        T(test_path_ids),
        T(test_path_id_nul),
        T(test_path_id_encoded_slash),
        T(test_unknown_device),
        T(test_delete),
        T(test_pending_count_and_last_push),
        T(test_json_charset_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
