/* Fault: the database stays up but refuses every write (a read-only cluster: what an operator
 * sees after a failover to a standby, a disk-full guard, or default_transaction_read_only),
 * switched on and off under a running `mpcpush run` without cutting its sessions (ALTER SYSTEM
 * + pg_reload_conf on a private cluster). Meanwhile webhooks and API writes answer 503
 * storage_unavailable, never 500, whether alone or batched together by the group commit; reads
 * (GET device, GET messages, /healthz) still work; the log names the cause (sqlstate 25006,
 * read_only_sql_transaction); the process stays up. When writes are allowed again, service
 * resumes without a restart: webhooks are stored, and the webhooks refused meanwhile, retried,
 * are stored once each. */
#define _GNU_SOURCE
#include "fault_util.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEVICES 5
#define TAG     "readonly"

/* Problems are collected, so that one run reports them all. */
static char problems[8192];

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void problem(const char *fmt, ...)
{
    size_t used = strlen(problems);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problems + used, sizeof(problems) - used, fmt, ap);
    va_end(ap);
    used = strlen(problems);
    if (used + 2 < sizeof(problems))
        strcat(problems, "\n");
}

/* Switches the whole cluster read-only (or back), through a session that is itself exempt. */
static void read_only(const struct fu_cluster *pg, bool on)
{
    char *admin = NULL;
    if (asprintf(&admin, "%s?options=-c%%20default_transaction_read_only%%3Doff", pg->url) < 0)
        fail_msg("out of memory");
    th_sql_exec(admin, on ? "ALTER SYSTEM SET default_transaction_read_only = on"
                          : "ALTER SYSTEM RESET default_transaction_read_only");
    th_sql_exec(admin, "SELECT pg_reload_conf()");
    free(admin);
    const char *want = on ? "on" : "off";
    for (long deadline = tx_now_ms() + 5000; tx_now_ms() < deadline; usleep(50000)) {
        char *now = th_sql_text(pg->url, "SHOW default_transaction_read_only");
        bool done = now && strcmp(now, want) == 0;
        free(now);
        if (done)
            return;
    }
    fail_msg("default_transaction_read_only did not become %s", want);
}

/* One API request; checks the status (and the error code when want_code is given). */
static void expect(const struct tx_env *t, const char *method, const char *path, const char *body,
                   long want, const char *want_code)
{
    struct th_response r;
    tx_api(&r, t, method, path, body);
    const char *code = th_error_code(&r);
    if (r.status != want || (want_code && strcmp(code, want_code) != 0))
        problem("%s %s: %ld %s, want %ld %s", method, path, r.status, r.body ? r.body : "", want,
                want_code ? want_code : "");
    th_response_free(&r);
}

/* Posts n API messages at once (the group commit batches them); counts the answers. */
static void parallel_messages(const struct tx_env *t, int n, int *s503, int *s500, int *other)
{
    struct tx_call calls[32];
    memset(calls, 0, sizeof(calls));
    static char bodies[32][64];
    for (int k = 0; k < n; k++) {
        calls[k].method = "POST";
        snprintf(calls[k].url, sizeof(calls[k].url), "%s/v1/wallets/w/devices/d-%d/messages",
                 t->proc.base, k % DEVICES);
        snprintf(bodies[k], sizeof(bodies[k]), "{\"payload\":{\"ro\":%d}}", k);
        calls[k].headers[0] = t->auth;
        calls[k].headers[1] = "Content-Type: application/json";
        calls[k].body = bodies[k];
        calls[k].len = strlen(bodies[k]);
    }
    tx_http_parallel(calls, n);
    *s503 = *s500 = *other = 0;
    for (int k = 0; k < n; k++) {
        const char *code =
            json_string_value(json_object_get(json_object_get(calls[k].json, "error"), "code"));
        if (calls[k].status == 503 && code && strcmp(code, "storage_unavailable") == 0)
            (*s503)++;
        else if (calls[k].status == 500)
            (*s500)++;
        else
            (*other)++;
    }
    tx_calls_free(calls, n);
}

static void test_read_only_database(void **state)
{
    struct fu_env *r = *state;
    struct eu_env *env = &r->e;
    struct tx_env *t = &env->t;
    problems[0] = '\0';
    eu_start(&env->emu, NULL);
    eu_start_mpcpush(t, "run", &env->emu, NULL);
    pid_t pid = t->proc.pid;
    fu_register(t, "w", "d-", TAG, 0, DEVICES);
    fu_enqueue(t, "w", "d-", 0, DEVICES);
    if (eu_wait_sql(t->db, DEVICES, 10000,
                    "SELECT count(*) FROM mpcpush.pushes WHERE state = 'sent'") != DEVICES)
        fail_msg("the first wakeups were not sent");
    pu_webhook_message(t->proc.base, "w", "d-0", "{\"before\":true}");

    /* Writes refused from now on, on every session, the open ones included. */
    read_only(&r->pg, true);
    long ro_at = tx_now_ms();

    /* Webhooks: one alone, then 16 connections at once (batched by the group commit). */
    struct fu_load *alone = fu_load_new(t->proc.base, 1, 0, "w", "d-", DEVICES);
    fu_load_run(alone, 300, true);
    fu_load_settle(alone, 10000);
    struct fu_load *many = fu_load_new(t->proc.base, 16, 0, "w", "d-", DEVICES);
    fu_load_run(many, 1000, true);
    fu_load_settle(many, 10000);
    struct fu_tally ta, tm;
    fu_load_tally(alone, &ta);
    fu_load_tally(many, &tm);
    print_message("read-only: webhooks one at a time: %d answered 503 storage_unavailable, %d 200,"
                  " %d other (%ld %s); 16 at once: %d 503 storage_unavailable, %d 200, %d other"
                  " (%ld %s), %d no answer\n",
                  ta.unavailable, ta.ok, ta.other, ta.other_status, ta.other_code, tm.unavailable,
                  tm.ok, tm.other, tm.other_status, tm.other_code, tm.none);
    if (ta.ok || ta.other || ta.none || ta.unavailable == 0)
        problem("webhooks one at a time: %d 200, %d other (first %ld %s), %d no answer; want"
                " 503 storage_unavailable",
                ta.ok, ta.other, ta.other_status, ta.other_code, ta.none);
    if (tm.ok || tm.other || tm.none || tm.unavailable == 0)
        problem("webhooks 16 at once: %d of %d answered %ld %s (%d 200, %d no answer); want 503"
                " storage_unavailable",
                tm.other, fu_load_count(many), tm.other_status, tm.other_code, tm.ok, tm.none);

    /* API writes. */
    expect(t, "PUT", "/v1/wallets/w/devices/new",
           "{\"fcmToken\":\"new-APA91b0123456789\",\"platform\":\"android\"}", 503,
           "storage_unavailable");
    expect(t, "POST", "/v1/wallets/w/devices/d-1/messages", "{\"payload\":{\"ro\":1}}", 503,
           "storage_unavailable");
    int s503, s500, other;
    parallel_messages(t, 16, &s503, &s500, &other);
    print_message("read-only: 16 API messages at once: %d 503 storage_unavailable, %d 500, %d"
                  " other\n",
                  s503, s500, other);
    if (s500 || other)
        problem("16 API messages at once: %d answered 500, %d other; want 503"
                " storage_unavailable",
                s500, other);
    expect(t, "POST", "/v1/wallets/w/devices/d-0/messages/ack", "{\"upTo\":\"1\"}", 503,
           "storage_unavailable");
    expect(t, "DELETE", "/v1/wallets/w/devices/d-4", NULL, 503, "storage_unavailable");

    /* Reads still work. */
    struct th_response resp;
    tx_api(&resp, t, "GET", "/v1/wallets/w/devices/d-0", NULL);
    if (resp.status != 200 ||
        json_integer_value(json_object_get(resp.json, "pendingMessages")) != 2)
        problem("GET device while read-only: %ld %s (want 200, 2 pending)", resp.status, resp.body);
    th_response_free(&resp);
    json_t *page = pu_fetch(t, "w", "d-0", "");
    if (pu_count(page) != 2)
        problem("GET messages while read-only: %zu messages, want 2", pu_count(page));
    json_decref(page);
    assert_int_equal(fu_get(t->proc.base, "/healthz", NULL, NULL, 0), 200);
    char code[64];
    long ready = fu_get(t->proc.base, "/readyz", NULL, code, sizeof(code));
    print_message("read-only: /readyz answers %ld %s\n", ready, code);
    if (ready != 200 && ready != 503)
        problem("/readyz while read-only: %ld", ready);

    /* The dispatcher keeps trying, and the log says why nothing is written. */
    sleep(2);
    if (!fu_alive(pid))
        fail_msg("mpcpush died while the database was read-only (see %s)", t->proc.log_path);
    int ro_lines = pu_log_count(t->proc.log_path, "sqlstate=25006");
    int claim_lines = pu_log_count(t->proc.log_path, "what=push_claim sqlstate=25006");
    print_message("read-only: %d log lines with sqlstate=25006 (%d from the dispatcher's claims),"
                  " e.g.:\n",
                  ro_lines, claim_lines);
    fu_log_show(t->proc.log_path, "sqlstate=25006", 2);
    if (ro_lines == 0 || pu_log_count(t->proc.log_path, "read-only transaction") == 0)
        problem("no log line names sqlstate 25006 (read-only transaction)");
    if (claim_lines == 0)
        problem("the dispatcher logged no failed claim while the database was read-only");
    int status500 = pu_log_count(t->proc.log_path, "status=500");
    if (status500) {
        fprintf(stderr, "  log lines of the 500 answers and of the ingest writer:\n");
        fu_log_show(t->proc.log_path, "status=500", 3);
        fu_log_show(t->proc.log_path, "what=ingest", 4);
    }

    /* Writes allowed again: service resumes without a restart. */
    read_only(&r->pg, false);
    long rw_at = tx_now_ms();
    long resumed = 0;
    for (long deadline = rw_at + 10000; !resumed && tx_now_ms() < deadline;) {
        fu_load_run(alone, 100, true);
        for (int i = 0; i < fu_load_count(alone) && !resumed; i++) {
            const struct fu_hook *h = fu_load_hook(alone, i);
            if (h->status == 200 && h->sent_at >= rw_at)
                resumed = h->answered_at;
        }
    }
    fu_load_settle(alone, 5000);
    if (!resumed)
        fail_msg("no webhook accepted within 10 s of writes being allowed again");
    print_message("read-only for %ld ms; webhooks accepted again %ld ms after writes were"
                  " allowed\n",
                  rw_at - ro_at, resumed - rw_at);
    expect(t, "PUT", "/v1/wallets/w/devices/new",
           "{\"fcmToken\":\"new-APA91b0123456789\",\"platform\":\"android\"}", 201, NULL);
    char *id = pu_enqueue(t, "w", "d-2", "{\"after\":true}", 0);
    char tok[128];
    eu_token(tok, sizeof(tok), TAG, 2);
    if (eu_wait_records(&env->emu, tok, 2, 15000) < 2)
        problem("device d-2 was not woken for message %s after writes came back", id);
    free(id);
    int left = fu_load_retry_all(alone, 20000) + fu_load_retry_all(many, 20000);
    if (left)
        problem("%d refused webhooks still not accepted 20 s after writes came back", left);
    struct fu_stored sa, sm;
    fu_load_stored(alone, t->db, &sa);
    fu_load_stored(many, t->db, &sm);
    if (sa.stored != fu_load_count(alone) || sm.stored != fu_load_count(many) || sa.bad_messages ||
        sm.bad_messages || sa.duplicate_payloads)
        problem("after the retries: %d of %d and %d of %d webhooks stored, %d and %d without"
                " exactly one message, %ld duplicate messages (%s%s)",
                sa.stored, fu_load_count(alone), sm.stored, fu_load_count(many), sa.bad_messages,
                sm.bad_messages, sa.duplicate_payloads, sa.first_problem, sm.first_problem);
    if (!fu_alive(pid) || t->proc.pid != pid)
        problem("mpcpush did not survive (see %s)", t->proc.log_path);
    fu_load_free(alone);
    fu_load_free(many);
    if (problems[0])
        fail_msg("read-only database (log: %s):\n%s", t->proc.log_path, problems);
}

int main(void)
{
    tx_keys();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_only_database, fu_setup_private,
                                        fu_teardown_private),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
