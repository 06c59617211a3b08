/* Tests for the FCM client: argument checks and failure handling against a scripted HTTP/1.1
 * endpoint in this file, and the real thing (HTTP/2 over TLS, faults, GOAWAY, dropped
 * connections, throughput) against mpcpush-fcm-emulator (MPCPUSH_EMULATOR_BIN). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mpcpush/fcm.h"
#include "mpcpush/oauth.h"

/* ---- requests ---- */

/* A registration token that looks like FCM's, unique per i. */
static void make_token(char *out, size_t size, int i)
{
    snprintf(out, size,
             "d%05d-fGx1bV9ZRkmT3Yt0kHqXz9:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx-cygNVqEZ3sTdcGXq"
             "VWUD7tLgbNYeJfm_dd8kyLjFSN4mgrxzXgK0ouJCsuQtZjL3n7w1vQHkMfTt4gDXoBZsRl2e6cAq8",
             i);
}

struct batch {
    size_t n;
    char (*tokens)[256];
    struct mp_buf *bodies;
    struct mp_fcm_request *reqs;
    struct mp_fcm_result *results;
};

static void batch_make(struct batch *b, size_t n)
{
    static const char *const platforms[] = {"android", "ios", "web"};
    b->n = n;
    b->tokens = calloc(n, sizeof(*b->tokens));
    b->bodies = calloc(n, sizeof(*b->bodies));
    b->reqs = calloc(n, sizeof(*b->reqs));
    b->results = calloc(n, sizeof(*b->results));
    for (size_t i = 0; i < n; i++) {
        char device[32];
        make_token(b->tokens[i], sizeof(b->tokens[i]), (int)i);
        snprintf(device, sizeof(device), "device-%zu", i);
        struct mp_wakeup w = {.token = b->tokens[i],
                              .platform = platforms[i % 3],
                              .wallet_id = "wallet-1",
                              .device_id = device,
                              .pending = 1,
                              .latest_id = (long long)i + 1,
                              .ttl_seconds = 3600};
        mp_buf_init(&b->bodies[i], 0);
        assert_int_equal(mp_fcm_build_wakeup(&w, &b->bodies[i]), MP_OK);
        b->reqs[i].body = b->bodies[i].data;
        b->reqs[i].len = b->bodies[i].len;
    }
}

static void batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        mp_buf_free(&b->bodies[i]);
    free(b->tokens);
    free(b->bodies);
    free(b->reqs);
    free(b->results);
}

static size_t count_outcome(const struct batch *b, enum mp_fcm_outcome outcome)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++)
        n += b->results[i].outcome == outcome;
    return n;
}

static void expect_all_ok(const struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const struct mp_fcm_result *r = &b->results[i];
        if (r->outcome != MP_FCM_OK)
            fail_msg("request %zu: %s (http %ld, %s)", i, mp_fcm_outcome_name(r->outcome),
                     r->http_status, r->detail);
        assert_int_equal(r->http_status, 200);
        assert_true(r->name[0] != '\0');
        assert_true(r->seconds >= 0);
        assert_in_range(r->attempts, 1, 2);
    }
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- client construction and arguments ---- */

static void test_client_new_rejects(void **state)
{
    (void)state;
    struct mp_fcm_client *c = NULL;
    assert_int_equal(mp_fcm_client_new("http://fcm.example.com", "p", NULL, 4, 10, &c),
                     MP_ERR_INVALID);
    assert_int_equal(mp_fcm_client_new("ftp://127.0.0.1", "p", NULL, 4, 10, &c), MP_ERR_INVALID);
    assert_int_equal(mp_fcm_client_new("not a url", "p", NULL, 4, 10, &c), MP_ERR_INVALID);
    assert_int_equal(mp_fcm_client_new(NULL, "p", NULL, 4, 10, &c), MP_ERR_INVALID);
    assert_int_equal(mp_fcm_client_new("https://fcm.googleapis.com", "a/b", NULL, 4, 10, &c),
                     MP_ERR_INVALID);
    assert_int_equal(mp_fcm_client_new("https://fcm.googleapis.com", "", NULL, 4, 10, &c),
                     MP_ERR_INVALID);
    assert_int_equal(mp_fcm_client_new("https://fcm.googleapis.com", "p", NULL, 0, 10, &c),
                     MP_ERR_INVALID);
    assert_int_equal(mp_fcm_client_new("https://fcm.googleapis.com", "p", NULL, 65, 10, &c),
                     MP_ERR_INVALID);
    assert_int_equal(mp_fcm_client_new("https://fcm.googleapis.com", "p", NULL, 4, 0, &c),
                     MP_ERR_INVALID);
    assert_null(c);
    assert_int_equal(
        mp_fcm_client_new("https://fcm.googleapis.com/", "my-project-1", NULL, 64, 10, &c), MP_OK);
    mp_fcm_client_free(c);
    mp_fcm_client_free(NULL);
}

static void test_send_batch_arguments(void **state)
{
    (void)state;
    struct mp_fcm_client *c = NULL;
    assert_int_equal(mp_fcm_client_new("http://127.0.0.1:9", "p", NULL, 1, 1, &c), MP_OK);
    struct mp_fcm_request req = {"{}", 2};
    struct mp_fcm_result res;
    assert_int_equal(mp_fcm_send_batch(c, "tok", NULL, 0, NULL), MP_OK);
    assert_int_equal(mp_fcm_send_batch(c, NULL, &req, 1, &res), MP_ERR_INVALID);
    assert_int_equal(mp_fcm_send_batch(c, "", &req, 1, &res), MP_ERR_INVALID);
    assert_int_equal(mp_fcm_send_batch(c, "a b", &req, 1, &res), MP_ERR_INVALID);
    assert_int_equal(mp_fcm_send_batch(c, "a\r\nX: y", &req, 1, &res), MP_ERR_INVALID);
    assert_int_equal(mp_fcm_send_batch(c, "tok", &req, 1, NULL), MP_ERR_INVALID);
    req.body = NULL;
    assert_int_equal(mp_fcm_send_batch(c, "tok", &req, 1, &res), MP_ERR_INVALID);
    assert_int_equal(mp_fcm_send_batch(NULL, "tok", &req, 1, &res), MP_ERR_INVALID);
    mp_fcm_client_free(c);
}

/* ---- a scripted FCM endpoint (plain HTTP/1.1, one request per connection) ---- */

enum fake_mode { FAKE_OK, FAKE_DROP_FIRST, FAKE_QUOTA, FAKE_HUGE, FAKE_SILENT };

struct fake {
    int fd;
    char base[64];
    pthread_t thread;
    atomic_bool stop;
    atomic_int requests;
    enum fake_mode mode;
    int drop_first; /* FAKE_DROP_FIRST: requests closed unanswered */
    pthread_mutex_t lock;
    char head[4096]; /* the last request's line and headers */
};

static bool read_head(int cfd, char *head, size_t size)
{
    char buf[8192];
    size_t used = 0;
    while (used < sizeof(buf) - 1) {
        ssize_t n = read(cfd, buf + used, sizeof(buf) - 1 - used);
        if (n <= 0)
            return false;
        used += (size_t)n;
        buf[used] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end) { /* the bodies are small: they came with the head */
            snprintf(head, size, "%.*s", (int)(end - buf), buf);
            return true;
        }
    }
    return false;
}

static void fake_reply(int cfd, int status, const char *extra, const char *body)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n%sContent-Length: "
                     "%zu\r\nConnection: close\r\n\r\n",
                     status, extra, strlen(body));
    if (write(cfd, head, (size_t)n) < 0 || write(cfd, body, strlen(body)) < 0)
        return; /* the client gave up: fine */
}

static void fake_answer(struct fake *f, int cfd)
{
    char head[4096];
    if (!read_head(cfd, head, sizeof(head)))
        return;
    int number = atomic_fetch_add(&f->requests, 1) + 1;
    pthread_mutex_lock(&f->lock);
    snprintf(f->head, sizeof(f->head), "%s", head);
    pthread_mutex_unlock(&f->lock);
    char body[128];
    snprintf(body, sizeof(body), "{\"name\":\"projects/p/messages/%d\"}", number);
    if (f->mode == FAKE_SILENT || (f->mode == FAKE_DROP_FIRST && number <= f->drop_first)) {
        if (f->mode == FAKE_SILENT)
            usleep(1500 * 1000);
        return;
    }
    if (f->mode == FAKE_QUOTA) {
        fake_reply(cfd, 429, "Retry-After: 42\r\n",
                   "{\"error\":{\"code\":429,\"message\":\"Quota exceeded.\",\"status\":"
                   "\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":\"type.googleapis.com/"
                   "google.firebase.fcm.v1.FcmError\",\"errorCode\":\"QUOTA_EXCEEDED\"}]}}");
    } else if (f->mode == FAKE_HUGE) {
        size_t size = 200 * 1024;
        char *huge = malloc(size + 1);
        memset(huge, 'x', size);
        huge[size] = '\0';
        fake_reply(cfd, 500, "", huge);
        free(huge);
    } else {
        fake_reply(cfd, 200, "", body);
    }
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
        fake_answer(f, cfd);
        close(cfd);
    }
    return NULL;
}

static int fake_setup(void **state)
{
    struct fake *f = calloc(1, sizeof(*f));
    pthread_mutex_init(&f->lock, NULL);
    f->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    assert_int_equal(bind(f->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(f->fd, 128), 0);
    assert_int_equal(getsockname(f->fd, (struct sockaddr *)&addr, &len), 0);
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d", ntohs(addr.sin_port));
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
    *state = f;
    return 0;
}

static int fake_teardown(void **state)
{
    struct fake *f = *state;
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    close(f->fd);
    pthread_mutex_destroy(&f->lock);
    free(f);
    return 0;
}

static struct mp_fcm_client *fake_client(const struct fake *f, int timeout)
{
    struct mp_fcm_client *c = NULL;
    assert_int_equal(mp_fcm_client_new(f->base, "p", NULL, 2, timeout, &c), MP_OK);
    return c;
}

static void test_fake_request_shape(void **state)
{
    struct fake *f = *state;
    struct mp_fcm_client *c = fake_client(f, 5);
    struct batch b;
    batch_make(&b, 5);
    assert_int_equal(mp_fcm_send_batch(c, "ya29.access", b.reqs, b.n, b.results), MP_OK);
    expect_all_ok(&b);
    assert_int_equal(atomic_load(&f->requests), 5);
    pthread_mutex_lock(&f->lock);
    assert_memory_equal(f->head, "POST /v1/projects/p/messages:send HTTP/1.1\r\n", 44);
    assert_non_null(strstr(f->head, "\r\nAuthorization: Bearer ya29.access"));
    assert_non_null(strstr(f->head, "\r\nContent-Type: application/json"));
    assert_null(strstr(f->head, "Expect:"));
    pthread_mutex_unlock(&f->lock);
    /* the client stays usable for the next batch */
    assert_int_equal(mp_fcm_send_batch(c, "ya29.access", b.reqs, b.n, b.results), MP_OK);
    expect_all_ok(&b);
    batch_free(&b);
    mp_fcm_client_free(c);
}

static void test_fake_dropped_then_answered(void **state)
{
    struct fake *f = *state;
    f->mode = FAKE_DROP_FIRST;
    f->drop_first = 3;
    struct mp_fcm_client *c = fake_client(f, 5);
    struct batch b;
    batch_make(&b, 6);
    assert_int_equal(mp_fcm_send_batch(c, "tok", b.reqs, b.n, b.results), MP_OK);
    expect_all_ok(&b);
    int retried = 0;
    for (size_t i = 0; i < b.n; i++)
        retried += b.results[i].attempts == 2;
    assert_int_equal(retried, 3);
    assert_int_equal(atomic_load(&f->requests), 9);
    batch_free(&b);
    mp_fcm_client_free(c);
}

static void test_fake_quota_retry_after(void **state)
{
    struct fake *f = *state;
    f->mode = FAKE_QUOTA;
    struct mp_fcm_client *c = fake_client(f, 5);
    struct batch b;
    batch_make(&b, 3);
    assert_int_equal(mp_fcm_send_batch(c, "tok", b.reqs, b.n, b.results), MP_OK);
    for (size_t i = 0; i < b.n; i++) {
        assert_int_equal(b.results[i].outcome, MP_FCM_QUOTA_EXCEEDED);
        assert_int_equal(b.results[i].retry_after, 42);
        assert_int_equal(b.results[i].http_status, 429);
        assert_int_equal(b.results[i].attempts, 1);
    }
    batch_free(&b);
    mp_fcm_client_free(c);
}

static void test_fake_huge_body_bounded(void **state)
{
    struct fake *f = *state;
    f->mode = FAKE_HUGE;
    struct mp_fcm_client *c = fake_client(f, 5);
    struct batch b;
    batch_make(&b, 2);
    assert_int_equal(mp_fcm_send_batch(c, "tok", b.reqs, b.n, b.results), MP_OK);
    for (size_t i = 0; i < b.n; i++) {
        assert_int_equal(b.results[i].outcome, MP_FCM_INTERNAL);
        assert_int_equal(b.results[i].http_status, 500);
    }
    batch_free(&b);
    mp_fcm_client_free(c);
}

static void test_fake_no_answer_is_network(void **state)
{
    struct fake *f = *state;
    f->mode = FAKE_SILENT;
    struct mp_fcm_client *c = fake_client(f, 1);
    struct batch b;
    batch_make(&b, 2);
    double started = now_seconds();
    assert_int_equal(mp_fcm_send_batch(c, "tok", b.reqs, b.n, b.results), MP_OK);
    double took = now_seconds() - started;
    for (size_t i = 0; i < b.n; i++) {
        assert_int_equal(b.results[i].outcome, MP_FCM_NETWORK);
        assert_int_equal(b.results[i].http_status, 0);
        assert_int_equal(b.results[i].attempts, 2);
        assert_non_null(strstr(b.results[i].detail, "curl error 28"));
    }
    assert_true(took >= 1.9 && took < 6.0);
    batch_free(&b);
    mp_fcm_client_free(c);
}

static void test_connection_refused(void **state)
{
    (void)state;
    struct fake *f = NULL;
    fake_setup((void **)&f);
    char base[64];
    snprintf(base, sizeof(base), "%s", f->base);
    fake_teardown((void **)&f); /* the port is free now: nobody listens */
    struct mp_fcm_client *c = NULL;
    assert_int_equal(mp_fcm_client_new(base, "p", NULL, 2, 2, &c), MP_OK);
    struct batch b;
    batch_make(&b, 3);
    assert_int_equal(mp_fcm_send_batch(c, "tok", b.reqs, b.n, b.results), MP_OK);
    for (size_t i = 0; i < b.n; i++) {
        assert_int_equal(b.results[i].outcome, MP_FCM_NETWORK);
        assert_int_equal(b.results[i].attempts, 2);
        assert_non_null(strstr(b.results[i].detail, "curl error 7"));
        assert_int_equal(b.results[i].retry_after, -1);
    }
    batch_free(&b);
    mp_fcm_client_free(c);
}

/* ---- against mpcpush-fcm-emulator ---- */

struct emu {
    pid_t pid;
    char dir[128];
    char ca[256], account[256];
    char tls_base[64], plain_base[64];
    struct mp_oauth *oauth;
    char token[MP_OAUTH_TOKEN_MAX];
};

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    char *data = calloc(1, 1 << 16);
    size_t n = fread(data, 1, (1 << 16) - 1, f);
    fclose(f);
    data[n] = '\0';
    return data;
}

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

static void emu_spawn(struct emu *e, const char *bin)
{
    const char *argv[] = {bin, "--state-dir", e->dir, "--listen-plain", "127.0.0.1:0", NULL};
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

/* One emulator for the group; each test resets it. Skips when MPCPUSH_EMULATOR_BIN is unset. */
static int emu_group_setup(void **state)
{
    const char *bin = getenv("MPCPUSH_EMULATOR_BIN");
    struct emu *e = calloc(1, sizeof(*e));
    *state = e;
    if (!bin || !bin[0])
        return 0;
    snprintf(e->dir, sizeof(e->dir), "/tmp/mpcpush-emu-XXXXXX");
    if (!mkdtemp(e->dir))
        return -1;
    snprintf(e->ca, sizeof(e->ca), "%s/ca.pem", e->dir);
    snprintf(e->account, sizeof(e->account), "%s/service-account.json", e->dir);
    emu_spawn(e, bin);
    if (mp_oauth_new(e->account, NULL, e->ca, &e->oauth, NULL) != MP_OK ||
        mp_oauth_token(e->oauth, e->token, sizeof(e->token)) != MP_OK)
        return -1;
    return 0;
}

static int emu_group_teardown(void **state)
{
    struct emu *e = *state;
    mp_oauth_free(e->oauth);
    if (e->pid > 0) {
        kill(e->pid, SIGTERM);
        waitpid(e->pid, NULL, 0);
    }
    if (e->dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
        if (system(cmd) != 0)
            print_message("could not remove %s\n", e->dir);
    }
    free(e);
    return 0;
}

static size_t sink(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct mp_buf *buf = userdata;
    return mp_buf_append(buf, ptr, size * nmemb) == MP_OK ? size * nmemb : 0;
}

/* A control request on the plain port; returns the answer's body (caller frees). */
static char *emu_request(const struct emu *e, const char *method, const char *path,
                         const char *body)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", e->plain_base, path);
    struct mp_buf answer;
    mp_buf_init(&answer, 0);
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (body)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (rc != CURLE_OK || status / 100 != 2)
        fail_msg("%s %s: curl %d, status %ld: %s", method, path, (int)rc, status,
                 answer.data ? answer.data : "");
    return answer.data ? mp_buf_steal(&answer) : strdup("");
}

static json_t *emu_call(const struct emu *e, const char *method, const char *path, const char *body)
{
    char *text = emu_request(e, method, path, body);
    json_t *root = json_loads(text, 0, NULL);
    free(text);
    return root;
}

static long emu_stat(const struct emu *e, const char *name)
{
    json_t *stats = emu_call(e, "GET", "/emulator/stats", NULL);
    json_t *value = json_object_get(stats, name);
    if (!json_is_integer(value))
        fail_msg("/emulator/stats has no counter %s", name);
    long n = (long)json_integer_value(value);
    json_decref(stats);
    return n;
}

/* Skips without an emulator; otherwise clears its faults, counters and records. */
static struct emu *emu_fresh(void **state)
{
    struct emu *e = *state;
    if (e->pid <= 0) {
        print_message("MPCPUSH_EMULATOR_BIN is not set: skipped\n");
        skip();
    }
    json_decref(emu_call(e, "POST", "/emulator/reset", NULL));
    /* a reset may forget the tokens it issued: take a new one */
    mp_oauth_invalidate(e->oauth, e->token);
    assert_int_equal(mp_oauth_token(e->oauth, e->token, sizeof(e->token)), MP_OK);
    return e;
}

static struct mp_fcm_client *emu_client(const struct emu *e, bool tls, int connections, int timeout)
{
    struct mp_fcm_client *c = NULL;
    assert_int_equal(mp_fcm_client_new(tls ? e->tls_base : e->plain_base,
                                       mp_oauth_project_id(e->oauth), e->ca, connections, timeout,
                                       &c),
                     MP_OK);
    return c;
}

static void test_emu_batch_http2(void **state)
{
    struct emu *e = emu_fresh(state);
    struct mp_fcm_client *c = emu_client(e, true, 4, 10);
    struct batch b;
    batch_make(&b, 300);
    /* "connections" counts every connection, each stats request's own included */
    long before = emu_stat(e, "connections");
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    expect_all_ok(&b);
    long after = emu_stat(e, "connections");
    assert_in_range(after - before - 1, 1, 4);
    assert_int_equal(emu_stat(e, "accepted"), 300);
    /* the next batch rides the same connections */
    before = emu_stat(e, "connections");
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    expect_all_ok(&b);
    assert_int_equal(emu_stat(e, "connections") - before - 1, 0);
    assert_int_equal(emu_stat(e, "accepted"), 600);
    batch_free(&b);
    mp_fcm_client_free(c);
}

static bool holds_string(json_t *v, const char *text)
{
    const char *key;
    json_t *item;
    size_t i;
    if (json_is_string(v))
        return strcmp(json_string_value(v), text) == 0;
    if (json_is_object(v)) {
        json_object_foreach(v, key, item)
        {
            if (holds_string(item, text))
                return true;
        }
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, item)
        {
            if (holds_string(item, text))
                return true;
        }
    }
    return false;
}

/* What the device receives: the emulator accepted and recorded each platform's wakeup. */
static void test_emu_records_wakeup(void **state)
{
    struct emu *e = emu_fresh(state);
    struct mp_fcm_client *c = emu_client(e, true, 1, 10);
    struct batch b;
    batch_make(&b, 3); /* android, ios, web */
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    expect_all_ok(&b);
    char *text = emu_request(e, "GET", "/emulator/messages", NULL);
    int wakeups = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *record = json_loads(line, 0, NULL);
        if (!record)
            fail_msg("/emulator/messages: not a JSON line: %.200s", line);
        wakeups += holds_string(record, "mpcpush.wakeup") && holds_string(record, "wallet-1");
        json_decref(record);
    }
    assert_int_equal(wakeups, 3);
    free(text);
    batch_free(&b);
    mp_fcm_client_free(c);
}

struct fault_case {
    const char *error;
    enum mp_fcm_outcome outcome;
    long status;
};

static void test_emu_faults_per_token(void **state)
{
    struct emu *e = emu_fresh(state);
    static const struct fault_case cases[] = {
        {"UNREGISTERED", MP_FCM_UNREGISTERED, 404},
        {"INVALID_ARGUMENT", MP_FCM_INVALID_TOKEN, 400},
        {"SENDER_ID_MISMATCH", MP_FCM_SENDER_ID_MISMATCH, 403},
        {"QUOTA_EXCEEDED", MP_FCM_QUOTA_EXCEEDED, 429},
        {"UNAVAILABLE", MP_FCM_UNAVAILABLE, 503},
        {"INTERNAL", MP_FCM_INTERNAL, 500},
        {"THIRD_PARTY_AUTH_ERROR", MP_FCM_THIRD_PARTY_AUTH, 401},
        {"UNAUTHENTICATED", MP_FCM_UNAUTHENTICATED, 401},
    };
    size_t ncases = sizeof(cases) / sizeof(cases[0]);
    struct batch b;
    batch_make(&b, ncases + 4); /* the last four have no fault */
    json_t *rules = json_array();
    for (size_t i = 0; i < ncases; i++)
        json_array_append_new(rules, json_pack("{s:s, s:s, s:i}", "token", b.tokens[i], "error",
                                               cases[i].error, "retryAfter", 30));
    char *text = json_dumps(rules, JSON_COMPACT);
    json_decref(emu_call(e, "POST", "/emulator/faults", text));
    free(text);
    json_decref(rules);
    struct mp_fcm_client *c = emu_client(e, true, 2, 10);
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    for (size_t i = 0; i < ncases; i++) {
        const struct mp_fcm_result *r = &b.results[i];
        if (r->outcome != cases[i].outcome || r->http_status != cases[i].status)
            fail_msg("fault %s: got %s/%ld (%s), want %s/%ld", cases[i].error,
                     mp_fcm_outcome_name(r->outcome), r->http_status, r->detail,
                     mp_fcm_outcome_name(cases[i].outcome), cases[i].status);
        assert_null(strstr(r->detail, "APA91b"));
    }
    assert_int_equal(b.results[3].retry_after, 30); /* QUOTA_EXCEEDED */
    for (size_t i = ncases; i < b.n; i++)
        assert_int_equal(b.results[i].outcome, MP_FCM_OK);
    /* cleared faults: everything goes through */
    json_decref(emu_call(e, "DELETE", "/emulator/faults", NULL));
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    expect_all_ok(&b);
    batch_free(&b);
    mp_fcm_client_free(c);
}

/* GOAWAY or a dropped connection in the middle of a batch: every request still gets its
 * answer, through the retry on new connections. */
static void connection_fault_survived(void **state, const char *error, const char *counter)
{
    struct emu *e = emu_fresh(state);
    char rule[128];
    snprintf(rule, sizeof(rule), "[{\"token\":\"*\",\"error\":\"%s\",\"count\":1}]", error);
    struct mp_fcm_client *c = emu_client(e, true, 4, 10);
    struct batch b;
    batch_make(&b, 300);
    /* warm up so that the fault hits a busy connection, not the first request */
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, 10, b.results), MP_OK);
    json_decref(emu_call(e, "POST", "/emulator/faults", rule));
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    expect_all_ok(&b);
    if (counter)
        assert_true(emu_stat(e, counter) >= 1);
    batch_free(&b);
    mp_fcm_client_free(c);
}

static void test_emu_goaway_mid_batch(void **state)
{
    connection_fault_survived(state, "GOAWAY", "goaways");
}

static void test_emu_drop_mid_batch(void **state)
{
    connection_fault_survived(state, "DROP", NULL);
}

static void test_emu_slow_answer_times_out(void **state)
{
    struct emu *e = emu_fresh(state);
    struct batch b;
    batch_make(&b, 4);
    char rules[1024];
    /* token 0: slow once (the retry is answered); token 1: slow every time */
    snprintf(rules, sizeof(rules),
             "[{\"token\":\"%s\",\"error\":\"SLOW\",\"delayMs\":3000,\"count\":1},"
             "{\"token\":\"%s\",\"error\":\"SLOW\",\"delayMs\":3000}]",
             b.tokens[0], b.tokens[1]);
    json_decref(emu_call(e, "POST", "/emulator/faults", rules));
    struct mp_fcm_client *c = emu_client(e, true, 2, 1);
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    assert_int_equal(b.results[0].outcome, MP_FCM_OK);
    assert_int_equal(b.results[0].attempts, 2);
    assert_int_equal(b.results[1].outcome, MP_FCM_NETWORK);
    assert_int_equal(b.results[1].attempts, 2);
    assert_int_equal(b.results[2].outcome, MP_FCM_OK);
    assert_int_equal(b.results[3].outcome, MP_FCM_OK);
    batch_free(&b);
    mp_fcm_client_free(c);
}

static void test_emu_plain_http1(void **state)
{
    struct emu *e = emu_fresh(state);
    struct mp_fcm_client *c = emu_client(e, false, 4, 10);
    struct batch b;
    batch_make(&b, 50);
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    expect_all_ok(&b);
    batch_free(&b);
    mp_fcm_client_free(c);
}

static void test_emu_bad_access_token(void **state)
{
    struct emu *e = emu_fresh(state);
    struct mp_fcm_client *c = emu_client(e, true, 1, 10);
    struct batch b;
    batch_make(&b, 5);
    assert_int_equal(
        mp_fcm_send_batch(c, "ya29.not-issued-by-the-emulator", b.reqs, b.n, b.results), MP_OK);
    assert_int_equal(count_outcome(&b, MP_FCM_UNAUTHENTICATED), b.n);
    batch_free(&b);
    mp_fcm_client_free(c);
}

/* The dispatcher's cycle after FCM refuses the access token: invalidate, fetch, resend. */
static void test_emu_expired_token_cycle(void **state)
{
    struct emu *e = emu_fresh(state);
    struct mp_fcm_client *c = emu_client(e, true, 1, 10);
    struct batch b;
    batch_make(&b, 20);
    long tokens = emu_stat(e, "token_requests");
    json_decref(emu_call(e, "POST", "/emulator/expire-tokens", NULL));
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    assert_int_equal(count_outcome(&b, MP_FCM_UNAUTHENTICATED), b.n);
    for (size_t i = 0; i < b.n; i++)
        mp_oauth_invalidate(e->oauth, e->token); /* one per 401: a single refresh */
    char fresh[MP_OAUTH_TOKEN_MAX];
    assert_int_equal(mp_oauth_token(e->oauth, fresh, sizeof(fresh)), MP_OK);
    assert_string_not_equal(fresh, e->token);
    assert_int_equal(emu_stat(e, "token_requests"), tokens + 1);
    memcpy(e->token, fresh, sizeof(fresh));
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    expect_all_ok(&b);
    batch_free(&b);
    mp_fcm_client_free(c);
}

static void test_emu_throughput(void **state)
{
    struct emu *e = emu_fresh(state);
    const char *env = getenv("MPCPUSH_FCM_BENCH_N");
    size_t n = env ? strtoul(env, NULL, 10) : 5000;
    struct mp_fcm_client *c = emu_client(e, true, 4, 10);
    struct batch b;
    batch_make(&b, n);
    long before = emu_stat(e, "connections");
    double started = now_seconds();
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    double cold = now_seconds() - started;
    long used = emu_stat(e, "connections") - before - 1;
    expect_all_ok(&b);
    started = now_seconds();
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    double warm = now_seconds() - started;
    expect_all_ok(&b);
    assert_in_range(used, 1, 4);
    print_message("send_batch of %zu over at most 4 HTTP/2 connections: %.3f s cold (%.0f/s), "
                  "%.3f s warm (%.0f/s); the batch opened %ld connections\n",
                  n, cold, (double)n / cold, warm, (double)n / warm, used);
    batch_free(&b);
    mp_fcm_client_free(c);
}

int main(void)
{
    const struct CMUnitTest offline[] = {
        cmocka_unit_test(test_client_new_rejects),
        cmocka_unit_test(test_send_batch_arguments),
        cmocka_unit_test_setup_teardown(test_fake_request_shape, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_fake_dropped_then_answered, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_fake_quota_retry_after, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_fake_huge_body_bounded, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_fake_no_answer_is_network, fake_setup, fake_teardown),
        cmocka_unit_test(test_connection_refused),
    };
    const struct CMUnitTest emulator[] = {
        cmocka_unit_test(test_emu_batch_http2),
        cmocka_unit_test(test_emu_records_wakeup),
        cmocka_unit_test(test_emu_faults_per_token),
        cmocka_unit_test(test_emu_goaway_mid_batch),
        cmocka_unit_test(test_emu_drop_mid_batch),
        cmocka_unit_test(test_emu_slow_answer_times_out),
        cmocka_unit_test(test_emu_plain_http1),
        cmocka_unit_test(test_emu_bad_access_token),
        cmocka_unit_test(test_emu_expired_token_cycle),
        cmocka_unit_test(test_emu_throughput),
    };
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int failed = cmocka_run_group_tests_name("offline", offline, NULL, NULL);
    failed +=
        cmocka_run_group_tests_name("emulator", emulator, emu_group_setup, emu_group_teardown);
    curl_global_cleanup();
    return failed;
}
