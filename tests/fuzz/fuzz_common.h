/* fuzz_common.h - what every checkpoint harness checks once a reader has
 * accepted an input: each tensor is found again by its name, lies inside
 * the input when it is backed by it, and every one of its bytes can be
 * read (so ASan sees any range the reader got wrong); every metadata entry
 * is found by its key and holds valid JSON. And what every refusal
 * promises: its message, hint and attempts hold no byte a terminal would
 * obey (C0 controls, DEL, C1 controls) and are valid UTF-8, whatever the
 * file held. A broken promise aborts. */
#ifndef TTSM_FUZZ_COMMON_H
#define TTSM_FUZZ_COMMON_H

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/text.h"
#include "formats/checkpoint.h"
#include "formats/table.h"

static inline void fuzz_check_text(const char *s)
{
    size_t n = strlen(s);
    if (ttsm__utf8_check((const unsigned char *)s, n) != n)
        abort();
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] <= 0x9f))
            abort();
    }
}

/* Every error the harnesses see goes through this. */
static inline void fuzz_check_message(const ttsm_error *err)
{
    fuzz_check_text(err->message);
    fuzz_check_text(err->hint);
    for (size_t i = 0; i < err->n_attempts; i++)
        fuzz_check_text(err->attempts[i].message);
}

static inline void fuzz_check_checkpoint(ttsm_checkpoint *ck, size_t input_size,
                                         uint32_t max_rank)
{
    volatile unsigned sum = 0;
    for (size_t i = 0; i < ttsm_checkpoint_tensor_count(ck); i++) {
        const ttsm_tensor_info *t = ttsm_checkpoint_tensor(ck, i);
        if (ttsm_checkpoint_find(ck, t->name) != t || t->rank > max_rank)
            abort();
        if (t->file_offset != UINT64_MAX &&
            (t->file_offset > input_size || t->nbytes > input_size - t->file_offset))
            abort();
        const void *p;
        ttsm_error err;
        ttsm_status st = ttsm_checkpoint_tensor_data(ck, t, &p, &err);
        if (st != TTSM_OK) {
            /* Only bytes made on first access (a deflated member) may fail
             * there - with a message, as a refusal at open would. */
            if (!ck->storages[t->storage_index].lazy || err.code != st ||
                (st != TTSM_ERR_FORMAT && st != TTSM_ERR_OUT_OF_MEMORY))
                abort();
            fuzz_check_message(&err);
            continue;
        }
        const unsigned char *b = p;
        for (uint64_t k = 0; k < t->nbytes; k++)
            sum += b[k];
        for (uint32_t k = 0; k < t->rank; k++)
            sum += (unsigned)(t->shape[k] ^ t->strides[k]);
    }
    for (size_t i = 0; i < ttsm_checkpoint_metadata_count(ck); i++) {
        const ttsm_metadata_entry *e = ttsm_checkpoint_metadata(ck, i);
        if (!e->type[0] || ttsm_checkpoint_metadata_find(ck, e->key) != e)
            abort();
        json_t *j = json_loads(e->json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (!j)
            abort();
        json_decref(j);
    }
    (void)ttsm_checkpoint_total_bytes(ck);
    (void)sum;
}

#endif
