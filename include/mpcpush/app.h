/* The long-running process: receiver (HTTP API), dispatcher (FCM), or both. */
#ifndef MPCPUSH_APP_H
#define MPCPUSH_APP_H

#include "mpcpush/config.h"

enum mp_role { MP_ROLE_RECEIVER = 1 << 0, MP_ROLE_DISPATCHER = 1 << 1 };

/* Runs the given roles until SIGTERM or SIGINT, then drains in-flight work. SIGHUP reloads
 * the configuration (from config_file, may be NULL, and the environment): Fireblocks keys,
 * Google credentials, log level and API keys take effect; a bad configuration is refused and
 * the old one stays. Returns the process exit status (0 after a clean shutdown). */
int mp_app_run(const struct mp_config *cfg, const char *config_file, unsigned roles);

/* `mpcpush send-test`: stores a test message for the device, pushes its wakeup through the
 * queue now and prints what FCM said (one line: state, message name, error, token status).
 * Returns the exit status. */
int mp_send_test(const struct mp_config *cfg, const char *wallet_id, const char *device_id);

#endif
