/* Throwaway CA and server certificate (both P-256, made with OpenSSL at start) and the server
 * TLS context: TLS 1.2+, ALPN "h2" preferred, "http/1.1" accepted. */
#include "tls-int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#define VALID_DAYS 3650

static X509_NAME *make_name(const char *cn)
{
    X509_NAME *name = X509_NAME_new();
    if (name &&
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"mpcpush", -1,
                                   -1, 0) == 1 &&
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                   0) == 1)
        return name;
    X509_NAME_free(name);
    return NULL;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
    int ok = ext && X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

static int set_serial(X509 *cert)
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return 0;
    raw[0] &= 0x7f; /* positive */
    BIGNUM *bn = BN_bin2bn(raw, sizeof(raw), NULL);
    int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
    BN_free(bn);
    return ok;
}

/* A certificate for key named cn; self-signed when issuer is NULL. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer)
{
    X509 *cert = X509_new();
    X509_NAME *name = make_name(cn);
    int ok = cert && name && X509_set_version(cert, 2) == 1 && set_serial(cert) &&
             X509_gmtime_adj(X509_getm_notBefore(cert), -3600) &&
             X509_time_adj_ex(X509_getm_notAfter(cert), VALID_DAYS, 0, NULL) &&
             X509_set_subject_name(cert, name) == 1 &&
             X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name) == 1 &&
             X509_set_pubkey(cert, key) == 1;
    X509_NAME_free(name);
    if (!ok) {
        X509_free(cert);
        return NULL;
    }
    return cert;
}

static int sign_ca(X509 *ca, EVP_PKEY *key)
{
    return add_ext(ca, ca, NID_basic_constraints, "critical,CA:TRUE") &&
           add_ext(ca, ca, NID_key_usage, "critical,keyCertSign,cRLSign") &&
           add_ext(ca, ca, NID_subject_key_identifier, "hash") &&
           X509_sign(ca, key, EVP_sha256()) > 0;
}

/* "DNS:localhost,IP:127.0.0.1,IP:::1" plus extra_host when it is not one of those. */
static void alt_names(const char *extra_host, char *out, size_t size)
{
    snprintf(out, size, "DNS:localhost,IP:127.0.0.1,IP:::1");
    if (!extra_host || !extra_host[0] || strcmp(extra_host, "localhost") == 0 ||
        strcmp(extra_host, "127.0.0.1") == 0 || strcmp(extra_host, "::1") == 0 ||
        strcmp(extra_host, "0.0.0.0") == 0 || strcmp(extra_host, "::") == 0 ||
        strlen(extra_host) > 200)
        return;
    unsigned char addr[16];
    int is_ip =
        inet_pton(AF_INET, extra_host, addr) == 1 || inet_pton(AF_INET6, extra_host, addr) == 1;
    size_t len = strlen(out);
    snprintf(out + len, size - len, ",%s:%s", is_ip ? "IP" : "DNS", extra_host);
}

static int sign_leaf(X509 *leaf, X509 *ca, EVP_PKEY *ca_key, const char *extra_host)
{
    char san[512];
    alt_names(extra_host, san, sizeof(san));
    return add_ext(leaf, ca, NID_basic_constraints, "critical,CA:FALSE") &&
           add_ext(leaf, ca, NID_key_usage, "critical,digitalSignature") &&
           add_ext(leaf, ca, NID_ext_key_usage, "serverAuth") &&
           add_ext(leaf, ca, NID_subject_alt_name, san) &&
           add_ext(leaf, ca, NID_subject_key_identifier, "hash") &&
           add_ext(leaf, ca, NID_authority_key_identifier, "keyid:always") &&
           X509_sign(leaf, ca_key, EVP_sha256()) > 0;
}

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char prefs[] = "\x02h2\x08http/1.1";
    unsigned char *selected = NULL;
    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto(&selected, outlen, prefs, sizeof(prefs) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *make_ctx(X509 *leaf, EVP_PKEY *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    /* Read whatever the socket holds in one read(), not two per TLS record (header, then
     * body): clients such as libcurl send each HTTP/2 frame as its own small record. Safe
     * because connections read until SSL_read wants more (conn.c), so nothing waits unseen
     * in OpenSSL's buffer. */
    SSL_CTX_set_read_ahead(ctx, 1);
    if (SSL_CTX_use_certificate(ctx, leaf) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static char *cert_pem(X509 *cert)
{
    char *pem = NULL;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio && PEM_write_bio_X509(bio, cert) == 1) {
        char *data;
        long len = BIO_get_mem_data(bio, &data);
        pem = len > 0 ? strndup(data, (size_t)len) : NULL;
    }
    BIO_free(bio);
    return pem;
}

enum mp_result emu_tls_create(const char *extra_host, SSL_CTX **ctx_out, char **ca_pem_out)
{
    enum mp_result result = MP_ERR_CRYPTO;
    SSL_CTX *ctx = NULL;
    char *pem = NULL;
    X509 *ca = NULL, *leaf = NULL;
    EVP_PKEY *ca_key = EVP_EC_gen("P-256");
    EVP_PKEY *leaf_key = EVP_EC_gen("P-256");
    if (!ca_key || !leaf_key)
        goto out;
    ca = make_cert(ca_key, "mpcpush-fcm-emulator throwaway CA", NULL);
    if (!ca || !sign_ca(ca, ca_key))
        goto out;
    leaf = make_cert(leaf_key, "localhost", ca);
    if (!leaf || !sign_leaf(leaf, ca, ca_key, extra_host))
        goto out;
    ctx = make_ctx(leaf, leaf_key);
    pem = cert_pem(ca);
    if (ctx && pem)
        result = MP_OK;
out:
    if (!result) {
        *ctx_out = ctx;
        *ca_pem_out = pem;
    } else {
        SSL_CTX_free(ctx);
        free(pem);
        ERR_clear_error();
    }
    X509_free(ca);
    X509_free(leaf);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(leaf_key);
    return result;
}
