/* safetensors.c - the strict safetensors reader. On disk: an 8-byte
 * little-endian header length N, N bytes of UTF-8 JSON (one object: tensor
 * name -> {dtype, shape, data_offsets}, plus an optional "__metadata__"
 * string map), then the data section, which the tensors' byte ranges must
 * tile exactly. The header is read in one pass by jscan.c; every rule and
 * its message, and the order they are checked in: docs/formats/safetensors.md. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/alloc.h"
#include "base/text.h"
#include "formats/jscan.h"
#include "formats/safetensors.h"

/* The dtypes safetensors defines (safetensors 0.6/0.7), with bits per
 * element. GGUF names such as Q4_K are deliberately not accepted here. */
#define DT(name, dtype, bits) {name, sizeof name - 1, dtype, bits}
static const struct {
    const char *name;
    size_t len;
    ttsm_dtype dtype;
    unsigned bits;
} st_dtypes[] = {
    DT("F32", TTSM_DTYPE_F32, 32),        DT("BF16", TTSM_DTYPE_BF16, 16),
    DT("F16", TTSM_DTYPE_F16, 16),        DT("I64", TTSM_DTYPE_I64, 64),
    DT("BOOL", TTSM_DTYPE_BOOL, 8),       DT("F4", TTSM_DTYPE_F4, 4),
    DT("F6_E2M3", TTSM_DTYPE_F6_E2M3, 6), DT("F6_E3M2", TTSM_DTYPE_F6_E3M2, 6),
    DT("U8", TTSM_DTYPE_U8, 8),           DT("I8", TTSM_DTYPE_I8, 8),
    DT("F8_E5M2", TTSM_DTYPE_F8_E5M2, 8), DT("F8_E4M3", TTSM_DTYPE_F8_E4M3, 8),
    DT("F8_E8M0", TTSM_DTYPE_F8_E8M0, 8), DT("I16", TTSM_DTYPE_I16, 16),
    DT("U16", TTSM_DTYPE_U16, 16),        DT("I32", TTSM_DTYPE_I32, 32),
    DT("U32", TTSM_DTYPE_U32, 32),        DT("C64", TTSM_DTYPE_C64, 64),
    DT("F64", TTSM_DTYPE_F64, 64),        DT("U64", TTSM_DTYPE_U64, 64),
};
#undef DT
#define N_ST_DTYPES (sizeof st_dtypes / sizeof st_dtypes[0])

#define NAME_SHOW 160 /* bytes of a name or value quoted in a message */

/* ---- what the scan keeps ------------------------------------------------ */

/* One top-level key other than __metadata__. Name and shape live in the
 * checkpoint's arena, where the tensor table adopts them. */
typedef struct entry {
    const char *name;
    uint32_t name_len;
    uint8_t dt;   /* index into st_dtypes */
    uint8_t rank;
    int64_t *shape; /* rank dimensions, then room for rank strides */
    uint64_t begin, end; /* relative to the data section */
} entry;

/* The first failure of a kind that is reported only after the whole header
 * has been read, in the order the rules are documented. */
typedef struct pending {
    const char *rule;
    char detail[TTSM_ERROR_MESSAGE_MAX];
} pending;

typedef struct reader {
    ttsm_checkpoint *ck;
    const char *path;
    uint64_t data_start; /* 8 + header length */
    ttsm_error *err;
    ttsm__js js;
    entry *es;
    size_t n, cap;
    uint32_t *slot; /* duplicate check over es: entry + 1, 0 = empty */
    size_t nslot;
    size_t n_keys;  /* top-level keys, __metadata__ included */
    int direct;     /* the first pass (see ttsm__st_read_file): tensors go
                       straight into the table, in file order, or it stops */
    uint32_t fi;
    const ttsm__st_shard *shard;
    size_t map_next; /* direct, a shard: the weight_map entry after the last one found */
    entry cur, prev; /* direct: the entry being read, the one before it */
    size_t n_direct;
    uint64_t expect; /* direct: where the next tensor must begin */
    ttsm__js_kind top; /* the kind of the top-level value */
    int has_meta;   /* "__metadata__" seen */
    int keep_meta;  /* its entries become metadata (not a shard) */
    ttsm__sb meta;  /* key NUL json NUL, per entry */
    size_t n_meta;
    pending meta_err, entry_err;
} reader;

#define SHOW(buf, s, n) ttsm__printable((s), (n), (buf), sizeof(buf))

static ttsm_status fmt_err(reader *r, const char *rule, const char *fmt, ...)
    TTSM__PRINTF(3, 4);

static ttsm_status fmt_err(reader *r, const char *rule, const char *fmt, ...)
{
    char detail[TTSM_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return ttsm__err(r->err, TTSM_ERR_FORMAT, r->path, rule, "%s", detail);
}

static void pend(pending *p, const char *rule, const char *fmt, ...) TTSM__PRINTF(3, 4);

static void pend(pending *p, const char *rule, const char *fmt, ...)
{
    if (p->rule)
        return;
    p->rule = rule;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->detail, sizeof p->detail, fmt, ap);
    va_end(ap);
}

static ttsm_status oom(reader *r, const char *what)
{
    return ttsm__err(r->err, TTSM_ERR_OUT_OF_MEMORY, r->path, "out of memory", "%s", what);
}

/* ---- the duplicate rule over top-level keys ----------------------------- */

static int same_name(const entry *e, const char *name, size_t len)
{
    return e->name_len == len && memcmp(e->name, name, len) == 0;
}

static int slots_grow(reader *r)
{
    size_t ns = r->nslot ? r->nslot * 2 : 256;
    uint32_t *s = ttsm__calloc(ns, sizeof *s);
    if (!s)
        return -1;
    for (size_t i = 0; i < r->n; i++) {
        size_t k = (size_t)XXH3_64bits(r->es[i].name, r->es[i].name_len) & (ns - 1);
        while (s[k])
            k = (k + 1) & (ns - 1);
        s[k] = (uint32_t)i + 1;
    }
    ttsm__free(r->slot);
    r->slot = s;
    r->nslot = ns;
    return 0;
}

/* A new entry named by the key in the scanner's buffer; a repeated key is a
 * syntax failure, as in jansson. @return the entry, or NULL. */
static entry *add_key(reader *r)
{
    const char *key = r->js.str.p;
    size_t len = r->js.str.len, k = 0;
    if (r->direct) {
        char *name = ttsm__ckpt_arena(r->ck, len + 1, 1);
        if (!name)
            goto oom;
        memcpy(name, key, len + 1);
        memset(&r->cur, 0, sizeof r->cur);
        r->cur.name = name;
        r->cur.name_len = (uint32_t)len;
        return &r->cur;
    }
    {
        if ((r->n + 1) * 2 > r->nslot && slots_grow(r) != 0)
            goto oom;
        size_t mask = r->nslot - 1;
        for (k = (size_t)XXH3_64bits(key, len) & mask; r->slot[k]; k = (k + 1) & mask)
            if (same_name(&r->es[r->slot[k] - 1], key, len)) {
                char shown[64];
                ttsm__js_fail(&r->js, TTSM__JS_F_DUPLICATE, "duplicate object key near '\"%s\"'",
                              SHOW(shown, key, len));
                return NULL;
            }
    }
    if (r->n >= UINT32_MAX - 1 ||
        ttsm__grow((void **)&r->es, &r->cap, r->n + 1, sizeof *r->es, UINT32_MAX - 1) != 0)
        goto oom;
    char *name = ttsm__ckpt_arena(r->ck, len + 1, 1);
    if (!name)
        goto oom;
    memcpy(name, key, len + 1);
    entry *e = &r->es[r->n];
    memset(e, 0, sizeof *e);
    e->name = name;
    e->name_len = (uint32_t)len;
    r->slot[k] = (uint32_t)++r->n;
    return e;
oom:
    ttsm__js_fail(&r->js, TTSM__JS_F_OTHER, "out of memory");
    r->js.st = oom(r, "indexing the header's entries");
    return NULL;
}

/* ---- one tensor entry -------------------------------------------------- */

/* What an entry's three fields held, for the checks that follow the scan of
 * the whole entry (the rules are checked in a fixed order, whatever the
 * order of its keys). */
typedef struct fields {
    int have[3];              /* dtype, shape, data_offsets */
    char unexpected[64];      /* the first other key, shown */
    int has_unexpected;
    ttsm__js_kind dtype_kind;
    int dt;                   /* -1: not one of st_dtypes */
    char dtype_shown[48];
    ttsm__js_kind shape_kind;
    size_t rank;
    int64_t dims[TTSM__MAX_RANK];
    int dim_problem;          /* 0, 1 bad dimension, 2 overflow */
    size_t dim_at;
    ttsm__js_kind dim_kind;
    int64_t dim_value;
    uint64_t n_elements;
    ttsm__js_kind off_kind;
    size_t n_off;
    ttsm__js_kind off_k[2];
    int64_t off_v[2];
} fields;

static void scan_dtype(reader *r, fields *f, unsigned depth)
{
    ttsm__js *j = &r->js;
    if (ttsm__js_peek(j) != '"') {
        f->dtype_kind = ttsm__js_value(j, depth, NULL, NULL);
        return;
    }
    int nul;
    if (ttsm__js_string(j, &nul) != 0)
        return;
    f->dtype_kind = TTSM__JS_STRING;
    f->dt = -1;
    const char *s = j->str.p;
    size_t len = j->str.len;
    for (size_t i = 0; i < N_ST_DTYPES; i++)
        if (st_dtypes[i].len == len && memcmp(st_dtypes[i].name, s, len) == 0) {
            f->dt = (int)i;
            return;
        }
    SHOW(f->dtype_shown, s, len);
}

static void scan_shape(reader *r, fields *f, unsigned depth)
{
    ttsm__js *j = &r->js;
    if (ttsm__js_peek(j) != '[') {
        f->shape_kind = ttsm__js_value(j, depth, NULL, NULL);
        return;
    }
    ttsm__js_take(j);
    f->shape_kind = TTSM__JS_ARRAY;
    f->n_elements = 1;
    if (ttsm__js_peek(j) == ']') {
        ttsm__js_take(j);
        return;
    }
    for (;;) {
        int64_t v = 0;
        ttsm__js_kind k = ttsm__js_value(j, depth + 1, NULL, &v);
        if (!k)
            return;
        size_t i = f->rank++;
        if (i < TTSM__MAX_RANK)
            f->dims[i] = v;
        /* In order, like the reference: a zero after an overflowing prefix
         * does not rescue the product. */
        if (!f->dim_problem && i < TTSM__MAX_RANK) {
            if (k != TTSM__JS_INTEGER || v < 0) {
                f->dim_problem = 1;
                f->dim_at = i;
                f->dim_kind = k;
                f->dim_value = v;
            } else if (__builtin_mul_overflow(f->n_elements, (uint64_t)v, &f->n_elements) ||
                       f->n_elements > (uint64_t)INT64_MAX) {
                f->dim_problem = 2;
                f->dim_at = i;
            }
        }
        int more = ttsm__js_next(j, ']');
        if (more <= 0)
            return;
    }
}

static void scan_offsets(reader *r, fields *f, unsigned depth)
{
    ttsm__js *j = &r->js;
    if (ttsm__js_peek(j) != '[') {
        f->off_kind = ttsm__js_value(j, depth, NULL, NULL);
        return;
    }
    ttsm__js_take(j);
    f->off_kind = TTSM__JS_ARRAY;
    if (ttsm__js_peek(j) == ']') {
        ttsm__js_take(j);
        return;
    }
    for (;;) {
        int64_t v = 0;
        ttsm__js_kind k = ttsm__js_value(j, depth + 1, NULL, &v);
        if (!k)
            return;
        if (f->n_off < 2) {
            f->off_k[f->n_off] = k;
            f->off_v[f->n_off] = v;
        }
        f->n_off++;
        int more = ttsm__js_next(j, ']');
        if (more <= 0)
            return;
    }
}

static int entry_cmp(const void *pa, const void *pb);

/* The first pass stops: the second one will say why, if anything is wrong. */
static int stop_direct(reader *r)
{
    ttsm__js_fail(&r->js, TTSM__JS_F_OTHER, "not in file order");
    return -1;
}

/* The first pass: a valid entry goes into the table at once if it follows
 * the previous one in file order, tiling the data, and (in a shard) is mapped
 * to this shard. Anything else stops the pass. */
static int commit(reader *r, const entry *e, uint64_t n)
{
    /* Tiling the data in order: only zero-size tensors sharing an offset
     * are ordered by name. */
    if (e->begin != r->expect ||
        (r->n_direct > 0 && e->end == e->begin && r->prev.end == r->prev.begin &&
         entry_cmp(&r->prev, e) >= 0))
        return stop_direct(r);
    if (r->shard) {
        /* A shard and the map often list a run of tensors in the same
         * order: the entry after the last one found is tried first, read in
         * order where a lookup would land anywhere in the table. */
        const ttsm__st_index *ix = r->shard->index;
        const ttsm__st_map_entry *g = r->map_next < ix->n_map ? &ix->map[r->map_next] : NULL;
        long m = g && g->name_len == e->name_len && memcmp(g->name, e->name, e->name_len) == 0
                     ? (long)r->map_next
                     : ttsm__st_index_find(ix, e->name, e->name_len);
        if (m < 0 || ix->map[m].shard != r->shard->shard)
            return stop_direct(r);
        r->map_next = (size_t)m + 1;
    }
    ttsm__dense d = {.name = e->name,
                     .name_len = e->name_len,
                     .dtype = st_dtypes[e->dt].dtype,
                     .rank = e->rank,
                     .shape = e->shape,
                     .n_elements = n,
                     .nbytes = e->end - e->begin,
                     .file_index = r->fi,
                     .file_offset = r->data_start + e->begin};
    ttsm_status st = ttsm__ckpt_append_dense(r->ck, &d, r->err);
    if (st == TTSM_ERR_OUT_OF_MEMORY) {
        ttsm__js_fail(&r->js, TTSM__JS_F_OTHER, "out of memory");
        r->js.st = st;
        return -1;
    }
    if (st != TTSM_OK)
        return stop_direct(r);
    r->expect = e->end;
    r->prev.name = e->name;
    r->prev.name_len = e->name_len;
    r->prev.begin = e->begin;
    r->prev.end = e->end;
    r->n_direct++;
    return 0;
}

/* Keeps a valid entry: its shape in the arena with room for the strides. */
static int keep_entry(reader *r, entry *e, int dt, const int64_t *dims, size_t rank,
                      uint64_t begin, uint64_t end)
{
    int64_t *shape = ttsm__ckpt_arena(r->ck, sizeof(int64_t) * (rank ? 2 * rank : 1), 8);
    if (!shape) {
        ttsm__js_fail(&r->js, TTSM__JS_F_OTHER, "out of memory");
        r->js.st = oom(r, "keeping a tensor's shape");
        return -1;
    }
    memcpy(shape, dims, sizeof(int64_t) * rank);
    e->shape = shape;
    e->rank = (uint8_t)rank;
    e->dt = (uint8_t)dt;
    e->begin = begin;
    e->end = end;
    if (!r->direct)
        return 0;
    uint64_t n = 1; /* checked against overflow already */
    for (size_t k = 0; k < rank; k++)
        n *= (uint64_t)dims[k];
    return commit(r, e, n);
}

/* The entry's rules, in the documented order, once its object is read. */
static void check_entry(reader *r, entry *e, const fields *f)
{
    pending *p = &r->entry_err;
    char name[NAME_SHOW];
    SHOW(name, e->name, e->name_len);
    if (f->has_unexpected)
        return pend(p, "unexpected field",
                    "tensor '%s' has field '%s'; only dtype, shape and data_offsets are allowed",
                    name, f->unexpected);
    static const char *const field_names[] = {"dtype", "shape", "data_offsets"};
    for (int i = 0; i < 3; i++)
        if (!f->have[i])
            return pend(p, "missing field", "tensor '%s' has no '%s'", name, field_names[i]);
    if (f->dtype_kind != TTSM__JS_STRING)
        return pend(p, "bad dtype", "tensor '%s': dtype is a JSON %s, not a string", name,
                    ttsm__js_kind_name(f->dtype_kind));
    if (f->dt < 0)
        return pend(p, "unknown dtype",
                    "tensor '%s' has dtype '%s', which safetensors does not define (known: BOOL, "
                    "U8, I8, U16, I16, F16, BF16, U32, I32, F32, U64, I64, F64, C64, F8_E5M2, "
                    "F8_E4M3, F8_E8M0, F4, F6_E2M3, F6_E3M2)",
                    name, f->dtype_shown);
    if (f->shape_kind != TTSM__JS_ARRAY)
        return pend(p, "bad shape", "tensor '%s': shape is a JSON %s, not an array", name,
                    ttsm__js_kind_name(f->shape_kind));
    if (f->rank > TTSM__MAX_RANK)
        return pend(p, "rank too large", "tensor '%s' has %zu dimensions, the limit is %u", name,
                    f->rank, TTSM__MAX_RANK);
    if (f->dim_problem == 1 && f->dim_kind == TTSM__JS_INTEGER)
        return pend(p, "bad dimension",
                    "tensor '%s' dimension %zu is %lld; dimensions are non-negative integers",
                    name, f->dim_at, (long long)f->dim_value);
    if (f->dim_problem == 1)
        return pend(p, "bad dimension",
                    "tensor '%s' dimension %zu is a JSON %s; dimensions are non-negative integers",
                    name, f->dim_at, ttsm__js_kind_name(f->dim_kind));
    if (f->dim_problem == 2)
        return pend(p, "element count overflows",
                    "tensor '%s': the product of its dimensions exceeds 2^63 at dimension %zu",
                    name, f->dim_at);
    if (f->off_kind != TTSM__JS_ARRAY || f->n_off != 2 || f->off_k[0] != TTSM__JS_INTEGER ||
        f->off_v[0] < 0 || f->off_k[1] != TTSM__JS_INTEGER || f->off_v[1] < 0)
        return pend(p, "bad data_offsets",
                    "tensor '%s': data_offsets must be [begin, end], two non-negative integers",
                    name);
    uint64_t begin = (uint64_t)f->off_v[0], end = (uint64_t)f->off_v[1];
    if (end < begin)
        return pend(p, "reversed data_offsets",
                    "tensor '%s': data_offsets [%llu, %llu] end before they begin", name,
                    (unsigned long long)begin, (unsigned long long)end);
    unsigned eb = st_dtypes[f->dt].bits;
    const char *dname = ttsm_dtype_name(st_dtypes[f->dt].dtype);
    uint64_t bits;
    if (__builtin_mul_overflow(f->n_elements, (uint64_t)eb, &bits))
        return pend(p, "byte size overflows", "tensor '%s': %llu elements of %s exceed 2^64 bits",
                    name, (unsigned long long)f->n_elements, dname);
    /* Sub-byte types pack the flattened elements; the reference requires
     * the whole tensor to end on a byte boundary. */
    if (bits % 8 != 0)
        return pend(p, "misaligned sub-byte tensor",
                    "tensor '%s': %llu elements of %s (%u bits each) are %llu bits, not a whole "
                    "number of bytes",
                    name, (unsigned long long)f->n_elements, dname, eb,
                    (unsigned long long)bits);
    if (end - begin != bits / 8)
        return pend(p, "size mismatch",
                    "tensor '%s': %llu elements of %s take %llu bytes, data_offsets [%llu, "
                    "%llu] hold %llu",
                    name, (unsigned long long)f->n_elements, dname,
                    (unsigned long long)(bits / 8), (unsigned long long)begin,
                    (unsigned long long)end, (unsigned long long)(end - begin));
    keep_entry(r, e, f->dt, f->dims, f->rank, begin, end);
}

static int is_key(const ttsm__js *j, const char *k, size_t n)
{
    return j->str.len == n && memcmp(j->str.p, k, n) == 0;
}

/* memcmp for a few bytes, without the call. */
static inline int same(const unsigned char *p, const char *s, size_t n)
{
    for (; n >= 8; n -= 8, p += 8, s += 8) {
        uint64_t x, y;
        memcpy(&x, p, 8);
        memcpy(&y, s, 8);
        if (x != y)
            return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)s[i])
            return 0;
    return 1;
}

/* How many of the 8 bytes at p are ASCII digits before the first that is
 * not (0..8); *w gets the bytes. */
static inline unsigned digits8(const unsigned char *p, uint64_t *w)
{
    memcpy(w, p, 8);
    uint64_t x = *w ^ 0x3030303030303030ull;
    uint64_t m = (x | (x + 0x7676767676767676ull)) & 0x8080808080808080ull;
    return m ? (unsigned)__builtin_ctzll(m) / 8 : 8;
}

/* The value of the first k (1..8) digit bytes of w, eight at a time with
 * three multiplications instead of one step per digit. */
static inline uint64_t value8(uint64_t w, unsigned k)
{
    w <<= 8 * (8 - k); /* the digits to the top: the bytes below count as 0 */
    w = ((w & 0x0F0F0F0F0F0F0F0Full) * 2561) >> 8;
    w = ((w & 0x00FF00FF00FF00FFull) * 6553601) >> 16;
    return ((w & 0x0000FFFF0000FFFFull) * 42949672960001ull) >> 32;
}

/* A plain non-negative integer of at most 16 digits at p (at least 17 bytes
 * readable): no sign, no leading zero. @return the byte after, or NULL. */
static inline const unsigned char *uint16d(const unsigned char *p, uint64_t *v)
{
    static const uint64_t pow10[] = {1,       10,       100,       1000,      10000,
                                     100000,  1000000,  10000000,  100000000};
    uint64_t w;
    unsigned k = digits8(p, &w);
    if (k == 0 || (p[0] == '0' && k > 1))
        return NULL;
    uint64_t x = value8(w, k);
    if (k == 8) {
        unsigned k2 = digits8(p + 8, &w);
        if (k2 == 8)
            return NULL;
        if (k2)
            x = x * pow10[k2] + value8(w, k2);
        k += k2;
    }
    *v = x;
    return p + k;
}

/* What fast_value found in an entry. */
typedef struct fast {
    int dt;
    size_t rank;
    uint64_t n; /* elements */
    uint64_t begin, end;
    int64_t dims[TTSM__MAX_RANK];
} fast;

/* The entries writers produce, {"dtype":"F32","shape":[...],"data_offsets":
 * [b,e]} with or without spaces and valid, read straight from the window
 * [p, end). Anything else (another key order, escapes, a number that is not
 * a plain small integer, any rule broken, the window's end) returns NULL,
 * and the general path reads the entry instead from where it starts, so
 * both paths accept the same and only the general one words refusals.
 * @return the byte after the entry's '}', or NULL. */
static const unsigned char *fast_value(const unsigned char *p, const unsigned char *end, fast *o)
{
#define WS()                                                                                       \
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))                      \
    p++
#define LIT(s)                                                                                     \
    do {                                                                                           \
        WS();                                                                                      \
        if ((size_t)(end - p) < sizeof s - 1 || !same(p, s, sizeof s - 1))                         \
            return NULL;                                                                           \
        p += sizeof s - 1;                                                                         \
    } while (0)
#define UINT(v)                                                                                    \
    do {                                                                                           \
        WS();                                                                                      \
        if (end - p < 17 || !(p = uint16d(p, &(v))))                                               \
            return NULL;                                                                           \
    } while (0)
    LIT("{\"dtype\"");
    LIT(":");
    LIT("\"");
    const unsigned char *ds = p;
    while (p < end && p - ds < 8 && ((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
        p++;
    if (p == end || *p != '"')
        return NULL;
    size_t dl = (size_t)(p - ds);
    int dt = -1;
    for (size_t i = 0; i < N_ST_DTYPES && dt < 0; i++)
        if (st_dtypes[i].len == dl && same(ds, st_dtypes[i].name, dl))
            dt = (int)i;
    if (dt < 0)
        return NULL;
    p++;
    LIT(",");
    LIT("\"shape\"");
    LIT(":");
    LIT("[");
    size_t rank = 0;
    uint64_t n = 1;
    WS();
    if (p < end && *p == ']') {
        p++;
    } else {
        for (;;) {
            uint64_t v;
            UINT(v);
            if (rank == TTSM__MAX_RANK || __builtin_mul_overflow(n, v, &n) || n > (uint64_t)INT64_MAX)
                return NULL;
            o->dims[rank++] = (int64_t)v;
            WS();
            if (p < end && *p == ',') {
                p++;
                continue;
            }
            if (p < end && *p == ']') {
                p++;
                break;
            }
            return NULL;
        }
    }
    uint64_t begin, last, bits;
    LIT(",");
    LIT("\"data_offsets\"");
    LIT(":");
    LIT("[");
    UINT(begin);
    LIT(",");
    UINT(last);
    LIT("]");
    LIT("}");
#undef UINT
#undef LIT
#undef WS
    if (last < begin || __builtin_mul_overflow(n, (uint64_t)st_dtypes[dt].bits, &bits) ||
        bits % 8 != 0 || last - begin != bits / 8)
        return NULL;
    o->dt = dt;
    o->rank = rank;
    o->n = n;
    o->begin = begin;
    o->end = last;
    return p;
}

static int fast_entry(reader *r, entry *e)
{
    fast o;
    const unsigned char *q = fast_value(r->js.p, r->js.end, &o);
    if (!q)
        return 0;
    if (keep_entry(r, e, o.dt, o.dims, o.rank, o.begin, o.end) == 0)
        r->js.p = q;
    return 1;
}

/* The first pass's whole member, "name":{...}, read straight from the window
 * (a name without escapes, the entry as fast_value reads it). @return 1 when
 * read (or when it stopped the pass), 0 to leave it to the general path,
 * which then starts where this one did. */
static int fast_member(reader *r)
{
    const unsigned char *p = r->js.p, *end = r->js.end, *k = p + 1;
    if (p == end || *p != '"')
        return 0;
    p = k;
    while (end - p >= 8 && ttsm__js_plain8(p))
        p += 8;
    while (p < end && *p != '"' && *p != '\\' && *p >= 0x20)
        p++;
    size_t len = (size_t)(p - k);
    if (end - p < 2 || p[0] != '"' || p[1] != ':' || (len == 12 && same(k, "__metadata__", 12)))
        return 0;
    fast o;
    const unsigned char *q = fast_value(p + 2, end, &o);
    if (!q)
        return 0;
    /* Shape (with room for the strides, but for a vector's), then the
     * name: one piece of arena. */
    size_t sb = sizeof(int64_t) * (o.rank > 1 ? 2 * o.rank : 1);
    int64_t *shape = ttsm__ckpt_arena(r->ck, sb + len + 1, 8);
    if (!shape) {
        ttsm__js_fail(&r->js, TTSM__JS_F_OTHER, "out of memory");
        r->js.st = oom(r, "keeping a tensor's name");
        return 1;
    }
    char *name = (char *)shape + sb;
    memcpy(name, k, len);
    name[len] = '\0';
    for (size_t i = 0; i < o.rank; i++) /* usually one or two: no memcpy call */
        shape[i] = o.dims[i];
    entry *e = &r->cur;
    e->name = name;
    e->name_len = (uint32_t)len;
    e->shape = shape;
    e->rank = (uint8_t)o.rank;
    e->dt = (uint8_t)o.dt;
    e->begin = o.begin;
    e->end = o.end;
    r->n_keys++;
    if (commit(r, e, o.n) == 0)
        r->js.p = q;
    return 1;
}

/* A tensor entry's value (depth 2): validated in full, checked only while
 * no earlier entry has failed (only the first failure is reported). */
static void scan_entry(reader *r, entry *e)
{
    ttsm__js *j = &r->js;
    int check = r->entry_err.rule == NULL;
    if (check && fast_entry(r, e))
        return;
    int c = ttsm__js_peek(j);
    if (c != '{') {
        ttsm__js_kind k = ttsm__js_value(j, 2, NULL, NULL);
        if (k && check) {
            char name[NAME_SHOW];
            pend(&r->entry_err, "bad tensor entry",
                 "'%s' is a JSON %s, not an object with dtype, shape and data_offsets",
                 SHOW(name, e->name, e->name_len), ttsm__js_kind_name(k));
        }
        return;
    }
    ttsm__js_take(j);
    fields f;
    memset(&f, 0, sizeof f);
    ttsm__js_keys keys = {0};
    if (ttsm__js_peek(j) == '}') {
        ttsm__js_take(j);
    } else {
        for (;;) {
            /* The three fields' repeats are found by `have`; other keys go
             * through a key set (none in a valid file). */
            if (ttsm__js_key(j, NULL) != 0)
                goto done;
            int field = is_key(j, "dtype", 5) ? 0 : is_key(j, "shape", 5) ? 1
                        : is_key(j, "data_offsets", 12) ? 2 : -1;
            int added = field >= 0 ? !f.have[field]
                                   : ttsm__js_keys_add(&keys, j->str.p, j->str.len);
            if (added < 0) {
                ttsm__js_fail(j, TTSM__JS_F_OTHER, "out of memory");
                j->st = oom(r, "checking an entry's keys");
                goto done;
            }
            if (added == 0) {
                char shown[64];
                ttsm__js_fail(j, TTSM__JS_F_DUPLICATE, "duplicate object key near '\"%s\"'",
                              SHOW(shown, j->str.p, j->str.len));
                goto done;
            }
            if (ttsm__js_colon(j) != 0)
                goto done;
            if (field == 0) {
                f.have[0] = 1;
                scan_dtype(r, &f, 3);
            } else if (field == 1) {
                f.have[1] = 1;
                scan_shape(r, &f, 3);
            } else if (field == 2) {
                f.have[2] = 1;
                scan_offsets(r, &f, 3);
            } else {
                if (!f.has_unexpected) {
                    f.has_unexpected = 1;
                    SHOW(f.unexpected, j->str.p, j->str.len);
                }
                ttsm__js_value(j, 3, NULL, NULL);
            }
            if (r->js.st != TTSM_OK)
                goto done;
            int more = ttsm__js_next(j, '}');
            if (more < 0)
                goto done;
            if (more == 0)
                break;
        }
    }
    if (check)
        check_entry(r, e, &f);
done:
    ttsm__js_keys_free(&keys);
}

/* ---- __metadata__ ------------------------------------------------------- */

static void scan_metadata(reader *r)
{
    ttsm__js *j = &r->js;
    int c = ttsm__js_peek(j);
    if (c != '{') {
        ttsm__js_kind k = ttsm__js_value(j, 2, NULL, NULL);
        if (k && k != TTSM__JS_NULL) /* the reference reads null as "no metadata" */
            pend(&r->meta_err, "bad __metadata__",
                 "__metadata__ is a JSON %s, not an object of string values",
                 ttsm__js_kind_name(k));
        return;
    }
    ttsm__js_take(j);
    ttsm__js_keys keys = {0};
    ttsm__sb key = {0};
    if (ttsm__js_peek(j) == '}') {
        ttsm__js_take(j);
        goto done;
    }
    for (;;) {
        if (ttsm__js_key(j, &keys) != 0 || ttsm__js_colon(j) != 0)
            goto done;
        key.len = 0;
        ttsm__sb_add(&key, j->str.p, j->str.len);
        ttsm__js_kind k;
        if (ttsm__js_peek(j) == '"') {
            int nul;
            k = ttsm__js_string(j, &nul) == 0 ? TTSM__JS_STRING : TTSM__JS_NONE;
            if (k && r->keep_meta && !r->meta_err.rule) {
                ttsm__sb_add(&r->meta, key.p, key.len + 1); /* with its NUL */
                ttsm__js_quote(&r->meta, j->str.p, j->str.len);
                ttsm__sb_add(&r->meta, "", 1);
                r->n_meta++;
            }
        } else {
            k = ttsm__js_value(j, 3, NULL, NULL);
            if (k) {
                char shown[NAME_SHOW];
                pend(&r->meta_err, "bad __metadata__",
                     "__metadata__ value of key '%s' is a JSON %s, not a string",
                     SHOW(shown, key.p, key.len), ttsm__js_kind_name(k));
            }
        }
        if (!k)
            goto done;
        if (key.failed || r->meta.failed) {
            ttsm__js_fail(j, TTSM__JS_F_OTHER, "out of memory");
            j->st = oom(r, "keeping __metadata__");
            goto done;
        }
        int more = ttsm__js_next(j, '}');
        if (more <= 0)
            goto done;
    }
done:
    ttsm__sb_free(&key);
    ttsm__js_keys_free(&keys);
}

/* ---- the header -------------------------------------------------------- */

static void scan_header(reader *r)
{
    ttsm__js *j = &r->js;
    if (!ttsm__js_open_top(j, &r->top, "the header"))
        return;
    if (ttsm__js_peek(j) == '}') {
        ttsm__js_take(j);
    } else {
        for (;;) {
            if (ttsm__js_peek(j) != '"') {
                if (j->st == TTSM_OK)
                    ttsm__js_fail(j, TTSM__JS_F_SYNTAX, "string or '}' expected");
                return;
            }
            if (r->direct && fast_member(r)) {
                if (j->st != TTSM_OK)
                    return;
                if (j->p < j->end && *j->p == ',') { /* the common case, without a call */
                    j->p++;
                    continue;
                }
                int more = ttsm__js_next(j, '}');
                if (more < 0)
                    return;
                if (more == 0)
                    break;
                continue;
            }
            if (ttsm__js_key(j, NULL) != 0)
                return;
            r->n_keys++;
            if (is_key(j, "__metadata__", 12)) {
                if (r->has_meta) {
                    ttsm__js_fail(j, TTSM__JS_F_DUPLICATE,
                                  "duplicate object key near '\"__metadata__\"'");
                    return;
                }
                r->has_meta = 1;
                if (ttsm__js_colon(j) != 0)
                    return;
                scan_metadata(r);
            } else {
                entry *e = add_key(r);
                if (!e || ttsm__js_colon(j) != 0)
                    return;
                scan_entry(r, e);
            }
            if (r->direct && (r->entry_err.rule || r->meta_err.rule))
                stop_direct(r);
            if (j->st != TTSM_OK)
                return;
            int more = ttsm__js_next(j, '}');
            if (more < 0)
                return;
            if (more == 0)
                break;
        }
    }
    ttsm__js_end(j);
}

/* File order: by data offsets; zero-size tensors sharing an offset by name. */
static int entry_cmp(const void *pa, const void *pb)
{
    const entry *a = pa, *b = pb;
    if (a->begin != b->begin)
        return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end)
        return a->end < b->end ? -1 : 1;
    size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(a->name, b->name, n);
    if (c != 0)
        return c;
    return a->name_len < b->name_len ? -1 : a->name_len > b->name_len;
}

static ttsm_status check_layout(reader *r, const entry *es, size_t n, uint64_t data_size)
{
    uint64_t expect = 0;
    char a[NAME_SHOW], b[NAME_SHOW];
    for (size_t i = 0; i < n; i++) {
        const entry *e = &es[i];
        if (e->begin < expect)
            return fmt_err(r, "overlapping tensors",
                           "tensor '%s' [%llu, %llu] overlaps tensor '%s', which ends at data "
                           "offset %llu",
                           SHOW(a, e->name, e->name_len), (unsigned long long)e->begin,
                           (unsigned long long)e->end, SHOW(b, es[i - 1].name, es[i - 1].name_len),
                           (unsigned long long)expect);
        if (e->begin > expect)
            return fmt_err(r, "gap in data section",
                           "no tensor covers data bytes [%llu, %llu) (file offset %llu) before "
                           "tensor '%s'",
                           (unsigned long long)expect, (unsigned long long)e->begin,
                           (unsigned long long)(r->data_start + expect),
                           SHOW(a, e->name, e->name_len));
        expect = e->end;
    }
    if (expect > data_size)
        return fmt_err(r, "data beyond end of file",
                       "tensor '%s' ends at data offset %llu (file offset %llu), the file ends at "
                       "data offset %llu",
                       SHOW(a, es[n - 1].name, es[n - 1].name_len), (unsigned long long)expect,
                       (unsigned long long)(r->data_start + expect),
                       (unsigned long long)data_size);
    if (expect < data_size)
        return fmt_err(r, "trailing bytes",
                       "the tensors cover %llu data bytes but the data section has %llu: bytes "
                       "from file offset %llu belong to no tensor",
                       (unsigned long long)expect, (unsigned long long)data_size,
                       (unsigned long long)(r->data_start + expect));
    return TTSM_OK;
}

/* A shard may only hold the tensors its index places in it. */
static ttsm_status check_mapping(ttsm_checkpoint *ck, const ttsm__st_shard *sh, const entry *e,
                                 ttsm_error *err)
{
    char name[NAME_SHOW];
    const ttsm__st_index *ix = sh->index;
    const char *self = ix->shards[sh->shard];
    long m = ttsm__st_index_find(ix, e->name, e->name_len);
    if (m < 0)
        return ttsm__err(err, TTSM_ERR_FORMAT, sh->index_path, "tensor not in weight_map",
                         "shard '%s' holds tensor '%s', which the weight_map does not list", self,
                         SHOW(name, e->name, e->name_len));
    if (ix->map[m].shard == sh->shard)
        return TTSM_OK;
    const char *want = ix->shards[ix->map[m].shard];
    SHOW(name, e->name, e->name_len);
    if (ttsm_checkpoint_find(ck, e->name))
        return ttsm__err(err, TTSM_ERR_FORMAT, sh->index_path, "duplicate tensor across shards",
                         "tensor '%s' is in shard '%s' and again in shard '%s'", name, want, self);
    return ttsm__err(err, TTSM_ERR_FORMAT, sh->index_path, "tensor in wrong shard",
                     "tensor '%s' is in shard '%s' but the weight_map places it in '%s'", name,
                     self, want);
}

static ttsm_status add_entries(reader *r, uint32_t fi, const ttsm__st_shard *shard)
{
    size_t first = r->ck->n_tensors;
    ttsm_status st = ttsm__ckpt_reserve(r->ck, r->n, r->n, r->err);
    for (size_t i = 0; st == TTSM_OK && i < r->n; i++) {
        const entry *e = &r->es[i];
        if (shard && (st = check_mapping(r->ck, shard, e, r->err)) != TTSM_OK)
            return st;
        uint32_t si;
        st = ttsm__ckpt_add_storage(r->ck, fi, r->data_start + e->begin, e->end - e->begin, NULL,
                                    &si, r->err);
        if (st != TTSM_OK)
            return st;
        ttsm__tensor_desc d = {.name = e->name,
                               .name_len = e->name_len,
                               .dtype = st_dtypes[e->dt].dtype,
                               .rank = e->rank,
                               .shape = e->shape,
                               .strides = NULL,
                               .storage = si,
                               .storage_offset = 0};
        st = ttsm__ckpt_append_tensor(r->ck, &d, r->err);
    }
    return st == TTSM_OK ? ttsm__ckpt_index_tensors(r->ck, first, NULL, r->err) : st;
}

static ttsm_status add_metadata(reader *r)
{
    const char *p = r->meta.p;
    for (size_t i = 0; i < r->n_meta; i++) {
        const char *key = p, *json = key + strlen(key) + 1;
        p = json + strlen(json) + 1;
        ttsm_status st = ttsm__ckpt_add_meta(r->ck, key, "str", json, r->err);
        if (st != TTSM_OK)
            return st;
    }
    return TTSM_OK;
}

/* The length checks, then the header. */
static ttsm_status read_length(reader *r, const ttsm__file *f, uint64_t *len)
{
    unsigned char lb[8];
    if (f->size < 8)
        return fmt_err(r, "file too small", "%llu bytes cannot hold the 8-byte header length",
                       (unsigned long long)f->size);
    ttsm_status st = ttsm__file_read(f, 0, lb, 8, r->err);
    if (st != TTSM_OK)
        return st;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | lb[i];
    if (n > TTSM__ST_MAX_HEADER)
        return fmt_err(r, "header too large",
                       "header length %llu (offset 0) exceeds the limit of %llu bytes",
                       (unsigned long long)n, TTSM__ST_MAX_HEADER);
    if (n > f->size - 8)
        return fmt_err(r, "header length exceeds file",
                       "header length %llu (offset 0) needs %llu bytes after offset 8, the file "
                       "has %llu",
                       (unsigned long long)n, (unsigned long long)n,
                       (unsigned long long)(f->size - 8));
    if (n < 2)
        return fmt_err(r, "header too small",
                       "header length %llu (offset 0) cannot hold a JSON object",
                       (unsigned long long)n);
    *len = n;
    return TTSM_OK;
}

/* A failure of the scan itself: UTF-8, syntax, duplicate, I/O, memory. */
static ttsm_status scan_failure(reader *r)
{
    ttsm__js *j = &r->js;
    ttsm__js_check_rest(j);
    unsigned long long at = (unsigned long long)(j->msg_base + j->fail_off);
    switch (j->failure) {
    case TTSM__JS_F_UTF8:
        return fmt_err(r, "header not UTF-8", "invalid UTF-8 byte 0x%02x at offset %llu",
                       j->bad_byte, at);
    case TTSM__JS_F_SYNTAX: return fmt_err(r, "invalid JSON header", "%s at offset %llu", j->msg, at);
    case TTSM__JS_F_DUPLICATE: return fmt_err(r, "duplicate key", "%s at offset %llu", j->msg, at);
    }
    return j->st; /* the error is filled in already */
}

static ttsm_status read_pass(ttsm_checkpoint *ck, uint32_t fi, const ttsm__st_shard *shard,
                             int direct, ttsm_error *err)
{
    const ttsm__file *f = &ck->files[fi];
    reader r;
    memset(&r, 0, sizeof r);
    r.ck = ck;
    r.path = f->path;
    r.err = err;
    r.keep_meta = shard == NULL;
    r.direct = direct;
    r.fi = fi;
    r.shard = shard;
    size_t first = ck->n_tensors;
    uint64_t n = 0;
    ttsm_status st = read_length(&r, f, &n);
    if (st != TTSM_OK)
        return st;
    r.data_start = 8 + n;
    if (f->mem && !ck->json_window)
        ttsm__js_init_mem(&r.js, f->mem + 8, (size_t)n, 8, f->path, err);
    else
        ttsm__js_init_window(&r.js, f, 8, n, 8, f->path, err, ck->json_window);
    /* Writers spend about 100 bytes of header on an entry: room for that
     * many up front spares the table's copies as it grows. */
    if (direct && (st = ttsm__ckpt_reserve(ck, (size_t)(n / 96), (size_t)(n / 96), err)) != TTSM_OK)
        goto done;
    scan_header(&r);
    if (direct) {
        /* Any doubt at all sends the file to the second pass. */
        if (r.js.st != TTSM_OK)
            st = r.js.failure == TTSM__JS_F_OTHER ? r.js.st : TTSM_ERR_FORMAT;
        else if (r.top != TTSM__JS_OBJECT || r.meta_err.rule || r.entry_err.rule ||
                 r.n_keys > TTSM__MAX_TENSORS || r.expect != f->size - r.data_start)
            st = TTSM_ERR_FORMAT;
        else if ((st = ttsm__ckpt_index_tensors(ck, first, NULL, err)) == TTSM_OK && !shard)
            st = add_metadata(&r);
        goto done;
    }
    if (r.js.st != TTSM_OK) {
        st = scan_failure(&r);
        goto done;
    }
    /* The rules that need the whole header, in their documented order. */
    if (r.top != TTSM__JS_OBJECT) {
        st = fmt_err(&r, "header not an object", "the header is a JSON %s",
                     ttsm__js_kind_name(r.top));
        goto done;
    }
    if (r.meta_err.rule) {
        st = fmt_err(&r, r.meta_err.rule, "%s", r.meta_err.detail);
        goto done;
    }
    if (r.n_keys > TTSM__MAX_TENSORS) {
        st = fmt_err(&r, "too many tensors", "%zu header entries, the limit is %u", r.n_keys,
                     TTSM__MAX_TENSORS);
        goto done;
    }
    if (r.entry_err.rule) {
        st = fmt_err(&r, r.entry_err.rule, "%s", r.entry_err.detail);
        goto done;
    }
    ttsm__free(r.slot); /* not needed past the scan: make room for the table */
    r.slot = NULL;
    for (size_t i = 1; i < r.n; i++)
        if (entry_cmp(&r.es[i - 1], &r.es[i]) > 0) {
            qsort(r.es, r.n, sizeof *r.es, entry_cmp);
            break;
        }
    if ((st = check_layout(&r, r.es, r.n, f->size - r.data_start)) != TTSM_OK ||
        (st = add_entries(&r, fi, shard)) != TTSM_OK)
        goto done;
    if (!shard)
        st = add_metadata(&r);
done:
    ttsm__js_free(&r.js);
    ttsm__free(r.es);
    ttsm__free(r.slot);
    ttsm__sb_free(&r.meta);
    return st;
}

/* Two passes, the second only when the first is in any doubt. Writers put
 * the header's entries in file order (the reference writer does), so the
 * first pass adds each valid entry to the table as it is read, and the name
 * index finds a repeated name; it keeps no list of entries and no set of
 * keys, whose memory and random accesses cost more than the reading itself
 * on a large header. At the first thing it does not expect (an entry out of
 * order, a gap, any broken rule, a JSON error), it stops, the table is
 * rolled back and the second pass reads the header again the careful way:
 * every key through a set (a repeat is a JSON error, reported where jansson
 * reports it), the entries listed, sorted, checked and only then added, so
 * every refusal is the one the documented order of the rules gives. */
ttsm_status ttsm__st_read_file(ttsm_checkpoint *ck, uint32_t fi, const ttsm__st_shard *shard,
                               ttsm_error *err)
{
    size_t nt = ck->n_tensors, ns = ck->n_storages, nm = ck->n_meta;
    ttsm_status st = read_pass(ck, fi, shard, 1, err);
    if (st == TTSM_ERR_FORMAT) {
        ttsm__ckpt_truncate(ck, nt, ns, nm);
        st = read_pass(ck, fi, shard, 0, err);
    }
    return st;
}

ttsm_status ttsm__read_safetensors(ttsm_checkpoint *ck, uint32_t file_index, ttsm_error *err)
{
    ttsm_status st = ttsm__st_read_file(ck, file_index, NULL, err);
    if (st == TTSM_OK) {
        ck->format = TTSM_FORMAT_SAFETENSORS;
        ck->version = 0;
    }
    return st;
}
