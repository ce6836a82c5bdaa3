/* json.c - small jansson helpers shared by every JSON reader: the compact
 * text of a value, the name of its type for messages, and jansson's error
 * text with at most a short, sanitised excerpt of the file. */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/json.h"
#include "base/text.h"

#define JSON_EXCERPT_BYTES 16

char *ttsm__json_text(const json_t *v)
{
    const size_t flags = JSON_ENCODE_ANY | JSON_COMPACT;
    size_t len = json_dumpb(v, NULL, 0, flags);
    if (len == 0)
        return NULL;
    char *buf = ttsm__malloc(len + 1);
    if (!buf)
        return NULL;
    if (json_dumpb(v, buf, len, flags) != len) {
        ttsm__free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

const char *ttsm__json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "real";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    }
    return "value";
}

const char *ttsm__json_error_text(const json_error_t *je, char *out, size_t size)
{
    /* jansson ends most texts with "near '<token>'", the token being the
     * file's own bytes (for a file that is no JSON at all, its first word):
     * keep its first bytes only, so a message never carries much of a file
     * that was not meant to be read. */
    const char *text = je->text, *near = strstr(text, " near '");
    char rule[JSON_ERROR_TEXT_LENGTH], excerpt[JSON_EXCERPT_BYTES + 4];
    size_t rl = near ? (size_t)(near - text) : strlen(text);
    ttsm__printable(text, rl, rule, sizeof rule);
    if (near) {
        const char *tok = near + 7;
        size_t tl = strlen(tok);
        if (tl && tok[tl - 1] == '\'')
            tl--;
        int cut = tl > JSON_EXCERPT_BYTES;
        ttsm__printable(tok, cut ? JSON_EXCERPT_BYTES : tl, excerpt, JSON_EXCERPT_BYTES + 1);
        snprintf(out, size, "%s near '%s%s' at line %d, column %d (byte %d)", rule, excerpt,
                 cut ? "..." : "", je->line, je->column, je->position);
    } else {
        snprintf(out, size, "%s at line %d, column %d (byte %d)", rule, je->line, je->column,
                 je->position);
    }
    return out;
}
