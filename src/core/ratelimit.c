/* Fixed-window rate limiting in a bounded hash table. */
#include "mpcpush/ratelimit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#define SLOTS 8192

struct slot {
    uint64_t hash;
    long window;
    int count;
};

struct mp_ratelimit {
    int per_minute;
    pthread_mutex_t lock;
    struct slot slots[SLOTS];
};

enum mp_result mp_ratelimit_new(int per_minute, struct mp_ratelimit **out)
{
    struct mp_ratelimit *rl = calloc(1, sizeof(*rl));
    if (!rl)
        return MP_ERR_NOMEM;
    rl->per_minute = per_minute;
    pthread_mutex_init(&rl->lock, NULL);
    *out = rl;
    return MP_OK;
}

/* FNV-1a. */
static uint64_t hash(const char *key)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

static long current_window(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(now.tv_sec / 60);
}

bool mp_ratelimit_allow(struct mp_ratelimit *rl, const char *key)
{
    if (!rl || rl->per_minute <= 0)
        return true;
    uint64_t h = hash(key);
    long window = current_window();
    pthread_mutex_lock(&rl->lock);
    struct slot *s = &rl->slots[h % SLOTS];
    if (s->window != window || s->hash != h) {
        /* a new minute, or another key: a stale slot is simply taken over */
        if (s->window != window || s->count == 0) {
            s->hash = h;
            s->window = window;
            s->count = 0;
        }
    }
    bool allowed = s->count < rl->per_minute;
    if (allowed)
        s->count++;
    pthread_mutex_unlock(&rl->lock);
    return allowed;
}

bool mp_ratelimit_over(struct mp_ratelimit *rl, const char *key)
{
    if (!rl || rl->per_minute <= 0)
        return false;
    uint64_t h = hash(key);
    long window = current_window();
    pthread_mutex_lock(&rl->lock);
    const struct slot *s = &rl->slots[h % SLOTS];
    bool over = s->window == window && s->hash == h && s->count >= rl->per_minute;
    pthread_mutex_unlock(&rl->lock);
    return over;
}

int mp_ratelimit_retry_after(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int)(60 - now.tv_sec % 60);
}

void mp_ratelimit_free(struct mp_ratelimit *rl)
{
    if (!rl)
        return;
    pthread_mutex_destroy(&rl->lock);
    free(rl);
}
