/* Fault rules: parsing from JSON, matching against a request's registration token, counting
 * down count-limited rules, and listing them back. */
#include "faults-int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RULES 100000

static const char *const err_names[EMU_ERR_COUNT] = {
    [EMU_ERR_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
    [EMU_ERR_UNREGISTERED] = "UNREGISTERED",
    [EMU_ERR_SENDER_ID_MISMATCH] = "SENDER_ID_MISMATCH",
    [EMU_ERR_QUOTA_EXCEEDED] = "QUOTA_EXCEEDED",
    [EMU_ERR_UNAVAILABLE] = "UNAVAILABLE",
    [EMU_ERR_INTERNAL] = "INTERNAL",
    [EMU_ERR_THIRD_PARTY_AUTH_ERROR] = "THIRD_PARTY_AUTH_ERROR",
    [EMU_ERR_UNAUTHENTICATED] = "UNAUTHENTICATED",
    [EMU_ERR_PERMISSION_DENIED] = "PERMISSION_DENIED",
    [EMU_ERR_DROP] = "DROP",
    [EMU_ERR_GOAWAY] = "GOAWAY",
    [EMU_ERR_SLOW] = "SLOW",
};

const char *emu_err_name(enum emu_err err)
{
    return err < EMU_ERR_COUNT ? err_names[err] : NULL;
}

static enum emu_err err_parse(const char *name)
{
    for (int i = 0; i < EMU_ERR_COUNT; i++)
        if (strcmp(name, err_names[i]) == 0)
            return (enum emu_err)i;
    return EMU_ERR_NONE;
}

/* Reads an optional non-negative integer member; -1 when absent. */
static int int_member(json_t *rule, const char *key, long max, long *out)
{
    json_t *v = json_object_get(rule, key);
    *out = -1;
    if (!v || json_is_null(v))
        return 1;
    double d = json_number_value(v);
    if (!json_is_number(v) || d < 0 || d > (double)max || d != floor(d))
        return 0;
    *out = (long)d;
    return 1;
}

static int parse_rule(json_t *rule, struct emu_fault *f, char *err, size_t err_size)
{
    const char *token = "*", *error = NULL;
    double probability = 1.0;
    long retry, delay, count;
    if (json_unpack(rule, "{s?s, s:s, s?F}", "token", &token, "error", &error, "probability",
                    &probability) != 0) {
        snprintf(err, err_size, "a rule needs \"error\" (string), optional \"token\" (string)");
        return 0;
    }
    f->error = err_parse(error);
    if (f->error == EMU_ERR_NONE) {
        snprintf(err, err_size, "unknown error \"%.64s\"", error);
        return 0;
    }
    if (!int_member(rule, "retryAfter", 86400 * 7, &retry) ||
        !int_member(rule, "delayMs", 600000, &delay) ||
        !int_member(rule, "count", 1000000000, &count) || count == 0 || probability < 0 ||
        probability > 1 || !token[0]) {
        snprintf(err, err_size,
                 "bad retryAfter, delayMs, count (>= 1), probability (0..1) or "
                 "token in a rule");
        return 0;
    }
    f->token = strdup(token);
    f->retry_after = (int)retry;
    f->delay_ms = delay < 0 ? (f->error == EMU_ERR_SLOW ? 1000u : 0u) : (unsigned)delay;
    f->count = count;
    f->probability = probability;
    f->hits = 0;
    if (!f->token) {
        snprintf(err, err_size, "out of memory");
        return 0;
    }
    return 1;
}

static json_t *rules_array(json_t *root)
{
    if (json_is_array(root))
        return root;
    json_t *faults = json_is_object(root) ? json_object_get(root, "faults") : NULL;
    return json_is_array(faults) ? faults : NULL;
}

enum mp_result emu_faults_add_json(struct emu_faults *faults, const char *text, size_t len,
                                   char *err, size_t err_size)
{
    enum mp_result result = MP_ERR_INVALID;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    json_t *rules = root ? rules_array(root) : NULL;
    size_t n = json_array_size(rules);
    if (!rules) {
        snprintf(err, err_size, "expected a JSON array of rules or {\"faults\":[...]}%s%s",
                 root ? "" : ": ", root ? "" : jerr.text);
        goto out;
    }
    if (faults->n + n > MAX_RULES) {
        snprintf(err, err_size, "too many rules (at most %d)", MAX_RULES);
        goto out;
    }
    if (faults->n + n > faults->cap) {
        size_t cap = faults->n + n + 16;
        struct emu_fault *grown = realloc(faults->rules, cap * sizeof(*grown));
        if (!grown) {
            result = MP_ERR_NOMEM;
            goto out;
        }
        faults->rules = grown;
        faults->cap = cap;
    }
    size_t added = 0;
    for (; added < n; added++)
        if (!parse_rule(json_array_get(rules, added), &faults->rules[faults->n + added], err,
                        err_size))
            break;
    if (added == n) {
        faults->n += n;
        result = MP_OK;
    }
    for (size_t i = 0; i < added && result; i++)
        free(faults->rules[faults->n + i].token);
out:
    json_decref(root);
    return result;
}

/* Drops rules whose count ran out. */
static void compact(struct emu_faults *faults)
{
    size_t o = 0;
    for (size_t i = 0; i < faults->n; i++) {
        if (faults->rules[i].count == 0)
            free(faults->rules[i].token);
        else
            faults->rules[o++] = faults->rules[i];
    }
    faults->n = o;
}

static int rule_applies(struct emu_fault *f, const char *token, double (*rand01)(void *),
                        void *rand_ctx)
{
    if (f->count == 0)
        return 0;
    if (strcmp(f->token, "*") != 0 && (!token || strcmp(f->token, token) != 0))
        return 0;
    if (f->probability < 1.0 && rand01(rand_ctx) >= f->probability)
        return 0;
    if (f->count > 0)
        f->count--;
    f->hits++;
    return 1;
}

void emu_faults_match(struct emu_faults *faults, const char *token, double (*rand01)(void *),
                      void *rand_ctx, struct emu_fault_hit *hit)
{
    hit->error = EMU_ERR_NONE;
    hit->retry_after = -1;
    hit->delay_ms = 0;
    int used_up = 0;
    for (size_t i = 0; i < faults->n; i++) {
        struct emu_fault *f = &faults->rules[i];
        if (!rule_applies(f, token, rand01, rand_ctx))
            continue;
        used_up |= f->count == 0;
        if (f->error == EMU_ERR_SLOW) {
            hit->delay_ms += f->delay_ms;
            continue;
        }
        hit->error = f->error;
        hit->retry_after = f->retry_after;
        break;
    }
    if (used_up)
        compact(faults);
}

void emu_faults_remove(struct emu_faults *faults, const char *token)
{
    for (size_t i = 0; i < faults->n; i++)
        if (!token || strcmp(faults->rules[i].token, token) == 0)
            faults->rules[i].count = 0;
    compact(faults);
}

static json_t *rule_json(const struct emu_fault *f)
{
    json_t *rule =
        json_pack("{s:s, s:s, s:I, s:f}", "token", f->token, "error", emu_err_name(f->error),
                  "hits", (json_int_t)f->hits, "probability", f->probability);
    if (rule && f->retry_after >= 0)
        json_object_set_new(rule, "retryAfter", json_integer(f->retry_after));
    if (rule && f->error == EMU_ERR_SLOW)
        json_object_set_new(rule, "delayMs", json_integer(f->delay_ms));
    if (rule && f->count > 0)
        json_object_set_new(rule, "count", json_integer(f->count));
    return rule;
}

json_t *emu_faults_to_json(const struct emu_faults *faults)
{
    json_t *array = json_array();
    for (size_t i = 0; array && i < faults->n; i++) {
        json_t *rule = rule_json(&faults->rules[i]);
        if (!rule || json_array_append_new(array, rule) != 0) {
            json_decref(array);
            return NULL;
        }
    }
    return array;
}

void emu_faults_free(struct emu_faults *faults)
{
    if (!faults)
        return;
    for (size_t i = 0; i < faults->n; i++)
        free(faults->rules[i].token);
    free(faults->rules);
    memset(faults, 0, sizeof(*faults));
}
