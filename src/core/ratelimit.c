/* Fixed-window rate limiting in a bounded hash table. */
#include "mpcpush/ratelimit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define SLOTS  8192
#define PROBES 8 /* slots looked at per key: a key never shares a count with another */

struct slot {
    uint64_t hash;
    long window;
    int count;
};

struct mp_ratelimit {
    int per_minute;
    uint64_t seed; /* per process: where a key lands cannot be worked out in advance */
    pthread_mutex_t lock;
    struct slot slots[SLOTS];
};

enum mp_result mp_ratelimit_new(int per_minute, struct mp_ratelimit **out)
{
    struct mp_ratelimit *rl = calloc(1, sizeof(*rl));
    if (!rl)
        return MP_ERR_NOMEM;
    rl->per_minute = per_minute;
    if (getrandom(&rl->seed, sizeof(rl->seed), 0) != (ssize_t)sizeof(rl->seed))
        rl->seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    pthread_mutex_init(&rl->lock, NULL);
    *out = rl;
    return MP_OK;
}

/* FNV-1a from a seeded basis, then the splitmix64 finaliser so that every bit reaches the slot
 * index. Never 0. */
static uint64_t hash(uint64_t seed, const char *key)
{
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h | 1;
}

static long current_window(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(now.tv_sec / 60);
}

/* The key's slot in this window; else, with claim, a free one made its own; else NULL (the
 * neighbourhood is full, or the key has none). Within a window a slot in use stays in use, so
 * a key's slot always comes before any free one in its probe sequence. Lock held. */
static struct slot *find(struct mp_ratelimit *rl, uint64_t h, long window, bool claim)
{
    for (int i = 0; i < PROBES; i++) {
        struct slot *s = &rl->slots[(h + (uint64_t)i) % SLOTS];
        bool used = s->window == window && s->count > 0;
        if (used && s->hash == h)
            return s;
        if (!used) {
            if (!claim)
                return NULL;
            s->hash = h;
            s->window = window;
            s->count = 0;
            return s;
        }
    }
    return NULL;
}

bool mp_ratelimit_allow(struct mp_ratelimit *rl, const char *key)
{
    if (!rl || rl->per_minute <= 0)
        return true;
    uint64_t h = hash(rl->seed, key);
    pthread_mutex_lock(&rl->lock);
    struct slot *s = find(rl, h, current_window(), true);
    bool allowed = s && s->count < rl->per_minute; /* no slot free: refuse */
    if (allowed)
        s->count++;
    pthread_mutex_unlock(&rl->lock);
    return allowed;
}

bool mp_ratelimit_over(struct mp_ratelimit *rl, const char *key)
{
    if (!rl || rl->per_minute <= 0)
        return false;
    uint64_t h = hash(rl->seed, key);
    long window = current_window();
    pthread_mutex_lock(&rl->lock);
    const struct slot *s = find(rl, h, window, false);
    bool over;
    if (s) {
        over = s->count >= rl->per_minute;
    } else { /* absent: over only when there is no room for it either */
        over = true;
        for (int i = 0; i < PROBES && over; i++) {
            const struct slot *t = &rl->slots[(h + (uint64_t)i) % SLOTS];
            over = t->window == window && t->count > 0;
        }
    }
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
