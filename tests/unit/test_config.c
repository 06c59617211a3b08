/* Configuration: defaults, file and environment precedence, validation errors, masking. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpcpush/config.h"

static char *write_file(const char *text)
{
    char *path = strdup("/tmp/mpcpush-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* Loads with the given file text (NULL: no file) and environment; returns the result and
 * leaves the error text in errors. */
static enum mp_result load(struct mp_config *cfg, const char *file_text, char *const *envp,
                           struct mp_buf *errors)
{
    char *path = file_text ? write_file(file_text) : NULL;
    mp_buf_init(errors, 0);
    enum mp_result result = mp_config_load(cfg, path, envp, errors);
    if (path) {
        unlink(path);
        free(path);
    }
    return result;
}

static void test_defaults(void **state)
{
    struct mp_config cfg;
    struct mp_buf errors;
    char *env[] = {NULL};
    assert_int_equal(load(&cfg, NULL, env, &errors), MP_OK);
    assert_string_equal(cfg.listen, "127.0.0.1:8080");
    assert_string_equal(cfg.fcm_url, "https://fcm.googleapis.com");
    assert_int_equal(cfg.max_body_bytes, 262144);
    assert_int_equal(cfg.message_ttl, 86400);
    assert_null(cfg.database_url);
    assert_null(cfg.google_credentials);
    /* the database is required by the commands that need it */
    assert_int_equal(mp_config_check(&cfg, MP_NEED_DATABASE, &errors), MP_ERR_INVALID);
    assert_non_null(strstr(errors.data, "MPCPUSH_DATABASE_URL"));
    mp_buf_free(&errors);
    mp_config_free(&cfg);
}

static void test_environment_wins_over_file(void **state)
{
    struct mp_config cfg;
    struct mp_buf errors;
    char *env[] = {"MPCPUSH_LISTEN=127.0.0.1:9999", "UNRELATED=1", NULL};
    const char *file = "# comment\n\nMPCPUSH_LISTEN=0.0.0.0:1\n"
                       "export MPCPUSH_MESSAGE_TTL = 60\n"
                       "MPCPUSH_DATABASE_URL='postgresql://u:pw@h/db'\n";
    assert_int_equal(load(&cfg, file, env, &errors), MP_OK);
    assert_string_equal(cfg.listen, "127.0.0.1:9999");
    assert_int_equal(cfg.message_ttl, 60);
    assert_string_equal(cfg.database_url, "postgresql://u:pw@h/db");
    mp_buf_free(&errors);
    mp_config_free(&cfg);
}

static void test_every_problem_is_one_line(void **state)
{
    struct mp_config cfg;
    struct mp_buf errors;
    char *env[] = {"MPCPUSH_LISTEN=nonsense", "MPCPUSH_MAX_BODY_BYTES=abc",
                   "MPCPUSH_LOG_LEVEL=loud", "MPCPUSH_FCM_URL=ftp://x", NULL};
    assert_int_equal(load(&cfg, "MPCPUSH_NO_SUCH_KEY=1\njust words\n", env, &errors),
                     MP_ERR_INVALID);
    int lines = 0;
    for (const char *p = errors.data; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 6);
    assert_non_null(strstr(errors.data, "MPCPUSH_LISTEN: expected host:port"));
    assert_non_null(strstr(errors.data, "MPCPUSH_MAX_BODY_BYTES: expected an integer"));
    assert_non_null(strstr(errors.data, "MPCPUSH_LOG_LEVEL"));
    assert_non_null(strstr(errors.data, "MPCPUSH_FCM_URL"));
    assert_non_null(strstr(errors.data, ":1: unknown key"));
    assert_non_null(strstr(errors.data, ":2: expected KEY=VALUE"));
    mp_buf_free(&errors);
    mp_config_free(&cfg);
}

static void test_ranges(void **state)
{
    struct mp_config cfg;
    struct mp_buf errors;
    char *too_small[] = {"MPCPUSH_MAX_BODY_BYTES=10", NULL};
    assert_int_equal(load(&cfg, NULL, too_small, &errors), MP_ERR_INVALID);
    assert_non_null(strstr(errors.data, "from 1024 to 16777216"));
    mp_buf_free(&errors);
    mp_config_free(&cfg);
    char *ok[] = {"MPCPUSH_MAX_BODY_BYTES=1024", "MPCPUSH_LISTEN=[::1]:8080", NULL};
    assert_int_equal(load(&cfg, NULL, ok, &errors), MP_OK);
    assert_int_equal(cfg.max_body_bytes, 1024);
    mp_buf_free(&errors);
    mp_config_free(&cfg);
}

static void test_missing_file(void **state)
{
    struct mp_config cfg;
    struct mp_buf errors;
    mp_buf_init(&errors, 0);
    char *env[] = {NULL};
    assert_int_equal(mp_config_load(&cfg, "/nonexistent/mpcpush.conf", env, &errors),
                     MP_ERR_INVALID);
    assert_non_null(strstr(errors.data, "/nonexistent/mpcpush.conf: cannot open"));
    mp_buf_free(&errors);
    mp_config_free(&cfg);
}

static void test_credentials_directory(void **state)
{
    struct mp_config cfg;
    struct mp_buf errors;
    char *env[] = {"CREDENTIALS_DIRECTORY=/run/credentials/mpcpush.service", NULL};
    assert_int_equal(load(&cfg, NULL, env, &errors), MP_OK);
    assert_string_equal(cfg.google_credentials,
                        "/run/credentials/mpcpush.service/google-service-account.json");
    mp_buf_free(&errors);
    mp_config_free(&cfg);
}

/* Prints the configuration to a string. */
static char *printed(const struct mp_config *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    mp_config_print(cfg, f);
    fclose(f);
    return text;
}

static void test_print_masks_password(void **state)
{
    struct mp_config cfg;
    struct mp_buf errors;
    char *uri[] = {"MPCPUSH_DATABASE_URL=postgresql://app:s3cret@db:5432/mpcpush", NULL};
    assert_int_equal(load(&cfg, NULL, uri, &errors), MP_OK);
    char *text = printed(&cfg);
    assert_null(strstr(text, "s3cret"));
    assert_non_null(strstr(text, "MPCPUSH_DATABASE_URL=postgresql://app:***@db:5432/mpcpush"));
    assert_non_null(strstr(text, "MPCPUSH_LISTEN=127.0.0.1:8080\n"));
    free(text);
    mp_buf_free(&errors);
    mp_config_free(&cfg);

    char *kv[] = {"MPCPUSH_DATABASE_URL=host=db password='it\\'s secret' dbname=x", NULL};
    assert_int_equal(load(&cfg, NULL, kv, &errors), MP_OK);
    text = printed(&cfg);
    assert_null(strstr(text, "secret"));
    assert_non_null(strstr(text, "password=***"));
    assert_non_null(strstr(text, "dbname=x"));
    free(text);
    mp_buf_free(&errors);
    mp_config_free(&cfg);
}

static void test_split_hostport(void **state)
{
    char host[64];
    int port;
    assert_int_equal(mp_config_split_hostport("127.0.0.1:80", host, sizeof(host), &port), MP_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 80);
    assert_int_equal(mp_config_split_hostport("[::1]:0", host, sizeof(host), &port), MP_OK);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    assert_int_equal(mp_config_split_hostport("host", host, sizeof(host), &port), MP_ERR_INVALID);
    assert_int_equal(mp_config_split_hostport("h:70000", host, sizeof(host), &port),
                     MP_ERR_INVALID);
    assert_int_equal(mp_config_split_hostport(":80", host, sizeof(host), &port), MP_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_environment_wins_over_file),
        cmocka_unit_test(test_every_problem_is_one_line),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_credentials_directory),
        cmocka_unit_test(test_print_masks_password),
        cmocka_unit_test(test_split_hostport),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
