/* POST /webhooks/fireblocks, signatures and configuration: v1, v2, both headers, the rotated
 * second key, tampering, bad base64, unknown kid, missing header, the unconfigured 503, a
 * receiver with only one kind of key, and the configured message TTL. */
#define _GNU_SOURCE
#include "harness_extra.h"
#include "webhook_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    /* Not registered: stored, but nothing to push (the push row owes nothing). */
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes"
                                        " WHERE wanted_id > covered_id OR fcm_token IS NOT NULL"),
                     0);
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
    assert_rejected(e, body, "Fireblocks-Signature: !!!not*base64%%%", NULL, 401, "bad_signature");
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
    assert_rejected(e, body, "Fireblocks-Webhook-Signature: abc.def", NULL, 401, "bad_signature");
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
        T(test_v1_valid),           T(test_v2_valid),      T(test_both_headers),
        T(test_rotated_second_key), T(test_v1_rejections), T(test_v2_rejections),
        D(test_not_configured),     D(test_only_jwks),     D(test_only_pubkeys_and_ttl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
