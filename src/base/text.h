/* text.h - strict UTF-8 validation and the sanitiser for quoting bytes
 * that come from files in messages (text.c). */
#ifndef TTSM_BASE_TEXT_H
#define TTSM_BASE_TEXT_H

#include <stddef.h>

/* @return the offset of the first byte that breaks strict UTF-8 (no
 * overlong forms, surrogates or code points past U+10FFFF), or `n`. */
size_t ttsm__utf8_check(const unsigned char *s, size_t n);

/* Copies at most `cap - 1` bytes of `s` (length `n`) into `out` for a
 * message: control bytes become '?', a cut is marked "...". `cap` must be
 * at least 1. @return out. */
const char *ttsm__printable(const char *s, size_t n, char *out, size_t cap);

#endif
