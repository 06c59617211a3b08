/* Request routing (the same on every listener and protocol) and the response helpers the
 * handlers share. */
#include "server-int.h"

#include <stdio.h>
#include <string.h>

#include "control-int.h"
#include "form-int.h"
#include "gerror-int.h"
#include "mpcpush/log.h"
#include "oauth-int.h"
#include "send-int.h"

#define RESPONSE_LIMIT ((size_t)512 * 1024 * 1024)
#define PROJECT_MAX    256

void emu_response_init(struct emu_response *resp)
{
    memset(resp, 0, sizeof(*resp));
    mp_buf_init(&resp->body, RESPONSE_LIMIT);
    resp->status = 500;
    resp->content_type = "application/json; charset=UTF-8";
    resp->retry_after = -1;
    resp->action = EMU_ANSWER;
}

void emu_response_free(struct emu_response *resp)
{
    if (resp)
        mp_buf_free(&resp->body);
}

void emu_response_set(struct emu_response *resp, int status, const char *body, size_t len)
{
    mp_buf_reset(&resp->body);
    resp->status = status;
    if (body && mp_buf_append(&resp->body, body, len)) {
        mp_buf_reset(&resp->body);
        resp->status = 503;
    }
}

void emu_response_json(struct emu_response *resp, int status, json_t *json)
{
    char *text = json ? json_dumps(json, JSON_COMPACT) : NULL;
    if (text)
        emu_response_set(resp, status, text, strlen(text));
    else
        emu_response_set(resp, 503, NULL, 0);
    free(text);
    json_decref(json);
}

double emu_random(struct emu_server *srv)
{
    /* xorshift64* */
    uint64_t x = srv->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    srv->rng = x;
    return (double)((x * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

const char *emu_status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

/* Extracts {project} from /v1/projects/{project}/messages:send (the colon may be %3A). */
static int send_route(const char *path, char *project, size_t size)
{
    static const char prefix[] = "/v1/projects/";
    static const char *const suffixes[] = {"/messages:send", "/messages%3Asend",
                                           "/messages%3asend"};
    size_t len = strcspn(path, "?#");
    if (len <= sizeof(prefix) - 1 || strncmp(path, prefix, sizeof(prefix) - 1) != 0)
        return 0;
    const char *p = path + sizeof(prefix) - 1;
    size_t project_len = strcspn(p, "/?#");
    if (project_len == 0 || project_len >= size)
        return 0;
    size_t rest = len - (sizeof(prefix) - 1) - project_len;
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        if (rest == strlen(suffixes[i]) && memcmp(p + project_len, suffixes[i], rest) == 0) {
            memcpy(project, p, project_len);
            project[project_len] = '\0';
            return 1;
        }
    }
    return 0;
}

static int post_only(const struct emu_request *req, struct emu_response *resp)
{
    if (strcmp(req->method, "POST") == 0)
        return 1;
    emu_gerror_status(resp, 405, "METHOD_NOT_ALLOWED", "Method not allowed: use POST.");
    return 0;
}

static void route(struct emu_server *srv, const struct emu_request *req, struct emu_response *resp)
{
    char project[PROJECT_MAX];
    if (emu_path_is(req->path, "/token") || emu_path_is(req->path, "/oauth2/v4/token")) {
        if (post_only(req, resp))
            emu_oauth_handle(srv, req, resp);
        resp->delay_ms += (unsigned)srv->opts->latency_ms;
    } else if (send_route(req->path, project, sizeof(project))) {
        if (post_only(req, resp))
            emu_send_handle(srv, req, project, resp);
        resp->delay_ms += (unsigned)srv->opts->latency_ms;
    } else if (strncmp(req->path, "/emulator/", 10) == 0 || emu_path_is(req->path, "/healthz")) {
        emu_control_handle(srv, req, resp);
    } else {
        emu_gerror_status(resp, 404, "NOT_FOUND", "Requested entity was not found.");
    }
}

void emu_handle(struct emu_server *srv, const struct emu_request *req, struct emu_response *resp)
{
    if (req->too_large)
        emu_gerror_status(resp, 413, "INVALID_ARGUMENT", "Request payload is too large.");
    else
        route(srv, req, resp);
    if (srv->opts->log_requests) {
        char path[256];
        MP_INFO("request", "method=%s path=%s status=%d", req->method,
                mp_log_quote(path, sizeof(path), req->path), resp->status);
    }
}
