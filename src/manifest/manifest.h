/* manifest.h - an engine manifest (engines/<name>.json) parsed
 * and validated into plain structs. Schema: docs/engines.md. A manifest is
 * immutable once parsed; the registry shares it between threads. */
#ifndef TTSM_MANIFEST_INTERNAL_H
#define TTSM_MANIFEST_INTERNAL_H

#include <stdint.h>

#include "ttsm.h"

enum { TTSM__KIND_TENSORS = 1, TTSM__KIND_JSON, TTSM__KIND_BLOB };

typedef struct ttsm__repo {
    char *id;        /* "org/name" */
    char *revision;  /* NULL: main; a 40-digit commit pins it (only that snapshot is read) */
    char *subfolder; /* NULL: repo root */
    int dataset;     /* "type": "dataset" */
} ttsm__repo;

/* The files one repo holds for a component, where they differ from the
 * component's local names (RVC's content-vec: one name per repo; a HuBERT
 * stored locally as hubert_base_jp.safetensors is model.safetensors in its
 * repo). Paths are below the repo subfolder (and the component subfolder,
 * for the model's own repos), alternatives in order; none: the repo does
 * not hold the component. */
typedef struct ttsm__repo_files {
    char *repo;         /* a repo id the component is searched in */
    char **files;
    size_t n_files;
} ttsm__repo_files;

typedef struct ttsm__comp_spec {
    char *name;
    int kind;           /* TTSM__KIND_*; 0 for borrowed/shared */
    char **files;       /* local names, alternatives in order; may hold '*' and "{model}";
                           also the repo file names where repo_files names none */
    size_t n_files;
    ttsm__repo_files *repo_files;
    size_t n_repo_files;
    int deliberate_pattern; /* a '*' in a repo file name is meant (see docs/engines.md) */
    int optional;
    char *subfolder;    /* below the model folder */
    char *borrow;       /* model of the same engine that provides it; with files of its
                           own, the fallback when none of them is found */
    char *shared;       /* shared model that provides it */
    ttsm__repo *repo;   /* another repo for this component only */
    char **types;       /* model types that need it; none: every type */
    size_t n_types;
    char *when_key, *when_value; /* only when param when_key == when_value */
} ttsm__comp_spec;

typedef struct ttsm__model_spec {
    char *name;
    char *language;   /* ISO code or NULL */
    char *folder;     /* model folder below <root>/TTS/<engine folder>; default: name */
    char *dir;        /* overrides: folder below <root>/TTS */
    char *legacy_folder; /* its folder below the engine's legacy folders; default: folder */
    char *variant_of; /* a variant falls back to this model */
    char **system_dirs; /* absolute folders holding the model's files, searched
                           after the models roots (the Debian espeak-ng data) */
    size_t n_system_dirs;
    char **types;     /* model types it serves; default: the engine's first */
    size_t n_types;
    ttsm__repo *repos; /* in fallback order */
    size_t n_repos;
    ttsm__comp_spec *comps;
    size_t n_comps;
} ttsm__model_spec;

typedef struct ttsm__param_spec {
    char *name;
    char *def;
    char **values; /* allowed values; none: any */
    size_t n_values;
    int identity;
    char **dtype_values; /* "dtype": {value: load dtype}: values that select */
    ttsm_dtype *dtypes;  /* ... these load dtypes (docs/engines.md) */
    size_t n_dtypes;
} ttsm__param_spec;

typedef struct ttsm__manifest {
    char *source;      /* file path, or "built-in:<name>.json" */
    char *json;        /* the manifest text, compact */
    char *name;
    char **aliases;
    size_t n_aliases;
    char *description;
    char *runtime;     /* "pytorch" or "native" */
    char *factory;     /* a built-in code factory ("espeak"), or NULL: the manifest factory */
    char **model_types;
    size_t n_model_types;
    int supports_voice_conversion, has_fallback, can_corrupt, requires_special_init,
        language_selects_model, single_instance;
    char *recovery;    /* "none" or "invalidate" */
    char **devices;    /* device kinds */
    size_t n_devices;
    char devices_csv[128];
    char *default_device;
    char **languages;  /* ISO codes */
    size_t n_languages;
    ttsm__param_spec *params;
    size_t n_params;
    char *folder;      /* below <root>/TTS */
    char **legacy;     /* below <root> */
    size_t n_legacy;
    char *default_model;
    char *language_fallback;
    ttsm__model_spec *models;
    size_t n_models;
    ttsm__model_spec *shared; /* name = the shared model's key */
    size_t n_shared;
    /* "engine_memory": what an engine object built from the weights holds
     * beyond them, for admission before it is built (0, 0: nothing). */
    uint64_t extra_bytes;
    double extra_ratio;
    /* Open addressing over models by name (index + 1; 0 empty), so lookups
     * and the duplicate check stay linear in the number of models. */
    uint32_t *model_index;
    size_t model_index_cap; /* a power of two, or 0 before it is built */
} ttsm__manifest;

/* Parses and validates one manifest. `source` names it in messages.
 * @return TTSM_OK, TTSM_ERR_FORMAT ("<source>: invalid manifest: <field>:
 * <why>") or TTSM_ERR_OUT_OF_MEMORY. Free with ttsm__manifest_free. */
ttsm_status ttsm__manifest_parse(const char *text, size_t len, const char *source,
                                 ttsm__manifest **out, ttsm_error *err);
void ttsm__manifest_free(ttsm__manifest *m);

const ttsm__model_spec *ttsm__manifest_model(const ttsm__manifest *m, const char *name);
const ttsm__model_spec *ttsm__manifest_shared(const ttsm__manifest *m, const char *name);
const ttsm__param_spec *ttsm__manifest_param(const ttsm__manifest *m, const char *name);
/* The model whose language is `code` (first declared), or NULL. */
const ttsm__model_spec *ttsm__manifest_model_for_language(const ttsm__manifest *m,
                                                          const char *code);
/* The repo file names of component `cs` in `repo_id` (a repo it is
 * searched in): its repo_files entry for that repo, else its files. */
char *const *ttsm__comp_repo_files(const ttsm__comp_spec *cs, const char *repo_id, size_t *n);
/* 1 when model `ms` serves model type `type`. */
int ttsm__model_serves(const ttsm__manifest *m, const ttsm__model_spec *ms, const char *type);

#endif
