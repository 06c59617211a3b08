/* Long-poll waiters: requests parked (suspended, no thread and no database connection each)
 * until a message for their device commits, whichever process stored it, or their deadline
 * passes. One thread LISTENs on a dedicated connection and wakes the matching waiters. */
#ifndef MPCPUSH_WAITERS_H
#define MPCPUSH_WAITERS_H

#include <stdbool.h>
#include <time.h>

#include "mpcpush/http.h"
#include "mpcpush/result.h"

struct mp_metrics;
struct mp_waiters;

struct mp_waiter {
    /* set by the caller */
    char key[260];            /* "walletId/deviceId" */
    struct timespec deadline; /* CLOCK_MONOTONIC */
    struct mp_http_request *req;
    /* managed by the registry */
    bool parked, fired, timed_out;
    struct mp_waiter *prev, *next;
};

enum mp_result mp_waiters_start(const char *database_url, struct mp_metrics *metrics,
                                struct mp_waiters **out) MP_MUSTCHECK;

/* Starts watching for w->key before the caller looks in the database, so that nothing that
 * commits in between is missed. Returns false when the registry is stopping. */
bool mp_waiters_watch(struct mp_waiters *waiters, struct mp_waiter *w);

/* After the caller found nothing: suspends w->req until a notification for w->key or the
 * deadline. Returns false, without suspending, when one already came (look again). */
bool mp_waiters_park(struct mp_waiters *waiters, struct mp_waiter *w);

/* Removes w if still parked (the request is going away). */
void mp_waiters_forget(struct mp_waiters *waiters, struct mp_waiter *w);

/* Wakes every waiter (timed out) and stops the thread. Accepts NULL. */
void mp_waiters_stop(struct mp_waiters *waiters);

/* Frees; after mp_waiters_stop and after the HTTP server has stopped. Accepts NULL. */
void mp_waiters_free(struct mp_waiters *waiters);

#endif
