/* strbuf.c - see strbuf.h. */
#include "base/strbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"

#define SB_MAX ((size_t)1 << 30)

void ttsm__sb_add(ttsm__sb *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n < b->cap) { /* the common case: it fits */
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
        return;
    }
    /* Start at 256 bytes: canonical keys and messages fit in one allocation. */
    size_t need = b->len + n + 1;
    if (b->cap == 0 && need < 256)
        need = 256;
    if (n > SB_MAX || ttsm__grow((void **)&b->p, &b->cap, need, 1, SB_MAX) != 0) {
        b->failed = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void ttsm__sb_adds(ttsm__sb *b, const char *s)
{
    ttsm__sb_add(b, s, strlen(s));
}

void ttsm__sb_addf(ttsm__sb *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        ttsm__sb_add(b, small, (size_t)n);
        return;
    }
    char *big = ttsm__malloc((size_t)n + 1);
    if (!big) {
        b->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    ttsm__sb_add(b, big, (size_t)n);
    ttsm__free(big);
}

const char *ttsm__sb_str(const ttsm__sb *b)
{
    return b->p && !b->failed ? b->p : "";
}

char *ttsm__sb_take(ttsm__sb *b)
{
    if (b->failed) {
        ttsm__sb_free(b);
        return NULL;
    }
    if (!b->p)
        ttsm__sb_add(b, "", 0);
    char *p = b->failed ? NULL : b->p;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

void ttsm__sb_free(ttsm__sb *b)
{
    ttsm__free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void ttsm__sb_addu(ttsm__sb *b, uint64_t v)
{
    char digits[20];
    size_t n = 0;
    do {
        digits[sizeof digits - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    ttsm__sb_add(b, digits + sizeof digits - n, n);
}
