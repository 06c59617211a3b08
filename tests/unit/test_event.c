/* Parsing of Fireblocks webhook bodies into struct mp_event: envelopes, dedupe keys, ids,
 * routes and payloads, and the bodies that must be refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpcpush/event.h"

static void parse_ok(const char *body, struct mp_event *ev)
{
    char error[256] = "";
    enum mp_result result = mp_event_parse(body, strlen(body), ev, error, sizeof(error));
    if (result)
        fprintf(stderr, "unexpected %s: %s\n", mp_strerror(result), error);
    assert_int_equal(result, MP_OK);
}

/* Parses a body that must be refused; returns its reason (static storage). */
static const char *parse_bad_len(const char *body, size_t len)
{
    static char error[256];
    struct mp_event ev;
    memset(&ev, 0x5a, sizeof(ev));
    error[0] = '\0';
    assert_int_equal(mp_event_parse(body, len, &ev, error, sizeof(error)), MP_ERR_INVALID);
    assert_null(ev.event_type); /* zeroed on failure */
    assert_null(ev.dedupe_key);
    assert_null(ev.payload_path);
    assert_true(error[0] != '\0');
    mp_event_free(&ev);
    return error;
}

static const char *parse_bad(const char *body)
{
    return parse_bad_len(body, strlen(body));
}

/* ---- NCW_DEVICE_MESSAGE ---- */

static void test_device_message_ids_top_with_message(void **state)
{
    struct mp_event ev;
    parse_ok("{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"t1\",\"timestamp\":1700000000123,"
             "\"walletId\":\"w-1\",\"deviceId\":\"d_1\",\"physicalDeviceId\":\"p.1\","
             "\"message\": {\"payload\" : \"abc\", \"n\": [1, 2]},\"data\":{\"x\":1}}",
             &ev);
    assert_int_equal(ev.api_version, 1);
    assert_string_equal(ev.event_type, "NCW_DEVICE_MESSAGE");
    assert_int_equal(ev.route, MP_ROUTE_DEVICE_MESSAGE);
    assert_string_equal(ev.wallet_id, "w-1");
    assert_string_equal(ev.device_id, "d_1");
    assert_string_equal(ev.physical_device_id, "p.1");
    assert_string_equal(ev.payload_path, "{message}");
    assert_int_equal(ev.occurred_at_ms, 1700000000123LL);
    assert_int_equal(strncmp(ev.dedupe_key, "v1:0000018bcfe5687b:", 20), 0);
    assert_int_equal(strlen(ev.dedupe_key), 20 + 64);
    mp_event_free(&ev);
}

static void test_device_message_string_message(void **state)
{
    struct mp_event ev;
    parse_ok("{\"type\":\"NCW_DEVICE_MESSAGE\",\"walletId\":\"w1\",\"deviceId\":\"d1\","
             "\"message\":\"opaque-mpc-payload\"}",
             &ev);
    assert_int_equal(ev.route, MP_ROUTE_DEVICE_MESSAGE);
    assert_string_equal(ev.payload_path, "{message}");
    assert_null(ev.physical_device_id);
    assert_int_equal(ev.occurred_at_ms, 0);
    mp_event_free(&ev);
}

static void test_device_message_ids_and_payload_in_data(void **state)
{
    struct mp_event ev;
    parse_ok("{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"t1\",\"timestamp\":1,"
             "\"data\":{\"walletId\":\"w2\",\"deviceId\":\"d2\",\"physicalDeviceId\":\"p2\","
             "\"payload\":\"zz\"}}",
             &ev);
    assert_int_equal(ev.route, MP_ROUTE_DEVICE_MESSAGE);
    assert_string_equal(ev.wallet_id, "w2");
    assert_string_equal(ev.device_id, "d2");
    assert_string_equal(ev.physical_device_id, "p2");
    assert_string_equal(ev.payload_path, "{data}");
    mp_event_free(&ev);
}

static void test_device_message_ids_top_with_data_message(void **state)
{
    struct mp_event ev;
    parse_ok("{\"type\":\"NCW_DEVICE_MESSAGE\",\"walletId\":\"w3\",\"deviceId\":\"d3\","
             "\"data\":{\"message\":{\"k\":true},\"other\":1}}",
             &ev);
    assert_int_equal(ev.route, MP_ROUTE_DEVICE_MESSAGE);
    assert_string_equal(ev.wallet_id, "w3");
    assert_string_equal(ev.device_id, "d3");
    assert_string_equal(ev.payload_path, "{data,message}");
    mp_event_free(&ev);
}

static void test_device_message_top_level_wins(void **state)
{
    struct mp_event ev;
    parse_ok("{\"type\":\"NCW_DEVICE_MESSAGE\",\"walletId\":\"top\",\"data\":{\"walletId\":"
             "\"inner\",\"deviceId\":\"inner-d\",\"message\":\"m\"}}",
             &ev);
    assert_string_equal(ev.wallet_id, "top");
    assert_string_equal(ev.device_id, "inner-d");
    assert_string_equal(ev.payload_path, "{data,message}");
    mp_event_free(&ev);
}

/* ---- dedupe ---- */

static void test_v2_envelope_dedupe(void **state)
{
    struct mp_event ev;
    parse_ok("{\"id\":\"3f1c2a9e-5d7b-4c1e-9a8f-0b6d2e4c7a10\",\"eventType\":"
             "\"embedded_wallet.device.added\",\"eventVersion\":1,\"resourceId\":\"r1\","
             "\"createdAt\":1769860800456,\"data\":{\"walletId\":\"w9\",\"deviceId\":\"d9\"}}",
             &ev);
    assert_int_equal(ev.api_version, 2);
    assert_string_equal(ev.event_type, "embedded_wallet.device.added");
    assert_string_equal(ev.dedupe_key, "v2:3f1c2a9e-5d7b-4c1e-9a8f-0b6d2e4c7a10");
    assert_int_equal(ev.route, MP_ROUTE_INBOX_ONLY);
    assert_null(ev.payload_path);
    assert_string_equal(ev.wallet_id, "w9");
    assert_string_equal(ev.device_id, "d9");
    assert_int_equal(ev.occurred_at_ms, 1769860800456LL);
    mp_event_free(&ev);
}

static void test_v2_iso_created_at(void **state)
{
    struct mp_event ev;
    parse_ok("{\"id\":\"e1\",\"eventType\":\"embedded_wallet.created\","
             "\"createdAt\":\"2026-01-31T12:00:00.25Z\",\"data\":{}}",
             &ev);
    assert_int_equal(ev.occurred_at_ms, 1769860800250LL);
    mp_event_free(&ev);
    parse_ok("{\"id\":\"e1\",\"eventType\":\"embedded_wallet.created\","
             "\"createdAt\":\"2026-01-31T12:00:00+02:00\",\"data\":{}}",
             &ev);
    assert_int_equal(ev.occurred_at_ms, 0); /* offsets are not guessed at */
    mp_event_free(&ev);
}

static void test_dedupe_keys(void **state)
{
    /* expected values from `printf '%s' BODY | sha256sum` */
    const char *a = "{\"type\":\"NCW_CREATED\",\"tenantId\":\"t1\",\"timestamp\":1700000000000,"
                    "\"data\":{\"walletId\":\"w1\"}}";
    const char *b = "{\"type\":\"NCW_CREATED\", \"tenantId\":\"t1\",\"timestamp\":1700000000000,"
                    "\"data\":{\"walletId\":\"w1\"}}";
    struct mp_event ea, eb;
    parse_ok(a, &ea);
    parse_ok(b, &eb);
    /* the timestamp (1700000000000 ms) in 16 hex digits, then the body's SHA-256 */
    assert_string_equal(ea.dedupe_key,
                        "v1:0000018bcfe56800:"
                        "b973d43efe5254ac98d23d9fcbdcd4f64de040ed39c34846973b113003f37d8f");
    assert_string_equal(eb.dedupe_key,
                        "v1:0000018bcfe56800:"
                        "3857756e443e25e11465db21f157b364f5f8c26dd6b1495adb64563cf8e6261d");
    assert_string_not_equal(ea.dedupe_key, eb.dedupe_key);
    /* the key of versions before schema 5 */
    assert_string_equal(ea.legacy_dedupe_key,
                        "sha256:b973d43efe5254ac98d23d9fcbdcd4f64de040ed39c34846973b113003f37d8f");
    assert_string_equal(ea.event_type, eb.event_type);
    assert_string_equal(ea.wallet_id, "w1");
    mp_event_free(&ea);
    mp_event_free(&eb);
    /* no timestamp: the SHA-256 alone, and no second key */
    parse_ok("{\"type\":\"NCW_CREATED\",\"data\":{}}", &ea);
    assert_int_equal(strncmp(ea.dedupe_key, "sha256:", 7), 0);
    assert_int_equal(strlen(ea.dedupe_key), 7 + 64);
    assert_null(ea.legacy_dedupe_key);
    mp_event_free(&ea);
    /* v2: the id */
    parse_ok("{\"id\":\"e-1\",\"eventType\":\"x.y\",\"createdAt\":1700000000000,\"data\":{}}", &ea);
    assert_string_equal(ea.dedupe_key, "v2:e-1");
    assert_null(ea.legacy_dedupe_key);
    mp_event_free(&ea);
}

/* ---- wakeups ---- */

static void test_tx_status_pending_signature_wakes(void **state)
{
    struct mp_event ev;
    parse_ok("{\"type\":\"NCW_TRANSACTION_STATUS_UPDATED\",\"tenantId\":\"t\",\"timestamp\":5,"
             "\"data\":{\"walletId\":\"w1\",\"txId\":\"tx-1\",\"status\":\"PENDING_SIGNATURE\"}}",
             &ev);
    assert_int_equal(ev.route, MP_ROUTE_WALLET_WAKEUP);
    assert_string_equal(ev.wallet_id, "w1");
    assert_null(ev.payload_path);
    mp_event_free(&ev);
    /* txStatus and a top-level walletId work too */
    parse_ok("{\"type\":\"NCW_TRANSACTION_STATUS_UPDATED\",\"walletId\":\"w2\","
             "\"data\":{\"txStatus\":\"PENDING_SIGNATURE\"}}",
             &ev);
    assert_int_equal(ev.route, MP_ROUTE_WALLET_WAKEUP);
    assert_string_equal(ev.wallet_id, "w2");
    mp_event_free(&ev);
}

static void test_tx_status_other_is_inbox(void **state)
{
    const char *statuses[] = {"COMPLETED", "CANCELLED", "FAILED", "pending_signature"};
    char body[512];
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        struct mp_event ev;
        snprintf(body, sizeof(body),
                 "{\"type\":\"NCW_TRANSACTION_STATUS_UPDATED\",\"data\":{\"walletId\":\"w1\","
                 "\"status\":\"%s\"}}",
                 statuses[i]);
        parse_ok(body, &ev);
        assert_int_equal(ev.route, MP_ROUTE_INBOX_ONLY);
        assert_string_equal(ev.wallet_id, "w1"); /* still kept for the inbox */
        assert_null(ev.payload_path);
        mp_event_free(&ev);
    }
}

static void test_wakeup_without_valid_wallet_is_inbox(void **state)
{
    const char *bodies[] = {
        "{\"type\":\"NCW_TRANSACTION_STATUS_UPDATED\",\"data\":{\"status\":\"PENDING_SIGNATURE\"}}",
        ("{\"type\":\"NCW_TRANSACTION_STATUS_UPDATED\",\"data\":{\"walletId\":\"bad id\","
         "\"status\":\"PENDING_SIGNATURE\"}}"),
        "{\"type\":\"NCW_ADD_DEVICE_SETUP_REQUESTED\",\"data\":{\"walletId\":42}}",
        "{\"type\":\"NCW_ADD_DEVICE_SETUP_REQUESTED\",\"data\":\"w1\"}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct mp_event ev;
        parse_ok(bodies[i], &ev);
        assert_int_equal(ev.route, MP_ROUTE_INBOX_ONLY);
        assert_null(ev.wallet_id);
        assert_null(ev.payload_path);
        mp_event_free(&ev);
    }
}

static void test_add_device_setup_requested_wakes(void **state)
{
    struct mp_event ev;
    parse_ok("{\"type\":\"NCW_ADD_DEVICE_SETUP_REQUESTED\",\"tenantId\":\"t\",\"timestamp\":9,"
             "\"data\":{\"walletId\":\"w7\",\"deviceId\":\"new-dev\",\"requestId\":\"r1\"}}",
             &ev);
    assert_int_equal(ev.route, MP_ROUTE_WALLET_WAKEUP);
    assert_string_equal(ev.wallet_id, "w7");
    assert_string_equal(ev.device_id, "new-dev");
    assert_null(ev.payload_path);
    mp_event_free(&ev);
}

static void test_v2_transactions(void **state)
{
    struct mp_event ev;
    parse_ok("{\"id\":\"e2\",\"eventType\":\"transaction.status.updated\",\"data\":{"
             "\"id\":\"tx\",\"status\":\"PENDING_SIGNATURE\",\"source\":{\"type\":"
             "\"END_USER_WALLET\",\"walletId\":\"ew-1\"}}}",
             &ev);
    assert_int_equal(ev.route, MP_ROUTE_WALLET_WAKEUP);
    assert_string_equal(ev.wallet_id, "ew-1");
    assert_null(ev.payload_path);
    mp_event_free(&ev);
    parse_ok("{\"id\":\"e3\",\"eventType\":\"transaction.created\",\"data\":{\"walletId\":"
             "\"ew-2\",\"status\":\"PENDING_SIGNATURE\"}}",
             &ev);
    assert_int_equal(ev.route, MP_ROUTE_WALLET_WAKEUP);
    assert_string_equal(ev.wallet_id, "ew-2");
    mp_event_free(&ev);
    parse_ok("{\"id\":\"e4\",\"eventType\":\"transaction.created\",\"data\":{\"walletId\":"
             "\"ew-2\",\"status\":\"SUBMITTED\"}}",
             &ev);
    assert_int_equal(ev.route, MP_ROUTE_INBOX_ONLY);
    mp_event_free(&ev);
    /* a vault transaction: no wallet anywhere, still kept */
    parse_ok("{\"id\":\"e5\",\"eventType\":\"transaction.status.updated\",\"data\":{"
             "\"status\":\"PENDING_SIGNATURE\",\"source\":{\"type\":\"VAULT_ACCOUNT\",\"id\":"
             "\"0\"}}}",
             &ev);
    assert_int_equal(ev.route, MP_ROUTE_INBOX_ONLY);
    assert_null(ev.wallet_id);
    mp_event_free(&ev);
    /* a v1 type name in a v2 envelope is not a wakeup rule */
    parse_ok("{\"id\":\"e6\",\"eventType\":\"NCW_ADD_DEVICE_SETUP_REQUESTED\",\"data\":{"
             "\"walletId\":\"w\"}}",
             &ev);
    assert_int_equal(ev.route, MP_ROUTE_INBOX_ONLY);
    mp_event_free(&ev);
}

static void test_unknown_type_is_inbox(void **state)
{
    struct mp_event ev;
    parse_ok("{\"type\":\"END_USER_WALLET_BALANCE_UPDATE\",\"walletId\":\"w1\",\"data\":"
             "{\"deviceId\":\"d1\",\"physicalDeviceId\":\"has space\"}}",
             &ev);
    assert_int_equal(ev.route, MP_ROUTE_INBOX_ONLY);
    assert_string_equal(ev.event_type, "END_USER_WALLET_BALANCE_UPDATE");
    assert_string_equal(ev.wallet_id, "w1");
    assert_string_equal(ev.device_id, "d1");
    assert_null(ev.physical_device_id); /* invalid: left out, not an error */
    assert_null(ev.payload_path);
    mp_event_free(&ev);
    parse_ok("{\"type\":\"SOMETHING_NEW\"}", &ev);
    assert_int_equal(ev.route, MP_ROUTE_INBOX_ONLY);
    assert_null(ev.wallet_id);
    mp_event_free(&ev);
}

/* ---- refused ---- */

static void test_invalid_bodies(void **state)
{
    assert_non_null(strstr(parse_bad("{\"type\":"), "invalid JSON"));
    parse_bad("");
    parse_bad("[{\"type\":\"NCW_CREATED\"}]");
    parse_bad("\"NCW_CREATED\"");
    parse_bad("42");
    assert_string_equal(parse_bad("{\"tenantId\":\"t\",\"data\":{}}"),
                        "not a Fireblocks webhook envelope");
    assert_string_equal(parse_bad("{\"eventType\":\"x.y\",\"data\":{}}"),
                        "not a Fireblocks webhook envelope");
    parse_bad("{\"type\":7}");
    parse_bad("{\"type\":\"\"}");
    parse_bad("{\"type\":\"has space\"}");
    parse_bad("{\"id\":7,\"eventType\":\"x\"}");
    parse_bad("{\"id\":\"bad id\",\"eventType\":\"x\"}");
    parse_bad("{\"id\":\"e1\",\"eventType\":null}");
    /* duplicate keys, at the top and deeper */
    assert_non_null(strstr(parse_bad("{\"type\":\"A\",\"type\":\"B\"}"), "duplicate"));
    parse_bad("{\"type\":\"NCW_CREATED\",\"data\":{\"walletId\":\"a\",\"walletId\":\"b\"}}");
    /* a NUL byte inside the body */
    parse_bad_len("{\"type\":\"NCW_CREATED\"}\0", 23);
    parse_bad_len("{\"type\":\"NCW\0CREATED\"}", 22);
}

static void test_invalid_device_messages(void **state)
{
    char long_id[201], body[512];
    assert_non_null(strstr(parse_bad("{\"type\":\"NCW_DEVICE_MESSAGE\",\"walletId\":\"w1\","
                                     "\"message\":\"m\"}"),
                           "deviceId"));
    assert_non_null(strstr(parse_bad("{\"type\":\"NCW_DEVICE_MESSAGE\",\"deviceId\":\"d1\","
                                     "\"message\":\"m\"}"),
                           "walletId"));
    assert_non_null(strstr(parse_bad("{\"type\":\"NCW_DEVICE_MESSAGE\",\"walletId\":\"w 1\","
                                     "\"deviceId\":\"d1\",\"message\":\"m\"}"),
                           "walletId"));
    memset(long_id, 'a', 200);
    long_id[200] = '\0';
    snprintf(body, sizeof(body),
             "{\"type\":\"NCW_DEVICE_MESSAGE\",\"walletId\":\"%s\",\"deviceId\":\"d1\","
             "\"message\":\"m\"}",
             long_id);
    assert_non_null(strstr(parse_bad(body), "walletId"));
    parse_bad("{\"type\":\"NCW_DEVICE_MESSAGE\",\"walletId\":\"w1\",\"deviceId\":7,"
              "\"message\":\"m\"}");
    parse_bad("{\"type\":\"NCW_DEVICE_MESSAGE\",\"walletId\":\"w1\",\"deviceId\":\"d1\","
              "\"physicalDeviceId\":\"p/1\",\"message\":\"m\"}");
    assert_non_null(strstr(parse_bad("{\"type\":\"NCW_DEVICE_MESSAGE\",\"walletId\":\"w1\","
                                     "\"deviceId\":\"d1\"}"),
                           "without message"));
    parse_bad("{\"type\":\"NCW_DEVICE_MESSAGE\",\"walletId\":\"w1\",\"deviceId\":\"d1\","
              "\"message\":null,\"data\":null}");
}

/* The envelope is read by a scanner that skips the payload: what it must still get right. */
static void test_scanned_envelope(void **state)
{
    struct mp_event ev;
    /* member names and values written with escapes */
    parse_ok("{\"t\\u0079pe\":\"NCW_DEVICE_MESSAGE\",\"wallet\\u0049d\":\"w\\u002d1\","
             "\"data\":{\"device\\u0049d\":\"d\\u002e1\",\"message\":7}}",
             &ev);
    assert_string_equal(ev.event_type, "NCW_DEVICE_MESSAGE");
    assert_string_equal(ev.wallet_id, "w-1");
    assert_string_equal(ev.device_id, "d.1");
    assert_string_equal(ev.payload_path, "{data,message}");
    mp_event_free(&ev);
    assert_non_null(strstr(parse_bad("{\"t\\u0079pe\":\"NCW_DEVICE_MESSAGE\",\"walletId\":"
                                     "\"w1\",\"data\":{\"device\\u0049d\":\"d\\/1\"}}"),
                           "deviceId"));
    /* look-alikes inside strings and deeper objects are not the envelope's members */
    parse_ok("{\"message\":{\"type\":\"x\",\"walletId\":\"no\",\"s\":\"}\\\",\\\"walletId"
             "\\\":\\\"no\"},\"type\":\"NCW_CREATED\",\"data\":{\"deviceId\":\"d1\","
             "\"x\":{\"walletId\":\"no\"},\"source\":{\"walletId\":\"src\"}}}",
             &ev);
    assert_string_equal(ev.wallet_id, "src");
    assert_string_equal(ev.device_id, "d1");
    assert_int_equal(ev.route, MP_ROUTE_INBOX_ONLY);
    mp_event_free(&ev);
    /* a payload of every kind of value is skipped whole */
    parse_ok("{\"type\":\"NCW_DEVICE_MESSAGE\",\"walletId\":\"w1\",\"deviceId\":\"d1\","
             "\"message\":[{\"a\":[1,-2.5e3,true,false,null,\"\\ud83d\\ude00\"]},{}],"
             "\"timestamp\":1.5e3}",
             &ev);
    assert_string_equal(ev.payload_path, "{message}");
    assert_int_equal(ev.occurred_at_ms, 1500);
    mp_event_free(&ev);
}

static void test_scanned_body_refused(void **state)
{
    const char *ok = "{\"type\":\"NCW_CREATED\",\"data\":{\"walletId\":\"w1\"}";
    char body[256];
    /* malformed anywhere in the payload, not only in the envelope */
    parse_bad("{\"type\":\"NCW_CREATED\",\"message\":{\"a\":[1,2,}}");
    parse_bad("{\"type\":\"NCW_CREATED\",\"message\":{\"a\":\"\\x\"}}");
    parse_bad("{\"type\":\"NCW_CREATED\",\"message\":{\"a\":\"\\ud800\"}}");
    parse_bad("{\"type\":\"NCW_CREATED\",\"message\":{\"a\":\"\xc3\"}}");
    parse_bad("{\"type\":\"NCW_CREATED\",\"message\":{\"a\":01}}");
    parse_bad("{\"type\":\"NCW_CREATED\",\"message\":{\"a\":99999999999999999999}}");
    /* duplicates at any depth, escaped or not */
    assert_non_null(strstr(parse_bad("{\"type\":\"NCW_CREATED\",\"message\":[{\"k\":1,"
                                     "\"\\u006b\":2}]}"),
                           "duplicate"));
    parse_bad("{\"type\":\"A\",\"t\\u0079pe\":\"A\"}");
    /* trailing garbage, and no object at the top */
    snprintf(body, sizeof(body), "%s} x", ok);
    assert_non_null(strstr(parse_bad(body), "invalid JSON"));
    snprintf(body, sizeof(body), "%s}}", ok);
    parse_bad(body);
    assert_string_equal(parse_bad("[]"), "the body must be a JSON object");
    parse_bad("   ");
    snprintf(body, sizeof(body), "%s} \n", ok);
    struct mp_event ev;
    parse_ok(body, &ev);
    mp_event_free(&ev);
}

static void test_error_buffer_optional_and_free(void **state)
{
    struct mp_event ev;
    memset(&ev, 0, sizeof(ev));
    mp_event_free(&ev);
    mp_event_free(NULL);
    assert_int_equal(mp_event_parse("nope", 4, &ev, NULL, 0), MP_ERR_INVALID);
    char tiny[8];
    assert_int_equal(mp_event_parse("{}", 2, &ev, tiny, sizeof(tiny)), MP_ERR_INVALID);
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1); /* truncated, terminated */
    mp_event_free(&ev);
    mp_event_free(&ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_message_ids_top_with_message),
        cmocka_unit_test(test_device_message_string_message),
        cmocka_unit_test(test_device_message_ids_and_payload_in_data),
        cmocka_unit_test(test_device_message_ids_top_with_data_message),
        cmocka_unit_test(test_device_message_top_level_wins),
        cmocka_unit_test(test_v2_envelope_dedupe),
        cmocka_unit_test(test_v2_iso_created_at),
        cmocka_unit_test(test_dedupe_keys),
        cmocka_unit_test(test_tx_status_pending_signature_wakes),
        cmocka_unit_test(test_tx_status_other_is_inbox),
        cmocka_unit_test(test_wakeup_without_valid_wallet_is_inbox),
        cmocka_unit_test(test_add_device_setup_requested_wakes),
        cmocka_unit_test(test_v2_transactions),
        cmocka_unit_test(test_unknown_type_is_inbox),
        cmocka_unit_test(test_invalid_bodies),
        cmocka_unit_test(test_invalid_device_messages),
        cmocka_unit_test(test_scanned_envelope),
        cmocka_unit_test(test_scanned_body_refused),
        cmocka_unit_test(test_error_buffer_optional_and_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
