/* Long-poll pick-up (GET .../messages?wait=S): a parked request is answered as soon as a
 * message for its device commits, whichever receiver process stored it; it times out empty; it
 * ignores other devices' messages; a thousand of them cost neither threads nor database
 * connections; and SIGTERM answers them before the process exits 0. */
#define _GNU_SOURCE
#include "pickup_util.h"

#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Polls base's long-poll gauge (refreshed every 100 ms or so) until it reads want or timeout_ms
 * passes; returns the last reading. */
static double gauge_settles(const char *base, double want, int timeout_ms)
{
    long deadline = tx_now_ms() + timeout_ms;
    double got;
    while ((got = pu_metric(base, "mpcpush_longpoll_waiters")) != want && tx_now_ms() < deadline)
        usleep(50000);
    return got;
}

/* Drives m until base's long-poll gauge reaches want (or timeout_ms passes); fails otherwise. */
static void wait_parked(struct pu_multi *m, const char *base, double want, int timeout_ms)
{
    long deadline = tx_now_ms() + timeout_ms;
    double got = -1;
    while (tx_now_ms() < deadline) {
        pu_multi_run(m, 100);
        got = pu_metric(base, "mpcpush_longpoll_waiters");
        if (got == want)
            return;
    }
    fail_msg("%s: mpcpush_longpoll_waiters stayed at %g, expected %g (%d of %d requests already "
             "answered)",
             base, got, want, pu_multi_finished(m), pu_multi_count(m));
}

static void messages_path(char *out, size_t size, const char *wallet, const char *device,
                          const char *query)
{
    snprintf(out, size, "/v1/wallets/%.128s/devices/%.128s/messages?%.64s", wallet, device, query);
}

/* Asserts that request i of m answered 200 with exactly the message id (or nothing when id is
 * NULL). */
static void assert_answer(const struct pu_multi *m, int i, const char *id)
{
    json_t *page = pu_multi_json(m, i);
    if (pu_multi_status(m, i) != 200 || !json_is_array(json_object_get(page, "messages")))
        fail_msg("long-poll %d: expected 200 with a page, got %ld: %s", i, pu_multi_status(m, i),
                 pu_multi_body(m, i));
    size_t want = id ? 1 : 0;
    if (pu_count(page) != want || (id && strcmp(pu_id(page, 0), id) != 0))
        fail_msg("long-poll %d: expected %s, got %s", i, id ? id : "no message",
                 pu_multi_body(m, i));
    if (!id && !json_is_null(json_object_get(page, "next")))
        fail_msg("long-poll %d: an empty answer must have next null: %s", i, pu_multi_body(m, i));
    if (id && strcmp(pu_next(page) ? pu_next(page) : "", id) != 0)
        fail_msg("long-poll %d: next should be %s: %s", i, id, pu_multi_body(m, i));
}

/* The second receiver of a test, stopped by teardown_second even when the test fails. */
static struct th_proc second;

static int teardown_second(void **state)
{
    if (second.pid > 0 && th_proc_stop(&second, SIGTERM) != 0)
        fprintf(stderr, "the second receiver did not exit 0 (log %s)\n", second.log_path);
    return tx_teardown(state);
}

static void start_second(struct th_proc *p, const struct tx_env *e, const char *const *extra)
{
    const char *env[8];
    char pub[1200];
    int n = 0;
    snprintf(pub, sizeof(pub), "MPCPUSH_FIREBLOCKS_PUBKEYS=%s", tx_keys()->pubkeys);
    env[n++] = pub;
    for (int i = 0; extra && extra[i] && n < 7; i++)
        env[n++] = extra[i];
    env[n] = NULL;
    th_mpcpush_start(p, "receiver", e->db, env);
}

static void stop_second(struct th_proc *p)
{
    int status = th_proc_stop(p, SIGTERM); /* sets p->pid to 0 */
    if (status != 0)
        fail_msg("the second receiver exited %d after SIGTERM (log %s)", status, p->log_path);
}

/* ---- wakeups ---- */

static void test_wakeup_from_second_receiver(void **state)
{
    struct tx_env *e = *state;
    struct th_proc *const o = &second;
    start_second(o, e, NULL);
    const struct th_proc other = *o;
    pu_register(e, "w-lp", "d1");

    /* An API message stored by the other process answers the poll parked here. */
    struct pu_multi *m = pu_multi_new();
    char path[512];
    messages_path(path, sizeof(path), "w-lp", "d1", "wait=5");
    long started = tx_now_ms();
    int poll = pu_multi_add(m, e, e->proc.base, "GET", path, NULL);
    wait_parked(m, e->proc.base, 1, 3000);
    assert_false(pu_multi_done(m, poll));
    struct tx_env via_other = *e;
    via_other.proc = other;
    char *id = pu_enqueue(&via_other, "w-lp", "d1", "{\"via\":\"other\"}", 0);
    long committed = tx_now_ms();
    assert_int_equal(pu_multi_wait(m, poll, poll + 1, 6000), 1);
    assert_answer(m, poll, id);
    long late = pu_multi_done_at(m, poll) - committed;
    if (late > 1000)
        fail_msg("the long-poll answered %ld ms after the other receiver committed", late);
    if (pu_multi_done_at(m, poll) - started >= 5000)
        fail_msg("the long-poll ran into its wait instead of being woken");
    json_t *payload = json_object_get(
        json_array_get(json_object_get(pu_multi_json(m, poll), "messages"), 0), "payload");
    char *text = json_dumps(payload, JSON_COMPACT);
    tx_assert_json_eq(text, "{\"via\":\"other\"}");
    free(text);

    /* A webhook for a device that never registered, taken in by the other process. */
    messages_path(path, sizeof(path), "w-lp", "stranger", "wait=5");
    poll = pu_multi_add(m, e, e->proc.base, "GET", path, NULL);
    wait_parked(m, e->proc.base, 1, 3000);
    pu_webhook_message(other.base, "w-lp", "stranger", "{\"mpc\":\"from-fireblocks\"}");
    committed = tx_now_ms();
    assert_int_equal(pu_multi_wait(m, poll, poll + 1, 6000), 1);
    late = pu_multi_done_at(m, poll) - committed;
    json_t *page = pu_multi_json(m, poll);
    if (pu_multi_status(m, poll) != 200 || pu_count(page) != 1)
        fail_msg("long-poll for the webhook: %ld %s", pu_multi_status(m, poll),
                 pu_multi_body(m, poll));
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(page, "messages"), 0), "source")),
                        "webhook");
    if (late > 1000)
        fail_msg("the long-poll answered %ld ms after the webhook was accepted", late);

    /* And the other way round: a poll parked on the other process (after the message it has
     * seen), a message stored here. */
    char query[64];
    snprintf(query, sizeof(query), "after=%s&wait=5", id);
    messages_path(path, sizeof(path), "w-lp", "d1", query);
    poll = pu_multi_add(m, e, other.base, "GET", path, NULL);
    wait_parked(m, other.base, 1, 3000);
    char *id2 = pu_enqueue(e, "w-lp", "d1", "{\"via\":\"first\"}", 0);
    committed = tx_now_ms();
    assert_int_equal(pu_multi_wait(m, poll, poll + 1, 6000), 1);
    assert_answer(m, poll, id2);
    late = pu_multi_done_at(m, poll) - committed;
    if (late > 1000)
        fail_msg("the long-poll on the other receiver answered %ld ms after the commit", late);
    pu_multi_free(m);
    free(id);
    free(id2);
    stop_second(o);
}

static void test_timeout_answers_empty(void **state)
{
    struct tx_env *e = *state;
    pu_register(e, "w-to", "d");
    json_t *page;
    long t0 = tx_now_ms();
    page = pu_fetch(e, "w-to", "d", "wait=1");
    long took = tx_now_ms() - t0;
    assert_int_equal(pu_count(page), 0);
    assert_null(pu_next(page));
    json_decref(page);
    if (took < 1000 || took >= 3000)
        fail_msg("wait=1 with nothing pending answered after %ld ms (want 1000..3000)", took);

    /* Messages at or before `after` do not count: still a timeout. */
    char *id = pu_enqueue(e, "w-to", "d", "{\"old\":1}", 0);
    char query[64];
    snprintf(query, sizeof(query), "after=%s&wait=1", id);
    t0 = tx_now_ms();
    page = pu_fetch(e, "w-to", "d", query);
    took = tx_now_ms() - t0;
    assert_int_equal(pu_count(page), 0);
    json_decref(page);
    if (took < 1000 || took >= 3000)
        fail_msg("wait=1 after the last message answered after %ld ms (want 1000..3000)", took);

    /* A message already pending answers a long wait at once. */
    t0 = tx_now_ms();
    page = pu_fetch(e, "w-to", "d", "wait=20");
    took = tx_now_ms() - t0;
    assert_int_equal(pu_count(page), 1);
    assert_string_equal(pu_id(page, 0), id);
    json_decref(page);
    if (took > 1000)
        fail_msg("wait=20 with a message pending took %ld ms", took);
    /* Nothing parked is left behind. */
    assert_int_equal((long)gauge_settles(e->proc.base, 0, 1000), 0);
    free(id);
}

static void test_other_devices_do_not_answer(void **state)
{
    struct tx_env *e = *state;
    /* Neighbours whose "wallet/device" contains or extends ours. */
    const char *neighbours[][2] = {{"w", "ab"}, {"xw", "a"}, {"w", "a-"}, {"w-a", "a"}, {"w", "b"}};
    pu_register(e, "w", "a");
    for (size_t i = 0; i < sizeof(neighbours) / sizeof(neighbours[0]); i++)
        pu_register(e, neighbours[i][0], neighbours[i][1]);
    struct pu_multi *m = pu_multi_new();
    char path[512];
    messages_path(path, sizeof(path), "w", "a", "wait=8");
    long started = tx_now_ms();
    int poll = pu_multi_add(m, e, e->proc.base, "GET", path, NULL);
    wait_parked(m, e->proc.base, 1, 3000);
    for (size_t i = 0; i < sizeof(neighbours) / sizeof(neighbours[0]); i++)
        free(pu_enqueue(e, neighbours[i][0], neighbours[i][1], "{\"for\":\"neighbour\"}", 0));
    pu_webhook_message(e->proc.base, "w", "c", "{\"for\":\"unregistered neighbour\"}");
    pu_multi_run(m, 1500);
    if (pu_multi_done(m, poll))
        fail_msg("the long-poll for w/a was answered by other devices' messages: %ld %s",
                 pu_multi_status(m, poll), pu_multi_body(m, poll));
    assert_int_equal((long)pu_metric(e->proc.base, "mpcpush_longpoll_waiters"), 1);

    char *id = pu_enqueue(e, "w", "a", "{\"for\":\"w/a\"}", 0);
    long committed = tx_now_ms();
    assert_int_equal(pu_multi_wait(m, poll, poll + 1, 8000), 1);
    assert_answer(m, poll, id);
    if (pu_multi_done_at(m, poll) - committed > 1000 || pu_multi_done_at(m, poll) - started >= 8000)
        fail_msg("the long-poll answered %ld ms after its message",
                 pu_multi_done_at(m, poll) - committed);
    pu_multi_free(m);
    free(id);
}

/* Parked longer than the idle timeout: still answered, with a message or empty. */
static void test_wait_longer_than_idle_timeout(void **state)
{
    struct tx_env *e = *state;
    const char *extra[] = {"MPCPUSH_IDLE_TIMEOUT=1", NULL};
    tx_start(e, 0, extra);
    pu_register(e, "w-idle", "d");
    struct pu_multi *m = pu_multi_new();
    char path[512];
    messages_path(path, sizeof(path), "w-idle", "d", "wait=3");
    long t0 = tx_now_ms();
    int empty = pu_multi_add(m, e, e->proc.base, "GET", path, NULL);
    messages_path(path, sizeof(path), "w-idle", "d", "wait=6");
    int woken = pu_multi_add(m, e, e->proc.base, "GET", path, NULL);
    wait_parked(m, e->proc.base, 2, 3000);
    assert_int_equal(pu_multi_wait(m, empty, empty + 1, 6000), 1);
    long took = pu_multi_done_at(m, empty) - t0;
    assert_answer(m, empty, NULL);
    if (took < 2900 || took > 5000)
        fail_msg("wait=3 answered after %ld ms", took);
    pu_multi_run(m, 800); /* the other one is parked for longer than the idle timeout now */
    assert_false(pu_multi_done(m, woken));
    char *id = pu_enqueue(e, "w-idle", "d", "{\"late\":true}", 0);
    assert_int_equal(pu_multi_wait(m, woken, woken + 1, 6000), 1);
    assert_answer(m, woken, id);
    pu_multi_free(m);
    free(id);
}

/* A wallet-wide message wakes the polls of the wallet's devices, however long their ids. */
static void test_wallet_message_wakes_long_ids(void **state)
{
    struct tx_env *e = *state;
    enum { N = 40 };
    char wallet[129], devices[N][129];
    memset(wallet, 'W', 128);
    wallet[128] = '\0';
    for (int i = 0; i < N; i++) {
        memset(devices[i], 'd', 128);
        snprintf(devices[i] + 120, 9, "%08d", i);
        pu_register(e, wallet, devices[i]);
    }
    struct pu_multi *m = pu_multi_new();
    for (int i = 0; i < N; i++) {
        char path[512];
        messages_path(path, sizeof(path), wallet, devices[i], "wait=10");
        pu_multi_add(m, e, e->proc.base, "GET", path, NULL);
    }
    wait_parked(m, e->proc.base, N, 5000);
    char path[256];
    snprintf(path, sizeof(path), "/v1/wallets/%s/messages", wallet);
    struct th_response r;
    tx_api(&r, e, "POST", path, "{\"payload\":{\"wallet\":\"wide\"}}");
    long committed = tx_now_ms();
    if (r.status != 201)
        fail_msg("a wallet-wide message to %d devices with 128-character ids: expected 201, got "
                 "%ld: %s (log %s)",
                 N, r.status, r.body, e->proc.log_path);
    json_t *made = json_object_get(r.json, "messages");
    assert_int_equal(json_array_size(made), N);
    assert_int_equal(pu_multi_wait(m, 0, N, 8000), N);
    for (int i = 0; i < N; i++) {
        const char *id = NULL;
        for (size_t k = 0; k < json_array_size(made); k++)
            if (strcmp(json_string_value(json_object_get(json_array_get(made, k), "deviceId")),
                       devices[i]) == 0)
                id = json_string_value(json_object_get(json_array_get(made, k), "id"));
        assert_non_null(id);
        assert_answer(m, i, id);
        if (pu_multi_done_at(m, i) - committed > 2000)
            fail_msg("device %d answered %ld ms after the commit", i,
                     pu_multi_done_at(m, i) - committed);
    }
    th_response_free(&r);
    pu_multi_free(m);
}

/* Two receivers commit messages for one device out of id order: receiver A has drawn the ids of
 * a wallet-wide wakeup (a Fireblocks transaction event fanned out to every device of the wallet)
 * but its commit is held up (another session holds the push row of one of the wallet's devices,
 * as a dispatcher's claim or a concurrent ingest does), while receiver B stores a newer message
 * for device d-b and commits first. The device fetches and acknowledges
 * up to that newer id, then long-polls after it. When A's message commits it is pending for
 * d-b: the device must still be woken for it and its long-poll must get it. */
static void test_out_of_order_commits_across_receivers(void **state)
{
    struct tx_env *e = *state;
    struct th_proc *const o = &second;
    start_second(o, e, NULL);
    pu_register(e, "w-ooo", "d-a");
    pu_register(e, "w-ooo", "d-b");
    /* Start from a clean slate: both devices have a push row, nothing owed. */
    char body[128];
    for (int i = 0; i < 2; i++) {
        const char *d = i ? "d-b" : "d-a";
        char *id = pu_enqueue(e, "w-ooo", d, "{\"warm\":1}", 0);
        snprintf(body, sizeof(body), "{\"upTo\":\"%s\"}", id);
        assert_int_equal(pu_ack(e, "w-ooo", d, body), 1);
        free(id);
    }

    PGconn *holder = PQconnectdb(e->db);
    assert_int_equal(PQstatus(holder), CONNECTION_OK);
    PQclear(PQexec(holder, "BEGIN"));
    PGresult *res = PQexec(holder, "SELECT 1 FROM mpcpush.pushes WHERE wallet_id = 'w-ooo'"
                                   " AND device_id = 'd-a' FOR UPDATE");
    assert_int_equal(PQntuples(res), 1);
    PQclear(res);

    /* A: the wallet-wide wakeup (ids drawn, commit waiting for the row). */
    struct pu_multi *m = pu_multi_new();
    const char *event = "{\"type\":\"NCW_TRANSACTION_STATUS_UPDATED\",\"tenantId\":\"t\","
                        "\"timestamp\":1700000000123,\"data\":{\"walletId\":\"w-ooo\","
                        "\"id\":\"tx-1\",\"status\":\"PENDING_SIGNATURE\"}}";
    char url[256], *sig = tx_hdr_v1(tx_keys()->v1a, event);
    snprintf(url, sizeof(url), "%s/webhooks/fireblocks", e->proc.base);
    const char *hook_headers[] = {"Content-Type: application/json", sig, NULL};
    int wide = pu_multi_add_raw(m, url, "POST", hook_headers, event);
    free(sig);
    long deadline = tx_now_ms() + 5000;
    while (tx_now_ms() < deadline &&
           th_sql_long(e->db, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type ="
                              " 'Lock' AND datname = current_database()") == 0)
        pu_multi_run(m, 50);
    if (pu_multi_done(m, wide))
        fail_msg("the wallet-wide wakeup did not wait for the locked push row: %ld %s",
                 pu_multi_status(m, wide), pu_multi_body(m, wide));
    /* B: a newer message for d-b. */
    int b = pu_multi_add(m, e, o->base, "POST", "/v1/wallets/w-ooo/devices/d-b/messages",
                         "{\"payload\":{\"from\":\"B\"}}");
    if (pu_multi_wait(m, b, b + 1, 3000) == 0) {
        /* B waits for A: the receivers commit messages in id order, so nothing can be
         * overtaken. Let both finish and check that both are pending and queued. */
        PQclear(PQexec(holder, "COMMIT"));
        PQfinish(holder);
        assert_int_equal(pu_multi_wait(m, 0, 2, 10000), 2);
        assert_int_equal(pu_multi_status(m, wide), 200);
        assert_int_equal(pu_multi_status(m, b), 201);
        assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pending_messages"
                                            " WHERE device_id = 'd-b' AND push_state = 'queued'"),
                         2);
        pu_multi_free(m);
        stop_second(o);
        return;
    }
    if (pu_multi_status(m, b) != 201)
        fail_msg("enqueue through B: %ld %s", pu_multi_status(m, b), pu_multi_body(m, b));
    char *newer = strdup(json_string_value(json_object_get(pu_multi_json(m, b), "id")));
    /* B committed first; the device takes its message and acknowledges it. */
    json_t *page = pu_fetch(e, "w-ooo", "d-b", NULL);
    assert_int_equal(pu_count(page), 1);
    assert_string_equal(pu_id(page, 0), newer);
    json_decref(page);
    snprintf(body, sizeof(body), "{\"upTo\":\"%s\"}", newer);
    assert_int_equal(pu_ack(e, "w-ooo", "d-b", body), 1);
    char path[256], query[64];
    snprintf(query, sizeof(query), "after=%s&wait=5", newer);
    messages_path(path, sizeof(path), "w-ooo", "d-b", query);
    int poll = pu_multi_add(m, e, e->proc.base, "GET", path, NULL);
    pu_multi_run(m, 500);

    /* A commits. */
    PQclear(PQexec(holder, "COMMIT"));
    PQfinish(holder);
    assert_int_equal(pu_multi_wait(m, wide, wide + 1, 5000), 1);
    if (pu_multi_status(m, wide) != 200)
        fail_msg("wallet-wide wakeup: %ld %s", pu_multi_status(m, wide), pu_multi_body(m, wide));
    char *older_text = th_sql_text(e->db, "SELECT id::text FROM mpcpush.messages"
                                          " WHERE wallet_id = 'w-ooo' AND device_id = 'd-b'"
                                          " AND source = 'event'");
    assert_non_null(older_text);
    const char *older = older_text;
    if (pu_num(older) >= pu_num(newer))
        skip(); /* the ids came out in commit order after all: nothing to show */

    /* It is pending for d-b (a fresh fetch from the start shows it) ... */
    page = pu_fetch(e, "w-ooo", "d-b", NULL);
    assert_int_equal(pu_count(page), 1);
    assert_string_equal(pu_id(page, 0), older);
    json_decref(page);
    /* ... so a wakeup is owed for it ... */
    char *push_state = tx_sql_textf(e->db,
                                    "SELECT push_state FROM mpcpush.pending_messages"
                                    " WHERE message_id = %s",
                                    older);
    char *owed = th_sql_text(e->db, "SELECT (wanted_id > covered_id)::text FROM mpcpush.pushes"
                                    " WHERE wallet_id = 'w-ooo' AND device_id = 'd-b'");
    /* ... and the long-poll waiting after the acknowledged id gets it. */
    pu_multi_wait(m, poll, poll + 1, 7000);
    char *poll_body = strdup(pu_multi_body(m, poll));
    bool poll_got = pu_multi_status(m, poll) == 200 && pu_count(pu_multi_json(m, poll)) == 1;
    pu_multi_free(m);
    if (strcmp(push_state, "queued") != 0 || strcmp(owed, "true") != 0 || !poll_got)
        fail_msg("message %s (committed after %s was acknowledged) is pending for w-ooo/d-b but: "
                 "pending_messages.push_state=%s (want queued), wakeup owed=%s (want true), the "
                 "long-poll after=%s answered %s (want the message)",
                 older, newer, push_state, owed, newer, poll_body);
    free(push_state);
    free(owed);
    free(poll_body);
    free(newer);
    free(older_text);
    stop_second(o);
}

/* ---- a thousand parked polls ---- */

#define MANY 1000

static void register_many(const struct tx_env *e, const char *wallet, int n)
{
    enum { CHUNK = 200 };
    static struct tx_call calls[CHUNK];
    static char bodies[CHUNK][128];
    for (int from = 0; from < n; from += CHUNK) {
        int k = n - from < CHUNK ? n - from : CHUNK;
        for (int i = 0; i < k; i++) {
            memset(&calls[i], 0, sizeof(calls[i]));
            calls[i].method = "PUT";
            snprintf(calls[i].url, sizeof(calls[i].url), "%s/v1/wallets/%s/devices/d%04d",
                     e->proc.base, wallet, from + i);
            snprintf(bodies[i], sizeof(bodies[i]),
                     "{\"fcmToken\":\"tok-d%04d-APA91b0123456789\",\"platform\":\"ios\"}",
                     from + i);
            calls[i].headers[0] = e->auth;
            calls[i].headers[1] = "Content-Type: application/json";
            calls[i].body = bodies[i];
            calls[i].len = strlen(bodies[i]);
        }
        tx_http_parallel(calls, k);
        for (int i = 0; i < k; i++)
            if (calls[i].status != 201 && calls[i].status != 200)
                fail_msg("registering device %d: %ld %s", from + i, calls[i].status, calls[i].resp);
        tx_calls_free(calls, k);
    }
}

/* Threads and database sessions while the polls wait: both must stay small. */
static void sample_costs(struct pu_multi *m, const struct tx_env *e, long *max_threads,
                         long *max_sessions)
{
    for (int s = 0; s < 5; s++) {
        pu_multi_run(m, 300);
        long t = pu_proc_threads(e->proc.pid), c = pu_db_sessions(e->db);
        *max_threads = t > *max_threads ? t : *max_threads;
        *max_sessions = c > *max_sessions ? c : *max_sessions;
    }
    if (pu_multi_finished(m) != 0)
        fail_msg("%d long-polls were answered while nothing was sent", pu_multi_finished(m));
}

/* The receiver for the tests with a thousand devices: they all speak from this one test address,
 * so the per-address rate limit (meant for one client) is off. */
static int setup_many(void **state)
{
    tx_setup_db(state);
    const char *extra[] = {"MPCPUSH_RATE_LIMIT_PER_MINUTE=0", NULL};
    tx_start(*state, 0, extra);
    return 0;
}

static void test_thousand_parked_polls(void **state)
{
    struct tx_env *e = *state;
    pu_raise_fd_limit(4 * MANY + 256);
    register_many(e, "w-k", MANY);

    /* Round 1: a thousand polls wait; one wallet-wide message gives each device one. */
    struct pu_multi *m = pu_multi_new();
    for (int i = 0; i < MANY; i++) {
        char path[128];
        snprintf(path, sizeof(path), "/v1/wallets/w-k/devices/d%04d/messages?wait=20", i);
        pu_multi_add(m, e, e->proc.base, "GET", path, NULL);
    }
    long t_start = tx_now_ms();
    wait_parked(m, e->proc.base, MANY, 12000);
    long parked_ms = tx_now_ms() - t_start;
    long max_threads = 0, max_sessions = 0;
    sample_costs(m, e, &max_threads, &max_sessions);
    print_message("%d polls parked in %ld ms; the receiver had at most %ld threads and %ld "
                  "database sessions while they waited\n",
                  MANY, parked_ms, max_threads, max_sessions);
    if (max_threads >= 40)
        fail_msg("the receiver ran %ld threads with %d long-polls parked", max_threads, MANY);
    if (max_sessions >= 30)
        fail_msg("the database had %ld sessions with %d long-polls parked", max_sessions, MANY);

    struct th_response r;
    long t0 = tx_now_ms();
    tx_api(&r, e, "POST", "/v1/wallets/w-k/messages", "{\"payload\":{\"round\":1}}");
    tx_assert_status(&r, 201);
    json_t *made = json_object_get(r.json, "messages");
    assert_int_equal(json_array_size(made), MANY);
    static char first_ids[MANY][24];
    for (size_t k = 0; k < json_array_size(made); k++) {
        json_t *item = json_array_get(made, k);
        int d = atoi(json_string_value(json_object_get(item, "deviceId")) + 1);
        assert_true(d >= 0 && d < MANY);
        snprintf(first_ids[d], sizeof(first_ids[d]), "%s",
                 json_string_value(json_object_get(item, "id")));
    }
    th_response_free(&r);
    int answered = pu_multi_wait(m, 0, MANY, 15000);
    long slowest = 0;
    for (int i = 0; i < MANY; i++)
        if (pu_multi_done(m, i) && pu_multi_done_at(m, i) - t0 > slowest)
            slowest = pu_multi_done_at(m, i) - t0;
    print_message("wallet-wide message: %d of %d polls answered, the last %ld ms after the POST "
                  "started\n",
                  answered, MANY, slowest);
    assert_int_equal(answered, MANY);
    for (int i = 0; i < MANY; i++)
        assert_answer(m, i, first_ids[i]);
    if (slowest > 5000)
        fail_msg("the last of %d polls answered %ld ms after the wallet-wide message", MANY,
                 slowest);
    pu_multi_free(m);

    /* Round 2: a thousand polls after those ids; a message enqueued to each device (100 at a
     * time) answers each with its own. */
    m = pu_multi_new();
    for (int i = 0; i < MANY; i++) {
        char path[160];
        snprintf(path, sizeof(path), "/v1/wallets/w-k/devices/d%04d/messages?after=%.23s&wait=20",
                 i, first_ids[i]);
        pu_multi_add(m, e, e->proc.base, "GET", path, NULL);
    }
    wait_parked(m, e->proc.base, MANY, 12000);
    sample_costs(m, e, &max_threads, &max_sessions);
    if (max_threads >= 40 || max_sessions >= 30)
        fail_msg("round 2: %ld threads, %ld database sessions with %d polls parked", max_threads,
                 max_sessions, MANY);
    t0 = tx_now_ms();
    enum { CHUNK = 100 };
    for (int from = 0; from < MANY; from += CHUNK) {
        int first = pu_multi_count(m);
        for (int i = from; i < from + CHUNK; i++) {
            char path[128], body[64];
            snprintf(path, sizeof(path), "/v1/wallets/w-k/devices/d%04d/messages", i);
            snprintf(body, sizeof(body), "{\"payload\":{\"device\":\"d%04d\"}}", i);
            pu_multi_add(m, e, e->proc.base, "POST", path, body);
        }
        if (pu_multi_wait(m, first, first + CHUNK, 15000) != CHUNK)
            fail_msg("enqueueing messages %d..%d did not finish", from, from + CHUNK - 1);
        for (int i = first; i < first + CHUNK; i++)
            if (pu_multi_status(m, i) != 201)
                fail_msg("enqueue %d: %ld %s", i - first + from, pu_multi_status(m, i),
                         pu_multi_body(m, i));
    }
    long posted = tx_now_ms() - t0;
    answered = pu_multi_wait(m, 0, MANY, 15000);
    slowest = 0;
    for (int i = 0; i < MANY; i++)
        if (pu_multi_done(m, i) && pu_multi_done_at(m, i) - t0 > slowest)
            slowest = pu_multi_done_at(m, i) - t0;
    print_message("per-device messages: posted in %ld ms; %d of %d polls answered, the last %ld ms "
                  "after the first POST\n",
                  posted, answered, MANY, slowest);
    assert_int_equal(answered, MANY);
    for (int i = 0; i < MANY; i++) {
        json_t *page = pu_multi_json(m, i);
        char want[64];
        snprintf(want, sizeof(want), "{\"device\":\"d%04d\"}", i);
        if (pu_multi_status(m, i) != 200 || pu_count(page) != 1)
            fail_msg("poll %d: %ld %s", i, pu_multi_status(m, i), pu_multi_body(m, i));
        char *got = json_dumps(
            json_object_get(json_array_get(json_object_get(page, "messages"), 0), "payload"),
            JSON_COMPACT);
        tx_assert_json_eq(got, want);
        free(got);
        /* the message that answered it is the one enqueued to it */
        assert_true(pu_num(pu_id(page, 0)) > pu_num(first_ids[i]));
    }
    if (slowest > posted + 5000)
        fail_msg("the last poll answered %ld ms after the first POST (posting took %ld ms)",
                 slowest, posted);
    pu_multi_free(m);
    assert_int_equal((long)gauge_settles(e->proc.base, 0, 1000), 0);
}

/* ---- shutdown ---- */

/* Sends SIGTERM to e's receiver and waits up to timeout_ms for its exit status (-1: none). */
static int sigterm(struct tx_env *e, int timeout_ms, long *sent_at)
{
    *sent_at = tx_now_ms();
    kill(e->proc.pid, SIGTERM);
    int status = pu_wait_exit(e->proc.pid, timeout_ms);
    if (status < 0) {
        kill(e->proc.pid, SIGKILL);
        pu_wait_exit(e->proc.pid, 5000);
    }
    e->running = false;
    e->proc.pid = 0;
    return status;
}

static void test_sigterm_answers_parked_polls(void **state)
{
    struct tx_env *e = *state;
    pu_raise_fd_limit(4 * MANY + 256);
    pu_register(e, "w-term", "d");
    struct pu_multi *m = pu_multi_new();
    for (int i = 0; i < MANY; i++) {
        char path[128], device[32];
        /* half on one registered device, half on as many that never registered */
        snprintf(device, sizeof(device), i % 2 ? "d" : "unregistered-%d", i);
        snprintf(path, sizeof(path), "/v1/wallets/w-term/devices/%s/messages?wait=30", device);
        pu_multi_add(m, e, e->proc.base, "GET", path, NULL);
    }
    wait_parked(m, e->proc.base, MANY, 10000);
    long t0 = tx_now_ms();
    kill(e->proc.pid, SIGTERM);
    int answered = pu_multi_wait(m, 0, MANY, 10000);
    int status = pu_wait_exit(e->proc.pid, 15000);
    long exited = tx_now_ms() - t0;
    e->running = false;
    if (status < 0) {
        kill(e->proc.pid, SIGKILL);
        pu_wait_exit(e->proc.pid, 5000);
    }
    e->proc.pid = 0;
    print_message("SIGTERM with %d polls parked: %d answered, exit status %d after %ld ms\n", MANY,
                  answered, status, exited);
    assert_int_equal(answered, MANY);
    long slowest = 0;
    for (int i = 0; i < MANY; i++) {
        assert_answer(m, i, NULL);
        long took = pu_multi_done_at(m, i) - t0;
        slowest = took > slowest ? took : slowest;
    }
    if (slowest > 3000)
        fail_msg("parked polls were answered up to %ld ms after SIGTERM", slowest);
    if (status != 0)
        fail_msg("the receiver exited %d after SIGTERM with polls parked (log %s)", status,
                 e->proc.log_path);
    if (exited > 5000)
        fail_msg("the receiver took %ld ms to exit after SIGTERM", exited);
    pu_multi_free(m);
}

/* Clients that hang up while parked (an app sent to the background): nothing leaks, the server
 * keeps serving, and it still shuts down cleanly with their polls parked. */
static void test_abandoned_polls(void **state)
{
    struct tx_env *e = *state;
    enum { N = 200 };
    pu_register(e, "w-gone", "d");
    struct pu_multi *m = pu_multi_new();
    for (int i = 0; i < N; i++) {
        char path[128];
        snprintf(path, sizeof(path), "/v1/wallets/w-gone/devices/d%d/messages?wait=2", i);
        pu_multi_add(m, e, e->proc.base, "GET", path, NULL);
    }
    wait_parked(m, e->proc.base, N, 5000);
    pu_multi_free(m); /* hang up */
    /* By their deadline they are gone from the registry. */
    double left = gauge_settles(e->proc.base, 0, 4000);
    if (left != 0)
        fail_msg("%g abandoned long-polls are still registered after their wait ran out", left);
    /* Messages for the devices whose clients left are kept for the next visit. */
    free(pu_enqueue(e, "w-gone", "d", "{\"after\":\"hang-ups\"}", 0));
    json_t *page = pu_fetch(e, "w-gone", "d", "wait=5");
    assert_int_equal(pu_count(page), 1);
    json_decref(page);

    /* Hang up on long waits, then stop the process: it exits 0, promptly. */
    m = pu_multi_new();
    for (int i = 0; i < N; i++) {
        char path[128];
        snprintf(path, sizeof(path), "/v1/wallets/w-gone/devices/x%d/messages?wait=60", i);
        pu_multi_add(m, e, e->proc.base, "GET", path, NULL);
    }
    wait_parked(m, e->proc.base, N, 5000);
    pu_multi_free(m);
    long sent;
    int status = sigterm(e, 15000, &sent);
    long took = tx_now_ms() - sent;
    if (status != 0 || took > 5000)
        fail_msg("with %d abandoned polls parked, SIGTERM: exit status %d after %ld ms (log %s)", N,
                 status, took, e->proc.log_path);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, tx_setup, tx_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wakeup_from_second_receiver, tx_setup,
                                        teardown_second),
        T(test_timeout_answers_empty),
        T(test_other_devices_do_not_answer),
        cmocka_unit_test_setup_teardown(test_wait_longer_than_idle_timeout, tx_setup_db,
                                        tx_teardown),
        T(test_wallet_message_wakes_long_ids),
        cmocka_unit_test_setup_teardown(test_out_of_order_commits_across_receivers, tx_setup,
                                        teardown_second),
        cmocka_unit_test_setup_teardown(test_thousand_parked_polls, setup_many, tx_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_answers_parked_polls, setup_many, tx_teardown),
        T(test_abandoned_polls),
    };
    if (getenv("MPCPUSH_TEST_FILTER")) /* e.g. "*thousand*" */
        cmocka_set_test_filter(getenv("MPCPUSH_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
