/* mpcpush-bench: the load generators and timers behind scripts/bench. Private to bench/. */
#ifndef MPCPUSH_BENCH_INT_H
#define MPCPUSH_BENCH_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- time ---- */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_mono_ns(void);
/* CLOCK_REALTIME in microseconds since the epoch (comparable with the emulator's `at`). */
int64_t bench_unix_us(void);

/* ---- latency samples ---- */

struct bench_samples {
    uint32_t *us; /* latencies in microseconds */
    size_t n, cap;
};

/* Appends one latency; false when out of memory. */
bool bench_samples_add(struct bench_samples *s, uint64_t us);
/* Sorts the samples; call before bench_samples_pct. */
void bench_samples_sort(struct bench_samples *s);
/* The p-th percentile (0..100) in milliseconds of sorted samples (0 when empty). */
double bench_samples_pct(const struct bench_samples *s, double p);
void bench_samples_free(struct bench_samples *s);

/* ---- webhooks ---- */

/* Which device request i goes to, and what its body says. */
struct bench_webhook_plan {
    const char *key_file;   /* PEM private key that signs (RSA, SHA-512, PKCS#1 v1.5) */
    const char *cache_file; /* signatures kept across runs for the same key and plan; or NULL */
    const char *host;       /* Host header */
    long long seq_base;     /* first sequence number: makes bodies distinct across runs */
    long long dev_first;    /* device k = dev_first + i % dev_count */
    long long dev_count;
    size_t payload_bytes; /* size of message.data */
    size_t count;         /* requests to prepare */
    int threads;          /* signing threads */
};

/* Prepared requests: request i is len[i] bytes at arena + i * slot. */
struct bench_requests {
    char *arena;
    size_t slot;
    uint32_t *len;
    long long *device; /* device number of request i */
    size_t count;
};

/* Builds and signs plan->count complete HTTP/1.1 requests. 0 on success; -1 with a message on
 * stderr. The caller frees them with bench_requests_free. */
int bench_requests_build(const struct bench_webhook_plan *plan, struct bench_requests *out);
void bench_requests_free(struct bench_requests *r);

/* ---- subcommands (argc/argv start after the subcommand name) ---- */

/* Posts webhooks: closed loop over many connections for a fixed time, or open loop at a fixed
 * rate (--rate), recording each device's 200 time for the end-to-end match (--record). */
int bench_cmd_post(int argc, char **argv);
/* Starts the dispatcher (runs SQL) and times the drain of N wakeups to the emulator. */
int bench_cmd_drain(int argc, char **argv);
/* Matches the 200 times recorded by `post --record` with the emulator's messages.jsonl. */
int bench_cmd_match(int argc, char **argv);

/* Parses a decimal option value or exits with a usage error. */
long long bench_arg_ll(const char *name, const char *value, long long min, long long max);
double bench_arg_double(const char *name, const char *value, double min, double max);

#endif
