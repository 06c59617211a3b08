/* The HTTP server: a thin adapter over libmicrohttpd. It enforces the limits (connections,
 * body size, header memory, idle time), buffers each request body up to its limit, and hands a
 * complete request to one handler function; a handler answers at once, or suspends the
 * request, hands it to another thread, and resumes it when that thread is done. */
#ifndef MPCPUSH_HTTP_H
#define MPCPUSH_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "mpcpush/result.h"

struct mp_http_request;
struct mp_http_server;

/* Called once the whole request has arrived, and again after every mp_http_resume.
 * It must answer (mp_http_reply*) or suspend before returning. */
typedef void (*mp_http_handler)(struct mp_http_request *req, void *arg);

struct mp_http_options {
    const char *listen; /* host:port */
    int threads;
    int max_body_bytes;
    int connection_memory_bytes;
    int max_connections;
    int max_connections_per_ip;
    int idle_timeout;
    int request_timeout; /* seconds to receive a whole body */
    /* Quick checks before the body is read: return an HTTP status to refuse the request
     * (after answering it with mp_http_reply*), or 0 to go on. May be NULL. */
    int (*precheck)(struct mp_http_request *req, void *arg);
    mp_http_handler handler;
    void *arg;
};

/* Starts listening and serving in background threads. */
enum mp_result mp_http_start(const struct mp_http_options *options,
                             struct mp_http_server **out) MP_MUSTCHECK;

/* The port actually bound (useful with port 0). */
int mp_http_port(const struct mp_http_server *server);

/* Stops accepting, finishes what is in flight, frees. Requests still in flight after 5 s
 * (suspended, waiting for work elsewhere) are given up on: abandon(arg) is called, which must
 * make that work answer them soon (with an error). abandon may be NULL. Accepts NULL. */
void mp_http_stop(struct mp_http_server *server, void (*abandon)(void *arg), void *arg);

/* ---- the request ---- */
const char *mp_http_method(const struct mp_http_request *req);
const char *mp_http_path(const struct mp_http_request *req);
const char *mp_http_header(const struct mp_http_request *req, const char *name);
const char *mp_http_query(const struct mp_http_request *req, const char *name);
const char *mp_http_body(const struct mp_http_request *req, size_t *len);
const char *mp_http_request_id(const struct mp_http_request *req);
/* The client's IP address as text. */
const char *mp_http_client_ip(const struct mp_http_request *req);

/* Handler state kept across suspend/resume; destroy runs when the request ends. */
void mp_http_set_state(struct mp_http_request *req, void *state, void (*destroy)(void *));
void *mp_http_state(const struct mp_http_request *req);

/* ---- answering ---- */
/* Answers with a JSON document (takes the reference) or an empty body (json NULL). */
void mp_http_reply_json(struct mp_http_request *req, int status, json_t *json);
/* Answers {"error":{"code":code,"message":message}}. */
void mp_http_reply_error(struct mp_http_request *req, int status, const char *code,
                         const char *message);
/* Answers with a body of the given content type (copied). */
void mp_http_reply_text(struct mp_http_request *req, int status, const char *content_type,
                        const char *text, size_t len);
/* Adds a header to the answer about to be made (e.g. Allow, Retry-After). */
void mp_http_add_header(struct mp_http_request *req, const char *name, const char *value);

/* Suspends the request; the handler returns and another thread calls mp_http_resume later,
 * after which the handler runs again. Call before handing the request over. */
void mp_http_suspend(struct mp_http_request *req);
void mp_http_resume(struct mp_http_request *req);

#endif
