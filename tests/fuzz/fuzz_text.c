/* The small parsers and encoders that see untrusted text: base64 (signature headers, JWK
 * numbers), Retry-After, the JWKS location policy, log quoting and redaction, host:port, the id
 * and token validators, and the FCM wakeup message built from stored ids and tokens.
 *
 * Input: byte 0 selects the function (modulo the number of cases), byte 1 is a size or flag
 * where one is needed, the rest is the text (lines where several strings are needed).
 *
 * Invariants: base64url decoding is canonical (decode then encode gives the input back); the
 * outputs fit their buffers and stay NUL-terminated; a JWKS URL accepted over plain http://
 * names a loopback host as libcurl (which fetches it) parses it; the wakeup is valid JSON
 * holding exactly the token given. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_common.h"
#include "mpcpush/config.h"
#include "mpcpush/fcm.h"
#include "mpcpush/log.h"
#include "mpcpush/validate.h"
#include "push/push-int.h"
#include "webhook/jwks-int.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fz_quiet_logs();
    return 0;
}

static void fuzz_b64(const char *text, size_t len, unsigned flag)
{
    unsigned char out[1024];
    size_t cap = flag % sizeof(out), n = 0;
    bool url = flag & 1;
    enum mp_result r = mp_b64_decode(text, len, url, out, cap, &n);
    FZ_CHECK(r == MP_OK || r == MP_ERR_INVALID || r == MP_ERR_TOO_LARGE);
    if (r)
        return;
    FZ_CHECK(n <= cap);
    size_t bare = len;
    while (bare > 0 && text[bare - 1] == '=')
        bare--;
    char again[sizeof(out) / 3 * 4 + 8];
    size_t m = mp_b64url_encode(out, n, again);
    FZ_CHECK(m == bare);
    if (url)
        FZ_CHECK(memcmp(again, text, m) == 0);
}

static void fuzz_retry_after(const char *text)
{
    int v = mp_push_parse_retry_after(text, 1700000000LL);
    FZ_CHECK(v >= -1 && v <= 86400);
}

/* A location the JWKS source accepts as a plain http:// URL must be loopback for libcurl. */
static void fuzz_jwks_location(const char *text)
{
    struct mp_jwks_source src;
    char why[256];
    enum mp_result r = mp_jwks_source_init(&src, text, NULL, why, sizeof(why));
    if (r == MP_OK && src.is_url && strncasecmp(text, "http://", 7) == 0) {
        CURLU *u = curl_url();
        char *host = NULL;
        if (u && curl_url_set(u, CURLUPART_URL, text, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
            if (strcmp(host, "127.0.0.1") != 0 && strcasecmp(host, "localhost") != 0 &&
                strcmp(host, "[::1]") != 0) {
                fprintf(stderr, "url %s accepted, libcurl host %s\n", text, host);
                FZ_CHECK(!"plain http JWKS URL to a non-loopback host");
            }
        }
        curl_free(host);
        curl_url_cleanup(u);
    }
    mp_jwks_source_clear(&src);
}

static void fuzz_log(const char *text, unsigned size)
{
    char out[300];
    size %= sizeof(out);
    memset(out, 'Z', sizeof(out));
    mp_log_quote(out, size, text);
    if (size)
        FZ_CHECK(memchr(out, '\0', size) != NULL);
    for (size_t i = size; i < sizeof(out); i++)
        FZ_CHECK(out[i] == 'Z');
    if (size && out[0] == '"')
        for (const unsigned char *p = (const unsigned char *)out; *p; p++)
            FZ_CHECK(*p >= ' ' && *p != 0x7f);
    char red[32];
    mp_log_redact(red, sizeof(red), text);
    FZ_CHECK(strncmp(red, "...", 3) == 0);
}

static void fuzz_hostport(const char *text, unsigned size)
{
    char host[300];
    int port = -1;
    size = size % sizeof(host) + 1;
    memset(host, 'Z', sizeof(host));
    if (mp_config_split_hostport(text, host, size, &port) == MP_OK) {
        FZ_CHECK(port >= 0 && port <= 65535);
        FZ_CHECK(memchr(host, '\0', size) != NULL);
    }
    for (size_t i = size; i < sizeof(host); i++)
        FZ_CHECK(host[i] == 'Z');
}

static void fuzz_validators(const char *text, size_t len)
{
    bool id = mp_valid_id(text, len);
    if (id)
        FZ_CHECK(len >= 1 && len <= MP_ID_MAX &&
                 strspn(text, "abcdefghijklmnopqrstuvwxyz"
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              "0123456789._:-") == len);
    if (mp_valid_fcm_token(text, len))
        FZ_CHECK(len >= 1 && len <= MP_TOKEN_MAX && strlen(text) == len && !strchr(text, ' '));
    (void)mp_valid_platform(text);
}

/* Lines: token, platform, wallet, device, alert title, alert body. */
static void fuzz_wakeup(char *text, unsigned flag)
{
    char *field[6] = {NULL};
    char *save = NULL, *p = text;
    for (int i = 0; i < 6; i++, p = NULL)
        field[i] = strtok_r(p, "\n", &save);
    struct mp_wakeup w = {.token = field[0],
                          .platform = field[1],
                          .wallet_id = field[2],
                          .device_id = field[3],
                          .alert_title = field[4],
                          .alert_body = field[5],
                          .pending = flag,
                          .latest_id = (long long)flag << 40,
                          .ttl_seconds = (long long)flag * 100003 - 50000,
                          .validate_only = flag & 1,
                          .now_unix = 1700000000};
    struct mp_buf out;
    mp_buf_init(&out, 1 << 16);
    enum mp_result r = mp_fcm_build_wakeup(&w, &out);
    if (r == MP_OK) {
        json_t *root = json_loadb(out.data, out.len, JSON_REJECT_DUPLICATES, NULL);
        const char *token =
            json_string_value(json_object_get(json_object_get(root, "message"), "token"));
        FZ_CHECK(token && strcmp(token, w.token) == 0);
        json_decref(root);
    }
    mp_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned which = data[0] % 8, flag = data[1];
    struct fz_input in = {data + 2, size - 2};
    size_t len;
    char *text = fz_take_rest(&in, &len);
    switch (which) {
    case 0:
        fuzz_b64(text, len, flag);
        break;
    case 1:
        fuzz_retry_after(text);
        break;
    case 2:
        fuzz_jwks_location(text);
        break;
    case 3:
        fuzz_log(text, flag);
        break;
    case 4:
        fuzz_hostport(text, flag);
        break;
    case 5:
        fuzz_validators(text, len);
        break;
    case 6:
        fuzz_wakeup(text, flag);
        break;
    case 7: {
        bool plain = false;
        if (mp_push_check_url(text, &plain) == MP_OK && plain)
            FZ_CHECK(strncasecmp(text, "http", 4) == 0);
        break;
    }
    }
    free(text);
    return 0;
}
