/* The dispatcher: claims due wakeups from the push queue, sends them through FCM, records the
 * outcomes, and applies Google's rules for retries, quota pauses and dead tokens. */
#ifndef MPCPUSH_DISPATCHER_H
#define MPCPUSH_DISPATCHER_H

#include "mpcpush/buf.h"
#include "mpcpush/config.h"
#include "mpcpush/result.h"

struct mp_dispatcher;
struct mp_metrics;

/* Loads the Google credentials and starts the worker threads and the NOTIFY listener.
 * Configuration problems are appended to errors, one line each. */
enum mp_result mp_dispatcher_start(const struct mp_config *cfg, struct mp_metrics *metrics,
                                   struct mp_dispatcher **out, struct mp_buf *errors) MP_MUSTCHECK;

/* Loads the Google credentials of cfg again and swaps them in once the batches in flight are
 * done. On failure (problems appended to errors) the old credentials stay. The project must
 * stay the same. */
enum mp_result mp_dispatcher_reload(struct mp_dispatcher *d, const struct mp_config *cfg,
                                    struct mp_buf *errors) MP_MUSTCHECK;

/* Lets every worker finish the batch in hand (send and record), then stops and frees.
 * Accepts NULL. */
void mp_dispatcher_stop(struct mp_dispatcher *d);

#endif
