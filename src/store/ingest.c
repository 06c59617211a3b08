/* The group-commit writer: one thread, one connection, one statement per batch. */
#include "mpcpush/ingest.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpcpush/buf.h"
#include "mpcpush/db.h"
#include "mpcpush/log.h"

/* After a failed connection attempt, requests fail fast for this long instead of each waiting
 * for a connect timeout; then the next batch tries again. */
#define RECONNECT_PAUSE_MS 500

/* One statement writes a whole batch. It first takes a transaction-scoped advisory lock, so
 * that batches from several receivers draw message ids and commit in the same order: a device
 * that acknowledged up to some id must never later see a smaller one appear (its wakeup would
 * look done and its cursor would skip it). One writer per process, so this costs no more than
 * the commit it waits for. The input is one binary array per job field (the jobs are their
 * rows, in order). The result has, for each job in order, one row with its inbox id (NULL for a
 * duplicate or an API job) and no message id, then one row per message made for it (device,
 * id, expiry), by id. Message ids are drawn here so they can be mapped back to jobs. One
 * NOTIFY per batch (never per row) tells dispatchers and long-polls which devices have news.
 * Every device given a message gets its push row written, owed a wakeup if the device has an
 * active token (the row's copy of it, which is current even where this statement's snapshot is
 * not), else marked covered: nothing can wake it. A registration committing while the
 * statement runs is not in its snapshot, and the message is not in the registration's, but
 * both write the push row, so the second waits for the first and sees its work
 * (src/store/devices.c). The push row's summary of pending messages (schema 6) gains the
 * messages made: their count, the newest id, the first and last expiry. An event given a legacy key
 * (the key an older version stored it under) is a duplicate when that key is stored too. The
 * statement's plan is made once and cached, from the statistics of the moment: made while the
 * inbox was small, it may read all of the inbox (a hash of it, which PostgreSQL prefers to a
 * NOT EXISTS probe, or a sequential scan per probe) at every batch holding such an event, until
 * an ANALYZE replans it: 70 ms per batch with 190,000 events, growing with the inbox. So the
 * key is looked up with a scalar subquery (never hashed), and the writer's session forbids
 * sequential scans, which no part of this statement wants. */
static const char ingest_sql[] =
    "WITH serial AS MATERIALIZED (SELECT pg_advisory_xact_lock(7164627561)),"
    " input AS ("
    "  SELECT t.*, CASE"
    "   WHEN t.kind = 2 THEN jsonb_build_object('eventType', t.event_type,"
    "    'data', t.raw_body::jsonb -> 'data')"
    "   WHEN t.kind <> 0 THEN t.raw_body::jsonb #> t.payload_path::text[] END AS payload"
    "  FROM unnest($1::int[], $2::text[], $3::smallint[], $4::text[], $5::text[], $6::text[],"
    "   $7::text[], $8::text[], $9::int[], $10::text[]) WITH ORDINALITY AS t(kind, dedupe_key,"
    "   api_version, event_type, wallet_id, device_id, raw_body, payload_path, ttl, legacy_key,"
    "   ord) CROSS JOIN serial),"
    " events AS ("
    "  INSERT INTO mpcpush.webhook_events"
    "   (dedupe_key, api_version, event_type, wallet_id, device_id, raw_body)"
    "  SELECT dedupe_key, api_version, event_type, wallet_id, device_id, raw_body"
    "  FROM input i WHERE kind <= 2 AND (legacy_key IS NULL OR (SELECT w.id"
    "   FROM mpcpush.webhook_events w WHERE w.dedupe_key = i.legacy_key) IS NULL)"
    "  ORDER BY ord"
    "  ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key),"
    " fresh AS ("
    "  SELECT i.ord, i.kind, i.wallet_id, i.device_id, i.payload, i.ttl, e.id AS event_id"
    "  FROM input i JOIN events e USING (dedupe_key) WHERE i.kind IN (1, 2)"
    "  UNION ALL"
    "  SELECT ord, kind, wallet_id, device_id, payload, ttl, NULL FROM input WHERE kind >= 3),"
    " targets AS MATERIALIZED ("
    "  SELECT x.*, nextval('mpcpush.messages_id_seq') AS id FROM ("
    "   SELECT f.ord, f.kind, f.event_id, f.payload, f.ttl, d.wallet_id, d.device_id"
    "   FROM fresh f CROSS JOIN LATERAL ("
    "    SELECT f.wallet_id, f.device_id WHERE f.kind = 1"
    "    UNION ALL"
    "    SELECT dv.wallet_id, dv.device_id FROM mpcpush.devices dv"
    "    WHERE f.kind IN (2, 4) AND dv.wallet_id = f.wallet_id"
    "    UNION ALL"
    "    SELECT dv.wallet_id, dv.device_id FROM mpcpush.devices dv"
    "    WHERE f.kind = 3 AND dv.wallet_id = f.wallet_id AND dv.device_id = f.device_id) d"
    "   ORDER BY f.ord, d.device_id) x),"
    " msgs AS ("
    "  INSERT INTO mpcpush.messages"
    "   (wallet_id, device_id, id, source, event_id, payload, expires_at)"
    "  SELECT wallet_id, device_id, id,"
    "   CASE kind WHEN 1 THEN 'webhook' WHEN 2 THEN 'event' ELSE 'api' END,"
    "   event_id, payload, now() + make_interval(secs => ttl)"
    "  FROM targets),"
    " wake AS ("
    "  INSERT INTO mpcpush.pushes AS p"
    "   (wallet_id, device_id, wanted_id, covered_id, fcm_token, platform, token_active,"
    "    pending_count, pending_latest_id, pending_first_expiry, pending_last_expiry)"
    "  SELECT t.wallet_id, t.device_id, max(t.id),"
    "   CASE WHEN dv.token_status = 'active' THEN 0 ELSE max(t.id) END,"
    "   dv.fcm_token, dv.platform, coalesce(dv.token_status = 'active', false),"
    "   count(*), max(t.id), now() + make_interval(secs => min(t.ttl)),"
    "   now() + make_interval(secs => max(t.ttl))"
    "  FROM targets t"
    "  LEFT JOIN mpcpush.devices dv ON dv.wallet_id = t.wallet_id AND dv.device_id = t.device_id"
    "  GROUP BY t.wallet_id, t.device_id, dv.fcm_token, dv.platform, dv.token_status"
    "  ORDER BY t.wallet_id, t.device_id"
    "  ON CONFLICT (wallet_id, device_id) DO UPDATE SET"
    "   wanted_id = greatest(p.wanted_id, EXCLUDED.wanted_id),"
    "   pending_count = p.pending_count + EXCLUDED.pending_count,"
    "   pending_latest_id = greatest(p.pending_latest_id, EXCLUDED.pending_latest_id),"
    "   pending_first_expiry = least(p.pending_first_expiry, EXCLUDED.pending_first_expiry),"
    "   pending_last_expiry = greatest(p.pending_last_expiry, EXCLUDED.pending_last_expiry),"
    "   covered_id = CASE WHEN p.token_active THEN p.covered_id"
    "    ELSE greatest(p.covered_id, EXCLUDED.wanted_id) END,"
    "   due_at = CASE WHEN p.wanted_id > p.covered_id OR NOT p.token_active THEN p.due_at"
    "    ELSE clock_timestamp() END,"
    "   state = CASE WHEN p.wanted_id > p.covered_id OR NOT p.token_active THEN p.state"
    "    ELSE 'ready' END,"
    "   attempts = CASE WHEN p.wanted_id > p.covered_id OR NOT p.token_active THEN p.attempts"
    "    ELSE 0 END"
    "  RETURNING 1),"
    " notified AS ("
    "  SELECT pg_notify('mpcpush_messages',"
    "   CASE WHEN sum(length(wallet_id) + length(device_id) + 2) <= 7000"
    "   THEN string_agg(DISTINCT wallet_id || '/' || device_id, ' ') ELSE '*' END)"
    "  FROM targets HAVING count(*) > 0)"
    " SELECT i.ord, e.id, NULL::text, NULL::bigint, NULL::text,"
    "  (SELECT count(*) FROM notified), (SELECT count(*) FROM wake)"
    " FROM input i LEFT JOIN events e USING (dedupe_key)"
    " UNION ALL"
    " SELECT t.ord, NULL, t.device_id, t.id,"
    "  mpcpush.iso_time(now() + make_interval(secs => t.ttl)), NULL, NULL"
    " FROM targets t"
    " ORDER BY 1, 4 NULLS FIRST";

/* The statement's parameters: one array per job field, in this order, sent in binary. */
enum column {
    COL_KIND,
    COL_DEDUPE_KEY,
    COL_API_VERSION,
    COL_EVENT_TYPE,
    COL_WALLET_ID,
    COL_DEVICE_ID,
    COL_RAW_BODY,
    COL_PAYLOAD_PATH,
    COL_TTL,
    COL_LEGACY_KEY,
    COLUMNS
};

/* pg_type OIDs (catalog/pg_type_d.h, stable across versions). */
#define INT2_OID       21
#define INT4_OID       23
#define TEXT_OID       25
#define INT2_ARRAY_OID 1005
#define INT4_ARRAY_OID 1007
#define TEXT_ARRAY_OID 1009

static const Oid column_type[COLUMNS] = {
    INT4_ARRAY_OID, TEXT_ARRAY_OID, INT2_ARRAY_OID, TEXT_ARRAY_OID, TEXT_ARRAY_OID,
    TEXT_ARRAY_OID, TEXT_ARRAY_OID, TEXT_ARRAY_OID, INT4_ARRAY_OID, TEXT_ARRAY_OID,
};

/* The result's columns. */
enum { RES_ORD, RES_EVENT_ID, RES_DEVICE_ID, RES_MESSAGE_ID, RES_EXPIRES_AT };

/* A one-dimensional array in PostgreSQL's binary format (array_recv), built in place. Errors
 * are sticky: the first failed append is kept in result and later appends do nothing. */
struct pg_array {
    struct mp_buf buf;
    enum mp_result result;
};

struct mp_ingest {
    char *url;
    int batch_max;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct mp_ingest_job *head, *tail;
    bool stopping, abandoned;
    PGconn *conn;
    PGcancel *cancel;                       /* conn's, for mp_ingest_abandon (under lock) */
    struct mp_ingest_job **batch, **unique; /* batch_max each, used by the writer only */
    struct pg_array columns[COLUMNS];       /* the parameters of a batch (writer only) */
    struct mp_buf made;                     /* a job's messages_json while it is built */
    struct timespec last_failure;
    atomic_bool healthy;
    atomic_ullong batches, jobs, failures, messages;
};

static long ms_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t->tv_sec) * 1000L + (now.tv_nsec - t->tv_nsec) / 1000000L;
}

static void finish(struct mp_ingest_job *job, enum mp_result result)
{
    job->result = result;
    job->done(job, job->done_arg);
}

/* Replaces the handle that cancels the writer's statement (NULL: none). */
static void set_cancel(struct mp_ingest *ingest, PGcancel *cancel)
{
    pthread_mutex_lock(&ingest->lock);
    PQfreeCancel(ingest->cancel);
    ingest->cancel = cancel;
    pthread_mutex_unlock(&ingest->lock);
}

/* Makes sure the writer has a working, prepared connection. */
static enum mp_result ensure_connection(struct mp_ingest *ingest)
{
    if (ingest->conn && !mp_db_broken(ingest->conn))
        return MP_OK;
    if (ingest->conn) {
        set_cancel(ingest, NULL);
        PQfinish(ingest->conn);
        ingest->conn = NULL;
    }
    if (ingest->last_failure.tv_sec && ms_since(&ingest->last_failure) < RECONNECT_PAUSE_MS)
        return MP_ERR_DB;
    PGconn *conn = NULL;
    enum mp_result result = mp_db_connect(ingest->url, "ingest", &conn);
    if (!result)
        result = mp_db_exec(conn, "SET enable_seqscan = off"); /* see ingest_sql */
    if (!result) {
        PGresult *res = PQprepare(conn, "ingest", ingest_sql, COLUMNS, column_type);
        result = mp_db_check(conn, res, "ingest_prepare");
        PQclear(res);
    }
    if (result) {
        PQfinish(conn);
        clock_gettime(CLOCK_MONOTONIC, &ingest->last_failure);
        atomic_store(&ingest->healthy, false);
        return result;
    }
    ingest->conn = conn;
    set_cancel(ingest, PQgetCancel(conn));
    ingest->last_failure.tv_sec = 0;
    MP_INFO("db_connected", "role=ingest");
    return MP_OK;
}

static void array_put(struct pg_array *a, const void *data, size_t len)
{
    if (!a->result)
        a->result = mp_buf_append(&a->buf, data, len);
}

static void array_put_int32(struct pg_array *a, int32_t value)
{
    uint32_t net = htonl((uint32_t)value);
    array_put(a, &net, sizeof(net));
}

/* Empties a and writes the header of an array of n elements of type element_oid. */
static void array_start(struct pg_array *a, Oid element_oid, int n)
{
    mp_buf_reset(&a->buf);
    a->result = MP_OK;
    array_put_int32(a, 1); /* dimensions */
    array_put_int32(a, 1); /* flags: may hold NULLs */
    array_put_int32(a, (int32_t)element_oid);
    array_put_int32(a, n); /* length */
    array_put_int32(a, 1); /* lower bound */
}

static void array_int4(struct pg_array *a, int value)
{
    array_put_int32(a, 4);
    array_put_int32(a, value);
}

static void array_int2(struct pg_array *a, int value)
{
    uint16_t net = htons((uint16_t)(int16_t)value);
    array_put_int32(a, 2);
    array_put(a, &net, sizeof(net));
}

/* A text element, NULL for NULL. Sent up to its first NUL byte, as the C string it is (the
 * receiver refuses bodies holding one before they get here). */
static void array_text(struct pg_array *a, const char *text)
{
    size_t len = text ? strlen(text) : 0;
    if (len > INT32_MAX && !a->result)
        a->result = MP_ERR_TOO_LARGE;
    array_put_int32(a, text ? (int32_t)len : -1);
    if (len)
        array_put(a, text, len);
}

/* Fills ingest->columns with jobs[0..n). */
static enum mp_result encode_batch(struct mp_ingest *ingest, struct mp_ingest_job **jobs, int n)
{
    struct pg_array *c = ingest->columns;
    static const Oid element[COLUMNS] = {INT4_OID, TEXT_OID, INT2_OID, TEXT_OID, TEXT_OID,
                                         TEXT_OID, TEXT_OID, TEXT_OID, INT4_OID, TEXT_OID};
    for (int k = 0; k < COLUMNS; k++)
        array_start(&c[k], element[k], n);
    for (int i = 0; i < n; i++) {
        const struct mp_ingest_job *job = jobs[i];
        array_int4(&c[COL_KIND], (int)job->kind);
        array_text(&c[COL_DEDUPE_KEY], job->dedupe_key);
        array_int2(&c[COL_API_VERSION], job->api_version);
        array_text(&c[COL_EVENT_TYPE], job->event_type);
        array_text(&c[COL_WALLET_ID], job->wallet_id);
        array_text(&c[COL_DEVICE_ID], job->device_id);
        array_text(&c[COL_RAW_BODY], job->raw_body);
        array_text(&c[COL_PAYLOAD_PATH], job->payload_path);
        array_int4(&c[COL_TTL], job->ttl_seconds);
        array_text(&c[COL_LEGACY_KEY], job->legacy_key);
    }
    for (int k = 0; k < COLUMNS; k++)
        if (c[k].result)
            return c[k].result;
    return MP_OK;
}

/* The first earlier job of the batch with the same dedupe key, or NULL. */
static struct mp_ingest_job *earlier_twin(struct mp_ingest_job **jobs, int i)
{
    if (jobs[i]->kind > MP_INGEST_EVENT_WALLET || !jobs[i]->dedupe_key)
        return NULL;
    for (int j = 0; j < i; j++)
        if (jobs[j]->kind <= MP_INGEST_EVENT_WALLET && jobs[j]->dedupe_key &&
            strcmp(jobs[j]->dedupe_key, jobs[i]->dedupe_key) == 0)
            return jobs[j];
    return NULL;
}

/* Appends one message row of the result to a JSON list being built in buf. */
static enum mp_result append_message(struct mp_buf *buf, PGresult *res, int row, bool first)
{
    enum mp_result result = mp_buf_puts(buf, first ? "{\"deviceId\":" : ",{\"deviceId\":");
    if (!result)
        result = mp_buf_json_string(buf, PQgetvalue(res, row, RES_DEVICE_ID));
    if (!result)
        result = mp_buf_puts(buf, ",\"id\":");
    if (!result)
        result = mp_buf_json_string(buf, PQgetvalue(res, row, RES_MESSAGE_ID));
    if (!result)
        result = mp_buf_puts(buf, ",\"expiresAt\":");
    if (!result)
        result = mp_buf_json_string(buf, PQgetvalue(res, row, RES_EXPIRES_AT));
    return result ? result : mp_buf_puts(buf, "}");
}

static bool row_of(PGresult *res, int row, int ord)
{
    return row < PQntuples(res) && atoi(PQgetvalue(res, row, RES_ORD)) == ord;
}

/* Lists the messages of rows [first, end) as JSON into job->messages_json. */
static enum mp_result list_messages(struct mp_ingest *ingest, PGresult *res, int first, int end,
                                    struct mp_ingest_job *job)
{
    struct mp_buf *made = &ingest->made;
    mp_buf_reset(made);
    enum mp_result result = mp_buf_puts(made, "[");
    for (int r = first; !result && r < end; r++)
        result = append_message(made, res, r, r == first);
    if (!result)
        result = mp_buf_puts(made, "]");
    if (!result && !(job->messages_json = strdup(made->data)))
        result = MP_ERR_NOMEM;
    return result;
}

/* Takes the rows of the job at ord (1-based) from *row on: its own row, then one per message
 * made. Sets the job's output and result, counts the messages into *made_count and moves *row
 * past them. MP_ERR_INTERNAL when the rows are not laid out as the statement promises. */
static enum mp_result take_rows(struct mp_ingest *ingest, PGresult *res, int *row, int ord,
                                struct mp_ingest_job *job, size_t *made_count)
{
    int first = *row + 1, end = first;
    if (!row_of(res, *row, ord) || !PQgetisnull(res, *row, RES_MESSAGE_ID))
        return MP_ERR_INTERNAL;
    while (row_of(res, end, ord))
        if (PQgetisnull(res, end++, RES_MESSAGE_ID))
            return MP_ERR_INTERNAL;
    bool stored = !PQgetisnull(res, *row, RES_EVENT_ID);
    job->duplicate = job->kind <= MP_INGEST_EVENT_WALLET && !stored;
    job->event_id = stored ? atoll(PQgetvalue(res, *row, RES_EVENT_ID)) : 0;
    if (job->kind >= MP_INGEST_API_DEVICE && end == first)
        job->result = MP_ERR_NOT_FOUND;
    else
        job->result = list_messages(ingest, res, first, end, job);
    *made_count += (size_t)(end - first);
    *row = end;
    return MP_OK;
}

/* Whether a failed statement was refused for what it was given (a data exception, a violated
 * constraint, a value over a limit: one bad job) rather than by the database itself (read-only,
 * disk full, timeouts, a lost connection: every job alike). */
static bool bad_input(const PGresult *res)
{
    const char *state = mp_db_sqlstate(res);
    return strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0 ||
           strncmp(state, "54", 2) == 0;
}

/* Whether a failed statement lost a deadlock (or a serialization conflict): written again, it
 * goes through. */
static bool lost_conflict(const PGresult *res)
{
    const char *state = mp_db_sqlstate(res);
    return strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0;
}

static enum mp_result write_batch_once(struct mp_ingest *ingest, struct mp_ingest_job **jobs, int n,
                                       bool *refused, bool *conflict)
{
    *refused = false;
    enum mp_result result = encode_batch(ingest, jobs, n);
    if (result)
        return result;
    const char *values[COLUMNS];
    int lengths[COLUMNS], formats[COLUMNS];
    for (int k = 0; k < COLUMNS; k++) {
        if (ingest->columns[k].buf.len > INT32_MAX)
            return MP_ERR_TOO_LARGE;
        values[k] = ingest->columns[k].buf.data;
        lengths[k] = (int)ingest->columns[k].buf.len;
        formats[k] = 1;
    }
    PGresult *res = PQexecPrepared(ingest->conn, "ingest", COLUMNS, values, lengths, formats, 0);
    result = mp_db_check(ingest->conn, res, "ingest");
    if (result) {
        *refused = bad_input(res);
        *conflict = lost_conflict(res);
    }
    size_t made = 0;
    int row = 0;
    for (int i = 0; !result && i < n; i++)
        result = take_rows(ingest, res, &row, i + 1, jobs[i], &made);
    if (!result && row != PQntuples(res))
        result = MP_ERR_INTERNAL;
    PQclear(res);
    if (!result)
        atomic_fetch_add(&ingest->messages, made);
    return result;
}

/* Writes jobs[0..n) (no two with the same dedupe key) in one statement, again when it loses a
 * deadlock (a few times). On success every job has its outcome in job->result; on failure
 * nothing was written, the result says why and *refused says whether the jobs' data was
 * refused (see bad_input). */
static enum mp_result write_batch(struct mp_ingest *ingest, struct mp_ingest_job **jobs, int n,
                                  bool *refused)
{
    enum mp_result result = MP_OK;
    for (int attempt = 0; attempt < 3; attempt++) {
        bool conflict = false;
        result = write_batch_once(ingest, jobs, n, refused, &conflict);
        if (!conflict)
            break;
        MP_WARN("ingest_conflict", "attempt=%d jobs=%d", attempt + 1, n);
    }
    return result;
}

/* Writes a batch and reports every job. When the database refuses the batch's data, one job
 * is bad: each is then written alone so the others still succeed. Any other failure (the
 * database is read-only, full, gone) fails every job alike, with a 503. */
static void process(struct mp_ingest *ingest, struct mp_ingest_job **jobs, int n)
{
    struct mp_ingest_job **unique = ingest->unique;
    int u = 0;
    for (int i = 0; i < n; i++)
        if (!earlier_twin(jobs, i))
            unique[u++] = jobs[i];
    enum mp_result result = ensure_connection(ingest);
    if (!result) {
        bool refused = false;
        result = write_batch(ingest, unique, u, &refused);
        if (result && refused) {
            for (int i = 0; i < u; i++) {
                enum mp_result one = write_batch(ingest, &unique[i], 1, &refused);
                if (one)
                    unique[i]->result = refused ? MP_ERR_INVALID : one;
            }
            result = MP_OK;
        }
    }
    atomic_store(&ingest->healthy, result == MP_OK || !mp_db_broken(ingest->conn));
    atomic_fetch_add(&ingest->batches, 1);
    atomic_fetch_add(&ingest->jobs, (unsigned long long)n);
    if (result)
        atomic_fetch_add(&ingest->failures, (unsigned long long)n);
    /* Twins are resolved before any job is reported: a reported job may be freed at once by
     * the request that owns it, so earlier_twin must not look at it afterwards. */
    for (int i = 0; i < n && !result; i++) {
        struct mp_ingest_job *twin = earlier_twin(jobs, i);
        if (twin) {
            jobs[i]->duplicate = true;
            jobs[i]->event_id = 0;
            jobs[i]->result = twin->result;
        }
    }
    for (int i = 0; i < n; i++)
        finish(jobs[i], result ? result : jobs[i]->result);
}

static void *writer_main(void *arg)
{
    struct mp_ingest *ingest = arg;
    struct mp_ingest_job **batch = ingest->batch;
    for (;;) {
        pthread_mutex_lock(&ingest->lock);
        while (!ingest->head && !ingest->stopping)
            pthread_cond_wait(&ingest->wake, &ingest->lock);
        if (!ingest->head) {
            pthread_mutex_unlock(&ingest->lock);
            break;
        }
        int n = 0;
        while (ingest->head && n < ingest->batch_max) {
            batch[n++] = ingest->head;
            ingest->head = ingest->head->next;
        }
        if (!ingest->head)
            ingest->tail = NULL;
        pthread_mutex_unlock(&ingest->lock);
        process(ingest, batch, n);
    }
    return NULL;
}

enum mp_result mp_ingest_start(const char *database_url, int batch_max, struct mp_ingest **out)
{
    struct mp_ingest *ingest = calloc(1, sizeof(*ingest));
    if (!ingest)
        return MP_ERR_NOMEM;
    ingest->url = strdup(database_url);
    ingest->batch_max = batch_max > 0 ? batch_max : 1;
    pthread_mutex_init(&ingest->lock, NULL);
    pthread_cond_init(&ingest->wake, NULL);
    atomic_store(&ingest->healthy, true);
    ingest->batch = calloc((size_t)ingest->batch_max, sizeof(*ingest->batch));
    ingest->unique = calloc((size_t)ingest->batch_max, sizeof(*ingest->unique));
    for (int k = 0; k < COLUMNS; k++)
        mp_buf_init(&ingest->columns[k].buf, 0);
    mp_buf_init(&ingest->made, 0);
    if (!ingest->url || !ingest->batch || !ingest->unique ||
        pthread_create(&ingest->thread, NULL, writer_main, ingest) != 0) {
        free(ingest->batch);
        free(ingest->unique);
        free(ingest->url);
        free(ingest);
        return MP_ERR_NOMEM;
    }
    *out = ingest;
    return MP_OK;
}

void mp_ingest_submit(struct mp_ingest *ingest, struct mp_ingest_job *job)
{
    job->next = NULL;
    job->messages_json = NULL;
    job->duplicate = false;
    job->event_id = 0;
    pthread_mutex_lock(&ingest->lock);
    if (ingest->stopping || ingest->abandoned) {
        pthread_mutex_unlock(&ingest->lock);
        finish(job, MP_ERR_UNAVAILABLE);
        return;
    }
    if (ingest->tail)
        ingest->tail->next = job;
    else
        ingest->head = job;
    ingest->tail = job;
    pthread_cond_signal(&ingest->wake);
    pthread_mutex_unlock(&ingest->lock);
}

bool mp_ingest_healthy(struct mp_ingest *ingest)
{
    return atomic_load(&ingest->healthy);
}

void mp_ingest_stats(struct mp_ingest *ingest, struct mp_ingest_stats *out)
{
    out->batches = atomic_load(&ingest->batches);
    out->jobs = atomic_load(&ingest->jobs);
    out->failures = atomic_load(&ingest->failures);
    out->messages = atomic_load(&ingest->messages);
}

void mp_ingest_abandon(struct mp_ingest *ingest)
{
    if (!ingest)
        return;
    pthread_mutex_lock(&ingest->lock);
    ingest->abandoned = true;
    struct mp_ingest_job *queued = ingest->head;
    ingest->head = ingest->tail = NULL;
    char error[256];
    if (ingest->cancel && !PQcancel(ingest->cancel, error, sizeof(error)))
        MP_WARN("ingest_cancel_failed", "error=\"%s\"", error);
    pthread_mutex_unlock(&ingest->lock);
    while (queued) {
        struct mp_ingest_job *next = queued->next;
        finish(queued, MP_ERR_UNAVAILABLE);
        queued = next;
    }
}

void mp_ingest_stop(struct mp_ingest *ingest)
{
    if (!ingest)
        return;
    pthread_mutex_lock(&ingest->lock);
    ingest->stopping = true;
    pthread_cond_signal(&ingest->wake);
    pthread_mutex_unlock(&ingest->lock);
    pthread_join(ingest->thread, NULL);
    PQfreeCancel(ingest->cancel);
    PQfinish(ingest->conn);
    pthread_mutex_destroy(&ingest->lock);
    pthread_cond_destroy(&ingest->wake);
    for (int k = 0; k < COLUMNS; k++)
        mp_buf_free(&ingest->columns[k].buf);
    mp_buf_free(&ingest->made);
    free(ingest->batch);
    free(ingest->unique);
    free(ingest->url);
    free(ingest);
}
