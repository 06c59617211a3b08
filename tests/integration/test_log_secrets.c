/* Over a whole run at debug level — registrations, webhooks, pushes that succeed and fail,
 * token refreshes, a bad API key, send-test — the log never holds a secret: no API key, no
 * whole FCM token, no access token or JWT assertion, no private key, no database password. */
#define _GNU_SOURCE
#include "emulator_util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, mem);
    fclose(mem);
    fclose(f);
    return text;
}

static void assert_absent(const char *log, const char *secret, const char *what)
{
    if (secret && secret[0] && strstr(log, secret))
        fail_msg("the log contains %s", what);
}

/* The private key's base64 body lines, each of which must not appear in the log. */
static void assert_no_key_material(const char *log, const char *credentials_file)
{
    json_t *sa = json_load_file(credentials_file, 0, NULL);
    assert_non_null(sa);
    const char *pem = json_string_value(json_object_get(sa, "private_key"));
    assert_non_null(pem);
    char *copy = strdup(pem), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        if (strncmp(line, "-----", 5) != 0 && strlen(line) > 20)
            assert_absent(log, line, "private key material");
    free(copy);
    json_decref(sa);
    assert_absent(log, "PRIVATE KEY", "a private key");
}

static void test_no_secrets_in_logs(void **state)
{
    struct eu_env *env = *state;
    const char *lifetime[] = {"--token-lifetime", "2", NULL};
    eu_start(&env->emu, lifetime);
    /* the password is ignored by the test cluster (trust) but must be masked everywhere */
    char *db = NULL;
    const char *at = strstr(env->t.db, "postgres@");
    assert_non_null(at);
    assert_true(asprintf(&db, "%.*spostgres:hunter2-secret@%s", (int)(at - env->t.db), env->t.db,
                         at + 9) > 0);
    free(env->t.db);
    env->t.db = db;
    const char *extra[] = {"MPCPUSH_LOG_LEVEL=debug", NULL};
    eu_start_mpcpush(&env->t, "run", &env->emu, extra);

    char tokens[4][128], rules[1024];
    for (int i = 0; i < 4; i++) {
        char device[16];
        eu_token(tokens[i], sizeof(tokens[i]), "secret", i);
        snprintf(device, sizeof(device), "d%d", i);
        eu_register(&env->t, "w-log", device, tokens[i], i % 2 ? "ios" : "android");
    }
    snprintf(rules, sizeof(rules),
             "[{\"token\":\"%s\",\"error\":\"UNREGISTERED\"},"
             "{\"token\":\"%s\",\"error\":\"UNAVAILABLE\",\"count\":1},"
             "{\"token\":\"%s\",\"error\":\"UNAUTHENTICATED\",\"count\":1}]",
             tokens[1], tokens[2], tokens[3]);
    eu_faults(&env->emu, rules, false);
    for (int i = 0; i < 4; i++) {
        char device[16];
        snprintf(device, sizeof(device), "d%d", i);
        pu_webhook_message(env->t.proc.base, "w-log", device, "\"mpc-round-1\"");
    }
    eu_wait_records(&env->emu, tokens[0], 1, 10000);
    eu_wait_records(&env->emu, tokens[2], 1, 10000);
    eu_wait_records(&env->emu, tokens[3], 1, 10000);
    sleep(3); /* past the access token's lifetime: a refresh happens */
    pu_webhook_message(env->t.proc.base, "w-log", "d0", "\"mpc-round-2\"");
    eu_wait_records(&env->emu, tokens[0], 2, 10000);
    struct th_response r;
    const char *bad[] = {"Authorization: Bearer mpk_not-a-real-key-but-secret-looking", NULL};
    char url[160];
    snprintf(url, sizeof(url), "%s/v1/wallets/w-log/devices/d0", env->t.proc.base);
    th_http(&r, "GET", url, bad, NULL, 0);
    assert_int_equal(r.status, 401);
    th_response_free(&r);
    assert_true(eu_stat(&env->emu, "token_requests") >= 2);

    assert_int_equal(th_proc_stop(&env->t.proc, SIGTERM), 0);
    env->t.running = false;
    char *log = read_all(env->t.proc.log_path);
    assert_non_null(strstr(log, "event=fcm_token_dead")); /* the run did what we think */
    assert_absent(log, env->t.apikey, "the API key");
    assert_absent(log, "mpk_not-a-real-key", "a presented API key");
    for (int i = 0; i < 4; i++)
        assert_absent(log, tokens[i], "a whole FCM token");
    assert_absent(log, "ya29.", "an access token");
    assert_absent(log, "eyJ", "a JWT");
    assert_absent(log, "hunter2-secret", "the database password");
    char creds[512];
    snprintf(creds, sizeof(creds), "%s/service-account.json", env->emu.dir);
    assert_no_key_material(log, creds);
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_secrets_in_logs, eu_setup, eu_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
