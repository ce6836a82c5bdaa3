/* table.c - the tensor table every reader fills: the checkpoint's files
 * (mapped or read), storages, tensors with their O(1) name index, metadata,
 * and tensor data access in mmap and read mode. The readers only parse;
 * everything they find lands here, checked. */
#define _GNU_SOURCE
#include "formats/table.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/alloc.h"
#include "base/path.h"

/* The default cap on inflating (max_inflate_bytes 0): proportionate to the
 * file, so a 1 MB archive cannot make a reader hold 1 GiB. Real archives
 * are stored, not deflated (torch.save never compresses); re-zipped ones
 * of weights shrink by far less than 16:1. */
#define INFLATE_RATIO 16u
#define INFLATE_FLOOR (64ull << 20)

const char *ttsm_format_name(ttsm_format format)
{
    switch (format) {
    case TTSM_FORMAT_SAFETENSORS: return "safetensors";
    case TTSM_FORMAT_SAFETENSORS_SHARDED: return "safetensors-sharded";
    case TTSM_FORMAT_GGUF: return "gguf";
    case TTSM_FORMAT_PYTORCH_ZIP: return "pytorch-zip";
    case TTSM_FORMAT_UNKNOWN: break;
    }
    return "unknown";
}

ttsm_checkpoint_options ttsm_checkpoint_options_default(void)
{
    ttsm_checkpoint_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.io_mode = TTSM_IO_MMAP;
    o.max_inflate_bytes = 0; /* proportionate: ttsm__ckpt_inflate_cap() */
    return o;
}

/* ---- arena ------------------------------------------------------------- */

struct ttsm__chunk {
    struct ttsm__chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *ttsm__ckpt_arena(ttsm_checkpoint *ck, size_t size, size_t align)
{
    struct ttsm__chunk *c = ck->chunks;
    if (c) {
        size_t at = (c->used + (align - 1)) & ~(align - 1);
        if (at <= c->cap && size <= c->cap - at) {
            c->used = at + size;
            return c->data + at;
        }
    }
    size_t cap = size > 65536 ? size : 65536;
    c = ttsm__malloc(sizeof *c + cap);
    if (!c)
        return NULL;
    c->next = ck->chunks;
    c->cap = cap;
    c->used = size;
    ck->chunks = c;
    return c->data;
}

/* ---- lifecycle --------------------------------------------------------- */

ttsm_status ttsm__ckpt_new(const char *path, const ttsm_checkpoint_options *opts,
                           ttsm_checkpoint **out, ttsm_error *err)
{
    ttsm_checkpoint_options o = ttsm_checkpoint_options_default();
    if (opts) {
        if (opts->struct_size < sizeof o)
            return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, path, "invalid options",
                             "struct_size %zu is too small; start from "
                             "ttsm_checkpoint_options_default()",
                             opts->struct_size);
        o = *opts;
        o.struct_size = sizeof o;
        if (o.io_mode != TTSM_IO_MMAP && o.io_mode != TTSM_IO_READ)
            return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, path, "invalid options",
                             "io_mode %d is neither TTSM_IO_MMAP nor TTSM_IO_READ", (int)o.io_mode);
    }
    ttsm_checkpoint *ck = ttsm__calloc(1, sizeof *ck);
    if (!ck)
        goto oom;
    ck->io_mode = o.io_mode;
    ck->max_inflate_bytes = o.max_inflate_bytes;
    ck->path = ttsm__strdup(path);
    if (!ck->path) {
        ttsm__free(ck);
        goto oom;
    }
    if (pthread_mutex_init(&ck->lock, NULL) != 0) {
        ttsm__free(ck->path);
        ttsm__free(ck);
        goto oom;
    }
    *out = ck;
    return TTSM_OK;
oom:
    return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, path, "out of memory",
                     "allocating the checkpoint");
}

void ttsm_checkpoint_close(ttsm_checkpoint *ck)
{
    if (!ck)
        return;
    for (size_t i = 0; i < ck->n_storages; i++)
        ttsm__free(ck->storages[i].mem);
    for (size_t i = 0; i < ck->n_files; i++) {
        ttsm__file *f = &ck->files[i];
        if (f->map)
            munmap(f->map, f->map_len);
        if (f->fd >= 0)
            close(f->fd);
        ttsm__free(f->owned_mem);
        ttsm__free(f->path);
    }
    struct ttsm__chunk *c = ck->chunks;
    while (c) {
        struct ttsm__chunk *n = c->next;
        ttsm__free(c);
        c = n;
    }
    for (size_t i = 0; i < ck->n_owned; i++)
        ttsm__free(ck->owned[i]);
    ttsm__free(ck->owned);
    ttsm__free(ck->files);
    ttsm__free(ck->storages);
    ttsm__free(ck->tensors);
    ttsm__free(ck->index);
    ttsm__free(ck->meta);
    pthread_mutex_destroy(&ck->lock);
    ttsm__free(ck->path);
    ttsm__free(ck);
}

/* ---- files ------------------------------------------------------------- */

static ttsm_status push_file(ttsm_checkpoint *ck, const char *path, ttsm__file **f,
                             uint32_t *index, ttsm_error *err)
{
    if (ck->n_files >= TTSM__MAX_FILES)
        return ttsm__err(err, TTSM_ERR_FORMAT, ck->path, "too many files",
                         "more than %u shards", TTSM__MAX_FILES);
    if (ttsm__grow((void **)&ck->files, &ck->cap_files, ck->n_files + 1, sizeof *ck->files,
                   TTSM__MAX_FILES) != 0)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, path, "out of memory", "adding a file");
    ttsm__file *nf = &ck->files[ck->n_files];
    memset(nf, 0, sizeof *nf);
    nf->fd = -1;
    nf->path = ttsm__strdup(path);
    if (!nf->path)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, path, "out of memory", "adding a file");
    *index = (uint32_t)ck->n_files++;
    *f = nf;
    return TTSM_OK;
}

ttsm_status ttsm__ckpt_add_file(ttsm_checkpoint *ck, const char *path, uint32_t *index,
                                ttsm_error *err)
{
    ttsm__file *f = NULL;
    ttsm_status st = push_file(ck, path, &f, index, err);
    if (st != TTSM_OK)
        return st;
    /* A FIFO, device or socket is refused without waiting on it. */
    struct stat sb;
    st = ttsm__open_regular(path, "cannot open", "name a checkpoint file inside it", &f->fd, &sb,
                            err);
    if (st != TTSM_OK)
        return st;
    f->size = (uint64_t)sb.st_size;
    if (ck->io_mode == TTSM_IO_MMAP && f->size > 0) {
        if (f->size > SIZE_MAX)
            return ttsm__err(err, TTSM_ERR_IO, path, "cannot map", "file too large");
        /* Private + writable: a consumer that writes into a tensor gets its
         * own copy of the page; the file never changes. NORESERVE keeps a
         * huge mapping from being charged as committed memory up front. */
        void *m = mmap(NULL, (size_t)f->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE,
                       f->fd, 0);
        if (m == MAP_FAILED)
            return ttsm__err(err, TTSM_ERR_IO, path, "cannot map", "%s", strerror(errno));
        f->map = m;
        f->map_len = (size_t)f->size;
    }
    return TTSM_OK;
}

ttsm_status ttsm__ckpt_add_memory(ttsm_checkpoint *ck, const char *name, const void *mem,
                                  uint64_t size, int take, uint32_t *index, ttsm_error *err)
{
    ttsm__file *f = NULL;
    ttsm_status st = push_file(ck, name, &f, index, err);
    if (st != TTSM_OK) {
        if (take)
            ttsm__free((void *)mem);
        return st;
    }
    f->mem = mem;
    f->size = size;
    if (take)
        f->owned_mem = (void *)mem;
    return TTSM_OK;
}

ttsm_status ttsm__file_read(const ttsm__file *f, uint64_t off, void *buf, size_t len,
                            ttsm_error *err)
{
    if (off > f->size || len > f->size - off)
        return ttsm__err(err, TTSM_ERR_FORMAT, f->path, "truncated",
                         "needs %zu bytes at offset %llu, file has %llu", len,
                         (unsigned long long)off, (unsigned long long)f->size);
    if (len == 0)
        return TTSM_OK;
    if (f->mem) {
        memcpy(buf, f->mem + off, len);
        return TTSM_OK;
    }
    /* Headers are read with pread even when the file is mapped: a reader
     * that visits many small headers (a zip's local headers) would
     * otherwise fault in a page of the mapping per header, making open
     * cost grow with file size; and a file that shrank gives an error
     * here instead of SIGBUS. */
    if (f->fd < 0 && f->map) {
        memcpy(buf, (const unsigned char *)f->map + off, len);
        return TTSM_OK;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(f->fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return ttsm__err(err, TTSM_ERR_IO, f->path, "read failed", "at offset %llu: %s",
                             (unsigned long long)(off + done), strerror(errno));
        }
        if (n == 0)
            return ttsm__err(err, TTSM_ERR_IO, f->path, "read failed",
                             "file ended at offset %llu while %zu more bytes were expected "
                             "(was it truncated after opening?)",
                             (unsigned long long)(off + done), len - done);
        done += (size_t)n;
    }
    return TTSM_OK;
}

/* ---- storages, tensors, metadata -------------------------------------- */

ttsm_status ttsm__ckpt_add_storage(ttsm_checkpoint *ck, uint32_t file_index, uint64_t file_offset,
                                   uint64_t nbytes, void *mem, uint32_t *index, ttsm_error *err)
{
    if (file_index != UINT32_MAX) {
        const ttsm__file *f = &ck->files[file_index];
        if (file_offset > f->size || nbytes > f->size - file_offset) {
            ttsm__free(mem);
            return ttsm__err(err, TTSM_ERR_FORMAT, f->path, "data out of bounds",
                             "%llu bytes at offset %llu pass the end of the file (%llu bytes)",
                             (unsigned long long)nbytes, (unsigned long long)file_offset,
                             (unsigned long long)f->size);
        }
    }
    if (ttsm__grow((void **)&ck->storages, &ck->cap_storages, ck->n_storages + 1,
                   sizeof *ck->storages, TTSM__MAX_TENSORS) != 0) {
        ttsm__free(mem);
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, ck->path, "out of memory",
                         "adding storage %zu", ck->n_storages);
    }
    ttsm__storage *s = &ck->storages[ck->n_storages];
    s->file_index = file_index;
    s->file_offset = file_offset;
    s->nbytes = nbytes;
    s->mem = mem;
    s->mem_is_cache = 0;
    s->lazy = NULL;
    *index = (uint32_t)ck->n_storages++;
    return TTSM_OK;
}

ttsm_status ttsm__ckpt_add_lazy_storage(ttsm_checkpoint *ck, uint64_t nbytes,
                                        const ttsm__lazy *lazy, uint32_t *index,
                                        ttsm_error *err)
{
    ttsm_status st = ttsm__ckpt_add_storage(ck, UINT32_MAX, 0, nbytes, NULL, index, err);
    if (st == TTSM_OK)
        ck->storages[*index].lazy = lazy;
    return st;
}

uint64_t ttsm__ckpt_inflate_cap(const ttsm_checkpoint *ck, uint64_t file_size)
{
    if (ck->max_inflate_bytes)
        return ck->max_inflate_bytes;
    uint64_t cap;
    if (__builtin_mul_overflow(file_size, (uint64_t)INFLATE_RATIO, &cap))
        cap = UINT64_MAX;
    return cap < INFLATE_FLOOR ? INFLATE_FLOOR : cap;
}

static uint64_t name_hash(const char *s, size_t n)
{
    return XXH3_64bits(s, n);
}

#define EMPTY UINT64_MAX

/* The name index is at most two thirds full (linear probing stays short,
 * the slots' hash bits spare the name compares) and sized to that, not to
 * a power of two: at 100,000 tensors that is 1.2 MB instead of 2.1. */
static int index_full(size_t n, size_t cap)
{
    return n * 3 > cap * 2;
}

static size_t index_cap_for(size_t n)
{
    return (n + n / 2 + 64) / 64 * 64; /* whole cache lines */
}

/* A hash's first slot: its low half scaled to the table (cap < 2^32). */
static size_t index_home(const ttsm_checkpoint *ck, uint64_t h)
{
    return (size_t)(((uint64_t)(uint32_t)h * ck->index_cap) >> 32);
}

/* Finds the slot of `name` (hash `h`) or the empty slot where it would go.
 * The high bits of the hash kept in each slot spare most name compares,
 * which would each fetch another tensor's name from memory. */
static size_t index_slot(const ttsm_checkpoint *ck, const char *name, size_t len, uint64_t h)
{
    size_t i = index_home(ck, h);
    uint32_t fp = (uint32_t)(h >> 32);
    for (;;) {
        uint64_t v = ck->index[i];
        if (v == EMPTY)
            return i;
        if ((uint32_t)(v >> 32) == fp) {
            const char *tn = ck->tensors[(uint32_t)v].name;
            if (strncmp(tn, name, len) == 0 && tn[len] == '\0')
                return i;
        }
        i = i + 1 == ck->index_cap ? 0 : i + 1;
    }
}

static int index_grow_to(ttsm_checkpoint *ck, size_t ncap)
{
    uint64_t *old = ck->index;
    size_t ocap = ck->index_cap;
    uint64_t *n = ttsm__malloc(ncap * sizeof *n);
    if (!n)
        return -1;
    memset(n, 0xff, ncap * sizeof *n);
    ck->index = n;
    ck->index_cap = ncap;
    for (size_t i = 0; i < ocap; i++) {
        if (old[i] == EMPTY)
            continue;
        const char *nm = ck->tensors[(uint32_t)old[i]].name;
        size_t len = strlen(nm);
        n[index_slot(ck, nm, len, name_hash(nm, len))] = old[i];
    }
    ttsm__free(old);
    return 0;
}

void ttsm__ckpt_truncate(ttsm_checkpoint *ck, size_t n_tensors, size_t n_storages,
                         size_t n_meta)
{
    for (size_t i = n_storages; i < ck->n_storages; i++)
        ttsm__free(ck->storages[i].mem);
    if (n_storages < ck->n_storages)
        ck->n_storages = n_storages;
    if (n_meta < ck->n_meta)
        ck->n_meta = n_meta;
    if (n_tensors >= ck->n_tensors)
        return;
    ck->n_tensors = n_tensors;
    if (ck->index_cap)
        memset(ck->index, 0xff, ck->index_cap * sizeof *ck->index);
    for (size_t i = 0; i < n_tensors; i++) {
        const char *nm = ck->tensors[i].name;
        size_t len = strlen(nm);
        uint64_t h = name_hash(nm, len);
        ck->index[index_slot(ck, nm, len, h)] = (h >> 32) << 32 | i;
    }
}

static int index_grow(ttsm_checkpoint *ck)
{
    return index_grow_to(ck, index_cap_for(ck->index_cap ? ck->index_cap * 2 : 64));
}

/* Large tables are written once, right after they are allocated: in 2 MiB
 * pages the kernel faults them in hundreds of times fewer steps (where
 * transparent huge pages are allowed at all; otherwise this does nothing). */
static void advise_huge(void *p, size_t bytes)
{
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1), e = ((uintptr_t)p + bytes) & ~(huge - 1);
    if (bytes >= 2 * huge && e > a)
        madvise((void *)a, e - a, MADV_HUGEPAGE);
}

ttsm_status ttsm__ckpt_reserve(ttsm_checkpoint *ck, size_t tensors, size_t storages,
                               ttsm_error *err)
{
    if (tensors > TTSM__MAX_TENSORS - ck->n_tensors ||
        storages > TTSM__MAX_TENSORS - ck->n_storages)
        return TTSM_OK; /* the builders refuse the excess with their own message */
    size_t nt = ck->n_tensors + tensors;
    if ((nt > 0 && ttsm__grow((void **)&ck->tensors, &ck->cap_tensors, nt, sizeof *ck->tensors,
                              TTSM__MAX_TENSORS) != 0) ||
        (ck->n_storages + storages > 0 &&
         ttsm__grow((void **)&ck->storages, &ck->cap_storages, ck->n_storages + storages,
                    sizeof *ck->storages, TTSM__MAX_TENSORS) != 0))
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, ck->path, "out of memory",
                         "making room for %zu tensors", tensors);
    advise_huge(ck->tensors, ck->cap_tensors * sizeof *ck->tensors);
    advise_huge(ck->storages, ck->cap_storages * sizeof *ck->storages);
    return TTSM_OK;
}

/* adopt: name and shape are in the arena already; index: 0 leaves the
 * tensor out of the name index until ttsm__ckpt_index_tensors. */
static ttsm_status add_tensor(ttsm_checkpoint *ck, const ttsm__tensor_desc *d, int adopt,
                              int index, ttsm_error *err)
{
    const char *file = ck->path;
    if (d->storage < ck->n_storages && ck->storages[d->storage].file_index != UINT32_MAX)
        file = ck->files[ck->storages[d->storage].file_index].path;
    int nlen = d->name_len > 200 ? 200 : (int)d->name_len;

    if (d->name_len == 0 || d->name_len > TTSM__MAX_NAME_LEN || memchr(d->name, 0, d->name_len))
        return ttsm__err(err, TTSM_ERR_FORMAT, file, "bad tensor name",
                         "tensor %zu has a name that is empty, longer than %u bytes or holds NUL",
                         ck->n_tensors, TTSM__MAX_NAME_LEN);
    if (ck->n_tensors >= TTSM__MAX_TENSORS)
        return ttsm__err(err, TTSM_ERR_FORMAT, file, "too many tensors", "more than %u",
                         TTSM__MAX_TENSORS);
    if (d->rank > TTSM__MAX_RANK)
        return ttsm__err(err, TTSM_ERR_FORMAT, file, "rank too large",
                         "tensor '%.*s' has rank %u, the limit is %u", nlen, d->name, d->rank,
                         TTSM__MAX_RANK);
    if (d->storage >= ck->n_storages)
        return ttsm__err(err, TTSM_ERR_FORMAT, file, "bad storage",
                         "tensor '%.*s' names storage %u of %zu", nlen, d->name, d->storage,
                         ck->n_storages);
    uint32_t be, bb;
    if (ttsm_dtype_block(d->dtype, &be, &bb) != 0)
        return ttsm__err(err, TTSM_ERR_FORMAT, file, "unknown dtype",
                         "tensor '%.*s' has dtype %d", nlen, d->name, (int)d->dtype);

    uint64_t n = 1;
    for (uint32_t i = 0; i < d->rank; i++) {
        if (d->shape[i] < 0)
            return ttsm__err(err, TTSM_ERR_FORMAT, file, "negative dimension",
                             "tensor '%.*s' dimension %u is %lld", nlen, d->name, i,
                             (long long)d->shape[i]);
        if (__builtin_mul_overflow(n, (uint64_t)d->shape[i], &n) || n > (uint64_t)INT64_MAX)
            return ttsm__err(err, TTSM_ERR_FORMAT, file, "element count overflows",
                             "tensor '%.*s' shape product exceeds 2^63", nlen, d->name);
    }
    /* Block-quantised types quantise each row; the bit-packed F4/F6 types
     * pack the flattened elements, so only their total must fill bytes. */
    int per_row = be > 1 && d->dtype != TTSM_DTYPE_F4 && d->dtype != TTSM_DTYPE_F6_E2M3 &&
                  d->dtype != TTSM_DTYPE_F6_E3M2;
    if (d->rank > 0 && per_row && d->shape[d->rank - 1] % be != 0)
        return ttsm__err(err, TTSM_ERR_FORMAT, file, "block size mismatch",
                         "tensor '%.*s' of %s: innermost dimension %lld is not a multiple of "
                         "the block size %u",
                         nlen, d->name, ttsm_dtype_name(d->dtype), (long long)d->shape[d->rank - 1],
                         be);
    uint64_t nbytes;
    if (ttsm__dtype_bytes(d->dtype, n, &nbytes) != 0)
        return ttsm__err(err, TTSM_ERR_FORMAT, file, "bad element count",
                         "tensor '%.*s' has %llu elements of %s: not a whole number of blocks "
                         "of %u or the byte size overflows",
                         nlen, d->name, (unsigned long long)n, ttsm_dtype_name(d->dtype), be);

    int64_t *shape = adopt ? (int64_t *)d->shape
                              : ttsm__ckpt_arena(ck, sizeof(int64_t) * (d->rank ? 2 * d->rank : 1), 8);
    char *name = adopt ? (char *)d->name : ttsm__ckpt_arena(ck, d->name_len + 1, 1);
    if (!shape || !name)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, file, "out of memory",
                         "adding tensor '%.*s'", nlen, d->name);
    int64_t *strides = shape + d->rank;
    int contiguous = 1;
    int64_t expect = 1;
    for (uint32_t i = d->rank; i-- > 0;) {
        shape[i] = d->shape[i];
        strides[i] = d->strides ? d->strides[i] : expect;
        if (strides[i] != expect && shape[i] != 1)
            contiguous = 0;
        if (strides[i] < 0)
            return ttsm__err(err, TTSM_ERR_FORMAT, file, "negative stride",
                             "tensor '%.*s' stride %u is %lld", nlen, d->name, i,
                             (long long)strides[i]);
        if (__builtin_mul_overflow(expect, shape[i] ? shape[i] : 1, &expect))
            expect = INT64_MAX;
    }
    if (!contiguous) {
        if (be > 1)
            return ttsm__err(err, TTSM_ERR_FORMAT, file, "strided block tensor",
                             "tensor '%.*s' of %s is not contiguous", nlen, d->name,
                             ttsm_dtype_name(d->dtype));
        /* Span of a strided view: 1 + sum((dim - 1) * stride) elements. */
        uint64_t span = 1;
        for (uint32_t i = 0; i < d->rank && n > 0; i++) {
            uint64_t t;
            if (__builtin_mul_overflow((uint64_t)(shape[i] - 1), (uint64_t)strides[i], &t) ||
                __builtin_add_overflow(span, t, &span))
                return ttsm__err(err, TTSM_ERR_FORMAT, file, "stride overflow",
                                 "tensor '%.*s' spans more than 2^64 elements", nlen, d->name);
        }
        if (n == 0)
            span = 0;
        if (__builtin_mul_overflow(span, (uint64_t)bb, &nbytes))
            return ttsm__err(err, TTSM_ERR_FORMAT, file, "stride overflow",
                             "tensor '%.*s' spans more than 2^64 bytes", nlen, d->name);
    }
    const ttsm__storage *s = &ck->storages[d->storage];
    if (d->storage_offset > s->nbytes || nbytes > s->nbytes - d->storage_offset)
        return ttsm__err(err, TTSM_ERR_FORMAT, file, "tensor outside its storage",
                         "tensor '%.*s' needs %llu bytes at storage offset %llu, the storage has "
                         "%llu",
                         nlen, d->name, (unsigned long long)nbytes,
                         (unsigned long long)d->storage_offset, (unsigned long long)s->nbytes);
    if (!adopt) {
        memcpy(name, d->name, d->name_len);
        name[d->name_len] = '\0';
    }

    uint64_t h = 0;
    size_t slot = 0;
    if (index) {
        if (ck->index_cap == 0 || index_full(ck->n_tensors + 1, ck->index_cap)) {
            if (index_grow(ck) != 0)
                return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, file, "out of memory",
                                 "indexing tensor '%.*s'", nlen, d->name);
        }
        h = name_hash(name, d->name_len);
        slot = index_slot(ck, name, d->name_len, h);
        if (ck->index[slot] != EMPTY)
            return ttsm__err(err, TTSM_ERR_FORMAT, file, "duplicate tensor name",
                             "'%.*s' appears twice", nlen, d->name);
    }
    if (ttsm__grow((void **)&ck->tensors, &ck->cap_tensors, ck->n_tensors + 1, sizeof *ck->tensors,
                   TTSM__MAX_TENSORS) != 0)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, file, "out of memory",
                         "adding tensor '%.*s'", nlen, d->name);
    ttsm_tensor_info *t = &ck->tensors[ck->n_tensors];
    t->name = name;
    t->dtype = d->dtype;
    t->rank = d->rank;
    t->shape = shape;
    t->strides = strides;
    t->contiguous = contiguous;
    t->n_elements = n;
    t->nbytes = nbytes;
    t->storage_index = d->storage;
    t->storage_offset = d->storage_offset;
    if (s->file_index != UINT32_MAX) {
        t->file_index = s->file_index;
        t->file_offset = s->file_offset + d->storage_offset;
    } else {
        t->file_index = 0;
        t->file_offset = UINT64_MAX;
    }
    if (index)
        ck->index[slot] = (h >> 32) << 32 | ck->n_tensors;
    ck->n_tensors++;
    return TTSM_OK;
}

ttsm_status ttsm__ckpt_add_tensor(ttsm_checkpoint *ck, const ttsm__tensor_desc *d,
                                  ttsm_error *err)
{
    return add_tensor(ck, d, 0, 1, err);
}

ttsm_status ttsm__ckpt_append_tensor(ttsm_checkpoint *ck, const ttsm__tensor_desc *d,
                                     ttsm_error *err)
{
    return add_tensor(ck, d, 1, 0, err);
}

ttsm_status ttsm__ckpt_reserve_index(ttsm_checkpoint *ck, size_t total, ttsm_error *err)
{
    if (total > TTSM__MAX_TENSORS)
        return TTSM_OK;
    if ((ck->index_cap == 0 || index_full(total + 1, ck->index_cap)) &&
        index_grow_to(ck, index_cap_for(total + 1)) != 0)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, ck->path, "out of memory",
                         "indexing %zu tensors", total);
    return TTSM_OK;
}

ttsm_status ttsm__ckpt_append_dense(ttsm_checkpoint *ck, const ttsm__dense *d, ttsm_error *err)
{
    const ttsm__file *f = &ck->files[d->file_index];
    if (d->name_len == 0 || d->name_len > TTSM__MAX_NAME_LEN)
        return ttsm__err(err, TTSM_ERR_FORMAT, f->path, "bad tensor name",
                         "tensor %zu has a name that is empty, longer than %u bytes or holds NUL",
                         ck->n_tensors, TTSM__MAX_NAME_LEN);
    if (ck->n_tensors >= TTSM__MAX_TENSORS)
        return ttsm__err(err, TTSM_ERR_FORMAT, f->path, "too many tensors", "more than %u",
                         TTSM__MAX_TENSORS);
    if (d->file_offset > f->size || d->nbytes > f->size - d->file_offset)
        return ttsm__err(err, TTSM_ERR_FORMAT, f->path, "data out of bounds",
                         "%llu bytes at offset %llu pass the end of the file (%llu bytes)",
                         (unsigned long long)d->nbytes, (unsigned long long)d->file_offset,
                         (unsigned long long)f->size);
    if ((ck->n_storages >= ck->cap_storages &&
         ttsm__grow((void **)&ck->storages, &ck->cap_storages, ck->n_storages + 1,
                    sizeof *ck->storages, TTSM__MAX_TENSORS) != 0) ||
        (ck->n_tensors >= ck->cap_tensors &&
         ttsm__grow((void **)&ck->tensors, &ck->cap_tensors, ck->n_tensors + 1,
                    sizeof *ck->tensors, TTSM__MAX_TENSORS) != 0))
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, f->path, "out of memory",
                         "adding tensor %zu", ck->n_tensors);
    ttsm__storage *s = &ck->storages[ck->n_storages];
    s->file_index = d->file_index;
    s->file_offset = d->file_offset;
    s->nbytes = d->nbytes;
    s->mem = NULL;
    s->mem_is_cache = 0;
    s->lazy = NULL;
    /* Dense row-major strides, as ttsm__ckpt_add_tensor computes them. A
     * vector's are always {1}: one shared copy, so a reader may leave out
     * the room for them (8 bytes a tensor: norms and biases are many). */
    static const int64_t unit_stride[1] = {1};
    int64_t *strides = d->shape + d->rank, expect = 1;
    for (uint32_t i = d->rank; d->rank > 1 && i-- > 0;) {
        strides[i] = expect;
        if (__builtin_mul_overflow(expect, d->shape[i] ? d->shape[i] : 1, &expect))
            expect = INT64_MAX;
    }
    ttsm_tensor_info *t = &ck->tensors[ck->n_tensors++];
    t->name = d->name;
    t->dtype = d->dtype;
    t->rank = d->rank;
    t->shape = d->shape;
    t->strides = d->rank == 1 ? unit_stride : strides;
    t->contiguous = 1;
    t->n_elements = d->n_elements;
    t->nbytes = d->nbytes;
    t->storage_index = (uint32_t)ck->n_storages++;
    t->storage_offset = 0;
    t->file_index = d->file_index;
    t->file_offset = d->file_offset;
    return TTSM_OK;
}

ttsm_status ttsm__ckpt_index_tensors(ttsm_checkpoint *ck, size_t first, size_t *dup,
                                     ttsm_error *err)
{
    size_t n = ck->n_tensors;
    if ((ck->index_cap == 0 || index_full(n + 1, ck->index_cap)) &&
        index_grow_to(ck, index_cap_for(n + 1)) != 0)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, ck->path, "out of memory",
                         "indexing %zu tensors", n);
    /* Hashes a few tensors ahead and prefetches their slots, so that the
     * index's random accesses overlap instead of each waiting on memory. */
    enum { AHEAD = 8 };
    uint64_t ring[AHEAD];
    size_t lens[AHEAD];
    for (size_t i = first; i < n && i < first + AHEAD; i++) {
        const char *nm = ck->tensors[i].name;
        lens[i % AHEAD] = strlen(nm);
        ring[i % AHEAD] = name_hash(nm, lens[i % AHEAD]);
        __builtin_prefetch(&ck->index[index_home(ck, ring[i % AHEAD])]);
    }
    for (size_t i = first; i < n; i++) {
        uint64_t h = ring[i % AHEAD];
        size_t len = lens[i % AHEAD];
        if (i + AHEAD < n) {
            const char *ah = ck->tensors[i + AHEAD].name;
            lens[i % AHEAD] = strlen(ah);
            ring[i % AHEAD] = name_hash(ah, lens[i % AHEAD]);
            __builtin_prefetch(&ck->index[index_home(ck, ring[i % AHEAD])]);
        }
        const char *nm = ck->tensors[i].name;
        size_t slot = index_slot(ck, nm, len, h);
        if (ck->index[slot] != EMPTY) {
            if (dup)
                *dup = i;
            const char *file = ck->n_files ? ck->files[ck->tensors[i].file_index].path : ck->path;
            return ttsm__err(err, TTSM_ERR_FORMAT, file, "duplicate tensor name",
                             "'%.200s' appears twice", nm);
        }
        ck->index[slot] = (h >> 32) << 32 | i;
    }
    return TTSM_OK;
}

static ttsm_status add_meta(ttsm_checkpoint *ck, const char *key, const char *type,
                            const char *json, char *take, ttsm_error *err)
{
    if (ck->n_meta >= TTSM__MAX_METADATA)
        return ttsm__err(err, TTSM_ERR_FORMAT, ck->path, "too much metadata", "more than %u keys",
                         TTSM__MAX_METADATA);
    /* Metadata is small in number (tens of keys); a linear duplicate check
     * keeps the structure simple. Files with many keys hit the cap above. */
    if (ck->n_meta < 4096) {
        for (size_t i = 0; i < ck->n_meta; i++)
            if (strcmp(ck->meta[i].pub.key, key) == 0) {
                ttsm__free(take);
                return ttsm__err(err, TTSM_ERR_FORMAT, ck->path, "duplicate metadata key",
                                 "'%.200s' appears twice", key);
            }
    }
    if (ttsm__grow((void **)&ck->meta, &ck->cap_meta, ck->n_meta + 1, sizeof *ck->meta,
                   TTSM__MAX_METADATA) != 0)
        goto oom;
    if (take && ttsm__grow((void **)&ck->owned, &ck->cap_owned, ck->n_owned + 1,
                           sizeof *ck->owned, TTSM__MAX_METADATA) != 0)
        goto oom;
    size_t kl = strlen(key) + 1, tl = strlen(type) + 1, jl = take ? 0 : strlen(json) + 1;
    char *k = ttsm__ckpt_arena(ck, kl, 1), *t = ttsm__ckpt_arena(ck, tl, 1),
         *j = take ? take : ttsm__ckpt_arena(ck, jl, 1);
    if (!k || !t || !j)
        goto oom;
    memcpy(k, key, kl);
    memcpy(t, type, tl);
    if (take)
        ck->owned[ck->n_owned++] = take;
    else
        memcpy(j, json, jl);
    ck->meta[ck->n_meta].pub.key = k;
    ck->meta[ck->n_meta].pub.type = t;
    ck->meta[ck->n_meta].pub.json = j;
    ck->n_meta++;
    return TTSM_OK;
oom:
    ttsm__free(take);
    return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, ck->path, "out of memory",
                     "adding metadata '%.200s'", key);
}

ttsm_status ttsm__ckpt_add_meta(ttsm_checkpoint *ck, const char *key, const char *type,
                                const char *json, ttsm_error *err)
{
    return add_meta(ck, key, type, json, NULL, err);
}

ttsm_status ttsm__ckpt_add_meta_take(ttsm_checkpoint *ck, const char *key, const char *type,
                                     char *json, ttsm_error *err)
{
    return add_meta(ck, key, type, json, json, err);
}

/* ---- accessors -------------------------------------------------------- */

ttsm_format ttsm_checkpoint_format(const ttsm_checkpoint *ck)
{
    return ck ? ck->format : TTSM_FORMAT_UNKNOWN;
}
uint32_t ttsm_checkpoint_version(const ttsm_checkpoint *ck)
{
    return ck ? ck->version : 0;
}
ttsm_io_mode ttsm_checkpoint_io_mode(const ttsm_checkpoint *ck)
{
    return ck ? ck->io_mode : TTSM_IO_MMAP;
}
size_t ttsm_checkpoint_file_count(const ttsm_checkpoint *ck)
{
    return ck ? ck->n_files : 0;
}
const char *ttsm_checkpoint_file_path(const ttsm_checkpoint *ck, size_t i)
{
    return ck && i < ck->n_files ? ck->files[i].path : NULL;
}
uint64_t ttsm_checkpoint_file_size(const ttsm_checkpoint *ck, size_t i)
{
    return ck && i < ck->n_files ? ck->files[i].size : 0;
}
size_t ttsm_checkpoint_tensor_count(const ttsm_checkpoint *ck)
{
    return ck ? ck->n_tensors : 0;
}
const ttsm_tensor_info *ttsm_checkpoint_tensor(const ttsm_checkpoint *ck, size_t i)
{
    return ck && i < ck->n_tensors ? &ck->tensors[i] : NULL;
}
const ttsm_tensor_info *ttsm_checkpoint_find(const ttsm_checkpoint *ck, const char *name)
{
    if (!ck || !name || ck->index_cap == 0)
        return NULL;
    size_t len = strlen(name);
    uint64_t v = ck->index[index_slot(ck, name, len, name_hash(name, len))];
    return v == EMPTY ? NULL : &ck->tensors[(uint32_t)v];
}
uint64_t ttsm_checkpoint_total_bytes(const ttsm_checkpoint *ck)
{
    uint64_t total = 0;
    for (size_t i = 0; ck && i < ck->n_storages; i++)
        total += ck->storages[i].nbytes;
    return total;
}
size_t ttsm_checkpoint_metadata_count(const ttsm_checkpoint *ck)
{
    return ck ? ck->n_meta : 0;
}
const ttsm_metadata_entry *ttsm_checkpoint_metadata(const ttsm_checkpoint *ck, size_t i)
{
    return ck && i < ck->n_meta ? &ck->meta[i].pub : NULL;
}
const ttsm_metadata_entry *ttsm_checkpoint_metadata_find(const ttsm_checkpoint *ck,
                                                         const char *key)
{
    for (size_t i = 0; ck && key && i < ck->n_meta; i++)
        if (strcmp(ck->meta[i].pub.key, key) == 0)
            return &ck->meta[i].pub;
    return NULL;
}

/* ---- data ------------------------------------------------------------- */

/* A storage made on first use (a deflated member): made once, under the
 * checkpoint's lock, and kept until close. A failure (a corrupt stream, a
 * CRC mismatch) is reported to each caller and leaves nothing behind. */
static ttsm_status lazy_data(ttsm_checkpoint *ck, ttsm__storage *s, const ttsm_tensor_info *t,
                             const void **data, ttsm_error *err)
{
    static const unsigned char empty[64];
    ttsm_status st = TTSM_OK;
    const ttsm__file *f = &ck->files[s->lazy->file_index];
    pthread_mutex_lock(&ck->lock);
    if (!s->mem && s->nbytes > 0) {
        void *buf = s->nbytes > SIZE_MAX - 64 ? NULL : ttsm__aligned_alloc(64, (size_t)s->nbytes);
        if (!buf)
            st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, f->path, "out of memory",
                           "inflating %llu bytes for tensor '%.200s'",
                           (unsigned long long)s->nbytes, t->name);
        else if ((st = s->lazy->fill(f, s->lazy, buf, err)) != TTSM_OK)
            ttsm__free(buf);
        else
            s->mem = buf;
    }
    if (st == TTSM_OK)
        *data = s->mem ? (const unsigned char *)s->mem + t->storage_offset : empty;
    pthread_mutex_unlock(&ck->lock);
    return st;
}

ttsm_status ttsm_checkpoint_tensor_data(ttsm_checkpoint *ck, const ttsm_tensor_info *t,
                                        const void **data, ttsm_error *err)
{
    if (!ck || !t || !data || t < ck->tensors || t >= ck->tensors + ck->n_tensors)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, ck ? ck->path : NULL,
                         "ttsm_checkpoint_tensor_data", "tensor does not belong to checkpoint");
    ttsm__storage *s = &ck->storages[t->storage_index];
    static const unsigned char empty[64];
    if (s->lazy)
        return lazy_data(ck, s, t, data, err);
    if (s->file_index == UINT32_MAX) {
        *data = s->mem ? (const unsigned char *)s->mem + t->storage_offset : empty;
        return TTSM_OK;
    }
    const ttsm__file *f = &ck->files[s->file_index];
    if (s->nbytes == 0) {
        *data = empty;
        return TTSM_OK;
    }
    if (f->mem) {
        *data = f->mem + s->file_offset + t->storage_offset;
        return TTSM_OK;
    }
    if (f->map) {
        *data = (const unsigned char *)f->map + s->file_offset + t->storage_offset;
        return TTSM_OK;
    }
    ttsm_status st = TTSM_OK;
    pthread_mutex_lock(&ck->lock);
    if (!s->mem) {
        if (s->nbytes > SIZE_MAX) {
            st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, f->path, "out of memory",
                           "storage of %llu bytes", (unsigned long long)s->nbytes);
        } else {
            void *buf = ttsm__aligned_alloc(64, (size_t)s->nbytes);
            if (!buf)
                st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, f->path, "out of memory",
                               "reading %llu bytes for tensor '%.200s'",
                               (unsigned long long)s->nbytes, t->name);
            else if ((st = ttsm__file_read(f, s->file_offset, buf, (size_t)s->nbytes, err)) !=
                     TTSM_OK) {
                /* The header promised these bytes; a short read now means the
                 * file changed under us: that is I/O, not format. */
                if (err && st == TTSM_ERR_FORMAT)
                    err->code = st = TTSM_ERR_IO;
                ttsm__free(buf);
            } else {
                s->mem = buf;
                s->mem_is_cache = 1;
            }
        }
    }
    if (st == TTSM_OK)
        *data = (const unsigned char *)s->mem + t->storage_offset;
    pthread_mutex_unlock(&ck->lock);
    return st;
}
