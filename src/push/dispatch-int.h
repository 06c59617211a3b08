/* One dispatcher batch: from claimed pushes to recorded outcomes. Split from the thread code so
 * the rules (which FCM answer leads to what) read in one place. */
#ifndef MPCPUSH_DISPATCH_INT_H
#define MPCPUSH_DISPATCH_INT_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "mpcpush/config.h"
#include "mpcpush/fcm.h"
#include "mpcpush/pushes.h"

struct mp_metrics;
struct mp_oauth;

struct mp_dispatch_ctx {
    const struct mp_config *cfg;
    struct mp_metrics *metrics;
    struct mp_oauth *oauth;
    struct mp_fcm_client *fcm;
    PGconn *conn; /* for the project pause; no transaction is open */
    const char *project;
    unsigned *seed;     /* jitter */
    bool *quota_paused; /* set while this worker has seen a quota pause */
};

/* Sends a wakeup for every sendable push and fills outcomes[i] for pushes[i]. The strings the
 * outcomes point to live in results[] (n entries, owned by the caller). */
void mp_dispatch_batch(struct mp_dispatch_ctx *ctx, const struct mp_push *pushes, int n,
                       struct mp_fcm_result *results, struct mp_push_outcome *outcomes);

/* Exponential backoff with jitter for the given number of earlier failures, never shorter than
 * retry_after seconds (when >= 0), capped at MPCPUSH_RETRY_MAX. */
long long mp_dispatch_backoff_ms(const struct mp_config *cfg, int attempts, int retry_after,
                                 unsigned *seed);

#endif
