/* manifest.c - parses and validates engine manifests (docs/engines.md).
 * Validation is strict: an unknown field, a wrong type or a dangling
 * reference is an error naming the manifest and the field, so a typo in a
 * manifest never turns into a silent default. */
#include <jansson.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <xxhash.h>

#include "base/alloc.h"
#include "base/config.h"
#include "base/convert.h"
#include "base/error.h"
#include "base/json.h"
#include "manifest/manifest.h"

typedef struct parser {
    const char *source;
    ttsm_error *err;
    ttsm_status st;
    char path[256]; /* the field being read, for messages */
} parser;

TTSM__PRINTF(2, 3)
static int fail(parser *p, const char *fmt, ...)
{
    if (p->st != TTSM_OK)
        return -1;
    char why[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    p->st = ttsm__err(p->err, TTSM_ERR_FORMAT, p->source, "invalid manifest", "%s: %s",
                      p->path[0] ? p->path : "(top level)", why);
    return -1;
}

static int oom(parser *p)
{
    if (p->st == TTSM_OK)
        p->st = ttsm__err(p->err, TTSM_ERR_OUT_OF_MEMORY, p->source, "out of memory",
                          "reading the manifest");
    return -1;
}

/* Field paths for messages: push appends ".name" or "[i]", pop restores. */
static size_t push(parser *p, const char *fmt, ...) TTSM__PRINTF(2, 3);
static size_t push(parser *p, const char *fmt, ...)
{
    size_t at = strlen(p->path);
    va_list ap;
    va_start(ap, fmt);
    if (at < sizeof p->path)
        vsnprintf(p->path + at, sizeof p->path - at, fmt, ap);
    va_end(ap);
    return at;
}
static void pop(parser *p, size_t at)
{
    p->path[at] = '\0';
}

static char *dup(parser *p, const char *s)
{
    char *d = ttsm__strdup(s);
    if (!d)
        oom(p);
    return d;
}

/* Only these keys (plus free-text "*_note" strings) may appear. */
static int check_keys(parser *p, json_t *obj, const char *const *allowed)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        size_t kl = strlen(k);
        if (kl > 5 && strcmp(k + kl - 5, "_note") == 0 && json_is_string(v))
            continue;
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, k) == 0;
        if (!ok) {
            size_t at = push(p, "%s%s", p->path[0] ? "." : "", k);
            fail(p, "unknown field (allowed: see docs/engines.md)");
            pop(p, at);
            return -1;
        }
    }
    return 0;
}

static int is_ident_char(char c, int extra)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           (extra && (c == '-' || c == '.' || (c >= 'A' && c <= 'Z')));
}

/* A relative path that stays inside its folder: no absolute path, no "..",
 * no empty or "." segment, no backslash. `glob`: '*' allowed. */
static int safe_rel_path(const char *s, int glob)
{
    if (!*s || *s == '/' || strchr(s, '\\') || (!glob && strchr(s, '*')))
        return 0;
    const char *seg = s;
    for (;;) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return 0;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)seg[i] < 0x20)
                return 0;
        if (!end)
            return 1;
        seg = end + 1;
    }
}

/* A model's name is its folder when it has no "folder", and what
 * "{model}" in file names stands for: one path segment, so a manifest
 * cannot reach outside the engine folder through it. */
static int check_model_name(parser *p, const char *name)
{
    int ok = strcmp(name, ".") != 0 && strcmp(name, "..") != 0 && !strchr(name, '/') &&
             !strchr(name, '\\');
    for (const char *c = name; ok && *c; c++)
        ok = (unsigned char)*c >= 0x20;
    return ok ? 0
              : fail(p, "model name \"%s\" must be usable as a folder name (no '/', '\\', "
                        "control characters, '.' or '..')",
                     name);
}

/* Reads an optional string field (required when `req`). */
static int get_str(parser *p, json_t *obj, const char *key, int req, char **out)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v) {
        if (!req)
            return 0;
        size_t at = push(p, "%s%s", p->path[0] ? "." : "", key);
        fail(p, "required");
        pop(p, at);
        return -1;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        memchr(json_string_value(v), 0, json_string_length(v))) {
        size_t at = push(p, "%s%s", p->path[0] ? "." : "", key);
        fail(p, "must be a non-empty string");
        pop(p, at);
        return -1;
    }
    *out = dup(p, json_string_value(v));
    return *out ? 0 : -1;
}

static int get_path(parser *p, json_t *obj, const char *key, int req, char **out)
{
    if (get_str(p, obj, key, req, out) != 0)
        return -1;
    if (*out && !safe_rel_path(*out, 0)) {
        size_t at = push(p, "%s%s", p->path[0] ? "." : "", key);
        fail(p, "\"%s\" must be a relative path inside its folder (no '/' at the start, "
                "no '..', no '\\\\')",
             *out);
        pop(p, at);
        return -1;
    }
    return 0;
}

static int get_bool(parser *p, json_t *obj, const char *key, int req, int *out)
{
    json_t *v = json_object_get(obj, key);
    *out = 0;
    if (!v && !req)
        return 0;
    if (!v || !json_is_boolean(v)) {
        size_t at = push(p, "%s%s", p->path[0] ? "." : "", key);
        fail(p, v ? "must be true or false" : "required");
        pop(p, at);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

/* An array of non-empty strings; `check` validates each (may be NULL). */
static int get_strs(parser *p, json_t *obj, const char *key, int req, int nonempty, char ***out,
                    size_t *n, int (*check)(parser *, const char *))
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    *n = 0;
    if (!v && !req)
        return 0;
    size_t at = push(p, "%s%s", p->path[0] ? "." : "", key);
    if (!v || !json_is_array(v)) {
        fail(p, v ? "must be an array of strings" : "required");
        goto bad;
    }
    if (nonempty && json_array_size(v) == 0) {
        fail(p, "must not be empty");
        goto bad;
    }
    *out = ttsm__calloc(json_array_size(v) + 1, sizeof **out);
    if (!*out) {
        oom(p);
        goto bad;
    }
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s) {
        size_t at2 = push(p, "[%zu]", i);
        if (!json_is_string(s) || json_string_length(s) == 0) {
            fail(p, "must be a non-empty string");
            goto bad;
        }
        if (check && check(p, json_string_value(s)) != 0)
            goto bad;
        if (!((*out)[i] = dup(p, json_string_value(s))))
            goto bad;
        (*n)++;
        pop(p, at2);
    }
    pop(p, at);
    return 0;
bad:
    pop(p, at);
    return -1;
}

static void free_strs(char **s, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        ttsm__free(s[i]);
    ttsm__free(s);
}

static int check_ident(parser *p, const char *s)
{
    for (const char *c = s; *c; c++)
        if (!is_ident_char(*c, 0))
            return fail(p, "\"%s\" may hold only a-z, 0-9 and '_'", s);
    return 0;
}

/* System folders are the one place a manifest names an absolute path. */
static int check_abs_dir(parser *p, const char *s)
{
    if (s[0] != '/' || strstr(s, "/../") || strstr(s, "/./") ||
        (strlen(s) >= 3 && strcmp(s + strlen(s) - 3, "/..") == 0))
        return fail(p, "\"%s\" must be an absolute folder without '.' or '..' segments", s);
    return 0;
}

static int check_device_kind(parser *p, const char *s)
{
    if (strcmp(s, "cpu") != 0 && strcmp(s, "cuda") != 0)
        return fail(p, "\"%s\" is not a device kind (cpu, cuda)", s);
    return 0;
}

static int check_file_pattern(parser *p, const char *s)
{
    if (!safe_rel_path(s, 1))
        return fail(p, "\"%s\" must be a relative path inside the model folder", s);
    const char *slash = strrchr(s, '/');
    const char *star = strchr(s, '*');
    if (star && slash && star < slash)
        return fail(p, "\"%s\": '*' may appear in the file name only", s);
    if (star && strchr(star + 1, '*'))
        return fail(p, "\"%s\": at most one '*'", s);
    return 0;
}

/* Replaces each language name or code by its code, in place. */
static int normalise_languages(parser *p, char **langs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *code = ttsm__language_code(langs[i]);
        if (!code) {
            size_t at = push(p, ".languages[%zu]", i);
            fail(p, "\"%s\" is not a known language name or ISO 639-1 code", langs[i]);
            pop(p, at);
            return -1;
        }
        char *c = dup(p, code);
        if (!c)
            return -1;
        ttsm__free(langs[i]);
        langs[i] = c;
    }
    return 0;
}

static int check_repo_id(const char *id)
{
    const char *slash = strchr(id, '/');
    if (!slash || slash == id || !slash[1] || strchr(slash + 1, '/'))
        return 0;
    for (const char *c = id; *c; c++)
        if (!is_ident_char(*c, 1) && *c != '/')
            return 0;
    return 1;
}

static int parse_repo(parser *p, json_t *v, ttsm__repo *r)
{
    memset(r, 0, sizeof *r);
    static const char *const keys[] = {"id", "revision", "subfolder", "type", NULL};
    if (!json_is_object(v))
        return fail(p, "must be an object {\"id\": \"org/name\", ...}");
    if (check_keys(p, v, keys) != 0 || get_str(p, v, "id", 1, &r->id) != 0 ||
        get_str(p, v, "revision", 0, &r->revision) != 0 ||
        get_path(p, v, "subfolder", 0, &r->subfolder) != 0)
        return -1;
    if (!check_repo_id(r->id))
        return fail(p, "id \"%s\" is not \"org/name\"", r->id);
    json_t *t = json_object_get(v, "type");
    if (t) {
        if (!json_is_string(t) || (strcmp(json_string_value(t), "model") != 0 &&
                                   strcmp(json_string_value(t), "dataset") != 0))
            return fail(p, "type must be \"model\" or \"dataset\"");
        r->dataset = strcmp(json_string_value(t), "dataset") == 0;
    }
    return 0;
}

static void free_repo(ttsm__repo *r)
{
    if (!r)
        return;
    ttsm__free(r->id);
    ttsm__free(r->revision);
    ttsm__free(r->subfolder);
}

/* Model types named by a model or component must be the engine's. */
static int check_types(parser *p, const ttsm__manifest *m, char *const *types, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int ok = 0;
        for (size_t j = 0; j < m->n_model_types && !ok; j++)
            ok = strcmp(types[i], m->model_types[j]) == 0;
        if (!ok)
            return fail(p, "type \"%s\" is not one of the engine's model_types", types[i]);
    }
    return 0;
}

/* "repo_files": {"org/name": ["path", ...], ...}. Which ids may appear is
 * checked once the model's repos are known (check_hub_files). */
static int parse_repo_files(parser *p, json_t *v, ttsm__comp_spec *c)
{
    json_t *rf = json_object_get(v, "repo_files");
    if (!rf)
        return 0;
    size_t at = push(p, ".repo_files");
    int rc = -1;
    if (!json_is_object(rf) || json_object_size(rf) == 0) {
        fail(p, "must be an object {\"org/name\": [\"path\", ...]} naming at least one repo");
        goto out;
    }
    if (!(c->repo_files = ttsm__calloc(json_object_size(rf), sizeof *c->repo_files))) {
        oom(p);
        goto out;
    }
    const char *k;
    json_t *files;
    json_object_foreach(rf, k, files) {
        ttsm__repo_files *r = &c->repo_files[c->n_repo_files++];
        if (!check_repo_id(k)) {
            size_t at2 = push(p, ".%s", k);
            fail(p, "\"%s\" is not a repo id \"org/name\"", k);
            pop(p, at2);
            goto out;
        }
        if (!(r->repo = dup(p, k)))
            goto out;
        /* An empty list says the repo does not hold the component. */
        json_t *wrap = json_pack("{s:O}", k, files);
        if (!wrap) {
            oom(p);
            goto out;
        }
        int bad = get_strs(p, wrap, k, 1, 0, &r->files, &r->n_files, check_file_pattern);
        json_decref(wrap);
        if (bad)
            goto out;
    }
    rc = 0;
out:
    pop(p, at);
    return rc;
}

static int parse_comp(parser *p, const ttsm__manifest *m, json_t *v, ttsm__comp_spec *c)
{
    static const char *const keys[] = {"name",     "kind",       "files",  "optional",
                                       "subfolder", "borrow",    "shared", "repo",
                                       "types",    "when",       "repo_files",
                                       "deliberate_pattern",     NULL};
    memset(c, 0, sizeof *c);
    if (!json_is_object(v))
        return fail(p, "a component must be an object");
    if (check_keys(p, v, keys) != 0 || get_str(p, v, "name", 1, &c->name) != 0 ||
        check_ident(p, c->name) != 0 || get_str(p, v, "borrow", 0, &c->borrow) != 0 ||
        get_str(p, v, "shared", 0, &c->shared) != 0 ||
        get_path(p, v, "subfolder", 0, &c->subfolder) != 0 ||
        get_bool(p, v, "optional", 0, &c->optional) != 0 ||
        get_bool(p, v, "deliberate_pattern", 0, &c->deliberate_pattern) != 0 ||
        get_strs(p, v, "files", 0, 1, &c->files, &c->n_files, check_file_pattern) != 0 ||
        get_strs(p, v, "types", 0, 1, &c->types, &c->n_types, check_ident) != 0 ||
        parse_repo_files(p, v, c) != 0)
        return -1;
    /* Files of its own may come with a borrow: the borrowed model's file is
     * the fallback (ChatterBox Italian's tokenizer is English's when its
     * folder has none). */
    int sources = (c->files != NULL) + (c->borrow != NULL && !c->files) + (c->shared != NULL);
    if (sources != 1)
        return fail(p, "component \"%s\" needs exactly one of files, borrow or shared (files "
                       "may come with a borrow as their fallback)",
                    c->name);
    json_t *kind = json_object_get(v, "kind");
    if (c->files) {
        const char *k = json_is_string(kind) ? json_string_value(kind) : "";
        c->kind = strcmp(k, "tensors") == 0 ? TTSM__KIND_TENSORS
                  : strcmp(k, "json") == 0  ? TTSM__KIND_JSON
                  : strcmp(k, "blob") == 0  ? TTSM__KIND_BLOB
                                            : 0;
        if (!c->kind)
            return fail(p, "component \"%s\": kind must be \"tensors\", \"json\" or \"blob\"",
                        c->name);
    } else if (kind || c->subfolder || json_object_get(v, "repo") || c->repo_files ||
               c->deliberate_pattern) {
        return fail(p, "component \"%s\": a borrowed or shared component takes no kind, "
                       "subfolder, repo, repo_files or deliberate_pattern (its source model "
                       "has them)",
                    c->name);
    }
    json_t *r = json_object_get(v, "repo");
    if (r) {
        if (!(c->repo = ttsm__malloc(sizeof *c->repo)))
            return oom(p);
        size_t at = push(p, ".repo");
        int rc = parse_repo(p, r, c->repo);
        pop(p, at);
        if (rc != 0)
            return -1;
    }
    if (check_types(p, m, c->types, c->n_types) != 0)
        return -1;
    json_t *w = json_object_get(v, "when");
    if (w) {
        if (!json_is_object(w) || json_object_size(w) != 1)
            return fail(p, "when must be an object with one param: {\"param\": \"value\"}");
        const char *k = json_object_iter_key(json_object_iter(w));
        json_t *val = json_object_iter_value(json_object_iter(w));
        const ttsm__param_spec *ps = ttsm__manifest_param(m, k);
        if (!ps)
            return fail(p, "when names \"%s\", which is not a declared param", k);
        if (!json_is_string(val))
            return fail(p, "when value must be a string");
        int ok = ps->n_values == 0;
        for (size_t i = 0; i < ps->n_values && !ok; i++)
            ok = strcmp(ps->values[i], json_string_value(val)) == 0;
        if (!ok)
            return fail(p, "when: \"%s\" is not an allowed value of %s", json_string_value(val),
                        k);
        if (!(c->when_key = dup(p, k)) || !(c->when_value = dup(p, json_string_value(val))))
            return -1;
    }
    return 0;
}

static void free_comp(ttsm__comp_spec *c)
{
    ttsm__free(c->name);
    free_strs(c->files, c->n_files);
    for (size_t i = 0; i < c->n_repo_files; i++) {
        ttsm__free(c->repo_files[i].repo);
        free_strs(c->repo_files[i].files, c->repo_files[i].n_files);
    }
    ttsm__free(c->repo_files);
    ttsm__free(c->subfolder);
    ttsm__free(c->borrow);
    ttsm__free(c->shared);
    free_repo(c->repo);
    ttsm__free(c->repo);
    free_strs(c->types, c->n_types);
    ttsm__free(c->when_key);
    ttsm__free(c->when_value);
}

/* "components": an array, or the name of a component set. An array may
 * name sets among its components: their components take that place (RVC
 * voices are the "voice" set plus, for some, an index of their own). */
static int parse_comps(parser *p, const ttsm__manifest *m, json_t *sets, json_t *v,
                       ttsm__comp_spec **out, size_t *n)
{
    size_t at = push(p, ".components");
    *out = NULL;
    *n = 0;
    json_t *list = NULL;
    if (!v) {
        fail(p, "required");
        goto bad;
    }
    if (json_is_string(v)) {
        if (!(v = json_pack("[O]", v))) {
            oom(p);
            goto bad;
        }
    } else {
        json_incref(v);
    }
    if (!json_is_array(v) || json_array_size(v) == 0) {
        fail(p, "must be a non-empty array or the name of a component set");
        goto bad;
    }
    /* Flatten: each set named in the list is replaced by its components,
     * remembered with where they came from for messages. */
    if (!(list = json_array())) {
        oom(p);
        goto bad;
    }
    size_t i;
    json_t *c;
    json_array_foreach(v, i, c) {
        if (!json_is_string(c)) {
            if (json_array_append_new(list, json_pack("{s:O, s:I, s:n}", "c", c, "at",
                                                      (json_int_t)i, "set")) != 0) {
                oom(p);
                goto bad;
            }
            continue;
        }
        size_t at2 = push(p, "[%zu]", i);
        json_t *set = json_object_get(sets, json_string_value(c));
        if (!set) {
            fail(p, "no component set \"%s\" in component_sets", json_string_value(c));
            goto bad;
        }
        if (!json_is_array(set) || json_array_size(set) == 0) {
            fail(p, "component set \"%s\" must be a non-empty array of components",
                 json_string_value(c));
            goto bad;
        }
        size_t j;
        json_t *sc;
        json_array_foreach(set, j, sc) {
            if (json_is_string(sc)) {
                fail(p, "component set \"%s\" names another set: sets do not nest",
                     json_string_value(c));
                goto bad;
            }
            if (json_array_append_new(list, json_pack("{s:O, s:I, s:s}", "c", sc, "at",
                                                      (json_int_t)j, "set",
                                                      json_string_value(c))) != 0) {
                oom(p);
                goto bad;
            }
        }
        pop(p, at2);
    }
    if (!(*out = ttsm__calloc(json_array_size(list), sizeof **out))) {
        oom(p);
        goto bad;
    }
    json_array_foreach(list, i, c) {
        json_t *set = json_object_get(c, "set");
        size_t at2 = json_is_string(set)
                         ? push(p, "(set %s)[%d]", json_string_value(set),
                                (int)json_integer_value(json_object_get(c, "at")))
                         : push(p, "[%d]", (int)json_integer_value(json_object_get(c, "at")));
        (*n)++;
        if (parse_comp(p, m, json_object_get(c, "c"), &(*out)[i]) != 0)
            goto bad;
        /* One name may repeat only under different `when` values. */
        for (size_t j = 0; j < i; j++) {
            const ttsm__comp_spec *a = &(*out)[j], *b = &(*out)[i];
            if (strcmp(a->name, b->name) != 0)
                continue;
            if (!a->when_key || !b->when_key || strcmp(a->when_key, b->when_key) != 0 ||
                strcmp(a->when_value, b->when_value) == 0) {
                fail(p, "component \"%s\" appears twice (allowed only under different "
                        "\"when\" values of one param)",
                     b->name);
                goto bad;
            }
        }
        pop(p, at2);
    }
    json_decref(list);
    json_decref(v);
    pop(p, at);
    return 0;
bad:
    json_decref(list);
    json_decref(v);
    pop(p, at);
    return -1;
}

/* The repos component `cs` of model `ms` is searched in: its own, else the
 * model's. */
static const ttsm__repo *comp_repo(const ttsm__model_spec *ms, const ttsm__comp_spec *cs,
                                   size_t i, size_t *n)
{
    *n = cs->repo ? 1 : ms->n_repos;
    return cs->repo ? cs->repo : i < ms->n_repos ? &ms->repos[i] : NULL;
}

/* What a pull will fetch must be exact: every repo_files entry names a
 * repo the component is searched in, a repo used twice in a model is named
 * with one revision and one type, and a '*' in a repo file name is an
 * error unless the component marks it deliberate - a pattern in a repo
 * that holds training checkpoints or every step would fetch gigabytes that
 * were never meant (F5-TTS repos do). */
static int check_hub_files(parser *p, const ttsm__model_spec *ms)
{
    for (size_t i = 0; i < ms->n_repos + ms->n_comps; i++) {
        const ttsm__repo *b = i < ms->n_repos ? &ms->repos[i] : ms->comps[i - ms->n_repos].repo;
        for (size_t j = 0; b && j < i; j++) {
            const ttsm__repo *a = j < ms->n_repos ? &ms->repos[j] : ms->comps[j - ms->n_repos].repo;
            if (!a || strcmp(a->id, b->id) != 0)
                continue;
            const char *ra = a->revision ? a->revision : "main";
            const char *rb = b->revision ? b->revision : "main";
            if (strcmp(ra, rb) != 0 || a->dataset != b->dataset)
                return fail(p, "repo \"%s\" is named twice with a different %s (%s, %s): one "
                               "model's files come from one revision of a repo",
                            a->id, a->dataset != b->dataset ? "type" : "revision",
                            a->dataset != b->dataset ? (a->dataset ? "dataset" : "model") : ra,
                            a->dataset != b->dataset ? (b->dataset ? "dataset" : "model") : rb);
        }
    }
    for (size_t c = 0; c < ms->n_comps; c++) {
        const ttsm__comp_spec *cs = &ms->comps[c];
        if (!cs->files)
            continue;
        size_t at = push(p, ".components[%zu]", c);
        size_t n_repos;
        comp_repo(ms, cs, 0, &n_repos);
        for (size_t r = 0; r < cs->n_repo_files; r++) {
            int known = 0;
            for (size_t i = 0; i < n_repos && !known; i++)
                known = strcmp(comp_repo(ms, cs, i, &n_repos)->id, cs->repo_files[r].repo) == 0;
            if (!known)
                return fail(p, "component \"%s\": repo_files names \"%s\", which is not a repo "
                               "it is searched in (%s)",
                            cs->name, cs->repo_files[r].repo,
                            cs->repo ? "its own repo" : "the model's repos");
        }
        int stars = 0;
        for (size_t i = 0; i < n_repos; i++) {
            const ttsm__repo *repo = comp_repo(ms, cs, i, &n_repos);
            size_t nf;
            char *const *files = ttsm__comp_repo_files(cs, repo->id, &nf);
            for (size_t f = 0; f < nf; f++) {
                if (!strchr(files[f], '*'))
                    continue;
                stars++;
                if (!cs->deliberate_pattern)
                    return fail(p, "component \"%s\": \"%s\" in repo %s is a pattern; a pull "
                                   "would fetch whatever matches (training checkpoints, every "
                                   "step): name the exact file, or set \"deliberate_pattern\": "
                                   "true",
                                cs->name, files[f], repo->id);
            }
        }
        if (cs->deliberate_pattern && !stars)
            return fail(p, "component \"%s\": deliberate_pattern is set, but no repo file name "
                           "holds a '*'",
                        cs->name);
        pop(p, at);
    }
    return 0;
}

static int parse_model(parser *p, const ttsm__manifest *m, json_t *sets, json_t *v,
                       ttsm__model_spec *ms, int shared)
{
    static const char *const keys[] = {"name",       "language", "folder",     "dir",
                                       "variant_of", "types",    "repos",      "components",
                                       "system_dirs", "legacy_folder", NULL};
    memset(ms, 0, sizeof *ms);
    if (!json_is_object(v))
        return fail(p, "a model must be an object");
    if (check_keys(p, v, keys) != 0)
        return -1;
    if (shared ? get_str(p, v, "name", 0, &ms->name) : get_str(p, v, "name", 1, &ms->name))
        return -1;
    if (ms->name && check_model_name(p, ms->name) != 0)
        return -1;
    if (get_str(p, v, "language", 0, &ms->language) != 0 ||
        get_path(p, v, "folder", 0, &ms->folder) != 0 ||
        get_path(p, v, "dir", 0, &ms->dir) != 0 ||
        get_path(p, v, "legacy_folder", 0, &ms->legacy_folder) != 0 ||
        get_str(p, v, "variant_of", 0, &ms->variant_of) != 0 ||
        get_strs(p, v, "types", 0, 1, &ms->types, &ms->n_types, check_ident) != 0 ||
        get_strs(p, v, "system_dirs", 0, 1, &ms->system_dirs, &ms->n_system_dirs,
                 check_abs_dir) != 0)
        return -1;
    if (ms->language) {
        const char *code = ttsm__language_code(ms->language);
        if (!code)
            return fail(p, "language \"%s\" is not a known language name or ISO 639-1 code",
                        ms->language);
        ttsm__free(ms->language);
        if (!(ms->language = dup(p, code)))
            return -1;
    }
    if (check_types(p, m, ms->types, ms->n_types) != 0)
        return -1;
    json_t *repos = json_object_get(v, "repos");
    if (repos) {
        size_t at = push(p, ".repos");
        if (!json_is_array(repos)) {
            fail(p, "must be an array");
            pop(p, at);
            return -1;
        }
        if (!(ms->repos = ttsm__calloc(json_array_size(repos) + 1, sizeof *ms->repos))) {
            pop(p, at);
            return oom(p);
        }
        size_t i;
        json_t *r;
        json_array_foreach(repos, i, r) {
            size_t at2 = push(p, "[%zu]", i);
            ms->n_repos++;
            int rc = parse_repo(p, r, &ms->repos[i]);
            pop(p, at2);
            if (rc != 0) {
                pop(p, at);
                return -1;
            }
        }
        pop(p, at);
    }
    if (parse_comps(p, m, sets, json_object_get(v, "components"), &ms->comps, &ms->n_comps) != 0)
        return -1;
    return check_hub_files(p, ms);
}

static void free_model(ttsm__model_spec *ms)
{
    ttsm__free(ms->name);
    ttsm__free(ms->language);
    ttsm__free(ms->folder);
    ttsm__free(ms->dir);
    ttsm__free(ms->legacy_folder);
    ttsm__free(ms->variant_of);
    free_strs(ms->system_dirs, ms->n_system_dirs);
    free_strs(ms->types, ms->n_types);
    for (size_t i = 0; i < ms->n_repos; i++)
        free_repo(&ms->repos[i]);
    ttsm__free(ms->repos);
    for (size_t i = 0; i < ms->n_comps; i++)
        free_comp(&ms->comps[i]);
    ttsm__free(ms->comps);
}

void ttsm__manifest_free(ttsm__manifest *m)
{
    if (!m)
        return;
    ttsm__free(m->source);
    ttsm__free(m->json);
    ttsm__free(m->name);
    free_strs(m->aliases, m->n_aliases);
    ttsm__free(m->description);
    ttsm__free(m->runtime);
    ttsm__free(m->factory);
    free_strs(m->model_types, m->n_model_types);
    ttsm__free(m->recovery);
    free_strs(m->devices, m->n_devices);
    ttsm__free(m->default_device);
    free_strs(m->languages, m->n_languages);
    for (size_t i = 0; i < m->n_params; i++) {
        ttsm__free(m->params[i].name);
        ttsm__free(m->params[i].def);
        free_strs(m->params[i].values, m->params[i].n_values);
        free_strs(m->params[i].dtype_values, m->params[i].n_dtypes);
        ttsm__free(m->params[i].dtypes);
    }
    ttsm__free(m->params);
    ttsm__free(m->folder);
    free_strs(m->legacy, m->n_legacy);
    ttsm__free(m->default_model);
    ttsm__free(m->language_fallback);
    for (size_t i = 0; i < m->n_models; i++)
        free_model(&m->models[i]);
    ttsm__free(m->models);
    ttsm__free(m->model_index);
    for (size_t i = 0; i < m->n_shared; i++)
        free_model(&m->shared[i]);
    ttsm__free(m->shared);
    ttsm__free(m);
}

/* A param's "dtype": {value: "float16" | "bfloat16" | "float32"}: the
 * values of the param that load the weights in that dtype. */
static int parse_param_dtype(parser *p, ttsm__param_spec *ps, json_t *v)
{
    size_t at = push(p, ".dtype");
    int rc = -1;
    if (!json_is_object(v) || json_object_size(v) == 0) {
        fail(p, "must be an object {\"<param value>\": \"float16\" | \"bfloat16\" | "
                "\"float32\"}");
        goto out;
    }
    size_t n = json_object_size(v);
    if (!(ps->dtype_values = ttsm__calloc(n + 1, sizeof *ps->dtype_values)) ||
        !(ps->dtypes = ttsm__calloc(n, sizeof *ps->dtypes))) {
        oom(p);
        goto out;
    }
    const char *k;
    json_t *d;
    json_object_foreach(v, k, d) {
        int ok = ps->n_values == 0;
        for (size_t i = 0; i < ps->n_values && !ok; i++)
            ok = strcmp(ps->values[i], k) == 0;
        if (!ok) {
            fail(p, "\"%s\" is not one of the param's values", k);
            goto out;
        }
        ttsm_dtype dt = json_is_string(d) ? ttsm__load_dtype(json_string_value(d))
                                          : TTSM_DTYPE_INVALID;
        if (!dt) {
            fail(p, "%s: must be \"float16\", \"bfloat16\" or \"float32\"", k);
            goto out;
        }
        if (!(ps->dtype_values[ps->n_dtypes] = dup(p, k)))
            goto out;
        ps->dtypes[ps->n_dtypes++] = dt;
    }
    rc = 0;
out:
    pop(p, at);
    return rc;
}

/* "engine_memory": {"extra_bytes": N, "ratio": R} (either may be left out). */
static int parse_engine_memory(parser *p, ttsm__manifest *m, json_t *v)
{
    static const char *const keys[] = {"extra_bytes", "ratio", NULL};
    strcpy(p->path, "engine_memory");
    if (!json_is_object(v) || json_object_size(v) == 0)
        return fail(p, "must be an object {\"extra_bytes\": bytes, \"ratio\": number}");
    if (check_keys(p, v, keys) != 0)
        return -1;
    json_t *b = json_object_get(v, "extra_bytes"), *r = json_object_get(v, "ratio");
    if (b && (!json_is_integer(b) || json_integer_value(b) < 0))
        return fail(p, "extra_bytes must be an integer >= 0");
    if (r && (!json_is_number(r) || json_number_value(r) < 0 || json_number_value(r) > 1e6))
        return fail(p, "ratio must be a number from 0 to 1e6");
    m->extra_bytes = b ? (uint64_t)json_integer_value(b) : 0;
    m->extra_ratio = r ? json_number_value(r) : 0;
    p->path[0] = '\0';
    return 0;
}

static int parse_params(parser *p, ttsm__manifest *m, json_t *root)
{
    json_t *params = json_object_get(root, "params");
    char **identity = NULL;
    size_t n_identity = 0;
    if (get_strs(p, root, "identity_params", 0, 0, &identity, &n_identity, check_ident) != 0)
        return -1;
    int rc = -1;
    size_t at = push(p, "params");
    if (params && !json_is_object(params)) {
        fail(p, "must be an object of {\"name\": {\"default\": ..., \"values\": [...]}}");
        goto out;
    }
    if (params) {
        if (!(m->params = ttsm__calloc(json_object_size(params) + 1, sizeof *m->params))) {
            oom(p);
            goto out;
        }
        const char *k;
        json_t *v;
        json_object_foreach(params, k, v) {
            static const char *const keys[] = {"default", "values", "dtype", NULL};
            ttsm__param_spec *ps = &m->params[m->n_params++];
            size_t at2 = push(p, ".%s", k);
            if (check_ident(p, k) != 0 || !(ps->name = dup(p, k)))
                goto out;
            if (strcmp(k, "dtype") == 0) {
                fail(p, "\"dtype\" is every engine's load dtype param and cannot be declared "
                        "(map a param onto it with \"dtype\": {value: dtype})");
                goto out;
            }
            if (!json_is_object(v)) {
                fail(p, "must be an object");
                goto out;
            }
            if (check_keys(p, v, keys) != 0 || get_str(p, v, "default", 1, &ps->def) != 0 ||
                get_strs(p, v, "values", 0, 1, &ps->values, &ps->n_values, NULL) != 0)
                goto out;
            int ok = ps->n_values == 0;
            for (size_t i = 0; i < ps->n_values && !ok; i++)
                ok = strcmp(ps->values[i], ps->def) == 0;
            if (!ok) {
                fail(p, "default \"%s\" is not one of its values", ps->def);
                goto out;
            }
            if (json_object_get(v, "dtype") &&
                parse_param_dtype(p, ps, json_object_get(v, "dtype")) != 0)
                goto out;
            pop(p, at2);
        }
    }
    pop(p, at);
    at = push(p, "identity_params");
    for (size_t i = 0; i < n_identity; i++) {
        ttsm__param_spec *ps = (ttsm__param_spec *)ttsm__manifest_param(m, identity[i]);
        if (!ps) {
            fail(p, "\"%s\" is not declared in params", identity[i]);
            goto out;
        }
        ps->identity = 1;
    }
    rc = 0;
out:
    pop(p, at);
    free_strs(identity, n_identity);
    return rc;
}

static int declares_fallback(const ttsm__model_spec *ms)
{
    if (ms->variant_of || ms->n_repos > 1)
        return 1;
    for (size_t c = 0; c < ms->n_comps; c++) {
        const ttsm__comp_spec *cs = &ms->comps[c];
        if (cs->n_files > 1 || (cs->files && cs->borrow))
            return 1;
        for (size_t r = 0; r < cs->n_repo_files; r++)
            if (cs->repo_files[r].n_files > 1)
                return 1;
    }
    return 0;
}

/* has_fallback says the engine declares a fallback, and the tests take
 * each one (tests/cli/test_store_chains.sh). A claim with nothing behind
 * it is an error (F5-TTS claimed one and had none), and so is a variant_of
 * or language_fallback without the claim: the manager builds those steps
 * only for engines that claim a fallback, so they would never be tried. */
static int check_fallback_claim(parser *p, const ttsm__manifest *m)
{
    int any = m->language_fallback != NULL, chain = any;
    for (size_t i = 0; i < m->n_models; i++) {
        any |= declares_fallback(&m->models[i]);
        chain |= m->models[i].variant_of != NULL;
    }
    for (size_t i = 0; i < m->n_shared; i++)
        any |= declares_fallback(&m->shared[i]);
    strcpy(p->path, "capabilities.has_fallback");
    if (m->has_fallback && !any)
        return fail(p, "true, but the manifest declares no fallback: no variant_of, "
                       "language_fallback, second repo, alternative file or own file before a "
                       "borrowed one");
    if (!m->has_fallback && chain)
        return fail(p, "false, so its %s would never be tried: set it to true",
                    m->language_fallback ? "language_fallback" : "variant_of");
    p->path[0] = '\0';
    return 0;
}

/* The slot of `name` in the model index, or the empty slot it would take. */
static size_t model_slot(const ttsm__manifest *m, const char *name)
{
    size_t mask = m->model_index_cap - 1, i = (size_t)XXH3_64bits(name, strlen(name)) & mask;
    while (m->model_index[i] && strcmp(m->models[m->model_index[i] - 1].name, name) != 0)
        i = (i + 1) & mask;
    return i;
}

/* Indexes the models by name, refusing a name that repeats. A manifest may
 * hold tens of thousands of models (one per voice): comparing each with
 * every other took seconds on every registry start. */
static int index_models(parser *p, ttsm__manifest *m)
{
    size_t cap = 16;
    while (cap < 2 * m->n_models)
        cap *= 2;
    if (!(m->model_index = ttsm__calloc(cap, sizeof *m->model_index)))
        return oom(p);
    m->model_index_cap = cap;
    for (size_t i = 0; i < m->n_models; i++) {
        size_t k = model_slot(m, m->models[i].name);
        if (m->model_index[k]) {
            size_t at = push(p, "models[%zu]", i);
            (void)at;
            return fail(p, "model name \"%s\" repeats models[%u]", m->models[i].name,
                        m->model_index[k] - 1);
        }
        m->model_index[k] = (uint32_t)i + 1;
    }
    return 0;
}

/* Borrowed and shared components must name a component that exists where
 * they point, and borrowing does not chain. */
static int check_references(parser *p, ttsm__manifest *m)
{
    if (index_models(p, m) != 0)
        return -1;
    for (size_t i = 0; i < m->n_models; i++) {
        ttsm__model_spec *ms = &m->models[i];
        size_t at = push(p, "models[%zu]", i);
        if (ms->variant_of && (!ttsm__manifest_model(m, ms->variant_of) ||
                               strcmp(ms->variant_of, ms->name) == 0))
            return fail(p, "variant_of \"%s\" is not another model of this engine",
                        ms->variant_of);
        for (size_t c = 0; c < ms->n_comps; c++) {
            const ttsm__comp_spec *cs = &ms->comps[c];
            const ttsm__model_spec *src = NULL;
            if (cs->borrow) {
                src = ttsm__manifest_model(m, cs->borrow);
                if (!src || src == ms)
                    return fail(p, "component \"%s\" borrows from \"%s\", which is not another "
                                   "model of this engine",
                                cs->name, cs->borrow);
            } else if (cs->shared) {
                src = ttsm__manifest_shared(m, cs->shared);
                if (!src)
                    return fail(p, "component \"%s\" uses shared model \"%s\", which is not in "
                                   "\"shared\"",
                                cs->name, cs->shared);
            } else {
                continue;
            }
            const ttsm__comp_spec *found = NULL;
            for (size_t k = 0; k < src->n_comps && !found; k++)
                if (strcmp(src->comps[k].name, cs->name) == 0)
                    found = &src->comps[k];
            if (!found || !found->files)
                return fail(p, "component \"%s\": \"%s\" has no component of that name with "
                               "files of its own",
                            cs->name, cs->borrow ? cs->borrow : cs->shared);
            if (cs->files && found->kind != cs->kind)
                return fail(p, "component \"%s\": its files and the ones it borrows from \"%s\" "
                               "are of different kinds",
                            cs->name, cs->borrow);
        }
        pop(p, at);
    }
    if (!ttsm__manifest_model(m, m->default_model))
        return fail(p, "default_model \"%s\" is not a model of this engine", m->default_model);
    if (m->language_fallback && !ttsm__manifest_model(m, m->language_fallback))
        return fail(p, "language_fallback \"%s\" is not a model of this engine",
                    m->language_fallback);
    return check_fallback_claim(p, m);
}

ttsm_status ttsm__manifest_parse(const char *text, size_t len, const char *source,
                                 ttsm__manifest **out, ttsm_error *err)
{
    parser p = {source, err, TTSM_OK, ""};
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root && ttsm__json_oom(&je))
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, source, "out of memory", "parsing");
    if (!root) {
        /* a file that is no JSON at all (a passwd file) is quoted by a few
         * sanitised bytes at most */
        char why[200];
        return ttsm__err(err, TTSM_ERR_FORMAT, source, "invalid manifest", "not valid JSON: %s",
                         ttsm__json_error_text(&je, why, sizeof why));
    }
    ttsm__manifest *m = ttsm__calloc(1, sizeof *m);
    if (!m) {
        json_decref(root);
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, source, "out of memory", "manifest");
    }
    static const char *const keys[] = {
        "schema",          "name",          "aliases",        "description",
        "runtime",         "model_types",   "capabilities",   "devices",
        "default_device",  "languages",     "params",         "identity_params",
        "folder",          "legacy_folders", "default_model", "language_fallback",
        "component_sets",  "shared",        "models",         "sample_rate",
        "factory",         "engine_memory", NULL};
    json_t *caps, *sets, *shared, *models, *schema;
    if (!json_is_object(root)) {
        fail(&p, "a manifest is a JSON object");
        goto done;
    }
    if (check_keys(&p, root, keys) != 0)
        goto done;
    schema = json_object_get(root, "schema");
    if (!json_is_integer(schema) || json_integer_value(schema) != 1) {
        strcpy(p.path, "schema");
        fail(&p, "must be 1 (the only schema this library reads)");
        goto done;
    }
    if (!(m->source = dup(&p, source)) ||
        !(m->json = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        goto nomem;
    if (get_str(&p, root, "name", 1, &m->name) != 0)
        goto done;
    for (const char *c = m->name; *c; c++)
        if (!is_ident_char(*c, 0) && *c != '-') {
            strcpy(p.path, "name");
            fail(&p, "\"%s\" may hold only a-z, 0-9, '_' and '-'", m->name);
            goto done;
        }
    if (get_strs(&p, root, "aliases", 0, 0, &m->aliases, &m->n_aliases, NULL) != 0 ||
        get_str(&p, root, "description", 0, &m->description) != 0 ||
        get_str(&p, root, "runtime", 1, &m->runtime) != 0 ||
        get_str(&p, root, "factory", 0, &m->factory) != 0 ||
        get_strs(&p, root, "model_types", 1, 1, &m->model_types, &m->n_model_types,
                 check_ident) != 0 ||
        get_strs(&p, root, "devices", 1, 1, &m->devices, &m->n_devices, check_device_kind) != 0 ||
        get_str(&p, root, "default_device", 0, &m->default_device) != 0 ||
        get_strs(&p, root, "languages", 0, 0, &m->languages, &m->n_languages, NULL) != 0 ||
        normalise_languages(&p, m->languages, m->n_languages) != 0 ||
        get_path(&p, root, "folder", 1, &m->folder) != 0 ||
        get_strs(&p, root, "legacy_folders", 0, 0, &m->legacy, &m->n_legacy, NULL) != 0 ||
        get_str(&p, root, "default_model", 1, &m->default_model) != 0 ||
        get_str(&p, root, "language_fallback", 0, &m->language_fallback) != 0 ||
        parse_params(&p, m, root) != 0)
        goto done;
    for (size_t i = 0; i < m->n_legacy; i++)
        if (!safe_rel_path(m->legacy[i], 0)) {
            snprintf(p.path, sizeof p.path, "legacy_folders[%zu]", i);
            fail(&p, "\"%s\" must be a relative path inside the models root", m->legacy[i]);
            goto done;
        }
    if (strcmp(m->runtime, "pytorch") != 0 && strcmp(m->runtime, "native") != 0) {
        strcpy(p.path, "runtime");
        fail(&p, "\"%s\" is not \"pytorch\" or \"native\"", m->runtime);
        goto done;
    }
    if (m->default_device && strcmp(m->default_device, "auto") != 0 &&
        strcmp(m->default_device, "cpu") != 0 && strcmp(m->default_device, "cuda") != 0) {
        strcpy(p.path, "default_device");
        fail(&p, "\"%s\" is not auto, cpu or cuda", m->default_device);
        goto done;
    }
    for (size_t i = 0, used = 0; i < m->n_devices; i++)
        used += (size_t)snprintf(m->devices_csv + used, sizeof m->devices_csv - used, "%s%s",
                                 i ? "," : "", m->devices[i]);
    if (json_object_get(root, "sample_rate") &&
        (!json_is_integer(json_object_get(root, "sample_rate")) ||
         json_integer_value(json_object_get(root, "sample_rate")) <= 0)) {
        strcpy(p.path, "sample_rate");
        fail(&p, "must be a positive integer");
        goto done;
    }

    if (json_object_get(root, "engine_memory") &&
        parse_engine_memory(&p, m, json_object_get(root, "engine_memory")) != 0)
        goto done;
    caps = json_object_get(root, "capabilities");
    strcpy(p.path, "capabilities");
    if (!json_is_object(caps)) {
        fail(&p, caps ? "must be an object" : "required");
        goto done;
    }
    static const char *const cap_keys[] = {
        "supports_voice_conversion", "has_fallback",   "can_corrupt", "requires_special_init",
        "language_selects_model",    "single_instance", "recovery",   NULL};
    if (check_keys(&p, caps, cap_keys) != 0 ||
        get_bool(&p, caps, "supports_voice_conversion", 1, &m->supports_voice_conversion) ||
        get_bool(&p, caps, "has_fallback", 1, &m->has_fallback) ||
        get_bool(&p, caps, "can_corrupt", 1, &m->can_corrupt) ||
        get_bool(&p, caps, "requires_special_init", 1, &m->requires_special_init) ||
        get_bool(&p, caps, "language_selects_model", 1, &m->language_selects_model) ||
        get_bool(&p, caps, "single_instance", 1, &m->single_instance) ||
        get_str(&p, caps, "recovery", 1, &m->recovery))
        goto done;
    if (strcmp(m->recovery, "none") != 0 && strcmp(m->recovery, "invalidate") != 0) {
        fail(&p, "recovery \"%s\" is not \"none\" or \"invalidate\"", m->recovery);
        goto done;
    }
    if (m->can_corrupt != (strcmp(m->recovery, "invalidate") == 0)) {
        fail(&p, "an engine that can corrupt needs recovery \"invalidate\", and only it");
        goto done;
    }
    p.path[0] = '\0';

    sets = json_object_get(root, "component_sets");
    if (sets && !json_is_object(sets)) {
        strcpy(p.path, "component_sets");
        fail(&p, "must be an object of named component arrays");
        goto done;
    }
    shared = json_object_get(root, "shared");
    if (shared) {
        if (!json_is_object(shared)) {
            strcpy(p.path, "shared");
            fail(&p, "must be an object of named models");
            goto done;
        }
        if (!(m->shared = ttsm__calloc(json_object_size(shared) + 1, sizeof *m->shared)))
            goto nomem;
        const char *k;
        json_t *v;
        json_object_foreach(shared, k, v) {
            snprintf(p.path, sizeof p.path, "shared.%s", k);
            ttsm__model_spec *ms = &m->shared[m->n_shared++];
            if (parse_model(&p, m, sets, v, ms, 1) != 0)
                goto done;
            ttsm__free(ms->name);
            if (!(ms->name = dup(&p, k)) || check_model_name(&p, ms->name) != 0)
                goto done;
            if (!ms->folder && !ms->dir) {
                fail(&p, "a shared model needs \"folder\" (below the engine folder) or \"dir\"");
                goto done;
            }
        }
    }
    models = json_object_get(root, "models");
    strcpy(p.path, "models");
    if (!json_is_array(models) || json_array_size(models) == 0) {
        fail(&p, models ? "must be a non-empty array" : "required");
        goto done;
    }
    if (!(m->models = ttsm__calloc(json_array_size(models), sizeof *m->models)))
        goto nomem;
    size_t i;
    json_t *v;
    json_array_foreach(models, i, v) {
        snprintf(p.path, sizeof p.path, "models[%zu]", i);
        m->n_models++;
        if (parse_model(&p, m, sets, v, &m->models[i], 0) != 0)
            goto done;
    }
    p.path[0] = '\0';
    check_references(&p, m);
    goto done;
nomem:
    oom(&p);
done:
    json_decref(root);
    if (p.st != TTSM_OK) {
        ttsm__manifest_free(m);
        return p.st;
    }
    *out = m;
    return TTSM_OK;
}

const ttsm__model_spec *ttsm__manifest_model(const ttsm__manifest *m, const char *name)
{
    if (name && m->model_index_cap) {
        uint32_t k = m->model_index[model_slot(m, name)];
        return k ? &m->models[k - 1] : NULL;
    }
    for (size_t i = 0; name && i < m->n_models; i++)
        if (m->models[i].name && strcmp(m->models[i].name, name) == 0)
            return &m->models[i];
    return NULL;
}

const ttsm__model_spec *ttsm__manifest_shared(const ttsm__manifest *m, const char *name)
{
    for (size_t i = 0; name && i < m->n_shared; i++)
        if (m->shared[i].name && strcmp(m->shared[i].name, name) == 0)
            return &m->shared[i];
    return NULL;
}

const ttsm__param_spec *ttsm__manifest_param(const ttsm__manifest *m, const char *name)
{
    for (size_t i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0)
            return &m->params[i];
    return NULL;
}

char *const *ttsm__comp_repo_files(const ttsm__comp_spec *cs, const char *repo_id, size_t *n)
{
    for (size_t i = 0; repo_id && i < cs->n_repo_files; i++)
        if (strcmp(cs->repo_files[i].repo, repo_id) == 0) {
            *n = cs->repo_files[i].n_files;
            return cs->repo_files[i].files;
        }
    *n = cs->n_files;
    return cs->files;
}

int ttsm__model_serves(const ttsm__manifest *m, const ttsm__model_spec *ms, const char *type)
{
    if (ms->n_types == 0)
        return strcmp(type, m->model_types[0]) == 0;
    for (size_t i = 0; i < ms->n_types; i++)
        if (strcmp(ms->types[i], type) == 0)
            return 1;
    return 0;
}

const ttsm__model_spec *ttsm__manifest_model_for_language(const ttsm__manifest *m,
                                                          const char *code)
{
    for (size_t i = 0; code && i < m->n_models; i++)
        if (m->models[i].language && strcmp(m->models[i].language, code) == 0 &&
            !m->models[i].variant_of)
            return &m->models[i];
    return NULL;
}
