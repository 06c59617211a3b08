/* Command line of mpcpush-fcm-emulator: one table of options parses argv and prints --help. */
#ifndef MPCPUSH_EMU_OPTIONS_INT_H
#define MPCPUSH_EMU_OPTIONS_INT_H

#include <stddef.h>
#include <stdio.h>

#include "mpcpush/result.h"

#define EMU_MAX_ACCOUNTS 16

struct emu_options {
    char *listen;       /* TLS + HTTP/2 host:port */
    char *listen_plain; /* plain HTTP/1.1 (and h2c) host:port, NULL: none */
    char *state_dir;
    char *service_accounts[EMU_MAX_ACCOUNTS]; /* trusted key files */
    size_t n_service_accounts;
    char *make_service_account; /* where to write a generated key file */
    char *project;
    char *token_uri; /* token_uri written by a standalone --make-service-account */
    char *faults;
    char *log_level;
    int token_lifetime;
    int latency_ms;
    int clock_skew;
    int max_connections;
    int log_requests;
    int no_records;
    long seed;
    /* what the command line asked for besides serving */
    int help;
    int version;
    int serve; /* an option that only makes sense for a server was given */
};

/* Parses argv into opts (defaults first). On a usage error writes one line into err and
 * returns MP_ERR_INVALID; opts must still be freed. */
enum mp_result emu_options_parse(struct emu_options *opts, int argc, char **argv, char *err,
                                 size_t err_size) MP_MUSTCHECK;

/* Prints the usage text with every option, its argument and default. */
void emu_options_print_help(FILE *out);

/* Frees the strings of opts; accepts a zeroed or partly parsed struct. */
void emu_options_free(struct emu_options *opts);

#endif
