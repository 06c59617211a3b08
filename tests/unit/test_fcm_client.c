/* Tests for the FCM client: argument checks, and how it handles answers that the emulator does
 * not give, against a scripted h2c endpoint (tests/support/fake_fcm.h). Connection set-up is
 * tested in test_fcm_connect.c, the real thing (HTTP/2 over TLS, faults, throughput) in
 * test_fcm_emulator.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_fcm.h"
#include "fcm_batch.h"
#include "mpcpush/fcm.h"

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

/* ---- answers, from a scripted endpoint ---- */

static void test_fake_request_shape(void **state)
{
    struct fake *f = *state;
    struct mp_fcm_client *c = fake_client(f, 5);
    struct fcm_batch b;
    fcm_batch_make(&b, 5);
    assert_int_equal(mp_fcm_send_batch(c, "ya29.access", b.reqs, b.n, b.results), MP_OK);
    fcm_batch_expect_ok(&b);
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
    fcm_batch_expect_ok(&b);
    fcm_batch_free(&b);
    mp_fcm_client_free(c);
}

static void test_fake_reset_then_answered(void **state)
{
    struct fake *f = *state;
    f->mode = FAKE_RESET_FIRST;
    f->reset_first = 3;
    struct mp_fcm_client *c = fake_client(f, 5);
    struct fcm_batch b;
    fcm_batch_make(&b, 6);
    assert_int_equal(mp_fcm_send_batch(c, "tok", b.reqs, b.n, b.results), MP_OK);
    fcm_batch_expect_ok(&b);
    int retried = 0;
    for (size_t i = 0; i < b.n; i++)
        retried += b.results[i].attempts == 2;
    assert_int_equal(retried, 3);
    assert_int_equal(atomic_load(&f->requests), 9);
    fcm_batch_free(&b);
    mp_fcm_client_free(c);
}

static void test_fake_quota_retry_after(void **state)
{
    struct fake *f = *state;
    f->mode = FAKE_QUOTA;
    struct mp_fcm_client *c = fake_client(f, 5);
    struct fcm_batch b;
    fcm_batch_make(&b, 3);
    assert_int_equal(mp_fcm_send_batch(c, "tok", b.reqs, b.n, b.results), MP_OK);
    for (size_t i = 0; i < b.n; i++) {
        assert_int_equal(b.results[i].outcome, MP_FCM_QUOTA_EXCEEDED);
        assert_int_equal(b.results[i].retry_after, 42);
        assert_int_equal(b.results[i].http_status, 429);
        assert_int_equal(b.results[i].attempts, 1);
    }
    fcm_batch_free(&b);
    mp_fcm_client_free(c);
}

static void test_fake_huge_body_bounded(void **state)
{
    struct fake *f = *state;
    f->mode = FAKE_HUGE;
    struct mp_fcm_client *c = fake_client(f, 5);
    struct fcm_batch b;
    fcm_batch_make(&b, 2);
    assert_int_equal(mp_fcm_send_batch(c, "tok", b.reqs, b.n, b.results), MP_OK);
    for (size_t i = 0; i < b.n; i++) {
        assert_int_equal(b.results[i].outcome, MP_FCM_INTERNAL);
        assert_int_equal(b.results[i].http_status, 500);
        assert_int_equal(b.results[i].attempts, 1);
    }
    fcm_batch_free(&b);
    mp_fcm_client_free(c);
}

static void test_fake_no_answer_is_network(void **state)
{
    struct fake *f = *state;
    f->mode = FAKE_SILENT;
    struct mp_fcm_client *c = fake_client(f, 1);
    struct fcm_batch b;
    fcm_batch_make(&b, 2);
    double started = fcm_now_seconds();
    assert_int_equal(mp_fcm_send_batch(c, "tok", b.reqs, b.n, b.results), MP_OK);
    double took = fcm_now_seconds() - started;
    for (size_t i = 0; i < b.n; i++) {
        assert_int_equal(b.results[i].outcome, MP_FCM_NETWORK);
        assert_int_equal(b.results[i].http_status, 0);
        assert_int_equal(b.results[i].attempts, 2);
        assert_non_null(strstr(b.results[i].detail, "timed out"));
    }
    assert_true(took >= 1.9 && took < 6.0);
    fcm_batch_free(&b);
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
    struct fcm_batch b;
    fcm_batch_make(&b, 12);
    assert_int_equal(mp_fcm_send_batch(c, "tok", b.reqs, b.n, b.results), MP_OK);
    fcm_batch_expect_ok(&b);
    for (size_t i = 0; i < b.n; i++)
        assert_int_equal(b.results[i].attempts, 1);
    assert_int_equal(atomic_load(&f->requests), 12);
    pthread_mutex_lock(&f->lock);
    assert_int_equal(f->max_open_streams, 2);
    pthread_mutex_unlock(&f->lock);
    fcm_batch_free(&b);
    mp_fcm_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_new_rejects),
        cmocka_unit_test(test_send_batch_arguments),
        cmocka_unit_test_setup_teardown(test_fake_request_shape, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_fake_reset_then_answered, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_fake_quota_retry_after, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_fake_huge_body_bounded, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_fake_no_answer_is_network, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_fake_peer_stream_limit, fake_setup, fake_teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
