/* Devices and their FCM registration tokens. */
#ifndef MPCPUSH_DEVICES_H
#define MPCPUSH_DEVICES_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "mpcpush/result.h"

struct mp_device_input {
    const char *wallet_id, *device_id;
    const char *physical_device_id; /* may be NULL */
    const char *platform;           /* android | ios | web */
    const char *fcm_token;
};

/* Registers or refreshes a device. A new token replaces the old one and makes the device
 * active again; a token already marked invalid stays invalid. When the device (re)gains an
 * active token and has pending messages, a wakeup is scheduled. *created tells which. */
enum mp_result mp_devices_put(PGconn *conn, const struct mp_device_input *in,
                              bool *created) MP_MUSTCHECK;

/* The device's state as the API shows it (new reference); MP_ERR_NOT_FOUND if unknown. */
enum mp_result mp_devices_get(PGconn *conn, const char *wallet_id, const char *device_id,
                              json_t **state) MP_MUSTCHECK;

/* Forgets a device with its messages and push state; MP_ERR_NOT_FOUND if unknown. */
enum mp_result mp_devices_delete(PGconn *conn, const char *wallet_id,
                                 const char *device_id) MP_MUSTCHECK;

#endif
