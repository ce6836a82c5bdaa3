/* dlpack.c - hands the tensors of a loaded model out as DLPack managed
 * tensors (versioned 1.1 and legacy) without copying their bytes: each
 * export carries its own model reference, dropped by its deleter. Also the
 * component -> checkpoint accessor, so bindings read metadata through the
 * checkpoint API instead of a second copy of it. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlpack.h"
#include "base/alloc.h"
#include "base/error.h"
#include "engines/model.h"

/* One allocation per export: the managed struct the consumer sees, the
 * reference it keeps, and its own copy of shape and strides (the consumer
 * gets non-const pointers, and the model's arrays are not its to touch). */
typedef struct export_block {
    union {
        DLManagedTensor legacy;
        DLManagedTensorVersioned versioned;
    } m;
    ttsm_model *model;
    int inner; /* holds an inner reference (TTSM_DLPACK_INNER) */
    int64_t dims[]; /* shape[ndim], then strides[ndim] */
} export_block;

#define ALL_FLAGS (TTSM_DLPACK_BITS | TTSM_DLPACK_BYTES | TTSM_DLPACK_WRITABLE | TTSM_DLPACK_INNER)

/* Tensors, shapes and files are little-endian in every format ttsm reads;
 * DLPack elements are native-endian, so multi-byte exports need a
 * little-endian host (every platform ttsm builds on today). */
static int host_is_little_endian(void)
{
    const uint16_t probe = 1;
    unsigned char first;
    memcpy(&first, &probe, 1);
    return first == 1;
}

typedef struct dl_entry {
    uint8_t code, bits;
} dl_entry;

/* The DLPack type of each plain ttsm dtype; bits == 0: none (block and
 * sub-byte types, which DLPack cannot index element by element). */
static dl_entry dl_type_of(ttsm_dtype d)
{
    switch (d) {
    case TTSM_DTYPE_BOOL: return (dl_entry){kDLBool, 8};
    case TTSM_DTYPE_U8: return (dl_entry){kDLUInt, 8};
    case TTSM_DTYPE_I8: return (dl_entry){kDLInt, 8};
    case TTSM_DTYPE_U16: return (dl_entry){kDLUInt, 16};
    case TTSM_DTYPE_I16: return (dl_entry){kDLInt, 16};
    case TTSM_DTYPE_F16: return (dl_entry){kDLFloat, 16};
    case TTSM_DTYPE_BF16: return (dl_entry){kDLBfloat, 16};
    case TTSM_DTYPE_U32: return (dl_entry){kDLUInt, 32};
    case TTSM_DTYPE_I32: return (dl_entry){kDLInt, 32};
    case TTSM_DTYPE_F32: return (dl_entry){kDLFloat, 32};
    case TTSM_DTYPE_U64: return (dl_entry){kDLUInt, 64};
    case TTSM_DTYPE_I64: return (dl_entry){kDLInt, 64};
    case TTSM_DTYPE_F64: return (dl_entry){kDLFloat, 64};
    /* safetensors' F8_E4M3 and PyTorch's float8_e4m3fn are the finite-only
     * variant; F8_E8M0 is PyTorch's float8_e8m0fnu. */
    case TTSM_DTYPE_F8_E5M2: return (dl_entry){kDLFloat8_e5m2, 8};
    case TTSM_DTYPE_F8_E4M3: return (dl_entry){kDLFloat8_e4m3fn, 8};
    case TTSM_DTYPE_F8_E8M0: return (dl_entry){kDLFloat8_e8m0fnu, 8};
    case TTSM_DTYPE_C32: return (dl_entry){kDLComplex, 32};
    case TTSM_DTYPE_C64: return (dl_entry){kDLComplex, 64};
    case TTSM_DTYPE_C128: return (dl_entry){kDLComplex, 128};
    default: return (dl_entry){0, 0};
    }
}

/* Fails an export: "<engine>/<model>: cannot export: <detail>" (the file
 * engine's model is its path, which names it alone, as in its load errors). */
static ttsm_status refuse(ttsm_error *err, ttsm_status code, const ttsm_model *m, const char *fmt,
                          ...) TTSM__PRINTF(4, 5);
static ttsm_status refuse(ttsm_error *err, ttsm_status code, const ttsm_model *m, const char *fmt,
                          ...)
{
    char subject[640], detail[TTSM_ERROR_MESSAGE_MAX];
    const char *l = m->label ? m->label : m->key;
    if (strcmp(m->engine, "file") == 0)
        ttsm__format_trunc(subject, sizeof subject, "%s", l);
    else
        ttsm__format_trunc(subject, sizeof subject, "%s/%s", m->engine, l);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return ttsm__err(err, code, subject, "cannot export", "%s", detail);
}

static ttsm_status refuse_dtype(const ttsm_model *m, const ttsm_model_tensor *t, unsigned flags,
                                ttsm_error *err)
{
    uint32_t be = 1, bb = 1;
    const char *name = ttsm_dtype_name(t->dtype);
    ttsm_dtype_block(t->dtype, &be, &bb);
    ttsm_status st;
    if (be == 1 && (flags & TTSM_DLPACK_BITS))
        st = refuse(err, TTSM_ERR_INVALID_ARGUMENT, m,
                    "tensor '%.200s' has dtype %s: no unsigned integer type is %u bits "
                    "wide",
                    t->name, name ? name : "?", (unsigned)(bb * 8));
    else if (t->dtype == TTSM_DTYPE_F4 || t->dtype == TTSM_DTYPE_F6_E2M3 ||
             t->dtype == TTSM_DTYPE_F6_E3M2)
        st = refuse(err, TTSM_ERR_INVALID_ARGUMENT, m,
                    "tensor '%.200s' has the sub-byte dtype %s (%u elements in %u "
                    "bytes), which DLPack cannot index element by element",
                    t->name, name ? name : "?", be, bb);
    else if (be > 1)
        st = refuse(err, TTSM_ERR_INVALID_ARGUMENT, m,
                    "tensor '%.200s' has the block-quantised dtype %s (%u elements in "
                    "%u-byte blocks), which DLPack cannot describe",
                    t->name, name ? name : "?", be, bb);
    else
        st = refuse(err, TTSM_ERR_INVALID_ARGUMENT, m,
                    "tensor '%.200s' has dtype %s, which DLPack has no type for", t->name,
                    name ? name : "?");
    ttsm__err_hint(err, "export its raw bytes with TTSM_DLPACK_BYTES (Python: "
                        "Tensor.raw()) and decode them yourself");
    return st;
}

/* The DLPack device of a model's device name: "cpu" or "cuda:N". */
static ttsm_status dl_device_of(const ttsm_model *m, DLDevice *out, ttsm_error *err)
{
    if (strcmp(m->device, "cpu") == 0) {
        out->device_type = kDLCPU;
        out->device_id = 0;
        return TTSM_OK;
    }
    if (strncmp(m->device, "cuda:", 5) == 0) {
        /* Device names are canonical by now: digits, no sign, < 2^16. */
        char *end;
        unsigned long n = strtoul(m->device + 5, &end, 10);
        if (*end == '\0' && end != m->device + 5 && n <= INT32_MAX) {
            out->device_type = kDLCUDA;
            out->device_id = (int32_t)n;
            return TTSM_OK;
        }
    }
    return refuse(err, TTSM_ERR_DEVICE, m,
                  "device %s has no DLPack device type (cpu and cuda:N have)", m->device);
}

static void release_block(export_block *b)
{
    ttsm_model *m = b->model;
    int inner = b->inner;
    ttsm__free(b);
    /* may free the model, and an orphaned manager with it */
    if (inner)
        ttsm_model_release_inner(m);
    else
        ttsm_model_release(m);
}

static void delete_legacy(DLManagedTensor *self)
{
    if (self)
        release_block(self->manager_ctx);
}

static void delete_versioned(DLManagedTensorVersioned *self)
{
    if (self)
        release_block(self->manager_ctx);
}

/* Validates the request and builds the block with its DLTensor filled in. */
static ttsm_status export_block_new(ttsm_model *m, size_t component, size_t index, unsigned flags,
                                    export_block **out, ttsm_error *err)
{
    if (!m || !out)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "ttsm_model_export_dlpack",
                         "invalid argument", "model and out must not be NULL");
    if ((flags & ~ALL_FLAGS) || ((flags & TTSM_DLPACK_BITS) && (flags & TTSM_DLPACK_BYTES)))
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "ttsm_model_export_dlpack",
                         "invalid argument",
                         "flags 0x%x: TTSM_DLPACK_BITS, TTSM_DLPACK_BYTES (not both), "
                         "TTSM_DLPACK_WRITABLE and TTSM_DLPACK_INNER",
                         flags);
    if (component >= m->n_comps)
        return refuse(err, TTSM_ERR_INVALID_ARGUMENT, m,
                      "component %zu does not exist (the model has %zu)", component, m->n_comps);
    const ttsm__component *c = &m->comps[component];
    if (!c->host)
        return refuse(err, TTSM_ERR_INVALID_ARGUMENT, m,
                      "component '%.200s' is a %s file, not tensors", c->name,
                      c->kind == TTSM_FILE_JSON ? "json" : "blob");
    const ttsm_model_tensor *t = ttsm_model_get_tensor(m, component, index);
    if (!t)
        return refuse(err, TTSM_ERR_INVALID_ARGUMENT, m,
                      "component '%.200s' has %zu tensors, asked for index %zu", c->name,
                      ttsm_model_tensor_count(m, component), index);

    DLDataType dt = {0, 0, 1};
    int32_t ndim;
    if (flags & TTSM_DLPACK_BYTES) {
        if (t->nbytes > (uint64_t)INT64_MAX)
            return refuse(err, TTSM_ERR_INVALID_ARGUMENT, m,
                          "tensor '%.200s' spans more than 2^63 bytes", t->name);
        dt.code = kDLUInt;
        dt.bits = 8;
        ndim = 1;
    } else {
        dl_entry e = dl_type_of(t->dtype);
        if (e.bits == 0 || ((flags & TTSM_DLPACK_BITS) && e.bits > 64))
            return refuse_dtype(m, t, flags, err);
        if (e.bits > 8 && !host_is_little_endian())
            return refuse(err, TTSM_ERR_INVALID_ARGUMENT, m,
                          "tensor '%.200s' is little-endian and DLPack wants the "
                          "host's byte order (big-endian here)",
                          t->name);
        dt.code = (flags & TTSM_DLPACK_BITS) ? (uint8_t)kDLUInt : e.code;
        dt.bits = e.bits;
        if (t->rank > INT32_MAX)
            return refuse(err, TTSM_ERR_INVALID_ARGUMENT, m, "tensor '%.200s' has %u dimensions",
                          t->name, t->rank);
        ndim = (int32_t)t->rank;
    }
    DLDevice dev;
    ttsm_status st = dl_device_of(m, &dev, err);
    if (st != TTSM_OK)
        return st;

    size_t bytes;
    if (__builtin_mul_overflow((size_t)ndim, 2 * sizeof(int64_t), &bytes) ||
        __builtin_add_overflow(bytes, sizeof(export_block), &bytes))
        return refuse(err, TTSM_ERR_OUT_OF_MEMORY, m,
                      "out of memory for the DLPack export of '%.200s'", t->name);
    export_block *b = ttsm__calloc(1, bytes);
    if (!b)
        return refuse(err, TTSM_ERR_OUT_OF_MEMORY, m,
                      "out of memory for the DLPack export of '%.200s'", t->name);
    int64_t *shape = b->dims, *strides = b->dims + ndim;
    if (flags & TTSM_DLPACK_BYTES) {
        shape[0] = (int64_t)t->nbytes;
        strides[0] = 1;
    } else {
        for (int32_t i = 0; i < ndim; i++) {
            shape[i] = t->shape[i];
            strides[i] = t->strides[i];
        }
    }
    /* Built where the versioned struct keeps it; the legacy export moves it
     * to the front of the block. */
    DLTensor *dl = &b->m.versioned.dl_tensor;
    /* DLPack asks for NULL data on empty tensors, but PyTorch (1.13 at
     * least) never calls the deleter of a tensor whose data is NULL, which
     * would leak the model reference: empty tensors keep a pointer that is
     * never read (their place in the checkpoint, or this block). */
    dl->data = t->data ? t->data : (void *)b;
    dl->device = dev;
    dl->ndim = ndim;
    dl->dtype = dt;
    dl->shape = shape;
    dl->strides = strides;
    dl->byte_offset = 0;
    b->model = m;
    b->inner = (flags & TTSM_DLPACK_INNER) != 0;
    *out = b;
    return TTSM_OK;
}

static void retain_for(export_block *b)
{
    if (b->inner)
        ttsm_model_retain_inner(b->model);
    else
        ttsm_model_retain(b->model);
}

ttsm_status ttsm_model_export_dlpack(ttsm_model *model, size_t component, size_t index,
                                     unsigned flags, struct DLManagedTensorVersioned **out,
                                     ttsm_error *err)
{
    export_block *b;
    ttsm_status st = export_block_new(model, component, index, flags, out ? &b : NULL, err);
    if (st != TTSM_OK)
        return st;
    DLManagedTensorVersioned *v = &b->m.versioned;
    v->version.major = DLPACK_MAJOR_VERSION;
    v->version.minor = DLPACK_MINOR_VERSION;
    v->manager_ctx = b;
    v->deleter = delete_versioned;
    /* A cache entry's memory is shared by every holder of the entry and by
     * later cache hits (and, on cpu, by the same model on other devices,
     * which upload from it): a write would silently change the weights for
     * all of them. Writes never reach the file (the mapping is private
     * copy-on-write), so writable exports are allowed, on request. */
    v->flags = (flags & TTSM_DLPACK_WRITABLE) ? 0 : DLPACK_FLAG_BITMASK_READ_ONLY;
    retain_for(b);
    *out = v;
    return TTSM_OK;
}

ttsm_status ttsm_model_export_dlpack_legacy(ttsm_model *model, size_t component, size_t index,
                                            unsigned flags, struct DLManagedTensor **out,
                                            ttsm_error *err)
{
    export_block *b;
    ttsm_status st = export_block_new(model, component, index, flags, out ? &b : NULL, err);
    if (st != TTSM_OK)
        return st;
    DLTensor dl = b->m.versioned.dl_tensor;
    DLManagedTensor *l = &b->m.legacy;
    memset(l, 0, sizeof *l);
    l->dl_tensor = dl;
    l->manager_ctx = b;
    l->deleter = delete_legacy;
    retain_for(b);
    *out = l;
    return TTSM_OK;
}

const ttsm_checkpoint *ttsm_model_component_checkpoint(const ttsm_model *m, size_t component)
{
    if (!m || component >= m->n_comps || !m->comps[component].host)
        return NULL;
    return m->comps[component].host->ck;
}
