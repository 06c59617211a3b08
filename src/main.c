/* mpcpush: the command line. Parses global options, loads the configuration, runs a command. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpcpush/apikeys.h"
#include "mpcpush/app.h"
#include "mpcpush/config.h"
#include "mpcpush/db.h"
#include "mpcpush/log.h"

extern char **environ;

struct command {
    const char *name;
    unsigned needs;
    int (*run)(struct mp_config *cfg, const char *config_file, int argc, char **argv);
    const char *usage;
    const char *help;
};

static int cmd_run(struct mp_config *cfg, const char *config_file, int argc, char **argv);
static int cmd_receiver(struct mp_config *cfg, const char *config_file, int argc, char **argv);
static int cmd_dispatcher(struct mp_config *cfg, const char *config_file, int argc, char **argv);
static int cmd_migrate(struct mp_config *cfg, const char *config_file, int argc, char **argv);
static int cmd_check_config(struct mp_config *cfg, const char *config_file, int argc, char **argv);
static int cmd_apikey(struct mp_config *cfg, const char *config_file, int argc, char **argv);
static int cmd_send_test(struct mp_config *cfg, const char *config_file, int argc, char **argv);

static const struct command commands[] = {
    {"run", MP_NEED_DATABASE, cmd_run, "run", "receiver and dispatcher in one process"},
    {"receiver", MP_NEED_DATABASE, cmd_receiver, "receiver", "the HTTP API alone"},
    {"dispatcher", MP_NEED_DATABASE, cmd_dispatcher, "dispatcher", "the FCM dispatcher alone"},
    {"migrate", MP_NEED_DATABASE, cmd_migrate, "migrate", "apply the database migrations"},
    {"check-config", 0, cmd_check_config, "check-config",
     "validate the configuration and print it, secrets masked"},
    {"apikey", MP_NEED_DATABASE, cmd_apikey, "apikey create NAME | apikey revoke NAME",
     "create (prints the key once) or revoke an API key"},
    {"send-test", MP_NEED_DATABASE, cmd_send_test, "send-test --wallet W --device D",
     "push a test wakeup to a device now and print what FCM said"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
    fputs("usage: mpcpush [--config FILE] COMMAND [ARGS]\n"
          "       mpcpush --help | --version\n\n"
          "Relays Fireblocks Embedded Wallet messages to devices: stores webhooks in PostgreSQL,\n"
          "wakes devices through FCM, and serves pending messages to them.\n\nCommands:\n",
          out);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-40s %s\n", commands[i].usage, commands[i].help);
    fputc('\n', out);
    mp_config_print_help(out);
}

static int cmd_run(struct mp_config *cfg, const char *config_file, int argc, char **argv)
{
    return mp_app_run(cfg, config_file, MP_ROLE_RECEIVER | MP_ROLE_DISPATCHER);
}

static int cmd_receiver(struct mp_config *cfg, const char *config_file, int argc, char **argv)
{
    return mp_app_run(cfg, config_file, MP_ROLE_RECEIVER);
}

static int cmd_dispatcher(struct mp_config *cfg, const char *config_file, int argc, char **argv)
{
    return mp_app_run(cfg, config_file, MP_ROLE_DISPATCHER);
}

static int cmd_migrate(struct mp_config *cfg, const char *config_file, int argc, char **argv)
{
    PGconn *conn = NULL;
    int applied = 0;
    if (mp_db_connect(cfg->database_url, "migrate", &conn) != MP_OK) {
        fprintf(stderr, "mpcpush: cannot connect to the database\n");
        return 1;
    }
    enum mp_result result = mp_db_migrate(conn, &applied);
    PQfinish(conn);
    if (result) {
        fprintf(stderr, "mpcpush: migration failed: %s\n", mp_strerror(result));
        return 1;
    }
    printf("migrations applied: %d\n", applied);
    return 0;
}

static int cmd_check_config(struct mp_config *cfg, const char *config_file, int argc, char **argv)
{
    mp_config_print(cfg, stdout);
    return 0;
}

static int cmd_apikey(struct mp_config *cfg, const char *config_file, int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "create") != 0 && strcmp(argv[1], "revoke") != 0)) {
        fprintf(stderr, "usage: mpcpush apikey create NAME | apikey revoke NAME\n");
        return 2;
    }
    PGconn *conn = NULL;
    if (mp_db_connect(cfg->database_url, "apikey", &conn) != MP_OK) {
        fprintf(stderr, "mpcpush: cannot connect to the database\n");
        return 1;
    }
    char key[MP_APIKEY_MAX];
    enum mp_result result = strcmp(argv[1], "create") == 0 ? mp_apikey_create(conn, argv[2], key)
                                                           : mp_apikey_revoke(conn, argv[2]);
    PQfinish(conn);
    if (result == MP_ERR_CONFLICT)
        fprintf(stderr, "mpcpush: an active API key named \"%s\" exists\n", argv[2]);
    else if (result == MP_ERR_NOT_FOUND)
        fprintf(stderr, "mpcpush: no active API key named \"%s\"\n", argv[2]);
    else if (result == MP_ERR_INVALID)
        fprintf(stderr, "mpcpush: a key name is 1 to 128 characters of A-Z a-z 0-9 . _ : -\n");
    else if (result)
        fprintf(stderr, "mpcpush: %s\n", mp_strerror(result));
    else if (strcmp(argv[1], "create") == 0)
        printf("%s\n", key);
    return result ? 1 : 0;
}

static int cmd_send_test(struct mp_config *cfg, const char *config_file, int argc, char **argv)
{
    const char *wallet = NULL, *device = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--wallet") == 0)
            wallet = argv[i + 1];
        else if (strcmp(argv[i], "--device") == 0)
            device = argv[i + 1];
    }
    if (!wallet || !device || argc != 5) {
        fprintf(stderr, "usage: mpcpush send-test --wallet W --device D\n");
        return 2;
    }
    return mp_send_test(cfg, wallet, device);
}

int main(int argc, char **argv)
{
    const char *config_file = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("mpcpush %s\n", MPCPUSH_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_file = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_file = argv[i] + 9;
        } else {
            fprintf(stderr, "mpcpush: unknown option %s (try --help)\n", argv[i]);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    const struct command *cmd = NULL;
    for (size_t c = 0; c < NCOMMANDS; c++)
        if (strcmp(argv[i], commands[c].name) == 0)
            cmd = &commands[c];
    if (!cmd) {
        fprintf(stderr, "mpcpush: unknown command \"%s\" (try --help)\n", argv[i]);
        return 2;
    }
    if (i + 1 < argc && strcmp(argv[i + 1], "--help") == 0) {
        printf("usage: mpcpush [--config FILE] %s\n%s\n", cmd->usage, cmd->help);
        return 0;
    }

    curl_global_init(CURL_GLOBAL_DEFAULT); /* before any thread exists */
    struct mp_config cfg;
    struct mp_buf errors;
    mp_buf_init(&errors, 65536);
    enum mp_result result = mp_config_load(&cfg, config_file, environ, &errors);
    if (!result)
        result = mp_config_check(&cfg, cmd->needs, &errors);
    int status;
    if (result) {
        fprintf(stderr, "%s", errors.data ? errors.data : "mpcpush: out of memory\n");
        status = 1;
    } else {
        mp_config_apply_log_level(&cfg);
        status = cmd->run(&cfg, config_file, argc - i, argv + i);
    }
    mp_buf_free(&errors);
    mp_config_free(&cfg);
    curl_global_cleanup();
    return status;
}
