/* registry_internal.h - the engine registry: manifests compiled into the
 * library, overridden or extended from folders, and the engines they make.
 * Shared by registry.c, engine.c, cache_key.c and the manifest factory. */
#ifndef TTSM_REGISTRY_INTERNAL_H
#define TTSM_REGISTRY_INTERNAL_H

#include <stddef.h>

#include "manifest/manifest.h"
#include "ttsm.h"

typedef struct ttsm__builtin_manifest {
    const char *file; /* "chatterbox.json" */
    const char *text;
    size_t len;
} ttsm__builtin_manifest;

/* The engines folder's manifests, generated into the build by cmake/embed_manifests.cmake. */
extern const ttsm__builtin_manifest ttsm__builtin_manifests[];
extern const size_t ttsm__n_builtin_manifests;

/* Loads the built-in manifests and TTSM_ENGINES_PATH once per process
 * (thread-safe). Called by every registry entry point. */
void ttsm__registry_init(void);

/* The manifest of engine `name` (canonical name or alias), or NULL for an
 * engine registered in code or an unknown name. Manifests are immutable and
 * live until the process ends. */
const ttsm__manifest *ttsm__registry_manifest(const char *name);

/* The factory of every engine whose manifest needs no code
 * (engine_manifest.c): resolves the model's files and adds them. */
ttsm_status ttsm__manifest_factory(const ttsm_load_config *cfg, const ttsm_factory_ctx *ctx,
                                   ttsm_model **out, ttsm_error *err);

/* Code that a manifest's "factory" field names: for what data cannot say. */
typedef struct ttsm__code_factory {
    const char *name;
    ttsm_factory_fn factory;
    ttsm_synthesize_fn synthesize;
} ttsm__code_factory;

/* The espeak-ng engine (engine_espeak.c). */
ttsm_status ttsm__espeak_factory(const ttsm_load_config *cfg, const ttsm_factory_ctx *ctx,
                                 ttsm_model **out, ttsm_error *err);
ttsm_status ttsm__espeak_synthesize(ttsm_model *model, const char *text,
                                    const ttsm_synth_options *options, ttsm_audio *out,
                                    ttsm_error *err);

#endif
