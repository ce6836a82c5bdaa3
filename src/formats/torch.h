/* torch.h - PyTorch checkpoints read as data (torch.c): the torch.save zip
 * archive and the legacy pre-1.6 stream. */
#ifndef TTSM_FORMATS_TORCH_H
#define TTSM_FORMATS_TORCH_H

#include "formats/table.h"

/* Reads the PyTorch checkpoint at `file_index` of `ck` and sets ck->format. */
ttsm_status ttsm__read_torch_zip(ttsm_checkpoint *ck, uint32_t file_index, ttsm_error *err);

#endif
