/* Helpers shared by the fuzz targets; see fuzz_common.h. */
#include "fuzz_common.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpcpush/fbverify.h"
#include "mpcpush/log.h"

#ifndef MP_FUZZ_KEYS_DIR
#error "MP_FUZZ_KEYS_DIR must name tests/fuzz/keys"
#endif

void fz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", file, line, what);
    abort();
}

void fz_quiet_logs(void)
{
    const char *want = getenv("MPCPUSH_FUZZ_LOG");
    mp_log_threshold =
        want && want[0] == '1' ? MP_LOG_DEBUG : (enum mp_log_level)(MP_LOG_ERROR + 1);
}

static void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        abort();
    return p;
}

char *fz_take_line(struct fz_input *in)
{
    const uint8_t *nl = in->size ? memchr(in->data, '\n', in->size) : NULL;
    size_t n = nl ? (size_t)(nl - in->data) : in->size;
    char *line = xmalloc(n + 1);
    if (n)
        memcpy(line, in->data, n);
    line[n] = '\0';
    in->data += nl ? n + 1 : n;
    in->size -= nl ? n + 1 : n;
    return line;
}

char *fz_take_rest(struct fz_input *in, size_t *len)
{
    char *rest = xmalloc(in->size + 1);
    if (in->size)
        memcpy(rest, in->data, in->size);
    rest[in->size] = '\0';
    *len = in->size;
    in->data += in->size;
    in->size = 0;
    return rest;
}

static char scratch_path[64];

static void scratch_remove(void)
{
    unlink(scratch_path);
}

const char *fz_scratch_file(const void *data, size_t len)
{
    static int fd = -1;
    if (fd < 0) {
        snprintf(scratch_path, sizeof(scratch_path), "/tmp/mpcpush-fuzz-%d.tmp", (int)getpid());
        fd = open(scratch_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
            perror(scratch_path);
            abort();
        }
        atexit(scratch_remove);
    }
    if (ftruncate(fd, 0) != 0 || (len && pwrite(fd, data, len, 0) != (ssize_t)len))
        abort();
    return scratch_path;
}

const char *fz_key_path(const char *name)
{
    static char path[4][1024];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof(path[0]), "%s/%s", MP_FUZZ_KEYS_DIR, name);
    return p;
}

struct mp_fbverify *fz_verifier(void)
{
    static struct mp_fbverify *v;
    if (v)
        return v;
    char pubkeys[2200];
    snprintf(pubkeys, sizeof(pubkeys), "%s,%s", fz_key_path("fuzz-v1a.pem"),
             fz_key_path("fuzz-v1b.pem"));
    if (mp_fbverify_new(pubkeys, fz_key_path("fuzz-jwks.json"), NULL, &v, NULL) != MP_OK) {
        fprintf(stderr, "cannot load the fuzz key set from %s\n", MP_FUZZ_KEYS_DIR);
        abort();
    }
    /* an unknown kid rereads the JWKS file at most once a second: the path is exercised
     * without turning every execution into file I/O */
    mp_fbverify_set_refetch_interval(v, 1);
    return v;
}

static EVP_PKEY *private_key(const char *name)
{
    FILE *f = fopen(fz_key_path(name), "r");
    EVP_PKEY *pkey = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (!pkey) {
        fprintf(stderr, "cannot read %s\n", fz_key_path(name));
        abort();
    }
    return pkey;
}

static EVP_PKEY *signing_key(int which)
{
    static EVP_PKEY *keys[3];
    static const char *const names[3] = {"fuzz-v1a.key", "fuzz-v1b.key", "fuzz-v2.key"};
    if (!keys[which])
        keys[which] = private_key(names[which]);
    return keys[which];
}

/* RSASSA-PKCS1-v1_5 SHA-512 over the concatenation of up to three pieces. */
static unsigned char *rs512(EVP_PKEY *key, const void *const *piece, const size_t *piece_len, int n,
                            size_t *sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *sig = xmalloc(1024);
    *sig_len = 1024;
    if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha512(), NULL, key) != 1)
        abort();
    for (int i = 0; i < n; i++)
        if (EVP_DigestSignUpdate(ctx, piece[i], piece_len[i]) != 1)
            abort();
    if (EVP_DigestSignFinal(ctx, sig, sig_len) != 1)
        abort();
    EVP_MD_CTX_free(ctx);
    return sig;
}

static char *b64(const unsigned char *in, size_t len, bool url)
{
    char *out = xmalloc(4 * ((len + 2) / 3) + 1);
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    if (url) {
        while (n > 0 && out[n - 1] == '=')
            out[--n] = '\0';
        for (char *p = out; *p; p++)
            *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    }
    return out;
}

char *fz_sign_v1(int which, const void *body, size_t len)
{
    const void *piece[] = {body};
    size_t piece_len[] = {len}, sig_len;
    unsigned char *sig = rs512(signing_key(which ? 1 : 0), piece, piece_len, 1, &sig_len);
    char *text = b64(sig, sig_len, false);
    free(sig);
    return text;
}

char *fz_sign_v2(const char *header, size_t header_len, const void *body, size_t len)
{
    char *h = b64((const unsigned char *)header, header_len, true);
    char *payload = b64(body, len, true);
    const void *piece[] = {h, ".", payload};
    size_t piece_len[] = {strlen(h), 1, strlen(payload)}, sig_len;
    unsigned char *sig = rs512(signing_key(2), piece, piece_len, 3, &sig_len);
    char *s = b64(sig, sig_len, true);
    char *jws = xmalloc(strlen(h) + strlen(s) + 3);
    sprintf(jws, "%s..%s", h, s);
    free(h);
    free(payload);
    free(sig);
    free(s);
    return jws;
}
