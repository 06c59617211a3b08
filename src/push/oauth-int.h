/* The OAuth token source's private parts: the loaded key and the token exchange. */
#ifndef MPCPUSH_OAUTH_INT_H
#define MPCPUSH_OAUTH_INT_H

#include <stddef.h>

#include "mpcpush/buf.h"
#include "mpcpush/result.h"

struct mp_oauth_key {
    char *project_id;
    char *client_email;
    char *private_key_id;
    char *private_key; /* PEM; wiped with OPENSSL_cleanse before it is freed */
    char *token_url;
    char *ca_file; /* NULL: system store */
};

/* Reads and checks the key file at path (see mp_oauth_new); fills *key on success. */
enum mp_result mp_oauth_key_load(const char *path, const char *token_url_override,
                                 const char *ca_file, struct mp_oauth_key *key,
                                 struct mp_buf *errors) MP_MUSTCHECK;

/* Wipes the private key and frees every field; accepts a zeroed key. */
void mp_oauth_key_clear(struct mp_oauth_key *key);

/* One token exchange: signs a fresh assertion with key, posts it to key->token_url, and on
 * success copies the access token into token (size bytes) and its lifetime into *expires_in.
 * On failure writes a logfmt fragment saying why (no secrets) into why and returns
 * MP_ERR_NETWORK (no answer or 5xx), MP_ERR_UNAUTHORIZED (the grant was refused),
 * MP_ERR_INVALID (an answer we cannot use), MP_ERR_CRYPTO or MP_ERR_NOMEM. */
enum mp_result mp_oauth_fetch(const struct mp_oauth_key *key, char *token, size_t size,
                              long long *expires_in, char *why, size_t why_size) MP_MUSTCHECK;

#endif
