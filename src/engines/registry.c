/* registry.c - where engine manifests come from: the ones compiled into
 * the library, then every folder in TTSM_ENGINES_PATH, then folders a
 * program names with ttsm_engines_load_dir(). Each manifest becomes an
 * engine in the process-wide engine table (table.c), with the factory it
 * names; every lookup loads the manifests first. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/path.h"
#include "engines/espeak.h"
#include "engines/factory_manifest.h"
#include "engines/registry.h"

#define MAX_MANIFEST_BYTES (4u << 20)
#define MAX_MANIFESTS_PER_DIR 1024

/* Process-global like the engine table it feeds (table.c says why).
 * Manifests are immutable and never freed: an engine handle or a load in
 * flight may still point at one that a later folder overrode. The list
 * keeps them reachable. */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct kept {
    ttsm__manifest *m;
    struct kept *next;
} *kept;
static ttsm_status env_status;
static ttsm_error env_error;

/* Code that a manifest's "factory" field names: for what data cannot say. */
static const struct {
    const char *name;
    ttsm_factory_fn factory;
    ttsm_synthesize_fn synthesize;
} code_factories[] = {
    {"espeak", ttsm__espeak_factory, ttsm__espeak_synthesize},
};

static ttsm_status register_manifest(const ttsm__manifest *m, ttsm_error *err)
{
    if (!m->factory)
        return ttsm__table_add_manifest(m, ttsm__manifest_factory, NULL, err);
    for (size_t i = 0; i < sizeof code_factories / sizeof code_factories[0]; i++)
        if (strcmp(code_factories[i].name, m->factory) == 0)
            return ttsm__table_add_manifest(m, code_factories[i].factory,
                                            code_factories[i].synthesize, err);
    return ttsm__err(err, TTSM_ERR_FORMAT, m->source, "invalid manifest",
                     "factory: \"%s\" is not a built-in factory (built-in: espeak)", m->factory);
}

static int keep(ttsm__manifest *m)
{
    struct kept *k = ttsm__malloc(sizeof *k);
    if (!k)
        return -1;
    pthread_mutex_lock(&lock);
    k->m = m;
    k->next = kept;
    kept = k;
    pthread_mutex_unlock(&lock);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static ttsm_status read_file(const char *path, char **out, size_t *len, ttsm_error *err)
{
    /* A FIFO named *.json would block the registry's start: refused, not
     * opened. */
    int fd;
    ttsm_status st = ttsm__open_regular(path, "cannot read manifest", NULL, &fd, NULL, err);
    if (st != TTSM_OK)
        return st;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int e = errno;
        close(fd);
        return ttsm__err(err, TTSM_ERR_IO, path, "cannot read manifest", "%s", strerror(e));
    }
    char *buf = ttsm__malloc(MAX_MANIFEST_BYTES + 1);
    if (!buf) {
        fclose(f);
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, path, "out of memory", "manifest buffer");
    }
    size_t n = fread(buf, 1, MAX_MANIFEST_BYTES + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > MAX_MANIFEST_BYTES) {
        ttsm__free(buf);
        return ttsm__err(err, bad ? TTSM_ERR_IO : TTSM_ERR_FORMAT, path, "cannot read manifest",
                         bad ? "read error" : "larger than %u bytes", MAX_MANIFEST_BYTES);
    }
    *out = buf;
    *len = n;
    return TTSM_OK;
}

/* System folders (system_dirs) are read as they are, outside every models
 * root and the hub cache: only built-in manifests, and folders a program
 * trusts (ttsm_engines_load_dir_trusted), may name them. A manifest from
 * TTSM_ENGINES_PATH or another folder that could would make any absolute
 * folder - /etc - a place models load from. */
static ttsm_status check_system_dirs(const ttsm__manifest *m, ttsm_error *err)
{
    for (int shared = 0; shared < 2; shared++) {
        const ttsm__model_spec *ms = shared ? m->shared : m->models;
        size_t n = shared ? m->n_shared : m->n_models;
        for (size_t i = 0; i < n; i++)
            if (ms[i].n_system_dirs) {
                ttsm_status st = ttsm__err(
                    err, TTSM_ERR_FORMAT, m->source, "invalid manifest",
                    "%s[%zu].system_dirs: \"%s\" is a system folder, which only built-in "
                    "manifests may name; a manifest from a folder finds its files in the models "
                    "roots and the hub cache",
                    shared ? "shared" : "models", i, ms[i].system_dirs[0]);
                ttsm__err_hint(err, "put the files under a models root, or load the folder "
                                    "with ttsm_engines_load_dir_trusted() if you control it");
                return st;
            }
    }
    return TTSM_OK;
}

/* Parses every manifest of `dir` before registering any, so a bad file
 * leaves the registry as it was. */
static ttsm_status load_dir(const char *dir, int trusted, ttsm_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return ttsm__err(err, errno == ENOENT || errno == ENOTDIR ? TTSM_ERR_NOT_FOUND : TTSM_ERR_IO,
                         dir, "cannot open engines folder", "%s", strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    ttsm__manifest **parsed = NULL;
    size_t n_parsed = 0;
    ttsm_status st = TTSM_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || l < 6 || strcmp(de->d_name + l - 5, ".json") != 0)
            continue;
        if (n == MAX_MANIFESTS_PER_DIR) {
            st = ttsm__err(err, TTSM_ERR_FORMAT, dir, "too many manifests",
                           "more than %d *.json files", MAX_MANIFESTS_PER_DIR);
            goto out;
        }
        if (ttsm__grow((void **)&names, &cap, n + 1, sizeof *names, MAX_MANIFESTS_PER_DIR) != 0 ||
            !(names[n] = ttsm__strdup(de->d_name))) {
            st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, dir, "out of memory", "listing");
            goto out;
        }
        n++;
    }
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    parsed = ttsm__calloc(n ? n : 1, sizeof *parsed);
    if (!parsed) {
        st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, dir, "out of memory", "listing");
        goto out;
    }
    for (size_t i = 0; i < n && st == TTSM_OK; i++) {
        size_t plen = strlen(dir) + strlen(names[i]) + 2;
        char *path = ttsm__malloc(plen);
        if (!path) {
            st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, dir, "out of memory", "path");
            break;
        }
        snprintf(path, plen, "%s/%s", dir, names[i]);
        char *text = NULL;
        size_t len = 0;
        st = read_file(path, &text, &len, err);
        if (st == TTSM_OK) {
            st = ttsm__manifest_parse(text, len, path, &parsed[n_parsed], err);
            ttsm__free(text);
            if (st == TTSM_OK)
                n_parsed++;
            if (st == TTSM_OK && !trusted)
                st = check_system_dirs(parsed[n_parsed - 1], err);
        }
        for (size_t j = 0; st == TTSM_OK && j + 1 < n_parsed; j++)
            if (strcmp(parsed[j]->name, parsed[n_parsed - 1]->name) == 0)
                st = ttsm__err(err, TTSM_ERR_FORMAT, path, "invalid manifest",
                               "name: \"%s\" is also the name in %s", parsed[j]->name,
                               parsed[j]->source);
        ttsm__free(path);
    }
    /* Each is kept before it is registered: once the table points at it, it
     * must never be freed (a refused one stays kept, unused). */
    for (size_t i = 0; i < n_parsed && st == TTSM_OK; i++) {
        if (keep(parsed[i]) != 0) {
            st = ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, dir, "out of memory", "registry");
            break;
        }
        ttsm__manifest *m = parsed[i];
        parsed[i] = NULL;
        st = register_manifest(m, err);
    }
out:
    for (size_t i = 0; parsed && i < n_parsed; i++)
        ttsm__manifest_free(parsed[i]);
    ttsm__free(parsed);
    for (size_t i = 0; i < n; i++)
        ttsm__free(names[i]);
    ttsm__free(names);
    closedir(d);
    return st;
}

static void init(void)
{
    for (size_t i = 0; i < ttsm__n_builtin_manifests; i++) {
        const ttsm__builtin_manifest *b = &ttsm__builtin_manifests[i];
        char source[128];
        snprintf(source, sizeof source, "built-in:%s", b->file);
        ttsm__manifest *m;
        ttsm_error err;
        /* Built-in manifests are validated by the tests; one that fails here
         * is a build defect, reported like a bad folder manifest. */
        ttsm_status st = ttsm__manifest_parse(b->text, b->len, source, &m, &err);
        if (st == TTSM_OK && keep(m) != 0) {
            ttsm__manifest_free(m);
            st = ttsm__err(&err, TTSM_ERR_OUT_OF_MEMORY, source, "out of memory", "registry");
        } else if (st == TTSM_OK) {
            st = register_manifest(m, &err); /* kept first: never freed once registered */
        }
        if (st != TTSM_OK) {
            if (env_status == TTSM_OK) {
                env_status = st;
                env_error = err;
            }
            continue;
        }
    }
    const char *path = getenv("TTSM_ENGINES_PATH");
    if (!path || !*path)
        return;
    char *copy = ttsm__strdup(path);
    if (!copy) {
        env_status = ttsm__err(&env_error, TTSM_ERR_OUT_OF_MEMORY, "TTSM_ENGINES_PATH",
                               "out of memory", "copying the path");
        return;
    }
    char *save = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        ttsm_error err;
        ttsm_status st = load_dir(dir, 0, &err);
        if (st != TTSM_OK && env_status == TTSM_OK) {
            env_status = st;
            env_error = err;
        }
    }
    ttsm__free(copy);
}

void ttsm__registry_init(void)
{
    pthread_once(&once, init);
}

ttsm_status ttsm_engines_load_dir(const char *dir, ttsm_error *err)
{
    if (!dir || !*dir)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "engines", "invalid argument",
                         "dir must be given");
    ttsm__registry_init();
    return load_dir(dir, 0, err);
}

ttsm_status ttsm_engines_load_dir_trusted(const char *dir, ttsm_error *err)
{
    if (!dir || !*dir)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "engines", "invalid argument",
                         "dir must be given");
    ttsm__registry_init();
    return load_dir(dir, 1, err);
}

ttsm_status ttsm_engines_add_manifest(const char *json, size_t len, const char *source,
                                      ttsm_error *err)
{
    if (!json || !source || !*source)
        return ttsm__err(err, TTSM_ERR_INVALID_ARGUMENT, "engines", "invalid argument",
                         "the manifest text and a source name must be given");
    if (len > MAX_MANIFEST_BYTES)
        return ttsm__err(err, TTSM_ERR_FORMAT, source, "invalid manifest",
                         "larger than %u bytes", MAX_MANIFEST_BYTES);
    ttsm__registry_init();
    ttsm__manifest *m;
    ttsm_status st = ttsm__manifest_parse(json, len, source, &m, err);
    if (st != TTSM_OK)
        return st;
    if ((st = check_system_dirs(m, err)) != TTSM_OK) { /* as a folder's manifest */
        ttsm__manifest_free(m);
        return st;
    }
    /* Kept before it is registered: once the table points at it, it must
     * never be freed (a refused one stays kept, unused). */
    if (keep(m) != 0) {
        ttsm__manifest_free(m);
        return ttsm__err(err, TTSM_ERR_OUT_OF_MEMORY, source, "out of memory", "registry");
    }
    return register_manifest(m, err);
}

ttsm_status ttsm_engines_status(ttsm_error *err)
{
    ttsm__registry_init();
    if (env_status != TTSM_OK && err)
        *err = env_error;
    return env_status;
}

/* ---- lookups: every one loads the manifests first ---------------------- */

ttsm_status ttsm_register_engine(const char *name, ttsm_factory_fn factory,
                                 const ttsm_engine_caps *caps, ttsm_error *err)
{
    ttsm__registry_init();
    return ttsm__table_add_code(name, factory, caps, err);
}

int ttsm__engine_lookup(const char *name, ttsm__engine *out)
{
    if (strcmp(name, "file") != 0)
        ttsm__registry_init();
    return ttsm__table_find(name, out);
}

void ttsm__engine_list(char *buf, size_t size)
{
    ttsm__registry_init();
    ttsm__table_list(buf, size);
}

size_t ttsm_engine_count(void)
{
    ttsm__registry_init();
    return ttsm__table_count() + 1;
}

const ttsm_engine_info *ttsm_engine_get(size_t index)
{
    ttsm__registry_init();
    return index == 0 ? ttsm__table_file() : ttsm__table_get(index - 1);
}

const ttsm_engine_info *ttsm_engine_find(const char *name)
{
    if (!name)
        return NULL;
    ttsm__registry_init();
    return ttsm__table_handle(name);
}

ttsm_status ttsm__engine_not_found(const char *name, ttsm_error *err)
{
    ttsm__registry_init();
    char names[256];
    ttsm__table_list(names, sizeof names);
    if (env_status == TTSM_OK)
        return ttsm__err(err, TTSM_ERR_NOT_FOUND, name, "engine not found",
                         "no engine of this name is registered (engines: %s)", names);
    ttsm_status st = ttsm__err(err, TTSM_ERR_NOT_FOUND, name, "engine not found",
                               "not registered, and a manifest of TTSM_ENGINES_PATH failed to "
                               "load: %s",
                               env_error.message);
    ttsm__err_hint(err, "fix or remove that manifest: no manifest of its folder is read while one "
                        "fails (registered engines: %s)",
                   names);
    return st;
}

const ttsm__manifest *ttsm__registry_manifest(const char *name)
{
    ttsm__engine e;
    if (!name || ttsm__engine_lookup(name, &e) != 0)
        return NULL;
    return e.manifest;
}
