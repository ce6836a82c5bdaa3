/* st_oracle.h - the safetensors header and sharded-index readers as they
 * were before the single-pass scanner: jansson parses the whole text into a
 * tree and the rules are checked on the tree. The differential harness
 * (fuzz_st_diff.c) holds the scanner to these: the same inputs accepted and
 * refused, by the same rule, with the same tensors, map and metadata. Test
 * code only; the library no longer builds a JSON tree for these files. */
#ifndef TTSM_ST_ORACLE_H
#define TTSM_ST_ORACLE_H

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/json.h"
#include "base/text.h"
#include "formats/safetensors.h"
#include "formats/safetensors_index.h"
#include "formats/table.h"

#define NAME_SHOW 160

typedef struct oracle_index {
    json_t *root;
    json_t *weight_map;     /* borrowed from root */
    json_t *metadata;       /* borrowed from root; NULL when absent or null */
    const char **shards;
    size_t n_shards;
} oracle_index;

static const struct {
    const char *name;
    ttsm_dtype dtype;
    unsigned bits;
} st_dtypes[] = {
    {"BOOL", TTSM_DTYPE_BOOL, 8},        {"F4", TTSM_DTYPE_F4, 4},
    {"F6_E2M3", TTSM_DTYPE_F6_E2M3, 6},  {"F6_E3M2", TTSM_DTYPE_F6_E3M2, 6},
    {"U8", TTSM_DTYPE_U8, 8},            {"I8", TTSM_DTYPE_I8, 8},
    {"F8_E5M2", TTSM_DTYPE_F8_E5M2, 8},  {"F8_E4M3", TTSM_DTYPE_F8_E4M3, 8},
    {"F8_E8M0", TTSM_DTYPE_F8_E8M0, 8},  {"I16", TTSM_DTYPE_I16, 16},
    {"U16", TTSM_DTYPE_U16, 16},         {"F16", TTSM_DTYPE_F16, 16},
    {"BF16", TTSM_DTYPE_BF16, 16},       {"I32", TTSM_DTYPE_I32, 32},
    {"U32", TTSM_DTYPE_U32, 32},         {"F32", TTSM_DTYPE_F32, 32},
    {"C64", TTSM_DTYPE_C64, 64},         {"F64", TTSM_DTYPE_F64, 64},
    {"I64", TTSM_DTYPE_I64, 64},         {"U64", TTSM_DTYPE_U64, 64},
};
#define N_ST_DTYPES (sizeof st_dtypes / sizeof st_dtypes[0])

#define NAME_SHOW 160 /* bytes of a name or value quoted in a message */

/* ---- one tensor entry -------------------------------------------------- */

typedef struct entry {
    const char *name; /* a key of the parsed header: NUL-terminated */
    size_t name_len;
    ttsm_dtype dtype;
    unsigned bits;
    uint32_t rank;
    const json_t *shape;
    uint64_t n_elements, nbytes;
    uint64_t begin, end; /* relative to the data section */
} entry;

typedef struct reader {
    ttsm_checkpoint *ck;
    const char *path;
    uint64_t data_start; /* 8 + header length */
    ttsm_error *err;
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

/* A non-negative JSON integer (json_int_t is 64-bit signed). */
static int get_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static ttsm_status parse_dtype(reader *r, entry *e, const json_t *v, const char *name)
{
    if (!json_is_string(v))
        return fmt_err(r, "bad dtype", "tensor '%s': dtype is a JSON %s, not a string", name,
                       ttsm__json_kind(v));
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    for (size_t i = 0; i < N_ST_DTYPES; i++) {
        if (strlen(st_dtypes[i].name) == len && memcmp(st_dtypes[i].name, s, len) == 0) {
            e->dtype = st_dtypes[i].dtype;
            e->bits = st_dtypes[i].bits;
            return TTSM_OK;
        }
    }
    char shown[48];
    return fmt_err(r, "unknown dtype",
                   "tensor '%s' has dtype '%s', which safetensors does not define (known: BOOL, "
                   "U8, I8, U16, I16, F16, BF16, U32, I32, F32, U64, I64, F64, C64, F8_E5M2, "
                   "F8_E4M3, F8_E8M0, F4, F6_E2M3, F6_E3M2)",
                   name, SHOW(shown, s, len));
}

static ttsm_status parse_shape(reader *r, entry *e, const json_t *v, const char *name)
{
    if (!json_is_array(v))
        return fmt_err(r, "bad shape", "tensor '%s': shape is a JSON %s, not an array", name,
                       ttsm__json_kind(v));
    size_t rank = json_array_size(v);
    if (rank > TTSM__MAX_RANK)
        return fmt_err(r, "rank too large", "tensor '%s' has %zu dimensions, the limit is %u",
                       name, rank, TTSM__MAX_RANK);
    uint64_t n = 1;
    for (size_t i = 0; i < rank; i++) {
        const json_t *d = json_array_get(v, i);
        uint64_t dim;
        if (get_u64(d, &dim) != 0) {
            if (json_is_integer(d))
                return fmt_err(r, "bad dimension",
                               "tensor '%s' dimension %zu is %lld; dimensions are non-negative "
                               "integers",
                               name, i, (long long)json_integer_value(d));
            return fmt_err(r, "bad dimension",
                           "tensor '%s' dimension %zu is a JSON %s; dimensions are non-negative "
                           "integers",
                           name, i, ttsm__json_kind(d));
        }
        /* Same order as the reference: a zero after an overflowing prefix
         * does not rescue the product. */
        if (__builtin_mul_overflow(n, dim, &n) || n > (uint64_t)INT64_MAX)
            return fmt_err(r, "element count overflows",
                           "tensor '%s': the product of its dimensions exceeds 2^63 at dimension "
                           "%zu",
                           name, i);
    }
    e->rank = (uint32_t)rank;
    e->shape = v;
    e->n_elements = n;
    return TTSM_OK;
}

static ttsm_status parse_offsets(reader *r, entry *e, const json_t *v, const char *name)
{
    if (!json_is_array(v) || json_array_size(v) != 2 ||
        get_u64(json_array_get(v, 0), &e->begin) != 0 ||
        get_u64(json_array_get(v, 1), &e->end) != 0)
        return fmt_err(r, "bad data_offsets",
                       "tensor '%s': data_offsets must be [begin, end], two non-negative integers",
                       name);
    if (e->end < e->begin)
        return fmt_err(r, "reversed data_offsets",
                       "tensor '%s': data_offsets [%llu, %llu] end before they begin", name,
                       (unsigned long long)e->begin, (unsigned long long)e->end);
    return TTSM_OK;
}

static ttsm_status parse_entry(reader *r, entry *e, const char *key, size_t klen, const json_t *v)
{
    char name[NAME_SHOW];
    SHOW(name, key, klen);
    e->name = key;
    e->name_len = klen;
    if (!json_is_object(v))
        return fmt_err(r, "bad tensor entry",
                       "'%s' is a JSON %s, not an object with dtype, shape and data_offsets", name,
                       ttsm__json_kind(v));
    const char *fk;
    size_t fklen;
    json_t *fv;
    json_object_keylen_foreach((json_t *)v, fk, fklen, fv)
    {
        (void)fv;
        if (!(fklen == 5 && memcmp(fk, "dtype", 5) == 0) &&
            !(fklen == 5 && memcmp(fk, "shape", 5) == 0) &&
            !(fklen == 12 && memcmp(fk, "data_offsets", 12) == 0)) {
            char f[64];
            return fmt_err(r, "unexpected field",
                           "tensor '%s' has field '%s'; only dtype, shape and data_offsets are "
                           "allowed",
                           name, SHOW(f, fk, fklen));
        }
    }
    static const char *const fields[] = {"dtype", "shape", "data_offsets"};
    for (int i = 0; i < 3; i++)
        if (!json_object_get(v, fields[i]))
            return fmt_err(r, "missing field", "tensor '%s' has no '%s'", name, fields[i]);
    ttsm_status st;
    if ((st = parse_dtype(r, e, json_object_get(v, "dtype"), name)) != TTSM_OK ||
        (st = parse_shape(r, e, json_object_get(v, "shape"), name)) != TTSM_OK ||
        (st = parse_offsets(r, e, json_object_get(v, "data_offsets"), name)) != TTSM_OK)
        return st;

    uint64_t bits;
    if (__builtin_mul_overflow(e->n_elements, (uint64_t)e->bits, &bits))
        return fmt_err(r, "byte size overflows",
                       "tensor '%s': %llu elements of %s exceed 2^64 bits", name,
                       (unsigned long long)e->n_elements, ttsm_dtype_name(e->dtype));
    /* Sub-byte types pack the flattened elements; the reference requires
     * the whole tensor to end on a byte boundary. */
    if (bits % 8 != 0)
        return fmt_err(r, "misaligned sub-byte tensor",
                       "tensor '%s': %llu elements of %s (%u bits each) are %llu bits, not a "
                       "whole number of bytes",
                       name, (unsigned long long)e->n_elements, ttsm_dtype_name(e->dtype),
                       e->bits, (unsigned long long)bits);
    e->nbytes = bits / 8;
    if (e->end - e->begin != e->nbytes)
        return fmt_err(r, "size mismatch",
                       "tensor '%s': %llu elements of %s take %llu bytes, data_offsets [%llu, "
                       "%llu] hold %llu",
                       name, (unsigned long long)e->n_elements, ttsm_dtype_name(e->dtype),
                       (unsigned long long)e->nbytes, (unsigned long long)e->begin,
                       (unsigned long long)e->end, (unsigned long long)(e->end - e->begin));
    return TTSM_OK;
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

static ttsm_status check_metadata(reader *r, const json_t *meta)
{
    if (json_is_null(meta))
        return TTSM_OK; /* the reference reads null as "no metadata" */
    if (!json_is_object(meta))
        return fmt_err(r, "bad __metadata__",
                       "__metadata__ is a JSON %s, not an object of string values",
                       ttsm__json_kind(meta));
    const char *k;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach((json_t *)meta, k, klen, v)
    {
        if (!json_is_string(v)) {
            char shown[NAME_SHOW];
            return fmt_err(r, "bad __metadata__",
                           "__metadata__ value of key '%s' is a JSON %s, not a string",
                           SHOW(shown, k, klen), ttsm__json_kind(v));
        }
    }
    return TTSM_OK;
}

static ttsm_status add_entries(reader *r, const entry *es, size_t n, uint32_t fi,
                               const void *shard)
{
    for (size_t i = 0; i < n; i++) {
        const entry *e = &es[i];
        ttsm_status st;
        (void)shard;
        int64_t dims[TTSM__MAX_RANK];
        for (uint32_t k = 0; k < e->rank; k++)
            dims[k] = (int64_t)json_integer_value(json_array_get(e->shape, k));
        uint32_t si;
        st = ttsm__ckpt_add_storage(r->ck, fi, r->data_start + e->begin, e->nbytes, NULL, &si,
                                    r->err);
        if (st != TTSM_OK)
            return st;
        ttsm__tensor_desc d = {.name = e->name,
                               .name_len = e->name_len,
                               .dtype = e->dtype,
                               .rank = e->rank,
                               .shape = dims,
                               .strides = NULL,
                               .storage = si,
                               .storage_offset = 0};
        if ((st = ttsm__ckpt_add_tensor(r->ck, &d, r->err)) != TTSM_OK)
            return st;
    }
    return TTSM_OK;
}

static ttsm_status add_metadata(reader *r, const json_t *meta)
{
    if (!json_is_object(meta))
        return TTSM_OK;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)meta, k, v)
    {
        char *text = ttsm__json_text(v);
        if (!text)
            return ttsm__err(r->err, TTSM_ERR_OUT_OF_MEMORY, r->path, "out of memory",
                             "encoding __metadata__ value");
        ttsm_status st = ttsm__ckpt_add_meta(r->ck, k, "str", text, r->err);
        ttsm__free(text);
        if (st != TTSM_OK)
            return st;
    }
    return TTSM_OK;
}

/* ---- the header -------------------------------------------------------- */

static ttsm_status load_header(reader *r, const ttsm__file *f, json_t **root)
{
    unsigned char lb[8];
    if (f->size < 8)
        return fmt_err(r, "file too small",
                       "%llu bytes cannot hold the 8-byte header length",
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
    r->data_start = 8 + n;
    unsigned char *buf = ttsm__malloc((size_t)n);
    if (!buf)
        return ttsm__err(r->err, TTSM_ERR_OUT_OF_MEMORY, r->path, "out of memory",
                         "reading a %llu-byte header", (unsigned long long)n);
    if ((st = ttsm__file_read(f, 8, buf, (size_t)n, r->err)) != TTSM_OK)
        goto done;
    size_t bad = ttsm__utf8_check(buf, (size_t)n);
    if (bad < n) {
        st = fmt_err(r, "header not UTF-8", "invalid UTF-8 byte 0x%02x at offset %llu", buf[bad],
                     (unsigned long long)(8 + bad));
        goto done;
    }
    /* ALLOW_NUL: the reference accepts "\u0000" inside strings (metadata
     * values); keys holding NUL are still refused by jansson. */
    json_error_t je;
    *root = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!*root) {
        enum json_error_code code = json_error_code(&je);
        if (ttsm__json_oom(&je))
            st = ttsm__err(r->err, TTSM_ERR_OUT_OF_MEMORY, r->path, "out of memory",
                           "parsing the header");
        else
            st = fmt_err(r, code == json_error_duplicate_key ? "duplicate key" : "invalid JSON header",
                         "%s at offset %llu", je.text, (unsigned long long)(8 + je.position));
        goto done;
    }
    if (!json_is_object(*root)) {
        st = fmt_err(r, "header not an object", "the header is a JSON %s",
                     ttsm__json_kind(*root));
        json_decref(*root);
        *root = NULL;
    }
done:
    ttsm__free(buf);
    return st;
}

static ttsm_status oracle_st_read_file(ttsm_checkpoint *ck, uint32_t fi, const void *shard,
                                      ttsm_error *err)
{
    const ttsm__file *f = &ck->files[fi];
    reader r = {.ck = ck, .path = f->path, .err = err};
    json_t *root = NULL;
    entry *es = NULL;
    ttsm_status st = load_header(&r, f, &root);
    if (st != TTSM_OK)
        return st;
    uint64_t data_size = f->size - r.data_start;

    const json_t *meta = json_object_get(root, "__metadata__");
    if (meta && (st = check_metadata(&r, meta)) != TTSM_OK)
        goto done;
    size_t cap = json_object_size(root), n = 0;
    if (cap > TTSM__MAX_TENSORS) {
        st = fmt_err(&r, "too many tensors", "%zu header entries, the limit is %u", cap,
                     TTSM__MAX_TENSORS);
        goto done;
    }
    es = ttsm__calloc(cap ? cap : 1, sizeof *es);
    if (!es) {
        st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, r.path, "out of memory",
                       "indexing %zu header entries", cap);
        goto done;
    }
    const char *k;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach(root, k, klen, v)
    {
        if (klen == 12 && memcmp(k, "__metadata__", 12) == 0)
            continue;
        if ((st = parse_entry(&r, &es[n], k, klen, v)) != TTSM_OK)
            goto done;
        n++;
    }
    qsort(es, n, sizeof *es, entry_cmp);
    if ((st = check_layout(&r, es, n, data_size)) != TTSM_OK ||
        (st = add_entries(&r, es, n, fi, shard)) != TTSM_OK)
        goto done;
    if (!shard && meta)
        st = add_metadata(&r, meta);
done:
    ttsm__free(es);
    json_decref(root);
    return st;
}


/* ---- the sharded index ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void oracle_index_free(oracle_index *ix)
{
    if (!ix)
        return;
    ttsm__free((void *)ix->shards);
    json_decref(ix->root);
    memset(ix, 0, sizeof *ix);
}

/* Shard names must stay in the index's folder: a plain file name. */
static ttsm_status check_shard_name(const char *subject, const char *tensor, size_t tlen,
                                    const json_t *v, ttsm_error *err)
{
    char t[NAME_SHOW], s[NAME_SHOW];
    ttsm__printable(tensor, tlen, t, sizeof t);
    if (!json_is_string(v))
        return ttsm__err(err, TTSM_ERR_FORMAT, subject, "bad shard name",
                         "weight_map entry '%s' is a JSON %s, not a file name", t,
                         ttsm__json_kind(v));
    const char *name = json_string_value(v);
    size_t len = json_string_length(v);
    ttsm__printable(name, len, s, sizeof s);
    const char *why = NULL;
    if (len == 0)
        why = "is empty";
    else if (memchr(name, '\0', len))
        why = "holds a NUL byte";
    else if (len > TTSM__ST_MAX_SHARD_NAME)
        why = "is longer than 255 bytes";
    if (why)
        return ttsm__err(err, TTSM_ERR_FORMAT, subject, "bad shard name",
                         "weight_map entry '%s' names a shard that %s", t, why);
    if (name[0] == '/')
        why = "is an absolute path";
    else if (strchr(name, '/') || strchr(name, '\\'))
        why = "holds a path separator";
    else if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        why = "is '.' or '..'";
    if (why)
        return ttsm__err(err, TTSM_ERR_FORMAT, subject, "unsafe shard name",
                         "weight_map entry '%s' names '%s', which %s; shards must be plain file "
                         "names in the index's folder",
                         t, s, why);
    return TTSM_OK;
}

static ttsm_status oracle_index_parse(const char *subject, const void *data, size_t len,
                                 oracle_index *out, ttsm_error *err)
{
    oracle_index ix;
    memset(&ix, 0, sizeof ix);
    memset(out, 0, sizeof *out);
    ttsm_status st = TTSM_OK;
    size_t bad = ttsm__utf8_check(data, len);
    if (bad < len)
        return ttsm__err(err, TTSM_ERR_FORMAT, subject, "index not UTF-8",
                         "invalid UTF-8 byte 0x%02x at offset %zu",
                         ((const unsigned char *)data)[bad], bad);
    json_error_t je;
    ix.root = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!ix.root) {
        enum json_error_code code = json_error_code(&je);
        if (ttsm__json_oom(&je))
            return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, subject, "out of memory",
                             "parsing the index");
        return ttsm__err(err, TTSM_ERR_FORMAT, subject,
                         code == json_error_duplicate_key ? "duplicate key" : "invalid JSON",
                         "%s at offset %d (line %d, column %d)", je.text, je.position, je.line,
                         je.column);
    }
    if (!json_is_object(ix.root)) {
        st = ttsm__err(err, TTSM_ERR_FORMAT, subject, "not a sharded index",
                       "the file is a JSON %s, not an object with a weight_map",
                       ttsm__json_kind(ix.root));
        goto fail;
    }
    ix.weight_map = json_object_get(ix.root, "weight_map");
    if (!ix.weight_map) {
        st = ttsm__err(err, TTSM_ERR_FORMAT, subject, "not a sharded index",
                       "a JSON object without \"weight_map\" (a config or tokenizer file?)");
        goto fail;
    }
    if (!json_is_object(ix.weight_map)) {
        st = ttsm__err(err, TTSM_ERR_FORMAT, subject, "bad weight_map",
                       "weight_map is a JSON %s, not an object of tensor name -> shard file",
                       ttsm__json_kind(ix.weight_map));
        goto fail;
    }
    size_t n = json_object_size(ix.weight_map);
    if (n == 0) {
        st = ttsm__err(err, TTSM_ERR_FORMAT, subject, "empty weight_map",
                       "the weight_map names no tensors, so there is nothing to load");
        goto fail;
    }
    if (n > TTSM__MAX_TENSORS) {
        st = ttsm__err(err, TTSM_ERR_FORMAT, subject, "too many tensors",
                       "the weight_map has %zu entries, the limit is %u", n, TTSM__MAX_TENSORS);
        goto fail;
    }
    ix.metadata = json_object_get(ix.root, "metadata");
    if (ix.metadata && json_is_null(ix.metadata))
        ix.metadata = NULL;
    if (ix.metadata && !json_is_object(ix.metadata)) {
        st = ttsm__err(err, TTSM_ERR_FORMAT, subject, "bad metadata",
                       "metadata is a JSON %s, not an object", ttsm__json_kind(ix.metadata));
        goto fail;
    }
    ix.shards = ttsm__malloc(n * sizeof *ix.shards);
    if (!ix.shards) {
        st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, subject, "out of memory",
                       "listing %zu shard names", n);
        goto fail;
    }
    const char *k;
    size_t klen;
    json_t *v;
    size_t i = 0;
    json_object_keylen_foreach(ix.weight_map, k, klen, v)
    {
        if (klen == 0) {
            st = ttsm__err(err, TTSM_ERR_FORMAT, subject, "bad tensor name",
                           "the weight_map has an empty tensor name");
            goto fail;
        }
        if ((st = check_shard_name(subject, k, klen, v, err)) != TTSM_OK)
            goto fail;
        ix.shards[i++] = json_string_value(v);
    }
    qsort(ix.shards, n, sizeof *ix.shards, cmp_str);
    for (i = 0; i < n; i++)
        if (ix.n_shards == 0 || strcmp(ix.shards[ix.n_shards - 1], ix.shards[i]) != 0)
            ix.shards[ix.n_shards++] = ix.shards[i];
    if (ix.n_shards > TTSM__MAX_FILES) {
        st = ttsm__err(err, TTSM_ERR_FORMAT, subject, "too many shards",
                       "the weight_map names %zu shard files, the limit is %u", ix.n_shards,
                       TTSM__MAX_FILES);
        goto fail;
    }
    *out = ix;
    return TTSM_OK;
fail:
    oracle_index_free(&ix);
    return st;
}


/* The oracle's reading of `data` as one safetensors file held in memory
 * (named "diff.safetensors" in messages). */
static ttsm_status oracle_open_safetensors(const void *data, size_t len, ttsm_checkpoint **out,
                                           ttsm_error *err)
{
    ttsm_checkpoint *ck;
    uint32_t fi;
    ttsm_status st = ttsm__ckpt_new("diff.safetensors", NULL, &ck, err);
    if (st != TTSM_OK)
        return st;
    if ((st = ttsm__ckpt_add_memory(ck, "diff.safetensors", data, len, 0, &fi, err)) == TTSM_OK &&
        (st = oracle_st_read_file(ck, fi, NULL, err)) == TTSM_OK) {
        *out = ck;
        return TTSM_OK;
    }
    ttsm_checkpoint_close(ck);
    return st;
}

#endif
