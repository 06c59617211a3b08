/* The HTTP API: routes, authentication, and the handlers behind them. */
#ifndef MPCPUSH_API_H
#define MPCPUSH_API_H

#include <pthread.h>
#include <stdint.h>

#include "mpcpush/apikeys.h"
#include "mpcpush/config.h"
#include "mpcpush/db.h"
#include "mpcpush/http.h"
#include "mpcpush/ingest.h"

struct mp_fbverify;
struct mp_metrics;
struct mp_waiters;
struct mp_ratelimit;

/* What the handlers share; owned by the app, which outlives the HTTP server. */
struct mp_api {
    const struct mp_config *cfg;
    struct mp_db_pool *pool;        /* for synchronous requests */
    struct mp_ingest *ingest;       /* group commit for message-creating requests */
    struct mp_fbverify *fbverify;   /* NULL when no Fireblocks key is configured */
    pthread_rwlock_t fbverify_lock; /* a reload swaps fbverify under it */
    struct mp_apikey_cache *keys;
    struct mp_metrics *metrics;         /* may be NULL */
    struct mp_waiters *waiters;         /* long-poll waiters; may be NULL */
    struct mp_ratelimit *per_address;   /* /v1 requests per client address */
    struct mp_ratelimit *per_key;       /* /v1 requests per API key */
    struct mp_ratelimit *auth_failures; /* failed key checks per client address */
    pthread_mutex_t gauges_lock;        /* one scrape at a time refreshes the queue gauges */
    int64_t gauges_refreshed_ms;        /* CLOCK_MONOTONIC ms of the last refresh; 0: never */
};

/* mp_http_options.precheck: routes, method, API key and content type, before the body. */
int mp_api_precheck(struct mp_http_request *req, void *api);

/* mp_http_options.handler: runs the route's handler on a complete request. */
void mp_api_handle(struct mp_http_request *req, void *api);

/* The same pair for a listener that serves only GET /metrics (MPCPUSH_METRICS_LISTEN). */
int mp_api_metrics_precheck(struct mp_http_request *req, void *api);
void mp_api_metrics_handle(struct mp_http_request *req, void *api);

#endif
