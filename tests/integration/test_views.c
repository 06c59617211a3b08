/* The SQL views an operator queries with psql: mpcpush.pending_messages (what waits for whom,
 * and the push state of its device), mpcpush.device_status (one row per device: token, pending
 * count, push progress) and mpcpush.push_problems. Push progress that only a dispatcher makes
 * (a wakeup sent, retried, in flight) is set up the way the dispatcher records it. */
#define _GNU_SOURCE
#include "pickup_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* message_id|source|payload|push_state|attempts|last_error|pushed? of one message. */
static char *pending_row(const char *db, const char *id)
{
    return tx_sql_textf(db,
                        "SELECT concat_ws('|', message_id, source, payload::text, push_state,"
                        " coalesce(attempts::text, '-'), coalesce(last_error, '-'),"
                        " CASE WHEN last_pushed_at IS NULL THEN 'never' ELSE 'pushed' END)"
                        " FROM mpcpush.pending_messages WHERE message_id = %s",
                        id);
}

static void assert_pending_row(const char *db, const char *id, const char *want_tail)
{
    char *got = pending_row(db, id), want[512];
    snprintf(want, sizeof(want), "%s|%s", id, want_tail);
    if (!got || strcmp(got, want) != 0)
        fail_msg("pending_messages row of %s: got %s, want %s", id, got ? got : "(no row)", want);
    free(got);
}

static const char *state_of(const char *db, const char *id, char *buf, size_t size)
{
    char *s = tx_sql_textf(db,
                           "SELECT push_state FROM mpcpush.pending_messages"
                           " WHERE message_id = %s",
                           id);
    snprintf(buf, size, "%s", s ? s : "(no row)");
    free(s);
    return buf;
}

#define assert_state(db, id, want)                                                                 \
    do {                                                                                           \
        char buf_[64];                                                                             \
        assert_string_equal(state_of((db), (id), buf_, sizeof(buf_)), (want));                     \
    } while (0)

/* token_suffix|token_status|reason|pending|oldest?|push_state|push_attempts|next? */
static char *status_row(const char *db, const char *wallet, const char *device)
{
    return tx_sql_textf(db,
                        "SELECT concat_ws('|', platform, token_suffix, token_status,"
                        " coalesce(token_invalid_reason, '-'), pending,"
                        " CASE WHEN oldest_pending_at IS NULL THEN 'none' ELSE 'oldest' END,"
                        " coalesce(push_state, '-'), coalesce(push_attempts::text, '-'),"
                        " CASE WHEN next_attempt_at IS NULL THEN 'no-next' ELSE 'next' END)"
                        " FROM mpcpush.device_status WHERE wallet_id = '%s' AND device_id = '%s'",
                        wallet, device);
}

static void assert_status_row(const char *db, const char *wallet, const char *device,
                              const char *want)
{
    char *got = status_row(db, wallet, device);
    if (!got || strcmp(got, want) != 0)
        fail_msg("device_status of %s/%s: got %s, want %s", wallet, device, got ? got : "(no row)",
                 want);
    free(got);
}

/* Like assert_status_row, for the leading columns only. */
static void assert_status_prefix(const char *db, const char *wallet, const char *device,
                                 const char *want)
{
    char *got = status_row(db, wallet, device);
    if (!got || strncmp(got, want, strlen(want)) != 0)
        fail_msg("device_status of %s/%s: got %s, want %s...", wallet, device,
                 got ? got : "(no row)", want);
    free(got);
}

static void test_registered_device_queued(void **state)
{
    struct tx_env *e = *state;
    pu_register(e, "w-v", "d");
    assert_status_row(e->db, "w-v", "d", "android|...456789|active|-|0|none|ready|0|no-next");
    char *a = pu_enqueue(e, "w-v", "d", "{\"mpc\":1}", 0);
    char *b = pu_enqueue(e, "w-v", "d", "{\"mpc\":2}", 600);
    assert_pending_row(e->db, a, "api|{\"mpc\": 1}|queued|0|-|never");
    assert_pending_row(e->db, b, "api|{\"mpc\": 2}|queued|0|-|never");
    /* A queued wakeup is due now. */
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pending_messages"
                                        " WHERE next_attempt_at <= now()"),
                     2);
    /* The view carries the message's own columns as the API shows them. */
    char *match =
        tx_sql_textf(e->db,
                     "SELECT (wallet_id = 'w-v' AND device_id = 'd' AND expires_at - received_at ="
                     " interval '600 seconds' AND received_at <= now())::text"
                     " FROM mpcpush.pending_messages WHERE message_id = %s",
                     b);
    assert_string_equal(match, "true");
    free(match);
    assert_status_row(e->db, "w-v", "d", "android|...456789|active|-|2|oldest|ready|0|next");
    char *oldest = th_sql_text(e->db, "SELECT (oldest_pending_at = (SELECT min(received_at)"
                                      " FROM mpcpush.pending_messages WHERE device_id = 'd'))::text"
                                      " FROM mpcpush.device_status WHERE device_id = 'd'");
    assert_string_equal(oldest, "true");
    free(oldest);
    /* Nothing is wrong yet. */
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.push_problems"), 0);
    free(a);
    free(b);
}

static void test_unregistered_device_no_device(void **state)
{
    struct tx_env *e = *state;
    pu_webhook_message(e->proc.base, "w-v", "ghost", "{\"mpc\":\"for nobody yet\"}");
    char *id = th_sql_text(e->db, "SELECT message_id FROM mpcpush.pending_messages"
                                  " WHERE wallet_id = 'w-v' AND device_id = 'ghost'");
    assert_non_null(id);
    assert_pending_row(e->db, id, "webhook|{\"mpc\": \"for nobody yet\"}|no_device|0|-|never");
    assert_int_equal(tx_sql_longf(e->db,
                                  "SELECT count(*) FROM mpcpush.pending_messages"
                                  " WHERE message_id = %s AND next_attempt_at IS NULL",
                                  id),
                     1);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.device_status"
                                        " WHERE device_id = 'ghost'"),
                     0);
    /* Once it registers, a wakeup is queued for what waits. */
    pu_register(e, "w-v", "ghost");
    assert_state(e->db, id, "queued");
    assert_status_row(e->db, "w-v", "ghost", "android|...456789|active|-|1|oldest|ready|0|next");
    free(id);
}

static void test_acknowledged_leave_the_view(void **state)
{
    struct tx_env *e = *state;
    pu_register(e, "w-v", "d");
    char *ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = pu_enqueue(e, "w-v", "d", "{}", 0);
    char body[128];
    snprintf(body, sizeof(body), "{\"ids\":[\"%s\"]}", ids[1]);
    assert_int_equal(pu_ack(e, "w-v", "d", body), 1);
    assert_state(e->db, ids[1], "(no row)");
    assert_state(e->db, ids[0], "queued");
    assert_state(e->db, ids[2], "queued");
    assert_status_row(e->db, "w-v", "d", "android|...456789|active|-|2|oldest|ready|0|next");
    snprintf(body, sizeof(body), "{\"upTo\":\"%s\"}", ids[2]);
    assert_int_equal(pu_ack(e, "w-v", "d", body), 2);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pending_messages"), 0);
    /* Nothing pending and no wakeup owed any more. */
    assert_status_row(e->db, "w-v", "d", "android|...456789|active|-|0|none|ready|0|no-next");
    for (int i = 0; i < 3; i++)
        free(ids[i]);
}

static void test_expired_leave_the_view(void **state)
{
    struct tx_env *e = *state;
    pu_register(e, "w-v", "d");
    char *lasting = pu_enqueue(e, "w-v", "d", "{\"brief\":false}", 0);
    char *brief = pu_enqueue(e, "w-v", "d", "{\"brief\":true}", 1);
    assert_state(e->db, brief, "queued");
    assert_status_row(e->db, "w-v", "d", "android|...456789|active|-|2|oldest|ready|0|next");
    sleep(2);
    assert_state(e->db, brief, "(no row)");
    assert_state(e->db, lasting, "queued");
    assert_status_row(e->db, "w-v", "d", "android|...456789|active|-|1|oldest|ready|0|next");
    free(lasting);
    free(brief);
}

static void test_invalid_token(void **state)
{
    struct tx_env *e = *state;
    pu_register(e, "w-v", "dead");
    pu_register(e, "w-v", "alive");
    char *id = pu_enqueue(e, "w-v", "dead", "{\"n\":1}", 0);
    char *ok = pu_enqueue(e, "w-v", "alive", "{\"n\":2}", 0);
    th_sql_exec(e->db, "UPDATE mpcpush.devices SET token_status = 'invalid',"
                       " token_invalid_reason = 'UNREGISTERED', token_invalidated_at = now()"
                       " WHERE wallet_id = 'w-v' AND device_id = 'dead'");
    assert_state(e->db, id, "token_invalid");
    assert_state(e->db, ok, "queued");
    /* New messages for it are stored (and fetchable) but still cannot be pushed. */
    char *later = pu_enqueue(e, "w-v", "dead", "{\"n\":3}", 0);
    assert_state(e->db, later, "token_invalid");
    assert_status_prefix(e->db, "w-v", "dead", "android|...456789|invalid|UNREGISTERED|2|oldest|");
    char *problem = th_sql_text(e->db, "SELECT concat_ws('|', wallet_id, device_id, token_status,"
                                       " token_invalid_reason, pending)"
                                       " FROM mpcpush.push_problems");
    assert_string_equal(problem, "w-v|dead|invalid|UNREGISTERED|2");
    free(problem);
    /* A fresh token brings it back: its messages are queued for a wakeup again. */
    struct th_response r;
    tx_api(&r, e, "PUT", "/v1/wallets/w-v/devices/dead",
           "{\"fcmToken\":\"brand-new-token-XYZ987\",\"platform\":\"ios\"}");
    tx_assert_status(&r, 200);
    th_response_free(&r);
    assert_state(e->db, id, "queued");
    assert_state(e->db, later, "queued");
    assert_status_row(e->db, "w-v", "dead", "ios|...XYZ987|active|-|2|oldest|ready|0|next");
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.push_problems"), 0);
    free(id);
    free(ok);
    free(later);
}

/* The dispatcher's progress as the views show it: in flight, retrying, delivered. */
static void test_push_progress_states(void **state)
{
    struct tx_env *e = *state;
    pu_register(e, "w-v", "d");
    char *first = pu_enqueue(e, "w-v", "d", "{\"n\":1}", 0);

    /* Leased by a dispatcher (lease not expired): sending. Expired lease: queued again. */
    th_sql_exec(e->db, "UPDATE mpcpush.pushes SET state = 'leased', lease_id = 1,"
                       " leased_by = 'dispatcher-1', leased_until = now() + interval '60 seconds'");
    assert_state(e->db, first, "sending");
    th_sql_exec(e->db, "UPDATE mpcpush.pushes SET leased_until = now() - interval '1 second'");
    assert_state(e->db, first, "queued");

    /* A failed attempt waiting for its retry. */
    th_sql_exec(e->db,
                "UPDATE mpcpush.pushes SET state = 'retry', lease_id = NULL,"
                " leased_by = NULL, leased_until = NULL, attempts = 2, last_error = 'UNAVAILABLE',"
                " last_attempt_at = now(), due_at = now() + interval '30 seconds'");
    assert_pending_row(e->db, first, "api|{\"n\": 1}|retrying|2|UNAVAILABLE|never");
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pending_messages"
                                        " WHERE next_attempt_at > now() + interval '20 seconds'"),
                     1);
    assert_status_row(e->db, "w-v", "d", "android|...456789|active|-|1|oldest|retry|2|next");
    char *problem = th_sql_text(e->db, "SELECT concat_ws('|', device_id, push_state, push_attempts,"
                                       " push_last_error, pending, (next_attempt_at > now())::text)"
                                       " FROM mpcpush.push_problems");
    assert_string_equal(problem, "d|retry|2|UNAVAILABLE|1|true");
    free(problem);

    /* Delivered: the message is woken; a newer one is queued for the next wakeup. */
    th_sql_exec(e->db, "UPDATE mpcpush.pushes SET state = 'sent', covered_id = wanted_id,"
                       " attempts = 3, last_error = NULL, last_sent_at = now(),"
                       " fcm_message_name = 'projects/p/messages/1'");
    assert_pending_row(e->db, first, "api|{\"n\": 1}|woken|3|-|pushed");
    assert_status_row(e->db, "w-v", "d", "android|...456789|active|-|1|oldest|sent|3|no-next");
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.push_problems"), 0);
    char *second = pu_enqueue(e, "w-v", "d", "{\"n\":2}", 0);
    assert_state(e->db, first, "woken");
    assert_state(e->db, second, "queued");
    assert_status_row(e->db, "w-v", "d", "android|...456789|active|-|2|oldest|ready|0|next");
    char *name = th_sql_text(e->db, "SELECT last_fcm_message FROM mpcpush.device_status");
    assert_string_equal(name, "projects/p/messages/1");
    free(name);

    /* A device whose push row is gone: not queued. */
    th_sql_exec(e->db, "DELETE FROM mpcpush.pushes");
    assert_state(e->db, second, "not_queued");
    free(first);
    free(second);
}

static void test_pending_counts_per_device(void **state)
{
    struct tx_env *e = *state;
    const char *devices[] = {"p0", "p1", "p2", "p3"};
    for (int i = 0; i < 4; i++) {
        pu_register(e, "w-count", devices[i]);
        for (int k = 0; k < i * 2; k++)
            free(pu_enqueue(e, "w-count", devices[i], "{}", 0));
    }
    /* p3: 6 pending, then 2 acknowledged and 1 expired */
    json_t *page = pu_fetch(e, "w-count", "p3", "limit=2");
    char body[64];
    snprintf(body, sizeof(body), "{\"upTo\":\"%s\"}", pu_next(page));
    json_decref(page);
    assert_int_equal(pu_ack(e, "w-count", "p3", body), 2);
    free(pu_enqueue(e, "w-count", "p3", "{}", 1));
    sleep(2);
    char *counts = th_sql_text(e->db, "SELECT string_agg(device_id || '=' || pending, ','"
                                      " ORDER BY device_id) FROM mpcpush.device_status"
                                      " WHERE wallet_id = 'w-count'");
    assert_string_equal(counts, "p0=0,p1=2,p2=4,p3=4");
    free(counts);
    /* The views agree with each other and with the API. */
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pending_messages"
                                        " WHERE wallet_id = 'w-count'"),
                     10);
    for (int i = 0; i < 4; i++) {
        char path[128];
        snprintf(path, sizeof(path), "/v1/wallets/w-count/devices/%s", devices[i]);
        struct th_response r;
        tx_api(&r, e, "GET", path, NULL);
        tx_assert_status(&r, 200);
        long want = tx_sql_longf(e->db,
                                 "SELECT pending FROM mpcpush.device_status"
                                 " WHERE wallet_id = 'w-count' AND device_id = '%s'",
                                 devices[i]);
        assert_int_equal(json_integer_value(json_object_get(r.json, "pendingMessages")), want);
        th_response_free(&r);
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, tx_setup, tx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_registered_device_queued),
        T(test_unregistered_device_no_device),
        T(test_acknowledged_leave_the_view),
        T(test_expired_leave_the_view),
        T(test_invalid_token),
        T(test_push_progress_states),
        T(test_pending_counts_per_device),
    };
    if (getenv("MPCPUSH_TEST_FILTER")) /* e.g. "*token*" */
        cmocka_set_test_filter(getenv("MPCPUSH_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
