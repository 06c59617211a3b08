/* POST /token: Google's OAuth 2.0 JWT-bearer grant for service accounts. The assertion is
 * checked as Google checks it (RS256 signature with the key named by kid, iss, scope, aud, iat
 * and exp) and answered with Google's bodies; a good one earns a random access token. */
#include "oauth-int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "form-int.h"
#include "gerror-int.h"
#include "jwt-int.h"
#include "tokens-int.h"

#define GRANT_JWT_BEARER "urn:ietf:params:oauth:grant-type:jwt-bearer"
#define GOOGLE_TOKEN_URL "https://oauth2.googleapis.com/token"
#define SCOPE_FCM        "https://www.googleapis.com/auth/firebase.messaging"
#define SCOPE_CLOUD      "https://www.googleapis.com/auth/cloud-platform"
#define MAX_LIFETIME_S   3600
#define BAD_SIGNATURE    "Invalid JWT Signature."
#define BAD_TIMES                                                                                  \
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "  \
    "Check your iat and exp values in the assertion and use a clock with skew to account for "     \
    "clock differences between systems."

/* The trusted account that signed jwt: by kid, else by iss; SIZE_MAX when none. */
static size_t find_account(const struct emu_server *srv, const struct emu_jwt *jwt)
{
    const char *kid = json_string_value(json_object_get(jwt->header, "kid"));
    const char *iss = json_string_value(json_object_get(jwt->claims, "iss"));
    for (size_t i = 0; i < srv->n_accounts; i++) {
        const struct emu_account *a = &srv->accounts[i];
        if (kid ? strcmp(kid, a->private_key_id) == 0 : iss && strcmp(iss, a->client_email) == 0)
            return i;
    }
    return SIZE_MAX;
}

static int scope_ok(const char *scope)
{
    const char *p = scope;
    while (p && *p) {
        size_t n = strcspn(p, " ");
        if ((n == strlen(SCOPE_FCM) && memcmp(p, SCOPE_FCM, n) == 0) ||
            (n == strlen(SCOPE_CLOUD) && memcmp(p, SCOPE_CLOUD, n) == 0))
            return 1;
        p += n + strspn(p + n, " ");
    }
    return 0;
}

/* Whether aud names this token endpoint: Google's URL, the account's token_uri, or the
 * emulator's own /token on either listener under any loopback name. */
static int aud_ok(const struct emu_server *srv, const struct emu_request *req,
                  const struct emu_account *acct, const char *aud)
{
    static const char *const hosts[] = {"127.0.0.1", "localhost", "[::1]"};
    char url[512];
    if (strcmp(aud, GOOGLE_TOKEN_URL) == 0 ||
        (acct->token_uri && strcmp(aud, acct->token_uri) == 0))
        return 1;
    snprintf(url, sizeof(url), "%s://%s/token", req->tls ? "https" : "http", req->authority);
    if (req->authority[0] && strcmp(aud, url) == 0)
        return 1;
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        snprintf(url, sizeof(url), "https://%s:%d/token", hosts[i], srv->tls_listener.port);
        if (strcmp(aud, url) == 0)
            return 1;
        snprintf(url, sizeof(url), "http://%s:%d/token", hosts[i], srv->plain_listener.port);
        if (srv->plain_listener.port && strcmp(aud, url) == 0)
            return 1;
    }
    return 0;
}

static int times_ok(const struct emu_server *srv, json_t *claims, double now)
{
    json_t *iat = json_object_get(claims, "iat"), *exp = json_object_get(claims, "exp");
    if (!json_is_number(iat) || !json_is_number(exp))
        return 0;
    double i = json_number_value(iat), e = json_number_value(exp);
    double skew = srv->opts->clock_skew;
    return fabs(i - now) <= skew && e > now && e <= i + MAX_LIFETIME_S && e > i;
}

/* Checks what the signature covers; on failure fills resp. */
static int claims_ok(struct emu_server *srv, const struct emu_request *req,
                     const struct emu_account *acct, json_t *claims, struct emu_response *resp)
{
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    const char *aud = json_string_value(json_object_get(claims, "aud"));
    const char *scope = json_string_value(json_object_get(claims, "scope"));
    char text[768];
    if (!iss || strcmp(iss, acct->client_email) != 0) {
        emu_oauth_error(resp, 400, "invalid_grant", "Invalid email or User ID");
        return 0;
    }
    if (!aud || !aud_ok(srv, req, acct, aud)) {
        snprintf(text, sizeof(text), "Invalid JWT: Failed audience check. The right audience is %s",
                 acct->token_uri ? acct->token_uri : GOOGLE_TOKEN_URL);
        emu_oauth_error(resp, 400, "invalid_grant", text);
        return 0;
    }
    if (!times_ok(srv, claims, (double)emu_unix_ms() / 1000.0)) {
        emu_oauth_error(resp, 400, "invalid_grant", BAD_TIMES);
        return 0;
    }
    if (!scope || !scope_ok(scope)) {
        emu_oauth_error(resp, 400, "invalid_scope",
                        "Invalid OAuth scope or ID token audience provided.");
        return 0;
    }
    return 1;
}

static void grant(struct emu_server *srv, size_t account, struct emu_response *resp)
{
    char token[EMU_TOKEN_MAX], body[EMU_TOKEN_MAX + 128];
    int lifetime = srv->opts->token_lifetime;
    if (emu_tokens_issue(srv->tokens, emu_unix_ms() + (int64_t)lifetime * 1000, account, token)) {
        emu_gerror_status(resp, 500, "INTERNAL", "could not issue a token");
        return;
    }
    int n = snprintf(body, sizeof(body),
                     "{\"access_token\":\"%s\",\"expires_in\":%d,\"token_type\":\"Bearer\"}", token,
                     lifetime);
    emu_response_set(resp, 200, body, (size_t)n);
    srv->stats.tokens_issued++;
}

/* Verifies the assertion and answers. */
static void exchange(struct emu_server *srv, const struct emu_request *req, const char *assertion,
                     struct emu_response *resp)
{
    struct emu_jwt jwt;
    if (emu_jwt_decode(assertion, &jwt)) {
        emu_oauth_error(resp, 400, "invalid_grant", "Invalid JWT: the assertion is malformed.");
        return;
    }
    const char *alg = json_string_value(json_object_get(jwt.header, "alg"));
    size_t account = find_account(srv, &jwt);
    if (!alg || strcmp(alg, "RS256") != 0 || account == SIZE_MAX ||
        !emu_jwt_verify_rs256(&jwt, srv->accounts[account].key))
        emu_oauth_error(resp, 400, "invalid_grant", BAD_SIGNATURE);
    else if (claims_ok(srv, req, &srv->accounts[account], jwt.claims, resp))
        grant(srv, account, resp);
    emu_jwt_free(&jwt);
}

void emu_oauth_handle(struct emu_server *srv, const struct emu_request *req,
                      struct emu_response *resp)
{
    srv->stats.token_requests++;
    char *grant_type = emu_form_value(req->body, req->body_len, "grant_type");
    char *assertion = emu_form_value(req->body, req->body_len, "assertion");
    char text[256];
    if (!grant_type) {
        emu_oauth_error(resp, 400, "invalid_request", "Missing required parameter: grant_type");
    } else if (strcmp(grant_type, GRANT_JWT_BEARER) != 0) {
        snprintf(text, sizeof(text), "Invalid grant_type: %.128s", grant_type);
        emu_oauth_error(resp, 400, "unsupported_grant_type", text);
    } else if (!assertion) {
        emu_oauth_error(resp, 400, "invalid_request", "Missing required parameter: assertion");
    } else {
        exchange(srv, req, assertion, resp);
    }
    if (resp->status != 200)
        srv->stats.token_errors++;
    free(grant_type);
    free(assertion);
}
