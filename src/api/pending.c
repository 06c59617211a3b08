/* GET /v1/wallets/{w}/devices/{d}/messages (with long-poll) and POST .../messages/ack. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api-int.h"
#include "mpcpush/log.h"
#include "mpcpush/messages.h"
#include "mpcpush/waiters.h"

#define DEFAULT_LIMIT 100
#define MAX_LIMIT     1000
#define MAX_WAIT      60
#define MAX_ACK_IDS   1000

struct fetch_state {
    struct mp_waiter waiter;
    struct mp_waiters *registry;
    long long after;
    int limit;
};

static void fetch_state_free(void *arg)
{
    struct fetch_state *st = arg;
    if (st->registry)
        mp_waiters_forget(st->registry, &st->waiter);
    free(st);
}

/* Parses an optional non-negative integer query argument within [0, max]. */
static bool query_number(struct mp_http_request *req, const char *name, long long max,
                         long long *value)
{
    const char *text = mp_http_query(req, name);
    if (!text)
        return true;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || end == text || v < 0 || v > max) {
        char message[128];
        snprintf(message, sizeof(message), "%s must be an integer from 0 to %lld", name, max);
        mp_http_reply_error(req, 400, "invalid_request", message);
        return false;
    }
    *value = v;
    return true;
}

/* Looks in the database; answers and returns true when there is something to answer (or an
 * error), returns false when the device has nothing pending. */
static bool answer_if_any(struct mp_http_request *req, struct mp_api *api,
                          const struct mp_route_params *params, const struct fetch_state *st,
                          bool final)
{
    PGconn *conn = mp_api_db(req, api);
    if (!conn)
        return true;
    struct mp_buf out;
    mp_buf_init(&out, 0);
    int count = 0;
    enum mp_result result = mp_messages_fetch(conn, params->wallet_id, params->device_id, st->after,
                                              st->limit, &out, &count);
    mp_db_pool_put(api->pool, conn);
    if (result)
        mp_api_reply_result(req, result);
    else if (count > 0 || final)
        mp_http_reply_text(req, 200, "application/json", out.data, out.len);
    mp_buf_free(&out);
    return result || count > 0 || final;
}

static bool expired(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* Looks, and if nothing is there parks the request until a notification or the deadline. */
static void look_or_wait(struct mp_http_request *req, struct mp_api *api,
                         const struct mp_route_params *params, struct fetch_state *st)
{
    for (;;) {
        bool can_wait = st->registry && !expired(&st->waiter.deadline) &&
                        mp_waiters_watch(st->registry, &st->waiter);
        if (answer_if_any(req, api, params, st, !can_wait)) {
            if (can_wait)
                mp_waiters_forget(st->registry, &st->waiter);
            return;
        }
        if (mp_waiters_park(st->registry, &st->waiter))
            return; /* resumed by a notification or the deadline */
    }
}

static struct fetch_state *begin_fetch(struct mp_http_request *req, struct mp_api *api)
{
    long long after = 0, limit = DEFAULT_LIMIT, wait = 0;
    if (!query_number(req, "after", 9223372036854775807LL, &after) ||
        !query_number(req, "limit", MAX_LIMIT, &limit) ||
        !query_number(req, "wait", MAX_WAIT, &wait))
        return NULL;
    struct fetch_state *st = calloc(1, sizeof(*st));
    if (!st) {
        mp_api_reply_result(req, MP_ERR_NOMEM);
        return NULL;
    }
    st->after = after;
    st->limit = limit > 0 ? (int)limit : DEFAULT_LIMIT;
    st->registry = wait > 0 ? api->waiters : NULL;
    st->waiter.req = req;
    clock_gettime(CLOCK_MONOTONIC, &st->waiter.deadline);
    st->waiter.deadline.tv_sec += wait;
    mp_http_set_state(req, st, fetch_state_free);
    return st;
}

void mp_api_messages_get(struct mp_http_request *req, struct mp_api *api,
                         const struct mp_route_params *params)
{
    struct fetch_state *st = mp_http_state(req);
    if (!st) {
        if (!mp_api_check_ids(req, params) || !(st = begin_fetch(req, api)))
            return;
        snprintf(st->waiter.key, sizeof(st->waiter.key), "%s/%s", params->wallet_id,
                 params->device_id);
    }
    look_or_wait(req, api, params, st);
}

/* Reads {"upTo":"ID"} or {"ids":["ID",...]}; ids may also be JSON integers. */
static bool parse_id(json_t *value, long long *out)
{
    if (json_is_integer(value) && json_integer_value(value) >= 0) {
        *out = json_integer_value(value);
        return true;
    }
    if (!json_is_string(value))
        return false;
    const char *text = json_string_value(value);
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || end == text || v < 0)
        return false;
    *out = v;
    return true;
}

static bool parse_ack(struct mp_http_request *req, json_t *body, long long *up_to, long long **ids,
                      int *n)
{
    json_t *upto = json_object_get(body, "upTo"), *list = json_object_get(body, "ids");
    const char *problem = NULL;
    if ((upto != NULL) == (list != NULL))
        problem = "give exactly one of upTo (a message id) or ids (a list of message ids)";
    else if (upto && !parse_id(upto, up_to))
        problem = "upTo must be a message id";
    else if (list && (!json_is_array(list) || json_array_size(list) == 0 ||
                      json_array_size(list) > MAX_ACK_IDS))
        problem = "ids must be a list of 1 to 1000 message ids";
    if (!problem && list) {
        *n = (int)json_array_size(list);
        *ids = calloc((size_t)*n, sizeof(**ids));
        if (!*ids)
            problem = "out of memory";
        for (int i = 0; *ids && i < *n && !problem; i++)
            if (!parse_id(json_array_get(list, (size_t)i), &(*ids)[i]))
                problem = "ids must be a list of 1 to 1000 message ids";
    }
    if (problem)
        mp_http_reply_error(req, 400, "invalid_request", problem);
    return !problem;
}

void mp_api_messages_ack(struct mp_http_request *req, struct mp_api *api,
                         const struct mp_route_params *params)
{
    if (!mp_api_check_ids(req, params))
        return;
    json_t *body = mp_api_body_object(req);
    long long up_to = 0, *ids = NULL, acked = 0;
    int n = 0;
    if (body && parse_ack(req, body, &up_to, &ids, &n)) {
        PGconn *conn = mp_api_db(req, api);
        if (conn) {
            enum mp_result result =
                mp_messages_ack(conn, params->wallet_id, params->device_id, up_to, ids, n, &acked);
            mp_db_pool_put(api->pool, conn);
            if (result)
                mp_api_reply_result(req, result);
            else
                mp_http_reply_json(req, 200, json_pack("{s:I}", "acknowledged", (json_int_t)acked));
        }
    }
    free(ids);
    json_decref(body);
}
