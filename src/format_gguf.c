/* format_gguf.c - placeholder until the gguf reader lands; refuses every file. */
#include "checkpoint_internal.h"

ttsm_status ttsm__read_gguf(ttsm_checkpoint *ck, uint32_t file_index, ttsm_error *err)
{
    return ttsm__err(err, TTSM_ERR_FORMAT, ck->files[file_index].path, "unsupported format",
                     "the gguf reader is not built yet");
}
