/* json.c - small jansson helpers shared by every JSON reader: the compact
 * text of a value, and the name of its type for messages. */
#include "base/alloc.h"
#include "base/json.h"

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
