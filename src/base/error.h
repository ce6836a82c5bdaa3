/* error.h - how library code fills a ttsm_error. One function sets
 * the code and the one-line message in the fixed shape, so every message in
 * the library reads the same way. */
#ifndef TTSM_ERROR_INTERNAL_H
#define TTSM_ERROR_INTERNAL_H

#include "ttsm.h"

#if defined(__GNUC__)
#define TTSM__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TTSM__PRINTF(a, b)
#endif

/* Sets err->code and err->message to "<subject>: <what>: <detail>" (the
 * subject part is left out when NULL or empty), clears hint and attempts.
 * Safe with err == NULL. @return code, so callers can `return ttsm__err(...)`. */
ttsm_status ttsm__err(ttsm_error *err, ttsm_status code, const char *subject, const char *what,
                      const char *fmt, ...) TTSM__PRINTF(5, 6);

/* Sets the hint of an error already set. */
void ttsm__err_hint(ttsm_error *err, const char *fmt, ...) TTSM__PRINTF(2, 3);

/* Appends one fallback attempt (code + the message it had). */
void ttsm__err_add_attempt(ttsm_error *err, ttsm_status code, const char *message);

/* The end of `path` that fits in `room` bytes once "..." is put in front of
 * it, cut at a '/' when one is near: what a fixed-size message or hint keeps
 * of a deep path (the file's name and the folders nearest it). `path` itself
 * when it fits; print it as "%s%s", tail == path ? "" : "...", tail. */
const char *ttsm__path_tail(const char *path, size_t room);

/* Formats into a fixed buffer; when it does not fit, the end is replaced by
 * "..." so truncation is always visible. @return 1 if truncated. */
int ttsm__format_trunc(char *buf, size_t size, const char *fmt, ...) TTSM__PRINTF(3, 4);

#endif
