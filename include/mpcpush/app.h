/* The long-running process: receiver (HTTP API), dispatcher (FCM), or both. */
#ifndef MPCPUSH_APP_H
#define MPCPUSH_APP_H

#include "mpcpush/config.h"

enum mp_role { MP_ROLE_RECEIVER = 1 << 0, MP_ROLE_DISPATCHER = 1 << 1 };

/* Runs the given roles until SIGTERM or SIGINT, then drains in-flight work.
 * Returns the process exit status (0 after a clean shutdown). */
int mp_app_run(const struct mp_config *cfg, unsigned roles);

#endif
