/* hub.h - the Hugging Face Hub client (hub.c): endpoint and token from the
 * environment, file metadata (HEAD), listings (revision, tree), and
 * downloads into the hub cache - locked, resumable, verified against the
 * etag, renamed into place - or into a given file. The layout it writes,
 * and the repo type: hub_cache.h. */
#ifndef TTSM_STORE_HUB_H
#define TTSM_STORE_HUB_H

#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>

#include "ttsm.h"
#include "base/log.h"
#include "store/hub_cache.h"
#include "store/hub_http.h"

#define TTSM__HUB_JSON_MAX (32u << 20)      /* one listing page */
#define TTSM__HUB_LIST_MAX 200000           /* entries of one listing, all pages */
#define TTSM__HUB_FILE_MAX (1ull << 42)     /* 4 TiB: a larger announced size is refused */
#define TTSM__HUB_REDIRECTS_MAX 10
#define TTSM__HUB_DEFAULT_ENDPOINT "https://huggingface.co"

/* How to reach the Hub. Strings are copied by ttsm__hub_init. */
typedef struct ttsm__hub_config {
    const char *endpoint; /* NULL: HF_ENDPOINT, else TTSM__HUB_DEFAULT_ENDPOINT */
    const char *token;    /* NULL: HF_TOKEN, else HF_TOKEN_PATH / $HF_HOME/token; "": none */
    const char *cache;    /* the hub cache root; NULL: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/... */
    long connect_ms;      /* 0: HF_HUB_ETAG_TIMEOUT seconds, else 10 s */
    long stall_ms;        /* 0: HF_HUB_DOWNLOAD_TIMEOUT seconds, else 10 s */
    unsigned retries;     /* tries after the first, for 429, 5xx and broken connections */
    unsigned backoff_ms;  /* the first wait; it doubles up to 8 s (Retry-After wins) */
    ttsm__logger log;
} ttsm__hub_config;

typedef struct ttsm__hub {
    char endpoint[1024];
    char origin[1100];  /* the endpoint's "scheme://host:port": the token goes only there */
    char *auth;         /* "Authorization: Bearer ..." or NULL; never in a message or log */
    int offline;        /* HF_HUB_OFFLINE: no request at all */
    int no_markers;     /* write no .no_exist marker (a pull into a models root) */
    char cache[4096];   /* PATH_MAX on Linux, spelled out: this header is read by strict C11 harnesses */
    ttsm__http_limits lim;
    unsigned retries, backoff_ms;
    ttsm__logger log;
    _Atomic int cancel; /* set by a progress callback or a failure: every request stops */
} ttsm__hub;

/* What a file's metadata says (HEAD of its resolve URL). */
typedef struct ttsm__hub_meta {
    char commit[41];
    char etag[65];      /* 64 hex (SHA-256, LFS) or 40 hex (git blob SHA-1) */
    uint64_t size;
    char location[TTSM__URL_MAX]; /* where the bytes are (the CDN for LFS files) */
} ttsm__hub_meta;

/* How a HEAD or a listing failed, for callers that try elsewhere. */
enum {
    TTSM__HUB_OK = 0,
    TTSM__HUB_ABSENT,      /* the file (or folder) is not in the repository */
    TTSM__HUB_NO_REPO,     /* RepoNotFound / RepositoryNotFound */
    TTSM__HUB_NO_REVISION, /* RevisionNotFound */
    TTSM__HUB_DENIED,      /* gated, or the token was refused */
    TTSM__HUB_FAILED       /* network, server or protocol failure */
};

/* One entry of a listing: a file and its size (-1 when the listing has none). */
typedef struct ttsm__hub_entry {
    char *path;
    int64_t size;
} ttsm__hub_entry;

typedef struct ttsm__hub_list {
    ttsm__hub_entry *e;
    size_t n, cap;
} ttsm__hub_list;

void ttsm__hub_list_free(ttsm__hub_list *l);
/* @return the entry for `path`, or NULL. */
const ttsm__hub_entry *ttsm__hub_list_find(const ttsm__hub_list *l, const char *path);

/* Reads the environment (HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE, timeouts).
 * @return TTSM_OK, TTSM_ERR_INVALID_ARGUMENT (a malformed endpoint) or
 * TTSM_ERR_OUT_OF_MEMORY. Free with ttsm__hub_free. */
ttsm_status ttsm__hub_init(ttsm__hub *hub, const ttsm__hub_config *cfg, ttsm_error *err);
void ttsm__hub_free(ttsm__hub *hub);

/* The commit a revision names: a commit is itself (no request); otherwise
 * GET {endpoint}/api/{kind}s/{id}/revision/{rev}, whose "sha" it is. Every
 * sibling path in the answer is checked (an unsafe one is TTSM_ERR_FORMAT);
 * `siblings` (may be NULL) gets them. `*why` (may be NULL) classifies a
 * failure (TTSM__HUB_*). */
ttsm_status ttsm__hub_revision(ttsm__hub *hub, ttsm__http *conn, const ttsm__hub_repo *repo,
                               const char *rev, char commit[41], ttsm__hub_list *siblings,
                               int *why, ttsm_error *err);

/* The parsers of the two listings (untrusted JSON; fuzzed by
 * tests/fuzz/fuzz_hub_listing.c): the revision answer's "sha" and
 * "siblings", and one page of a tree below `dir`. Every path must pass
 * ttsm__hub_path_ok() (and lie below `dir`), every size be a byte count up
 * to TTSM__HUB_FILE_MAX: else TTSM_ERR_FORMAT. Entries are added to the list. */
ttsm_status ttsm__hub_parse_revision(const char *repo_id, const char *text, size_t n,
                                     char commit[41], ttsm__hub_list *siblings, ttsm_error *err);
ttsm_status ttsm__hub_parse_tree(const char *repo_id, const char *dir, const char *text, size_t n,
                                 ttsm__hub_list *out, ttsm_error *err);

/* The files below `dir` ("" for the root) at `commit`: GET .../tree/
 * {commit}/{dir}[?recursive=true], following `Link: rel="next"` pages on
 * the endpoint only. Paths and sizes are checked. A folder the repository
 * lacks is an empty list. */
ttsm_status ttsm__hub_tree(ttsm__hub *hub, ttsm__http *conn, const ttsm__hub_repo *repo,
                           const char *commit, const char *dir, int recursive,
                           ttsm__hub_list *out, int *why, ttsm_error *err);

/* HEAD {endpoint}/{prefix}{id}/resolve/{rev}/{path}, following relative
 * redirects only. A 404 EntryNotFound that names a commit writes the
 * .no_exist marker (and fills meta->commit). @return TTSM_OK with `meta`
 * filled, or an error with `*why` set. */
ttsm_status ttsm__hub_head(ttsm__hub *hub, ttsm__http *conn, const ttsm__hub_repo *repo,
                           const char *rev, const char *path, ttsm__hub_meta *meta, int *why,
                           ttsm_error *err);

/* Called with the bytes of one file so far (they can go back to 0 when a
 * server ignores a Range and the file starts again). Nonzero cancels. */
typedef int (*ttsm__hub_bytes_fn)(void *user, uint64_t done, uint64_t total);

/* Fetches the file `meta` describes. `dest` NULL: into the hub cache as
 * blobs/{etag} of `repo`, under the lock .locks/{repo folder}/{etag}.lock,
 * through blobs/{etag}.{random}.incomplete (a partial left by an earlier
 * run is resumed); else into the file `dest` (through a hidden
 * .{name}.{random}.incomplete beside it, under `lock`). Verifies the size
 * and the etag before the rename. `*fetched` (may be NULL) is 1 when bytes
 * were downloaded, 0 when the blob was there already.
 * @return TTSM_OK, TTSM_ERR_IO (network, disk, hash or size mismatch),
 * TTSM_ERR_CANCELLED. */
ttsm_status ttsm__hub_fetch(ttsm__hub *hub, ttsm__http *conn, const ttsm__hub_repo *repo,
                            const char *path, const ttsm__hub_meta *meta, const char *dest,
                            const char *lock, ttsm__hub_bytes_fn bytes, void *user,
                            int *fetched, ttsm_error *err);

#endif
