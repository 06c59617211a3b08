/* Classification of FCM HTTP v1 answers into outcomes the dispatcher can act on.
 *
 * Google's error body is {"error":{"code","message","status","details":[...]}}. The most
 * specific signal wins: the FcmError errorCode in details[], then an ErrorInfo reason, then
 * error.status, then the HTTP status. A token is declared dead only on positive evidence (an
 * FcmError code, or an INVALID_ARGUMENT that names the registration token): a 404 from a
 * misconfigured URL or proxy must never wipe out every device's token. */
#include "mpcpush/fcm.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "push-int.h"

#define BODY_PARSE_MAX   65536
#define TOKEN_RUN_REDACT 40 /* token-like runs at least this long are redacted from details */

static const char *const outcome_names[MP_FCM_OUTCOME_COUNT] = {
    [MP_FCM_OK] = "ok",
    [MP_FCM_UNREGISTERED] = "unregistered",
    [MP_FCM_SENDER_ID_MISMATCH] = "sender_id_mismatch",
    [MP_FCM_INVALID_TOKEN] = "invalid_token",
    [MP_FCM_INVALID_ARGUMENT] = "invalid_argument",
    [MP_FCM_QUOTA_EXCEEDED] = "quota_exceeded",
    [MP_FCM_UNAVAILABLE] = "unavailable",
    [MP_FCM_INTERNAL] = "internal",
    [MP_FCM_THIRD_PARTY_AUTH] = "third_party_auth",
    [MP_FCM_UNAUTHENTICATED] = "unauthenticated",
    [MP_FCM_PERMISSION_DENIED] = "permission_denied",
    [MP_FCM_NETWORK] = "network",
    [MP_FCM_UNKNOWN] = "unknown",
};

const char *mp_fcm_outcome_name(enum mp_fcm_outcome outcome)
{
    if ((unsigned)outcome >= MP_FCM_OUTCOME_COUNT)
        return "unknown";
    return outcome_names[outcome];
}

bool mp_fcm_outcome_is_token_dead(enum mp_fcm_outcome outcome)
{
    return outcome == MP_FCM_UNREGISTERED || outcome == MP_FCM_SENDER_ID_MISMATCH ||
           outcome == MP_FCM_INVALID_TOKEN;
}

bool mp_fcm_outcome_is_retryable(enum mp_fcm_outcome outcome)
{
    return outcome == MP_FCM_QUOTA_EXCEEDED || outcome == MP_FCM_UNAVAILABLE ||
           outcome == MP_FCM_INTERNAL || outcome == MP_FCM_UNAUTHENTICATED ||
           outcome == MP_FCM_NETWORK || outcome == MP_FCM_UNKNOWN;
}

bool mp_fcm_outcome_is_config_error(enum mp_fcm_outcome outcome)
{
    return outcome == MP_FCM_THIRD_PARTY_AUTH || outcome == MP_FCM_PERMISSION_DENIED;
}

struct code_map {
    const char *code;
    enum mp_fcm_outcome outcome;
};

/* FcmError.errorCode values (APNS_AUTH_ERROR is the older name of THIRD_PARTY_AUTH_ERROR). */
static const struct code_map fcm_codes[] = {
    {"UNREGISTERED", MP_FCM_UNREGISTERED},
    {"SENDER_ID_MISMATCH", MP_FCM_SENDER_ID_MISMATCH},
    {"INVALID_ARGUMENT", MP_FCM_INVALID_ARGUMENT},
    {"QUOTA_EXCEEDED", MP_FCM_QUOTA_EXCEEDED},
    {"UNAVAILABLE", MP_FCM_UNAVAILABLE},
    {"INTERNAL", MP_FCM_INTERNAL},
    {"THIRD_PARTY_AUTH_ERROR", MP_FCM_THIRD_PARTY_AUTH},
    {"APNS_AUTH_ERROR", MP_FCM_THIRD_PARTY_AUTH},
};

/* ErrorInfo.reason values that say more than the status. */
static const struct code_map reasons[] = {
    {"ACCESS_TOKEN_EXPIRED", MP_FCM_UNAUTHENTICATED},
    {"RATE_LIMIT_EXCEEDED", MP_FCM_QUOTA_EXCEEDED},
};

/* google.rpc.Code names in error.status. NOT_FOUND is absent on purpose (see the top). */
static const struct code_map statuses[] = {
    {"INVALID_ARGUMENT", MP_FCM_INVALID_ARGUMENT},
    {"FAILED_PRECONDITION", MP_FCM_INVALID_ARGUMENT},
    {"OUT_OF_RANGE", MP_FCM_INVALID_ARGUMENT},
    {"UNAUTHENTICATED", MP_FCM_UNAUTHENTICATED},
    {"PERMISSION_DENIED", MP_FCM_PERMISSION_DENIED},
    {"RESOURCE_EXHAUSTED", MP_FCM_QUOTA_EXCEEDED},
    {"UNAVAILABLE", MP_FCM_UNAVAILABLE},
    {"DEADLINE_EXCEEDED", MP_FCM_UNAVAILABLE},
    {"ABORTED", MP_FCM_UNAVAILABLE},
    {"INTERNAL", MP_FCM_INTERNAL},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static bool lookup(const struct code_map *map, size_t n, const char *code, enum mp_fcm_outcome *out)
{
    for (size_t i = 0; code && i < n; i++) {
        if (strcmp(map[i].code, code) == 0) {
            *out = map[i].outcome;
            return true;
        }
    }
    return false;
}

/* What the error body says, all pointers into the parsed JSON (or NULL). */
struct error_info {
    const char *status;
    const char *message;
    const char *fcm_code;
    const char *reason;
    bool names_token; /* a BadRequest field violation is about message.token */
};

static bool type_is(json_t *detail, const char *suffix)
{
    const char *type = json_string_value(json_object_get(detail, "@type"));
    if (!type)
        return false;
    size_t tl = strlen(type), sl = strlen(suffix);
    return tl >= sl && strcmp(type + tl - sl, suffix) == 0;
}

static bool field_names_token(const char *field)
{
    return field && (strcmp(field, "message.token") == 0 || strcmp(field, "token") == 0);
}

static void scan_bad_request(json_t *detail, struct error_info *info)
{
    json_t *violations = json_object_get(detail, "fieldViolations");
    size_t i;
    json_t *v;
    if (!json_is_array(violations))
        return;
    json_array_foreach(violations, i, v)
    {
        if (field_names_token(json_string_value(json_object_get(v, "field"))))
            info->names_token = true;
    }
}

static void scan_details(json_t *details, struct error_info *info)
{
    size_t i;
    json_t *d;
    if (!json_is_array(details))
        return;
    json_array_foreach(details, i, d)
    {
        if (!json_is_object(d))
            continue;
        if (type_is(d, "google.firebase.fcm.v1.FcmError")) {
            const char *code = json_string_value(json_object_get(d, "errorCode"));
            if (code && !info->fcm_code)
                info->fcm_code = code;
        } else if (type_is(d, "google.rpc.ErrorInfo")) {
            const char *reason = json_string_value(json_object_get(d, "reason"));
            if (reason && !info->reason)
                info->reason = reason;
        } else if (type_is(d, "google.rpc.BadRequest")) {
            scan_bad_request(d, info);
        }
    }
}

static bool contains_nocase(const char *text, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = text; p && *p; p++)
        if (strncasecmp(p, needle, n) == 0)
            return true;
    return false;
}

static bool message_names_token(const char *message)
{
    return contains_nocase(message, "registration token") ||
           contains_nocase(message, "message.token");
}

static enum mp_fcm_outcome from_http(long status)
{
    if (status <= 0)
        return MP_FCM_NETWORK;
    if (status >= 200 && status < 300)
        return MP_FCM_OK;
    switch (status) {
    case 400:
    case 411:
    case 413:
    case 422:
        return MP_FCM_INVALID_ARGUMENT;
    case 401:
        return MP_FCM_UNAUTHENTICATED;
    case 403:
        return MP_FCM_PERMISSION_DENIED;
    case 404: /* without FcmError UNREGISTERED: a wrong URL, not a dead token */
        return MP_FCM_UNKNOWN;
    case 408:
        return MP_FCM_UNAVAILABLE;
    case 429:
        return MP_FCM_QUOTA_EXCEEDED;
    case 500:
        return MP_FCM_INTERNAL;
    default:
        return status > 500 && status < 600 ? MP_FCM_UNAVAILABLE : MP_FCM_UNKNOWN;
    }
}

static enum mp_fcm_outcome decide(long status, const struct error_info *info)
{
    enum mp_fcm_outcome outcome;
    if (!lookup(fcm_codes, NELEM(fcm_codes), info->fcm_code, &outcome) &&
        !lookup(reasons, NELEM(reasons), info->reason, &outcome) &&
        !lookup(statuses, NELEM(statuses), info->status, &outcome))
        outcome = from_http(status);
    if (outcome == MP_FCM_INVALID_ARGUMENT &&
        (info->names_token || message_names_token(info->message)))
        outcome = MP_FCM_INVALID_TOKEN;
    return outcome;
}

/* Copies src into the detail field, replacing long token-like runs by "<redacted>". */
static void append_scrubbed(char *out, size_t size, size_t *used, const char *src)
{
    for (const char *p = src; *p && *used + 1 < size;) {
        size_t run = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                               "0123456789_-:");
        if (run >= TOKEN_RUN_REDACT) {
            *used += (size_t)snprintf(out + *used, size - *used, "<redacted>");
            if (*used >= size)
                *used = size - 1;
            p += run;
            continue;
        }
        size_t take = run ? run : 1;
        for (size_t i = 0; i < take && *used + 1 < size; i++) {
            unsigned char ch = (unsigned char)p[i];
            out[(*used)++] = ch < ' ' || ch == 0x7f ? ' ' : (char)ch;
        }
        p += take;
    }
    out[*used] = '\0';
}

static void write_detail(struct mp_fcm_result *out, const struct error_info *info, bool json)
{
    size_t used = 0;
    char head[160];
    out->detail[0] = '\0';
    if (!json) {
        snprintf(out->detail, sizeof(out->detail), "http %ld without an FCM error body",
                 out->http_status);
        return;
    }
    const char *code = info->fcm_code ? info->fcm_code : info->reason;
    snprintf(head, sizeof(head), "%s%s%s", info->status ? info->status : "no status",
             code ? "/" : "", code ? code : "");
    append_scrubbed(out->detail, sizeof(out->detail), &used, head);
    if (info->message && info->message[0]) {
        append_scrubbed(out->detail, sizeof(out->detail), &used, ": ");
        append_scrubbed(out->detail, sizeof(out->detail), &used, info->message);
    }
}

static void copy_name(struct mp_fcm_result *out, json_t *root)
{
    const char *name = json_string_value(json_object_get(root, "name"));
    if (name && strlen(name) < sizeof(out->name))
        memcpy(out->name, name, strlen(name) + 1);
}

void mp_fcm_classify(long http_status, const char *body, size_t len, const char *retry_after_header,
                     struct mp_fcm_result *out)
{
    memset(out, 0, sizeof(*out));
    out->http_status = http_status;
    out->retry_after = mp_push_parse_retry_after(retry_after_header, (long long)time(NULL));
    json_t *root = NULL;
    if (body && len > 0 && len <= BODY_PARSE_MAX)
        root = json_loadb(body, len, 0, NULL);
    if (http_status >= 200 && http_status < 300) {
        out->outcome = MP_FCM_OK;
        copy_name(out, root);
        json_decref(root);
        return;
    }
    struct error_info info = {0};
    json_t *error = json_object_get(root, "error");
    bool have_error = json_is_object(error);
    if (have_error) {
        info.status = json_string_value(json_object_get(error, "status"));
        info.message = json_string_value(json_object_get(error, "message"));
        scan_details(json_object_get(error, "details"), &info);
    }
    out->outcome = decide(http_status, &info);
    if (http_status <= 0)
        snprintf(out->detail, sizeof(out->detail), "no HTTP answer");
    else
        write_detail(out, &info, have_error);
    json_decref(root);
}
