/* Test support: the fixture PostgreSQL cluster, a private database per test, mpcpush processes
 * on free ports, HTTP over real sockets (libcurl), and Fireblocks-style signing. Every helper
 * fails the current cmocka test (fail_msg) when the environment is broken, so tests can stay
 * focused on what they assert. */
#ifndef MPCPUSH_TEST_HARNESS_H
#define MPCPUSH_TEST_HARNESS_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* cmocka needs these before its header. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <cmocka.h>

/* ---- processes and paths ---- */

/* The path of a binary from the environment set by ctest (MPCPUSH_BIN, MPCPUSH_EMULATOR_BIN). */
const char *th_env(const char *name);

/* A free TCP port on 127.0.0.1 (bound and released). */
int th_free_port(void);

/* A fresh temporary directory under /tmp (caller frees the string; removed by th_rm_rf). */
char *th_tempdir(const char *prefix);
void th_rm_rf(const char *path);

/* ---- database ---- */

/* URL of the fixture cluster's admin database. */
const char *th_pg_admin_url(void);

/* Creates a new empty database and returns its URL (caller frees). migrate: run
 * `mpcpush migrate` on it first. */
char *th_db_create(bool migrate);

/* Runs SQL; fails the test on error. */
void th_sql_exec(const char *url, const char *sql);

/* The first column of the first row as a long (0 for no row or NULL). */
long th_sql_long(const char *url, const char *sql);

/* The first column of the first row as a new string (NULL for no row or NULL). */
char *th_sql_text(const char *url, const char *sql);

/* ---- mpcpush processes ---- */

struct th_proc {
    pid_t pid;
    int port;
    char base[64];      /* http://127.0.0.1:PORT */
    char log_path[256]; /* its stderr */
};

/* Starts `mpcpush <command>` with MPCPUSH_DATABASE_URL=db_url, MPCPUSH_LISTEN on a free port,
 * and the extra "KEY=VALUE" strings of env (NULL-terminated, may be NULL); waits until
 * /healthz answers (receiver roles) or the process has run for a moment (dispatcher). */
void th_mpcpush_start(struct th_proc *p, const char *command, const char *db_url,
                      const char *const *env);

/* The same with a whole argument list after the program name, e.g. {"--config", F, "run",
 * NULL}; the command is its first word that is not an option or an option's value. */
void th_mpcpush_start_argv(struct th_proc *p, const char *const *argv, const char *db_url,
                           const char *const *env);

/* Sends sig and waits for the exit; returns the exit status (128+signal when killed). */
int th_proc_stop(struct th_proc *p, int sig);

/* Runs mpcpush with argv (NULL-terminated, without argv[0]) and env; captures stdout into out
 * (may be NULL) and returns the exit status. */
int th_mpcpush_run(const char *db_url, const char *const *env, char *out, size_t size,
                   const char *const *argv);

/* Creates an API key named name in db_url and returns it (caller frees). */
char *th_apikey(const char *db_url, const char *name);

/* ---- HTTP ---- */

struct th_response {
    long status;
    char *body;   /* NUL-terminated */
    json_t *json; /* parsed body, NULL when not JSON */
    char content_type[128];
};

/* Performs one request. headers: NULL-terminated "Name: value" strings (may be NULL).
 * body may be NULL. Fails the test if no HTTP answer came back. */
void th_http(struct th_response *resp, const char *method, const char *url,
             const char *const *headers, const char *body, size_t len);

/* Like th_http, but returns false instead of failing when there is no answer. */
bool th_http_try(struct th_response *resp, const char *method, const char *url,
                 const char *const *headers, const char *body, size_t len);

/* The error.code slug of a JSON error answer, or "" */
const char *th_error_code(const struct th_response *resp);

void th_response_free(struct th_response *resp);

/* ---- Fireblocks-style signing ---- */

/* A fresh RSA key; its public half is written as PEM to pem_path when not NULL. */
EVP_PKEY *th_rsa_key(int bits, const char *pem_path);

/* base64(RSA-SHA512 PKCS#1 v1.5 signature) over body: the v1 Fireblocks-Signature value.
 * Caller frees. */
char *th_sign_v1(EVP_PKEY *key, const char *body, size_t len);

/* Detached JWS "<b64url(header)>..<b64url(sig)>" with alg RS512 and kid: the v2
 * Fireblocks-Webhook-Signature value. Caller frees. */
char *th_sign_v2(EVP_PKEY *key, const char *kid, const char *body, size_t len);

/* Writes a JWKS file holding the public halves of keys[i] named kids[i]. */
void th_write_jwks(const char *path, EVP_PKEY *const *keys, const char *const *kids, int n);

#endif
