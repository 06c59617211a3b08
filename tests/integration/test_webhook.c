/* POST /webhooks/fireblocks: every signature case (v1, v2, both, rotated keys, tampering,
 * unknown kid, missing header), envelope shapes, routing, dedupe, and the unconfigured 503. */
#define _GNU_SOURCE
#include "harness_extra.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int serial;

/* A v1 NCW_DEVICE_MESSAGE in the documented shape: ids and message at the top level. */
static char *v1_device_message(const char *wallet, const char *device, const char *message)
{
    char *body = NULL;
    int n = ++serial;
    if (asprintf(&body,
                 "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"tenant-%d\","
                 "\"timestamp\":1700000000%03d,\"walletId\":\"%s\",\"deviceId\":\"%s\","
                 "\"physicalDeviceId\":\"phys-1\",\"message\":%s}",
                 n, n % 1000, wallet, device, message) < 0)
        fail_msg("out of memory");
    return body;
}

static char *v1_event(const char *type, const char *data)
{
    char *body = NULL;
    int n = ++serial;
    if (asprintf(&body,
                 "{\"type\":\"%s\",\"tenantId\":\"tenant-%d\",\"timestamp\":1700000001%03d,"
                 "\"data\":%s}",
                 type, n, n % 1000, data) < 0)
        fail_msg("out of memory");
    return body;
}

static char *v2_event(const char *id, const char *type, const char *data)
{
    char *body = NULL;
    if (asprintf(&body,
                 "{\"id\":\"%s\",\"eventType\":\"%s\",\"eventVersion\":1,\"resourceId\":\"r-%d\","
                 "\"webhookId\":\"wh-1\",\"workspaceId\":\"ws-1\",\"createdAt\":1700000002000,"
                 "\"data\":%s}",
                 id, type, ++serial, data) < 0)
        fail_msg("out of memory");
    return body;
}

static void post_signed(struct th_response *r, const struct tx_env *e, const char *body,
                        const char *h1, const char *h2)
{
    const char *headers[] = {h1, h2, NULL};
    tx_webhook(r, e, body, headers);
}

/* Asserts a 200 "stored" answer; returns nothing. */
static void assert_stored(const struct th_response *r)
{
    tx_assert_status(r, 200);
    json_t *status = json_object_get(r->json, "status");
    json_t *id = json_object_get(r->json, "eventId");
    if (!json_is_string(status) || strcmp(json_string_value(status), "stored") != 0 ||
        !json_is_string(id) || !json_string_length(id))
        fail_msg("want {\"status\":\"stored\",\"eventId\":...}, got %s", r->body);
}

static void assert_duplicate(const struct th_response *r)
{
    tx_assert_status(r, 200);
    json_t *status = json_object_get(r->json, "status");
    if (!json_is_string(status) || strcmp(json_string_value(status), "duplicate") != 0)
        fail_msg("want {\"status\":\"duplicate\"}, got %s", r->body);
}

static void assert_rejected(const struct tx_env *e, const char *body, const char *h1,
                            const char *h2, long status, const char *code)
{
    struct tx_counts before;
    tx_counts(e->db, &before);
    struct th_response r;
    post_signed(&r, e, body, h1, h2);
    tx_assert_error(&r, status, code);
    th_response_free(&r);
    tx_assert_counts(e->db, &before);
}

static void register_device(const struct tx_env *e, const char *wallet, const char *device)
{
    char path[256], body[256];
    snprintf(path, sizeof(path), "/v1/wallets/%s/devices/%s", wallet, device);
    snprintf(body, sizeof(body), "{\"fcmToken\":\"tok-%s-%s-abcdef\",\"platform\":\"android\"}",
             wallet, device);
    struct th_response r;
    tx_api(&r, e, "PUT", path, body);
    if (r.status != 201 && r.status != 200)
        fail_msg("PUT %s answered %ld %s", path, r.status, r.body);
    th_response_free(&r);
}

static char *payload_of(const char *db, const char *wallet, const char *device)
{
    return tx_sql_textf(db,
                        "SELECT payload::text FROM mpcpush.messages WHERE wallet_id = '%s'"
                        " AND device_id = '%s' ORDER BY id DESC LIMIT 1",
                        wallet, device);
}

static void test_v1_valid(void **state)
{
    struct tx_env *e = *state;
    char *body = v1_device_message("w1", "d1", "{\"mpc\":\"hello\",\"n\":[1,2]}");
    struct th_response r;
    tx_webhook_v1(&r, e, body);
    assert_stored(&r);
    th_response_free(&r);
    char *lit = tx_lit(body);
    assert_int_equal(tx_sql_longf(e->db,
                                  "SELECT count(*) FROM mpcpush.webhook_events WHERE raw_body = %s"
                                  " AND api_version = 1 AND event_type = 'NCW_DEVICE_MESSAGE'",
                                  lit),
                     1);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages WHERE wallet_id ="
                                        " 'w1' AND device_id = 'd1' AND source = 'webhook'"),
                     1);
    char *payload = payload_of(e->db, "w1", "d1");
    tx_assert_json_eq(payload, "{\"mpc\":\"hello\",\"n\":[1,2]}");
    /* Expiry: now + MPCPUSH_MESSAGE_TTL (default 86400 s). */
    long left = th_sql_long(e->db, "SELECT extract(epoch FROM expires_at - now())::bigint"
                                   " FROM mpcpush.messages WHERE wallet_id = 'w1'");
    if (left < 86400 - 120 || left > 86400 + 5)
        fail_msg("webhook message expires in %ld s, want about 86400", left);
    /* Not registered: stored, but nothing to push. */
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes"), 0);
    free(payload);
    free(lit);
    free(body);
}

static void test_v2_valid(void **state)
{
    struct tx_env *e = *state;
    const struct tx_keys *k = tx_keys();
    char *body = v2_event("0b6f0b8e-0000-4000-8000-000000000001", "transaction.created",
                          "{\"id\":\"tx-1\",\"status\":\"SUBMITTED\"}");
    char *sig = tx_hdr_v2(k->jwk1, "kid-1", body);
    struct th_response r;
    post_signed(&r, e, body, sig, NULL);
    assert_stored(&r);
    th_response_free(&r);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events WHERE"
                                        " api_version = 2 AND event_type = 'transaction.created'"),
                     1);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages"), 0);
    char *lit = tx_lit(body);
    assert_int_equal(tx_sql_longf(e->db,
                                  "SELECT count(*) FROM mpcpush.webhook_events WHERE raw_body = %s"
                                  " AND dedupe_key LIKE '%%0b6f0b8e-0000-4000-8000-000000000001%%'",
                                  lit),
                     1);
    free(lit);
    /* The second JWKS key works too. */
    char *body2 = v2_event("0b6f0b8e-0000-4000-8000-000000000002", "NCW_CREATED", "{}");
    char *sig2 = tx_hdr_v2(k->jwk2, "kid-2", body2);
    post_signed(&r, e, body2, sig2, NULL);
    assert_stored(&r);
    th_response_free(&r);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"), 2);
    free(sig);
    free(sig2);
    free(body);
    free(body2);
}

/* The contract routes NCW_DEVICE_MESSAGE whatever the envelope version. */
static void test_v2_device_message(void **state)
{
    struct tx_env *e = *state;
    char *body = v2_event("0b6f0b8e-0000-4000-8000-000000000003", "NCW_DEVICE_MESSAGE",
                          "{\"walletId\":\"w2\",\"deviceId\":\"d2\",\"message\":\"abc\"}");
    char *sig = tx_hdr_v2(tx_keys()->jwk1, "kid-1", body);
    struct th_response r;
    post_signed(&r, e, body, sig, NULL);
    assert_stored(&r);
    th_response_free(&r);
    char *payload = payload_of(e->db, "w2", "d2");
    if (!payload)
        fail_msg("v2 NCW_DEVICE_MESSAGE stored no message (webhook_events rows: %ld)",
                 th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"));
    tx_assert_json_eq(payload, "\"abc\"");
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages WHERE source ="
                                        " 'webhook'"),
                     1);
    free(payload);
    free(sig);
    free(body);
}

static void test_both_headers(void **state)
{
    struct tx_env *e = *state;
    const struct tx_keys *k = tx_keys();
    struct th_response r;
    /* Both valid. */
    char *b1 = v1_event("NCW_CREATED", "{\"walletId\":\"w3\"}");
    char *s1 = tx_hdr_v1(k->v1a, b1), *s2 = tx_hdr_v2(k->jwk1, "kid-1", b1);
    post_signed(&r, e, b1, s1, s2);
    assert_stored(&r);
    th_response_free(&r);
    /* Any valid presented signature passes: v1 valid, v2 forged. */
    char *b2 = v1_event("NCW_CREATED", "{\"walletId\":\"w4\"}");
    char *s3 = tx_hdr_v1(k->v1a, b2), *s4 = tx_hdr_v2(k->stranger, "kid-1", b2);
    post_signed(&r, e, b2, s3, s4);
    assert_stored(&r);
    th_response_free(&r);
    /* v1 forged, v2 valid. */
    char *b3 = v1_event("NCW_CREATED", "{\"walletId\":\"w5\"}");
    char *s5 = tx_hdr_v1(k->stranger, b3), *s6 = tx_hdr_v2(k->jwk2, "kid-2", b3);
    post_signed(&r, e, b3, s5, s6);
    assert_stored(&r);
    th_response_free(&r);
    /* Both forged. */
    char *b4 = v1_event("NCW_CREATED", "{\"walletId\":\"w6\"}");
    char *s7 = tx_hdr_v1(k->stranger, b4), *s8 = tx_hdr_v2(k->stranger, "kid-1", b4);
    assert_rejected(e, b4, s7, s8, 401, "bad_signature");
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"), 3);
    char *list[] = {b1, b2, b3, b4, s1, s2, s3, s4, s5, s6, s7, s8};
    for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++)
        free(list[i]);
}

static void test_rotated_second_key(void **state)
{
    struct tx_env *e = *state;
    char *body = v1_device_message("w7", "d7", "{\"x\":1}");
    char *sig = tx_hdr_v1(tx_keys()->v1b, body);
    struct th_response r;
    post_signed(&r, e, body, sig, NULL);
    assert_stored(&r);
    th_response_free(&r);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages"), 1);
    free(sig);
    free(body);
}

static void test_v1_rejections(void **state)
{
    struct tx_env *e = *state;
    const struct tx_keys *k = tx_keys();
    char *body = v1_device_message("w8", "d8", "{\"x\":1}");
    char *sig = tx_hdr_v1(k->v1a, body);
    /* Tampered body: one byte changed after signing. */
    char *tampered = strdup(body);
    tampered[strlen(tampered) - 3] = '2';
    assert_rejected(e, tampered, sig, NULL, 401, "bad_signature");
    /* Trailing whitespace added after signing (the raw bytes count, not the JSON). */
    char *spaced = NULL;
    if (asprintf(&spaced, "%s ", body) < 0)
        fail_msg("out of memory");
    assert_rejected(e, spaced, sig, NULL, 401, "bad_signature");
    /* Tampered signature: one base64 character changed. */
    char *bad = strdup(sig);
    size_t at = strlen("Fireblocks-Signature: ") + 10;
    bad[at] = bad[at] == 'A' ? 'B' : 'A';
    assert_rejected(e, body, bad, NULL, 401, "bad_signature");
    /* Not base64 at all. */
    assert_rejected(e, body, "Fireblocks-Signature: !!!not*base64%%%", NULL, 401,
                    "bad_signature");
    /* Empty header. */
    assert_rejected(e, body, "Fireblocks-Signature;", NULL, 401, "bad_signature");
    /* Truncated signature. */
    char *cut = strdup(sig);
    cut[strlen(cut) / 2] = '\0';
    assert_rejected(e, body, cut, NULL, 401, "bad_signature");
    /* Signed with a key that is not configured. */
    char *wrong = tx_hdr_v1(k->stranger, body);
    assert_rejected(e, body, wrong, NULL, 401, "bad_signature");
    /* No signature header at all. */
    assert_rejected(e, body, NULL, NULL, 401, "bad_signature");
    /* The real one still works after all that. */
    struct th_response r;
    post_signed(&r, e, body, sig, NULL);
    assert_stored(&r);
    th_response_free(&r);
    free(body);
    free(sig);
    free(tampered);
    free(spaced);
    free(bad);
    free(cut);
    free(wrong);
}

static void test_v2_rejections(void **state)
{
    struct tx_env *e = *state;
    const struct tx_keys *k = tx_keys();
    char *body = v2_event("0b6f0b8e-0000-4000-8000-000000000009", "transaction.created", "{}");
    char *sig = tx_hdr_v2(k->jwk1, "kid-1", body);
    /* Tampered body. */
    char *tampered = strdup(body);
    tampered[10] = tampered[10] == 'b' ? 'c' : 'b';
    assert_rejected(e, tampered, sig, NULL, 401, "bad_signature");
    /* Tampered signature (a character of the signature part). */
    char *bad = strdup(sig);
    size_t len = strlen(bad);
    bad[len - 10] = bad[len - 10] == 'A' ? 'B' : 'A';
    assert_rejected(e, body, bad, NULL, 401, "bad_signature");
    /* Unknown kid (signed by a real key under a name the JWKS lacks). */
    char *unknown = tx_hdr_v2(k->jwk1, "kid-unknown", body);
    assert_rejected(e, body, unknown, NULL, 401, "bad_signature");
    /* A known kid, the wrong key. */
    char *wrong = tx_hdr_v2(k->jwk2, "kid-1", body);
    assert_rejected(e, body, wrong, NULL, 401, "bad_signature");
    /* v1 keys are not JWKS keys. */
    char *v1key = tx_hdr_v2(k->v1a, "kid-1", body);
    assert_rejected(e, body, v1key, NULL, 401, "bad_signature");
    /* Not a detached JWS. */
    assert_rejected(e, body, "Fireblocks-Webhook-Signature: abc.def", NULL, 401,
                    "bad_signature");
    assert_rejected(e, body, "Fireblocks-Webhook-Signature: !!..**", NULL, 401, "bad_signature");
    assert_rejected(e, body, "Fireblocks-Webhook-Signature;", NULL, 401, "bad_signature");
    /* The v2 signature is not a v1 one. */
    char *v1hdr = NULL;
    if (asprintf(&v1hdr, "Fireblocks-Signature: %s", strstr(sig, "..") + 2) < 0)
        fail_msg("out of memory");
    assert_rejected(e, body, v1hdr, NULL, 401, "bad_signature");
    struct th_response r;
    post_signed(&r, e, body, sig, NULL);
    assert_stored(&r);
    th_response_free(&r);
    char *list[] = {body, sig, tampered, bad, unknown, wrong, v1key, v1hdr};
    for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++)
        free(list[i]);
}

/* One device message in a given envelope shape; checks the stored payload. */
static void check_shape(const struct tx_env *e, const char *body, const char *wallet,
                        const char *device, const char *want_payload)
{
    struct th_response r;
    tx_webhook_v1(&r, e, body);
    if (r.status != 200)
        fail_msg("shape %s: answered %ld %s", body, r.status, r.body);
    assert_stored(&r);
    th_response_free(&r);
    assert_int_equal(tx_sql_longf(e->db,
                                  "SELECT count(*) FROM mpcpush.messages WHERE wallet_id = '%s'"
                                  " AND device_id = '%s' AND source = 'webhook'",
                                  wallet, device),
                     1);
    char *payload = payload_of(e->db, wallet, device);
    tx_assert_json_eq(payload, want_payload);
    free(payload);
}

static void test_envelope_shapes(void **state)
{
    struct tx_env *e = *state;
    /* Ids and message at the top level (the documented shape). */
    check_shape(e,
                "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"t\",\"timestamp\":1,"
                "\"walletId\":\"s1\",\"deviceId\":\"d\",\"message\":{\"a\":1}}",
                "s1", "d", "{\"a\":1}");
    /* Ids and message inside data. */
    check_shape(e,
                "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"t\",\"timestamp\":2,"
                "\"data\":{\"walletId\":\"s2\",\"deviceId\":\"d\",\"message\":{\"b\":2}}}",
                "s2", "d", "{\"b\":2}");
    /* Ids at the top level, payload in data (the demo backend's shape). */
    check_shape(e,
                "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"t\",\"timestamp\":3,"
                "\"walletId\":\"s3\",\"deviceId\":\"d\",\"physicalDeviceId\":\"p\","
                "\"data\":{\"c\":3}}",
                "s3", "d", "{\"c\":3}");
    /* Ids inside data, no message: the payload is data itself. */
    check_shape(e,
                "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"t\",\"timestamp\":4,"
                "\"data\":{\"walletId\":\"s4\",\"deviceId\":\"d\",\"x\":[1]}}",
                "s4", "d", "{\"walletId\":\"s4\",\"deviceId\":\"d\",\"x\":[1]}");
    /* A top-level message wins over data.message. */
    check_shape(e,
                "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"t\",\"timestamp\":5,"
                "\"walletId\":\"s5\",\"deviceId\":\"d\",\"message\":\"top\","
                "\"data\":{\"message\":\"inner\"}}",
                "s5", "d", "\"top\"");
    /* A string message (an opaque MPC payload). */
    check_shape(e,
                "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"t\",\"timestamp\":6,"
                "\"walletId\":\"s6\",\"deviceId\":\"d\",\"message\":\"eyJhIjoxfQ==\"}",
                "s6", "d", "\"eyJhIjoxfQ==\"");
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"), 6);
}

static void test_malformed_events(void **state)
{
    struct tx_env *e = *state;
    const struct tx_keys *k = tx_keys();
    const char *bodies[] = {
        /* NCW_DEVICE_MESSAGE without deviceId */
        "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"t\",\"timestamp\":1,"
        "\"walletId\":\"m1\",\"message\":{\"a\":1}}",
        "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"t\",\"timestamp\":2,"
        "\"data\":{\"walletId\":\"m1\",\"message\":{\"a\":1}}}",
        /* no type at all */
        "{\"tenantId\":\"t\",\"timestamp\":3,\"data\":{\"walletId\":\"m1\"}}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        char *sig = tx_hdr_v1(k->v1a, bodies[i]);
        assert_rejected(e, bodies[i], sig, NULL, 400, "malformed_event");
        free(sig);
    }
    /* Signed, but not a JSON object: malformed_json or malformed_event, nothing stored. */
    const char *not_objects[] = {"not json at all", "[1,2,3]", "\"NCW_DEVICE_MESSAGE\"", "{"};
    for (size_t i = 0; i < sizeof(not_objects) / sizeof(not_objects[0]); i++) {
        struct tx_counts before;
        tx_counts(e->db, &before);
        char *sig = tx_hdr_v1(k->v1a, not_objects[i]);
        struct th_response r;
        post_signed(&r, e, not_objects[i], sig, NULL);
        const char *code = th_error_code(&r);
        if (r.status != 400 ||
            (strcmp(code, "malformed_json") != 0 && strcmp(code, "malformed_event") != 0))
            fail_msg("signed body %s: want 400 malformed_json/malformed_event, got %ld %s",
                     not_objects[i], r.status, r.body);
        th_response_free(&r);
        tx_assert_counts(e->db, &before);
        free(sig);
    }
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"), 0);
}

static void test_routing_events(void **state)
{
    struct tx_env *e = *state;
    register_device(e, "rw", "phone");
    register_device(e, "rw", "tablet");
    register_device(e, "other", "phone");
    struct th_response r;
    /* PENDING_SIGNATURE: one message per registered device of the wallet. */
    const char *data = "{\"walletId\":\"rw\",\"txId\":\"tx-9\",\"status\":\"PENDING_SIGNATURE\"}";
    char *pending = v1_event("NCW_TRANSACTION_STATUS_UPDATED", data);
    tx_webhook_v1(&r, e, pending);
    assert_stored(&r);
    th_response_free(&r);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages WHERE wallet_id ="
                                        " 'rw' AND source = 'event'"),
                     2);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages WHERE wallet_id ="
                                        " 'other'"),
                     0);
    char want[512];
    snprintf(want, sizeof(want), "{\"eventType\":\"NCW_TRANSACTION_STATUS_UPDATED\",\"data\":%s}",
             data);
    char *p1 = payload_of(e->db, "rw", "phone"), *p2 = payload_of(e->db, "rw", "tablet");
    tx_assert_json_eq(p1, want);
    tx_assert_json_eq(p2, want);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes p JOIN"
                                        " mpcpush.messages m USING (wallet_id, device_id)"
                                        " WHERE p.wanted_id = m.id AND m.wallet_id = 'rw'"),
                     2);
    /* Other statuses: only the event row. */
    char *done = v1_event("NCW_TRANSACTION_STATUS_UPDATED",
                          "{\"walletId\":\"rw\",\"txId\":\"tx-9\",\"status\":\"COMPLETED\"}");
    tx_webhook_v1(&r, e, done);
    assert_stored(&r);
    th_response_free(&r);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages"), 2);
    /* Add-device setup: one message per registered device. */
    const char *setup = "{\"walletId\":\"rw\",\"deviceId\":\"new-dev\",\"requestId\":\"rq-1\"}";
    char *add = v1_event("NCW_ADD_DEVICE_SETUP_REQUESTED", setup);
    tx_webhook_v1(&r, e, add);
    assert_stored(&r);
    th_response_free(&r);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages WHERE wallet_id ="
                                        " 'rw' AND source = 'event'"),
                     4);
    snprintf(want, sizeof(want), "{\"eventType\":\"NCW_ADD_DEVICE_SETUP_REQUESTED\",\"data\":%s}",
             setup);
    free(p1);
    p1 = payload_of(e->db, "rw", "phone");
    tx_assert_json_eq(p1, want);
    /* A wallet without devices: the event is stored, no message. */
    char *lonely = v1_event("NCW_TRANSACTION_STATUS_UPDATED",
                            "{\"walletId\":\"nobody\",\"status\":\"PENDING_SIGNATURE\"}");
    tx_webhook_v1(&r, e, lonely);
    assert_stored(&r);
    th_response_free(&r);
    /* Other event types: only the event row. */
    char *created = v1_event("NCW_CREATED", "{\"walletId\":\"rw\"}");
    tx_webhook_v1(&r, e, created);
    assert_stored(&r);
    th_response_free(&r);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages"), 4);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"), 5);
    char *list[] = {pending, p1, p2, done, add, lonely, created};
    for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++)
        free(list[i]);
}

static void test_device_message_to_registered_device(void **state)
{
    struct tx_env *e = *state;
    register_device(e, "rd", "d1");
    char *body = v1_device_message("rd", "d1", "{\"m\":1}");
    struct th_response r;
    tx_webhook_v1(&r, e, body);
    assert_stored(&r);
    th_response_free(&r);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes p JOIN"
                                        " mpcpush.messages m USING (wallet_id, device_id)"
                                        " WHERE p.wanted_id = m.id AND m.wallet_id = 'rd'"
                                        " AND m.device_id = 'd1'"),
                     1);
    free(body);
}

static void test_dedupe(void **state)
{
    struct tx_env *e = *state;
    const struct tx_keys *k = tx_keys();
    struct th_response r;
    /* v1: the same bytes twice. */
    char *body = v1_device_message("dw", "dd", "{\"once\":true}");
    tx_webhook_v1(&r, e, body);
    assert_stored(&r);
    th_response_free(&r);
    tx_webhook_v1(&r, e, body);
    assert_duplicate(&r);
    th_response_free(&r);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"), 1);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages"), 1);
    /* v1: the same JSON with other bytes is another event (dedupe is on the raw body). */
    char *spaced = NULL;
    if (asprintf(&spaced, "%s\n", body) < 0)
        fail_msg("out of memory");
    tx_webhook_v1(&r, e, spaced);
    assert_stored(&r);
    th_response_free(&r);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"), 2);
    /* v2: the same id with a different body is a duplicate. */
    const char *id = "5d1c7c7e-1111-4222-8333-944455556666";
    char *a = v2_event(id, "transaction.created", "{\"id\":\"tx\",\"note\":\"first\"}");
    char *b = v2_event(id, "transaction.created", "{\"id\":\"tx\",\"note\":\"second\"}");
    char *sa = tx_hdr_v2(k->jwk1, "kid-1", a), *sb = tx_hdr_v2(k->jwk1, "kid-1", b);
    post_signed(&r, e, a, sa, NULL);
    assert_stored(&r);
    th_response_free(&r);
    post_signed(&r, e, b, sb, NULL);
    assert_duplicate(&r);
    th_response_free(&r);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"), 3);
    char *payload = th_sql_text(e->db, "SELECT raw_body FROM mpcpush.webhook_events WHERE"
                                       " api_version = 2");
    assert_string_equal(payload, a); /* the first one is kept */
    /* Also when the duplicate comes with both signature headers. */
    char *sb1 = tx_hdr_v1(k->v1a, b);
    post_signed(&r, e, b, sb1, sb);
    assert_duplicate(&r);
    th_response_free(&r);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"), 3);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages"), 2);
    char *list[] = {body, spaced, a, b, sa, sb, sb1, payload};
    for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++)
        free(list[i]);
}

static void post_any(const struct tx_env *e, long want_status, const char *want_code)
{
    const struct tx_keys *k = tx_keys();
    char *body = v1_device_message("nc", "nc", "{\"x\":1}");
    char *s1 = tx_hdr_v1(k->v1a, body), *s2 = tx_hdr_v2(k->jwk1, "kid-1", body);
    struct tx_counts before;
    tx_counts(e->db, &before);
    struct th_response r;
    post_signed(&r, e, body, s1, s2);
    if (want_code) {
        tx_assert_error(&r, want_status, want_code);
        tx_assert_counts(e->db, &before);
    } else {
        assert_stored(&r);
    }
    th_response_free(&r);
    free(s1);
    free(s2);
    free(body);
}

static void test_not_configured(void **state)
{
    struct tx_env *e = *state;
    tx_start(e, TX_NO_PUBKEYS | TX_NO_JWKS, NULL);
    post_any(e, 503, "webhook_not_configured");
    /* Unsigned too. */
    struct tx_counts before;
    tx_counts(e->db, &before);
    struct th_response r;
    tx_webhook(&r, e, "{\"type\":\"NCW_CREATED\",\"data\":{}}", NULL);
    tx_assert_error(&r, 503, "webhook_not_configured");
    th_response_free(&r);
    tx_assert_counts(e->db, &before);
    char url[256];
    snprintf(url, sizeof(url), "%s/healthz", e->proc.base);
    th_http(&r, "GET", url, NULL, NULL, 0);
    tx_assert_status(&r, 200);
    th_response_free(&r);
}

static void test_only_jwks(void **state)
{
    struct tx_env *e = *state;
    tx_start(e, TX_NO_PUBKEYS, NULL);
    const struct tx_keys *k = tx_keys();
    char *body = v1_device_message("oj", "d", "{}");
    char *s1 = tx_hdr_v1(k->v1a, body), *s2 = tx_hdr_v2(k->jwk1, "kid-1", body);
    assert_rejected(e, body, s1, NULL, 401, "bad_signature");
    struct th_response r;
    post_signed(&r, e, body, s2, NULL);
    assert_stored(&r);
    th_response_free(&r);
    free(s1);
    free(s2);
    free(body);
}

static void test_only_pubkeys_and_ttl(void **state)
{
    struct tx_env *e = *state;
    const char *env[] = {"MPCPUSH_MESSAGE_TTL=120", NULL};
    tx_start(e, TX_NO_JWKS, env);
    const struct tx_keys *k = tx_keys();
    char *body = v1_device_message("op", "d", "{}");
    char *s1 = tx_hdr_v1(k->v1b, body), *s2 = tx_hdr_v2(k->jwk1, "kid-1", body);
    assert_rejected(e, body, s2, NULL, 401, "bad_signature");
    struct th_response r;
    post_signed(&r, e, body, s1, NULL);
    assert_stored(&r);
    th_response_free(&r);
    long left = th_sql_long(e->db, "SELECT extract(epoch FROM expires_at - now())::bigint"
                                   " FROM mpcpush.messages");
    if (left < 60 || left > 125)
        fail_msg("with MPCPUSH_MESSAGE_TTL=120 the message expires in %ld s", left);
    free(s1);
    free(s2);
    free(body);
}

int main(void)
{
    tx_keys();
#define T(f) cmocka_unit_test_setup_teardown(f, tx_setup, tx_teardown)
#define D(f) cmocka_unit_test_setup_teardown(f, tx_setup_db, tx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_v1_valid),
        T(test_v2_valid),
        T(test_v2_device_message),
        T(test_both_headers),
        T(test_rotated_second_key),
        T(test_v1_rejections),
        T(test_v2_rejections),
        T(test_envelope_shapes),
        T(test_malformed_events),
        T(test_routing_events),
        T(test_device_message_to_registered_device),
        T(test_dedupe),
        D(test_not_configured),
        D(test_only_jwks),
        D(test_only_pubkeys_and_ttl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
