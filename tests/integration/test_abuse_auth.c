/* Abuse of authentication and idempotency (issue 7): API-key guessing (the failed-check budget
 * per address), the per-key and per-address request budgets, and replayed webhooks (one signed
 * body 150 times, at once and over 5 s; a v2 id replayed with another validly signed body).
 * Other clients are other loopback addresses (127.0.0.2 ...). The limits count in fixed
 * one-minute windows, so each burst starts well inside one (ab_wait_window). */
#define _GNU_SOURCE
#include "abuse_util.h"
#include "harness_extra.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEVICE_PATH "/v1/wallets/w/devices/d"

/* GET DEVICE_PATH from src with "Authorization: Bearer key" (no header when key is NULL). */
static void get_device(const struct tx_env *e, const char *src, const char *key, struct ab_resp *r)
{
    char auth[256];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key ? key : "");
    const char *headers[] = {key ? auth : NULL, NULL};
    ab_http(src, e->proc.port, "GET", DEVICE_PATH, headers, NULL, 5000, r);
}

/* Asserts a 429 rate_limited with a Retry-After of 1 to 60 seconds. */
static void expect_429(const struct ab_resp *r, const char *what)
{
    char code[64], retry[32];
    ab_error_code(r, code, sizeof(code));
    ab_header(r, "Retry-After", retry, sizeof(retry));
    long seconds = retry[0] ? strtol(retry, NULL, 10) : 0;
    if (r->status != 429 || strcmp(code, "rate_limited") != 0 || seconds < 1 || seconds > 60)
        fail_msg("%s: want 429 rate_limited with Retry-After 1..60, got %d (Retry-After \"%s\"): "
                 "%s",
                 what, r->status, retry, r->body);
}

static void wrong_key(char *out, size_t size, unsigned n)
{
    snprintf(out, size, "mpk_%08x%08x%08x", n * 2654435761u, (unsigned)rand(), (unsigned)rand());
}

/* Sends n requests with wrong keys from src; counts the 401 and 429 answers (fails on others). */
static void guess(const struct tx_env *e, const char *src, int n, int *unauthorized, int *limited)
{
    *unauthorized = *limited = 0;
    for (int i = 0; i < n; i++) {
        char key[64];
        wrong_key(key, sizeof(key), (unsigned)i);
        struct ab_resp r;
        get_device(e, src, key, &r);
        if (r.status == 401) {
            ++*unauthorized;
        } else {
            char what[64];
            snprintf(what, sizeof(what), "guess %d from %s", i + 1, src);
            expect_429(&r, what);
            ++*limited;
        }
    }
}

static void register_device(const struct tx_env *e)
{
    struct th_response r;
    tx_api(&r, e, "PUT", DEVICE_PATH, "{\"fcmToken\":\"tok-abcdefgh\",\"platform\":\"android\"}");
    tx_assert_status(&r, 201);
    th_response_free(&r);
}

/* 100 wrong keys from 127.0.0.2 with MPCPUSH_AUTH_FAILURES_PER_MINUTE=10: 10 answered 401, the
 * rest 429; then even the right key from 127.0.0.2 gets 429, while 127.0.0.4 is served. */
static void test_key_guessing(void **state)
{
    struct tx_env *e = *state;
    const char *env[] = {"MPCPUSH_AUTH_FAILURES_PER_MINUTE=10", NULL};
    tx_start(e, 0, env);
    register_device(e);
    ab_wait_window(8);
    int unauthorized, limited;
    guess(e, "127.0.0.2", 100, &unauthorized, &limited);
    if (unauthorized != 10 || limited != 90)
        fail_msg("100 wrong keys: %d answered 401 and %d 429 (want 10 and 90)", unauthorized,
                 limited);
    struct ab_resp r;
    get_device(e, "127.0.0.2", e->apikey, &r);
    expect_429(&r, "the right key from the guessing address");
    get_device(e, "127.0.0.2", NULL, &r);
    expect_429(&r, "no key from the guessing address");
    get_device(e, "127.0.0.4", e->apikey, &r);
    if (r.status != 200)
        fail_msg("the right key from another address: want 200, got %d: %s", r.status, r.body);
    get_device(e, "127.0.0.4", "mpk_wrong", &r);
    assert_int_equal(r.status, 401);
}

/* The slot of the rate limiter's table (FNV-1a of the text, 8192 slots) that text lands in. */
static unsigned slot_of(const char *text)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (unsigned)(h % 8192);
}

/* An address of 127.0.0.0/16 other than avoid whose slot is the slot of avoid. */
static void colliding_address(const char *avoid, char *out, size_t size)
{
    unsigned want = slot_of(avoid);
    for (int c = 1; c < 256; c++)
        for (int d = 1; d < 255; d++) {
            snprintf(out, size, "127.0.%d.%d", c, d);
            if (slot_of(out) == want && strcmp(out, avoid) != 0)
                return;
        }
    fail_msg("no address collides with %s", avoid);
}

/* Two addresses that share a slot of the limiter's table are still two clients: guesses from
 * the second must be limited after 10 failures (not forgiven because the first holds the slot),
 * and the first, with one failure of its own, must keep its access. */
static void test_key_guessing_colliding_addresses(void **state)
{
    struct tx_env *e = *state;
    const char *env[] = {"MPCPUSH_AUTH_FAILURES_PER_MINUTE=10", NULL};
    tx_start(e, 0, env);
    register_device(e);
    char twin[32];
    colliding_address("127.0.0.2", twin, sizeof(twin));
    ab_wait_window(8);
    struct ab_resp r;
    get_device(e, "127.0.0.2", "mpk_typo", &r);
    assert_int_equal(r.status, 401);
    int unauthorized, limited;
    guess(e, twin, 100, &unauthorized, &limited);
    struct ab_resp owner;
    get_device(e, "127.0.0.2", e->apikey, &owner);
    fprintf(stderr,
            "colliding addresses 127.0.0.2 and %s: %d guesses answered 401, %d 429; the "
            "right key from 127.0.0.2 (1 failure) then got %d\n",
            twin, unauthorized, limited, owner.status);
    if (unauthorized > 10)
        fail_msg("%d of 100 wrong keys from %s were checked (want at most 10): its failures are "
                 "counted in the slot of 127.0.0.2, and the check before the key looks only at a "
                 "slot holding its own address",
                 unauthorized, twin);
    if (owner.status != 200)
        fail_msg("127.0.0.2, with one failed key check, got %d for the right key after %s's "
                 "guesses: locked out by another address",
                 owner.status, twin);
}

/* MPCPUSH_RATE_LIMIT_PER_MINUTE=20: the 21st request with one key is refused from any address
 * while other keys are served; the 21st request from one address is refused whatever the key
 * while other addresses are served. */
static void test_request_budgets(void **state)
{
    struct tx_env *e = *state;
    char *b = th_apikey(e->db, "second"), *c = th_apikey(e->db, "third");
    char *d = th_apikey(e->db, "fourth");
    const char *env[] = {"MPCPUSH_RATE_LIMIT_PER_MINUTE=20", NULL};
    tx_start(e, 0, env);
    ab_wait_window(8);
    struct ab_resp r;
    /* per key: 20 with key A from two addresses, then a third address */
    for (int i = 0; i < 20; i++) {
        get_device(e, i % 2 ? "127.0.0.5" : "127.0.0.6", e->apikey, &r);
        if (r.status != 404)
            fail_msg("request %d of 20 with one key: want 404 device_not_found, got %d: %s", i + 1,
                     r.status, r.body);
    }
    get_device(e, "127.0.0.7", e->apikey, &r);
    expect_429(&r, "the 21st request with one key, from a fresh address");
    get_device(e, "127.0.0.7", b, &r);
    if (r.status != 404)
        fail_msg("another key from the same fresh address: want 404, got %d: %s", r.status, r.body);
    /* per address: 20 from 127.0.0.8 with keys B and C, then key D from there and elsewhere */
    for (int i = 0; i < 20; i++) {
        get_device(e, "127.0.0.8", i % 2 ? b : c, &r);
        if (r.status != 404)
            fail_msg("request %d of 20 from one address: want 404, got %d: %s", i + 1, r.status,
                     r.body);
    }
    get_device(e, "127.0.0.8", d, &r);
    expect_429(&r, "the 21st request from one address, with an unused key");
    get_device(e, "127.0.0.9", d, &r);
    if (r.status != 404)
        fail_msg("the unused key from another address: want 404, got %d: %s", r.status, r.body);
    free(b);
    free(c);
    free(d);
}

/* ---- replayed webhooks ---- */

struct replayer {
    int port;
    const char *body;
    const char *sig_line;
    int sent, stored, duplicate, other;
    pthread_t thread;
};

/* One replay every 100 ms for 5 s from 127.0.0.3. */
static void *replay_main(void *arg)
{
    struct replayer *p = arg;
    const char *headers[] = {"Content-Type: application/json", p->sig_line, NULL};
    long start = tx_now_ms();
    for (int i = 0; tx_now_ms() - start < 5000; i++) {
        struct ab_resp r;
        ab_http("127.0.0.3", p->port, "POST", "/webhooks/fireblocks", headers, p->body, 10000, &r);
        p->sent++;
        if (r.status == 200 && strstr(r.body, "\"stored\""))
            p->stored++;
        else if (r.status == 200 && strstr(r.body, "\"duplicate\""))
            p->duplicate++;
        else
            p->other++;
        long next = start + (i + 1) * 100L;
        if (next > tx_now_ms())
            usleep((useconds_t)(next - tx_now_ms()) * 1000U);
    }
    return NULL;
}

static void test_replayed_webhooks(void **state)
{
    struct tx_env *e = *state;
    const char *body = "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"t\",\"timestamp\":1,"
                       "\"walletId\":\"rw\",\"deviceId\":\"rd\",\"message\":{\"once\":true}}";
    char *sig = tx_hdr_v1(tx_keys()->v1a, body);
    struct replayer p = {.port = e->proc.port, .body = body, .sig_line = sig};
    pthread_create(&p.thread, NULL, replay_main, &p); /* races the burst for the first store */
    enum { N = 100 };
    struct tx_call *calls = calloc(N, sizeof(*calls));
    for (int i = 0; i < N; i++) {
        calls[i].method = "POST";
        snprintf(calls[i].url, sizeof(calls[i].url), "%s/webhooks/fireblocks", e->proc.base);
        calls[i].headers[0] = "Content-Type: application/json";
        calls[i].headers[1] = sig;
        calls[i].body = body;
        calls[i].len = strlen(body);
    }
    tx_http_parallel(calls, N);
    int stored = 0, duplicate = 0, other = 0;
    for (int i = 0; i < N; i++) {
        const char *status = json_string_value(json_object_get(calls[i].json, "status"));
        if (calls[i].status == 200 && status && strcmp(status, "stored") == 0)
            stored++;
        else if (calls[i].status == 200 && status && strcmp(status, "duplicate") == 0)
            duplicate++;
        else
            other++;
    }
    pthread_join(p.thread, NULL);
    fprintf(stderr,
            "replays: concurrent %d stored, %d duplicate, %d other; sequential %d sent, "
            "%d stored, %d duplicate, %d other\n",
            stored, duplicate, other, p.sent, p.stored, p.duplicate, p.other);
    if (other || p.other || stored + p.stored != 1 || p.sent < 40)
        fail_msg("one signed body posted %d times: %d stored, %d answered other than 200 "
                 "stored/duplicate (want exactly 1 stored, all 200)",
                 N + p.sent, stored + p.stored, other + p.other);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"), 1);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages"), 1);
    tx_calls_free(calls, N);
    free(calls);
    free(sig);
    /* v2: the same id, another body validly signed with the other JWKS key, aimed elsewhere. */
    const char *first = "{\"id\":\"9e0c1d2e-0000-4000-8000-00000000abcd\",\"eventType\":"
                        "\"NCW_DEVICE_MESSAGE\",\"createdAt\":1700000000000,\"data\":{\"walletId\":"
                        "\"rw\",\"deviceId\":\"rd\",\"message\":\"first\"}}";
    const char *second =
        "{\"id\":\"9e0c1d2e-0000-4000-8000-00000000abcd\",\"eventType\":"
        "\"NCW_DEVICE_MESSAGE\",\"createdAt\":1700000000001,\"data\":{\"walletId\":"
        "\"other\",\"deviceId\":\"victim\",\"message\":\"second\"}}";
    char *s1 = tx_hdr_v2(tx_keys()->jwk1, "kid-1", first);
    char *s2 = tx_hdr_v2(tx_keys()->jwk2, "kid-2", second);
    const char *h1[] = {s1, NULL}, *h2[] = {s2, NULL};
    struct th_response r;
    tx_webhook(&r, e, first, h1);
    tx_assert_status(&r, 200);
    if (!strstr(r.body, "\"stored\""))
        fail_msg("first v2 post: want stored, got %s", r.body);
    th_response_free(&r);
    for (int i = 0; i < 3; i++) {
        tx_webhook(&r, e, second, h2);
        tx_assert_status(&r, 200);
        tx_assert_json_eq(r.body, "{\"status\":\"duplicate\"}");
        th_response_free(&r);
    }
    char *kept = th_sql_text(e->db, "SELECT raw_body FROM mpcpush.webhook_events WHERE"
                                    " api_version = 2");
    assert_string_equal(kept, first);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages WHERE wallet_id ="
                                        " 'other'"),
                     0);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages"), 2);
    free(kept);
    free(s1);
    free(s2);
}

int main(void)
{
    tx_keys();
    srand((unsigned)getpid());
#define T(f) cmocka_unit_test_setup_teardown(f, tx_setup, tx_teardown)
#define D(f) cmocka_unit_test_setup_teardown(f, tx_setup_db, tx_teardown)
    const struct CMUnitTest tests[] = {
        D(test_key_guessing),
        D(test_key_guessing_colliding_addresses),
        D(test_request_budgets),
        T(test_replayed_webhooks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
