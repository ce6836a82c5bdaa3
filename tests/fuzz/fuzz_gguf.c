/* fuzz_gguf.c - libFuzzer harness for the GGUF reader: bytes starting with
 * "GGUF" are opened from memory; a failure must carry its code and a message
 * naming the file; on success every tensor byte and metadata value is touched,
 * each tensor must lie inside the input, and each value must be JSON. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Other magics go to other readers, which have harnesses of their own. */
    if (size < 4 || memcmp(data, "GGUF", 4) != 0)
        return 0;
    ttsm_checkpoint *ck = NULL;
    ttsm_error err;
    ttsm_status st = ttsm__checkpoint_open_memory(data, size, "fuzz.gguf", NULL, &ck, &err);
    if (st != TTSM_OK) {
        if (ck || err.code != st || !strstr(err.message, "fuzz.gguf: "))
            abort();
        fuzz_check_message(&err);
        return 0;
    }
    if (ttsm_checkpoint_format(ck) != TTSM_FORMAT_GGUF)
        abort();
    fuzz_check_checkpoint(ck, size, 4);
    ttsm_checkpoint_close(ck);
    return 0;
}
