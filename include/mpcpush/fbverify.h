/* Verification of Fireblocks webhook signatures over the exact body bytes received.
 *
 *   v1  Fireblocks-Signature: base64(RSA PKCS#1 v1.5 SHA-512 signature of the body), checked
 *       against every configured PEM public key (so a rotation can list old and new).
 *   v2  Fireblocks-Webhook-Signature: detached JWS "<b64url(header)>..<b64url(signature)>",
 *       alg RS512 only, key chosen by kid from a JWKS (file or https URL). An unknown kid
 *       reloads the JWKS, at most once per refetch interval, whatever the number of callers.
 *
 * A request is accepted when any presented header that can be checked verifies. */
#ifndef MPCPUSH_FBVERIFY_H
#define MPCPUSH_FBVERIFY_H

#include <stdbool.h>
#include <stddef.h>

#include "mpcpush/buf.h"
#include "mpcpush/result.h"

#define MP_FBVERIFY_REFETCH_SECONDS 60   /* default least time between two JWKS reloads */
#define MP_FBVERIFY_V1_HEADER_MAX   2048 /* longer Fireblocks-Signature values are refused */
#define MP_FBVERIFY_V2_HEADER_MAX   4096 /* longer Fireblocks-Webhook-Signature values too */
#define MP_FBVERIFY_V1_KEYS_MAX     16   /* PEM keys accepted in pubkey_files */

struct mp_fbverify;

/* Builds a verifier. pubkey_files: comma-separated PEM files of RSA public keys (v1), may be
 * NULL or empty. jwks: a file path or an https:// URL (http:// only for 127.0.0.1, localhost
 * and [::1]) of the JWKS (v2), may be NULL or empty; it is read or fetched now. ca_file: extra
 * CA bundle for the https fetch, may be NULL. Each problem is appended to errors (may be NULL)
 * as one line naming the setting, e.g. "MPCPUSH_FIREBLOCKS_PUBKEYS: /x.pem: cannot read: ...".
 *
 * MP_OK: *out is ready. MP_ERR_UNAVAILABLE: only the initial fetch of a JWKS URL failed; *out
 * is still set to a working verifier (v1 keys loaded; the JWKS is fetched again, rate-limited,
 * when a v2 signature arrives) that the caller may keep or free. Any other error (bad files,
 * bad URL, NOMEM): *out is NULL. The caller frees *out with mp_fbverify_free. */
enum mp_result mp_fbverify_new(const char *pubkey_files, const char *jwks, const char *ca_file,
                               struct mp_fbverify **out, struct mp_buf *errors) MP_MUSTCHECK;

/* True when at least one key source (v1 keys or a JWKS) is configured. */
bool mp_fbverify_configured(const struct mp_fbverify *v);

/* Checks the signature headers of a webhook against body[0..len). v1_header is the value of
 * Fireblocks-Signature or NULL; v2_header the value of Fireblocks-Webhook-Signature or NULL.
 * MP_OK when a presented header that can be checked verifies. Otherwise:
 * MP_ERR_UNAVAILABLE when a v2 signature named a kid the JWKS lacks and the JWKS could not be
 * (re)loaded (the request may be valid: answer 503 so that Fireblocks retries);
 * MP_ERR_NOMEM when memory ran out; MP_ERR_UNAUTHORIZED for everything else (no header, bad
 * encoding, alg other than RS512, unknown kid, wrong key, altered body). Thread-safe. */
enum mp_result mp_fbverify_check(struct mp_fbverify *v, const char *v1_header,
                                 const char *v2_header, const void *body, size_t len) MP_MUSTCHECK;

/* Sets the least time between two JWKS reloads caused by unknown kids (0: reload on every
 * miss, for tests). Thread-safe. */
void mp_fbverify_set_refetch_interval(struct mp_fbverify *v, unsigned seconds);

/* The number of JWKS loads attempted so far, the initial one included (for metrics and tests).
 * Thread-safe. */
unsigned long mp_fbverify_jwks_loads(struct mp_fbverify *v);

/* Accepts NULL. */
void mp_fbverify_free(struct mp_fbverify *v);

#endif
