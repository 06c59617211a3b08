/* `mpcpush send-test`: enqueues a test message for one device, pushes its wakeup through the
 * real queue (claim, send, record) and reports what FCM said. When a running dispatcher gets
 * there first, it reports that dispatcher's outcome from the database instead. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mpcpush/app.h"
#include "mpcpush/db.h"
#include "mpcpush/devices.h"
#include "mpcpush/fcm.h"
#include "mpcpush/ingest.h"
#include "mpcpush/oauth.h"
#include "mpcpush/pushes.h"
#include "push/dispatch-int.h"

#define TEST_TTL_SECONDS 300
#define WAIT_SECONDS     30

struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t done_cond;
    bool done;
};

static void job_done(struct mp_ingest_job *job, void *arg)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->lock);
    w->done = true;
    pthread_cond_signal(&w->done_cond);
    pthread_mutex_unlock(&w->lock);
}

/* Stores the test message through the normal ingest path; returns its id, 0 on failure. */
static long long enqueue(const struct mp_config *cfg, const char *wallet, const char *device)
{
    struct mp_ingest *ingest = NULL;
    if (mp_ingest_start(cfg->database_url, 1, &ingest) != MP_OK)
        return 0;
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
    struct mp_ingest_job job = {
        .kind = MP_INGEST_API_DEVICE,
        .wallet_id = wallet,
        .device_id = device,
        .raw_body = "{\"payload\":{\"type\":\"mpcpush.test\"}}",
        .payload_path = "{payload}",
        .ttl_seconds = TEST_TTL_SECONDS,
        .done = job_done,
        .done_arg = &w,
    };
    mp_ingest_submit(ingest, &job);
    pthread_mutex_lock(&w.lock);
    while (!w.done)
        pthread_cond_wait(&w.done_cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    mp_ingest_stop(ingest);
    long long id = 0;
    json_t *made = job.result ? NULL : json_loads(job.messages_json, 0, NULL);
    json_t *first = json_object_get(json_array_get(made, 0), "id");
    if (json_is_string(first))
        id = atoll(json_string_value(first));
    json_decref(made);
    free(job.messages_json);
    if (job.result)
        fprintf(stderr, "mpcpush: cannot store the test message: %s\n", mp_strerror(job.result));
    return id;
}

/* Claims, sends and records the device's wakeup; returns true when it was ours to send. */
static bool push_now(const struct mp_config *cfg, PGconn *conn, struct mp_oauth *oauth,
                     const char *wallet, const char *device)
{
    struct mp_push *pushes = NULL;
    int n = 0;
    struct mp_fcm_client *fcm = NULL;
    struct mp_claim claim = {.project = mp_oauth_project_id(oauth),
                             .owner = "send-test",
                             .limit = 1,
                             .lease_seconds = cfg->lease_seconds,
                             .wallet_id = wallet,
                             .device_id = device};
    if (mp_pushes_claim(conn, &claim, &pushes, &n) != MP_OK || n == 0) {
        mp_pushes_free(pushes, n);
        return false;
    }
    struct mp_fcm_result result;
    struct mp_push_outcome outcome = {0};
    bool paused = false;
    unsigned seed = (unsigned)getpid();
    if (mp_fcm_client_new(cfg->fcm_url, mp_oauth_project_id(oauth), cfg->ca_file, 1,
                          cfg->fcm_timeout, &fcm) == MP_OK) {
        struct mp_dispatch_ctx ctx = {.cfg = cfg,
                                      .oauth = oauth,
                                      .fcm = fcm,
                                      .conn = conn,
                                      .project = mp_oauth_project_id(oauth),
                                      .seed = &seed,
                                      .quota_paused = &paused};
        mp_dispatch_batch(&ctx, pushes, 1, &result, &outcome);
        if (mp_pushes_record(conn, &outcome, 1) != MP_OK)
            fprintf(stderr, "mpcpush: the outcome could not be recorded\n");
    }
    mp_fcm_client_free(fcm);
    mp_pushes_free(pushes, n);
    return true;
}

/* Prints the device's push row; true once a wakeup covering message id has an outcome. */
static bool report(PGconn *conn, const char *wallet, const char *device, long long id, bool final)
{
    char id_text[24];
    snprintf(id_text, sizeof(id_text), "%lld", id);
    const char *params[] = {wallet, device, id_text};
    PGresult *res = PQexecParams(
        conn,
        "SELECT p.state, coalesce(p.last_error, ''), coalesce(p.fcm_message_name, ''),"
        " p.covered_id >= $3::bigint, d.token_status, coalesce(d.token_invalid_reason, '')"
        " FROM mpcpush.pushes p JOIN mpcpush.devices d USING (wallet_id, device_id)"
        " WHERE p.wallet_id = $1 AND p.device_id = $2",
        3, NULL, params, NULL, NULL, 0);
    bool decided = false;
    if (mp_db_check(conn, res, "send_test") == MP_OK && PQntuples(res) == 1) {
        const char *state = PQgetvalue(res, 0, 0);
        decided = PQgetvalue(res, 0, 3)[0] == 't' || strcmp(state, "retry") == 0;
        if (decided || final)
            printf("state=%s fcm_message=%s error=%s token_status=%s%s%s\n", state,
                   strcmp(state, "sent") == 0 ? PQgetvalue(res, 0, 2) : "-",
                   PQgetvalue(res, 0, 1)[0] ? PQgetvalue(res, 0, 1) : "-", PQgetvalue(res, 0, 4),
                   PQgetvalue(res, 0, 5)[0] ? " reason=" : "", PQgetvalue(res, 0, 5));
    } else if (final) {
        printf("state=not_queued (the device has no active token)\n");
    }
    PQclear(res);
    return decided;
}

int mp_send_test(const struct mp_config *cfg, const char *wallet, const char *device)
{
    struct mp_buf errors;
    mp_buf_init(&errors, 8192);
    struct mp_oauth *oauth = NULL;
    PGconn *conn = NULL;
    json_t *state = NULL;
    int status = 1;
    if (!cfg->google_credentials || mp_oauth_new(cfg->google_credentials, cfg->google_token_url,
                                                 cfg->ca_file, &oauth, &errors) != MP_OK) {
        fprintf(stderr, "%s", errors.data ? errors.data : "MPCPUSH_GOOGLE_CREDENTIALS: required\n");
    } else if (mp_db_connect(cfg->database_url, "send-test", &conn) != MP_OK) {
        fprintf(stderr, "mpcpush: cannot connect to the database\n");
    } else if (mp_devices_get(conn, wallet, device, &state) != MP_OK) {
        fprintf(stderr, "mpcpush: no device %s/%s is registered\n", wallet, device);
    } else if (strcmp(json_string_value(json_object_get(state, "tokenStatus")), "active") != 0) {
        printf("token_status=invalid reason=%s: the app must register a new token\n",
               json_string_value(json_object_get(state, "tokenInvalidReason")));
    } else {
        long long id = enqueue(cfg, wallet, device);
        if (id > 0) {
            printf("message=%lld\n", id);
            bool ours = push_now(cfg, conn, oauth, wallet, device);
            bool decided = report(conn, wallet, device, id, ours);
            for (int i = 0; !ours && !decided && i < WAIT_SECONDS * 10; i++) {
                usleep(100000); /* a running dispatcher has it: wait for its outcome */
                decided = report(conn, wallet, device, id, i == WAIT_SECONDS * 10 - 1);
            }
            status = ours || decided ? 0 : 1;
        }
    }
    json_decref(state);
    PQfinish(conn);
    mp_oauth_free(oauth);
    mp_buf_free(&errors);
    return status;
}
