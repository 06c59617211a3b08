/* Private to the webhook verifier: JSON Web Key Sets (RFC 7517) holding the RSA keys of
 * Fireblocks-Webhook-Signature, where they come from (a file or an https URL), and the base64
 * decoder and RS512 verifiers both signature versions share. */
#ifndef MPCPUSH_JWKS_INT_H
#define MPCPUSH_JWKS_INT_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>

#include "mpcpush/result.h"

#define MP_JWKS_MAX_BYTES (1024 * 1024) /* largest JWKS document read or fetched */
#define MP_JWKS_MAX_KEYS  64            /* usable keys kept from one document */
#define MP_JWKS_KID_MAX   256           /* longest kid accepted */
#define MP_JWKS_TIMEOUT   10            /* seconds for connecting and for the whole fetch */

/* Decodes base64 text (standard alphabet, or the URL-safe one when url is true) into out.
 * Trailing '=' padding is optional; anything else outside the alphabet is MP_ERR_INVALID, and
 * MP_ERR_TOO_LARGE when the result would not fit in cap bytes. */
enum mp_result mp_b64_decode(const char *in, size_t len, bool url, unsigned char *out, size_t cap,
                             size_t *out_len) MP_MUSTCHECK;

/* Writes the unpadded base64url encoding of len bytes to out, which must hold
 * 4 * ((len + 2) / 3) bytes; returns the number written (no NUL is added). */
size_t mp_b64url_encode(const unsigned char *in, size_t len, char *out);

/* Where a JWKS comes from. */
struct mp_jwks_source {
    char *location; /* a path, or a URL when is_url */
    bool is_url;
    char *ca_file; /* extra CA bundle for https, or NULL */
};

/* Fills src from location: an https:// URL, an http:// URL whose host is 127.0.0.1, localhost
 * or [::1], or a file path. MP_ERR_INVALID with a reason in why for other URLs. Free the
 * result with mp_jwks_source_clear, also after a failure. */
enum mp_result mp_jwks_source_init(struct mp_jwks_source *src, const char *location,
                                   const char *ca_file, char *why, size_t why_size) MP_MUSTCHECK;

/* Frees the strings of src; accepts a zeroed one. */
void mp_jwks_source_clear(struct mp_jwks_source *src);

/* An immutable set of RSA signing keys, each named by its kid. */
struct mp_jwks;

/* Parses a JWKS document, keeping the keys with kty "RSA" whose use (when given) is "sig" and
 * alg (when given) is "RS512"; other and malformed keys are skipped. MP_ERR_INVALID with a
 * reason in why when the document is not a JWKS or holds no usable key. */
enum mp_result mp_jwks_parse(const char *json, size_t len, struct mp_jwks **out, char *why,
                             size_t why_size) MP_MUSTCHECK;

/* Reads or fetches src and parses it. MP_ERR_IO (file), MP_ERR_NETWORK (fetch),
 * MP_ERR_TOO_LARGE or MP_ERR_INVALID, each with a reason in why. */
enum mp_result mp_jwks_load(const struct mp_jwks_source *src, struct mp_jwks **out, char *why,
                            size_t why_size) MP_MUSTCHECK;

/* The key named kid, with a reference the caller drops with EVP_PKEY_free; NULL when absent. */
EVP_PKEY *mp_jwks_get(const struct mp_jwks *set, const char *kid);

/* Copies the RS512 verifier of the key named kid (see mp_rs512_verifier_new) into out, a context
 * of the caller's, ready for EVP_DigestVerifyUpdate. MP_ERR_NOT_FOUND when no key is named kid
 * (set may be NULL), MP_ERR_NOMEM when the copy fails. */
enum mp_result mp_jwks_verifier(const struct mp_jwks *set, const char *kid,
                                EVP_MD_CTX *out) MP_MUSTCHECK;

/* A context initialised once to verify RSASSA-PKCS1-v1_5 SHA-512 signatures made with pkey
 * (digest fetched, key and padding set up), so that each verification only copies it
 * (EVP_MD_CTX_copy_ex) instead of setting all of this up again. It is never updated itself,
 * only copied, which makes it safe to share between threads. The caller frees it with
 * EVP_MD_CTX_free; NULL when out of memory. */
EVP_MD_CTX *mp_rs512_verifier_new(EVP_PKEY *pkey);

/* The number of keys in set (0 for NULL). */
size_t mp_jwks_count(const struct mp_jwks *set);

/* Accepts NULL. */
void mp_jwks_free(struct mp_jwks *set);

#endif
