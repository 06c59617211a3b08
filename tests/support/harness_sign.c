/* Test support: keys and Fireblocks-style signatures made with OpenSSL. */
#include "harness.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

EVP_PKEY *th_rsa_key(int bits, const char *pem_path)
{
    EVP_PKEY *key = EVP_RSA_gen((unsigned)bits);
    if (!key)
        fail_msg("RSA key generation failed");
    if (pem_path) {
        FILE *f = fopen(pem_path, "w");
        if (!f || !PEM_write_PUBKEY(f, key))
            fail_msg("cannot write %s", pem_path);
        fclose(f);
    }
    return key;
}

static unsigned char *sign_sha512(EVP_PKEY *key, const void *data, size_t len, size_t *sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *sig = malloc((size_t)EVP_PKEY_get_size(key));
    *sig_len = (size_t)EVP_PKEY_get_size(key);
    if (EVP_DigestSignInit(ctx, NULL, EVP_sha512(), NULL, key) != 1 ||
        EVP_DigestSign(ctx, sig, sig_len, data, len) != 1)
        fail_msg("signing failed");
    EVP_MD_CTX_free(ctx);
    return sig;
}

static char *b64(const unsigned char *data, size_t len, bool url)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    if (url) {
        while (n > 0 && out[n - 1] == '=')
            n--;
        for (int i = 0; i < n; i++)
            out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    }
    out[n] = '\0';
    return out;
}

char *th_sign_v1(EVP_PKEY *key, const char *body, size_t len)
{
    size_t sig_len;
    unsigned char *sig = sign_sha512(key, body, len, &sig_len);
    char *out = b64(sig, sig_len, false);
    free(sig);
    return out;
}

char *th_sign_v2(EVP_PKEY *key, const char *kid, const char *body, size_t len)
{
    char header[256];
    snprintf(header, sizeof(header), "{\"alg\":\"RS512\",\"kid\":\"%s\"}", kid);
    char *h64 = b64((const unsigned char *)header, strlen(header), true);
    char *p64 = b64((const unsigned char *)body, len, true);
    char *input = NULL;
    if (asprintf(&input, "%s.%s", h64, p64) < 0)
        fail_msg("out of memory");
    size_t sig_len;
    unsigned char *sig = sign_sha512(key, input, strlen(input), &sig_len);
    char *s64 = b64(sig, sig_len, true);
    char *out = NULL;
    if (asprintf(&out, "%s..%s", h64, s64) < 0)
        fail_msg("out of memory");
    free(h64);
    free(p64);
    free(input);
    free(sig);
    free(s64);
    return out;
}

static char *bn_b64url(EVP_PKEY *key, const char *param)
{
    BIGNUM *bn = NULL;
    if (!EVP_PKEY_get_bn_param(key, param, &bn))
        fail_msg("cannot read RSA parameter %s", param);
    int n = BN_num_bytes(bn);
    unsigned char *bytes = malloc((size_t)n);
    BN_bn2bin(bn, bytes);
    char *out = b64(bytes, (size_t)n, true);
    free(bytes);
    BN_free(bn);
    return out;
}

void th_write_jwks(const char *path, EVP_PKEY *const *keys, const char *const *kids, int n)
{
    json_t *list = json_array();
    for (int i = 0; i < n; i++) {
        char *mod = bn_b64url(keys[i], OSSL_PKEY_PARAM_RSA_N);
        char *exp = bn_b64url(keys[i], OSSL_PKEY_PARAM_RSA_E);
        json_array_append_new(list,
                              json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "kty", "RSA", "kid", kids[i],
                                        "use", "sig", "alg", "RS512", "n", mod, "e", exp));
        free(mod);
        free(exp);
    }
    json_t *doc = json_pack("{s:o}", "keys", list);
    if (json_dump_file(doc, path, 0) != 0)
        fail_msg("cannot write %s", path);
    json_decref(doc);
}
