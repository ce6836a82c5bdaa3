/* torch_pickle.h - a restricted unpickler for PyTorch checkpoints.
 * It runs no code: it understands the pickle opcodes state dicts use and
 * resolves only an allow-list of globals to built-in meanings (a tensor
 * rebuild, an OrderedDict, a storage type, a dtype); every other global is
 * refused by name. The result is a tree of plain values (ttsm__pv) that the
 * torch reader flattens into tensors and metadata. */
#ifndef TTSM_TORCH_PICKLE_INTERNAL_H
#define TTSM_TORCH_PICKLE_INTERNAL_H

#include "formats/table.h"

/* Limits (each has a test). */
#define TTSM__PICKLE_MAX_BYTES (256ull << 20) /* one data.pkl */
#define TTSM__PICKLE_MAX_STACK (1u << 20)     /* values on the stack */
#define TTSM__PICKLE_MAX_MARKS 1024u          /* open MARKs */
#define TTSM__PICKLE_MAX_MEMO (1u << 22)      /* memo entries */
#define TTSM__PICKLE_MAX_ARENA (1ull << 30)   /* bytes of values */
#define TTSM__PICKLE_MAX_LONG 1024u           /* bytes of one LONG1/LONG4 */
#define TTSM__PICKLE_MAX_GLOBAL 256u          /* bytes of a module or name */
#define TTSM__PICKLE_MAX_DEPTH 128u           /* container nesting when flattened */
#define TTSM__PICKLE_MAX_VISITS (1u << 24)    /* values visited when flattened, at most */

typedef enum ttsm__pv_kind {
    TTSM__PV_NONE,
    TTSM__PV_BOOL,
    TTSM__PV_INT,    /* fits int64 */
    TTSM__PV_BIGINT, /* longer: little-endian two's complement bytes in s */
    TTSM__PV_FLOAT,
    TTSM__PV_STR,    /* UTF-8 bytes (not NUL-terminated) */
    TTSM__PV_BYTES,
    TTSM__PV_TUPLE,
    TTSM__PV_LIST,
    TTSM__PV_DICT,   /* items holds key, value, key, value, ... */
    TTSM__PV_GLOBAL, /* an allowed global; `global` indexes the allow-list */
    TTSM__PV_STORAGE,
    TTSM__PV_TENSOR
} ttsm__pv_kind;

#define TTSM__PV_ORDERED 1u /* a dict made by collections.OrderedDict */
#define TTSM__PV_PARAM 2u   /* a tensor made by torch.nn.Parameter */

typedef struct ttsm__pv ttsm__pv;
struct ttsm__pv {
    uint8_t kind;
    uint8_t flags;
    uint8_t scratch; /* the flattener's marks */
    union {
        int64_t i; /* INT, BOOL */
        double f;
        struct {
            const char *p;
            size_t n;
        } s; /* STR, BYTES, BIGINT */
        struct {
            ttsm__pv **items;
            size_t n, cap;
        } seq; /* TUPLE, LIST, DICT */
        uint32_t global;
        struct {
            uint32_t slot;     /* from the storage callback */
            ttsm_dtype dtype;  /* U8 for an untyped storage */
            uint64_t nbytes;
        } storage;
        struct {
            const ttsm__pv *storage;
            ttsm_dtype dtype;
            uint32_t rank;
            const int64_t *shape, *strides; /* elements */
            uint64_t offset;                /* bytes into the storage */
        } tensor;
    } u;
};

/* Resolves a persistent id ('storage', <type>, key, location, numel): the
 * reader checks the key names bytes it has (`nbytes` of them) and gives the
 * storage a slot number (the same key must give the same slot). The key
 * points into the pickle buffer. `elem_size` is the storage type's element
 * size (1 for an untyped storage). */
typedef ttsm_status (*ttsm__pickle_storage_fn)(void *ctx, const char *key, size_t key_len,
                                               uint64_t nbytes, uint32_t elem_size,
                                               uint64_t pickle_offset, uint32_t *slot,
                                               ttsm_error *err);

typedef struct ttsm__pickle_src {
    const uint8_t *data;
    size_t size;
    const char *subject;          /* the checkpoint path, for messages */
    const char *stream;           /* "archive/data.pkl", for messages */
    uint64_t base;                /* offsets in messages are base + position */
    ttsm__pickle_storage_fn storage; /* NULL: persistent ids are refused */
    void *storage_ctx;
} ttsm__pickle_src;

/* Owns every value one or more loads create. */
typedef struct ttsm__pickle_arena ttsm__pickle_arena;
ttsm__pickle_arena *ttsm__pickle_arena_new(void);
void ttsm__pickle_arena_free(ttsm__pickle_arena *a);
/* Values created plus container items stored: the size of the object graph.
 * Flattening visits each about twice; shared references can make a small
 * graph describe an exponentially large tree, which the visit budget
 * derived from this stops. */
uint64_t ttsm__pickle_arena_refs(const ttsm__pickle_arena *a);

/* Unpickles one object from src (up to and including STOP). `*root` lives
 * in the arena; `*consumed` (may be NULL) gets the bytes used. When the
 * input ends before STOP, the error is TTSM_ERR_FORMAT and `*truncated`
 * (may be NULL) is set to 1, so a caller reading a prefix can retry with
 * more bytes. */
ttsm_status ttsm__pickle_load(ttsm__pickle_arena *a, const ttsm__pickle_src *src, ttsm__pv **root,
                              size_t *consumed, int *truncated, ttsm_error *err);

/* Writes "module.name" of an allowed global into buf. @return buf. */
const char *ttsm__pickle_global_name(uint32_t global, char *buf, size_t size);
/* 1 when the allowed global is a torch dtype; sets *dtype (INVALID when
 * ttsm has no equivalent). */
int ttsm__pickle_global_dtype(uint32_t global, ttsm_dtype *dtype);

/* Flattens an unpickled object into `ck`: tensors under dotted names
 * ("model.encoder.weight", list items by index), values without tensors as
 * metadata (type + JSON). `slot_storage[slot]` is the checkpoint storage of
 * each slot the storage callback handed out. A root that is a bare tensor
 * is named "tensor". `arena` (the one that holds root) sets the visit
 * budget: 4 visits per value or item, at most TTSM__PICKLE_MAX_VISITS. */
ttsm_status ttsm__torch_flatten(ttsm_checkpoint *ck, ttsm__pv *root,
                                const ttsm__pickle_arena *arena, const uint32_t *slot_storage,
                                size_t n_slots, const char *subject, ttsm_error *err);

#endif
