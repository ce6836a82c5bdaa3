/* dtype.h - byte sizes of element types (dtype.c), computed from the one
 * table in ttsm.h's TTSM_DTYPE_MAP. */
#ifndef TTSM_BASE_DTYPE_H
#define TTSM_BASE_DTYPE_H

#include "ttsm.h"

/* Computes the byte size of `n_elements` of `dtype`, checking block
 * divisibility and overflow. @return 0 or -1. */
int ttsm__dtype_bytes(ttsm_dtype dtype, uint64_t n_elements, uint64_t *out);

#endif
