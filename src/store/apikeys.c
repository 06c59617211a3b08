/* API keys: random 32-byte secrets, stored as SHA-256 hashes. The secrets have full entropy,
 * so a fast hash is enough; what matters is that the database never holds the key itself. */
#include "mpcpush/apikeys.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpcpush/db.h"
#include "mpcpush/validate.h"

#define KEY_PREFIX "mpk_"

static void base64url(const unsigned char *in, size_t len, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        if (i + 1 < len)
            out[o++] = alphabet[(v >> 6) & 63];
        if (i + 2 < len)
            out[o++] = alphabet[v & 63];
    }
    out[o] = '\0';
}

enum mp_result mp_apikey_create(PGconn *conn, const char *name, char key_out[MP_APIKEY_MAX])
{
    if (!mp_valid_id(name, strlen(name)))
        return MP_ERR_INVALID;
    unsigned char secret[32], hash[SHA256_DIGEST_LENGTH];
    char key[MP_APIKEY_MAX];
    if (RAND_bytes(secret, sizeof(secret)) != 1)
        return MP_ERR_CRYPTO;
    memcpy(key, KEY_PREFIX, sizeof(KEY_PREFIX) - 1);
    base64url(secret, sizeof(secret), key + sizeof(KEY_PREFIX) - 1);
    SHA256((const unsigned char *)key, strlen(key), hash);
    OPENSSL_cleanse(secret, sizeof(secret));

    const char *params[] = {name, (const char *)hash};
    const int lengths[] = {0, sizeof(hash)};
    const int formats[] = {0, 1};
    /* A revoked key's name may be reused: the revoked row is replaced. */
    PGresult *res = PQexecParams(conn,
                                 "INSERT INTO mpcpush.api_keys (name, key_hash) VALUES ($1, $2) "
                                 "ON CONFLICT (name) DO UPDATE SET key_hash = EXCLUDED.key_hash,"
                                 " created_at = now(), revoked_at = NULL "
                                 "WHERE api_keys.revoked_at IS NOT NULL",
                                 2, NULL, params, lengths, formats, 0);
    enum mp_result result = mp_db_check(conn, res, "apikey_create");
    if (!result && strcmp(PQcmdTuples(res), "1") != 0)
        result = MP_ERR_CONFLICT;
    PQclear(res);
    if (!result)
        memcpy(key_out, key, strlen(key) + 1);
    OPENSSL_cleanse(key, sizeof(key));
    return result;
}

enum mp_result mp_apikey_revoke(PGconn *conn, const char *name)
{
    const char *params[] = {name};
    PGresult *res = PQexecParams(conn,
                                 "UPDATE mpcpush.api_keys SET revoked_at = now() "
                                 "WHERE name = $1 AND revoked_at IS NULL",
                                 1, NULL, params, NULL, NULL, 0);
    enum mp_result result = mp_db_check(conn, res, "apikey_revoke");
    if (!result && strcmp(PQcmdTuples(res), "1") != 0)
        result = MP_ERR_NOT_FOUND;
    PQclear(res);
    return result;
}

struct cached_key {
    unsigned char hash[SHA256_DIGEST_LENGTH];
    char name[128];
};

struct mp_apikey_cache {
    pthread_rwlock_t lock;
    struct cached_key *keys;
    int count;
};

enum mp_result mp_apikey_cache_new(struct mp_apikey_cache **out)
{
    struct mp_apikey_cache *cache = calloc(1, sizeof(*cache));
    if (!cache)
        return MP_ERR_NOMEM;
    pthread_rwlock_init(&cache->lock, NULL);
    *out = cache;
    return MP_OK;
}

enum mp_result mp_apikey_cache_refresh(struct mp_apikey_cache *cache, PGconn *conn)
{
    PGresult *res = PQexecParams(conn,
                                 "SELECT key_hash, name FROM mpcpush.api_keys "
                                 "WHERE revoked_at IS NULL",
                                 0, NULL, NULL, NULL, NULL, 1);
    enum mp_result result = mp_db_check(conn, res, "apikey_load");
    int n = result ? 0 : PQntuples(res);
    struct cached_key *keys = result ? NULL : calloc((size_t)n + 1, sizeof(*keys));
    if (!result && !keys)
        result = MP_ERR_NOMEM;
    for (int i = 0; !result && i < n; i++) {
        if (PQgetlength(res, i, 0) != SHA256_DIGEST_LENGTH)
            continue;
        memcpy(keys[i].hash, PQgetvalue(res, i, 0), SHA256_DIGEST_LENGTH);
        snprintf(keys[i].name, sizeof(keys[i].name), "%.*s", PQgetlength(res, i, 1),
                 PQgetvalue(res, i, 1));
    }
    PQclear(res);
    if (result) {
        free(keys);
        return result;
    }
    pthread_rwlock_wrlock(&cache->lock);
    struct cached_key *old = cache->keys;
    cache->keys = keys;
    cache->count = n;
    pthread_rwlock_unlock(&cache->lock);
    free(old);
    return MP_OK;
}

bool mp_apikey_cache_check(struct mp_apikey_cache *cache, const char *key, size_t len,
                           char *name_out, size_t name_size)
{
    unsigned char hash[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, len, hash);
    int found = -1;
    pthread_rwlock_rdlock(&cache->lock);
    /* Look at every key whatever matches, so timing says nothing about which one did. */
    for (int i = 0; i < cache->count; i++)
        if (CRYPTO_memcmp(hash, cache->keys[i].hash, sizeof(hash)) == 0)
            found = i;
    if (found >= 0 && name_out)
        snprintf(name_out, name_size, "%s", cache->keys[found].name);
    pthread_rwlock_unlock(&cache->lock);
    return found >= 0;
}

void mp_apikey_cache_free(struct mp_apikey_cache *cache)
{
    if (!cache)
        return;
    pthread_rwlock_destroy(&cache->lock);
    free(cache->keys);
    free(cache);
}
