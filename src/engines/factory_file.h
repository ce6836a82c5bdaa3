/* factory_file.h - the built-in `file` engine's factory (factory_file.c). */
#ifndef TTSM_ENGINES_FACTORY_FILE_H
#define TTSM_ENGINES_FACTORY_FILE_H

#include "ttsm.h"

ttsm_status ttsm__file_factory(const ttsm_load_config *cfg, const ttsm_factory_ctx *ctx,
                               ttsm_model **out, ttsm_error *err);

#endif
