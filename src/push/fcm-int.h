/* The FCM client's transport, private to src/push/fcm_*.c: one HTTP/2 connection (TCP, TLS with
 * ALPN "h2" or cleartext h2c with prior knowledge, and an nghttp2 client session on memory
 * I/O), driven by the batch code in fcm_client.c through poll(). */
#ifndef MPCPUSH_FCM_INT_H
#define MPCPUSH_FCM_INT_H

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mpcpush/buf.h"
#include "mpcpush/result.h"

#define FCM_STREAMS      100 /* per connection at most (FCM's SETTINGS limit) */
#define FCM_RESPONSE_MAX 65536
#define FCM_RETRY_AFTER  64

/* Where the requests go; shared by the client's connections. */
struct fcm_target {
    char *host;      /* for getaddrinfo, SNI and the certificate check; no IPv6 brackets */
    char *port;      /* "443" unless the URL names one */
    char *authority; /* :authority, as the URL has it */
    char *path;      /* :path of messages:send */
    bool tls;        /* https: TLS + ALPN h2; http: h2c with prior knowledge */
    SSL_CTX *ssl_ctx;
    BIO_METHOD *bio_method; /* fcm_bio_method_new */
    long long timeout_ms;   /* connect + handshake + SETTINGS, and each request */
};

/* One request in flight on a connection. */
struct fcm_xfer {
    struct fcm_conn *conn; /* NULL while idle */
    struct fcm_xfer *prev, *next;
    int32_t stream_id;
    size_t index; /* into the batch's requests and results */
    const char *body;
    size_t len, off;
    long status; /* final :status, 0 until one came */
    bool overflow;
    struct mp_buf resp; /* the body, at most FCM_RESPONSE_MAX bytes */
    char retry_after[FCM_RETRY_AFTER];
    long long started_ms;
};

enum fcm_conn_state {
    FCM_CONN_CLOSED,
    FCM_CONN_CONNECTING, /* TCP connect in progress */
    FCM_CONN_HANDSHAKE,  /* TLS handshake */
    FCM_CONN_SETTLING,   /* HTTP/2 preface sent, waiting for the server's SETTINGS */
    FCM_CONN_READY,
    FCM_CONN_DRAINING, /* GOAWAY received or stream ids used up: no new streams */
};

/* Called once per stream that ends: why is NULL when the stream ended normally (x->status
 * says whether it got an answer), else a no-answer reason for logs and the DB. */
typedef void fcm_done_fn(void *arg, struct fcm_xfer *x, const char *why);

struct fcm_conn {
    const struct fcm_target *target;
    fcm_done_fn *done;
    void *done_arg;
    enum fcm_conn_state state;
    int fd;
    SSL *ssl;
    nghttp2_session *h2;
    struct addrinfo *addrs, *addr_next;
    struct fcm_xfer *xfers; /* in flight */
    size_t active;
    struct mp_buf out; /* frames not yet written, from out_off */
    size_t out_off;
    int pending_write; /* length of an SSL_write to repeat, 0 when none */
    bool write_blocked;
    bool handshake_wants_write;
    long long deadline_ms; /* to be READY by */
    long long address_ms;  /* when the connect to the current address started */
    unsigned opens;        /* in the current pass */
    unsigned long answers; /* streams answered since the last open */
    char error[200];       /* why the last connection closed or failed */
};

/* Prepares a closed connection slot. */
void fcm_conn_init(struct fcm_conn *c, const struct fcm_target *target, fcm_done_fn *done,
                   void *done_arg);

/* Starts connecting (non-blocking). On failure the slot stays closed and c->error says why. */
enum mp_result fcm_conn_open(struct fcm_conn *c, long long now_ms) MP_MUSTCHECK;

/* While connecting: once the current address has had its share of time without an answer
 * and the host has more addresses, moves on to the next one. Returns when to look again
 * (LLONG_MAX when there is nothing to watch). */
long long fcm_conn_connecting(struct fcm_conn *c, long long now_ms);

/* Closes the connection; every stream still in flight ends with why (c->error keeps it). */
void fcm_conn_close(struct fcm_conn *c, const char *why);

/* How many more streams the connection takes now: 0 unless READY. */
size_t fcm_conn_room(struct fcm_conn *c);

/* Submits x (body, len, index set by the caller) with the given headers; writes nothing yet. */
enum mp_result fcm_conn_submit(struct fcm_conn *c, struct fcm_xfer *x, const nghttp2_nv *nv,
                               size_t nnv) MP_MUSTCHECK;

/* Gives up on x (timeout): resets its stream and detaches it without calling done. */
void fcm_conn_cancel(struct fcm_conn *c, struct fcm_xfer *x);

/* Writes what nghttp2 has queued, in as few writes as possible, until done or the socket
 * would block. May close the connection. */
void fcm_conn_flush(struct fcm_conn *c);

/* The poll events the connection waits for; 0 when closed. */
short fcm_conn_events(const struct fcm_conn *c);

/* Makes progress after poll: connect, handshake, read (feeding nghttp2), write. May close. */
void fcm_conn_io(struct fcm_conn *c, short revents);

/* A socket BIO for the TLS connections that sends with MSG_NOSIGNAL: a peer that closed
 * raises no SIGPIPE. The caller frees it (BIO_meth_free). */
BIO_METHOD *fcm_bio_method_new(void);

#endif
