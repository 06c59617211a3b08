/* Batches of FCM wakeup requests, one per device of "wallet-1", with FCM-like registration
 * tokens, for the FCM client's tests (unit_fcm_client, unit_fcm_connect, unit_fcm_emulator). */
#ifndef MPCPUSH_TEST_FCM_BATCH_H
#define MPCPUSH_TEST_FCM_BATCH_H

#include <stddef.h>

#include "mpcpush/buf.h"
#include "mpcpush/fcm.h"

struct fcm_batch {
    size_t n;
    char (*tokens)[256];
    struct mp_buf *bodies;
    struct mp_fcm_request *reqs;
    struct mp_fcm_result *results;
};

/* A registration token that looks like FCM's, unique per i. */
void fcm_test_token(char *out, size_t size, int i);
/* n requests for devices device-0.. (platforms android, ios, web in turn), results zeroed. */
void fcm_batch_make(struct fcm_batch *b, size_t n);
void fcm_batch_free(struct fcm_batch *b);
/* How many results have this outcome. */
size_t fcm_batch_count(const struct fcm_batch *b, enum mp_fcm_outcome outcome);
/* Fails unless every result is a 200 with a message name, in one or two attempts. */
void fcm_batch_expect_ok(const struct fcm_batch *b);
/* A monotonic clock, in seconds. */
double fcm_now_seconds(void);

#endif
