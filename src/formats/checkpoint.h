/* checkpoint.h - format detection and open (checkpoint.c); the public
 * ttsm_checkpoint_open() is in include/ttsm.h. */
#ifndef TTSM_FORMATS_CHECKPOINT_H
#define TTSM_FORMATS_CHECKPOINT_H

#include "ttsm.h"

/* Opens a checkpoint from memory (fuzz harnesses): same detection and readers.
 * A sharded index opened this way cannot open shards and says so. */
ttsm_status ttsm__checkpoint_open_memory(const void *data, size_t size, const char *name,
                                         const ttsm_checkpoint_options *opts,
                                         ttsm_checkpoint **out, ttsm_error *err);

#endif
