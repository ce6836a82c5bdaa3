/* resolve.h - finding a model's files (DESIGN §8): explicit path,
 * models roots in the ComfyUI layout, legacy folders, the HuggingFace hub
 * cache. Shared by the manifest factory and the resolve report. */
#ifndef TTSM_RESOLVE_INTERNAL_H
#define TTSM_RESOLVE_INTERNAL_H

#include "ttsm.h"
#include "manifest/manifest.h"
#include "store/roots.h"

/* Where to look. Strings are borrowed. */
typedef struct ttsm__roots {
    const char *models_dirs; /* colon-separated; NULL: TTSM_MODELS_PATH */
    const char *hf_cache;    /* NULL: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub */
    const char *comfyui_dirs; /* colon-separated ComfyUI folders; NULL: TTSM_COMFYUI_PATH */
    int no_hub;               /* 1: no hub cache at all (a pull into a models root) */
} ttsm__roots;

/* One component as resolved. */
typedef struct ttsm__resolved_comp {
    const ttsm__comp_spec *spec;   /* the spec that provides the files */
    const ttsm__comp_spec *comp;   /* the model's own entry (a borrow or shared one names it) */
    const char *name;              /* component name in the model */
    const char *from_model;        /* borrowed from / shared model name, or NULL */
    int borrowed, shared;
    char *path;                    /* the file (canonical), NULL when missing */
    const char *origin;            /* "explicit", "models root", "legacy folder", "hub cache" */
    char *searched;                /* "; "-separated places tried */
    const ttsm__model_spec *owner; /* the model whose files these are (borrowed, shared) */
    char *want;                    /* the file names looked for, "|"-separated, {model}
                                      replaced */
    char **where;                  /* per root of the resolution's rootset: the folder
                                      the files go in there (`ttsm resolve --where`) */
    char *broken;                  /* "<link> -> <target>": a hub snapshot entry whose
                                      blob is gone, else NULL */
    char *dl_repo, *dl_revision;   /* where to download it from: repo id, revision */
    char *dl_path;                 /* the first alternative's path inside that repo */
    int dl_dataset;
} ttsm__resolved_comp;

typedef struct ttsm__resolution {
    const ttsm__manifest *manifest;
    const ttsm__model_spec *model;
    ttsm__resolved_comp *comps;
    size_t n_comps;
    size_t n_missing;              /* required components without a file */
    ttsm__rootset roots;           /* the roots searched, in order */
    char hub[4096];                /* the hub cache searched, "" when none */
    const char *model_type;        /* as the config asked (for the pull command in hints) */
    const char *repo_id;           /* the config's repo id, "org/name[@rev]", or NULL */
} ttsm__resolution;

/* Resolves every component of `model` for `cfg` (model type, params for
 * `when`, model_path). Missing files do not fail the call: they are marked,
 * so `ttsm resolve` and `ttsm ls` can show them; unsafe paths (a hub symlink
 * leaving its repo folder, a malformed ref) do fail, with TTSM_ERR_FORMAT.
 * Free with ttsm__resolution_free. */
ttsm_status ttsm__resolve_model(const ttsm__manifest *m, const ttsm__model_spec *model,
                                const ttsm_load_config *cfg, const ttsm__roots *roots,
                                ttsm__resolution *out, ttsm_error *err);
void ttsm__resolution_free(ttsm__resolution *r);

/* Fills `err` with TTSM_ERR_NOT_FOUND for the first missing required
 * component, naming the file(s) and every place searched; the hint gives
 * the folder to put them in and the exact `ttsm pull` command. */
ttsm_status ttsm__resolution_error(const ttsm__resolution *r, const char *subject,
                                   ttsm_error *err);


/* The hub cache folder in use (static storage per call is not used: the
 * result is written to `out`). @return 0, or -1 when none can be named. */
int ttsm__hub_dir(const ttsm__roots *roots, char *out, size_t size);

/* The repo a config's repo_id ("org/name[@rev]") names, in `out` (its id
 * points into `buf`): when it is one of the model's repos it keeps that
 * repo's subfolder and kind. @return 1 when the config names one, else 0. */
int ttsm__config_repo(const ttsm_load_config *cfg, const ttsm__model_spec *ms, ttsm__repo *out,
                      char *buf, size_t size);

/* The component of model `ms` named `name` that applies to `cfg` (its
 * model type and `when` params), or NULL. */
const ttsm__comp_spec *ttsm__comp_named(const ttsm__model_spec *ms, const char *name,
                                        const ttsm_load_config *cfg, const ttsm__manifest *m);

/* The `ttsm pull ...` command line that fetches the model of `r` (shell
 * quoted where needed) into `out`. */
void ttsm__pull_command(const ttsm__resolution *r, char *out, size_t size);

#endif
