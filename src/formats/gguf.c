/* gguf.c - strict reader for GGUF v2/v3 files (llama.cpp / ggml models).
 * It walks the header, the key/values and the tensor infos through a buffered
 * window over ttsm__file_read, checks every count, length, type and offset
 * against the file and a cap, and hands the core one storage per tensor plus
 * every key/value as JSON text. Rules and their messages: docs/formats/gguf.md.
 *
 * On-disk layout (all little-endian; "str" is a u64 byte length + UTF-8 bytes):
 *
 *   0   "GGUF"          magic
 *   4   u32 version     2 or 3 (v1 used u32 counts and lengths: rejected)
 *   8   u64 n_tensors
 *   16  u64 n_kv
 *   24  n_kv x { str key; u32 value_type; value }
 *         value: u8 i8 u16 i16 u32 i32 f32 bool(u8) str u64 i64 f64, or
 *         array = { u32 element_type; u64 n; n x value } (arrays may nest)
 *       n_tensors x { str name; u32 n_dims; u64 ne[n_dims]; u32 ggml_type;
 *                     u64 offset }   (ne innermost first; offset from data start)
 *       padding to `general.alignment` (u32, default 32)
 *       data section: tensor bytes at data_start + offset
 */
#include "formats/gguf.h"
#include "formats/table.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/alloc.h"
#include "base/text.h"

#define GGUF_HEADER_BYTES 24u
#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_DIMS 4u
/* Smallest possible encodings, used to bound the header counts by the file
 * size before anything is allocated: a key/value is a key length (8), a key
 * of at least one byte, a type (4) and a value of at least one byte; a tensor
 * info is a name length (8), a name of at least one byte, n_dims (4), a type
 * (4) and an offset (8). */
#define GGUF_MIN_KV_BYTES 14u
#define GGUF_MIN_TENSOR_INFO_BYTES 25u
/* Caps on what one file may make us hold. Real files stay far below them:
 * the largest vocabularies have ~260k tokens, chat templates are tens of KB. */
#define GGUF_MAX_STRING (64u << 20)  /* bytes in one string value */
#define GGUF_MAX_ARRAY (1u << 24)    /* elements in one array */
#define GGUF_MAX_DEPTH 8u            /* nested arrays */
#define GGUF_WINDOW (64u << 10)      /* bytes read from the file at a time */
#define GGUF_TYPE_STR_MAX 128        /* "array[" x depth + scalar name + "]" x depth */
#define GGUF_TAKE_JSON (64u << 10)   /* values at least this long are handed over, not copied */

/* GGUF key/value types, as numbered in the file. */
enum {
    GV_U8, GV_I8, GV_U16, GV_I16, GV_U32, GV_I32, GV_F32, GV_BOOL,
    GV_STR, GV_ARRAY, GV_U64, GV_I64, GV_F64, GV_COUNT
};
static const struct {
    const char *name;
    unsigned size; /* bytes of a scalar; the smallest encoding for str and array */
} vtypes[GV_COUNT] = {
    [GV_U8] = {"u8", 1},     [GV_I8] = {"i8", 1},     [GV_U16] = {"u16", 2},
    [GV_I16] = {"i16", 2},   [GV_U32] = {"u32", 4},   [GV_I32] = {"i32", 4},
    [GV_F32] = {"f32", 4},   [GV_BOOL] = {"bool", 1}, [GV_STR] = {"str", 8},
    [GV_ARRAY] = {"array", 12}, [GV_U64] = {"u64", 8}, [GV_I64] = {"i64", 8},
    [GV_F64] = {"f64", 8},
};

/* ggml_type ids (ggml.h, enum ggml_type) -> ttsm dtypes. Holes are ids ggml
 * removed (named in `removed_types`) or never had. */
static const ttsm_dtype ggml_types[] = {
    [0] = TTSM_DTYPE_F32,      [1] = TTSM_DTYPE_F16,      [2] = TTSM_DTYPE_Q4_0,
    [3] = TTSM_DTYPE_Q4_1,     [6] = TTSM_DTYPE_Q5_0,     [7] = TTSM_DTYPE_Q5_1,
    [8] = TTSM_DTYPE_Q8_0,     [9] = TTSM_DTYPE_Q8_1,     [10] = TTSM_DTYPE_Q2_K,
    [11] = TTSM_DTYPE_Q3_K,    [12] = TTSM_DTYPE_Q4_K,    [13] = TTSM_DTYPE_Q5_K,
    [14] = TTSM_DTYPE_Q6_K,    [15] = TTSM_DTYPE_Q8_K,    [16] = TTSM_DTYPE_IQ2_XXS,
    [17] = TTSM_DTYPE_IQ2_XS,  [18] = TTSM_DTYPE_IQ3_XXS, [19] = TTSM_DTYPE_IQ1_S,
    [20] = TTSM_DTYPE_IQ4_NL,  [21] = TTSM_DTYPE_IQ3_S,   [22] = TTSM_DTYPE_IQ2_S,
    [23] = TTSM_DTYPE_IQ4_XS,  [24] = TTSM_DTYPE_I8,      [25] = TTSM_DTYPE_I16,
    [26] = TTSM_DTYPE_I32,     [27] = TTSM_DTYPE_I64,     [28] = TTSM_DTYPE_F64,
    [29] = TTSM_DTYPE_IQ1_M,   [30] = TTSM_DTYPE_BF16,    [34] = TTSM_DTYPE_TQ1_0,
    [35] = TTSM_DTYPE_TQ2_0,   [39] = TTSM_DTYPE_MXFP4,   [40] = TTSM_DTYPE_NVFP4,
    [41] = TTSM_DTYPE_Q1_0,    [42] = TTSM_DTYPE_Q2_0,
};
#define N_GGML_TYPES (sizeof ggml_types / sizeof ggml_types[0])

static const char *removed_type(uint32_t id)
{
    switch (id) {
    case 4: return "Q4_2";
    case 5: return "Q4_3";
    case 31: return "Q4_0_4_4";
    case 32: return "Q4_0_4_8";
    case 33: return "Q4_0_8_8";
    case 36: return "IQ4_NL_4_4";
    case 37: return "IQ4_NL_4_8";
    case 38: return "IQ4_NL_8_8";
    default: return NULL;
    }
}

/* What pass 1 learns about one tensor; pass 2 hands it to the core. */
typedef struct tinfo {
    uint64_t info_off;   /* where its tensor info starts (for messages) */
    uint64_t offset;     /* from the start of the data section */
    uint64_t nbytes;
    size_t name_at;      /* into names[] */
    uint32_t name_len;
    uint32_t rank;
    ttsm_dtype dtype;
    int64_t shape[GGUF_MAX_DIMS]; /* row-major: outermost first */
} tinfo;

typedef struct rd {
    ttsm_checkpoint *ck;
    const ttsm__file *f;
    ttsm_error *err;
    uint64_t pos;        /* next unread byte */
    uint8_t *win;        /* file bytes [win_off, win_off + win_len) */
    size_t win_len, win_cap;
    uint64_t win_off;
    char *json;          /* the value being converted */
    size_t json_len, json_cap;
    char *key;           /* the current key, NUL-terminated */
    size_t key_cap;
    uint64_t kv_off;     /* where the current key/value starts */
    uint32_t *keyset;    /* open addressing over ck->meta; UINT32_MAX = empty */
    size_t keyset_cap;
    ttsm_status st;      /* the failure, also when err is NULL */
    /* Where the reader is, for messages, formatted only when one is needed:
     * CTX_KEY_NAME (key ctx_index's name), CTX_KEY (its value: "key 'x' at
     * offset N: "), CTX_TENSOR ("tensor N at offset M: "). */
    int ctx_kind;
    uint64_t ctx_index, ctx_off;
    char ctx[256];
} rd;

enum { CTX_NONE, CTX_KEY_NAME, CTX_KEY, CTX_TENSOR };

/* ---- errors ------------------------------------------------------------ */

#define FAIL(r, what, ...)                                                                 \
    ((r)->st = ttsm__err((r)->err, TTSM_ERR_FORMAT, (r)->f->path, what, __VA_ARGS__))
#define OOM(r, doing)                                                                      \
    ((r)->st = ttsm__err((r)->err, TTSM_ERR_OUT_OF_MEMORY, (r)->f->path, "out of memory", \
                         "%s", doing))

static unsigned long long ull(uint64_t v)
{
    return (unsigned long long)v;
}

/* ---- reading ----------------------------------------------------------- */

static const char *ctx_of(rd *r)
{
    if (r->ctx_kind == CTX_KEY)
        snprintf(r->ctx, sizeof r->ctx, "key '%.200s' at offset %llu: ", r->key, ull(r->ctx_off));
    else if (r->ctx_kind == CTX_TENSOR)
        snprintf(r->ctx, sizeof r->ctx, "tensor %llu at offset %llu: ", ull(r->ctx_index),
                 ull(r->ctx_off));
    else
        r->ctx[0] = '\0';
    return r->ctx;
}

/* `what`, or (NULL) the name being read: "key N" or "tensor N name". */
static const char *what_of(const rd *r, const char *what, char *buf, size_t n)
{
    if (what)
        return what;
    snprintf(buf, n, r->ctx_kind == CTX_TENSOR ? "tensor %llu name" : "key %llu",
             ull(r->ctx_index));
    return buf;
}

/* Returns `n` bytes at r->pos (valid until the next call) and moves past
 * them, or NULL with a "truncated" error naming `what` and the offset. */
static const uint8_t *take(rd *r, size_t n, const char *what)
{
    uint64_t left = r->f->size - r->pos;
    if (n > left) {
        char wb[64];
        FAIL(r, "truncated", "%s%s needs %zu bytes at offset %llu, the file has %llu", ctx_of(r),
             what_of(r, what, wb, sizeof wb), n, ull(r->pos), ull(r->f->size));
        return NULL;
    }
    if (n == 0)
        return (const uint8_t *)"";
    if (r->pos < r->win_off || r->pos - r->win_off > r->win_len ||
        n > r->win_len - (r->pos - r->win_off)) {
        size_t want = n > GGUF_WINDOW ? n : GGUF_WINDOW;
        if (want > left)
            want = (size_t)left;
        if (want > r->win_cap) {
            uint8_t *w = ttsm__realloc(r->win, want);
            if (!w) {
                OOM(r, "reading the GGUF header");
                return NULL;
            }
            r->win = w;
            r->win_cap = want;
        }
        r->win_len = 0;
        if ((r->st = ttsm__file_read(r->f, r->pos, r->win, want, r->err)) != TTSM_OK)
            return NULL;
        r->win_off = r->pos;
        r->win_len = want;
    }
    const uint8_t *p = r->win + (r->pos - r->win_off);
    r->pos += n;
    return p;
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static int get_u32(rd *r, uint32_t *v, const char *what)
{
    const uint8_t *p = take(r, 4, what);
    if (!p)
        return -1;
    *v = le32(p);
    return 0;
}
static int get_u64(rd *r, uint64_t *v, const char *what)
{
    const uint8_t *p = take(r, 8, what);
    if (!p)
        return -1;
    *v = le64(p);
    return 0;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past
 * U+10FFFF. @return 1 when valid. */
static int utf8_valid(const uint8_t *s, size_t n)
{
    return ttsm__utf8_check(s, n) == n;
}

/* Reads a string length at r->pos and checks it against the cap and what is
 * left of the file. `what` names the string in messages. */
static int get_len(rd *r, uint64_t *len, uint64_t cap, const char *what)
{
    uint64_t at = r->pos;
    char wb[64];
    if (get_u64(r, len, what) != 0)
        return -1;
    if (*len > cap) {
        FAIL(r, "string too long", "%s at offset %llu has length %llu, over the cap of %llu",
             what_of(r, what, wb, sizeof wb), ull(at), ull(*len), ull(cap));
        return -1;
    }
    if (*len > r->f->size - r->pos) {
        FAIL(r, "string too long",
             "%s at offset %llu has length %llu, past the %llu bytes left in the file",
             what_of(r, what, wb, sizeof wb), ull(at), ull(*len), ull(r->f->size - r->pos));
        return -1;
    }
    return 0;
}

/* ---- JSON output ------------------------------------------------------- */

static int jreserve(rd *r, size_t more)
{
    if (more <= r->json_cap - r->json_len)
        return 0;
    size_t need;
    if (__builtin_add_overflow(r->json_len, more, &need) || need > SIZE_MAX / 2)
        return -1;
    size_t cap = r->json_cap ? r->json_cap : 256;
    while (cap < need)
        cap *= 2;
    char *n = ttsm__realloc(r->json, cap);
    if (!n)
        return -1;
    r->json = n;
    r->json_cap = cap;
    return 0;
}

static int jput(rd *r, const char *s, size_t n)
{
    if (jreserve(r, n) != 0)
        return -1;
    memcpy(r->json + r->json_len, s, n);
    r->json_len += n;
    return 0;
}

static int jputc(rd *r, char c)
{
    return jput(r, &c, 1);
}

static int jput_u64(rd *r, uint64_t v)
{
    char buf[24];
    size_t i = sizeof buf;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return jput(r, buf + i, sizeof buf - i);
}

static int jput_i64(rd *r, int64_t v)
{
    if (v >= 0)
        return jput_u64(r, (uint64_t)v);
    if (jputc(r, '-') != 0)
        return -1;
    return jput_u64(r, (uint64_t)0 - (uint64_t)v);
}

/* JSON has no unsigned 64-bit type and common readers (jansson among them)
 * refuse integers past INT64_MAX, so those are written as decimal strings. */
static int jput_u64_value(rd *r, uint64_t v)
{
    if (v <= (uint64_t)INT64_MAX)
        return jput_u64(r, v);
    return jputc(r, '"') || jput_u64(r, v) || jputc(r, '"') ? -1 : 0;
}

/* Floats: the shortest of two precisions that reads back to the same value;
 * NaN and the infinities, which JSON cannot hold, become the strings "NaN",
 * "Infinity" and "-Infinity". */
static int jput_float(rd *r, double v, int is_f32)
{
    if (isnan(v))
        return jput(r, "\"NaN\"", 5);
    if (isinf(v))
        return v > 0 ? jput(r, "\"Infinity\"", 10) : jput(r, "\"-Infinity\"", 11);
    char buf[40];
    int n;
    if (is_f32) {
        n = snprintf(buf, sizeof buf, "%.6g", v);
        if (strtof(buf, NULL) != (float)v)
            n = snprintf(buf, sizeof buf, "%.9g", v);
    } else {
        n = snprintf(buf, sizeof buf, "%.15g", v);
        if (strtod(buf, NULL) != v)
            n = snprintf(buf, sizeof buf, "%.17g", v);
    }
    if (n <= 0 || (size_t)n >= sizeof buf - 2)
        return -1;
    int has_point = 0;
    for (int i = 0; i < n; i++) {
        /* A host program may have set a locale whose decimal point is ','. */
        if (buf[i] == ',')
            buf[i] = '.';
        if (buf[i] == '.' || buf[i] == 'e')
            has_point = 1;
    }
    if (!has_point) { /* keep it a float for readers that tell 1 from 1.0 */
        buf[n++] = '.';
        buf[n++] = '0';
    }
    return jput(r, buf, (size_t)n);
}

static int jput_string(rd *r, const uint8_t *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (jreserve(r, n + 2) != 0 || jputc(r, '"') != 0)
        return -1;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if (jput(r, (const char *)s + run, i - run) != 0)
            return -1;
        run = i + 1;
        char e[6] = {'\\', 0, 0, 0, 0, 0};
        size_t el = 2;
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        default:
            e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[c >> 4], e[5] = hex[c & 15];
            el = 6;
        }
        if (jput(r, e, el) != 0)
            return -1;
    }
    if (jput(r, (const char *)s + run, n - run) != 0)
        return -1;
    return jputc(r, '"');
}

/* ---- values ------------------------------------------------------------ */

static int out_of_memory(rd *r)
{
    OOM(r, "converting metadata to JSON");
    return -1;
}

static int scalar_json(rd *r, uint32_t t, const uint8_t *p)
{
    switch (t) {
    case GV_U8: return jput_u64(r, p[0]);
    case GV_I8: return jput_i64(r, (int8_t)p[0]);
    case GV_U16: return jput_u64(r, le16(p));
    case GV_I16: return jput_i64(r, (int16_t)le16(p));
    case GV_U32: return jput_u64(r, le32(p));
    case GV_I32: return jput_i64(r, (int32_t)le32(p));
    case GV_U64: return jput_u64_value(r, le64(p));
    case GV_I64: return jput_i64(r, (int64_t)le64(p));
    case GV_BOOL: return p[0] ? jput(r, "true", 4) : jput(r, "false", 5);
    case GV_F32: {
        uint32_t b = le32(p);
        float f;
        memcpy(&f, &b, sizeof f);
        return jput_float(r, f, 1);
    }
    case GV_F64: {
        uint64_t b = le64(p);
        double d;
        memcpy(&d, &b, sizeof d);
        return jput_float(r, d, 0);
    }
    default: return -1;
    }
}

/* Reads `n` scalars of type `t`, in window-sized chunks so a long array never
 * needs one big buffer. */
static int scalars(rd *r, uint32_t t, uint64_t n, int in_array)
{
    unsigned size = vtypes[t].size;
    uint64_t per = GGUF_WINDOW / size;
    uint64_t done = 0;
    while (done < n) {
        uint64_t k = n - done < per ? n - done : per;
        uint64_t at = r->pos;
        const uint8_t *p = take(r, (size_t)(k * size), "a value");
        if (!p)
            return -1;
        for (uint64_t i = 0; i < k; i++, p += size) {
            if (t == GV_BOOL && p[0] > 1) {
                FAIL(r, "bad bool", "key '%.200s' at offset %llu: byte %u at offset %llu is "
                     "neither 0 nor 1", r->key, ull(r->kv_off), p[0], ull(at + i));
                return -1;
            }
            if ((in_array && (done + i > 0) && jputc(r, ',') != 0) || scalar_json(r, t, p) != 0)
                return out_of_memory(r);
        }
        done += k;
    }
    return 0;
}

static int string_value(rd *r)
{
    uint64_t len;
    if (get_len(r, &len, GGUF_MAX_STRING, "a string value") != 0)
        return -1;
    uint64_t at = r->pos;
    const uint8_t *s = take(r, (size_t)len, "a string value");
    if (!s)
        return -1;
    if (!utf8_valid(s, (size_t)len)) {
        FAIL(r, "bad utf-8", "key '%.200s' at offset %llu: the string at offset %llu is not "
             "valid UTF-8", r->key, ull(r->kv_off), ull(at));
        return -1;
    }
    return jput_string(r, s, (size_t)len) != 0 ? out_of_memory(r) : 0;
}

/* One value of type `t` (already read) at nesting `depth`. Appends its JSON
 * to r->json and its type name ("u32", "array[str]", ...) to `type`. */
static int value(rd *r, uint32_t t, unsigned depth, char type[GGUF_TYPE_STR_MAX])
{
    if (t != GV_ARRAY) {
        snprintf(type, GGUF_TYPE_STR_MAX, "%s", vtypes[t].name);
        return t == GV_STR ? string_value(r) : scalars(r, t, 1, 0);
    }
    if (depth >= GGUF_MAX_DEPTH) {
        FAIL(r, "array nesting too deep", "key '%.200s' at offset %llu: arrays nest more "
             "than %u deep at offset %llu", r->key, ull(r->kv_off), GGUF_MAX_DEPTH, ull(r->pos));
        return -1;
    }
    uint64_t at = r->pos;
    uint32_t et;
    uint64_t n;
    if (get_u32(r, &et, "an array type") != 0 || get_u64(r, &n, "an array length") != 0)
        return -1;
    if (et >= GV_COUNT) {
        FAIL(r, "bad value type", "key '%.200s' at offset %llu: array at offset %llu has "
             "element type %u (known: 0..%d)", r->key, ull(r->kv_off), ull(at), et, GV_COUNT - 1);
        return -1;
    }
    if (n > GGUF_MAX_ARRAY) {
        FAIL(r, "array too long", "key '%.200s' at offset %llu: array at offset %llu has %llu "
             "elements, over the cap of %u", r->key, ull(r->kv_off), ull(at), ull(n),
             GGUF_MAX_ARRAY);
        return -1;
    }
    if (n * vtypes[et].size > r->f->size - r->pos) {
        FAIL(r, "array too long", "key '%.200s' at offset %llu: array at offset %llu has %llu "
             "elements of %s, which need at least %llu bytes; %llu are left", r->key,
             ull(r->kv_off), ull(at), ull(n), vtypes[et].name, ull(n * vtypes[et].size),
             ull(r->f->size - r->pos));
        return -1;
    }
    if (jputc(r, '[') != 0)
        return out_of_memory(r);
    char inner[GGUF_TYPE_STR_MAX] = "";
    if (et == GV_STR) {
        for (uint64_t i = 0; i < n; i++) {
            if (i > 0 && jputc(r, ',') != 0)
                return out_of_memory(r);
            if (string_value(r) != 0)
                return -1;
        }
        snprintf(inner, sizeof inner, "str");
    } else if (et == GV_ARRAY) {
        /* Each inner array declares its own element type; name the common one,
         * or plain "array" when there is none (empty, or mixed types). */
        char first[GGUF_TYPE_STR_MAX] = "", cur[GGUF_TYPE_STR_MAX];
        int same = n > 0;
        for (uint64_t i = 0; i < n; i++) {
            if (i > 0 && jputc(r, ',') != 0)
                return out_of_memory(r);
            if (value(r, GV_ARRAY, depth + 1, cur) != 0)
                return -1;
            if (i == 0)
                memcpy(first, cur, sizeof first);
            else if (strcmp(first, cur) != 0)
                same = 0;
        }
        snprintf(inner, sizeof inner, "%s", same ? first : "array");
    } else {
        if (scalars(r, et, n, 1) != 0)
            return -1;
        snprintf(inner, sizeof inner, "%s", vtypes[et].name);
    }
    if (jputc(r, ']') != 0)
        return out_of_memory(r);
    /* Depth is capped, so the name always fits; truncation cannot happen. */
    snprintf(type, GGUF_TYPE_STR_MAX, "array[%.*s]", GGUF_TYPE_STR_MAX - 8, inner);
    return 0;
}

/* ---- key/values -------------------------------------------------------- */

static size_t keyset_slot(const rd *r, const char *key, size_t len)
{
    size_t mask = r->keyset_cap - 1;
    size_t i = (size_t)XXH3_64bits(key, len) & mask;
    while (r->keyset[i] != UINT32_MAX) {
        if (strcmp(r->ck->meta[r->keyset[i]].pub.key, key) == 0)
            break;
        i = (i + 1) & mask;
    }
    return i;
}

static int read_kv(rd *r, uint64_t index, uint32_t *alignment)
{
    r->kv_off = r->pos;
    r->ctx_kind = CTX_KEY_NAME;
    r->ctx_index = index;
    uint64_t klen;
    if (get_len(r, &klen, TTSM__MAX_NAME_LEN, NULL) != 0)
        return -1;
    const uint8_t *k = take(r, (size_t)klen, NULL);
    if (!k)
        return -1;
    if (klen == 0 || memchr(k, 0, (size_t)klen)) {
        FAIL(r, "bad key", "key %llu at offset %llu is %s", ull(index), ull(r->kv_off),
             klen == 0 ? "empty" : "holding a NUL byte");
        return -1;
    }
    if (!utf8_valid(k, (size_t)klen)) {
        FAIL(r, "bad utf-8", "key %llu at offset %llu is not valid UTF-8", ull(index),
             ull(r->kv_off));
        return -1;
    }
    if (r->key_cap < klen + 1) {
        char *nk = ttsm__realloc(r->key, (size_t)klen + 1);
        if (!nk) {
            OOM(r, "reading a key");
            return -1;
        }
        r->key = nk;
        r->key_cap = (size_t)klen + 1;
    }
    memcpy(r->key, k, (size_t)klen);
    r->key[klen] = '\0';
    r->ctx_kind = CTX_KEY;
    r->ctx_off = r->kv_off;

    uint32_t t;
    uint64_t type_at = r->pos;
    if (get_u32(r, &t, "a value type") != 0)
        return -1;
    if (t >= GV_COUNT) {
        FAIL(r, "bad value type", "key '%.200s' at offset %llu has value type %u at offset %llu "
             "(known: 0..%d)", r->key, ull(r->kv_off), t, ull(type_at), GV_COUNT - 1);
        return -1;
    }
    uint64_t value_at = r->pos;
    char type[GGUF_TYPE_STR_MAX];
    r->json_len = 0;
    if (value(r, t, 0, type) != 0)
        return -1;
    if (jputc(r, '\0') != 0)
        return out_of_memory(r);

    if (strcmp(r->key, "general.alignment") == 0) {
        if (t != GV_U32) {
            FAIL(r, "bad alignment", "'general.alignment' at offset %llu has type %s; it must "
                 "be u32", ull(r->kv_off), type);
            return -1;
        }
        uint32_t a = (uint32_t)strtoul(r->json, NULL, 10);
        if (a == 0 || (a & (a - 1)) != 0) {
            FAIL(r, "bad alignment", "'general.alignment' at offset %llu is %u, not a power of "
                 "two", ull(value_at), a);
            return -1;
        }
        *alignment = a;
    }

    size_t slot = keyset_slot(r, r->key, (size_t)klen);
    uint32_t prev = r->keyset[slot];
    if (prev != UINT32_MAX) {
        /* Older gguf-py writers repeated general.architecture with the same
         * value (the IREE test files do); an exact repeat says nothing new and
         * is kept once. A repeat that disagrees is ambiguous and rejected. */
        const ttsm_metadata_entry *e = &r->ck->meta[prev].pub;
        if (strcmp(e->type, type) == 0 && strcmp(e->json, r->json) == 0)
            return 0;
        FAIL(r, "duplicate key", "key '%.200s' at offset %llu appears again with a different "
             "type or value", r->key, ull(r->kv_off));
        return -1;
    }
    if (r->json_len >= GGUF_TAKE_JSON) {
        /* A long value (a vocabulary, a big array) is handed over, trimmed
         * to its length, not copied: it is held once, and the next value
         * starts a small buffer again. */
        char *j = ttsm__realloc(r->json, r->json_len);
        if (j)
            r->json = j;
        j = r->json;
        r->json = NULL;
        r->json_len = r->json_cap = 0;
        if ((r->st = ttsm__ckpt_add_meta_take(r->ck, r->key, type, j, r->err)) != TTSM_OK)
            return -1;
    } else if ((r->st = ttsm__ckpt_add_meta(r->ck, r->key, type, r->json, r->err)) != TTSM_OK) {
        return -1;
    }
    r->keyset[slot] = (uint32_t)(r->ck->n_meta - 1);
    return 0;
}

/* ---- tensor infos ------------------------------------------------------ */

static int read_tensor_info(rd *r, uint64_t index, uint32_t alignment, tinfo *ti, char **names,
                            size_t *names_len, size_t *names_cap)
{
    ti->info_off = r->pos;
    r->ctx_kind = CTX_TENSOR;
    r->ctx_index = index;
    r->ctx_off = r->pos;
    uint64_t nlen;
    if (get_len(r, &nlen, TTSM__MAX_NAME_LEN, NULL) != 0)
        return -1;
    const uint8_t *nm = take(r, (size_t)nlen, NULL);
    if (!nm)
        return -1;
    if (nlen == 0 || memchr(nm, 0, (size_t)nlen)) {
        FAIL(r, "bad tensor name", "tensor %llu at offset %llu has a name that is %s",
             ull(index), ull(ti->info_off), nlen == 0 ? "empty" : "holding a NUL byte");
        return -1;
    }
    if (!utf8_valid(nm, (size_t)nlen)) {
        FAIL(r, "bad utf-8", "tensor %llu at offset %llu has a name that is not valid UTF-8",
             ull(index), ull(ti->info_off));
        return -1;
    }
    if (ttsm__grow((void **)names, names_cap, *names_len + (size_t)nlen + 1, 1, SIZE_MAX / 2) !=
        0) {
        OOM(r, "reading tensor names");
        return -1;
    }
    ti->name_at = *names_len;
    ti->name_len = (uint32_t)nlen;
    memcpy(*names + *names_len, nm, (size_t)nlen);
    (*names)[*names_len + nlen] = '\0';
    *names_len += (size_t)nlen + 1;
    const char *name = *names + ti->name_at;
    int pl = nlen > 200 ? 200 : (int)nlen;

    uint32_t rank;
    if (get_u32(r, &rank, "a tensor rank") != 0)
        return -1;
    if (rank > GGUF_MAX_DIMS) {
        FAIL(r, "rank too large", "tensor '%.*s' at offset %llu has %u dimensions; GGUF allows "
             "at most %u", pl, name, ull(ti->info_off), rank, GGUF_MAX_DIMS);
        return -1;
    }
    ti->rank = rank;
    uint64_t ne[GGUF_MAX_DIMS], n = 1;
    for (uint32_t i = 0; i < rank; i++) {
        uint64_t at = r->pos;
        if (get_u64(r, &ne[i], "a tensor dimension") != 0)
            return -1;
        if (ne[i] > (uint64_t)INT64_MAX) {
            FAIL(r, "negative dimension", "tensor '%.*s' at offset %llu: dimension %u at offset "
                 "%llu is %lld", pl, name, ull(ti->info_off), i, ull(at), (long long)ne[i]);
            return -1;
        }
    }
    for (uint32_t i = 0; i < rank; i++)
        if (__builtin_mul_overflow(n, ne[i], &n) || n > (uint64_t)INT64_MAX) {
            FAIL(r, "element count overflows", "tensor '%.*s' at offset %llu: the product of its "
                 "dimensions exceeds 2^63 - 1", pl, name, ull(ti->info_off));
            return -1;
        }
    /* GGUF lists ne innermost first (ggml order); ttsm shapes are row-major,
     * outermost first, as in PyTorch: reverse. */
    for (uint32_t i = 0; i < rank; i++)
        ti->shape[i] = (int64_t)ne[rank - 1 - i];

    uint32_t gt;
    uint64_t type_at = r->pos;
    if (get_u32(r, &gt, "a tensor type") != 0)
        return -1;
    const char *gone = removed_type(gt);
    if (gone) {
        FAIL(r, "removed tensor type", "tensor '%.*s' at offset %llu has ggml type %u (%s), "
             "which ggml no longer supports; convert the model again", pl, name, ull(type_at),
             gt, gone);
        return -1;
    }
    if (gt >= N_GGML_TYPES || ggml_types[gt] == TTSM_DTYPE_INVALID) {
        FAIL(r, "unknown tensor type", "tensor '%.*s' at offset %llu has ggml type %u, which "
             "ttsm does not know", pl, name, ull(type_at), gt);
        return -1;
    }
    ti->dtype = ggml_types[gt];
    uint32_t be, bb;
    ttsm_dtype_block(ti->dtype, &be, &bb);
    uint64_t inner = rank > 0 ? ne[0] : 1;
    if (inner % be != 0) {
        FAIL(r, "block size mismatch", "tensor '%.*s' at offset %llu of %s: innermost dimension "
             "%llu is not a multiple of the block size %u", pl, name, ull(ti->info_off),
             ttsm_dtype_name(ti->dtype), ull(inner), be);
        return -1;
    }
    if (ttsm__dtype_bytes(ti->dtype, n, &ti->nbytes) != 0) {
        FAIL(r, "element count overflows", "tensor '%.*s' at offset %llu: %llu elements of %s "
             "take more than 2^64 bytes", pl, name, ull(ti->info_off), ull(n),
             ttsm_dtype_name(ti->dtype));
        return -1;
    }
    uint64_t off_at = r->pos;
    if (get_u64(r, &ti->offset, "a tensor offset") != 0)
        return -1;
    if (ti->offset % alignment != 0) {
        FAIL(r, "misaligned tensor offset", "tensor '%.*s': offset %llu (at offset %llu) is not "
             "a multiple of the alignment %u", pl, name, ull(ti->offset), ull(off_at),
             alignment);
        return -1;
    }
    return 0;
}

typedef struct span {
    uint64_t start, end;
    size_t index;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Data ranges must not overlap: sort by start, compare with the furthest end
 * seen so far. Empty tensors occupy nothing and are skipped. */
static int check_overlaps(rd *r, const tinfo *t, size_t n, const char *names, uint64_t data_start)
{
    span *s = ttsm__malloc((n ? n : 1) * sizeof *s);
    if (!s) {
        OOM(r, "checking tensor ranges");
        return -1;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (t[i].nbytes > 0)
            s[m++] = (span){t[i].offset, t[i].offset + t[i].nbytes, i};
    for (size_t i = 1; i < m; i++) /* writers lay tensors out in order: sort only if not */
        if (span_cmp(&s[i - 1], &s[i]) > 0) {
            qsort(s, m, sizeof *s, span_cmp);
            break;
        }
    int rc = 0;
    size_t far = 0;
    for (size_t i = 1; i < m; i++) {
        if (s[i].start < s[far].end) {
            const tinfo *a = &t[s[far].index], *b = &t[s[i].index];
            FAIL(r, "overlapping tensors", "tensor '%.200s' [%llu, %llu) overlaps tensor "
                 "'%.200s' [%llu, %llu) (absolute file offsets)", names + b->name_at,
                 ull(data_start + s[i].start), ull(data_start + s[i].end), names + a->name_at,
                 ull(data_start + s[far].start), ull(data_start + s[far].end));
            rc = -1;
            break;
        }
        if (s[i].end > s[far].end)
            far = i;
    }
    ttsm__free(s);
    return rc;
}

/* ---- the reader -------------------------------------------------------- */

static int read_header(rd *r, uint32_t *version, uint64_t *n_tensors, uint64_t *n_kv)
{
    const uint8_t *h = take(r, GGUF_HEADER_BYTES, "the GGUF header");
    if (!h)
        return -1;
    if (memcmp(h, "GGUF", 4) != 0) {
        FAIL(r, "bad magic", "expected 'GGUF' at offset 0, found bytes %02x %02x %02x %02x",
             h[0], h[1], h[2], h[3]);
        return -1;
    }
    uint32_t v = le32(h + 4);
    uint32_t swapped = __builtin_bswap32(v);
    if (v != swapped && (v & 0xffffu) == 0 && swapped >= 1 && swapped <= 3) {
        FAIL(r, "big-endian file", "the version at offset 4 reads %u little-endian, %u "
             "big-endian: a big-endian GGUF, which ttsm does not read; convert the model "
             "again on a little-endian machine", v, swapped);
        return -1;
    }
    if (v == 1) {
        FAIL(r, "unsupported version", "GGUF v1 at offset 4 (u32 counts and lengths, written "
             "before August 2023) is no longer supported; convert the model again with a "
             "current llama.cpp");
        return -1;
    }
    if (v != 2 && v != 3) {
        FAIL(r, "unsupported version", "version %u at offset 4; ttsm reads GGUF versions 2 and 3",
             v);
        return -1;
    }
    *version = v;
    *n_tensors = le64(h + 8);
    *n_kv = le64(h + 16);
    uint64_t room = r->f->size - GGUF_HEADER_BYTES;
    if (*n_tensors > TTSM__MAX_TENSORS || *n_tensors > room / GGUF_MIN_TENSOR_INFO_BYTES) {
        FAIL(r, "tensor count too large", "the header at offset 8 claims %llu tensors; the "
             "%llu bytes after the header hold at most %llu tensor infos of %u bytes or more "
             "(cap %u)", ull(*n_tensors), ull(room), ull(room / GGUF_MIN_TENSOR_INFO_BYTES),
             GGUF_MIN_TENSOR_INFO_BYTES, TTSM__MAX_TENSORS);
        return -1;
    }
    room -= *n_tensors * GGUF_MIN_TENSOR_INFO_BYTES;
    if (*n_kv > TTSM__MAX_METADATA || *n_kv > room / GGUF_MIN_KV_BYTES) {
        FAIL(r, "metadata count too large", "the header at offset 16 claims %llu key/values; "
             "the %llu bytes left for them hold at most %llu of %u bytes or more (cap %u)",
             ull(*n_kv), ull(room), ull(room / GGUF_MIN_KV_BYTES), GGUF_MIN_KV_BYTES,
             TTSM__MAX_METADATA);
        return -1;
    }
    return 0;
}

ttsm_status ttsm__read_gguf(ttsm_checkpoint *ck, uint32_t file_index, ttsm_error *err)
{
    rd r;
    memset(&r, 0, sizeof r);
    r.ck = ck;
    r.f = &ck->files[file_index];
    r.err = err;
    tinfo *ti = NULL;
    char *names = NULL;
    size_t names_len = 0, names_cap = 0;
    uint32_t version, alignment = GGUF_DEFAULT_ALIGNMENT;
    uint64_t n_tensors, n_kv;

    if (read_header(&r, &version, &n_tensors, &n_kv) != 0)
        goto fail;
    ck->format = TTSM_FORMAT_GGUF;
    ck->version = version;

    r.keyset_cap = 16;
    while (r.keyset_cap < 2 * n_kv)
        r.keyset_cap *= 2;
    r.keyset = ttsm__malloc(r.keyset_cap * sizeof *r.keyset);
    if (!r.keyset) {
        OOM(&r, "indexing keys");
        goto fail;
    }
    memset(r.keyset, 0xff, r.keyset_cap * sizeof *r.keyset);
    for (uint64_t i = 0; i < n_kv; i++)
        if (read_kv(&r, i, &alignment) != 0)
            goto fail;

    if (n_tensors > 0) {
        ti = ttsm__malloc((size_t)n_tensors * sizeof *ti);
        if (!ti) {
            OOM(&r, "reading tensor infos");
            goto fail;
        }
    }
    for (uint64_t i = 0; i < n_tensors; i++)
        if (read_tensor_info(&r, i, alignment, &ti[i], &names, &names_len, &names_cap) != 0)
            goto fail;

    /* The data section starts at the aligned end of the tensor infos. A file
     * without tensors needs no data section, so it need not be padded. */
    uint64_t data_start = r.pos + (alignment - r.pos % alignment) % alignment;
    if (n_tensors > 0 && data_start > r.f->size) {
        FAIL(&r, "data section out of bounds", "the tensor infos end at offset %llu, so the "
             "data section starts at %llu (alignment %u), past the end of the file (%llu bytes)",
             ull(r.pos), ull(data_start), alignment, ull(r.f->size));
        goto fail;
    }
    for (uint64_t i = 0; i < n_tensors; i++) {
        uint64_t room = r.f->size - data_start;
        if (ti[i].offset > room || ti[i].nbytes > room - ti[i].offset) {
            FAIL(&r, "tensor data out of bounds", "tensor '%.200s' (info at offset %llu): %llu "
                 "bytes at file offset %llu + %llu pass the end of the file (%llu bytes)",
                 names + ti[i].name_at, ull(ti[i].info_off), ull(ti[i].nbytes), ull(data_start),
                 ull(ti[i].offset), ull(r.f->size));
            goto fail;
        }
    }
    if (check_overlaps(&r, ti, (size_t)n_tensors, names, data_start) != 0)
        goto fail;

    /* Everything is checked: each tensor goes into the table with its name
     * and shape placed once in the arena, and the name index is built in
     * one go, which finds a repeated name. */
    size_t first = ck->n_tensors, dup = SIZE_MAX;
    if ((r.st = ttsm__ckpt_reserve(ck, (size_t)n_tensors, (size_t)n_tensors, err)) != TTSM_OK)
        goto fail;
    for (uint64_t i = 0; i < n_tensors; i++) {
        size_t sb = sizeof(int64_t) * (ti[i].rank ? 2 * ti[i].rank : 1);
        int64_t *shape = ttsm__ckpt_arena(ck, sb + ti[i].name_len + 1, 8);
        if (!shape) {
            OOM(&r, "adding tensors");
            goto fail;
        }
        char *name = (char *)shape + sb;
        memcpy(name, names + ti[i].name_at, (size_t)ti[i].name_len + 1);
        uint64_t n = 1;
        for (uint32_t k = 0; k < ti[i].rank; k++)
            n *= (uint64_t)(shape[k] = ti[i].shape[k]); /* no overflow: checked */
        ttsm__dense d = {.name = name,
                         .name_len = ti[i].name_len,
                         .dtype = ti[i].dtype,
                         .rank = ti[i].rank,
                         .shape = shape,
                         .n_elements = n,
                         .nbytes = ti[i].nbytes,
                         .file_index = file_index,
                         .file_offset = data_start + ti[i].offset};
        if ((r.st = ttsm__ckpt_append_dense(ck, &d, err)) != TTSM_OK)
            goto fail;
    }
    if ((r.st = ttsm__ckpt_index_tensors(ck, first, &dup, err)) != TTSM_OK) {
        if (r.st == TTSM_ERR_FORMAT && dup != SIZE_MAX) {
            size_t i = dup - first;
            const char *name = names + ti[i].name_at;
            const ttsm_tensor_info *prev = ttsm_checkpoint_find(ck, name);
            FAIL(&r, "duplicate tensor name", "tensor %zu at offset %llu is named '%.200s', like "
                 "tensor %zu", i, ull(ti[i].info_off), name,
                 prev ? (size_t)(prev - ttsm_checkpoint_tensor(ck, 0)) : 0);
        }
        goto fail;
    }
    r.st = TTSM_OK;
    goto out;
fail:
    assert(r.st != TTSM_OK); /* every failing step records its status */
out:
    ttsm__free(ti);
    ttsm__free(names);
    ttsm__free(r.win);
    ttsm__free(r.json);
    ttsm__free(r.key);
    ttsm__free(r.keyset);
    return r.st;
}
