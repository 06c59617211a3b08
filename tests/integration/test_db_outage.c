/* The database goes away and comes back under a running receiver: answers are 503
 * storage_unavailable (never a 200 that was not stored), /readyz follows, and the receiver
 * recovers on its own. Uses a private cluster (the shared one must stay up). */
#define _GNU_SOURCE
#include "fault_util.h"
#include "harness_extra.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct outage {
    struct tx_env env;
    struct fu_cluster pg;
};

static int setup(void **state)
{
    struct outage *o = calloc(1, sizeof(*o));
    *state = o;
    fu_cluster_start(&o->pg);
    o->env.db = strdup(o->pg.url);
    o->env.apikey = th_apikey(o->env.db, "tests");
    snprintf(o->env.auth, sizeof(o->env.auth), "Authorization: Bearer %s", o->env.apikey);
    return 0;
}

static int teardown(void **state)
{
    struct outage *o = *state;
    int status = tx_stop(&o->env);
    if (status != 0)
        fprintf(stderr, "receiver exited %d (log %s)\n", status, o->env.proc.log_path);
    fu_cluster_free(&o->pg);
    free(o->env.db);
    free(o->env.apikey);
    free(o);
    return status == 0 ? 0 : -1;
}

/* ---- a background poster ---- */

#define MAX_POSTS 20000

struct post {
    char *body;
    long status;
    char code[64];
};

struct poster {
    const struct tx_env *env;
    int id;
    atomic_bool stop;
    struct post *posts;
    int count;
};

static char *hook_body(int poster, int n)
{
    char *body = NULL;
    if (asprintf(&body,
                 "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"t\",\"timestamp\":%d,"
                 "\"walletId\":\"ow\",\"deviceId\":\"od\",\"message\":{\"poster\":%d,\"n\":%d}}",
                 n, poster, n) < 0)
        abort();
    return body;
}

static void post_once(const struct tx_env *e, struct post *p)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/webhooks/fireblocks", e->proc.base);
    char *sig = tx_hdr_v1(tx_keys()->v1a, p->body);
    const char *headers[] = {"Content-Type: application/json", sig, NULL};
    struct th_response r;
    if (th_http_try(&r, "POST", url, headers, p->body, strlen(p->body))) {
        p->status = r.status;
        snprintf(p->code, sizeof(p->code), "%s", th_error_code(&r));
        th_response_free(&r);
    } else {
        p->status = 0;
    }
    free(sig);
}

static void *poster_main(void *arg)
{
    struct poster *ps = arg;
    while (!atomic_load(&ps->stop) && ps->count < MAX_POSTS) {
        struct post *p = &ps->posts[ps->count];
        p->body = hook_body(ps->id, ps->count);
        post_once(ps->env, p);
        ps->count++;
        usleep(20000);
    }
    return NULL;
}

static long get_status(const struct tx_env *e, const char *path, char *code, size_t size)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", e->proc.base, path);
    struct th_response r;
    if (!th_http_try(&r, "GET", url, NULL, NULL, 0))
        return 0;
    long status = r.status;
    if (code)
        snprintf(code, size, "%s", r.body ? r.body : "");
    th_response_free(&r);
    return status;
}

static void test_outage_and_recovery(void **state)
{
    struct outage *o = *state;
    struct tx_env *e = &o->env;
    tx_start(e, 0, NULL);
    /* Normal service. */
    for (int i = 0; i < 5; i++) {
        struct post p = {.body = hook_body(99, i)};
        post_once(e, &p);
        if (p.status != 200)
            fail_msg("before the outage: webhook answered %ld %s", p.status, p.code);
        free(p.body);
    }
    assert_int_equal(get_status(e, "/readyz", NULL, 0), 200);
    struct th_response r;
    tx_api(&r, e, "PUT", "/v1/wallets/ow/devices/od",
           "{\"fcmToken\":\"abcdefgh\",\"platform\":\"android\"}");
    tx_assert_status(&r, 201);
    th_response_free(&r);

    struct poster posters[2];
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        posters[i] =
            (struct poster){.env = e, .id = i, .posts = calloc(MAX_POSTS, sizeof(struct post))};
        atomic_init(&posters[i].stop, false);
        pthread_create(&threads[i], NULL, poster_main, &posters[i]);
    }
    usleep(500000);

    /* The database goes away. */
    fu_cluster_stop(&o->pg);
    long deadline = tx_now_ms() + 10000;
    char body[1024];
    long ready;
    while ((ready = get_status(e, "/readyz", body, sizeof(body))) != 503 && tx_now_ms() < deadline)
        usleep(100000);
    if (ready != 503)
        fail_msg("database stopped: /readyz still answers %ld %s after 10 s", ready, body);
    if (!strstr(body, "unavailable") && !strstr(body, "storage_unavailable"))
        fail_msg("/readyz 503 body: %s", body);
    assert_int_equal(get_status(e, "/healthz", NULL, 0), 200);
    struct post p = {.body = hook_body(98, 1)};
    post_once(e, &p);
    if (p.status != 503 || strcmp(p.code, "storage_unavailable") != 0)
        fail_msg("database stopped: webhook answered %ld %s, want 503 storage_unavailable",
                 p.status, p.code);
    free(p.body);
    tx_api(&r, e, "PUT", "/v1/wallets/ow/devices/od2",
           "{\"fcmToken\":\"abcdefgh\",\"platform\":\"android\"}");
    tx_assert_error(&r, 503, "storage_unavailable");
    th_response_free(&r);
    tx_api(&r, e, "POST", "/v1/wallets/ow/devices/od/messages", "{\"payload\":1}");
    tx_assert_error(&r, 503, "storage_unavailable");
    th_response_free(&r);
    sleep(2);

    /* It comes back on the same port; the receiver recovers without a restart. */
    fu_cluster_restart(&o->pg);
    long restarted = tx_now_ms();
    bool recovered = false;
    int n = 0;
    while (!recovered && tx_now_ms() < restarted + 20000) {
        struct post q = {.body = hook_body(97, n++)};
        post_once(e, &q);
        recovered = q.status == 200;
        free(q.body);
        if (!recovered)
            usleep(200000);
    }
    long took = tx_now_ms() - restarted;
    if (!recovered)
        fail_msg("no 200 within 20 s of the database coming back");
    if (took > 10000)
        fail_msg("recovery took %ld ms (want within ~10 s)", took);
    deadline = tx_now_ms() + 10000;
    while ((ready = get_status(e, "/readyz", NULL, 0)) != 200 && tx_now_ms() < deadline)
        usleep(100000);
    assert_int_equal(ready, 200);
    sleep(1);
    for (int i = 0; i < 2; i++) {
        atomic_store(&posters[i].stop, true);
        pthread_join(threads[i], NULL);
    }

    /* Every 200 is stored exactly once; everything else was a 503 storage_unavailable. */
    int ok = 0, unavailable = 0;
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < posters[i].count; k++) {
            struct post *q = &posters[i].posts[k];
            char *lit = tx_lit(q->body);
            long rows = tx_sql_longf(e->db,
                                     "SELECT count(*) FROM mpcpush.webhook_events WHERE"
                                     " raw_body = %s",
                                     lit);
            if (q->status == 200) {
                ok++;
                if (rows != 1)
                    fail_msg("poster %d post %d answered 200 but is stored %ld times", i, k, rows);
            } else if (q->status == 503 && strcmp(q->code, "storage_unavailable") == 0) {
                unavailable++;
                if (rows > 1)
                    fail_msg("poster %d post %d stored %ld times", i, k, rows);
            } else {
                fail_msg("poster %d post %d: answered %ld %s (want 200 or 503"
                         " storage_unavailable)",
                         i, k, q->status, q->code);
            }
            free(lit);
            free(q->body);
        }
        free(posters[i].posts);
    }
    print_message("outage: %d posts answered 200, %d answered 503; recovery took %ld ms\n", ok,
                  unavailable, took);
    assert_true(ok > 0);
    assert_true(unavailable > 0);
    /* Messages follow their events one to one. */
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events e WHERE NOT"
                                        " EXISTS (SELECT 1 FROM mpcpush.messages m WHERE"
                                        " m.event_id = e.id OR (m.wallet_id = 'ow' AND"
                                        " m.payload = (e.raw_body::jsonb -> 'message')))"),
                     0);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) - count(DISTINCT payload) FROM"
                                        " mpcpush.messages"),
                     0);
}

int main(void)
{
    tx_keys();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_outage_and_recovery, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
