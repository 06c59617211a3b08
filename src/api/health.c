/* /healthz (the process answers) and /readyz (and it can reach the database). */
#include <stdlib.h>
#include <time.h>

#include "api/api-int.h"
#include "mpcpush/metrics.h"

void mp_api_healthz(struct mp_http_request *req, struct mp_api *api,
                    const struct mp_route_params *params)
{
    mp_http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

void mp_api_readyz(struct mp_http_request *req, struct mp_api *api,
                   const struct mp_route_params *params)
{
    PGconn *conn = NULL;
    enum mp_result result = mp_db_pool_get(api->pool, 2000, &conn);
    if (!result) {
        result = mp_db_exec(conn, "SELECT 1");
        mp_db_pool_put(api->pool, conn);
    }
    if (result)
        mp_http_reply_json(req, 503, json_pack("{s:s}", "status", "unavailable"));
    else
        mp_http_reply_json(req, 200, json_pack("{s:s}", "status", "ready"));
}

/* The queue gauges cost a scan of the pending-messages index (seconds with millions of
 * messages pending), so a scrape refreshes them only when they are older than
 * GAUGE_REFRESH_MS, one scrape at a time (the others answer with the values they find), and
 * the query gives up after GAUGE_TIMEOUT. The oldest pending message is the one with the
 * smallest id (ids are drawn in arrival order); expired ones count until the pruner deletes
 * them. Best effort: a scrape still answers when the database is away. */
#define GAUGE_REFRESH_MS 15000
#define GAUGE_TIMEOUT    "5s"

static const char gauges_sql[] =
    "SET LOCAL statement_timeout = '" GAUGE_TIMEOUT "';"
    "SELECT coalesce(p.pending, 0), coalesce(extract(epoch FROM now() - m.received_at), 0),"
    " (SELECT count(*) FROM mpcpush.pushes WHERE wanted_id > covered_id AND due_at <= now())"
    " FROM (SELECT 1) one"
    " LEFT JOIN (SELECT count(*) OVER () AS pending, wallet_id, device_id, id"
    "            FROM mpcpush.messages WHERE acked_at IS NULL ORDER BY id LIMIT 1) p ON true"
    " LEFT JOIN mpcpush.messages m"
    "   ON (m.wallet_id, m.device_id, m.id) = (p.wallet_id, p.device_id, p.id)";

static int64_t monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void refresh_db_gauges(struct mp_api *api)
{
    PGconn *conn = NULL;
    if (mp_db_pool_get(api->pool, 1000, &conn) != MP_OK)
        return;
    PGresult *res = PQexec(conn, gauges_sql);
    if (mp_db_check(conn, res, "metrics") == MP_OK && PQntuples(res) == 1) {
        mp_metrics_set(api->metrics, "pending_messages", atof(PQgetvalue(res, 0, 0)));
        mp_metrics_set(api->metrics, "oldest_pending_age_seconds", atof(PQgetvalue(res, 0, 1)));
        mp_metrics_set(api->metrics, "pushes_due", atof(PQgetvalue(res, 0, 2)));
    }
    PQclear(res);
    mp_db_pool_put(api->pool, conn);
}

static void refresh_gauges(struct mp_api *api)
{
    if (api->ingest) {
        struct mp_ingest_stats stats;
        mp_ingest_stats(api->ingest, &stats);
        mp_metrics_set(api->metrics, "messages_stored", (double)stats.messages);
        mp_metrics_set(api->metrics, "ingest_batches", (double)stats.batches);
    }
    if (pthread_mutex_trylock(&api->gauges_lock) != 0)
        return;
    int64_t now = monotonic_ms();
    if (api->gauges_refreshed_ms == 0 || now - api->gauges_refreshed_ms >= GAUGE_REFRESH_MS) {
        refresh_db_gauges(api);
        api->gauges_refreshed_ms = monotonic_ms();
    }
    pthread_mutex_unlock(&api->gauges_lock);
}

void mp_api_metrics(struct mp_http_request *req, struct mp_api *api,
                    const struct mp_route_params *params)
{
    struct mp_buf out;
    mp_buf_init(&out, 1 << 20);
    refresh_gauges(api);
    if (mp_metrics_render(api->metrics, &out) != MP_OK) {
        mp_buf_free(&out);
        mp_api_reply_result(req, MP_ERR_NOMEM);
        return;
    }
    mp_http_reply_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    mp_buf_free(&out);
}
