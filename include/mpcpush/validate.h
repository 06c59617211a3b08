/* Validation of the identifiers and tokens a client sends. */
#ifndef MPCPUSH_VALIDATE_H
#define MPCPUSH_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#define MP_ID_MAX    128  /* wallet, device, physical device and key names */
#define MP_TOKEN_MAX 4096 /* FCM registration tokens are ~160 bytes; leave room */

/* Where the system's trusted roots live (hashed, OpenSSL-style); MPCPUSH_CA_FILE adds to it. */
#define MP_SYSTEM_CA_PATH "/etc/ssl/certs"

/* 1..MP_ID_MAX bytes of [A-Za-z0-9._:-]. */
bool mp_valid_id(const char *id, size_t len);

/* 1..MP_TOKEN_MAX bytes of printable ASCII without spaces. */
bool mp_valid_fcm_token(const char *token, size_t len);

/* "android", "ios" or "web". */
bool mp_valid_platform(const char *platform);

/* The value (0..15) of a hexadecimal digit, or -1 for any other character. */
int mp_hex_value(int c);

/* The length (2..4) of the valid multi-byte UTF-8 sequence at s, reading at most avail bytes,
 * or 0 when there is none (overlong forms, surrogates and code points past U+10FFFF are not
 * valid). In a NUL-terminated string avail may be 4: the NUL ends any sequence. */
size_t mp_utf8_sequence(const unsigned char *s, size_t avail);

/* A NUL-terminated string of valid UTF-8. */
bool mp_valid_utf8(const char *s);

#endif
