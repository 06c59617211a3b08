/* Fireblocks webhook signature verification with real keys: RSA keys are generated at start,
 * written as PEM and JWKS files under /tmp, and webhooks are signed the way Fireblocks signs
 * them (v1: base64 RSA-SHA512 over the body; v2: detached JWS RS512). A loopback HTTP server
 * (libmicrohttpd) serves JWKS documents for the URL cases. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpcpush/buf.h"
#include "mpcpush/fbverify.h"

#define NKEYS    4
#define MAXTEMPS 64

static EVP_PKEY *keys[NKEYS];
static char *pem_paths[NKEYS];
static char *temps[MAXTEMPS];
static int ntemps;

static const char body[] = "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"t1\",\"timestamp\":"
                           "1700000000000,\"walletId\":\"w1\",\"deviceId\":\"d1\",\"data\":{}}";
#define BODY_LEN (sizeof(body) - 1)

/* ---- encodings and signatures, written independently of the code under test ---- */

static void *xmalloc(size_t size)
{
    void *p = malloc(size);
    if (!p)
        abort();
    return p;
}

static char *b64(const unsigned char *in, size_t len)
{
    char *out = xmalloc(4 * ((len + 2) / 3) + 1);
    assert_non_null(out);
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    return out;
}

static char *b64url(const void *in, size_t len)
{
    char *out = b64(in, len);
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '=')
        out[--n] = '\0';
    for (char *p = out; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    return out;
}

static unsigned char *sign(EVP_PKEY *key, const void *data, size_t len, size_t *sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *sig = xmalloc(1024);
    assert_non_null(ctx);
    assert_non_null(sig);
    *sig_len = 1024;
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha512(), NULL, key), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, sig_len, data, len), 1);
    EVP_MD_CTX_free(ctx);
    return sig;
}

static char *v1_header(EVP_PKEY *key, const void *data, size_t len)
{
    size_t sig_len;
    unsigned char *sig = sign(key, data, len, &sig_len);
    char *header = b64(sig, sig_len);
    free(sig);
    return header;
}

/* "<b64url(protected)>..<b64url(signature over protected.b64url(body))>" */
static char *jws(EVP_PKEY *key, const char *protected_json, const void *data, size_t len)
{
    char *prot = b64url(protected_json, strlen(protected_json));
    char *payload = b64url(data, len);
    size_t input_len = strlen(prot) + 1 + strlen(payload), sig_len;
    char *input = xmalloc(input_len + 1);
    assert_non_null(input);
    snprintf(input, input_len + 1, "%s.%s", prot, payload);
    unsigned char *sig = sign(key, input, input_len, &sig_len);
    char *sig_text = b64url(sig, sig_len);
    char *out = xmalloc(strlen(prot) + strlen(sig_text) + 3);
    assert_non_null(out);
    sprintf(out, "%s..%s", prot, sig_text);
    free(prot);
    free(payload);
    free(input);
    free(sig);
    free(sig_text);
    return out;
}

static char *jws_kid(EVP_PKEY *key, const char *kid, const void *data, size_t len)
{
    char prot[256];
    snprintf(prot, sizeof(prot), "{\"alg\":\"RS512\",\"kid\":\"%s\"}", kid);
    return jws(key, prot, data, len);
}

/* ---- files ---- */

static char *temp_file(const void *content, size_t len)
{
    char path[] = "/tmp/mpcpush-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    assert_true(ntemps < MAXTEMPS);
    temps[ntemps] = strdup(path);
    return temps[ntemps++];
}

static void rewrite(const char *path, const char *content)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static char *pem_of(EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    assert_int_equal(PEM_write_bio_PUBKEY(bio, key), 1);
    long len = BIO_get_mem_data(bio, &data);
    char *path = temp_file(data, (size_t)len);
    BIO_free(bio);
    return path;
}

static json_t *jwk_of(EVP_PKEY *key, const char *kid)
{
    BIGNUM *n = NULL, *e = NULL;
    unsigned char nb[1024], eb[16];
    assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e), 1);
    int nlen = BN_bn2bin(n, nb), elen = BN_bn2bin(e, eb);
    char *n64 = b64url(nb, (size_t)nlen), *e64 = b64url(eb, (size_t)elen);
    json_t *jwk = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "RSA", "kid", kid, "use",
                            "sig", "alg", "RS512", "n", n64, "e", e64);
    assert_non_null(jwk);
    free(n64);
    free(e64);
    BN_free(n);
    BN_free(e);
    return jwk;
}

/* A JWKS document with count keys: keys[idx[i]] named kids[i]. */
static char *jwks_text(int count, const int *idx, const char *const *kids)
{
    json_t *arr = json_array();
    for (int i = 0; i < count; i++)
        json_array_append_new(arr, jwk_of(keys[idx[i]], kids[i]));
    json_t *doc = json_pack("{s:o}", "keys", arr);
    char *text = json_dumps(doc, JSON_INDENT(1));
    json_decref(doc);
    return text;
}

static char *jwks_file(int count, const int *idx, const char *const *kids)
{
    char *text = jwks_text(count, idx, kids);
    char *path = temp_file(text, strlen(text));
    free(text);
    return path;
}

static struct mp_fbverify *make(const char *pems, const char *jwks)
{
    struct mp_fbverify *v = NULL;
    struct mp_buf errors;
    mp_buf_init(&errors, 0);
    enum mp_result result = mp_fbverify_new(pems, jwks, NULL, &v, &errors);
    if (result)
        fprintf(stderr, "unexpected: %s\n%s", mp_strerror(result), errors.data ? errors.data : "");
    assert_int_equal(result, MP_OK);
    assert_null(errors.data);
    mp_buf_free(&errors);
    return v;
}

static const char *source_dir(void)
{
    static char dir[4096];
    const char *env = getenv("MPCPUSH_SOURCE_DIR");
    if (env && env[0])
        return env;
    snprintf(dir, sizeof(dir), "%s", __FILE__);
    char *cut = strstr(dir, "/tests/unit/test_fbverify.c");
    assert_non_null(cut);
    *cut = '\0';
    return dir;
}

/* ---- group ---- */

static int setup(void **state)
{
    for (int i = 0; i < NKEYS; i++) {
        keys[i] = EVP_RSA_gen(2048);
        if (!keys[i])
            return -1;
        pem_paths[i] = pem_of(keys[i]);
    }
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int teardown(void **state)
{
    for (int i = 0; i < NKEYS; i++)
        EVP_PKEY_free(keys[i]);
    for (int i = 0; i < ntemps; i++) {
        unlink(temps[i]);
        free(temps[i]);
    }
    curl_global_cleanup();
    return 0;
}

/* ---- v1 ---- */

static void test_v1_valid(void **state)
{
    struct mp_fbverify *v = make(pem_paths[0], NULL);
    char *sig = v1_header(keys[0], body, BODY_LEN);
    assert_true(mp_fbverify_configured(v));
    assert_int_equal(mp_fbverify_check(v, sig, NULL, body, BODY_LEN), MP_OK);
    free(sig);
    mp_fbverify_free(v);
}

static void test_v1_whitespace_tolerated(void **state)
{
    struct mp_fbverify *v = make(pem_paths[0], NULL);
    char *sig = v1_header(keys[0], body, BODY_LEN), padded[1200];
    snprintf(padded, sizeof(padded), " \t%s \r\n", sig);
    assert_int_equal(mp_fbverify_check(v, padded, NULL, body, BODY_LEN), MP_OK);
    free(sig);
    mp_fbverify_free(v);
}

static void test_v1_tampered_body(void **state)
{
    struct mp_fbverify *v = make(pem_paths[0], NULL);
    char *sig = v1_header(keys[0], body, BODY_LEN), copy[sizeof(body)];
    memcpy(copy, body, sizeof(body));
    copy[10] ^= 1;
    assert_int_equal(mp_fbverify_check(v, sig, NULL, copy, BODY_LEN), MP_ERR_UNAUTHORIZED);
    /* the exact bytes: one trailing byte more or less fails too */
    assert_int_equal(mp_fbverify_check(v, sig, NULL, body, BODY_LEN - 1), MP_ERR_UNAUTHORIZED);
    free(sig);
    mp_fbverify_free(v);
}

static void test_v1_tampered_signature(void **state)
{
    struct mp_fbverify *v = make(pem_paths[0], NULL);
    size_t sig_len;
    unsigned char *sig = sign(keys[0], body, BODY_LEN, &sig_len);
    sig[sig_len / 2] ^= 0x40;
    char *header = b64(sig, sig_len);
    assert_int_equal(mp_fbverify_check(v, header, NULL, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    free(header);
    header = b64(sig, sig_len - 1); /* truncated */
    assert_int_equal(mp_fbverify_check(v, header, NULL, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    free(header);
    free(sig);
    mp_fbverify_free(v);
}

static void test_v1_bad_base64(void **state)
{
    struct mp_fbverify *v = make(pem_paths[0], NULL);
    char *good = v1_header(keys[0], body, BODY_LEN), broken[1200];
    const char *bad[] = {"", "   ", "!!!!", "abc", "a===", "ab=c"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(mp_fbverify_check(v, bad[i], NULL, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    /* a space inside, a URL-safe character, a missing character */
    snprintf(broken, sizeof(broken), "%.20s %s", good, good + 20);
    assert_int_equal(mp_fbverify_check(v, broken, NULL, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    snprintf(broken, sizeof(broken), "%s", good);
    broken[5] = '-';
    assert_int_equal(mp_fbverify_check(v, broken, NULL, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    snprintf(broken, sizeof(broken), "%s", good + 1);
    assert_int_equal(mp_fbverify_check(v, broken, NULL, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    free(good);
    mp_fbverify_free(v);
}

static void test_v1_oversized_header(void **state)
{
    struct mp_fbverify *v = make(pem_paths[0], NULL);
    char *sig = v1_header(keys[0], body, BODY_LEN);
    size_t n = MP_FBVERIFY_V1_HEADER_MAX + 1;
    char *big = xmalloc(n + 1);
    assert_non_null(big);
    /* a valid signature followed by whitespace beyond the limit is refused before decoding */
    memset(big, ' ', n);
    memcpy(big, sig, strlen(sig));
    big[n] = '\0';
    assert_int_equal(mp_fbverify_check(v, big, NULL, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    big[n - 1] = '\0'; /* exactly at the limit: accepted */
    assert_int_equal(mp_fbverify_check(v, big, NULL, body, BODY_LEN), MP_OK);
    free(big);
    free(sig);
    mp_fbverify_free(v);
}

static void test_v1_missing_header(void **state)
{
    struct mp_fbverify *v = make(pem_paths[0], NULL);
    assert_int_equal(mp_fbverify_check(v, NULL, NULL, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    /* a v2 header alone cannot be checked without a JWKS */
    char *token = jws_kid(keys[0], "k0", body, BODY_LEN);
    assert_int_equal(mp_fbverify_check(v, NULL, token, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    free(token);
    mp_fbverify_free(v);
}

static void test_v1_wrong_key(void **state)
{
    struct mp_fbverify *v = make(pem_paths[0], NULL);
    char *sig = v1_header(keys[1], body, BODY_LEN);
    assert_int_equal(mp_fbverify_check(v, sig, NULL, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    free(sig);
    mp_fbverify_free(v);
}

static void test_v1_rotation_second_key(void **state)
{
    char list[512];
    snprintf(list, sizeof(list), "%s, %s", pem_paths[0], pem_paths[1]);
    struct mp_fbverify *v = make(list, NULL);
    char *sig1 = v1_header(keys[1], body, BODY_LEN), *sig0 = v1_header(keys[0], body, BODY_LEN);
    char *sig2 = v1_header(keys[2], body, BODY_LEN);
    assert_int_equal(mp_fbverify_check(v, sig1, NULL, body, BODY_LEN), MP_OK);
    assert_int_equal(mp_fbverify_check(v, sig0, NULL, body, BODY_LEN), MP_OK);
    assert_int_equal(mp_fbverify_check(v, sig2, NULL, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    free(sig0);
    free(sig1);
    free(sig2);
    mp_fbverify_free(v);
}

static void test_v1_fireblocks_keys(void **state)
{
    static const char *const names[] = {"developer-sandbox.pem", "production-eu.pem",
                                        "production-us.pem", "sandbox.pem"};
    char list[4 * 4200] = "";
    for (size_t i = 0; i < 4; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof(list) - used, "%s%s/keys/fireblocks/%s", i ? "," : "",
                 source_dir(), names[i]);
    }
    struct mp_fbverify *v = make(list, NULL);
    assert_true(mp_fbverify_configured(v));
    char *sig = v1_header(keys[0], body, BODY_LEN);
    assert_int_equal(mp_fbverify_check(v, sig, NULL, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    free(sig);
    mp_fbverify_free(v);
}

static void test_v1_file_problems_reported(void **state)
{
    char list[512];
    const char *garbage = temp_file("not a key\n", 10);
    snprintf(list, sizeof(list), "/nonexistent/x.pem,%s,%s", garbage, pem_paths[0]);
    struct mp_fbverify *v = (struct mp_fbverify *)1;
    struct mp_buf errors;
    mp_buf_init(&errors, 0);
    assert_int_equal(mp_fbverify_new(list, NULL, NULL, &v, &errors), MP_ERR_INVALID);
    assert_null(v);
    assert_non_null(errors.data);
    assert_non_null(
        strstr(errors.data, "MPCPUSH_FIREBLOCKS_PUBKEYS: /nonexistent/x.pem: cannot read"));
    assert_non_null(strstr(errors.data, garbage));
    assert_non_null(strstr(errors.data, "no RSA public key"));
    size_t lines = 0;
    for (const char *p = errors.data; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 2);
    mp_buf_free(&errors);
}

static void test_not_configured(void **state)
{
    struct mp_fbverify *v = make(NULL, "");
    char *sig = v1_header(keys[0], body, BODY_LEN);
    assert_false(mp_fbverify_configured(v));
    assert_int_equal(mp_fbverify_check(v, sig, NULL, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    free(sig);
    mp_fbverify_free(v);
    mp_fbverify_free(NULL);
    assert_false(mp_fbverify_configured(NULL));
}

/* ---- v2 ---- */

static const int two_idx[] = {0, 1};
static const char *const two_kids[] = {"kid-one", "kid-two"};

static void test_v2_valid_kid_selection(void **state)
{
    struct mp_fbverify *v = make(NULL, jwks_file(2, two_idx, two_kids));
    char *t1 = jws_kid(keys[0], "kid-one", body, BODY_LEN);
    char *t2 = jws_kid(keys[1], "kid-two", body, BODY_LEN);
    char *crossed = jws_kid(keys[1], "kid-one", body, BODY_LEN);
    assert_true(mp_fbverify_configured(v));
    assert_int_equal(mp_fbverify_check(v, NULL, t1, body, BODY_LEN), MP_OK);
    assert_int_equal(mp_fbverify_check(v, NULL, t2, body, BODY_LEN), MP_OK);
    assert_int_equal(mp_fbverify_check(v, NULL, crossed, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    assert_int_equal(mp_fbverify_jwks_loads(v), 1);
    free(t1);
    free(t2);
    free(crossed);
    mp_fbverify_free(v);
}

static void test_v2_tampered_and_large_body(void **state)
{
    struct mp_fbverify *v = make(NULL, jwks_file(2, two_idx, two_kids));
    /* lengths around the encoder's chunking, none a multiple of 3 */
    size_t sizes[] = {0, 1, 3071, 3073, 10001};
    char *big = xmalloc(10001);
    assert_non_null(big);
    for (size_t i = 0; i < 10001; i++)
        big[i] = (char)(i * 7 + 3);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char *token = jws_kid(keys[1], "kid-two", big, sizes[i]);
        assert_int_equal(mp_fbverify_check(v, NULL, token, big, sizes[i]), MP_OK);
        if (sizes[i]) {
            big[sizes[i] - 1] ^= 1;
            assert_int_equal(mp_fbverify_check(v, NULL, token, big, sizes[i]), MP_ERR_UNAUTHORIZED);
            big[sizes[i] - 1] ^= 1;
        }
        free(token);
    }
    free(big);
    mp_fbverify_free(v);
}

static void test_v2_alg_none_and_hs512(void **state)
{
    struct mp_fbverify *v = make(NULL, jwks_file(2, two_idx, two_kids));
    char *payload = b64url(body, BODY_LEN), header[4096];
    /* alg none, with an empty and with a real signature */
    const char *none = "{\"alg\":\"none\",\"kid\":\"kid-one\"}";
    char *prot = b64url(none, strlen(none));
    snprintf(header, sizeof(header), "%s..", prot);
    assert_int_equal(mp_fbverify_check(v, NULL, header, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    free(prot);
    char *token = jws(keys[0], none, body, BODY_LEN);
    assert_int_equal(mp_fbverify_check(v, NULL, token, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    free(token);
    /* HS512 keyed with the published key material (the classic confusion attack) */
    const char *hs = "{\"alg\":\"HS512\",\"kid\":\"kid-one\"}";
    prot = b64url(hs, strlen(hs));
    char input[4096];
    unsigned char mac[64];
    unsigned mac_len = 0;
    snprintf(input, sizeof(input), "%s.%s", prot, payload);
    char *secret = jwks_text(1, two_idx, two_kids);
    HMAC(EVP_sha512(), secret, (int)strlen(secret), (unsigned char *)input, strlen(input), mac,
         &mac_len);
    char *mac64 = b64url(mac, mac_len);
    snprintf(header, sizeof(header), "%s..%s", prot, mac64);
    assert_int_equal(mp_fbverify_check(v, NULL, header, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    /* RS256 and a lowercase rs512 are not RS512 either */
    token = jws(keys[0], "{\"alg\":\"RS256\",\"kid\":\"kid-one\"}", body, BODY_LEN);
    assert_int_equal(mp_fbverify_check(v, NULL, token, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    free(token);
    token = jws(keys[0], "{\"alg\":\"rs512\",\"kid\":\"kid-one\"}", body, BODY_LEN);
    assert_int_equal(mp_fbverify_check(v, NULL, token, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    free(token);
    free(secret);
    free(mac64);
    free(prot);
    free(payload);
    mp_fbverify_free(v);
}

static void test_v2_unknown_kid(void **state)
{
    struct mp_fbverify *v = make(NULL, jwks_file(2, two_idx, two_kids));
    mp_fbverify_set_refetch_interval(v, 0);
    char *token = jws_kid(keys[0], "kid-three", body, BODY_LEN);
    char *nokid = jws(keys[0], "{\"alg\":\"RS512\"}", body, BODY_LEN);
    assert_int_equal(mp_fbverify_check(v, NULL, token, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    assert_int_equal(mp_fbverify_jwks_loads(v), 2); /* the miss re-read the file */
    assert_int_equal(mp_fbverify_check(v, NULL, nokid, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    assert_int_equal(mp_fbverify_jwks_loads(v), 2); /* no kid: nothing to look up */
    free(token);
    free(nokid);
    mp_fbverify_free(v);
}

static void test_v2_malformed(void **state)
{
    struct mp_fbverify *v = make(NULL, jwks_file(2, two_idx, two_kids));
    char *good = jws_kid(keys[0], "kid-one", body, BODY_LEN), bad[4096];
    char *payload = b64url(body, BODY_LEN);
    const char *sig = strstr(good, "..") + 2;
    int plen = (int)(sig - 2 - good);
    assert_int_equal(mp_fbverify_check(v, NULL, good, body, BODY_LEN), MP_OK);
    const char *fixed[] = {"", "abc", "..", "a..", "..abc", "a.b", "a.b.c.d"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        assert_int_equal(mp_fbverify_check(v, NULL, fixed[i], body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    snprintf(bad, sizeof(bad), "%.*s%s", plen, good, sig); /* no dots */
    assert_int_equal(mp_fbverify_check(v, NULL, bad, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    snprintf(bad, sizeof(bad), "%.*s.%s.%s", plen, good, payload, sig); /* attached payload */
    assert_int_equal(mp_fbverify_check(v, NULL, bad, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    snprintf(bad, sizeof(bad), "%.*s..%s.", plen, good, sig); /* trailing dot */
    assert_int_equal(mp_fbverify_check(v, NULL, bad, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    snprintf(bad, sizeof(bad), "%s", good); /* '+' is not base64url */
    bad[plen + 5] = '+';
    assert_int_equal(mp_fbverify_check(v, NULL, bad, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    snprintf(bad, sizeof(bad), "%s", good);
    bad[3] = '*';
    assert_int_equal(mp_fbverify_check(v, NULL, bad, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    free(good);
    /* protected headers that are not acceptable JSON objects */
    const char *headers[] = {"not json",
                             "[1]",
                             "{\"alg\":\"RS512\",\"alg\":\"RS512\","
                             "\"kid\":\"kid-one\"}",
                             "{\"alg\":\"RS512\",\"kid\":\"kid-one\",\"crit\":[\"b64\"],"
                             "\"b64\":false}",
                             "{\"alg\":\"RS512\",\"kid\":\"\"}",
                             "{\"alg\":\"RS512\",\"kid\":7}"};
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        char *token = jws(keys[0], headers[i], body, BODY_LEN);
        assert_int_equal(mp_fbverify_check(v, NULL, token, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
        free(token);
    }
    free(payload);
    mp_fbverify_free(v);
}

static void test_v2_rotation_and_rate_limit(void **state)
{
    const int i0[] = {0}, i01[] = {0, 1}, i012[] = {0, 1, 2};
    const char *const k[] = {"a", "b", "c"};
    char *path = jwks_file(1, i0, k), *text;
    struct mp_fbverify *v = make(NULL, path);
    char *ta = jws_kid(keys[0], "a", body, BODY_LEN), *tb = jws_kid(keys[1], "b", body, BODY_LEN);
    char *tc = jws_kid(keys[2], "c", body, BODY_LEN), *td = jws_kid(keys[3], "d", body, BODY_LEN);
    assert_int_equal(mp_fbverify_jwks_loads(v), 1);

    /* within the default interval after the initial load, a miss does not re-read */
    text = jwks_text(2, i01, k);
    rewrite(path, text);
    free(text);
    assert_int_equal(mp_fbverify_check(v, NULL, tb, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    assert_int_equal(mp_fbverify_jwks_loads(v), 1);
    /* once the interval has passed, the new key is picked up */
    mp_fbverify_set_refetch_interval(v, 0);
    assert_int_equal(mp_fbverify_check(v, NULL, tb, body, BODY_LEN), MP_OK);
    assert_int_equal(mp_fbverify_jwks_loads(v), 2);

    /* a new rotation within the interval: neither "c" nor another unknown kid re-reads */
    mp_fbverify_set_refetch_interval(v, 3600);
    text = jwks_text(3, i012, k);
    rewrite(path, text);
    free(text);
    assert_int_equal(mp_fbverify_check(v, NULL, tc, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    assert_int_equal(mp_fbverify_check(v, NULL, td, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    assert_int_equal(mp_fbverify_jwks_loads(v), 2);
    /* known kids never cause a load */
    assert_int_equal(mp_fbverify_check(v, NULL, ta, body, BODY_LEN), MP_OK);
    assert_int_equal(mp_fbverify_jwks_loads(v), 2);
    mp_fbverify_set_refetch_interval(v, 0);
    assert_int_equal(mp_fbverify_check(v, NULL, tc, body, BODY_LEN), MP_OK);
    assert_int_equal(mp_fbverify_jwks_loads(v), 3);

    /* a broken file on reload: the old keys stay; the miss is "unavailable", not "forged" */
    rewrite(path, "{\"keys\": [");
    assert_int_equal(mp_fbverify_check(v, NULL, td, body, BODY_LEN), MP_ERR_UNAVAILABLE);
    assert_int_equal(mp_fbverify_jwks_loads(v), 4);
    assert_int_equal(mp_fbverify_check(v, NULL, tb, body, BODY_LEN), MP_OK);
    free(ta);
    free(tb);
    free(tc);
    free(td);
    mp_fbverify_free(v);
}

struct racer {
    struct mp_fbverify *v;
    const char *token;
    enum mp_result result;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    r->result = mp_fbverify_check(r->v, NULL, r->token, body, BODY_LEN);
    return NULL;
}

static void test_v2_concurrent_miss_loads_once(void **state)
{
    const int i0[] = {0}, i01[] = {0, 1};
    const char *const k[] = {"a", "b"};
    char *path = jwks_file(1, i0, k), *text = jwks_text(2, i01, k);
    struct mp_fbverify *v = make(NULL, path);
    char *tb = jws_kid(keys[1], "b", body, BODY_LEN);
    struct racer racers[8];
    pthread_t threads[8];
    rewrite(path, text);
    free(text);
    /* interval 0 allows a load on every miss, yet callers that waited for a load look again
     * before loading, so one load serves them all */
    mp_fbverify_set_refetch_interval(v, 0);
    for (int i = 0; i < 8; i++) {
        racers[i] = (struct racer){v, tb, MP_ERR_INTERNAL};
        assert_int_equal(pthread_create(&threads[i], NULL, race, &racers[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(racers[i].result, MP_OK);
    }
    assert_int_equal(mp_fbverify_jwks_loads(v), 2);
    free(tb);
    mp_fbverify_free(v);
}

/* Each key's verifier context is set up once and copied by every check: checks on many threads
 * at once, good and bad, v1 (two keys: the second verifies) and v2, each get their own answer. */
struct hammer {
    struct mp_fbverify *v;
    const char *v1, *v2;
    const char *data;
    enum mp_result expected;
    int wrong;
};

static void *hammer(void *arg)
{
    struct hammer *h = arg;
    for (int i = 0; i < 150; i++)
        if (mp_fbverify_check(h->v, h->v1, h->v2, h->data, BODY_LEN) != h->expected)
            h->wrong++;
    return NULL;
}

static void test_concurrent_checks_share_verifiers(void **state)
{
    char pems[512], tampered[sizeof(body)];
    const int i0[] = {0};
    const char *const k[] = {"a"};
    char *path = jwks_file(1, i0, k);
    snprintf(pems, sizeof(pems), "%s,%s", pem_paths[2], pem_paths[1]);
    struct mp_fbverify *v = make(pems, path);
    char *v1 = v1_header(keys[1], body, BODY_LEN), *v2 = jws_kid(keys[0], "a", body, BODY_LEN);
    memcpy(tampered, body, sizeof(body));
    tampered[5] ^= 1;
    struct hammer h[6] = {
        {v, v1, NULL, body, MP_OK, 0},
        {v, NULL, v2, body, MP_OK, 0},
        {v, v1, NULL, tampered, MP_ERR_UNAUTHORIZED, 0},
        {v, NULL, v2, tampered, MP_ERR_UNAUTHORIZED, 0},
        {v, v1, v2, body, MP_OK, 0},
        {v, v2, v1, body, MP_ERR_UNAUTHORIZED, 0},
    };
    pthread_t threads[6];
    for (int i = 0; i < 6; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, hammer, &h[i]), 0);
    for (int i = 0; i < 6; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(h[i].wrong, 0);
    }
    free(v1);
    free(v2);
    mp_fbverify_free(v);
}

static void test_v2_jwks_key_filtering(void **state)
{
    json_t *rsa = jwk_of(keys[0], "good"), *enc = jwk_of(keys[1], "enc");
    json_t *rs256 = jwk_of(keys[2], "rs256"), *no_alg = jwk_of(keys[3], "no-alg");
    json_object_set_new(enc, "use", json_string("enc"));
    json_object_set_new(rs256, "alg", json_string("RS256"));
    json_object_del(no_alg, "alg");
    json_object_del(no_alg, "use");
    json_t *ec = json_pack("{s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "kid", "ec", "crv", "P-256",
                           "x", "AAAA", "y", "AAAA");
    json_t *bad_n =
        json_pack("{s:s, s:s, s:s, s:s}", "kty", "RSA", "kid", "bad", "n", "!!", "e", "AQAB");
    json_t *doc = json_pack("{s:[o,o,o,o,o,o]}", "keys", ec, enc, rs256, bad_n, no_alg, rsa);
    char *text = json_dumps(doc, 0);
    struct mp_fbverify *v = make(NULL, temp_file(text, strlen(text)));
    const struct {
        int key;
        const char *kid;
        enum mp_result want;
    } cases[] = {{0, "good", MP_OK},
                 {3, "no-alg", MP_OK},
                 {1, "enc", MP_ERR_UNAUTHORIZED},
                 {2, "rs256", MP_ERR_UNAUTHORIZED},
                 {0, "bad", MP_ERR_UNAUTHORIZED},
                 {0, "ec", MP_ERR_UNAUTHORIZED}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *token = jws_kid(keys[cases[i].key], cases[i].kid, body, BODY_LEN);
        assert_int_equal(mp_fbverify_check(v, NULL, token, body, BODY_LEN), cases[i].want);
        free(token);
    }
    mp_fbverify_free(v);
    free(text);
    json_decref(doc);
}

static void test_v2_jwks_file_problems(void **state)
{
    const char *docs[] = {"not json", "{\"keys\":{}}", "{\"keys\":[]}",
                          "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"x\"}]}"};
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        struct mp_fbverify *v = (struct mp_fbverify *)1;
        struct mp_buf errors;
        mp_buf_init(&errors, 0);
        const char *path = temp_file(docs[i], strlen(docs[i]));
        assert_int_equal(mp_fbverify_new(NULL, path, NULL, &v, &errors), MP_ERR_INVALID);
        assert_null(v);
        assert_non_null(strstr(errors.data, "MPCPUSH_FIREBLOCKS_JWKS: "));
        assert_non_null(strstr(errors.data, path));
        mp_buf_free(&errors);
    }
    struct mp_fbverify *v = NULL;
    struct mp_buf errors;
    mp_buf_init(&errors, 0);
    assert_int_equal(mp_fbverify_new(NULL, "/nonexistent/jwks.json", NULL, &v, &errors),
                     MP_ERR_INVALID);
    assert_non_null(strstr(errors.data, "/nonexistent/jwks.json: cannot read"));
    mp_buf_free(&errors);
}

/* ---- both headers ---- */

static void test_both_headers(void **state)
{
    char *jwks = jwks_file(2, two_idx, two_kids);
    struct mp_fbverify *v = make(pem_paths[0], jwks);
    char *v1_good = v1_header(keys[0], body, BODY_LEN), *v1_bad = v1_header(keys[3], body, 4);
    char *v2_good = jws_kid(keys[1], "kid-two", body, BODY_LEN);
    char *v2_bad = jws_kid(keys[3], "kid-two", body, BODY_LEN);
    assert_int_equal(mp_fbverify_check(v, v1_bad, v2_good, body, BODY_LEN), MP_OK);
    assert_int_equal(mp_fbverify_check(v, v1_good, v2_bad, body, BODY_LEN), MP_OK);
    assert_int_equal(mp_fbverify_check(v, "garbage", v2_good, body, BODY_LEN), MP_OK);
    assert_int_equal(mp_fbverify_check(v, v1_bad, v2_bad, body, BODY_LEN), MP_ERR_UNAUTHORIZED);
    assert_int_equal(mp_fbverify_check(v, v1_good, v2_good, "{}", 2), MP_ERR_UNAUTHORIZED);
    free(v1_good);
    free(v1_bad);
    free(v2_good);
    free(v2_bad);
    mp_fbverify_free(v);
}

/* ---- JWKS URLs ---- */

static void test_jwks_url_policy(void **state)
{
    const char *rejected[] = {"http://example.com/jwks.json",
                              "http://127.0.0.1.example.com/jwks.json",
                              "http://localhost.example.com/",
                              "http://user@127.0.0.1/jwks.json",
                              "http://127.0.0.1@example.com/jwks.json",
                              "http://[::2]/jwks.json",
                              "http://10.0.0.1:8080/jwks.json",
                              "ftp://127.0.0.1/jwks.json",
                              "https:///jwks.json",
                              "http://[::1]evil.example.com/jwks.json",
                              "http://127.0.0.1:80x/jwks.json",
                              "https://[::1/jwks.json",
                              "https://keys.example.com/a b"};
    for (size_t i = 0; i < sizeof(rejected) / sizeof(rejected[0]); i++) {
        struct mp_fbverify *v = (struct mp_fbverify *)1;
        struct mp_buf errors;
        mp_buf_init(&errors, 0);
        assert_int_equal(mp_fbverify_new(NULL, rejected[i], NULL, &v, &errors), MP_ERR_INVALID);
        assert_null(v);
        assert_non_null(errors.data);
        assert_int_equal(strncmp(errors.data, "MPCPUSH_FIREBLOCKS_JWKS: ", 25), 0);
        mp_buf_free(&errors);
    }
}

struct server {
    struct MHD_Daemon *daemon;
    pthread_mutex_t lock;
    char *doc;
    size_t doc_len;
    unsigned status;
    unsigned requests;
    unsigned port;
};

static enum MHD_Result serve(void *cls, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **con_cls)
{
    struct server *s = cls;
    pthread_mutex_lock(&s->lock);
    s->requests++;
    void *copy = malloc(s->doc_len ? s->doc_len : 1);
    if (copy)
        memcpy(copy, s->doc, s->doc_len);
    size_t len = s->doc_len;
    unsigned status = s->status;
    pthread_mutex_unlock(&s->lock);
    if (!copy)
        return MHD_NO;
    struct MHD_Response *response =
        MHD_create_response_from_buffer(len, copy, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret = MHD_queue_response(conn, status, response);
    MHD_destroy_response(response);
    return ret;
}

static void serve_doc(struct server *s, unsigned status, const char *doc, size_t len)
{
    pthread_mutex_lock(&s->lock);
    free(s->doc);
    s->doc = xmalloc(len + 1);
    assert_non_null(s->doc);
    memcpy(s->doc, doc, len);
    s->doc_len = len;
    s->status = status;
    pthread_mutex_unlock(&s->lock);
}

static void server_start(struct server *s)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    serve_doc(s, 404, "", 0);
    s->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, serve, s,
                                 MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_END);
    assert_non_null(s->daemon);
    s->port = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT)->port;
    assert_true(s->port > 0);
}

static void server_stop(struct server *s)
{
    MHD_stop_daemon(s->daemon);
    pthread_mutex_destroy(&s->lock);
    free(s->doc);
}

static void test_jwks_url_fetch(void **state)
{
    struct server s;
    char url[128], *doc = jwks_text(2, two_idx, two_kids);
    char *token = jws_kid(keys[1], "kid-two", body, BODY_LEN);
    server_start(&s);
    serve_doc(&s, 200, doc, strlen(doc));
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/.well-known/jwks.json", s.port);
    struct mp_fbverify *v = make(NULL, url);
    assert_int_equal(mp_fbverify_check(v, NULL, token, body, BODY_LEN), MP_OK);
    assert_int_equal(s.requests, 1);
    mp_fbverify_free(v);
    snprintf(url, sizeof(url), "http://localhost:%u/jwks.json", s.port);
    v = make(NULL, url);
    assert_int_equal(mp_fbverify_check(v, NULL, token, body, BODY_LEN), MP_OK);
    assert_int_equal(s.requests, 2);
    mp_fbverify_free(v);
    server_stop(&s);
    free(doc);
    free(token);
}

static void test_jwks_url_failure_then_recovery(void **state)
{
    struct server s;
    char url[128], *doc = jwks_text(2, two_idx, two_kids);
    char *token = jws_kid(keys[1], "kid-two", body, BODY_LEN);
    struct mp_fbverify *v = NULL;
    struct mp_buf errors;
    mp_buf_init(&errors, 0);
    server_start(&s);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/jwks.json", s.port);
    assert_int_equal(mp_fbverify_new(NULL, url, NULL, &v, &errors), MP_ERR_UNAVAILABLE);
    assert_non_null(v); /* usable: the caller decides */
    assert_true(mp_fbverify_configured(v));
    assert_non_null(strstr(errors.data, "MPCPUSH_FIREBLOCKS_JWKS: "));
    assert_non_null(strstr(errors.data, "HTTP status 404"));
    /* within the interval: no fetch, and the answer asks Fireblocks to retry */
    assert_int_equal(mp_fbverify_check(v, NULL, token, body, BODY_LEN), MP_ERR_UNAVAILABLE);
    assert_int_equal(s.requests, 1);
    serve_doc(&s, 200, doc, strlen(doc));
    mp_fbverify_set_refetch_interval(v, 0);
    assert_int_equal(mp_fbverify_check(v, NULL, token, body, BODY_LEN), MP_OK);
    assert_int_equal(s.requests, 2);
    assert_int_equal(mp_fbverify_jwks_loads(v), 2);
    mp_fbverify_free(v);
    mp_buf_free(&errors);
    server_stop(&s);
    free(doc);
    free(token);
}

static void test_jwks_url_too_large(void **state)
{
    struct server s;
    char url[128];
    size_t big = 1024 * 1024 + 1;
    char *doc = xmalloc(big);
    struct mp_fbverify *v = NULL;
    struct mp_buf errors;
    assert_non_null(doc);
    memset(doc, ' ', big);
    mp_buf_init(&errors, 0);
    server_start(&s);
    serve_doc(&s, 200, doc, big);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/jwks.json", s.port);
    assert_int_equal(mp_fbverify_new(NULL, url, NULL, &v, &errors), MP_ERR_UNAVAILABLE);
    assert_non_null(strstr(errors.data, "larger than 1048576 bytes"));
    mp_fbverify_free(v);
    mp_buf_free(&errors);
    server_stop(&s);
    free(doc);
}

static void test_jwks_url_unreachable(void **state)
{
    struct server s;
    char url[128];
    server_start(&s);
    unsigned port = s.port;
    server_stop(&s); /* nothing listens there any more */
    const char *bases[] = {"http://127.0.0.1", "http://[::1]", "https://127.0.0.1"};
    for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
        struct mp_fbverify *v = NULL;
        struct mp_buf errors;
        mp_buf_init(&errors, 0);
        snprintf(url, sizeof(url), "%s:%u/jwks.json", bases[i], port);
        assert_int_equal(mp_fbverify_new(NULL, url, "/nonexistent/ca.pem", &v, &errors),
                         MP_ERR_UNAVAILABLE);
        assert_non_null(v);
        assert_non_null(strstr(errors.data, url));
        mp_fbverify_free(v);
        mp_buf_free(&errors);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_valid),
        cmocka_unit_test(test_v1_whitespace_tolerated),
        cmocka_unit_test(test_v1_tampered_body),
        cmocka_unit_test(test_v1_tampered_signature),
        cmocka_unit_test(test_v1_bad_base64),
        cmocka_unit_test(test_v1_oversized_header),
        cmocka_unit_test(test_v1_missing_header),
        cmocka_unit_test(test_v1_wrong_key),
        cmocka_unit_test(test_v1_rotation_second_key),
        cmocka_unit_test(test_v1_fireblocks_keys),
        cmocka_unit_test(test_v1_file_problems_reported),
        cmocka_unit_test(test_not_configured),
        cmocka_unit_test(test_v2_valid_kid_selection),
        cmocka_unit_test(test_v2_tampered_and_large_body),
        cmocka_unit_test(test_v2_alg_none_and_hs512),
        cmocka_unit_test(test_v2_unknown_kid),
        cmocka_unit_test(test_v2_malformed),
        cmocka_unit_test(test_v2_rotation_and_rate_limit),
        cmocka_unit_test(test_v2_concurrent_miss_loads_once),
        cmocka_unit_test(test_concurrent_checks_share_verifiers),
        cmocka_unit_test(test_v2_jwks_key_filtering),
        cmocka_unit_test(test_v2_jwks_file_problems),
        cmocka_unit_test(test_both_headers),
        cmocka_unit_test(test_jwks_url_policy),
        cmocka_unit_test(test_jwks_url_fetch),
        cmocka_unit_test(test_jwks_url_failure_then_recovery),
        cmocka_unit_test(test_jwks_url_too_large),
        cmocka_unit_test(test_jwks_url_unreachable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
