/* Appending JSON string literals to a buffer without building jansson values (hot paths). */
#ifndef MPCPUSH_EMU_JSONSTR_INT_H
#define MPCPUSH_EMU_JSONSTR_INT_H

#include "mpcpush/buf.h"
#include "mpcpush/result.h"

/* Appends text as a quoted JSON string ("..." with escapes); NULL appends null. */
enum mp_result emu_json_append_string(struct mp_buf *buf, const char *text) MP_MUSTCHECK;

#endif
