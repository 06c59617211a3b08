/* Test support for the integration tests: see harness_extra.h. */
#include "harness_extra.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---- keys ---- */

static struct tx_keys keys;
static char *keys_dir;

static void remove_keys_dir(void)
{
    th_rm_rf(keys_dir);
}

const struct tx_keys *tx_keys(void)
{
    if (keys.v1a)
        return &keys;
    keys_dir = th_tempdir("mpcpush-keys");
    atexit(remove_keys_dir);
    char pem_b[256];
    snprintf(keys.pem_a, sizeof(keys.pem_a), "%s/fireblocks-a.pem", keys_dir);
    snprintf(pem_b, sizeof(pem_b), "%s/fireblocks-b.pem", keys_dir);
    snprintf(keys.jwks, sizeof(keys.jwks), "%s/jwks.json", keys_dir);
    snprintf(keys.pubkeys, sizeof(keys.pubkeys), "%s,%s", keys.pem_a, pem_b);
    keys.v1a = th_rsa_key(2048, keys.pem_a);
    keys.v1b = th_rsa_key(2048, pem_b);
    keys.jwk1 = th_rsa_key(2048, NULL);
    keys.jwk2 = th_rsa_key(2048, NULL);
    keys.stranger = th_rsa_key(2048, NULL);
    EVP_PKEY *const list[] = {keys.jwk1, keys.jwk2};
    const char *const kids[] = {"kid-1", "kid-2"};
    th_write_jwks(keys.jwks, list, kids, 2);
    return &keys;
}

char *tx_hdr_v1(EVP_PKEY *key, const char *body)
{
    char *sig = th_sign_v1(key, body, strlen(body));
    char *line = NULL;
    if (asprintf(&line, "Fireblocks-Signature: %s", sig) < 0)
        fail_msg("out of memory");
    free(sig);
    return line;
}

char *tx_hdr_v2(EVP_PKEY *key, const char *kid, const char *body)
{
    char *sig = th_sign_v2(key, kid, body, strlen(body));
    char *line = NULL;
    if (asprintf(&line, "Fireblocks-Webhook-Signature: %s", sig) < 0)
        fail_msg("out of memory");
    free(sig);
    return line;
}

/* ---- environments ---- */

int tx_setup_db(void **state)
{
    struct tx_env *e = calloc(1, sizeof(*e));
    e->db = th_db_create(true);
    e->apikey = th_apikey(e->db, "tests");
    snprintf(e->auth, sizeof(e->auth), "Authorization: Bearer %s", e->apikey);
    *state = e;
    return 0;
}

int tx_setup(void **state)
{
    tx_setup_db(state);
    tx_start(*state, 0, NULL);
    return 0;
}

void tx_start(struct tx_env *e, unsigned flags, const char *const *extra)
{
    const struct tx_keys *k = tx_keys();
    const char *env[40];
    char pub[1200], jwks[400];
    int n = 0;
    snprintf(pub, sizeof(pub), "MPCPUSH_FIREBLOCKS_PUBKEYS=%s", k->pubkeys);
    snprintf(jwks, sizeof(jwks), "MPCPUSH_FIREBLOCKS_JWKS=%s", k->jwks);
    if (!(flags & TX_NO_PUBKEYS))
        env[n++] = pub;
    if (!(flags & TX_NO_JWKS))
        env[n++] = jwks;
    for (int i = 0; extra && extra[i] && n < 38; i++)
        env[n++] = extra[i];
    env[n] = NULL;
    th_mpcpush_start(&e->proc, "receiver", e->db, env);
    e->running = true;
}

int tx_stop(struct tx_env *e)
{
    if (!e->running)
        return 0;
    e->running = false;
    return th_proc_stop(&e->proc, SIGTERM);
}

int tx_teardown(void **state)
{
    struct tx_env *e = *state;
    if (!e)
        return 0;
    int status = tx_stop(e);
    if (status != 0)
        fprintf(stderr, "receiver exited %d after SIGTERM (log: %s)\n", status, e->proc.log_path);
    free(e->db);
    free(e->apikey);
    free(e);
    *state = NULL;
    return status == 0 ? 0 : -1;
}

/* ---- requests ---- */

void tx_api(struct th_response *r, const struct tx_env *e, const char *method, const char *path,
            const char *body)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", e->proc.base, path);
    const char *headers[] = {e->auth, body ? "Content-Type: application/json" : NULL, NULL};
    th_http(r, method, url, headers, body, body ? strlen(body) : 0);
}

void tx_webhook(struct th_response *r, const struct tx_env *e, const char *body,
                const char *const *headers)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/webhooks/fireblocks", e->proc.base);
    const char *all[16] = {"Content-Type: application/json"};
    int n = 1;
    for (int i = 0; headers && headers[i] && n < 15; i++)
        all[n++] = headers[i];
    all[n] = NULL;
    th_http(r, "POST", url, all, body, body ? strlen(body) : 0);
}

void tx_webhook_v1(struct th_response *r, const struct tx_env *e, const char *body)
{
    char *sig = tx_hdr_v1(tx_keys()->v1a, body);
    const char *headers[] = {sig, NULL};
    tx_webhook(r, e, body, headers);
    free(sig);
}

struct sink {
    char *data;
    size_t len, cap; /* cap 0: grow freely */
};

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct sink *s = userdata;
    size_t n = size * nmemb;
    if (s->cap) {
        size_t room = s->cap - 1 - s->len;
        size_t k = n < room ? n : room;
        memcpy(s->data + s->len, ptr, k);
        s->len += k;
        s->data[s->len] = '\0';
        return n;
    }
    char *grown = realloc(s->data, s->len + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + s->len, ptr, n);
    s->data = grown;
    s->len += n;
    s->data[s->len] = '\0';
    return n;
}

static CURL *make_easy(const char *method, const char *url, struct curl_slist *list,
                       const char *body, size_t len, struct sink *sink)
{
    CURL *curl = curl_easy_init();
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 90L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_FORBID_REUSE, 1L);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    return curl;
}

bool tx_http_hdrs(struct th_response *resp, char *hdrs, size_t hsize, const char *method,
                  const char *url, const char *const *headers, const char *body, size_t len)
{
    memset(resp, 0, sizeof(*resp));
    struct curl_slist *list = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    list = curl_slist_append(list, "Expect:");
    struct sink sink = {calloc(1, 1), 0, 0};
    struct sink hsink = {hdrs, 0, hsize};
    if (hdrs && hsize)
        hdrs[0] = '\0';
    CURL *curl = make_easy(method, url, list, body, len, &sink);
    if (hdrs && hsize) {
        curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, collect);
        curl_easy_setopt(curl, CURLOPT_HEADERDATA, &hsink);
    }
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
        char *ct = NULL;
        curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ct);
        if (ct)
            strncpy(resp->content_type, ct, sizeof(resp->content_type) - 1);
        resp->body = sink.data;
        resp->json = json_loads(sink.data, JSON_DECODE_ANY, NULL);
    } else {
        free(sink.data);
    }
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    return rc == CURLE_OK;
}

void tx_assert_status_at(const struct th_response *resp, long status, const char *file, int line)
{
    if (resp->status != status)
        fail_msg("%s:%d: expected HTTP %ld, got %ld with body %s", file, line, status, resp->status,
                 resp->body ? resp->body : "(none)");
}

void tx_assert_error_at(const struct th_response *resp, long status, const char *code,
                        const char *file, int line)
{
    const char *got = th_error_code(resp);
    if (resp->status != status || strcmp(got, code) != 0)
        fail_msg("%s:%d: expected HTTP %ld %s, got %ld with body %s", file, line, status, code,
                 resp->status, resp->body ? resp->body : "(none)");
    json_t *msg = json_object_get(json_object_get(resp->json, "error"), "message");
    if (!json_is_string(msg))
        fail_msg("%s:%d: error answer without a message string: %s", file, line, resp->body);
    if (strncmp(resp->content_type, "application/json", 16) != 0)
        fail_msg("%s:%d: error answer with Content-Type \"%s\"", file, line, resp->content_type);
}

/* ---- many requests at once ---- */

void tx_http_parallel(struct tx_call *calls, int n)
{
    CURLM *multi = curl_multi_init();
    CURL **easy = calloc((size_t)n, sizeof(*easy));
    struct curl_slist **lists = calloc((size_t)n, sizeof(*lists));
    struct sink *sinks = calloc((size_t)n, sizeof(*sinks));
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)n);
    for (int i = 0; i < n; i++) {
        for (int h = 0; calls[i].headers[h]; h++)
            lists[i] = curl_slist_append(lists[i], calls[i].headers[h]);
        lists[i] = curl_slist_append(lists[i], "Expect:");
        sinks[i].data = calloc(1, 1);
        easy[i] = make_easy(calls[i].method, calls[i].url, lists[i], calls[i].body, calls[i].len,
                            &sinks[i]);
        curl_easy_setopt(easy[i], CURLOPT_PRIVATE, (void *)&calls[i]);
        curl_multi_add_handle(multi, easy[i]);
    }
    int running = 1;
    while (running) {
        curl_multi_perform(multi, &running);
        if (running)
            curl_multi_poll(multi, NULL, 0, 200, NULL);
    }
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(multi, &left))) {
        if (msg->msg != CURLMSG_DONE || msg->data.result != CURLE_OK)
            continue;
        struct tx_call *call = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&call);
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &call->status);
    }
    for (int i = 0; i < n; i++) {
        calls[i].resp = sinks[i].data;
        calls[i].json = json_loads(sinks[i].data, JSON_DECODE_ANY, NULL);
        curl_multi_remove_handle(multi, easy[i]);
        curl_easy_cleanup(easy[i]);
        curl_slist_free_all(lists[i]);
    }
    curl_multi_cleanup(multi);
    free(easy);
    free(lists);
    free(sinks);
}

void tx_calls_free(struct tx_call *calls, int n)
{
    for (int i = 0; i < n; i++) {
        free(calls[i].resp);
        json_decref(calls[i].json);
        calls[i].resp = NULL;
        calls[i].json = NULL;
    }
}

/* ---- SQL ---- */

static char *vformat(const char *fmt, va_list ap)
{
    char *sql = NULL;
    if (vasprintf(&sql, fmt, ap) < 0)
        fail_msg("out of memory");
    return sql;
}

long tx_sql_longf(const char *db, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = vformat(fmt, ap);
    va_end(ap);
    long v = th_sql_long(db, sql);
    free(sql);
    return v;
}

void tx_wait_lock_waiter(const char *db, const char *locktype)
{
    long waiting = 0;
    for (int i = 0; i < 500 && waiting == 0; i++, usleep(10000))
        waiting = tx_sql_longf(db,
                               "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a"
                               " USING (pid) WHERE NOT l.granted AND l.locktype = '%s'"
                               " AND a.datname = current_database()",
                               locktype);
    if (waiting != 1)
        fail_msg("%ld sessions wait for a lock of type %s (expected 1)", waiting, locktype);
}

char *tx_sql_textf(const char *db, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = vformat(fmt, ap);
    va_end(ap);
    char *v = th_sql_text(db, sql);
    free(sql);
    return v;
}

void tx_sql_execf(const char *db, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = vformat(fmt, ap);
    va_end(ap);
    th_sql_exec(db, sql);
    free(sql);
}

char *tx_lit(const char *text)
{
    size_t n = strlen(text);
    char *out = malloc(2 * n + 3), *o = out;
    *o++ = '\'';
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '\'')
            *o++ = '\'';
        *o++ = text[i];
    }
    *o++ = '\'';
    *o = '\0';
    return out;
}

void tx_counts(const char *db, struct tx_counts *c)
{
    char *text = th_sql_text(db, "SELECT (SELECT count(*) FROM mpcpush.webhook_events) || ' ' ||"
                                 " (SELECT count(*) FROM mpcpush.messages) || ' ' ||"
                                 " (SELECT count(*) FROM mpcpush.devices) || ' ' ||"
                                 " (SELECT count(*) FROM mpcpush.pushes)");
    if (!text ||
        sscanf(text, "%ld %ld %ld %ld", &c->events, &c->messages, &c->devices, &c->pushes) != 4)
        fail_msg("cannot count rows");
    free(text);
}

void tx_assert_counts_at(const char *db, const struct tx_counts *before, const char *file, int line)
{
    struct tx_counts now;
    tx_counts(db, &now);
    if (memcmp(&now, before, sizeof(now)) != 0)
        fail_msg("%s:%d: something was stored: rows (events, messages, devices, pushes) went from "
                 "(%ld, %ld, %ld, %ld) to (%ld, %ld, %ld, %ld)",
                 file, line, before->events, before->messages, before->devices, before->pushes,
                 now.events, now.messages, now.devices, now.pushes);
}

void tx_assert_json_eq(const char *got, const char *want)
{
    json_t *g = got ? json_loads(got, JSON_DECODE_ANY, NULL) : NULL;
    json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);
    if (!w)
        fail_msg("bad expected JSON %s", want);
    if (!g || !json_equal(g, w))
        fail_msg("JSON differs: got %s, want %s", got ? got : "(null)", want);
    json_decref(g);
    json_decref(w);
}

void tx_assert_iso_utc(const char *text)
{
    regex_t re;
    regcomp(&re,
            "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?(Z|\\+00:00|\\+00)$",
            REG_EXTENDED | REG_NOSUB);
    int rc = text ? regexec(&re, text, 0, NULL, 0) : 1;
    regfree(&re);
    if (rc != 0)
        fail_msg("not an ISO-8601 UTC timestamp: %s", text ? text : "(null)");
}

/* ---- raw sockets ---- */

int tx_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0)
        fail_msg("cannot connect to port %d: %s", port, strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

bool tx_send(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

long tx_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int tx_read_status(int fd, int timeout_ms, char *buf, size_t size)
{
    char local[8192];
    if (!buf || size < 2) {
        buf = local;
        size = sizeof(local);
    }
    size_t used = 0;
    buf[0] = '\0';
    long deadline = tx_now_ms() + timeout_ms;
    for (;;) {
        if (strstr(buf, "\r\n\r\n") || used + 1 >= size)
            break;
        long left = deadline - tx_now_ms();
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        ssize_t n = recv(fd, buf + used, size - used - 1, 0);
        if (n <= 0)
            break;
        used += (size_t)n;
        buf[used] = '\0';
    }
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        return 0;
    return status;
}

bool tx_wait_closed(int fd, int timeout_ms)
{
    long deadline = tx_now_ms() + timeout_ms;
    char buf[4096];
    for (;;) {
        long left = deadline - tx_now_ms();
        if (left <= 0)
            return false;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
            return true;
    }
}

/* ---- programs ---- */

static char **child_env(const char *const *extra)
{
    size_t n = 0, m = 0;
    while (environ[n])
        n++;
    while (extra && extra[m])
        m++;
    char **env = calloc(n + m + 1, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "MPCPUSH_", 8) != 0)
            env[k++] = environ[i];
    for (size_t i = 0; i < m; i++)
        env[k++] = (char *)extra[i];
    env[k] = NULL;
    return env;
}

static pid_t spawn(const char *const *env, const char *const *argv, int out_fd, int err_fd)
{
    char **cenv = child_env(env);
    const char *bin = th_env("MPCPUSH_BIN");
    pid_t pid = fork();
    if (pid == 0) {
        int null_fd = open("/dev/null", O_RDWR);
        dup2(out_fd >= 0 ? out_fd : null_fd, STDOUT_FILENO);
        dup2(err_fd >= 0 ? err_fd : null_fd, STDERR_FILENO);
        dup2(null_fd, STDIN_FILENO);
        const char *args[32] = {bin};
        for (int i = 0; argv[i] && i < 30; i++)
            args[i + 1] = argv[i];
        execve(bin, (char *const *)args, cenv);
        _exit(127);
    }
    free(cenv);
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    return pid;
}

pid_t tx_spawn(const char *const *env, const char *const *argv)
{
    return spawn(env, argv, -1, -1);
}

int tx_wait(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void slurp(int fd, char *out, size_t size)
{
    if (!out || !size)
        return;
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, out, size - 1);
    out[n > 0 ? n : 0] = '\0';
}

int tx_run(const char *const *env, const char *const *argv, char *out, size_t out_size, char *err,
           size_t err_size)
{
    char out_path[] = "/tmp/mpcpush-out-XXXXXX", err_path[] = "/tmp/mpcpush-err-XXXXXX";
    int out_fd = mkstemp(out_path), err_fd = mkstemp(err_path);
    if (out_fd < 0 || err_fd < 0)
        fail_msg("mkstemp: %s", strerror(errno));
    unlink(out_path);
    unlink(err_path);
    int status = tx_wait(spawn(env, argv, out_fd, err_fd));
    slurp(out_fd, out, out_size);
    slurp(err_fd, err, err_size);
    close(out_fd);
    close(err_fd);
    return status;
}

int tx_shell(const char *cmd, char *out, size_t size)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        fail_msg("popen %s: %s", cmd, strerror(errno));
    size_t used = 0;
    char sink[1024];
    for (;;) {
        char *dst = out && used + 1 < size ? out + used : sink;
        size_t room = out && used + 1 < size ? size - used - 1 : sizeof(sink);
        size_t n = fread(dst, 1, room, p);
        if (n == 0)
            break;
        if (dst != sink)
            used += n;
    }
    if (out && size)
        out[used] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}
