/* mpcpush-bench: entry point, clocks, latency percentiles and argument helpers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench-int.h"

uint64_t bench_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t bench_unix_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

bool bench_samples_add(struct bench_samples *s, uint64_t us)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 65536;
        uint32_t *grown = realloc(s->us, cap * sizeof(*grown));
        if (!grown)
            return false;
        s->us = grown;
        s->cap = cap;
    }
    s->us[s->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    return true;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

void bench_samples_sort(struct bench_samples *s)
{
    if (s->n)
        qsort(s->us, s->n, sizeof(*s->us), cmp_u32);
}

double bench_samples_pct(const struct bench_samples *s, double p)
{
    if (!s->n)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)(s->n - 1) + 0.5);
    if (i >= s->n)
        i = s->n - 1;
    return s->us[i] / 1000.0;
}

void bench_samples_free(struct bench_samples *s)
{
    free(s->us);
    s->us = NULL;
    s->n = s->cap = 0;
}

long long bench_arg_ll(const char *name, const char *value, long long min, long long max)
{
    char *end;
    errno = 0;
    long long v = value ? strtoll(value, &end, 10) : 0;
    if (!value || errno || *end || end == value || v < min || v > max) {
        fprintf(stderr, "mpcpush-bench: %s needs an integer in %lld..%lld\n", name, min, max);
        exit(2);
    }
    return v;
}

double bench_arg_double(const char *name, const char *value, double min, double max)
{
    char *end;
    errno = 0;
    double v = value ? strtod(value, &end) : 0;
    if (!value || errno || *end || end == value || v < min || v > max) {
        fprintf(stderr, "mpcpush-bench: %s needs a number in %g..%g\n", name, min, max);
        exit(2);
    }
    return v;
}

static const char usage[] =
    "usage: mpcpush-bench post  --url http://HOST:PORT --key PEM [options]\n"
    "       mpcpush-bench drain --db URL --emulator http://HOST:PORT --count N --start-sql SQL\n"
    "       mpcpush-bench match --record FILE --messages FILE [--offset BYTES]\n"
    "Load generators and timers for scripts/bench; every target must be a loopback address.\n";

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "post") == 0)
        return bench_cmd_post(argc - 2, argv + 2);
    if (strcmp(argv[1], "drain") == 0)
        return bench_cmd_drain(argc - 2, argv + 2);
    if (strcmp(argv[1], "match") == 0)
        return bench_cmd_match(argc - 2, argv + 2);
    fputs(usage, stderr);
    return 2;
}
