/* FCM HTTP v1: the wakeup message a device receives, the classification of FCM's answers, and
 * a client that sends many messages at once over multiplexed HTTP/2 connections.
 *
 * The dispatcher builds one body per device with mp_fcm_build_wakeup, sends a batch with
 * mp_fcm_send_batch, and acts on each result's outcome:
 *   mp_fcm_outcome_is_token_dead     -> mark the device's token invalid, stop pushing to it;
 *   MP_FCM_UNAUTHENTICATED           -> mp_oauth_invalidate(token), resend once;
 *   mp_fcm_outcome_is_retryable      -> back off (retry_after when >= 0) and resend later;
 *   mp_fcm_outcome_is_config_error   -> the project is misconfigured: keep the messages
 *                                       pending, log loudly, retry slowly;
 *   anything else                    -> the message is bad: record the error, do not resend. */
#ifndef MPCPUSH_FCM_H
#define MPCPUSH_FCM_H

#include <stdbool.h>
#include <stddef.h>

#include "mpcpush/buf.h"
#include "mpcpush/result.h"

/* ---- outcomes ---- */

enum mp_fcm_outcome {
    MP_FCM_OK,
    MP_FCM_UNREGISTERED,       /* the token is dead (app uninstalled, token expired) */
    MP_FCM_SENDER_ID_MISMATCH, /* the token belongs to another Firebase project */
    MP_FCM_INVALID_TOKEN,      /* 400 INVALID_ARGUMENT that names the registration token */
    MP_FCM_INVALID_ARGUMENT,   /* 400 about the message itself: do not resend it unchanged */
    MP_FCM_QUOTA_EXCEEDED,     /* 429: honour retry_after (default 60 s) */
    MP_FCM_UNAVAILABLE,        /* 503 and other 5xx: back off with jitter */
    MP_FCM_INTERNAL,           /* 500: back off with jitter */
    MP_FCM_THIRD_PARTY_AUTH,   /* the project's APNs / web push credentials are broken */
    MP_FCM_UNAUTHENTICATED,    /* our access token was refused: refresh it and resend once */
    MP_FCM_PERMISSION_DENIED,  /* the service account lacks cloudmessaging.messages.create */
    MP_FCM_NETWORK,            /* no HTTP answer: reset, GOAWAY, timeout, DNS, TLS */
    MP_FCM_UNKNOWN,            /* an answer that fits none of the above */
};

#define MP_FCM_OUTCOME_COUNT (MP_FCM_UNKNOWN + 1)

struct mp_fcm_result {
    enum mp_fcm_outcome outcome;
    long http_status; /* 0 when there was no HTTP answer */
    int retry_after;  /* seconds from Retry-After, -1 when absent or unparsable */
    char name[256];   /* the message name on success, else "" */
    char detail[256]; /* error status, code and message for logs and the DB; never the token */
    double seconds;   /* wall time from the first attempt to the final answer (send_batch) */
    int attempts;     /* HTTP attempts made: 1, or 2 after a network failure (send_batch) */
};

/* A stable lower-case slug for the DB and metrics labels: "ok", "unregistered",
 * "sender_id_mismatch", "invalid_token", "invalid_argument", "quota_exceeded", "unavailable",
 * "internal", "third_party_auth", "unauthenticated", "permission_denied", "network",
 * "unknown". */
const char *mp_fcm_outcome_name(enum mp_fcm_outcome outcome);

/* UNREGISTERED, SENDER_ID_MISMATCH, INVALID_TOKEN: the token will never work again. */
bool mp_fcm_outcome_is_token_dead(enum mp_fcm_outcome outcome);

/* QUOTA_EXCEEDED, UNAVAILABLE, INTERNAL, UNAUTHENTICATED, NETWORK, UNKNOWN: sending the same
 * message later may succeed. */
bool mp_fcm_outcome_is_retryable(enum mp_fcm_outcome outcome);

/* THIRD_PARTY_AUTH, PERMISSION_DENIED: the Firebase project or service account needs fixing;
 * no device is at fault and every message will fail the same way until then. */
bool mp_fcm_outcome_is_config_error(enum mp_fcm_outcome outcome);

/* Classifies one FCM answer. body (len bytes, need not be NUL-terminated) may be NULL;
 * retry_after_header is the Retry-After value or NULL. Pure apart from reading the clock for
 * an HTTP-date Retry-After. Fills every field of *out except seconds and attempts (zeroed). */
void mp_fcm_classify(long http_status, const char *body, size_t len, const char *retry_after_header,
                     struct mp_fcm_result *out);

/* ---- the wakeup message ---- */

#define MP_FCM_PAYLOAD_MAX 4096      /* FCM's limit on a message, not counting the token */
#define MP_FCM_TTL_MAX     2419200   /* 28 days */
#define MP_FCM_COLLAPSE    "mpcpush" /* collapse_key / apns-collapse-id */

struct mp_wakeup {
    const char *token;    /* FCM registration token */
    const char *platform; /* "android", "ios" or "web" */
    const char *wallet_id;
    const char *device_id;
    long long pending;     /* messages waiting */
    long long latest_id;   /* id of the newest pending message */
    long long ttl_seconds; /* time left until the newest pending message expires; clamped to
                              0 .. MP_FCM_TTL_MAX */
    const char *alert_title, *alert_body; /* iOS: a visible alert instead of a background push
                                             when both are set (non-empty) */
    bool validate_only;                   /* ask FCM to validate without delivering */
    long long now_unix;                   /* clock for apns-expiration; 0: the current time */
};

/* Writes the request body of messages:send for w into out, replacing what it held:
 * {"message":{"token":..,"data":{"type":"mpcpush.wakeup","walletId":..,"deviceId":..,
 * "pending":"<n>","latestId":"<id>"}, <platform block>}} plus "validate_only":true when set.
 * MP_ERR_INVALID for a bad token, platform or id, MP_ERR_TOO_LARGE when the message without
 * its token would exceed MP_FCM_PAYLOAD_MAX (only a huge configured alert can do that). */
enum mp_result mp_fcm_build_wakeup(const struct mp_wakeup *w, struct mp_buf *out) MP_MUSTCHECK;

/* ---- the client ---- */

struct mp_fcm_request {
    const char *body; /* from mp_fcm_build_wakeup; must stay valid during the call */
    size_t len;
};

struct mp_fcm_client;

/* A client for <base_url>/v1/projects/<project_id>/messages:send over HTTP/2 (nghttp2 and
 * OpenSSL, no libcurl). base_url is https:// (TLS 1.2+, SNI, the certificate checked against the
 * host name and the system's roots plus ca_file when not NULL, ALPN "h2" required: a server
 * that does not select it fails the connection) or http:// to a loopback host, which speaks
 * h2c with prior knowledge (for tests and local development; HTTP/1.1 is not spoken).
 * connections (1..64) persistent connections are kept across batches and reopened when they
 * close, each carrying up to min(100, the server's SETTINGS_MAX_CONCURRENT_STREAMS) requests;
 * timeout_seconds (>= 1) bounds each attempt (and each connect, TLS handshake included).
 * MP_ERR_INVALID for bad arguments, MP_ERR_CRYPTO when ca_file cannot be loaded. The caller
 * owns *out (mp_fcm_client_free). One thread at a time may use a client. */
enum mp_result mp_fcm_client_new(const char *base_url, const char *project_id, const char *ca_file,
                                 int connections, int timeout_seconds,
                                 struct mp_fcm_client **out) MP_MUSTCHECK;

/* Sends the n requests concurrently with access_token and blocks until every one has a result
 * (results[i] for reqs[i]); the requests are spread over the connections, and those beyond
 * their streams wait for one to free up. A request that got no HTTP answer (connect or TLS
 * failure, stream reset, GOAWAY above its stream, timeout, dropped connection) is retried once
 * on new connections; if that fails too its outcome is MP_FCM_NETWORK, with the reason in
 * detail. Answer bodies are read up to 64 kB. The token is sent never-indexed (HPACK) and
 * never logged. Returns MP_OK when every request has a result (whatever its outcome),
 * MP_ERR_INVALID for bad arguments, MP_ERR_NOMEM or MP_ERR_INTERNAL when the batch could not
 * be run (then no result is meaningful). */
enum mp_result mp_fcm_send_batch(struct mp_fcm_client *c, const char *access_token,
                                 const struct mp_fcm_request *reqs, size_t n,
                                 struct mp_fcm_result *results) MP_MUSTCHECK;

/* Closes the connections and frees the client. Accepts NULL. */
void mp_fcm_client_free(struct mp_fcm_client *c);

#endif
