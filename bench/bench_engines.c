/* bench_engines.c - ttsm_load of engine models from a models root: cold (the
 * model's files dropped from the page cache, fresh manager), warm (page
 * cache warm, fresh manager: a cache miss) and a cache hit, against plain
 * read() of every file of the model in the same cache state.
 * Usage: bench_engines --models-dir ROOT [--reps N] [--cold]
 *                      LABEL=ENGINE[:MODEL] ... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "ttsm.h"

#define MAX_FILES 256

typedef struct files {
    char *path[MAX_FILES];
    uint64_t bytes;
    size_t n;
} files;

static void add_file(files *f, const char *p)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->path[i], p) == 0)
            return;
    if (f->n == MAX_FILES)
        bu_die("too many files", p);
    f->path[f->n] = strdup(p);
    if (!f->path[f->n])
        bu_die("out of memory", NULL);
    f->bytes += bu_file_size(p);
    f->n++;
}

static ttsm_manager *manager(const char *root)
{
    ttsm_manager_options o = ttsm_manager_options_default();
    o.models_dirs = root;
    o.hf_cache = "/nonexistent/ttsm-bench-no-hub"; /* the root alone, never the user's hub */
    ttsm_manager *m;
    ttsm_error err;
    if (ttsm_manager_create(&o, &m, &err) != TTSM_OK)
        bu_die("ttsm_manager_create", err.message);
    return m;
}

/* One load in a fresh manager (cold or warm page cache): ns. */
static uint64_t load_fresh(const char *root, const ttsm_load_config *cfg, files *collect,
                           size_t *n_tensors)
{
    ttsm_manager *mgr = manager(root);
    ttsm_error err;
    ttsm_model *m;
    uint64_t t0 = bu_now_ns();
    if (ttsm_load(mgr, cfg, &m, &err) != TTSM_OK)
        bu_die("ttsm_load", err.message);
    uint64_t dt = bu_now_ns() - t0;
    if (collect) {
        *n_tensors = 0;
        for (size_t c = 0; c < ttsm_model_component_count(m); c++) {
            const ttsm_checkpoint *ck = ttsm_model_component_checkpoint(m, c);
            if (ck) {
                *n_tensors += ttsm_checkpoint_tensor_count(ck);
                for (size_t k = 0; k < ttsm_checkpoint_file_count(ck); k++)
                    add_file(collect, ttsm_checkpoint_file_path(ck, k));
            } else {
                add_file(collect, ttsm_model_component_path(m, c));
            }
        }
    }
    ttsm_model_release(m);
    ttsm_manager_destroy(mgr);
    return dt;
}

static uint64_t hit_ns(const char *root, const ttsm_load_config *cfg, int reps)
{
    ttsm_manager *mgr = manager(root);
    ttsm_error err;
    ttsm_model *m;
    if (ttsm_load(mgr, cfg, &m, &err) != TTSM_OK)
        bu_die("ttsm_load", err.message);
    ttsm_model_release(m);
    uint64_t *t = bu_xmalloc(sizeof *t * (size_t)reps);
    for (int r = 0; r < reps; r++) {
        uint64_t t0 = bu_now_ns();
        if (ttsm_load(mgr, cfg, &m, &err) != TTSM_OK)
            bu_die("ttsm_load", err.message);
        t[r] = bu_now_ns() - t0;
        ttsm_model_release(m);
    }
    uint64_t med = bu_quantile(t, (size_t)reps, 0.5, 0);
    free(t);
    ttsm_manager_destroy(mgr);
    return med;
}

static uint64_t read_all_ns(const files *f)
{
    uint64_t t0 = bu_now_ns();
    for (size_t i = 0; i < f->n; i++) {
        uint64_t size = bu_file_size(f->path[i]);
        unsigned char *buf = bu_xmalloc((size_t)size);
        bu_read_all(f->path[i], buf, size);
        free(buf);
    }
    return bu_now_ns() - t0;
}

int main(int argc, char **argv)
{
    const char *root = NULL;
    int reps = 5, cold = 0, i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--models-dir") == 0 && i + 1 < argc)
            root = argv[++i];
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--cold") == 0)
            cold = 1;
        else
            bu_die("usage", "bench_engines --models-dir ROOT [--reps N] [--cold] "
                            "LABEL=ENGINE[:MODEL] ...");
    }
    if (!root || reps < 1 || reps > 10000)
        bu_die("usage", "bench_engines --models-dir ROOT ... (reps 1..10000)");
    ttsm_engine_count(); /* the registry reads its manifests once per process */
    uint64_t *t = bu_xmalloc(sizeof *t * (size_t)reps), *rd = bu_xmalloc(sizeof *rd * (size_t)reps);
    for (; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq)
            bu_die("usage", "arguments are LABEL=ENGINE[:MODEL]");
        *eq = '\0';
        char *engine = eq + 1, *colon = strchr(engine, ':');
        if (colon)
            *colon = '\0';
        ttsm_load_config cfg = ttsm_load_config_default();
        cfg.engine = engine;
        cfg.model_name = colon ? colon + 1 : NULL;
        cfg.device = "cpu";
        files f = {{0}, 0, 0};
        size_t n_tensors = 0;
        load_fresh(root, &cfg, &f, &n_tensors); /* warm-up, and the file list */

        const char *drop = "not tried";
        double resident = -1;
        uint64_t cold_ns = 0, cold_read_ns = 0;
        if (cold) {
            drop = bu_drop_cache((const char *const *)f.path, f.n);
            resident = 0;
            for (size_t k = 0; k < f.n; k++) {
                double r = bu_resident(f.path[k]);
                resident = r > resident ? r : resident;
            }
            cold_ns = load_fresh(root, &cfg, NULL, NULL);
            bu_drop_cache((const char *const *)f.path, f.n);
            cold_read_ns = read_all_ns(&f);
        }
        read_all_ns(&f);
        for (int r = 0; r < reps; r++) {
            t[r] = load_fresh(root, &cfg, NULL, NULL);
            rd[r] = read_all_ns(&f);
        }
        uint64_t warm = bu_quantile(t, (size_t)reps, 0.5, 0);
        uint64_t warm_read = bu_quantile(rd, (size_t)reps, 0.5, 0);
        uint64_t hit = hit_ns(root, &cfg, reps * 20);
        bu_begin("engine");
        bu_str("label", argv[i]);
        bu_str("engine", engine);
        bu_str("model", colon ? colon + 1 : "(default)");
        bu_u64("files", f.n);
        bu_u64("bytes", f.bytes);
        bu_u64("tensors", n_tensors);
        if (cold) {
            bu_str("drop_method", drop);
            bu_f64("resident_before", resident);
            bu_u64("cold_ns", cold_ns);
            bu_u64("cold_read_ns", cold_read_ns);
        }
        bu_u64("warm_ns", warm);
        bu_u64("warm_read_ns", warm_read);
        bu_u64("hit_ns", hit);
        bu_end();
        for (size_t k = 0; k < f.n; k++)
            free(f.path[k]);
    }
    free(t);
    free(rd);
    return 0;
}
