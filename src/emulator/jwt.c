/* JWT decoding and RS256 verification: OpenSSL EVP, no JWT library, so every way an assertion
 * can be wrong is visible to the token endpoint. */
#include "jwt-int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#define MAX_JWT_PART 16384

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

unsigned char *emu_base64url_decode(const char *text, size_t len, size_t *out_len)
{
    while (len && text[len - 1] == '=')
        len--;
    if (len % 4 == 1 || len > MAX_JWT_PART)
        return NULL;
    unsigned char *out = malloc(len * 3 / 4 + 3);
    if (!out)
        return NULL;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)text[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    *out_len = o;
    return out;
}

static json_t *decode_json_part(const char *text, size_t len)
{
    size_t raw_len;
    unsigned char *raw = emu_base64url_decode(text, len, &raw_len);
    if (!raw)
        return NULL;
    json_t *json = json_loadb((const char *)raw, raw_len, JSON_REJECT_DUPLICATES, NULL);
    free(raw);
    if (json && !json_is_object(json)) {
        json_decref(json);
        return NULL;
    }
    return json;
}

enum mp_result emu_jwt_decode(const char *text, struct emu_jwt *jwt)
{
    memset(jwt, 0, sizeof(*jwt));
    const char *dot1 = strchr(text, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (!dot2 || strchr(dot2 + 1, '.'))
        return MP_ERR_INVALID;
    jwt->header = decode_json_part(text, (size_t)(dot1 - text));
    jwt->claims = decode_json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    jwt->signature = emu_base64url_decode(dot2 + 1, strlen(dot2 + 1), &jwt->signature_len);
    jwt->signing_input = text;
    jwt->signing_input_len = (size_t)(dot2 - text);
    if (!jwt->header || !jwt->claims || !jwt->signature) {
        emu_jwt_free(jwt);
        return MP_ERR_INVALID;
    }
    return MP_OK;
}

int emu_jwt_verify_rs256(const struct emu_jwt *jwt, EVP_PKEY *key)
{
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA)
        return 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok =
        md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
        EVP_DigestVerify(md, jwt->signature, jwt->signature_len,
                         (const unsigned char *)jwt->signing_input, jwt->signing_input_len) == 1;
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return ok;
}

void emu_jwt_free(struct emu_jwt *jwt)
{
    if (!jwt)
        return;
    json_decref(jwt->header);
    json_decref(jwt->claims);
    free(jwt->signature);
    memset(jwt, 0, sizeof(*jwt));
}
