/* FCM v1 message validation: unknown fields, the one target, data maps, Android ttl and
 * priority, APNs headers, and the size limit, each reported the way Google reports it (a
 * message and a BadRequest field violation). Field names are accepted in both the proto
 * (snake_case) and JSON (lowerCamelCase) spellings, as Google's JSON parser does. */
#include "message-int.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TOKEN_MAX 4096
#define TOPIC_MAX 900

static const char *const request_keys[] = {"message", "validate_only", "validateOnly", NULL};
static const char *const message_keys[] = {"name",    "data",  "notification", "android",
                                           "webpush", "apns",  "fcm_options",  "fcmOptions",
                                           "token",   "topic", "condition",    NULL};
static const char *const android_keys[] = {"collapse_key",
                                           "collapseKey",
                                           "priority",
                                           "ttl",
                                           "restricted_package_name",
                                           "restrictedPackageName",
                                           "data",
                                           "notification",
                                           "fcm_options",
                                           "fcmOptions",
                                           "direct_boot_ok",
                                           "directBootOk",
                                           "bandwidth_constrained_ok",
                                           "bandwidthConstrainedOk",
                                           "restricted_satellite_ok",
                                           "restrictedSatelliteOk",
                                           NULL};
static const char *const apns_keys[] = {
    "headers",           "payload", "fcm_options", "fcmOptions", "live_activity_token",
    "liveActivityToken", NULL};
static const char *const notification_keys[] = {"title", "body", "image", NULL};
static const char *const push_types[] = {"alert",        "background",   "location", "voip",
                                         "complication", "fileprovider", "mdm",      "liveactivity",
                                         "pushtotalk",   "controls",     "widgets",  NULL};

static int violate(struct emu_violation *v, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int violate(struct emu_violation *v, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->message, sizeof(v->message), fmt, ap);
    va_end(ap);
    snprintf(v->field, sizeof(v->field), "%s", field);
    snprintf(v->description, sizeof(v->description), "%s", v->message);
    return 0;
}

static int in_list(const char *key, const char *const *names)
{
    for (; *names; names++)
        if (strcmp(key, *names) == 0)
            return 1;
    return 0;
}

/* Every key of obj must be one of names; where is "" at the top level. */
static int check_keys(json_t *obj, const char *const *names, const char *where,
                      struct emu_violation *v)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        if (in_list(key, names))
            continue;
        if (!where[0])
            return violate(v, "",
                           "Invalid JSON payload received. Unknown name \"%.100s\": Cannot find "
                           "field.",
                           key);
        return violate(v, where,
                       "Invalid JSON payload received. Unknown name \"%.100s\" at '%s': Cannot "
                       "find field.",
                       key, where);
    }
    return 1;
}

/* The member named snake or camel (the JSON spelling). */
static json_t *get2(json_t *obj, const char *snake, const char *camel)
{
    json_t *value = json_object_get(obj, snake);
    return value ? value : json_object_get(obj, camel);
}

static int expect_object(json_t *value, const char *field, struct emu_violation *v)
{
    if (!value || json_is_object(value))
        return 1;
    return violate(v, field, "Invalid value at '%s' (type.googleapis.com/google.protobuf.Struct)",
                   field);
}

static int reserved_key(const char *key)
{
    return strcmp(key, "from") == 0 || strcmp(key, "message_type") == 0 ||
           strncasecmp(key, "google", 6) == 0 || strncasecmp(key, "gcm", 3) == 0;
}

/* A map of string to string without reserved keys. */
static int check_data(json_t *data, const char *field, struct emu_violation *v)
{
    if (!data)
        return 1;
    if (!json_is_object(data))
        return violate(v, field, "Invalid value at '%s' (Map), expected an object of strings",
                       field);
    const char *key;
    json_t *value;
    size_t i = 0;
    json_object_foreach(data, key, value)
    {
        char where[160];
        snprintf(where, sizeof(where), "%s[%zu].value", field, i++);
        if (!json_is_string(value)) {
            char *shown = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
            violate(v, where, "Invalid value at '%s' (TYPE_STRING), %.64s", where,
                    shown ? shown : "?");
            free(shown);
            return 0;
        }
        if (reserved_key(key))
            return violate(v, field,
                           "Invalid data payload key: \"%.100s\". Keys must not be \"from\", "
                           "\"message_type\", or start with \"google\" or \"gcm\".",
                           key);
    }
    return 1;
}

static int printable_token(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= max || s[n] <= ' ' || s[n] == 0x7f)
            return 0;
    return n > 0;
}

static int valid_topic(const char *topic)
{
    if (strncmp(topic, "/topics/", 8) == 0)
        topic += 8;
    size_t n = strlen(topic);
    if (n == 0 || n > TOPIC_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)topic[i]) && !strchr("-_.~%", topic[i]))
            return 0;
    return 1;
}

static int target_string(json_t *message, const char *name, const char **out,
                         struct emu_violation *v)
{
    json_t *value = json_object_get(message, name);
    *out = NULL;
    if (!value)
        return 1;
    if (!json_is_string(value))
        return violate(v, "message", "Invalid value at 'message.%s' (TYPE_STRING)", name);
    *out = json_string_value(value);
    return 1;
}

static int check_target(json_t *message, struct emu_send *send, struct emu_violation *v)
{
    if (!target_string(message, "token", &send->token, v) ||
        !target_string(message, "topic", &send->topic, v) ||
        !target_string(message, "condition", &send->condition, v))
        return 0;
    int n = !!send->token + !!send->topic + !!send->condition;
    if (n == 0)
        return violate(v, "message", "Recipient of the message is not set.");
    if (n > 1)
        return violate(v, "message",
                       "Invalid JSON payload received. Oneof field 'target' is already set. "
                       "Cannot set '%s'",
                       send->condition ? "condition" : "topic");
    if (send->token && !printable_token(send->token, TOKEN_MAX))
        return violate(v, "message.token",
                       "The registration token is not a valid FCM registration token");
    if (send->topic && !valid_topic(send->topic))
        return violate(v, "message.topic", "Invalid topic name \"%.100s\"", send->topic);
    if (send->condition && !send->condition[0])
        return violate(v, "message.condition", "Invalid condition expression");
    return 1;
}

/* "^\d+(\.\d{1,9})?s$" and at most EMU_TTL_MAX_SECONDS. */
static int valid_duration(const char *s)
{
    const char *p = s;
    unsigned long long seconds = 0;
    int fraction_nonzero = 0;
    if (!isdigit((unsigned char)*p))
        return 0;
    for (; isdigit((unsigned char)*p); p++)
        if ((seconds = seconds * 10 + (unsigned)(*p - '0')) > EMU_TTL_MAX_SECONDS)
            return 0;
    if (*p == '.') {
        const char *f = ++p;
        for (; isdigit((unsigned char)*p); p++)
            fraction_nonzero |= *p != '0';
        if (p == f || p - f > 9)
            return 0;
    }
    if (p[0] != 's' || p[1])
        return 0;
    return seconds < EMU_TTL_MAX_SECONDS || !fraction_nonzero;
}

static int check_android(json_t *android, struct emu_violation *v)
{
    if (!android)
        return 1;
    if (!expect_object(android, "message.android", v) ||
        !check_keys(android, android_keys, "message.android", v) ||
        !check_data(json_object_get(android, "data"), "message.android.data", v) ||
        !expect_object(json_object_get(android, "notification"), "message.android.notification", v))
        return 0;
    json_t *priority = json_object_get(android, "priority");
    const char *p = json_string_value(priority);
    if (priority && (!p || (strcasecmp(p, "NORMAL") != 0 && strcasecmp(p, "HIGH") != 0)))
        return violate(v, "message.android.priority",
                       "Invalid value at 'message.android.priority' "
                       "(type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority), "
                       "\"%.64s\"",
                       p ? p : "not a string");
    json_t *ttl = json_object_get(android, "ttl");
    const char *t = json_string_value(ttl);
    if (ttl && (!t || !valid_duration(t)))
        return violate(v, "message.android.ttl",
                       "Invalid value at 'message.android.ttl' "
                       "(type.googleapis.com/google.protobuf.Duration), \"%.64s\": a duration of "
                       "0 to %d seconds such as \"3600s\" is expected",
                       t ? t : "not a string", EMU_TTL_MAX_SECONDS);
    json_t *collapse = get2(android, "collapse_key", "collapseKey");
    if (collapse && !json_is_string(collapse))
        return violate(v, "message.android.collapse_key",
                       "Invalid value at 'message.android.collapse_key' (TYPE_STRING)");
    return 1;
}

/* Checks the APNs headers; reports whether they ask for priority 10 and a background push. */
static int check_apns_headers(json_t *headers, int *priority10, int *background,
                              struct emu_violation *v)
{
    const char *key;
    json_t *value;
    json_object_foreach(headers, key, value)
    {
        const char *s = json_string_value(value);
        if (!s)
            return violate(v, "message.apns.headers",
                           "Invalid value at 'message.apns.headers' (TYPE_STRING): header "
                           "\"%.64s\" must be a string",
                           key);
        if (strcasecmp(key, "apns-priority") == 0 && strcmp(s, "5") != 0 && strcmp(s, "10") != 0)
            return violate(v, "message.apns.headers", "Invalid apns-priority \"%.16s\"", s);
        if (strcasecmp(key, "apns-push-type") == 0 && !in_list(s, push_types))
            return violate(v, "message.apns.headers", "Invalid apns-push-type \"%.32s\"", s);
        if (strcasecmp(key, "apns-collapse-id") == 0 && strlen(s) > 64)
            return violate(v, "message.apns.headers", "apns-collapse-id must be at most 64 bytes");
        if (strcasecmp(key, "apns-expiration") == 0 &&
            (!s[0] || strspn(s, "0123456789") != strlen(s)))
            return violate(v, "message.apns.headers", "Invalid apns-expiration \"%.32s\"", s);
        *priority10 |= strcasecmp(key, "apns-priority") == 0 && strcmp(s, "10") == 0;
        *background |= strcasecmp(key, "apns-push-type") == 0 && strcmp(s, "background") == 0;
    }
    return 1;
}

/* aps holds content-available and nothing the user would see. */
static int content_available_only(json_t *payload)
{
    json_t *aps = json_object_get(payload, "aps");
    json_t *ca = get2(aps, "content-available", "contentAvailable");
    return json_is_integer(ca) && json_integer_value(ca) == 1 && !json_object_get(aps, "alert") &&
           !json_object_get(aps, "sound") && !json_object_get(aps, "badge");
}

static int check_apns(json_t *apns, struct emu_violation *v)
{
    if (!apns)
        return 1;
    json_t *headers = json_object_get(apns, "headers");
    json_t *payload = json_object_get(apns, "payload");
    int priority10 = 0, background = 0;
    if (!expect_object(apns, "message.apns", v) ||
        !check_keys(apns, apns_keys, "message.apns", v) ||
        !expect_object(headers, "message.apns.headers", v) ||
        !expect_object(payload, "message.apns.payload", v) ||
        !expect_object(json_object_get(payload, "aps"), "message.apns.payload.aps", v) ||
        !check_apns_headers(headers, &priority10, &background, v))
        return 0;
    if (priority10 && (background || content_available_only(payload)))
        return violate(v, "message.apns.headers",
                       "apns-priority 10 is not allowed for a background notification (aps "
                       "content-available only or apns-push-type background): use 5");
    return 1;
}

static int check_message(json_t *message, struct emu_send *send, struct emu_violation *v)
{
    json_t *notification = json_object_get(message, "notification");
    return check_keys(message, message_keys, "message", v) && check_target(message, send, v) &&
           check_data(json_object_get(message, "data"), "message.data", v) &&
           expect_object(notification, "message.notification", v) &&
           (!notification ||
            check_keys(notification, notification_keys, "message.notification", v)) &&
           check_android(json_object_get(message, "android"), v) &&
           check_apns(json_object_get(message, "apns"), v) &&
           expect_object(json_object_get(message, "webpush"), "message.webpush", v) &&
           expect_object(get2(message, "fcm_options", "fcmOptions"), "message.fcm_options", v);
}

static int check_request(json_t *root, struct emu_send *send, struct emu_violation *v)
{
    if (!json_is_object(root))
        return violate(v, "", "Invalid JSON payload received. Expected an object.");
    if (!check_keys(root, request_keys, "", v))
        return 0;
    json_t *validate_only = get2(root, "validate_only", "validateOnly");
    if (validate_only && !json_is_boolean(validate_only))
        return violate(v, "validate_only", "Invalid value at 'validate_only' (TYPE_BOOL)");
    send->validate_only = json_is_true(validate_only);
    send->message = json_object_get(root, "message");
    if (!json_is_object(send->message))
        return violate(v, "message",
                       "Request contains an invalid argument: message must be an "
                       "object.");
    return check_message(send->message, send, v);
}

int emu_message_parse(const char *body, size_t len, struct emu_send *send, struct emu_violation *v)
{
    json_error_t jerr;
    memset(send, 0, sizeof(*send));
    send->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!send->root)
        return violate(v, "", "Invalid JSON payload received. %s", jerr.text);
    if (!check_request(send->root, send, v)) {
        emu_send_free(send);
        return 0;
    }
    send->message_json = json_dumps(send->message, JSON_COMPACT);
    if (!send->message_json) {
        emu_send_free(send);
        return -1;
    }
    size_t max = send->topic ? EMU_TOPIC_MESSAGE_MAX : EMU_MESSAGE_MAX;
    size_t size = strlen(send->message_json);
    if (size > max) {
        emu_send_free(send);
        return violate(v, "message",
                       "Message is too big: %zu bytes, at most %zu bytes are allowed.", size, max);
    }
    return 1;
}

void emu_send_free(struct emu_send *send)
{
    if (!send)
        return;
    json_decref(send->root);
    free(send->message_json);
    memset(send, 0, sizeof(*send));
}
