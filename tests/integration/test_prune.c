/* Pruning: acknowledged and expired messages past MPCPUSH_RETENTION_ACKED and inbox events past
 * MPCPUSH_RETENTION_EVENTS are deleted (in bounded batches), pending messages never are, push
 * rows of removed devices go once they owe nothing, and of several processes on one database
 * exactly one prunes, another taking over when it goes. */
#define _GNU_SOURCE
#include "pickup_util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Everything that identifies the pending messages, as one text, to compare before and after. */
static char *pending_snapshot(const char *db)
{
    return th_sql_text(db, "SELECT coalesce(string_agg(concat_ws('|', wallet_id, device_id, id,"
                           " source, payload::text, received_at, expires_at), E'\\n'"
                           " ORDER BY id), '') FROM mpcpush.messages"
                           " WHERE acked_at IS NULL AND expires_at > now()");
}

/* Waits up to timeout_ms for the query to count 0; returns the last count. */
static long wait_zero(const char *db, const char *sql, int timeout_ms)
{
    long deadline = tx_now_ms() + timeout_ms, n = -1;
    while ((n = th_sql_long(db, sql)) != 0 && tx_now_ms() < deadline)
        usleep(200000);
    return n;
}

static void start_pruning(struct tx_env *e, const char *acked, const char *events)
{
    char a[64], ev[64];
    snprintf(a, sizeof(a), "MPCPUSH_RETENTION_ACKED=%s", acked);
    snprintf(ev, sizeof(ev), "MPCPUSH_RETENTION_EVENTS=%s", events);
    const char *extra[] = {"MPCPUSH_PRUNE_INTERVAL=1", a, ev, NULL};
    tx_start(e, 0, extra);
}

static void test_prunes_acked_expired_and_old_events_keeps_pending(void **state)
{
    struct tx_env *e = *state;
    start_pruning(e, "0", "3600");
    pu_register(e, "w-pr", "d1");
    pu_register(e, "w-pr", "d2");
    char *ids[6];
    for (int i = 0; i < 6; i++)
        ids[i] = pu_enqueue(e, "w-pr", "d1", "{\"keep\":false}", 0);
    char *brief = pu_enqueue(e, "w-pr", "d2", "{\"ttl\":1}", 1);
    char *kept_api = pu_enqueue(e, "w-pr", "d2", "{\"keep\":true}", 0);
    pu_webhook_message(e->proc.base, "w-pr", "d1", "{\"keep\":\"webhook\"}");
    pu_webhook_message(e->proc.base, "w-pr", "unregistered", "{\"keep\":\"stranger\"}");
    pu_webhook_message(e->proc.base, "w-pr", "d2", "{\"keep\":\"recent event\"}");
    /* Two of the inbox events are from long ago (their messages are still pending). */
    th_sql_exec(e->db, "UPDATE mpcpush.webhook_events SET received_at = now() - interval '2 hours'"
                       " WHERE id IN (SELECT id FROM mpcpush.webhook_events ORDER BY id LIMIT 2)");
    /* An old pending message: old age alone never prunes. */
    th_sql_exec(e->db, "UPDATE mpcpush.messages SET received_at = now() - interval '30 days'"
                       " WHERE payload = '{\"keep\": \"stranger\"}'");

    char body[64];
    snprintf(body, sizeof(body), "{\"upTo\":\"%s\"}", ids[3]);
    assert_int_equal(pu_ack(e, "w-pr", "d1", body), 4);
    snprintf(body, sizeof(body), "{\"ids\":[\"%s\"]}", ids[5]);
    assert_int_equal(pu_ack(e, "w-pr", "d1", body), 1);
    sleep(2); /* the 1-second message expires */
    char *before = pending_snapshot(e->db);
    long pending = th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pending_messages");
    assert_int_equal(pending, 5); /* ids[4], kept_api and three webhook messages */

    long left = wait_zero(e->db,
                          "SELECT count(*) FROM mpcpush.messages WHERE acked_at IS NOT NULL"
                          " OR expires_at <= now()",
                          8000);
    if (left != 0)
        fail_msg("%ld acknowledged or expired messages were not pruned (log %s)", left,
                 e->proc.log_path);
    left = wait_zero(e->db,
                     "SELECT count(*) FROM mpcpush.webhook_events"
                     " WHERE received_at < now() - interval '1 hour'",
                     8000);
    if (left != 0)
        fail_msg("%ld old inbox events were not pruned", left);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"), 1);

    /* Pending data untouched, row for row, and still picked up through the API. */
    char *after = pending_snapshot(e->db);
    assert_string_equal(after, before);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages"), 5);
    json_t *page = pu_fetch(e, "w-pr", "d1", NULL);
    assert_int_equal(pu_count(page), 2);
    assert_string_equal(pu_id(page, 0), ids[4]);
    json_decref(page);
    page = pu_fetch(e, "w-pr", "d2", NULL);
    assert_int_equal(pu_count(page), 2);
    assert_string_equal(pu_id(page, 0), kept_api);
    json_decref(page);
    page = pu_fetch(e, "w-pr", "unregistered", NULL);
    assert_int_equal(pu_count(page), 1);
    json_decref(page);
    if (pu_log_count(e->proc.log_path, "event=pruned") == 0)
        fail_msg("no event=pruned line in %s", e->proc.log_path);
    free(before);
    free(after);
    for (int i = 0; i < 6; i++)
        free(ids[i]);
    free(brief);
    free(kept_api);
}

/* A push row goes once its device is gone and it owes nothing and is not leased; the others
 * stay: a device's own row, a row still owing a wakeup, a leased row. */
static void test_prunes_push_rows_of_removed_devices(void **state)
{
    struct tx_env *e = *state;
    th_sql_exec(e->db,
                "INSERT INTO mpcpush.devices (wallet_id, device_id, platform, fcm_token)"
                " SELECT 'w-pp', 'd' || k, 'android', 'token-' || k FROM generate_series(1, 4) k;"
                "INSERT INTO mpcpush.pushes (wallet_id, device_id, wanted_id, covered_id, due_at)"
                " SELECT 'w-pp', 'd' || k, 5, 5, now() FROM generate_series(1, 4) k;"
                "INSERT INTO mpcpush.pushes (wallet_id, device_id, wanted_id, covered_id)"
                " VALUES ('w-pp', 'never-registered', 3, 3);"
                "UPDATE mpcpush.pushes SET wanted_id = 7, due_at = now() + interval '1 hour'"
                " WHERE device_id = 'd3';"
                "UPDATE mpcpush.pushes SET lease_id = 1, state = 'leased' WHERE device_id = 'd4';"
                "DELETE FROM mpcpush.devices WHERE device_id IN ('d2', 'd3', 'd4')");
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes"
                                        " WHERE fcm_token IS NULL"),
                     4);
    start_pruning(e, "3600", "3600");
    long left = wait_zero(e->db,
                          "SELECT count(*) FROM mpcpush.pushes"
                          " WHERE device_id IN ('d2', 'never-registered')",
                          8000);
    if (left != 0)
        fail_msg("%ld push rows of removed devices were not pruned (log %s)", left,
                 e->proc.log_path);
    char *kept = th_sql_text(e->db, "SELECT string_agg(device_id, ',' ORDER BY device_id)"
                                    " FROM mpcpush.pushes");
    assert_string_equal(kept, "d1,d3,d4");
    free(kept);
}

/* Retention is a minimum age: recent acknowledged or expired rows stay until they are old. */
static void test_retention_window(void **state)
{
    struct tx_env *e = *state;
    start_pruning(e, "3600", "3600");
    pu_register(e, "w-ret", "d");
    char *ids[4];
    for (int i = 0; i < 4; i++)
        ids[i] = pu_enqueue(e, "w-ret", "d", "{\"n\":1}", i == 3 ? 1 : 0);
    char body[64];
    snprintf(body, sizeof(body), "{\"upTo\":\"%s\"}", ids[1]);
    assert_int_equal(pu_ack(e, "w-ret", "d", body), 2);
    /* ids[0]: acknowledged 2 hours ago; ids[1]: just now; ids[2]: pending but expired 2 hours
     * ago; ids[3]: expired a moment ago. */
    tx_sql_execf(e->db,
                 "UPDATE mpcpush.messages SET acked_at = now() - interval '2 hours'"
                 " WHERE id = %s",
                 ids[0]);
    tx_sql_execf(e->db,
                 "UPDATE mpcpush.messages SET expires_at = now() - interval '2 hours'"
                 " WHERE id = %s",
                 ids[2]);
    sleep(2);
    long left = wait_zero(e->db,
                          "SELECT count(*) FROM mpcpush.messages"
                          " WHERE acked_at < now() - interval '1 hour'"
                          " OR expires_at < now() - interval '1 hour'",
                          8000);
    assert_int_equal(left, 0);
    sleep(2); /* two more rounds: the recent ones must survive them */
    char *kept = th_sql_text(e->db, "SELECT string_agg(id::text, ',' ORDER BY id)"
                                    " FROM mpcpush.messages");
    char want[64];
    snprintf(want, sizeof(want), "%s,%s", ids[1], ids[3]);
    assert_string_equal(kept, want);
    /* Neither is pending. */
    json_t *page = pu_fetch(e, "w-ret", "d", NULL);
    assert_int_equal(pu_count(page), 0);
    json_decref(page);
    free(kept);
    for (int i = 0; i < 4; i++)
        free(ids[i]);
}

/* More rows than one batch (5000): all go, in several statements; pending stays. */
static void test_prunes_beyond_one_batch(void **state)
{
    struct tx_env *e = *state;
    /* The rows go in before any process runs: 12000 acknowledged an hour ago, 7000 expired a
     * day ago, for 200 devices. */
    th_sql_exec(e->db, "INSERT INTO mpcpush.messages (wallet_id, device_id, source, payload,"
                       " received_at, expires_at, acked_at)"
                       " SELECT 'w-bulk', 'd' || (g % 100), 'api', '{}', now() - interval '1 day',"
                       "  now() + interval '1 day', now() - interval '1 hour'"
                       " FROM generate_series(1, 12000) g");
    th_sql_exec(e->db, "INSERT INTO mpcpush.messages (wallet_id, device_id, source, payload,"
                       " received_at, expires_at)"
                       " SELECT 'w-bulk', 'x' || (g % 100), 'api', '{}', now() - interval '2 days',"
                       "  now() - interval '1 day' FROM generate_series(1, 7000) g");
    start_pruning(e, "60", "3600");
    pu_register(e, "w-bulk", "d");
    char *keep = pu_enqueue(e, "w-bulk", "d", "{\"keep\":true}", 0);
    long left = wait_zero(e->db,
                          "SELECT count(*) FROM mpcpush.messages WHERE acked_at IS NOT NULL"
                          " OR expires_at <= now()",
                          20000);
    if (left != 0)
        fail_msg("%ld of 19000 prunable rows are left (log %s)", left, e->proc.log_path);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.messages"), 1);
    json_t *page = pu_fetch(e, "w-bulk", "d", NULL);
    assert_int_equal(pu_count(page), 1);
    assert_string_equal(pu_id(page, 0), keep);
    json_decref(page);
    free(keep);
}

/* ---- one pruner among many ---- */

static struct th_proc second;

static int teardown_second(void **state)
{
    if (second.pid > 0 && th_proc_stop(&second, SIGTERM) != 0)
        fprintf(stderr, "the second receiver did not exit 0 (log %s)\n", second.log_path);
    return tx_teardown(state);
}

static int elected(const char *log)
{
    return pu_log_count(log, "event=pruner_elected");
}

static void ack_all(struct tx_env *e, const char *wallet, const char *device, int n)
{
    char *last = NULL;
    for (int i = 0; i < n; i++) {
        free(last);
        last = pu_enqueue(e, wallet, device, "{}", 0);
    }
    char body[64];
    snprintf(body, sizeof(body), "{\"upTo\":\"%s\"}", last);
    assert_int_equal(pu_ack(e, wallet, device, body), n);
    free(last);
}

static void test_one_pruner_among_two_receivers(void **state)
{
    struct tx_env *e = *state;
    start_pruning(e, "0", "3600");
    const char *extra[] = {"MPCPUSH_PRUNE_INTERVAL=1", "MPCPUSH_RETENTION_ACKED=0", NULL};
    th_mpcpush_start(&second, "receiver", e->db, extra);
    sleep(3); /* three rounds each */
    int a = elected(e->proc.log_path), b = elected(second.log_path);
    if (a + b != 1)
        fail_msg("pruner_elected: %d times in the first receiver's log, %d in the second's "
                 "(want exactly one in total)",
                 a, b);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM pg_locks l"
                                        " JOIN pg_database d ON d.oid = l.database"
                                        " WHERE l.locktype = 'advisory' AND l.granted"
                                        " AND d.datname = current_database()"),
                     1);
    /* It prunes; the other never does. */
    pu_register(e, "w-one", "d");
    ack_all(e, "w-one", "d", 5);
    assert_int_equal(wait_zero(e->db, "SELECT count(*) FROM mpcpush.messages", 6000), 0);
    struct th_proc *pruner = a ? &e->proc : &second, *idle = a ? &second : &e->proc;
    assert_int_equal(pu_log_count(idle->log_path, "event=pruned"), 0);
    assert_true(pu_log_count(pruner->log_path, "event=pruned") > 0);

    /* The pruner goes away: the other one takes over. */
    if (pruner == &second) {
        assert_int_equal(th_proc_stop(&second, SIGTERM), 0);
    } else {
        assert_int_equal(tx_stop(e), 0);
        e->proc = second; /* keep talking to the one left */
        e->running = true;
        second.pid = 0;
    }
    long deadline = tx_now_ms() + 5000;
    while (elected(e->proc.log_path) == 0 && tx_now_ms() < deadline)
        usleep(200000);
    if (elected(e->proc.log_path) != 1)
        fail_msg("the remaining receiver did not take over pruning (log %s)", e->proc.log_path);
    ack_all(e, "w-one", "d", 3);
    assert_int_equal(wait_zero(e->db, "SELECT count(*) FROM mpcpush.messages", 6000), 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, tx_setup_db, tx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_prunes_acked_expired_and_old_events_keeps_pending),
        T(test_prunes_push_rows_of_removed_devices),
        T(test_retention_window),
        T(test_prunes_beyond_one_batch),
        cmocka_unit_test_setup_teardown(test_one_pruner_among_two_receivers, tx_setup_db,
                                        teardown_second),
    };
    if (getenv("MPCPUSH_TEST_FILTER")) /* e.g. "*pruner*" */
        cmocka_set_test_filter(getenv("MPCPUSH_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
