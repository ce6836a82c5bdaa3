/* fuzz_gguf.c - libFuzzer harness for the GGUF reader: bytes starting with
 * "GGUF" are opened from memory; a failure must carry its code and a message
 * naming the file; on success every tensor byte and metadata value is touched,
 * each tensor must lie inside the input, and each value must be JSON. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint_internal.h"

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
        return 0;
    }
    if (ttsm_checkpoint_format(ck) != TTSM_FORMAT_GGUF)
        abort();
    volatile unsigned sum = 0;
    for (size_t i = 0; i < ttsm_checkpoint_tensor_count(ck); i++) {
        const ttsm_tensor_info *t = ttsm_checkpoint_tensor(ck, i);
        if (t->file_offset > size || t->nbytes > size - t->file_offset || t->rank > 4 ||
            ttsm_checkpoint_find(ck, t->name) != t)
            abort();
        const void *p;
        if (ttsm_checkpoint_tensor_data(ck, t, &p, &err) != TTSM_OK)
            abort();
        const unsigned char *b = p;
        for (uint64_t k = 0; k < t->nbytes; k++)
            sum += b[k];
    }
    for (size_t i = 0; i < ttsm_checkpoint_metadata_count(ck); i++) {
        const ttsm_metadata_entry *e = ttsm_checkpoint_metadata(ck, i);
        if (!e->key[0] || !e->type[0] || ttsm_checkpoint_metadata_find(ck, e->key) != e)
            abort();
        json_t *j = json_loads(e->json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (!j)
            abort();
        json_decref(j);
    }
    (void)sum;
    ttsm_checkpoint_close(ck);
    return 0;
}
