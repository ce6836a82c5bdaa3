/* table.h - the process-wide engine table (table.c). Entries are never
 * removed; a manifest override swaps an entry's manifest atomically. The
 * registry (registry.c) fills it and is what the layers above call. */
#ifndef TTSM_ENGINES_TABLE_H
#define TTSM_ENGINES_TABLE_H

#include "ttsm.h"
#include "manifest/manifest.h"

/* An engine as registered (in code, or from a manifest). The public
 * ttsm_engine_info handle points at one of these. */
typedef struct ttsm_engine_info {
    char name[TTSM_CONFIG_NAME_MAX];
    ttsm_factory_fn factory;
    ttsm_engine_caps caps;
    char devices[128];
    const struct ttsm__manifest *manifest; /* NULL for engines registered in code */
    int attached; /* a manifest engine with code attached (ttsm_register_engine, NULL factory) */
} ttsm__engine;

/* Adds an engine registered in code; with `factory` NULL, attaches caps'
 * hooks (build, recover, user, extra_*) to the manifest engine `name`.
 * @return TTSM_OK or TTSM_ERR_INVALID_ARGUMENT (bad arguments, name taken,
 * table full, no such manifest engine, code attached already). */
ttsm_status ttsm__table_add_code(const char *name, ttsm_factory_fn factory,
                                 const ttsm_engine_caps *caps, ttsm_error *err);
/* Adds the engine of a manifest, or swaps the manifest of the engine of that
 * name (an override from a folder). @return TTSM_OK or
 * TTSM_ERR_INVALID_ARGUMENT (the name belongs to an engine registered in
 * code, or the table is full). */
ttsm_status ttsm__table_add_manifest(const struct ttsm__manifest *m, ttsm_factory_fn factory,
                                     ttsm_synthesize_fn synthesize, ttsm_error *err);
/* Copies the engine called `name` (its name or, for manifest engines, an
 * alias, case-insensitively; "file" is built in) to *out. @return 0 or -1. */
int ttsm__table_find(const char *name, ttsm__engine *out);
/* Handles for the public queries: the built-in `file` engine, the number of
 * other entries, entry `index`, the entry called `name` (NULL: none). */
const ttsm__engine *ttsm__table_file(void);
size_t ttsm__table_count(void);
const ttsm__engine *ttsm__table_get(size_t index);
const ttsm__engine *ttsm__table_handle(const char *name);
/* "file, chatterbox, ..." for messages. */
void ttsm__table_list(char *buf, size_t size);
/* 1 when the engine may run on `device` ("cuda:0" matches kind "cuda"). */
int ttsm__engine_supports(const ttsm__engine *e, const char *device);

#endif
