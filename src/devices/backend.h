/* backend_internal.h - the process-wide tables of device kinds (backends)
 * and engines, shared by device.c (names), cache_key.c (through device.c)
 * and the manager. */
#ifndef TTSM_BACKEND_INTERNAL_H
#define TTSM_BACKEND_INTERNAL_H

#include "ttsm.h"

/* Finds the backend of a canonical device name ("cpu", "cuda:1", "fake:0");
 * copies its table to *out and the index to *index. @return 0 or -1. */
int ttsm__backend_lookup(const char *device, ttsm_backend *out, int *index);

/* Resolves "name" / "name:N" of a registered backend into out ("name:N").
 * @return 1 matched (st set), 0 not a registered name. */
int ttsm__backend_resolve(const char *device, const char *subject, char *out, size_t out_size,
                          ttsm_status *st, ttsm_error *err);
/* Appends ", fake:0, fake:1" for every registered device to buf. */
void ttsm__backend_list(char *buf, size_t size);
/* Devices of registered backends, in registration order (for listings). */
size_t ttsm__backend_device_count(void);
ttsm_status ttsm__backend_device_get(size_t k, ttsm_device_info *out, ttsm_error *err);

/* A counter bumped whenever what a config means may change: an engine or
 * a manifest registered or replaced, a backend registered, CUDA discovery
 * reset. Managers' hit memos compare it. */
uint64_t ttsm__config_generation(void);
void ttsm__config_changed(void);

/* The built-in tables. */
const ttsm_backend *ttsm__cpu_backend(void);
const ttsm_backend *ttsm__cuda_backend(void);

/* An engine as registered (in code, or from a manifest). The public
 * ttsm_engine_info handle points at one of these; entries are never
 * removed, and a manifest override swaps `manifest` atomically. */
typedef struct ttsm_engine_info {
    char name[TTSM_CONFIG_NAME_MAX];
    ttsm_factory_fn factory;
    ttsm_engine_caps caps;
    char devices[128];
    const struct ttsm__manifest *manifest; /* NULL for engines registered in code */
} ttsm__engine;

/* Copies the engine called `name` (its name or, for manifest engines, an
 * alias, case-insensitively) to *out. @return 0 or -1 (not registered). */
int ttsm__engine_lookup(const char *name, ttsm__engine *out);
/* Adds the engine of a manifest, or swaps the manifest of the engine of that
 * name (an override from a folder). `factory` NULL: the manifest factory.
 * @return TTSM_OK or TTSM_ERR_INVALID_ARGUMENT (the name belongs to an
 * engine registered in code, or the table is full). */
ttsm_status ttsm__engine_register_manifest(const struct ttsm__manifest *m, ttsm_factory_fn factory,
                                           ttsm_synthesize_fn synthesize, ttsm_error *err);
/* "file, chatterbox, ..." for messages. */
void ttsm__engine_list(char *buf, size_t size);
/* 1 when the engine may run on `device` ("cuda:0" matches kind "cuda"). */
int ttsm__engine_supports(const ttsm__engine *e, const char *device);

/* The built-in `file` engine's factory (engine_file.c). */
ttsm_status ttsm__file_factory(const ttsm_load_config *cfg, const ttsm_factory_ctx *ctx,
                               ttsm_model **out, ttsm_error *err);

#endif
