/* Test support: paths, ports, temporary directories and child processes. */
#include "harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

const char *th_env(const char *name)
{
    const char *value = getenv(name);
    if (!value || !value[0])
        fail_msg("environment variable %s is not set (run the tests through ctest)", name);
    return value;
}

int th_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0)
        fail_msg("cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(addr.sin_port);
}

char *th_tempdir(const char *prefix)
{
    char path[256];
    snprintf(path, sizeof(path), "/tmp/%s-XXXXXX", prefix);
    if (!mkdtemp(path))
        fail_msg("mkdtemp: %s", strerror(errno));
    return strdup(path);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void th_rm_rf(const char *path)
{
    if (path)
        nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Builds the child's environment: ours, minus MPCPUSH_* (tests say what they want), plus
 * the database, listen address and extra entries. */
static char **child_env(const char *db_url, int port, const char *const *extra)
{
    size_t n = 0, m = 0;
    while (environ[n])
        n++;
    while (extra && extra[m])
        m++;
    char **env = calloc(n + m + 3, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "MPCPUSH_", 8) != 0)
            env[k++] = strdup(environ[i]);
    if (db_url && asprintf(&env[k], "MPCPUSH_DATABASE_URL=%s", db_url) > 0)
        k++;
    if (port && asprintf(&env[k], "MPCPUSH_LISTEN=127.0.0.1:%d", port) > 0)
        k++;
    for (size_t i = 0; i < m; i++)
        env[k++] = strdup(extra[i]);
    env[k] = NULL;
    return env;
}

static void free_env(char **env)
{
    for (size_t i = 0; env[i]; i++)
        free(env[i]);
    free(env);
}

static bool healthy(const struct th_proc *p)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/healthz", p->base);
    struct th_response resp;
    bool ok = th_http_try(&resp, "GET", url, NULL, NULL, 0) && resp.status == 200;
    th_response_free(&resp);
    return ok;
}

void th_mpcpush_start(struct th_proc *p, const char *command, const char *db_url,
                      const char *const *env)
{
    const char *argv[] = {command, NULL};
    th_mpcpush_start_argv(p, argv, db_url, env);
}

void th_mpcpush_start_argv(struct th_proc *p, const char *const *argv, const char *db_url,
                           const char *const *env)
{
    static int serial;
    const char *command = NULL;
    for (int i = 0; argv[i] && !command; i++) {
        if (strcmp(argv[i], "--config") == 0 && argv[i + 1])
            i++; /* skip the option's value */
        else if (argv[i][0] != '-')
            command = argv[i];
    }
    if (!command)
        fail_msg("th_mpcpush_start_argv: no command in the arguments");
    memset(p, 0, sizeof(*p));
    p->port = th_free_port();
    snprintf(p->base, sizeof(p->base), "http://127.0.0.1:%d", p->port);
    snprintf(p->log_path, sizeof(p->log_path), "/tmp/mpcpush-test-%d-%d.log", (int)getpid(),
             ++serial);
    char **cenv = child_env(db_url, p->port, env);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(p->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0)
            dup2(fd, STDERR_FILENO);
        const char *args[16] = {getenv("MPCPUSH_BIN")};
        for (int i = 0; argv[i] && i < 14; i++)
            args[i + 1] = argv[i];
        execve(args[0], (char *const *)args, cenv);
        _exit(127);
    }
    free_env(cenv);
    p->pid = pid;
    bool http = strcmp(command, "dispatcher") != 0;
    for (int i = 0; i < 200; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            p->pid = 0;
            fail_msg("mpcpush %s exited during start-up (see %s)", command, p->log_path);
        }
        if (http ? healthy(p) : i >= 5)
            return;
        usleep(50000);
    }
    fail_msg("mpcpush %s did not become healthy (see %s)", command, p->log_path);
}

int th_proc_stop(struct th_proc *p, int sig)
{
    if (p->pid <= 0)
        return -1;
    kill(p->pid, sig);
    int status = 0;
    for (int i = 0; i < 600; i++) {
        if (waitpid(p->pid, &status, WNOHANG) == p->pid)
            break;
        if (i == 599) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
        }
        usleep(50000);
    }
    p->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int th_mpcpush_run(const char *db_url, const char *const *env, char *out, size_t size,
                   const char *const *argv)
{
    int pipefd[2];
    if (pipe(pipefd) != 0)
        fail_msg("pipe: %s", strerror(errno));
    char **cenv = child_env(db_url, 0, env);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], STDOUT_FILENO);
        close(pipefd[0]);
        const char *args[32] = {getenv("MPCPUSH_BIN")};
        for (int i = 0; argv[i] && i < 30; i++)
            args[i + 1] = argv[i];
        execve(args[0], (char *const *)args, cenv);
        _exit(127);
    }
    free_env(cenv);
    close(pipefd[1]);
    size_t used = 0;
    char sink[4096];
    for (;;) {
        char *dst = out && used + 1 < size ? out + used : sink;
        size_t room = out && used + 1 < size ? size - used - 1 : sizeof(sink);
        ssize_t n = read(pipefd[0], dst, room);
        if (n <= 0)
            break;
        if (dst != sink)
            used += (size_t)n;
    }
    if (out && size)
        out[used] = '\0';
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

char *th_apikey(const char *db_url, const char *name)
{
    char out[256];
    const char *argv[] = {"apikey", "create", name, NULL};
    int status = th_mpcpush_run(db_url, NULL, out, sizeof(out), argv);
    if (status != 0)
        fail_msg("mpcpush apikey create %s exited %d", name, status);
    out[strcspn(out, "\n")] = '\0';
    return strdup(out);
}
