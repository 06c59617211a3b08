/* Bounded growable buffer. */
#include "mpcpush/buf.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpcpush/validate.h"

void mp_buf_init(struct mp_buf *buf, size_t limit)
{
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
    buf->limit = limit ? limit : SIZE_MAX - 1;
}

static enum mp_result reserve(struct mp_buf *buf, size_t extra)
{
    if (extra > buf->limit || buf->len > buf->limit - extra)
        return MP_ERR_TOO_LARGE;
    size_t need = buf->len + extra + 1;
    if (need <= buf->cap)
        return MP_OK;
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *data = realloc(buf->data, cap);
    if (!data)
        return MP_ERR_NOMEM;
    buf->data = data;
    buf->cap = cap;
    return MP_OK;
}

enum mp_result mp_buf_append(struct mp_buf *buf, const void *data, size_t len)
{
    enum mp_result result = reserve(buf, len);
    if (result)
        return result;
    if (len)
        memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
    return MP_OK;
}

enum mp_result mp_buf_puts(struct mp_buf *buf, const char *text)
{
    return mp_buf_append(buf, text, strlen(text));
}

enum mp_result mp_buf_printf(struct mp_buf *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return MP_ERR_INVALID;
    enum mp_result result = reserve(buf, (size_t)n);
    if (result)
        return result;
    va_start(ap, fmt);
    vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf->len += (size_t)n;
    return MP_OK;
}

/* Appends text between double quotes, '"' and '\\' escaped with a backslash, control bytes
 * as \\u00XX when json (a PostgreSQL array element takes them as they are), and any byte that
 * is not part of valid UTF-8 replaced by U+FFFD. */
static enum mp_result append_quoted(struct mp_buf *buf, const char *text, bool json)
{
    const unsigned char *s = (const unsigned char *)text;
    enum mp_result result = mp_buf_append(buf, "\"", 1);
    while (!result && *s) {
        size_t run = 0; /* plain ASCII is copied in runs */
        while (s[run] >= (json ? 0x20 : 0x01) && s[run] < 0x80 && s[run] != '"' && s[run] != '\\')
            run++;
        if (run) {
            result = mp_buf_append(buf, s, run);
            s += run;
        } else if (*s == '"' || *s == '\\') {
            char esc[2] = {'\\', (char)*s++};
            result = mp_buf_append(buf, esc, 2);
        } else if (*s < 0x20) {
            result = mp_buf_printf(buf, "\\u%04x", *s++);
        } else if ((run = mp_utf8_sequence(s, 4)) > 0) {
            result = mp_buf_append(buf, s, run);
            s += run;
        } else {
            result = mp_buf_append(buf, "\xEF\xBF\xBD", 3);
            s++;
        }
    }
    return result ? result : mp_buf_append(buf, "\"", 1);
}

enum mp_result mp_buf_json_string(struct mp_buf *buf, const char *text)
{
    return append_quoted(buf, text, true);
}

enum mp_result mp_buf_pg_array_text(struct mp_buf *buf, const char *text)
{
    return text ? append_quoted(buf, text, false) : mp_buf_puts(buf, "NULL");
}

void mp_buf_reset(struct mp_buf *buf)
{
    buf->len = 0;
    if (buf->data)
        buf->data[0] = '\0';
}

char *mp_buf_steal(struct mp_buf *buf)
{
    char *data = buf->data;
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
    return data;
}

void mp_buf_free(struct mp_buf *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
}
