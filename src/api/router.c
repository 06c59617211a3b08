/* Routes: which handler serves which method and path, and what each route requires (an API
 * key, a JSON body) before its body is even read. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/api-int.h"
#include "mpcpush/log.h"
#include "mpcpush/ratelimit.h"

enum route_flags { NEEDS_KEY = 1, JSON_BODY = 2 };

struct route {
    const char *method;
    const char *pattern; /* "/"-separated; "*" captures a segment */
    unsigned flags;
    mp_api_handler handler;
};

static const struct route routes[] = {
    {"GET", "healthz", 0, mp_api_healthz},
    {"GET", "readyz", 0, mp_api_readyz},
    {"GET", "metrics", 0, mp_api_metrics},
    {"POST", "webhooks/fireblocks", JSON_BODY, mp_api_webhook},
    {"PUT", "v1/wallets/*/devices/*", NEEDS_KEY | JSON_BODY, mp_api_device_put},
    {"GET", "v1/wallets/*/devices/*", NEEDS_KEY, mp_api_device_get},
    {"DELETE", "v1/wallets/*/devices/*", NEEDS_KEY, mp_api_device_delete},
    {"POST", "v1/wallets/*/devices/*/messages", NEEDS_KEY | JSON_BODY, mp_api_message_post},
    {"GET", "v1/wallets/*/devices/*/messages", NEEDS_KEY, mp_api_messages_get},
    {"POST", "v1/wallets/*/devices/*/messages/ack", NEEDS_KEY | JSON_BODY, mp_api_messages_ack},
    {"POST", "v1/wallets/*/messages", NEEDS_KEY | JSON_BODY, mp_api_wallet_message_post},
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* Matches path against pattern, capturing "*" segments into params. */
static bool match(const char *pattern, const char *path, struct mp_route_params *params)
{
    int captured = 0;
    /* a route with one "*" leaves device_id (storage[1]) empty, never uninitialised */
    for (int i = 0; i < MP_MAX_SEGMENTS; i++)
        params->storage[i][0] = '\0';
    while (*path == '/')
        path++;
    for (;;) {
        size_t plen = strcspn(pattern, "/"), slen = strcspn(path, "/");
        if (plen == 1 && pattern[0] == '*') {
            if (slen == 0 || slen >= sizeof(params->storage[0]) || captured >= MP_MAX_SEGMENTS)
                return false;
            memcpy(params->storage[captured], path, slen);
            params->storage[captured++][slen] = '\0';
        } else if (plen != slen || strncmp(pattern, path, plen) != 0) {
            return false;
        }
        pattern += plen;
        path += slen;
        if (!*pattern || !*path)
            return !*pattern && (!*path || strcmp(path, "/") == 0);
        pattern++;
        path++;
    }
}

/* Finds the route for the request; *path_known tells whether any method serves the path. */
static const struct route *find(struct mp_http_request *req, struct mp_route_params *params,
                                bool *path_known, char *allow, size_t allow_size)
{
    const struct route *found = NULL;
    *path_known = false;
    allow[0] = '\0';
    for (size_t i = 0; i < NROUTES; i++) {
        struct mp_route_params p;
        if (!match(routes[i].pattern, mp_http_path(req), &p))
            continue;
        *path_known = true;
        size_t used = strlen(allow);
        snprintf(allow + used, allow_size - used, "%s%s", used ? ", " : "", routes[i].method);
        if (strcmp(routes[i].method, mp_http_method(req)) == 0) {
            found = &routes[i];
            *params = p;
        }
    }
    if (found) {
        params->wallet_id = params->storage[0];
        params->device_id = params->storage[1];
    }
    return found;
}

static bool is_json(const char *content_type)
{
    if (!content_type)
        return false;
    size_t len = strcspn(content_type, ";");
    while (len && content_type[len - 1] == ' ')
        len--;
    return len == 16 && strncasecmp(content_type, "application/json", 16) == 0;
}

static bool authenticated(struct mp_http_request *req, struct mp_api *api, char *name,
                          size_t name_size)
{
    const char *auth = mp_http_header(req, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return false;
    const char *key = auth + 7;
    while (*key == ' ')
        key++;
    return mp_apikey_cache_check(api->keys, key, strlen(key), name, name_size);
}

static int too_many(struct mp_http_request *req, const char *what)
{
    char seconds[16];
    snprintf(seconds, sizeof(seconds), "%d", mp_ratelimit_retry_after());
    mp_http_add_header(req, "Retry-After", seconds);
    MP_INFO("rate_limited", "request_id=%s client=%s limit=%s", mp_http_request_id(req),
            mp_http_client_ip(req), what);
    mp_http_reply_error(req, 429, "rate_limited", "too many requests; slow down");
    return 429;
}

/* /v1 requests: a budget per address and per key, and a small one for failed key checks per
 * address, checked before the key so that guessing keys cannot go fast. */
static int check_key(struct mp_http_request *req, struct mp_api *api)
{
    const char *ip = mp_http_client_ip(req);
    if (mp_ratelimit_over(api->auth_failures, ip))
        return too_many(req, "auth_failures");
    if (!mp_ratelimit_allow(api->per_address, ip))
        return too_many(req, "address");
    char name[128];
    if (!authenticated(req, api, name, sizeof(name))) {
        mp_ratelimit_allow(api->auth_failures, ip);
        mp_http_add_header(req, "WWW-Authenticate", "Bearer");
        mp_http_reply_error(req, 401, "unauthorized", "a valid API key is required");
        return 401;
    }
    if (!mp_ratelimit_allow(api->per_key, name))
        return too_many(req, "api_key");
    return 0;
}

int mp_api_precheck(struct mp_http_request *req, void *arg)
{
    struct mp_api *api = arg;
    struct mp_route_params params;
    bool path_known;
    char allow[64];
    const struct route *route = find(req, &params, &path_known, allow, sizeof(allow));
    if (route && route->handler == mp_api_metrics && api->cfg->metrics_listen)
        route = NULL, path_known = false; /* served on its own address instead */
    if (!route && !path_known) {
        mp_http_reply_error(req, 404, "not_found", "no such endpoint");
        return 404;
    }
    if (!route) {
        mp_http_add_header(req, "Allow", allow);
        mp_http_reply_error(req, 405, "method_not_allowed", "method not allowed on this path");
        return 405;
    }
    int refused = (route->flags & NEEDS_KEY) ? check_key(req, api) : 0;
    if (refused)
        return refused;
    if ((route->flags & JSON_BODY) && !is_json(mp_http_header(req, "Content-Type"))) {
        mp_http_reply_error(req, 415, "unsupported_media_type",
                            "the body must be application/json");
        return 415;
    }
    return 0;
}

void mp_api_handle(struct mp_http_request *req, void *arg)
{
    struct mp_api *api = arg;
    struct mp_route_params params;
    bool path_known;
    char allow[64];
    const struct route *route = find(req, &params, &path_known, allow, sizeof(allow));
    if (!route) { /* the precheck answered already; this cannot happen */
        mp_http_reply_error(req, 404, "not_found", "no such endpoint");
        return;
    }
    route->handler(req, api, &params);
}

int mp_api_metrics_precheck(struct mp_http_request *req, void *arg)
{
    if (strcmp(mp_http_path(req), "/metrics") != 0) {
        mp_http_reply_error(req, 404, "not_found", "only /metrics is served here");
        return 404;
    }
    if (strcmp(mp_http_method(req), "GET") != 0) {
        mp_http_add_header(req, "Allow", "GET");
        mp_http_reply_error(req, 405, "method_not_allowed", "method not allowed on this path");
        return 405;
    }
    return 0;
}

void mp_api_metrics_handle(struct mp_http_request *req, void *arg)
{
    mp_api_metrics(req, arg, NULL);
}
