/* mpcpush-fcm-emulator: a local stand-in for Google's OAuth token endpoint and the FCM HTTP v1
 * send endpoint. main parses the command line and either writes a service-account key file
 * and exits, or runs the server until SIGTERM/SIGINT. */
#include <signal.h>
#include <stdio.h>

#include "mpcpush/log.h"

#include "account-int.h"
#include "options-int.h"
#include "server-int.h"

#define PROG "mpcpush-fcm-emulator"

/* --make-service-account FILE alone: write a key file for --token-uri and exit. */
static int make_service_account(const struct emu_options *opts)
{
    struct emu_account acct;
    if (emu_account_generate(opts->project, &acct)) {
        fprintf(stderr, PROG ": cannot generate a service-account key\n");
        return 1;
    }
    enum mp_result result = emu_account_write(&acct, opts->token_uri, opts->make_service_account);
    if (result)
        fprintf(stderr, PROG ": %s: cannot write: %s\n", opts->make_service_account,
                mp_strerror(result));
    emu_account_free(&acct);
    return result ? 1 : 0;
}

static int serve(const struct emu_options *opts)
{
    struct emu_server srv;
    char err[512];
    enum mp_result result = emu_server_start(&srv, opts, err, sizeof(err));
    if (result) {
        fprintf(stderr, PROG ": %s\n", err);
        emu_server_stop(&srv);
        return result == MP_ERR_INVALID ? 2 : 1;
    }
    result = emu_server_run(&srv);
    emu_server_stop(&srv);
    if (result) {
        MP_ERROR("loop_failed", "error=\"%s\"", mp_strerror(result));
        return 1;
    }
    MP_INFO("stopped", "%s", "");
    return 0;
}

int main(int argc, char **argv)
{
    struct emu_options opts;
    char err[512];
    int status = 0;
    signal(SIGPIPE, SIG_IGN);
    if (emu_options_parse(&opts, argc, argv, err, sizeof(err))) {
        fprintf(stderr, PROG ": %s\n", err);
        status = 2;
    } else if (opts.help) {
        emu_options_print_help(stdout);
    } else if (opts.version) {
        printf(PROG " %s\n", MPCPUSH_VERSION);
    } else if (mp_log_level_parse(opts.log_level) < 0) {
        fprintf(stderr, PROG ": --log-level: expected debug, info, warn or error\n");
        status = 2;
    } else {
        mp_log_threshold = (enum mp_log_level)mp_log_level_parse(opts.log_level);
        status =
            opts.make_service_account && !opts.serve ? make_service_account(&opts) : serve(&opts);
    }
    emu_options_free(&opts);
    return status;
}
