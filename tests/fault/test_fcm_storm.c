/* Fault: FCM in an error storm. Over 300 devices, the emulator answers 30 % of the sends
 * UNAVAILABLE, 10 % QUOTA_EXCEEDED with Retry-After: 1, and drops the connection or sends GOAWAY
 * for 3 % each. Every device is still woken; once a dispatcher has stored the project's quota
 * pause, no send reaches FCM until the pause is over (only requests of batches claimed before it
 * may still land, within a short grace); and there is no tight retry loop: the sends per message
 * stay bounded. Timings from the emulator's request log and mpcpush's log, both stamped with the
 * same wall clock. */
#define _GNU_SOURCE
#include "fault_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEVICES 300
#define TAG     "storm"
/* Requests of a batch claimed just before another worker stored the pause may still arrive
 * this long after the pause was logged. */
#define GRACE_MS 400
/* The pause's own clock (the database's now() at the start of its transaction) runs a little
 * ahead of the log line that reports it. */
#define SLACK_MS   50
#define MAX_EVENTS 20000

struct stamps {
    long long at[MAX_EVENTS];
    int value[MAX_EVENTS]; /* the status of a send, what was left of a pause (ms) */
    int n;
};

/* "... event=request method=POST path=/v1/projects/P/messages:send status=N" */
static void take_send(const char *line, void *arg)
{
    struct stamps *s = arg;
    if (!strstr(line, "event=request") || !strstr(line, "messages:send") || s->n >= MAX_EVENTS)
        return;
    const char *st = strstr(line, "status=");
    s->value[s->n] = st ? atoi(st + 7) : 0;
    s->at[s->n++] = fu_line_ms(line);
}

/* "... event=fcm_quota_exceeded project=P pause_ms=N": what was left of the pause */
static void take_pause(const char *line, void *arg)
{
    struct stamps *s = arg;
    const char *p = strstr(line, "pause_ms=");
    if (!p || s->n >= MAX_EVENTS)
        return;
    s->value[s->n] = atoi(p + 9);
    s->at[s->n++] = fu_line_ms(line);
}

static void test_error_storm(void **state)
{
    struct eu_env *env = *state;
    const char *emu_args[] = {"--log-requests", "--seed", "4242", NULL};
    eu_start(&env->emu, emu_args);
    const char *extra[] = {"MPCPUSH_RETRY_BASE_MS=100", "MPCPUSH_RETRY_MAX=2",
                           "MPCPUSH_DISPATCH_BATCH=100", NULL};
    eu_start_mpcpush(&env->t, "run", &env->emu, extra);
    fu_register(&env->t, "w", "d-", TAG, 0, DEVICES);
    /* The first matching rule wins, so the later probabilities are conditional: overall 30 %
     * UNAVAILABLE, 10 % QUOTA_EXCEEDED, 3 % DROP, 3 % GOAWAY. */
    eu_faults(&env->emu,
              "[{\"token\":\"*\",\"error\":\"UNAVAILABLE\",\"probability\":0.3},"
              "{\"token\":\"*\",\"error\":\"QUOTA_EXCEEDED\",\"retryAfter\":1,"
              "\"probability\":0.142857},"
              "{\"token\":\"*\",\"error\":\"DROP\",\"probability\":0.05},"
              "{\"token\":\"*\",\"error\":\"GOAWAY\",\"probability\":0.0527}]",
              false);
    long t0 = tx_now_ms();
    fu_enqueue(&env->t, "w", "d-", 0, DEVICES);

    /* Every device is woken. */
    long sent = eu_wait_sql(env->t.db, DEVICES, 90000,
                            "SELECT count(*) FROM mpcpush.pushes WHERE state = 'sent' AND"
                            " covered_id >= wanted_id AND lease_id IS NULL");
    long took = tx_now_ms() - t0;
    eu_faults_clear(&env->emu);
    usleep(300000);
    int counts[DEVICES];
    size_t total = fu_records(&env->emu, TAG, DEVICES, counts, NULL);
    int missing = 0;
    for (int k = 0; k < DEVICES; k++)
        missing += counts[k] == 0;
    long requests = eu_stat(&env->emu, "send_requests");
    json_t *stats = eu_stats(&env->emu);
    json_t *by = json_object_get(stats, "by_error");
    print_message("storm: %ld of %d pushes sent in %ld ms; %zu wakeups accepted, %ld send requests"
                  " (%.2f per message): UNAVAILABLE %lld, QUOTA_EXCEEDED %lld, DROP %lld, GOAWAY"
                  " %lld\n",
                  sent, DEVICES, took, total, requests, (double)requests / DEVICES,
                  json_integer_value(json_object_get(by, "UNAVAILABLE")),
                  json_integer_value(json_object_get(by, "QUOTA_EXCEEDED")),
                  json_integer_value(json_object_get(by, "DROP")),
                  json_integer_value(json_object_get(by, "GOAWAY")));
    assert_true(json_integer_value(json_object_get(by, "QUOTA_EXCEEDED")) > 0);
    json_decref(stats);
    if (missing)
        fail_msg("%d of %d devices never woken (%ld pushes sent)", missing, DEVICES, sent);
    assert_int_equal(sent, DEVICES);

    /* No tight retry loop. */
    if (requests > 10L * DEVICES)
        fail_msg("%ld send requests for %d messages: more than 10 per message", requests, DEVICES);

    /* The quota pauses were honoured. */
    static struct stamps sends, pauses;
    char emu_log[320];
    snprintf(emu_log, sizeof(emu_log), "%s/emulator.log", env->emu.dir);
    fu_log_lines(emu_log, "messages:send", take_send, &sends);
    fu_log_lines(env->t.proc.log_path, "event=fcm_quota_exceeded", take_pause, &pauses);
    assert_true(sends.n >= requests - 5 && sends.n > 0); /* the log has them all */
    assert_true(pauses.n > 0);
    int violations = 0, in_grace = 0;
    long long worst = 0, first_bad = 0, resume_min = -1, resume_max = 0;
    for (int p = 0; p < pauses.n; p++) {
        long long from = pauses.at[p], to = pauses.at[p] + pauses.value[p] - SLACK_MS;
        long long resumed = -1;
        for (int s = 0; s < sends.n; s++) {
            long long late = sends.at[s] - from;
            if (late > GRACE_MS && (resumed < 0 || late < resumed))
                resumed = late;
            if (sends.at[s] < from || sends.at[s] >= to)
                continue;
            if (late <= GRACE_MS) {
                in_grace++;
                continue;
            }
            if (!violations++)
                first_bad = sends.at[s];
            if (late > worst)
                worst = late;
        }
        if (resumed >= 0 && (resume_min < 0 || resumed < resume_min))
            resume_min = resumed;
        if (resumed > resume_max)
            resume_max = resumed;
    }
    print_message("quota: %d pauses stored (Retry-After: 1); %d sends landed within %d ms of a"
                  " pause being stored (batches claimed before it), %d later in a pause; sending"
                  " resumed %lld to %lld ms after a pause was stored\n",
                  pauses.n, in_grace, GRACE_MS, violations, resume_min, resume_max);
    if (violations) {
        fu_log_show(env->t.proc.log_path, "event=fcm_quota_exceeded", 10);
        fail_msg("%d sends reached FCM while a stored quota pause was active (first at %lld,"
                 " worst %lld ms into a pause)",
                 violations, first_bad, worst);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_error_storm, eu_setup, eu_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
