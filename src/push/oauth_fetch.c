/* The JWT-bearer token exchange with Google's OAuth endpoint (or the emulator):
 * an RS256 assertion signed with the service-account key, posted form-encoded; the answer is
 * {"access_token","expires_in","token_type"} or an RFC 6749 error. Secrets (the assertion, the
 * access token) are wiped from every buffer that held them. */
#include "mpcpush/validate.h"
#include "oauth-int.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpcpush/buf.h"
#include "mpcpush/log.h"
#include "mpcpush/oauth.h"
#include "push-int.h"

#define GRANT_PREFIX    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion="
#define RESPONSE_MAX    65536
#define TIMEOUT_SECONDS 10L
#define ASSERTION_LIFE  3600

static void wipe_buf(struct mp_buf *buf)
{
    if (buf->data)
        OPENSSL_cleanse(buf->data, buf->cap);
    mp_buf_free(buf);
}

/* Signs the assertion; the caller wipes and frees the returned string. */
static enum mp_result make_assertion(const struct mp_oauth_key *key, char **out)
{
    enum mp_result result = MP_ERR_NOMEM;
    jwt_t *jwt = NULL;
    long now = (long)time(NULL);
    if (jwt_new(&jwt) != 0)
        goto out;
    if (jwt_add_header(jwt, "kid", key->private_key_id) ||
        jwt_add_grant(jwt, "iss", key->client_email) ||
        jwt_add_grant(jwt, "scope", MP_OAUTH_SCOPE) || jwt_add_grant(jwt, "aud", key->token_url) ||
        jwt_add_grant_int(jwt, "iat", now) || jwt_add_grant_int(jwt, "exp", now + ASSERTION_LIFE))
        goto out;
    result = MP_ERR_CRYPTO;
    if (jwt_set_alg(jwt, JWT_ALG_RS256, (const unsigned char *)key->private_key,
                    (int)strlen(key->private_key)) != 0)
        goto out;
    char *text = jwt_encode_str(jwt);
    if (!text)
        goto out;
    *out = text;
    result = MP_OK;
out:
    jwt_free(jwt); /* libjwt wipes its copy of the key */
    return result;
}

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    size_t n = size * nmemb;
    return mp_buf_append(userdata, ptr, n) == MP_OK ? n : 0;
}

/* Posts body to the token endpoint; *status is 0 when no HTTP answer came back. */
static enum mp_result post_form(const struct mp_oauth_key *key, const char *body,
                                struct mp_buf *resp, long *status, char *why, size_t why_size)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *curl = curl_easy_init();
    struct curl_slist *headers =
        curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
    struct curl_slist *more = headers ? curl_slist_append(headers, "Expect:") : NULL;
    if (!curl || !more) {
        curl_slist_free_all(headers);
        curl_easy_cleanup(curl);
        return MP_ERR_NOMEM;
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_URL, key->token_url);
    mp_push_limit_protocols(curl, "http,https");
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, TIMEOUT_SECONDS);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (key->ca_file) { /* an extra bundle: the system's roots stay trusted */
        curl_easy_setopt(curl, CURLOPT_CAINFO, key->ca_file);
        curl_easy_setopt(curl, CURLOPT_CAPATH, MP_SYSTEM_CA_PATH);
    }
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(curl);
    *status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(curl);
    curl_slist_free_all(headers);
    if (rc == CURLE_OK)
        return MP_OK;
    char quoted[CURL_ERROR_SIZE + 16];
    mp_log_quote(quoted, sizeof(quoted), errbuf[0] ? errbuf : curl_easy_strerror(rc));
    snprintf(why, why_size, "cause=network curl_code=%d error=%s", (int)rc, quoted);
    return MP_ERR_NETWORK;
}

static bool printable_token(const char *token)
{
    for (const unsigned char *p = (const unsigned char *)token; *p; p++)
        if (*p <= ' ' || *p >= 0x7f)
            return false;
    return token[0] != '\0';
}

static enum mp_result parse_success(json_t *root, char *token, size_t size, long long *expires_in,
                                    char *why, size_t why_size)
{
    json_t *access = json_object_get(root, "access_token");
    json_t *expires = json_object_get(root, "expires_in");
    const char *value = json_string_value(access);
    long long lifetime = json_is_integer(expires) ? (long long)json_integer_value(expires) : -1;
    if (json_is_string(expires))
        lifetime = strtoll(json_string_value(expires), NULL, 10);
    if (!value || !printable_token(value) || strlen(value) >= size || lifetime <= 0) {
        snprintf(why, why_size,
                 "cause=bad_response error=\"no usable access_token and "
                 "expires_in in the answer\"");
        return MP_ERR_INVALID;
    }
    memcpy(token, value, strlen(value) + 1);
    OPENSSL_cleanse((char *)value, strlen(value)); /* jansson's copy */
    *expires_in = lifetime;
    return MP_OK;
}

/* True when word occurs in text delimited by non-letters ("iat" but not "appropriate"). */
static bool has_word(const char *text, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = strstr(text, word); p; p = strstr(p + 1, word)) {
        bool left = p == text || !isalpha((unsigned char)p[-1]);
        bool right = !isalpha((unsigned char)p[n]);
        if (left && right)
            return true;
    }
    return false;
}

/* Explains a refused exchange; the text Google returns holds no secrets. */
static enum mp_result explain_error(long status, json_t *root, char *why, size_t why_size)
{
    const char *error = json_string_value(json_object_get(root, "error"));
    const char *desc = json_string_value(json_object_get(root, "error_description"));
    char qerr[64], qdesc[256];
    mp_log_quote(qerr, sizeof(qerr), error ? error : "none");
    mp_log_quote(qdesc, sizeof(qdesc), desc ? desc : "");
    if (status >= 500 || status == 429 || status == 408) {
        snprintf(why, why_size, "cause=server status=%ld error=%s description=%s", status, qerr,
                 qdesc);
        return MP_ERR_NETWORK;
    }
    const char *cause = "rejected", *hint = NULL;
    if (error && strcmp(error, "invalid_grant") == 0 && desc) {
        if (strstr(desc, "Invalid JWT Signature")) {
            cause = "key_rejected";
            hint = "the service-account key is revoked or not this account's: create a new key";
        } else if (strstr(desc, "reasonable timeframe") || has_word(desc, "iat") ||
                   has_word(desc, "exp")) {
            cause = "clock_skew";
            hint = "clock skew: check the system clock";
        }
    }
    snprintf(why, why_size, "cause=%s status=%ld error=%s description=%s%s%s%s", cause, status,
             qerr, qdesc, hint ? " hint=\"" : "", hint ? hint : "", hint ? "\"" : "");
    return MP_ERR_UNAUTHORIZED;
}

enum mp_result mp_oauth_fetch(const struct mp_oauth_key *key, char *token, size_t size,
                              long long *expires_in, char *why, size_t why_size)
{
    char *assertion = NULL;
    struct mp_buf body, resp;
    json_t *root = NULL;
    long status = 0;
    mp_buf_init(&body, 0);
    mp_buf_init(&resp, RESPONSE_MAX);
    snprintf(why, why_size, "cause=internal");
    enum mp_result result = make_assertion(key, &assertion);
    if (result) {
        snprintf(why, why_size, "cause=sign error=\"%s\"", mp_strerror(result));
        goto out;
    }
    result = mp_buf_puts(&body, GRANT_PREFIX);
    if (!result)
        result = mp_buf_puts(&body, assertion);
    if (!result)
        result = post_form(key, body.data, &resp, &status, why, why_size);
    if (result)
        goto out;
    root = resp.len ? json_loadb(resp.data, resp.len, 0, NULL) : NULL;
    if (status == 200)
        result = parse_success(root, token, size, expires_in, why, why_size);
    else
        result = explain_error(status, root, why, why_size);
out:
    if (assertion) {
        OPENSSL_cleanse(assertion, strlen(assertion));
        free(assertion);
    }
    wipe_buf(&body);
    wipe_buf(&resp);
    json_decref(root);
    return result;
}
