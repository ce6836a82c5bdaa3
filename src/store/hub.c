/* hub.c - the Hugging Face Hub protocol, as huggingface_hub speaks it:
 * resolve URLs, HEAD metadata (X-Repo-Commit, X-Linked-Etag/ETag,
 * X-Linked-Size/Content-Length, Location), the revision and tree listings,
 * the error codes, retries with backoff and Retry-After, and downloads that
 * resume with Range, verify the etag's hash and are renamed into place
 * under a lock. Nothing the server sends is used before it is checked. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/json.h"
#include "base/path.h"
#include "base/strbuf.h"
#include "base/text.h"
#include "store/hub.h"
#include "store/hub_cache.h"
#include "store/hub_writer.h"
#include "store/resolve.h"

#define TOKEN_MAX 4096
#define BACKOFF_MAX_MS 8000u
#define RETRY_AFTER_MAX_S 60
#define FETCH_TRIES_MAX 100 /* tries that made progress are not counted, up to this */
#define WRITER_MIN (16u << 20) /* smaller files are hashed and written inline */

static const char *const kind_api[] = {"models", "datasets", "spaces"};
static const char *const kind_url[] = {"", "datasets/", "spaces/"};

/* ---- small helpers ------------------------------------------------------- */

static int is_hex(const char *s, size_t n)
{
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return i == n;
}

/* Percent-encodes `s`: unreserved characters stay, and '/' too when
 * `keep_slash` (a path, quoted per segment). */
static void quote(ttsm__sb *b, const char *s, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
            ttsm__sb_add(b, (const char *)p, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            ttsm__sb_add(b, e, 3);
        }
    }
}

static const char *printable(const char *s, char *buf, size_t cap)
{
    return ttsm__printable(s, strlen(s), buf, cap);
}

void ttsm__hub_list_free(ttsm__hub_list *l)
{
    for (size_t i = 0; l && i < l->n; i++)
        ttsm__free(l->e[i].path);
    if (l) {
        ttsm__free(l->e);
        memset(l, 0, sizeof *l);
    }
}

const ttsm__hub_entry *ttsm__hub_list_find(const ttsm__hub_list *l, const char *path)
{
    for (size_t i = 0; l && i < l->n; i++)
        if (strcmp(l->e[i].path, path) == 0)
            return &l->e[i];
    return NULL;
}

static int list_add(ttsm__hub_list *l, const char *path, int64_t size)
{
    if (ttsm__grow((void **)&l->e, &l->cap, l->n + 1, sizeof *l->e, TTSM__HUB_LIST_MAX) != 0)
        return -1;
    char *p = ttsm__strdup(path);
    if (!p)
        return -1;
    l->e[l->n].path = p;
    l->e[l->n].size = size;
    l->n++;
    return 0;
}

/* ---- set-up -------------------------------------------------------------- */

static int env_true(const char *name)
{
    const char *v = getenv(name);
    return v && (strcmp(v, "1") == 0 || strcasecmp(v, "on") == 0 || strcasecmp(v, "yes") == 0 ||
                 strcasecmp(v, "true") == 0);
}

static long env_ms(const char *name, long dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    double s = strtod(v, &end);
    if (*end || !(s > 0) || s > 86400)
        return dflt;
    long ms = (long)(s * 1000.0);
    return ms > 0 ? ms : 1;
}

/* The token, from the config, HF_TOKEN, or the token file. @return 0 with
 * `out` set ("" when there is none), -1 when it cannot go in a header. */
static int find_token(const char *given, char *out, size_t size)
{
    out[0] = '\0';
    const char *v = given;
    char file_buf[TOKEN_MAX + 1];
    if (!v && (v = getenv("HF_TOKEN")) && !*v)
        v = NULL;
    if (!v) {
        char path[PATH_MAX];
        const char *tp = getenv("HF_TOKEN_PATH"), *home = getenv("HF_HOME"), *h = getenv("HOME");
        int n = -1;
        if (tp && *tp)
            n = snprintf(path, sizeof path, "%s", tp);
        else if (home && *home)
            n = snprintf(path, sizeof path, "%s/token", home);
        else if (h && *h)
            n = snprintf(path, sizeof path, "%s/.cache/huggingface/token", h);
        /* A FIFO in the token file's place is refused, never waited on. */
        int fd = -1;
        if (n > 0 && (size_t)n < sizeof path &&
            ttsm__open_regular(path, "cannot read token", NULL, &fd, NULL, NULL) == TTSM_OK) {
            ssize_t got = read(fd, file_buf, TOKEN_MAX);
            close(fd);
            file_buf[got > 0 ? got : 0] = '\0';
            v = file_buf;
        }
    }
    if (!v)
        return 0;
    while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
        v++;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\n' || v[n - 1] == '\r'))
        n--;
    if (n >= size)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] <= ' ' || (unsigned char)v[i] >= 0x7f)
            return -1; /* a header cannot carry it (and must never be split by it) */
    memcpy(out, v, n);
    out[n] = '\0';
    return 0;
}

ttsm_status ttsm__hub_init(ttsm__hub *hub, const ttsm__hub_config *cfg, ttsm_error *err)
{
    memset(hub, 0, sizeof *hub);
    const char *ep = cfg->endpoint ? cfg->endpoint : getenv("HF_ENDPOINT");
    if (!ep || !*ep)
        ep = TTSM__HUB_DEFAULT_ENDPOINT;
    size_t n = strlen(ep);
    while (n && ep[n - 1] == '/')
        n--;
    if (n == 0 || n >= sizeof hub->endpoint)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "hub", "invalid endpoint",
                         "the endpoint (HF_ENDPOINT) is empty or longer than %zu bytes",
                         sizeof hub->endpoint - 1);
    memcpy(hub->endpoint, ep, n);
    hub->endpoint[n] = '\0';
    char shown[160];
    if (ttsm__url_origin(hub->endpoint, hub->origin, sizeof hub->origin) != 0 ||
        strchr(hub->endpoint, '?') || strchr(hub->endpoint, '#'))
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "hub", "invalid endpoint",
                         "\"%s\" is not an http:// or https:// URL (HF_ENDPOINT)",
                         printable(hub->endpoint, shown, sizeof shown));
    char token[TOKEN_MAX + 1];
    if (find_token(cfg->token, token, sizeof token) != 0)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "hub", "invalid token",
                         "the token (HF_TOKEN or the token file) has spaces, control or "
                         "non-ASCII characters, or is too long");
    if (token[0]) {
        ttsm__sb a = {0};
        ttsm__sb_addf(&a, "Authorization: Bearer %s", token);
        hub->auth = ttsm__sb_take(&a);
        memset(token, 0, sizeof token);
        if (!hub->auth)
            return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, "hub", "out of memory", "token");
    }
    hub->offline = env_true("HF_HUB_OFFLINE");
    if (cfg->cache) {
        if (snprintf(hub->cache, sizeof hub->cache, "%s", cfg->cache) >= (int)sizeof hub->cache)
            hub->cache[0] = '\0';
    } else if (ttsm__hub_dir(NULL, hub->cache, sizeof hub->cache) != 0) {
        hub->cache[0] = '\0';
    }
    if (!hub->cache[0]) {
        ttsm__hub_free(hub);
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "hub", "no hub cache",
                         "set HF_HUB_CACHE, HF_HOME or HOME, or name the cache (--hf-cache)");
    }
    hub->lim.connect_ms = cfg->connect_ms ? cfg->connect_ms : env_ms("HF_HUB_ETAG_TIMEOUT", 10000);
    hub->lim.stall_ms = cfg->stall_ms ? cfg->stall_ms : env_ms("HF_HUB_DOWNLOAD_TIMEOUT", 10000);
    hub->retries = cfg->retries;
    hub->backoff_ms = cfg->backoff_ms ? cfg->backoff_ms : 250;
    hub->log = cfg->log;
    atomic_init(&hub->cancel, 0);
    return TTSM_OK;
}

void ttsm__hub_free(ttsm__hub *hub)
{
    if (hub->auth) {
        memset(hub->auth, 0, strlen(hub->auth));
        ttsm__free(hub->auth);
    }
    hub->auth = NULL;
}

/* ---- requests ------------------------------------------------------------ */

/* The token goes to the endpoint's own origin only: never to a CDN. */
static const char *auth_for(const ttsm__hub *hub, const char *url)
{
    char o[sizeof hub->origin];
    if (!hub->auth || ttsm__url_origin(url, o, sizeof o) != 0)
        return NULL;
    return strcmp(o, hub->origin) == 0 ? hub->auth : NULL;
}

static int retryable_status(long s)
{
    return s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
}

/* How long to wait before try `attempt` + 1: Retry-After (seconds) when
 * the server gave one, else an exponential backoff. */
static uint64_t wait_ms(const ttsm__hub *hub, const ttsm__http_resp *r, unsigned attempt)
{
    if (r && r->retry_after[0]) {
        char *end;
        long s = strtol(r->retry_after, &end, 10);
        if (*end == '\0' && s >= 0)
            return (uint64_t)(s > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : s) * 1000u;
    }
    uint64_t ms = hub->backoff_ms;
    for (unsigned i = 0; i < attempt && ms < BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms;
}

/* Sleeps, waking early when the pull is cancelled. @return 1 if cancelled. */
static int nap(ttsm__hub *hub, uint64_t ms)
{
    while (ms > 0) {
        if (atomic_load(&hub->cancel))
            return 1;
        uint64_t step = ms < 50 ? ms : 50;
        struct timespec ts = {0, (long)(step * 1000000u)};
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return atomic_load(&hub->cancel) != 0;
}

typedef struct json_buf {
    ttsm__sb sb;
    int over;
} json_buf;

static int json_sink(void *user, const ttsm__http_resp *r, const char *d, size_t n)
{
    (void)r;
    json_buf *b = user;
    if (b->sb.len + n > TTSM__HUB_JSON_MAX) {
        b->over = 1;
        return 1;
    }
    ttsm__sb_add(&b->sb, d, n);
    return b->sb.failed;
}

/* One request, tried again on a broken connection, 429 or 5xx. The answer
 * (any status) is in `resp`. */
static ttsm_status send_req(ttsm__hub *hub, ttsm__http *conn, const char *method, const char *url,
                            json_buf *body, unsigned retries, ttsm__http_resp *resp,
                            const char *subject, ttsm_error *err)
{
    char shown[512], why[256];
    ttsm__url_for_message(url, shown, sizeof shown);
    for (unsigned attempt = 0;; attempt++) {
        if (atomic_load(&hub->cancel))
            return ttsm__err(err, TTSM_ERR_CANCELLED, subject, "cancelled", "%s", shown);
        const char *auth = auth_for(hub, url);
        const char *hdrs[2] = {auth, NULL};
        if (body) {
            ttsm__sb_free(&body->sb);
            body->over = 0;
        }
        int rc = ttsm__http_do(conn, method, url, hdrs, 0, body ? json_sink : NULL, body, resp,
                               why, sizeof why);
        if (rc == TTSM__HTTP_CANCELLED)
            return ttsm__err(err, TTSM_ERR_CANCELLED, subject, "cancelled", "%s", shown);
        if (rc == TTSM__HTTP_ABORTED) {
            if (body && body->sb.failed)
                return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, subject, "out of memory",
                                 "reading %s", shown);
            if (body && body->over)
                return ttsm__err(err, TTSM_ERR_FORMAT, subject, "answer too large",
                                 "%s sent more than %u bytes of JSON", shown, TTSM__HUB_JSON_MAX);
            return ttsm__err(err, TTSM_ERR_FORMAT, subject, "invalid answer", "%s: %s", shown, why);
        }
        if (rc == TTSM__HTTP_FATAL)
            return ttsm__err(err, TTSM_ERR_IO, subject, "request failed", "%s %s: %s", method,
                             shown, why);
        int again = rc == TTSM__HTTP_NETWORK || retryable_status(resp->status);
        if (!again)
            return TTSM_OK;
        if (rc == TTSM__HTTP_DONE)
            snprintf(why, sizeof why, "HTTP %ld%s%.160s", resp->status,
                     resp->error_message[0] ? ": " : "", resp->error_message);
        if (attempt >= retries) {
            ttsm__err(err, TTSM_ERR_IO, subject, "request failed", "%s %s: %s (%u tries)",
                      method, shown, why, attempt + 1);
            ttsm__err_hint(err, "check the network and the endpoint (HF_ENDPOINT); run again "
                                "later, or set HF_HUB_OFFLINE=1 to use only the cache");
            return TTSM_ERR_IO;
        }
        uint64_t ms = wait_ms(hub, rc == TTSM__HTTP_DONE ? resp : NULL, attempt);
        ttsm__logf(&hub->log, TTSM_LOG_WARN, "%s %s: %s; trying again in %.1f s", method, shown,
                   why, (double)ms / 1000.0);
        if (nap(hub, ms))
            return ttsm__err(err, TTSM_ERR_CANCELLED, subject, "cancelled", "%s", shown);
    }
}

/* The error a non-success answer means (X-Error-Code first). */
static ttsm_status answer_error(ttsm__hub *hub, const ttsm__hub_repo *repo, const char *rev,
                                const char *path, const ttsm__http_resp *r, int *why,
                                ttsm_error *err)
{
    char msg[160];
    printable(r->error_message, msg, sizeof msg);
    const char *code = r->error_code;
    const char *id = repo->id;
    long s = r->status;
    if (strcmp(code, "GatedRepo") == 0) {
        *why = TTSM__HUB_DENIED;
        ttsm__err(err, TTSM_ERR_IO, id, "gated repository",
                  "its files need an accepted licence (HTTP %ld%s%s)", s, msg[0] ? ": " : "", msg);
        ttsm__err_hint(err, "%s: open %s/%s%s, accept the conditions, then set HF_TOKEN to a "
                            "token of that account",
                       hub->auth ? "the token has not accepted them" : "no token was sent",
                       hub->endpoint, kind_url[repo->kind], id);
        return TTSM_ERR_IO;
    }
    if (strcmp(code, "RepoNotFound") == 0 || strcmp(code, "RepositoryNotFound") == 0) {
        *why = TTSM__HUB_NO_REPO;
        ttsm__err(err, TTSM_ERR_NOT_FOUND, id, "repository not found",
                  "%s has no %s repository %s (HTTP %ld)", hub->endpoint,
                  repo->kind == TTSM__REPO_DATASET ? "dataset" : "model", id, s);
        ttsm__err_hint(err, "check the repo id; a private repository needs HF_TOKEN%s",
                       hub->auth ? " (the token sent has no access)" : "");
        return TTSM_ERR_NOT_FOUND;
    }
    if (strcmp(code, "RevisionNotFound") == 0) {
        *why = TTSM__HUB_NO_REVISION;
        return ttsm__err(err, TTSM_ERR_NOT_FOUND, id, "revision not found",
                         "no revision \"%s\" (HTTP %ld)", rev, s);
    }
    if (strcmp(code, "EntryNotFound") == 0 || (s == 404 && !code[0])) {
        *why = TTSM__HUB_ABSENT;
        return ttsm__err(err, TTSM_ERR_NOT_FOUND, id, "file not in repository",
                         "%s@%s has no %s (HTTP %ld)", id, rev, path ? path : "such folder", s);
    }
    *why = s == 401 || s == 403 ? TTSM__HUB_DENIED : TTSM__HUB_FAILED;
    ttsm__err(err, TTSM_ERR_IO, id,
              s == 401 ? "unauthorized" : s == 403 ? "forbidden" : "unexpected answer",
              "HTTP %ld for %s%s%s%s", s, path ? path : "the listing", msg[0] ? " (" : "", msg,
              msg[0] ? ")" : "");
    if (s == 401 || s == 403)
        ttsm__err_hint(err, "check HF_TOKEN (or the token file under HF_HOME)");
    return TTSM_ERR_IO;
}

static void api_url(const ttsm__hub *hub, const ttsm__hub_repo *repo, ttsm__sb *u)
{
    ttsm__sb_addf(u, "%s/api/%s/%s", hub->endpoint, kind_api[repo->kind], repo->id);
}

static ttsm_status check_repo(const ttsm__hub_repo *repo, ttsm_error *err)
{
    char shown[128];
    if (repo->kind < 0 || repo->kind > 2 || !ttsm__hub_repo_id_ok(repo->id))
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "hub", "invalid repo id",
                         "\"%s\" is not a Hub repo id (org/name)",
                         printable(repo->id, shown, sizeof shown));
    return TTSM_OK;
}

/* A JSON answer: its bytes in `body` (free with ttsm__sb_free). */
static ttsm_status get_json(ttsm__hub *hub, ttsm__http *conn, const char *url,
                            const ttsm__hub_repo *repo, const char *rev, const char *path,
                            json_buf *body, ttsm__http_resp *resp, int *why, ttsm_error *err)
{
    char cur[TTSM__URL_MAX];
    memset(body, 0, sizeof *body);
    if (strlen(url) >= sizeof cur)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, repo->id, "URL too long", "listing");
    strcpy(cur, url);
    ttsm_status st = TTSM_OK;
    /* Redirects of the API stay on the endpoint (a renamed repo). */
    for (int hops = 0;; hops++) {
        st = send_req(hub, conn, "GET", cur, body, hub->retries, resp, repo->id, err);
        if (st != TTSM_OK || resp->status < 300 || resp->status > 399)
            break;
        char next[TTSM__URL_MAX], o[sizeof hub->origin];
        if (hops >= TTSM__HUB_REDIRECTS_MAX || !resp->location[0] ||
            ttsm__url_resolve(cur, resp->location, next, sizeof next) != 0 ||
            ttsm__url_origin(next, o, sizeof o) != 0 || strcmp(o, hub->origin) != 0) {
            st = ttsm__err(err, TTSM_ERR_IO, repo->id, "bad redirect",
                           "the listing redirects %s", hops >= TTSM__HUB_REDIRECTS_MAX
                                                             ? "in a loop"
                                                             : "off the endpoint");
            break;
        }
        strcpy(cur, next);
    }
    if (st == TTSM_OK && resp->status != 200)
        st = answer_error(hub, repo, rev, path, resp, why, err);
    else if (st != TTSM_OK)
        *why = TTSM__HUB_FAILED;
    if (st != TTSM_OK)
        ttsm__sb_free(&body->sb);
    return st;
}

static json_t *load_json(const char *repo_id, const char *text, size_t n, ttsm_status *st,
                         ttsm_error *err)
{
    json_error_t je;
    json_t *j = json_loadb(text ? text : "", n, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        if (ttsm__json_oom(&je) && n)
            *st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, repo_id, "out of memory", "listing");
        else
            *st = ttsm__err(err, TTSM_ERR_FORMAT, repo_id, "invalid listing",
                            "not JSON at line %d column %d: %s", je.line, je.column, je.text);
    }
    return j;
}

static ttsm_status unsafe_path(const char *repo_id, const char *p, ttsm_error *err)
{
    char shown[160];
    ttsm__err(err, TTSM_ERR_FORMAT, repo_id, "unsafe path in listing",
              "the Hub listed \"%s\", which would leave the repository's folder; nothing was "
              "written",
              printable(p, shown, sizeof shown));
    ttsm__err_hint(err, "the endpoint (HF_ENDPOINT) is broken or hostile");
    return TTSM_ERR_FORMAT;
}

ttsm_status ttsm__hub_parse_revision(const char *repo_id, const char *text, size_t n,
                                     char commit[41], ttsm__hub_list *siblings, ttsm_error *err)
{
    ttsm_status st = TTSM_OK;
    json_t *j = load_json(repo_id, text, n, &st, err);
    if (!j)
        return st;
    const char *sha = json_string_value(json_object_get(j, "sha"));
    if (!json_is_object(j) || !sha || !ttsm__hub_is_commit(sha)) {
        st = ttsm__err(err, TTSM_ERR_FORMAT, repo_id, "invalid listing",
                       "the revision answer has no 40-digit \"sha\"");
        goto out;
    }
    json_t *sib = json_object_get(j, "siblings");
    if (sib && !json_is_array(sib)) {
        st = ttsm__err(err, TTSM_ERR_FORMAT, repo_id, "invalid listing",
                       "\"siblings\" is not an array");
        goto out;
    }
    size_t i;
    json_t *e;
    json_array_foreach(sib, i, e) {
        const char *p = json_string_value(json_object_get(e, "rfilename"));
        if (!p)
            continue;
        if (!ttsm__hub_path_ok(p)) {
            st = unsafe_path(repo_id, p, err);
            goto out;
        }
        json_t *sz = json_object_get(e, "size");
        int64_t size = json_is_integer(sz) && json_integer_value(sz) >= 0 &&
                               (uint64_t)json_integer_value(sz) <= TTSM__HUB_FILE_MAX
                           ? (int64_t)json_integer_value(sz)
                           : -1;
        if (siblings && list_add(siblings, p, size) != 0) {
            st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, repo_id, "out of memory",
                           "listing (or more than %d files)", TTSM__HUB_LIST_MAX);
            goto out;
        }
    }
    memcpy(commit, sha, 41);
out:
    json_decref(j);
    return st;
}

ttsm_status ttsm__hub_parse_tree(const char *repo_id, const char *dir, const char *text, size_t n,
                                 ttsm__hub_list *out, ttsm_error *err)
{
    ttsm_status st = TTSM_OK;
    json_t *j = load_json(repo_id, text, n, &st, err);
    if (!j)
        return st;
    size_t dl = strlen(dir);
    if (!json_is_array(j)) {
        st = ttsm__err(err, TTSM_ERR_FORMAT, repo_id, "invalid listing",
                       "the tree of %s is not a JSON array", dl ? dir : "the root");
        goto out;
    }
    size_t i;
    json_t *e;
    json_array_foreach(j, i, e) {
        const char *p = json_string_value(json_object_get(e, "path"));
        const char *type = json_string_value(json_object_get(e, "type"));
        if (!p || !type)
            continue;
        if (!ttsm__hub_path_ok(p) || (dl && (strncmp(p, dir, dl) != 0 || p[dl] != '/'))) {
            st = unsafe_path(repo_id, p, err);
            goto out;
        }
        if (strcmp(type, "file") != 0)
            continue;
        json_t *sz = json_object_get(e, "size");
        if (!json_is_integer(sz) || json_integer_value(sz) < 0 ||
            (uint64_t)json_integer_value(sz) > TTSM__HUB_FILE_MAX) {
            st = ttsm__err(err, TTSM_ERR_FORMAT, repo_id, "invalid listing",
                           "the size of %s is not a number of bytes up to %llu", p,
                           (unsigned long long)TTSM__HUB_FILE_MAX);
            goto out;
        }
        if (list_add(out, p, (int64_t)json_integer_value(sz)) != 0) {
            st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, repo_id, "out of memory",
                           "listing (or more than %d files)", TTSM__HUB_LIST_MAX);
            goto out;
        }
    }
out:
    json_decref(j);
    return st;
}

ttsm_status ttsm__hub_revision(ttsm__hub *hub, ttsm__http *conn, const ttsm__hub_repo *repo,
                               const char *rev, char commit[41], ttsm__hub_list *siblings,
                               int *why, ttsm_error *err)
{
    int w = TTSM__HUB_OK;
    if (!why)
        why = &w;
    *why = TTSM__HUB_FAILED;
    ttsm_status st = check_repo(repo, err);
    if (st != TTSM_OK)
        return st;
    if (ttsm__hub_is_commit(rev) && !siblings) {
        memcpy(commit, rev, 41);
        *why = TTSM__HUB_OK;
        return TTSM_OK;
    }
    if (hub->offline)
        return ttsm__err(err, TTSM_ERR_NOT_FOUND, repo->id, "offline",
                         "HF_HUB_OFFLINE is set: the revision %s cannot be looked up", rev);
    ttsm__sb u = {0};
    api_url(hub, repo, &u);
    ttsm__sb_adds(&u, "/revision/");
    quote(&u, rev, 0);
    if (u.failed)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, repo->id, "out of memory", "URL");
    json_buf body;
    ttsm__http_resp *resp = ttsm__malloc(sizeof *resp);
    st = resp ? get_json(hub, conn, u.p, repo, rev, NULL, &body, resp, why, err)
              : ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, repo->id, "out of memory", "listing");
    ttsm__sb_free(&u);
    ttsm__free(resp);
    if (st != TTSM_OK)
        return st;
    *why = TTSM__HUB_FAILED;
    st = ttsm__hub_parse_revision(repo->id, body.sb.p, body.sb.len, commit, siblings, err);
    ttsm__sb_free(&body.sb);
    if (st == TTSM_OK)
        *why = TTSM__HUB_OK;
    return st;
}

ttsm_status ttsm__hub_tree(ttsm__hub *hub, ttsm__http *conn, const ttsm__hub_repo *repo,
                           const char *commit, const char *dir, int recursive,
                           ttsm__hub_list *out, int *why, ttsm_error *err)
{
    int w = TTSM__HUB_OK;
    if (!why)
        why = &w;
    *why = TTSM__HUB_FAILED;
    ttsm_status st = check_repo(repo, err);
    if (st != TTSM_OK)
        return st;
    if (dir[0] && !ttsm__hub_path_ok(dir))
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, repo->id, "unsafe folder",
                         "\"%s\" is not a folder inside the repository", dir);
    if (hub->offline)
        return ttsm__err(err, TTSM_ERR_NOT_FOUND, repo->id, "offline",
                         "HF_HUB_OFFLINE is set: the repository cannot be listed");
    ttsm__sb u = {0};
    api_url(hub, repo, &u);
    ttsm__sb_adds(&u, "/tree/");
    quote(&u, commit, 0);
    if (dir[0]) {
        ttsm__sb_adds(&u, "/");
        quote(&u, dir, 1);
    }
    if (recursive)
        ttsm__sb_adds(&u, "?recursive=true");
    char *url = ttsm__sb_take(&u);
    ttsm__http_resp *resp = ttsm__malloc(sizeof *resp);
    if (!url || !resp) {
        ttsm__free(url);
        ttsm__free(resp);
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, repo->id, "out of memory", "listing");
    }
    for (unsigned page = 0; url; page++) {
        json_buf body;
        st = get_json(hub, conn, url, repo, commit, dir[0] ? dir : NULL, &body, resp, why, err);
        ttsm__free(url);
        url = NULL;
        if (st != TTSM_OK) {
            if (*why == TTSM__HUB_ABSENT && dir[0]) {
                *why = TTSM__HUB_OK; /* the repository lacks the folder: nothing in it */
                ttsm_error_clear(err);
                st = TTSM_OK;
            }
            break;
        }
        *why = TTSM__HUB_FAILED;
        st = ttsm__hub_parse_tree(repo->id, dir, body.sb.p, body.sb.len, out, err);
        ttsm__sb_free(&body.sb);
        if (st != TTSM_OK)
            break;
        if (resp->link_next[0]) {
            /* The next page must come from the endpoint itself: the token goes there. */
            char o[sizeof hub->origin];
            if (page + 1 >= 10000 || ttsm__url_origin(resp->link_next, o, sizeof o) != 0 ||
                strcmp(o, hub->origin) != 0) {
                st = ttsm__err(err, TTSM_ERR_FORMAT, repo->id, "invalid listing",
                               "its next page is %s", page + 1 >= 10000 ? "past 10000 pages"
                                                                        : "not on the endpoint");
                break;
            }
            if (!(url = ttsm__strdup(resp->link_next))) {
                st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, repo->id, "out of memory", "URL");
                break;
            }
        }
        *why = TTSM__HUB_OK;
    }
    ttsm__free(resp);
    return st;
}

/* ---- metadata ------------------------------------------------------------ */

/* "W/\"abc\"" -> "abc". @return 0, or -1 when it is empty. */
static int clean_etag(const char *in, char *out, size_t size)
{
    const char *p = in;
    if (strncmp(p, "W/", 2) == 0)
        p += 2;
    size_t n = strlen(p);
    if (n >= 2 && p[0] == '"' && p[n - 1] == '"')
        p++, n -= 2;
    if (n == 0 || n >= size)
        return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

static void resolve_url(const ttsm__hub *hub, const ttsm__hub_repo *repo, const char *rev,
                        const char *path, ttsm__sb *u)
{
    ttsm__sb_addf(u, "%s/%s%s/resolve/", hub->endpoint, kind_url[repo->kind], repo->id);
    quote(u, rev, 0);
    ttsm__sb_adds(u, "/");
    quote(u, path, 1);
}

ttsm_status ttsm__hub_head(ttsm__hub *hub, ttsm__http *conn, const ttsm__hub_repo *repo,
                           const char *rev, const char *path, ttsm__hub_meta *meta, int *why,
                           ttsm_error *err)
{
    int w;
    if (!why)
        why = &w;
    *why = TTSM__HUB_FAILED;
    memset(meta->commit, 0, sizeof meta->commit);
    ttsm_status st = check_repo(repo, err);
    if (st != TTSM_OK)
        return st;
    char shown[160];
    if (!ttsm__hub_path_ok(path))
        return ttsm__err(err, TTSM_ERR_FORMAT, repo->id, "unsafe path",
                         "\"%s\" would leave the repository's folder",
                         printable(path, shown, sizeof shown));
    if (hub->offline)
        return ttsm__err(err, TTSM_ERR_NOT_FOUND, repo->id, "offline",
                         "HF_HUB_OFFLINE is set: %s cannot be looked up", path);
    ttsm__sb u = {0};
    resolve_url(hub, repo, rev, path, &u);
    if (u.failed || u.len >= TTSM__URL_MAX) {
        ttsm__sb_free(&u);
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, repo->id, "URL too long", "%s", path);
    }
    char cur[TTSM__URL_MAX];
    strcpy(cur, u.p);
    ttsm__sb_free(&u);
    ttsm__http_resp *r = ttsm__malloc(sizeof *r);
    if (!r)
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, repo->id, "out of memory", "HEAD");
    /* Relative redirects stay on the Hub (a renamed repo, the resolve
     * cache); an absolute one is where the bytes are, and is not followed. */
    int hops = 0;
    for (;;) {
        st = send_req(hub, conn, "HEAD", cur, NULL, hub->retries, r, repo->id, err);
        if (st != TTSM_OK)
            goto out;
        if (r->status < 300 || r->status > 399 || !r->location[0] ||
            !ttsm__url_is_relative(r->location))
            break;
        char next[TTSM__URL_MAX];
        if (++hops > TTSM__HUB_REDIRECTS_MAX) {
            st = ttsm__err(err, TTSM_ERR_IO, repo->id, "redirect loop",
                           "%s: more than %d redirects", path, TTSM__HUB_REDIRECTS_MAX);
            goto out;
        }
        if (ttsm__url_resolve(cur, r->location, next, sizeof next) != 0) {
            st = ttsm__err(err, TTSM_ERR_FORMAT, repo->id, "invalid redirect",
                           "%s: Location \"%s\"", path, printable(r->location, shown, sizeof shown));
            goto out;
        }
        strcpy(cur, next);
    }
    if (r->status >= 400) {
        if (strcmp(r->error_code, "EntryNotFound") == 0 && ttsm__hub_is_commit(r->commit)) {
            /* The Hub says the file is absent at this commit: remember it. */
            memcpy(meta->commit, r->commit, 41);
            char repo_dir[PATH_MAX];
            if (!hub->no_markers &&
                ttsm__hub_repo_dir(hub->cache, repo, repo_dir, sizeof repo_dir) == 0)
                ttsm__hub_mark_absent(repo_dir, r->commit, path, NULL);
        }
        st = answer_error(hub, repo, rev, path, r, why, err);
        goto out;
    }
    if (r->status >= 300 && !r->location[0]) {
        st = ttsm__err(err, TTSM_ERR_FORMAT, repo->id, "invalid answer",
                       "%s: HTTP %ld without a Location", path, r->status);
        goto out;
    }
    /* The commit, the etag and the size must all be there. */
    const char *missing = NULL;
    if (!ttsm__hub_is_commit(r->commit))
        missing = r->commit[0] ? "a 40-digit X-Repo-Commit" : "X-Repo-Commit";
    else if (clean_etag(r->linked_etag[0] ? r->linked_etag : r->etag, meta->etag,
                        sizeof meta->etag) != 0)
        missing = r->linked_etag[0] || r->etag[0] ? "a usable ETag" : "ETag";
    else if (!is_hex(meta->etag, 64) && !is_hex(meta->etag, 40))
        missing = "an ETag that is a SHA-256 or git SHA-1";
    else if ((r->linked_size >= 0 ? r->linked_size : r->content_length) < 0)
        missing = "X-Linked-Size or Content-Length";
    if (missing) {
        st = ttsm__err(err, TTSM_ERR_FORMAT, repo->id, "invalid metadata",
                       "the answer for %s@%s/%s has no %s", repo->id, rev, path, missing);
        ttsm__err_hint(err, "the endpoint (HF_ENDPOINT) does not speak the Hub's protocol");
        goto out;
    }
    memcpy(meta->commit, r->commit, 41);
    uint64_t size = (uint64_t)(r->linked_size >= 0 ? r->linked_size : r->content_length);
    if (size > TTSM__HUB_FILE_MAX) {
        st = ttsm__err(err, TTSM_ERR_FORMAT, repo->id, "invalid metadata",
                       "%s is announced as %llu bytes, over the cap of %llu", path,
                       (unsigned long long)size, (unsigned long long)TTSM__HUB_FILE_MAX);
        goto out;
    }
    meta->size = size;
    if (r->status >= 300) {
        if (ttsm__url_resolve(cur, r->location, meta->location, sizeof meta->location) != 0) {
            st = ttsm__err(err, TTSM_ERR_FORMAT, repo->id, "invalid redirect",
                           "%s: Location \"%s\"", path, printable(r->location, shown, sizeof shown));
            goto out;
        }
    } else {
        strcpy(meta->location, cur);
    }
    *why = TTSM__HUB_OK;
out:
    ttsm__free(r);
    return st;
}

/* ---- downloads ----------------------------------------------------------- */

typedef struct dl_state {
    int fd;
    uint64_t have, want;
    EVP_MD_CTX *md;
    int git;    /* the etag is a git blob SHA-1 */
    int first;  /* the next bytes are the first of an answer */
    int fatal;  /* a mismatch that no retry mends (msg says which) */
    int disk;   /* errno of a failed write */
    int stop;   /* the progress callback cancelled */
    char msg[200];
    ttsm__hub_bytes_fn bytes;
    void *user;
    _Atomic int *cancel;
    ttsm__writer *w; /* hashes and writes on its own thread (large files), or NULL */
} dl_state;

static int hash_start(dl_state *s)
{
    if (EVP_DigestInit_ex(s->md, s->git ? EVP_sha1() : EVP_sha256(), NULL) != 1)
        return -1;
    if (s->git) {
        char pre[40];
        int n = snprintf(pre, sizeof pre, "blob %llu", (unsigned long long)s->want);
        if (EVP_DigestUpdate(s->md, pre, (size_t)n + 1) != 1) /* with its NUL */
            return -1;
    }
    return 0;
}

static int write_all(int fd, const char *d, size_t n)
{
    while (n) {
        ssize_t w = write(fd, d, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        d += w;
        n -= (size_t)w;
    }
    return 0;
}

/* "bytes S-E/T" -> S and T (T = -1 for "*"). @return 0 or -1. */
static int parse_content_range(const char *v, int64_t *start, int64_t *total)
{
    unsigned long long s, e;
    char t[32];
    if (sscanf(v, "bytes %llu-%llu/%31s", &s, &e, t) != 3 || e < s)
        return -1;
    *start = (int64_t)s;
    if (strcmp(t, "*") == 0) {
        *total = -1;
        return 0;
    }
    char *end;
    unsigned long long tv = strtoull(t, &end, 10);
    if (*end)
        return -1;
    *total = (int64_t)tv;
    return 0;
}

static int dl_sink(void *user, const ttsm__http_resp *r, const char *d, size_t n)
{
    dl_state *s = user;
    if (s->first) {
        s->first = 0;
        if (r->status == 206) {
            int64_t start, total;
            if (parse_content_range(r->content_range, &start, &total) != 0 ||
                (uint64_t)start != s->have) {
                snprintf(s->msg, sizeof s->msg, "the server resumed at \"%.60s\", not at byte %llu",
                         r->content_range, (unsigned long long)s->have);
                s->fatal = 1;
                return 1;
            }
            if (total >= 0 && (uint64_t)total != s->want) {
                snprintf(s->msg, sizeof s->msg, "the server has %lld bytes, %llu were announced",
                         (long long)total, (unsigned long long)s->want);
                s->fatal = 1;
                return 1;
            }
        } else if (r->status == 200) {
            if (s->have) {
                /* A server that ignores Range sends it all again: start over. */
                int e = s->w ? ttsm__writer_flush(s->w) : 0;
                if (e) {
                    s->disk = e;
                    return 1;
                }
                if (ftruncate(s->fd, 0) != 0 || lseek(s->fd, 0, SEEK_SET) != 0 ||
                    hash_start(s) != 0) {
                    s->disk = errno ? errno : EIO;
                    return 1;
                }
                s->have = 0;
                if (s->bytes && s->bytes(s->user, 0, s->want)) {
                    s->stop = 1;
                    return 1;
                }
            }
        } else {
            snprintf(s->msg, sizeof s->msg, "HTTP %ld with a body", r->status);
            s->fatal = 1;
            return 1;
        }
    }
    if (n > s->want - s->have) {
        snprintf(s->msg, sizeof s->msg, "the server sent more than the %llu bytes announced",
                 (unsigned long long)s->want);
        s->fatal = 1;
        return 1;
    }
    if (s->w) {
        int e = ttsm__writer_put(s->w, d, n);
        if (e) {
            s->disk = e;
            return 1;
        }
    } else {
        if (write_all(s->fd, d, n) != 0) {
            s->disk = errno;
            return 1;
        }
        if (EVP_DigestUpdate(s->md, d, n) != 1) {
            s->disk = ENOMEM;
            return 1;
        }
    }
    s->have += n;
    if (s->bytes && s->bytes(s->user, s->have, s->want)) {
        s->stop = 1;
        atomic_store(s->cancel, 1);
        return 1;
    }
    return 0;
}

static int is_regular(const char *p, uint64_t *size)
{
    struct stat sb;
    if (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode))
        return 0;
    if (size)
        *size = (uint64_t)sb.st_size;
    return 1;
}

/* Waits for the lock (another process may be fetching the same blob).
 * @return 0 locked, 1 cancelled, -1 error. */
static int take_lock(ttsm__hub *hub, int fd, const char *what)
{
    int logged = 0;
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        if (errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        if (!logged) {
            ttsm__logf(&hub->log, TTSM_LOG_INFO,
                       "%s: waiting for the lock (another download of it is running)", what);
            logged = 1;
        }
        if (nap(hub, 100))
            return 1;
    }
}

/* The partial file to go on with: the largest `<prefix>*.incomplete` in
 * `dir` (others are removed; the lock is held, so nobody writes them), or
 * a new one. */
static int open_partial(const char *dir, const char *prefix, char *path, size_t size)
{
    DIR *d = opendir(dir);
    char best[NAME_MAX + 1] = "";
    off_t best_size = -1;
    size_t pl = strlen(prefix);
    static const char suffix[] = ".incomplete";
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l <= pl + sizeof suffix - 1 || strncmp(de->d_name, prefix, pl) != 0 ||
            strcmp(de->d_name + l - (sizeof suffix - 1), suffix) != 0)
            continue;
        struct stat sb;
        char full[PATH_MAX];
        if (snprintf(full, sizeof full, "%s/%s", dir, de->d_name) >= (int)sizeof full ||
            lstat(full, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        if (sb.st_size > best_size) {
            char old[PATH_MAX + NAME_MAX + 2];
            if (best[0] && snprintf(old, sizeof old, "%s/%s", dir, best) < (int)sizeof old)
                unlink(old);
            best_size = sb.st_size;
            snprintf(best, sizeof best, "%s", de->d_name);
        } else {
            unlink(full);
        }
    }
    if (d)
        closedir(d);
    if (best[0]) {
        if (snprintf(path, size, "%s/%s", dir, best) >= (int)size)
            return -1;
        return open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    }
    char rnd[17];
    ttsm__random_hex(rnd);
    if (snprintf(path, size, "%s/%s%s%s", dir, prefix, rnd, suffix) >= (int)size)
        return -1;
    return open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
}

/* Hashes the bytes a partial file already holds (a resumed download). */
static int hash_existing(dl_state *s)
{
    static const size_t chunk = 1 << 20;
    char *buf = ttsm__malloc(chunk);
    if (!buf)
        return -1;
    uint64_t off = 0;
    while (off < s->have) {
        size_t want = s->have - off < chunk ? (size_t)(s->have - off) : chunk;
        ssize_t n = pread(s->fd, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || EVP_DigestUpdate(s->md, buf, (size_t)n) != 1) {
            ttsm__free(buf);
            return -1;
        }
        off += (uint64_t)n;
    }
    ttsm__free(buf);
    return lseek(s->fd, (off_t)s->have, SEEK_SET) == (off_t)s->have ? 0 : -1;
}

ttsm_status ttsm__hub_fetch(ttsm__hub *hub, ttsm__http *conn, const ttsm__hub_repo *repo,
                            const char *path, const ttsm__hub_meta *meta, const char *dest,
                            const char *lock, ttsm__hub_bytes_fn bytes, void *user,
                            int *fetched, ttsm_error *err)
{
    char final[PATH_MAX], dir[PATH_MAX], lockp[PATH_MAX], part[PATH_MAX], prefix[NAME_MAX + 1];
    char subject[160];
    snprintf(subject, sizeof subject, "%s/%s", repo->id, path);
    if (fetched)
        *fetched = 0;
    if (!is_hex(meta->etag, 64) && !is_hex(meta->etag, 40))
        return ttsm__err(err, TTSM_ERR_FORMAT, subject, "invalid etag", "not a hash");
    if (!dest) {
        char folder[256];
        if (ttsm__hub_folder(repo, folder, sizeof folder) != 0 ||
            snprintf(dir, sizeof dir, "%s/%s/blobs", hub->cache, folder) >= (int)sizeof dir ||
            snprintf(final, sizeof final, "%s/%s", dir, meta->etag) >= (int)sizeof final ||
            snprintf(lockp, sizeof lockp, "%s/.locks/%s/%s.lock", hub->cache, folder,
                     meta->etag) >= (int)sizeof lockp)
            return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, subject, "path too long",
                             "in the hub cache %s", hub->cache);
        snprintf(prefix, sizeof prefix, "%s.", meta->etag);
    } else {
        const char *slash = strrchr(dest, '/');
        if (!slash || !lock || strlen(dest) >= sizeof final || strlen(lock) >= sizeof lockp ||
            strlen(slash + 1) + 2 >= sizeof prefix)
            return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, subject, "invalid destination",
                             "%s", dest);
        strcpy(final, dest);
        memcpy(dir, dest, (size_t)(slash - dest));
        dir[slash - dest] = '\0';
        strcpy(lockp, lock);
        snprintf(prefix, sizeof prefix, ".%s.", slash + 1);
    }
    uint64_t have_size;
    if (is_regular(final, &have_size) && have_size == meta->size)
        return TTSM_OK;
    char lock_dir[PATH_MAX];
    snprintf(lock_dir, sizeof lock_dir, "%s", lockp);
    *strrchr(lock_dir, '/') = '\0';
    const char *bad_dir = ttsm__mkdirs(dir) != 0 ? dir : ttsm__mkdirs(lock_dir) != 0 ? lock_dir : NULL;
    if (bad_dir)
        return ttsm__err(err, TTSM_ERR_IO, subject, "cannot create folder", "%s: %s", bad_dir,
                         strerror(errno));
    int lfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW, 0644);
    if (lfd < 0)
        return ttsm__err(err, TTSM_ERR_IO, subject, "cannot open lock", "%s: %s", lockp,
                         strerror(errno));
    struct stat lsb;
    if (fstat(lfd, &lsb) != 0 || !S_ISREG(lsb.st_mode)) {
        close(lfd);
        return ttsm__err(err, TTSM_ERR_IO, subject, "cannot lock", "%s is not a regular file",
                         lockp);
    }
    dl_state s;
    memset(&s, 0, sizeof s);
    s.fd = -1;
    s.want = meta->size;
    s.git = is_hex(meta->etag, 40);
    s.bytes = bytes;
    s.user = user;
    s.cancel = &hub->cancel;
    ttsm_status st = TTSM_OK;
    int drop_partial = 0;
    int lk = take_lock(hub, lfd, subject);
    if (lk != 0) {
        st = lk > 0 ? ttsm__err(err, TTSM_ERR_CANCELLED, subject, "cancelled", "waiting for the lock")
                    : ttsm__err(err, TTSM_ERR_IO, subject, "cannot lock", "%s: %s", lockp,
                                strerror(errno));
        goto out;
    }
    /* Another process may have finished it while this one waited. */
    if (is_regular(final, &have_size) && have_size == meta->size)
        goto out;
    s.fd = open_partial(dir, prefix, part, sizeof part);
    if (s.fd < 0) {
        st = ttsm__err(err, TTSM_ERR_IO, subject, "cannot create file", "%s: %s", dir,
                       strerror(errno));
        goto out;
    }
    struct stat sb;
    if (fstat(s.fd, &sb) != 0 || !(s.md = EVP_MD_CTX_new()) || hash_start(&s) != 0) {
        st = ttsm__err(err, TTSM_ERR_IO, subject, "cannot start", "%s", part);
        goto out;
    }
    s.have = (uint64_t)sb.st_size;
    if (s.have > s.want) {
        if (ftruncate(s.fd, 0) != 0) {
            st = ttsm__err(err, TTSM_ERR_IO, subject, "cannot truncate", "%s: %s", part,
                           strerror(errno));
            goto out;
        }
        s.have = 0;
    }
    if (s.have) {
        ttsm__logf(&hub->log, TTSM_LOG_INFO, "%s: resuming at byte %llu of %llu", subject,
                   (unsigned long long)s.have, (unsigned long long)s.want);
        if (hash_existing(&s) != 0) {
            st = ttsm__err(err, TTSM_ERR_IO, subject, "cannot read", "%s: %s", part,
                           strerror(errno));
            goto out;
        }
    }
    if (bytes && bytes(user, s.have, s.want)) {
        atomic_store(&hub->cancel, 1);
        st = ttsm__err(err, TTSM_ERR_CANCELLED, subject, "cancelled", "by the progress callback");
        goto out;
    }
    /* A large file is hashed and written beside the network (hub_writer.c). */
    if (s.want - s.have >= WRITER_MIN)
        s.w = ttsm__writer_start(s.fd, s.md);
    char why[256], shown[512];
    unsigned failures = 0;
    ttsm__http_resp *r = ttsm__malloc(sizeof *r);
    if (!r) {
        st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, subject, "out of memory", "download");
        goto out;
    }
    for (unsigned tries = 0; s.have < s.want; tries++) {
        char url[TTSM__URL_MAX];
        strcpy(url, meta->location);
        uint64_t before = s.have;
        int rc = TTSM__HTTP_DONE;
        for (int hops = 0;; hops++) {
            const char *hdrs[2] = {auth_for(hub, url), NULL};
            s.first = 1;
            rc = ttsm__http_do(conn, "GET", url, hdrs, s.have, dl_sink, &s, r, why, sizeof why);
            if (rc != TTSM__HTTP_DONE || r->status < 300 || r->status > 399)
                break;
            char next[TTSM__URL_MAX];
            if (hops >= TTSM__HUB_REDIRECTS_MAX) {
                ttsm__url_for_message(url, shown, sizeof shown);
                st = ttsm__err(err, TTSM_ERR_IO, subject, "redirect loop",
                               "more than %d redirects, the last to %s", TTSM__HUB_REDIRECTS_MAX,
                               shown);
                break;
            }
            if (!r->location[0] || ttsm__url_resolve(url, r->location, next, sizeof next) != 0) {
                st = ttsm__err(err, TTSM_ERR_FORMAT, subject, "invalid redirect",
                               "HTTP %ld with a bad Location", r->status);
                break;
            }
            strcpy(url, next);
        }
        /* What was received is on disk before anything else is decided:
         * a resume starts where the file ends. */
        if (s.w && !s.disk)
            s.disk = ttsm__writer_flush(s.w);
        if (st != TTSM_OK)
            break;
        ttsm__url_for_message(url, shown, sizeof shown);
        if (rc == TTSM__HTTP_CANCELLED || s.stop) {
            st = ttsm__err(err, TTSM_ERR_CANCELLED, subject, "cancelled", "at byte %llu of %llu",
                           (unsigned long long)s.have, (unsigned long long)s.want);
            break;
        }
        if (s.disk) {
            drop_partial = 1;
            st = ttsm__err(err, TTSM_ERR_IO, subject, "cannot write", "%s: %s", part,
                           strerror(s.disk));
            break;
        }
        if (s.fatal) {
            drop_partial = 1;
            st = ttsm__err(err, TTSM_ERR_IO, subject, "size mismatch", "%s", s.msg);
            break;
        }
        if (rc == TTSM__HTTP_ABORTED || rc == TTSM__HTTP_FATAL) {
            st = ttsm__err(err, rc == TTSM__HTTP_ABORTED ? TTSM_ERR_FORMAT : TTSM_ERR_IO, subject,
                           "download failed", "%s: %s", shown, why);
            break;
        }
        /* What is left: a try that can be made again. */
        if (rc == TTSM__HTTP_NETWORK) {
            /* `why` says how the connection failed */
        } else if (r->status == 200 || r->status == 206) {
            if (s.have == s.want)
                break;
            snprintf(why, sizeof why, "the connection ended after %llu of %llu bytes",
                     (unsigned long long)s.have, (unsigned long long)s.want);
        } else if (r->status == 416) {
            if (s.have == s.want)
                break;
            drop_partial = 1;
            st = ttsm__err(err, TTSM_ERR_IO, subject, "size mismatch",
                           "the server has no byte %llu, yet %llu bytes were announced",
                           (unsigned long long)s.have, (unsigned long long)s.want);
            break;
        } else if (retryable_status(r->status)) {
            snprintf(why, sizeof why, "HTTP %ld", r->status);
        } else {
            st = ttsm__err(err, TTSM_ERR_IO, subject, "download failed", "HTTP %ld from %s",
                           r->status, shown);
            break;
        }
        if (s.have == before)
            failures++;
        if (failures > hub->retries || tries + 1 >= FETCH_TRIES_MAX) {
            st = ttsm__err(err, TTSM_ERR_IO, subject, "download failed",
                           "%s: %s (%u tries; %llu of %llu bytes kept for the next try)", shown,
                           why, tries + 1, (unsigned long long)s.have,
                           (unsigned long long)s.want);
            ttsm__err_hint(err, "run the pull again: it resumes where this one stopped");
            break;
        }
        uint64_t ms = s.have > before ? 0 : wait_ms(hub, rc == TTSM__HTTP_DONE ? r : NULL,
                                                    failures - 1);
        ttsm__logf(&hub->log, TTSM_LOG_WARN, "%s: %s; resuming at byte %llu%s", subject, why,
                   (unsigned long long)s.have, ms ? " after a pause" : "");
        if (nap(hub, ms)) {
            st = ttsm__err(err, TTSM_ERR_CANCELLED, subject, "cancelled", "while waiting");
            break;
        }
    }
    ttsm__free(r);
    ttsm__writer_stop(s.w);
    s.w = NULL;
    if (st != TTSM_OK)
        goto out;
    /* The bytes must be the ones the etag names. */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdn = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    if (EVP_DigestFinal_ex(s.md, md, &mdn) != 1) {
        st = ttsm__err(err, TTSM_ERR_IO, subject, "cannot hash", "%s", part);
        goto out;
    }
    for (unsigned i = 0; i < mdn; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    if (strcmp(hex, meta->etag) != 0) {
        drop_partial = 1;
        st = ttsm__err(err, TTSM_ERR_IO, subject, "hash mismatch",
                       "the %llu bytes received hash to %.16s..., the etag says %.16s... "
                       "(%s); nothing was kept",
                       (unsigned long long)s.have, hex, meta->etag,
                       s.git ? "git blob SHA-1" : "SHA-256");
        ttsm__err_hint(err, "run the pull again; if it fails the same way, the server or a "
                            "proxy on the way alters the file");
        goto out;
    }
    if (rename(part, final) != 0) {
        st = ttsm__err(err, TTSM_ERR_IO, subject, "cannot rename", "%s -> %s: %s", part, final,
                       strerror(errno));
        drop_partial = 1;
        goto out;
    }
    if (fetched)
        *fetched = 1;
out:
    ttsm__writer_stop(s.w);
    if (s.fd >= 0) {
        close(s.fd);
        /* A partial file stays for the next pull to resume - unless it is
         * wrong, or holds nothing to resume from. */
        if (drop_partial || (st != TTSM_OK && s.have == 0))
            unlink(part);
    }
    EVP_MD_CTX_free(s.md);
    close(lfd); /* releases the lock */
    return st;
}
