/* convert.h - floating-point conversion at load (convert.c): the `dtype`
 * load param's names and the element conversions, bit-exact with
 * PyTorch's Tensor.to() on its reference (non-vectorised) CPU path. */
#ifndef TTSM_BASE_CONVERT_H
#define TTSM_BASE_CONVERT_H

#include "ttsm.h"

/* "float16" -> F16, "bfloat16" -> BF16, "float32" -> F32; anything else
 * TTSM_DTYPE_INVALID. */
ttsm_dtype ttsm__load_dtype(const char *name);
/* The param value of a load dtype ("float16"), or NULL. */
const char *ttsm__load_dtype_name(ttsm_dtype d);
/* 1 when tensors of `from` are converted to `to` at load: both floating
 * point (from F16, BF16, F32, F64; to F16, BF16, F32) and different. */
int ttsm__converts(ttsm_dtype from, ttsm_dtype to);
/* Converts `n` elements (little-endian, unaligned allowed) from `src` to
 * `dst`; the types must satisfy ttsm__converts. */
void ttsm__convert(void *dst, ttsm_dtype to, const void *src, ttsm_dtype from, uint64_t n);

#endif
