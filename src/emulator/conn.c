/* Listeners and connections: accept, TLS handshake and ALPN, protocol sniffing on the plain
 * port (HTTP/2 prior knowledge or HTTP/1.1), reads fed to the front end, a bounded output
 * buffer, delayed answers on timers, and closing (at once for DROP, after flushing otherwise). */
#define _GNU_SOURCE /* accept4 */
#include "conn-int.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "mpcpush/config.h"
#include "mpcpush/log.h"

#define READ_CHUNK      16384
#define OUT_HIGH_WATER  (4 * 1024 * 1024) /* stop reading while this much waits to be sent */
#define IN_LIMIT        (EMU_MAX_BODY + 64 * 1024)
#define H2_PREFACE_HEAD "PRI "

enum { IO_AGAIN = -1, IO_ERROR = -2 };

static void conn_on_event(struct emu_watch *watch, uint32_t events);
static void conn_after_io(struct emu_conn *conn);

/* ---- output ---- */

size_t emu_conn_pending_output(const struct emu_conn *conn)
{
    return conn->out_len - conn->out_off;
}

void emu_conn_write(struct emu_conn *conn, const void *data, size_t len)
{
    if (conn->out_off && conn->out_off == conn->out_len)
        conn->out_off = conn->out_len = 0;
    if (conn->out_len + len > conn->out_cap) {
        if (conn->out_off) { /* compact before growing */
            memmove(conn->out, conn->out + conn->out_off, conn->out_len - conn->out_off);
            conn->out_len -= conn->out_off;
            conn->out_off = 0;
        }
        size_t cap = conn->out_cap ? conn->out_cap : 16384;
        while (cap < conn->out_len + len)
            cap *= 2;
        unsigned char *grown = cap != conn->out_cap ? realloc(conn->out, cap) : conn->out;
        if (!grown) {
            conn->close_now = 1;
            return;
        }
        conn->out = grown;
        conn->out_cap = cap;
    }
    memcpy(conn->out + conn->out_len, data, len);
    conn->out_len += len;
}

static ssize_t io_write(struct emu_conn *conn, const unsigned char *data, size_t len)
{
    if (!conn->ssl) {
        ssize_t n = send(conn->watch.fd, data, len, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? IO_AGAIN : IO_ERROR;
    }
    int n = SSL_write(conn->ssl, data, len > 1 << 30 ? 1 << 30 : (int)len);
    if (n > 0)
        return n;
    int err = SSL_get_error(conn->ssl, n);
    ERR_clear_error();
    return err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ ? IO_AGAIN : IO_ERROR;
}

static void flush(struct emu_conn *conn)
{
    conn->write_blocked = 0;
    while (conn->out_off < conn->out_len) {
        ssize_t n = io_write(conn, conn->out + conn->out_off, conn->out_len - conn->out_off);
        if (n == IO_AGAIN) {
            conn->write_blocked = 1;
            return;
        }
        if (n < 0) {
            conn->close_now = 1;
            return;
        }
        conn->out_off += (size_t)n;
    }
    conn->out_off = conn->out_len = 0;
}

/* ---- input ---- */

static ssize_t io_read(struct emu_conn *conn, unsigned char *buf, size_t len)
{
    if (!conn->ssl) {
        ssize_t n = recv(conn->watch.fd, buf, len, 0);
        if (n >= 0)
            return n;
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? IO_AGAIN : IO_ERROR;
    }
    int n = SSL_read(conn->ssl, buf, (int)len);
    if (n > 0)
        return n;
    int err = SSL_get_error(conn->ssl, n);
    ERR_clear_error();
    if (err == SSL_ERROR_WANT_READ)
        return IO_AGAIN;
    if (err == SSL_ERROR_WANT_WRITE) {
        conn->read_wants_write = 1;
        return IO_AGAIN;
    }
    return err == SSL_ERROR_ZERO_RETURN ? 0 : IO_ERROR;
}

static void start_h2(struct emu_conn *conn)
{
    conn->proto = EMU_PROTO_H2;
    if (emu_h2_start(conn))
        conn->close_now = 1;
}

/* On the plain port: "PRI " starts the HTTP/2 preface, anything else is HTTP/1.1. */
static void sniff(struct emu_conn *conn)
{
    size_t n = conn->in.len < 4 ? conn->in.len : 4;
    if (memcmp(conn->in.data, H2_PREFACE_HEAD, n) != 0) {
        conn->proto = EMU_PROTO_H1;
        return;
    }
    if (n < 4)
        return;
    start_h2(conn);
    if (!conn->close_now)
        emu_h2_input(conn, (const unsigned char *)conn->in.data, conn->in.len);
    mp_buf_reset(&conn->in);
}

static void feed(struct emu_conn *conn, const unsigned char *data, size_t len)
{
    if (conn->proto == EMU_PROTO_H2) {
        emu_h2_input(conn, data, len);
        return;
    }
    if (mp_buf_append(&conn->in, data, len)) {
        conn->close_now = 1;
        return;
    }
    if (conn->proto == EMU_PROTO_NONE)
        sniff(conn);
    if (conn->proto == EMU_PROTO_H1)
        emu_h1_input(conn);
}

static void conn_read(struct emu_conn *conn)
{
    unsigned char buf[READ_CHUNK];
    conn->read_wants_write = 0;
    while (!conn->close_now && !conn->peer_closed) {
        ssize_t n = io_read(conn, buf, sizeof(buf));
        if (n == IO_AGAIN)
            return;
        if (n <= 0) {
            conn->peer_closed = 1;
            return;
        }
        feed(conn, buf, (size_t)n);
    }
}

static void handshake(struct emu_conn *conn)
{
    int rc = SSL_do_handshake(conn->ssl);
    if (rc != 1) {
        int err = SSL_get_error(conn->ssl, rc);
        ERR_clear_error();
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
            conn->close_now = 1;
        conn->read_wants_write = err == SSL_ERROR_WANT_WRITE;
        return;
    }
    conn->handshaking = 0;
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(conn->ssl, &alpn, &alpn_len);
    if (alpn_len == 2 && memcmp(alpn, "h2", 2) == 0)
        start_h2(conn);
    else
        conn->proto = EMU_PROTO_H1;
    conn_read(conn);
}

/* ---- delayed answers ---- */

static void deliver(struct emu_conn *conn, int32_t stream_id, struct emu_response *resp)
{
    if (resp->action == EMU_DROP || (resp->action == EMU_GOAWAY && conn->proto != EMU_PROTO_H2))
        conn->close_now = 1;
    else if (resp->action == EMU_GOAWAY)
        emu_h2_goaway(conn, stream_id);
    else if (conn->proto == EMU_PROTO_H2)
        emu_h2_deliver(conn, stream_id, resp);
    else
        emu_h1_deliver(conn, resp);
}

static void pending_unlink(struct emu_pending *p)
{
    struct emu_conn *conn = p->conn;
    if (p->prev)
        p->prev->next = p->next;
    else
        conn->pendings = p->next;
    if (p->next)
        p->next->prev = p->prev;
    conn->n_pendings--;
}

static void pending_fire(struct emu_timer *timer)
{
    struct emu_pending *p = (struct emu_pending *)timer;
    struct emu_conn *conn = p->conn;
    pending_unlink(p);
    deliver(conn, p->stream_id, &p->resp);
    emu_response_free(&p->resp);
    free(p);
    conn_after_io(conn);
}

void emu_conn_cancel_pendings(struct emu_conn *conn, int32_t last_stream)
{
    struct emu_pending *p = conn->pendings;
    while (p) {
        struct emu_pending *next = p->next;
        if (last_stream < 0 || p->stream_id > last_stream) {
            emu_loop_timer_stop(conn->srv->loop, &p->timer);
            pending_unlink(p);
            emu_response_free(&p->resp);
            free(p);
        }
        p = next;
    }
}

void emu_conn_dispatch(struct emu_conn *conn, int32_t stream_id, const struct emu_request *req)
{
    struct emu_response resp;
    emu_response_init(&resp);
    emu_handle(conn->srv, req, &resp);
    struct emu_pending *p = resp.delay_ms ? calloc(1, sizeof(*p)) : NULL;
    if (p) {
        p->timer.index = SIZE_MAX;
        p->timer.on_fire = pending_fire;
        p->conn = conn;
        p->stream_id = stream_id;
        p->resp = resp;
        if (emu_loop_timer_start(conn->srv->loop, &p->timer, resp.delay_ms) == MP_OK) {
            p->next = conn->pendings;
            if (p->next)
                p->next->prev = p;
            conn->pendings = p;
            conn->n_pendings++;
            return;
        }
        free(p);
    }
    deliver(conn, stream_id, &resp);
    emu_response_free(&resp);
}

/* ---- lifecycle ---- */

static void conn_close(struct emu_conn *conn)
{
    struct emu_server *srv = conn->srv;
    emu_conn_cancel_pendings(conn, -1);
    emu_h2_free(conn);
    if (conn->ssl) {
        if (!conn->handshaking)
            SSL_shutdown(conn->ssl); /* best effort close_notify; the socket is non-blocking */
        SSL_free(conn->ssl);
        ERR_clear_error();
    }
    emu_loop_unwatch(srv->loop, &conn->watch);
    close(conn->watch.fd);
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        srv->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    srv->stats.open_connections--;
    mp_buf_free(&conn->in);
    free(conn->out);
    free(conn);
}

static int should_close(struct emu_conn *conn)
{
    int flushed = emu_conn_pending_output(conn) == 0;
    if (conn->close_now)
        return 1;
    if (conn->handshaking)
        return conn->peer_closed;
    if (conn->proto == EMU_PROTO_H2)
        return conn->peer_closed || (flushed && emu_h2_done(conn));
    if (conn->close_after_flush && flushed)
        return 1;
    return conn->peer_closed && !conn->h1.busy && flushed;
}

static uint32_t wanted_events(const struct emu_conn *conn)
{
    uint32_t events = 0;
    int backlog = emu_conn_pending_output(conn) > OUT_HIGH_WATER ||
                  (conn->h1.busy && conn->in.len > 64 * 1024);
    if (!conn->peer_closed && !backlog)
        events |= EPOLLIN;
    if (conn->write_blocked || conn->read_wants_write)
        events |= EPOLLOUT;
    return events;
}

/* After any activity: resume HTTP/1.1 parsing, move HTTP/2 output, write, then close or
 * update what we wait for. conn may be freed. */
static void conn_after_io(struct emu_conn *conn)
{
    if (!conn->close_now && conn->proto == EMU_PROTO_H1 && !conn->h1.busy && conn->in.len)
        emu_h1_input(conn);
    while (!conn->close_now) {
        if (conn->proto == EMU_PROTO_H2)
            emu_h2_output(conn); /* a bounded batch; loop while the socket takes it */
        if (!emu_conn_pending_output(conn))
            break;
        flush(conn);
        if (conn->write_blocked)
            break;
    }
    if (should_close(conn) || emu_loop_watch(conn->srv->loop, &conn->watch, wanted_events(conn)))
        conn_close(conn);
}

static void conn_on_event(struct emu_watch *watch, uint32_t events)
{
    struct emu_conn *conn = (struct emu_conn *)watch;
    if ((events & EPOLLERR) || ((events & EPOLLHUP) && conn->peer_closed))
        conn->close_now = 1;
    else if (conn->handshaking)
        handshake(conn);
    else if (events & (EPOLLIN | EPOLLHUP) || (conn->read_wants_write && (events & EPOLLOUT)))
        conn_read(conn);
    conn_after_io(conn);
}

static struct emu_conn *conn_new(struct emu_listener *listener, int fd)
{
    struct emu_server *srv = listener->srv;
    struct emu_conn *conn = calloc(1, sizeof(*conn));
    if (!conn)
        return NULL;
    conn->watch.fd = fd;
    conn->watch.on_event = conn_on_event;
    conn->srv = srv;
    conn->tls = listener->tls;
    conn->goaway_last = -1;
    mp_buf_init(&conn->in, IN_LIMIT);
    if (listener->tls) {
        conn->ssl = SSL_new(srv->ssl_ctx);
        if (!conn->ssl || SSL_set_fd(conn->ssl, fd) != 1) {
            SSL_free(conn->ssl);
            free(conn);
            return NULL;
        }
        SSL_set_accept_state(conn->ssl);
        conn->handshaking = 1;
    }
    conn->next = srv->conns;
    if (conn->next)
        conn->next->prev = conn;
    srv->conns = conn;
    srv->stats.connections++;
    srv->stats.open_connections++;
    return conn;
}

static void accept_one(struct emu_listener *listener, int fd)
{
    struct emu_server *srv = listener->srv;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct emu_conn *conn = srv->stats.open_connections < (unsigned long)srv->opts->max_connections
                                ? conn_new(listener, fd)
                                : NULL;
    if (!conn) {
        close(fd);
        return;
    }
    if (emu_loop_watch(srv->loop, &conn->watch, EPOLLIN))
        conn->close_now = 1;
    conn_after_io(conn); /* a TLS client may already have sent its hello */
}

static void listener_on_event(struct emu_watch *watch, uint32_t events)
{
    struct emu_listener *listener = (struct emu_listener *)watch;
    (void)events;
    for (int i = 0; i < 256; i++) {
        int fd = accept4(watch->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                MP_WARN("accept_failed", "error=\"%s\"", strerror(errno));
            return;
        }
        accept_one(listener, fd);
    }
}

static int bind_listen(const char *host, int port)
{
    char service[16];
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    snprintf(service, sizeof(service), "%d", port);
    if (getaddrinfo(host[0] ? host : NULL, service, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
                        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 4096) != 0)) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof(addr);
    if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0)
        return -1;
    if (addr.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
    return ntohs(((struct sockaddr_in *)&addr)->sin_port);
}

enum mp_result emu_listener_open(struct emu_server *srv, struct emu_listener *listener,
                                 const char *hostport, int tls)
{
    char host[256];
    int port;
    memset(listener, 0, sizeof(*listener));
    listener->watch.fd = -1;
    if (mp_config_split_hostport(hostport, host, sizeof(host), &port))
        return MP_ERR_INVALID;
    listener->watch.fd = bind_listen(host, port);
    if (listener->watch.fd < 0)
        return MP_ERR_IO;
    listener->watch.on_event = listener_on_event;
    listener->srv = srv;
    listener->tls = tls;
    listener->port = bound_port(listener->watch.fd);
    if (listener->port < 0)
        return MP_ERR_IO;
    return emu_loop_watch(srv->loop, &listener->watch, EPOLLIN);
}

void emu_listener_close(struct emu_server *srv, struct emu_listener *listener)
{
    if (listener->watch.fd < 0)
        return;
    emu_loop_unwatch(srv->loop, &listener->watch);
    close(listener->watch.fd);
    listener->watch.fd = -1;
}

void emu_conns_close_all(struct emu_server *srv)
{
    while (srv->conns)
        conn_close(srv->conns);
}
