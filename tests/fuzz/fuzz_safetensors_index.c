/* fuzz_safetensors_index.c - libFuzzer harness for the sharded-index parser:
 * the JSON is parsed from memory (shard names checked, shards listed, the
 * map and the metadata kept), then opened through detection, which must stop
 * at the shards without touching the file system. Every refusal's message
 * must be printable (fuzz_common.h). */
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "formats/checkpoint.h"
#include "fuzz_common.h"
#include "formats/safetensors_index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ttsm__st_index ix;
    ttsm_error err;
    if (ttsm__st_index_parse("fuzz.index.json", data, size, &ix, &err) == TTSM_OK) {
        volatile size_t sink = 0;
        for (size_t i = 0; i < ix.n_shards; i++) {
            const char *s = ix.shards[i];
            /* Listed shards are plain, distinct, sorted names. */
            if (!*s || strchr(s, '/') || strchr(s, '\\') || strcmp(s, "..") == 0 ||
                (i > 0 && strcmp(ix.shards[i - 1], s) >= 0))
                __builtin_trap();
            sink += strlen(s);
        }
        /* Every map entry is found by its name and names a listed shard. */
        for (size_t i = 0; i < ix.n_map; i++) {
            const ttsm__st_map_entry *e = &ix.map[i];
            if (e->shard >= ix.n_shards || strlen(e->name) != e->name_len ||
                ttsm__st_index_find(&ix, e->name, e->name_len) != (long)i)
                __builtin_trap();
        }
        /* Metadata values are valid JSON text. */
        for (size_t i = 0; i < ix.n_meta; i++) {
            json_t *v = json_loads(ix.meta[i].json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
            if (!v || !ix.meta[i].type[0])
                __builtin_trap();
            sink += strlen(ix.meta[i].key);
            json_decref(v);
        }
        (void)sink;
        ttsm__st_index_free(&ix);
    } else {
        fuzz_check_message(&err);
    }
    ttsm_checkpoint *ck;
    if (ttsm__checkpoint_open_memory(data, size, "fuzz.index.json", NULL, &ck, &err) == TTSM_OK)
        ttsm_checkpoint_close(ck); /* a safetensors file, not an index */
    else
        fuzz_check_message(&err);
    return 0;
}
