/* strbuf.h - a growable string for building messages, paths and
 * canonical forms. A failed allocation sets `failed` and turns later calls
 * into no-ops, so callers check once at the end. */
#ifndef TTSM_STRBUF_INTERNAL_H
#define TTSM_STRBUF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct ttsm__sb {
    char *p;     /* NUL-terminated once anything was added; may be NULL */
    size_t len, cap;
    int failed;
} ttsm__sb;

void ttsm__sb_add(ttsm__sb *b, const char *s, size_t n);
void ttsm__sb_adds(ttsm__sb *b, const char *s);
void ttsm__sb_addf(ttsm__sb *b, const char *fmt, ...) TTSM__PRINTF(2, 3);
/* A decimal number, formatted by hand for the cache key's hot path. */
void ttsm__sb_addu(ttsm__sb *b, uint64_t v);
/* The string ("" when empty); valid until the next add or free. */
const char *ttsm__sb_str(const ttsm__sb *b);
/* Hands the buffer over (caller frees with ttsm__free); NULL if failed. */
char *ttsm__sb_take(ttsm__sb *b);
void ttsm__sb_free(ttsm__sb *b);

#endif
