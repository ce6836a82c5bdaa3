/* synth.c - ttsm_synthesize(): hands text to the engine that loaded the
 * model, or says why that engine does not speak inside ttsm. */
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "engines/model.h"

ttsm_synth_options ttsm_synth_options_default(void)
{
    ttsm_synth_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.pitch = -1;
    return o;
}

ttsm_status ttsm_synthesize(ttsm_model *model, const char *text, const ttsm_synth_options *options,
                            ttsm_audio *out, ttsm_error *err)
{
    if (!model || !text || !out)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "ttsm_synthesize", "invalid argument",
                         "model, text and out must be given");
    if (options && options->struct_size != sizeof *options)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "ttsm_synthesize", "invalid argument",
                         "options.struct_size is %zu, expected %zu: use "
                         "ttsm_synth_options_default()",
                         options->struct_size, sizeof *options);
    ttsm_synth_options o = options ? *options : ttsm_synth_options_default();
    if (!*text)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, model->engine, "nothing to say",
                         "the text is empty");
    if (!model->synthesize) {
        ttsm_status st = ttsm__err(
            err, TTSM_ERR_ENGINE, model->engine, "cannot synthesise here",
            "%s's weights are for a PyTorch runtime; ttsm loads, checks and caches them, and "
            "the engine's own Python code speaks with them",
            model->engine);
        ttsm__err_hint(err, "in Python: m = ttsm.Manager(...).load(\"%s\"); "
                            "weights = m.state_dict() (zero-copy torch tensors)",
                       model->engine);
        return st;
    }
    memset(out, 0, sizeof *out);
    return model->synthesize(model, text, &o, out, err);
}

void ttsm_audio_free(ttsm_audio *a)
{
    if (!a)
        return;
    ttsm__free(a->samples);
    a->samples = NULL;
    a->n_samples = 0;
}

ttsm_status ttsm_model_voices(ttsm_model *model, char **json, ttsm_error *err)
{
    if (!model || !json)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "ttsm_model_voices", "invalid argument",
                         "model and json must be given");
    if (!model->voices)
        return ttsm__err(err, TTSM_ERR_ENGINE, model->engine, "no voices",
                         "%s does not speak inside ttsm, so it has no voices to list",
                         model->engine);
    return model->voices(model, json, err);
}
