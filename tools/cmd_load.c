/* cmd_load.c - `ttsm load [ENGINE] --model-path P ...`: loads a model
 * through a manager (the one cache), optionally several times, and prints
 * what happened: each attempt as a load or a hit, the entries like
 * `ollama ps`, and the manager's stats. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static void help(FILE *out)
{
    fprintf(out,
            "usage: ttsm load [ENGINE] [--model-path P] [--device D] [--model M]\n"
            "                 [--language L] [--type T] [--param k=v ...]\n"
            "                 [--repeat N] [--cpu-fallback] [--json]\n"
            "                 [--keep-alive D [--keep-alive-timer] [--hold D]]\n"
            "                 (and the global options: --models-dir, --hf-cache,\n"
            "                 --budget, --io, -v, -q; see ttsm --help)\n\n"
            "Loads a model through the manager's cache, N times (default 1), and shows\n"
            "whether each was a load or a cache hit, how long it took, the cached entries\n"
            "(key, engine, model, device, bytes, references, pinned, idle) and the stats.\n"
            "ENGINE defaults to 'file': the checkpoint at --model-path, or every\n"
            "checkpoint in that folder. Engines with a manifest (ttsm engines) find\n"
            "their files in the models roots and the HuggingFace cache.\n\n"
            "options:\n"
            "  --model-path P     checkpoint file or folder\n"
            "  --device D         auto (default), cpu, cuda, cuda:N\n"
            "  --model M          model name (engines with several models)\n"
            "  --language L       language name or code (selects the model where the\n"
            "                     engine has one per language)\n"
            "  --type T           model type (tts, vc, hubert, ...)\n"
            "  --param k=v        an engine param (repeatable)\n"

            "  --repeat N         load N times, keeping each reference (1..1000)\n"

            "  --cpu-fallback     load on cpu when the device budget is too small\n"
            "  --keep-alive D     idle entries older than D (250ms, 30s, 5m) are evicted\n"
            "  --keep-alive-timer a thread evicts them when D is up (else the next call)\n"
            "  --hold D           release the references, wait D, then report (the\n"
            "                     evictions during the hold show the timer at work)\n"
            "  --json             print one JSON object\n\n"
            "examples:\n"
            "  ttsm load --model-path model.safetensors --device cpu --repeat 3 --json\n"
            "  ttsm load chatterbox --language fr --models-dir ~/ComfyUI/models\n"
            "  ttsm load --model-path models/kokoro --device cuda --budget cuda:0=4G\n\n"
            "exit codes: 0 ok, 2 usage, 3 not found, 4 device, 5 over budget, 6 invalid\n"
            "checkpoint, 7 I/O error.\n");
}

static double secs(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

#define MAX_REPEAT 1000

/* "250ms", "30s", "5m", "1h" or seconds -> milliseconds; -1 when invalid. */
static long long duration_ms(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0)
        return -1;
    double mul = strcmp(end, "ms") == 0 ? 1 : (!*end || strcmp(end, "s") == 0) ? 1e3
                 : strcmp(end, "m") == 0 ? 6e4 : strcmp(end, "h") == 0 ? 3.6e6 : -1;
    if (mul < 0 || v * mul > 1e15)
        return -1;
    return (long long)(v * mul + 0.5);
}

static int run(int argc, char **argv)
{
    ttsm_load_config cfg = ttsm_load_config_default();
    cfg.engine = "file";
    ttsm_manager_options opt = ttsm_manager_options_default();
    long repeat = 1;
    int json = 0, rc = CLI_EXIT_OK, have_engine = 0;
    ttsm_model *models[MAX_REPEAT];
    char keys[MAX_REPEAT][TTSM_KEY_HEX_SIZE], devices[MAX_REPEAT][TTSM_DEVICE_NAME_MAX];
    long long hold_ms = -1;
    json_t *model = NULL;
    uint64_t hold_evictions = 0;
    int hit[MAX_REPEAT];
    double took[MAX_REPEAT];
    size_t n_models = 0;
    int released = 0; /* --hold gave the references back */
    cli_params ps = {0};
    ttsm_manager *mgr = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            json = 1;
            continue;
        }
        if (strcmp(a, "--cpu-fallback") == 0) {
            opt.allow_cpu_fallback = 1;
            continue;
        }
        if (strcmp(a, "--keep-alive-timer") == 0) {
            opt.keep_alive_timer = 1;
            continue;
        }
        if (a[0] != '-') {
            if (have_engine) {
                rc = cli_usage_error("load", "unexpected argument '%s'", a);
                goto out;
            }
            cfg.engine = a;
            have_engine = 1;
            continue;
        }
        if (i + 1 >= argc) {
            rc = cli_usage_error("load", "unknown option or missing value: %s", a);
            goto out;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--model-path") == 0)
            cfg.model_path = v;
        else if (strcmp(a, "--device") == 0)
            cfg.device = v;
        else if (strcmp(a, "--model") == 0)
            cfg.model_name = v;
        else if (strcmp(a, "--language") == 0)
            cfg.language = v;
        else if (strcmp(a, "--type") == 0)
            cfg.model_type = v;
        else if (strcmp(a, "--param") == 0) {
            if ((rc = cli_params_add("load", &ps, v)) != 0)
                goto out;
        }
        else if (strcmp(a, "--keep-alive") == 0 || strcmp(a, "--hold") == 0) {
            long long ms = duration_ms(v);
            if (ms < 0) {
                rc = cli_usage_error("load", "%s wants a duration like 250ms, 30s or 5m, got '%s'",
                                     a, v);
                goto out;
            }
            if (a[2] == 'k')
                opt.keep_alive_ms = (uint64_t)ms;
            else
                hold_ms = ms;
        } else if (strcmp(a, "--repeat") == 0) {
            char *end;
            repeat = strtol(v, &end, 10);
            if (*end || repeat < 1 || repeat > MAX_REPEAT) {
                rc = cli_usage_error("load", "--repeat wants 1..%d, got '%s'", MAX_REPEAT, v);
                goto out;
            }
        } else {
            rc = cli_usage_error("load", "unknown option '%s'", a);
            goto out;
        }
    }
    if (!cfg.model_path && strcmp(cfg.engine, "file") == 0) {
        rc = cli_usage_error("load", "--model-path is required for the file engine");
        goto out;
    }
    cli_manager_options(&opt);
    cfg.params = ps.p;
    cfg.n_params = ps.n;
    ttsm_error err;
    ttsm_status st = ttsm_manager_create(&opt, &mgr, &err);
    if (st != TTSM_OK) {
        rc = cli_fail(st, &err);
        goto out;
    }
    for (long r = 0; r < repeat; r++) {
        ttsm_manager_stats before;
        ttsm_manager_get_stats(mgr, &before);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        cli_progress_start();
        st = ttsm_load(mgr, &cfg, &models[n_models], &err);
        cli_progress_end();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (st != TTSM_OK) {
            rc = cli_fail(st, &err);
            goto out;
        }
        ttsm_manager_stats after;
        ttsm_manager_get_stats(mgr, &after);
        hit[n_models] = after.hits > before.hits;
        took[n_models] = secs(&t0, &t1);
        snprintf(keys[n_models], sizeof keys[0], "%s", ttsm_model_key(models[n_models]));
        snprintf(devices[n_models], sizeof devices[0], "%s", ttsm_model_device(models[n_models]));
        n_models++;
    }
    if (json) {
        json_t *comps = json_array();
        ttsm_model *m0 = models[0];
        model = json_object();
        for (size_t c = 0; c < ttsm_model_component_count(m0); c++)
            json_array_append_new(
                comps, json_pack("{s:s,s:s,s:s,s:I}", "name", ttsm_model_component_name(m0, c),
                                 "kind", ttsm_model_component_kind(m0, c), "path",
                                 ttsm_model_component_path(m0, c), "tensors",
                                 (json_int_t)ttsm_model_tensor_count(m0, c)));
        json_object_set_new(model, "key", json_string(ttsm_model_key(m0)));
        json_object_set_new(model, "engine", json_string(ttsm_model_engine(m0)));
        json_object_set_new(model, "device", json_string(ttsm_model_device(m0)));
        json_object_set_new(model, "bytes", json_integer((json_int_t)ttsm_model_bytes(m0)));
        json_object_set_new(model, "components", comps);
    }
    if (hold_ms >= 0) {
        /* Without references the entries are idle: the keep-alive (and its
         * timer) may evict them while this waits. Counted before the
         * listing, which sweeps on its own. */
        ttsm_manager_stats before;
        ttsm_manager_get_stats(mgr, &before);
        for (size_t i = 0; i < n_models; i++)
            ttsm_model_release(models[i]);
        released = 1;
        struct timespec ts = {(time_t)(hold_ms / 1000), (long)(hold_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0)
            ;
        ttsm_manager_stats after;
        ttsm_manager_get_stats(mgr, &after);
        hold_evictions = after.evictions - before.evictions;
    }
    ttsm_entry_info *ents;
    size_t n_ents;
    if ((st = ttsm_manager_list(mgr, &ents, &n_ents, &err)) != TTSM_OK) {
        rc = cli_fail(st, &err);
        goto out;
    }
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    if (json) {
        json_t *o = json_object(), *att = json_array(), *en = json_array(), *dv = json_array();
        for (size_t i = 0; i < n_models; i++)
            json_array_append_new(att, json_pack("{s:s,s:s,s:s,s:f}", "result",
                                                 hit[i] ? "hit" : "load", "key", keys[i],
                                                 "device", devices[i], "seconds", took[i]));
        for (size_t i = 0; i < n_ents; i++)
            json_array_append_new(
                en, json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:b,s:f}", "key", ents[i].key, "engine",
                              ents[i].engine, "model", ents[i].model, "device", ents[i].device,
                              "bytes", (json_int_t)ents[i].bytes, "refs",
                              (json_int_t)ents[i].refs, "pinned", ents[i].pinned, "idle_seconds",
                              ents[i].idle_seconds));
        for (size_t i = 0; i < s.n_devices; i++) {
            const ttsm_device_stats *d = &s.devices[i];
            json_t *b = d->budget == UINT64_MAX ? json_null() : json_integer((json_int_t)d->budget);
            json_array_append_new(dv, json_pack("{s:s,s:o,s:I,s:I,s:I}", "device", d->device,
                                                "budget", b, "in_use", (json_int_t)d->in_use,
                                                "peak", (json_int_t)d->peak, "entries",
                                                (json_int_t)d->entries));
        }
        json_object_set_new(o, "model", model);
        model = NULL;
        if (hold_ms >= 0)
            json_object_set_new(o, "hold", json_pack("{s:f,s:I}", "seconds", (double)hold_ms / 1e3,
                                                     "evictions", (json_int_t)hold_evictions));
        json_object_set_new(o, "attempts", att);
        json_object_set_new(o, "entries", en);
        json_object_set_new(o, "stats",
                            json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:o}", "hits", (json_int_t)s.hits,
                                      "misses", (json_int_t)s.misses, "loads",
                                      (json_int_t)s.loads, "evictions", (json_int_t)s.evictions,
                                      "failures", (json_int_t)s.failures, "checkpoint_opens",
                                      (json_int_t)s.checkpoint_opens, "devices", dv));
        json_dumpf(o, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(o);
    } else {
        for (size_t i = 0; i < n_models; i++)
            printf("%-4s %s on %s in %.3f s\n", hit[i] ? "hit" : "load", keys[i], devices[i],
                   took[i]);
        if (hold_ms >= 0)
            printf("held %.3f s without references: %llu evicted meanwhile\n",
                   (double)hold_ms / 1e3, (unsigned long long)hold_evictions);
        printf("\n%-32s  %-10s %-8s %12s %4s %6s %8s  %s\n", "KEY", "ENGINE", "DEVICE", "BYTES",
               "REFS", "PINNED", "IDLE", "MODEL");
        for (size_t i = 0; i < n_ents; i++)
            printf("%-32s  %-10s %-8s %12llu %4zu %6s %7.1fs  %s\n", ents[i].key, ents[i].engine,
                   ents[i].device, (unsigned long long)ents[i].bytes, ents[i].refs,
                   ents[i].pinned ? "yes" : "no", ents[i].idle_seconds, ents[i].model);
        printf("\nhits %llu, misses %llu, loads %llu, evictions %llu, failures %llu, "
               "checkpoint opens %llu\n",
               (unsigned long long)s.hits, (unsigned long long)s.misses,
               (unsigned long long)s.loads, (unsigned long long)s.evictions,
               (unsigned long long)s.failures, (unsigned long long)s.checkpoint_opens);
    }
    ttsm_free(ents);
out:
    json_decref(model);
    for (size_t i = 0; i < n_models && !released; i++)
        ttsm_model_release(models[i]);
    ttsm_manager_destroy(mgr);
    cli_params_free(&ps);
    return rc;
}

const cli_command cli_cmd_load = {"load", "load a model through the cache and show its entry",
                                  run, help};
