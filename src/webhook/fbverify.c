/* Fireblocks webhook signatures: v1 (RSA SHA-512 over the body, PEM keys) and v2 (detached JWS
 * RS512, JWKS keys chosen by kid). The v1 keys never change after creation; the JWKS key set is
 * swapped whole under keys_lock, and every caller copies the verifier of the key it uses under
 * it, so a reload never pulls a key from under a verification. Each key has a verifier context
 * set up once (digest, key, padding: mp_rs512_verifier_new) that requests copy instead of setting
 * all of it up again; the shared one is only ever read. */
#include "mpcpush/fbverify.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpcpush/log.h"
#include "webhook/jwks-int.h"

#define ENV_PUBKEYS   "MPCPUSH_FIREBLOCKS_PUBKEYS"
#define ENV_JWKS      "MPCPUSH_FIREBLOCKS_JWKS"
#define RSA_MIN_BITS  2048
#define SIG_MAX       1024 /* bytes of an 8192-bit RSA signature */
#define PROTECTED_MAX 1024 /* bytes of a decoded JWS protected header */
#define B64_CHUNK     3072 /* body bytes encoded per digest update (a multiple of 3) */

struct mp_fbverify {
    EVP_PKEY *v1_keys[MP_FBVERIFY_V1_KEYS_MAX];
    EVP_MD_CTX *v1_verifiers[MP_FBVERIFY_V1_KEYS_MAX]; /* one per key, copied per request */
    size_t v1_count;
    bool has_jwks;
    struct mp_jwks_source jwks_source;
    pthread_mutex_t keys_lock; /* guards jwks */
    struct mp_jwks *jwks;      /* NULL until a load succeeds */
    pthread_mutex_t load_lock; /* one load at a time; guards the fields below */
    time_t last_load;          /* monotonic seconds of the last load attempt */
    unsigned long loads;
    unsigned interval;
    bool load_failed; /* the last load attempt failed */
};

/* One piece of the signed bytes; b64url pieces are hashed in their base64url encoding. */
struct part {
    const void *data;
    size_t len;
    bool b64url;
};

static void problem(struct mp_buf *errors, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void problem(struct mp_buf *errors, const char *fmt, ...)
{
    char line[1024], quoted[1100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (errors && (mp_buf_puts(errors, line) || mp_buf_puts(errors, "\n")))
        MP_WARN("fbverify_errors_truncated", "line=%s", mp_log_quote(quoted, sizeof(quoted), line));
}

static time_t now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* ---- v1 keys ---- */

/* Reads the RSA public key of a PEM file (SubjectPublicKeyInfo or PKCS#1). */
static enum mp_result load_pem(const char *path, EVP_PKEY **out, char *why, size_t why_size)
{
    EVP_PKEY *pkey = NULL;
    OSSL_DECODER_CTX *dctx = NULL;
    enum mp_result result = MP_OK;
    FILE *f = fopen(path, "r");
    BIO *bio = f ? BIO_new_fp(f, BIO_CLOSE) : NULL;
    if (!f) {
        snprintf(why, why_size, "cannot read: %s", strerror(errno));
        result = MP_ERR_IO;
        goto out;
    }
    dctx = bio ? OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, "RSA", EVP_PKEY_PUBLIC_KEY, NULL,
                                               NULL)
               : NULL;
    if (!bio || !dctx) {
        if (!bio)
            fclose(f);
        snprintf(why, why_size, "out of memory");
        result = MP_ERR_NOMEM;
    } else if (OSSL_DECODER_from_bio(dctx, bio) != 1 || !pkey) {
        snprintf(why, why_size, "no RSA public key in PEM format");
        result = MP_ERR_CRYPTO;
    } else if (EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS) {
        snprintf(why, why_size, "RSA key shorter than %d bits", RSA_MIN_BITS);
        result = MP_ERR_CRYPTO;
    }
out:
    OSSL_DECODER_CTX_free(dctx);
    BIO_free(bio);
    ERR_clear_error();
    if (result)
        EVP_PKEY_free(pkey);
    else
        *out = pkey;
    return result;
}

/* Loads every file of the comma-separated list, reporting each one that fails. */
static enum mp_result load_pubkeys(struct mp_fbverify *v, const char *files, struct mp_buf *errors)
{
    char *list = strdup(files), *save = NULL, why[256];
    enum mp_result result = list ? MP_OK : MP_ERR_NOMEM;
    for (char *path = list ? strtok_r(list, ",", &save) : NULL; path;
         path = strtok_r(NULL, ",", &save)) {
        while (*path == ' ' || *path == '\t')
            path++;
        size_t n = strlen(path);
        while (n > 0 && (path[n - 1] == ' ' || path[n - 1] == '\t'))
            path[--n] = '\0';
        if (n == 0)
            continue;
        if (v->v1_count == MP_FBVERIFY_V1_KEYS_MAX) {
            problem(errors, ENV_PUBKEYS ": more than %d files", MP_FBVERIFY_V1_KEYS_MAX);
            result = MP_ERR_INVALID;
            break;
        }
        enum mp_result one = load_pem(path, &v->v1_keys[v->v1_count], why, sizeof(why));
        if (!one &&
            !(v->v1_verifiers[v->v1_count] = mp_rs512_verifier_new(v->v1_keys[v->v1_count]))) {
            EVP_PKEY_free(v->v1_keys[v->v1_count]);
            snprintf(why, sizeof(why), "out of memory");
            one = MP_ERR_NOMEM;
        }
        if (one) {
            problem(errors, ENV_PUBKEYS ": %s: %s", path, why);
            result = one == MP_ERR_NOMEM ? one : MP_ERR_INVALID;
        } else {
            v->v1_count++;
        }
    }
    if (!list)
        problem(errors, ENV_PUBKEYS ": out of memory");
    free(list);
    return result;
}

/* ---- JWKS ---- */

/* Loads the JWKS again and swaps it in; the old set stays when the load fails.
 * Called with load_lock held. */
static enum mp_result reload_jwks(struct mp_fbverify *v, char *why, size_t why_size)
{
    struct mp_jwks *fresh = NULL, *old;
    char where[256], reason[300];
    v->last_load = now_seconds();
    v->loads++;
    enum mp_result result = mp_jwks_load(&v->jwks_source, &fresh, why, why_size);
    v->load_failed = result != MP_OK;
    mp_log_quote(where, sizeof(where), v->jwks_source.location);
    if (result) {
        MP_WARN("jwks_load_failed", "source=%s reason=%s", where,
                mp_log_quote(reason, sizeof(reason), why));
        return result;
    }
    pthread_mutex_lock(&v->keys_lock);
    old = v->jwks;
    v->jwks = fresh;
    pthread_mutex_unlock(&v->keys_lock);
    mp_jwks_free(old);
    MP_INFO("jwks_loaded", "source=%s keys=%zu", where, mp_jwks_count(fresh));
    return MP_OK;
}

/* Copies the verifier of the key named kid into ctx (MP_ERR_NOT_FOUND, MP_ERR_NOMEM). */
static enum mp_result lookup(struct mp_fbverify *v, const char *kid, EVP_MD_CTX *ctx)
{
    pthread_mutex_lock(&v->keys_lock);
    enum mp_result result = mp_jwks_verifier(v->jwks, kid, ctx);
    pthread_mutex_unlock(&v->keys_lock);
    return result;
}

/* Sets ctx up to verify with the key named kid. On a miss, reloads the JWKS unless another
 * load happened within the interval; callers that arrive during a load wait for it and look
 * again instead of loading too. */
static enum mp_result jwks_verifier(struct mp_fbverify *v, const char *kid, EVP_MD_CTX *ctx)
{
    char why[256];
    enum mp_result result = lookup(v, kid, ctx);
    if (result != MP_ERR_NOT_FOUND)
        return result;
    pthread_mutex_lock(&v->load_lock);
    result = lookup(v, kid, ctx);
    if (result == MP_ERR_NOT_FOUND && now_seconds() - v->last_load >= (time_t)v->interval) {
        if (reload_jwks(v, why, sizeof(why)) == MP_OK)
            result = lookup(v, kid, ctx);
    }
    if (result == MP_ERR_NOT_FOUND)
        result = v->load_failed ? MP_ERR_UNAVAILABLE : MP_ERR_UNAUTHORIZED;
    pthread_mutex_unlock(&v->load_lock);
    return result;
}

static enum mp_result setup_jwks(struct mp_fbverify *v, const char *jwks, const char *ca_file,
                                 struct mp_buf *errors)
{
    char why[256];
    enum mp_result result = mp_jwks_source_init(&v->jwks_source, jwks, ca_file, why, sizeof(why));
    if (result) {
        problem(errors, ENV_JWKS ": %s", why);
        return result;
    }
    v->has_jwks = true;
    pthread_mutex_lock(&v->load_lock);
    result = reload_jwks(v, why, sizeof(why));
    pthread_mutex_unlock(&v->load_lock);
    if (result) {
        problem(errors, ENV_JWKS ": %s: %s", jwks, why);
        if (result != MP_ERR_NOMEM)
            result = v->jwks_source.is_url ? MP_ERR_UNAVAILABLE : MP_ERR_INVALID;
    }
    return result;
}

/* ---- signatures ---- */

static bool update_b64url(EVP_MD_CTX *ctx, const unsigned char *data, size_t len)
{
    char text[B64_CHUNK / 3 * 4];
    for (size_t off = 0; off < len; off += B64_CHUNK) {
        size_t n = len - off < B64_CHUNK ? len - off : B64_CHUNK;
        if (EVP_DigestVerifyUpdate(ctx, text, mp_b64url_encode(data + off, n, text)) != 1)
            return false;
    }
    return true;
}

/* RSASSA-PKCS1-v1_5 with SHA-512 over the concatenation of parts, with ctx, a copy of a key's
 * verifier (used up: the caller frees it). */
static enum mp_result verify_rs512(EVP_MD_CTX *ctx, const unsigned char *sig, size_t sig_len,
                                   const struct part *parts, size_t count)
{
    enum mp_result result = MP_ERR_UNAUTHORIZED;
    for (size_t i = 0; i < count; i++) {
        bool ok = parts[i].b64url ? update_b64url(ctx, parts[i].data, parts[i].len)
                                  : EVP_DigestVerifyUpdate(ctx, parts[i].data, parts[i].len) == 1;
        if (!ok)
            goto out;
    }
    if (EVP_DigestVerifyFinal(ctx, sig, sig_len) == 1)
        result = MP_OK;
out:
    ERR_clear_error();
    return result;
}

/* Verifies with v1 key i (see verify_rs512). */
static enum mp_result verify_v1_key(struct mp_fbverify *v, size_t i, const unsigned char *sig,
                                    size_t sig_len, const struct part *whole)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    enum mp_result result = MP_ERR_NOMEM;
    if (ctx && EVP_MD_CTX_copy_ex(ctx, v->v1_verifiers[i]) == 1)
        result = verify_rs512(ctx, sig, sig_len, whole, 1);
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return result;
}

/* Points *text at header without surrounding whitespace; false when header is too long. */
static bool trimmed(const char *header, size_t max, const char **text, size_t *len)
{
    size_t n = strnlen(header, max + 1);
    if (n > max)
        return false;
    while (n > 0 && strchr(" \t\r\n", header[0])) {
        header++;
        n--;
    }
    while (n > 0 && strchr(" \t\r\n", header[n - 1]))
        n--;
    *text = header;
    *len = n;
    return true;
}

static enum mp_result check_v1(struct mp_fbverify *v, const char *header, const void *body,
                               size_t len, const char **why)
{
    const char *text;
    size_t text_len, sig_len;
    unsigned char sig[SIG_MAX];
    enum mp_result result = MP_ERR_UNAUTHORIZED;
    struct part whole = {body, len, false};
    if (!trimmed(header, MP_FBVERIFY_V1_HEADER_MAX, &text, &text_len)) {
        *why = "header too long";
        return result;
    }
    if (text_len == 0 || mp_b64_decode(text, text_len, false, sig, sizeof(sig), &sig_len)) {
        *why = "not base64";
        return result;
    }
    *why = "no key verifies";
    for (size_t i = 0; i < v->v1_count && result; i++) {
        enum mp_result one = verify_v1_key(v, i, sig, sig_len, &whole);
        if (one != MP_ERR_UNAUTHORIZED)
            result = one;
    }
    return result;
}

/* Checks the protected header of a JWS (alg RS512, no extensions) and copies its kid. */
static enum mp_result parse_protected(const char *b64, size_t len, char *kid, size_t kid_size,
                                      const char **why)
{
    unsigned char text[PROTECTED_MAX];
    size_t n;
    if (mp_b64_decode(b64, len, true, text, sizeof(text), &n)) {
        *why = "protected header not base64url";
        return MP_ERR_UNAUTHORIZED;
    }
    json_t *hdr = json_loadb((const char *)text, n, JSON_REJECT_DUPLICATES, NULL);
    json_t *alg = json_object_get(hdr, "alg"), *id = json_object_get(hdr, "kid");
    json_t *b64_flag = json_object_get(hdr, "b64");
    enum mp_result result = MP_ERR_UNAUTHORIZED;
    if (!json_is_object(hdr))
        *why = "protected header not a JSON object";
    else if (!json_is_string(alg) || strcmp(json_string_value(alg), "RS512") != 0)
        *why = "alg is not RS512";
    else if (json_object_get(hdr, "crit") || (b64_flag && !json_is_true(b64_flag)))
        *why = "unsupported JWS extension";
    else if (!json_is_string(id) || json_string_length(id) == 0 ||
             json_string_length(id) >= kid_size)
        *why = "missing or invalid kid";
    else {
        memcpy(kid, json_string_value(id), json_string_length(id) + 1);
        result = MP_OK;
    }
    json_decref(hdr);
    return result;
}

static enum mp_result check_v2(struct mp_fbverify *v, const char *header, const void *body,
                               size_t len, const char **why)
{
    const char *text;
    size_t text_len, sig_len;
    unsigned char sig[SIG_MAX];
    char kid[MP_JWKS_KID_MAX + 1];
    if (!trimmed(header, MP_FBVERIFY_V2_HEADER_MAX, &text, &text_len)) {
        *why = "header too long";
        return MP_ERR_UNAUTHORIZED;
    }
    const char *dot = memchr(text, '.', text_len), *end = text + text_len;
    if (!dot || dot == text || end - dot < 3 || dot[1] != '.' ||
        memchr(dot + 2, '.', end - dot - 2)) {
        *why = "not a detached JWS";
        return MP_ERR_UNAUTHORIZED;
    }
    enum mp_result result = parse_protected(text, (size_t)(dot - text), kid, sizeof(kid), why);
    if (result)
        return result;
    if (mp_b64_decode(dot + 2, (size_t)(end - dot - 2), true, sig, sizeof(sig), &sig_len)) {
        *why = "signature not base64url";
        return MP_ERR_UNAUTHORIZED;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    result = ctx ? jwks_verifier(v, kid, ctx) : MP_ERR_NOMEM;
    if (result) {
        *why = result == MP_ERR_UNAVAILABLE ? "unknown kid, JWKS unavailable"
               : result == MP_ERR_NOMEM     ? "out of memory"
                                            : "unknown kid";
        EVP_MD_CTX_free(ctx);
        return result;
    }
    const struct part input[] = {
        {text, (size_t)(dot - text), false}, {".", 1, false}, {body, len, true}};
    result = verify_rs512(ctx, sig, sig_len, input, 3);
    EVP_MD_CTX_free(ctx);
    *why = "signature does not verify";
    return result;
}

/* ---- public ---- */

static enum mp_result verifier_alloc(struct mp_fbverify **out)
{
    struct mp_fbverify *v = calloc(1, sizeof(*v));
    if (!v)
        return MP_ERR_NOMEM;
    if (pthread_mutex_init(&v->keys_lock, NULL) != 0) {
        free(v);
        return MP_ERR_NOMEM;
    }
    if (pthread_mutex_init(&v->load_lock, NULL) != 0) {
        pthread_mutex_destroy(&v->keys_lock);
        free(v);
        return MP_ERR_NOMEM;
    }
    v->interval = MP_FBVERIFY_REFETCH_SECONDS;
    *out = v;
    return MP_OK;
}

enum mp_result mp_fbverify_new(const char *pubkey_files, const char *jwks, const char *ca_file,
                               struct mp_fbverify **out, struct mp_buf *errors)
{
    struct mp_fbverify *v = NULL;
    enum mp_result result = verifier_alloc(&v), more = MP_OK;
    if (result)
        goto out;
    if (pubkey_files && pubkey_files[0])
        result = load_pubkeys(v, pubkey_files, errors);
    if (jwks && jwks[0])
        more = setup_jwks(v, jwks, ca_file, errors);
    /* Every problem has been reported; a failed fetch alone leaves a usable verifier. */
    if (!result || more == MP_ERR_NOMEM)
        result = more;
    if (!result || result == MP_ERR_UNAVAILABLE)
        MP_INFO("fbverify_ready", "v1_keys=%zu jwks=%s jwks_keys=%zu", v->v1_count,
                v->has_jwks ? (v->jwks_source.is_url ? "url" : "file") : "none",
                mp_jwks_count(v->jwks));
out:
    if (result && result != MP_ERR_UNAVAILABLE) {
        mp_fbverify_free(v);
        v = NULL;
    }
    *out = v;
    return result;
}

bool mp_fbverify_configured(const struct mp_fbverify *v)
{
    return v && (v->v1_count > 0 || v->has_jwks);
}

enum mp_result mp_fbverify_check(struct mp_fbverify *v, const char *v1_header,
                                 const char *v2_header, const void *body, size_t len)
{
    const char *why1 = "absent", *why2 = "absent";
    enum mp_result r1 = MP_ERR_UNAUTHORIZED, r2 = MP_ERR_UNAUTHORIZED;
    if (!body && len)
        return MP_ERR_INTERNAL;
    if (!body)
        body = "";
    if (v1_header && v->v1_count == 0)
        why1 = "no v1 keys configured";
    else if (v1_header)
        r1 = check_v1(v, v1_header, body, len, &why1);
    if (r1 == MP_OK)
        return MP_OK;
    if (v2_header && !v->has_jwks)
        why2 = "no JWKS configured";
    else if (v2_header)
        r2 = check_v2(v, v2_header, body, len, &why2);
    if (r2 == MP_OK)
        return MP_OK;
    MP_DEBUG("webhook_signature_rejected", "v1=\"%s\" v2=\"%s\"", why1, why2);
    if (r1 == MP_ERR_NOMEM || r2 == MP_ERR_NOMEM)
        return MP_ERR_NOMEM;
    return r2 == MP_ERR_UNAVAILABLE ? MP_ERR_UNAVAILABLE : MP_ERR_UNAUTHORIZED;
}

void mp_fbverify_set_refetch_interval(struct mp_fbverify *v, unsigned seconds)
{
    pthread_mutex_lock(&v->load_lock);
    v->interval = seconds;
    pthread_mutex_unlock(&v->load_lock);
}

unsigned long mp_fbverify_jwks_loads(struct mp_fbverify *v)
{
    pthread_mutex_lock(&v->load_lock);
    unsigned long loads = v->loads;
    pthread_mutex_unlock(&v->load_lock);
    return loads;
}

void mp_fbverify_free(struct mp_fbverify *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->v1_count; i++) {
        EVP_PKEY_free(v->v1_keys[i]);
        EVP_MD_CTX_free(v->v1_verifiers[i]);
    }
    mp_jwks_free(v->jwks);
    mp_jwks_source_clear(&v->jwks_source);
    pthread_mutex_destroy(&v->keys_lock);
    pthread_mutex_destroy(&v->load_lock);
    free(v);
}
