/* Shared by the libFuzzer targets: splitting an input into lines, a scratch file per process,
 * the fixed test key set (tests/fuzz/keys) and Fireblocks-style signing with it, and a
 * check that aborts (so that libFuzzer records the input) when an invariant does not hold. */
#ifndef MPCPUSH_FUZZ_COMMON_H
#define MPCPUSH_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mp_fbverify;

/* Aborts with a message naming the broken invariant; libFuzzer saves the input as a crash. */
#define FZ_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fz_fail(__FILE__, __LINE__, #cond);                                                    \
    } while (0)
_Noreturn void fz_fail(const char *file, int line, const char *what);

/* Silences mpcpush's logging unless MPCPUSH_FUZZ_LOG=1 is set (a log line per execution would
 * bury libFuzzer's own output and slow it down). */
void fz_quiet_logs(void);

/* The cursor over one input. */
struct fz_input {
    const uint8_t *data;
    size_t size;
};

/* Takes the next line (without its '\n') as a fresh NUL-terminated string (caller frees);
 * the whole rest when there is no '\n'. Never NULL (aborts when out of memory). */
char *fz_take_line(struct fz_input *in);

/* A malloc'd copy of the rest of the input with exactly one NUL after it, so that ASan sees a
 * read past the end; *len gets its length. */
char *fz_take_rest(struct fz_input *in, size_t *len);

/* Writes data to this process's scratch file (created on first use, mode 0600) and returns its
 * path (static storage). */
const char *fz_scratch_file(const void *data, size_t len);

/* Path of a file of the fixed test key set: MP_FUZZ_KEYS_DIR "/" name (static storage). */
const char *fz_key_path(const char *name);

/* The verifier of the fixed key set, made once: v1 keys fuzz-v1a.pem and fuzz-v1b.pem, JWKS
 * fuzz-jwks.json (usable kid "fuzz-v2"; "fuzz-rs256" and "fuzz-ec" are skipped by design). */
struct mp_fbverify *fz_verifier(void);

#define FZ_V2_KID "fuzz-v2"

/* base64(RSA-SHA512 over body) with fuzz-v1a (which = 0) or fuzz-v1b (which = 1): a valid
 * Fireblocks-Signature value. Caller frees. */
char *fz_sign_v1(int which, const void *body, size_t len);

/* A detached JWS over body whose protected header is the given JSON text (any bytes: it is
 * base64url-encoded as is), signed RS512 with fuzz-v2: a Fireblocks-Webhook-Signature value
 * that verifies when header says {"alg":"RS512","kid":"fuzz-v2"}. Caller frees. */
char *fz_sign_v2(const char *header, size_t header_len, const void *body, size_t len);

#endif
