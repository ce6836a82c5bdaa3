/* model.c - what a factory builds: a model's components, each a checkpoint
 * shared through the manager's pool or a JSON or blob file, and the
 * engine's own data; the factory context; what a model handle tells. */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/json.h"
#include "base/path.h"
#include "formats/table.h"
#include "formats/pool.h"
#include "engines/model.h"

#define MAX_COMPONENTS 1024u
#define MAX_JSON_BYTES (256ull << 20) /* the largest tokenizer files are tens of MB */

/* ---- factory helpers -------------------------------------------------- */

ttsm_status ttsm_model_create(const ttsm_factory_ctx *ctx, ttsm_model **out, ttsm_error *err)
{
    if (!ctx || !out)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "ttsm_model_create", "invalid argument",
                         "ctx and out must not be NULL");
    ttsm_factory_ctx *c = (ttsm_factory_ctx *)ctx;
    if (c->created)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, ctx->model->engine, "invalid argument",
                         "ttsm_model_create called twice in one factory call");
    c->created = 1;
    *out = ctx->model;
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
    if (!m || !component || !*component || !path || !m->building)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "ttsm_model_add_checkpoint",
                         "invalid argument", "a model in a factory, a component name and a path");
    ttsm__component *c;
    ttsm_status st = next_component(m, component, &c, err);
    if (st != TTSM_OK)
        return st;
    st = ttsm__pool_acquire(m->pool, path, &c->host, err);
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
    int fd = -1;
    /* A FIFO or a device is refused without waiting on it. */
    ttsm_status st = ttsm__open_regular(path, "cannot open", NULL, &fd, &sb, err);
    if (st != TTSM_OK)
        return st;
    if (kind == TTSM_FILE_BLOB) {
        close(fd);
        return TTSM_OK;
    }
    if ((uint64_t)sb.st_size > MAX_JSON_BYTES) {
        close(fd);
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "JSON too large",
                         "%lld bytes, the limit is %llu", (long long)sb.st_size,
                         (unsigned long long)MAX_JSON_BYTES);
    }
    json_error_t je;
    json_t *j = json_loadfd(fd, 0, &je);
    close(fd);
    if (!j && ttsm__json_oom(&je))
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, path, "out of memory", "parsing JSON");
    if (!j) {
        char why[160];
        return ttsm__err(err, TTSM_ERR_FORMAT, path, "invalid JSON", "%s",
                         ttsm__json_error_text(&je, why, sizeof why));
    }
    json_decref(j);
    return TTSM_OK;
}

ttsm_status ttsm_model_add_file(ttsm_model *m, const char *component, const char *path,
                                ttsm_file_kind kind, ttsm_error *err)
{
    if (!m || !component || !*component || !path || !m->building ||
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
ttsm_status ttsm_factory_ctx_charge(const ttsm_factory_ctx *ctx, uint64_t bytes, ttsm_error *err)
{
    if (!ctx || !ctx->in_build)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "ttsm_factory_ctx_charge",
                         "invalid argument", "only a build hook can charge bytes");
    ttsm_factory_ctx *c = (ttsm_factory_ctx *)ctx;
    if (__builtin_add_overflow(c->charged, bytes, &c->charged))
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, ctx->model->engine, "invalid argument",
                         "charged bytes overflow 64 bits");
    return TTSM_OK;
}
uint64_t ttsm_factory_ctx_estimate(const ttsm_factory_ctx *ctx)
{
    return ctx ? ctx->estimate : 0;
}

void ttsm__model_free_parts(ttsm_model *m)
{
    for (size_t i = 0; i < m->n_comps; i++) {
        if (m->comps[i].host)
            ttsm__pool_release(m->pool, m->comps[i].host);
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
ttsm_dtype ttsm_model_dtype(const ttsm_model *m)
{
    return m ? m->convert : TTSM_DTYPE_INVALID;
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
