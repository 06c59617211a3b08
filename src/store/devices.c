/* Device registration, state and removal. */
#include "mpcpush/devices.h"

#include <string.h>

#include "mpcpush/db.h"

/* Upserts the device and writes its push row: the row takes the token, and when the device
 * gets an active token that differs from the one it had (or is new), everything the row knows
 * of is owed again, due now, so that the new token is woken for what is pending (a claim that
 * finds nothing pending skips it). The push row is written even when nothing is pending: a
 * message being stored meanwhile is not in this statement's snapshot, but its ingest writes the
 * same row (src/store/ingest.c), so one of the two waits for the other and sees its work. */
static const char put_sql[] =
    "WITH old AS ("
    "  SELECT fcm_token FROM mpcpush.devices WHERE wallet_id = $1 AND device_id = $2),"
    " up AS ("
    "  INSERT INTO mpcpush.devices AS d"
    "   (wallet_id, device_id, physical_device_id, platform, fcm_token)"
    "  VALUES ($1, $2, $3, $4, $5)"
    "  ON CONFLICT (wallet_id, device_id) DO UPDATE SET"
    "   physical_device_id = EXCLUDED.physical_device_id, platform = EXCLUDED.platform,"
    "   fcm_token = EXCLUDED.fcm_token, refreshed_at = now(),"
    "   token_status = CASE WHEN d.fcm_token = EXCLUDED.fcm_token"
    "    THEN d.token_status ELSE 'active' END,"
    "   token_invalid_reason = CASE WHEN d.fcm_token = EXCLUDED.fcm_token"
    "    THEN d.token_invalid_reason END,"
    "   token_invalidated_at = CASE WHEN d.fcm_token = EXCLUDED.fcm_token"
    "    THEN d.token_invalidated_at END"
    "  RETURNING (xmax = 0) AS created, token_status),"
    " rearm AS ("
    "  SELECT (SELECT token_status FROM up) = 'active'"
    "   AND NOT EXISTS (SELECT 1 FROM old WHERE old.fcm_token = $5) AS fresh_token,"
    "   coalesce(max(m.id), 0) AS pending_id"
    "  FROM mpcpush.messages m WHERE m.wallet_id = $1 AND m.device_id = $2"
    "   AND m.acked_at IS NULL AND m.expires_at > now()),"
    " wake AS ("
    "  INSERT INTO mpcpush.pushes AS p"
    "   (wallet_id, device_id, wanted_id, covered_id, fcm_token, platform, token_active)"
    "  SELECT $1, $2, pending_id, CASE WHEN fresh_token THEN 0 ELSE pending_id END, $5, $4,"
    "   (SELECT token_status FROM up) = 'active' FROM rearm"
    "  ON CONFLICT (wallet_id, device_id) DO UPDATE SET"
    "   fcm_token = EXCLUDED.fcm_token, platform = EXCLUDED.platform,"
    "   token_active = EXCLUDED.token_active,"
    "   wanted_id = greatest(p.wanted_id, EXCLUDED.wanted_id),"
    "   covered_id = CASE WHEN (SELECT fresh_token FROM rearm)"
    "    AND greatest(p.wanted_id, EXCLUDED.wanted_id) > 0 THEN 0 ELSE p.covered_id END,"
    "   due_at = CASE WHEN (SELECT fresh_token FROM rearm) THEN clock_timestamp()"
    "    ELSE p.due_at END,"
    "   state = CASE WHEN (SELECT fresh_token FROM rearm) THEN 'ready' ELSE p.state END,"
    "   attempts = CASE WHEN (SELECT fresh_token FROM rearm) THEN 0 ELSE p.attempts END,"
    "   last_error = CASE WHEN (SELECT fresh_token FROM rearm) THEN NULL ELSE p.last_error END"
    "  RETURNING 1)"
    " SELECT created FROM up";

static const char delete_sql[] =
    "WITH gone AS ("
    "  DELETE FROM mpcpush.devices WHERE wallet_id = $1 AND device_id = $2 RETURNING 1),"
    " msgs AS ("
    "  DELETE FROM mpcpush.messages WHERE wallet_id = $1 AND device_id = $2"
    "   AND EXISTS (SELECT 1 FROM gone)),"
    " push AS ("
    "  DELETE FROM mpcpush.pushes WHERE wallet_id = $1 AND device_id = $2"
    "   AND EXISTS (SELECT 1 FROM gone))"
    " SELECT count(*) FROM gone";

enum mp_result mp_devices_put(PGconn *conn, const struct mp_device_input *in, bool *created)
{
    const char *params[] = {in->wallet_id, in->device_id, in->physical_device_id, in->platform,
                            in->fcm_token};
    PGresult *res = PQexecParams(conn, put_sql, 5, NULL, params, NULL, NULL, 0);
    enum mp_result result = mp_db_check(conn, res, "device_put");
    if (!result && PQntuples(res) != 1)
        result = MP_ERR_INTERNAL;
    if (!result)
        *created = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    return result;
}

enum mp_result mp_devices_get(PGconn *conn, const char *wallet_id, const char *device_id,
                              json_t **state)
{
    const char *params[] = {wallet_id, device_id};
    PGresult *res =
        PQexecParams(conn, "SELECT mpcpush.device_state($1, $2)", 2, NULL, params, NULL, NULL, 0);
    enum mp_result result = mp_db_check(conn, res, "device_get");
    if (!result && (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)))
        result = MP_ERR_NOT_FOUND;
    json_t *json = NULL;
    if (!result && !(json = json_loads(PQgetvalue(res, 0, 0), 0, NULL)))
        result = MP_ERR_INTERNAL;
    PQclear(res);
    if (!result)
        *state = json;
    return result;
}

enum mp_result mp_devices_delete(PGconn *conn, const char *wallet_id, const char *device_id)
{
    const char *params[] = {wallet_id, device_id};
    PGresult *res = PQexecParams(conn, delete_sql, 2, NULL, params, NULL, NULL, 0);
    enum mp_result result = mp_db_check(conn, res, "device_delete");
    if (!result && strcmp(PQgetvalue(res, 0, 0), "1") != 0)
        result = MP_ERR_NOT_FOUND;
    PQclear(res);
    return result;
}
