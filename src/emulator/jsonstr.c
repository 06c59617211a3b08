/* JSON string escaping into an mp_buf: quotes, backslashes and control bytes are escaped,
 * other bytes (UTF-8 included) are copied. */
#include "jsonstr-int.h"

#include <stdio.h>
#include <string.h>

/* The length of the run of bytes at text that need no escaping. */
static size_t plain_run(const char *text)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++, n++)
        if (*p < 0x20 || *p == '"' || *p == '\\')
            break;
    return n;
}

static enum mp_result append_escape(struct mp_buf *buf, unsigned char c)
{
    switch (c) {
    case '"':
        return mp_buf_append(buf, "\\\"", 2);
    case '\\':
        return mp_buf_append(buf, "\\\\", 2);
    case '\n':
        return mp_buf_append(buf, "\\n", 2);
    case '\r':
        return mp_buf_append(buf, "\\r", 2);
    case '\t':
        return mp_buf_append(buf, "\\t", 2);
    default:
        return mp_buf_printf(buf, "\\u%04x", c);
    }
}

enum mp_result emu_json_append_string(struct mp_buf *buf, const char *text)
{
    if (!text)
        return mp_buf_append(buf, "null", 4);
    enum mp_result result = mp_buf_append(buf, "\"", 1);
    while (!result && *text) {
        size_t n = plain_run(text);
        result = mp_buf_append(buf, text, n);
        text += n;
        if (!result && *text)
            result = append_escape(buf, (unsigned char)*text++);
    }
    return result ? result : mp_buf_append(buf, "\"", 1);
}
