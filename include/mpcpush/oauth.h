/* Google service-account OAuth 2.0 (JWT bearer grant): turns the service-account key file into
 * short-lived access tokens for the FCM HTTP v1 API.
 *
 * Tokens are cached and refreshed shortly before they expire (300 s early, or 10% of the
 * lifetime when that is shorter). Any number of threads may ask for a token at once; only one
 * of them talks to the token endpoint, the others wait for its result. After a failed refresh
 * the source backs off (1 s doubling to 60 s) and answers MP_ERR_UNAVAILABLE meanwhile, so a
 * broken key or endpoint is never hammered. The private key, assertions and access tokens are
 * never logged. */
#ifndef MPCPUSH_OAUTH_H
#define MPCPUSH_OAUTH_H

#include <stddef.h>

#include "mpcpush/buf.h"
#include "mpcpush/result.h"

#define MP_OAUTH_TOKEN_MAX 2048 /* room for an access token and its NUL */
#define MP_OAUTH_SCOPE     "https://www.googleapis.com/auth/firebase.messaging"

struct mp_oauth;

struct mp_oauth_stats {
    unsigned long long refreshes; /* successful token fetches */
    unsigned long long failures;  /* failed token fetches */
    long long expires_unix;       /* when the cached token expires (unix seconds), 0: none */
};

/* Loads and validates the service-account key file (type service_account, project_id,
 * private_key_id, private_key as an RSA PEM, client_email, token_uri). token_url_override
 * (may be NULL) replaces the file's token_uri; it must be https://, or http:// to a loopback
 * host. ca_file (may be NULL) is the CA bundle trusted instead of the system store for the
 * token endpoint (CURLOPT_CAINFO). Each problem is
 * appended to errors as one line (never with key material). A key file readable by others is
 * accepted with a warning. The caller owns *out (mp_oauth_free). Network is not touched. */
enum mp_result mp_oauth_new(const char *credentials_file, const char *token_url_override,
                            const char *ca_file, struct mp_oauth **out,
                            struct mp_buf *errors) MP_MUSTCHECK;

/* The key file's project_id (owned by o). */
const char *mp_oauth_project_id(const struct mp_oauth *o);

/* The key file's client_email (owned by o); safe to log. */
const char *mp_oauth_client_email(const struct mp_oauth *o);

/* Copies a valid access token into out (size bytes, MP_OAUTH_TOKEN_MAX is enough), fetching a
 * new one when none is cached or the cached one is about to expire. Thread-safe.
 * MP_ERR_UNAVAILABLE when no token could be had (the reason is logged; the next attempt waits
 * for the back-off), MP_ERR_TOO_LARGE when out is too small. While a refresh fails but the old
 * token has not yet expired, the old token is returned. */
enum mp_result mp_oauth_token(struct mp_oauth *o, char *out, size_t size) MP_MUSTCHECK;

/* Forgets token if it is still the cached one, so that the next mp_oauth_token fetches a new
 * one. Call it when FCM answered 401 UNAUTHENTICATED for a request sent with token; a burst of
 * such answers for the same token causes a single refresh. Thread-safe. */
void mp_oauth_invalidate(struct mp_oauth *o, const char *token);

/* Counters for metrics. Thread-safe. */
void mp_oauth_stats(struct mp_oauth *o, struct mp_oauth_stats *out);

/* Frees o, wiping the private key and the cached token. Accepts NULL. Not while other threads
 * still use o. */
void mp_oauth_free(struct mp_oauth *o);

#endif
