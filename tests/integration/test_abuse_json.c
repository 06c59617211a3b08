/* Abuse of the JSON parsers (issue 7): bodies at the size limit built to hurt (100k-deep
 * nesting, 100k keys), invalid UTF-8, overlong forms and lone surrogates, numbers the parser takes
 * but the database does not, raw NUL bytes in bodies. Each answer must come quickly, be a 400
 * (or 413) for what is not a valid request, and store nothing. */
#define _GNU_SOURCE
#include "abuse_util.h"
#include "harness_extra.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG_PATH "/v1/wallets/w/devices/d/messages"

/* head + fill (repeated open, then close) + tail: exactly size bytes. */
static char *nested(size_t size, const char *head, const char *open, const char *close,
                    const char *tail)
{
    size_t h = strlen(head), t = strlen(tail), o = strlen(open), c = strlen(close);
    size_t levels = (size - h - t) / (o + c);
    size_t pad = size - h - t - levels * (o + c); /* spaces: still the same JSON */
    char *s = malloc(size + 1), *p = s;
    memcpy(p, head, h), p += h;
    memset(p, ' ', pad), p += pad;
    for (size_t i = 0; i < levels; i++)
        memcpy(p, open, o), p += o;
    for (size_t i = 0; i < levels; i++)
        memcpy(p, close, c), p += c;
    memcpy(p, tail, t), p += t;
    *p = '\0';
    return s;
}

/* An object of nkeys distinct short keys ("0":0,"1":0,... in base 36), the last one repeating
 * the first when dup, inside head..tail, padded with spaces to exactly size bytes. */
static char *wide(size_t size, int nkeys, bool dup, const char *head, const char *tail)
{
    char *s = malloc(size + 1), *p = s;
    p += sprintf(p, "%s{", head);
    for (int i = 0; i < nkeys; i++) {
        char key[16], *k = key + sizeof(key) - 1;
        *k = '\0';
        int v = dup && i == nkeys - 1 ? 0 : i;
        do
            *--k = "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36];
        while ((v /= 36));
        p += sprintf(p, "%s\"%s\":0", i ? "," : "", k);
    }
    *p++ = '}';
    size_t used = (size_t)(p - s), t = strlen(tail);
    if (used + t > size)
        fail_msg("wide object of %d keys does not fit in %zu bytes", nkeys, size);
    memset(p, ' ', size - used - t);
    memcpy(s + size - t, tail, t + 1);
    return s;
}

/* The webhook head of a v1 device message whose "message" follows. */
static const char hook_head[] =
    "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"t\",\"timestamp\":1,"
    "\"walletId\":\"w\",\"deviceId\":\"d\",\"message\":";

/* Sends body (len bytes, NULs allowed) from 127.0.0.1: PUT for a device path, else POST; an API
 * request with the key, or a webhook signed over exactly these bytes. */
static void post(const struct tx_env *e, const char *path, const char *body, size_t len,
                 int timeout_ms, struct ab_resp *r)
{
    bool hook = strcmp(path, "/webhooks/fireblocks") == 0;
    const char *slash = strrchr(path, '/');
    bool device = strncmp(path, "/v1/", 4) == 0 && strstr(path, "/devices/") &&
                  strcmp(slash, "/messages") != 0 && strcmp(slash, "/ack") != 0;
    char *sig = hook ? th_sign_v1(tx_keys()->v1a, body, len) : NULL;
    char *req = NULL;
    int n = asprintf(&req,
                     "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s%s%s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     device ? "PUT" : "POST", path, hook ? "Fireblocks-Signature: " : "",
                     hook ? sig : "", hook ? "" : e->auth, len);
    if (n < 0)
        fail_msg("out of memory");
    char *all = malloc((size_t)n + len);
    memcpy(all, req, (size_t)n);
    memcpy(all + n, body, len);
    ab_raw("127.0.0.1", e->proc.port, all, (size_t)n + len, timeout_ms, r);
    free(all);
    free(req);
    free(sig);
}

static void register_device(const struct tx_env *e)
{
    struct th_response r;
    tx_api(&r, e, "PUT", "/v1/wallets/w/devices/d",
           "{\"fcmToken\":\"tok-abcdefgh\",\"platform\":\"android\"}");
    tx_assert_status(&r, 201);
    th_response_free(&r);
}

static void expect_alive(const struct tx_env *e, const char *what)
{
    struct ab_resp r;
    ab_http("127.0.0.1", e->proc.port, "GET", "/healthz", NULL, NULL, 2000, &r);
    if (r.status != 200)
        fail_msg("after %s: /healthz answered %d", what, r.status);
}

/* body must be refused with 400 (one of codes, "|"-separated) or 413 within ms, storing
 * nothing. */
static void expect_refused(const struct tx_env *e, const char *what, const char *path,
                           const char *body, size_t len, const char *codes, long ms)
{
    struct tx_counts before;
    tx_counts(e->db, &before);
    struct ab_resp r;
    post(e, path, body, len, 10000, &r);
    char code[64], want[128];
    ab_error_code(&r, code, sizeof(code));
    snprintf(want, sizeof(want), "|%s|", codes);
    char got[70];
    snprintf(got, sizeof(got), "|%s|", code);
    bool ok = (r.status == 400 && strstr(want, got)) || r.status == 413;
    if (!ok || r.ms >= ms)
        fail_msg("%s to %s: want 400 %s or 413 within %ld ms, got %d after %ld ms: %.300s", what,
                 path, codes, ms, r.status, r.ms, r.body);
    tx_assert_counts(e->db, &before);
    expect_alive(e, what);
}

/* Nesting that fills the default 256 KiB limit (131k-deep arrays, 43k-deep objects): refused in
 * under 2 s. */
static void test_deep_nesting(void **state)
{
    struct tx_env *e = *state;
    register_device(e);
    const size_t limit = 262144;
    struct {
        const char *what, *path, *head, *open, *close, *tail, *codes;
    } cases[] = {
        {"payload [[[...]]]", MSG_PATH, "{\"payload\":", "[", "]", "}", "malformed_json"},
        {"body [[[...]]]", MSG_PATH, "", "[", "]", "", "malformed_json"},
        {"payload {\"a\":{...}}", MSG_PATH, "{\"payload\":", "{\"a\":", "}", "}", "malformed_json"},
        {"device {\"a\":[{...}]}", "/v1/wallets/w/devices/d", "{\"platform\":\"ios\",\"x\":",
         "[{\"a\":", "}]", ",\"fcmToken\":\"tok-abcdefgh\"}", "malformed_json"},
        {"webhook message [[[...]]]", "/webhooks/fireblocks", hook_head, "[", "]", "}",
         "malformed_event"},
        {"webhook body [[[...]]]", "/webhooks/fireblocks", "", "[", "]", "", "malformed_event"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *body = nested(limit, cases[i].head, cases[i].open, cases[i].close, cases[i].tail);
        expect_refused(e, cases[i].what, cases[i].path, body, limit, cases[i].codes, 2000);
        free(body);
    }
    /* Deep but within the parser's limit: stored and served back, or refused; never a 5xx. */
    char *deep = nested(4000 + 12, "{\"payload\":", "[", "]", "}");
    struct ab_resp r;
    post(e, MSG_PATH, deep, strlen(deep), 10000, &r);
    fprintf(stderr, "payload 2000 deep: %d after %ld ms\n", r.status, r.ms);
    if (r.status != 201 && r.status != 400)
        fail_msg("payload 2000 deep: want 201 or 400, got %d after %ld ms: %s", r.status, r.ms,
                 r.body);
    if (r.status == 201) {
        const char *headers[] = {e->auth, NULL};
        struct ab_resp g;
        ab_http("127.0.0.1", e->proc.port, "GET", MSG_PATH, headers, NULL, 5000, &g);
        if (g.status != 200)
            fail_msg("GET of a stored 2000-deep payload answered %d: %s", g.status, g.body);
    }
    free(deep);
}

/* 100k keys at a 1 MiB limit: refused quickly when they are not a valid request (no payload, a
 * repeated key); accepted or refused quickly, never a 5xx, when they are. */
static void test_wide_object(void **state)
{
    struct tx_env *e = *state;
    const char *env[] = {"MPCPUSH_MAX_BODY_BYTES=1048576", NULL};
    tx_start(e, 0, env);
    register_device(e);
    const size_t limit = 1048576;
    const int n = 100000;
    char *body = wide(limit, n, false, "", "");
    expect_refused(e, "100k keys, no payload", MSG_PATH, body, limit, "invalid_request", 2000);
    free(body);
    body = wide(limit, n, true, "{\"payload\":", "}");
    expect_refused(e, "payload of 100k keys, one repeated", MSG_PATH, body, limit, "malformed_json",
                   2000);
    free(body);
    body = wide(limit, n, true, hook_head, "}");
    expect_refused(e, "webhook message of 100k keys, one repeated", "/webhooks/fireblocks", body,
                   limit, "malformed_event", 2000);
    free(body);
    body = wide(limit, n, false, "{\"walletId\":\"w\",\"deviceId\":\"d\",\"x\":", "}");
    expect_refused(e, "webhook of 100k keys without a type", "/webhooks/fireblocks", body, limit,
                   "malformed_event", 2000);
    free(body);
    /* Valid: the payload may be any JSON. */
    struct tx_counts before;
    tx_counts(e->db, &before);
    body = wide(limit, n, false, "{\"payload\":", "}");
    struct ab_resp r;
    post(e, MSG_PATH, body, limit, 10000, &r);
    fprintf(stderr, "valid payload of 100k keys (1 MiB): %d after %ld ms\n", r.status, r.ms);
    if ((r.status != 201 && r.status != 400 && r.status != 413) || r.ms >= 2000)
        fail_msg("a valid payload of 100k keys: want 201 (or 400/413) within 2 s, got %d after "
                 "%ld ms: %.300s",
                 r.status, r.ms, r.body);
    free(body);
    struct tx_counts now;
    tx_counts(e->db, &now);
    assert_true(now.messages - before.messages == (r.status == 201 ? 1 : 0));
    expect_alive(e, "a payload of 100k keys");
}

/* Invalid UTF-8, overlong forms, surrogates, \u0000: 400 malformed_json (malformed_event for a
 * signed webhook) and nothing stored, in a value and in a key. */
static void test_invalid_text(void **state)
{
    struct tx_env *e = *state;
    register_device(e);
    const char *bad[] = {
        "\xff",
        "a\xfe"
        "b",
        "\xc0\xaf",
        "\xc1\xbf",
        "\xe0\x80\xaf",
        "\xf0\x80\x80\xaf",
        "\xed\xa0\x80",
        "\xed\xbf\xbf",
        "\xe2\x82",
        "\xf4\x90\x80\x80",
        "\xf8\x88\x80\x80\x80",
        "\x80",
        "\\ud800",
        "\\udc00",
        "\\ud800\\u0041",
        "\\udbff\\ud800",
        "\\udc00\\ud800",
        "\\ud800x",
        "\\u0000",
        "a\\u0000b",
        "\\uD83D",
        "\\u12",
        "\\x41",
        "\\U0001F600",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[256], what[96];
        snprintf(what, sizeof(what), "string case %zu", i);
        snprintf(body, sizeof(body), "{\"payload\":\"%s\"}", bad[i]);
        expect_refused(e, what, MSG_PATH, body, strlen(body), "malformed_json", 2000);
        snprintf(body, sizeof(body), "{\"payload\":{\"%s\":1}}", bad[i]);
        expect_refused(e, what, MSG_PATH, body, strlen(body), "malformed_json", 2000);
        snprintf(body, sizeof(body), "{\"fcmToken\":\"tok-%s-abcdefgh\",\"platform\":\"ios\"}",
                 bad[i]);
        expect_refused(e, what, "/v1/wallets/w/devices/d2", body, strlen(body), "malformed_json",
                       2000);
        snprintf(body, sizeof(body), "%s\"%s\"}", hook_head, bad[i]);
        expect_refused(e, what, "/webhooks/fireblocks", body, strlen(body), "malformed_event",
                       2000);
    }
}

/* What the JSON parser takes must also be storable, or be refused as the client's error: jansson
 * reads 1e-16384 as 0.0, PostgreSQL's numeric (the payload is jsonb) refuses a scale over 16383.
 * Stored (201) or refused (400): never "storage unavailable". */
static void test_unstorable_numbers(void **state)
{
    struct tx_env *e = *state;
    register_device(e);
    const char *numbers[] = {"1e-1001", "1e-16384", "-5e-100000", "[0.0e-99999]"};
    char problems[2048] = "";
    for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        char body[256];
        for (int hook = 0; hook < 2; hook++) {
            if (hook)
                snprintf(body, sizeof(body), "%s%s}", hook_head, numbers[i]);
            else
                snprintf(body, sizeof(body), "{\"payload\":%s}", numbers[i]);
            struct tx_counts before, after;
            tx_counts(e->db, &before);
            struct ab_resp r;
            post(e, hook ? "/webhooks/fireblocks" : MSG_PATH, body, strlen(body), 5000, &r);
            tx_counts(e->db, &after);
            bool ok =
                hook ? r.status == 200 || r.status == 400 : r.status == 201 || r.status == 400;
            if (!ok || (r.status == 400 && memcmp(&before, &after, sizeof(before)) != 0)) {
                size_t used = strlen(problems);
                snprintf(problems + used, sizeof(problems) - used, "\n  %s %s: %d %.90s",
                         hook ? "webhook message" : "payload", numbers[i], r.status, r.body);
            }
        }
    }
    /* In a busy batch, such a request must not fail the others. */
    enum { N = 20 };
    struct tx_call calls[N];
    memset(calls, 0, sizeof(calls));
    for (int i = 0; i < N; i++) {
        calls[i].method = "POST";
        snprintf(calls[i].url, sizeof(calls[i].url), "%s%s", e->proc.base, MSG_PATH);
        calls[i].headers[0] = e->auth;
        calls[i].headers[1] = "Content-Type: application/json";
        calls[i].body = i % 5 ? "{\"payload\":{\"ok\":true}}" : "{\"payload\":1e-16384}";
        calls[i].len = strlen(calls[i].body);
    }
    tx_http_parallel(calls, N);
    for (int i = 0; i < N; i++)
        if (i % 5 && calls[i].status != 201)
            fail_msg("a good message in a batch with unstorable numbers: %ld %s", calls[i].status,
                     calls[i].resp);
    tx_calls_free(calls, N);
    if (problems[0]) {
        fprintf(stderr, "numbers jansson takes and PostgreSQL refuses:%s\n", problems);
        fail_msg("numbers that cannot be stored were answered as a server failure (list above), "
                 "not 400: a client retries them forever, Fireblocks too");
    }
}

/* Raw NUL bytes anywhere in a body: 400, nothing stored. */
static void test_nul_in_body(void **state)
{
    struct tx_env *e = *state;
    register_device(e);
    struct {
        const char *text;
        size_t len;
    } cases[] = {
#define LIT(text) {text, sizeof(text) - 1}
        LIT("{\"payload\":\"a\0b\"}"),
        LIT("{\"payload\":1}\0"),
        LIT("{\"payload\":\0"
            "1}"),
        LIT("{\"payload\":true\0}"),
        LIT("{\"payload\":null\0}"),
        LIT("\0{\"payload\":1}"),
        LIT("{\"payload\":[1,\0"
            "2]}"),
        LIT("{\"payload\":1,\"a\0b\":2}"),
        LIT("{\"payload\":\"x\"}\0\0\0"),
        LIT("{\"payload\":1}\0garbage"),
#undef LIT
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char what[64];
        snprintf(what, sizeof(what), "NUL case %zu", i);
        expect_refused(e, what, MSG_PATH, cases[i].text, cases[i].len, "malformed_json", 2000);
        /* the same bytes as a webhook message, signed over every byte */
        char *hook = malloc(sizeof(hook_head) + cases[i].len + 2);
        size_t h = sizeof(hook_head) - 1;
        memcpy(hook, hook_head, h);
        memcpy(hook + h, cases[i].text, cases[i].len);
        memcpy(hook + h + cases[i].len, "}", 2);
        expect_refused(e, what, "/webhooks/fireblocks", hook, h + cases[i].len + 1,
                       "malformed_event", 2000);
        free(hook);
    }
}

int main(void)
{
    tx_keys();
#define T(f) cmocka_unit_test_setup_teardown(f, tx_setup, tx_teardown)
#define D(f) cmocka_unit_test_setup_teardown(f, tx_setup_db, tx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_deep_nesting),       D(test_wide_object), T(test_invalid_text),
        T(test_unstorable_numbers), T(test_nul_in_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
