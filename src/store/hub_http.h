/* hub_http.h - one HTTP connection of the Hub client (hub_http.c, on
 * libcurl): one request at a time, redirects never followed by curl (the
 * caller decides, so it controls where the token goes), caps on headers,
 * a connect and a stall timeout, and a cancel flag checked while waiting. */
#ifndef TTSM_STORE_HUB_HTTP_H
#define TTSM_STORE_HUB_HTTP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define TTSM__URL_MAX 8192          /* a Location or Link longer than this is refused */
#define TTSM__HEADERS_MAX (64 << 10) /* all header lines of one response */

typedef struct ttsm__http_limits {
    long connect_ms; /* to open the connection */
    long stall_ms;   /* with no byte received for this long, the request fails */
} ttsm__http_limits;

/* What the Hub client reads of a response. Strings are "" when absent;
 * sizes are -1 when absent. A header too long for its field sets
 * `overlong` to its name, and the request fails. */
typedef struct ttsm__http_resp {
    long status;
    char location[TTSM__URL_MAX];
    char link_next[TTSM__URL_MAX]; /* the `rel="next"` URL of a Link header */
    char etag[160], linked_etag[160];
    char commit[64];               /* X-Repo-Commit */
    char error_code[64];           /* X-Error-Code */
    char error_message[256];       /* X-Error-Message */
    char content_range[96];
    char retry_after[64];
    int64_t content_length, linked_size;
    const char *overlong;
} ttsm__http_resp;

/* Clears a response: no status, "" strings, sizes -1. */
void ttsm__http_resp_reset(ttsm__http_resp *r);
/* Reads one header line (as received, with its CRLF) into `r`; a status
 * line ("HTTP/1.1 302 Found") starts a new response. Untrusted input
 * (tests/fuzz/fuzz_hub_listing.c). @return 0, or -1 when a value is too
 * long for its field (`r->overlong` names it). */
int ttsm__http_parse_header(ttsm__http_resp *r, const char *line, size_t n);

/* Receives body bytes of a 2xx answer. @return 0 to go on, nonzero to stop
 * the transfer (reported as TTSM__HTTP_ABORTED). */
typedef int (*ttsm__http_sink)(void *user, const ttsm__http_resp *resp, const char *data,
                               size_t n);

typedef struct ttsm__http ttsm__http;

enum {
    TTSM__HTTP_DONE = 0,    /* an answer arrived whole (any status) */
    TTSM__HTTP_NETWORK = 1, /* connection failed, broke, stalled or was cut short: retry */
    TTSM__HTTP_ABORTED = 2, /* the sink stopped it, or a header broke a cap */
    TTSM__HTTP_CANCELLED = 3,
    TTSM__HTTP_FATAL = 4    /* TLS verification, a malformed URL, out of memory */
};

/* Creates a connection (connections are reused between requests).
 * `cancel` (may be NULL) is read while a request waits. @return NULL when
 * out of memory or libcurl cannot start. */
ttsm__http *ttsm__http_open(const ttsm__http_limits *lim, const _Atomic int *cancel);
void ttsm__http_close(ttsm__http *c);

/* One request. `headers` (NULL-terminated, may be NULL) are added as they
 * are; `range_from` > 0 asks for "Range: bytes=N-". For a non-2xx answer
 * the body is read and dropped (at most 64 KiB). `why` gets a one-line
 * reason for any result but DONE. @return one of the TTSM__HTTP_* codes. */
int ttsm__http_do(ttsm__http *c, const char *method, const char *url, const char *const *headers,
                  uint64_t range_from, ttsm__http_sink sink, void *user, ttsm__http_resp *resp,
                  char *why, size_t why_size);

/* Resolves `ref` (absolute or relative) against `base` into `out`.
 * @return 0, or -1 (malformed, not http(s), or too long). */
int ttsm__url_resolve(const char *base, const char *ref, char *out, size_t size);
/* "scheme://host:port" of an http(s) URL, lower-cased, with the default
 * port written out, so two URLs of one server compare equal. @return 0 or -1. */
int ttsm__url_origin(const char *url, char *out, size_t size);
/* 1 when a Location names only a path (no scheme or host): a relative redirect. */
int ttsm__url_is_relative(const char *ref);
/* Copies `url` without its query and fragment (signed CDN URLs carry
 * secrets there), for messages. */
void ttsm__url_for_message(const char *url, char *out, size_t size);

#endif
