/* The push queue: claiming due wakeups with a lease, and recording what FCM said. */
#ifndef MPCPUSH_PUSHES_H
#define MPCPUSH_PUSHES_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "mpcpush/result.h"

/* One claimed wakeup: a device and what is pending for it. */
struct mp_push {
    char *wallet_id, *device_id;
    char *fcm_token; /* NULL when the device is gone */
    char *platform;
    bool token_active;
    long long lease_id;
    long long pending;     /* unacknowledged, unexpired messages */
    long long latest_id;   /* the newest of them */
    long long ttl_seconds; /* until the last of them expires */
    int attempts;          /* failed attempts before this one */
};

/* What became of a claimed wakeup. */
enum mp_push_verdict {
    MP_PUSH_SENT,       /* delivered to FCM */
    MP_PUSH_RETRY,      /* try again after delay_ms */
    MP_PUSH_FAILED,     /* give up on what it covered (bad message) */
    MP_PUSH_SKIPPED,    /* nothing left to wake the device for, or no usable token */
    MP_PUSH_TOKEN_DEAD, /* FCM says the token will never work: invalidate it */
};

struct mp_push_outcome {
    const struct mp_push *push;
    enum mp_push_verdict verdict;
    long long delay_ms;  /* MP_PUSH_RETRY */
    const char *outcome; /* FCM outcome slug, for the DB */
    const char *detail;  /* error text, may be NULL */
    const char *name;    /* FCM message name on success, may be NULL */
};

/* Room for a due_at as PostgreSQL prints it ("2026-12-07 09:15:02.123456+00"), with margin. */
#define MP_DUE_TEXT_MAX 48

/* What to claim. The cursor makes a busy queue cheap to claim from: each claim starts at the
 * due_at where the previous one stopped, instead of walking again past every row that is
 * leased and still in flight (or dead and not yet pruned) at the head of the queue. Rows left
 * behind the cursor (skipped while another claimer held them, or whose lease expired) are
 * found again once the caller resets it to NULL. */
struct mp_claim {
    const char *project;               /* nothing while its sends are paused */
    const char *owner;                 /* who holds the leases, for operators */
    int limit, lease_seconds;          /* how many rows at most, leased for how long */
    const char *wallet_id, *device_id; /* only this device's row (else both NULL) */
    const char *after;              /* the cursor: only rows due at or after it (NULL, "": all) */
    char last_due[MP_DUE_TEXT_MAX]; /* out: the due_at of the last row claimed ("" if none) */
};

/* Sets up a dispatcher's connection for the statements below (see src/store/pushes.c). */
enum mp_result mp_pushes_session(PGconn *conn) MP_MUSTCHECK;

/* Claims due wakeups and leases them. The caller owns *out (mp_pushes_free). */
enum mp_result mp_pushes_claim(PGconn *conn, struct mp_claim *claim, struct mp_push **out,
                               int *count) MP_MUSTCHECK;

/* Records outcomes; a row whose lease was taken over meanwhile is left alone. */
enum mp_result mp_pushes_record(PGconn *conn, const struct mp_push_outcome *outcomes,
                                int count) MP_MUSTCHECK;

/* Pauses every dispatcher's sends for project: for retry_after seconds when given (>= 0),
 * else 60 s doubled for each quota error in a row (capped at max_seconds); an existing longer
 * pause stands. Quota errors met while a pause is on (batches sent before it began) do not
 * count as more in a row. Returns what is left of the pause, in ms, through *ms (may be NULL). */
enum mp_result mp_pushes_pause(PGconn *conn, const char *project, const char *reason,
                               int retry_after, int max_seconds, long long *ms) MP_MUSTCHECK;

/* Clears the project's quota strikes after a successful batch. */
enum mp_result mp_pushes_unpause(PGconn *conn, const char *project) MP_MUSTCHECK;

void mp_pushes_free(struct mp_push *pushes, int count);

#endif
