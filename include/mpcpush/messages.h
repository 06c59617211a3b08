/* The pending messages of a device: fetching them in order, acknowledging them, and pruning
 * what is acknowledged or expired. */
#ifndef MPCPUSH_MESSAGES_H
#define MPCPUSH_MESSAGES_H

#include <libpq-fe.h>

#include "mpcpush/buf.h"
#include "mpcpush/result.h"

/* Appends {"messages":[...],"next":"<id>"|null} for the device: pending messages with
 * id > after, oldest first, at most limit. *count tells how many. */
enum mp_result mp_messages_fetch(PGconn *conn, const char *wallet_id, const char *device_id,
                                 long long after, int limit, struct mp_buf *out,
                                 int *count) MP_MUSTCHECK;

/* Acknowledges the device's messages with id <= up_to (ids NULL) or with the listed ids
 * (count n). *acked is the number newly acknowledged; acknowledging twice is harmless.
 * Acknowledged messages need no further wakeup. */
enum mp_result mp_messages_ack(PGconn *conn, const char *wallet_id, const char *device_id,
                               long long up_to, const long long *ids, int n,
                               long long *acked) MP_MUSTCHECK;

struct mp_prune_limits {
    int acked_seconds;  /* keep acknowledged and expired messages this long */
    int events_seconds; /* keep inbox events this long */
    int batch;          /* rows per DELETE */
};

/* Deletes, in bounded batches, acknowledged and expired messages past retention, old inbox
 * events and finished push rows of devices that are gone. *deleted counts the rows. */
enum mp_result mp_messages_prune(PGconn *conn, const struct mp_prune_limits *limits,
                                 long long *deleted) MP_MUSTCHECK;

#endif
