/* JSON Web Key Sets for Fireblocks-Webhook-Signature (v2): where a set comes from (a file, or an
 * https URL fetched with libcurl under size and time limits), turning its RSA keys into
 * EVP_PKEYs with the OpenSSL 3 provider API, and the base64 codecs and RS512 verifier contexts
 * the verifier shares. */
#include "mpcpush/validate.h"
#include "webhook/jwks-int.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mpcpush/buf.h"
#include "mpcpush/log.h"

#define RSA_MIN_BITS  2048
#define RSA_MAX_BYTES 1024 /* 8192-bit modulus */
#define RSA_E_MAX     8    /* bytes of public exponent */

struct jwk {
    char *kid;
    EVP_PKEY *pkey;
    EVP_MD_CTX *verifier; /* mp_rs512_verifier_new(pkey): copied, never used */
};

struct mp_jwks {
    size_t count;
    struct jwk keys[MP_JWKS_MAX_KEYS];
};

static void set_why(char *why, size_t why_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_why(char *why, size_t why_size, const char *fmt, ...)
{
    if (!why || why_size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_size, fmt, ap);
    va_end(ap);
}

/* ---- base64 ---- */

static int b64_value(unsigned char c, bool url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

enum mp_result mp_b64_decode(const char *in, size_t len, bool url, unsigned char *out, size_t cap,
                             size_t *out_len)
{
    size_t pad = 0;
    while (pad < 2 && len > 0 && in[len - 1] == '=') {
        len--;
        pad++;
    }
    if ((pad && (len + pad) % 4 != 0) || len % 4 == 1)
        return MP_ERR_INVALID;
    size_t need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (need > cap)
        return MP_ERR_TOO_LARGE;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)in[i], url);
        if (v < 0)
            return MP_ERR_INVALID;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* leftover bits must be zero: one encoding per value */
        return MP_ERR_INVALID;
    *out_len = o;
    return MP_OK;
}

size_t mp_b64url_encode(const unsigned char *in, size_t len, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        if (i + 1 < len)
            out[o++] = alphabet[(v >> 6) & 63];
        if (i + 2 < len)
            out[o++] = alphabet[v & 63];
    }
    return o;
}

/* ---- sources ---- */

static bool is_loopback_host(const char *host, size_t len)
{
    return (len == 9 && strncmp(host, "127.0.0.1", len) == 0) ||
           (len == 9 && strncasecmp(host, "localhost", len) == 0) ||
           (len == 5 && strncmp(host, "[::1]", len) == 0);
}

/* Checks the part of an http(s) URL after "scheme://": a host, an optional port, no userinfo. */
static enum mp_result check_authority(const char *rest, bool need_loopback, char *why,
                                      size_t why_size)
{
    size_t alen = strcspn(rest, "/?#");
    for (const unsigned char *p = (const unsigned char *)rest; *p; p++)
        if (*p <= ' ' || *p >= 0x7f) {
            set_why(why, why_size, "the URL contains spaces or control characters");
            return MP_ERR_INVALID;
        }
    if (memchr(rest, '@', alen)) {
        set_why(why, why_size, "credentials in the URL are not supported");
        return MP_ERR_INVALID;
    }
    size_t hlen = rest[0] == '[' ? strcspn(rest, "]") + 1 : strcspn(rest, ":/?#");
    if (hlen == 0 || hlen > alen) {
        set_why(why, why_size, "the URL has no host");
        return MP_ERR_INVALID;
    }
    if (hlen < alen &&
        (rest[hlen] != ':' || strspn(rest + hlen + 1, "0123456789") != alen - hlen - 1)) {
        set_why(why, why_size, "the URL has a bad host or port");
        return MP_ERR_INVALID;
    }
    if (need_loopback && !is_loopback_host(rest, hlen)) {
        set_why(why, why_size,
                "http:// is allowed only for 127.0.0.1, localhost or [::1]; use https://");
        return MP_ERR_INVALID;
    }
    return MP_OK;
}

enum mp_result mp_jwks_source_init(struct mp_jwks_source *src, const char *location,
                                   const char *ca_file, char *why, size_t why_size)
{
    enum mp_result result = MP_OK;
    memset(src, 0, sizeof(*src));
    if (!location || !location[0]) {
        set_why(why, why_size, "empty location");
        return MP_ERR_INVALID;
    }
    if (strncasecmp(location, "https://", 8) == 0) {
        src->is_url = true;
        result = check_authority(location + 8, false, why, why_size);
    } else if (strncasecmp(location, "http://", 7) == 0) {
        src->is_url = true;
        result = check_authority(location + 7, true, why, why_size);
    } else if (strstr(location, "://")) {
        set_why(why, why_size, "unsupported URL scheme; use https://");
        result = MP_ERR_INVALID;
    }
    if (result)
        return result;
    src->location = strdup(location);
    src->ca_file = ca_file && ca_file[0] ? strdup(ca_file) : NULL;
    if (!src->location || (ca_file && ca_file[0] && !src->ca_file)) {
        set_why(why, why_size, "out of memory");
        return MP_ERR_NOMEM;
    }
    return MP_OK;
}

void mp_jwks_source_clear(struct mp_jwks_source *src)
{
    free(src->location);
    free(src->ca_file);
    src->location = NULL;
    src->ca_file = NULL;
}

/* ---- reading and fetching ---- */

static enum mp_result read_file(const char *path, struct mp_buf *doc, char *why, size_t why_size)
{
    FILE *f = fopen(path, "rb");
    enum mp_result result = MP_OK;
    char chunk[8192];
    if (!f) {
        set_why(why, why_size, "cannot read: %s", strerror(errno));
        return MP_ERR_IO;
    }
    size_t n;
    while (!result && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        result = mp_buf_append(doc, chunk, n);
    if (!result && ferror(f)) {
        set_why(why, why_size, "cannot read: %s", strerror(errno));
        result = MP_ERR_IO;
    } else if (result == MP_ERR_TOO_LARGE) {
        set_why(why, why_size, "larger than %d bytes", MP_JWKS_MAX_BYTES);
    } else if (result) {
        set_why(why, why_size, "%s", mp_strerror(result));
    }
    fclose(f);
    return result;
}

struct fetch {
    struct mp_buf *doc;
    enum mp_result failed;
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct fetch *f = userdata;
    enum mp_result result = mp_buf_append(f->doc, data, size * nmemb);
    if (result) {
        f->failed = result;
        return 0; /* aborts the transfer */
    }
    return size * nmemb;
}

/* Sets every option of the fetch; certificate checks stay on whatever the URL. */
static CURLcode fetch_setup(CURL *curl, const struct mp_jwks_source *src, struct fetch *f,
                            char *error)
{
    bool https = strncasecmp(src->location, "https://", 8) == 0;
    CURLcode rc = curl_easy_setopt(curl, CURLOPT_URL, src->location);
#if LIBCURL_VERSION_NUM >= 0x075500
    if (!rc)
        rc = curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, https ? "https" : "http");
    if (!rc)
        rc = curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "https");
#else
    if (!rc)
        rc = curl_easy_setopt(curl, CURLOPT_PROTOCOLS, https ? CURLPROTO_HTTPS : CURLPROTO_HTTP);
    if (!rc)
        rc = curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS, CURLPROTO_HTTPS);
#endif
    if (!rc)
        rc = curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    if (!rc)
        rc = curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 3L);
    if (!rc)
        rc = curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    if (!rc)
        rc = curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!rc && src->ca_file)
        rc = curl_easy_setopt(curl, CURLOPT_CAINFO, src->ca_file);
    if (!rc && src->ca_file) /* an extra bundle: the system's roots stay trusted */
        rc = curl_easy_setopt(curl, CURLOPT_CAPATH, MP_SYSTEM_CA_PATH);
    if (!rc)
        rc = curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (!rc)
        rc = curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, (long)MP_JWKS_TIMEOUT);
    if (!rc)
        rc = curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)MP_JWKS_TIMEOUT);
    if (!rc)
        rc = curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)MP_JWKS_MAX_BYTES);
    if (!rc)
        rc = curl_easy_setopt(curl, CURLOPT_USERAGENT, "mpcpush/" MPCPUSH_VERSION);
    if (!rc)
        rc = curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    if (!rc)
        rc = curl_easy_setopt(curl, CURLOPT_WRITEDATA, f);
    if (!rc)
        rc = curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
    return rc;
}

static enum mp_result fetch_url(const struct mp_jwks_source *src, struct mp_buf *doc, char *why,
                                size_t why_size)
{
    char error[CURL_ERROR_SIZE] = "";
    struct fetch f = {doc, MP_OK};
    long status = 0;
    enum mp_result result = MP_OK;
    CURL *curl = curl_easy_init();
    if (!curl) {
        set_why(why, why_size, "cannot start libcurl");
        return MP_ERR_NOMEM;
    }
    CURLcode rc = fetch_setup(curl, src, &f, error);
    if (!rc)
        rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (f.failed == MP_ERR_TOO_LARGE || rc == CURLE_FILESIZE_EXCEEDED) {
        set_why(why, why_size, "larger than %d bytes", MP_JWKS_MAX_BYTES);
        result = MP_ERR_TOO_LARGE;
    } else if (f.failed) {
        set_why(why, why_size, "%s", mp_strerror(f.failed));
        result = f.failed;
    } else if (rc) {
        set_why(why, why_size, "%s", error[0] ? error : curl_easy_strerror(rc));
        result = MP_ERR_NETWORK;
    } else if (status != 200) {
        set_why(why, why_size, "HTTP status %ld", status);
        result = MP_ERR_NETWORK;
    }
    curl_easy_cleanup(curl);
    return result;
}

/* ---- parsing ---- */

/* The big-endian unsigned integer base64url-encoded in jwk[name], or NULL. */
static BIGNUM *jwk_bn(json_t *jwk, const char *name, size_t max_bytes)
{
    json_t *value = json_object_get(jwk, name);
    unsigned char bin[RSA_MAX_BYTES];
    size_t len = 0;
    if (!json_is_string(value) || max_bytes > sizeof(bin))
        return NULL;
    if (mp_b64_decode(json_string_value(value), json_string_length(value), true, bin, max_bytes,
                      &len) ||
        len == 0)
        return NULL;
    return BN_bin2bn(bin, (int)len, NULL);
}

/* An RSA public key from the n and e of a JWK, or NULL when they are missing or unsafe. */
static EVP_PKEY *jwk_rsa(json_t *jwk)
{
    BIGNUM *n = jwk_bn(jwk, "n", RSA_MAX_BYTES), *e = jwk_bn(jwk, "e", RSA_E_MAX);
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    if (!n || !e || BN_num_bits(n) < RSA_MIN_BITS || !BN_is_odd(e) || BN_is_one(e))
        goto out;
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    ERR_clear_error();
    return pkey;
}

static bool member_is(json_t *obj, const char *name, const char *want, bool absent_ok)
{
    json_t *value = json_object_get(obj, name);
    if (!value)
        return absent_ok;
    return json_is_string(value) && strcmp(json_string_value(value), want) == 0;
}

static bool valid_kid(json_t *kid)
{
    size_t len = json_string_length(kid);
    if (!json_is_string(kid) || len == 0 || len > MP_JWKS_KID_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *)json_string_value(kid); *p; p++)
        if (*p < ' ' || *p >= 0x7f)
            return false;
    return true;
}

/* The index of the key named kid, or -1. */
static long find(const struct mp_jwks *set, const char *kid)
{
    for (size_t i = 0; set && i < set->count; i++)
        if (strcmp(set->keys[i].kid, kid) == 0)
            return (long)i;
    return -1;
}

/* Adds jwk to set when it is a usable RSA signing key; skips it otherwise. */
static enum mp_result add_key(struct mp_jwks *set, json_t *jwk)
{
    json_t *kid = json_object_get(jwk, "kid");
    char quoted[MP_JWKS_KID_MAX + 16];
    if (!json_is_object(jwk) || !member_is(jwk, "kty", "RSA", false) ||
        !member_is(jwk, "use", "sig", true) || !member_is(jwk, "alg", "RS512", true))
        return MP_OK; /* not meant for RS512 signatures */
    if (!valid_kid(kid)) {
        MP_WARN("jwks_key_skipped", "reason=\"missing or invalid kid\"");
        return MP_OK;
    }
    mp_log_quote(quoted, sizeof(quoted), json_string_value(kid));
    if (find(set, json_string_value(kid)) >= 0) {
        MP_WARN("jwks_key_skipped", "kid=%s reason=\"duplicate kid\"", quoted);
        return MP_OK;
    }
    EVP_PKEY *pkey = jwk_rsa(jwk);
    if (!pkey) {
        MP_WARN("jwks_key_skipped", "kid=%s reason=\"bad or short RSA key\"", quoted);
        return MP_OK;
    }
    char *copy = strdup(json_string_value(kid));
    EVP_MD_CTX *verifier = mp_rs512_verifier_new(pkey);
    if (!copy || !verifier) {
        free(copy);
        EVP_MD_CTX_free(verifier);
        EVP_PKEY_free(pkey);
        return MP_ERR_NOMEM;
    }
    set->keys[set->count].kid = copy;
    set->keys[set->count].pkey = pkey;
    set->keys[set->count].verifier = verifier;
    set->count++;
    return MP_OK;
}

enum mp_result mp_jwks_parse(const char *json, size_t len, struct mp_jwks **out, char *why,
                             size_t why_size)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *keys = json_object_get(root, "keys"), *jwk;
    struct mp_jwks *set = NULL;
    enum mp_result result = MP_ERR_INVALID;
    size_t i;
    if (!root) {
        set_why(why, why_size, "not JSON: line %d: %s", jerr.line, jerr.text);
        goto out;
    }
    if (!json_is_array(keys)) {
        set_why(why, why_size, "not a JWKS: no \"keys\" array");
        goto out;
    }
    set = calloc(1, sizeof(*set));
    result = set ? MP_OK : MP_ERR_NOMEM;
    json_array_foreach(keys, i, jwk)
    {
        if (result)
            break;
        if (set->count == MP_JWKS_MAX_KEYS) {
            MP_WARN("jwks_keys_ignored", "kept=%d reason=\"too many keys\"", MP_JWKS_MAX_KEYS);
            break;
        }
        result = add_key(set, jwk);
    }
    if (result == MP_ERR_NOMEM)
        set_why(why, why_size, "out of memory");
    else if (!result && set->count == 0) {
        set_why(why, why_size, "no usable RSA signing key (kty RSA, use sig, alg RS512, kid)");
        result = MP_ERR_INVALID;
    }
out:
    json_decref(root);
    if (result)
        mp_jwks_free(set);
    else
        *out = set;
    return result;
}

enum mp_result mp_jwks_load(const struct mp_jwks_source *src, struct mp_jwks **out, char *why,
                            size_t why_size)
{
    struct mp_buf doc;
    mp_buf_init(&doc, MP_JWKS_MAX_BYTES);
    enum mp_result result = src->is_url ? fetch_url(src, &doc, why, why_size)
                                        : read_file(src->location, &doc, why, why_size);
    if (!result)
        result = mp_jwks_parse(doc.data ? doc.data : "", doc.len, out, why, why_size);
    mp_buf_free(&doc);
    return result;
}

EVP_PKEY *mp_jwks_get(const struct mp_jwks *set, const char *kid)
{
    long i = find(set, kid);
    if (i < 0 || EVP_PKEY_up_ref(set->keys[i].pkey) != 1)
        return NULL;
    return set->keys[i].pkey;
}

enum mp_result mp_jwks_verifier(const struct mp_jwks *set, const char *kid, EVP_MD_CTX *out)
{
    long i = find(set, kid);
    if (i < 0)
        return MP_ERR_NOT_FOUND;
    if (EVP_MD_CTX_copy_ex(out, set->keys[i].verifier) != 1) {
        ERR_clear_error();
        return MP_ERR_NOMEM;
    }
    return MP_OK;
}

EVP_MD_CTX *mp_rs512_verifier_new(EVP_PKEY *pkey)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    if (ctx && (EVP_DigestVerifyInit_ex(ctx, &pctx, "SHA512", NULL, NULL, pkey, NULL) != 1 ||
                EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)) {
        EVP_MD_CTX_free(ctx);
        ctx = NULL;
    }
    ERR_clear_error();
    return ctx;
}

size_t mp_jwks_count(const struct mp_jwks *set)
{
    return set ? set->count : 0;
}

void mp_jwks_free(struct mp_jwks *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->count; i++) {
        free(set->keys[i].kid);
        EVP_PKEY_free(set->keys[i].pkey);
        EVP_MD_CTX_free(set->keys[i].verifier);
    }
    free(set);
}
