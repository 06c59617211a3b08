/* Distinct NCW_DEVICE_MESSAGE webhooks, signed like Fireblocks v1 (base64 of RSA-SHA512 PKCS#1
 * v1.5 over the raw body, in Fireblocks-Signature), built as complete HTTP/1.1 requests before
 * the clock starts so that signing costs the server nothing during the measurement. */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-int.h"

/* The body's fixed parts plus the largest numbers, and the request line and headers. */
#define BODY_OVERHEAD    256
#define HEADERS_OVERHEAD 256
#define TIMESTAMP_MS     1764000000000LL

struct signer {
    const struct bench_webhook_plan *plan;
    struct bench_requests *out;
    EVP_PKEY *key;
    size_t from, to;
    char *sigs; /* sig_len characters per request (base64, no NUL) */
    size_t sig_len;
    bool have_sigs; /* loaded from the cache: only the requests are built */
    int failed;
};

/* A deterministic filler of base64 characters, different for every sequence number. */
static void fill_payload(char *dst, size_t n, unsigned long long seq)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned long long x = seq * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        dst[i] = alphabet[x & 63];
    }
}

static int body_of(const struct bench_webhook_plan *plan, size_t i, char *dst, size_t size,
                   long long *device)
{
    long long seq = plan->seq_base + (long long)i;
    long long k = plan->dev_first + (long long)(i % (size_t)plan->dev_count);
    int head =
        snprintf(dst, size,
                 "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"bench\",\"timestamp\":%lld,"
                 "\"walletId\":\"w%lld\",\"deviceId\":\"d%lld\",\"message\":{\"seq\":%lld,"
                 "\"data\":\"",
                 TIMESTAMP_MS + seq, k, k, seq);
    if (head < 0 || (size_t)head + plan->payload_bytes + 4 > size)
        return -1;
    fill_payload(dst + head, plan->payload_bytes, (unsigned long long)seq);
    memcpy(dst + head + plan->payload_bytes, "\"}}", 4);
    *device = k;
    return head + (int)plan->payload_bytes + 3;
}

static int sign_b64(EVP_MD_CTX *ctx, EVP_PKEY *key, const char *data, size_t len, char *out)
{
    unsigned char sig[1024];
    size_t sig_len = sizeof(sig);
    if (EVP_DigestSignInit(ctx, NULL, EVP_sha512(), NULL, key) != 1 ||
        EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)data, len) != 1)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, sig, (int)sig_len);
    return 0;
}

static void *sign_range(void *arg)
{
    struct signer *s = arg;
    const struct bench_webhook_plan *plan = s->plan;
    struct bench_requests *r = s->out;
    size_t body_max = plan->payload_bytes + BODY_OVERHEAD;
    char *body = malloc(body_max), *sig = malloc(s->sig_len + 4);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    for (size_t i = s->from; body && sig && ctx && i < s->to; i++) {
        int blen = body_of(plan, i, body, body_max, &r->device[i]);
        if (blen >= 0 && s->have_sigs) {
            memcpy(sig, s->sigs + i * s->sig_len, s->sig_len);
            sig[s->sig_len] = '\0';
        } else if (blen < 0 || sign_b64(ctx, s->key, body, (size_t)blen, sig) != 0 ||
                   strlen(sig) != s->sig_len) {
            s->failed = 1;
            break;
        } else {
            memcpy(s->sigs + i * s->sig_len, sig, s->sig_len);
        }
        char *dst = r->arena + i * r->slot;
        int n = snprintf(dst, r->slot,
                         "POST /webhooks/fireblocks HTTP/1.1\r\nHost: %s\r\n"
                         "Content-Type: application/json\r\nFireblocks-Signature: %s\r\n"
                         "Content-Length: %d\r\n\r\n",
                         plan->host, sig, blen);
        if (n < 0 || (size_t)n + (size_t)blen > r->slot) {
            s->failed = 1;
            break;
        }
        memcpy(dst + n, body, (size_t)blen);
        r->len[i] = (uint32_t)(n + blen);
    }
    if (!body || !sig || !ctx)
        s->failed = 1;
    EVP_MD_CTX_free(ctx);
    free(body);
    free(sig);
    return NULL;
}

static EVP_PKEY *load_key(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "mpcpush-bench: cannot open %s\n", path);
        return NULL;
    }
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!key)
        fprintf(stderr, "mpcpush-bench: %s holds no private key\n", path);
    return key;
}

static int run_signers(const struct bench_webhook_plan *plan, struct bench_requests *r,
                       EVP_PKEY *key, char *sigs, size_t sig_len, bool have_sigs)
{
    int nt = plan->threads > 0 ? plan->threads : 1;
    if (nt > 64)
        nt = 64;
    struct signer signers[64];
    pthread_t threads[64];
    int started = 0, failed = 0;
    for (int t = 0; t < nt; t++) {
        signers[t] = (struct signer){.plan = plan,
                                     .out = r,
                                     .key = key,
                                     .from = r->count * (size_t)t / (size_t)nt,
                                     .to = r->count * (size_t)(t + 1) / (size_t)nt,
                                     .sigs = sigs,
                                     .sig_len = sig_len,
                                     .have_sigs = have_sigs};
        if (pthread_create(&threads[t], NULL, sign_range, &signers[t]) != 0)
            break;
        started++;
    }
    for (int t = 0; t < started; t++) {
        pthread_join(threads[t], NULL);
        failed |= signers[t].failed;
    }
    return started == nt && !failed ? 0 : -1;
}

/* What the signatures of a plan depend on, as one line: the cache is valid for it alone. */
static int cache_header(const struct bench_webhook_plan *plan, EVP_PKEY *key, size_t sig_len,
                        char *out, size_t size)
{
    unsigned char *der = NULL, md[32];
    int len = i2d_PUBKEY(key, &der);
    unsigned md_len = 0;
    if (len <= 0 || EVP_Digest(der, (size_t)len, md, &md_len, EVP_sha256(), NULL) != 1) {
        OPENSSL_free(der);
        return -1;
    }
    OPENSSL_free(der);
    int n = snprintf(out, size, "mpcpush-bench signatures v1 key=");
    for (unsigned i = 0; i < md_len && n > 0 && (size_t)n + 3 < size; i++)
        n += snprintf(out + n, size - (size_t)n, "%02x", md[i]);
    n += snprintf(out + n, size - (size_t)n,
                  " seq=%lld first=%lld devices=%lld payload=%zu count=%zu siglen=%zu\n",
                  plan->seq_base, plan->dev_first, plan->dev_count, plan->payload_bytes,
                  plan->count, sig_len);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

/* Loads the signatures of the cache file when it was written for this plan: true if so. */
static bool cache_load(const char *path, const char *header, char *sigs, size_t bytes)
{
    FILE *f = path ? fopen(path, "rb") : NULL;
    char line[512];
    bool ok = f && fgets(line, sizeof(line), f) && strcmp(line, header) == 0 &&
              fread(sigs, 1, bytes, f) == bytes;
    if (f)
        fclose(f);
    return ok;
}

static void cache_store(const char *path, const char *header, const char *sigs, size_t bytes)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fputs(header, f) >= 0 && fwrite(sigs, 1, bytes, f) == bytes;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "mpcpush-bench: cannot write the signature cache %s\n", path);
        remove(tmp);
    }
}

int bench_requests_build(const struct bench_webhook_plan *plan, struct bench_requests *out)
{
    memset(out, 0, sizeof(*out));
    EVP_PKEY *key = load_key(plan->key_file);
    if (!key)
        return -1;
    size_t sig_len = 4 * (((size_t)EVP_PKEY_get_size(key) + 2) / 3);
    out->count = plan->count;
    out->slot =
        plan->payload_bytes + BODY_OVERHEAD + HEADERS_OVERHEAD + strlen(plan->host) + sig_len;
    out->slot = (out->slot + 63) & ~(size_t)63;
    out->arena = malloc(out->slot * (plan->count ? plan->count : 1));
    out->len = calloc(plan->count + 1, sizeof(*out->len));
    out->device = calloc(plan->count + 1, sizeof(*out->device));
    char *sigs = malloc(sig_len * (plan->count ? plan->count : 1));
    char header[512];
    int rc = -1;
    if (!out->arena || !out->len || !out->device || !sigs) {
        fprintf(stderr, "mpcpush-bench: out of memory for %zu requests\n", plan->count);
    } else if (plan->dev_count < 1 || cache_header(plan, key, sig_len, header, sizeof(header))) {
        fprintf(stderr, "mpcpush-bench: no devices, or an unusable key\n");
    } else {
        bool cached = cache_load(plan->cache_file, header, sigs, sig_len * plan->count);
        rc = run_signers(plan, out, key, sigs, sig_len, cached);
        if (rc)
            fprintf(stderr, "mpcpush-bench: building or signing the requests failed\n");
        else if (!cached && plan->cache_file)
            cache_store(plan->cache_file, header, sigs, sig_len * plan->count);
    }
    free(sigs);
    EVP_PKEY_free(key);
    if (rc)
        bench_requests_free(out);
    return rc;
}

void bench_requests_free(struct bench_requests *r)
{
    free(r->arena);
    free(r->len);
    free(r->device);
    memset(r, 0, sizeof(*r));
}
