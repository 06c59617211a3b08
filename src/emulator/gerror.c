/* Google-shaped error bodies. Codes, statuses and messages follow reference/fcm-http-v1.md and
 * what the FCM and OAuth endpoints answer in practice. */
#include "gerror-int.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#define FCM_ERROR_TYPE "type.googleapis.com/google.firebase.fcm.v1.FcmError"

struct fcm_error {
    int code;
    const char *status;
    const char *message;
};

static const struct fcm_error fcm_errors[EMU_ERR_COUNT] = {
    [EMU_ERR_INVALID_ARGUMENT] = {400, "INVALID_ARGUMENT",
                                  "The registration token is not a valid FCM registration token"},
    [EMU_ERR_UNREGISTERED] = {404, "NOT_FOUND", "Requested entity was not found."},
    [EMU_ERR_SENDER_ID_MISMATCH] = {403, "PERMISSION_DENIED", "SenderId mismatch"},
    [EMU_ERR_QUOTA_EXCEEDED] = {429, "RESOURCE_EXHAUSTED",
                                "Quota exceeded for quota metric 'Send requests' of service "
                                "'fcm.googleapis.com'."},
    [EMU_ERR_UNAVAILABLE] = {503, "UNAVAILABLE", "The service is currently unavailable."},
    [EMU_ERR_INTERNAL] = {500, "INTERNAL", "Internal error encountered."},
    [EMU_ERR_THIRD_PARTY_AUTH_ERROR] = {401, "UNAUTHENTICATED",
                                        "Auth error from APNS or Web Push Service"},
};

static json_t *status_body(int code, const char *status, const char *message, json_t *details)
{
    json_t *error =
        json_pack("{s:i, s:s, s:s}", "code", code, "message", message, "status", status);
    if (error && details)
        json_object_set(error, "details", details);
    json_decref(details);
    return error ? json_pack("{s:o}", "error", error) : NULL;
}

static json_t *fcm_detail(const char *error_code)
{
    return json_pack("{s:s, s:s}", "@type", FCM_ERROR_TYPE, "errorCode", error_code);
}

static void permission_denied(struct emu_response *resp, const char *project)
{
    char message[512], resource[300];
    snprintf(resource, sizeof(resource), "projects/%s", project ? project : "");
    snprintf(message, sizeof(message),
             "Permission 'cloudmessaging.messages.create' denied on resource "
             "'//cloudresourcemanager.googleapis.com/%s' (or it may not exist).",
             resource);
    json_t *details = json_pack(
        "[{s:s, s:s, s:s, s:{s:s, s:s}}]", "@type", "type.googleapis.com/google.rpc.ErrorInfo",
        "reason", "IAM_PERMISSION_DENIED", "domain", "cloudresourcemanager.googleapis.com",
        "metadata", "permission", "cloudmessaging.messages.create", "resource", resource);
    emu_response_json(resp, 403, status_body(403, "PERMISSION_DENIED", message, details));
}

void emu_gerror_fcm(struct emu_response *resp, enum emu_err err, const char *project)
{
    if (err == EMU_ERR_UNAUTHENTICATED) {
        emu_gerror_unauthenticated(resp, "ACCESS_TOKEN_EXPIRED");
        return;
    }
    if (err == EMU_ERR_PERMISSION_DENIED) {
        permission_denied(resp, project);
        return;
    }
    const struct fcm_error *e = &fcm_errors[err < EMU_ERR_COUNT ? err : EMU_ERR_INTERNAL];
    if (!e->status)
        e = &fcm_errors[EMU_ERR_INTERNAL];
    json_t *details = json_pack("[o]", fcm_detail(emu_err_name(err)));
    emu_response_json(resp, e->code, status_body(e->code, e->status, e->message, details));
}

void emu_gerror_invalid(struct emu_response *resp, const char *message, const char *field,
                        const char *description)
{
    json_t *details = json_pack("[o, {s:s, s:[{s:s, s:s}]}]", fcm_detail("INVALID_ARGUMENT"),
                                "@type", "type.googleapis.com/google.rpc.BadRequest",
                                "fieldViolations", "field", field, "description", description);
    emu_response_json(resp, 400, status_body(400, "INVALID_ARGUMENT", message, details));
}

void emu_gerror_unauthenticated(struct emu_response *resp, const char *reason)
{
    const char *what = strcmp(reason, "CREDENTIALS_MISSING") == 0
                           ? "Request is missing required authentication credential."
                           : "Request had invalid authentication credentials.";
    char message[512];
    snprintf(message, sizeof(message),
             "%s Expected OAuth 2 access token, login cookie or other valid authentication "
             "credential. See https://developers.google.com/identity/sign-in/web/"
             "devconsole-project.",
             what);
    json_t *details = json_pack(
        "[{s:s, s:s, s:s, s:{s:s, s:s}}]", "@type", "type.googleapis.com/google.rpc.ErrorInfo",
        "reason", reason, "domain", "googleapis.com", "metadata", "service", "fcm.googleapis.com",
        "method", "google.firebase.fcm.v1.FcmService.SendMessage");
    emu_response_json(resp, 401, status_body(401, "UNAUTHENTICATED", message, details));
    resp->www_authenticate = 1;
}

void emu_gerror_status(struct emu_response *resp, int code, const char *status, const char *message)
{
    emu_response_json(resp, code, status_body(code, status, message, NULL));
}

void emu_oauth_error(struct emu_response *resp, int status, const char *error,
                     const char *description)
{
    emu_response_json(resp, status,
                      json_pack("{s:s, s:s}", "error", error, "error_description", description));
}
