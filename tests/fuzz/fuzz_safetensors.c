/* fuzz_safetensors.c - libFuzzer harness for the safetensors header reader:
 * any bytes go through format detection from memory; on success every
 * tensor's bytes and every metadata entry are touched, so a range the
 * reader accepted but that lies outside the input shows up under ASan. */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ttsm_checkpoint *ck;
    ttsm_error err;
    if (ttsm__checkpoint_open_memory(data, size, "fuzz.safetensors", NULL, &ck, &err) != TTSM_OK) {
        fuzz_check_message(&err);
        return 0;
    }
    fuzz_check_checkpoint(ck, size, TTSM__MAX_RANK);
    ttsm_checkpoint_close(ck);
    return 0;
}
