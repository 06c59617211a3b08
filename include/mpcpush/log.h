/* Structured logging: one logfmt line per event on stderr (journald keeps it).
 *
 *   MP_LOG(MP_LOG_INFO, "webhook_stored", "wallet=%s device=%s", wallet, device);
 *   -> ts=2026-11-24T21:30:00.123Z level=info event=webhook_stored wallet=w1 device=d1
 *
 * The level is checked before anything is formatted. Callers pass only values that are safe
 * to print: never keys, access tokens, API keys or whole FCM tokens (use mp_log_redact). */
#ifndef MPCPUSH_LOG_H
#define MPCPUSH_LOG_H

#include <stddef.h>

enum mp_log_level { MP_LOG_DEBUG = 0, MP_LOG_INFO, MP_LOG_WARN, MP_LOG_ERROR };

extern enum mp_log_level mp_log_threshold;

#define MP_LOG(level, event, ...)                                                                  \
    do {                                                                                           \
        if ((level) >= mp_log_threshold)                                                           \
            mp_log_write((level), (event), __VA_ARGS__);                                           \
    } while (0)

#define MP_DEBUG(event, ...) MP_LOG(MP_LOG_DEBUG, event, __VA_ARGS__)
#define MP_INFO(event, ...)  MP_LOG(MP_LOG_INFO, event, __VA_ARGS__)
#define MP_WARN(event, ...)  MP_LOG(MP_LOG_WARN, event, __VA_ARGS__)
#define MP_ERROR(event, ...) MP_LOG(MP_LOG_ERROR, event, __VA_ARGS__)

/* Writes one line: ts, level, event, then the caller's key=value text (may be ""). */
void mp_log_write(enum mp_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parses "debug", "info", "warn" or "error"; returns -1 for anything else. */
int mp_log_level_parse(const char *text);

/* Writes a logfmt-safe rendering of value into out: bare when it needs no quoting, otherwise
 * double-quoted with '"', '\\' and control bytes escaped; truncated to fit. Returns out. */
const char *mp_log_quote(char *out, size_t size, const char *value);

/* Writes a redacted form of a secret-ish identifier (an FCM token): "...<last 6 chars>". */
const char *mp_log_redact(char *out, size_t size, const char *value);

#endif
