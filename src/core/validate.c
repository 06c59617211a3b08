/* Identifier and token validation. */
#include "mpcpush/validate.h"

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
