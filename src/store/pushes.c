/* The push queue in SQL: claim with SKIP LOCKED and a lease, record outcomes in one statement
 * per batch, and the project-wide pause after quota errors. */
#include "mpcpush/pushes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpcpush/buf.h"
#include "mpcpush/db.h"

/* Claims due rows and reads what the wakeup needs: the device's token (the copy the row keeps,
 * schema 4) and the summary of its pending messages (schema 6). The rows are picked and locked
 * (SKIP LOCKED: concurrent claimers share the queue), then updated by ctid, with no second index
 * lookup; a row changed between the two is simply left for the next claim. The lease is kept in
 * leased_until, which no index covers, so the claim is a HOT update; a crashed dispatcher's rows
 * are claimable again once their leases run out. One lease id serves the whole claim: with the
 * row's key it tells this claim's outcome from a later claim's. $7 is the cursor (struct
 * mp_claim): a bound of the index scan, so the scan starts there; the last column, the same in
 * every row, is where this claim stopped.
 *
 * The summary is used as it is when it is exact and nothing counted has expired yet; otherwise
 * the device's pending messages are counted (one of the two branches runs) and the count is
 * stored, exact. It is exact because the row updated is the version of this statement's
 * snapshot, locked: a writer that changed it since has committed, so the row is skipped, and one
 * that has not yet written it waits for this claim and then adds its messages to the count (their
 * rows are not in the snapshot either, being written in the same transaction), or takes away
 * those it acknowledged (src/store/messages.c tells them from messages this count left out as
 * expired). */
#define SUMMARY_EXACT "p.pending_exact AND p.pending_count > 0 AND p.pending_first_expiry > now()"
static const char claim_sql[] =
    "WITH claimed AS ("
    "  UPDATE mpcpush.pushes p SET leased_until = now() + make_interval(secs => $2),"
    "   state = 'leased', lease_id = (SELECT nextval('mpcpush.lease_ids')), leased_by = $3,"
    "   claimed_id = p.wanted_id, last_attempt_at = now(),"
    "   (pending_count, pending_latest_id, pending_first_expiry, pending_last_expiry,"
    "    pending_exact) = ("
    "    SELECT p.pending_count, p.pending_latest_id, p.pending_first_expiry,"
    "     p.pending_last_expiry, true WHERE " SUMMARY_EXACT "    UNION ALL"
    "    SELECT count(*), coalesce(max(m.id), 0), coalesce(min(m.expires_at), 'infinity'),"
    "     coalesce(max(m.expires_at), '-infinity'), true"
    "    FROM mpcpush.messages m WHERE NOT (" SUMMARY_EXACT ")"
    "     AND m.wallet_id = p.wallet_id AND m.device_id = p.device_id"
    "     AND m.acked_at IS NULL AND m.expires_at > now()"
    "    HAVING NOT (" SUMMARY_EXACT "))"
    "  WHERE p.ctid = ANY(ARRAY("
    "   SELECT q.ctid FROM mpcpush.pushes q"
    "   WHERE q.wanted_id > q.covered_id AND q.due_at <= now()"
    "    AND (q.leased_until IS NULL OR q.leased_until <= now())"
    "    AND NOT EXISTS (SELECT 1 FROM mpcpush.fcm_pauses f"
    "     WHERE f.project_id = $4 AND f.paused_until > now())"
    "    AND q.due_at >= $7::timestamptz"
    "    AND ($5::text IS NULL OR (q.wallet_id = $5 AND q.device_id = $6))"
    "   ORDER BY q.due_at LIMIT $1 FOR UPDATE SKIP LOCKED))"
    "  RETURNING p.wallet_id, p.device_id, p.lease_id, p.attempts, p.due_at, p.fcm_token,"
    "   p.platform, p.token_active, p.pending_count, p.pending_latest_id, p.pending_last_expiry)"
    " SELECT wallet_id, device_id, lease_id, attempts, fcm_token, platform, token_active,"
    "  pending_count, pending_latest_id,"
    "  CASE WHEN pending_count > 0"
    "   THEN greatest(0, floor(extract(epoch FROM pending_last_expiry - now())))::bigint"
    "   ELSE 0 END,"
    "  max(due_at) OVER ()"
    " FROM claimed";

/* Applies a batch of outcomes, given as parallel arrays (parsed far faster than a JSON
 * document), in key order: the rows are updated, and so locked, in the order the ingest
 * statement locks them, which keeps the two from waiting for each other (with the nested loop
 * over the sorted outcomes that PostgreSQL plans for a batch against a table of any size; a
 * deadlock that still happens costs a retry, here by the dispatcher, there by the writer).
 * Only a retry moves due_at: a delivery changes covered_id (which takes the row out of
 * pushes_due) and nothing else indexed. An outcome is stale when the row's token is no longer
 * the one the wakeup went to (the device registered a new token meanwhile): it covers nothing,
 * and the row is due at once, for the new token. A dead token is invalidated only if the
 * device still has the token that was refused. If the device has a new, active one (the push
 * row's copy was older: a registration raced with the row's first write), the wakeup is
 * retried at once with the new token, which the row's copy takes. STALE: the outcome went to a
 * token the row no longer holds. */
#define STALE "(p.fcm_token IS DISTINCT FROM r.t)"
static const char record_sql[] =
    "WITH t AS MATERIALIZED ("
    "  SELECT *, CASE WHEN v = 'token_dead' THEN ("
    "    SELECT dv.fcm_token FROM mpcpush.devices dv WHERE dv.wallet_id = u.w"
    "     AND dv.device_id = u.d AND dv.token_status = 'active' AND dv.fcm_token <> u.t)"
    "   END AS new_token"
    "  FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[],"
    "   $6::text[], $7::text[], $8::text[], $9::text[]) AS u(w, d, l, v, ms, o, e, n, t)"
    "  ORDER BY w, d),"
    " r AS ("
    "  SELECT w, d, l, CASE WHEN new_token IS NULL THEN v ELSE 'retry' END AS v,"
    "   CASE WHEN new_token IS NULL THEN ms ELSE 0 END AS ms, o, e, n, t, new_token FROM t),"
    " upd AS ("
    "  UPDATE mpcpush.pushes p SET"
    "   covered_id = CASE WHEN r.v = 'retry' OR " STALE
    "    THEN p.covered_id ELSE greatest(p.covered_id, p.claimed_id) END,"
    "   state = CASE WHEN " STALE " THEN 'ready' ELSE CASE r.v"
    "    WHEN 'retry' THEN 'retry' WHEN 'sent' THEN 'sent' WHEN 'skipped' THEN 'skipped'"
    "    ELSE 'failed' END END,"
    "   due_at = CASE WHEN " STALE " THEN clock_timestamp()"
    "    WHEN r.v = 'retry' THEN now() + make_interval(secs => r.ms / 1000.0)"
    "    ELSE p.due_at END,"
    "   attempts = CASE WHEN " STALE " THEN 0 ELSE CASE r.v"
    "    WHEN 'retry' THEN p.attempts + 1 WHEN 'sent' THEN 0 ELSE p.attempts END END,"
    "   lease_id = NULL, leased_by = NULL, leased_until = NULL,"
    "   last_error = CASE WHEN r.v IN ('sent', 'skipped') OR " STALE
    "    THEN p.last_error ELSE r.o || coalesce(': ' || r.e, '') END,"
    "   last_sent_at = CASE WHEN r.v = 'sent' THEN now() ELSE p.last_sent_at END,"
    "   fcm_message_name = coalesce(r.n, p.fcm_message_name),"
    "   fcm_token = coalesce(r.new_token, p.fcm_token),"
    "   platform = CASE WHEN r.new_token IS NULL THEN p.platform ELSE (SELECT dv.platform"
    "    FROM mpcpush.devices dv WHERE dv.wallet_id = r.w AND dv.device_id = r.d) END,"
    "   token_active = r.new_token IS NOT NULL OR p.token_active"
    "  FROM r WHERE p.wallet_id = r.w AND p.device_id = r.d AND p.lease_id = r.l"
    "  RETURNING p.wallet_id, p.device_id, r.v, r.o, r.t,"
    "   r.new_token IS NULL AND " STALE " AS stale),"
    " dev AS ("
    "  UPDATE mpcpush.devices d SET token_status = 'invalid',"
    "   token_invalid_reason = upper(u.o), token_invalidated_at = now()"
    "  FROM upd u WHERE d.wallet_id = u.wallet_id AND d.device_id = u.device_id"
    "   AND u.v = 'token_dead' AND NOT u.stale AND d.fcm_token = u.t"
    "  RETURNING 1)"
    " SELECT (SELECT count(*) FROM upd), (SELECT count(*) FROM dev)";

static const char pause_sql[] =
    "INSERT INTO mpcpush.fcm_pauses AS f (project_id, paused_until, reason)"
    " VALUES ($1, now() + make_interval(secs => CASE WHEN $3::int >= 0 THEN $3::int"
    "  ELSE least($4::int, 60) END),"
    "  $2)"
    " ON CONFLICT (project_id) DO UPDATE SET"
    "  strikes = f.strikes + CASE WHEN f.paused_until <= now() THEN 1 ELSE 0 END, reason = $2,"
    "  updated_at = now(),"
    "  paused_until = greatest(f.paused_until, now() + make_interval(secs => CASE"
    "   WHEN $3::int >= 0 THEN $3::int"
    "   ELSE least($4::int, 60 * power(2, least(f.strikes"
    "    - CASE WHEN f.paused_until <= now() THEN 0 ELSE 1 END, 16)))::int END))"
    " RETURNING ceil(extract(epoch FROM paused_until - now()) * 1000)::bigint";

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

/* A dispatcher's session. Its commits do not wait for the WAL flush: a claim or an outcome
 * lost in a database crash only means a wakeup is sent again (wakeups are idempotent nudges),
 * and not waiting for fsync takes a disk flush off every batch and off the end-to-end path
 * (webhooks and API writes keep their durable commits on their own connections). And no
 * bitmap scans: a claim must walk pushes_due in due order and stop at its limit. Once the
 * claim's plan is cached (generic), PostgreSQL estimated the owed rows between the cursor and
 * now at a handful and preferred to collect them all through a bitmap and sort them, so with
 * a backlog every claim read all of it: 8,000-10,000 wakeups/s instead of 40,000 when the
 * order rows fall due differs from their order in the table, as it does in service. No
 * statement of the dispatcher wants a bitmap scan. */
enum mp_result mp_pushes_session(PGconn *conn)
{
    return mp_db_exec(conn, "SET synchronous_commit = off; SET enable_bitmapscan = off");
}

enum mp_result mp_pushes_claim(PGconn *conn, struct mp_claim *claim, struct mp_push **out,
                               int *count)
{
    char limit_text[16], lease_text[16];
    snprintf(limit_text, sizeof(limit_text), "%d", claim->limit);
    snprintf(lease_text, sizeof(lease_text), "%d", claim->lease_seconds);
    const char *params[] = {limit_text,
                            lease_text,
                            claim->owner,
                            claim->project,
                            claim->wallet_id,
                            claim->device_id,
                            claim->after && claim->after[0] ? claim->after : "-infinity"};
    PGresult *res = mp_db_exec_prepared(conn, "mpcpush_claim", claim_sql, 7, params);
    enum mp_result result = mp_db_check(conn, res, "push_claim");
    int n = result ? 0 : PQntuples(res);
    struct mp_push *pushes = result ? NULL : calloc((size_t)n + 1, sizeof(*pushes));
    if (!result && !pushes)
        result = MP_ERR_NOMEM;
    for (int i = 0; !result && i < n; i++)
        result = take_push(res, i, &pushes[i]);
    claim->last_due[0] = '\0';
    if (!result && n > 0 && strlen(PQgetvalue(res, 0, 10)) < sizeof(claim->last_due))
        strcpy(claim->last_due, PQgetvalue(res, 0, 10));
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

enum {
    COL_WALLET,
    COL_DEVICE,
    COL_LEASE,
    COL_VERDICT,
    COL_DELAY,
    COL_OUTCOME,
    COL_DETAIL,
    COL_NAME,
    COL_TOKEN,
    NCOLS
};

/* Appends one outcome to each column's array literal. */
static enum mp_result add_outcome(struct mp_buf *cols, const struct mp_push_outcome *o, bool first)
{
    const struct mp_push *p = o->push;
    const char *text[NCOLS] = {
        [COL_WALLET] = p->wallet_id,
        [COL_DEVICE] = p->device_id,
        [COL_VERDICT] = verdict_names[o->verdict],
        [COL_OUTCOME] = o->outcome,
        [COL_DETAIL] = o->detail && o->detail[0] ? o->detail : NULL,
        [COL_NAME] = o->name && o->name[0] ? o->name : NULL,
        [COL_TOKEN] = p->fcm_token, /* the token the wakeup went to (NULL: none) */
    };
    enum mp_result result = MP_OK;
    for (int c = 0; !result && c < NCOLS; c++) {
        if (!first)
            result = mp_buf_puts(&cols[c], ",");
        if (result)
            break;
        if (c == COL_LEASE)
            result = mp_buf_printf(&cols[c], "%lld", p->lease_id);
        else if (c == COL_DELAY)
            result = mp_buf_printf(&cols[c], "%lld", o->delay_ms);
        else
            result = mp_buf_pg_array_text(&cols[c], text[c]);
    }
    return result;
}

enum mp_result mp_pushes_record(PGconn *conn, const struct mp_push_outcome *outcomes, int count)
{
    struct mp_buf cols[NCOLS];
    enum mp_result result = MP_OK;
    for (int c = 0; c < NCOLS; c++) {
        mp_buf_init(&cols[c], 0);
        if (!result)
            result = mp_buf_puts(&cols[c], "{");
    }
    for (int i = 0; !result && i < count; i++)
        result = add_outcome(cols, &outcomes[i], i == 0);
    const char *params[NCOLS];
    for (int c = 0; c < NCOLS; c++) {
        if (!result)
            result = mp_buf_puts(&cols[c], "}");
        params[c] = cols[c].data;
    }
    if (!result) {
        PGresult *res = mp_db_exec_prepared(conn, "mpcpush_record", record_sql, NCOLS, params);
        result = mp_db_check(conn, res, "push_record");
        PQclear(res);
    }
    for (int c = 0; c < NCOLS; c++)
        mp_buf_free(&cols[c]);
    return result;
}

enum mp_result mp_pushes_pause(PGconn *conn, const char *project, const char *reason,
                               int retry_after, int max_seconds, long long *ms)
{
    char retry_text[16], max_text[16];
    snprintf(retry_text, sizeof(retry_text), "%d", retry_after);
    snprintf(max_text, sizeof(max_text), "%d", max_seconds);
    const char *params[] = {project, reason, retry_text, max_text};
    PGresult *res = PQexecParams(conn, pause_sql, 4, NULL, params, NULL, NULL, 0);
    enum mp_result result = mp_db_check(conn, res, "push_pause");
    if (!result && ms)
        *ms = atoll(PQgetvalue(res, 0, 0));
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
