/* espeak.h - the espeak-ng engine (espeak.c): the one engine that speaks
 * inside ttsm; a manifest names it with "factory": "espeak". */
#ifndef TTSM_ENGINES_ESPEAK_H
#define TTSM_ENGINES_ESPEAK_H

#include "ttsm.h"

ttsm_status ttsm__espeak_factory(const ttsm_load_config *cfg, const ttsm_factory_ctx *ctx,
                                 ttsm_model **out, ttsm_error *err);
ttsm_status ttsm__espeak_synthesize(ttsm_model *model, const char *text,
                                    const ttsm_synth_options *options, ttsm_audio *out,
                                    ttsm_error *err);
/* {"engine", "voices": [{"name", "id", "languages", "gender"}]} (ttsm_model_voices). */
ttsm_status ttsm__espeak_voices(ttsm_model *model, char **out, ttsm_error *err);

#endif
