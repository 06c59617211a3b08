/* The option table of mpcpush-fcm-emulator: parsing, defaults and --help come from it. Options
 * are listed alphabetically, as --help prints them. */
#include "options-int.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "mpcpush/config.h"

enum opt_type { OPT_STRING, OPT_HOSTPORT, OPT_INT, OPT_LONG, OPT_LIST, OPT_FLAG };

enum opt_flags {
    SERVES = 1, /* only meaningful for a running server */
};

struct opt {
    const char *name;
    const char *arg; /* metavariable shown by --help; NULL for flags */
    enum opt_type type;
    size_t offset;
    const char *def;
    long min, max;
    unsigned flags;
    const char *help;
};

#define FIELD(f) offsetof(struct emu_options, f)

static const struct opt opts_table[] = {
    {"clock-skew", "SECONDS", OPT_INT, FIELD(clock_skew), "300", 0, 86400, SERVES,
     "how far an assertion's iat may be from the emulator's clock"},
    {"faults", "FILE", OPT_STRING, FIELD(faults), NULL, 0, 0, SERVES,
     "JSON fault rules to start with (see POST /emulator/faults)"},
    {"help", NULL, OPT_FLAG, FIELD(help), NULL, 0, 0, 0, "print this help and exit"},
    {"latency-ms", "N", OPT_INT, FIELD(latency_ms), "0", 0, 600000, SERVES,
     "delay every /token and send answer by N milliseconds"},
    {"listen", "HOST:PORT", OPT_HOSTPORT, FIELD(listen), "127.0.0.1:0", 0, 0, SERVES,
     "TLS listener (HTTP/2 by ALPN, HTTP/1.1 otherwise); port 0 picks a free one"},
    {"listen-plain", "HOST:PORT", OPT_HOSTPORT, FIELD(listen_plain), NULL, 0, 0, SERVES,
     "plain listener: HTTP/1.1, or HTTP/2 with prior knowledge (h2c); default: none"},
    {"log-level", "LEVEL", OPT_STRING, FIELD(log_level), "info", 0, 0, 0,
     "debug, info, warn or error"},
    {"log-requests", NULL, OPT_FLAG, FIELD(log_requests), NULL, 0, 0, SERVES,
     "log one line per request (slow under load)"},
    {"make-service-account", "FILE", OPT_STRING, FIELD(make_service_account), NULL, 0, 0, 0,
     "write a throwaway service-account key file (mode 0600); alone: write it and exit"},
    {"max-connections", "N", OPT_INT, FIELD(max_connections), "10000", 1, 1000000, SERVES,
     "connections served at once; more are closed at once"},
    {"no-records", NULL, OPT_FLAG, FIELD(no_records), NULL, 0, 0, SERVES,
     "count accepted messages but do not record them (long benchmarks)"},
    {"project", "ID", OPT_STRING, FIELD(project), "mpcpush-emulator", 0, 0, 0,
     "project_id of a generated service account"},
    {"seed", "N", OPT_LONG, FIELD(seed), "0", 0, LONG_MAX, SERVES,
     "seed of the fault probability generator (0: random)"},
    {"service-account", "FILE", OPT_LIST, FIELD(service_accounts), NULL, 0, 0, SERVES,
     "trust this service-account key file (repeatable); default: a generated one"},
    {"state-dir", "DIR", OPT_STRING, FIELD(state_dir), NULL, 0, 0, SERVES,
     "write ca.pem, service-account.json, ports, pid and messages.jsonl here"},
    {"token-lifetime", "SECONDS", OPT_INT, FIELD(token_lifetime), "3600", 1, 86400, SERVES,
     "lifetime of issued access tokens"},
    {"token-uri", "URL", OPT_STRING, FIELD(token_uri), "https://oauth2.googleapis.com/token", 0, 0,
     0, "token_uri of a key file written by a standalone --make-service-account"},
    {"version", NULL, OPT_FLAG, FIELD(version), NULL, 0, 0, 0, "print the version and exit"},
};

#define NOPTS (sizeof(opts_table) / sizeof(opts_table[0]))

static const struct opt *find_opt(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strlen(opts_table[i].name) == len && strncmp(opts_table[i].name, name, len) == 0)
            return &opts_table[i];
    return NULL;
}

static enum mp_result set_string(char **slot, const char *value)
{
    char *copy = strdup(value);
    if (!copy)
        return MP_ERR_NOMEM;
    free(*slot);
    *slot = copy;
    return MP_OK;
}

static enum mp_result parse_number(const struct opt *o, const char *value, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || *end || end == value || v < o->min || v > o->max)
        return MP_ERR_INVALID;
    *out = v;
    return MP_OK;
}

/* Stores value into the field of o; MP_ERR_INVALID when it does not parse. */
static enum mp_result assign(struct emu_options *opts, const struct opt *o, const char *value)
{
    char *base = (char *)opts + o->offset;
    char host[256];
    int port;
    long v;
    switch (o->type) {
    case OPT_HOSTPORT:
        if (mp_config_split_hostport(value, host, sizeof(host), &port))
            return MP_ERR_INVALID;
        return set_string((char **)base, value);
    case OPT_STRING:
        return set_string((char **)base, value);
    case OPT_INT:
        if (parse_number(o, value, &v))
            return MP_ERR_INVALID;
        *(int *)base = (int)v;
        return MP_OK;
    case OPT_LONG:
        if (parse_number(o, value, &v))
            return MP_ERR_INVALID;
        *(long *)base = v;
        return MP_OK;
    case OPT_LIST:
        if (opts->n_service_accounts == EMU_MAX_ACCOUNTS)
            return MP_ERR_TOO_LARGE;
        opts->service_accounts[opts->n_service_accounts] = NULL;
        if (set_string(&opts->service_accounts[opts->n_service_accounts], value))
            return MP_ERR_NOMEM;
        opts->n_service_accounts++;
        return MP_OK;
    case OPT_FLAG:
        *(int *)base = 1;
        return MP_OK;
    }
    return MP_ERR_INTERNAL;
}

static enum mp_result set_defaults(struct emu_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    for (size_t i = 0; i < NOPTS; i++) {
        if (!opts_table[i].def)
            continue;
        enum mp_result result = assign(opts, &opts_table[i], opts_table[i].def);
        if (result)
            return result;
    }
    return MP_OK;
}

/* Handles argv[*i] (and its value, advancing *i). */
static enum mp_result parse_one(struct emu_options *opts, int argc, char **argv, int *i, char *err,
                                size_t err_size)
{
    const char *arg = argv[*i];
    if (strncmp(arg, "--", 2) != 0) {
        snprintf(err, err_size, "unexpected argument \"%s\" (try --help)", arg);
        return MP_ERR_INVALID;
    }
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    const struct opt *o = find_opt(name, eq ? (size_t)(eq - name) : strlen(name));
    if (!o) {
        snprintf(err, err_size, "unknown option \"%s\" (try --help)", arg);
        return MP_ERR_INVALID;
    }
    const char *value = eq ? eq + 1 : NULL;
    if (o->type == OPT_FLAG && value) {
        snprintf(err, err_size, "--%s takes no value", o->name);
        return MP_ERR_INVALID;
    }
    if (o->type != OPT_FLAG && !value) {
        if (*i + 1 >= argc) {
            snprintf(err, err_size, "--%s needs a value %s", o->name, o->arg);
            return MP_ERR_INVALID;
        }
        value = argv[++*i];
    }
    enum mp_result result = assign(opts, o, value ? value : "");
    if (result == MP_ERR_INVALID || result == MP_ERR_TOO_LARGE)
        snprintf(err, err_size, "--%s: bad value \"%s\"", o->name, value ? value : "");
    if (!result && (o->flags & SERVES))
        opts->serve = 1;
    return result;
}

enum mp_result emu_options_parse(struct emu_options *opts, int argc, char **argv, char *err,
                                 size_t err_size)
{
    enum mp_result result = set_defaults(opts);
    for (int i = 1; !result && i < argc; i++)
        result = parse_one(opts, argc, argv, &i, err, err_size);
    if (result == MP_ERR_NOMEM)
        snprintf(err, err_size, "out of memory");
    return result;
}

void emu_options_print_help(FILE *out)
{
    fprintf(out, "usage: mpcpush-fcm-emulator [OPTION]...\n"
                 "A local stand-in for Google's OAuth token endpoint and the FCM HTTP v1 send "
                 "endpoint.\n\nOptions:\n");
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts_table[i];
        char left[64];
        snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(out, "  %-32s %s", left, o->help);
        if (o->def)
            fprintf(out, " (default %s)", o->def);
        fputc('\n', out);
    }
    fprintf(out,
            "\nEndpoints (on every listener):\n"
            "  POST /token                              OAuth 2.0 JWT-bearer grant\n"
            "  POST /v1/projects/{p}/messages:send      FCM HTTP v1 send\n"
            "  GET  /emulator/stats                     counters (JSON)\n"
            "  GET  /emulator/messages[?token=T]        accepted messages (JSON lines)\n"
            "  GET|POST|DELETE /emulator/faults         scripted faults (POST replaces; "
            "?append=1 adds;\n"
            "                                           DELETE ?token=T removes that token's)\n"
            "  POST /emulator/reset                     clear records, counters and faults\n"
            "  POST /emulator/expire-tokens             expire every access token issued\n"
            "  GET  /healthz                            liveness\n"
            "\nSIGTERM or SIGINT: flush the records and exit 0.\n");
}

void emu_options_free(struct emu_options *opts)
{
    if (!opts)
        return;
    free(opts->listen);
    free(opts->listen_plain);
    free(opts->state_dir);
    for (size_t i = 0; i < opts->n_service_accounts; i++)
        free(opts->service_accounts[i]);
    free(opts->make_service_account);
    free(opts->project);
    free(opts->token_uri);
    free(opts->faults);
    free(opts->log_level);
    memset(opts, 0, sizeof(*opts));
}
