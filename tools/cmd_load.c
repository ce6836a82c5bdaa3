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

static const char *const result[] = {"load", "hit", "shared"};

/* The report's steps: each model and device tried, and how it ended. */
static json_t *attempts_json(const ttsm_load_report *r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r->n_steps; i++)
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s}", "model", r->steps[i].model,
                                           "device", r->steps[i].device, "status",
                                           ttsm_status_name(r->steps[i].code), "message",
                                           r->steps[i].message));
    return a;
}

static json_t *fallback_json(const ttsm_load_report *r)
{
    if (!r->fell_back)
        return json_null();
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "asked", r->asked, "asked_device",
                     r->asked_device, "loaded", r->loaded, "loaded_device", r->loaded_device,
                     "why", r->why);
}

/* --json of a failed load: the error and what was tried, on stdout (the
 * message also goes to stderr as for every command). */
static void print_failure(const ttsm_load_report *r, ttsm_status st, const ttsm_error *err)
{
    json_t *o = json_pack("{s:{s:s, s:s, s:s}, s:o, s:o}", "error", "status",
                          ttsm_status_name(st), "message", err->message, "hint", err->hint,
                          "attempts", attempts_json(r), "fallback", fallback_json(r));
    json_dumpf(o, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
    json_decref(o);
}

static int run(cli_args *a)
{
    ttsm_load_config cfg = ttsm_load_config_default();
    cfg.engine = "file";
    ttsm_manager_options opt = ttsm_manager_options_default();
    long repeat = 1;
    int json = a->given[OPT_JSON], rc = CLI_EXIT_OK;
    ttsm_model *models[MAX_REPEAT];
    char keys[MAX_REPEAT][TTSM_KEY_HEX_SIZE], devices[MAX_REPEAT][TTSM_DEVICE_NAME_MAX];
    long long hold_ms = -1;
    int released = 0; /* --hold gave the references back */
    uint64_t hold_evictions = 0;
    json_t *model = NULL;
    int got[MAX_REPEAT];
    double took[MAX_REPEAT];
    size_t n_models = 0;
    ttsm_manager *mgr = NULL;
    ttsm_load_report first;
    ttsm_load_report_init(&first);
    if (a->value[OPT_ENGINE] && a->n_pos)
        return cli_usage_error("load", "ENGINE given twice ('%s' and -e %s)", a->pos[0],
                               a->value[OPT_ENGINE]);
    cli_load_config(a, &cfg);
    opt.allow_cpu_fallback = a->given[OPT_CPU_FALLBACK] > 0;
    opt.keep_alive_timer = a->given[OPT_KEEP_ALIVE_TIMER] > 0;
    int prefetch = a->given[OPT_PREFETCH] > 0;
    opt.prefetch = prefetch;
    if (a->given[OPT_DOWNLOAD])
        opt.download = TTSM_DOWNLOAD_MISSING;
    const cli_opt durations[] = {OPT_KEEP_ALIVE, OPT_HOLD};
    for (size_t i = 0; i < 2; i++) {
        const char *v = a->value[durations[i]];
        long long ms = v ? duration_ms(v) : 0;
        if (ms < 0)
            return cli_usage_error("load", "--%s wants a duration like 250ms, 30s or 5m, got '%s'",
                                   cli_options[durations[i]].name, v);
        if (v && durations[i] == OPT_KEEP_ALIVE)
            opt.keep_alive_ms = (uint64_t)ms;
        else if (v)
            hold_ms = ms;
    }
    if (a->value[OPT_REPEAT]) {
        char *end;
        repeat = strtol(a->value[OPT_REPEAT], &end, 10);
        if (*end || repeat < 1 || repeat > MAX_REPEAT)
            return cli_usage_error("load", "--repeat wants 1..%d, got '%s'", MAX_REPEAT,
                                   a->value[OPT_REPEAT]);
    }
    if (!cfg.model_path && strcmp(cfg.engine, "file") == 0) {
        rc = cli_usage_error("load", "--model-path is required for the file engine");
        goto out;
    }
    cli_manager_options(&opt);
    if (strcmp(cfg.engine, "file") != 0)
        cli_root_warnings();
    ttsm_error err;
    ttsm_status st = ttsm_manager_create(&opt, &mgr, &err);
    if (st != TTSM_OK) {
        rc = cli_fail(st, &err);
        goto out;
    }
    for (long r = 0; r < repeat; r++) {
        ttsm_load_report rep;
        ttsm_load_report_init(&rep);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        cli_progress_start();
        st = ttsm_load_with_report(mgr, &cfg, &models[n_models], &rep, &err);
        cli_progress_end();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (r == 0)
            first = rep;
        if (st != TTSM_OK) {
            if (json && r == 0)
                print_failure(&rep, st, &err);
            rc = cli_fail(st, &err);
            goto out;
        }
        if (r == 0)
            cli_fallback_notice(&rep, ttsm_model_engine(models[n_models]));
        got[n_models] = rep.hit ? 1 : rep.shared ? 2 : 0;
        took[n_models] = secs(&t0, &t1);
        snprintf(keys[n_models], sizeof keys[0], "%s", ttsm_model_key(models[n_models]));
        snprintf(devices[n_models], sizeof devices[0], "%s", ttsm_model_device(models[n_models]));
        n_models++;
    }
    /* The prefetch runs in the background: a command that reports next
     * waits for it, and says what it cost. */
    uint64_t pf_bytes = 0;
    double pf_secs = 0;
    if (prefetch) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        pf_bytes = ttsm_model_prefetch_wait(models[0]);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        pf_secs = secs(&t0, &t1);
    }
    if (json) { /* described now: --hold may let the model go */
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
        json_object_set_new(model, "name", json_string(ttsm_model_name(m0)));
    }
    if (hold_ms >= 0) {
        /* Without references the entries are idle: the keep-alive (and its
         * timer) may evict them while this waits. Counted before the
         * listing, which sweeps on its own. */
        ttsm_manager_stats before, after;
        ttsm_manager_get_stats(mgr, &before);
        for (size_t i = 0; i < n_models; i++)
            ttsm_model_release(models[i]);
        released = 1;
        struct timespec ts = {(time_t)(hold_ms / 1000), (long)(hold_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0)
            ;
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
        json_t *o = json_object(), *loads = json_array(), *en = json_array(), *dv = json_array();
        for (size_t i = 0; i < n_models; i++)
            json_array_append_new(loads, json_pack("{s:s,s:s,s:s,s:f}", "result", result[got[i]],
                                                   "key", keys[i], "device", devices[i],
                                                   "seconds", took[i]));
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
        if (prefetch)
            json_object_set_new(o, "prefetch",
                                json_pack("{s:I,s:f}", "bytes", (json_int_t)pf_bytes,
                                          "seconds_after_load", pf_secs));
        json_object_set_new(o, "attempts", attempts_json(&first));
        json_object_set_new(o, "fallback", fallback_json(&first));
        json_object_set_new(o, "loads", loads);
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
            printf("%-6s %s on %s in %.3f s\n", result[got[i]], keys[i], devices[i], took[i]);
        if (prefetch)
            printf("prefetched %llu bytes, done %.3f s after the load returned\n",
                   (unsigned long long)pf_bytes, pf_secs);
        if (hold_ms >= 0)
            printf("held %.3f s without references: %llu evicted meanwhile\n",
                   (double)hold_ms / 1e3, (unsigned long long)hold_evictions);
        /* Columns as wide as their longest value: long engine names stay aligned. */
        int we = 6, wd = 6;
        for (size_t i = 0; i < n_ents; i++) {
            int le = (int)strlen(ents[i].engine), ld = (int)strlen(ents[i].device);
            we = le > we ? le : we;
            wd = ld > wd ? ld : wd;
        }
        printf("\n%-32s  %-*s  %-*s %12s %4s %6s %8s  %s\n", "KEY", we, "ENGINE", wd, "DEVICE",
               "BYTES", "REFS", "PINNED", "IDLE", "MODEL");
        for (size_t i = 0; i < n_ents; i++)
            printf("%-32s  %-*s  %-*s %12llu %4zu %6s %7.1fs  %s\n", ents[i].key, we,
                   ents[i].engine, wd, ents[i].device, (unsigned long long)ents[i].bytes,
                   ents[i].refs, ents[i].pinned ? "yes" : "no", ents[i].idle_seconds,
                   ents[i].model);
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
    return rc;
}

static const cli_opt options[] = {OPT_ENGINE,     OPT_MODEL,        OPT_LANGUAGE, OPT_TYPE,
                                  OPT_DEVICE,     OPT_MODEL_PATH,   OPT_REPO_ID,  OPT_PARAM,
                                  OPT_REPEAT,     OPT_CPU_FALLBACK, OPT_KEEP_ALIVE,
                                  OPT_KEEP_ALIVE_TIMER, OPT_HOLD,   OPT_PREFETCH, OPT_DOWNLOAD,
                                  OPT_JSON,       OPT_END};

const cli_command cli_cmd_load = {
    "load",
    "load a model through the cache and show its entry",
    "[ENGINE]",
    options,
    1,
    "Loads a model through the manager's cache, N times (default 1), and shows\n"
    "whether each was a load, a hit or shared with an entry holding the same\n"
    "files, how long it took, the cached entries (key, engine, model, device,\n"
    "bytes, references, pinned, idle) and the stats. ENGINE defaults to 'file':\n"
    "the checkpoint at --model-path, or every checkpoint in that folder. Engines\n"
    "with a manifest (ttsm engines) find their files in the models roots and the\n"
    "HuggingFace cache. When the model loaded is not the one asked for (a\n"
    "fallback), a one-line note on standard error says what was asked, what was\n"
    "loaded and why. With --hold the references are released and the command\n"
    "waits before it reports, so --keep-alive (and its timer) can be seen at work.\n"
    "With --prefetch the model's bytes are brought into memory in the background\n"
    "once it is loaded; the command waits for that and says how long it took.",
    "{\"model\": {\"key\", \"engine\", \"name\", \"device\", \"bytes\", \"components\": "
    "[{\"name\", \"kind\", \"path\", \"tensors\"}]}, \"attempts\": [{\"model\", \"device\", "
    "\"status\", \"message\"}], \"fallback\": null | {\"asked\", \"asked_device\", "
    "\"loaded\", \"loaded_device\", \"why\"}, \"loads\": [{\"result\": \"load\"|\"hit\"|"
    "\"shared\", \"key\", \"device\", \"seconds\"}], \"entries\": [{\"key\", \"engine\", "
    "\"model\", \"device\", \"bytes\", \"refs\", \"pinned\", \"idle_seconds\"}], \"stats\": "
    "{\"hits\", \"misses\", \"loads\", \"evictions\", \"failures\", \"checkpoint_opens\", "
    "\"devices\": [{\"device\", \"budget\", \"in_use\", \"peak\", \"entries\"}]}, "
    "\"hold\" (with --hold): {\"seconds\", \"evictions\"}, \"prefetch\" (with --prefetch): "
    "{\"bytes\", \"seconds_after_load\"}}; on a "
    "failure, {\"error\": {\"status\", \"message\", \"hint\"}, \"attempts\", \"fallback\"}",
    "ttsm load --model-path model.safetensors --device cpu --repeat 3 --json\n"
    "ttsm load chatterbox -l fr --models-dir ~/ComfyUI/models\n"
    "ttsm load chatterbox --comfyui ~/ComfyUI --json | jq .fallback\n"
    "ttsm load --model-path models/kokoro --device cuda --budget cuda:0=4G\n"
    "ttsm load --model-path m.safetensors --keep-alive 100ms --keep-alive-timer --hold 1s",
    NULL,
    run};
