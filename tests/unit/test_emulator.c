/* mpcpush-fcm-emulator, black box: the test starts its own emulator processes (private state
 * directories under /tmp, ports picked by the kernel) and talks to them with libcurl over TLS +
 * HTTP/2, plain HTTP/1.1 and h2c, signing OAuth assertions with libjwt as a client would. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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
    const char *bin = getenv("MPCPUSH_EMULATOR_BIN");
    if (!bin || !bin[0])
        fail_msg("MPCPUSH_EMULATOR_BIN is not set (run through ctest)");
    return bin;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
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

static void read_ports(struct emu *e)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/ports", e->dir);
    char *text = read_file(path);
    assert_non_null(text);
    assert_int_equal(sscanf(text, "tls=%d\nplain=%d", &e->tls_port, &e->plain_port), 2);
    free(text);
}

/* Runs the emulator with --state-dir and extra (NULL-terminated) arguments; waits for ports. */
static void emu_start(struct emu *e, const char *const *extra)
{
    const char *argv[32] = {emulator_bin(), "--state-dir", NULL, "--listen", "127.0.0.1:0",
                            "--listen-plain", "127.0.0.1:0"};
    size_t argc = 7;
    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/mpcpush-emu-test-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
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
    read_ports(e);
    char path[300];
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
    json_decref(e->account);
    e->account = NULL;
    nftw(e->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
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
                     mode == H2_TLS   ? (long)CURL_HTTP_VERSION_2TLS
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
    assert_int_equal(jwt_set_alg(jwt, JWT_ALG_RS256, (const unsigned char *)c->key_pem,
                                 (int)strlen(c->key_pem)),
                     0);
    char *text = jwt_encode_str(jwt);
    assert_non_null(text);
    jwt_free(jwt);
    return text;
}

static void token_request(struct reply *r, const struct emu *e, enum mode mode,
                          const struct claims *c)
{
    static const char *const headers[] = {"Content-Type: application/x-www-form-urlencoded",
                                          NULL};
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

#include "test_emulator_cases.inc"
