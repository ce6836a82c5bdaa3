/* download.h - ttsm_pull() and ttsm_remove() (download.c), and the load on
 * a miss the manager runs when its `download` option is on. */
#ifndef TTSM_CACHE_DOWNLOAD_H
#define TTSM_CACHE_DOWNLOAD_H

#include "ttsm.h"
#include "base/log.h"
#include "manifest/manifest.h"

/* Before a manifest model's factory runs: when the manager's options `mo`
 * download and files of the model `cfg` names are missing, pulls them
 * (progress goes to the manager's callback under `key`). Nothing happens
 * when nothing is missing. @return TTSM_OK, or the pull's error. */
ttsm_status ttsm__download_missing(const ttsm_manager_options *mo, const ttsm__logger *log,
                                   const ttsm__manifest *m, const ttsm_load_config *cfg,
                                   const char *key, ttsm_error *err);

#endif
