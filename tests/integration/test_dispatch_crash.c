/* The dispatcher when things break mid-batch, black-box, each test with its own emulator: a
 * dispatcher killed with SIGKILL while its batch is in flight leaves leases that expire, and
 * another dispatcher sends everything (duplicates bounded by that one batch); dropped
 * connections and GOAWAY lose no wakeup; SIGTERM of `mpcpush run` with a slow batch in flight
 * waits for the answers, records them and exits 0. */
#define _GNU_SOURCE
#include "emulator_util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Registers devices d-from .. d-(to-1) of wallet "w" with tokens eu_token(tag, i), and with
 * messages enqueues one message each; requests go in parallel, 100 at a time. */
static void devices(struct eu_env *env, const char *tag, int from, int to, bool messages)
{
    enum { CHUNK = 100 };
    static char bodies[CHUNK][256];
    for (int base = from; base < to; base += CHUNK) {
        struct tx_call calls[CHUNK];
        memset(calls, 0, sizeof(calls));
        int n = to - base < CHUNK ? to - base : CHUNK;
        for (int k = 0; k < n; k++) {
            int i = base + k;
            char tok[128];
            eu_token(tok, sizeof(tok), tag, i);
            calls[k].method = messages ? "POST" : "PUT";
            snprintf(calls[k].url, sizeof(calls[k].url), "%s/v1/wallets/w/devices/d-%d%s",
                     env->t.proc.base, i, messages ? "/messages" : "");
            if (messages)
                snprintf(bodies[k], sizeof(bodies[k]), "{\"payload\":{\"i\":%d}}", i);
            else
                snprintf(bodies[k], sizeof(bodies[k]), "{\"fcmToken\":\"%s\",\"platform\":\"%s\"}",
                         tok, i % 2 ? "ios" : "android");
            calls[k].headers[0] = env->t.auth;
            calls[k].headers[1] = "Content-Type: application/json";
            calls[k].body = bodies[k];
            calls[k].len = strlen(bodies[k]);
        }
        tx_http_parallel(calls, n);
        for (int k = 0; k < n; k++)
            if (calls[k].status != 201)
                fail_msg("%s %s: HTTP %ld %s", calls[k].method, calls[k].url, calls[k].status,
                         calls[k].resp);
        tx_calls_free(calls, n);
    }
}

/* Counts the records per device of tag (0 .. n-1) into counts; returns the total. */
static size_t count_records(const struct eu_env *env, const char *tag, int n, int *counts,
                            long long after_ms, long long *first_after)
{
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "eu%d-%s-", (int)getpid(), tag);
    json_t *list = eu_records_prefix(&env->emu, prefix);
    memset(counts, 0, sizeof(int) * (size_t)n);
    if (first_after)
        *first_after = 0;
    size_t i;
    json_t *rec;
    json_array_foreach(list, i, rec)
    {
        const char *tok = json_string_value(json_object_get(rec, "token"));
        int k = -1;
        if (sscanf(tok + strlen(prefix), "%d", &k) != 1 || k < 0 || k >= n)
            fail_msg("unexpected token %s", tok);
        counts[k]++;
        long long at = (long long)json_integer_value(json_object_get(rec, "at"));
        if (first_after && at > after_ms && (!*first_after || at < *first_after))
            *first_after = at;
    }
    size_t total = json_array_size(list);
    json_decref(list);
    return total;
}

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

/* ---- 6. SIGKILL in the middle of a batch ---- */

#define KILLED 20

static void test_sigkill_mid_batch_leases_expire(void **state)
{
    struct eu_env *env = *state;
    eu_start(&env->emu, NULL);
    eu_start_mpcpush(&env->t, "receiver", &env->emu, NULL);
    devices(env, "killed", 0, KILLED, false);
    devices(env, "killed", 0, KILLED, true);
    eu_faults(&env->emu, "[{\"token\":\"*\",\"error\":\"SLOW\",\"delayMs\":3000}]", false);
    const char *extra[] = {"MPCPUSH_FCM_TIMEOUT=10", NULL};
    eu_proc_start(&env->procs[0], "dispatcher", env->t.db, &env->emu, extra);
    /* the whole batch is at the emulator, every answer held back */
    long slowed = 0;
    for (long deadline = tx_now_ms() + 10000; tx_now_ms() < deadline; usleep(20000))
        if ((slowed = eu_stat(&env->emu, "slowed")) >= KILLED)
            break;
    assert_int_equal(slowed, KILLED);
    assert_int_equal(th_sql_long(env->t.db, "SELECT count(*) FROM mpcpush.pushes WHERE"
                                            " state = 'leased' AND lease_id IS NOT NULL"),
                     KILLED);
    /* when the leases run out */
    long long expiry = tx_sql_longf(env->t.db, "SELECT (extract(epoch FROM min(leased_until))"
                                               " * 1000)"
                                               "::bigint FROM mpcpush.pushes");
    assert_int_equal(th_proc_stop(&env->procs[0], SIGKILL), 128 + SIGKILL);
    long long killed_at = eu_unix_ms();
    eu_faults_clear(&env->emu);
    eu_proc_start(&env->procs[1], "dispatcher", env->t.db, &env->emu, NULL);
    wait_all_sent(env->t.db, KILLED, 15000);
    usleep(300000);
    int counts[KILLED];
    long long resent_at = 0;
    size_t total = count_records(env, "killed", KILLED, counts, killed_at, &resent_at);
    for (int k = 0; k < KILLED; k++)
        if (counts[k] < 1 || counts[k] > 2)
            fail_msg("device %d woken %d times (expected 1, or 2 after the crash)", k, counts[k]);
    printf("after SIGKILL: %zu wakeups for %d devices; leases expired %lld ms and the second "
           "dispatcher sent %lld ms after the kill\n",
           total, KILLED, expiry - killed_at, resent_at - killed_at);
    /* The emulator had accepted the whole batch before the kill, but the dead dispatcher never
     * recorded it: the second one sends it all again, and nothing more (duplicates bounded by
     * the one batch in flight). */
    assert_int_equal(total, 2 * KILLED);
    /* nothing was taken from the dead dispatcher before its lease (5 s) ran out */
    if (resent_at && resent_at < expiry - 10)
        fail_msg("a leased push was resent %lld ms before its lease expired", expiry - resent_at);
}

/* ---- 7. dropped connections and GOAWAY ---- */

#define DROPPED 200

static void test_drop_and_goaway_lose_nothing(void **state)
{
    struct eu_env *env = *state;
    eu_start(&env->emu, NULL);
    eu_start_mpcpush(&env->t, "run", &env->emu, NULL);
    devices(env, "dropped", 0, DROPPED, false);
    /* one dropped connection for 20 tokens, one GOAWAY for 20 others, once each */
    char *rules = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&rules, &len);
    fputc('[', f);
    for (int i = 0; i < 40; i++) {
        char tok[128];
        eu_token(tok, sizeof(tok), "dropped", i * 5);
        fprintf(f, "%s{\"token\":\"%s\",\"error\":\"%s\",\"count\":1}", i ? "," : "", tok,
                i % 2 ? "GOAWAY" : "DROP");
    }
    fputc(']', f);
    fclose(f);
    eu_faults(&env->emu, rules, false);
    free(rules);
    devices(env, "dropped", 0, DROPPED, true);
    wait_all_sent(env->t.db, DROPPED, 30000);
    usleep(300000);
    int counts[DROPPED];
    size_t total = count_records(env, "dropped", DROPPED, counts, 0, NULL);
    int missing = 0;
    for (int k = 0; k < DROPPED; k++)
        missing += counts[k] == 0;
    if (missing)
        fail_msg("%d of %d devices never got their wakeup", missing, DROPPED);
    assert_int_equal(eu_errors(&env->emu, "DROP"), 20);
    assert_int_equal(eu_errors(&env->emu, "GOAWAY"), 20);
    printf("DROP/GOAWAY: %zu wakeups for %d devices (%ld GOAWAY frames)\n", total, DROPPED,
           eu_stat(&env->emu, "goaways"));
}

/* ---- 9. SIGTERM while a slow batch is in flight ---- */

#define DRAINED 10

static void test_sigterm_drains_batch(void **state)
{
    struct eu_env *env = *state;
    eu_start(&env->emu, NULL);
    eu_faults(&env->emu, "[{\"token\":\"*\",\"error\":\"SLOW\",\"delayMs\":2000}]", false);
    const char *extra[] = {"MPCPUSH_FCM_TIMEOUT=5", NULL};
    eu_start_mpcpush(&env->t, "run", &env->emu, extra);
    devices(env, "drained", 0, DRAINED, false);
    devices(env, "drained", 0, DRAINED, true);
    for (long deadline = tx_now_ms() + 10000; tx_now_ms() < deadline; usleep(20000))
        if (eu_stat(&env->emu, "slowed") >= 1)
            break;
    long leased = th_sql_long(env->t.db, "SELECT count(*) FROM mpcpush.pushes WHERE"
                                         " lease_id IS NOT NULL");
    assert_true(leased >= 1);
    long t0 = tx_now_ms();
    assert_int_equal(tx_stop(&env->t), 0);
    long took = tx_now_ms() - t0;
    printf("SIGTERM with %ld pushes in flight: exit 0 after %ld ms\n", leased, took);
    assert_int_equal(th_sql_long(env->t.db, "SELECT count(*) FROM mpcpush.pushes WHERE"
                                            " state = 'leased' OR lease_id IS NOT NULL"
                                            " OR leased_by IS NOT NULL"),
                     0);
    long sent = th_sql_long(env->t.db, "SELECT count(*) FROM mpcpush.pushes WHERE"
                                       " state = 'sent' AND covered_id >= wanted_id");
    assert_true(sent >= leased);
    /* what was not sent is still owed, due for the next dispatcher */
    assert_int_equal(th_sql_long(env->t.db, "SELECT count(*) FROM mpcpush.pushes WHERE"
                                            " state <> 'sent' AND NOT (wanted_id > covered_id)"),
                     0);
    int counts[DRAINED];
    size_t total = count_records(env, "drained", DRAINED, counts, 0, NULL);
    assert_int_equal(total, sent);
    assert_int_equal(th_sql_long(env->t.db,
                                 "SELECT count(*) FROM mpcpush.pushes WHERE state = 'sent'"
                                 " AND fcm_message_name IS NOT NULL"),
                     sent);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sigkill_mid_batch_leases_expire, eu_setup,
                                        eu_teardown),
        cmocka_unit_test_setup_teardown(test_drop_and_goaway_lose_nothing, eu_setup, eu_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_drains_batch, eu_setup, eu_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
