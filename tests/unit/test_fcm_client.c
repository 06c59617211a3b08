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
    assert_int_equal(mp_fcm_client_new("https://fcm.googleapis.com/", "my-project-1", NULL, 64,
                                       10, &c),
                     MP_OK);
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
