/* content.h - the content identity of a built model (content.c; the rule
 * and its vectors are in docs/cache-key.md): the config without its source
 * plus the files each component comes from. Two configs spelled
 * differently - no repo id, the model's own repo id, that repo pinned to
 * the commit main points at - build models with one content identity, and
 * the manager keeps one entry for them. */
#ifndef TTSM_CACHE_CONTENT_H
#define TTSM_CACHE_CONTENT_H

#include <stddef.h>
#include <stdint.h>

#include "ttsm.h"

typedef struct ttsm__content {
    uint64_t hi, lo; /* XXH3-128 of the content string */
    int set;         /* 0: the model has none (never merged) */
} ttsm__content;

/* The key of `canonical` with model_path and repo_id left out, the first
 * part of the content string. @return TTSM_OK or the key's errors. */
ttsm_status ttsm__content_base(const ttsm_load_config *canonical, char out[TTSM_KEY_HEX_SIZE],
                               ttsm_error *err);

/* The content string of components (name, kind, file) under `base`.
 * Malloc'd (ttsm__free), NULL when out of memory; *len gets its length. */
char *ttsm__content_string(const char *base, size_t n, const char *const *names,
                           const char *const *kinds, const char *const *files, size_t *len);

/* The content identity of a model built by a factory. Unset (never merged)
 * when `base` is empty, the model has no component, or it carries engine
 * data (which may depend on more than its files). */
ttsm__content ttsm__content_of(const char *base, const ttsm_model *m);

#endif
