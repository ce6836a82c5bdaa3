/* json.h - jansson helpers shared by every JSON reader (json.c): telling
 * jansson's out-of-memory failures from bad JSON, so a parse that ran out of
 * memory is TTSM_ERR_OUT_OF_MEMORY, not a format error blamed on the file
 * (found by tests/unit/test_torture.c); a value's text and type name. */
#ifndef TTSM_BASE_JSON_H
#define TTSM_BASE_JSON_H

#include <jansson.h>

/* 1 when a failed json_load* ran out of memory: jansson says so with
 * json_error_out_of_memory, or - when its first allocation fails, before
 * it reads a byte (2.14's lexer set-up) - returns with no error text. Every
 * real syntax error has a text. */
static inline int ttsm__json_oom(const json_error_t *je)
{
    return json_error_code(je) == json_error_out_of_memory || je->text[0] == '\0';
}

/* The JSON text of `v` (any type) in a ttsm__malloc'd NUL-terminated
 * string, or NULL when out of memory. */
char *ttsm__json_text(const json_t *v);

/* jansson's error as "<rule> near '<excerpt>' at line L, column C (byte P)":
 * the excerpt of the file is at most 16 bytes, sanitised (base/text.h).
 * Writes `out`. @return out. */
const char *ttsm__json_error_text(const json_error_t *je, char *out, size_t size);

/* "object", "array", "string", "integer", "real", "true", "false", "null". */
const char *ttsm__json_kind(const json_t *v);

#endif
