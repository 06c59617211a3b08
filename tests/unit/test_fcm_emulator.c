/* Tests for the FCM client against mpcpush-fcm-emulator (MPCPUSH_EMULATOR_BIN): HTTP/2 over TLS
 * and h2c, connection reuse, every FCM error the emulator can inject, GOAWAY and dropped
 * connections mid-batch, timeouts, access tokens refused, and a throughput figure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emulator_util.h"
#include "fcm_batch.h"
#include "mpcpush/fcm.h"
#include "mpcpush/oauth.h"

struct emu {
    struct eu_emulator eu;
    struct mp_oauth *oauth;
    char token[MP_OAUTH_TOKEN_MAX];
};

/* One emulator for the group; each test resets it. Skips when MPCPUSH_EMULATOR_BIN is unset. */
static int emu_group_setup(void **state)
{
    struct emu *e = calloc(1, sizeof(*e));
    *state = e;
    const char *bin = getenv("MPCPUSH_EMULATOR_BIN");
    if (!bin || !bin[0])
        return 0;
    eu_start(&e->eu, NULL);
    char account[300], ca[300];
    snprintf(account, sizeof(account), "%s/service-account.json", e->eu.dir);
    snprintf(ca, sizeof(ca), "%s/ca.pem", e->eu.dir);
    if (mp_oauth_new(account, NULL, ca, &e->oauth, NULL) != MP_OK ||
        mp_oauth_token(e->oauth, e->token, sizeof(e->token)) != MP_OK)
        return -1;
    return 0;
}

static int emu_group_teardown(void **state)
{
    struct emu *e = *state;
    mp_oauth_free(e->oauth);
    eu_stop(&e->eu);
    free(e);
    return 0;
}

/* Skips without an emulator; otherwise clears its faults, counters and records. */
static struct emu *emu_fresh(void **state)
{
    struct emu *e = *state;
    if (e->eu.pid <= 0) {
        print_message("MPCPUSH_EMULATOR_BIN is not set: skipped\n");
        skip();
    }
    json_decref(eu_control(&e->eu, "POST", "/emulator/reset", NULL));
    /* a reset may forget the tokens it issued: take a new one */
    mp_oauth_invalidate(e->oauth, e->token);
    assert_int_equal(mp_oauth_token(e->oauth, e->token, sizeof(e->token)), MP_OK);
    return e;
}

static struct mp_fcm_client *emu_client(const struct emu *e, bool tls, int connections, int timeout)
{
    char ca[300];
    snprintf(ca, sizeof(ca), "%s/ca.pem", e->eu.dir);
    struct mp_fcm_client *c = NULL;
    assert_int_equal(mp_fcm_client_new(tls ? e->eu.fcm_url : e->eu.ctl,
                                       mp_oauth_project_id(e->oauth), ca, connections, timeout, &c),
                     MP_OK);
    return c;
}

static void test_emu_batch_http2(void **state)
{
    struct emu *e = emu_fresh(state);
    struct mp_fcm_client *c = emu_client(e, true, 4, 10);
    struct fcm_batch b;
    fcm_batch_make(&b, 300);
    /* "connections" counts every connection, each stats request's own included */
    long before = eu_stat(&e->eu, "connections");
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    fcm_batch_expect_ok(&b);
    long after = eu_stat(&e->eu, "connections");
    assert_in_range(after - before - 1, 1, 4);
    assert_int_equal(eu_stat(&e->eu, "accepted"), 300);
    /* the next batch rides the same connections */
    before = eu_stat(&e->eu, "connections");
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    fcm_batch_expect_ok(&b);
    assert_int_equal(eu_stat(&e->eu, "connections") - before - 1, 0);
    assert_int_equal(eu_stat(&e->eu, "accepted"), 600);
    fcm_batch_free(&b);
    mp_fcm_client_free(c);
}

static bool holds_string(json_t *v, const char *text)
{
    const char *key;
    json_t *item;
    size_t i;
    if (json_is_string(v))
        return strcmp(json_string_value(v), text) == 0;
    if (json_is_object(v)) {
        json_object_foreach(v, key, item)
        {
            if (holds_string(item, text))
                return true;
        }
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, item)
        {
            if (holds_string(item, text))
                return true;
        }
    }
    return false;
}

/* What the device receives: the emulator accepted and recorded each platform's wakeup. */
static void test_emu_records_wakeup(void **state)
{
    struct emu *e = emu_fresh(state);
    struct mp_fcm_client *c = emu_client(e, true, 1, 10);
    struct fcm_batch b;
    fcm_batch_make(&b, 3); /* android, ios, web */
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    fcm_batch_expect_ok(&b);
    json_t *records = eu_records(&e->eu, NULL), *record;
    size_t i;
    int wakeups = 0;
    json_array_foreach(records, i, record)
    {
        wakeups += holds_string(record, "mpcpush.wakeup") && holds_string(record, "wallet-1");
    }
    assert_int_equal(wakeups, 3);
    json_decref(records);
    fcm_batch_free(&b);
    mp_fcm_client_free(c);
}

struct fault_case {
    const char *error;
    enum mp_fcm_outcome outcome;
    long status;
};

static void test_emu_faults_per_token(void **state)
{
    struct emu *e = emu_fresh(state);
    static const struct fault_case cases[] = {
        {"UNREGISTERED", MP_FCM_UNREGISTERED, 404},
        {"INVALID_ARGUMENT", MP_FCM_INVALID_TOKEN, 400},
        {"SENDER_ID_MISMATCH", MP_FCM_SENDER_ID_MISMATCH, 403},
        {"QUOTA_EXCEEDED", MP_FCM_QUOTA_EXCEEDED, 429},
        {"UNAVAILABLE", MP_FCM_UNAVAILABLE, 503},
        {"INTERNAL", MP_FCM_INTERNAL, 500},
        {"THIRD_PARTY_AUTH_ERROR", MP_FCM_THIRD_PARTY_AUTH, 401},
        {"UNAUTHENTICATED", MP_FCM_UNAUTHENTICATED, 401},
    };
    size_t ncases = sizeof(cases) / sizeof(cases[0]);
    struct fcm_batch b;
    fcm_batch_make(&b, ncases + 4); /* the last four have no fault */
    json_t *rules = json_array();
    for (size_t i = 0; i < ncases; i++)
        json_array_append_new(rules, json_pack("{s:s, s:s, s:i}", "token", b.tokens[i], "error",
                                               cases[i].error, "retryAfter", 30));
    char *text = json_dumps(rules, JSON_COMPACT);
    eu_faults(&e->eu, text, false);
    free(text);
    json_decref(rules);
    struct mp_fcm_client *c = emu_client(e, true, 2, 10);
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    for (size_t i = 0; i < ncases; i++) {
        const struct mp_fcm_result *r = &b.results[i];
        if (r->outcome != cases[i].outcome || r->http_status != cases[i].status)
            fail_msg("fault %s: got %s/%ld (%s), want %s/%ld", cases[i].error,
                     mp_fcm_outcome_name(r->outcome), r->http_status, r->detail,
                     mp_fcm_outcome_name(cases[i].outcome), cases[i].status);
        assert_null(strstr(r->detail, "APA91b"));
    }
    assert_int_equal(b.results[3].retry_after, 30); /* QUOTA_EXCEEDED */
    for (size_t i = ncases; i < b.n; i++)
        assert_int_equal(b.results[i].outcome, MP_FCM_OK);
    /* cleared faults: everything goes through */
    eu_faults_clear(&e->eu);
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    fcm_batch_expect_ok(&b);
    fcm_batch_free(&b);
    mp_fcm_client_free(c);
}

/* GOAWAY or a dropped connection in the middle of a batch: every request still gets its
 * answer, through the retry on new connections. */
static void connection_fault_survived(void **state, const char *error, const char *counter)
{
    struct emu *e = emu_fresh(state);
    char rule[128];
    snprintf(rule, sizeof(rule), "[{\"token\":\"*\",\"error\":\"%s\",\"count\":1}]", error);
    struct mp_fcm_client *c = emu_client(e, true, 4, 10);
    struct fcm_batch b;
    fcm_batch_make(&b, 300);
    /* warm up so that the fault hits a busy connection, not the first request */
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, 10, b.results), MP_OK);
    eu_faults(&e->eu, rule, false);
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    fcm_batch_expect_ok(&b);
    if (counter)
        assert_true(eu_stat(&e->eu, counter) >= 1);
    fcm_batch_free(&b);
    mp_fcm_client_free(c);
}

static void test_emu_goaway_mid_batch(void **state)
{
    connection_fault_survived(state, "GOAWAY", "goaways");
}

static void test_emu_drop_mid_batch(void **state)
{
    connection_fault_survived(state, "DROP", NULL);
}

static void test_emu_slow_answer_times_out(void **state)
{
    struct emu *e = emu_fresh(state);
    struct fcm_batch b;
    fcm_batch_make(&b, 4);
    char rules[1024];
    /* token 0: slow once (the retry is answered); token 1: slow every time */
    snprintf(rules, sizeof(rules),
             "[{\"token\":\"%s\",\"error\":\"SLOW\",\"delayMs\":3000,\"count\":1},"
             "{\"token\":\"%s\",\"error\":\"SLOW\",\"delayMs\":3000}]",
             b.tokens[0], b.tokens[1]);
    eu_faults(&e->eu, rules, false);
    struct mp_fcm_client *c = emu_client(e, true, 2, 1);
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    assert_int_equal(b.results[0].outcome, MP_FCM_OK);
    assert_int_equal(b.results[0].attempts, 2);
    assert_int_equal(b.results[1].outcome, MP_FCM_NETWORK);
    assert_int_equal(b.results[1].attempts, 2);
    assert_int_equal(b.results[2].outcome, MP_FCM_OK);
    assert_int_equal(b.results[3].outcome, MP_FCM_OK);
    fcm_batch_free(&b);
    mp_fcm_client_free(c);
}

/* http:// on loopback: h2c with prior knowledge (the emulator's plain port sniffs the
 * preface). */
static void test_emu_plain_h2c(void **state)
{
    struct emu *e = emu_fresh(state);
    struct mp_fcm_client *c = emu_client(e, false, 4, 10);
    struct fcm_batch b;
    fcm_batch_make(&b, 50);
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    fcm_batch_expect_ok(&b);
    assert_int_equal(eu_stat(&e->eu, "accepted"), 50);
    fcm_batch_free(&b);
    mp_fcm_client_free(c);
}

/* More requests than connections x streams: the rest wait for streams to free up, on the same
 * connection. */
static void test_emu_batch_above_window(void **state)
{
    struct emu *e = emu_fresh(state);
    struct mp_fcm_client *c = emu_client(e, true, 1, 10);
    struct fcm_batch b;
    fcm_batch_make(&b, 250);
    long before = eu_stat(&e->eu, "connections");
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    fcm_batch_expect_ok(&b);
    for (size_t i = 0; i < b.n; i++)
        assert_int_equal(b.results[i].attempts, 1);
    assert_int_equal(eu_stat(&e->eu, "connections") - before - 1, 1);
    assert_int_equal(eu_stat(&e->eu, "accepted"), 250);
    fcm_batch_free(&b);
    mp_fcm_client_free(c);
}

static void test_emu_bad_access_token(void **state)
{
    struct emu *e = emu_fresh(state);
    struct mp_fcm_client *c = emu_client(e, true, 1, 10);
    struct fcm_batch b;
    fcm_batch_make(&b, 5);
    assert_int_equal(
        mp_fcm_send_batch(c, "ya29.not-issued-by-the-emulator", b.reqs, b.n, b.results), MP_OK);
    assert_int_equal(fcm_batch_count(&b, MP_FCM_UNAUTHENTICATED), b.n);
    fcm_batch_free(&b);
    mp_fcm_client_free(c);
}

/* The dispatcher's cycle after FCM refuses the access token: invalidate, fetch, resend. */
static void test_emu_expired_token_cycle(void **state)
{
    struct emu *e = emu_fresh(state);
    struct mp_fcm_client *c = emu_client(e, true, 1, 10);
    struct fcm_batch b;
    fcm_batch_make(&b, 20);
    long tokens = eu_stat(&e->eu, "token_requests");
    json_decref(eu_control(&e->eu, "POST", "/emulator/expire-tokens", NULL));
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    assert_int_equal(fcm_batch_count(&b, MP_FCM_UNAUTHENTICATED), b.n);
    for (size_t i = 0; i < b.n; i++)
        mp_oauth_invalidate(e->oauth, e->token); /* one per 401: a single refresh */
    char fresh[MP_OAUTH_TOKEN_MAX];
    assert_int_equal(mp_oauth_token(e->oauth, fresh, sizeof(fresh)), MP_OK);
    assert_string_not_equal(fresh, e->token);
    assert_int_equal(eu_stat(&e->eu, "token_requests"), tokens + 1);
    memcpy(e->token, fresh, sizeof(fresh));
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    fcm_batch_expect_ok(&b);
    fcm_batch_free(&b);
    mp_fcm_client_free(c);
}

static void test_emu_throughput(void **state)
{
    struct emu *e = emu_fresh(state);
    const char *env = getenv("MPCPUSH_FCM_BENCH_N");
    size_t n = env ? strtoul(env, NULL, 10) : 5000;
    struct mp_fcm_client *c = emu_client(e, true, 4, 10);
    struct fcm_batch b;
    fcm_batch_make(&b, n);
    long before = eu_stat(&e->eu, "connections");
    double started = fcm_now_seconds();
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    double cold = fcm_now_seconds() - started;
    long used = eu_stat(&e->eu, "connections") - before - 1;
    fcm_batch_expect_ok(&b);
    started = fcm_now_seconds();
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    double warm = fcm_now_seconds() - started;
    fcm_batch_expect_ok(&b);
    assert_in_range(used, 1, 4);
    print_message("send_batch of %zu over at most 4 HTTP/2 connections: %.3f s cold (%.0f/s), "
                  "%.3f s warm (%.0f/s); the batch opened %ld connections\n",
                  n, cold, (double)n / cold, warm, (double)n / warm, used);
    fcm_batch_free(&b);
    mp_fcm_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emu_batch_http2),
        cmocka_unit_test(test_emu_records_wakeup),
        cmocka_unit_test(test_emu_faults_per_token),
        cmocka_unit_test(test_emu_goaway_mid_batch),
        cmocka_unit_test(test_emu_drop_mid_batch),
        cmocka_unit_test(test_emu_slow_answer_times_out),
        cmocka_unit_test(test_emu_plain_h2c),
        cmocka_unit_test(test_emu_batch_above_window),
        cmocka_unit_test(test_emu_bad_access_token),
        cmocka_unit_test(test_emu_expired_token_cycle),
        cmocka_unit_test(test_emu_throughput),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, emu_group_setup, emu_group_teardown);
}
