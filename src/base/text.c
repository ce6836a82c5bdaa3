/* text.c - checks and quoting for bytes that come from files: strict UTF-8
 * validation, and the one sanitiser for text from files that reaches a
 * message or a terminal: control bytes (C0, DEL, C1) and bytes that break
 * UTF-8 become '?', long text is cut with "...". ttsm__err() runs every
 * message through it, so no reader can forget. */
#include "base/text.h"

#include <stdint.h>
#include <string.h>

#include "ttsm.h"

size_t ttsm__utf8_check(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* Headers are mostly ASCII: 32 bytes at a time while they are. */
        while (n - i >= 32) {
            uint64_t w[4];
            memcpy(w, s + i, 32);
            if ((w[0] | w[1] | w[2] | w[3]) & 0x8080808080808080ull)
                break;
            i += 32;
        }
        while (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= n)
            break;
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

/* The character at s (n > 0 bytes left): @return 1 to show it as it is, 0
 * to show '?' instead - for a byte that breaks strict UTF-8, a C0 control
 * or DEL, or a C1 control (U+0080-U+009F, which some terminals obey as
 * escapes: U+009B is CSI). *len gets the bytes it takes. */
static int shown(const unsigned char *s, size_t n, size_t *len)
{
    *len = 1;
    if (s[0] < 0x80)
        return s[0] >= 0x20 && s[0] != 0x7f;
    size_t l = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
    if (l > n || ttsm__utf8_check(s, l) != l)
        return 0;
    *len = l;
    return !(s[0] == 0xc2 && s[1] <= 0x9f);
}

const char *ttsm__printable(const char *s, size_t n, char *out, size_t cap)
{
    /* Room for the text, or for a cut text and the "..." that marks it. */
    size_t room = n < cap ? n : (cap > 4 ? cap - 4 : 0);
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < n) {
        size_t l;
        int show = shown(u + i, n - i, &l);
        if (o + (show ? l : 1) > room)
            break;
        if (show)
            memcpy(out + o, s + i, l);
        else
            out[o] = '?';
        o += show ? l : 1;
        i += l;
    }
    if (i < n && cap > 4) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

void ttsm__sanitize(char *s)
{
    unsigned char *u = (unsigned char *)s;
    size_t n = strlen(s), i = 0, o = 0;
    while (i < n) {
        size_t l;
        if (shown(u + i, n - i, &l)) {
            memmove(u + o, u + i, l);
            o += l;
        } else {
            u[o++] = '?';
        }
        i += l;
    }
    u[o] = '\0';
}

const char *ttsm_text_printable(const char *s, char *out, size_t out_size)
{
    if (!out || out_size == 0)
        return out;
    return ttsm__printable(s ? s : "", s ? strlen(s) : 0, out, out_size);
}
