/* The dispatcher: worker threads that claim, send and record batches of wakeups, and a
 * listener that wakes them on NOTIFY (polling remains the guarantee). No transaction is ever
 * open while a request to FCM is in flight: claim commits, then send, then record commits. */
#include "mpcpush/dispatcher.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mpcpush/db.h"
#include "mpcpush/fcm.h"
#include "mpcpush/log.h"
#include "mpcpush/metrics.h"
#include "mpcpush/oauth.h"
#include "mpcpush/pushes.h"
#include "push/dispatch-int.h"

struct worker {
    struct mp_dispatcher *d;
    pthread_t thread;
    int index;
    char owner[128];
    PGconn *conn;
    struct mp_fcm_client *fcm;
    unsigned seed;
    bool quota_paused;
};

struct mp_dispatcher {
    const struct mp_config *cfg;
    struct mp_metrics *metrics;
    struct mp_oauth *oauth;
    pthread_rwlock_t oauth_lock; /* batches read-lock it; a reload swaps oauth under it */
    char project[256];
    struct worker *workers;
    int nworkers;
    pthread_t listener;
    bool listener_started;
    pthread_mutex_t lock;
    pthread_cond_t wake;  /* naps that a NOTIFY ends (wake_workers) */
    pthread_cond_t pause; /* naps that only a stop ends (after errors) */
    unsigned long wake_seq;
    atomic_bool stopping;
    /* The claim cursor (struct mp_claim), shared: claims take turns under cursor_lock, each
     * starting where the last one stopped, so none walks past the batches still in flight. */
    pthread_mutex_t cursor_lock;
    char cursor[MP_DUE_TEXT_MAX]; /* "" = from the start of the queue */
    struct timespec cursor_reset_at;
};

/* A cursor goes back to the start of the queue whenever a claim comes back short (the queue
 * is drained up to now), and at least this often: rows it left behind (held by another
 * instance's claim, or with an expired lease) wait at most this long. */
enum { CURSOR_RESET_MS = 250 };

/* ---- waking ---- */

/* Wakes one napping worker, or all of them. A NOTIFY wakes one: each committed ingest batch
 * notifies, and waking every worker for it would have them all run a claim that finds the
 * same few rows; a worker that claims a full batch wakes the next one itself. */
static void wake_workers(struct mp_dispatcher *d, bool all)
{
    pthread_mutex_lock(&d->lock);
    d->wake_seq++;
    if (all) {
        pthread_cond_broadcast(&d->wake);
        pthread_cond_broadcast(&d->pause);
    } else {
        pthread_cond_signal(&d->wake);
    }
    pthread_mutex_unlock(&d->lock);
}

static unsigned long wake_seq(struct mp_dispatcher *d)
{
    pthread_mutex_lock(&d->lock);
    unsigned long seq = d->wake_seq;
    pthread_mutex_unlock(&d->lock);
    return seq;
}

/* Sleeps up to ms, or until the dispatcher stops, or (when notify) until a wakeup newer than
 * seen: a worker reads the sequence before its claim, so a NOTIFY that arrives between an
 * empty claim and the nap is not missed. The two kinds of nap wait on different conditions, so
 * that the one worker a NOTIFY signals is one that waits for it. Deadlines are on the monotonic
 * clock: a step of the wall clock neither stretches nor cuts a nap. */
static void nap(struct mp_dispatcher *d, int ms, bool notify, unsigned long seen)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&d->lock);
    while (!atomic_load(&d->stopping) && (!notify || d->wake_seq == seen))
        if (pthread_cond_timedwait(notify ? &d->wake : &d->pause, &d->lock, &until) != 0)
            break;
    pthread_mutex_unlock(&d->lock);
}

static void *listener_main(void *arg)
{
    struct mp_dispatcher *d = arg;
    PGconn *conn = NULL;
    while (!atomic_load(&d->stopping)) {
        if (mp_db_broken(conn)) {
            PQfinish(conn);
            conn = NULL;
            if (mp_db_connect(d->cfg->database_url, "listen", &conn) != MP_OK ||
                mp_db_exec(conn, "LISTEN mpcpush_messages") != MP_OK) {
                PQfinish(conn); /* connected but not listening: start again */
                conn = NULL;
                nap(d, 1000, false, 0);
                continue;
            }
            wake_workers(d, true); /* anything committed while we were away */
        }
        struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
        if (poll(&pfd, 1, 500) <= 0)
            continue;
        if (!PQconsumeInput(conn))
            continue; /* broken: reconnect on the next turn */
        bool any = false;
        PGnotify *n;
        while ((n = PQnotifies(conn))) {
            any = true;
            PQfreemem(n);
        }
        if (any)
            wake_workers(d, false);
    }
    PQfinish(conn);
    return NULL;
}

/* ---- one batch ---- */

/* The worker's connection, set up for the push queue's statements (mp_pushes_session). */
static enum mp_result ensure_conn(struct worker *w)
{
    if (!mp_db_broken(w->conn))
        return MP_OK;
    PQfinish(w->conn);
    w->conn = NULL;
    enum mp_result result = mp_db_connect(w->d->cfg->database_url, "dispatch", &w->conn);
    if (!result)
        result = mp_pushes_session(w->conn);
    if (result) {
        PQfinish(w->conn);
        w->conn = NULL;
    }
    return result;
}

/* Records outcomes, retrying a few times across reconnects: the sends already happened, and
 * an unrecorded success would be sent again once the lease expires. */
static void record(struct worker *w, const struct mp_push_outcome *outcomes, int n)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        if (ensure_conn(w) == MP_OK && mp_pushes_record(w->conn, outcomes, n) == MP_OK)
            return;
        mp_metrics_db_error(w->d->metrics, "dispatcher");
        nap(w->d, 200 << attempt, false, 0);
    }
    MP_ERROR("push_record_failed",
             "worker=%d count=%d detail=\"leases will expire and the "
             "wakeups will be sent again\"",
             w->index, n);
}

static void run_batch(struct worker *w, struct mp_push *pushes, int n)
{
    struct mp_push_outcome *outcomes = calloc((size_t)n, sizeof(*outcomes));
    struct mp_fcm_result *results = calloc((size_t)n, sizeof(*results));
    if (!outcomes || !results) {
        MP_ERROR("dispatch_nomem", "count=%d", n);
        free(outcomes);
        free(results);
        return; /* the leases expire and another pass takes them */
    }
    struct mp_dispatch_ctx ctx = {
        .cfg = w->d->cfg,
        .metrics = w->d->metrics,
        .fcm = w->fcm,
        .conn = w->conn,
        .project = w->d->project,
        .seed = &w->seed,
        .quota_paused = &w->quota_paused,
    };
    pthread_rwlock_rdlock(&w->d->oauth_lock);
    ctx.oauth = w->d->oauth;
    mp_dispatch_batch(&ctx, pushes, n, results, outcomes);
    struct mp_oauth_stats stats;
    mp_oauth_stats(ctx.oauth, &stats);
    pthread_rwlock_unlock(&w->d->oauth_lock);
    mp_metrics_set(w->d->metrics, "oauth_refreshes", (double)stats.refreshes);
    mp_metrics_set(w->d->metrics, "oauth_failures", (double)stats.failures);
    record(w, outcomes, n);
    free(outcomes);
    free(results);
}

static long long ms_between(struct timespec a, struct timespec b)
{
    return (long long)(b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
}

static enum mp_result claim_batch(struct worker *w, struct mp_push **pushes, int *n)
{
    struct mp_dispatcher *d = w->d;
    struct mp_claim claim = {.project = d->project,
                             .owner = w->owner,
                             .limit = d->cfg->dispatch_batch,
                             .lease_seconds = d->cfg->lease_seconds};
    pthread_mutex_lock(&d->cursor_lock);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (ms_between(d->cursor_reset_at, now) >= CURSOR_RESET_MS)
        d->cursor[0] = '\0';
    if (!d->cursor[0])
        d->cursor_reset_at = now;
    claim.after = d->cursor[0] ? d->cursor : NULL;
    enum mp_result result = mp_pushes_claim(w->conn, &claim, pushes, n);
    if (result || *n < claim.limit)
        d->cursor[0] = '\0';
    else
        memcpy(d->cursor, claim.last_due, sizeof(d->cursor));
    pthread_mutex_unlock(&d->cursor_lock);
    return result;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct mp_dispatcher *d = w->d;
    while (!atomic_load(&d->stopping)) {
        if (ensure_conn(w) != MP_OK) {
            nap(d, 1000, false, 0);
            continue;
        }
        struct mp_push *pushes = NULL;
        int n = 0;
        unsigned long seen = wake_seq(d);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (claim_batch(w, &pushes, &n) != MP_OK) {
            mp_metrics_db_error(d->metrics, "dispatcher");
            nap(d, 1000, false, 0);
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        mp_metrics_claim_latency(d->metrics, (double)(t1.tv_sec - t0.tv_sec) +
                                                 (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
        if (n == d->cfg->dispatch_batch)
            wake_workers(d, false); /* there may be more: share it */
        if (n > 0)
            run_batch(w, pushes, n);
        mp_pushes_free(pushes, n);
        if (n == 0)
            nap(d, d->cfg->poll_interval_ms, true, seen);
    }
    PQfinish(w->conn);
    return NULL;
}

/* ---- life cycle ---- */

static enum mp_result load_google(struct mp_dispatcher *d, struct mp_buf *errors)
{
    const struct mp_config *cfg = d->cfg;
    if (!cfg->google_credentials) {
        if (mp_buf_puts(errors, "MPCPUSH_GOOGLE_CREDENTIALS: required by the dispatcher (or "
                                "set CREDENTIALS_DIRECTORY)\n"))
            return MP_ERR_NOMEM;
        return MP_ERR_INVALID;
    }
    enum mp_result result = mp_oauth_new(cfg->google_credentials, cfg->google_token_url,
                                         cfg->ca_file, &d->oauth, errors);
    if (!result)
        snprintf(d->project, sizeof(d->project), "%s", mp_oauth_project_id(d->oauth));
    return result;
}

static enum mp_result start_workers(struct mp_dispatcher *d)
{
    char host[64] = "host";
    gethostname(host, sizeof(host) - 1);
    d->workers = calloc((size_t)d->cfg->dispatch_workers, sizeof(*d->workers));
    if (!d->workers)
        return MP_ERR_NOMEM;
    for (int i = 0; i < d->cfg->dispatch_workers; i++) {
        struct worker *w = &d->workers[i];
        w->d = d;
        w->index = i;
        w->seed = (unsigned)getpid() * 7919u + (unsigned)i * 104729u + (unsigned)time(NULL);
        snprintf(w->owner, sizeof(w->owner), "%s:%d:%d", host, (int)getpid(), i);
        enum mp_result result =
            mp_fcm_client_new(d->cfg->fcm_url, mp_oauth_project_id(d->oauth), d->cfg->ca_file,
                              d->cfg->fcm_connections, d->cfg->fcm_timeout, &w->fcm);
        if (result)
            return result;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            return MP_ERR_NOMEM;
        d->nworkers++;
    }
    if (pthread_create(&d->listener, NULL, listener_main, d) != 0)
        return MP_ERR_NOMEM;
    d->listener_started = true;
    return MP_OK;
}

enum mp_result mp_dispatcher_start(const struct mp_config *cfg, struct mp_metrics *metrics,
                                   struct mp_dispatcher **out, struct mp_buf *errors)
{
    struct mp_dispatcher *d = calloc(1, sizeof(*d));
    if (!d)
        return MP_ERR_NOMEM;
    d->cfg = cfg;
    d->metrics = metrics;
    pthread_mutex_init(&d->lock, NULL);
    pthread_condattr_t monotonic;
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_cond_init(&d->wake, &monotonic);
    pthread_cond_init(&d->pause, &monotonic);
    pthread_condattr_destroy(&monotonic);
    pthread_mutex_init(&d->cursor_lock, NULL);
    pthread_rwlock_init(&d->oauth_lock, NULL);
    enum mp_result result = load_google(d, errors);
    if (!result)
        result = start_workers(d);
    if (result) {
        mp_dispatcher_stop(d);
        return result;
    }
    MP_INFO("dispatcher_started", "project=%s workers=%d fcm=%s", mp_oauth_project_id(d->oauth),
            d->nworkers, cfg->fcm_url);
    /* A batch can take two FCM timeouts (a request, then its resend after a 401 and a token
     * refresh); once its lease runs out, another dispatcher may claim and send it again. */
    if (cfg->lease_seconds <= 2 * cfg->fcm_timeout)
        MP_WARN("lease_shorter_than_send",
                "lease_seconds=%d fcm_timeout=%d: MPCPUSH_LEASE_SECONDS should exceed twice "
                "MPCPUSH_FCM_TIMEOUT, or a slow batch can be sent twice",
                cfg->lease_seconds, cfg->fcm_timeout);
    *out = d;
    return MP_OK;
}

void mp_dispatcher_stop(struct mp_dispatcher *d)
{
    if (!d)
        return;
    atomic_store(&d->stopping, true);
    wake_workers(d, true);
    for (int i = 0; i < d->nworkers; i++)
        pthread_join(d->workers[i].thread, NULL);
    if (d->listener_started)
        pthread_join(d->listener, NULL);
    for (int i = 0; d->workers && i < d->cfg->dispatch_workers; i++)
        mp_fcm_client_free(d->workers[i].fcm);
    free(d->workers);
    mp_oauth_free(d->oauth);
    pthread_rwlock_destroy(&d->oauth_lock);
    pthread_mutex_destroy(&d->lock);
    pthread_mutex_destroy(&d->cursor_lock);
    pthread_cond_destroy(&d->wake);
    pthread_cond_destroy(&d->pause);
    free(d);
}

enum mp_result mp_dispatcher_reload(struct mp_dispatcher *d, const struct mp_config *cfg,
                                    struct mp_buf *errors)
{
    struct mp_oauth *fresh = NULL;
    enum mp_result result = MP_ERR_INVALID;
    if (cfg->google_credentials)
        result = mp_oauth_new(cfg->google_credentials, cfg->google_token_url, cfg->ca_file, &fresh,
                              errors);
    if (!result && strcmp(mp_oauth_project_id(fresh), d->project) != 0) {
        result = mp_buf_puts(errors, "MPCPUSH_GOOGLE_CREDENTIALS: a different Firebase project "
                                     "needs a restart\n")
                     ? MP_ERR_NOMEM
                     : MP_ERR_CONFLICT;
    }
    if (result) {
        mp_oauth_free(fresh);
        return result;
    }
    pthread_rwlock_wrlock(&d->oauth_lock); /* waits for the batches in flight */
    struct mp_oauth *old = d->oauth;
    d->oauth = fresh;
    pthread_rwlock_unlock(&d->oauth_lock);
    mp_oauth_free(old);
    MP_INFO("google_credentials_reloaded", "project=%s", d->project);
    return MP_OK;
}
