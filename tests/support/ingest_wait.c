/* Submitting a job to the ingest writer, and waiting for it later (ingest_wait.h). */
#include "ingest_wait.h"

#include <stdlib.h>

#include "harness.h"

static void job_done(struct mp_ingest_job *job, void *arg)
{
    (void)job;
    struct job_wait *w = arg;
    pthread_mutex_lock(&w->lock);
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void submit_job(struct mp_ingest *ingest, struct mp_ingest_job *job, struct job_wait *w)
{
    job->done = job_done;
    job->done_arg = w;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->done = false;
    mp_ingest_submit(ingest, job);
}

void wait_job(struct mp_ingest_job *job, struct job_wait *w)
{
    pthread_mutex_lock(&w->lock);
    while (!w->done)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
    assert_int_equal(job->result, MP_OK);
    free(job->messages_json);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
}
