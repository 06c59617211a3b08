/* Helpers shared by the push modules (OAuth token source and FCM client); not public. */
#ifndef MPCPUSH_PUSH_INT_H
#define MPCPUSH_PUSH_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "mpcpush/result.h"

/* Checks an outgoing URL: https:// to any host, or http:// to a loopback host only
 * (localhost, 127.0.0.0/8, ::1). *plain tells which. MP_ERR_INVALID otherwise. */
enum mp_result mp_push_check_url(const char *url, bool *plain) MP_MUSTCHECK;

/* Restricts an easy handle to the comma-separated protocols ("https", "http,https"); no
 * redirect or URL can make it speak anything else. */
void mp_push_limit_protocols(void *easy, const char *protocols);

/* Milliseconds of CLOCK_MONOTONIC. */
long long mp_push_now_ms(void);

/* Parses a Retry-After value: delta-seconds or an HTTP-date, relative to now_unix. Returns
 * seconds (0 .. 86400) or -1 when value is NULL, empty or neither form. */
int mp_push_parse_retry_after(const char *value, long long now_unix);

#endif
