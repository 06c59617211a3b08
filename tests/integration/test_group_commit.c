/* Many webhooks at once (the group-commit path): every 200 stored exactly once, duplicates
 * collapsed even when they race, bad requests in a busy batch rejected alone. */
#define _GNU_SOURCE
#include "harness_extra.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

static char *device_message(const char *wallet, const char *device, int n)
{
    char *body = NULL;
    if (asprintf(&body,
                 "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"t\",\"timestamp\":%d,"
                 "\"walletId\":\"%s\",\"deviceId\":\"%s\",\"message\":{\"n\":%d}}",
                 n, wallet, device, n) < 0)
        fail_msg("out of memory");
    return body;
}

/* Fills call as a webhook post of body with the given signature header (owned by the caller). */
static void webhook_call(struct tx_call *call, const struct tx_env *e, const char *body,
                         const char *sig)
{
    memset(call, 0, sizeof(*call));
    call->method = "POST";
    snprintf(call->url, sizeof(call->url), "%s/webhooks/fireblocks", e->proc.base);
    call->headers[0] = "Content-Type: application/json";
    call->headers[1] = sig;
    call->body = body;
    call->len = strlen(body);
}

static const char *status_of(const struct tx_call *call)
{
    json_t *s = json_object_get(call->json, "status");
    return json_is_string(s) ? json_string_value(s) : "";
}

static void register_device(const struct tx_env *e, const char *wallet, const char *device)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/wallets/%s/devices/%s", wallet, device);
    struct th_response r;
    tx_api(&r, e, "PUT", path, "{\"fcmToken\":\"abcdefgh\",\"platform\":\"android\"}");
    tx_assert_status(&r, 201);
    th_response_free(&r);
}

static void run_distinct(const struct tx_env *e, int n)
{
    struct tx_call *calls = calloc((size_t)n, sizeof(*calls));
    char **bodies = calloc((size_t)n, sizeof(char *)), **sigs = calloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++) {
        char device[32];
        snprintf(device, sizeof(device), "dev-%d", i % 10);
        bodies[i] = device_message("gc", device, i);
        sigs[i] =
            i % 2 ? tx_hdr_v1(tx_keys()->v1a, bodies[i]) : tx_hdr_v1(tx_keys()->v1b, bodies[i]);
        webhook_call(&calls[i], e, bodies[i], sigs[i]);
    }
    tx_http_parallel(calls, n);
    for (int i = 0; i < n; i++)
        if (calls[i].status != 200 || strcmp(status_of(&calls[i]), "stored") != 0)
            fail_msg("concurrent webhook %d of %d: answered %ld %s", i, n, calls[i].status,
                     calls[i].resp);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"), n);
    assert_int_equal(th_sql_long(e->db, "SELECT count(DISTINCT raw_body) FROM"
                                        " mpcpush.webhook_events"),
                     n);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages"), n);
    assert_int_equal(th_sql_long(e->db, "SELECT count(DISTINCT payload) FROM mpcpush.messages"), n);
    /* The eventIds are distinct. */
    for (int i = 0; i < n; i++)
        for (int k = i + 1; k < n; k++)
            if (json_equal(json_object_get(calls[i].json, "eventId"),
                           json_object_get(calls[k].json, "eventId")))
                fail_msg("webhooks %d and %d got the same eventId: %s", i, k, calls[i].resp);
    /* Registered devices have a push row wanting their newest message. */
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes p JOIN"
                                        " mpcpush.devices USING (wallet_id, device_id)"
                                        " WHERE wanted_id > covered_id AND wanted_id ="
                                        " (SELECT max(id) FROM mpcpush.messages m WHERE"
                                        " m.wallet_id = p.wallet_id AND m.device_id ="
                                        " p.device_id)"),
                     th_sql_long(e->db, "SELECT count(*) FROM mpcpush.devices"));
    /* the others' messages owe nothing: nothing can wake them */
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes"
                                        " WHERE wanted_id > covered_id"),
                     th_sql_long(e->db, "SELECT count(*) FROM mpcpush.devices"));
    tx_calls_free(calls, n);
    for (int i = 0; i < n; i++) {
        free(bodies[i]);
        free(sigs[i]);
    }
    free(bodies);
    free(sigs);
    free(calls);
}

static void test_200_concurrent(void **state)
{
    struct tx_env *e = *state;
    for (int d = 0; d < 5; d++) {
        char device[32];
        snprintf(device, sizeof(device), "dev-%d", d);
        register_device(e, "gc", device);
    }
    run_distinct(e, 200);
    /* one push row per device given a message; the 5 registered ones are owed a wakeup */
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes"), 10);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes"
                                        " WHERE wanted_id > covered_id"),
                     5);
}

static void test_small_batches(void **state)
{
    struct tx_env *e = *state;
    const char *env[] = {"MPCPUSH_BATCH_MAX=3", NULL};
    tx_start(e, 0, env);
    run_distinct(e, 100);
}

static void test_same_twice(void **state)
{
    struct tx_env *e = *state;
    register_device(e, "gc", "dev-1");
    char *body = device_message("gc", "dev-1", 1);
    struct th_response r;
    tx_webhook_v1(&r, e, body);
    tx_assert_status(&r, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "stored");
    th_response_free(&r);
    tx_webhook_v1(&r, e, body);
    tx_assert_status(&r, 200);
    tx_assert_json_eq(r.body, "{\"status\":\"duplicate\"}");
    th_response_free(&r);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"), 1);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages"), 1);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes"), 1);
    free(body);
}

/* The inbox key of a v1 event, computed here in SQL: "v1:<timestamp, 16 hex digits>:<SHA-256 of
 * the body>" (time first: new keys append to the unique index), and the key versions before
 * schema 5 gave it, "sha256:<SHA-256>". A redelivery of an event stored under the old key is
 * a duplicate. */
static void test_dedupe_keys(void **state)
{
    struct tx_env *e = *state;
    register_device(e, "gc", "dev-1");
    char *old = device_message("gc", "dev-1", 1700000000), *lit = tx_lit(old);
    tx_sql_execf(e->db,
                 "INSERT INTO mpcpush.webhook_events (dedupe_key, api_version, event_type,"
                 " raw_body) VALUES ('sha256:' || encode(sha256(convert_to(%s, 'UTF8')), 'hex'),"
                 " 1, 'NCW_DEVICE_MESSAGE', %s)",
                 lit, lit);
    struct th_response r;
    tx_webhook_v1(&r, e, old);
    tx_assert_status(&r, 200);
    tx_assert_json_eq(r.body, "{\"status\":\"duplicate\"}");
    th_response_free(&r);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"), 1);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages"), 0);

    char *fresh = device_message("gc", "dev-1", 1700000001), *fresh_lit = tx_lit(fresh);
    tx_webhook_v1(&r, e, fresh);
    tx_assert_status(&r, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "stored");
    th_response_free(&r);
    assert_int_equal(tx_sql_longf(e->db,
                                  "SELECT count(*) FROM mpcpush.webhook_events WHERE dedupe_key ="
                                  " 'v1:' || lpad(to_hex(1700000001), 16, '0') || ':' ||"
                                  " encode(sha256(convert_to(%s, 'UTF8')), 'hex')",
                                  fresh_lit),
                     1);

    /* An event stamped now cannot be a redelivery of one stored before the upgrade, so its
     * old key is not looked up (that lookup is what only redeliveries pay for). */
    char *now_body = NULL;
    if (asprintf(&now_body,
                 "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"t\",\"timestamp\":%lld,"
                 "\"walletId\":\"gc\",\"deviceId\":\"dev-1\",\"message\":{\"n\":3}}",
                 (long long)time(NULL) * 1000) < 0)
        fail_msg("out of memory");
    char *now_lit = tx_lit(now_body);
    tx_sql_execf(e->db,
                 "INSERT INTO mpcpush.webhook_events (dedupe_key, api_version, event_type,"
                 " raw_body) VALUES ('sha256:' || encode(sha256(convert_to(%s, 'UTF8')), 'hex'),"
                 " 1, 'NCW_DEVICE_MESSAGE', %s)",
                 now_lit, now_lit);
    tx_webhook_v1(&r, e, now_body);
    tx_assert_status(&r, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "stored");
    th_response_free(&r);
    free(old);
    free(lit);
    free(fresh);
    free(fresh_lit);
    free(now_body);
    free(now_lit);
}

/* A counter of the inbox table in pg_stat_user_tables. */
static long inbox_stat(const struct tx_env *e, const char *counter)
{
    return tx_sql_longf(e->db,
                        "SELECT %s FROM pg_stat_user_tables"
                        " WHERE relid = 'mpcpush.webhook_events'::regclass",
                        counter);
}

/* Index entries read from the inbox's key index. */
static long key_index_read(const struct tx_env *e)
{
    return th_sql_long(e->db, "SELECT idx_tup_read FROM pg_stat_user_indexes WHERE indexrelid ="
                              " 'mpcpush.webhook_events_dedupe_key_key'::regclass");
}

/* Looking up the old keys of redeliveries never reads the whole inbox: the writer's statement
 * is planned once (PostgreSQL caches its plan) while the inbox is small, where a hash of all
 * of it looks cheapest; with a large inbox every batch holding a redelivery would then read it
 * all. Eight redeliveries, one batch each (the plan cached after the fifth), against a
 * three-event inbox: the inbox is probed through its key index, never read whole (the table's
 * counters in pg_stat_user_tables). */
static void test_redelivery_lookup_probes(void **state)
{
    struct tx_env *e = *state;
    register_device(e, "gc", "dev-1");
    th_sql_exec(e->db, "INSERT INTO mpcpush.webhook_events (dedupe_key, api_version, event_type,"
                       " raw_body) SELECT 'sha256:' || k, 1, 'NCW_DEVICE_MESSAGE', '{}'"
                       " FROM generate_series(1, 3) k; ANALYZE mpcpush.webhook_events");
    long scans = inbox_stat(e, "seq_scan"), inserted = inbox_stat(e, "n_tup_ins");
    long read = key_index_read(e);
    for (int i = 0; i < 8; i++) {
        char *body = device_message("gc", "dev-1", 1700000100 + i); /* stamped long ago */
        struct th_response r;
        tx_webhook_v1(&r, e, body);
        tx_assert_status(&r, 200);
        assert_string_equal(json_string_value(json_object_get(r.json, "status")), "stored");
        th_response_free(&r);
        free(body);
    }
    /* a session reports its counters when a transaction ends at least a second after it last
     * did: one more event, a second later, brings the writer's in */
    usleep(1100000);
    char *body = device_message("gc", "dev-1", (int)time(NULL));
    struct th_response r;
    tx_webhook_v1(&r, e, body);
    tx_assert_status(&r, 200);
    th_response_free(&r);
    free(body);
    for (int i = 0; i < 50 && inbox_stat(e, "n_tup_ins") < inserted + 9; i++)
        usleep(100000);
    assert_int_equal(inbox_stat(e, "n_tup_ins"), inserted + 9);
    assert_int_equal(inbox_stat(e, "seq_scan"), scans);
    /* nor read whole through its index: the keys looked up are not there */
    assert_in_range(key_index_read(e), read, read + 8);
}

/* Posts the calls at once; all must be 200, exactly one "stored", and events_before + 1 rows. */
static void check_race(const struct tx_env *e, struct tx_call *calls, int n, const char *what,
                       long events_before)
{
    tx_http_parallel(calls, n);
    int stored = 0, dup = 0;
    char answers[2048] = "";
    for (int i = 0; i < n; i++) {
        if (calls[i].status != 200)
            fail_msg("%s: post %d answered %ld %s", what, i, calls[i].status, calls[i].resp);
        if (strcmp(status_of(&calls[i]), "stored") == 0) {
            stored++;
            size_t used = strlen(answers);
            snprintf(answers + used, sizeof(answers) - used, " [%d] %s", i, calls[i].resp);
        } else if (strcmp(status_of(&calls[i]), "duplicate") == 0) {
            dup++;
        } else {
            fail_msg("%s: post %d answered %s", what, i, calls[i].resp);
        }
    }
    long rows = th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events");
    if (stored != 1 || dup != n - 1 || rows != events_before + 1)
        fail_msg("%s: %d stored and %d duplicate answers (want 1 and %d), %ld new rows (want 1);"
                 " stored answers:%s",
                 what, stored, dup, n - 1, rows - events_before, answers);
    tx_calls_free(calls, n);
}

static void test_same_body_racing(void **state)
{
    struct tx_env *e = *state;
    register_device(e, "gc", "racer");
    char *body = device_message("gc", "racer", 7);
    char *sig = tx_hdr_v1(tx_keys()->v1a, body);
    struct tx_call calls[50];
    for (int i = 0; i < 50; i++)
        webhook_call(&calls[i], e, body, sig);
    check_race(e, calls, 50, "50 posts of one v1 body", 0);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"), 1);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages"), 1);
    /* v2: one id, bodies that differ. */
    char *bodies[50], *sigs[50];
    for (int i = 0; i < 50; i++) {
        if (asprintf(&bodies[i],
                     "{\"id\":\"7f0c2a4e-aaaa-4bbb-8ccc-000000000042\",\"eventType\":"
                     "\"transaction.created\",\"createdAt\":%d,\"data\":{\"id\":\"tx-1\","
                     "\"status\":\"SUBMITTED\",\"try\":%d}}",
                     1700000000 + i, i) < 0)
            fail_msg("out of memory");
        sigs[i] = tx_hdr_v2(tx_keys()->jwk1, "kid-1", bodies[i]);
        webhook_call(&calls[i], e, bodies[i], sigs[i]);
    }
    check_race(e, calls, 50, "50 posts of one v2 id", 1);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"), 2);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages"), 1);
    for (int i = 0; i < 50; i++) {
        free(bodies[i]);
        free(sigs[i]);
    }
    free(body);
    free(sig);
}

/* Good webhooks, forged ones, malformed ones and duplicates in one burst. */
static void test_mixed_burst(void **state)
{
    struct tx_env *e = *state;
    enum { N = 160 };
    struct tx_call calls[N];
    char *bodies[N], *sigs[N];
    for (int i = 0; i < N; i++) {
        int kind = i % 4; /* 0, 1: good; 2: forged; 3: missing deviceId */
        if (kind == 3) {
            if (asprintf(&bodies[i],
                         "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"t\",\"timestamp\":%d,"
                         "\"walletId\":\"mix\",\"message\":{\"n\":%d}}",
                         i, i) < 0)
                fail_msg("out of memory");
        } else {
            bodies[i] = device_message("mix", "dev", i);
        }
        sigs[i] = tx_hdr_v1(kind == 2 ? tx_keys()->stranger : tx_keys()->v1a, bodies[i]);
        webhook_call(&calls[i], e, bodies[i], sigs[i]);
    }
    tx_http_parallel(calls, N);
    for (int i = 0; i < N; i++) {
        int kind = i % 4;
        long want = kind < 2 ? 200 : kind == 2 ? 401 : 400;
        const char *code = kind == 2 ? "bad_signature" : kind == 3 ? "malformed_event" : NULL;
        json_t *c = json_object_get(json_object_get(calls[i].json, "error"), "code");
        if (calls[i].status != want ||
            (code && (!json_is_string(c) || strcmp(json_string_value(c), code) != 0)) ||
            (!code && strcmp(status_of(&calls[i]), "stored") != 0))
            fail_msg("burst post %d (kind %d): want %ld %s, got %ld %s", i, kind, want,
                     code ? code : "stored", calls[i].status, calls[i].resp);
    }
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"), N / 2);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages"), N / 2);
    tx_calls_free(calls, N);
    /* The same burst again: the good ones are now duplicates, nothing new is stored. */
    tx_http_parallel(calls, N);
    for (int i = 0; i < N; i++) {
        int kind = i % 4;
        long want = kind < 2 ? 200 : kind == 2 ? 401 : 400;
        if (calls[i].status != want || (kind < 2 && strcmp(status_of(&calls[i]), "duplicate")))
            fail_msg("repeated burst post %d (kind %d): got %ld %s", i, kind, calls[i].status,
                     calls[i].resp);
    }
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"), N / 2);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages"), N / 2);
    tx_calls_free(calls, N);
    for (int i = 0; i < N; i++) {
        free(bodies[i]);
        free(sigs[i]);
    }
}

/* Concurrent API messages to one device: all 201, distinct ids, the push row wants the newest. */
static void test_concurrent_api_messages(void **state)
{
    struct tx_env *e = *state;
    register_device(e, "api", "dev");
    enum { N = 100 };
    struct tx_call calls[N];
    char *bodies[N];
    for (int i = 0; i < N; i++) {
        memset(&calls[i], 0, sizeof(calls[i]));
        if (asprintf(&bodies[i], "{\"payload\":{\"i\":%d}}", i) < 0)
            fail_msg("out of memory");
        calls[i].method = "POST";
        snprintf(calls[i].url, sizeof(calls[i].url), "%s/v1/wallets/api/devices/dev/messages",
                 e->proc.base);
        calls[i].headers[0] = "Content-Type: application/json";
        calls[i].headers[1] = e->auth;
        calls[i].body = bodies[i];
        calls[i].len = strlen(bodies[i]);
    }
    tx_http_parallel(calls, N);
    for (int i = 0; i < N; i++)
        if (calls[i].status != 201 || !json_is_string(json_object_get(calls[i].json, "id")))
            fail_msg("concurrent message %d: %ld %s", i, calls[i].status, calls[i].resp);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages"), N);
    assert_int_equal(th_sql_long(e->db, "SELECT count(DISTINCT id) FROM mpcpush.messages"), N);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes WHERE wanted_id ="
                                        " (SELECT max(id) FROM mpcpush.messages)"),
                     1);
    tx_calls_free(calls, N);
    for (int i = 0; i < N; i++)
        free(bodies[i]);
}

int main(void)
{
    tx_keys();
#define T(f) cmocka_unit_test_setup_teardown(f, tx_setup, tx_teardown)
#define D(f) cmocka_unit_test_setup_teardown(f, tx_setup_db, tx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_200_concurrent),
        D(test_small_batches),
        T(test_same_twice),
        T(test_dedupe_keys),
        T(test_redelivery_lookup_probes),
        T(test_same_body_racing),
        T(test_mixed_burst),
        T(test_concurrent_api_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
