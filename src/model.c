/* model.c - what a factory builds (a model description: components backed
 * by checkpoints from the manager's shared host table) and how it becomes
 * tensors on a device: pointers into host memory on host-visible devices,
 * one allocation per component plus uploads elsewhere. */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc_internal.h"
#include "checkpoint_internal.h"
#include "error_internal.h"
#include "json_internal.h"
#include "manager_internal.h"
#include "resolve_internal.h"

#define DEVICE_ALIGN 256u
#define MAX_COMPONENTS 1024u
#define MAX_JSON_BYTES (256ull << 20) /* the largest tokenizer files are tens of MB */

void ttsm__log(ttsm_manager *mgr, int level, const char *fmt, ...)
{
    if (!mgr->opt.log)
        return;
    /* Most lines fit the stack buffer; one naming a deep path is formatted
     * again at its full length, and cut only if that allocation fails. */
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    char *line = NULL;
    if (n >= (int)sizeof small && (line = ttsm__malloc((size_t)n + 1)) != NULL) {
        va_start(ap, fmt);
        vsnprintf(line, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    mgr->opt.log(mgr->opt.log_user, level, line ? line : small);
    ttsm__free(line);
}

/* ---- the shared host table ------------------------------------------- */

/* Folds what identifies a file's contents - device, inode, size and
 * modification time - into `h`. A file renamed over, rewritten or
 * truncated since gives another value (docs/reliability.md). */
static uint64_t identity_add(uint64_t h, const struct stat *sb, int ok)
{
    uint64_t v[5] = {ok ? (uint64_t)sb->st_dev : UINT64_MAX, ok ? (uint64_t)sb->st_ino : 0,
                     ok ? (uint64_t)sb->st_size : 0, ok ? (uint64_t)sb->st_mtim.tv_sec : 0,
                     ok ? (uint64_t)sb->st_mtim.tv_nsec : 0};
    for (int i = 0; i < 5; i++)
        h = (h ^ v[i]) * 0x100000001b3ull;
    return h;
}

/* The identity of the files a checkpoint reads: as opened (fstat of its
 * descriptors) or as they are now on disk (stat of their paths). `top` is
 * the stat of the path the table is keyed by (an index is not among the
 * checkpoint's files once its shards are open). */
static uint64_t identity_of(const ttsm_checkpoint *ck, const struct stat *top, int opened)
{
    uint64_t h = identity_add(0xcbf29ce484222325ull, top, 1);
    for (size_t i = 0; i < ck->n_files; i++) {
        struct stat sb;
        int ok = opened ? ck->files[i].fd >= 0 && fstat(ck->files[i].fd, &sb) == 0
                        : stat(ck->files[i].path, &sb) == 0;
        h = identity_add(h, &sb, ok);
    }
    return h;
}

static ttsm_status host_acquire(ttsm_manager *mgr, const char *path, ttsm__host **out,
                                ttsm_error *err)
{
    /* Keyed by location, not by symlink target: a sharded index in a hub
     * snapshot finds its shards next to the snapshot entry, not in blobs/. */
    char canon[PATH_MAX];
    struct stat sb;
    if (stat(path, &sb) != 0 || ttsm__path_location(path, canon, sizeof canon) != 0)
        return ttsm__err(err, TTSM_ERR_NOT_FOUND, path, "file not found", "no such file");
    ttsm_status st = TTSM_OK;
    pthread_mutex_lock(&mgr->host_lock);
    ttsm__host *h, **pp;
    for (pp = &mgr->hosts; (h = *pp) != NULL; pp = &h->next)
        if (strcmp(h->path, canon) == 0)
            break;
    /* A file replaced since it was opened is opened again: this load gets
     * the new contents, entries holding the old checkpoint keep it. */
    if (h && identity_of(h->ck, &sb, 0) != h->identity) {
        ttsm__log(mgr, TTSM_LOG_INFO, "%s changed on disk since it was opened: opening it again",
                  canon);
        *pp = h->next;
        h->next = NULL;
        h->detached = 1;
        h = NULL;
    }
    if (h) {
        h->refs++;
    } else {
        h = ttsm__calloc(1, sizeof *h);
        if (!h || !(h->path = ttsm__strdup(canon))) {
            ttsm__free(h);
            st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, path, "out of memory", "host table");
            goto out;
        }
        ttsm_checkpoint_options o = ttsm_checkpoint_options_default();
        o.io_mode = mgr->opt.io_mode;
        st = ttsm_checkpoint_open(canon, &o, &h->ck, err);
        if (st != TTSM_OK) {
            ttsm__free(h->path);
            ttsm__free(h);
            goto out;
        }
        h->refs = 1;
        h->identity = identity_of(h->ck, &sb, 1);
        h->next = mgr->hosts;
        mgr->hosts = h;
        mgr->host_opens++;
    }
    *out = h;
out:
    pthread_mutex_unlock(&mgr->host_lock);
    return st;
}

/* Called with or without mgr->lock held (host_lock nests inside it). */
static void host_release(ttsm_manager *mgr, ttsm__host *h)
{
    pthread_mutex_lock(&mgr->host_lock);
    if (--h->refs == 0) {
        ttsm__host **pp = &mgr->hosts;
        while (!h->detached && *pp != h)
            pp = &(*pp)->next;
        if (!h->detached)
            *pp = h->next;
        ttsm_checkpoint_close(h->ck);
        ttsm__free(h->path);
        ttsm__free(h);
    }
    pthread_mutex_unlock(&mgr->host_lock);
}

/* ---- factory helpers -------------------------------------------------- */

ttsm_status ttsm_model_create(const ttsm_factory_ctx *ctx, ttsm_model **out, ttsm_error *err)
{
    if (!ctx || !out)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "ttsm_model_create", "invalid argument",
                         "ctx and out must not be NULL");
    ttsm_factory_ctx *c = (ttsm_factory_ctx *)ctx;
    if (c->created)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, ctx->entry->engine, "invalid argument",
                         "ttsm_model_create called twice in one factory call");
    c->created = 1;
    *out = ctx->entry;
    return TTSM_OK;
}

/* The next component slot, named `component` (unique in the model); the
 * caller fills it and counts it (m->n_comps++) once it is complete. */
static ttsm_status next_component(ttsm_model *m, const char *component, ttsm__component **out,
                                  ttsm_error *err)
{
    for (size_t i = 0; i < m->n_comps; i++)
        if (strcmp(m->comps[i].name, component) == 0)
            return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, m->engine, "duplicate component",
                             "'%.200s' is already part of the model", component);
    /* A cap, not memory: a folder of that many checkpoints is not one model. */
    if (m->n_comps >= MAX_COMPONENTS)
        return ttsm__err(err, TTSM_ERR_FORMAT, m->engine, "too many components",
                         "'%.200s' would be component %u; a model has at most %u", component,
                         MAX_COMPONENTS + 1, MAX_COMPONENTS);
    if (ttsm__grow((void **)&m->comps, &m->cap_comps, m->n_comps + 1, sizeof *m->comps,
                   MAX_COMPONENTS) != 0)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, m->engine, "out of memory",
                         "components (at most %u)", MAX_COMPONENTS);
    ttsm__component *c = &m->comps[m->n_comps];
    memset(c, 0, sizeof *c);
    if (!(c->name = ttsm__strdup(component)))
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, m->engine, "out of memory", "name");
    *out = c;
    return TTSM_OK;
}

ttsm_status ttsm_model_add_checkpoint(ttsm_model *m, const char *component, const char *path,
                                      ttsm_error *err)
{
    if (!m || !component || !*component || !path || m->state != TTSM__LOADING)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "ttsm_model_add_checkpoint",
                         "invalid argument", "a model in a factory, a component name and a path");
    ttsm__component *c;
    ttsm_status st = next_component(m, component, &c, err);
    if (st != TTSM_OK)
        return st;
    st = host_acquire(m->mgr, path, &c->host, err);
    if (st != TTSM_OK) {
        ttsm__free(c->name);
        return st;
    }
    m->n_comps++;
    return TTSM_OK;
}

/* JSON is parsed once here so a corrupt tokenizer or config fails the
 * load with its position, not the engine later; blobs must be readable. */
static ttsm_status check_file(const char *path, ttsm_file_kind kind, ttsm_error *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return ttsm__err(err, errno == ENOENT ? TTSM_ERR_NOT_FOUND : TTSM_ERR_IO, path,
                         "cannot open", "%s", strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return ttsm__err(err, TTSM_ERR_IO, path, "cannot open", "not a regular file");
    if (kind == TTSM_FILE_BLOB) {
        FILE *f = fopen(path, "rb");
        if (!f)
            return ttsm__err(err, TTSM_ERR_IO, path, "cannot open", "%s", strerror(errno));
        fclose(f);
        return TTSM_OK;
    }
    if ((uint64_t)sb.st_size > MAX_JSON_BYTES)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "JSON too large",
                         "%lld bytes, the limit is %llu", (long long)sb.st_size,
                         (unsigned long long)MAX_JSON_BYTES);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j && ttsm__json_oom(&je))
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, path, "out of memory", "parsing JSON");
    if (!j)
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "invalid JSON",
                         "%s at line %d, column %d (byte %d)", je.text, je.line, je.column,
                         je.position);
    json_decref(j);
    return TTSM_OK;
}

ttsm_status ttsm_model_add_file(ttsm_model *m, const char *component, const char *path,
                                ttsm_file_kind kind, ttsm_error *err)
{
    if (!m || !component || !*component || !path || m->state != TTSM__LOADING ||
        (kind != TTSM_FILE_JSON && kind != TTSM_FILE_BLOB))
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "ttsm_model_add_file",
                         "invalid argument",
                         "a model in a factory, a component name, a path and a file kind");
    ttsm_status st = check_file(path, kind, err);
    ttsm__component *c;
    if (st != TTSM_OK || (st = next_component(m, component, &c, err)) != TTSM_OK)
        return st;
    c->kind = (int)kind;
    if (!(c->path = ttsm__strdup(path))) {
        ttsm__free(c->name);
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, m->engine, "out of memory", "path");
    }
    m->n_comps++;
    return TTSM_OK;
}

void ttsm_model_set_engine_data(ttsm_model *m, void *data, void (*destroy)(void *))
{
    if (!m)
        return;
    m->engine_data = data;
    m->engine_destroy = destroy;
}

const char *ttsm_factory_ctx_device(const ttsm_factory_ctx *ctx)
{
    return ctx ? ctx->device : NULL;
}
void *ttsm_factory_ctx_user(const ttsm_factory_ctx *ctx)
{
    return ctx ? ctx->user : NULL;
}
int ttsm_factory_ctx_recovering(const ttsm_factory_ctx *ctx)
{
    return ctx ? ctx->recovering : 0;
}

void ttsm__model_free_parts(ttsm_model *m)
{
    ttsm__model_dematerialise(m);
    for (size_t i = 0; i < m->n_comps; i++) {
        if (m->comps[i].host)
            host_release(m->mgr, m->comps[i].host);
        ttsm__free(m->comps[i].path);
        ttsm__free(m->comps[i].name);
        ttsm__free(m->comps[i].tensors);
    }
    ttsm__free(m->comps);
    m->comps = NULL;
    m->n_comps = m->cap_comps = 0;
    if (m->engine_destroy)
        m->engine_destroy(m->engine_data);
    m->engine_data = NULL;
    m->engine_destroy = NULL;
    ttsm__free(m->engine);
    ttsm__free(m->label);
    m->engine = m->label = NULL;
    ttsm__free(m->fail_err);
    m->fail_err = NULL;
}

/* ---- sizes and materialisation --------------------------------------- */

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

static int progress(ttsm_model *m, uint64_t done, uint64_t total)
{
    ttsm_manager *mgr = m->mgr;
    return mgr->opt.progress && mgr->opt.progress(mgr->opt.progress_user, m->key, done, total);
}

static ttsm_status materialise_component(ttsm_model *m, ttsm__component *c, uint64_t *done,
                                         uint64_t total, ttsm_error *err)
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
    /* Storages upload whole, once, however many tensors view them. */
    for (size_t i = 0; i < ck->n_tensors; i++) {
        const ttsm_tensor_info *t = &ck->tensors[i];
        const void *src;
        if ((st = ttsm_checkpoint_tensor_data(ck, t, &src, err)) != TTSM_OK)
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
            const unsigned char *base = (const unsigned char *)src - t->storage_offset;
            st = m->backend.upload(m->backend.user, m->dev_index,
                                   (unsigned char *)c->block + off[s], base, sbytes, err);
            if (st != TTSM_OK)
                goto out;
        }
        *done += stored_size(m, sbytes);
        if (progress(m, *done, total)) {
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

ttsm_status ttsm__model_materialise(ttsm_model *m, uint64_t total, ttsm_error *err)
{
    uint64_t done = 0;
    ttsm_status st = TTSM_OK;
    for (size_t i = 0; i < m->n_comps && st == TTSM_OK; i++)
        if (m->comps[i].host)
            st = materialise_component(m, &m->comps[i], &done, total, err);
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

/* ---- accessors -------------------------------------------------------- */

const char *ttsm_model_key(const ttsm_model *m)
{
    return m ? m->key : NULL;
}
const char *ttsm_model_engine(const ttsm_model *m)
{
    return m ? m->engine : NULL;
}
const char *ttsm_model_name(const ttsm_model *m)
{
    return m ? m->label : NULL;
}
const char *ttsm_model_device(const ttsm_model *m)
{
    return m ? m->device : NULL;
}
uint64_t ttsm_model_bytes(const ttsm_model *m)
{
    return m ? m->bytes : 0;
}
void *ttsm_model_engine_data(const ttsm_model *m)
{
    return m ? m->engine_data : NULL;
}
size_t ttsm_model_component_count(const ttsm_model *m)
{
    return m ? m->n_comps : 0;
}
const char *ttsm_model_component_name(const ttsm_model *m, size_t c)
{
    return m && c < m->n_comps ? m->comps[c].name : NULL;
}
const char *ttsm_model_component_path(const ttsm_model *m, size_t c)
{
    if (!m || c >= m->n_comps)
        return NULL;
    return m->comps[c].host ? m->comps[c].host->path : m->comps[c].path;
}
const char *ttsm_model_component_kind(const ttsm_model *m, size_t c)
{
    if (!m || c >= m->n_comps)
        return NULL;
    if (m->comps[c].host)
        return "tensors";
    return m->comps[c].kind == TTSM_FILE_JSON ? "json" : "blob";
}
size_t ttsm_model_tensor_count(const ttsm_model *m, size_t c)
{
    return m && c < m->n_comps && m->comps[c].tensors ? m->comps[c].host->ck->n_tensors : 0;
}
const ttsm_model_tensor *ttsm_model_get_tensor(const ttsm_model *m, size_t c, size_t i)
{
    if (i >= ttsm_model_tensor_count(m, c))
        return NULL;
    return &m->comps[c].tensors[i];
}
const ttsm_model_tensor *ttsm_model_find_tensor(const ttsm_model *m, size_t c, const char *name)
{
    if (!name || ttsm_model_tensor_count(m, c) == 0)
        return NULL;
    const ttsm_checkpoint *ck = m->comps[c].host->ck;
    const ttsm_tensor_info *t = ttsm_checkpoint_find(ck, name);
    return t ? &m->comps[c].tensors[t - ck->tensors] : NULL;
}
