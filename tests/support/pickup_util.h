/* Test support for the offline pick-up tests (pickup, longpoll, prune, views): devices and
 * messages through the API, pages of pending messages, many long-polls held open at once from
 * one process (curl multi, driven in slices so the test can look at the server meanwhile), and
 * what a user can see of a running process (threads, database sessions, metrics, its log). */
#ifndef MPCPUSH_TEST_PICKUP_UTIL_H
#define MPCPUSH_TEST_PICKUP_UTIL_H

#include "harness_extra.h"

/* ---- devices and messages through the API (each asserts the documented success) ---- */

/* PUT /v1/wallets/{w}/devices/{d} with a token derived from the ids; 200 or 201. */
void pu_register(const struct tx_env *e, const char *wallet, const char *device);

/* POST /v1/wallets/{w}/devices/{d}/messages {"payload":payload,"ttlSeconds":ttl} (ttl 0: left
 * out); asserts 201 with an id and an expiresAt. Returns the id (caller frees). */
char *pu_enqueue(const struct tx_env *e, const char *wallet, const char *device,
                 const char *payload, int ttl);

/* GET .../messages?query (query may be "" or NULL); asserts 200 and the answer's shape
 * ({"messages":[...],"next":...} with every message complete). Returns the body (decref). */
json_t *pu_fetch(const struct tx_env *e, const char *wallet, const char *device, const char *query);

/* The number of messages of a page, and the id (string) of message i. */
size_t pu_count(const json_t *page);
const char *pu_id(const json_t *page, size_t i);
/* The "next" member as a string, or NULL when it is null. */
const char *pu_next(const json_t *page);

/* POST .../messages/ack with body; asserts 200 and returns "acknowledged". */
long pu_ack(const struct tx_env *e, const char *wallet, const char *device, const char *body);

/* An NCW_DEVICE_MESSAGE webhook (v1, signed with tx_keys()->v1a) carrying message (JSON text)
 * to the receiver at base; asserts 200. Each call makes a distinct body (own timestamp). */
void pu_webhook_message(const char *base, const char *wallet, const char *device,
                        const char *message);

/* Numeric value of id text (for ordering checks). */
long long pu_num(const char *id);

/* ---- many requests held open at once ---- */

struct pu_multi;
struct pu_multi *pu_multi_new(void);
/* Starts a request (method, base + path, the API key of e, body JSON or NULL); returns its
 * index. The transfer progresses only inside pu_multi_run. */
int pu_multi_add(struct pu_multi *m, const struct tx_env *e, const char *base, const char *method,
                 const char *path, const char *body);
/* The same with a full URL and exactly the given header lines (NULL-terminated, may be NULL). */
int pu_multi_add_raw(struct pu_multi *m, const char *url, const char *method,
                     const char *const *headers, const char *body);
/* Drives every transfer for up to ms milliseconds, returning early when none is left. */
void pu_multi_run(struct pu_multi *m, int ms);
/* Drives until the requests [from, to) are all finished or timeout_ms passed; returns how many
 * of them finished. */
int pu_multi_wait(struct pu_multi *m, int from, int to, int timeout_ms);
int pu_multi_count(const struct pu_multi *m);
int pu_multi_finished(const struct pu_multi *m); /* over all requests */
bool pu_multi_done(const struct pu_multi *m, int i);
long pu_multi_status(const struct pu_multi *m, int i);  /* 0: no answer (yet) */
json_t *pu_multi_json(const struct pu_multi *m, int i); /* borrowed; NULL when none */
const char *pu_multi_body(const struct pu_multi *m, int i);
long pu_multi_done_at(const struct pu_multi *m, int i); /* tx_now_ms() at completion */
void pu_multi_free(struct pu_multi *m);

/* ---- what a user can see of a process ---- */

/* Raises this process's open-file limit to at least want (up to the hard limit). */
void pu_raise_fd_limit(long want);
/* Threads: from /proc/PID/status. */
long pu_proc_threads(pid_t pid);
/* Sessions connected to the database of db (pg_stat_activity). */
long pu_db_sessions(const char *db);
/* The value of an unlabelled metric in GET base/metrics, -1 when absent. */
double pu_metric(const char *base, const char *name);
/* Lines of the file at path containing needle. */
int pu_log_count(const char *path, const char *needle);
/* Waits up to 5 s for a line containing needle in the file at path; fails the test without. */
void pu_wait_log(const char *path, const char *needle);
/* Waits up to timeout_ms for pid to exit; returns its exit status (128+signal when killed),
 * or -1 when it is still running. */
int pu_wait_exit(pid_t pid, int timeout_ms);

#endif
