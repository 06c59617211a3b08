/* Submitting a job to the ingest writer from a test, and waiting for it later: for tests that
 * let a job start, then do something while it runs or waits for a lock. */
#ifndef MPCPUSH_TEST_INGEST_WAIT_H
#define MPCPUSH_TEST_INGEST_WAIT_H

#include <pthread.h>
#include <stdbool.h>

#include "mpcpush/ingest.h"

struct job_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
};

/* Submits job, to be waited for with wait_job; returns without waiting. */
void submit_job(struct mp_ingest *ingest, struct mp_ingest_job *job, struct job_wait *w);

/* Waits for the job, checks it succeeded, and frees what the writer gave it. */
void wait_job(struct mp_ingest_job *job, struct job_wait *w);

#endif
