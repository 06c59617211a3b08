/* Scripted faults: rules that make the send endpoint fail for a registration token (or for
 * every token, "*"), for the next N requests or forever, always or with a probability. */
#ifndef MPCPUSH_EMU_FAULTS_INT_H
#define MPCPUSH_EMU_FAULTS_INT_H

#include <stddef.h>

#include <jansson.h>

#include "mpcpush/result.h"

/* What a send can end in besides success; also the keys of the by_error counters. */
enum emu_err {
    EMU_ERR_INVALID_ARGUMENT,
    EMU_ERR_UNREGISTERED,
    EMU_ERR_SENDER_ID_MISMATCH,
    EMU_ERR_QUOTA_EXCEEDED,
    EMU_ERR_UNAVAILABLE,
    EMU_ERR_INTERNAL,
    EMU_ERR_THIRD_PARTY_AUTH_ERROR,
    EMU_ERR_UNAUTHENTICATED,
    EMU_ERR_PERMISSION_DENIED,
    EMU_ERR_DROP,
    EMU_ERR_GOAWAY,
    EMU_ERR_SLOW, /* not an error: a delay, then the normal answer */
    EMU_ERR_COUNT,
    EMU_ERR_NONE = EMU_ERR_COUNT,
};

/* The name of err ("UNREGISTERED"), or NULL. */
const char *emu_err_name(enum emu_err err);

struct emu_fault {
    char *token; /* "*": every request */
    enum emu_err error;
    int retry_after;    /* seconds, -1: no Retry-After */
    unsigned delay_ms;  /* SLOW */
    long count;         /* requests left, -1: forever */
    double probability; /* 0..1 */
    unsigned long hits;
};

struct emu_faults {
    struct emu_fault *rules;
    size_t n, cap;
};

/* What the rules decided for one request. */
struct emu_fault_hit {
    enum emu_err error; /* EMU_ERR_NONE: answer normally */
    int retry_after;
    unsigned delay_ms; /* the sum of the SLOW rules that matched */
};

/* Parses a JSON array of rules (or {"faults":[...]}) and appends them to faults. On a bad rule
 * writes one line into err and returns MP_ERR_INVALID, leaving faults unchanged. */
enum mp_result emu_faults_add_json(struct emu_faults *faults, const char *text, size_t len,
                                   char *err, size_t err_size) MP_MUSTCHECK;

/* Decides the fate of a request for token (NULL for topic and condition messages): SLOW rules
 * add up, the first other rule that matches wins; count-limited rules are consumed.
 * rand01 returns a number in [0, 1). */
void emu_faults_match(struct emu_faults *faults, const char *token, double (*rand01)(void *),
                      void *rand_ctx, struct emu_fault_hit *hit);

/* Removes the rules for token (NULL: all rules). */
void emu_faults_remove(struct emu_faults *faults, const char *token);

/* The rules as a JSON array (new reference), or NULL when out of memory. */
json_t *emu_faults_to_json(const struct emu_faults *faults);

void emu_faults_free(struct emu_faults *faults);

#endif
