/* Test support for the offline pick-up tests: see pickup_util.h. */
#include "pickup_util.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- devices and messages ---- */

void pu_register(const struct tx_env *e, const char *wallet, const char *device)
{
    char path[512], body[512];
    snprintf(path, sizeof(path), "/v1/wallets/%s/devices/%s", wallet, device);
    snprintf(body, sizeof(body),
             "{\"fcmToken\":\"tok-%s-%s-APA91b0123456789\",\"platform\":\"android\"}", wallet,
             device);
    struct th_response r;
    tx_api(&r, e, "PUT", path, body);
    if (r.status != 200 && r.status != 201)
        fail_msg("PUT %s: expected 200 or 201, got %ld: %s", path, r.status, r.body);
    th_response_free(&r);
}

char *pu_enqueue(const struct tx_env *e, const char *wallet, const char *device,
                 const char *payload, int ttl)
{
    char path[512], *body = NULL;
    snprintf(path, sizeof(path), "/v1/wallets/%s/devices/%s/messages", wallet, device);
    int n = ttl > 0 ? asprintf(&body, "{\"payload\":%s,\"ttlSeconds\":%d}", payload, ttl)
                    : asprintf(&body, "{\"payload\":%s}", payload);
    if (n < 0)
        fail_msg("out of memory");
    struct th_response r;
    tx_api(&r, e, "POST", path, body);
    free(body);
    if (r.status != 201)
        fail_msg("POST %s: expected 201, got %ld: %s", path, r.status, r.body);
    json_t *id = json_object_get(r.json, "id");
    if (!json_is_string(id) || pu_num(json_string_value(id)) <= 0)
        fail_msg("POST %s: no message id in %s", path, r.body);
    tx_assert_iso_utc(json_string_value(json_object_get(r.json, "expiresAt")));
    char *out = strdup(json_string_value(id));
    th_response_free(&r);
    return out;
}

/* Checks one message object of a page. */
static void check_message(const json_t *m, const char *body)
{
    json_t *id = json_object_get(m, "id"), *src = json_object_get(m, "source");
    if (!json_is_object(m) || !json_is_string(id) || pu_num(json_string_value(id)) <= 0)
        fail_msg("a message without a string id: %s", body);
    const char *s = json_string_value(src);
    if (!s || (strcmp(s, "api") != 0 && strcmp(s, "webhook") != 0 && strcmp(s, "event") != 0))
        fail_msg("a message with a bad source: %s", body);
    if (!json_object_get(m, "payload"))
        fail_msg("a message without a payload: %s", body);
    tx_assert_iso_utc(json_string_value(json_object_get(m, "receivedAt")));
    tx_assert_iso_utc(json_string_value(json_object_get(m, "expiresAt")));
}

static void check_page(const struct th_response *r, const char *what)
{
    if (r->status != 200)
        fail_msg("%s: expected 200, got %ld: %s", what, r->status, r->body);
    if (strncmp(r->content_type, "application/json", 16) != 0)
        fail_msg("%s: Content-Type %s", what, r->content_type);
    json_t *list = json_object_get(r->json, "messages"), *next = json_object_get(r->json, "next");
    if (!json_is_array(list) || !next || !(json_is_null(next) || json_is_string(next)))
        fail_msg("%s: not a page of messages: %s", what, r->body);
    for (size_t i = 0; i < json_array_size(list); i++)
        check_message(json_array_get(list, i), r->body);
}

json_t *pu_fetch(const struct tx_env *e, const char *wallet, const char *device, const char *query)
{
    char path[768];
    snprintf(path, sizeof(path), "/v1/wallets/%s/devices/%s/messages%s%s", wallet, device,
             query && query[0] ? "?" : "", query ? query : "");
    struct th_response r;
    tx_api(&r, e, "GET", path, NULL);
    check_page(&r, path);
    json_t *page = json_incref(r.json);
    th_response_free(&r);
    return page;
}

size_t pu_count(const json_t *page)
{
    return json_array_size(json_object_get(page, "messages"));
}

const char *pu_id(const json_t *page, size_t i)
{
    json_t *m = json_array_get(json_object_get(page, "messages"), i);
    return json_string_value(json_object_get(m, "id"));
}

const char *pu_next(const json_t *page)
{
    return json_string_value(json_object_get(page, "next"));
}

long pu_ack(const struct tx_env *e, const char *wallet, const char *device, const char *body)
{
    char path[512];
    snprintf(path, sizeof(path), "/v1/wallets/%s/devices/%s/messages/ack", wallet, device);
    struct th_response r;
    tx_api(&r, e, "POST", path, body);
    json_t *n = json_object_get(r.json, "acknowledged");
    if (r.status != 200 || !json_is_integer(n))
        fail_msg("POST %s %s: expected 200 {\"acknowledged\":N}, got %ld: %s", path, body, r.status,
                 r.body);
    long v = (long)json_integer_value(n);
    th_response_free(&r);
    return v;
}

void pu_webhook_message(const char *base, const char *wallet, const char *device,
                        const char *message)
{
    static int serial;
    char *body = NULL;
    if (asprintf(&body,
                 "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"tenant-pu\","
                 "\"timestamp\":%ld%06d,\"walletId\":\"%s\",\"deviceId\":\"%s\","
                 "\"message\":%s}",
                 (long)getpid() % 100000, ++serial, wallet, device, message) < 0)
        fail_msg("out of memory");
    char url[256];
    snprintf(url, sizeof(url), "%s/webhooks/fireblocks", base);
    char *sig = tx_hdr_v1(tx_keys()->v1a, body);
    const char *headers[] = {"Content-Type: application/json", sig, NULL};
    struct th_response r;
    th_http(&r, "POST", url, headers, body, strlen(body));
    if (r.status != 200)
        fail_msg("webhook to %s: expected 200, got %ld: %s", url, r.status, r.body);
    th_response_free(&r);
    free(sig);
    free(body);
}

long long pu_num(const char *id)
{
    if (!id)
        return -1;
    char *end;
    long long v = strtoll(id, &end, 10);
    return *end || end == id ? -1 : v;
}

/* ---- many requests at once ---- */

struct pu_req {
    CURL *easy;
    struct curl_slist *headers;
    char *body_in;
    char *data;
    size_t len;
    bool done;
    long status;
    long done_at;
    json_t *json;
};

struct pu_multi {
    CURLM *multi;
    struct pu_req *reqs;
    int n, cap, finished;
};

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct pu_req *r = userdata;
    size_t n = size * nmemb;
    char *grown = realloc(r->data, r->len + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + r->len, ptr, n);
    r->data = grown;
    r->len += n;
    r->data[r->len] = '\0';
    return n;
}

struct pu_multi *pu_multi_new(void)
{
    struct pu_multi *m = calloc(1, sizeof(*m));
    m->multi = curl_multi_init();
    curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, 8L);
    return m;
}

int pu_multi_add_raw(struct pu_multi *m, const char *url, const char *method,
                     const char *const *headers, const char *body)
{
    if (m->n == m->cap) {
        /* The easy handles point at their pu_req, so the array is allocated once. */
        if (m->cap)
            fail_msg("pu_multi: capacity %d reached", m->cap);
        m->cap = 8192;
        m->reqs = calloc((size_t)m->cap, sizeof(*m->reqs));
    }
    int i = m->n++;
    struct pu_req *r = &m->reqs[i];
    for (int h = 0; headers && headers[h]; h++)
        r->headers = curl_slist_append(r->headers, headers[h]);
    r->headers = curl_slist_append(r->headers, "Expect:");
    r->data = calloc(1, 1);
    r->easy = curl_easy_init();
    curl_easy_setopt(r->easy, CURLOPT_URL, url);
    curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, (void *)r);
    curl_easy_setopt(r->easy, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->easy, CURLOPT_FORBID_REUSE, 1L);
    if (body) {
        r->body_in = strdup(body);
        curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body_in);
        curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    curl_multi_add_handle(m->multi, r->easy);
    return i;
}

int pu_multi_add(struct pu_multi *m, const struct tx_env *e, const char *base, const char *method,
                 const char *path, const char *body)
{
    char url[768];
    snprintf(url, sizeof(url), "%s%s", base, path);
    const char *headers[] = {e->auth, body ? "Content-Type: application/json" : NULL, NULL};
    return pu_multi_add_raw(m, url, method, headers, body);
}

static void collect_done(struct pu_multi *m)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct pu_req *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        r->done = true;
        r->done_at = tx_now_ms();
        if (msg->data.result == CURLE_OK) {
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &r->status);
            r->json = json_loads(r->data, JSON_DECODE_ANY, NULL);
        }
        m->finished++;
    }
}

void pu_multi_run(struct pu_multi *m, int ms)
{
    long deadline = tx_now_ms() + ms;
    for (;;) {
        int running = 0;
        curl_multi_perform(m->multi, &running);
        collect_done(m);
        long left = deadline - tx_now_ms();
        if (!running || left <= 0)
            return;
        curl_multi_poll(m->multi, NULL, 0, (int)(left < 50 ? left : 50), NULL);
    }
}

int pu_multi_wait(struct pu_multi *m, int from, int to, int timeout_ms)
{
    long deadline = tx_now_ms() + timeout_ms;
    for (;;) {
        int done = 0;
        for (int i = from; i < to; i++)
            done += m->reqs[i].done;
        long left = deadline - tx_now_ms();
        if (done == to - from || left <= 0)
            return done;
        pu_multi_run(m, (int)(left < 100 ? left : 100));
    }
}

int pu_multi_count(const struct pu_multi *m)
{
    return m->n;
}

int pu_multi_finished(const struct pu_multi *m)
{
    return m->finished;
}

bool pu_multi_done(const struct pu_multi *m, int i)
{
    return m->reqs[i].done;
}

long pu_multi_status(const struct pu_multi *m, int i)
{
    return m->reqs[i].status;
}

json_t *pu_multi_json(const struct pu_multi *m, int i)
{
    return m->reqs[i].json;
}

const char *pu_multi_body(const struct pu_multi *m, int i)
{
    return m->reqs[i].data ? m->reqs[i].data : "";
}

long pu_multi_done_at(const struct pu_multi *m, int i)
{
    return m->reqs[i].done_at;
}

void pu_multi_free(struct pu_multi *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n; i++) {
        struct pu_req *r = &m->reqs[i];
        curl_multi_remove_handle(m->multi, r->easy);
        curl_easy_cleanup(r->easy);
        curl_slist_free_all(r->headers);
        free(r->body_in);
        free(r->data);
        json_decref(r->json);
    }
    curl_multi_cleanup(m->multi);
    free(m->reqs);
    free(m);
}

/* ---- processes ---- */

void pu_raise_fd_limit(long want)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
        fail_msg("getrlimit: %s", strerror(errno));
    if (lim.rlim_cur != RLIM_INFINITY && (long)lim.rlim_cur < want) {
        lim.rlim_cur = lim.rlim_max == RLIM_INFINITY || (long)lim.rlim_max >= want ? (rlim_t)want
                                                                                   : lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
        (long)lim.rlim_cur < want)
        skip(); /* the machine does not allow enough descriptors for this test */
}

long pu_proc_threads(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot read %s: %s", path, strerror(errno));
    long threads = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Threads: %ld", &threads) == 1)
            break;
    fclose(f);
    if (threads < 0)
        fail_msg("no Threads: line in %s", path);
    return threads;
}

long pu_db_sessions(const char *db)
{
    /* Our own session is one of them: leave it out. */
    return th_sql_long(db, "SELECT count(*) FROM pg_stat_activity"
                           " WHERE datname = current_database() AND pid <> pg_backend_pid()");
}

double pu_metric(const char *base, const char *name)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/metrics", base);
    struct th_response r;
    th_http(&r, "GET", url, NULL, NULL, 0);
    double value = -1;
    size_t len = strlen(name);
    for (const char *p = r.body; p && *p;) {
        if (strncmp(p, name, len) == 0 && p[len] == ' ') {
            value = strtod(p + len + 1, NULL);
            break;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    th_response_free(&r);
    return value;
}

int pu_log_count(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

void pu_wait_log(const char *path, const char *needle)
{
    for (int i = 0; i < 100 && !pu_log_count(path, needle); i++)
        usleep(50000);
    if (!pu_log_count(path, needle))
        fail_msg("no \"%s\" in %s", needle, path);
}

int pu_wait_exit(pid_t pid, int timeout_ms)
{
    long deadline = tx_now_ms() + timeout_ms;
    for (;;) {
        int status;
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (got < 0 && errno != EINTR)
            return -1;
        if (tx_now_ms() >= deadline)
            return -1;
        usleep(20000);
    }
}
