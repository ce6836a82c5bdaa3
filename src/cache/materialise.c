/* materialise.c - how a built model becomes tensors on its device:
 * pointers into host memory on host-visible devices; elsewhere one device
 * allocation per component, each storage uploaded once however many
 * tensors view it; floating-point storages converted to the model's load
 * dtype on the way (base/convert.c); and the bytes that charges to the
 * device's budget. */
#include <string.h>

#include "base/alloc.h"
#include "base/convert.h"
#include "base/error.h"
#include "devices/cuda.h"
#include "formats/table.h"
#include "engines/model.h"
#include "cache/materialise.h"

#define DEVICE_ALIGN 256u
#define HOST_ALIGN 64u

/* What each storage of a checkpoint holds: whether a tensor uses it, and
 * whether it is converted (every tensor on it of one dtype that converts,
 * at offsets that are whole elements). */
typedef struct storage_plan {
    unsigned char used;   /* 1: a tensor uses it; 2: done (materialise) */
    unsigned char mixed;  /* tensors of different dtypes share it: kept as stored */
    ttsm_dtype dtype;     /* the dtype of its tensors */
} storage_plan;

static uint32_t elem_size(ttsm_dtype d)
{
    uint32_t be = 1, bb = 1;
    ttsm_dtype_block(d, &be, &bb);
    return bb / be;
}

static ttsm_status plan_storages(const ttsm_checkpoint *ck, storage_plan **out, ttsm_error *err)
{
    storage_plan *p = ttsm__calloc(ck->n_storages ? ck->n_storages : 1, sizeof *p);
    if (!p)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, ck->path, "out of memory", "storage map");
    for (size_t i = 0; i < ck->n_tensors; i++) {
        const ttsm_tensor_info *t = &ck->tensors[i];
        storage_plan *s = &p[t->storage_index];
        if (!s->used)
            s->dtype = t->dtype;
        else if (s->dtype != t->dtype)
            s->mixed = 1;
        uint32_t es = elem_size(t->dtype); /* 0 for sub-byte and block types */
        if (es && t->storage_offset % es)
            s->mixed = 1;
        s->used = 1;
    }
    *out = p;
    return TTSM_OK;
}

/* The dtype storage `s` has on the device: converted, or as stored. */
static ttsm_dtype device_dtype(const ttsm_model *m, const ttsm_checkpoint *ck,
                               const storage_plan *p, size_t s)
{
    if (m->convert && !p[s].mixed && ttsm__converts(p[s].dtype, m->convert) &&
        ck->storages[s].nbytes % elem_size(p[s].dtype) == 0)
        return m->convert;
    return p[s].dtype;
}

/* Bytes of storage `s` on the device (converted size, device alignment). */
static uint64_t stored_size(const ttsm_model *m, const ttsm_checkpoint *ck, const storage_plan *p,
                            size_t s)
{
    uint64_t n = ck->storages[s].nbytes;
    ttsm_dtype to = device_dtype(m, ck, p, s);
    if (to != p[s].dtype) /* shrinks or grows by at most 2x: no overflow below 2^63 */
        n = n / elem_size(p[s].dtype) * elem_size(to);
    if (m->backend.host_visible)
        return n;
    return (n + DEVICE_ALIGN - 1) / DEVICE_ALIGN * DEVICE_ALIGN;
}

static ttsm_status component_bytes(const ttsm_model *m, const ttsm_checkpoint *ck, uint64_t *out,
                                   ttsm_error *err)
{
    storage_plan *p;
    ttsm_status st = plan_storages(ck, &p, err);
    if (st != TTSM_OK)
        return st;
    uint64_t total = 0;
    for (size_t s = 0; s < ck->n_storages && st == TTSM_OK; s++) {
        if (!p[s].used)
            continue;
        if (ck->storages[s].nbytes > (UINT64_MAX >> 2) ||
            __builtin_add_overflow(total, stored_size(m, ck, p, s), &total))
            st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, ck->path, "too large",
                           "storage sizes overflow 64 bits");
    }
    ttsm__free(p);
    *out = total;
    return st;
}

ttsm_status ttsm__model_bytes(ttsm_model *m, uint64_t *out, ttsm_error *err)
{
    uint64_t total = 0;
    for (size_t i = 0; i < m->n_comps; i++) {
        uint64_t b;
        if (!m->comps[i].host) /* json and blob files stay in the file */
            continue;
        ttsm_status st = component_bytes(m, m->comps[i].host->ck, &b, err);
        if (st != TTSM_OK)
            return st;
        if (__builtin_add_overflow(total, b, &total))
            return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, m->engine, "too large",
                             "model size overflows 64 bits");
    }
    *out = total;
    return TTSM_OK;
}

typedef struct progress {
    ttsm_progress_fn fn;
    void *user;
} progress;

/* Storage `s` converted into a fresh host buffer of `nbytes`. */
static ttsm_status convert_storage(const ttsm_model *m, const ttsm_checkpoint *ck,
                                   const storage_plan *p, size_t s, const void *base,
                                   uint64_t nbytes, void **out, ttsm_error *err)
{
    if (nbytes > SIZE_MAX)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, ck->path, "too large", "storage %zu", s);
    void *buf = ttsm__aligned_alloc(HOST_ALIGN, nbytes ? (size_t)nbytes : 1);
    if (!buf)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, ck->path, "out of memory",
                         "converting %llu bytes to %s", (unsigned long long)nbytes,
                         ttsm__load_dtype_name(m->convert));
    ttsm__convert(buf, m->convert, base, p[s].dtype,
                  ck->storages[s].nbytes / elem_size(p[s].dtype));
    *out = buf;
    return TTSM_OK;
}

static ttsm_status materialise_component(ttsm_model *m, ttsm__component *c, uint64_t *done,
                                         uint64_t total, const progress *pr, ttsm_error *err)
{
    ttsm_checkpoint *ck = c->host->ck;
    storage_plan *plan = NULL;
    uint64_t *off = NULL;
    ttsm_status st;
    c->tensors = ttsm__calloc(ck->n_tensors ? ck->n_tensors : 1, sizeof *c->tensors);
    if (!c->tensors)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, ck->path, "out of memory", "tensor table");
    if ((st = plan_storages(ck, &plan, err)) != TTSM_OK)
        return st;
    int host = m->backend.host_visible;
    if (host && m->convert &&
        !(c->converted = ttsm__calloc(ck->n_storages ? ck->n_storages : 1, sizeof *c->converted))) {
        st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, ck->path, "out of memory", "storages");
        goto out;
    }
    if (!host) {
        if ((st = component_bytes(m, ck, &c->block_bytes, err)) != TTSM_OK)
            goto out;
        off = ttsm__calloc(ck->n_storages ? ck->n_storages : 1, sizeof *off);
        if (!off) {
            st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, ck->path, "out of memory", "offsets");
            goto out;
        }
        if (c->block_bytes > 0 &&
            (st = m->backend.alloc(m->backend.user, m->dev_index, c->block_bytes, &c->block,
                                   err)) != TTSM_OK)
            goto out;
        uint64_t at = 0;
        for (size_t s = 0; s < ck->n_storages; s++)
            if (plan[s].used) {
                off[s] = at;
                at += stored_size(m, ck, plan, s);
            }
    }
    /* Storages are converted and uploaded whole, once, however many
     * tensors view them; to CUDA a storage that lies in a file and needs no
     * conversion goes from the file straight through the staging ring
     * (devices/cuda.c), without a pass through a mapping. */
    int from_file = !host && ttsm__cuda_is_backend(&m->backend);
    for (size_t i = 0; i < ck->n_tensors; i++) {
        const ttsm_tensor_info *t = &ck->tensors[i];
        const ttsm__storage *sg = &ck->storages[t->storage_index];
        uint32_t s = t->storage_index;
        uint64_t sbytes = ck->storages[s].nbytes;
        ttsm_dtype to = device_dtype(m, ck, plan, s);
        int fd = from_file && to == t->dtype && sg->file_index != UINT32_MAX && !sg->mem &&
                         !sg->lazy
                     ? ck->files[sg->file_index].fd
                     : -1;
        const void *src = NULL;
        if (fd < 0 && (st = ttsm_checkpoint_tensor_data(ck, t, &src, err)) != TTSM_OK)
            goto out;
        uint32_t from_size = elem_size(t->dtype), to_size = elem_size(to);
        const unsigned char *base = src ? (const unsigned char *)src - t->storage_offset : NULL;
        uint64_t dev_bytes = to == t->dtype ? sbytes : sbytes / from_size * to_size;
        void *conv = NULL;
        if (plan[s].used == 1 && to != t->dtype) {
            if ((st = convert_storage(m, ck, plan, s, base, dev_bytes, &conv, err)) != TTSM_OK)
                goto out;
            if (host)
                c->converted[s] = conv;
        }
        ttsm_model_tensor *mt = &c->tensors[i];
        mt->name = t->name;
        mt->dtype = to;
        mt->rank = t->rank;
        mt->shape = t->shape;
        mt->strides = t->strides;
        mt->nbytes = to == t->dtype ? t->nbytes : t->nbytes / from_size * to_size;
        uint64_t at = to == t->dtype ? t->storage_offset : t->storage_offset / from_size * to_size;
        if (host)
            mt->data = to == t->dtype ? (void *)(uintptr_t)src
                                      : (unsigned char *)c->converted[s] + at;
        else
            mt->data = (unsigned char *)c->block + off[s] + at;
        if (plan[s].used != 1)
            continue;
        plan[s].used = 2;
        if (!host && dev_bytes > 0) {
            unsigned char *dst = (unsigned char *)c->block + off[s];
            if (fd >= 0)
                st = ttsm__cuda_upload_file(m->dev_index, dst, fd, sg->file_offset, sbytes, err);
            else
                st = m->backend.upload(m->backend.user, m->dev_index, dst, conv ? conv : base,
                                       dev_bytes, err);
            ttsm__free(conv); /* uploads may finish later, but need not the source */
            if (st != TTSM_OK)
                goto out;
        } else if (!host) {
            ttsm__free(conv);
        }
        *done += stored_size(m, ck, plan, s);
        if (pr->fn && pr->fn(pr->user, m->key, *done, total)) {
            st = ttsm__err(err, TTSM_ERR_CANCELLED, m->engine, "cancelled",
                           "the progress callback stopped the load of %s at %llu of %llu bytes",
                           m->key, (unsigned long long)*done, (unsigned long long)total);
            goto out;
        }
    }
out:
    ttsm__free(plan);
    ttsm__free(off);
    return st;
}

ttsm_status ttsm__model_materialise(ttsm_model *m, uint64_t total, ttsm_progress_fn fn, void *user,
                                    ttsm_error *err)
{
    const progress pr = {fn, user};
    uint64_t done = 0;
    ttsm_status st = TTSM_OK;
    for (size_t i = 0; i < m->n_comps && st == TTSM_OK; i++)
        if (m->comps[i].host)
            st = materialise_component(m, &m->comps[i], &done, total, &pr, err);
    if (st == TTSM_OK && !m->backend.host_visible && m->backend.sync)
        st = m->backend.sync(m->backend.user, m->dev_index, err);
    if (st != TTSM_OK)
        ttsm__model_dematerialise(m);
    return st;
}

void ttsm__model_dematerialise(ttsm_model *m)
{
    for (size_t i = 0; i < m->n_comps; i++) {
        ttsm__component *c = &m->comps[i];
        if (c->block)
            m->backend.free(m->backend.user, m->dev_index, c->block, c->block_bytes);
        c->block = NULL;
        c->block_bytes = 0;
        if (c->converted)
            for (size_t s = 0; s < c->host->ck->n_storages; s++)
                ttsm__free(c->converted[s]);
        ttsm__free(c->converted);
        c->converted = NULL;
        ttsm__free(c->tensors);
        c->tensors = NULL;
    }
}
