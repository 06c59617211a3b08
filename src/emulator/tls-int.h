/* A throwaway certificate authority and a server certificate for loopback, made at start, and
 * the TLS context that offers HTTP/2 by ALPN. */
#ifndef MPCPUSH_EMU_TLS_INT_H
#define MPCPUSH_EMU_TLS_INT_H

#include <openssl/ssl.h>

#include "mpcpush/result.h"

/* Makes a P-256 CA and a server certificate it signs, valid for localhost, 127.0.0.1, ::1 and
 * extra_host (may be NULL). Returns the TLS context and the CA certificate in PEM (caller
 * frees both: SSL_CTX_free, free). */
enum mp_result emu_tls_create(const char *extra_host, SSL_CTX **ctx_out,
                              char **ca_pem_out) MP_MUSTCHECK;

#endif
