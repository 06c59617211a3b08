/* Validation of an FCM v1 send request body against the rules in reference/fcm-http-v1.md. */
#ifndef MPCPUSH_EMU_MESSAGE_INT_H
#define MPCPUSH_EMU_MESSAGE_INT_H

#include <stddef.h>

#include <jansson.h>

#define EMU_MESSAGE_MAX       4096 /* bytes of the serialised message */
#define EMU_TOPIC_MESSAGE_MAX 2048
#define EMU_TTL_MAX_SECONDS   2419200

/* Why a request is invalid: the error's message and its one BadRequest field violation. */
struct emu_violation {
    char message[512];
    char field[128];
    char description[512];
};

/* A parsed, valid send request. */
struct emu_send {
    json_t *root;
    json_t *message;   /* borrowed from root */
    const char *token; /* the one target; the others NULL (borrowed from root) */
    const char *topic;
    const char *condition;
    int validate_only;
    char *message_json; /* compact serialisation of message */
};

/* Parses and validates body. Returns 1 when valid (send filled, free it with emu_send_free),
 * 0 when invalid (v filled), -1 when out of memory. */
int emu_message_parse(const char *body, size_t len, struct emu_send *send, struct emu_violation *v);

void emu_send_free(struct emu_send *send);

#endif
