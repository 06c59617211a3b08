/* The dispatcher end to end, black-box: real `mpcpush` processes, a real PostgreSQL and the FCM
 * emulator. A webhook or API message becomes exactly one data-only wakeup with the documented
 * fields; the OAuth token is reused; bursts are coalesced; two dispatchers on one database wake
 * every device once; acknowledged messages need no wakeup; a row the claim cursor has passed is
 * still found; every NOTIFY wakes a worker. Tests that only read use the shared fixture emulator
 * and look at their own tokens only; the others start their own. */
#define _GNU_SOURCE
#include "emulator_util.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The newest message id of a device, as text (caller frees). */
static char *latest_id(const char *db, const char *wallet, const char *device)
{
    char *id = tx_sql_textf(db,
                            "SELECT max(id)::text FROM mpcpush.messages WHERE wallet_id = '%s'"
                            " AND device_id = '%s'",
                            wallet, device);
    if (!id)
        fail_msg("no message stored for %s/%s", wallet, device);
    return id;
}

/* Waits until the push row of the device is 'sent' and covers its newest message. */
static void wait_sent(const char *db, const char *wallet, const char *device, int timeout_ms)
{
    long ok = eu_wait_sql(db, 1, timeout_ms,
                          "SELECT count(*) FROM mpcpush.pushes p WHERE p.wallet_id = '%s' AND"
                          " p.device_id = '%s' AND p.state = 'sent' AND p.lease_id IS NULL AND"
                          " p.covered_id >= (SELECT max(id) FROM mpcpush.messages m WHERE"
                          " m.wallet_id = p.wallet_id AND m.device_id = p.device_id)",
                          wallet, device);
    if (ok != 1) {
        char *row = tx_sql_textf(db,
                                 "SELECT row_to_json(p)::text FROM mpcpush.pushes p WHERE"
                                 " wallet_id = '%s' AND device_id = '%s'",
                                 wallet, device);
        fail_msg("push of %s/%s not sent within %d ms: %s", wallet, device, timeout_ms,
                 row ? row : "(no row)");
    }
}

/* Exactly one record for token within timeout_ms (and none more a little later); returns it
 * (decref). */
static json_t *one_record(const struct eu_emulator *emu, const char *token, int timeout_ms)
{
    if (eu_wait_records(emu, token, 1, timeout_ms) < 1)
        fail_msg("no wakeup reached the emulator for %s within %d ms", token, timeout_ms);
    usleep(500000);
    json_t *list = eu_records(emu, token);
    if (json_array_size(list) != 1) {
        char *text = json_dumps(list, JSON_COMPACT);
        fail_msg("expected exactly one wakeup for %s, got %zu: %.2000s", token,
                 json_array_size(list), text);
    }
    json_t *rec = json_incref(json_array_get(list, 0));
    json_decref(list);
    return rec;
}

/* ---- 1. end to end ---- */

static void check_data(const json_t *rec, const char *wallet, const char *device,
                       const char *pending, const char *latest)
{
    assert_string_equal(eu_data(rec, "type"), "mpcpush.wakeup");
    assert_string_equal(eu_data(rec, "walletId"), wallet);
    assert_string_equal(eu_data(rec, "deviceId"), device);
    assert_string_equal(eu_data(rec, "pending"), pending);
    assert_string_equal(eu_data(rec, "latestId"), latest);
    json_t *msg = json_object_get(rec, "message");
    assert_null(json_object_get(msg, "notification")); /* data-only */
    char *text = json_dumps(rec, JSON_COMPACT);
    assert_null(strstr(text, "secret-mpc-payload")); /* the payload never rides in the push */
    free(text);
}

static void check_db_sent(const char *db, const char *wallet, const char *device, const json_t *rec)
{
    wait_sent(db, wallet, device, 5000);
    char *name = tx_sql_textf(db,
                              "SELECT fcm_message_name FROM mpcpush.pushes WHERE wallet_id = '%s'"
                              " AND device_id = '%s' AND attempts = 0 AND last_error IS NULL",
                              wallet, device);
    assert_non_null(name);
    assert_string_equal(name, json_string_value(json_object_get(rec, "name")));
    free(name);
    assert_int_equal(tx_sql_longf(db,
                                  "SELECT count(*) FROM mpcpush.devices JOIN mpcpush.pushes"
                                  " USING (wallet_id, device_id) WHERE wallet_id = '%s'"
                                  " AND device_id = '%s' AND last_sent_at IS NOT NULL AND"
                                  " last_sent_at > now() - interval '1 minute' AND"
                                  " token_status = 'active'",
                                  wallet, device),
                     1);
}

static void test_end_to_end_webhook_android_and_ios(void **state)
{
    struct eu_env *env = *state;
    eu_shared(&env->emu);
    const char *extra[] = {"MPCPUSH_MESSAGE_TTL=600", NULL};
    eu_start_mpcpush(&env->t, "run", &env->emu, extra);
    char tok_a[128], tok_i[128];
    eu_token(tok_a, sizeof(tok_a), "e2e-android", 0);
    eu_token(tok_i, sizeof(tok_i), "e2e-ios", 0);
    eu_register(&env->t, "w-e2e", "phone", tok_a, "android");
    eu_register(&env->t, "w-e2e", "tablet", tok_i, "ios");
    pu_webhook_message(env->t.proc.base, "w-e2e", "phone", "{\"mpc\":\"secret-mpc-payload\"}");
    pu_webhook_message(env->t.proc.base, "w-e2e", "tablet", "{\"mpc\":\"secret-mpc-payload\"}");
    char *id_a = latest_id(env->t.db, "w-e2e", "phone");
    char *id_i = latest_id(env->t.db, "w-e2e", "tablet");

    json_t *ra = one_record(&env->emu, tok_a, 10000);
    check_data(ra, "w-e2e", "phone", "1", id_a);
    json_t *android = json_object_get(json_object_get(ra, "message"), "android");
    assert_string_equal(json_string_value(json_object_get(android, "priority")), "HIGH");
    const char *ttl = json_string_value(json_object_get(android, "ttl"));
    assert_non_null(ttl);
    char *end = NULL;
    long secs = strtol(ttl, &end, 10);
    assert_string_equal(end, "s");
    if (secs < 590 || secs > 600)
        fail_msg("android.ttl %s: expected about MPCPUSH_MESSAGE_TTL=600 s", ttl);
    const char *collapse = json_string_value(json_object_get(android, "collapse_key"));
    assert_true(collapse && collapse[0]);
    assert_null(json_object_get(json_object_get(ra, "message"), "apns"));

    json_t *ri = one_record(&env->emu, tok_i, 10000);
    check_data(ri, "w-e2e", "tablet", "1", id_i);
    json_t *apns = json_object_get(json_object_get(ri, "message"), "apns");
    json_t *headers = json_object_get(apns, "headers");
    assert_string_equal(json_string_value(json_object_get(headers, "apns-push-type")),
                        "background");
    assert_string_equal(json_string_value(json_object_get(headers, "apns-priority")), "5");
    const char *cid = json_string_value(json_object_get(headers, "apns-collapse-id"));
    assert_true(cid && cid[0]);
    json_t *aps = json_object_get(json_object_get(apns, "payload"), "aps");
    assert_int_equal(json_integer_value(json_object_get(aps, "content-available")), 1);
    assert_null(json_object_get(aps, "alert"));
    assert_null(json_object_get(json_object_get(ri, "message"), "android"));

    check_db_sent(env->t.db, "w-e2e", "phone", ra);
    check_db_sent(env->t.db, "w-e2e", "tablet", ri);
    json_decref(ra);
    json_decref(ri);
    free(id_a);
    free(id_i);
}

/* ---- 2. the OAuth token is fetched once and reused ---- */

static void test_oauth_token_reused(void **state)
{
    struct eu_env *env = *state;
    eu_start(&env->emu, NULL);
    eu_start_mpcpush(&env->t, "run", &env->emu, NULL);
    char wallet[32], tok[128];
    for (int wave = 0; wave < 5; wave++) {
        for (int i = 0; i < 10; i++) {
            snprintf(wallet, sizeof(wallet), "w-oauth-%d", wave * 10 + i);
            eu_token(tok, sizeof(tok), "oauth", wave * 10 + i);
            eu_register(&env->t, wallet, "d", tok, i % 2 ? "ios" : "android");
            free(pu_enqueue(&env->t, wallet, "d", "{\"n\":1}", 0));
        }
        long want = (wave + 1) * 10, got = 0;
        for (long deadline = tx_now_ms() + 10000; tx_now_ms() < deadline; usleep(50000))
            if ((got = eu_stat(&env->emu, "accepted")) >= want)
                break;
        if (got != want)
            fail_msg("wave %d: %ld wakeups accepted, expected %ld", wave, got, want);
    }
    usleep(300000);
    assert_int_equal(eu_stat(&env->emu, "accepted"), 50);
    assert_int_equal(eu_stat(&env->emu, "send_requests"), 50);
    assert_int_equal(eu_stat(&env->emu, "token_requests"), 1);
    assert_int_equal(eu_stat(&env->emu, "tokens_issued"), 1);
    assert_int_equal(th_sql_long(env->t.db, "SELECT count(*) FROM mpcpush.pushes"
                                            " WHERE state = 'sent'"),
                     50);
}

/* ---- 4. coalescing ---- */

static void test_coalesce_burst(void **state)
{
    struct eu_env *env = *state;
    eu_shared(&env->emu);
    eu_start_mpcpush(&env->t, "run", &env->emu, NULL);
    char tok[128];
    eu_token(tok, sizeof(tok), "burst", 0);
    eu_register(&env->t, "w-burst", "d", tok, "android");
    struct tx_call calls[10];
    memset(calls, 0, sizeof(calls));
    const char *body = "{\"payload\":{\"round\":1},\"ttlSeconds\":300}";
    for (int i = 0; i < 10; i++) {
        calls[i].method = "POST";
        snprintf(calls[i].url, sizeof(calls[i].url), "%s/v1/wallets/w-burst/devices/d/messages",
                 env->t.proc.base);
        calls[i].headers[0] = env->t.auth;
        calls[i].headers[1] = "Content-Type: application/json";
        calls[i].body = body;
        calls[i].len = strlen(body);
    }
    tx_http_parallel(calls, 10);
    for (int i = 0; i < 10; i++)
        if (calls[i].status != 201)
            fail_msg("burst message %d: HTTP %ld %s", i, calls[i].status, calls[i].resp);
    tx_calls_free(calls, 10);
    char *last = latest_id(env->t.db, "w-burst", "d");
    wait_sent(env->t.db, "w-burst", "d", 10000);
    usleep(500000);
    json_t *list = eu_records(&env->emu, tok);
    size_t n = json_array_size(list);
    if (n < 1 || n > 3)
        fail_msg("10 messages in a burst gave %zu wakeups (expected 1 to 3)", n);
    json_t *final = json_array_get(list, n - 1);
    assert_string_equal(eu_data(final, "latestId"), last);
    assert_string_equal(eu_data(final, "pending"), "10");
    printf("burst of 10 messages: %zu wakeup(s)\n", n);
    json_decref(list);
    free(last);
}

static void test_coalesce_backlog_one_wakeup(void **state)
{
    struct eu_env *env = *state;
    eu_shared(&env->emu);
    eu_start_mpcpush(&env->t, "receiver", &env->emu, NULL);
    char tok[128];
    eu_token(tok, sizeof(tok), "backlog", 0);
    eu_register(&env->t, "w-backlog", "d", tok, "android");
    for (int i = 0; i < 10; i++)
        free(pu_enqueue(&env->t, "w-backlog", "d", "{\"queued\":true}", 0));
    char *last = latest_id(env->t.db, "w-backlog", "d");
    eu_proc_start(&env->procs[0], "dispatcher", env->t.db, &env->emu, NULL);
    json_t *rec = one_record(&env->emu, tok, 10000);
    assert_string_equal(eu_data(rec, "pending"), "10");
    assert_string_equal(eu_data(rec, "latestId"), last);
    wait_sent(env->t.db, "w-backlog", "d", 5000);
    json_decref(rec);
    free(last);
}

/* ---- 5. two dispatchers, 1,000 devices ---- */

#define MANY  1000
#define CHUNK 100

static void parallel_chunk(struct eu_env *env, int from, bool messages)
{
    static char bodies[CHUNK][256];
    struct tx_call calls[CHUNK];
    memset(calls, 0, sizeof(calls));
    for (int k = 0; k < CHUNK; k++) {
        int i = from + k;
        char tok[128];
        eu_token(tok, sizeof(tok), "many", i);
        calls[k].method = messages ? "POST" : "PUT";
        snprintf(calls[k].url, sizeof(calls[k].url), "%s/v1/wallets/w-many-%d/devices/d-%d%s",
                 env->t.proc.base, i / 100, i, messages ? "/messages" : "");
        if (messages)
            snprintf(bodies[k], sizeof(bodies[k]), "{\"payload\":{\"i\":%d}}", i);
        else
            snprintf(bodies[k], sizeof(bodies[k]), "{\"fcmToken\":\"%s\",\"platform\":\"%s\"}", tok,
                     i % 3 ? "android" : "ios");
        calls[k].headers[0] = env->t.auth;
        calls[k].headers[1] = "Content-Type: application/json";
        calls[k].body = bodies[k];
        calls[k].len = strlen(bodies[k]);
    }
    tx_http_parallel(calls, CHUNK);
    for (int k = 0; k < CHUNK; k++)
        if (calls[k].status != 201)
            fail_msg("%s %s: HTTP %ld %s", calls[k].method, calls[k].url, calls[k].status,
                     calls[k].resp);
    tx_calls_free(calls, CHUNK);
}

static void test_two_dispatchers_thousand_devices(void **state)
{
    struct eu_env *env = *state;
    eu_start(&env->emu, NULL);
    /* Every answer takes 200 ms, so a worker holding a batch leaves the next ones to the
     * others: all four workers of the two processes claim side by side. */
    eu_faults(&env->emu, "[{\"token\":\"*\",\"error\":\"SLOW\",\"delayMs\":200}]", false);
    eu_start_mpcpush(&env->t, "receiver", &env->emu, NULL);
    const char *extra[] = {"MPCPUSH_DISPATCH_BATCH=50", NULL};
    eu_proc_start(&env->procs[0], "dispatcher", env->t.db, &env->emu, extra);
    eu_proc_start(&env->procs[1], "dispatcher", env->t.db, &env->emu, extra);
    for (int i = 0; i < MANY; i += CHUNK)
        parallel_chunk(env, i, false);
    long t0 = tx_now_ms();
    for (int i = 0; i < MANY; i += CHUNK)
        parallel_chunk(env, i, true);
    long sent = eu_wait_sql(env->t.db, MANY, 30000,
                            "SELECT count(*) FROM mpcpush.pushes WHERE state = 'sent'"
                            " AND covered_id >= wanted_id");
    assert_int_equal(sent, MANY);
    printf("1000 wakeups through two dispatchers in %ld ms\n", tx_now_ms() - t0);
    usleep(500000);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "eu%d-many-", (int)getpid());
    json_t *list = eu_records_prefix(&env->emu, prefix);
    static int seen[MANY];
    memset(seen, 0, sizeof(seen));
    size_t i;
    json_t *rec;
    json_array_foreach(list, i, rec)
    {
        int k = -1;
        const char *tok = json_string_value(json_object_get(rec, "token"));
        if (!tok || sscanf(tok + strlen(prefix), "%d", &k) != 1 || k < 0 || k >= MANY)
            fail_msg("unexpected token %s", tok ? tok : "(none)");
        char device[32];
        snprintf(device, sizeof(device), "d-%d", k);
        assert_string_equal(eu_data(rec, "deviceId"), device);
        seen[k]++;
    }
    int missing = 0, twice = 0;
    for (int k = 0; k < MANY; k++) {
        missing += seen[k] == 0;
        twice += seen[k] > 1;
    }
    if (missing || twice)
        fail_msg("%d devices never woken, %d woken more than once", missing, twice);
    assert_int_equal(json_array_size(list), MANY);
    assert_int_equal(eu_stat(&env->emu, "send_requests"), MANY);
    /* each process fetches its access token for its first batch: both took part */
    assert_int_equal(eu_stat(&env->emu, "token_requests"), 2);
    assert_int_equal(th_sql_long(env->t.db, "SELECT count(*) FROM mpcpush.pushes"
                                            " WHERE lease_id IS NOT NULL OR attempts <> 0"),
                     0);
    json_decref(list);
}

/* ---- 8. acknowledged messages need no wakeup ---- */

static void test_ack_before_claim(void **state)
{
    struct eu_env *env = *state;
    eu_shared(&env->emu);
    eu_start_mpcpush(&env->t, "receiver", &env->emu, NULL);
    char tx[128], ty[128], tz[128];
    eu_token(tx, sizeof(tx), "acked-all", 0);
    eu_token(ty, sizeof(ty), "acked-none", 0);
    eu_token(tz, sizeof(tz), "acked-some", 0);
    eu_register(&env->t, "w-ack", "x", tx, "android");
    eu_register(&env->t, "w-ack", "y", ty, "android");
    eu_register(&env->t, "w-ack", "z", tz, "ios");
    char *x_last = NULL, *z_first = NULL, *z_last = NULL, *y_last = NULL;
    for (int i = 0; i < 3; i++) {
        free(x_last);
        x_last = pu_enqueue(&env->t, "w-ack", "x", "{\"n\":1}", 0);
    }
    z_first = pu_enqueue(&env->t, "w-ack", "z", "{\"n\":1}", 0);
    z_last = pu_enqueue(&env->t, "w-ack", "z", "{\"n\":2}", 0);
    y_last = pu_enqueue(&env->t, "w-ack", "y", "{\"n\":1}", 0);
    char body[96];
    snprintf(body, sizeof(body), "{\"upTo\":\"%s\"}", x_last);
    assert_int_equal(pu_ack(&env->t, "w-ack", "x", body), 3);
    snprintf(body, sizeof(body), "{\"upTo\":\"%s\"}", z_first);
    assert_int_equal(pu_ack(&env->t, "w-ack", "z", body), 1);

    eu_proc_start(&env->procs[0], "dispatcher", env->t.db, &env->emu, NULL);
    json_t *ry = one_record(&env->emu, ty, 10000);
    json_t *rz = one_record(&env->emu, tz, 10000);
    assert_string_equal(eu_data(ry, "latestId"), y_last);
    assert_string_equal(eu_data(rz, "pending"), "1");
    assert_string_equal(eu_data(rz, "latestId"), z_last);
    wait_sent(env->t.db, "w-ack", "y", 5000);
    wait_sent(env->t.db, "w-ack", "z", 5000);
    usleep(300000);
    json_t *rx = eu_records(&env->emu, tx);
    assert_int_equal(json_array_size(rx), 0);
    /* x's push row owes nothing: covered (never claimed) or skipped */
    assert_int_equal(tx_sql_longf(env->t.db,
                                  "SELECT count(*) FROM mpcpush.pushes WHERE wallet_id = 'w-ack'"
                                  " AND device_id = 'x' AND covered_id >= wanted_id AND"
                                  " lease_id IS NULL AND state IN ('ready', 'skipped')"),
                     1);
    json_decref(rx);
    json_decref(ry);
    json_decref(rz);
    free(x_last);
    free(y_last);
    free(z_first);
    free(z_last);
}

/* ---- 9. rows behind the claim cursor ---- */

/* A dispatcher's claims start where the last one stopped (its cursor, a due_at), and go back to
 * the start after a claim that came back short and at least every 250 ms. Here every claim is
 * full (one row each, a backlog of 3,000 owed rows answered slowly), and the row owed before
 * all of them becomes claimable only once the cursor is past it (its lease runs out after
 * 1.5 s): it must still go out within about 250 ms of that, long before the backlog drains. */
static void test_cursor_goes_back(void **state)
{
    struct eu_env *env = *state;
    eu_start(&env->emu, NULL);
    eu_faults(&env->emu, "[{\"token\":\"*\",\"error\":\"SLOW\",\"delayMs\":5}]", false);
    char token[160];
    eu_token(token, sizeof(token), "cursor", 0);
    tx_sql_execf(env->t.db,
                 "INSERT INTO mpcpush.devices (wallet_id, device_id, platform, fcm_token)"
                 " SELECT 'w-cur', 'd' || k, 'android', '%s' || k FROM generate_series(0, 3000) k;"
                 "INSERT INTO mpcpush.messages (wallet_id, device_id, source, payload, expires_at)"
                 " SELECT 'w-cur', 'd' || k, 'api', '{}', now() + interval '1 hour'"
                 " FROM generate_series(0, 3000) k;"
                 "INSERT INTO mpcpush.pushes (wallet_id, device_id, wanted_id, due_at)"
                 " SELECT wallet_id, device_id, id,"
                 "  now() - interval '1 minute' + substr(device_id, 2)::int * interval '1 ms'"
                 " FROM mpcpush.messages;"
                 "UPDATE mpcpush.pushes SET state = 'leased', lease_id = 1, leased_by = 'gone',"
                 " leased_until = now() + interval '1500 ms', due_at = now() - interval '2 minutes'"
                 " WHERE device_id = 'd0'",
                 token);
    long long expires = eu_unix_ms() + 1500;
    const char *extra[] = {"MPCPUSH_DISPATCH_BATCH=1", NULL};
    eu_proc_start(&env->procs[0], "dispatcher", env->t.db, &env->emu, extra);
    long sent = eu_wait_sql(env->t.db, 1, 6000,
                            "SELECT count(*) FROM mpcpush.pushes WHERE device_id = 'd0'"
                            " AND state = 'sent'");
    long long late = eu_unix_ms() - expires;
    long owed = th_sql_long(env->t.db, "SELECT count(*) FROM mpcpush.pushes"
                                       " WHERE wanted_id > covered_id");
    if (sent != 1)
        fail_msg("the row behind the cursor was not sent within 6 s (%ld rows still owed)", owed);
    printf("row behind the cursor sent %lld ms after its lease ran out; %ld rows still owed\n",
           late, owed);
    if (late > 1000)
        fail_msg("the row behind the cursor went %lld ms after its lease ran out (want < 1 s)",
                 late);
    if (owed < 500)
        fail_msg("only %ld rows were still owed: claims came back short, so this did not test"
                 " the time-based return to the start",
                 owed);
}

/* ---- 10. every NOTIFY wakes ---- */

/* Waits (polling the push row every half millisecond on conn) until device d<i> of w-nap is
 * sent; false after timeout_ms. */
static bool nap_sent(PGconn *conn, int i, int timeout_ms)
{
    char sql[160];
    snprintf(sql, sizeof(sql),
             "SELECT 1 FROM mpcpush.pushes WHERE wallet_id = 'w-nap' AND device_id = 'd%d'"
             " AND state = 'sent' AND covered_id >= wanted_id",
             i);
    for (long deadline = tx_now_ms() + timeout_ms; tx_now_ms() < deadline; usleep(500)) {
        PGresult *res = PQexec(conn, sql);
        bool sent = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
        PQclear(res);
        if (sent)
            return true;
    }
    return false;
}

/* Every NOTIFY wakes the dispatcher, whatever its worker is doing when it arrives. Polling is
 * set to a minute, there is one worker, and 20,000 held rows make each claim take a while.
 * 60 messages, each for its own device, are posted one
 * at a time, each as soon as (give or take a millisecond) the previous one's wakeup is
 * recorded: the worker is then starting the claim that will find nothing, and the new
 * message's NOTIFY often arrives while that claim runs, after its snapshot. The nap after the
 * empty claim must not swallow it (the worker reads the wake sequence before claiming): a
 * swallowed NOTIFY leaves its device waiting for the poll, a minute. */
static void test_every_notify_wakes(void **state)
{
    enum { N = 60 };
    struct eu_env *env = *state;
    eu_shared(&env->emu);
    for (int i = 0; i < N; i++) {
        char token[160];
        eu_token(token, sizeof(token), "nap", i);
        tx_sql_execf(env->t.db,
                     "INSERT INTO mpcpush.devices (wallet_id, device_id, platform, fcm_token)"
                     " VALUES ('w-nap', 'd%d', 'android', '%s')",
                     i, token);
    }
    /* Rows another dispatcher holds, due long ago: every claim walks past them, which makes it
     * last long enough (milliseconds) for NOTIFYs to land during it. */
    tx_sql_execf(env->t.db,
                 "INSERT INTO mpcpush.pushes (wallet_id, device_id, wanted_id, due_at, state,"
                 " lease_id, leased_until)"
                 " SELECT 'w-held', 'd' || k, 1, now() - interval '1 hour', 'leased', 1,"
                 "  now() + interval '1 hour' FROM generate_series(1, 20000) k;"
                 "ANALYZE mpcpush.pushes");
    const char *extra[] = {"MPCPUSH_POLL_INTERVAL_MS=60000", "MPCPUSH_DISPATCH_WORKERS=1", NULL};
    eu_start_mpcpush(&env->t, "run", &env->emu, extra);
    PGconn *conn = PQconnectdb(env->t.db);
    assert_int_equal(PQstatus(conn), CONNECTION_OK);
    const char *headers[] = {env->t.auth, "Content-Type: application/json", NULL};
    const char *body = "{\"payload\":{\"round\":1},\"ttlSeconds\":300}";
    unsigned seed = (unsigned)getpid();
    for (int i = 0; i < N; i++) {
        char url[256];
        snprintf(url, sizeof(url), "%s/v1/wallets/w-nap/devices/d%d/messages", env->t.proc.base, i);
        struct th_response r;
        th_http(&r, "POST", url, headers, body, strlen(body));
        if (r.status != 201)
            fail_msg("message %d: HTTP %ld %s", i, r.status, r.body);
        th_response_free(&r);
        if (!nap_sent(conn, i, 5000)) {
            PQfinish(conn);
            fail_msg("device %d of %d was not woken within 5 s of its message: with polling at"
                     " a minute, its NOTIFY was missed",
                     i, N);
        }
        usleep((useconds_t)(rand_r(&seed) % 1500));
    }
    PQfinish(conn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_end_to_end_webhook_android_and_ios, eu_setup,
                                        eu_teardown),
        cmocka_unit_test_setup_teardown(test_oauth_token_reused, eu_setup, eu_teardown),
        cmocka_unit_test_setup_teardown(test_coalesce_burst, eu_setup, eu_teardown),
        cmocka_unit_test_setup_teardown(test_coalesce_backlog_one_wakeup, eu_setup, eu_teardown),
        cmocka_unit_test_setup_teardown(test_two_dispatchers_thousand_devices, eu_setup,
                                        eu_teardown),
        cmocka_unit_test_setup_teardown(test_ack_before_claim, eu_setup, eu_teardown),
        cmocka_unit_test_setup_teardown(test_cursor_goes_back, eu_setup, eu_teardown),
        cmocka_unit_test_setup_teardown(test_every_notify_wakes, eu_setup, eu_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
