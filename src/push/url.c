/* Outgoing URL policy, clocks and Retry-After parsing shared by the push modules. */
#include "push-int.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define RETRY_AFTER_MAX 86400

static bool loopback_host(const char *host)
{
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
        strcmp(host, "::1") == 0)
        return true;
    if (strncmp(host, "127.", 4) != 0)
        return false;
    for (const char *p = host + 4; *p; p++)
        if (!isdigit((unsigned char)*p) && *p != '.')
            return false;
    return true;
}

enum mp_result mp_push_check_url(const char *url, bool *plain)
{
    enum mp_result result = MP_ERR_INVALID;
    char *scheme = NULL, *host = NULL;
    CURLU *u = curl_url();
    if (!u)
        return MP_ERR_NOMEM;
    if (!url || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        goto out;
    bool is_plain = strcmp(scheme, "http") == 0;
    if (!is_plain && strcmp(scheme, "https") != 0)
        goto out;
    if (is_plain && !loopback_host(host))
        goto out;
    *plain = is_plain;
    result = MP_OK;
out:
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return result;
}

void mp_push_limit_protocols(void *easy, const char *protocols)
{
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85: CURLOPT_PROTOCOLS_STR */
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, protocols);
#else
    long mask = strstr(protocols, "https") ? CURLPROTO_HTTPS : 0;
    if (strstr(protocols, "http,") || strcmp(protocols, "http") == 0)
        mask |= CURLPROTO_HTTP;
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS, mask);
#endif
}

long long mp_push_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int mp_push_parse_retry_after(const char *value, long long now_unix)
{
    if (!value)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t len = strlen(value);
    while (len && (value[len - 1] == ' ' || value[len - 1] == '\t' || value[len - 1] == '\r' ||
                   value[len - 1] == '\n'))
        len--;
    if (len == 0 || len >= 64)
        return -1;
    char text[64];
    memcpy(text, value, len);
    text[len] = '\0';
    size_t digits = strspn(text, "0123456789");
    if (digits == len) {
        if (len > 6)
            return RETRY_AFTER_MAX;
        long v = strtol(text, NULL, 10);
        return v > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : (int)v;
    }
    /* An HTTP-date names a weekday; that rules out bare numbers with junk after them. */
    if (digits > 0 || !isalpha((unsigned char)text[0]))
        return -1;
    time_t when = curl_getdate(text, NULL);
    if (when == -1)
        return -1;
    long long delta = (long long)when - now_unix;
    if (delta < 0)
        return 0;
    return delta > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : (int)delta;
}
