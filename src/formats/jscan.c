/* jscan.c - a strict single-pass JSON scanner (see jscan.h): the grammar,
 * limits and refusals of jansson's json_loadb with JSON_REJECT_DUPLICATES |
 * JSON_ALLOW_NUL, over a text in memory or a file read through a window, with
 * strict UTF-8 checked as each window is loaded. Nothing is built: values
 * are pulled by the caller or validated and dropped (or re-emitted compactly). */
#include "formats/jscan.h"

#include <errno.h>
#include <jansson.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/alloc.h"
#include "base/json.h"
#include "base/text.h"

/* Large enough that a refill is rare and cheap; small enough to stay in the
 * CPU's cache while it is scanned, and a constant in the reader's memory. */
#define WINDOW ((size_t)64 << 10)

/* ---- failures ---------------------------------------------------------- */

static uint64_t here(const ttsm__js *j)
{
    return j->base_off + (uint64_t)(j->p - j->base);
}

ttsm__js_kind ttsm__js_fail(ttsm__js *j, int failure, const char *fmt, ...)
{
    if (j->st != TTSM_OK)
        return TTSM__JS_NONE;
    j->st = TTSM_ERR_FORMAT;
    j->failure = failure;
    j->fail_off = here(j);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->msg, sizeof j->msg, fmt, ap);
    va_end(ap);
    return TTSM__JS_NONE;
}

static ttsm__js_kind js_oom(ttsm__js *j)
{
    if (j->st == TTSM_OK) {
        j->st = ttsm__err(j->err, TTSM_ERR_OUT_OF_MEMORY, j->subject, "out of memory",
                          "parsing JSON (%llu bytes)", (unsigned long long)j->len);
        j->failure = TTSM__JS_F_OTHER;
    }
    return TTSM__JS_NONE;
}

/* ---- the window -------------------------------------------------------- */

static int loaded_all(const ttsm__js *j)
{
    return j->base_off + (uint64_t)(j->end - j->base) >= j->len;
}

/* Checks the bytes loaded since the last check, but a sequence cut by the
 * window's end waits for the next window. Invalid UTF-8 is reported even
 * over a syntax failure found earlier: the readers check it first. */
static void check_utf8(ttsm__js *j)
{
    const unsigned char *s = j->base + (j->utf8_ok - j->base_off);
    size_t n = (size_t)(j->end - s);
    if (!loaded_all(j)) {
        size_t k = n, back = 0;
        while (k > 0 && back < 3 && (s[k - 1] & 0xc0) == 0x80) {
            k--;
            back++;
        }
        if (k > 0 && s[k - 1] >= 0xc0) {
            size_t need = s[k - 1] >= 0xf0 ? 4 : s[k - 1] >= 0xe0 ? 3 : 2;
            if (n - (k - 1) < need)
                n = k - 1;
        }
    }
    size_t bad = ttsm__utf8_check(s, n);
    if (bad < n) {
        if (j->failure == TTSM__JS_F_NONE || j->failure == TTSM__JS_F_SYNTAX ||
            j->failure == TTSM__JS_F_DUPLICATE) {
            j->st = TTSM_ERR_FORMAT;
            j->failure = TTSM__JS_F_UTF8;
            j->fail_off = j->utf8_ok + bad;
            j->bad_byte = s[bad];
        }
        return;
    }
    j->utf8_ok += n;
}

/* Loads more of the text, keeping the bytes from the current position on
 * (and any not yet UTF-8 checked). @return 1 when more bytes are there, 0 at
 * the end of the text, -1 after a failure. */
static int refill(ttsm__js *j, int draining)
{
    if (j->st != TTSM_OK && !draining)
        return -1;
    if (!j->f || loaded_all(j))
        return 0;
    uint64_t loaded = j->base_off + (uint64_t)(j->end - j->base);
    size_t from = (size_t)(j->p - j->base);
    size_t u = (size_t)(j->utf8_ok - j->base_off);
    if (u < from)
        from = u;
    size_t keep = (size_t)(j->end - j->base) - from;
    size_t pos = (size_t)(j->p - j->base) - from;
    if (keep)
        memmove(j->win, j->base + from, keep);
    j->base_off += from;
    j->base = j->win;
    j->p = j->win + pos;
    j->end = j->win + keep;
    uint64_t rest = j->len - loaded;
    size_t want = j->win_cap - keep;
    if (rest < want)
        want = (size_t)rest;
    ttsm_status st = ttsm__file_read(j->f, j->file_off + loaded, j->win + keep, want, j->err);
    if (st != TTSM_OK) {
        if (st == TTSM_ERR_FORMAT && j->err) /* the file shrank under us */
            j->err->code = st = TTSM_ERR_IO;
        j->st = st;
        j->failure = TTSM__JS_F_OTHER;
        return -1;
    }
    j->end += want;
    check_utf8(j);
    return j->st == TTSM_OK || draining ? 1 : -1;
}

/* At least `k` bytes from the current position, unless the text ends first.
 * @return 1, 0 (fewer are left), -1 after a failure. */
static int need(ttsm__js *j, size_t k)
{
    while ((size_t)(j->end - j->p) < k) {
        int r = refill(j, 0);
        if (r <= 0)
            return r;
    }
    return 1;
}

void ttsm__js_init_mem(ttsm__js *j, const void *text, size_t len, uint64_t msg_base,
                       const char *subject, ttsm_error *err)
{
    memset(j, 0, sizeof *j);
    j->base = j->p = text;
    j->end = j->base + len;
    j->len = len;
    j->msg_base = msg_base;
    j->subject = subject;
    j->err = err;
    check_utf8(j);
}

void ttsm__js_init_file(ttsm__js *j, const ttsm__file *f, uint64_t off, uint64_t len,
                        uint64_t msg_base, const char *subject, ttsm_error *err)
{
    ttsm__js_init_window(j, f, off, len, msg_base, subject, err, 0);
}

void ttsm__js_init_window(ttsm__js *j, const ttsm__file *f, uint64_t off, uint64_t len,
                          uint64_t msg_base, const char *subject, ttsm_error *err,
                          size_t window)
{
    if (window == 0)
        window = WINDOW;
    else if (window < 16) /* an escape needs 12 bytes at once, plus what is kept */
        window = 16;
    memset(j, 0, sizeof *j);
    j->len = len;
    j->msg_base = msg_base;
    j->subject = subject;
    j->err = err;
    j->f = f;
    j->file_off = off;
    j->win_cap = len < window ? (size_t)len : window;
    j->win = ttsm__malloc(j->win_cap ? j->win_cap : 1);
    j->base = j->p = j->end = j->win;
    if (!j->win) {
        j->f = NULL;
        js_oom(j);
        return;
    }
    refill(j, 0);
}

void ttsm__js_free(ttsm__js *j)
{
    ttsm__free(j->win);
    ttsm__sb_free(&j->str);
    j->win = NULL;
}

void ttsm__js_check_rest(ttsm__js *j)
{
    if (j->failure != TTSM__JS_F_SYNTAX && j->failure != TTSM__JS_F_DUPLICATE)
        return;
    while (j->failure != TTSM__JS_F_UTF8) {
        j->p = j->end;
        if (refill(j, 1) <= 0)
            break;
    }
}

/* ---- tokens ------------------------------------------------------------ */

int ttsm__js_peek(ttsm__js *j)
{
    for (;;) {
        const unsigned char *p = j->p, *e = j->end;
        while (p < e) {
            unsigned char c = *p;
            if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
                j->p = p;
                return c;
            }
            p++;
        }
        j->p = p;
        int r = refill(j, 0);
        if (r < 0)
            return -2;
        if (r == 0)
            return j->st == TTSM_OK ? -1 : -2;
    }
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static long hex4(const unsigned char *s)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(s[i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

static void put_utf8(ttsm__sb *out, unsigned long cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12);
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | cp >> 18);
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    ttsm__sb_add(out, u, n);
}

/* An escape at j->p (a backslash). @return 0 or -1. */
static int escape(ttsm__js *j, ttsm__sb *out, int *has_nul)
{
    int r = need(j, 2);
    if (r <= 0)
        return r < 0 ? -1 : (ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "premature end of input"), -1);
    static const char simple_in[] = "\"\\/bfnrt", simple_out[] = "\"\\/\b\f\n\r\t";
    unsigned char c = j->p[1];
    if (c != 'u') {
        const char *at = c ? strchr(simple_in, c) : NULL;
        if (!at) {
            j->p++;
            return ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "invalid escape"), -1;
        }
        char o = simple_out[at - simple_in];
        ttsm__sb_add(out, &o, 1);
        j->p += 2;
        return 0;
    }
    if ((r = need(j, 6)) <= 0 || hex4(j->p + 2) < 0) {
        if (r >= 0)
            j->p++;
        return r < 0 ? -1 : (ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "invalid escape"), -1);
    }
    unsigned long cp = (unsigned long)hex4(j->p + 2);
    if (cp >= 0xd800 && cp <= 0xdbff) {
        /* A high surrogate must be followed at once by a low one. */
        long lo = -1;
        if ((r = need(j, 12)) < 0)
            return -1;
        if (r > 0 && j->p[6] == '\\' && j->p[7] == 'u')
            lo = hex4(j->p + 8);
        if (lo < 0xdc00 || lo > 0xdfff)
            return ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "invalid Unicode '\\u%04lX'", cp), -1;
        cp = ((cp - 0xd800) << 10) + ((unsigned long)lo - 0xdc00) + 0x10000;
        j->p += 12;
    } else if (cp >= 0xdc00 && cp <= 0xdfff) {
        return ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "invalid Unicode '\\u%04lX'", cp), -1;
    } else {
        j->p += 6;
    }
    if (cp == 0)
        *has_nul = 1;
    put_utf8(out, cp);
    return 0;
}

int ttsm__js_string(ttsm__js *j, int *has_nul)
{
    ttsm__sb *out = &j->str;
    out->len = 0;
    *has_nul = 0;
    j->p++; /* the opening quote */
    for (;;) {
        const unsigned char *s = j->p, *e = j->end, *q = s;
        while (e - q >= 8 && ttsm__js_plain8(q))
            q += 8;
        while (q < e && *q != '"' && *q != '\\' && *q >= 0x20)
            q++;
        if (q > s)
            ttsm__sb_add(out, (const char *)s, (size_t)(q - s));
        j->p = q;
        if (q == e) {
            int r = refill(j, 0);
            if (r < 0)
                return -1;
            if (r == 0)
                return ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "premature end of input in a string"),
                       -1;
            continue;
        }
        if (*q == '"') {
            j->p++;
            if (out->len == 0)
                ttsm__sb_add(out, "", 0);
            if (out->failed)
                return js_oom(j), -1;
            return 0;
        }
        if (*q < 0x20)
            return ttsm__js_fail(j, TTSM__JS_F_SYNTAX,
                                 *q == '\n' ? "unexpected newline in a string"
                                            : "control character 0x%x in a string",
                                 *q),
                   -1;
        if (escape(j, out, has_nul) != 0)
            return -1;
    }
}

/* ---- keys -------------------------------------------------------------- */

void ttsm__js_keys_free(ttsm__js_keys *k)
{
    ttsm__free(k->buf);
    ttsm__free(k->slot);
    memset(k, 0, sizeof *k);
}

static int key_eq(const ttsm__js_keys *k, size_t off, const char *key, size_t len)
{
    uint32_t l;
    memcpy(&l, k->buf + off, 4);
    return l == len && memcmp(k->buf + off + 4, key, len) == 0;
}

static int keys_index(ttsm__js_keys *k, size_t nslot)
{
    uint32_t *s = ttsm__calloc(nslot, sizeof *s);
    if (!s)
        return -1;
    size_t mask = nslot - 1;
    for (size_t off = 0; off < k->len;) {
        uint32_t l;
        memcpy(&l, k->buf + off, 4);
        size_t i = (size_t)XXH3_64bits(k->buf + off + 4, l) & mask;
        while (s[i])
            i = (i + 1) & mask;
        s[i] = (uint32_t)off + 1;
        off += 4 + (size_t)l;
    }
    ttsm__free(k->slot);
    k->slot = s;
    k->nslot = nslot;
    return 0;
}

int ttsm__js_keys_add(ttsm__js_keys *k, const char *key, size_t len)
{
    size_t slot = 0;
    if (!k->slot) {
        for (size_t off = 0; off < k->len;) {
            if (key_eq(k, off, key, len))
                return 0;
            uint32_t l;
            memcpy(&l, k->buf + off, 4);
            off += 4 + (size_t)l;
        }
    } else {
        size_t mask = k->nslot - 1;
        slot = (size_t)XXH3_64bits(key, len) & mask;
        for (; k->slot[slot]; slot = (slot + 1) & mask)
            if (key_eq(k, k->slot[slot] - 1, key, len))
                return 0;
    }
    if (len > UINT32_MAX || k->len + 4 + len > UINT32_MAX - 1)
        return -1;
    size_t off = k->len;
    if (ttsm__grow((void **)&k->buf, &k->cap, off + 4 + len, 1, (size_t)UINT32_MAX) != 0)
        return -1;
    uint32_t l = (uint32_t)len;
    memcpy(k->buf + off, &l, 4);
    memcpy(k->buf + off + 4, key, len);
    k->len += 4 + len;
    k->n++;
    if (k->slot && k->n * 2 <= k->nslot) {
        k->slot[slot] = (uint32_t)off + 1;
        return 1;
    }
    if (k->n > 8) { /* first index, or a bigger one */
        size_t nslot = k->nslot ? k->nslot * 2 : 32;
        while (k->n * 2 > nslot)
            nslot *= 2;
        if (keys_index(k, nslot) != 0) {
            k->len = off;
            k->n--;
            return -1;
        }
    }
    return 1;
}

int ttsm__js_key(ttsm__js *j, ttsm__js_keys *keys)
{
    int c = ttsm__js_peek(j);
    if (c != '"') {
        if (c != -2)
            ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "string or '}' expected");
        return -1;
    }
    int nul;
    if (ttsm__js_string(j, &nul) != 0)
        return -1;
    if (nul)
        return ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "NUL byte in object key not supported"), -1;
    if (keys) {
        int r = ttsm__js_keys_add(keys, j->str.p, j->str.len);
        if (r < 0)
            return js_oom(j), -1;
        if (r == 0) {
            char shown[64];
            ttsm__printable(j->str.p, j->str.len, shown, sizeof shown);
            return ttsm__js_fail(j, TTSM__JS_F_DUPLICATE, "duplicate object key near '\"%s\"'",
                                 shown),
                   -1;
        }
    }
    return 0;
}

int ttsm__js_colon(ttsm__js *j)
{
    int c = ttsm__js_peek(j);
    if (c != ':') {
        if (c != -2)
            ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "':' expected");
        return -1;
    }
    ttsm__js_take(j);
    return 0;
}

int ttsm__js_next(ttsm__js *j, int close)
{
    int c = ttsm__js_peek(j);
    if (c == ',') {
        ttsm__js_take(j);
        return 1;
    }
    if (c == close) {
        ttsm__js_take(j);
        return 0;
    }
    if (c != -2)
        ttsm__js_fail(j, TTSM__JS_F_SYNTAX, close == '}' ? "'}' expected" : "']' expected");
    return -1;
}

/* ---- values ------------------------------------------------------------ */

void ttsm__js_quote(ttsm__sb *out, const char *s, size_t n)
{
    ttsm__sb_add(out, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        ttsm__sb_add(out, s + run, i - run);
        run = i + 1;
        char e[8];
        switch (c) {
        case '"': ttsm__sb_add(out, "\\\"", 2); break;
        case '\\': ttsm__sb_add(out, "\\\\", 2); break;
        case '\b': ttsm__sb_add(out, "\\b", 2); break;
        case '\f': ttsm__sb_add(out, "\\f", 2); break;
        case '\n': ttsm__sb_add(out, "\\n", 2); break;
        case '\r': ttsm__sb_add(out, "\\r", 2); break;
        case '\t': ttsm__sb_add(out, "\\t", 2); break;
        default:
            snprintf(e, sizeof e, "\\u%04X", c);
            ttsm__sb_add(out, e, 6);
        }
    }
    ttsm__sb_add(out, s + run, n - run);
    ttsm__sb_add(out, "\"", 1);
}

static int numchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

static int digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* The number in t[0..n), the longest run of number characters: its grammar
 * is jansson's (a shorter valid prefix would leave an invalid token after it
 * anyway). */
static ttsm__js_kind number_text(ttsm__js *j, const unsigned char *t, size_t n, ttsm__sb *out,
                                 int64_t *ival)
{
    size_t i = 0;
    int neg = 0;
    if (t[0] == '-') {
        neg = 1;
        i++;
    }
    if (i < n && t[i] == '0') {
        i++;
        if (i < n && digit(t[i]))
            return ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "invalid token (leading zero)");
    } else if (i < n && digit(t[i])) {
        while (i < n && digit(t[i]))
            i++;
    } else {
        return ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "invalid token");
    }
    if (i == n) { /* an integer: strtoll's range */
        uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        for (size_t k = (size_t)neg; k < n; k++) {
            uint64_t d = (uint64_t)(t[k] - '0');
            if (v > (lim - d) / 10)
                return ttsm__js_fail(j, TTSM__JS_F_SYNTAX, neg ? "too big negative integer"
                                                               : "too big integer");
            v = v * 10 + d;
        }
        int64_t s = neg ? (int64_t)(0 - v) : (int64_t)v;
        if (ival)
            *ival = s;
        if (out) {
            char b[24];
            int len = snprintf(b, sizeof b, "%lld", (long long)s);
            ttsm__sb_add(out, b, (size_t)len);
        }
        return TTSM__JS_INTEGER;
    }
    if (t[i] == '.') {
        i++;
        if (i >= n || !digit(t[i]))
            return ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "invalid token");
        while (i < n && digit(t[i]))
            i++;
    }
    if (i < n && (t[i] == 'e' || t[i] == 'E')) {
        i++;
        if (i < n && (t[i] == '+' || t[i] == '-'))
            i++;
        if (i >= n || !digit(t[i]))
            return ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "invalid token");
        while (i < n && digit(t[i]))
            i++;
    }
    if (i != n)
        return ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "invalid token");
    /* A real: strtod decides about overflow, as in jansson, in the
     * current locale's spelling of the decimal point. */
    char small[64], *txt = n < sizeof small ? small : ttsm__malloc(n + 1);
    if (!txt)
        return js_oom(j);
    memcpy(txt, t, n);
    txt[n] = '\0';
    const char *point = localeconv()->decimal_point;
    if (point && point[0] != '.' && point[0]) {
        char *dot = strchr(txt, '.');
        if (dot)
            *dot = point[0];
    }
    errno = 0;
    double v = strtod(txt, NULL);
    int over = (v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE;
    if (txt != small)
        ttsm__free(txt);
    if (over)
        return ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "real number overflow");
    if (out) { /* jansson's own spelling of a real */
        json_t *r = json_real(v);
        char *s = r ? ttsm__json_text(r) : NULL;
        json_decref(r);
        if (!s)
            return js_oom(j);
        ttsm__sb_adds(out, s);
        ttsm__free(s);
    }
    return TTSM__JS_REAL;
}

/* jansson reads one byte past a number or a literal and puts it back; a NUL
 * byte put back is lost (its one-character buffer takes NUL for "empty"),
 * so jansson skips one NUL right after such a token. Accepting exactly what
 * it accepts means skipping it too. */
static ttsm__js_kind after_token(ttsm__js *j, ttsm__js_kind k)
{
    if (k && need(j, 1) > 0 && *j->p == 0)
        j->p++;
    return k;
}

static ttsm__js_kind number(ttsm__js *j, ttsm__sb *out, int64_t *ival)
{
    const unsigned char *s = j->p, *e = j->end, *q = s;
    while (q < e && numchar(*q))
        q++;
    if (q < e || loaded_all(j)) {
        j->p = q;
        return after_token(j, number_text(j, s, (size_t)(q - s), out, ival));
    }
    /* The number runs past the window: collect it. */
    ttsm__sb t = {0};
    for (;;) {
        ttsm__sb_add(&t, (const char *)s, (size_t)(q - s));
        j->p = q;
        if (q < e)
            break;
        int r = refill(j, 0);
        if (r < 0) {
            ttsm__sb_free(&t);
            return TTSM__JS_NONE;
        }
        if (r == 0)
            break;
        s = q = j->p;
        e = j->end;
        while (q < e && numchar(*q))
            q++;
    }
    ttsm__js_kind k = t.failed ? js_oom(j)
                               : number_text(j, (const unsigned char *)t.p, t.len, out, ival);
    ttsm__sb_free(&t);
    return after_token(j, k);
}

static ttsm__js_kind literal(ttsm__js *j, ttsm__sb *out)
{
    int r = need(j, 6);
    if (r < 0)
        return TTSM__JS_NONE;
    size_t avail = (size_t)(j->end - j->p), m = 0;
    while (m < avail && m < 6 &&
           ((j->p[m] >= 'a' && j->p[m] <= 'z') || (j->p[m] >= 'A' && j->p[m] <= 'Z')))
        m++;
    static const struct {
        const char *s;
        ttsm__js_kind k;
    } lits[] = {{"true", TTSM__JS_TRUE}, {"false", TTSM__JS_FALSE}, {"null", TTSM__JS_NULL}};
    for (int i = 0; i < 3; i++) {
        size_t l = strlen(lits[i].s);
        if (m == l && memcmp(j->p, lits[i].s, l) == 0) {
            j->p += l;
            if (out)
                ttsm__sb_add(out, lits[i].s, l);
            return after_token(j, lits[i].k);
        }
    }
    return ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "invalid token");
}

static ttsm__js_kind object(ttsm__js *j, unsigned depth, ttsm__sb *out)
{
    ttsm__js_keys keys = {0};
    ttsm__js_take(j);
    if (out)
        ttsm__sb_add(out, "{", 1);
    int c = ttsm__js_peek(j);
    if (c == '}') {
        ttsm__js_take(j);
    } else {
        for (;;) {
            if (ttsm__js_key(j, &keys) != 0 || ttsm__js_colon(j) != 0)
                goto fail;
            if (out) {
                ttsm__js_quote(out, j->str.p, j->str.len);
                ttsm__sb_add(out, ":", 1);
            }
            if (!ttsm__js_value(j, depth + 1, out, NULL))
                goto fail;
            int r = ttsm__js_next(j, '}');
            if (r < 0)
                goto fail;
            if (r == 0)
                break;
            if (out)
                ttsm__sb_add(out, ",", 1);
        }
    }
    ttsm__js_keys_free(&keys);
    if (out)
        ttsm__sb_add(out, "}", 1);
    return TTSM__JS_OBJECT;
fail:
    ttsm__js_keys_free(&keys);
    return TTSM__JS_NONE;
}

static ttsm__js_kind array(ttsm__js *j, unsigned depth, ttsm__sb *out)
{
    ttsm__js_take(j);
    if (out)
        ttsm__sb_add(out, "[", 1);
    int c = ttsm__js_peek(j);
    if (c == ']') {
        ttsm__js_take(j);
    } else {
        for (;;) {
            if (!ttsm__js_value(j, depth + 1, out, NULL))
                return TTSM__JS_NONE;
            int r = ttsm__js_next(j, ']');
            if (r < 0)
                return TTSM__JS_NONE;
            if (r == 0)
                break;
            if (out)
                ttsm__sb_add(out, ",", 1);
        }
    }
    if (out)
        ttsm__sb_add(out, "]", 1);
    return TTSM__JS_ARRAY;
}

ttsm__js_kind ttsm__js_value(ttsm__js *j, unsigned depth, ttsm__sb *out, int64_t *ival)
{
    int c = ttsm__js_peek(j);
    if (c == -2)
        return TTSM__JS_NONE;
    if (depth > TTSM__JS_MAX_DEPTH)
        return ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "maximum parsing depth reached");
    ttsm__js_kind k;
    switch (c) {
    case '{': k = object(j, depth, out); break;
    case '[': k = array(j, depth, out); break;
    case '"': {
        int nul;
        if (ttsm__js_string(j, &nul) != 0)
            return TTSM__JS_NONE;
        if (out)
            ttsm__js_quote(out, j->str.p, j->str.len);
        k = TTSM__JS_STRING;
        break;
    }
    case -1: return ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "premature end of input");
    default:
        if (c == '-' || digit((unsigned char)c))
            k = number(j, out, ival);
        else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            k = literal(j, out);
        else if (c == 0xef)
            k = ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "invalid token (a UTF-8 byte order mark?)");
        else if (c == ']' || c == '}' || c == ',' || c == ':')
            k = ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "unexpected token near '%c'", c);
        else
            k = ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "invalid token");
    }
    if (out && out->failed)
        return js_oom(j);
    return k;
}

void ttsm__js_end(ttsm__js *j)
{
    int c = ttsm__js_peek(j);
    if (c >= 0)
        ttsm__js_fail(j, TTSM__JS_F_SYNTAX, c == 0 ? "end of file expected (a NUL byte)"
                                                   : "end of file expected");
}

int ttsm__js_open_top(ttsm__js *j, ttsm__js_kind *top, const char *what)
{
    int c = ttsm__js_peek(j);
    if (c == '[') {
        *top = ttsm__js_value(j, 1, NULL, NULL);
        ttsm__js_end(j);
        return 0;
    }
    if (c != '{') {
        if (c == 0xef)
            ttsm__js_fail(j, TTSM__JS_F_SYNTAX,
                          "a UTF-8 byte order mark (BOM: EF BB BF), which JSON does not allow: "
                          "save the file without it; it starts %s",
                          what);
        else if (c != -2)
            ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "'[' or '{' expected");
        return 0;
    }
    *top = TTSM__JS_OBJECT;
    ttsm__js_take(j);
    return 1;
}

const char *ttsm__js_kind_name(ttsm__js_kind k)
{
    switch (k) {
    case TTSM__JS_OBJECT: return "object";
    case TTSM__JS_ARRAY: return "array";
    case TTSM__JS_STRING: return "string";
    case TTSM__JS_INTEGER: return "integer";
    case TTSM__JS_REAL: return "real";
    case TTSM__JS_TRUE: return "true";
    case TTSM__JS_FALSE: return "false";
    case TTSM__JS_NULL: return "null";
    case TTSM__JS_NONE: break;
    }
    return "value";
}
