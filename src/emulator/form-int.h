/* application/x-www-form-urlencoded bodies and URL query strings. */
#ifndef MPCPUSH_EMU_FORM_INT_H
#define MPCPUSH_EMU_FORM_INT_H

#include <stddef.h>

/* The URL-decoded value of the first name=value pair in form (len bytes, '&'-separated), or
 * NULL when absent or undecodable. Caller frees. */
char *emu_form_value(const char *form, size_t len, const char *name);

/* The value of name in the query string of path ("/x?a=1&b=2"), decoded; NULL when absent.
 * Caller frees. */
char *emu_query_value(const char *path, const char *name);

/* Whether path without its query string equals route. */
int emu_path_is(const char *path, const char *route);

#endif
