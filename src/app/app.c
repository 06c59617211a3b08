/* The long-running process: starts the parts its roles need, waits for signals, runs the
 * periodic chores, and shuts down in order (stop accepting, drain, close). */
#include "mpcpush/app.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "mpcpush/api.h"
#include "mpcpush/db.h"
#include "mpcpush/dispatcher.h"
#include "mpcpush/fbverify.h"
#include "mpcpush/http.h"
#include "mpcpush/log.h"
#include "mpcpush/messages.h"
#include "mpcpush/metrics.h"
#include "mpcpush/ratelimit.h"
#include "mpcpush/waiters.h"

#define APIKEY_REFRESH_SECONDS 5
#define PRUNE_LOCK_KEY         0x6d7063707275 /* "mpcpru": held by the elected pruner */
#define PRUNE_BATCH            5000

extern char **environ;

struct app {
    const struct mp_config *cfg;
    const char *config_file;
    unsigned roles;
    struct mp_metrics *metrics;
    struct mp_api api;
    struct mp_http_server *http;
    struct mp_http_server *metrics_http;
    struct mp_dispatcher *dispatcher;
    PGconn *chores; /* connection for periodic work, (re)opened on demand */
    pthread_t chores_thread;
    bool chores_started;
    pthread_mutex_t chores_lock;
    pthread_cond_t chores_wake;
    bool chores_stop, refresh_now; /* under chores_lock */
    bool pruner;                   /* this process holds the pruning lock on `chores` */
};

static void chores_signal(struct app *app, bool stop);

/* Refuses to serve a database whose schema does not match this binary. An unreachable
 * database is not fatal: the process starts and recovers when the database comes. */
static enum mp_result check_schema(const struct mp_config *cfg)
{
    PGconn *conn = NULL;
    if (mp_db_connect(cfg->database_url, "startup", &conn) != MP_OK) {
        MP_WARN("db_unreachable_at_start", "detail=\"serving anyway; retrying in the background\"");
        return MP_OK;
    }
    enum mp_result result = mp_db_schema_check(conn);
    PQfinish(conn);
    if (result == MP_ERR_CONFLICT) {
        MP_ERROR("schema_outdated", "detail=\"run mpcpush migrate first\"");
        fprintf(stderr, "mpcpush: the database schema is not current: run `mpcpush migrate`\n");
    }
    return result == MP_ERR_DB ? MP_OK : result;
}

static bool chores_connection(struct app *app)
{
    if (app->chores && !mp_db_broken(app->chores))
        return true;
    PQfinish(app->chores);
    app->chores = NULL;
    app->pruner = false; /* the lock went with the connection */
    return mp_db_connect(app->cfg->database_url, "chores", &app->chores) == MP_OK;
}

static void refresh_keys(struct app *app)
{
    if (chores_connection(app) && mp_apikey_cache_refresh(app->api.keys, app->chores) != MP_OK)
        mp_metrics_db_error(app->metrics, "apikeys");
}

/* One process prunes: whichever holds the advisory lock, taken on its chores connection and
 * kept for as long as that connection lives. */
static void prune(struct app *app)
{
    if (!chores_connection(app))
        return;
    if (!app->pruner) {
        char sql[80];
        snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock(%lld)", (long long)PRUNE_LOCK_KEY);
        PGresult *res = PQexec(app->chores, sql);
        app->pruner =
            mp_db_check(app->chores, res, "prune_lock") == MP_OK && PQgetvalue(res, 0, 0)[0] == 't';
        PQclear(res);
        if (!app->pruner)
            return;
        MP_INFO("pruner_elected", "");
    }
    struct mp_prune_limits limits = {app->cfg->retention_acked_seconds,
                                     app->cfg->retention_events_seconds, PRUNE_BATCH};
    long long deleted = 0;
    if (mp_messages_prune(app->chores, &limits, &deleted) != MP_OK)
        mp_metrics_db_error(app->metrics, "prune");
    else if (deleted > 0)
        MP_INFO("pruned", "rows=%lld", deleted);
}

static enum mp_result start_receiver(struct app *app)
{
    const struct mp_config *cfg = app->cfg;
    struct mp_buf errors;
    mp_buf_init(&errors, 8192);
    enum mp_result result = MP_OK;
    app->api.cfg = cfg;
    app->api.metrics = app->metrics;
    pthread_rwlock_init(&app->api.fbverify_lock, NULL);
    if (cfg->fireblocks_pubkeys || cfg->fireblocks_jwks)
        result = mp_fbverify_new(cfg->fireblocks_pubkeys, cfg->fireblocks_jwks, cfg->ca_file,
                                 &app->api.fbverify, &errors);
    if (result == MP_ERR_UNAVAILABLE) { /* the JWKS download failed: retried on demand */
        char detail[512];
        MP_WARN("fireblocks_jwks_unavailable", "detail=%s",
                mp_log_quote(detail, sizeof(detail), errors.data));
        result = MP_OK;
    } else if (result) {
        fprintf(stderr, "%s", errors.data ? errors.data : "mpcpush: cannot load Fireblocks keys\n");
    }
    mp_buf_free(&errors);
    if (!result)
        result = mp_db_pool_new(cfg->database_url, "api", cfg->db_pool_size, &app->api.pool);
    if (!result)
        result = mp_ingest_start(cfg->database_url, cfg->batch_max, &app->api.ingest);
    if (!result)
        result = mp_apikey_cache_new(&app->api.keys);
    if (!result)
        result = mp_waiters_start(cfg->database_url, app->metrics, &app->api.waiters);
    if (!result)
        result = mp_ratelimit_new(cfg->rate_limit_per_minute, &app->api.per_address);
    if (!result)
        result = mp_ratelimit_new(cfg->rate_limit_per_minute, &app->api.per_key);
    if (!result)
        result = mp_ratelimit_new(cfg->auth_failures_per_minute, &app->api.auth_failures);
    if (result)
        return result;
    refresh_keys(app);
    struct mp_http_options options = {
        .listen = cfg->listen,
        .threads = cfg->http_threads,
        .max_body_bytes = cfg->max_body_bytes,
        .connection_memory_bytes = cfg->connection_memory_bytes,
        .max_connections = cfg->max_connections,
        .max_connections_per_ip = cfg->max_connections_per_ip,
        .idle_timeout = cfg->idle_timeout,
        .request_timeout = cfg->request_timeout,
        .precheck = mp_api_precheck,
        .handler = mp_api_handle,
        .arg = &app->api,
    };
    return mp_http_start(&options, &app->http);
}

static enum mp_result start_dispatcher(struct app *app)
{
    struct mp_buf errors;
    mp_buf_init(&errors, 8192);
    enum mp_result result = mp_dispatcher_start(app->cfg, app->metrics, &app->dispatcher, &errors);
    if (result)
        fprintf(stderr, "%s", errors.data ? errors.data : "mpcpush: cannot start the dispatcher\n");
    mp_buf_free(&errors);
    return result;
}

/* MPCPUSH_METRICS_LISTEN: /metrics on its own address, for any role. */
static enum mp_result start_metrics(struct app *app)
{
    const struct mp_config *cfg = app->cfg;
    enum mp_result result = MP_OK;
    app->api.cfg = cfg;
    app->api.metrics = app->metrics;
    if (!app->api.pool)
        result = mp_db_pool_new(cfg->database_url, "metrics", 1, &app->api.pool);
    struct mp_http_options options = {
        .listen = cfg->metrics_listen,
        .threads = 1,
        .max_body_bytes = 1024,
        .connection_memory_bytes = 16384,
        .max_connections = 64,
        .max_connections_per_ip = 16,
        .idle_timeout = 30,
        .precheck = mp_api_metrics_precheck,
        .handler = mp_api_metrics_handle,
        .arg = &app->api,
    };
    return result ? result : mp_http_start(&options, &app->metrics_http);
}

static void abandon_ingest(void *ingest)
{
    mp_ingest_abandon(ingest);
}

static void stop_all(struct app *app)
{
    mp_http_stop(app->metrics_http, NULL, NULL);
    app->metrics_http = NULL;
    mp_waiters_stop(app->api.waiters); /* long polls answer now */
    /* answers what is in flight, which needs the writer alive; a writer stuck on the database
     * is given up on (its requests answer 503, and nothing uncommitted is called stored) */
    mp_http_stop(app->http, abandon_ingest, app->api.ingest);
    app->http = NULL;
    mp_dispatcher_stop(app->dispatcher); /* finishes and records the batches in hand */
    app->dispatcher = NULL;
    mp_ingest_stop(app->api.ingest);
    mp_waiters_free(app->api.waiters);
    mp_ratelimit_free(app->api.per_address);
    mp_ratelimit_free(app->api.per_key);
    mp_ratelimit_free(app->api.auth_failures);
    mp_db_pool_free(app->api.pool);
    mp_apikey_cache_free(app->api.keys);
    mp_fbverify_free(app->api.fbverify);
    if (app->roles & MP_ROLE_RECEIVER)
        pthread_rwlock_destroy(&app->api.fbverify_lock);
    pthread_mutex_destroy(&app->api.gauges_lock);
    mp_metrics_free(app->metrics);
    PQfinish(app->chores);
}

/* Loads the Fireblocks keys of cfg and swaps them in; the old ones stay on failure. */
static void reload_fireblocks(struct app *app, const struct mp_config *cfg, struct mp_buf *errors)
{
    struct mp_fbverify *fresh = NULL;
    enum mp_result result = MP_OK;
    if (cfg->fireblocks_pubkeys || cfg->fireblocks_jwks)
        result = mp_fbverify_new(cfg->fireblocks_pubkeys, cfg->fireblocks_jwks, cfg->ca_file,
                                 &fresh, errors);
    if (result && result != MP_ERR_UNAVAILABLE) {
        MP_ERROR("reload_refused", "part=fireblocks_keys detail=\"keeping the old keys\"");
        return;
    }
    pthread_rwlock_wrlock(&app->api.fbverify_lock);
    struct mp_fbverify *old = app->api.fbverify;
    app->api.fbverify = fresh;
    pthread_rwlock_unlock(&app->api.fbverify_lock);
    mp_fbverify_free(old);
    MP_INFO("fireblocks_keys_reloaded", "");
}

/* SIGHUP: a configuration that does not load is refused whole, and the old one stays. */
static void reload(struct app *app)
{
    sd_notify(0, "RELOADING=1\nSTATUS=Reloading the configuration");
    struct mp_config fresh;
    struct mp_buf errors;
    mp_buf_init(&errors, 16384);
    enum mp_result result = mp_config_load(&fresh, app->config_file, environ, &errors);
    if (!result)
        result = mp_config_check(&fresh, MP_NEED_DATABASE, &errors);
    if (result) {
        char detail[1024];
        MP_ERROR("reload_refused", "detail=%s",
                 mp_log_quote(detail, sizeof(detail), errors.data ? errors.data : "no memory"));
    } else {
        mp_buf_reset(&errors);
        mp_config_apply_log_level(&fresh);
        if (app->roles & MP_ROLE_RECEIVER) {
            reload_fireblocks(app, &fresh, &errors);
            chores_signal(app, false);
        }
        if (app->dispatcher && mp_dispatcher_reload(app->dispatcher, &fresh, &errors) != MP_OK) {
            char detail[1024];
            MP_ERROR("reload_refused", "part=google_credentials detail=%s",
                     mp_log_quote(detail, sizeof(detail), errors.data ? errors.data : ""));
        }
        MP_INFO("reloaded", "detail=\"listen addresses, database and limits need a restart\"");
    }
    mp_config_free(&fresh);
    mp_buf_free(&errors);
    sd_notify(0, "READY=1\nSTATUS=Running");
}

/* The chores thread: API key refresh and pruning, off the signal loop so that a slow
 * database never delays a reload, a shutdown or the watchdog. */
static void *chores_main(void *arg)
{
    struct app *app = arg;
    time_t last_refresh = time(NULL), last_prune = 0;
    pthread_mutex_lock(&app->chores_lock);
    while (!app->chores_stop) {
        bool refresh = app->refresh_now || time(NULL) - last_refresh >= APIKEY_REFRESH_SECONDS;
        bool do_prune = time(NULL) - last_prune >= app->cfg->prune_interval_seconds;
        app->refresh_now = false;
        pthread_mutex_unlock(&app->chores_lock);
        if (refresh && (app->roles & MP_ROLE_RECEIVER)) {
            refresh_keys(app);
            last_refresh = time(NULL);
        }
        if (do_prune) {
            prune(app);
            last_prune = time(NULL);
        }
        pthread_mutex_lock(&app->chores_lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        if (!app->chores_stop && !app->refresh_now)
            pthread_cond_timedwait(&app->chores_wake, &app->chores_lock, &until);
    }
    pthread_mutex_unlock(&app->chores_lock);
    return NULL;
}

static void chores_signal(struct app *app, bool stop)
{
    pthread_mutex_lock(&app->chores_lock);
    if (stop)
        app->chores_stop = true;
    else
        app->refresh_now = true;
    pthread_cond_signal(&app->chores_wake);
    pthread_mutex_unlock(&app->chores_lock);
}

/* Waits for SIGTERM or SIGINT, handling SIGHUP and feeding the watchdog. Returns the signal. */
static int wait_for_stop(struct app *app, const sigset_t *signals)
{
    uint64_t watchdog_usec = 0;
    bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
    for (;;) {
        struct timespec tick = {1, 0};
        int sig = sigtimedwait(signals, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT)
            return sig;
        if (sig == SIGHUP)
            reload(app);
        if (watchdog)
            sd_notify(0, "WATCHDOG=1");
    }
}

/* Thousands of long polls need thousands of descriptors: take the hard limit. */
static void raise_fd_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

int mp_app_run(const struct mp_config *cfg, const char *config_file, unsigned roles)
{
    struct app app = {.cfg = cfg, .config_file = config_file, .roles = roles};
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    /* Every thread started from here on inherits the mask: signals reach only sigtimedwait. */
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    if (check_schema(cfg) != MP_OK || mp_metrics_new(&app.metrics) != MP_OK)
        return 1;
    pthread_mutex_init(&app.api.gauges_lock, NULL);
    enum mp_result result = MP_OK;
    if (roles & MP_ROLE_RECEIVER)
        result = start_receiver(&app);
    if (!result && (roles & MP_ROLE_DISPATCHER))
        result = start_dispatcher(&app);
    if (!result && cfg->metrics_listen)
        result = start_metrics(&app);
    if (result) {
        MP_ERROR("start_failed", "error=\"%s\"", mp_strerror(result));
        stop_all(&app);
        return 1;
    }
    MP_INFO("started", "version=%s receiver=%s dispatcher=%s", MPCPUSH_VERSION,
            roles & MP_ROLE_RECEIVER ? "true" : "false",
            roles & MP_ROLE_DISPATCHER ? "true" : "false");
    pthread_mutex_init(&app.chores_lock, NULL);
    pthread_cond_init(&app.chores_wake, NULL);
    app.chores_started = pthread_create(&app.chores_thread, NULL, chores_main, &app) == 0;
    sd_notify(0, "READY=1\nSTATUS=Running");
    int sig = wait_for_stop(&app, &signals);
    sd_notify(0, "STOPPING=1\nSTATUS=Draining");
    MP_INFO("stopping", "signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    chores_signal(&app, true);
    if (app.chores_started)
        pthread_join(app.chores_thread, NULL);
    pthread_cond_destroy(&app.chores_wake);
    pthread_mutex_destroy(&app.chores_lock);
    stop_all(&app);
    MP_INFO("stopped", "");
    return 0;
}
