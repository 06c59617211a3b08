/* Batches of FCM wakeup requests for the FCM client's tests (tests/support/fcm_batch.h). */
#include "fcm_batch.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

void fcm_test_token(char *out, size_t size, int i)
{
    snprintf(out, size,
             "d%05d-fGx1bV9ZRkmT3Yt0kHqXz9:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx-cygNVqEZ3sTdcGXq"
             "VWUD7tLgbNYeJfm_dd8kyLjFSN4mgrxzXgK0ouJCsuQtZjL3n7w1vQHkMfTt4gDXoBZsRl2e6cAq8",
             i);
}

void fcm_batch_make(struct fcm_batch *b, size_t n)
{
    static const char *const platforms[] = {"android", "ios", "web"};
    b->n = n;
    b->tokens = calloc(n, sizeof(*b->tokens));
    b->bodies = calloc(n, sizeof(*b->bodies));
    b->reqs = calloc(n, sizeof(*b->reqs));
    b->results = calloc(n, sizeof(*b->results));
    for (size_t i = 0; i < n; i++) {
        char device[32];
        fcm_test_token(b->tokens[i], sizeof(b->tokens[i]), (int)i);
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

void fcm_batch_free(struct fcm_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        mp_buf_free(&b->bodies[i]);
    free(b->tokens);
    free(b->bodies);
    free(b->reqs);
    free(b->results);
}

size_t fcm_batch_count(const struct fcm_batch *b, enum mp_fcm_outcome outcome)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++)
        n += b->results[i].outcome == outcome;
    return n;
}

void fcm_batch_expect_ok(const struct fcm_batch *b)
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

double fcm_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
