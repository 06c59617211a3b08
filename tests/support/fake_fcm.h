/* A scripted FCM endpoint: HTTP/2 with prior knowledge (h2c) on a loopback port, served by a
 * thread, answering each request as its mode says. For the FCM client's tests that need an
 * answer the emulator does not give (a reset stream, a huge body, silence, a two-stream limit). */
#ifndef MPCPUSH_TEST_FAKE_FCM_H
#define MPCPUSH_TEST_FAKE_FCM_H

#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "mpcpush/fcm.h"

/* What the fake answers: 200 with a message name; a reset stream for the first reset_first
 * requests, then 200; 429 QUOTA_EXCEEDED with Retry-After 42; 500 with a 200 kB body; nothing
 * at all; 200, but with at most two concurrent streams per connection. */
enum fake_mode { FAKE_OK, FAKE_RESET_FIRST, FAKE_QUOTA, FAKE_HUGE, FAKE_SILENT, FAKE_TWO_STREAMS };

struct fake;

#define FAKE_CONNS   8
#define FAKE_PENDING 256
#define FAKE_HUGE_N  (200 * 1024)

struct fake_conn {
    struct fake *f;
    int fd;
    nghttp2_session *h2;
    char head[4096]; /* the request headers being received, "name: value\r\n" each */
    size_t head_len;
    int32_t pending[FAKE_PENDING]; /* requests to answer on the next tick (FAKE_TWO_STREAMS) */
    int npending;
};

struct fake {
    int fd;
    char base[64];
    pthread_t thread;
    atomic_bool stop;
    atomic_int requests;
    enum fake_mode mode;
    int reset_first; /* FAKE_RESET_FIRST: requests reset unanswered */
    int open_streams, max_open_streams;
    pthread_mutex_t lock;
    char head[4096]; /* the last request's headers */
    struct fake_conn conns[FAKE_CONNS];
    char *huge;
};

/* cmocka setup and teardown: listens on 127.0.0.1 (f->base is its http:// URL), serves nothing
 * until fake_start. */
int fake_setup(void **state);
int fake_teardown(void **state);
/* Starts serving; the test sets the mode first. */
void fake_start(struct fake *f);
/* Starts serving and returns a client of it with 2 connections and this timeout (seconds). */
struct mp_fcm_client *fake_client(struct fake *f, int timeout);

#endif
