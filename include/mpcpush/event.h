/* Fireblocks webhook bodies (already verified) turned into what the store needs: the event's
 * type and dedupe key, the wallet and device it concerns, and whether it carries a message for
 * a device, asks for a wakeup of the wallet's devices, or only goes to the inbox. */
#ifndef MPCPUSH_EVENT_H
#define MPCPUSH_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "mpcpush/result.h"

#define MP_EVENT_TYPE_MAX 128 /* longest event type accepted */

enum mp_event_route {
    MP_ROUTE_INBOX_ONLY,     /* kept for the inbox; nothing is pushed */
    MP_ROUTE_DEVICE_MESSAGE, /* NCW_DEVICE_MESSAGE: a message for device_id of wallet_id */
    MP_ROUTE_WALLET_WAKEUP,  /* the user must act: wake the devices of wallet_id */
};

struct mp_event {
    int api_version;  /* 1 or 2 */
    char *event_type; /* v1 "type", v2 "eventType" */
    /* The inbox's dedupe key. v2: "v2:<id>". v1: "v1:<timestamp>:<sha256>", the timestamp (ms)
     * as 16 hex digits and the SHA-256 of the raw body as 64 (lowercase); "sha256:<sha256>"
     * when the body has no timestamp. */
    char *dedupe_key;
    /* v1 with a timestamp: "sha256:<sha256>", the key schema 1 to 4 gave the same event (a
     * redelivery of an event stored then is a duplicate under it); NULL otherwise. */
    char *legacy_dedupe_key;
    char *wallet_id;          /* NULL when absent or not a valid id */
    char *device_id;          /* NULL when absent or not a valid id */
    char *physical_device_id; /* NULL when absent or not a valid id */
    int64_t occurred_at_ms;   /* v2 createdAt, v1 timestamp (ms since the epoch); 0 if absent */
    enum mp_event_route route;
    /* DEVICE_MESSAGE: where the payload sits in the raw body, as a PostgreSQL text[] path:
     * "{message}", "{data,message}" or "{data}" (static). NULL otherwise: a wakeup's payload is
     * {"eventType":..,"data":..}, made by the store. */
    const char *payload_path;
};

/* Parses a webhook body of len bytes into *out (owned by the caller: mp_event_free).
 * MP_ERR_INVALID when the body is not a Fireblocks envelope or a device message lacks valid
 * walletId/deviceId; error (may be NULL) then gets a short reason fit for a 400 answer.
 * MP_ERR_NOMEM when memory ran out. On failure *out is zeroed. */
enum mp_result mp_event_parse(const char *body, size_t len, struct mp_event *out, char *error,
                              size_t error_size) MP_MUSTCHECK;

/* Frees the members of ev and zeroes it; accepts a zeroed struct. */
void mp_event_free(struct mp_event *ev);

#endif
