/* Connections: listeners, non-blocking TLS or plain I/O with an output buffer, delayed
 * answers, and the hand-off between the byte stream and the HTTP/1.1 or HTTP/2 front end. */
#ifndef MPCPUSH_EMU_CONN_INT_H
#define MPCPUSH_EMU_CONN_INT_H

#include <stddef.h>
#include <stdint.h>

#include "server-int.h"

enum emu_proto { EMU_PROTO_NONE, EMU_PROTO_H1, EMU_PROTO_H2 };

/* An answer waiting for its delay to pass. */
struct emu_pending {
    struct emu_timer timer; /* first: the timer callback finds the pending from it */
    struct emu_conn *conn;
    int32_t stream_id;
    struct emu_response resp;
    struct emu_pending *prev, *next;
};

struct emu_stream;

/* What the HTTP/1.1 front end remembers between reads. */
struct emu_h1_state {
    int busy;          /* a request is waiting for its answer */
    int keep_alive;    /* of the request being answered */
    int continue_sent; /* "100 Continue" went out for the request being read */
};

struct emu_conn {
    struct emu_watch watch; /* first: the loop hands it back */
    struct emu_server *srv;
    SSL *ssl; /* NULL on the plain listener */
    int tls;
    int handshaking;
    enum emu_proto proto;
    struct mp_buf in; /* bytes not yet consumed by the HTTP/1.1 parser or the sniffer */
    unsigned char *out;
    size_t out_off, out_len, out_cap;
    int write_blocked;     /* the last write would have blocked */
    int read_wants_write;  /* TLS needs to write before it can read */
    int peer_closed;       /* EOF or error on read */
    int close_now;         /* close without flushing (DROP, fatal errors) */
    int close_after_flush; /* close once the output is written */
    struct emu_h1_state h1;
    nghttp2_session *h2;
    struct emu_stream *streams; /* HTTP/2 streams with state of ours */
    int32_t goaway_last;        /* last stream id of a GOAWAY we sent, -1: none */
    struct emu_pending *pendings;
    size_t n_pendings;
    struct emu_conn *prev, *next;
};

/* Binds and listens on hostport ("host:port", port 0 picks one) and starts accepting. */
enum mp_result emu_listener_open(struct emu_server *srv, struct emu_listener *listener,
                                 const char *hostport, int tls) MP_MUSTCHECK;
void emu_listener_close(struct emu_server *srv, struct emu_listener *listener);

/* Closes every connection of srv (at shutdown). */
void emu_conns_close_all(struct emu_server *srv);

/* Answers req now or, when the handler asked for a delay, later from a timer. */
void emu_conn_dispatch(struct emu_conn *conn, int32_t stream_id, const struct emu_request *req);

/* Drops the delayed answers for streams after last_stream (every one: -1). */
void emu_conn_cancel_pendings(struct emu_conn *conn, int32_t last_stream);

/* Appends bytes to the output buffer; on out-of-memory marks the connection for closing. */
void emu_conn_write(struct emu_conn *conn, const void *data, size_t len);

/* Bytes waiting in the output buffer. */
size_t emu_conn_pending_output(const struct emu_conn *conn);

/* ---- HTTP/1.1 front end (h1.c) ---- */

/* Parses and dispatches the complete requests in conn->in, one at a time. */
void emu_h1_input(struct emu_conn *conn);

/* Writes the answer to the request being served. */
void emu_h1_deliver(struct emu_conn *conn, const struct emu_response *resp);

/* ---- HTTP/2 front end (h2.c) ---- */

/* The callbacks and options shared by every session (made once per server). */
enum mp_result emu_h2_setup(struct emu_server *srv) MP_MUSTCHECK;
void emu_h2_teardown(struct emu_server *srv);

/* Starts a server session on conn and queues our SETTINGS. */
enum mp_result emu_h2_start(struct emu_conn *conn) MP_MUSTCHECK;

/* Feeds received bytes to the session. */
void emu_h2_input(struct emu_conn *conn, const unsigned char *data, size_t len);

/* Moves what the session wants to send into the output buffer (up to a limit). */
void emu_h2_output(struct emu_conn *conn);

/* Submits the answer on stream_id (moves resp->body); a stream that is gone is skipped. */
void emu_h2_deliver(struct emu_conn *conn, int32_t stream_id, struct emu_response *resp);

/* Sends GOAWAY so stream_id and later streams are not processed. */
void emu_h2_goaway(struct emu_conn *conn, int32_t stream_id);

/* Whether the session is finished and the connection can be closed. */
int emu_h2_done(struct emu_conn *conn);

/* Frees the session and the streams. */
void emu_h2_free(struct emu_conn *conn);

#endif
