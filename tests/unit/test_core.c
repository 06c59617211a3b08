/* Core pieces: bounded buffers, log quoting and redaction, validation, rate limits, backoff. */
#include "harness.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "mpcpush/buf.h"
#include "mpcpush/log.h"
#include "mpcpush/ratelimit.h"
#include "mpcpush/validate.h"
#include "push/dispatch-int.h"

static void test_buf_limit(void **state)
{
    struct mp_buf buf;
    mp_buf_init(&buf, 8);
    assert_int_equal(mp_buf_puts(&buf, "12345678"), MP_OK);
    assert_int_equal(mp_buf_puts(&buf, "9"), MP_ERR_TOO_LARGE);
    assert_int_equal(buf.len, 8);
    assert_string_equal(buf.data, "12345678");
    mp_buf_reset(&buf);
    assert_int_equal(mp_buf_printf(&buf, "%d-%s", 42, "x"), MP_OK);
    assert_string_equal(buf.data, "42-x");
    char *stolen = mp_buf_steal(&buf);
    assert_string_equal(stolen, "42-x");
    assert_null(buf.data);
    free(stolen);
    mp_buf_free(&buf);
}

/* Every string becomes a JSON string jansson parses back to the same text, or to the text with
 * U+FFFD where the input was not UTF-8. */
static void json_string_is(const char *in, const char *literal, const char *decoded)
{
    struct mp_buf b;
    mp_buf_init(&b, 0);
    assert_int_equal(mp_buf_json_string(&b, in), MP_OK);
    if (literal)
        assert_string_equal(b.data, literal);
    json_error_t err;
    json_t *v = json_loadb(b.data, b.len, JSON_DECODE_ANY, &err);
    assert_non_null(v);
    assert_string_equal(json_string_value(v), decoded);
    json_decref(v);
    mp_buf_free(&b);
}

static void test_buf_json_string(void **state)
{
    (void)state;
    json_string_is("", "\"\"", "");
    json_string_is("plain text", "\"plain text\"", "plain text");
    json_string_is("q\"b\\", "\"q\\\"b\\\\\"", "q\"b\\");
    json_string_is("a\nb\x01\x1f", "\"a\\u000ab\\u0001\\u001f\"", "a\nb\x01\x1f");
    json_string_is("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91", NULL,
                   "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91");
    /* stray continuation byte, truncated sequence, overlong '/', surrogate, past U+10FFFF */
    json_string_is("a\x80"
                   "b",
                   NULL,
                   "a\xef\xbf\xbd"
                   "b");
    json_string_is("\xe2\x82", NULL, "\xef\xbf\xbd\xef\xbf\xbd");
    json_string_is("\xc0\xaf", NULL, "\xef\xbf\xbd\xef\xbf\xbd");
    json_string_is("\xed\xa0\x80", NULL, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    json_string_is("\xf4\x90\x80\x80", NULL, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    /* the buffer's limit holds */
    struct mp_buf b;
    mp_buf_init(&b, 8);
    assert_int_equal(mp_buf_json_string(&b, "0123456789"), MP_ERR_TOO_LARGE);
    mp_buf_free(&b);
}

static void test_log_quote(void **state)
{
    char out[64];
    assert_string_equal(mp_log_quote(out, sizeof(out), "plain"), "plain");
    assert_string_equal(mp_log_quote(out, sizeof(out), "two words"), "\"two words\"");
    assert_string_equal(mp_log_quote(out, sizeof(out), "a\"b\\c"), "\"a\\\"b\\\\c\"");
    assert_string_equal(mp_log_quote(out, sizeof(out), "line\nbreak"), "\"line\\x0abreak\"");
    assert_string_equal(mp_log_quote(out, sizeof(out), ""), "\"\"");
    assert_string_equal(mp_log_quote(out, sizeof(out), "k=v"), "\"k=v\"");
    /* truncation keeps it a string */
    char small[8];
    mp_log_quote(small, sizeof(small), "a very long value with spaces");
    assert_true(strlen(small) < sizeof(small));
}

static void test_log_redact(void **state)
{
    char out[32];
    const char *token = "dGhpcyBpcyBhIHNlY3JldCBGQ00gdG9rZW4gdmFsdWU:APA91bHabcdef";
    mp_log_redact(out, sizeof(out), token);
    assert_string_equal(out, "...abcdef");
    assert_null(strstr(out, "APA91"));
    mp_log_redact(out, sizeof(out), "abc");
    assert_string_equal(out, "...abc");
}

static void test_validate(void **state)
{
    assert_true(mp_valid_id("wallet-1_a.b:c", 14));
    assert_false(mp_valid_id("", 0));
    assert_false(mp_valid_id("has space", 9));
    assert_false(mp_valid_id("nul\0byte", 8));
    assert_false(mp_valid_id("slash/no", 8));
    char long_id[130];
    memset(long_id, 'a', sizeof(long_id));
    assert_true(mp_valid_id(long_id, 128));
    assert_false(mp_valid_id(long_id, 129));
    assert_true(mp_valid_fcm_token("APA91b:x-y_z", 12));
    assert_false(mp_valid_fcm_token("tok en", 6));
    assert_false(mp_valid_fcm_token("t\x80", 2));
    assert_true(mp_valid_platform("ios"));
    assert_false(mp_valid_platform("IOS"));
    assert_false(mp_valid_platform(NULL));
}

static void test_ratelimit(void **state)
{
    struct mp_ratelimit *rl = NULL;
    assert_int_equal(mp_ratelimit_new(3, &rl), MP_OK);
    assert_false(mp_ratelimit_over(rl, "10.0.0.1"));
    for (int i = 0; i < 3; i++)
        assert_true(mp_ratelimit_allow(rl, "10.0.0.1"));
    assert_false(mp_ratelimit_allow(rl, "10.0.0.1"));
    assert_true(mp_ratelimit_over(rl, "10.0.0.1"));
    assert_true(mp_ratelimit_allow(rl, "10.0.0.2")); /* another key has its own budget */
    int after = mp_ratelimit_retry_after();
    assert_true(after >= 1 && after <= 60);
    mp_ratelimit_free(rl);
    assert_int_equal(mp_ratelimit_new(0, &rl), MP_OK); /* 0: unlimited */
    for (int i = 0; i < 1000; i++)
        assert_true(mp_ratelimit_allow(rl, "x"));
    mp_ratelimit_free(rl);
}

static void test_backoff(void **state)
{
    struct mp_config cfg = {.retry_base_ms = 1000, .retry_max_seconds = 600};
    unsigned seed = 1;
    for (int attempts = 0; attempts < 20; attempts++) {
        long long full = 1000LL << (attempts < 20 ? attempts : 20);
        if (full > 600000)
            full = 600000;
        for (int i = 0; i < 50; i++) {
            long long d = mp_dispatch_backoff_ms(&cfg, attempts, -1, &seed);
            assert_true(d >= full / 2);
            assert_true(d <= full);
        }
    }
    /* Retry-After wins when longer than the backoff */
    assert_true(mp_dispatch_backoff_ms(&cfg, 0, 120, &seed) == 120000);
    assert_true(mp_dispatch_backoff_ms(&cfg, 10, 0, &seed) >= 300000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_limit), cmocka_unit_test(test_buf_json_string),
        cmocka_unit_test(test_log_quote), cmocka_unit_test(test_log_redact),
        cmocka_unit_test(test_validate),  cmocka_unit_test(test_ratelimit),
        cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
