/* text.c - checks and quoting for bytes that come from files: strict UTF-8
 * validation, and the one sanitiser every message quoting file content
 * goes through (control bytes become '?', long text is cut with "..."). */
#include "base/text.h"

size_t ttsm__utf8_check(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the 2nd byte */
        if (c >= 0xc2 && c <= 0xdf)
            len = 2;
        else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0)
                lo = 0xa0; /* overlong */
            else if (c == 0xed)
                hi = 0x9f; /* UTF-16 surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0)
                lo = 0x90; /* overlong */
            else if (c == 0xf4)
                hi = 0x8f; /* past U+10FFFF */
        } else
            return i;
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
        i += len;
    }
    return n;
}

const char *ttsm__printable(const char *s, size_t n, char *out, size_t cap)
{
    size_t keep = n < cap - 1 ? n : (cap > 4 ? cap - 4 : 0);
    size_t i;
    for (i = 0; i < keep; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (char)(c < 0x20 || c == 0x7f ? '?' : c);
    }
    if (keep < n)
        for (int k = 0; k < 3; k++)
            out[i++] = '.';
    out[i] = '\0';
    return out;
}
