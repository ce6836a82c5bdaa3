/* test_torture.c - allocation failure torture (curl's model): for N = 1, 2, ...
 * the N-th allocation fails until the operation succeeds - opening every format,
 * each engine's model from the generated store, a manager sequence with eviction,
 * DLPack exports, `ttsm convert`. Every failure must be a clean error that leaves
 * nothing behind; counts distinct injection points (docs/reliability.md). */
#undef _GNU_SOURCE
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"

/* `ttsm convert` lives in the CLI, which uses only the public API. Its code
 * is compiled in here with its own allocations (and jansson's, below) routed
 * through the library's hook, so one counter covers CLI, jansson and
 * library: the torture sees convert exactly as the CLI runs it. */
#define malloc(n) ttsm__malloc(n)
#define realloc(p, n) ttsm__realloc(p, n)
#define free(p) ttsm__free(p)
#include "../../tools/cmd_convert.c"
#undef malloc
#undef realloc
#undef free

#include "dlpack.h"
#include "fake_backend.h"
#include "mgr_util.h"

#define FIXTURES TTSM_SOURCE_DIR "/tests/fixtures"
#define MAX_N 200000
#define MAX_SITES 8192

/* ---- cmd_convert.c's links to the rest of the CLI ---------------------- */

static ttsm_status convert_status;
static char convert_message[TTSM_ERROR_MESSAGE_MAX];

int cli_fail(ttsm_status st, const ttsm_error *err)
{
    convert_status = st;
    snprintf(convert_message, sizeof convert_message, "%s", err ? err->message : "");
    return cli_exit_code(st);
}

int cli_exit_code(ttsm_status st)
{
    return st == TTSM_ERR_OUT_OF_MEMORY ? CLI_EXIT_OUT_OF_MEMORY : 100 + (int)st;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    (void)cmd;
    (void)fmt;
    return CLI_EXIT_USAGE;
}

/* ---- injection points ---------------------------------------------------- */

typedef struct sites {
    void *at[MAX_SITES];
    size_t n;
} sites;

static sites all_sites;
static long all_runs, all_absorbed, all_misreported;

static void sites_add(sites *s, void *p)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->at[i] == p)
            return;
    if (s->n < MAX_SITES)
        s->at[s->n++] = p;
}

/* Sites inside libjansson (reached through the library's JSON parsing) are
 * counted apart from the library's own. */
static int in_jansson(void *p)
{
    Dl_info info;
    return dladdr(p, &info) && info.dli_fname && strstr(info.dli_fname, "jansson");
}

/* One torture: runs `op` with the N-th allocation failing for N = 1, 2, ...
 * until it succeeds with no failure injected. After every failure `check`
 * (may be NULL) asserts the state is clean. */
typedef ttsm_status (*op_fn)(void *ctx, ttsm_error *err);
typedef void (*check_fn)(void *ctx);

static void torture(const char *name, op_fn op, check_fn check, void *ctx)
{
    sites mine;
    mine.n = 0;
    long n, absorbed = 0, misreported = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (n = 1; n < MAX_N; n++) {
        ttsm_error err;
        ttsm_error_clear(&err);
        ttsm__alloc_fail_after(n);
        ttsm_status st = op(ctx, &err);
        void *site = ttsm__alloc_fail_site();
        ttsm__alloc_fail_after(0);
        if (site) {
            sites_add(&mine, site);
            sites_add(&all_sites, site);
        }
        if (st == TTSM_OK) {
            if (!site)
                break;
            absorbed++; /* a failure the operation worked around */
            continue;
        }
        /* jansson 2.14 reports some of its own allocation failures (a
         * string's buffer in the lexer) as syntax errors, with no way for a
         * caller to tell: a parse error is accepted only when the failure
         * was injected inside jansson, and counted. */
        if (st == TTSM_ERR_FORMAT && site && in_jansson(site)) {
            misreported++;
        } else if (st != TTSM_ERR_OUT_OF_MEMORY || !site)
            fail_msg("%s: allocation %ld: expected TTSM_ERR_OUT_OF_MEMORY, got %s: %s", name, n,
                     ttsm_status_name(st), err.message);
        if (err.code != st || !err.message[0])
            fail_msg("%s: allocation %ld: err->code %s, message \"%s\"", name, n,
                     ttsm_status_name(err.code), err.message);
        if (check)
            check(ctx);
    }
    assert_true(n < MAX_N);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    size_t nj = 0;
    for (size_t i = 0; i < mine.n; i++)
        nj += (size_t)in_jansson(mine.at[i]);
    printf("torture %-46s %5ld allocations, %3zu injection points (%zu in jansson), "
           "%ld absorbed, %ld parse errors from jansson, %.2f s\n",
           name, n - 1, mine.n, nj, absorbed, misreported,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    all_runs += n;
    all_absorbed += absorbed;
    all_misreported += misreported;
    assert_true(mine.n > 0);
}

/* ---- formats ------------------------------------------------------------- */

typedef struct fmt_ctx {
    const char *path;
    ttsm_io_mode mode;
    ttsm_format format;
    size_t n_tensors;
} fmt_ctx;

/* Open, every tensor's bytes, every metadata entry, close. */
static ttsm_status open_all(void *p, ttsm_error *err)
{
    fmt_ctx *c = p;
    ttsm_checkpoint_options o = ttsm_checkpoint_options_default();
    o.io_mode = c->mode;
    ttsm_checkpoint *ck;
    ttsm_status st = ttsm_checkpoint_open(c->path, &o, &ck, err);
    if (st != TTSM_OK)
        return st;
    size_t nt = ttsm_checkpoint_tensor_count(ck);
    for (size_t i = 0; i < nt && st == TTSM_OK; i++) {
        const void *data;
        st = ttsm_checkpoint_tensor_data(ck, ttsm_checkpoint_tensor(ck, i), &data, err);
    }
    for (size_t i = 0; i < ttsm_checkpoint_metadata_count(ck); i++)
        assert_non_null(ttsm_checkpoint_metadata(ck, i)->json);
    if (st == TTSM_OK) {
        assert_int_equal(ttsm_checkpoint_format(ck), c->format);
        assert_int_equal(nt, c->n_tensors);
    }
    ttsm_checkpoint_close(ck);
    return st;
}

static void test_formats(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        ttsm_format format;
    } files[] = {
        {"safetensors/ok_all_dtypes.safetensors", TTSM_FORMAT_SAFETENSORS},
        {"safetensors/ok_metadata_strings.safetensors", TTSM_FORMAT_SAFETENSORS},
        {"safetensors/index/ok.safetensors.index.json", TTSM_FORMAT_SAFETENSORS_SHARDED},
        {"gguf/valid_v3_all_types.gguf", TTSM_FORMAT_GGUF},
        {"gguf/valid_v2.gguf", TTSM_FORMAT_GGUF},
        {"torch/state_dict.pt", TTSM_FORMAT_PYTORCH_ZIP},
        {"torch/deflated.pt", TTSM_FORMAT_PYTORCH_ZIP},
        {"torch/zip64.pt", TTSM_FORMAT_PYTORCH_ZIP},
        {"torch/rvc.pth", TTSM_FORMAT_PYTORCH_ZIP},
        {"torch/legacy.pt", TTSM_FORMAT_PYTORCH_ZIP},
        {"torch/nested.pt", TTSM_FORMAT_PYTORCH_ZIP},
        {"torch/shared.pt", TTSM_FORMAT_PYTORCH_ZIP},
        {"torch/metadata.pt", TTSM_FORMAT_PYTORCH_ZIP},
        {"gguf/valid_string_nul.gguf", TTSM_FORMAT_GGUF},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *path = tu_fmt("%s/%s", FIXTURES, files[i].file);
        ttsm_checkpoint *ck;
        ttsm_error err;
        tu_assert_ok(ttsm_checkpoint_open(path, NULL, &ck, &err), &err);
        fmt_ctx c = {path, TTSM_IO_MMAP, files[i].format, ttsm_checkpoint_tensor_count(ck)};
        ttsm_checkpoint_close(ck);
        for (int mode = 0; mode < 2; mode++) {
            char name[128];
            c.mode = mode ? TTSM_IO_READ : TTSM_IO_MMAP;
            snprintf(name, sizeof name, "open %s (%s)", files[i].file, mode ? "read" : "mmap");
            torture(name, open_all, NULL, &c);
        }
        free(path);
    }
}

/* ---- engines from the generated store ---------------------------------- */

static char *tmp, *store_comfy, *nowhere;

static int group_setup(void **state)
{
    (void)state;
    tmp = strdup(tu_mkdtemp());
    char *store = tu_path(tmp, "store");
    store_comfy = tu_path(store, "comfy");
    nowhere = tu_path(tmp, "nowhere");
    int rc = tu_system("/usr/bin/python3 '%s/tests/fixtures/gen_store.py' '%s' --layout comfy",
                       TTSM_SOURCE_DIR, store);
    free(store);
    /* Process-wide state that starts once (engine registry, CUDA discovery,
     * the fake backend) is set up before any allocation is made to fail. */
    fake_backend_register();
    (void)ttsm_engine_count();
    (void)ttsm_device_count();
    return rc == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    tu_rmtree(tmp);
    free(tmp);
    free(store_comfy);
    free(nowhere);
    return 0;
}

typedef struct mgr_ctx {
    ttsm_manager *mgr;
    ttsm_load_config cfg;
    char keys[4][TTSM_KEY_HEX_SIZE];
    const char *a, *b;
} mgr_ctx;

static void assert_empty_books(ttsm_manager *mgr)
{
    ttsm_manager_stats s;
    ttsm_manager_get_stats(mgr, &s);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.orphans, 0);
    for (size_t i = 0; i < s.n_devices; i++) {
        assert_int_equal(s.devices[i].in_use, 0);
        assert_int_equal(s.devices[i].reserved, 0);
        assert_int_equal(s.devices[i].entries, 0);
    }
    assert_int_equal(fake_allocated(0), 0);
    assert_int_equal(fake_allocated(1), 0);
}

static ttsm_status engine_load(void *p, ttsm_error *err)
{
    mgr_ctx *c = p;
    ttsm_model *m;
    ttsm_status st = ttsm_load(c->mgr, &c->cfg, &m, err);
    if (st != TTSM_OK)
        return st;
    assert_true(ttsm_model_component_count(m) > 0);
    char key[TTSM_KEY_HEX_SIZE];
    snprintf(key, sizeof key, "%s", ttsm_model_key(m));
    ttsm_model_release(m);
    /* The next N starts from an empty cache again. */
    ttsm_error e2;
    tu_assert_ok(ttsm_unload(c->mgr, key, &e2), &e2);
    return TTSM_OK;
}

static void engine_check(void *p)
{
    assert_empty_books(((mgr_ctx *)p)->mgr);
}

static void test_engines(void **state)
{
    (void)state;
    ttsm_manager_options o = ttsm_manager_options_default();
    o.models_dirs = store_comfy;
    o.hf_cache = nowhere;
    size_t done = 0;
    for (size_t i = 0; i < ttsm_engine_count(); i++) {
        const ttsm_engine_info *e = ttsm_engine_get(i);
        if (!ttsm_engine_manifest(e)) /* `file` and engines registered in code */
            continue;
        mgr_ctx c;
        memset(&c, 0, sizeof c);
        ttsm_error err;
        tu_assert_ok(ttsm_manager_create(&o, &c.mgr, &err), &err);
        c.cfg = ttsm_load_config_default();
        c.cfg.engine = ttsm_engine_name(e);
        c.cfg.device = "cpu";
        ttsm_status st = engine_load(&c, &err);
        if (st != TTSM_OK) {
            /* espeak-ng's data comes from the system, not from the store */
            printf("torture: engine %s not loadable here, skipped: %s\n", c.cfg.engine,
                   err.message);
            ttsm_manager_destroy(c.mgr);
            continue;
        }
        char name[128];
        snprintf(name, sizeof name, "load engine %s (default model, cpu)", c.cfg.engine);
        torture(name, engine_load, engine_check, &c);
        /* Usable afterwards: a clean load on the manager that saw every failure. */
        tu_assert_ok(engine_load(&c, &err), &err);
        assert_empty_books(c.mgr);
        ttsm_manager_destroy(c.mgr);
        done++;
    }
    assert_true(done >= 7);
}

/* ---- engine manifests from a folder ------------------------------------ */

static const char torture_manifest[] =
    "{\"schema\": 1, \"name\": \"torture_engine\", \"description\": \"from a folder\",\n"
    " \"runtime\": \"pytorch\", \"model_types\": [\"tts\"],\n"
    " \"capabilities\": {\"supports_voice_conversion\": false, \"has_fallback\": false,\n"
    "   \"can_corrupt\": false, \"requires_special_init\": false,\n"
    "   \"language_selects_model\": false, \"single_instance\": false, \"recovery\": \"none\"},\n"
    " \"devices\": [\"cpu\"], \"languages\": [\"en\"], \"identity_params\": [],\n"
    " \"folder\": \"torture\", \"legacy_folders\": [], \"default_model\": \"m\",\n"
    " \"models\": [{\"name\": \"m\", \"components\": [\n"
    "   {\"name\": \"w\", \"kind\": \"tensors\", \"files\": [\"w.safetensors\"]}]}]}\n";

static ttsm_status engines_dir_load(void *p, ttsm_error *err)
{
    return ttsm_engines_load_dir(p, err);
}

/* Whatever failed, an engine the table lists has a manifest that is still
 * alive: reading it after a failed load is clean under ASan (a manifest
 * registered and then freed because remembering it ran out of memory was
 * a use after free). */
static void engines_dir_check(void *p)
{
    (void)p;
    const ttsm_engine_info *e = ttsm_engine_find("torture_engine");
    if (e)
        assert_string_equal(ttsm_engine_description(e), "from a folder");
}

static void test_engines_dir(void **state)
{
    (void)state;
    char *dir = strdup(tu_mkdtemp());
    free(tu_write_file(dir, "torture.json", torture_manifest, sizeof torture_manifest - 1));
    torture("engines folder with one manifest", engines_dir_load, engines_dir_check, dir);
    engines_dir_check(NULL);
    assert_non_null(ttsm_engine_find("torture_engine"));
    free(dir);
}

/* ---- a manager sequence with eviction on the fake device --------------- */

static ttsm_status step(ttsm_status st, ttsm_status *first)
{
    if (st != TTSM_OK && *first == TTSM_OK)
        *first = st;
    return st;
}

/* A on fake:0, released; B on fake:0 evicts it; A on cpu; B invalidated
 * while held (orphan), rebuilt with recovery; pin, list, unload. The
 * budget holds one of A and B. */
static ttsm_status sequence(void *p, ttsm_error *err)
{
    mgr_ctx *c = p;
    ttsm_status first = TTSM_OK;
    ttsm_model *ma = NULL, *mb = NULL, *mc = NULL, *mb2 = NULL;
    ttsm_load_config a = mu_cfg("file", c->a, "fake:0"), b = mu_cfg("file", c->b, "fake:0"),
                     acpu = mu_cfg("file", c->a, "cpu");
    if (step(ttsm_load(c->mgr, &a, &ma, err), &first) != TTSM_OK)
        goto out;
    ttsm_model_release(ma);
    ma = NULL;
    if (step(ttsm_load(c->mgr, &b, &mb, err), &first) != TTSM_OK)
        goto out;
    if (step(ttsm_load(c->mgr, &acpu, &mc, err), &first) != TTSM_OK)
        goto out;
    if (step(ttsm_invalidate(c->mgr, ttsm_model_key(mb), err), &first) != TTSM_OK)
        goto out;
    ttsm_model_release(mb);
    mb = NULL;
    if (step(ttsm_load(c->mgr, &b, &mb2, err), &first) != TTSM_OK)
        goto out;
    if (step(ttsm_pin(c->mgr, ttsm_model_key(mb2), err), &first) != TTSM_OK)
        goto out;
    ttsm_entry_info *v;
    size_t n;
    if (step(ttsm_manager_list(c->mgr, &v, &n, err), &first) != TTSM_OK)
        goto out;
    assert_int_equal(n, 2);
    ttsm_free(v);
out:
    ttsm_model_release(ma);
    ttsm_model_release(mb);
    ttsm_model_release(mb2);
    ttsm_model_release(mc);
    if (first == TTSM_OK) { /* the next N starts from an empty cache again */
        for (int i = 0; i < 3; i++) {
            ttsm_status st = ttsm_unload(c->mgr, c->keys[i], NULL);
            /* A on fake:0 was evicted by B */
            if (st != TTSM_OK && !(i == 0 && st == TTSM_ERR_NOT_FOUND))
                first = st;
        }
    }
    return first;
}

/* After a failure: the books match the device, nothing is reserved or
 * orphaned; then everything left unloads to zero. */
static void sequence_check(void *p)
{
    mgr_ctx *c = p;
    ttsm_manager_stats s;
    ttsm_manager_get_stats(c->mgr, &s);
    assert_int_equal(s.orphans, 0);
    for (size_t i = 0; i < s.n_devices; i++) {
        assert_int_equal(s.devices[i].reserved, 0);
        assert_true(s.devices[i].in_use <= s.devices[i].budget);
        if (strcmp(s.devices[i].device, "fake:0") == 0)
            assert_int_equal(s.devices[i].in_use, fake_allocated(0));
    }
    for (int i = 0; i < 3; i++) {
        ttsm_unpin(c->mgr, c->keys[i], NULL);
        ttsm_status st = ttsm_unload(c->mgr, c->keys[i], NULL);
        assert_true(st == TTSM_OK || st == TTSM_ERR_NOT_FOUND);
    }
    assert_empty_books(c->mgr);
}

static void test_manager_sequence(void **state)
{
    (void)state;
    char *dir = strdup(tu_mkdtemp());
    char *a = mu_write_st(dir, "a.safetensors", 256, 1.0f);
    char *b = mu_write_st(dir, "b.safetensors", 256, 2.0f);
    ttsm_device_budget budget[] = {{"fake:0", 1536}};
    ttsm_manager_options o = ttsm_manager_options_default();
    o.budgets = budget;
    o.n_budgets = 1;
    o.models_dirs = nowhere;
    o.hf_cache = nowhere;
    mgr_ctx c;
    memset(&c, 0, sizeof c);
    c.a = a;
    c.b = b;
    ttsm_error err;
    ttsm_load_config k0 = mu_cfg("file", a, "fake:0"), k1 = mu_cfg("file", b, "fake:0"),
                     k2 = mu_cfg("file", a, "cpu");
    tu_assert_ok(ttsm_cache_key(&k0, c.keys[0], &err), &err);
    tu_assert_ok(ttsm_cache_key(&k1, c.keys[1], &err), &err);
    tu_assert_ok(ttsm_cache_key(&k2, c.keys[2], &err), &err);
    tu_assert_ok(ttsm_manager_create(&o, &c.mgr, &err), &err);
    uint64_t ev0;
    {
        ttsm_manager_stats s;
        ttsm_manager_get_stats(c.mgr, &s);
        ev0 = s.evictions;
    }
    torture("manager sequence with eviction (fake:0 + cpu)", sequence, sequence_check, &c);
    ttsm_manager_stats s;
    ttsm_manager_get_stats(c.mgr, &s);
    assert_true(s.evictions > ev0);
    /* Usable afterwards: the whole sequence, clean. */
    tu_assert_ok(sequence(&c, &err), &err);
    assert_empty_books(c.mgr);
    ttsm_manager_destroy(c.mgr);
    free(a);
    free(b);
    tu_rmtree(dir);
    free(dir);
}

/* Manager creation and destruction with options that allocate. */
static ttsm_status create_destroy(void *p, ttsm_error *err)
{
    (void)p;
    ttsm_device_budget budget[] = {{"fake:0", 1 << 20}, {"cpu", 1 << 30}};
    ttsm_manager_options o = ttsm_manager_options_default();
    o.budgets = budget;
    o.n_budgets = 2;
    o.models_dirs = nowhere;
    o.hf_cache = nowhere;
    ttsm_manager *m;
    ttsm_status st = ttsm_manager_create(&o, &m, err);
    if (st == TTSM_OK)
        ttsm_manager_destroy(m);
    return st;
}

static void test_manager_create(void **state)
{
    (void)state;
    torture("manager create + destroy", create_destroy, NULL, NULL);
}

/* ---- resolution report and DLPack export -------------------------------- */

static ttsm_status resolve_op(void *p, ttsm_error *err)
{
    (void)p;
    ttsm_load_config c = ttsm_load_config_default();
    c.engine = "chatterbox";
    c.language = "fr";
    char *report;
    ttsm_status st = ttsm_resolve(&c, store_comfy, nowhere, &report, err);
    if (st != TTSM_OK)
        return st;
    json_error_t je;
    ttsm__alloc_fail_after(0); /* checking the report is not under test */
    json_t *j = json_loads(report, 0, &je);
    assert_non_null(j);
    assert_true(json_array_size(json_object_get(j, "components")) >= 4);
    json_decref(j);
    ttsm_free(report);
    return TTSM_OK;
}

static void test_resolve(void **state)
{
    (void)state;
    torture("resolve chatterbox French (report)", resolve_op, NULL, NULL);
}

typedef struct export_ctx {
    ttsm_manager *mgr;
    const char *path;
} export_ctx;

/* A load, both kinds of DLPack export, the deleters. */
static ttsm_status export_op(void *p, ttsm_error *err)
{
    export_ctx *c = p;
    ttsm_load_config cfg = mu_cfg("file", c->path, "cpu");
    ttsm_model *m;
    ttsm_status st = ttsm_load(c->mgr, &cfg, &m, err);
    if (st != TTSM_OK)
        return st;
    char key[TTSM_KEY_HEX_SIZE];
    snprintf(key, sizeof key, "%s", ttsm_model_key(m));
    DLManagedTensorVersioned *v = NULL;
    DLManagedTensor *l = NULL;
    st = ttsm_model_export_dlpack(m, 0, 0, 0, &v, err);
    if (st == TTSM_OK)
        st = ttsm_model_export_dlpack_legacy(m, 0, 0, 0, &l, err);
    ttsm_model_release(m);
    /* The exports hold the entry until their deleters run. */
    if (v)
        v->deleter(v);
    if (l)
        l->deleter(l);
    ttsm_status us = ttsm_unload(c->mgr, key, NULL);
    assert_int_equal(us, TTSM_OK);
    return st;
}

static void export_check(void *p)
{
    assert_empty_books(((export_ctx *)p)->mgr);
}

static void test_dlpack_export(void **state)
{
    (void)state;
    char *dir = strdup(tu_mkdtemp());
    export_ctx c;
    c.path = mu_write_st(dir, "w.safetensors", 64, 0.5f);
    ttsm_error err;
    tu_assert_ok(ttsm_manager_create(NULL, &c.mgr, &err), &err);
    torture("load on cpu + DLPack exports", export_op, export_check, &c);
    ttsm_manager_destroy(c.mgr);
    free((char *)c.path);
    tu_rmtree(dir);
    free(dir);
}

/* ---- convert ------------------------------------------------------------- */

typedef struct conv_ctx {
    const char *in;
    char *dir, *out;
} conv_ctx;

static size_t files_in(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    if (d)
        closedir(d);
    return n;
}

static ttsm_status convert_op(void *p, ttsm_error *err)
{
    conv_ctx *c = p;
    cli_args args;
    memset(&args, 0, sizeof args);
    args.pos[0] = c->in;
    args.pos[1] = c->out;
    args.n_pos = 2;
    convert_status = TTSM_OK;
    convert_message[0] = '\0';
    /* Its messages go to stderr: keep the test log readable. */
    fflush(stderr);
    int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    int rc = cli_cmd_convert.run(&args);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(devnull);
    if (rc == CLI_EXIT_OK)
        return TTSM_OK;
    /* Failures of convert's own code exit 5; the library's come through
     * cli_fail with their status. */
    ttsm_status st = convert_status != TTSM_OK ? convert_status
                     : rc == CLI_EXIT_OUT_OF_MEMORY ? TTSM_ERR_OUT_OF_MEMORY
                                                    : TTSM_ERR_LOAD;
    /* the message field is fixed-size: keep its head, cut on purpose */
    snprintf(err->message, sizeof err->message, "convert exit %d: %.480s", rc,
             convert_message[0] ? convert_message : "(its own message)");
    err->code = st;
    return st;
}

/* A failed convert leaves neither OUT nor its temporary file. */
static void convert_check(void *p)
{
    conv_ctx *c = p;
    assert_int_equal(files_in(c->dir), 0);
}

static void test_convert(void **state)
{
    (void)state;
    static const char *const inputs[] = {"torch/views.pt", "torch/rvc.pth", "torch/legacy.pt",
                                         "gguf/valid_v2.gguf",
                                         "safetensors/ok_metadata_strings.safetensors"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        conv_ctx c;
        char *in = tu_fmt("%s/%s", FIXTURES, inputs[i]);
        c.in = in;
        c.dir = strdup(tu_mkdtemp());
        c.out = tu_path(c.dir, "out.safetensors");
        char name[128];
        snprintf(name, sizeof name, "convert %s", inputs[i]);
        torture(name, convert_op, convert_check, &c);
        /* The result is a checkpoint with every tensor of the input. */
        ttsm_checkpoint *a, *b;
        ttsm_error err;
        tu_assert_ok(ttsm_checkpoint_open(in, NULL, &a, &err), &err);
        tu_assert_ok(ttsm_checkpoint_open(c.out, NULL, &b, &err), &err);
        assert_int_equal(ttsm_checkpoint_tensor_count(a), ttsm_checkpoint_tensor_count(b));
        ttsm_checkpoint_close(a);
        ttsm_checkpoint_close(b);
        tu_rmtree(c.dir);
        free(c.dir);
        free(c.out);
        free(in);
    }
}

/* Last: the totals over every torture above. */
static void test_summary(void **state)
{
    (void)state;
    size_t nj = 0;
    for (size_t i = 0; i < all_sites.n; i++)
        nj += (size_t)in_jansson(all_sites.at[i]);
    printf("torture total: %ld runs, %zu distinct injection points (%zu in libttsm and the "
           "CLI's convert, %zu in jansson), %ld failures absorbed, %ld jansson failures it "
           "reported as parse errors\n",
           all_runs, all_sites.n, all_sites.n - nj, nj, all_absorbed, all_misreported);
    assert_true(all_sites.n - nj >= 60);
}

/* A test that fails inside an operation leaves the hook armed: disarm it
 * before the next. */
static int disarm(void **state)
{
    (void)state;
    ttsm__alloc_fail_after(0);
    return 0;
}

int main(void)
{
    /* jansson allocates through the hook too: its failures are the
     * library's to report (JSON headers, indexes, tokenizer files). */
    json_set_alloc_funcs(ttsm__malloc, ttsm__free);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_formats, disarm),
        cmocka_unit_test_setup(test_manager_create, disarm),
        cmocka_unit_test_setup(test_manager_sequence, disarm),
        cmocka_unit_test_setup(test_engines, disarm),
        cmocka_unit_test_setup(test_engines_dir, disarm),
        cmocka_unit_test_setup(test_resolve, disarm),
        cmocka_unit_test_setup(test_dlpack_export, disarm),
        cmocka_unit_test_setup(test_convert, disarm),
        cmocka_unit_test_setup(test_summary, disarm),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
