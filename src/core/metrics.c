/* The metrics registry: a fixed set of families, each with a handful of label values. */
#include "mpcpush/metrics.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LABELS 24
#define NBUCKETS   12

static const double bucket_bounds[NBUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                               0.1,   0.25,   0.5,   1,    2.5,   10};

/* A counter family with one label, or a plain counter/gauge (label NULL). */
struct family {
    const char *name;
    const char *help;
    const char *type;  /* counter | gauge */
    const char *label; /* label name, NULL for a single series */
    int count;
    char values[MAX_LABELS][40];
    double totals[MAX_LABELS];
};

struct histogram {
    const char *name;
    const char *help;
    unsigned long long buckets[NBUCKETS];
    unsigned long long count;
    double sum;
};

enum { F_WEBHOOKS, F_PUSHES, F_DB_ERRORS, F_COUNTERS_END };

struct mp_metrics {
    pthread_mutex_t lock;
    struct family families[F_COUNTERS_END];
    struct family plain[16]; /* single-series counters and gauges, by name */
    int nplain;
    struct histogram fcm_latency, claim_latency;
};

/* The plain series, declared once so names and help stay together. */
static const struct {
    const char *name, *type, *help;
} plain_series[] = {
    {"mpcpush_messages_stored_total", "counter", "Messages stored (webhooks and API)."},
    {"mpcpush_ingest_batches_total", "counter", "Group-commit transactions written."},
    {"mpcpush_oauth_refreshes_total", "counter", "Google OAuth access tokens fetched."},
    {"mpcpush_oauth_failures_total", "counter", "Failed Google OAuth token fetches."},
    {"mpcpush_longpoll_waiters", "gauge", "Requests waiting in a long poll."},
    {"mpcpush_pending_messages", "gauge", "Unacknowledged, unexpired messages."},
    {"mpcpush_oldest_pending_age_seconds", "gauge", "Age of the oldest pending message."},
    {"mpcpush_pushes_due", "gauge", "Devices owed a wakeup now."},
};

enum mp_result mp_metrics_new(struct mp_metrics **out)
{
    struct mp_metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return MP_ERR_NOMEM;
    pthread_mutex_init(&m->lock, NULL);
    m->families[F_WEBHOOKS] = (struct family){.name = "mpcpush_webhooks_total",
                                              .help = "Fireblocks webhooks by outcome.",
                                              .type = "counter",
                                              .label = "outcome"};
    m->families[F_PUSHES] = (struct family){.name = "mpcpush_pushes_total",
                                            .help = "FCM sends by outcome.",
                                            .type = "counter",
                                            .label = "outcome"};
    m->families[F_DB_ERRORS] = (struct family){.name = "mpcpush_db_errors_total",
                                               .help = "Database errors by component.",
                                               .type = "counter",
                                               .label = "component"};
    for (size_t i = 0; i < sizeof(plain_series) / sizeof(plain_series[0]); i++)
        m->plain[m->nplain++] = (struct family){.name = plain_series[i].name,
                                                .help = plain_series[i].help,
                                                .type = plain_series[i].type};
    m->fcm_latency = (struct histogram){.name = "mpcpush_fcm_request_duration_seconds",
                                        .help = "Time from sending an FCM request to its answer."};
    m->claim_latency = (struct histogram){.name = "mpcpush_queue_claim_duration_seconds",
                                          .help = "Time one dispatcher claim statement took."};
    *out = m;
    return MP_OK;
}

void mp_metrics_free(struct mp_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Adds n to the series of family f with label value (or the single series). Lock held. */
static void bump(struct family *f, const char *value, double n, bool set)
{
    int i = 0;
    if (f->label) {
        if (!value) /* a labelled family needs its label's value */
            return;
        while (i < f->count && strcmp(f->values[i], value) != 0)
            i++;
        if (i == f->count) {
            if (f->count == MAX_LABELS)
                return;
            strncpy(f->values[i], value, sizeof(f->values[i]) - 1);
            f->count++;
        }
    }
    f->totals[i] = set ? n : f->totals[i] + n;
}

static void bump_family(struct mp_metrics *m, int family, const char *value)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    bump(&m->families[family], value, 1, false);
    pthread_mutex_unlock(&m->lock);
}

void mp_metrics_webhook(struct mp_metrics *m, const char *outcome)
{
    bump_family(m, F_WEBHOOKS, outcome);
}

void mp_metrics_push(struct mp_metrics *m, const char *outcome)
{
    bump_family(m, F_PUSHES, outcome);
}

void mp_metrics_db_error(struct mp_metrics *m, const char *component)
{
    bump_family(m, F_DB_ERRORS, component);
}

static void update_plain(struct mp_metrics *m, const char *name, double value, bool set)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < m->nplain; i++) {
        const char *full = m->plain[i].name;
        /* accept "messages_stored" for "mpcpush_messages_stored_total" */
        size_t n = strlen(name);
        if (strcmp(full, name) == 0 ||
            (strncmp(full + 8, name, n) == 0 && (!full[8 + n] || !strcmp(full + 8 + n, "_total"))))
            bump(&m->plain[i], NULL, value, set);
    }
    pthread_mutex_unlock(&m->lock);
}

void mp_metrics_add(struct mp_metrics *m, const char *counter, unsigned long long n)
{
    update_plain(m, counter, (double)n, false);
}

void mp_metrics_set(struct mp_metrics *m, const char *gauge, double value)
{
    update_plain(m, gauge, value, true);
}

static void observe(struct mp_metrics *m, struct histogram *h, double seconds)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < NBUCKETS; i++)
        if (seconds <= bucket_bounds[i])
            h->buckets[i]++;
    h->count++;
    h->sum += seconds;
    pthread_mutex_unlock(&m->lock);
}

void mp_metrics_fcm_latency(struct mp_metrics *m, double seconds)
{
    observe(m, m ? &m->fcm_latency : NULL, seconds);
}

void mp_metrics_claim_latency(struct mp_metrics *m, double seconds)
{
    observe(m, m ? &m->claim_latency : NULL, seconds);
}

static enum mp_result render_family(const struct family *f, struct mp_buf *out)
{
    enum mp_result result =
        mp_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
    if (!f->label)
        return result ? result : mp_buf_printf(out, "%s %.17g\n", f->name, f->totals[0]);
    for (int i = 0; !result && i < f->count; i++)
        result = mp_buf_printf(out, "%s{%s=\"%s\"} %.17g\n", f->name, f->label, f->values[i],
                               f->totals[i]);
    return result;
}

static enum mp_result render_histogram(const struct histogram *h, struct mp_buf *out)
{
    enum mp_result result =
        mp_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", h->name, h->help, h->name);
    for (int i = 0; !result && i < NBUCKETS; i++)
        result = mp_buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", h->name, bucket_bounds[i],
                               h->buckets[i]);
    if (!result)
        result = mp_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n",
                               h->name, h->count, h->name, h->sum, h->name, h->count);
    return result;
}

enum mp_result mp_metrics_render(struct mp_metrics *m, struct mp_buf *out)
{
    enum mp_result result = mp_buf_printf(out,
                                          "# HELP mpcpush_build_info Version of this build.\n"
                                          "# TYPE mpcpush_build_info gauge\n"
                                          "mpcpush_build_info{version=\"%s\"} 1\n",
                                          MPCPUSH_VERSION);
    if (!m)
        return result;
    pthread_mutex_lock(&m->lock);
    for (int i = 0; !result && i < F_COUNTERS_END; i++)
        result = render_family(&m->families[i], out);
    for (int i = 0; !result && i < m->nplain; i++)
        result = render_family(&m->plain[i], out);
    if (!result)
        result = render_histogram(&m->fcm_latency, out);
    if (!result)
        result = render_histogram(&m->claim_latency, out);
    pthread_mutex_unlock(&m->lock);
    return result;
}
