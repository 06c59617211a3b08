/* Fault: `mpcpush run` (receiver and dispatcher) is killed with SIGKILL while a batch of wakeups
 * is in flight (every FCM answer held back by a SLOW fault), with more pushes still queued behind
 * it. Restarted, it wakes every device whose messages are pending, each with a wakeup covering
 * its newest message; the only duplicates are the batch that was in flight (the emulator had
 * accepted it, the dead process never recorded it), so they number at most one batch. */
#define _GNU_SOURCE
#include "fault_util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEVICES 200
#define BATCH   50
#define TAG     "runkill"

static void wait_all_sent(const char *db, long n, int timeout_ms)
{
    long sent = eu_wait_sql(db, n, timeout_ms,
                            "SELECT count(*) FROM mpcpush.pushes WHERE state = 'sent' AND"
                            " covered_id >= wanted_id AND lease_id IS NULL");
    if (sent != n) {
        char *states = tx_sql_textf(db, "SELECT string_agg(state || '=' || n, ' ') FROM (SELECT"
                                        " state, count(*) n FROM mpcpush.pushes GROUP BY 1) s");
        fail_msg("%ld of %ld pushes sent within %d ms (%s)", sent, n, timeout_ms,
                 states ? states : "");
    }
}

static void test_sigkill_run_mid_batch(void **state)
{
    struct eu_env *env = *state;
    eu_start(&env->emu, NULL);
    /* One dispatcher worker, so that exactly one batch is in flight at the kill. */
    const char *extra[] = {"MPCPUSH_DISPATCH_BATCH=50", "MPCPUSH_DISPATCH_WORKERS=1",
                           "MPCPUSH_FCM_TIMEOUT=10", NULL};
    eu_start_mpcpush(&env->t, "run", &env->emu, extra);
    fu_register(&env->t, "w", "d-", TAG, 0, DEVICES);
    eu_faults(&env->emu, "[{\"token\":\"*\",\"error\":\"SLOW\",\"delayMs\":4000}]", false);
    fu_enqueue(&env->t, "w", "d-", 0, DEVICES);

    /* A batch reaches the emulator, whose answers are held back. */
    long slowed = 0;
    for (long deadline = tx_now_ms() + 10000; tx_now_ms() < deadline; usleep(20000))
        if ((slowed = eu_stat(&env->emu, "slowed")) >= BATCH)
            break;
    if (slowed < BATCH)
        fail_msg("only %ld requests reached the emulator within 10 s", slowed);
    usleep(100000);
    long leased = th_sql_long(env->t.db, "SELECT count(*) FROM mpcpush.pushes WHERE"
                                         " state = 'leased'");
    long accepted = eu_stat(&env->emu, "accepted");
    pid_t old_pid = env->t.proc.pid;
    assert_int_equal(th_proc_stop(&env->t.proc, SIGKILL), 128 + SIGKILL);
    env->t.running = false;
    long killed = tx_now_ms();
    print_message("SIGKILL with %ld pushes leased, %ld requests accepted by the emulator (answers"
                  " held back), %ld pushes not yet claimed\n",
                  leased, accepted, DEVICES - leased);
    assert_true(leased >= 1 && leased <= BATCH);
    assert_true(DEVICES - leased > 0); /* some work had not been claimed yet */

    /* Restarted: everything pending goes out. */
    eu_faults_clear(&env->emu);
    eu_start_mpcpush(&env->t, "run", &env->emu, extra);
    assert_true(env->t.proc.pid != old_pid);
    wait_all_sent(env->t.db, DEVICES, 30000);
    long done = tx_now_ms();
    usleep(300000);

    int counts[DEVICES];
    long long latest[DEVICES];
    size_t total = fu_records(&env->emu, TAG, DEVICES, counts, latest);
    PGresult *res = fu_query(env->t.db, "SELECT substr(device_id, 3)::int, max(id) FROM"
                                        " mpcpush.messages GROUP BY device_id");
    assert_int_equal(PQntuples(res), DEVICES);
    for (int r = 0; r < PQntuples(res); r++) {
        int k = atoi(PQgetvalue(res, r, 0));
        long long newest = atoll(PQgetvalue(res, r, 1));
        if (counts[k] < 1)
            fail_msg("device d-%d was never woken after the restart", k);
        if (latest[k] < newest)
            fail_msg("device d-%d: its wakeups cover message %lld, its newest is %lld", k,
                     latest[k], newest);
    }
    PQclear(res);
    long duplicates = (long)total - DEVICES;
    int twice = 0;
    for (int k = 0; k < DEVICES; k++)
        twice += counts[k] > 1;
    print_message("after the restart: all %d devices woken within %ld ms of the kill; %zu"
                  " wakeups, %ld duplicates (%d devices woken twice; batch size %d)\n",
                  DEVICES, done - killed, total, duplicates, twice, BATCH);
    if (duplicates > BATCH)
        fail_msg("%ld duplicate wakeups after the crash, more than one batch (%d)", duplicates,
                 BATCH);
    if (duplicates > leased)
        fail_msg("%ld duplicate wakeups, but only %ld pushes were in flight at the kill",
                 duplicates, leased);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sigkill_run_mid_batch, eu_setup, eu_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
