/* torch_pickle.c - the restricted unpickler (see torch_pickle.h).
 * A pickle is a program for a stack machine; this one interprets only the
 * opcodes that build plain values, and maps the few globals a state dict
 * needs to built-in meanings instead of importing anything. Every length,
 * index and count comes from the file, so each is checked and capped. */
#include "formats/torch_pickle.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/text.h"

/* ---- the allow-list ------------------------------------------------------- */

enum gkind {
    G_ODICT,
    G_REBUILD_V1,
    G_REBUILD_V2,
    G_REBUILD_V3,
    G_PARAM,
    G_PARAM_STATE,
    G_FROM_TYPE_V2,
    G_SIZE,
    G_TENSOR_CLASS,    /* torch.Tensor, Parameter: only as _rebuild_from_type_v2 / NEWOBJ types */
    G_CODECS_ENCODE,   /* how protocol 2 spells a bytes value */
    G_STORAGE,         /* typed storage class: only as a persistent id's type */
    G_UNTYPED_STORAGE,
    G_DTYPE
};

typedef struct allowed_global {
    const char *module, *name;
    uint8_t kind;
    ttsm_dtype dtype;
} allowed_global;

#define DT(x) TTSM_DTYPE_##x
static const allowed_global allowed[] = {
    {"collections", "OrderedDict", G_ODICT, DT(INVALID)},
    {"torch._utils", "_rebuild_tensor", G_REBUILD_V1, DT(INVALID)},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_V2, DT(INVALID)},
    {"torch._utils", "_rebuild_tensor_v3", G_REBUILD_V3, DT(INVALID)},
    {"torch._utils", "_rebuild_parameter", G_PARAM, DT(INVALID)},
    {"torch._utils", "_rebuild_parameter_with_state", G_PARAM_STATE, DT(INVALID)},
    {"torch._tensor", "_rebuild_from_type_v2", G_FROM_TYPE_V2, DT(INVALID)},
    {"torch", "Size", G_SIZE, DT(INVALID)},
    {"torch", "Tensor", G_TENSOR_CLASS, DT(INVALID)},
    {"torch.nn.parameter", "Parameter", G_TENSOR_CLASS, DT(INVALID)},
    {"_codecs", "encode", G_CODECS_ENCODE, DT(INVALID)},
    {"torch", "FloatStorage", G_STORAGE, DT(F32)},
    {"torch", "DoubleStorage", G_STORAGE, DT(F64)},
    {"torch", "HalfStorage", G_STORAGE, DT(F16)},
    {"torch", "BFloat16Storage", G_STORAGE, DT(BF16)},
    {"torch", "LongStorage", G_STORAGE, DT(I64)},
    {"torch", "IntStorage", G_STORAGE, DT(I32)},
    {"torch", "ShortStorage", G_STORAGE, DT(I16)},
    {"torch", "CharStorage", G_STORAGE, DT(I8)},
    {"torch", "ByteStorage", G_STORAGE, DT(U8)},
    {"torch", "BoolStorage", G_STORAGE, DT(BOOL)},
    {"torch", "ComplexFloatStorage", G_STORAGE, DT(C64)},
    {"torch", "ComplexDoubleStorage", G_STORAGE, DT(C128)},
    {"torch", "UntypedStorage", G_UNTYPED_STORAGE, DT(U8)},
    {"torch.storage", "UntypedStorage", G_UNTYPED_STORAGE, DT(U8)},
    {"torch", "float32", G_DTYPE, DT(F32)},
    {"torch", "float64", G_DTYPE, DT(F64)},
    {"torch", "float16", G_DTYPE, DT(F16)},
    {"torch", "bfloat16", G_DTYPE, DT(BF16)},
    {"torch", "int64", G_DTYPE, DT(I64)},
    {"torch", "int32", G_DTYPE, DT(I32)},
    {"torch", "int16", G_DTYPE, DT(I16)},
    {"torch", "int8", G_DTYPE, DT(I8)},
    {"torch", "uint8", G_DTYPE, DT(U8)},
    {"torch", "uint16", G_DTYPE, DT(U16)},
    {"torch", "uint32", G_DTYPE, DT(U32)},
    {"torch", "uint64", G_DTYPE, DT(U64)},
    {"torch", "bool", G_DTYPE, DT(BOOL)},
    {"torch", "complex32", G_DTYPE, DT(C32)},
    {"torch", "complex64", G_DTYPE, DT(C64)},
    {"torch", "complex128", G_DTYPE, DT(C128)},
    {"torch", "float8_e5m2", G_DTYPE, DT(F8_E5M2)},
    {"torch", "float8_e4m3fn", G_DTYPE, DT(F8_E4M3)},
    {"torch", "float8_e8m0fnu", G_DTYPE, DT(F8_E8M0)},
    /* dtypes torch can name but ttsm cannot hold: allowed as values
     * (metadata), refused as a tensor's element type. */
    {"torch", "float8_e5m2fnuz", G_DTYPE, DT(INVALID)},
    {"torch", "float8_e4m3fnuz", G_DTYPE, DT(INVALID)},
    {"torch", "qint8", G_DTYPE, DT(INVALID)},
    {"torch", "quint8", G_DTYPE, DT(INVALID)},
    {"torch", "qint32", G_DTYPE, DT(INVALID)},
};
#undef DT
#define N_ALLOWED (sizeof allowed / sizeof allowed[0])

const char *ttsm__pickle_global_name(uint32_t g, char *buf, size_t size)
{
    if (g >= N_ALLOWED)
        snprintf(buf, size, "?");
    else
        snprintf(buf, size, "%s.%s", allowed[g].module, allowed[g].name);
    return buf;
}

int ttsm__pickle_global_dtype(uint32_t g, ttsm_dtype *dtype)
{
    if (g >= N_ALLOWED || allowed[g].kind != G_DTYPE)
        return 0;
    *dtype = allowed[g].dtype;
    return 1;
}

/* Why a refused global is refused, for the hint. */
static const char *refusal_hint(const char *module, const char *name)
{
    if (strncmp(module, "__torch__", 9) == 0 || strncmp(module, "torch.jit", 9) == 0)
        return "this looks like a TorchScript archive (torch.jit.save); save the weights with "
               "torch.save(model.state_dict(), path) instead";
    if (strstr(name, "qtensor") || strstr(name, "QInt") || strstr(name, "QUInt"))
        return "quantized tensors are not supported; dequantize before saving";
    if (strstr(name, "sparse") || strstr(name, "nested"))
        return "sparse and nested tensors are not supported; save dense tensors";
    if (strncmp(module, "numpy", 5) == 0)
        return "NumPy objects are not supported; store torch tensors or plain values";
    if (strstr(name, "meta_tensor") || strstr(name, "wrapper_subclass"))
        return "tensors without data (meta) or tensor subclasses are not supported";
    return "only tensors, dicts, lists, tuples and plain values are read; re-save the state dict "
           "with torch.save(model.state_dict(), path)";
}

/* ---- arena ---------------------------------------------------------------- */

struct achunk {
    struct achunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

struct ttsm__pickle_arena {
    struct achunk *chunks;
    uint64_t total;
    uint64_t refs;
};

uint64_t ttsm__pickle_arena_refs(const ttsm__pickle_arena *a)
{
    return a->refs;
}

ttsm__pickle_arena *ttsm__pickle_arena_new(void)
{
    return ttsm__calloc(1, sizeof(ttsm__pickle_arena));
}

void ttsm__pickle_arena_free(ttsm__pickle_arena *a)
{
    if (!a)
        return;
    struct achunk *c = a->chunks;
    while (c) {
        struct achunk *n = c->next;
        ttsm__free(c);
        c = n;
    }
    ttsm__free(a);
}

/* NULL when out of memory or over TTSM__PICKLE_MAX_ARENA. 8-byte aligned. */
static void *aalloc(ttsm__pickle_arena *a, size_t size)
{
    size = (size + 7) & ~(size_t)7;
    struct achunk *c = a->chunks;
    if (c && size <= c->cap - c->used) {
        void *p = c->data + c->used;
        c->used += size;
        return p;
    }
    size_t cap = size > 65536 ? size : 65536;
    if (a->total + cap > TTSM__PICKLE_MAX_ARENA || cap > SIZE_MAX - sizeof *c)
        return NULL;
    c = ttsm__malloc(sizeof *c + cap);
    if (!c)
        return NULL;
    a->total += cap;
    c->next = a->chunks;
    c->cap = cap;
    c->used = size;
    a->chunks = c;
    return c->data;
}

/* ---- machine state -------------------------------------------------------- */

typedef struct memo_slot {
    uint32_t key;
    uint32_t used;
    ttsm__pv *v;
} memo_slot;

typedef struct up {
    ttsm__pickle_arena *a;
    const ttsm__pickle_src *src;
    const uint8_t *d;
    size_t n, pos, op_pos;
    uint8_t op;
    ttsm__pv **stack;
    size_t sp, scap;
    size_t *marks;
    size_t nmarks, mcap;
    memo_slot *memo;
    size_t memo_n, memo_cap;
    ttsm__pv *v_none, *v_true, *v_false, *v_empty_tuple;
    int truncated;
    ttsm_error *err;
} up;

static const char *opname(uint8_t op)
{
    switch (op) {
    case '(': return "MARK";
    case '.': return "STOP";
    case '0': return "POP";
    case '1': return "POP_MARK";
    case 'J': return "BININT";
    case 'K': return "BININT1";
    case 'M': return "BININT2";
    case 'N': return "NONE";
    case 'Q': return "BINPERSID";
    case 'R': return "REDUCE";
    case 'U': return "SHORT_BINSTRING";
    case 'T': return "BINSTRING";
    case 'X': return "BINUNICODE";
    case 'a': return "APPEND";
    case 'b': return "BUILD";
    case 'c': return "GLOBAL";
    case '}': return "EMPTY_DICT";
    case 'e': return "APPENDS";
    case 'h': return "BINGET";
    case 'i': return "INST";
    case 'j': return "LONG_BINGET";
    case ']': return "EMPTY_LIST";
    case 'o': return "OBJ";
    case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT";
    case 's': return "SETITEM";
    case 't': return "TUPLE";
    case ')': return "EMPTY_TUPLE";
    case 'u': return "SETITEMS";
    case 'G': return "BINFLOAT";
    case 'B': return "BINBYTES";
    case 'C': return "SHORT_BINBYTES";
    case 0x80: return "PROTO";
    case 0x81: return "NEWOBJ";
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2";
    case 0x87: return "TUPLE3";
    case 0x88: return "NEWTRUE";
    case 0x89: return "NEWFALSE";
    case 0x8a: return "LONG1";
    case 0x8b: return "LONG4";
    case 0x8c: return "SHORT_BINUNICODE";
    case 0x8d: return "BINUNICODE8";
    case 0x8e: return "BINBYTES8";
    case 0x8f: return "EMPTY_SET";
    case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";
    case 0x92: return "NEWOBJ_EX";
    case 0x93: return "STACK_GLOBAL";
    case 0x94: return "MEMOIZE";
    case 0x95: return "FRAME";
    case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    case 'P': return "PERSID";
    case 'I': return "INT";
    case 'L': return "LONG";
    case 'F': return "FLOAT";
    case 'S': return "STRING";
    case 'V': return "UNICODE";
    case 'g': return "GET";
    case 'p': return "PUT";
    case 'l': return "LIST";
    case 'd': return "DICT";
    case '2': return "DUP";
    default: return NULL;
    }
}

/* A format error located at the current opcode. */
TTSM__PRINTF(3, 4)
static ttsm_status bad(up *u, const char *rule, const char *fmt, ...)
{
    char detail[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    const char *on = opname(u->op);
    return ttsm__err(u->err, TTSM_ERR_FORMAT, u->src->subject, rule,
                     "%s (%s at %s offset %llu)", detail, on ? on : "opcode", u->src->stream,
                     (unsigned long long)(u->src->base + u->op_pos));
}

static ttsm_status oom(up *u)
{
    return ttsm__err(u->err, TTSM_ERR_OUT_OF_MEMORY, u->src->subject, "out of memory",
                     "unpickling %s (at offset %llu; values are capped at %llu bytes)",
                     u->src->stream, (unsigned long long)(u->src->base + u->op_pos),
                     (unsigned long long)TTSM__PICKLE_MAX_ARENA);
}

static ttsm_status need(up *u, size_t k)
{
    if (u->n - u->pos >= k)
        return TTSM_OK;
    u->truncated = 1;
    return bad(u, "truncated pickle", "needs %zu more bytes, %zu are left", k, u->n - u->pos);
}

static uint64_t le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

static ttsm__pv *new_value(up *u, uint8_t kind)
{
    ttsm__pv *v = aalloc(u->a, sizeof *v);
    if (v) {
        memset(v, 0, sizeof *v);
        v->kind = kind;
        u->a->refs++;
    }
    return v;
}

static const char *kind_name(const ttsm__pv *v)
{
    static const char *const names[] = {"None", "bool",  "int",  "int",  "float",
                                        "str",  "bytes", "tuple", "list", "dict",
                                        "global", "storage", "tensor"};
    return v->kind < sizeof names / sizeof names[0] ? names[v->kind] : "?";
}

/* ---- stack, marks, memo --------------------------------------------------- */

static size_t mark_base(const up *u)
{
    return u->nmarks ? u->marks[u->nmarks - 1] : 0;
}

static ttsm_status push(up *u, ttsm__pv *v)
{
    if (!v)
        return oom(u);
    if (u->sp >= TTSM__PICKLE_MAX_STACK)
        return bad(u, "pickle stack too deep", "more than %u values on the stack",
                   TTSM__PICKLE_MAX_STACK);
    if (ttsm__grow((void **)&u->stack, &u->scap, u->sp + 1, sizeof *u->stack,
                   TTSM__PICKLE_MAX_STACK) != 0)
        return oom(u);
    u->stack[u->sp++] = v;
    return TTSM_OK;
}

/* Pops one value above the current mark. */
static ttsm_status pop(up *u, ttsm__pv **out)
{
    if (u->sp <= mark_base(u))
        return bad(u, "pickle stack underflow", "no value to pop");
    *out = u->stack[--u->sp];
    return TTSM_OK;
}

static ttsm_status top(up *u, ttsm__pv **out)
{
    if (u->sp <= mark_base(u))
        return bad(u, "pickle stack underflow", "no value on the stack");
    *out = u->stack[u->sp - 1];
    return TTSM_OK;
}

/* Pops everything above the last MARK and the mark itself. */
static ttsm_status pop_mark(up *u, ttsm__pv ***items, size_t *n)
{
    if (u->nmarks == 0)
        return bad(u, "pickle stack underflow", "no MARK to pop to");
    size_t base = u->marks[--u->nmarks];
    *items = u->stack ? u->stack + base : NULL;
    *n = u->sp - base;
    u->sp = base;
    return TTSM_OK;
}

static memo_slot *memo_find(up *u, uint32_t key)
{
    if (!u->memo_cap)
        return NULL;
    size_t mask = u->memo_cap - 1;
    for (size_t i = (key * 2654435761u) & mask;; i = (i + 1) & mask) {
        if (!u->memo[i].used)
            return NULL;
        if (u->memo[i].key == key)
            return &u->memo[i];
    }
}

static ttsm_status memo_put(up *u, uint32_t key, ttsm__pv *v)
{
    memo_slot *s = memo_find(u, key);
    if (s) {
        s->v = v;
        return TTSM_OK;
    }
    if (u->memo_n >= TTSM__PICKLE_MAX_MEMO)
        return bad(u, "pickle memo too large", "more than %u memo entries", TTSM__PICKLE_MAX_MEMO);
    if ((u->memo_n + 1) * 2 > u->memo_cap) {
        size_t ncap = u->memo_cap ? u->memo_cap * 2 : 256;
        memo_slot *old = u->memo;
        size_t ocap = u->memo_cap;
        memo_slot *nm = ttsm__calloc(ncap, sizeof *nm);
        if (!nm)
            return oom(u);
        u->memo = nm;
        u->memo_cap = ncap;
        for (size_t i = 0; i < ocap; i++) {
            if (!old[i].used)
                continue;
            size_t j = (old[i].key * 2654435761u) & (ncap - 1);
            while (nm[j].used)
                j = (j + 1) & (ncap - 1);
            nm[j] = old[i];
        }
        ttsm__free(old);
    }
    size_t mask = u->memo_cap - 1;
    size_t i = (key * 2654435761u) & mask;
    while (u->memo[i].used)
        i = (i + 1) & mask;
    u->memo[i].used = 1;
    u->memo[i].key = key;
    u->memo[i].v = v;
    u->memo_n++;
    return TTSM_OK;
}

/* ---- containers ----------------------------------------------------------- */

static ttsm__pv *new_seq(up *u, uint8_t kind, ttsm__pv **items, size_t n)
{
    ttsm__pv *v = new_value(u, kind);
    if (!v)
        return NULL;
    if (n) {
        if (n > SIZE_MAX / sizeof *items)
            return NULL;
        v->u.seq.items = aalloc(u->a, n * sizeof *items);
        if (!v->u.seq.items)
            return NULL;
        memcpy(v->u.seq.items, items, n * sizeof *items);
    }
    v->u.seq.n = v->u.seq.cap = n;
    u->a->refs += n;
    return v;
}

static ttsm_status seq_extend(up *u, ttsm__pv *c, ttsm__pv *const *items, size_t n)
{
    if (n == 0)
        return TTSM_OK;
    if (c->u.seq.cap - c->u.seq.n < n) {
        size_t need = c->u.seq.n + n, ncap = c->u.seq.cap ? c->u.seq.cap : 4;
        while (ncap < need)
            ncap = ncap > SIZE_MAX / 4 ? need : ncap * 2;
        if (ncap > SIZE_MAX / sizeof *items)
            return oom(u);
        ttsm__pv **ni = aalloc(u->a, ncap * sizeof *items);
        if (!ni)
            return oom(u);
        if (c->u.seq.n)
            memcpy(ni, c->u.seq.items, c->u.seq.n * sizeof *items);
        c->u.seq.items = ni;
        c->u.seq.cap = ncap;
    }
    memcpy(c->u.seq.items + c->u.seq.n, items, n * sizeof *items);
    c->u.seq.n += n;
    u->a->refs += n;
    return TTSM_OK;
}

/* ---- scalars -------------------------------------------------------------- */

/* UTF-8 as Python writes it: surrogate code points are allowed (it encodes
 * with "surrogatepass"), overlong forms and values past U+10FFFF are not. */
static int utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1fu;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0fu;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07u;
        } else {
            return 0;
        }
        if (n - i <= k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3fu);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        i += k + 1;
    }
    return 1;
}

static ttsm_status push_str(up *u, uint8_t kind, uint64_t len)
{
    ttsm_status st;
    if (len > u->n - u->pos) {
        u->truncated = 1;
        return bad(u, "truncated pickle", "a %llu-byte string runs past the end (%zu bytes left)",
                   (unsigned long long)len, u->n - u->pos);
    }
    const uint8_t *p = u->d + u->pos;
    if (kind == TTSM__PV_STR && !utf8_ok(p, (size_t)len))
        return bad(u, "bad pickle string", "a %llu-byte string is not valid UTF-8",
                   (unsigned long long)len);
    u->pos += (size_t)len;
    ttsm__pv *v = new_value(u, kind);
    if (v) {
        v->u.s.p = (const char *)p;
        v->u.s.n = (size_t)len;
    }
    if ((st = push(u, v)) != TTSM_OK)
        return st;
    return TTSM_OK;
}

/* LONG1/LONG4: little-endian two's complement of any length. */
static ttsm_status push_long(up *u, uint64_t len)
{
    if (len > TTSM__PICKLE_MAX_LONG)
        return bad(u, "pickle integer too long", "%llu bytes, the limit is %u",
                   (unsigned long long)len, TTSM__PICKLE_MAX_LONG);
    ttsm_status st = need(u, (size_t)len);
    if (st != TTSM_OK)
        return st;
    const uint8_t *p = u->d + u->pos;
    size_t n = (size_t)len;
    u->pos += n;
    /* Trailing bytes that only repeat the sign do not change the value. */
    uint8_t sign = n && (p[n - 1] & 0x80) ? 0xff : 0x00;
    size_t sig = n;
    while (sig > 1 && p[sig - 1] == sign && ((p[sig - 2] & 0x80) == (sign & 0x80)))
        sig--;
    ttsm__pv *v;
    if (sig <= 8) {
        uint64_t x = sign ? UINT64_MAX : 0;
        for (size_t i = 0; i < sig; i++) {
            x &= ~((uint64_t)0xff << (8 * i));
            x |= (uint64_t)p[i] << (8 * i);
        }
        v = new_value(u, TTSM__PV_INT);
        if (v)
            memcpy(&v->u.i, &x, sizeof x);
    } else {
        v = new_value(u, TTSM__PV_BIGINT);
        if (v) {
            v->u.s.p = (const char *)p;
            v->u.s.n = sig;
        }
    }
    return push(u, v);
}

static ttsm_status push_int(up *u, int64_t x)
{
    ttsm__pv *v = new_value(u, TTSM__PV_INT);
    if (v)
        v->u.i = x;
    return push(u, v);
}

/* Reads a '\n'-terminated GLOBAL/INST operand. */
static ttsm_status read_line(up *u, const char **s, size_t *len)
{
    const uint8_t *start = u->d + u->pos;
    size_t left = u->n - u->pos;
    size_t lim = left < TTSM__PICKLE_MAX_GLOBAL + 1 ? left : TTSM__PICKLE_MAX_GLOBAL + 1;
    const uint8_t *nl = memchr(start, '\n', lim);
    if (!nl) {
        if (left <= TTSM__PICKLE_MAX_GLOBAL) {
            u->truncated = 1;
            return bad(u, "truncated pickle", "a global name runs past the end");
        }
        return bad(u, "bad pickle global", "a module or name is longer than %u bytes",
                   TTSM__PICKLE_MAX_GLOBAL);
    }
    *s = (const char *)start;
    *len = (size_t)(nl - start);
    u->pos += *len + 1;
    return TTSM_OK;
}

/* Names printed in messages, capped, through the one sanitiser. */
static void printable(char *out, size_t cap, const char *s, size_t n)
{
    ttsm__printable(s, n, out, cap);
}

static ttsm_status push_global(up *u, const char *mod, size_t ml, const char *name, size_t nl)
{
    for (uint32_t g = 0; g < N_ALLOWED; g++) {
        if (strlen(allowed[g].module) == ml && memcmp(allowed[g].module, mod, ml) == 0 &&
            strlen(allowed[g].name) == nl && memcmp(allowed[g].name, name, nl) == 0) {
            ttsm__pv *v = new_value(u, TTSM__PV_GLOBAL);
            if (v)
                v->u.global = g;
            return push(u, v);
        }
    }
    char m[120], n[120], what[260];
    printable(m, sizeof m, mod, ml);
    printable(n, sizeof n, name, nl);
    snprintf(what, sizeof what, "refusing %s.%s", m, n);
    ttsm_status st = ttsm__err(u->err, TTSM_ERR_FORMAT, u->src->subject, what,
                               "checkpoints are read as data (%s at %s offset %llu)",
                               opname(u->op), u->src->stream,
                               (unsigned long long)(u->src->base + u->op_pos));
    ttsm__err_hint(u->err, "%s", refusal_hint(m, n));
    return st;
}

/* "module.name" of an allowed global in a per-call buffer. */
#define global_full(g) ttsm__pickle_global_name((g), (char[96]){0}, 96)

/* ---- tensors -------------------------------------------------------------- */

static ttsm_status int_arg(up *u, const ttsm__pv *v, const char *fn, const char *what, int64_t *out)
{
    if (v->kind != TTSM__PV_INT || v->u.i < 0)
        return bad(u, "bad tensor record", "%s: %s must be a non-negative int, not %s", fn, what,
                   v->kind == TTSM__PV_INT ? "negative" : kind_name(v));
    *out = v->u.i;
    return TTSM_OK;
}

static ttsm_status dims_arg(up *u, const ttsm__pv *v, const char *fn, const char *what,
                            int64_t **out, uint32_t *rank)
{
    if (v->kind != TTSM__PV_TUPLE)
        return bad(u, "bad tensor record", "%s: %s must be a tuple, not %s", fn, what,
                   kind_name(v));
    if (v->u.seq.n > TTSM__MAX_RANK)
        return bad(u, "bad tensor record", "%s: %s has %zu dimensions, the limit is %u", fn, what,
                   v->u.seq.n, TTSM__MAX_RANK);
    int64_t *d = aalloc(u->a, sizeof *d * (v->u.seq.n ? v->u.seq.n : 1));
    if (!d)
        return oom(u);
    for (size_t i = 0; i < v->u.seq.n; i++) {
        ttsm_status st = int_arg(u, v->u.seq.items[i], fn, what, &d[i]);
        if (st != TTSM_OK)
            return st;
    }
    *out = d;
    *rank = (uint32_t)v->u.seq.n;
    return TTSM_OK;
}

/* _rebuild_tensor (4 args), _v2 (6-7: + requires_grad, hooks[, metadata]),
 * _v3 (7-8: + dtype[, metadata]). */
static ttsm_status rebuild_tensor(up *u, uint8_t kind, const ttsm__pv *args, ttsm__pv **out)
{
    const char *fn = kind == G_REBUILD_V1 ? "_rebuild_tensor"
                     : kind == G_REBUILD_V2 ? "_rebuild_tensor_v2"
                                            : "_rebuild_tensor_v3";
    size_t n = args->u.seq.n, lo = kind == G_REBUILD_V1 ? 4 : kind == G_REBUILD_V2 ? 6 : 7;
    if (n < lo || n > (kind == G_REBUILD_V1 ? 4 : lo + 1))
        return bad(u, "bad tensor record", "%s takes %zu or %zu arguments, got %zu", fn, lo,
                   kind == G_REBUILD_V1 ? lo : lo + 1, n);
    ttsm__pv *const *a = args->u.seq.items;
    if (a[0]->kind != TTSM__PV_STORAGE)
        return bad(u, "bad tensor record", "%s: the first argument must be a storage, not %s", fn,
                   kind_name(a[0]));
    int64_t offset = 0;
    int64_t *shape, *strides;
    uint32_t rank, srank;
    ttsm_status st;
    if ((st = int_arg(u, a[1], fn, "storage_offset", &offset)) != TTSM_OK ||
        (st = dims_arg(u, a[2], fn, "size", &shape, &rank)) != TTSM_OK ||
        (st = dims_arg(u, a[3], fn, "stride", &strides, &srank)) != TTSM_OK)
        return st;
    if (rank != srank)
        return bad(u, "bad tensor record", "%s: size has %u dimensions, stride %u", fn, rank,
                   srank);
    ttsm_dtype dtype = a[0]->u.storage.dtype;
    if (kind != G_REBUILD_V1) {
        if (a[4]->kind != TTSM__PV_BOOL)
            return bad(u, "bad tensor record", "%s: requires_grad must be a bool, not %s", fn,
                       kind_name(a[4]));
        if (a[5]->kind != TTSM__PV_DICT)
            return bad(u, "bad tensor record", "%s: backward_hooks must be a dict, not %s", fn,
                       kind_name(a[5]));
    }
    if (kind == G_REBUILD_V3) {
        ttsm_dtype dt;
        if (a[6]->kind != TTSM__PV_GLOBAL || !ttsm__pickle_global_dtype(a[6]->u.global, &dt))
            return bad(u, "bad tensor record", "%s: dtype must be a torch dtype, not %s", fn,
                       kind_name(a[6]));
        if (dt == TTSM_DTYPE_INVALID)
            return bad(u, "unsupported dtype", "%s: ttsm has no element type for %s", fn,
                       global_full(a[6]->u.global));
        dtype = dt;
    }
    if (n == lo + 1 && kind != G_REBUILD_V1 && a[lo]->kind != TTSM__PV_DICT &&
        a[lo]->kind != TTSM__PV_NONE)
        return bad(u, "bad tensor record", "%s: metadata must be a dict, not %s", fn,
                   kind_name(a[lo]));
    uint32_t be, bb;
    uint64_t off_bytes;
    if (ttsm_dtype_block(dtype, &be, &bb) != 0 || be != 1)
        return bad(u, "unsupported dtype", "%s: element type %d is not byte-addressable", fn,
                   (int)dtype);
    if (__builtin_mul_overflow((uint64_t)offset, (uint64_t)bb, &off_bytes))
        return bad(u, "bad tensor record", "%s: storage_offset %lld overflows", fn,
                   (long long)offset);
    ttsm__pv *t = new_value(u, TTSM__PV_TENSOR);
    if (!t)
        return oom(u);
    t->u.tensor.storage = a[0];
    t->u.tensor.dtype = dtype;
    t->u.tensor.rank = rank;
    t->u.tensor.shape = shape;
    t->u.tensor.strides = strides;
    t->u.tensor.offset = off_bytes;
    *out = t;
    return TTSM_OK;
}

static ttsm_status as_parameter(up *u, const ttsm__pv *data, ttsm__pv **out)
{
    if (data->kind != TTSM__PV_TENSOR)
        return bad(u, "bad tensor record", "a Parameter wraps %s, not a tensor", kind_name(data));
    ttsm__pv *t = new_value(u, TTSM__PV_TENSOR);
    if (!t)
        return oom(u);
    *t = *data;
    t->flags |= TTSM__PV_PARAM;
    *out = t;
    return TTSM_OK;
}

/* _codecs.encode(text, "latin1"): each code point below 256 is one byte. */
static ttsm_status codecs_encode(up *u, const ttsm__pv *args, ttsm__pv **out)
{
    if (args->u.seq.n != 2 || args->u.seq.items[0]->kind != TTSM__PV_STR ||
        args->u.seq.items[1]->kind != TTSM__PV_STR)
        return bad(u, "bad pickle bytes", "_codecs.encode takes (str, 'latin1')");
    const ttsm__pv *enc = args->u.seq.items[1], *s = args->u.seq.items[0];
    if (!((enc->u.s.n == 6 && memcmp(enc->u.s.p, "latin1", 6) == 0) ||
          (enc->u.s.n == 7 && memcmp(enc->u.s.p, "latin-1", 7) == 0)))
        return bad(u, "bad pickle bytes", "_codecs.encode with an encoding other than latin1");
    uint8_t *b = aalloc(u->a, s->u.s.n ? s->u.s.n : 1);
    if (!b)
        return oom(u);
    size_t n = 0;
    const uint8_t *p = (const uint8_t *)s->u.s.p;
    for (size_t i = 0; i < s->u.s.n;) {
        if (p[i] < 0x80) {
            b[n++] = p[i++];
        } else if ((p[i] == 0xc2 || p[i] == 0xc3) && i + 1 < s->u.s.n) {
            b[n++] = (uint8_t)((p[i] & 0x03) << 6 | (p[i + 1] & 0x3f));
            i += 2;
        } else {
            return bad(u, "bad pickle bytes", "a code point above U+00FF cannot be latin1");
        }
    }
    ttsm__pv *v = new_value(u, TTSM__PV_BYTES);
    if (!v)
        return oom(u);
    v->u.s.p = (const char *)b;
    v->u.s.n = n;
    *out = v;
    return TTSM_OK;
}

static ttsm_status call(up *u, const ttsm__pv *fn, const ttsm__pv *args, int depth,
                        ttsm__pv **out)
{
    if (fn->kind != TTSM__PV_GLOBAL)
        return bad(u, "bad pickle call", "REDUCE calls a %s, not an allowed function",
                   kind_name(fn));
    if (args->kind != TTSM__PV_TUPLE)
        return bad(u, "bad pickle call", "the arguments of %s are a %s, not a tuple",
                   global_full(fn->u.global), kind_name(args));
    uint8_t kind = allowed[fn->u.global].kind;
    ttsm__pv *const *a = args->u.seq.items;
    size_t n = args->u.seq.n;
    switch (kind) {
    case G_ODICT:
        if (n != 0)
            return bad(u, "bad pickle call", "OrderedDict is built from () and SETITEMS here");
        if (!(*out = new_seq(u, TTSM__PV_DICT, NULL, 0)))
            return oom(u);
        (*out)->flags |= TTSM__PV_ORDERED;
        return TTSM_OK;
    case G_REBUILD_V1:
    case G_REBUILD_V2:
    case G_REBUILD_V3:
        return rebuild_tensor(u, kind, args, out);
    case G_PARAM:
    case G_PARAM_STATE:
        if (n != (kind == G_PARAM ? 3u : 4u))
            return bad(u, "bad tensor record", "%s takes %u arguments, got %zu",
                       global_full(fn->u.global), kind == G_PARAM ? 3u : 4u, n);
        if (a[1]->kind != TTSM__PV_BOOL || a[2]->kind != TTSM__PV_DICT)
            return bad(u, "bad tensor record", "%s: requires_grad must be a bool and "
                       "backward_hooks a dict", global_full(fn->u.global));
        return as_parameter(u, a[0], out);
    case G_FROM_TYPE_V2:
        /* (func, type, args, state): a tensor with Python attributes; the
         * attributes are dropped, the tensor is what func builds. */
        if (n != 4 || a[1]->kind != TTSM__PV_GLOBAL ||
            allowed[a[1]->u.global].kind != G_TENSOR_CLASS)
            return bad(u, "bad tensor record", "_rebuild_from_type_v2 takes (func, "
                       "torch.Tensor or Parameter, args, state)");
        if (a[0]->kind != TTSM__PV_GLOBAL || depth > 0 ||
            allowed[a[0]->u.global].kind == G_FROM_TYPE_V2)
            return bad(u, "bad tensor record", "_rebuild_from_type_v2 must wrap a tensor "
                       "rebuild function");
        {
            uint8_t fk = allowed[a[0]->u.global].kind;
            if (fk != G_REBUILD_V1 && fk != G_REBUILD_V2 && fk != G_REBUILD_V3 && fk != G_PARAM &&
                fk != G_PARAM_STATE)
                return bad(u, "bad tensor record", "_rebuild_from_type_v2 wraps %s, not a "
                           "tensor rebuild function", global_full(a[0]->u.global));
        }
        return call(u, a[0], a[2], depth + 1, out);
    case G_SIZE:
        if (n != 1 || a[0]->kind != TTSM__PV_TUPLE)
            return bad(u, "bad pickle call", "torch.Size takes one tuple");
        *out = a[0];
        return TTSM_OK;
    case G_CODECS_ENCODE:
        return codecs_encode(u, args, out);
    default: {
        char what[160];
        snprintf(what, sizeof what, "refusing %s", global_full(fn->u.global));
        ttsm_status st = ttsm__err(u->err, TTSM_ERR_FORMAT, u->src->subject, what,
                                   "checkpoints are read as data (REDUCE would call it at %s "
                                   "offset %llu; it is allowed only as a type or value)",
                                   u->src->stream, (unsigned long long)(u->src->base + u->op_pos));
        ttsm__err_hint(u->err, "%s", refusal_hint("torch", ""));
        return st;
    }
    }
}

/* BINPERSID: ('storage', <storage type>, key, location, numel[, view]). */
static ttsm_status persistent(up *u, const ttsm__pv *pid, ttsm__pv **out)
{
    if (pid->kind != TTSM__PV_TUPLE || pid->u.seq.n < 5 || pid->u.seq.n > 6)
        return bad(u, "bad persistent id", "a persistent id must be a 5-tuple "
                   "('storage', type, key, location, numel), not a %zu-item %s",
                   pid->kind == TTSM__PV_TUPLE ? pid->u.seq.n : 1, kind_name(pid));
    ttsm__pv *const *a = pid->u.seq.items;
    if (a[0]->kind != TTSM__PV_STR || a[0]->u.s.n != 7 || memcmp(a[0]->u.s.p, "storage", 7) != 0) {
        char tn[64] = "?";
        if (a[0]->kind == TTSM__PV_STR)
            printable(tn, sizeof tn, a[0]->u.s.p, a[0]->u.s.n);
        return bad(u, "bad persistent id", "persistent id of type '%s': only 'storage' is read "
                   "(whole pickled modules are refused)", tn);
    }
    if (a[1]->kind != TTSM__PV_GLOBAL || (allowed[a[1]->u.global].kind != G_STORAGE &&
                                          allowed[a[1]->u.global].kind != G_UNTYPED_STORAGE))
        return bad(u, "bad persistent id", "the storage type is a %s, not a torch storage class",
                   a[1]->kind == TTSM__PV_GLOBAL ? global_full(a[1]->u.global) : kind_name(a[1]));
    if (a[2]->kind != TTSM__PV_STR || a[3]->kind != TTSM__PV_STR || a[4]->kind != TTSM__PV_INT ||
        a[4]->u.i < 0)
        return bad(u, "bad persistent id", "key and location must be str and numel a "
                   "non-negative int");
    if (pid->u.seq.n == 6 && a[5]->kind != TTSM__PV_NONE)
        return bad(u, "unsupported storage view", "storage views (torch.save before 0.4) are not "
                   "supported; load and re-save the file with a current PyTorch");
    if (!u->src->storage)
        return bad(u, "bad persistent id", "this pickle may not reference storages");
    const allowed_global *g = &allowed[a[1]->u.global];
    uint32_t bb;
    uint64_t nbytes;
    if (ttsm_dtype_block(g->dtype, NULL, &bb) != 0 ||
        __builtin_mul_overflow((uint64_t)a[4]->u.i, (uint64_t)bb, &nbytes))
        return bad(u, "bad persistent id", "numel %lld of %s overflows", (long long)a[4]->u.i,
                   g->name);
    uint32_t slot;
    ttsm_status st = u->src->storage(u->src->storage_ctx, a[2]->u.s.p, a[2]->u.s.n, nbytes, bb,
                                     u->src->base + u->op_pos, &slot, u->err);
    if (st != TTSM_OK)
        return st;
    ttsm__pv *v = new_value(u, TTSM__PV_STORAGE);
    if (!v)
        return oom(u);
    v->u.storage.slot = slot;
    v->u.storage.dtype = g->dtype;
    v->u.storage.nbytes = nbytes;
    *out = v;
    return TTSM_OK;
}

/* ---- the interpreter ------------------------------------------------------ */

static ttsm_status step(up *u, int *done, ttsm__pv **root)
{
    ttsm_status st;
    ttsm__pv *v = NULL, *k = NULL, *c = NULL, **items = NULL;
    size_t n = 0;
    if ((st = need(u, 1)) != TTSM_OK)
        return st;
    u->op_pos = u->pos;
    u->op = u->d[u->pos++];
    switch (u->op) {
    case 0x80: /* PROTO */
        if ((st = need(u, 1)) != TTSM_OK)
            return st;
        if (u->d[u->pos] < 2 || u->d[u->pos] > 5)
            return bad(u, "unsupported pickle protocol", "protocol %u (2 to 5 are read)",
                       u->d[u->pos]);
        u->pos++;
        return TTSM_OK;
    case 0x95: /* FRAME: a length prefix for buffering; nothing to do */
        if ((st = need(u, 8)) != TTSM_OK)
            return st;
        if (le(u->d + u->pos, 8) > u->n - u->pos - 8) {
            u->truncated = 1;
            return bad(u, "truncated pickle", "a frame of %llu bytes runs past the end",
                       (unsigned long long)le(u->d + u->pos, 8));
        }
        u->pos += 8;
        return TTSM_OK;
    case '.': /* STOP */
        if ((st = pop(u, root)) != TTSM_OK)
            return st;
        *done = 1;
        return TTSM_OK;
    case '(': /* MARK */
        if (u->nmarks >= TTSM__PICKLE_MAX_MARKS)
            return bad(u, "pickle nesting too deep", "more than %u open MARKs",
                       TTSM__PICKLE_MAX_MARKS);
        if (ttsm__grow((void **)&u->marks, &u->mcap, u->nmarks + 1, sizeof *u->marks,
                       TTSM__PICKLE_MAX_MARKS) != 0)
            return oom(u);
        u->marks[u->nmarks++] = u->sp;
        return TTSM_OK;
    case '0': /* POP */
        if (u->sp > mark_base(u)) {
            u->sp--;
            return TTSM_OK;
        }
        return pop_mark(u, &items, &n);
    case '1': /* POP_MARK */
        return pop_mark(u, &items, &n);
    case 'N': return push(u, u->v_none);
    case 0x88: return push(u, u->v_true);
    case 0x89: return push(u, u->v_false);
    case ')': return push(u, u->v_empty_tuple);
    case ']': return push(u, new_seq(u, TTSM__PV_LIST, NULL, 0));
    case '}': return push(u, new_seq(u, TTSM__PV_DICT, NULL, 0));
    case 't': /* TUPLE */
        if ((st = pop_mark(u, &items, &n)) != TTSM_OK)
            return st;
        return push(u, n ? new_seq(u, TTSM__PV_TUPLE, items, n) : u->v_empty_tuple);
    case 0x85:
    case 0x86:
    case 0x87: { /* TUPLE1..3 */
        size_t k3 = (size_t)(u->op - 0x84);
        if (u->sp - mark_base(u) < k3)
            return bad(u, "pickle stack underflow", "needs %zu values", k3);
        u->sp -= k3;
        return push(u, new_seq(u, TTSM__PV_TUPLE, u->stack + u->sp, k3));
    }
    case 'a': /* APPEND */
        if ((st = pop(u, &v)) != TTSM_OK || (st = top(u, &c)) != TTSM_OK)
            return st;
        if (c->kind != TTSM__PV_LIST)
            return bad(u, "bad pickle append", "APPEND to a %s; only lists are extended",
                       kind_name(c));
        return seq_extend(u, c, &v, 1);
    case 'e': /* APPENDS */
        if ((st = pop_mark(u, &items, &n)) != TTSM_OK || (st = top(u, &c)) != TTSM_OK)
            return st;
        if (c->kind != TTSM__PV_LIST)
            return bad(u, "bad pickle append", "APPENDS to a %s; only lists are extended",
                       kind_name(c));
        return seq_extend(u, c, items, n);
    case 's': /* SETITEM */
        if ((st = pop(u, &v)) != TTSM_OK || (st = pop(u, &k)) != TTSM_OK ||
            (st = top(u, &c)) != TTSM_OK)
            return st;
        if (c->kind != TTSM__PV_DICT)
            return bad(u, "bad pickle setitem", "SETITEM on a %s; only dicts take items",
                       kind_name(c));
        {
            ttsm__pv *kv[2] = {k, v};
            return seq_extend(u, c, kv, 2);
        }
    case 'u': /* SETITEMS */
        if ((st = pop_mark(u, &items, &n)) != TTSM_OK || (st = top(u, &c)) != TTSM_OK)
            return st;
        if (c->kind != TTSM__PV_DICT)
            return bad(u, "bad pickle setitem", "SETITEMS on a %s; only dicts take items",
                       kind_name(c));
        if (n % 2)
            return bad(u, "bad pickle setitem", "SETITEMS with an odd number (%zu) of values", n);
        return seq_extend(u, c, items, n);
    case 'J':
        if ((st = need(u, 4)) != TTSM_OK)
            return st;
        {
            uint32_t x = (uint32_t)le(u->d + u->pos, 4);
            u->pos += 4;
            return push_int(u, x & 0x80000000u ? (int64_t)x - 4294967296LL : (int64_t)x);
        }
    case 'K':
        if ((st = need(u, 1)) != TTSM_OK)
            return st;
        return push_int(u, u->d[u->pos++]);
    case 'M':
        if ((st = need(u, 2)) != TTSM_OK)
            return st;
        u->pos += 2;
        return push_int(u, (int64_t)le(u->d + u->pos - 2, 2));
    case 0x8a: /* LONG1 */
        if ((st = need(u, 1)) != TTSM_OK)
            return st;
        return push_long(u, u->d[u->pos++]);
    case 0x8b: /* LONG4: a signed length */
        if ((st = need(u, 4)) != TTSM_OK)
            return st;
        {
            uint32_t len = (uint32_t)le(u->d + u->pos, 4);
            u->pos += 4;
            if (len & 0x80000000u)
                return bad(u, "bad pickle integer", "negative LONG4 length");
            return push_long(u, len);
        }
    case 'G': /* BINFLOAT: big-endian IEEE 754 double */
        if ((st = need(u, 8)) != TTSM_OK)
            return st;
        {
            uint64_t bits = 0;
            for (int i = 0; i < 8; i++)
                bits = bits << 8 | u->d[u->pos + (size_t)i];
            u->pos += 8;
            v = new_value(u, TTSM__PV_FLOAT);
            if (v)
                memcpy(&v->u.f, &bits, sizeof bits);
            return push(u, v);
        }
    case 'U': /* SHORT_BINSTRING (Python 2 str) */
    case 0x8c: /* SHORT_BINUNICODE */
    case 'C':  /* SHORT_BINBYTES */
        if ((st = need(u, 1)) != TTSM_OK)
            return st;
        n = u->d[u->pos++];
        return push_str(u, u->op == 'C' ? TTSM__PV_BYTES : TTSM__PV_STR, n);
    case 'T': /* BINSTRING: a signed length */
    case 'X': /* BINUNICODE */
    case 'B': /* BINBYTES */
        if ((st = need(u, 4)) != TTSM_OK)
            return st;
        {
            uint32_t len = (uint32_t)le(u->d + u->pos, 4);
            u->pos += 4;
            if (u->op == 'T' && (len & 0x80000000u))
                return bad(u, "bad pickle string", "negative BINSTRING length");
            return push_str(u, u->op == 'B' ? TTSM__PV_BYTES : TTSM__PV_STR, len);
        }
    case 0x8d: /* BINUNICODE8 */
    case 0x8e: /* BINBYTES8 */
    case 0x96: /* BYTEARRAY8 */
        if ((st = need(u, 8)) != TTSM_OK)
            return st;
        u->pos += 8;
        return push_str(u, u->op == 0x8d ? TTSM__PV_STR : TTSM__PV_BYTES,
                        le(u->d + u->pos - 8, 8));
    case 'q': /* BINPUT */
    case 'r': /* LONG_BINPUT */
    case 0x94: { /* MEMOIZE */
        uint32_t idx;
        if (u->op == 0x94) {
            idx = (uint32_t)u->memo_n;
        } else {
            unsigned w = u->op == 'q' ? 1 : 4;
            if ((st = need(u, w)) != TTSM_OK)
                return st;
            idx = (uint32_t)le(u->d + u->pos, w);
            u->pos += w;
        }
        if ((st = top(u, &v)) != TTSM_OK)
            return st;
        return memo_put(u, idx, v);
    }
    case 'h': /* BINGET */
    case 'j': { /* LONG_BINGET */
        unsigned w = u->op == 'h' ? 1 : 4;
        if ((st = need(u, w)) != TTSM_OK)
            return st;
        uint32_t idx = (uint32_t)le(u->d + u->pos, w);
        u->pos += w;
        memo_slot *s = memo_find(u, idx);
        if (!s)
            return bad(u, "bad pickle memo", "memo index %u was never stored", idx);
        return push(u, s->v);
    }
    case 'c': { /* GLOBAL */
        const char *m = NULL, *nm = NULL;
        size_t ml = 0, nl = 0;
        if ((st = read_line(u, &m, &ml)) != TTSM_OK || (st = read_line(u, &nm, &nl)) != TTSM_OK)
            return st;
        return push_global(u, m, ml, nm, nl);
    }
    case 0x93: /* STACK_GLOBAL */
        if ((st = pop(u, &v)) != TTSM_OK || (st = pop(u, &k)) != TTSM_OK)
            return st;
        if (v->kind != TTSM__PV_STR || k->kind != TTSM__PV_STR)
            return bad(u, "bad pickle global", "STACK_GLOBAL needs two str, got %s and %s",
                       kind_name(k), kind_name(v));
        if (k->u.s.n > TTSM__PICKLE_MAX_GLOBAL || v->u.s.n > TTSM__PICKLE_MAX_GLOBAL)
            return bad(u, "bad pickle global", "a module or name is longer than %u bytes",
                       TTSM__PICKLE_MAX_GLOBAL);
        return push_global(u, k->u.s.p, k->u.s.n, v->u.s.p, v->u.s.n);
    case 'R': /* REDUCE */
        if ((st = pop(u, &v)) != TTSM_OK || (st = top(u, &c)) != TTSM_OK)
            return st;
        {
            ttsm__pv *r = NULL;
            if ((st = call(u, c, v, 0, &r)) != TTSM_OK)
                return st;
            u->stack[u->sp - 1] = r;
            return TTSM_OK;
        }
    case 'b': /* BUILD */
        if ((st = pop(u, &v)) != TTSM_OK || (st = top(u, &c)) != TTSM_OK)
            return st;
        /* A state dict's OrderedDict carries `_metadata` (module versions)
         * as instance state; it is not part of the mapping, so it is checked
         * and dropped. Any other BUILD would set attributes on an object. */
        if (c->kind != TTSM__PV_DICT || (v->kind != TTSM__PV_DICT && v->kind != TTSM__PV_NONE))
            return bad(u, "refusing BUILD", "BUILD on a %s with a %s state; only an "
                       "OrderedDict's attribute dict is accepted", kind_name(c), kind_name(v));
        return TTSM_OK;
    case 'Q': /* BINPERSID */
        if ((st = pop(u, &v)) != TTSM_OK)
            return st;
        {
            ttsm__pv *s = NULL;
            if ((st = persistent(u, v, &s)) != TTSM_OK)
                return st;
            return push(u, s);
        }
    case 0x81: /* NEWOBJ: cls.__new__(cls, *args); only Parameter(tensor[, bool]) */
        if ((st = pop(u, &v)) != TTSM_OK || (st = top(u, &c)) != TTSM_OK)
            return st;
        if (c->kind == TTSM__PV_GLOBAL && allowed[c->u.global].kind == G_TENSOR_CLASS &&
            strcmp(allowed[c->u.global].name, "Parameter") == 0 && v->kind == TTSM__PV_TUPLE &&
            v->u.seq.n >= 1 && v->u.seq.n <= 2) {
            ttsm__pv *r = NULL;
            if ((st = as_parameter(u, v->u.seq.items[0], &r)) != TTSM_OK)
                return st;
            u->stack[u->sp - 1] = r;
            return TTSM_OK;
        }
        /* fall through */
    case 0x92: /* NEWOBJ_EX */
    case 'o':  /* OBJ */
    {
        char what[160];
        const ttsm__pv *cls = u->op == 0x81 ? c : NULL;
        if (u->op == 'o' && u->nmarks && u->marks[u->nmarks - 1] < u->sp)
            cls = u->stack[u->marks[u->nmarks - 1]];
        else if (u->op == 0x92 && u->sp >= 3)
            cls = u->stack[u->sp - 3];
        snprintf(what, sizeof what, "refusing %s",
                 cls && cls->kind == TTSM__PV_GLOBAL ? global_full(cls->u.global)
                                                     : "to instantiate an object");
        return ttsm__err(u->err, TTSM_ERR_FORMAT, u->src->subject, what,
                         "checkpoints are read as data (%s would create an instance at %s "
                         "offset %llu)",
                         opname(u->op), u->src->stream,
                         (unsigned long long)(u->src->base + u->op_pos));
    }
    case 'i': { /* INST: module and name inline, then a call */
        const char *m = NULL, *nm = NULL;
        size_t ml = 0, nl = 0;
        char mm[120], nn[120], what[260];
        if ((st = read_line(u, &m, &ml)) != TTSM_OK || (st = read_line(u, &nm, &nl)) != TTSM_OK)
            return st;
        printable(mm, sizeof mm, m, ml);
        printable(nn, sizeof nn, nm, nl);
        snprintf(what, sizeof what, "refusing %s.%s", mm, nn);
        st = ttsm__err(u->err, TTSM_ERR_FORMAT, u->src->subject, what,
                       "checkpoints are read as data (INST at %s offset %llu)", u->src->stream,
                       (unsigned long long)(u->src->base + u->op_pos));
        ttsm__err_hint(u->err, "%s", refusal_hint(mm, nn));
        return st;
    }
    case 0x82:
    case 0x83:
    case 0x84: { /* EXT1/2/4: globals through the copyreg extension registry */
        unsigned w = u->op == 0x82 ? 1 : u->op == 0x83 ? 2 : 4;
        if ((st = need(u, w)) != TTSM_OK)
            return st;
        char what[64];
        snprintf(what, sizeof what, "refusing extension code %llu",
                 (unsigned long long)le(u->d + u->pos, w));
        return ttsm__err(u->err, TTSM_ERR_FORMAT, u->src->subject, what,
                         "checkpoints are read as data (%s at %s offset %llu names a global "
                         "through the copyreg registry)",
                         opname(u->op), u->src->stream,
                         (unsigned long long)(u->src->base + u->op_pos));
    }
    default: {
        const char *on = opname(u->op);
        if (on)
            return bad(u, "unsupported pickle opcode", "%s (0x%02x) is not used by state dicts "
                       "and is not read", on, u->op);
        return bad(u, "bad pickle opcode", "byte 0x%02x is not a pickle opcode", u->op);
    }
    }
}

static ttsm__pv *singleton(ttsm__pickle_arena *a, uint8_t kind, int64_t i)
{
    ttsm__pv *v = aalloc(a, sizeof *v);
    if (v) {
        memset(v, 0, sizeof *v);
        v->kind = kind;
        v->u.i = i;
    }
    return v;
}

ttsm_status ttsm__pickle_load(ttsm__pickle_arena *a, const ttsm__pickle_src *src, ttsm__pv **root,
                              size_t *consumed, int *truncated, ttsm_error *err)
{
    up u;
    memset(&u, 0, sizeof u);
    u.a = a;
    u.src = src;
    u.d = src->data;
    u.n = src->size;
    u.err = err;
    if (truncated)
        *truncated = 0;
    u.v_none = singleton(a, TTSM__PV_NONE, 0);
    u.v_true = singleton(a, TTSM__PV_BOOL, 1);
    u.v_false = singleton(a, TTSM__PV_BOOL, 0);
    u.v_empty_tuple = singleton(a, TTSM__PV_TUPLE, 0);
    ttsm_status st = TTSM_OK;
    if (!u.v_none || !u.v_true || !u.v_false || !u.v_empty_tuple)
        st = oom(&u);
    int done = 0;
    ttsm__pv *r = NULL;
    while (st == TTSM_OK && !done)
        st = step(&u, &done, &r);
    ttsm__free(u.stack);
    ttsm__free(u.marks);
    ttsm__free(u.memo);
    if (st != TTSM_OK) {
        if (truncated)
            *truncated = u.truncated;
        return st;
    }
    *root = r;
    if (consumed)
        *consumed = u.pos;
    return TTSM_OK;
}
