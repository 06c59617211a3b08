/* The configuration parser: mp_config_load on a `--config FILE` plus environment entries, then
 * mp_config_check and mp_config_print (what `mpcpush check-config` shows).
 *
 * Input:  the file's content, up to a line "@@env"; each line after it is one environment
 *         entry ("KEY=VALUE").
 *
 * Invariants: the result is MP_OK, MP_ERR_INVALID or MP_ERR_NOMEM and MP_OK only when no
 * problem was reported; integers are within their documented ranges; the printed
 * MPCPUSH_DATABASE_URL masks the password that libpq would use (PQconninfoParse). */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "mpcpush/config.h"

#define MAX_ENV 64

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fz_quiet_logs();
    return 0;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0, len = strlen(needle);
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    (void)len;
    return n;
}

/* The password libpq would take from url, or NULL. Caller frees. */
static char *libpq_password(const char *url)
{
    char *err = NULL, *password = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &err);
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val && o->val[0])
            password = strdup(o->val);
    PQconninfoFree(opts);
    PQfreemem(err);
    return password;
}

static void check_masked(const struct mp_config *cfg)
{
    if (!cfg->database_url)
        return;
    char *printed = NULL;
    size_t printed_len = 0;
    FILE *out = open_memstream(&printed, &printed_len);
    if (!out)
        abort();
    mp_config_print(cfg, out);
    fclose(out);
    const char *line = strstr(printed, "MPCPUSH_DATABASE_URL=");
    FZ_CHECK(line);
    line += strlen("MPCPUSH_DATABASE_URL=");
    char *shown = strndup(line, strcspn(line, "\n"));
    char *password = libpq_password(cfg->database_url);
    /* shorter passwords and ones made of the mask's own characters say nothing */
    if (password && strlen(password) >= 4 && !strpbrk(password, "*\n") &&
        !strchr(cfg->database_url, '\n')) {
        size_t before = count(cfg->database_url, password);
        if (before > 0 && count(shown, password) >= before) {
            fprintf(stderr, "url: %s\nshown: %s\npassword: %s\n", cfg->database_url, shown,
                    password);
            FZ_CHECK(!"the printed database URL shows its password");
        }
    }
    free(password);
    free(shown);
    free(printed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_input in = {data, size};
    size_t len;
    char *text = fz_take_rest(&in, &len);
    char *env_part = NULL, *envp[MAX_ENV + 1];
    size_t file_len = len, n = 0;
    char *mark = strstr(text, "@@env\n");
    if (mark && (mark == text || mark[-1] == '\n')) {
        file_len = (size_t)(mark - text);
        env_part = mark + 6;
    }
    const char *path = fz_scratch_file(text, file_len);
    for (char *save = NULL, *e = env_part ? strtok_r(env_part, "\n", &save) : NULL;
         e && n < MAX_ENV; e = strtok_r(NULL, "\n", &save))
        envp[n++] = e;
    envp[n] = NULL;

    struct mp_config cfg;
    struct mp_buf errors;
    mp_buf_init(&errors, 1 << 20);
    enum mp_result r = mp_config_load(&cfg, path, envp, &errors);
    FZ_CHECK(r == MP_OK || r == MP_ERR_INVALID || r == MP_ERR_NOMEM);
    if (r == MP_OK)
        FZ_CHECK(errors.len == 0);
    if (r == MP_ERR_INVALID)
        FZ_CHECK(errors.len > 0 && errors.data[errors.len - 1] == '\n');
    if (r == MP_OK) {
        FZ_CHECK(cfg.listen && cfg.fcm_url && cfg.log_level);
        FZ_CHECK(cfg.db_pool_size >= 1 && cfg.db_pool_size <= 256);
        FZ_CHECK(cfg.max_body_bytes >= 1024 && cfg.max_body_bytes <= 16777216);
        FZ_CHECK(cfg.message_ttl >= 1 && cfg.max_message_ttl <= 2419200);
        struct mp_buf more;
        mp_buf_init(&more, 0);
        (void)mp_config_check(&cfg, MP_NEED_DATABASE, &more);
        mp_buf_free(&more);
    }
    check_masked(&cfg);
    mp_config_free(&cfg);
    mp_buf_free(&errors);
    free(text);
    return 0;
}
