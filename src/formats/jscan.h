/* jscan.h - the strict single-pass JSON scanner under the safetensors header
 * and sharded-index readers (jscan.c). It accepts exactly the texts that
 * jansson's json_loadb accepts with JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL
 * (tests/fuzz/fuzz_st_diff.c holds it to that), builds no tree, and reads a
 * file through a bounded window: the readers pull the values they expect and
 * keep only what they need. Why: docs/formats/safetensors.md ("Parsing"). */
#ifndef TTSM_FORMATS_JSCAN_H
#define TTSM_FORMATS_JSCAN_H

#include <stdint.h>

#include "base/strbuf.h"
#include "formats/table.h"

/* The kinds of JSON value; names as ttsm__js_kind_name() gives them. */
typedef enum ttsm__js_kind {
    TTSM__JS_NONE = 0, /* nothing: the scan failed (see ttsm__js.st) */
    TTSM__JS_OBJECT,
    TTSM__JS_ARRAY,
    TTSM__JS_STRING,
    TTSM__JS_INTEGER,
    TTSM__JS_REAL,
    TTSM__JS_TRUE,
    TTSM__JS_FALSE,
    TTSM__JS_NULL
} ttsm__js_kind;

/* jansson's JSON_PARSER_MAX_DEPTH: a value nested deeper is refused. */
#define TTSM__JS_MAX_DEPTH 2048u

/* A set of object keys, for the duplicate rule (linear while small). */
typedef struct ttsm__js_keys {
    char *buf;          /* each key: u32 length, then its bytes */
    size_t len, cap, n;
    uint32_t *slot;     /* offset + 1 into buf, 0 = empty; once n > 8 */
    size_t nslot;
} ttsm__js_keys;

typedef struct ttsm__js {
    const unsigned char *p, *end; /* next byte; end of the bytes loaded */
    const unsigned char *base;    /* first byte loaded */
    uint64_t base_off;            /* text offset of base[0] */
    uint64_t len;                 /* length of the whole text */
    uint64_t msg_base;            /* added to text offsets in messages */
    const ttsm__file *f;          /* NULL when the whole text is in memory */
    uint64_t file_off;            /* where the text starts in f */
    unsigned char *win;           /* the window (file sources) */
    size_t win_cap;
    uint64_t utf8_ok;             /* text offset up to which UTF-8 was checked */
    const char *subject;          /* names the file in I/O and memory errors */
    ttsm_error *err;              /* receives I/O and memory errors */
    ttsm__sb str;                 /* scratch: the last string decoded */

    ttsm_status st;      /* TTSM_OK until the first failure */
    int failure;         /* TTSM__JS_F_*: what the failure was */
    uint64_t fail_off;   /* text offset of a UTF-8 or syntax failure */
    unsigned char bad_byte; /* the byte that breaks UTF-8 */
    char msg[200];       /* a syntax failure, without its offset */
} ttsm__js;

enum { TTSM__JS_F_NONE, TTSM__JS_F_UTF8, TTSM__JS_F_SYNTAX, TTSM__JS_F_DUPLICATE, TTSM__JS_F_OTHER };

/* Starts a scan of `len` bytes in memory, or of `len` bytes at `off` of `f`
 * (read with ttsm__file_read through a window of at most 64 KiB). Offsets in
 * messages are text offsets plus `msg_base`. On failure (I/O, memory, invalid
 * UTF-8 in the first window) j->st says why; ttsm__js_free is still due. */
void ttsm__js_init_mem(ttsm__js *j, const void *text, size_t len, uint64_t msg_base,
                       const char *subject, ttsm_error *err);
void ttsm__js_init_file(ttsm__js *j, const ttsm__file *f, uint64_t off, uint64_t len,
                        uint64_t msg_base, const char *subject, ttsm_error *err);
/* The same with a window of `window` bytes (0: the default; at least 16). */
void ttsm__js_init_window(ttsm__js *j, const ttsm__file *f, uint64_t off, uint64_t len,
                          uint64_t msg_base, const char *subject, ttsm_error *err,
                          size_t window);
void ttsm__js_free(ttsm__js *j);

/* Skips whitespace. @return the next byte (not consumed), -1 at the end of
 * the text, -2 once the scan has failed. */
int ttsm__js_peek(ttsm__js *j);
/* 1 when none of the 8 bytes at s is '"', '\\' or a control byte (the bytes a
 * string's plain run stops at). */
static inline int ttsm__js_plain8(const unsigned char *s)
{
    uint64_t v;
    __builtin_memcpy(&v, s, 8);
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
    uint64_t t = ((q - ones) & ~q) | ((b - ones) & ~b) | ((v - ones * 0x20) & ~v);
    return (t & high) == 0;
}

/* Consumes the byte ttsm__js_peek returned. */
static inline void ttsm__js_take(ttsm__js *j)
{
    j->p++;
}

/* Records a syntax failure at the current position (the first one wins).
 * @return TTSM__JS_NONE. */
ttsm__js_kind ttsm__js_fail(ttsm__js *j, int failure, const char *fmt, ...) TTSM__PRINTF(3, 4);

/* A string whose opening quote is the next byte: decoded into j->str
 * (NUL-terminated; its length is j->str.len). *has_nul tells whether it
 * holds a NUL (from \u0000). @return 0, or -1 after a failure. */
int ttsm__js_string(ttsm__js *j, int *has_nul);

/* An object key: a string without NUL, new in `keys` (NULL: no duplicate
 * check, the caller makes its own). Leaves the key in j->str. Then
 * ttsm__js_colon reads the ':' (after any duplicate check, as in jansson).
 * @return 0 or -1. */
int ttsm__js_key(ttsm__js *j, ttsm__js_keys *keys);
int ttsm__js_colon(ttsm__js *j);
void ttsm__js_keys_free(ttsm__js_keys *k);
/* 1 when added, 0 when already there, -1 when out of memory. */
int ttsm__js_keys_add(ttsm__js_keys *k, const char *key, size_t len);

/* After a member or element: consumes ',' (returns 1) or `close` (returns
 * 0); anything else is a syntax failure (-1). */
int ttsm__js_next(ttsm__js *j, int close);

/* Any value at nesting `depth` (the top-level value is 1), validated in
 * full. With `out`, its compact text is appended as json_dumpb(JSON_COMPACT
 * | JSON_ENCODE_ANY) writes it. An integer's value goes to *ival (when not
 * NULL). @return its kind, or TTSM__JS_NONE after a failure. */
ttsm__js_kind ttsm__js_value(ttsm__js *j, unsigned depth, ttsm__sb *out, int64_t *ival);

/* The end: only whitespace may follow the top-level value. */
void ttsm__js_end(ttsm__js *j);

/* The start of a document that must be an object: 1 with its '{' taken and
 * *top = TTSM__JS_OBJECT. 0 otherwise: an array is read to the end and its
 * kind put in *top (the caller names what it expected); anything else is a
 * failure, a UTF-8 byte order mark named as one, which starts `what` ("the
 * header", "the file"). */
int ttsm__js_open_top(ttsm__js *j, ttsm__js_kind *top, const char *what);

/* After a syntax failure, reads the rest of the text so that invalid UTF-8
 * anywhere in it is what gets reported (the readers check UTF-8 first). */
void ttsm__js_check_rest(ttsm__js *j);

/* Appends `s` (length n) as a JSON string literal, escaped as jansson's
 * dumper escapes it. */
void ttsm__js_quote(ttsm__sb *out, const char *s, size_t n);

/* "object", "array", "string", "integer", "real", "true", "false", "null". */
const char *ttsm__js_kind_name(ttsm__js_kind k);

#endif
