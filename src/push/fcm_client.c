/* The FCM HTTP v1 client: up to `connections` HTTP/2 connections (fcm_conn.c: nghttp2 over
 * OpenSSL, or h2c with prior knowledge for loopback http:// URLs) kept across batches and
 * reopened when they close, each carrying up to min(100, the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS) requests at once; one thread drives them all with poll().
 * A batch runs in passes: the first sends everything, spread over the connections; requests
 * that got no HTTP answer at all (connect or TLS failure, reset, GOAWAY above the last stream
 * id, timeout, dropped connection) are sent once more in a second pass, on new connections. */
#include "mpcpush/validate.h"
#include "mpcpush/fcm.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fcm-int.h"
#include "mpcpush/log.h"
#include "push-int.h"

#define MAX_CONNS 64
#define POLL_MS   1000
#define NHEADERS  7

struct pass;

struct mp_fcm_client {
    struct fcm_target target;
    struct fcm_conn conns[MAX_CONNS];
    int nconns;
    struct fcm_xfer *xfers; /* window slots: nconns * FCM_STREAMS */
    size_t window;
    size_t *free_slots; /* stack of idle slot numbers */
    size_t nfree;
    struct pass *pass; /* the pass running, for the streams' end callback */
};

/* One pass over some of a batch's requests. */
struct pass {
    struct mp_fcm_client *c;
    nghttp2_nv nv[NHEADERS]; /* the request headers; content-length is set per request */
    const struct mp_fcm_request *reqs;
    struct mp_fcm_result *results;
    const size_t *todo; /* request indexes to send */
    size_t ntodo, next, running;
    bool last;      /* no retry after this pass */
    size_t *failed; /* no-answer requests to retry (first pass only) */
    size_t nfailed;
    long long started_ms;
    long long progress_ms; /* when a request was last submitted or ended */
};

/* ---- construction ---- */

static bool valid_project(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    if (n == 0 || n > 128)
        return false;
    return strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

/* host, port, :authority and :path from the base URL (already checked by mp_push_check_url). */
static enum mp_result parse_target(struct fcm_target *t, const char *base, const char *project)
{
    enum mp_result result = MP_ERR_INVALID;
    char *host = NULL, *port = NULL, *path = NULL;
    CURLU *u = curl_url();
    if (!u)
        return MP_ERR_NOMEM;
    if (curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
        goto out;
    bool explicit_port = curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK;
    if (!explicit_port && curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
        goto out;
    size_t hlen = strlen(host), plen = strlen(path);
    while (plen && path[plen - 1] == '/')
        plen--;
    size_t asize = hlen + strlen(port) + 2, psize = plen + strlen(project) + 40;
    bool bracketed = hlen > 2 && host[0] == '[';
    t->host = bracketed ? strndup(host + 1, hlen - 2) : strdup(host);
    t->port = strdup(port);
    t->authority = malloc(asize);
    t->path = malloc(psize);
    result = MP_ERR_NOMEM;
    if (!t->host || !t->port || !t->authority || !t->path)
        goto out;
    snprintf(t->authority, asize, "%s%s%s", host, explicit_port ? ":" : "",
             explicit_port ? port : "");
    snprintf(t->path, psize, "%.*s/v1/projects/%s/messages:send", (int)plen, path, project);
    result = MP_OK;
out:
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return result;
}

/* TLS 1.2+, the peer's certificate checked against the system roots and ca_file, ALPN h2. */
static enum mp_result make_tls(struct fcm_target *t, const char *ca_file)
{
    static const unsigned char alpn[] = "\x02h2";
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    t->bio_method = fcm_bio_method_new();
    t->ssl_ctx = ctx;
    if (!ctx || !t->bio_method)
        return MP_ERR_NOMEM;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0)
        return MP_ERR_NOMEM;
    SSL_CTX_set_default_verify_paths(ctx); /* the system's roots, wherever OpenSSL keeps them */
    int loaded = SSL_CTX_load_verify_locations(ctx, ca_file, MP_SYSTEM_CA_PATH);
    ERR_clear_error();
    if (ca_file && loaded != 1) {
        MP_ERROR("fcm_ca_file_unreadable", "file=%s", ca_file);
        return MP_ERR_CRYPTO;
    }
    return MP_OK;
}

static void on_stream_end(void *arg, struct fcm_xfer *x, const char *why);

static enum mp_result client_init(struct mp_fcm_client *c, const char *base_url,
                                  const char *project_id, const char *ca_file)
{
    enum mp_result result = parse_target(&c->target, base_url, project_id);
    if (!result && c->target.tls)
        result = make_tls(&c->target, ca_file);
    if (result)
        return result;
    for (int i = 0; i < MAX_CONNS; i++)
        fcm_conn_init(&c->conns[i], &c->target, on_stream_end, c);
    c->window = (size_t)c->nconns * FCM_STREAMS;
    c->xfers = calloc(c->window, sizeof(*c->xfers));
    c->free_slots = calloc(c->window, sizeof(*c->free_slots));
    if (!c->xfers || !c->free_slots)
        return MP_ERR_NOMEM;
    for (size_t i = 0; i < c->window; i++) {
        mp_buf_init(&c->xfers[i].resp, FCM_RESPONSE_MAX);
        c->free_slots[c->nfree++] = c->window - 1 - i;
    }
    return MP_OK;
}

enum mp_result mp_fcm_client_new(const char *base_url, const char *project_id, const char *ca_file,
                                 int connections, int timeout_seconds, struct mp_fcm_client **out)
{
    bool plain;
    if (!base_url || mp_push_check_url(base_url, &plain) != MP_OK || !valid_project(project_id) ||
        connections < 1 || connections > MAX_CONNS || timeout_seconds < 1)
        return MP_ERR_INVALID;
    struct mp_fcm_client *c = calloc(1, sizeof(*c));
    if (!c)
        return MP_ERR_NOMEM;
    c->target.tls = !plain;
    c->target.timeout_ms = (long long)timeout_seconds * 1000;
    c->nconns = connections;
    enum mp_result result = client_init(c, base_url, project_id, ca_file);
    if (result) {
        mp_fcm_client_free(c);
        return result;
    }
    *out = c;
    return MP_OK;
}

void mp_fcm_client_free(struct mp_fcm_client *c)
{
    if (!c)
        return;
    for (int i = 0; c->conns[0].target && i < MAX_CONNS; i++) {
        fcm_conn_close(&c->conns[i], NULL);
        mp_buf_free(&c->conns[i].out);
    }
    for (size_t i = 0; c->xfers && i < c->window; i++)
        mp_buf_free(&c->xfers[i].resp);
    free(c->xfers);
    free(c->free_slots);
    SSL_CTX_free(c->target.ssl_ctx);
    BIO_meth_free(c->target.bio_method);
    free(c->target.host);
    free(c->target.port);
    free(c->target.authority);
    free(c->target.path);
    free(c);
}

/* ---- results ---- */

/* Sets a no-answer result, keeping the time and attempts counted so far. */
static void network_result(struct mp_fcm_result *r, const char *why)
{
    double seconds = r->seconds;
    int attempts = r->attempts;
    memset(r, 0, sizeof(*r));
    r->seconds = seconds;
    r->attempts = attempts;
    r->outcome = MP_FCM_NETWORK;
    r->retry_after = -1;
    snprintf(r->detail, sizeof(r->detail), "%s", why);
}

/* A request's time and attempts over all its attempts: taken, with the attempt that started
 * at started_ms, before that attempt's result overwrites the request's, put back after. */
struct totals {
    double seconds;
    int attempts;
};

static struct totals totals_with(const struct mp_fcm_result *r, long long started_ms)
{
    return (struct totals){r->seconds + (double)(mp_push_now_ms() - started_ms) / 1000.0,
                           r->attempts + 1};
}

static void keep_totals(struct mp_fcm_result *r, struct totals t)
{
    r->seconds = t.seconds;
    r->attempts = t.attempts;
}

/* An attempt of request i that got no HTTP answer: queued for the retry pass when allowed
 * (the result stands until the retry answers), else final. */
static void no_answer(struct pass *p, size_t i, long long started_ms, const char *why, bool retry)
{
    struct mp_fcm_result *r = &p->results[i];
    struct totals totals = totals_with(r, started_ms);
    network_result(r, why);
    keep_totals(r, totals);
    if (retry && !p->last)
        p->failed[p->nfailed++] = i;
}

static void release(struct pass *p, struct fcm_xfer *x)
{
    struct mp_fcm_client *c = p->c;
    c->free_slots[c->nfree++] = (size_t)(x - c->xfers);
    p->running--;
}

/* A stream ended (fcm_conn.c): classify its answer, or count a no-answer attempt. */
static void on_stream_end(void *arg, struct fcm_xfer *x, const char *why)
{
    struct pass *p = ((struct mp_fcm_client *)arg)->pass;
    p->progress_ms = mp_push_now_ms();
    if (x->status == 0) {
        no_answer(p, x->index, x->started_ms, why ? why : "no answer", true);
    } else {
        struct mp_fcm_result *r = &p->results[x->index];
        struct totals totals = totals_with(r, x->started_ms);
        mp_fcm_classify(x->status, x->resp.data, x->resp.len,
                        x->retry_after[0] ? x->retry_after : NULL, r);
        keep_totals(r, totals);
    }
    release(p, x);
}

/* ---- one pass ---- */

static bool may_open(const struct fcm_conn *conn)
{
    /* once per pass, and again only after the last connection got answers: a server that
     * drops every connection cannot keep the pass reconnecting forever */
    return conn->opens == 0 || conn->answers > 0;
}

/* Opens closed connections while the requests waiting exceed what the others will take. */
static void open_needed(struct pass *p, long long now)
{
    struct mp_fcm_client *c = p->c;
    size_t want = p->ntodo - p->next, expected = 0;
    for (int k = 0; k < c->nconns; k++) {
        struct fcm_conn *conn = &c->conns[k];
        if (conn->state == FCM_CONN_READY)
            expected += fcm_conn_room(conn);
        else if (conn->state != FCM_CONN_CLOSED && conn->state != FCM_CONN_DRAINING)
            expected += FCM_STREAMS;
    }
    for (int k = 0; k < c->nconns && expected < want; k++) {
        struct fcm_conn *conn = &c->conns[k];
        if (conn->state != FCM_CONN_CLOSED || !may_open(conn))
            continue;
        /* The others would fail alike, and with a dead resolver each lookup blocks for
         * seconds: one failure per turn is enough. */
        if (fcm_conn_open(conn, now) != MP_OK)
            break;
        expected += FCM_STREAMS;
    }
}

/* Hands request i to conn; when that fails at once, the request gets its final result. */
static void submit_one(struct pass *p, struct fcm_conn *conn, size_t i, long long now)
{
    struct mp_fcm_client *c = p->c;
    struct fcm_xfer *x = &c->xfers[c->free_slots[--c->nfree]];
    char length[24];
    nghttp2_nv nv[NHEADERS];
    memcpy(nv, p->nv, sizeof(nv));
    nv[NHEADERS - 1].value = (uint8_t *)length;
    nv[NHEADERS - 1].valuelen = (size_t)snprintf(length, sizeof(length), "%zu", p->reqs[i].len);
    x->index = i;
    x->body = p->reqs[i].body;
    x->len = p->reqs[i].len;
    x->started_ms = now;
    p->progress_ms = now;
    if (fcm_conn_submit(conn, x, nv, NHEADERS) != MP_OK) {
        c->nfree++;
        no_answer(p, i, now, "cannot start the request", false);
        return;
    }
    p->running++;
}

/* Spreads the waiting requests over the connections that have room, one at a time each. */
static void submit_waiting(struct pass *p, long long now)
{
    struct mp_fcm_client *c = p->c;
    bool progress = true;
    while (p->next < p->ntodo && progress) {
        progress = false;
        for (int k = 0; k < c->nconns && p->next < p->ntodo; k++) {
            if (fcm_conn_room(&c->conns[k]) == 0)
                continue;
            submit_one(p, &c->conns[k], p->todo[p->next++], now);
            progress = true;
        }
    }
}

/* When no connection is open or may be opened, the waiting requests fail with the reason the
 * last connection gave. */
static void fail_if_stuck(struct pass *p)
{
    struct mp_fcm_client *c = p->c;
    const char *why = "no connection to FCM";
    for (int k = 0; k < c->nconns; k++) {
        if (c->conns[k].state != FCM_CONN_CLOSED || may_open(&c->conns[k]))
            return;
        if (c->conns[k].error[0])
            why = c->conns[k].error;
    }
    for (; p->next < p->ntodo; p->next++)
        no_answer(p, p->todo[p->next], p->started_ms, why, true);
}

/* Requests still waiting for a stream when none was submitted or ended for a whole timeout
 * (say, a server allowing 0 streams) get no-answer results. */
static long long expire_waiting(struct pass *p, long long now, long long limit, const char *why)
{
    if (p->next == p->ntodo)
        return now + POLL_MS;
    if (now - p->progress_ms < limit)
        return p->progress_ms + limit;
    for (; p->next < p->ntodo; p->next++)
        no_answer(p, p->todo[p->next], p->started_ms, why, true);
    return now + POLL_MS;
}

/* Ends the attempts past the timeout and the connections not ready in time; returns how long
 * poll may wait for the next deadline. */
static int expire(struct pass *p, long long now)
{
    struct mp_fcm_client *c = p->c;
    long long limit = c->target.timeout_ms;
    char why[64];
    snprintf(why, sizeof(why), "timed out after %lld s", limit / 1000);
    long long next = expire_waiting(p, now, limit, why);
    for (int k = 0; k < c->nconns; k++) {
        struct fcm_conn *conn = &c->conns[k];
        if (conn->state != FCM_CONN_CLOSED && conn->state < FCM_CONN_READY) {
            long long look = fcm_conn_connecting(conn, now);
            if (look < next)
                next = look;
            if (conn->state == FCM_CONN_CLOSED)
                continue; /* no address left */
            if (now >= conn->deadline_ms)
                fcm_conn_close(conn, "connecting to FCM timed out");
            else if (conn->deadline_ms < next)
                next = conn->deadline_ms;
        }
        for (struct fcm_xfer *x = conn->xfers, *after; x; x = after) {
            after = x->next;
            if (now - x->started_ms < limit) {
                if (x->started_ms + limit < next)
                    next = x->started_ms + limit;
                continue;
            }
            fcm_conn_cancel(conn, x);
            no_answer(p, x->index, x->started_ms, why, true);
            release(p, x);
        }
    }
    return (int)(next > now ? next - now : 0);
}

/* Waits for the connections (timeout_ms, 0 for a look) and lets each make progress. */
static enum mp_result poll_conns(struct mp_fcm_client *c, int timeout_ms)
{
    struct pollfd pfd[MAX_CONNS];
    int which[MAX_CONNS], n = 0;
    for (int k = 0; k < c->nconns; k++) {
        short events = fcm_conn_events(&c->conns[k]);
        if (!events)
            continue;
        pfd[n] = (struct pollfd){.fd = c->conns[k].fd, .events = events};
        which[n++] = k;
    }
    if (n == 0)
        return MP_OK;
    int rc = poll(pfd, (nfds_t)n, timeout_ms);
    if (rc < 0 && errno != EINTR) {
        MP_ERROR("fcm_poll_failed", "error=\"%s\"", strerror(errno));
        return MP_ERR_INTERNAL;
    }
    for (int i = 0; i < n && rc > 0; i++)
        if (pfd[i].revents)
            fcm_conn_io(&c->conns[which[i]], pfd[i].revents);
    return MP_OK;
}

/* After poll itself failed: every request of the pass not yet answered gets a final result. */
static void abandon(struct pass *p)
{
    struct mp_fcm_client *c = p->c;
    p->last = true;
    for (int k = 0; k < c->nconns; k++)
        fcm_conn_close(&c->conns[k], "the client failed (poll)");
    for (; p->next < p->ntodo; p->next++)
        no_answer(p, p->todo[p->next], p->started_ms, "the client failed (poll)", false);
}

static enum mp_result run_pass(struct pass *p)
{
    struct mp_fcm_client *c = p->c;
    enum mp_result result = MP_OK;
    c->pass = p;
    p->started_ms = p->progress_ms = mp_push_now_ms();
    for (int k = 0; k < c->nconns; k++)
        c->conns[k].opens = 0;
    result = poll_conns(c, 0); /* notice connections the server closed since the last batch */
    while (!result && (p->next < p->ntodo || p->running > 0)) {
        long long now = mp_push_now_ms();
        open_needed(p, now);
        submit_waiting(p, now);
        if (p->next < p->ntodo)
            fail_if_stuck(p);
        for (int k = 0; k < c->nconns; k++)
            fcm_conn_flush(&c->conns[k]);
        int wait = expire(p, now);
        if (p->next < p->ntodo || p->running > 0)
            result = poll_conns(c, wait);
    }
    if (result)
        abandon(p);
    c->pass = NULL;
    return result;
}

/* ---- batches ---- */

static bool valid_batch(const char *access_token, const struct mp_fcm_request *reqs, size_t n,
                        const struct mp_fcm_result *results)
{
    if (!access_token || !access_token[0] || (n && (!reqs || !results)))
        return false;
    for (const unsigned char *t = (const unsigned char *)access_token; *t; t++)
        if (*t <= ' ' || *t >= 0x7f)
            return false;
    for (size_t i = 0; i < n; i++)
        if (!reqs[i].body || reqs[i].len == 0)
            return false;
    return true;
}

static nghttp2_nv header(const char *name, const char *value, uint8_t flags)
{
    return (nghttp2_nv){.name = (uint8_t *)name,
                        .value = (uint8_t *)value,
                        .namelen = strlen(name),
                        .valuelen = strlen(value),
                        .flags = flags};
}

/* The headers every request carries; authorization points into auth (never indexed by HPACK,
 * never logged). */
static void make_headers(struct pass *p, const char *auth)
{
    const struct fcm_target *t = &p->c->target;
    p->nv[0] = header(":method", "POST", NGHTTP2_NV_FLAG_NONE);
    p->nv[1] = header(":scheme", t->tls ? "https" : "http", NGHTTP2_NV_FLAG_NONE);
    p->nv[2] = header(":authority", t->authority, NGHTTP2_NV_FLAG_NONE);
    p->nv[3] = header(":path", t->path, NGHTTP2_NV_FLAG_NONE);
    p->nv[4] = header("authorization", auth, NGHTTP2_NV_FLAG_NO_INDEX);
    p->nv[5] = header("content-type", "application/json", NGHTTP2_NV_FLAG_NONE);
    p->nv[6] = header("content-length", "", NGHTTP2_NV_FLAG_NONE); /* per request */
}

/* Sends the requests that got no answer once more, on new connections. */
static enum mp_result retry_pass(struct pass *first)
{
    struct mp_fcm_client *c = first->c;
    struct mp_fcm_result *r0 = &first->results[first->failed[0]];
    char detail[sizeof(r0->detail) + 2];
    MP_WARN("fcm_retry", "requests=%zu first_error=%s", first->nfailed,
            mp_log_quote(detail, sizeof(detail), r0->detail));
    for (int k = 0; k < c->nconns; k++)
        fcm_conn_close(&c->conns[k], NULL);
    struct pass p = *first;
    p.todo = first->failed;
    p.ntodo = first->nfailed;
    p.next = p.running = 0;
    p.failed = NULL;
    p.nfailed = 0;
    p.last = true;
    return run_pass(&p);
}

enum mp_result mp_fcm_send_batch(struct mp_fcm_client *c, const char *access_token,
                                 const struct mp_fcm_request *reqs, size_t n,
                                 struct mp_fcm_result *results)
{
    if (!c || !valid_batch(access_token, reqs, n, results))
        return MP_ERR_INVALID;
    if (n == 0)
        return MP_OK;
    enum mp_result result = MP_ERR_NOMEM;
    size_t auth_size = strlen(access_token) + 8;
    size_t *todo = malloc(n * sizeof(*todo));
    size_t *failed = malloc(n * sizeof(*failed));
    char *auth = malloc(auth_size);
    if (!todo || !failed || !auth)
        goto out;
    snprintf(auth, auth_size, "Bearer %s", access_token);
    memset(results, 0, n * sizeof(*results));
    for (size_t i = 0; i < n; i++)
        todo[i] = i;
    struct pass p = {.c = c, .reqs = reqs, .results = results, .todo = todo, .ntodo = n};
    p.failed = failed;
    make_headers(&p, auth);
    result = run_pass(&p);
    if (!result && p.nfailed)
        result = retry_pass(&p);
out:
    if (auth)
        OPENSSL_cleanse(auth, auth_size);
    free(auth);
    free(todo);
    free(failed);
    return result;
}
