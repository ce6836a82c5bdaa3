/* config_internal.h - language tables shared by config.c, the cache key and
 * (later) the engine registry. */
#ifndef TTSM_CONFIG_INTERNAL_H
#define TTSM_CONFIG_INTERNAL_H

#include "ttsm.h"

/* ISO 639-1 code for a language name or code (case-insensitive), or NULL. */
const char *ttsm__language_code(const char *name);
/* Lower-case English name of a code, or NULL. */
const char *ttsm__language_name(const char *code);

#endif
