/* The reference for fuzz_webhook: src/webhook/event.c as it was before the envelope was read
 * with a scanner (commit 929cffa), a jansson tree of the whole body, unchanged but for the
 * name of its entry point and the v1 dedupe keys of schema 5. fuzz_webhook checks that
 * mp_event_parse agrees with it on every input: the same bodies refused, the same event out of the
 * others. */
#include "mpcpush/event.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpcpush/validate.h"

enum mp_result fz_event_parse_ref(const char *body, size_t len, struct mp_event *out, char *error,
                                  size_t error_size);

/* The events that wake the devices of the wallet they name, when it is valid. */
struct wakeup_rule {
    int api_version;
    const char *event_type;
    bool needs_pending_signature; /* only when data.status (or data.txStatus) says so */
};

static const struct wakeup_rule wakeup_rules[] = {
    {1, "NCW_TRANSACTION_STATUS_UPDATED", true},
    {1, "NCW_ADD_DEVICE_SETUP_REQUESTED", false},
    {2, "transaction.created", true},
    {2, "transaction.status.updated", true},
};

static const struct wakeup_rule *find_rule(const struct mp_event *ev)
{
    for (size_t i = 0; i < sizeof(wakeup_rules) / sizeof(wakeup_rules[0]); i++)
        if (wakeup_rules[i].api_version == ev->api_version &&
            strcmp(wakeup_rules[i].event_type, ev->event_type) == 0)
            return &wakeup_rules[i];
    return NULL;
}

/* ---- envelope ---- */

static bool valid_type(json_t *type)
{
    size_t len = json_string_length(type);
    if (!json_is_string(type) || len == 0 || len > MP_EVENT_TYPE_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *)json_string_value(type); *p; p++)
        if (*p <= ' ' || *p >= 0x7f)
            return false;
    return true;
}

static char *sha256_key(const char *body, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    char *key = malloc(sizeof("sha256:") + 64);
    if (!key || EVP_Digest(body, len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32) {
        free(key);
        return NULL;
    }
    memcpy(key, "sha256:", 7);
    for (unsigned i = 0; i < md_len; i++)
        snprintf(key + 7 + 2 * i, 3, "%02x", md[i]);
    return key;
}

static char *prefixed(const char *prefix, const char *value)
{
    size_t a = strlen(prefix), b = strlen(value);
    char *text = malloc(a + b + 1);
    if (text) {
        memcpy(text, prefix, a);
        memcpy(text + a, value, b + 1);
    }
    return text;
}

/* Milliseconds since the epoch from a number, a string of digits, or an ISO-8601 UTC time
 * ("2026-01-31T12:00:00.123Z"); 0 when absent or unreadable. */
static int64_t millis(json_t *value)
{
    const char *text = json_string_value(value);
    struct tm tm = {0};
    int ms = 0, n = 0;
    if (json_is_integer(value))
        return json_integer_value(value) > 0 ? (int64_t)json_integer_value(value) : 0;
    if (json_is_real(value))
        return json_real_value(value) > 0 && json_real_value(value) < 9e15
                   ? (int64_t)json_real_value(value)
                   : 0;
    if (!text)
        return 0;
    if (text[0] >= '0' && text[0] <= '9' && strspn(text, "0123456789") == strlen(text))
        return strlen(text) <= 16 ? strtoll(text, NULL, 10) : 0;
    if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &n) != 6)
        return 0;
    if (text[n] == '.') {
        int scale = 100;
        for (n++; text[n] >= '0' && text[n] <= '9'; n++) {
            ms += (text[n] - '0') * scale;
            scale /= 10;
        }
    }
    if (strcmp(text + n, "Z") != 0)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    return t > 0 ? (int64_t)t * 1000 + ms : 0;
}

/* Fills api_version, event_type, dedupe_key and occurred_at_ms. */
static enum mp_result envelope(json_t *root, const char *body, size_t len, struct mp_event *ev,
                               const char **why)
{
    json_t *type = json_object_get(root, "eventType"), *id = json_object_get(root, "id");
    json_t *stamp;
    if (type && id) {
        if (!json_is_string(id) || !mp_valid_id(json_string_value(id), json_string_length(id))) {
            *why = "id must be 1..128 characters of [A-Za-z0-9._:-]";
            return MP_ERR_INVALID;
        }
        ev->api_version = 2;
        ev->dedupe_key = prefixed("v2:", json_string_value(id));
        stamp = json_object_get(root, "createdAt");
    } else {
        type = json_object_get(root, "type");
        if (!type) {
            *why = "not a Fireblocks webhook envelope";
            return MP_ERR_INVALID;
        }
        ev->api_version = 1;
        ev->dedupe_key = sha256_key(body, len);
        stamp = json_object_get(root, "timestamp");
    }
    if (!valid_type(type)) {
        *why = "the event type must be a short string without spaces";
        return MP_ERR_INVALID;
    }
    ev->event_type = strdup(json_string_value(type));
    ev->occurred_at_ms = millis(stamp);
    if (ev->api_version == 1 && ev->occurred_at_ms > 0 && ev->dedupe_key) {
        /* since schema 5: the time first, the old key kept aside */
        ev->legacy_dedupe_key = ev->dedupe_key;
        ev->dedupe_key = malloc(3 + 16 + 1 + 64 + 1);
        if (ev->dedupe_key)
            sprintf(ev->dedupe_key, "v1:%016llx:%s", (unsigned long long)ev->occurred_at_ms,
                    ev->legacy_dedupe_key + 7);
    }
    if (!ev->event_type || !ev->dedupe_key) {
        *why = "out of memory";
        return MP_ERR_NOMEM;
    }
    return MP_OK;
}

/* ---- ids and routes ---- */

/* The string member name of the top level, else of data (top level wins). */
static const char *member(json_t *root, json_t *data, const char *name)
{
    json_t *value = json_object_get(root, name);
    if (!json_is_string(value))
        value = json_object_get(data, name);
    return json_string_value(value);
}

static const char *wallet_member(json_t *root, json_t *data)
{
    const char *wallet = member(root, data, "walletId");
    if (!wallet)
        wallet = json_string_value(json_object_get(json_object_get(data, "source"), "walletId"));
    return wallet;
}

/* Copies value into *out when it is a valid id (NULL otherwise). */
static enum mp_result copy_id(const char *value, char **out)
{
    if (!value || !mp_valid_id(value, strlen(value)))
        return MP_OK;
    *out = strdup(value);
    return *out ? MP_OK : MP_ERR_NOMEM;
}

static enum mp_result device_message(json_t *root, json_t *data, struct mp_event *ev,
                                     const char **why)
{
    const char *wallet = member(root, data, "walletId"), *device = member(root, data, "deviceId");
    const char *physical = member(root, data, "physicalDeviceId");
    const char *reason = NULL;
    json_t *payload = json_object_get(root, "message");
    if (!wallet || !mp_valid_id(wallet, strlen(wallet)))
        reason = "NCW_DEVICE_MESSAGE needs a walletId of 1..128 characters of [A-Za-z0-9._:-]";
    else if (!device || !mp_valid_id(device, strlen(device)))
        reason = "NCW_DEVICE_MESSAGE needs a deviceId of 1..128 characters of [A-Za-z0-9._:-]";
    else if (physical && !mp_valid_id(physical, strlen(physical)))
        reason = "physicalDeviceId must be 1..128 characters of [A-Za-z0-9._:-]";
    if (reason) {
        *why = reason;
        return MP_ERR_INVALID;
    }
    /* The payload is taken from the raw body by the database (exact numbers, no second
     * serialisation); here we only say where it is. */
    const char *path = "{message}";
    if (!payload || json_is_null(payload)) {
        payload = json_object_get(data, "message");
        path = "{data,message}";
    }
    if (!payload || json_is_null(payload)) {
        payload = json_object_get(root, "data");
        path = "{data}";
    }
    if (!payload || json_is_null(payload)) {
        *why = "NCW_DEVICE_MESSAGE without message or data";
        return MP_ERR_INVALID;
    }
    ev->route = MP_ROUTE_DEVICE_MESSAGE;
    ev->payload_path = path;
    if (copy_id(wallet, &ev->wallet_id) || copy_id(device, &ev->device_id) ||
        copy_id(physical, &ev->physical_device_id)) {
        *why = "out of memory";
        return MP_ERR_NOMEM;
    }
    return MP_OK;
}

static bool pending_signature(json_t *data)
{
    json_t *status = json_object_get(data, "status");
    if (!json_is_string(status))
        status = json_object_get(data, "txStatus");
    return json_is_string(status) && strcmp(json_string_value(status), "PENDING_SIGNATURE") == 0;
}

/* The payload, {"eventType":<type>,"data":<data>}, is built by the database. */
static enum mp_result wakeup(json_t *root, struct mp_event *ev)
{
    (void)root;
    ev->route = MP_ROUTE_WALLET_WAKEUP;
    ev->payload_path = NULL;
    return MP_OK;
}

static enum mp_result route(json_t *root, struct mp_event *ev, const char **why)
{
    json_t *data = json_object_get(root, "data");
    if (!json_is_object(data))
        data = NULL;
    if (strcmp(ev->event_type, "NCW_DEVICE_MESSAGE") == 0)
        return device_message(root, data, ev, why);
    ev->route = MP_ROUTE_INBOX_ONLY;
    if (copy_id(wallet_member(root, data), &ev->wallet_id) ||
        copy_id(member(root, data, "deviceId"), &ev->device_id) ||
        copy_id(member(root, data, "physicalDeviceId"), &ev->physical_device_id)) {
        *why = "out of memory";
        return MP_ERR_NOMEM;
    }
    const struct wakeup_rule *rule = find_rule(ev);
    if (!rule || !ev->wallet_id || (rule->needs_pending_signature && !pending_signature(data)))
        return MP_OK;
    if (wakeup(root, ev)) {
        *why = "out of memory";
        return MP_ERR_NOMEM;
    }
    return MP_OK;
}

/* ---- public ---- */

enum mp_result fz_event_parse_ref(const char *body, size_t len, struct mp_event *out, char *error,
                                  size_t error_size)
{
    struct mp_event ev = {0};
    const char *why = NULL;
    json_error_t jerr;
    /* The raw body is stored as a C string, and jansson 2.14 accepts a NUL byte after a
     * literal ({"a":true<NUL>}): a body holding a NUL is not JSON. */
    bool nul = body && memchr(body, '\0', len);
    json_t *root = body && !nul ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    enum mp_result result = MP_ERR_INVALID;
    if (!root) {
        if (error && error_size)
            snprintf(error, error_size, "invalid JSON: %s",
                     nul    ? "NUL byte"
                     : body ? jerr.text
                            : "no body");
        goto out;
    }
    if (!json_is_object(root)) {
        why = "the body must be a JSON object";
        goto out;
    }
    result = envelope(root, body, len, &ev, &why);
    if (!result)
        result = route(root, &ev, &why);
out:
    json_decref(root);
    if (result && why && error && error_size)
        snprintf(error, error_size, "%s", why);
    if (result) {
        mp_event_free(&ev);
        memset(out, 0, sizeof(*out));
    } else {
        *out = ev;
    }
    return result;
}
