/* Request rate limits: a count per key (an address, an API key name) in fixed one-minute
 * windows. Keys hash (with a per-process seed) into a fixed table, so memory stays bounded
 * whatever clients send; a key never shares a count with another: when every slot it may use is
 * taken this minute, it is refused. */
#ifndef MPCPUSH_RATELIMIT_H
#define MPCPUSH_RATELIMIT_H

#include <stdbool.h>

#include "mpcpush/result.h"

struct mp_ratelimit;

/* A limiter allowing per_minute events per key (0: unlimited). */
enum mp_result mp_ratelimit_new(int per_minute, struct mp_ratelimit **out) MP_MUSTCHECK;

/* Counts one event for key; false when the key is over its budget for this minute. */
bool mp_ratelimit_allow(struct mp_ratelimit *rl, const char *key);

/* True when key has used its budget for this minute (counts nothing). */
bool mp_ratelimit_over(struct mp_ratelimit *rl, const char *key);

/* Seconds until the current window ends (for Retry-After). */
int mp_ratelimit_retry_after(void);

void mp_ratelimit_free(struct mp_ratelimit *rl);

#endif
