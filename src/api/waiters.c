/* The long-poll registry and its LISTEN thread. */
#include "mpcpush/waiters.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mpcpush/db.h"
#include "mpcpush/log.h"
#include "mpcpush/metrics.h"

struct mp_waiters {
    char *url;
    struct mp_metrics *metrics;
    pthread_mutex_t lock;
    struct mp_waiter *head; /* watched waiters, parked or not */
    int count;
    bool stopping;
    atomic_bool quit;
    pthread_t thread;
};

/* Unlinks w and resumes its request if parked. Lock held. */
static void fire(struct mp_waiters *ws, struct mp_waiter *w, bool timed_out)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        ws->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    ws->count--;
    w->fired = true;
    w->timed_out = timed_out;
    if (w->parked) {
        w->parked = false;
        mp_http_resume(w->req);
    }
}

static bool in_list(const char *list, const char *key)
{
    size_t len = strlen(key);
    for (const char *p = list; (p = strstr(p, key)); p += len)
        if ((p == list || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0'))
            return true;
    return false;
}

/* Wakes the waiters named in a notification ("w/d w/d ..." or "*" for all). */
static void notified(struct mp_waiters *ws, const char *payload)
{
    bool all = strcmp(payload, "*") == 0;
    pthread_mutex_lock(&ws->lock);
    for (struct mp_waiter *w = ws->head, *next; w; w = next) {
        next = w->next;
        if (all || in_list(payload, w->key))
            fire(ws, w, false);
    }
    pthread_mutex_unlock(&ws->lock);
}

static bool passed(const struct timespec *deadline, const struct timespec *now)
{
    return now->tv_sec > deadline->tv_sec ||
           (now->tv_sec == deadline->tv_sec && now->tv_nsec >= deadline->tv_nsec);
}

static void expire(struct mp_waiters *ws, bool everyone)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&ws->lock);
    for (struct mp_waiter *w = ws->head, *next; w; w = next) {
        next = w->next;
        if (everyone || passed(&w->deadline, &now))
            fire(ws, w, true);
    }
    mp_metrics_set(ws->metrics, "longpoll_waiters", ws->count);
    pthread_mutex_unlock(&ws->lock);
}

static void drain_notifications(struct mp_waiters *ws, PGconn *conn)
{
    PGnotify *n;
    while ((n = PQnotifies(conn))) {
        notified(ws, n->extra ? n->extra : "*");
        PQfreemem(n);
    }
}

static void *listen_main(void *arg)
{
    struct mp_waiters *ws = arg;
    PGconn *conn = NULL;
    while (!atomic_load(&ws->quit)) {
        if (mp_db_broken(conn)) {
            PQfinish(conn);
            conn = NULL;
            if (mp_db_connect(ws->url, "longpoll", &conn) != MP_OK ||
                mp_db_exec(conn, "LISTEN mpcpush_messages") != MP_OK) {
                expire(ws, false);
                poll(NULL, 0, 500);
                continue;
            }
            notified(ws, "*"); /* whatever committed while we were not listening */
        }
        struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
        if (poll(&pfd, 1, 100) > 0 && PQconsumeInput(conn))
            drain_notifications(ws, conn);
        expire(ws, false);
    }
    PQfinish(conn);
    return NULL;
}

enum mp_result mp_waiters_start(const char *database_url, struct mp_metrics *metrics,
                                struct mp_waiters **out)
{
    struct mp_waiters *ws = calloc(1, sizeof(*ws));
    if (!ws || !(ws->url = strdup(database_url))) {
        free(ws);
        return MP_ERR_NOMEM;
    }
    ws->metrics = metrics;
    pthread_mutex_init(&ws->lock, NULL);
    if (pthread_create(&ws->thread, NULL, listen_main, ws) != 0) {
        free(ws->url);
        free(ws);
        return MP_ERR_NOMEM;
    }
    *out = ws;
    return MP_OK;
}

bool mp_waiters_watch(struct mp_waiters *ws, struct mp_waiter *w)
{
    pthread_mutex_lock(&ws->lock);
    bool ok = !ws->stopping;
    if (ok) {
        w->fired = w->timed_out = w->parked = false;
        w->prev = NULL;
        w->next = ws->head;
        if (ws->head)
            ws->head->prev = w;
        ws->head = w;
        ws->count++;
    }
    pthread_mutex_unlock(&ws->lock);
    return ok;
}

bool mp_waiters_park(struct mp_waiters *ws, struct mp_waiter *w)
{
    pthread_mutex_lock(&ws->lock);
    bool park = !w->fired;
    if (park) {
        w->parked = true;
        mp_http_suspend(w->req); /* under the lock: a wakeup cannot resume it before this */
    }
    pthread_mutex_unlock(&ws->lock);
    return park;
}

void mp_waiters_forget(struct mp_waiters *ws, struct mp_waiter *w)
{
    pthread_mutex_lock(&ws->lock);
    if (!w->fired) {
        /* Unlink it whether or not it is parked: a request that ends while parked (its
         * connection closed under it) must not stay in the list. Never resume it here. */
        w->parked = false;
        fire(ws, w, false);
    }
    pthread_mutex_unlock(&ws->lock);
}

void mp_waiters_stop(struct mp_waiters *ws)
{
    if (!ws)
        return;
    pthread_mutex_lock(&ws->lock);
    ws->stopping = true;
    pthread_mutex_unlock(&ws->lock);
    expire(ws, true);
    atomic_store(&ws->quit, true);
    pthread_join(ws->thread, NULL);
}

void mp_waiters_free(struct mp_waiters *ws)
{
    if (!ws)
        return;
    pthread_mutex_destroy(&ws->lock);
    free(ws->url);
    free(ws);
}
