/* convert.c - floating-point conversions for the `dtype` load param,
 * written from the IEEE 754 rules: round to nearest, ties to even;
 * overflow to infinity; subnormals kept. What PyTorch does (Tensor.to on
 * its scalar CPU path, which the tests compare against bit for bit) fixes
 * the rest: float64 goes through float32 first (torch rounds twice too); a
 * NaN becomes the quiet NaN sign|0x7e00 in float16 and 0x7fc0 (no sign) in
 * bfloat16; float16 NaNs widen with the quiet bit set, bfloat16 ones as
 * they are. The vectorised (AVX2) path of torch 1.13 writes 0xffff for a
 * bfloat16 NaN instead: docs/manager.md says so. */
#include <string.h>

#include "base/convert.h"

ttsm_dtype ttsm__load_dtype(const char *name)
{
    if (!name)
        return TTSM_DTYPE_INVALID;
    if (strcmp(name, "float16") == 0)
        return TTSM_DTYPE_F16;
    if (strcmp(name, "bfloat16") == 0)
        return TTSM_DTYPE_BF16;
    if (strcmp(name, "float32") == 0)
        return TTSM_DTYPE_F32;
    return TTSM_DTYPE_INVALID;
}

const char *ttsm__load_dtype_name(ttsm_dtype d)
{
    switch (d) {
    case TTSM_DTYPE_F16: return "float16";
    case TTSM_DTYPE_BF16: return "bfloat16";
    case TTSM_DTYPE_F32: return "float32";
    default: return NULL;
    }
}

int ttsm__converts(ttsm_dtype from, ttsm_dtype to)
{
    int src = from == TTSM_DTYPE_F16 || from == TTSM_DTYPE_BF16 || from == TTSM_DTYPE_F32 ||
              from == TTSM_DTYPE_F64;
    return src && ttsm__load_dtype_name(to) && from != to;
}

static uint32_t f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0x1f)
        return sign | 0x7f800000u | (mant ? 0x400000u | mant << 13 : 0);
    if (exp == 0) {
        if (mant == 0)
            return sign;
        uint32_t e = 113; /* the exponent of 2^-14, biased for float32 */
        while (!(mant & 0x400u)) {
            mant <<= 1;
            e--;
        }
        return sign | e << 23 | (mant & 0x3ffu) << 13;
    }
    return sign | (exp + 112) << 23 | mant << 13;
}

/* Keeps `bits` >> `shift`, rounding the dropped bits to nearest, ties to even. */
static uint32_t round_shift(uint32_t bits, uint32_t shift)
{
    uint32_t kept = bits >> shift, rest = bits & ((1u << shift) - 1), half = 1u << (shift - 1);
    return kept + (rest > half || (rest == half && (kept & 1)));
}

static uint16_t f32_to_f16(uint32_t x)
{
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t exp = (x >> 23) & 0xffu, mant = x & 0x7fffffu;
    if (exp == 0xff)
        return (uint16_t)(sign | (mant ? 0x7e00u : 0x7c00u));
    int e = (int)exp - 112; /* the float16 biased exponent */
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) {
        /* float16 subnormal: units of 2^-24; below 2^-25 everything is 0. */
        if (e < -10)
            return sign;
        return (uint16_t)(sign | round_shift(mant | 0x800000u, (uint32_t)(14 - e)));
    }
    /* A carry out of the mantissa moves into the exponent, up to infinity. */
    return (uint16_t)(sign | (((uint32_t)e << 10) + round_shift(mant, 13)));
}

static uint16_t f32_to_bf16(uint32_t x)
{
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return 0x7fc0u;
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

static uint32_t load_f32_bits(const unsigned char *p, ttsm_dtype from)
{
    switch (from) {
    case TTSM_DTYPE_F16: {
        uint16_t h = (uint16_t)(p[0] | p[1] << 8);
        return f16_to_f32(h);
    }
    case TTSM_DTYPE_BF16:
        return (uint32_t)(p[0] | p[1] << 8) << 16;
    case TTSM_DTYPE_F64: {
        uint64_t u = 0;
        for (int i = 7; i >= 0; i--)
            u = u << 8 | p[i];
        double d;
        memcpy(&d, &u, sizeof d);
        float f = (float)d; /* round to nearest, as torch's static_cast */
        uint32_t b;
        memcpy(&b, &f, sizeof b);
        return b;
    }
    default:
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }
}

void ttsm__convert(void *dst, ttsm_dtype to, const void *src, ttsm_dtype from, uint64_t n)
{
    const unsigned char *s = src;
    unsigned char *d = dst;
    uint32_t in = from == TTSM_DTYPE_F64 ? 8 : from == TTSM_DTYPE_F32 ? 4 : 2;
    for (uint64_t i = 0; i < n; i++, s += in) {
        uint32_t x = load_f32_bits(s, from);
        if (to == TTSM_DTYPE_F32) {
            for (int k = 0; k < 4; k++)
                *d++ = (unsigned char)(x >> (8 * k));
            continue;
        }
        uint16_t h = to == TTSM_DTYPE_F16 ? f32_to_f16(x) : f32_to_bf16(x);
        *d++ = (unsigned char)h;
        *d++ = (unsigned char)(h >> 8);
    }
}
