/* remove.h - taking a manifest model out of the hub cache (remove.c). */
#ifndef TTSM_STORE_REMOVE_H
#define TTSM_STORE_REMOVE_H

#include <jansson.h>

#include "ttsm.h"
#include "manifest/manifest.h"

/* Removes the files of model `ms` that the resolver finds in the hub cache
 * `hf_cache` (NULL: the environment's): its own components (not borrowed
 * or shared ones) and the shards of its sharded indexes, from every
 * snapshot of their repos, then the blobs nothing else references.
 * `*report` gets the JSON of ttsm_remove(). */
ttsm_status ttsm__remove_model(const ttsm__manifest *m, const ttsm__model_spec *ms,
                               const ttsm_load_config *cfg, const char *hf_cache, int dry_run,
                               json_t **report, ttsm_error *err);

#endif
