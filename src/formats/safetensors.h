/* safetensors.h - the strict safetensors reader (safetensors.c): one file's
 * header, optionally checked against a sharded index's weight_map (the
 * index reader reads each shard through it). */
#ifndef TTSM_FORMATS_SAFETENSORS_H
#define TTSM_FORMATS_SAFETENSORS_H

#include "formats/st_map.h"
#include "formats/table.h"

/* The reference implementation's header cap (decimal, "100 MB"). */
#define TTSM__ST_MAX_HEADER 100000000ull

/* Checks a shard's tensors against its index while reading it. */
typedef struct ttsm__st_shard {
    const ttsm__st_index *index; /* tensor name -> shard */
    uint32_t shard;              /* this shard: an index into index->shards */
    const char *index_path;      /* subject of mapping errors */
} ttsm__st_shard;

/* Reads the safetensors file `fi` of `ck`: validates the header and the data
 * layout, adds one storage and one tensor per entry in data-offset order.
 * Without `shard`, `__metadata__` entries become metadata ("str"); with it,
 * every tensor must be mapped to this shard and `__metadata__` is validated
 * but not exposed. Does not set ck->format. */
ttsm_status ttsm__st_read_file(ttsm_checkpoint *ck, uint32_t fi, const ttsm__st_shard *shard,
                               ttsm_error *err);


/* Reads the safetensors file at index `file_index` of `ck` as the whole
 * checkpoint (detection calls it) and sets ck->format. */
ttsm_status ttsm__read_safetensors(ttsm_checkpoint *ck, uint32_t file_index, ttsm_error *err);

#endif
