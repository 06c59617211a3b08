/* The emulator's lifecycle: start (accounts, CA, listeners, records, state files), the loop's
 * periodic tick (flush records, forget old tokens), and an orderly stop. */
#include "server-int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "conn-int.h"
#include "mpcpush/config.h"
#include "mpcpush/log.h"
#include "record-int.h"
#include "tls-int.h"
#include "tokens-int.h"

#define TICK_MS           50
#define PURGE_INTERVAL_MS 10000
#define TOKEN_KEEP_MS     (3600 * 1000) /* expired tokens stay known this long */
#define FAULTS_FILE_MAX   (16 * 1024 * 1024)

static void state_path(const struct emu_server *srv, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", srv->opts->state_dir, name);
}

static enum mp_result load_accounts(struct emu_server *srv, char *err, size_t err_size)
{
    const struct emu_options *opts = srv->opts;
    for (size_t i = 0; i < opts->n_service_accounts; i++) {
        char why[256];
        enum mp_result result =
            emu_account_load(opts->service_accounts[i], &srv->accounts[i], why, sizeof(why));
        if (result) {
            snprintf(err, err_size, "--service-account %s: %s", opts->service_accounts[i], why);
            return result == MP_ERR_NOMEM ? result : MP_ERR_INVALID;
        }
        srv->n_accounts++;
    }
    int generate = !opts->n_service_accounts || opts->make_service_account;
    if (generate && !opts->state_dir && !opts->make_service_account) {
        snprintf(err, err_size,
                 "nothing to trust: give --state-dir, --service-account or "
                 "--make-service-account");
        return MP_ERR_INVALID;
    }
    if (!generate)
        return MP_OK;
    if (emu_account_generate(opts->project, &srv->accounts[srv->n_accounts])) {
        snprintf(err, err_size, "cannot generate a service-account key");
        return MP_ERR_CRYPTO;
    }
    srv->n_accounts++;
    return MP_OK;
}

static enum mp_result load_faults(struct emu_server *srv, char *err, size_t err_size)
{
    struct mp_buf text;
    char chunk[8192], why[256];
    enum mp_result result = MP_OK;
    FILE *f = fopen(srv->opts->faults, "r");
    if (!f) {
        snprintf(err, err_size, "--faults %s: %s", srv->opts->faults, strerror(errno));
        return MP_ERR_INVALID;
    }
    mp_buf_init(&text, FAULTS_FILE_MAX);
    size_t n;
    while (!result && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        result = mp_buf_append(&text, chunk, n);
    fclose(f);
    if (!result &&
        emu_faults_add_json(&srv->faults, text.data ? text.data : "", text.len, why, sizeof(why))) {
        snprintf(err, err_size, "--faults %s: %s", srv->opts->faults, why);
        result = MP_ERR_INVALID;
    }
    mp_buf_free(&text);
    return result;
}

/* The generated account (when there is one) gets the TLS listener's token URL. */
static enum mp_result set_token_uri(struct emu_server *srv)
{
    char uri[128];
    if (srv->n_accounts <= srv->opts->n_service_accounts)
        return MP_OK;
    struct emu_account *acct = &srv->accounts[srv->n_accounts - 1];
    snprintf(uri, sizeof(uri), "https://127.0.0.1:%d/token", srv->tls_listener.port);
    acct->token_uri = strdup(uri);
    return acct->token_uri ? MP_OK : MP_ERR_NOMEM;
}

static enum mp_result write_text(const struct emu_server *srv, const char *name, const char *text,
                                 unsigned mode)
{
    char path[4096];
    state_path(srv, name, path, sizeof(path));
    return emu_write_file_atomic(path, text, strlen(text), mode);
}

/* ca.pem, service-account.json, pid, and last (the readiness signal) ports. */
static enum mp_result write_state(struct emu_server *srv, const char *ca_pem)
{
    const struct emu_options *opts = srv->opts;
    const struct emu_account *generated =
        srv->n_accounts > opts->n_service_accounts ? &srv->accounts[srv->n_accounts - 1] : NULL;
    enum mp_result result = MP_OK;
    if (generated && opts->make_service_account)
        result = emu_account_write(generated, generated->token_uri, opts->make_service_account);
    if (!opts->state_dir || result)
        return result;
    char path[4096], text[128];
    state_path(srv, "service-account.json", path, sizeof(path));
    if (generated && !opts->n_service_accounts)
        result = emu_account_write(generated, generated->token_uri, path);
    if (!result)
        result = write_text(srv, "ca.pem", ca_pem, 0644);
    snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    if (!result)
        result = write_text(srv, "pid", text, 0644);
    snprintf(text, sizeof(text), "tls=%d\nplain=%d\n", srv->tls_listener.port,
             srv->plain_listener.port);
    if (!result)
        result = write_text(srv, "ports", text, 0644);
    srv->wrote_state = !result;
    return result;
}

static enum mp_result open_listeners(struct emu_server *srv, char *err, size_t err_size)
{
    const struct emu_options *opts = srv->opts;
    if (emu_listener_open(srv, &srv->tls_listener, opts->listen, 1)) {
        snprintf(err, err_size, "--listen %s: %s", opts->listen, strerror(errno));
        return MP_ERR_IO;
    }
    if (opts->listen_plain && emu_listener_open(srv, &srv->plain_listener, opts->listen_plain, 0)) {
        snprintf(err, err_size, "--listen-plain %s: %s", opts->listen_plain, strerror(errno));
        return MP_ERR_IO;
    }
    return MP_OK;
}

static enum mp_result make_tls(struct emu_server *srv, char **ca_pem, char *err, size_t err_size)
{
    char host[256];
    int port;
    if (mp_config_split_hostport(srv->opts->listen, host, sizeof(host), &port))
        host[0] = '\0';
    if (emu_tls_create(host, &srv->ssl_ctx, ca_pem)) {
        snprintf(err, err_size, "cannot make the throwaway CA and server certificate");
        return MP_ERR_CRYPTO;
    }
    return MP_OK;
}

static void seed(struct emu_server *srv)
{
    uint64_t random[2] = {0, 0};
    if (RAND_bytes((unsigned char *)random, sizeof(random)) != 1)
        random[0] = (uint64_t)emu_unix_ms();
    srv->rng = srv->opts->seed ? (uint64_t)srv->opts->seed : random[0];
    srv->rng = srv->rng ? srv->rng : 0x9e3779b97f4a7c15ull;
    srv->message_id_salt = random[1];
}

static enum mp_result start_steps(struct emu_server *srv, char **ca_pem, char *err, size_t err_size)
{
    const struct emu_options *opts = srv->opts;
    char path[4096];
    enum mp_result result = emu_loop_new(&srv->loop);
    if (!result)
        result = emu_h2_setup(srv);
    if (!result)
        result = emu_tokens_new(&srv->tokens);
    if (!result)
        result = load_accounts(srv, err, err_size);
    if (!result && opts->faults)
        result = load_faults(srv, err, err_size);
    if (!result)
        result = make_tls(srv, ca_pem, err, err_size);
    if (!result)
        result = open_listeners(srv, err, err_size);
    if (!result)
        result = set_token_uri(srv);
    if (opts->state_dir)
        state_path(srv, "messages.jsonl", path, sizeof(path));
    if (!result && emu_record_open(opts->state_dir ? path : NULL, &srv->record)) {
        snprintf(err, err_size, "cannot open the records file: %s", strerror(errno));
        result = MP_ERR_IO;
    }
    if (!result && write_state(srv, *ca_pem)) {
        snprintf(err, err_size, "cannot write the state files: %s", strerror(errno));
        result = MP_ERR_IO;
    }
    return result;
}

enum mp_result emu_server_start(struct emu_server *srv, const struct emu_options *opts, char *err,
                                size_t err_size)
{
    memset(srv, 0, sizeof(*srv));
    srv->opts = opts;
    srv->tls_listener.watch.fd = -1;
    srv->plain_listener.watch.fd = -1;
    seed(srv);
    char *ca_pem = NULL;
    err[0] = '\0';
    enum mp_result result = start_steps(srv, &ca_pem, err, err_size);
    if (result && !err[0])
        snprintf(err, err_size, "cannot start: %s", mp_strerror(result));
    free(ca_pem);
    if (!result)
        MP_INFO("listening", "tls_port=%d plain_port=%d accounts=%zu state_dir=%s",
                srv->tls_listener.port, srv->plain_listener.port, srv->n_accounts,
                opts->state_dir ? opts->state_dir : "-");
    return result;
}

static void tick(void *ctx)
{
    struct emu_server *srv = ctx;
    uint64_t now = emu_now_ms();
    emu_record_tick(srv->record, now);
    if (now >= srv->next_purge_ms) {
        emu_tokens_purge(srv->tokens, emu_unix_ms() - TOKEN_KEEP_MS);
        srv->next_purge_ms = now + PURGE_INTERVAL_MS;
    }
}

enum mp_result emu_server_run(struct emu_server *srv)
{
    return emu_loop_run(srv->loop, tick, srv, TICK_MS);
}

static void remove_state(struct emu_server *srv)
{
    char path[4096];
    if (!srv->wrote_state)
        return;
    state_path(srv, "ports", path, sizeof(path));
    unlink(path);
    state_path(srv, "pid", path, sizeof(path));
    unlink(path);
}

void emu_server_stop(struct emu_server *srv)
{
    emu_conns_close_all(srv);
    if (srv->loop) {
        emu_listener_close(srv, &srv->tls_listener);
        emu_listener_close(srv, &srv->plain_listener);
    }
    emu_record_close(srv->record);
    srv->record = NULL;
    remove_state(srv);
    emu_tokens_free(srv->tokens);
    srv->tokens = NULL;
    emu_faults_free(&srv->faults);
    for (size_t i = 0; i < srv->n_accounts; i++)
        emu_account_free(&srv->accounts[i]);
    srv->n_accounts = 0;
    SSL_CTX_free(srv->ssl_ctx);
    srv->ssl_ctx = NULL;
    emu_h2_teardown(srv);
    emu_loop_free(srv->loop);
    srv->loop = NULL;
}
