/* Issued access tokens: a chained hash table (FNV-1a) that doubles when it fills. Expired
 * tokens stay for a while so the send endpoint can tell "expired" from "never issued". */
#include "tokens-int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#define TOKEN_PREFIX    "ya29.emu-"
#define TOKEN_RANDOM    48 /* bytes of randomness, 64 base64url characters */
#define INITIAL_BUCKETS 1024

struct entry {
    struct entry *next;
    uint64_t hash;
    int64_t expires_ms;
    size_t account;
    size_t len;
    char token[];
};

struct emu_tokens {
    struct entry **buckets;
    size_t n_buckets; /* a power of two */
    size_t count;
};

static uint64_t fnv1a(const char *data, size_t len)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)data[i];
        h *= 1099511628211ull;
    }
    return h;
}

enum mp_result emu_tokens_new(struct emu_tokens **out)
{
    struct emu_tokens *tokens = calloc(1, sizeof(*tokens));
    if (!tokens)
        return MP_ERR_NOMEM;
    tokens->buckets = calloc(INITIAL_BUCKETS, sizeof(*tokens->buckets));
    if (!tokens->buckets) {
        free(tokens);
        return MP_ERR_NOMEM;
    }
    tokens->n_buckets = INITIAL_BUCKETS;
    *out = tokens;
    return MP_OK;
}

void emu_tokens_free(struct emu_tokens *tokens)
{
    if (!tokens)
        return;
    emu_tokens_purge(tokens, INT64_MAX);
    free(tokens->buckets);
    free(tokens);
}

static void grow(struct emu_tokens *tokens)
{
    size_t n = tokens->n_buckets * 2;
    struct entry **buckets = calloc(n, sizeof(*buckets));
    if (!buckets)
        return; /* keep the longer chains */
    for (size_t i = 0; i < tokens->n_buckets; i++) {
        struct entry *e = tokens->buckets[i];
        while (e) {
            struct entry *next = e->next;
            e->next = buckets[e->hash & (n - 1)];
            buckets[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(tokens->buckets);
    tokens->buckets = buckets;
    tokens->n_buckets = n;
}

static void random_token(const unsigned char *raw, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = strlen(TOKEN_PREFIX);
    memcpy(out, TOKEN_PREFIX, o);
    for (size_t i = 0; i < TOKEN_RANDOM; i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
        for (int k = 18; k >= 0; k -= 6)
            out[o++] = alphabet[(v >> k) & 63];
    }
    out[o] = '\0';
}

enum mp_result emu_tokens_issue(struct emu_tokens *tokens, int64_t expires_ms, size_t account,
                                char *out)
{
    unsigned char raw[TOKEN_RANDOM];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return MP_ERR_CRYPTO;
    random_token(raw, out);
    size_t len = strlen(out);
    struct entry *e = malloc(sizeof(*e) + len + 1);
    if (!e)
        return MP_ERR_NOMEM;
    memcpy(e->token, out, len + 1);
    e->len = len;
    e->hash = fnv1a(out, len);
    e->expires_ms = expires_ms;
    e->account = account;
    if (tokens->count >= tokens->n_buckets)
        grow(tokens);
    struct entry **bucket = &tokens->buckets[e->hash & (tokens->n_buckets - 1)];
    e->next = *bucket;
    *bucket = e;
    tokens->count++;
    return MP_OK;
}

enum emu_token_state emu_tokens_check(struct emu_tokens *tokens, const char *token, size_t len,
                                      int64_t now_ms, size_t *account)
{
    uint64_t h = fnv1a(token, len);
    for (struct entry *e = tokens->buckets[h & (tokens->n_buckets - 1)]; e; e = e->next) {
        if (e->hash != h || e->len != len || memcmp(e->token, token, len) != 0)
            continue;
        if (now_ms >= e->expires_ms)
            return EMU_TOKEN_EXPIRED;
        *account = e->account;
        return EMU_TOKEN_VALID;
    }
    return EMU_TOKEN_UNKNOWN;
}

void emu_tokens_purge(struct emu_tokens *tokens, int64_t before_ms)
{
    for (size_t i = 0; i < tokens->n_buckets; i++) {
        struct entry **link = &tokens->buckets[i];
        while (*link) {
            struct entry *e = *link;
            if (e->expires_ms < before_ms) {
                *link = e->next;
                free(e);
                tokens->count--;
            } else {
                link = &e->next;
            }
        }
    }
}

void emu_tokens_expire_all(struct emu_tokens *tokens, int64_t now_ms)
{
    for (size_t i = 0; i < tokens->n_buckets; i++)
        for (struct entry *e = tokens->buckets[i]; e; e = e->next)
            if (e->expires_ms > now_ms)
                e->expires_ms = now_ms;
}

size_t emu_tokens_count(const struct emu_tokens *tokens)
{
    return tokens->count;
}
