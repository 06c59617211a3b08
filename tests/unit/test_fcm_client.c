/* Tests for the FCM client: argument checks and failure handling against a scripted h2c
 * (HTTP/2 with prior knowledge) endpoint in this file, and the real thing (HTTP/2 over TLS,
 * faults, GOAWAY, dropped connections, throughput) against mpcpush-fcm-emulator
 * (MPCPUSH_EMULATOR_BIN). */
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
#include <nghttp2/nghttp2.h>
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

/* ---- a scripted FCM endpoint (h2c: HTTP/2 with prior knowledge, on loopback) ---- */

enum fake_mode { FAKE_OK, FAKE_RESET_FIRST, FAKE_QUOTA, FAKE_HUGE, FAKE_SILENT, FAKE_TWO_STREAMS };

#define FAKE_CONNS   8
#define FAKE_PENDING 256
#define FAKE_HUGE_N  (200 * 1024)

struct fake;

struct fake_conn {
    struct fake *f;
    int fd;
    nghttp2_session *h2;
    char head[4096]; /* the request headers being received, "name: value\r\n" each */
    size_t head_len;
    int32_t pending[FAKE_PENDING]; /* requests to answer on the next tick (FAKE_TWO_STREAMS) */
    int npending;
};

struct fake {
    int fd;
    char base[64];
    pthread_t thread;
    atomic_bool stop;
    atomic_int requests;
    enum fake_mode mode;
    int reset_first; /* FAKE_RESET_FIRST: requests reset unanswered */
    int open_streams, max_open_streams;
    pthread_mutex_t lock;
    char head[4096]; /* the last request's headers */
    struct fake_conn conns[FAKE_CONNS];
    char *huge;
};

static ssize_t fake_read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                              size_t length, uint32_t *flags, nghttp2_data_source *source,
                              void *user)
{
    const char *body = source->ptr;
    size_t *off = nghttp2_session_get_stream_user_data(session, stream_id);
    size_t left = strlen(body) - *off, n = left < length ? left : length;
    memcpy(buf, body + *off, n);
    *off += n;
    if (*off == strlen(body))
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void fake_respond(struct fake_conn *fc, int32_t id, const char *status,
                         const char *retry_after, const char *body)
{
    static size_t offsets[1 << 16]; /* per stream id / 2: the fake's streams are few */
    nghttp2_nv nv[] = {
        {(uint8_t *)":status", (uint8_t *)status, 7, strlen(status), NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)"application/json", 12, 16, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"retry-after", (uint8_t *)retry_after, 11,
         retry_after ? strlen(retry_after) : 0, NGHTTP2_NV_FLAG_NONE},
    };
    size_t *off = &offsets[((uint32_t)id / 2) % (1 << 16)];
    *off = 0;
    nghttp2_session_set_stream_user_data(fc->h2, id, off);
    nghttp2_data_provider data = {.source.ptr = (void *)body, .read_callback = fake_read_body};
    nghttp2_submit_response(fc->h2, id, nv, retry_after ? 3 : 2, &data);
}

static const char quota_body[] =
    "{\"error\":{\"code\":429,\"message\":\"Quota exceeded.\",\"status\":\"RESOURCE_EXHAUSTED\","
    "\"details\":[{\"@type\":\"type.googleapis.com/google.firebase.fcm.v1.FcmError\","
    "\"errorCode\":\"QUOTA_EXCEEDED\"}]}}";

static void fake_answer(struct fake_conn *fc, int32_t id)
{
    struct fake *f = fc->f;
    int number = atomic_fetch_add(&f->requests, 1) + 1;
    static char bodies[FAKE_PENDING][128];
    char *body = bodies[number % FAKE_PENDING];
    snprintf(body, 128, "{\"name\":\"projects/p/messages/%d\"}", number);
    if (f->mode == FAKE_SILENT)
        return;
    if (f->mode == FAKE_RESET_FIRST && number <= f->reset_first)
        nghttp2_submit_rst_stream(fc->h2, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
    else if (f->mode == FAKE_QUOTA)
        fake_respond(fc, id, "429", "42", quota_body);
    else if (f->mode == FAKE_HUGE)
        fake_respond(fc, id, "500", NULL, f->huge);
    else
        fake_respond(fc, id, "200", NULL, body);
}

static int fake_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct fake_conn *fc = user;
    fc->head_len = 0;
    pthread_mutex_lock(&fc->f->lock);
    if (++fc->f->open_streams > fc->f->max_open_streams)
        fc->f->max_open_streams = fc->f->open_streams;
    pthread_mutex_unlock(&fc->f->lock);
    return 0;
}

static int fake_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                          size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                          void *user)
{
    struct fake_conn *fc = user;
    int n = snprintf(fc->head + fc->head_len, sizeof(fc->head) - fc->head_len, "%.*s: %.*s\r\n",
                     (int)namelen, name, (int)valuelen, value);
    if (n > 0 && fc->head_len + (size_t)n < sizeof(fc->head))
        fc->head_len += (size_t)n;
    return 0;
}

static int fake_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct fake_conn *fc = user;
    if (frame->hd.type == NGHTTP2_HEADERS) {
        pthread_mutex_lock(&fc->f->lock);
        snprintf(fc->f->head, sizeof(fc->f->head), "%.*s", (int)fc->head_len, fc->head);
        pthread_mutex_unlock(&fc->f->lock);
    }
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    if (fc->f->mode == FAKE_TWO_STREAMS && fc->npending < FAKE_PENDING)
        fc->pending[fc->npending++] = frame->hd.stream_id; /* answered on the next tick */
    else
        fake_answer(fc, frame->hd.stream_id);
    return 0;
}

static int fake_on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                                void *user)
{
    struct fake_conn *fc = user;
    pthread_mutex_lock(&fc->f->lock);
    fc->f->open_streams--;
    pthread_mutex_unlock(&fc->f->lock);
    return 0;
}

static void fake_conn_close(struct fake_conn *fc)
{
    nghttp2_session_del(fc->h2);
    close(fc->fd);
    memset(fc, 0, sizeof(*fc));
    fc->fd = -1;
}

static void fake_conn_start(struct fake *f, int fd)
{
    struct fake_conn *fc = NULL;
    for (int i = 0; i < FAKE_CONNS && !fc; i++)
        if (f->conns[i].fd < 0)
            fc = &f->conns[i];
    if (!fc) {
        close(fd);
        return;
    }
    nghttp2_session_callbacks *cb;
    assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, fake_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, fake_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, fake_on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, fake_on_stream_close);
    fc->f = f;
    fc->fd = fd;
    assert_int_equal(nghttp2_session_server_new(&fc->h2, cb, fc), 0);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry settings = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                                       f->mode == FAKE_TWO_STREAMS ? 2 : 100};
    nghttp2_submit_settings(fc->h2, NGHTTP2_FLAG_NONE, &settings, 1);
}

/* Reads what came, answers what is due, writes what nghttp2 has; false when closed. */
static bool fake_conn_io(struct fake_conn *fc, bool readable)
{
    uint8_t buf[16384];
    ssize_t n = readable ? read(fc->fd, buf, sizeof(buf)) : 0;
    if (readable && (n <= 0 || nghttp2_session_mem_recv(fc->h2, buf, (size_t)n) < 0))
        return false;
    if (!readable) {
        for (int i = 0; i < fc->npending; i++)
            fake_answer(fc, fc->pending[i]);
        fc->npending = 0;
    }
    const uint8_t *data;
    while ((n = nghttp2_session_mem_send(fc->h2, &data)) > 0)
        for (ssize_t off = 0; off < n;) {
            ssize_t w = send(fc->fd, data + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (w <= 0)
                return false;
            off += w;
        }
    return n == 0;
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd pfd[FAKE_CONNS + 1] = {{.fd = f->fd, .events = POLLIN}};
        for (int i = 0; i < FAKE_CONNS; i++)
            pfd[i + 1] = (struct pollfd){.fd = f->conns[i].fd, .events = POLLIN};
        int rc = poll(pfd, FAKE_CONNS + 1, 20);
        if (rc > 0 && (pfd[0].revents & POLLIN)) {
            int cfd = accept(f->fd, NULL, NULL);
            if (cfd >= 0)
                fake_conn_start(f, cfd);
        }
        for (int i = 0; i < FAKE_CONNS; i++) {
            struct fake_conn *fc = &f->conns[i];
            bool readable = rc > 0 && pfd[i + 1].fd == fc->fd && pfd[i + 1].revents;
            if (fc->fd >= 0 && !fake_conn_io(fc, readable))
                fake_conn_close(fc);
        }
    }
    for (int i = 0; i < FAKE_CONNS; i++)
        if (f->conns[i].fd >= 0)
            fake_conn_close(&f->conns[i]);
    return NULL;
}

static int fake_setup(void **state)
{
    struct fake *f = calloc(1, sizeof(*f));
    pthread_mutex_init(&f->lock, NULL);
    for (int i = 0; i < FAKE_CONNS; i++)
        f->conns[i].fd = -1;
    f->huge = malloc(FAKE_HUGE_N + 1);
    memset(f->huge, 'x', FAKE_HUGE_N);
    f->huge[FAKE_HUGE_N] = '\0';
    f->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    assert_int_equal(bind(f->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(f->fd, 128), 0);
    assert_int_equal(getsockname(f->fd, (struct sockaddr *)&addr, &len), 0);
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d", ntohs(addr.sin_port));
    *state = f;
    return 0;
}

/* Starts serving; the tests set the mode first. */
static void fake_start(struct fake *f)
{
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static int fake_teardown(void **state)
{
    struct fake *f = *state;
    atomic_store(&f->stop, true);
    if (f->thread)
        pthread_join(f->thread, NULL);
    close(f->fd);
    pthread_mutex_destroy(&f->lock);
    free(f->huge);
    free(f);
    return 0;
}

static struct mp_fcm_client *fake_client(struct fake *f, int timeout)
{
    struct mp_fcm_client *c = NULL;
    fake_start(f);
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
    assert_non_null(strstr(f->head, ":method: POST\r\n"));
    assert_non_null(strstr(f->head, ":scheme: http\r\n"));
    assert_non_null(strstr(f->head, ":path: /v1/projects/p/messages:send\r\n"));
    assert_non_null(strstr(f->head, ":authority: 127.0.0.1:"));
    assert_non_null(strstr(f->head, "authorization: Bearer ya29.access\r\n"));
    assert_non_null(strstr(f->head, "content-type: application/json\r\n"));
    pthread_mutex_unlock(&f->lock);
    /* the client stays usable for the next batch */
    assert_int_equal(mp_fcm_send_batch(c, "ya29.access", b.reqs, b.n, b.results), MP_OK);
    expect_all_ok(&b);
    batch_free(&b);
    mp_fcm_client_free(c);
}

static void test_fake_reset_then_answered(void **state)
{
    struct fake *f = *state;
    f->mode = FAKE_RESET_FIRST;
    f->reset_first = 3;
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
        assert_int_equal(b.results[i].attempts, 1);
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
        assert_non_null(strstr(b.results[i].detail, "timed out"));
    }
    assert_true(took >= 1.9 && took < 6.0);
    batch_free(&b);
    mp_fcm_client_free(c);
}

/* The server allows 2 streams per connection: the client keeps to it (a stream above it would
 * be refused and retried) and still gets every answer. */
static void test_fake_peer_stream_limit(void **state)
{
    struct fake *f = *state;
    f->mode = FAKE_TWO_STREAMS;
    fake_start(f);
    struct mp_fcm_client *c = NULL;
    assert_int_equal(mp_fcm_client_new(f->base, "p", NULL, 1, 5, &c), MP_OK);
    struct batch b;
    batch_make(&b, 12);
    assert_int_equal(mp_fcm_send_batch(c, "tok", b.reqs, b.n, b.results), MP_OK);
    expect_all_ok(&b);
    for (size_t i = 0; i < b.n; i++)
        assert_int_equal(b.results[i].attempts, 1);
    assert_int_equal(atomic_load(&f->requests), 12);
    pthread_mutex_lock(&f->lock);
    assert_int_equal(f->max_open_streams, 2);
    pthread_mutex_unlock(&f->lock);
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
        assert_non_null(strstr(b.results[i].detail, "Connection refused"));
        assert_int_equal(b.results[i].retry_after, -1);
    }
    batch_free(&b);
    mp_fcm_client_free(c);
}

/* ---- TLS refusals, against `openssl s_server` (skipped without the openssl command) ---- */

struct tls_peer {
    char dir[64];
    pid_t pid;
    int port;
};

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    close(fd);
    return ntohs(addr.sin_port);
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                               .sin_port = htons((uint16_t)port)};
    bool ok = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    close(fd);
    return ok;
}

/* A self-signed certificate for san and a TLS server with it that negotiates no ALPN. */
static void tls_peer_start(struct tls_peer *t, const char *san)
{
    if (system("openssl version >/dev/null 2>&1") != 0) {
        print_message("no openssl command: skipped\n");
        skip();
    }
    snprintf(t->dir, sizeof(t->dir), "/tmp/mpcpush-tls-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
             "-subj /CN=mpcpush-test -addext subjectAltName=%s -keyout %s/key.pem "
             "-out %s/cert.pem >/dev/null 2>&1",
             san, t->dir, t->dir);
    assert_int_equal(system(cmd), 0);
    t->port = free_port();
    t->pid = fork();
    if (t->pid == 0) {
        char accept_at[32], cert[128], key[128];
        snprintf(accept_at, sizeof(accept_at), "127.0.0.1:%d", t->port);
        snprintf(cert, sizeof(cert), "%s/cert.pem", t->dir);
        snprintf(key, sizeof(key), "%s/key.pem", t->dir);
        int null = open("/dev/null", O_RDWR);
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        execlp("openssl", "openssl", "s_server", "-accept", accept_at, "-cert", cert, "-key", key,
               "-www", "-quiet", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200 && !port_open(t->port); i++)
        usleep(25000);
}

static void tls_peer_stop(struct tls_peer *t)
{
    kill(t->pid, SIGTERM);
    waitpid(t->pid, NULL, 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
    if (system(cmd) != 0)
        print_message("could not remove %s\n", t->dir);
}

/* Sends one request to host:port trusting only the peer's certificate: no answer, twice,
 * and the detail says want. */
static void tls_expect_refusal(struct tls_peer *t, const char *host, const char *want)
{
    char base[128], ca[128];
    snprintf(base, sizeof(base), "https://%s:%d", host, t->port);
    snprintf(ca, sizeof(ca), "%s/cert.pem", t->dir);
    struct mp_fcm_client *c = NULL;
    assert_int_equal(mp_fcm_client_new(base, "p", ca, 1, 5, &c), MP_OK);
    struct batch b;
    batch_make(&b, 1);
    assert_int_equal(mp_fcm_send_batch(c, "tok", b.reqs, b.n, b.results), MP_OK);
    assert_int_equal(b.results[0].outcome, MP_FCM_NETWORK);
    assert_int_equal(b.results[0].attempts, 2);
    if (!strstr(b.results[0].detail, want))
        fail_msg("detail \"%s\" does not say \"%s\"", b.results[0].detail, want);
    batch_free(&b);
    mp_fcm_client_free(c);
}

/* The certificate is trusted and names the host, but the server does not speak h2. */
static void test_tls_no_alpn_h2(void **state)
{
    (void)state;
    struct tls_peer t;
    tls_peer_start(&t, "DNS:localhost,IP:127.0.0.1");
    tls_expect_refusal(&t, "127.0.0.1", "did not select HTTP/2 (ALPN h2)");
    tls_expect_refusal(&t, "localhost", "did not select HTTP/2 (ALPN h2)");
    tls_peer_stop(&t);
}

/* A trusted certificate for another name. */
static void test_tls_name_mismatch(void **state)
{
    (void)state;
    struct tls_peer t;
    tls_peer_start(&t, "DNS:other.example,IP:127.0.0.2");
    tls_expect_refusal(&t, "localhost", "certificate: hostname mismatch");
    tls_expect_refusal(&t, "127.0.0.1", "certificate: IP address mismatch");
    tls_peer_stop(&t);
}

/* An untrusted certificate (no ca_file: only the system's roots). */
static void test_tls_untrusted(void **state)
{
    (void)state;
    struct tls_peer t;
    tls_peer_start(&t, "IP:127.0.0.1");
    char base[64];
    snprintf(base, sizeof(base), "https://127.0.0.1:%d", t.port);
    struct mp_fcm_client *c = NULL;
    assert_int_equal(mp_fcm_client_new(base, "p", NULL, 1, 5, &c), MP_OK);
    struct batch b;
    batch_make(&b, 1);
    assert_int_equal(mp_fcm_send_batch(c, "tok", b.reqs, b.n, b.results), MP_OK);
    assert_int_equal(b.results[0].outcome, MP_FCM_NETWORK);
    assert_non_null(strstr(b.results[0].detail, "certificate: self-signed certificate"));
    batch_free(&b);
    mp_fcm_client_free(c);
    tls_peer_stop(&t);
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

/* http:// on loopback: h2c with prior knowledge (the emulator's plain port sniffs the
 * preface). */
static void test_emu_plain_h2c(void **state)
{
    struct emu *e = emu_fresh(state);
    struct mp_fcm_client *c = emu_client(e, false, 4, 10);
    struct batch b;
    batch_make(&b, 50);
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    expect_all_ok(&b);
    assert_int_equal(emu_stat(e, "accepted"), 50);
    batch_free(&b);
    mp_fcm_client_free(c);
}

/* More requests than connections x streams: the rest wait for streams to free up, on the same
 * connection. */
static void test_emu_batch_above_window(void **state)
{
    struct emu *e = emu_fresh(state);
    struct mp_fcm_client *c = emu_client(e, true, 1, 10);
    struct batch b;
    batch_make(&b, 250);
    long before = emu_stat(e, "connections");
    assert_int_equal(mp_fcm_send_batch(c, e->token, b.reqs, b.n, b.results), MP_OK);
    expect_all_ok(&b);
    for (size_t i = 0; i < b.n; i++)
        assert_int_equal(b.results[i].attempts, 1);
    assert_int_equal(emu_stat(e, "connections") - before - 1, 1);
    assert_int_equal(emu_stat(e, "accepted"), 250);
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
        cmocka_unit_test_setup_teardown(test_fake_reset_then_answered, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_fake_quota_retry_after, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_fake_huge_body_bounded, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_fake_no_answer_is_network, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_fake_peer_stream_limit, fake_setup, fake_teardown),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_tls_no_alpn_h2),
        cmocka_unit_test(test_tls_name_mismatch),
        cmocka_unit_test(test_tls_untrusted),
    };
    const struct CMUnitTest emulator[] = {
        cmocka_unit_test(test_emu_batch_http2),
        cmocka_unit_test(test_emu_records_wakeup),
        cmocka_unit_test(test_emu_faults_per_token),
        cmocka_unit_test(test_emu_goaway_mid_batch),
        cmocka_unit_test(test_emu_drop_mid_batch),
        cmocka_unit_test(test_emu_slow_answer_times_out),
        cmocka_unit_test(test_emu_plain_h2c),
        cmocka_unit_test(test_emu_batch_above_window),
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
