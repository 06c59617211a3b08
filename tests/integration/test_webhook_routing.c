/* POST /webhooks/fireblocks, what is stored: envelope shapes, malformed events, routing of
 * device messages and wallet events, and dedupe (v1 raw body, v2 id). */
#define _GNU_SOURCE
#include "harness_extra.h"
#include "webhook_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
    tx_keys();
#define T(f) cmocka_unit_test_setup_teardown(f, tx_setup, tx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_v2_device_message),
        T(test_envelope_shapes),
        T(test_malformed_events),
        T(test_routing_events),
        T(test_device_message_to_registered_device),
        T(test_dedupe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
