/* FCM answer classification (mp_fcm_classify), which turns what Google (or anything on the
 * path to it) answers into the dispatcher's decision, including "retire this token".
 *
 * Input:  line 1  HTTP status (decimal; anything else is read as 0, "no answer")
 *         line 2  Retry-After value ("-" = header absent)
 *         rest    the body
 *
 * Invariants: the outcome is in range; a token is declared dead only on positive evidence (an
 * error body, never a bare status such as 404); retry_after is -1 or 0..86400; detail and name
 * are NUL-terminated, free of control bytes, and carry no token-like run of 40 or more
 * characters (the redaction the DB and logs rely on). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "mpcpush/fcm.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fz_quiet_logs();
    return 0;
}

static void check_text(const char *text, size_t size, bool redacted)
{
    FZ_CHECK(memchr(text, '\0', size) != NULL);
    size_t run = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (redacted)
            FZ_CHECK(*p >= ' ' && *p != 0x7f);
        bool token_char = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                          (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == ':';
        run = token_char ? run + 1 : 0;
        /* 40: a status of 39 such characters is kept, and the ':' of ": message" follows */
        if (redacted)
            FZ_CHECK(run <= 40);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_input in = {data, size};
    char *status_text = fz_take_line(&in), *retry = fz_take_line(&in);
    size_t len;
    char *body = fz_take_rest(&in, &len);
    long status = strtol(status_text, NULL, 10);
    struct mp_fcm_result out;
    memset(&out, 0x7b, sizeof(out));
    mp_fcm_classify(status, len ? body : NULL, len, strcmp(retry, "-") ? retry : NULL, &out);

    FZ_CHECK((unsigned)out.outcome < MP_FCM_OUTCOME_COUNT);
    FZ_CHECK(strcmp(mp_fcm_outcome_name(out.outcome), "unknown") != 0 ||
             out.outcome == MP_FCM_UNKNOWN);
    FZ_CHECK(out.http_status == status);
    FZ_CHECK(out.retry_after >= -1 && out.retry_after <= 86400);
    FZ_CHECK(out.seconds == 0 && out.attempts == 0);
    check_text(out.detail, sizeof(out.detail), true);
    check_text(out.name, sizeof(out.name), false);
    if (status >= 200 && status < 300)
        FZ_CHECK(out.outcome == MP_FCM_OK);
    else
        FZ_CHECK(out.outcome != MP_FCM_OK && out.name[0] == '\0');
    if (mp_fcm_outcome_is_token_dead(out.outcome)) {
        json_t *root = json_loadb(body, len, 0, NULL);
        FZ_CHECK(json_is_object(json_object_get(root, "error")));
        json_decref(root);
    }
    /* the three predicates never overlap for a dead token */
    if (mp_fcm_outcome_is_token_dead(out.outcome))
        FZ_CHECK(!mp_fcm_outcome_is_retryable(out.outcome) &&
                 !mp_fcm_outcome_is_config_error(out.outcome));

    free(status_text);
    free(retry);
    free(body);
    return 0;
}
