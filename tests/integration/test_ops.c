/* What an operator relies on: /metrics (on the API or its own address), SIGHUP reloading the
 * configuration file (a bad one refused, the old one kept), and a clean SIGTERM. */
#define _GNU_SOURCE
#include "harness_extra.h"
#include "pickup_util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The value of one sample line ("name{labels} value") of a scrape, -1 when absent. */
static double sample(const char *scrape, const char *series)
{
    size_t len = strlen(series);
    for (const char *p = scrape; (p = strstr(p, series)); p += len)
        if ((p == scrape || p[-1] == '\n') && p[len] == ' ')
            return atof(p + len + 1);
    return -1;
}

static char *scrape(const char *base)
{
    char url[160];
    snprintf(url, sizeof(url), "%s/metrics", base);
    struct th_response r;
    th_http(&r, "GET", url, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.content_type, "text/plain"));
    char *text = r.body;
    r.body = NULL;
    th_response_free(&r);
    return text;
}

static void post_webhook(const struct tx_env *e, EVP_PKEY *key, const char *body, long want)
{
    char *sig = tx_hdr_v1(key, body);
    const char *headers[] = {sig, NULL};
    struct th_response r;
    tx_webhook(&r, e, body, headers);
    if (r.status != want)
        fail_msg("webhook answered %ld, want %ld: %s", r.status, want, r.body ? r.body : "");
    th_response_free(&r);
    free(sig);
}

static void test_metrics(void **state)
{
    struct tx_env *e = *state;
    tx_start(e, 0, NULL);
    post_webhook(e, tx_keys()->v1a,
                 "{\"type\":\"NCW_DEVICE_MESSAGE\",\"walletId\":\"w\",\"deviceId\":\"d\","
                 "\"message\":\"m1\"}",
                 200);
    post_webhook(e, tx_keys()->v1a,
                 "{\"type\":\"NCW_DEVICE_MESSAGE\",\"walletId\":\"w\",\"deviceId\":\"d\","
                 "\"message\":\"m1\"}",
                 200);
    post_webhook(e, tx_keys()->stranger, "{\"type\":\"X\"}", 401);
    th_sql_exec(e->db, "UPDATE mpcpush.messages SET received_at = now() - interval '100 s'");
    char *text = scrape(e->proc.base);
    assert_true(sample(text, "mpcpush_webhooks_total{outcome=\"stored\"}") == 1);
    assert_true(sample(text, "mpcpush_webhooks_total{outcome=\"duplicate\"}") == 1);
    assert_true(sample(text, "mpcpush_webhooks_total{outcome=\"bad_signature\"}") == 1);
    assert_true(sample(text, "mpcpush_messages_stored_total") == 1);
    assert_true(sample(text, "mpcpush_pending_messages") == 1);
    double age = sample(text, "mpcpush_oldest_pending_age_seconds");
    if (age < 100 || age > 160)
        fail_msg("oldest pending age %.1f s, want about 100", age);
    assert_true(sample(text, "mpcpush_build_info{version=\"" MPCPUSH_VERSION "\"}") == 1);
    assert_non_null(strstr(text, "# TYPE mpcpush_fcm_request_duration_seconds histogram\n"));
    assert_non_null(strstr(text, "mpcpush_queue_claim_duration_seconds_bucket{le=\"+Inf\"}"));
    assert_non_null(strstr(text, "# TYPE mpcpush_longpoll_waiters gauge\n"));
    free(text);
    /* The queue gauges cost a scan of the pending index: a scrape within 15 s of the last
     * one answers with the values it computed, while the counters move on. */
    post_webhook(e, tx_keys()->v1a,
                 "{\"type\":\"NCW_DEVICE_MESSAGE\",\"walletId\":\"w\",\"deviceId\":\"d\","
                 "\"message\":\"m2\"}",
                 200);
    text = scrape(e->proc.base);
    assert_true(sample(text, "mpcpush_messages_stored_total") == 2);
    assert_true(sample(text, "mpcpush_pending_messages") == 1);
    free(text);
}

static void test_metrics_own_address(void **state)
{
    struct tx_env *e = *state;
    int port = th_free_port();
    char listen[64], base[64], url[160];
    snprintf(listen, sizeof(listen), "MPCPUSH_METRICS_LISTEN=127.0.0.1:%d", port);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    const char *extra[] = {listen, NULL};
    tx_start(e, 0, extra);
    char *text = scrape(base);
    assert_non_null(strstr(text, "mpcpush_build_info"));
    free(text);
    /* not on the API address any more, and nothing but /metrics on its own */
    struct th_response r;
    snprintf(url, sizeof(url), "%s/metrics", e->proc.base);
    th_http(&r, "GET", url, NULL, NULL, 0);
    assert_int_equal(r.status, 404);
    th_response_free(&r);
    snprintf(url, sizeof(url), "%s/healthz", base);
    th_http(&r, "GET", url, NULL, NULL, 0);
    assert_int_equal(r.status, 404);
    th_response_free(&r);
}

static void test_reload(void **state)
{
    struct tx_env *e = *state;
    char *dir = th_tempdir("mpcpush-reload"), conf[320], text[1024];
    snprintf(conf, sizeof(conf), "%s/mpcpush.conf", dir);
    snprintf(text, sizeof(text), "MPCPUSH_FIREBLOCKS_PUBKEYS=%s\n", tx_keys()->pem_a);
    write_text(conf, text);
    const char *argv[] = {"--config", conf, "receiver", NULL};
    th_mpcpush_start_argv(&e->proc, argv, e->db, NULL);
    e->running = true;
    const char *body_b = "{\"type\":\"NCW_CREATED\",\"data\":{\"walletId\":\"w1\"}}";
    post_webhook(e, tx_keys()->v1b, body_b, 401); /* the second key is not configured yet */

    /* a configuration that does not load is refused whole: the old keys stay */
    write_text(conf, "MPCPUSH_LISTEN=nonsense\n");
    kill(e->proc.pid, SIGHUP);
    pu_wait_log(e->proc.log_path, "event=reload_refused");
    post_webhook(e, tx_keys()->v1a, "{\"type\":\"NCW_CREATED\",\"data\":{\"n\":1}}", 200);

    /* rotation: both keys listed, SIGHUP, the new key is accepted at once */
    snprintf(text, sizeof(text), "MPCPUSH_FIREBLOCKS_PUBKEYS=%s\nMPCPUSH_LOG_LEVEL=debug\n",
             tx_keys()->pubkeys);
    write_text(conf, text);
    kill(e->proc.pid, SIGHUP);
    pu_wait_log(e->proc.log_path, "event=fireblocks_keys_reloaded");
    post_webhook(e, tx_keys()->v1b, body_b, 200);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"), 2);
    th_rm_rf(dir);
    free(dir);
}

/* A body that trickles in slower than MPCPUSH_REQUEST_TIMEOUT is cut off (the connection is
 * closed without an answer), although every byte arrives well within the idle timeout. */
static void test_request_timeout(void **state)
{
    struct tx_env *e = *state;
    const char *extra[] = {"MPCPUSH_REQUEST_TIMEOUT=1", "MPCPUSH_IDLE_TIMEOUT=30", NULL};
    tx_start(e, 0, extra);
    struct tx_counts before;
    tx_counts(e->db, &before);
    int fd = tx_connect(e->proc.port);
    const char *head = "POST /webhooks/fireblocks HTTP/1.1\r\nHost: x\r\n"
                       "Content-Type: application/json\r\nContent-Length: 400\r\n\r\n";
    assert_true(tx_send(fd, head, strlen(head)));
    int status = -1;
    for (int i = 0; i < 8 && status < 0; i++) {
        assert_true(tx_send(fd, "{\"type\":\"x\",", 13) || i > 0);
        status = tx_read_status(fd, 500, NULL, 0);
    }
    assert_int_equal(status, 0); /* closed by the server, no answer */
    close(fd);
    tx_assert_counts_at(e->db, &before, __FILE__, __LINE__);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics, tx_setup_db, tx_teardown),
        cmocka_unit_test_setup_teardown(test_metrics_own_address, tx_setup_db, tx_teardown),
        cmocka_unit_test_setup_teardown(test_reload, tx_setup_db, tx_teardown),
        cmocka_unit_test_setup_teardown(test_request_timeout, tx_setup_db, tx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
