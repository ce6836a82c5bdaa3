/* safetensors_internal.h - what the single-file safetensors reader and the
 * sharded-index reader share (and what the fuzz harnesses call directly):
 * reading one file's header with an optional weight_map check, parsing an
 * index from memory, UTF-8 validation and safe quoting for messages. */
#ifndef TTSM_SAFETENSORS_INTERNAL_H
#define TTSM_SAFETENSORS_INTERNAL_H

#include <jansson.h>

#include "formats/table.h"

/* The reference implementation's header cap (decimal, "100 MB"). */
#define TTSM__ST_MAX_HEADER 100000000ull
/* An index is a few kilobytes to a few megabytes; the same cap bounds it. */
#define TTSM__ST_MAX_INDEX 100000000ull
/* Longest shard file name (NAME_MAX on Linux). */
#define TTSM__ST_MAX_SHARD_NAME 255u

/* Checks a shard's tensors against its index while reading it. */
typedef struct ttsm__st_shard {
    const json_t *weight_map; /* tensor name -> shard file name */
    const char *name;         /* this shard as the index spells it */
    const char *index_path;   /* subject of mapping errors */
} ttsm__st_shard;

/* Reads the safetensors file `fi` of `ck`: validates the header and the data
 * layout, adds one storage and one tensor per entry in data-offset order.
 * Without `shard`, `__metadata__` entries become metadata ("str"); with it,
 * every tensor must be mapped to this shard and `__metadata__` is validated
 * but not exposed. Does not set ck->format. */
ttsm_status ttsm__st_read_file(ttsm_checkpoint *ck, uint32_t fi, const ttsm__st_shard *shard,
                               ttsm_error *err);

/* A parsed `*.safetensors.index.json`. `shards` holds the distinct shard
 * names in byte order (pointers into `root`); free with ttsm__st_index_free. */
typedef struct ttsm__st_index {
    json_t *root;
    json_t *weight_map;     /* borrowed from root */
    json_t *metadata;       /* borrowed from root; NULL when absent or null */
    const char **shards;
    size_t n_shards;
} ttsm__st_index;

/* Parses and validates an index held in memory; `subject` names it in
 * messages. Touches no file. On failure `*out` is left empty. */
ttsm_status ttsm__st_index_parse(const char *subject, const void *data, size_t len,
                                 ttsm__st_index *out, ttsm_error *err);
void ttsm__st_index_free(ttsm__st_index *ix);

/* @return the offset of the first byte that breaks strict UTF-8 (no
 * overlong forms, surrogates or code points past U+10FFFF), or `n`. */
size_t ttsm__utf8_check(const unsigned char *s, size_t n);

/* Copies at most `cap - 1` bytes of `s` (length `n`) into `out` for a
 * message: control bytes become '?', a cut is marked "...". @return out. */
const char *ttsm__st_printable(const char *s, size_t n, char *out, size_t cap);

/* The JSON text of `v` (any type) in a ttsm__malloc'd NUL-terminated
 * string, or NULL when out of memory. */
char *ttsm__st_json_text(const json_t *v);

/* "object", "array", "string", "integer", "real", "true", "false", "null". */
const char *ttsm__st_json_kind(const json_t *v);

#endif
