/* Fetch, acknowledge and prune messages. */
#include "mpcpush/messages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpcpush/db.h"

/* The whole answer is built by the server: payloads pass through untouched. */
static const char fetch_sql[] =
    "SELECT json_build_object('messages', coalesce(json_agg(json_build_object("
    "  'id', m.id::text, 'source', m.source, 'payload', m.payload,"
    "  'receivedAt', mpcpush.iso_time(m.received_at),"
    "  'expiresAt', mpcpush.iso_time(m.expires_at)) ORDER BY m.id), '[]'),"
    " 'next', max(m.id)::text)::text, count(*)"
    " FROM (SELECT * FROM mpcpush.messages"
    "  WHERE wallet_id = $1 AND device_id = $2 AND acked_at IS NULL AND expires_at > now()"
    "   AND id > $3 ORDER BY id LIMIT $4) m";

/* Acknowledges the messages up to $3, or those listed in $4 (the other one NULL). Acknowledging
 * up to an id also tells the push queue that no wakeup is owed for those messages any more.
 * What is acknowledged leaves the push row's summary of pending messages (schema 6): the count
 * drops, relative to the row as it is when locked, so it stays exact whatever a claim or the
 * ingest wrote meanwhile. That holds for messages the summary counted, and every one of those
 * expires no earlier than pending_first_expiry: a message acknowledged that expires earlier was
 * not counted (a claim that started after it expired counted while this statement ran), so the
 * summary is marked inexact and the next claim counts. So it is when the newest message, or
 * the one expiring last, goes while others remain: what is left is not known without
 * counting. */
static const char ack_sql[] =
    "WITH acked AS ("
    "  UPDATE mpcpush.messages SET acked_at = now()"
    "  WHERE wallet_id = $1 AND device_id = $2 AND acked_at IS NULL AND expires_at > now()"
    "   AND (id <= $3::bigint OR id = ANY($4::bigint[]))"
    "  RETURNING id, expires_at),"
    " a AS (SELECT count(*) AS n, max(id) AS top, min(expires_at) AS first,"
    "  max(expires_at) AS last FROM acked),"
    " push AS ("
    "  UPDATE mpcpush.pushes p SET"
    "   covered_id = greatest(p.covered_id, least(p.wanted_id, coalesce($3::bigint, 0))),"
    "   pending_count = greatest(p.pending_count - a.n, 0),"
    "   pending_exact = p.pending_exact AND (a.n = 0 OR (a.first >= p.pending_first_expiry"
    "    AND (p.pending_count = a.n"
    "     OR (a.top < p.pending_latest_id AND a.last < p.pending_last_expiry)))),"
    "   pending_latest_id = CASE WHEN p.pending_count = a.n THEN 0 ELSE p.pending_latest_id END,"
    "   pending_first_expiry = CASE WHEN p.pending_count = a.n THEN 'infinity'"
    "    ELSE p.pending_first_expiry END,"
    "   pending_last_expiry = CASE WHEN p.pending_count = a.n THEN '-infinity'"
    "    ELSE p.pending_last_expiry END"
    "  FROM a WHERE p.wallet_id = $1 AND p.device_id = $2"
    "   AND (a.n > 0 OR p.covered_id < least(p.wanted_id, coalesce($3::bigint, 0)))"
    "  RETURNING 1)"
    " SELECT (SELECT count(*) FROM acked), (SELECT count(*) FROM push)";

enum mp_result mp_messages_fetch(PGconn *conn, const char *wallet_id, const char *device_id,
                                 long long after, int limit, struct mp_buf *out, int *count)
{
    char after_text[24], limit_text[16];
    snprintf(after_text, sizeof(after_text), "%lld", after);
    snprintf(limit_text, sizeof(limit_text), "%d", limit);
    const char *params[] = {wallet_id, device_id, after_text, limit_text};
    PGresult *res = PQexecParams(conn, fetch_sql, 4, NULL, params, NULL, NULL, 0);
    enum mp_result result = mp_db_check(conn, res, "messages_fetch");
    if (!result && PQntuples(res) != 1)
        result = MP_ERR_INTERNAL;
    if (!result)
        result = mp_buf_append(out, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
    if (!result)
        *count = atoi(PQgetvalue(res, 0, 1));
    PQclear(res);
    return result;
}

/* Writes "{1,2,3}" for the ids. */
static enum mp_result id_array(const long long *ids, int n, struct mp_buf *out)
{
    enum mp_result result = mp_buf_puts(out, "{");
    for (int i = 0; !result && i < n; i++)
        result = mp_buf_printf(out, "%s%lld", i ? "," : "", ids[i]);
    return result ? result : mp_buf_puts(out, "}");
}

enum mp_result mp_messages_ack(PGconn *conn, const char *wallet_id, const char *device_id,
                               long long up_to, const long long *ids, int n, long long *acked)
{
    struct mp_buf arg;
    mp_buf_init(&arg, 0);
    enum mp_result result = ids ? id_array(ids, n, &arg) : mp_buf_printf(&arg, "%lld", up_to);
    if (result) {
        mp_buf_free(&arg);
        return result;
    }
    const char *params[] = {wallet_id, device_id, ids ? NULL : arg.data, ids ? arg.data : NULL};
    PGresult *res = PQexecParams(conn, ack_sql, 4, NULL, params, NULL, NULL, 0);
    mp_buf_free(&arg);
    result = mp_db_check(conn, res, "messages_ack");
    if (!result)
        *acked = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return result;
}

/* Each statement deletes at most $1 rows, so no prune holds locks or bloats WAL for long. */
static const char *const prune_sql[] = {
    "DELETE FROM mpcpush.messages WHERE ctid = ANY(ARRAY(SELECT ctid FROM mpcpush.messages"
    " WHERE acked_at < now() - make_interval(secs => $2) LIMIT $1))",
    "DELETE FROM mpcpush.messages WHERE ctid = ANY(ARRAY(SELECT ctid FROM mpcpush.messages"
    " WHERE expires_at < now() - make_interval(secs => $2) LIMIT $1))",
    "DELETE FROM mpcpush.webhook_events WHERE ctid = ANY(ARRAY(SELECT ctid"
    " FROM mpcpush.webhook_events WHERE received_at < now() - make_interval(secs => $3)"
    " LIMIT $1))",
    /* push rows owing nothing, of devices that no longer exist: those without a token copy
     * (pushes_deviceless), the device's absence checked again */
    "DELETE FROM mpcpush.pushes p WHERE ctid = ANY(ARRAY(SELECT p2.ctid FROM mpcpush.pushes p2"
    " WHERE p2.fcm_token IS NULL AND p2.wanted_id <= p2.covered_id AND p2.lease_id IS NULL"
    " AND NOT EXISTS (SELECT 1 FROM mpcpush.devices d"
    "  WHERE d.wallet_id = p2.wallet_id AND d.device_id = p2.device_id) LIMIT $1))",
};

enum mp_result mp_messages_prune(PGconn *conn, const struct mp_prune_limits *limits,
                                 long long *deleted)
{
    char batch[16], acked[16], events[16];
    snprintf(batch, sizeof(batch), "%d", limits->batch);
    snprintf(acked, sizeof(acked), "%d", limits->acked_seconds);
    snprintf(events, sizeof(events), "%d", limits->events_seconds);
    const char *params[] = {batch, acked, events};
    const Oid types[] = {23, 23, 23}; /* int4: typed, so a statement may leave one unused */
    long long total = 0;
    for (size_t i = 0; i < sizeof(prune_sql) / sizeof(prune_sql[0]); i++) {
        long long n;
        int rounds = 0;
        do { /* repeat while a whole batch was deleted, up to a bound per run */
            PGresult *res = PQexecParams(conn, prune_sql[i], 3, types, params, NULL, NULL, 0);
            enum mp_result result = mp_db_check(conn, res, "prune");
            n = result ? 0 : atoll(PQcmdTuples(res));
            PQclear(res);
            if (result)
                return result;
            total += n;
        } while (n == limits->batch && ++rounds < 100);
    }
    *deleted = total;
    return MP_OK;
}
