/* bench_manifests.c - engine manifests of growing size: the time to read a
 * folder holding one manifest of N models (ttsm_engines_load_dir: parse,
 * validate, register) and to make the cache key of each of its models (one
 * lookup by name each, what `ttsm ls` and every load do), per model, for
 * each N. Linear work has the same time per model at every N: the report
 * gives the ratio of the largest N's per-model time to the smallest's (a
 * quadratic parse made it grow with N: 35,000 models took seconds).
 * Usage: bench_manifests --dir DIR [--reps N] N1 N2 ... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench_util.h"
#include "ttsm.h"

/* An engine manifest named `name` with `n` models, each with one repo and
 * one component (106 bytes a model: 35,000 models are 3.7 MB, under the
 * 4 MiB cap on a manifest). */
static char *manifest_text(const char *name, size_t n, size_t *len)
{
    size_t cap = 4096 + n * 128;
    char *s = bu_xmalloc(cap);
    size_t k = (size_t)snprintf(
        s, cap,
        "{\"schema\":1,\"name\":\"%s\",\"description\":\"manifest scaling benchmark\","
        "\"runtime\":\"pytorch\",\"model_types\":[\"tts\"],\"capabilities\":{"
        "\"supports_voice_conversion\":false,\"has_fallback\":false,\"can_corrupt\":false,"
        "\"requires_special_init\":false,\"language_selects_model\":false,"
        "\"single_instance\":false,\"recovery\":\"none\"},\"devices\":[\"cpu\"],"
        "\"folder\":\"%s\",\"default_model\":\"v0000000\",\"models\":[",
        name, name);
    for (size_t i = 0; i < n; i++)
        k += (size_t)snprintf(s + k, cap - k,
                              "%s{\"name\":\"v%07zu\",\"repos\":[{\"id\":\"o/v\"}],"
                              "\"components\":[{\"name\":\"w\",\"kind\":\"tensors\","
                              "\"files\":[\"v%07zu.pth\"]}]}",
                              i ? "," : "", i, i);
    k += (size_t)snprintf(s + k, cap - k, "]}");
    *len = k;
    return s;
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    int reps = 3, i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else
            bu_die("usage", "bench_manifests --dir DIR [--reps N] N1 N2 ...");
    }
    if (!dir || reps < 1 || reps > 100 || i == argc)
        bu_die("usage", "bench_manifests --dir DIR [--reps N] N1 N2 ... (reps 1..100)");
    ttsm_engine_count(); /* the built-in manifests, once */
    uint64_t *load = bu_xmalloc(sizeof *load * (size_t)reps);
    uint64_t *keys = bu_xmalloc(sizeof *keys * (size_t)reps);
    for (; i < argc; i++) {
        size_t n = (size_t)strtoull(argv[i], NULL, 10);
        if (n == 0)
            bu_die("bad model count", argv[i]);
        size_t bytes = 0;
        for (int r = 0; r < reps; r++) {
            /* a folder and an engine name per run: the registry keeps what
             * it read, so each run must add a new engine */
            char name[64], sub[64];
            snprintf(name, sizeof name, "scale%zu_%d", n, r);
            snprintf(sub, sizeof sub, "m%zu_%d", n, r);
            char *folder = bu_path(dir, sub);
            if (mkdir(folder, 0755) != 0 && errno != EEXIST)
                bu_die("mkdir", folder);
            size_t len;
            char *text = manifest_text(name, n, &len);
            bytes = len;
            char *file = bu_path(folder, "engine.json");
            FILE *f = fopen(file, "wb");
            if (!f || fwrite(text, 1, len, f) != len || fclose(f) != 0)
                bu_die("writing", file);
            free(text);

            ttsm_error err;
            uint64_t t0 = bu_now_ns();
            if (ttsm_engines_load_dir(folder, &err) != TTSM_OK)
                bu_die("ttsm_engines_load_dir", err.message);
            load[r] = bu_now_ns() - t0;

            const ttsm_engine_info *e = ttsm_engine_find(name);
            if (!e || ttsm_engine_model_count(e) != n)
                bu_die("the engine is not registered with its models", name);
            t0 = bu_now_ns();
            for (size_t m = 0; m < n; m++) {
                ttsm_load_config c = ttsm_load_config_default();
                c.engine = name;
                c.model_name = ttsm_engine_model_name(e, m);
                c.device = "cpu";
                char key[TTSM_KEY_HEX_SIZE];
                if (ttsm_cache_key(&c, key, &err) != TTSM_OK)
                    bu_die("ttsm_cache_key", err.message);
            }
            keys[r] = bu_now_ns() - t0;
            free(file);
            free(folder);
        }
        bu_stats ls = bu_summarise(load, (size_t)reps), ks = bu_summarise(keys, (size_t)reps);
        bu_begin("manifests");
        bu_u64("models", n);
        bu_u64("bytes", bytes);
        bu_stats_out("load", &ls);
        bu_stats_out("keys", &ks);
        bu_f64("load_per_model_ns", (double)ls.median / (double)n);
        bu_f64("keys_per_model_ns", (double)ks.median / (double)n);
        bu_end();
    }
    free(load);
    free(keys);
    return 0;
}
