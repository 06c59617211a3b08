/* Fireblocks webhook envelopes (v1 and v2) read into struct mp_event: which envelope it is, its
 * dedupe key, the ids it names, and where the store should route it. The body is checked whole
 * by a strict scanner (webhook/jscan-int.h) that hands over only the few members read here;
 * the payload is never built (the database takes it from the raw body). */
#include "mpcpush/event.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpcpush/validate.h"
#include "webhook/jscan-int.h"

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

/* ---- the members read ---- */

/* What the envelope parser reads: members of the top level, of its "data" object, and of
 * data's "source" object. The rest of the body (the payload included) is checked, not built. */
enum field {
    F_EVENT_TYPE,
    F_ID,
    F_CREATED_AT,
    F_TYPE,
    F_TIMESTAMP,
    F_WALLET,
    F_DEVICE,
    F_PHYSICAL,
    F_MESSAGE,
    F_DATA,
    F_DATA_WALLET,
    F_DATA_DEVICE,
    F_DATA_PHYSICAL,
    F_DATA_MESSAGE,
    F_DATA_STATUS,
    F_DATA_TX_STATUS,
    F_DATA_SOURCE,
    F_SOURCE_WALLET,
    FIELDS
};

static const struct mp_jwant wanted[FIELDS] = {
    [F_EVENT_TYPE] = {-1, "eventType"},
    [F_ID] = {-1, "id"},
    [F_CREATED_AT] = {-1, "createdAt"},
    [F_TYPE] = {-1, "type"},
    [F_TIMESTAMP] = {-1, "timestamp"},
    [F_WALLET] = {-1, "walletId"},
    [F_DEVICE] = {-1, "deviceId"},
    [F_PHYSICAL] = {-1, "physicalDeviceId"},
    [F_MESSAGE] = {-1, "message"},
    [F_DATA] = {-1, "data"},
    [F_DATA_WALLET] = {F_DATA, "walletId"},
    [F_DATA_DEVICE] = {F_DATA, "deviceId"},
    [F_DATA_PHYSICAL] = {F_DATA, "physicalDeviceId"},
    [F_DATA_MESSAGE] = {F_DATA, "message"},
    [F_DATA_STATUS] = {F_DATA, "status"},
    [F_DATA_TX_STATUS] = {F_DATA, "txStatus"},
    [F_DATA_SOURCE] = {F_DATA, "source"},
    [F_SOURCE_WALLET] = {F_DATA_SOURCE, "walletId"},
};

/* The members found, and their decoded strings (made on first use, freed with the body). */
struct body {
    struct mp_jvalue f[FIELDS];
    char *text[FIELDS];
    bool nomem;
};

static bool present(const struct body *b, enum field f)
{
    return b->f[f].type != MP_JSON_ABSENT;
}

/* The decoded string of field f, NULL when it is not a string (or memory ran out). */
static const char *string_of(struct body *b, enum field f)
{
    if (b->f[f].type != MP_JSON_STRING)
        return NULL;
    if (!b->text[f] && !(b->text[f] = mp_jstring_dup(&b->f[f], NULL)))
        b->nomem = true;
    return b->text[f];
}

static void body_clear(struct body *b)
{
    for (int i = 0; i < FIELDS; i++)
        free(b->text[i]);
}

/* ---- envelope ---- */

static bool valid_type(const char *type)
{
    size_t len = type ? strlen(type) : 0;
    if (len == 0 || len > MP_EVENT_TYPE_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *)type; *p; p++)
        if (*p <= ' ' || *p >= 0x7f)
            return false;
    return true;
}

/* The 64 lowercase hex digits of the body's SHA-256 into hex[65]; false when OpenSSL fails. */
static bool sha256_hex(const char *body, size_t len, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(body, len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32)
        return false;
    for (unsigned i = 0; i < md_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return true;
}

/* A v1 event's keys (see struct mp_event). The time leads the new key so that new events
 * append to the inbox's unique index instead of landing at random places in it: with ten
 * million events, each random insert wrote a page not yet written since the last checkpoint,
 * logged whole (8 kB of WAL per webhook). Sixteen hex digits hold any positive int64, so the
 * keys sort by time. False when memory (or OpenSSL) failed. */
static bool v1_keys(const char *body, size_t len, int64_t occurred_at_ms, struct mp_event *ev)
{
    char hex[65];
    size_t legacy_size = sizeof("sha256:") + 64, key_size = sizeof("v1::") + 16 + 64;
    char *legacy = sha256_hex(body, len, hex) ? malloc(legacy_size) : NULL;
    if (!legacy)
        return false;
    snprintf(legacy, legacy_size, "sha256:%s", hex);
    if (occurred_at_ms <= 0) {
        ev->dedupe_key = legacy;
        return true;
    }
    ev->legacy_dedupe_key = legacy;
    if (!(ev->dedupe_key = malloc(key_size)))
        return false;
    snprintf(ev->dedupe_key, key_size, "v1:%016llx:%s", (unsigned long long)occurred_at_ms, hex);
    return true;
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
static int64_t millis(struct body *b, enum field f)
{
    const char *text = string_of(b, f);
    struct tm tm = {0};
    int ms = 0, n = 0;
    if (b->f[f].type == MP_JSON_INTEGER) {
        long long value = mp_jinteger(&b->f[f]);
        return value > 0 ? (int64_t)value : 0;
    }
    if (b->f[f].type == MP_JSON_REAL) {
        double value = mp_jreal(&b->f[f]);
        return value > 0 && value < 9e15 ? (int64_t)value : 0;
    }
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
static enum mp_result envelope(struct body *b, const char *body, size_t len, struct mp_event *ev,
                               const char **why)
{
    enum field type = F_EVENT_TYPE, stamp;
    if (present(b, F_EVENT_TYPE) && present(b, F_ID)) {
        const char *id = string_of(b, F_ID);
        if (!id || !mp_valid_id(id, strlen(id))) {
            *why = b->nomem ? "out of memory" : "id must be 1..128 characters of [A-Za-z0-9._:-]";
            return b->nomem ? MP_ERR_NOMEM : MP_ERR_INVALID;
        }
        ev->api_version = 2;
        ev->dedupe_key = prefixed("v2:", id);
        stamp = F_CREATED_AT;
    } else {
        type = F_TYPE;
        if (!present(b, F_TYPE)) {
            *why = "not a Fireblocks webhook envelope";
            return MP_ERR_INVALID;
        }
        ev->api_version = 1;
        stamp = F_TIMESTAMP;
    }
    const char *type_text = string_of(b, type);
    if (!b->nomem && !valid_type(type_text)) {
        *why = "the event type must be a short string without spaces";
        return MP_ERR_INVALID;
    }
    ev->event_type = type_text ? strdup(type_text) : NULL;
    ev->occurred_at_ms = millis(b, stamp);
    if (ev->api_version == 1 && !v1_keys(body, len, ev->occurred_at_ms, ev)) {
        *why = "out of memory";
        return MP_ERR_NOMEM;
    }
    if (!ev->event_type || !ev->dedupe_key || b->nomem) {
        *why = "out of memory";
        return MP_ERR_NOMEM;
    }
    return MP_OK;
}

/* ---- ids and routes ---- */

/* The string member of the top level, else of data (top level wins). */
static const char *member(struct body *b, enum field top, enum field in_data)
{
    const char *value = string_of(b, top);
    return value ? value : string_of(b, in_data);
}

static const char *wallet_member(struct body *b)
{
    const char *wallet = member(b, F_WALLET, F_DATA_WALLET);
    return wallet ? wallet : string_of(b, F_SOURCE_WALLET);
}

/* Copies value into *out when it is a valid id (NULL otherwise). */
static enum mp_result copy_id(const char *value, char **out)
{
    if (!value || !mp_valid_id(value, strlen(value)))
        return MP_OK;
    *out = strdup(value);
    return *out ? MP_OK : MP_ERR_NOMEM;
}

/* Whether field f is present and not null. */
static bool given(const struct body *b, enum field f)
{
    return present(b, f) && b->f[f].type != MP_JSON_NULL;
}

static enum mp_result device_message(struct body *b, struct mp_event *ev, const char **why)
{
    const char *wallet = member(b, F_WALLET, F_DATA_WALLET);
    const char *device = member(b, F_DEVICE, F_DATA_DEVICE);
    const char *physical = member(b, F_PHYSICAL, F_DATA_PHYSICAL);
    const char *reason = NULL;
    if (b->nomem)
        reason = "out of memory";
    else if (!wallet || !mp_valid_id(wallet, strlen(wallet)))
        reason = "NCW_DEVICE_MESSAGE needs a walletId of 1..128 characters of [A-Za-z0-9._:-]";
    else if (!device || !mp_valid_id(device, strlen(device)))
        reason = "NCW_DEVICE_MESSAGE needs a deviceId of 1..128 characters of [A-Za-z0-9._:-]";
    else if (physical && !mp_valid_id(physical, strlen(physical)))
        reason = "physicalDeviceId must be 1..128 characters of [A-Za-z0-9._:-]";
    else if (!given(b, F_MESSAGE) && !given(b, F_DATA_MESSAGE) && !given(b, F_DATA))
        reason = "NCW_DEVICE_MESSAGE without message or data";
    if (reason) {
        *why = reason;
        return b->nomem ? MP_ERR_NOMEM : MP_ERR_INVALID;
    }
    /* The payload is taken from the raw body by the database (exact numbers, no second
     * serialisation); here we only say where it is. */
    ev->route = MP_ROUTE_DEVICE_MESSAGE;
    ev->payload_path = given(b, F_MESSAGE)        ? "{message}"
                       : given(b, F_DATA_MESSAGE) ? "{data,message}"
                                                  : "{data}";
    if (copy_id(wallet, &ev->wallet_id) || copy_id(device, &ev->device_id) ||
        copy_id(physical, &ev->physical_device_id)) {
        *why = "out of memory";
        return MP_ERR_NOMEM;
    }
    return MP_OK;
}

static bool pending_signature(struct body *b)
{
    const char *status = string_of(b, F_DATA_STATUS);
    if (!status)
        status = string_of(b, F_DATA_TX_STATUS);
    return status && strcmp(status, "PENDING_SIGNATURE") == 0;
}

/* Inbox-only, or a wakeup of the wallet's devices when a rule says so. The wakeup's payload,
 * {"eventType":<type>,"data":<data>}, is built by the database. */
static enum mp_result route(struct body *b, struct mp_event *ev, const char **why)
{
    if (strcmp(ev->event_type, "NCW_DEVICE_MESSAGE") == 0)
        return device_message(b, ev, why);
    ev->route = MP_ROUTE_INBOX_ONLY;
    const char *wallet = wallet_member(b), *device = member(b, F_DEVICE, F_DATA_DEVICE);
    const char *physical = member(b, F_PHYSICAL, F_DATA_PHYSICAL);
    const struct wakeup_rule *rule = find_rule(ev);
    bool wake = rule && (!rule->needs_pending_signature || pending_signature(b));
    if (b->nomem || copy_id(wallet, &ev->wallet_id) || copy_id(device, &ev->device_id) ||
        copy_id(physical, &ev->physical_device_id)) {
        *why = "out of memory";
        return MP_ERR_NOMEM;
    }
    if (wake && ev->wallet_id) {
        ev->route = MP_ROUTE_WALLET_WAKEUP;
        ev->payload_path = NULL;
    }
    return MP_OK;
}

/* ---- public ---- */

enum mp_result mp_event_parse(const char *body, size_t len, struct mp_event *out, char *error,
                              size_t error_size)
{
    struct mp_event ev = {0};
    struct body *b = calloc(1, sizeof(*b));
    const char *why = NULL;
    enum mp_jtype root = MP_JSON_ABSENT;
    enum mp_result result = b ? MP_ERR_INVALID : MP_ERR_NOMEM;
    /* The raw body is stored as a C string: a body holding a NUL byte is not JSON (jansson,
     * used here before, accepted one after a literal: {"a":true<NUL>}). */
    bool nul = body && memchr(body, '\0', len);
    if (!b)
        why = "out of memory";
    else if (!body || nul)
        why = nul ? "invalid JSON: NUL byte" : "invalid JSON: no body";
    else
        result = mp_jscan(body, len, wanted, FIELDS, b->f, &root, error, error_size);
    if (!result && root != MP_JSON_OBJECT) {
        why = "the body must be a JSON object";
        result = MP_ERR_INVALID;
    }
    if (!result)
        result = envelope(b, body, len, &ev, &why);
    if (!result)
        result = route(b, &ev, &why);
    if (b)
        body_clear(b);
    free(b);
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

void mp_event_free(struct mp_event *ev)
{
    if (!ev)
        return;
    free(ev->event_type);
    free(ev->dedupe_key);
    free(ev->legacy_dedupe_key);
    free(ev->wallet_id);
    free(ev->device_id);
    free(ev->physical_device_id);
    memset(ev, 0, sizeof(*ev));
}
