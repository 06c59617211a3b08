/* The summary of a device's pending messages that its push row keeps (schema 6), against a real
 * database: the ingest adds to it, acknowledgements take from it, a claim trusts it only while
 * it is exact and counts otherwise, and a claim that counts while a writer waits for the row
 * leaves it exact. Whatever path a claim takes, a wakeup must tell the device how many messages
 * wait, the newest one's id, and how long they live. */
#include "harness.h"
#include "harness_extra.h"
#include "ingest_wait.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpcpush/db.h"
#include "mpcpush/ingest.h"
#include "mpcpush/messages.h"
#include "mpcpush/pushes.h"

struct env {
    char *db;
    PGconn *conn;
    struct mp_ingest *ingest;
    int posted;
};

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->db = th_db_create(true);
    assert_int_equal(mp_db_connect(e->db, "test", &e->conn), MP_OK);
    assert_int_equal(mp_ingest_start(e->db, 10, &e->ingest), MP_OK);
    th_sql_exec(e->db, "INSERT INTO mpcpush.devices (wallet_id, device_id, platform, fcm_token)"
                       " VALUES ('w', 'd1', 'android', 'token-1')");
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    mp_ingest_stop(e->ingest);
    PQfinish(e->conn);
    free(e->db);
    free(e);
    return 0;
}

/* Submits a webhook carrying a message for w/d1 that lives ttl seconds; returns at once. */
static void submit_post(struct env *e, int ttl, struct mp_ingest_job *job, struct job_wait *w,
                        char *key, size_t key_size)
{
    snprintf(key, key_size, "v2:summary-%d", ++e->posted);
    *job = (struct mp_ingest_job){.kind = MP_INGEST_EVENT_DEVICE,
                                  .dedupe_key = key,
                                  .api_version = 2,
                                  .event_type = "NCW_DEVICE_MESSAGE",
                                  .raw_body = "{\"message\":{\"round\":1}}",
                                  .wallet_id = "w",
                                  .device_id = "d1",
                                  .payload_path = "{message}",
                                  .ttl_seconds = ttl};
    submit_job(e->ingest, job, w);
}

/* Posts a message for w/d1 and returns its id. */
static long long post(struct env *e, int ttl)
{
    struct mp_ingest_job job;
    struct job_wait w;
    char key[64];
    submit_post(e, ttl, &job, &w, key, sizeof(key));
    wait_job(&job, &w);
    return th_sql_long(e->db, "SELECT max(id) FROM mpcpush.messages");
}

/* "exact|count|newest id" of w/d1's push row. */
static char *summary(const struct env *e)
{
    return th_sql_text(e->db, "SELECT concat_ws('|', pending_exact, pending_count,"
                              " pending_latest_id) FROM mpcpush.pushes WHERE device_id = 'd1'");
}

static void expect_summary(const struct env *e, const char *want)
{
    char *got = summary(e);
    if (strcmp(got, want) != 0)
        fail_msg("push row summary: want %s, got %s", want, got);
    free(got);
}

/* Every summary marked exact agrees with the messages: the count and the newest id, the last
 * expiry, and a first expiry no later than the first pending message's. */
static void expect_summaries_true(const struct env *e)
{
    char *wrong = th_sql_text(
        e->db, "SELECT coalesce(string_agg(p.device_id, ','), '') FROM mpcpush.pushes p,"
               " LATERAL (SELECT count(*) AS n, coalesce(max(m.id), 0) AS top,"
               "  min(m.expires_at) AS first, coalesce(max(m.expires_at), '-infinity') AS last"
               "  FROM mpcpush.messages m WHERE m.wallet_id = p.wallet_id"
               "  AND m.device_id = p.device_id AND m.acked_at IS NULL"
               "  AND m.expires_at > now()) s"
               " WHERE p.pending_exact AND p.pending_first_expiry > now()"
               " AND ((p.pending_count, p.pending_latest_id, p.pending_last_expiry)"
               "  IS DISTINCT FROM (s.n, s.top, s.last) OR p.pending_first_expiry > s.first)");
    if (wrong[0])
        fail_msg("summaries marked exact that are not: %s", wrong);
    free(wrong);
}

/* Claims device of w on conn (NULL: e's) and returns how many wakeups it got. */
static struct mp_push *claim_device(const struct env *e, PGconn *conn, const char *device, int *n)
{
    struct mp_push *pushes = NULL;
    struct mp_claim c = {.project = "project",
                         .owner = "tester",
                         .limit = 10,
                         .lease_seconds = 60,
                         .wallet_id = "w",
                         .device_id = device};
    assert_int_equal(mp_pushes_claim(conn ? conn : e->conn, &c, &pushes, n), MP_OK);
    return pushes;
}

/* Claims w/d1 on conn: exactly one wakeup. */
static struct mp_push *claim_d1(const struct env *e, PGconn *conn)
{
    int n = 0;
    struct mp_push *pushes = claim_device(e, conn, "d1", &n);
    assert_int_equal(n, 1);
    return pushes;
}

/* A connection that will claim w/d1 inside a transaction, left open by the caller: the claim's
 * statement is prepared first (preparing it the first time it runs fails inside a transaction). */
static PGconn *begin_claim_d1(const struct env *e)
{
    PGconn *conn = NULL;
    assert_int_equal(mp_db_connect(e->db, "test", &conn), MP_OK);
    int n = 0;
    mp_pushes_free(claim_device(e, conn, "nobody", &n), n);
    assert_int_equal(n, 0);
    PQclear(PQexec(conn, "BEGIN"));
    mp_pushes_free(claim_d1(e, conn), 1);
    return conn;
}

/* Claims w/d1 and checks what its wakeup would say; then records it delivered. */
static void expect_wakeup(const struct env *e, long long pending, long long latest_id, int ttl)
{
    struct mp_push *p = claim_d1(e, NULL);
    assert_int_equal(p->pending, pending);
    assert_int_equal(p->latest_id, latest_id);
    assert_in_range(p->ttl_seconds, ttl - 10, ttl);
    struct mp_push_outcome out = {.push = p, .verdict = MP_PUSH_SENT, .outcome = "ok"};
    assert_int_equal(mp_pushes_record(e->conn, &out, 1), MP_OK);
    mp_pushes_free(p, 1);
}

static long long ack(const struct env *e, long long up_to, const long long *ids, int n)
{
    long long acked = 0;
    assert_int_equal(mp_messages_ack(e->conn, "w", "d1", up_to, ids, n, &acked), MP_OK);
    return acked;
}

/* The first claim counts (the ingest alone cannot know what was pending before its push row);
 * later ones take the summary the ingest kept. A message written by hand is not in it until
 * the summary is marked inexact, as the column's comment says. */
static void test_claim_counts_then_follows(void **state)
{
    struct env *e = *state;
    post(e, 3600);
    long long second = post(e, 3600);
    char want[64];
    snprintf(want, sizeof(want), "f|2|%lld", second); /* written by the ingest, not counted */
    expect_summary(e, want);
    expect_wakeup(e, 2, second, 3600);
    snprintf(want, sizeof(want), "t|2|%lld", second);
    expect_summary(e, want);
    long long third = post(e, 1800);
    snprintf(want, sizeof(want), "t|3|%lld", third);
    expect_summary(e, want);
    expect_wakeup(e, 3, third, 3600);
    expect_summaries_true(e);

    th_sql_exec(e->db, "INSERT INTO mpcpush.messages (wallet_id, device_id, source, payload,"
                       " expires_at) VALUES ('w', 'd1', 'api', '{}', now() + interval '1 hour')");
    long long fifth = post(e, 3600);
    expect_wakeup(e, 4, fifth, 3600); /* the summary's count: the hand-written one is not in it */
    th_sql_exec(e->db, "UPDATE mpcpush.pushes SET pending_exact = false");
    long long sixth = post(e, 3600);
    expect_wakeup(e, 6, sixth, 3600);
    expect_summaries_true(e);
}

/* Acknowledgements take from the count; acknowledging the newest while others remain makes
 * the next claim count, which finds the newest that is left. Acknowledging everything leaves
 * an exact, empty summary. */
static void test_acks_keep_it_exact(void **state)
{
    struct env *e = *state;
    long long a = post(e, 3600), b = post(e, 3600), c = post(e, 3600);
    expect_wakeup(e, 3, c, 3600);
    assert_int_equal(ack(e, 0, &a, 1), 1);
    char want[64];
    snprintf(want, sizeof(want), "t|2|%lld", c);
    expect_summary(e, want);
    assert_int_equal(ack(e, b, NULL, 0), 1); /* a was acknowledged already */
    snprintf(want, sizeof(want), "t|1|%lld", c);
    expect_summary(e, want);
    expect_summaries_true(e);

    long long d = post(e, 3600);
    assert_int_equal(ack(e, 0, &d, 1), 1);
    snprintf(want, sizeof(want), "f|1|%lld", d); /* the newest left is not known */
    expect_summary(e, want);
    expect_wakeup(e, 1, c, 3600);
    expect_summaries_true(e);

    assert_int_equal(ack(e, c, NULL, 0), 1);
    expect_summary(e, "t|0|0");
    long long f = post(e, 600);
    snprintf(want, sizeof(want), "t|1|%lld", f);
    expect_summary(e, want);
    expect_wakeup(e, 1, f, 600);
    expect_summaries_true(e);
}

/* Acknowledging the message that expires last, while others remain, makes the next claim
 * count: the TTL of what is left is not known without counting. */
static void test_ack_of_last_expiring_makes_claim_count(void **state)
{
    struct env *e = *state;
    long long a = post(e, 7200), b = post(e, 600);
    expect_wakeup(e, 2, b, 7200);
    assert_int_equal(ack(e, 0, &a, 1), 1);
    char want[64];
    snprintf(want, sizeof(want), "f|1|%lld", b);
    expect_summary(e, want);
    th_sql_exec(e->db, "UPDATE mpcpush.pushes SET covered_id = covered_id - 1"); /* owed again */
    expect_wakeup(e, 1, b, 600);
    expect_summaries_true(e);
}

/* An acknowledgement can take a message the summary did not count: a claim that started after
 * the message expired counted without it, while the acknowledgement (which started before)
 * was taking it. Such a message expires before the summary's first expiry; the summary is then
 * marked inexact rather than decremented (here the claim's count is written by hand). */
static void test_ack_of_uncounted_message_makes_claim_count(void **state)
{
    struct env *e = *state;
    long long first = post(e, 3600), second = post(e, 7200);
    expect_wakeup(e, 2, second, 7200);
    th_sql_exec(e->db, "UPDATE mpcpush.pushes p SET pending_count = 1, pending_exact = true,"
                       " pending_first_expiry = m.expires_at, covered_id = covered_id - 1"
                       " FROM mpcpush.messages m WHERE m.id = p.wanted_id");
    assert_int_equal(ack(e, first, NULL, 0), 1);
    expect_summary(e, "f|0|0"); /* not "t|0|0": the second message is pending */
    expect_wakeup(e, 1, second, 7200);
    expect_summaries_true(e);
}

/* Once a counted message has expired, the count may include it: the next claim counts again. */
static void test_expiry_makes_claim_count(void **state)
{
    struct env *e = *state;
    post(e, 3);
    long long second = post(e, 3600);
    expect_wakeup(e, 2, second, 3600);
    usleep(3100 * 1000);
    long long third = post(e, 3600);
    expect_wakeup(e, 2, third, 3600);
    expect_summaries_true(e);
}

/* A summary that says nothing is pending is never trusted: a wakeup is skipped only when a
 * count of the messages finds none. */
static void test_empty_summary_is_counted(void **state)
{
    struct env *e = *state;
    long long id = post(e, 3600);
    expect_wakeup(e, 1, id, 3600);
    th_sql_exec(e->db, "UPDATE mpcpush.pushes SET pending_count = 0, pending_exact = true,"
                       " covered_id = covered_id - 1");
    expect_wakeup(e, 1, id, 3600);
}

/* A claim counts while its transaction holds the row; a message ingested meanwhile waits for
 * the row and adds itself to what the claim counted. */
static void test_ingest_waits_for_counting_claim(void **state)
{
    struct env *e = *state;
    post(e, 3600);
    PGconn *conn = begin_claim_d1(e);
    struct mp_ingest_job job;
    struct job_wait w;
    char key[64];
    submit_post(e, 3600, &job, &w, key, sizeof(key));
    tx_wait_lock_waiter(e->db, "transactionid");
    PQclear(PQexec(conn, "COMMIT"));
    PQfinish(conn);
    wait_job(&job, &w);
    long long second = th_sql_long(e->db, "SELECT max(id) FROM mpcpush.messages");
    char want[64];
    snprintf(want, sizeof(want), "t|2|%lld", second);
    expect_summary(e, want);
    expect_summaries_true(e);
}

struct ack_arg {
    const char *db;
    long long up_to, acked;
    enum mp_result result;
};

static void *ack_main(void *arg)
{
    struct ack_arg *a = arg;
    PGconn *conn = NULL;
    a->result = mp_db_connect(a->db, "test", &conn);
    if (a->result == MP_OK)
        a->result = mp_messages_ack(conn, "w", "d1", a->up_to, NULL, 0, &a->acked);
    PQfinish(conn);
    return NULL;
}

/* The same with an acknowledgement: it takes what it acknowledged from what the claim counted. */
static void test_ack_waits_for_counting_claim(void **state)
{
    struct env *e = *state;
    long long first = post(e, 3600), second = post(e, 3600);
    PGconn *conn = begin_claim_d1(e);
    struct ack_arg a = {.db = e->db, .up_to = first};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, ack_main, &a), 0);
    tx_wait_lock_waiter(e->db, "transactionid");
    PQclear(PQexec(conn, "COMMIT"));
    PQfinish(conn);
    pthread_join(thread, NULL);
    assert_int_equal(a.result, MP_OK);
    assert_int_equal(a.acked, 1);
    char want[64];
    snprintf(want, sizeof(want), "t|1|%lld", second);
    expect_summary(e, want);
    expect_summaries_true(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_claim_counts_then_follows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acks_keep_it_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_of_last_expiring_makes_claim_count, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ack_of_uncounted_message_makes_claim_count, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_expiry_makes_claim_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_summary_is_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_waits_for_counting_claim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_waits_for_counting_claim, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
