/* `mpcpush-bench drain`: runs --start-sql (which lets the paused dispatcher go and wakes it
 * with a NOTIFY), then times how long the dispatcher takes until the emulator has accepted
 * --count more messages and no push is owed any more (wanted_id > covered_id on no row). */
#include <curl/curl.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench-int.h"

struct grab {
    char data[8192];
    size_t len;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct grab *g = arg;
    size_t n = size * nmemb;
    size_t room = sizeof(g->data) - 1 - g->len;
    memcpy(g->data + g->len, ptr, n < room ? n : room);
    g->len += n < room ? n : room;
    g->data[g->len] = '\0';
    return n;
}

/* The emulator's "accepted" counter, or -1. */
static long long emulator_accepted(CURL *curl)
{
    struct grab g = {.len = 0};
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &g);
    long status = 0;
    if (curl_easy_perform(curl) != CURLE_OK)
        return -1;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    const char *at = strstr(g.data, "\"accepted\":");
    return status == 200 && at ? atoll(at + 11) : -1;
}

static long long owed(PGconn *db)
{
    PGresult *res = PQexec(db, "SELECT count(*) FROM mpcpush.pushes WHERE wanted_id > covered_id");
    long long n = PQresultStatus(res) == PGRES_TUPLES_OK ? atoll(PQgetvalue(res, 0, 0)) : -1;
    PQclear(res);
    return n;
}

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

struct drain_opts {
    const char *db, *emulator, *start_sql;
    long long count;
    double timeout;
    int poll_ms;
};

static void parse_opts(int argc, char **argv, struct drain_opts *o)
{
    *o = (struct drain_opts){.timeout = 300, .poll_ms = 5};
    for (int i = 0; i < argc; i += 2) {
        const char *name = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(name, "--db"))
            o->db = v;
        else if (!strcmp(name, "--emulator"))
            o->emulator = v;
        else if (!strcmp(name, "--start-sql"))
            o->start_sql = v;
        else if (!strcmp(name, "--count"))
            o->count = bench_arg_ll(name, v, 1, 100000000);
        else if (!strcmp(name, "--timeout"))
            o->timeout = bench_arg_double(name, v, 1, 3600);
        else if (!strcmp(name, "--poll-ms"))
            o->poll_ms = (int)bench_arg_ll(name, v, 1, 1000);
        else {
            fprintf(stderr, "mpcpush-bench drain: unknown option %s\n", name);
            exit(2);
        }
    }
    if (!o->db || !o->emulator || !o->start_sql || !o->count ||
        strncmp(o->emulator, "http://127.", 11) != 0) {
        fprintf(stderr, "mpcpush-bench drain: --db, --emulator http://127.x.y.z:PORT, --count "
                        "and --start-sql are required\n");
        exit(2);
    }
}

static CURL *stats_handle(const char *base)
{
    static char url[512];
    snprintf(url, sizeof(url), "%s/emulator/stats", base);
    CURL *curl = curl_easy_init();
    if (curl) {
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    }
    return curl;
}

int bench_cmd_drain(int argc, char **argv)
{
    struct drain_opts o;
    parse_opts(argc, argv, &o);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *curl = stats_handle(o.emulator);
    PGconn *db = PQconnectdb(o.db);
    if (!curl || PQstatus(db) != CONNECTION_OK) {
        fprintf(stderr, "mpcpush-bench drain: %s\n", PQerrorMessage(db));
        return 1;
    }
    /* The poll below must not take CPU from what it measures: no parallel workers for it. */
    PQclear(PQexec(db, "SET max_parallel_workers_per_gather = 0"));
    long long base = emulator_accepted(curl);
    if (base < 0) {
        fprintf(stderr, "mpcpush-bench drain: cannot read %s/emulator/stats\n", o.emulator);
        return 1;
    }
    PGresult *res = PQexec(db, o.start_sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "mpcpush-bench drain: start SQL: %s", PQerrorMessage(db));
        return 1;
    }
    PQclear(res);
    uint64_t t0 = bench_mono_ns(), deadline = t0 + (uint64_t)(o.timeout * 1e9);
    long long got = 0, left = -1;
    uint64_t t_emu = 0, t_db = 0;
    while (bench_mono_ns() < deadline) {
        if (!t_emu && (got = emulator_accepted(curl) - base) >= o.count)
            t_emu = bench_mono_ns();
        if (t_emu && (left = owed(db)) == 0) {
            t_db = bench_mono_ns();
            break;
        }
        nap_ms(o.poll_ms);
    }
    double s_emu = t_emu ? (double)(t_emu - t0) / 1e9 : 0,
           s_all = t_db ? (double)(t_db - t0) / 1e9 : 0;
    printf("wakeups=%lld accepted=%lld owed_left=%lld emulator_seconds=%.3f seconds=%.3f "
           "rate=%.1f\n",
           o.count, t_emu ? o.count : got, left, s_emu, s_all,
           s_all > 0 ? (double)o.count / s_all : 0.0);
    PQfinish(db);
    curl_easy_cleanup(curl);
    curl_global_cleanup();
    if (!t_db)
        fprintf(stderr, "mpcpush-bench drain: timed out after %.0f s (accepted %lld of %lld)\n",
                o.timeout, got, o.count);
    return t_db ? 0 : 1;
}
