/* fuzz_torch_pickle.c - libFuzzer harness for the restricted unpickler and
 * the flattener: the input is a data.pkl; persistent ids get zero-filled
 * memory storages (up to a small total), and a loaded object is flattened
 * into a checkpoint. Failures must carry their code and a message naming the
 * file; on success every tensor byte is touched and every metadata value
 * must be JSON. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "fuzz_common.h"
#include "formats/torch_pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SLOTS 64
#define MAX_TOTAL (4u << 20)

typedef struct slots {
    const char *key[MAX_SLOTS];
    size_t len[MAX_SLOTS];
    uint64_t nbytes[MAX_SLOTS];
    size_t n;
    uint64_t total;
} slots;

static ttsm_status storage(void *ctx, const char *key, size_t len, uint64_t nbytes,
                           uint32_t elem_size, uint64_t off, uint32_t *slot, ttsm_error *err)
{
    slots *s = ctx;
    (void)elem_size;
    for (size_t i = 0; i < s->n; i++)
        if (s->len[i] == len && memcmp(s->key[i], key, len) == 0) {
            *slot = (uint32_t)i;
            return TTSM_OK;
        }
    if (s->n == MAX_SLOTS || nbytes > MAX_TOTAL - s->total)
        return ttsm__err(err, TTSM_ERR_FORMAT, "fuzz.pt", "harness limit",
                         "storage at offset %llu too large", (unsigned long long)off);
    s->key[s->n] = key;
    s->len[s->n] = len;
    s->nbytes[s->n] = nbytes;
    s->total += nbytes;
    *slot = (uint32_t)s->n++;
    return TTSM_OK;
}

static void check_error(ttsm_status st, const ttsm_error *err)
{
    if (err->code != st || !strstr(err->message, "fuzz.pt"))
        abort();
    fuzz_check_message(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ttsm_error err;
    slots s;
    memset(&s, 0, sizeof s);
    ttsm__pickle_arena *a = ttsm__pickle_arena_new();
    if (!a)
        return 0;
    ttsm__pickle_src src = {data, size, "fuzz.pt", "archive/data.pkl", 0, storage, &s};
    ttsm__pv *root;
    size_t used;
    int truncated;
    ttsm_status st = ttsm__pickle_load(a, &src, &root, &used, &truncated, &err);
    if (st != TTSM_OK) {
        check_error(st, &err);
        ttsm__pickle_arena_free(a);
        return 0;
    }
    if (used > size)
        abort();
    ttsm_checkpoint *ck = NULL;
    uint32_t idx[MAX_SLOTS];
    if (ttsm__ckpt_new("fuzz.pt", NULL, &ck, &err) != TTSM_OK) {
        ttsm__pickle_arena_free(a);
        return 0;
    }
    st = TTSM_OK;
    for (size_t i = 0; i < s.n && st == TTSM_OK; i++) {
        void *mem = s.nbytes[i] ? ttsm__calloc(1, (size_t)s.nbytes[i]) : NULL;
        if (s.nbytes[i] && !mem)
            st = TTSM_ERR_OUT_OF_MEMORY;
        else
            st = ttsm__ckpt_add_storage(ck, UINT32_MAX, 0, s.nbytes[i], mem, &idx[i], &err);
    }
    if (st == TTSM_OK) {
        st = ttsm__torch_flatten(ck, root, a, idx, s.n, "fuzz.pt", &err);
        if (st != TTSM_OK)
            check_error(st, &err);
    }
    if (st == TTSM_OK) {
        fuzz_check_checkpoint(ck, size, TTSM__MAX_RANK);
    }
    ttsm_checkpoint_close(ck);
    ttsm__pickle_arena_free(a);
    return 0;
}
