/* mpcpush-fcm-emulator, black box: the test starts its own emulator processes (private state
 * directories under /tmp, ports picked by the kernel) and talks to them with libcurl over TLS +
 * HTTP/2, plain HTTP/1.1 and h2c, signing OAuth assertions with libjwt as a client would. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <jwt.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "mpcpush/buf.h"

#define PROJECT   "mpcpush-emulator"
#define SEND_PATH "/v1/projects/" PROJECT "/messages:send"
#define SCOPE     "https://www.googleapis.com/auth/firebase.messaging"

enum mode { H2_TLS, H1_PLAIN, H2C_PLAIN };

struct emu {
    pid_t pid;
    char dir[256];
    int tls_port, plain_port;
    json_t *account; /* the service-account.json it wrote */
};

struct reply {
    CURLcode rc;
    long status;
    long version;
    double seconds;
    char *body;
    json_t *json;
    char retry_after[32];
    char www_authenticate[256];
};

static struct emu main_emu;

/* ---- processes and files ---- */

static const char *emulator_bin(void)
{
    return th_env("MPCPUSH_EMULATOR_BIN");
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    struct mp_buf buf;
    char chunk[4096];
    size_t n;
    mp_buf_init(&buf, 0);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(mp_buf_append(&buf, chunk, n), MP_OK);
    fclose(f);
    return buf.data ? mp_buf_steal(&buf) : strdup("");
}

/* Runs the emulator with --state-dir and extra (NULL-terminated) arguments; waits for ports. */
static void emu_start(struct emu *e, const char *const *extra)
{
    const char *argv[32] = {emulator_bin(), "--state-dir",    NULL,         "--listen",
                            "127.0.0.1:0",  "--listen-plain", "127.0.0.1:0"};
    size_t argc = 7;
    memset(e, 0, sizeof(*e));
    char *dir = th_tempdir("mpcpush-emu-test");
    snprintf(e->dir, sizeof(e->dir), "%s", dir);
    free(dir);
    argv[2] = e->dir;
    for (size_t i = 0; extra && extra[i] && argc < 31; i++)
        argv[argc++] = extra[i];
    char log[300], ports[300];
    snprintf(log, sizeof(log), "%s/emulator.log", e->dir);
    snprintf(ports, sizeof(ports), "%s/ports", e->dir);
    e->pid = fork();
    assert_true(e->pid >= 0);
    if (e->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 300 && access(ports, F_OK) != 0; i++) {
        int status;
        if (waitpid(e->pid, &status, WNOHANG) == e->pid)
            fail_msg("the emulator exited at start (see %s)", log);
        usleep(50000);
    }
    char path[300], *text = read_file(ports);
    assert_non_null(text);
    assert_int_equal(sscanf(text, "tls=%d\nplain=%d", &e->tls_port, &e->plain_port), 2);
    free(text);
    snprintf(path, sizeof(path), "%s/service-account.json", e->dir);
    e->account = json_load_file(path, 0, NULL);
    assert_non_null(e->account);
}

/* SIGTERM; the emulator must exit 0 and remove its pid file. */
static void emu_stop(struct emu *e)
{
    int status = -1;
    if (e->pid <= 0)
        return;
    kill(e->pid, SIGTERM);
    assert_int_equal(waitpid(e->pid, &status, 0), e->pid);
    e->pid = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    char pid_file[300];
    snprintf(pid_file, sizeof(pid_file), "%s/pid", e->dir);
    assert_int_not_equal(access(pid_file, F_OK), 0);
    json_decref(e->account);
    e->account = NULL;
    th_rm_rf(e->dir);
}

static const char *sa(const struct emu *e, const char *key)
{
    const char *value = json_string_value(json_object_get(e->account, key));
    assert_non_null(value);
    return value;
}

/* ---- HTTP ---- */

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    return mp_buf_append(ctx, data, size * n) == MP_OK ? size * n : 0;
}

static void header_value(const char *line, size_t len, const char *name, char *out, size_t size)
{
    size_t name_len = strlen(name);
    if (len <= name_len + 1 || strncasecmp(line, name, name_len) != 0 || line[name_len] != ':')
        return;
    const char *v = line + name_len + 1;
    while (*v == ' ')
        v++;
    size_t vlen = (size_t)(line + len - v);
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
        vlen--;
    snprintf(out, size, "%.*s", (int)vlen, v);
}

static size_t on_header(char *data, size_t size, size_t n, void *ctx)
{
    struct reply *r = ctx;
    header_value(data, size * n, "retry-after", r->retry_after, sizeof(r->retry_after));
    header_value(data, size * n, "www-authenticate", r->www_authenticate,
                 sizeof(r->www_authenticate));
    return size * n;
}

static void base_url(const struct emu *e, enum mode mode, char *out, size_t size)
{
    if (mode == H2_TLS)
        snprintf(out, size, "https://127.0.0.1:%d", e->tls_port);
    else
        snprintf(out, size, "http://127.0.0.1:%d", e->plain_port);
}

static CURL *make_easy(const struct emu *e, enum mode mode, const char *url, struct reply *r,
                       struct mp_buf *body)
{
    char ca[300];
    snprintf(ca, sizeof(ca), "%s/ca.pem", e->dir);
    CURL *curl = curl_easy_init();
    assert_non_null(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CAINFO, ca);
    curl_easy_setopt(curl, CURLOPT_HTTP_VERSION,
                     mode == H2_TLS     ? (long)CURL_HTTP_VERSION_2TLS
                     : mode == H1_PLAIN ? (long)CURL_HTTP_VERSION_1_1
                                        : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, r);
    return curl;
}

static void finish(CURL *curl, struct reply *r, struct mp_buf *body)
{
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(curl, CURLINFO_HTTP_VERSION, &r->version);
    curl_easy_getinfo(curl, CURLINFO_TOTAL_TIME, &r->seconds);
    r->body = body->data ? mp_buf_steal(body) : strdup("");
    r->json = json_loads(r->body, 0, NULL);
}

/* One request on a fresh connection. headers: NULL-terminated, may be NULL. */
static void request(struct reply *r, const struct emu *e, enum mode mode, const char *method,
                    const char *path, const char *const *headers, const char *body)
{
    char url[512];
    struct mp_buf buf;
    struct curl_slist *list = NULL;
    memset(r, 0, sizeof(*r));
    mp_buf_init(&buf, 0);
    base_url(e, mode, url, sizeof(url));
    snprintf(url + strlen(url), sizeof(url) - strlen(url), "%s", path);
    CURL *curl = make_easy(e, mode, url, r, &buf);
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    r->rc = curl_easy_perform(curl);
    finish(curl, r, &buf);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
}

static void reply_free(struct reply *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

static void expect_status(const struct reply *r, long status)
{
    if (r->rc != CURLE_OK)
        fail_msg("no answer: %s", curl_easy_strerror(r->rc));
    if (r->status != status)
        fail_msg("expected HTTP %ld, got %ld: %s", status, r->status, r->body);
}

/* The reply's JSON must equal expected (JSON text). */
static void expect_json(const struct reply *r, const char *expected)
{
    json_error_t err;
    json_t *want = json_loads(expected, 0, &err);
    if (!want)
        fail_msg("bad expected JSON: %s", err.text);
    if (!r->json || !json_equal(want, r->json))
        fail_msg("expected %s\n     got %s", expected, r->body);
    json_decref(want);
}

/* ---- OAuth ---- */

struct claims {
    const char *kid, *iss, *scope, *aud, *key_pem;
    long iat, exp;
};

static void default_claims(const struct emu *e, struct claims *c)
{
    c->kid = sa(e, "private_key_id");
    c->iss = sa(e, "client_email");
    c->scope = SCOPE;
    c->aud = sa(e, "token_uri");
    c->key_pem = sa(e, "private_key");
    c->iat = (long)time(NULL);
    c->exp = c->iat + 3600;
}

static char *sign(const struct claims *c)
{
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_header(jwt, "kid", c->kid), 0);
    assert_int_equal(jwt_add_grant(jwt, "iss", c->iss), 0);
    assert_int_equal(jwt_add_grant(jwt, "scope", c->scope), 0);
    assert_int_equal(jwt_add_grant(jwt, "aud", c->aud), 0);
    assert_int_equal(jwt_add_grant_int(jwt, "iat", c->iat), 0);
    assert_int_equal(jwt_add_grant_int(jwt, "exp", c->exp), 0);
    assert_int_equal(
        jwt_set_alg(jwt, JWT_ALG_RS256, (const unsigned char *)c->key_pem, (int)strlen(c->key_pem)),
        0);
    char *text = jwt_encode_str(jwt);
    assert_non_null(text);
    jwt_free(jwt);
    return text;
}

static void token_request(struct reply *r, const struct emu *e, enum mode mode,
                          const struct claims *c)
{
    static const char *const headers[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    char *assertion = sign(c);
    char body[8192];
    snprintf(body, sizeof(body),
             "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Ajwt-bearer&assertion=%s",
             assertion);
    free(assertion);
    request(r, e, mode, "POST", "/token", headers, body);
}

/* A fresh access token (caller frees). */
static char *get_token(const struct emu *e)
{
    struct claims c;
    struct reply r;
    default_claims(e, &c);
    token_request(&r, e, H2_TLS, &c);
    expect_status(&r, 200);
    char *token = strdup(json_string_value(json_object_get(r.json, "access_token")));
    reply_free(&r);
    return token;
}

static void expect_oauth_error(const struct emu *e, const struct claims *c, const char *error,
                               const char *description)
{
    struct reply r;
    token_request(&r, e, H2_TLS, c);
    expect_status(&r, 400);
    char expected[1024];
    snprintf(expected, sizeof(expected), "{\"error\":\"%s\",\"error_description\":\"%s\"}", error,
             description);
    expect_json(&r, expected);
    reply_free(&r);
}

/* ---- send ---- */

static void send_as(struct reply *r, const struct emu *e, enum mode mode, const char *token,
                    const char *path, const char *body)
{
    char auth[512];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token ? token : "");
    const char *headers[] = {"Content-Type: application/json", token ? auth : NULL, NULL};
    request(r, e, mode, "POST", path, headers, body);
}

static char *main_token;

static void send_message(struct reply *r, const char *body)
{
    send_as(r, &main_emu, H2_TLS, main_token, SEND_PATH, body);
}

static void expect_send_status(const char *body, long status)
{
    struct reply r;
    send_message(&r, body);
    expect_status(&r, status);
    reply_free(&r);
}

static void control(const char *method, const char *path, const char *body, long status)
{
    struct reply r;
    request(&r, &main_emu, H1_PLAIN, method, path, NULL, body);
    expect_status(&r, status);
    reply_free(&r);
}

static json_t *stats(void)
{
    struct reply r;
    request(&r, &main_emu, H1_PLAIN, "GET", "/emulator/stats", NULL, NULL);
    expect_status(&r, 200);
    json_t *json = json_incref(r.json);
    reply_free(&r);
    return json;
}

/* The string at a dotted path of object keys ("error.status"), or "". */
static const char *jstr(json_t *json, const char *path)
{
    char key[64];
    while (json && *path) {
        size_t n = strcspn(path, ".");
        snprintf(key, sizeof(key), "%.*s", (int)n, path);
        json = json_object_get(json, key);
        path += n + (path[n] == '.');
    }
    return json_is_string(json) ? json_string_value(json) : "";
}

static long stat_of(json_t *s, const char *key)
{
    return (long)json_integer_value(json_object_get(s, key));
}

static long error_count(json_t *s, const char *name)
{
    return (long)json_integer_value(json_object_get(json_object_get(s, "by_error"), name));
}

static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    emu_start(&main_emu, NULL);
    main_token = get_token(&main_emu);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(main_token);
    emu_stop(&main_emu);
    curl_global_cleanup();
    return 0;
}

static int reset(void **state)
{
    (void)state;
    control("POST", "/emulator/reset", "", 200);
    return 0;
}

/* ---- command line ---- */

static int run_status(const char *const *argv)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_command_line(void **state)
{
    (void)state;
    const char *help[] = {emulator_bin(), "--help", NULL};
    const char *version[] = {emulator_bin(), "--version", NULL};
    const char *bad[] = {emulator_bin(), "--no-such-option", NULL};
    const char *bad_value[] = {emulator_bin(), "--token-lifetime", "zero", NULL};
    assert_int_equal(run_status(help), 0);
    assert_int_equal(run_status(version), 0);
    assert_int_equal(run_status(bad), 2);
    assert_int_equal(run_status(bad_value), 2);

    char path[] = "/tmp/mpcpush-emu-sa-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    const char *make[] = {emulator_bin(), "--make-service-account", path, "--project", "p-1", NULL};
    assert_int_equal(run_status(make), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    json_t *key = json_load_file(path, 0, NULL);
    assert_string_equal(jstr(key, "type"), "service_account");
    assert_string_equal(jstr(key, "project_id"), "p-1");
    assert_string_equal(jstr(key, "client_email"), "mpcpush@p-1.iam.gserviceaccount.com");
    assert_non_null(strstr(json_string_value(json_object_get(key, "private_key")),
                           "-----BEGIN PRIVATE KEY-----"));
    json_decref(key);
    unlink(path);
}

/* ---- OAuth ---- */

static void test_token_grant(void **state)
{
    (void)state;
    struct claims c;
    struct reply r;
    default_claims(&main_emu, &c);
    token_request(&r, &main_emu, H2_TLS, &c);
    expect_status(&r, 200);
    assert_int_equal(r.version, CURL_HTTP_VERSION_2_0);
    assert_non_null(strstr(sa(&main_emu, "token_uri"), "https://127.0.0.1:"));
    const char *token = json_string_value(json_object_get(r.json, "access_token"));
    assert_non_null(token);
    assert_memory_equal(token, "ya29.", 5);
    assert_int_equal(json_integer_value(json_object_get(r.json, "expires_in")), 3600);
    assert_string_equal(jstr(r.json, "token_type"), "Bearer");
    reply_free(&r);
    /* Google's own audience is accepted too */
    c.aud = "https://oauth2.googleapis.com/token";
    token_request(&r, &main_emu, H2_TLS, &c);
    expect_status(&r, 200);
    reply_free(&r);
}

static char *other_key_pem(void)
{
    EVP_PKEY *key = EVP_RSA_gen(2048);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL), 1);
    char *data;
    long len = BIO_get_mem_data(bio, &data);
    char *pem = strndup(data, (size_t)len);
    BIO_free(bio);
    EVP_PKEY_free(key);
    return pem;
}

static void test_token_rejections(void **state)
{
    (void)state;
    struct claims c;
    static const char times[] =
        "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
        "timeframe. Check your iat and exp values in the assertion and use a clock with skew "
        "to account for clock differences between systems.";
    char *pem = other_key_pem();
    default_claims(&main_emu, &c);
    c.key_pem = pem;
    expect_oauth_error(&main_emu, &c, "invalid_grant", "Invalid JWT Signature.");
    free(pem);
    default_claims(&main_emu, &c);
    c.kid = "0123456789abcdef";
    expect_oauth_error(&main_emu, &c, "invalid_grant", "Invalid JWT Signature.");
    default_claims(&main_emu, &c);
    c.exp = c.iat + 7200;
    expect_oauth_error(&main_emu, &c, "invalid_grant", times);
    default_claims(&main_emu, &c);
    c.iat -= 4000;
    c.exp = c.iat + 3600;
    expect_oauth_error(&main_emu, &c, "invalid_grant", times);
    default_claims(&main_emu, &c);
    c.scope = "https://www.googleapis.com/auth/userinfo.email";
    expect_oauth_error(&main_emu, &c, "invalid_scope",
                       "Invalid OAuth scope or ID token audience provided.");
    default_claims(&main_emu, &c);
    c.iss = "someone@else.iam.gserviceaccount.com";
    expect_oauth_error(&main_emu, &c, "invalid_grant", "Invalid email or User ID");
    default_claims(&main_emu, &c);
    c.aud = "https://example.com/token";
    struct reply r;
    token_request(&r, &main_emu, H2_TLS, &c);
    expect_status(&r, 400);
    assert_string_equal(jstr(r.json, "error"), "invalid_grant");
    reply_free(&r);
    request(&r, &main_emu, H2_TLS, "POST", "/token", NULL, "grant_type=password&assertion=x");
    expect_json(&r, "{\"error\":\"unsupported_grant_type\","
                    "\"error_description\":\"Invalid grant_type: password\"}");
    reply_free(&r);
}

/* ---- send ---- */

static void test_send_and_record(void **state)
{
    (void)state;
    struct reply r;
    send_message(&r, "{\"message\":{\"token\":\"rec-token-1\",\"data\":{\"k\":\"v\"}}}");
    expect_status(&r, 200);
    assert_int_equal(r.version, CURL_HTTP_VERSION_2_0);
    const char *name = json_string_value(json_object_get(r.json, "name"));
    assert_non_null(name);
    assert_memory_equal(name, "projects/" PROJECT "/messages/0:", strlen(PROJECT) + 21);
    char *saved = strdup(name);
    reply_free(&r);

    /* the record reaches messages.jsonl within the flush interval */
    char path[300], *text = NULL;
    snprintf(path, sizeof(path), "%s/messages.jsonl", main_emu.dir);
    for (int i = 0; i < 40; i++, usleep(25000)) {
        free(text);
        text = read_file(path);
        if (text && strstr(text, "rec-token-1"))
            break;
    }
    json_t *line = json_loads(text, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(line);
    assert_string_equal(jstr(line, "name"), saved);
    assert_string_equal(jstr(line, "token"), "rec-token-1");
    assert_true(json_is_number(json_object_get(line, "at")));
    assert_string_equal(jstr(line, "message.data.k"), "v");
    json_decref(line);
    free(text);
    free(saved);

    request(&r, &main_emu, H1_PLAIN, "GET", "/emulator/messages?token=rec-token-1", NULL, NULL);
    expect_status(&r, 200);
    assert_non_null(strstr(r.body, "\"rec-token-1\""));
    reply_free(&r);

    /* validate_only answers but records nothing */
    send_message(&r, "{\"validate_only\":true,\"message\":{\"token\":\"rec-token-2\"}}");
    expect_status(&r, 200);
    reply_free(&r);
    request(&r, &main_emu, H1_PLAIN, "GET", "/emulator/messages?token=rec-token-2", NULL, NULL);
    assert_string_equal(r.body, "");
    reply_free(&r);
}

static const char expired_body[] =
    "{\"error\":{\"code\":401,\"message\":\"Request had invalid authentication credentials. "
    "Expected OAuth 2 access token, login cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project.\",\"status\":"
    "\"UNAUTHENTICATED\",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\","
    "\"reason\":\"ACCESS_TOKEN_EXPIRED\",\"domain\":\"googleapis.com\",\"metadata\":{\"service\":"
    "\"fcm.googleapis.com\",\"method\":\"google.firebase.fcm.v1.FcmService.SendMessage\"}}]}}";

static void test_send_authentication(void **state)
{
    (void)state;
    struct reply r;
    const char *body = "{\"message\":{\"token\":\"auth-token\"}}";
    send_as(&r, &main_emu, H2_TLS, NULL, SEND_PATH, body);
    expect_status(&r, 401);
    assert_string_equal(jstr(r.json, "error.status"), "UNAUTHENTICATED");
    assert_non_null(strstr(r.body, "CREDENTIALS_MISSING"));
    assert_non_null(strstr(r.www_authenticate, "invalid_token"));
    reply_free(&r);
    send_as(&r, &main_emu, H2_TLS, "ya29.not-issued", SEND_PATH, body);
    expect_status(&r, 401);
    reply_free(&r);
    send_as(&r, &main_emu, H2_TLS, main_token, "/v1/projects/someone-else/messages:send", body);
    expect_status(&r, 403);
    assert_string_equal(jstr(r.json, "error.status"), "PERMISSION_DENIED");
    reply_free(&r);
}

/* A second emulator: tokens live one second; faults come from a file. */
static void test_expired_token_and_faults_file(void **state)
{
    (void)state;
    char faults[] = "/tmp/mpcpush-emu-faults-XXXXXX";
    int fd = mkstemp(faults);
    const char rules[] = "[{\"token\":\"file-token\",\"error\":\"UNREGISTERED\"}]";
    assert_int_equal(write(fd, rules, sizeof(rules) - 1), (ssize_t)sizeof(rules) - 1);
    close(fd);
    const char *extra[] = {"--token-lifetime", "1", "--faults", faults, NULL};
    struct emu e;
    struct reply r;
    emu_start(&e, extra);
    char *token = get_token(&e);
    send_as(&r, &e, H2_TLS, token, SEND_PATH, "{\"message\":{\"token\":\"file-token\"}}");
    expect_status(&r, 404);
    reply_free(&r);
    sleep(2);
    send_as(&r, &e, H2_TLS, token, SEND_PATH, "{\"message\":{\"token\":\"t\"}}");
    expect_status(&r, 401);
    expect_json(&r, expired_body);
    reply_free(&r);
    free(token);
    emu_stop(&e);
    unlink(faults);
}

static void expect_violation(const char *body, const char *field)
{
    struct reply r;
    send_message(&r, body);
    expect_status(&r, 400);
    json_t *error = json_object_get(r.json, "error");
    assert_string_equal(jstr(error, "status"), "INVALID_ARGUMENT");
    json_t *details = json_object_get(error, "details");
    assert_string_equal(json_string_value(json_object_get(json_array_get(details, 0), "errorCode")),
                        "INVALID_ARGUMENT");
    json_t *violation =
        json_array_get(json_object_get(json_array_get(details, 1), "fieldViolations"), 0);
    if (field)
        assert_string_equal(jstr(violation, "field"), field);
    reply_free(&r);
}

struct violation_case {
    const char *message; /* the "message" member */
    const char *field;   /* expected field violation, NULL: any */
};

static const struct violation_case violations[] = {
    {"{\"token\":\"v\",\"data\":{\"from\":\"x\"}}", "message.data"},
    {"{\"token\":\"v\",\"data\":{\"google.x\":\"x\"}}", "message.data"},
    {"{\"token\":\"v\",\"data\":{\"gcm_y\":\"x\"}}", "message.data"},
    {"{\"token\":\"v\",\"data\":{\"a\":{\"b\":\"c\"}}}", "message.data[0].value"},
    {"{\"token\":\"v\",\"android\":{\"ttl\":\"3600\"}}", "message.android.ttl"},
    {"{\"token\":\"v\",\"android\":{\"ttl\":\"2419201s\"}}", "message.android.ttl"},
    {"{\"token\":\"v\",\"android\":{\"ttl\":\"2419200.5s\"}}", "message.android.ttl"},
    {"{\"token\":\"v\",\"android\":{\"ttl\":\"1.1234567891s\"}}", "message.android.ttl"},
    {"{\"token\":\"v\",\"android\":{\"ttl\":3600}}", "message.android.ttl"},
    {"{\"token\":\"v\",\"android\":{\"priority\":\"URGENT\"}}", "message.android.priority"},
    {"{\"data\":{}}", "message"},
    {"{\"token\":\"v\",\"topic\":\"t\"}", "message"},
    {"{\"token\":\"v\",\"andriod\":{}}", "message"},
    {"{\"token\":\"bad token\"}", "message.token"},
    {"{\"token\":\"v\",\"apns\":{\"headers\":{\"apns-priority\":\"10\"},\"payload\":{\"aps\":{"
     "\"content-available\":1}}}}",
     "message.apns.headers"},
    {"{\"token\":\"v\",\"apns\":{\"headers\":{\"apns-priority\":\"10\",\"apns-push-type\":"
     "\"background\"}}}",
     "message.apns.headers"},
    {"{\"token\":\"v\",\"apns\":{\"headers\":{\"apns-collapse-id\":"
     "\"0123456789012345678901234567890123456789012345678901234567890123x\"}}}",
     "message.apns.headers"},
    {"{\"token\":\"v\",\"apns\":{\"headers\":{\"apns-push-type\":\"loud\"}}}",
     "message.apns.headers"},
    {"{\"token\":\"v\",\"apns\":{\"headers\":{\"apns-priority\":\"7\"}}}", "message.apns.headers"},
};

static const char *const valid_messages[] = {
    "{\"token\":\"v\",\"android\":{\"ttl\":\"0s\",\"priority\":\"HIGH\",\"collapse_key\":\"c\"}}",
    "{\"token\":\"v\",\"android\":{\"ttl\":\"3.5s\",\"priority\":\"normal\",\"collapseKey\":\"c\"}"
    "}",
    "{\"token\":\"v\",\"android\":{\"ttl\":\"2419200s\"}}",
    "{\"token\":\"v\",\"apns\":{\"headers\":{\"apns-priority\":\"5\",\"apns-push-type\":"
    "\"background\",\"apns-collapse-id\":\"w\"},\"payload\":{\"aps\":{\"content-available\":1}}}}",
    "{\"token\":\"v\",\"apns\":{\"headers\":{\"apns-priority\":\"10\",\"apns-push-type\":"
    "\"alert\"},\"payload\":{\"aps\":{\"alert\":{\"title\":\"t\"},\"mutable-content\":1}}}}",
    "{\"topic\":\"/topics/news\",\"notification\":{\"title\":\"t\",\"body\":\"b\"}}",
    "{\"condition\":\"'a' in topics\",\"data\":{\"k\":\"v\"},\"fcm_options\":{}}",
};

static void test_send_validation(void **state)
{
    (void)state;
    struct reply r;
    char body[1024];
    send_message(&r, "{\"message\":{\"token\":\"v\",\"data\":{\"n\":1}}}");
    expect_status(&r, 400);
    expect_json(&r, "{\"error\":{\"code\":400,\"message\":\"Invalid value at "
                    "'message.data[0].value' (TYPE_STRING), 1\",\"status\":\"INVALID_ARGUMENT\","
                    "\"details\":[{\"@type\":\"type.googleapis.com/google.firebase.fcm.v1."
                    "FcmError\",\"errorCode\":\"INVALID_ARGUMENT\"},{\"@type\":\"type."
                    "googleapis.com/google.rpc.BadRequest\",\"fieldViolations\":[{\"field\":"
                    "\"message.data[0].value\",\"description\":\"Invalid value at "
                    "'message.data[0].value' (TYPE_STRING), 1\"}]}]}}");
    reply_free(&r);
    for (size_t i = 0; i < sizeof(violations) / sizeof(violations[0]); i++) {
        snprintf(body, sizeof(body), "{\"message\":%s}", violations[i].message);
        expect_violation(body, violations[i].field);
    }
    expect_violation("{\"message\":", NULL);
    expect_violation("{\"message\":{\"token\":\"v\"},\"extra\":1}", "");

    char big[6000];
    int n = snprintf(big, sizeof(big), "{\"message\":{\"token\":\"v\",\"data\":{\"pad\":\"");
    memset(big + n, 'x', 5000);
    snprintf(big + n + 5000, sizeof(big) - (size_t)n - 5000, "\"}}}");
    expect_violation(big, "message");

    for (size_t i = 0; i < sizeof(valid_messages) / sizeof(valid_messages[0]); i++) {
        snprintf(body, sizeof(body), "{\"validateOnly\":false,\"message\":%s}", valid_messages[i]);
        expect_send_status(body, 200);
    }
}

/* ---- faults ---- */

struct fault_case {
    const char *error;
    long status;
    const char *google_status;
    const char *error_code; /* FcmError errorCode, NULL: none */
};

static const struct fault_case fault_cases[] = {
    {"UNREGISTERED", 404, "NOT_FOUND", "UNREGISTERED"},
    {"INVALID_ARGUMENT", 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"},
    {"SENDER_ID_MISMATCH", 403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"},
    {"QUOTA_EXCEEDED", 429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"},
    {"UNAVAILABLE", 503, "UNAVAILABLE", "UNAVAILABLE"},
    {"INTERNAL", 500, "INTERNAL", "INTERNAL"},
    {"THIRD_PARTY_AUTH_ERROR", 401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"},
    {"UNAUTHENTICATED", 401, "UNAUTHENTICATED", NULL},
};

static void check_fault(const struct fault_case *fc, int with_retry)
{
    char rules[256], body[128];
    snprintf(rules, sizeof(rules), "[{\"token\":\"f-%s\",\"error\":\"%s\"%s}]", fc->error,
             fc->error, with_retry ? ",\"retryAfter\":17" : "");
    control("POST", "/emulator/faults", rules, 200);
    snprintf(body, sizeof(body), "{\"message\":{\"token\":\"f-%s\"}}", fc->error);
    struct reply r;
    send_message(&r, body);
    expect_status(&r, fc->status);
    json_t *error = json_object_get(r.json, "error");
    assert_int_equal(json_integer_value(json_object_get(error, "code")), fc->status);
    assert_string_equal(jstr(error, "status"), fc->google_status);
    json_t *detail = json_array_get(json_object_get(error, "details"), 0);
    if (fc->error_code) {
        assert_string_equal(jstr(detail, "@type"),
                            "type.googleapis.com/google.firebase.fcm.v1.FcmError");
        assert_string_equal(jstr(detail, "errorCode"), fc->error_code);
        assert_int_equal(json_array_size(json_object_get(error, "details")), 1);
    } else {
        expect_json(&r, expired_body);
    }
    assert_string_equal(r.retry_after, with_retry ? "17" : "");
    reply_free(&r);
}

static void test_fault_answers(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(fault_cases) / sizeof(fault_cases[0]); i++) {
        check_fault(&fault_cases[i], 0);
        check_fault(&fault_cases[i], 1);
    }
    json_t *s = stats();
    assert_int_equal(stat_of(s, "rejected"), 16);
    assert_int_equal(error_count(s, "QUOTA_EXCEEDED"), 2);
    assert_int_equal(error_count(s, "UNAUTHENTICATED"), 2);
    json_decref(s);
}

static void test_fault_count_and_scope(void **state)
{
    (void)state;
    control("POST", "/emulator/faults",
            "{\"faults\":[{\"token\":\"c-1\",\"error\":\"UNAVAILABLE\",\"count\":2}]}", 200);
    expect_send_status("{\"message\":{\"token\":\"c-1\"}}", 503);
    expect_send_status("{\"message\":{\"token\":\"other\"}}", 200);
    expect_send_status("{\"message\":{\"token\":\"c-1\"}}", 503);
    expect_send_status("{\"message\":{\"token\":\"c-1\"}}", 200);

    control("POST", "/emulator/faults", "[{\"token\":\"*\",\"error\":\"INTERNAL\"}]", 200);
    control("POST", "/emulator/faults?append=1",
            "[{\"token\":\"*\",\"error\":\"UNREGISTERED\",\"probability\":0}]", 200);
    expect_send_status("{\"message\":{\"token\":\"any\"}}", 500);
    expect_send_status("{\"message\":{\"topic\":\"news\"}}", 500);
    control("DELETE", "/emulator/faults", NULL, 200);
    expect_send_status("{\"message\":{\"token\":\"any\"}}", 200);
    control("POST", "/emulator/faults", "[{\"token\":\"*\",\"error\":\"NOPE\"}]", 400);
    control("POST", "/emulator/faults", "[{\"error\":\"SLOW\",\"count\":0}]", 400);
    expect_send_status("{\"message\":{\"token\":\"any\"}}", 200);
}

static void expect_no_answer(const char *token)
{
    char body[128];
    struct reply r;
    snprintf(body, sizeof(body), "{\"message\":{\"token\":\"%s\"}}", token);
    send_message(&r, body);
    if (r.rc == CURLE_OK)
        fail_msg("expected the request to fail, got HTTP %ld %s", r.status, r.body);
    reply_free(&r);
}

static void test_goaway_and_drop(void **state)
{
    (void)state;
    control("POST", "/emulator/faults",
            "[{\"token\":\"g-1\",\"error\":\"GOAWAY\"},{\"token\":\"d-1\",\"error\":\"DROP\"}]",
            200);
    expect_no_answer("g-1");
    expect_send_status("{\"message\":{\"token\":\"ok\"}}", 200);
    expect_no_answer("d-1");
    expect_send_status("{\"message\":{\"token\":\"ok\"}}", 200);
    /* over HTTP/1.1 both close the connection */
    struct reply r;
    send_as(&r, &main_emu, H1_PLAIN, main_token, SEND_PATH, "{\"message\":{\"token\":\"d-1\"}}");
    assert_int_not_equal(r.rc, CURLE_OK);
    reply_free(&r);
    json_t *s = stats();
    assert_true(stat_of(s, "goaways") >= 1);
    assert_int_equal(error_count(s, "GOAWAY"), stat_of(s, "goaways"));
    assert_int_equal(error_count(s, "DROP"), 2);
    assert_int_equal(stat_of(s, "accepted"), 2);
    json_decref(s);
}

/* A SLOW answer delays only its own stream: a fast request sent at the same time on the same
 * HTTP/2 connection comes back first. */
static void test_slow(void **state)
{
    (void)state;
    control("POST", "/emulator/faults", "[{\"token\":\"s-1\",\"error\":\"SLOW\",\"delayMs\":600}]",
            200);
    char url[256], auth[512];
    base_url(&main_emu, H2_TLS, url, sizeof(url));
    strcat(url, SEND_PATH);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", main_token);
    struct curl_slist *headers = curl_slist_append(NULL, auth);
    headers = curl_slist_append(headers, "Content-Type: application/json");
    const char *bodies[2] = {"{\"message\":{\"token\":\"s-1\"}}",
                             "{\"message\":{\"token\":\"fast\"}}"};
    struct reply r[2];
    struct mp_buf buf[2];
    CURL *easy[2];
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    for (int i = 0; i < 2; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        mp_buf_init(&buf[i], 0);
        easy[i] = make_easy(&main_emu, H2_TLS, url, &r[i], &buf[i]);
        curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(easy[i], CURLOPT_POSTFIELDS, bodies[i]);
        curl_multi_add_handle(multi, easy[i]);
    }
    int running = 1;
    while (running) {
        curl_multi_perform(multi, &running);
        curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    for (int i = 0; i < 2; i++) {
        finish(easy[i], &r[i], &buf[i]);
        expect_status(&r[i], 200);
        curl_multi_remove_handle(multi, easy[i]);
        curl_easy_cleanup(easy[i]);
    }
    assert_true(r[0].seconds >= 0.6);
    assert_true(r[1].seconds < 0.5);
    reply_free(&r[0]);
    reply_free(&r[1]);
    curl_multi_cleanup(multi);
    curl_slist_free_all(headers);
    json_t *s = stats();
    assert_int_equal(stat_of(s, "slowed"), 1);
    json_decref(s);
}

/* ---- protocols, counters, reset ---- */

static void test_plain_http1_and_h2c(void **state)
{
    (void)state;
    struct claims c;
    struct reply r;
    default_claims(&main_emu, &c);
    token_request(&r, &main_emu, H1_PLAIN, &c);
    expect_status(&r, 200);
    assert_int_equal(r.version, CURL_HTTP_VERSION_1_1);
    char *token = strdup(json_string_value(json_object_get(r.json, "access_token")));
    reply_free(&r);
    send_as(&r, &main_emu, H1_PLAIN, token, SEND_PATH, "{\"message\":{\"token\":\"h1\"}}");
    expect_status(&r, 200);
    assert_int_equal(r.version, CURL_HTTP_VERSION_1_1);
    reply_free(&r);
    send_as(&r, &main_emu, H2C_PLAIN, token, SEND_PATH, "{\"message\":{\"token\":\"h2c\"}}");
    expect_status(&r, 200);
    assert_int_equal(r.version, CURL_HTTP_VERSION_2_0);
    reply_free(&r);
    free(token);
}

/* firebase-admin sends ":scheme: https:"; Google answers it, so must we. Raw h2c: the preface,
 * empty SETTINGS, and HEADERS (END_STREAM | END_HEADERS) on stream 1 made of four HPACK
 * literals (0x43 = 67 bytes: 3 per literal and 55 of names and values). */
static const char scheme_request[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                     "\x00\x00\x00\x04\x00\x00\x00\x00\x00"
                                     "\x00\x00\x43\x01\x05\x00\x00\x00\x01"
                                     "\x00\x07:method\x03GET"
                                     "\x00\x07:scheme\x06https:"
                                     "\x00\x05:path\x08/healthz"
                                     "\x00\x0a:authority\x09"
                                     "127.0.0.1";

static void test_scheme_with_colon(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)main_emu.plain_port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    ssize_t len = (ssize_t)sizeof(scheme_request) - 1;
    assert_int_equal(write(fd, scheme_request, (size_t)len), len);
    /* read frames until the HEADERS of stream 1: ":status: 200" is HPACK static index 8 */
    unsigned char in[16384];
    size_t have = 0, off = 0;
    for (int found = 0; !found;) {
        ssize_t got = read(fd, in + have, sizeof(in) - have);
        assert_true(got > 0);
        have += (size_t)got;
        for (size_t flen; !found && off + 9 <= have; off += 9 + flen) {
            flen = (size_t)in[off] << 16 | (size_t)in[off + 1] << 8 | in[off + 2];
            if (off + 9 + flen > have)
                break;
            assert_int_not_equal(in[off + 3], 0x03); /* no RST_STREAM */
            found = in[off + 3] == 0x01 && in[off + 8] == 1;
            if (found)
                assert_int_equal(in[off + 9], 0x88);
        }
    }
    close(fd);
}

static void test_stats_and_reset(void **state)
{
    (void)state;
    char *token = get_token(&main_emu);
    expect_send_status("{\"message\":{\"token\":\"a\"}}", 200);
    expect_send_status("{\"message\":{\"token\":\"b\"}}", 200);
    expect_send_status("{\"message\":{\"token\":\"c\",\"data\":{\"from\":\"x\"}}}", 400);
    control("POST", "/emulator/faults", "[{\"token\":\"u\",\"error\":\"UNREGISTERED\"}]", 200);
    expect_send_status("{\"message\":{\"token\":\"u\"}}", 404);
    json_t *s = stats();
    assert_int_equal(stat_of(s, "token_requests"), 1);
    assert_int_equal(stat_of(s, "tokens_issued"), 1);
    assert_int_equal(stat_of(s, "send_requests"), 4);
    assert_int_equal(stat_of(s, "accepted"), 2);
    assert_int_equal(stat_of(s, "rejected"), 2);
    assert_int_equal(stat_of(s, "recorded"), 2);
    assert_int_equal(error_count(s, "INVALID_ARGUMENT"), 1);
    assert_int_equal(error_count(s, "UNREGISTERED"), 1);
    assert_int_equal(stat_of(s, "faults"), 1);
    assert_true(stat_of(s, "connections") >= 5);
    json_decref(s);
    free(token);

    control("POST", "/emulator/reset", "", 200);
    s = stats();
    assert_int_equal(stat_of(s, "send_requests"), 0);
    assert_int_equal(stat_of(s, "faults"), 0);
    json_decref(s);
    struct reply r;
    request(&r, &main_emu, H1_PLAIN, "GET", "/emulator/messages", NULL, NULL);
    expect_status(&r, 200);
    assert_string_equal(r.body, "");
    reply_free(&r);
    expect_send_status("{\"message\":{\"token\":\"u\"}}", 200); /* faults are gone too */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_command_line),
        cmocka_unit_test_setup(test_token_grant, reset),
        cmocka_unit_test_setup(test_token_rejections, reset),
        cmocka_unit_test_setup(test_send_and_record, reset),
        cmocka_unit_test_setup(test_send_authentication, reset),
        cmocka_unit_test(test_expired_token_and_faults_file),
        cmocka_unit_test_setup(test_send_validation, reset),
        cmocka_unit_test_setup(test_fault_answers, reset),
        cmocka_unit_test_setup(test_fault_count_and_scope, reset),
        cmocka_unit_test_setup(test_goaway_and_drop, reset),
        cmocka_unit_test_setup(test_slow, reset),
        cmocka_unit_test_setup(test_plain_http1_and_h2c, reset),
        cmocka_unit_test_setup(test_scheme_with_colon, reset),
        cmocka_unit_test_setup(test_stats_and_reset, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
