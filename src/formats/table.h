/* table.h - the contract between the format readers and the tensor table
 * (table.c). A reader parses headers (through ttsm__file_read, never
 * trusting a size) and describes what it found with the ttsm__ckpt_add_*
 * builders; the table owns files, mappings, tensors, the name index,
 * metadata and data access in both I/O modes. */
#ifndef TTSM_FORMATS_TABLE_H
#define TTSM_FORMATS_TABLE_H

#include <pthread.h>

#include "ttsm.h"
#include "base/dtype.h"
#include "base/error.h"

/* Caps on what a file may make us allocate (each has a test). */
#define TTSM__MAX_TENSORS (1u << 24)        /* 16.7 M tensors */
#define TTSM__MAX_NAME_LEN (1u << 16)       /* bytes in one tensor name or key */
#define TTSM__MAX_RANK 32u
#define TTSM__MAX_METADATA (1u << 20)       /* metadata entries */
#define TTSM__MAX_FILES 4096u               /* shards */

/* A source of bytes: a file on disk, or memory (fuzzing, inflated members). */
typedef struct ttsm__file {
    char *path;          /* as given (for messages and the API) */
    int fd;              /* -1 for memory-backed sources */
    uint64_t size;
    const uint8_t *mem;  /* memory-backed: the bytes (borrowed or owned) */
    void *owned_mem;     /* freed on close when set */
    void *map;           /* mmap mode: private mapping of the whole file */
    size_t map_len;
} ttsm__file;

/* Bytes a reader can produce only by work (a deflated zip member): made
 * when a tensor's data is first asked for, never at open. The reader puts
 * one in the checkpoint's arena with what `fill` needs after it. */
typedef struct ttsm__lazy ttsm__lazy;
struct ttsm__lazy {
    uint32_t file_index; /* the file the bytes come from */
    /* Writes the storage's nbytes into `out`; errors name the file. */
    ttsm_status (*fill)(const ttsm__file *f, const ttsm__lazy *lz, void *out, ttsm_error *err);
};

/* Where a storage's bytes are: a byte range of a file, owned memory, or
 * bytes made on first use. 40 bytes, no padding: one per tensor in most
 * files. */
typedef struct ttsm__storage {
    uint64_t file_offset;
    uint64_t nbytes;
    void *mem;              /* owned bytes, the read-mode cache, or the made bytes */
    const ttsm__lazy *lazy; /* non-NULL: mem is made by lazy->fill, under ck->lock */
    uint32_t file_index;    /* UINT32_MAX when in memory (or made on first use) */
    int mem_is_cache;       /* 1: mem is the read-mode copy of the file range */
} ttsm__storage;

typedef struct ttsm__meta {
    ttsm_metadata_entry pub;
} ttsm__meta;

struct ttsm_checkpoint {
    ttsm_format format;
    uint32_t version;
    ttsm_io_mode io_mode;
    uint64_t max_inflate_bytes;
    char *path;

    ttsm__file *files;
    size_t n_files, cap_files;

    ttsm__storage *storages;
    size_t n_storages, cap_storages;

    ttsm_tensor_info *tensors;
    size_t n_tensors, cap_tensors;

    uint64_t *index;     /* open addressing over tensors: the hash's high 32 bits,
                            then the tensor (low 32 bits, UINT32_MAX = empty) */
    size_t index_cap;    /* at most two thirds full (table.c) */

    ttsm__meta *meta;
    size_t n_meta, cap_meta;

    /* Bump arena for names, shapes and strides: one allocation per chunk. */
    struct ttsm__chunk *chunks;
    /* Long metadata values handed over by readers (ttsm__ckpt_add_meta_take). */
    char **owned;
    size_t n_owned, cap_owned;

    pthread_mutex_t lock; /* read-mode data loads */

    /* Tests only: the JSON readers' window in bytes (0: their default), so
     * that a test can make every token cross a window's edge. */
    size_t json_window;
};

/* Creates an empty checkpoint. */
ttsm_status ttsm__ckpt_new(const char *path, const ttsm_checkpoint_options *opts,
                           ttsm_checkpoint **out, ttsm_error *err);

/* Opens `path` (O_RDONLY|O_CLOEXEC; ttsm__open_regular, so a FIFO or a
 * device is refused without blocking), records its size and, in mmap mode,
 * maps it privately. ENOENT is TTSM_ERR_NOT_FOUND, other failures
 * (including "not a regular file: it is a FIFO") TTSM_ERR_IO. */
ttsm_status ttsm__ckpt_add_file(ttsm_checkpoint *ck, const char *path, uint32_t *index,
                                ttsm_error *err);
/* Adds a memory-backed source; with `take` the checkpoint frees `mem`. */
ttsm_status ttsm__ckpt_add_memory(ttsm_checkpoint *ck, const char *name, const void *mem,
                                  uint64_t size, int take, uint32_t *index, ttsm_error *err);

/* Reads exactly `len` bytes at `off`; reading past the end is TTSM_ERR_FORMAT
 * ("truncated: needs N bytes at offset O, file has S"). */
ttsm_status ttsm__file_read(const ttsm__file *f, uint64_t off, void *buf, size_t len,
                            ttsm_error *err);

/* A storage: `nbytes` at `file_offset` of file `file_index` (range checked
 * against the file size), or owned memory with file_index == UINT32_MAX and
 * `mem` taken over by the checkpoint. */
ttsm_status ttsm__ckpt_add_storage(ttsm_checkpoint *ck, uint32_t file_index, uint64_t file_offset,
                                   uint64_t nbytes, void *mem, uint32_t *index, ttsm_error *err);

/* A storage of `nbytes` that `lazy` (in the arena, outliving the storage)
 * makes on first access; reported as in memory (file_offset UINT64_MAX). */
ttsm_status ttsm__ckpt_add_lazy_storage(ttsm_checkpoint *ck, uint64_t nbytes,
                                        const ttsm__lazy *lazy, uint32_t *index,
                                        ttsm_error *err);

/* The cap on what the deflated members of this checkpoint may inflate to
 * together: max_inflate_bytes, or when that is 0 (the default) 16 x the
 * size of the file, at least 64 MiB. */
uint64_t ttsm__ckpt_inflate_cap(const ttsm_checkpoint *ck, uint64_t file_size);

/* A tensor. `strides` NULL means dense row-major. Computes n_elements and
 * nbytes with overflow checks (block types need the innermost dimension to be
 * a multiple of the block), checks that the tensor lies inside its storage
 * and that the name is new. Names are copied. */
typedef struct ttsm__tensor_desc {
    const char *name;
    size_t name_len;
    ttsm_dtype dtype;
    uint32_t rank;
    const int64_t *shape;
    const int64_t *strides;  /* NULL: contiguous */
    uint32_t storage;
    uint64_t storage_offset; /* bytes */
} ttsm__tensor_desc;
ttsm_status ttsm__ckpt_add_tensor(ttsm_checkpoint *ck, const ttsm__tensor_desc *d,
                                  ttsm_error *err);
/* The same, for a `name` (NUL-terminated) and `shape` (with room for `rank`
 * strides after it) that already live in this checkpoint's arena
 * (ttsm__ckpt_arena): they are used in place instead of copied. The tensor
 * is not in the name index (nor checked against it) until
 * ttsm__ckpt_index_tensors, which a reader adding many calls once. */
ttsm_status ttsm__ckpt_append_tensor(ttsm_checkpoint *ck, const ttsm__tensor_desc *d,
                                     ttsm_error *err);
/* A dense tensor with a storage of its own, from a reader that has already
 * checked what ttsm__ckpt_add_tensor would (known dtype, rank at most 32,
 * element count and byte size computed without overflow, `nbytes` the size
 * ttsm__dtype_bytes gives): name (NUL-terminated, no NUL inside) and shape
 * (room for the strides, which a vector does not need) adopted from the
 * arena, as ttsm__ckpt_append_tensor. The name's length and the byte range
 * are still checked here. */
typedef struct ttsm__dense {
    const char *name;
    size_t name_len;
    ttsm_dtype dtype;
    uint32_t rank;
    int64_t *shape;
    uint64_t n_elements, nbytes;
    uint32_t file_index;
    uint64_t file_offset;
} ttsm__dense;
ttsm_status ttsm__ckpt_append_dense(ttsm_checkpoint *ck, const ttsm__dense *d, ttsm_error *err);

/* Puts tensors `first`.. (appended) into the name index; a name already
 * there is a format error ("duplicate tensor name"), and `*dup` (when not
 * NULL) is then the tensor that repeats an earlier name. */
ttsm_status ttsm__ckpt_index_tensors(ttsm_checkpoint *ck, size_t first, size_t *dup,
                                     ttsm_error *err);

/* Makes room for `tensors` more tensors and `storages` more storages, so a
 * reader that knows its counts grows the arrays once. */
ttsm_status ttsm__ckpt_reserve(ttsm_checkpoint *ck, size_t tensors, size_t storages,
                               ttsm_error *err);
/* Sizes the name index for `total` tensors at once (a reader that knows the
 * final count: the sharded index), instead of growing it shard by shard. */
ttsm_status ttsm__ckpt_reserve_index(ttsm_checkpoint *ck, size_t total, ttsm_error *err);

/* Forgets the tensors, storages and metadata added after the first `n_*`
 * (a reader that reads a file again after a failure rolls back with it). */
void ttsm__ckpt_truncate(ttsm_checkpoint *ck, size_t n_tensors, size_t n_storages,
                         size_t n_meta);

/* A metadata entry (all strings copied); a duplicate key is a format error. */
ttsm_status ttsm__ckpt_add_meta(ttsm_checkpoint *ck, const char *key, const char *type,
                                const char *json, ttsm_error *err);
/* The same, taking `json` (ttsm__malloc'd, NUL-terminated, freed on close or
 * on failure) instead of copying it: a long value is held once, not twice. */
ttsm_status ttsm__ckpt_add_meta_take(ttsm_checkpoint *ck, const char *key, const char *type,
                                     char *json, ttsm_error *err);

/* Copies into the checkpoint's arena; NULL when out of memory. */
void *ttsm__ckpt_arena(ttsm_checkpoint *ck, size_t size, size_t align);

#endif
