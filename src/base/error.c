/* error.c - status names, the is-a tree and filling ttsm_error (every
 * message sanitised on the way in, base/text.h).
 * Everything derives from TTSM_STATUS_MAP in ttsm.h, so a new code cannot be
 * added without a name, a description and a parent. */
#include "base/error.h"
#include "base/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    const char *description;
    ttsm_status parent;
} status_table[] = {
#define TTSM__ROW(n, value, parent, desc) [value] = {"TTSM_" #n, desc, TTSM_##parent},
    TTSM_STATUS_MAP(TTSM__ROW)
#undef TTSM__ROW
};

static int valid_status(ttsm_status code)
{
    return (int)code >= 0 && (int)code < (int)TTSM_STATUS_COUNT_;
}

const char *ttsm_status_name(ttsm_status code)
{
    return valid_status(code) ? status_table[code].name : "TTSM_STATUS_UNKNOWN";
}

const char *ttsm_status_description(ttsm_status code)
{
    return valid_status(code) ? status_table[code].description : "unknown status code";
}

int ttsm_status_is(ttsm_status code, ttsm_status category)
{
    if (!valid_status(code) || !valid_status(category))
        return 0;
    /* Walk up the tree; a root is its own parent. Depth is at most 3. */
    for (;;) {
        if (code == category)
            return 1;
        ttsm_status parent = status_table[code].parent;
        if (parent == code)
            return 0;
        code = parent;
    }
}

void ttsm_error_clear(ttsm_error *err)
{
    if (!err)
        return;
    err->code = TTSM_OK;
    err->message[0] = '\0';
    err->hint[0] = '\0';
    err->n_attempts = 0;
    err->n_attempts_dropped = 0;
}

static const char ellipsis[] = "...";

TTSM__PRINTF(3, 0)
static int vformat_trunc(char *buf, size_t size, const char *fmt, va_list ap)
{
    if (size == 0)
        return 1;
    int n = vsnprintf(buf, size, fmt, ap);
    if (n < 0) {
        buf[0] = '\0';
        return 1;
    }
    if ((size_t)n < size)
        return 0;
    if (size > sizeof ellipsis)
        memcpy(buf + size - sizeof ellipsis, ellipsis, sizeof ellipsis);
    return 1;
}

int ttsm__format_trunc(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int t = vformat_trunc(buf, size, fmt, ap);
    va_end(ap);
    return t;
}

const char *ttsm__path_tail(const char *path, size_t room)
{
    size_t n = strlen(path);
    if (n <= room)
        return path;
    if (room <= sizeof ellipsis - 1)
        return path + n;
    const char *t = path + n - (room - (sizeof ellipsis - 1));
    const char *slash = strchr(t, '/');
    return slash && slash[1] && slash - t < 64 ? slash : t;
}

ttsm_status ttsm__err(ttsm_error *err, ttsm_status code, const char *subject, const char *what,
                      const char *fmt, ...)
{
    if (!err)
        return code;
    ttsm_error_clear(err);
    err->code = code;
    char detail[TTSM_ERROR_MESSAGE_MAX];
    detail[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vformat_trunc(detail, sizeof detail, fmt, ap);
        va_end(ap);
    }
    const char *w = (what && *what) ? what : ttsm_status_description(code);
    if (subject && *subject) {
        /* A subject too long to leave room for the rest (a file deep in the
         * tree) loses its head, so the rule and the file's name still show. */
        size_t rest = 2 + strlen(w) + (*detail ? 2 + strlen(detail) : 0);
        size_t half = sizeof err->message / 2;
        size_t room = rest < half ? sizeof err->message - 1 - rest : half;
        const char *s = ttsm__path_tail(subject, room);
        ttsm__format_trunc(err->message, sizeof err->message, "%s%s: %s%s%s",
                           s == subject ? "" : ellipsis, s, w, *detail ? ": " : "", detail);
    } else
        ttsm__format_trunc(err->message, sizeof err->message, "%s%s%s", w, *detail ? ": " : "",
                           detail);
    /* Messages quote names and values from files: here, once, every byte
     * that a terminal could obey or that breaks UTF-8 becomes '?'. */
    ttsm__sanitize(err->message);
    return code;
}

void ttsm__err_hint(ttsm_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vformat_trunc(err->hint, sizeof err->hint, fmt, ap);
    va_end(ap);
    ttsm__sanitize(err->hint);
}

void ttsm__err_add_attempt(ttsm_error *err, ttsm_status code, const char *message)
{
    if (!err)
        return;
    if (err->n_attempts >= TTSM_ERROR_MAX_ATTEMPTS) {
        err->n_attempts_dropped++;
        return;
    }
    ttsm_error_attempt *a = &err->attempts[err->n_attempts++];
    a->code = code;
    ttsm__format_trunc(a->message, sizeof a->message, "%s", message ? message : "");
    ttsm__sanitize(a->message);
}
