/* materialise.c - how a built model becomes tensors on its device:
 * pointers into host memory on host-visible devices; elsewhere one device
 * allocation per component, each storage uploaded once however many
 * tensors view it; and the bytes that charges to the device's budget. */
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "devices/cuda.h"
#include "formats/table.h"
#include "engines/model.h"
#include "cache/materialise.h"

#define DEVICE_ALIGN 256u

/* Storage `s` of `ck` holds at least one tensor: marks in `used`. */
static ttsm_status mark_used(const ttsm_checkpoint *ck, unsigned char **used, ttsm_error *err)
{
    *used = ttsm__calloc(ck->n_storages ? ck->n_storages : 1, 1);
    if (!*used)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, ck->path, "out of memory", "storage map");
    for (size_t i = 0; i < ck->n_tensors; i++)
        (*used)[ck->tensors[i].storage_index] = 1;
    return TTSM_OK;
}

static uint64_t stored_size(const ttsm_model *m, uint64_t n)
{
    if (m->backend.host_visible)
        return n;
    return (n + DEVICE_ALIGN - 1) / DEVICE_ALIGN * DEVICE_ALIGN;
}

static ttsm_status component_bytes(const ttsm_model *m, const ttsm_checkpoint *ck, uint64_t *out,
                                   ttsm_error *err)
{
    unsigned char *used;
    ttsm_status st = mark_used(ck, &used, err);
    if (st != TTSM_OK)
        return st;
    uint64_t total = 0;
    for (size_t s = 0; s < ck->n_storages; s++)
        if (used[s] && __builtin_add_overflow(total, stored_size(m, ck->storages[s].nbytes), &total))
            st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, ck->path, "too large",
                           "storage sizes overflow 64 bits");
    ttsm__free(used);
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

static ttsm_status materialise_component(ttsm_model *m, ttsm__component *c, uint64_t *done,
                                         uint64_t total, const progress *pr, ttsm_error *err)
{
    ttsm_checkpoint *ck = c->host->ck;
    unsigned char *used = NULL;
    uint64_t *off = NULL;
    ttsm_status st;
    c->tensors = ttsm__calloc(ck->n_tensors ? ck->n_tensors : 1, sizeof *c->tensors);
    if (!c->tensors)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, ck->path, "out of memory", "tensor table");
    if ((st = mark_used(ck, &used, err)) != TTSM_OK)
        return st;
    int host = m->backend.host_visible;
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
            if (used[s]) {
                off[s] = at;
                at += stored_size(m, ck->storages[s].nbytes);
            }
    }
    /* Storages upload whole, once, however many tensors view them; to CUDA
     * a storage that lies in a file goes from the file straight through the
     * staging ring (devices/cuda.c), without a pass through a mapping. */
    int from_file = !host && ttsm__cuda_is_backend(&m->backend);
    for (size_t i = 0; i < ck->n_tensors; i++) {
        const ttsm_tensor_info *t = &ck->tensors[i];
        const ttsm__storage *sg = &ck->storages[t->storage_index];
        int fd = from_file && sg->file_index != UINT32_MAX && !sg->mem
                     ? ck->files[sg->file_index].fd
                     : -1;
        const void *src = NULL;
        if (fd < 0 && (st = ttsm_checkpoint_tensor_data(ck, t, &src, err)) != TTSM_OK)
            goto out;
        ttsm_model_tensor *mt = &c->tensors[i];
        mt->name = t->name;
        mt->dtype = t->dtype;
        mt->rank = t->rank;
        mt->shape = t->shape;
        mt->strides = t->strides;
        mt->nbytes = t->nbytes;
        uint32_t s = t->storage_index;
        uint64_t sbytes = ck->storages[s].nbytes;
        if (host) {
            mt->data = (void *)(uintptr_t)src;
        } else {
            mt->data = (unsigned char *)c->block + off[s] + t->storage_offset;
        }
        if (used[s] != 1)
            continue;
        used[s] = 2;
        if (!host && sbytes > 0) {
            unsigned char *dst = (unsigned char *)c->block + off[s];
            if (fd >= 0) {
                st = ttsm__cuda_upload_file(m->dev_index, dst, fd, sg->file_offset, sbytes, err);
            } else {
                const unsigned char *base = (const unsigned char *)src - t->storage_offset;
                st = m->backend.upload(m->backend.user, m->dev_index, dst, base, sbytes, err);
            }
            if (st != TTSM_OK)
                goto out;
        }
        *done += stored_size(m, sbytes);
        if (pr->fn && pr->fn(pr->user, m->key, *done, total)) {
            st = ttsm__err(err, TTSM_ERR_CANCELLED, m->engine, "cancelled",
                           "the progress callback stopped the load of %s at %llu of %llu bytes",
                           m->key, (unsigned long long)*done, (unsigned long long)total);
            goto out;
        }
    }
out:
    ttsm__free(used);
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
        ttsm__free(c->tensors);
        c->tensors = NULL;
    }
}
