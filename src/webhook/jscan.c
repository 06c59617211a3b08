/* A strict JSON scanner (see jscan-int.h): one pass over the text with an explicit stack, no
 * tree, no allocation for documents of modest nesting and width. It follows jansson 2.14's
 * decoder rule for rule, since the envelope parser used that before and a body must be
 * accepted or refused exactly as it was. */
#include "webhook/jscan-int.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpcpush/validate.h"

#define INLINE_ENTRIES 64   /* stack entries before the stack moves to the heap */
#define PAIRWISE_KEYS  8    /* objects with more keys are sorted to find duplicates */
#define SLOT_ROOT      (-1) /* the top-level object, parent of the top-level wants */
#define SLOT_NONE      (-2) /* a container nobody asked for */
#define NO_ENTRY       SIZE_MAX

/* The stack holds each open container and, above an open object's entry, its keys so far. */
enum entry_kind { KEY, OBJECT, ARRAY };

struct entry {
    const unsigned char *text; /* KEY: the name, still escaped; container: its '{' or '[' */
    size_t len;                /* KEY: length of text; container: the enclosing container */
    int slot;                  /* container: the wants[] index it is, SLOT_ROOT or SLOT_NONE */
    unsigned char kind;        /* enum entry_kind */
    bool escaped;              /* KEY: holds a backslash escape */
};

struct scan {
    const unsigned char *start, *p, *end;
    const struct mp_jwant *wants;
    int count;
    struct mp_jvalue *found;
    struct entry *stack;
    size_t top, cap;
    size_t open;  /* the innermost open container's entry, NO_ENTRY when none */
    size_t depth; /* open containers */
    const char *why;
    enum mp_result result;
    struct entry inline_stack[INLINE_ENTRIES];
};

enum state { NEED_VALUE, NEED_KEY, AFTER_VALUE, DONE, FAILED };

static enum state fail(struct scan *s, const char *why)
{
    if (!s->why) {
        s->why = why;
        s->result = MP_ERR_INVALID;
    }
    return FAILED;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* The four hex digits at p (p + 4 <= end), or -1. */
static long hex4(const unsigned char *p, const unsigned char *end)
{
    long v = 0;
    if (end - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        int d = mp_hex_value(p[i]);
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

static void skip_space(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* ---- strings ---- */

/* The length of the escape at p ('\\'), 0 when invalid: an unknown escape, \u0000, or a
 * surrogate that is not part of a pair. */
static size_t escape_length(const unsigned char *p, const unsigned char *end)
{
    if (end - p < 2)
        return 0;
    if (strchr("\"\\/bfnrt", p[1]) && p[1])
        return 2;
    long v = p[1] == 'u' ? hex4(p + 2, end) : -1;
    if (v <= 0 || (v >= 0xdc00 && v <= 0xdfff))
        return 0;
    if (v < 0xd800 || v > 0xdbff)
        return 6;
    if (end - p < 12 || p[6] != '\\' || p[7] != 'u')
        return 0;
    long low = hex4(p + 8, end);
    return low >= 0xdc00 && low <= 0xdfff ? 12 : 0;
}

/* Scans the string at s->p ('"') into *out. */
static enum state scan_string(struct scan *s, struct mp_jvalue *out)
{
    const unsigned char *p = s->p + 1, *end = s->end;
    bool escaped = false;
    for (;;) {
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        size_t n = 1;
        if (p == end)
            return fail(s, "premature end of input in a string");
        if (*p == '"')
            break;
        if (*p == '\\' && !(n = escape_length(p, end)))
            return fail(s, "invalid escape or Unicode escape in a string");
        if (*p < 0x20)
            return fail(s, "control character in a string");
        if (*p >= 0x80 && !(n = mp_utf8_sequence(p, (size_t)(end - p))))
            return fail(s, "invalid UTF-8");
        escaped |= *p == '\\';
        p += n;
    }
    out->type = MP_JSON_STRING;
    out->text = (const char *)s->p + 1;
    out->len = (size_t)(p - s->p - 1);
    out->escaped = escaped;
    s->p = p + 1;
    return AFTER_VALUE;
}

/* Decodes a scanned (valid) string one byte at a time. */
struct decoder {
    const unsigned char *p, *end;
    bool escaped; /* false: plain bytes, taken as they are */
    unsigned char pending[4];
    int next, count;
};

static void decoder_init(struct decoder *d, const char *text, size_t len, bool escaped)
{
    d->p = (const unsigned char *)text;
    d->end = d->p + len;
    d->escaped = escaped;
    d->next = d->count = 0;
}

static int utf8_encode(uint32_t v, unsigned char *out)
{
    if (v < 0x80) {
        out[0] = (unsigned char)v;
        return 1;
    }
    if (v < 0x800) {
        out[0] = (unsigned char)(0xc0 | v >> 6);
        out[1] = (unsigned char)(0x80 | (v & 0x3f));
        return 2;
    }
    if (v < 0x10000) {
        out[0] = (unsigned char)(0xe0 | v >> 12);
        out[1] = (unsigned char)(0x80 | (v >> 6 & 0x3f));
        out[2] = (unsigned char)(0x80 | (v & 0x3f));
        return 3;
    }
    out[0] = (unsigned char)(0xf0 | v >> 18);
    out[1] = (unsigned char)(0x80 | (v >> 12 & 0x3f));
    out[2] = (unsigned char)(0x80 | (v >> 6 & 0x3f));
    out[3] = (unsigned char)(0x80 | (v & 0x3f));
    return 4;
}

/* The next decoded byte, -1 at the end. */
static int decode_next(struct decoder *d)
{
    if (d->next < d->count)
        return d->pending[d->next++];
    if (d->p >= d->end)
        return -1;
    if (!d->escaped || *d->p != '\\')
        return *d->p++;
    unsigned char e = d->p[1];
    d->p += 2;
    if (e != 'u') {
        static const char from[] = "bfnrt", to[] = "\b\f\n\r\t";
        const char *at = strchr(from, e);
        return at ? to[at - from] : e;
    }
    uint32_t v = (uint32_t)hex4(d->p, d->end);
    d->p += 4;
    if (v >= 0xd800 && v <= 0xdbff) {
        v = 0x10000 + ((v - 0xd800) << 10) + ((uint32_t)hex4(d->p + 2, d->end) - 0xdc00);
        d->p += 6;
    }
    d->count = utf8_encode(v, d->pending);
    d->next = 1;
    return d->pending[0];
}

/* Compares two scanned strings by their decoded bytes (as memcmp would). */
static int compare_strings(const char *a, size_t a_len, bool a_escaped, const char *b, size_t b_len,
                           bool b_escaped)
{
    if (!a_escaped && !b_escaped) {
        int c = memcmp(a, b, a_len < b_len ? a_len : b_len);
        return c ? c : (a_len > b_len) - (a_len < b_len);
    }
    struct decoder x, y;
    decoder_init(&x, a, a_len, a_escaped);
    decoder_init(&y, b, b_len, b_escaped);
    for (;;) {
        int cx = decode_next(&x), cy = decode_next(&y);
        if (cx != cy || cx < 0)
            return cx - cy;
    }
}

/* ---- numbers and literals ---- */

/* Whether the real text[0..len) is finite as a double (jansson refuses overflows). */
static enum state real_in_range(struct scan *s, const unsigned char *text, size_t len)
{
    char local[64], *copy = len < sizeof(local) ? local : malloc(len + 1);
    if (!copy) {
        s->result = MP_ERR_NOMEM;
        s->why = "out of memory";
        return FAILED;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    errno = 0;
    double v = strtod(copy, NULL);
    bool overflow = (v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE;
    if (copy != local)
        free(copy);
    return overflow ? fail(s, "real number overflow") : AFTER_VALUE;
}

static const unsigned char *skip_digits(const unsigned char *p, const unsigned char *end)
{
    while (p < end && is_digit(*p))
        p++;
    return p;
}

/* Whether the n digits (no leading zero) are within long long, as strtoll would find. */
static bool fits_long_long(const unsigned char *digits, size_t n, bool negative)
{
    const char *limit = negative ? "9223372036854775808" : "9223372036854775807";
    return n < 19 || (n == 19 && memcmp(digits, limit, 19) <= 0);
}

/* Scans the number at s->p into *out. */
static enum state scan_number(struct scan *s, struct mp_jvalue *out)
{
    const unsigned char *start = s->p, *end = s->end, *p = start + (*start == '-');
    const unsigned char *digits = p;
    if (p < end && *p == '0')
        p++;
    else
        p = skip_digits(p, end);
    size_t int_digits = (size_t)(p - digits);
    if (int_digits == 0 || (p < end && is_digit(*p)))
        return fail(s, "invalid number");
    bool real = p < end && *p == '.', exponent = false;
    if (real && (p + 1 == end || !is_digit(p[1])))
        return fail(s, "invalid number");
    if (real)
        p = skip_digits(p + 1, end);
    if (p < end && (*p == 'e' || *p == 'E')) {
        real = exponent = true;
        p += p + 1 < end && (p[1] == '+' || p[1] == '-') ? 2 : 1;
        if (p == end || !is_digit(*p))
            return fail(s, "invalid number");
        p = skip_digits(p, end);
    }
    s->p = p;
    out->type = real ? MP_JSON_REAL : MP_JSON_INTEGER;
    out->text = (const char *)start;
    out->len = (size_t)(p - start);
    if (!real)
        return fits_long_long(digits, int_digits, *start == '-') ? AFTER_VALUE
                                                                 : fail(s, "too big integer");
    /* without an exponent, fewer than 309 digits stay below DBL_MAX */
    return exponent || int_digits > 308 ? real_in_range(s, start, out->len) : AFTER_VALUE;
}

static enum state scan_literal(struct scan *s, struct mp_jvalue *out)
{
    static const struct {
        const char *word;
        enum mp_jtype type;
    } literals[] = {{"true", MP_JSON_TRUE}, {"false", MP_JSON_FALSE}, {"null", MP_JSON_NULL}};
    for (size_t i = 0; i < sizeof(literals) / sizeof(literals[0]); i++) {
        size_t n = strlen(literals[i].word);
        if ((size_t)(s->end - s->p) >= n && memcmp(s->p, literals[i].word, n) == 0 &&
            (s->end - s->p == (ptrdiff_t)n ||
             !((s->p[n] | 0x20) >= 'a' && (s->p[n] | 0x20) <= 'z'))) {
            out->type = literals[i].type;
            out->text = (const char *)s->p;
            out->len = n;
            s->p += n;
            return AFTER_VALUE;
        }
    }
    return fail(s, "invalid token");
}

/* ---- containers ---- */

static bool push(struct scan *s, struct entry e)
{
    if (s->top == s->cap) {
        size_t cap = s->cap * 2;
        struct entry *grown = s->stack == s->inline_stack ? malloc(cap * sizeof(*grown))
                                                          : realloc(s->stack, cap * sizeof(*grown));
        if (!grown) {
            s->result = MP_ERR_NOMEM;
            s->why = "out of memory";
            return false;
        }
        if (s->stack == s->inline_stack)
            memcpy(grown, s->inline_stack, sizeof(s->inline_stack));
        s->stack = grown;
        s->cap = cap;
    }
    s->stack[s->top++] = e;
    return true;
}

static int compare_keys(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    return compare_strings((const char *)x->text, x->len, x->escaped, (const char *)y->text, y->len,
                           y->escaped);
}

/* Whether keys[0..n) holds two equal names; sorts them when there are many. */
static bool has_duplicate(struct entry *keys, size_t n)
{
    if (n <= PAIRWISE_KEYS) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if ((keys[i].escaped || keys[j].escaped || keys[i].len == keys[j].len) &&
                    compare_keys(&keys[i], &keys[j]) == 0)
                    return true;
        return false;
    }
    qsort(keys, n, sizeof(*keys), compare_keys);
    for (size_t i = 1; i < n; i++)
        if (compare_keys(&keys[i - 1], &keys[i]) == 0)
            return true;
    return false;
}

/* Closes the innermost container at s->p ('}' or ']'). */
static enum state close_container(struct scan *s)
{
    struct entry *c = &s->stack[s->open];
    if (c->kind == OBJECT && has_duplicate(c + 1, s->top - s->open - 1))
        return fail(s, "duplicate object key");
    s->p++;
    if (c->slot >= 0)
        s->found[c->slot].len = (size_t)(s->p - c->text);
    s->top = s->open;
    s->open = c->len;
    s->depth--;
    return AFTER_VALUE;
}

/* Opens the container at s->p ('{' or '['), which is wants[slot] (or SLOT_ROOT, SLOT_NONE). */
static enum state open_container(struct scan *s, int slot)
{
    bool object = *s->p == '{';
    struct entry e = {.text = s->p, .len = s->open, .slot = slot, .kind = object ? OBJECT : ARRAY};
    if (!push(s, e))
        return FAILED;
    s->open = s->top - 1;
    s->depth++;
    s->p++;
    skip_space(s);
    if (s->p < s->end && *s->p == (object ? '}' : ']'))
        return close_container(s);
    return object ? NEED_KEY : NEED_VALUE;
}

/* Reads a value; slot as for open_container. */
static enum state value(struct scan *s, int slot)
{
    struct mp_jvalue v = {0}, *out = slot >= 0 ? &s->found[slot] : &v;
    skip_space(s);
    if (s->depth + 1 > MP_JSCAN_MAX_DEPTH)
        return fail(s, "maximum parsing depth reached");
    if (s->p == s->end)
        return fail(s, "premature end of input");
    switch (*s->p) {
    case '{':
    case '[':
        out->type = *s->p == '{' ? MP_JSON_OBJECT : MP_JSON_ARRAY;
        out->text = (const char *)s->p;
        return open_container(s, slot);
    case '"':
        return scan_string(s, out);
    default:
        return *s->p == '-' || is_digit(*s->p) ? scan_number(s, out) : scan_literal(s, out);
    }
}

/* Reads a member name and its ':'; *slot gets the wants[] index of its value, or SLOT_NONE. */
static enum state key(struct scan *s, int *slot)
{
    struct mp_jvalue name;
    skip_space(s);
    if (s->p == s->end || *s->p != '"')
        return fail(s, "member name expected");
    if (scan_string(s, &name) == FAILED)
        return FAILED;
    struct entry e = {.text = (const unsigned char *)name.text,
                      .len = name.len,
                      .kind = KEY,
                      .escaped = name.escaped};
    if (!push(s, e))
        return FAILED;
    int parent = s->stack[s->open].slot;
    *slot = SLOT_NONE;
    for (int i = 0; parent != SLOT_NONE && i < s->count; i++)
        if (s->wants[i].parent == parent && mp_jstring_equals(&name, s->wants[i].name))
            *slot = i;
    skip_space(s);
    if (s->p == s->end || *s->p != ':')
        return fail(s, "':' expected");
    s->p++;
    return NEED_VALUE;
}

/* After a value: a separator, the end of its container, or the end of the document. */
static enum state after_value(struct scan *s)
{
    skip_space(s);
    if (s->open == NO_ENTRY)
        return s->p == s->end ? DONE : fail(s, "end of file expected");
    bool object = s->stack[s->open].kind == OBJECT;
    if (s->p < s->end && *s->p == ',') {
        s->p++;
        return object ? NEED_KEY : NEED_VALUE;
    }
    if (s->p < s->end && *s->p == (object ? '}' : ']'))
        return close_container(s);
    return fail(s, object ? "',' or '}' expected" : "',' or ']' expected");
}

static enum state run(struct scan *s, enum mp_jtype *root_type)
{
    skip_space(s);
    if (s->p == s->end || (*s->p != '{' && *s->p != '['))
        return fail(s, "'[' or '{' expected");
    *root_type = *s->p == '{' ? MP_JSON_OBJECT : MP_JSON_ARRAY;
    enum state state = open_container(s, SLOT_ROOT);
    int slot = SLOT_NONE;
    while (state != DONE && state != FAILED) {
        if (state == NEED_VALUE) {
            state = value(s, slot);
            slot = SLOT_NONE; /* only a member's value can be wanted */
        } else if (state == NEED_KEY) {
            state = key(s, &slot);
        } else {
            state = after_value(s);
        }
    }
    return state;
}

enum mp_result mp_jscan(const char *text, size_t len, const struct mp_jwant *wants, int count,
                        struct mp_jvalue *found, enum mp_jtype *root_type, char *error,
                        size_t error_size)
{
    struct scan *s = malloc(sizeof(*s));
    if (!s) {
        if (error && error_size)
            snprintf(error, error_size, "out of memory");
        return MP_ERR_NOMEM;
    }
    *s = (struct scan){.start = (const unsigned char *)text,
                       .p = (const unsigned char *)text,
                       .end = (const unsigned char *)text + len,
                       .wants = wants,
                       .count = count,
                       .found = found,
                       .cap = INLINE_ENTRIES,
                       .open = NO_ENTRY};
    s->stack = s->inline_stack;
    memset(found, 0, sizeof(*found) * (size_t)count);
    enum mp_jtype type = MP_JSON_ABSENT;
    enum mp_result result = run(s, &type) == DONE ? MP_OK : s->result;
    if (result == MP_ERR_NOMEM && error && error_size)
        snprintf(error, error_size, "out of memory");
    else if (result && error && error_size)
        snprintf(error, error_size, "invalid JSON: %s at byte %zu", s->why,
                 (size_t)(s->p - s->start));
    if (s->stack != s->inline_stack)
        free(s->stack);
    free(s);
    if (!result)
        *root_type = type;
    return result;
}

/* ---- values ---- */

char *mp_jstring_dup(const struct mp_jvalue *v, size_t *len)
{
    char *copy = v->type == MP_JSON_STRING ? malloc(v->len + 1) : NULL;
    size_t n = 0;
    if (!copy)
        return NULL;
    if (!v->escaped) {
        memcpy(copy, v->text, v->len);
        n = v->len;
    } else {
        struct decoder d;
        decoder_init(&d, v->text, v->len, true);
        for (int c; (c = decode_next(&d)) >= 0;)
            copy[n++] = (char)c;
    }
    copy[n] = '\0';
    if (len)
        *len = n;
    return copy;
}

bool mp_jstring_equals(const struct mp_jvalue *v, const char *text)
{
    return v->type == MP_JSON_STRING &&
           compare_strings(v->text, v->len, v->escaped, text, strlen(text), false) == 0;
}

long long mp_jinteger(const struct mp_jvalue *v)
{
    char digits[24];
    if (v->type != MP_JSON_INTEGER || v->len >= sizeof(digits))
        return 0;
    memcpy(digits, v->text, v->len);
    digits[v->len] = '\0';
    return strtoll(digits, NULL, 10);
}

double mp_jreal(const struct mp_jvalue *v)
{
    char local[64], *copy = v->len < sizeof(local) ? local : malloc(v->len + 1);
    if (v->type != MP_JSON_REAL || !copy) {
        if (copy != local)
            free(copy);
        return 0;
    }
    memcpy(copy, v->text, v->len);
    copy[v->len] = '\0';
    double d = strtod(copy, NULL);
    if (copy != local)
        free(copy);
    return d;
}
