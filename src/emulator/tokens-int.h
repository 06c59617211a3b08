/* The access tokens the token endpoint issued, in a hash table, so the send endpoint checks a
 * bearer token with one lookup and no cryptography. */
#ifndef MPCPUSH_EMU_TOKENS_INT_H
#define MPCPUSH_EMU_TOKENS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "mpcpush/result.h"

#define EMU_TOKEN_MAX 128 /* longest access token we issue, with its NUL */

struct emu_tokens;

enum emu_token_state { EMU_TOKEN_VALID, EMU_TOKEN_EXPIRED, EMU_TOKEN_UNKNOWN };

enum mp_result emu_tokens_new(struct emu_tokens **out) MP_MUSTCHECK;

/* Frees the table; accepts NULL. */
void emu_tokens_free(struct emu_tokens *tokens);

/* Makes a new random access token ("ya29.…") for account, valid until expires_ms (Unix ms),
 * and writes it into out (EMU_TOKEN_MAX bytes). */
enum mp_result emu_tokens_issue(struct emu_tokens *tokens, int64_t expires_ms, size_t account,
                                char *out) MP_MUSTCHECK;

/* Looks token up; on EMU_TOKEN_VALID sets *account. */
enum emu_token_state emu_tokens_check(struct emu_tokens *tokens, const char *token, size_t len,
                                      int64_t now_ms, size_t *account);

/* Forgets tokens that expired before before_ms. */
void emu_tokens_purge(struct emu_tokens *tokens, int64_t before_ms);

/* Makes every issued token expire at now_ms. */
void emu_tokens_expire_all(struct emu_tokens *tokens, int64_t now_ms);

size_t emu_tokens_count(const struct emu_tokens *tokens);

#endif
