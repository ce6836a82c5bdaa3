/* roots.h - the places a model's files are looked for, in order (roots.c):
 * the models roots given (models_dirs or TTSM_MODELS_PATH), then each
 * ComfyUI installation (comfyui_dirs or TTSM_COMFYUI_PATH) with its
 * models/ folder and the TTS folders its extra_model_paths.yaml names.
 * None replaces another. Problems with a root (missing, unreadable YAML)
 * are warnings: the other roots are still searched. */
#ifndef TTSM_STORE_ROOTS_H
#define TTSM_STORE_ROOTS_H

#include <stddef.h>

#include "ttsm.h"

#define TTSM__MAX_ROOTS 64
#define TTSM__MAX_ROOT_WARNINGS 16
#define TTSM__MAX_YAML_BYTES (1u << 20)

enum {
    TTSM__ROOT_MODELS = 1, /* holds TTS/<engine folder>/... and the legacy folders */
    TTSM__ROOT_TTS = 2     /* is a TTS folder itself: holds <engine folder>/... */
};

typedef struct ttsm__root {
    char *path;   /* absolute and normalised where it came from a YAML file */
    int kind;     /* TTSM__ROOT_* */
    char *origin; /* where it was declared: "models_dirs", "TTSM_MODELS_PATH",
                     "ComfyUI /c", "/c/extra_model_paths.yaml: comfyui.TTS" */
    int exists;   /* a folder when collected */
} ttsm__root;

typedef struct ttsm__rootset {
    ttsm__root roots[TTSM__MAX_ROOTS];
    size_t n;
    char *warnings[TTSM__MAX_ROOT_WARNINGS];
    size_t n_warnings, n_warnings_dropped;
} ttsm__rootset;

/* Collects the roots: `models_dirs` (NULL: TTSM_MODELS_PATH) and
 * `comfyui_dirs` (NULL: TTSM_COMFYUI_PATH), each colon-separated. A path
 * given twice is searched once, where it first appears. @return TTSM_OK
 * (problems become warnings) or TTSM_ERR_OUT_OF_MEMORY. Free with
 * ttsm__rootset_free, also after a failure. */
ttsm_status ttsm__roots_collect(const char *models_dirs, const char *comfyui_dirs,
                                ttsm__rootset *out, ttsm_error *err);
void ttsm__rootset_free(ttsm__rootset *s);

/* Adds the TTS folders of one extra_model_paths.yaml text (ComfyUI's
 * format: sections with an optional base_path and is_default, and folder
 * lists per model kind; only the TTS and tts keys are read). Relative
 * paths are taken from `yaml_dir`, the folder of the file, as ComfyUI
 * does. The is_default ones go in `first`, the others in `out`. @return
 * TTSM_OK, TTSM_ERR_FORMAT (err says where and why; nothing was added) or
 * TTSM_ERR_OUT_OF_MEMORY. */
ttsm_status ttsm__comfyui_yaml(const char *text, size_t len, const char *yaml_dir,
                               const char *source, ttsm__rootset *first, ttsm__rootset *out,
                               ttsm_error *err);

#endif
