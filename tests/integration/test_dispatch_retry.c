/* The dispatcher's retries, black-box, each test with its own emulator: QUOTA_EXCEEDED pauses
 * the whole project (Retry-After, else 60 s capped by MPCPUSH_RETRY_MAX) and nothing is sent
 * meanwhile; UNAVAILABLE and INTERNAL back off exponentially with jitter (Retry-After wins),
 * counting attempts, and deliver in the end. The times compared are the emulator's: its
 * counters sampled every few milliseconds (rejections) and the "at" of accepted messages. */
#define _GNU_SOURCE
#include "emulator_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Test timings: MPCPUSH_RETRY_BASE_MS=200 (first backoff 100..200 ms, then 200..400 ms),
 * MPCPUSH_RETRY_MAX=5. */
#define FIRST_BACKOFF_MIN  100
#define SECOND_BACKOFF_MIN 200
#define SLACK              25 /* sampling and clock granularity, ms */

static void start_own(struct eu_env *env)
{
    eu_start(&env->emu, NULL);
    eu_start_mpcpush(&env->t, "run", &env->emu, NULL);
}

static void fault(const struct eu_env *env, const char *token, const char *error, int count,
                  int retry_after)
{
    char rule[512], extra[64] = "";
    if (count > 0)
        snprintf(extra, sizeof(extra), ",\"count\":%d", count);
    if (retry_after >= 0)
        snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra), ",\"retryAfter\":%d",
                 retry_after);
    snprintf(rule, sizeof(rule), "[{\"token\":\"%s\",\"error\":\"%s\"%s}]", token, error, extra);
    eu_faults(&env->emu, rule, true);
}

/* Samples by_error[error] every 5 ms until it reaches want; returns the wall clock (unix ms)
 * at which that was seen: no earlier than the rejection, and at most a few ms later. */
static long long seen_errors(const struct eu_env *env, const char *error, long want, int timeout_ms)
{
    long got = 0;
    for (long deadline = tx_now_ms() + timeout_ms; tx_now_ms() < deadline; usleep(5000))
        if ((got = eu_errors(&env->emu, error)) >= want)
            return eu_unix_ms();
    fail_msg("by_error.%s stayed at %ld, expected %ld within %d ms", error, got, want, timeout_ms);
    return 0;
}

/* The "at" of the first record of token, waiting up to timeout_ms. */
static long long delivered_at(const struct eu_env *env, const char *token, int timeout_ms)
{
    if (eu_wait_records(&env->emu, token, 1, timeout_ms) < 1)
        fail_msg("no wakeup for %s within %d ms", token, timeout_ms);
    json_t *list = eu_records(&env->emu, token);
    long long at = (long long)json_integer_value(json_object_get(json_array_get(list, 0), "at"));
    json_decref(list);
    return at;
}

static void wait_push(const char *db, const char *device, const char *cond, int timeout_ms)
{
    if (eu_wait_sql(db, 1, timeout_ms,
                    "SELECT count(*) FROM mpcpush.pushes WHERE wallet_id = 'w' AND"
                    " device_id = '%s' AND %s",
                    device, cond) != 1) {
        char *row = tx_sql_textf(db,
                                 "SELECT row_to_json(p)::text FROM mpcpush.pushes p WHERE"
                                 " device_id = '%s'",
                                 device);
        fail_msg("push of %s: not (%s) within %d ms: %s", device, cond, timeout_ms,
                 row ? row : "(no row)");
    }
}

/* Asserts that send_requests stays at want until the wall clock reaches until_ms. */
static void assert_quiet_until(const struct eu_env *env, long want, long long until_ms)
{
    while (eu_unix_ms() < until_ms) {
        long n = eu_stat(&env->emu, "send_requests");
        if (n != want)
            fail_msg("a request reached FCM %lld ms before the pause ended (%ld requests)",
                     until_ms - eu_unix_ms(), n);
        usleep(50000);
    }
}

/* ---- quota ---- */

static void test_quota_retry_after_pauses_project(void **state)
{
    struct eu_env *env = *state;
    start_own(env);
    char tq[128], tb[128];
    eu_token(tq, sizeof(tq), "quota", 0);
    eu_token(tb, sizeof(tb), "bystander", 0);
    fault(env, tq, "QUOTA_EXCEEDED", 1, 2);
    eu_register(&env->t, "w", "q", tq, "android");
    eu_register(&env->t, "w", "b", tb, "android");
    free(pu_enqueue(&env->t, "w", "q", "{\"n\":1}", 0));
    long long refused = seen_errors(env, "QUOTA_EXCEEDED", 1, 10000);
    /* The pause is shared through the database; another device waits too. */
    if (eu_wait_sql(env->t.db, 1, 2000,
                    "SELECT count(*) FROM mpcpush.fcm_pauses WHERE reason = 'QUOTA_EXCEEDED'"
                    " AND paused_until - updated_at BETWEEN interval '1.9 seconds'"
                    " AND interval '2.1 seconds'") != 1)
        fail_msg("no project pause of 2 s in mpcpush.fcm_pauses");
    free(pu_enqueue(&env->t, "w", "b", "{\"n\":1}", 0));
    assert_quiet_until(env, 1, refused + 2000 - 150);
    long long at_q = delivered_at(env, tq, 5000), at_b = delivered_at(env, tb, 5000);
    printf("quota refused at +0, delivered q at +%lld ms, b at +%lld ms\n", at_q - refused,
           at_b - refused);
    if (at_q < refused + 2000 - SLACK || at_b < refused + 2000 - SLACK)
        fail_msg("sent before Retry-After: q +%lld ms, b +%lld ms", at_q - refused, at_b - refused);
    if (at_q > refused + 4000 || at_b > refused + 4000)
        fail_msg("too long after the pause: q +%lld ms, b +%lld ms", at_q - refused,
                 at_b - refused);
    assert_int_equal(eu_stat(&env->emu, "send_requests"), 3);
    wait_push(env->t.db, "q", "state = 'sent' AND last_error LIKE 'quota_exceeded%'", 3000);
    wait_push(env->t.db, "b", "state = 'sent'", 3000);
}

/* FCM over quota says Retry-After: 0 every time: the project still pauses (a second), instead
 * of sending again at once, in a loop, for as long as the quota lasts. */
static void test_quota_retry_after_zero(void **state)
{
    struct eu_env *env = *state;
    start_own(env);
    char tq[128];
    eu_token(tq, sizeof(tq), "quota0", 0);
    fault(env, tq, "QUOTA_EXCEEDED", -1, 0);
    eu_register(&env->t, "w", "q", tq, "android");
    free(pu_enqueue(&env->t, "w", "q", "{\"n\":1}", 0));
    seen_errors(env, "QUOTA_EXCEEDED", 1, 10000);
    usleep(3000000);
    long sent = eu_stat(&env->emu, "send_requests");
    printf("QUOTA_EXCEEDED with Retry-After: 0 for 3 s: %ld requests\n", sent);
    if (sent > 5)
        fail_msg("%ld requests in the 3 s after a QUOTA_EXCEEDED with Retry-After: 0 (one a"
                 " second at most)",
                 sent);
    assert_true(eu_errors(&env->emu, "QUOTA_EXCEEDED") >= 2); /* it did try again */
}

static void test_quota_default_pause_capped(void **state)
{
    struct eu_env *env = *state;
    start_own(env);
    char tq[128];
    eu_token(tq, sizeof(tq), "quota60", 0);
    fault(env, tq, "QUOTA_EXCEEDED", 1, -1);
    eu_register(&env->t, "w", "q", tq, "ios");
    free(pu_enqueue(&env->t, "w", "q", "{\"n\":1}", 0));
    long long refused = seen_errors(env, "QUOTA_EXCEEDED", 1, 10000);
    /* 60 s by default, but never longer than MPCPUSH_RETRY_MAX=5 */
    if (eu_wait_sql(env->t.db, 1, 2000, "SELECT count(*) FROM mpcpush.fcm_pauses") != 1)
        fail_msg("no project pause in mpcpush.fcm_pauses");
    long pause = th_sql_long(env->t.db, "SELECT round(extract(epoch FROM paused_until -"
                                        " updated_at)) FROM mpcpush.fcm_pauses WHERE"
                                        " reason = 'QUOTA_EXCEEDED'");
    if (pause != 5)
        fail_msg("QUOTA_EXCEEDED without Retry-After paused for %ld s, expected 60 s capped"
                 " at MPCPUSH_RETRY_MAX=5",
                 pause);
    assert_quiet_until(env, 1, refused + 4000);
    long long at = delivered_at(env, tq, 6000);
    printf("quota without Retry-After: delivered at +%lld ms\n", at - refused);
    if (at < refused + 5000 - SLACK || at > refused + 7500)
        fail_msg("delivered at +%lld ms, expected about 5 s after the refusal", at - refused);
}

/* ---- transient errors ---- */

/* count failures of error, then success: the three request times and the backoffs. */
static void backoff_then_delivered(struct eu_env *env, const char *error, const char *slug)
{
    char tok[128];
    eu_token(tok, sizeof(tok), slug, 0);
    fault(env, tok, error, 2, -1);
    eu_register(&env->t, "w", "d", tok, "android");
    free(pu_enqueue(&env->t, "w", "d", "{\"n\":1}", 0));
    long long t1 = seen_errors(env, error, 1, 10000);
    long long t2 = seen_errors(env, error, 2, 5000);
    long long t3 = delivered_at(env, tok, 5000);
    printf("%s: retries after %lld ms and %lld ms\n", error, t2 - t1, t3 - t2);
    if (t2 - t1 < FIRST_BACKOFF_MIN - SLACK || t3 - t2 < SECOND_BACKOFF_MIN - SLACK)
        fail_msg("%s retried too soon: after %lld ms, then %lld ms", error, t2 - t1, t3 - t2);
    if (t3 - t1 > 3000)
        fail_msg("%s: two short backoffs took %lld ms", error, t3 - t1);
    char cond[160];
    snprintf(cond, sizeof(cond), "state = 'sent' AND attempts = 0 AND last_error LIKE '%s%%'",
             slug);
    wait_push(env->t.db, "d", cond, 3000);
    assert_int_equal(eu_stat(&env->emu, "send_requests"), 3);
    assert_int_equal(eu_stat(&env->emu, "accepted"), 1);
}

static void test_unavailable_backoff(void **state)
{
    struct eu_env *env = *state;
    start_own(env);
    backoff_then_delivered(env, "UNAVAILABLE", "unavailable");
}

static void test_internal_backoff(void **state)
{
    struct eu_env *env = *state;
    start_own(env);
    backoff_then_delivered(env, "INTERNAL", "internal");
}

/* Retry-After beats the (shorter) backoff, and every failure counts an attempt. */
static void test_unavailable_retry_after_attempts(void **state)
{
    struct eu_env *env = *state;
    start_own(env);
    char tok[128];
    eu_token(tok, sizeof(tok), "retry-after", 0);
    fault(env, tok, "UNAVAILABLE", 2, 1);
    eu_register(&env->t, "w", "d", tok, "ios");
    free(pu_enqueue(&env->t, "w", "d", "{\"n\":1}", 0));
    long long t1 = seen_errors(env, "UNAVAILABLE", 1, 10000);
    wait_push(env->t.db, "d",
              "state = 'retry' AND attempts = 1 AND lease_id IS NULL AND"
              " due_at >= last_attempt_at + interval '1 second' AND"
              " last_error LIKE 'unavailable%'",
              900);
    long long t2 = seen_errors(env, "UNAVAILABLE", 2, 5000);
    wait_push(env->t.db, "d", "state = 'retry' AND attempts = 2", 900);
    long long t3 = delivered_at(env, tok, 5000);
    printf("Retry-After 1: retries after %lld ms and %lld ms\n", t2 - t1, t3 - t2);
    if (t2 - t1 < 1000 - SLACK || t3 - t2 < 1000 - SLACK)
        fail_msg("Retry-After: 1 not honoured: %lld ms, %lld ms", t2 - t1, t3 - t2);
    wait_push(env->t.db, "d", "state = 'sent' AND attempts = 0", 3000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_quota_retry_after_pauses_project, eu_setup,
                                        eu_teardown),
        cmocka_unit_test_setup_teardown(test_quota_default_pause_capped, eu_setup, eu_teardown),
        cmocka_unit_test_setup_teardown(test_quota_retry_after_zero, eu_setup, eu_teardown),
        cmocka_unit_test_setup_teardown(test_unavailable_backoff, eu_setup, eu_teardown),
        cmocka_unit_test_setup_teardown(test_internal_backoff, eu_setup, eu_teardown),
        cmocka_unit_test_setup_teardown(test_unavailable_retry_after_attempts, eu_setup,
                                        eu_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
