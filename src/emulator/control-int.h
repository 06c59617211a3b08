/* The emulator's own endpoints under /emulator/ (stats, records, faults, reset) and /healthz. */
#ifndef MPCPUSH_EMU_CONTROL_INT_H
#define MPCPUSH_EMU_CONTROL_INT_H

#include "server-int.h"

/* Answers a request for /healthz or /emulator/... */
void emu_control_handle(struct emu_server *srv, const struct emu_request *req,
                        struct emu_response *resp);

/* The counters as served by GET /emulator/stats (new reference, NULL when out of memory). */
json_t *emu_stats_json(const struct emu_server *srv);

#endif
