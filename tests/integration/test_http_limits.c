/* The HTTP layer: health endpoints, 404/405, 413 (Content-Length and chunked), 415, malformed
 * JSON, oversized header blocks, idle timeout and connection limits. */
#define _GNU_SOURCE
#include "harness_extra.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static void test_health(void **state)
{
    struct tx_env *e = *state;
    char url[256];
    struct th_response r;
    snprintf(url, sizeof(url), "%s/healthz", e->proc.base);
    th_http(&r, "GET", url, NULL, NULL, 0);
    tx_assert_status(&r, 200);
    tx_assert_json_eq(r.body, "{\"status\":\"ok\"}");
    assert_true(strncmp(r.content_type, "application/json", 16) == 0);
    th_response_free(&r);
    snprintf(url, sizeof(url), "%s/readyz", e->proc.base);
    th_http(&r, "GET", url, NULL, NULL, 0);
    tx_assert_status(&r, 200);
    tx_assert_json_eq(r.body, "{\"status\":\"ready\"}");
    th_response_free(&r);
}

static void test_not_found(void **state)
{
    struct tx_env *e = *state;
    struct tx_counts before;
    tx_counts(e->db, &before);
    const char *paths[] = {"/",
                           "/nope",
                           "/healthzz",
                           "/v1",
                           "/v1/wallets",
                           "/v1/wallets/w",
                           "/v1/wallets/w/devices",
                           "/v1/wallets/w/devices/d/extra",
                           "/v1/wallets/w/devices/d/messages/ack/more",
                           "/v2/wallets/w/devices/d",
                           "/webhooks",
                           "/webhooks/other"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        const char *methods[] = {"GET", "POST"};
        for (int m = 0; m < 2; m++) {
            char url[256];
            snprintf(url, sizeof(url), "%s%s", e->proc.base, paths[i]);
            const char *headers[] = {e->auth, "Content-Type: application/json", NULL};
            const char *body = m ? "{}" : NULL;
            struct th_response r;
            th_http(&r, methods[m], url, headers, body, body ? 2 : 0);
            if (r.status != 404 || strcmp(th_error_code(&r), "not_found") != 0)
                fail_msg("%s %s: want 404 not_found, got %ld %s", methods[m], paths[i], r.status,
                         r.body);
            tx_assert_error(&r, 404, "not_found");
            th_response_free(&r);
        }
    }
    tx_assert_counts(e->db, &before);
}

/* Expects 405 method_not_allowed with an Allow header listing each of allowed. */
static void expect_405(const struct tx_env *e, const char *method, const char *path,
                       const char *const *allowed)
{
    char url[256], hdrs[4096];
    snprintf(url, sizeof(url), "%s%s", e->proc.base, path);
    const char *headers[] = {e->auth, "Content-Type: application/json", NULL};
    bool with_body =
        strcmp(method, "GET") != 0 && strcmp(method, "DELETE") != 0 && strcmp(method, "HEAD") != 0;
    struct th_response r;
    if (!tx_http_hdrs(&r, hdrs, sizeof(hdrs), method, url, headers, with_body ? "{}" : NULL,
                      with_body ? 2 : 0))
        fail_msg("%s %s: no answer", method, path);
    if (r.status != 405 || strcmp(th_error_code(&r), "method_not_allowed") != 0)
        fail_msg("%s %s: want 405 method_not_allowed, got %ld %s", method, path, r.status, r.body);
    tx_assert_error(&r, 405, "method_not_allowed");
    const char *allow = strcasestr(hdrs, "\nAllow:");
    if (!allow)
        fail_msg("%s %s: 405 without an Allow header:\n%s", method, path, hdrs);
    const char *eol = strchr(allow + 1, '\n');
    char line[256];
    snprintf(line, sizeof(line), "%.*s", (int)(eol ? eol - allow - 1 : 200), allow + 1);
    for (int i = 0; allowed[i]; i++)
        if (!strstr(line, allowed[i]))
            fail_msg("%s %s: Allow header \"%s\" lacks %s", method, path, line, allowed[i]);
    th_response_free(&r);
}

static void test_method_not_allowed(void **state)
{
    struct tx_env *e = *state;
    struct tx_counts before;
    tx_counts(e->db, &before);
    const char *device[] = {"GET", "PUT", "DELETE", NULL};
    expect_405(e, "PATCH", "/v1/wallets/w/devices/d", device);
    expect_405(e, "POST", "/v1/wallets/w/devices/d", device);
    const char *post[] = {"POST", NULL};
    expect_405(e, "GET", "/webhooks/fireblocks", post);
    expect_405(e, "PUT", "/webhooks/fireblocks", post);
    expect_405(e, "DELETE", "/v1/wallets/w/messages", post);
    expect_405(e, "PUT", "/v1/wallets/w/messages", post);
    expect_405(e, "PUT", "/v1/wallets/w/devices/d/messages", post);
    const char *get[] = {"GET", NULL};
    expect_405(e, "POST", "/healthz", get);
    expect_405(e, "DELETE", "/readyz", get);
    tx_assert_counts(e->db, &before);
}

/* A valid device registration body of exactly size bytes. */
static char *device_body(size_t size)
{
    const char *head = "{\"fcmToken\":\"abcdefgh\",\"platform\":\"android\",\"pad\":\"";
    size_t hlen = strlen(head);
    char *body = malloc(size + 1);
    memcpy(body, head, hlen);
    memset(body + hlen, 'p', size - hlen - 2);
    memcpy(body + size - 2, "\"}", 3);
    return body;
}

/* A validly signed webhook of exactly size bytes. */
static char *webhook_body(size_t size)
{
    const char *head = "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"t\",\"timestamp\":1,"
                       "\"walletId\":\"big\",\"deviceId\":\"d\",\"message\":\"";
    size_t hlen = strlen(head);
    char *body = malloc(size + 1);
    memcpy(body, head, hlen);
    memset(body + hlen, 'm', size - hlen - 2);
    memcpy(body + size - 2, "\"}", 3);
    return body;
}

static void expect_too_large(const struct tx_env *e, const char *method, const char *path,
                             const char *body, const char *sig)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", e->proc.base, path);
    const char *headers[] = {e->auth, "Content-Type: application/json", sig, NULL};
    struct tx_counts before;
    tx_counts(e->db, &before);
    struct th_response r;
    if (!th_http_try(&r, method, url, headers, body, strlen(body)))
        fail_msg("%s %s with %zu bytes: no HTTP answer (want 413)", method, path, strlen(body));
    tx_assert_error(&r, 413, "body_too_large");
    th_response_free(&r);
    tx_assert_counts(e->db, &before);
}

static void test_body_limit_default(void **state)
{
    struct tx_env *e = *state;
    char *big = device_body(262145);
    expect_too_large(e, "PUT", "/v1/wallets/w/devices/d", big, NULL);
    char *hook = webhook_body(262145);
    char *sig = tx_hdr_v1(tx_keys()->v1a, hook);
    expect_too_large(e, "POST", "/webhooks/fireblocks", hook, sig);
    /* Exactly at the limit is fine. */
    char *fits = device_body(262144);
    struct th_response r;
    tx_api(&r, e, "PUT", "/v1/wallets/w/devices/d", fits);
    tx_assert_status(&r, 201);
    th_response_free(&r);
    free(big);
    free(hook);
    free(sig);
    free(fits);
}

static void test_body_limit_configured(void **state)
{
    struct tx_env *e = *state;
    const char *env[] = {"MPCPUSH_MAX_BODY_BYTES=2048", NULL};
    tx_start(e, 0, env);
    char *big = device_body(2049);
    expect_too_large(e, "PUT", "/v1/wallets/w/devices/d", big, NULL);
    char *msg = malloc(4000);
    snprintf(msg, 4000, "{\"payload\":\"%03000d\"}", 0);
    expect_too_large(e, "POST", "/v1/wallets/w/devices/d/messages", msg, NULL);
    expect_too_large(e, "POST", "/v1/wallets/w/messages", msg, NULL);
    char *hook = webhook_body(2049);
    char *sig = tx_hdr_v1(tx_keys()->v1a, hook);
    expect_too_large(e, "POST", "/webhooks/fireblocks", hook, sig);
    struct tx_counts before;
    tx_counts(e->db, &before);
    /* Answered from Content-Length alone, before any of the body is sent. */
    int fd = tx_connect(e->proc.port);
    char *req = NULL, buf[8192];
    if (asprintf(&req,
                 "PUT /v1/wallets/w/devices/d HTTP/1.1\r\nHost: localhost\r\n%s\r\n"
                 "Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n",
                 e->auth) < 0)
        fail_msg("out of memory");
    assert_true(tx_send(fd, req, strlen(req)));
    int status = tx_read_status(fd, 3000, buf, sizeof(buf));
    if (status != 413 || !strstr(buf, "body_too_large"))
        fail_msg("Content-Length 100000000 without a body: want 413 at once, got %d: %s", status,
                 buf);
    close(fd);
    free(req);
    /* Chunked: cut off at the limit. */
    char *chunked = webhook_body(3000);
    char *csig = tx_hdr_v1(tx_keys()->v1a, chunked);
    fd = tx_connect(e->proc.port);
    if (asprintf(&req,
                 "POST /webhooks/fireblocks HTTP/1.1\r\nHost: localhost\r\n%s\r\n"
                 "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5dc\r\n%.1500s\r\n5dc\r\n%.1500s\r\n0\r\n\r\n",
                 csig, chunked, chunked + 1500) < 0)
        fail_msg("out of memory");
    tx_send(fd, req, strlen(req));
    status = tx_read_status(fd, 5000, buf, sizeof(buf));
    if (status != 413)
        fail_msg("chunked body of 3000 bytes over a 2048 limit: want 413, got %d: %s", status, buf);
    close(fd);
    free(req);
    tx_assert_counts(e->db, &before);
    /* A chunked body within the limit is read whole. */
    char *small = webhook_body(1200);
    char *ssig = tx_hdr_v1(tx_keys()->v1a, small);
    fd = tx_connect(e->proc.port);
    if (asprintf(&req,
                 "POST /webhooks/fireblocks HTTP/1.1\r\nHost: localhost\r\n%s\r\n"
                 "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "258\r\n%.600s\r\n258\r\n%.600s\r\n0\r\n\r\n",
                 ssig, small, small + 600) < 0)
        fail_msg("out of memory");
    tx_send(fd, req, strlen(req));
    status = tx_read_status(fd, 10000, buf, sizeof(buf));
    if (status != 200)
        fail_msg("chunked webhook of 1200 bytes: want 200, got %d: %s", status, buf);
    close(fd);
    free(req);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"), 1);
    free(big);
    free(msg);
    free(hook);
    free(sig);
    free(chunked);
    free(csig);
    free(small);
    free(ssig);
}

static void expect_415(const struct tx_env *e, const char *method, const char *path,
                       const char *body, const char *content_type, const char *sig)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", e->proc.base, path);
    const char *headers[] = {e->auth, content_type, sig, NULL};
    struct tx_counts before;
    tx_counts(e->db, &before);
    struct th_response r;
    th_http(&r, method, url, headers, body, strlen(body));
    if (r.status != 415 || strcmp(th_error_code(&r), "unsupported_media_type") != 0)
        fail_msg("%s %s with [%s]: want 415 unsupported_media_type, got %ld %s", method, path,
                 content_type, r.status, r.body);
    tx_assert_error(&r, 415, "unsupported_media_type");
    th_response_free(&r);
    tx_assert_counts(e->db, &before);
}

static void test_unsupported_media_type(void **state)
{
    struct tx_env *e = *state;
    const char *dev = "{\"fcmToken\":\"abcdefgh\",\"platform\":\"android\"}";
    const char *types[] = {"Content-Type: text/plain",
                           "Content-Type:", "Content-Type: application/x-www-form-urlencoded",
                           "Content-Type: application/jsonx", "Content-Type: text/json"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        expect_415(e, "PUT", "/v1/wallets/w/devices/d", dev, types[i], NULL);
        expect_415(e, "POST", "/v1/wallets/w/messages", "{\"payload\":1}", types[i], NULL);
    }
    struct th_response r;
    tx_api(&r, e, "PUT", "/v1/wallets/w/devices/d", dev);
    tx_assert_status(&r, 201);
    th_response_free(&r);
    expect_415(e, "POST", "/v1/wallets/w/devices/d/messages", "{\"payload\":1}",
               "Content-Type: text/plain", NULL);
    const char *hook = "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"t\",\"timestamp\":1,"
                       "\"walletId\":\"w\",\"deviceId\":\"d\",\"message\":\"m\"}";
    char *sig = tx_hdr_v1(tx_keys()->v1a, hook);
    expect_415(e, "POST", "/webhooks/fireblocks", hook, "Content-Type: text/plain", sig);
    /* application/json; charset=utf-8 is JSON. */
    char url[256];
    snprintf(url, sizeof(url), "%s/webhooks/fireblocks", e->proc.base);
    const char *headers[] = {"Content-Type: application/json; charset=utf-8", sig, NULL};
    th_http(&r, "POST", url, headers, hook, strlen(hook));
    tx_assert_status(&r, 200);
    th_response_free(&r);
    free(sig);
}

/* Requests whose header block exceeds the connection memory: not served, nothing stored. */
static void test_large_header_block(void **state)
{
    struct tx_env *e = *state;
    const char *env[] = {"MPCPUSH_CONNECTION_MEMORY_BYTES=4096", NULL};
    tx_start(e, 0, env);
    struct tx_counts before;
    tx_counts(e->db, &before);
    char *filler = malloc(9000);
    memcpy(filler, "X-Filler: ", 10);
    memset(filler + 10, 'f', 8000);
    filler[8010] = '\0';
    const char *hook = "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"t\",\"timestamp\":1,"
                       "\"walletId\":\"w\",\"deviceId\":\"d\",\"message\":\"m\"}";
    char *sig = tx_hdr_v1(tx_keys()->v1a, hook);
    char url[256];
    snprintf(url, sizeof(url), "%s/webhooks/fireblocks", e->proc.base);
    const char *headers[] = {"Content-Type: application/json", sig, filler, NULL};
    struct th_response r;
    if (th_http_try(&r, "POST", url, headers, hook, strlen(hook))) {
        if (r.status >= 200 && r.status < 300)
            fail_msg("webhook with an 8 KB header and 4 KB connection memory: got %ld %s", r.status,
                     r.body);
        th_response_free(&r);
    }
    const char *dev = "{\"fcmToken\":\"abcdefgh\",\"platform\":\"android\"}";
    snprintf(url, sizeof(url), "%s/v1/wallets/w/devices/d", e->proc.base);
    const char *headers2[] = {e->auth, "Content-Type: application/json", filler, NULL};
    if (th_http_try(&r, "PUT", url, headers2, dev, strlen(dev))) {
        if (r.status >= 200 && r.status < 300)
            fail_msg("PUT with an 8 KB header and 4 KB connection memory: got %ld %s", r.status,
                     r.body);
        th_response_free(&r);
    }
    tx_assert_counts(e->db, &before);
    /* The server is fine afterwards. */
    tx_api(&r, e, "PUT", "/v1/wallets/w/devices/d", dev);
    tx_assert_status(&r, 201);
    th_response_free(&r);
    free(filler);
    free(sig);
}

static void test_idle_timeout(void **state)
{
    struct tx_env *e = *state;
    const char *env[] = {"MPCPUSH_IDLE_TIMEOUT=1", NULL};
    tx_start(e, 0, env);
    /* Silent from the start. */
    int fd = tx_connect(e->proc.port);
    long t0 = tx_now_ms();
    if (!tx_wait_closed(fd, 5000))
        fail_msg("a silent connection was still open after 5 s with MPCPUSH_IDLE_TIMEOUT=1");
    if (tx_now_ms() - t0 < 500)
        fail_msg("a silent connection was closed after %ld ms, before the timeout",
                 tx_now_ms() - t0);
    close(fd);
    /* Half a request. */
    fd = tx_connect(e->proc.port);
    const char *half = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n";
    assert_true(tx_send(fd, half, strlen(half)));
    if (!tx_wait_closed(fd, 5000))
        fail_msg("a half-sent request was still open after 5 s");
    close(fd);
    /* Half a body: nothing stored. */
    struct tx_counts before;
    tx_counts(e->db, &before);
    fd = tx_connect(e->proc.port);
    char *req = NULL;
    if (asprintf(&req,
                 "PUT /v1/wallets/w/devices/d HTTP/1.1\r\nHost: localhost\r\n%s\r\n"
                 "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"fcmToken\":",
                 e->auth) < 0)
        fail_msg("out of memory");
    assert_true(tx_send(fd, req, strlen(req)));
    if (!tx_wait_closed(fd, 5000))
        fail_msg("a half-sent body was still open after 5 s");
    close(fd);
    free(req);
    tx_assert_counts(e->db, &before);
    /* Idle after a complete exchange (keep-alive). */
    fd = tx_connect(e->proc.port);
    const char *full = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    assert_true(tx_send(fd, full, strlen(full)));
    assert_int_equal(tx_read_status(fd, 3000, NULL, 0), 200);
    if (!tx_wait_closed(fd, 5000))
        fail_msg("an idle keep-alive connection was still open after 5 s");
    close(fd);
    /* Still serving. */
    char url[256];
    snprintf(url, sizeof(url), "%s/healthz", e->proc.base);
    struct th_response r;
    th_http(&r, "GET", url, NULL, NULL, 0);
    tx_assert_status(&r, 200);
    th_response_free(&r);
}

/* Holds n idle connections, then checks that one more is not served (within 2 s), then that the
 * server serves again once they are gone. */
static void check_connection_cap(const struct tx_env *e, int n, const char *what)
{
    usleep(300000); /* let the start-up health checks' connections go */
    int fds[64];
    for (int i = 0; i < n; i++)
        fds[i] = tx_connect(e->proc.port);
    /* Each is really being served: a request answered on every one keeps it open. */
    const char *req = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    for (int i = 0; i < n; i++) {
        assert_true(tx_send(fds[i], req, strlen(req)));
        int status = tx_read_status(fds[i], 3000, NULL, 0);
        if (status != 200)
            fail_msg("%s: connection %d of %d not served (%d)", what, i + 1, n, status);
    }
    char url[256];
    snprintf(url, sizeof(url), "%s/healthz", e->proc.base);
    int extra = tx_connect(e->proc.port);
    tx_send(extra, req, strlen(req));
    int status = tx_read_status(extra, 2000, NULL, 0);
    if (status == 200)
        fail_msg("%s: connection %d was served beyond the limit of %d", what, n + 1, n);
    close(extra);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    long deadline = tx_now_ms() + 5000;
    struct th_response r;
    bool ok = false;
    while (!ok && tx_now_ms() < deadline) {
        if (th_http_try(&r, "GET", url, NULL, NULL, 0)) {
            ok = r.status == 200;
            th_response_free(&r);
        }
        if (!ok)
            usleep(100000);
    }
    if (!ok)
        fail_msg("%s: not serving again after the connections closed", what);
}

static void test_connection_limit(void **state)
{
    struct tx_env *e = *state;
    const char *env[] = {"MPCPUSH_MAX_CONNECTIONS=4", "MPCPUSH_MAX_CONNECTIONS_PER_IP=0",
                         "MPCPUSH_IDLE_TIMEOUT=60", NULL};
    tx_start(e, 0, env);
    check_connection_cap(e, 4, "MPCPUSH_MAX_CONNECTIONS=4");
}

static void test_connection_limit_per_ip(void **state)
{
    struct tx_env *e = *state;
    const char *env[] = {"MPCPUSH_MAX_CONNECTIONS_PER_IP=3", "MPCPUSH_IDLE_TIMEOUT=60", NULL};
    tx_start(e, 0, env);
    check_connection_cap(e, 3, "MPCPUSH_MAX_CONNECTIONS_PER_IP=3");
}

int main(void)
{
    tx_keys();
#define T(f) cmocka_unit_test_setup_teardown(f, tx_setup, tx_teardown)
#define D(f) cmocka_unit_test_setup_teardown(f, tx_setup_db, tx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_health),
        T(test_not_found),
        T(test_method_not_allowed),
        T(test_body_limit_default),
        D(test_body_limit_configured),
        T(test_unsupported_media_type),
        D(test_large_header_block),
        D(test_idle_timeout),
        D(test_connection_limit),
        D(test_connection_limit_per_ip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
