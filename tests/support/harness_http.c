/* Test support: HTTP requests over real sockets with libcurl. */
#include "harness.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct sink {
    char *data;
    size_t len;
};

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct sink *s = userdata;
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

bool th_http_try(struct th_response *resp, const char *method, const char *url,
                 const char *const *headers, const char *body, size_t len)
{
    memset(resp, 0, sizeof(*resp));
    CURL *curl = curl_easy_init();
    struct curl_slist *list = NULL;
    struct sink sink = {calloc(1, 1), 0};
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    list = curl_slist_append(list, "Expect:");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 90L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
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

void th_http(struct th_response *resp, const char *method, const char *url,
             const char *const *headers, const char *body, size_t len)
{
    if (!th_http_try(resp, method, url, headers, body, len))
        fail_msg("%s %s: no HTTP answer", method, url);
}

const char *th_error_code(const struct th_response *resp)
{
    json_t *code = json_object_get(json_object_get(resp->json, "error"), "code");
    return json_is_string(code) ? json_string_value(code) : "";
}

void th_response_free(struct th_response *resp)
{
    free(resp->body);
    json_decref(resp->json);
    memset(resp, 0, sizeof(*resp));
}
