/* mgr_util.h - helpers shared by the manager tests: tiny safetensors files
 * and load configs. Header-only (static functions) so each test stays one
 * executable. */
#ifndef TTSM_MGR_UTIL_H
#define TTSM_MGR_UTIL_H

#include <stdint.h>
#include "testutil.h"

/* Writes dir/name: one F32 tensor "w" of n elements, element i = base + i. */
static inline char *mu_write_st(const char *dir, const char *name, size_t n, float base)
{
    char hdr[256];
    int hl = snprintf(hdr, sizeof hdr,
                      "{\"w\":{\"dtype\":\"F32\",\"shape\":[%zu],\"data_offsets\":[0,%zu]}}", n,
                      n * 4);
    while (hl % 8) /* the data starts 8-aligned, as writers pad it */
        hdr[hl++] = ' ';
    size_t total = 8 + (size_t)hl + n * 4;
    unsigned char *buf = malloc(total);
    uint64_t len = (uint64_t)hl;
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(len >> (8 * i));
    memcpy(buf + 8, hdr, (size_t)hl);
    for (size_t i = 0; i < n; i++) {
        float v = base + (float)i;
        memcpy(buf + 8 + hl + 4 * i, &v, 4);
    }
    char *p = tu_write_file(dir, name, buf, total);
    free(buf);
    return p;
}

static inline ttsm_load_config mu_cfg(const char *engine, const char *path, const char *device)
{
    ttsm_load_config c = ttsm_load_config_default();
    c.engine = engine;
    c.model_path = path;
    c.device = device;
    return c;
}

/* A code engine whose one component, "c", is the JSON or blob file at
 * model_path; the kind is the engine's user pointer. */
static inline ttsm_status mu_file_component_factory(const ttsm_load_config *cfg,
                                                    const ttsm_factory_ctx *ctx, ttsm_model **out,
                                                    ttsm_error *err)
{
    ttsm_file_kind kind = (ttsm_file_kind)(intptr_t)ttsm_factory_ctx_user(ctx);
    ttsm_model *m;
    ttsm_status st = ttsm_model_create(ctx, &m, err);
    if (st == TTSM_OK)
        st = ttsm_model_add_file(m, "c", cfg->model_path, kind, err);
    if (st == TTSM_OK)
        *out = m;
    return st;
}

static inline ttsm_status mu_register_file_engine(const char *name, ttsm_file_kind kind,
                                                  ttsm_error *err)
{
    ttsm_engine_caps caps = ttsm_engine_caps_default();
    caps.user = (void *)(intptr_t)kind;
    return ttsm_register_engine(name, mu_file_component_factory, &caps, err);
}

/* One load of `engine` for `path` on cpu in a manager of its own, released
 * and destroyed again: what is left to check is the status and err. */
static inline ttsm_status mu_load_once(const char *engine, const char *path, ttsm_error *err)
{
    ttsm_manager *mgr;
    ttsm_status st = ttsm_manager_create(NULL, &mgr, err);
    if (st != TTSM_OK)
        return st;
    ttsm_load_config c = mu_cfg(engine, path, "cpu");
    ttsm_model *m = NULL;
    st = ttsm_load(mgr, &c, &m, err);
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
    return st;
}

/* One open of checkpoint `path` (mmap mode, or read mode when `read_mode`),
 * closed again: what is left to check is the status and err. */
static inline ttsm_status mu_open_once(const char *path, int read_mode, ttsm_error *err)
{
    ttsm_checkpoint_options o = ttsm_checkpoint_options_default();
    if (read_mode)
        o.io_mode = TTSM_IO_READ;
    ttsm_checkpoint *ck = NULL;
    ttsm_status st = ttsm_checkpoint_open(path, &o, &ck, err);
    ttsm_checkpoint_close(ck);
    return st;
}

#endif
