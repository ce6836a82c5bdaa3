/* factory_manifest.h - the factory of every engine whose manifest needs no
 * code (factory_manifest.c): it resolves the model's files and adds them. */
#ifndef TTSM_ENGINES_FACTORY_MANIFEST_H
#define TTSM_ENGINES_FACTORY_MANIFEST_H

#include "ttsm.h"

ttsm_status ttsm__manifest_factory(const ttsm_load_config *cfg, const ttsm_factory_ctx *ctx,
                                   ttsm_model **out, ttsm_error *err);

#endif
