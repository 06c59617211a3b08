/* Test support for the integration tests: a receiver with its own database, Fireblocks keys and
 * an API key (struct tx_env, usable as a cmocka per-test state); formatted SQL; requests with
 * response headers; many requests at once (curl multi); raw sockets for what libcurl will not
 * send; and programs run with both output streams captured. */
#ifndef MPCPUSH_TEST_HARNESS_EXTRA_H
#define MPCPUSH_TEST_HARNESS_EXTRA_H

#include "harness.h"

/* ---- Fireblocks keys, made once per test program ---- */

struct tx_keys {
    EVP_PKEY *v1a, *v1b;   /* listed in MPCPUSH_FIREBLOCKS_PUBKEYS (b: the rotated second key) */
    EVP_PKEY *jwk1, *jwk2; /* in the JWKS file as kid-1 and kid-2 */
    EVP_PKEY *stranger;    /* configured nowhere */
    char pubkeys[600];     /* value for MPCPUSH_FIREBLOCKS_PUBKEYS */
    char pem_a[256];       /* the first PEM file alone */
    char jwks[256];        /* value for MPCPUSH_FIREBLOCKS_JWKS */
};
const struct tx_keys *tx_keys(void);

/* "Fireblocks-Signature: ..." / "Fireblocks-Webhook-Signature: ..." header lines (caller frees). */
char *tx_hdr_v1(EVP_PKEY *key, const char *body);
char *tx_hdr_v2(EVP_PKEY *key, const char *kid, const char *body);

/* ---- a receiver with its own database ---- */

enum tx_flags { TX_NO_PUBKEYS = 1, TX_NO_JWKS = 2 };

struct tx_env {
    char *db; /* migrated database URL */
    char *apikey;
    char auth[256]; /* "Authorization: Bearer <apikey>" */
    struct th_proc proc;
    bool running;
};

/* cmocka setups: a database and API key, plus a receiver with both v1 keys and the JWKS
 * (tx_setup) or none yet (tx_setup_db: the test calls tx_start). tx_teardown stops the receiver
 * with SIGTERM and fails when it does not exit 0. */
int tx_setup(void **state);
int tx_setup_db(void **state);
int tx_teardown(void **state);

/* Starts the receiver of e with the Fireblocks keys (unless flags say otherwise) and extra
 * "KEY=VALUE" strings (NULL-terminated, may be NULL). */
void tx_start(struct tx_env *e, unsigned flags, const char *const *extra);
/* Stops it with SIGTERM; returns the exit status. */
int tx_stop(struct tx_env *e);

/* ---- requests ---- */

/* An API request: Authorization from e, Content-Type application/json when body is given. */
void tx_api(struct th_response *r, const struct tx_env *e, const char *method, const char *path,
            const char *body);
/* POST /webhooks/fireblocks with Content-Type application/json and the given header lines
 * (NULL-terminated, may be NULL). */
void tx_webhook(struct th_response *r, const struct tx_env *e, const char *body,
                const char *const *headers);
/* A webhook signed with the first v1 key. */
void tx_webhook_v1(struct th_response *r, const struct tx_env *e, const char *body);

/* Like th_http_try, also collecting the response header block into hdrs (may be NULL). */
bool tx_http_hdrs(struct th_response *resp, char *hdrs, size_t hsize, const char *method,
                  const char *url, const char *const *headers, const char *body, size_t len);

/* Asserts an error answer: status, the error.code slug, a message string and a JSON content
 * type. what names the request in failure messages. */
#define tx_assert_error(resp, st, code) tx_assert_error_at((resp), (st), (code), __FILE__, __LINE__)
void tx_assert_error_at(const struct th_response *resp, long status, const char *code,
                        const char *file, int line);
/* Asserts the status, printing the body when it differs. */
#define tx_assert_status(resp, st) tx_assert_status_at((resp), (st), __FILE__, __LINE__)
void tx_assert_status_at(const struct th_response *resp, long status, const char *file, int line);

/* ---- many requests at once ---- */

struct tx_call {
    const char *method;
    char url[256];
    const char *headers[8]; /* NULL-terminated */
    const char *body;
    size_t len;
    long status; /* 0: no answer */
    char *resp;
    json_t *json;
};
/* Performs all calls concurrently, each on its own connection. */
void tx_http_parallel(struct tx_call *calls, int n);
void tx_calls_free(struct tx_call *calls, int n);

/* ---- SQL ---- */

long tx_sql_longf(const char *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Waits (up to 5 s) until exactly one session of the cluster waits for a lock of this type
 * ("advisory", "transactionid", ...); fails otherwise. */
void tx_wait_lock_waiter(const char *db, const char *locktype);
char *tx_sql_textf(const char *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tx_sql_execf(const char *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 'text' as an SQL literal, quotes doubled (caller frees). */
char *tx_lit(const char *text);

/* Row counts of the tables a request may write. */
struct tx_counts {
    long events, messages, devices, pushes;
};
void tx_counts(const char *db, struct tx_counts *c);
#define tx_assert_counts(db, before) tx_assert_counts_at((db), (before), __FILE__, __LINE__)
void tx_assert_counts_at(const char *db, const struct tx_counts *before, const char *file,
                         int line);

/* Asserts that two JSON texts are equal as JSON values. */
void tx_assert_json_eq(const char *got, const char *want);

/* Asserts an ISO-8601 UTC timestamp string ("...Z" or "+00:00"). */
void tx_assert_iso_utc(const char *text);

/* ---- raw sockets ---- */

int tx_connect(int port);
bool tx_send(int fd, const void *data, size_t len);
/* Waits for a response head: returns its status code, 0 when the peer closed without one, -1
 * on timeout. buf (may be NULL) receives what was read. */
int tx_read_status(int fd, int timeout_ms, char *buf, size_t size);
/* True when the peer closes (or resets) the connection within timeout_ms. */
bool tx_wait_closed(int fd, int timeout_ms);

/* ---- programs ---- */

/* Runs mpcpush with argv (NULL-terminated, no argv[0]) and exactly the MPCPUSH_* variables of
 * env (may be NULL); captures stdout and stderr. Returns the exit status. */
int tx_run(const char *const *env, const char *const *argv, char *out, size_t out_size, char *err,
           size_t err_size);
/* Starts the same without waiting; tx_wait returns the exit status. */
pid_t tx_spawn(const char *const *env, const char *const *argv);
int tx_wait(pid_t pid);

/* Runs a shell command line; returns its exit status and its stdout in out (may be NULL). */
int tx_shell(const char *cmd, char *out, size_t size);

/* Milliseconds of a monotonic clock. */
long tx_now_ms(void);

#endif
