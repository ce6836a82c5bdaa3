/* gguf.h - the strict GGUF v2/v3 reader (gguf.c); its on-disk layout
 * heads gguf.c and docs/formats/gguf.md. */
#ifndef TTSM_FORMATS_GGUF_H
#define TTSM_FORMATS_GGUF_H

#include "formats/table.h"

/* Reads the GGUF file at `file_index` of `ck` and sets ck->format. */
ttsm_status ttsm__read_gguf(ttsm_checkpoint *ck, uint32_t file_index, ttsm_error *err);

#endif
