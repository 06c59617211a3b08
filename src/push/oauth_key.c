/* Loading and checking a Google service-account key file. Problems are reported one line
 * each, naming the file and the field, never quoting key material. */
#include "oauth-int.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpcpush/buf.h"
#include "mpcpush/log.h"
#include "push-int.h"

#define KEY_FILE_MAX 65536
#define SETTING      "MPCPUSH_GOOGLE_CREDENTIALS"

/* Appends one problem line (errors may be NULL) and returns MP_ERR_INVALID. */
static enum mp_result problem(struct mp_buf *errors, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static enum mp_result problem(struct mp_buf *errors, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (errors && (mp_buf_puts(errors, line) || mp_buf_puts(errors, "\n")))
        return MP_ERR_NOMEM;
    return MP_ERR_INVALID;
}

static void warn_permissions(const char *path, const struct stat *st)
{
    if (!(st->st_mode & (S_IROTH | S_IWOTH)))
        return;
    char quoted[512];
    MP_WARN("google_key_permissions",
            "file=%s mode=%04o problem=\"readable by every user\" hint=\"chmod 600 the file\"",
            mp_log_quote(quoted, sizeof(quoted), path), (unsigned)(st->st_mode & 07777));
}

/* Reads the whole file into *out (the caller wipes and frees it). */
static enum mp_result read_key_file(const char *path, char **out, size_t *len,
                                    struct mp_buf *errors)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return problem(errors, "%s: %s: cannot open: %s", SETTING, path, strerror(errno));
    enum mp_result result = MP_OK;
    char *data = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        st.st_size > KEY_FILE_MAX) {
        result = problem(errors, "%s: %s: not a regular file of 1 to %d bytes", SETTING, path,
                         KEY_FILE_MAX);
        goto out;
    }
    warn_permissions(path, &st);
    data = malloc((size_t)st.st_size + 1);
    if (!data) {
        result = MP_ERR_NOMEM;
        goto out;
    }
    ssize_t n = read(fd, data, (size_t)st.st_size);
    if (n != (ssize_t)st.st_size) {
        result = problem(errors, "%s: %s: cannot read: %s", SETTING, path,
                         n < 0 ? strerror(errno) : "short read");
        goto out;
    }
    data[n] = '\0';
    *out = data;
    *len = (size_t)n;
    data = NULL;
out:
    if (data) {
        OPENSSL_cleanse(data, (size_t)st.st_size + 1);
        free(data);
    }
    close(fd);
    return result;
}

/* Copies the non-empty string field name into *out; reports it missing otherwise. */
static enum mp_result take_field(json_t *root, const char *name, const char *path, char **out,
                                 struct mp_buf *errors)
{
    const char *value = json_string_value(json_object_get(root, name));
    if (!value || !value[0])
        return problem(errors, "%s: %s: missing or empty \"%s\"", SETTING, path, name);
    *out = strdup(value);
    return *out ? MP_OK : MP_ERR_NOMEM;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0;
}

static enum mp_result check_private_key(const char *pem, const char *path, struct mp_buf *errors)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio)
        return MP_ERR_NOMEM;
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    bool rsa = pkey && EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA;
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    ERR_clear_error();
    if (!rsa)
        return problem(errors,
                       "%s: %s: \"private_key\" is not an unencrypted RSA private key "
                       "in PEM form",
                       SETTING, path);
    return MP_OK;
}

static enum mp_result check_token_url(struct mp_oauth_key *k, const char *override,
                                      const char *path, struct mp_buf *errors)
{
    bool plain;
    if (override) {
        free(k->token_url);
        k->token_url = strdup(override);
        if (!k->token_url)
            return MP_ERR_NOMEM;
    }
    if (!k->token_url)
        return MP_ERR_INVALID; /* token_uri missing: already reported */
    if (mp_push_check_url(k->token_url, &plain) == MP_OK)
        return MP_OK;
    if (override)
        return problem(errors,
                       "MPCPUSH_GOOGLE_TOKEN_URL: \"%s\" is not an https:// URL "
                       "(http:// only to a loopback host)",
                       override);
    return problem(errors,
                   "%s: %s: \"token_uri\" is not an https:// URL (http:// only to a "
                   "loopback host)",
                   SETTING, path);
}

/* Reads every field, so that one pass reports every problem. */
static enum mp_result take_fields(json_t *root, const char *path, struct mp_oauth_key *k,
                                  struct mp_buf *errors)
{
    enum mp_result result = MP_OK, r;
    const char *type = json_string_value(json_object_get(root, "type"));
    if (!type || strcmp(type, "service_account") != 0)
        result = problem(errors, "%s: %s: \"type\" is not \"service_account\"", SETTING, path);
    struct {
        const char *name;
        char **slot;
    } fields[] = {{"project_id", &k->project_id},
                  {"private_key_id", &k->private_key_id},
                  {"private_key", &k->private_key},
                  {"client_email", &k->client_email},
                  {"token_uri", &k->token_url}};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        r = take_field(root, fields[i].name, path, fields[i].slot, errors);
        if (r && (!result || r == MP_ERR_NOMEM))
            result = r;
    }
    if (k->private_key && (r = check_private_key(k->private_key, path, errors)) && !result)
        result = r;
    return result;
}

/* Wipes the copy jansson holds of the private key. */
static void wipe_json_key(json_t *root)
{
    json_t *pk = json_object_get(root, "private_key");
    if (json_is_string(pk))
        OPENSSL_cleanse((char *)json_string_value(pk), json_string_length(pk));
}

enum mp_result mp_oauth_key_load(const char *path, const char *token_url_override,
                                 const char *ca_file, struct mp_oauth_key *key,
                                 struct mp_buf *errors)
{
    struct mp_oauth_key k = {0};
    char *text = NULL;
    size_t len = 0;
    json_t *root = NULL;
    json_error_t jerr;
    enum mp_result result = read_key_file(path, &text, &len, errors);
    if (result)
        goto out;
    root = json_loadb(text, len, 0, &jerr);
    if (!json_is_object(root)) {
        /* jerr.text may quote the file: report only the position. */
        result = problem(errors, "%s: %s: not a JSON object (line %d, column %d)", SETTING, path,
                         root ? 1 : jerr.line, root ? 1 : jerr.column);
        goto out;
    }
    result = take_fields(root, path, &k, errors);
    enum mp_result r = check_token_url(&k, token_url_override, path, errors);
    if (!result)
        result = r;
    if (!result && ca_file && !(k.ca_file = strdup(ca_file)))
        result = MP_ERR_NOMEM;
out:
    wipe_json_key(root);
    json_decref(root);
    if (text) {
        OPENSSL_cleanse(text, len);
        free(text);
    }
    if (!result)
        *key = k;
    else
        mp_oauth_key_clear(&k);
    return result;
}

void mp_oauth_key_clear(struct mp_oauth_key *key)
{
    if (key->private_key) {
        OPENSSL_cleanse(key->private_key, strlen(key->private_key));
        free(key->private_key);
    }
    free(key->project_id);
    free(key->client_email);
    free(key->private_key_id);
    free(key->token_url);
    free(key->ca_file);
    memset(key, 0, sizeof(*key));
}
