/* The libmicrohttpd adapter: limits, body buffering, suspend/resume, answers, access log. */
#include "mpcpush/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <strings.h>
#include <sys/socket.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mpcpush/buf.h"
#include "mpcpush/config.h"
#include "mpcpush/log.h"
#include "mpcpush/validate.h"

#define MAX_EXTRA_HEADERS 4

/* A connection waiting for the head of its next request (see sweep_main). */
struct watch {
    struct watch *prev, *next;
    int fd;
    struct timespec since; /* the current phase began */
    int limit;             /* seconds it may last: idle before a request line, then the head */
    bool busy;             /* the head has arrived: a request is being handled */
    bool cut;
};

struct mp_http_server {
    struct MHD_Daemon *daemon;
    struct mp_http_options options;
    int port;
    atomic_int in_flight;
    atomic_uint_fast64_t next_id;
    unsigned id_prefix;
    pthread_mutex_t watch_lock;
    struct watch *watched;
    pthread_t sweeper;
    atomic_bool stopping;
};

struct mp_http_request {
    struct mp_http_server *server;
    struct MHD_Connection *conn;
    char *path;
    const char *method; /* libmicrohttpd keeps it for the request's lifetime */
    struct mp_buf body;
    bool too_large;
    bool answered;
    bool queue_failed;
    int status;
    char request_id[40];
    char client_ip[INET6_ADDRSTRLEN];
    struct timespec started;
    void *state;
    void (*destroy)(void *);
    int extra_count;
    char *extra[MAX_EXTRA_HEADERS][2];
};

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void set_request_id(struct mp_http_request *req)
{
    const char *given = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Request-Id");
    if (given && strlen(given) < sizeof(req->request_id) && mp_valid_id(given, strlen(given))) {
        strcpy(req->request_id, given);
        return;
    }
    uint64_t n = atomic_fetch_add(&req->server->next_id, 1);
    snprintf(req->request_id, sizeof(req->request_id), "%08x%08llx", req->server->id_prefix,
             (unsigned long long)n);
}

static void set_client_ip(struct mp_http_request *req)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    strcpy(req->client_ip, "unknown");
    if (!info || !info->client_addr)
        return;
    const struct sockaddr *sa = info->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, req->client_ip,
                  sizeof(req->client_ip));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, req->client_ip,
                  sizeof(req->client_ip));
}

static struct mp_http_request *request_new(struct mp_http_server *server,
                                           struct MHD_Connection *conn, const char *url,
                                           const char *method)
{
    struct mp_http_request *req = calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->path = strdup(url);
    if (!req->path) {
        free(req);
        return NULL;
    }
    req->server = server;
    req->conn = conn;
    req->method = method;
    clock_gettime(CLOCK_MONOTONIC, &req->started);
    mp_buf_init(&req->body, (size_t)server->options.max_body_bytes);
    set_request_id(req);
    set_client_ip(req);
    atomic_fetch_add(&server->in_flight, 1);
    return req;
}

static void request_free(struct mp_http_request *req)
{
    if (req->destroy)
        req->destroy(req->state);
    for (int i = 0; i < req->extra_count; i++) {
        free(req->extra[i][0]);
        free(req->extra[i][1]);
    }
    atomic_fetch_sub(&req->server->in_flight, 1);
    mp_buf_free(&req->body);
    free(req->path);
    free(req);
}

/* ---- answers ---- */

static void queue(struct mp_http_request *req, int status, struct MHD_Response *response,
                  const char *content_type)
{
    if (req->answered) {
        MP_ERROR("http_double_answer", "request_id=%s", req->request_id);
        if (response)
            MHD_destroy_response(response);
        return;
    }
    req->answered = true;
    req->status = status;
    if (!response) {
        req->queue_failed = true;
        return;
    }
    if (content_type)
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(response, "X-Request-Id", req->request_id);
    MHD_add_response_header(response, "Cache-Control", "no-store");
    for (int i = 0; i < req->extra_count; i++)
        MHD_add_response_header(response, req->extra[i][0], req->extra[i][1]);
    if (MHD_queue_response(req->conn, (unsigned)status, response) != MHD_YES)
        req->queue_failed = true;
    MHD_destroy_response(response);
}

void mp_http_reply_text(struct mp_http_request *req, int status, const char *content_type,
                        const char *text, size_t len)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    queue(req, status, response, content_type);
}

void mp_http_reply_json(struct mp_http_request *req, int status, json_t *json)
{
    if (!json) {
        queue(req, status, MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT),
              NULL);
        return;
    }
    char *text = json_dumps(json, JSON_COMPACT);
    json_decref(json);
    if (!text) {
        mp_http_reply_error(req, 503, "out_of_memory", "the server is out of memory");
        return;
    }
    size_t len = strlen(text);
    text[len] = '\n'; /* replaces the NUL: MHD takes the length, not the terminator */
    struct MHD_Response *response =
        MHD_create_response_from_buffer(len + 1, text, MHD_RESPMEM_MUST_FREE);
    if (!response)
        free(text);
    queue(req, status, response, "application/json");
}

void mp_http_reply_error(struct mp_http_request *req, int status, const char *code,
                         const char *message)
{
    char text[1024];
    json_t *msg = json_string(message);
    char *escaped = msg ? json_dumps(msg, JSON_ENCODE_ANY) : NULL;
    int n = snprintf(text, sizeof(text), "{\"error\":{\"code\":\"%s\",\"message\":%s}}\n", code,
                     escaped ? escaped : "\"\"");
    free(escaped);
    json_decref(msg);
    mp_http_reply_text(req, status, "application/json", text,
                       n > 0 && (size_t)n < sizeof(text) ? (size_t)n : 0);
}

void mp_http_add_header(struct mp_http_request *req, const char *name, const char *value)
{
    if (req->extra_count >= MAX_EXTRA_HEADERS)
        return;
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return;
    }
    req->extra[req->extra_count][0] = n;
    req->extra[req->extra_count][1] = v;
    req->extra_count++;
}

/* ---- accessors ---- */

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
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *mp_http_query(const struct mp_http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *mp_http_body(const struct mp_http_request *req, size_t *len)
{
    *len = req->body.len;
    return req->body.data ? req->body.data : "";
}

const char *mp_http_request_id(const struct mp_http_request *req)
{
    return req->request_id;
}

const char *mp_http_client_ip(const struct mp_http_request *req)
{
    return req->client_ip;
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

void mp_http_suspend(struct mp_http_request *req)
{
    MHD_suspend_connection(req->conn);
}

void mp_http_resume(struct mp_http_request *req)
{
    MHD_resume_connection(req->conn);
}

/* ---- the time to send a request head ---- */

/* libmicrohttpd's connection timeout counts silence only, so a client sending one header byte a
 * second holds a connection (and its share of the limits) forever. Every connection is watched
 * while no request is being handled: its request line must be complete within the idle timeout
 * of the accept (or of the previous answer), the rest of the head within the request timeout of
 * the request line; otherwise it is shut down. */
static struct watch *watch_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

static void watch_set(struct mp_http_server *server, struct MHD_Connection *conn, bool busy,
                      int limit)
{
    struct watch *w = watch_of(conn);
    if (!w)
        return;
    pthread_mutex_lock(&server->watch_lock);
    w->busy = busy;
    w->limit = limit;
    clock_gettime(CLOCK_MONOTONIC, &w->since);
    pthread_mutex_unlock(&server->watch_lock);
}

/* The request line has arrived; the rest of the head must follow within the request timeout.
 * Returns the request's initial context: none. */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct mp_http_server *server = cls;
    (void)uri;
    watch_set(server, conn, false, server->options.request_timeout);
    return NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct mp_http_server *server = cls;
    struct watch *w = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!info || !(w = calloc(1, sizeof(*w))))
            return; /* not watched: the idle timeout still applies */
        w->fd = info->connect_fd;
        w->limit = server->options.idle_timeout;
        clock_gettime(CLOCK_MONOTONIC, &w->since);
        pthread_mutex_lock(&server->watch_lock);
        w->next = server->watched;
        if (w->next)
            w->next->prev = w;
        server->watched = w;
        pthread_mutex_unlock(&server->watch_lock);
        *socket_context = w;
        return;
    }
    if (!w) /* MHD_CONNECTION_NOTIFY_CLOSED, before libmicrohttpd closes the socket */
        return;
    pthread_mutex_lock(&server->watch_lock);
    if (w->prev)
        w->prev->next = w->next;
    else
        server->watched = w->next;
    if (w->next)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&server->watch_lock);
    *socket_context = NULL;
    free(w);
}

static void *sweep_main(void *arg)
{
    struct mp_http_server *server = arg;
    while (!atomic_load(&server->stopping)) {
        usleep(250000);
        pthread_mutex_lock(&server->watch_lock);
        for (struct watch *w = server->watched; w; w = w->next) {
            if (w->busy || w->cut || seconds_since(&w->since) <= w->limit)
                continue;
            w->cut = true;
            shutdown(w->fd, SHUT_RDWR); /* libmicrohttpd sees the end and closes it */
        }
        pthread_mutex_unlock(&server->watch_lock);
    }
    return NULL;
}

/* ---- malformed and ambiguous heads ---- */

struct head_check {
    int content_lengths;
    bool transfer_encoding;
    bool bad;
};

static enum MHD_Result check_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                   size_t key_size, const char *value, size_t value_size)
{
    struct head_check *c = cls;
    (void)kind;
    for (size_t i = 0; i < key_size; i++)
        c->bad |= (unsigned char)key[i] <= ' ' || key[i] == 0x7f;
    for (size_t i = 0; value && i < value_size; i++)
        c->bad |= ((unsigned char)value[i] < ' ' && value[i] != '\t') || value[i] == 0x7f;
    c->content_lengths += strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0;
    c->transfer_encoding |= strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0;
    return MHD_YES;
}

/* Whether proxies and this server could read the head differently: control characters in a
 * field, whitespace in a field name ("Content-Length : 5"), two Content-Lengths, or
 * Content-Length with Transfer-Encoding (RFC 9110 5.5, RFC 9112 5.1, 6.1, 6.3). */
static bool head_ambiguous(struct mp_http_request *req)
{
    struct head_check c = {0};
    MHD_get_connection_values_n(req->conn, MHD_HEADER_KIND, check_field, &c);
    return c.bad || c.content_lengths > 1 || (c.content_lengths && c.transfer_encoding);
}

static void reply_ambiguous(struct mp_http_request *req)
{
    mp_http_add_header(req, "Connection", "close");
    mp_http_reply_error(req, 400, "invalid_request", "malformed or ambiguous HTTP request head");
}

/* ---- libmicrohttpd callbacks ---- */

static bool declared_too_large(struct mp_http_request *req)
{
    const char *length =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return length && strtoull(length, NULL, 10) > (unsigned long long)req->body.limit;
}

static void reply_too_large(struct mp_http_request *req)
{
    char message[96];
    snprintf(message, sizeof(message), "the request body is larger than %zu bytes",
             req->body.limit);
    mp_http_reply_error(req, 413, "body_too_large", message);
}

/* First call for a request: set it up and refuse early what can be refused before the body. */
static enum MHD_Result begin(struct mp_http_server *server, struct MHD_Connection *conn,
                             const char *url, const char *method, void **con_cls)
{
    struct mp_http_request *req = request_new(server, conn, url, method);
    if (!req)
        return MHD_NO;
    *con_cls = req;
    watch_set(server, conn, true, 0);
    if (head_ambiguous(req))
        reply_ambiguous(req);
    else if (declared_too_large(req))
        reply_too_large(req);
    else if (server->options.precheck)
        server->options.precheck(req, server->options.arg);
    return req->queue_failed ? MHD_NO : MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct mp_http_server *server = cls;
    struct mp_http_request *req = *con_cls;
    if (!req)
        return begin(server, conn, url, method, con_cls);
    if (*upload_data_size) {
        if (!req->answered && !req->too_large &&
            mp_buf_append(&req->body, upload_data, *upload_data_size) != MP_OK)
            req->too_large = true;
        *upload_data_size = 0;
        /* A body trickling in forever holds a connection: cut it off. (libmicrohttpd cannot
         * answer in the middle of an upload, so the connection is simply closed.) */
        if (server->options.request_timeout > 0 &&
            seconds_since(&req->started) > server->options.request_timeout) {
            req->status = 408;
            return MHD_NO;
        }
        return MHD_YES;
    }
    if (req->answered)
        return req->queue_failed ? MHD_NO : MHD_YES;
    if (req->too_large)
        reply_too_large(req);
    else
        server->options.handler(req, server->options.arg);
    return req->queue_failed ? MHD_NO : MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    struct mp_http_request *req = *con_cls;
    if (!req)
        return;
    *con_cls = NULL;
    watch_set(req->server, conn, false, req->server->options.idle_timeout);
    enum mp_log_level level = req->status >= 500   ? MP_LOG_WARN
                              : req->status >= 400 ? MP_LOG_INFO
                                                   : MP_LOG_DEBUG;
    if (!req->answered)
        level = MP_LOG_INFO;
    char path[160];
    MP_LOG(level, "http_request", "request_id=%s method=%s path=%s status=%d ms=%.2f client=%s%s",
           req->request_id, req->method, mp_log_quote(path, sizeof(path), req->path), req->status,
           seconds_since(&req->started) * 1000.0, req->client_ip,
           code == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=true");
    request_free(req);
}

/* Decodes %XX in place, except %00: a NUL would silently cut a C string short ("d%00evil"
 * would become "d"), so it is left encoded and the id validation refuses it. */
static size_t on_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    char *out = s;
    for (const char *in = s; *in; in++) {
        int hi, lo;
        if (in[0] == '%' && (hi = mp_hex_value(in[1])) >= 0 && (lo = mp_hex_value(in[2])) >= 0 &&
            (hi || lo)) {
            *out++ = (char)(hi * 16 + lo);
            in += 2;
        } else {
            *out++ = *in;
        }
    }
    *out = '\0';
    return (size_t)(out - s);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char text[512], quoted[600];
    vsnprintf(text, sizeof(text), fmt, ap);
    text[strcspn(text, "\n")] = '\0';
    MP_DEBUG("http_server", "detail=%s", mp_log_quote(quoted, sizeof(quoted), text));
}

static enum mp_result resolve(const char *listen, struct sockaddr_storage *addr, int *family)
{
    char host[256], port[16];
    int portnum;
    if (mp_config_split_hostport(listen, host, sizeof(host), &portnum) != MP_OK)
        return MP_ERR_INVALID;
    snprintf(port, sizeof(port), "%d", portnum);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *found = NULL;
    if (getaddrinfo(host[0] ? host : NULL, port, &hints, &found) != 0 || !found)
        return MP_ERR_INVALID;
    memcpy(addr, found->ai_addr, found->ai_addrlen);
    *family = found->ai_family;
    freeaddrinfo(found);
    return MP_OK;
}

enum mp_result mp_http_start(const struct mp_http_options *options, struct mp_http_server **out)
{
    struct sockaddr_storage addr;
    int family;
    if (resolve(options->listen, &addr, &family) != MP_OK) {
        MP_ERROR("http_listen_invalid", "listen=%s", options->listen);
        return MP_ERR_INVALID;
    }
    struct mp_http_server *server = calloc(1, sizeof(*server));
    if (!server)
        return MP_ERR_NOMEM;
    server->options = *options;
    pthread_mutex_init(&server->watch_lock, NULL);
    server->id_prefix = (unsigned)getpid() ^ (unsigned)time(NULL) << 8;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | (family == AF_INET6 ? MHD_USE_IPv6 : 0);
    server->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, server, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, server,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)(options->threads > 1 ? options->threads : 0), MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)options->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)options->max_connections_per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)options->idle_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)options->connection_memory_bytes, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024U,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, server, MHD_OPTION_NOTIFY_CONNECTION,
        on_connection, server, MHD_OPTION_URI_LOG_CALLBACK, on_request_line, server,
        MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, server, MHD_OPTION_END);
    if (!server->daemon) {
        MP_ERROR("http_listen_failed", "listen=%s", options->listen);
        pthread_mutex_destroy(&server->watch_lock);
        free(server);
        return MP_ERR_IO;
    }
    if (options->request_timeout > 0 &&
        pthread_create(&server->sweeper, NULL, sweep_main, server) != 0) {
        MHD_stop_daemon(server->daemon);
        pthread_mutex_destroy(&server->watch_lock);
        free(server);
        return MP_ERR_NOMEM;
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(server->daemon, MHD_DAEMON_INFO_BIND_PORT);
    server->port = info ? info->port : 0;
    MP_INFO("http_listening", "listen=%s port=%d threads=%d", options->listen, server->port,
            options->threads);
    *out = server;
    return MP_OK;
}

int mp_http_port(const struct mp_http_server *server)
{
    return server->port;
}

/* Waits up to ms for the requests in flight to be answered; true when none is left. */
static bool drained(struct mp_http_server *server, int ms)
{
    for (int waited = 0; waited < ms && atomic_load(&server->in_flight) > 0; waited += 50)
        usleep(50000);
    return atomic_load(&server->in_flight) == 0;
}

void mp_http_stop(struct mp_http_server *server, void (*abandon)(void *arg), void *arg)
{
    if (!server)
        return;
    /* Stop accepting, then give in-flight requests a few seconds to be answered. */
    MHD_socket listener = MHD_quiesce_daemon(server->daemon);
    if (listener != MHD_INVALID_SOCKET)
        close(listener);
    bool done = drained(server, 5000);
    if (!done && abandon) {
        MP_WARN("http_stop_abandon", "in_flight=%d", atomic_load(&server->in_flight));
        abandon(arg);
        done = drained(server, 5000);
    }
    atomic_store(&server->stopping, true);
    if (server->options.request_timeout > 0)
        pthread_join(server->sweeper, NULL);
    if (!done) {
        /* libmicrohttpd aborts the process when stopped with suspended connections; the
         * process is exiting, so leave the daemon to the exit instead. */
        MP_ERROR("http_stop_stuck", "in_flight=%d", atomic_load(&server->in_flight));
        return;
    }
    MHD_stop_daemon(server->daemon);
    pthread_mutex_destroy(&server->watch_lock);
    free(server);
}
