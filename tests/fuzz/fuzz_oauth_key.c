/* The Google service-account key file parser (mp_oauth_key_load), as `mpcpush run` and SIGHUP
 * use it.
 *
 * Input:  line 1  MPCPUSH_GOOGLE_TOKEN_URL override ("-" = none)
 *         rest    the key file (written to a scratch file, mode 0600)
 *
 * Invariants: a loaded key has every field set and a token URL that passes the outgoing URL
 * policy; the problems reported never quote the private key. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "mpcpush/buf.h"
#include "push/oauth-int.h"
#include "push/push-int.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fz_quiet_logs();
    return 0;
}

static bool set(const char *s)
{
    return s && s[0];
}

/* The report must not carry the key: neither the PEM armour nor a long piece of the value.
 * (The token URL override is quoted when it is refused; it is configuration, not the key, so
 * what it contains is not held against the report.) */
static void check_no_key_material(const char *file, size_t len, const char *override,
                                  const char *errors)
{
    if (!errors)
        return;
    if (!strstr(override, "PRIVATE KEY-----"))
        FZ_CHECK(!strstr(errors, "PRIVATE KEY-----"));
    json_t *root = json_loadb(file, len, 0, NULL);
    const char *pk = json_string_value(json_object_get(root, "private_key"));
    if (pk && strlen(pk) >= 24) {
        char piece[25];
        memcpy(piece, pk + strlen(pk) / 2 - 12, 24);
        piece[24] = '\0';
        if (!strstr(override, piece))
            FZ_CHECK(!strstr(errors, piece));
    }
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_input in = {data, size};
    char *override = fz_take_line(&in);
    size_t len;
    char *file = fz_take_rest(&in, &len);
    struct mp_oauth_key key;
    struct mp_buf errors;
    mp_buf_init(&errors, 1 << 16);
    memset(&key, 0x5a, sizeof(key));
    enum mp_result r = mp_oauth_key_load(
        fz_scratch_file(file, len), strcmp(override, "-") ? override : NULL, NULL, &key, &errors);
    FZ_CHECK(r == MP_OK || r == MP_ERR_INVALID || r == MP_ERR_NOMEM);
    check_no_key_material(file, len, override, errors.data);
    if (r == MP_OK) {
        bool plain;
        FZ_CHECK(set(key.project_id) && set(key.client_email) && set(key.private_key_id) &&
                 set(key.private_key) && set(key.token_url) && !key.ca_file);
        FZ_CHECK(mp_push_check_url(key.token_url, &plain) == MP_OK);
        mp_oauth_key_clear(&key);
    }
    mp_buf_free(&errors);
    free(override);
    free(file);
    return 0;
}
