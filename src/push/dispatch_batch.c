/* The rules of one batch: what is sent, and what each FCM answer does to the push queue.
 *   ok                                   -> sent: the wakeup covered what was pending
 *   unregistered, sender_id_mismatch,
 *   invalid_token                        -> the token is dead: invalidate it, stop pushing
 *   invalid_argument                     -> our message was refused: record it, do not resend
 *   unauthenticated                      -> refresh the access token, resend once at once
 *   quota_exceeded                       -> pause the whole project (Retry-After, else 60 s,
 *                                           doubling while it repeats), retry after the pause
 *   unavailable, internal, network       -> exponential backoff with jitter, Retry-After wins
 *   third_party_auth, permission_denied  -> the project is misconfigured: alarm, retry slowly
 * Messages past their expiry are never pushed: a claim finds nothing pending and skips. */
#include <stdlib.h>
#include <string.h>

#include "mpcpush/log.h"
#include "mpcpush/metrics.h"
#include "mpcpush/oauth.h"
#include "push/dispatch-int.h"

/* A misconfigured project is retried no faster than this. */
#define CONFIG_ERROR_RETRY_MS 60000LL
/* Without an access token nothing can be sent; try again after this. */
#define NO_TOKEN_RETRY_MS 5000LL

long long mp_dispatch_backoff_ms(const struct mp_config *cfg, int attempts, int retry_after,
                                 unsigned *seed)
{
    long long cap = (long long)cfg->retry_max_seconds * 1000LL;
    long long delay = cfg->retry_base_ms;
    for (int i = 0; i < attempts && delay < cap; i++)
        delay *= 2;
    if (delay > cap)
        delay = cap;
    /* "Equal jitter": between half and all of the delay, so retries spread out but never
     * collapse to zero. */
    delay = delay / 2 + (long long)(rand_r(seed) % (unsigned)(delay / 2 + 1));
    if (retry_after >= 0 && delay < retry_after * 1000LL)
        delay = retry_after * 1000LL;
    return delay;
}

static bool sendable(const struct mp_push *p)
{
    return p->fcm_token && p->token_active && p->platform && p->pending > 0;
}

static void verdict(struct mp_push_outcome *o, const struct mp_push *p, enum mp_push_verdict v,
                    const char *outcome, const char *detail)
{
    o->push = p;
    o->verdict = v;
    o->outcome = outcome;
    o->detail = detail;
}

/* Builds the request bodies of the sendable pushes; the others get their verdict here.
 * Returns how many requests were built; index[k] is the push of request k. */
static int build(struct mp_dispatch_ctx *ctx, const struct mp_push *pushes, int n,
                 struct mp_buf *bodies, int *index, struct mp_push_outcome *outcomes)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        const struct mp_push *p = &pushes[i];
        if (!sendable(p)) {
            verdict(&outcomes[i], p, MP_PUSH_SKIPPED,
                    p->pending > 0 ? "no_token" : "nothing_pending", NULL);
            continue;
        }
        struct mp_wakeup w = {
            .token = p->fcm_token,
            .platform = p->platform,
            .wallet_id = p->wallet_id,
            .device_id = p->device_id,
            .pending = p->pending,
            .latest_id = p->latest_id,
            .ttl_seconds = p->ttl_seconds,
            .alert_title = ctx->cfg->ios_alert_title,
            .alert_body = ctx->cfg->ios_alert_body,
        };
        mp_buf_init(&bodies[k], 64 * 1024);
        enum mp_result result = mp_fcm_build_wakeup(&w, &bodies[k]);
        if (result) {
            verdict(&outcomes[i], p, MP_PUSH_FAILED, "build_failed", mp_strerror(result));
            mp_buf_free(&bodies[k]);
            continue;
        }
        index[k++] = i;
    }
    return k;
}

/* Sends the k requests; resends once, with a fresh access token, those refused as
 * unauthenticated. Returns false (token unavailable) when nothing could be sent. */
static bool send_all(struct mp_dispatch_ctx *ctx, const struct mp_buf *bodies, int k,
                     struct mp_fcm_result *results)
{
    char token[MP_OAUTH_TOKEN_MAX];
    struct mp_fcm_request *reqs = calloc((size_t)k, sizeof(*reqs));
    struct mp_fcm_result *again = calloc((size_t)k, sizeof(*again));
    int *retry = calloc((size_t)k, sizeof(*retry));
    bool ok = reqs && again && retry && mp_oauth_token(ctx->oauth, token, sizeof(token)) == MP_OK;
    for (int i = 0; ok && i < k; i++)
        reqs[i] = (struct mp_fcm_request){bodies[i].data, bodies[i].len};
    ok = ok && mp_fcm_send_batch(ctx->fcm, token, reqs, (size_t)k, results) == MP_OK;
    int m = 0;
    for (int i = 0; ok && i < k; i++)
        if (results[i].outcome == MP_FCM_UNAUTHENTICATED) {
            reqs[m] = reqs[i];
            retry[m++] = i;
        }
    if (ok && m > 0) {
        MP_INFO("fcm_token_refused", "count=%d detail=\"refreshing the access token\"", m);
        mp_oauth_invalidate(ctx->oauth, token);
        if (mp_oauth_token(ctx->oauth, token, sizeof(token)) == MP_OK &&
            mp_fcm_send_batch(ctx->fcm, token, reqs, (size_t)m, again) == MP_OK)
            for (int j = 0; j < m; j++)
                results[retry[j]] = again[j];
    }
    memset(token, 0, sizeof(token));
    free(reqs);
    free(again);
    free(retry);
    return ok;
}

/* The project pause for this batch's quota errors, in ms (0 when there were none). */
static long long quota_pause_ms(struct mp_dispatch_ctx *ctx, const struct mp_fcm_result *results,
                                int k)
{
    int retry_after = -1;
    bool any = false;
    for (int i = 0; i < k; i++)
        if (results[i].outcome == MP_FCM_QUOTA_EXCEEDED) {
            any = true;
            if (results[i].retry_after > retry_after)
                retry_after = results[i].retry_after;
        }
    if (!any)
        return 0;
    if (retry_after == 0) /* "now", while over quota: the pause would end before it began */
        retry_after = 1;
    long long ms = (retry_after >= 0 ? retry_after : 60) * 1000LL;
    if (mp_pushes_pause(ctx->conn, ctx->project, "QUOTA_EXCEEDED", retry_after,
                        ctx->cfg->retry_max_seconds, &ms) != MP_OK)
        mp_metrics_db_error(ctx->metrics, "dispatcher");
    *ctx->quota_paused = true;
    MP_WARN("fcm_quota_exceeded", "project=%s pause_ms=%lld", ctx->project, ms);
    return ms;
}

static void judge(struct mp_dispatch_ctx *ctx, const struct mp_push *p,
                  const struct mp_fcm_result *r, long long pause_ms, struct mp_push_outcome *o)
{
    const char *name = mp_fcm_outcome_name(r->outcome);
    verdict(o, p, MP_PUSH_RETRY, name, r->detail);
    if (r->outcome == MP_FCM_OK) {
        o->verdict = MP_PUSH_SENT;
        o->name = r->name;
        o->detail = NULL;
    } else if (mp_fcm_outcome_is_token_dead(r->outcome)) {
        char redacted[32];
        o->verdict = MP_PUSH_TOKEN_DEAD;
        MP_WARN("fcm_token_dead", "wallet=%s device=%s token=%s outcome=%s", p->wallet_id,
                p->device_id, mp_log_redact(redacted, sizeof(redacted), p->fcm_token), name);
    } else if (r->outcome == MP_FCM_QUOTA_EXCEEDED) {
        o->delay_ms = pause_ms;
    } else if (mp_fcm_outcome_is_config_error(r->outcome)) {
        o->delay_ms = mp_dispatch_backoff_ms(ctx->cfg, p->attempts, -1, ctx->seed);
        if (o->delay_ms < CONFIG_ERROR_RETRY_MS)
            o->delay_ms = CONFIG_ERROR_RETRY_MS;
    } else if (mp_fcm_outcome_is_retryable(r->outcome)) {
        o->delay_ms = mp_dispatch_backoff_ms(ctx->cfg, p->attempts, r->retry_after, ctx->seed);
    } else {
        o->verdict = MP_PUSH_FAILED;
    }
    mp_metrics_push(ctx->metrics, name);
    if (r->seconds > 0)
        mp_metrics_fcm_latency(ctx->metrics, r->seconds);
}

/* Raises one alarm per batch for a project-level problem. */
static void alarm_config_errors(struct mp_dispatch_ctx *ctx, const struct mp_fcm_result *results,
                                int k)
{
    for (int i = 0; i < k; i++)
        if (mp_fcm_outcome_is_config_error(results[i].outcome)) {
            char detail[300];
            MP_ERROR("fcm_project_misconfigured", "project=%s outcome=%s detail=%s", ctx->project,
                     mp_fcm_outcome_name(results[i].outcome),
                     mp_log_quote(detail, sizeof(detail), results[i].detail));
            return;
        }
}

void mp_dispatch_batch(struct mp_dispatch_ctx *ctx, const struct mp_push *pushes, int n,
                       struct mp_fcm_result *results, struct mp_push_outcome *outcomes)
{
    struct mp_buf *bodies = calloc((size_t)n, sizeof(*bodies));
    int *index = calloc((size_t)n, sizeof(*index));
    if (!bodies || !index) {
        for (int i = 0; i < n; i++) {
            verdict(&outcomes[i], &pushes[i], MP_PUSH_RETRY, "out_of_memory", NULL);
            outcomes[i].delay_ms = NO_TOKEN_RETRY_MS;
        }
    }
    int k = bodies && index ? build(ctx, pushes, n, bodies, index, outcomes) : 0;
    bool sent = k > 0 && send_all(ctx, bodies, k, results);
    if (k > 0 && !sent) {
        for (int j = 0; j < k; j++) {
            verdict(&outcomes[index[j]], &pushes[index[j]], MP_PUSH_RETRY, "oauth_unavailable",
                    "no access token");
            outcomes[index[j]].delay_ms = NO_TOKEN_RETRY_MS;
        }
    } else if (sent) {
        long long pause_ms = quota_pause_ms(ctx, results, k);
        alarm_config_errors(ctx, results, k);
        for (int j = 0; j < k; j++)
            judge(ctx, &pushes[index[j]], &results[j], pause_ms, &outcomes[index[j]]);
        if (pause_ms == 0 && *ctx->quota_paused &&
            mp_pushes_unpause(ctx->conn, ctx->project) == MP_OK)
            *ctx->quota_paused = false;
    }
    for (int j = 0; bodies && j < k; j++)
        mp_buf_free(&bodies[j]);
    free(bodies);
    free(index);
}
