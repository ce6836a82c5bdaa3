/* roots.c - the list of models roots searched, in order (roots.h;
 * docs/engines.md "Models roots"): models_dirs, then each ComfyUI
 * installation's models/ folder and the TTS folders of its
 * extra_model_paths.yaml, read with libyaml. ComfyUI's own rules for that
 * file are followed: base_path (with ~ and $VAR expanded) relative to the
 * file's folder, paths relative to base_path (else to the file's folder),
 * several paths per key one per line, is_default putting them first. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/strbuf.h"
#include "store/roots.h"

static int is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

void ttsm__rootset_free(ttsm__rootset *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        ttsm__free(s->roots[i].path);
        ttsm__free(s->roots[i].origin);
    }
    for (size_t i = 0; i < s->n_warnings; i++)
        ttsm__free(s->warnings[i]);
    memset(s, 0, sizeof *s);
}

static ttsm_status oom(ttsm_error *err)
{
    return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, "models roots", "out of memory",
                     "collecting the roots");
}

static ttsm_status warn(ttsm__rootset *s, ttsm_error *err, const char *fmt, ...)
    TTSM__PRINTF(3, 4);
static ttsm_status warn(ttsm__rootset *s, ttsm_error *err, const char *fmt, ...)
{
    if (s->n_warnings == TTSM__MAX_ROOT_WARNINGS) {
        s->n_warnings_dropped++;
        return TTSM_OK;
    }
    char buf[TTSM_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof buf)
        memcpy(buf + sizeof buf - 4, "...", 4);
    if (!(s->warnings[s->n_warnings] = ttsm__strdup(buf)))
        return oom(err);
    s->n_warnings++;
    return TTSM_OK;
}

static char *join(const char *dir, const char *rel);

/* Adds a root unless the same folder is there already; a relative path is
 * taken from the working directory, so messages name the exact folder.
 * Owns nothing of the arguments. */
static ttsm_status add_root(ttsm__rootset *s, const char *given, int kind, const char *origin,
                            ttsm_error *err)
{
    char cwd[4096];
    char *abs = given[0] == '/' ? join("/", given)
                : getcwd(cwd, sizeof cwd) ? join(cwd, given)
                                          : ttsm__strdup(given);
    if (!abs)
        return oom(err);
    ttsm_status st = TTSM_OK;
    const char *path = abs;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->roots[i].path, path) == 0 && s->roots[i].kind == kind)
            goto out;
    if (s->n == TTSM__MAX_ROOTS) {
        st = warn(s, err, "%s: more than %d models roots; %s is not searched", origin,
                  TTSM__MAX_ROOTS, path);
        goto out;
    }
    ttsm__root *r = &s->roots[s->n];
    r->path = abs;
    abs = NULL;
    r->origin = ttsm__strdup(origin);
    if (!r->origin) {
        ttsm__free(r->path);
        r->path = NULL;
        st = oom(err);
        goto out;
    }
    r->kind = kind;
    r->exists = is_dir(r->path);
    s->n++;
out:
    ttsm__free(abs);
    return st;
}

/* Lexical normalisation, like Python's os.path.normpath: no "//", "." or
 * "a/.."; ".." above "/" stays at "/", leading ".." of a relative path are
 * kept. @return a new string, NULL when out of memory. */
static char *normalised(const char *p)
{
    size_t n = strlen(p);
    char *out = ttsm__malloc(n + 2);
    size_t *starts = ttsm__malloc((n / 2 + 2) * sizeof *starts);
    if (!out || !starts) {
        ttsm__free(out);
        ttsm__free(starts);
        return NULL;
    }
    int abs = p[0] == '/';
    size_t w = 0, depth = 0;
    if (abs)
        out[w++] = '/';
    for (const char *seg = p; *seg;) {
        while (*seg == '/')
            seg++;
        const char *end = seg;
        while (*end && *end != '/')
            end++;
        size_t len = (size_t)(end - seg);
        if (len == 0)
            break;
        if (len == 2 && seg[0] == '.' && seg[1] == '.') {
            if (depth > 0) {
                w = starts[--depth];
            } else if (!abs) {
                if (w > 0)
                    out[w++] = '/';
                memcpy(out + w, "..", 2);
                w += 2;
            }
        } else if (len != 1 || seg[0] != '.') {
            starts[depth++] = w;
            if (w > 0 && out[w - 1] != '/')
                out[w++] = '/';
            memcpy(out + w, seg, len);
            w += len;
        }
        seg = end;
    }
    if (w == 0)
        out[w++] = '.';
    out[w] = '\0';
    ttsm__free(starts);
    return out;
}

/* "~", "~/x", "$VAR", "${VAR}" expanded as Python's expanduser and
 * expandvars do (an unknown variable stays as written). */
static char *expand(const char *in)
{
    ttsm__sb b = {0};
    const char *p = in;
    const char *home = getenv("HOME");
    if (p[0] == '~' && (p[1] == '/' || p[1] == '\0') && home) {
        ttsm__sb_adds(&b, home);
        p++;
    }
    while (*p) {
        if (*p == '$' && (p[1] == '{' || isalpha((unsigned char)p[1]) || p[1] == '_')) {
            int braced = p[1] == '{';
            const char *n = p + 1 + braced, *e = n;
            while (isalnum((unsigned char)*e) || *e == '_')
                e++;
            if (e > n && (!braced || *e == '}')) {
                char name[128];
                size_t nl = (size_t)(e - n);
                if (nl < sizeof name) {
                    memcpy(name, n, nl);
                    name[nl] = '\0';
                    const char *v = getenv(name);
                    if (v) {
                        ttsm__sb_adds(&b, v);
                        p = e + braced;
                        continue;
                    }
                }
            }
        }
        ttsm__sb_add(&b, p++, 1);
    }
    if (b.failed) {
        ttsm__sb_free(&b);
        return NULL;
    }
    return ttsm__sb_take(&b);
}

/* `rel` made absolute against `dir` (unless it is absolute) and normalised. */
static char *join(const char *dir, const char *rel)
{
    ttsm__sb b = {0};
    if (rel[0] == '/')
        ttsm__sb_adds(&b, rel);
    else
        ttsm__sb_addf(&b, "%s/%s", dir, rel);
    if (b.failed) {
        ttsm__sb_free(&b);
        return NULL;
    }
    char *s = ttsm__sb_take(&b);
    char *norm = s ? normalised(s) : NULL;
    ttsm__free(s);
    return norm;
}

static const char *scalar(yaml_document_t *d, yaml_node_t *n, size_t *len)
{
    if (!n || n->type != YAML_SCALAR_NODE)
        return NULL;
    (void)d;
    *len = n->data.scalar.length;
    return (const char *)n->data.scalar.value;
}

static int scalar_is(yaml_document_t *d, yaml_node_t *n, const char *want)
{
    size_t len;
    const char *s = scalar(d, n, &len);
    return s && len == strlen(want) && memcmp(s, want, len) == 0;
}

/* A YAML 1.1 boolean, as PyYAML reads it. */
static int scalar_true(yaml_document_t *d, yaml_node_t *n)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On",
                                      "ON", "y", "Y"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (scalar_is(d, n, yes[i]))
            return 1;
    return 0;
}

typedef struct found_path {
    char *path, *origin;
    int first;
} found_path;

ttsm_status ttsm__comfyui_yaml(const char *text, size_t len, const char *yaml_dir,
                               const char *source, ttsm__rootset *first, ttsm__rootset *out,
                               ttsm_error *err)
{
    if (len > TTSM__MAX_YAML_BYTES)
        return ttsm__err(err, TTSM_ERR_FORMAT, source, "too large",
                         "%zu bytes; an extra_model_paths.yaml has at most %u", len,
                         TTSM__MAX_YAML_BYTES);
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return oom(err);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        ttsm_status st =
            parser.error == YAML_MEMORY_ERROR
                ? oom(err)
                : ttsm__err(err, TTSM_ERR_FORMAT, source, "invalid YAML",
                            "%s at line %zu, column %zu", parser.problem ? parser.problem : "error",
                            parser.problem_mark.line + 1, parser.problem_mark.column + 1);
        yaml_parser_delete(&parser);
        return st;
    }
    yaml_parser_delete(&parser);

    ttsm_status st = TTSM_OK;
    found_path found[TTSM__MAX_ROOTS];
    size_t n_found = 0;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && root->type != YAML_MAPPING_NODE) {
        st = ttsm__err(err, TTSM_ERR_FORMAT, source, "invalid extra_model_paths.yaml",
                       "the top level is not a mapping of sections (line %zu)",
                       root->start_mark.line + 1);
        goto out;
    }
    for (yaml_node_pair_t *sp = root ? root->data.mapping.pairs.start : NULL;
         sp && sp < root->data.mapping.pairs.top && st == TTSM_OK; sp++) {
        yaml_node_t *sk = yaml_document_get_node(&doc, sp->key);
        yaml_node_t *sv = yaml_document_get_node(&doc, sp->value);
        size_t sl = 0;
        const char *section = scalar(&doc, sk, &sl);
        if (!sv || sv->type != YAML_MAPPING_NODE)
            continue; /* an empty section (ComfyUI skips it too) */
        char *base = NULL;
        int is_default = 0;
        for (yaml_node_pair_t *p = sv->data.mapping.pairs.start;
             p < sv->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(&doc, p->key);
            yaml_node_t *v = yaml_document_get_node(&doc, p->value);
            size_t vl;
            const char *val = scalar(&doc, v, &vl);
            if (scalar_is(&doc, k, "base_path") && val && !memchr(val, '\0', vl) && !base) {
                char *e = expand(val);
                base = e ? join(yaml_dir, e) : NULL;
                ttsm__free(e);
                if (!base) {
                    st = oom(err);
                    break;
                }
            } else if (scalar_is(&doc, k, "is_default")) {
                is_default = scalar_true(&doc, v);
            }
        }
        for (yaml_node_pair_t *p = sv->data.mapping.pairs.start;
             p < sv->data.mapping.pairs.top && st == TTSM_OK; p++) {
            yaml_node_t *k = yaml_document_get_node(&doc, p->key);
            if (!scalar_is(&doc, k, "TTS") && !scalar_is(&doc, k, "tts"))
                continue;
            yaml_node_t *v = yaml_document_get_node(&doc, p->value);
            size_t vl;
            const char *val = scalar(&doc, v, &vl);
            if (!val || memchr(val, '\0', vl)) {
                st = ttsm__err(err, TTSM_ERR_FORMAT, source, "invalid extra_model_paths.yaml",
                               "%.*s.%s at line %zu is not a string of folders, one per line",
                               (int)(sl > 64 ? 64 : sl), section ? section : "?",
                               (const char *)k->data.scalar.value,
                               (v ? v->start_mark.line : k->start_mark.line) + 1);
                break;
            }
            /* One folder per line, as ComfyUI splits them. */
            for (const char *line = val; line < val + vl && st == TTSM_OK;) {
                const char *nl = memchr(line, '\n', (size_t)(val + vl - line));
                const char *end = nl ? nl : val + vl;
                const char *a = line, *b = end;
                while (a < b && isspace((unsigned char)*a))
                    a++;
                while (b > a && isspace((unsigned char)b[-1]))
                    b--;
                line = end + 1;
                if (a == b)
                    continue;
                if (n_found == TTSM__MAX_ROOTS) {
                    st = ttsm__err(err, TTSM_ERR_FORMAT, source, "too many folders",
                                   "more than %d TTS folders", TTSM__MAX_ROOTS);
                    break;
                }
                char *one = ttsm__malloc((size_t)(b - a) + 1);
                ttsm__sb org = {0};
                if (one) {
                    memcpy(one, a, (size_t)(b - a));
                    one[b - a] = '\0';
                }
                ttsm__sb_addf(&org, "%s: %.*s.%s", source, (int)(sl > 64 ? 64 : sl),
                              section ? section : "?", (const char *)k->data.scalar.value);
                char *full = one ? join(base ? base : yaml_dir, one) : NULL;
                ttsm__free(one);
                char *o = org.failed ? NULL : ttsm__sb_take(&org);
                ttsm__sb_free(&org);
                if (!full || !o) {
                    ttsm__free(full);
                    ttsm__free(o);
                    st = oom(err);
                    break;
                }
                found[n_found++] = (found_path){full, o, is_default};
            }
        }
        ttsm__free(base);
    }
out:
    yaml_document_delete(&doc);
    for (size_t i = 0; i < n_found; i++) {
        if (st == TTSM_OK)
            st = add_root(found[i].first ? first : out, found[i].path, TTSM__ROOT_TTS,
                          found[i].origin, err);
        ttsm__free(found[i].path);
        ttsm__free(found[i].origin);
    }
    return st;
}

/* Reads DIR/extra_model_paths.yaml into `first` and `rest`; a problem
 * with it is a warning. */
static ttsm_status read_yaml(const char *dir, ttsm__rootset *s, ttsm__rootset *first,
                             ttsm__rootset *rest, ttsm_error *err)
{
    ttsm__sb path = {0};
    ttsm__sb_addf(&path, "%s/extra_model_paths.yaml", dir);
    if (path.failed) {
        ttsm__sb_free(&path);
        return oom(err);
    }
    ttsm_status st = TTSM_OK;
    FILE *f = fopen(path.p, "rb");
    if (!f) {
        if (errno != ENOENT)
            st = warn(s, err, "%s: cannot read it (%s); its folders are not searched", path.p,
                      strerror(errno));
        ttsm__sb_free(&path);
        return st;
    }
    char *buf = ttsm__malloc(TTSM__MAX_YAML_BYTES + 1);
    size_t n = buf ? fread(buf, 1, TTSM__MAX_YAML_BYTES + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf) {
        ttsm__sb_free(&path);
        return oom(err);
    }
    if (bad) {
        st = warn(s, err, "%s: read error; its folders are not searched", path.p);
    } else {
        /* The file's folder, with symlinks resolved, is where ComfyUI
         * takes relative paths from (os.path.abspath of the file). */
        char *real = realpath(dir, NULL);
        ttsm_error perr;
        ttsm_status ps = ttsm__comfyui_yaml(buf, n, real ? real : dir, path.p, first, rest, &perr);
        free(real);
        if (ps == TTSM_ERR_OUT_OF_MEMORY) {
            if (err)
                *err = perr;
            st = ps;
        } else if (ps != TTSM_OK) {
            st = warn(s, err, "%s; its folders are not searched", perr.message);
        }
    }
    ttsm__free(buf);
    ttsm__sb_free(&path);
    return st;
}

static ttsm_status move_all(ttsm__rootset *to, ttsm__rootset *from, ttsm_error *err)
{
    ttsm_status st = TTSM_OK;
    for (size_t i = 0; i < from->n && st == TTSM_OK; i++)
        st = add_root(to, from->roots[i].path, from->roots[i].kind, from->roots[i].origin, err);
    ttsm__rootset_free(from);
    return st;
}

ttsm_status ttsm__roots_collect(const char *models_dirs, const char *comfyui_dirs,
                                ttsm__rootset *out, ttsm_error *err)
{
    memset(out, 0, sizeof *out);
    const char *mo = models_dirs ? "models_dirs" : "TTSM_MODELS_PATH";
    const char *dirs = models_dirs ? models_dirs : getenv("TTSM_MODELS_PATH");
    const char *co = comfyui_dirs ? "comfyui_dirs" : "TTSM_COMFYUI_PATH";
    const char *comfy = comfyui_dirs ? comfyui_dirs : getenv("TTSM_COMFYUI_PATH");
    ttsm_status st = TTSM_OK;
    char *copy = dirs && *dirs ? ttsm__strdup(dirs) : NULL;
    if (dirs && *dirs && !copy)
        return oom(err);
    char *save = NULL;
    for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d && st == TTSM_OK;
         d = strtok_r(NULL, ":", &save))
        st = add_root(out, d, TTSM__ROOT_MODELS, mo, err);
    ttsm__free(copy);
    copy = comfy && *comfy && st == TTSM_OK ? ttsm__strdup(comfy) : NULL;
    if (comfy && *comfy && st == TTSM_OK && !copy)
        return oom(err);
    save = NULL;
    for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d && st == TTSM_OK;
         d = strtok_r(NULL, ":", &save)) {
        if (!is_dir(d)) {
            st = warn(out, err, "ComfyUI folder %s (%s) does not exist; it is not searched", d,
                      co);
            continue;
        }
        ttsm__rootset first, rest;
        memset(&first, 0, sizeof first);
        memset(&rest, 0, sizeof rest);
        st = read_yaml(d, out, &first, &rest, err);
        ttsm__sb models = {0}, origin = {0};
        ttsm__sb_addf(&models, "%s/models", d);
        ttsm__sb_addf(&origin, "ComfyUI %s%s", d, comfyui_dirs ? "" : " (TTSM_COMFYUI_PATH)");
        if (st == TTSM_OK && (models.failed || origin.failed))
            st = oom(err);
        /* is_default folders first, then models/, then the others. */
        if (st == TTSM_OK)
            st = move_all(out, &first, err);
        if (st == TTSM_OK)
            st = add_root(out, models.p, TTSM__ROOT_MODELS, origin.p, err);
        if (st == TTSM_OK)
            st = move_all(out, &rest, err);
        ttsm__rootset_free(&first);
        ttsm__rootset_free(&rest);
        ttsm__sb_free(&models);
        ttsm__sb_free(&origin);
    }
    ttsm__free(copy);
    /* A root that is not there is searched anyway (it may appear), but said. */
    for (size_t i = 0; i < out->n && st == TTSM_OK; i++)
        if (!out->roots[i].exists)
            st = warn(out, err, "models root %s (%s) does not exist", out->roots[i].path,
                      out->roots[i].origin);
    return st;
}
