/* A scripted FCM endpoint for the FCM client's tests (tests/support/fake_fcm.h). */
#include "fake_fcm.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static ssize_t fake_read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                              size_t length, uint32_t *flags, nghttp2_data_source *source,
                              void *user)
{
    const char *body = source->ptr;
    size_t *off = nghttp2_session_get_stream_user_data(session, stream_id);
    size_t left = strlen(body) - *off, n = left < length ? left : length;
    memcpy(buf, body + *off, n);
    *off += n;
    if (*off == strlen(body))
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void fake_respond(struct fake_conn *fc, int32_t id, const char *status,
                         const char *retry_after, const char *body)
{
    static size_t offsets[1 << 16]; /* per stream id / 2: the fake's streams are few */
    nghttp2_nv nv[] = {
        {(uint8_t *)":status", (uint8_t *)status, 7, strlen(status), NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)"application/json", 12, 16, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"retry-after", (uint8_t *)retry_after, 11,
         retry_after ? strlen(retry_after) : 0, NGHTTP2_NV_FLAG_NONE},
    };
    size_t *off = &offsets[((uint32_t)id / 2) % (1 << 16)];
    *off = 0;
    nghttp2_session_set_stream_user_data(fc->h2, id, off);
    nghttp2_data_provider data = {.source.ptr = (void *)body, .read_callback = fake_read_body};
    nghttp2_submit_response(fc->h2, id, nv, retry_after ? 3 : 2, &data);
}

static const char quota_body[] =
    "{\"error\":{\"code\":429,\"message\":\"Quota exceeded.\",\"status\":\"RESOURCE_EXHAUSTED\","
    "\"details\":[{\"@type\":\"type.googleapis.com/google.firebase.fcm.v1.FcmError\","
    "\"errorCode\":\"QUOTA_EXCEEDED\"}]}}";

static void fake_answer(struct fake_conn *fc, int32_t id)
{
    struct fake *f = fc->f;
    int number = atomic_fetch_add(&f->requests, 1) + 1;
    static char bodies[FAKE_PENDING][128];
    char *body = bodies[number % FAKE_PENDING];
    snprintf(body, 128, "{\"name\":\"projects/p/messages/%d\"}", number);
    if (f->mode == FAKE_SILENT)
        return;
    if (f->mode == FAKE_RESET_FIRST && number <= f->reset_first)
        nghttp2_submit_rst_stream(fc->h2, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
    else if (f->mode == FAKE_QUOTA)
        fake_respond(fc, id, "429", "42", quota_body);
    else if (f->mode == FAKE_HUGE)
        fake_respond(fc, id, "500", NULL, f->huge);
    else
        fake_respond(fc, id, "200", NULL, body);
}

static int fake_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct fake_conn *fc = user;
    fc->head_len = 0;
    pthread_mutex_lock(&fc->f->lock);
    if (++fc->f->open_streams > fc->f->max_open_streams)
        fc->f->max_open_streams = fc->f->open_streams;
    pthread_mutex_unlock(&fc->f->lock);
    return 0;
}

static int fake_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                          size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                          void *user)
{
    struct fake_conn *fc = user;
    int n = snprintf(fc->head + fc->head_len, sizeof(fc->head) - fc->head_len, "%.*s: %.*s\r\n",
                     (int)namelen, name, (int)valuelen, value);
    if (n > 0 && fc->head_len + (size_t)n < sizeof(fc->head))
        fc->head_len += (size_t)n;
    return 0;
}

static int fake_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct fake_conn *fc = user;
    if (frame->hd.type == NGHTTP2_HEADERS) {
        pthread_mutex_lock(&fc->f->lock);
        snprintf(fc->f->head, sizeof(fc->f->head), "%.*s", (int)fc->head_len, fc->head);
        pthread_mutex_unlock(&fc->f->lock);
    }
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    if (fc->f->mode == FAKE_TWO_STREAMS && fc->npending < FAKE_PENDING)
        fc->pending[fc->npending++] = frame->hd.stream_id; /* answered on the next tick */
    else
        fake_answer(fc, frame->hd.stream_id);
    return 0;
}

static int fake_on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                                void *user)
{
    struct fake_conn *fc = user;
    pthread_mutex_lock(&fc->f->lock);
    fc->f->open_streams--;
    pthread_mutex_unlock(&fc->f->lock);
    return 0;
}

static void fake_conn_close(struct fake_conn *fc)
{
    nghttp2_session_del(fc->h2);
    close(fc->fd);
    memset(fc, 0, sizeof(*fc));
    fc->fd = -1;
}

static void fake_conn_start(struct fake *f, int fd)
{
    struct fake_conn *fc = NULL;
    for (int i = 0; i < FAKE_CONNS && !fc; i++)
        if (f->conns[i].fd < 0)
            fc = &f->conns[i];
    if (!fc) {
        close(fd);
        return;
    }
    nghttp2_session_callbacks *cb;
    assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, fake_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, fake_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, fake_on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, fake_on_stream_close);
    fc->f = f;
    fc->fd = fd;
    assert_int_equal(nghttp2_session_server_new(&fc->h2, cb, fc), 0);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry settings = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                                       f->mode == FAKE_TWO_STREAMS ? 2 : 100};
    nghttp2_submit_settings(fc->h2, NGHTTP2_FLAG_NONE, &settings, 1);
}

/* Reads what came, answers what is due, writes what nghttp2 has; false when closed. */
static bool fake_conn_io(struct fake_conn *fc, bool readable)
{
    uint8_t buf[16384];
    ssize_t n = readable ? read(fc->fd, buf, sizeof(buf)) : 0;
    if (readable && (n <= 0 || nghttp2_session_mem_recv(fc->h2, buf, (size_t)n) < 0))
        return false;
    if (!readable) {
        for (int i = 0; i < fc->npending; i++)
            fake_answer(fc, fc->pending[i]);
        fc->npending = 0;
    }
    const uint8_t *data;
    while ((n = nghttp2_session_mem_send(fc->h2, &data)) > 0)
        for (ssize_t off = 0; off < n;) {
            ssize_t w = send(fc->fd, data + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (w <= 0)
                return false;
            off += w;
        }
    return n == 0;
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd pfd[FAKE_CONNS + 1] = {{.fd = f->fd, .events = POLLIN}};
        for (int i = 0; i < FAKE_CONNS; i++)
            pfd[i + 1] = (struct pollfd){.fd = f->conns[i].fd, .events = POLLIN};
        int rc = poll(pfd, FAKE_CONNS + 1, 20);
        if (rc > 0 && (pfd[0].revents & POLLIN)) {
            int cfd = accept(f->fd, NULL, NULL);
            if (cfd >= 0)
                fake_conn_start(f, cfd);
        }
        for (int i = 0; i < FAKE_CONNS; i++) {
            struct fake_conn *fc = &f->conns[i];
            bool readable = rc > 0 && pfd[i + 1].fd == fc->fd && pfd[i + 1].revents;
            if (fc->fd >= 0 && !fake_conn_io(fc, readable))
                fake_conn_close(fc);
        }
    }
    for (int i = 0; i < FAKE_CONNS; i++)
        if (f->conns[i].fd >= 0)
            fake_conn_close(&f->conns[i]);
    return NULL;
}

int fake_setup(void **state)
{
    struct fake *f = calloc(1, sizeof(*f));
    pthread_mutex_init(&f->lock, NULL);
    for (int i = 0; i < FAKE_CONNS; i++)
        f->conns[i].fd = -1;
    f->huge = malloc(FAKE_HUGE_N + 1);
    memset(f->huge, 'x', FAKE_HUGE_N);
    f->huge[FAKE_HUGE_N] = '\0';
    f->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    assert_int_equal(bind(f->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(f->fd, 128), 0);
    assert_int_equal(getsockname(f->fd, (struct sockaddr *)&addr, &len), 0);
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d", ntohs(addr.sin_port));
    *state = f;
    return 0;
}

void fake_start(struct fake *f)
{
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

int fake_teardown(void **state)
{
    struct fake *f = *state;
    atomic_store(&f->stop, true);
    if (f->thread)
        pthread_join(f->thread, NULL);
    close(f->fd);
    pthread_mutex_destroy(&f->lock);
    free(f->huge);
    free(f);
    return 0;
}

struct mp_fcm_client *fake_client(struct fake *f, int timeout)
{
    struct mp_fcm_client *c = NULL;
    fake_start(f);
    assert_int_equal(mp_fcm_client_new(f->base, "p", NULL, 2, timeout, &c), MP_OK);
    return c;
}
