/* Test support for the fault suite (tests/fault): a private PostgreSQL cluster that a test may
 * stop, start again and make read-only; a load generator that posts distinct signed webhooks over
 * many connections at once (curl multi) and keeps every answer; bulk checks of what the database
 * holds for those webhooks; devices and messages in bulk; and timestamps from log files. */
#ifndef MPCPUSH_TEST_FAULT_UTIL_H
#define MPCPUSH_TEST_FAULT_UTIL_H

#include "emulator_util.h"

#include <libpq-fe.h>

/* ---- a private PostgreSQL cluster (scripts/pg) ---- */

struct fu_cluster {
    char *dir;
    int port;  /* fixed, below the ephemeral range, so it can come back on the same one */
    char *url; /* its "postgres" database, migrated */
};

/* initdb + start on a stable free port, migrate; fails the test on error. */
void fu_cluster_start(struct fu_cluster *c);
/* Fast shutdown (scripts/pg stop). */
void fu_cluster_stop(struct fu_cluster *c);
/* Starts it again on the same port (a few attempts); fails the test when it does not come up. */
void fu_cluster_restart(struct fu_cluster *c);
/* Stops it and removes its directory; accepts a cluster never started. */
void fu_cluster_free(struct fu_cluster *c);

/* A cmocka fixture: a private cluster, its database migrated, an API key, nothing started
 * (struct eu_env first, so eu_* helpers take &env->e). The teardown stops every process like
 * eu_teardown, then the cluster. */
struct fu_env {
    struct eu_env e;
    struct fu_cluster pg;
};
int fu_setup_private(void **state);
int fu_teardown_private(void **state);

/* ---- SQL ---- */

/* Runs sql (printf-style) on url and returns the result (PQclear it); fails the test on error. */
PGresult *fu_query(const char *url, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- a webhook load generator ---- */

struct fu_hook {
    char *body;
    char *sig;         /* "Fireblocks-Signature: ..." */
    char dedupe[88];   /* the inbox dedupe key of the v1 event */
    long first_status; /* answer to the first attempt (0: no answer; -1: never tried) */
    long status;       /* answer to the last attempt */
    char code[48];     /* error.code of the last answer, "" when none */
    int tries;
    bool ok;          /* answered 200 at least once */
    long sent_at;     /* tx_now_ms() when the last attempt started */
    long answered_at; /* tx_now_ms() when the last attempt ended */
};

struct fu_load;

/* A generator posting to base + /webhooks/fireblocks over at most conns connections at once,
 * each webhook an NCW_DEVICE_MESSAGE (v1, signed with tx_keys()->v1a) for device
 * "<device_prefix><i % devices>" of wallet; rate: most new attempts per second (0: no limit). */
struct fu_load *fu_load_new(const char *base, int conns, int rate, const char *wallet,
                            const char *device_prefix, int devices);
/* Points the generator at another receiver (after a restart). */
void fu_load_target(struct fu_load *l, const char *base);
/* Drives for ms milliseconds: keeps conns requests in flight, first the requeued webhooks, then
 * (when fresh) new ones. Returns early when there is nothing to do. */
void fu_load_run(struct fu_load *l, int ms, bool fresh);
/* Queues again every webhook that has not been answered 200 (Fireblocks' retries). */
int fu_load_requeue(struct fu_load *l);
/* Drives the queued and in-flight webhooks until none is left or timeout_ms passed; returns
 * how many are left. */
int fu_load_settle(struct fu_load *l, int timeout_ms);
/* Retries every webhook not yet answered 200 until all are, or timeout_ms passed; returns how
 * many never got a 200. */
int fu_load_retry_all(struct fu_load *l, int timeout_ms);
int fu_load_count(const struct fu_load *l);
/* Requests in flight right now. */
int fu_load_in_flight(const struct fu_load *l);
const struct fu_hook *fu_load_hook(const struct fu_load *l, int i);
/* Answers tallied over the last attempts: 200s, 503 storage_unavailable, no answer, other. */
struct fu_tally {
    int ok, unavailable, none, other;
    long other_status;
    char other_code[48];
};
void fu_load_tally(const struct fu_load *l, struct fu_tally *t);
void fu_load_free(struct fu_load *l);

/* What the database holds for the webhooks of l. */
struct fu_stored {
    int answered_ok;         /* webhooks answered 200 */
    int ok_missing;          /* ... of which not in webhook_events */
    int ok_bad_messages;     /* ... of which stored without exactly one message row */
    int stored;              /* webhooks in webhook_events (answered or not) */
    int stored_unanswered;   /* stored but never answered 200 (committed, answer lost) */
    int bad_messages;        /* stored webhooks without exactly one matching message row */
    long events;             /* rows in webhook_events */
    long foreign_events;     /* rows that match no webhook of l */
    long duplicate_payloads; /* messages rows minus distinct (wallet, device, payload) */
    char first_problem[256];
};
void fu_load_stored(const struct fu_load *l, const char *db, struct fu_stored *s);

/* ---- devices and messages in bulk (100 requests at a time) ---- */

/* Registers devices "<prefix><i>" of wallet for i in [from, to) with tokens eu_token(tag, i). */
void fu_register(const struct tx_env *t, const char *wallet, const char *prefix, const char *tag,
                 int from, int to);
/* Enqueues one API message for each of those devices; asserts 201. */
void fu_enqueue(const struct tx_env *t, const char *wallet, const char *prefix, int from, int to);

/* Emulator records for the tokens eu_token(tag, 0 .. n-1): counts[i] per token and the largest
 * data.latestId per token in latest[i] (may be NULL). Returns the total. */
size_t fu_records(const struct eu_emulator *e, const char *tag, int n, int *counts,
                  long long *latest);

/* ---- logs and processes ---- */

/* Milliseconds since the epoch of a log line's "ts=YYYY-MM-DDTHH:MM:SS.mmmZ", -1 without one. */
long long fu_line_ms(const char *line);
/* Calls fn for every line of path that contains needle. */
void fu_log_lines(const char *path, const char *needle, void (*fn)(const char *line, void *arg),
                  void *arg);
/* Prints (to stderr) up to max lines of path containing needle; returns how many matched. */
int fu_log_show(const char *path, const char *needle, int max);
/* True while pid has not exited (reaps it when it has). */
bool fu_alive(pid_t pid);

/* GET base + path: the status (0: no answer), the body's error.code (or status member) in code. */
long fu_get(const char *base, const char *path, const char *auth, char *code, size_t size);

#endif
