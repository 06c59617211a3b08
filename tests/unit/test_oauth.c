/* Tests for the OAuth token source: key-file checks, the JWT it signs, caching, single-flight
 * refresh, invalidation and back-off. A tiny scripted token endpoint in this file covers the
 * answers Google gives that an emulator cannot provoke (clock skew, revoked key); the real
 * mpcpush-fcm-emulator (MPCPUSH_EMULATOR_BIN) covers the exchange end to end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <jwt.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mpcpush/log.h"
#include "mpcpush/oauth.h"

/* ---- small helpers ---- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    char *data = calloc(1, 1 << 20);
    size_t n = fread(data, 1, (1 << 20) - 1, f);
    data[n] = '\0';
    fclose(f);
    return data;
}

static void rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        print_message("could not remove %s\n", dir);
}

/* Log lines go to stderr; tests that check them send stderr to a file meanwhile. */
struct capture {
    int saved;
    char path[256];
};

static void capture_begin(struct capture *c)
{
    snprintf(c->path, sizeof(c->path), "/tmp/mpcpush-oauth-log-%d", (int)getpid());
    int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    c->saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

static char *capture_end(struct capture *c)
{
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    char *text = slurp(c->path);
    unlink(c->path);
    return text;
}

/* ---- a service account of our own ---- */

struct account {
    char dir[128];
    char path[256];
    char *public_pem;
    char *private_pem;
};

static char *pem_of(EVP_PKEY *key, bool private_key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (private_key)
        PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
    else
        PEM_write_bio_PUBKEY(bio, key);
    char *data;
    long len = BIO_get_mem_data(bio, &data);
    char *copy = strndup(data, (size_t)len);
    BIO_free(bio);
    return copy;
}

static void write_json(const char *path, json_t *root, mode_t mode)
{
    assert_int_equal(json_dump_file(root, path, JSON_INDENT(2)), 0);
    chmod(path, mode);
    json_decref(root);
}

/* Writes a key file whose token_uri is token_uri; fields may be overridden by the caller. */
static void account_make(struct account *a, const char *token_uri)
{
    snprintf(a->dir, sizeof(a->dir), "/tmp/mpcpush-oauth-XXXXXX");
    assert_non_null(mkdtemp(a->dir));
    snprintf(a->path, sizeof(a->path), "%s/sa.json", a->dir);
    EVP_PKEY *key = EVP_RSA_gen(2048);
    assert_non_null(key);
    a->public_pem = pem_of(key, false);
    a->private_pem = pem_of(key, true);
    EVP_PKEY_free(key);
    write_json(a->path,
               json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "type", "service_account",
                         "project_id", "test-project", "private_key_id", "kid-0123456789abcdef",
                         "private_key", a->private_pem, "client_email",
                         "pusher@test-project.iam.gserviceaccount.com", "client_id", "1234",
                         "token_uri", token_uri),
               0600);
}

static void account_free(struct account *a)
{
    rm_rf(a->dir);
    free(a->public_pem);
    free(a->private_pem);
}

/* ---- a scripted token endpoint (plain HTTP/1.1 on loopback) ---- */

struct fake {
    int fd;
    int port;
    char url[64];
    pthread_t thread;
    atomic_bool stop;
    atomic_int requests;
    pthread_mutex_t lock;
    int status;         /* next answers' status */
    char body[1024];    /* next answers' body; "%d" is replaced by the request number */
    int delay_ms;       /* before answering */
    char request[8192]; /* the last request body */
};

static const char *find_nocase(const char *text, const char *needle)
{
    for (size_t n = strlen(needle); *text; text++)
        if (strncasecmp(text, needle, n) == 0)
            return text;
    return NULL;
}

static bool read_request(int cfd, char *body, size_t size)
{
    char buf[16384];
    size_t used = 0;
    char *end = NULL;
    while (!end && used < sizeof(buf) - 1) {
        ssize_t n = read(cfd, buf + used, sizeof(buf) - 1 - used);
        if (n <= 0)
            return false;
        used += (size_t)n;
        buf[used] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (!end)
        return false;
    const char *cl = find_nocase(buf, "content-length:");
    size_t want = cl ? strtoul(cl + 15, NULL, 10) : 0;
    size_t have = used - (size_t)(end + 4 - buf);
    while (have < want && used < sizeof(buf) - 1) {
        ssize_t n = read(cfd, buf + used, sizeof(buf) - 1 - used);
        if (n <= 0)
            return false;
        used += (size_t)n;
        have += (size_t)n;
    }
    buf[used] = '\0';
    snprintf(body, size, "%s", end + 4);
    return true;
}

static void answer(struct fake *f, int cfd)
{
    char body[8192], text[1100], head[256];
    if (!read_request(cfd, body, sizeof(body)))
        return;
    int number = atomic_fetch_add(&f->requests, 1) + 1;
    pthread_mutex_lock(&f->lock);
    snprintf(f->request, sizeof(f->request), "%s", body);
    int status = f->status, delay = f->delay_ms;
    char *mark = strstr(f->body, "%d");
    if (mark)
        snprintf(text, sizeof(text), "%.*s%d%s", (int)(mark - f->body), f->body, number, mark + 2);
    else
        snprintf(text, sizeof(text), "%s", f->body);
    pthread_mutex_unlock(&f->lock);
    if (delay)
        usleep((useconds_t)delay * 1000);
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: "
                     "%zu\r\nConnection: close\r\n\r\n",
                     status, strlen(text));
    if (write(cfd, head, (size_t)n) < 0 || write(cfd, text, strlen(text)) < 0)
        print_message("fake token endpoint: write failed\n");
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd pfd = {.fd = f->fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int cfd = accept(f->fd, NULL, NULL);
        if (cfd < 0)
            continue;
        answer(f, cfd);
        close(cfd);
    }
    return NULL;
}

static void fake_script(struct fake *f, int status, const char *body, int delay_ms)
{
    pthread_mutex_lock(&f->lock);
    f->status = status;
    snprintf(f->body, sizeof(f->body), "%s", body);
    f->delay_ms = delay_ms;
    pthread_mutex_unlock(&f->lock);
}

static void fake_start(struct fake *f)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->lock, NULL);
    f->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    assert_int_equal(bind(f->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(f->fd, 64), 0);
    assert_int_equal(getsockname(f->fd, (struct sockaddr *)&addr, &len), 0);
    f->port = ntohs(addr.sin_port);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/token", f->port);
    fake_script(f, 200,
                "{\"access_token\":\"ya29.fake-%d\",\"expires_in\":3599,"
                "\"token_type\":\"Bearer\"}",
                0);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    close(f->fd);
    pthread_mutex_destroy(&f->lock);
}

/* The fixture of the tests against the scripted endpoint. */
struct fixture {
    struct fake fake;
    struct account account;
    struct mp_oauth *oauth;
};

static int fixture_setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    fake_start(&fx->fake);
    account_make(&fx->account, fx->fake.url);
    struct mp_buf errors;
    mp_buf_init(&errors, 0);
    enum mp_result result = mp_oauth_new(fx->account.path, NULL, NULL, &fx->oauth, &errors);
    if (result)
        fail_msg("mp_oauth_new: %s: %s", mp_strerror(result), errors.data ? errors.data : "");
    mp_buf_free(&errors);
    *state = fx;
    return 0;
}

static int fixture_teardown(void **state)
{
    struct fixture *fx = *state;
    mp_oauth_free(fx->oauth);
    fake_stop(&fx->fake);
    account_free(&fx->account);
    free(fx);
    return 0;
}

/* ---- key files ---- */

static enum mp_result try_new(const char *path, const char *override, char **errors_out)
{
    struct mp_buf errors;
    mp_buf_init(&errors, 0);
    struct mp_oauth *o = NULL;
    enum mp_result result = mp_oauth_new(path, override, NULL, &o, &errors);
    mp_oauth_free(o);
    *errors_out = errors.data ? strdup(errors.data) : strdup("");
    mp_buf_free(&errors);
    return result;
}

static int count_lines(const char *text)
{
    int n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

static void test_key_file_problems(void **state)
{
    (void)state;
    struct account a;
    account_make(&a, "https://oauth2.googleapis.com/token");
    char *errors, path[300];

    assert_int_equal(try_new("/nonexistent/key.json", NULL, &errors), MP_ERR_INVALID);
    assert_non_null(strstr(errors, "MPCPUSH_GOOGLE_CREDENTIALS: /nonexistent/key.json: cannot"));
    free(errors);

    /* a broken file: the position, never its content */
    snprintf(path, sizeof(path), "%s/broken.json", a.dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"private_key\": \"%.60s", a.private_pem + 28);
    fclose(f);
    chmod(path, 0600);
    assert_int_equal(try_new(path, NULL, &errors), MP_ERR_INVALID);
    assert_int_equal(count_lines(errors), 1);
    assert_non_null(strstr(errors, "not a JSON object (line"));
    assert_null(strstr(errors, "MII"));
    free(errors);

    /* every missing field on its own line */
    snprintf(path, sizeof(path), "%s/partial.json", a.dir);
    write_json(path, json_pack("{s:s, s:s}", "type", "user", "client_email", "x@y"), 0600);
    assert_int_equal(try_new(path, NULL, &errors), MP_ERR_INVALID);
    assert_int_equal(count_lines(errors), 5);
    assert_non_null(strstr(errors, "\"type\" is not \"service_account\""));
    assert_non_null(strstr(errors, "missing or empty \"project_id\""));
    assert_non_null(strstr(errors, "missing or empty \"private_key_id\""));
    assert_non_null(strstr(errors, "missing or empty \"private_key\""));
    assert_non_null(strstr(errors, "missing or empty \"token_uri\""));
    free(errors);

    /* a private key that is not one */
    snprintf(path, sizeof(path), "%s/badkey.json", a.dir);
    write_json(path,
               json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "service_account", "project_id",
                         "p", "private_key_id", "k", "private_key",
                         "-----BEGIN PRIVATE KEY-----\nSECRETSECRET\n-----END PRIVATE KEY-----\n",
                         "client_email", "e@x", "token_uri", "https://oauth2.googleapis.com/token"),
               0600);
    assert_int_equal(try_new(path, NULL, &errors), MP_ERR_INVALID);
    assert_non_null(strstr(errors, "\"private_key\" is not an unencrypted RSA private key"));
    assert_null(strstr(errors, "SECRET"));
    free(errors);

    account_free(&a);
}

static void test_token_url_policy(void **state)
{
    (void)state;
    struct account a;
    account_make(&a, "https://oauth2.googleapis.com/token");
    char *errors;
    /* plain http only to loopback */
    assert_int_equal(try_new(a.path, "http://oauth.example.com/token", &errors), MP_ERR_INVALID);
    assert_non_null(strstr(errors, "MPCPUSH_GOOGLE_TOKEN_URL"));
    free(errors);
    assert_int_equal(try_new(a.path, "ftp://127.0.0.1/token", &errors), MP_ERR_INVALID);
    free(errors);
    assert_int_equal(try_new(a.path, "http://127.0.0.1:9/token", &errors), MP_OK);
    free(errors);
    assert_int_equal(try_new(a.path, "http://[::1]:9/token", &errors), MP_OK);
    free(errors);
    assert_int_equal(try_new(a.path, "http://localhost:9/token", &errors), MP_OK);
    free(errors);
    assert_int_equal(try_new(a.path, "http://127.evil.com/token", &errors), MP_ERR_INVALID);
    free(errors);

    struct mp_oauth *o = NULL;
    assert_int_equal(mp_oauth_new(a.path, NULL, NULL, &o, NULL), MP_OK);
    assert_string_equal(mp_oauth_project_id(o), "test-project");
    assert_string_equal(mp_oauth_client_email(o), "pusher@test-project.iam.gserviceaccount.com");
    mp_oauth_free(o);
    mp_oauth_free(NULL);
    account_free(&a);
}

static void test_world_readable_key_warns(void **state)
{
    (void)state;
    struct account a;
    account_make(&a, "https://oauth2.googleapis.com/token");
    chmod(a.path, 0644);
    struct capture cap;
    struct mp_oauth *o = NULL;
    capture_begin(&cap);
    enum mp_result result = mp_oauth_new(a.path, NULL, NULL, &o, NULL);
    char *log = capture_end(&cap);
    assert_int_equal(result, MP_OK);
    assert_non_null(strstr(log, "level=warn event=google_key_permissions"));
    assert_non_null(strstr(log, "mode=0644"));
    assert_null(strstr(log, "PRIVATE"));
    free(log);
    mp_oauth_free(o);
    account_free(&a);
}

/* ---- against the scripted endpoint ---- */

static void check_assertion(struct fixture *fx)
{
    const char *prefix = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
                         "&assertion=";
    pthread_mutex_lock(&fx->fake.lock);
    char *form = strdup(fx->fake.request);
    pthread_mutex_unlock(&fx->fake.lock);
    assert_memory_equal(form, prefix, strlen(prefix));
    jwt_t *jwt = NULL;
    const char *public_pem = fx->account.public_pem;
    assert_int_equal(jwt_decode(&jwt, form + strlen(prefix), (const unsigned char *)public_pem,
                                (int)strlen(public_pem)),
                     0); /* the signature verifies */
    assert_int_equal(jwt_get_alg(jwt), JWT_ALG_RS256);
    assert_string_equal(jwt_get_header(jwt, "alg"), "RS256");
    assert_string_equal(jwt_get_header(jwt, "typ"), "JWT");
    assert_string_equal(jwt_get_header(jwt, "kid"), "kid-0123456789abcdef");
    assert_string_equal(jwt_get_grant(jwt, "iss"), "pusher@test-project.iam.gserviceaccount.com");
    assert_string_equal(jwt_get_grant(jwt, "scope"),
                        "https://www.googleapis.com/auth/firebase.messaging");
    assert_string_equal(jwt_get_grant(jwt, "aud"), fx->fake.url);
    long iat = jwt_get_grant_int(jwt, "iat");
    assert_in_range(iat, (long)time(NULL) - 5, (long)time(NULL) + 1);
    assert_int_equal(jwt_get_grant_int(jwt, "exp"), iat + 3600);
    jwt_free(jwt);
    free(form);
}

static void test_token_fetched_and_cached(void **state)
{
    struct fixture *fx = *state;
    char token[MP_OAUTH_TOKEN_MAX];
    assert_int_equal(mp_oauth_token(fx->oauth, token, sizeof(token)), MP_OK);
    assert_string_equal(token, "ya29.fake-1");
    check_assertion(fx);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(mp_oauth_token(fx->oauth, token, sizeof(token)), MP_OK);
        assert_string_equal(token, "ya29.fake-1");
    }
    assert_int_equal(atomic_load(&fx->fake.requests), 1);
    struct mp_oauth_stats stats;
    mp_oauth_stats(fx->oauth, &stats);
    assert_int_equal(stats.refreshes, 1);
    assert_int_equal(stats.failures, 0);
    assert_in_range(stats.expires_unix, time(NULL) + 3590, time(NULL) + 3600);
    char small[8];
    assert_int_equal(mp_oauth_token(fx->oauth, small, sizeof(small)), MP_ERR_TOO_LARGE);
}

struct caller {
    struct mp_oauth *oauth;
    const char *invalidate; /* token to invalidate first, or NULL */
    enum mp_result result;
    char token[MP_OAUTH_TOKEN_MAX];
};

static void *call_token(void *arg)
{
    struct caller *c = arg;
    if (c->invalidate)
        mp_oauth_invalidate(c->oauth, c->invalidate);
    c->result = mp_oauth_token(c->oauth, c->token, sizeof(c->token));
    return NULL;
}

/* n threads at once; returns after all are done. */
static struct caller *call_concurrently(struct mp_oauth *o, int n, const char *invalidate)
{
    struct caller *callers = calloc((size_t)n, sizeof(*callers));
    pthread_t *threads = calloc((size_t)n, sizeof(*threads));
    for (int i = 0; i < n; i++) {
        callers[i].oauth = o;
        callers[i].invalidate = invalidate;
        assert_int_equal(pthread_create(&threads[i], NULL, call_token, &callers[i]), 0);
    }
    for (int i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    return callers;
}

static void test_concurrent_callers_share_one_refresh(void **state)
{
    struct fixture *fx = *state;
    fake_script(&fx->fake, 200, "{\"access_token\":\"ya29.slow-%d\",\"expires_in\":3599}", 300);
    struct caller *callers = call_concurrently(fx->oauth, 32, NULL);
    for (int i = 0; i < 32; i++) {
        assert_int_equal(callers[i].result, MP_OK);
        assert_string_equal(callers[i].token, "ya29.slow-1");
    }
    free(callers);
    assert_int_equal(atomic_load(&fx->fake.requests), 1);
}

static void test_invalidate(void **state)
{
    struct fixture *fx = *state;
    char token[MP_OAUTH_TOKEN_MAX], old[MP_OAUTH_TOKEN_MAX];
    assert_int_equal(mp_oauth_token(fx->oauth, old, sizeof(old)), MP_OK);
    mp_oauth_invalidate(fx->oauth, "ya29.some-other-token");
    mp_oauth_invalidate(fx->oauth, NULL);
    assert_int_equal(mp_oauth_token(fx->oauth, token, sizeof(token)), MP_OK);
    assert_string_equal(token, old);
    assert_int_equal(atomic_load(&fx->fake.requests), 1);

    /* a burst of 401s for the same token: one refresh */
    struct caller *callers = call_concurrently(fx->oauth, 24, old);
    for (int i = 0; i < 24; i++) {
        assert_int_equal(callers[i].result, MP_OK);
        assert_string_equal(callers[i].token, "ya29.fake-2");
    }
    free(callers);
    assert_int_equal(atomic_load(&fx->fake.requests), 2);
    mp_oauth_invalidate(fx->oauth, old); /* stale: ignored */
    assert_int_equal(mp_oauth_token(fx->oauth, token, sizeof(token)), MP_OK);
    assert_string_equal(token, "ya29.fake-2");
    assert_int_equal(atomic_load(&fx->fake.requests), 2);
}

/* Runs one mp_oauth_token with stderr captured; returns the log (caller frees). */
static char *token_logged(struct mp_oauth *o, enum mp_result *result)
{
    char token[MP_OAUTH_TOKEN_MAX];
    struct capture cap;
    capture_begin(&cap);
    *result = mp_oauth_token(o, token, sizeof(token));
    return capture_end(&cap);
}

static void test_revoked_key_backs_off(void **state)
{
    struct fixture *fx = *state;
    fake_script(&fx->fake, 400,
                "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT Signature.\"}",
                0);
    enum mp_result result;
    char *log = token_logged(fx->oauth, &result);
    assert_int_equal(result, MP_ERR_UNAVAILABLE);
    assert_non_null(strstr(log, "level=error event=oauth_refresh_failed cause=key_rejected"));
    assert_non_null(strstr(log, "error=invalid_grant"));
    assert_non_null(strstr(log, "retry_in_ms=1000"));
    assert_null(strstr(log, "eyJ")); /* no assertion */
    free(log);
    /* backing off: no second request yet */
    log = token_logged(fx->oauth, &result);
    assert_int_equal(result, MP_ERR_UNAVAILABLE);
    assert_int_equal(atomic_load(&fx->fake.requests), 1);
    free(log);
    usleep(1100 * 1000);
    log = token_logged(fx->oauth, &result);
    assert_int_equal(result, MP_ERR_UNAVAILABLE);
    assert_int_equal(atomic_load(&fx->fake.requests), 2);
    assert_non_null(strstr(log, "retry_in_ms=2000"));
    free(log);
    struct mp_oauth_stats stats;
    mp_oauth_stats(fx->oauth, &stats);
    assert_int_equal(stats.failures, 2);
    assert_int_equal(stats.refreshes, 0);
    assert_int_equal(stats.expires_unix, 0);
}

static void test_clock_skew_explained(void **state)
{
    struct fixture *fx = *state;
    fake_script(&fx->fake, 400,
                "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT: Token must be "
                "a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat "
                "and exp values in the JWT claim.\"}",
                0);
    enum mp_result result;
    char *log = token_logged(fx->oauth, &result);
    assert_int_equal(result, MP_ERR_UNAVAILABLE);
    assert_non_null(strstr(log, "cause=clock_skew"));
    assert_non_null(strstr(log, "clock skew: check the system clock"));
    free(log);
}

static void test_other_answers(void **state)
{
    struct fixture *fx = *state;
    enum mp_result result;
    fake_script(&fx->fake, 401,
                "{\"error\":\"invalid_client\",\"error_description\":\"The OAuth "
                "client was not found.\"}",
                0);
    char *log = token_logged(fx->oauth, &result);
    assert_int_equal(result, MP_ERR_UNAVAILABLE);
    assert_non_null(strstr(log, "cause=rejected status=401 error=invalid_client"));
    free(log);

    fake_stop(&fx->fake); /* nobody listens: a network failure, logged as a warning */
    usleep(1100 * 1000);
    log = token_logged(fx->oauth, &result);
    assert_int_equal(result, MP_ERR_UNAVAILABLE);
    assert_non_null(strstr(log, "level=warn event=oauth_refresh_failed cause=network"));
    free(log);
    fake_start(&fx->fake); /* for the teardown; the port differs, so nothing reaches it */
}

static void test_unusable_success(void **state)
{
    struct fixture *fx = *state;
    enum mp_result result;
    fake_script(&fx->fake, 200, "{\"token_type\":\"Bearer\"}", 0);
    char *log = token_logged(fx->oauth, &result);
    assert_int_equal(result, MP_ERR_UNAVAILABLE);
    assert_non_null(strstr(log, "cause=bad_response"));
    free(log);
}

static void test_server_error_is_transient(void **state)
{
    struct fixture *fx = *state;
    enum mp_result result;
    fake_script(&fx->fake, 503, "{\"error\":\"temporarily_unavailable\"}", 0);
    char *log = token_logged(fx->oauth, &result);
    assert_int_equal(result, MP_ERR_UNAVAILABLE);
    assert_non_null(strstr(log, "level=warn event=oauth_refresh_failed cause=server status=503"));
    free(log);
    /* after the back-off, a good answer ends it */
    fake_script(&fx->fake, 200, "{\"access_token\":\"ya29.ok-%d\",\"expires_in\":\"3599\"}", 0);
    usleep(1100 * 1000);
    char token[MP_OAUTH_TOKEN_MAX];
    assert_int_equal(mp_oauth_token(fx->oauth, token, sizeof(token)), MP_OK);
    assert_string_equal(token, "ya29.ok-2");
}

/* ---- against mpcpush-fcm-emulator ---- */

struct emu {
    pid_t pid;
    char dir[128];
    char ca[256], account[256];
    char tls_base[64], plain_base[64];
};

/* Reads DIR/ports ("tls=PORT", "plain=PORT"); true once both are there. */
static bool emu_ports(struct emu *e)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/ports", e->dir);
    char *text = slurp(path);
    const char *tls = strstr(text, "tls="), *plain = strstr(text, "plain=");
    bool ok = tls && plain && strchr(plain, '\n') && strchr(tls, '\n');
    if (ok) {
        snprintf(e->tls_base, sizeof(e->tls_base), "https://127.0.0.1:%d", atoi(tls + 4));
        snprintf(e->plain_base, sizeof(e->plain_base), "http://127.0.0.1:%d", atoi(plain + 6));
    }
    free(text);
    return ok;
}

/* Starts the emulator with extra arguments (NULL-terminated); skips the test when
 * MPCPUSH_EMULATOR_BIN is not set. */
static void emu_start(struct emu *e, const char *const *extra)
{
    const char *bin = getenv("MPCPUSH_EMULATOR_BIN");
    if (!bin || !bin[0]) {
        print_message("MPCPUSH_EMULATOR_BIN is not set: skipped\n");
        skip();
    }
    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/mpcpush-emu-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->ca, sizeof(e->ca), "%s/ca.pem", e->dir);
    snprintf(e->account, sizeof(e->account), "%s/service-account.json", e->dir);
    const char *argv[32] = {bin, "--state-dir", e->dir, "--listen-plain", "127.0.0.1:0"};
    for (int i = 0; extra && extra[i] && i < 20; i++)
        argv[5 + i] = extra[i];
    e->pid = fork();
    if (e->pid == 0) {
        char log[300];
        snprintf(log, sizeof(log), "%s/emulator.log", e->dir);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, STDERR_FILENO);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 400; i++) {
        int status;
        if (waitpid(e->pid, &status, WNOHANG) == e->pid)
            fail_msg("the emulator exited during start-up (see %s/emulator.log)", e->dir);
        if (emu_ports(e))
            return;
        usleep(25000);
    }
    fail_msg("the emulator wrote no ports file in %s", e->dir);
}

static void emu_stop(struct emu *e)
{
    if (e->pid > 0) {
        kill(e->pid, SIGTERM);
        waitpid(e->pid, NULL, 0);
        e->pid = 0;
    }
    rm_rf(e->dir);
}

static size_t sink(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct mp_buf *buf = userdata;
    return mp_buf_append(buf, ptr, size * nmemb) == MP_OK ? size * nmemb : 0;
}

/* GET /emulator/stats over the plain port; the value of one counter. */
static long emu_stat(const struct emu *e, const char *name)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/emulator/stats", e->plain_base);
    struct mp_buf body;
    mp_buf_init(&body, 0);
    CURL *curl = curl_easy_init();
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
    assert_int_equal(curl_easy_perform(curl), CURLE_OK);
    curl_easy_cleanup(curl);
    json_t *root = json_loadb(body.data, body.len, 0, NULL);
    json_t *value = json_object_get(root, name);
    if (!json_is_integer(value))
        fail_msg("/emulator/stats has no counter %s: %s", name, body.data);
    long n = (long)json_integer_value(value);
    json_decref(root);
    mp_buf_free(&body);
    return n;
}

static struct mp_oauth *emu_oauth(const struct emu *e, const char *account, const char *url)
{
    struct mp_oauth *o = NULL;
    struct mp_buf errors;
    mp_buf_init(&errors, 0);
    enum mp_result result = mp_oauth_new(account, url, e->ca, &o, &errors);
    if (result)
        fail_msg("mp_oauth_new(%s): %s", account, errors.data ? errors.data : "");
    mp_buf_free(&errors);
    return o;
}

static void test_emulator_token_reused(void **state)
{
    (void)state;
    struct emu e;
    emu_start(&e, NULL);
    struct mp_oauth *o = emu_oauth(&e, e.account, NULL);
    assert_string_equal(mp_oauth_project_id(o), "mpcpush-emulator");
    struct caller *callers = call_concurrently(o, 50, NULL);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(callers[i].result, MP_OK);
        assert_string_equal(callers[i].token, callers[0].token);
    }
    free(callers);
    assert_int_equal(emu_stat(&e, "token_requests"), 1);
    mp_oauth_free(o);
    emu_stop(&e);
}

static void test_emulator_short_lifetime_refreshes(void **state)
{
    (void)state;
    struct emu e;
    const char *args[] = {"--token-lifetime", "2", NULL};
    emu_start(&e, args);
    struct mp_oauth *o = emu_oauth(&e, e.account, NULL);
    char first[MP_OAUTH_TOKEN_MAX], token[MP_OAUTH_TOKEN_MAX];
    assert_int_equal(mp_oauth_token(o, first, sizeof(first)), MP_OK);
    assert_int_equal(mp_oauth_token(o, token, sizeof(token)), MP_OK);
    assert_int_equal(emu_stat(&e, "token_requests"), 1);
    usleep(2000 * 1000);
    assert_int_equal(mp_oauth_token(o, token, sizeof(token)), MP_OK);
    assert_string_not_equal(token, first);
    assert_int_equal(emu_stat(&e, "token_requests"), 2);
    struct mp_oauth_stats stats;
    mp_oauth_stats(o, &stats);
    assert_int_equal(stats.refreshes, 2);
    mp_oauth_free(o);
    emu_stop(&e);
}

static void test_emulator_invalidate_one_refresh(void **state)
{
    (void)state;
    struct emu e;
    emu_start(&e, NULL);
    struct mp_oauth *o = emu_oauth(&e, e.account, NULL);
    char old[MP_OAUTH_TOKEN_MAX];
    assert_int_equal(mp_oauth_token(o, old, sizeof(old)), MP_OK);
    struct caller *callers = call_concurrently(o, 40, old);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(callers[i].result, MP_OK);
        assert_string_equal(callers[i].token, callers[0].token);
    }
    assert_string_not_equal(callers[0].token, old);
    free(callers);
    assert_int_equal(emu_stat(&e, "token_requests"), 2);
    mp_oauth_free(o);
    emu_stop(&e);
}

static void test_emulator_rejects_unknown_key(void **state)
{
    (void)state;
    struct emu e;
    emu_start(&e, NULL);
    char other[300], cmd[700], url[128];
    snprintf(other, sizeof(other), "%s/other-account.json", e.dir);
    snprintf(cmd, sizeof(cmd), "'%s' --make-service-account '%s' 2>/dev/null",
             getenv("MPCPUSH_EMULATOR_BIN"), other);
    assert_int_equal(system(cmd), 0);
    snprintf(url, sizeof(url), "%s/token", e.tls_base);
    struct mp_oauth *o = emu_oauth(&e, other, url);
    enum mp_result result;
    char *log = token_logged(o, &result);
    assert_int_equal(result, MP_ERR_UNAVAILABLE);
    assert_non_null(strstr(log, "event=oauth_refresh_failed"));
    assert_non_null(strstr(log, "error=invalid_grant"));
    free(log);
    log = token_logged(o, &result); /* backing off */
    assert_int_equal(result, MP_ERR_UNAVAILABLE);
    free(log);
    assert_int_equal(emu_stat(&e, "token_requests"), 1);
    mp_oauth_free(o);
    emu_stop(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_file_problems),
        cmocka_unit_test(test_token_url_policy),
        cmocka_unit_test(test_world_readable_key_warns),
        cmocka_unit_test_setup_teardown(test_token_fetched_and_cached, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_callers_share_one_refresh, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_invalidate, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_revoked_key_backs_off, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_clock_skew_explained, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_other_answers, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_unusable_success, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_server_error_is_transient, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test(test_emulator_token_reused),
        cmocka_unit_test(test_emulator_short_lifetime_refreshes),
        cmocka_unit_test(test_emulator_invalidate_one_refresh),
        cmocka_unit_test(test_emulator_rejects_unknown_key),
    };
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
