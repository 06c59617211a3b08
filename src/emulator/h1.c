/* A small HTTP/1.1 server front end: request line and headers (up to 16 KiB), a body by
 * Content-Length or chunked, "Expect: 100-continue", keep-alive and pipelining (one request at
 * a time: the next is parsed after the answer, which may be delayed, went out). */
#include "conn-int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gerror-int.h"

#define HEAD_MAX 16384

struct h1_head {
    char method[16];
    char path[4096];
    char host[256];
    char authorization[2048];
    char content_type[128];
    long long content_length; /* -1: none */
    int chunked;
    int keep_alive;
    int expect_continue;
    size_t head_len;
};

enum { NEED_MORE = 0, COMPLETE = 1 };

static int copy_value(char *dst, size_t size, const char *value, size_t len)
{
    if (len >= size)
        return -431;
    memcpy(dst, value, len);
    dst[len] = '\0';
    return 0;
}

/* The origin-form path of target ("/x"), also for absolute-form ("http://h/x"). */
static int set_path(struct h1_head *h, const char *target, size_t len)
{
    const char *scheme_end = len > 8 ? strstr(target, "://") : NULL;
    if (target[0] != '/' && scheme_end && scheme_end < target + len) {
        const char *slash = memchr(scheme_end + 3, '/', (size_t)(target + len - scheme_end - 3));
        if (!slash)
            return copy_value(h->path, sizeof(h->path), "/", 1);
        len -= (size_t)(slash - target);
        target = slash;
    }
    if (target[0] != '/')
        return -400;
    return copy_value(h->path, sizeof(h->path), target, len);
}

static int parse_request_line(const char *line, size_t len, struct h1_head *h)
{
    const char *sp1 = memchr(line, ' ', len);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line + len - sp1 - 1)) : NULL;
    if (!sp2 || sp1 == line || sp2 == sp1 + 1)
        return -400;
    size_t version_len = (size_t)(line + len - sp2 - 1);
    if (version_len != 8 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return -400;
    h->keep_alive = sp2[8] != '0'; /* HTTP/1.1 keeps the connection by default */
    int rc = copy_value(h->method, sizeof(h->method), line, (size_t)(sp1 - line));
    return rc ? rc : set_path(h, sp1 + 1, (size_t)(sp2 - sp1 - 1));
}

static int header_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

static int parse_header(const char *line, size_t len, struct h1_head *h)
{
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line || line[0] == ' ' || line[0] == '\t')
        return -400; /* no name, or obsolete line folding */
    size_t name_len = (size_t)(colon - line);
    const char *v = colon + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vlen = (size_t)(end - v);
    if (header_is(line, name_len, "host"))
        return copy_value(h->host, sizeof(h->host), v, vlen);
    if (header_is(line, name_len, "authorization"))
        return copy_value(h->authorization, sizeof(h->authorization), v, vlen);
    if (header_is(line, name_len, "content-type"))
        return copy_value(h->content_type, sizeof(h->content_type), v, vlen);
    if (header_is(line, name_len, "content-length")) {
        char *num_end;
        errno = 0;
        h->content_length = strtoll(v, &num_end, 10);
        return errno || num_end != end || vlen == 0 || h->content_length < 0 ? -400 : 0;
    }
    if (header_is(line, name_len, "transfer-encoding"))
        h->chunked = vlen >= 7 && strncasecmp(end - 7, "chunked", 7) == 0;
    else if (header_is(line, name_len, "connection") && vlen)
        h->keep_alive = strncasecmp(v, "close", 5) == 0         ? 0
                        : strncasecmp(v, "keep-alive", 10) == 0 ? 1
                                                                : h->keep_alive;
    else if (header_is(line, name_len, "expect"))
        h->expect_continue = vlen == 12 && strncasecmp(v, "100-continue", 12) == 0;
    return 0;
}

/* Parses the head; COMPLETE, NEED_MORE, or minus an HTTP status. */
static int parse_head(const char *data, size_t len, struct h1_head *h)
{
    memset(h, 0, sizeof(*h));
    h->content_length = -1;
    size_t pos = 0;
    for (int lineno = 0;; lineno++) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        if (!nl)
            return len > HEAD_MAX ? -431 : NEED_MORE;
        size_t line_len = (size_t)(nl - data - pos);
        if (line_len && data[pos + line_len - 1] == '\r')
            line_len--;
        const char *line = data + pos;
        pos = (size_t)(nl - data) + 1;
        if (pos > HEAD_MAX)
            return -431;
        if (line_len == 0 && lineno == 0)
            continue; /* tolerate a stray CRLF between requests */
        if (line_len == 0)
            break;
        int rc =
            lineno == 0 ? parse_request_line(line, line_len, h) : parse_header(line, line_len, h);
        if (rc)
            return rc;
    }
    h->head_len = pos;
    return COMPLETE;
}

/* Decodes a chunked body starting at data; sets *total to the bytes it spans. */
static int dechunk(const char *data, size_t len, struct mp_buf *out, size_t *total)
{
    size_t pos = 0;
    for (;;) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        if (!nl)
            return len - pos > 1024 ? -400 : NEED_MORE;
        char *end;
        errno = 0;
        unsigned long long size = strtoull(data + pos, &end, 16);
        if (errno || end == data + pos || size > EMU_MAX_BODY)
            return size > EMU_MAX_BODY ? -413 : -400;
        pos = (size_t)(nl - data) + 1;
        if (size == 0)
            break;
        if (len - pos < size + 2)
            return NEED_MORE;
        if (mp_buf_append(out, data + pos, (size_t)size))
            return -413;
        pos += (size_t)size;
        pos += data[pos] == '\r' ? 2 : 1;
    }
    for (;;) { /* trailers up to the empty line */
        const char *nl = memchr(data + pos, '\n', len - pos);
        if (!nl)
            return NEED_MORE;
        size_t line_len = (size_t)(nl - data - pos);
        pos = (size_t)(nl - data) + 1;
        if (line_len == 0 || (line_len == 1 && data[pos - 2] == '\r'))
            break;
    }
    *total = pos;
    return COMPLETE;
}

static void fail(struct emu_conn *conn, int status)
{
    struct emu_response resp;
    emu_response_init(&resp);
    emu_gerror_status(&resp, status, "INVALID_ARGUMENT",
                      status == 431   ? "Request header fields too large."
                      : status == 413 ? "Request payload is too large."
                                      : "Malformed HTTP/1.1 request.");
    conn->h1.busy = 1;
    conn->h1.keep_alive = 0;
    emu_h1_deliver(conn, &resp);
    emu_response_free(&resp);
    mp_buf_reset(&conn->in);
}

static void consume(struct emu_conn *conn, size_t n)
{
    memmove(conn->in.data, conn->in.data + n, conn->in.len - n);
    conn->in.len -= n;
    conn->in.data[conn->in.len] = '\0';
    conn->h1.continue_sent = 0;
}

static void dispatch(struct emu_conn *conn, const struct h1_head *h, const char *body,
                     size_t body_len)
{
    struct emu_request req = {
        .method = h->method,
        .path = h->path,
        .authority = h->host,
        .authorization = h->authorization[0] ? h->authorization : NULL,
        .content_type = h->content_type[0] ? h->content_type : NULL,
        .body = body,
        .body_len = body_len,
        .tls = conn->tls,
    };
    conn->h1.busy = 1;
    conn->h1.keep_alive = h->keep_alive;
    emu_conn_dispatch(conn, 0, &req);
}

/* Handles the first request in conn->in if it is complete; returns whether one was. */
static int one_request(struct emu_conn *conn)
{
    struct h1_head h;
    int rc = parse_head(conn->in.data, conn->in.len, &h);
    if (rc < 0)
        fail(conn, -rc);
    if (rc != COMPLETE)
        return 0;
    const char *rest = conn->in.data + h.head_len;
    size_t rest_len = conn->in.len - h.head_len, total = 0;
    struct mp_buf chunked;
    mp_buf_init(&chunked, EMU_MAX_BODY);
    if (h.chunked)
        rc = dechunk(rest, rest_len, &chunked, &total);
    else if (h.content_length > EMU_MAX_BODY)
        rc = -413;
    else if (h.content_length > 0)
        rc = (size_t)h.content_length <= rest_len ? COMPLETE : NEED_MORE;
    total = h.chunked ? total : h.content_length > 0 ? (size_t)h.content_length : 0;
    if (rc == NEED_MORE && h.expect_continue && !conn->h1.continue_sent) {
        emu_conn_write(conn, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        conn->h1.continue_sent = 1;
    }
    if (rc < 0)
        fail(conn, -rc);
    if (rc == COMPLETE) {
        dispatch(conn, &h, h.chunked ? (chunked.data ? chunked.data : "") : rest,
                 h.chunked ? chunked.len : total);
        consume(conn, h.head_len + total);
    }
    mp_buf_free(&chunked);
    return rc == COMPLETE;
}

void emu_h1_input(struct emu_conn *conn)
{
    while (!conn->h1.busy && !conn->close_now && !conn->close_after_flush && conn->in.len &&
           one_request(conn))
        ;
}

void emu_h1_deliver(struct emu_conn *conn, const struct emu_response *resp)
{
    char head[512];
    if (!conn->h1.busy)
        return;
    conn->h1.busy = 0;
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n", resp->status,
                     emu_status_text(resp->status), resp->content_type, resp->body.len);
    if (resp->retry_after >= 0)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Retry-After: %d\r\n", resp->retry_after);
    if (resp->www_authenticate)
        n += snprintf(head + n, sizeof(head) - (size_t)n,
                      "WWW-Authenticate: Bearer realm=\"https://accounts.google.com/\", "
                      "error=\"invalid_token\"\r\n");
    if (!conn->h1.keep_alive) {
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Connection: close\r\n");
        conn->close_after_flush = 1;
    }
    n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
    emu_conn_write(conn, head, (size_t)n);
    if (resp->body.len)
        emu_conn_write(conn, resp->body.data, resp->body.len);
}
