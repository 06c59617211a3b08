/* Test support for the abuse tests: see abuse_util.h. */
#include "abuse_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int ab_connect_from(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (src) {
        struct sockaddr_in local = {.sin_family = AF_INET};
        if (inet_pton(AF_INET, src, &local.sin_addr) != 1 ||
            bind(fd, (struct sockaddr *)&local, sizeof(local)) != 0) {
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static bool send_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Reads into buf[*used..size-1) until stop(buf) or EOF or the deadline; returns 1 on stop, 0 on
 * EOF or reset, -1 on timeout. */
static int read_until(int fd, char *buf, size_t size, size_t *used, long deadline,
                      bool (*stop)(const char *, size_t, void *), void *arg)
{
    for (;;) {
        if (stop(buf, *used, arg))
            return 1;
        long left = deadline - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int ready = poll(&pfd, 1, (int)left);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0)
            continue;
        char scratch[4096];
        bool full = *used + 1 >= size;
        ssize_t n =
            recv(fd, full ? scratch : buf + *used, full ? sizeof(scratch) : size - *used - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        if (!full) { /* beyond the buffer: read and dropped */
            *used += (size_t)n;
            buf[*used] = '\0';
        }
    }
}

static bool head_done(const char *buf, size_t used, void *arg)
{
    (void)used;
    (void)arg;
    return strstr(buf, "\r\n\r\n") != NULL;
}

/* arg: bytes of body still wanted. */
static bool body_done(const char *buf, size_t used, void *arg)
{
    (void)buf;
    return used >= *(size_t *)arg;
}

static void read_answer(int fd, long deadline, struct ab_resp *r)
{
    char head[sizeof(r->head)];
    size_t used = 0;
    head[0] = '\0';
    int got = read_until(fd, head, sizeof(head), &used, deadline, head_done, NULL);
    if (got == 0)
        r->closed = true;
    if (sscanf(head, "HTTP/1.%*d %d", &r->status) != 1) {
        r->status = got < 0 ? -1 : 0;
        return;
    }
    char *end = strstr(head, "\r\n\r\n");
    if (!end)
        return;
    size_t head_len = (size_t)(end + 4 - head);
    snprintf(r->head, sizeof(r->head), "%.*s", (int)head_len, head);
    size_t have = used - head_len;
    if (have >= sizeof(r->body))
        have = sizeof(r->body) - 1;
    memcpy(r->body, head + head_len, have);
    r->body[have] = '\0';
    char value[32];
    ab_header(r, "Content-Length", value, sizeof(value));
    size_t want = value[0] ? strtoul(value, NULL, 10) : 0;
    if (want > sizeof(r->body) - 1)
        want = sizeof(r->body) - 1;
    if (have < want && !r->closed) {
        size_t body_used = have;
        if (read_until(fd, r->body, want + 1, &body_used, deadline, body_done, &want) == 0)
            r->closed = true;
    }
}

void ab_exchange(int fd, const void *raw, size_t len, int timeout_ms, struct ab_resp *r)
{
    memset(r, 0, sizeof(*r));
    long t0 = now_ms();
    if (fd < 0) {
        r->closed = true;
        return;
    }
    if (!send_all(fd, raw, len)) {
        /* refused while sending: still read whatever answer came */
        r->closed = true;
    }
    read_answer(fd, t0 + timeout_ms, r);
    r->ms = now_ms() - t0;
}

void ab_raw(const char *src, int port, const void *raw, size_t len, int timeout_ms,
            struct ab_resp *r)
{
    int fd = ab_connect_from(src, port);
    ab_exchange(fd, raw, len, timeout_ms, r);
    if (fd >= 0)
        close(fd);
}

void ab_http(const char *src, int port, const char *method, const char *path,
             const char *const *headers, const char *body, int timeout_ms, struct ab_resp *r)
{
    size_t cap = 4096 + (body ? strlen(body) : 0);
    for (int i = 0; headers && headers[i]; i++)
        cap += strlen(headers[i]) + 2;
    char *req = malloc(cap);
    if (!req) {
        memset(r, 0, sizeof(*r));
        return;
    }
    int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n", method,
                     path);
    for (int i = 0; headers && headers[i]; i++)
        n += snprintf(req + n, cap - (size_t)n, "%s\r\n", headers[i]);
    if (body)
        n += snprintf(req + n, cap - (size_t)n, "Content-Length: %zu\r\n", strlen(body));
    n += snprintf(req + n, cap - (size_t)n, "\r\n%s", body ? body : "");
    ab_raw(src, port, req, (size_t)n, timeout_ms, r);
    free(req);
}

const char *ab_header(const struct ab_resp *r, const char *name, char *out, size_t size)
{
    size_t nlen = strlen(name);
    out[0] = '\0';
    for (const char *line = strstr(r->head, "\r\n"); line && line[2];
         line = strstr(line + 2, "\r\n")) {
        const char *p = line + 2;
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            p += nlen + 1;
            while (*p == ' ')
                p++;
            size_t vlen = strcspn(p, "\r\n");
            snprintf(out, size, "%.*s", (int)vlen, p);
            break;
        }
    }
    return out;
}

const char *ab_error_code(const struct ab_resp *r, char *out, size_t size)
{
    out[0] = '\0';
    const char *p = strstr(r->body, "\"code\":\"");
    if (p) {
        p += 8;
        snprintf(out, size, "%.*s", (int)strcspn(p, "\""), p);
    }
    return out;
}

bool ab_is_open(int fd)
{
    for (;;) {
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0)
            continue; /* an answer (a 408, say) before the close: drop it, look again */
        if (n == 0)
            return false;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK;
    }
}

void ab_wait_window(int need_s)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long left_ms = 60000L - (ts.tv_sec % 60) * 1000L - ts.tv_nsec / 1000000L;
    if (left_ms < need_s * 1000L)
        usleep((useconds_t)(left_ms + 200) * 1000U);
}
