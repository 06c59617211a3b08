/* The configuration table and its parser. Keys are kept alphabetical: `check-config` and
 * `--help` list them in table order. */
#include "mpcpush/config.h"

#include <stdarg.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "mpcpush/log.h"

enum key_type { KEY_STRING, KEY_INT, KEY_HOSTPORT, KEY_LOGLEVEL, KEY_URL };
enum key_flags { SECRET_URL = 1 };

struct key {
    const char *name;
    enum key_type type;
    size_t offset;
    const char *def; /* NULL: unset */
    long min, max;
    unsigned flags;
    const char *help;
};

#define FIELD(f) offsetof(struct mp_config, f)

static const struct key keys[] = {
    {"MPCPUSH_AUTH_FAILURES_PER_MINUTE", KEY_INT, FIELD(auth_failures_per_minute), "30", 0, 1000000,
     0, "failed API key checks per minute from one address before it gets 429 (0: no limit)"},
    {"MPCPUSH_BATCH_MAX", KEY_INT, FIELD(batch_max), "500", 1, 10000, 0,
     "most requests written in one group-commit transaction"},
    {"MPCPUSH_CA_FILE", KEY_STRING, FIELD(ca_file), NULL, 0, 0, 0,
     "extra CA bundle for outgoing TLS (emulator, proxies); default: system store"},
    {"MPCPUSH_CONNECTION_MEMORY_BYTES", KEY_INT, FIELD(connection_memory_bytes), "32768", 4096,
     1048576, 0, "memory per HTTP connection for request line and headers (larger: 431)"},
    {"MPCPUSH_DATABASE_URL", KEY_STRING, FIELD(database_url), NULL, 0, 0, SECRET_URL,
     "libpq connection URI or conninfo (required)"},
    {"MPCPUSH_DB_POOL_SIZE", KEY_INT, FIELD(db_pool_size), "8", 1, 256, 0,
     "database connections for API requests"},
    {"MPCPUSH_DISPATCH_BATCH", KEY_INT, FIELD(dispatch_batch), "500", 1, 10000, 0,
     "most pushes claimed per dispatcher batch"},
    {"MPCPUSH_DISPATCH_WORKERS", KEY_INT, FIELD(dispatch_workers), "4", 1, 32, 0,
     "dispatcher threads, each claiming and sending its own batches"},
    {"MPCPUSH_FCM_CONNECTIONS", KEY_INT, FIELD(fcm_connections), "4", 1, 64, 0,
     "HTTP/2 connections to FCM per dispatcher worker (about 100 streams each)"},
    {"MPCPUSH_FCM_TIMEOUT", KEY_INT, FIELD(fcm_timeout), "10", 1, 600, 0,
     "seconds before an FCM request is abandoned and retried"},
    {"MPCPUSH_FCM_URL", KEY_URL, FIELD(fcm_url), "https://fcm.googleapis.com", 0, 0, 0,
     "base URL of the FCM HTTP v1 API"},
    {"MPCPUSH_FIREBLOCKS_JWKS", KEY_STRING, FIELD(fireblocks_jwks), NULL, 0, 0, 0,
     "https URL or file of the JWKS for Fireblocks-Webhook-Signature (v2)"},
    {"MPCPUSH_FIREBLOCKS_PUBKEYS", KEY_STRING, FIELD(fireblocks_pubkeys), NULL, 0, 0, 0,
     "comma-separated PEM files accepted for Fireblocks-Signature (v1)"},
    {"MPCPUSH_GOOGLE_CREDENTIALS", KEY_STRING, FIELD(google_credentials), NULL, 0, 0, 0,
     "service-account JSON key file; default $CREDENTIALS_DIRECTORY/google-service-account.json"},
    {"MPCPUSH_GOOGLE_TOKEN_URL", KEY_URL, FIELD(google_token_url), NULL, 0, 0, 0,
     "OAuth token endpoint; default: the key file's token_uri"},
    {"MPCPUSH_HTTP_THREADS", KEY_INT, FIELD(http_threads), "2", 1, 64, 0,
     "threads serving the HTTP API"},
    {"MPCPUSH_IDLE_TIMEOUT", KEY_INT, FIELD(idle_timeout), "30", 1, 3600, 0,
     "seconds an HTTP connection may stay silent before it is closed"},
    {"MPCPUSH_IOS_ALERT_BODY", KEY_STRING, FIELD(ios_alert_body), NULL, 0, 0, 0,
     "iOS: send a visible alert with this body instead of a background push"},
    {"MPCPUSH_IOS_ALERT_TITLE", KEY_STRING, FIELD(ios_alert_title), NULL, 0, 0, 0,
     "iOS: title of the visible alert (with MPCPUSH_IOS_ALERT_BODY)"},
    {"MPCPUSH_LEASE_SECONDS", KEY_INT, FIELD(lease_seconds), "60", 5, 3600, 0,
     "how long a claimed push belongs to one dispatcher before another may take it"},
    {"MPCPUSH_LISTEN", KEY_HOSTPORT, FIELD(listen), "127.0.0.1:8080", 0, 0, 0,
     "host:port of the HTTP API"},
    {"MPCPUSH_LOG_LEVEL", KEY_LOGLEVEL, FIELD(log_level), "info", 0, 0, 0,
     "debug, info, warn or error"},
    {"MPCPUSH_MAX_BODY_BYTES", KEY_INT, FIELD(max_body_bytes), "262144", 1024, 16777216, 0,
     "largest request body accepted (larger: 413)"},
    {"MPCPUSH_MAX_CONNECTIONS", KEY_INT, FIELD(max_connections), "4096", 1, 100000, 0,
     "HTTP connections served at once"},
    {"MPCPUSH_MAX_CONNECTIONS_PER_IP", KEY_INT, FIELD(max_connections_per_ip), "2048", 0, 100000, 0,
     "HTTP connections from one address at once (0: no limit)"},
    {"MPCPUSH_MAX_MESSAGE_TTL", KEY_INT, FIELD(max_message_ttl), "2419200", 1, 2419200, 0,
     "largest ttlSeconds accepted for a message (FCM's limit is 28 days)"},
    {"MPCPUSH_MESSAGE_TTL", KEY_INT, FIELD(message_ttl), "86400", 1, 2419200, 0,
     "seconds a message stays pending when no ttlSeconds is given (webhook messages)"},
    {"MPCPUSH_METRICS_LISTEN", KEY_HOSTPORT, FIELD(metrics_listen), NULL, 0, 0, 0,
     "separate host:port for /metrics; default: served on MPCPUSH_LISTEN"},
    {"MPCPUSH_POLL_INTERVAL_MS", KEY_INT, FIELD(poll_interval_ms), "1000", 10, 60000, 0,
     "dispatcher poll interval when no notification arrives"},
    {"MPCPUSH_PRUNE_INTERVAL", KEY_INT, FIELD(prune_interval_seconds), "60", 1, 86400, 0,
     "seconds between pruning runs"},
    {"MPCPUSH_RATE_LIMIT_PER_MINUTE", KEY_INT, FIELD(rate_limit_per_minute), "6000", 0, 10000000, 0,
     "/v1 requests per minute allowed per API key and per address (0: no limit)"},
    {"MPCPUSH_REQUEST_TIMEOUT", KEY_INT, FIELD(request_timeout), "30", 1, 3600, 0,
     "seconds a client may take to send a request head or body (slower: closed)"},
    {"MPCPUSH_RETENTION_ACKED", KEY_INT, FIELD(retention_acked_seconds), "3600", 0, 31536000, 0,
     "seconds acknowledged and expired messages are kept before pruning"},
    {"MPCPUSH_RETENTION_EVENTS", KEY_INT, FIELD(retention_events_seconds), "2592000", 0, 315360000,
     0, "seconds webhook events are kept in the inbox (dedupe window)"},
    {"MPCPUSH_RETRY_BASE_MS", KEY_INT, FIELD(retry_base_ms), "1000", 10, 600000, 0,
     "first retry delay after a transient FCM error (doubles each attempt, with jitter)"},
    {"MPCPUSH_RETRY_MAX", KEY_INT, FIELD(retry_max_seconds), "600", 1, 86400, 0,
     "longest delay between retries, in seconds"},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static char **str_at(struct mp_config *cfg, const struct key *k)
{
    return (char **)((char *)cfg + k->offset);
}

static int *int_at(struct mp_config *cfg, const struct key *k)
{
    return (int *)((char *)cfg + k->offset);
}

static const struct key *find_key(const char *name, size_t len)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strlen(keys[i].name) == len && strncmp(keys[i].name, name, len) == 0)
            return &keys[i];
    return NULL;
}

enum mp_result mp_config_split_hostport(const char *text, char *host, size_t host_size, int *port)
{
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text)
        return MP_ERR_INVALID;
    const char *h = text;
    size_t hlen = (size_t)(colon - text);
    if (h[0] == '[') {
        if (hlen < 3 || h[hlen - 1] != ']')
            return MP_ERR_INVALID;
        h++;
        hlen -= 2;
    }
    if (hlen + 1 > host_size)
        return MP_ERR_TOO_LARGE;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p < 0 || p > 65535)
        return MP_ERR_INVALID;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return MP_OK;
}

/* Appends one problem line; returns MP_ERR_INVALID (or MP_ERR_NOMEM if even that failed). */
static enum mp_result problem(struct mp_buf *errors, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static enum mp_result problem(struct mp_buf *errors, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (mp_buf_puts(errors, line) || mp_buf_puts(errors, "\n"))
        return MP_ERR_NOMEM;
    return MP_ERR_INVALID;
}

static enum mp_result validate(const struct key *k, const char *value, struct mp_buf *errors)
{
    char host[256];
    int port;
    char *end;
    long v;
    switch (k->type) {
    case KEY_STRING:
        return MP_OK;
    case KEY_HOSTPORT:
        if (mp_config_split_hostport(value, host, sizeof(host), &port) == MP_OK)
            return MP_OK;
        return problem(errors, "%s: expected host:port, got \"%s\"", k->name, value);
    case KEY_LOGLEVEL:
        if (mp_log_level_parse(value) >= 0)
            return MP_OK;
        return problem(errors, "%s: expected debug, info, warn or error", k->name);
    case KEY_URL:
        if (strncmp(value, "https://", 8) == 0 || strncmp(value, "http://", 7) == 0)
            return MP_OK;
        return problem(errors, "%s: expected an http:// or https:// URL", k->name);
    case KEY_INT:
        errno = 0;
        v = strtol(value, &end, 10);
        if (errno || *end || end == value || v < k->min || v > k->max)
            return problem(errors, "%s: expected an integer from %ld to %ld, got \"%s\"", k->name,
                           k->min, k->max, value);
        return MP_OK;
    }
    return MP_ERR_INTERNAL;
}

/* Stores a validated value; for strings, cfg takes a copy. */
static enum mp_result assign(struct mp_config *cfg, const struct key *k, const char *value)
{
    if (k->type == KEY_INT) {
        *int_at(cfg, k) = (int)strtol(value, NULL, 10);
        return MP_OK;
    }
    char *copy = strdup(value);
    if (!copy)
        return MP_ERR_NOMEM;
    free(*str_at(cfg, k));
    *str_at(cfg, k) = copy;
    return MP_OK;
}

static enum mp_result set_value(struct mp_config *cfg, const struct key *k, const char *value,
                                struct mp_buf *errors, int *failed)
{
    enum mp_result result = validate(k, value, errors);
    if (result == MP_ERR_INVALID) {
        *failed = 1;
        return MP_OK;
    }
    if (result)
        return result;
    return assign(cfg, k, value);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

/* Removes one level of matching single or double quotes. */
static char *unquote(char *s)
{
    size_t len = strlen(s);
    if (len >= 2 && (s[0] == '"' || s[0] == '\'') && s[len - 1] == s[0]) {
        s[len - 1] = '\0';
        return s + 1;
    }
    return s;
}

static enum mp_result load_file(struct mp_config *cfg, const char *path, struct mp_buf *errors,
                                int *failed)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        *failed = 1;
        enum mp_result result = problem(errors, "%s: cannot open: %s", path, strerror(errno));
        return result == MP_ERR_INVALID ? MP_OK : result;
    }
    enum mp_result result = MP_OK;
    char line[4096];
    for (int lineno = 1; !result && fgets(line, sizeof(line), f); lineno++) {
        char *s = trim(line);
        if (!s[0] || s[0] == '#')
            continue;
        if (strncmp(s, "export ", 7) == 0)
            s = trim(s + 7);
        char *eq = strchr(s, '=');
        size_t name_len = eq ? (size_t)(eq - s) : 0;
        while (name_len && (s[name_len - 1] == ' ' || s[name_len - 1] == '\t'))
            name_len--;
        const struct key *k = eq ? find_key(s, name_len) : NULL;
        if (!k) {
            *failed = 1;
            result = problem(errors, "%s:%d: %s", path, lineno,
                             eq ? "unknown key" : "expected KEY=VALUE");
            result = result == MP_ERR_INVALID ? MP_OK : result;
            continue;
        }
        result = set_value(cfg, k, unquote(trim(eq + 1)), errors, failed);
    }
    fclose(f);
    return result;
}

enum mp_result mp_config_load(struct mp_config *cfg, const char *file, char *const *envp,
                              struct mp_buf *errors)
{
    int failed = 0;
    enum mp_result result = MP_OK;
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; !result && i < NKEYS; i++)
        if (keys[i].def)
            result = assign(cfg, &keys[i], keys[i].def);
    if (!result && file)
        result = load_file(cfg, file, errors, &failed);
    for (size_t i = 0; !result && envp && envp[i]; i++) {
        const char *eq = strchr(envp[i], '=');
        if (!eq || strncmp(envp[i], "MPCPUSH_", 8) != 0)
            continue;
        const struct key *k = find_key(envp[i], (size_t)(eq - envp[i]));
        if (k)
            result = set_value(cfg, k, eq + 1, errors, &failed);
    }
    if (!result && !cfg->google_credentials) {
        const char *dir = NULL;
        for (size_t i = 0; envp && envp[i]; i++)
            if (strncmp(envp[i], "CREDENTIALS_DIRECTORY=", 22) == 0)
                dir = envp[i] + 22;
        if (dir) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/google-service-account.json", dir);
            result = (cfg->google_credentials = strdup(path)) ? MP_OK : MP_ERR_NOMEM;
        }
    }
    if (result)
        return result;
    return failed ? MP_ERR_INVALID : MP_OK;
}

enum mp_result mp_config_check(const struct mp_config *cfg, unsigned needs, struct mp_buf *errors)
{
    if ((needs & MP_NEED_DATABASE) && (!cfg->database_url || !cfg->database_url[0]))
        return problem(errors, "MPCPUSH_DATABASE_URL: required");
    return MP_OK;
}

static int hex_value(int c)
{
    return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

/* True when p starts a "password" keyword as libpq reads it: in a URI query after '?' or '&'
 * (percent-encoding allowed), in a conninfo string at the start or after white space; then
 * '=' (spaces around it in conninfo). *value is set to the start of the value. */
static bool password_at(const char *url, const char *p, bool uri, const char **value)
{
    if (uri ? p == url || (p[-1] != '?' && p[-1] != '&')
            : p > url && !isspace((unsigned char)p[-1]))
        return false;
    for (const char *w = "password"; *w; w++) {
        int c = (unsigned char)*p;
        if (uri && c == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])) {
            c = hex_value((unsigned char)p[1]) * 16 + hex_value((unsigned char)p[2]);
            p += 2;
        }
        if (c != *w)
            return false;
        p++;
    }
    while (!uri && isspace((unsigned char)*p))
        p++;
    if (*p++ != '=')
        return false;
    while (!uri && isspace((unsigned char)*p))
        p++;
    *value = p;
    return true;
}

/* The end of the value at v: the next '&' in a URI; in conninfo the closing quote of a quoted
 * value or white space, backslash escaping one character in both. */
static const char *value_end(const char *v, bool uri)
{
    if (uri)
        return v + strcspn(v, "&");
    bool quoted = *v == '\'';
    for (v += quoted; *v; v++) {
        if (*v == '\\' && v[1])
            v++;
        else if (quoted ? *v == '\'' : isspace((unsigned char)*v) != 0)
            return v + quoted;
    }
    return v;
}

/* Prints a connection string with every password replaced by ***: the one in a URI's user
 * information and the value of every password keyword (conninfo or URI query). */
static void print_masked_url(const char *url, FILE *out)
{
    bool uri = strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0;
    const char *from = url, *p = url, *value;
    if (uri) {
        const char *auth = strstr(url, "://") + 3;
        size_t n = strcspn(auth, "@/"); /* libpq: user information ends at the first '@' */
        const char *colon = auth[n] == '@' ? memchr(auth, ':', n) : NULL;
        if (colon) {
            fprintf(out, "%.*s:***", (int)(colon - url), url);
            from = p = auth + n;
        }
    }
    while (*p) {
        if (!password_at(url, p, uri, &value)) {
            p++;
            continue;
        }
        fprintf(out, "%.*s***", (int)(value - from), from);
        from = p = value_end(value, uri);
    }
    fputs(from, out);
}

void mp_config_print(const struct mp_config *cfg, FILE *out)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        fprintf(out, "%s=", k->name);
        if (k->type == KEY_INT) {
            fprintf(out, "%d", *int_at((struct mp_config *)cfg, k));
        } else {
            const char *v = *str_at((struct mp_config *)cfg, k);
            if (v && (k->flags & SECRET_URL))
                print_masked_url(v, out);
            else if (v)
                fputs(v, out);
        }
        fputc('\n', out);
    }
}

void mp_config_print_help(FILE *out)
{
    fputs("Configuration (environment, or KEY=VALUE lines in --config FILE; the environment "
          "wins):\n",
          out);
    for (size_t i = 0; i < NKEYS; i++)
        fprintf(out, "  %-32s %s%s%s%s\n", keys[i].name, keys[i].help,
                keys[i].def ? " [default: " : "", keys[i].def ? keys[i].def : "",
                keys[i].def ? "]" : "");
}

void mp_config_free(struct mp_config *cfg)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type != KEY_INT) {
            free(*str_at(cfg, &keys[i]));
            *str_at(cfg, &keys[i]) = NULL;
        }
    }
}

void mp_config_apply_log_level(const struct mp_config *cfg)
{
    int level = cfg->log_level ? mp_log_level_parse(cfg->log_level) : -1;
    mp_log_threshold = level >= 0 ? (enum mp_log_level)level : MP_LOG_INFO;
}
