/* Prometheus metrics: counters and histograms updated from any thread, rendered in the text
 * exposition format by GET /metrics. Every update function accepts a NULL registry (no-op),
 * so code paths need not care whether metrics are on. */
#ifndef MPCPUSH_METRICS_H
#define MPCPUSH_METRICS_H

#include "mpcpush/buf.h"
#include "mpcpush/result.h"

struct mp_metrics;

enum mp_result mp_metrics_new(struct mp_metrics **out) MP_MUSTCHECK;
void mp_metrics_free(struct mp_metrics *m);

/* A webhook's outcome: stored, duplicate, bad_signature, malformed, unavailable, ... */
void mp_metrics_webhook(struct mp_metrics *m, const char *outcome);
/* A push's FCM outcome (mp_fcm_outcome_name). */
void mp_metrics_push(struct mp_metrics *m, const char *outcome);
/* Seconds one FCM request took. */
void mp_metrics_fcm_latency(struct mp_metrics *m, double seconds);
/* Seconds one dispatcher claim statement took. */
void mp_metrics_claim_latency(struct mp_metrics *m, double seconds);
/* A database error seen by the named component. */
void mp_metrics_db_error(struct mp_metrics *m, const char *component);
/* Adds to a plain counter by name (e.g. "messages_stored"); names are fixed in metrics.c. */
void mp_metrics_add(struct mp_metrics *m, const char *counter, unsigned long long n);
/* Sets a gauge by name (e.g. "longpoll_waiters"). */
void mp_metrics_set(struct mp_metrics *m, const char *gauge, double value);

/* Appends every metric in the text exposition format. */
enum mp_result mp_metrics_render(struct mp_metrics *m, struct mp_buf *out) MP_MUSTCHECK;

#endif
