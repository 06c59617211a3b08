/* Test support for the dispatcher tests: the FCM emulator (the shared fixture instance, or a
 * private one for tests that script faults, reset it or need special flags), what it recorded
 * and counted, and mpcpush processes configured to push through it with small test timings.
 *
 * The fixture emulator is shared by tests running in parallel: use it only to read, and only
 * the records of your own (unique) registration tokens. */
#ifndef MPCPUSH_TEST_EMULATOR_UTIL_H
#define MPCPUSH_TEST_EMULATOR_UTIL_H

#include "pickup_util.h"

struct eu_emulator {
    bool own;      /* started by us (eu_start): eu_stop ends it and removes dir */
    pid_t pid;     /* own only */
    char dir[256]; /* state directory: ca.pem, service-account.json, ports, messages.jsonl */
    int tls, plain;
    char ctl[64];        /* http://127.0.0.1:PLAIN, for /emulator/... */
    char fcm_url[64];    /* https://127.0.0.1:TLS */
    char env_creds[320]; /* MPCPUSH_GOOGLE_CREDENTIALS=... */
    char env_url[96];    /* MPCPUSH_FCM_URL=... */
    char env_ca[320];    /* MPCPUSH_CA_FILE=... */
};

/* The fixture emulator of $MPCPUSH_TEST_DIR/emulator (read only!). */
void eu_shared(struct eu_emulator *e);
/* Starts a private emulator ($MPCPUSH_EMULATOR_BIN) with extra arguments (NULL-terminated, may
 * be NULL) in a fresh directory and waits for its ports file. */
void eu_start(struct eu_emulator *e, const char *const *args);
/* Stops a private emulator (SIGTERM) and removes its directory; nothing for the shared one. */
void eu_stop(struct eu_emulator *e);

/* ---- control plane ---- */

/* A control request (/emulator/...; body may be NULL); asserts 200, returns the JSON answer
 * (decref; NULL when it is not JSON). */
json_t *eu_control(const struct eu_emulator *e, const char *method, const char *path,
                   const char *body);
/* GET /emulator/stats (decref). */
json_t *eu_stats(const struct eu_emulator *e);
/* A top-level counter of the stats ("token_requests", "send_requests", "accepted", ...). */
long eu_stat(const struct eu_emulator *e, const char *name);
/* by_error[error] ("UNAVAILABLE", "DROP", ...). */
long eu_errors(const struct eu_emulator *e, const char *error);
/* POST /emulator/faults: replaces the rules (append: adds to them); asserts 200. */
void eu_faults(const struct eu_emulator *e, const char *rules_json, bool append);
/* DELETE /emulator/faults: removes every rule. */
void eu_faults_clear(const struct eu_emulator *e);

/* ---- records ---- */

/* The accepted messages for token (NULL: all of them), oldest first, as a JSON array of
 * {"at":<unix ms>,"name":..,"token":..,"message":{...}} (decref). */
json_t *eu_records(const struct eu_emulator *e, const char *token);
/* The accepted messages whose token starts with prefix (decref). */
json_t *eu_records_prefix(const struct eu_emulator *e, const char *prefix);
/* Polls until token has at least n records or timeout_ms passed; returns the count. */
size_t eu_wait_records(const struct eu_emulator *e, const char *token, size_t n, int timeout_ms);
/* The data member key of record r's message ("" when absent). */
const char *eu_data(const json_t *record, const char *key);
/* Milliseconds since the epoch (the clock of the records' "at"). */
long long eu_unix_ms(void);

/* ---- devices and processes ---- */

/* A registration token unique to this test process: "eu<pid>-<tag>-<i>-APA91b..." */
void eu_token(char *out, size_t size, const char *tag, int i);
/* PUT /v1/wallets/{w}/devices/{d} with token and platform; asserts 200 or 201. */
void eu_register(const struct tx_env *t, const char *wallet, const char *device, const char *token,
                 const char *platform);

/* Starts `mpcpush <command>` on db pushing through e: Google credentials, FCM URL and CA of e,
 * the Fireblocks keys of tx_keys(), MPCPUSH_RETRY_BASE_MS=200, MPCPUSH_RETRY_MAX=5,
 * MPCPUSH_LEASE_SECONDS=5, MPCPUSH_POLL_INTERVAL_MS=100, MPCPUSH_FCM_TIMEOUT=2, plus extra
 * "KEY=VALUE" strings (NULL-terminated, may be NULL), which win over these defaults. */
void eu_proc_start(struct th_proc *p, const char *command, const char *db,
                   const struct eu_emulator *e, const char *const *extra);
/* The same as the receiver role of t (t->proc, t->running): command "run" or "receiver". */
void eu_start_mpcpush(struct tx_env *t, const char *command, const struct eu_emulator *e,
                      const char *const *extra);

/* ---- a cmocka fixture ---- */

#define EU_PROCS 4

struct eu_env {
    struct tx_env t;                /* database, API key, the receiver or `run` process */
    struct eu_emulator emu;         /* the test picks: eu_shared(&emu) or eu_start(&emu, args) */
    struct th_proc procs[EU_PROCS]; /* more processes (dispatchers), stopped by the teardown */
};

/* cmocka setup: a migrated database and an API key, nothing started. */
int eu_setup(void **state);
/* cmocka teardown: SIGTERM to every process still running (each must exit 0), stops a
 * private emulator, frees the state. */
int eu_teardown(void **state);

/* Polls the first column of the SQL (printf-style) until it equals want or timeout_ms passed;
 * returns the last value. */
long eu_wait_sql(const char *db, long want, int timeout_ms, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
