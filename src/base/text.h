/* text.h - strict UTF-8 validation and the one sanitiser for bytes that
 * come from files and reach a message (text.c). */
#ifndef TTSM_BASE_TEXT_H
#define TTSM_BASE_TEXT_H

#include <stddef.h>

/* @return the offset of the first byte that breaks strict UTF-8 (no
 * overlong forms, surrogates or code points past U+10FFFF), or `n`. */
size_t ttsm__utf8_check(const unsigned char *s, size_t n);

/* Copies at most `cap - 1` bytes of `s` (length `n`) into `out` for a
 * message: control bytes (C0, DEL, the C1 range U+0080-U+009F) and bytes
 * that break strict UTF-8 become '?', a cut is marked "..." and never
 * splits a character. `cap` must be at least 1. @return out. */
const char *ttsm__printable(const char *s, size_t n, char *out, size_t cap);

/* The same rule in place on a NUL-terminated string (it never grows).
 * ttsm__err() applies it to every message, hint and attempt. */
void ttsm__sanitize(char *s);

#endif
