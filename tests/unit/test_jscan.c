/* The strict JSON scanner behind the webhook envelope parser (src/webhook/jscan.c): members
 * found by name at the top level and one or two objects down, values skipped whatever they
 * hold, and every document jansson refuses (JSON_REJECT_DUPLICATES) refused too: each case is
 * also run through json_loadb, and a deterministic mutation run compares the two verdicts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhook/jscan-int.h"

enum { W_TYPE, W_WALLET, W_DATA, W_DATA_WALLET, W_DATA_SOURCE, W_SOURCE_WALLET, W_COUNT };

static const struct mp_jwant wants[W_COUNT] = {
    [W_TYPE] = {-1, "type"},
    [W_WALLET] = {-1, "walletId"},
    [W_DATA] = {-1, "data"},
    [W_DATA_WALLET] = {W_DATA, "walletId"},
    [W_DATA_SOURCE] = {W_DATA, "source"},
    [W_SOURCE_WALLET] = {W_DATA_SOURCE, "walletId"},
};

static bool jansson_accepts(const char *text, size_t len)
{
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    json_decref(root);
    return root != NULL;
}

static enum mp_result scan_len(const char *text, size_t len, struct mp_jvalue *found,
                               enum mp_jtype *root, char *error, size_t error_size)
{
    return mp_jscan(text, len, wants, W_COUNT, found, root, error, error_size);
}

/* Scans a document that must be accepted, by jansson too. */
static void accept_len(const char *text, size_t len, struct mp_jvalue *found)
{
    enum mp_jtype root = MP_JSON_ABSENT;
    char error[200] = "";
    enum mp_result r = scan_len(text, len, found, &root, error, sizeof(error));
    if (r)
        fprintf(stderr, "refused %.*s: %s\n", (int)(len > 200 ? 200 : len), text, error);
    assert_int_equal(r, MP_OK);
    assert_true(root == MP_JSON_OBJECT || root == MP_JSON_ARRAY);
    assert_true(jansson_accepts(text, len));
}

static void accept(const char *text, struct mp_jvalue *found)
{
    accept_len(text, strlen(text), found);
}

/* Scans a document that must be refused, by jansson too; returns the reason (static). */
static const char *refuse_len(const char *text, size_t len)
{
    static char error[200];
    struct mp_jvalue found[W_COUNT];
    enum mp_jtype root = MP_JSON_ABSENT;
    error[0] = '\0';
    enum mp_result r = scan_len(text, len, found, &root, error, sizeof(error));
    if (r != MP_ERR_INVALID)
        fprintf(stderr, "accepted %.*s\n", (int)(len > 200 ? 200 : len), text);
    assert_int_equal(r, MP_ERR_INVALID);
    assert_int_equal(root, MP_JSON_ABSENT);
    assert_int_equal(strncmp(error, "invalid JSON: ", 14), 0);
    if (!memchr(text, '\0', len)) /* jansson takes a NUL after a literal; callers refuse it */
        assert_false(jansson_accepts(text, len));
    return error;
}

static const char *refuse(const char *text)
{
    return refuse_len(text, strlen(text));
}

static void assert_string_value(const struct mp_jvalue *v, const char *expected)
{
    size_t len = 0;
    char *text = mp_jstring_dup(v, &len);
    assert_non_null(text);
    assert_string_equal(text, expected);
    assert_int_equal(len, strlen(expected));
    assert_true(mp_jstring_equals(v, expected));
    free(text);
}

/* ---- members ---- */

static void test_members_found(void **state)
{
    struct mp_jvalue f[W_COUNT];
    const char *doc = "{\"type\":\"T\",\"data\":{\"source\":{\"walletId\":\"s1\"},\"walletId\":7},"
                      "\"other\":{\"walletId\":\"no\"}}";
    accept(doc, f);
    assert_string_value(&f[W_TYPE], "T");
    assert_int_equal(f[W_WALLET].type, MP_JSON_ABSENT);
    assert_int_equal(f[W_DATA].type, MP_JSON_OBJECT);
    assert_int_equal(f[W_DATA].text[0], '{');
    assert_int_equal(f[W_DATA].text[f[W_DATA].len - 1], '}');
    assert_int_equal(f[W_DATA_WALLET].type, MP_JSON_INTEGER);
    assert_int_equal(mp_jinteger(&f[W_DATA_WALLET]), 7);
    assert_int_equal(f[W_DATA_SOURCE].type, MP_JSON_OBJECT);
    assert_string_value(&f[W_SOURCE_WALLET], "s1");
    assert_null(mp_jstring_dup(&f[W_DATA_WALLET], NULL));
    assert_false(mp_jstring_equals(&f[W_DATA_WALLET], "7"));
}

static void test_members_only_in_objects(void **state)
{
    struct mp_jvalue f[W_COUNT];
    /* data is an array: the objects inside are not "data" */
    accept("{\"data\":[{\"walletId\":\"w\",\"source\":{\"walletId\":\"s\"}}],\"type\":null}", f);
    assert_int_equal(f[W_DATA].type, MP_JSON_ARRAY);
    assert_int_equal(f[W_DATA_WALLET].type, MP_JSON_ABSENT);
    assert_int_equal(f[W_SOURCE_WALLET].type, MP_JSON_ABSENT);
    assert_int_equal(f[W_TYPE].type, MP_JSON_NULL);
    /* a top-level array has no members */
    accept("[{\"type\":\"T\"}]", f);
    assert_int_equal(f[W_TYPE].type, MP_JSON_ABSENT);
    /* data a string; source outside data */
    accept("{\"data\":\"{\\\"walletId\\\":1}\",\"source\":{\"walletId\":\"x\"}}", f);
    assert_int_equal(f[W_DATA].type, MP_JSON_STRING);
    assert_int_equal(f[W_SOURCE_WALLET].type, MP_JSON_ABSENT);
}

static void test_escaped_keys_and_values(void **state)
{
    struct mp_jvalue f[W_COUNT];
    accept("{\"wallet\\u0049d\":\"w\\u002d1\",\"\\u0074ype\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\","
           "\"data\":{\"wallet\\u0049d\":\"\\ud83d\\ude00\\u00e9\"}}",
           f);
    assert_string_value(&f[W_WALLET], "w-1");
    assert_string_value(&f[W_TYPE], "a\"b\\c/d\b\f\n\r\t");
    assert_true(f[W_TYPE].escaped);
    assert_string_value(&f[W_DATA_WALLET], "\xf0\x9f\x98\x80\xc3\xa9");
    /* raw UTF-8 and DEL need no escape */
    accept("{\"type\":\"\xc3\xa9\x7f\xe2\x82\xac\xf4\x8f\xbf\xbf\"}", f);
    assert_string_value(&f[W_TYPE], "\xc3\xa9\x7f\xe2\x82\xac\xf4\x8f\xbf\xbf");
    assert_false(f[W_TYPE].escaped);
    assert_false(mp_jstring_equals(&f[W_TYPE], "\xc3\xa9"));
    /* names are compared whole */
    accept("{\"typ\":1,\"types\":2,\"Type\":3}", f);
    assert_int_equal(f[W_TYPE].type, MP_JSON_ABSENT);
}

static void test_strings_holding_structure(void **state)
{
    struct mp_jvalue f[W_COUNT];
    accept("{\"message\":\"}{\\\"type\\\":\\\"no\\\"}][\",\"nested\":[\"]\",{\"}\":\"{\"}],"
           "\"type\":\"yes\",\"data\":{\"a\":\"\\\"walletId\\\":\\\"no\\\"\",\"walletId\":\"w\"}}",
           f);
    assert_string_value(&f[W_TYPE], "yes");
    assert_string_value(&f[W_DATA_WALLET], "w");
    assert_int_equal(f[W_WALLET].type, MP_JSON_ABSENT);
}

static void test_values_of_every_type(void **state)
{
    struct mp_jvalue f[W_COUNT];
    accept(" \t\r\n{ \"type\" : -12.5e-1 , \"walletId\" : true , \"data\" : { } } \n", f);
    assert_int_equal(f[W_TYPE].type, MP_JSON_REAL);
    assert_true(mp_jreal(&f[W_TYPE]) == -1.25);
    assert_int_equal(f[W_WALLET].type, MP_JSON_TRUE);
    assert_int_equal(f[W_DATA].type, MP_JSON_OBJECT);
    assert_int_equal(f[W_DATA].len, 3);
    accept("{\"type\":false,\"walletId\":-0,\"data\":[]}", f);
    assert_int_equal(f[W_TYPE].type, MP_JSON_FALSE);
    assert_int_equal(f[W_WALLET].type, MP_JSON_INTEGER);
    assert_int_equal(f[W_DATA].type, MP_JSON_ARRAY);
    accept("{\"type\":-9223372036854775808,\"walletId\":9223372036854775807}", f);
    assert_true(mp_jinteger(&f[W_TYPE]) == INT64_MIN);
    assert_true(mp_jinteger(&f[W_WALLET]) == INT64_MAX);
    accept("{\"a\":[1e308,-1E-400,0.0,1e+2,0e0,123456789012345678]}", f);
}

/* ---- refused ---- */

static void test_duplicate_keys(void **state)
{
    struct mp_jvalue f[W_COUNT];
    assert_non_null(strstr(refuse("{\"type\":\"A\",\"type\":\"B\"}"), "duplicate"));
    refuse("{\"type\":\"A\",\"t\\u0079pe\":\"B\"}");
    refuse("{\"\\u00e9\":1,\"\xc3\xa9\":2}");
    refuse("{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}");
    refuse("{\"\":1,\"\":2}");
    refuse("{\"data\":{\"x\":1,\"y\":2,\"x\":3}}");
    refuse("{\"payload\":[1,{\"deep\":[{\"k\":1,\"k\":1}]}]}");
    /* wide objects are sorted to find them */
    refuse("{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,"
           "\"k9\":9,\"k\\u0035\":10}");
    accept("{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,"
           "\"k9\":9,\"k\\u0035x\":10,\"k55\":11}",
           f);
    /* the same name in different objects, or as a value, is no duplicate */
    accept("{\"a\":{\"a\":{\"a\":\"a\"}},\"b\":[{\"a\":1},{\"a\":2}],\"c\":\"a\"}", f);
    /* a duplicate inside an object that closed before the next key */
    refuse("{\"a\":{\"b\":1,\"b\":2},\"c\":3}");
}

static void test_not_an_object_or_array(void **state)
{
    refuse("");
    refuse("   ");
    refuse("\"text\"");
    refuse("42");
    refuse("true");
    refuse("null");
    assert_non_null(strstr(refuse("x"), "'[' or '{' expected"));
}

static void test_trailing_garbage(void **state)
{
    struct mp_jvalue f[W_COUNT];
    accept("{}  \r\n\t", f);
    assert_non_null(strstr(refuse("{} x"), "end of file expected"));
    refuse("{}{}");
    refuse("{}]");
    refuse("[]]");
    refuse("{},");
    refuse("{}\f");
    refuse_len("{}\0", 3);
}

static void test_structure(void **state)
{
    refuse("{");
    refuse("{\"a\"");
    refuse("{\"a\":");
    refuse("{\"a\":1");
    refuse("{\"a\":1,}");
    refuse("{,}");
    refuse("{\"a\" 1}");
    refuse("{\"a\":1 \"b\":2}");
    refuse("{1:2}");
    refuse("{'a':1}");
    refuse("{a:1}");
    refuse("[1,]");
    refuse("[,1]");
    refuse("[1 2]");
    refuse("{\"a\":[}");
    refuse("{\"a\":{]}");
    refuse("[\"a\":1]");
}

static void test_bad_strings(void **state)
{
    refuse("{\"a\":\"unterminated}");
    refuse("{\"a\":\"\\x\"}");
    refuse("{\"a\":\"\\u12\"}");
    refuse("{\"a\":\"\\u12G4\"}");
    refuse("{\"a\":\"\\U1234\"}");
    refuse("{\"a\":\"\\u0000\"}");
    refuse("{\"\\u0000\":1}");
    refuse("{\"a\":\"\\ud800\"}");
    refuse("{\"a\":\"\\ud800x\"}");
    refuse("{\"a\":\"\\ud800\\u0041\"}");
    refuse("{\"a\":\"\\udc00\"}");
    refuse("{\"a\":\"\\udc00\\ud800\"}");
    refuse("{\"a\":\"tab\there\"}");
    refuse("{\"a\":\"new\nline\"}");
    refuse("{\"a\":\"\x1f\"}");
    refuse_len("{\"a\":\"\0\"}", 8);
    /* UTF-8: stray continuation, overlong, surrogate, beyond U+10FFFF, truncated, bad lead */
    refuse("{\"a\":\"\x80\"}");
    refuse("{\"a\":\"\xc0\xaf\"}");
    refuse("{\"a\":\"\xc1\xbf\"}");
    refuse("{\"a\":\"\xe0\x80\xaf\"}");
    refuse("{\"a\":\"\xed\xa0\x80\"}");
    refuse("{\"a\":\"\xf0\x80\x80\xaf\"}");
    refuse("{\"a\":\"\xf4\x90\x80\x80\"}");
    refuse("{\"a\":\"\xf5\x80\x80\x80\"}");
    refuse("{\"a\":\"\xe2\x82\"}");
    refuse("{\"a\":\"\xe2\x82");
    refuse("{\"a\":\"\xff\"}");
    refuse("{\"\xc3\":1}");
    refuse("{\"a\":1}\xc3\xa9");
    refuse("{\"a\":\xc3\xa9}");
}

static void test_bad_numbers_and_literals(void **state)
{
    refuse("{\"a\":01}");
    refuse("{\"a\":-01}");
    refuse("{\"a\":00}");
    refuse("{\"a\":1.}");
    refuse("{\"a\":.5}");
    refuse("{\"a\":-}");
    refuse("{\"a\":-a}");
    refuse("{\"a\":+1}");
    refuse("{\"a\":1e}");
    refuse("{\"a\":1e+}");
    refuse("{\"a\":1.5e-}");
    refuse("{\"a\":0x10}");
    refuse("{\"a\":1_000}");
    refuse("{\"a\":Infinity}");
    refuse("{\"a\":NaN}");
    assert_non_null(strstr(refuse("{\"a\":9223372036854775808}"), "too big integer"));
    refuse("{\"a\":-9223372036854775809}");
    refuse("{\"a\":12345678901234567890123}");
    assert_non_null(strstr(refuse("{\"a\":1e309}"), "real number overflow"));
    refuse("{\"a\":-1.8e308}");
    refuse("{\"a\":tru}");
    refuse("{\"a\":truee}");
    refuse("{\"a\":True}");
    refuse("{\"a\":nul}");
    refuse("{\"a\":nulll}");
    refuse("{\"a\":true1}");
    refuse("{\"a\":falsey}");
}

static void test_long_numbers(void **state)
{
    struct mp_jvalue f[W_COUNT];
    char doc[1200];
    /* 400 digits: too big as an integer, too big as a real, fine below 1 */
    memset(doc, '1', sizeof(doc));
    memcpy(doc, "{\"a\":", 5);
    strcpy(doc + 405, "}");
    refuse(doc);
    strcpy(doc + 405, ".5}");
    refuse(doc);
    memcpy(doc, "{\"a\":0.", 7);
    strcpy(doc + 405, "}");
    accept(doc, f);
    memcpy(doc, "{\"type\":1", 9);
    strcpy(doc + 405, "e-800}");
    accept(doc, f); /* long mantissa, underflow */
    assert_int_equal(f[W_TYPE].type, MP_JSON_REAL);
    assert_true(mp_jreal(&f[W_TYPE]) == 0.0);
}

/* inner wrapped in levels containers: arrays, or (objects) an array holding objects. */
static char *nested(int levels, bool objects, const char *inner)
{
    size_t len = (size_t)levels * 6 + strlen(inner) + 1;
    char *doc = malloc(len), *p = doc;
    for (int i = 0; i < levels; i++)
        p += sprintf(p, "%s", objects && i ? "{\"k\":" : "[");
    p += sprintf(p, "%s", inner);
    for (int i = levels - 1; i >= 0; i--)
        *p++ = objects && i ? '}' : ']';
    *p = '\0';
    return doc;
}

/* Depth counts every value, the top level's too, as jansson does. */
static void test_depth_limit(void **state)
{
    struct mp_jvalue f[W_COUNT];
    for (int objects = 0; objects <= 1; objects++) {
        const char *empty = objects ? "{}" : "[]";
        char *doc = nested(MP_JSCAN_MAX_DEPTH - 1, objects, empty);
        accept(doc, f); /* the innermost container is the 2048th value deep */
        free(doc);
        doc = nested(MP_JSCAN_MAX_DEPTH - 1, objects, "1");
        accept(doc, f);
        free(doc);
        doc = nested(MP_JSCAN_MAX_DEPTH, objects, "1");
        assert_non_null(strstr(refuse(doc), "maximum parsing depth"));
        free(doc);
        doc = nested(MP_JSCAN_MAX_DEPTH, objects, empty);
        refuse(doc);
        free(doc);
        doc = nested(100000, objects, empty);
        refuse(doc);
        free(doc);
    }
}

static void test_error_buffer(void **state)
{
    struct mp_jvalue f[W_COUNT];
    enum mp_jtype root = MP_JSON_OBJECT;
    char tiny[10];
    assert_int_equal(scan_len("{", 1, f, &root, NULL, 0), MP_ERR_INVALID);
    assert_int_equal(scan_len("{", 1, f, &root, tiny, sizeof(tiny)), MP_ERR_INVALID);
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
    assert_int_equal(root, MP_JSON_OBJECT); /* untouched on failure */
    assert_string_equal(strstr(refuse("{\"a\":1,}"), "at byte"), "at byte 7");
}

/* ---- against jansson ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static unsigned next_random(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state >> 32);
}

/* Mutates doc (len bytes, room for cap) in place: replace, insert or delete a byte taken from
 * the JSON alphabet or at random. */
static size_t mutate(char *doc, size_t len, size_t cap)
{
    static const char alphabet[] = "{}[]\":,\\u0123456789abcdefeE.+-tnlrs \t\n";
    unsigned r = next_random();
    char c = r % 4 == 0 ? (char)(next_random() & 0xff) : alphabet[r % (sizeof(alphabet) - 1)];
    size_t at = len ? next_random() % len : 0;
    switch ((r >> 8) % 3) {
    case 0:
        if (len)
            doc[at] = c;
        break;
    case 1:
        if (len + 1 < cap) {
            memmove(doc + at + 1, doc + at, len - at);
            doc[at] = c;
            len++;
        }
        break;
    default:
        if (len) {
            memmove(doc + at, doc + at + 1, len - at - 1);
            len--;
        }
    }
    return len;
}

static void test_agrees_with_jansson(void **state)
{
    static const char *seeds[] = {
        "{\"type\":\"NCW_DEVICE_MESSAGE\",\"walletId\":\"w1\",\"deviceId\":\"d1\","
        "\"message\":{\"payload\":\"abc\",\"n\":[1,2.5,-3e2,true,false,null]}}",
        "{\"eventType\":\"transaction.created\",\"id\":\"e1\",\"data\":{\"status\":"
        "\"PENDING_SIGNATURE\",\"source\":{\"walletId\":\"w\\u0031\"},\"k\":{\"k\":{}}}}",
        "[{\"a\":\"\\ud83d\\ude00\xc3\xa9\"},[[]],{\"b\":[{\"c\":\"}{\"}]}]",
        "{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8}",
    };
    char doc[512];
    size_t agreed = 0, accepted = 0;
    for (int round = 0; round < 60000; round++) {
        const char *seed = seeds[round % 4];
        size_t len = strlen(seed);
        memcpy(doc, seed, len);
        for (unsigned m = 1 + next_random() % 4; m > 0; m--)
            len = mutate(doc, len, sizeof(doc));
        if (memchr(doc, '\0', len))
            continue; /* the caller refuses NUL bytes first (jansson takes one after a literal) */
        struct mp_jvalue f[W_COUNT];
        enum mp_jtype root;
        bool ours = scan_len(doc, len, f, &root, NULL, 0) == MP_OK;
        bool theirs = jansson_accepts(doc, len);
        if (ours != theirs)
            fprintf(stderr, "disagree (scanner %d, jansson %d): %.*s\n", ours, theirs, (int)len,
                    doc);
        assert_int_equal(ours, theirs);
        agreed++;
        accepted += ours;
    }
    assert_true(agreed > 50000);
    assert_true(accepted > 1000); /* the mutations are not all fatal */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members_found),
        cmocka_unit_test(test_members_only_in_objects),
        cmocka_unit_test(test_escaped_keys_and_values),
        cmocka_unit_test(test_strings_holding_structure),
        cmocka_unit_test(test_values_of_every_type),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_not_an_object_or_array),
        cmocka_unit_test(test_trailing_garbage),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_bad_strings),
        cmocka_unit_test(test_bad_numbers_and_literals),
        cmocka_unit_test(test_long_numbers),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_error_buffer),
        cmocka_unit_test(test_agrees_with_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
