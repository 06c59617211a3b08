/* The record of accepted messages: one JSON line each in messages.jsonl, written through a
 * buffer that is flushed at least every 100 ms (no fsync), and read back for tests. */
#ifndef MPCPUSH_EMU_RECORD_INT_H
#define MPCPUSH_EMU_RECORD_INT_H

#include <stddef.h>
#include <stdint.h>

#include "mpcpush/buf.h"
#include "mpcpush/result.h"

struct emu_record;

/* Opens (truncating) path, or an anonymous temporary file when path is NULL. */
enum mp_result emu_record_open(const char *path, struct emu_record **out) MP_MUSTCHECK;

/* Flushes and closes; accepts NULL. */
void emu_record_close(struct emu_record *rec);

/* Appends {"at":at_ms,"name":name,"token":token|null,"message":message_json}. */
enum mp_result emu_record_append(struct emu_record *rec, int64_t at_ms, const char *name,
                                 const char *token, const char *message_json) MP_MUSTCHECK;

/* Writes out what is buffered. */
enum mp_result emu_record_flush(struct emu_record *rec) MP_MUSTCHECK;

/* Flushes when something has waited for 50 ms or more (call it every 50 ms). */
void emu_record_tick(struct emu_record *rec, uint64_t now_ms);

/* Appends every recorded line (only those for token when not NULL) to out. */
enum mp_result emu_record_read(struct emu_record *rec, const char *token,
                               struct mp_buf *out) MP_MUSTCHECK;

/* Forgets every record (truncates the file). */
enum mp_result emu_record_truncate(struct emu_record *rec) MP_MUSTCHECK;

#endif
