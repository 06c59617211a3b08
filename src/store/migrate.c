/* The migration runner: applies the SQL files compiled into the binary, in order, once. */
#include <stdio.h>
#include <stdlib.h>

#include "mpcpush/db.h"
#include "mpcpush/log.h"
#include "store/migrations-int.h"

/* Any fixed number: every mpcpush process that migrates takes this advisory lock. */
#define MIGRATION_LOCK_KEY 0x6d7063707573 /* "mpcpus" */

static const char create_table[] = "CREATE SCHEMA IF NOT EXISTS mpcpush; "
                                   "CREATE TABLE IF NOT EXISTS mpcpush.schema_migrations ("
                                   " version integer PRIMARY KEY, name text NOT NULL,"
                                   " applied_at timestamptz NOT NULL DEFAULT now())";

static enum mp_result current_version(PGconn *conn, int *version)
{
    PGresult *res = PQexec(conn, "SELECT coalesce(max(version), 0) FROM mpcpush.schema_migrations");
    enum mp_result result = mp_db_check(conn, res, "schema_version");
    if (!result)
        *version = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return result;
}

static enum mp_result apply(PGconn *conn, const struct mp_migration *m)
{
    char version[16];
    snprintf(version, sizeof(version), "%d", m->version);
    const char *params[] = {version, m->name};
    enum mp_result result = mp_db_exec(conn, "BEGIN");
    if (!result)
        result = mp_db_exec(conn, m->sql);
    if (!result) {
        PGresult *res = PQexecParams(conn,
                                     "INSERT INTO mpcpush.schema_migrations (version, name) "
                                     "VALUES ($1, $2)",
                                     2, NULL, params, NULL, NULL, 0);
        result = mp_db_check(conn, res, "record_migration");
        PQclear(res);
    }
    if (!result)
        result = mp_db_exec(conn, "COMMIT");
    if (result) {
        PQclear(PQexec(conn, "ROLLBACK"));
        MP_ERROR("migration_failed", "version=%d name=%s", m->version, m->name);
        return result;
    }
    MP_INFO("migration_applied", "version=%d name=%s", m->version, m->name);
    return MP_OK;
}

enum mp_result mp_db_migrate(PGconn *conn, int *applied)
{
    int count = 0, version = 0;
    char lock[96];
    snprintf(lock, sizeof(lock), "SELECT pg_advisory_lock(%lld)", (long long)MIGRATION_LOCK_KEY);
    enum mp_result result = mp_db_exec(conn, lock);
    if (result)
        return result;
    /* Two first-time runs could race on CREATE SCHEMA IF NOT EXISTS; the lock serialises them. */
    result = mp_db_exec(conn, create_table);
    if (!result)
        result = current_version(conn, &version);
    for (int i = 0; !result && i < mp_migrations_count; i++) {
        if (mp_migrations[i].version <= version)
            continue;
        result = apply(conn, &mp_migrations[i]);
        count += !result;
    }
    snprintf(lock, sizeof(lock), "SELECT pg_advisory_unlock(%lld)", (long long)MIGRATION_LOCK_KEY);
    PQclear(PQexec(conn, lock));
    if (!result && applied)
        *applied = count;
    return result;
}

enum mp_result mp_db_schema_check(PGconn *conn)
{
    PGresult *res = PQexec(conn, "SELECT to_regclass('mpcpush.schema_migrations') IS NOT NULL");
    enum mp_result result = mp_db_check(conn, res, "schema_check");
    bool exists = !result && PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (result)
        return result;
    if (!exists)
        return MP_ERR_CONFLICT;
    int version = 0;
    result = current_version(conn, &version);
    if (result)
        return result;
    int want = mp_migrations_count ? mp_migrations[mp_migrations_count - 1].version : 0;
    return version == want ? MP_OK : MP_ERR_CONFLICT;
}
