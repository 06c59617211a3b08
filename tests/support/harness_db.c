/* Test support: a private database per test in the fixture cluster. */
#include "harness.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *th_pg_admin_url(void)
{
    static char url[512];
    if (url[0])
        return url;
    char path[512];
    snprintf(path, sizeof(path), "%s/pg/url", th_env("MPCPUSH_TEST_DIR"));
    FILE *f = fopen(path, "r");
    if (!f || !fgets(url, sizeof(url), f))
        fail_msg("cannot read %s: is the PostgreSQL fixture running?", path);
    fclose(f);
    url[strcspn(url, "\n")] = '\0';
    return url;
}

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *connect_or_fail(const char *url)
{
    PGconn *conn = PQconnectdb(url);
    if (PQstatus(conn) != CONNECTION_OK)
        fail_msg("cannot connect to %s: %s", url, PQerrorMessage(conn));
    PQsetNoticeProcessor(conn, quiet, NULL);
    return conn;
}

char *th_db_create(bool migrate)
{
    static int serial;
    char name[64], sql[128];
    snprintf(name, sizeof(name), "t_%d_%d_%ld", (int)getpid(), ++serial, (long)random() % 100000);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    th_sql_exec(th_pg_admin_url(), sql);
    const char *admin = th_pg_admin_url();
    const char *slash = strrchr(admin, '/');
    char *url = NULL;
    if (asprintf(&url, "%.*s/%s", (int)(slash - admin), admin, name) < 0)
        fail_msg("out of memory");
    if (migrate) {
        const char *argv[] = {"migrate", NULL};
        int status = th_mpcpush_run(url, NULL, NULL, 0, argv);
        if (status != 0)
            fail_msg("mpcpush migrate exited %d", status);
    }
    return url;
}

void th_sql_exec(const char *url, const char *sql)
{
    PGconn *conn = connect_or_fail(url);
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("SQL failed: %s\n%s", sql, PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(conn);
}

char *th_sql_text(const char *url, const char *sql)
{
    PGconn *conn = connect_or_fail(url);
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("SQL failed: %s\n%s", sql, PQresultErrorMessage(res));
    char *value = NULL;
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        value = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(conn);
    return value;
}

long th_sql_long(const char *url, const char *sql)
{
    char *text = th_sql_text(url, sql);
    long value = text ? strtol(text, NULL, 10) : 0;
    free(text);
    return value;
}
