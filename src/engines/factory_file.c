/* factory_file.c - the built-in `file` engine's factory: it loads the
 * checkpoint at model_path - one file, or every checkpoint in a folder
 * (docs/manager.md). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/error.h"
#include "engines/factory_file.h"

static const char *const extensions[] = {".safetensors.index.json", ".safetensors", ".gguf",
                                         ".pt", ".pth", ".ckpt", ".bin"};
#define N_EXT (sizeof extensions / sizeof extensions[0])

/* @return the index of the extension `name` ends with, or -1. */
static int ext_of(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < N_EXT; i++) {
        size_t e = strlen(extensions[i]);
        if (n > e && strcmp(name + n - e, extensions[i]) == 0)
            return (int)i;
    }
    return -1;
}

/* Component name: the file name without its checkpoint extension. */
static ttsm_status add_file(ttsm_model *m, const char *path, ttsm_error *err)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char comp[TTSM_CONFIG_NAME_MAX];
    ttsm__format_trunc(comp, sizeof comp, "%s", base);
    int e = ext_of(comp);
    if (e >= 0)
        comp[strlen(comp) - strlen(extensions[e])] = '\0';
    return ttsm_model_add_checkpoint(m, comp, path, err);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A folder: its *.safetensors.index.json files when it has any (the shards
 * they name are theirs), else every file with a checkpoint extension;
 * sorted by name so components come in the same order everywhere. */
static ttsm_status add_folder(ttsm_model *m, const char *dir, ttsm_error *err)
{
    ttsm_status st = TTSM_OK;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int any_index = 0;
    DIR *d = opendir(dir);
    if (!d)
        return ttsm__err(err, TTSM_ERR_IO, dir, "cannot open folder", "opendir failed");
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int e = ext_of(de->d_name);
        if (e < 0 || de->d_name[0] == '.')
            continue;
        if (ttsm__grow((void **)&names, &cap, n + 1, sizeof *names, 4096) != 0 ||
            !(names[n] = ttsm__strdup(de->d_name))) {
            st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, dir, "out of memory",
                           "listing the folder (or more than 4096 checkpoints)");
            goto out;
        }
        n++;
        any_index |= e == 0;
    }
    if (n == 0) {
        st = ttsm__err(err, TTSM_ERR_NOT_FOUND, dir, "no checkpoint",
                       "the folder holds no *.safetensors, *.safetensors.index.json, *.gguf, "
                       "*.pt, *.pth, *.ckpt or *.bin file");
        goto out;
    }
    qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n && st == TTSM_OK; i++) {
        if (any_index && ext_of(names[i]) != 0)
            continue;
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *path = ttsm__malloc(len);
        if (!path) {
            st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, dir, "out of memory", "path");
            break;
        }
        snprintf(path, len, "%s/%s", dir, names[i]);
        st = add_file(m, path, err);
        ttsm__free(path);
    }
out:
    closedir(d);
    for (size_t i = 0; i < n; i++)
        ttsm__free(names[i]);
    ttsm__free(names);
    return st;
}

ttsm_status ttsm__file_factory(const ttsm_load_config *cfg, const ttsm_factory_ctx *ctx,
                               ttsm_model **out, ttsm_error *err)
{
    if (!cfg->model_path)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "file", "model_path missing",
                         "the file engine loads the checkpoint(s) at model_path; set it");
    struct stat sb;
    if (stat(cfg->model_path, &sb) != 0)
        return ttsm__err(err, TTSM_ERR_NOT_FOUND, cfg->model_path, "file not found",
                         "no such file or folder");
    ttsm_model *m;
    ttsm_status st = ttsm_model_create(ctx, &m, err);
    if (st != TTSM_OK)
        return st;
    st = S_ISDIR(sb.st_mode) ? add_folder(m, cfg->model_path, err)
                             : add_file(m, cfg->model_path, err);
    if (st == TTSM_OK)
        *out = m;
    return st;
}
