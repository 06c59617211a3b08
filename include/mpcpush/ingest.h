/* Group commit for everything that creates messages: webhook events and API enqueues.
 * Requests are queued to one writer thread, which writes whatever has accumulated in a single
 * statement and transaction, then reports each request's outcome. Nothing is answered before
 * its batch has committed. */
#ifndef MPCPUSH_INGEST_H
#define MPCPUSH_INGEST_H

#include <stdbool.h>

#include "mpcpush/result.h"

enum mp_ingest_kind {
    MP_INGEST_EVENT = 0,        /* webhook kept in the inbox only */
    MP_INGEST_EVENT_DEVICE = 1, /* webhook carrying a message for one device */
    MP_INGEST_EVENT_WALLET = 2, /* webhook that wakes every device of a wallet */
    MP_INGEST_API_DEVICE = 3,   /* API message for one registered device */
    MP_INGEST_API_WALLET = 4,   /* API message for every device of a wallet */
};

struct mp_ingest_job {
    /* input, owned by the submitter and left untouched by the writer */
    enum mp_ingest_kind kind;
    const char *dedupe_key;   /* webhooks only */
    const char *legacy_key;   /* webhooks: also a duplicate when stored under this key; or NULL */
    int api_version;          /* webhooks only */
    const char *event_type;   /* webhooks only */
    const char *raw_body;     /* the request body (stored for webhooks) */
    const char *wallet_id;    /* may be NULL for inbox-only events */
    const char *device_id;    /* may be NULL */
    const char *payload_path; /* text[] path of the payload in raw_body, e.g. "{payload}";
                                 NULL for a wallet wakeup (its payload is made from the event) */
    int ttl_seconds;

    /* output, set by the writer before done() is called */
    enum mp_result result; /* MP_OK, MP_ERR_NOT_FOUND (no such device/wallet), MP_ERR_DB... */
    bool duplicate;        /* a webhook already stored before */
    long long event_id;
    char *messages_json; /* [{"deviceId":..,"id":..}] of the messages made; caller frees */

    /* completion: called on the writer thread; must not block */
    void (*done)(struct mp_ingest_job *job, void *arg);
    void *done_arg;
    struct mp_ingest_job *next; /* writer's queue link */
};

struct mp_ingest;

/* Starts the writer thread. batch_max bounds the requests per transaction. */
enum mp_result mp_ingest_start(const char *database_url, int batch_max,
                               struct mp_ingest **out) MP_MUSTCHECK;

/* Queues a job; done() will be called exactly once (at once with MP_ERR_UNAVAILABLE when the
 * writer is stopping, or MP_ERR_DB while the database is known to be unreachable). */
void mp_ingest_submit(struct mp_ingest *ingest, struct mp_ingest_job *job);

/* True when the last attempt to reach the database succeeded. */
bool mp_ingest_healthy(struct mp_ingest *ingest);

/* Counters for metrics. */
struct mp_ingest_stats {
    unsigned long long batches, jobs, failures, messages;
};
void mp_ingest_stats(struct mp_ingest *ingest, struct mp_ingest_stats *out);

/* For a shutdown that cannot wait any longer: cancels the statement being run (its jobs fail)
 * and fails the queued jobs and any submitted later, all with MP_ERR_UNAVAILABLE. Nothing is
 * answered as stored that was not committed. Accepts NULL. */
void mp_ingest_abandon(struct mp_ingest *ingest);

/* Finishes the queued jobs, stops the thread, frees. Accepts NULL. */
void mp_ingest_stop(struct mp_ingest *ingest);

#endif
