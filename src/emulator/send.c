/* POST /v1/projects/{project}/messages:send: bearer token, project, message validation, the
 * scripted faults, then the answer and the record, counting every outcome. */
#include "send-int.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gerror-int.h"
#include "jsonstr-int.h"
#include "message-int.h"
#include "record-int.h"
#include "tokens-int.h"

static void reject(struct emu_server *srv, enum emu_err err)
{
    srv->stats.rejected++;
    srv->stats.by_error[err]++;
}

/* Checks "Authorization: Bearer <token>"; sets *account, or answers 401 and returns 0. */
static int authenticate(struct emu_server *srv, const struct emu_request *req, size_t *account,
                        struct emu_response *resp)
{
    const char *auth = req->authorization;
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) {
        emu_gerror_unauthenticated(resp, "CREDENTIALS_MISSING");
        return 0;
    }
    const char *token = auth + 7;
    while (*token == ' ')
        token++;
    size_t len = strlen(token);
    while (len && isspace((unsigned char)token[len - 1]))
        len--;
    switch (emu_tokens_check(srv->tokens, token, len, emu_unix_ms(), account)) {
    case EMU_TOKEN_VALID:
        return 1;
    case EMU_TOKEN_EXPIRED:
        emu_gerror_unauthenticated(resp, "ACCESS_TOKEN_EXPIRED");
        return 0;
    case EMU_TOKEN_UNKNOWN:
        break;
    }
    emu_gerror_unauthenticated(resp, len ? "ACCESS_TOKEN_TYPE_UNSUPPORTED" : "CREDENTIALS_MISSING");
    return 0;
}

/* A message name like Google's: "projects/p/messages/0:<16 digits>%<16 hex>". */
static void message_name(struct emu_server *srv, const char *project, char *out, size_t size)
{
    uint64_t id = (uint64_t)emu_unix_ms() * 1000u;
    if (id <= srv->last_message_id)
        id = srv->last_message_id + 1;
    srv->last_message_id = id;
    snprintf(out, size, "projects/%s/messages/0:%llu%%%016llx", project, (unsigned long long)id,
             (unsigned long long)srv->message_id_salt);
}

static void accept_message(struct emu_server *srv, const char *project, const struct emu_send *send,
                           struct emu_response *resp)
{
    char name[512];
    message_name(srv, project, name, sizeof(name));
    int record = !send->validate_only && !srv->opts->no_records;
    if (record &&
        emu_record_append(srv->record, emu_unix_ms(), name, send->token, send->message_json)) {
        emu_gerror_status(resp, 500, "INTERNAL", "The emulator could not record the message.");
        reject(srv, EMU_ERR_INTERNAL);
        return;
    }
    resp->status = 200;
    if (mp_buf_puts(&resp->body, "{\"name\":") || emu_json_append_string(&resp->body, name) ||
        mp_buf_puts(&resp->body, "}"))
        emu_response_set(resp, 503, NULL, 0);
    srv->stats.accepted++;
    srv->stats.validate_only += send->validate_only != 0;
    srv->stats.recorded += record != 0;
}

static double rand01(void *ctx)
{
    return emu_random(ctx);
}

/* Applies the fault rules for the message's token; returns 1 when the message goes through. */
static int apply_faults(struct emu_server *srv, const struct emu_send *send, const char *project,
                        struct emu_response *resp)
{
    struct emu_fault_hit hit;
    emu_faults_match(&srv->faults, send->token, rand01, srv, &hit);
    if (hit.delay_ms) {
        resp->delay_ms += hit.delay_ms;
        srv->stats.slowed++;
    }
    if (hit.error == EMU_ERR_NONE)
        return 1;
    if (hit.error == EMU_ERR_DROP || hit.error == EMU_ERR_GOAWAY)
        resp->action = hit.error == EMU_ERR_DROP ? EMU_DROP : EMU_GOAWAY;
    else
        emu_gerror_fcm(resp, hit.error, project);
    resp->retry_after = hit.retry_after;
    reject(srv, hit.error);
    return 0;
}

void emu_send_handle(struct emu_server *srv, const struct emu_request *req, const char *project,
                     struct emu_response *resp)
{
    size_t account;
    struct emu_send send;
    struct emu_violation v;
    srv->stats.send_requests++;
    memset(&send, 0, sizeof(send));
    if (!authenticate(srv, req, &account, resp)) {
        reject(srv, EMU_ERR_UNAUTHENTICATED);
        goto out;
    }
    if (strcmp(project, srv->accounts[account].project_id) != 0) {
        emu_gerror_fcm(resp, EMU_ERR_PERMISSION_DENIED, project);
        reject(srv, EMU_ERR_PERMISSION_DENIED);
        goto out;
    }
    int valid = emu_message_parse(req->body, req->body_len, &send, &v);
    if (valid <= 0) {
        if (valid == 0)
            emu_gerror_invalid(resp, v.message, v.field, v.description);
        else
            emu_response_set(resp, 503, NULL, 0);
        reject(srv, valid == 0 ? EMU_ERR_INVALID_ARGUMENT : EMU_ERR_UNAVAILABLE);
        goto out;
    }
    if (apply_faults(srv, &send, project, resp))
        accept_message(srv, project, &send, resp);
out:
    emu_send_free(&send);
}
