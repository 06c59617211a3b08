/* `mpcpush send-test`: a test wakeup pushed through the real queue, and what FCM said. */
#define _GNU_SOURCE
#include "emulator_util.h"

#include <stdio.h>
#include <string.h>

/* Runs send-test for wallet/device with e's settings; returns the exit status, output in out. */
static int send_test(const struct eu_env *env, const char *wallet, const char *device, char *out,
                     size_t size)
{
    const char *vars[] = {env->emu.env_creds, env->emu.env_url, env->emu.env_ca,
                          "MPCPUSH_LOG_LEVEL=error", NULL};
    const char *argv[] = {"send-test", "--wallet", wallet, "--device", device, NULL};
    return th_mpcpush_run(env->t.db, vars, out, size, argv);
}

static void test_delivered(void **state)
{
    struct eu_env *env = *state;
    eu_start(&env->emu, NULL);
    eu_start_mpcpush(&env->t, "receiver", &env->emu, NULL);
    char token[128], out[1024];
    eu_token(token, sizeof(token), "st", 1);
    eu_register(&env->t, "w-st", "d-st", token, "android");
    assert_int_equal(send_test(env, "w-st", "d-st", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "message="));
    assert_non_null(strstr(out, "state=sent fcm_message=projects/"));
    /* the emulator got exactly that wakeup, for that token */
    json_t *records = eu_records(&env->emu, token);
    assert_int_equal(json_array_size(records), 1);
    assert_string_equal(eu_data(json_array_get(records, 0), "type"), "mpcpush.wakeup");
    json_decref(records);
    assert_int_equal(th_sql_long(env->t.db, "SELECT count(*) FROM mpcpush.pushes"
                                            " WHERE last_sent_at IS NOT NULL"),
                     1);
}

static void test_dead_token_reported(void **state)
{
    struct eu_env *env = *state;
    eu_start(&env->emu, NULL);
    eu_start_mpcpush(&env->t, "receiver", &env->emu, NULL);
    char token[128], out[1024], rules[256];
    eu_token(token, sizeof(token), "st", 2);
    eu_register(&env->t, "w-st", "d-dead", token, "ios");
    snprintf(rules, sizeof(rules), "[{\"token\":\"%s\",\"error\":\"UNREGISTERED\"}]", token);
    eu_faults(&env->emu, rules, false);
    assert_int_equal(send_test(env, "w-st", "d-dead", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "state=failed"));
    assert_non_null(strstr(out, "token_status=invalid reason=UNREGISTERED"));
    /* a second run says at once that the app must register a new token */
    assert_int_equal(send_test(env, "w-st", "d-dead", out, sizeof(out)), 1);
    assert_non_null(strstr(out, "must register a new token"));
}

static void test_unknown_device(void **state)
{
    struct eu_env *env = *state;
    eu_shared(&env->emu);
    char out[256];
    assert_int_equal(send_test(env, "w-st", "nobody", out, sizeof(out)), 1);
    assert_int_equal(th_sql_long(env->t.db, "SELECT count(*) FROM mpcpush.messages"), 0);
    const char *argv[] = {"send-test", "--wallet", "w", NULL};
    assert_int_equal(th_mpcpush_run(env->t.db, NULL, NULL, 0, argv), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delivered, eu_setup, eu_teardown),
        cmocka_unit_test_setup_teardown(test_dead_token_reported, eu_setup, eu_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_device, eu_setup, eu_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
