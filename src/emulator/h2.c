/* HTTP/2 with libnghttp2 (server session, memory I/O). HTTP messaging checks are off, as Google
 * tolerates what strict servers refuse (firebase-admin sends ":scheme: https:"); we check only
 * that :method and :path are there. SETTINGS like Google's: 100 concurrent streams. */
#include "conn-int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gerror-int.h"
#include "mpcpush/log.h"

#define MAX_STREAMS     100
#define STREAM_WINDOW   (1 << 20)
#define CONN_WINDOW     (1 << 24)
#define HEADER_LIST_MAX 65536
#define OUTPUT_BATCH    (256 * 1024)

struct emu_stream {
    int32_t id;
    char method[16];
    char path[4096];
    char authority[256];
    char authorization[2048];
    char content_type[128];
    int bad_header; /* a header we need did not fit */
    struct mp_buf body;
    int too_large;
    struct mp_buf out; /* the answer's body */
    size_t out_off;
    struct emu_stream *prev, *next;
};

static void stream_free(struct emu_conn *conn, struct emu_stream *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        conn->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    mp_buf_free(&s->body);
    mp_buf_free(&s->out);
    free(s);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct emu_conn *conn = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct emu_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets just this stream */
    s->id = frame->hd.stream_id;
    mp_buf_init(&s->body, EMU_MAX_BODY);
    mp_buf_init(&s->out, 0);
    s->next = conn->streams;
    if (s->next)
        s->next->prev = s;
    conn->streams = s;
    nghttp2_session_set_stream_user_data(session, s->id, s);
    return 0;
}

static void copy_header(struct emu_stream *s, char *dst, size_t size, const uint8_t *value,
                        size_t len)
{
    if (len >= size) {
        s->bad_header = 1;
        return;
    }
    memcpy(dst, value, len);
    dst[len] = '\0';
}

static int name_is(const uint8_t *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp((const char *)name, want, len) == 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    (void)flags;
    (void)user;
    struct emu_stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!s || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (name_is(name, namelen, ":method"))
        copy_header(s, s->method, sizeof(s->method), value, valuelen);
    else if (name_is(name, namelen, ":path"))
        copy_header(s, s->path, sizeof(s->path), value, valuelen);
    else if (name_is(name, namelen, ":authority") ||
             (name_is(name, namelen, "host") && !s->authority[0]))
        copy_header(s, s->authority, sizeof(s->authority), value, valuelen);
    else if (name_is(name, namelen, "authorization"))
        copy_header(s, s->authorization, sizeof(s->authorization), value, valuelen);
    else if (name_is(name, namelen, "content-type"))
        copy_header(s, s->content_type, sizeof(s->content_type), value, valuelen);
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user)
{
    (void)flags;
    (void)user;
    struct emu_stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!s || s->too_large)
        return 0;
    if (mp_buf_append(&s->body, data, len)) {
        s->too_large = 1;
        mp_buf_free(&s->body);
    }
    return 0;
}

static void request_done(struct emu_conn *conn, struct emu_stream *s)
{
    if (conn->close_now)
        return;
    if (conn->goaway_last >= 0 && s->id > conn->goaway_last) {
        nghttp2_submit_rst_stream(conn->h2, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_REFUSED_STREAM);
        return;
    }
    struct emu_request req = {
        .method = s->method,
        .path = s->path,
        .authority = s->authority,
        .authorization = s->authorization[0] ? s->authorization : NULL,
        .content_type = s->content_type[0] ? s->content_type : NULL,
        .body = s->body.data ? s->body.data : "",
        .body_len = s->body.len,
        .tls = conn->tls,
        .too_large = s->too_large,
    };
    if (!s->method[0] || !s->path[0] || s->bad_header) {
        struct emu_response resp;
        emu_response_init(&resp);
        emu_gerror_status(&resp, s->bad_header ? 431 : 400, "INVALID_ARGUMENT",
                          s->bad_header ? "A request header is too large."
                                        : "The request has no :method or :path.");
        emu_h2_deliver(conn, s->id, &resp);
        emu_response_free(&resp);
        return;
    }
    emu_conn_dispatch(conn, s->id, &req);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct emu_conn *conn = user;
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct emu_stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (s)
        request_done(conn, s);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user)
{
    (void)error_code;
    struct emu_stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
    if (s) {
        nghttp2_session_set_stream_user_data(session, stream_id, NULL);
        stream_free(user, s);
    }
    return 0;
}

static ssize_t read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *user)
{
    (void)session;
    (void)stream_id;
    (void)user;
    struct emu_stream *s = source->ptr;
    size_t left = s->out.len - s->out_off;
    size_t n = left < length ? left : length;
    if (n)
        memcpy(buf, s->out.data + s->out_off, n);
    s->out_off += n;
    if (s->out_off == s->out.len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

enum mp_result emu_h2_setup(struct emu_server *srv)
{
    nghttp2_session_callbacks *cb = NULL;
    nghttp2_option *option = NULL;
    if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&option) != 0) {
        nghttp2_session_callbacks_del(cb);
        return MP_ERR_NOMEM;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_option_set_no_http_messaging(option, 1);
    srv->h2_callbacks = cb;
    srv->h2_option = option;
    return MP_OK;
}

void emu_h2_teardown(struct emu_server *srv)
{
    nghttp2_session_callbacks_del(srv->h2_callbacks);
    nghttp2_option_del(srv->h2_option);
    srv->h2_callbacks = NULL;
    srv->h2_option = NULL;
}

enum mp_result emu_h2_start(struct emu_conn *conn)
{
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, HEADER_LIST_MAX},
    };
    struct emu_server *srv = conn->srv;
    if (nghttp2_session_server_new2(&conn->h2, srv->h2_callbacks, conn, srv->h2_option) != 0) {
        conn->h2 = NULL;
        return MP_ERR_NOMEM;
    }
    if (nghttp2_submit_settings(conn->h2, NGHTTP2_FLAG_NONE, settings,
                                sizeof(settings) / sizeof(settings[0])) != 0 ||
        nghttp2_session_set_local_window_size(conn->h2, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0)
        return MP_ERR_NOMEM;
    return MP_OK;
}

void emu_h2_input(struct emu_conn *conn, const unsigned char *data, size_t len)
{
    ssize_t n = nghttp2_session_mem_recv(conn->h2, data, len);
    if (n < 0) {
        MP_DEBUG("h2_recv_failed", "error=\"%s\"", nghttp2_strerror((int)n));
        conn->close_now = 1;
    }
}

void emu_h2_output(struct emu_conn *conn)
{
    while (!conn->close_now && emu_conn_pending_output(conn) < OUTPUT_BATCH) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(conn->h2, &data);
        if (n < 0) {
            conn->close_now = 1;
            return;
        }
        if (n == 0)
            return;
        emu_conn_write(conn, data, (size_t)n);
    }
}

void emu_h2_deliver(struct emu_conn *conn, int32_t stream_id, struct emu_response *resp)
{
    struct emu_stream *s = nghttp2_session_get_stream_user_data(conn->h2, stream_id);
    if (!s || (conn->goaway_last >= 0 && stream_id > conn->goaway_last))
        return; /* reset by the client, or refused by our GOAWAY */
    char status[8], length[24], retry[16];
    snprintf(status, sizeof(status), "%d", resp->status);
    snprintf(length, sizeof(length), "%zu", resp->body.len);
    snprintf(retry, sizeof(retry), "%d", resp->retry_after);
    nghttp2_nv nva[5];
    size_t n = 0;
#define NV(n_, v_) ((nghttp2_nv){(uint8_t *)(n_), (uint8_t *)(v_), strlen(n_), strlen(v_), 0})
    nva[n++] = NV(":status", status);
    nva[n++] = NV("content-type", resp->content_type);
    nva[n++] = NV("content-length", length);
    if (resp->retry_after >= 0)
        nva[n++] = NV("retry-after", retry);
    if (resp->www_authenticate)
        nva[n++] = NV("www-authenticate",
                      "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"");
#undef NV
    mp_buf_free(&s->out);
    s->out = resp->body; /* the stream owns the body until it closes */
    s->out_off = 0;
    mp_buf_init(&resp->body, 0);
    nghttp2_data_provider provider = {.source.ptr = s, .read_callback = read_body};
    if (nghttp2_submit_response(conn->h2, stream_id, nva, n, s->out.len ? &provider : NULL) != 0)
        nghttp2_submit_rst_stream(conn->h2, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_INTERNAL_ERROR);
}

void emu_h2_goaway(struct emu_conn *conn, int32_t stream_id)
{
    int32_t last = stream_id > 2 ? stream_id - 2 : 0;
    if (conn->goaway_last >= 0 && conn->goaway_last <= last)
        return; /* an earlier GOAWAY already refused this stream */
    if (nghttp2_submit_goaway(conn->h2, NGHTTP2_FLAG_NONE, last, NGHTTP2_NO_ERROR, NULL, 0) != 0) {
        conn->close_now = 1;
        return;
    }
    conn->goaway_last = last;
    conn->srv->stats.goaways++;
    emu_conn_cancel_pendings(conn, last); /* those streams will never be answered */
}

int emu_h2_done(struct emu_conn *conn)
{
    if (!conn->h2)
        return 1;
    if (nghttp2_session_want_write(conn->h2))
        return 0;
    if (!nghttp2_session_want_read(conn->h2))
        return 1;
    if (conn->goaway_last < 0)
        return 0;
    /* after our GOAWAY: done once the streams it still covers are finished */
    for (const struct emu_stream *s = conn->streams; s; s = s->next)
        if (s->id <= conn->goaway_last)
            return 0;
    return 1;
}

void emu_h2_free(struct emu_conn *conn)
{
    nghttp2_session_del(conn->h2);
    conn->h2 = NULL;
    while (conn->streams)
        stream_free(conn, conn->streams);
}
