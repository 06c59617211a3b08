/* The push queue in SQL: claim with SKIP LOCKED and a lease, record outcomes in one statement
 * per batch, and the project-wide pause after quota errors. */
#include "mpcpush/pushes.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpcpush/db.h"

/* Claims due rows (the CTE keeps the planner from updating more than the LIMIT), then reads
 * what the wakeup needs: the device's token and its pending messages. A due row's due_at
 * becomes the lease expiry, so a crashed dispatcher's rows are simply due again later. */
static const char claim_sql[] =
    "WITH picked AS ("
    "  SELECT p.wallet_id, p.device_id FROM mpcpush.pushes p"
    "  WHERE p.wanted_id > p.covered_id AND p.due_at <= now()"
    "   AND NOT EXISTS (SELECT 1 FROM mpcpush.fcm_pauses f"
    "    WHERE f.project_id = $4 AND f.paused_until > now())"
    "   AND ($5::text IS NULL OR (p.wallet_id = $5 AND p.device_id = $6))"
    "  ORDER BY p.due_at LIMIT $1 FOR UPDATE SKIP LOCKED),"
    " claimed AS ("
    "  UPDATE mpcpush.pushes p SET due_at = now() + make_interval(secs => $2), state = 'leased',"
    "   lease_id = nextval('mpcpush.lease_ids'), leased_by = $3, claimed_id = p.wanted_id,"
    "   last_attempt_at = now()"
    "  FROM picked WHERE p.wallet_id = picked.wallet_id AND p.device_id = picked.device_id"
    "  RETURNING p.wallet_id, p.device_id, p.lease_id, p.attempts)"
    " SELECT c.wallet_id, c.device_id, c.lease_id, c.attempts, d.fcm_token, d.platform,"
    "  d.token_status = 'active', s.pending, s.latest_id,"
    "  greatest(0, floor(extract(epoch FROM s.latest_expiry - now())))::bigint"
    " FROM claimed c"
    " LEFT JOIN mpcpush.devices d ON d.wallet_id = c.wallet_id AND d.device_id = c.device_id"
    " CROSS JOIN LATERAL ("
    "  SELECT count(*) AS pending, max(m.id) AS latest_id,"
    "   (array_agg(m.expires_at ORDER BY m.id DESC))[1] AS latest_expiry"
    "  FROM mpcpush.messages m WHERE m.wallet_id = c.wallet_id AND m.device_id = c.device_id"
    "   AND m.acked_at IS NULL AND m.expires_at > now()) s";

/* Applies a batch of outcomes. A dead token is invalidated only if the device still has the
 * token that was refused (it may have registered a new one meanwhile). */
static const char record_sql[] =
    "WITH r AS ("
    "  SELECT * FROM json_to_recordset($1::json) AS t(wallet_id text, device_id text,"
    "   lease_id bigint, verdict text, delay_ms bigint, outcome text, detail text, name text,"
    "   token text)),"
    " upd AS ("
    "  UPDATE mpcpush.pushes p SET"
    "   covered_id = CASE WHEN r.verdict = 'retry' THEN p.covered_id"
    "    ELSE greatest(p.covered_id, p.claimed_id) END,"
    "   state = CASE r.verdict WHEN 'retry' THEN 'retry' WHEN 'sent' THEN 'sent'"
    "    WHEN 'skipped' THEN 'skipped' ELSE 'failed' END,"
    "   due_at = CASE WHEN r.verdict = 'retry'"
    "    THEN now() + make_interval(secs => r.delay_ms / 1000.0) ELSE now() END,"
    "   attempts = CASE r.verdict WHEN 'retry' THEN p.attempts + 1 WHEN 'sent' THEN 0"
    "    ELSE p.attempts END,"
    "   lease_id = NULL, leased_by = NULL,"
    "   last_error = CASE WHEN r.verdict IN ('sent', 'skipped') THEN p.last_error"
    "    ELSE r.outcome || coalesce(': ' || r.detail, '') END,"
    "   last_sent_at = CASE WHEN r.verdict = 'sent' THEN now() ELSE p.last_sent_at END,"
    "   fcm_message_name = coalesce(r.name, p.fcm_message_name)"
    "  FROM r WHERE p.wallet_id = r.wallet_id AND p.device_id = r.device_id"
    "   AND p.lease_id = r.lease_id"
    "  RETURNING p.wallet_id, p.device_id, r.verdict, r.outcome, r.token),"
    " dev AS ("
    "  UPDATE mpcpush.devices d SET"
    "   last_push_at = CASE WHEN u.verdict = 'sent' THEN now() ELSE d.last_push_at END,"
    "   token_status = CASE WHEN u.verdict = 'token_dead' THEN 'invalid' ELSE d.token_status END,"
    "   token_invalid_reason = CASE WHEN u.verdict = 'token_dead' THEN upper(u.outcome)"
    "    ELSE d.token_invalid_reason END,"
    "   token_invalidated_at = CASE WHEN u.verdict = 'token_dead' THEN now()"
    "    ELSE d.token_invalidated_at END"
    "  FROM upd u WHERE d.wallet_id = u.wallet_id AND d.device_id = u.device_id"
    "   AND (u.verdict = 'sent' OR (u.verdict = 'token_dead' AND d.fcm_token = u.token))"
    "  RETURNING 1)"
    " SELECT (SELECT count(*) FROM upd), (SELECT count(*) FROM dev)";

static const char pause_sql[] =
    "INSERT INTO mpcpush.fcm_pauses AS f (project_id, paused_until, reason)"
    " VALUES ($1, now() + make_interval(secs => CASE WHEN $3::int >= 0 THEN $3::int"
    "  ELSE least($4::int, 60) END),"
    "  $2)"
    " ON CONFLICT (project_id) DO UPDATE SET strikes = f.strikes + 1, reason = $2,"
    "  updated_at = now(),"
    "  paused_until = greatest(f.paused_until, now() + make_interval(secs => CASE"
    "   WHEN $3::int >= 0 THEN $3::int"
    "   ELSE least($4::int, 60 * power(2, least(f.strikes, 16)))::int END))"
    " RETURNING ceil(extract(epoch FROM paused_until - now()))::int";

static char *column(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : strdup(PQgetvalue(res, row, col));
}

static enum mp_result take_push(PGresult *res, int row, struct mp_push *p)
{
    p->wallet_id = column(res, row, 0);
    p->device_id = column(res, row, 1);
    p->lease_id = atoll(PQgetvalue(res, row, 2));
    p->attempts = atoi(PQgetvalue(res, row, 3));
    p->fcm_token = column(res, row, 4);
    p->platform = column(res, row, 5);
    p->token_active = PQgetvalue(res, row, 6)[0] == 't';
    p->pending = atoll(PQgetvalue(res, row, 7));
    p->latest_id = atoll(PQgetvalue(res, row, 8));
    p->ttl_seconds = atoll(PQgetvalue(res, row, 9));
    bool ok = p->wallet_id && p->device_id && (PQgetisnull(res, row, 4) || p->fcm_token) &&
              (PQgetisnull(res, row, 5) || p->platform);
    return ok ? MP_OK : MP_ERR_NOMEM;
}

enum mp_result mp_pushes_claim(PGconn *conn, const char *project, const char *owner, int limit,
                               int lease_seconds, const char *wallet_id, const char *device_id,
                               struct mp_push **out, int *count)
{
    char limit_text[16], lease_text[16];
    snprintf(limit_text, sizeof(limit_text), "%d", limit);
    snprintf(lease_text, sizeof(lease_text), "%d", lease_seconds);
    const char *params[] = {limit_text, lease_text, owner, project, wallet_id, device_id};
    PGresult *res = PQexecParams(conn, claim_sql, 6, NULL, params, NULL, NULL, 0);
    enum mp_result result = mp_db_check(conn, res, "push_claim");
    int n = result ? 0 : PQntuples(res);
    struct mp_push *pushes = result ? NULL : calloc((size_t)n + 1, sizeof(*pushes));
    if (!result && !pushes)
        result = MP_ERR_NOMEM;
    for (int i = 0; !result && i < n; i++)
        result = take_push(res, i, &pushes[i]);
    PQclear(res);
    if (result) {
        mp_pushes_free(pushes, n);
        return result;
    }
    *out = pushes;
    *count = n;
    return MP_OK;
}

static const char *const verdict_names[] = {
    [MP_PUSH_SENT] = "sent",       [MP_PUSH_RETRY] = "retry",           [MP_PUSH_FAILED] = "failed",
    [MP_PUSH_SKIPPED] = "skipped", [MP_PUSH_TOKEN_DEAD] = "token_dead",
};

static json_t *outcome_json(const struct mp_push_outcome *o)
{
    return json_pack("{s:s,s:s,s:I,s:s,s:I,s:s?,s:s?,s:s?,s:s?}", "wallet_id", o->push->wallet_id,
                     "device_id", o->push->device_id, "lease_id", (json_int_t)o->push->lease_id,
                     "verdict", verdict_names[o->verdict], "delay_ms", (json_int_t)o->delay_ms,
                     "outcome", o->outcome, "detail", o->detail && o->detail[0] ? o->detail : NULL,
                     "name", o->name && o->name[0] ? o->name : NULL, "token", o->push->fcm_token);
}

enum mp_result mp_pushes_record(PGconn *conn, const struct mp_push_outcome *outcomes, int count)
{
    json_t *rows = json_array();
    for (int i = 0; rows && i < count; i++) {
        json_t *row = outcome_json(&outcomes[i]);
        if (!row || json_array_append_new(rows, row) != 0) {
            json_decref(rows);
            rows = NULL;
        }
    }
    char *text = rows ? json_dumps(rows, JSON_COMPACT) : NULL;
    json_decref(rows);
    if (!text)
        return MP_ERR_NOMEM;
    const char *params[] = {text};
    PGresult *res = PQexecParams(conn, record_sql, 1, NULL, params, NULL, NULL, 0);
    free(text);
    enum mp_result result = mp_db_check(conn, res, "push_record");
    PQclear(res);
    return result;
}

enum mp_result mp_pushes_pause(PGconn *conn, const char *project, const char *reason,
                               int retry_after, int max_seconds, int *seconds)
{
    char retry_text[16], max_text[16];
    snprintf(retry_text, sizeof(retry_text), "%d", retry_after);
    snprintf(max_text, sizeof(max_text), "%d", max_seconds);
    const char *params[] = {project, reason, retry_text, max_text};
    PGresult *res = PQexecParams(conn, pause_sql, 4, NULL, params, NULL, NULL, 0);
    enum mp_result result = mp_db_check(conn, res, "push_pause");
    if (!result && seconds)
        *seconds = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return result;
}

enum mp_result mp_pushes_unpause(PGconn *conn, const char *project)
{
    const char *params[] = {project};
    PGresult *res = PQexecParams(conn,
                                 "DELETE FROM mpcpush.fcm_pauses WHERE project_id = $1"
                                 " AND paused_until <= now()",
                                 1, NULL, params, NULL, NULL, 0);
    enum mp_result result = mp_db_check(conn, res, "push_unpause");
    PQclear(res);
    return result;
}

void mp_pushes_free(struct mp_push *pushes, int count)
{
    if (!pushes)
        return;
    for (int i = 0; i < count; i++) {
        free(pushes[i].wallet_id);
        free(pushes[i].device_id);
        free(pushes[i].fcm_token);
        free(pushes[i].platform);
    }
    free(pushes);
}
