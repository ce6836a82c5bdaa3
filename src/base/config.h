/* config.h - what the load config's strings mean (config.c): language
 * names and codes, and the generation counter of everything that can change
 * what a config resolves to. */
#ifndef TTSM_BASE_CONFIG_H
#define TTSM_BASE_CONFIG_H

#include "ttsm.h"

/* ISO 639-1 code for a language name or code (case-insensitive), or NULL. */
const char *ttsm__language_code(const char *name);
/* Lower-case English name of a code, or NULL. */
const char *ttsm__language_name(const char *code);

/* A counter bumped whenever what a config means may change: an engine or
 * a manifest registered or replaced, a backend registered, CUDA discovery
 * reset. Managers' hit memos compare it. */
uint64_t ttsm__config_generation(void);
void ttsm__config_changed(void);

#endif
