/* pull.h - pulling a manifest model's files from the Hub (pull.c): the
 * planner walks the model's components as the resolver does, keeps what
 * is found locally, and fetches the rest with a small pool of threads. */
#ifndef TTSM_STORE_PULL_H
#define TTSM_STORE_PULL_H

#include <jansson.h>

#include "ttsm.h"
#include "manifest/manifest.h"

/* Pulls model `ms` of manifest `m` for `cfg` (model type, params and
 * repo_id as the resolver reads them; the caller has canonicalised it).
 * `o` is complete (struct_size checked by the caller). `*report` (may be
 * NULL) gets the JSON report of ttsm_pull(), to json_decref. */
ttsm_status ttsm__pull_model(const ttsm__manifest *m, const ttsm__model_spec *ms,
                             const ttsm_load_config *cfg, const ttsm_pull_options *o,
                             json_t **report, ttsm_error *err);

#endif
