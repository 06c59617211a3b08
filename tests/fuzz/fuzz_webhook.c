/* The webhook path: both signature headers and the body through mp_fbverify_check with the
 * fixed test key set, then mp_event_parse on the body.
 *
 * Input:  line 1  Fireblocks-Signature value; "-" = header absent; "@sign" / "@sign-b" = a
 *                 valid v1 signature of the body made here with fuzz-v1a / fuzz-v1b
 *         line 2  Fireblocks-Webhook-Signature value; "-" = absent; "@sign" = a valid detached
 *                 JWS made here; "@jws <header JSON>" = a JWS signed with the fuzz-v2 key over
 *                 that protected header (any bytes), to probe alg pinning and kid lookup
 *         rest    the body
 *
 * Invariants checked besides memory safety: signatures made with the right key verify; a JWS
 * is accepted only when its header says alg RS512 and names the fuzz-v2 key; a parsed event is
 * consistent (dedupe key format, valid ids, a device message names its wallet and device) and
 * its body holds no NUL byte (the store keeps the raw body as a C string); mp_event_parse, which
 * scans the body instead of building a jansson tree of it, agrees with the jansson version it
 * replaced (event_ref.c): the same bodies refused, the same event made of the others. The
 * body is parsed whatever the signature says: the daemon parses only verified bodies, but the
 * parser must not trust that. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "mpcpush/event.h"
#include "mpcpush/fbverify.h"
#include "mpcpush/validate.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
enum mp_result fz_event_parse_ref(const char *body, size_t len, struct mp_event *out, char *error,
                                  size_t error_size); /* event_ref.c */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fz_quiet_logs();
    fz_verifier();
    return 0;
}

/* True when the JWS protected header text is one the verifier may accept. */
static bool acceptable_header(const char *text)
{
    json_t *h = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    const char *alg = json_string_value(json_object_get(h, "alg"));
    const char *kid = json_string_value(json_object_get(h, "kid"));
    bool ok =
        json_is_object(h) && alg && strcmp(alg, "RS512") == 0 && kid && strcmp(kid, FZ_V2_KID) == 0;
    json_decref(h);
    return ok;
}

static bool valid_opt_id(const char *id)
{
    return !id || mp_valid_id(id, strlen(id));
}

static bool same_text(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* The scanner-based parser and the jansson reference agree on body. */
static void check_against_reference(const char *body, size_t len, enum mp_result r,
                                    const struct mp_event *ev)
{
    struct mp_event ref;
    enum mp_result rr = fz_event_parse_ref(body, len, &ref, NULL, 0);
    if (r == MP_ERR_NOMEM || rr == MP_ERR_NOMEM) {
        mp_event_free(&ref);
        return;
    }
    FZ_CHECK(r == rr);
    if (!r) {
        FZ_CHECK(ev->api_version == ref.api_version && ev->route == ref.route &&
                 ev->occurred_at_ms == ref.occurred_at_ms);
        FZ_CHECK(same_text(ev->event_type, ref.event_type) &&
                 same_text(ev->dedupe_key, ref.dedupe_key) &&
                 same_text(ev->legacy_dedupe_key, ref.legacy_dedupe_key) &&
                 same_text(ev->wallet_id, ref.wallet_id) &&
                 same_text(ev->device_id, ref.device_id) &&
                 same_text(ev->physical_device_id, ref.physical_device_id) &&
                 same_text(ev->payload_path, ref.payload_path));
    }
    mp_event_free(&ref);
}

static void check_event(const char *body, size_t len)
{
    struct mp_event ev;
    char error[200];
    memset(&ev, 0xa5, sizeof(ev));
    enum mp_result r = mp_event_parse(body, len, &ev, error, sizeof(error));
    FZ_CHECK(r == MP_OK || r == MP_ERR_INVALID || r == MP_ERR_NOMEM);
    check_against_reference(body, len, r, &ev);
    if (r) {
        static const struct mp_event zero;
        FZ_CHECK(memcmp(&ev, &zero, sizeof(ev)) == 0);
        FZ_CHECK(memchr(error, '\0', sizeof(error)) != NULL);
        return;
    }
    FZ_CHECK(!memchr(body, '\0', len)); /* the store keeps the raw body as a C string */
    FZ_CHECK(ev.api_version == 1 || ev.api_version == 2);
    FZ_CHECK(ev.event_type && ev.event_type[0] && strlen(ev.event_type) <= MP_EVENT_TYPE_MAX);
    FZ_CHECK(ev.dedupe_key);
    if (ev.api_version == 2)
        FZ_CHECK(strncmp(ev.dedupe_key, "v2:", 3) == 0 &&
                 mp_valid_id(ev.dedupe_key + 3, strlen(ev.dedupe_key + 3)));
    else
        FZ_CHECK(ev.occurred_at_ms > 0
                     ? strncmp(ev.dedupe_key, "v1:", 3) == 0 && strlen(ev.dedupe_key) == 84 &&
                           strspn(ev.dedupe_key + 3, "0123456789abcdef") == 16 &&
                           ev.dedupe_key[19] == ':' &&
                           strspn(ev.dedupe_key + 20, "0123456789abcdef") == 64 &&
                           ev.legacy_dedupe_key &&
                           strcmp(ev.legacy_dedupe_key + 7, ev.dedupe_key + 20) == 0
                     : strncmp(ev.dedupe_key, "sha256:", 7) == 0 && strlen(ev.dedupe_key) == 71 &&
                           strspn(ev.dedupe_key + 7, "0123456789abcdef") == 64 &&
                           !ev.legacy_dedupe_key);
    FZ_CHECK(valid_opt_id(ev.wallet_id) && valid_opt_id(ev.device_id) &&
             valid_opt_id(ev.physical_device_id));
    FZ_CHECK(ev.occurred_at_ms >= 0);
    switch (ev.route) {
    case MP_ROUTE_DEVICE_MESSAGE:
        FZ_CHECK(ev.wallet_id && ev.device_id && ev.payload_path);
        break;
    case MP_ROUTE_WALLET_WAKEUP:
        FZ_CHECK(ev.wallet_id && !ev.payload_path);
        break;
    case MP_ROUTE_INBOX_ONLY:
        FZ_CHECK(!ev.payload_path);
        break;
    default:
        FZ_CHECK(!"unknown route");
    }
    mp_event_free(&ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_input in = {data, size};
    struct mp_fbverify *v = fz_verifier();
    char *line1 = fz_take_line(&in), *line2 = fz_take_line(&in);
    size_t len;
    char *body = fz_take_rest(&in, &len);
    char *v1 = NULL, *v2 = NULL, *jws_header = NULL;
    bool v1_signed = false, v2_signed = false;

    if (strcmp(line1, "@sign") == 0 || strcmp(line1, "@sign-b") == 0) {
        v1 = fz_sign_v1(line1[5] == '-', body, len);
        v1_signed = true;
    } else if (strcmp(line1, "-") != 0) {
        v1 = strdup(line1);
    }
    if (strcmp(line2, "@sign") == 0) {
        static const char header[] = "{\"alg\":\"RS512\",\"kid\":\"" FZ_V2_KID "\"}";
        v2 = fz_sign_v2(header, sizeof(header) - 1, body, len);
        v2_signed = true;
    } else if (strncmp(line2, "@jws ", 5) == 0) {
        jws_header = line2 + 5;
        v2 = fz_sign_v2(jws_header, strlen(jws_header), body, len);
    } else if (strcmp(line2, "-") != 0) {
        v2 = strdup(line2);
    }

    enum mp_result r = mp_fbverify_check(v, v1, v2, body, len);
    FZ_CHECK(r == MP_OK || r == MP_ERR_UNAUTHORIZED || r == MP_ERR_UNAVAILABLE ||
             r == MP_ERR_NOMEM);
    if (v1_signed || v2_signed)
        FZ_CHECK(r == MP_OK || r == MP_ERR_NOMEM);
    if (jws_header) {
        /* alg pinning and kid lookup, judged on the v2 header alone */
        enum mp_result r2 = mp_fbverify_check(v, NULL, v2, body, len);
        if (r2 == MP_OK)
            FZ_CHECK(acceptable_header(jws_header));
    }

    check_event(body, len);

    free(v1);
    free(v2);
    free(line1);
    free(line2);
    free(body);
    return 0;
}
