/* A single-threaded epoll event loop with a timer heap and SIGTERM/SIGINT handling. */
#ifndef MPCPUSH_EMU_LOOP_INT_H
#define MPCPUSH_EMU_LOOP_INT_H

#include <stddef.h>
#include <stdint.h>

#include "mpcpush/result.h"

struct emu_loop;

/* A file descriptor being watched; embed it in the object that owns the fd. */
struct emu_watch {
    int fd;
    int registered;  /* added to the epoll set */
    uint32_t events; /* the epoll mask currently registered (may be 0) */
    void (*on_event)(struct emu_watch *watch, uint32_t events);
};

/* A one-shot timer; embed it in the object it belongs to. */
struct emu_timer {
    uint64_t at_ms; /* emu_now_ms() deadline */
    size_t index;   /* position in the heap, SIZE_MAX when not armed */
    void (*on_fire)(struct emu_timer *timer);
};

/* Creates a loop; SIGTERM and SIGINT are blocked and delivered to it. */
enum mp_result emu_loop_new(struct emu_loop **out) MP_MUSTCHECK;

/* Frees the loop (not the watched objects); accepts NULL. */
void emu_loop_free(struct emu_loop *loop);

/* Starts, changes or stops watching watch->fd for events (EPOLLIN, EPOLLOUT). */
enum mp_result emu_loop_watch(struct emu_loop *loop, struct emu_watch *watch,
                              uint32_t events) MP_MUSTCHECK;
void emu_loop_unwatch(struct emu_loop *loop, struct emu_watch *watch);

/* Arms timer to fire after delay_ms; the timer must not be armed already. */
enum mp_result emu_loop_timer_start(struct emu_loop *loop, struct emu_timer *timer,
                                    uint64_t delay_ms) MP_MUSTCHECK;

/* Disarms timer if armed. */
void emu_loop_timer_stop(struct emu_loop *loop, struct emu_timer *timer);

/* Runs until a SIGTERM/SIGINT arrives or emu_loop_stop is called; calls tick(ctx) at least
 * every tick_ms milliseconds. */
enum mp_result emu_loop_run(struct emu_loop *loop, void (*tick)(void *ctx), void *ctx,
                            unsigned tick_ms) MP_MUSTCHECK;

void emu_loop_stop(struct emu_loop *loop);

/* Monotonic milliseconds. */
uint64_t emu_now_ms(void);

/* Wall-clock milliseconds since the Unix epoch. */
int64_t emu_unix_ms(void);

#endif
