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
    size_t sig_b64_max;
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
    int head = snprintf(dst, size,
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
    char *body = malloc(body_max), *sig = malloc(s->sig_b64_max);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    for (size_t i = s->from; body && sig && ctx && i < s->to; i++) {
        int blen = body_of(plan, i, body, body_max, &r->device[i]);
        if (blen < 0 || sign_b64(ctx, s->key, body, (size_t)blen, sig) != 0) {
            s->failed = 1;
            break;
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
                       EVP_PKEY *key, size_t sig_b64_max)
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
                                     .sig_b64_max = sig_b64_max};
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

int bench_requests_build(const struct bench_webhook_plan *plan, struct bench_requests *out)
{
    memset(out, 0, sizeof(*out));
    EVP_PKEY *key = load_key(plan->key_file);
    if (!key)
        return -1;
    size_t sig_b64_max = 4 * (((size_t)EVP_PKEY_get_size(key) + 2) / 3) + 1;
    out->count = plan->count;
    out->slot = plan->payload_bytes + BODY_OVERHEAD + HEADERS_OVERHEAD + strlen(plan->host) +
                sig_b64_max;
    out->slot = (out->slot + 63) & ~(size_t)63;
    out->arena = malloc(out->slot * (plan->count ? plan->count : 1));
    out->len = calloc(plan->count + 1, sizeof(*out->len));
    out->device = calloc(plan->count + 1, sizeof(*out->device));
    int rc = -1;
    if (!out->arena || !out->len || !out->device)
        fprintf(stderr, "mpcpush-bench: out of memory for %zu requests\n", plan->count);
    else if (plan->dev_count < 1)
        fprintf(stderr, "mpcpush-bench: no devices\n");
    else if ((rc = run_signers(plan, out, key, sig_b64_max)) != 0)
        fprintf(stderr, "mpcpush-bench: building or signing the requests failed\n");
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
