/* Compact JWS (JWT) decoding and RS256 verification with OpenSSL, for OAuth assertions. */
#ifndef MPCPUSH_EMU_JWT_INT_H
#define MPCPUSH_EMU_JWT_INT_H

#include <stddef.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "mpcpush/result.h"

struct emu_jwt {
    json_t *header;
    json_t *claims;
    const char *signing_input; /* "<header>.<payload>", points into the caller's text */
    size_t signing_input_len;
    unsigned char *signature;
    size_t signature_len;
};

/* Splits and decodes text (three base64url parts, JSON header and claims). MP_ERR_INVALID
 * when it is not a well-formed JWT. jwt borrows text; free it with emu_jwt_free. */
enum mp_result emu_jwt_decode(const char *text, struct emu_jwt *jwt) MP_MUSTCHECK;

/* Checks an RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature with key. */
int emu_jwt_verify_rs256(const struct emu_jwt *jwt, EVP_PKEY *key);

/* Decodes base64url (padding optional) into a new buffer; NULL when malformed. */
unsigned char *emu_base64url_decode(const char *text, size_t len, size_t *out_len);

void emu_jwt_free(struct emu_jwt *jwt);

#endif
