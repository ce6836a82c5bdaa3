/* prefetch.h - bringing a loaded model's bytes into memory in the
 * background (prefetch.c), for ttsm_model_prefetch and the manager's
 * `prefetch` option. The state hangs off the model; the manager starts the
 * pass and frees the state with the entry. */
#ifndef TTSM_CACHE_PREFETCH_H
#define TTSM_CACHE_PREFETCH_H

#include "ttsm.h"
#include "engines/model.h"

/* Starts the background pass over `m` once (a second start does nothing).
 * Takes over one reference to `m`, which `release` drops when the pass is
 * done (or at once when it is not started). */
ttsm_status ttsm__prefetch_start(ttsm_model *m, void (*release)(ttsm_model *), ttsm_error *err);

/* Frees the model's prefetch state; its pass is done (it held a reference). */
void ttsm__prefetch_forget(ttsm_model *m);

#endif
