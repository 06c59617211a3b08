/* Fault: PostgreSQL is stopped and started again under load, beneath one `mpcpush run`
 * (receiver and dispatcher). Meanwhile webhooks and API writes answer 503 storage_unavailable,
 * /readyz 503, /healthz 200, and the dispatcher waits without crashing, its log saying why. When
 * the database is back, both resume within seconds, without a restart: webhooks are stored again
 * and the devices are woken. Nothing is lost: every webhook answered 200 is stored once with its
 * message, and every device with a stored message gets a wakeup covering its newest one. Uses a
 * private cluster on a fixed port (the shared one must stay up). */
#define _GNU_SOURCE
#include "fault_util.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEVICES 20
#define TAG     "dbrestart"

/* scripts/pg stop or start in a thread, so that the load keeps flowing meanwhile. */
struct pg_job {
    struct fu_cluster *pg;
    bool start;
    atomic_bool done;
    long done_at;
};

static void *pg_job_main(void *arg)
{
    struct pg_job *job = arg;
    if (job->start)
        fu_cluster_restart(job->pg);
    else
        fu_cluster_stop(job->pg);
    job->done_at = tx_now_ms();
    atomic_store(&job->done, true);
    return NULL;
}

/* Runs the job while driving the load; returns when it is done. */
static long pg_job_run(struct fu_cluster *pg, bool start, struct fu_load *l)
{
    struct pg_job job = {.pg = pg, .start = start};
    atomic_init(&job.done, false);
    pthread_t thread;
    pthread_create(&thread, NULL, pg_job_main, &job);
    while (!atomic_load(&job.done))
        fu_load_run(l, 50, true);
    pthread_join(thread, NULL);
    return job.done_at;
}

static int dispatcher_db_errors(const char *log)
{
    return pu_log_count(log, "event=db_connect_failed role=dispatch") +
           pu_log_count(log, "what=push_claim") + pu_log_count(log, "what=push_record");
}

/* Tallies the answers to the webhooks sent in [from, to) (tx_now_ms). */
static void tally_between(const struct fu_load *l, long from, long to, struct fu_tally *t)
{
    memset(t, 0, sizeof(*t));
    for (int i = 0; i < fu_load_count(l); i++) {
        const struct fu_hook *h = fu_load_hook(l, i);
        if (h->tries == 0 || h->sent_at < from || h->answered_at > to)
            continue;
        if (h->status == 200)
            t->ok++;
        else if (h->status == 503 && strcmp(h->code, "storage_unavailable") == 0)
            t->unavailable++;
        else if (h->status == 0)
            t->none++;
        else if (!t->other++) {
            t->other_status = h->status;
            snprintf(t->other_code, sizeof(t->other_code), "%s", h->code);
        }
    }
}

static void test_postgres_restart_under_load(void **state)
{
    struct fu_env *r = *state;
    struct eu_env *env = &r->e;
    struct tx_env *t = &env->t;
    eu_start(&env->emu, NULL);
    eu_start_mpcpush(t, "run", &env->emu, NULL);
    pid_t pid = t->proc.pid;
    fu_register(t, "ow", "od-", TAG, 0, DEVICES);
    struct fu_load *l = fu_load_new(t->proc.base, 8, 150, "ow", "od-", DEVICES);

    /* Normal service under load. */
    fu_load_run(l, 1500, true);
    struct fu_tally before;
    fu_load_tally(l, &before);
    if (before.ok < 50 || before.ok != fu_load_count(l) - fu_load_in_flight(l))
        fail_msg("before the outage: %d of %d webhooks answered 200 (%d 503, %d none, %d other)",
                 before.ok, fu_load_count(l), before.unavailable, before.none, before.other);
    int errors_before = dispatcher_db_errors(t->proc.log_path);

    /* The database goes away (fast shutdown: sessions are cut). */
    long stopping = tx_now_ms();
    long stopped = pg_job_run(&r->pg, false, l);
    char code[64];
    long ready = 0;
    long deadline = tx_now_ms() + 10000;
    while ((ready = fu_get(t->proc.base, "/readyz", NULL, code, sizeof(code))) != 503 &&
           tx_now_ms() < deadline)
        fu_load_run(l, 100, true);
    if (ready != 503)
        fail_msg("database stopped: /readyz answers %ld %s after 10 s", ready, code);
    assert_int_equal(fu_get(t->proc.base, "/healthz", NULL, NULL, 0), 200);
    struct th_response resp;
    tx_api(&resp, t, "PUT", "/v1/wallets/ow/devices/late",
           "{\"fcmToken\":\"late-APA91b0123456789\",\"platform\":\"android\"}");
    tx_assert_error(&resp, 503, "storage_unavailable");
    th_response_free(&resp);
    tx_api(&resp, t, "POST", "/v1/wallets/ow/devices/od-0/messages", "{\"payload\":1}");
    tx_assert_error(&resp, 503, "storage_unavailable");
    th_response_free(&resp);
    /* The outage lasts a few seconds, under load; the dispatcher says why it is idle. */
    deadline = tx_now_ms() + 3000;
    while (tx_now_ms() < deadline)
        fu_load_run(l, 100, true);
    int errors_during = dispatcher_db_errors(t->proc.log_path) - errors_before;
    if (!fu_alive(pid))
        fail_msg("mpcpush died during the outage (see %s)", t->proc.log_path);

    /* It comes back on the same port. */
    long restarted = pg_job_run(&r->pg, true, l);
    long first_ok = 0;
    long long restarted_unix = eu_unix_ms();
    deadline = restarted + 20000;
    while (!first_ok && tx_now_ms() < deadline) {
        fu_load_run(l, 50, true);
        for (int i = 0; i < fu_load_count(l) && !first_ok; i++) {
            const struct fu_hook *h = fu_load_hook(l, i);
            if (h->status == 200 && h->sent_at >= restarted)
                first_ok = h->answered_at;
        }
    }
    if (!first_ok)
        fail_msg("no webhook answered 200 within 20 s of the database's return");
    deadline = tx_now_ms() + 10000;
    while ((ready = fu_get(t->proc.base, "/readyz", NULL, code, sizeof(code))) != 200 &&
           tx_now_ms() < deadline)
        fu_load_run(l, 100, true);
    assert_int_equal(ready, 200);
    /* The dispatcher resumes: a wakeup reaches the emulator after the return. */
    long long first_push = 0;
    deadline = tx_now_ms() + 20000;
    while (!first_push && tx_now_ms() < deadline) {
        fu_load_run(l, 100, true);
        json_t *recs = eu_records(&env->emu, NULL);
        size_t i;
        json_t *rec;
        json_array_foreach(recs, i, rec)
        {
            long long at = json_integer_value(json_object_get(rec, "at"));
            if (at > restarted_unix && (!first_push || at < first_push))
                first_push = at;
        }
        json_decref(recs);
    }
    if (!first_push)
        fail_msg("no wakeup sent within 20 s of the database's return");
    fu_load_run(l, 1000, true);
    fu_load_settle(l, 10000);
    if (!fu_alive(pid) || t->proc.pid != pid)
        fail_msg("mpcpush did not survive the outage (see %s)", t->proc.log_path);

    /* What was answered while the database was away. */
    struct fu_tally during, all;
    tally_between(l, stopped, restarted, &during);
    fu_load_tally(l, &all);
    print_message("stop took %ld ms, outage %ld ms; while down: %d webhooks answered 503"
                  " storage_unavailable, %d 200, %d no answer, %d other; dispatcher logged %d"
                  " database errors\n",
                  stopped - stopping, restarted - stopped, during.unavailable, during.ok,
                  during.none, during.other, errors_during);
    print_message("recovery after the database's return: first webhook 200 after %ld ms, first"
                  " wakeup after %lld ms; %d webhooks in all, %d answered 200, %d 503\n",
                  first_ok - restarted, first_push - restarted_unix, fu_load_count(l), all.ok,
                  all.unavailable);
    if (during.ok || during.other || during.none)
        fail_msg("while the database was down: %d answered 200, %d without an answer, %d other"
                 " (first %ld %s); want 503 storage_unavailable",
                 during.ok, during.none, during.other, during.other_status, during.other_code);
    assert_true(during.unavailable > 0);
    if (all.other || all.none)
        fail_msg("%d webhooks answered neither 200 nor 503 storage_unavailable (first %ld %s),"
                 " %d not at all",
                 all.other, all.other_status, all.other_code, all.none);
    if (errors_during == 0) {
        fu_log_show(t->proc.log_path, "level=warn", 10);
        fail_msg("the dispatcher logged no database error during the outage");
    }
    if (first_ok - restarted > 10000 || first_push - restarted_unix > 10000)
        fail_msg("recovery took too long: webhooks %ld ms, wakeups %lld ms (want < 10 s)",
                 first_ok - restarted, first_push - restarted_unix);

    /* Nothing lost: every 200 is stored once, with its message. */
    struct fu_stored s;
    fu_load_stored(l, t->db, &s);
    if (s.ok_missing || s.bad_messages || s.foreign_events || s.duplicate_payloads ||
        s.events != s.stored)
        fail_msg("stored: %d answered 200 missing, %d without exactly one message, %ld foreign,"
                 " %ld duplicate payloads, %ld rows for %d webhooks (%s)",
                 s.ok_missing, s.bad_messages, s.foreign_events, s.duplicate_payloads, s.events,
                 s.stored, s.first_problem);
    print_message("stored: %d webhooks, %d of them never answered 200\n", s.stored,
                  s.stored_unanswered);

    /* Every device with a stored message is woken, covering its newest message. */
    long owed = eu_wait_sql(t->db, 0, 30000,
                            "SELECT count(*) FROM (SELECT device_id, max(id) AS newest FROM"
                            " mpcpush.messages GROUP BY device_id) m LEFT JOIN mpcpush.pushes p"
                            " ON p.wallet_id = 'ow' AND p.device_id = m.device_id WHERE p IS NULL"
                            " OR p.state <> 'sent' OR p.covered_id < m.newest");
    if (owed)
        fail_msg("%ld devices still owed a wakeup 30 s after the outage", owed);
    usleep(300000);
    int counts[DEVICES];
    long long latest[DEVICES];
    fu_records(&env->emu, TAG, DEVICES, counts, latest);
    PGresult *res = fu_query(t->db, "SELECT substr(device_id, 4)::int, max(id) FROM"
                                    " mpcpush.messages GROUP BY device_id");
    for (int row = 0; row < PQntuples(res); row++) {
        int k = atoi(PQgetvalue(res, row, 0));
        long long newest = atoll(PQgetvalue(res, row, 1));
        if (k < 0 || k >= DEVICES || latest[k] < newest)
            fail_msg("device od-%d: newest message %lld, newest wakeup covers %lld", k, newest,
                     k >= 0 && k < DEVICES ? latest[k] : -1);
    }
    PQclear(res);
    fu_load_free(l);
}

int main(void)
{
    tx_keys();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_postgres_restart_under_load, fu_setup_private,
                                        fu_teardown_private),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
