/* Fakes for fuzz_api: the HTTP adapter (every function of include/mpcpush/http.h that the API
 * calls), the store modules the handlers use (db pool, devices, messages, API key cache), the
 * group-commit writer and the long-poll registry. Defining them here keeps the real ones
 * (src/http/server.c, the modules of src/store, src/api/waiters.c) out of the link: a handler that
 * starts calling one more function of those modules makes the link fail with "multiple definition",
 * and the function then needs a fake here too.
 *
 * X-Fuzz-Store letters: d database down, n not found, u writer unavailable, p duplicate
 * webhook, m one pending message, c device created, r per-address budget used up, a failed-key
 * budget used up, x serve through the separate metrics listener. */
#include <ctype.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api-int.h"
#include "fuzz_api.h"
#include "mpcpush/devices.h"
#include "mpcpush/fbverify.h"
#include "mpcpush/messages.h"
#include "mpcpush/metrics.h"
#include "mpcpush/ratelimit.h"
#include "mpcpush/validate.h"
#include "mpcpush/waiters.h"

#define MAX_HEADERS 32
#define MAX_ARGS    16
#define MAX_ROUNDS  8

struct pair {
    char *name, *value;
};

struct mp_http_request {
    char *method, *path;
    struct pair headers[MAX_HEADERS];
    int nheaders;
    struct pair args[MAX_ARGS];
    int nargs;
    char *body;
    size_t body_len;
    char flags[32];
    /* what the handlers did */
    int answers, status, extra_headers;
    bool suspended, resumed;
    void *state;
    void (*destroy)(void *);
};

/* The long-poll registry: a count of linked waiters and a round counter that makes the
 * registry "stop" after a few notifications, so that every long-poll ends. */
struct mp_waiters {
    int linked;
    int rounds;
};

static struct mp_config cfg;
static struct mp_api api;
static struct mp_waiters registry;
static PGconn *dead_conn; /* a real libpq object that never connected: every call fails */
static const struct mp_http_request *current;

static bool flag(char c)
{
    return current && strchr(current->flags, c) != NULL;
}

/* ---- set-up ---- */

void fz_api_setup(void)
{
    struct mp_buf errors;
    mp_buf_init(&errors, 0);
    if (mp_config_load(&cfg, NULL, NULL, &errors) != MP_OK)
        abort();
    mp_buf_free(&errors);
    api.cfg = &cfg;
    api.pool = (struct mp_db_pool *)&registry;      /* never dereferenced by the fakes */
    api.ingest = (struct mp_ingest *)&registry;     /* idem */
    api.keys = (struct mp_apikey_cache *)&registry; /* idem */
    api.fbverify = fz_verifier();
    pthread_rwlock_init(&api.fbverify_lock, NULL);
    if (mp_metrics_new(&api.metrics) != MP_OK || mp_ratelimit_new(0, &api.per_address) ||
        mp_ratelimit_new(0, &api.per_key) || mp_ratelimit_new(0, &api.auth_failures))
        abort();
    api.waiters = &registry;
    dead_conn = PQconnectdb("host=/nonexistent/mpcpush-fuzz port=1 connect_timeout=1");
    if (!dead_conn)
        abort();
}

/* ---- parsing the input ---- */

static int hex(int c)
{
    return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

/* Percent-decodes in place like the server's unescape callback (src/http/server.c): every
 * %XX but %00, which stays encoded so that it cannot cut an id short; plus_space for query
 * arguments. */
static void unescape(char *s, bool plus_space)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2]) &&
            (p[1] != '0' || p[2] != '0')) {
            *o++ = (char)(hex((unsigned char)p[1]) * 16 + hex((unsigned char)p[2]));
            p += 2;
        } else {
            *o++ = plus_space && *p == '+' ? ' ' : *p;
        }
    }
    *o = '\0';
}

static void parse_query(struct mp_http_request *req, char *query)
{
    for (char *save = NULL, *a = strtok_r(query, "&", &save); a && req->nargs < MAX_ARGS;
         a = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(a, '=');
        if (eq)
            *eq++ = '\0';
        unescape(a, true);
        if (eq)
            unescape(eq, true);
        req->args[req->nargs].name = strdup(a);
        req->args[req->nargs++].value = eq ? strdup(eq) : NULL;
    }
}

static void parse_request_line(struct mp_http_request *req, char *line)
{
    char *sp = strchr(line, ' ');
    if (sp)
        *sp++ = '\0';
    req->method = strdup(line);
    char root[] = "/", *target = sp ? sp : root;
    char *q = strchr(target, '?');
    if (q) {
        *q++ = '\0';
        parse_query(req, q);
    }
    unescape(target, false);
    req->path = strdup(target);
}

static void add_request_header(struct mp_http_request *req, char *line)
{
    char *colon = strchr(line, ':');
    if (!colon || req->nheaders >= MAX_HEADERS)
        return;
    *colon = '\0';
    char *value = colon + 1;
    value += strspn(value, " \t");
    size_t n = strlen(value);
    while (n && (value[n - 1] == ' ' || value[n - 1] == '\t' || value[n - 1] == '\r'))
        value[--n] = '\0';
    if (strcasecmp(line, "X-Fuzz-Store") == 0) {
        snprintf(req->flags, sizeof(req->flags), "%s", value);
        return;
    }
    req->headers[req->nheaders].name = strdup(line);
    req->headers[req->nheaders++].value = strdup(value);
}

/* Replaces "@sign" signature headers by valid signatures of the body. */
static void sign_headers(struct mp_http_request *req)
{
    static const char v2_header[] = "{\"alg\":\"RS512\",\"kid\":\"" FZ_V2_KID "\"}";
    for (int i = 0; i < req->nheaders; i++) {
        struct pair *h = &req->headers[i];
        if (strcmp(h->value, "@sign") != 0)
            continue;
        char *sig = NULL;
        if (strcasecmp(h->name, "Fireblocks-Signature") == 0)
            sig = fz_sign_v1(0, req->body, req->body_len);
        else if (strcasecmp(h->name, "Fireblocks-Webhook-Signature") == 0)
            sig = fz_sign_v2(v2_header, sizeof(v2_header) - 1, req->body, req->body_len);
        if (sig) {
            free(h->value);
            h->value = sig;
        }
    }
}

struct mp_http_request *fz_request_parse(struct fz_input *in)
{
    struct mp_http_request *req = calloc(1, sizeof(*req));
    if (!req)
        abort();
    char *line = fz_take_line(in);
    parse_request_line(req, line);
    free(line);
    while (in->size) {
        line = fz_take_line(in);
        bool end = line[0] == '\0' || strcmp(line, "\r") == 0;
        if (!end)
            add_request_header(req, line);
        free(line);
        if (end)
            break;
    }
    req->body = fz_take_rest(in, &req->body_len);
    sign_headers(req);
    return req;
}

/* ---- serving ---- */

static void with_budget_used(struct mp_ratelimit **slot, struct mp_ratelimit **saved)
{
    *saved = *slot;
    if (mp_ratelimit_new(1, slot) != MP_OK)
        abort();
    (void)mp_ratelimit_allow(*slot, "192.0.2.1");
}

void fz_request_serve(struct mp_http_request *req)
{
    struct mp_ratelimit *saved_address = NULL, *saved_failures = NULL;
    bool metrics_listener = strchr(req->flags, 'x') != NULL;
    current = req;
    if (strchr(req->flags, 'r'))
        with_budget_used(&api.per_address, &saved_address);
    if (strchr(req->flags, 'a'))
        with_budget_used(&api.auth_failures, &saved_failures);
    registry.rounds = 0;

    int refused =
        metrics_listener ? mp_api_metrics_precheck(req, &api) : mp_api_precheck(req, &api);
    if (req->answers) {
        FZ_CHECK(refused == req->status);
    } else {
        FZ_CHECK(refused == 0);
        for (int round = 0; !req->answers; round++) {
            FZ_CHECK(round < MAX_ROUNDS);
            req->suspended = req->resumed = false;
            if (metrics_listener)
                mp_api_metrics_handle(req, &api);
            else
                mp_api_handle(req, &api);
            /* unanswered: it must have suspended, and the fakes resume at once */
            FZ_CHECK(req->answers || (req->suspended && req->resumed));
        }
    }
    FZ_CHECK(req->answers == 1);

    if (saved_address) {
        mp_ratelimit_free(api.per_address);
        api.per_address = saved_address;
    }
    if (saved_failures) {
        mp_ratelimit_free(api.auth_failures);
        api.auth_failures = saved_failures;
    }
}

void fz_request_free(struct mp_http_request *req)
{
    if (req->destroy)
        req->destroy(req->state);
    FZ_CHECK(registry.linked == 0); /* a waiter left behind would dangle in the real registry */
    current = NULL;
    for (int i = 0; i < req->nheaders; i++) {
        free(req->headers[i].name);
        free(req->headers[i].value);
    }
    for (int i = 0; i < req->nargs; i++) {
        free(req->args[i].name);
        free(req->args[i].value);
    }
    free(req->method);
    free(req->path);
    free(req->body);
    free(req);
}

/* ---- include/mpcpush/http.h ---- */

static void answered(struct mp_http_request *req, int status)
{
    FZ_CHECK(status >= 200 && status <= 599);
    req->answers++;
    req->status = status;
}

const char *mp_http_method(const struct mp_http_request *req)
{
    return req->method;
}

const char *mp_http_path(const struct mp_http_request *req)
{
    return req->path;
}

const char *mp_http_header(const struct mp_http_request *req, const char *name)
{
    for (int i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

const char *mp_http_query(const struct mp_http_request *req, const char *name)
{
    for (int i = 0; i < req->nargs; i++)
        if (strcmp(req->args[i].name, name) == 0)
            return req->args[i].value;
    return NULL;
}

const char *mp_http_body(const struct mp_http_request *req, size_t *len)
{
    *len = req->body_len;
    return req->body;
}

const char *mp_http_request_id(const struct mp_http_request *req)
{
    (void)req;
    return "fuzz00000001";
}

const char *mp_http_client_ip(const struct mp_http_request *req)
{
    (void)req;
    return "192.0.2.1";
}

void mp_http_set_state(struct mp_http_request *req, void *state, void (*destroy)(void *))
{
    req->state = state;
    req->destroy = destroy;
}

void *mp_http_state(const struct mp_http_request *req)
{
    return req->state;
}

void mp_http_reply_json(struct mp_http_request *req, int status, json_t *json)
{
    if (json) {
        char *text = json_dumps(json, JSON_COMPACT);
        FZ_CHECK(text); /* what we answer must be serialisable */
        free(text);
        json_decref(json);
    }
    answered(req, status);
}

void mp_http_reply_error(struct mp_http_request *req, int status, const char *code,
                         const char *message)
{
    FZ_CHECK(status >= 400 && code && code[0] && message);
    FZ_CHECK(strspn(code, "abcdefghijklmnopqrstuvwxyz_") == strlen(code));
    answered(req, status);
}

void mp_http_reply_text(struct mp_http_request *req, int status, const char *content_type,
                        const char *text, size_t len)
{
    FZ_CHECK(content_type && (text || len == 0));
    answered(req, status);
}

void mp_http_add_header(struct mp_http_request *req, const char *name, const char *value)
{
    FZ_CHECK(!strpbrk(name, "\r\n:") && !strpbrk(value, "\r\n"));
    req->extra_headers++;
}

void mp_http_suspend(struct mp_http_request *req)
{
    FZ_CHECK(!req->answers);
    req->suspended = true;
}

void mp_http_resume(struct mp_http_request *req)
{
    FZ_CHECK(req->suspended);
    req->resumed = true;
}

/* ---- the database pool and the store ---- */

enum mp_result mp_db_pool_get(struct mp_db_pool *pool, int wait_ms, PGconn **out)
{
    (void)pool, (void)wait_ms;
    if (flag('d'))
        return MP_ERR_DB;
    *out = dead_conn;
    return MP_OK;
}

void mp_db_pool_put(struct mp_db_pool *pool, PGconn *conn)
{
    (void)pool;
    FZ_CHECK(conn == dead_conn);
}

enum mp_result mp_db_exec(PGconn *conn, const char *sql)
{
    FZ_CHECK(conn == dead_conn && sql);
    return MP_OK;
}

enum mp_result mp_db_check(PGconn *conn, PGresult *res, const char *what)
{
    (void)conn, (void)what;
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? MP_OK : MP_ERR_DB;
}

static void check_ids(const char *wallet, const char *device)
{
    FZ_CHECK(wallet && mp_valid_id(wallet, strlen(wallet)));
    FZ_CHECK(device && mp_valid_id(device, strlen(device)));
}

enum mp_result mp_devices_put(PGconn *conn, const struct mp_device_input *in, bool *created)
{
    FZ_CHECK(conn == dead_conn);
    check_ids(in->wallet_id, in->device_id);
    FZ_CHECK(in->fcm_token && mp_valid_fcm_token(in->fcm_token, strlen(in->fcm_token)));
    FZ_CHECK(mp_valid_platform(in->platform));
    FZ_CHECK(!in->physical_device_id ||
             mp_valid_id(in->physical_device_id, strlen(in->physical_device_id)));
    *created = flag('c');
    return MP_OK;
}

enum mp_result mp_devices_get(PGconn *conn, const char *wallet_id, const char *device_id,
                              json_t **state)
{
    FZ_CHECK(conn == dead_conn);
    check_ids(wallet_id, device_id);
    if (flag('n'))
        return MP_ERR_NOT_FOUND;
    *state = json_pack("{s:s,s:s,s:s}", "walletId", wallet_id, "deviceId", device_id, "tokenStatus",
                       "active");
    return *state ? MP_OK : MP_ERR_NOMEM;
}

enum mp_result mp_devices_delete(PGconn *conn, const char *wallet_id, const char *device_id)
{
    FZ_CHECK(conn == dead_conn);
    check_ids(wallet_id, device_id);
    return flag('n') ? MP_ERR_NOT_FOUND : MP_OK;
}

enum mp_result mp_messages_fetch(PGconn *conn, const char *wallet_id, const char *device_id,
                                 long long after, int limit, struct mp_buf *out, int *count)
{
    FZ_CHECK(conn == dead_conn);
    check_ids(wallet_id, device_id);
    FZ_CHECK(after >= 0 && limit >= 1 && limit <= 1000);
    *count = flag('m') ? 1 : 0;
    return mp_buf_puts(out, *count ? "{\"messages\":[{\"id\":\"1\",\"payload\":{}}],\"next\":\"1\"}"
                                   : "{\"messages\":[],\"next\":null}");
}

enum mp_result mp_messages_ack(PGconn *conn, const char *wallet_id, const char *device_id,
                               long long up_to, const long long *ids, int n, long long *acked)
{
    FZ_CHECK(conn == dead_conn);
    check_ids(wallet_id, device_id);
    FZ_CHECK(up_to >= 0 && (ids ? n >= 1 && n <= 1000 : n == 0));
    for (int i = 0; i < n; i++)
        FZ_CHECK(ids[i] >= 0);
    *acked = n ? n : 1;
    return flag('n') ? MP_ERR_DB : MP_OK;
}

bool mp_apikey_cache_check(struct mp_apikey_cache *cache, const char *key, size_t len,
                           char *name_out, size_t name_size)
{
    (void)cache;
    FZ_CHECK(strlen(key) == len);
    bool ok = len == 8 && memcmp(key, "fuzz-key", 8) == 0;
    if (ok && name_out)
        snprintf(name_out, name_size, "fuzz");
    return ok;
}

/* ---- the group-commit writer ---- */

static char *made_messages(const struct mp_ingest_job *job)
{
    json_t *list = json_array();
    int n = job->kind == MP_INGEST_API_WALLET || job->kind == MP_INGEST_EVENT_WALLET ? 2
            : job->kind == MP_INGEST_EVENT                                           ? 0
                                                                                     : 1;
    for (int i = 0; i < n; i++)
        json_array_append_new(list, json_pack("{s:s,s:s,s:s}", "deviceId",
                                              job->device_id ? job->device_id : "d2", "id", "7",
                                              "expiresAt", "2030-01-01T00:00:00.000Z"));
    char *text = json_dumps(list, JSON_COMPACT);
    json_decref(list);
    return text;
}

static void check_job(const struct mp_ingest_job *job)
{
    size_t len;
    const char *body = mp_http_body(current, &len);
    FZ_CHECK(job->raw_body == body && strlen(body) == len);
    json_t *probe = json_string(body); /* the writer sends it as a JSON string: UTF-8 */
    FZ_CHECK(probe);
    json_decref(probe);
    FZ_CHECK(job->ttl_seconds >= 1 && job->ttl_seconds <= cfg.max_message_ttl);
    FZ_CHECK(!job->wallet_id || mp_valid_id(job->wallet_id, strlen(job->wallet_id)));
    FZ_CHECK(!job->device_id || mp_valid_id(job->device_id, strlen(job->device_id)));
    switch (job->kind) {
    case MP_INGEST_EVENT:
    case MP_INGEST_EVENT_DEVICE:
    case MP_INGEST_EVENT_WALLET:
        FZ_CHECK(job->dedupe_key && job->event_type);
        FZ_CHECK(job->api_version == 1 || job->api_version == 2);
        if (job->kind == MP_INGEST_EVENT_DEVICE)
            FZ_CHECK(job->wallet_id && job->device_id && job->payload_path);
        if (job->kind == MP_INGEST_EVENT_WALLET)
            FZ_CHECK(job->wallet_id && !job->payload_path);
        break;
    case MP_INGEST_API_DEVICE:
        FZ_CHECK(job->wallet_id && job->device_id && job->payload_path);
        break;
    case MP_INGEST_API_WALLET:
        FZ_CHECK(job->wallet_id && !job->device_id && job->payload_path);
        break;
    default:
        FZ_CHECK(!"unknown job kind");
    }
}

void mp_ingest_submit(struct mp_ingest *ingest, struct mp_ingest_job *job)
{
    (void)ingest;
    check_job(job);
    job->messages_json = NULL;
    job->duplicate = false;
    job->event_id = 0;
    if (flag('u'))
        job->result = MP_ERR_UNAVAILABLE;
    else if (flag('n') && job->kind >= MP_INGEST_API_DEVICE)
        job->result = MP_ERR_NOT_FOUND;
    else if (flag('p') && job->kind <= MP_INGEST_EVENT_WALLET)
        job->duplicate = true, job->result = MP_OK;
    else {
        job->event_id = job->kind <= MP_INGEST_EVENT_WALLET ? 42 : 0;
        job->messages_json = made_messages(job);
        job->result = job->messages_json ? MP_OK : MP_ERR_NOMEM;
    }
    job->done(job, job->done_arg);
}

void mp_ingest_stats(struct mp_ingest *ingest, struct mp_ingest_stats *out)
{
    (void)ingest;
    memset(out, 0, sizeof(*out));
}

/* ---- the long-poll registry ---- */

bool mp_waiters_watch(struct mp_waiters *ws, struct mp_waiter *w)
{
    FZ_CHECK(ws == &registry && w->req == current);
    if (++ws->rounds > 3)
        return false; /* "stopping": the handler must answer now */
    w->fired = w->timed_out = w->parked = false;
    ws->linked++;
    return true;
}

bool mp_waiters_park(struct mp_waiters *ws, struct mp_waiter *w)
{
    FZ_CHECK(ws == &registry && !w->parked);
    if (w->fired)
        return false;
    w->parked = true;
    mp_http_suspend(w->req);
    /* a notification arrives at once: unlinked, fired, resumed */
    ws->linked--;
    w->fired = true;
    w->parked = false;
    mp_http_resume(w->req);
    return true;
}

void mp_waiters_forget(struct mp_waiters *ws, struct mp_waiter *w)
{
    FZ_CHECK(ws == &registry);
    if (!w->fired && !w->parked) {
        ws->linked--;
        w->fired = true;
    }
}
