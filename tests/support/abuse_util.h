/* Test support for the abuse tests: raw HTTP/1.1 over sockets bound to a chosen loopback source
 * address (127.0.0.2, 127.0.0.3, ... act as other clients), whole answers with their header
 * block, a check whether a socket is still open, and the rate limiter's one-minute window. */
#ifndef MPCPUSH_TEST_ABUSE_UTIL_H
#define MPCPUSH_TEST_ABUSE_UTIL_H

#include <stdbool.h>
#include <stddef.h>

/* A connected TCP socket from src (e.g. "127.0.0.2", NULL: any) to 127.0.0.1:port, or -1.
 * Never fails the test: floods expect refusals. */
int ab_connect_from(const char *src, int port);

struct ab_resp {
    int status;      /* 0: closed without an answer; -1: no answer before the timeout */
    bool closed;     /* the server closed the connection after (or instead of) answering */
    char head[4096]; /* the status line and header block */
    char body[8192]; /* the body (cut at sizeof - 1) */
    long ms;         /* from sending the first byte to the end of the answer */
};

/* Sends raw (len bytes) on fd and reads one answer (head, then Content-Length bytes of body).
 * Closed and timed-out connections are reported in r, never as a test failure. */
void ab_exchange(int fd, const void *raw, size_t len, int timeout_ms, struct ab_resp *r);

/* Connects from src, sends raw, reads one answer, closes. */
void ab_raw(const char *src, int port, const void *raw, size_t len, int timeout_ms,
            struct ab_resp *r);

/* A request from src: method, path, header lines (NULL-terminated, may be NULL; each without
 * CRLF) and an optional body (a Content-Length is added when body is not NULL). */
void ab_http(const char *src, int port, const char *method, const char *path,
             const char *const *headers, const char *body, int timeout_ms, struct ab_resp *r);

/* The value of header name in r->head copied into out ("" when absent). */
const char *ab_header(const struct ab_resp *r, const char *name, char *out, size_t size);

/* The error.code slug of a JSON error body, copied into out ("" when none). */
const char *ab_error_code(const struct ab_resp *r, char *out, size_t size);

/* True while fd is open: no EOF or reset has arrived. Reads and drops whatever is pending. */
bool ab_is_open(int fd);

/* Sleeps until the current one-minute rate-limit window (CLOCK_MONOTONIC seconds / 60, the same
 * clock the server uses) has at least need_s seconds left. */
void ab_wait_window(int need_s);

#endif
