/* hub_cache.h - the hub cache layout as huggingface_hub writes it
 * (hub_cache.c): repo folders, refs, snapshot links into blobs/, .no_exist
 * markers, and removing a model's files. Every path that comes from a
 * server or a manifest passes ttsm__hub_path_ok() before it is used. */
#ifndef TTSM_STORE_HUB_CACHE_H
#define TTSM_STORE_HUB_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "ttsm.h"

#define TTSM__HUB_PATH_MAX 1024 /* a path inside a repository */

enum { TTSM__REPO_MODEL = 0, TTSM__REPO_DATASET = 1, TTSM__REPO_SPACE = 2 };

typedef struct ttsm__hub_repo {
    const char *id; /* "org/name" */
    int kind;       /* TTSM__REPO_* */
} ttsm__hub_repo;

/* 1 when `s` is a full commit hash (40 lowercase hex digits). */
int ttsm__hub_is_commit(const char *s);
/* 1 when a repo id is one the Hub accepts ("org/name" or "name": letters,
 * digits, '-', '_', '.'; no "--" or ".."; at most 96 characters). */
int ttsm__hub_repo_id_ok(const char *id);

/* 1 when `path` (relative, '/'-separated) can only name something below the
 * folder it is joined to: not empty, no leading '/', no empty, "." or ".."
 * segment, no control character, strict UTF-8, within the length caps. */
int ttsm__hub_path_ok(const char *path);

/* "models--org--name" (datasets--, spaces--). @return 0, or -1 for a bad
 * id or when it does not fit. */
int ttsm__hub_folder(const ttsm__hub_repo *repo, char *out, size_t size);
/* <cache>/<folder>. @return 0 or -1. */
int ttsm__hub_repo_dir(const char *cache, const ttsm__hub_repo *repo, char *out, size_t size);

/* Reads a path inside the hub cache `hub_real` (links resolved):
 * <hub>/<folder>/snapshots/<commit>/<rest>. @return 0 with the parts set
 * (`rest` points into `path`), or -1 when it is not such a path. */
int ttsm__hub_locate(const char *hub_real, const char *path, char *folder, size_t fsize,
                     char commit[41], const char **rest);
/* The repo a folder name names ("models--org--name" -> org/name, a model):
 * the id is written to `idbuf`. @return 0, or -1 when it is not a repo folder. */
int ttsm__hub_folder_repo(const char *folder, ttsm__hub_repo *out, char *idbuf, size_t size);

/* Creates `dir` and its parents (0755). @return 0, or -1 with errno. */
int ttsm__mkdirs(const char *dir);
/* 16 random hex digits for temporary names (getrandom). */
void ttsm__random_hex(char out[17]);

/* refs/<rev> of a repo folder: 0 with `commit` set, 1 when there is none,
 * -1 when it is malformed. */
int ttsm__hub_read_ref(const char *repo_dir, const char *rev, char commit[41]);
/* Writes refs/<rev> = commit atomically (a temporary file renamed over it).
 * Only for names: a revision that is a commit has no ref. */
ttsm_status ttsm__hub_write_ref(const char *repo_dir, const char *rev, const char *commit,
                                ttsm_error *err);
/* snapshots/<commit>/<path> -> ../../blobs/<etag> (one more ../ for each
 * folder in `path`), created beside and renamed into place. An existing
 * correct link is kept. */
ttsm_status ttsm__hub_link(const char *repo_dir, const char *commit, const char *path,
                           const char *etag, ttsm_error *err);
/* The empty marker .no_exist/<commit>/<path>: the Hub said the file is absent. */
ttsm_status ttsm__hub_mark_absent(const char *repo_dir, const char *commit, const char *path,
                                  ttsm_error *err);
/* 1 when the marker exists. */
int ttsm__hub_marked_absent(const char *repo_dir, const char *commit, const char *path);

/* What removing files from a repo folder did (or would do). */
typedef struct ttsm__hub_removal {
    char **links;      /* snapshot entries removed (absolute paths) */
    size_t n_links;
    char **blobs;      /* blobs no snapshot references any more */
    uint64_t *blob_bytes;
    size_t n_blobs;
    uint64_t freed;
    int repo_removed;  /* the folder had nothing left and went as a whole */
} ttsm__hub_removal;

/* Removes `paths` (relative to a snapshot) from every snapshot of the
 * repo folder, then the blobs no remaining link references; a repo folder
 * left without any snapshot entry is removed whole (refs, .no_exist, its
 * lock folder). With `dry_run` nothing changes and `out` says what would.
 * Adds to `out` (free with ttsm__hub_removal_free). */
ttsm_status ttsm__hub_remove(const char *cache, const ttsm__hub_repo *repo,
                             const char *const *paths, size_t n_paths, int dry_run,
                             ttsm__hub_removal *out, ttsm_error *err);
void ttsm__hub_removal_free(ttsm__hub_removal *r);

#endif
