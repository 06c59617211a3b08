/* The OAuth access-token source: one cached token per service account, refreshed by a single
 * thread at a time while the others wait on a condition variable for its result. */
#include "mpcpush/oauth.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpcpush/log.h"
#include "oauth-int.h"
#include "push-int.h"

#define EARLY_MS_MAX     300000 /* refresh at most 5 minutes early... */
#define EARLY_PERCENT    10     /* ...or at 10% of the lifetime when that is less */
#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS   60000

struct mp_oauth {
    struct mp_oauth_key key;
    pthread_mutex_t lock;
    pthread_cond_t done; /* broadcast when a refresh ends */
    bool refreshing;
    char token[MP_OAUTH_TOKEN_MAX]; /* "" when none */
    long long refresh_at_ms;        /* monotonic: refresh from here on */
    long long expires_at_ms;        /* monotonic: the token is dead from here on */
    long long expires_unix;
    long long next_attempt_ms; /* monotonic: after a failure, no attempt before this */
    int backoff_ms;
    unsigned long long refreshes, failures;
};

enum mp_result mp_oauth_new(const char *credentials_file, const char *token_url_override,
                            const char *ca_file, struct mp_oauth **out, struct mp_buf *errors)
{
    if (!credentials_file || !credentials_file[0]) {
        if (errors && (mp_buf_puts(errors, "MPCPUSH_GOOGLE_CREDENTIALS: not set\n")))
            return MP_ERR_NOMEM;
        return MP_ERR_INVALID;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return MP_ERR_INTERNAL;
    struct mp_oauth *o = calloc(1, sizeof(*o));
    enum mp_result result = o ? MP_OK : MP_ERR_NOMEM;
    if (!result)
        result = mp_oauth_key_load(credentials_file, token_url_override, ca_file, &o->key, errors);
    if (result) {
        free(o);
        curl_global_cleanup();
        return result;
    }
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->done, NULL);
    *out = o;
    return MP_OK;
}

const char *mp_oauth_project_id(const struct mp_oauth *o)
{
    return o->key.project_id;
}

const char *mp_oauth_client_email(const struct mp_oauth *o)
{
    return o->key.client_email;
}

static void forget_token(struct mp_oauth *o)
{
    OPENSSL_cleanse(o->token, sizeof(o->token));
    o->refresh_at_ms = 0;
    o->expires_at_ms = 0;
    o->expires_unix = 0;
}

static void store_token(struct mp_oauth *o, const char *token, long long started_ms,
                        long long started_unix, long long lifetime_s)
{
    long long lifetime_ms = lifetime_s * 1000;
    long long early = lifetime_ms * EARLY_PERCENT / 100;
    if (early > EARLY_MS_MAX)
        early = EARLY_MS_MAX;
    memcpy(o->token, token, strlen(token) + 1);
    o->expires_at_ms = started_ms + lifetime_ms;
    o->refresh_at_ms = o->expires_at_ms - early;
    o->expires_unix = started_unix + lifetime_s;
    o->backoff_ms = 0;
    o->next_attempt_ms = 0;
    o->refreshes++;
}

static void note_failure(struct mp_oauth *o, enum mp_result result, const char *why)
{
    o->failures++;
    o->backoff_ms = o->backoff_ms ? o->backoff_ms * 2 : BACKOFF_FIRST_MS;
    if (o->backoff_ms > BACKOFF_MAX_MS)
        o->backoff_ms = BACKOFF_MAX_MS;
    o->next_attempt_ms = mp_push_now_ms() + o->backoff_ms;
    char url[512];
    mp_log_quote(url, sizeof(url), o->key.token_url);
    if (result == MP_ERR_NETWORK)
        MP_WARN("oauth_refresh_failed", "%s url=%s failures=%llu retry_in_ms=%d", why, url,
                o->failures, o->backoff_ms);
    else
        MP_ERROR("oauth_refresh_failed", "%s url=%s failures=%llu retry_in_ms=%d", why, url,
                 o->failures, o->backoff_ms);
}

/* Fetches a token with the lock released; called and returns with the lock held. */
static void refresh_locked(struct mp_oauth *o)
{
    char token[MP_OAUTH_TOKEN_MAX], why[768];
    long long lifetime_s = 0;
    o->refreshing = true;
    pthread_mutex_unlock(&o->lock);
    long long started_ms = mp_push_now_ms();
    long long started_unix = (long long)time(NULL);
    enum mp_result result =
        mp_oauth_fetch(&o->key, token, sizeof(token), &lifetime_s, why, sizeof(why));
    pthread_mutex_lock(&o->lock);
    if (!result) {
        char client[256];
        store_token(o, token, started_ms, started_unix, lifetime_s);
        MP_INFO("oauth_token_refreshed", "client=%s expires_in=%lld refreshes=%llu",
                mp_log_quote(client, sizeof(client), o->key.client_email), lifetime_s,
                o->refreshes);
    } else {
        note_failure(o, result, why);
    }
    OPENSSL_cleanse(token, sizeof(token));
    o->refreshing = false;
    pthread_cond_broadcast(&o->done);
}

/* Copies the cached token if it has not expired yet. */
static enum mp_result copy_live_token(const struct mp_oauth *o, char *out, size_t size)
{
    if (!o->token[0] || mp_push_now_ms() >= o->expires_at_ms)
        return MP_ERR_UNAVAILABLE;
    size_t len = strlen(o->token);
    if (len >= size)
        return MP_ERR_TOO_LARGE;
    memcpy(out, o->token, len + 1);
    return MP_OK;
}

enum mp_result mp_oauth_token(struct mp_oauth *o, char *out, size_t size)
{
    enum mp_result result;
    pthread_mutex_lock(&o->lock);
    for (;;) {
        long long now = mp_push_now_ms();
        if (o->token[0] && now < o->refresh_at_ms) {
            result = copy_live_token(o, out, size);
            break;
        }
        if (o->refreshing) {
            pthread_cond_wait(&o->done, &o->lock);
            continue;
        }
        if (now >= o->next_attempt_ms)
            refresh_locked(o);
        /* Fresh, or the old one while it lasts, or nothing until the back-off ends. */
        result = copy_live_token(o, out, size);
        break;
    }
    pthread_mutex_unlock(&o->lock);
    return result;
}

void mp_oauth_invalidate(struct mp_oauth *o, const char *token)
{
    if (!token)
        return;
    pthread_mutex_lock(&o->lock);
    bool current = o->token[0] && strcmp(o->token, token) == 0;
    if (current)
        forget_token(o);
    pthread_mutex_unlock(&o->lock);
    char client[256];
    if (current)
        MP_INFO("oauth_token_invalidated", "client=%s reason=\"rejected by FCM\"",
                mp_log_quote(client, sizeof(client), o->key.client_email));
}

void mp_oauth_stats(struct mp_oauth *o, struct mp_oauth_stats *out)
{
    pthread_mutex_lock(&o->lock);
    out->refreshes = o->refreshes;
    out->failures = o->failures;
    out->expires_unix = o->token[0] ? o->expires_unix : 0;
    pthread_mutex_unlock(&o->lock);
}

void mp_oauth_free(struct mp_oauth *o)
{
    if (!o)
        return;
    mp_oauth_key_clear(&o->key);
    OPENSSL_cleanse(o->token, sizeof(o->token));
    pthread_mutex_destroy(&o->lock);
    pthread_cond_destroy(&o->done);
    free(o);
    curl_global_cleanup();
}
