/* model.h - struct ttsm_model: what a factory builds (model.c).
 *
 * Ownership: the cache owns every ttsm_model. Each one is the first member
 * of a cache entry (cache/state.h), which the manager allocates, hands to
 * the engine's factory through the factory context, and frees. Factories
 * fill it only through the ttsm_model_* builders of include/ttsm.h; the
 * identity fields are set by the manager before the factory runs, the
 * device copy (tensors, block) by cache/materialise.c after it. */
#ifndef TTSM_ENGINES_MODEL_H
#define TTSM_ENGINES_MODEL_H

#include <stdatomic.h>

#include "ttsm.h"
#include "formats/pool.h"
#include "manifest/manifest.h"

typedef struct ttsm__component {
    char *name;
    ttsm__host *host;           /* NULL for file components (json, blob) */
    char *path;                 /* file components: the canonical path */
    int kind;                   /* file components: TTSM_FILE_JSON / TTSM_FILE_BLOB */
    ttsm_model_tensor *tensors; /* one per checkpoint tensor, same order, once materialised */
    void *block;                /* device allocation (non-host-visible devices) */
    uint64_t block_bytes;
    void **converted;           /* host-visible devices: one owned buffer per storage
                                   converted to the model's dtype (else NULL) */
} ttsm__component;

struct ttsm_model {
    /* Identity: set by the manager before the factory runs. */
    char key[TTSM_KEY_HEX_SIZE];
    char *engine, *label; /* label: model name, path or repo id */
    char device[TTSM_DEVICE_NAME_MAX];
    ttsm_backend backend;
    int dev_index;
    /* What the factory builds. */
    int building;          /* 1 while the factory runs: the builders refuse otherwise */
    ttsm__pool *pool;      /* where checkpoints are opened (the manager's) */
    ttsm__component *comps;
    size_t n_comps, cap_comps;
    void *engine_data;
    void (*engine_destroy)(void *);
    ttsm_synthesize_fn synthesize; /* from the engine's caps */
    /* The voices the engine offers as JSON (ttsm_model_voices); NULL: none. */
    ttsm_status (*voices)(ttsm_model *model, char **json, ttsm_error *err);
    /* Set by the manager once the model is admitted. */
    uint64_t bytes;
    /* Floating-point tensors become this dtype at materialisation
     * (TTSM_DTYPE_INVALID: as stored); set by the manager before the factory. */
    ttsm_dtype convert;
    /* The cache's background pass over the bytes (cache/prefetch.c); NULL
     * until one is started. */
    _Atomic(struct ttsm__prefetch *) prefetch;
};

/* What a factory is handed (ttsm_factory_ctx_* read it). */
struct ttsm_factory_ctx {
    ttsm_model *model;                     /* ttsm_model_create hands this out */
    const struct ttsm__manifest *manifest; /* the engine's; NULL for code engines */
    const char *models_dirs, *hf_cache;    /* where the manager looks for files */
    const char *comfyui_dirs;              /* ComfyUI installations (store/roots.h) */
    const char *device;
    void *user;
    int recovering;
    int created;
    int in_build;      /* 1 while the engine's build hook runs: it may charge */
    uint64_t estimate; /* bytes admitted for the build beyond the weights */
    uint64_t charged;  /* what the build reported (ttsm_factory_ctx_charge) */
};

/* Releases the components' checkpoints and files, destroys the engine data
 * and frees the strings. The device copy must be gone already
 * (ttsm__model_dematerialise). */
void ttsm__model_free_parts(ttsm_model *m);

#endif
