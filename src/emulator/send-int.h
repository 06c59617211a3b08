/* The FCM HTTP v1 send endpoint. */
#ifndef MPCPUSH_EMU_SEND_INT_H
#define MPCPUSH_EMU_SEND_INT_H

#include "server-int.h"

/* Answers POST /v1/projects/{project}/messages:send; project is the path segment. */
void emu_send_handle(struct emu_server *srv, const struct emu_request *req, const char *project,
                     struct emu_response *resp);

#endif
