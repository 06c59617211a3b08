/* logfmt lines on stderr, one write(2) per line so concurrent threads never interleave. */
#include "mpcpush/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum mp_log_level mp_log_threshold = MP_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void mp_log_write(enum mp_log_level level, const char *event, const char *fmt, ...)
{
    char line[2048];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    int n =
        snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 now.tv_nsec / 1000000, level_names[level], event);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    if (fmt && fmt[0] && len + 2 < sizeof(line)) {
        line[len++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
        va_end(ap);
        if (m > 0)
            len += (size_t)m < sizeof(line) - len ? (size_t)m : sizeof(line) - len - 1;
    }
    if (len >= sizeof(line) - 1)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}

int mp_log_level_parse(const char *text)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(text, level_names[i]) == 0)
            return (int)i;
    return -1;
}

static int needs_quoting(const char *value)
{
    if (!value[0])
        return 1;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p >= 0x7f)
            return 1;
    return 0;
}

const char *mp_log_quote(char *out, size_t size, const char *value)
{
    if (size == 0)
        return out;
    if (!value)
        value = "";
    if (!needs_quoting(value)) {
        snprintf(out, size, "%s", value);
        return out;
    }
    size_t o = 0;
    out[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)value; *p && o + 6 < size; p++) {
        if (*p == '"' || *p == '\\') {
            out[o++] = '\\';
            out[o++] = (char)*p;
        } else if (*p < ' ' || *p == 0x7f) {
            o += (size_t)snprintf(out + o, size - o, "\\x%02x", *p);
        } else {
            out[o++] = (char)*p;
        }
    }
    if (o < size - 1)
        out[o++] = '"';
    out[o < size ? o : size - 1] = '\0';
    return out;
}

const char *mp_log_redact(char *out, size_t size, const char *value)
{
    size_t len = value ? strlen(value) : 0;
    const char *tail = len > 6 ? value + len - 6 : (value ? value : "");
    char quoted[32];
    snprintf(out, size, "...%s", mp_log_quote(quoted, sizeof(quoted), tail));
    return out;
}
