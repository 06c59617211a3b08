/* Fault: the receiver is killed with SIGKILL while 16 connections post distinct signed webhooks.
 * Every webhook it answered 200 is in the database, exactly once, with its one message; nothing
 * unanswered is half-stored. Restarted, it serves again, and the webhooks that got no answer
 * (Fireblocks retries them) are all accepted, each stored once: those that had committed before
 * the kill come back as duplicates, not as second copies. And SIGTERM while the database stalls
 * a write ends the process cleanly, answering that webhook 503. */
#define _GNU_SOURCE
#include "fault_util.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONNS   16
#define DEVICES 32

/* Asserts what the database holds against what the load generator was told. */
static void assert_stored(const struct fu_load *l, const char *db, bool all, const char *when)
{
    struct fu_stored s;
    fu_load_stored(l, db, &s);
    print_message("%s: %d webhooks, %d answered 200, %d stored (%d of them never answered 200),"
                  " %ld rows in webhook_events\n",
                  when, fu_load_count(l), s.answered_ok, s.stored, s.stored_unanswered, s.events);
    if (s.ok_missing)
        fail_msg("%s: %d webhooks answered 200 are not in the database (%s)", when, s.ok_missing,
                 s.first_problem);
    if (s.bad_messages)
        fail_msg("%s: %d stored webhooks do not have exactly one message row (%s)", when,
                 s.bad_messages, s.first_problem);
    if (s.foreign_events)
        fail_msg("%s: %ld rows in webhook_events match no webhook that was sent", when,
                 s.foreign_events);
    if (s.duplicate_payloads)
        fail_msg("%s: %ld duplicate message rows", when, s.duplicate_payloads);
    if (s.events != s.stored)
        fail_msg("%s: %ld inbox rows for %d distinct webhooks", when, s.events, s.stored);
    if (all && s.stored != fu_load_count(l))
        fail_msg("%s: %d of %d webhooks stored", when, s.stored, fu_load_count(l));
}

static void test_sigkill_receiver_under_load(void **state)
{
    struct tx_env *e = *state;
    tx_start(e, 0, NULL);
    struct fu_load *l = fu_load_new(e->proc.base, CONNS, 0, "kw", "kd-", DEVICES);

    /* Load flows... */
    long t0 = tx_now_ms();
    fu_load_run(l, 1500, true);
    struct fu_tally before;
    fu_load_tally(l, &before);
    if (before.ok < 50 || before.other || before.unavailable || before.none)
        fail_msg("before the kill: %d answered 200, %d 503, %d no answer, %d other (%ld %s)",
                 before.ok, before.unavailable, before.none, before.other, before.other_status,
                 before.other_code);
    /* ...and the receiver dies mid-stream. */
    int in_flight = fu_load_in_flight(l);
    pid_t old_pid = e->proc.pid;
    assert_int_equal(th_proc_stop(&e->proc, SIGKILL), 128 + SIGKILL);
    e->running = false;
    long killed = tx_now_ms();
    fu_load_run(l, 300, true); /* in-flight requests fail, new ones are refused */
    fu_load_settle(l, 5000);
    struct fu_tally after;
    fu_load_tally(l, &after);
    print_message("killed after %ld ms: %d requests in flight, %d answered 200 in all, %d never"
                  " answered\n",
                  killed - t0, in_flight, after.ok, after.none);
    /* Nothing but 200 or no answer at all: a dying receiver must not say 5xx for a webhook it
     * may have stored, nor 200 for one it did not. */
    if (after.other || after.unavailable)
        fail_msg("around the kill: %d answers other than 200 (first: %ld %s), %d 503", after.other,
                 after.other_status, after.other_code, after.unavailable);
    assert_true(after.none > 0);
    assert_stored(l, e->db, false, "after SIGKILL");

    /* Restarted, it continues; the unanswered webhooks are retried, as Fireblocks would. */
    long restart = tx_now_ms();
    tx_start(e, 0, NULL);
    assert_true(e->proc.pid != old_pid);
    print_message("restarted and healthy in %ld ms\n", tx_now_ms() - restart);
    fu_load_target(l, e->proc.base);
    int unanswered = fu_load_requeue(l);
    fu_load_run(l, 1000, true);
    int left = fu_load_retry_all(l, 30000);
    if (left)
        fail_msg("%d webhooks still not accepted 30 s after the restart", left);
    struct fu_tally end;
    fu_load_tally(l, &end);
    assert_int_equal(end.ok, fu_load_count(l));
    print_message("after the restart: %d unanswered webhooks retried, %d webhooks in all\n",
                  unanswered, fu_load_count(l));
    assert_stored(l, e->db, true, "after the restart and retries");
    fu_load_free(l);
}

/* SIGTERM while a webhook waits on a stalled database (here: the ingest writers' lock, held by
 * another session). The receiver gives in-flight requests 5 s, then gives up on the stuck
 * write: the webhook is answered 503 (Fireblocks will resend it), the process exits 0, and
 * nothing is stored for it. */
static void *post_one(void *arg)
{
    tx_http_parallel(arg, 1);
    return NULL;
}

static void test_sigterm_while_database_stalls(void **state)
{
    struct tx_env *e = *state;
    tx_start(e, 0, NULL);
    PGconn *holder = PQconnectdb(e->db);
    assert_int_equal(PQstatus(holder), CONNECTION_OK);
    PQclear(PQexec(holder, "BEGIN"));
    PQclear(PQexec(holder, "SELECT pg_advisory_xact_lock(7164627561)"));
    const char *body = "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"t\",\"timestamp\":1,"
                       "\"walletId\":\"w-stall\",\"deviceId\":\"d\",\"message\":{\"n\":1}}";
    char *sig = tx_hdr_v1(tx_keys()->v1a, body);
    struct tx_call call = {.method = "POST", .body = body, .len = strlen(body)};
    snprintf(call.url, sizeof(call.url), "%s/webhooks/fireblocks", e->proc.base);
    call.headers[0] = "Content-Type: application/json";
    call.headers[1] = sig;
    pthread_t poster;
    assert_int_equal(pthread_create(&poster, NULL, post_one, &call), 0);
    tx_wait_lock_waiter(e->db, "advisory");
    long t0 = tx_now_ms();
    int status = th_proc_stop(&e->proc, SIGTERM);
    e->running = false;
    long took = tx_now_ms() - t0;
    pthread_join(poster, NULL);
    PQclear(PQexec(holder, "ROLLBACK"));
    PQfinish(holder);
    print_message("SIGTERM with a webhook stuck on the database: exit %d after %ld ms, the"
                  " webhook answered %ld\n",
                  status, took, call.status);
    assert_int_equal(status, 0);
    assert_int_equal(call.status, 503);
    if (took > 15000) /* 5 s of grace, then the stuck write is cancelled */
        fail_msg("the receiver took %ld ms to stop: it waited for the database", took);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.webhook_events"), 0);
    tx_calls_free(&call, 1);
    free(sig);
}

int main(void)
{
    tx_keys();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sigkill_receiver_under_load, tx_setup_db, tx_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_while_database_stalls, tx_setup_db,
                                        tx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
