/* PostgreSQL connections: connecting with sane session settings, a small pool for request
 * handlers, and the helpers every store module uses to run statements. */
#ifndef MPCPUSH_DB_H
#define MPCPUSH_DB_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "mpcpush/result.h"

/* Opens a connection (application_name = mpcpush-<role>), sets the session up for mpcpush
 * (UTC, statement timeout), and returns it in *out. The caller owns it (PQfinish). */
enum mp_result mp_db_connect(const char *url, const char *role, PGconn **out) MP_MUSTCHECK;

/* Runs a command that returns no rows; logs and maps any failure. */
enum mp_result mp_db_exec(PGconn *conn, const char *sql) MP_MUSTCHECK;

/* Checks a PGresult: MP_OK for PGRES_COMMAND_OK / PGRES_TUPLES_OK, else logs `what` with the
 * server's message and returns MP_ERR_DB. Does not clear the result. */
enum mp_result mp_db_check(PGconn *conn, PGresult *res, const char *what) MP_MUSTCHECK;

/* Runs sql as the statement `name` prepared on this connection: prepared on first use (and
 * again after a reconnect), so a statement run every batch is parsed and planned once.
 * Text parameters, text results; the caller checks (mp_db_check) and clears the result. */
PGresult *mp_db_exec_prepared(PGconn *conn, const char *name, const char *sql, int nparams,
                              const char *const *params);

/* True when the connection is unusable and must be replaced. */
bool mp_db_broken(PGconn *conn);

/* The SQLSTATE of a failed result, or "" */
const char *mp_db_sqlstate(const PGresult *res);

struct mp_db_pool;

/* A pool of up to size connections, opened lazily. */
enum mp_result mp_db_pool_new(const char *url, const char *role, int size,
                              struct mp_db_pool **out) MP_MUSTCHECK;

/* Takes a connection, waiting up to wait_ms for one to be returned; connects if needed.
 * MP_ERR_DB when the database cannot be reached, MP_ERR_TIMEOUT when none is free. */
enum mp_result mp_db_pool_get(struct mp_db_pool *pool, int wait_ms, PGconn **out) MP_MUSTCHECK;

/* Returns a connection; a broken one (or one left inside a transaction) is closed instead. */
void mp_db_pool_put(struct mp_db_pool *pool, PGconn *conn);

/* Closes every connection; accepts NULL. */
void mp_db_pool_free(struct mp_db_pool *pool);

/* Applies every migration not yet recorded in mpcpush.schema_migrations, each in its own
 * transaction, under an advisory lock so concurrent runs wait for each other. Sets *applied to
 * the number applied by this call (may be NULL). */
enum mp_result mp_db_migrate(PGconn *conn, int *applied) MP_MUSTCHECK;

/* Compares the database's schema version with the binary's: MP_OK when current,
 * MP_ERR_CONFLICT when migrations are missing (or the database is newer), MP_ERR_DB on error. */
enum mp_result mp_db_schema_check(PGconn *conn) MP_MUSTCHECK;

#endif
