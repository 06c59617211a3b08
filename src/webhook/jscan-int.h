/* Private to the webhook envelope parser: a strict JSON scanner that checks a whole document
 * and reports where a few named members are, without building a tree. It accepts exactly what
 * jansson's json_loadb(JSON_REJECT_DUPLICATES) accepts (UTF-8, escapes and surrogate pairs,
 * no \u0000, integers within long long, reals within double, duplicate keys refused at every
 * level, at most MP_JSCAN_MAX_DEPTH nested values, nothing after the top-level value), so a
 * body refused before is refused now, and skips the values nobody asked for. */
#ifndef MPCPUSH_JSCAN_INT_H
#define MPCPUSH_JSCAN_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "mpcpush/result.h"

#define MP_JSCAN_MAX_DEPTH 2048 /* as jansson's JSON_PARSER_MAX_DEPTH */

enum mp_jtype {
    MP_JSON_ABSENT = 0, /* the member was not found */
    MP_JSON_NULL,
    MP_JSON_FALSE,
    MP_JSON_TRUE,
    MP_JSON_INTEGER,
    MP_JSON_REAL,
    MP_JSON_STRING,
    MP_JSON_ARRAY,
    MP_JSON_OBJECT,
};

/* Where a value is in the scanned text (which it points into). */
struct mp_jvalue {
    enum mp_jtype type;
    const char *text; /* the value's text; a string's without its quotes, still escaped */
    size_t len;
    bool escaped; /* a string holding at least one backslash escape */
};

/* A member to find: name, in the object that is the value of wants[parent] (-1: the top level
 * object). Its value is reported only if that parent is an object. */
struct mp_jwant {
    int parent;
    const char *name;
};

/* Checks that text[0..len) is one JSON document whose top level is an object or an array,
 * and fills found[i] (zeroed first) with the value of wants[i] when present; *root_type gets
 * the top level's type. MP_ERR_INVALID when the text is not such a document, with a short
 * reason in error ("invalid JSON: ..."; may be NULL); MP_ERR_NOMEM when memory ran out. */
enum mp_result mp_jscan(const char *text, size_t len, const struct mp_jwant *wants, int count,
                        struct mp_jvalue *found, enum mp_jtype *root_type, char *error,
                        size_t error_size) MP_MUSTCHECK;

/* The decoded string value (NUL-terminated, to free); NULL unless v is a string, or when out
 * of memory. *len (may be NULL) gets its length. */
char *mp_jstring_dup(const struct mp_jvalue *v, size_t *len);

/* True when v is a string whose decoded value is exactly text. */
bool mp_jstring_equals(const struct mp_jvalue *v, const char *text);

/* The value of an integer (within long long: checked by the scan). */
long long mp_jinteger(const struct mp_jvalue *v);

/* The value of a real (finite: checked by the scan); 0 when out of memory. */
double mp_jreal(const struct mp_jvalue *v);

#endif
