/* The migrations compiled into the binary (generated from sql/ by the build). */
#ifndef MPCPUSH_MIGRATIONS_INT_H
#define MPCPUSH_MIGRATIONS_INT_H

struct mp_migration {
    int version;      /* the number the file name starts with */
    const char *name; /* the file name without .sql */
    const char *sql;
};

extern const struct mp_migration mp_migrations[];
extern const int mp_migrations_count;

#endif
