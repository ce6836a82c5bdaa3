/* cmd_pull.c - `ttsm pull ENGINE [...]`: fetches exactly the files a model
 * needs from the Hugging Face Hub into the hub cache (or a models root),
 * through ttsm_pull(). Shows a bar on a terminal (total and current file,
 * speed, time left), JSON lines with --json, nothing with -q. */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void human(uint64_t b, char *out, size_t size)
{
    if (b >= (1ull << 30))
        snprintf(out, size, "%.2f GiB", (double)b / (double)(1ull << 30));
    else if (b >= (1u << 20))
        snprintf(out, size, "%.1f MiB", (double)b / (double)(1u << 20));
    else if (b >= 1024)
        snprintf(out, size, "%.1f KiB", (double)b / 1024.0);
    else
        snprintf(out, size, "%llu B", (unsigned long long)b);
}

/* What the progress callback shows, and how. */
typedef struct view {
    int json, tty, quiet;
    double started, last_draw, last_json;
    uint64_t last_done;
    double speed; /* bytes per second, smoothed */
    int drawn;
} view;

/* The log comes from the pull's threads; the bar is drawn under the
 * library's own lock: this one keeps the two apart on the terminal. */
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void clear_bar(view *v)
{
    if (v->drawn)
        fprintf(stderr, "\r%*s\r", 100, "");
    v->drawn = 0;
}

static int draw(view *v, const ttsm_pull_progress *p);

static int on_progress(void *user, const ttsm_pull_progress *p)
{
    pthread_mutex_lock(&out_lock);
    int rc = draw(user, p);
    pthread_mutex_unlock(&out_lock);
    return rc;
}

static int draw(view *v, const ttsm_pull_progress *p)
{
    double t = now_s();
    if (v->json) {
        /* Every finished file, and a progress line at most 4 times a second. */
        if (!p->finished && t - v->last_json < 0.25)
            return 0;
        v->last_json = t;
        json_t *o = json_pack("{s:s, s:s?, s:s?, s:I, s:I, s:I, s:I, s:I, s:I}", "event",
                              p->finished ? "file" : "progress", "repo", p->repo, "file", p->file,
                              "file_done", (json_int_t)p->file_done, "file_total",
                              (json_int_t)p->file_total, "done", (json_int_t)p->done, "total",
                              (json_int_t)p->total, "files_done", (json_int_t)p->files_done,
                              "files_total", (json_int_t)p->files_total);
        char *s = json_dumps(o, JSON_COMPACT);
        if (s)
            printf("%s\n", s);
        fflush(stdout);
        free(s);
        json_decref(o);
        return 0;
    }
    if (v->quiet)
        return 0;
    if (p->finished) {
        char sz[32];
        human(p->file_total, sz, sizeof sz);
        clear_bar(v);
        fprintf(stderr, "  %s/%s  %s\n", p->repo ? p->repo : "", p->file ? p->file : "", sz);
        return 0;
    }
    if (!v->tty || t - v->last_draw < 0.1)
        return 0;
    double dt = t - v->last_draw;
    if (v->last_draw > 0 && dt > 0 && p->done >= v->last_done) {
        double inst = (double)(p->done - v->last_done) / dt;
        v->speed = v->speed > 0 ? 0.7 * v->speed + 0.3 * inst : inst;
    }
    v->last_draw = t;
    v->last_done = p->done;
    int width = 24;
    int fill = p->total ? (int)((double)p->done / (double)p->total * width) : 0;
    if (fill > width)
        fill = width;
    char done[32], total[32], fd[32], ft[32], spd[32], eta[32] = "--";
    human(p->done, done, sizeof done);
    human(p->total, total, sizeof total);
    human(p->file_done, fd, sizeof fd);
    human(p->file_total, ft, sizeof ft);
    human((uint64_t)v->speed, spd, sizeof spd);
    if (v->speed > 1 && p->total > p->done)
        snprintf(eta, sizeof eta, "%.0fs", (double)(p->total - p->done) / v->speed);
    const char *name = p->file ? strrchr(p->file, '/') : NULL;
    name = name ? name + 1 : p->file ? p->file : "";
    fprintf(stderr, "\r[%.*s%*s] %3d%% %s/%s %s/s ETA %s | %.24s %s/%s   ", fill,
            "########################", width - fill, "",
            p->total ? (int)(100.0 * (double)p->done / (double)p->total) : 0, done, total, spd,
            eta, name, fd, ft);
    v->drawn = 1;
    return 0;
}

/* The library's log: warnings always (a retry, the cache used because the
 * Hub cannot be reached), the rest with -v; never over the bar. */
static view *log_view;

static void on_log(void *user, int level, const char *message)
{
    (void)user;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if ((level < TTSM_LOG_WARN && !cli_g.verbose) || (level < TTSM_LOG_INFO && cli_g.verbose < 2) ||
        (cli_g.quiet && level < TTSM_LOG_ERROR))
        return;
    pthread_mutex_lock(&out_lock);
    if (log_view)
        clear_bar(log_view);
    fprintf(stderr, "ttsm: [%s] %s\n", names[level >= 0 && level <= 3 ? level : 3], message);
    pthread_mutex_unlock(&out_lock);
}

typedef struct opts {
    ttsm_pull_options po;
    int json;
} opts;

static void print_dry_run(const json_t *r)
{
    size_t i;
    json_t *f;
    printf("%s/%s: a pull would fetch\n", json_string_value(json_object_get(r, "engine")),
           json_string_value(json_object_get(r, "model")));
    json_array_foreach(json_object_get(r, "files"), i, f) {
        const char *st = json_string_value(json_object_get(f, "status"));
        char sz[32] = "-";
        if (json_is_integer(json_object_get(f, "size")))
            human((uint64_t)json_integer_value(json_object_get(f, "size")), sz, sizeof sz);
        const char *repo = json_string_value(json_object_get(f, "repo"));
        const char *path = json_string_value(json_object_get(f, "path"));
        const char *local = json_string_value(json_object_get(f, "local"));
        printf("  %-15s %-12s %10s  %s%s%s\n", st,
               json_string_value(json_object_get(f, "component")), sz, repo ? repo : "",
               repo ? "/" : "", path ? path : local ? local : "");
    }
    char dl[32], tot[32];
    human((uint64_t)json_integer_value(json_object_get(r, "download_bytes")), dl, sizeof dl);
    human((uint64_t)json_integer_value(json_object_get(r, "total_bytes")), tot, sizeof tot);
    printf("total: %s to download (%s with what is there)\n", dl, tot);
}

/* One pull; prints its outcome. @return the status. */
static ttsm_status pull_one(opts *o, view *v, const ttsm_load_config *cfg)
{
    char *report = NULL;
    ttsm_error err;
    v->started = now_s();
    v->last_draw = v->last_json = 0;
    v->last_done = 0;
    v->speed = 0;
    ttsm_status st = ttsm_pull(&o->po, cfg, &report, &err);
    clear_bar(v);
    if (st != TTSM_OK && !(o->po.dry_run && report)) {
        if (o->json) {
            json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:s}", "event", "error", "engine",
                                  cfg->engine, "code", ttsm_status_name(st), "message",
                                  err.message, "hint", err.hint);
            char *s = json_dumps(e, JSON_COMPACT);
            if (s)
                printf("%s\n", s);
            free(s);
            json_decref(e);
        }
        cli_fail(st, &err);
        ttsm_free(report);
        return st;
    }
    json_t *r = json_loads(report, 0, NULL);
    ttsm_free(report);
    if (o->json) {
        json_t *e = json_pack("{s:s, s:O}", "event", "done", "report", r);
        char *s = json_dumps(e, JSON_COMPACT);
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(e);
    } else if (o->po.dry_run) {
        print_dry_run(r);
    } else if (!v->quiet) {
        char dl[32];
        human((uint64_t)json_integer_value(json_object_get(r, "download_bytes")), dl, sizeof dl);
        json_int_t n_dl = json_integer_value(json_object_get(r, "downloaded"));
        json_int_t n_files = (json_int_t)json_array_size(json_object_get(r, "files"));
        size_t i;
        json_t *f;
        json_int_t absent = 0;
        json_array_foreach(json_object_get(r, "files"), i, f)
            absent += strcmp(json_string_value(json_object_get(f, "status")), "absent") == 0;
        if (n_dl)
            printf("%s/%s: %lld file%s downloaded (%s) in %.1f s, %lld already there%s -> %s\n",
                   json_string_value(json_object_get(r, "engine")),
                   json_string_value(json_object_get(r, "model")), (long long)n_dl,
                   n_dl == 1 ? "" : "s", dl, now_s() - v->started,
                   (long long)(n_files - n_dl - absent), absent ? " (optional files absent)" : "",
                   json_string_value(json_object_get(r, "root")));
        else
            printf("%s/%s: up to date (%lld file%s) -> %s\n",
                   json_string_value(json_object_get(r, "engine")),
                   json_string_value(json_object_get(r, "model")), (long long)(n_files - absent),
                   n_files - absent == 1 ? "" : "s",
                   json_string_value(json_object_get(r, "root")));
    }
    json_decref(r);
    return st;
}

static int run(cli_args *a)
{
    opts o;
    memset(&o, 0, sizeof o);
    ttsm_load_config cfg = ttsm_load_config_default();
    if (a->value[OPT_ENGINE] && a->n_pos)
        return cli_usage_error("pull", "ENGINE given twice ('%s' and -e %s)", a->pos[0],
                               a->value[OPT_ENGINE]);
    cli_load_config(a, &cfg);
    cfg.device = "cpu"; /* the files do not depend on the device */
    o.po = ttsm_pull_options_default();
    o.json = a->given[OPT_JSON] > 0;
    o.po.dry_run = a->given[OPT_DRY_RUN] > 0;
    o.po.revision = a->value[OPT_REVISION];
    o.po.to_models_root = a->value[OPT_TO_MODELS_ROOT];
    int all = a->given[OPT_ALL] > 0;
    if (a->value[OPT_JOBS]) {
        char *end;
        long n = strtol(a->value[OPT_JOBS], &end, 10);
        if (*end || n < 1 || n > TTSM_PULL_MAX_JOBS)
            return cli_usage_error("pull", "--jobs wants 1..%d, got '%s'", TTSM_PULL_MAX_JOBS,
                                   a->value[OPT_JOBS]);
        o.po.jobs = (unsigned)n;
    }
    if (!cfg.engine && !all)
        return cli_usage_error("pull", "missing ENGINE (or --all for every engine)");
    if (all && (cfg.model_name || cfg.language || o.po.revision))
        return cli_usage_error("pull", "--all takes every model: leave out --model, --language "
                                       "and --revision");
    o.po.models_dirs = cli_g.models_dirs;
    o.po.comfyui_dirs = cli_g.comfyui_dirs;
    o.po.hf_cache = cli_g.hf_cache;
    view v;
    memset(&v, 0, sizeof v);
    v.json = o.json;
    v.quiet = cli_g.quiet;
    v.tty = isatty(STDERR_FILENO);
    o.po.progress = on_progress;
    o.po.progress_user = &v;
    log_view = &v;
    o.po.log = on_log;
    const ttsm_engine_info *only = NULL;
    if (cfg.engine && !(only = ttsm_engine_find(cfg.engine)))
        return cli_engine_not_found(cfg.engine);
    if (!all)
        return cli_exit_code(pull_one(&o, &v, &cfg));
    /* --all: every model (each model type it serves) of one engine or all. */
    ttsm_status worst = TTSM_OK;
    for (size_t e = 0; e < ttsm_engine_count(); e++) {
        const ttsm_engine_info *eng = ttsm_engine_get(e);
        if ((only && eng != only) || !ttsm_engine_manifest(eng))
            continue;
        for (size_t m = 0; m < ttsm_engine_model_count(eng); m++) {
            for (size_t t = 0; t < ttsm_engine_model_type_count(eng); t++) {
                ttsm_load_config c = cfg;
                c.engine = ttsm_engine_name(eng);
                c.model_name = ttsm_engine_model_name(eng, m);
                c.model_type = ttsm_engine_model_type(eng, t);
                char *rep = NULL;
                ttsm_error err;
                /* Only the types the model serves as itself. */
                if (ttsm_resolve(&c, cli_g.models_dirs, cli_g.hf_cache, &rep, &err) != TTSM_OK)
                    continue;
                json_t *r = json_loads(rep, 0, NULL);
                ttsm_free(rep);
                const char *got = json_string_value(json_object_get(r, "model"));
                int same = got && strcmp(got, c.model_name) == 0 &&
                           json_array_size(json_object_get(r, "components")) > 0;
                /* A later type whose files the first pull brought needs no line. */
                int done = t > 0 && json_is_true(json_object_get(r, "complete")) && !o.po.dry_run;
                json_decref(r);
                if (!same || done)
                    continue;
                ttsm_status st = pull_one(&o, &v, &c);
                if (st != TTSM_OK && worst == TTSM_OK)
                    worst = st;
            }
        }
    }
    return cli_exit_code(worst);
}

static const cli_opt options[] = {OPT_ENGINE,  OPT_MODEL, OPT_LANGUAGE, OPT_TYPE,
                                  OPT_PARAM,   OPT_REVISION, OPT_ALL,   OPT_DRY_RUN,
                                  OPT_JOBS,    OPT_TO_MODELS_ROOT, OPT_JSON, OPT_END};

const cli_command cli_cmd_pull = {
    "pull",
    "download a model's files from the Hugging Face Hub",
    "[ENGINE]",
    options,
    1,
    "Downloads the files a model's components need that are not found locally,\n"
    "from the Hugging Face Hub into the hub cache (--hf-cache, HF_HUB_CACHE,\n"
    "HF_HOME/hub, ~/.cache/huggingface/hub) in huggingface_hub's layout: blobs\n"
    "named by their hash and checked against it, relative snapshot links, refs.\n"
    "An interrupted pull resumes; two pulls of one model download each file\n"
    "once. A model already there costs one HEAD per repo and no download. A bar\n"
    "on a terminal shows the total and the current file, speed and time left.\n"
    "Environment: HF_ENDPOINT, HF_TOKEN (else $HF_HOME/token; never printed),\n"
    "HF_HUB_OFFLINE=1 (no request at all), HF_HUB_ETAG_TIMEOUT and\n"
    "HF_HUB_DOWNLOAD_TIMEOUT (seconds to connect, and without a byte).",
    "one JSON object a line: {\"event\": \"progress\" | \"file\", \"repo\", \"file\", "
    "\"file_done\", \"file_total\", \"done\", \"total\", \"files_done\", \"files_total\"}, then "
    "{\"event\": \"done\", \"report\": {\"engine\", \"model\", \"target\", \"root\", \"dry_run\", "
    "\"offline\", \"files\": [{\"component\", \"repo\", \"revision\", \"commit\", \"path\", "
    "\"size\", \"status\", \"optional\", \"local\"}], \"total_bytes\", \"download_bytes\", "
    "\"downloaded\", \"present\"}} or {\"event\": \"error\", \"engine\", \"code\", \"message\", "
    "\"hint\"}",
    "ttsm pull chatterbox\n"
    "ttsm pull chatterbox -l fr --dry-run\n"
    "ttsm pull f5tts --all --to-models-root ~/ComfyUI/models\n"
    "HF_TOKEN=hf_... ttsm pull vibevoice -m VibeVoice-Large --json",
    "exit codes: 0 ok, 2 usage, 3 not on the Hub (repo, revision or file) or offline and not "
    "here, 6 the server broke the protocol or sent an unsafe path, 7 network, gated repository "
    "or refused token, disk, hash or size mismatch, 9 cancelled.",
    run};
