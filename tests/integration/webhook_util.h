/* Helpers shared by the webhook tests: Fireblocks-style bodies, signed posts and the checks of
 * their answers. Header-only (static inline) so that each test program takes what it uses. */
#ifndef MPCPUSH_TEST_WEBHOOK_UTIL_H
#define MPCPUSH_TEST_WEBHOOK_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness_extra.h"

static int wh_serial;

static inline char *v1_device_message(const char *wallet, const char *device, const char *message)
{
    char *body = NULL;
    int n = ++wh_serial;
    if (asprintf(&body,
                 "{\"type\":\"NCW_DEVICE_MESSAGE\",\"tenantId\":\"tenant-%d\","
                 "\"timestamp\":1700000000%03d,\"walletId\":\"%s\",\"deviceId\":\"%s\","
                 "\"physicalDeviceId\":\"phys-1\",\"message\":%s}",
                 n, n % 1000, wallet, device, message) < 0)
        fail_msg("out of memory");
    return body;
}

static inline char *v1_event(const char *type, const char *data)
{
    char *body = NULL;
    int n = ++wh_serial;
    if (asprintf(&body,
                 "{\"type\":\"%s\",\"tenantId\":\"tenant-%d\",\"timestamp\":1700000001%03d,"
                 "\"data\":%s}",
                 type, n, n % 1000, data) < 0)
        fail_msg("out of memory");
    return body;
}

static inline char *v2_event(const char *id, const char *type, const char *data)
{
    char *body = NULL;
    if (asprintf(&body,
                 "{\"id\":\"%s\",\"eventType\":\"%s\",\"eventVersion\":1,\"resourceId\":\"r-%d\","
                 "\"webhookId\":\"wh-1\",\"workspaceId\":\"ws-1\",\"createdAt\":1700000002000,"
                 "\"data\":%s}",
                 id, type, ++wh_serial, data) < 0)
        fail_msg("out of memory");
    return body;
}

static inline void post_signed(struct th_response *r, const struct tx_env *e, const char *body,
                               const char *h1, const char *h2)
{
    const char *headers[] = {h1, h2, NULL};
    tx_webhook(r, e, body, headers);
}

/* Asserts a 200 "stored" answer; returns nothing. */
static inline void assert_stored(const struct th_response *r)
{
    tx_assert_status(r, 200);
    json_t *status = json_object_get(r->json, "status");
    json_t *id = json_object_get(r->json, "eventId");
    if (!json_is_string(status) || strcmp(json_string_value(status), "stored") != 0 ||
        !json_is_string(id) || !json_string_length(id))
        fail_msg("want {\"status\":\"stored\",\"eventId\":...}, got %s", r->body);
}

static inline void assert_duplicate(const struct th_response *r)
{
    tx_assert_status(r, 200);
    json_t *status = json_object_get(r->json, "status");
    if (!json_is_string(status) || strcmp(json_string_value(status), "duplicate") != 0)
        fail_msg("want {\"status\":\"duplicate\"}, got %s", r->body);
}

static inline void assert_rejected(const struct tx_env *e, const char *body, const char *h1,
                                   const char *h2, long status, const char *code)
{
    struct tx_counts before;
    tx_counts(e->db, &before);
    struct th_response r;
    post_signed(&r, e, body, h1, h2);
    tx_assert_error(&r, status, code);
    th_response_free(&r);
    tx_assert_counts(e->db, &before);
}

static inline void register_device(const struct tx_env *e, const char *wallet, const char *device)
{
    char path[256], body[256];
    snprintf(path, sizeof(path), "/v1/wallets/%s/devices/%s", wallet, device);
    snprintf(body, sizeof(body), "{\"fcmToken\":\"tok-%s-%s-abcdef\",\"platform\":\"android\"}",
             wallet, device);
    struct th_response r;
    tx_api(&r, e, "PUT", path, body);
    if (r.status != 201 && r.status != 200)
        fail_msg("PUT %s answered %ld %s", path, r.status, r.body);
    th_response_free(&r);
}

static inline char *payload_of(const char *db, const char *wallet, const char *device)
{
    return tx_sql_textf(db,
                        "SELECT payload::text FROM mpcpush.messages WHERE wallet_id = '%s'"
                        " AND device_id = '%s' ORDER BY id DESC LIMIT 1",
                        wallet, device);
}

#endif
