/* One FCM connection: non-blocking TCP connect, TLS 1.2+ with ALPN "h2" (or h2c with prior
 * knowledge on loopback http://), and an nghttp2 client session on memory I/O. Output of all
 * submitted streams is collected from nghttp2_session_mem_send into one buffer and written in
 * 16 kB TLS records, so that a batch's HEADERS and DATA frames share records and system calls;
 * input is read until the socket is empty and fed to nghttp2_session_mem_recv. */
#include "fcm-int.h"
#include "push-int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#define RECORD_MAX  16384 /* bytes per SSL_write: one full TLS record */
#define COLLECT_MAX 65536 /* unwritten output at which we stop asking nghttp2 for more */
#define READ_CHUNK  16384
/* A connect unanswered this long moves on to the host's next address, if any (a SYN dropped
 * silently, as on a broken IPv6 route, would otherwise take the whole deadline). */
#define ADDRESS_MS 500
#define LAST_ID    (INT32_MAX - 2 * FCM_STREAMS) /* past it: drain, reconnect */

__attribute__((format(printf, 2, 3))) static void set_error(struct fcm_conn *c, const char *fmt,
                                                            ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof(c->error), fmt, ap);
    va_end(ap);
}

void fcm_conn_init(struct fcm_conn *c, const struct fcm_target *target, fcm_done_fn *done,
                   void *done_arg)
{
    memset(c, 0, sizeof(*c));
    c->target = target;
    c->done = done;
    c->done_arg = done_arg;
    c->fd = -1;
    mp_buf_init(&c->out, 0);
}

static void unlink_xfer(struct fcm_conn *c, struct fcm_xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        c->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
    x->conn = NULL;
    c->active--;
}

void fcm_conn_close(struct fcm_conn *c, const char *why)
{
    if (why && why != c->error)
        snprintf(c->error, sizeof(c->error), "%s", why);
    while (c->xfers) {
        struct fcm_xfer *x = c->xfers;
        if (c->h2)
            nghttp2_session_set_stream_user_data(c->h2, x->stream_id, NULL);
        unlink_xfer(c, x);
        c->done(c->done_arg, x, c->error[0] ? c->error : "connection closed");
    }
    nghttp2_session_del(c->h2);
    c->h2 = NULL;
    SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->addrs)
        freeaddrinfo(c->addrs);
    c->addrs = c->addr_next = NULL;
    if (c->out.data)
        OPENSSL_cleanse(c->out.data, c->out.len);
    mp_buf_free(&c->out);
    mp_buf_init(&c->out, 0);
    c->out_off = 0;
    c->pending_write = 0;
    c->write_blocked = c->handshake_wants_write = false;
    c->state = FCM_CONN_CLOSED;
}

/* ---- nghttp2 callbacks ---- */

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    struct fcm_xfer *x = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!x || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        long status = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            status = status * 10 + (value[i] >= '0' && value[i] <= '9' ? value[i] - '0' : 0);
        x->retry_after[0] = '\0'; /* a new response (after a 1xx, say) */
        x->status = status >= 200 ? status : 0;
    } else if (namelen == 11 && strncasecmp((const char *)name, "retry-after", 11) == 0 &&
               valuelen < sizeof(x->retry_after)) {
        memcpy(x->retry_after, value, valuelen);
        x->retry_after[valuelen] = '\0';
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user)
{
    struct fcm_xfer *x = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!x || x->overflow)
        return 0;
    if (mp_buf_append(&x->resp, data, len) != MP_OK) { /* too big: keep what fits, stop */
        x->overflow = true;
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user)
{
    struct fcm_conn *c = user;
    struct fcm_xfer *x = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!x)
        return 0;
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    unlink_xfer(c, x);
    char why[96] = "";
    const char *reason = why;
    if (x->status)
        c->answers++;
    else if (c->state == FCM_CONN_DRAINING && error_code == NGHTTP2_REFUSED_STREAM)
        reason = c->error; /* above GOAWAY's last stream */
    else if (error_code)
        snprintf(why, sizeof(why), "stream reset by the server: %s",
                 nghttp2_http2_strerror(error_code));
    else
        snprintf(why, sizeof(why), "stream closed without an answer");
    c->done(c->done_arg, x, reason[0] ? reason : NULL);
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct fcm_conn *c = user;
    if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK) &&
        c->state == FCM_CONN_SETTLING) {
        c->state = FCM_CONN_READY;
    } else if (frame->hd.type == NGHTTP2_GOAWAY) {
        c->state = FCM_CONN_DRAINING;
        snprintf(c->error, sizeof(c->error), "GOAWAY from the server (%s, last stream %d)",
                 nghttp2_http2_strerror(frame->goaway.error_code),
                 (int)frame->goaway.last_stream_id);
    }
    return 0;
}

static ssize_t read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *user)
{
    struct fcm_xfer *x = source->ptr;
    size_t left = x->len - x->off;
    size_t n = left < length ? left : length;
    memcpy(buf, x->body + x->off, n);
    x->off += n;
    if (x->off == x->len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static enum mp_result session_start(struct fcm_conn *c)
{
    nghttp2_session_callbacks *cb = NULL;
    nghttp2_option *opt = NULL;
    enum mp_result result = MP_ERR_NOMEM;
    if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
        goto out;
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_option_set_peer_max_concurrent_streams(opt, FCM_STREAMS);
    if (nghttp2_session_client_new2(&c->h2, cb, c, opt) != 0)
        goto out;
    const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                               {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 0}};
    if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, settings, 2) != 0)
        goto out;
    c->state = FCM_CONN_SETTLING;
    result = MP_OK;
out:
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    return result;
}

/* ---- connect and TLS ---- */

static void tune_socket(int fd)
{
    int one = 1, idle = 30, interval = 10;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
}

static bool loopback(const struct addrinfo *a)
{
    if (a->ai_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr) >> 24) == 127;
    return a->ai_family == AF_INET6 &&
           IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a->ai_addr)->sin6_addr);
}

/* Starts a connect to the next address; false when none is left (c->error says why). Without
 * TLS only loopback addresses are used, whatever the name resolved to. */
static bool connect_next(struct fcm_conn *c)
{
    for (; c->addr_next; c->addr_next = c->addr_next->ai_next) {
        const struct addrinfo *a = c->addr_next;
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        if (!c->target->tls && !loopback(a)) {
            set_error(c, "%s resolved to an address that is not loopback: plain HTTP refused",
                      c->target->host);
            continue;
        }
        c->fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (c->fd < 0) {
            set_error(c, "socket: %s", strerror(errno));
            continue;
        }
        tune_socket(c->fd);
        if (connect(c->fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
            c->addr_next = a->ai_next;
            c->state = FCM_CONN_CONNECTING;
            c->address_ms = mp_push_now_ms();
            return true;
        }
        set_error(c, "connect to %s: %s", c->target->authority, strerror(errno));
    }
    return false;
}

long long fcm_conn_connecting(struct fcm_conn *c, long long now_ms)
{
    if (c->state != FCM_CONN_CONNECTING || !c->addr_next)
        return LLONG_MAX;
    if (now_ms < c->address_ms + ADDRESS_MS)
        return c->address_ms + ADDRESS_MS;
    set_error(c, "connect to %s: no answer in %d ms, trying its next address", c->target->authority,
              ADDRESS_MS);
    if (!connect_next(c))
        fcm_conn_close(c, c->error);
    return now_ms;
}

enum mp_result fcm_conn_open(struct fcm_conn *c, long long now_ms)
{
    const struct fcm_target *t = c->target;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    fcm_conn_close(c, NULL);
    c->error[0] = '\0';
    c->opens++;
    c->answers = 0;
    c->deadline_ms = now_ms + t->timeout_ms;
    int rc = getaddrinfo(t->host, t->port, &hints, &c->addrs);
    if (rc != 0) {
        set_error(c, "cannot resolve %s: %s", t->host, gai_strerror(rc));
        c->addrs = NULL;
        return MP_ERR_NETWORK;
    }
    c->addr_next = c->addrs;
    if (!connect_next(c)) {
        fcm_conn_close(c, c->error);
        return MP_ERR_NETWORK;
    }
    return MP_OK;
}

/* Describes a failed handshake: the certificate check's verdict, else OpenSSL's error. */
static void tls_error(struct fcm_conn *c)
{
    long verify = SSL_get_verify_result(c->ssl);
    unsigned long e = ERR_get_error();
    char text[120];
    if (verify != X509_V_OK)
        snprintf(text, sizeof(text), "certificate: %s", X509_verify_cert_error_string(verify));
    else if (e)
        ERR_error_string_n(e, text, sizeof(text));
    else
        snprintf(text, sizeof(text), "%s", errno ? strerror(errno) : "connection closed");
    ERR_clear_error();
    set_error(c, "TLS handshake with %s: %s", c->target->authority, text);
}

static bool tls_start(struct fcm_conn *c)
{
    const struct fcm_target *t = c->target;
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, t->host, ip) == 1 || inet_pton(AF_INET6, t->host, ip) == 1;
    c->ssl = SSL_new(t->ssl_ctx);
    BIO *bio = c->ssl ? BIO_new(t->bio_method) : NULL;
    if (!bio) {
        set_error(c, "TLS setup: out of memory");
        return false;
    }
    BIO_set_data(bio, c);
    SSL_set_bio(c->ssl, bio, bio);
    X509_VERIFY_PARAM *param = SSL_get0_param(c->ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    bool ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, t->host) == 1
                    : SSL_set_tlsext_host_name(c->ssl, t->host) == 1 &&
                          SSL_set1_host(c->ssl, t->host) == 1;
    if (!ok) {
        set_error(c, "TLS setup: cannot check the name %s", t->host);
        return false;
    }
    SSL_set_connect_state(c->ssl);
    c->state = FCM_CONN_HANDSHAKE;
    return true;
}

/* One step of the handshake; false when it failed (c->error says why). */
static bool tls_step(struct fcm_conn *c)
{
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(c->ssl);
    if (rc != 1) {
        int err = SSL_get_error(c->ssl, rc);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            c->handshake_wants_write = err == SSL_ERROR_WANT_WRITE;
            return true;
        }
        tls_error(c);
        return false;
    }
    const unsigned char *alpn = NULL;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
    if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0) {
        set_error(c, "TLS: %s did not select HTTP/2 (ALPN h2)", c->target->authority);
        return false;
    }
    if (session_start(c) != MP_OK) {
        set_error(c, "HTTP/2 setup: out of memory");
        return false;
    }
    return true;
}

/* The TCP connect finished (or failed): go on to TLS or HTTP/2. */
static bool connected(struct fcm_conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err) {
        set_error(c, "connect to %s: %s", c->target->authority, strerror(err));
        return connect_next(c);
    }
    freeaddrinfo(c->addrs);
    c->addrs = c->addr_next = NULL;
    if (!c->target->tls) {
        if (session_start(c) == MP_OK)
            return true;
        set_error(c, "HTTP/2 setup: out of memory");
        return false;
    }
    return tls_start(c) && tls_step(c);
}

/* ---- a socket BIO that never raises SIGPIPE (send with MSG_NOSIGNAL) ---- */

static int bio_write(BIO *bio, const char *data, int len)
{
    struct fcm_conn *c = BIO_get_data(bio);
    ssize_t n = send(c->fd, data, (size_t)len, MSG_NOSIGNAL);
    BIO_clear_retry_flags(bio);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(bio);
    return (int)n;
}

static int bio_read(BIO *bio, char *data, int len)
{
    struct fcm_conn *c = BIO_get_data(bio);
    ssize_t n = recv(c->fd, data, (size_t)len, 0);
    BIO_clear_retry_flags(bio);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_read(bio);
    return (int)n;
}

static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
    switch (cmd) {
    case BIO_CTRL_FLUSH:
    case BIO_CTRL_DUP:
        return 1;
    case BIO_CTRL_GET_CLOSE:
        return BIO_get_shutdown(bio);
    case BIO_CTRL_SET_CLOSE:
        BIO_set_shutdown(bio, (int)num);
        return 1;
    default:
        return 0;
    }
}

static int bio_create(BIO *bio)
{
    BIO_set_init(bio, 1);
    return 1;
}

BIO_METHOD *fcm_bio_method_new(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_TYPE_SOURCE_SINK | BIO_get_new_index(), "mpcpush fcm");
    if (m && (BIO_meth_set_write(m, bio_write) != 1 || BIO_meth_set_read(m, bio_read) != 1 ||
              BIO_meth_set_ctrl(m, bio_ctrl) != 1 || BIO_meth_set_create(m, bio_create) != 1)) {
        BIO_meth_free(m);
        return NULL;
    }
    return m;
}

/* ---- reading and writing ---- */

/* Reads until the socket is empty and feeds nghttp2; false when the connection closed. */
static bool read_all(struct fcm_conn *c)
{
    uint8_t buf[READ_CHUNK];
    for (;;) {
        ssize_t n;
        if (c->ssl) {
            ERR_clear_error();
            int rc = SSL_read(c->ssl, buf, sizeof(buf));
            int err = rc > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, rc);
            if (err == SSL_ERROR_WANT_WRITE) /* a TLS message of its own must go out first */
                c->write_blocked = true;
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
                return true;
            if (err == SSL_ERROR_SSL) {
                char text[120];
                ERR_error_string_n(ERR_get_error(), text, sizeof(text));
                ERR_clear_error();
                set_error(c, "TLS read from %s: %s", c->target->authority, text);
            }
            n = err == SSL_ERROR_NONE ? rc : 0;
        } else {
            n = recv(c->fd, buf, sizeof(buf), 0);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                return true;
        }
        if (n <= 0) {
            if (!c->error[0] || c->state != FCM_CONN_DRAINING)
                set_error(c, "connection to %s closed%s%s", c->target->authority, n < 0 ? ": " : "",
                          n < 0 ? strerror(errno) : "");
            fcm_conn_close(c, c->error);
            return false;
        }
        ssize_t used = nghttp2_session_mem_recv(c->h2, buf, (size_t)n);
        if (used < 0) {
            set_error(c, "HTTP/2 error from %s: %s", c->target->authority,
                      nghttp2_strerror((int)used));
            fcm_conn_close(c, c->error);
            return false;
        }
    }
}

/* Writes out from out_off, in TLS records of up to RECORD_MAX bytes; false when closed. */
static bool write_out(struct fcm_conn *c)
{
    while (c->out_off < c->out.len) {
        size_t left = c->out.len - c->out_off;
        ssize_t n;
        if (c->ssl) {
            int len =
                c->pending_write ? c->pending_write : (int)(left < RECORD_MAX ? left : RECORD_MAX);
            ERR_clear_error();
            n = SSL_write(c->ssl, c->out.data + c->out_off, len);
            int err = n > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, (int)n);
            if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
                c->pending_write = len; /* OpenSSL wants the same write again */
                c->write_blocked = true;
                return true;
            }
            c->pending_write = 0;
        } else {
            n = send(c->fd, c->out.data + c->out_off, left, MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
                c->write_blocked = errno != EINTR;
                if (c->write_blocked)
                    return true;
                continue;
            }
        }
        if (n <= 0) {
            set_error(c, "write to %s failed: %s", c->target->authority,
                      errno ? strerror(errno) : "TLS error");
            fcm_conn_close(c, c->error);
            return false;
        }
        c->out_off += (size_t)n;
    }
    /* the frames hold the access token (HPACK is reversible): no copy outlives its write */
    OPENSSL_cleanse(c->out.data, c->out.len);
    mp_buf_reset(&c->out);
    c->out_off = 0;
    return true;
}

/* Closes a connection that will carry nothing more: drained after GOAWAY, or done. */
static void retire_if_idle(struct fcm_conn *c)
{
    if (c->state < FCM_CONN_SETTLING || c->out_off < c->out.len)
        return;
    if ((c->state == FCM_CONN_DRAINING && c->active == 0) ||
        (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2)))
        fcm_conn_close(c, NULL);
}

void fcm_conn_flush(struct fcm_conn *c)
{
    if (c->state < FCM_CONN_SETTLING || c->write_blocked)
        return;
    for (;;) {
        while (c->out.len - c->out_off < COLLECT_MAX) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(c->h2, &data);
            if (n < 0 || (n > 0 && mp_buf_append(&c->out, data, (size_t)n) != MP_OK)) {
                set_error(c, "HTTP/2 output to %s: %s", c->target->authority,
                          n < 0 ? nghttp2_strerror((int)n) : "out of memory");
                fcm_conn_close(c, c->error);
                return;
            }
            if (n == 0)
                break;
        }
        if (c->out_off == c->out.len)
            break;
        if (!write_out(c) || c->write_blocked)
            return;
    }
    retire_if_idle(c);
}

short fcm_conn_events(const struct fcm_conn *c)
{
    switch (c->state) {
    case FCM_CONN_CLOSED:
        return 0;
    case FCM_CONN_CONNECTING:
        return POLLOUT;
    case FCM_CONN_HANDSHAKE:
        return c->handshake_wants_write ? POLLOUT : POLLIN;
    default:
        return (short)(POLLIN | (c->write_blocked ? POLLOUT : 0));
    }
}

void fcm_conn_io(struct fcm_conn *c, short revents)
{
    bool fresh = false; /* the handshake just ended: the server may have sent already */
    if (c->state == FCM_CONN_CONNECTING || c->state == FCM_CONN_HANDSHAKE) {
        bool ok = c->state == FCM_CONN_CONNECTING ? connected(c) : tls_step(c);
        if (!ok) {
            fcm_conn_close(c, c->error);
            return;
        }
        fresh = true;
    }
    if (c->state < FCM_CONN_SETTLING)
        return;
    if (revents & POLLOUT)
        c->write_blocked = false;
    if (fresh || (revents & (POLLIN | POLLERR | POLLHUP)))
        read_all(c); /* the caller flushes what nghttp2 wants to answer */
}

size_t fcm_conn_room(struct fcm_conn *c)
{
    if (c->state != FCM_CONN_READY)
        return 0;
    if (nghttp2_session_get_next_stream_id(c->h2) > LAST_ID) {
        c->state = FCM_CONN_DRAINING; /* stream ids run out: finish, then reconnect */
        snprintf(c->error, sizeof(c->error), "stream ids used up");
        return 0;
    }
    uint32_t peer =
        nghttp2_session_get_remote_settings(c->h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    size_t limit = peer < FCM_STREAMS ? peer : FCM_STREAMS;
    return c->active < limit ? limit - c->active : 0;
}

enum mp_result fcm_conn_submit(struct fcm_conn *c, struct fcm_xfer *x, const nghttp2_nv *nv,
                               size_t nnv)
{
    nghttp2_data_provider data = {.source.ptr = x, .read_callback = read_body};
    x->off = 0;
    x->status = 0;
    x->overflow = false;
    x->retry_after[0] = '\0';
    mp_buf_reset(&x->resp);
    int32_t id = nghttp2_submit_request(c->h2, NULL, nv, nnv, &data, x);
    if (id < 0)
        return id == NGHTTP2_ERR_NOMEM ? MP_ERR_NOMEM : MP_ERR_NETWORK;
    x->stream_id = id;
    x->conn = c;
    x->prev = NULL;
    x->next = c->xfers;
    if (x->next)
        x->next->prev = x;
    c->xfers = x;
    c->active++;
    return MP_OK;
}

void fcm_conn_cancel(struct fcm_conn *c, struct fcm_xfer *x)
{
    nghttp2_session_set_stream_user_data(c->h2, x->stream_id, NULL);
    nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, x->stream_id, NGHTTP2_CANCEL);
    unlink_xfer(c, x);
}
