/* The dispatcher against FCM's refusals, black-box, each test with its own emulator and
 * scripted faults: OAuth token expiry and 401 UNAUTHENTICATED (refresh, resend once); dead
 * tokens (UNREGISTERED, SENDER_ID_MISMATCH, INVALID_ARGUMENT naming the token) invalidate the
 * device until a new token is registered; a message FCM refuses is not resent; a misconfigured
 * project (THIRD_PARTY_AUTH_ERROR) keeps the token and retries slowly; a push that keeps failing
 * is given up when its messages expire. */
#define _GNU_SOURCE
#include "emulator_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void start_own(struct eu_env *env, const char *const *emu_args, const char *const *extra)
{
    eu_start(&env->emu, emu_args);
    eu_start_mpcpush(&env->t, "run", &env->emu, extra);
}

/* Appends one fault rule for token. */
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

/* Waits until by_error[error] reaches want; fails after timeout_ms. */
static void wait_errors(const struct eu_env *env, const char *error, long want, int timeout_ms)
{
    long got = 0;
    for (long deadline = tx_now_ms() + timeout_ms; tx_now_ms() < deadline; usleep(20000))
        if ((got = eu_errors(&env->emu, error)) >= want)
            return;
    fail_msg("by_error.%s stayed at %ld, expected %ld within %d ms", error, got, want, timeout_ms);
}

static char *push_row(const char *db, const char *device)
{
    char *row = tx_sql_textf(db,
                             "SELECT row_to_json(p)::text FROM mpcpush.pushes p WHERE"
                             " device_id = '%s'",
                             device);
    return row ? row : strdup("(no row)");
}

/* Waits until the SQL condition on the push row of device (wallet "w") holds. */
static void wait_push(const char *db, const char *device, const char *cond, int timeout_ms)
{
    if (eu_wait_sql(db, 1, timeout_ms,
                    "SELECT count(*) FROM mpcpush.pushes WHERE wallet_id = 'w' AND"
                    " device_id = '%s' AND %s",
                    device, cond) != 1)
        fail_msg("push of %s: not (%s) within %d ms: %s", device, cond, timeout_ms,
                 push_row(db, device));
}

static json_t *device_state(const struct eu_env *env, const char *device)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/wallets/w/devices/%s", device);
    struct th_response r;
    tx_api(&r, &env->t, "GET", path, NULL);
    tx_assert_status(&r, 200);
    json_t *json = json_incref(r.json);
    th_response_free(&r);
    return json;
}

/* ---- OAuth ---- */

static void test_oauth_token_expires(void **state)
{
    struct eu_env *env = *state;
    const char *args[] = {"--token-lifetime", "3", NULL};
    start_own(env, args, NULL);
    char tok[128];
    eu_token(tok, sizeof(tok), "lifetime", 0);
    eu_register(&env->t, "w", "d", tok, "android");
    free(pu_enqueue(&env->t, "w", "d", "{\"n\":1}", 0));
    assert_int_equal(eu_wait_records(&env->emu, tok, 1, 10000), 1);
    assert_int_equal(eu_stat(&env->emu, "token_requests"), 1);
    sleep(4); /* the access token (3 s) has expired */
    char *id = pu_enqueue(&env->t, "w", "d", "{\"n\":2}", 0);
    assert_int_equal(eu_wait_records(&env->emu, tok, 2, 10000), 2);
    json_t *list = eu_records(&env->emu, tok);
    assert_string_equal(eu_data(json_array_get(list, 1), "latestId"), id);
    long fetched = eu_stat(&env->emu, "token_requests");
    long refused = eu_errors(&env->emu, "UNAUTHENTICATED");
    printf("token_requests=%ld unauthenticated=%ld\n", fetched, refused);
    assert_true(fetched >= 2);
    assert_true(refused <= 1); /* refreshed ahead of expiry, or once after the 401 */
    wait_push(env->t.db, "d", "state = 'sent' AND attempts = 0 AND last_error IS NULL", 5000);
    json_decref(list);
    free(id);
}

static void test_oauth_unauthenticated_resend_once(void **state)
{
    struct eu_env *env = *state;
    start_own(env, NULL, NULL);
    char tok[128];
    eu_token(tok, sizeof(tok), "unauth", 0);
    eu_register(&env->t, "w", "d", tok, "ios");
    fault(env, tok, "UNAUTHENTICATED", 1, -1);
    long t0 = tx_now_ms();
    free(pu_enqueue(&env->t, "w", "d", "{\"n\":1}", 0));
    assert_int_equal(eu_wait_records(&env->emu, tok, 1, 10000), 1);
    long took = tx_now_ms() - t0;
    assert_int_equal(eu_errors(&env->emu, "UNAUTHENTICATED"), 1);
    assert_int_equal(eu_stat(&env->emu, "send_requests"), 2);
    assert_int_equal(eu_stat(&env->emu, "token_requests"), 2);
    /* resent at once in the same batch: never recorded as a failed attempt */
    wait_push(env->t.db, "d", "state = 'sent' AND attempts = 0 AND last_error IS NULL", 5000);
    if (took > 3000)
        fail_msg("the resend after 401 took %ld ms", took);
}

/* ---- dead tokens ---- */

static void test_dead_tokens_invalidated_and_revived(void **state)
{
    struct eu_env *env = *state;
    start_own(env, NULL, NULL);
    char tu[128], ts[128], tv[128], fresh[128];
    eu_token(tu, sizeof(tu), "unregistered", 0);
    eu_token(ts, sizeof(ts), "mismatch", 0);
    eu_token(tv, sizeof(tv), "badtoken", 0);
    eu_token(fresh, sizeof(fresh), "fresh", 0);
    fault(env, tu, "UNREGISTERED", 0, -1);
    fault(env, ts, "SENDER_ID_MISMATCH", 0, -1);
    fault(env, tv, "INVALID_ARGUMENT", 0, -1); /* "The registration token is not valid" */
    eu_register(&env->t, "w", "u", tu, "android");
    eu_register(&env->t, "w", "s", ts, "ios");
    eu_register(&env->t, "w", "v", tv, "android");
    free(pu_enqueue(&env->t, "w", "u", "{\"n\":1}", 0));
    free(pu_enqueue(&env->t, "w", "s", "{\"n\":1}", 0));
    free(pu_enqueue(&env->t, "w", "v", "{\"n\":1}", 0));
    if (eu_wait_sql(env->t.db, 3, 10000,
                    "SELECT count(*) FROM mpcpush.devices WHERE token_status = 'invalid'") != 3)
        fail_msg("the three dead tokens were not all invalidated");
    assert_int_equal(th_sql_long(env->t.db,
                                 "SELECT count(*) FROM mpcpush.devices WHERE"
                                 " (device_id, token_invalid_reason) IN (('u', 'UNREGISTERED'),"
                                 " ('s', 'SENDER_ID_MISMATCH'), ('v', 'INVALID_TOKEN'))"
                                 " AND token_invalidated_at IS NOT NULL"),
                     3);
    wait_push(env->t.db, "u", "state = 'failed' AND covered_id >= wanted_id", 3000);
    assert_int_equal(eu_stat(&env->emu, "send_requests"), 3);
    assert_true(pu_log_count(env->t.proc.log_path, "event=fcm_token_dead") >= 3);

    /* New messages for dead tokens cause no request at all, but stay fetchable. */
    char *second = pu_enqueue(&env->t, "w", "u", "{\"n\":2}", 0);
    free(pu_enqueue(&env->t, "w", "s", "{\"n\":2}", 0));
    usleep(1200000);
    assert_int_equal(eu_stat(&env->emu, "send_requests"), 3);
    assert_int_equal(th_sql_long(env->t.db, "SELECT count(*) FROM mpcpush.pushes"
                                            " WHERE wanted_id > covered_id"),
                     0);
    json_t *page = pu_fetch(&env->t, "w", "u", NULL);
    assert_int_equal(pu_count(page), 2);
    json_decref(page);
    json_t *st = device_state(env, "u");
    assert_string_equal(json_string_value(json_object_get(st, "tokenStatus")), "invalid");
    assert_string_equal(json_string_value(json_object_get(st, "tokenInvalidReason")),
                        "UNREGISTERED");
    json_decref(st);

    /* The same dead token again changes nothing; a new token revives the device at once. */
    eu_register(&env->t, "w", "s", ts, "ios");
    eu_register(&env->t, "w", "u", fresh, "android");
    assert_int_equal(eu_wait_records(&env->emu, fresh, 1, 10000), 1);
    json_t *list = eu_records(&env->emu, fresh);
    assert_string_equal(eu_data(json_array_get(list, 0), "pending"), "2");
    assert_string_equal(eu_data(json_array_get(list, 0), "latestId"), second);
    wait_push(env->t.db, "u", "state = 'sent' AND covered_id >= wanted_id", 5000);
    assert_int_equal(th_sql_long(env->t.db, "SELECT count(*) FROM mpcpush.devices WHERE"
                                            " device_id = 'u' AND token_status = 'active' AND"
                                            " token_invalid_reason IS NULL"),
                     1);
    usleep(300000);
    assert_int_equal(eu_stat(&env->emu, "send_requests"), 4); /* nothing for s */
    assert_int_equal(eu_errors(&env->emu, "SENDER_ID_MISMATCH"), 1);
    json_decref(list);
    free(second);
}

/* ---- a message FCM refuses ---- */

/* FCM refuses a message over 4096 bytes with INVALID_ARGUMENT about the message, not the
 * token. mpcpush checks the size without the token; the emulator counts the token too, so a
 * long token and a long configured iOS alert make a wakeup FCM refuses. */
static void test_invalid_argument_not_resent(void **state)
{
    struct eu_env *env = *state;
    static char alert[3700], token[900];
    snprintf(alert, sizeof(alert), "MPCPUSH_IOS_ALERT_BODY=");
    size_t n = strlen(alert);
    memset(alert + n, 'x', 3400);
    alert[n + 3400] = '\0';
    eu_token(token, sizeof(token), "toolong", 0);
    n = strlen(token);
    memset(token + n, 'k', 800);
    token[n + 800] = '\0';
    const char *extra[] = {"MPCPUSH_IOS_ALERT_TITLE=Signing request", alert, NULL};
    start_own(env, NULL, extra);
    eu_register(&env->t, "w", "big", token, "ios");
    free(pu_enqueue(&env->t, "w", "big", "{\"n\":1}", 0));
    wait_push(env->t.db, "big",
              "state = 'failed' AND covered_id >= wanted_id AND last_error LIKE"
              " 'invalid_argument%'",
              10000);
    assert_int_equal(eu_errors(&env->emu, "INVALID_ARGUMENT"), 1);
    usleep(1200000);
    assert_int_equal(eu_stat(&env->emu, "send_requests"), 1); /* not resent */
    assert_int_equal(th_sql_long(env->t.db, "SELECT count(*) FROM mpcpush.devices WHERE"
                                            " token_status = 'active'"),
                     1);
    json_t *page = pu_fetch(&env->t, "w", "big", NULL);
    assert_int_equal(pu_count(page), 1);
    json_decref(page);
}

/* ---- a misconfigured project ---- */

static void test_third_party_auth_keeps_token(void **state)
{
    struct eu_env *env = *state;
    start_own(env, NULL, NULL);
    char tok[128];
    eu_token(tok, sizeof(tok), "apns-broken", 0);
    fault(env, tok, "THIRD_PARTY_AUTH_ERROR", 0, -1);
    eu_register(&env->t, "w", "d", tok, "ios");
    free(pu_enqueue(&env->t, "w", "d", "{\"n\":1}", 0));
    wait_errors(env, "THIRD_PARTY_AUTH_ERROR", 1, 10000);
    wait_push(env->t.db, "d",
              "state = 'retry' AND attempts = 1 AND last_error LIKE 'third_party_auth%'"
              " AND due_at > now() + interval '30 seconds'",
              3000);
    usleep(1500000);
    assert_int_equal(eu_stat(&env->emu, "send_requests"), 1);  /* retried slowly */
    assert_int_equal(eu_stat(&env->emu, "token_requests"), 1); /* not our access token */
    assert_int_equal(th_sql_long(env->t.db, "SELECT count(*) FROM mpcpush.devices WHERE"
                                            " token_status = 'active'"),
                     1);
    assert_true(pu_log_count(env->t.proc.log_path, "event=fcm_project_misconfigured") >= 1);
}

/* ---- configuration ---- */

/* A lease no longer than two FCM timeouts (a batch's worst send) is warned about at start;
 * the fixture's (5 s against 2 s) is not. */
static void test_short_lease_warned(void **state)
{
    struct eu_env *env = *state;
    start_own(env, NULL, NULL);
    pu_wait_log(env->t.proc.log_path, "event=dispatcher_started");
    assert_int_equal(pu_log_count(env->t.proc.log_path, "event=lease_shorter_than_send"), 0);
    const char *extra[] = {"MPCPUSH_LEASE_SECONDS=10", "MPCPUSH_FCM_TIMEOUT=5", NULL};
    eu_proc_start(&env->procs[0], "dispatcher", env->t.db, &env->emu, extra);
    pu_wait_log(env->procs[0].log_path, "event=dispatcher_started");
    assert_int_equal(pu_log_count(env->procs[0].log_path, "event=lease_shorter_than_send"), 1);
}

/* ---- giving up when the messages expire ---- */

static void test_give_up_at_expiry(void **state)
{
    struct eu_env *env = *state;
    start_own(env, NULL, NULL);
    char tok[128];
    eu_token(tok, sizeof(tok), "expiring", 0);
    fault(env, tok, "UNAVAILABLE", 0, -1);
    eu_register(&env->t, "w", "d", tok, "android");
    free(pu_enqueue(&env->t, "w", "d", "{\"n\":1}", 2));
    wait_errors(env, "UNAVAILABLE", 2, 5000);
    wait_push(env->t.db, "d", "state = 'skipped' AND covered_id >= wanted_id AND lease_id IS NULL",
              10000);
    long tried = eu_errors(&env->emu, "UNAVAILABLE");
    sleep(3);
    assert_int_equal(eu_errors(&env->emu, "UNAVAILABLE"), tried);
    assert_int_equal(eu_stat(&env->emu, "send_requests"), tried);
    assert_int_equal(eu_stat(&env->emu, "accepted"), 0);
    printf("gave up after %ld attempts\n", tried);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_oauth_token_expires, eu_setup, eu_teardown),
        cmocka_unit_test_setup_teardown(test_oauth_unauthenticated_resend_once, eu_setup,
                                        eu_teardown),
        cmocka_unit_test_setup_teardown(test_dead_tokens_invalidated_and_revived, eu_setup,
                                        eu_teardown),
        cmocka_unit_test_setup_teardown(test_invalid_argument_not_resent, eu_setup, eu_teardown),
        cmocka_unit_test_setup_teardown(test_third_party_auth_keeps_token, eu_setup, eu_teardown),
        cmocka_unit_test_setup_teardown(test_give_up_at_expiry, eu_setup, eu_teardown),
        cmocka_unit_test_setup_teardown(test_short_lease_warned, eu_setup, eu_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
