/* Google service-account key files: generating throwaway ones and loading the public half of
 * the ones the emulator trusts. */
#ifndef MPCPUSH_EMU_ACCOUNT_INT_H
#define MPCPUSH_EMU_ACCOUNT_INT_H

#include <stddef.h>

#include <openssl/evp.h>

#include "mpcpush/result.h"

struct emu_account {
    char *project_id;
    char *client_email;
    char *private_key_id;
    char *token_uri;
    EVP_PKEY *key; /* verifies assertions (may also hold the private half) */
};

/* Makes a new account for project with an RSA 2048 key. */
enum mp_result emu_account_generate(const char *project, struct emu_account *acct) MP_MUSTCHECK;

/* Writes acct (which must hold its private key) as a key file with the given token_uri,
 * atomically and with mode 0600. */
enum mp_result emu_account_write(const struct emu_account *acct, const char *token_uri,
                                 const char *path) MP_MUSTCHECK;

/* Loads a key file; on failure writes the reason into err. */
enum mp_result emu_account_load(const char *path, struct emu_account *acct, char *err,
                                size_t err_size) MP_MUSTCHECK;

/* Frees the fields of acct; accepts a zeroed one. */
void emu_account_free(struct emu_account *acct);

/* Writes len bytes to path through a temporary file and rename(2), with the given mode. */
enum mp_result emu_write_file_atomic(const char *path, const char *data, size_t len,
                                     unsigned mode) MP_MUSTCHECK;

#endif
