/* hub_http.c - the Hub client's HTTP on libcurl: one easy handle per
 * connection, reset for each request. curl never follows a redirect here:
 * the caller does, so it decides which redirects to take and whether the
 * token goes along. TLS verification is always on; only http and https. */
#define _GNU_SOURCE
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "base/alloc.h"
#include "store/hub_http.h"

#define ERROR_BODY_MAX (64 << 10) /* what is read of a non-2xx body before giving up on it */
#define BUFFER_BYTES (512L << 10)

struct ttsm__http {
    CURL *curl;
    ttsm__http_limits lim;
    const _Atomic int *cancel;
    /* the request in flight */
    ttsm__http_resp *resp;
    ttsm__http_sink sink;
    void *sink_user;
    size_t header_bytes, error_body;
    uint64_t last_active_ms;
    int stalled, cancelled, sink_stopped, header_broke;
};

/* libcurl's global set-up must run once before any handle exists and is
 * not undone: it is state the dependency forces on the process. */
static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_ok;

static void global_init(void)
{
    global_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

ttsm__http *ttsm__http_open(const ttsm__http_limits *lim, const _Atomic int *cancel)
{
    pthread_once(&global_once, global_init);
    if (!global_ok)
        return NULL;
    ttsm__http *c = ttsm__calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->curl = curl_easy_init();
    if (!c->curl) {
        ttsm__free(c);
        return NULL;
    }
    c->lim = *lim;
    c->cancel = cancel;
    return c;
}

void ttsm__http_close(ttsm__http *c)
{
    if (!c)
        return;
    curl_easy_cleanup(c->curl);
    ttsm__free(c);
}

/* ---- response headers ---------------------------------------------------- */

void ttsm__http_resp_reset(ttsm__http_resp *r)
{
    memset(r, 0, sizeof *r);
    r->content_length = -1;
    r->linked_size = -1;
}

static int name_is(const char *line, size_t name_len, const char *name)
{
    return strlen(name) == name_len && strncasecmp(line, name, name_len) == 0;
}

/* A decimal size with no sign, no spaces inside and at most 18 digits.
 * @return the value, or -1 when it is not one. */
static int64_t parse_size(const char *s, size_t n)
{
    if (n == 0 || n > 18)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int set_field(ttsm__http_resp *r, char *field, size_t cap, const char *v, size_t n,
                     const char *name)
{
    if (n >= cap) {
        r->overlong = name;
        return -1;
    }
    memcpy(field, v, n);
    field[n] = '\0';
    return 0;
}

/* Link: <url>; rel="next", <url2>; rel="prev" - keeps the next one. */
static int parse_link(ttsm__http_resp *r, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == ','))
            i++;
        if (i >= n || v[i] != '<')
            return 0;
        size_t start = ++i;
        while (i < n && v[i] != '>')
            i++;
        if (i >= n)
            return 0;
        size_t end = i++;
        size_t params = i;
        while (i < n && v[i] != ',')
            i++;
        /* rel="next" or rel=next among the parameters */
        for (size_t k = params; k + 8 <= i; k++) {
            if (strncasecmp(v + k, "rel=", 4) != 0)
                continue;
            const char *rv = v + k + 4;
            size_t left = i - (k + 4);
            if ((left >= 6 && strncasecmp(rv, "\"next\"", 6) == 0) ||
                (left >= 4 && strncasecmp(rv, "next", 4) == 0 &&
                 (left == 4 || rv[4] == ';' || rv[4] == ' ')))
                return set_field(r, r->link_next, sizeof r->link_next, v + start, end - start,
                                 "Link");
        }
    }
    return 0;
}

int ttsm__http_parse_header(ttsm__http_resp *r, const char *line, size_t n)
{
    /* A status line starts a response (an interim 1xx is followed by another). */
    if (n >= 12 && strncmp(line, "HTTP/", 5) == 0) {
        const char *sp = memchr(line, ' ', n);
        ttsm__http_resp_reset(r);
        if (sp && (size_t)(sp - line) + 4 <= n) {
            long st = 0;
            for (int i = 1; i <= 3; i++)
                st = sp[i] >= '0' && sp[i] <= '9' && st >= 0 ? st * 10 + (sp[i] - '0') : -1;
            r->status = st > 0 ? st : 0;
        }
        return 0;
    }
    size_t len = n;
    while (len && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        len--;
    const char *colon = memchr(line, ':', len);
    if (!colon)
        return 0;
    size_t name_len = (size_t)(colon - line);
    const char *v = colon + 1;
    size_t vn = len - name_len - 1;
    while (vn && (*v == ' ' || *v == '\t'))
        v++, vn--;
    while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
        vn--;
    if (name_is(line, name_len, "location"))
        return set_field(r, r->location, sizeof r->location, v, vn, "Location");
    if (name_is(line, name_len, "link"))
        return parse_link(r, v, vn);
    if (name_is(line, name_len, "etag"))
        return set_field(r, r->etag, sizeof r->etag, v, vn, "ETag");
    if (name_is(line, name_len, "x-linked-etag"))
        return set_field(r, r->linked_etag, sizeof r->linked_etag, v, vn, "X-Linked-Etag");
    if (name_is(line, name_len, "x-repo-commit"))
        return set_field(r, r->commit, sizeof r->commit, v, vn, "X-Repo-Commit");
    if (name_is(line, name_len, "x-error-code"))
        return set_field(r, r->error_code, sizeof r->error_code, v, vn, "X-Error-Code");
    if (name_is(line, name_len, "x-error-message"))
        /* a long message is only cut: it is shown, never parsed */
        return set_field(r, r->error_message, sizeof r->error_message, v,
                         vn < sizeof r->error_message ? vn : sizeof r->error_message - 1,
                         "X-Error-Message");
    if (name_is(line, name_len, "content-range"))
        return set_field(r, r->content_range, sizeof r->content_range, v, vn, "Content-Range");
    if (name_is(line, name_len, "retry-after"))
        return set_field(r, r->retry_after, sizeof r->retry_after, v, vn, "Retry-After");
    if (name_is(line, name_len, "content-length"))
        r->content_length = parse_size(v, vn);
    else if (name_is(line, name_len, "x-linked-size"))
        r->linked_size = parse_size(v, vn);
    return 0;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *user)
{
    ttsm__http *c = user;
    size_t n = size * nitems;
    c->last_active_ms = now_ms();
    c->header_bytes += n;
    if (c->header_bytes > TTSM__HEADERS_MAX) {
        c->resp->overlong = "(all headers)";
        c->header_broke = 1;
        return 0;
    }
    if (ttsm__http_parse_header(c->resp, line, n) != 0) {
        c->header_broke = 1;
        return 0;
    }
    return n;
}

/* ---- body and progress --------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
    ttsm__http *c = user;
    size_t n = size * nmemb;
    c->last_active_ms = now_ms();
    long st = c->resp->status;
    if (st < 200 || st > 299) {
        /* An error page: nobody reads it, but it must not be unbounded. */
        c->error_body += n;
        return c->error_body > ERROR_BODY_MAX ? 0 : n;
    }
    if (c->sink && c->sink(c->sink_user, c->resp, data, n) != 0) {
        c->sink_stopped = 1;
        return 0;
    }
    return n;
}

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    ttsm__http *c = user;
    if (c->cancel && atomic_load(c->cancel)) {
        c->cancelled = 1;
        return 1;
    }
    if (c->lim.stall_ms > 0 && now_ms() - c->last_active_ms > (uint64_t)c->lim.stall_ms) {
        c->stalled = 1;
        return 1;
    }
    return 0;
}

static int is_network(CURLcode rc)
{
    switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_FAILED_INIT:
        return 0;
    default:
        return 1;
    }
}

int ttsm__http_do(ttsm__http *c, const char *method, const char *url, const char *const *headers,
                  uint64_t range_from, ttsm__http_sink sink, void *user, ttsm__http_resp *resp,
                  char *why, size_t why_size)
{
    CURL *h = c->curl;
    char errbuf[CURL_ERROR_SIZE];
    errbuf[0] = '\0';
    ttsm__http_resp_reset(resp);
    c->resp = resp;
    c->sink = sink;
    c->sink_user = user;
    c->header_bytes = c->error_body = 0;
    c->stalled = c->cancelled = c->sink_stopped = c->header_broke = 0;
    c->last_active_ms = now_ms();
    if (why_size)
        why[0] = '\0';

    struct curl_slist *list = NULL, *next;
    /* Sizes and ranges are of the stored bytes, never of a re-encoding. */
    list = curl_slist_append(list, "Accept-Encoding: identity");
    for (size_t i = 0; list && headers && headers[i]; i++) {
        if (!(next = curl_slist_append(list, headers[i]))) {
            curl_slist_free_all(list);
            list = NULL;
        } else {
            list = next;
        }
    }
    if (!list) {
        snprintf(why, why_size, "out of memory");
        return TTSM__HTTP_FATAL;
    }
    char range[32];
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->lim.connect_ms > 0 ? c->lim.connect_ms : 0L);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, BUFFER_BYTES);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "ttsm/" "0.1");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    if (range_from > 0) {
        snprintf(range, sizeof range, "%llu-", (unsigned long long)range_from);
        curl_easy_setopt(h, CURLOPT_RANGE, range);
    }
    CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(list);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    c->resp = NULL;

    if (c->cancelled) {
        snprintf(why, why_size, "cancelled");
        return TTSM__HTTP_CANCELLED;
    }
    if (c->stalled) {
        snprintf(why, why_size, "no data for %ld ms (stall timeout)", c->lim.stall_ms);
        return TTSM__HTTP_NETWORK;
    }
    if (c->header_broke) {
        snprintf(why, why_size, "the %s header is longer than this client accepts",
                 resp->overlong ? resp->overlong : "response");
        return TTSM__HTTP_ABORTED;
    }
    if (c->sink_stopped) {
        snprintf(why, why_size, "stopped by the receiver");
        return TTSM__HTTP_ABORTED;
    }
    if (rc == CURLE_WRITE_ERROR && c->error_body > ERROR_BODY_MAX)
        return TTSM__HTTP_DONE; /* the status and headers are what counts */
    if (rc != CURLE_OK) {
        snprintf(why, why_size, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
        size_t l = strlen(why);
        while (l && (why[l - 1] == '\n' || why[l - 1] == '\r'))
            why[--l] = '\0';
        return is_network(rc) ? TTSM__HTTP_NETWORK : TTSM__HTTP_FATAL;
    }
    if (resp->status < 100) {
        snprintf(why, why_size, "no HTTP status in the answer");
        return TTSM__HTTP_NETWORK;
    }
    return TTSM__HTTP_DONE;
}

/* ---- URLs ---------------------------------------------------------------- */

static int scheme_ok(CURLU *u)
{
    char *scheme = NULL;
    int ok = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
             (strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0);
    curl_free(scheme);
    return ok;
}

int ttsm__url_resolve(const char *base, const char *ref, char *out, size_t size)
{
    pthread_once(&global_once, global_init);
    CURLU *u = curl_url();
    char *full = NULL;
    int rc = -1;
    if (u && curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_URL, ref, 0) == CURLUE_OK && scheme_ok(u) &&
        curl_url_get(u, CURLUPART_URL, &full, 0) == CURLUE_OK && strlen(full) < size) {
        memcpy(out, full, strlen(full) + 1);
        rc = 0;
    }
    curl_free(full);
    curl_url_cleanup(u);
    return rc;
}

int ttsm__url_origin(const char *url, char *out, size_t size)
{
    pthread_once(&global_once, global_init);
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    int rc = -1;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK && scheme_ok(u) &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        int n = snprintf(out, size, "%s://%s:%s", scheme, host, port);
        if (n > 0 && (size_t)n < size) {
            for (char *p = out; *p; p++)
                *p = (char)tolower((unsigned char)*p);
            rc = 0;
        }
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

int ttsm__url_is_relative(const char *ref)
{
    if (ref[0] == '/' && ref[1] == '/')
        return 0; /* "//host/path" names a host */
    for (const char *p = ref; *p && *p != '/' && *p != '?' && *p != '#'; p++)
        if (*p == ':')
            return 0; /* a scheme */
    return 1;
}

void ttsm__url_for_message(const char *url, char *out, size_t size)
{
    size_t n = strcspn(url, "?#");
    if (size == 0)
        return;
    if (n >= size)
        n = size - 1;
    memcpy(out, url, n);
    out[n] = '\0';
}
