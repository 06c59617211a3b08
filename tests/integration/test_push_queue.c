/* The push queue's SQL on its own (src/store/pushes.c), against a real database: what a claim
 * returns and leases, and that a batch of outcomes lands exactly, whatever bytes the error
 * details hold. The dispatcher tests cover the same statements end to end; these pin the
 * edges that FCM rarely produces. */
#include "harness.h"
#include "harness_extra.h"
#include "ingest_wait.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpcpush/buf.h"
#include "mpcpush/db.h"
#include "mpcpush/devices.h"
#include "mpcpush/ingest.h"
#include "mpcpush/pushes.h"

struct env {
    char *db;
    PGconn *conn;
};

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->db = th_db_create(true);
    assert_int_equal(mp_db_connect(e->db, "test", &e->conn), MP_OK);
    /* three devices with one pending message each; d3's token will be refused */
    th_sql_exec(e->db,
                "INSERT INTO mpcpush.devices (wallet_id, device_id, platform, fcm_token)"
                " SELECT 'w', 'd' || k, 'android', 'token-' || k FROM generate_series(1, 3) k;"
                "INSERT INTO mpcpush.messages (wallet_id, device_id, source, payload, expires_at)"
                " SELECT 'w', 'd' || k, 'api', '{}', now() + interval '1 hour'"
                " FROM generate_series(1, 3) k;"
                "INSERT INTO mpcpush.pushes (wallet_id, device_id, wanted_id)"
                " SELECT wallet_id, device_id, id FROM mpcpush.messages");
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    PQfinish(e->conn);
    free(e->db);
    free(e);
    return 0;
}

/* Every daemon session runs in UTC, with a statement timeout, and without JIT (compiled anew at
 * each execution of a statement estimated costly, as the ingest statement is on large tables). */
static void test_session_settings(void **state)
{
    struct env *e = *state;
    PGresult *res =
        PQexec(e->conn, "SELECT current_setting('TimeZone'),"
                        " current_setting('statement_timeout'), current_setting('jit')");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "UTC");
    assert_string_equal(PQgetvalue(res, 0, 1), "30s");
    assert_string_equal(PQgetvalue(res, 0, 2), "off");
    PQclear(res);
}

/* Schema 5's upkeep: the pruner's index holds only push rows without a device (no token copy),
 * and autovacuum follows messages after inserts of a hundredth of the table. */
static void test_schema_upkeep(void **state)
{
    struct env *e = *state;
    char *def = th_sql_text(e->db, "SELECT pg_get_indexdef('mpcpush.pushes_deviceless'::regclass)");
    assert_non_null(strstr(def, "(wallet_id, device_id) WHERE (fcm_token IS NULL)"));
    free(def);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM pg_class"
                                        " WHERE oid = 'mpcpush.messages'::regclass AND"
                                        " 'autovacuum_vacuum_insert_scale_factor=0.01'"
                                        " = ANY(reloptions)"),
                     1);
}

static int by_device(const void *a, const void *b)
{
    return strcmp(((const struct mp_push *)a)->device_id, ((const struct mp_push *)b)->device_id);
}

/* Claims from the cursor *after* (NULL or "": from the start); where the claim stopped goes
 * back into *after when it is given. */
static struct mp_push *claim_after(struct env *e, int limit, char *after, int *n)
{
    struct mp_push *pushes = NULL;
    struct mp_claim c = {.project = "project",
                         .owner = "tester",
                         .limit = limit,
                         .lease_seconds = 60,
                         .after = after};
    assert_int_equal(mp_pushes_claim(e->conn, &c, &pushes, n), MP_OK);
    if (after)
        strcpy(after, c.last_due);
    return pushes;
}

static struct mp_push *claim(struct env *e, int limit, int *n)
{
    return claim_after(e, limit, NULL, n);
}

/* Claims, in device order. */
static struct mp_push *claim_sorted(struct env *e, int limit, int *n)
{
    struct mp_push *pushes = claim(e, limit, n);
    qsort(pushes, (size_t)*n, sizeof(*pushes), by_device);
    return pushes;
}

/* Checks which devices were claimed (devices sorted, NULL-terminated) and frees the claim. */
static void expect_devices(struct mp_push *pushes, int n, const char *const *devices)
{
    qsort(pushes, (size_t)n, sizeof(*pushes), by_device);
    for (int i = 0; i < n; i++) {
        assert_non_null(devices[i]);
        assert_string_equal(pushes[i].device_id, devices[i]);
    }
    assert_null(devices[n]);
    mp_pushes_free(pushes, n);
}

static void test_claim_leases_and_hides(void **state)
{
    struct env *e = *state;
    int n = 0, again = 0;
    struct mp_push *pushes = claim_sorted(e, 10, &n);
    assert_int_equal(n, 3);
    assert_string_equal(pushes[0].device_id, "d1");
    assert_string_equal(pushes[0].fcm_token, "token-1");
    assert_true(pushes[0].token_active);
    assert_int_equal(pushes[0].pending, 1);
    assert_true(pushes[0].ttl_seconds > 3500 && pushes[0].ttl_seconds <= 3600);
    /* leased: a second claim finds nothing, and due_at did not move */
    struct mp_push *none = claim(e, 10, &again);
    assert_int_equal(again, 0);
    mp_pushes_free(none, again);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes WHERE"
                                        " state = 'leased' AND leased_until > now()"
                                        " AND due_at <= now() AND leased_by = 'tester'"),
                     3);
    /* an expired lease is claimable again */
    th_sql_exec(e->db, "UPDATE mpcpush.pushes SET leased_until = now() - interval '1 second'"
                       " WHERE device_id = 'd2'");
    struct mp_push *one = claim(e, 10, &again);
    assert_int_equal(again, 1);
    assert_string_equal(one[0].device_id, "d2");
    assert_true(one[0].lease_id != pushes[1].lease_id);
    mp_pushes_free(one, again);
    mp_pushes_free(pushes, n);
}

/* A claim walks the index of owed rows in due order and stops at its limit, whatever the
 * planner estimates: with its plan cached (generic) and rows falling due in an order unlike
 * their order in the table, PostgreSQL preferred a bitmap scan of every owed row and a sort
 * (a whole backlog read per claim) until the dispatcher's session ruled bitmap scans out. */
static void test_claim_plan_walks_index(void **state)
{
    struct env *e = *state;
    th_sql_exec(e->db,
                "INSERT INTO mpcpush.devices (wallet_id, device_id, platform, fcm_token)"
                " SELECT 'w', 'r' || k, 'android', 'token-r' || k FROM generate_series(1, 3000) k;"
                "INSERT INTO mpcpush.messages (wallet_id, device_id, source, payload, expires_at)"
                " SELECT 'w', 'r' || k, 'api', '{}', now() + interval '1 hour'"
                " FROM generate_series(1, 3000) k;"
                "INSERT INTO mpcpush.pushes (wallet_id, device_id, wanted_id, due_at)"
                " SELECT wallet_id, device_id, id, now() - random() * interval '1 hour'"
                " FROM mpcpush.messages WHERE device_id LIKE 'r%';"
                "ANALYZE mpcpush.pushes");
    assert_int_equal(mp_pushes_session(e->conn), MP_OK);
    assert_int_equal(mp_db_exec(e->conn, "SET plan_cache_mode = force_generic_plan"), MP_OK);
    int n = 0;
    struct mp_push *pushes = claim(e, 10, &n);
    assert_int_equal(n, 10);
    mp_pushes_free(pushes, n);
    PGresult *res = PQexec(e->conn, "EXPLAIN EXECUTE mpcpush_claim(10, 60, 'tester', 'project',"
                                    " NULL, NULL, '-infinity')");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    struct mp_buf plan;
    mp_buf_init(&plan, 1 << 16);
    for (int i = 0; i < PQntuples(res); i++) {
        assert_int_equal(mp_buf_puts(&plan, PQgetvalue(res, i, 0)), MP_OK);
        assert_int_equal(mp_buf_puts(&plan, "\n"), MP_OK);
    }
    PQclear(res);
    if (strstr(plan.data, "Bitmap") || !strstr(plan.data, "Index Scan using pushes_due"))
        fail_msg("the claim does not walk pushes_due in order:\n%s", plan.data);
    mp_buf_free(&plan);
}

/* A claim from a cursor starts at the due_at where the last one stopped: a row due before it
 * is left for a claim from the start, even when it is claimable again. */
static void test_claim_cursor(void **state)
{
    struct env *e = *state;
    th_sql_exec(e->db, "UPDATE mpcpush.pushes SET due_at = now() - interval '1 minute'"
                       " + make_interval(secs => substr(device_id, 2)::int)");
    char cursor[MP_DUE_TEXT_MAX] = "";
    int n = 0;
    struct mp_push *first = claim_after(e, 2, cursor, &n);
    expect_devices(first, n, (const char *const[]){"d1", "d2", NULL});
    PGresult *res = PQexec(e->conn, "SELECT due_at::text FROM mpcpush.pushes"
                                    " WHERE device_id = 'd2'");
    assert_string_equal(cursor, PQgetvalue(res, 0, 0)); /* where it stopped: d2 */
    PQclear(res);
    /* both leases lapse: d1 and d2 are claimable again, but d1 is behind the cursor */
    th_sql_exec(e->db, "UPDATE mpcpush.pushes SET leased_until = now() - interval '1 second'");
    struct mp_push *next = claim_after(e, 10, cursor, &n);
    expect_devices(next, n, (const char *const[]){"d2", "d3", NULL});
    /* a claim that comes back empty says so with an empty cursor */
    struct mp_push *none = claim_after(e, 10, cursor, &n);
    assert_int_equal(n, 0);
    assert_string_equal(cursor, "");
    mp_pushes_free(none, n);
    struct mp_push *rest = claim(e, 10, &n);
    expect_devices(rest, n, (const char *const[]){"d1", NULL});
}

/* A push row keeps a copy of its device's token, platform and token state, so that a claim
 * need not look the device up: the copy is taken when the row is made and follows every change
 * to the device, made through any path. */
static void test_claim_token_copy(void **state)
{
    struct env *e = *state;
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes WHERE token_active"
                                        " AND fcm_token = 'token-' || substr(device_id, 2)"
                                        " AND platform = 'android'"),
                     3);
    th_sql_exec(e->db, "UPDATE mpcpush.devices SET fcm_token = 'token-x', platform = 'ios'"
                       " WHERE device_id = 'd1';"
                       "UPDATE mpcpush.devices SET token_status = 'invalid' WHERE device_id = 'd2';"
                       "DELETE FROM mpcpush.devices WHERE device_id = 'd3'");
    int n = 0;
    struct mp_push *pushes = claim_sorted(e, 10, &n);
    assert_int_equal(n, 3);
    assert_string_equal(pushes[0].fcm_token, "token-x");
    assert_string_equal(pushes[0].platform, "ios");
    assert_true(pushes[0].token_active);
    assert_string_equal(pushes[1].fcm_token, "token-2");
    assert_false(pushes[1].token_active);
    assert_null(pushes[2].fcm_token);
    assert_false(pushes[2].token_active);
    mp_pushes_free(pushes, n);
    /* a device registered again is usable again */
    th_sql_exec(e->db, "UPDATE mpcpush.devices SET token_status = 'active' WHERE device_id = 'd2'");
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes WHERE"
                                        " device_id = 'd2' AND token_active"),
                     1);
}

static void test_record_exact(void **state)
{
    struct env *e = *state;
    int n = 0;
    struct mp_push *pushes = claim_sorted(e, 10, &n);
    assert_int_equal(n, 3);
    /* details with every character an array literal or JSON treats specially, and bytes
     * that are not UTF-8 */
    const char *detail = "q\"uote b\\ack {brace} a,b NULL \x01 caf\xc3\xa9 bad\xff";
    struct mp_push_outcome out[3] = {
        {.push = &pushes[0],
         .verdict = MP_PUSH_SENT,
         .outcome = "ok",
         .name = "projects/p/messages/1"},
        {.push = &pushes[1],
         .verdict = MP_PUSH_RETRY,
         .delay_ms = 30000,
         .outcome = "unavailable",
         .detail = detail},
        {.push = &pushes[2], .verdict = MP_PUSH_TOKEN_DEAD, .outcome = "unregistered"},
    };
    assert_int_equal(mp_pushes_record(e->conn, out, 3), MP_OK);
    char *row = th_sql_text(e->db, "SELECT concat_ws('|', state, covered_id = wanted_id, attempts,"
                                   " lease_id IS NULL AND leased_until IS NULL,"
                                   " last_sent_at IS NOT NULL, fcm_message_name)"
                                   " FROM mpcpush.pushes WHERE device_id = 'd1'");
    assert_string_equal(row, "sent|t|0|t|t|projects/p/messages/1");
    free(row);
    row = th_sql_text(e->db, "SELECT concat_ws('|', state, covered_id < wanted_id, attempts,"
                             " due_at > now() + interval '25 seconds', last_error)"
                             " FROM mpcpush.pushes WHERE device_id = 'd2'");
    assert_string_equal(row, "retry|t|1|t|unavailable: q\"uote b\\ack {brace} a,b NULL \x01"
                             " caf\xc3\xa9 bad\xef\xbf\xbd");
    free(row);
    row =
        th_sql_text(e->db, "SELECT concat_ws('|', p.state, d.token_status, d.token_invalid_reason)"
                           " FROM mpcpush.pushes p JOIN mpcpush.devices d USING (wallet_id,"
                           " device_id) WHERE device_id = 'd3'");
    assert_string_equal(row, "failed|invalid|UNREGISTERED");
    free(row);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes"
                                        " WHERE device_id = 'd3' AND NOT token_active"),
                     1);
    /* the lastPushAt the API shows comes from the delivery */
    row = th_sql_text(e->db, "SELECT mpcpush.device_state('w', 'd1')->>'lastPushAt' IS NOT NULL");
    assert_string_equal(row, "t");
    free(row);
    mp_pushes_free(pushes, n);
}

/* An outcome whose lease was taken over (expired and claimed again) changes nothing; a dead
 * token is not invalidated when the device registered a new one meanwhile. */
static void test_record_stale(void **state)
{
    struct env *e = *state;
    int n = 0, m = 0;
    struct mp_push *first = claim_sorted(e, 10, &n);
    th_sql_exec(e->db, "UPDATE mpcpush.pushes SET leased_until = now() - interval '1 second'"
                       " WHERE device_id = 'd1'");
    struct mp_push *second = claim(e, 10, &m);
    assert_int_equal(m, 1);
    th_sql_exec(e->db, "UPDATE mpcpush.devices SET fcm_token = 'token-new' WHERE device_id = 'd2'");
    struct mp_push_outcome out[2] = {
        {.push = &first[0], .verdict = MP_PUSH_SENT, .outcome = "ok"},
        {.push = &first[1], .verdict = MP_PUSH_TOKEN_DEAD, .outcome = "unregistered"},
    };
    assert_int_equal(mp_pushes_record(e->conn, out, 2), MP_OK);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes WHERE"
                                        " device_id = 'd1' AND state = 'leased'"
                                        " AND covered_id = 0"),
                     1);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.devices WHERE"
                                        " token_status = 'active'"),
                     3);
    /* the wakeup refused for the old token is due at once, for the new one */
    char *row = th_sql_text(e->db, "SELECT concat_ws('|', state, covered_id < wanted_id,"
                                   " due_at <= now(), fcm_token, token_active)"
                                   " FROM mpcpush.pushes WHERE device_id = 'd2'");
    assert_string_equal(row, "ready|t|t|token-new|t");
    free(row);
    assert_int_equal(mp_pushes_record(e->conn, out, 0), MP_OK); /* an empty batch is fine */
    mp_pushes_free(second, m);
    mp_pushes_free(first, n);
}

/* A wakeup delivered to the old token while the device registered a new one covers nothing:
 * the row stays owed, due at once, for the new token. */
static void test_record_after_new_token(void **state)
{
    struct env *e = *state;
    int n = 0;
    struct mp_push *pushes = claim_sorted(e, 10, &n);
    assert_int_equal(n, 3);
    struct mp_device_input again = {
        .wallet_id = "w", .device_id = "d1", .platform = "android", .fcm_token = "token-1-new"};
    bool created = true;
    assert_int_equal(mp_devices_put(e->conn, &again, &created), MP_OK);
    assert_false(created);
    struct mp_push_outcome out[2] = {
        {.push = &pushes[0], .verdict = MP_PUSH_SENT, .outcome = "ok", .name = "m/1"},
        {.push = &pushes[1], .verdict = MP_PUSH_SENT, .outcome = "ok", .name = "m/2"},
    };
    assert_int_equal(mp_pushes_record(e->conn, out, 2), MP_OK);
    char *row = th_sql_text(e->db, "SELECT concat_ws('|', state, covered_id < wanted_id,"
                                   " due_at <= now(), lease_id IS NULL, fcm_token)"
                                   " FROM mpcpush.pushes WHERE device_id = 'd1'");
    assert_string_equal(row, "ready|t|t|t|token-1-new");
    free(row);
    row = th_sql_text(e->db, "SELECT concat_ws('|', state, covered_id = wanted_id)"
                             " FROM mpcpush.pushes WHERE device_id = 'd2'");
    assert_string_equal(row, "sent|t");
    free(row);
    mp_pushes_free(pushes, n);
}

/* ---- records and ingests lock push rows in the same order ---- */

struct recorder {
    const char *db;
    struct mp_push_outcome *out;
    int n;
    enum mp_result result;
};

static void *record_main(void *arg)
{
    struct recorder *r = arg;
    PGconn *conn = NULL;
    r->result = mp_db_connect(r->db, "test", &conn);
    if (!r->result)
        r->result = mp_pushes_record(conn, r->out, r->n);
    PQfinish(conn);
    return NULL;
}

/* Outcomes given in descending key order are applied in ascending order, as the ingest
 * statement locks rows: while another transaction holds d2, the record has already updated d1
 * (it waits on d2 with d1 in hand), never the reverse. This pins the plan (a nested loop over
 * the sorted outcomes) for a table of some thousands of rows; a deadlock that remains on other
 * plans is retried (test_ingest_retries_lost_deadlock). */
static void test_record_locks_in_key_order(void **state)
{
    struct env *e = *state;
    th_sql_exec(e->db, "INSERT INTO mpcpush.pushes (wallet_id, device_id, wanted_id, covered_id)"
                       " SELECT 'filler', 'f' || k, 1, 1 FROM generate_series(1, 5000) k;"
                       "ANALYZE mpcpush.pushes");
    /* the rows rewritten in descending key order: in the table, d1 is now last (a record
     * that followed the table's order, or the order given, would lock d2 first) */
    for (int k = 3; k >= 1; k--)
        tx_sql_execf(e->db,
                     "UPDATE mpcpush.pushes SET due_at = due_at - interval '1 minute'"
                     " WHERE device_id = 'd%d'",
                     k);
    int n = 0;
    struct mp_push *pushes = claim_sorted(e, 10, &n);
    assert_int_equal(n, 3);
    struct mp_push_outcome out[2] = {
        {.push = &pushes[1], .verdict = MP_PUSH_SENT, .outcome = "ok"}, /* d2 */
        {.push = &pushes[0], .verdict = MP_PUSH_SENT, .outcome = "ok"}, /* d1 */
    };
    PGconn *holder = PQconnectdb(e->db);
    assert_int_equal(PQstatus(holder), CONNECTION_OK);
    PQclear(PQexec(holder, "BEGIN"));
    PGresult *res =
        PQexec(holder, "SELECT 1 FROM mpcpush.pushes WHERE device_id = 'd2' FOR UPDATE");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    PQclear(res);
    struct recorder rec = {.db = e->db, .out = out, .n = 2};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, record_main, &rec), 0);
    tx_wait_lock_waiter(e->db, "transactionid");
    res = PQexec(holder, "SELECT 1 FROM mpcpush.pushes WHERE device_id = 'd1' FOR UPDATE NOWAIT");
    ExecStatusType status = PQresultStatus(res);
    PQclear(res);
    PQclear(PQexec(holder, "ROLLBACK"));
    PQfinish(holder);
    pthread_join(thread, NULL);
    assert_int_equal(rec.result, MP_OK);
    if (status != PGRES_FATAL_ERROR)
        fail_msg("d1 was free while the record waited for d2: it locks in the order given");
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes"
                                        " WHERE state = 'sent' AND covered_id = wanted_id"),
                     2);
    mp_pushes_free(pushes, n);
}

/* ---- a registration racing with the ingest of a message for the device ---- */

/* Submits a webhook with a message for w/d9 and returns without waiting. */
static void submit_message(struct mp_ingest *ingest, struct mp_ingest_job *job, struct job_wait *w)
{
    *job = (struct mp_ingest_job){.kind = MP_INGEST_EVENT_DEVICE,
                                  .dedupe_key = "v2:race-1",
                                  .api_version = 2,
                                  .event_type = "NCW_DEVICE_MESSAGE",
                                  .raw_body = "{\"message\":{\"round\":1}}",
                                  .wallet_id = "w",
                                  .device_id = "d9",
                                  .payload_path = "{message}",
                                  .ttl_seconds = 3600};
    submit_job(ingest, job, w);
}

static void register_d9(PGconn *conn)
{
    struct mp_device_input in = {
        .wallet_id = "w", .device_id = "d9", .platform = "android", .fcm_token = "token-9"};
    bool created = false;
    assert_int_equal(mp_devices_put(conn, &in, &created), MP_OK);
    assert_true(created);
}

/* The message is owed a wakeup, for the device's token. */
static void expect_d9_owed(const struct env *e)
{
    char *row = th_sql_text(e->db, "SELECT concat_ws('|', p.wanted_id = m.id, p.covered_id < m.id,"
                                   " p.fcm_token, p.token_active)"
                                   " FROM mpcpush.messages m LEFT JOIN mpcpush.pushes p"
                                   " USING (wallet_id, device_id) WHERE m.device_id = 'd9'");
    if (!row || strcmp(row, "t|t|token-9|t") != 0)
        fail_msg("the message for the new device owes no wakeup: %s", row ? row : "(none)");
    free(row);
}

/* The ingest statement takes its snapshot, then waits for the writers' lock; meanwhile the
 * device registers (and sees no message). The ingest, which does not see the device, must
 * still leave the message owed a wakeup. */
static void test_registration_during_ingest(void **state)
{
    struct env *e = *state;
    struct mp_ingest *ingest = NULL;
    assert_int_equal(mp_ingest_start(e->db, 10, &ingest), MP_OK);
    PGconn *holder = PQconnectdb(e->db);
    assert_int_equal(PQstatus(holder), CONNECTION_OK);
    PQclear(PQexec(holder, "BEGIN"));
    PQclear(PQexec(holder, "SELECT pg_advisory_xact_lock(7164627561)"));
    struct mp_ingest_job job;
    struct job_wait w;
    submit_message(ingest, &job, &w);
    tx_wait_lock_waiter(e->db, "advisory");
    register_d9(e->conn);
    PQclear(PQexec(holder, "ROLLBACK"));
    PQfinish(holder);
    wait_job(&job, &w);
    mp_ingest_stop(ingest);
    expect_d9_owed(e);
}

/* The other order: the registration's transaction is open (its snapshot has no message) when
 * the ingest runs (its snapshot has no device). */
static void test_ingest_during_registration(void **state)
{
    struct env *e = *state;
    struct mp_ingest *ingest = NULL;
    assert_int_equal(mp_ingest_start(e->db, 10, &ingest), MP_OK);
    PGconn *conn = NULL;
    assert_int_equal(mp_db_connect(e->db, "test", &conn), MP_OK);
    PQclear(PQexec(conn, "BEGIN"));
    register_d9(conn);
    struct mp_ingest_job job;
    struct job_wait w;
    submit_message(ingest, &job, &w);
    usleep(300000); /* let the ingest statement start (it waits for the push row, or commits) */
    PQclear(PQexec(conn, "COMMIT"));
    PQfinish(conn);
    wait_job(&job, &w);
    mp_ingest_stop(ingest);
    expect_d9_owed(e);
}

/* The ingest statement loses a deadlock (another transaction holds d2, then asks for d1, which
 * a wallet-wide event's ingest holds while it waits for d2): the writer writes the batch again
 * and the event is stored, instead of answering 503. */
static void test_ingest_retries_lost_deadlock(void **state)
{
    struct env *e = *state;
    struct mp_ingest *ingest = NULL;
    assert_int_equal(mp_ingest_start(e->db, 10, &ingest), MP_OK);
    PGconn *other = PQconnectdb(e->db);
    assert_int_equal(PQstatus(other), CONNECTION_OK);
    PQclear(PQexec(other, "SET deadlock_timeout = '20s'")); /* the ingest detects it first */
    PQclear(PQexec(other, "BEGIN"));
    PGresult *res = PQexec(other, "SELECT 1 FROM mpcpush.pushes WHERE device_id = 'd2' FOR UPDATE");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    PQclear(res);
    struct mp_ingest_job job = {.kind = MP_INGEST_EVENT_WALLET,
                                .dedupe_key = "v2:deadlock-1",
                                .api_version = 2,
                                .event_type = "NCW_EVENT",
                                .raw_body = "{\"data\":{\"n\":1}}",
                                .wallet_id = "w",
                                .ttl_seconds = 3600};
    struct job_wait w;
    submit_job(ingest, &job, &w);
    tx_wait_lock_waiter(e->db, "transactionid");
    res = PQexec(other, "SELECT 1 FROM mpcpush.pushes WHERE device_id = 'd1' FOR UPDATE");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK); /* the ingest gave way */
    PQclear(res);
    PQclear(PQexec(other, "ROLLBACK"));
    PQfinish(other);
    wait_job(&job, &w);
    mp_ingest_stop(ingest);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages m JOIN"
                                        " mpcpush.webhook_events v ON v.id = m.event_id"
                                        " WHERE v.dedupe_key = 'v2:deadlock-1'"),
                     3);
}

/* Quota errors from batches already in flight when the project paused do not lengthen the
 * pause: only a quota error after a pause has run out counts as one more in a row. */
static void test_pause_strikes_once_per_pause(void **state)
{
    struct env *e = *state;
    long long ms = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(mp_pushes_pause(e->conn, "project", "QUOTA_EXCEEDED", -1, 600, &ms),
                         MP_OK);
    assert_in_range(ms, 59000, 60000);
    assert_int_equal(th_sql_long(e->db, "SELECT strikes FROM mpcpush.fcm_pauses"), 1);
    /* the pause ran out and the quota is still exceeded: twice as long */
    th_sql_exec(e->db, "UPDATE mpcpush.fcm_pauses SET paused_until = now() - interval '1 s'");
    assert_int_equal(mp_pushes_pause(e->conn, "project", "QUOTA_EXCEEDED", -1, 600, &ms), MP_OK);
    assert_in_range(ms, 119000, 120000);
    assert_int_equal(th_sql_long(e->db, "SELECT strikes FROM mpcpush.fcm_pauses"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_session_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_upkeep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_leases_and_hides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_plan_walks_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_token_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_stale, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_after_new_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_locks_in_key_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registration_during_ingest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_during_registration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_retries_lost_deadlock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_strikes_once_per_pause, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
