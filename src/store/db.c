/* Connections, statement helpers and the request-handler connection pool. */
#include "mpcpush/db.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpcpush/log.h"

/* Every session: UTC timestamps, no statement or idle transaction may hang forever, and no
 * JIT. PostgreSQL compiles a statement whose estimated cost passes jit_above_cost afresh at
 * every execution; against large tables the ingest statement qualified, and each batch spent
 * tens of milliseconds compiling what runs in a few (measured: growth ingest 6,200 -> 7,500
 * webhooks/s). Nothing mpcpush runs is long enough to repay it. */
static const char session_setup[] = "SET TIME ZONE 'UTC'; SET statement_timeout = '30s'; "
                                    "SET idle_in_transaction_session_timeout = '60s'; "
                                    "SET jit = off";

static void silence_notices(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

enum mp_result mp_db_connect(const char *url, const char *role, PGconn **out)
{
    char appname[64];
    snprintf(appname, sizeof(appname), "mpcpush-%s", role);
    /* Keepalives notice a peer that vanished without a word (a dead host, a cut link) within
     * about 25 s instead of the kernel's two hours. */
    const char *const names[] = {
        "dbname",          "application_name",    "connect_timeout",  "keepalives",
        "keepalives_idle", "keepalives_interval", "keepalives_count", NULL};
    const char *const values[] = {url, appname, "5", "1", "10", "5", "3", NULL};
    PGconn *conn = PQconnectdbParams(names, values, 1);
    if (!conn)
        return MP_ERR_NOMEM;
    if (PQstatus(conn) != CONNECTION_OK) {
        char msg[256];
        MP_WARN("db_connect_failed", "role=%s error=%s", role,
                mp_log_quote(msg, sizeof(msg), PQerrorMessage(conn)));
        PQfinish(conn);
        return MP_ERR_DB;
    }
    PQsetNoticeProcessor(conn, silence_notices, NULL);
    if (mp_db_exec(conn, session_setup) != MP_OK) {
        PQfinish(conn);
        return MP_ERR_DB;
    }
    *out = conn;
    return MP_OK;
}

const char *mp_db_sqlstate(const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state ? state : "";
}

enum mp_result mp_db_check(PGconn *conn, PGresult *res, const char *what)
{
    ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
        return MP_OK;
    char msg[512];
    const char *text = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
    MP_WARN("db_error", "what=%s sqlstate=%s error=%s", what, mp_db_sqlstate(res),
            mp_log_quote(msg, sizeof(msg), text));
    return MP_ERR_DB;
}

enum mp_result mp_db_exec(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    enum mp_result result = mp_db_check(conn, res, "exec");
    PQclear(res);
    return result;
}

PGresult *mp_db_exec_prepared(PGconn *conn, const char *name, const char *sql, int nparams,
                              const char *const *params)
{
    PGresult *res = PQexecPrepared(conn, name, nparams, params, NULL, NULL, 0);
    if (strcmp(mp_db_sqlstate(res), "26000") != 0) /* invalid_sql_statement_name */
        return res;
    PQclear(res);
    res = PQprepare(conn, name, sql, nparams, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return res;
    PQclear(res);
    return PQexecPrepared(conn, name, nparams, params, NULL, NULL, 0);
}

bool mp_db_broken(PGconn *conn)
{
    return !conn || PQstatus(conn) != CONNECTION_OK;
}

struct mp_db_pool {
    char *url;
    char role[32];
    pthread_mutex_t lock;
    pthread_cond_t returned;
    PGconn **idle;
    int idle_count;
    int open_count; /* idle + lent out */
    int size;
};

enum mp_result mp_db_pool_new(const char *url, const char *role, int size, struct mp_db_pool **out)
{
    struct mp_db_pool *pool = calloc(1, sizeof(*pool));
    if (!pool)
        return MP_ERR_NOMEM;
    pool->url = strdup(url);
    pool->idle = calloc((size_t)size, sizeof(PGconn *));
    if (!pool->url || !pool->idle) {
        free(pool->url);
        free(pool->idle);
        free(pool);
        return MP_ERR_NOMEM;
    }
    snprintf(pool->role, sizeof(pool->role), "%s", role);
    pool->size = size;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->returned, NULL);
    *out = pool;
    return MP_OK;
}

/* Waits for a returned connection or a free slot; called with the lock held. */
static enum mp_result wait_for_slot(struct mp_db_pool *pool, int wait_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += wait_ms / 1000;
    deadline.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    while (pool->idle_count == 0 && pool->open_count >= pool->size)
        if (pthread_cond_timedwait(&pool->returned, &pool->lock, &deadline) == ETIMEDOUT)
            return MP_ERR_TIMEOUT;
    return MP_OK;
}

enum mp_result mp_db_pool_get(struct mp_db_pool *pool, int wait_ms, PGconn **out)
{
    pthread_mutex_lock(&pool->lock);
    enum mp_result result = wait_for_slot(pool, wait_ms);
    if (result) {
        pthread_mutex_unlock(&pool->lock);
        return result;
    }
    if (pool->idle_count > 0) {
        *out = pool->idle[--pool->idle_count];
        pthread_mutex_unlock(&pool->lock);
        return MP_OK;
    }
    pool->open_count++; /* reserve the slot, connect outside the lock */
    pthread_mutex_unlock(&pool->lock);
    PGconn *conn = NULL;
    result = mp_db_connect(pool->url, pool->role, &conn);
    if (result) {
        pthread_mutex_lock(&pool->lock);
        pool->open_count--;
        pthread_cond_signal(&pool->returned);
        pthread_mutex_unlock(&pool->lock);
        return result;
    }
    *out = conn;
    return MP_OK;
}

void mp_db_pool_put(struct mp_db_pool *pool, PGconn *conn)
{
    if (!conn)
        return;
    bool keep = !mp_db_broken(conn) && PQtransactionStatus(conn) == PQTRANS_IDLE;
    PGconn *stale[pool->size > 0 ? pool->size : 1];
    int nstale = 0;
    pthread_mutex_lock(&pool->lock);
    if (keep) {
        pool->idle[pool->idle_count++] = conn;
    } else {
        /* A broken connection usually means the server restarted: the idle ones are dead
         * too, so drop them rather than fail one request on each. */
        pool->open_count -= 1 + pool->idle_count;
        nstale = pool->idle_count;
        memcpy(stale, pool->idle, sizeof(PGconn *) * (size_t)nstale);
        pool->idle_count = 0;
    }
    pthread_cond_broadcast(&pool->returned);
    pthread_mutex_unlock(&pool->lock);
    if (!keep)
        PQfinish(conn);
    for (int i = 0; i < nstale; i++)
        PQfinish(stale[i]);
}

void mp_db_pool_free(struct mp_db_pool *pool)
{
    if (!pool)
        return;
    for (int i = 0; i < pool->idle_count; i++)
        PQfinish(pool->idle[i]);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->returned);
    free(pool->idle);
    free(pool->url);
    free(pool);
}
