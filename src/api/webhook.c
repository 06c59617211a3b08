/* POST /webhooks/fireblocks: verify the signature over the raw body, parse the envelope, store
 * it (and the messages it makes) through the group-commit writer, answer 200 after commit. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api-int.h"
#include "mpcpush/event.h"
#include "mpcpush/fbverify.h"
#include "mpcpush/log.h"
#include "mpcpush/metrics.h"

static const enum mp_ingest_kind kind_of_route[] = {
    [MP_ROUTE_INBOX_ONLY] = MP_INGEST_EVENT,
    [MP_ROUTE_DEVICE_MESSAGE] = MP_INGEST_EVENT_DEVICE,
    [MP_ROUTE_WALLET_WAKEUP] = MP_INGEST_EVENT_WALLET,
};

static void event_free(void *arg)
{
    mp_event_free(arg);
    free(arg);
}

/* Whether a v1 event may have been stored under its legacy key (struct mp_event) by an older
 * version: only a redelivery can be, and a redelivery carries the event's original timestamp
 * (Fireblocks retries after 10 s and more, resends by hand later), so only events older than
 * FRESH_EVENT_MS pay for looking that key up too. */
#define FRESH_EVENT_MS 5000

static bool redelivery(const struct mp_event *event)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    return event->legacy_dedupe_key && event->occurred_at_ms < now_ms - FRESH_EVENT_MS;
}

/* Checks the signature and parses the event; answers and returns false on failure. */
static bool accept_event(struct mp_http_request *req, struct mp_api *api, struct mp_event *event)
{
    size_t len;
    const char *body = mp_http_body(req, &len);
    pthread_rwlock_rdlock(&api->fbverify_lock);
    bool configured = api->fbverify && mp_fbverify_configured(api->fbverify);
    enum mp_result verified =
        configured
            ? mp_fbverify_check(api->fbverify, mp_http_header(req, "Fireblocks-Signature"),
                                mp_http_header(req, "Fireblocks-Webhook-Signature"), body, len)
            : MP_ERR_UNAVAILABLE;
    pthread_rwlock_unlock(&api->fbverify_lock);
    if (!configured) {
        mp_metrics_webhook(api->metrics, "not_configured");
        mp_http_reply_error(req, 503, "webhook_not_configured",
                            "no Fireblocks public key is configured");
        return false;
    }
    if (verified && verified != MP_ERR_UNAUTHORIZED) {
        /* e.g. the key set could not be fetched: Fireblocks should retry, not give up */
        mp_metrics_webhook(api->metrics, "keys_unavailable");
        mp_http_add_header(req, "Retry-After", "60");
        mp_http_reply_error(req, 503, "keys_unavailable",
                            "the signing keys could not be loaded; try again later");
        return false;
    }
    if (verified) {
        mp_metrics_webhook(api->metrics, "bad_signature");
        MP_INFO("webhook_rejected", "request_id=%s reason=bad_signature client=%s",
                mp_http_request_id(req), mp_http_client_ip(req));
        mp_http_reply_error(req, 401, "bad_signature", "no valid Fireblocks signature");
        return false;
    }
    char error[200] = "";
    enum mp_result result = mp_event_parse(body, len, event, error, sizeof(error));
    if (result == MP_ERR_INVALID) {
        mp_metrics_webhook(api->metrics, "malformed");
        mp_http_reply_error(req, 400, "malformed_event", error[0] ? error : "malformed event");
        return false;
    }
    if (result) {
        mp_api_reply_result(req, result);
        return false;
    }
    return true;
}

static void submit(struct mp_http_request *req, struct mp_api *api)
{
    struct mp_event *event = calloc(1, sizeof(*event));
    if (!event) {
        mp_api_reply_result(req, MP_ERR_NOMEM);
        return;
    }
    if (!accept_event(req, api, event)) {
        event_free(event);
        return;
    }
    struct mp_api_pending *pending = mp_api_pending_new(req);
    if (!pending) {
        event_free(event);
        return;
    }
    pending->extra = event;
    pending->extra_free = event_free;
    size_t len;
    struct mp_ingest_job *job = &pending->job;
    job->kind = kind_of_route[event->route];
    job->dedupe_key = event->dedupe_key;
    job->legacy_key = redelivery(event) ? event->legacy_dedupe_key : NULL;
    job->api_version = event->api_version;
    job->event_type = event->event_type;
    job->raw_body = mp_http_body(req, &len); /* the request outlives the job */
    job->wallet_id = event->wallet_id;
    job->device_id = event->device_id;
    job->payload_path = event->payload_path;
    job->ttl_seconds = api->cfg->message_ttl;
    mp_api_pending_submit(api, pending);
}

static void answer(struct mp_http_request *req, struct mp_api *api, struct mp_api_pending *pending)
{
    struct mp_ingest_job *job = &pending->job;
    struct mp_event *event = pending->extra;
    if (job->result == MP_ERR_INVALID) {
        mp_metrics_webhook(api->metrics, "malformed");
        mp_http_reply_error(req, 400, "malformed_event",
                            "the event holds a value that cannot be stored");
        return;
    }
    if (job->result) {
        mp_metrics_webhook(api->metrics, "unavailable");
        mp_api_reply_result(req, job->result);
        return;
    }
    mp_metrics_webhook(api->metrics, job->duplicate ? "duplicate" : "stored");
    MP_INFO("webhook_stored", "request_id=%s type=%s dedupe=%s wallet=%s device=%s duplicate=%s",
            mp_http_request_id(req), event->event_type, event->dedupe_key,
            event->wallet_id ? event->wallet_id : "-", event->device_id ? event->device_id : "-",
            job->duplicate ? "true" : "false");
    if (job->duplicate) {
        mp_http_reply_json(req, 200, json_pack("{s:s}", "status", "duplicate"));
        return;
    }
    char id[32];
    snprintf(id, sizeof(id), "%lld", job->event_id);
    mp_http_reply_json(req, 200, json_pack("{s:s,s:s}", "status", "stored", "eventId", id));
}

void mp_api_webhook(struct mp_http_request *req, struct mp_api *api,
                    const struct mp_route_params *params)
{
    struct mp_api_pending *pending = mp_http_state(req);
    if (!pending)
        submit(req, api);
    else if (atomic_load(&pending->done))
        answer(req, api, pending);
}
