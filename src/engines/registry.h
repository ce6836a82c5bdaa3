/* registry.h - the engine registry (registry.c): manifests compiled into
 * the library, overridden or extended from folders, the engines they make
 * in the engine table, and the lookups every layer above goes through. */
#ifndef TTSM_ENGINES_REGISTRY_H
#define TTSM_ENGINES_REGISTRY_H

#include <stddef.h>

#include "ttsm.h"
#include "manifest/manifest.h"
#include "engines/table.h"

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

/* The registry's view of the engine table: "file", the built-in engine,
 * or a registered one, by name or alias, after loading the manifests.
 * @return 0 or -1. */
int ttsm__engine_lookup(const char *name, ttsm__engine *out);
/* "file, chatterbox, ..." for messages. */
void ttsm__engine_list(char *buf, size_t size);
/* Fills `err` with the not-found error for engine `name`: the engines
 * there are, and - when a manifest of TTSM_ENGINES_PATH failed to load -
 * which one and why, since the engine asked for may be the one it
 * defines. @return TTSM_ERR_NOT_FOUND. */
ttsm_status ttsm__engine_not_found(const char *name, ttsm_error *err);

#endif
