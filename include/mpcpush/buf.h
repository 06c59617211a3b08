/* A growable byte buffer with a hard size limit (like curl's dynbuf): appending past the limit
 * fails with MP_ERR_TOO_LARGE instead of growing without bound. */
#ifndef MPCPUSH_BUF_H
#define MPCPUSH_BUF_H

#include <stddef.h>

#include "mpcpush/result.h"

struct mp_buf {
    char *data; /* always NUL-terminated when not NULL */
    size_t len;
    size_t cap;
    size_t limit; /* maximum len; 0 means SIZE_MAX */
};

/* Sets up an empty buffer that will refuse to grow beyond limit bytes. */
void mp_buf_init(struct mp_buf *buf, size_t limit);

/* Appends len bytes. */
enum mp_result mp_buf_append(struct mp_buf *buf, const void *data, size_t len) MP_MUSTCHECK;

/* Appends a NUL-terminated string. */
enum mp_result mp_buf_puts(struct mp_buf *buf, const char *text) MP_MUSTCHECK;

/* Appends printf-formatted text. */
enum mp_result mp_buf_printf(struct mp_buf *buf, const char *fmt, ...) MP_MUSTCHECK
    __attribute__((format(printf, 2, 3)));

/* Appends text as a JSON string literal: quoted, with '"', '\\' and control bytes escaped, and
 * any byte that is not part of valid UTF-8 replaced by U+FFFD (so the result always parses). */
enum mp_result mp_buf_json_string(struct mp_buf *buf, const char *text) MP_MUSTCHECK;

/* Appends text as one element of a PostgreSQL array literal ('{"a","b",NULL}'): quoted and
 * escaped as above (control bytes kept as they are), or NULL when text is NULL. */
enum mp_result mp_buf_pg_array_text(struct mp_buf *buf, const char *text) MP_MUSTCHECK;

/* Empties the buffer, keeping its memory. */
void mp_buf_reset(struct mp_buf *buf);

/* Hands the data to the caller (who frees it) and leaves the buffer empty. */
char *mp_buf_steal(struct mp_buf *buf);

/* Frees the memory; the buffer may be reused after mp_buf_init. Accepts an empty buffer. */
void mp_buf_free(struct mp_buf *buf);

#endif
