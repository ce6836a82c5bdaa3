/* fuzz_safetensors.c - libFuzzer harness for the safetensors header reader:
 * any bytes go through format detection from memory; on success every
 * tensor's bytes and every metadata entry are touched, so a range the
 * reader accepted but that lies outside the input shows up under ASan. */
#include <stdint.h>
#include <string.h>

#include "checkpoint_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ttsm_checkpoint *ck;
    ttsm_error err;
    if (ttsm__checkpoint_open_memory(data, size, "fuzz.safetensors", NULL, &ck, &err) != TTSM_OK)
        return 0;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < ttsm_checkpoint_tensor_count(ck); i++) {
        const ttsm_tensor_info *t = ttsm_checkpoint_tensor(ck, i);
        const void *p;
        if (ttsm_checkpoint_tensor_data(ck, t, &p, &err) != TTSM_OK)
            continue;
        const uint8_t *b = p;
        if (t->nbytes > 0)
            sink ^= (uint8_t)(b[0] ^ b[t->nbytes - 1]);
        if (ttsm_checkpoint_find(ck, t->name) != t)
            __builtin_trap(); /* the name index must give back the same tensor */
        for (uint32_t k = 0; k < t->rank; k++)
            sink ^= (uint8_t)(t->shape[k] ^ t->strides[k]);
    }
    for (size_t i = 0; i < ttsm_checkpoint_metadata_count(ck); i++) {
        const ttsm_metadata_entry *m = ttsm_checkpoint_metadata(ck, i);
        sink ^= (uint8_t)(strlen(m->key) + strlen(m->type) + strlen(m->json));
        if (ttsm_checkpoint_metadata_find(ck, m->key) != m)
            __builtin_trap();
    }
    (void)ttsm_checkpoint_total_bytes(ck);
    (void)sink;
    ttsm_checkpoint_close(ck);
    return 0;
}
