/* Configuration: one table of keys (name, type, default, help) drives parsing, validation,
 * `--help`, and the masked dump printed by `mpcpush check-config`.
 *
 * Values come from KEY=VALUE lines of an optional file (`--config FILE`) and from the
 * environment; the environment wins. */
#ifndef MPCPUSH_CONFIG_H
#define MPCPUSH_CONFIG_H

#include <stdio.h>

#include "mpcpush/buf.h"
#include "mpcpush/result.h"

struct mp_config {
    /* storage */
    char *database_url;
    int db_pool_size;
    int batch_max;
    /* HTTP API */
    char *listen;
    char *metrics_listen;
    int http_threads;
    int max_body_bytes;
    int connection_memory_bytes;
    int max_connections;
    int max_connections_per_ip;
    int idle_timeout;
    int request_timeout;
    int rate_limit_per_minute;
    int auth_failures_per_minute;
    /* Fireblocks */
    char *fireblocks_pubkeys;
    char *fireblocks_jwks;
    int message_ttl;
    int max_message_ttl;
    /* Google / FCM */
    char *google_credentials;
    char *fcm_url;
    char *google_token_url;
    char *ca_file;
    int fcm_connections;
    int fcm_timeout;
    char *ios_alert_title;
    char *ios_alert_body;
    /* dispatcher */
    int dispatch_batch;
    int dispatch_workers;
    int lease_seconds;
    int poll_interval_ms;
    int retry_base_ms;
    int retry_max_seconds;
    /* retention */
    int retention_acked_seconds;
    int retention_events_seconds;
    int prune_interval_seconds;
    /* logging */
    char *log_level;
};

/* What a command needs beyond defaults; mp_config_check reports the missing ones. */
enum mp_config_need {
    MP_NEED_DATABASE = 1 << 0,
};

/* Loads defaults, then `file` (may be NULL), then the variables of envp (NULL-terminated
 * "KEY=VALUE" strings). Every problem is appended to errors as one line; returns MP_OK only
 * when there were none. On failure cfg still holds what could be parsed (free it). */
enum mp_result mp_config_load(struct mp_config *cfg, const char *file, char *const *envp,
                              struct mp_buf *errors) MP_MUSTCHECK;

/* Checks that what a command needs is present; appends one line per problem. */
enum mp_result mp_config_check(const struct mp_config *cfg, unsigned needs,
                               struct mp_buf *errors) MP_MUSTCHECK;

/* Makes cfg's log level the one in force. */
void mp_config_apply_log_level(const struct mp_config *cfg);

/* Prints every key with its effective value, secrets masked. */
void mp_config_print(const struct mp_config *cfg, FILE *out);

/* Prints the table of keys with defaults and help text. */
void mp_config_print_help(FILE *out);

/* Frees the strings of cfg; accepts a zeroed or partly loaded config. */
void mp_config_free(struct mp_config *cfg);

/* Splits "host:port" ("[v6]:port" too) into host and port. */
enum mp_result mp_config_split_hostport(const char *text, char *host, size_t host_size,
                                        int *port) MP_MUSTCHECK;

#endif
