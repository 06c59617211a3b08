/* The emulator's state (passed to every handler as a closure) and the protocol-neutral
 * request and response that the HTTP/1.1 and HTTP/2 front ends exchange with the handlers. */
#ifndef MPCPUSH_EMU_SERVER_INT_H
#define MPCPUSH_EMU_SERVER_INT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include "mpcpush/buf.h"
#include "mpcpush/result.h"

#include "account-int.h"
#include "faults-int.h"
#include "loop-int.h"
#include "options-int.h"

#define EMU_MAX_BODY (1024 * 1024) /* larger request bodies get 413 */

struct emu_request {
    const char *method;
    const char *path;          /* with the query string */
    const char *authority;     /* Host or :authority; "" when absent */
    const char *authorization; /* NULL when absent */
    const char *content_type;  /* NULL when absent */
    const char *body;
    size_t body_len;
    int tls;       /* arrived on the TLS listener */
    int too_large; /* the body went over EMU_MAX_BODY and was discarded */
};

enum emu_action {
    EMU_ANSWER, /* send status, headers and body */
    EMU_DROP,   /* close the connection without answering */
    EMU_GOAWAY, /* HTTP/2 GOAWAY before this stream, then close (HTTP/1.1: as DROP) */
};

struct emu_response {
    int status;
    struct mp_buf body;
    const char *content_type;
    int retry_after;      /* seconds for Retry-After, -1: none */
    int www_authenticate; /* add Google's WWW-Authenticate header (401) */
    enum emu_action action;
    unsigned delay_ms;
};

/* Counters served by GET /emulator/stats. */
struct emu_stats {
    unsigned long token_requests, tokens_issued, token_errors;
    unsigned long send_requests, accepted, rejected, validate_only, recorded;
    unsigned long by_error[EMU_ERR_COUNT];
    unsigned long connections, open_connections, goaways, slowed;
};

struct emu_conn;
struct emu_tokens;
struct emu_record;

struct emu_listener {
    struct emu_watch watch;
    struct emu_server *srv;
    int tls;
    int port;
};

struct emu_server {
    const struct emu_options *opts;
    struct emu_loop *loop;
    SSL_CTX *ssl_ctx;
    nghttp2_session_callbacks *h2_callbacks;
    nghttp2_option *h2_option;
    struct emu_listener tls_listener, plain_listener;
    struct emu_account accounts[EMU_MAX_ACCOUNTS + 1];
    size_t n_accounts;
    struct emu_tokens *tokens;
    struct emu_faults faults;
    struct emu_record *record;
    struct emu_stats stats;
    struct emu_conn *conns; /* every open connection */
    uint64_t rng;
    uint64_t last_message_id;
    uint64_t message_id_salt;
    uint64_t next_purge_ms;
    int wrote_state; /* the pid and ports files are ours to remove */
};

/* Sets up everything opts asks for: trusted and generated service accounts, the throwaway CA,
 * listeners, the records, and the files of --state-dir (ports last). On failure writes one line
 * into err; MP_ERR_INVALID means a usage problem. Call emu_server_stop in every case. */
enum mp_result emu_server_start(struct emu_server *srv, const struct emu_options *opts, char *err,
                                size_t err_size) MP_MUSTCHECK;

/* Serves until SIGTERM or SIGINT. */
enum mp_result emu_server_run(struct emu_server *srv) MP_MUSTCHECK;

/* Closes connections and listeners, flushes the records, frees everything, and removes the
 * pid and ports files. Accepts a server whose start failed part way. */
void emu_server_stop(struct emu_server *srv);

/* Answers one request: fills resp (initialised by emu_response_init). */
void emu_handle(struct emu_server *srv, const struct emu_request *req, struct emu_response *resp);

void emu_response_init(struct emu_response *resp);
void emu_response_free(struct emu_response *resp);

/* Sets status and a copy of body (JSON); on out-of-memory turns resp into a bare 503. */
void emu_response_set(struct emu_response *resp, int status, const char *body, size_t len);

/* Sets status and the compact serialisation of json (a reference is stolen). */
void emu_response_json(struct emu_response *resp, int status, json_t *json);

/* A uniformly distributed number in [0, 1) from the server's generator. */
double emu_random(struct emu_server *srv);

/* The reason phrase of an HTTP status code. */
const char *emu_status_text(int status);

#endif
