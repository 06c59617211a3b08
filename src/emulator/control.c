/* /emulator/... endpoints: counters, recorded messages, fault rules, reset, and token expiry,
 * for tests and for people poking at the emulator with curl. */
#include "control-int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "form-int.h"
#include "gerror-int.h"
#include "loop-int.h"
#include "mpcpush/log.h"
#include "record-int.h"
#include "tokens-int.h"

json_t *emu_stats_json(const struct emu_server *srv)
{
    const struct emu_stats *s = &srv->stats;
    json_t *by_error = json_object();
    for (int i = 0; by_error && i < EMU_ERR_COUNT; i++)
        if (i != EMU_ERR_SLOW)
            json_object_set_new(by_error, emu_err_name((enum emu_err)i),
                                json_integer((json_int_t)s->by_error[i]));
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:I, "
                     "s:I}",
                     "token_requests", (json_int_t)s->token_requests, "tokens_issued",
                     (json_int_t)s->tokens_issued, "token_errors", (json_int_t)s->token_errors,
                     "send_requests", (json_int_t)s->send_requests, "accepted",
                     (json_int_t)s->accepted, "rejected", (json_int_t)s->rejected, "validate_only",
                     (json_int_t)s->validate_only, "recorded", (json_int_t)s->recorded, "by_error",
                     by_error, "connections", (json_int_t)s->connections, "open_connections",
                     (json_int_t)s->open_connections, "goaways", (json_int_t)s->goaways, "slowed",
                     (json_int_t)s->slowed, "faults", (json_int_t)srv->faults.n, "access_tokens",
                     (json_int_t)emu_tokens_count(srv->tokens));
}

static void messages(struct emu_server *srv, const struct emu_request *req,
                     struct emu_response *resp)
{
    char *token = emu_query_value(req->path, "token");
    mp_buf_reset(&resp->body);
    if (emu_record_read(srv->record, token, &resp->body)) {
        emu_gerror_status(resp, 500, "INTERNAL", "could not read the records");
    } else {
        resp->status = 200;
        resp->content_type = "application/x-ndjson";
    }
    free(token);
}

static void faults_answer(struct emu_server *srv, struct emu_response *resp)
{
    emu_response_json(resp, 200, json_pack("{s:o}", "faults", emu_faults_to_json(&srv->faults)));
}

/* POST replaces the rules (?append=1: adds to them); the old ones stay on a bad body. */
static void faults_post(struct emu_server *srv, const struct emu_request *req,
                        struct emu_response *resp)
{
    char err[256];
    char *append = emu_query_value(req->path, "append");
    int keep = append && strcmp(append, "0") != 0 && strcmp(append, "false") != 0;
    struct emu_faults fresh = {0};
    struct emu_faults *target = keep ? &srv->faults : &fresh;
    free(append);
    if (emu_faults_add_json(target, req->body, req->body_len, err, sizeof(err))) {
        emu_gerror_status(resp, 400, "INVALID_ARGUMENT", err);
        emu_faults_free(&fresh);
        return;
    }
    if (!keep) {
        emu_faults_free(&srv->faults);
        srv->faults = fresh;
    }
    MP_INFO("faults_set", "rules=%zu", srv->faults.n);
    faults_answer(srv, resp);
}

static void faults(struct emu_server *srv, const struct emu_request *req, struct emu_response *resp)
{
    if (strcmp(req->method, "GET") == 0) {
        faults_answer(srv, resp);
    } else if (strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0) {
        faults_post(srv, req, resp);
    } else if (strcmp(req->method, "DELETE") == 0) {
        char *token = emu_query_value(req->path, "token");
        emu_faults_remove(&srv->faults, token);
        free(token);
        faults_answer(srv, resp);
    } else {
        emu_gerror_status(resp, 405, "METHOD_NOT_ALLOWED", "Use GET, POST or DELETE.");
    }
}

static void reset(struct emu_server *srv, struct emu_response *resp)
{
    unsigned long open = srv->stats.open_connections;
    if (emu_record_truncate(srv->record)) {
        emu_gerror_status(resp, 500, "INTERNAL", "could not truncate the records");
        return;
    }
    memset(&srv->stats, 0, sizeof(srv->stats));
    srv->stats.open_connections = open;
    emu_faults_free(&srv->faults);
    MP_INFO("reset", "%s", "");
    emu_response_set(resp, 200, "{\"reset\":true}", 14);
}

static int is(const struct emu_request *req, const char *method, const char *route)
{
    return strcmp(req->method, method) == 0 && emu_path_is(req->path, route);
}

void emu_control_handle(struct emu_server *srv, const struct emu_request *req,
                        struct emu_response *resp)
{
    if (is(req, "GET", "/healthz")) {
        emu_response_set(resp, 200, "{\"status\":\"ok\"}", 15);
    } else if (is(req, "GET", "/emulator/stats")) {
        emu_response_json(resp, 200, emu_stats_json(srv));
    } else if (is(req, "GET", "/emulator/messages")) {
        messages(srv, req, resp);
    } else if (emu_path_is(req->path, "/emulator/faults")) {
        faults(srv, req, resp);
    } else if (is(req, "POST", "/emulator/reset")) {
        reset(srv, resp);
    } else if (is(req, "POST", "/emulator/expire-tokens")) {
        emu_tokens_expire_all(srv->tokens, emu_unix_ms());
        emu_response_set(resp, 200, "{\"expired\":true}", 16);
    } else {
        emu_gerror_status(resp, 404, "NOT_FOUND", "Requested entity was not found.");
    }
}
