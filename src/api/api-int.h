/* Shared by the API handlers: route parameters and small reply helpers. */
#ifndef MPCPUSH_API_INT_H
#define MPCPUSH_API_INT_H

#include <jansson.h>

#include "mpcpush/api.h"
#include "mpcpush/result.h"

#define MP_MAX_SEGMENTS 8

/* The parameters a route captured from the path ("*" segments), in order. */
struct mp_route_params {
    const char *wallet_id;
    const char *device_id;
    char storage[MP_MAX_SEGMENTS][160];
};

typedef void (*mp_api_handler)(struct mp_http_request *req, struct mp_api *api,
                               const struct mp_route_params *params);

/* Handlers, one per route. */
void mp_api_healthz(struct mp_http_request *req, struct mp_api *api,
                    const struct mp_route_params *params);
void mp_api_readyz(struct mp_http_request *req, struct mp_api *api,
                   const struct mp_route_params *params);
void mp_api_metrics(struct mp_http_request *req, struct mp_api *api,
                    const struct mp_route_params *params);
void mp_api_webhook(struct mp_http_request *req, struct mp_api *api,
                    const struct mp_route_params *params);
void mp_api_device_put(struct mp_http_request *req, struct mp_api *api,
                       const struct mp_route_params *params);
void mp_api_device_get(struct mp_http_request *req, struct mp_api *api,
                       const struct mp_route_params *params);
void mp_api_device_delete(struct mp_http_request *req, struct mp_api *api,
                          const struct mp_route_params *params);
void mp_api_messages_get(struct mp_http_request *req, struct mp_api *api,
                         const struct mp_route_params *params);
void mp_api_messages_ack(struct mp_http_request *req, struct mp_api *api,
                         const struct mp_route_params *params);
void mp_api_message_post(struct mp_http_request *req, struct mp_api *api,
                         const struct mp_route_params *params);
void mp_api_wallet_message_post(struct mp_http_request *req, struct mp_api *api,
                                const struct mp_route_params *params);

/* Parses the body as a JSON object; on failure answers 400 and returns NULL. */
json_t *mp_api_body_object(struct mp_http_request *req);

/* Answers the error that matches a store result (503 for database trouble, ...). */
void mp_api_reply_result(struct mp_http_request *req, enum mp_result result);

/* Checks the wallet and device ids of the path; answers 400 and returns false when bad. */
bool mp_api_check_ids(struct mp_http_request *req, const struct mp_route_params *params);

/* Borrows a pooled connection; answers 503 and returns NULL when there is none. */
PGconn *mp_api_db(struct mp_http_request *req, struct mp_api *api);

/* Runs an ingest job for a suspended request; see messages.c and webhook.c. The job's
 * string inputs must stay valid until the request ends (keep them in the state). */
struct mp_api_pending {
    struct mp_ingest_job job;
    struct mp_http_request *req;
    _Atomic int done;
    char *owned[4]; /* strings the job points into */
    void *extra;    /* more state of the handler's, freed with extra_free */
    void (*extra_free)(void *);
};
struct mp_api_pending *mp_api_pending_new(struct mp_http_request *req);
void mp_api_pending_submit(struct mp_api *api, struct mp_api_pending *pending);

#endif
