/* cache_key.c - the one place a cache key is made (DESIGN §4). The
 * canonical form is length-prefixed, so no two configs share a string; the
 * key is its XXH3-128. Specification and test vectors: docs/cache-key.md. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "alloc_internal.h"
#include "config_internal.h"
#include "device_internal.h"
#include "error_internal.h"

#define KEY_VERSION "ttsm-key-v1"

typedef struct strbuf {
    char *p;
    size_t len, cap;
    int failed;
} strbuf;

static void sb_add(strbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (ttsm__grow((void **)&b->p, &b->cap, b->len + n + 1, 1, SIZE_MAX / 2) != 0) {
        b->failed = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* "<name>:<len>:<value>\n" */
static void sb_field(strbuf *b, const char *name, const char *value)
{
    char num[32];
    size_t n = strlen(value);
    int k = snprintf(num, sizeof num, ":%zu:", n);
    sb_add(b, name, strlen(name));
    sb_add(b, num, (size_t)k);
    sb_add(b, value, n);
    sb_add(b, "\n", 1);
}

static int cmp_params(const void *a, const void *b)
{
    const ttsm_param *const *pa = a, *const *pb = b;
    return strcmp((*pa)->key, (*pb)->key);
}

/* "org/name" with HuggingFace's characters, optional "@revision". */
static ttsm_status check_repo(const char *repo, const char *at, ttsm_error *err)
{
    size_t n = at ? (size_t)(at - repo) : strlen(repo);
    const char *slash = memchr(repo, '/', n);
    int ok = slash && slash != repo && slash < repo + n - 1 && !memchr(slash + 1, '/', n - (size_t)(slash + 1 - repo));
    for (size_t i = 0; ok && i < n; i++) {
        char c = repo[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '-' || c == '_' || c == '.' || c == '/';
    }
    if (ok && at)
        ok = at[1] != '\0' && !strchr(at + 1, ' ');
    if (!ok)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "config", "invalid field",
                         "repo_id \"%.200s\" is not \"org/name\" or \"org/name@revision\"", repo);
    return TTSM_OK;
}

ttsm_status ttsm_cache_key_canonical(const ttsm_load_config *cfg, char **out, size_t *out_len,
                                     ttsm_error *err)
{
    if (!out)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "config", "invalid argument",
                         "out is NULL");
    ttsm_status st = ttsm_load_config_validate(cfg, err);
    if (st != TTSM_OK)
        return st;

    char subject[2 * TTSM_CONFIG_NAME_MAX + 2];
    ttsm__format_trunc(subject, sizeof subject, "%s%s%s", cfg->engine,
                       cfg->model_name ? "/" : "", cfg->model_name ? cfg->model_name : "");

    char device[TTSM_DEVICE_NAME_MAX];
    st = ttsm__device_resolve(cfg->device, subject, device, sizeof device, err);
    if (st != TTSM_OK)
        return st;

    char language[TTSM_CONFIG_NAME_MAX + 1] = "";
    if (cfg->language) {
        st = ttsm_language_normalize(cfg->language, language, sizeof language, err);
        if (st != TTSM_OK)
            return st;
    }

    strbuf b = {0};
    char *real = NULL;
    const ttsm_param **sorted = NULL;
    if (cfg->model_path) {
        /* The canonical absolute path, not a basename: two folders named v1
         * are two models; a symlink and its target are one. */
        real = realpath(cfg->model_path, NULL);
        if (!real) {
            int e = errno;
            return ttsm__err(err, e == ENOENT || e == ENOTDIR ? TTSM_ERR_NOT_FOUND : TTSM_ERR_IO,
                             subject, "model path not usable", "%s: %s", cfg->model_path,
                             strerror(e));
        }
    } else if (cfg->repo_id) {
        st = check_repo(cfg->repo_id, strchr(cfg->repo_id, '@'), err);
        if (st != TTSM_OK)
            return st;
    }

    sb_add(&b, KEY_VERSION "\n", strlen(KEY_VERSION "\n"));
    sb_field(&b, "engine", cfg->engine);
    sb_field(&b, "model_type", cfg->model_type ? cfg->model_type : "tts");
    sb_field(&b, "model", cfg->model_name ? cfg->model_name : "");
    sb_field(&b, "device", device);
    sb_field(&b, "language", language);
    if (real) {
        strbuf s = {0};
        sb_add(&s, "path:", 5);
        sb_add(&s, real, strlen(real));
        sb_field(&b, "source", s.failed ? "" : s.p);
        b.failed |= s.failed;
        ttsm__free(s.p);
    } else if (cfg->repo_id) {
        strbuf s = {0};
        sb_add(&s, "repo:", 5);
        sb_add(&s, cfg->repo_id, strlen(cfg->repo_id));
        if (!strchr(cfg->repo_id, '@'))
            sb_add(&s, "@main", 5);
        sb_field(&b, "source", s.failed ? "" : s.p);
        b.failed |= s.failed;
        ttsm__free(s.p);
    } else {
        sb_field(&b, "source", "");
    }
    free(real); /* from realpath(), the C library's allocator */

    if (cfg->n_params) {
        sorted = ttsm__malloc(cfg->n_params * sizeof *sorted);
        if (!sorted) {
            b.failed = 1;
        } else {
            for (size_t i = 0; i < cfg->n_params; i++)
                sorted[i] = &cfg->params[i];
            qsort(sorted, cfg->n_params, sizeof *sorted, cmp_params);
            for (size_t i = 0; i < cfg->n_params; i++) {
                strbuf s = {0};
                char num[32];
                int k = snprintf(num, sizeof num, "%zu:", strlen(sorted[i]->key));
                sb_add(&s, num, (size_t)k);
                sb_add(&s, sorted[i]->key, strlen(sorted[i]->key));
                sb_add(&s, "=", 1);
                sb_add(&s, sorted[i]->value, strlen(sorted[i]->value));
                /* "param:<len>:<klen>:<key>=<value>\n": the outer length
                 * bounds the value, the inner one the key. */
                sb_field(&b, "param", s.failed ? "" : s.p);
                b.failed |= s.failed;
                ttsm__free(s.p);
            }
        }
        ttsm__free(sorted);
    }
    if (b.failed) {
        ttsm__free(b.p);
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, subject, "out of memory",
                         "building the cache key");
    }
    *out = b.p;
    if (out_len)
        *out_len = b.len;
    return TTSM_OK;
}

ttsm_status ttsm_cache_key(const ttsm_load_config *cfg, char out[TTSM_KEY_HEX_SIZE],
                           ttsm_error *err)
{
    if (!out)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "config", "invalid argument",
                         "out is NULL");
    char *canon;
    size_t len;
    ttsm_status st = ttsm_cache_key_canonical(cfg, &canon, &len, err);
    if (st != TTSM_OK)
        return st;
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits(canon, len));
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof c.digest; i++) {
        out[2 * i] = hex[c.digest[i] >> 4];
        out[2 * i + 1] = hex[c.digest[i] & 15];
    }
    out[32] = '\0';
    ttsm__free(canon);
    return TTSM_OK;
}
