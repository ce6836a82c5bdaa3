/* format_safetensors.c - placeholder until the safetensors reader lands; refuses every file. */
#include "checkpoint_internal.h"

ttsm_status ttsm__read_safetensors(ttsm_checkpoint *ck, uint32_t file_index, ttsm_error *err)
{
    return ttsm__err(err, TTSM_ERR_FORMAT, ck->files[file_index].path, "unsupported format",
                     "the safetensors reader is not built yet");
}

ttsm_status ttsm__read_safetensors_index(ttsm_checkpoint *ck, uint32_t file_index, ttsm_error *err)
{
    return ttsm__err(err, TTSM_ERR_FORMAT, ck->files[file_index].path, "unsupported format",
                     "the sharded index reader is not built yet");
}
