/* Enqueueing messages through the API: one device (POST .../devices/{d}/messages) and every
 * device of a wallet (POST .../wallets/{w}/messages): payload kinds, ttlSeconds bounds, the push
 * row, and the errors (unknown device, wallet without devices, bad bodies). */
#define _GNU_SOURCE
#include "harness_extra.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void register_device(const struct tx_env *e, const char *wallet, const char *device)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/wallets/%s/devices/%s", wallet, device);
    struct th_response r;
    tx_api(&r, e, "PUT", path, "{\"fcmToken\":\"token-abcdef-123456\",\"platform\":\"android\"}");
    if (r.status != 201)
        fail_msg("PUT %s answered %ld %s", path, r.status, r.body);
    th_response_free(&r);
}

static void post_device(struct th_response *r, const struct tx_env *e, const char *wallet,
                        const char *device, const char *body)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/wallets/%s/devices/%s/messages", wallet, device);
    tx_api(r, e, "POST", path, body);
}

static void post_wallet(struct th_response *r, const struct tx_env *e, const char *wallet,
                        const char *body)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/wallets/%s/messages", wallet);
    tx_api(r, e, "POST", path, body);
}

/* Checks a 201 {"id","expiresAt"} answer; returns the id (caller frees). */
static char *check_created(const struct th_response *r)
{
    tx_assert_status(r, 201);
    json_t *id = json_object_get(r->json, "id");
    json_t *exp = json_object_get(r->json, "expiresAt");
    if (!json_is_string(id) || !json_string_length(id) || !json_is_string(exp))
        fail_msg("want {\"id\":\"...\",\"expiresAt\":\"...\"}, got %s", r->body);
    tx_assert_iso_utc(json_string_value(exp));
    return strdup(json_string_value(id));
}

/* Seconds from now until the message expires, from the database. */
static long expires_in(const struct tx_env *e, const char *id)
{
    return tx_sql_longf(e->db,
                        "SELECT extract(epoch FROM expires_at - now())::bigint FROM"
                        " mpcpush.messages WHERE id::text = '%s'",
                        id);
}

static void test_device_message(void **state)
{
    struct tx_env *e = *state;
    register_device(e, "w", "d");
    struct th_response r;
    post_device(&r, e, "w", "d", "{\"payload\":{\"kind\":\"mpc\",\"data\":[1,2,3]}}");
    char *id = check_created(&r);
    assert_int_equal(tx_sql_longf(e->db,
                                  "SELECT count(*) FROM mpcpush.messages WHERE id::text = '%s'"
                                  " AND wallet_id = 'w' AND device_id = 'd' AND source = 'api'"
                                  " AND acked_at IS NULL",
                                  id),
                     1);
    char *payload = tx_sql_textf(e->db, "SELECT payload::text FROM mpcpush.messages");
    tx_assert_json_eq(payload, "{\"kind\":\"mpc\",\"data\":[1,2,3]}");
    long left = expires_in(e, id);
    if (left < 86400 - 120 || left > 86400 + 5)
        fail_msg("default ttl: expires in %ld s, want about 86400", left);
    /* expiresAt is the stored expiry. */
    char *lit = tx_lit(json_string_value(json_object_get(r.json, "expiresAt")));
    assert_int_equal(tx_sql_longf(e->db,
                                  "SELECT abs(extract(epoch FROM expires_at - %s::timestamptz))"
                                  "::bigint FROM mpcpush.messages",
                                  lit),
                     0);
    th_response_free(&r);
    /* The push row wants this message. */
    assert_int_equal(tx_sql_longf(e->db,
                                  "SELECT count(*) FROM mpcpush.pushes WHERE wallet_id = 'w' AND"
                                  " device_id = 'd' AND wanted_id::text = '%s'",
                                  id),
                     1);
    /* A second message moves wanted_id forward; ids increase. */
    post_device(&r, e, "w", "d", "{\"payload\":\"second\"}");
    char *id2 = check_created(&r);
    th_response_free(&r);
    assert_true(strtoll(id2, NULL, 10) > strtoll(id, NULL, 10));
    assert_int_equal(tx_sql_longf(e->db,
                                  "SELECT count(*) FROM mpcpush.pushes WHERE wanted_id::text ="
                                  " '%s'",
                                  id2),
                     1);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes"), 1);
    free(id);
    free(id2);
    free(payload);
    free(lit);
}

static void test_payload_kinds(void **state)
{
    struct tx_env *e = *state;
    register_device(e, "w", "d");
    const char *payloads[] = {"{}",
                              "[]",
                              "[1,\"two\",{\"3\":null}]",
                              "\"a string\"",
                              "0",
                              "-1.5",
                              "true",
                              "false",
                              "\"h\\u00e9llo \\u2713\"",
                              "{\"nested\":{\"deep\":[{\"x\":null}]}}"};
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body), "{\"payload\":%s}", payloads[i]);
        struct th_response r;
        post_device(&r, e, "w", "d", body);
        if (r.status != 201)
            fail_msg("payload %s: answered %ld %s", payloads[i], r.status, r.body);
        char *id = check_created(&r);
        th_response_free(&r);
        char *stored = tx_sql_textf(e->db,
                                    "SELECT payload::text FROM mpcpush.messages WHERE id::text ="
                                    " '%s'",
                                    id);
        tx_assert_json_eq(stored, payloads[i]);
        free(stored);
        free(id);
    }
}

static void test_ttl(void **state)
{
    struct tx_env *e = *state;
    register_device(e, "w", "d");
    struct th_response r;
    post_device(&r, e, "w", "d", "{\"payload\":1,\"ttlSeconds\":60}");
    char *id = check_created(&r);
    th_response_free(&r);
    long left = expires_in(e, id);
    if (left < 30 || left > 65)
        fail_msg("ttlSeconds 60: expires in %ld s", left);
    free(id);
    post_device(&r, e, "w", "d", "{\"payload\":1,\"ttlSeconds\":1}");
    free(check_created(&r));
    th_response_free(&r);
    post_device(&r, e, "w", "d", "{\"payload\":1,\"ttlSeconds\":2419200}");
    id = check_created(&r);
    th_response_free(&r);
    left = expires_in(e, id);
    if (left < 2419200 - 120 || left > 2419205)
        fail_msg("ttlSeconds 2419200: expires in %ld s", left);
    free(id);
    struct tx_counts before;
    tx_counts(e->db, &before);
    const char *bad[] = {"{\"payload\":1,\"ttlSeconds\":2419201}",
                         "{\"payload\":1,\"ttlSeconds\":0}",
                         "{\"payload\":1,\"ttlSeconds\":-1}",
                         "{\"payload\":1,\"ttlSeconds\":\"60\"}",
                         "{\"payload\":1,\"ttlSeconds\":1.5}",
                         "{\"payload\":1,\"ttlSeconds\":null}",
                         "{\"payload\":1,\"ttlSeconds\":99999999999999999}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        post_device(&r, e, "w", "d", bad[i]);
        if (r.status != 400 || strcmp(th_error_code(&r), "invalid_request") != 0)
            fail_msg("%s: want 400 invalid_request, got %ld %s", bad[i], r.status, r.body);
        th_response_free(&r);
        post_wallet(&r, e, "w", bad[i]);
        if (r.status != 400 || strcmp(th_error_code(&r), "invalid_request") != 0)
            fail_msg("wallet %s: want 400 invalid_request, got %ld %s", bad[i], r.status, r.body);
        th_response_free(&r);
    }
    tx_assert_counts(e->db, &before);
}

static void test_configured_ttls(void **state)
{
    struct tx_env *e = *state;
    const char *env[] = {"MPCPUSH_MESSAGE_TTL=300", "MPCPUSH_MAX_MESSAGE_TTL=600", NULL};
    tx_start(e, 0, env);
    register_device(e, "w", "d");
    struct th_response r;
    post_device(&r, e, "w", "d", "{\"payload\":1}");
    char *id = check_created(&r);
    th_response_free(&r);
    long left = expires_in(e, id);
    if (left < 240 || left > 305)
        fail_msg("MPCPUSH_MESSAGE_TTL=300: expires in %ld s", left);
    free(id);
    post_device(&r, e, "w", "d", "{\"payload\":1,\"ttlSeconds\":600}");
    free(check_created(&r));
    th_response_free(&r);
    struct tx_counts before;
    tx_counts(e->db, &before);
    post_device(&r, e, "w", "d", "{\"payload\":1,\"ttlSeconds\":601}");
    tx_assert_error(&r, 400, "invalid_request");
    th_response_free(&r);
    tx_assert_counts(e->db, &before);
}

static void test_device_message_errors(void **state)
{
    struct tx_env *e = *state;
    register_device(e, "w", "d");
    struct tx_counts before;
    tx_counts(e->db, &before);
    struct th_response r;
    /* Unknown device (also: a known device id in another wallet). */
    post_device(&r, e, "w", "unknown", "{\"payload\":{\"a\":1}}");
    tx_assert_error(&r, 404, "device_not_found");
    th_response_free(&r);
    post_device(&r, e, "other", "d", "{\"payload\":{\"a\":1}}");
    tx_assert_error(&r, 404, "device_not_found");
    th_response_free(&r);
    const char *invalid[] = {"{}", "{\"payload\":null}", "{\"ttlSeconds\":60}",
                             "{\"data\":{\"a\":1}}"};
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        post_device(&r, e, "w", "d", invalid[i]);
        if (r.status != 400 || strcmp(th_error_code(&r), "invalid_request") != 0)
            fail_msg("%s: want 400 invalid_request, got %ld %s", invalid[i], r.status, r.body);
        th_response_free(&r);
    }
    const char *malformed[] = {"",
                               "{",
                               "{\"payload\":}",
                               "[{\"payload\":1}]",
                               "\"payload\"",
                               "null",
                               "{\"payload\":1} trailing"};
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        post_device(&r, e, "w", "d", malformed[i]);
        if (r.status != 400 || strcmp(th_error_code(&r), "malformed_json") != 0)
            fail_msg("body [%s]: want 400 malformed_json, got %ld %s", malformed[i], r.status,
                     r.body);
        tx_assert_error(&r, 400, "malformed_json");
        th_response_free(&r);
    }
    /* Bad path ids. */
    post_device(&r, e, "bad!wallet", "d", "{\"payload\":1}");
    tx_assert_error(&r, 400, "invalid_request");
    th_response_free(&r);
    post_device(&r, e, "w", "bad%20device", "{\"payload\":1}");
    tx_assert_error(&r, 400, "invalid_request");
    th_response_free(&r);
    tx_assert_counts(e->db, &before);
}

static void test_wallet_message(void **state)
{
    struct tx_env *e = *state;
    register_device(e, "fam", "phone");
    register_device(e, "fam", "tablet");
    register_device(e, "fam", "laptop");
    register_device(e, "neighbour", "phone");
    struct th_response r;
    post_wallet(&r, e, "fam", "{\"payload\":{\"broadcast\":true},\"ttlSeconds\":120}");
    tx_assert_status(&r, 201);
    json_t *list = json_object_get(r.json, "messages");
    if (!json_is_array(list) || json_array_size(list) != 3)
        fail_msg("want 3 messages, got %s", r.body);
    bool seen[3] = {false, false, false};
    const char *names[] = {"phone", "tablet", "laptop"};
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item)
    {
        json_t *dev = json_object_get(item, "deviceId"), *id = json_object_get(item, "id");
        if (!json_is_string(dev) || !json_is_string(id))
            fail_msg("bad entry in %s", r.body);
        int which = -1;
        for (int k = 0; k < 3; k++)
            if (strcmp(json_string_value(dev), names[k]) == 0)
                which = k;
        if (which < 0 || seen[which])
            fail_msg("unexpected or repeated deviceId in %s", r.body);
        seen[which] = true;
        assert_int_equal(tx_sql_longf(e->db,
                                      "SELECT count(*) FROM mpcpush.messages WHERE wallet_id ="
                                      " 'fam' AND device_id = '%s' AND id::text = '%s' AND"
                                      " source = 'api' AND payload = '{\"broadcast\":true}'"
                                      " AND expires_at < now() + interval '125 seconds'",
                                      json_string_value(dev), json_string_value(id)),
                         1);
        assert_int_equal(tx_sql_longf(e->db,
                                      "SELECT count(*) FROM mpcpush.pushes WHERE wallet_id ="
                                      " 'fam' AND device_id = '%s' AND wanted_id::text = '%s'",
                                      json_string_value(dev), json_string_value(id)),
                         1);
    }
    th_response_free(&r);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages"), 3);
    assert_int_equal(th_sql_long(e->db, "SELECT count(DISTINCT id) FROM mpcpush.messages"), 3);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages WHERE wallet_id"
                                        " = 'neighbour'"),
                     0);
    /* A wallet without devices. */
    struct tx_counts before;
    tx_counts(e->db, &before);
    post_wallet(&r, e, "empty-wallet", "{\"payload\":{\"a\":1}}");
    tx_assert_error(&r, 404, "wallet_not_found");
    th_response_free(&r);
    /* Validation comes with the same errors as for one device. */
    post_wallet(&r, e, "fam", "{\"payload\":null}");
    tx_assert_error(&r, 400, "invalid_request");
    th_response_free(&r);
    post_wallet(&r, e, "fam", "[1]");
    tx_assert_error(&r, 400, "malformed_json");
    th_response_free(&r);
    post_wallet(&r, e, "bad!wallet", "{\"payload\":1}");
    tx_assert_error(&r, 400, "invalid_request");
    th_response_free(&r);
    tx_assert_counts(e->db, &before);
}

/* Devices whose token was found invalid still get their messages stored (the app may fetch
 * them); only active tokens get a push row. */
static void test_invalid_token_devices(void **state)
{
    struct tx_env *e = *state;
    register_device(e, "inv", "alive");
    register_device(e, "inv", "dead");
    th_sql_exec(e->db, "UPDATE mpcpush.devices SET token_status = 'invalid', token_invalid_reason"
                       " = 'UNREGISTERED' WHERE device_id = 'dead'");
    struct th_response r;
    post_device(&r, e, "inv", "dead", "{\"payload\":{\"to\":\"dead\"}}");
    free(check_created(&r));
    th_response_free(&r);
    post_wallet(&r, e, "inv", "{\"payload\":{\"to\":\"all\"}}");
    tx_assert_status(&r, 201);
    json_t *list = json_object_get(r.json, "messages");
    if (!json_is_array(list) || json_array_size(list) != 2)
        fail_msg("want 2 messages, got %s", r.body);
    th_response_free(&r);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages WHERE device_id ="
                                        " 'dead'"),
                     2);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes p WHERE device_id ="
                                        " 'alive' AND wanted_id = (SELECT max(id) FROM"
                                        " mpcpush.messages WHERE device_id = 'alive')"),
                     1);
}

static void test_large_payload(void **state)
{
    struct tx_env *e = *state;
    register_device(e, "w", "d");
    size_t n = 200000;
    char *body = malloc(n + 64);
    int off = snprintf(body, n + 64, "{\"payload\":\"");
    memset(body + off, 'z', n);
    strcpy(body + off + n, "\"}");
    struct th_response r;
    post_device(&r, e, "w", "d", body);
    free(check_created(&r));
    th_response_free(&r);
    assert_int_equal(th_sql_long(e->db, "SELECT length(payload #>> '{}') FROM mpcpush.messages"),
                     (long)n);
    free(body);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, tx_setup, tx_teardown)
#define D(f) cmocka_unit_test_setup_teardown(f, tx_setup_db, tx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_device_message),        T(test_payload_kinds),         T(test_ttl),
        D(test_configured_ttls),       T(test_device_message_errors), T(test_wallet_message),
        T(test_invalid_token_devices), T(test_large_payload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
