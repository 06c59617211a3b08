/* Tests for how the FCM client connects: a refused port, a host whose first address refuses
 * or never answers (the client moves on to the next), plain HTTP kept to loopback addresses
 * whatever a name resolves to, and TLS peers it must refuse. The resolver is replaced for the
 * multi-address cases: this program is linked with -Wl,--wrap=getaddrinfo
 * (tests/CMakeLists.txt). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fake_fcm.h"
#include "fcm_batch.h"
#include "mpcpush/fcm.h"

/* ---- a resolver that answers as the test says ---- */

int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);

static const char *resolved_host;         /* NULL: every name goes to the real resolver */
static const char *const *resolved_addrs; /* numeric addresses for it, in order, NULL-ended */

/* While resolved_host is set, a look-up of that name answers resolved_addrs, each made by the
 * real resolver (so that freeaddrinfo frees the list as usual). */
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    if (!resolved_host || !node || strcmp(node, resolved_host) != 0)
        return __real_getaddrinfo(node, service, hints, res);
    struct addrinfo numeric = {.ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM};
    struct addrinfo *head = NULL, **tail = &head;
    for (int i = 0; resolved_addrs[i]; i++) {
        int rc = __real_getaddrinfo(resolved_addrs[i], service, &numeric, tail);
        if (rc != 0) {
            if (head)
                freeaddrinfo(head);
            return rc;
        }
        while (*tail)
            tail = &(*tail)->ai_next;
    }
    *res = head;
    return head ? 0 : EAI_NONAME;
}

static void resolve(const char *host, const char *const *addrs)
{
    resolved_host = host;
    resolved_addrs = addrs;
}

/* The fake's teardown, and the real resolver back (a failed test leaves its answers set). */
static int resolver_teardown(void **state)
{
    resolve(NULL, NULL);
    return fake_teardown(state);
}

/* The fake's port, from its base URL (http://127.0.0.1:PORT). */
static int fake_port(const struct fake *f)
{
    return atoi(strrchr(f->base, ':') + 1);
}

/* Sends a batch of n through a client of url (one connection); returns the seconds it took. */
static double send_through(const char *url, struct fcm_batch *b, size_t n)
{
    struct mp_fcm_client *c = NULL;
    assert_int_equal(mp_fcm_client_new(url, "p", NULL, 1, 5, &c), MP_OK);
    fcm_batch_make(b, n);
    double started = fcm_now_seconds();
    assert_int_equal(mp_fcm_send_batch(c, "tok", b->reqs, b->n, b->results), MP_OK);
    double took = fcm_now_seconds() - started;
    mp_fcm_client_free(c);
    return took;
}

/* ---- refusals and next addresses ---- */

static void test_connection_refused(void **state)
{
    (void)state;
    struct fake *f = NULL;
    fake_setup((void **)&f);
    char base[64];
    snprintf(base, sizeof(base), "%s", f->base);
    fake_teardown((void **)&f); /* the port is free now: nobody listens */
    struct mp_fcm_client *c = NULL;
    assert_int_equal(mp_fcm_client_new(base, "p", NULL, 2, 2, &c), MP_OK);
    struct fcm_batch b;
    fcm_batch_make(&b, 3);
    assert_int_equal(mp_fcm_send_batch(c, "tok", b.reqs, b.n, b.results), MP_OK);
    for (size_t i = 0; i < b.n; i++) {
        assert_int_equal(b.results[i].outcome, MP_FCM_NETWORK);
        assert_int_equal(b.results[i].attempts, 2);
        assert_non_null(strstr(b.results[i].detail, "Connection refused"));
        assert_int_equal(b.results[i].retry_after, -1);
    }
    fcm_batch_free(&b);
    mp_fcm_client_free(c);
}

/* The host's first address refuses the connection: the client goes on to the next one in the
 * same attempt, and nothing is lost. */
static void test_next_address_after_refusal(void **state)
{
    struct fake *f = *state;
    fake_start(f);
    static const char *const addrs[] = {"127.0.0.2", "127.0.0.1", NULL}; /* nobody on .2 */
    resolve("localhost", addrs);
    char url[64];
    snprintf(url, sizeof(url), "http://localhost:%d", fake_port(f));
    struct fcm_batch b;
    send_through(url, &b, 3);
    resolve(NULL, NULL);
    fcm_batch_expect_ok(&b);
    for (size_t i = 0; i < b.n; i++)
        assert_int_equal(b.results[i].attempts, 1);
    assert_int_equal(atomic_load(&f->requests), 3);
    fcm_batch_free(&b);
}

/* A listener on 127.0.0.3 whose backlog is full: the kernel drops further SYNs, as a broken
 * route would. Returns the socket (and the filler connection through *filler), or -1 when this
 * kernel answers SYNs beyond the backlog anyway. */
static int silent_listener(int port, int *filler)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.3", &addr.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(fd, 0), 0);
    *filler = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(*filler, (struct sockaddr *)&addr, sizeof(addr)), 0);
    int probe = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int rc = connect(probe, (struct sockaddr *)&addr, sizeof(addr));
    struct pollfd pfd = {.fd = probe, .events = POLLOUT};
    bool answered = rc == 0 || (errno == EINPROGRESS && poll(&pfd, 1, 300) != 0);
    close(probe);
    if (answered) {
        close(*filler);
        close(fd);
        return -1;
    }
    return fd;
}

/* The host's first address never answers: after half a second the client tries the next one,
 * well within the request's deadline, and the batch goes through in one attempt. */
static void test_next_address_after_silence(void **state)
{
    struct fake *f = *state;
    fake_start(f);
    int filler, silent = silent_listener(fake_port(f), &filler);
    if (silent < 0) {
        print_message("this kernel answers connections beyond the backlog: skipped\n");
        skip();
    }
    static const char *const addrs[] = {"127.0.0.3", "127.0.0.1", NULL};
    resolve("localhost", addrs);
    char url[64];
    snprintf(url, sizeof(url), "http://localhost:%d", fake_port(f));
    struct fcm_batch b;
    double took = send_through(url, &b, 2);
    resolve(NULL, NULL);
    close(filler);
    close(silent);
    fcm_batch_expect_ok(&b);
    for (size_t i = 0; i < b.n; i++)
        assert_int_equal(b.results[i].attempts, 1);
    assert_true(took >= 0.45); /* it waited for the silent address first */
    assert_int_equal(atomic_load(&f->requests), 2);
    fcm_batch_free(&b);
}

/* http:// is allowed to loopback hosts only (mp_push_check_url), and the check holds for the
 * addresses too: a loopback name that resolves elsewhere is not followed there in plain text. */
static void test_plain_http_only_to_loopback_addresses(void **state)
{
    struct fake *f = *state;
    fake_start(f);
    char url[64];
    snprintf(url, sizeof(url), "http://localhost:%d", fake_port(f));
    static const char *const elsewhere[] = {"192.0.2.10", NULL}; /* TEST-NET-1 */
    resolve("localhost", elsewhere);
    struct fcm_batch b;
    send_through(url, &b, 1);
    assert_int_equal(b.results[0].outcome, MP_FCM_NETWORK);
    if (!strstr(b.results[0].detail, "not loopback: plain HTTP refused"))
        fail_msg("detail \"%s\" does not refuse plain HTTP", b.results[0].detail);
    fcm_batch_free(&b);
    /* with a loopback address after it, that one is used */
    static const char *const mixed[] = {"192.0.2.10", "127.0.0.1", NULL};
    resolve("localhost", mixed);
    send_through(url, &b, 1);
    resolve(NULL, NULL);
    fcm_batch_expect_ok(&b);
    assert_int_equal(atomic_load(&f->requests), 1);
    fcm_batch_free(&b);
}

struct tls_peer {
    char dir[64];
    pid_t pid;
    int port;
};

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    close(fd);
    return ntohs(addr.sin_port);
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                               .sin_port = htons((uint16_t)port)};
    bool ok = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    close(fd);
    return ok;
}

/* A self-signed certificate for san and a TLS server with it that negotiates no ALPN. */
static void tls_peer_start(struct tls_peer *t, const char *san)
{
    if (system("openssl version >/dev/null 2>&1") != 0) {
        print_message("no openssl command: skipped\n");
        skip();
    }
    snprintf(t->dir, sizeof(t->dir), "/tmp/mpcpush-tls-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
             "-subj /CN=mpcpush-test -addext subjectAltName=%s -keyout %s/key.pem "
             "-out %s/cert.pem >/dev/null 2>&1",
             san, t->dir, t->dir);
    assert_int_equal(system(cmd), 0);
    t->port = free_port();
    t->pid = fork();
    if (t->pid == 0) {
        char accept_at[32], cert[128], key[128];
        snprintf(accept_at, sizeof(accept_at), "127.0.0.1:%d", t->port);
        snprintf(cert, sizeof(cert), "%s/cert.pem", t->dir);
        snprintf(key, sizeof(key), "%s/key.pem", t->dir);
        int null = open("/dev/null", O_RDWR);
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        execlp("openssl", "openssl", "s_server", "-accept", accept_at, "-cert", cert, "-key", key,
               "-www", "-quiet", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200 && !port_open(t->port); i++)
        usleep(25000);
}

static void tls_peer_stop(struct tls_peer *t)
{
    kill(t->pid, SIGTERM);
    waitpid(t->pid, NULL, 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
    if (system(cmd) != 0)
        print_message("could not remove %s\n", t->dir);
}

/* Sends one request to host:port trusting only the peer's certificate: no answer, twice,
 * and the detail says want. */
static void tls_expect_refusal(struct tls_peer *t, const char *host, const char *want)
{
    char base[128], ca[128];
    snprintf(base, sizeof(base), "https://%s:%d", host, t->port);
    snprintf(ca, sizeof(ca), "%s/cert.pem", t->dir);
    struct mp_fcm_client *c = NULL;
    assert_int_equal(mp_fcm_client_new(base, "p", ca, 1, 5, &c), MP_OK);
    struct fcm_batch b;
    fcm_batch_make(&b, 1);
    assert_int_equal(mp_fcm_send_batch(c, "tok", b.reqs, b.n, b.results), MP_OK);
    assert_int_equal(b.results[0].outcome, MP_FCM_NETWORK);
    assert_int_equal(b.results[0].attempts, 2);
    if (!strstr(b.results[0].detail, want))
        fail_msg("detail \"%s\" does not say \"%s\"", b.results[0].detail, want);
    fcm_batch_free(&b);
    mp_fcm_client_free(c);
}

/* The certificate is trusted and names the host, but the server does not speak h2. */
static void test_tls_no_alpn_h2(void **state)
{
    (void)state;
    struct tls_peer t;
    tls_peer_start(&t, "DNS:localhost,IP:127.0.0.1");
    tls_expect_refusal(&t, "127.0.0.1", "did not select HTTP/2 (ALPN h2)");
    tls_expect_refusal(&t, "localhost", "did not select HTTP/2 (ALPN h2)");
    tls_peer_stop(&t);
}

/* A trusted certificate for another name. */
static void test_tls_name_mismatch(void **state)
{
    (void)state;
    struct tls_peer t;
    tls_peer_start(&t, "DNS:other.example,IP:127.0.0.2");
    tls_expect_refusal(&t, "localhost", "certificate: hostname mismatch");
    tls_expect_refusal(&t, "127.0.0.1", "certificate: IP address mismatch");
    tls_peer_stop(&t);
}

/* An untrusted certificate (no ca_file: only the system's roots). */
static void test_tls_untrusted(void **state)
{
    (void)state;
    struct tls_peer t;
    tls_peer_start(&t, "IP:127.0.0.1");
    char base[64];
    snprintf(base, sizeof(base), "https://127.0.0.1:%d", t.port);
    struct mp_fcm_client *c = NULL;
    assert_int_equal(mp_fcm_client_new(base, "p", NULL, 1, 5, &c), MP_OK);
    struct fcm_batch b;
    fcm_batch_make(&b, 1);
    assert_int_equal(mp_fcm_send_batch(c, "tok", b.reqs, b.n, b.results), MP_OK);
    assert_int_equal(b.results[0].outcome, MP_FCM_NETWORK);
    assert_non_null(strstr(b.results[0].detail, "certificate: self-signed certificate"));
    fcm_batch_free(&b);
    mp_fcm_client_free(c);
    tls_peer_stop(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test_setup_teardown(test_next_address_after_refusal, fake_setup,
                                        resolver_teardown),
        cmocka_unit_test_setup_teardown(test_next_address_after_silence, fake_setup,
                                        resolver_teardown),
        cmocka_unit_test_setup_teardown(test_plain_http_only_to_loopback_addresses, fake_setup,
                                        resolver_teardown),
        cmocka_unit_test(test_tls_no_alpn_h2),
        cmocka_unit_test(test_tls_name_mismatch),
        cmocka_unit_test(test_tls_untrusted),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
