/* Test support for the fault suite: see fault_util.h. */
#include "fault_util.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- a private PostgreSQL cluster ---- */

static int pg_ctl(const struct fu_cluster *c, const char *verb, bool fresh, char *out, size_t size)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "MPCPUSH_PG_PORT=%d %s/scripts/pg %s %s%s 2>&1", c->port,
             th_env("MPCPUSH_SOURCE_DIR"), verb, c->dir, fresh ? " --fresh" : "");
    return tx_shell(cmd, out, size);
}

/* A free port below the kernel's ephemeral range, so that no client socket takes it while the
 * cluster is down (th_free_port's ports come from that range). */
static int stable_port(void)
{
    for (int tries = 0; tries < 200; tries++) {
        int port = 20000 + (int)(random() % 12000);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in addr = {.sin_family = AF_INET,
                                   .sin_port = htons((uint16_t)port),
                                   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            return port;
    }
    fail_msg("no free port below 32768");
    return -1;
}

void fu_cluster_start(struct fu_cluster *c)
{
    memset(c, 0, sizeof(*c));
    c->dir = th_tempdir("mpcpush-fault-pg");
    srandom((unsigned)getpid() ^ (unsigned)tx_now_ms());
    char out[4096];
    int status = -1;
    for (int attempt = 0; attempt < 3 && status != 0; attempt++) {
        c->port = stable_port();
        status = pg_ctl(c, "start", true, out, sizeof(out));
    }
    if (status != 0)
        fail_msg("scripts/pg start: %s", out);
    char *nl = strrchr(out, '\n');
    if (nl && nl[1] == '\0')
        *nl = '\0';
    const char *last = strrchr(out, '\n');
    c->url = strdup(last ? last + 1 : out);
    const char *argv[] = {"migrate", NULL};
    if (th_mpcpush_run(c->url, NULL, NULL, 0, argv) != 0)
        fail_msg("mpcpush migrate on the private cluster failed");
}

void fu_cluster_stop(struct fu_cluster *c)
{
    char out[4096];
    if (pg_ctl(c, "stop", false, out, sizeof(out)) != 0)
        fail_msg("scripts/pg stop: %s", out);
}

void fu_cluster_restart(struct fu_cluster *c)
{
    char out[4096];
    int status = -1;
    for (int attempt = 0; attempt < 5 && status != 0; attempt++)
        if ((status = pg_ctl(c, "start", false, out, sizeof(out))) != 0)
            sleep(1);
    if (status != 0)
        fail_msg("scripts/pg start (again, port %d): %s", c->port, out);
}

void fu_cluster_free(struct fu_cluster *c)
{
    if (!c->dir)
        return;
    pg_ctl(c, "stop", false, NULL, 0);
    th_rm_rf(c->dir);
    free(c->dir);
    free(c->url);
    memset(c, 0, sizeof(*c));
}

int fu_setup_private(void **state)
{
    struct fu_env *r = calloc(1, sizeof(*r));
    fu_cluster_start(&r->pg);
    r->e.t.db = strdup(r->pg.url);
    r->e.t.apikey = th_apikey(r->e.t.db, "tests");
    snprintf(r->e.t.auth, sizeof(r->e.t.auth), "Authorization: Bearer %s", r->e.t.apikey);
    *state = r;
    return 0;
}

int fu_teardown_private(void **state)
{
    struct fu_env *r = *state;
    if (!r)
        return 0;
    struct fu_cluster pg = r->pg;
    int status = eu_teardown(state); /* frees r: e is its first member */
    fu_cluster_free(&pg);
    return status;
}

/* ---- SQL ---- */

PGresult *fu_query(const char *url, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = NULL;
    if (vasprintf(&sql, fmt, ap) < 0)
        fail_msg("out of memory");
    va_end(ap);
    PGconn *conn = PQconnectdb(url);
    if (PQstatus(conn) != CONNECTION_OK)
        fail_msg("cannot connect to %s: %s", url, PQerrorMessage(conn));
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("SQL failed: %.300s\n%s", sql, PQresultErrorMessage(res));
    PQfinish(conn);
    free(sql);
    return res;
}

/* ---- the load generator ---- */

struct slot {
    CURL *easy;
    struct curl_slist *headers;
    char *data;
    size_t len;
    int hook; /* -1: free */
};

struct fu_load {
    CURLM *multi;
    char url[256];
    int conns, rate;
    char wallet[64], prefix[64];
    int devices;
    unsigned serial_base;
    struct fu_hook *hooks;
    int n, cap;
    int *queue; /* requeued hook indexes */
    int qhead, qtail, qcap;
    struct slot *slots;
    int in_flight;
    long next_start;
};

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct slot *s = userdata;
    size_t n = size * nmemb;
    char *grown = realloc(s->data, s->len + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + s->len, ptr, n);
    s->data = grown;
    s->len += n;
    s->data[s->len] = '\0';
    return n;
}

/* The inbox key of a v1 body whose timestamp is stamp: "v1:<stamp, 16 hex digits>:<SHA-256>",
 * or "sha256:<SHA-256>" when stamp is 0 (no timestamp). */
static void dedupe_key(const char *body, long long stamp, char *out)
{
    unsigned char md[32];
    unsigned int len = 0;
    if (EVP_Digest(body, strlen(body), md, &len, EVP_sha256(), NULL) != 1 || len != 32)
        fail_msg("SHA-256 failed");
    int n = stamp > 0 ? sprintf(out, "v1:%016llx:", stamp) : sprintf(out, "sha256:");
    for (int i = 0; i < 32; i++)
        sprintf(out + n + 2 * i, "%02x", md[i]);
}

struct fu_load *fu_load_new(const char *base, int conns, int rate, const char *wallet,
                            const char *device_prefix, int devices)
{
    struct fu_load *l = calloc(1, sizeof(*l));
    l->multi = curl_multi_init();
    curl_multi_setopt(l->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)conns);
    curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, (long)conns);
    fu_load_target(l, base);
    l->conns = conns;
    l->rate = rate;
    snprintf(l->wallet, sizeof(l->wallet), "%s", wallet);
    snprintf(l->prefix, sizeof(l->prefix), "%s", device_prefix);
    l->devices = devices > 0 ? devices : 1;
    l->serial_base = (unsigned)getpid() * 100000u + (unsigned)(tx_now_ms() % 100000);
    l->cap = 50000;
    l->hooks = calloc((size_t)l->cap, sizeof(*l->hooks));
    l->qcap = l->cap;
    l->queue = calloc((size_t)l->qcap, sizeof(int));
    l->slots = calloc((size_t)conns, sizeof(*l->slots));
    for (int i = 0; i < conns; i++)
        l->slots[i].hook = -1;
    return l;
}

void fu_load_target(struct fu_load *l, const char *base)
{
    snprintf(l->url, sizeof(l->url), "%s/webhooks/fireblocks", base);
}

/* Makes webhook number n. */
static int new_hook(struct fu_load *l)
{
    if (l->n == l->cap)
        fail_msg("fu_load: more than %d webhooks", l->cap);
    int i = l->n++;
    struct fu_hook *h = &l->hooks[i];
    if (asprintf(&h->body,
                 "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"fault\",\"timestamp\":%d,"
                 "\"walletId\":\"%s\",\"deviceId\":\"%s%d\",\"message\":{\"load\":%u,\"n\":%d}}",
                 i, l->wallet, l->prefix, i % l->devices, l->serial_base, i) < 0)
        fail_msg("out of memory");
    h->sig = tx_hdr_v1(tx_keys()->v1a, h->body);
    dedupe_key(h->body, i, h->dedupe);
    h->first_status = -1;
    return i;
}

static void start(struct fu_load *l, struct slot *s, int hook)
{
    struct fu_hook *h = &l->hooks[hook];
    s->hook = hook;
    s->len = 0;
    free(s->data);
    s->data = calloc(1, 1);
    s->headers = curl_slist_append(NULL, "Content-Type: application/json");
    s->headers = curl_slist_append(s->headers, h->sig);
    s->headers = curl_slist_append(s->headers, "Expect:");
    s->easy = curl_easy_init();
    curl_easy_setopt(s->easy, CURLOPT_URL, l->url);
    curl_easy_setopt(s->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, h->body);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(h->body));
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_PRIVATE, (void *)s);
    curl_easy_setopt(s->easy, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
    h->tries++;
    h->sent_at = tx_now_ms();
    curl_multi_add_handle(l->multi, s->easy);
    l->in_flight++;
}

static void finish(struct fu_load *l, struct slot *s, CURLcode rc)
{
    struct fu_hook *h = &l->hooks[s->hook];
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    h->status = status;
    if (h->first_status < 0)
        h->first_status = status;
    h->ok |= status == 200;
    h->answered_at = tx_now_ms();
    h->code[0] = '\0';
    json_t *json = status ? json_loads(s->data, 0, NULL) : NULL;
    const char *code = json_string_value(json_object_get(json_object_get(json, "error"), "code"));
    if (code)
        snprintf(h->code, sizeof(h->code), "%s", code);
    json_decref(json);
    curl_multi_remove_handle(l->multi, s->easy);
    curl_easy_cleanup(s->easy);
    curl_slist_free_all(s->headers);
    s->easy = NULL;
    s->headers = NULL;
    s->hook = -1;
    l->in_flight--;
}

static void collect_done(struct fu_load *l)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(l->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct slot *s = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        finish(l, s, msg->data.result);
    }
}

/* Starts what may start now; returns whether anything is left to start. */
static bool fill(struct fu_load *l, bool fresh)
{
    long now = tx_now_ms();
    for (int i = 0; i < l->conns; i++) {
        struct slot *s = &l->slots[i];
        if (s->hook >= 0)
            continue;
        bool queued = l->qhead < l->qtail;
        if (!queued && !fresh)
            return false;
        if (l->rate > 0 && now < l->next_start)
            return true;
        int hook = queued ? l->queue[l->qhead++] : new_hook(l);
        start(l, s, hook);
        if (l->rate > 0)
            l->next_start = (l->next_start > now - 1000 ? l->next_start : now) + 1000 / l->rate;
    }
    return fresh || l->qhead < l->qtail;
}

void fu_load_run(struct fu_load *l, int ms, bool fresh)
{
    long deadline = tx_now_ms() + ms;
    for (;;) {
        bool more = fill(l, fresh);
        int running = 0;
        curl_multi_perform(l->multi, &running);
        collect_done(l);
        long left = deadline - tx_now_ms();
        if (left <= 0 || (!more && l->in_flight == 0))
            return;
        curl_multi_poll(l->multi, NULL, 0, (int)(left < 5 ? left : 5), NULL);
    }
}

int fu_load_requeue(struct fu_load *l)
{
    int queued = 0;
    l->qhead = l->qtail = 0;
    for (int i = 0; i < l->n; i++) {
        bool busy = false;
        for (int k = 0; k < l->conns; k++)
            busy |= l->slots[k].hook == i;
        if (!l->hooks[i].ok && !busy) {
            l->queue[l->qtail++] = i;
            queued++;
        }
    }
    return queued;
}

int fu_load_settle(struct fu_load *l, int timeout_ms)
{
    long deadline = tx_now_ms() + timeout_ms;
    while ((l->in_flight > 0 || l->qhead < l->qtail) && tx_now_ms() < deadline)
        fu_load_run(l, 100, false);
    return l->in_flight + (l->qtail - l->qhead);
}

int fu_load_retry_all(struct fu_load *l, int timeout_ms)
{
    long deadline = tx_now_ms() + timeout_ms;
    fu_load_settle(l, timeout_ms);
    for (;;) {
        int left = fu_load_requeue(l);
        if (left == 0 || tx_now_ms() >= deadline)
            return left;
        fu_load_settle(l, (int)(deadline - tx_now_ms()));
        usleep(100000);
    }
}

int fu_load_count(const struct fu_load *l)
{
    return l->n;
}

int fu_load_in_flight(const struct fu_load *l)
{
    return l->in_flight;
}

const struct fu_hook *fu_load_hook(const struct fu_load *l, int i)
{
    return &l->hooks[i];
}

void fu_load_tally(const struct fu_load *l, struct fu_tally *t)
{
    memset(t, 0, sizeof(*t));
    for (int i = 0; i < l->n; i++) {
        const struct fu_hook *h = &l->hooks[i];
        if (h->first_status < 0)
            continue;
        if (h->status == 200) {
            t->ok++;
        } else if (h->status == 503 && strcmp(h->code, "storage_unavailable") == 0) {
            t->unavailable++;
        } else if (h->status == 0) {
            t->none++;
        } else {
            if (!t->other++) {
                t->other_status = h->status;
                snprintf(t->other_code, sizeof(t->other_code), "%s", h->code);
            }
        }
    }
}

void fu_load_free(struct fu_load *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->conns; i++) {
        struct slot *s = &l->slots[i];
        if (s->easy) {
            curl_multi_remove_handle(l->multi, s->easy);
            curl_easy_cleanup(s->easy);
            curl_slist_free_all(s->headers);
        }
        free(s->data);
    }
    for (int i = 0; i < l->n; i++) {
        free(l->hooks[i].body);
        free(l->hooks[i].sig);
    }
    curl_multi_cleanup(l->multi);
    free(l->slots);
    free(l->queue);
    free(l->hooks);
    free(l);
}

/* ---- what the database holds ---- */

struct stored_row {
    const char *dedupe;
    int messages; /* message rows with this event_id and the event's payload */
    bool matched;
};

static int by_dedupe(const void *a, const void *b)
{
    return strcmp(((const struct stored_row *)a)->dedupe, ((const struct stored_row *)b)->dedupe);
}

static void problem(struct fu_stored *s, const char *what, const struct fu_hook *h)
{
    if (!s->first_problem[0])
        snprintf(s->first_problem, sizeof(s->first_problem), "%s: %.180s", what, h->body);
}

void fu_load_stored(const struct fu_load *l, const char *db, struct fu_stored *s)
{
    memset(s, 0, sizeof(*s));
    PGresult *res = fu_query(db, "SELECT e.dedupe_key, (SELECT count(*) FROM mpcpush.messages m"
                                 " WHERE m.event_id = e.id AND m.wallet_id = e.wallet_id AND"
                                 " m.device_id = e.device_id AND m.source = 'webhook' AND"
                                 " m.payload = (e.raw_body::jsonb -> 'message'))"
                                 " FROM mpcpush.webhook_events e");
    int rows = PQntuples(res);
    struct stored_row *stored = calloc((size_t)rows + 1, sizeof(*stored));
    for (int r = 0; r < rows; r++) {
        stored[r].dedupe = PQgetvalue(res, r, 0);
        stored[r].messages = atoi(PQgetvalue(res, r, 1));
    }
    qsort(stored, (size_t)rows, sizeof(*stored), by_dedupe);
    s->events = rows;
    for (int i = 0; i < l->n; i++) {
        const struct fu_hook *h = &l->hooks[i];
        struct stored_row key = {.dedupe = h->dedupe};
        struct stored_row *row = bsearch(&key, stored, (size_t)rows, sizeof(*stored), by_dedupe);
        if (row)
            row->matched = true;
        s->answered_ok += h->ok;
        s->stored += row != NULL;
        if (h->ok && !row) {
            s->ok_missing++;
            problem(s, "answered 200 but not stored", h);
        }
        if (row && row->messages != 1) {
            s->bad_messages++;
            s->ok_bad_messages += h->ok;
            problem(s, "stored without exactly one message row", h);
        }
        s->stored_unanswered += row && !h->ok;
    }
    for (int r = 0; r < rows; r++)
        s->foreign_events += !stored[r].matched;
    free(stored);
    PQclear(res);
    s->duplicate_payloads =
        th_sql_long(db, "SELECT count(*) - count(DISTINCT (wallet_id, device_id, payload))"
                        " FROM mpcpush.messages");
}

/* ---- devices and messages in bulk ---- */

static void bulk(const struct tx_env *t, const char *wallet, const char *prefix, const char *tag,
                 int from, int to, bool messages)
{
    enum { CHUNK = 100 };
    static char bodies[CHUNK][256];
    for (int base = from; base < to; base += CHUNK) {
        struct tx_call calls[CHUNK];
        memset(calls, 0, sizeof(calls));
        int n = to - base < CHUNK ? to - base : CHUNK;
        for (int k = 0; k < n; k++) {
            int i = base + k;
            char tok[128];
            eu_token(tok, sizeof(tok), tag ? tag : "x", i);
            calls[k].method = messages ? "POST" : "PUT";
            snprintf(calls[k].url, sizeof(calls[k].url), "%s/v1/wallets/%s/devices/%s%d%s",
                     t->proc.base, wallet, prefix, i, messages ? "/messages" : "");
            if (messages)
                snprintf(bodies[k], sizeof(bodies[k]), "{\"payload\":{\"i\":%d}}", i);
            else
                snprintf(bodies[k], sizeof(bodies[k]), "{\"fcmToken\":\"%s\",\"platform\":\"%s\"}",
                         tok, i % 2 ? "ios" : "android");
            calls[k].headers[0] = t->auth;
            calls[k].headers[1] = "Content-Type: application/json";
            calls[k].body = bodies[k];
            calls[k].len = strlen(bodies[k]);
        }
        tx_http_parallel(calls, n);
        for (int k = 0; k < n; k++)
            if (calls[k].status != 201 && (messages || calls[k].status != 200))
                fail_msg("%s %s: HTTP %ld %s", calls[k].method, calls[k].url, calls[k].status,
                         calls[k].resp);
        tx_calls_free(calls, n);
    }
}

void fu_register(const struct tx_env *t, const char *wallet, const char *prefix, const char *tag,
                 int from, int to)
{
    bulk(t, wallet, prefix, tag, from, to, false);
}

void fu_enqueue(const struct tx_env *t, const char *wallet, const char *prefix, int from, int to)
{
    bulk(t, wallet, prefix, NULL, from, to, true);
}

size_t fu_records(const struct eu_emulator *e, const char *tag, int n, int *counts,
                  long long *latest)
{
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "eu%d-%s-", (int)getpid(), tag);
    json_t *list = eu_records_prefix(e, prefix);
    memset(counts, 0, sizeof(int) * (size_t)n);
    if (latest)
        memset(latest, 0, sizeof(long long) * (size_t)n);
    size_t i;
    json_t *rec;
    json_array_foreach(list, i, rec)
    {
        const char *tok = json_string_value(json_object_get(rec, "token"));
        int k = -1;
        if (sscanf(tok + strlen(prefix), "%d", &k) != 1 || k < 0 || k >= n)
            fail_msg("unexpected token %s", tok);
        counts[k]++;
        long long id = atoll(eu_data(rec, "latestId"));
        if (latest && id > latest[k])
            latest[k] = id;
    }
    size_t total = json_array_size(list);
    json_decref(list);
    return total;
}

/* ---- logs and processes ---- */

long long fu_line_ms(const char *line)
{
    const char *ts = strstr(line, "ts=");
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int ms = 0;
    if (!ts || sscanf(ts, "ts=%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                      &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (long long)timegm(&tm) * 1000 + ms;
}

void fu_log_lines(const char *path, const char *needle, void (*fn)(const char *line, void *arg),
                  void *arg)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[4096];
    while (fgets(line, sizeof(line), f))
        if (strstr(line, needle))
            fn(line, arg);
    fclose(f);
}

int fu_log_show(const char *path, const char *needle, int max)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, needle) && n++ < max)
            fprintf(stderr, "    %s", line);
    fclose(f);
    return n;
}

bool fu_alive(pid_t pid)
{
    int status;
    return pid > 0 && waitpid(pid, &status, WNOHANG) == 0;
}

long fu_get(const char *base, const char *path, const char *auth, char *code, size_t size)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", base, path);
    const char *headers[] = {auth, NULL};
    struct th_response r;
    if (code && size)
        code[0] = '\0';
    if (!th_http_try(&r, "GET", url, auth ? headers : NULL, NULL, 0))
        return 0;
    long status = r.status;
    if (code && size) {
        json_t *c = json_object_get(json_object_get(r.json, "error"), "code");
        json_t *st = json_object_get(r.json, "status");
        snprintf(code, size, "%s",
                 json_is_string(c)    ? json_string_value(c)
                 : json_is_string(st) ? json_string_value(st)
                                      : "");
    }
    th_response_free(&r);
    return status;
}
