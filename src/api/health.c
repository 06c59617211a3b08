/* /healthz (the process answers) and /readyz (and it can reach the database). */
#include <stdlib.h>

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

/* Refreshes the queue gauges from the database (best effort: a scrape still answers when the
 * database is away, with the gauges it had). */
static void refresh_gauges(struct mp_api *api)
{
    if (api->ingest) {
        struct mp_ingest_stats stats;
        mp_ingest_stats(api->ingest, &stats);
        mp_metrics_set(api->metrics, "messages_stored", (double)stats.messages);
        mp_metrics_set(api->metrics, "ingest_batches", (double)stats.batches);
    }
    PGconn *conn = NULL;
    if (mp_db_pool_get(api->pool, 1000, &conn) != MP_OK)
        return;
    PGresult *res =
        PQexec(conn, "SELECT (SELECT count(*) FROM mpcpush.messages"
                     "   WHERE acked_at IS NULL AND expires_at > now()),"
                     " (SELECT coalesce(extract(epoch FROM now() - min(received_at)), 0)"
                     "   FROM mpcpush.messages WHERE acked_at IS NULL AND expires_at > now()),"
                     " (SELECT count(*) FROM mpcpush.pushes"
                     "   WHERE wanted_id > covered_id AND due_at <= now())");
    if (mp_db_check(conn, res, "metrics") == MP_OK && PQntuples(res) == 1) {
        mp_metrics_set(api->metrics, "pending_messages", atof(PQgetvalue(res, 0, 0)));
        mp_metrics_set(api->metrics, "oldest_pending_age_seconds", atof(PQgetvalue(res, 0, 1)));
        mp_metrics_set(api->metrics, "pushes_due", atof(PQgetvalue(res, 0, 2)));
    }
    PQclear(res);
    mp_db_pool_put(api->pool, conn);
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
