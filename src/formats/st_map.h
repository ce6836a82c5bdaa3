/* st_map.h - a parsed sharded index as the readers share it (st_map.c):
 * the weight_map (tensor -> shard) with its name lookup, the shard names and
 * the metadata. The index reader (safetensors_index.c) fills it; the
 * safetensors reader checks each shard's tensors against it. */
#ifndef TTSM_FORMATS_ST_MAP_H
#define TTSM_FORMATS_ST_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "ttsm.h"

/* One weight_map entry: a tensor and the shard the map puts it in. */
typedef struct ttsm__st_map_entry {
    const char *name; /* NUL-terminated (a JSON key cannot hold NUL) */
    uint32_t name_len;
    uint32_t shard;   /* index into ttsm__st_index.shards */
} ttsm__st_map_entry;

/* A parsed `*.safetensors.index.json`: no JSON tree is kept, only what the
 * reader needs. Free with ttsm__st_index_free. */
typedef struct ttsm__st_index {
    const char **shards;       /* the distinct shard names, in byte order */
    size_t n_shards;
    ttsm__st_map_entry *map;   /* the weight_map, in file order */
    size_t n_map;
    uint64_t *slot;            /* name -> (hash's top 32 bits << 32) | (map entry + 1); 0: empty */
    size_t nslot;              /* a power of two */
    ttsm_metadata_entry *meta; /* the "metadata" object: key, type, compact JSON */
    size_t n_meta;
    struct ttsm__st_chunk *chunks; /* where all the strings live */
} ttsm__st_index;

/* A copy of s (n bytes, then NUL) kept with the index. NULL: out of memory. */
char *ttsm__st_index_strdup(ttsm__st_index *ix, const char *s, size_t n);
void ttsm__st_index_free(ttsm__st_index *ix);

/* The weight_map entry for a tensor name. @return its index, or -1. */
long ttsm__st_index_find(const ttsm__st_index *ix, const char *name, size_t len);

/* What a slot keeps of a name's hash `h`: its top half. Entries whose tag
 * differs are passed over on the slot alone, without reading their names;
 * a name's first slot comes from the tag's top bits, so the table grows
 * without hashing a name again. */
static inline uint64_t ttsm__st_slot_tag(uint64_t h)
{
    return h & 0xffffffff00000000ull;
}

/* The first slot for tag or hash `h` in a table of `nslot` (a power of two,
 * 2 to 2^32) slots. */
static inline size_t ttsm__st_slot_home(uint64_t h, size_t nslot)
{
    return (size_t)(h >> (64 - __builtin_ctzll((unsigned long long)nslot)));
}

#endif
