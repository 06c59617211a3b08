/* Identifier and token validation. */
#include "mpcpush/validate.h"

#include <stdint.h>
#include <string.h>

bool mp_valid_id(const char *id, size_t len)
{
    if (!id || len == 0 || len > MP_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool mp_valid_fcm_token(const char *token, size_t len)
{
    if (!token || len == 0 || len > MP_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (token[i] <= ' ' || token[i] >= 0x7f)
            return false;
    return true;
}

bool mp_valid_platform(const char *platform)
{
    return platform && (strcmp(platform, "android") == 0 || strcmp(platform, "ios") == 0 ||
                        strcmp(platform, "web") == 0);
}

int mp_hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t mp_utf8_sequence(const unsigned char *s, size_t avail)
{
    size_t n = s[0] < 0xC2 || s[0] > 0xF4 ? 0 : s[0] < 0xE0 ? 2 : s[0] < 0xF0 ? 3 : 4;
    if (n == 0 || avail < n)
        return 0;
    uint32_t v = s[0] & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) || v > 0x10FFFF ||
        (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    return n;
}

bool mp_valid_utf8(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        size_t n = *u < 0x80 ? 1 : mp_utf8_sequence(u, 4);
        if (n == 0)
            return false;
        u += n;
    }
    return true;
}
