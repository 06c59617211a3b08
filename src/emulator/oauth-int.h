/* The OAuth 2.0 token endpoint (JWT-bearer grant for service accounts). */
#ifndef MPCPUSH_EMU_OAUTH_INT_H
#define MPCPUSH_EMU_OAUTH_INT_H

#include "server-int.h"

/* Answers POST /token. */
void emu_oauth_handle(struct emu_server *srv, const struct emu_request *req,
                      struct emu_response *resp);

#endif
