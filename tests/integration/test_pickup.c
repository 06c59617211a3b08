/* Offline pick-up: a device that was away fetches its pending messages page by page (cursor
 * `after`, `limit`, `next`), oldest first, acknowledges them (upTo or ids, idempotently), and
 * never sees acknowledged, expired or deleted messages again; webhook messages for devices that
 * never registered can be picked up too. */
#define _GNU_SOURCE
#include "pickup_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Seconds since the epoch of an API timestamp ("2026-01-31T12:00:00.123Z"). */
static double iso_seconds(const char *text)
{
    struct tm tm = {0};
    int ms = 0;
    if (!text || sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                        &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        fail_msg("not an API timestamp: %s", text ? text : "(null)");
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (double)timegm(&tm) + ms / 1000.0;
}

static const char *field(const json_t *page, size_t i, const char *name)
{
    json_t *m = json_array_get(json_object_get(page, "messages"), i);
    return json_string_value(json_object_get(m, name));
}

static json_t *payload(const json_t *page, size_t i)
{
    json_t *m = json_array_get(json_object_get(page, "messages"), i);
    return json_object_get(m, "payload");
}

/* Asserts the ids of a page, in order. */
static void assert_ids(const json_t *page, char *const *want, size_t n)
{
    char *text = json_dumps(page, JSON_COMPACT);
    if (pu_count(page) != n)
        fail_msg("expected %zu messages, got %zu: %s", n, pu_count(page), text);
    for (size_t i = 0; i < n; i++)
        if (strcmp(pu_id(page, i), want[i]) != 0)
            fail_msg("message %zu: expected id %s: %s", i, want[i], text);
    free(text);
}

static void assert_empty(const json_t *page)
{
    if (pu_count(page) != 0 || pu_next(page) != NULL) {
        char *text = json_dumps(page, JSON_COMPACT);
        fail_msg("expected {\"messages\":[],\"next\":null}, got %s", text);
    }
}

static void free_ids(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
}

/* ---- paging ---- */

#define PAGED 250

static void test_paging_250_in_three_pages(void **state)
{
    struct tx_env *e = *state;
    pu_register(e, "w-page", "d1");
    pu_register(e, "w-page", "d2");
    pu_register(e, "w-other", "d1");
    char *ids[PAGED];
    for (int i = 0; i < PAGED; i++) {
        char body[64];
        snprintf(body, sizeof(body), "{\"n\":%d,\"text\":\"m%d\"}", i, i);
        ids[i] = pu_enqueue(e, "w-page", "d1", body, 0);
        if (i > 0 && pu_num(ids[i]) <= pu_num(ids[i - 1]))
            fail_msg("message ids are not increasing: %s after %s", ids[i], ids[i - 1]);
        if (i % 50 == 0) { /* neighbours: same wallet other device, same device other wallet */
            free(pu_enqueue(e, "w-page", "d2", "{\"n\":-1}", 0));
            free(pu_enqueue(e, "w-other", "d1", "{\"n\":-2}", 0));
        }
    }

    /* Three pages of 100, 100 and 50, chained by next, oldest first, only this device's. */
    char query[128] = "limit=100";
    size_t want_sizes[] = {100, 100, 50}, seen = 0;
    for (int p = 0; p < 3; p++) {
        json_t *page = pu_fetch(e, "w-page", "d1", query);
        assert_ids(page, ids + seen, want_sizes[p]);
        for (size_t i = 0; i < want_sizes[p]; i++) {
            json_t *n = json_object_get(payload(page, i), "n");
            if (json_integer_value(n) != (json_int_t)(seen + i))
                fail_msg("page %d message %zu: payload %s is not message %zu", p, i,
                         json_dumps(payload(page, i), JSON_COMPACT), seen + i);
            assert_string_equal(field(page, i, "source"), "api");
        }
        /* the payload comes back as it went in */
        char *got = json_dumps(payload(page, 0), JSON_COMPACT), want[64];
        snprintf(want, sizeof(want), "{\"text\":\"m%zu\",\"n\":%zu}", seen, seen);
        tx_assert_json_eq(got, want);
        free(got);
        seen += want_sizes[p];
        assert_non_null(pu_next(page));
        assert_string_equal(pu_next(page), ids[seen - 1]);
        snprintf(query, sizeof(query), "after=%s&limit=100", pu_next(page));
        json_decref(page);
    }
    /* Past the end: an empty page and no next. */
    json_t *page = pu_fetch(e, "w-page", "d1", query);
    assert_empty(page);
    json_decref(page);

    /* The cursor starts right after any id. */
    snprintf(query, sizeof(query), "after=%s&limit=3", ids[141]);
    page = pu_fetch(e, "w-page", "d1", query);
    assert_ids(page, ids + 142, 3);
    assert_string_equal(pu_next(page), ids[144]);
    json_decref(page);

    /* Fetching acknowledges nothing: everything is still there from the start. */
    page = pu_fetch(e, "w-page", "d1", "limit=1000");
    assert_ids(page, ids, PAGED);
    json_decref(page);
    free_ids(ids, PAGED);
}

static void test_limit_bounds(void **state)
{
    struct tx_env *e = *state;
    pu_register(e, "w-lim", "d");
    char *ids[120];
    for (int i = 0; i < 120; i++)
        ids[i] = pu_enqueue(e, "w-lim", "d", "\"x\"", 0);
    struct {
        const char *query;
        size_t count;
    } cases[] = {
        {"", 100},           /* default */
        {"limit=0", 100},    /* 0 means the default */
        {"limit=1", 1},      /* the smallest */
        {"limit=7", 7},      /* any */
        {"limit=1000", 120}, /* the largest: everything there is */
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        json_t *page = pu_fetch(e, "w-lim", "d", cases[c].query);
        assert_ids(page, ids, cases[c].count);
        assert_string_equal(pu_next(page), ids[cases[c].count - 1]);
        json_decref(page);
    }
    struct th_response r;
    tx_api(&r, e, "GET", "/v1/wallets/w-lim/devices/d/messages?limit=1001", NULL);
    tx_assert_error(&r, 400, "invalid_request");
    th_response_free(&r);
    free_ids(ids, 120);
}

static void test_bad_query_parameters(void **state)
{
    struct tx_env *e = *state;
    pu_register(e, "w-bad", "d");
    char *id = pu_enqueue(e, "w-bad", "d", "{\"a\":1}", 0);
    const char *bad[] = {
        "limit=1001",
        "limit=-1",
        "limit=abc",
        "limit=1.5",
        "limit=",
        "limit=10x",
        "after=abc",
        "after=-1",
        "after=",
        "after=1e3",
        "after=99999999999999999999",
        "wait=61",
        "wait=-1",
        "wait=abc",
        "wait=",
        "wait=2.5",
        "wait=100000000000000000000",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char path[256];
        snprintf(path, sizeof(path), "/v1/wallets/w-bad/devices/d/messages?%s", bad[i]);
        struct th_response r;
        tx_api(&r, e, "GET", path, NULL);
        if (r.status != 400 || strcmp(th_error_code(&r), "invalid_request") != 0)
            fail_msg("GET ...?%s: expected 400 invalid_request, got %ld: %s", bad[i], r.status,
                     r.body);
        tx_assert_error(&r, 400, "invalid_request");
        th_response_free(&r);
    }
    /* The largest wait is accepted (and answers at once: something is pending). */
    long t0 = tx_now_ms();
    json_t *page = pu_fetch(e, "w-bad", "d", "wait=60");
    assert_int_equal(pu_count(page), 1);
    assert_string_equal(pu_id(page, 0), id);
    json_decref(page);
    if (tx_now_ms() - t0 > 2000)
        fail_msg("wait=60 with a message pending took %ld ms", tx_now_ms() - t0);
    /* wait=0 with nothing pending answers at once, empty. */
    t0 = tx_now_ms();
    page = pu_fetch(e, "w-bad", "d", "after=999999999&wait=0");
    assert_empty(page);
    json_decref(page);
    if (tx_now_ms() - t0 > 2000)
        fail_msg("wait=0 took %ld ms", tx_now_ms() - t0);

    /* Bad path ids, no key, a wrong key, a wrong method. */
    struct th_response r;
    tx_api(&r, e, "GET", "/v1/wallets/w%21bad/devices/d/messages", NULL);
    tx_assert_error(&r, 400, "invalid_request");
    th_response_free(&r);
    char url[256];
    snprintf(url, sizeof(url), "%s/v1/wallets/w-bad/devices/d/messages", e->proc.base);
    th_http(&r, "GET", url, NULL, NULL, 0);
    tx_assert_error(&r, 401, "unauthorized");
    th_response_free(&r);
    const char *wrong[] = {"Authorization: Bearer not-a-key", NULL};
    th_http(&r, "GET", url, wrong, NULL, 0);
    tx_assert_error(&r, 401, "unauthorized");
    th_response_free(&r);
    snprintf(url, sizeof(url), "%s/v1/wallets/w-bad/devices/d/messages/ack", e->proc.base);
    th_http(&r, "POST", url, NULL, "{\"upTo\":\"1\"}", 12);
    tx_assert_error(&r, 401, "unauthorized");
    th_response_free(&r);
    /* None of this acknowledged anything. */
    page = pu_fetch(e, "w-bad", "d", NULL);
    assert_int_equal(pu_count(page), 1);
    json_decref(page);
    free(id);
}

/* ---- acknowledging ---- */

static void test_ack_up_to_twice(void **state)
{
    struct tx_env *e = *state;
    pu_register(e, "w-ack", "d");
    char *ids[6];
    for (int i = 0; i < 5; i++)
        ids[i] = pu_enqueue(e, "w-ack", "d", "{\"k\":\"v\"}", 0);
    char body[128];
    snprintf(body, sizeof(body), "{\"upTo\":\"%s\"}", ids[2]);
    assert_int_equal(pu_ack(e, "w-ack", "d", body), 3);
    assert_int_equal(pu_ack(e, "w-ack", "d", body), 0); /* again: nothing new */
    json_t *page = pu_fetch(e, "w-ack", "d", NULL);
    assert_ids(page, ids + 3, 2);
    json_decref(page);
    /* Acked messages stay gone even when asking from before them. */
    page = pu_fetch(e, "w-ack", "d", "after=0&limit=1000");
    assert_ids(page, ids + 3, 2);
    json_decref(page);

    /* upTo as a JSON integer; a message enqueued afterwards is not covered by the old ack. */
    snprintf(body, sizeof(body), "{\"upTo\":%s}", ids[4]);
    assert_int_equal(pu_ack(e, "w-ack", "d", body), 2);
    assert_int_equal(pu_ack(e, "w-ack", "d", body), 0);
    page = pu_fetch(e, "w-ack", "d", NULL);
    assert_empty(page);
    json_decref(page);
    ids[5] = pu_enqueue(e, "w-ack", "d", "{\"late\":true}", 0);
    assert_int_equal(pu_ack(e, "w-ack", "d", body), 0);
    page = pu_fetch(e, "w-ack", "d", NULL);
    assert_ids(page, ids + 5, 1);
    json_decref(page);

    /* The device's state agrees, and with everything acknowledged up to an id no wakeup is
     * owed any more (device_status shows no next attempt). */
    snprintf(body, sizeof(body), "{\"upTo\":\"%s\"}", ids[5]);
    assert_int_equal(pu_ack(e, "w-ack", "d", body), 1);
    struct th_response r;
    tx_api(&r, e, "GET", "/v1/wallets/w-ack/devices/d", NULL);
    tx_assert_status(&r, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "pendingMessages")), 0);
    th_response_free(&r);
    assert_int_equal(tx_sql_longf(e->db, "SELECT count(*) FROM mpcpush.device_status"
                                         " WHERE wallet_id = 'w-ack' AND device_id = 'd'"
                                         " AND pending = 0 AND next_attempt_at IS NULL"),
                     1);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pushes"
                                        " WHERE wallet_id = 'w-ack' AND wanted_id > covered_id"),
                     0);
    free_ids(ids, 6);
}

static void test_ack_ids_twice(void **state)
{
    struct tx_env *e = *state;
    pu_register(e, "w-ids", "d");
    char *ids[5];
    for (int i = 0; i < 5; i++)
        ids[i] = pu_enqueue(e, "w-ids", "d", "[1,2,3]", 0);
    char body[256];
    snprintf(body, sizeof(body), "{\"ids\":[\"%s\",\"%s\"]}", ids[1], ids[3]);
    assert_int_equal(pu_ack(e, "w-ids", "d", body), 2);
    assert_int_equal(pu_ack(e, "w-ids", "d", body), 0);
    json_t *page = pu_fetch(e, "w-ids", "d", NULL);
    char *left[] = {ids[0], ids[2], ids[4]};
    assert_ids(page, left, 3);
    json_decref(page);

    /* Integers, and a list mixing an acknowledged id with a new one counts only the new. */
    snprintf(body, sizeof(body), "{\"ids\":[%s]}", ids[0]);
    assert_int_equal(pu_ack(e, "w-ids", "d", body), 1);
    snprintf(body, sizeof(body), "{\"ids\":[%s,\"%s\",%s]}", ids[0], ids[2], ids[2]);
    assert_int_equal(pu_ack(e, "w-ids", "d", body), 1);
    assert_int_equal(pu_ack(e, "w-ids", "d", body), 0);
    page = pu_fetch(e, "w-ids", "d", "after=0");
    assert_ids(page, ids + 4, 1);
    json_decref(page);
    /* Unknown ids are simply not counted. */
    assert_int_equal(pu_ack(e, "w-ids", "d", "{\"ids\":[\"999999999\"]}"), 0);
    page = pu_fetch(e, "w-ids", "d", NULL);
    assert_ids(page, ids + 4, 1);
    json_decref(page);
    free_ids(ids, 5);
}

static void test_ack_bad_bodies(void **state)
{
    struct tx_env *e = *state;
    pu_register(e, "w-ackbad", "d");
    char *id = pu_enqueue(e, "w-ackbad", "d", "{}", 0);
    /* 1001 ids */
    size_t size = 1001 * 16 + 64, used = 0;
    char *many = malloc(size);
    used += (size_t)snprintf(many, size, "{\"ids\":[");
    for (int i = 0; i < 1001; i++)
        used += (size_t)snprintf(many + used, size - used, "%s%d", i ? "," : "", i + 1);
    snprintf(many + used, size - used, "]}");
    char both[128];
    snprintf(both, sizeof(both), "{\"upTo\":\"%s\",\"ids\":[\"%s\"]}", id, id);
    const char *bad[] = {"{}",
                         both,
                         "{\"ids\":[]}",
                         many,
                         "{\"ids\":\"1\"}",
                         "{\"ids\":[\"x\"]}",
                         "{\"ids\":[-1]}",
                         "{\"ids\":[1.5]}",
                         "{\"ids\":[null]}",
                         "{\"upTo\":\"abc\"}",
                         "{\"upTo\":-1}",
                         "{\"upTo\":null}",
                         "{\"upTo\":true}",
                         "{\"upTo\":\"99999999999999999999\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct th_response r;
        tx_api(&r, e, "POST", "/v1/wallets/w-ackbad/devices/d/messages/ack", bad[i]);
        if (r.status != 400 || strcmp(th_error_code(&r), "invalid_request") != 0)
            fail_msg("ack %.80s: expected 400 invalid_request, got %ld: %s", bad[i], r.status,
                     r.body);
        tx_assert_error(&r, 400, "invalid_request");
        th_response_free(&r);
    }
    struct th_response r;
    tx_api(&r, e, "POST", "/v1/wallets/w-ackbad/devices/d/messages/ack", "{\"upTo\":");
    tx_assert_error(&r, 400, "malformed_json");
    th_response_free(&r);
    char url[256];
    snprintf(url, sizeof(url), "%s/v1/wallets/w-ackbad/devices/d/messages/ack", e->proc.base);
    const char *plain[] = {e->auth, "Content-Type: text/plain", NULL};
    char upto[64];
    snprintf(upto, sizeof(upto), "{\"upTo\":\"%s\"}", id);
    th_http(&r, "POST", url, plain, upto, strlen(upto));
    tx_assert_error(&r, 415, "unsupported_media_type");
    th_response_free(&r);
    /* The message is still pending after all of that; exactly 1000 ids are accepted. */
    json_t *page = pu_fetch(e, "w-ackbad", "d", NULL);
    assert_int_equal(pu_count(page), 1);
    json_decref(page);
    used = (size_t)snprintf(many, size, "{\"ids\":[\"%s\"", id);
    for (int i = 1; i < 1000; i++)
        used += (size_t)snprintf(many + used, size - used, ",%d", 900000000 + i);
    snprintf(many + used, size - used, "]}");
    assert_int_equal(pu_ack(e, "w-ackbad", "d", many), 1);
    page = pu_fetch(e, "w-ackbad", "d", NULL);
    assert_empty(page);
    json_decref(page);
    free(many);
    free(id);
}

static void test_ack_foreign_ids_leave_others_alone(void **state)
{
    struct tx_env *e = *state;
    pu_register(e, "w-mix", "mine");
    pu_register(e, "w-mix", "theirs");
    pu_register(e, "w-mix2", "mine"); /* same device id, other wallet */
    char *mine = pu_enqueue(e, "w-mix", "mine", "{\"who\":\"mine\"}", 0);
    char *theirs = pu_enqueue(e, "w-mix", "theirs", "{\"who\":\"theirs\"}", 0);
    char *other = pu_enqueue(e, "w-mix2", "mine", "{\"who\":\"other wallet\"}", 0);
    char *mine2 = pu_enqueue(e, "w-mix", "mine", "{\"who\":\"mine 2\"}", 0);

    /* Someone else's ids in our ack: only ours count, theirs stay pending. */
    char body[256];
    snprintf(body, sizeof(body), "{\"ids\":[\"%s\",\"%s\",\"%s\"]}", theirs, other, mine);
    assert_int_equal(pu_ack(e, "w-mix", "mine", body), 1);
    /* Acknowledging their ids through their neighbour's path does nothing either. */
    snprintf(body, sizeof(body), "{\"ids\":[\"%s\",\"%s\"]}", theirs, other);
    assert_int_equal(pu_ack(e, "w-mix", "mine", body), 0);
    json_t *page = pu_fetch(e, "w-mix", "theirs", NULL);
    assert_ids(page, &theirs, 1);
    json_decref(page);
    page = pu_fetch(e, "w-mix2", "mine", NULL);
    assert_ids(page, &other, 1);
    json_decref(page);

    /* Another device (or the same device id in another wallet) acknowledging a list that
     * holds our id does not touch ours. */
    snprintf(body, sizeof(body), "{\"ids\":[\"%s\",\"%s\"]}", mine2, other);
    assert_int_equal(pu_ack(e, "w-mix", "theirs", body), 0);
    snprintf(body, sizeof(body), "{\"ids\":[\"%s\",\"%s\"]}", mine2, theirs);
    assert_int_equal(pu_ack(e, "w-mix2", "mine", body), 0);
    snprintf(body, sizeof(body), "{\"upTo\":\"%lld\"}", pu_num(mine2) + 1000);
    assert_int_equal(pu_ack(e, "w-other-wallet", "mine", body), 0);
    page = pu_fetch(e, "w-mix", "mine", NULL);
    assert_ids(page, &mine2, 1);
    json_decref(page);

    /* upTo past everyone's ids acknowledges only this device's messages. */
    snprintf(body, sizeof(body), "{\"upTo\":\"%lld\"}", pu_num(mine2) + 1000);
    assert_int_equal(pu_ack(e, "w-mix", "mine", body), 1);
    page = pu_fetch(e, "w-mix", "mine", NULL);
    assert_empty(page);
    json_decref(page);
    page = pu_fetch(e, "w-mix", "theirs", NULL);
    assert_ids(page, &theirs, 1);
    json_decref(page);
    page = pu_fetch(e, "w-mix2", "mine", NULL);
    assert_ids(page, &other, 1);
    json_decref(page);
    free(mine);
    free(mine2);
    free(theirs);
    free(other);
}

/* ---- expiry ---- */

static void test_expired_never_returned(void **state)
{
    struct tx_env *e = *state;
    pu_register(e, "w-exp", "d");
    char *brief = pu_enqueue(e, "w-exp", "d", "{\"ttl\":1}", 1);
    char *lasting = pu_enqueue(e, "w-exp", "d", "{\"ttl\":3600}", 3600);
    json_t *page = pu_fetch(e, "w-exp", "d", NULL);
    char *both[] = {brief, lasting};
    assert_ids(page, both, 2);
    /* expiresAt is receivedAt + ttlSeconds */
    double life0 =
        iso_seconds(field(page, 0, "expiresAt")) - iso_seconds(field(page, 0, "receivedAt"));
    double life1 =
        iso_seconds(field(page, 1, "expiresAt")) - iso_seconds(field(page, 1, "receivedAt"));
    if (life0 < 0.9 || life0 > 1.1 || life1 < 3599.9 || life1 > 3600.1)
        fail_msg("expiresAt - receivedAt should be the ttl (1 s and 3600 s): %.3f and %.3f", life0,
                 life1);
    json_decref(page);
    sleep(2);
    page = pu_fetch(e, "w-exp", "d", "after=0&limit=1000");
    assert_ids(page, &lasting, 1);
    json_decref(page);
    struct th_response r;
    tx_api(&r, e, "GET", "/v1/wallets/w-exp/devices/d", NULL);
    tx_assert_status(&r, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "pendingMessages")), 1);
    th_response_free(&r);
    /* ttlSeconds bounds */
    const char *bad[] = {"{\"payload\":1,\"ttlSeconds\":0}", "{\"payload\":1,\"ttlSeconds\":-5}",
                         "{\"payload\":1,\"ttlSeconds\":2419201}",
                         "{\"payload\":1,\"ttlSeconds\":\"60\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tx_api(&r, e, "POST", "/v1/wallets/w-exp/devices/d/messages", bad[i]);
        tx_assert_error(&r, 400, "invalid_request");
        th_response_free(&r);
    }
    free(brief);
    free(lasting);
}

/* Webhook messages (and API messages without ttlSeconds) expire after MPCPUSH_MESSAGE_TTL. */
static void test_default_ttl_expiry(void **state)
{
    struct tx_env *e = *state;
    const char *extra[] = {"MPCPUSH_MESSAGE_TTL=1", NULL};
    tx_start(e, 0, extra);
    pu_register(e, "w-dttl", "d");
    pu_webhook_message(e->proc.base, "w-dttl", "d", "{\"mpc\":\"hook\"}");
    free(pu_enqueue(e, "w-dttl", "d", "{\"mpc\":\"api\"}", 0));
    char *kept = pu_enqueue(e, "w-dttl", "d", "{\"mpc\":\"kept\"}", 60);
    json_t *page = pu_fetch(e, "w-dttl", "d", NULL);
    assert_int_equal(pu_count(page), 3);
    assert_string_equal(field(page, 0, "source"), "webhook");
    json_decref(page);
    sleep(2);
    page = pu_fetch(e, "w-dttl", "d", NULL);
    assert_ids(page, &kept, 1);
    json_decref(page);
    free(kept);
}

/* ---- devices going away, devices that never came ---- */

static void test_delete_device_removes_pending(void **state)
{
    struct tx_env *e = *state;
    pu_register(e, "w-del", "gone");
    pu_register(e, "w-del", "stays");
    for (int i = 0; i < 3; i++)
        free(pu_enqueue(e, "w-del", "gone", "{\"x\":1}", 0));
    char *stays = pu_enqueue(e, "w-del", "stays", "{\"x\":2}", 0);
    struct th_response r;
    tx_api(&r, e, "DELETE", "/v1/wallets/w-del/devices/gone", NULL);
    if (r.status != 200 && r.status != 204)
        fail_msg("DELETE: expected 200 or 204, got %ld: %s", r.status, r.body);
    th_response_free(&r);
    json_t *page = pu_fetch(e, "w-del", "gone", "after=0&limit=1000");
    assert_empty(page);
    json_decref(page);
    assert_int_equal(th_sql_long(e->db, "SELECT count(*) FROM mpcpush.pending_messages"
                                        " WHERE wallet_id = 'w-del' AND device_id = 'gone'"),
                     0);
    /* Registering again does not bring them back; the neighbour keeps its message. */
    pu_register(e, "w-del", "gone");
    page = pu_fetch(e, "w-del", "gone", NULL);
    assert_empty(page);
    json_decref(page);
    tx_api(&r, e, "GET", "/v1/wallets/w-del/devices/gone", NULL);
    tx_assert_status(&r, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "pendingMessages")), 0);
    th_response_free(&r);
    page = pu_fetch(e, "w-del", "stays", NULL);
    assert_ids(page, &stays, 1);
    json_decref(page);
    tx_api(&r, e, "DELETE", "/v1/wallets/w-del/devices/never", NULL);
    tx_assert_error(&r, 404, "device_not_found");
    th_response_free(&r);
    free(stays);
}

static void test_webhook_for_unregistered_device(void **state)
{
    struct tx_env *e = *state;
    pu_webhook_message(e->proc.base, "w-hook", "nobody", "{\"mpc\":\"round-1\",\"n\":[1,2]}");
    pu_webhook_message(e->proc.base, "w-hook", "nobody", "\"round-2\"");
    json_t *page = pu_fetch(e, "w-hook", "nobody", NULL);
    assert_int_equal(pu_count(page), 2);
    assert_string_equal(field(page, 0, "source"), "webhook");
    assert_string_equal(field(page, 1, "source"), "webhook");
    char *p0 = json_dumps(payload(page, 0), JSON_COMPACT | JSON_ENCODE_ANY);
    char *p1 = json_dumps(payload(page, 1), JSON_COMPACT | JSON_ENCODE_ANY);
    tx_assert_json_eq(p0, "{\"mpc\":\"round-1\",\"n\":[1,2]}");
    tx_assert_json_eq(p1, "\"round-2\"");
    free(p0);
    free(p1);
    /* Its expiry is the default message TTL (86400 s). */
    double life =
        iso_seconds(field(page, 0, "expiresAt")) - iso_seconds(field(page, 0, "receivedAt"));
    if (life < 86399.9 || life > 86400.1)
        fail_msg("a webhook message should live 86400 s, got %.3f", life);
    /* Unregistered devices cannot be enqueued to through the API, but can acknowledge. */
    struct th_response r;
    tx_api(&r, e, "POST", "/v1/wallets/w-hook/devices/nobody/messages", "{\"payload\":1}");
    tx_assert_error(&r, 404, "device_not_found");
    th_response_free(&r);
    char body[128];
    snprintf(body, sizeof(body), "{\"ids\":[\"%s\"]}", pu_id(page, 0));
    assert_int_equal(pu_ack(e, "w-hook", "nobody", body), 1);
    char *second = strdup(pu_id(page, 1));
    json_decref(page);
    page = pu_fetch(e, "w-hook", "nobody", NULL);
    assert_ids(page, &second, 1);
    json_decref(page);
    /* Registering later keeps what is waiting. */
    pu_register(e, "w-hook", "nobody");
    page = pu_fetch(e, "w-hook", "nobody", NULL);
    assert_ids(page, &second, 1);
    json_decref(page);
    free(second);
}

/* What piles up while a device is away, from every source, comes back in arrival order. */
static void test_mixed_sources_in_order(void **state)
{
    struct tx_env *e = *state;
    pu_register(e, "w-mixed", "phone");
    pu_register(e, "w-mixed", "tablet");
    char *api = pu_enqueue(e, "w-mixed", "phone", "{\"from\":\"backend\"}", 0);
    pu_webhook_message(e->proc.base, "w-mixed", "phone", "{\"from\":\"fireblocks\"}");
    const char *event = "{\"type\":\"NCW_TRANSACTION_STATUS_UPDATED\",\"tenantId\":\"t\","
                        "\"timestamp\":1700000000999,\"data\":{\"walletId\":\"w-mixed\","
                        "\"id\":\"tx-9\",\"status\":\"PENDING_SIGNATURE\"}}";
    struct th_response r;
    tx_webhook_v1(&r, e, event);
    tx_assert_status(&r, 200);
    th_response_free(&r);
    json_t *page = pu_fetch(e, "w-mixed", "phone", NULL);
    assert_int_equal(pu_count(page), 3);
    assert_string_equal(pu_id(page, 0), api);
    assert_true(pu_num(pu_id(page, 0)) < pu_num(pu_id(page, 1)));
    assert_true(pu_num(pu_id(page, 1)) < pu_num(pu_id(page, 2)));
    assert_string_equal(field(page, 0, "source"), "api");
    assert_string_equal(field(page, 1, "source"), "webhook");
    assert_string_equal(field(page, 2, "source"), "event");
    json_t *wakeup = payload(page, 2);
    assert_string_equal(json_string_value(json_object_get(wakeup, "eventType")),
                        "NCW_TRANSACTION_STATUS_UPDATED");
    assert_string_equal(json_string_value(json_object_get(json_object_get(wakeup, "data"), "id")),
                        "tx-9");
    json_decref(page);
    /* The event went to every device of the wallet; the other messages did not. */
    page = pu_fetch(e, "w-mixed", "tablet", NULL);
    assert_int_equal(pu_count(page), 1);
    assert_string_equal(field(page, 0, "source"), "event");
    json_decref(page);
    free(api);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, tx_setup, tx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_paging_250_in_three_pages),
        T(test_limit_bounds),
        T(test_bad_query_parameters),
        T(test_ack_up_to_twice),
        T(test_ack_ids_twice),
        T(test_ack_bad_bodies),
        T(test_ack_foreign_ids_leave_others_alone),
        T(test_expired_never_returned),
        cmocka_unit_test_setup_teardown(test_default_ttl_expiry, tx_setup_db, tx_teardown),
        T(test_delete_device_removes_pending),
        T(test_webhook_for_unregistered_device),
        T(test_mixed_sources_in_order),
    };
    if (getenv("MPCPUSH_TEST_FILTER")) /* e.g. "*ack*" */
        cmocka_set_test_filter(getenv("MPCPUSH_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
