/* Unit tests for mp_fcm_classify: every row of the FCM error table with the bodies Google
 * actually sends, the fallbacks for bodies that are not Google's, and Retry-After. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mpcpush/fcm.h"

#define FCM_ERROR(code)                                                                            \
    "{\"@type\":\"type.googleapis.com/google.firebase.fcm.v1.FcmError\","                          \
    "\"errorCode\":\"" code "\"}"

static struct mp_fcm_result classify(long status, const char *body, const char *retry_after)
{
    struct mp_fcm_result r;
    memset(&r, 0x5a, sizeof(r)); /* every field must be written */
    mp_fcm_classify(status, body, body ? strlen(body) : 0, retry_after, &r);
    return r;
}

static void expect(long status, const char *body, enum mp_fcm_outcome outcome)
{
    struct mp_fcm_result r = classify(status, body, NULL);
    if (r.outcome != outcome)
        fail_msg("status %ld body %s: got %s, want %s", status, body ? body : "(null)",
                 mp_fcm_outcome_name(r.outcome), mp_fcm_outcome_name(outcome));
    assert_int_equal(r.http_status, status);
    assert_int_equal(r.retry_after, -1);
    assert_true(memchr(r.detail, '\0', sizeof(r.detail)) != NULL);
    assert_true(memchr(r.name, '\0', sizeof(r.name)) != NULL);
}

static void test_success_name(void **state)
{
    (void)state;
    struct mp_fcm_result r = classify(
        200, "{\"name\":\"projects/myproject-b5ae1/messages/0:1500415314455276%31bd1c9631bd1c96\"}",
        NULL);
    assert_int_equal(r.outcome, MP_FCM_OK);
    assert_string_equal(r.name,
                        "projects/myproject-b5ae1/messages/0:1500415314455276%31bd1c9631bd1c96");
    assert_string_equal(r.detail, "");
    assert_int_equal(r.retry_after, -1);
    assert_int_equal(r.attempts, 0);

    r = classify(200, "", NULL);
    assert_int_equal(r.outcome, MP_FCM_OK);
    assert_string_equal(r.name, "");
    r = classify(200, "{\"name\":42}", NULL);
    assert_int_equal(r.outcome, MP_FCM_OK);
    assert_string_equal(r.name, "");
}

static void test_invalid_token(void **state)
{
    (void)state;
    expect(400,
           "{\"error\":{\"code\":400,\"message\":\"The registration token is not a valid FCM "
           "registration token\",\"status\":\"INVALID_ARGUMENT\",\"details\":[" FCM_ERROR(
               "INVALID_ARGUMENT") "]}}",
           MP_FCM_INVALID_TOKEN);
    /* BadRequest naming the field, with a message that does not */
    expect(400,
           "{\"error\":{\"code\":400,\"message\":\"Request contains an invalid argument.\","
           "\"status\":\"INVALID_ARGUMENT\",\"details\":[" FCM_ERROR(
               "INVALID_ARGUMENT") ","
                                   "{\"@type\":\"type.googleapis.com/"
                                   "google.rpc.BadRequest\",\"fieldViolations\":"
                                   "[{\"field\":\"message.token\",\"description\":\"Invalid "
                                   "registration token\"}]}]}}",
           MP_FCM_INVALID_TOKEN);
    /* the status alone, no FcmError */
    expect(400,
           "{\"error\":{\"code\":400,\"message\":\"Invalid value at 'message.token' "
           "(TYPE_STRING)\",\"status\":\"INVALID_ARGUMENT\"}}",
           MP_FCM_INVALID_TOKEN);
    assert_true(mp_fcm_outcome_is_token_dead(MP_FCM_INVALID_TOKEN));
}

static void test_invalid_argument_not_token(void **state)
{
    (void)state;
    /* a reserved data key: the message is bad, the token is fine */
    expect(400,
           "{\"error\":{\"code\":400,\"message\":\"Invalid data payload key: from\","
           "\"status\":\"INVALID_ARGUMENT\",\"details\":[" FCM_ERROR("INVALID_ARGUMENT") "]}}",
           MP_FCM_INVALID_ARGUMENT);
    expect(400,
           "{\"error\":{\"code\":400,\"message\":\"Invalid value at 'message.data[0].value' "
           "(TYPE_STRING), 1\",\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":"
           "\"type.googleapis.com/google.rpc.BadRequest\",\"fieldViolations\":[{\"field\":"
           "\"message.data[0].value\",\"description\":\"Invalid value at "
           "'message.data[0].value' (TYPE_STRING), 1\"}]}]}}",
           MP_FCM_INVALID_ARGUMENT);
    expect(400,
           "{\"error\":{\"code\":400,\"message\":\"Message is too big\",\"status\":"
           "\"INVALID_ARGUMENT\",\"details\":[" FCM_ERROR("INVALID_ARGUMENT") "]}}",
           MP_FCM_INVALID_ARGUMENT);
    assert_false(mp_fcm_outcome_is_token_dead(MP_FCM_INVALID_ARGUMENT));
    assert_false(mp_fcm_outcome_is_retryable(MP_FCM_INVALID_ARGUMENT));
}

static void test_unregistered(void **state)
{
    (void)state;
    const char *body = "{\"error\":{\"code\":404,\"message\":\"Requested entity was not found.\","
                       "\"status\":\"NOT_FOUND\",\"details\":[" FCM_ERROR("UNREGISTERED") "]}}";
    expect(404, body, MP_FCM_UNREGISTERED);
    struct mp_fcm_result r = classify(404, body, NULL);
    assert_string_equal(r.detail, "NOT_FOUND/UNREGISTERED: Requested entity was not found.");
    assert_true(mp_fcm_outcome_is_token_dead(MP_FCM_UNREGISTERED));
}

static void test_sender_id_mismatch(void **state)
{
    (void)state;
    expect(403,
           "{\"error\":{\"code\":403,\"message\":\"SenderId mismatch\",\"status\":"
           "\"PERMISSION_DENIED\",\"details\":[" FCM_ERROR("SENDER_ID_MISMATCH") "]}}",
           MP_FCM_SENDER_ID_MISMATCH);
    assert_true(mp_fcm_outcome_is_token_dead(MP_FCM_SENDER_ID_MISMATCH));
}

static void test_quota(void **state)
{
    (void)state;
    const char *body = "{\"error\":{\"code\":429,\"message\":\"Quota exceeded.\",\"status\":"
                       "\"RESOURCE_EXHAUSTED\",\"details\":[" FCM_ERROR("QUOTA_EXCEEDED") "]}}";
    struct mp_fcm_result r = classify(429, body, "120");
    assert_int_equal(r.outcome, MP_FCM_QUOTA_EXCEEDED);
    assert_int_equal(r.retry_after, 120);
    assert_true(mp_fcm_outcome_is_retryable(r.outcome));
    assert_false(mp_fcm_outcome_is_token_dead(r.outcome));
}

static void test_rate_limit_without_fcm_error(void **state)
{
    (void)state;
    expect(429,
           "{\"error\":{\"code\":429,\"message\":\"Quota exceeded for quota metric 'Send "
           "requests' and limit 'Send requests per minute' of service 'fcm.googleapis.com' for "
           "consumer 'project_number:123456789'.\",\"status\":\"RESOURCE_EXHAUSTED\","
           "\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":"
           "\"RATE_LIMIT_EXCEEDED\",\"domain\":\"googleapis.com\",\"metadata\":{\"service\":"
           "\"fcm.googleapis.com\",\"quota_metric\":\"fcm.googleapis.com/send\"}},{\"@type\":"
           "\"type.googleapis.com/google.rpc.Help\",\"links\":[{\"description\":\"Request a "
           "higher quota limit.\",\"url\":\"https://cloud.google.com/docs/quota\"}]}]}}",
           MP_FCM_QUOTA_EXCEEDED);
    /* the reason alone decides even when the status says otherwise */
    expect(403,
           "{\"error\":{\"code\":403,\"message\":\"Rate exceeded\",\"status\":"
           "\"PERMISSION_DENIED\",\"details\":[{\"@type\":\"type.googleapis.com/"
           "google.rpc.ErrorInfo\",\"reason\":\"RATE_LIMIT_EXCEEDED\"}]}}",
           MP_FCM_QUOTA_EXCEEDED);
}

static void test_unavailable_internal(void **state)
{
    (void)state;
    expect(503,
           "{\"error\":{\"code\":503,\"message\":\"The service is currently unavailable.\","
           "\"status\":\"UNAVAILABLE\",\"details\":[" FCM_ERROR("UNAVAILABLE") "]}}",
           MP_FCM_UNAVAILABLE);
    expect(500,
           "{\"error\":{\"code\":500,\"message\":\"Internal error encountered.\",\"status\":"
           "\"INTERNAL\",\"details\":[" FCM_ERROR("INTERNAL") "]}}",
           MP_FCM_INTERNAL);
    assert_true(mp_fcm_outcome_is_retryable(MP_FCM_UNAVAILABLE));
    assert_true(mp_fcm_outcome_is_retryable(MP_FCM_INTERNAL));
}

static void test_third_party_auth(void **state)
{
    (void)state;
    expect(401,
           "{\"error\":{\"code\":401,\"message\":\"Auth error from APNS or Web Push Service\","
           "\"status\":\"UNAUTHENTICATED\",\"details\":[" FCM_ERROR("THIRD_PARTY_AUTH_ERROR") "]}}",
           MP_FCM_THIRD_PARTY_AUTH);
    expect(401,
           "{\"error\":{\"code\":401,\"message\":\"Auth error from APNS\",\"status\":"
           "\"UNAUTHENTICATED\",\"details\":[" FCM_ERROR("APNS_AUTH_ERROR") "]}}",
           MP_FCM_THIRD_PARTY_AUTH);
    assert_false(mp_fcm_outcome_is_token_dead(MP_FCM_THIRD_PARTY_AUTH));
    assert_false(mp_fcm_outcome_is_retryable(MP_FCM_THIRD_PARTY_AUTH));
    assert_true(mp_fcm_outcome_is_config_error(MP_FCM_THIRD_PARTY_AUTH));
}

static void test_unauthenticated(void **state)
{
    (void)state;
    expect(401,
           "{\"error\":{\"code\":401,\"message\":\"Request had invalid authentication "
           "credentials. Expected OAuth 2 access token, login cookie or other valid "
           "authentication credential. See https://developers.google.com/identity/sign-in/web/"
           "devconsole-project.\",\"status\":\"UNAUTHENTICATED\",\"details\":[{\"@type\":"
           "\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":\"ACCESS_TOKEN_EXPIRED\","
           "\"domain\":\"googleapis.com\",\"metadata\":{\"service\":\"fcm.googleapis.com\","
           "\"method\":\"google.firebase.fcm.v1.FcmService.SendMessage\"}}]}}",
           MP_FCM_UNAUTHENTICATED);
    expect(401,
           "{\"error\":{\"code\":401,\"message\":\"Request had invalid authentication "
           "credentials.\",\"status\":\"UNAUTHENTICATED\"}}",
           MP_FCM_UNAUTHENTICATED);
    assert_true(mp_fcm_outcome_is_retryable(MP_FCM_UNAUTHENTICATED));
}

static void test_permission_denied(void **state)
{
    (void)state;
    expect(403,
           "{\"error\":{\"code\":403,\"message\":\"Permission 'cloudmessaging.messages.create' "
           "denied on resource '//cloudresourcemanager.googleapis.com/projects/my-project' (or "
           "it may not exist).\",\"status\":\"PERMISSION_DENIED\",\"details\":[{\"@type\":"
           "\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":\"IAM_PERMISSION_DENIED\","
           "\"domain\":\"cloudresourcemanager.googleapis.com\",\"metadata\":{\"permission\":"
           "\"cloudmessaging.messages.create\"}}]}}",
           MP_FCM_PERMISSION_DENIED);
    assert_false(mp_fcm_outcome_is_token_dead(MP_FCM_PERMISSION_DENIED));
    assert_true(mp_fcm_outcome_is_config_error(MP_FCM_PERMISSION_DENIED));
}

static void test_http_fallbacks(void **state)
{
    (void)state;
    const char *html = "<html><head><title>502 Bad Gateway</title></head><body>"
                       "<h1>Bad Gateway</h1></body></html>";
    expect(502, html, MP_FCM_UNAVAILABLE);
    expect(504, html, MP_FCM_UNAVAILABLE);
    expect(503, "", MP_FCM_UNAVAILABLE);
    expect(503, NULL, MP_FCM_UNAVAILABLE);
    expect(500, "not json at all {", MP_FCM_INTERNAL);
    expect(400, "garbage", MP_FCM_INVALID_ARGUMENT);
    expect(401, "", MP_FCM_UNAUTHENTICATED);
    expect(403, "Forbidden", MP_FCM_PERMISSION_DENIED);
    expect(429, "", MP_FCM_QUOTA_EXCEEDED);
    expect(408, "", MP_FCM_UNAVAILABLE);
    expect(418, "", MP_FCM_UNKNOWN);
    expect(302, "", MP_FCM_UNKNOWN);
    expect(0, NULL, MP_FCM_NETWORK);
    struct mp_fcm_result r = classify(502, html, NULL);
    assert_string_equal(r.detail, "http 502 without an FCM error body");
}

/* A 404 is a dead token only when Google's body says UNREGISTERED: a wrong URL or a proxy
 * must not wipe every token. */
static void test_404_needs_evidence(void **state)
{
    (void)state;
    expect(404, "<html><body>Not Found</body></html>", MP_FCM_UNKNOWN);
    expect(404, "", MP_FCM_UNKNOWN);
    expect(404,
           "{\"error\":{\"code\":404,\"message\":\"Requested entity was not found.\","
           "\"status\":\"NOT_FOUND\"}}",
           MP_FCM_UNKNOWN);
    assert_true(mp_fcm_outcome_is_retryable(MP_FCM_UNKNOWN));
    assert_false(mp_fcm_outcome_is_token_dead(MP_FCM_UNKNOWN));
}

static void test_odd_shapes(void **state)
{
    (void)state;
    expect(400, "{\"error\":\"bad\"}", MP_FCM_INVALID_ARGUMENT);
    expect(400, "[1,2,3]", MP_FCM_INVALID_ARGUMENT);
    expect(404, "{\"error\":{\"details\":{\"errorCode\":\"UNREGISTERED\"}}}", MP_FCM_UNKNOWN);
    expect(404,
           "{\"error\":{\"status\":7,\"details\":[1,\"x\",null,{\"@type\":5},{\"@type\":"
           "\"type.googleapis.com/google.firebase.fcm.v1.FcmError\",\"errorCode\":3}]}}",
           MP_FCM_UNKNOWN);
    /* a later FcmError still counts when earlier entries are junk */
    expect(404, "{\"error\":{\"details\":[{},{\"@type\":null}," FCM_ERROR("UNREGISTERED") "]}}",
           MP_FCM_UNREGISTERED);
    /* an unknown FcmError code falls back to the status */
    expect(
        503,
        "{\"error\":{\"status\":\"UNAVAILABLE\",\"details\":[" FCM_ERROR("UNSPECIFIED_ERROR") "]}}",
        MP_FCM_UNAVAILABLE);
    expect(400,
           "{\"error\":{\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"type."
           "googleapis.com/google.rpc.BadRequest\",\"fieldViolations\":\"message.token\"}]}}",
           MP_FCM_INVALID_ARGUMENT);
    /* the body is len bytes, not NUL-terminated */
    const char body[] = "{\"error\":{\"status\":\"INTERNAL\"}}trailing junk";
    struct mp_fcm_result r;
    mp_fcm_classify(500, body, strlen("{\"error\":{\"status\":\"INTERNAL\"}}"), NULL, &r);
    assert_int_equal(r.outcome, MP_FCM_INTERNAL);
    assert_string_equal(r.detail, "INTERNAL");
}

static void test_detail_never_holds_a_token(void **state)
{
    (void)state;
    const char *token = "dXk1aGl3S0FTeW91cmRldmljZXRva2VuaXNoZXJl:APA91bHun4MxP5egoKMwt2KZFBaFUH"
                        "-1RYqx-cygNVqEZ3sTdcGXqVWUD7tLgbNYeJfm_dd8kyLjFSN4mgrxzXgK0ouJCsuQtZj";
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"error\":{\"code\":400,\"message\":\"Invalid registration token %s\","
             "\"status\":\"INVALID_ARGUMENT\"}}",
             token);
    struct mp_fcm_result r = classify(400, body, NULL);
    assert_int_equal(r.outcome, MP_FCM_INVALID_TOKEN);
    assert_null(strstr(r.detail, "APA91b"));
    assert_non_null(strstr(r.detail, "<redacted>"));
    /* control characters never reach the logs */
    r = classify(500, "{\"error\":{\"status\":\"INTERNAL\",\"message\":\"a\\nb\\u0001c\"}}", NULL);
    assert_string_equal(r.detail, "INTERNAL: a b c");
}

static void test_retry_after(void **state)
{
    (void)state;
    const char *body = "{\"error\":{\"status\":\"UNAVAILABLE\"}}";
    assert_int_equal(classify(503, body, "120").retry_after, 120);
    assert_int_equal(classify(503, body, "  30 ").retry_after, 30);
    assert_int_equal(classify(503, body, "0").retry_after, 0);
    assert_int_equal(classify(503, body, "99999999999").retry_after, 86400);
    assert_int_equal(classify(503, body, "soon").retry_after, -1);
    assert_int_equal(classify(503, body, "12abc").retry_after, -1);
    assert_int_equal(classify(503, body, "-5").retry_after, -1);
    assert_int_equal(classify(503, body, "").retry_after, -1);
    assert_int_equal(classify(503, body, NULL).retry_after, -1);

    char date[64];
    time_t later = time(NULL) + 120;
    struct tm tm;
    gmtime_r(&later, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    int seconds = classify(503, body, date).retry_after;
    assert_in_range(seconds, 115, 120);
    assert_int_equal(classify(503, body, "Wed, 21 Oct 2015 07:28:00 GMT").retry_after, 0);
    assert_int_equal(classify(503, body, "Sunday, 06-Nov-94 08:49:37 GMT").retry_after, 0);
}

static void test_outcome_names(void **state)
{
    (void)state;
    for (int i = 0; i < MP_FCM_OUTCOME_COUNT; i++) {
        const char *name = mp_fcm_outcome_name((enum mp_fcm_outcome)i);
        assert_non_null(name);
        assert_true(strspn(name, "abcdefghijklmnopqrstuvwxyz_") == strlen(name));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(name, mp_fcm_outcome_name((enum mp_fcm_outcome)j));
        /* a token is dead, or retrying may help, or neither; never both */
        assert_false(mp_fcm_outcome_is_token_dead((enum mp_fcm_outcome)i) &&
                     mp_fcm_outcome_is_retryable((enum mp_fcm_outcome)i));
    }
    assert_string_equal(mp_fcm_outcome_name(MP_FCM_OK), "ok");
    assert_string_equal(mp_fcm_outcome_name(MP_FCM_SENDER_ID_MISMATCH), "sender_id_mismatch");
    assert_string_equal(mp_fcm_outcome_name((enum mp_fcm_outcome)99), "unknown");
    assert_false(mp_fcm_outcome_is_retryable(MP_FCM_OK));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success_name),
        cmocka_unit_test(test_invalid_token),
        cmocka_unit_test(test_invalid_argument_not_token),
        cmocka_unit_test(test_unregistered),
        cmocka_unit_test(test_sender_id_mismatch),
        cmocka_unit_test(test_quota),
        cmocka_unit_test(test_rate_limit_without_fcm_error),
        cmocka_unit_test(test_unavailable_internal),
        cmocka_unit_test(test_third_party_auth),
        cmocka_unit_test(test_unauthenticated),
        cmocka_unit_test(test_permission_denied),
        cmocka_unit_test(test_http_fallbacks),
        cmocka_unit_test(test_404_needs_evidence),
        cmocka_unit_test(test_odd_shapes),
        cmocka_unit_test(test_detail_never_holds_a_token),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_outcome_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
