/* Form and query-string decoding: '+' is a space, %XX a byte; a bad escape makes the value
 * undecodable. */
#include "form-int.h"

#include <stdlib.h>
#include <string.h>

#include "mpcpush/validate.h"

/* Decodes len bytes of text into a new NUL-terminated string. */
static char *url_decode(const char *text, size_t len)
{
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '+') {
            out[o++] = ' ';
        } else if (text[i] != '%') {
            out[o++] = text[i];
        } else {
            int hi = i + 2 < len ? mp_hex_value(text[i + 1]) : -1;
            int lo = i + 2 < len ? mp_hex_value(text[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        }
    }
    out[o] = '\0';
    return out;
}

char *emu_form_value(const char *form, size_t len, const char *name)
{
    size_t name_len = strlen(name);
    const char *p = form, *end = form + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pair_end - p));
        if (eq && (size_t)(eq - p) == name_len && memcmp(p, name, name_len) == 0)
            return url_decode(eq + 1, (size_t)(pair_end - eq - 1));
        p = pair_end + 1;
    }
    return NULL;
}

char *emu_query_value(const char *path, const char *name)
{
    const char *q = strchr(path, '?');
    if (!q)
        return NULL;
    const char *end = strchr(q, '#');
    return emu_form_value(q + 1, end ? (size_t)(end - q - 1) : strlen(q + 1), name);
}

int emu_path_is(const char *path, const char *route)
{
    size_t n = strcspn(path, "?#");
    return strlen(route) == n && memcmp(path, route, n) == 0;
}
