/* safetensors_index.h - the sharded safetensors index reader
 * (safetensors_index.c): `*.safetensors.index.json` parsed and validated
 * from memory (resolution reads shard names with it), and opened as a
 * checkpoint whose files are its shards. */
#ifndef TTSM_FORMATS_SAFETENSORS_INDEX_H
#define TTSM_FORMATS_SAFETENSORS_INDEX_H

#include "formats/st_map.h"
#include "formats/table.h"

/* An index is a few kilobytes to a few megabytes; the header cap bounds it. */
#define TTSM__ST_MAX_INDEX 100000000ull
/* Longest shard file name (NAME_MAX on Linux). */
#define TTSM__ST_MAX_SHARD_NAME 255u

/* Parses and validates an index held in memory; `subject` names it in
 * messages. Touches no file. On failure `*out` is left empty. */
ttsm_status ttsm__st_index_parse(const char *subject, const void *data, size_t len,
                                 ttsm__st_index *out, ttsm_error *err);
/* The same, read through a window of `window` bytes as a file would be
 * (tests: every token can be made to cross a window's edge). */
ttsm_status ttsm__st_index_parse_window(const char *subject, const void *data, size_t len,
                                        size_t window, ttsm__st_index *out, ttsm_error *err);

/* Reads the index at `file_index` of `ck` and opens every shard next to it. */
ttsm_status ttsm__read_safetensors_index(ttsm_checkpoint *ck, uint32_t file_index,
                                         ttsm_error *err);

#endif
