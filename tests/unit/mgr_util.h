/* mgr_util.h - helpers shared by the manager tests: tiny safetensors files
 * and load configs. Header-only (static functions) so each test stays one
 * executable. */
#ifndef TTSM_MGR_UTIL_H
#define TTSM_MGR_UTIL_H

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

#endif
