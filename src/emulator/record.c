/* messages.jsonl: appended through an in-memory buffer; flushed by size, by age (the loop's
 * tick) and before every read, so tests see records within 100 ms without a write per send. */
#include "record-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "jsonstr-int.h"
#include "loop-int.h"
#include "mpcpush/log.h"

#define FLUSH_BYTES (256 * 1024)
#define FLUSH_MS    50 /* with the loop's 50 ms tick: on disk within 100 ms */
#define READ_LIMIT  ((size_t)512 * 1024 * 1024)

struct emu_record {
    int fd;
    struct mp_buf pending;
    uint64_t oldest_ms; /* when the oldest buffered line was added; 0: nothing buffered */
};

enum mp_result emu_record_open(const char *path, struct emu_record **out)
{
    struct emu_record *rec = calloc(1, sizeof(*rec));
    if (!rec)
        return MP_ERR_NOMEM;
    mp_buf_init(&rec->pending, 0);
    if (path) {
        rec->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    } else {
        char tmpl[] = "/tmp/mpcpush-emulator-records-XXXXXX";
        rec->fd = mkstemp(tmpl);
        if (rec->fd >= 0) {
            unlink(tmpl);
            fcntl(rec->fd, F_SETFL, O_APPEND);
        }
    }
    if (rec->fd < 0) {
        free(rec);
        return MP_ERR_IO;
    }
    *out = rec;
    return MP_OK;
}

void emu_record_close(struct emu_record *rec)
{
    if (!rec)
        return;
    if (emu_record_flush(rec))
        MP_WARN("records_flush_failed", "error=\"%s\"", strerror(errno));
    close(rec->fd);
    mp_buf_free(&rec->pending);
    free(rec);
}

enum mp_result emu_record_flush(struct emu_record *rec)
{
    size_t done = 0;
    enum mp_result result = MP_OK;
    while (done < rec->pending.len) {
        ssize_t n = write(rec->fd, rec->pending.data + done, rec->pending.len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            result = MP_ERR_IO;
            break;
        }
        done += (size_t)n;
    }
    mp_buf_reset(&rec->pending);
    rec->oldest_ms = 0;
    return result;
}

void emu_record_tick(struct emu_record *rec, uint64_t now_ms)
{
    if (rec->oldest_ms && now_ms - rec->oldest_ms >= FLUSH_MS && emu_record_flush(rec))
        MP_WARN("records_flush_failed", "error=\"%s\"", strerror(errno));
}

enum mp_result emu_record_append(struct emu_record *rec, int64_t at_ms, const char *name,
                                 const char *token, const char *message_json)
{
    size_t mark = rec->pending.len;
    enum mp_result result =
        mp_buf_printf(&rec->pending, "{\"at\":%lld,\"name\":", (long long)at_ms);
    if (!result)
        result = emu_json_append_string(&rec->pending, name);
    if (!result)
        result = mp_buf_puts(&rec->pending, ",\"token\":");
    if (!result)
        result = emu_json_append_string(&rec->pending, token);
    if (!result)
        result = mp_buf_printf(&rec->pending, ",\"message\":%s}\n", message_json);
    if (result) { /* leave no partial line behind */
        rec->pending.len = mark;
        if (rec->pending.data)
            rec->pending.data[mark] = '\0';
        return result;
    }
    if (!rec->oldest_ms)
        rec->oldest_ms = emu_now_ms();
    if (rec->pending.len >= FLUSH_BYTES)
        result = emu_record_flush(rec);
    return result;
}

/* Whether the JSON line's "token" equals token. */
static int line_matches(const char *line, size_t len, const char *token)
{
    json_t *json = json_loadb(line, len, 0, NULL);
    const char *value = json_string_value(json_object_get(json, "token"));
    int match = value && strcmp(value, token) == 0;
    json_decref(json);
    return match;
}

static enum mp_result filter_lines(const char *data, size_t len, const char *token,
                                   struct mp_buf *out)
{
    enum mp_result result = MP_OK;
    const char *p = data, *end = data + len;
    while (!result && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t line_len = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        if (line_matches(p, line_len, token))
            result = mp_buf_append(out, p, line_len);
        p += line_len;
    }
    return result;
}

enum mp_result emu_record_read(struct emu_record *rec, const char *token, struct mp_buf *out)
{
    struct mp_buf all;
    mp_buf_init(&all, READ_LIMIT);
    enum mp_result result = emu_record_flush(rec);
    char chunk[65536];
    for (off_t off = 0; !result;) {
        ssize_t n = pread(rec->fd, chunk, sizeof(chunk), off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            result = n < 0 ? MP_ERR_IO : MP_OK;
            break;
        }
        result = mp_buf_append(&all, chunk, (size_t)n);
        off += n;
    }
    if (!result && all.len)
        result = token ? filter_lines(all.data, all.len, token, out)
                       : mp_buf_append(out, all.data, all.len);
    mp_buf_free(&all);
    return result;
}

enum mp_result emu_record_truncate(struct emu_record *rec)
{
    mp_buf_reset(&rec->pending);
    rec->oldest_ms = 0;
    return ftruncate(rec->fd, 0) == 0 ? MP_OK : MP_ERR_IO;
}
