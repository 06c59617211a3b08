/* The FCM HTTP v1 client: one curl multi handle kept across batches, so that the HTTP/2
 * connections (at most `connections`, about 100 streams each) are reused; easy handles are
 * recycled through a free list. A batch runs in passes: the first sends everything; requests
 * that got no HTTP answer at all (reset, GOAWAY, timeout, connect failure) are sent once more
 * in a second pass, on new connections. */
#include "mpcpush/validate.h"
#include "mpcpush/fcm.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mpcpush/log.h"
#include "push-int.h"

#define RESPONSE_MAX  65536
#define STREAMS       100 /* per HTTP/2 connection, FCM's SETTINGS limit */
#define MAX_CONNS     64
#define POLL_MS       1000
#define RETRY_AFTER_N 64

struct xfer {
    CURL *easy; /* created on first use */
    struct mp_buf resp;
    char retry_after[RETRY_AFTER_N];
    char errbuf[CURL_ERROR_SIZE];
    size_t index; /* into the batch's requests and results */
    long long started_ms;
    bool busy;
};

struct mp_fcm_client {
    CURLM *multi;
    char *url;
    char *ca_file;
    bool plain; /* http:// (HTTP/1.1): one request per connection */
    int connections;
    long timeout_ms;
    struct xfer *xfers; /* window slots */
    size_t window;      /* requests in flight at most */
    size_t *free_slots; /* stack of idle slot numbers */
    size_t nfree;
};

/* One pass over some of a batch's requests. */
struct pass {
    struct mp_fcm_client *c;
    struct curl_slist *headers;
    const struct mp_fcm_request *reqs;
    struct mp_fcm_result *results;
    const size_t *todo; /* request indexes to send */
    size_t ntodo, next, running;
    bool last;      /* no retry after this pass */
    size_t *failed; /* network failures to retry (first pass only) */
    size_t nfailed;
};

static CURLM *new_multi(int connections)
{
    CURLM *multi = curl_multi_init();
    if (!multi)
        return NULL;
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)connections);
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)connections);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)connections);
    curl_multi_setopt(multi, CURLMOPT_MAX_CONCURRENT_STREAMS, (long)STREAMS);
    return multi;
}

static bool valid_project(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    if (n == 0 || n > 128)
        return false;
    return strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

static enum mp_result make_url(struct mp_fcm_client *c, const char *base, const char *project)
{
    size_t blen = strlen(base);
    while (blen && base[blen - 1] == '/')
        blen--;
    size_t size = blen + strlen(project) + 40;
    c->url = malloc(size);
    if (!c->url)
        return MP_ERR_NOMEM;
    snprintf(c->url, size, "%.*s/v1/projects/%s/messages:send", (int)blen, base, project);
    return MP_OK;
}

static enum mp_result client_init(struct mp_fcm_client *c, const char *base_url,
                                  const char *project_id, const char *ca_file)
{
    if (make_url(c, base_url, project_id))
        return MP_ERR_NOMEM;
    if (ca_file && !(c->ca_file = strdup(ca_file)))
        return MP_ERR_NOMEM;
    c->window = c->plain ? (size_t)c->connections : (size_t)c->connections * STREAMS;
    c->xfers = calloc(c->window, sizeof(*c->xfers));
    c->free_slots = calloc(c->window, sizeof(*c->free_slots));
    c->multi = new_multi(c->connections);
    if (!c->xfers || !c->free_slots || !c->multi)
        return MP_ERR_NOMEM;
    for (size_t i = 0; i < c->window; i++) {
        mp_buf_init(&c->xfers[i].resp, RESPONSE_MAX);
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
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return MP_ERR_INTERNAL;
    struct mp_fcm_client *c = calloc(1, sizeof(*c));
    if (!c) {
        curl_global_cleanup();
        return MP_ERR_NOMEM;
    }
    c->plain = plain;
    c->connections = connections;
    c->timeout_ms = (long)timeout_seconds * 1000;
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
    for (size_t i = 0; c->xfers && i < c->window; i++) {
        if (c->xfers[i].easy && c->xfers[i].busy)
            curl_multi_remove_handle(c->multi, c->xfers[i].easy);
        curl_easy_cleanup(c->xfers[i].easy);
        mp_buf_free(&c->xfers[i].resp);
    }
    curl_multi_cleanup(c->multi);
    free(c->xfers);
    free(c->free_slots);
    free(c->url);
    free(c->ca_file);
    free(c);
    curl_global_cleanup();
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct xfer *x = userdata;
    size_t n = size * nmemb;
    return mp_buf_append(&x->resp, ptr, n) == MP_OK ? n : 0; /* too big: abort */
}

static size_t on_header(char *line, size_t size, size_t nitems, void *userdata)
{
    struct xfer *x = userdata;
    size_t n = size * nitems;
    if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        x->retry_after[0] = '\0'; /* a new response (after 100 Continue, say) */
    } else if (n > 12 && strncasecmp(line, "retry-after:", 12) == 0) {
        const char *v = line + 12;
        size_t len = n - 12;
        while (len && (*v == ' ' || *v == '\t'))
            v++, len--;
        while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
            len--;
        if (len < sizeof(x->retry_after)) {
            memcpy(x->retry_after, v, len);
            x->retry_after[len] = '\0';
        }
    }
    return n;
}

/* Options that stay the same for every request of this client. */
static CURL *new_easy(const struct mp_fcm_client *c, struct xfer *x)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    mp_push_limit_protocols(e, c->plain ? "http" : "https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     c->plain ? (long)CURL_HTTP_VERSION_1_1 : (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 10L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->ca_file) { /* an extra bundle: the system's roots stay trusted */
        curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
        curl_easy_setopt(e, CURLOPT_CAPATH, MP_SYSTEM_CA_PATH);
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    return e;
}

/* Errors that mean the request got no HTTP answer and may be sent again. */
static bool worth_retrying(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SSL_CONNECT_ERROR:
        return true;
    default:
        return false;
    }
}

/* Sets a no-answer result, keeping the time and attempts counted so far. */
static void network_result(struct mp_fcm_result *r, CURLcode rc, const char *errbuf)
{
    double seconds = r->seconds;
    int attempts = r->attempts;
    memset(r, 0, sizeof(*r));
    r->seconds = seconds;
    r->attempts = attempts;
    r->outcome = MP_FCM_NETWORK;
    r->retry_after = -1;
    snprintf(r->detail, sizeof(r->detail), "curl error %d: %s", (int)rc,
             errbuf && errbuf[0] ? errbuf : curl_easy_strerror(rc));
}

/* Hands request i to a free slot and the multi handle; when that fails at once, the request
 * gets its (final) network result instead. */
static void start(struct pass *p, size_t i)
{
    struct mp_fcm_client *c = p->c;
    struct xfer *x = &c->xfers[c->free_slots[c->nfree - 1]];
    if (!x->easy)
        x->easy = new_easy(c, x);
    CURLMcode mc = CURLM_OUT_OF_MEMORY;
    if (x->easy) {
        mp_buf_reset(&x->resp);
        x->retry_after[0] = '\0';
        x->errbuf[0] = '\0';
        x->index = i;
        x->started_ms = mp_push_now_ms();
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, p->reqs[i].body);
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->reqs[i].len);
        curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, p->headers);
        mc = curl_multi_add_handle(c->multi, x->easy);
    }
    if (mc != CURLM_OK) {
        network_result(&p->results[i], CURLE_OUT_OF_MEMORY, "cannot start the request");
        p->results[i].attempts++;
        return;
    }
    x->busy = true;
    c->nfree--;
    p->running++;
}

static void release(struct pass *p, struct xfer *x)
{
    struct mp_fcm_client *c = p->c;
    curl_multi_remove_handle(c->multi, x->easy);
    x->busy = false;
    c->free_slots[c->nfree++] = (size_t)(x - c->xfers);
    p->running--;
}

/* Records the outcome of one attempt, or queues the request for the retry pass. */
static void finish(struct pass *p, struct xfer *x, CURLcode rc)
{
    struct mp_fcm_result *r = &p->results[x->index];
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    double seconds = r->seconds + (double)(mp_push_now_ms() - x->started_ms) / 1000.0;
    int attempts = r->attempts + 1;
    if (status == 0 && !p->last && worth_retrying(rc)) {
        p->failed[p->nfailed++] = x->index;
        network_result(r, rc, x->errbuf); /* stands until the retry answers */
    } else if (status == 0) {
        network_result(r, rc, x->errbuf);
    } else {
        mp_fcm_classify(status, x->resp.data, x->resp.len,
                        x->retry_after[0] ? x->retry_after : NULL, r);
    }
    r->seconds = seconds;
    r->attempts = attempts;
    release(p, x);
}

static void drain(struct pass *p)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(p->c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;
        CURLcode rc = m->data.result; /* m is invalid once the handle is removed */
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        finish(p, (struct xfer *)priv, rc);
    }
}

/* After a multi-level failure: every request still in flight gets a network result. */
static void abandon(struct pass *p, const char *why)
{
    struct mp_fcm_client *c = p->c;
    for (size_t s = 0; s < c->window; s++) {
        struct xfer *x = &c->xfers[s];
        if (!x->busy)
            continue;
        network_result(&p->results[x->index], CURLE_FAILED_INIT, why);
        p->results[x->index].attempts++;
        release(p, x);
    }
    for (; p->next < p->ntodo; p->next++)
        network_result(&p->results[p->todo[p->next]], CURLE_FAILED_INIT, why);
}

static enum mp_result run_pass(struct pass *p)
{
    CURLMcode mc = CURLM_OK;
    while (p->next < p->ntodo || p->running > 0) {
        while (p->next < p->ntodo && p->c->nfree > 0)
            start(p, p->todo[p->next++]);
        int still = 0;
        mc = curl_multi_perform(p->c->multi, &still);
        if (mc != CURLM_OK)
            break;
        drain(p);
        bool can_start = p->next < p->ntodo && p->c->nfree > 0;
        if (p->running > 0 && !can_start)
            mc = curl_multi_poll(p->c->multi, NULL, 0, POLL_MS, NULL);
        if (mc != CURLM_OK)
            break;
    }
    if (mc == CURLM_OK)
        return MP_OK;
    MP_ERROR("fcm_batch_failed", "error=\"%s\"", curl_multi_strerror(mc));
    abandon(p, curl_multi_strerror(mc));
    return mc == CURLM_OUT_OF_MEMORY ? MP_ERR_NOMEM : MP_ERR_INTERNAL;
}

/* Closes every connection, so that the retry pass starts on new ones. */
static enum mp_result fresh_connections(struct mp_fcm_client *c)
{
    CURLM *multi = new_multi(c->connections);
    if (!multi)
        return MP_ERR_NOMEM;
    curl_multi_cleanup(c->multi);
    c->multi = multi;
    return MP_OK;
}

static void free_headers(struct curl_slist *list)
{
    for (struct curl_slist *l = list; l; l = l->next)
        OPENSSL_cleanse(l->data, strlen(l->data));
    curl_slist_free_all(list);
}

static struct curl_slist *make_headers(const char *access_token)
{
    size_t size = strlen(access_token) + 32;
    char *auth = malloc(size);
    if (!auth)
        return NULL;
    snprintf(auth, size, "Authorization: Bearer %s", access_token);
    struct curl_slist *list = curl_slist_append(NULL, auth), *more = NULL;
    if (list)
        more = curl_slist_append(list, "Content-Type: application/json");
    if (more)
        more = curl_slist_append(list, "Expect:");
    OPENSSL_cleanse(auth, size);
    free(auth);
    if (!more) {
        free_headers(list);
        return NULL;
    }
    return list;
}

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

/* Sends the requests that got no answer once more, on new connections. */
static enum mp_result retry_pass(struct pass *first)
{
    struct mp_fcm_result *r0 = &first->results[first->failed[0]];
    char detail[sizeof(r0->detail) + 2];
    MP_WARN("fcm_retry", "requests=%zu first_error=%s", first->nfailed,
            mp_log_quote(detail, sizeof(detail), r0->detail));
    if (fresh_connections(first->c) != MP_OK) {
        MP_ERROR("fcm_retry_skipped", "error=\"out of memory\"");
        return MP_OK; /* the failed requests keep their network results */
    }
    struct pass p = {.c = first->c,
                     .headers = first->headers,
                     .reqs = first->reqs,
                     .results = first->results,
                     .todo = first->failed,
                     .ntodo = first->nfailed,
                     .last = true};
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
    size_t *todo = malloc(n * sizeof(*todo));
    size_t *failed = malloc(n * sizeof(*failed));
    struct curl_slist *headers = make_headers(access_token);
    if (!todo || !failed || !headers)
        goto out;
    memset(results, 0, n * sizeof(*results));
    for (size_t i = 0; i < n; i++)
        todo[i] = i;
    struct pass p = {.c = c,
                     .headers = headers,
                     .reqs = reqs,
                     .results = results,
                     .todo = todo,
                     .ntodo = n,
                     .failed = failed};
    result = run_pass(&p);
    if (!result && p.nfailed)
        result = retry_pass(&p);
out:
    free_headers(headers);
    free(todo);
    free(failed);
    return result;
}
