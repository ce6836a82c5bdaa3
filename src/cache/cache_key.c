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

#include "base/alloc.h"
#include "base/config.h"
#include "base/error.h"
#include "base/strbuf.h"
#include "devices/device.h"
#include "cache/canonical.h"

#define KEY_VERSION "ttsm-key-v1"

/* "<name>:<len>:<value>\n" */
static void sb_field(ttsm__sb *b, const char *name, const char *value)
{
    size_t n = strlen(value);
    ttsm__sb_adds(b, name);
    ttsm__sb_add(b, ":", 1);
    ttsm__sb_addu(b, n);
    ttsm__sb_add(b, ":", 1);
    ttsm__sb_add(b, value, n);
    ttsm__sb_add(b, "\n", 1);
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

/* Builds the canonical string of a config already in canonical form. */
static ttsm_status build(const ttsm_load_config *cfg, char **out, size_t *out_len, ttsm_error *err)
{
    ttsm_status st;

    /* "<engine>[/<model>]" names the config in errors; it is only built
     * when one happens, to keep the hit path free of printf. */
    char subject[2 * TTSM_CONFIG_NAME_MAX + 2];
#define SUBJECT()                                                                               \
    (ttsm__format_trunc(subject, sizeof subject, "%s%s%s", cfg->engine,                         \
                        cfg->model_name ? "/" : "", cfg->model_name ? cfg->model_name : ""),    \
     subject)

    char device[TTSM_DEVICE_NAME_MAX];
    /* Resolved again for the message; a device can come back in between
     * (the soak test drops one), and then that answer is the one to use. */
    if (ttsm__device_resolve(cfg->device, NULL, device, sizeof device, NULL) != TTSM_OK &&
        (st = ttsm__device_resolve(cfg->device, SUBJECT(), device, sizeof device, err)) != TTSM_OK)
        return st;

    char language[TTSM_CONFIG_NAME_MAX + 1] = "";
    if (cfg->language) {
        st = ttsm_language_normalize(cfg->language, language, sizeof language, err);
        if (st != TTSM_OK)
            return st;
    }

    ttsm__sb b = {0};
    char *real = NULL;
    const ttsm_param **sorted = NULL;
    if (cfg->model_path) {
        /* The canonical absolute path, not a basename: two folders named v1
         * are two models; a symlink and its target are one. */
        real = realpath(cfg->model_path, NULL);
        if (!real) {
            int e = errno;
            return ttsm__err(err, e == ENOENT || e == ENOTDIR ? TTSM_ERR_NOT_FOUND : TTSM_ERR_IO,
                             SUBJECT(), "model path not usable", "%s: %s", cfg->model_path,
                             strerror(e));
        }
    } else if (cfg->repo_id) {
        st = check_repo(cfg->repo_id, strchr(cfg->repo_id, '@'), err);
        if (st != TTSM_OK)
            return st;
    }

    ttsm__sb_adds(&b, KEY_VERSION "\n");
    sb_field(&b, "engine", cfg->engine);
    sb_field(&b, "model_type", cfg->model_type ? cfg->model_type : "tts");
    sb_field(&b, "model", cfg->model_name ? cfg->model_name : "");
    sb_field(&b, "device", device);
    sb_field(&b, "language", language);
    if (real) {
        ttsm__sb s = {0};
        ttsm__sb_addf(&s, "path:%s", real);
        sb_field(&b, "source", ttsm__sb_str(&s));
        b.failed |= s.failed;
        ttsm__sb_free(&s);
    } else if (cfg->repo_id) {
        ttsm__sb s = {0};
        ttsm__sb_addf(&s, "repo:%s%s", cfg->repo_id, strchr(cfg->repo_id, '@') ? "" : "@main");
        sb_field(&b, "source", ttsm__sb_str(&s));
        b.failed |= s.failed;
        ttsm__sb_free(&s);
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
                ttsm__sb s = {0};
                /* "param:<len>:<klen>:<key>=<value>\n": the outer length
                 * bounds the value, the inner one the key. */
                ttsm__sb_addu(&s, strlen(sorted[i]->key));
                ttsm__sb_add(&s, ":", 1);
                ttsm__sb_adds(&s, sorted[i]->key);
                ttsm__sb_add(&s, "=", 1);
                ttsm__sb_adds(&s, sorted[i]->value);
                sb_field(&b, "param", ttsm__sb_str(&s));
                b.failed |= s.failed;
                ttsm__sb_free(&s);
            }
        }
        ttsm__free(sorted);
    }
    if (b.failed) {
        ttsm__sb_free(&b);
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, SUBJECT(), "out of memory",
                         "building the cache key");
    }
#undef SUBJECT
    if (out_len)
        *out_len = b.len;
    *out = ttsm__sb_take(&b);
    return TTSM_OK;
}

/* What both public entry points do first: check `out`, canonicalise. */
static ttsm_status canonical_then(const ttsm_load_config *cfg, const void *out, ttsm__canon *c,
                                  ttsm_error *err)
{
    if (!out)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "config", "invalid argument",
                         "out is NULL");
    return ttsm__canonicalize(cfg, c, err);
}

ttsm_status ttsm_cache_key_canonical(const ttsm_load_config *cfg, char **out, size_t *out_len,
                                     ttsm_error *err)
{
    ttsm__canon c;
    ttsm_status st = canonical_then(cfg, out, &c, err);
    return st != TTSM_OK ? st : build(&c.cfg, out, out_len, err);
}

ttsm_status ttsm__cache_key_of(const ttsm_load_config *canonical, char out[TTSM_KEY_HEX_SIZE],
                               ttsm_error *err)
{
    char *canon;
    size_t len;
    ttsm_status st = build(canonical, &canon, &len, err);
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

ttsm_status ttsm_cache_key(const ttsm_load_config *cfg, char out[TTSM_KEY_HEX_SIZE],
                           ttsm_error *err)
{
    ttsm__canon c;
    ttsm_status st = canonical_then(cfg, out, &c, err);
    return st != TTSM_OK ? st : ttsm__cache_key_of(&c.cfg, out, err);
}
