/* Service-account key files in Google's JSON format: generation (RSA 2048, PKCS#8 PEM) and
 * loading of the keys the emulator trusts. */
#include "account-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

static enum mp_result random_hex(char *out, size_t nbytes)
{
    unsigned char raw[64];
    if (nbytes > sizeof(raw) || RAND_bytes(raw, (int)nbytes) != 1)
        return MP_ERR_CRYPTO;
    for (size_t i = 0; i < nbytes; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return MP_OK;
}

static enum mp_result dup_all(struct emu_account *acct, const char *project, const char *kid)
{
    char email[512];
    snprintf(email, sizeof(email), "mpcpush@%s.iam.gserviceaccount.com", project);
    acct->project_id = strdup(project);
    acct->client_email = strdup(email);
    acct->private_key_id = strdup(kid);
    if (!acct->project_id || !acct->client_email || !acct->private_key_id)
        return MP_ERR_NOMEM;
    return MP_OK;
}

enum mp_result emu_account_generate(const char *project, struct emu_account *acct)
{
    char kid[41];
    memset(acct, 0, sizeof(*acct));
    enum mp_result result = random_hex(kid, 20);
    if (result)
        goto out;
    result = dup_all(acct, project, kid);
    if (result)
        goto out;
    acct->key = EVP_RSA_gen(2048);
    if (!acct->key)
        result = MP_ERR_CRYPTO;
out:
    if (result)
        emu_account_free(acct);
    return result;
}

/* The PKCS#8 PEM of key's private half (caller frees). */
static char *private_pem(EVP_PKEY *key)
{
    char *pem = NULL;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1) {
        char *data;
        long len = BIO_get_mem_data(bio, &data);
        pem = len > 0 ? strndup(data, (size_t)len) : NULL;
    }
    BIO_free(bio);
    return pem;
}

static json_t *account_json(const struct emu_account *acct, const char *token_uri, const char *pem)
{
    char client_id[22];
    unsigned char raw[20];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return NULL;
    client_id[0] = '1';
    for (size_t i = 0; i < sizeof(raw); i++)
        client_id[i + 1] = (char)('0' + raw[i] % 10);
    client_id[21] = '\0';
    char cert_url[768];
    snprintf(cert_url, sizeof(cert_url), "https://www.googleapis.com/robot/v1/metadata/x509/%s",
             acct->client_email);
    char *at = strchr(cert_url, '@');
    if (at) { /* URL-encode the one character of an email that needs it */
        memmove(at + 3, at + 1, strlen(at + 1) + 1);
        memcpy(at, "%40", 3);
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "type",
                     "service_account", "project_id", acct->project_id, "private_key_id",
                     acct->private_key_id, "private_key", pem, "client_email", acct->client_email,
                     "client_id", client_id, "auth_uri",
                     "https://accounts.google.com/o/oauth2/auth", "token_uri", token_uri,
                     "auth_provider_x509_cert_url", "https://www.googleapis.com/oauth2/v1/certs",
                     "client_x509_cert_url", cert_url, "universe_domain", "googleapis.com");
}

enum mp_result emu_account_write(const struct emu_account *acct, const char *token_uri,
                                 const char *path)
{
    enum mp_result result = MP_ERR_NOMEM;
    char *text = NULL;
    json_t *json = NULL;
    char *pem = private_pem(acct->key);
    if (!pem) {
        result = MP_ERR_CRYPTO;
        goto out;
    }
    json = account_json(acct, token_uri, pem);
    text = json ? json_dumps(json, JSON_INDENT(2)) : NULL;
    if (text)
        result = emu_write_file_atomic(path, text, strlen(text), 0600);
out:
    if (pem)
        OPENSSL_cleanse(pem, strlen(pem));
    free(pem);
    free(text);
    json_decref(json);
    return result;
}

static enum mp_result load_key(const char *pem, struct emu_account *acct)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio)
        return MP_ERR_NOMEM;
    acct->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!acct->key || EVP_PKEY_get_base_id(acct->key) != EVP_PKEY_RSA)
        return MP_ERR_CRYPTO;
    return MP_OK;
}

static enum mp_result copy_fields(json_t *json, struct emu_account *acct, char *err,
                                  size_t err_size)
{
    const char *type = NULL, *project = NULL, *kid = NULL, *pem = NULL, *email = NULL;
    const char *uri = NULL;
    if (json_unpack(json, "{s:s, s:s, s:s, s:s, s:s, s?s}", "type", &type, "project_id", &project,
                    "private_key_id", &kid, "private_key", &pem, "client_email", &email,
                    "token_uri", &uri) != 0 ||
        strcmp(type, "service_account") != 0) {
        snprintf(err, err_size, "not a service-account key file");
        return MP_ERR_INVALID;
    }
    acct->project_id = strdup(project);
    acct->client_email = strdup(email);
    acct->private_key_id = strdup(kid);
    acct->token_uri = strdup(uri ? uri : "https://oauth2.googleapis.com/token");
    if (!acct->project_id || !acct->client_email || !acct->private_key_id || !acct->token_uri)
        return MP_ERR_NOMEM;
    if (load_key(pem, acct)) {
        snprintf(err, err_size, "private_key is not an RSA key in PEM");
        return MP_ERR_CRYPTO;
    }
    return MP_OK;
}

enum mp_result emu_account_load(const char *path, struct emu_account *acct, char *err,
                                size_t err_size)
{
    memset(acct, 0, sizeof(*acct));
    json_error_t jerr;
    json_t *json = json_load_file(path, 0, &jerr);
    if (!json) {
        snprintf(err, err_size, "%s", jerr.text);
        return MP_ERR_INVALID;
    }
    enum mp_result result = copy_fields(json, acct, err, err_size);
    json_decref(json);
    if (result)
        emu_account_free(acct);
    return result;
}

void emu_account_free(struct emu_account *acct)
{
    if (!acct)
        return;
    free(acct->project_id);
    free(acct->client_email);
    free(acct->private_key_id);
    free(acct->token_uri);
    EVP_PKEY_free(acct->key);
    memset(acct, 0, sizeof(*acct));
}

enum mp_result emu_write_file_atomic(const char *path, const char *data, size_t len, unsigned mode)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
        return MP_ERR_TOO_LARGE;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
    if (fd < 0)
        return MP_ERR_IO;
    enum mp_result result = fchmod(fd, (mode_t)mode) == 0 ? MP_OK : MP_ERR_IO;
    for (size_t done = 0; !result && done < len;) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno != EINTR)
            result = MP_ERR_IO;
        else if (n > 0)
            done += (size_t)n;
    }
    if (close(fd) != 0 && !result)
        result = MP_ERR_IO;
    if (!result && rename(tmp, path) != 0)
        result = MP_ERR_IO;
    if (result)
        unlink(tmp);
    return result;
}
