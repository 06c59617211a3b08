/* Test support for the dispatcher tests: see emulator_util.h. */
#include "emulator_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the emulator ---- */

/* Reads DIR/ports ("tls=N\nplain=N\n"); false while it is not there yet. */
static bool read_ports(struct eu_emulator *e)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/ports", e->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    int tls = 0, plain = 0;
    bool ok = fscanf(f, "tls=%d plain=%d", &tls, &plain) == 2 && tls > 0 && plain > 0;
    fclose(f);
    if (ok) {
        e->tls = tls;
        e->plain = plain;
    }
    return ok;
}

static void fill_urls(struct eu_emulator *e)
{
    snprintf(e->ctl, sizeof(e->ctl), "http://127.0.0.1:%d", e->plain);
    snprintf(e->fcm_url, sizeof(e->fcm_url), "https://127.0.0.1:%d", e->tls);
    snprintf(e->env_creds, sizeof(e->env_creds),
             "MPCPUSH_GOOGLE_CREDENTIALS=%s/service-account.json", e->dir);
    snprintf(e->env_url, sizeof(e->env_url), "MPCPUSH_FCM_URL=%s", e->fcm_url);
    snprintf(e->env_ca, sizeof(e->env_ca), "MPCPUSH_CA_FILE=%s/ca.pem", e->dir);
}

void eu_shared(struct eu_emulator *e)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "%s/emulator", th_env("MPCPUSH_TEST_DIR"));
    if (!read_ports(e))
        fail_msg("the fixture emulator is not running (no %s/ports)", e->dir);
    fill_urls(e);
}

void eu_start(struct eu_emulator *e, const char *const *args)
{
    memset(e, 0, sizeof(*e));
    const char *bin = th_env("MPCPUSH_EMULATOR_BIN");
    char *dir = th_tempdir("mpcpush-emu");
    snprintf(e->dir, sizeof(e->dir), "%s", dir);
    free(dir);
    e->own = true;
    const char *argv[40] = {bin,           "--state-dir",    e->dir,       "--listen",
                            "127.0.0.1:0", "--listen-plain", "127.0.0.1:0"};
    int n = 7;
    for (int i = 0; args && args[i] && n < 38; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char log[300];
    snprintf(log, sizeof(log), "%s/emulator.log", e->dir);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive a crashed test program */
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    e->pid = pid;
    for (int i = 0; i < 400; i++) {
        int status;
        if (read_ports(e)) {
            fill_urls(e);
            return;
        }
        if (waitpid(pid, &status, WNOHANG) == pid) {
            e->pid = 0;
            fail_msg("the emulator exited during start-up (see %s)", log);
        }
        usleep(25000);
    }
    fail_msg("the emulator did not write %s/ports within 10 s", e->dir);
}

void eu_stop(struct eu_emulator *e)
{
    if (!e->own)
        return;
    if (e->pid > 0) {
        kill(e->pid, SIGTERM);
        if (pu_wait_exit(e->pid, 5000) < 0) {
            kill(e->pid, SIGKILL);
            waitpid(e->pid, NULL, 0);
        }
        e->pid = 0;
    }
    th_rm_rf(e->dir);
    e->own = false;
}

/* ---- control plane ---- */

json_t *eu_control(const struct eu_emulator *e, const char *method, const char *path,
                   const char *body)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", e->ctl, path);
    const char *headers[] = {"Content-Type: application/json", NULL};
    struct th_response r;
    th_http(&r, method, url, body ? headers : NULL, body, body ? strlen(body) : 0);
    if (r.status != 200)
        fail_msg("%s %s: expected 200, got %ld: %s", method, url, r.status, r.body);
    json_t *json = json_incref(r.json);
    th_response_free(&r);
    return json;
}

json_t *eu_stats(const struct eu_emulator *e)
{
    json_t *stats = eu_control(e, "GET", "/emulator/stats", NULL);
    if (!json_is_object(stats))
        fail_msg("GET /emulator/stats: not a JSON object");
    return stats;
}

long eu_stat(const struct eu_emulator *e, const char *name)
{
    json_t *stats = eu_stats(e);
    json_t *v = json_object_get(stats, name);
    if (!json_is_integer(v))
        fail_msg("GET /emulator/stats: no counter %s", name);
    long n = (long)json_integer_value(v);
    json_decref(stats);
    return n;
}

long eu_errors(const struct eu_emulator *e, const char *error)
{
    json_t *stats = eu_stats(e);
    json_t *v = json_object_get(json_object_get(stats, "by_error"), error);
    if (!json_is_integer(v))
        fail_msg("GET /emulator/stats: no by_error.%s", error);
    long n = (long)json_integer_value(v);
    json_decref(stats);
    return n;
}

void eu_faults(const struct eu_emulator *e, const char *rules_json, bool append)
{
    json_decref(eu_control(e, "POST", append ? "/emulator/faults?append=1" : "/emulator/faults",
                           rules_json));
}

void eu_faults_clear(const struct eu_emulator *e)
{
    json_decref(eu_control(e, "DELETE", "/emulator/faults", NULL));
}

/* ---- records ---- */

/* Parses JSON lines, keeping those whose token starts with prefix (NULL: all). */
static json_t *parse_lines(const char *text, const char *prefix)
{
    json_t *list = json_array();
    size_t plen = prefix ? strlen(prefix) : 0;
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 0) {
            json_error_t err;
            json_t *rec = json_loadb(p, len, 0, &err);
            if (!rec)
                fail_msg("emulator record is not JSON: %s: %.200s", err.text, p);
            const char *tok = json_string_value(json_object_get(rec, "token"));
            if (!prefix || (tok && strncmp(tok, prefix, plen) == 0))
                json_array_append(list, rec);
            json_decref(rec);
        }
        p = nl ? nl + 1 : NULL;
    }
    return list;
}

static json_t *fetch_records(const struct eu_emulator *e, const char *token, const char *prefix)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s/emulator/messages%s%s", e->ctl, token ? "?token=" : "",
             token ? token : "");
    struct th_response r;
    th_http(&r, "GET", url, NULL, NULL, 0);
    if (r.status != 200)
        fail_msg("GET %s: expected 200, got %ld", url, r.status);
    json_t *list = parse_lines(r.body, prefix);
    th_response_free(&r);
    return list;
}

json_t *eu_records(const struct eu_emulator *e, const char *token)
{
    return fetch_records(e, token, NULL);
}

json_t *eu_records_prefix(const struct eu_emulator *e, const char *prefix)
{
    return fetch_records(e, NULL, prefix);
}

size_t eu_wait_records(const struct eu_emulator *e, const char *token, size_t n, int timeout_ms)
{
    long deadline = tx_now_ms() + timeout_ms;
    for (;;) {
        json_t *list = eu_records(e, token);
        size_t got = json_array_size(list);
        json_decref(list);
        if (got >= n || tx_now_ms() >= deadline)
            return got;
        usleep(50000);
    }
}

const char *eu_data(const json_t *record, const char *key)
{
    json_t *data = json_object_get(json_object_get(record, "message"), "data");
    const char *v = json_string_value(json_object_get(data, key));
    return v ? v : "";
}

long long eu_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- devices and processes ---- */

void eu_token(char *out, size_t size, const char *tag, int i)
{
    snprintf(out, size, "eu%d-%s-%d-APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx", (int)getpid(), tag, i);
}

void eu_register(const struct tx_env *t, const char *wallet, const char *device, const char *token,
                 const char *platform)
{
    char path[512], *body = NULL;
    snprintf(path, sizeof(path), "/v1/wallets/%s/devices/%s", wallet, device);
    if (asprintf(&body, "{\"fcmToken\":\"%s\",\"platform\":\"%s\"}", token, platform) < 0)
        fail_msg("out of memory");
    struct th_response r;
    tx_api(&r, t, "PUT", path, body);
    free(body);
    if (r.status != 200 && r.status != 201)
        fail_msg("PUT %s: expected 200 or 201, got %ld: %s", path, r.status, r.body);
    th_response_free(&r);
}

/* Whether extra sets the variable of entry ("KEY=..."). */
static bool overridden(const char *entry, const char *const *extra)
{
    size_t klen = strcspn(entry, "=") + 1;
    for (int i = 0; extra && extra[i]; i++)
        if (strncmp(extra[i], entry, klen) == 0)
            return true;
    return false;
}

void eu_proc_start(struct th_proc *p, const char *command, const char *db,
                   const struct eu_emulator *e, const char *const *extra)
{
    char pub[700];
    snprintf(pub, sizeof(pub), "MPCPUSH_FIREBLOCKS_PUBKEYS=%s", tx_keys()->pubkeys);
    const char *defaults[] = {e->env_creds,
                              e->env_url,
                              e->env_ca,
                              pub,
                              "MPCPUSH_RETRY_BASE_MS=200",
                              "MPCPUSH_RETRY_MAX=5",
                              "MPCPUSH_LEASE_SECONDS=5",
                              "MPCPUSH_POLL_INTERVAL_MS=100",
                              "MPCPUSH_FCM_TIMEOUT=2",
                              NULL};
    const char *env[64];
    int n = 0;
    for (int i = 0; extra && extra[i] && n < 40; i++)
        env[n++] = extra[i];
    for (int i = 0; defaults[i]; i++)
        if (!overridden(defaults[i], extra))
            env[n++] = defaults[i];
    env[n] = NULL;
    th_mpcpush_start(p, command, db, env);
}

void eu_start_mpcpush(struct tx_env *t, const char *command, const struct eu_emulator *e,
                      const char *const *extra)
{
    eu_proc_start(&t->proc, command, t->db, e, extra);
    t->running = true;
}

long eu_wait_sql(const char *db, long want, int timeout_ms, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = NULL;
    if (vasprintf(&sql, fmt, ap) < 0)
        fail_msg("out of memory");
    va_end(ap);
    long deadline = tx_now_ms() + timeout_ms;
    long got;
    for (;;) {
        got = th_sql_long(db, sql);
        if (got == want || tx_now_ms() >= deadline)
            break;
        usleep(50000);
    }
    free(sql);
    return got;
}

/* ---- a cmocka fixture ---- */

int eu_setup(void **state)
{
    struct eu_env *env = calloc(1, sizeof(*env));
    env->t.db = th_db_create(true);
    env->t.apikey = th_apikey(env->t.db, "tests");
    snprintf(env->t.auth, sizeof(env->t.auth), "Authorization: Bearer %s", env->t.apikey);
    *state = env;
    return 0;
}

int eu_teardown(void **state)
{
    struct eu_env *env = *state;
    if (!env)
        return 0;
    int status = 0;
    for (int i = 0; i < EU_PROCS; i++) {
        if (env->procs[i].pid <= 0)
            continue;
        char log[256];
        snprintf(log, sizeof(log), "%s", env->procs[i].log_path);
        int st = th_proc_stop(&env->procs[i], SIGTERM);
        if (st != 0)
            fprintf(stderr, "mpcpush exited %d after SIGTERM (log: %s)\n", st, log);
        status |= st;
    }
    int st = tx_stop(&env->t);
    if (st != 0)
        fprintf(stderr, "mpcpush exited %d after SIGTERM (log: %s)\n", st, env->t.proc.log_path);
    status |= st;
    eu_stop(&env->emu);
    free(env->t.db);
    free(env->t.apikey);
    free(env);
    *state = NULL;
    return status == 0 ? 0 : -1;
}
