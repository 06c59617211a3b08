/* epoll loop: watched descriptors, a binary min-heap of timers, and a signalfd that ends the
 * loop on SIGTERM/SIGINT. */
#include "loop-int.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "mpcpush/log.h"

#define MAX_EVENTS 128

struct emu_loop {
    int epfd;
    int sigfd;
    int stop;
    struct emu_timer **heap;
    size_t n_timers, cap_timers;
};

uint64_t emu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t emu_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum mp_result emu_loop_new(struct emu_loop **out)
{
    enum mp_result result = MP_OK;
    struct emu_loop *loop = calloc(1, sizeof(*loop));
    if (!loop)
        return MP_ERR_NOMEM;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0) {
        loop->sigfd = -1;
        result = MP_ERR_IO;
        goto out;
    }
    loop->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (loop->epfd < 0 || loop->sigfd < 0) {
        result = MP_ERR_IO;
        goto out;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->sigfd, &ev) != 0)
        result = MP_ERR_IO;
out:
    if (!result)
        *out = loop;
    else
        emu_loop_free(loop);
    return result;
}

void emu_loop_free(struct emu_loop *loop)
{
    if (!loop)
        return;
    if (loop->epfd >= 0)
        close(loop->epfd);
    if (loop->sigfd >= 0)
        close(loop->sigfd);
    free(loop->heap);
    free(loop);
}

enum mp_result emu_loop_watch(struct emu_loop *loop, struct emu_watch *watch, uint32_t events)
{
    if (watch->registered && watch->events == events)
        return MP_OK;
    struct epoll_event ev = {.events = events, .data.ptr = watch};
    int op = watch->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(loop->epfd, op, watch->fd, &ev) != 0)
        return MP_ERR_IO;
    watch->registered = 1;
    watch->events = events;
    return MP_OK;
}

void emu_loop_unwatch(struct emu_loop *loop, struct emu_watch *watch)
{
    if (watch->registered && watch->fd >= 0)
        epoll_ctl(loop->epfd, EPOLL_CTL_DEL, watch->fd, NULL);
    watch->registered = 0;
    watch->events = 0;
}

/* ---- timer heap ---- */

static void heap_set(struct emu_loop *loop, size_t i, struct emu_timer *t)
{
    loop->heap[i] = t;
    t->index = i;
}

static void heap_up(struct emu_loop *loop, size_t i)
{
    struct emu_timer *t = loop->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (loop->heap[parent]->at_ms <= t->at_ms)
            break;
        heap_set(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_set(loop, i, t);
}

static void heap_down(struct emu_loop *loop, size_t i)
{
    struct emu_timer *t = loop->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= loop->n_timers)
            break;
        if (child + 1 < loop->n_timers && loop->heap[child + 1]->at_ms < loop->heap[child]->at_ms)
            child++;
        if (loop->heap[child]->at_ms >= t->at_ms)
            break;
        heap_set(loop, i, loop->heap[child]);
        i = child;
    }
    heap_set(loop, i, t);
}

enum mp_result emu_loop_timer_start(struct emu_loop *loop, struct emu_timer *timer,
                                    uint64_t delay_ms)
{
    if (loop->n_timers == loop->cap_timers) {
        size_t cap = loop->cap_timers ? loop->cap_timers * 2 : 64;
        struct emu_timer **heap = realloc(loop->heap, cap * sizeof(*heap));
        if (!heap)
            return MP_ERR_NOMEM;
        loop->heap = heap;
        loop->cap_timers = cap;
    }
    timer->at_ms = emu_now_ms() + delay_ms;
    heap_set(loop, loop->n_timers++, timer);
    heap_up(loop, timer->index);
    return MP_OK;
}

void emu_loop_timer_stop(struct emu_loop *loop, struct emu_timer *timer)
{
    size_t i = timer->index;
    if (i >= loop->n_timers || loop->heap[i] != timer)
        return;
    timer->index = SIZE_MAX;
    struct emu_timer *last = loop->heap[--loop->n_timers];
    if (i == loop->n_timers)
        return;
    heap_set(loop, i, last);
    heap_up(loop, i);
    heap_down(loop, last->index);
}

/* Fires every timer that is due. */
static void run_timers(struct emu_loop *loop)
{
    uint64_t now = emu_now_ms();
    while (loop->n_timers && loop->heap[0]->at_ms <= now) {
        struct emu_timer *t = loop->heap[0];
        emu_loop_timer_stop(loop, t);
        t->on_fire(t);
    }
}

static int next_timeout(struct emu_loop *loop, uint64_t next_tick)
{
    uint64_t now = emu_now_ms();
    uint64_t at = next_tick;
    if (loop->n_timers && loop->heap[0]->at_ms < at)
        at = loop->heap[0]->at_ms;
    return at <= now ? 0 : (int)(at - now);
}

static void drain_signals(struct emu_loop *loop)
{
    struct signalfd_siginfo info;
    while (read(loop->sigfd, &info, sizeof(info)) == (ssize_t)sizeof(info)) {
        MP_INFO("signal", "signo=%u", info.ssi_signo);
        loop->stop = 1;
    }
}

enum mp_result emu_loop_run(struct emu_loop *loop, void (*tick)(void *ctx), void *ctx,
                            unsigned tick_ms)
{
    struct epoll_event events[MAX_EVENTS];
    uint64_t next_tick = emu_now_ms() + tick_ms;
    while (!loop->stop) {
        int n = epoll_wait(loop->epfd, events, MAX_EVENTS, next_timeout(loop, next_tick));
        if (n < 0 && errno != EINTR)
            return MP_ERR_IO;
        for (int i = 0; i < n; i++) {
            struct emu_watch *w = events[i].data.ptr;
            if (!w)
                drain_signals(loop);
            else
                w->on_event(w, events[i].events);
        }
        run_timers(loop);
        if (emu_now_ms() >= next_tick) {
            tick(ctx);
            next_tick = emu_now_ms() + tick_ms;
        }
    }
    return MP_OK;
}

void emu_loop_stop(struct emu_loop *loop)
{
    loop->stop = 1;
}
