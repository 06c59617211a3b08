/* The command line: --help/--version, check-config, --config files, migrate (also racing),
 * apikey create/revoke (only the hash stored, revocation seen by a running receiver). */
#define _GNU_SOURCE
#include "harness_extra.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int count_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    if (*text && text[strlen(text) - 1] != '\n')
        n++;
    return n;
}

/* The value printed for key by check-config (a line "KEY=value"), copied into value. */
static bool config_value(const char *out, const char *key, char *value, size_t size)
{
    size_t klen = strlen(key);
    for (const char *line = out; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > klen && strncmp(line, key, klen) == 0 && line[klen] == '=') {
            snprintf(value, size, "%.*s", (int)(len - klen - 1), line + klen + 1);
            return true;
        }
        line = end ? end + 1 : NULL;
    }
    return false;
}

static void test_help_and_version(void **state)
{
    (void)state;
    char out[65536], err[4096];
    const char *help[] = {"--help", NULL};
    assert_int_equal(tx_run(NULL, help, out, sizeof(out), err, sizeof(err)), 0);
    assert_true(strlen(out) > 0);
    const char *version[] = {"--version", NULL};
    assert_int_equal(tx_run(NULL, version, out, sizeof(out), err, sizeof(err)), 0);
    assert_non_null(strstr(out, "mpcpush"));
}

static void test_bad_usage(void **state)
{
    (void)state;
    char out[4096], err[4096];
    const char *unknown_cmd[] = {"frobnicate", NULL};
    assert_int_not_equal(tx_run(NULL, unknown_cmd, out, sizeof(out), err, sizeof(err)), 0);
    assert_int_equal(count_lines(err), 1);
    const char *unknown_opt[] = {"--frobnicate", "check-config", NULL};
    assert_int_not_equal(tx_run(NULL, unknown_opt, out, sizeof(out), err, sizeof(err)), 0);
    assert_int_equal(count_lines(err), 1);
}

static void test_check_config_masks_password(void **state)
{
    (void)state;
    char out[65536], err[4096], value[512];
    const char *env[] = {"MPCPUSH_DATABASE_URL=postgresql://alice:S3cretPw42@127.0.0.1:5432/app",
                         NULL};
    const char *argv[] = {"check-config", NULL};
    int status = tx_run(env, argv, out, sizeof(out), err, sizeof(err));
    if (status != 0)
        fail_msg("check-config exited %d: %s", status, err);
    assert_null(strstr(out, "S3cretPw42"));
    assert_null(strstr(err, "S3cretPw42"));
    assert_true(config_value(out, "MPCPUSH_DATABASE_URL", value, sizeof(value)));
    assert_non_null(strstr(value, "***"));
    assert_non_null(strstr(value, "alice"));
    assert_non_null(strstr(value, "127.0.0.1:5432/app"));
    /* Every line is KEY=value, and defaults are shown. */
    for (const char *line = out; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *eq = memchr(line, '=', len);
        if (!eq || strncmp(line, "MPCPUSH_", 8) != 0)
            fail_msg("check-config printed a line that is not KEY=value: %.*s", (int)len, line);
        line = end ? end + 1 : line + len;
    }
    assert_true(config_value(out, "MPCPUSH_MAX_BODY_BYTES", value, sizeof(value)));
    assert_string_equal(value, "262144");
    assert_true(config_value(out, "MPCPUSH_MESSAGE_TTL", value, sizeof(value)));
    assert_string_equal(value, "86400");
}

static void check_bad_value(const char *assignment, const char *key)
{
    char out[65536], err[4096];
    const char *env[] = {"MPCPUSH_DATABASE_URL=postgresql://u@127.0.0.1/x", assignment, NULL};
    const char *argv[] = {"check-config", NULL};
    int status = tx_run(env, argv, out, sizeof(out), err, sizeof(err));
    if (status == 0)
        fail_msg("check-config with %s exited 0", assignment);
    if (count_lines(err) != 1 || !strstr(err, key))
        fail_msg("check-config with %s: want one line naming %s, got: %s", assignment, key, err);
}

static void test_check_config_bad_values(void **state)
{
    (void)state;
    check_bad_value("MPCPUSH_LISTEN=nonsense", "MPCPUSH_LISTEN");
    check_bad_value("MPCPUSH_MAX_BODY_BYTES=abc", "MPCPUSH_MAX_BODY_BYTES");
    check_bad_value("MPCPUSH_IDLE_TIMEOUT=-5", "MPCPUSH_IDLE_TIMEOUT");
    check_bad_value("MPCPUSH_LOG_LEVEL=loud", "MPCPUSH_LOG_LEVEL");
}

static char *write_file(const char *dir, const char *name, const char *text)
{
    char *path = NULL;
    if (asprintf(&path, "%s/%s", dir, name) < 0)
        fail_msg("out of memory");
    FILE *f = fopen(path, "w");
    if (!f)
        fail_msg("cannot write %s", path);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_config_file_and_env_precedence(void **state)
{
    (void)state;
    char *dir = th_tempdir("mpcpush-cli");
    char *path = write_file(dir, "mpcpush.conf",
                            "# comment\n"
                            "MPCPUSH_DATABASE_URL=postgresql://bob:FilePw99@127.0.0.1:5433/db\n"
                            "MPCPUSH_IDLE_TIMEOUT=77\n"
                            "MPCPUSH_LOG_LEVEL=debug\n");
    char out[65536], err[4096], value[512];
    const char *env[] = {"MPCPUSH_IDLE_TIMEOUT=55", NULL};
    const char *argv[] = {"--config", path, "check-config", NULL};
    int status = tx_run(env, argv, out, sizeof(out), err, sizeof(err));
    if (status != 0)
        fail_msg("check-config --config exited %d: %s", status, err);
    assert_true(config_value(out, "MPCPUSH_IDLE_TIMEOUT", value, sizeof(value)));
    assert_string_equal(value, "55"); /* the environment wins */
    assert_true(config_value(out, "MPCPUSH_LOG_LEVEL", value, sizeof(value)));
    assert_string_equal(value, "debug"); /* the file applies */
    assert_null(strstr(out, "FilePw99"));
    assert_true(config_value(out, "MPCPUSH_DATABASE_URL", value, sizeof(value)));
    assert_non_null(strstr(value, "***"));
    free(path);
    th_rm_rf(dir);
    free(dir);
}

static void test_config_file_unknown_key(void **state)
{
    (void)state;
    char *dir = th_tempdir("mpcpush-cli");
    char *path = write_file(dir, "bad.conf", "MPCPUSH_IDLE_TIMEOUT=10\nMPCPUSH_NO_SUCH_KEY=1\n");
    char out[65536], err[4096];
    const char *argv[] = {"--config", path, "check-config", NULL};
    int status = tx_run(NULL, argv, out, sizeof(out), err, sizeof(err));
    if (status == 0)
        fail_msg("check-config with an unknown key in the file exited 0");
    assert_true(strlen(err) > 0);
    const char *missing[] = {"--config", "/nonexistent/mpcpush.conf", "check-config", NULL};
    assert_int_not_equal(tx_run(NULL, missing, out, sizeof(out), err, sizeof(err)), 0);
    free(path);
    th_rm_rf(dir);
    free(dir);
}

/* The last number printed by `mpcpush migrate`. */
static long applied_count(const char *out)
{
    long n = -1;
    for (const char *p = out; *p; p++)
        if (*p >= '0' && *p <= '9' && (p == out || p[-1] < '0' || p[-1] > '9'))
            n = strtol(p, NULL, 10);
    return n;
}

static void test_migrate_twice(void **state)
{
    (void)state;
    char *db = th_db_create(false);
    char url[600], out[4096], err[4096];
    snprintf(url, sizeof(url), "MPCPUSH_DATABASE_URL=%s", db);
    const char *env[] = {url, NULL};
    const char *argv[] = {"migrate", NULL};
    assert_int_equal(tx_run(env, argv, out, sizeof(out), err, sizeof(err)), 0);
    long first = applied_count(out);
    if (first < 1)
        fail_msg("first migrate printed %s", out);
    assert_int_equal(tx_run(env, argv, out, sizeof(out), err, sizeof(err)), 0);
    if (applied_count(out) != 0)
        fail_msg("second migrate should apply 0, printed: %s", out);
    assert_int_equal(th_sql_long(db, "SELECT count(*) FROM mpcpush.schema_migrations"), first);
    assert_int_equal(th_sql_long(db, "SELECT count(*) FROM mpcpush.devices"), 0);
    free(db);
}

/* Applies sql/NAME from the source tree as it stands (versions 1 and 2 are never edited). */
static void apply_sql_file(const char *db, const char *name)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/sql/%s", th_env("MPCPUSH_SOURCE_DIR"), name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char sql[256 * 1024];
    size_t n = fread(sql, 1, sizeof(sql) - 1, f);
    fclose(f);
    sql[n] = '\0';
    th_sql_exec(db, sql);
}

/* A database at version 2, with a device pushed before the upgrade, migrates to the current
 * schema keeping what the API shows of it. */
static void test_migrate_upgrade_from_v2(void **state)
{
    (void)state;
    char *db = th_db_create(false);
    apply_sql_file(db, "001_schema.sql");
    apply_sql_file(db, "002_views.sql");
    th_sql_exec(db, "CREATE TABLE mpcpush.schema_migrations (version integer PRIMARY KEY,"
                    " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());"
                    "INSERT INTO mpcpush.schema_migrations (version, name)"
                    " VALUES (1, '001_schema'), (2, '002_views');"
                    "INSERT INTO mpcpush.devices (wallet_id, device_id, platform, fcm_token,"
                    " last_push_at) VALUES ('w', 'd', 'android', 'tok', '2026-01-02 03:04:05Z');"
                    "INSERT INTO mpcpush.messages (wallet_id, device_id, source, payload,"
                    " expires_at) VALUES ('w', 'd', 'api', '{}', now() + interval '1 day');"
                    "INSERT INTO mpcpush.pushes (wallet_id, device_id, wanted_id, covered_id)"
                    " SELECT wallet_id, device_id, id, id FROM mpcpush.messages");
    char url[600], out[4096], err[4096];
    snprintf(url, sizeof(url), "MPCPUSH_DATABASE_URL=%s", db);
    const char *env[] = {url, NULL};
    const char *argv[] = {"migrate", NULL};
    assert_int_equal(tx_run(env, argv, out, sizeof(out), err, sizeof(err)), 0);
    assert_true(applied_count(out) >= 1);
    char *last = th_sql_text(db, "SELECT mpcpush.device_state('w', 'd')->>'lastPushAt'");
    assert_string_equal(last, "2026-01-02T03:04:05.000Z");
    free(last);
    assert_int_equal(th_sql_long(db, "SELECT count(*) FROM mpcpush.device_status"
                                     " WHERE last_push_at = '2026-01-02 03:04:05Z'"),
                     1);
    assert_int_equal(th_sql_long(db, "SELECT count(*) FROM information_schema.columns WHERE"
                                     " table_schema = 'mpcpush' AND table_name = 'devices'"
                                     " AND column_name = 'last_push_at'"),
                     0);
    assert_int_equal(th_sql_long(db,
                                 "SELECT count(*) FROM pg_indexes WHERE indexname ="
                                 " 'messages_pending' AND indexdef LIKE '%INCLUDE (expires_at)%'"),
                     1);
    free(db);
}

static void test_migrate_concurrent(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        char *db = th_db_create(false);
        char url[600];
        snprintf(url, sizeof(url), "MPCPUSH_DATABASE_URL=%s", db);
        const char *env[] = {url, NULL};
        const char *argv[] = {"migrate", NULL};
        pid_t pids[4];
        for (int i = 0; i < 4; i++)
            pids[i] = tx_spawn(env, argv);
        for (int i = 0; i < 4; i++) {
            int status = tx_wait(pids[i]);
            if (status != 0)
                fail_msg("round %d: concurrent migrate %d exited %d", round, i, status);
        }
        assert_int_equal(th_sql_long(db, "SELECT count(*) - count(DISTINCT version)"
                                         " FROM mpcpush.schema_migrations"),
                         0);
        assert_true(th_sql_long(db, "SELECT count(*) FROM mpcpush.schema_migrations") >= 1);
        assert_int_equal(th_sql_long(db, "SELECT count(*) FROM mpcpush.devices"), 0);
        free(db);
    }
}

static void test_apikey_create(void **state)
{
    (void)state;
    char *db = th_db_create(true);
    char url[600], out[4096], err[4096];
    snprintf(url, sizeof(url), "MPCPUSH_DATABASE_URL=%s", db);
    const char *env[] = {url, NULL};
    const char *create[] = {"apikey", "create", "backend-1", NULL};
    assert_int_equal(tx_run(env, create, out, sizeof(out), err, sizeof(err)), 0);
    assert_int_equal(count_lines(out), 1);
    char key[4096];
    snprintf(key, sizeof(key), "%s", out);
    key[strcspn(key, "\n")] = '\0';
    assert_true(strlen(key) >= 16);
    assert_null(strpbrk(key, " \t\r"));
    /* Only a hash: the key text appears nowhere in the row, as text or as bytes. */
    char *lit = tx_lit(key);
    assert_int_equal(tx_sql_longf(db,
                                  "SELECT count(*) FROM mpcpush.api_keys t"
                                  " WHERE strpos(t::text, %s) > 0"
                                  " OR position(convert_to(%s, 'UTF8') IN t.key_hash) > 0",
                                  lit, lit),
                     0);
    assert_int_equal(th_sql_long(db, "SELECT count(*) FROM mpcpush.api_keys"), 1);
    /* The same active name again fails and prints no key. */
    int status = tx_run(env, create, out, sizeof(out), err, sizeof(err));
    if (status == 0)
        fail_msg("second apikey create of an active name exited 0, printed %s", out);
    assert_int_equal(strlen(out), 0);
    assert_int_equal(th_sql_long(db, "SELECT count(*) FROM mpcpush.api_keys"), 1);
    /* A second name gets a different key. */
    const char *create2[] = {"apikey", "create", "backend-2", NULL};
    assert_int_equal(tx_run(env, create2, out, sizeof(out), err, sizeof(err)), 0);
    out[strcspn(out, "\n")] = '\0';
    assert_string_not_equal(out, key);
    /* Revoking an unknown name fails. */
    const char *revoke[] = {"apikey", "revoke", "nobody", NULL};
    assert_int_not_equal(tx_run(env, revoke, out, sizeof(out), err, sizeof(err)), 0);
    free(lit);
    free(db);
}

static long get_device_status(const struct tx_env *e, const char *auth)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/v1/wallets/w1/devices/d1", e->proc.base);
    const char *headers[] = {auth, NULL};
    struct th_response r;
    th_http(&r, "GET", url, headers, NULL, 0);
    long status = r.status;
    if (status == 401 && strcmp(th_error_code(&r), "unauthorized") != 0)
        fail_msg("401 with code %s", th_error_code(&r));
    th_response_free(&r);
    return status;
}

static void test_apikey_revoke_seen_by_receiver(void **state)
{
    struct tx_env *e = *state;
    char *key = th_apikey(e->db, "to-revoke");
    char auth[300];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
    /* A key created after start-up is picked up within the refresh period too. */
    long deadline = tx_now_ms() + 10000, status = 0;
    while ((status = get_device_status(e, auth)) == 401 && tx_now_ms() < deadline)
        usleep(200000);
    if (status != 404)
        fail_msg("new key: GET unknown device answered %ld, want 404", status);
    char url[600], out[4096], err[4096];
    snprintf(url, sizeof(url), "MPCPUSH_DATABASE_URL=%s", e->db);
    const char *env[] = {url, NULL};
    const char *revoke[] = {"apikey", "revoke", "to-revoke", NULL};
    assert_int_equal(tx_run(env, revoke, out, sizeof(out), err, sizeof(err)), 0);
    deadline = tx_now_ms() + 10000;
    while ((status = get_device_status(e, auth)) != 401 && tx_now_ms() < deadline)
        usleep(200000);
    if (status != 401)
        fail_msg("revoked key still accepted after 10 s (status %ld)", status);
    /* The other key still works. */
    assert_int_equal(get_device_status(e, e->auth), 404);
    free(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_bad_usage),
        cmocka_unit_test(test_check_config_masks_password),
        cmocka_unit_test(test_check_config_bad_values),
        cmocka_unit_test(test_config_file_and_env_precedence),
        cmocka_unit_test(test_config_file_unknown_key),
        cmocka_unit_test(test_migrate_twice),
        cmocka_unit_test(test_migrate_upgrade_from_v2),
        cmocka_unit_test(test_migrate_concurrent),
        cmocka_unit_test(test_apikey_create),
        cmocka_unit_test_setup_teardown(test_apikey_revoke_seen_by_receiver, tx_setup, tx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
