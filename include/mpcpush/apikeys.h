/* API keys for /v1: created and revoked by `mpcpush apikey`, checked by the HTTP API against an
 * in-memory copy of the stored hashes (compared in constant time, refreshed periodically). */
#ifndef MPCPUSH_APIKEYS_H
#define MPCPUSH_APIKEYS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "mpcpush/result.h"

#define MP_APIKEY_MAX 64 /* room for a key and its NUL */

/* Creates a key named name and writes it to key_out (only its hash is stored).
 * MP_ERR_CONFLICT when an active key already has that name; MP_ERR_INVALID for a bad name. */
enum mp_result mp_apikey_create(PGconn *conn, const char *name,
                                char key_out[MP_APIKEY_MAX]) MP_MUSTCHECK;

/* Revokes the key named name; MP_ERR_NOT_FOUND when there is no active key of that name. */
enum mp_result mp_apikey_revoke(PGconn *conn, const char *name) MP_MUSTCHECK;

struct mp_apikey_cache;

/* An empty cache; refresh it before use. */
enum mp_result mp_apikey_cache_new(struct mp_apikey_cache **out) MP_MUSTCHECK;

/* Reloads the hashes of the active keys. On failure the previous set stays. */
enum mp_result mp_apikey_cache_refresh(struct mp_apikey_cache *cache, PGconn *conn) MP_MUSTCHECK;

/* True when key (len bytes) is an active key; copies its name into name_out (may be NULL).
 * Compares hashes in constant time against every active key. Thread-safe. */
bool mp_apikey_cache_check(struct mp_apikey_cache *cache, const char *key, size_t len,
                           char *name_out, size_t name_size);

/* Accepts NULL. */
void mp_apikey_cache_free(struct mp_apikey_cache *cache);

#endif
