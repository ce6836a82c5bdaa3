/* materialise.h - a built model's size on its device and its tensors there
 * (materialise.c). Called by the manager, outside its lock. */
#ifndef TTSM_CACHE_MATERIALISE_H
#define TTSM_CACHE_MATERIALISE_H

#include "ttsm.h"
#include "engines/model.h"

/* Bytes the model takes on its device (storages with tensors; 256-aligned
 * each when the device is not host-visible). */
ttsm_status ttsm__model_bytes(ttsm_model *m, uint64_t *out, ttsm_error *err);
/* Points or uploads every tensor, reporting bytes done of `total` to `fn`
 * (which may cancel: TTSM_ERR_CANCELLED); undoes itself on failure. */
ttsm_status ttsm__model_materialise(ttsm_model *m, uint64_t total, ttsm_progress_fn fn, void *user,
                                    ttsm_error *err);
/* Frees the device copy (a no-op when there is none). */
void ttsm__model_dematerialise(ttsm_model *m);

#endif
