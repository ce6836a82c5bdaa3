/* dtype.c - element type names and block geometry, from TTSM_DTYPE_MAP, so
 * every byte size in the library is computed from one table. */
#include <string.h>

#include "base/dtype.h"

static const struct {
    const char *name;
    unsigned block_elems, block_bytes;
} dtype_table[] = {
#define TTSM__DT_ROW(n, value, be, bb) [value] = {#n, be, bb},
    TTSM_DTYPE_MAP(TTSM__DT_ROW)
#undef TTSM__DT_ROW
};

#define N_DTYPE_SLOTS (sizeof dtype_table / sizeof dtype_table[0])

const char *ttsm_dtype_name(ttsm_dtype d)
{
    if ((unsigned)d >= N_DTYPE_SLOTS)
        return NULL;
    return dtype_table[d].name;
}

ttsm_dtype ttsm_dtype_from_name(const char *name)
{
    if (!name)
        return TTSM_DTYPE_INVALID;
    for (unsigned i = 1; i < N_DTYPE_SLOTS; i++)
        if (dtype_table[i].name && strcmp(dtype_table[i].name, name) == 0)
            return (ttsm_dtype)i;
    return TTSM_DTYPE_INVALID;
}

int ttsm_dtype_block(ttsm_dtype d, uint32_t *block_elems, uint32_t *block_bytes)
{
    if ((unsigned)d >= N_DTYPE_SLOTS || !dtype_table[d].name)
        return -1;
    if (block_elems)
        *block_elems = dtype_table[d].block_elems;
    if (block_bytes)
        *block_bytes = dtype_table[d].block_bytes;
    return 0;
}

int ttsm__dtype_bytes(ttsm_dtype dtype, uint64_t n_elements, uint64_t *out)
{
    uint32_t be, bb;
    if (ttsm_dtype_block(dtype, &be, &bb) != 0 || n_elements % be != 0)
        return -1;
    return __builtin_mul_overflow(n_elements / be, (uint64_t)bb, out) ? -1 : 0;
}
