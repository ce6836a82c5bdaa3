/* content.c - the content identity of a model (docs/cache-key.md, "One set
 * of bytes, one entry"). The cache key names a config; two configs can
 * name the same files (no repo id and the model's own repo id; a branch
 * and the commit it points at), and a cache that charged each in full
 * would load one set of bytes twice. After a factory has said which files
 * make the model, this identity lets the manager find an entry that holds
 * them already. */
#include <string.h>
#include <xxhash.h>

#include "base/alloc.h"
#include "base/strbuf.h"
#include "engines/model.h"
#include "cache/canonical.h"
#include "cache/content.h"

#define CONTENT_VERSION "ttsm-content-v1"

ttsm_status ttsm__content_base(const ttsm_load_config *canonical, char out[TTSM_KEY_HEX_SIZE],
                               ttsm_error *err)
{
    ttsm_load_config c = *canonical;
    c.model_path = NULL;
    c.repo_id = NULL;
    return ttsm__cache_key_of(&c, out, err);
}

/* "<name>:<len>:<value>\n", as the key's canonical form writes fields. */
static void field(ttsm__sb *b, const char *name, const char *value)
{
    ttsm__sb_adds(b, name);
    ttsm__sb_add(b, ":", 1);
    ttsm__sb_addu(b, strlen(value));
    ttsm__sb_add(b, ":", 1);
    ttsm__sb_adds(b, value);
    ttsm__sb_add(b, "\n", 1);
}

char *ttsm__content_string(const char *base, size_t n, const char *const *names,
                           const char *const *kinds, const char *const *files, size_t *len)
{
    ttsm__sb b = {0};
    ttsm__sb_adds(&b, CONTENT_VERSION "\n");
    field(&b, "base", base);
    for (size_t i = 0; i < n; i++) {
        field(&b, "component", names[i]);
        field(&b, "kind", kinds[i]);
        field(&b, "file", files[i]);
    }
    if (b.failed) {
        ttsm__sb_free(&b);
        return NULL;
    }
    *len = b.len;
    return ttsm__sb_take(&b);
}

ttsm__content ttsm__content_of(const char *base, const ttsm_model *m)
{
    ttsm__content c = {0, 0, 0};
    size_t n = ttsm_model_component_count(m);
    if (!base[0] || n == 0 || m->engine_data)
        return c;
    const char **v = ttsm__malloc(3 * n * sizeof *v);
    if (!v)
        return c; /* without an identity the model is simply never merged */
    for (size_t i = 0; i < n; i++) {
        v[i] = ttsm_model_component_name(m, i);
        v[n + i] = ttsm_model_component_kind(m, i);
        v[2 * n + i] = ttsm_model_component_path(m, i);
    }
    size_t len;
    char *s = ttsm__content_string(base, n, v, v + n, v + 2 * n, &len);
    ttsm__free(v);
    if (!s)
        return c;
    XXH128_hash_t h = XXH3_128bits(s, len);
    ttsm__free(s);
    c.hi = h.high64;
    c.lo = h.low64;
    c.set = 1;
    return c;
}
