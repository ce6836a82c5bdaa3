/* canonical.h - the canonical form of a load config (canonical.c),
 * what ttsm_cache_key() hashes and what factories receive. */
#ifndef TTSM_CANONICAL_INTERNAL_H
#define TTSM_CANONICAL_INTERNAL_H

#include "ttsm.h"
#include "manifest/manifest.h"

typedef struct ttsm__canon {
    ttsm_load_config cfg;             /* points into the input and into this struct */
    const ttsm__manifest *manifest;   /* NULL: not a manifest engine */
    const ttsm__model_spec *model;    /* the model selected (manifest engines) */
    const ttsm__model_spec *asked;    /* the model the language (or the default) names
                                         when the repo id holds another one's files,
                                         which `model` is then; else NULL */
    char language[TTSM_CONFIG_NAME_MAX + 1];
    ttsm_param params[TTSM_CONFIG_PARAMS_MAX]; /* identity params, sorted */
    const ttsm_param *factory_params; /* every param as given */
    size_t n_factory_params;
    ttsm_dtype dtype; /* the load dtype (the `dtype` param, or a param the
                         manifest maps to one); TTSM_DTYPE_INVALID: as stored */
} ttsm__canon;

/* Validates `in` and fills `out` (which borrows `in`'s strings: keep `in`
 * alive). @return TTSM_OK, TTSM_ERR_INVALID_ARGUMENT (bad config, unknown
 * param or value) or TTSM_ERR_NOT_FOUND (model, model type or language the
 * engine lacks, listing what it has). */
ttsm_status ttsm__canonicalize(const ttsm_load_config *in, ttsm__canon *out, ttsm_error *err);

/* The key of an already canonical config. */
ttsm_status ttsm__cache_key_of(const ttsm_load_config *canonical, char out[TTSM_KEY_HEX_SIZE],
                               ttsm_error *err);

#endif
