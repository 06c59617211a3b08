/* `mpcpush-bench match`: end-to-end latency, from the webhook's 200 (recorded by
 * `post --record`: "device unix_us" per line) to the emulator's receipt of the wakeup for that
 * device (messages.jsonl: {"at":<unix ms>,...,"token":"bench<9 digits>:..."}). The emulator
 * stamps whole milliseconds, so each arrival is taken as at + 0.5 ms (error within +-0.5 ms). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-int.h"

struct sent {
    long long device;
    long long t200_us;
    long long at_ms; /* 0 until matched */
};

static int cmp_device(const void *a, const void *b)
{
    const struct sent *x = a, *y = b;
    return x->device < y->device ? -1 : x->device > y->device;
}

static struct sent *load_record(const char *path, size_t *count)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "mpcpush-bench match: cannot read %s\n", path);
        return NULL;
    }
    size_t n = 0, cap = 1024;
    struct sent *s = malloc(cap * sizeof(*s));
    long long device, us;
    while (s && fscanf(f, "%lld %lld", &device, &us) == 2) {
        if (n == cap) {
            struct sent *grown = realloc(s, (cap *= 2) * sizeof(*s));
            if (!grown) {
                free(s);
                s = NULL;
                break;
            }
            s = grown;
        }
        s[n++] = (struct sent){device, us, 0};
    }
    fclose(f);
    if (s)
        qsort(s, n, sizeof(*s), cmp_device);
    *count = n;
    return s;
}

/* The device number of a bench token ("bench000000042:..."), or -1. */
static long long token_device(const char *line)
{
    const char *t = strstr(line, "\"token\":\"bench");
    if (!t)
        return -1;
    t += 14;
    char *end;
    long long k = strtoll(t, &end, 10);
    return end > t && *end == ':' ? k : -1;
}

static size_t scan_messages(const char *path, long offset, struct sent *s, size_t n,
                            size_t *foreign)
{
    FILE *f = fopen(path, "r");
    if (!f || fseek(f, offset, SEEK_SET) != 0) {
        fprintf(stderr, "mpcpush-bench match: cannot read %s\n", path);
        if (f)
            fclose(f);
        return 0;
    }
    size_t matched = 0, cap = 1 << 16;
    char *line = malloc(cap);
    while (line && fgets(line, (int)cap, f)) {
        const char *at = strstr(line, "{\"at\":");
        long long k = token_device(line);
        struct sent key = {.device = k};
        struct sent *hit = at && k >= 0 ? bsearch(&key, s, n, sizeof(*s), cmp_device) : NULL;
        if (!hit) {
            (*foreign)++;
            continue;
        }
        if (!hit->at_ms) {
            hit->at_ms = atoll(at + 6);
            matched++;
        }
    }
    free(line);
    fclose(f);
    return matched;
}

int bench_cmd_match(int argc, char **argv)
{
    const char *record = NULL, *messages = NULL;
    long offset = 0;
    for (int i = 0; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--record"))
            record = argv[i + 1];
        else if (!strcmp(argv[i], "--messages"))
            messages = argv[i + 1];
        else if (!strcmp(argv[i], "--offset"))
            offset = (long)bench_arg_ll(argv[i], argv[i + 1], 0, 1LL << 50);
    }
    if (!record || !messages) {
        fprintf(stderr, "mpcpush-bench match: --record and --messages are required\n");
        return 2;
    }
    size_t n = 0, foreign = 0, early = 0;
    struct sent *s = load_record(record, &n);
    if (!s)
        return 1;
    size_t matched = scan_messages(messages, offset, s, n, &foreign);
    struct bench_samples lat = {0};
    for (size_t i = 0; i < n; i++) {
        if (!s[i].at_ms)
            continue;
        long long us = s[i].at_ms * 1000 + 500 - s[i].t200_us;
        if (us < 0) {
            early++;
            us = 0;
        }
        bench_samples_add(&lat, (uint64_t)us);
    }
    bench_samples_sort(&lat);
    printf("webhooks=%zu matched=%zu missing=%zu before_200=%zu other_records=%zu\n", n, matched,
           n - matched, early, foreign);
    printf("p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f\n", bench_samples_pct(&lat, 50),
           bench_samples_pct(&lat, 90), bench_samples_pct(&lat, 99), bench_samples_pct(&lat, 100));
    bench_samples_free(&lat);
    free(s);
    return matched == n && n > 0 ? 0 : 1;
}
