/* `mpcpush-bench post`: an epoll HTTP/1.1 keep-alive client that posts prepared webhooks.
 *   closed loop (default): every connection sends its next request as soon as the previous one
 *     is answered, for --warmup + --duration seconds; figures cover the --duration window.
 *   open loop (--rate R): request i is due at t0 + i / R whatever the answers; latency counts
 *     from the due time (no coordinated omission); --record FILE writes "device unix_us" of
 *     each 200 for `mpcpush-bench match`.
 * Every loop is bounded: by the number of prepared requests and by a hard deadline. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench-int.h"

#define RBUF      8192
#define MAX_CONNS 4096
#define DRAIN_NS  (10ull * 1000000000ull)

struct conn {
    int fd;
    bool connected;
    bool busy;     /* a request is in flight */
    bool want_out; /* EPOLLOUT is registered */
    size_t req;    /* index of the request in flight */
    size_t sent;
    uint64_t t_start; /* mono ns the latency counts from */
    char rbuf[RBUF];
    size_t rlen;
};

struct post {
    struct bench_requests reqs;
    struct sockaddr_in addr;
    int epfd;
    struct conn *conns;
    int nconns;
    double rate; /* 0: closed loop */
    uint64_t t0, t_measure, t_end, t_deadline;
    size_t next; /* next request to send */
    /* figures */
    struct bench_samples lat;
    size_t ok, errors, other_status, in_window, reconnects;
    uint64_t first_window_ns, last_window_ns;
    bool exhausted;
    FILE *record;
};

static int set_events(struct post *p, struct conn *c, bool out)
{
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    c->want_out = out;
    return epoll_ctl(p->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static int conn_open(struct post *p, struct conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->connected = false;
    c->busy = false;
    c->rlen = 0;
    if (connect(c->fd, (struct sockaddr *)&p->addr, sizeof(p->addr)) != 0 && errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    c->want_out = true;
    return epoll_ctl(p->epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static void conn_reopen(struct post *p, struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
    p->reconnects++;
    if (conn_open(p, c) != 0)
        fprintf(stderr, "mpcpush-bench: reconnect failed: %s\n", strerror(errno));
}

/* Writes what is left of the request in flight; registers EPOLLOUT when the socket is full. */
static int conn_flush(struct post *p, struct conn *c)
{
    const char *data = p->reqs.arena + c->req * p->reqs.slot;
    size_t len = p->reqs.len[c->req];
    while (c->sent < len) {
        ssize_t n = send(c->fd, data + c->sent, len - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return c->want_out ? 0 : set_events(p, c, true);
        return -1;
    }
    return c->want_out ? set_events(p, c, false) : 0;
}

static void conn_start(struct post *p, struct conn *c, size_t req, uint64_t t_start)
{
    c->busy = true;
    c->req = req;
    c->sent = 0;
    c->rlen = 0;
    c->t_start = t_start;
    if (conn_flush(p, c) != 0) {
        p->errors++;
        conn_reopen(p, c);
    }
}

/* The due time of request i in open loop. */
static uint64_t due_ns(const struct post *p, size_t i)
{
    return p->t0 + (uint64_t)((double)i * 1e9 / p->rate);
}

/* Gives the next request to an idle connection, if one is due. */
static void feed(struct post *p, struct conn *c, uint64_t now)
{
    if (c->busy || !c->connected || (p->rate == 0 && now >= p->t_end))
        return;
    if (p->next >= p->reqs.count) {
        p->exhausted = true;
        return;
    }
    if (p->rate > 0) {
        if (due_ns(p, p->next) > now)
            return;
        conn_start(p, c, p->next, due_ns(p, p->next));
    } else {
        conn_start(p, c, p->next, now);
    }
    p->next++;
}

static void account(struct post *p, struct conn *c, int status, uint64_t now)
{
    if (status == 200) {
        p->ok++;
        if (p->record)
            fprintf(p->record, "%lld %lld\n", p->reqs.device[c->req], (long long)bench_unix_us());
    } else {
        p->other_status++;
        if (p->other_status <= 5)
            fprintf(stderr, "mpcpush-bench: status %d: %.*s\n", status,
                    (int)(c->rlen < 300 ? c->rlen : 300), c->rbuf);
    }
    bool in_window = now >= p->t_measure && now < p->t_end && c->t_start >= p->t_measure;
    if (p->rate > 0)
        in_window = true; /* open loop: every request counts */
    if (in_window && status == 200) {
        p->in_window++;
        if (!p->first_window_ns)
            p->first_window_ns = now;
        p->last_window_ns = now;
        bench_samples_add(&p->lat, (now - c->t_start) / 1000);
    }
}

/* Parses a complete response in c->rbuf: 1 when complete (status in *status, *close set), 0
 * when more bytes are needed, -1 when it cannot be parsed. */
static int parse_response(struct conn *c, int *status, bool *close_after)
{
    c->rbuf[c->rlen < RBUF ? c->rlen : RBUF - 1] = '\0';
    char *end = strstr(c->rbuf, "\r\n\r\n");
    if (!end)
        return c->rlen >= RBUF - 1 ? -1 : 0;
    size_t head = (size_t)(end - c->rbuf) + 4;
    if (strncmp(c->rbuf, "HTTP/1.", 7) != 0 || c->rlen < 12)
        return -1;
    *status = atoi(c->rbuf + 9);
    long long length = -1;
    *close_after = false;
    for (char *line = strstr(c->rbuf, "\r\n"); line && line < end;
         line = strstr(line + 2, "\r\n")) {
        char *h = line + 2;
        if (strncasecmp(h, "Content-Length:", 15) == 0)
            length = atoll(h + 15);
        else if (strncasecmp(h, "Connection:", 11) == 0 && strncasecmp(h + 11, " close", 6) == 0)
            *close_after = true;
        else if (strncasecmp(h, "Transfer-Encoding:", 18) == 0)
            return -1; /* the server answers with a length; chunked is not expected */
    }
    if (length < 0)
        return -1;
    if (head + (size_t)length > RBUF - 1)
        return -1;
    return c->rlen >= head + (size_t)length ? 1 : 0;
}

static void on_readable(struct post *p, struct conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, RBUF - 1 - c->rlen, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0 || !c->busy) { /* closed, failed, or bytes nobody asked for */
            if (c->busy)
                p->errors++;
            conn_reopen(p, c);
            return;
        }
        c->rlen += (size_t)n;
        int status = 0;
        bool close_after = false;
        int done = parse_response(c, &status, &close_after);
        if (done < 0) {
            p->errors++;
            conn_reopen(p, c);
            return;
        }
        if (done == 0)
            continue;
        uint64_t now = bench_mono_ns();
        account(p, c, status, now);
        c->busy = false;
        c->rlen = 0;
        if (close_after) {
            conn_reopen(p, c);
            return;
        }
        feed(p, c, now);
        return;
    }
}

static void on_event(struct post *p, struct conn *c, uint32_t events)
{
    if (!c->connected && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            fprintf(stderr, "mpcpush-bench: connect: %s\n", strerror(err));
            p->errors++;
            close(c->fd);
            c->fd = -1;
            return;
        }
        c->connected = true;
        set_events(p, c, false);
        feed(p, c, bench_mono_ns());
        return;
    }
    if (events & EPOLLIN) {
        on_readable(p, c);
        return;
    }
    if (events & (EPOLLERR | EPOLLHUP)) {
        if (c->busy)
            p->errors++;
        conn_reopen(p, c);
        return;
    }
    if ((events & EPOLLOUT) && c->busy && conn_flush(p, c) != 0) {
        p->errors++;
        conn_reopen(p, c);
    }
}

static size_t busy_count(const struct post *p)
{
    size_t n = 0;
    for (int i = 0; i < p->nconns; i++)
        n += p->conns[i].busy;
    return n;
}

/* The epoll timeout: until the next due request (open loop) or the end of the window. */
static int wait_ms(const struct post *p, uint64_t now)
{
    uint64_t until = now < p->t_end ? p->t_end : p->t_deadline;
    if (p->rate > 0 && p->next < p->reqs.count && now < p->t_end) {
        uint64_t due = due_ns(p, p->next);
        if (due < until)
            until = due;
    }
    if (until <= now)
        return 0;
    uint64_t ms = (until - now + 999999) / 1000000;
    return ms > 100 ? 100 : (int)ms;
}

static void run(struct post *p)
{
    struct epoll_event events[256];
    for (;;) {
        uint64_t now = bench_mono_ns();
        if (now >= p->t_end && busy_count(p) == 0)
            break;
        if (now >= p->t_deadline) {
            fprintf(stderr, "mpcpush-bench: %zu requests still unanswered at the deadline\n",
                    busy_count(p));
            p->errors += busy_count(p);
            break;
        }
        int n = epoll_wait(p->epfd, events, 256, wait_ms(p, now));
        for (int i = 0; i < n; i++)
            on_event(p, events[i].data.ptr, events[i].events);
        now = bench_mono_ns();
        for (int i = 0; i < p->nconns && now < p->t_end; i++)
            feed(p, &p->conns[i], now);
        if (p->exhausted && now < p->t_end)
            p->t_end = now; /* every prepared request is sent: the window ends here */
    }
}

static int parse_url(const char *url, struct sockaddr_in *addr, char *host, size_t host_size)
{
    char ip[64];
    int port = 0;
    if (sscanf(url, "http://%63[0-9.]:%d", ip, &port) != 2 || port < 1 || port > 65535)
        return -1;
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &addr->sin_addr) != 1)
        return -1;
    if ((ntohl(addr->sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "mpcpush-bench: only loopback targets (127.0.0.0/8) are allowed\n");
        return -1;
    }
    snprintf(host, host_size, "%s:%d", ip, port);
    return 0;
}

struct post_opts {
    const char *url, *record;
    bool prepare_only; /* sign (into --cache) and exit */
    struct bench_webhook_plan plan;
    int connections;
    double duration, warmup, rate;
};

static void parse_opts(int argc, char **argv, struct post_opts *o)
{
    *o = (struct post_opts){.connections = 64, .duration = 10, .warmup = 1};
    o->plan = (struct bench_webhook_plan){
        .dev_first = 1, .dev_count = 10000, .payload_bytes = 512, .count = 0, .threads = 2};
    for (int i = 0; i < argc; i++) {
        const char *name = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        i++;
        if (!strcmp(name, "--url"))
            o->url = v;
        else if (!strcmp(name, "--key"))
            o->plan.key_file = v;
        else if (!strcmp(name, "--record"))
            o->record = v;
        else if (!strcmp(name, "--cache"))
            o->plan.cache_file = v;
        else if (!strcmp(name, "--prepare-only")) {
            o->prepare_only = true;
            i--; /* a flag: no value */
        } else if (!strcmp(name, "--connections"))
            o->connections = (int)bench_arg_ll(name, v, 1, MAX_CONNS);
        else if (!strcmp(name, "--duration"))
            o->duration = bench_arg_double(name, v, 0.1, 3600);
        else if (!strcmp(name, "--warmup"))
            o->warmup = bench_arg_double(name, v, 0, 600);
        else if (!strcmp(name, "--rate"))
            o->rate = bench_arg_double(name, v, 1, 1e6);
        else if (!strcmp(name, "--count"))
            o->plan.count = (size_t)bench_arg_ll(name, v, 1, 50000000);
        else if (!strcmp(name, "--seq-base"))
            o->plan.seq_base = bench_arg_ll(name, v, 0, 1LL << 60);
        else if (!strcmp(name, "--dev-first"))
            o->plan.dev_first = bench_arg_ll(name, v, 1, 1LL << 40);
        else if (!strcmp(name, "--dev-count"))
            o->plan.dev_count = bench_arg_ll(name, v, 1, 1LL << 40);
        else if (!strcmp(name, "--payload-bytes"))
            o->plan.payload_bytes = (size_t)bench_arg_ll(name, v, 1, 200000);
        else if (!strcmp(name, "--threads"))
            o->plan.threads = (int)bench_arg_ll(name, v, 1, 64);
        else {
            fprintf(stderr, "mpcpush-bench post: unknown option %s\n", name);
            exit(2);
        }
    }
    if (!o->url || !o->plan.key_file) {
        fprintf(stderr, "mpcpush-bench post: --url and --key are required\n");
        exit(2);
    }
    if (!o->plan.count)
        o->plan.count = o->rate > 0 ? (size_t)(o->rate * o->duration)
                                    : (size_t)((o->duration + o->warmup) * 20000);
}

static void report(const struct post *p, const struct post_opts *o, double sign_s)
{
    double window = 0;
    if (p->rate > 0 && p->last_window_ns > p->t0)
        window = (double)(p->last_window_ns - p->t0) / 1e9;
    else if (p->rate == 0 && p->t_end > p->t_measure)
        window = (double)(p->t_end - p->t_measure) / 1e9;
    struct bench_samples lat = p->lat;
    bench_samples_sort(&lat);
    printf("prepared=%zu sign_seconds=%.2f sent=%zu ok=%zu other_status=%zu errors=%zu "
           "reconnects=%zu\n",
           p->reqs.count, sign_s, p->next, p->ok, p->other_status, p->errors, p->reconnects);
    printf("window_seconds=%.3f counted=%zu rate=%.1f exhausted=%d\n", window, p->in_window,
           window > 0 ? (double)p->in_window / window : 0.0, p->exhausted ? 1 : 0);
    printf("p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f connections=%d\n",
           bench_samples_pct(&lat, 50), bench_samples_pct(&lat, 90), bench_samples_pct(&lat, 99),
           bench_samples_pct(&lat, 100), o->connections);
}

int bench_cmd_post(int argc, char **argv)
{
    struct post_opts o;
    parse_opts(argc, argv, &o);
    struct post p = {.rate = o.rate, .nconns = o.connections, .epfd = -1};
    char host[96];
    if (parse_url(o.url, &p.addr, host, sizeof(host)) != 0) {
        fprintf(stderr, "mpcpush-bench post: --url must be http://127.x.y.z:PORT\n");
        return 2;
    }
    o.plan.host = host;
    uint64_t s0 = bench_mono_ns();
    if (bench_requests_build(&o.plan, &p.reqs) != 0)
        return 1;
    double sign_s = (double)(bench_mono_ns() - s0) / 1e9;
    if (o.prepare_only) {
        printf("prepared=%zu sign_seconds=%.2f\n", p.reqs.count, sign_s);
        bench_requests_free(&p.reqs);
        return 0;
    }
    if (o.record && !(p.record = fopen(o.record, "w"))) {
        fprintf(stderr, "mpcpush-bench post: cannot write %s\n", o.record);
        return 1;
    }
    p.epfd = epoll_create1(EPOLL_CLOEXEC);
    p.conns = calloc((size_t)p.nconns, sizeof(*p.conns));
    if (p.epfd < 0 || !p.conns)
        return 1;
    p.t0 = bench_mono_ns();
    p.t_measure = p.rate > 0 ? p.t0 : p.t0 + (uint64_t)(o.warmup * 1e9);
    p.t_end = p.t_measure + (uint64_t)(o.duration * 1e9);
    p.t_deadline = p.t_end + DRAIN_NS;
    if (p.rate > 0)
        p.t_end = UINT64_MAX; /* open loop: ends when every request is sent and answered */
    for (int i = 0; i < p.nconns; i++) {
        p.conns[i].fd = -1;
        if (conn_open(&p, &p.conns[i]) != 0) {
            fprintf(stderr, "mpcpush-bench post: connect: %s\n", strerror(errno));
            return 1;
        }
    }
    run(&p);
    report(&p, &o, sign_s);
    for (int i = 0; i < p.nconns; i++)
        if (p.conns[i].fd >= 0)
            close(p.conns[i].fd);
    if (p.record)
        fclose(p.record);
    close(p.epfd);
    free(p.conns);
    bench_samples_free(&p.lat);
    bench_requests_free(&p.reqs);
    return p.ok > 0 ? 0 : 1;
}
