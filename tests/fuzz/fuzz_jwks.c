/* The JWKS parser (mp_jwks_parse, what a fetched or read key set goes through) and kid lookup.
 *
 * Input: the JWKS document. Invariants: a parsed set holds 1..MP_JWKS_MAX_KEYS keys; every key
 * it returns for a kid named in the document is an RSA key of at least 2048 bits, and has a
 * verifier context to copy (mp_jwks_verifier) exactly when it is there; a failure leaves a
 * NUL-terminated reason. */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "webhook/jwks-int.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fz_quiet_logs();
    return 0;
}

static void check_key(const struct mp_jwks *set, const char *kid)
{
    EVP_PKEY *pkey = mp_jwks_get(set, kid);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    enum mp_result r = ctx ? mp_jwks_verifier(set, kid, ctx) : MP_ERR_NOMEM;
    EVP_MD_CTX_free(ctx);
    FZ_CHECK(r == MP_ERR_NOMEM || (r == MP_OK) == (pkey != NULL));
    if (!pkey)
        return;
    FZ_CHECK(EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA);
    FZ_CHECK(EVP_PKEY_get_bits(pkey) >= 2048);
    EVP_PKEY_free(pkey);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_input in = {data, size};
    size_t len;
    char *doc = fz_take_rest(&in, &len);
    char why[256];
    struct mp_jwks *set = NULL;
    memset(why, 'x', sizeof(why));
    enum mp_result r = mp_jwks_parse(doc, len, &set, why, sizeof(why));
    FZ_CHECK(r == MP_OK || r == MP_ERR_INVALID || r == MP_ERR_NOMEM);
    if (r) {
        FZ_CHECK(memchr(why, '\0', sizeof(why)) != NULL);
        free(doc);
        return 0;
    }
    FZ_CHECK(set && mp_jwks_count(set) >= 1 && mp_jwks_count(set) <= MP_JWKS_MAX_KEYS);
    check_key(set, "");
    check_key(set, FZ_V2_KID);
    /* every kid the document names, as the verifier would look it up */
    json_t *root = json_loadb(doc, len, 0, NULL), *jwk;
    size_t i;
    json_array_foreach(json_object_get(root, "keys"), i, jwk)
    {
        const char *kid = json_string_value(json_object_get(jwk, "kid"));
        if (kid)
            check_key(set, kid);
    }
    json_decref(root);
    mp_jwks_free(set);
    free(doc);
    return 0;
}
